//! The Indian buffet process prior over the connections of a stochastic LWTA layer (Panousis
//! et al. 2019 and 2021, seed 001 section 4), trained by the ELBO of seed 001's equation.
//!
//! A binary utility `z[k, j]` switches the connection of input `j` to LWTA block `k` (all `U`
//! units of the block; a convolution has one `z[k]` per block of kernels). The prior is the
//! IBP's stick-breaking construction: `u_k ~ Beta(α, 1)`, `π_k = u_1·…·u_k`,
//! `z[k, j] ~ Bernoulli(π_k)`, so later blocks are ever less likely to be used and the data
//! decide how many are. The posterior is `q(u_k) = Kumaraswamy(a_k, b_k)` and
//! `q(z[k, j]) = Bernoulli(sigmoid(ℓ[k, j]))`, with `ℓ`, `a`, `b` learned with the weights.
//!
//! Training multiplies the weights by relaxed utilities (a binary Concrete sample,
//! `sigmoid((ℓ + logistic noise)/τ)`), and the loss gains `KL(q ‖ p)/N`: the Kumaraswamy–Beta
//! KL in closed form (for a Beta(α, 1) prior its series term vanishes) plus the Bernoulli KL
//! against `π` from a reparameterised sample of `u`. Evaluation draws hard utilities
//! (`ℓ + logistic noise > 0`, a sample of the Bernoulli), like LWTA's hard winners.

use super::ctx::Ctx;
use super::random::uniform_vec;
use candle_core::{DType, Result, Tensor, D};

/// Euler–Mascheroni constant.
const EULER: f64 = 0.577_215_664_901_532_9;
/// Smallest value inside a logarithm.
const TINY: f64 = 1e-7;

/// The prior's concentration and the relaxation temperature of an LWTA model's IBP.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IbpPrior {
    /// α of the Beta(α, 1) sticks: larger keeps more blocks.
    pub alpha: f64,
    /// Temperature of the relaxed utilities in training.
    pub temperature: f64,
}

impl Default for IbpPrior {
    fn default() -> Self {
        Self {
            alpha: 5.0,
            temperature: 0.67,
        }
    }
}

/// The posterior's parameters are stored divided by this, so that the optimiser moves them
/// this many times faster than the weights: at the weights' learning rate a utility logit
/// needs thousands of steps to switch a connection off.
pub(crate) const SCALE: f64 = 10.0;

/// The initial utility logit, stored: sigmoid(10 · 0.3) = sigmoid(3) ≈ 0.95, so a network
/// starts nearly dense.
pub(crate) const LOGIT_INIT: f64 = 3.0 / SCALE;

/// The stored value of a Kumaraswamy parameter `y` (softplus of 10 times the stored value).
pub(crate) fn softplus_inv(y: f64) -> f64 {
    y.exp_m1().ln() / SCALE
}

/// `ln(1 + eˣ)`, stable for large |x|.
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?)
}

/// ψ(x) for x > 0 (digamma), differentiable: the recurrence to x + 6, then the asymptotic
/// series (error below 1e-9).
pub(crate) fn digamma(x: &Tensor) -> Result<Tensor> {
    let mut shift = x.zeros_like()?;
    for i in 0..6 {
        shift = (shift + (x + i as f64)?.recip()?)?;
    }
    let y = (x + 6.0)?;
    let inv = y.recip()?;
    let inv2 = inv.sqr()?;
    // ln y − 1/(2y) − 1/(12y²) + 1/(120y⁴) − 1/(252y⁶)
    let series = (inv2.affine(-1.0 / 252.0, 1.0 / 120.0)? * &inv2)?.affine(1.0, -1.0 / 12.0)?;
    let psi = ((y.log()? - (inv * 0.5)?)? + (series * inv2)?)?;
    psi - shift
}

/// KL(Kumaraswamy(a, b) ‖ Beta(α, 1)), elementwise (Nalisnick and Smyth 2017; the series
/// term carries a factor β − 1 = 0).
pub(crate) fn kl_kumaraswamy_beta(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    let t1 = ((a - alpha)? / a)?;
    let t2 = ((digamma(b)? + b.recip()?)?.affine(-1.0, -EULER))?;
    let log_ab = (a.log()? + b.log()?)?.affine(1.0, -alpha.ln())?;
    let t3 = ((b - 1.0)? / b)?;
    ((t1 * t2)? + log_ab)? - t3
}

/// The learned posterior of one layer's utilities.
pub(crate) struct Gates {
    /// ℓ/10: `(K, J)` for a linear layer, `(K)` for a convolution.
    pub logit: Tensor,
    /// Kumaraswamy parameters: `a = softplus(10 · self.a)`, `(K)`.
    pub a: Tensor,
    pub b: Tensor,
    pub units: usize,
    pub prior: IbpPrior,
}

impl Gates {
    /// The weight of this pass: `w` times the utilities drawn from the next key of `ctx`.
    pub fn apply(&self, w: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let key = ctx.draw();
        let u = Tensor::from_vec(
            uniform_vec(self.logit.elem_count(), key),
            self.logit.shape(),
            self.logit.device(),
        )?;
        let logistic = (u.log()? - u.affine(-1.0, 1.0)?.log()?)?;
        let noisy = ((&self.logit * SCALE)? + logistic)?;
        let z = if ctx.train {
            candle_nn::ops::sigmoid(&(noisy / self.prior.temperature)?)?
        } else {
            noisy.ge(0.0)?.to_dtype(DType::F32)?
        };
        // block k of the utilities covers output channels k·U … k·U + U − 1
        let k = z.dim(0)?;
        let mask = if z.rank() == 1 {
            z.unsqueeze(1)?
                .broadcast_as((k, self.units))?
                .reshape((k * self.units, 1, 1, 1))?
        } else {
            let j = z.dim(1)?;
            z.unsqueeze(1)?
                .broadcast_as((k, self.units, j))?
                .reshape((k * self.units, j))?
        };
        w.broadcast_mul(&mask)
    }

