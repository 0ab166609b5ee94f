//! Bit-depth reduction (feature squeezing): each pixel rounded to one of `2^bits` evenly spaced
//! levels in [0, 1]. Its true gradient is zero almost everywhere; with BPDA (the default) the
//! backward pass is the identity.

use super::{backward_name, bpda_switch, cpu_values, through, Transform};
use crate::error::{ParamError, Result};
use candle_core::Tensor;
use rand::rngs::StdRng;
use std::fmt;

/// Rounding to `2^bits` levels.
#[derive(Clone, Debug, PartialEq)]
pub struct BitDepth {
    bits: usize,
    bpda: bool,
}

impl BitDepth {
    /// The backward pass through the rounding is the identity (BPDA) unless asked otherwise.
    pub const DEFAULT_BPDA: bool = true;

    /// Checked: 1 ≤ bits ≤ 16.
    pub fn new(bits: usize, bpda: bool) -> std::result::Result<Self, ParamError> {
        if !(1..=16).contains(&bits) {
            return Err(ParamError::BitDepth(bits));
        }
        Ok(Self { bits, bpda })
    }

    /// The number of levels, `2^bits`.
    pub fn levels(&self) -> usize {
        1 << self.bits
    }
}

impl Transform for BitDepth {
    fn name(&self) -> &'static str {
        "bit_depth"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "transform": self.name(), "bits": self.bits, "levels": self.levels(), "bpda": self.bpda })
    }

    fn apply(&self, x: &Tensor, _rng: &mut StdRng) -> Result<Tensor> {
        let top = (self.levels() - 1) as f32;
        let q: Vec<f32> = cpu_values(x)?
            .into_iter()
            .map(|v| (v.clamp(0.0, 1.0) * top).round() / top)
            .collect();
        through(x, q, self.bpda)
    }

    bpda_switch!();
}

impl fmt::Display for BitDepth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bit_depth(bits={}, {} levels, backward={})",
            self.bits,
            self.levels(),
            backward_name(self.bpda)
        )
    }
}
