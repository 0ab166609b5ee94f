//! Layers: what every network is made of. A network is a list of [`Layer`]s (a residual block
//! is a layer holding two lists); this file infers the shape after every layer, names each
//! layer's parameters as the equivalent PyTorch `nn.Sequential` does (by position, unless a
//! preset gives the layer its own name) and writes that module's source.
//!
//! Adding a layer kind is one arm of [`Layer`] here (its shape rule, its parameters, its
//! PyTorch source) and one of `Node` in `net.rs` (its forward pass).

use super::ibp::{softplus_inv, IbpPrior, LOGIT_INIT};
use crate::error::ParamError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The most values one sample may have at any layer, and the most parameters a network may
/// have (16 GiB of f32 each): a larger network is refused before anything is allocated.
pub const MAX_VALUES: usize = crate::algebra::MAX_ELEMENTS;

/// `dims`' product, or its description when it is above [`MAX_VALUES`] (or overflows).
pub(crate) fn bounded_product(dims: &[usize]) -> Result<usize, String> {
    match dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) {
        Some(n) if n <= MAX_VALUES => Ok(n),
        Some(n) => Err(n.to_string()),
        None => Err("over 2^64".to_string()),
    }
}

/// Where parametric noise injection adds its noise: `α·σ·η` with a learnable scale `α` per
/// layer (initially 0.25), `η` standard normal drawn at every forward pass (training and
/// test), and `σ` the standard deviation of the tensor that receives the noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseSite {
    /// On every layer's weights (`α` named `<layer>.alpha_w`), σ the weights' std.
    Weights,
    /// On every layer's output but the classifier's (`<layer>.alpha_a`), σ the output's std.
    Activations,
}

impl NoiseSite {
    /// Parse `"weights"` or `"activations"`.
    pub fn parse(s: &str) -> Result<Self, ParamError> {
        match s {
            "weights" => Ok(NoiseSite::Weights),
            "activations" => Ok(NoiseSite::Activations),
            other => Err(ParamError::UnknownNoiseInjection(other.to_string())),
        }
    }
}

impl fmt::Display for NoiseSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoiseSite::Weights => "weights",
            NoiseSite::Activations => "activations",
        })
    }
}

/// PyTorch's default negative slope of `nn.LeakyReLU`.
pub const LEAKY_SLOPE: f64 = 0.01;

/// PyTorch's default `eps` of `nn.BatchNorm1d`/`nn.BatchNorm2d`.
pub const BN_EPS: f64 = 1e-5;

/// PyTorch's default `momentum` of batch norm: how far one training batch moves the running
/// statistics.
pub const BN_MOMENTUM: f64 = 0.1;

/// The initial value of every noise scale α (He et al. 2019).
pub const ALPHA_INIT: f32 = 0.25;

/// What a model takes per sample, and the shape of what flows between layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Any image of this many values (flattened); between layers, a flat vector.
    Features(usize),
    /// Images of exactly this `(C, H, W)`.
    Image(usize, usize, usize),
}

impl Input {
    /// `[n]` or `[c, h, w]`.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Input::Features(n) => vec![n],
            Input::Image(c, h, w) => vec![c, h, w],
        }
    }

    /// `[n]` or `[c, h, w]`, each at least 1.
    pub fn from_dims(dims: &[usize]) -> Result<Self, ParamError> {
        match *dims {
            [n] if n > 0 => Ok(Input::Features(n)),
            [c, h, w] if c > 0 && h > 0 && w > 0 => Ok(Input::Image(c, h, w)),
            _ => Err(ParamError::InputShape(dims.to_vec())),
        }
    }

    /// Values per sample.
    pub fn size(&self) -> usize {
        self.dims().iter().product()
    }

    /// The channels (an image's C, a vector's length): where LWTA blocks compete.
    fn channels(&self) -> usize {
        match *self {
            Input::Features(n) => n,
            Input::Image(c, ..) => c,
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Features(n) => write!(f, "{n} features"),
            Input::Image(c, h, w) => write!(f, "{c}×{h}×{w}"),
        }
    }
}

/// The IBP prior on a layer's connections, gating blocks of `units` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub units: usize,
    pub prior: IbpPrior,
}

/// The options of a layer with weights.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Weighted {
    /// The PyTorch name (`stem`, `stages.1.0.conv1`); by default the layer's position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Parametric noise injection on this layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<NoiseSite>,
    /// The IBP prior over this layer's connections (LWTA networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ibp: Option<Gate>,
    /// No bias (`bias=False`, as the convolutions before a batch norm).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_bias: bool,
    /// How the weights start (PyTorch's default unless a preset says otherwise).
    #[serde(default, skip_serializing_if = "WeightInit::is_default")]
    pub init: WeightInit,
}