    /// KL(q ‖ p) of this layer, with `u` drawn from `key` (a scalar with gradients).
    pub fn kl(&self, key: u64) -> Result<Tensor> {
        let a = softplus(&(&self.a * SCALE)?)?;
        let b = softplus(&(&self.b * SCALE)?)?;
        let logit = (&self.logit * SCALE)?;
        let kl_u = kl_kumaraswamy_beta(&a, &b, self.prior.alpha)?.sum_all()?;
        // u = (1 − ν^(1/b))^(1/a), ν uniform: a Kumaraswamy sample; ln π = cumsum ln u
        let k = a.dim(0)?;
        let nu = Tensor::from_vec(uniform_vec(k, key), k, a.device())?;
        let nu_pow = (nu.log()? / &b)?.exp()?;
        let log_u = (nu_pow.affine(-1.0, 1.0)?.clamp(TINY, 1.0)?.log()? / &a)?;
        let log_pi = log_u.cumsum(0)?;
        let log_1m_pi = log_pi.exp()?.affine(-1.0, 1.0)?.clamp(TINY, 1.0)?.log()?;
        let (log_pi, log_1m_pi) = match logit.rank() {
            1 => (log_pi, log_1m_pi),
            _ => (log_pi.unsqueeze(1)?, log_1m_pi.unsqueeze(1)?),
        };
        let q = candle_nn::ops::sigmoid(&logit)?;
        // ln q = −softplus(−ℓ), ln(1 − q) = −softplus(ℓ)
        let log_q = softplus(&logit.neg()?)?.neg()?;
        let log_1m_q = softplus(&logit)?.neg()?;
        let on = (&q * log_q.broadcast_sub(&log_pi)?)?;
        let off = (q.affine(-1.0, 1.0)? * log_1m_q.broadcast_sub(&log_1m_pi)?)?;
        kl_u + (on + off)?.sum_all()?
    }

    /// How many connections and blocks are on (posterior probability above ½).
    pub fn usage(&self) -> Result<IbpUsage> {
        let on = self.logit.gt(0.0)?.to_dtype(DType::F32)?;
        let count = |t: &Tensor| -> Result<usize> { Ok(t.sum_all()?.to_scalar::<f32>()? as usize) };
        let per_block = if on.rank() == 1 { on.clone() } else { on.max(D::Minus1)? };
        Ok(IbpUsage {
            on: count(&on)?,
            connections: on.elem_count(),
            blocks_on: count(&per_block)?,
            blocks: per_block.elem_count(),
        })
    }
}

/// How much of one layer the posterior keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IbpUsage {
    /// Connections whose posterior probability of being on is above ½.
    pub on: usize,
    pub connections: usize,
    /// Blocks with at least one connection on.
    pub blocks_on: usize,
    pub blocks: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn digamma_matches_known_values() {
        let x = Tensor::new(&[0.1f64, 0.5, 1.0, 2.0, 7.5, 30.0], &Device::Cpu).unwrap();
        let got = digamma(&x).unwrap().to_vec1::<f64>().unwrap();
        let want = [
            -10.423_754_940_411_08,
            -1.963_510_026_021_423,
            -0.577_215_664_901_532_9,
            0.422_784_335_098_467_1,
            1.946_757_484_246_086_6,
            3.384_438_132_685_525,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-8, "digamma {g} vs {w}");
        }
    }

    /// The closed form against numerical integration of q·ln(q/p) on (0, 1).
    #[test]
    fn kumaraswamy_beta_kl_matches_integration() {
        for (a, b, alpha) in [(1.0, 1.0, 1.0), (2.0, 1.0, 5.0), (3.5, 0.7, 2.0), (0.8, 2.5, 5.0)] {
            let at = Tensor::new(&[a], &Device::Cpu).unwrap();
            let bt = Tensor::new(&[b], &Device::Cpu).unwrap();
            let closed = kl_kumaraswamy_beta(&at, &bt, alpha).unwrap().to_vec1::<f64>().unwrap()[0];
            // substitute x = 1 − (1 − t)^m to spread points near both ends; midpoint rule
            let n = 400_000;
            let mut sum = 0.0;
            for i in 0..n {
                let x: f64 = (i as f64 + 0.5) / n as f64;
                let q = a * b * x.powf(a - 1.0) * (1.0 - x.powf(a)).powf(b - 1.0);
                let p = alpha * x.powf(alpha - 1.0);
                if q > 0.0 {
                    sum += q * (q / p).ln() / n as f64;
                }
            }
            assert!((closed - sum).abs() < 2e-3, "a {a} b {b} α {alpha}: {closed} vs {sum}");
        }
        // equal distributions: Kumaraswamy(α, 1) is Beta(α, 1)
        let at = Tensor::new(&[5.0f64], &Device::Cpu).unwrap();
        let one = Tensor::new(&[1.0f64], &Device::Cpu).unwrap();
        let kl = kl_kumaraswamy_beta(&at, &one, 5.0).unwrap().to_vec1::<f64>().unwrap()[0];
        assert!(kl.abs() < 1e-8, "{kl}");
    }
}
