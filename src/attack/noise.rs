//! Random noise of a given budget: the baseline every attack is compared against. A model that
//! loses more accuracy to noise than to an attack of the same budget has a broken attack (or
//! hides its gradients).

use super::{check_eps, sample_noise, sphere_fill, Attack, Norm};
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::Tensor;
use rand::Rng;
use std::fmt;

/// The distribution of the noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseKind {
    /// L∞: uniform in [−ε, ε] per pixel. L2: a random direction of length exactly ε.
    Uniform,
    /// L∞: Gaussian with σ = ε/2 per pixel, clipped to [−ε, ε]. L2: Gaussian with
    /// σ = ε/√d per pixel (expected length ε), projected onto the ε-ball.
    Gaussian,
}

impl NoiseKind {
    /// `"uniform"` or `"gaussian"`.
    pub fn parse(s: &str) -> std::result::Result<Self, ParamError> {
        match s {
            "uniform" => Ok(NoiseKind::Uniform),
            "gaussian" => Ok(NoiseKind::Gaussian),
            _ => Err(ParamError::UnknownNoise(s.to_string())),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            NoiseKind::Uniform => "uniform",
            NoiseKind::Gaussian => "gaussian",
        }
    }
}

/// Unchecked noise parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseParams {
    pub kind: NoiseKind,
    pub eps: f64,
    pub norm: Norm,
    pub seed: u64,
    pub batch_size: usize,
}

impl NoiseParams {
    /// Uniform L∞ noise of budget `eps`.
    pub fn new(eps: f64) -> Self {
        Self {
            kind: NoiseKind::Uniform,
            eps,
            norm: Norm::Linf,
            seed: 0,
            batch_size: 1024,
        }
    }

    /// Check the rules: ε finite and ≥ 0, batch size ≥ 1.
    pub fn check(&self) -> std::result::Result<Noise, ParamError> {
        check_eps(self.eps)?;
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        Ok(Noise { p: self.clone() })
    }
}

/// Checked noise "attack".
#[derive(Clone, Debug, PartialEq)]
pub struct Noise {
    p: NoiseParams,
}

impl Attack for Noise {
    fn name(&self) -> &'static str {
        "noise"
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.p;
        serde_json::json!({
            "attack": "noise", "kind": p.kind.as_str(), "norm": p.norm.as_str(), "eps": p.eps,
            "seed": p.seed, "batch_size": p.batch_size,
        })
    }

    fn batch_size(&self) -> usize {
        self.p.batch_size
    }

    fn with_eps(&self, eps: f64) -> Result<Box<dyn Attack>> {
        Ok(Box::new(NoiseParams { eps, ..self.p.clone() }.check()?))
    }

    fn with_seed(&self, seed: u64) -> Option<Box<dyn Attack>> {
        Some(Box::new(Noise {
            p: NoiseParams { seed, ..self.p.clone() },
        }))
    }

    fn perturb_batch(&self, _model: &Model, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        let eps = self.p.eps as f32;
        if eps == 0.0 {
            return Ok(x.clone());
        }
        let noise = sample_noise(x, self.p.seed, |rng, out| match (self.p.norm, self.p.kind) {
            (Norm::Linf, NoiseKind::Uniform) => out.iter_mut().for_each(|v| *v = rng.random_range(-eps..=eps)),
            (Norm::Linf, NoiseKind::Gaussian) => out.iter_mut().for_each(|v| {
                let g: f32 = rng.sample(rand_distr::StandardNormal);
                *v = (g * eps / 2.0).clamp(-eps, eps)
            }),
            (Norm::L2, NoiseKind::Uniform) => sphere_fill(rng, out, eps),
            (Norm::L2, NoiseKind::Gaussian) => {
                let sigma = eps / (out.len() as f32).sqrt();
                out.iter_mut()
                    .for_each(|v| *v = rng.sample::<f32, _>(rand_distr::StandardNormal) * sigma);
                let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
                if norm > eps {
                    out.iter_mut().for_each(|v| *v *= eps / norm);
                }
            }
        })?;
        Ok((x + noise)?.clamp(0f32, 1f32)?)
    }
}

impl fmt::Display for Noise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.p;
        write!(
            f,
            "Noise(kind={}, eps={}, norm={}, seed={}, batch_size={})",
            p.kind.as_str(),
            p.eps,
            p.norm.as_str(),
            p.seed,
            p.batch_size
        )
    }
}
