//! Auto-PGD (Croce and Hein 2020), the gradient attacks of AutoAttack: APGD on the
//! cross-entropy or the DLR loss, and APGD-T on the targeted DLR loss towards each of the top
//! classes in turn.
//!
//! One run: a random start on the ε-sphere (L∞: uniform noise scaled so its largest coordinate
//! is ε; L2: a Gaussian direction of length ε), then `steps` steps of size η (initially 2ε,
//! per sample) with momentum 0.75 (the first step without), each projected onto the ε-ball
//! and the [0, 1] box. At checkpoints (after 22% of the steps, then at intervals shrinking by
//! 3% of the steps down to 6%) a sample's step size halves, and it restarts from its best
//! point, when its loss rose in at most ρ of the steps since the last checkpoint, or when the
//! step size was not halved there and the best loss did not improve since. A sample counts as
//! fooled at the first iterate the model misclassifies; its output is the last such iterate.
//! A sample never fooled gets the iterate of its highest loss (still classified correctly).
//! Restarts (and APGD-T's target classes) run only on the samples not yet fooled.

use super::loss::{input_gradient_mean, loss_value, Loss, LossKind, Reduction};
use super::step::{normalize_l2, project_l2};
use super::{
    check_eot, check_eps, choose, runs_on_unfooled, sample_noise, sphere_fill, Attack, Norm, RunOutput, Target,
};
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::{DType, Tensor, D};
use rand::Rng;
use std::cell::RefCell;
use std::fmt;

/// Unchecked APGD parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ApgdParams {
    pub eps: f64,
    pub norm: Norm,
    /// `Ce` or `Dlr` (APGD-T always uses the targeted DLR loss).
    pub loss: LossKind,
    pub steps: usize,
    pub restarts: usize,
    /// The share of steps whose loss must have risen since the last checkpoint to keep the step size.
    pub rho: f64,
    pub seed: u64,
    pub batch_size: usize,
    pub eot: usize,
    /// APGD-T: the number of target classes (the 2nd, 3rd, … most likely on the clean input),
    /// each a run of its own; `None` is untargeted APGD.
    pub target_classes: Option<usize>,
}

impl ApgdParams {
    /// APGD-CE with budget `eps` and AutoAttack's settings: L∞, 100 steps, 1 restart, ρ 0.75.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            norm: Norm::Linf,
            loss: LossKind::Ce,
            steps: 100,
            restarts: 1,
            rho: 0.75,
            seed: 0,
            batch_size: 256,
            eot: 1,
            target_classes: None,
        }
    }

    /// APGD-T with budget `eps`: the targeted DLR loss towards each of the 9 next most likely classes.
    pub fn targeted(eps: f64) -> Self {
        Self {
            loss: LossKind::Dlr,
            target_classes: Some(9),
            ..Self::new(eps)
        }
    }

    /// Check the rules: ε finite and ≥ 0, steps, restarts, batch size, EOT and target classes
    /// ≥ 1, ρ in (0, 1], the loss CE or DLR.
    pub fn check(&self) -> std::result::Result<Apgd, ParamError> {
        check_eps(self.eps)?;
        if self.steps == 0 {
            return Err(ParamError::StepsZero);
        }
        if self.restarts == 0 {
            return Err(ParamError::RestartsZero);
        }
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        check_eot(self.eot)?;
        if !(self.rho > 0.0 && self.rho <= 1.0) {
            return Err(ParamError::Rho(self.rho));
        }
        if !matches!(self.loss, LossKind::Ce | LossKind::Dlr) {
            return Err(ParamError::ApgdLoss(self.loss.as_str().to_string()));
        }
        if self.target_classes == Some(0) {
            return Err(ParamError::TargetClassesZero);
        }
        Ok(Apgd { p: self.clone() })
    }
}

/// Checked APGD or APGD-T.
#[derive(Clone, Debug, PartialEq)]
pub struct Apgd {
    p: ApgdParams,
}

/// The checkpoint schedule of `steps` steps: the first interval, its decrement and its minimum.
fn schedule(steps: usize) -> (usize, usize, usize) {
    let part = |f: f64| ((f * steps as f64) as usize).max(1);
    (part(0.22), part(0.03), part(0.06))
}

/// Per-sample values as an `(N, 1, …, 1)` tensor shaped to broadcast against `like`.
fn per_sample(v: &[f32], like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1usize; like.rank()];
    shape[0] = v.len();
    Ok(Tensor::from_vec(v.to_vec(), shape, like.device())?)
}

/// What one (EOT-averaged) forward/backward pass at an iterate gives.
struct Eval {
    loss: Vec<f32>,
    grad: Tensor,
    wrong: Vec<bool>,
}

