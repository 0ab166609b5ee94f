//! Architectures: what a checkpoint records to rebuild a model, the parameters each one has
//! (named as in the equivalent PyTorch module) and that module's source.

use super::ibp::{softplus_inv, IbpPrior, LOGIT_INIT};
use crate::error::ParamError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The architecture of a model: enough to rebuild it from a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arch {
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
        if self.passes == 0 {
            return Err(ParamError::PassesZero);
        }
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

/// The initial value of every noise scale α (He et al. 2019).
pub const ALPHA_INIT: f32 = 0.25;

/// One linear or conv layer of an architecture.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LayerSpec {
    /// The PyTorch module name: `3`, `stem`, `stages.1.0.conv1`, `fc`.
    pub name: String,
    /// The weight's shape: `(out, in)` or `(out, in, k, k)`.
    pub shape: Vec<usize>,
    /// He's normal init with zero bias (the resnet's convs) instead of PyTorch's default.
    pub he: bool,
    /// The classifier (no activation noise).
    pub last: bool,
}

/// What a model takes per sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Any image of this many values (flattened).
    Features(usize),
    /// Images of exactly this `(C, H, W)`.
    Image(usize, usize, usize),
}

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Init {
    /// PyTorch's default for linear and conv layers: uniform in ±1/√fan_in.
    Uniform { fan_in: usize },
    /// Every element the same (the noise scales α).
    Const(f32),
    /// He et al.'s init for ReLU layers, `kaiming_normal_(mode="fan_in", nonlinearity="relu")`:
    /// normal with standard deviation √(2/fan_in), which keeps the forward signal's scale
    /// without batch norm.
    KaimingNormal { fan_in: usize },
    /// All zeros (the biases of the resnet's convs).
    Zeros,
}

/// One parameter: its PyTorch name, shape and initialisation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// One basic residual block of a resnet: where its parameters are and how it is wired.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BlockSpec {
    /// `stages.{s}.{b}`
    pub prefix: String,
    pub cin: usize,
    pub cout: usize,
    pub stride: usize,
    /// A 1×1 conv (strided) on the shortcut, when the shape changes.
    pub projection: bool,
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

impl Arch {
    /// The MLP with these layer sizes, checked.
    pub fn mlp(layers: Vec<usize>) -> Result<Self, ParamError> {
        if layers.len() < 2 {
            return Err(ParamError::MlpTooFewLayers(layers));
        }
        if layers.contains(&0) {
            return Err(ParamError::LayerSizeZero(layers));
        }
        Ok(Arch::Mlp {
            layers,
            noise_injection: None,
        })
    }

    /// The small CNN for 1×28×28 images and 10 classes.
    pub fn cnn() -> Self {
        Arch::Cnn {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
            noise_injection: None,
        }
    }

