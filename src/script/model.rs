//! Models: `mlp`, `cnn`, `resnet`, `load_model`, and `fit`, `accuracy`, `predict`, `clone`,
//! `save`.

use super::error::{to_rhai, RResult};
use super::keys;
use super::opts::{usize_array, Opts};
use super::{def, def_get, Reg, Session};
use crate::data::{Augment, Dataset};
use crate::nn::{
    load_model, load_weights, save_model, Arch, CnnParams, IbpPrior, Lwta, Model, NoiseSite, ResnetParams,
};
use crate::train::{fit_with, EpochStats, FitParams, SelectionParams, TrainingPlan};
use candle_core::Tensor;
use rhai::{Array, Dynamic, Map, INT};
use std::rc::Rc;

/// `noise_injection: "weights" | "activations"`, if given.
pub(super) fn noise_site(o: &Opts) -> RResult<Option<NoiseSite>> {
    o.string("noise_injection")?
        .map(|v| NoiseSite::parse(&v))
        .transpose()
        .map_err(to_rhai)
}

/// The seed of an option map (the session's when absent), recorded with the architecture.
pub(super) fn init(s: &Session, arch: Arch, seed: Option<u64>) -> RResult<Model> {
    let seed = seed.unwrap_or(s.seed);
    s.record(serde_json::json!({ "op": "init", "arch": arch, "seed": seed }));
    Model::new(arch, &s.device, seed).map_err(to_rhai)
}

/// `input: [C, H, W]`, or `default`.
fn input_shape(o: &Opts, default: [usize; 3]) -> RResult<[usize; 3]> {
    Ok(o.chw("input")?.unwrap_or(default))
}

fn cnn_opts(s: &Session, m: &Map) -> RResult<Model> {
    let o = Opts::new(&keys::CNN, m)?;
    let d = CnnParams::default();
    let arch = Arch::cnn_for(input_shape(&o, d.input)?, o.usize("classes")?.unwrap_or(d.classes)).map_err(to_rhai)?;
    init(s, arch.with_noise_injection(noise_site(&o)?), o.u64("seed")?)
}

fn resnet_opts(s: &Session, m: &Map) -> RResult<Model> {
    let o = Opts::new(&keys::RESNET, m)?;
    let d = ResnetParams::default();
    let blocks = match o.get("blocks") {
        None => d.blocks,
        Some(v) => {
            let arr = v.clone().into_array().map_err(|_| {
                to_rhai(format!(
                    "resnet: option `blocks` must be an array such as [1, 1, 1], got {}",
                    v.type_name()
                ))
            })?;
            usize_array("resnet: blocks", &arr)?
        }
    };
    let arch = Arch::resnet(
        input_shape(&o, d.input)?,
        o.usize("width")?.unwrap_or(d.width),
        blocks,
        o.usize("classes")?.unwrap_or(d.classes),
    )
    .map_err(to_rhai)?;
    init(s, arch.with_noise_injection(noise_site(&o)?), o.u64("seed")?)
}

/// The competition options of an LWTA model.
fn lwta_opts(o: &Opts) -> RResult<Lwta> {
    let d = Lwta::default();
    Ok(Lwta {
        units_per_block: o.usize("units_per_block")?.unwrap_or(d.units_per_block),
        temperature: o.f64("temperature")?.unwrap_or(d.temperature),
        passes: o.usize("passes")?.unwrap_or(d.passes),
        ibp: ibp_opts(o)?,
    })
}

/// The IBP prior of an LWTA model: `ibp: true`, or either of its options, turns it on.
fn ibp_opts(o: &Opts) -> RResult<Option<IbpPrior>> {
    let d = IbpPrior::default();
    let (alpha, temperature) = (o.f64("ibp_alpha")?, o.f64("ibp_temperature")?);
    let on = o.bool("ibp")?.unwrap_or(alpha.is_some() || temperature.is_some());
    Ok(on.then(|| IbpPrior {
        alpha: alpha.unwrap_or(d.alpha),
        temperature: temperature.unwrap_or(d.temperature),
    }))
}

fn lwta_mlp_opts(s: &Session, m: &Map) -> RResult<Model> {
    let o = Opts::new(&keys::LWTA_MLP, m)?;
    let layers = match o.get("layers") {
        Some(v) => {
            let arr = v.clone().into_array().map_err(|_| {
                to_rhai(format!(
                    "lwta_mlp: option `layers` must be an array such as [784, 256, 10], got {}",
                    v.type_name()
                ))
            })?;
            usize_array("lwta_mlp: layers", &arr)?
        }
        None => {
            return Err(to_rhai(
                "lwta_mlp: option `layers` is required, e.g. lwta_mlp(#{ layers: [784, 256, 256, 10] })",
            ))
        }
    };
    init(
        s,
        Arch::lwta_mlp(layers, lwta_opts(&o)?).map_err(to_rhai)?,
        o.u64("seed")?,
    )
}

