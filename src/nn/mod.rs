//! Models (layer 3, above `kernels`, `optim` and `data`): an MLP, a small CNN, a small resnet
//! and the LWTA variants, optionally with parametric noise injection and the IBP prior, whose
//! parameters are named and laid out exactly as the equivalent PyTorch module, so weights move
//! between advlab and PyTorch. The input pipeline (`input.rs`) runs inside the forward pass;
//! `infer.rs` predicts in batches.
//!
//! Stochastic models draw their noise from a seeded generator held in the model: each
//! forward pass takes the next key from it, so the same seed gives the same numbers.

mod arch;
mod checkpoint;
mod ctx;
pub mod ibp;
mod infer;
mod input;
mod layer;
pub mod lwta;
mod net;
pub mod noise;
mod random;

pub use arch::{Arch, CnnParams, Lwta, Record, ResnetParams, WideResnetParams, TRADES_DROP};
pub use checkpoint::{load_model, load_weights, save_model};
pub use ibp::{IbpPrior, IbpUsage};
pub use infer::{accuracy, predict, predictions, Predictions, EVAL_BATCH};
pub use input::{AsAny, Pipeline, Transform};
pub use layer::{
    preact_block, Gate, Input, Layer, NoiseSite, WeightInit, Weighted, ALPHA_INIT, BN_EPS, BN_MOMENTUM, LEAKY_SLOPE,
};

use crate::error::{Error, Result};
use candle_core::{Device, Tensor, Var};
use ctx::Ctx;
use layer::Init;
use net::Net;
use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};
use std::fmt;
use std::sync::{Arc, Mutex};

/// The generator of a model's forward-pass noise for a seed: a stream apart from the one
/// that initialises the weights.
fn noise_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ 0x6E6F_6973_655F_7273)
}

/// The substream of a model's key that its training-mode copy ([`Model::in_training_mode`])
/// draws from.
const CRAFTING_STREAM: u64 = 0x0063_7261_6674;

/// Variables by their PyTorch names.
type Named = Vec<(String, Var)>;

struct Inner {
    arch: Arch,
    params: Named,
    /// Batch norm's running statistics: saved and loaded with the parameters, moved by training
    /// passes, never by the optimizer.
    buffers: Named,
    net: Net,
    frozen: Net,
    device: Device,
    /// The keys of stochastic forward passes (unused by deterministic models).
    rng: Mutex<StdRng>,
    /// Input transforms applied, in order, before the network (`defended(model, [...])`).
    defence: Option<Pipeline>,
    /// Its untracked forward pass runs as in training (batch statistics, dropout, relaxed
    /// LWTA): [`Model::in_training_mode`], for recipes that craft in training mode.
    train_mode: bool,
}

/// A classifier that outputs logits. Cloning a `Model` shares its weights (a handle);
/// [`Model::deep_clone`] makes an independent copy.
#[derive(Clone)]
pub struct Model(Arc<Inner>);

