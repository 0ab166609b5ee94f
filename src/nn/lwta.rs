//! Stochastic local winner-takes-all (Panousis et al. 2021, seed 001 section 4): the `C`
//! channels (or features) of a layer form `C/U` blocks of `U` competing units; in each block,
//! at each position, one winner is drawn with probabilities `softmax(h)` over the block and
//! passes its value `h`, the others output 0.
//!
//! Training draws a relaxed winner (Gumbel-softmax with temperature `τ`):
//! `ξ = softmax((h + g)/τ)`, output `h·ξ`, differentiable in `h`. Evaluation draws a hard
//! one-hot winner `argmax(h + g)` (a sample of the categorical `softmax(h)`), output `h` at the
//! winner; the gradient flows through the winner only. `g` is standard Gumbel noise from a
//! counter-based stream: the same key gives the same winners, whatever the thread count.

use super::random::{gumbel_add, gumbel_vec};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// How one LWTA layer draws its winners.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    /// Units per block.
    pub units: usize,
    /// Relaxation temperature (training only).
    pub temperature: f32,
    /// One-hot winners (evaluation) instead of relaxed ones (training).
    pub hard: bool,
    /// The Gumbel stream.
    pub key: u64,
}

/// `(blocks outside, U, positions inside)` of an `(N, C, …)` tensor, checking `U | C`.
fn geometry(dims: &[usize], u: usize) -> Result<(usize, usize, usize)> {
    if dims.len() < 2 || u == 0 || !dims[1].is_multiple_of(u) {
        bail!("lwta: {dims:?} cannot be cut into blocks of {u} channels");
    }
    Ok((dims[0] * dims[1] / u, u, dims[2..].iter().product()))
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("lwta: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("lwta: the input must be contiguous"),
    }
}

/// Elements per parallel task: whole blocks, about 64k values (a fixed number, so nothing
/// depends on the thread count).
fn task_len(block: usize) -> usize {
    block * (65_536 / block).max(1)
}

/// The winner weights ξ of one block (`u` units of `inner` positions, unit `j` of position
/// `p` at `j·inner + p`), whose first element is element `base` of the tensor: one-hot when
/// hard, else `softmax((h + g)/τ)` over the units at each position. `m` and `sum` are
/// scratch of `inner` values.
fn block_weights(d: &Draw, x: &[f32], base: usize, xi: &mut [f32], inner: usize, m: &mut [f32], sum: &mut [f32]) {
    gumbel_add(xi, x, d.key, base as u64);
    m.copy_from_slice(&xi[..inner]);
    for row in xi.chunks(inner).skip(1) {
        m.iter_mut().zip(row).for_each(|(m, &z)| *m = m.max(z));
    }
    if d.hard {
        // the first unit reaching the maximum wins (ties have probability 0)
        sum.fill(0.0);
        for row in xi.chunks_mut(inner) {
            for ((w, &m), taken) in row.iter_mut().zip(m.iter()).zip(sum.iter_mut()) {
                let win = *w >= m && *taken == 0.0;
                *w = f32::from(win);
                *taken += *w;
            }
        }
        return;
    }
    let inv_t = 1.0 / d.temperature;
    sum.fill(0.0);
    for row in xi.chunks_mut(inner) {
        for ((w, &m), s) in row.iter_mut().zip(m.iter()).zip(sum.iter_mut()) {
            *w = ((*w - m) * inv_t).exp();
            *s += *w;
        }
    }
    for row in xi.chunks_mut(inner) {
        row.iter_mut().zip(sum.iter()).for_each(|(w, s)| *w /= s);
    }
}

/// The winner weights ξ of every block of `x`, in parallel.
fn weights(d: &Draw, x: &[f32], (u, inner): (usize, usize)) -> Vec<f32> {
    let block = u * inner;
    let task = task_len(block);
    let mut xi = vec![0f32; x.len()];
    xi.par_chunks_mut(task)
        .zip(x.par_chunks(task))
        .enumerate()
        .for_each_init(
            || (vec![0f32; inner], vec![0f32; inner]),
            |(m, sum), (t, (xc, hc))| {
                for (b, (xb, hb)) in xc.chunks_mut(block).zip(hc.chunks(block)).enumerate() {
                    block_weights(d, hb, t * task + b * block, xb, inner, m, sum);
                }
            },
        );
    xi
}

/// The forward op; it keeps the weights ξ it drew for the backward pass.
struct LwtaFwd {
    draw: Draw,
    xi: Mutex<Option<Arc<Vec<f32>>>>,
}

