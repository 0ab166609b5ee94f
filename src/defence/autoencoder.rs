//! Denoising autoencoders (seed 003's "auto-encoder" and "convolutional auto-encoder"
//! models), trained from a script to reconstruct clean images from noisy ones (MSE), then used
//! as an input transform: the image is replaced by its reconstruction. Differentiable, so an
//! attack differentiates through the autoencoder too.
//!
//! - dense: `Flatten, Linear(D, h₁), ReLU, …, Linear(h_k, …), ReLU, …, Linear(h₁, D)` (the
//!   decoder mirrors the encoder), built on an advlab MLP;
//! - convolutional: per level `Conv2d(c, cᵢ, 3, p=1), ReLU, MaxPool2d(2)`, then per level
//!   `Upsample(2, nearest), Conv2d(cᵢ, cᵢ₋₁, 3, p=1), ReLU` (no ReLU on the last).
//!
//! The output is linear in training and clipped to [0, 1] when the autoencoder is used.

use super::{image_dims, Transform};
use crate::data::Dataset;
use crate::error::{Error, ParamError, Result};
use crate::nn::{Arch, Layer, Model, Record, Weighted};
use crate::optim::{check_loop, Opt};
use candle_core::{Device, Tensor, Var};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use serde::Serialize;
use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

/// Which autoencoder.
#[derive(Clone, Debug, PartialEq)]
pub enum AutoencoderKind {
    /// Hidden layer sizes of the encoder; the decoder mirrors them.
    Dense { hidden: Vec<usize> },
    /// Channels of each encoder level; each level halves the side.
    Conv { channels: Vec<usize> },
}

impl AutoencoderKind {
    /// The dense autoencoder's default encoder: one hidden layer of 256 units.
    pub const DEFAULT_HIDDEN: &'static [usize] = &[256];
    /// The convolutional one's default levels: 16 then 8 channels.
    pub const DEFAULT_CHANNELS: &'static [usize] = &[16, 8];
    /// The default images: MNIST's 1×28×28.
    pub const DEFAULT_INPUT: [usize; 3] = [1, 28, 28];
}

/// Unchecked training parameters of an autoencoder.
#[derive(Clone, Debug, PartialEq)]
pub struct AeFitParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Standard deviation of the Gaussian noise added to the inputs (0: a plain autoencoder).
    pub noise_std: f64,
    pub seed: u64,
}

impl Default for AeFitParams {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 128,
            lr: 1e-3,
            noise_std: 0.1,
            seed: 0,
        }
    }
}

/// Checked training parameters of an autoencoder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AeFitValid {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub noise_std: f64,
    pub seed: u64,
}

impl AeFitParams {
    /// Check every rule; the first broken one is the error.
    pub fn check(&self) -> std::result::Result<AeFitValid, ParamError> {
        check_loop(self.epochs, self.batch_size, self.lr)?;
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            return Err(ParamError::AutoencoderNoise(self.noise_std));
        }
        Ok(AeFitValid {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            noise_std: self.noise_std,
            seed: self.seed,
        })
    }
}

/// What one training epoch did.
#[derive(Clone, Debug, Serialize)]
pub struct AeEpoch {
    pub epoch: usize,
    /// Mean squared reconstruction error of the clean images from the noisy ones.
    pub loss: f64,
    pub seconds: f64,
}

/// What the last training did, for printing and provenance.
#[derive(Clone, Debug, Serialize)]
struct Trained {
    data: String,
    samples: usize,
    params: AeFitValid,
    final_loss: f64,
}

/// A denoising autoencoder used as an input transform.
pub struct Autoencoder {
    kind: AutoencoderKind,
    /// `(C, H, W)` of the images.
    input: (usize, usize, usize),
    seed: u64,
    /// The network: an MLP, or a sequential network of convolutions.
    net: Model,
    trained: Mutex<Option<Trained>>,
}

