//! Attacks (layer 4, above `nn`): one `Attack` trait, and the mechanics every attack shares
//! written once here (input gradient of the summed cross-entropy on logits, targeted or not;
//! the seeded per-sample noise; batching over a data set). Every step and projection (L∞, L2,
//! CW's change of variables) lives in `step.rs`.

mod apgd;
mod custom;
mod cw;
mod deepfool;
mod fab;
mod fgsm;
pub mod loss;
mod noise;
mod pgd;
mod square;
pub mod step;
mod universal;

pub use apgd::{Apgd, ApgdParams};
pub use custom::{Custom, CustomParams, RunParams, StepRule};
pub use cw::{CwL2, CwL2Params};
pub use deepfool::{DeepFool, DeepFoolParams};
pub use fab::{Fab, FabParams};
pub use fgsm::{Fgsm, FgsmParams};
pub use noise::{Noise, NoiseKind, NoiseParams};
pub use pgd::{Pgd, PgdParams};
pub use square::{Square, SquareParams};
pub(crate) use step::{l2_step, linf_step};
pub use universal::{fooling_rate, Universal, UniversalParams, UniversalSearch};

use crate::data::Dataset;
use crate::error::{Error, ParamError, Result};
use crate::nn::Model;
use candle_core::{DType, Tensor, Var, D};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::fmt;

/// The norm a perturbation budget is measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    Linf,
    L2,
}

impl Norm {
    /// `"linf"` or `"l2"`, or the rule it breaks.
    pub fn parse(s: &str) -> std::result::Result<Self, ParamError> {
        match s {
            "linf" | "inf" => Ok(Norm::Linf),
            "l2" => Ok(Norm::L2),
            _ => Err(ParamError::UnknownNorm(s.to_string())),
        }
    }

    /// The name used in parameters and outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
        }
    }
}

/// What an attack aims for: any wrong class (untargeted), or a target class per sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Untargeted,
    /// The same class for every sample.
    Class(u32),
    /// The class the model finds least likely on the clean input.
    LeastLikely,
    /// A class other than the true one, drawn per sample from this seed.
    Random(u64),
}

impl Target {
    /// Whether the attack aims for given classes.
    pub fn is_targeted(&self) -> bool {
        !matches!(self, Target::Untargeted)
    }

    /// How it is recorded beside outputs.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Target::Untargeted => serde_json::json!("untargeted"),
            Target::Class(c) => serde_json::json!(c),
            Target::LeastLikely => serde_json::json!("least_likely"),
            Target::Random(seed) => serde_json::json!({ "random": seed }),
        }
    }

    /// The target class of every sample of a batch (`None` when untargeted). A random target is
    /// drawn from the seed and the sample itself, so it does not depend on batching.
    pub fn resolve(&self, model: &Model, x: &Tensor, y: &Tensor) -> Result<Option<Tensor>> {
        let classes = model.classes();
        let t = match self {
            Target::Untargeted => return Ok(None),
            Target::Class(c) if *c as usize >= classes => {
                return Err(Error::Invalid(format!(
                    "target class {c} is outside the model's classes 0..={}",
                    classes - 1
                )))
            }
            Target::Class(c) => Tensor::full(*c, y.dims(), y.device())?,
            Target::LeastLikely => model.forward(x)?.argmin(D::Minus1)?,
            Target::Random(seed) => {
                let labels = y.to_vec1::<u32>()?;
                let flat = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                let per = flat.len() / labels.len().max(1);
                let t: Vec<u32> = labels
                    .iter()
                    .zip(flat.chunks(per.max(1)))
                    .map(|(&label, sample)| {
                        let mut rng = StdRng::seed_from_u64(seed ^ sample_hash(sample) ^ 0x7a72_6574);
                        let r = rng.random_range(0..classes as u32 - 1);
                        if r >= label {
                            r + 1
                        } else {
                            r
                        }
                    })
                    .collect();
                Tensor::new(t, y.device())?
            }
        };
        Ok(Some(t))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Untargeted => write!(f, "untargeted"),
            Target::Class(c) => write!(f, "{c}"),
            Target::LeastLikely => write!(f, "least_likely"),
            Target::Random(seed) => write!(f, "random(seed={seed})"),
        }
    }
}

/// The labels a batch is attacked with: the true ones (untargeted: move away from them) or the
/// targets (move towards them).
pub(crate) struct Goal {
    pub labels: Tensor,
    pub targeted: bool,
}

impl Goal {
    /// The goal of attacking `(x, y)` with `target`.
    pub fn new(target: &Target, model: &Model, x: &Tensor, y: &Tensor) -> Result<Self> {
        Ok(match target.resolve(model, x, y)? {
            Some(t) => Goal {
                labels: t,
                targeted: true,
            },
            None => Goal {
                labels: y.clone(),
                targeted: false,
            },
        })
    }