/// How a layer's weight and bias start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightInit {
    /// PyTorch's default: weight and bias uniform in ±1/√fan_in.
    #[default]
    Torch,
    /// He's normal init (`kaiming_normal_`, fan_in, ReLU gain) with zero bias.
    He,
    /// All zeros (TRADES' SmallCNN classifier).
    Zeros,
    /// Normal with standard deviation √(2/fan_out), fan_out = k·k·out (WideResNet's
    /// convolutions, `normal_(0, sqrt(2 / n))`), with zero bias.
    HeFanOut,
    /// PyTorch's default weight with a zero bias (WideResNet's classifier).
    ZeroBias,
}

impl WeightInit {
    fn is_default(&self) -> bool {
        *self == WeightInit::Torch
    }
}

impl Weighted {
    fn is_plain(&self) -> bool {
        *self == Weighted::default()
    }
}

fn one() -> usize {
    1
}

fn bn_eps() -> f64 {
    BN_EPS
}

fn bn_momentum() -> f64 {
    BN_MOMENTUM
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One layer of a network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Layer {
    /// `nn.Linear(in, out)` on a flat input.
    Linear {
        out: usize,
        #[serde(default, skip_serializing_if = "Weighted::is_plain")]
        opts: Weighted,
    },
    /// `nn.Conv2d(in, out, kernel, stride, padding)` on an image.
    Conv2d {
        out: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default, skip_serializing_if = "Weighted::is_plain")]
        opts: Weighted,
    },
    /// `nn.ReLU()`.
    Relu,
    /// `nn.MaxPool2d(size)`: `size×size` windows with stride `size`.
    MaxPool { size: usize },
    /// `nn.Flatten()`.
    Flatten,
    /// The mean over each channel's positions: `x.mean((2, 3))`.
    GlobalAvgPool,
    /// Nearest-neighbour up-sampling by an integer factor: `nn.Upsample(scale_factor=f)`.
    Upsample { factor: usize },
    /// Stochastic local winner-takes-all over blocks of `units` consecutive channels.
    Lwta { units: usize, temperature: f64 },
    /// `nn.Dropout(p)`: in training each value is zeroed with probability `p` and the others
    /// scaled by 1/(1 − p); the identity in evaluation.
    Dropout { p: f64 },
    /// `nn.AvgPool2d(size)`: the mean of `size×size` windows with stride `size`.
    AvgPool { size: usize },
    /// `nn.LeakyReLU(slope)`.
    LeakyRelu { slope: f64 },
    /// `nn.Softplus()`: log(1 + eˣ).
    Softplus,
    /// `nn.Tanh()`.
    Tanh,
    /// `nn.Sigmoid()`.
    Sigmoid,
    /// `nn.Identity()`.
    Identity,
    /// `nn.BatchNorm1d(n)` on a flat input, `nn.BatchNorm2d(c)` on an image. In training each
    /// channel is normalised by the batch's mean and biased variance, and the running
    /// statistics move by `momentum` towards the batch's mean and unbiased variance; in
    /// evaluation (attacks included) by the running statistics. `affine`: a learnt scale
    /// (`weight`, from 1) and shift (`bias`, from 0) per channel.
    BatchNorm {
        #[serde(default = "bn_eps")]
        eps: f64,
        #[serde(default = "bn_momentum")]
        momentum: f64,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        affine: bool,
        /// The PyTorch name (`layer1.0.bn1`); by default the layer's position.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The pre-activation block of PreAct ResNet: `batch_norm → relu → conv 3×3 (stride) →
    /// batch_norm → relu → conv 3×3`, plus the input, or a strided 1×1 convolution of it when
    /// the shape changes; a network lowers it to that residual block once its input is known.
    PreactBlock {
        out: usize,
        #[serde(default = "one")]
        stride: usize,
    },
    /// `body(x) + shortcut(x)`, the shortcut the identity when empty.
    Residual {
        body: Vec<Layer>,
        #[serde(default)]
        shortcut: Vec<Layer>,
    },
}

/// A layer with weights, as the parameters and the forward pass see it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WeightedSpec {
    /// The PyTorch module name: `3`, `stem`, `stages.1.0.conv1`, `fc`.
    pub name: String,
    /// The weight's shape: `(out, in)` or `(out, in, k, k)`.
    pub shape: Vec<usize>,
    pub opts: Weighted,
}

