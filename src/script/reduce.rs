//! Reducers: `pca`, and `flatten` on data sets and tensors.

use super::error::{to_rhai, RResult};
use super::opts::Opts;
use super::{def, Reg, Session};
use crate::data::Dataset;
use crate::reduce::{from_matrix, rows_f32, to_matrix, tsne, Pca, PcaParams, TsneParams};
use candle_core::Tensor;
use rhai::{Array, Dynamic, Map};
use std::cell::RefCell;
use std::rc::Rc;

/// A reducer and, once fitted, its state.
enum Reducer {
    Pca(PcaParams, Option<Pca>),
    Tsne(TsneParams),
}

/// A script handle to a reducer. Cloning shares the state.
#[derive(Clone)]
pub(crate) struct ReducerRef(Rc<RefCell<Reducer>>);

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
        let mut state = self.0.borrow_mut();
        match &mut *state {
            Reducer::Pca(params, fitted) => {
                let (data, n, d) = rows_f32(x).map_err(to_rhai)?;
                let pca = Pca::fit_rows(data, n, d, params).map_err(|e| to_rhai(format!("pca: {e}")))?;
                s.record(serde_json::json!({ "op": "pca", "dims": params.dims, "points": n,
                    "explained_variance_ratio": pca.explained_variance_ratio() }));
                *fitted = Some(pca);
                Ok(())
            }
            Reducer::Tsne(_) => Err(to_rhai("tsne: t-SNE embeds the points it is given; use fit_transform")),
        }
    }

    fn transform(&self, s: &Session, x: &Tensor) -> RResult<Tensor> {
        let state = self.0.borrow();
        match &*state {
            Reducer::Pca(_, fitted) => {
                let pca = fitted
                    .as_ref()
                    .ok_or_else(|| to_rhai("pca: call fit (or fit_transform) before transform"))?;
                let (data, n, d) = rows_f32(x).map_err(to_rhai)?;
                let out = pca
                    .transform_rows(&data, n, d)
                    .map_err(|e| to_rhai(format!("pca: {e}")))?;
                from_matrix(&out, &s.device).map_err(to_rhai)
            }
            Reducer::Tsne(_) => Err(to_rhai("tsne: t-SNE cannot place new points; use fit_transform")),
        }
    }

    fn fit_transform(&self, s: &Session, x: &Tensor) -> RResult<Tensor> {
        let tsne_params = match &*self.0.borrow() {
            Reducer::Tsne(p) => Some(p.clone()),
            Reducer::Pca(..) => None,
        };
        let Some(params) = tsne_params else {
            self.fit(s, x)?;
            return self.transform(s, x);
        };
        let m = to_matrix(x).map_err(to_rhai)?;
        let pb = crate::progress::bar(params.iterations as u64, "tsne".into());
        let out = tsne(&m, &params, |_| pb.inc(1)).map_err(|e| to_rhai(format!("tsne: {e}")))?;
        pb.finish_and_clear();
        s.record(
            serde_json::json!({ "op": "tsne", "perplexity": params.perplexity, "iterations": params.iterations,
            "theta": params.theta, "seed": params.seed, "points": m.nrows() }),
        );
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
            Ok(ReducerRef(Rc::new(RefCell::new(Reducer::Pca(
                PcaParams { dims },
                None,
            )))))
        }
    );
    let s = reg.session.clone();
    def!(reg, "tsne(opts: Map) -> Reducer", "Barnes-Hut t-SNE to 2-D (PCA to 50 first): perplexity (30), iterations (1000), theta (0.5), seed (--seed), dims (2 only).", move |m: Map| -> RResult<ReducerRef> {
        let o = Opts::new("tsne", &m, &["dims", "perplexity", "iterations", "theta", "seed"])?;
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
        p.check(usize::MAX).map_err(|e| to_rhai(format!("tsne: {e}")))?;
        Ok(ReducerRef(Rc::new(RefCell::new(Reducer::Tsne(p)))))
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
            match &*r.0.borrow() {
                Reducer::Pca(_, Some(pca)) => {
                    Ok(pca.explained_variance_ratio().into_iter().map(Dynamic::from).collect())
                }
                Reducer::Pca(_, None) => Err(to_rhai("pca: call fit first")),
                Reducer::Tsne(_) => Err(to_rhai("tsne: t-SNE has no explained variance")),
            }
        }
    );
    def!(
        reg,
        "Reducer.to_string() -> String",
        "The reducer, and its explained variance once fitted.",
        |r: &mut ReducerRef| {
            match &*r.0.borrow() {
                Reducer::Pca(p, None) => format!("PCA(dims={}) (not fitted)", p.dims),
                Reducer::Pca(p, Some(f)) => {
                    format!(
                        "PCA(dims={}), explained variance ratio {:?}",
                        p.dims,
                        f.explained_variance_ratio()
                    )
                }
                Reducer::Tsne(p) => format!(
                    "TSNE(perplexity={}, iterations={}, theta={}, seed={})",
                    p.perplexity, p.iterations, p.theta, p.seed
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
