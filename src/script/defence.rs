//! Input-time defences: the transforms (`pca_projection`, `gaussian_noise`, `uniform_noise`,
//! `downsample`, `bit_depth`, `median_smoothing`, `denoising_autoencoder`, `conv_autoencoder`),
//! `defended(model, [...])`, and `robustness_checks`.

use super::error::{to_rhai, RResult};
use super::keys;
use super::opts::{usize_array, Opts};
use super::{def, def_get, Reg, Session};
use crate::data::Dataset;
use crate::defence::{
    apply_to, AeFitParams, Autoencoder, AutoencoderKind, BitDepth, Downsample, GaussianNoise, MedianSmoothing,
    PcaChoice, PcaProjection, Transform, UniformNoise,
};
use crate::error::ParamError;
use crate::eval::{robustness_checks, ChecksParams, RobustnessChecks};
use crate::nn::Model;
use rhai::{Array, Dynamic, Map};
use std::sync::Arc;

/// A script handle to a transform (shared: fitting an autoencoder trains every model that
/// uses it).
#[derive(Clone, Debug)]
pub(crate) struct TransformRef(pub Arc<dyn Transform>);

/// A checked transform as a script value, or the broken rule prefixed with the function's name.
fn transform<T: Transform + 'static>(s: &Session, func: &str, t: Result<T, ParamError>) -> RResult<TransformRef> {
    let t = t.map_err(|e| to_rhai(format!("{func}: {e}")))?;
    s.record(serde_json::json!({ "op": "transform", "transform": t.params() }));
    Ok(TransformRef(Arc::new(t)))
}

/// A required numeric option.
fn required(o: &Opts, key: &str, example: &str) -> RResult<f64> {
    o.f64(key)?
        .ok_or_else(|| to_rhai(format!("{}: option `{key}` is required, e.g. {example}", o.func())))
}

/// A required non-negative integer option.
fn required_usize(o: &Opts, key: &str, example: &str) -> RResult<usize> {
    o.usize(key)?
        .ok_or_else(|| to_rhai(format!("{}: option `{key}` is required, e.g. {example}", o.func())))
}

/// An option holding an array of non-negative integers.
fn sizes(o: &Opts, key: &str) -> RResult<Option<Vec<usize>>> {
    match o.get(key) {
        None => Ok(None),
        Some(v) => {
            let arr = v.clone().into_array().map_err(|t| {
                to_rhai(format!(
                    "{}: option `{key}` must be an array of integers, got {t}",
                    o.func()
                ))
            })?;
            usize_array(&format!("{}: {key}", o.func()), &arr).map(Some)
        }
    }
}

/// A data set option.
fn dataset(o: &Opts, key: &str) -> RResult<Option<Dataset>> {
    match o.get(key) {
        None => Ok(None),
        Some(v) => v.clone().try_cast::<Dataset>().map(Some).ok_or_else(|| {
            to_rhai(format!(
                "{}: option `{key}` must be a Dataset, got {}",
                o.func(),
                v.type_name()
            ))
        }),
    }
}

/// A transform or an array of transforms, as a list.
fn transform_list(v: &Dynamic) -> RResult<Vec<Arc<dyn Transform>>> {
    if let Some(t) = v.clone().try_cast::<TransformRef>() {
        return Ok(vec![t.0]);
    }
    let arr = v.clone().into_array().map_err(|t| {
        to_rhai(format!(
            "defended: expected a Transform or an array of transforms, got {t}"
        ))
    })?;
    arr.iter()
        .enumerate()
        .map(|(i, t)| {
            t.clone().try_cast::<TransformRef>().map(|t| t.0).ok_or_else(|| {
                to_rhai(format!(
                    "defended: element {i} of the transform list is {}, not a Transform (e.g. gaussian_noise(#{{ std: 0.1 }}))",
                    t.type_name()
                ))
            })
        })
        .collect()
}

fn autoencoder(s: &Session, keys: &'static keys::Keys, m: &Map, dense: bool) -> RResult<TransformRef> {
    let (func, key) = (keys.func, if dense { "hidden" } else { "channels" });
    let o = Opts::new(keys, m)?;
    let kind = if dense {
        AutoencoderKind::Dense {
            hidden: sizes(&o, key)?.unwrap_or_else(|| AutoencoderKind::DEFAULT_HIDDEN.to_vec()),
        }
    } else {
        AutoencoderKind::Conv {
            channels: sizes(&o, key)?.unwrap_or_else(|| AutoencoderKind::DEFAULT_CHANNELS.to_vec()),
        }
    };
    let input = sizes(&o, "input")?.unwrap_or_else(|| AutoencoderKind::DEFAULT_INPUT.to_vec());
    let seed = o.u64("seed")?.unwrap_or(s.seed);
    let ae = Autoencoder::new(kind, &input, seed, &s.device).map_err(|e| to_rhai(format!("{func}: {e}")))?;
    s.record(serde_json::json!({ "op": "transform", "transform": ae.params() }));
    Ok(TransformRef(Arc::new(ae)))
}

