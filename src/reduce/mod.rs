//! Dimensionality reduction of samples to points: the [`Reducer`] trait (`reducer.rs`),
//! flattening, PCA and t-SNE. Reducers take an `(N, …)` tensor and return `(N, d)` points.
//!
//! PCA is ours (covariance with the `gemm` crate, then a symmetric eigensolver, as
//! scikit-learn's `covariance_eigh`): linfa-reduction's truncated SVD did not finish in 500 s
//! on 60k×784 (measured).

mod reducer;
mod tsne;

pub use reducer::{load_reducer, reducer_bytes, PcaReducer, Reducer, TsneReducer};
pub use tsne::{tsne, TsneParams};

use crate::error::{Error, ParamError, Result};
use candle_core::{DType, Device, Tensor};
use linfa_linalg::eigh::EighInto;
use ndarray::{Array1, Array2};
use rayon::prelude::*;

/// An `(N, …)` tensor as an `(N, D)` f64 matrix, checking that every value is finite.
pub fn to_matrix(t: &Tensor) -> Result<Array2<f64>> {
    let (v, n, d) = rows_f32(t)?;
    Array2::from_shape_vec((n, d), v.into_iter().map(f64::from).collect()).map_err(|e| Error::Shape(e.to_string()))
}

/// The rows of an `(N, …)` tensor as row-major f32 values, checking that every value is
/// finite: `(values, N, D)`.
pub fn rows_f32(t: &Tensor) -> Result<(Vec<f32>, usize, usize)> {
    let n = t.dims().first().copied().unwrap_or(0);
    let d = t.elem_count().checked_div(n).unwrap_or(0);
    let v = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::Invalid(format!(
            "the points contain a non-finite value ({}) at row {}, column {}",
            v[i],
            i / d.max(1),
            i % d.max(1)
        )));
    }
    Ok((v, n, d))
}

/// An `(N, d)` matrix as an f32 tensor.
pub fn from_matrix(a: &Array2<f64>, device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = a.iter().map(|&x| x as f32).collect();
    Ok(Tensor::from_vec(v, a.dim(), device)?)
}

/// Modified Gram–Schmidt: orthonormal columns spanning those of `q`.
fn orthonormalise(q: &mut Array2<f64>) {
    for j in 0..q.ncols() {
        for i in 0..j {
            let proj = q.column(i).dot(&q.column(j));
            let prev = q.column(i).to_owned();
            q.column_mut(j).scaled_add(-proj, &prev);
        }
        let norm = q.column(j).dot(&q.column(j)).sqrt().max(1e-300);
        q.column_mut(j).mapv_inplace(|v| v / norm);
    }
}

/// Eigenpairs of a symmetric matrix, at least its `dims` largest: for a few of a large
/// matrix, subspace iteration (with 10 spare vectors) and a Rayleigh–Ritz step, else the full
/// symmetric eigensolver. Eigenvectors are columns.
fn top_eigen(c: Array2<f64>, dims: usize) -> Result<(Array1<f64>, Array2<f64>)> {
    let d = c.nrows();
    let k = (dims + 10).min(d);
    let fail = |e: linfa_linalg::LinalgError| Error::Invalid(format!("pca: eigendecomposition failed: {e}"));
    if k * 4 > d {
        return c.eigh_into().map_err(fail);
    }
    // a fixed, well-spread start: deterministic without a seed
    let mut q = Array2::from_shape_fn((d, k), |(i, j)| {
        (((i * 7919 + j * 104729) % 1009) as f64 / 1009.0) - 0.5
    });
    orthonormalise(&mut q);
    let mut last = Array1::<f64>::zeros(k);
    for it in 0..500 {
        crate::interrupt::check()?;
        q = c.dot(&q);
        orthonormalise(&mut q);
        if it % 10 == 9 {
            let ritz = (0..k)
                .map(|j| q.column(j).dot(&c.dot(&q.column(j))))
                .collect::<Array1<f64>>();
            let change = (&ritz - &last).iter().take(dims).fold(0f64, |m, v| m.max(v.abs()));
            let scale = ritz.iter().take(dims).fold(0f64, |m, v| m.max(v.abs())).max(1e-300);
            last = ritz;
            if change <= 1e-12 * scale {
                break;
            }
        }
    }
    let t = q.t().dot(&c).dot(&q);
    let (vals, small) = t.eigh_into().map_err(fail)?;
    Ok((vals, q.dot(&small)))
}