fn lwta_cnn_opts(s: &Session, m: &Map) -> RResult<Model> {
    let o = Opts::new(&keys::LWTA_CNN, m)?;
    let d = CnnParams::default();
    let arch = Arch::lwta_cnn(
        input_shape(&o, d.input)?,
        o.usize("classes")?.unwrap_or(d.classes),
        lwta_opts(&o)?,
    )
    .map_err(to_rhai)?;
    init(s, arch, o.u64("seed")?)
}

fn mlp_arch(layers: &Array) -> RResult<Arch> {
    Arch::mlp(usize_array("mlp: layers", layers)?).map_err(to_rhai)
}

/// `augment: random_crop(..)` or an array of augmentations.
fn augments(v: &Dynamic) -> RResult<Vec<Augment>> {
    if let Some(a) = v.clone().try_cast::<Augment>() {
        return Ok(vec![a]);
    }
    let arr = v.clone().into_array().map_err(|_| {
        to_rhai(format!(
            "fit: option `augment` must be an augmentation or an array of them, e.g. [random_crop(#{{ padding: 4 }}), horizontal_flip()], got {}",
            v.type_name()
        ))
    })?;
    super::opts::typed(&arr, |i, t| {
        format!("fit: element {i} of `augment` is {t}, not an augmentation")
    })
}

/// `piecewise: #{ epochs: [...], lrs: [...] }` as (epoch, rate) points.
fn piecewise_points(v: &Dynamic) -> RResult<Vec<(f64, f64)>> {
    let bad = || {
        to_rhai("fit: option `piecewise` must be #{ epochs: [0, 15, 30], lrs: [0.0, 0.2, 0.0] }: two arrays of numbers of the same length")
    };
    let m = v.clone().try_cast::<Map>().ok_or_else(bad)?;
    let numbers = |key: &str| -> RResult<Vec<f64>> {
        let arr = m.get(key).and_then(|a| a.clone().into_array().ok()).ok_or_else(bad)?;
        arr.iter().map(|x| super::opts::number(x).ok_or_else(bad)).collect()
    };
    let (e, r) = (numbers("epochs")?, numbers("lrs")?);
    if e.len() != r.len() || m.len() != 2 {
        return Err(bad());
    }
    Ok(e.into_iter().zip(r).collect())
}

/// `eval_every`, `eval_data` and `eval_attack`: model selection on held-out data, if asked.
fn selection(o: &Opts) -> RResult<Option<crate::train::Selection>> {
    let data = match o.get("eval_data") {
        None if o.get("eval_every").is_some() || o.get("eval_attack").is_some() => return Err(to_rhai(
            "fit: eval_every and eval_attack need eval_data, the held-out set to select on (e.g. eval_data: train.skip(50000) with train.take(50000) to train on)",
        )),
        None => return Ok(None),
        Some(v) => v.clone().try_cast::<Dataset>().ok_or_else(|| {
            to_rhai(format!(
                "fit: option `eval_data` must be a Dataset, got {}",
                v.type_name()
            ))
        })?,
    };
    let attack = match o.get("eval_attack") {
        None => None,
        Some(v) => Some(
            v.clone()
                .try_cast::<super::attack::AttackRef>()
                .ok_or_else(|| {
                    to_rhai(format!(
                        "fit: option `eval_attack` must be an attack, e.g. pgd(#{{ eps: 0.3, steps: 10 }}), got {}",
                        v.type_name()
                    ))
                })?
                .0,
        ),
    };
    SelectionParams {
        every: o.usize("eval_every")?.unwrap_or(1),
        data,
        attack,
    }
    .check()
    .map(Some)
    .map_err(to_rhai)
}

