//! Inference with a model: predicted classes, accuracy and per-sample probabilities, in
//! batches. Everything above `nn` (attacks, training, evaluation) predicts through here.

use super::Model;
use crate::data::Dataset;
use crate::error::{Error, Result};
use candle_core::{Tensor, D};

/// Batch size for inference.
pub const EVAL_BATCH: usize = 1000;

/// Predicted class of every sample, `(N,)` u32.
pub fn predict(model: &Model, data: &Dataset) -> Result<Tensor> {
    model.check_input(data.images().dims())?;
    let n = data.len();
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        crate::interrupt::check()?;
        let len = EVAL_BATCH.min(n - start);
        let logits = model.forward(&data.images().narrow(0, start, len)?)?;
        parts.push(logits.argmax(D::Minus1)?);
        start += len;
    }
    if parts.is_empty() {
        return Ok(Tensor::zeros(0, candle_core::DType::U32, data.device())?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Fraction of samples whose prediction equals the true label; an empty data set is an error
/// (its accuracy is undefined, and 0.0 would read as a result).
pub fn accuracy(model: &Model, data: &Dataset) -> Result<f64> {
    model.check_data(data)?;
    if data.is_empty() {
        return Err(Error::Invalid(format!(
            "the accuracy of {} is undefined: it has no samples",
            data.name()
        )));
    }
    let pred = predict(model, data)?;
    let correct = pred
        .eq(data.labels())?
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(correct as f64 / data.len() as f64)
}

/// Per sample: the predicted class, the probability of the true class, and the highest
/// probability (the model's confidence).
pub struct Predictions {
    pub pred: Vec<u32>,
    pub true_prob: Vec<f32>,
    pub max_prob: Vec<f32>,
}

/// Predictions and probabilities of every sample, in batches.
pub fn predictions(model: &Model, data: &Dataset) -> Result<Predictions> {
    model.check_data(data)?;
    let n = data.len();
    let mut out = Predictions {
        pred: Vec::with_capacity(n),
        true_prob: Vec::with_capacity(n),
        max_prob: Vec::with_capacity(n),
    };
    let mut start = 0;
    while start < n {
        crate::interrupt::check()?;
        let len = EVAL_BATCH.min(n - start);
        let logits = model.forward(&data.images().narrow(0, start, len)?)?;
        let probs = candle_nn::ops::softmax_last_dim(&logits)?;
        let labels = data.labels().narrow(0, start, len)?;
        out.pred.extend(logits.argmax(D::Minus1)?.to_vec1::<u32>()?);
        out.true_prob
            .extend(probs.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.to_vec1::<f32>()?);
        out.max_prob.extend(probs.max(D::Minus1)?.to_vec1::<f32>()?);
        start += len;
    }
    Ok(out)
}
