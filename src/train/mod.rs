//! Training (layer 5): parameters (unchecked → `check()` → valid), the epoch loop (the
//! optimizers are in `optim`) with a progress bar, and the training recipes: the [`Recipe`]
//! trait and the [`TrainingPlan`] that composes them (`recipe.rs`), one file per recipe (PGD
//! training, fast FGSM training with its guard, TRADES, mixed training, cluster training,
//! label smoothing). The loop calls a recipe's hooks and knows none by name.

use crate::data::{Augment, Dataset};
use crate::error::{Error, ParamError, Result};
use crate::nn::Model;
use crate::optim::{check_loop, clip_grad_norm, Opt};
use candle_core::Tensor;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

mod cluster;
mod fast_fgsm;
mod logit_pairing;
mod mixed;
mod pgd;
mod recipe;
mod select;
mod smoothing;
mod trades;
mod vat;

pub use cluster::{ClusterTraining, ClusterTrainingParams};
pub use fast_fgsm::{FastFgsm, FastFgsmParams, GuardParams, GUARD_MIN_FALL};
pub use logit_pairing::{pairing_term, LogitPairing, LogitPairingParams};
pub use mixed::{Mixed, MixedParams};
pub use pgd::{PgdTraining, PgdTrainingParams};
pub use recipe::{
    cross_entropy_loss, smoothed_cross_entropy, BatchLoss, Crafted, Crafting, Flow, Measured, Monitor, Recipe,
    TrainingPlan,
};
pub use select::{Selection, SelectionParams};
pub use smoothing::{LabelSmoothing, LabelSmoothingParams};
pub use trades::{trades_samples, Trades, TradesParams};
pub use vat::{vat_direction, Vat, VatParams};

use recipe::{add_sums, correct};

/// Which optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    AdamW,
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
    /// `"constant"`, `"cyclic"`, `"cosine"`, `"multistep"` or `"piecewise"`.
    pub lr_schedule: String,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// L2 weight decay (coupled for SGD and Adam, decoupled for AdamW).
    pub weight_decay: f64,
    /// The epochs at which `"multistep"` multiplies the rate by `gamma`.
    pub milestones: Vec<usize>,
    pub gamma: f64,
    /// `"piecewise"`: the rate at these (fractional) epochs, linear in between.
    pub piecewise: Vec<(f64, f64)>,
    /// Applied, in order, to every training batch before a recipe crafts it.
    pub augment: Vec<Augment>,
    /// `"eval"` or `"train"`: the mode of the forward pass a recipe crafts its samples with.
    pub craft_mode: String,
    /// Scale the gradients down to this total L2 norm when above it (`None`: no clipping).
    pub clip_grad_norm: Option<f64>,
}

/// Which forward pass a recipe crafts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CraftMode {
    /// Evaluation mode: batch norm's running statistics, no dropout (as attacks, torchattacks
    /// and TRADES' `model.eval()` before crafting).
    Eval,
    /// Training mode: the batch's statistics, moving the running ones, and dropout (as Wong et
    /// al.'s and Rice et al.'s PGD training, which crafts under `model.train()`).
    Train,
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
            lr_schedule: "constant".into(),
            nesterov: false,
            weight_decay: 0.0,
            milestones: Vec::new(),
            gamma: 0.1,
            piecewise: Vec::new(),
            augment: Vec::new(),
            craft_mode: "eval".into(),
            clip_grad_norm: None,
        }
    }
}

/// How the learning rate changes over a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` throughout.
    Constant,
    /// Wong et al.'s one cycle: linear from 0 up to `lr` at 2/5 of the updates, then down to 0
    /// at the last one.
    Cyclic,
    /// `torch.optim.lr_scheduler.CosineAnnealingLR` over all updates, stepped per update:
    /// `lr·(1 + cos(π·t/T))/2` at update t of T.
    Cosine,
    /// `MultiStepLR`, stepped per epoch: `lr·γ^k` after the k-th milestone epoch.
    MultiStep { milestones: Vec<usize>, gamma: f64 },
    /// The rate at given epochs, linear in between (Wong et al., Rice et al.: `np.interp` at
    /// the fractional epoch after each update), flat beyond the ends.
    Piecewise { points: Vec<(f64, f64)> },
}

