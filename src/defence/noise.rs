//! Additive noise (seed 003's "additive noise" model): Gaussian or uniform noise added to every
//! pixel, fresh at each forward pass, then clipped to [0, 1]. Differentiable: the noise is a
//! constant of the pass, so the gradient is that of the clipping.

use super::Transform;
use crate::error::{ParamError, Result};
use candle_core::Tensor;
use rand::{rngs::StdRng, Rng};
use std::fmt;

/// `clamp(x + n, 0, 1)` for noise `n` drawn element by element by `draw`.
fn add_noise(x: &Tensor, rng: &mut StdRng, mut draw: impl FnMut(&mut StdRng) -> f32) -> Result<Tensor> {
    let noise: Vec<f32> = (0..x.elem_count()).map(|_| draw(rng)).collect();
    let noise = Tensor::from_vec(noise, x.dims(), x.device())?.to_dtype(x.dtype())?;
    Ok((x + noise)?.clamp(0f32, 1f32)?)
}

/// Gaussian noise of standard deviation `std`.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianNoise {
    std: f64,
    seed: u64,
}

impl GaussianNoise {
    /// Checked: `std` finite and ≥ 0.
    pub fn new(std: f64, seed: u64) -> std::result::Result<Self, ParamError> {
        if !(std.is_finite() && std >= 0.0) {
            return Err(ParamError::NoiseStd(std));
        }
        Ok(Self { std, seed })
    }
}

impl Transform for GaussianNoise {
    fn name(&self) -> &'static str {
        "gaussian_noise"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "transform": self.name(), "std": self.std, "seed": self.seed })
    }

    fn seed(&self) -> Option<u64> {
        Some(self.seed)
    }

    fn apply(&self, x: &Tensor, rng: &mut StdRng) -> Result<Tensor> {
        let std = self.std as f32;
        add_noise(x, rng, |r| r.sample::<f32, _>(rand_distr::StandardNormal) * std)
    }
}

impl fmt::Display for GaussianNoise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gaussian_noise(std={}, seed={}, clipped to [0, 1])",
            self.std, self.seed
        )
    }
}

/// Uniform noise in `[−magnitude, magnitude]`.
#[derive(Clone, Debug, PartialEq)]
pub struct UniformNoise {
    magnitude: f64,
    seed: u64,
}

impl UniformNoise {
    /// Checked: `magnitude` finite and ≥ 0.
    pub fn new(magnitude: f64, seed: u64) -> std::result::Result<Self, ParamError> {
        if !(magnitude.is_finite() && magnitude >= 0.0) {
            return Err(ParamError::NoiseMagnitude(magnitude));
        }
        Ok(Self { magnitude, seed })
    }
}

impl Transform for UniformNoise {
    fn name(&self) -> &'static str {
        "uniform_noise"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "transform": self.name(), "magnitude": self.magnitude, "seed": self.seed })
    }

    fn seed(&self) -> Option<u64> {
        Some(self.seed)
    }

    fn apply(&self, x: &Tensor, rng: &mut StdRng) -> Result<Tensor> {
        let m = self.magnitude as f32;
        if m == 0.0 {
            return Ok(x.clone());
        }
        add_noise(x, rng, |r| r.random_range(-m..=m))
    }
}

impl fmt::Display for UniformNoise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uniform_noise(magnitude={}, seed={}, clipped to [0, 1])",
            self.magnitude, self.seed
        )
    }
}
