//! The [`Reducer`] trait: a reduction fitted on samples, then projecting them; PCA and t-SNE
//! implement it. Adding a reducer is a file in `src/reduce/` implementing [`Reducer`], and its
//! binding in `src/script/reduce.rs`.

use super::{rows_f32, to_matrix, tsne, Pca, PcaParams, TsneParams};
use crate::error::{Error, Result};
use candle_core::Tensor;
use ndarray::Array2;
use std::fmt;

/// A dimensionality reduction of the rows of an `(N, D)` tensor.
pub trait Reducer: fmt::Debug + fmt::Display {
    /// The script name.
    fn name(&self) -> &'static str;

    /// Fit on the rows of `x`; returns what the fit found, for provenance.
    fn fit(&mut self, x: &Tensor) -> Result<serde_json::Value>;

    /// Project the rows of `x` (after [`Reducer::fit`]).
    fn transform(&self, x: &Tensor) -> Result<Array2<f64>>;

    /// Fit, then project the same rows; returns the points and what the fit found.
    fn fit_transform(&mut self, x: &Tensor) -> Result<(Array2<f64>, serde_json::Value)> {
        let record = self.fit(x)?;
        Ok((self.transform(x)?, record))
    }

    /// The share of the variance along each kept axis (after fit), for reducers with one.
    fn explained_variance_ratio(&self) -> Result<Vec<f64>>;
}

/// PCA as a reducer: its parameters and, once fitted, the axes.
#[derive(Clone, Debug)]
pub struct PcaReducer {
    params: PcaParams,
    fitted: Option<Pca>,
}

impl PcaReducer {
    /// An unfitted PCA, its parameters checked.
    pub fn new(params: PcaParams) -> std::result::Result<Self, crate::ParamError> {
        params.check()?;
        Ok(Self { params, fitted: None })
    }
}

impl Reducer for PcaReducer {
    fn name(&self) -> &'static str {
        "pca"
    }

    fn fit(&mut self, x: &Tensor) -> Result<serde_json::Value> {
        let (data, n, d) = rows_f32(x)?;
        let pca = Pca::fit_rows(data, n, d, &self.params)?;
        let record = serde_json::json!({ "op": "pca", "dims": self.params.dims, "points": n,
            "explained_variance_ratio": pca.explained_variance_ratio() });
        self.fitted = Some(pca);
        Ok(record)
    }

    fn transform(&self, x: &Tensor) -> Result<Array2<f64>> {
        let pca = self
            .fitted
            .as_ref()
            .ok_or_else(|| Error::Invalid("call fit (or fit_transform) before transform".into()))?;
        let (data, n, d) = rows_f32(x)?;
        pca.transform_rows(&data, n, d)
    }

    fn explained_variance_ratio(&self) -> Result<Vec<f64>> {
        match &self.fitted {
            Some(p) => Ok(p.explained_variance_ratio()),
            None => Err(Error::Invalid("call fit first".into())),
        }
    }
}

impl fmt::Display for PcaReducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fitted {
            None => write!(f, "PCA(dims={}) (not fitted)", self.params.dims),
            Some(p) => write!(
                f,
                "PCA(dims={}), explained variance ratio {:?}",
                self.params.dims,
                p.explained_variance_ratio()
            ),
        }
    }
}

/// t-SNE as a reducer: it embeds the points it is given and cannot place new ones.
#[derive(Clone, Debug)]
pub struct TsneReducer {
    params: TsneParams,
}

impl TsneReducer {
    /// t-SNE with these parameters, checked (the perplexity again against the points).
    pub fn new(params: TsneParams) -> std::result::Result<Self, crate::ParamError> {
        params.check()?;
        Ok(Self { params })
    }
}

impl Reducer for TsneReducer {
    fn name(&self) -> &'static str {
        "tsne"
    }

    fn fit(&mut self, _x: &Tensor) -> Result<serde_json::Value> {
        Err(Error::Invalid(
            "t-SNE embeds the points it is given; use fit_transform".into(),
        ))
    }

    fn transform(&self, _x: &Tensor) -> Result<Array2<f64>> {
        Err(Error::Invalid(
            "t-SNE cannot place new points; use fit_transform".into(),
        ))
    }

    fn fit_transform(&mut self, x: &Tensor) -> Result<(Array2<f64>, serde_json::Value)> {
        let p = &self.params;
        let m = to_matrix(x)?;
        let pb = crate::progress::bar(p.iterations as u64, "tsne".into());
        let out = tsne(&m, p, |_| pb.inc(1));
        pb.finish_and_clear();
        let record = serde_json::json!({ "op": "tsne", "perplexity": p.perplexity, "iterations": p.iterations,
            "theta": p.theta, "seed": p.seed, "points": m.nrows() });
        Ok((out?, record))
    }

    fn explained_variance_ratio(&self) -> Result<Vec<f64>> {
        Err(Error::Invalid("t-SNE has no explained variance".into()))
    }
}

impl fmt::Display for TsneReducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        write!(
            f,
            "TSNE(perplexity={}, iterations={}, theta={}, seed={})",
            p.perplexity, p.iterations, p.theta, p.seed
        )
    }
}
