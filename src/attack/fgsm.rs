//! FGSM (Goodfellow et al.): one signed-gradient step of size ε, clipped to [0, 1].

use super::{check_eps, linf_step, probe, Attack};
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::Tensor;
use std::fmt;

/// Unchecked FGSM parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct FgsmParams {
    pub eps: f64,
    pub batch_size: usize,
}

impl FgsmParams {
    /// FGSM with budget `eps` and the default batch size (256).
    pub fn new(eps: f64) -> Self {
        Self { eps, batch_size: 256 }
    }

    /// Check the rules: ε finite and ≥ 0, batch size ≥ 1.
    pub fn check(&self) -> std::result::Result<Fgsm, ParamError> {
        let eps = check_eps(self.eps)?;
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        Ok(Fgsm {
            eps,
            batch_size: self.batch_size,
        })
    }
}

/// Checked FGSM.
#[derive(Clone, Debug, PartialEq)]
pub struct Fgsm {
    eps: f64,
    batch_size: usize,
}

impl Fgsm {
    /// The budget ε.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Attack for Fgsm {
    fn name(&self) -> &'static str {
        "fgsm"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "attack": "fgsm", "norm": "linf", "eps": self.eps, "batch_size": self.batch_size })
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn perturb_batch(&self, model: &Model, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        if self.eps == 0.0 {
            return Ok(x.clone());
        }
        // one step of size ε from x, projected on the ε-ball around x (a no-op) and on [0, 1]
        linf_step(x, &probe(model, x, y)?.grad, x, self.eps, self.eps)
    }
}

impl fmt::Display for Fgsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FGSM(eps={}, norm=linf, batch_size={})", self.eps, self.batch_size)
    }
}
