//! Architectures: every network is a list of layers ([`super::layer`]); `mlp`, `cnn`,
//! `resnet`, `lwta_mlp` and `lwta_cnn` are presets that lower to one. An [`Arch`] keeps the
//! record it was made from (a preset's few numbers, or the layer list itself): that record is
//! what a checkpoint stores, and loading it runs the same checks as the constructor.

use super::ibp::IbpPrior;
use super::layer::{
    self, bounded_product, infer_list, Gate, Input, Layer, NoiseSite, Spec, Uses, WeightInit, Weighted, MAX_VALUES,
};
use crate::error::ParamError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// How an architecture was described: what a checkpoint's `advlab.arch` metadata holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// `Flatten, Linear, ReLU, …, Linear`: `layers[0]` inputs, `layers[last]` classes.
    Mlp {
        layers: Vec<usize>,
        /// Parametric noise injection (He et al. 2019), when present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        noise_injection: Option<NoiseSite>,
    },
    /// `Conv2d(c,32,3,p=1), ReLU, MaxPool2d(2), Conv2d(32,64,3,p=1), ReLU, MaxPool2d(2),
    /// Flatten, Linear(64·(h/4)·(w/4), 128), ReLU, Linear(128, classes)`.
    Cnn {
        channels: usize,
        height: usize,
        width: usize,
        classes: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        noise_injection: Option<NoiseSite>,
    },
    /// A residual network without batch norm: a 3×3 stem conv to `base_width` channels, then
    /// `blocks.len()` stages of `blocks[s]` basic blocks with `base_width·2^s` channels (the
    /// first block of every stage but the first halves the resolution), global average
    /// pooling and a linear classifier.
    Resnet {
        channels: usize,
        height: usize,
        width: usize,
        classes: usize,
        base_width: usize,
        blocks: Vec<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        noise_injection: Option<NoiseSite>,
    },
    /// The MLP with stochastic LWTA instead of ReLU on every hidden layer.
    LwtaMlp { layers: Vec<usize>, lwta: Lwta },
    /// The small CNN with stochastic LWTA instead of ReLU (before each max-pool, and on the
    /// hidden linear layer).
    LwtaCnn {
        channels: usize,
        height: usize,
        width: usize,
        classes: usize,
        lwta: Lwta,
    },
    /// PreAct ResNet-18 for 3×32×32 images (He et al. 2016, as in Wong et al.'s fast_adversarial
    /// `preact_resnet.py`, whose projection shortcut takes the block's raw input): conv1 → four
    /// stages of two pre-activation blocks (64, 128, 256, 512 channels) → bn → ReLU → avg-pool
    /// 4 → linear, its names (`layer2.0.shortcut.0`).
    PreactResnet18 { classes: usize },
    /// WideResNet-`depth`-`widen` for 3×32×32 images (Zagoruyko & Komodakis 2016, as in
    /// RobustBench's and TRADES' `wide_resnet.py`): conv1 → three groups of (depth − 4)/6
    /// pre-activation blocks (16·widen, 32·widen, 64·widen channels) → bn1 → ReLU → avg-pool 8
    /// → fc, its names (`block1.layer.0.convShortcut`) and init.
    WideResnet {
        depth: usize,
        widen: usize,
        classes: usize,
        /// Dropout inside every block, between its two convolutions.
        #[serde(default, skip_serializing_if = "is_zero")]
        drop: f64,
    },
    /// Any list of layers over `input` (`[features]` or `[C, H, W]`).
    Sequential {
        input: Vec<usize>,
        layers: Vec<Layer>,
        /// Stochastic passes a prediction averages (networks with LWTA layers).
        #[serde(default = "one", skip_serializing_if = "is_one")]
        passes: usize,
    },
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The most residual blocks a stage of a preset may have (ResNet-1001 has 166): a record that
/// asks for more is refused before its layer list is built.
pub const MAX_BLOCKS: usize = 1000;

/// The most stochastic passes a prediction may average.
pub const MAX_PASSES: usize = 1000;

/// `passes`, checked: at least 1 and at most [`MAX_PASSES`].
fn check_passes(passes: usize) -> Result<(), ParamError> {
    match passes {
        0 => Err(ParamError::PassesZero),
        p if p > MAX_PASSES => Err(ParamError::PassesTooMany {
            passes: p,
            most: MAX_PASSES,
        }),
        _ => Ok(()),
    }
}

/// The error of a 3×3 convolution of `channels` in and out channels, too large to allocate.
fn too_wide(what: &str, channels: usize) -> ParamError {
    ParamError::TooLarge {
        what: what.into(),
        values: bounded_product(&[channels, channels, 9]).map_or_else(|v| v, |n| n.to_string()),
        most: MAX_VALUES,
    }
}

/// `blocks` residual blocks in one stage, checked against [`MAX_BLOCKS`].
fn check_blocks(blocks: usize) -> Result<(), ParamError> {
    if blocks > MAX_BLOCKS {
        return Err(ParamError::TooManyBlocks {
            blocks,
            most: MAX_BLOCKS,
        });
    }
    Ok(())
}

/// The architecture of a model: its layers, and the record that rebuilds it.
#[derive(Clone, Debug)]
pub struct Arch {
    record: Record,
    input: Input,
    layers: Vec<Layer>,
    output: Input,
    passes: usize,
}

impl PartialEq for Arch {
    fn eq(&self, other: &Self) -> bool {
        self.record == other.record
    }
}

impl Serialize for Arch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.record.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Arch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let record = Record::deserialize(d)?;
        Arch::from_record(record).map_err(serde::de::Error::custom)
    }
}

/// The competition of a stochastic LWTA model (Panousis et al. 2021).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lwta {
    /// Units competing in one block (U).
    pub units_per_block: usize,
    /// The Gumbel-softmax temperature of the relaxed winners drawn in training.
    pub temperature: f64,
    /// Stochastic passes whose softmax a prediction averages.
    pub passes: usize,
    /// The Indian buffet process prior over the connections of every LWTA layer (none: all
    /// connections always on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ibp: Option<IbpPrior>,
}

impl Default for Lwta {
    fn default() -> Self {
        Self {
            units_per_block: 2,
            temperature: 0.67,
            passes: 1,
            ibp: None,
        }
    }
}