impl LrSchedule {
    /// The rate of update `t` (0-based) of `total`, `per_epoch` updates an epoch, for peak or
    /// initial rate `lr`.
    pub fn rate(&self, lr: f64, t: usize, total: usize, per_epoch: usize) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cyclic => {
                // the rate after the update, as PyTorch's per-iteration schedulers step
                let x = (t + 1) as f64 / total.max(1) as f64;
                if x <= 0.4 {
                    lr * x / 0.4
                } else {
                    lr * (1.0 - x) / 0.6
                }
            }
            LrSchedule::Cosine => lr * (1.0 + (std::f64::consts::PI * t as f64 / total.max(1) as f64).cos()) / 2.0,
            LrSchedule::MultiStep { milestones, gamma } => {
                let epoch = t / per_epoch.max(1);
                lr * gamma.powi(milestones.iter().filter(|&&m| m <= epoch).count() as i32)
            }
            LrSchedule::Piecewise { points } => {
                let e = (t + 1) as f64 / per_epoch.max(1) as f64;
                match points.iter().position(|&(pe, _)| pe >= e) {
                    None => points.last().map_or(lr, |p| p.1),
                    Some(0) => points[0].1,
                    Some(k) => {
                        let ((e0, r0), (e1, r1)) = (points[k - 1], points[k]);
                        r0 + (r1 - r0) * (e - e0) / (e1 - e0)
                    }
                }
            }
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
    pub lr_schedule: LrSchedule,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub augment: Vec<Augment>,
    pub craft_mode: CraftMode,
    pub clip_grad_norm: Option<f64>,
}

impl FitParams {
    /// Check every rule; the first broken one is the error.
    pub fn check(&self) -> std::result::Result<FitValid, ParamError> {
        check_loop(self.epochs, self.batch_size, self.lr)?;
        let optimizer = match self.optimizer.as_str() {
            "adam" => OptimizerKind::Adam,
            "adamw" => OptimizerKind::AdamW,
            "sgd" => OptimizerKind::Sgd,
            other => return Err(ParamError::UnknownOptimizer(other.to_string())),
        };
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(ParamError::MomentumOutOfRange(self.momentum));
        }
        if self.nesterov && (optimizer != OptimizerKind::Sgd || self.momentum == 0.0) {
            return Err(ParamError::NesterovWithoutMomentum);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ParamError::WeightDecay(self.weight_decay));
        }
        let lr_schedule = match self.lr_schedule.as_str() {
            "constant" => LrSchedule::Constant,
            "cyclic" => LrSchedule::Cyclic,
            "cosine" => LrSchedule::Cosine,
            "multistep" => {
                if self.milestones.is_empty() || self.milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(ParamError::Milestones(self.milestones.clone()));
                }
                if !(self.gamma.is_finite() && self.gamma > 0.0) {
                    return Err(ParamError::Gamma(self.gamma));
                }
                LrSchedule::MultiStep {
                    milestones: self.milestones.clone(),
                    gamma: self.gamma,
                }
            }
            "piecewise" => {
                let p = &self.piecewise;
                let bad = p.len() < 2
                    || p.iter()
                        .any(|&(e, r)| !(e.is_finite() && e >= 0.0 && r.is_finite() && r >= 0.0))
                    || p.windows(2).any(|w| w[0].0 >= w[1].0);
                if bad {
                    return Err(ParamError::Piecewise(format!("{p:?}")));
                }
                LrSchedule::Piecewise { points: p.clone() }
            }
            other => return Err(ParamError::UnknownLrSchedule(other.to_string())),
        };
        let craft_mode = match self.craft_mode.as_str() {
            "eval" => CraftMode::Eval,
            "train" => CraftMode::Train,
            other => return Err(ParamError::UnknownCraftMode(other.to_string())),
        };
        if let Some(c) = self.clip_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(ParamError::ClipGradNorm(c));
            }
        }
        Ok(FitValid {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            optimizer,
            momentum: self.momentum,
            seed: self.seed,
            lr_schedule,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            augment: self.augment.clone(),
            craft_mode,
            clip_grad_norm: self.clip_grad_norm,
        })
    }
}

/// What one epoch did.
#[derive(Clone, Debug, Serialize)]
pub struct EpochStats {
    pub epoch: usize,
    /// Mean training loss over the epoch (the loss minimised: with label smoothing, the
    /// smoothed cross-entropy; with TRADES, cross-entropy + β·KL).
    pub loss: f64,
    /// Training accuracy over the epoch (on the batches as they were trained on: the crafted
    /// samples of a defence, the clean ones for TRADES).
    pub accuracy: f64,
    pub seconds: f64,
    /// What the defence measured during the epoch (e.g. `guard_pgd`, `kl`, `attacked`).
    pub measured: BTreeMap<String, f64>,
}