impl Autoencoder {
    /// A new autoencoder for `(C, H, W)` images, weights drawn from `seed`.
    pub fn new(kind: AutoencoderKind, input: &[usize], seed: u64, device: &Device) -> Result<Self> {
        let (c, h, w) = match input {
            [c, h, w] if *c > 0 && *h > 0 && *w > 0 => (*c, *h, *w),
            _ => return Err(ParamError::AutoencoderInput(input.to_vec()).into()),
        };
        let arch = match &kind {
            AutoencoderKind::Dense { hidden } => {
                if hidden.is_empty() || hidden.contains(&0) {
                    return Err(ParamError::AutoencoderHidden(hidden.clone()).into());
                }
                let d = c * h * w;
                let mut layers = vec![d];
                layers.extend(hidden);
                layers.extend(hidden.iter().rev().skip(1));
                layers.push(d);
                Arch::mlp(layers)?
            }
            AutoencoderKind::Conv { channels } => {
                if channels.is_empty() || channels.contains(&0) {
                    return Err(ParamError::AutoencoderHidden(channels.clone()).into());
                }
                let divisor = 1usize << channels.len();
                if h % divisor != 0 || w % divisor != 0 {
                    return Err(ParamError::AutoencoderPooling {
                        levels: channels.len(),
                        divisor,
                        height: h,
                        width: w,
                    }
                    .into());
                }
                // PyTorch's default init, drawn layer by layer: encoder, then decoder
                let conv = |out| Layer::Conv2d {
                    out,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                    opts: Weighted::default(),
                };
                let mut layers = Vec::new();
                for &ch in channels {
                    layers.extend([conv(ch), Layer::Relu, Layer::MaxPool { size: 2 }]);
                }
                for k in (0..channels.len()).rev() {
                    layers.extend([
                        Layer::Upsample { factor: 2 },
                        conv(if k == 0 { c } else { channels[k - 1] }),
                    ]);
                    if k > 0 {
                        layers.push(Layer::Relu);
                    }
                }
                Arch::network(Record::Sequential {
                    input: vec![c, h, w],
                    layers,
                    passes: 1,
                })?
            }
        };
        Ok(Self {
            kind,
            input: (c, h, w),
            seed,
            net: Model::new(arch, device, seed)?,
            trained: Mutex::new(None),
        })
    }

    /// Trainable variables.
    fn vars(&self) -> Vec<Var> {
        self.net.vars()
    }

    /// Total number of scalar parameters.
    pub fn param_count(&self) -> usize {
        self.vars().iter().map(|v| v.as_tensor().elem_count()).sum()
    }

    /// Whether `fit` has run.
    pub fn is_trained(&self) -> bool {
        self.trained.lock().map(|t| t.is_some()).unwrap_or(false)
    }

    /// The reconstruction of a batch, tracking the weights (`train`) or not.
    fn reconstruct(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let m = &self.net;
        let out = if train { m.forward_train(x)? } else { m.forward(x)? }.reshape(x.dims())?;
        // a linear output, clipped to [0, 1] only when used: behind a sigmoid, the MSE's
        // gradient vanishes once the output saturates at the black background, and the
        // convolutional one settled on a near-black image for 5 of 6 seeds (measured)
        if train {
            Ok(out)
        } else {
            Ok(out.clamp(0f32, 1f32)?)
        }
    }

    fn check_shape(&self, dims: &[usize]) -> Result<()> {
        let (c, h, w) = image_dims(self.name(), dims)?;
        if (c, h, w) != self.input {
            let (ec, eh, ew) = self.input;
            return Err(Error::Shape(format!(
                "{} was built for {ec}×{eh}×{ew} images, but the images are {c}×{h}×{w}",
                self.name()
            )));
        }
        Ok(())
    }
}

impl Transform for Autoencoder {
    fn name(&self) -> &'static str {
        match self.kind {
            AutoencoderKind::Dense { .. } => "denoising_autoencoder",
            AutoencoderKind::Conv { .. } => "conv_autoencoder",
        }
    }

    fn params(&self) -> serde_json::Value {
        let (c, h, w) = self.input;
        let layers = match &self.kind {
            AutoencoderKind::Dense { hidden } => serde_json::json!({ "hidden": hidden }),
            AutoencoderKind::Conv { channels } => serde_json::json!({ "channels": channels }),
        };
        let trained = self.trained.lock().ok().and_then(|t| t.clone());
        serde_json::json!({
            "transform": self.name(), "layers": layers, "input": [c, h, w], "seed": self.seed,
            "parameters": self.param_count(), "trained": trained,
        })
    }

    fn check_input(&self, dims: &[usize]) -> Result<()> {
        self.check_shape(dims)
    }

    fn apply(&self, x: &Tensor, _rng: &mut StdRng) -> Result<Tensor> {
        self.check_shape(x.dims())?;
        if !self.is_trained() {
            return Err(Error::Invalid(format!(
                "{} has not been trained: call .fit(data, #{{ epochs, noise_std }}) before using it",
                self.name()
            )));
        }
        self.reconstruct(x, false)
    }
}

