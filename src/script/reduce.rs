//! Reducers: `pca`, and `flatten` on data sets and tensors.

use super::error::{to_rhai, RResult};
use super::opts::Opts;
use super::{def, Reg, Session};
use crate::data::Dataset;
use crate::reduce::{from_matrix, to_matrix, Pca, PcaParams};
use candle_core::Tensor;
use rhai::{Array, Dynamic, Map};
use std::cell::RefCell;
use std::rc::Rc;

/// A reducer and, once fitted, its state. Cloning shares the state (a handle).
#[derive(Clone)]
pub(crate) struct ReducerRef(Rc<RefCell<(PcaParams, Option<Pca>)>>);

fn flat(t: &Tensor) -> RResult<Tensor> {
    if t.rank() < 2 {
        return Err(to_rhai(format!(
            "expected samples along the first axis, got a tensor of shape {:?}",
            t.dims()
        )));
    }
    t.flatten_from(1).map_err(to_rhai)
}

impl ReducerRef {
    fn fit(&self, s: &Session, x: &Tensor) -> RResult<()> {
        let m = to_matrix(x).map_err(to_rhai)?;
        let params = self.0.borrow().0.clone();
        let pca = Pca::fit(&m, &params).map_err(|e| to_rhai(format!("pca: {e}")))?;
        s.record(
            serde_json::json!({ "op": "pca", "dims": params.dims, "points": m.nrows(),
            "explained_variance_ratio": pca.explained_variance_ratio() }),
        );
        self.0.borrow_mut().1 = Some(pca);
        Ok(())
    }

    fn transform(&self, s: &Session, x: &Tensor) -> RResult<Tensor> {
        let state = self.0.borrow();
        let pca = state
            .1
            .as_ref()
            .ok_or_else(|| to_rhai("pca: call fit (or fit_transform) before transform"))?;
        let out = pca
            .transform(&to_matrix(x).map_err(to_rhai)?)
            .map_err(|e| to_rhai(format!("pca: {e}")))?;
        from_matrix(&out, &s.device).map_err(to_rhai)
    }
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<ReducerRef>("Reducer");
    def!(
        reg,
        "pca(opts: Map) -> Reducer",
        "PCA to `dims` dimensions (covariance + symmetric eigensolver; deterministic signs).",
        |m: Map| -> RResult<ReducerRef> {
            let o = Opts::new("pca", &m, &["dims"])?;
            let dims = o.usize("dims")?.unwrap_or(2);
            if dims == 0 {
                return Err(to_rhai("pca: dims must be at least 1"));
            }
            Ok(ReducerRef(Rc::new(RefCell::new((PcaParams { dims }, None)))))
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Reducer.fit(x: Tensor) -> Reducer",
        "Fit on the rows of an (N, …) tensor; returns the reducer.",
        move |r: &mut ReducerRef, x: Tensor| -> RResult<ReducerRef> {
            r.fit(&s, &flat(&x)?)?;
            Ok(r.clone())
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Reducer.fit(data: Dataset) -> Reducer",
        "Fit on the flattened images of a data set.",
        move |r: &mut ReducerRef, d: Dataset| -> RResult<ReducerRef> {
            r.fit(&s, &flat(d.images())?)?;
            Ok(r.clone())
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Reducer.transform(x: Tensor) -> Tensor",
        "Project the rows of an (N, …) tensor: an (N, dims) tensor.",
        move |r: &mut ReducerRef, x: Tensor| { r.transform(&s, &flat(&x)?) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Reducer.transform(data: Dataset) -> Tensor",
        "Project the flattened images of a data set.",
        move |r: &mut ReducerRef, d: Dataset| { r.transform(&s, &flat(d.images())?) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Reducer.fit_transform(x: Tensor) -> Tensor",
        "Fit, then project the same rows.",
        move |r: &mut ReducerRef, x: Tensor| -> RResult<Tensor> {
            let x = flat(&x)?;
            r.fit(&s, &x)?;
            r.transform(&s, &x)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Reducer.fit_transform(data: Dataset) -> Tensor",
        "Fit on a data set's images, then project them.",
        move |r: &mut ReducerRef, d: Dataset| -> RResult<Tensor> {
            let x = flat(d.images())?;
            r.fit(&s, &x)?;
            r.transform(&s, &x)
        }
    );
    def!(
        reg,
        "Reducer.explained_variance_ratio() -> Array",
        "Fraction of the variance along each kept axis (after fit).",
        |r: &mut ReducerRef| -> RResult<Array> {
            let state = r.0.borrow();
            let pca = state.1.as_ref().ok_or_else(|| to_rhai("pca: call fit first"))?;
            Ok(pca.explained_variance_ratio().into_iter().map(Dynamic::from).collect())
        }
    );
    def!(
        reg,
        "Reducer.to_string() -> String",
        "The reducer, and its explained variance once fitted.",
        |r: &mut ReducerRef| {
            let state = r.0.borrow();
            match &state.1 {
                None => format!("PCA(dims={}) (not fitted)", state.0.dims),
                Some(p) => format!(
                    "PCA(dims={}), explained variance ratio {:?}",
                    state.0.dims,
                    p.explained_variance_ratio()
                ),
            }
        }
    );
    def!(
        reg,
        "Dataset.flatten() -> Tensor",
        "The images as an (N, C·H·W) tensor: the \"no reduction\" points.",
        |d: &mut Dataset| flat(d.images())
    );
    def!(
        reg,
        "Tensor.flatten() -> Tensor",
        "An (N, …) tensor as (N, D).",
        |t: &mut Tensor| flat(t)
    );
}