    /// Per sample, whether predictions `pred` reach the goal.
    pub fn reached(&self, pred: &[u32]) -> Result<Vec<bool>> {
        let labels = self.labels.to_vec1::<u32>()?;
        Ok(pred
            .iter()
            .zip(labels)
            .map(|(&p, l)| if self.targeted { p == l } else { p != l })
            .collect())
    }
}

/// An adversarial attack: a small value holding only its resolved hyperparameters.
pub trait Attack: fmt::Debug + fmt::Display {
    /// Short name, used as the key in evaluation results (`fgsm`, `pgd`, a scripted attack's own).
    fn name(&self) -> &str;
    /// Every resolved hyperparameter, as recorded beside outputs.
    fn params(&self) -> serde_json::Value;
    /// Samples per batch when attacking a data set.
    fn batch_size(&self) -> usize;
    /// Perturb one batch: `x` `(N, C, H, W)` in [0, 1], `y` `(N,)` true labels. Returns the
    /// adversarial images, same shape, within the budget and in [0, 1].
    fn perturb_batch(&self, model: &Model, x: &Tensor, y: &Tensor) -> Result<Tensor>;
    /// What the attack aims for (untargeted unless it says otherwise).
    fn target(&self) -> Target {
        Target::Untargeted
    }
    /// The same attack with another budget ε (for accuracy-versus-ε curves); an error for
    /// attacks without one (CW, DeepFool).
    fn with_eps(&self, _eps: f64) -> Result<Box<dyn Attack>> {
        Err(Error::Invalid(format!(
            "{} has no eps budget to vary (it looks for a minimal perturbation)",
            self.name()
        )))
    }
    /// The fixed perturbation a universal attack adds, `(1, C, H, W)`.
    fn perturbation(&self) -> Option<Tensor> {
        None
    }
    /// The same attack drawing its random perturbation from another seed (for adversarial
    /// training, which needs fresh random starts every batch); `None` for attacks whose
    /// perturbation draws nothing at random.
    fn with_seed(&self, _seed: u64) -> Option<Box<dyn Attack>> {
        None
    }
}

/// Attack every sample of `data`, batch by batch, with a progress bar. The result has the
/// same labels; its images are the adversarial ones.
pub fn perturb(attack: &dyn Attack, model: &Model, data: &Dataset) -> Result<Dataset> {
    model.check_data(data)?;
    let n = data.len();
    let bs = attack.batch_size();
    let pb = crate::progress::bar(n.div_ceil(bs) as u64, attack.name().to_string());
    let mut parts = Vec::with_capacity(n.div_ceil(bs));
    let mut start = 0;
    while start < n {
        crate::interrupt::check()?;
        let len = bs.min(n - start);
        let batch = data.slice(start, len)?;
        parts.push(attack.perturb_batch(model, batch.images(), batch.labels())?);
        start += len;
        pb.inc(1);
    }
    pb.finish_and_clear();
    let images = if parts.is_empty() {
        data.images().clone()
    } else {
        Tensor::cat(&parts, 0)?
    };
    data.with_images(images, format!("{}({})", attack.name(), data.name()))
}

/// What one forward/backward pass at an iterate tells: the direction that serves the goal
/// (the input gradient of the summed cross-entropy, negated for a targeted goal), and which
/// samples already reach the goal there.
pub(crate) struct Probe {
    pub grad: Tensor,
    pub success: Vec<bool>,
}

/// Gradient of the summed cross-entropy on logits (never on probabilities) with respect to the
/// input only (the model's weights are not tracked). Summing keeps each sample's gradient
/// independent of the batch size. Untargeted attacks ascend the loss of the true label;
/// targeted ones descend the loss of the target, so the gradient is negated for them.
pub(crate) fn probe(model: &Model, x: &Tensor, goal: &Goal) -> Result<Probe> {
    let var = Var::from_tensor(x)?;
    let logits = model.forward(var.as_tensor())?;
    let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let loss = log_probs.gather(&goal.labels.unsqueeze(1)?, 1)?.sum_all()?;
    let loss = if goal.targeted { loss } else { loss.neg()? };
    let success = goal.reached(&logits.argmax(D::Minus1)?.to_vec1::<u32>()?)?;
    let grads = loss.backward()?;
    // detached: a gradient tensor carries the graph of the backward pass (and through it the
    // forward activations); an iterate built from it would keep every step's graph alive
    let grad = match grads.get(var.as_tensor()) {
        Some(g) => g.detach(),
        None => x.zeros_like()?,
    };
    Ok(Probe { grad, success })
}