impl Model {
    /// A new model with PyTorch's default initialisation (uniform in ±1/√fan_in for weights
    /// and biases; the resnet's convs He's normal; noise scales 0.25), drawn from
    /// `seed`, which also seeds the noise of a stochastic model.
    pub fn new(arch: Arch, device: &Device, seed: u64) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let tensors = arch
            .param_specs()?
            .into_iter()
            .map(|spec| {
                let n: usize = spec.shape.iter().product();
                let data: Vec<f32> = match spec.init {
                    Init::Uniform { fan_in } => {
                        let bound = 1.0 / (fan_in as f32).sqrt();
                        (0..n).map(|_| rng.random_range(-bound..bound)).collect()
                    }
                    Init::KaimingNormal { fan } => {
                        let std = (2.0 / fan as f32).sqrt();
                        (0..n)
                            .map(|_| std * rng.sample::<f32, _>(rand_distr::StandardNormal))
                            .collect()
                    }
                    Init::Zeros => vec![0.0; n],
                    Init::Const(v) => vec![v; n],
                };
                Ok((spec.name, Tensor::from_vec(data, spec.shape, device)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let model = Self::from_tensors(arch, tensors, device)?;
        model.reseed(seed);
        Ok(model)
    }

    /// A model with the given parameter values (names and shapes must match `arch`); a
    /// stochastic one draws its noise from seed 0 until [`Model::reseed`].
    pub fn from_tensors(arch: Arch, tensors: Vec<(String, Tensor)>, device: &Device) -> Result<Self> {
        let specs = arch.param_specs()?;
        let mut params = Vec::with_capacity(specs.len());
        let mut buffers = Vec::new();
        for spec in &specs {
            let (name, shape) = (&spec.name, &spec.shape);
            let t = tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| Error::Invalid(format!("missing parameter {name} for {arch}")))?;
            if t.dims() != shape.as_slice() {
                return Err(Error::Shape(format!(
                    "parameter {name} of {arch} must have shape {shape:?}, got {:?}",
                    t.dims()
                )));
            }
            let t = t.to_dtype(candle_core::DType::F32)?.to_device(device)?;
            let v = (name.clone(), Var::from_tensor(&t)?);
            match spec.buffer {
                true => buffers.push(v),
                false => params.push(v),
            }
        }
        Self::assemble(arch, (params, buffers), device, noise_rng(0), None, false)
    }

    /// The model over existing variables (shared, not copied).
    fn assemble(
        arch: Arch,
        (params, buffers): (Named, Named),
        device: &Device,
        rng: StdRng,
        defence: Option<Pipeline>,
        train_mode: bool,
    ) -> Result<Self> {
        let find = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_tensor().clone())
        };
        let buffer = |name: &str| buffers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let net = Net::build(
            &arch,
            &net::Get {
                param: &find,
                buffer: &buffer,
            },
        )?;
        let frozen = Net::build(
            &arch,
            &net::Get {
                param: &|n| find(n).map(|t| t.detach()),
                buffer: &buffer,
            },
        )?;
        Ok(Model(Arc::new(Inner {
            net,
            frozen,
            arch,
            params,
            buffers,
            device: device.clone(),
            rng: Mutex::new(rng),
            defence,
            train_mode,
        })))
    }

