//! The Square attack under L∞ (Andriushchenko et al. 2020), AutoAttack's black-box stage: it
//! only reads the logits, never a gradient. From vertical stripes of ±ε it tries, query after
//! query, to move one random square window of every image to a new ±ε corner of the box, and
//! keeps the proposal when the margin `z_y − max_{i≠y} z_i` falls (or the image is fooled). The
//! window's side shrinks with the share `p` of pixels it covers, `p_init` halved at 10, 50, 200,
//! 500, 1000, 2000, 4000, 6000 and 8000 queries of 10,000 (rescaled to `queries`). Each image
//! draws its windows and signs from its own generator (the seed and the image), so the result
//! does not depend on the batch. Images the model already misclassifies are left as they are.

use super::loss::{loss_value, Loss, LossKind, Reduction};
use super::{check_eps, sample_hash, Attack, Norm, Target};
use crate::error::{Error, ParamError, Result};
use crate::nn::Model;
use candle_core::{DType, Tensor, D};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::fmt;

/// Unchecked Square parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SquareParams {
    pub eps: f64,
    pub norm: Norm,
    /// Model queries per image (forward passes), at most.
    pub queries: usize,
    /// The share of an image's pixels the first windows cover.
    pub p_init: f64,
    pub restarts: usize,
    pub seed: u64,
    pub batch_size: usize,
}

impl SquareParams {
    /// Square-L∞ with budget `eps` and AutoAttack's settings: 5000 queries, p_init 0.8, one run.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            norm: Norm::Linf,
            queries: 5000,
            p_init: 0.8,
            restarts: 1,
            seed: 0,
            batch_size: 256,
        }
    }

    /// Check the rules: ε finite and ≥ 0, L∞, queries, restarts and batch size ≥ 1, p_init in (0, 1].
    pub fn check(&self) -> std::result::Result<Square, ParamError> {
        check_eps(self.eps)?;
        if self.norm != Norm::Linf {
            return Err(ParamError::SquareNorm);
        }
        if self.queries == 0 {
            return Err(ParamError::StepsZero);
        }
        if self.restarts == 0 {
            return Err(ParamError::RestartsZero);
        }
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        if !(self.p_init > 0.0 && self.p_init <= 1.0) {
            return Err(ParamError::PInit(self.p_init));
        }
        Ok(Square { p: self.clone() })
    }
}

/// Checked Square attack.
#[derive(Clone, Debug, PartialEq)]
pub struct Square {
    p: SquareParams,
}

/// The window share after `it` of `queries` queries.
fn p_at(p_init: f64, it: usize, queries: usize) -> f64 {
    let it = (it as f64 / queries as f64 * 10000.0) as usize;
    let halvings = match it {
        0..=10 => 0,
        11..=50 => 1,
        51..=200 => 2,
        201..=500 => 3,
        501..=1000 => 4,
        1001..=2000 => 5,
        2001..=4000 => 6,
        4001..=6000 => 7,
        6001..=8000 => 8,
        _ => 9,
    };
    p_init / f64::from(1u32 << halvings)
}

