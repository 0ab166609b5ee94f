//! TRADES (Zhang et al. 2019): the loss CE(f(x), y) + β·KL(p(x) ‖ p(x')), x' ascending the KL.

use super::recipe::{
    batch_seed, check_recipe_eps, check_steps_alpha, clean_and_crafted_logits, correct, smoothed_cross_entropy,
    BatchLoss, Crafted, Crafting, Recipe,
};
use crate::attack::{linf_step, sample_noise};
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::{Tensor, Var, D};
use candle_nn::ops::log_softmax;
use rand::Rng;
use std::fmt;

/// The standard deviation of TRADES' Gaussian start around the clean input.
const TRADES_START_STD: f32 = 0.001;

/// Unchecked TRADES parameters (Zhang et al. 2019): the inner maximisation ascends
/// KL(p(x) ‖ p(x')) from x + 0.001·N(0, 1) with signed steps; the loss is
/// CE(f(x), y) + β·KL(p(x) ‖ p(x')).
#[derive(Clone, Debug, PartialEq)]
pub struct TradesParams {
    pub eps: f64,
    pub beta: f64,
    pub steps: usize,
    /// `None`: 2.5·ε/steps.
    pub alpha: Option<f64>,
    pub seed: u64,
}

impl TradesParams {
    /// Budget `eps`, β = 1 (TRADES' MNIST setting), 10 steps, α = 2.5·ε/steps, seed 0.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            beta: 1.0,
            steps: 10,
            alpha: None,
            seed: 0,
        }
    }

    /// Check the rules: ε in (0, 1], β finite and ≥ 0, steps ≥ 1, α finite and > 0.
    pub fn check(&self) -> std::result::Result<Trades, ParamError> {
        let eps = check_recipe_eps(self.eps)?;
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(ParamError::BetaNegative(self.beta));
        }
        let alpha = check_steps_alpha(eps, self.steps, self.alpha)?;
        Ok(Trades {
            inner: Crafted {
                eps,
                alpha,
                steps: self.steps,
                seed: self.seed,
            },
            beta: self.beta,
        })
    }
}

/// Checked TRADES.
#[derive(Clone, Debug, PartialEq)]
pub struct Trades {
    pub inner: Crafted,
    pub beta: f64,
}

/// KL(p ‖ q) of the softmaxes of two logit batches, summed over classes, mean over samples.
fn kl_mean(logits_p: &Tensor, logits_q: &Tensor) -> Result<Tensor> {
    let lp = log_softmax(logits_p, D::Minus1)?;
    let lq = log_softmax(logits_q, D::Minus1)?;
    Ok((lp.exp()? * (&lp - &lq)?)?.sum(D::Minus1)?.mean_all()?)
}

/// TRADES' inner maximisation: from x + 0.001·N(0, 1) (seeded per sample, clipped to [0, 1]),
/// `steps` signed steps of α up the KL divergence from the clean prediction, each projected on
/// the ε-ball around x and on [0, 1]. Uses the detached forward pass.
pub fn trades_samples(model: &Model, x: &Tensor, inner: &Crafted, seed: u64) -> Result<Tensor> {
    let lp_clean = log_softmax(&model.forward(x)?, D::Minus1)?;
    let p_clean = lp_clean.exp()?;
    let start = sample_noise(x, seed, |rng, out| {
        out.iter_mut()
            .for_each(|v| *v = TRADES_START_STD * rng.sample::<f32, _>(rand_distr::StandardNormal))
    })?;
    let mut xa = (x + start)?.clamp(0f32, 1f32)?;
    for _ in 0..inner.steps {
        crate::interrupt::check()?;
        let var = Var::from_tensor(&xa)?;
        let lp = log_softmax(&model.forward(var.as_tensor())?, D::Minus1)?;
        let kl = (&p_clean * (&lp_clean - &lp)?)?.sum_all()?;
        let grads = kl.backward()?;
        let g = match grads.get(var.as_tensor()) {
            Some(g) => g.detach(),
            None => xa.zeros_like()?,
        };
        xa = linf_step(&xa, &g, x, inner.alpha, inner.eps)?;
    }
    Ok(xa.detach())
}

impl Recipe for Trades {
    fn name(&self) -> &'static str {
        "trades"
    }

    fn params(&self) -> serde_json::Value {
        let t = self;
        serde_json::json!({
            "recipe": self.name(), "eps": t.inner.eps, "beta": t.beta, "alpha": t.inner.alpha,
            "steps": t.inner.steps, "seed": t.inner.seed, "start_std": TRADES_START_STD,
        })
    }

    fn craft(&self, model: &Model, x: &Tensor, _y: &Tensor, epoch: usize, batch: usize) -> Result<Crafting> {
        let seed = batch_seed(self.inner.seed, epoch, batch);
        Ok(Crafting {
            input: trades_samples(model, x, &self.inner, seed)?,
            sums: Vec::new(),
            used: None,
        })
    }

    fn loss(&self, model: &Model, x: &Tensor, y: &Tensor, crafted: Crafting, smoothing: f64) -> Result<BatchLoss> {
        let Crafting { input, mut sums, used } = crafted;
        let n = x.dim(0)?;
        let (clean, adv) = clean_and_crafted_logits(model, x, &input)?;
        let ce = smoothed_cross_entropy(&clean, y, smoothing)?;
        let kl = kl_mean(&clean, &adv)?;
        let loss = (&ce + (&kl * self.beta)?)?;
        sums.push(("cross_entropy", ce.to_scalar::<f32>()? as f64 * n as f64));
        sums.push(("kl", kl.to_scalar::<f32>()? as f64 * n as f64));
        sums.push(("adv_accuracy", correct(&adv.detach(), y)?));
        Ok(BatchLoss {
            loss,
            logits: clean.detach(),
            sums,
            used,
        })
    }
}

impl fmt::Display for Trades {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self;
        write!(
            f,
            "{}(eps={}, beta={}, alpha={}, steps={}, seed={})",
            self.name(),
            t.inner.eps,
            t.beta,
            t.inner.alpha,
            t.inner.steps,
            t.inner.seed
        )
    }
}
