//! Attacks: one `Attack` trait, and the mechanics every attack shares written once here
//! (input gradient of the summed cross-entropy on logits, L∞ projection around the original
//! input, clipping to [0, 1], the seeded random start, batching over a data set).

mod fgsm;
mod pgd;

pub use fgsm::{Fgsm, FgsmParams};
pub use pgd::{Pgd, PgdParams};

use crate::data::Dataset;
use crate::error::Result;
use crate::nn::Model;
use candle_core::{DType, Tensor, Var, D};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::fmt;

/// An adversarial attack: a small value holding only its resolved hyperparameters.
pub trait Attack: fmt::Debug + fmt::Display {
    /// Short name, used as the key in evaluation results (`fgsm`, `pgd`).
    fn name(&self) -> &'static str;
    /// Every resolved hyperparameter, as recorded beside outputs.
    fn params(&self) -> serde_json::Value;
    /// Samples per batch when attacking a data set.
    fn batch_size(&self) -> usize;
    /// Perturb one batch: `x` `(N, C, H, W)` in [0, 1], `y` `(N,)` true labels. Returns the
    /// adversarial images, same shape, within the budget and in [0, 1].
    fn perturb_batch(&self, model: &Model, x: &Tensor, y: &Tensor) -> Result<Tensor>;
}

/// Attack every sample of `data`, batch by batch, with a progress bar. The result has the
/// same labels; its images are the adversarial ones.
pub fn perturb(attack: &dyn Attack, model: &Model, data: &Dataset) -> Result<Dataset> {
    model.check_input(data.images().dims())?;
    let n = data.len();
    let bs = attack.batch_size();
    let pb = crate::progress::bar(n.div_ceil(bs) as u64, attack.name().to_string());
    let mut parts = Vec::with_capacity(n.div_ceil(bs));
    let mut start = 0;
    while start < n {
        crate::interrupt::check()?;
        let len = bs.min(n - start);
        let batch = data.slice(start, len)?;
        parts.push(attack.perturb_batch(model, batch.images(), batch.labels())?);
        start += len;
        pb.inc(1);
    }
    pb.finish_and_clear();
    let images = if parts.is_empty() {
        data.images().clone()
    } else {
        Tensor::cat(&parts, 0)?
    };
    data.with_images(images, format!("{}({})", attack.name(), data.name()))
}

/// What one forward/backward pass at an iterate tells: the input gradient of the summed
/// cross-entropy, and which samples are misclassified there.
pub(crate) struct Probe {
    pub grad: Tensor,
    pub wrong: Vec<bool>,
}

/// Gradient of the summed cross-entropy on logits (never on probabilities) with respect to the
/// input only (the model's weights are not tracked). Summing keeps each sample's gradient
/// independent of the batch size.
pub(crate) fn probe(model: &Model, x: &Tensor, y: &Tensor) -> Result<Probe> {
    let var = Var::from_tensor(x)?;
    let logits = model.forward(var.as_tensor())?;
    let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let loss = log_probs.gather(&y.unsqueeze(1)?, 1)?.sum_all()?.neg()?;
    let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let wrong = pred.iter().zip(y.to_vec1::<u32>()?).map(|(p, t)| *p != t).collect();
    let grads = loss.backward()?;
    let grad = match grads.get(var.as_tensor()) {
        Some(g) => g.clone(),
        None => x.zeros_like()?,
    };
    Ok(Probe { grad, wrong })
}

/// For each sample, the first iterate that was misclassified: a success that a later step
/// must not undo. Samples never misclassified take the last iterate.
pub(crate) struct FirstSuccess {
    found: Vec<u8>,
    x: Option<Tensor>,
}

impl FirstSuccess {
    /// Nothing found yet, for a batch of `n` samples.
    pub fn new(n: usize) -> Self {
        Self {
            found: vec![0; n],
            x: None,
        }
    }

    fn mask(&self, bits: Vec<u8>, like: &Tensor) -> Result<Tensor> {
        let mut shape = vec![1usize; like.rank()];
        shape[0] = bits.len();
        Ok(Tensor::from_vec(bits, shape, like.device())?.broadcast_as(like.dims())?)
    }

    /// Record iterate `x`, whose samples are misclassified where `wrong`.
    pub fn update(&mut self, x: &Tensor, wrong: &[bool]) -> Result<()> {
        let newly: Vec<u8> = self
            .found
            .iter()
            .zip(wrong)
            .map(|(&f, &w)| u8::from(f == 0 && w))
            .collect();
        if !newly.contains(&1) {
            return Ok(());
        }
        self.x = Some(match &self.x {
            None => x.clone(),
            Some(best) => self.mask(newly.clone(), x)?.where_cond(x, best)?,
        });
        self.found.iter_mut().zip(&newly).for_each(|(f, n)| *f |= n);
        Ok(())
    }

    /// The first misclassified iterate where there was one, else `last`.
    pub fn finish(self, last: Tensor) -> Result<Tensor> {
        match &self.x {
            None => Ok(last),
            Some(best) => Ok(self.mask(self.found.clone(), &last)?.where_cond(best, &last)?),
        }
    }
}

/// One L∞ step of size `alpha` along `sign(grad)` (with `sign(0) = 0`) from `x`, projected
/// onto the `eps`-ball around the original input `x0`, then clipped to [0, 1]:
/// `clamp(x0 + clamp(x + α·sign(g) − x0, −ε, ε), 0, 1)`. One fused pass on the CPU.
pub(crate) fn linf_step(x: &Tensor, grad: &Tensor, x0: &Tensor, alpha: f64, eps: f64) -> Result<Tensor> {
    Ok(crate::nn::ops::linf_step(x, grad, x0, alpha, eps)?)
}

/// FNV-1a over the bits of one sample, so the random start of a sample depends on the seed
/// and on the sample itself, not on its position in the batch: attacking a batch and each
/// sample alone give the same result.
fn sample_hash(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf29ce484222325u64, |h, v| {
        (h ^ v.to_bits() as u64).wrapping_mul(0x100000001b3)
    })
}

/// Uniform noise in [−ε, ε] per element, seeded per sample (see [`sample_hash`]).
pub(crate) fn uniform_noise(x: &Tensor, eps: f64, seed: u64) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let per = x.elem_count() / dims[0].max(1);
    let flat = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let mut noise = Vec::with_capacity(flat.len());
    let eps = eps as f32;
    for sample in flat.chunks(per.max(1)) {
        let mut rng = StdRng::seed_from_u64(seed ^ sample_hash(sample));
        noise.extend((0..sample.len()).map(|_| rng.random_range(-eps..=eps)));
    }
    Ok(Tensor::from_vec(noise, dims, x.device())?)
}

/// Check shared by every attack's parameters: a finite ε ≥ 0.
pub(crate) fn check_eps(eps: f64) -> std::result::Result<f64, crate::ParamError> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(eps)
    } else {
        Err(crate::ParamError::EpsNegative(eps))
    }
}