/// The margin `z_y − max_{i≠y} z_i` of every image (negative: misclassified): minus the CW loss.
fn margins(model: &Model, x: &[f32], dims: &[usize], y: &[u32]) -> Result<Vec<f32>> {
    let mut shape = dims.to_vec();
    shape[0] = y.len();
    let t = Tensor::from_vec(x.to_vec(), shape, model.device())?;
    let cw = Loss {
        reduction: Reduction::None,
        ..Loss::new(LossKind::Cw)
    };
    let m = loss_value(&cw, &model.forward(&t)?, &Tensor::new(y, model.device())?)?.neg()?;
    Ok(m.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

impl Square {
    /// One run: the best image per sample and its margin.
    fn run(&self, model: &Model, x0: &[f32], dims: &[usize], y: &[u32], seed: u64) -> Result<(Vec<f32>, Vec<f32>)> {
        let (c, h, w) = (dims[1], dims[2], dims[3]);
        let per = c * h * w;
        let eps = self.p.eps as f32;
        let mut rngs: Vec<StdRng> = x0
            .chunks(per)
            .map(|s| StdRng::seed_from_u64(seed ^ sample_hash(s) ^ 0x5371_7561_7265))
            .collect();
        // vertical stripes of ±ε
        let mut best = x0.to_vec();
        for (i, img) in best.chunks_mut(per).enumerate() {
            for ch in 0..c {
                for col in 0..w {
                    let sign = if rngs[i].random::<bool>() { eps } else { -eps };
                    for row in 0..h {
                        let v = &mut img[ch * h * w + row * w + col];
                        *v = (*v + sign).clamp(0.0, 1.0);
                    }
                }
            }
        }
        let mut margin = margins(model, &best, dims, y)?;
        let mut loss = margin.clone();
        for it in 0..self.p.queries {
            crate::interrupt::check()?;
            let active: Vec<usize> = (0..y.len()).filter(|&i| margin[i] > 0.0).collect();
            if active.is_empty() {
                break;
            }
            let p = p_at(self.p.p_init, it, self.p.queries);
            let s = (((p * (per / c) as f64).sqrt()).round() as usize).clamp(1, h.min(w).saturating_sub(1).max(1));
            let mut proposal = Vec::with_capacity(active.len() * per);
            for &i in &active {
                let rng = &mut rngs[i];
                let vh = if h > s { rng.random_range(0..h - s) } else { 0 };
                let vw = if w > s { rng.random_range(0..w - s) } else { 0 };
                let mut img = best[i * per..(i + 1) * per].to_vec();
                let orig = &x0[i * per..(i + 1) * per];
                for ch in 0..c {
                    let delta = if rng.random::<bool>() { 2.0 * eps } else { -2.0 * eps };
                    for row in vh..vh + s {
                        for col in vw..vw + s {
                            let k = ch * h * w + row * w + col;
                            img[k] = (img[k] + delta).clamp(orig[k] - eps, orig[k] + eps).clamp(0.0, 1.0);
                        }
                    }
                }
                proposal.extend_from_slice(&img);
            }
            let ys: Vec<u32> = active.iter().map(|&i| y[i]).collect();
            let m = margins(model, &proposal, dims, &ys)?;
            for (j, &i) in active.iter().enumerate() {
                let improved = m[j] < loss[i];
                if improved {
                    loss[i] = m[j];
                }
                if improved || m[j] <= 0.0 {
                    margin[i] = m[j];
                    best[i * per..(i + 1) * per].copy_from_slice(&proposal[j * per..(j + 1) * per]);
                }
            }
        }
        Ok((best, margin))
    }
}

impl Attack for Square {
    fn name(&self) -> &'static str {
        "square"
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.p;
        serde_json::json!({
            "attack": "square", "eps": p.eps, "norm": p.norm.as_str(), "queries": p.queries,
            "p_init": p.p_init, "restarts": p.restarts, "seed": p.seed, "batch_size": p.batch_size, "loss": "margin",
        })
    }

    fn batch_size(&self) -> usize {
        self.p.batch_size
    }

    fn target(&self) -> Target {
        Target::Untargeted
    }

    fn with_eps(&self, eps: f64) -> Result<Box<dyn Attack>> {
        Ok(Box::new(SquareParams { eps, ..self.p.clone() }.check()?))
    }

    fn with_seed(&self, seed: u64) -> Option<Box<dyn Attack>> {
        Some(Box::new(Square {
            p: SquareParams { seed, ..self.p.clone() },
        }))
    }

    fn perturb_batch(&self, model: &Model, x0: &Tensor, y: &Tensor) -> Result<Tensor> {
        if x0.rank() != 4 {
            return Err(Error::Shape(format!(
                "square needs images (N, C, H, W), got shape {:?}",
                x0.dims()
            )));
        }
        if self.p.eps == 0.0 {
            return Ok(x0.clone());
        }
        let dims = x0.dims().to_vec();
        let per: usize = dims[1..].iter().product();
        let xs = x0.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let labels = y.to_vec1::<u32>()?;
        let clean = model.forward(x0)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let mut out = xs.clone();
        let mut done: Vec<bool> = clean.iter().zip(&labels).map(|(p, l)| p != l).collect();
        for r in 0..self.p.restarts {
            let left: Vec<usize> = (0..labels.len()).filter(|&i| !done[i]).collect();
            if left.is_empty() {
                break;
            }
            let sub: Vec<f32> = left
                .iter()
                .flat_map(|&i| xs[i * per..(i + 1) * per].iter().copied())
                .collect();
            let ys: Vec<u32> = left.iter().map(|&i| labels[i]).collect();
            let seed = super::run_seed(self.p.seed, r);
            let (best, margin) = self.run(model, &sub, &dims, &ys, seed)?;
            for (j, &i) in left.iter().enumerate() {
                let fooled = margin[j] <= 0.0;
                if fooled || r == 0 {
                    out[i * per..(i + 1) * per].copy_from_slice(&best[j * per..(j + 1) * per]);
                }
                done[i] |= fooled;
            }
        }
        Ok(Tensor::from_vec(out, dims, x0.device())?)
    }
}

impl fmt::Display for Square {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.p;
        write!(
            f,
            "square(eps={}, norm={}, queries={}, p_init={}, restarts={}, seed={}, batch_size={})",
            p.eps,
            p.norm.as_str(),
            p.queries,
            p.p_init,
            p.restarts,
            p.seed,
            p.batch_size
        )
    }
}
