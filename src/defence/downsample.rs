//! Down-sampling and back up (seed 003's "down-sampling" model): each side shrunk to
//! `factor` of its length by area averaging (PyTorch's `interpolate(mode="area")`), then
//! brought back by bilinear interpolation (`mode="bilinear", align_corners=False`). Both
//! steps are linear, so the whole transform is `R_h · x · R_wᵀ` per channel with two fixed
//! matrices, and differentiable.

use super::{image_dims, Transform};
use crate::error::{ParamError, Result};
use crate::kernels::resample;
use candle_core::Tensor;
use rand::rngs::StdRng;
use std::fmt;

/// `(n_out × n_in)` row-major: output `i` averages the inputs it covers (adaptive average
/// pooling: `[⌊i·n_in/n_out⌋, ⌈(i+1)·n_in/n_out⌉)`).
fn area(n_in: usize, n_out: usize) -> Vec<f32> {
    let mut m = vec![0f32; n_out * n_in];
    for i in 0..n_out {
        let start = i * n_in / n_out;
        let end = ((i + 1) * n_in).div_ceil(n_out);
        for j in start..end {
            m[i * n_in + j] = 1.0 / (end - start) as f32;
        }
    }
    m
}

/// `(n_out × n_in)` row-major: linear interpolation with half-pixel centres, the border
/// replicated.
fn bilinear(n_in: usize, n_out: usize) -> Vec<f32> {
    let mut m = vec![0f32; n_out * n_in];
    let scale = n_in as f64 / n_out as f64;
    for i in 0..n_out {
        let src = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        let w1 = (src - i0 as f64).clamp(0.0, 1.0) as f32;
        m[i * n_in + i0] += 1.0 - w1;
        m[i * n_in + i1] += w1;
    }
    m
}

/// `(a · b)` for row-major `a (n × k)` and `b (k × m)`.
fn matmul(a: &[f32], b: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * m];
    for i in 0..n {
        for l in 0..k {
            let v = a[i * k + l];
            if v != 0.0 {
                for j in 0..m {
                    out[i * m + j] += v * b[l * m + j];
                }
            }
        }
    }
    out
}

/// The `(n × n)` matrix that shrinks a side of `n` to `small` by area averaging and brings it
/// back by bilinear interpolation. Every row sums to 1, so constant images are unchanged.
pub fn resample_matrix(n: usize, small: usize) -> Vec<f32> {
    matmul(&bilinear(small, n), &area(n, small), n, small, n)
}

/// Down-sampling to `factor` of each side and back up.
#[derive(Clone, Debug, PartialEq)]
pub struct Downsample {
    factor: f64,
}

impl Downsample {
    /// Half of each side.
    pub const DEFAULT_FACTOR: f64 = 0.5;

    /// Checked: 0 < factor ≤ 1.
    pub fn new(factor: f64) -> std::result::Result<Self, ParamError> {
        if !(factor.is_finite() && factor > 0.0 && factor <= 1.0) {
            return Err(ParamError::DownsampleFactor(factor));
        }
        Ok(Self { factor })
    }

    /// The reduced length of a side of `n` pixels (at least 1).
    pub fn small(&self, n: usize) -> usize {
        ((n as f64 * self.factor).round() as usize).clamp(1, n)
    }
}

impl Transform for Downsample {
    fn name(&self) -> &'static str {
        "downsample"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "transform": self.name(), "factor": self.factor, "down": "area", "up": "bilinear" })
    }

    fn check_input(&self, dims: &[usize]) -> Result<()> {
        image_dims(self.name(), dims).map(|_| ())
    }

    fn apply(&self, x: &Tensor, _rng: &mut StdRng) -> Result<Tensor> {
        let (_, h, w) = image_dims(self.name(), x.dims())?;
        let (rh, rw) = (resample_matrix(h, self.small(h)), resample_matrix(w, self.small(w)));
        Ok(resample(x, (&rh, h), (&rw, w), x.device())?)
    }
}

impl fmt::Display for Downsample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "downsample(factor={}: each side to {}% by area averaging, back up bilinear; 28×28 → {}×{})",
            self.factor,
            self.factor * 100.0,
            self.small(28),
            self.small(28)
        )
    }
}