impl Lwta {
    /// Check the rules that do not depend on layer sizes.
    fn check(&self) -> Result<(), ParamError> {
        if self.units_per_block < 2 {
            return Err(ParamError::UnitsPerBlock(self.units_per_block));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(ParamError::Temperature(self.temperature));
        }
        check_passes(self.passes)?;
        if let Some(ibp) = self.ibp {
            if !(ibp.alpha.is_finite() && ibp.alpha > 0.0) {
                return Err(ParamError::IbpAlpha(ibp.alpha));
            }
            if !(ibp.temperature.is_finite() && ibp.temperature > 0.0) {
                return Err(ParamError::IbpTemperature(ibp.temperature));
            }
        }
        Ok(())
    }

    /// Check that a layer of `size` units splits into blocks.
    fn check_size(&self, size: usize) -> Result<(), ParamError> {
        if !size.is_multiple_of(self.units_per_block) {
            return Err(ParamError::LwtaNotDivisible {
                size,
                units: self.units_per_block,
            });
        }
        Ok(())
    }
}

/// One basic residual block of the resnet preset: where its parameters are and how it is wired.
struct BlockSpec {
    /// `stages.{s}.{b}`
    prefix: String,
    cin: usize,
    cout: usize,
    stride: usize,
    /// A 1×1 conv (strided) on the shortcut, when the shape changes.
    projection: bool,
}

/// The residual blocks of the resnet preset, in order.
fn resnet_blocks(base_width: usize, blocks: &[usize]) -> Vec<BlockSpec> {
    let mut out = Vec::new();
    let mut cin = base_width;
    for (s, &n) in blocks.iter().enumerate() {
        let cout = base_width << s;
        for b in 0..n {
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            out.push(BlockSpec {
                prefix: format!("stages.{s}.{b}"),
                cin,
                cout,
                stride,
                projection: stride != 1 || cin != cout,
            });
            cin = cout;
        }
    }
    out
}

fn check_image(c: usize, h: usize, w: usize) -> Result<(), ParamError> {
    if c == 0 || h == 0 || w == 0 {
        return Err(ParamError::InputShape(vec![c, h, w]));
    }
    Ok(())
}

fn check_classes(classes: usize) -> Result<(), ParamError> {
    if classes < 2 {
        return Err(ParamError::ClassesTooFew(classes));
    }
    Ok(())
}

fn check_mlp(layers: &[usize]) -> Result<(), ParamError> {
    if layers.len() < 2 {
        return Err(ParamError::MlpTooFewLayers(layers.to_vec()));
    }
    if layers.contains(&0) {
        return Err(ParamError::LayerSizeZero(layers.to_vec()));
    }
    Ok(())
}

fn check_cnn(c: usize, h: usize, w: usize, classes: usize) -> Result<(), ParamError> {
    check_image(c, h, w)?;
    if h < 4 || w < 4 {
        return Err(ParamError::CnnInputTooSmall(h, w));
    }
    check_classes(classes)
}

/// A 3×3 convolution with padding 1 (and these options).
fn conv3(out: usize, stride: usize, opts: Weighted) -> Layer {
    Layer::Conv2d {
        out,
        kernel: 3,
        stride,
        padding: 1,
        opts,
    }
}

/// A named layer with He's init (the resnet's convolutions).
fn he(name: String) -> Weighted {
    named(name, WeightInit::He)
}

/// A named layer with this init.
fn named(name: impl Into<String>, init: WeightInit) -> Weighted {
    Weighted {
        name: Some(name.into()),
        init,
        ..Weighted::default()
    }
}

/// `Flatten, Linear, act, …, Linear` over `sizes`.
fn mlp_layers(sizes: &[usize], act: &Layer) -> Vec<Layer> {
    let mut out = vec![Layer::Flatten];
    for (k, &n) in sizes[1..].iter().enumerate() {
        if k > 0 {
            out.push(act.clone());
        }
        out.push(Layer::linear(n));
    }
    out
}

/// The small CNN with `act` as its activation.
fn cnn_layers(classes: usize, act: &Layer) -> Vec<Layer> {
    let pool = Layer::MaxPool { size: 2 };
    vec![
        conv3(32, 1, Weighted::default()),
        act.clone(),
        pool.clone(),
        conv3(64, 1, Weighted::default()),
        act.clone(),
        pool,
        Layer::Flatten,
        Layer::linear(128),
        act.clone(),
        Layer::linear(classes),
    ]
}

fn resnet_layers(base_width: usize, blocks: &[usize], classes: usize) -> Vec<Layer> {
    // without batch norm, PyTorch's default init shrinks the signal at every conv and the
    // network barely learns: He's init keeps it
    let mut out = vec![conv3(base_width, 1, he("stem".into())), Layer::Relu];
    for b in resnet_blocks(base_width, blocks) {
        let shortcut = match b.projection {
            true => vec![Layer::Conv2d {
                out: b.cout,
                kernel: 1,
                stride: b.stride,
                padding: 0,
                opts: he(format!("{}.shortcut", b.prefix)),
            }],
            false => Vec::new(),
        };
        out.push(Layer::Residual {
            body: vec![
                conv3(b.cout, b.stride, he(format!("{}.conv1", b.prefix))),
                Layer::Relu,
                conv3(b.cout, 1, he(format!("{}.conv2", b.prefix))),
            ],
            shortcut,
        });
        out.push(Layer::Relu);
    }
    out.push(Layer::GlobalAvgPool);
    out.push(Layer::Linear {
        out: classes,
        opts: Weighted {
            name: Some("fc".into()),
            ..Weighted::default()
        },
    });
    out
}

/// A convolution without bias, named, with this init (the batch-normed networks').
fn conv_nb(name: String, out: usize, kernel: usize, stride: usize, init: WeightInit) -> Layer {
    Layer::conv_no_bias(out, kernel, stride, Some(name), init)
}

/// A batch norm with PyTorch's defaults, named.
fn bn(name: String) -> Layer {
    Layer::batch_norm(Some(name))
}