/// Unchecked PCA parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct PcaParams {
    pub dims: usize,
}

impl Default for PcaParams {
    /// Two dimensions, for plots.
    fn default() -> Self {
        Self { dims: 2 }
    }
}

impl PcaParams {
    /// Check the rule that holds for any input: dims ≥ 1.
    pub fn check(&self) -> std::result::Result<&Self, ParamError> {
        if self.dims == 0 {
            return Err(ParamError::PcaDimsZero);
        }
        Ok(self)
    }

    /// Check against the input dimension: `1 <= dims <= features`.
    pub fn check_for(&self, features: usize) -> std::result::Result<usize, ParamError> {
        if self.dims == 0 || self.dims > features {
            return Err(ParamError::DimsOutOfRange {
                dims: self.dims,
                features,
            });
        }
        Ok(self.dims)
    }
}

/// A fitted PCA: the mean, the principal axes (rows) and the variance along each.
#[derive(Clone, Debug)]
pub struct Pca {
    mean: Array1<f64>,
    components: Array2<f64>,
    explained_variance: Vec<f64>,
    total_variance: f64,
}

impl Pca {
    /// Fit on the rows of `x` (N × D, N ≥ 2).
    pub fn fit(x: &Array2<f64>, params: &PcaParams) -> Result<Self> {
        let (n, d) = x.dim();
        let data: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        Self::fit_rows(data, n, d, params)
    }

    /// Fit on `n` rows of `d` features given row-major in f32 (consumed: centred in place).
    /// The covariance is one f32 GEMM (a mean is subtracted first, so the sums stay small);
    /// the eigendecomposition is in f64.
    pub fn fit_rows(mut data: Vec<f32>, n: usize, d: usize, params: &PcaParams) -> Result<Self> {
        let dims = params.check_for(d)?;
        if n < 2 {
            return Err(Error::Invalid(format!("pca needs at least 2 points, got {n}")));
        }
        if data.len() != n * d {
            return Err(Error::Shape(format!("pca: {} values for {n} rows of {d}", data.len())));
        }
        let mut mean = vec![0f64; d];
        for row in data.chunks(d) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        data.par_chunks_mut(d)
            .for_each(|row| row.iter_mut().zip(&mean32).for_each(|(v, m)| *v -= m));
        // covariance = Xcᵀ Xc / (n − 1), with the parallel GEMM
        let mut cov = vec![0f32; d * d];
        crate::kernels::gemm_strided(
            (d, d, n),
            &mut cov,
            (d, 1),
            false,
            &data,
            (1, d),
            &data,
            (d, 1),
            true,
            1.0f32,
        );
        drop(data);
        let cov: Vec<f64> = cov.into_iter().map(|v| v as f64 / (n as f64 - 1.0)).collect();
        let cov = Array2::from_shape_vec((d, d), cov).map_err(|e| Error::Shape(e.to_string()))?;
        let mean = Array1::from_vec(mean);
        let total_variance = cov.diag().sum();
        let (vals, vecs) = top_eigen(cov, dims)?;
        let mut order: Vec<usize> = (0..vals.len()).collect();
        order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
        let mut components = Array2::zeros((dims, d));
        let mut explained_variance = Vec::with_capacity(dims);
        for (row, &i) in order.iter().take(dims).enumerate() {
            let mut axis = vecs.column(i).to_owned();
            // a deterministic sign: the largest-magnitude coordinate is positive
            let big = axis
                .iter()
                .copied()
                .fold(0f64, |m, v| if v.abs() > m.abs() { v } else { m });
            if big < 0.0 {
                axis.mapv_inplace(|v| -v);
            }
            components.row_mut(row).assign(&axis);
            explained_variance.push(vals[i].max(0.0));
        }
        Ok(Self {
            mean,
            components,
            explained_variance,
            total_variance,
        })
    }

    /// Project rows of `x` onto the principal axes.
    pub fn transform(&self, x: &Array2<f64>) -> Result<Array2<f64>> {
        if x.ncols() != self.mean.len() {
            return Err(Error::Shape(format!(
                "pca was fitted on {} features but the input has {}",
                self.mean.len(),
                x.ncols()
            )));
        }
        Ok((x - &self.mean).dot(&self.components.t()))
    }

