//! The forward pass: a network's layers walked in order, fused CPU ops picked by pattern
//! (convolution → ReLU → max-pool), on the kernels of [`crate::kernels`], with the
//! random draws of stochastic models taken from a per-pass key.

use super::arch::Arch;
use super::ctx::Ctx;
use super::ibp::{Gates, IbpUsage};
use super::layer::{child, layer_name, Input, Layer, Weighted};
use super::lwta::{lwta, Draw};
use super::noise;
use super::random::{substream, uniform_vec};
use crate::kernels as ops;
use candle_core::{Result, Tensor, Var};

/// `t + α·std(t)·η`, η standard normal from the next draw of `ctx`.
fn add_noise(t: &Tensor, alpha: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    noise::add_noise(t, alpha, ctx.draw())
}

/// Weight and bias of one layer, and its noise scales (parametric noise injection).
pub(crate) struct Weights {
    w: Tensor,
    b: Tensor,
    alpha_w: Option<Tensor>,
    alpha_a: Option<Tensor>,
    /// The IBP utilities of an LWTA layer's connections.
    ibp: Option<Gates>,
}

impl Weights {
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
}

/// A weight and a bias.
type Tensor2 = (Tensor, Tensor);

/// A batch norm: its scale and shift (when affine) and its running statistics, which a
/// training pass moves.
pub(crate) struct Norm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    mean: Var,
    var: Var,
    eps: f64,
    momentum: f64,
    /// A ReLU follows (fused into the same op on the CPU).
    relu: bool,
}

impl Norm {
    /// `x` (channels in dimension 1) normalised per channel: by the batch's statistics in a
    /// training pass (moving the running ones as PyTorch does), by the running ones otherwise;
    /// then the ReLU when one follows.
    fn apply(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let c = x.dim(1)?;
        let n = x.elem_count() / c.max(1);
        if ctx.train && n < 2 {
            candle_core::bail!(
                "batch norm in training needs more than one value per channel, got a batch of shape {:?}",
                x.dims()
            );
        }
        if !x.device().is_cpu() {
            return self.then_relu(self.apply_generic(x, ctx, n)?);
        }
        let ones = || Tensor::ones(c, x.dtype(), x.device());
        let zeros = || Tensor::zeros(c, x.dtype(), x.device());
        let gamma = self.weight.clone().map_or_else(ones, Ok)?;
        let beta = self.bias.clone().map_or_else(zeros, Ok)?;
        let (mean, var) = match ctx.train {
            true => {
                let (mean, var) = ops::channel_moments(x)?;
                self.move_running(
                    &Tensor::from_slice(&mean, c, x.device())?,
                    &Tensor::from_slice(&var, c, x.device())?,
                    n,
                )?;
                (mean, var)
            }
            false => (
                self.mean.as_tensor().to_vec1::<f32>()?,
                self.var.as_tensor().to_vec1::<f32>()?,
            ),
        };
        let mode = ops::NormMode {
            batch: ctx.train,
            relu: self.relu,
        };
        ops::batch_norm(x, &gamma, &beta, (&mean, &var), self.eps, mode)
    }

    /// `y` through the ReLU when one follows this norm (for the paths that do not fuse it).
    fn then_relu(&self, y: Tensor) -> Result<Tensor> {
        if self.relu {
            ops::relu(&y)
        } else {
            Ok(y)
        }
    }

    /// The weight and bias of a convolution followed by this norm in evaluation, folded into one
    /// convolution: `w·s` per output channel and `(b − mean)·s + β`, `s = γ/√(running var + eps)`.
    fn fold(&self, w: &Tensor, b: &Tensor) -> Result<Tensor2> {
        let c = w.dim(0)?;
        let mut scale = (self.var.as_tensor() + self.eps)?.sqrt()?.recip()?;
        if let Some(g) = &self.weight {
            scale = (scale * g)?;
        }
        let mut per_out = vec![1; w.rank()];
        per_out[0] = c;
        let w = w.broadcast_mul(&scale.reshape(per_out.as_slice())?)?;
        let mut b = ((b - self.mean.as_tensor())? * scale)?;
        if let Some(beta) = &self.bias {
            b = (b + beta)?;
        }
        Ok((w, b))
    }

