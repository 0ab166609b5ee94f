//! The losses an attack ascends, on logits: cross-entropy, Croce and Hein's DLR, the CW margin
//! and the KL divergence from a reference prediction (TRADES), each untargeted or towards a
//! target class, and the input gradient of any loss in one forward and backward pass (the
//! model's weights are not tracked).
//!
//! Every loss here is one the attacker *ascends*: untargeted CE is the CE of the true label,
//! targeted CE is minus the CE of the target, and so on, so an attack step always moves along
//! the gradient.

use crate::error::{Error, Result};
use crate::nn::Model;
use candle_core::{DType, Tensor, Var, D};

/// Which loss, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Cross-entropy of the true label (targeted: minus that of the target).
    Ce,
    /// Difference of logits ratio (Croce and Hein 2020): `−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)`;
    /// targeted `−(z_y − z_t) / (z_π1 − (z_π3 + z_π4) / 2)`. Invariant to shifting and scaling the logits.
    Dlr,
    /// The CW margin `max_{i≠y} z_i − z_y` (targeted: `z_t − max_{i≠t} z_i`).
    Cw,
    /// `KL(softmax(reference) ‖ softmax(logits))`, the divergence TRADES ascends.
    Kl,
}

impl LossKind {
    /// `"ce" | "dlr" | "cw" | "kl"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ce" => Ok(LossKind::Ce),
            "dlr" => Ok(LossKind::Dlr),
            "cw" => Ok(LossKind::Cw),
            "kl" => Ok(LossKind::Kl),
            other => Err(Error::Invalid(format!(
                "unknown loss \"{other}\": use \"ce\", \"dlr\", \"cw\" or \"kl\""
            ))),
        }
    }

    /// The name used in options and outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            LossKind::Ce => "ce",
            LossKind::Dlr => "dlr",
            LossKind::Cw => "cw",
            LossKind::Kl => "kl",
        }
    }
}

/// How per-sample losses are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// The sum over the batch: each sample's gradient does not depend on the batch size.
    Sum,
    Mean,
    /// One loss per sample, `(N,)`.
    None,
}

impl Reduction {
    /// `"sum" | "mean" | "none"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "sum" => Ok(Reduction::Sum),
            "mean" => Ok(Reduction::Mean),
            "none" => Ok(Reduction::None),
            other => Err(Error::Invalid(format!(
                "unknown reduction \"{other}\": use \"sum\", \"mean\" or \"none\""
            ))),
        }
    }
}

/// A resolved loss: its kind, and what it compares the logits with.
#[derive(Clone, Debug)]
pub struct Loss {
    pub kind: LossKind,
    /// Target classes `(N,)` (u32): the loss moves towards them. Not used by `Kl`.
    pub target: Option<Tensor>,
    /// The reference logits `(N, C)` of `Kl` (e.g. the model's on the clean input).
    pub reference: Option<Tensor>,
    pub reduction: Reduction,
}

impl Loss {
    /// The untargeted `kind`, summed.
    pub fn new(kind: LossKind) -> Self {
        Self {
            kind,
            target: None,
            reference: None,
            reduction: Reduction::Sum,
        }
    }
}

fn check_labels(labels: &Tensor, logits: &Tensor, what: &str) -> Result<()> {
    let (n, classes) = logits.dims2()?;
    if labels.dims() != [n] {
        return Err(Error::Shape(format!(
            "{what}: {n} rows of logits but labels of shape {:?}",
            labels.dims()
        )));
    }
    if n > 0 {
        let max = labels.to_dtype(DType::U32)?.max(0)?.to_scalar::<u32>()? as usize;
        if max >= classes {
            return Err(Error::Invalid(format!(
                "{what}: label {max} is outside the model's classes 0..={}",
                classes - 1
            )));
        }
    }
    Ok(())
}

