//! Tensor algebra as scripts write it (on candle only): broadcasting binary operations with
//! PyTorch's type promotion, element-wise functions, reductions over a dimension, per-sample
//! norms, shape changes and seeded constructors. Every operation is one or a few candle calls
//! (so gradients flow through them), and every misuse is an error naming the shapes or dtypes
//! involved, never a panic.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Shape, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The most elements a constructor or reshape may produce (16 GiB of f32): beyond this the
/// request is refused before allocating.
pub const MAX_ELEMENTS: usize = 1 << 32;

/// A binary operation between two tensors (or a tensor and a number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Minimum,
    Maximum,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Binary {
    /// How the operation is written in a script (`+`, `minimum`).
    pub fn symbol(self) -> &'static str {
        match self {
            Binary::Add => "+",
            Binary::Sub => "-",
            Binary::Mul => "*",
            Binary::Div => "/",
            Binary::Pow => "pow",
            Binary::Minimum => "minimum",
            Binary::Maximum => "maximum",
            Binary::Eq => "==",
            Binary::Ne => "!=",
            Binary::Lt => "<",
            Binary::Le => "<=",
            Binary::Gt => ">",
            Binary::Ge => ">=",
        }
    }

    /// Whether the result is a mask (u8: 1 where the comparison holds, 0 elsewhere).
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            Binary::Eq | Binary::Ne | Binary::Lt | Binary::Le | Binary::Gt | Binary::Ge
        )
    }
}

fn is_float(d: DType) -> bool {
    d.is_float()
}

/// The dtype two operands of `op` meet in, as PyTorch promotes: equal dtypes stay (except that
/// division and powers of integers become f32), a float beats an integer, f64 beats f32.
fn common(a: DType, b: DType, op: Binary) -> DType {
    let d = match (is_float(a), is_float(b)) {
        _ if a == b => a,
        (true, true) if a == DType::F64 || b == DType::F64 => DType::F64,
        (true, true) => DType::F32,
        (true, false) => a,
        (false, true) => b,
        (false, false) => DType::F32,
    };
    if !is_float(d) && matches!(op, Binary::Div | Binary::Pow) {
        DType::F32
    } else {
        d
    }
}

/// A float version of `t` (f32 for integer tensors and masks; float tensors unchanged).
pub fn to_float(t: &Tensor) -> Result<Tensor> {
    if is_float(t.dtype()) {
        Ok(t.clone())
    } else {
        Ok(t.to_dtype(DType::F32)?)
    }
}

/// The shape `a op b` broadcasts to, or an error naming both shapes.
pub fn broadcast_shape(a: &Shape, b: &Shape, what: &str) -> Result<Shape> {
    a.broadcast_shape_binary_op(b, "broadcast").map_err(|_| {
        Error::Shape(format!(
            "{what}: shapes {:?} and {:?} do not broadcast (dimensions are matched from the right; each pair must be equal or one of them 1)",
            a.dims(),
            b.dims()
        ))
    })
}

/// `a op b` with broadcasting and type promotion.
pub fn binary(a: &Tensor, b: &Tensor, op: Binary) -> Result<Tensor> {
    let what = format!("tensor {} tensor", op.symbol());
    let shape = broadcast_shape(a.shape(), b.shape(), &what)?;
    if !a.device().same_device(b.device()) {
        return Err(Error::Invalid(format!(
            "{what}: the tensors are on different devices ({:?} and {:?})",
            a.device(),
            b.device()
        )));
    }
    let dtype = common(a.dtype(), b.dtype(), op);
    let (a, b) = (a.to_dtype(dtype)?, b.to_dtype(dtype)?);
    let (a, b) = if a.dims() == b.dims() {
        (a, b)
    } else {
        (a.broadcast_as(&shape)?, b.broadcast_as(&shape)?)
    };
    Ok(match op {
        Binary::Add => (a + b)?,
        Binary::Sub => (a - b)?,
        Binary::Mul => (a * b)?,
        Binary::Div => (a / b)?,
        // exp(b·ln a): negative bases give NaN, as powf does
        Binary::Pow => a.pow(&b)?,
        Binary::Minimum => a.minimum(&b)?,
        Binary::Maximum => a.maximum(&b)?,
        Binary::Eq => a.eq(&b)?,
        Binary::Ne => a.ne(&b)?,
        Binary::Lt => a.lt(&b)?,
        Binary::Le => a.le(&b)?,
        Binary::Gt => a.gt(&b)?,
        Binary::Ge => a.ge(&b)?,
    })
}

