//! The layers of a network and its forward pass, on the fast ops of [`super::ops`].

use super::arch::{Arch, BlockSpec};
use super::ops;
use candle_core::{Result, Tensor};

/// Weight and bias of one layer.
pub(crate) struct Layer {
    pub w: Tensor,
    pub b: Tensor,
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
    Cnn { c1: Layer, c2: Layer, f1: Layer, f2: Layer },
    Resnet { stem: Layer, blocks: Vec<Block>, fc: Layer },
}

impl Net {
    /// The network of `arch` over `get(name)`, the tensor of each parameter.
    pub fn build(arch: &Arch, get: &dyn Fn(&str) -> Tensor) -> Self {
        let layer = |name: &str| Layer {
            w: get(&format!("{name}.weight")),
            b: get(&format!("{name}.bias")),
        };
        match arch {
            Arch::Mlp { layers } => Net::Mlp((0..layers.len() - 1).map(|k| layer(&(1 + 2 * k).to_string())).collect()),
            Arch::Cnn { .. } => Net::Cnn {
                c1: layer("0"),
                c2: layer("3"),
                f1: layer("7"),
                f2: layer("9"),
            },
            Arch::Resnet { .. } => Net::Resnet {
                stem: layer("stem"),
                blocks: arch
                    .resnet_blocks()
                    .iter()
                    .map(|b: &BlockSpec| Block {
                        conv1: layer(&format!("{}.conv1", b.prefix)),
                        conv2: layer(&format!("{}.conv2", b.prefix)),
                        shortcut: b.projection.then(|| layer(&format!("{}.shortcut", b.prefix))),
                        stride: b.stride,
                    })
                    .collect(),
                fc: layer("fc"),
            },
        }
    }

    /// Logits of a batch.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Net::Mlp(layers) => {
                let mut h = x.flatten_from(1)?;
                for (k, l) in layers.iter().enumerate() {
                    h = ops::linear(&h, &l.w, &l.b)?;
                    if k + 1 < layers.len() {
                        h = ops::relu(&h)?;
                    }
                }
                Ok(h)
            }
            Net::Cnn { c1, c2, f1, f2 } => {
                // max_pool(relu(z)) = relu(max_pool(z)) (both monotone), with 4× less relu work
                let h = ops::relu(&ops::max_pool2d(&ops::conv2d(x, &c1.w, &c1.b, 1, 1)?, 2)?)?;
                let h = ops::relu(&ops::max_pool2d(&ops::conv2d(&h, &c2.w, &c2.b, 1, 1)?, 2)?)?;
                let h = ops::relu(&ops::linear(&h.flatten_from(1)?, &f1.w, &f1.b)?)?;
                ops::linear(&h, &f2.w, &f2.b)
            }
            Net::Resnet { stem, blocks, fc } => {
                let mut h = ops::relu(&ops::conv2d(x, &stem.w, &stem.b, 1, 1)?)?;
                for b in blocks {
                    let o = ops::relu(&ops::conv2d(&h, &b.conv1.w, &b.conv1.b, 1, b.stride)?)?;
                    let o = ops::conv2d(&o, &b.conv2.w, &b.conv2.b, 1, 1)?;
                    let sc = match &b.shortcut {
                        Some(p) => ops::conv2d(&h, &p.w, &p.b, 0, b.stride)?,
                        None => h,
                    };
                    h = ops::relu(&(o + sc)?)?;
                }
                ops::linear(&h.mean((2, 3))?, &fc.w, &fc.b)
            }
        }
    }
}