fn fit_opts(s: &Session, model: &Model, data: &Dataset, opts: &Map) -> RResult<Map> {
    let o = Opts::new(&keys::FIT, opts)?;
    let d = FitParams::default();
    let milestones = match o.get("milestones") {
        None => d.milestones,
        Some(v) => {
            let arr = v.clone().into_array().map_err(|_| {
                to_rhai(format!(
                    "fit: option `milestones` must be an array of epochs, got {}",
                    v.type_name()
                ))
            })?;
            usize_array("fit: milestones", &arr)?
        }
    };
    let piecewise = match o.get("piecewise") {
        None => d.piecewise,
        Some(v) => piecewise_points(v)?,
    };
    let p = FitParams {
        epochs: o.usize("epochs")?.unwrap_or(d.epochs),
        batch_size: o.usize("batch_size")?.unwrap_or(d.batch_size),
        lr: o.f64("lr")?.unwrap_or(d.lr),
        optimizer: o.string("optimizer")?.unwrap_or(d.optimizer),
        momentum: o.f64("momentum")?.unwrap_or(d.momentum),
        seed: o.u64("seed")?.unwrap_or(s.seed),
        lr_schedule: o.string("lr_schedule")?.unwrap_or(d.lr_schedule),
        nesterov: o.bool("nesterov")?.unwrap_or(d.nesterov),
        weight_decay: o.f64("weight_decay")?.unwrap_or(d.weight_decay),
        milestones,
        gamma: o.f64("gamma")?.unwrap_or(d.gamma),
        piecewise,
        augment: match o.get("augment") {
            None => d.augment,
            Some(v) => augments(v)?,
        },
        craft_mode: o.string("craft_mode")?.unwrap_or(d.craft_mode),
        clip_grad_norm: o.f64("clip_grad_norm")?.or(d.clip_grad_norm),
    }
    .check()
    .map_err(to_rhai)?;
    let defence = match o.get("defence") {
        Some(v) => super::recipes::plan(v)?,
        None => TrainingPlan::none(),
    };
    let defence = defence.with_selection(selection(&o)?);
    let history = fit_with(model, data, &p, &defence).map_err(to_rhai)?;
    let epochs = &history.epochs;
    let mut record = serde_json::json!({
        "op": "fit", "model": model.arch(), "data": data.name(), "samples": data.len(), "params": p,
        "final_loss": epochs.last().map(|h| h.loss),
    });
    if let Some(fields) = record.as_object_mut() {
        if !defence.is_plain() {
            fields.insert("defence".into(), defence.params());
        }
        if let Some(sel) = defence.selection() {
            fields.insert("selection".into(), sel.params());
        }
        if !history.outcome.is_empty() {
            fields.insert("outcome".into(), serde_json::Value::Object(history.outcome.clone()));
        }
    }
    s.record(record);
    let column = |f: &dyn Fn(&EpochStats) -> f64| epochs.iter().map(|h| Dynamic::from(f(h))).collect::<Array>();
    let mut out = Map::new();
    out.insert("loss".into(), column(&|h| h.loss).into());
    out.insert("accuracy".into(), column(&|h| h.accuracy).into());
    out.insert("seconds".into(), column(&|h| h.seconds).into());
    if !defence.is_plain() {
        out.insert("defence".into(), defence.to_string().into());
    }
    {
        let keys: std::collections::BTreeSet<&String> = epochs.iter().flat_map(|h| h.measured.keys()).collect();
        for key in keys {
            let col = column(&|h| h.measured.get(key).copied().unwrap_or(f64::NAN));
            out.insert(key.as_str().into(), col.into());
        }
        for (k, v) in &history.outcome {
            out.insert(k.as_str().into(), rhai::serde::to_dynamic(v)?);
        }
    }
    Ok(out)
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<Model>("Model");
    let s = reg.session.clone();
    def!(
        reg,
        "mlp(layers: Array) -> Model",
        "A multi-layer perceptron with ReLU between layers, e.g. mlp([784, 256, 256, 10]); weights seeded by --seed.",
        move |l: Array| -> RResult<Model> { init(&s, mlp_arch(&l)?, None) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "mlp(layers: Array, opts: Map) -> Model",
        "An MLP with options: noise_injection (\"weights\" | \"activations\": learnable Gaussian noise, He et al. 2019), seed (weights and noise).",
        move |l: Array, m: Map| -> RResult<Model> {
            let o = Opts::new(&keys::MLP, &m)?;
            init(&s, mlp_arch(&l)?.with_noise_injection(noise_site(&o)?), o.u64("seed")?)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "cnn() -> Model",
        "The small CNN conv32-pool-conv64-pool-fc128-fc10 for 1×28×28 images.",
        move || init(&s, Arch::cnn(), None)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "cnn(opts: Map) -> Model",
        "The small CNN with options: input ([1, 28, 28]; e.g. [3, 32, 32] for CIFAR-10), classes (10), noise_injection (\"weights\" | \"activations\"), seed (weights and noise).",
        move |m: Map| cnn_opts(&s, &m)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "resnet() -> Model",
        "A small residual network for 3×32×32 images: stem conv16, stages of [1, 1, 1] basic blocks of widths 16-32-64, global average pooling, fc10 (no batch norm).",
        move || resnet_opts(&s, &Map::new())
    );
    let s = reg.session.clone();
    def!(
        reg,
        "resnet(opts: Map) -> Model",
        "A residual network with options: input ([3, 32, 32]; H and W divisible by 2^(stages-1)), width (16, doubled each stage), blocks ([1, 1, 1]: blocks per stage, 1 to 4 stages), classes (10), noise_injection, seed.",
        move |m: Map| resnet_opts(&s, &m)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "lwta_mlp(opts: Map) -> Model",
        "An MLP with stochastic local winner-takes-all activations (Panousis et al. 2021): layers (required), units_per_block (2), temperature (0.67, training relaxation), passes (1: softmax averaged over this many passes at prediction), ibp (false: an Indian buffet process prior over the connections, trained by the ELBO), ibp_alpha (5), ibp_temperature (0.67), seed.",
        move |m: Map| lwta_mlp_opts(&s, &m)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "lwta_cnn() -> Model",
        "The small CNN with stochastic LWTA activations (blocks of 2 channels, temperature 0.67, 1 pass) for 1×28×28 images.",
        move || lwta_cnn_opts(&s, &Map::new())
    );
    let s = reg.session.clone();
    def!(
        reg,
        "lwta_cnn(opts: Map) -> Model",
        "The LWTA CNN with options: input ([1, 28, 28]), classes (10), units_per_block (2; divides 32), temperature (0.67), passes (1), ibp (false), ibp_alpha (5), ibp_temperature (0.67), seed.",
        move |m: Map| lwta_cnn_opts(&s, &m)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "load_model(path: String) -> Model",
        "A model saved by Model.save (the architecture is in the file; a stochastic model's noise is seeded by --seed); out/… paths follow --out.",
        move |p: &str| -> RResult<Model> {
            let m = load_model(&s.resolve_out(p), &s.device).map_err(to_rhai)?;
            m.reseed(s.seed);
            Ok(m)
        }
    );

    let s = reg.session.clone();
    def!(reg, "Model.fit(data: Dataset) -> Map", "Train in place with the defaults (1 epoch, batch 128, Adam, lr 0.001); returns loss, accuracy and seconds per epoch.", move |m: &mut Model, d: Dataset| {
        fit_opts(&s, m, &d, &Map::new())
    });
    let s = reg.session.clone();
    def!(reg, "Model.fit(data: Dataset, opts: Map) -> Map", "Train in place; options: epochs, batch_size, lr, optimizer (\"adam\" | \"adamw\" | \"sgd\"), momentum (0.9, sgd), nesterov (false), weight_decay (0: coupled for sgd and adam, decoupled for adamw, as PyTorch), seed (shuffling), lr_schedule (\"constant\" | \"cyclic\": 0 → lr at 2/5 of the updates → 0 | \"cosine\": per update | \"multistep\": × gamma (0.1) at each of the milestones epochs | \"piecewise\": piecewise: #{ epochs: [...], lrs: [...] }, linear in between), augment (none: random_crop(..), horizontal_flip() or an array of them, applied to every batch from the seed before a recipe crafts it), defence (a recipe or an array: pgd_training, fast_fgsm_training, trades, mixed_training, cluster_training, label_smoothing), craft_mode (\"eval\": the recipe crafts with running batch-norm statistics and no dropout | \"train\": with the batch's, as Wong et al. and Rice et al.), clip_grad_norm (none: the gradients' total L2 norm is scaled down to this), eval_data (a held-out Dataset: the best epoch's weights are kept and restored at the end), eval_every (1: epochs between evaluations), eval_attack (none: clean accuracy | an attack, e.g. pgd(#{ eps: 0.3, steps: 10 })); returns what the defence and the selection measured too (eval_accuracy, selected_epoch, selected_eval_accuracy).", move |m: &mut Model, d: Dataset, o: Map| {
        fit_opts(&s, m, &d, &o)
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
    reg.engine.register_type_with_name::<Augment>("Augment");
    def!(
        reg,
        "random_crop() -> Augment",
        "For fit's augment option: pad every side with 4 zeros and crop back to the image's size at a random offset (torchvision's RandomCrop(32, padding=4) on CIFAR), drawn from fit's seed.",
        || Augment::RandomCrop {
            padding: Augment::DEFAULT_PADDING
        }
    );
    def!(
        reg,
        "random_crop(opts: Map) -> Augment",
        "A random crop with options: padding (4).",
        |m: Map| -> RResult<Augment> {
            let o = Opts::new(&keys::RANDOM_CROP, &m)?;
            Augment::random_crop(o.usize("padding")?.unwrap_or(Augment::DEFAULT_PADDING))
                .map_err(|e| to_rhai(format!("random_crop: {e}")))
        }
    );
    def!(
        reg,
        "horizontal_flip() -> Augment",
        "For fit's augment option: mirror each image left–right with probability 1/2 (RandomHorizontalFlip()), drawn from fit's seed.",
        || Augment::HorizontalFlip
    );
    def!(
        reg,
        "Augment.to_string() -> String",
        "The augmentation and its parameters.",
        |a: &mut Augment| a.to_string()
    );
    let s = reg.session.clone();
    def!(reg, "Model.load_weights(path: String)", "Fill this model's parameters from a safetensors state_dict with its PyTorch names (e.g. safetensors.torch.save_file(model.state_dict(), path); no advlab metadata needed); every missing, unexpected or mis-shaped tensor is listed in the error, num_batches_tracked is ignored.", move |m: &mut Model, p: &str| -> RResult<()> {
        let path = s.resolve_out(p);
        load_weights(m, &path).map_err(to_rhai)?;
        s.record(serde_json::json!({ "op": "load_weights", "path": path, "model": m.arch() }));
        Ok(())
    });
    let s: Rc<Session> = reg.session.clone();
    def!(reg, "Model.save(path: String)", "Write the weights as safetensors (PyTorch nn.Sequential names), with the architecture and provenance in the metadata; a defended model is refused (save model.network()).", move |m: &mut Model, p: &str| -> RResult<()> {
        let path = s.resolve_out(p);
        let prov = serde_json::to_value(&*s.provenance.borrow()).map_err(to_rhai)?;
        save_model(m, &path, &prov).map_err(to_rhai)
    });
    def!(
        reg,
        "Model.with_passes(passes: int) -> Model",
        "The same LWTA model (weights shared, as with assignment) predicting from the mean softmax of `passes` stochastic passes.",
        |m: &mut Model, passes: INT| -> RResult<Model> {
            m.with_passes(super::opts::to_usize("with_passes: passes", passes)?)
                .map_err(to_rhai)
        }
    );
    def_get!(
        reg,
        "Model.passes -> int",
        "Stochastic passes a prediction averages (1 but for LWTA models).",
        |m: &mut Model| m.arch().passes() as INT
    );
    def!(
        reg,
        "Model.noise_scales() -> Map",
        "The learnable noise scales α of noise injection by parameter name (e.g. 1.alpha_w), empty for other models.",
        |m: &mut Model| -> RResult<Map> {
            Ok(m.noise_scales()
                .map_err(to_rhai)?
                .into_iter()
                .map(|(n, v)| (n.into(), Dynamic::from(f64::from(v))))
                .collect())
        }
    );
    def!(
        reg,
        "Model.ibp_usage() -> Array",
        "Per LWTA layer with an IBP prior, in order: #{ layer, on, connections, fraction, blocks_on, blocks } (a connection is on when its posterior probability is above 1/2); empty for other models.",
        |m: &mut Model| -> RResult<Array> {
            Ok(m.ibp_usage()
                .map_err(to_rhai)?
                .into_iter()
                .enumerate()
                .map(|(i, u)| {
                    let mut row = Map::new();
                    row.insert("layer".into(), Dynamic::from(i as INT));
                    row.insert("on".into(), Dynamic::from(u.on as INT));
                    row.insert("connections".into(), Dynamic::from(u.connections as INT));
                    row.insert("fraction".into(), Dynamic::from(u.on as f64 / u.connections.max(1) as f64));
                    row.insert("blocks_on".into(), Dynamic::from(u.blocks_on as INT));
                    row.insert("blocks".into(), Dynamic::from(u.blocks as INT));
                    Dynamic::from(row)
                })
                .collect())
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Model.reseed(seed: int)",
        "Restart the noise of a stochastic model (noise injection, LWTA) from a seed: the same seed gives the same predictions again.",
        move |m: &mut Model, seed: INT| -> RResult<()> {
            let seed = super::opts::to_usize("reseed: seed", seed)? as u64;
            s.record(serde_json::json!({ "op": "reseed", "model": m.arch(), "seed": seed }));
            m.reseed(seed);
            Ok(())
        }
    );
    def!(
        reg,
        "Model.param_count() -> int",
        "Number of scalar parameters.",
        |m: &mut Model| m.param_count() as INT
    );
    def_get!(
        reg,
        "Model.arch -> String",
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
