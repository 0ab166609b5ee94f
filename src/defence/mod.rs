//! Input-time defences (seed 003): transforms applied to every input before the network, so
//! that `defended(model, [..])` is itself a model that training, every attack and every
//! evaluation accept. Attacks see the transforms because they run inside `Model::forward`.
//!
//! Differentiable transforms (PCA projection, additive noise, down- and up-sampling,
//! autoencoders) pass gradients as they are; randomised ones draw fresh noise at every forward
//! pass from a generator seeded once per model, so a run is reproducible. The non-differentiable
//! ones (bit-depth reduction, median smoothing) have a zero or undefined gradient; with BPDA
//! (the default) their backward pass is the identity: `y = T(x) + (x − detach(x))`, which is
//! `T(x)` in the forward pass and `x` in the backward pass.

mod autoencoder;
mod bit_depth;
mod downsample;
mod median;
mod noise;
mod pca;

pub use crate::nn::{Pipeline, Transform};
pub use autoencoder::{fit_transform, AeEpoch, AeFitParams, AeFitValid, Autoencoder, AutoencoderKind};
pub use bit_depth::BitDepth;
pub use downsample::{resample_matrix, Downsample};
pub use median::{median_filter, MedianSmoothing};
pub use noise::{GaussianNoise, UniformNoise};
pub use pca::{PcaChoice, PcaProjection};

use crate::data::Dataset;
use crate::error::{Error, Result};
use candle_core::Tensor;
use rand::{rngs::StdRng, SeedableRng};

/// Every image of `data` through `transform` once (its random stream starts at its seed), in
/// batches; same labels.
pub fn apply_to(transform: &dyn Transform, data: &Dataset) -> Result<Dataset> {
    transform.check_input(data.images().dims())?;
    let mut rng = StdRng::seed_from_u64(transform.seed().unwrap_or(0));
    let n = data.len();
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        crate::interrupt::check()?;
        let len = crate::nn::EVAL_BATCH.min(n - start);
        parts.push(
            transform
                .apply(&data.images().narrow(0, start, len)?, &mut rng)?
                .detach(),
        );
        start += len;
    }
    let images = if parts.is_empty() {
        data.images().clone()
    } else {
        Tensor::cat(&parts, 0)?
    };
    data.with_images(images, format!("{}({})", transform.name(), data.name()))
}

/// The output of a non-differentiable transform: `values` (computed without a graph, in the
/// shape of `x`) on `x`'s device and dtype in the forward pass; with `bpda`, the identity in
/// the backward pass (`value + (x − detach(x))`, exactly `value` in value), else no gradient
/// at all.
pub(crate) fn through(x: &Tensor, values: Vec<f32>, bpda: bool) -> Result<Tensor> {
    let value = Tensor::from_vec(values, x.dims(), x.device())?.to_dtype(x.dtype())?;
    if bpda && x.track_op() {
        Ok((value + (x - x.detach())?)?)
    } else {
        Ok(value)
    }
}

/// The backward pass of a non-differentiable transform, as its description names it.
pub(crate) fn backward_name(bpda: bool) -> &'static str {
    if bpda {
        "identity (BPDA)"
    } else {
        "none (zero gradient)"
    }
}

/// The [`Transform::bpda`] and [`Transform::with_bpda`] methods of a non-differentiable
/// transform: a `Clone` type whose `bpda: bool` field says whether [`through`] passes the
/// gradient.
macro_rules! bpda_switch {
    () => {
        fn bpda(&self) -> Option<bool> {
            Some(self.bpda)
        }

        fn with_bpda(&self, on: bool) -> Option<std::sync::Arc<dyn $crate::nn::Transform>> {
            Some(std::sync::Arc::new(Self {
                bpda: on,
                ..self.clone()
            }))
        }
    };
}
use bpda_switch;

/// The `(N, C, H, W)` images of a batch as f32 values on the CPU.
pub(crate) fn cpu_values(x: &Tensor) -> Result<Vec<f32>> {
    Ok(x.detach()
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?)
}

/// A check that a batch is `(N, C, H, W)`: `(C, H, W)`.
pub(crate) fn image_dims(name: &str, dims: &[usize]) -> Result<(usize, usize, usize)> {
    match dims {
        [_, c, h, w] => Ok((*c, *h, *w)),
        _ => Err(Error::Shape(format!(
            "{name} takes (N, C, H, W) images, got shape {dims:?}"
        ))),
    }
}
