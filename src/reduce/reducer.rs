//! The [`Reducer`] trait: a reduction fitted on samples, then projecting them; PCA and t-SNE
//! implement it. Adding a reducer is a file in `src/reduce/` implementing [`Reducer`], and its
//! binding in `src/script/reduce.rs`.

use super::{rows_f32, to_matrix, tsne, Pca, PcaParams, TsneParams};
use crate::error::{Error, Result};
use candle_core::Tensor;
use ndarray::Array2;
use std::fmt;
use std::path::Path;

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

    /// What a saved file holds: the parameters, and the fitted arrays by name (none before fit).
    fn state(&self) -> (serde_json::Value, Vec<Array>);
}

/// A fitted array of a reducer: its name in the file, its shape and its values (row-major).
pub struct Array {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

const REDUCER_KEY: &str = "advlab.reducer";
const PARAMS_KEY: &str = "advlab.params";

/// The bytes of a saved reducer: safetensors of its arrays (f64), with its name and parameters
/// in the metadata.
pub fn reducer_bytes(r: &dyn Reducer) -> Result<Vec<u8>> {
    let (params, arrays) = r.state();
    let bytes: Vec<Vec<u8>> = arrays
        .iter()
        .map(|a| a.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = arrays
        .iter()
        .zip(&bytes)
        .map(|(a, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F64, a.shape.clone(), b)
                .map(|v| (a.name, v))
                .map_err(|e| Error::Invalid(format!("{}: {e}", a.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = std::collections::HashMap::from([
        (REDUCER_KEY.to_string(), r.name().to_string()),
        (PARAMS_KEY.to_string(), params.to_string()),
    ]);
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::Invalid(e.to_string()))
}

/// Load a reducer saved by [`reducer_bytes`], checking every field; the error names the file
/// and the field.
pub fn load_reducer(path: &Path) -> Result<Box<dyn Reducer>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |why: String| Error::Data(format!("{}: not a reducer saved by advlab ({why})", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let info = meta.metadata().clone().unwrap_or_default();
    let name = info
        .get(REDUCER_KEY)
        .ok_or_else(|| bad(format!("no {REDUCER_KEY} metadata")))?;
    let params: serde_json::Value = info
        .get(PARAMS_KEY)
        .ok_or_else(|| bad(format!("no {PARAMS_KEY} metadata")))
        .and_then(|p| serde_json::from_str(p).map_err(|e| bad(format!("{PARAMS_KEY}: {e}"))))?;
    let mut arrays = Vec::new();
    for (field, view) in file.tensors() {
        if view.dtype() != safetensors::Dtype::F64 {
            return Err(bad(format!("{field} is {:?}, expected F64", view.dtype())));
        }
        let values: Vec<f64> = view
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(bad(format!("{field} holds {v}")));
        }
        arrays.push((field, view.shape().to_vec(), values));
    }
    let field = |key: &str| {
        params
            .get(key)
            .ok_or_else(|| bad(format!("{PARAMS_KEY} has no `{key}`")))
    };
    let uint = |key: &str| {
        field(key)?
            .as_u64()
            .ok_or_else(|| bad(format!("{PARAMS_KEY}: `{key}` must be a whole number >= 0")))
    };
    let float = |key: &str| {
        field(key)?
            .as_f64()
            .ok_or_else(|| bad(format!("{PARAMS_KEY}: `{key}` must be a number")))
    };
    match name.as_str() {
        "pca" => {
            let params = PcaParams {
                dims: uint("dims")? as usize,
            };
            let mut r = PcaReducer::new(params).map_err(|e| bad(format!("{PARAMS_KEY}: {e}")))?;
            if !arrays.is_empty() {
                let pca = Pca::from_parts(r.params.dims, arrays).map_err(bad)?;
                r.fitted = Some(pca);
            }
            Ok(Box::new(r))
        }
        "tsne" => {
            if let Some((field, ..)) = arrays.first() {
                return Err(bad(format!("a t-SNE file holds no arrays, this one has {field}")));
            }
            let p = TsneParams {
                perplexity: float("perplexity")?,
                iterations: uint("iterations")? as usize,
                theta: float("theta")?,
                seed: uint("seed")?,
            };
            Ok(Box::new(
                TsneReducer::new(p).map_err(|e| bad(format!("{PARAMS_KEY}: {e}")))?,
            ))
        }
        other => Err(bad(format!("{REDUCER_KEY} is `{other}`, expected pca or tsne"))),
    }
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

    fn state(&self) -> (serde_json::Value, Vec<Array>) {
        let params = serde_json::json!({ "dims": self.params.dims });
        (params, self.fitted.as_ref().map(Pca::parts).unwrap_or_default())
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

    fn state(&self) -> (serde_json::Value, Vec<Array>) {
        let p = &self.params;
        let params = serde_json::json!({ "perplexity": p.perplexity, "iterations": p.iterations, "theta": p.theta, "seed": p.seed });
        (params, Vec::new())
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
