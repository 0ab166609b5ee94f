//! Models: an MLP and a small CNN, whose parameters are named and laid out exactly as the
//! equivalent PyTorch `nn.Sequential`, so weights move between advlab and PyTorch.

mod checkpoint;
pub mod ops;

pub use checkpoint::{load_model, save_model};

use crate::error::{Error, ParamError, Result};
use candle_core::{Device, Tensor, Var};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The architecture of a model: enough to rebuild it from a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Arch {
    /// `Flatten, Linear, ReLU, …, Linear`: `layers[0]` inputs, `layers[last]` classes.
    Mlp { layers: Vec<usize> },
    /// `Conv2d(c,32,3,p=1), ReLU, MaxPool2d(2), Conv2d(32,64,3,p=1), ReLU, MaxPool2d(2),
    /// Flatten, Linear(64·(h/4)·(w/4), 128), ReLU, Linear(128, classes)`.
    Cnn {
        channels: usize,
        height: usize,
        width: usize,
        classes: usize,
    },
}

impl Arch {
    /// The MLP with these layer sizes, checked.
    pub fn mlp(layers: Vec<usize>) -> std::result::Result<Self, ParamError> {
        if layers.len() < 2 {
            return Err(ParamError::MlpTooFewLayers(layers));
        }
        if layers.contains(&0) {
            return Err(ParamError::LayerSizeZero(layers));
        }
        Ok(Arch::Mlp { layers })
    }

    /// The small CNN for 1×28×28 images and 10 classes.
    pub fn cnn() -> Self {
        Arch::Cnn {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        }
    }

    /// Number of outputs (classes).
    pub fn classes(&self) -> usize {
        match self {
            Arch::Mlp { layers } => *layers.last().unwrap_or(&0),
            Arch::Cnn { classes, .. } => *classes,
        }
    }

    /// Parameter names and shapes, in `nn.Sequential` order, with each layer's fan-in.
    fn param_specs(&self) -> Vec<(String, Vec<usize>, usize)> {
        let mut specs = Vec::new();
        let linear = |idx: usize, i: usize, o: usize, specs: &mut Vec<_>| {
            specs.push((format!("{idx}.weight"), vec![o, i], i));
            specs.push((format!("{idx}.bias"), vec![o], i));
        };
        match self {
            Arch::Mlp { layers } => {
                for (k, w) in layers.windows(2).enumerate() {
                    linear(1 + 2 * k, w[0], w[1], &mut specs);
                }
            }
            Arch::Cnn {
                channels,
                height,
                width,
                classes,
            } => {
                let c = *channels;
                specs.push(("0.weight".into(), vec![32, c, 3, 3], c * 9));
                specs.push(("0.bias".into(), vec![32], c * 9));
                specs.push(("3.weight".into(), vec![64, 32, 3, 3], 32 * 9));
                specs.push(("3.bias".into(), vec![64], 32 * 9));
                linear(7, 64 * (height / 4) * (width / 4), 128, &mut specs);
                linear(9, 128, *classes, &mut specs);
            }
        }
        specs
    }

    /// The equivalent PyTorch module, for documentation and error messages.
    pub fn torch_module(&self) -> String {
        match self {
            Arch::Mlp { layers } => {
                let mut parts = vec!["nn.Flatten()".to_string()];
                for (k, w) in layers.windows(2).enumerate() {
                    if k > 0 {
                        parts.push("nn.ReLU()".into());
                    }
                    parts.push(format!("nn.Linear({}, {})", w[0], w[1]));
                }
                format!("nn.Sequential({})", parts.join(", "))
            }
            Arch::Cnn {
                channels,
                height,
                width,
                classes,
            } => format!(
                "nn.Sequential(nn.Conv2d({channels}, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), \
                 nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), \
                 nn.Linear({}, 128), nn.ReLU(), nn.Linear(128, {classes}))",
                64 * (height / 4) * (width / 4)
            ),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::Mlp { layers } => write!(f, "mlp({layers:?})"),
            Arch::Cnn {
                channels,
                height,
                width,
                classes,
            } => {
                write!(
                    f,
                    "cnn({channels}×{height}×{width} → conv32-pool-conv64-pool-fc128-fc{classes})"
                )
            }
        }
    }
}

/// Weight and bias of one layer.
struct Layer {
    w: Tensor,
    b: Tensor,
}

/// The layers of a network, holding either the trainable variables or detached views of
/// them (same storage, no gradient tracking) for attacks and evaluation.
enum Net {
    Mlp(Vec<Layer>),
    Cnn { c1: Layer, c2: Layer, f1: Layer, f2: Layer },
}

impl Net {
    fn build(arch: &Arch, tensors: &[Tensor]) -> Self {
        let layer = |i: usize| Layer {
            w: tensors[i].clone(),
            b: tensors[i + 1].clone(),
        };
        match arch {
            Arch::Mlp { layers } => Net::Mlp((0..layers.len() - 1).map(|k| layer(2 * k)).collect()),
            Arch::Cnn { .. } => Net::Cnn {
                c1: layer(0),
                c2: layer(2),
                f1: layer(4),
                f2: layer(6),
            },
        }
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Net::Mlp(layers) => {
                let mut h = x.flatten_from(1)?;
                for (k, l) in layers.iter().enumerate() {
                    h = ops::linear(&h, &l.w, &l.b)?;
                    if k + 1 < layers.len() {
                        h = ops::relu(&h)?;
                    }
                }
                Ok(h)
            }
            Net::Cnn { c1, c2, f1, f2 } => {
                // max_pool(relu(z)) = relu(max_pool(z)) (both monotone), with 4× less relu work
                let h = ops::relu(&ops::max_pool2d(&ops::conv2d(x, &c1.w, &c1.b, 1, 1)?, 2)?)?;
                let h = ops::relu(&ops::max_pool2d(&ops::conv2d(&h, &c2.w, &c2.b, 1, 1)?, 2)?)?;
                let h = ops::relu(&ops::linear(&h.flatten_from(1)?, &f1.w, &f1.b)?)?;
                ops::linear(&h, &f2.w, &f2.b)
            }
        }
    }
}

