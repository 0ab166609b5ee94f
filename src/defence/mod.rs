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

pub use autoencoder::{AeEpoch, AeFitParams, AeFitValid, Autoencoder, AutoencoderKind};
pub use bit_depth::BitDepth;
pub use downsample::{resample_matrix, Downsample};
pub use median::{median_filter, MedianSmoothing};
pub use noise::{GaussianNoise, UniformNoise};
pub use pca::{PcaChoice, PcaProjection};

use crate::data::Dataset;
use crate::error::{Error, Result};
use candle_core::Tensor;
use rand::{rngs::StdRng, SeedableRng};
use std::fmt;
use std::sync::{Arc, Mutex};

/// An input transform: `(N, C, H, W)` images in, images of the same shape out.
pub trait Transform: fmt::Display + fmt::Debug + Send + Sync {
    /// Short name, as the script function that builds it (`gaussian_noise`, `bit_depth`).
    fn name(&self) -> &'static str;
    /// Every resolved parameter, as recorded beside outputs.
    fn params(&self) -> serde_json::Value;
    /// Transform a batch. `rng` is this transform's own random stream in the model it sits
    /// in (deterministic transforms ignore it).
    fn apply(&self, x: &Tensor, rng: &mut StdRng) -> Result<Tensor>;
    /// The seed of a randomised transform (`None` when it draws nothing).
    fn seed(&self) -> Option<u64> {
        None
    }
    /// Check that a batch of this shape fits (e.g. PCA's feature count).
    fn check_input(&self, _dims: &[usize]) -> Result<()> {
        Ok(())
    }
    /// For a non-differentiable transform, whether its backward pass is the identity (BPDA);
    /// `None` for a differentiable one.
    fn bpda(&self) -> Option<bool> {
        None
    }
    /// The same transform with BPDA on or off (`None` for a differentiable one).
    fn with_bpda(&self, _on: bool) -> Option<Arc<dyn Transform>> {
        None
    }
    /// Train a transform that learns (the autoencoders) on `data`.
    fn fit(&self, _data: &Dataset, _p: &AeFitValid) -> Result<Vec<AeEpoch>> {
        Err(Error::Invalid(format!(
            "{} has nothing to train: only denoising_autoencoder and conv_autoencoder are fitted (pca_projection takes its data as an option)",
            self.name()
        )))
    }
}

/// One transform of a pipeline, with its own random stream.
struct Stage {
    transform: Arc<dyn Transform>,
    rng: Mutex<StdRng>,
}

/// The transforms in front of a defended model, applied in order.
pub struct Pipeline {
    stages: Vec<Stage>,
}

impl Pipeline {
    /// A pipeline of `transforms`, each randomised one starting its stream from its seed.
    pub fn new(transforms: Vec<Arc<dyn Transform>>) -> Result<Self> {
        if transforms.is_empty() {
            return Err(Error::Invalid(
                "defended: give at least one transform, e.g. defended(model, [gaussian_noise(#{ std: 0.1 })])".into(),
            ));
        }
        Ok(Self {
            stages: transforms
                .into_iter()
                .map(|t| Stage {
                    rng: Mutex::new(StdRng::seed_from_u64(t.seed().unwrap_or(0))),
                    transform: t,
                })
                .collect(),
        })
    }

    /// The transforms, in the order they run.
    pub fn transforms(&self) -> Vec<Arc<dyn Transform>> {
        self.stages.iter().map(|s| s.transform.clone()).collect()
    }

    /// Run every transform on a batch.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for s in &self.stages {
            // a poisoned lock only means another call panicked mid-draw: the stream is still valid
            let mut rng = s.rng.lock().unwrap_or_else(|e| e.into_inner());
            x = s.transform.apply(&x, &mut rng)?;
        }
        Ok(x)
    }

    /// Check the input shape against every transform.
    pub fn check_input(&self, dims: &[usize]) -> Result<()> {
        self.stages.iter().try_for_each(|s| s.transform.check_input(dims))
    }

    /// Whether some transform draws random numbers at each pass.
    pub fn is_random(&self) -> bool {
        self.stages.iter().any(|s| s.transform.seed().is_some())
    }

    /// The parameters of every transform, in order.
    pub fn params(&self) -> serde_json::Value {
        serde_json::Value::Array(self.stages.iter().map(|s| s.transform.params()).collect())
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.stages.iter().map(|s| s.transform.to_string()).collect();
        write!(f, "{}", names.join(" → "))
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pipeline({self})")
    }
}

/// The transforms of `model` with every non-differentiable one switched to BPDA (`on`) or to
/// its true, zero gradient (`!on`); `None` when the model has no such transform.
pub fn with_bpda(model: &crate::nn::Model, on: bool) -> Result<Option<crate::nn::Model>> {
    let ts = model.transforms();
    if !ts.iter().any(|t| t.bpda().is_some()) {
        return Ok(None);
    }
    let switched: Vec<Arc<dyn Transform>> = ts
        .iter()
        .map(|t| t.with_bpda(on).unwrap_or_else(|| t.clone()))
        .collect();
    Ok(Some(model.network()?.defended(switched)?))
}

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
        let len = 1000.min(n - start);
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

        fn with_bpda(&self, on: bool) -> Option<std::sync::Arc<dyn $crate::defence::Transform>> {
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
