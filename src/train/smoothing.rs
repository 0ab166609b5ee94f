//! Label smoothing: a recipe that only shapes the loss, and composes with one that crafts.

use super::recipe::Recipe;
use crate::error::ParamError;
use std::fmt;

/// Unchecked label smoothing: the target puts `1 − amount` on the label and spreads `amount`
/// evenly over all K classes, as PyTorch's `CrossEntropyLoss(label_smoothing=amount)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelSmoothingParams {
    pub amount: f64,
}

impl Default for LabelSmoothingParams {
    /// 0.1, the amount of Szegedy et al. and of most robustness papers that use it.
    fn default() -> Self {
        Self { amount: 0.1 }
    }
}

impl LabelSmoothingParams {
    /// Check the rule: amount in [0, 1).
    pub fn check(&self) -> std::result::Result<LabelSmoothing, ParamError> {
        if !(0.0..1.0).contains(&self.amount) {
            return Err(ParamError::SmoothingAmount(self.amount));
        }
        Ok(LabelSmoothing { amount: self.amount })
    }
}

/// Checked label smoothing.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelSmoothing {
    pub amount: f64,
}

impl Recipe for LabelSmoothing {
    fn name(&self) -> &'static str {
        "label_smoothing"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "recipe": self.name(), "amount": self.amount })
    }

    fn crafts(&self) -> bool {
        false
    }

    fn smoothing(&self) -> f64 {
        self.amount
    }
}

impl fmt::Display for LabelSmoothing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(amount={})", self.name(), self.amount)
    }
}
