//! PGD-L∞ (Madry et al.): optional uniform random start in the ε-ball, then `steps` signed
//! gradient steps of size α, each followed by projection onto the ε-ball around the
//! original input and clipping to [0, 1]. By default a sample that was misclassified at some
//! iterate keeps the first such iterate (a later step cannot undo a success, as AutoAttack and
//! ART's restarts keep the best); other samples, and all with `keep_best: false` (as Madry et
//! al.), take the last iterate.

use super::{check_eps, linf_step, probe, uniform_noise, Attack, FirstSuccess};
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
        let mut best = FirstSuccess::new(x0.dim(0)?);
        for _ in 0..self.steps {
            crate::interrupt::check()?;
            let p = probe(model, &x, y)?;
            if self.keep_best {
                best.update(&x, &p.wrong)?;
            }
            x = linf_step(&x, &p.grad, x0, self.alpha, self.eps)?;
        }
        best.finish(x)
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
