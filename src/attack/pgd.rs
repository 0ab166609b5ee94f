//! PGD (Madry et al.) under L∞ or L2, and BIM (Kurakin et al., PGD-L∞ without the random
//! start). An optional random start in the ε-ball, then `steps` gradient steps of size α
//! (L∞: along the sign of the gradient; L2: along the gradient normalised per sample), each
//! followed by projection onto the ε-ball around the original input and clipping to [0, 1].
//! Targeted, the steps descend the loss of the target class. By default a sample that reached
//! the goal at some iterate keeps the first such iterate (a later step cannot undo a success, as
//! AutoAttack and ART's restarts keep the best); other samples, and all with
//! `keep_best: false` (as Madry et al.), take the last iterate. With `restarts: r > 1` the
//! whole search runs again from `r − 1` other random starts on the samples that no earlier run
//! fooled, and each sample keeps the first run that reached the goal (the first run is the
//! single-run attack, so restarts never raise robust accuracy).

use super::{
    check_eot, check_eps, l2_step, linf_step, probe_eot, random_start, Attack, FirstSuccess, Goal, Norm, Target,
};
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::{Tensor, D};
use std::fmt;

/// Unchecked PGD parameters. `alpha: None` means `2.5 · eps / steps`.
#[derive(Clone, Debug, PartialEq)]
pub struct PgdParams {
    pub eps: f64,
    pub alpha: Option<f64>,
    pub steps: usize,
    pub norm: Norm,
    pub random_start: bool,
    pub seed: u64,
    pub batch_size: usize,
    pub keep_best: bool,
    pub target: Target,
    /// Runs from different random starts (1: a single run).
    pub restarts: usize,
    /// Gradient samples averaged per step (EOT, for randomised models); 1 = plain.
    pub eot: usize,
}

impl PgdParams {
    /// PGD-L∞ with budget `eps` and defaults: 10 steps, α = 2.5·ε/steps, random start, seed 0.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            alpha: None,
            steps: 10,
            norm: Norm::Linf,
            random_start: true,
            seed: 0,
            batch_size: 256,
            keep_best: true,
            target: Target::Untargeted,
            restarts: 1,
            eot: 1,
        }
    }

    /// BIM (iterative FGSM): PGD-L∞ starting from the input itself.
    pub fn bim(eps: f64) -> Self {
        Self {
            random_start: false,
            ..Self::new(eps)
        }
    }

    /// Check the rules: ε finite and ≥ 0, steps ≥ 1, α finite and > 0, batch size ≥ 1,
    /// restarts ≥ 1, more than one restart only from random starts, eot ≥ 1.
    pub fn check(&self) -> std::result::Result<Pgd, ParamError> {
        let eps = check_eps(self.eps)?;
        if self.steps == 0 {
            return Err(ParamError::StepsZero);
        }
        if self.restarts == 0 {
            return Err(ParamError::RestartsZero);
        }
        if self.restarts > 1 && !self.random_start {
            return Err(ParamError::RestartsWithoutRandomStart(self.restarts));
        }
        let alpha = self.alpha.unwrap_or(2.5 * eps / self.steps as f64);
        if !(alpha.is_finite() && (alpha > 0.0 || (self.alpha.is_none() && eps == 0.0))) {
            return Err(ParamError::AlphaNotPositive(alpha));
        }
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        check_eot(self.eot)?;
        Ok(Pgd {
            p: self.clone(),
            eps,
            alpha,
        })
    }
}

/// Checked PGD (or BIM).
#[derive(Clone, Debug, PartialEq)]
pub struct Pgd {
    p: PgdParams,
    eps: f64,
    alpha: f64,
}

impl Pgd {
    /// The budget ε.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The step size α.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// One run of the search from the random start drawn from `seed`.
    fn run(&self, model: &Model, x0: &Tensor, goal: &Goal, seed: u64) -> Result<Tensor> {
        let mut x = if self.p.random_start {
            random_start(x0, self.eps, self.p.norm, seed)?
        } else {
            x0.clone()
        };
        let mut best = FirstSuccess::new(x0.dim(0)?);
        for _ in 0..self.p.steps {
            crate::interrupt::check()?;
            let p = probe_eot(model, &x, goal, self.p.eot)?;
            if self.p.keep_best {
                best.update(&x, &p.success)?;
            }
            x = match self.p.norm {
                Norm::Linf => linf_step(&x, &p.grad, x0, self.alpha, self.eps)?,
                Norm::L2 => l2_step(&x, &p.grad, x0, self.alpha, self.eps)?,
            };
        }
        // samples that never reached the goal take the last iterate
        best.finish(x)
    }
}