/// `t op s` (or `s op t` when `scalar_left`), with the number taken in `t`'s float dtype (an
/// integer tensor or mask becomes f32 first). `+ − *` are one affine pass.
pub fn scalar(t: &Tensor, s: f64, op: Binary, scalar_left: bool) -> Result<Tensor> {
    let t = to_float(t)?;
    let affine = match (op, scalar_left) {
        (Binary::Add, _) => Some((1.0, s)),
        (Binary::Sub, false) => Some((1.0, -s)),
        (Binary::Sub, true) => Some((-1.0, s)),
        (Binary::Mul, _) => Some((s, 0.0)),
        _ => None,
    };
    if let Some((mul, add)) = affine {
        return Ok(t.affine(mul, add)?);
    }
    if op == Binary::Pow && !scalar_left {
        return Ok(t.powf(s)?);
    }
    let st = Tensor::new(s, t.device())?.to_dtype(t.dtype())?;
    if scalar_left {
        binary(&st, &t, op)
    } else {
        binary(&t, &st, op)
    }
}

/// An element-wise function of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    Neg,
    Abs,
    Sign,
    Sqrt,
    Exp,
    Log,
    Relu,
    Tanh,
    Sigmoid,
}

/// `f(t)` element-wise (integer tensors become f32 first).
pub fn unary(t: &Tensor, f: Unary) -> Result<Tensor> {
    let t = to_float(t)?;
    Ok(match f {
        Unary::Neg => t.neg()?,
        Unary::Abs => t.abs()?,
        Unary::Sign => t.sign()?,
        Unary::Sqrt => t.sqrt()?,
        Unary::Exp => t.exp()?,
        Unary::Log => t.log()?,
        Unary::Relu => t.relu()?,
        Unary::Tanh => t.tanh()?,
        Unary::Sigmoid => candle_nn::ops::sigmoid(&t)?,
    })
}

/// `clamp(t, lo, hi)` with tensor or number bounds (broadcast to `t`).
pub fn clamp(t: &Tensor, lo: &Tensor, hi: &Tensor) -> Result<Tensor> {
    let lower = binary(t, lo, Binary::Maximum)?;
    binary(&lower, hi, Binary::Minimum)
}

/// Where `mask` is non-zero take `a`, elsewhere `b` (all three broadcast together).
pub fn select(mask: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if is_float(mask.dtype()) {
        return Err(Error::Invalid(format!(
            "where_: the mask must be a comparison result (u8) or an integer tensor, got {:?}; write e.g. where_(t > 0.0, a, b)",
            mask.dtype()
        )));
    }
    let ab = broadcast_shape(a.shape(), b.shape(), "where_ (the two branches)")?;
    let shape = broadcast_shape(mask.shape(), &ab, "where_ (mask and branches)")?;
    let dtype = common(a.dtype(), b.dtype(), Binary::Add);
    let (a, b) = (
        a.to_dtype(dtype)?.broadcast_as(&shape)?,
        b.to_dtype(dtype)?.broadcast_as(&shape)?,
    );
    Ok(mask.broadcast_as(&shape)?.contiguous()?.where_cond(&a, &b)?)
}

/// Dimension `dim` of a rank-`rank` tensor (negative counts from the end), or an error.
pub fn dim(t: &Tensor, dim: i64) -> Result<usize> {
    let rank = t.rank() as i64;
    let d = if dim < 0 { dim + rank } else { dim };
    if d < 0 || d >= rank {
        return Err(Error::Invalid(format!(
            "dim {dim} is out of range for a tensor of shape {:?} (rank {rank}; -1 is the last dimension)",
            t.dims()
        )));
    }
    Ok(d as usize)
}