/// [`probe`] averaged over `eot` forward/backward passes (expectation over transformation,
/// for a model whose input transforms are random): the mean gradient, and a sample counts as
/// reaching the goal when more than half of the passes reach it. `eot = 1` is [`probe`].
pub(crate) fn probe_eot(model: &Model, x: &Tensor, goal: &Goal, eot: usize) -> Result<Probe> {
    if eot <= 1 {
        return probe(model, x, goal);
    }
    let mut sum: Option<Tensor> = None;
    let mut hits = vec![0usize; x.dim(0)?];
    for _ in 0..eot {
        let p = probe(model, x, goal)?;
        sum = Some(match sum {
            None => p.grad,
            Some(s) => (s + p.grad)?,
        });
        hits.iter_mut().zip(&p.success).for_each(|(h, &s)| *h += usize::from(s));
    }
    let grad = match sum {
        Some(s) => (s / eot as f64)?,
        None => x.zeros_like()?,
    };
    Ok(Probe {
        grad,
        success: hits.into_iter().map(|h| 2 * h > eot).collect(),
    })
}

/// Check shared by the gradient attacks' parameters: at least one EOT sample.
pub fn check_eot(eot: usize) -> std::result::Result<usize, crate::ParamError> {
    if eot == 0 {
        Err(crate::ParamError::EotZero)
    } else {
        Ok(eot)
    }
}

/// For each sample, the first iterate that was misclassified: a success that a later step
/// must not undo. Samples never misclassified take the last iterate.
pub(crate) struct FirstSuccess {
    found: Vec<bool>,
    x: Option<Tensor>,
}

impl FirstSuccess {
    /// Nothing found yet, for a batch of `n` samples.
    pub fn new(n: usize) -> Self {
        Self {
            found: vec![false; n],
            x: None,
        }
    }

    /// Record iterate `x`, whose samples are misclassified where `wrong`.
    pub fn update(&mut self, x: &Tensor, wrong: &[bool]) -> Result<()> {
        let newly: Vec<bool> = self.found.iter().zip(wrong).map(|(&f, &w)| !f && w).collect();
        if !newly.contains(&true) {
            return Ok(());
        }
        self.x = Some(match &self.x {
            None => x.clone(),
            Some(best) => choose(&newly, x, best)?,
        });
        self.found.iter_mut().zip(&newly).for_each(|(f, n)| *f |= n);
        Ok(())
    }

    /// The first misclassified iterate where there was one, else `last`.
    pub fn finish(self, last: Tensor) -> Result<Tensor> {
        match &self.x {
            None => Ok(last),
            Some(best) => choose(&self.found, best, &last),
        }
    }
}

/// Per sample of a batch, `new` where `m` holds, else `old` (both of one shape `(N, …)`).
pub(crate) fn choose(m: &[bool], new: &Tensor, old: &Tensor) -> Result<Tensor> {
    if !m.contains(&true) {
        return Ok(old.clone());
    }
    let mut shape = vec![1usize; new.rank()];
    shape[0] = m.len();
    let mask = Tensor::from_vec(m.iter().map(|&b| u8::from(b)).collect::<Vec<_>>(), shape, new.device())?;
    Ok(mask.broadcast_as(new.dims())?.where_cond(new, old)?)
}

/// Rows `idx` (along the first dimension) of `t`.
pub(crate) fn rows(t: &Tensor, idx: &[u32]) -> Result<Tensor> {
    Ok(t.index_select(&Tensor::new(idx, t.device())?, 0)?)
}

/// `out` written back into the full batch `into`: row `j` of `out` belongs to sample `idx[j]`,
/// and replaces it where `take[j]`.
pub(crate) fn scatter_rows(into: &Tensor, out: &Tensor, idx: &[u32], take: &[bool]) -> Result<Tensor> {
    let n = into.dim(0)?;
    let mut pos = vec![0u32; n];
    let mut mask = vec![false; n];
    for (j, &i) in idx.iter().enumerate() {
        pos[i as usize] = j as u32;
        mask[i as usize] = take[j];
    }
    if !mask.contains(&true) {
        return Ok(into.clone());
    }
    choose(&mask, &rows(out, &pos)?, into)
}

/// One run of a multi-run attack: the samples not yet fooled (images, labels and, for a
/// targeted run, each one's target class), the run's index over all runs and its restart
/// number within its target.
pub(crate) struct Run {
    pub x: Tensor,
    pub y: Tensor,
    pub target: Option<Tensor>,
    pub index: usize,
    pub restart: usize,
}

/// What a run gives back: its output rows, which samples it fooled, and which rows to write
/// into the result (at least the fooled ones).
pub(crate) struct RunOutput {
    pub x: Tensor,
    pub fooled: Vec<bool>,
    pub take: Vec<bool>,
}