/// Per sample, whether the model's prediction on `x` reaches `goal`.
fn reached(model: &Model, x: &Tensor, goal: &Goal) -> Result<Vec<bool>> {
    goal.reached(&model.forward(x)?.argmax(D::Minus1)?.to_vec1::<u32>()?)
}

impl Attack for Pgd {
    fn name(&self) -> &'static str {
        match (self.p.norm, self.p.random_start, self.p.target.is_targeted()) {
            (Norm::L2, _, false) => "pgd_l2",
            (Norm::L2, _, true) => "pgd_l2_targeted",
            (Norm::Linf, false, false) => "bim",
            (Norm::Linf, false, true) => "bim_targeted",
            (Norm::Linf, true, false) => "pgd",
            (Norm::Linf, true, true) => "pgd_targeted",
        }
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "attack": self.name(), "norm": self.p.norm.as_str(), "eps": self.eps, "alpha": self.alpha,
            "steps": self.p.steps, "random_start": self.p.random_start, "seed": self.p.seed,
            "batch_size": self.p.batch_size, "keep_best": self.p.keep_best, "target": self.p.target.json(),
            "restarts": self.p.restarts, "eot": self.p.eot,
        })
    }

    fn batch_size(&self) -> usize {
        self.p.batch_size
    }

    fn target(&self) -> Target {
        self.p.target.clone()
    }

    fn with_eps(&self, eps: f64) -> Result<Box<dyn Attack>> {
        Ok(Box::new(PgdParams { eps, ..self.p.clone() }.check()?))
    }

    fn with_seed(&self, seed: u64) -> Option<Box<dyn Attack>> {
        let p = PgdParams { seed, ..self.p.clone() };
        (self.p.random_start).then(|| Box::new(Pgd { p, ..self.clone() }) as Box<dyn Attack>)
    }

    fn perturb_batch(&self, model: &Model, x0: &Tensor, y: &Tensor) -> Result<Tensor> {
        let goal = Goal::new(&self.p.target, model, x0, y)?;
        if self.eps == 0.0 {
            return Ok(x0.clone());
        }
        let mut adv = self.run(model, x0, &goal, self.p.seed)?;
        if self.p.restarts == 1 {
            return Ok(adv);
        }
        let mut done = reached(model, &adv, &goal)?;
        for r in 1..self.p.restarts {
            // rerun only the samples no run has fooled yet; a sample's random start depends on
            // the seed and the sample alone, so the subset does not change it
            let left: Vec<u32> = (0..done.len() as u32).filter(|&i| !done[i as usize]).collect();
            if left.is_empty() {
                break;
            }
            let idx = Tensor::new(left.as_slice(), x0.device())?;
            let sub_goal = Goal {
                labels: goal.labels.index_select(&idx, 0)?,
                targeted: goal.targeted,
            };
            let cand = self.run(
                model,
                &x0.index_select(&idx, 0)?,
                &sub_goal,
                super::run_seed(self.p.seed, r),
            )?;
            let won = reached(model, &cand, &sub_goal)?;
            if !won.contains(&true) {
                continue;
            }
            // scatter the candidates into place (0 + c is exact) and take them where they won
            let placed = adv.zeros_like()?.index_add(&idx, &cand, 0)?;
            let mut take = vec![0u8; done.len()];
            for (&i, &w) in left.iter().zip(&won) {
                if w {
                    take[i as usize] = 1;
                    done[i as usize] = true;
                }
            }
            let mut shape = vec![1usize; adv.rank()];
            shape[0] = take.len();
            let mask = Tensor::from_vec(take, shape, adv.device())?.broadcast_as(adv.dims())?;
            adv = mask.where_cond(&placed, &adv)?;
        }
        Ok(adv)
    }
}

impl fmt::Display for Pgd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}(eps={}, alpha={}, steps={}, restarts={}, norm={}, random_start={}, seed={}, keep_best={}, target={}, eot={}, batch_size={})",
            self.name().split('_').next().unwrap_or("pgd").to_uppercase(),
            self.eps,
            self.alpha,
            self.p.steps,
            self.p.restarts,
            self.p.norm.as_str(),
            self.p.random_start,
            self.p.seed,
            self.p.keep_best,
            self.p.target,
            self.p.eot,
            self.p.batch_size
        )
    }
}