impl Autoencoder {
    /// Train in place to reconstruct the clean images of `data` from noisy copies
    /// (`clamp(x + N(0, noise_std²), 0, 1)`), with Adam on the mean squared error. The sample
    /// order of epoch `e` and the noise of each batch are drawn from `seed`.
    pub fn fit(&self, data: &Dataset, p: &AeFitValid) -> Result<Vec<AeEpoch>> {
        self.check_shape(data.images().dims())?;
        if data.is_empty() {
            return Err(Error::Invalid(format!("{}.fit: the data set is empty", self.name())));
        }
        let n = data.len();
        let device = data.device().clone();
        let mut opt = Opt::adam(self.vars(), p.lr, &device)?;
        let mut history = Vec::with_capacity(p.epochs);
        for epoch in 0..p.epochs {
            let start = Instant::now();
            let mut rng = StdRng::seed_from_u64(p.seed.wrapping_add(epoch as u64));
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.shuffle(&mut rng);
            let pb = crate::progress::bar(
                n.div_ceil(p.batch_size) as u64,
                format!("{} epoch {}/{}", self.name(), epoch + 1, p.epochs),
            );
            let mut loss_sum = 0f64;
            for chunk in order.chunks(p.batch_size) {
                crate::interrupt::check()?;
                let idx = Tensor::from_slice(chunk, chunk.len(), &device)?;
                let x = data.images().index_select(&idx, 0)?;
                let noisy = if p.noise_std > 0.0 {
                    let std = p.noise_std as f32;
                    let noise: Vec<f32> = (0..x.elem_count())
                        .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal) * std)
                        .collect();
                    (&x + Tensor::from_vec(noise, x.dims(), &device)?)?.clamp(0f32, 1f32)?
                } else {
                    x.clone()
                };
                let loss = (self.reconstruct(&noisy, true)? - &x)?.sqr()?.mean_all()?;
                opt.step(&loss.backward()?)?;
                loss_sum += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
                pb.inc(1);
            }
            pb.finish_and_clear();
            let stats = AeEpoch {
                epoch: epoch + 1,
                loss: loss_sum / n as f64,
                seconds: start.elapsed().as_secs_f64(),
            };
            eprintln!(
                "fit {} epoch {}/{}: reconstruction mse {:.5}, {:.1} s",
                self.name(),
                stats.epoch,
                p.epochs,
                stats.loss,
                stats.seconds
            );
            history.push(stats);
        }
        if let Ok(mut t) = self.trained.lock() {
            *t = Some(Trained {
                data: data.name().to_string(),
                samples: n,
                params: p.clone(),
                final_loss: history.last().map_or(f64::NAN, |h| h.loss),
            });
        }
        Ok(history)
    }
}

/// Train `transform` on `data` when it is an autoencoder, the one kind of transform that learns.
pub fn fit_transform(transform: &dyn Transform, data: &Dataset, p: &AeFitValid) -> Result<Vec<AeEpoch>> {
    match transform.as_any().downcast_ref::<Autoencoder>() {
        Some(ae) => ae.fit(data, p),
        None => Err(Error::Invalid(format!(
            "{} has nothing to train: only denoising_autoencoder and conv_autoencoder are fitted (pca_projection takes its data as an option)",
            transform.name()
        ))),
    }
}

impl fmt::Display for Autoencoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, h, w) = self.input;
        let layers = match &self.kind {
            AutoencoderKind::Dense { hidden } => format!("hidden={hidden:?}"),
            AutoencoderKind::Conv { channels } => format!("channels={channels:?}"),
        };
        write!(
            f,
            "{}({layers}, input={c}×{h}×{w}, {} parameters, seed={}, ",
            self.name(),
            self.param_count(),
            self.seed
        )?;
        match self.trained.lock().ok().and_then(|t| t.clone()) {
            Some(t) => write!(
                f,
                "trained {} epochs on {} samples of {} with noise_std {}: mse {:.5})",
                t.params.epochs, t.samples, t.data, t.params.noise_std, t.final_loss
            ),
            None => write!(f, "not trained)"),
        }
    }
}

impl fmt::Debug for Autoencoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Autoencoder({self})")
    }
}
