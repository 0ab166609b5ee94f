//! The layers of a network and its forward pass, on the fast ops of [`super::ops`], with the
//! random draws of stochastic models taken from a per-pass key.

use super::arch::Arch;
use super::ibp::{Gates, IbpUsage};
use super::lwta::{lwta, Draw};
use super::noise;
use super::random::substream;
use crate::kernels as ops;
use candle_core::{Result, Tensor};
use std::cell::Cell;

/// What one forward pass needs besides the input: training or evaluation, and the key of its
/// random draws (each draw takes the next substream, in a fixed order).
pub(crate) struct Ctx {
    key: u64,
    next: Cell<u64>,
    /// Training pass (relaxed LWTA winners) rather than evaluation.
    pub train: bool,
}

impl Ctx {
    pub fn new(key: u64, train: bool) -> Self {
        Self {
            key,
            next: Cell::new(0),
            train,
        }
    }

    /// The key of the next random draw.
    pub fn draw(&self) -> u64 {
        let n = self.next.get();
        self.next.set(n + 1);
        substream(self.key, n)
    }
}

/// `t + α·std(t)·η`, η standard normal from the next draw of `ctx`.
fn add_noise(t: &Tensor, alpha: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    noise::add_noise(t, alpha, ctx.draw())
}

/// Weight and bias of one layer, and its noise scales (parametric noise injection).
pub(crate) struct Layer {
    w: Tensor,
    b: Tensor,
    alpha_w: Option<Tensor>,
    alpha_a: Option<Tensor>,
    /// The IBP utilities of an LWTA layer's connections.
    ibp: Option<Gates>,
}

impl Layer {
    /// The weight this pass uses: with noise when the layer injects it on its weights, times
    /// the utilities of its connections under an IBP prior.
    fn weight(&self, ctx: &Ctx) -> Result<Tensor> {
        let w = match &self.alpha_w {
            Some(a) => add_noise(&self.w, a, ctx)?,
            None => self.w.clone(),
        };
        match &self.ibp {
            Some(g) => g.apply(&w, ctx),
            None => Ok(w),
        }
    }

    /// The layer's output, with noise when the layer injects it on its output.
    fn output(&self, y: Tensor, ctx: &Ctx) -> Result<Tensor> {
        match &self.alpha_a {
            Some(a) => add_noise(&y, a, ctx),
            None => Ok(y),
        }
    }

    fn linear(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        self.output(ops::linear(x, &self.weight(ctx)?, &self.b)?, ctx)
    }

    fn conv(&self, x: &Tensor, pad: usize, stride: usize, ctx: &Ctx) -> Result<Tensor> {
        self.output(ops::conv2d(x, &self.weight(ctx)?, &self.b, pad, stride)?, ctx)
    }

    /// `relu(max_pool(conv(x)))` with 2×2 windows (= `max_pool(relu(·))`, both monotone): one
    /// fused op unless noise goes on the convolution's output.
    fn conv_pool_relu(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        match &self.alpha_a {
            None => ops::conv2d_pool_relu(x, &self.weight(ctx)?, &self.b, 1, 1, 2),
            Some(_) => ops::relu(&ops::max_pool2d(&self.conv(x, 1, 1, ctx)?, 2)?),
        }
    }
}

/// How an LWTA network competes.
#[derive(Clone, Copy)]
pub(crate) struct Competition {
    units: usize,
    temperature: f32,
}

impl Competition {
    /// The LWTA activation of `h` (channels in dimension 1): relaxed winners in training,
    /// one-hot winners in evaluation, from the next draw of `ctx`.
    fn apply(&self, h: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        lwta(
            h,
            Draw {
                units: self.units,
                temperature: self.temperature,
                hard: !ctx.train,
                key: ctx.draw(),
            },
        )
    }
}

/// One basic residual block.
pub(crate) struct Block {
    conv1: Layer,
    conv2: Layer,
    shortcut: Option<Layer>,
    stride: usize,
}

/// The layers of a network, holding either the trainable variables or detached views of
/// them (same storage, no gradient tracking) for attacks and evaluation.
pub(crate) enum Net {
    Mlp(Vec<Layer>),
    Cnn {
        c1: Layer,
        c2: Layer,
        f1: Layer,
        f2: Layer,
    },
    Resnet {
        stem: Layer,
        blocks: Vec<Block>,
        fc: Layer,
    },
    LwtaMlp(Vec<Layer>, Competition),
    LwtaCnn {
        c1: Layer,
        c2: Layer,
        f1: Layer,
        f2: Layer,
        comp: Competition,
    },
}