/// A layer that owns tensors: one with weights, or a batch norm.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Owner {
    Weighted(WeightedSpec),
    /// A batch norm over `channels` named `name`, each channel holding `per_sample` values of a
    /// sample (1 after a flat layer, H·W on an image).
    Norm {
        name: String,
        channels: usize,
        per_sample: usize,
        affine: bool,
    },
}

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Init {
    /// PyTorch's default for linear and conv layers: uniform in ±1/√fan_in.
    Uniform { fan_in: usize },
    /// Every element the same (the noise scales α, the IBP parameters).
    Const(f32),
    /// He et al.'s init for ReLU layers, `kaiming_normal_(nonlinearity="relu")`: normal with
    /// standard deviation √(2/fan), fan the inputs per output (`mode="fan_in"`, which keeps
    /// the forward signal's scale without batch norm) or the outputs per input (WideResNet).
    KaimingNormal { fan: usize },
    /// All zeros.
    Zeros,
}

/// One tensor of a model: its PyTorch name, shape and initialisation, and whether it is a
/// buffer (batch norm's running statistics: saved and loaded, moved by training passes, never
/// by the optimizer) rather than a trainable parameter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub buffer: bool,
}

/// The name of the layer at `index` of the list at `prefix` (`""` at the top): its own name,
/// or its position as in `nn.Sequential`.
pub(crate) fn layer_name(prefix: &str, index: usize, own: Option<&str>) -> String {
    match own {
        Some(n) => n.to_string(),
        None => child(prefix, &index.to_string()),
    }
}

