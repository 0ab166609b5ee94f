//! Universal adversarial perturbations (Moosavi-Dezfooli et al. 2017, seed 003): one
//! image-sized perturbation `v`, `‖v‖ ≤ ε`, that fools the model on most images. Built by
//! passing over a set of images: for every image that `x + v` does not fool yet, DeepFool finds
//! the minimal extra perturbation that does, and `v` moves by it and is projected back onto the
//! ε-ball. Batched: the images of a mini-batch get their DeepFool steps at the same `v`, then
//! `v` takes them one after the other. Passes stop when the fooling rate on the images reaches
//! the goal or after `max_iters` passes.

use super::{check_eps, Attack, DeepFoolParams, Norm};
use crate::data::Dataset;
use crate::error::{Error, ParamError, Result};
use crate::nn::Model;
use candle_core::{Tensor, D};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use std::fmt;

/// Unchecked parameters of the universal-perturbation search.
#[derive(Clone, Debug, PartialEq)]
pub struct UniversalParams {
    pub eps: f64,
    pub norm: Norm,
    /// Maximum passes over the images.
    pub max_iters: usize,
    /// Stop once this fraction of the images is fooled.
    pub fooling_rate: f64,
    pub overshoot: f64,
    /// DeepFool iterations per image and pass.
    pub deepfool_steps: usize,
    pub num_classes: usize,
    pub batch_size: usize,
    /// Shuffles the images in every pass.
    pub seed: u64,
}

impl UniversalParams {
    /// A search for a perturbation of norm at most `eps` (L∞ by default).
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            norm: Norm::Linf,
            max_iters: 5,
            fooling_rate: 0.8,
            overshoot: 0.02,
            deepfool_steps: 10,
            num_classes: 10,
            batch_size: 32,
            seed: 0,
        }
    }

    /// Check the rules: ε finite and ≥ 0, max_iters ≥ 1, fooling rate in (0, 1], and DeepFool's.
    pub fn check(&self) -> std::result::Result<UniversalSearch, ParamError> {
        check_eps(self.eps)?;
        if self.max_iters == 0 {
            return Err(ParamError::MaxItersZero);
        }
        if !(self.fooling_rate > 0.0 && self.fooling_rate <= 1.0) {
            return Err(ParamError::FoolingRate(self.fooling_rate));
        }
        DeepFoolParams {
            steps: self.deepfool_steps,
            overshoot: self.overshoot,
            num_classes: self.num_classes,
            batch_size: self.batch_size,
        }
        .check()?;
        Ok(UniversalSearch { p: self.clone() })
    }
}

/// A checked search, ready to `fit` on a model and images.
#[derive(Clone, Debug, PartialEq)]
pub struct UniversalSearch {
    p: UniversalParams,
}

/// Project `v` onto the ε-ball of `norm`, in place.
fn project(v: &mut [f32], norm: Norm, eps: f32) {
    match norm {
        Norm::Linf => v.iter_mut().for_each(|x| *x = x.clamp(-eps, eps)),
        Norm::L2 => {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if n > eps {
                v.iter_mut().for_each(|x| *x *= eps / n);
            }
        }
    }
}

impl UniversalSearch {
    /// Every parameter, as recorded beside outputs.
    pub fn params(&self) -> serde_json::Value {
        let p = &self.p;
        serde_json::json!({
            "attack": "universal", "eps": p.eps, "norm": p.norm.as_str(), "max_iters": p.max_iters,
            "fooling_rate": p.fooling_rate, "overshoot": p.overshoot, "deepfool_steps": p.deepfool_steps,
            "num_classes": p.num_classes, "batch_size": p.batch_size, "seed": p.seed,
        })
    }

    /// Search a universal perturbation for `model` over the images of `data`.
    pub fn fit(&self, model: &Model, data: &Dataset) -> Result<Universal> {
        let p = &self.p;
        model.check_input(data.images().dims())?;
        if data.is_empty() {
            return Err(Error::Invalid("universal: cannot fit on an empty data set".into()));
        }
        let (c, h, w) = data.image_shape();
        let dev = data.device().clone();
        let deepfool = DeepFoolParams {
            steps: p.deepfool_steps,
            overshoot: p.overshoot,
            num_classes: p.num_classes,
            batch_size: p.batch_size,
        }
        .check()?;
        let clean = crate::nn::predict(model, data)?.to_vec1::<u32>()?;
        let n = data.len();
        let mut v = vec![0f32; c * h * w];
        let scale = 1.0 + p.overshoot as f32;
        let batches = n.div_ceil(p.batch_size);
        let pb = crate::progress::bar((p.max_iters * batches) as u64, "universal".to_string());
        let (mut rate, mut passes) = (0.0, 0);
        for pass in 0..p.max_iters {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut StdRng::seed_from_u64(p.seed.wrapping_add(pass as u64)));
            for chunk in order.chunks(p.batch_size) {
                crate::interrupt::check()?;
                let idx = Tensor::from_vec(chunk.iter().map(|&i| i as u32).collect::<Vec<_>>(), chunk.len(), &dev)?;
                let vt = Tensor::from_slice(&v, (1, c, h, w), &dev)?;
                let xv = data
                    .images()
                    .index_select(&idx, 0)?
                    .broadcast_add(&vt)?
                    .clamp(0f32, 1f32)?;
                let pred = model.forward(&xv)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
                let keep: Vec<u32> = (0..chunk.len())
                    .filter(|&j| pred[j] == clean[chunk[j]])
                    .map(|j| j as u32)
                    .collect();
                if !keep.is_empty() {
                    let xs = xv.index_select(&Tensor::new(keep, &dev)?, 0)?;
                    for r in deepfool.search(model, &xs)? {
                        v.iter_mut().zip(&r).for_each(|(a, b)| *a += scale * b);
                        project(&mut v, p.norm, p.eps as f32);
                    }
                }
                pb.inc(1);
            }
            passes += 1;
            let universal = Universal::new(Tensor::from_slice(&v, (1, c, h, w), &dev)?, serde_json::Value::Null)?;
            let fooled =
                crate::nn::predict(model, &data.with_images(universal.apply(data.images())?, "")?)?.to_vec1::<u32>()?;
            rate = fooled.iter().zip(&clean).filter(|(a, b)| a != b).count() as f64 / n as f64;
            if rate >= p.fooling_rate {
                break;
            }
        }
        pb.finish_and_clear();
        let mut info = self.params();
        info["fit"] = serde_json::json!({
            "model": model.arch().to_string(), "data": data.name(), "samples": n,
            "passes": passes, "fooling_rate": rate,
        });
        Universal::new(Tensor::from_slice(&v, (1, c, h, w), &dev)?, info)
    }
}