/// What a training run did: one entry per epoch, and what the defence found over the run
/// (e.g. `catastrophic_overfitting`, `attack_batches`).
#[derive(Clone, Debug, Serialize)]
pub struct FitHistory {
    pub epochs: Vec<EpochStats>,
    pub outcome: serde_json::Map<String, serde_json::Value>,
}

/// The optimizer `p` names, over `model`'s parameters.
fn optimizer(model: &Model, p: &FitValid) -> Result<Opt> {
    let vars = model.vars();
    Ok(match p.optimizer {
        OptimizerKind::Adam => Opt::adam_decay(vars, p.lr, p.weight_decay, false, model.device())?,
        OptimizerKind::AdamW => Opt::adam_decay(vars, p.lr, p.weight_decay, true, model.device())?,
        OptimizerKind::Sgd => Opt::sgd(vars, p.lr, p.momentum, p.nesterov, p.weight_decay),
    })
}

/// A batch norm over one value per channel (after a flat layer) cannot normalise a training
/// batch of one sample (PyTorch fails on it too): say so before the epoch starts, with the ways
/// out.
fn check_last_batch(model: &Model, n: usize, batch_size: usize, epoch: usize) -> Result<()> {
    if n > 1 && n % batch_size == 1 && model.arch().needs_two_samples_per_batch() {
        return Err(Error::Invalid(format!(
            "fit: epoch {} has {n} samples, so its last batch of batch_size {batch_size} holds one sample, \
             which batch norm cannot normalise in training; choose a batch_size that does not leave one \
             sample over, or take {} samples",
            epoch + 1,
            n - 1
        )));
    }
    Ok(())
}

/// Train `model` in place on `data`. The order of samples in epoch `e` is a permutation drawn
/// from `seed + e`, so the same parameters give the same weights.
pub fn fit(model: &Model, data: &Dataset, p: &FitValid) -> Result<Vec<EpochStats>> {
    Ok(fit_with(model, data, p, &TrainingPlan::none())?.epochs)
}