    /// Project `n` rows of `d` f32 features (row-major) onto the principal axes, without a
    /// centred copy: `x·Cᵀ − mean·Cᵀ`.
    pub fn transform_rows(&self, data: &[f32], n: usize, d: usize) -> Result<Array2<f64>> {
        if d != self.mean.len() || data.len() != n * d {
            return Err(Error::Shape(format!(
                "pca was fitted on {} features but the input has {d}",
                self.mean.len()
            )));
        }
        let k = self.components.nrows();
        let comps: Vec<f32> = self.components.iter().map(|&v| v as f32).collect();
        let mut y = vec![0f32; n * k];
        crate::kernels::gemm_strided(
            (n, k, d),
            &mut y,
            (k, 1),
            false,
            data,
            (d, 1),
            &comps,
            (1, d),
            true,
            1.0f32,
        );
        let shift: Vec<f64> = (0..k).map(|j| self.components.row(j).dot(&self.mean)).collect();
        Ok(Array2::from_shape_fn((n, k), |(i, j)| y[i * k + j] as f64 - shift[j]))
    }

    /// The mean the data was centred on.
    pub fn mean(&self) -> &Array1<f64> {
        &self.mean
    }

    /// The principal axes, one per row.
    pub fn components(&self) -> &Array2<f64> {
        &self.components
    }

    /// Variance along each kept axis.
    pub fn explained_variance(&self) -> &[f64] {
        &self.explained_variance
    }

    /// The arrays a saved PCA holds.
    pub(crate) fn parts(&self) -> Vec<reducer::Array> {
        let (k, d) = self.components.dim();
        vec![
            reducer::Array {
                name: "mean",
                shape: vec![d],
                values: self.mean.to_vec(),
            },
            reducer::Array {
                name: "components",
                shape: vec![k, d],
                values: self.components.iter().copied().collect(),
            },
            reducer::Array {
                name: "explained_variance",
                shape: vec![k],
                values: self.explained_variance.clone(),
            },
            reducer::Array {
                name: "total_variance",
                shape: vec![1],
                values: vec![self.total_variance],
            },
        ]
    }

    /// A PCA of `dims` axes from the arrays of a saved one (finite values, by name), every shape
    /// checked against the others; the error names the field.
    pub(crate) fn from_parts(
        dims: usize,
        arrays: Vec<(String, Vec<usize>, Vec<f64>)>,
    ) -> std::result::Result<Self, String> {
        let take = |name: &str| {
            arrays
                .iter()
                .find(|(n, ..)| n == name)
                .map(|(_, shape, v)| (shape.clone(), v.clone()))
                .ok_or_else(|| format!("no `{name}` array"))
        };
        let (ms, mean) = take("mean")?;
        let (cs, comps) = take("components")?;
        let (es, explained_variance) = take("explained_variance")?;
        let (ts, total) = take("total_variance")?;
        let d = match ms[..] {
            [d] if d > 0 => d,
            _ => return Err(format!("`mean` has shape {ms:?}, expected [features]")),
        };
        if cs != [dims, d] {
            return Err(format!(
                "`components` has shape {cs:?}, expected [{dims}, {d}] (dims × features)"
            ));
        }
        if es != [dims] || explained_variance.iter().any(|v| *v < 0.0) {
            return Err(format!(
                "`explained_variance` must be {dims} values >= 0, has shape {es:?}"
            ));
        }
        let total_variance = match (&ts[..], &total[..]) {
            ([1], [t]) if *t >= 0.0 => *t,
            _ => return Err("`total_variance` must be one value >= 0".into()),
        };
        if arrays.len() != 4 {
            let names: Vec<&str> = arrays.iter().map(|(n, ..)| n.as_str()).collect();
            return Err(format!(
                "a PCA holds mean, components, explained_variance and total_variance; this file has {names:?}"
            ));
        }
        Ok(Self {
            mean: Array1::from_vec(mean),
            components: Array2::from_shape_vec((dims, d), comps).map_err(|e| e.to_string())?,
            explained_variance,
            total_variance,
        })
    }

    /// Fraction of the total variance along each kept axis.
    pub fn explained_variance_ratio(&self) -> Vec<f64> {
        self.explained_variance
            .iter()
            .map(|v| v / self.total_variance.max(f64::MIN_POSITIVE))
            .collect()
    }
}
