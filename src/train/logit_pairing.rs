//! Logit pairing (Kannan et al. 2018). Adversarial logit pairing: the cross-entropy of a batch
//! of clean and adversarial images together plus λ·‖f(x) − f(x_adv)‖² (squared L2 over the
//! logits, mean over samples); clean logit pairing: the clean cross-entropy plus λ·‖f(x) − f(x')‖²
//! over random pairs of clean images of the batch.

use super::recipe::{
    batch_seed, clean_and_crafted_logits, correct, smoothed_cross_entropy, BatchLoss, Crafting, Recipe,
};
use crate::attack::Attack;
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::{Tensor, D};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use std::fmt;
use std::rc::Rc;

/// Unchecked logit pairing parameters: the attack (adversarial pairing) or `clean_pairing`,
/// λ = `weight`, the seed of fresh attack starts and of the clean pairs.
#[derive(Clone, Debug)]
pub struct LogitPairingParams {
    pub attack: Option<Rc<dyn Attack>>,
    pub weight: f64,
    pub clean_pairing: bool,
    pub seed: u64,
}

impl Default for LogitPairingParams {
    /// No attack, λ = 0.5, adversarial pairing, seed 0.
    fn default() -> Self {
        Self {
            attack: None,
            weight: 0.5,
            clean_pairing: false,
            seed: 0,
        }
    }
}

impl LogitPairingParams {
    /// Check the rules: λ finite and ≥ 0; an attack for adversarial pairing, none for clean.
    pub fn check(&self) -> std::result::Result<LogitPairing, ParamError> {
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(ParamError::PairingWeight(self.weight));
        }
        match (&self.attack, self.clean_pairing) {
            (None, false) => return Err(ParamError::PairingNeedsAttack),
            (Some(_), true) => return Err(ParamError::PairingAttackAndClean),
            _ => {}
        }
        Ok(LogitPairing(self.clone()))
    }
}

/// Checked logit pairing.
#[derive(Clone, Debug)]
pub struct LogitPairing(pub LogitPairingParams);

/// ‖a − b‖² summed over the logits, mean over the samples.
pub fn pairing_term(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((a - b)?.sqr()?.sum(D::Minus1)?.mean_all()?)
}

impl LogitPairing {
    /// A seeded permutation of `n` samples: sample i is paired with sample perm[i].
    fn partners(&self, n: usize, seed: u64) -> Vec<u32> {
        let mut perm: Vec<u32> = (0..n as u32).collect();
        perm.shuffle(&mut StdRng::seed_from_u64(seed));
        perm
    }
}

impl Recipe for LogitPairing {
    fn name(&self) -> &'static str {
        "logit_pairing"
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.0;
        serde_json::json!({
            "recipe": self.name(), "weight": p.weight, "clean_pairing": p.clean_pairing, "seed": p.seed,
            "attack": p.attack.as_ref().map(|a| a.params()),
        })
    }

    /// Adversarial pairing: the attack's samples (a fresh random start per batch); clean
    /// pairing: the batch's images in a seeded random order (each image's partner).
    fn craft(&self, model: &Model, x: &Tensor, y: &Tensor, epoch: usize, batch: usize) -> Result<Crafting> {
        let seed = batch_seed(self.0.seed, epoch, batch);
        let input = match &self.0.attack {
            Some(attack) => match attack.with_seed(StdRng::seed_from_u64(seed).random()) {
                Some(fresh) => fresh.perturb_batch(model, x, y)?,
                None => attack.perturb_batch(model, x, y)?,
            },
            None => {
                let perm = self.partners(x.dim(0)?, seed);
                x.index_select(&Tensor::new(perm.as_slice(), x.device())?, 0)?
            }
        };
        Ok(Crafting {
            input,
            sums: Vec::new(),
            used: None,
        })
    }

    fn loss(&self, model: &Model, x: &Tensor, y: &Tensor, crafted: Crafting, smoothing: f64) -> Result<BatchLoss> {
        let Crafting { input, mut sums, used } = crafted;
        let n = x.dim(0)?;
        let (clean, other) = clean_and_crafted_logits(model, x, &input)?;
        let ce = if self.0.clean_pairing {
            smoothed_cross_entropy(&clean, y, smoothing)?
        } else {
            // the clean and adversarial halves of one mixed batch
            let both = Tensor::cat(&[&clean, &other], 0)?;
            smoothed_cross_entropy(&both, &Tensor::cat(&[y, y], 0)?, smoothing)?
        };
        let pair = pairing_term(&clean, &other)?;
        let loss = (&ce + (&pair * self.0.weight)?)?;
        sums.push(("cross_entropy", ce.to_scalar::<f32>()? as f64 * n as f64));
        sums.push(("pairing", pair.to_scalar::<f32>()? as f64 * n as f64));
        if !self.0.clean_pairing {
            sums.push(("adv_accuracy", correct(&other.detach(), y)?));
        }
        Ok(BatchLoss {
            loss,
            logits: clean.detach(),
            sums,
            used,
        })
    }
}

impl fmt::Display for LogitPairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.0;
        match &p.attack {
            Some(a) => write!(f, "logit_pairing(attack={a}, weight={}, seed={})", p.weight, p.seed),
            None => write!(
                f,
                "logit_pairing(clean_pairing=true, weight={}, seed={})",
                p.weight, p.seed
            ),
        }
    }
}