    /// Move the running statistics towards a batch's mean and biased variance over `n` values
    /// per channel (the running variance is the unbiased one, as PyTorch's).
    fn move_running(&self, mean: &Tensor, var: &Tensor, n: usize) -> Result<()> {
        let m = self.momentum;
        let unbiased = (var * (n as f64 / (n - 1) as f64))?;
        let moved_mean = ((self.mean.as_tensor() * (1.0 - m))? + (mean * m)?)?;
        let moved_var = ((self.var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?;
        self.mean.set(&moved_mean)?;
        self.var.set(&moved_var)
    }

    /// The same with candle's ops (other devices).
    fn apply_generic(&self, x: &Tensor, ctx: &Ctx, n: usize) -> Result<Tensor> {
        let c = x.dim(1)?;
        let mut per_channel = vec![1; x.rank()];
        per_channel[1] = c;
        let reduce: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
        let affine = |y: Tensor, scale: Tensor| -> Result<Tensor> {
            let y = match &self.weight {
                Some(w) => y.broadcast_mul(&(w.reshape(per_channel.as_slice())? * scale)?)?,
                None => y.broadcast_mul(&scale)?,
            };
            match &self.bias {
                Some(b) => y.broadcast_add(&b.reshape(per_channel.as_slice())?),
                None => Ok(y),
            }
        };
        if !ctx.train {
            let scale = (self.var.as_tensor().reshape(per_channel.as_slice())? + self.eps)?
                .sqrt()?
                .recip()?;
            let centred = x.broadcast_sub(&self.mean.as_tensor().reshape(per_channel.as_slice())?)?;
            return affine(centred, scale);
        }
        let mean = x.mean_keepdim(reduce.clone())?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(reduce)?;
        // the running statistics, outside the graph
        self.move_running(&mean.detach().flatten_all()?, &var.detach().flatten_all()?, n)?;
        affine(centred, (var + self.eps)?.sqrt()?.recip()?)
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

/// One step of the forward pass: a layer, or a run of layers done by one fused op.
enum Node {
    Linear(Weights),
    Conv {
        p: Weights,
        stride: usize,
        padding: usize,
    },
    /// Convolution → ReLU → max-pool as one op (no noise on the convolution's output).
    ConvReluPool {
        p: Weights,
        stride: usize,
        padding: usize,
        size: usize,
    },
    Relu,
    MaxPool(usize),
    Flatten,
    GlobalAvgPool,
    Upsample(usize),
    Lwta(Competition),
    Dropout(f64),
    AvgPool(usize),
    LeakyRelu(f64),
    Softplus,
    Tanh,
    Sigmoid,
    Identity,
    BatchNorm(Norm),
    Residual {
        body: Vec<Node>,
        shortcut: Vec<Node>,
    },
}

/// The layers of a network, holding either the trainable variables or detached views of
/// them (same storage, no gradient tracking) for attacks and evaluation.
pub(crate) struct Net {
    nodes: Vec<Node>,
    /// Flatten the input first (a network over features takes any image of that size).
    flat_input: bool,
}

/// The tensor of a parameter, and the variable of a buffer, by name.
pub(crate) struct Get<'a> {
    pub param: &'a dyn Fn(&str) -> Option<Tensor>,
    pub buffer: &'a dyn Fn(&str) -> Option<Var>,
}

/// The weights of the layer named `name`.
fn weights(arch: &Arch, name: &str, opts: &Weighted, get: &Get) -> Result<Weights> {
    let need = |n: String| (get.param)(&n).ok_or_else(|| candle_core::Error::Msg(format!("{arch}: no parameter {n}")));
    let ibp = match opts.ibp {
        Some(g) => Some(Gates {
            logit: need(format!("{name}.ibp_logit"))?,
            a: need(format!("{name}.ibp_a"))?,
            b: need(format!("{name}.ibp_b"))?,
            units: g.units,
            prior: g.prior,
        }),
        None => None,
    };
    let w = need(format!("{name}.weight"))?;
    // a layer without bias adds a constant zero (the kernels take a bias)
    let b = match opts.no_bias {
        true => Tensor::zeros(w.dim(0)?, w.dtype(), w.device())?,
        false => need(format!("{name}.bias"))?,
    };
    Ok(Weights {
        w,
        b,
        alpha_w: (get.param)(&format!("{name}.alpha_w")),
        alpha_a: (get.param)(&format!("{name}.alpha_a")),
        ibp,
    })
}

/// The nodes of `layers` (the list at `prefix`), fusing convolution → ReLU → max-pool.
fn nodes(arch: &Arch, layers: &[Layer], prefix: &str, get: &Get) -> Result<Vec<Node>> {
    let mut out = Vec::with_capacity(layers.len());
    let mut i = 0;
    while i < layers.len() {
        let mut step = 1;
        out.push(match &layers[i] {
            Layer::Linear { opts, .. } => {
                Node::Linear(weights(arch, &layer_name(prefix, i, layers[i].own_name()), opts, get)?)
            }
            Layer::Conv2d {
                stride, padding, opts, ..
            } => {
                let p = weights(arch, &layer_name(prefix, i, layers[i].own_name()), opts, get)?;
                match (&layers[i + 1..], &p.alpha_a) {
                    ([Layer::Relu, Layer::MaxPool { size }, ..], None) => {
                        step = 3;
                        Node::ConvReluPool {
                            p,
                            stride: *stride,
                            padding: *padding,
                            size: *size,
                        }
                    }
                    _ => Node::Conv {
                        p,
                        stride: *stride,
                        padding: *padding,
                    },
                }
            }
            Layer::Relu => Node::Relu,
            Layer::MaxPool { size } => Node::MaxPool(*size),
            Layer::Flatten => Node::Flatten,
            Layer::GlobalAvgPool => Node::GlobalAvgPool,
            Layer::Upsample { factor } => Node::Upsample(*factor),
            Layer::Dropout { p } => Node::Dropout(*p),
            Layer::AvgPool { size } => Node::AvgPool(*size),
            Layer::LeakyRelu { slope } => Node::LeakyRelu(*slope),
            Layer::Softplus => Node::Softplus,
            Layer::Tanh => Node::Tanh,
            Layer::Sigmoid => Node::Sigmoid,
            Layer::Identity => Node::Identity,
            Layer::BatchNorm {
                eps, momentum, affine, ..
            } => {
                let name = layer_name(prefix, i, layers[i].own_name());
                let missing = |n: &str| candle_core::Error::Msg(format!("{arch}: no tensor {name}.{n}"));
                let param = |n: &str| match affine {
                    true => (get.param)(&format!("{name}.{n}")).ok_or_else(|| missing(n)).map(Some),
                    false => Ok(None),
                };
                let buffer = |n: &str| (get.buffer)(&format!("{name}.{n}")).ok_or_else(|| missing(n));
                let relu = matches!(layers.get(i + 1), Some(Layer::Relu));
                step += relu as usize;
                Node::BatchNorm(Norm {
                    weight: param("weight")?,
                    bias: param("bias")?,
                    mean: buffer("running_mean")?,
                    var: buffer("running_var")?,
                    eps: *eps,
                    momentum: *momentum,
                    relu,
                })
            }
            // an architecture lowers every preact_block to its residual block when it is built
            Layer::PreactBlock { .. } => candle_core::bail!("{arch}: preact_block at {prefix}.{i} was not lowered"),
            Layer::Lwta { units, temperature } => Node::Lwta(Competition {
                units: *units,
                temperature: *temperature as f32,
            }),
            Layer::Residual { body, shortcut } => {
                let at = child(prefix, &i.to_string());
                Node::Residual {
                    body: nodes(arch, body, &child(&at, "body"), get)?,
                    shortcut: nodes(arch, shortcut, &child(&at, "shortcut"), get)?,
                }
            }
        });
        i += step;
    }
    Ok(out)
}

/// The IBP gates of `nodes`, in forward order.
fn gates<'a>(nodes: &'a [Node], out: &mut Vec<&'a Gates>) {
    for n in nodes {
        match n {
            Node::Linear(p) | Node::Conv { p, .. } | Node::ConvReluPool { p, .. } => out.extend(p.ibp.as_ref()),
            Node::Residual { body, shortcut } => {
                gates(body, out);
                gates(shortcut, out);
            }
            _ => {}
        }
    }
}

/// Inverted dropout: in training, each value is zeroed with probability `p` (the mask from the
/// next draw of `ctx`) and the others scaled by 1/(1 − p); the identity in evaluation.
fn dropout(h: &Tensor, p: f64, ctx: &Ctx) -> Result<Tensor> {
    if !ctx.train || p == 0.0 {
        return Ok(h.clone());
    }
    let keep = uniform_vec(h.elem_count(), ctx.draw())
        .into_iter()
        .map(|u| if (u as f64) < p { 0f32 } else { (1.0 / (1.0 - p)) as f32 })
        .collect::<Vec<f32>>();
    let mask = Tensor::from_vec(keep, h.shape(), h.device())?.to_dtype(h.dtype())?;
    h * mask
}

/// `nodes` applied to `x` in order; in evaluation, a batch norm right after a convolution
/// (without noise on its output) is folded into it.
fn run(nodes: &[Node], mut h: Tensor, ctx: &Ctx) -> Result<Tensor> {
    let mut at = 0;
    while at < nodes.len() {
        let n = &nodes[at];
        at += 1;
        h = match n {
            Node::Linear(p) => p.linear(&h, ctx)?,
            Node::Conv { p, stride, padding } => match nodes.get(at) {
                Some(Node::BatchNorm(norm)) if !ctx.train && p.alpha_a.is_none() => {
                    at += 1;
                    let (w, b) = norm.fold(&p.weight(ctx)?, &p.b)?;
                    norm.then_relu(ops::conv2d(&h, &w, &b, *padding, *stride)?)?
                }
                _ => p.conv(&h, *padding, *stride, ctx)?,
            },
            Node::ConvReluPool {
                p,
                stride,
                padding,
                size,
            } => ops::conv2d_pool_relu(&h, &p.weight(ctx)?, &p.b, *padding, *stride, *size)?,
            Node::Relu => ops::relu(&h)?,
            Node::MaxPool(s) => ops::max_pool2d(&h, *s)?,
            Node::Flatten => h.flatten_from(1)?,
            Node::GlobalAvgPool => h.mean((2, 3))?,
            Node::Upsample(f) => {
                let (hh, ww) = (h.dim(2)?, h.dim(3)?);
                let device = h.device().clone();
                ops::resample(
                    &h,
                    (&ops::nearest_up(hh, *f), f * hh),
                    (&ops::nearest_up(ww, *f), f * ww),
                    &device,
                )?
            }
            Node::Lwta(c) => c.apply(&h, ctx)?,
            Node::Dropout(p) => dropout(&h, *p, ctx)?,
            Node::AvgPool(s) => h.avg_pool2d(*s)?,
            Node::LeakyRelu(slope) => (h.relu()? + (h.minimum(0f32)? * *slope)?)?,
            // log(1 + eˣ) = max(x, 0) + log(1 + e^−|x|), without overflow
            Node::Softplus => (h.relu()? + (h.abs()?.neg()?.exp()? + 1.0)?.log()?)?,
            Node::Tanh => h.tanh()?,
            Node::Sigmoid => candle_nn::ops::sigmoid(&h)?,
            Node::Identity => h,
            Node::BatchNorm(norm) => norm.apply(&h, ctx)?,
            Node::Residual { body, shortcut } => {
                let b = run(body, h.clone(), ctx)?;
                let s = run(shortcut, h, ctx)?;
                (b + s)?
            }
        };
    }
    Ok(h)
}

impl Net {
    /// The network of `arch` over `get(name)`, the tensor of each parameter.
    pub fn build(arch: &Arch, get: &Get) -> Result<Self> {
        Ok(Net {
            nodes: nodes(arch, arch.layers(), "", get)?,
            flat_input: matches!(arch.input(), Input::Features(_)),
        })
    }

    /// The layers whose connections have IBP utilities.
    fn gates(&self) -> Vec<&Gates> {
        let mut out = Vec::new();
        gates(&self.nodes, &mut out);
        out
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
        let x = if self.flat_input { x.flatten_from(1)? } else { x.clone() };
        run(&self.nodes, x, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn norm(c: usize, momentum: f64, relu: bool) -> (Norm, Var, Var) {
        let w = Var::from_tensor(&Tensor::new(&[1.5f32, 0.5, -0.7][..c], &Device::Cpu).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::new(&[0.1f32, -0.2, 0.3][..c], &Device::Cpu).unwrap()).unwrap();
        let mean = Var::from_tensor(&Tensor::new(&[0.2f32, -0.1, 0.05][..c], &Device::Cpu).unwrap()).unwrap();
        let var = Var::from_tensor(&Tensor::new(&[0.8f32, 1.3, 0.6][..c], &Device::Cpu).unwrap()).unwrap();
        let n = Norm {
            weight: Some(w.as_tensor().clone()),
            bias: Some(b.as_tensor().clone()),
            mean,
            var,
            eps: 1e-5,
            momentum,
            relu,
        };
        (n, w, b)
    }

    fn diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// The CPU kernel and candle's ops give the same outputs, input and affine gradients and
    /// running statistics, in training and evaluation, for images and for flat features, alone
    /// and fused with the ReLU after it.
    #[test]
    fn the_batch_norm_kernel_matches_candles_ops() {
        for (dims, relu) in [
            (vec![4usize, 3, 5, 6], false),
            (vec![7, 3], false),
            (vec![4, 3, 5, 6], true),
            (vec![7, 3], true),
        ] {
            let n: usize = dims.iter().product();
            let data: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.713).sin() * 2.0 + 0.3).collect();
            for train in [true, false] {
                let mut got = Vec::new();
                for generic in [false, true] {
                    let (bn, w, b) = norm(3, 0.2, relu);
                    let x = Var::from_tensor(&Tensor::from_vec(data.clone(), dims.as_slice(), &Device::Cpu).unwrap())
                        .unwrap();
                    let ctx = Ctx::new(0, train);
                    let m = x.elem_count() / 3;
                    let y = match generic {
                        true => {
                            let y = bn.apply_generic(x.as_tensor(), &ctx, m).unwrap();
                            if relu {
                                y.relu().unwrap()
                            } else {
                                y
                            }
                        }
                        false => bn.apply(x.as_tensor(), &ctx).unwrap(),
                    };
                    // a loss that weighs every output differently
                    let weights: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).cos()).collect();
                    let wt = Tensor::from_vec(weights, dims.as_slice(), &Device::Cpu).unwrap();
                    let loss = (&y * &wt).unwrap().sum_all().unwrap();
                    let g = loss.backward().unwrap();
                    let grads = [x.as_tensor(), w.as_tensor(), b.as_tensor()].map(|t| g.get(t).unwrap().clone());
                    let stats = [bn.mean.as_tensor().copy().unwrap(), bn.var.as_tensor().copy().unwrap()];
                    got.push((y, grads, stats));
                }
                let ((y0, g0, s0), (y1, g1, s1)) = (&got[0], &got[1]);
                assert!(diff(y0, y1) < 1e-5, "{dims:?} train {train}: outputs");
                if relu {
                    let clamped = y1.flatten_all().unwrap().to_vec1::<f32>().unwrap().contains(&0.0);
                    assert!(clamped, "the test data should reach the ReLU's flat part");
                }
                for (k, (a, b)) in g0.iter().zip(g1).enumerate() {
                    assert!(
                        diff(a, b) < 1e-4,
                        "{dims:?} train {train}: gradient {k} differs by {}",
                        diff(a, b)
                    );
                }
                for (a, b) in s0.iter().zip(s1) {
                    assert!(diff(a, b) < 1e-6, "{dims:?} train {train}: running statistics");
                }
                assert_eq!(y0.dtype(), DType::F32);
            }
        }
    }

