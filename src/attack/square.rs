//! The Square attack (Andriushchenko et al. 2020), AutoAttack's black-box stage: it only reads
//! the logits, never a gradient. Query after query it proposes a change of one random square
//! window of every image and keeps it when the margin `z_y − max_{i≠y} z_i` falls (or the image
//! is fooled). Under L∞ it starts from vertical stripes of ±ε and moves a window to a new ±ε
//! corner of the box; under L2 it starts from a grid of windows holding the paper's centred
//! pattern and moves the perturbation's mass of a second window into the first (see
//! [`Square::propose`]), the whole perturbation kept at norm ε. The window's side shrinks with
//! the share `p` of pixels it covers, `p_init` halved at 10, 50, 200, 500, 1000, 2000, 4000,
//! 6000 and 8000 queries of 10,000 (rescaled to `queries`). Each image draws its windows and
//! signs from its own generator (the seed and the image), so the result does not depend on the
//! batch. Images the model already misclassifies are left as they are.

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
    /// Square with budget `eps` and AutoAttack's settings: L∞, 5000 queries, p_init 0.8, one run.
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

    /// Check the rules: ε finite and ≥ 0, queries, restarts and batch size ≥ 1, p_init in (0, 1].
    pub fn check(&self) -> std::result::Result<Square, ParamError> {
        check_eps(self.eps)?;
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

/// Square-L2's window pattern (Andriushchenko et al.'s "meta" pattern): one half of the s × s
/// window holds nested rectangles weighted 1/k² around its centre, the other half their
/// negative, scaled to L2 norm 1; row-major.
fn pattern(s: usize) -> Vec<f32> {
    // nested rectangles in an x × y block, heaviest at the centre
    let rect = |x: usize, y: usize| {
        let mut d = vec![0f64; x * y];
        let (xc, yc) = (x / 2 + 1, y / 2 + 1);
        let (mut r, mut c) = (xc as i64 - 1, yc as i64 - 1);
        for k in 0..xc.max(yc) {
            let side = 2 * k as i64 + 1;
            let rows = r.max(0) as usize..((r + side).max(0) as usize).min(x);
            let cols = c.max(0) as usize..((c + side).max(0) as usize).min(y);
            for i in rows {
                for j in cols.clone() {
                    d[i * y + j] += 1.0 / ((k + 1) * (k + 1)) as f64;
                }
            }
            r -= 1;
            c -= 1;
        }
        let n = d.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        d.iter().map(|v| v / n).collect::<Vec<f64>>()
    };
    let top = s / 2;
    let mut out: Vec<f64> = rect(top, s);
    out.extend(rect(s - top, s).iter().map(|v| -v));
    let n = out.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
    out.iter().map(|v| (v / n) as f32).collect()
}

/// `pattern` or its transpose (a coin per use), side `s`, at `(row, col)`.
fn pattern_at(p: &[f32], s: usize, transposed: bool, row: usize, col: usize) -> f32 {
    if transposed {
        p[col * s + row]
    } else {
        p[row * s + col]
    }
}

/// The L2 norm of a slice.
fn l2(v: impl Iterator<Item = f32>) -> f32 {
    v.map(|x| x * x).sum::<f32>().sqrt()
}

/// `orig + delta` with `delta` rescaled to L2 norm `eps`, clipped to [0, 1].
fn at_l2_radius(orig: &[f32], delta: &[f32], eps: f32) -> Vec<f32> {
    let scale = eps / (l2(delta.iter().copied()) + 1e-12);
    orig.iter()
        .zip(delta)
        .map(|(o, d)| (o + d * scale).clamp(0.0, 1.0))
        .collect()
}

impl Square {
    /// The starting image of one sample. L∞: vertical stripes of ±ε. L2: a grid of windows of
    /// side h/5, each the pattern with a random orientation and a random sign per channel,
    /// rescaled to norm ε.
    fn init(&self, orig: &[f32], (c, h, w): (usize, usize, usize), rng: &mut StdRng) -> Vec<f32> {
        let eps = self.p.eps as f32;
        match self.p.norm {
            Norm::Linf => {
                let mut img = orig.to_vec();
                for ch in 0..c {
                    for col in 0..w {
                        let sign = if rng.random::<bool>() { eps } else { -eps };
                        for row in 0..h {
                            let v = &mut img[ch * h * w + row * w + col];
                            *v = (*v + sign).clamp(0.0, 1.0);
                        }
                    }
                }
                img
            }
            Norm::L2 => {
                let s = h.min(w) / 5;
                let p = pattern(s);
                let (top, left) = ((h - 5 * s) / 2, (w - 5 * s) / 2);
                let mut delta = vec![0f32; orig.len()];
                for bh in 0..(h - top) / s {
                    for bw in 0..(w - left) / s {
                        let (vh, vw) = (top + bh * s, left + bw * s);
                        let transposed = rng.random::<bool>();
                        for ch in 0..c {
                            let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
                            for i in 0..s {
                                for j in 0..s {
                                    delta[ch * h * w + (vh + i) * w + vw + j] +=
                                        sign * pattern_at(&p, s, transposed, i, j);
                                }
                            }
                        }
                    }
                }
                at_l2_radius(orig, &delta, eps)
            }
        }
    }

    /// A proposal from the sample's best image `best`, with windows of side `s`. L∞: one window
    /// moved by ±2ε per channel, then projected back onto the ball and the box. L2: the mass of
    /// two windows (the second emptied) goes to the first, as the pattern (random sign per
    /// channel) plus the window's old direction, with the budget left over, and the whole
    /// perturbation rescaled to norm ε.
    fn propose(
        &self,
        best: &[f32],
        orig: &[f32],
        (c, h, w): (usize, usize, usize),
        s: usize,
        p: &[f32],
        rng: &mut StdRng,
    ) -> Vec<f32> {
        let eps = self.p.eps as f32;
        let mut corner = || {
            let vh = if h > s { rng.random_range(0..h - s) } else { 0 };
            let vw = if w > s { rng.random_range(0..w - s) } else { 0 };
            (vh, vw)
        };
        let (vh, vw) = corner();
        let window = |ch: usize, vh: usize, vw: usize| {
            (0..s).flat_map(move |i| (0..s).map(move |j| ch * h * w + (vh + i) * w + vw + j))
        };
        match self.p.norm {
            Norm::Linf => {
                let mut img = best.to_vec();
                for ch in 0..c {
                    let delta = if rng.random::<bool>() { 2.0 * eps } else { -2.0 * eps };
                    for k in window(ch, vh, vw) {
                        img[k] = (img[k] + delta).clamp(orig[k] - eps, orig[k] + eps).clamp(0.0, 1.0);
                    }
                }
                img
            }
            Norm::L2 => {
                let (vh2, vw2) = corner();
                let mut delta: Vec<f32> = best.iter().zip(orig).map(|(b, o)| b - o).collect();
                let image_norm = l2(delta.iter().copied());
                let mut in_windows = vec![false; delta.len()];
                for ch in 0..c {
                    window(ch, vh, vw)
                        .chain(window(ch, vh2, vw2))
                        .for_each(|k| in_windows[k] = true);
                }
                let windows_norm = l2(delta.iter().zip(&in_windows).filter(|(_, &m)| m).map(|(d, _)| *d));
                let budget =
                    ((eps * eps - image_norm * image_norm).max(0.0) / c as f32 + windows_norm * windows_norm).sqrt();
                let transposed = rng.random::<bool>();
                let mut fresh = Vec::with_capacity(c * s * s);
                for ch in 0..c {
                    let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
                    let old = l2(window(ch, vh, vw).map(|k| delta[k])) + 1e-12;
                    let mut nd: Vec<f32> = window(ch, vh, vw)
                        .enumerate()
                        .map(|(n, k)| sign * pattern_at(p, s, transposed, n / s, n % s) + delta[k] / old)
                        .collect();
                    let norm = l2(nd.iter().copied()) + 1e-12;
                    nd.iter_mut().for_each(|v| *v *= budget / norm);
                    fresh.push(nd);
                }
                for ch in 0..c {
                    window(ch, vh2, vw2).for_each(|k| delta[k] = 0.0);
                }
                for (ch, nd) in fresh.iter().enumerate() {
                    window(ch, vh, vw).zip(nd).for_each(|(k, v)| delta[k] = *v);
                }
                at_l2_radius(orig, &delta, eps)
            }
        }
    }

    /// The window side after `it` queries: the share p of the pixels, at least 1 (L∞) or an odd
    /// side of at least 3 (L2), at most the image's.
    fn side(&self, it: usize, pixels: usize, (h, w): (usize, usize)) -> usize {
        let p = p_at(self.p.p_init, it, self.p.queries);
        let s = (p * pixels as f64).sqrt().round() as usize;
        match self.p.norm {
            Norm::Linf => s.clamp(1, h.min(w).saturating_sub(1).max(1)),
            Norm::L2 => (s.max(3) | 1).min(h.min(w)),
        }
    }

    /// One run: the best image per sample and its margin.
    fn run(&self, model: &Model, x0: &[f32], dims: &[usize], y: &[u32], seed: u64) -> Result<(Vec<f32>, Vec<f32>)> {
        let (c, h, w) = (dims[1], dims[2], dims[3]);
        let per = c * h * w;
        let mut rngs: Vec<StdRng> = x0
            .chunks(per)
            .map(|s| StdRng::seed_from_u64(seed ^ sample_hash(s) ^ 0x5371_7561_7265))
            .collect();
        let mut best: Vec<f32> = x0
            .chunks(per)
            .zip(rngs.iter_mut())
            .flat_map(|(orig, rng)| self.init(orig, (c, h, w), rng))
            .collect();
        let mut margin = margins(model, &best, dims, y)?;
        let mut loss = margin.clone();
        let mut last_side = (0, Vec::new());
        for it in 0..self.p.queries {
            crate::interrupt::check()?;
            let active: Vec<usize> = (0..y.len()).filter(|&i| margin[i] > 0.0).collect();
            if active.is_empty() {
                break;
            }
            let s = self.side(it, h * w, (h, w));
            if self.p.norm == Norm::L2 && last_side.0 != s {
                last_side = (s, pattern(s));
            }
            let mut proposal = Vec::with_capacity(active.len() * per);
            for &i in &active {
                let (b, o) = (&best[i * per..(i + 1) * per], &x0[i * per..(i + 1) * per]);
                proposal.extend(self.propose(b, o, (c, h, w), s, &last_side.1, &mut rngs[i]));
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
        if self.p.norm == Norm::L2 && x0.dim(2)?.min(x0.dim(3)?) < 5 {
            return Err(Error::Shape(format!(
                "square under L2 needs images of at least 5×5 pixels, got {:?}",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The L2 window pattern: unit norm, positive rectangles on top and negative below, heaviest
    /// at each half's centre, symmetric left to right.
    #[test]
    fn the_l2_pattern_is_a_unit_pair_of_centred_rectangles() {
        for s in [3usize, 5, 9, 25] {
            let p = pattern(s);
            assert_eq!(p.len(), s * s);
            assert!((l2(p.iter().copied()) - 1.0).abs() < 1e-5, "side {s}");
            let at = |r: usize, c: usize| p[r * s + c];
            for r in 0..s {
                for c in 0..s {
                    assert!(
                        (at(r, c) - at(r, s - 1 - c)).abs() < 1e-6,
                        "side {s}: not symmetric at {r},{c}"
                    );
                    assert!(
                        if r < s / 2 { at(r, c) > 0.0 } else { at(r, c) < 0.0 },
                        "side {s}: sign at {r},{c}"
                    );
                }
            }
            let centre = (s / 2) / 2;
            assert!(
                at(centre, s / 2) >= at(0, 0),
                "side {s}: the centre is not the heaviest"
            );
        }
    }
}