/// `prefix.name`, or `name` at the top.
pub(crate) fn child(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

impl Layer {
    /// `nn.Linear(in, out)` with PyTorch's defaults.
    pub fn linear(out: usize) -> Self {
        Layer::Linear {
            out,
            opts: Weighted::default(),
        }
    }

    /// `nn.Conv2d(in, out, kernel)` with PyTorch's defaults: stride 1, no padding.
    pub fn conv2d(out: usize, kernel: usize) -> Self {
        Layer::Conv2d {
            out,
            kernel,
            stride: one(),
            padding: 0,
            opts: Weighted::default(),
        }
    }

    /// `nn.Conv2d(in, out, kernel, stride, padding=kernel // 2, bias=False)`, the convolution
    /// before a batch norm, with its own `name` (else its position) and `init`.
    pub(crate) fn conv_no_bias(
        out: usize,
        kernel: usize,
        stride: usize,
        name: Option<String>,
        init: WeightInit,
    ) -> Self {
        Layer::Conv2d {
            out,
            kernel,
            stride,
            padding: kernel / 2,
            opts: Weighted {
                name,
                no_bias: true,
                init,
                ..Weighted::default()
            },
        }
    }

    /// Batch norm with PyTorch's defaults (eps 1e-5, momentum 0.1, affine), with its own `name`
    /// (else its position).
    pub(crate) fn batch_norm(name: Option<String>) -> Self {
        Layer::BatchNorm {
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
            affine: true,
            name,
        }
    }

    /// The short name used in descriptions and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Linear { .. } => "linear",
            Layer::Conv2d { .. } => "conv2d",
            Layer::Relu => "relu",
            Layer::MaxPool { .. } => "max_pool",
            Layer::Flatten => "flatten",
            Layer::GlobalAvgPool => "global_avg_pool",
            Layer::Upsample { .. } => "upsample",
            Layer::Lwta { .. } => "lwta",
            Layer::Residual { .. } => "residual",
            Layer::Dropout { .. } => "dropout",
            Layer::AvgPool { .. } => "avg_pool",
            Layer::LeakyRelu { .. } => "leaky_relu",
            Layer::Softplus => "softplus",
            Layer::Tanh => "tanh",
            Layer::Sigmoid => "sigmoid",
            Layer::Identity => "identity",
            Layer::BatchNorm { .. } => "batch_norm",
            Layer::PreactBlock { .. } => "preact_block",
        }
    }

    /// The layer's own PyTorch name, when it has one (a preset's `conv1`, `layer1.0.bn1`).
    pub(crate) fn own_name(&self) -> Option<&str> {
        match self {
            Layer::BatchNorm { name, .. } => name.as_deref(),
            l => l.opts().and_then(|o| o.name.as_deref()),
        }
    }

    /// The options of a layer with weights.
    pub(crate) fn opts(&self) -> Option<&Weighted> {
        match self {
            Layer::Linear { opts, .. } | Layer::Conv2d { opts, .. } => Some(opts),
            _ => None,
        }
    }

    fn opts_mut(&mut self) -> Option<&mut Weighted> {
        match self {
            Layer::Linear { opts, .. } | Layer::Conv2d { opts, .. } => Some(opts),
            _ => None,
        }
    }

    /// The shape after this layer, for `input`; the layers with weights (in order) are pushed
    /// onto `out`. `prefix` and `index` place the layer in the network, for names and errors.
    fn infer(&self, input: Input, prefix: &str, index: usize, out: &mut Vec<Owner>) -> Result<Input, ParamError> {
        let at = child(prefix, &index.to_string());
        let bad = |reason: String| ParamError::Layer {
            at: format!("{at} ({})", self.kind()),
            reason,
        };
        let image = |what: &str| match input {
            Input::Image(c, h, w) => Ok((c, h, w)),
            Input::Features(n) => Err(bad(format!(
                "{what} needs an image (C×H×W), but its input is {n} features: remove the flatten() before it"
            ))),
        };
        let gate = |opts: &Weighted, size: usize| match opts.ibp {
            Some(g) if g.units < 2 || !size.is_multiple_of(g.units) => Err(bad(format!(
                "its {size} outputs do not split into IBP blocks of {} units",
                g.units
            ))),
            _ => Ok(()),
        };
        match self {
            Layer::Linear { out: o, opts } => {
                let n = match input {
                    Input::Features(n) => n,
                    Input::Image(..) => {
                        return Err(bad(format!(
                            "linear needs a flat input, but its input is a {input} image: put flatten() before it"
                        )))
                    }
                };
                if *o == 0 {
                    return Err(bad("out must be at least 1".into()));
                }
                bounded_product(&[*o, n]).map_err(|v| bad(format!("a {o}×{n} weight of {v} values is too large")))?;
                gate(opts, *o)?;
                out.push(Owner::Weighted(WeightedSpec {
                    name: layer_name(prefix, index, self.own_name()),
                    shape: vec![*o, n],
                    opts: opts.clone(),
                }));
                Ok(Input::Features(*o))
            }
            Layer::Conv2d {
                out: o,
                kernel: k,
                stride,
                padding,
                opts,
            } => {
                let (c, h, w) = image("conv2d")?;
                if *o == 0 || *k == 0 || *stride == 0 {
                    return Err(bad(format!(
                        "out, kernel and stride must be at least 1 (got {o}, {k}, {stride})"
                    )));
                }
                // sizes from a file may be anything: checked, so that no sum wraps
                let padded = |n: usize| padding.checked_mul(2).and_then(|p| p.checked_add(n));
                let (Some(ph), Some(pw)) = (padded(h), padded(w)) else {
                    return Err(bad(format!("padding {padding} is too large")));
                };
                if ph < *k || pw < *k {
                    return Err(bad(format!(
                        "a {k}×{k} kernel does not fit a {h}×{w} input with padding {padding}"
                    )));
                }
                bounded_product(&[*o, c, *k, *k])
                    .map_err(|v| bad(format!("a {o}×{c}×{k}×{k} weight of {v} values is too large")))?;
                gate(opts, *o)?;
                out.push(Owner::Weighted(WeightedSpec {
                    name: layer_name(prefix, index, self.own_name()),
                    shape: vec![*o, c, *k, *k],
                    opts: opts.clone(),
                }));
                let side = |padded: usize| (padded - k) / stride + 1;
                Ok(Input::Image(*o, side(ph), side(pw)))
            }
            Layer::Relu | Layer::Softplus | Layer::Tanh | Layer::Sigmoid | Layer::Identity => Ok(input),
            Layer::Dropout { p } => {
                if !(p.is_finite() && (0.0..1.0).contains(p)) {
                    return Err(bad(format!("p must be in [0, 1) (got {p})")));
                }
                Ok(input)
            }
            Layer::LeakyRelu { slope } => {
                if !slope.is_finite() {
                    return Err(bad(format!("slope must be a finite number (got {slope})")));
                }
                Ok(input)
            }
            Layer::MaxPool { size } | Layer::AvgPool { size } => {
                let (c, h, w) = image(self.kind())?;
                if *size == 0 || h < *size || w < *size {
                    return Err(bad(format!(
                        "a {size}×{size} window does not fit a {h}×{w} input (and must be at least 1)"
                    )));
                }
                Ok(Input::Image(c, h / size, w / size))
            }
            Layer::BatchNorm {
                eps, momentum, affine, ..
            } => {
                if !(eps.is_finite() && *eps > 0.0) {
                    return Err(bad(format!("eps must be a positive number (got {eps})")));
                }
                if !(momentum.is_finite() && (0.0..=1.0).contains(momentum)) {
                    return Err(bad(format!("momentum must be in [0, 1] (got {momentum})")));
                }
                out.push(Owner::Norm {
                    name: layer_name(prefix, index, self.own_name()),
                    channels: input.channels(),
                    per_sample: input.size() / input.channels().max(1),
                    affine: *affine,
                });
                Ok(input)
            }
            Layer::PreactBlock { out: o, stride } => {
                let (c, ..) = image("preact_block")?;
                if *o == 0 || *stride == 0 {
                    return Err(bad(format!("out and stride must be at least 1 (got {o}, {stride})")));
                }
                preact_block("", c, *o, *stride).infer(input, prefix, index, out)
            }
            Layer::Flatten => Ok(Input::Features(input.size())),
            Layer::GlobalAvgPool => Ok(Input::Features(image("global_avg_pool")?.0)),
            Layer::Upsample { factor } => {
                let (c, h, w) = image("upsample")?;
                if *factor == 0 {
                    return Err(bad("factor must be at least 1 (got 0)".into()));
                }
                match (h.checked_mul(*factor), w.checked_mul(*factor)) {
                    (Some(h), Some(w)) => Ok(Input::Image(c, h, w)),
                    _ => Err(bad(format!("upsampling a {h}×{w} input by {factor} overflows"))),
                }
            }
            Layer::Lwta { units, temperature } => {
                if *units < 2 {
                    return Err(bad(ParamError::UnitsPerBlock(*units).to_string()));
                }
                if !(temperature.is_finite() && *temperature > 0.0) {
                    return Err(bad(ParamError::Temperature(*temperature).to_string()));
                }
                let n = input.channels();
                if !n.is_multiple_of(*units) {
                    return Err(bad(format!(
                        "its {n} channels do not split into blocks of {units} units"
                    )));
                }
                Ok(input)
            }
            Layer::Residual { body, shortcut } => {
                if body.is_empty() {
                    return Err(bad("the body of a residual block needs at least one layer".into()));
                }
                let b = infer_list(input, body, &child(&at, "body"), out)?;
                let s = infer_list(input, shortcut, &child(&at, "shortcut"), out)?;
                if b != s {
                    return Err(bad(format!(
                        "the body gives {b} but the shortcut gives {s}: they are added, so they must agree"
                    )));
                }
                Ok(b)
            }
        }
    }
}