impl Apgd {
    fn loss(&self, target: Option<&Tensor>) -> Loss {
        Loss {
            kind: self.p.loss,
            target: target.cloned(),
            reference: None,
            reduction: Reduction::None,
        }
    }

    /// Per-sample loss, its input gradient (summed over the batch, so per sample), and which
    /// samples are misclassified, averaged over `eot` passes (the prediction of the last).
    fn eval(&self, model: &Model, x: &Tensor, y: &Tensor, loss: &Loss) -> Result<Eval> {
        let pred = RefCell::new(Vec::new());
        let (l, grad) = input_gradient_mean(model, x, self.p.eot, |z| {
            *pred.borrow_mut() = z.argmax(D::Minus1)?.to_vec1::<u32>()?;
            loss_value(loss, z, y)
        })?;
        let labels = y.to_vec1::<u32>()?;
        Ok(Eval {
            loss: l.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            grad,
            wrong: pred.into_inner().iter().zip(labels).map(|(&p, l)| p != l).collect(),
        })
    }

    /// Project `z` onto the ε-ball around `x0` and the [0, 1] box; under L∞ the ball is the
    /// box `bounds` = (x0 − ε, x0 + ε), computed once per run.
    fn project(&self, z: &Tensor, x0: &Tensor, bounds: Option<&(Tensor, Tensor)>) -> Result<Tensor> {
        match bounds {
            Some((lo, hi)) => Ok(z.minimum(hi)?.maximum(lo)?.clamp(0f32, 1f32)?),
            None => project_l2(z, x0, self.p.eps),
        }
    }

    /// The direction of a step: the gradient's sign (L∞) or the gradient normalised per sample (L2).
    fn direction(&self, grad: &Tensor) -> Result<Tensor> {
        match self.p.norm {
            Norm::Linf => Ok(grad.sign()?),
            Norm::L2 => normalize_l2(grad),
        }
    }

    /// The random start of run `seed`: on the ε-sphere, clipped to [0, 1].
    fn start(&self, x0: &Tensor, seed: u64) -> Result<Tensor> {
        let eps = self.p.eps as f32;
        let noise = match self.p.norm {
            Norm::Linf => sample_noise(x0, seed, |rng, out| {
                out.iter_mut().for_each(|v| *v = rng.random_range(-1.0f32..1.0));
                let m = out.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
                out.iter_mut().for_each(|v| *v *= eps / m);
            })?,
            Norm::L2 => sample_noise(x0, seed, |rng, out| sphere_fill(rng, out, eps))?,
        };
        Ok((x0 + noise)?.clamp(0f32, 1f32)?)
    }

    /// One run on a batch: the output per sample, and which samples it fooled.
    fn run(
        &self,
        model: &Model,
        x0: &Tensor,
        y: &Tensor,
        target: Option<&Tensor>,
        seed: u64,
    ) -> Result<(Tensor, Vec<bool>)> {
        let n = x0.dim(0)?;
        let loss = self.loss(target);
        let (first, decrement, minimum) = schedule(self.p.steps);
        let bounds = match self.p.norm {
            Norm::Linf => Some(((x0 - self.p.eps)?, (x0 + self.p.eps)?)),
            Norm::L2 => None,
        };
        let mut x = self.start(x0, seed)?;
        let e = self.eval(model, &x, y, &loss)?;
        let mut grad = e.grad;
        let mut fooled = e.wrong.clone();
        let mut x_adv = x.clone(); // the last misclassified iterate per sample
        let mut x_best = x.clone();
        let mut grad_best = grad.clone();
        let mut loss_best = e.loss.clone();
        let mut loss_prev = e.loss;
        let mut eta = vec![2.0 * self.p.eps as f32; n];
        let mut x_old = x.clone();
        let (mut k, mut since_check) = (first, 0usize);
        let mut rises = vec![0usize; n];
        let mut best_at_check = loss_best.clone();
        let mut reduced_at_check = vec![true; n];
        for i in 0..self.p.steps {
            crate::interrupt::check()?;
            let momentum = if i == 0 { 1.0 } else { 0.75 };
            let step = self.direction(&grad)?.broadcast_mul(&per_sample(&eta, &x)?)?;
            let z = self.project(&(&x + step)?, x0, bounds.as_ref())?;
            let moved = ((((&z - &x)? * momentum)? + ((&x - &x_old)? * (1.0 - momentum))?)? + &x)?;
            let next = self.project(&moved, x0, bounds.as_ref())?;
            x_old = x;
            x = next;
            let e = self.eval(model, &x, y, &loss)?;
            grad = e.grad;
            x_adv = choose(&e.wrong, &x, &x_adv)?;
            fooled.iter_mut().zip(&e.wrong).for_each(|(f, &w)| *f |= w);
            let improved: Vec<bool> = e.loss.iter().zip(&loss_best).map(|(l, b)| l > b).collect();
            x_best = choose(&improved, &x, &x_best)?;
            grad_best = choose(&improved, &grad, &grad_best)?;
            for (j, &imp) in improved.iter().enumerate() {
                if imp {
                    loss_best[j] = e.loss[j];
                }
                rises[j] += usize::from(e.loss[j] > loss_prev[j]);
            }
            loss_prev = e.loss;
            since_check += 1;
            if since_check == k {
                let halve: Vec<bool> = (0..n)
                    .map(|j| {
                        let oscillating = rises[j] as f64 <= k as f64 * self.p.rho;
                        let stalled = !reduced_at_check[j] && best_at_check[j] >= loss_best[j];
                        oscillating || stalled
                    })
                    .collect();
                for (j, &h) in halve.iter().enumerate() {
                    if h {
                        eta[j] /= 2.0;
                    }
                }
                x = choose(&halve, &x_best, &x)?;
                grad = choose(&halve, &grad_best, &grad)?;
                reduced_at_check = halve;
                best_at_check = loss_best.clone();
                rises.iter_mut().for_each(|r| *r = 0);
                since_check = 0;
                k = k.saturating_sub(decrement).max(minimum);
            }
        }
        Ok((choose(&fooled, &x_adv, &x_best)?, fooled))
    }
}

