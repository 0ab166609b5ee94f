//! Attacks whose step is written elsewhere (a script's closures): advlab does the batching,
//! restarts, `keep_best` and the checks around a [`StepRule`] as it does for a built-in attack.
//! After every step the iterate must be finite, of the input's shape, in [0, 1] and (when the
//! attack has a budget) within ε of the clean input; otherwise the attack stops with an error
//! naming the step and what was wrong.

use super::{Attack, FirstSuccess, Goal, Norm, Target};
use crate::error::{Error, ParamError, Result};
use crate::nn::Model;
use candle_core::{Tensor, D};
use std::fmt;
use std::rc::Rc;

/// Slack for the budget and box checks (float rounding of `x0 + δ`).
const TOLERANCE: f64 = 1e-5;

/// The resolved parameters of one run of a rule, as the rule sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct RunParams {
    pub eps: Option<f64>,
    pub norm: Norm,
    pub steps: usize,
    /// The seed of this run (restart `r` derives its own from the attack's).
    pub seed: u64,
    pub restart: usize,
}

/// How an attack's iterates are made: a first iterate, then one step at a time. One value may
/// keep state between the calls of one run ([`StepRule::init`] starts a run).
pub trait StepRule: fmt::Debug {
    /// Start a run on a batch: the first iterate from the clean input `x0` and labels `y`.
    fn init(&self, p: &RunParams, model: &Model, x0: &Tensor, y: &Tensor) -> Result<Tensor>;
    /// The next iterate from `x` (step `k`, from 0).
    fn step(&self, k: usize, model: &Model, x: &Tensor, x0: &Tensor, y: &Tensor) -> Result<Tensor>;
}

/// Unchecked parameters of a custom attack.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomParams {
    pub name: String,
    /// The budget the iterates must stay within (none: only the [0, 1] box is checked).
    pub eps: Option<f64>,
    pub norm: Norm,
    pub steps: usize,
    pub seed: u64,
    pub batch_size: usize,
    /// Keep, per sample, the first iterate that fools the model (one more forward pass per step).
    pub keep_best: bool,
    pub restarts: usize,
    /// Further parameters the rule reads, recorded beside outputs.
    pub extra: serde_json::Value,
}

impl CustomParams {
    /// A custom attack named `name` with the defaults: no budget, L∞, 10 steps, seed 0, batches
    /// of 256, the last iterate (no `keep_best`), one run.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            eps: None,
            norm: Norm::Linf,
            steps: 10,
            seed: 0,
            batch_size: 256,
            keep_best: false,
            restarts: 1,
            extra: serde_json::Value::Null,
        }
    }

    /// Check the rules: a name, ε finite and ≥ 0, steps, batch size and restarts ≥ 1.
    pub fn check(self, rule: Rc<dyn StepRule>) -> std::result::Result<Custom, ParamError> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ParamError::AttackName(self.name));
        }
        if let Some(eps) = self.eps {
            super::check_eps(eps)?;
        }
        if self.steps == 0 {
            return Err(ParamError::StepsZero);
        }
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        if self.restarts == 0 {
            return Err(ParamError::RestartsZero);
        }
        Ok(Custom { p: self, rule })
    }
}

/// A checked custom attack.
#[derive(Clone, Debug)]
pub struct Custom {
    p: CustomParams,
    rule: Rc<dyn StepRule>,
}

impl Custom {
    /// Check iterate `x` after step `k` (0 = the first iterate) against the clean input `x0`,
    /// whose values `x0s` the run read once.
    fn check_iterate(&self, k: usize, x: &Tensor, x0: &Tensor, x0s: &[f32]) -> Result<()> {
        let at = if k == 0 {
            "the first iterate (init)".to_string()
        } else {
            format!("step {k}")
        };
        let fail = |what: String| Error::Invalid(format!("attack {}: {at} {what}", self.p.name));
        if x.dims() != x0.dims() {
            return Err(fail(format!(
                "returned a tensor of shape {:?}; the input's is {:?}",
                x.dims(),
                x0.dims()
            )));
        }
        // one pass on the host: finite, inside the box, and each sample's distance from x0
        let xs = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        let per = xs.len() / x0.dim(0)?.max(1);
        let (mut lo, mut hi, mut worst) = (f32::INFINITY, f32::NEG_INFINITY, 0f64);
        for (a, b) in xs.chunks(per.max(1)).zip(x0s.chunks(per.max(1))) {
            let mut dist = 0f64;
            for (&v, &v0) in a.iter().zip(b) {
                if !v.is_finite() {
                    return Err(fail("produced NaN or infinite values".into()));
                }
                lo = lo.min(v);
                hi = hi.max(v);
                let d = f64::from(v - v0);
                match self.p.norm {
                    Norm::Linf => dist = dist.max(d.abs()),
                    Norm::L2 => dist += d * d,
                }
            }
            if self.p.norm == Norm::L2 {
                dist = dist.sqrt();
            }
            worst = worst.max(dist);
        }
        let (lo, hi) = (f64::from(lo), f64::from(hi));
        if lo < -TOLERANCE || hi > 1.0 + TOLERANCE {
            return Err(fail(format!(
                "left the image box [0, 1] (values from {lo} to {hi}); end the step with .clamp(0.0, 1.0)"
            )));
        }
        if let Some(eps) = self.p.eps {
            if worst > eps + TOLERANCE {
                return Err(fail(format!(
                    "moved a sample {worst} from its clean input in {}; the budget is eps = {eps} (project, e.g. .clamp(x0 - eps, x0 + eps))",
                    self.p.norm.as_str()
                )));
            }
        }
        Ok(())
    }