impl Net {
    /// The network of `arch` over `get(name)`, the tensor of each parameter.
    pub fn build(arch: &Arch, get: &dyn Fn(&str) -> Option<Tensor>) -> Result<Self> {
        let need =
            |name: String| get(&name).ok_or_else(|| candle_core::Error::Msg(format!("{arch}: no parameter {name}")));
        let ibp = arch.lwta().and_then(|l| Some((l.units_per_block, l.ibp?)));
        let layer = |name: &str| -> Result<Layer> {
            let gates = match (ibp, get(&format!("{name}.ibp_logit"))) {
                (Some((units, prior)), Some(logit)) => Some(Gates {
                    logit,
                    a: need(format!("{name}.ibp_a"))?,
                    b: need(format!("{name}.ibp_b"))?,
                    units,
                    prior,
                }),
                _ => None,
            };
            Ok(Layer {
                w: need(format!("{name}.weight"))?,
                b: need(format!("{name}.bias"))?,
                alpha_w: get(&format!("{name}.alpha_w")),
                alpha_a: get(&format!("{name}.alpha_a")),
                ibp: gates,
            })
        };
        let mlp = |layers: &[usize]| -> Result<Vec<Layer>> {
            (0..layers.len() - 1).map(|k| layer(&(1 + 2 * k).to_string())).collect()
        };
        let comp = |l: &super::arch::Lwta| Competition {
            units: l.units_per_block,
            temperature: l.temperature as f32,
        };
        Ok(match arch {
            Arch::Mlp { layers, .. } => Net::Mlp(mlp(layers)?),
            Arch::LwtaMlp { layers, lwta } => Net::LwtaMlp(mlp(layers)?, comp(lwta)),
            Arch::LwtaCnn { lwta, .. } => Net::LwtaCnn {
                c1: layer("0")?,
                c2: layer("3")?,
                f1: layer("7")?,
                f2: layer("9")?,
                comp: comp(lwta),
            },
            Arch::Cnn { .. } => Net::Cnn {
                c1: layer("0")?,
                c2: layer("3")?,
                f1: layer("7")?,
                f2: layer("9")?,
            },
            Arch::Resnet { .. } => Net::Resnet {
                stem: layer("stem")?,
                blocks: arch
                    .resnet_blocks()
                    .iter()
                    .map(|b| {
                        Ok(Block {
                            conv1: layer(&format!("{}.conv1", b.prefix))?,
                            conv2: layer(&format!("{}.conv2", b.prefix))?,
                            shortcut: match b.projection {
                                true => Some(layer(&format!("{}.shortcut", b.prefix))?),
                                false => None,
                            },
                            stride: b.stride,
                        })
                    })
                    .collect::<Result<_>>()?,
                fc: layer("fc")?,
            },
        })
    }

    /// The layers whose connections have IBP utilities.
    fn gates(&self) -> Vec<&Gates> {
        let layers: Vec<&Layer> = match self {
            Net::Mlp(l) | Net::LwtaMlp(l, _) => l.iter().collect(),
            Net::Cnn { c1, c2, f1, f2 } | Net::LwtaCnn { c1, c2, f1, f2, .. } => vec![c1, c2, f1, f2],
            Net::Resnet { .. } => Vec::new(),
        };
        layers.into_iter().filter_map(|l| l.ibp.as_ref()).collect()
    }

    /// The IBP prior's KL(q ‖ p) summed over the layers (none without the prior), with the
    /// stick samples drawn from `key`.
    pub fn ibp_kl(&self, key: u64) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for (i, g) in self.gates().into_iter().enumerate() {
            let kl = g.kl(substream(key, i as u64))?;
            total = Some(match total {
                Some(t) => (t + kl)?,
                None => kl,
            });
        }
        Ok(total)
    }

    /// How much of each layer with IBP utilities the posterior keeps.
    pub fn ibp_usage(&self) -> Result<Vec<IbpUsage>> {
        self.gates().into_iter().map(Gates::usage).collect()
    }

    /// Logits of a batch.
    pub fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        match self {
            Net::Mlp(layers) => {
                let mut h = x.flatten_from(1)?;
                for (k, l) in layers.iter().enumerate() {
                    h = l.linear(&h, ctx)?;
                    if k + 1 < layers.len() {
                        h = ops::relu(&h)?;
                    }
                }
                Ok(h)
            }
            Net::Cnn { c1, c2, f1, f2 } => {
                let h = c2.conv_pool_relu(&c1.conv_pool_relu(x, ctx)?, ctx)?;
                let h = ops::relu(&f1.linear(&h.flatten_from(1)?, ctx)?)?;
                f2.linear(&h, ctx)
            }
            Net::Resnet { stem, blocks, fc } => {
                let mut h = ops::relu(&stem.conv(x, 1, 1, ctx)?)?;
                for b in blocks {
                    let o = ops::relu(&b.conv1.conv(&h, 1, b.stride, ctx)?)?;
                    let o = b.conv2.conv(&o, 1, 1, ctx)?;
                    let sc = match &b.shortcut {
                        Some(p) => p.conv(&h, 0, b.stride, ctx)?,
                        None => h,
                    };
                    h = ops::relu(&(o + sc)?)?;
                }
                fc.linear(&h.mean((2, 3))?, ctx)
            }
            Net::LwtaMlp(layers, comp) => {
                let mut h = x.flatten_from(1)?;
                for (k, l) in layers.iter().enumerate() {
                    h = l.linear(&h, ctx)?;
                    if k + 1 < layers.len() {
                        h = comp.apply(&h, ctx)?;
                    }
                }
                Ok(h)
            }
            Net::LwtaCnn { c1, c2, f1, f2, comp } => {
                let h = ops::max_pool2d(&comp.apply(&c1.conv(x, 1, 1, ctx)?, ctx)?, 2)?;
                let h = ops::max_pool2d(&comp.apply(&c2.conv(&h, 1, 1, ctx)?, ctx)?, 2)?;
                let h = comp.apply(&f1.linear(&h.flatten_from(1)?, ctx)?, ctx)?;
                f2.linear(&h, ctx)
            }
        }
    }
}