    /// Restart the noise of a stochastic model from `seed` (a new model starts from its
    /// initialisation seed): the same seed gives the same forward passes again.
    pub fn reseed(&self, seed: u64) {
        *self.rng() = noise_rng(seed);
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, StdRng> {
        // a panic while the lock was held cannot leave a generator half-updated
        self.0.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The context of one forward pass: a fresh key from the model's generator when the
    /// model is stochastic.
    fn ctx(&self, train: bool) -> Ctx {
        let arch = &self.0.arch;
        let draws = if train {
            arch.draws_in_training()
        } else {
            arch.is_stochastic()
        };
        let key = if draws { self.rng().next_u64() } else { 0 };
        Ctx::new(key, train)
    }

    /// The same weights (shared, as with assignment) predicting from `passes` stochastic
    /// passes; only for LWTA models.
    pub fn with_passes(&self, passes: usize) -> Result<Self> {
        let arch = self.0.arch.clone().with_passes(passes)?;
        self.sharing_in(arch, self.own_defence()?, self.0.train_mode)
    }

    /// A pipeline of the same input transforms (each randomised one from its seed again).
    fn own_defence(&self) -> Result<Option<Pipeline>> {
        self.0
            .defence
            .as_ref()
            .map(|p| Pipeline::new(p.transforms()))
            .transpose()
    }

    /// The parameters and buffers, shared.
    fn shared_state(&self) -> (Named, Named) {
        (self.0.params.clone(), self.0.buffers.clone())
    }

    /// The noise scales α of parametric noise injection, by parameter name (empty for other
    /// models).
    pub fn noise_scales(&self) -> Result<Vec<(String, f32)>> {
        self.0
            .params
            .iter()
            .filter(|(n, _)| n.ends_with(".alpha_w") || n.ends_with(".alpha_a"))
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().flatten_all()?.to_vec1::<f32>()?[0])))
            .collect()
    }

    /// A model on the same weights (training one trains the other) whose input first goes
    /// through `defence`.
    fn sharing(&self, defence: Option<Pipeline>) -> Result<Self> {
        self.sharing_in(self.0.arch.clone(), defence, self.0.train_mode)
    }

    /// A model of `arch` on the same weights and buffers (and a copy of the noise stream)
    /// behind `defence`, its untracked pass in training mode or not.
    fn sharing_in(&self, arch: Arch, defence: Option<Pipeline>, train_mode: bool) -> Result<Self> {
        let rng = self.rng().clone();
        Self::assemble(arch, self.shared_state(), &self.0.device, rng, defence, train_mode)
    }

    /// This model behind input transforms, applied in the given order before any transforms
    /// it already has, on the same weights (`fit` on it trains this network). Every randomised
    /// transform starts its random stream from its seed.
    pub fn defended(&self, transforms: Vec<Arc<dyn Transform>>) -> Result<Self> {
        let mut all = transforms;
        all.extend(self.transforms());
        let pipeline = Pipeline::new(all)?;
        self.sharing(Some(pipeline))
    }

    /// The same model (weights, buffers and input transforms shared) whose untracked forward
    /// pass, the one attacks use, runs as in training: batch norm on the batch's statistics
    /// (moving the running ones, as PyTorch's `model.train()`), dropout and relaxed LWTA
    /// winners drawn. What `fit`'s `craft_mode: "train"` crafts with.
    /// Its random draws (dropout masks, LWTA winners) come from a stream of their own, derived
    /// from the model's, so that crafting does not repeat the masks of the training passes.
    pub fn in_training_mode(&self) -> Result<Self> {
        let m = self.sharing_in(self.0.arch.clone(), self.own_defence()?, true)?;
        let key = self.rng().clone().next_u64();
        *m.rng() = StdRng::seed_from_u64(random::substream(key, CRAFTING_STREAM));
        Ok(m)
    }

    /// Whether the untracked forward pass runs as in training ([`Model::in_training_mode`]).
    pub fn is_in_training_mode(&self) -> bool {
        self.0.train_mode
    }

    /// The network alone, without input transforms, on the same weights.
    pub fn network(&self) -> Result<Self> {
        self.sharing(None)
    }

    /// The same network with every non-differentiable input transform switched to BPDA (`on`)
    /// or to its true, zero gradient (`!on`); `None` when the model has no such transform.
    pub fn with_bpda(&self, on: bool) -> Result<Option<Model>> {
        let ts = self.transforms();
        if !ts.iter().any(|t| t.bpda().is_some()) {
            return Ok(None);
        }
        let switched: Vec<Arc<dyn Transform>> = ts
            .iter()
            .map(|t| t.with_bpda(on).unwrap_or_else(|| t.clone()))
            .collect();
        Ok(Some(self.network()?.defended(switched)?))
    }

    /// The input transforms in front of the network, in the order they run (empty when none).
    pub fn transforms(&self) -> Vec<Arc<dyn Transform>> {
        self.0.defence.as_ref().map(|p| p.transforms()).unwrap_or_default()
    }

    /// The pipeline of input transforms, if any (`defended(model, [...])` in scripts; the
    /// training recipes are `train::TrainingPlan`).
    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.0.defence.as_ref()
    }

    /// An independent copy with the same weights.
    pub fn deep_clone(&self) -> Result<Self> {
        let tensors = self
            .named_state()
            .map(|(n, t)| Ok((n.to_string(), t.copy()?)))
            .collect::<Result<Vec<_>>>()?;
        let copy = Self::from_tensors(self.0.arch.clone(), tensors, &self.0.device)?;
        *copy.rng() = self.rng().clone();
        match &self.0.defence {
            None => Ok(copy),
            Some(p) => copy.defended(p.transforms()),
        }
    }

    /// The architecture.
    pub fn arch(&self) -> &Arch {
        &self.0.arch
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        &self.0.device
    }

    /// Trainable variables, in `nn.Sequential` order.
    pub fn vars(&self) -> Vec<Var> {
        self.0.params.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Named parameters, in `nn.Sequential` order.
    pub fn named_params(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.0.params.iter().map(|(n, v)| (n.as_str(), v.as_tensor()))
    }

    /// Named buffers (batch norm's `running_mean` and `running_var`).
    pub fn named_buffers(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.0.buffers.iter().map(|(n, v)| (n.as_str(), v.as_tensor()))
    }

    /// Everything a checkpoint holds: the parameters, then the buffers.
    pub fn named_state(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.named_params().chain(self.named_buffers())
    }

    /// The variables of [`Model::named_state`], in its order: what a snapshot of the model
    /// copies and a restore sets.
    pub fn state_vars(&self) -> Vec<Var> {
        self.0
            .params
            .iter()
            .chain(&self.0.buffers)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Total number of scalar parameters.
    pub fn param_count(&self) -> usize {
        self.0.params.iter().map(|(_, v)| v.as_tensor().elem_count()).sum()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.0.arch.classes()
    }

    /// Check that a batch of images `(N, C, H, W)` fits the model (and its input transforms).
    pub fn check_input(&self, dims: &[usize]) -> Result<()> {
        if let Some(p) = &self.0.defence {
            p.check_input(dims)?;
        }
        let per_sample: usize = dims.iter().skip(1).product();
        let shape = dims.iter().skip(1).map(|d| d.to_string()).collect::<Vec<_>>().join("×");
        match self.0.arch.input() {
            Input::Features(f) if f != per_sample => Err(Error::Shape(format!(
                "{} takes {f} input features per sample, but the images are {shape} = {per_sample}: \
                 make the first layer {per_sample}",
                self.0.arch
            ))),
            Input::Image(c, h, w) if dims.len() != 4 || dims[1..] != [c, h, w] => Err(Error::Shape(format!(
                "{} takes {c}×{h}×{w} images, but the images are {shape}",
                self.0.arch
            ))),
            _ => Ok(()),
        }
    }

    /// Check that a data set fits the model: its images (as [`Model::check_input`]) and its
    /// labels, each below the number of the model's outputs. Every place where a model meets a
    /// data set (inference, accuracy, attacks) checks this first.
    pub fn check_data(&self, data: &crate::data::Dataset) -> Result<()> {
        self.check_input(data.images().dims())?;
        if data.is_empty() {
            return Ok(());
        }
        let max = data.labels().max(0)?.to_scalar::<u32>()? as usize;
        if max >= self.classes() {
            return Err(Error::Invalid(format!(
                "{} has label {max}, but {} has {} outputs (classes 0..={}); use a model with {} classes or other labels",
                data.name(),
                self.0.arch,
                self.classes(),
                self.classes() - 1,
                max + 1
            )));
        }
        Ok(())
    }

    /// Logits with gradient tracking through the weights (for training).
    pub fn forward_train(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x.dims())?;
        let x = self.defend(x)?;
        Ok(self.0.net.forward(&x, &self.ctx(true))?)
    }

    /// KL(q ‖ p) of an LWTA model's IBP prior over its connections, with gradients (none for
    /// a model without the prior): the ELBO's term that training adds, divided by the number
    /// of training samples, to the cross-entropy.
    pub fn ibp_kl(&self) -> Result<Option<Tensor>> {
        if !self.0.arch.has_ibp() {
            return Ok(None);
        }
        let key = self.rng().next_u64();
        Ok(self.0.net.ibp_kl(key)?)
    }

    /// How much of each LWTA layer with an IBP prior the posterior keeps.
    pub fn ibp_usage(&self) -> Result<Vec<IbpUsage>> {
        Ok(self.0.frozen.ibp_usage()?)
    }

    /// Logits without tracking the weights (evaluation and attacks: gradients flow only to
    /// an input that is itself a variable).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x.dims())?;
        let x = self.defend(x)?;
        let passes = self.0.arch.passes();
        let train = self.0.train_mode;
        if passes == 1 {
            return Ok(self.0.frozen.forward(&x, &self.ctx(train))?);
        }
        // the log of the mean softmax over the passes: logits whose softmax is that mean
        let logp = (0..passes)
            .map(|_| candle_nn::ops::log_softmax(&self.0.frozen.forward(&x, &self.ctx(train))?, 1))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::stack(&logp, 0)?
            .log_sum_exp(0)?
            .affine(1.0, -(passes as f64).ln())?)
    }

    /// The input after the transforms (the input itself when there are none).
    fn defend(&self, x: &Tensor) -> Result<Tensor> {
        match &self.0.defence {
            None => Ok(x.clone()),
            Some(p) => p.apply(x),
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Model {} with {} parameters on {}\n  = {}",
            self.0.arch,
            self.param_count(),
            crate::device::name(&self.0.device),
            self.0.arch.torch_module()
        )?;
        if let Some(p) = &self.0.defence {
            write!(f, "\n  defended: input → {p} → network")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.defence {
            None => write!(f, "Model({})", self.0.arch),
            Some(p) => write!(f, "Model({p} → {})", self.0.arch),
        }
    }
}
