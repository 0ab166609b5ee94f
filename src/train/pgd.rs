//! PGD training (Madry et al.): every batch is replaced by its PGD-L∞ samples.

use super::recipe::{check_recipe_eps, check_steps_alpha, Crafted, Crafting, Recipe};
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::Tensor;
use std::fmt;

/// Unchecked parameters of PGD training (Madry et al.): every batch is replaced by its PGD-L∞
/// samples (uniform random start, `steps` signed steps of α, the last iterate).
#[derive(Clone, Debug, PartialEq)]
pub struct PgdTrainingParams {
    pub eps: f64,
    pub steps: usize,
    /// `None`: 2.5·ε/steps.
    pub alpha: Option<f64>,
    pub seed: u64,
}

impl PgdTrainingParams {
    /// Budget `eps`, 10 steps, α = 2.5·ε/steps, seed 0.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            steps: 10,
            alpha: None,
            seed: 0,
        }
    }

    /// Check the rules: ε in (0, 1], steps ≥ 1, α finite and > 0.
    pub fn check(&self) -> std::result::Result<PgdTraining, ParamError> {
        let eps = check_recipe_eps(self.eps)?;
        let alpha = check_steps_alpha(eps, self.steps, self.alpha)?;
        Ok(PgdTraining(Crafted {
            eps,
            alpha,
            steps: self.steps,
            seed: self.seed,
        }))
    }
}

/// Checked PGD training.
#[derive(Clone, Debug, PartialEq)]
pub struct PgdTraining(pub Crafted);

impl Recipe for PgdTraining {
    fn name(&self) -> &'static str {
        "pgd_training"
    }

    fn params(&self) -> serde_json::Value {
        let c = &self.0;
        serde_json::json!({
            "recipe": self.name(), "eps": c.eps, "alpha": c.alpha, "steps": c.steps, "seed": c.seed,
            "random_start": true, "keep_best": false,
        })
    }

    fn craft(&self, model: &Model, x: &Tensor, y: &Tensor, epoch: usize, batch: usize) -> Result<Crafting> {
        self.0.craft(model, x, y, epoch, batch)
    }
}

impl fmt::Display for PgdTraining {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.0;
        write!(
            f,
            "{}(eps={}, alpha={}, steps={}, seed={}, random_start=true, keep_best=false)",
            self.name(),
            c.eps,
            c.alpha,
            c.steps,
            c.seed
        )
    }
}
