//! Dimensionality reduction of samples to points: flattening and PCA. Reducers take an
//! `(N, …)` tensor and return an `(N, d)` f32 tensor.
//!
//! PCA is ours (covariance with the `gemm` crate, then a symmetric eigensolver, as
//! scikit-learn's `covariance_eigh`): linfa-reduction's truncated SVD did not finish in 500 s
//! on 60k×784 (measured).

mod tsne;

pub use tsne::{tsne, TsneParams};

use crate::error::{Error, ParamError, Result};
use candle_core::{DType, Device, Tensor};
use linfa_linalg::eigh::EighInto;
use ndarray::{Array1, Array2, Axis};

/// An `(N, …)` tensor as an `(N, D)` f64 matrix, checking that every value is finite.
pub fn to_matrix(t: &Tensor) -> Result<Array2<f64>> {
    let n = t.dims().first().copied().unwrap_or(0);
    let flat = t
        .flatten_from(1.min(t.rank().saturating_sub(1)))?
        .to_dtype(DType::F64)?;
    let d = if t.rank() <= 1 { 1 } else { flat.dim(1)? };
    let v = flat.flatten_all()?.to_vec1::<f64>()?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::Invalid(format!(
            "the points contain a non-finite value ({}) at row {}, column {}",
            v[i],
            i / d.max(1),
            i % d.max(1)
        )));
    }
    Array2::from_shape_vec((n, d), v).map_err(|e| Error::Shape(e.to_string()))
}

/// An `(N, d)` matrix as an f32 tensor.
pub fn from_matrix(a: &Array2<f64>, device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = a.iter().map(|&x| x as f32).collect();
    Ok(Tensor::from_vec(v, a.dim(), device)?)
}

/// Unchecked PCA parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct PcaParams {
    pub dims: usize,
}

impl PcaParams {
    /// Check against the input dimension: `1 <= dims <= features`.
    pub fn check(&self, features: usize) -> std::result::Result<usize, ParamError> {
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
        let dims = params.check(d)?;
        if n < 2 {
            return Err(Error::Invalid(format!("pca needs at least 2 points, got {n}")));
        }
        let mean = x
            .mean_axis(Axis(0))
            .ok_or_else(|| Error::Invalid("pca: no points".into()))?;
        let centered = x - &mean;
        let xs = centered.as_standard_layout();
        let data = xs
            .as_slice()
            .ok_or_else(|| Error::Invalid("pca: non-contiguous data".into()))?;
        // covariance = Xcᵀ Xc / (n − 1), with the parallel GEMM
        let mut cov = vec![0f64; d * d];
        crate::nn::ops::gemm_strided(
            (d, d, n),
            &mut cov,
            (d, 1),
            false,
            data,
            (1, d),
            data,
            (d, 1),
            true,
            1.0f64,
        );
        let cov = Array2::from_shape_vec((d, d), cov).map_err(|e| Error::Shape(e.to_string()))? / (n as f64 - 1.0);
        let total_variance = cov.diag().sum();
        let (vals, vecs) = cov
            .eigh_into()
            .map_err(|e| Error::Invalid(format!("pca: eigendecomposition failed: {e}")))?;
        let mut order: Vec<usize> = (0..d).collect();
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

    /// The principal axes, one per row.
    pub fn components(&self) -> &Array2<f64> {
        &self.components
    }

    /// Variance along each kept axis.
    pub fn explained_variance(&self) -> &[f64] {
        &self.explained_variance
    }

    /// Fraction of the total variance along each kept axis.
    pub fn explained_variance_ratio(&self) -> Vec<f64> {
        self.explained_variance
            .iter()
            .map(|v| v / self.total_variance.max(f64::MIN_POSITIVE))
            .collect()
    }
}