struct Inner {
    arch: Arch,
    params: Vec<(String, Var)>,
    net: Net,
    frozen: Net,
    device: Device,
    /// Input transforms applied, in order, before the network (`defended(model, [...])`).
    defence: Option<crate::defence::Pipeline>,
}

/// A classifier that outputs logits. Cloning a `Model` shares its weights (a handle);
/// [`Model::deep_clone`] makes an independent copy.
#[derive(Clone)]
pub struct Model(Arc<Inner>);

impl Model {
    /// A new model with PyTorch's default initialisation (uniform in ±1/√fan_in for weights
    /// and biases), drawn from `seed`.
    pub fn new(arch: Arch, device: &Device, seed: u64) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let tensors = arch
            .param_specs()
            .into_iter()
            .map(|(name, shape, fan_in)| {
                let bound = 1.0 / (fan_in as f32).sqrt();
                let n: usize = shape.iter().product();
                let data: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
                Ok((name, Tensor::from_vec(data, shape, device)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_tensors(arch, tensors, device)
    }

    /// A model with the given parameter values (names and shapes must match `arch`).
    pub fn from_tensors(arch: Arch, tensors: Vec<(String, Tensor)>, device: &Device) -> Result<Self> {
        let specs = arch.param_specs();
        let mut params = Vec::with_capacity(specs.len());
        for (name, shape, _) in &specs {
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
            params.push((name.clone(), Var::from_tensor(&t)?));
        }
        let live: Vec<Tensor> = params.iter().map(|(_, v)| v.as_tensor().clone()).collect();
        let detached: Vec<Tensor> = live.iter().map(|t| t.detach()).collect();
        Ok(Model(Arc::new(Inner {
            net: Net::build(&arch, &live),
            frozen: Net::build(&arch, &detached),
            arch,
            params,
            device: device.clone(),
            defence: None,
        })))
    }

    /// A model on the same weights (training one trains the other) whose input first goes
    /// through `defence`.
    fn sharing(&self, defence: Option<crate::defence::Pipeline>) -> Self {
        let live: Vec<Tensor> = self.0.params.iter().map(|(_, v)| v.as_tensor().clone()).collect();
        let detached: Vec<Tensor> = live.iter().map(|t| t.detach()).collect();
        Model(Arc::new(Inner {
            net: Net::build(&self.0.arch, &live),
            frozen: Net::build(&self.0.arch, &detached),
            arch: self.0.arch.clone(),
            params: self.0.params.clone(),
            device: self.0.device.clone(),
            defence,
        }))
    }

    /// This model behind input transforms, applied in the given order before any transforms
    /// it already has, on the same weights (`fit` on it trains this network). Every randomised
    /// transform starts its random stream from its seed.
    pub fn defended(&self, transforms: Vec<Arc<dyn crate::defence::Transform>>) -> Result<Self> {
        let mut all = transforms;
        all.extend(self.transforms());
        let pipeline = crate::defence::Pipeline::new(all)?;
        Ok(self.sharing(Some(pipeline)))
    }

    /// The network alone, without input transforms, on the same weights.
    pub fn network(&self) -> Self {
        self.sharing(None)
    }

    /// The input transforms in front of the network, in the order they run (empty when none).
    pub fn transforms(&self) -> Vec<Arc<dyn crate::defence::Transform>> {
        self.0.defence.as_ref().map(|p| p.transforms()).unwrap_or_default()
    }

    /// The pipeline of input transforms, if any.
    pub fn defence(&self) -> Option<&crate::defence::Pipeline> {
        self.0.defence.as_ref()
    }

    /// An independent copy with the same weights.
    pub fn deep_clone(&self) -> Result<Self> {
        let tensors = self
            .0
            .params
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
            .collect::<Result<Vec<_>>>()?;
        let copy = Self::from_tensors(self.0.arch.clone(), tensors, &self.0.device)?;
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
        match &self.0.arch {
            Arch::Mlp { layers } if layers[0] != per_sample => Err(Error::Shape(format!(
                "{} takes {} input features per sample, but the images are {shape} = {per_sample}: \
                 make the first layer {per_sample}",
                self.0.arch, layers[0]
            ))),
            Arch::Cnn {
                channels,
                height,
                width,
                ..
            } if dims.len() != 4 || dims[1..] != [*channels, *height, *width] => Err(Error::Shape(format!(
                "{} takes {channels}×{height}×{width} images, but the images are {shape}",
                self.0.arch
            ))),
            _ => Ok(()),
        }
    }

    /// Logits with gradient tracking through the weights (for training).
    pub fn forward_train(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x.dims())?;
        let x = self.defend(x)?;
        Ok(self.0.net.forward(&x)?)
    }

    /// Logits without tracking the weights (evaluation and attacks: gradients flow only to
    /// an input that is itself a variable).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x.dims())?;
        let x = self.defend(x)?;
        Ok(self.0.frozen.forward(&x)?)
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