/// The head of a pre-activation network: the last blocks' batch norm `bn` → ReLU → average
/// pooling over `pool×pool` (the whole map at 32×32 input) → flatten → `classifier`.
fn preact_head(bn_name: &str, pool: usize, classifier: Layer) -> [Layer; 5] {
    [
        bn(bn_name.into()),
        Layer::Relu,
        Layer::AvgPool { size: pool },
        Layer::Flatten,
        classifier,
    ]
}

fn preact_resnet18_layers(classes: usize) -> Vec<Layer> {
    let mut out = vec![conv_nb("conv1".into(), 64, 3, 1, WeightInit::Torch)];
    let mut cin = 64;
    for (s, (planes, stride)) in [(64, 1), (128, 2), (256, 2), (512, 2)].into_iter().enumerate() {
        for b in 0..2 {
            let st = if b == 0 { stride } else { 1 };
            out.push(layer::preact_block(&format!("layer{}.{b}", s + 1), cin, planes, st));
            cin = planes;
        }
    }
    out.extend(preact_head(
        "bn",
        4,
        Layer::Linear {
            out: classes,
            opts: named("linear", WeightInit::Torch),
        },
    ));
    out
}

/// The channels of a WideResNet's stem and three groups.
fn wide_channels(widen: usize) -> [usize; 4] {
    [16, 16 * widen, 32 * widen, 64 * widen]
}

fn wide_resnet_layers(depth: usize, widen: usize, classes: usize, drop: f64) -> Vec<Layer> {
    let ch = wide_channels(widen);
    let he = WeightInit::HeFanOut;
    let mut out = vec![conv_nb("conv1".into(), ch[0], 3, 1, he)];
    for g in 0..3 {
        let (cin, cout, stride) = (ch[g], ch[g + 1], if g == 0 { 1 } else { 2 });
        for i in 0..(depth - 4) / 6 {
            let p = format!("block{}.layer.{i}", g + 1);
            let (inp, st) = if i == 0 { (cin, stride) } else { (cout, 1) };
            let mut body = vec![
                conv_nb(format!("{p}.conv1"), cout, 3, st, he),
                bn(format!("{p}.bn2")),
                Layer::Relu,
            ];
            if drop > 0.0 {
                body.push(Layer::Dropout { p: drop });
            }
            body.push(conv_nb(format!("{p}.conv2"), cout, 3, 1, he));
            let pre = [bn(format!("{p}.bn1")), Layer::Relu];
            if inp == cout {
                // the identity shortcut takes the block's input before its batch norm
                body.splice(0..0, pre);
                out.push(Layer::Residual {
                    body,
                    shortcut: Vec::new(),
                });
            } else {
                // the 1×1 shortcut takes it after (`x = relu1(bn1(x))` there)
                out.extend(pre);
                out.push(Layer::Residual {
                    body,
                    shortcut: vec![conv_nb(format!("{p}.convShortcut"), cout, 1, st, he)],
                });
            }
        }
    }
    out.extend(preact_head(
        "bn1",
        8,
        Layer::Linear {
            out: classes,
            opts: named("fc", WeightInit::ZeroBias),
        },
    ));
    out
}

/// The LWTA activation of a preset, and its IBP gates on every layer but the classifier.
fn lwta_layers(mut layers: Vec<Layer>, l: &Lwta) -> Vec<Layer> {
    layer::set_ibp(
        &mut layers,
        l.ibp.map(|prior| Gate {
            units: l.units_per_block,
            prior,
        }),
    );
    layers
}

impl Lwta {
    fn layer(&self) -> Layer {
        Layer::Lwta {
            units: self.units_per_block,
            temperature: self.temperature,
        }
    }
}

/// The input, layers and passes a record describes, after the checks its constructor runs.
fn lower(record: &Record) -> Result<(Input, Vec<Layer>, usize), ParamError> {
    let with_noise = |mut layers: Vec<Layer>, site: &Option<NoiseSite>| {
        layer::set_noise(&mut layers, *site);
        layers
    };
    Ok(match record {
        Record::Mlp {
            layers,
            noise_injection,
        } => {
            check_mlp(layers)?;
            let l = with_noise(mlp_layers(layers, &Layer::Relu), noise_injection);
            (Input::Features(layers[0]), l, 1)
        }
        Record::Cnn {
            channels,
            height,
            width,
            classes,
            noise_injection,
        } => {
            check_cnn(*channels, *height, *width, *classes)?;
            let l = with_noise(cnn_layers(*classes, &Layer::Relu), noise_injection);
            (Input::Image(*channels, *height, *width), l, 1)
        }
        Record::Resnet {
            channels,
            height,
            width,
            classes,
            base_width,
            blocks,
            noise_injection,
        } => {
            let (c, h, w) = (*channels, *height, *width);
            check_image(c, h, w)?;
            if blocks.is_empty() || blocks.len() > 4 || blocks.contains(&0) {
                return Err(ParamError::ResnetBlocks(blocks.clone()));
            }
            blocks.iter().try_for_each(|&b| check_blocks(b))?;
            if *base_width == 0 {
                return Err(ParamError::ResnetWidthZero);
            }
            // the last stage has base_width·2^3 channels at most: bounded, so that no shift wraps
            if *base_width > MAX_VALUES {
                return Err(too_wide("the first stage's 3×3 convolution", *base_width));
            }
            let factor = 1 << (blocks.len() - 1);
            if h % factor != 0 || w % factor != 0 {
                return Err(ParamError::ResnetInputNotDivisible {
                    height: h,
                    width: w,
                    stages: blocks.len(),
                    factor,
                });
            }
            check_classes(*classes)?;
            let l = resnet_layers(*base_width, blocks, *classes);
            (Input::Image(c, h, w), with_noise(l, noise_injection), 1)
        }
        Record::LwtaMlp { layers, lwta } => {
            check_mlp(layers)?;
            lwta.check()?;
            for &size in &layers[1..layers.len() - 1] {
                lwta.check_size(size)?;
            }
            let l = lwta_layers(mlp_layers(layers, &lwta.layer()), lwta);
            (Input::Features(layers[0]), l, lwta.passes)
        }
        Record::LwtaCnn {
            channels,
            height,
            width,
            classes,
            lwta,
        } => {
            check_cnn(*channels, *height, *width, *classes)?;
            lwta.check()?;
            for size in [32, 64, 128] {
                lwta.check_size(size)?;
            }
            let l = lwta_layers(cnn_layers(*classes, &lwta.layer()), lwta);
            (Input::Image(*channels, *height, *width), l, lwta.passes)
        }
        Record::PreactResnet18 { classes } => {
            check_classes(*classes)?;
            (Input::Image(3, 32, 32), preact_resnet18_layers(*classes), 1)
        }
        Record::WideResnet {
            depth,
            widen,
            classes,
            drop,
        } => {
            if *depth < 10 || (depth - 4) % 6 != 0 {
                return Err(ParamError::WideResnetDepth(*depth));
            }
            check_blocks((depth - 4) / 6)?;
            if *widen == 0 {
                return Err(ParamError::WideResnetWidenZero);
            }
            // 64·widen channels in the last group: bounded, so that no product wraps
            if *widen > MAX_VALUES {
                return Err(too_wide("the first group's 3×3 convolution", widen.saturating_mul(16)));
            }
            if !(drop.is_finite() && (0.0..1.0).contains(drop)) {
                return Err(ParamError::WideResnetDrop(*drop));
            }
            check_classes(*classes)?;
            let l = wide_resnet_layers(*depth, *widen, *classes, *drop);
            (Input::Image(3, 32, 32), l, 1)
        }
        Record::Sequential { input, layers, passes } => {
            if layers.is_empty() {
                return Err(ParamError::SequentialEmpty);
            }
            let input = Input::from_dims(input)?;
            check_passes(*passes)?;
            let depth = layer::nesting(layers);
            if depth > layer::MAX_NESTING {
                return Err(ParamError::NestingTooDeep {
                    depth,
                    most: layer::MAX_NESTING,
                });
            }
            if *passes > 1 && !has_lwta(layers) {
                return Err(ParamError::PassesNotStochastic);
            }
            (input, layer::expand(input, layers, "")?, *passes)
        }
    })
}

