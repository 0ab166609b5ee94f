//! Models: `mlp`, `cnn`, `load_model`, and `fit`, `accuracy`, `predict`, `clone`, `save`.

use super::error::{to_rhai, RResult};
use super::opts::{usize_array, Opts};
use super::{def, def_get, Reg, Session};
use crate::data::Dataset;
use crate::nn::{load_model, save_model, Arch, Model};
use crate::train::{fit, FitParams};
use candle_core::Tensor;
use rhai::{Array, Dynamic, Map, INT};
use std::rc::Rc;

fn build(s: &Session, arch: Arch, opts: Option<&Map>, func: &'static str) -> RResult<Model> {
    let seed = match opts {
        Some(m) => Opts::new(func, m, &["seed"])?.u64("seed")?.unwrap_or(s.seed),
        None => s.seed,
    };
    s.record(serde_json::json!({ "op": "init", "arch": arch, "seed": seed }));
    Model::new(arch, &s.device, seed).map_err(to_rhai)
}

fn mlp_arch(layers: &Array) -> RResult<Arch> {
    Arch::mlp(usize_array("mlp: layers", layers)?).map_err(to_rhai)
}

fn fit_with(s: &Session, model: &Model, data: &Dataset, opts: &Map) -> RResult<Map> {
    let o = Opts::new(
        "fit",
        opts,
        &["epochs", "batch_size", "lr", "optimizer", "momentum", "seed"],
    )?;
    let d = FitParams::default();
    let p = FitParams {
        epochs: o.usize("epochs")?.unwrap_or(d.epochs),
        batch_size: o.usize("batch_size")?.unwrap_or(d.batch_size),
        lr: o.f64("lr")?.unwrap_or(d.lr),
        optimizer: o.string("optimizer")?.unwrap_or(d.optimizer),
        momentum: o.f64("momentum")?.unwrap_or(d.momentum),
        seed: o.u64("seed")?.unwrap_or(s.seed),
    }
    .check()
    .map_err(to_rhai)?;
    let history = fit(model, data, &p).map_err(to_rhai)?;
    s.record(serde_json::json!({
        "op": "fit", "model": model.arch(), "data": data.name(), "samples": data.len(), "params": p,
        "final_loss": history.last().map(|h| h.loss),
    }));
    let column =
        |f: fn(&crate::train::EpochStats) -> f64| history.iter().map(|h| Dynamic::from(f(h))).collect::<Array>();
    let mut out = Map::new();
    out.insert("loss".into(), column(|h| h.loss).into());
    out.insert("accuracy".into(), column(|h| h.accuracy).into());
    out.insert("seconds".into(), column(|h| h.seconds).into());
    Ok(out)
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<Model>("Model");
    let s = reg.session.clone();
    def!(
        reg,
        "mlp(layers: Array) -> Model",
        "A multi-layer perceptron with ReLU between layers, e.g. mlp([784, 256, 256, 10]); weights seeded by --seed.",
        move |l: Array| -> RResult<Model> { build(&s, mlp_arch(&l)?, None, "mlp") }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "mlp(layers: Array, opts: Map) -> Model",
        "An MLP with options: seed (weight initialisation).",
        move |l: Array, m: Map| -> RResult<Model> { build(&s, mlp_arch(&l)?, Some(&m), "mlp") }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "cnn() -> Model",
        "The small CNN conv32-pool-conv64-pool-fc128-fc10 for 1×28×28 images.",
        move || build(&s, Arch::cnn(), None, "cnn")
    );
    let s = reg.session.clone();
    def!(
        reg,
        "cnn(opts: Map) -> Model",
        "The small CNN with options: seed (weight initialisation).",
        move |m: Map| build(&s, Arch::cnn(), Some(&m), "cnn")
    );
    let s = reg.session.clone();
    def!(
        reg,
        "load_model(path: String) -> Model",
        "A model saved by Model.save (the architecture is in the file); out/… paths follow --out.",
        move |p: &str| -> RResult<Model> { load_model(&s.resolve_out(p), &s.device).map_err(to_rhai) }
    );

    let s = reg.session.clone();
    def!(reg, "Model.fit(data: Dataset) -> Map", "Train in place with the defaults (1 epoch, batch 128, Adam, lr 0.001); returns loss, accuracy and seconds per epoch.", move |m: &mut Model, d: Dataset| {
        fit_with(&s, m, &d, &Map::new())
    });
    let s = reg.session.clone();
    def!(reg, "Model.fit(data: Dataset, opts: Map) -> Map", "Train in place; options: epochs, batch_size, lr, optimizer (\"adam\" | \"sgd\"), momentum (sgd), seed (shuffling).", move |m: &mut Model, d: Dataset, o: Map| {
        fit_with(&s, m, &d, &o)
    });
    def!(
        reg,
        "Model.accuracy(data: Dataset) -> float",
        "Fraction of samples classified as their true label.",
        |m: &mut Model, d: Dataset| { crate::eval::accuracy(m, &d).map_err(to_rhai) }
    );
    def!(
        reg,
        "Model.predict(data: Dataset) -> Tensor",
        "The predicted class of every sample, an (N,) tensor.",
        |m: &mut Model, d: Dataset| -> RResult<Tensor> { crate::eval::predict(m, &d).map_err(to_rhai) }
    );
    def!(
        reg,
        "Model.clone() -> Model",
        "An independent copy (assignment shares the weights; clone does not).",
        |m: &mut Model| m.deep_clone().map_err(to_rhai)
    );
    let s: Rc<Session> = reg.session.clone();
    def!(reg, "Model.save(path: String)", "Write the weights as safetensors (PyTorch nn.Sequential names), with the architecture and provenance in the metadata; a defended model is refused (save model.network()).", move |m: &mut Model, p: &str| -> RResult<()> {
        let path = s.resolve_out(p);
        let prov = serde_json::to_value(&*s.provenance.borrow()).map_err(to_rhai)?;
        save_model(m, &path, &prov).map_err(to_rhai)
    });
    def!(
        reg,
        "Model.param_count() -> int",
        "Number of scalar parameters.",
        |m: &mut Model| m.param_count() as INT
    );
    def_get!(
        reg,
        "Model.arch",
        "The architecture, e.g. mlp([784, 256, 10]).",
        |m: &mut Model| m.arch().to_string()
    );
    def!(
        reg,
        "Model.torch_module() -> String",
        "The equivalent PyTorch nn.Sequential, whose state_dict matches the saved file.",
        |m: &mut Model| m.arch().torch_module()
    );
    def!(
        reg,
        "Model.to_string() -> String",
        "Architecture, parameter count and device.",
        |m: &mut Model| m.to_string()
    );
}
