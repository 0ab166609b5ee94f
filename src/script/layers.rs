//! Networks built in a script: `sequential([...], #{ input, seed })` over the layer
//! constructors (`linear`, `conv2d`, `relu`, `max_pool`, `flatten`, `global_avg_pool`,
//! `upsample`, `lwta`, `residual`, `dropout`, `avg_pool`, `batch_norm`, `preact_block` and the
//! activations), and the published networks (`madry_mnist_cnn`, `trades_small_cnn`,
//! `preact_resnet18`, `wide_resnet`). Shapes are inferred and
//! checked by `nn::Arch`.

use super::error::{to_rhai, RResult};
use super::keys;
use super::model::{init, noise_site};
use super::opts::{usize_array, Opts};
use super::{def, Reg, Session};
use crate::nn::{Arch, Input, Layer, Lwta, Model, WideResnetParams, BN_EPS, BN_MOMENTUM, LEAKY_SLOPE, TRADES_DROP};
use rhai::{Array, Map, INT};

/// The layers of a script array.
fn layers(func: &str, arr: &Array) -> RResult<Vec<Layer>> {
    super::opts::typed(arr, |k, t| {
        format!("{func}: element {k} is {t}, not a layer (build one with linear(10), conv2d(#{{ out, kernel }}), relu(), …)")
    })
}

/// A size of at least 1.
fn size(what: &str, n: INT) -> RResult<usize> {
    match usize::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(to_rhai(format!("{what} must be at least 1 (got {n})"))),
    }
}

fn sequential(s: &Session, arr: &Array, m: &Map) -> RResult<Model> {
    let o = Opts::new(&keys::SEQUENTIAL, m)?;
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
    let o = Opts::new(&keys::CONV2D, m)?;
    let required = |key: &str| -> RResult<usize> {
        o.usize(key)?.ok_or_else(|| {
            to_rhai(format!(
                "conv2d: option `{key}` is required, e.g. conv2d(#{{ out: 32, kernel: 3, padding: 1 }})"
            ))
        })
    };
    let mut layer = Layer::conv2d(required("out")?, required("kernel")?);
    if let Layer::Conv2d {
        stride, padding, opts, ..
    } = &mut layer
    {
        if let Some(v) = o.usize("stride")? {
            *stride = v;
        }
        if let Some(v) = o.usize("padding")? {
            *padding = v;
        }
        if let Some(b) = o.bool("bias")? {
            opts.no_bias = !b;
        }
    }
    Ok(layer)
}

fn batch_norm(m: &Map) -> RResult<Layer> {
    let o = Opts::new(&keys::BATCH_NORM, m)?;
    Ok(Layer::BatchNorm {
        eps: o.f64("eps")?.unwrap_or(BN_EPS),
        momentum: o.f64("momentum")?.unwrap_or(BN_MOMENTUM),
        affine: o.bool("affine")?.unwrap_or(true),
        name: None,
    })
}

fn preact_block(m: &Map) -> RResult<Layer> {
    let o = Opts::new(&keys::PREACT_BLOCK, m)?;
    let out = o.usize("out")?.ok_or_else(|| {
        to_rhai("preact_block: option `out` is required, e.g. preact_block(#{ out: 128, stride: 2 })")
    })?;
    Ok(Layer::PreactBlock {
        out,
        stride: o.usize("stride")?.unwrap_or(1),
    })
}

fn preact_resnet18(s: &Session, m: &Map) -> RResult<Model> {
    let o = Opts::new(&keys::PREACT_RESNET18, m)?;
    let classes = o.usize("classes")?.unwrap_or(crate::data::CIFAR10_CLASSES.len());
    let arch = Arch::preact_resnet18(classes).map_err(to_rhai)?;
    init(s, arch, o.u64("seed")?)
}

fn wide_resnet(s: &Session, m: &Map) -> RResult<Model> {
    let o = Opts::new(&keys::WIDE_RESNET, m)?;
    let d = WideResnetParams::default();
    let p = WideResnetParams {
        depth: o.usize("depth")?.unwrap_or(d.depth),
        widen: o.usize("widen")?.unwrap_or(d.widen),
        classes: o.usize("classes")?.unwrap_or(d.classes),
        drop: o.f64("drop")?.unwrap_or(d.drop),
    };
    init(s, Arch::wide_resnet(&p).map_err(to_rhai)?, o.u64("seed")?)
}