fn has_lwta(layers: &[Layer]) -> bool {
    layer::any(layers, |l| matches!(l, Layer::Lwta { .. }))
}

/// TRADES' SmallCNN dropout after its first linear layer.
pub const TRADES_DROP: f64 = 0.5;

/// Unchecked parameters of the small CNN preset.
#[derive(Clone, Debug, PartialEq)]
pub struct CnnParams {
    /// `[C, H, W]` of the images.
    pub input: [usize; 3],
    pub classes: usize,
}

impl Default for CnnParams {
    /// MNIST: 1×28×28 images, 10 classes.
    fn default() -> Self {
        Self {
            input: [1, 28, 28],
            classes: 10,
        }
    }
}

/// Unchecked parameters of the resnet preset.
#[derive(Clone, Debug, PartialEq)]
pub struct ResnetParams {
    /// `[C, H, W]` of the images.
    pub input: [usize; 3],
    /// Channels of the first stage, doubled at each next one.
    pub width: usize,
    /// Basic blocks per stage.
    pub blocks: Vec<usize>,
    pub classes: usize,
}

/// Unchecked parameters of the WideResNet preset.
#[derive(Clone, Debug, PartialEq)]
pub struct WideResnetParams {
    /// 6n + 4 for n blocks per group.
    pub depth: usize,
    /// The widening factor k.
    pub widen: usize,
    pub classes: usize,
    /// Dropout between each block's convolutions.
    pub drop: f64,
}

impl Default for WideResnetParams {
    /// WideResNet-28-10 for CIFAR-10 (Madry et al.'s and TRADES' CIFAR network), no dropout.
    fn default() -> Self {
        Self {
            depth: 28,
            widen: 10,
            classes: crate::data::CIFAR10_CLASSES.len(),
            drop: 0.0,
        }
    }
}

impl Default for ResnetParams {
    /// CIFAR-10: 3×32×32 images, width 16, one block in each of three stages, 10 classes.
    fn default() -> Self {
        Self {
            input: [3, 32, 32],
            width: 16,
            blocks: vec![1, 1, 1],
            classes: 10,
        }
    }
}

impl Arch {
    /// The architecture a record describes, checked: a classifier, ending in at least two
    /// classes.
    pub fn from_record(record: Record) -> Result<Self, ParamError> {
        let arch = Self::network(record)?;
        match (&arch.record, arch.output) {
            (_, Input::Features(n)) if n >= 2 => {}
            (Record::Sequential { .. }, out) => return Err(ParamError::SequentialOutput(out.to_string())),
            // an mlp's last size (the presets with a `classes` field check it in `lower`)
            (_, Input::Features(n)) => return Err(ParamError::ClassesTooFew(n)),
            (_, out) => return Err(ParamError::SequentialOutput(out.to_string())),
        }
        Ok(arch)
    }

    /// The architecture a record describes, with any output shape (the autoencoders').
    pub(crate) fn network(record: Record) -> Result<Self, ParamError> {
        let (input, layers, passes) = lower(&record)?;
        let mut weighted = Vec::new();
        let output = infer_list(input, &layers, "", &mut weighted)?;
        // the parameters are allocated when a model is made: bounded first
        let mut total = Some(0usize);
        for spec in layer::param_specs(&weighted) {
            total = match bounded_product(&spec.shape) {
                Ok(n) => total.and_then(|t| t.checked_add(n)),
                Err(_) => None,
            };
        }
        if total.is_none_or(|n| n > MAX_VALUES) {
            return Err(ParamError::TooLarge {
                what: "the network's parameters".into(),
                values: total.map_or("over 2^64".into(), |n| n.to_string()),
                most: MAX_VALUES,
            });
        }
        Ok(Arch {
            record,
            input,
            layers,
            output,
            passes,
        })
    }

    /// A network of `layers` over `input`, checked, shapes inferred: it must end in a flat
    /// output of at least two classes.
    pub fn sequential(input: Input, layers: Vec<Layer>) -> Result<Self, ParamError> {
        Self::from_record(Record::Sequential {
            input: input.dims(),
            layers,
            passes: 1,
        })
    }