/// `z` at column `labels` per row, `(N,)`.
fn pick(z: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(z.gather(&labels.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?.squeeze(1)?)
}

/// The largest logit other than the one at `labels`, per row.
fn max_other(z: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let classes = z.dim(1)?;
    let mask = crate::algebra::one_hot(labels, classes)?;
    // push the label's own logit far below every other one (finite, so no inf − inf)
    Ok((z - (mask * 1e9)?)?.max(1)?)
}

/// The `k`-th largest logit per row (1-based).
fn kth_largest(sorted_desc: &Tensor, k: usize) -> Result<Tensor> {
    Ok(sorted_desc.narrow(1, k - 1, 1)?.squeeze(1)?)
}

/// The per-sample loss `(N,)` of `logits` `(N, C)` for true labels `y`, which the attacker ascends.
fn per_sample(loss: &Loss, logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    let classes = logits.dim(1)?;
    let target = loss.target.as_ref();
    if let Some(t) = target {
        check_labels(t, logits, "loss target")?;
    }
    Ok(match loss.kind {
        LossKind::Ce => {
            let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
            match target {
                None => pick(&log_probs, y)?.neg()?,
                Some(t) => pick(&log_probs, t)?,
            }
        }
        LossKind::Cw => match target {
            None => (max_other(logits, y)? - pick(logits, y)?)?,
            Some(t) => (pick(logits, t)? - max_other(logits, t)?)?,
        },
        LossKind::Dlr => {
            let need = if target.is_some() { 4 } else { 3 };
            if classes < need {
                return Err(Error::Invalid(format!(
                    "the DLR loss needs at least {need} classes, the model has {classes}"
                )));
            }
            let sorted = logits.sort_last_dim(false)?.0;
            let z1 = kth_largest(&sorted, 1)?;
            let z3 = kth_largest(&sorted, 3)?;
            match target {
                None => {
                    let num = (pick(logits, y)? - max_other(logits, y)?)?;
                    (num / (z1 - z3)?.affine(1.0, 1e-12)?)?.neg()?
                }
                Some(t) => {
                    let z4 = kth_largest(&sorted, 4)?;
                    let num = (pick(logits, y)? - pick(logits, t)?)?;
                    let den = (z1 - ((z3 + z4)? * 0.5)?)?.affine(1.0, 1e-12)?;
                    (num / den)?.neg()?
                }
            }
        }
        LossKind::Kl => {
            let Some(r) = loss.reference.as_ref() else {
                return Err(Error::Invalid(
                    "the kl loss needs reference logits (e.g. the model's on the clean input)".into(),
                ));
            };
            if r.dims() != logits.dims() {
                return Err(Error::Shape(format!(
                    "kl loss: reference logits of shape {:?} for logits of shape {:?}",
                    r.dims(),
                    logits.dims()
                )));
            }
            let lp_ref = candle_nn::ops::log_softmax(&r.to_dtype(logits.dtype())?.detach(), D::Minus1)?;
            let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
            (lp_ref.exp()? * (lp_ref - lp)?)?.sum(1)?
        }
    })
}

/// The loss of `logits` `(N, C)` for true labels `y` `(N,)`, reduced as `loss.reduction` says.
pub fn loss_value(loss: &Loss, logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    if logits.rank() != 2 {
        return Err(Error::Shape(format!(
            "a loss needs logits of shape (N, classes), got {:?}",
            logits.dims()
        )));
    }
    check_labels(y, logits, "loss labels")?;
    let per = per_sample(loss, logits, y)?;
    Ok(match loss.reduction {
        Reduction::Sum => per.sum_all()?,
        Reduction::Mean => per.mean_all()?,
        Reduction::None => per,
    })
}

/// The value of a scalar loss built from the logits by `f`, and its gradient with respect to
/// the input `x` only, from one forward and one backward pass. A loss of several elements is
/// summed first; a loss that does not depend on `x` has a zero gradient.
pub fn input_gradient(
    model: &Model,
    x: &Tensor,
    f: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Tensor)> {
    model.check_input(x.dims())?;
    let var = Var::from_tensor(&x.detach())?;
    let logits = model.forward(var.as_tensor())?;
    let value = f(&logits)?;
    let scalar = if value.rank() == 0 {
        value.clone()
    } else {
        value.sum_all()?
    };
    if !scalar.dtype().is_float() {
        return Err(Error::Invalid(format!(
            "a loss must be a float tensor, got {:?} (comparisons and argmax have no gradient)",
            scalar.dtype()
        )));
    }
    let grads = scalar.backward()?;
    let grad = match grads.get(var.as_tensor()) {
        Some(g) => g.detach(),
        None => x.zeros_like()?,
    };
    Ok((value.detach(), grad))
}

/// [`input_gradient`] averaged over `passes` forward/backward passes (expectation over
/// transformation, for a model whose input transforms are random); one pass is the plain one.
pub fn input_gradient_mean(
    model: &Model,
    x: &Tensor,
    passes: usize,
    f: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (mut value, mut grad) = input_gradient(model, x, &f)?;
    for _ in 1..passes {
        let (v, g) = input_gradient(model, x, &f)?;
        value = (value + v)?;
        grad = (grad + g)?;
    }
    if passes > 1 {
        let k = 1.0 / passes as f64;
        Ok(((value * k)?, (grad * k)?))
    } else {
        Ok((value, grad))
    }
}