fn fit_transform(s: &Session, t: &TransformRef, data: &Dataset, m: &Map) -> RResult<Map> {
    let o = Opts::new(&keys::FIT_TRANSFORM, m)?;
    let d = AeFitParams::default();
    let p = AeFitParams {
        epochs: o.usize("epochs")?.unwrap_or(d.epochs),
        batch_size: o.usize("batch_size")?.unwrap_or(d.batch_size),
        lr: o.f64("lr")?.unwrap_or(d.lr),
        noise_std: o.f64("noise_std")?.unwrap_or(d.noise_std),
        seed: o.u64("seed")?.unwrap_or(s.seed),
    }
    .check()
    .map_err(|e| to_rhai(format!("{}.fit: {e}", t.0.name())))?;
    let history = crate::defence::fit_transform(t.0.as_ref(), data, &p).map_err(to_rhai)?;
    s.record(serde_json::json!({ "op": "transform.fit", "transform": t.0.params(), "data": data.name(), "samples": data.len() }));
    let mut out = Map::new();
    out.insert(
        "loss".into(),
        history.iter().map(|h| Dynamic::from(h.loss)).collect::<Array>().into(),
    );
    out.insert(
        "seconds".into(),
        history
            .iter()
            .map(|h| Dynamic::from(h.seconds))
            .collect::<Array>()
            .into(),
    );
    Ok(out)
}

fn checks(s: &Session, m: &Model, d: &Dataset, opts: &Map) -> RResult<RobustnessChecks> {
    let o = Opts::new(&keys::ROBUSTNESS_CHECKS, opts)?;
    let d0 = ChecksParams::default();
    let surrogate = match o.get("surrogate") {
        None => None,
        Some(v) => Some(v.clone().try_cast::<Model>().ok_or_else(|| {
            to_rhai(format!(
                "robustness_checks: option `surrogate` must be a Model, got {}",
                v.type_name()
            ))
        })?),
    };
    let p = ChecksParams {
        eps: o.f64("eps")?.unwrap_or(d0.eps),
        steps: o.usize("steps")?.unwrap_or(d0.steps),
        eot: o.usize("eot")?.unwrap_or(d0.eot),
        eot_check: o.usize("eot_check")?.unwrap_or(d0.eot_check),
        large_eps: o.f64("large_eps")?.unwrap_or(d0.large_eps),
        samples: o.usize("samples")?.unwrap_or(d0.samples),
        tolerance: o.f64("tolerance")?.unwrap_or(d0.tolerance),
        seed: o.u64("seed")?.unwrap_or(s.seed),
        surrogate,
        surrogate_data: dataset(&o, "train")?,
    }
    .check()
    .map_err(|e| to_rhai(format!("robustness_checks: {e}")))?;
    let r = robustness_checks(m, d, &p).map_err(to_rhai)?;
    s.record(
        serde_json::json!({ "op": "robustness_checks", "transforms": m.pipeline().map(|p| p.params()), "result": r }),
    );
    Ok(r)
}