/// The shape after `layers` for `input`, pushing the layers with weights onto `out`.
pub(crate) fn infer_list(
    input: Input,
    layers: &[Layer],
    prefix: &str,
    out: &mut Vec<Owner>,
) -> Result<Input, ParamError> {
    layers
        .iter()
        .enumerate()
        .try_fold(input, |shape, (i, l)| l.infer_bounded(shape, prefix, i, out))
}

impl Layer {
    /// [`Layer::infer`], with its input and its output bounded by [`MAX_VALUES`] values per
    /// sample (sizes from a file or a script may be anything; so that no product wraps).
    fn infer_bounded(
        &self,
        input: Input,
        prefix: &str,
        index: usize,
        out: &mut Vec<Owner>,
    ) -> Result<Input, ParamError> {
        let too_large = |what: String, values: String| ParamError::TooLarge {
            what,
            values,
            most: MAX_VALUES,
        };
        bounded_product(&input.dims()).map_err(|n| too_large(format!("an input of {input}"), n))?;
        let next = self.infer(input, prefix, index, out)?;
        bounded_product(&next.dims()).map_err(|n| {
            let at = child(prefix, &index.to_string());
            too_large(
                format!("the output of layer {at} ({}) per sample, {next},", self.kind()),
                n,
            )
        })?;
        Ok(next)
    }
}

/// The pre-activation block of PreAct ResNet (`PreActBlock`): `bn1 → ReLU → conv1 (stride) →
/// bn2 → ReLU → conv2`, plus the input itself, or a strided 1×1 convolution of it when the
/// shape changes. `prefix` names its layers (`layer2.0`, or `""` for positions).
pub fn preact_block(prefix: &str, cin: usize, out: usize, stride: usize) -> Layer {
    let name = |n: &str| (!prefix.is_empty()).then(|| child(prefix, n));
    let conv = |n: &str, k, s| Layer::conv_no_bias(out, k, s, name(n), WeightInit::Torch);
    let norm = |n: &str| Layer::batch_norm(name(n));
    Layer::Residual {
        body: vec![
            norm("bn1"),
            Layer::Relu,
            conv("conv1", 3, stride),
            norm("bn2"),
            Layer::Relu,
            conv("conv2", 3, 1),
        ],
        shortcut: match stride != 1 || cin != out {
            true => vec![conv("shortcut.0", 1, stride)],
            false => Vec::new(),
        },
    }
}