fn lwta(m: &Map) -> RResult<Layer> {
    let o = Opts::new(&keys::LWTA, m)?;
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
        "nn.Conv2d(in, out, kernel, stride, padding, bias): options out and kernel (required), stride (1), padding (0), bias (true); in is inferred.",
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
        "dropout(p: float) -> Layer",
        "nn.Dropout(p): in training each value is zeroed with probability p (from the model's seeded stream) and the others scaled by 1/(1 − p); the identity under attack and evaluation.",
        |p: f64| Layer::Dropout { p }
    );
    def!(
        reg,
        "avg_pool(size: int) -> Layer",
        "nn.AvgPool2d(size): the mean of size×size windows, stride size.",
        |n: INT| -> RResult<Layer> {
            Ok(Layer::AvgPool {
                size: size("avg_pool: size", n)?,
            })
        }
    );
    def!(reg, "leaky_relu() -> Layer", "nn.LeakyReLU(0.01).", || {
        Layer::LeakyRelu { slope: LEAKY_SLOPE }
    });
    def!(
        reg,
        "leaky_relu(slope: float) -> Layer",
        "nn.LeakyReLU(slope): x for x ≥ 0, slope·x below.",
        |slope: f64| Layer::LeakyRelu { slope }
    );
    def!(reg, "softplus() -> Layer", "nn.Softplus(): log(1 + exp(x)).", || {
        Layer::Softplus
    });
    def!(reg, "tanh() -> Layer", "nn.Tanh().", || Layer::Tanh);
    def!(reg, "sigmoid() -> Layer", "nn.Sigmoid().", || Layer::Sigmoid);
    def!(reg, "identity() -> Layer", "nn.Identity().", || Layer::Identity);
    let s = reg.session.clone();
    def!(
        reg,
        "madry_mnist_cnn() -> Model",
        "Madry et al.'s MNIST network: conv32 5×5 (padding 2) → relu → max_pool 2 → conv64 5×5 → relu → max_pool 2 → fc1024 → relu → fc10, parameters named conv1, conv2, fc1, fc2 as its PyTorch ports; weights seeded by --seed.",
        move || init(&s, Arch::madry_mnist_cnn(), None)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "madry_mnist_cnn(opts: Map) -> Model",
        "Madry et al.'s MNIST network with options: seed.",
        move |m: Map| -> RResult<Model> {
            let o = Opts::new(&keys::MADRY_MNIST_CNN, &m)?;
            init(&s, Arch::madry_mnist_cnn(), o.u64("seed")?)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "trades_small_cnn() -> Model",
        "TRADES' SmallCNN for MNIST: 4 convs 3×3 (32, 32, 64, 64; max_pool 2 after each pair) → fc200 → dropout 0.5 → fc200 → fc10, parameters named feature_extractor.conv1 … classifier.fc3 as TRADES' small_cnn.py, its init (He for the convs, zero last layer); weights seeded by --seed.",
        move || -> RResult<Model> { init(&s, Arch::trades_small_cnn(TRADES_DROP).map_err(to_rhai)?, None) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "trades_small_cnn(opts: Map) -> Model",
        "TRADES' SmallCNN with options: drop (0.5, the dropout after fc1), seed.",
        move |m: Map| -> RResult<Model> {
            let o = Opts::new(&keys::TRADES_SMALL_CNN, &m)?;
            let arch = Arch::trades_small_cnn(o.f64("drop")?.unwrap_or(TRADES_DROP)).map_err(to_rhai)?;
            init(&s, arch, o.u64("seed")?)
        }
    );
    def!(
        reg,
        "batch_norm() -> Layer",
        "nn.BatchNorm1d / nn.BatchNorm2d (by the input's shape) with eps 1e-5, momentum 0.1, affine: batch statistics in training (moving the running ones), running statistics under attack and evaluation.",
        || batch_norm(&Map::new())
    );
    def!(
        reg,
        "batch_norm(opts: Map) -> Layer",
        "Batch norm with options: eps (1e-5), momentum (0.1, how far a training batch moves the running statistics), affine (true: a learnt scale and shift per channel).",
        |m: Map| batch_norm(&m)
    );
    def!(
        reg,
        "preact_block(opts: Map) -> Layer",
        "PreAct ResNet's block: batch_norm → relu → conv 3×3 (stride) → batch_norm → relu → conv 3×3, plus the input (a strided 1×1 conv of it when the shape changes); options out (required), stride (1).",
        |m: Map| preact_block(&m)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "preact_resnet18() -> Model",
        "PreAct ResNet-18 for 3×32×32 images and 10 classes, as Wong et al.'s fast_adversarial (projection shortcuts on the block's raw input), parameters named as fast_adversarial's preact_resnet.py (conv1, layer1.0.bn1, layer2.0.shortcut.0, bn, linear); weights seeded by --seed.",
        move || preact_resnet18(&s, &Map::new())
    );
    let s = reg.session.clone();
    def!(
        reg,
        "preact_resnet18(opts: Map) -> Model",
        "PreAct ResNet-18 with options: classes (10), seed.",
        move |m: Map| preact_resnet18(&s, &m)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "wide_resnet() -> Model",
        "WideResNet-28-10 for 3×32×32 images and 10 classes (Madry CIFAR, TRADES, RobustBench), parameters named and initialised as RobustBench's wide_resnet.py (conv1, block1.layer.0.bn1, convShortcut, bn1, fc); weights seeded by --seed.",
        move || wide_resnet(&s, &Map::new())
    );
    let s = reg.session.clone();
    def!(
        reg,
        "wide_resnet(opts: Map) -> Model",
        "WideResNet with options: depth (28; 6n + 4), widen (10), classes (10), drop (0, dropout between a block's convolutions), seed.",
        move |m: Map| wide_resnet(&s, &m)
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