fn check_rows(r: &RobustnessChecks) -> Array {
    r.checks
        .iter()
        .map(|c| {
            let mut row = Map::new();
            row.insert("check".into(), c.key.to_string().into());
            row.insert("description".into(), c.description.clone().into());
            row.insert("passed".into(), c.status.as_str().to_string().into());
            row.insert("evidence".into(), c.evidence.clone().into());
            Dynamic::from(row)
        })
        .collect()
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<TransformRef>("Transform");
    reg.engine
        .register_type_with_name::<RobustnessChecks>("RobustnessChecks");

    let s = reg.session.clone();
    def!(reg, "pca_projection(opts: Map) -> Transform", "Project onto the principal axes fitted on a held-out set and back, x → mean + (x − mean)VVᵀ (differentiable): data (required, the held-out Dataset), variance (0.99: the fewest axes keeping that share) or components (a count).", move |m: Map| -> RResult<TransformRef> {
        let o = Opts::new(&keys::PCA_PROJECTION, &m)?;
        let data = dataset(&o, "data")?.ok_or_else(|| {
            to_rhai("pca_projection: option `data` (the held-out images the axes are fitted on) is required, e.g. pca_projection(#{ variance: 0.99, data: held_out })")
        })?;
        let choice = PcaChoice::from_options(o.f64("variance")?, o.usize("components")?)
            .map_err(|e| to_rhai(format!("pca_projection: {e}")))?;
        let t = PcaProjection::fit(&data, choice).map_err(|e| to_rhai(format!("pca_projection: {e}")))?;
        s.record(serde_json::json!({ "op": "transform", "transform": t.params() }));
        Ok(TransformRef(Arc::new(t)))
    });
    let s = reg.session.clone();
    def!(
        reg,
        "gaussian_noise(opts: Map) -> Transform",
        "Add N(0, std²) noise, fresh at every forward pass, and clip to [0, 1]: std (required), seed (--seed).",
        move |m: Map| -> RResult<TransformRef> {
            let o = Opts::new(&keys::GAUSSIAN_NOISE, &m)?;
            let std = required(&o, "std", "gaussian_noise(#{ std: 0.1 })")?;
            transform(
                &s,
                "gaussian_noise",
                GaussianNoise::new(std, o.u64("seed")?.unwrap_or(s.seed)),
            )
        }
    );
    let s = reg.session.clone();
    def!(reg, "uniform_noise(opts: Map) -> Transform", "Add noise uniform in [−magnitude, magnitude], fresh at every forward pass, and clip to [0, 1]: magnitude (required), seed (--seed).", move |m: Map| -> RResult<TransformRef> {
        let o = Opts::new(&keys::UNIFORM_NOISE, &m)?;
        let mag = required(&o, "magnitude", "uniform_noise(#{ magnitude: 0.2 })")?;
        transform(&s, "uniform_noise", UniformNoise::new(mag, o.u64("seed")?.unwrap_or(s.seed)))
    });
    let s = reg.session.clone();
    def!(reg, "downsample(opts: Map) -> Transform", "Shrink each side to `factor` (0.5; 0.25 is seed 003's \"75%\") by area averaging and bring it back bilinearly (differentiable).", move |m: Map| -> RResult<TransformRef> {
        let o = Opts::new(&keys::DOWNSAMPLE, &m)?;
        transform(&s, "downsample", Downsample::new(o.f64("factor")?.unwrap_or(Downsample::DEFAULT_FACTOR)))
    });
    let s = reg.session.clone();
    def!(reg, "bit_depth(opts: Map) -> Transform", "Round each pixel to 2^bits levels: bits (required, 1..=16), bpda (true: the backward pass is the identity; false: the true, zero gradient).", move |m: Map| -> RResult<TransformRef> {
        let o = Opts::new(&keys::BIT_DEPTH, &m)?;
        let bits = required_usize(&o, "bits", "bit_depth(#{ bits: 3 })")?;
        transform(&s, "bit_depth", BitDepth::new(bits, o.bool("bpda")?.unwrap_or(BitDepth::DEFAULT_BPDA)))
    });
    let s = reg.session.clone();
    def!(reg, "median_smoothing(opts: Map) -> Transform", "Median of each size×size window per channel, border replicated: size (3), bpda (true: the backward pass is the identity; false: no gradient).", move |m: Map| -> RResult<TransformRef> {
        let o = Opts::new(&keys::MEDIAN_SMOOTHING, &m)?;
        transform(&s, "median_smoothing", MedianSmoothing::new(
                o.usize("size")?.unwrap_or(MedianSmoothing::DEFAULT_SIZE),
                o.bool("bpda")?.unwrap_or(MedianSmoothing::DEFAULT_BPDA),
            ),)
    });
    let s = reg.session.clone();
    def!(reg, "denoising_autoencoder(opts: Map) -> Transform", "A dense autoencoder (ReLU layers, the decoder mirrors the encoder, output clipped to [0, 1]) to train with .fit(data, opts) and use as a transform: hidden ([256]), input ([1, 28, 28]), seed.", move |m: Map| {
        autoencoder(&s, &keys::DENOISING_AUTOENCODER, &m, true)
    });
    let s = reg.session.clone();
    def!(reg, "conv_autoencoder(opts: Map) -> Transform", "A convolutional autoencoder (3×3 conv + ReLU + 2×2 max-pool per level, nearest up-sampling + conv back, output clipped to [0, 1]) to train with .fit(data, opts): channels ([16, 8]), input ([1, 28, 28]), seed.", move |m: Map| {
        autoencoder(&s, &keys::CONV_AUTOENCODER, &m, false)
    });
    let s = reg.session.clone();
    def!(reg, "Transform.fit(data: Dataset) -> Map", "Train an autoencoder in place with the defaults (5 epochs, batch 128, Adam lr 0.001, noise_std 0.1); returns loss (reconstruction MSE) and seconds per epoch.", move |t: &mut TransformRef, d: Dataset| {
        fit_transform(&s, t, &d, &Map::new())
    });
    let s = reg.session.clone();
    def!(reg, "Transform.fit(data: Dataset, opts: Map) -> Map", "Train an autoencoder in place to reconstruct clean images from noisy ones (MSE): epochs (5), batch_size (128), lr (0.001, Adam), noise_std (0.1, the Gaussian σ of the input noise), seed.", move |t: &mut TransformRef, d: Dataset, o: Map| {
        fit_transform(&s, t, &d, &o)
    });
    def!(
        reg,
        "Transform.apply(data: Dataset) -> Dataset",
        "Every image through the transform once (same labels), e.g. to look at what the network sees.",
        |t: &mut TransformRef, d: Dataset| -> RResult<Dataset> { apply_to(t.0.as_ref(), &d).map_err(to_rhai) }
    );
    def_get!(
        reg,
        "Transform.name -> String",
        "The transform's kind (pca_projection, gaussian_noise, …).",
        |t: &mut TransformRef| t.0.name().to_string()
    );
    def_get!(
        reg,
        "Transform.random -> bool",
        "Whether it draws fresh noise at every pass (attack it with eot).",
        |t: &mut TransformRef| t.0.seed().is_some()
    );
    def_get!(
        reg,
        "Transform.differentiable -> bool",
        "Whether it has a true gradient (false for bit_depth and median_smoothing, which use BPDA or none).",
        |t: &mut TransformRef| t.0.bpda().is_none()
    );
    def!(
        reg,
        "Transform.params() -> Map",
        "Every resolved parameter (e.g. the PCA components the variance gave).",
        |t: &mut TransformRef| -> RResult<Dynamic> { rhai::serde::to_dynamic(t.0.params()) }
    );
    def!(
        reg,
        "Transform.to_string() -> String",
        "The transform with its resolved parameters.",
        |t: &mut TransformRef| t.0.to_string()
    );

    let s = reg.session.clone();
    def!(reg, "defended(model: Model, transforms: Array) -> Model", "The model behind input transforms run in order inside every forward pass (so fit, attacks and evaluate see them), on the same weights; randomised transforms restart from their seeds.", move |m: Model, ts: Dynamic| -> RResult<Model> {
        let list = transform_list(&ts)?;
        let d = m.defended(list).map_err(to_rhai)?;
        s.record(serde_json::json!({ "op": "defended", "model": m.arch(), "transforms": d.pipeline().map(|p| p.params()) }));
        Ok(d)
    });
    def!(
        reg,
        "Model.network() -> Model",
        "The network without its input transforms, on the same weights (what save writes).",
        |m: &mut Model| m.network().map_err(to_rhai)
    );
    def!(
        reg,
        "Model.transforms() -> Array",
        "The input transforms in front of the network, in the order they run (empty when none).",
        |m: &mut Model| -> Array {
            m.transforms()
                .into_iter()
                .map(|t| Dynamic::from(TransformRef(t)))
                .collect()
        }
    );

    let s = reg.session.clone();
    def!(reg, "robustness_checks(model: Model, data: Dataset) -> RobustnessChecks", "The sanity checks of an evaluation with the defaults (PGD-L∞ ε 0.3, 20 steps, 500 samples): accuracy falls with ε and does not rise with steps, ε 1.0 reaches ~0, transfer not stronger than white-box, noise weaker, EOT/BPDA not weaker than naive.", move |m: Model, d: Dataset| {
        checks(&s, &m, &d, &Map::new())
    });
    let s = reg.session.clone();
    def!(reg, "robustness_checks(model: Model, data: Dataset, opts: Map) -> RobustnessChecks", "The checks with options: eps (0.3), steps (20), eot (1, of the white-box PGD), eot_check (10), large_eps (1.0), samples (500), tolerance (0.02), seed, surrogate (a Model; else an MLP trained on `train` or the data).", move |m: Model, d: Dataset, o: Map| {
        checks(&s, &m, &d, &o)
    });
    def!(
        reg,
        "RobustnessChecks.rows() -> Array",
        "One map per check: check, description, passed (yes / NO / n/a), evidence.",
        |r: &mut RobustnessChecks| check_rows(r)
    );
    def_get!(
        reg,
        "RobustnessChecks.passed -> bool",
        "Whether no check failed (n/a ones do not count).",
        |r: &mut RobustnessChecks| r.passed()
    );
    def!(
        reg,
        "RobustnessChecks.failures() -> Array",
        "The keys of the failed checks (eps, steps, large_eps, transfer, noise, eot_bpda).",
        |r: &mut RobustnessChecks| -> Array {
            r.failures().into_iter().map(|k| Dynamic::from(k.to_string())).collect()
        }
    );
    def!(
        reg,
        "RobustnessChecks.to_string() -> String",
        "The checks as a table: check, passed, evidence.",
        |r: &mut RobustnessChecks| r.to_string()
    );
}