impl CustomOp1 for LwtaFwd {
    fn name(&self) -> &'static str {
        "advlab-lwta"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, u, inner) = geometry(l.dims(), self.draw.units)?;
        let x = slice(s, l)?;
        let xi = weights(&self.draw, x, (u, inner));
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(1 << 14)
            .zip(x.par_chunks(1 << 14).zip(xi.par_chunks(1 << 14)))
            .for_each(|(y, (x, w))| y.iter_mut().zip(x).zip(w).for_each(|((y, x), w)| *y = x * w));
        *self.xi.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(xi));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let xi = self.xi.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let op = LwtaGrad { draw: self.draw, xi };
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }
}

/// `∂L/∂h` from `∂L/∂y` for `y = h·ξ(h)`: hard, `dy·ξ`; relaxed (ξ = softmax((h + g)/τ)),
/// `ξ_j·(dy_j + (dy_j·h_j − Σ_i dy_i·h_i·ξ_i)/τ)`. Uses the forward pass's ξ, or draws it
/// again (the same numbers) when it is gone.
struct LwtaGrad {
    draw: Draw,
    xi: Option<Arc<Vec<f32>>>,
}

impl CustomOp2 for LwtaGrad {
    fn name(&self) -> &'static str {
        "advlab-lwta-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, u, inner) = geometry(l1.dims(), self.draw.units)?;
        let (x, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        if x.len() != dy.len() {
            bail!("lwta backward: shapes differ");
        }
        let drawn;
        let xi: &[f32] = match &self.xi {
            Some(xi) if xi.len() == x.len() => xi,
            _ => {
                drawn = weights(&self.draw, x, (u, inner));
                &drawn
            }
        };
        let mut dx = vec![0f32; x.len()];
        if self.draw.hard {
            dx.par_chunks_mut(1 << 14)
                .zip(dy.par_chunks(1 << 14).zip(xi.par_chunks(1 << 14)))
                .for_each(|(d, (g, w))| d.iter_mut().zip(g).zip(w).for_each(|((d, g), w)| *d = g * w));
            return Ok((CpuStorage::F32(dx), l1.shape().clone()));
        }
        let inv_t = 1.0 / self.draw.temperature;
        let block = u * inner;
        let task = task_len(block);
        dx.par_chunks_mut(task)
            .zip(x.par_chunks(task).zip(dy.par_chunks(task).zip(xi.par_chunks(task))))
            .for_each_init(
                || vec![0f32; inner],
                |dot, (dc, (xc, (gc, wc)))| {
                    let blocks = dc
                        .chunks_mut(block)
                        .zip(xc.chunks(block).zip(gc.chunks(block).zip(wc.chunks(block))));
                    for (db, (xb, (gb, wb))) in blocks {
                        dot.fill(0.0);
                        for ((x, g), w) in xb.chunks(inner).zip(gb.chunks(inner)).zip(wb.chunks(inner)) {
                            for (((d, &x), &g), &w) in dot.iter_mut().zip(x).zip(g).zip(w) {
                                *d += g * x * w;
                            }
                        }
                        let rows = db
                            .chunks_mut(inner)
                            .zip(xb.chunks(inner).zip(gb.chunks(inner).zip(wb.chunks(inner))));
                        for (dr, (x, (g, w))) in rows {
                            for ((((o, &x), &g), &w), &d) in dr.iter_mut().zip(x).zip(g).zip(w).zip(dot.iter()) {
                                *o = w * (g + (g * x - d) * inv_t);
                            }
                        }
                    }
                },
            );
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// The LWTA activation of an `(N, C, …)` tensor with blocks of `d.units` consecutive
/// channels competing at each position.
pub fn lwta(x: &Tensor, d: Draw) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return lwta_candle(x, d);
    }
    x.contiguous()?.apply_op1(LwtaFwd {
        draw: d,
        xi: Mutex::new(None),
    })
}

/// The same computation in plain candle ops (other devices, and the reference the tests
/// compare the fused op against): the same Gumbel numbers, so the same winners.
pub fn lwta_candle(x: &Tensor, d: Draw) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (outer, u, inner) = geometry(&dims, d.units)?;
    let g = Tensor::from_vec(gumbel_vec(x.elem_count(), d.key), x.shape(), &candle_core::Device::Cpu)?
        .to_device(x.device())?;
    let z = (x + g)?.reshape((outer, u, inner))?;
    let xi = if d.hard {
        let m = z.max_keepdim(1)?;
        z.broadcast_ge(&m)?.to_dtype(DType::F32)?
    } else {
        candle_nn::ops::softmax(&(z / f64::from(d.temperature))?, 1)?
    };
    (x.reshape((outer, u, inner))? * xi)?.reshape(dims)
}