/// `layers` with every `preact_block` replaced by its residual block, now that its input's
/// channels are known (checking the list's shapes on the way).
pub(crate) fn expand(input: Input, layers: &[Layer], prefix: &str) -> Result<Vec<Layer>, ParamError> {
    let mut shape = input;
    let mut out = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let l = match l {
            Layer::PreactBlock { out: o, stride } => {
                // its own checks first (an image input, out and stride at least 1)
                l.infer_bounded(shape, prefix, i, &mut Vec::new())?;
                preact_block("", shape.channels(), *o, *stride)
            }
            Layer::Residual { body, shortcut } => {
                let at = child(prefix, &i.to_string());
                Layer::Residual {
                    body: expand(shape, body, &child(&at, "body"))?,
                    shortcut: expand(shape, shortcut, &child(&at, "shortcut"))?,
                }
            }
            other => other.clone(),
        };
        shape = l.infer_bounded(shape, prefix, i, &mut Vec::new())?;
        out.push(l);
    }
    Ok(out)
}

/// The most levels residual blocks may be nested (each level is a recursion of the shape
/// inference and of the forward pass).
pub const MAX_NESTING: usize = 64;

/// How deep residual blocks are nested in `layers` (0: none), found without recursion, so that
/// a hostile list is measured before anything recurses into it.
pub(crate) fn nesting(layers: &[Layer]) -> usize {
    let mut deepest = 0;
    let mut todo = vec![(layers, 0)];
    while let Some((list, depth)) = todo.pop() {
        deepest = deepest.max(depth);
        for l in list {
            if let Layer::Residual { body, shortcut } = l {
                todo.push((body, depth + 1));
                todo.push((shortcut, depth + 1));
            }
        }
    }
    deepest
}

/// Every layer of `layers`, residual blocks' inner layers included, in forward order.
fn visit_mut(layers: &mut [Layer], f: &mut impl FnMut(&mut Layer)) {
    for l in layers {
        if let Layer::Residual { body, shortcut } = l {
            visit_mut(body, f);
            visit_mut(shortcut, f);
        }
        f(l);
    }
}

/// True when some layer (residual blocks' included) is `pred`.
pub(crate) fn any(layers: &[Layer], pred: impl Fn(&Layer) -> bool) -> bool {
    let mut found = false;
    visit(layers, &mut |l| found |= pred(l));
    found
}

/// Every layer, residual blocks' inner layers included.
pub(crate) fn visit(layers: &[Layer], f: &mut impl FnMut(&Layer)) {
    for l in layers {
        if let Layer::Residual { body, shortcut } = l {
            visit(body, f);
            visit(shortcut, f);
        }
        f(l);
    }
}

/// Put parametric noise injection at `site` (or none) on every layer with weights; at the
/// activations, not on the last one (the classifier).
pub(crate) fn set_noise(layers: &mut [Layer], site: Option<NoiseSite>) {
    each_weighted(layers, |o, last| {
        o.noise = match site {
            Some(NoiseSite::Activations) if last => None,
            s => s,
        }
    });
}

/// `f(options, is the last)` on every layer with weights, in forward order.
fn each_weighted(layers: &mut [Layer], mut f: impl FnMut(&mut Weighted, bool)) {
    let mut count = 0;
    visit(layers, &mut |l| count += usize::from(l.opts().is_some()));
    let mut seen = 0;
    visit_mut(layers, &mut |l| {
        if let Some(o) = l.opts_mut() {
            seen += 1;
            f(o, seen == count);
        }
    });
}

/// Put the IBP prior on every layer with weights but the last, in blocks of `units`.
pub(crate) fn set_ibp(layers: &mut [Layer], gate: Option<Gate>) {
    each_weighted(layers, |o, last| o.ibp = if last { None } else { gate });
}

