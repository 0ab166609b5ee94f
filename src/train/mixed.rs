//! Mixed training (seed 001): each batch attacked with probability p by one attack drawn from a list.

use super::recipe::{batch_seed, Crafting, Recipe};
use crate::attack::Attack;
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::Tensor;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::fmt;
use std::rc::Rc;

/// Unchecked parameters of mixed training (seed 001): at each batch, with probability `p` one
/// attack drawn uniformly from `attacks` replaces the batch, else the clean batch is used.
#[derive(Clone, Debug)]
pub struct MixedParams {
    pub attacks: Vec<Rc<dyn Attack>>,
    pub p: f64,
    pub seed: u64,
}

impl MixedParams {
    /// The attacks, p = 0.5 (seed 001's 4/8), seed 0.
    pub fn new(attacks: Vec<Rc<dyn Attack>>) -> Self {
        Self {
            attacks,
            p: 0.5,
            seed: 0,
        }
    }

    /// Check the rules: at least one attack, p in [0, 1].
    pub fn check(&self) -> std::result::Result<Mixed, ParamError> {
        if self.attacks.is_empty() {
            return Err(ParamError::NoAttacks);
        }
        if !(0.0..=1.0).contains(&self.p) {
            return Err(ParamError::AttackProbability(self.p));
        }
        Ok(Mixed {
            attacks: self.attacks.clone(),
            p: self.p,
            seed: self.seed,
        })
    }
}

/// Checked mixed training.
#[derive(Clone, Debug)]
pub struct Mixed {
    pub attacks: Vec<Rc<dyn Attack>>,
    pub p: f64,
    pub seed: u64,
}

impl Mixed {
    /// The attacks' names, made unique with `_2`, `_3` … as evaluation keys are.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::with_capacity(self.attacks.len());
        for a in &self.attacks {
            let key = crate::util::unique_key(names.iter().map(String::as_str), a.name());
            names.push(key);
        }
        names
    }
}

impl Recipe for Mixed {
    fn name(&self) -> &'static str {
        "mixed_training"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "recipe": self.name(), "p": self.p, "seed": self.seed,
            "attacks": self.attacks.iter().map(|a| a.params()).collect::<Vec<_>>(),
        })
    }

    fn craft(&self, model: &Model, x: &Tensor, y: &Tensor, epoch: usize, batch: usize) -> Result<Crafting> {
        let n = x.dim(0)?;
        let mut rng = StdRng::seed_from_u64(batch_seed(self.seed, epoch, batch));
        if rng.random::<f64>() < self.p {
            let k = rng.random_range(0..self.attacks.len());
            let attack = &self.attacks[k];
            let input = match attack.with_seed(rng.random()) {
                Some(fresh) => fresh.perturb_batch(model, x, y)?,
                None => attack.perturb_batch(model, x, y)?,
            };
            Ok(Crafting {
                input,
                sums: vec![("attacked", n as f64)],
                used: self.names().into_iter().nth(k),
            })
        } else {
            Ok(Crafting {
                input: x.clone(),
                sums: vec![("attacked", 0.0)],
                used: Some("clean".into()),
            })
        }
    }
}

impl fmt::Display for Mixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attacks: Vec<String> = self.attacks.iter().map(|a| a.to_string()).collect();
        write!(
            f,
            "{}(p={}, seed={}, attacks=[{}])",
            self.name(),
            self.p,
            self.seed,
            attacks.join(", ")
        )
    }
}