    /// Madry et al.'s MNIST network (`mnist_challenge`, in the PyTorch ports' names `conv1`,
    /// `conv2`, `fc1`, `fc2`): conv32 5×5 (same padding) → ReLU → max-pool 2 → conv64 5×5 → ReLU →
    /// max-pool 2 → fc1024 → ReLU → fc10, for 1×28×28 images.
    pub fn madry_mnist_cnn() -> Self {
        let conv = |name: &str, out| Layer::Conv2d {
            out,
            kernel: 5,
            stride: 1,
            padding: 2,
            opts: named(name, WeightInit::Torch),
        };
        let fc = |name: &str, out| Layer::Linear {
            out,
            opts: named(name, WeightInit::Torch),
        };
        let pool = Layer::MaxPool { size: 2 };
        let layers = vec![
            conv("conv1", 32),
            Layer::Relu,
            pool.clone(),
            conv("conv2", 64),
            Layer::Relu,
            pool,
            Layer::Flatten,
            fc("fc1", 1024),
            Layer::Relu,
            fc("fc2", 10),
        ];
        // valid by construction
        #[allow(clippy::expect_used, reason = "a constant network that the checks accept")]
        Self::sequential(Input::Image(1, 28, 28), layers).expect("the Madry MNIST network is valid")
    }

    /// TRADES' SmallCNN for MNIST (`models/small_cnn.py`): `feature_extractor` conv32 3×3 →
    /// ReLU → conv32 → ReLU → max-pool 2 → conv64 → ReLU → conv64 → ReLU → max-pool 2, then
    /// `classifier` fc200 → ReLU → dropout(`drop`) → fc200 → ReLU → fc10; convolutions start
    /// with He's init and zero bias, the last layer at zero, as there.
    pub fn trades_small_cnn(drop: f64) -> Result<Self, ParamError> {
        let conv = |name: &str, out| Layer::Conv2d {
            out,
            kernel: 3,
            stride: 1,
            padding: 0,
            opts: named(format!("feature_extractor.{name}"), WeightInit::He),
        };
        let fc = |name: &str, out, init| Layer::Linear {
            out,
            opts: named(format!("classifier.{name}"), init),
        };
        let pool = Layer::MaxPool { size: 2 };
        let layers = vec![
            conv("conv1", 32),
            Layer::Relu,
            conv("conv2", 32),
            Layer::Relu,
            pool.clone(),
            conv("conv3", 64),
            Layer::Relu,
            conv("conv4", 64),
            Layer::Relu,
            pool,
            Layer::Flatten,
            fc("fc1", 200, WeightInit::Torch),
            Layer::Relu,
            Layer::Dropout { p: drop },
            fc("fc2", 200, WeightInit::Torch),
            Layer::Relu,
            fc("fc3", 10, WeightInit::Zeros),
        ];
        Self::sequential(Input::Image(1, 28, 28), layers)
    }

    /// PreAct ResNet-18 for 3×32×32 images and `classes` outputs, with the state_dict names of
    /// fast_adversarial's `PreActResNet18` and PyTorch's default init.
    pub fn preact_resnet18(classes: usize) -> Result<Self, ParamError> {
        Self::from_record(Record::PreactResnet18 { classes })
    }

    /// WideResNet-`depth`-`widen` for 3×32×32 images (depth = 6n + 4, n ≥ 1), with the
    /// state_dict names and init of RobustBench's `WideResNet`; `drop` is its `dropRate`.
    pub fn wide_resnet(p: &WideResnetParams) -> Result<Self, ParamError> {
        Self::from_record(Record::WideResnet {
            depth: p.depth,
            widen: p.widen,
            classes: p.classes,
            drop: p.drop,
        })
    }

    /// True when some layer is a batch norm (its running statistics move in training passes).
    pub fn has_batch_norm(&self) -> bool {
        layer::any(&self.layers, |l| matches!(l, Layer::BatchNorm { .. }))
    }

    /// True when some batch norm sees one value per channel of a sample (after a flat layer, or
    /// on 1×1 maps), so that a training batch of one sample cannot be normalised.
    pub fn needs_two_samples_per_batch(&self) -> bool {
        let mut owners = Vec::new();
        infer_list(self.input, &self.layers, "", &mut owners).is_ok()
            && owners
                .iter()
                .any(|o| matches!(o, layer::Owner::Norm { per_sample: 1, .. }))
    }

    /// True when a training pass draws random numbers (dropout, or any stochastic layer).
    pub fn draws_in_training(&self) -> bool {
        self.is_stochastic() || layer::any(&self.layers, |l| matches!(l, Layer::Dropout { .. }))
    }

    /// The MLP with these layer sizes, checked.
    pub fn mlp(layers: Vec<usize>) -> Result<Self, ParamError> {
        Self::from_record(Record::Mlp {
            layers,
            noise_injection: None,
        })
    }

    /// The small CNN for 1×28×28 images and 10 classes.
    pub fn cnn() -> Self {
        let d = CnnParams::default();
        // valid by construction: the checks cannot fail
        #[allow(clippy::expect_used, reason = "the default parameters, which the checks accept")]
        Self::cnn_for(d.input, d.classes).expect("the default cnn is valid")
    }

    /// The small CNN for `(C, H, W)` images (H, W ≥ 4: it pools twice) and `classes` outputs.
    pub fn cnn_for(input: [usize; 3], classes: usize) -> Result<Self, ParamError> {
        let [channels, height, width] = input;
        Self::from_record(Record::Cnn {
            channels,
            height,
            width,
            classes,
            noise_injection: None,
        })
    }

    /// A resnet for `(C, H, W)` images: `base_width` channels in the first stage, `blocks[s]`
    /// basic blocks in stage `s` (1 to 4 stages); H and W must be divisible by
    /// `2^(stages − 1)`.
    pub fn resnet(
        input: [usize; 3],
        base_width: usize,
        blocks: Vec<usize>,
        classes: usize,
    ) -> Result<Self, ParamError> {
        let [channels, height, width] = input;
        Self::from_record(Record::Resnet {
            channels,
            height,
            width,
            classes,
            base_width,
            blocks,
            noise_injection: None,
        })
    }

    /// The MLP of these layer sizes with stochastic LWTA activations: every hidden size must
    /// be a multiple of `units_per_block`.
    pub fn lwta_mlp(layers: Vec<usize>, lwta: Lwta) -> Result<Self, ParamError> {
        Self::from_record(Record::LwtaMlp { layers, lwta })
    }