/// Tensors in PyTorch `state_dict` order: per layer weight, bias, the noise scale, then the
/// IBP parameters; a batch norm's weight, bias, running mean and running variance.
pub(crate) fn param_specs(owners: &[Owner]) -> Vec<Spec> {
    let mut specs = Vec::new();
    for owner in owners {
        let l = match owner {
            Owner::Weighted(l) => l,
            Owner::Norm {
                name, channels, affine, ..
            } => {
                let mut push = |suffix: &str, init: Init, buffer: bool| {
                    specs.push(Spec {
                        name: format!("{name}.{suffix}"),
                        shape: vec![*channels],
                        init,
                        buffer,
                    })
                };
                if *affine {
                    push("weight", Init::Const(1.0), false);
                    push("bias", Init::Zeros, false);
                }
                push("running_mean", Init::Zeros, true);
                push("running_var", Init::Const(1.0), true);
                continue;
            }
        };
        let fan_in: usize = l.shape[1..].iter().product();
        let fan_out: usize = l.shape[0] * l.shape[2..].iter().product::<usize>();
        let (w, b) = match l.opts.init {
            WeightInit::Torch => (Init::Uniform { fan_in }, Init::Uniform { fan_in }),
            WeightInit::He => (Init::KaimingNormal { fan: fan_in }, Init::Zeros),
            WeightInit::HeFanOut => (Init::KaimingNormal { fan: fan_out }, Init::Zeros),
            WeightInit::Zeros => (Init::Zeros, Init::Zeros),
            WeightInit::ZeroBias => (Init::Uniform { fan_in }, Init::Zeros),
        };
        let mut push = |suffix: &str, shape: Vec<usize>, init: Init| {
            specs.push(Spec {
                name: format!("{}.{suffix}", l.name),
                shape,
                init,
                buffer: false,
            })
        };
        push("weight", l.shape.clone(), w);
        if !l.opts.no_bias {
            push("bias", vec![l.shape[0]], b);
        }
        match l.opts.noise {
            Some(NoiseSite::Weights) => push("alpha_w", vec![1], Init::Const(ALPHA_INIT)),
            Some(NoiseSite::Activations) => push("alpha_a", vec![1], Init::Const(ALPHA_INIT)),
            None => {}
        }
        if let Some(g) = l.opts.ibp {
            // utilities per (block, input) of a linear layer, per block of a convolution
            let blocks = l.shape[0] / g.units;
            let logit = if l.shape.len() == 2 {
                vec![blocks, l.shape[1]]
            } else {
                vec![blocks]
            };
            push("ibp_logit", logit, Init::Const(LOGIT_INIT as f32));
            push("ibp_a", vec![blocks], Init::Const(softplus_inv(g.prior.alpha) as f32));
            push("ibp_b", vec![blocks], Init::Const(softplus_inv(1.0) as f32));
        }
    }
    specs
}

/// `, bias=False` for a layer without bias.
fn no_bias(opts: &Weighted) -> &'static str {
    if opts.no_bias {
        ", bias=False"
    } else {
        ""
    }
}

/// `, <s>stride, <p>padding` for the options that differ from PyTorch's defaults.
fn conv_options(stride: usize, padding: usize, s: &str, p: &str) -> String {
    let mut out = String::new();
    if stride != 1 {
        out += &format!(", {s}{stride}");
    }
    if padding != 0 {
        out += &format!(", {p}{padding}");
    }
    out
}

/// A compact description: `conv32(3×3, p1)-relu-max_pool2-flatten-fc10`.
pub(crate) fn describe(layers: &[Layer]) -> String {
    let parts: Vec<String> = layers
        .iter()
        .map(|l| match l {
            Layer::Linear { out, .. } => format!("fc{out}"),
            Layer::Conv2d {
                out,
                kernel,
                stride,
                padding,
                ..
            } => format!(
                "conv{out}({kernel}×{kernel}{})",
                conv_options(*stride, *padding, "s", "p")
            ),
            Layer::MaxPool { size } => format!("max_pool{size}"),
            Layer::AvgPool { size } => format!("avg_pool{size}"),
            Layer::Dropout { p } => format!("dropout{p}"),
            Layer::Upsample { factor } => format!("upsample{factor}"),
            Layer::Lwta { units, .. } => format!("lwta{units}"),
            Layer::BatchNorm { .. } => "bn".into(),
            Layer::PreactBlock { out, stride } => format!("preact{out}/{stride}"),
            Layer::Residual { body, shortcut } => {
                let sc = if shortcut.is_empty() {
                    "identity".to_string()
                } else {
                    describe(shortcut)
                };
                format!("[{} + {sc}]", describe(body))
            }
            other => other.kind().to_string(),
        })
        .collect();
    parts.join("-")
}

/// The PyTorch source of `layers` as an `nn.Sequential` over `input`, and whether it uses
/// the `Residual` and `LWTA` modules (defined by [`torch_defs`]).
pub(crate) fn torch_sequential(input: Input, layers: &[Layer], uses: &mut Uses) -> String {
    let mut shape = input;
    let mut parts = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        parts.push(torch_layer(shape, l, uses));
        // the list was checked when the network was built
        shape = l.infer(shape, "", i, &mut Vec::new()).unwrap_or(shape);
    }
    let named = layers.iter().any(|l| l.own_name().is_some());
    if !named {
        return format!("nn.Sequential({})", parts.join(", "));
    }
    // layers with their own names (`conv1`, `feature_extractor.conv1`): nested
    // `nn.Sequential(OrderedDict(...))` under those names, so the state_dict keys are the same;
    // a layer without weights joins the module of the layer before it
    uses.ordered = true;
    let mut parent: Vec<String> = Vec::new();
    let entries: Vec<(Vec<String>, String)> = layers
        .iter()
        .zip(parts)
        .enumerate()
        .map(|(i, (l, text))| {
            let path = match l.own_name() {
                Some(name) => {
                    let path: Vec<String> = name.split('.').map(String::from).collect();
                    parent = path[..path.len() - 1].to_vec();
                    path
                }
                None => {
                    let mut p = parent.clone();
                    p.push(format!("{}{i}", l.kind()));
                    p
                }
            };
            (path, text)
        })
        .collect();
    ordered_dict(&entries)
}