/// A reduction over one dimension (or all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
    ArgMax,
    ArgMin,
}

fn not_empty(t: &Tensor, what: &str) -> Result<()> {
    if t.elem_count() == 0 {
        return Err(Error::Invalid(format!(
            "{what} of an empty tensor (shape {:?})",
            t.dims()
        )));
    }
    Ok(())
}

/// The reduction `r` over dimension `d` (negative counts from the end), keeping it as size 1
/// when `keepdim`. Arg-reductions give u32 indices; the others keep a float dtype.
pub fn reduce(t: &Tensor, r: Reduce, d: i64, keepdim: bool) -> Result<Tensor> {
    let d = dim(t, d)?;
    if !matches!(r, Reduce::Sum) {
        not_empty(t, "max / min / mean / argmax / argmin")?;
    }
    let t = if matches!(r, Reduce::Sum | Reduce::Mean) {
        to_float(t)?
    } else {
        t.clone()
    };
    Ok(match (r, keepdim) {
        (Reduce::Sum, true) => t.sum_keepdim(d)?,
        (Reduce::Sum, false) => t.sum(d)?,
        (Reduce::Mean, true) => t.mean_keepdim(d)?,
        (Reduce::Mean, false) => t.mean(d)?,
        (Reduce::Max, true) => t.max_keepdim(d)?,
        (Reduce::Max, false) => t.max(d)?,
        (Reduce::Min, true) => t.min_keepdim(d)?,
        (Reduce::Min, false) => t.min(d)?,
        (Reduce::ArgMax, true) => t.argmax_keepdim(d)?,
        (Reduce::ArgMax, false) => t.argmax(d)?,
        (Reduce::ArgMin, true) => t.argmin_keepdim(d)?,
        (Reduce::ArgMin, false) => t.argmin(d)?,
    })
}

/// The reduction `r` over every element, as a number.
pub fn reduce_all(t: &Tensor, r: Reduce) -> Result<f64> {
    if r != Reduce::Sum {
        not_empty(t, "max / min / mean")?;
    }
    let flat = t.flatten_all()?.to_dtype(DType::F64)?;
    let v = match r {
        Reduce::Sum => flat.sum_all()?,
        Reduce::Mean => flat.mean_all()?,
        Reduce::Max => flat.max(0)?,
        Reduce::Min => flat.min(0)?,
        Reduce::ArgMax => flat.argmax(0)?.to_dtype(DType::F64)?,
        Reduce::ArgMin => flat.argmin(0)?.to_dtype(DType::F64)?,
    };
    Ok(v.to_scalar::<f64>()?)
}

/// A vector norm: `l0` (non-zero count), `l1`, `l2`, `linf`, or any `p > 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VecNorm {
    L0,
    L1,
    L2,
    Linf,
    P(f64),
}

impl VecNorm {
    /// `"l0" | "l1" | "l2" | "linf"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "l0" => Ok(VecNorm::L0),
            "l1" => Ok(VecNorm::L1),
            "l2" => Ok(VecNorm::L2),
            "linf" | "inf" => Ok(VecNorm::Linf),
            other => Err(Error::Invalid(format!(
                "unknown norm \"{other}\": use \"l0\", \"l1\", \"l2\" or \"linf\""
            ))),
        }
    }

    /// The norm of order `p` (0, 1, 2, infinity or any other p > 0).
    pub fn from_p(p: f64) -> Result<Self> {
        match p {
            _ if p == 0.0 => Ok(VecNorm::L0),
            _ if p == 1.0 => Ok(VecNorm::L1),
            _ if p == 2.0 => Ok(VecNorm::L2),
            _ if p == f64::INFINITY => Ok(VecNorm::Linf),
            _ if p.is_finite() && p > 0.0 => Ok(VecNorm::P(p)),
            _ => Err(Error::Invalid(format!(
                "norm order p must be 0, > 0 or infinity, got {p}"
            ))),
        }
    }
}

