//! Training: parameters (unchecked → `check()` → valid), the optimizers (Adam, SGD with
//! momentum) and the epoch loop with a progress bar.

use crate::data::Dataset;
use crate::error::{Error, ParamError, Result};
use crate::nn::Model;
use candle_core::{backprop::GradStore, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use serde::Serialize;
use std::time::Instant;

/// Which optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Sgd,
}

/// Unchecked training parameters, with PyTorch-like defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct FitParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: String,
    pub momentum: f64,
    pub seed: u64,
}

impl Default for FitParams {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 128,
            lr: 1e-3,
            optimizer: "adam".into(),
            momentum: 0.9,
            seed: 0,
        }
    }
}

/// Checked training parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FitValid {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: OptimizerKind,
    /// Only used by SGD.
    pub momentum: f64,
    pub seed: u64,
}

impl FitParams {
    /// Check every rule; the first broken one is the error.
    pub fn check(&self) -> std::result::Result<FitValid, ParamError> {
        if self.epochs == 0 {
            return Err(ParamError::EpochsZero);
        }
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ParamError::LrNotPositive(self.lr));
        }
        let optimizer = match self.optimizer.as_str() {
            "adam" => OptimizerKind::Adam,
            "sgd" => OptimizerKind::Sgd,
            other => return Err(ParamError::UnknownOptimizer(other.to_string())),
        };
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(ParamError::MomentumOutOfRange(self.momentum));
        }
        Ok(FitValid {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            optimizer,
            momentum: self.momentum,
            seed: self.seed,
        })
    }
}

/// What one epoch did.
#[derive(Clone, Debug, Serialize)]
pub struct EpochStats {
    pub epoch: usize,
    /// Mean training cross-entropy over the epoch.
    pub loss: f64,
    /// Training accuracy over the epoch (on the batches as they were seen).
    pub accuracy: f64,
    pub seconds: f64,
}

/// SGD with momentum, as PyTorch: `v = μ·v + g; p -= lr·v`.
pub(crate) struct Sgd {
    vars: Vec<Var>,
    velocity: Vec<Option<Tensor>>,
    lr: f64,
    momentum: f64,
}

impl Sgd {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (var, vel) in self.vars.iter().zip(self.velocity.iter_mut()) {
            if let Some(g) = grads.get(var.as_tensor()) {
                let buf = match vel.take() {
                    Some(v) if self.momentum > 0.0 => ((v * self.momentum)? + g)?,
                    _ => g.clone(),
                };
                var.set(&(var.as_tensor() - (&buf * self.lr)?)?)?;
                *vel = Some(buf);
            }
        }
        Ok(())
    }
}

/// Adam as PyTorch (and candle) define it, fused into one pass per parameter tensor on the
/// CPU: `m = β₁m + (1−β₁)g`, `v = β₂v + (1−β₂)g²`, `p −= lr·m̂/(√v̂ + ε)`.
pub(crate) struct Adam {
    vars: Vec<Var>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    t: i32,
    lr: f32,
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
        }
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        use rayon::prelude::*;
        self.t += 1;
        let (bc1, bc2) = (1.0 - Self::B1.powi(self.t), 1.0 - Self::B2.powi(self.t));
        let lr = self.lr;
        for ((var, m), v) in self.vars.iter().zip(&mut self.m).zip(&mut self.v) {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            let mut p = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            p.par_chunks_mut(4096)
                .zip(m.par_chunks_mut(4096))
                .zip(v.par_chunks_mut(4096).zip(g.par_chunks(4096)))
                .for_each(|((p, m), (v, g))| {
                    for i in 0..p.len() {
                        m[i] = Self::B1 * m[i] + (1.0 - Self::B1) * g[i];
                        v[i] = Self::B2 * v[i] + (1.0 - Self::B2) * g[i] * g[i];
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
        Ok(if device.is_cpu() {
            Opt::Adam(Adam::new(vars, lr))
        } else {
            Opt::AdamW(AdamW::new(
                vars,
                ParamsAdamW {
                    lr,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.0,
                },
            )?)
        })
    }

    fn new(model: &Model, p: &FitValid) -> Result<Self> {
        let vars = model.vars();
        Ok(match p.optimizer {
            OptimizerKind::Adam => Self::adam(vars, p.lr, model.device())?,
            OptimizerKind::Sgd => {
                let n = vars.len();
                Opt::Sgd(Sgd {
                    vars,
                    velocity: vec![None; n],
                    lr: p.lr,
                    momentum: p.momentum,
                })
            }
        })
    }

    fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.step(&loss.backward()?)
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

/// Train `model` in place on `data`. The order of samples in epoch `e` is a permutation drawn
/// from `seed + e`, so the same parameters give the same weights.
pub fn fit(model: &Model, data: &Dataset, p: &FitValid) -> Result<Vec<EpochStats>> {
    model.check_input(data.images().dims())?;
    if data.is_empty() {
        return Err(Error::Invalid("fit: the data set is empty".into()));
    }
    if data.classes() > model.classes() {
        return Err(Error::Shape(format!(
            "fit: the data set has {} classes but {} has only {} outputs",
            data.classes(),
            model.arch(),
            model.classes()
        )));
    }
    let n = data.len();
    let device = data.device().clone();
    let mut opt = Opt::new(model, p)?;
    let mut history = Vec::with_capacity(p.epochs);
    for epoch in 0..p.epochs {
        let start = Instant::now();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut StdRng::seed_from_u64(p.seed.wrapping_add(epoch as u64)));
        let batches = n.div_ceil(p.batch_size);
        let pb = crate::progress::bar(batches as u64, format!("fit epoch {}/{}", epoch + 1, p.epochs));
        let (mut loss_sum, mut correct) = (0f64, 0u64);
        for chunk in order.chunks(p.batch_size) {
            crate::interrupt::check()?;
            let idx = Tensor::from_slice(chunk, chunk.len(), &device)?;
            let x = data.images().index_select(&idx, 0)?;
            let y = data.labels().index_select(&idx, 0)?;
            let logits = model.forward_train(&x)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            opt.backward_step(&loss)?;
            let batch_loss = loss.to_scalar::<f32>()? as f64;
            loss_sum += batch_loss * chunk.len() as f64;
            let pred = logits.detach().argmax(D::Minus1)?;
            correct += pred
                .eq(&y)?
                .to_dtype(candle_core::DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()? as u64;
            pb.inc(1);
            pb.set_message(format!("loss {batch_loss:.4}"));
        }
        pb.finish_and_clear();
        let stats = EpochStats {
            epoch: epoch + 1,
            loss: loss_sum / n as f64,
            accuracy: correct as f64 / n as f64,
            seconds: start.elapsed().as_secs_f64(),
        };
        eprintln!(
            "fit {} epoch {}/{}: loss {:.4}, train accuracy {:.4}, {:.1} s ({:.0} samples/s)",
            model.arch(),
            stats.epoch,
            p.epochs,
            stats.loss,
            stats.accuracy,
            stats.seconds,
            n as f64 / stats.seconds.max(1e-9)
        );
        history.push(stats);
    }
    Ok(history)
}
