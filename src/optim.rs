//! Optimizers: Adam and AdamW (fused on the CPU, candle's AdamW elsewhere) and SGD with
//! momentum, Nesterov momentum and weight decay, as PyTorch defines them. A leaf: training,
//! the CW attack and the autoencoders all use it.

use crate::error::{ParamError, Result};
use candle_core::{backprop::GradStore, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

/// SGD as PyTorch's `torch.optim.SGD` (no dampening): `g += wd·p` (coupled weight decay),
/// `v = μ·v + g` (`v = g` at the first step), then `p -= lr·(g + μ·v)` with Nesterov momentum
/// or `p -= lr·v` without.
pub(crate) struct Sgd {
    vars: Vec<Var>,
    velocity: Vec<Option<Tensor>>,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
}

impl Sgd {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (var, vel) in self.vars.iter().zip(self.velocity.iter_mut()) {
            if let Some(g) = grads.get(var.as_tensor()) {
                let g = if self.weight_decay > 0.0 {
                    (g + (var.as_tensor() * self.weight_decay)?)?
                } else {
                    g.clone()
                };
                let buf = match vel.take() {
                    Some(v) if self.momentum > 0.0 => ((v * self.momentum)? + &g)?,
                    _ => g.clone(),
                };
                let update = if self.nesterov {
                    (&g + (&buf * self.momentum)?)?
                } else {
                    buf.clone()
                };
                var.set(&(var.as_tensor() - (&update * self.lr)?)?)?;
                *vel = Some(buf);
            }
        }
        Ok(())
    }
}

/// Adam as PyTorch (and candle) define it, fused into one pass per parameter tensor on the
/// CPU: `m = β₁m + (1−β₁)g`, `v = β₂v + (1−β₂)g²`, `p −= lr·m̂/(√v̂ + ε)`; weight decay either
/// coupled (`torch.optim.Adam`: `g += wd·p` first) or decoupled (`torch.optim.AdamW`:
/// `p −= lr·wd·p` first).
pub(crate) struct Adam {
    vars: Vec<Var>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    t: i32,
    lr: f32,
    weight_decay: f32,
    decoupled: bool,
}

impl Adam {
    const B1: f32 = 0.9;
    const B2: f32 = 0.999;
    const EPS: f32 = 1e-8;

    fn new(vars: Vec<Var>, lr: f64) -> Self {
        let zeros = |v: &Var| vec![0f32; v.as_tensor().elem_count()];
        let (m, v) = (vars.iter().map(zeros).collect(), vars.iter().map(zeros).collect());
        Self {
            vars,
            m,
            v,
            t: 0,
            lr: lr as f32,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        use rayon::prelude::*;
        self.t += 1;
        let (bc1, bc2) = (1.0 - Self::B1.powi(self.t), 1.0 - Self::B2.powi(self.t));
        let (lr, wd, decoupled) = (self.lr, self.weight_decay, self.decoupled);
        for ((var, m), v) in self.vars.iter().zip(&mut self.m).zip(&mut self.v) {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            let mut p = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            p.par_chunks_mut(4096)
                .zip(m.par_chunks_mut(4096))
                .zip(v.par_chunks_mut(4096).zip(g.par_chunks(4096)))
                .for_each(|((p, m), (v, g))| {
                    for i in 0..p.len() {
                        let mut g = g[i];
                        if decoupled {
                            p[i] -= lr * wd * p[i];
                        } else {
                            g += wd * p[i];
                        }
                        m[i] = Self::B1 * m[i] + (1.0 - Self::B1) * g;
                        v[i] = Self::B2 * v[i] + (1.0 - Self::B2) * g * g;
                        p[i] -= lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + Self::EPS);
                    }
                });
            var.set(&Tensor::from_vec(p, var.as_tensor().dims(), var.device())?)?;
        }
        Ok(())
    }
}

pub(crate) enum Opt {
    Adam(Adam),
    AdamW(AdamW),
    Sgd(Sgd),
}

impl Opt {
    /// Adam over `vars` with learning rate `lr`: the fused CPU version, else candle's AdamW
    /// without weight decay (the same update).
    pub(crate) fn adam(vars: Vec<Var>, lr: f64, device: &candle_core::Device) -> Result<Self> {
        Self::adam_decay(vars, lr, 0.0, false, device)
    }

    /// Adam (`decoupled`: AdamW) with weight decay `wd`; on the CPU the fused version.
    pub(crate) fn adam_decay(
        vars: Vec<Var>,
        lr: f64,
        wd: f64,
        decoupled: bool,
        device: &candle_core::Device,
    ) -> Result<Self> {
        if device.is_cpu() {
            let mut a = Adam::new(vars, lr);
            a.weight_decay = wd as f32;
            a.decoupled = decoupled;
            return Ok(Opt::Adam(a));
        }
        if wd > 0.0 && !decoupled {
            return Err(crate::error::Error::Invalid(
                "Adam with (coupled) weight_decay runs on the CPU only; use optimizer: \"adamw\" on a GPU".into(),
            ));
        }
        Ok(Opt::AdamW(AdamW::new(
            vars,
            ParamsAdamW {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: wd,
            },
        )?))
    }

    /// SGD over `vars` with learning rate `lr`, `momentum` (0 for none), Nesterov momentum
    /// (`nesterov`) and coupled weight decay `wd`, as PyTorch.
    pub(crate) fn sgd(vars: Vec<Var>, lr: f64, momentum: f64, nesterov: bool, wd: f64) -> Self {
        let n = vars.len();
        Opt::Sgd(Sgd {
            vars,
            velocity: vec![None; n],
            lr,
            momentum,
            nesterov,
            weight_decay: wd,
        })
    }

    /// Change the learning rate of the next updates.
    pub(crate) fn set_lr(&mut self, lr: f64) {
        match self {
            Opt::Adam(o) => o.lr = lr as f32,
            Opt::AdamW(o) => o.set_learning_rate(lr),
            Opt::Sgd(o) => o.lr = lr,
        }
    }

    /// The learning rate of the next update.
    pub(crate) fn lr(&self) -> f64 {
        match self {
            Opt::Adam(o) => o.lr as f64,
            Opt::AdamW(o) => o.learning_rate(),
            Opt::Sgd(o) => o.lr,
        }
    }

    /// One update from the gradients in `grads`.
    pub(crate) fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            Opt::Adam(o) => o.step(grads)?,
            Opt::AdamW(o) => o.step(grads)?,
            Opt::Sgd(o) => o.step(grads)?,
        }
        Ok(())
    }
}

/// Scale the gradients of `vars` in `grads` so that their total L2 norm is at most `max`
/// (`torch.nn.utils.clip_grad_norm_`: by max/(norm + 1e-6) when the norm is above `max`).
pub(crate) fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max: f64) -> Result<()> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    let coef = max / (norm + 1e-6);
    if coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * coef)?);
            }
        }
    }
    Ok(())
}

/// The rules every training loop shares (a model's fit, an autoencoder's): at least one
/// epoch, a batch of at least one sample, a finite learning rate above 0.
pub(crate) fn check_loop(epochs: usize, batch_size: usize, lr: f64) -> std::result::Result<(), ParamError> {
    if epochs == 0 {
        return Err(ParamError::EpochsZero);
    }
    if batch_size == 0 {
        return Err(ParamError::BatchSizeZero);
    }
    if !(lr.is_finite() && lr > 0.0) {
        return Err(ParamError::LrNotPositive(lr));
    }
    Ok(())
}