/// The norm over dimension `d` (kept as size 1 when `keepdim`).
pub fn norm(t: &Tensor, n: VecNorm, d: i64, keepdim: bool) -> Result<Tensor> {
    let d = dim(t, d)?;
    let t = to_float(t)?;
    let r = match n {
        VecNorm::L0 => t.ne(0.0)?.to_dtype(t.dtype())?.sum_keepdim(d)?,
        VecNorm::L1 => t.abs()?.sum_keepdim(d)?,
        VecNorm::L2 => t.sqr()?.sum_keepdim(d)?.sqrt()?,
        VecNorm::Linf => {
            not_empty(&t, "the linf norm")?;
            t.abs()?.max_keepdim(d)?
        }
        VecNorm::P(p) => t.abs()?.powf(p)?.sum_keepdim(d)?.powf(1.0 / p)?,
    };
    Ok(if keepdim { r } else { r.squeeze(d)? })
}

/// Per-sample norms of an `(N, …)` tensor over all but the first dimension, shaped
/// `(N, 1, …, 1)` so that `t / t.sample_norm("l2")` broadcasts.
pub fn sample_norm(t: &Tensor, n: VecNorm) -> Result<Tensor> {
    if t.rank() < 2 {
        return Err(Error::Shape(format!(
            "sample_norm needs a batch (N, …) of rank 2 or more, got shape {:?}",
            t.dims()
        )));
    }
    let mut shape = vec![1usize; t.rank()];
    shape[0] = t.dim(0)?;
    Ok(norm(&t.flatten_from(1)?, n, 1, true)?.reshape(shape)?)
}

/// Softmax (or log-softmax) over dimension `d`.
pub fn softmax(t: &Tensor, d: i64, log: bool) -> Result<Tensor> {
    let d = dim(t, d)?;
    let t = to_float(t)?;
    Ok(if log {
        candle_nn::ops::log_softmax(&t, d)?
    } else {
        candle_nn::ops::softmax(&t, d)?
    })
}

/// Integer indices as u32, or an error: a float tensor is not an index.
fn indices(idx: &Tensor, what: &str) -> Result<Tensor> {
    match idx.dtype() {
        DType::U32 => Ok(idx.clone()),
        DType::U8 | DType::I64 => Ok(idx.to_dtype(DType::U32)?),
        d => Err(Error::Invalid(format!(
            "{what}: indices must be an integer tensor (labels, argmax results), got {d:?}"
        ))),
    }
}

/// Check that every index is below `bound`.
fn check_bound(idx: &Tensor, bound: usize, what: &str) -> Result<()> {
    if idx.elem_count() == 0 {
        return Ok(());
    }
    let max = idx.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize;
    if max >= bound {
        return Err(Error::Invalid(format!(
            "{what}: index {max} is out of range for a dimension of size {bound}"
        )));
    }
    Ok(())
}

/// `t.gather(idx, d)`: along `d`, the elements `idx` names (same rank as `t`).
pub fn gather(t: &Tensor, idx: &Tensor, d: i64) -> Result<Tensor> {
    let d = dim(t, d)?;
    let idx = indices(idx, "gather")?;
    if idx.rank() != t.rank() {
        return Err(Error::Shape(format!(
            "gather: the indices (shape {:?}) must have the rank of the tensor (shape {:?}); for labels write y.reshape([-1, 1])",
            idx.dims(),
            t.dims()
        )));
    }
    check_bound(&idx, t.dim(d)?, "gather")?;
    Ok(t.contiguous()?.gather(&idx.contiguous()?, d)?)
}

/// `t.index_select(idx, d)`: the slices along `d` that the 1-d `idx` names.
pub fn index_select(t: &Tensor, idx: &Tensor, d: i64) -> Result<Tensor> {
    let d = dim(t, d)?;
    let idx = indices(idx, "index_select")?;
    if idx.rank() != 1 {
        return Err(Error::Shape(format!(
            "index_select: the indices must be 1-d, got shape {:?}",
            idx.dims()
        )));
    }
    check_bound(&idx, t.dim(d)?, "index_select")?;
    Ok(t.index_select(&idx, d)?)
}