/// A fixed perturbation added to every image (then clipped to [0, 1]).
#[derive(Clone, Debug)]
pub struct Universal {
    v: Tensor,
    info: serde_json::Value,
}

impl Universal {
    /// The attack that adds `v` (`(C, H, W)` or `(1, C, H, W)`); `info` records where it came
    /// from.
    pub fn new(v: Tensor, info: serde_json::Value) -> Result<Self> {
        let v = match v.rank() {
            3 => v.unsqueeze(0)?,
            4 if v.dim(0)? == 1 => v,
            _ => {
                return Err(Error::Shape(format!(
                    "a universal perturbation must be one image, (C, H, W) or (1, C, H, W), got {:?}",
                    v.dims()
                )))
            }
        };
        let info = match info {
            serde_json::Value::Null => serde_json::json!({ "attack": "universal", "source": "tensor" }),
            i => i,
        };
        let u = Self {
            v: v.to_dtype(candle_core::DType::F32)?,
            info,
        };
        let (linf, l2) = u.norms()?;
        if !(linf.is_finite() && l2.is_finite()) {
            return Err(Error::Invalid(
                "a universal perturbation must be finite (it holds NaN or ∞)".into(),
            ));
        }
        Ok(u)
    }

    /// `x + v`, clipped to [0, 1], or an error when `v` does not have the images' shape.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 4 || x.dims()[1..] != self.v.dims()[1..] {
            return Err(Error::Shape(format!(
                "a universal perturbation of shape {} does not fit images of shape {}",
                dims_str(&self.v.dims()[1..]),
                dims_str(x.dims().get(1..).unwrap_or(&[]))
            )));
        }
        let v = self.v.to_device(x.device())?;
        Ok(x.broadcast_add(&v)?.clamp(0f32, 1f32)?)
    }

    /// Its L∞ and L2 norms.
    pub fn norms(&self) -> Result<(f64, f64)> {
        let linf = self.v.abs()?.max_all()?.to_scalar::<f32>()? as f64;
        let l2 = self.v.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()? as f64;
        Ok((linf, l2))
    }
}

fn dims_str(d: &[usize]) -> String {
    d.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("×")
}

impl Attack for Universal {
    fn name(&self) -> &'static str {
        "universal"
    }

    fn params(&self) -> serde_json::Value {
        let mut info = self.info.clone();
        if let Ok((linf, l2)) = self.norms() {
            info["linf"] = serde_json::json!(linf);
            info["l2"] = serde_json::json!(l2);
        }
        info
    }

    fn batch_size(&self) -> usize {
        1024
    }

    /// The same direction, rescaled so that its norm (the one it was fitted under, L∞ for a
    /// perturbation loaded from a tensor) is `eps`.
    fn with_eps(&self, eps: f64) -> Result<Box<dyn Attack>> {
        check_eps(eps)?;
        let (linf, l2) = self.norms()?;
        let current = if self.info["norm"] == "l2" { l2 } else { linf };
        let v = if current > 0.0 {
            (&self.v * (eps / current))?
        } else {
            self.v.clone()
        };
        let mut info = self.info.clone();
        info["rescaled_to"] = serde_json::json!(eps);
        Ok(Box::new(Universal::new(v, info)?))
    }

    fn perturbation(&self) -> Option<Tensor> {
        Some(self.v.clone())
    }

    fn perturb_batch(&self, _model: &Model, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        self.apply(x)
    }
}

impl fmt::Display for Universal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (linf, l2) = self.norms().unwrap_or((f64::NAN, f64::NAN));
        write!(
            f,
            "Universal(shape={}, linf={linf:.4}, l2={l2:.4}",
            dims_str(&self.v.dims()[1..])
        )?;
        if let Some(fit) = self.info.get("fit") {
            write!(f, ", fitted: {fit}")?;
        }
        write!(f, ")")
    }
}

impl fmt::Display for UniversalSearch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.p;
        write!(
            f,
            "universal(eps={}, norm={}, max_iters={}, fooling_rate={}, deepfool_steps={}, batch_size={}, seed={}): call .fit(model, data)",
            p.eps,
            p.norm.as_str(),
            p.max_iters,
            p.fooling_rate,
            p.deepfool_steps,
            p.batch_size,
            p.seed
        )
    }
}

/// Fraction of the samples whose prediction an attack changes (with respect to the clean
/// prediction, whatever the true label).
pub fn fooling_rate(model: &Model, data: &Dataset, attack: &dyn Attack) -> Result<f64> {
    if data.is_empty() {
        return Ok(0.0);
    }
    let clean = crate::nn::predict(model, data)?;
    let adv = crate::nn::predict(model, &super::perturb(attack, model, data)?)?;
    let changed = clean
        .ne(&adv)?
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(changed as f64 / data.len() as f64)
}
