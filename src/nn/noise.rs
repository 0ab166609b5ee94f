//! Parametric noise injection (He et al. 2019) as one op: `t + α·σ·η`, with `σ` the standard
//! deviation (n − 1) of `t` taken as a constant (PyTorch's `t.std().item()`), `α` a
//! learnable scalar and `η` standard normal from a counter-based stream. The backward pass
//! gives `t` the incoming gradient and `α` the gradient `σ·Σ dy·η`, drawing `η` again.

use super::random::{noise_add, normal};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

const CHUNK: usize = 1 << 14;

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("noise injection: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("noise injection: the input must be contiguous"),
    }
}

/// The standard deviation (n − 1) of `v`, 0 when undefined.
fn std_dev(v: &[f32]) -> f32 {
    if v.len() < 2 {
        return 0.0;
    }
    let (s, s2) = v
        .par_chunks(CHUNK)
        .map(|c| {
            c.iter().fold((0f64, 0f64), |(s, s2), &x| {
                (s + f64::from(x), s2 + f64::from(x) * f64::from(x))
            })
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let n = v.len() as f64;
    let var = (s2 - s * s / n) / (n - 1.0);
    let sd = var.max(0.0).sqrt() as f32;
    if sd.is_finite() {
        sd
    } else {
        0.0
    }
}

struct AddNoise {
    key: u64,
    sigma: Mutex<Option<f32>>,
}

impl CustomOp2 for AddNoise {
    fn name(&self) -> &'static str {
        "advlab-add-noise"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (t, alpha) = (slice(s1, l1)?, slice(s2, l2)?);
        let &[alpha] = alpha else {
            bail!("noise injection: the scale must hold one value, got {}", alpha.len())
        };
        let sigma = std_dev(t);
        *self.sigma.lock().unwrap_or_else(|e| e.into_inner()) = Some(sigma);
        let mut y = vec![0f32; t.len()];
        y.par_chunks_mut(CHUNK)
            .zip(t.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (y, t))| noise_add(y, Some(t), alpha * sigma, self.key, (c * CHUNK) as u64));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        t: &Tensor,
        alpha: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dt = t.track_op().then(|| grad.clone());
        let da = if alpha.track_op() {
            let sigma = match *self.sigma.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(s) => s,
                None => std_dev(&t.flatten_all()?.to_vec1::<f32>()?),
            };
            let dot = grad
                .contiguous()?
                .apply_op1_no_bwd(&NoiseDot { key: self.key, sigma })?;
            Some(dot.reshape(alpha.shape())?)
        } else {
            None
        };
        Ok((dt, da))
    }
}

/// `σ·Σ g·η` of a gradient `g`: the gradient of the noise scale.
struct NoiseDot {
    key: u64,
    sigma: f32,
}

impl CustomOp1 for NoiseDot {
    fn name(&self) -> &'static str {
        "advlab-noise-dot"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = slice(s, l)?;
        let dot: f64 = g
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(c, g)| {
                let mut eta = vec![0f32; g.len()];
                noise_add(&mut eta, None, 1.0, self.key, (c * CHUNK) as u64);
                g.iter().zip(&eta).map(|(&g, &e)| f64::from(g * e)).sum::<f64>()
            })
            .sum();
        Ok((
            CpuStorage::F32(vec![(dot * f64::from(self.sigma)) as f32]),
            Shape::from(1),
        ))
    }
}

/// `t + α·std(t)·η`, η standard normal from stream `key`; `alpha` holds one value.
pub fn add_noise(t: &Tensor, alpha: &Tensor, key: u64) -> Result<Tensor> {
    if !t.device().is_cpu() {
        return add_noise_candle(t, alpha, key);
    }
    t.contiguous()?.apply_op2(
        &alpha.contiguous()?,
        AddNoise {
            key,
            sigma: Mutex::new(None),
        },
    )
}

/// The same in plain candle ops (other devices, and the tests' reference): the same η.
pub fn add_noise_candle(t: &Tensor, alpha: &Tensor, key: u64) -> Result<Tensor> {
    let flat = t.detach().flatten_all()?;
    let sigma = if flat.elem_count() < 2 {
        0.0
    } else {
        let s = flat.var(0)?.sqrt()?.to_scalar::<f32>()?;
        if s.is_finite() {
            s
        } else {
            0.0
        }
    };
    let eta = (normal(t.shape(), key, &candle_core::Device::Cpu)?.to_device(t.device())? * f64::from(sigma))?;
    t.broadcast_add(&eta.broadcast_mul(alpha)?)
}