    /// The small CNN with stochastic LWTA activations (its 32, 64 and 128 units must split
    /// into blocks of `units_per_block`).
    pub fn lwta_cnn(input: [usize; 3], classes: usize, lwta: Lwta) -> Result<Self, ParamError> {
        let [channels, height, width] = input;
        Self::from_record(Record::LwtaCnn {
            channels,
            height,
            width,
            classes,
            lwta,
        })
    }

    /// The same architecture with parametric noise injection at `site` (or none) on every
    /// layer with weights; LWTA presets stay as they are (their competition is their noise).
    pub fn with_noise_injection(mut self, site: Option<NoiseSite>) -> Self {
        match &mut self.record {
            Record::Mlp { noise_injection, .. }
            | Record::Cnn { noise_injection, .. }
            | Record::Resnet { noise_injection, .. } => *noise_injection = site,
            Record::Sequential { layers, .. } => {
                // a preact_block has no options to carry the noise: record its lowered block
                if layer::any(layers, |l| matches!(l, Layer::PreactBlock { .. })) {
                    *layers = self.layers.clone();
                }
                layer::set_noise(layers, site)
            }
            Record::LwtaMlp { .. }
            | Record::LwtaCnn { .. }
            | Record::PreactResnet18 { .. }
            | Record::WideResnet { .. } => return self,
        }
        layer::set_noise(&mut self.layers, site);
        self
    }

    /// Where noise is injected, if anywhere.
    pub fn noise_injection(&self) -> Option<NoiseSite> {
        let mut site = None;
        layer::visit(&self.layers, &mut |l| {
            site = site.or(l.opts().and_then(|o| o.noise));
        });
        site
    }

    /// The record a checkpoint stores.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The layers, in forward order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// True when some layer competes (LWTA).
    pub fn has_lwta(&self) -> bool {
        has_lwta(&self.layers)
    }

    /// True when some layer's connections have the IBP prior.
    pub fn has_ibp(&self) -> bool {
        layer::any(&self.layers, |l| l.opts().is_some_and(|o| o.ibp.is_some()))
    }

    /// Stochastic passes a prediction averages (1 but for LWTA models).
    pub fn passes(&self) -> usize {
        self.passes
    }

    /// The same LWTA architecture averaging `passes` passes.
    pub fn with_passes(mut self, passes: usize) -> Result<Self, ParamError> {
        check_passes(passes)?;
        match &mut self.record {
            Record::LwtaMlp { lwta, .. } | Record::LwtaCnn { lwta, .. } => lwta.passes = passes,
            Record::Sequential { passes: p, layers, .. } if has_lwta(layers) => *p = passes,
            _ => return Err(ParamError::PassesNotStochastic),
        }
        self.passes = passes;
        Ok(self)
    }

    /// True when a forward pass draws random numbers (noise injection, LWTA).
    pub fn is_stochastic(&self) -> bool {
        self.noise_injection().is_some() || self.has_lwta()
    }

    /// Number of outputs (classes; values per sample for an autoencoder's network).
    pub fn classes(&self) -> usize {
        self.output.size()
    }

    /// What the model takes per sample.
    pub fn input(&self) -> Input {
        self.input
    }

    /// Parameters in PyTorch `state_dict` order: per layer weight, bias, then the noise scale
    /// and the IBP parameters.
    pub(crate) fn param_specs(&self) -> Result<Vec<Spec>, ParamError> {
        let mut weighted = Vec::new();
        infer_list(self.input, &self.layers, "", &mut weighted)?;
        Ok(layer::param_specs(&weighted))
    }

    /// The equivalent PyTorch module, whose `state_dict` has the names and shapes of the
    /// saved file.
    pub fn torch_module(&self) -> String {
        let plain = self.plain_torch_module();
        let code = match &self.record {
            Record::LwtaMlp { lwta, .. } | Record::LwtaCnn { lwta, .. } => {
                return lwta_torch(&plain, lwta.passes, lwta.ibp.is_some())
            }
            Record::Sequential { .. } if self.has_lwta() => lwta_torch(&plain, self.passes, self.has_ibp()),
            _ => plain,
        };
        match self.noise_injection() {
            None => code,
            Some(site) => pni_torch(&code, site),
        }
    }
}

