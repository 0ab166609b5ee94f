//! Reducers: `pca`, and `flatten` on data sets and tensors.

use super::error::{to_rhai, RResult};
use super::keys;
use super::opts::Opts;
use super::{def, Reg, Session};
use crate::data::Dataset;
use crate::reduce::{from_matrix, PcaParams, PcaReducer, Reducer, TsneParams, TsneReducer};
use candle_core::Tensor;
use rhai::{Array, Dynamic, Map};
use std::cell::RefCell;
use std::rc::Rc;

/// A script handle to a reducer. Cloning shares the state.
#[derive(Clone)]
pub(crate) struct ReducerRef(Rc<RefCell<Box<dyn Reducer>>>);

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
    fn new(r: impl Reducer + 'static) -> Self {
        Self(Rc::new(RefCell::new(Box::new(r))))
    }

    /// The library's error, prefixed with the reducer's name.
    fn err(&self, e: crate::Error) -> Box<rhai::EvalAltResult> {
        to_rhai(format!("{}: {e}", self.0.borrow().name()))
    }

    fn fit(&self, s: &Session, x: &Tensor) -> RResult<()> {
        let record = self.0.borrow_mut().fit(x);
        s.record(record.map_err(|e| self.err(e))?);
        Ok(())
    }

    fn transform(&self, s: &Session, x: &Tensor) -> RResult<Tensor> {
        let out = self.0.borrow().transform(x);
        from_matrix(&out.map_err(|e| self.err(e))?, &s.device).map_err(to_rhai)
    }

    fn fit_transform(&self, s: &Session, x: &Tensor) -> RResult<Tensor> {
        let out = self.0.borrow_mut().fit_transform(x);
        let (points, record) = out.map_err(|e| self.err(e))?;
        s.record(record);
        from_matrix(&points, &s.device).map_err(to_rhai)
    }
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<ReducerRef>("Reducer");
    def!(
        reg,
        "pca(opts: Map) -> Reducer",
        "PCA to `dims` dimensions (covariance + symmetric eigensolver; deterministic signs).",
        |m: Map| -> RResult<ReducerRef> {
            let o = Opts::new(&keys::PCA, &m)?;
            let d = PcaParams::default();
            let p = PcaParams {
                dims: o.usize("dims")?.unwrap_or(d.dims),
            };
            let r = PcaReducer::new(p).map_err(|e| to_rhai(format!("pca: {e}")))?;
            Ok(ReducerRef::new(r))
        }
    );
    let s = reg.session.clone();
    def!(reg, "tsne(opts: Map) -> Reducer", "Barnes-Hut t-SNE to 2-D (PCA to 50 first): perplexity (30), iterations (1000), theta (0.5), seed (--seed), dims (2 only).", move |m: Map| -> RResult<ReducerRef> {
        let o = Opts::new(&keys::TSNE, &m)?;
        if let Some(d) = o.usize("dims")? {
            if d != 2 {
                return Err(to_rhai(format!("tsne: only dims 2 is supported, got {d}")));
            }
        }
        let d = TsneParams::default();
        let p = TsneParams {
            perplexity: o.f64("perplexity")?.unwrap_or(d.perplexity),
            iterations: o.usize("iterations")?.unwrap_or(d.iterations),
            theta: o.f64("theta")?.unwrap_or(d.theta),
            seed: o.u64("seed")?.unwrap_or(s.seed),
        };
        let r = TsneReducer::new(p).map_err(|e| to_rhai(format!("tsne: {e}")))?;
        Ok(ReducerRef::new(r))
    });
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
        "Fit, then project the same rows (t-SNE: embed them).",
        move |r: &mut ReducerRef, x: Tensor| -> RResult<Tensor> { r.fit_transform(&s, &flat(&x)?) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Reducer.fit_transform(data: Dataset) -> Tensor",
        "Fit on a data set's images, then project them.",
        move |r: &mut ReducerRef, d: Dataset| -> RResult<Tensor> { r.fit_transform(&s, &flat(d.images())?) }
    );
    def!(
        reg,
        "Reducer.explained_variance_ratio() -> Array",
        "Fraction of the variance along each kept axis (after fit).",
        |r: &mut ReducerRef| -> RResult<Array> {
            let ratio = r.0.borrow().explained_variance_ratio();
            Ok(ratio.map_err(|e| r.err(e))?.into_iter().map(Dynamic::from).collect())
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Reducer.save(path: String)",
        "Write the reducer as safetensors, atomically, with a .meta.json sidecar: PCA's mean, axes and variances (f64) and dims; t-SNE's parameters (it keeps no fitted state). out/… follows --out.",
        move |r: &mut ReducerRef, p: &str| -> RResult<()> {
            let bytes = crate::reduce::reducer_bytes(r.0.borrow().as_ref()).map_err(|e| r.err(e))?;
            s.record(serde_json::json!({ "op": "reducer.save", "reducer": r.0.borrow().name(), "path": p }));
            super::io::write_with_sidecar(&s, p, &bytes)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "load_reducer(path: String) -> Reducer",
        "A reducer saved by Reducer.save: a fitted PCA projects new points exactly as before saving; every field is checked, the error names it.",
        move |p: &str| -> RResult<ReducerRef> {
            let r = crate::reduce::load_reducer(&s.resolve_out(p)).map_err(to_rhai)?;
            Ok(ReducerRef(Rc::new(RefCell::new(r))))
        }
    );
    def!(
        reg,
        "Reducer.to_string() -> String",
        "The reducer, and its explained variance once fitted.",
        |r: &mut ReducerRef| r.0.borrow().to_string()
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