/// Train `model` in place on `data` under `plan`: each epoch and batch go through the hooks
/// of the plan's crafting recipe (epoch start, craft, loss), with the plan's label smoothing;
/// a recipe's monitor (fast FGSM's guard) holds out its samples and may stop the run.
pub fn fit_with(model: &Model, data: &Dataset, p: &FitValid, plan: &TrainingPlan) -> Result<FitHistory> {
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
    if let Some(sel) = plan.selection() {
        // a held-out set that does not fit fails now, not after the first epoch
        model.check_input(sel.data().images().dims())?;
    }
    let device = data.device().clone();
    let recipe = plan.crafter();
    let smoothing = plan.smoothing();
    let mut monitor = recipe.start(data)?;
    let train: Vec<u32> = match &monitor {
        Some(m) => m.train_indices(),
        None => (0..data.len() as u32).collect(),
    };
    let mut opt = optimizer(model, p)?;
    let vars = model.vars();
    let crafting = match p.craft_mode {
        CraftMode::Eval => model.clone(),
        CraftMode::Train => model.in_training_mode()?,
    };
    let mut keeper = plan.selection().map(|s| s.start());
    let mut history = Vec::with_capacity(p.epochs);
    let mut attack_batches: BTreeMap<String, usize> = BTreeMap::new();
    let label = if plan.is_plain() {
        model.arch().to_string()
    } else {
        let names: Vec<&str> = plan.recipes().iter().map(|r| r.name()).collect();
        format!("{} with {}", model.arch(), names.join(" + "))
    };
    for epoch in 0..p.epochs {
        let start = Instant::now();
        let mut measured = Measured::new();
        // a recipe may replace the epoch's samples (cluster training: one cluster's adversarial samples)
        let (set, mut order) = match recipe.epoch_start(model, data, epoch, &mut measured)? {
            Some(samples) => {
                let all = (0..samples.len() as u32).collect();
                (std::borrow::Cow::Owned(samples), all)
            }
            None => (std::borrow::Cow::Borrowed(data), train.clone()),
        };
        let n = order.len();
        check_last_batch(model, n, p.batch_size, epoch)?;
        order.shuffle(&mut StdRng::seed_from_u64(p.seed.wrapping_add(epoch as u64)));
        let batches = n.div_ceil(p.batch_size);
        let pb = crate::progress::bar(batches as u64, format!("fit epoch {}/{}", epoch + 1, p.epochs));
        let (mut loss_sum, mut correct_sum) = (0f64, 0f64);
        let mut sums = BTreeMap::new();
        for (b, chunk) in order.chunks(p.batch_size).enumerate() {
            crate::interrupt::check()?;
            let idx = Tensor::from_slice(chunk, chunk.len(), &device)?;
            let x = set.images().index_select(&idx, 0)?;
            let y = set.labels().index_select(&idx, 0)?;
            let mut x = x;
            for (k, a) in p.augment.iter().enumerate() {
                x = a.apply(&x, recipe::batch_seed(p.seed ^ ((k as u64 + 1) << 48), epoch, b))?;
            }
            let crafted = recipe.craft(&crafting, &x, &y, epoch, b)?;
            let mut out = recipe.loss(model, &x, &y, crafted, smoothing)?;
            if let Some(kl) = model.ibp_kl()? {
                // the ELBO per sample: cross-entropy + KL(q ‖ p)/N
                let kl = (kl / set.len() as f64)?;
                out.sums
                    .push(("ibp_kl", kl.to_scalar::<f32>()? as f64 * chunk.len() as f64));
                out.loss = (out.loss + kl)?;
            }
            if p.lr_schedule != LrSchedule::Constant {
                opt.set_lr(
                    p.lr_schedule
                        .rate(p.lr, epoch * batches + b, p.epochs * batches, batches),
                );
            }
            let batch_loss = out.loss.to_scalar::<f32>()? as f64;
            if !batch_loss.is_finite() {
                // stop before the step: the model keeps the last weights that were numbers
                return Err(Error::Invalid(format!(
                    "fit {label}: the loss became {batch_loss} at epoch {}, batch {} of {batches} (learning rate {:e}); \
                     the weights before this batch are kept. Lower `lr`, set `clip_grad_norm`, or check the data for \
                     values that are not finite numbers",
                    epoch + 1,
                    b + 1,
                    opt.lr() as f32
                )));
            }
            let mut grads = out.loss.backward()?;
            if let Some(max) = p.clip_grad_norm {
                clip_grad_norm(&mut grads, &vars, max)?;
            }
            opt.step(&grads)?;
            loss_sum += batch_loss * chunk.len() as f64;
            correct_sum += correct(&out.logits, &y)?;
            add_sums(&mut sums, &out.sums);
            if let Some(used) = out.used {
                *attack_batches.entry(used).or_insert(0) += 1;
            }
            pb.inc(1);
            pb.set_message(format!("loss {batch_loss:.4}"));
        }
        pb.finish_and_clear();
        measured.extend(sums.into_iter().map(|(k, v)| (k, v / n as f64)));
        let usage = model.ibp_usage()?;
        if !usage.is_empty() {
            let (on, all) = usage.iter().fold((0, 0), |(a, b), u| (a + u.on, b + u.connections));
            measured.insert("ibp_active".into(), on as f64 / all.max(1) as f64);
        }
        let flow = match monitor.as_mut() {
            Some(m) => m.epoch_end(model, epoch + 1, &mut measured)?,
            None => Flow::Continue,
        };
        if let Some(k) = keeper.as_mut() {
            let last = if flow == Flow::Stop { epoch + 1 } else { p.epochs };
            k.epoch_end(model, epoch + 1, last, &mut measured)?;
        }
        let stats = EpochStats {
            epoch: epoch + 1,
            loss: loss_sum / n.max(1) as f64,
            accuracy: correct_sum / n.max(1) as f64,
            seconds: start.elapsed().as_secs_f64(),
            measured,
        };
        let extra: String = stats.measured.iter().map(|(k, v)| format!(", {k} {v:.4}")).collect();
        eprintln!(
            "fit {label} epoch {}/{}: loss {:.4}, train accuracy {:.4}{extra}, {:.1} s ({:.0} samples/s)",
            stats.epoch,
            p.epochs,
            stats.loss,
            stats.accuracy,
            stats.seconds,
            n as f64 / stats.seconds.max(1e-9)
        );
        history.push(stats);
        if flow == Flow::Stop {
            break;
        }
    }
    let mut outcome = serde_json::Map::new();
    if !attack_batches.is_empty() {
        outcome.insert("attack_batches".into(), serde_json::json!(attack_batches));
    }
    if let Some(m) = &monitor {
        m.outcome(&mut outcome);
    }
    if let Some(k) = &keeper {
        k.finish(model, &mut outcome)?;
    }
    Ok(FitHistory {
        epochs: history,
        outcome,
    })
}
