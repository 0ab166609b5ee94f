//! FGSM (Goodfellow et al.): one signed-gradient step of size ε, clipped to [0, 1]; targeted,
//! it steps down the loss of the target class instead.

use super::{check_eot, check_eps, linf_step, probe_eot, Attack, Goal, Target};
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::Tensor;
use std::fmt;

/// Unchecked FGSM parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct FgsmParams {
    pub eps: f64,
    pub batch_size: usize,
    pub target: Target,
    /// Gradient samples averaged per step (EOT, for randomised models); 1 = plain.
    pub eot: usize,
}

impl FgsmParams {
    /// Untargeted FGSM with budget `eps` and the default batch size (256).
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            batch_size: 256,
            target: Target::Untargeted,
            eot: 1,
        }
    }

    /// Check the rules: ε finite and ≥ 0, batch size ≥ 1, eot ≥ 1.
    pub fn check(&self) -> std::result::Result<Fgsm, ParamError> {
        let eps = check_eps(self.eps)?;
        check_eot(self.eot)?;
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        Ok(Fgsm { p: self.clone(), eps })
    }
}

/// Checked FGSM.
#[derive(Clone, Debug, PartialEq)]
pub struct Fgsm {
    p: FgsmParams,
    eps: f64,
}

impl Fgsm {
    /// The budget ε.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Attack for Fgsm {
    fn name(&self) -> &'static str {
        if self.p.target.is_targeted() {
            "fgsm_targeted"
        } else {
            "fgsm"
        }
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "attack": self.name(), "norm": "linf", "eps": self.eps, "target": self.p.target.json(),
            "batch_size": self.p.batch_size, "eot": self.p.eot,
        })
    }

    fn batch_size(&self) -> usize {
        self.p.batch_size
    }

    fn target(&self) -> Target {
        self.p.target.clone()
    }

    fn with_eps(&self, eps: f64) -> Result<Box<dyn Attack>> {
        Ok(Box::new(FgsmParams { eps, ..self.p.clone() }.check()?))
    }

    fn perturb_batch(&self, model: &Model, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let goal = Goal::new(&self.p.target, model, x, y)?;
        if self.eps == 0.0 {
            return Ok(x.clone());
        }
        // one step of size ε from x, projected on the ε-ball around x (a no-op) and on [0, 1]
        linf_step(x, &probe_eot(model, x, &goal, self.p.eot)?.grad, x, self.eps, self.eps)
    }
}

impl fmt::Display for Fgsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FGSM(eps={}, norm=linf, target={}, eot={}, batch_size={})",
            self.eps, self.p.target, self.p.eot, self.p.batch_size
        )
    }
}
