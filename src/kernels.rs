//! The bottom layer: CPU kernels behind candle's custom-op mechanism, for the layers that
//! dominate every experiment (linear, 2-D convolution, 2×2 max pooling, ReLU) and the GEMM that
//! PCA shares. Depends on nothing of advlab's; `nn`, `reduce` and `attack` build on it.
//!
//! Why: candle's own backward passes compute every gradient, wanted or not (the weight
//! gradient during an attack, the input gradient of the first layer during training), and its
//! convolution backward goes through a slow `conv_transpose2d`. These ops compute only the
//! gradients whose argument is tracked, with im2col + a cache-blocked GEMM (the `gemm` crate
//! candle itself uses) parallelised over the batch. Models keep using ordinary candle tensors;
//! other devices keep candle's own kernels.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// The f32 slice of a contiguous CPU storage, or a clear error.
pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("{op}: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: the input must be contiguous"),
    }
}

/// `dst (m×n) = [dst +] a (m×k) · b (k×n)`, each matrix given by its row and column strides.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn sgemm(
    mnk: (usize, usize, usize),
    dst: &mut [f32],
    d_strides: (usize, usize),
    accumulate: bool,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    parallel: bool,
) {
    gemm_strided(
        mnk, dst, d_strides, accumulate, a, a_strides, b, b_strides, parallel, 1.0f32,
    )
}

