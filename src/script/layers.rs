//! Networks built in a script: `sequential([...], #{ input, seed })` over the layer
//! constructors (`linear`, `conv2d`, `relu`, `max_pool`, `flatten`, `global_avg_pool`,
//! `upsample`, `lwta`, `residual`). Shapes are inferred and checked by `nn::Arch`.

use super::error::{to_rhai, RResult};
use super::model::{init, noise_site};
use super::opts::{usize_array, Opts};
use super::{def, Reg, Session};
use crate::nn::{Arch, Input, Layer, Lwta, Model};
use rhai::{Array, Map, INT};

/// The layers of a script array.
fn layers(func: &str, arr: &Array) -> RResult<Vec<Layer>> {
    arr.iter()
        .enumerate()
        .map(|(k, v)| {
            v.clone().try_cast::<Layer>().ok_or_else(|| {
                to_rhai(format!(
                    "{func}: element {k} is {}, not a layer (build one with linear(10), conv2d(#{{ out, kernel }}), relu(), …)",
                    v.type_name()
                ))
            })
        })
        .collect()
}

/// A size of at least 1.
fn size(what: &str, n: INT) -> RResult<usize> {
    match usize::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(to_rhai(format!("{what} must be at least 1 (got {n})"))),
    }
}

fn sequential(s: &Session, arr: &Array, m: &Map) -> RResult<Model> {
    let o = Opts::new("sequential", m, &["input", "seed", "noise_injection"])?;
    let input = match o.get("input") {
        None => Input::Image(1, 28, 28),
        Some(v) => {
            let arr = v.clone().into_array().map_err(|_| {
                to_rhai(format!(
                    "sequential: option `input` must be an array ([C, H, W] or [features]), got {}",
                    v.type_name()
                ))
            })?;
            Input::from_dims(&usize_array("sequential: input", &arr)?).map_err(to_rhai)?
        }
    };
    let arch = Arch::sequential(input, layers("sequential", arr)?).map_err(to_rhai)?;
    init(s, arch.with_noise_injection(noise_site(&o)?), o.u64("seed")?)
}

fn conv2d(m: &Map) -> RResult<Layer> {
    let o = Opts::new("conv2d", m, &["out", "kernel", "stride", "padding"])?;
    let required = |key: &str| -> RResult<usize> {
        o.usize(key)?.ok_or_else(|| {
            to_rhai(format!(
                "conv2d: option `{key}` is required, e.g. conv2d(#{{ out: 32, kernel: 3, padding: 1 }})"
            ))
        })
    };
    let mut layer = Layer::conv2d(required("out")?, required("kernel")?);
    if let Layer::Conv2d { stride, padding, .. } = &mut layer {
        if let Some(v) = o.usize("stride")? {
            *stride = v;
        }
        if let Some(v) = o.usize("padding")? {
            *padding = v;
        }
    }
    Ok(layer)
}

fn lwta(m: &Map) -> RResult<Layer> {
    let o = Opts::new("lwta", m, &["units", "temperature"])?;
    let d = Lwta::default();
    Ok(Layer::Lwta {
        units: o.usize("units")?.unwrap_or(d.units_per_block),
        temperature: o.f64("temperature")?.unwrap_or(d.temperature),
    })
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<Layer>("Layer");
    let s = reg.session.clone();
    def!(
        reg,
        "sequential(layers: Array) -> Model",
        "A network of these layers for 1×28×28 images, shapes inferred, e.g. sequential([flatten(), linear(256), relu(), linear(10)]); weights seeded by --seed.",
        move |l: Array| sequential(&s, &l, &Map::new())
    );
    let s = reg.session.clone();
    def!(
        reg,
        "sequential(layers: Array, opts: Map) -> Model",
        "A network of these layers with options: input ([1, 28, 28]; [C, H, W] or [features]), seed (weights and noise), noise_injection (\"weights\" | \"activations\"); it must end in a flat output of at least 2 classes.",
        move |l: Array, m: Map| sequential(&s, &l, &m)
    );
    def!(
        reg,
        "linear(out: int) -> Layer",
        "nn.Linear(in, out) on a flat input (in is inferred).",
        |n: INT| -> RResult<Layer> { Ok(Layer::linear(size("linear: out", n)?)) }
    );
    def!(
        reg,
        "conv2d(opts: Map) -> Layer",
        "nn.Conv2d(in, out, kernel, stride, padding): options out and kernel (required), stride (1), padding (0); in is inferred.",
        |m: Map| conv2d(&m)
    );
    def!(reg, "relu() -> Layer", "nn.ReLU().", || Layer::Relu);
    def!(
        reg,
        "max_pool(size: int) -> Layer",
        "nn.MaxPool2d(size): size×size windows, stride size (a conv → relu → max_pool run is one fused op on the CPU).",
        |n: INT| -> RResult<Layer> {
            Ok(Layer::MaxPool {
                size: size("max_pool: size", n)?,
            })
        }
    );
    def!(reg, "flatten() -> Layer", "nn.Flatten(): an image to a vector.", || {
        Layer::Flatten
    });
    def!(
        reg,
        "global_avg_pool() -> Layer",
        "The mean over each channel's positions, x.mean((2, 3)): an image to a vector of its channels.",
        || Layer::GlobalAvgPool
    );
    def!(
        reg,
        "upsample(factor: int) -> Layer",
        "nn.Upsample(scale_factor=factor): nearest-neighbour up-sampling.",
        |n: INT| -> RResult<Layer> {
            Ok(Layer::Upsample {
                factor: size("upsample: factor", n)?,
            })
        }
    );
    def!(
        reg,
        "lwta() -> Layer",
        "Stochastic local winner-takes-all (Panousis et al. 2021) over blocks of 2 consecutive channels, temperature 0.67.",
        || lwta(&Map::new())
    );
    def!(
        reg,
        "lwta(opts: Map) -> Layer",
        "Stochastic LWTA with options: units (2, the channels competing in a block), temperature (0.67, the training relaxation).",
        |m: Map| lwta(&m)
    );
    def!(
        reg,
        "residual(body: Array) -> Layer",
        "body(x) + x: a residual block with the identity shortcut (the body must keep the shape).",
        |b: Array| -> RResult<Layer> {
            Ok(Layer::Residual {
                body: layers("residual", &b)?,
                shortcut: Vec::new(),
            })
        }
    );
    def!(
        reg,
        "residual(body: Array, shortcut: Array) -> Layer",
        "body(x) + shortcut(x): a residual block whose shortcut is its own layer list (e.g. [conv2d(#{ out: 32, kernel: 1, stride: 2 })]).",
        |b: Array, sc: Array| -> RResult<Layer> {
            Ok(Layer::Residual {
                body: layers("residual: body", &b)?,
                shortcut: layers("residual: shortcut", &sc)?,
            })
        }
    );
    def!(
        reg,
        "Layer.to_string() -> String",
        "The layer as a record, e.g. {\"type\":\"linear\",\"out\":10}.",
        |l: &mut Layer| serde_json::to_string(l).unwrap_or_else(|e| e.to_string())
    );
}