impl Arch {
    fn plain_torch_module(&self) -> String {
        let act = match &self.record {
            Record::LwtaMlp { lwta: l, .. } | Record::LwtaCnn { lwta: l, .. } => {
                format!("LWTA({}, {})", l.units_per_block, l.temperature)
            }
            _ => "nn.ReLU()".into(),
        };
        match &self.record {
            Record::Mlp { layers, .. } | Record::LwtaMlp { layers, .. } => {
                let mut parts = vec!["nn.Flatten()".to_string()];
                for (k, w) in layers.windows(2).enumerate() {
                    if k > 0 {
                        parts.push(act.clone());
                    }
                    parts.push(format!("nn.Linear({}, {})", w[0], w[1]));
                }
                format!("nn.Sequential({})", parts.join(", "))
            }
            Record::Cnn {
                channels,
                height,
                width,
                classes,
                ..
            }
            | Record::LwtaCnn {
                channels,
                height,
                width,
                classes,
                ..
            } => format!(
                "nn.Sequential(nn.Conv2d({channels}, 32, 3, padding=1), {act}, nn.MaxPool2d(2), \
                 nn.Conv2d(32, 64, 3, padding=1), {act}, nn.MaxPool2d(2), nn.Flatten(), \
                 nn.Linear({}, 128), {act}, nn.Linear(128, {classes}))",
                64 * (height / 4) * (width / 4)
            ),
            Record::Resnet {
                channels,
                classes,
                base_width,
                blocks,
                ..
            } => {
                let mut stages = Vec::new();
                let mut k = 0;
                let all = resnet_blocks(*base_width, blocks);
                for &n in blocks.iter() {
                    let inner: Vec<String> = all[k..k + n]
                        .iter()
                        .map(|b| format!("Block({}, {}, {})", b.cin, b.cout, b.stride))
                        .collect();
                    stages.push(format!("nn.Sequential({})", inner.join(", ")));
                    k += n;
                }
                format!(
                    "class Block(nn.Module):  # basic residual block, no batch norm\n\
                     \x20   def __init__(self, cin, cout, stride):\n\
                     \x20       super().__init__()\n\
                     \x20       self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)\n\
                     \x20       self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)\n\
                     \x20       self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()\n\
                     \x20   def forward(self, x):\n\
                     \x20       return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))\n\
                     \n\
                     class ResNet(nn.Module):\n\
                     \x20   def __init__(self):\n\
                     \x20       super().__init__()  # advlab inits convs with kaiming_normal_(mode=\"fan_in\", nonlinearity=\"relu\"), biases 0\n\
                     \x20       self.stem = nn.Conv2d({channels}, {base_width}, 3, padding=1)\n\
                     \x20       self.stages = nn.Sequential({})\n\
                     \x20       self.fc = nn.Linear({}, {classes})\n\
                     \x20   def forward(self, x):\n\
                     \x20       return self.fc(self.stages(F.relu(self.stem(x))).mean((2, 3)))\n",
                    stages.join(", "),
                    base_width << (blocks.len() - 1)
                )
            }
            Record::PreactResnet18 { classes } => format!(
                "class PreActBlock(nn.Module):  # fast_adversarial's preact_resnet.py\n\
                 \x20   def __init__(self, cin, cout, stride):\n\
                 \x20       super().__init__()\n\
                 \x20       self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)\n\
                 \x20       self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)\n\
                 \x20       self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)\n\
                 \x20       if stride != 1 or cin != cout:\n\
                 \x20           self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))\n\
                 \x20   def forward(self, x):\n\
                 \x20       out = self.conv1(F.relu(self.bn1(x)))\n\
                 \x20       out = self.conv2(F.relu(self.bn2(out)))\n\
                 \x20       return out + (self.shortcut(x) if hasattr(self, \"shortcut\") else x)\n\
                 \n\
                 class PreActResNet18(nn.Module):\n\
                 \x20   def __init__(self, classes={classes}):\n\
                 \x20       super().__init__()\n\
                 \x20       self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)\n\
                 \x20       cin, stages = 64, []\n\
                 \x20       for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:\n\
                 \x20           stages.append(nn.Sequential(PreActBlock(cin, planes, stride), PreActBlock(planes, planes, 1)))\n\
                 \x20           cin = planes\n\
                 \x20       self.layer1, self.layer2, self.layer3, self.layer4 = stages\n\
                 \x20       self.bn = nn.BatchNorm2d(512)\n\
                 \x20       self.linear = nn.Linear(512, classes)\n\
                 \x20   def forward(self, x):\n\
                 \x20       out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))\n\
                 \x20       return self.linear(F.avg_pool2d(F.relu(self.bn(out)), 4).flatten(1))\n"
            ),
            Record::WideResnet {
                depth,
                widen,
                classes,
                drop,
            } => format!(
                "class Block(nn.Module):  # RobustBench's wide_resnet.py BasicBlock\n\
                 \x20   def __init__(self, cin, cout, stride, drop):\n\
                 \x20       super().__init__()\n\
                 \x20       self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)\n\
                 \x20       self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)\n\
                 \x20       self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)\n\
                 \x20       self.drop, self.equal = drop, cin == cout\n\
                 \x20       self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)\n\
                 \x20   def forward(self, x):\n\
                 \x20       pre = F.relu(self.bn1(x))\n\
                 \x20       out = F.dropout(F.relu(self.bn2(self.conv1(pre))), self.drop, self.training)\n\
                 \x20       return self.conv2(out) + (x if self.equal else self.convShortcut(pre))\n\
                 \n\
                 class Group(nn.Module):\n\
                 \x20   def __init__(self, n, cin, cout, stride, drop):\n\
                 \x20       super().__init__()\n\
                 \x20       self.layer = nn.Sequential(*[Block(cin if i == 0 else cout, cout, stride if i == 0 else 1, drop) for i in range(n)])\n\
                 \x20   def forward(self, x):\n\
                 \x20       return self.layer(x)\n\
                 \n\
                 class WideResNet(nn.Module):  # depth {depth}, widen {widen}\n\
                 \x20   def __init__(self, classes={classes}, drop={drop}):\n\
                 \x20       super().__init__()\n\
                 \x20       c, n = {ch:?}, {n}\n\
                 \x20       self.conv1 = nn.Conv2d(3, c[0], 3, 1, 1, bias=False)\n\
                 \x20       self.block1 = Group(n, c[0], c[1], 1, drop)\n\
                 \x20       self.block2 = Group(n, c[1], c[2], 2, drop)\n\
                 \x20       self.block3 = Group(n, c[2], c[3], 2, drop)\n\
                 \x20       self.bn1 = nn.BatchNorm2d(c[3])\n\
                 \x20       self.fc = nn.Linear(c[3], classes)\n\
                 \x20   def forward(self, x):\n\
                 \x20       out = self.block3(self.block2(self.block1(self.conv1(x))))\n\
                 \x20       return self.fc(F.avg_pool2d(F.relu(self.bn1(out)), 8).flatten(1))\n",
                ch = wide_channels(*widen),
                n = (depth - 4) / 6
            ),
            Record::Sequential { .. } => {
                let mut uses = Uses::default();
                let seq = layer::torch_sequential(self.input, &self.layers, &mut uses);
                format!("{}{seq}", layer::torch_defs(&uses))
            }
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_plain(f)?;
        match self.noise_injection() {
            Some(site) => write!(f, " with noise injection on the {site}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Lwta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.passes;
        write!(
            f,
            "blocks of {} units, temperature {}, predicting from {p} pass{}",
            self.units_per_block,
            self.temperature,
            if p == 1 { "" } else { "es" }
        )?;
        match self.ibp {
            Some(i) => write!(f, ", IBP prior alpha {} (temperature {})", i.alpha, i.temperature),
            None => Ok(()),
        }
    }
}

impl Arch {
    fn fmt_plain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.record {
            Record::Mlp { layers, .. } => write!(f, "mlp({layers:?})"),
            Record::LwtaMlp { layers, lwta } => write!(f, "lwta_mlp({layers:?}; {lwta})"),
            Record::LwtaCnn {
                channels,
                height,
                width,
                classes,
                lwta,
            } => write!(
                f,
                "lwta_cnn({channels}×{height}×{width} → conv32-lwta-pool-conv64-lwta-pool-fc128-lwta-fc{classes}; {lwta})"
            ),
            Record::Cnn {
                channels,
                height,
                width,
                classes,
                ..
            } => {
                write!(
                    f,
                    "cnn({channels}×{height}×{width} → conv32-pool-conv64-pool-fc128-fc{classes})"
                )
            }
            Record::Resnet {
                channels,
                height,
                width,
                classes,
                base_width,
                blocks,
                ..
            } => {
                let widths: Vec<String> = (0..blocks.len()).map(|s| (base_width << s).to_string()).collect();
                write!(
                    f,
                    "resnet({channels}×{height}×{width} → stem{base_width}, blocks {blocks:?} of widths {} → gap → fc{classes})",
                    widths.join("-")
                )
            }
            Record::PreactResnet18 { classes } => {
                write!(f, "preact_resnet18(3×32×32 → {classes} classes)")
            }
            Record::WideResnet {
                depth,
                widen,
                classes,
                drop,
            } => {
                write!(f, "wide_resnet({depth}-{widen}, 3×32×32 → {classes} classes")?;
                if *drop > 0.0 {
                    write!(f, ", dropout {drop}")?;
                }
                f.write_str(")")
            }
            Record::Sequential { .. } => {
                let p = self.passes;
                write!(f, "sequential({} → {})", self.input, layer::describe(&self.layers))?;
                if p > 1 {
                    write!(f, ", predicting from {p} passes")?;
                }
                Ok(())
            }
        }
    }
}

/// A module with parametric noise injection: `nn.Conv2d`/`nn.Linear` become the PNI layers
/// (the classifier stays `nn.Linear` for activation noise), defined first.
fn pni_torch(plain: &str, site: NoiseSite) -> String {
    let mut code = plain
        .replace("nn.Conv2d(", "PNIConv2d(")
        .replace("nn.Linear(", "PNILinear(");
    if site == NoiseSite::Activations {
        if let Some(i) = code.rfind("PNILinear(") {
            code.replace_range(i..i + "PNILinear(".len(), "nn.Linear(");
        }
    }
    let defs = match site {
        NoiseSite::Weights => {
            "# parametric noise injection on the weights (He et al. 2019): w + alpha_w * std(w) * N(0, 1), at every call\n\
             class PNILinear(nn.Linear):\n\
             \x20   def __init__(self, *args, **kwargs):\n\
             \x20       super().__init__(*args, **kwargs)\n\
             \x20       self.alpha_w = nn.Parameter(torch.tensor([0.25]))\n\
             \x20   def forward(self, x):\n\
             \x20       noise = torch.randn_like(self.weight) * self.weight.std().item()\n\
             \x20       return F.linear(x, self.weight + self.alpha_w * noise, self.bias)\n\
             \n\
             class PNIConv2d(nn.Conv2d):\n\
             \x20   def __init__(self, *args, **kwargs):\n\
             \x20       super().__init__(*args, **kwargs)\n\
             \x20       self.alpha_w = nn.Parameter(torch.tensor([0.25]))\n\
             \x20   def forward(self, x):\n\
             \x20       noise = torch.randn_like(self.weight) * self.weight.std().item()\n\
             \x20       return self._conv_forward(x, self.weight + self.alpha_w * noise, self.bias)\n\n"
        }
        NoiseSite::Activations => {
            "# parametric noise injection on the outputs (He et al. 2019): y + alpha_a * std(y) * N(0, 1), at every call\n\
             class PNI:\n\
             \x20   def __init__(self, *args, **kwargs):\n\
             \x20       super().__init__(*args, **kwargs)\n\
             \x20       self.alpha_a = nn.Parameter(torch.tensor([0.25]))\n\
             \x20   def forward(self, x):\n\
             \x20       y = super().forward(x)\n\
             \x20       return y + self.alpha_a * y.std().item() * torch.randn_like(y)\n\
             \n\
             class PNILinear(PNI, nn.Linear): pass\n\
             class PNIConv2d(PNI, nn.Conv2d): pass\n\n"
        }
    };
    format!("{defs}{code}")
}

/// The module of an LWTA model: the `LWTA` activation defined first, and how a prediction
/// averages the passes.
fn lwta_torch(plain: &str, passes: usize, ibp: bool) -> String {
    format!(
        "{ibp}# stochastic local winner-takes-all (Panousis et al. 2021): blocks of `units` consecutive channels compete,\n\
         # one winner per block (and position) drawn from softmax(x) with Gumbel noise: relaxed in training, one-hot in eval\n\
         class LWTA(nn.Module):\n\
         \x20   def __init__(self, units, temperature):\n\
         \x20       super().__init__()\n\
         \x20       self.units, self.temperature = units, temperature\n\
         \x20   def forward(self, x):\n\
         \x20       z = x.view(x.shape[0], -1, self.units, *x.shape[2:])\n\
         \x20       g = -torch.log(-torch.log(torch.rand_like(z)))\n\
         \x20       if self.training:\n\
         \x20           xi = torch.softmax((z + g) / self.temperature, dim=2)\n\
         \x20       else:\n\
         \x20           xi = F.one_hot((z + g).argmax(2), self.units).movedim(-1, 2).to(z.dtype)\n\
         \x20       return (z * xi).view(x.shape)\n\
         \n\
         model = {plain}\n\
         # prediction (model.eval()): the log of the mean softmax over {p} stochastic passes\n\
         # torch.logsumexp(torch.stack([model(x).log_softmax(1) for _ in range({p})]), 0) - math.log({p})\n",
        p = passes,
        ibp = if ibp {
            "# IBP prior: sigmoid(10 * <layer>.ibp_logit) of the file is the posterior probability of each (block, input) connection\n\
             # (each block of kernels of a conv); advlab multiplies a layer's weight by z ~ Bernoulli(sigmoid(10 * ibp_logit))\n\
             # (relaxed in training), repeated over the block's units; load with strict=False and mask the weights\n"
        } else {
            ""
        }
    )
}