/// `nn.Sequential(OrderedDict([...]))` of `(path, module)` entries, runs of entries under the
/// same first name nested under it.
fn ordered_dict(entries: &[(Vec<String>, String)]) -> String {
    let mut items = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let (path, text) = &entries[i];
        if path.len() == 1 {
            items.push(format!("(\"{}\", {text})", path[0]));
            i += 1;
            continue;
        }
        let head = &path[0];
        let end = (i..entries.len())
            .find(|&j| entries[j].0.len() == 1 || entries[j].0[0] != *head)
            .unwrap_or(entries.len());
        let inner: Vec<(Vec<String>, String)> = entries[i..end]
            .iter()
            .map(|(p, t)| (p[1..].to_vec(), t.clone()))
            .collect();
        items.push(format!("(\"{head}\", {})", ordered_dict(&inner)));
        i = end;
    }
    format!("nn.Sequential(OrderedDict([{}]))", items.join(", "))
}

/// Which helper modules a PyTorch source uses.
#[derive(Default)]
pub(crate) struct Uses {
    pub residual: bool,
    pub gap: bool,
    /// Named modules (`collections.OrderedDict`).
    pub ordered: bool,
}

fn torch_layer(input: Input, l: &Layer, uses: &mut Uses) -> String {
    let cin = input.channels();
    match l {
        Layer::Linear { out, opts } => format!("nn.Linear({cin}, {out}{})", no_bias(opts)),
        Layer::Conv2d {
            out,
            kernel,
            stride,
            padding,
            opts,
        } => format!(
            "nn.Conv2d({cin}, {out}, {kernel}{}{})",
            conv_options(*stride, *padding, "stride=", "padding="),
            no_bias(opts)
        ),
        Layer::Relu => "nn.ReLU()".into(),
        Layer::MaxPool { size } => format!("nn.MaxPool2d({size})"),
        Layer::AvgPool { size } => format!("nn.AvgPool2d({size})"),
        Layer::Dropout { p } => format!("nn.Dropout({p})"),
        Layer::LeakyRelu { slope } => format!("nn.LeakyReLU({slope})"),
        Layer::Softplus => "nn.Softplus()".into(),
        Layer::Tanh => "nn.Tanh()".into(),
        Layer::Sigmoid => "nn.Sigmoid()".into(),
        Layer::Identity => "nn.Identity()".into(),
        Layer::BatchNorm {
            eps, momentum, affine, ..
        } => {
            let d = match input {
                Input::Features(_) => 1,
                Input::Image(..) => 2,
            };
            let mut opts = String::new();
            if *eps != BN_EPS {
                opts += &format!(", eps={eps}");
            }
            if *momentum != BN_MOMENTUM {
                opts += &format!(", momentum={momentum}");
            }
            if !affine {
                opts += ", affine=False";
            }
            format!("nn.BatchNorm{d}d({cin}{opts})")
        }
        Layer::Flatten => "nn.Flatten()".into(),
        Layer::GlobalAvgPool => {
            uses.gap = true;
            "GlobalAvgPool()".into()
        }
        Layer::Upsample { factor } => format!("nn.Upsample(scale_factor={factor})"),
        // lowered to a residual block when the network is built
        Layer::PreactBlock { out, stride } => torch_layer(input, &preact_block("", cin, *out, *stride), uses),
        Layer::Lwta { units, temperature } => format!("LWTA({units}, {temperature})"),
        Layer::Residual { body, shortcut } => {
            uses.residual = true;
            format!(
                "Residual({}, {})",
                torch_sequential(input, body, uses),
                torch_sequential(input, shortcut, uses)
            )
        }
    }
}

/// The definitions a PyTorch source needs before it.
pub(crate) fn torch_defs(uses: &Uses) -> String {
    let mut s = String::new();
    if uses.ordered {
        s += "from collections import OrderedDict\n\n";
    }
    if uses.residual {
        s += "class Residual(nn.Module):  # body(x) + shortcut(x); an empty shortcut is the identity\n\
              \x20   def __init__(self, body, shortcut):\n\
              \x20       super().__init__()\n\
              \x20       self.body, self.shortcut = body, shortcut\n\
              \x20   def forward(self, x):\n\
              \x20       return self.body(x) + self.shortcut(x)\n\n";
    }
    if uses.gap {
        s += "class GlobalAvgPool(nn.Module):  # the mean over each channel's positions\n\
              \x20   def forward(self, x):\n\
              \x20       return x.mean((2, 3))\n\n";
    }
    s
}