impl Attack for Apgd {
    fn name(&self) -> &'static str {
        match (self.p.target_classes, self.p.loss) {
            (Some(_), _) => "apgd_t",
            (None, LossKind::Dlr) => "apgd_dlr",
            (None, _) => "apgd_ce",
        }
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.p;
        serde_json::json!({
            "attack": self.name(), "eps": p.eps, "norm": p.norm.as_str(), "loss": p.loss.as_str(),
            "steps": p.steps, "restarts": p.restarts, "rho": p.rho, "seed": p.seed,
            "batch_size": p.batch_size, "eot": p.eot, "n_target_classes": p.target_classes,
        })
    }

    fn batch_size(&self) -> usize {
        self.p.batch_size
    }

    fn target(&self) -> Target {
        Target::Untargeted
    }

    fn with_eps(&self, eps: f64) -> Result<Box<dyn Attack>> {
        Ok(Box::new(ApgdParams { eps, ..self.p.clone() }.check()?))
    }

    fn with_seed(&self, seed: u64) -> Option<Box<dyn Attack>> {
        Some(Box::new(Apgd {
            p: ApgdParams { seed, ..self.p.clone() },
        }))
    }

    fn perturb_batch(&self, model: &Model, x0: &Tensor, y: &Tensor) -> Result<Tensor> {
        if self.p.eps == 0.0 {
            return Ok(x0.clone());
        }
        let clean_logits = model.forward(x0)?;
        let classes = clean_logits.dim(1)?;
        if let Some(t) = self.p.target_classes {
            if classes < 4 {
                return Err(crate::Error::Invalid(format!(
                    "apgd_t: the targeted DLR loss needs at least 4 classes, the model has {classes}"
                )));
            }
            if t > classes - 1 {
                return Err(crate::Error::Invalid(format!(
                    "apgd_t: n_target_classes {t} is more than the model's other classes ({})",
                    classes - 1
                )));
            }
        } else if self.p.loss == LossKind::Dlr && classes < 3 {
            return Err(crate::Error::Invalid(format!(
                "apgd: the DLR loss needs at least 3 classes, the model has {classes}"
            )));
        }
        let targets: Vec<Option<usize>> = match self.p.target_classes {
            None => vec![None],
            Some(t) => (2..t + 2).map(Some).collect(),
        };
        runs_on_unfooled(x0, y, &clean_logits, &targets, self.p.restarts, |r| {
            let (x, fooled) = self.run(
                model,
                &r.x,
                &r.y,
                r.target.as_ref(),
                super::run_seed(self.p.seed, r.index),
            )?;
            // fooled samples take their adversarial iterate; on the first run the others take
            // their best-loss iterate
            let take = fooled.iter().map(|&f| f || r.index == 0).collect();
            Ok(RunOutput { x, fooled, take })
        })
    }
}

impl fmt::Display for Apgd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.p;
        let targets = p
            .target_classes
            .map(|t| format!(", n_target_classes={t}"))
            .unwrap_or_default();
        write!(
            f,
            "{}(eps={}, norm={}, loss={}, steps={}, restarts={}, rho={}, seed={}, eot={}{targets}, batch_size={})",
            self.name(),
            p.eps,
            p.norm.as_str(),
            p.loss.as_str(),
            p.steps,
            p.restarts,
            p.rho,
            p.seed,
            p.eot,
            p.batch_size
        )
    }
}