    /// One run of the rule on a batch.
    fn run(&self, model: &Model, x0: &Tensor, y: &Tensor, goal: &Goal, r: usize) -> Result<Tensor> {
        let p = RunParams {
            eps: self.p.eps,
            norm: self.p.norm,
            steps: self.p.steps,
            seed: super::run_seed(self.p.seed, r),
            restart: r,
        };
        let x0s = x0.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        let mut x = self.rule.init(&p, model, x0, y)?;
        self.check_iterate(0, &x, x0, &x0s)?;
        let mut best = FirstSuccess::new(x0.dim(0)?);
        for k in 0..self.p.steps {
            crate::interrupt::check()?;
            if self.p.keep_best {
                let pred = model.forward(&x)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
                best.update(&x, &goal.reached(&pred)?)?;
            }
            x = self.rule.step(k, model, &x, x0, y)?;
            self.check_iterate(k + 1, &x, x0, &x0s)?;
        }
        best.finish(x)
    }
}

impl Attack for Custom {
    fn name(&self) -> &str {
        &self.p.name
    }

    fn params(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "attack": self.p.name, "scripted": true, "eps": self.p.eps, "norm": self.p.norm.as_str(),
            "steps": self.p.steps, "seed": self.p.seed, "batch_size": self.p.batch_size,
            "keep_best": self.p.keep_best, "restarts": self.p.restarts,
        });
        if let (Some(map), serde_json::Value::Object(extra)) = (v.as_object_mut(), &self.p.extra) {
            for (k, e) in extra {
                map.entry(k.clone()).or_insert_with(|| e.clone());
            }
        }
        v
    }

    fn batch_size(&self) -> usize {
        self.p.batch_size
    }

    fn target(&self) -> Target {
        Target::Untargeted
    }

    fn with_eps(&self, eps: f64) -> Result<Box<dyn Attack>> {
        if self.p.eps.is_none() {
            return Err(Error::Invalid(format!(
                "attack {} was made without eps, so there is no budget to vary",
                self.p.name
            )));
        }
        let p = CustomParams {
            eps: Some(eps),
            ..self.p.clone()
        };
        Ok(Box::new(p.check(self.rule.clone())?))
    }

    fn with_seed(&self, seed: u64) -> Option<Box<dyn Attack>> {
        let p = CustomParams { seed, ..self.p.clone() };
        Some(Box::new(Custom {
            p,
            rule: self.rule.clone(),
        }))
    }

    fn perturb_batch(&self, model: &Model, x0: &Tensor, y: &Tensor) -> Result<Tensor> {
        let goal = Goal::new(&Target::Untargeted, model, x0, y)?;
        let mut adv = self.run(model, x0, y, &goal, 0)?;
        for r in 1..self.p.restarts {
            let pred = model.forward(&adv)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
            let done = goal.reached(&pred)?;
            if done.iter().all(|&d| d) {
                break;
            }
            let next = self.run(model, x0, y, &goal, r)?;
            adv = super::choose(&done, &adv, &next)?;
        }
        Ok(adv)
    }
}

impl fmt::Display for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let eps = self.p.eps.map(|e| format!("eps={e}, ")).unwrap_or_default();
        write!(
            f,
            "{}(scripted, {eps}norm={}, steps={}, seed={}, keep_best={}, restarts={}, batch_size={})",
            self.p.name,
            self.p.norm.as_str(),
            self.p.steps,
            self.p.seed,
            self.p.keep_best,
            self.p.restarts,
            self.p.batch_size
        )
    }
}
