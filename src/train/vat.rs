//! Virtual adversarial training (Miyato et al. 2018): the loss CE(f(x), y) + α·KL(p(x) ‖ p(x + r_adv)),
//! r_adv of L2 length ε along the direction that changes the prediction most, found by power
//! iteration on the KL's Hessian; it uses no labels, so it also trains on unlabelled data.

use super::recipe::{
    batch_seed, clean_and_crafted_logits, correct, smoothed_cross_entropy, BatchLoss, Crafting, Recipe,
};
use crate::attack::sample_noise;
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::{Tensor, Var, D};
use candle_nn::ops::log_softmax;
use rand::Rng;
use std::fmt;

/// Unchecked VAT parameters (Miyato et al.): ε the L2 length of r_adv, ξ the finite-difference
/// step of the power iteration, `power_iterations` steps, α the weight of the KL term,
/// `use_labels` (false: the KL term alone, for unlabelled data).
#[derive(Clone, Debug, PartialEq)]
pub struct VatParams {
    pub eps: f64,
    pub xi: f64,
    pub power_iterations: usize,
    pub alpha: f64,
    pub use_labels: bool,
    pub seed: u64,
}

impl VatParams {
    /// Budget `eps` (L2), ξ = 1e-6, one power iteration, α = 1, labels used, seed 0 (the paper's).
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            xi: 1e-6,
            power_iterations: 1,
            alpha: 1.0,
            use_labels: true,
            seed: 0,
        }
    }

    /// Check the rules: ε and ξ finite and > 0, at least one iteration, α finite and ≥ 0.
    pub fn check(&self) -> std::result::Result<Vat, ParamError> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(ParamError::VatEps(self.eps));
        }
        if !(self.xi.is_finite() && self.xi > 0.0) {
            return Err(ParamError::VatXi(self.xi));
        }
        if self.power_iterations == 0 {
            return Err(ParamError::PowerIterationsZero);
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(ParamError::VatAlpha(self.alpha));
        }
        Ok(Vat(self.clone()))
    }
}

/// Checked VAT.
#[derive(Clone, Debug, PartialEq)]
pub struct Vat(pub VatParams);

/// `t` with every sample scaled to L2 length 1 (a zero sample stays zero). Divided by its
/// largest magnitude first, as Miyato et al.'s code does: the gradients at r = ξ·d are tiny
/// (1e-9 here), and their squares would lose precision.
fn unit_per_sample(t: &Tensor) -> Result<Tensor> {
    let n = t.dim(0)?;
    let flat = t.reshape((n, ()))?;
    let scale = (flat.abs()?.max_keepdim(1)? + 1e-30)?;
    let flat = flat.broadcast_div(&scale)?;
    let norm = (flat.sqr()?.sum_keepdim(1)?.sqrt()? + 1e-12)?;
    Ok(flat.broadcast_div(&norm)?.reshape(t.shape())?)
}

/// KL(p ‖ q) summed over classes and samples, from log-probabilities.
fn kl_sum(lp: &Tensor, lq: &Tensor) -> Result<Tensor> {
    Ok((lp.exp()? * (lp - lq)?)?.sum_all()?)
}

/// The virtual adversarial direction of every sample of `x`: power iteration on the Hessian of
/// r ↦ KL(p(x) ‖ p(x + r)) at r = 0, from a seeded Gaussian start, each step the gradient at
/// r = ξ·d, normalised per sample (L2). Uses the detached forward pass.
pub fn vat_direction(model: &Model, x: &Tensor, xi: f64, iterations: usize, seed: u64) -> Result<Tensor> {
    let lp_clean = log_softmax(&model.forward(x)?, D::Minus1)?.detach();
    let start = sample_noise(x, seed, |rng, out| {
        out.iter_mut()
            .for_each(|v| *v = rng.sample::<f32, _>(rand_distr::StandardNormal))
    })?;
    let mut d = unit_per_sample(&start)?;
    for _ in 0..iterations {
        crate::interrupt::check()?;
        let r = Var::from_tensor(&(&d * xi)?)?;
        let lq = log_softmax(&model.forward(&(x + r.as_tensor())?)?, D::Minus1)?;
        let grads = kl_sum(&lp_clean, &lq)?.backward()?;
        let g = match grads.get(r.as_tensor()) {
            Some(g) => g.detach(),
            None => d.zeros_like()?,
        };
        d = unit_per_sample(&g)?;
    }
    Ok(d.detach())
}

impl Recipe for Vat {
    fn name(&self) -> &'static str {
        "vat"
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.0;
        serde_json::json!({
            "recipe": self.name(), "eps": p.eps, "xi": p.xi, "power_iterations": p.power_iterations,
            "alpha": p.alpha, "use_labels": p.use_labels, "seed": p.seed, "norm": "l2", "clip": false,
        })
    }

    /// x + ε·d, d the virtual adversarial direction (not clipped to [0, 1], as the paper's).
    fn craft(&self, model: &Model, x: &Tensor, _y: &Tensor, epoch: usize, batch: usize) -> Result<Crafting> {
        let p = &self.0;
        let d = vat_direction(model, x, p.xi, p.power_iterations, batch_seed(p.seed, epoch, batch))?;
        Ok(Crafting {
            input: (x + (d * p.eps)?)?,
            sums: Vec::new(),
            used: None,
        })
    }

    fn loss(&self, model: &Model, x: &Tensor, y: &Tensor, crafted: Crafting, smoothing: f64) -> Result<BatchLoss> {
        let Crafting { input, mut sums, used } = crafted;
        let n = x.dim(0)?;
        let (clean, adv) = clean_and_crafted_logits(model, x, &input)?;
        // the clean prediction is the target, a constant (Miyato et al.)
        let lp = log_softmax(&clean.detach(), D::Minus1)?;
        let kl = (kl_sum(&lp, &log_softmax(&adv, D::Minus1)?)? / n as f64)?;
        let mut loss = (&kl * self.0.alpha)?;
        if self.0.use_labels {
            let ce = smoothed_cross_entropy(&clean, y, smoothing)?;
            sums.push(("cross_entropy", ce.to_scalar::<f32>()? as f64 * n as f64));
            loss = (loss + ce)?;
        }
        sums.push(("vat_kl", kl.to_scalar::<f32>()? as f64 * n as f64));
        sums.push(("vat_accuracy", correct(&adv.detach(), y)?));
        Ok(BatchLoss {
            loss,
            logits: clean.detach(),
            sums,
            used,
        })
    }
}

impl fmt::Display for Vat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.0;
        write!(
            f,
            "vat(eps={}, xi={}, power_iterations={}, alpha={}, use_labels={}, seed={})",
            p.eps, p.xi, p.power_iterations, p.alpha, p.use_labels, p.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::unit_per_sample;
    use candle_core::{Device, Tensor};

    #[test]
    fn samples_are_scaled_to_unit_length() {
        let t = Tensor::new(&[[3f32, 4.0, 0.0, 0.0], [1e-9, 2e-9, 2e-9, 0.0]], &Device::Cpu).unwrap();
        let u: Vec<Vec<f32>> = unit_per_sample(&t).unwrap().to_vec2().unwrap();
        for row in u {
            let n: f32 = row.iter().map(|a| a * a).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-6, "{row:?} {n}");
        }
    }
}
