//! Architectures: what a checkpoint records to rebuild a model, the parameters each one has
//! (named as in the equivalent PyTorch module) and that module's source.

use crate::error::ParamError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The architecture of a model: enough to rebuild it from a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arch {
    /// `Flatten, Linear, ReLU, …, Linear`: `layers[0]` inputs, `layers[last]` classes.
    Mlp { layers: Vec<usize> },
    /// `Conv2d(c,32,3,p=1), ReLU, MaxPool2d(2), Conv2d(32,64,3,p=1), ReLU, MaxPool2d(2),
    /// Flatten, Linear(64·(h/4)·(w/4), 128), ReLU, Linear(128, classes)`.
    Cnn {
        channels: usize,
        height: usize,
        width: usize,
        classes: usize,
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
    },
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
    /// torchvision's resnet convs: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`,
    /// normal with standard deviation √(2/fan_out).
    KaimingNormal { fan_out: usize },
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
        Ok(Arch::Mlp { layers })
    }

    /// The small CNN for 1×28×28 images and 10 classes.
    pub fn cnn() -> Self {
        Arch::Cnn {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
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
        })
    }

    /// Number of outputs (classes).
    pub fn classes(&self) -> usize {
        match self {
            Arch::Mlp { layers } => *layers.last().unwrap_or(&0),
            Arch::Cnn { classes, .. } | Arch::Resnet { classes, .. } => *classes,
        }
    }

    /// What the model takes per sample.
    pub fn input(&self) -> Input {
        match self {
            Arch::Mlp { layers } => Input::Features(layers[0]),
            Arch::Cnn {
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

    /// Parameters in PyTorch `state_dict` order.
    pub(crate) fn param_specs(&self) -> Vec<Spec> {
        let mut specs = Vec::new();
        let mut add = |name: String, shape: Vec<usize>, fan_in: usize| {
            specs.push(Spec {
                name,
                shape,
                init: Init::Uniform { fan_in },
            })
        };
        let linear = |name: &str, i: usize, o: usize, add: &mut dyn FnMut(String, Vec<usize>, usize)| {
            add(format!("{name}.weight"), vec![o, i], i);
            add(format!("{name}.bias"), vec![o], i);
        };
        let conv = |name: &str, i: usize, o: usize, k: usize, add: &mut dyn FnMut(String, Vec<usize>, usize)| {
            add(format!("{name}.weight"), vec![o, i, k, k], i * k * k);
            add(format!("{name}.bias"), vec![o], i * k * k);
        };
        match self {
            Arch::Mlp { layers } => {
                for (k, w) in layers.windows(2).enumerate() {
                    linear(&(1 + 2 * k).to_string(), w[0], w[1], &mut add);
                }
            }
            Arch::Cnn {
                channels,
                height,
                width,
                classes,
            } => {
                conv("0", *channels, 32, 3, &mut add);
                conv("3", 32, 64, 3, &mut add);
                linear("7", 64 * (height / 4) * (width / 4), 128, &mut add);
                linear("9", 128, *classes, &mut add);
            }
            Arch::Resnet {
                channels,
                classes,
                base_width,
                blocks,
                ..
            } => {
                // without batch norm, PyTorch's default init shrinks the signal at every conv
                // and the network barely learns: torchvision's He init keeps it
                let mut he = |name: String, i: usize, o: usize, k: usize| {
                    specs.push(Spec {
                        name: format!("{name}.weight"),
                        shape: vec![o, i, k, k],
                        init: Init::KaimingNormal { fan_out: o * k * k },
                    });
                    specs.push(Spec {
                        name: format!("{name}.bias"),
                        shape: vec![o],
                        init: Init::Zeros,
                    });
                };
                he("stem".into(), *channels, *base_width, 3);
                for b in self.resnet_blocks() {
                    he(format!("{}.conv1", b.prefix), b.cin, b.cout, 3);
                    he(format!("{}.conv2", b.prefix), b.cout, b.cout, 3);
                    if b.projection {
                        he(format!("{}.shortcut", b.prefix), b.cin, b.cout, 1);
                    }
                }
                let f = base_width << (blocks.len() - 1);
                linear("fc", f, *classes, &mut |name, shape, fan_in| {
                    specs.push(Spec {
                        name,
                        shape,
                        init: Init::Uniform { fan_in },
                    })
                });
            }
        }
        specs
    }

    /// The equivalent PyTorch module, whose `state_dict` has the names and shapes of the
    /// saved file.
    pub fn torch_module(&self) -> String {
        match self {
            Arch::Mlp { layers } => {
                let mut parts = vec!["nn.Flatten()".to_string()];
                for (k, w) in layers.windows(2).enumerate() {
                    if k > 0 {
                        parts.push("nn.ReLU()".into());
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
            } => format!(
                "nn.Sequential(nn.Conv2d({channels}, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), \
                 nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), \
                 nn.Linear({}, 128), nn.ReLU(), nn.Linear(128, {classes}))",
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
                     \x20       super().__init__()  # advlab inits convs with kaiming_normal_(fan_out, relu), biases 0\n\
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
        match self {
            Arch::Mlp { layers } => write!(f, "mlp({layers:?})"),
            Arch::Cnn {
                channels,
                height,
                width,
                classes,
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
