//! PGD-L∞ (Madry et al.): optional uniform random start in the ε-ball, then `steps` signed
//! gradient steps of size α, each followed by projection onto the ε-ball around the
//! original input and clipping to [0, 1]. By default it returns, per sample, the best iterate
//! seen (a misclassified one first, then the highest loss), as AutoAttack and ART's restarts
//! do; `keep_best: false` returns the last iterate, as Madry et al.

use super::{check_eps, linf_step, probe, score, uniform_noise, Attack, Best};
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::Tensor;
use std::fmt;

/// Unchecked PGD parameters. `alpha: None` means `2.5 · eps / steps`.
#[derive(Clone, Debug, PartialEq)]
pub struct PgdParams {
    pub eps: f64,
    pub alpha: Option<f64>,
    pub steps: usize,
    pub random_start: bool,
    pub seed: u64,
    pub batch_size: usize,
    pub keep_best: bool,
}

impl PgdParams {
    /// PGD with budget `eps` and defaults: 10 steps, α = 2.5·ε/steps, random start, seed 0.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            alpha: None,
            steps: 10,
            random_start: true,
            seed: 0,
            batch_size: 256,
            keep_best: true,
        }
    }

    /// Check the rules: ε finite and ≥ 0, steps ≥ 1, α finite and > 0, batch size ≥ 1.
    pub fn check(&self) -> std::result::Result<Pgd, ParamError> {
        let eps = check_eps(self.eps)?;
        if self.steps == 0 {
            return Err(ParamError::StepsZero);
        }
        let alpha = self.alpha.unwrap_or(2.5 * eps / self.steps as f64);
        if !(alpha.is_finite() && (alpha > 0.0 || (self.alpha.is_none() && eps == 0.0))) {
            return Err(ParamError::AlphaNotPositive(alpha));
        }
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        Ok(Pgd {
            eps,
            alpha,
            steps: self.steps,
            random_start: self.random_start,
            seed: self.seed,
            batch_size: self.batch_size,
            keep_best: self.keep_best,
        })
    }
}

/// Checked PGD-L∞.
#[derive(Clone, Debug, PartialEq)]
pub struct Pgd {
    eps: f64,
    alpha: f64,
    steps: usize,
    random_start: bool,
    seed: u64,
    batch_size: usize,
    keep_best: bool,
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
}

impl Attack for Pgd {
    fn name(&self) -> &'static str {
        "pgd"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "attack": "pgd", "norm": "linf", "eps": self.eps, "alpha": self.alpha, "steps": self.steps,
            "random_start": self.random_start, "seed": self.seed, "batch_size": self.batch_size,
            "keep_best": self.keep_best,
        })
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn perturb_batch(&self, model: &Model, x0: &Tensor, y: &Tensor) -> Result<Tensor> {
        if self.eps == 0.0 {
            return Ok(x0.clone());
        }
        let mut x = if self.random_start {
            (x0 + uniform_noise(x0, self.eps, self.seed)?)?.clamp(0f32, 1f32)?
        } else {
            x0.clone()
        };
        let mut best: Option<Best> = None;
        for _ in 0..self.steps {
            crate::interrupt::check()?;
            let p = probe(model, &x, y)?;
            if self.keep_best {
                match best.as_mut() {
                    None => best = Some(Best::new(x.clone(), p.loss, p.wrong)),
                    Some(b) => b.update(&x, &p.loss, &p.wrong)?,
                }
            }
            x = linf_step(&x, &p.grad, x0, self.alpha, self.eps)?;
        }
        match best {
            Some(mut b) => {
                let (loss, wrong) = score(model, &x, y)?;
                b.update(&x, &loss, &wrong)?;
                Ok(b.into_tensor())
            }
            None => Ok(x),
        }
    }
}

impl fmt::Display for Pgd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PGD(eps={}, alpha={}, steps={}, random_start={}, seed={}, keep_best={}, norm=linf, batch_size={})",
            self.eps, self.alpha, self.steps, self.random_start, self.seed, self.keep_best, self.batch_size
        )
    }
}