/// Labels `(N,)` as one-hot rows `(N, classes)` in f32.
pub fn one_hot(labels: &Tensor, classes: usize) -> Result<Tensor> {
    let idx = indices(labels, "one_hot")?;
    if idx.rank() != 1 || classes == 0 {
        return Err(Error::Shape(format!(
            "one_hot: needs 1-d labels and at least one class, got shape {:?} and {classes} classes",
            idx.dims()
        )));
    }
    check_bound(&idx, classes, "one_hot")?;
    let n = idx.dim(0)?;
    // refused before allocating: (n, classes) f32 values
    shape(&[n as i64, i64::try_from(classes).unwrap_or(i64::MAX)], None)
        .map_err(|e| Error::Shape(format!("one_hot of {n} labels into {classes} classes: {e}")))?;
    if classes > u32::MAX as usize {
        return Err(Error::Shape(format!(
            "one_hot: {classes} classes is more than u32 labels can name"
        )));
    }
    let cols = Tensor::arange(0u32, classes as u32, idx.device())?.reshape((1, classes))?;
    Ok(idx
        .reshape((n, 1))?
        .broadcast_as((n, classes))?
        .eq(&cols.broadcast_as((n, classes))?)?
        .to_dtype(DType::F32)?)
}

/// A shape from script numbers: every dimension ≥ 0, at most one `-1` (inferred from `total`
/// when given), and at most [`MAX_ELEMENTS`] elements.
pub fn shape(dims: &[i64], total: Option<usize>) -> Result<Vec<usize>> {
    let holes = dims.iter().filter(|&&d| d == -1).count();
    if holes > 1 || dims.iter().any(|&d| d < -1) {
        return Err(Error::Shape(format!(
            "shape {dims:?}: dimensions must be >= 0, with at most one -1"
        )));
    }
    let known = dims
        .iter()
        .filter(|&&d| d >= 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            Error::Shape(format!(
                "shape {dims:?} has more than {MAX_ELEMENTS} elements (would need over {} GB as f32)",
                MAX_ELEMENTS * 4 / 1_000_000_000
            ))
        })?;
    let out = match (holes, total) {
        (1, Some(total)) if known > 0 && total % known == 0 => dims
            .iter()
            .map(|&d| if d == -1 { total / known } else { d as usize })
            .collect(),
        (1, Some(total)) => return Err(Error::Shape(format!("cannot reshape {total} elements into {dims:?}"))),
        (1, None) => return Err(Error::Shape(format!("shape {dims:?}: -1 is only allowed in reshape"))),
        _ => dims.iter().map(|&d| d as usize).collect(),
    };
    Ok(out)
}

/// `t` with dimensions `dims` (one of them may be -1).
pub fn reshape(t: &Tensor, dims: &[i64]) -> Result<Tensor> {
    let total = t.elem_count();
    let s = shape(dims, Some(total))?;
    if s.iter().product::<usize>() != total {
        return Err(Error::Shape(format!(
            "cannot reshape a tensor of shape {:?} ({total} elements) into {dims:?}",
            t.dims()
        )));
    }
    Ok(t.reshape(s)?)
}

/// Samples (rows along the first dimension) `start..end`; negative bounds count from the end
/// and bounds are clipped to the tensor, as Python slices.
pub fn rows(t: &Tensor, start: i64, end: i64) -> Result<Tensor> {
    if t.rank() == 0 {
        return Err(Error::Shape("rows: a scalar tensor has no rows".into()));
    }
    let n = t.dim(0)? as i64;
    let fix = |i: i64| if i < 0 { (i + n).max(0) } else { i.min(n) };
    let (a, b) = (fix(start), fix(end));
    Ok(t.narrow(0, a as usize, (b - a).max(0) as usize)?)
}

/// `len` elements along `d` from `start`.
pub fn narrow(t: &Tensor, d: i64, start: usize, len: usize) -> Result<Tensor> {
    let di = dim(t, d)?;
    let size = t.dim(di)?;
    if start.checked_add(len).is_none_or(|e| e > size) {
        return Err(Error::Shape(format!(
            "narrow: {start}..{} is outside dimension {d} of size {size} (shape {:?})",
            start.saturating_add(len),
            t.dims()
        )));
    }
    Ok(t.narrow(di, start, len)?)
}