    /// The small CNN for `(C, H, W)` images (H, W ≥ 4: it pools twice) and `classes` outputs.
    pub fn cnn_for(input: [usize; 3], classes: usize) -> Result<Self, ParamError> {
        let [c, h, w] = input;
        check_image(c, h, w)?;
        if h < 4 || w < 4 {
            return Err(ParamError::CnnInputTooSmall(h, w));
        }
        check_classes(classes)?;
        Ok(Arch::Cnn {
            channels: c,
            height: h,
            width: w,
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
        let [c, h, w] = input;
        check_image(c, h, w)?;
        if blocks.is_empty() || blocks.len() > 4 || blocks.contains(&0) {
            return Err(ParamError::ResnetBlocks(blocks));
        }
        if base_width == 0 {
            return Err(ParamError::ResnetWidthZero);
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
        check_classes(classes)?;
        Ok(Arch::Resnet {
            channels: c,
            height: h,
            width: w,
            classes,
            base_width,
            blocks,
            noise_injection: None,
        })
    }

    /// The MLP of these layer sizes with stochastic LWTA activations: every hidden size must
    /// be a multiple of `units_per_block`.
    pub fn lwta_mlp(layers: Vec<usize>, lwta: Lwta) -> Result<Self, ParamError> {
        Arch::mlp(layers.clone())?;
        lwta.check()?;
        for &size in &layers[1..layers.len() - 1] {
            lwta.check_size(size)?;
        }
        Ok(Arch::LwtaMlp { layers, lwta })
    }

    /// The small CNN with stochastic LWTA activations (its 32, 64 and 128 units must split
    /// into blocks of `units_per_block`).
    pub fn lwta_cnn(input: [usize; 3], classes: usize, lwta: Lwta) -> Result<Self, ParamError> {
        Arch::cnn_for(input, classes)?;
        lwta.check()?;
        for size in [32, 64, 128] {
            lwta.check_size(size)?;
        }
        let [channels, height, width] = input;
        Ok(Arch::LwtaCnn {
            channels,
            height,
            width,
            classes,
            lwta,
        })
    }

    /// The same architecture with parametric noise injection at `site` (or none); LWTA
    /// models stay as they are (their competition is their noise).
    pub fn with_noise_injection(mut self, site: Option<NoiseSite>) -> Self {
        match &mut self {
            Arch::Mlp { noise_injection, .. }
            | Arch::Cnn { noise_injection, .. }
            | Arch::Resnet { noise_injection, .. } => *noise_injection = site,
            Arch::LwtaMlp { .. } | Arch::LwtaCnn { .. } => {}
        }
        self
    }

    /// Where noise is injected, if anywhere.
    pub fn noise_injection(&self) -> Option<NoiseSite> {
        match self {
            Arch::Mlp { noise_injection, .. }
            | Arch::Cnn { noise_injection, .. }
            | Arch::Resnet { noise_injection, .. } => *noise_injection,
            Arch::LwtaMlp { .. } | Arch::LwtaCnn { .. } => None,
        }
    }

    /// The LWTA competition, for LWTA models.
    pub fn lwta(&self) -> Option<&Lwta> {
        match self {
            Arch::LwtaMlp { lwta, .. } | Arch::LwtaCnn { lwta, .. } => Some(lwta),
            _ => None,
        }
    }

    /// Stochastic passes a prediction averages (1 but for LWTA models).
    pub fn passes(&self) -> usize {
        self.lwta().map_or(1, |l| l.passes)
    }

    /// The same LWTA architecture averaging `passes` passes.
    pub fn with_passes(mut self, passes: usize) -> Result<Self, ParamError> {
        if passes == 0 {
            return Err(ParamError::PassesZero);
        }
        match &mut self {
            Arch::LwtaMlp { lwta, .. } | Arch::LwtaCnn { lwta, .. } => lwta.passes = passes,
            _ => return Err(ParamError::PassesNotStochastic),
        }
        Ok(self)
    }

    /// True when a forward pass draws random numbers (noise injection, LWTA).
    pub fn is_stochastic(&self) -> bool {
        self.noise_injection().is_some() || self.lwta().is_some()
    }

    /// Number of outputs (classes).
    pub fn classes(&self) -> usize {
        match self {
            Arch::Mlp { layers, .. } | Arch::LwtaMlp { layers, .. } => *layers.last().unwrap_or(&0),
            Arch::Cnn { classes, .. } | Arch::Resnet { classes, .. } | Arch::LwtaCnn { classes, .. } => *classes,
        }
    }

    /// What the model takes per sample.
    pub fn input(&self) -> Input {
        match self {
            Arch::Mlp { layers, .. } | Arch::LwtaMlp { layers, .. } => Input::Features(layers[0]),
            Arch::LwtaCnn {
                channels,
                height,
                width,
                ..
            }
            | Arch::Cnn {
                channels,
                height,
                width,
                ..
            }
            | Arch::Resnet {
                channels,
                height,
                width,
                ..
            } => Input::Image(*channels, *height, *width),
        }
    }

    /// The residual blocks of a resnet, in order (empty for other architectures).
    pub(crate) fn resnet_blocks(&self) -> Vec<BlockSpec> {
        let Arch::Resnet { base_width, blocks, .. } = self else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut cin = *base_width;
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

    /// The linear and conv layers, in order.
    pub(crate) fn layer_specs(&self) -> Vec<LayerSpec> {
        let mut out = Vec::new();
        let mut push = |name: String, shape: Vec<usize>, he: bool| {
            out.push(LayerSpec {
                name,
                shape,
                he,
                last: false,
            })
        };
        match self {
            Arch::Mlp { layers, .. } | Arch::LwtaMlp { layers, .. } => {
                for (k, w) in layers.windows(2).enumerate() {
                    push((1 + 2 * k).to_string(), vec![w[1], w[0]], false);
                }
            }
            Arch::Cnn {
                channels,
                height,
                width,
                classes,
                ..
            }
            | Arch::LwtaCnn {
                channels,
                height,
                width,
                classes,
                ..
            } => {
                push("0".into(), vec![32, *channels, 3, 3], false);
                push("3".into(), vec![64, 32, 3, 3], false);
                push("7".into(), vec![128, 64 * (height / 4) * (width / 4)], false);
                push("9".into(), vec![*classes, 128], false);
            }
            Arch::Resnet {
                channels,
                classes,
                base_width,
                blocks,
                ..
            } => {
                // without batch norm, PyTorch's default init shrinks the signal at every conv
                // and the network barely learns: He's init keeps it
                push("stem".into(), vec![*base_width, *channels, 3, 3], true);
                for b in self.resnet_blocks() {
                    push(format!("{}.conv1", b.prefix), vec![b.cout, b.cin, 3, 3], true);
                    push(format!("{}.conv2", b.prefix), vec![b.cout, b.cout, 3, 3], true);
                    if b.projection {
                        push(format!("{}.shortcut", b.prefix), vec![b.cout, b.cin, 1, 1], true);
                    }
                }
                push("fc".into(), vec![*classes, base_width << (blocks.len() - 1)], false);
            }
        }
        if let Some(l) = out.last_mut() {
            l.last = true;
        }
        out
    }

    /// Parameters in PyTorch `state_dict` order: per layer weight, bias, then the noise scale.
    pub(crate) fn param_specs(&self) -> Vec<Spec> {
        let mut specs = Vec::new();
        for l in self.layer_specs() {
            let fan_in: usize = l.shape[1..].iter().product();
            let (w, b) = if l.he {
                (Init::KaimingNormal { fan_in }, Init::Zeros)
            } else {
                (Init::Uniform { fan_in }, Init::Uniform { fan_in })
            };
            specs.push(Spec {
                name: format!("{}.weight", l.name),
                shape: l.shape.clone(),
                init: w,
            });
            specs.push(Spec {
                name: format!("{}.bias", l.name),
                shape: vec![l.shape[0]],
                init: b,
            });
            let alpha = match self.noise_injection() {
                Some(NoiseSite::Weights) => Some("alpha_w"),
                Some(NoiseSite::Activations) if !l.last => Some("alpha_a"),
                _ => None,
            };
            if let Some(a) = alpha {
                specs.push(Spec {
                    name: format!("{}.{a}", l.name),
                    shape: vec![1],
                    init: Init::Const(ALPHA_INIT),
                });
            }
            if let Some((units, ibp)) = self.lwta().and_then(|x| Some((x.units_per_block, x.ibp?))) {
                if !l.last {
                    // utilities per (block, input) of a linear layer, per block of a convolution
                    let blocks = l.shape[0] / units;
                    let logit = if l.shape.len() == 2 {
                        vec![blocks, l.shape[1]]
                    } else {
                        vec![blocks]
                    };
                    for (suffix, shape, value) in [
                        ("ibp_logit", logit, LOGIT_INIT),
                        ("ibp_a", vec![blocks], softplus_inv(ibp.alpha)),
                        ("ibp_b", vec![blocks], softplus_inv(1.0)),
                    ] {
                        specs.push(Spec {
                            name: format!("{}.{suffix}", l.name),
                            shape,
                            init: Init::Const(value as f32),
                        });
                    }
                }
            }
        }
        specs
    }

    /// The equivalent PyTorch module, whose `state_dict` has the names and shapes of the
    /// saved file.
    pub fn torch_module(&self) -> String {
        let plain = self.plain_torch_module();
        if let Some(l) = self.lwta() {
            return lwta_torch(&plain, l);
        }
        match self.noise_injection() {
            None => plain,
            Some(site) => pni_torch(&plain, site),
        }
    }

    fn plain_torch_module(&self) -> String {
        let act = match self.lwta() {
            Some(l) => format!("LWTA({}, {})", l.units_per_block, l.temperature),
            None => "nn.ReLU()".into(),
        };
        match self {
            Arch::Mlp { layers, .. } | Arch::LwtaMlp { layers, .. } => {
                let mut parts = vec!["nn.Flatten()".to_string()];
                for (k, w) in layers.windows(2).enumerate() {
                    if k > 0 {
                        parts.push(act.clone());
                    }
                    parts.push(format!("nn.Linear({}, {})", w[0], w[1]));
                }
                format!("nn.Sequential({})", parts.join(", "))
            }
            Arch::Cnn {
                channels,
                height,
                width,
                classes,
                ..
            }
            | Arch::LwtaCnn {
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
            Arch::Resnet {
                channels,
                classes,
                base_width,
                blocks,
                ..
            } => {
                let mut stages = Vec::new();
                let mut k = 0;
                let all = self.resnet_blocks();
                for &n in blocks {
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
        match self {
            Arch::Mlp { layers, .. } => write!(f, "mlp({layers:?})"),
            Arch::LwtaMlp { layers, lwta } => write!(f, "lwta_mlp({layers:?}; {lwta})"),
            Arch::LwtaCnn {
                channels,
                height,
                width,
                classes,
                lwta,
            } => write!(
                f,
                "lwta_cnn({channels}×{height}×{width} → conv32-lwta-pool-conv64-lwta-pool-fc128-lwta-fc{classes}; {lwta})"
            ),
            Arch::Cnn {
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
            Arch::Resnet {
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
fn lwta_torch(plain: &str, l: &Lwta) -> String {
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
        p = l.passes,
        ibp = if l.ibp.is_some() {
            "# IBP prior: sigmoid(10 * <layer>.ibp_logit) of the file is the posterior probability of each (block, input) connection\n\
             # (each block of kernels of a conv); advlab multiplies a layer's weight by z ~ Bernoulli(sigmoid(10 * ibp_logit))\n\
             # (relaxed in training), repeated over the block's units; load with strict=False and mask the weights\n"
        } else {
            ""
        }
    )
}