/// The runs of APGD / APGD-T / FAB-T: for each entry of `targets` (`None` untargeted, `Some(k)`
/// the k-th most likely class on the clean input), `restarts` runs, each only on the samples not
/// yet fooled; clean samples the model misclassifies are never attacked (they stay clean).
pub(crate) fn runs_on_unfooled(
    x0: &Tensor,
    y: &Tensor,
    clean_logits: &Tensor,
    targets: &[Option<usize>],
    restarts: usize,
    mut run: impl FnMut(Run) -> Result<RunOutput>,
) -> Result<Tensor> {
    let labels = y.to_vec1::<u32>()?;
    let pred = clean_logits.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?;
    let mut done: Vec<bool> = pred.iter().zip(&labels).map(|(p, l)| p != l).collect();
    let order = clean_logits.arg_sort_last_dim(false)?;
    let mut adv = x0.clone();
    let mut index = 0;
    for target in targets {
        for restart in 0..restarts {
            let left: Vec<u32> = (0..done.len() as u32).filter(|&i| !done[i as usize]).collect();
            if left.is_empty() {
                break;
            }
            let target = match target {
                None => None,
                Some(k) => Some(rows(&order, &left)?.narrow(1, k - 1, 1)?.squeeze(1)?.contiguous()?),
            };
            let out = run(Run {
                x: rows(x0, &left)?,
                y: rows(y, &left)?,
                target,
                index,
                restart,
            })?;
            index += 1;
            adv = scatter_rows(&adv, &out.x, &left, &out.take)?;
            for (j, &i) in left.iter().enumerate() {
                done[i as usize] |= out.fooled[j];
            }
        }
    }
    Ok(adv)
}

/// FNV-1a over the bits of one sample, so the random start of a sample depends on the seed
/// and on the sample itself, not on its position in the batch: attacking a batch and each
/// sample alone give the same result.
pub(crate) fn sample_hash(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf29ce484222325u64, |h, v| {
        (h ^ v.to_bits() as u64).wrapping_mul(0x100000001b3)
    })
}

/// Noise shaped like `x`, filled sample by sample by `fill` from a generator seeded by `seed`
/// and the sample itself (see [`sample_hash`]).
pub(crate) fn sample_noise(x: &Tensor, seed: u64, mut fill: impl FnMut(&mut StdRng, &mut [f32])) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let per = (x.elem_count() / dims[0].max(1)).max(1);
    let flat = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let mut noise = vec![0f32; flat.len()];
    for (sample, out) in flat.chunks(per).zip(noise.chunks_mut(per)) {
        let mut rng = StdRng::seed_from_u64(seed ^ sample_hash(sample));
        fill(&mut rng, out);
    }
    Ok(Tensor::from_vec(noise, dims, x.device())?)
}

/// Uniform noise in [−ε, ε] per element, seeded per sample.
pub(crate) fn uniform_noise(x: &Tensor, eps: f64, seed: u64) -> Result<Tensor> {
    let eps = eps as f32;
    sample_noise(x, seed, |rng, out| {
        out.iter_mut().for_each(|v| *v = rng.random_range(-eps..=eps))
    })
}

/// Fill `out` with a random direction scaled to L2 norm `radius` (Gaussian, normalised).
pub(crate) fn sphere_fill(rng: &mut StdRng, out: &mut [f32], radius: f32) {
    out.iter_mut().for_each(|v| *v = rng.sample(rand_distr::StandardNormal));
    let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    out.iter_mut().for_each(|v| *v *= radius / norm);
}

/// The L2 random start: a random direction of length ε·r, r uniform in [0, 1], per sample.
pub(crate) fn l2_ball_noise(x: &Tensor, eps: f64, seed: u64) -> Result<Tensor> {
    sample_noise(x, seed, |rng, out| {
        let r: f32 = rng.random_range(0.0..=1.0);
        sphere_fill(rng, out, eps as f32 * r)
    })
}

/// PGD's random start: `x0` plus noise uniform in the ε-ball of `norm` (L∞: per element in
/// [−ε, ε]; L2: a random direction of length ε·r, r uniform in [0, 1]), seeded per sample by
/// `seed` and the sample itself, clipped to [0, 1].
pub fn random_start(x0: &Tensor, eps: f64, norm: Norm, seed: u64) -> Result<Tensor> {
    let noise = match norm {
        Norm::Linf => uniform_noise(x0, eps, seed)?,
        Norm::L2 => l2_ball_noise(x0, eps, seed)?,
    };
    Ok((x0 + noise)?.clamp(0f32, 1f32)?)
}

/// The seed of run `r` of an attack with restarts: run 0 uses the attack's own seed, so one run
/// is the attack without restarts.
pub(crate) fn run_seed(seed: u64, r: usize) -> u64 {
    seed.wrapping_add((r as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Check shared by every attack's parameters: a finite ε ≥ 0.
pub fn check_eps(eps: f64) -> std::result::Result<f64, crate::ParamError> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(eps)
    } else {
        Err(crate::ParamError::EpsNegative(eps))
    }
}
