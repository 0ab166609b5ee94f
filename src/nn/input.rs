//! The input pipeline of a model: the [`Transform`] trait (images in, images of the same shape
//! out) and the [`Pipeline`] of transforms that runs inside `Model::forward`, so that attacks,
//! training and evaluation see the transforms. `defence/` implements the transforms.

use crate::error::{Error, Result};
use candle_core::Tensor;
use rand::{rngs::StdRng, SeedableRng};
use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

/// The concrete value behind a `dyn Transform`, for the few callers that need one kind (an
/// autoencoder's training).
pub trait AsAny {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An input transform: `(N, C, H, W)` images in, images of the same shape out.
pub trait Transform: AsAny + fmt::Display + fmt::Debug + Send + Sync {
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