fn same_rank_parts(parts: &[Tensor], what: &str) -> Result<()> {
    let Some(first) = parts.first() else {
        return Err(Error::Invalid(format!("{what}: needs at least one tensor")));
    };
    if let Some((i, p)) = parts.iter().enumerate().find(|(_, p)| p.rank() != first.rank()) {
        return Err(Error::Shape(format!(
            "{what}: tensor {i} has shape {:?}, tensor 0 has {:?} (ranks differ)",
            p.dims(),
            first.dims()
        )));
    }
    Ok(())
}

/// The tensors joined along an existing dimension `d` (all other dimensions equal).
pub fn cat(parts: &[Tensor], d: i64) -> Result<Tensor> {
    same_rank_parts(parts, "cat")?;
    let di = dim(&parts[0], d)?;
    for (i, p) in parts.iter().enumerate() {
        let (a, b) = (p.dims(), parts[0].dims());
        if a.iter().zip(b).enumerate().any(|(k, (x, y))| k != di && x != y) {
            return Err(Error::Shape(format!(
                "cat along dim {d}: tensor {i} has shape {a:?}, tensor 0 has {b:?} (only dim {d} may differ)"
            )));
        }
    }
    let dtype = parts[0].dtype();
    let parts = parts
        .iter()
        .map(|p| p.to_dtype(dtype))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, di)?)
}

/// The tensors (all of one shape) stacked along a new dimension `d`.
pub fn stack(parts: &[Tensor], d: i64) -> Result<Tensor> {
    same_rank_parts(parts, "stack")?;
    if let Some((i, p)) = parts.iter().enumerate().find(|(_, p)| p.dims() != parts[0].dims()) {
        return Err(Error::Shape(format!(
            "stack: tensor {i} has shape {:?}, tensor 0 has {:?} (all must be equal)",
            p.dims(),
            parts[0].dims()
        )));
    }
    let rank = parts[0].rank() as i64 + 1;
    let di = if d < 0 { d + rank } else { d };
    if di < 0 || di >= rank {
        return Err(Error::Invalid(format!(
            "stack: dim {d} is out of range for the result's rank {rank}"
        )));
    }
    let dtype = parts[0].dtype();
    let parts = parts
        .iter()
        .map(|p| p.to_dtype(dtype))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::stack(&parts, di as usize)?)
}

/// A tensor of shape `dims` filled with `value` (f32).
pub fn full(dims: &[i64], value: f64, device: &Device) -> Result<Tensor> {
    let s = shape(dims, None)?;
    Ok(Tensor::full(value as f32, s, device)?)
}

/// Uniform values in `[lo, hi)` (f32) from a generator seeded by `seed`.
pub fn rand_uniform(dims: &[i64], lo: f64, hi: f64, seed: u64, device: &Device) -> Result<Tensor> {
    if !(lo.is_finite() && hi.is_finite() && lo <= hi && (hi as f32 - lo as f32).is_finite()) {
        return Err(Error::Invalid(format!(
            "rand_uniform: needs finite lo <= hi whose difference fits a 32-bit float (±3.4e38), got {lo:e} and {hi:e}"
        )));
    }
    let s = shape(dims, None)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let n = s.iter().product();
    let (lo, hi) = (lo as f32, hi as f32);
    let v: Vec<f32> = (0..n).map(|_| lo + (hi - lo) * rng.random::<f32>()).collect();
    Ok(Tensor::from_vec(v, s, device)?)
}

/// Standard normal values (f32) from a generator seeded by `seed`.
pub fn rand_normal(dims: &[i64], seed: u64, device: &Device) -> Result<Tensor> {
    let s = shape(dims, None)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let n = s.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Ok(Tensor::from_vec(v, s, device)?)
}

/// A tensor (f32) of shape `dims` from its elements in row-major order.
pub fn from_values(values: Vec<f32>, dims: Vec<usize>, device: &Device) -> Result<Tensor> {
    if values.len() != dims.iter().product::<usize>() {
        return Err(Error::Shape(format!(
            "{} values do not fill shape {dims:?}",
            values.len()
        )));
    }
    Ok(Tensor::from_vec(values, dims, device)?)
}