    /// In evaluation a convolution followed by batch norm (and ReLU) runs as one folded
    /// convolution: the same outputs and input gradients as the two ops one after the other.
    #[test]
    fn a_batch_norm_after_a_convolution_folds_into_it_in_evaluation() {
        let dev = Device::Cpu;
        let (k, c_in, side) = (3usize, 2usize, 6usize);
        let wv: Vec<f32> = (0..k * c_in * 9).map(|i| ((i as f32) * 0.41).sin() * 0.5).collect();
        let w = Tensor::from_vec(wv, (k, c_in, 3, 3), &dev).unwrap();
        let b = Tensor::new(&[0.3f32, -0.1, 0.2], &dev).unwrap();
        let xv: Vec<f32> = (0..2 * c_in * side * side).map(|i| ((i as f32) * 0.77).cos()).collect();
        for relu in [false, true] {
            let weights = || Weights {
                w: w.clone(),
                b: b.clone(),
                alpha_w: None,
                alpha_a: None,
                ibp: None,
            };
            let nodes = vec![
                Node::Conv {
                    p: weights(),
                    stride: 1,
                    padding: 1,
                },
                Node::BatchNorm(norm(k, 0.1, relu).0),
            ];
            let x = Var::from_tensor(&Tensor::from_vec(xv.clone(), (2, c_in, side, side), &dev).unwrap()).unwrap();
            let ctx = Ctx::new(0, false);
            let folded = run(&nodes, x.as_tensor().clone(), &ctx).unwrap();
            let one_by_one = match &nodes[1] {
                Node::BatchNorm(bn) => bn
                    .apply(&weights().conv(x.as_tensor(), 1, 1, &ctx).unwrap(), &ctx)
                    .unwrap(),
                _ => unreachable!(),
            };
            assert!(diff(&folded, &one_by_one) < 1e-5, "relu {relu}: outputs");
            let grad = |y: &Tensor| {
                y.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
                    .get(&x)
                    .unwrap()
                    .clone()
            };
            assert!(
                diff(&grad(&folded), &grad(&one_by_one)) < 1e-4,
                "relu {relu}: input gradients"
            );
        }
    }
}