/// `dst (m×n) = [dst +] a (m×k) · b (k×n)` for any element type the `gemm` crate supports,
/// each matrix given by its row and column strides; `one` is the type's 1.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided<T: Copy + 'static>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    (d_rs, d_cs): (usize, usize),
    accumulate: bool,
    a: &[T],
    (a_rs, a_cs): (usize, usize),
    b: &[T],
    (b_rs, b_cs): (usize, usize),
    parallel: bool,
    one: T,
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(dst.len() >= last(m, n, d_rs, d_cs), "sgemm: destination too small");
    assert!(a.len() >= last(m, k, a_rs, a_cs), "sgemm: left operand too small");
    assert!(b.len() >= last(k, n, b_rs, b_cs), "sgemm: right operand too small");
    if m == 0 || n == 0 {
        return;
    }
    let par = if parallel {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every index the strides reach inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            d_cs as isize,
            d_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            one,
            one,
            false,
            false,
            false,
            par,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Linear: y = x · wᵀ + b

/// `x (N, K) · w (O, K)ᵀ + b (O)`, computing in the backward pass only the gradients that are
/// tracked (the bias gradient is summed here: candle's reduction after a broadcast is slow).
struct Linear;

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "advlab-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, k) = l1.shape().dims2()?;
        let (o, k2) = l2.shape().dims2()?;
        if k != k2 {
            bail!("linear: input of {k} features for a weight of shape ({o}, {k2})");
        }
        let (x, w, b) = (
            slice(s1, l1, "linear")?,
            slice(s2, l2, "linear")?,
            slice(s3, l3, "linear")?,
        );
        if b.len() != o {
            bail!("linear: {} bias values for {o} outputs", b.len());
        }
        let mut y = vec![0f32; n * o];
        for row in y.chunks_mut(o) {
            row.copy_from_slice(b);
        }
        sgemm((n, o, k), &mut y, (o, 1), true, x, (k, 1), w, (1, k), true);
        Ok((CpuStorage::F32(y), Shape::from((n, o))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = if x.track_op() { Some(grad.matmul(w)?) } else { None };
        let dw = if w.track_op() { Some(grad.t()?.matmul(x)?) } else { None };
        let db = if b.track_op() {
            Some(grad.contiguous()?.apply_op1_no_bwd(&ChannelSum)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// `x · wᵀ + b` for `x (N, K)`, `w (O, K)`, `b (O)`.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.matmul(&w.t()?)?.broadcast_add(b);
    }
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, Linear)
}

// ---------------------------------------------------------------------------------------------
// Conv2d (groups 1, dilation 1) through im2col + GEMM

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geom {
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    stride: usize,
    oh: usize,
    ow: usize,
}

impl Geom {
    fn new(x: &[usize], k: &[usize], pad: usize, stride: usize) -> Result<Self> {
        let (&[_, c, h, w], &[o, c2, kh, kw]) = (x, k) else {
            bail!("conv2d: expected (N, C, H, W) input and (O, C, KH, KW) kernel, got {x:?} and {k:?}");
        };
        if c != c2 {
            bail!("conv2d: input of {c} channels for a kernel of {c2}");
        }
        if h + 2 * pad < kh || w + 2 * pad < kw || stride == 0 {
            bail!("conv2d: kernel {kh}×{kw} does not fit input {h}×{w} with padding {pad}");
        }
        let (oh, ow) = ((h + 2 * pad - kh) / stride + 1, (w + 2 * pad - kw) / stride + 1);
        Ok(Self {
            c,
            h,
            w,
            o,
            kh,
            kw,
            pad,
            stride,
            oh,
            ow,
        })
    }
    /// Output size after non-overlapping `s×s` pooling (floor).
    fn pooled(&self, s: usize) -> (usize, usize) {
        (self.oh / s, self.ow / s)
    }
    fn ckk(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn ohw(&self) -> usize {
        self.oh * self.ow
    }
    fn chw(&self) -> usize {
        self.c * self.h * self.w
    }
    /// With stride 1, the output columns `lo..hi` whose input column `ox + kj − pad` lies
    /// inside the row (the others fall on the zero padding).
    fn inside(&self, kj: usize) -> (usize, usize) {
        let lo = self.pad.saturating_sub(kj).min(self.ow);
        let hi = (self.w + self.pad).saturating_sub(kj).min(self.ow).max(lo);
        (lo, hi)
    }
    /// Input coordinate of output coordinate `out` and kernel offset `k`, if inside.
    fn src(&self, out: usize, k: usize, size: usize) -> Option<usize> {
        (out * self.stride + k).checked_sub(self.pad).filter(|&i| i < size)
    }
}

/// One sample `x (C, H, W)` into columns `(C·KH·KW, OH·OW)`.
fn im2col(g: &Geom, x: &[f32], col: &mut [f32]) {
    im2col_at(g, x, col, g.ohw())
}

/// One sample `x (C, H, W)` into the `OH·OW` columns at the start of `col`, whose rows
/// (`C·KH·KW` of them) are `ld` apart: the sample's block of a multi-sample column matrix.
#[inline(never)]
fn im2col_at(g: &Geom, x: &[f32], col: &mut [f32], ld: usize) {
    let ohw = g.ohw();
    for c in 0..g.c {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &mut col[((c * g.kh + ki) * g.kw + kj) * ld..][..ohw];
                for oy in 0..g.oh {
                    let dst = &mut row[oy * g.ow..][..g.ow];
                    match g.src(oy, ki, g.h) {
                        None => dst.fill(0.0),
                        Some(iy) => {
                            let src = &x[(c * g.h + iy) * g.w..][..g.w];
                            if g.stride == 1 {
                                // ix = ox + kj − pad: one contiguous run, zeros on either side
                                let (lo, hi) = g.inside(kj);
                                dst[..lo].fill(0.0);
                                dst[lo..hi].copy_from_slice(&src[lo + kj - g.pad..hi + kj - g.pad]);
                                dst[hi..].fill(0.0);
                            } else {
                                for (ox, d) in dst.iter_mut().enumerate() {
                                    *d = g.src(ox, kj, g.w).map_or(0.0, |ix| src[ix]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The `OH·OW` columns at the start of `col` (rows `ld` apart) added back into one sample
/// `dx (C, H, W)`.
#[inline(never)]
fn col2im_at(g: &Geom, col: &[f32], dx: &mut [f32], ld: usize) {
    let ohw = g.ohw();
    for c in 0..g.c {
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &col[((c * g.kh + ki) * g.kw + kj) * ld..][..ohw];
                for oy in 0..g.oh {
                    if let Some(iy) = g.src(oy, ki, g.h) {
                        let dst = &mut dx[(c * g.h + iy) * g.w..][..g.w];
                        let src = &row[oy * g.ow..][..g.ow];
                        if g.stride == 1 {
                            // ix = ox + kj − pad: one contiguous run
                            let (lo, hi) = g.inside(kj);
                            let d = &mut dst[lo + kj - g.pad..hi + kj - g.pad];
                            d.iter_mut().zip(&src[lo..hi]).for_each(|(a, v)| *a += v);
                        } else {
                            for (ox, v) in src.iter().enumerate() {
                                if let Some(ix) = g.src(ox, kj, g.w) {
                                    dst[ix] += v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The checked `(x, kernel, bias)` of a convolution: its geometry, batch size and slices.
fn conv_args<'a>(
    (s1, l1): (&'a CpuStorage, &Layout),
    (s2, l2): (&'a CpuStorage, &Layout),
    (s3, l3): (&'a CpuStorage, &Layout),
    pad: usize,
    stride: usize,
) -> Result<(Geom, usize, [&'a [f32]; 3])> {
    let g = Geom::new(l1.dims(), l2.dims(), pad, stride)?;
    let (x, k, b) = (
        slice(s1, l1, "conv2d")?,
        slice(s2, l2, "conv2d")?,
        slice(s3, l3, "conv2d")?,
    );
    if b.len() != g.o {
        bail!("conv2d: {} bias values for {} output channels", b.len(), g.o);
    }
    Ok((g, l1.dims()[0], [x, k, b]))
}

/// Columns of at least this many positions make an efficient GEMM: samples whose maps are
/// smaller are convolved in groups, their columns side by side (measured on PreAct ResNet-18,
/// whose last stages have 8×8 and 4×4 maps).
const MIN_COLUMNS: usize = 256;

/// How many samples a group of this geometry's convolutions holds.
fn group(g: &Geom) -> usize {
    MIN_COLUMNS.div_ceil(g.ohw().max(1)).max(1)
}

/// A group of samples' convolution, `ys (B, O, OH·OW) = k · [im2col(x_1) … im2col(x_B)] + b`,
/// through the buffers `col (C·KH·KW × B·OH·OW)` and `tmp (O × B·OH·OW)`.
fn conv_group(g: &Geom, xs: &[f32], k: &[f32], b: &[f32], (col, tmp): (&mut Vec<f32>, &mut Vec<f32>), ys: &mut [f32]) {
    let (ckk, ohw) = (g.ckk(), g.ohw());
    let n = xs.len() / g.chw();
    if n == 1 {
        col.resize(ckk * ohw, 0.0);
        return conv_sample(g, xs, k, b, col, ys);
    }
    let ld = n * ohw;
    col.resize(ckk * ld, 0.0);
    tmp.resize(g.o * ld, 0.0);
    for (i, x) in xs.chunks(g.chw()).enumerate() {
        im2col_at(g, x, &mut col[i * ohw..], ld);
    }
    sgemm((g.o, ld, ckk), tmp, (ld, 1), false, k, (ckk, 1), col, (ld, 1), false);
    for (i, y) in ys.chunks_mut(g.o * ohw).enumerate() {
        for ((row, &bias), o) in y.chunks_mut(ohw).zip(b).zip(0..) {
            for (d, &v) in row.iter_mut().zip(&tmp[o * ld + i * ohw..][..ohw]) {
                *d = v + bias;
            }
        }
    }
}

/// One sample's convolution `ys (O, OH·OW) = k · im2col(xs) + b`, through the buffer `col`.
fn conv_sample(g: &Geom, xs: &[f32], k: &[f32], b: &[f32], col: &mut [f32], ys: &mut [f32]) {
    let (ckk, ohw) = (g.ckk(), g.ohw());
    for (row, &bias) in ys.chunks_mut(ohw).zip(b) {
        row.fill(bias);
    }
    im2col(g, xs, col);
    sgemm((g.o, ohw, ckk), ys, (ohw, 1), true, k, (ckk, 1), col, (ohw, 1), false);
}

/// Element-wise sum of per-thread accumulators (`len` zeros when there are none).
fn sum_parts(parts: impl ParallelIterator<Item = Vec<f32>>, len: usize) -> Vec<f32> {
    parts
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(b).for_each(|(u, v)| *u += v);
            a
        })
        .unwrap_or_else(|| vec![0f32; len])
}

thread_local! {
    /// Work buffers of this thread kept between kernel calls (see [`Scratch`]).
    static POOL: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The most buffers a thread keeps: the convolutions use three at a time.
const POOL_SIZE: usize = 4;

/// A work buffer (im2col columns, a group's GEMM output) taken from this thread's pool and
/// given back when dropped, so that a training step does not map, fault in and zero fresh
/// pages for every chunk of every convolution. Its contents are whatever the last user left:
/// every user writes before it reads.
struct Scratch(Vec<f32>);

impl Scratch {
    /// A buffer of `len` values.
    fn take(len: usize) -> Self {
        let mut v = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
        v.resize(len, 0.0);
        Scratch(v)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_SIZE {
                p.push(v);
            }
        });
    }
}

/// Samples per parallel chunk: about one chunk per thread.
fn chunk(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// Convolution with bias, `(x, kernel, bias)`: the bias gradient is summed here too, since
/// candle's reduction over (N, H, W) after a broadcast add is slow.
struct Conv2d {
    pad: usize,
    stride: usize,
}

impl CustomOp3 for Conv2d {
    fn name(&self) -> &'static str {
        "advlab-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, n, [x, k, b]) = conv_args((s1, l1), (s2, l2), (s3, l3), self.pad, self.stride)?;
        let ohw = g.ohw();
        let mut y = vec![0f32; n * g.o * ohw];
        let grp = group(&g);
        y.par_chunks_mut(grp * g.o * ohw)
            .zip(x.par_chunks(grp * g.chw()))
            .for_each_init(
                || (Scratch::take(0), Scratch::take(0)),
                |(col, tmp), (ys, xs)| conv_group(&g, xs, k, b, (&mut col.0, &mut tmp.0), ys),
            );
        Ok((CpuStorage::F32(y), Shape::from((n, g.o, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        k: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        conv_grads(x, k, b, grad, (self.pad, self.stride), OutGrad::Given)
    }
}

/// Σ over every axis but the second of an (N, C, …) tensor: the bias gradient of a linear
/// (N, O) or convolutional (N, C, H, W) layer.
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "advlab-channel-sum"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        if dims.len() < 2 {
            bail!("bias gradient: expected (N, C, …), got {dims:?}");
        }
        let (n, c, hw) = (dims[0], dims[1], dims[2..].iter().product::<usize>());
        let x = slice(st, l, "bias gradient")?;
        let out: Vec<f32> = (0..c)
            .into_par_iter()
            .map(|ch| (0..n).map(|i| x[(i * c + ch) * hw..][..hw].iter().sum::<f32>()).sum())
            .collect();
        Ok((CpuStorage::F32(out), Shape::from(c)))
    }
}

/// Where the backward pass of a convolution finds each sample's output gradient `dz (O, OH·OW)`.
enum OutGrad {
    /// The incoming gradient is `dz` itself (a plain convolution).
    Given,
    /// The incoming gradient is that of `relu(max_pool_s(z))`: each pooled value goes back to
    /// its window's kept maximum (`ConvPoolRelu`).
    Unpooled { s: usize, argmax: Arc<Vec<u8>> },
}

/// The gradients of a convolution from `(x, k, dy)`, as one flat tensor `[dk | db | dx]`
/// (`dx` only when `want_dx`, `dk` zero unless `want_dk`), in one pass over the samples: per
/// sample `dk += dz · im2col(x)ᵀ`, `db += Σ dz` and `dx = col2im(kᵀ · dz)`, the kernel and bias
/// parts summed per thread then reduced.
struct ConvGrad {
    pad: usize,
    stride: usize,
    from: OutGrad,
    want_dx: bool,
    want_dk: bool,
}

impl CustomOp3 for ConvGrad {
    fn name(&self) -> &'static str {
        "advlab-conv2d-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), l2.dims(), self.pad, self.stride)?;
        let n = l1.dims()[0];
        let what = "conv2d backward";
        let (x, k, dy) = (slice(s1, l1, what)?, slice(s2, l2, what)?, slice(s3, l3, what)?);
        let (ckk, ohw) = (g.ckk(), g.ohw());
        let per = match &self.from {
            OutGrad::Given => g.o * ohw,
            OutGrad::Unpooled { s, argmax } => {
                let (ph, pw) = g.pooled(*s);
                let per = g.o * ph * pw;
                if argmax.len() != n * per {
                    bail!("{what}: {} kept maxima for {n} × {per} outputs", argmax.len());
                }
                per
            }
        };
        if dy.len() != n * per {
            bail!("{what}: gradient of {} values for {n} × {per} outputs", dy.len());
        }
        let head = g.o * ckk + g.o;
        let mut out = vec![0f32; head + if self.want_dx { n * g.chw() } else { 0 }];
        let (acc_out, dx) = out.split_at_mut(head);
        let imgs = chunk(n);
        // dx is split in the same sample chunks as the inputs (empty when not wanted)
        let dx_chunks: Vec<&mut [f32]> = if self.want_dx {
            dx.chunks_mut(imgs * g.chw()).collect()
        } else {
            (0..n.div_ceil(imgs)).map(|_| Default::default()).collect()
        };
        let acc = x
            .par_chunks(imgs * g.chw())
            .zip(dy.par_chunks(imgs * per))
            .zip(dx_chunks.into_par_iter())
            .enumerate()
            .map(|(chunk_at, ((xs, dys), dxs))| {
                let mut acc = vec![0f32; head];
                let grp = group(&g);
                let mut col = Scratch::take(ckk * grp * ohw);
                let mut dzs = Scratch::take(g.o * grp * ohw);
                let mut buf = Scratch::take(match self.from {
                    OutGrad::Given => 0,
                    OutGrad::Unpooled { .. } => g.o * ohw,
                });
                let (col, dzs, buf) = (&mut col.0, &mut dzs.0, &mut buf.0);
                let samples = xs.len() / g.chw();
                for start in (0..samples).step_by(grp) {
                    // the group's output gradients side by side: dz (O × B·OH·OW)
                    let m = grp.min(samples - start);
                    let ld = m * ohw;
                    for i in start..start + m {
                        let dyi = &dys[i * per..][..per];
                        let dz: &[f32] = match &self.from {
                            OutGrad::Given => dyi,
                            OutGrad::Unpooled { s, argmax } => {
                                let ami = &argmax[(chunk_at * imgs + i) * per..][..per];
                                let (pw, pp) = (g.pooled(*s).1, per / g.o);
                                buf.fill(0.0);
                                for ((zp, gp), ap) in buf.chunks_mut(ohw).zip(dyi.chunks(pp)).zip(ami.chunks(pp)) {
                                    unpool_plane(gp, ap, zp, g.ow, pw, *s);
                                }
                                buf
                            }
                        };
                        for (o, zp) in dz.chunks(ohw).enumerate() {
                            dzs[o * ld + (i - start) * ohw..][..ohw].copy_from_slice(zp);
                        }
                    }
                    let dz = &dzs[..g.o * ld];
                    let (dk, db) = acc.split_at_mut(g.o * ckk);
                    for (d, zp) in db.iter_mut().zip(dz.chunks(ld)) {
                        *d += zp.iter().sum::<f32>();
                    }
                    let col = &mut col[..ckk * ld];
                    if self.want_dk {
                        for i in 0..m {
                            im2col_at(&g, &xs[(start + i) * g.chw()..][..g.chw()], &mut col[i * ohw..], ld);
                        }
                        sgemm((g.o, ckk, ld), dk, (ckk, 1), true, dz, (ld, 1), col, (1, ld), false);
                    }
                    if self.want_dx {
                        sgemm((ckk, ld, g.o), col, (ld, 1), false, k, (1, ckk), dz, (ld, 1), false);
                        for i in 0..m {
                            let d = &mut dxs[(start + i) * g.chw()..][..g.chw()];
                            col2im_at(&g, &col[i * ohw..], d, ld);
                        }
                    }
                }
                acc
            });
        let acc = sum_parts(acc, head);
        acc_out.copy_from_slice(&acc);
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// The tracked ones of `(dx, dk, db)` for a convolution of `x` by `(k, b)` with `(pad, stride)`,
/// whose output gradient comes `from` the incoming `grad`.
fn conv_grads(
    x: &Tensor,
    k: &Tensor,
    b: &Tensor,
    grad: &Tensor,
    (pad, stride): (usize, usize),
    from: OutGrad,
) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let want = (x.track_op(), k.track_op(), b.track_op());
    if want == (false, false, false) {
        return Ok((None, None, None));
    }
    let op = ConvGrad {
        pad,
        stride,
        from,
        want_dx: want.0,
        want_dk: want.1,
    };
    let (n, c, h, w) = x.dims4()?;
    let kd = k.dims4()?;
    let (nk, o) = (kd.0 * kd.1 * kd.2 * kd.3, kd.0);
    let all = x.apply_op3_no_bwd(k, &grad.contiguous()?, &op)?;
    let dk = want.1.then(|| all.narrow(0, 0, nk)?.reshape(kd)).transpose()?;
    let db = want.2.then(|| all.narrow(0, nk, o)).transpose()?;
    let dx = want
        .0
        .then(|| all.narrow(0, nk + o, n * c * h * w)?.reshape((n, c, h, w)))
        .transpose()?;
    Ok((dx, dk, db))
}

/// 2-D convolution with stride, zero padding and bias: `x (N, C, H, W)`, `k (O, C, KH, KW)`, `b (O)`.
pub fn conv2d(x: &Tensor, k: &Tensor, b: &Tensor, pad: usize, stride: usize) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x
            .conv2d(k, pad, stride, 1, 1)?
            .broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?);
    }
    x.contiguous()?
        .apply_op3(&k.contiguous()?, &b.contiguous()?, Conv2d { pad, stride })
}

// ---------------------------------------------------------------------------------------------
// Max pooling 2×2, stride 2

/// Max over non-overlapping `s×s` windows (floor), with a backward pass that routes each
/// gradient to the first maximum of its window (as PyTorch does).
struct MaxPool {
    s: usize,
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "advlab-max-pool"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let s = self.s;
        let (oh, ow) = (h / s, w / s);
        let x = slice(st, l, "max_pool2d")?;
        let mut y = vec![0f32; n * c * oh * ow];
        let planes = (n * c).max(1);
        let per = planes.div_ceil(rayon::current_num_threads().max(1) * 4).max(1);
        y.par_chunks_mut(per * oh * ow)
            .zip(x.par_chunks(per * h * w))
            .for_each(|(yp, xp)| {
                for (ys, xs) in yp.chunks_mut(oh * ow).zip(xp.chunks(h * w)) {
                    pool_plane(xs, ys, w, ow, s);
                }
            });
        Ok((CpuStorage::F32(y), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let _ = res;
        Ok(Some(
            x.apply_op2_no_bwd(&grad.contiguous()?, &MaxPoolGrad { s: self.s })?,
        ))
    }
}

/// Max over `s×s` windows of one plane of width `w` into `ys` (rows of `ow`).
#[inline(never)]
fn pool_plane(xs: &[f32], ys: &mut [f32], w: usize, ow: usize, s: usize) {
    for (oy, yrow) in ys.chunks_mut(ow).enumerate() {
        if s == 2 {
            let (r0, r1) = (&xs[2 * oy * w..][..w], &xs[(2 * oy + 1) * w..][..w]);
            for (ox, out) in yrow.iter_mut().enumerate() {
                let (a, b) = (r0[2 * ox].max(r0[2 * ox + 1]), r1[2 * ox].max(r1[2 * ox + 1]));
                *out = a.max(b);
            }
            continue;
        }
        for (ox, out) in yrow.iter_mut().enumerate() {
            let mut m = f32::NEG_INFINITY;
            for i in 0..s {
                for &v in &xs[(oy * s + i) * w + ox * s..][..s] {
                    if v > m {
                        m = v;
                    }
                }
            }
            *out = m;
        }
    }
}

struct MaxPoolGrad {
    s: usize,
}

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "advlab-max-pool-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l1.shape().dims4()?;
        let s = self.s;
        let (oh, ow) = (h / s, w / s);
        let (x, dy) = (
            slice(s1, l1, "max_pool2d backward")?,
            slice(s2, l2, "max_pool2d backward")?,
        );
        let mut dx = vec![0f32; n * c * h * w];
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w).zip(dy.par_chunks(oh * ow)))
            .for_each(|(dxs, (xs, dys))| pool_grad_plane(xs, dys, dxs, w, ow, s));
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Route each window's gradient to its first maximum, in one plane (`dxs` starts at zero).
#[inline(never)]
fn pool_grad_plane(xs: &[f32], dys: &[f32], dxs: &mut [f32], w: usize, ow: usize, s: usize) {
    if s == 2 {
        // branch-free: the first maximum of (a b / c d) in row-major order
        for (oy, grow) in dys.chunks(ow).enumerate() {
            let (r0, r1) = (2 * oy * w, (2 * oy + 1) * w);
            for (ox, &g) in grow.iter().enumerate() {
                let (p0, p1) = (r0 + 2 * ox, r1 + 2 * ox);
                let (a, b, c, d) = (xs[p0], xs[p0 + 1], xs[p1], xs[p1 + 1]);
                let (i01, m01) = if b > a { (1u8, b) } else { (0u8, a) };
                let (i23, m23) = if d > c { (3u8, d) } else { (2u8, c) };
                let i = if m23 > m01 { i23 } else { i01 };
                dxs[p0] = if i == 0 { g } else { 0.0 };
                dxs[p0 + 1] = if i == 1 { g } else { 0.0 };
                dxs[p1] = if i == 2 { g } else { 0.0 };
                dxs[p1 + 1] = if i == 3 { g } else { 0.0 };
            }
        }
        return;
    }
    for (oy, grow) in dys.chunks(ow).enumerate() {
        for (ox, &g) in grow.iter().enumerate() {
            let mut best = (oy * s) * w + ox * s;
            for i in 0..s {
                let row = (oy * s + i) * w + ox * s;
                for p in row..row + s {
                    if xs[p] > xs[best] {
                        best = p;
                    }
                }
            }
            dxs[best] = g;
        }
    }
}

/// Max pooling over `s×s` windows with stride `s`.
pub fn max_pool2d(x: &Tensor, s: usize) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.max_pool2d(s);
    }
    x.contiguous()?.apply_op1(MaxPool { s })
}

// ---------------------------------------------------------------------------------------------
// Convolution, max pooling and ReLU fused: relu(max_pool(conv2d(x)))

/// No gradient reaches this window: its maximum was not positive, so the ReLU cut it.
const CUT: u8 = u8::MAX;

/// `relu(max_pool_s(conv2d(x, k, b)))` in one pass per sample, so the full-size convolution
/// output never leaves the cache: each sample's output planes are pooled while hot, and only
/// the window of each maximum is kept (one byte per pooled value) for the backward pass, which
/// rebuilds the sample's output gradient in a cache-sized buffer and computes the input, kernel
/// and bias gradients from it in the same pass.
struct ConvPoolRelu {
    pad: usize,
    stride: usize,
    s: usize,
    /// Per pooled value, the row-major index of its window's first maximum, or `CUT`.
    argmax: OnceLock<Arc<Vec<u8>>>,
}

impl CustomOp3 for ConvPoolRelu {
    fn name(&self) -> &'static str {
        "advlab-conv-pool-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, n, [x, k, b]) = conv_args((s1, l1), (s2, l2), (s3, l3), self.pad, self.stride)?;
        let (ckk, ohw, s) = (g.ckk(), g.ohw(), self.s);
        let (ph, pw) = g.pooled(s);
        let per = g.o * ph * pw;
        let mut y = vec![0f32; n * per];
        let mut am = vec![0u8; n * per];
        y.par_chunks_mut(per.max(1))
            .zip(am.par_chunks_mut(per.max(1)))
            .zip(x.par_chunks(g.chw()))
            .for_each_init(
                || (Scratch::take(ckk * ohw), Scratch::take(g.o * ohw)),
                |(col, z), ((ys, ams), xs)| {
                    let (col, z) = (&mut col.0, &mut z.0);
                    conv_sample(&g, xs, k, b, col, z);
                    for ((zp, yp), ap) in z.chunks(ohw).zip(ys.chunks_mut(ph * pw)).zip(ams.chunks_mut(ph * pw)) {
                        pool_relu_plane(zp, yp, ap, g.ow, pw, s);
                    }
                },
            );
        // a second forward through the same op value cannot happen (candle builds one per call)
        let _ = self.argmax.set(Arc::new(am));
        Ok((CpuStorage::F32(y), Shape::from((n, g.o, ph, pw))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        k: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(argmax) = self.argmax.get() else {
            bail!("conv2d + max_pool + relu backward: the forward pass kept no maxima");
        };
        let from = OutGrad::Unpooled {
            s: self.s,
            argmax: argmax.clone(),
        };
        conv_grads(x, k, b, grad, (self.pad, self.stride), from)
    }
}

/// Max of each `s×s` window of one plane (width `w`) with the ReLU applied, into `ys` (rows of
/// `pw`), and the row-major index of each window's first maximum into `am` (`CUT` where the
/// maximum is not positive).
#[inline(never)]
fn pool_relu_plane(zs: &[f32], ys: &mut [f32], am: &mut [u8], w: usize, pw: usize, s: usize) {
    for (py, (yrow, arow)) in ys.chunks_mut(pw).zip(am.chunks_mut(pw)).enumerate() {
        for (px, (out, a)) in yrow.iter_mut().zip(arow.iter_mut()).enumerate() {
            let (mut m, mut at) = (f32::NEG_INFINITY, 0usize);
            for i in 0..s {
                for (j, &v) in zs[(py * s + i) * w + px * s..][..s].iter().enumerate() {
                    if v > m {
                        (m, at) = (v, i * s + j);
                    }
                }
            }
            if m > 0.0 {
                (*out, *a) = (m, at as u8);
            } else {
                (*out, *a) = (0.0, CUT);
            }
        }
    }
}

/// Each pooled gradient back to its window's kept maximum in one plane (`dz` starts at zero).
#[inline(never)]
fn unpool_plane(gs: &[f32], am: &[u8], dz: &mut [f32], w: usize, pw: usize, s: usize) {
    for (p, (&gv, &a)) in gs.iter().zip(am).enumerate() {
        if a != CUT {
            let (py, px, a) = (p / pw, p % pw, a as usize);
            dz[(py * s + a / s) * w + px * s + a % s] = gv;
        }
    }
}

/// `relu(max_pool2d(conv2d(x, k, b, pad, stride), s))` fused (see `ConvPoolRelu`), with the
/// same values and gradients as the three ops in a row.
pub fn conv2d_pool_relu(x: &Tensor, k: &Tensor, b: &Tensor, pad: usize, stride: usize, s: usize) -> Result<Tensor> {
    if !x.device().is_cpu() || s * s > usize::from(CUT) || s == 0 {
        return relu(&max_pool2d(&conv2d(x, k, b, pad, stride)?, s)?);
    }
    let op = ConvPoolRelu {
        pad,
        stride,
        s,
        argmax: OnceLock::new(),
    };
    x.contiguous()?.apply_op3(&k.contiguous()?, &b.contiguous()?, op)
}

/// `f` applied to every element, in parallel chunks.
pub(crate) fn par_map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(1 << 14)
        .zip(x.par_chunks(1 << 14))
        .for_each(|(ys, xs)| ys.iter_mut().zip(xs).for_each(|(o, &v)| *o = f(v)));
    y
}

// ---------------------------------------------------------------------------------------------
// ReLU with a one-pass backward

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "advlab-relu"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = par_map(slice(st, l, "relu")?, |v| v.max(0.0));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&grad.contiguous()?, &ReluGrad)?))
    }
}

/// `grad` where the ReLU's output is positive, 0 elsewhere (PyTorch's convention at 0).
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "advlab-relu-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (slice(s1, l1, "relu backward")?, slice(s2, l2, "relu backward")?);
        let mut dx = vec![0f32; y.len()];
        dx.par_chunks_mut(1 << 14)
            .zip(y.par_chunks(1 << 14).zip(g.par_chunks(1 << 14)))
            .for_each(|(d, (ys, gs))| {
                for ((o, &v), &gv) in d.iter_mut().zip(ys).zip(gs) {
                    *o = if v > 0.0 { gv } else { 0.0 };
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `max(x, 0)`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x.relu();
    }
    x.contiguous()?.apply_op1(Relu)
}

// ---------------------------------------------------------------------------------------------
// Resampling by matrices on the last two axes

/// `(factor·n × n)` row-major: nearest-neighbour up-sampling by an integer factor.
pub(crate) fn nearest_up(n: usize, factor: usize) -> Vec<f32> {
    let mut m = vec![0f32; n * factor * n];
    for i in 0..n * factor {
        m[i * n + i / factor] = 1.0;
    }
    m
}

/// `rows · x · colsᵀ` on the last two axes of `x (…, H, W)`, for `rows (H' × H)` and
/// `cols (W' × W)` given row-major.
pub(crate) fn resample(x: &Tensor, rows: (&[f32], usize), cols: (&[f32], usize), device: &Device) -> Result<Tensor> {
    let dims = x.dims();
    let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let r = Tensor::from_slice(rows.0, (rows.1, h), device)?.to_dtype(x.dtype())?;
    let c = Tensor::from_slice(cols.0, (cols.1, w), device)?.to_dtype(x.dtype())?;
    r.broadcast_matmul(&x.contiguous()?)?.broadcast_matmul(&c.t()?)
}

// ---------------------------------------------------------------------------------------------
// Batch norm: per-channel moments, and the per-channel normalisation with a two-pass backward

/// The per-channel mean and biased variance of an `(N, C, …)` tensor as a `(2, C)` tensor,
/// each accumulated in f64 (two passes: the mean, then the centred squares).
struct Moments;

impl CustomOp1 for Moments {
    fn name(&self) -> &'static str {
        "advlab-moments"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, s) = ncs(l.dims(), "batch norm")?;
        let x = slice(st, l, "batch norm")?;
        let m = (n * s).max(1) as f64;
        let per: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let runs = || (0..n).map(move |i| &x[(i * c + ch) * s..][..s]);
                let mean = runs().flat_map(|r| r.iter()).map(|&v| v as f64).sum::<f64>() / m;
                let var = runs()
                    .flat_map(|r| r.iter())
                    .map(|&v| (v as f64 - mean).powi(2))
                    .sum::<f64>()
                    / m;
                (mean, var)
            })
            .collect();
        let mut out: Vec<f32> = per.iter().map(|p| p.0 as f32).collect();
        out.extend(per.iter().map(|p| p.1 as f32));
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

/// `(N, C, S)` of an `(N, C, …)` layout: samples, channels, values per channel and sample.
fn ncs(dims: &[usize], op: &str) -> Result<(usize, usize, usize)> {
    if dims.len() < 2 {
        bail!("{op}: expected (N, C, …), got {dims:?}");
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

/// The per-channel mean and biased variance of `x (N, C, …)` (a CPU tensor).
pub(crate) fn channel_moments(x: &Tensor) -> Result<(Vec<f32>, Vec<f32>)> {
    let m = x.contiguous()?.apply_op1_no_bwd(&Moments)?.to_vec2::<f32>()?;
    Ok((m[0].clone(), m[1].clone()))
}

/// `y = (x − mean)·rstd·γ + β` per channel of `x (N, C, …)`, with `γ`, `β` of shape `(C)`,
/// and with `relu` the ReLU of that in the same pass (batch norm → ReLU, the pattern of every
/// pre-activation block: one pass over the activations instead of two, and one buffer).
/// `batch`: the mean and rstd are the batch's own (training), so the input gradient also flows
/// through them; else they are constants (the running statistics, evaluation).
struct BatchNorm {
    mean: Vec<f32>,
    rstd: Vec<f32>,
    batch: bool,
    relu: bool,
}

/// `out[i] = a[c]·x[i] + b[c]` for every value `i` of channel `c` (clamped at 0 with `relu`), in
/// parallel over samples.
fn per_channel(x: &[f32], (c, s): (usize, usize), a: &[f32], b: &[f32], relu: bool, out: &mut [f32]) {
    let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
    out.par_chunks_mut(c * s).zip(x.par_chunks(c * s)).for_each(|(o, xs)| {
        for ch in 0..c {
            let (av, bv) = (a[ch], b[ch]);
            for (ov, &xv) in o[ch * s..][..s].iter_mut().zip(&xs[ch * s..][..s]) {
                *ov = (av * xv + bv).max(floor);
            }
        }
    });
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "advlab-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, s) = ncs(l1.dims(), "batch norm")?;
        let (x, g, b) = (
            slice(s1, l1, "batch norm")?,
            slice(s2, l2, "batch norm")?,
            slice(s3, l3, "batch norm")?,
        );
        // y = x·scale + shift with scale = γ·rstd, shift = β − mean·scale
        let scale: Vec<f32> = (0..c).map(|ch| g[ch] * self.rstd[ch]).collect();
        let shift: Vec<f32> = (0..c).map(|ch| b[ch] - self.mean[ch] * scale[ch]).collect();
        let mut y = vec![0f32; x.len()];
        per_channel(x, (c, s), &scale, &shift, self.relu, &mut y);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let want = (x.track_op(), g.track_op(), b.track_op());
        if want == (false, false, false) {
            return Ok((None, None, None));
        }
        let c = x.dim(1)?;
        let op = BatchNormGrad {
            mean: self.mean.clone(),
            rstd: self.rstd.clone(),
            gamma: g.to_vec1::<f32>()?,
            batch: self.batch,
            relu: self.relu,
            want_dx: want.0,
        };
        // the output only matters for the ReLU's mask: without one, x stands in (no third buffer read)
        let x = x.contiguous()?;
        let y = if self.relu { res } else { &x };
        let all = x.apply_op3_no_bwd(&grad.contiguous()?, y, &op)?;
        let dg = want.1.then(|| all.narrow(0, 0, c)).transpose()?;
        let db = want.2.then(|| all.narrow(0, c, c)).transpose()?;
        let dx = want
            .0
            .then(|| all.narrow(0, 2 * c, x.elem_count())?.reshape(x.dims()))
            .transpose()?;
        Ok((dx, dg, db))
    }
}

/// The gradients of [`BatchNorm`] from `(x, dy, y)` as one flat tensor `[dγ | dβ | dx]` (`dx`
/// only when `want_dx`): `dβ = Σ dy`, `dγ = Σ dy·x̂`, and with batch statistics
/// `dx = γ·rstd·(dy − dβ/M − x̂·dγ/M)` (M values per channel), else `dx = γ·rstd·dy`; with `relu`,
/// `dy` is first zeroed where the output `y` is not positive (PyTorch's convention at 0).
struct BatchNormGrad {
    mean: Vec<f32>,
    rstd: Vec<f32>,
    gamma: Vec<f32>,
    batch: bool,
    relu: bool,
    want_dx: bool,
}

impl CustomOp3 for BatchNormGrad {
    fn name(&self) -> &'static str {
        "advlab-batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, s) = ncs(l1.dims(), "batch norm backward")?;
        let (x, dy, y) = (
            slice(s1, l1, "batch norm backward")?,
            slice(s2, l2, "batch norm backward")?,
            slice(s3, l3, "batch norm backward")?,
        );
        let relu = self.relu;
        // the gradient reaching the normalisation: through the ReLU's mask when fused
        let through = move |g: f32, out: f32| if relu && out <= 0.0 { 0.0 } else { g };
        // per channel: Σ dy and Σ dy·x̂, in f64
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mu, r) = (self.mean[ch] as f64, self.rstd[ch] as f64);
                let (mut sd, mut sdx) = (0f64, 0f64);
                for i in 0..n {
                    let at = (i * c + ch) * s;
                    for ((&xv, &g), &yv) in x[at..][..s].iter().zip(&dy[at..][..s]).zip(&y[at..][..s]) {
                        let g = through(g, yv) as f64;
                        sd += g;
                        sdx += g * (xv as f64 - mu) * r;
                    }
                }
                (sd, sdx)
            })
            .collect();
        let mut out = Vec::with_capacity(2 * c + if self.want_dx { x.len() } else { 0 });
        out.extend(sums.iter().map(|p| p.1 as f32));
        out.extend(sums.iter().map(|p| p.0 as f32));
        if self.want_dx {
            // dx = a·dy + b·x + d per channel
            let m = (n * s).max(1) as f64;
            let (mut a, mut bx, mut d) = (vec![0f32; c], vec![0f32; c], vec![0f32; c]);
            for ch in 0..c {
                let (g, r, mu) = (self.gamma[ch] as f64, self.rstd[ch] as f64, self.mean[ch] as f64);
                a[ch] = (g * r) as f32;
                if self.batch {
                    let (sd, sdx) = sums[ch];
                    bx[ch] = (-g * r * r * sdx / m) as f32;
                    d[ch] = (-g * r * sd / m + g * r * r * mu * sdx / m) as f32;
                }
            }
            let mut dx = vec![0f32; x.len()];
            dx.par_chunks_mut(c * s)
                .zip(x.par_chunks(c * s).zip(dy.par_chunks(c * s).zip(y.par_chunks(c * s))))
                .for_each(|(o, (xs, (gs, ys)))| {
                    for ch in 0..c {
                        let (av, bv, dv) = (a[ch], bx[ch], d[ch]);
                        let at = ch * s;
                        let values = xs[at..][..s].iter().zip(&gs[at..][..s]).zip(&ys[at..][..s]);
                        for (ov, ((&xv, &g), &yv)) in o[at..][..s].iter_mut().zip(values) {
                            *ov = av * through(g, yv) + bv * xv + dv;
                        }
                    }
                });
            out.extend(dx);
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// How a batch norm normalises: by the batch's own moments (training: the input gradient flows
/// through them) or by the running statistics, and whether a ReLU follows in the same op.
#[derive(Clone, Copy)]
pub struct NormMode {
    pub batch: bool,
    pub relu: bool,
}

/// Batch norm of `x (N, C, …)` on the CPU: `(x − mean)·rstd·γ + β` per channel, `rstd` =
/// 1/√(var + eps), then the ReLU when `mode.relu`. `mean` and `var` are the batch's own moments
/// when `mode.batch`, else the running statistics.
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    (mean, var): (&[f32], &[f32]),
    eps: f64,
    mode: NormMode,
) -> Result<Tensor> {
    let rstd = var.iter().map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32).collect();
    let op = BatchNorm {
        mean: mean.to_vec(),
        rstd,
        batch: mode.batch,
        relu: mode.relu,
    };
    x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}
