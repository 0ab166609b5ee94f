//! Tensor algebra in scripts: operators (`+ - * /`, unary `-`, comparisons giving masks) with
//! tensors and numbers on either side, element-wise functions, reductions over a dimension,
//! per-sample norms, shape changes, seeded constructors, and back from tensors to data sets.
//! The work is `crate::algebra`'s; this file only converts arguments.

use super::error::{to_rhai, RResult};
use super::{def, Reg};
use crate::algebra::{self, Binary, Reduce, Unary, VecNorm};
use crate::data::Dataset;
use candle_core::{DType, Tensor};
use rhai::{Array, Dynamic, FLOAT, INT};

fn r<T>(v: crate::Result<T>) -> RResult<T> {
    v.map_err(to_rhai)
}

/// A number or a tensor as a tensor in `like`'s float dtype and device.
fn operand(v: &Dynamic, like: &Tensor, what: &str) -> RResult<Tensor> {
    if let Some(t) = v.clone().try_cast::<Tensor>() {
        return Ok(t);
    }
    let x =
        number(v).ok_or_else(|| to_rhai(format!("{what}: expected a number or a Tensor, got {}", v.type_name())))?;
    let dtype = if like.dtype().is_float() {
        like.dtype()
    } else {
        DType::F32
    };
    r(Tensor::new(x, like.device())
        .and_then(|t| t.to_dtype(dtype))
        .map_err(Into::into))
}

/// A number (float or integer) as a float.
fn number(v: &Dynamic) -> Option<FLOAT> {
    v.as_float().ok().or_else(|| v.as_int().ok().map(|i| i as FLOAT))
}

/// Array elements as integers (a shape or a list of indices).
fn ints(a: &Array, what: &str) -> RResult<Vec<i64>> {
    a.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_int()
                .map_err(|t| to_rhai(format!("{what}: element {i} must be an integer, got {t}")))
        })
        .collect()
}

/// Array elements as tensors.
fn tensors(a: &Array, what: &str) -> RResult<Vec<Tensor>> {
    a.iter()
        .enumerate()
        .map(|(i, v)| {
            v.clone()
                .try_cast::<Tensor>()
                .ok_or_else(|| to_rhai(format!("{what}: element {i} is {}, not a Tensor", v.type_name())))
        })
        .collect()
}

/// A (nested) array of numbers as its values in row-major order and its shape.
fn nested(v: &Dynamic, depth: usize, values: &mut Vec<f32>, shape: &mut Vec<usize>) -> RResult<()> {
    if depth > 8 {
        return Err(to_rhai("tensor: arrays nested deeper than 8 levels"));
    }
    if let Ok(x) = v.as_float() {
        return push_leaf(x, depth, values, shape);
    }
    if let Ok(i) = v.as_int() {
        return push_leaf(i as FLOAT, depth, values, shape);
    }
    let Some(arr) = v.read_lock::<Array>() else {
        return Err(to_rhai(format!(
            "tensor: expected numbers or arrays, got {}",
            v.type_name()
        )));
    };
    match shape.get(depth) {
        None if values.is_empty() || depth == 0 => shape.push(arr.len()),
        None => {
            return Err(to_rhai(
                "tensor: the arrays are ragged (a number where an array was expected)",
            ))
        }
        Some(&len) if len != arr.len() => {
            return Err(to_rhai(format!(
                "tensor: the arrays are ragged (lengths {len} and {} at depth {depth})",
                arr.len()
            )))
        }
        Some(_) => {}
    }
    for x in arr.iter() {
        nested(x, depth + 1, values, shape)?;
    }
    Ok(())
}

fn push_leaf(x: FLOAT, depth: usize, values: &mut Vec<f32>, shape: &[usize]) -> RResult<()> {
    if shape.len() != depth {
        return Err(to_rhai(
            "tensor: the arrays are ragged (an array where a number was expected)",
        ));
    }
    values.push(x as f32);
    Ok(())
}

/// The operators, each for (Tensor, Tensor), (Tensor, number) and (number, Tensor).
fn operators(reg: &mut Reg) {
    for op in [
        Binary::Add,
        Binary::Sub,
        Binary::Mul,
        Binary::Div,
        Binary::Eq,
        Binary::Ne,
        Binary::Lt,
        Binary::Le,
        Binary::Gt,
        Binary::Ge,
    ] {
        let name = op.symbol();
        let e = &mut *reg.engine;
        e.register_fn(name, move |a: Tensor, b: Tensor| r(algebra::binary(&a, &b, op)));
        e.register_fn(name, move |a: Tensor, b: FLOAT| r(algebra::scalar(&a, b, op, false)));
        e.register_fn(name, move |a: Tensor, b: INT| {
            r(algebra::scalar(&a, b as FLOAT, op, false))
        });
        e.register_fn(name, move |a: FLOAT, b: Tensor| r(algebra::scalar(&b, a, op, true)));
        e.register_fn(name, move |a: INT, b: Tensor| {
            r(algebra::scalar(&b, a as FLOAT, op, true))
        });
    }
    reg.engine
        .register_fn("-", |a: Tensor| r(algebra::unary(&a, Unary::Neg)));
    for (sig, doc) in [
        ("Tensor + Tensor|float -> Tensor", "Element-wise sum with broadcasting (a number may stand on either side; integer tensors and masks become f32 when they meet floats)."),
        ("Tensor - Tensor|float -> Tensor", "Element-wise difference with broadcasting; -t negates."),
        ("Tensor * Tensor|float -> Tensor", "Element-wise product with broadcasting."),
        ("Tensor / Tensor|float -> Tensor", "Element-wise quotient with broadcasting (integers divide as floats)."),
        ("Tensor == != < <= > >= Tensor|float -> Tensor", "Element-wise comparison with broadcasting: a u8 mask, 1 where it holds (mask.mean() is the share)."),
    ] {
        reg.docs.push(super::FnDoc {
            domain: reg.domain,
            sig,
            doc,
        });
    }
}

fn elementwise(reg: &mut Reg) {
    def!(reg, "Tensor.abs() -> Tensor", "|t| element-wise.", |t: &mut Tensor| r(
        algebra::unary(t, Unary::Abs)
    ));
    def!(
        reg,
        "Tensor.sign() -> Tensor",
        "-1, 0 or 1 element-wise (sign(0) = 0).",
        |t: &mut Tensor| r(algebra::unary(t, Unary::Sign))
    );
    def!(
        reg,
        "Tensor.sqrt() -> Tensor",
        "Square root element-wise.",
        |t: &mut Tensor| r(algebra::unary(t, Unary::Sqrt))
    );
    def!(reg, "Tensor.exp() -> Tensor", "e^t element-wise.", |t: &mut Tensor| r(
        algebra::unary(t, Unary::Exp)
    ));
    def!(
        reg,
        "Tensor.log() -> Tensor",
        "Natural logarithm element-wise.",
        |t: &mut Tensor| r(algebra::unary(t, Unary::Log))
    );
    def!(
        reg,
        "Tensor.relu() -> Tensor",
        "max(t, 0) element-wise.",
        |t: &mut Tensor| r(algebra::unary(t, Unary::Relu))
    );
    def!(
        reg,
        "Tensor.tanh() -> Tensor",
        "tanh element-wise.",
        |t: &mut Tensor| r(algebra::unary(t, Unary::Tanh))
    );
    def!(
        reg,
        "Tensor.sigmoid() -> Tensor",
        "1 / (1 + e^-t) element-wise.",
        |t: &mut Tensor| r(algebra::unary(t, Unary::Sigmoid))
    );
    def!(
        reg,
        "Tensor.pow(p: float|Tensor) -> Tensor",
        "t^p element-wise (p broadcast; negative bases give NaN for a tensor p).",
        |t: &mut Tensor, p: Dynamic| -> RResult<Tensor> {
            match p.clone().try_cast::<Tensor>() {
                Some(pt) => r(algebra::binary(t, &pt, Binary::Pow)),
                None => r(algebra::binary(t, &operand(&p, t, "pow")?, Binary::Pow)),
            }
        }
    );
    def!(
        reg,
        "Tensor.clamp(lo: float|Tensor, hi: float|Tensor) -> Tensor",
        "Each element limited to [lo, hi]; tensor bounds broadcast (e.g. x.clamp(x0 - eps, x0 + eps)).",
        |t: &mut Tensor, lo: Dynamic, hi: Dynamic| -> RResult<Tensor> {
            if let (Some(a), Some(b)) = (number(&lo), number(&hi)) {
                return r(algebra::to_float(t).and_then(|t| Ok(t.clamp(a, b)?)));
            }
            r(algebra::clamp(
                t,
                &operand(&lo, t, "clamp")?,
                &operand(&hi, t, "clamp")?,
            ))
        }
    );
    def!(
        reg,
        "Tensor.minimum(other: float|Tensor) -> Tensor",
        "Element-wise minimum with broadcasting.",
        |t: &mut Tensor, o: Dynamic| -> RResult<Tensor> {
            r(algebra::binary(t, &operand(&o, t, "minimum")?, Binary::Minimum))
        }
    );
    def!(
        reg,
        "Tensor.maximum(other: float|Tensor) -> Tensor",
        "Element-wise maximum with broadcasting.",
        |t: &mut Tensor, o: Dynamic| -> RResult<Tensor> {
            r(algebra::binary(t, &operand(&o, t, "maximum")?, Binary::Maximum))
        }
    );
    def!(
        reg,
        "where_(mask: Tensor, a: float|Tensor, b: float|Tensor) -> Tensor",
        "a where the mask is non-zero, b elsewhere (all three broadcast), e.g. where_(g > 0.0, 1.0, -1.0).",
        |mask: Tensor, a: Dynamic, b: Dynamic| -> RResult<Tensor> {
            let like = a
                .clone()
                .try_cast::<Tensor>()
                .or_else(|| b.clone().try_cast::<Tensor>())
                .unwrap_or_else(|| mask.clone());
            r(algebra::select(
                &mask,
                &operand(&a, &like, "where_")?,
                &operand(&b, &like, "where_")?,
            ))
        }
    );
    def!(
        reg,
        "Tensor.detach() -> Tensor",
        "The same values, cut from the gradient graph.",
        |t: &mut Tensor| t.detach()
    );
    def!(
        reg,
        "Tensor.to_float() -> Tensor",
        "The values as f32 (masks and labels become 0.0, 1.0, …).",
        |t: &mut Tensor| r(algebra::to_float(t))
    );
    def!(
        reg,
        "Tensor.dtype() -> String",
        "The element type: \"f32\", \"u32\" (labels, indices), \"u8\" (masks), ….",
        |t: &mut Tensor| t.dtype().as_str().to_string()
    );
    def!(
        reg,
        "Tensor.numel() -> int",
        "The number of elements.",
        |t: &mut Tensor| t.elem_count() as INT
    );
    def!(
        reg,
        "Tensor.item() -> float",
        "The value of a tensor with one element.",
        |t: &mut Tensor| -> RResult<FLOAT> {
            if t.elem_count() != 1 {
                return Err(to_rhai(format!(
                    "item: the tensor has shape {:?}, not one element",
                    t.dims()
                )));
            }
            r(algebra::reduce_all(t, Reduce::Sum))
        }
    );
}

fn reductions(reg: &mut Reg) {
    def!(
        reg,
        "Tensor.sum() -> float",
        "Sum of all elements, as a number.",
        |t: &mut Tensor| r(algebra::reduce_all(t, Reduce::Sum))
    );
    def!(
        reg,
        "Tensor.sum_all() -> Tensor",
        "Sum of all elements as a scalar tensor (gradients flow through it, e.g. a loss).",
        |t: &mut Tensor| r(algebra::to_float(t).and_then(|t| Ok(t.sum_all()?)))
    );
    def!(
        reg,
        "Tensor.mean_all() -> Tensor",
        "Mean of all elements as a scalar tensor (gradients flow through it).",
        |t: &mut Tensor| r(algebra::to_float(t).and_then(|t| Ok(t.mean_all()?)))
    );
    macro_rules! over_dim {
        ($sig1:literal, $sig2:literal, $doc:literal, $kind:expr) => {
            def!(reg, $sig1, $doc, |t: &mut Tensor, d: INT| r(algebra::reduce(
                t, $kind, d, false
            )));
            def!(reg, $sig2, $doc, |t: &mut Tensor, d: INT, k: bool| r(
                algebra::reduce(t, $kind, d, k)
            ));
        };
    }
    over_dim!(
        "Tensor.sum(dim: int) -> Tensor",
        "Tensor.sum(dim: int, keepdim: bool) -> Tensor",
        "Sum over one dimension (negative counts from the end), kept as size 1 with keepdim.",
        Reduce::Sum
    );
    over_dim!(
        "Tensor.mean(dim: int) -> Tensor",
        "Tensor.mean(dim: int, keepdim: bool) -> Tensor",
        "Mean over one dimension, kept as size 1 with keepdim.",
        Reduce::Mean
    );
    over_dim!(
        "Tensor.max(dim: int) -> Tensor",
        "Tensor.max(dim: int, keepdim: bool) -> Tensor",
        "Largest value over one dimension, kept as size 1 with keepdim.",
        Reduce::Max
    );
    over_dim!(
        "Tensor.min(dim: int) -> Tensor",
        "Tensor.min(dim: int, keepdim: bool) -> Tensor",
        "Smallest value over one dimension, kept as size 1 with keepdim.",
        Reduce::Min
    );
    over_dim!(
        "Tensor.argmax(dim: int) -> Tensor",
        "Tensor.argmax(dim: int, keepdim: bool) -> Tensor",
        "Index (u32) of the largest value over one dimension, e.g. model.logits(x).argmax(1).",
        Reduce::ArgMax
    );
    over_dim!(
        "Tensor.argmin(dim: int) -> Tensor",
        "Tensor.argmin(dim: int, keepdim: bool) -> Tensor",
        "Index (u32) of the smallest value over one dimension.",
        Reduce::ArgMin
    );
    def!(
        reg,
        "Tensor.norm(p: float, dim: int) -> Tensor",
        "The p-norm over one dimension (p = 0 counts non-zeros, 1, 2, any p > 0, or 1.0/0.0 for infinity).",
        |t: &mut Tensor, p: FLOAT, d: INT| -> RResult<Tensor> {
            r(algebra::VecNorm::from_p(p).and_then(|n| algebra::norm(t, n, d, false)))
        }
    );
    def!(
        reg,
        "Tensor.norm(p: float, dim: int, keepdim: bool) -> Tensor",
        "The p-norm over one dimension, kept as size 1 with keepdim.",
        |t: &mut Tensor, p: FLOAT, d: INT, k: bool| -> RResult<Tensor> {
            r(algebra::VecNorm::from_p(p).and_then(|n| algebra::norm(t, n, d, k)))
        }
    );
    def!(reg, "Tensor.sample_norm(norm: String) -> Tensor", "Per-sample norm (\"linf\" | \"l2\" | \"l1\" | \"l0\") over all but the first dimension, shaped (N, 1, …, 1) so that g / g.sample_norm(\"l2\") broadcasts.", |t: &mut Tensor, n: &str| -> RResult<Tensor> {
        r(VecNorm::parse(n).and_then(|n| algebra::sample_norm(t, n)))
    });
    def!(
        reg,
        "Tensor.softmax(dim: int) -> Tensor",
        "Softmax over one dimension (logits.softmax(1) are the probabilities).",
        |t: &mut Tensor, d: INT| r(algebra::softmax(t, d, false))
    );
    def!(
        reg,
        "Tensor.log_softmax(dim: int) -> Tensor",
        "Log-softmax over one dimension, computed stably.",
        |t: &mut Tensor, d: INT| r(algebra::softmax(t, d, true))
    );
    def!(
        reg,
        "Tensor.gather(indices: Tensor, dim: int) -> Tensor",
        "Along dim, the elements the integer indices name (same rank), e.g. logits.gather(y.reshape([-1, 1]), 1).",
        |t: &mut Tensor, i: Tensor, d: INT| r(algebra::gather(t, &i, d))
    );
    def!(
        reg,
        "Tensor.one_hot(classes: int) -> Tensor",
        "Labels (N,) as one-hot rows (N, classes) in f32.",
        |t: &mut Tensor, c: INT| -> RResult<Tensor> {
            let c = usize::try_from(c).map_err(|_| to_rhai(format!("one_hot: classes must be >= 1, got {c}")))?;
            r(algebra::one_hot(t, c))
        }
    );
}

fn shapes(reg: &mut Reg) {
    def!(
        reg,
        "Tensor.reshape(shape: Array) -> Tensor",
        "The same elements in another shape; one dimension may be -1 (inferred).",
        |t: &mut Tensor, s: Array| -> RResult<Tensor> { r(algebra::reshape(t, &ints(&s, "reshape")?)) }
    );
    def!(
        reg,
        "Tensor.flatten() -> Tensor",
        "All elements as one dimension.",
        |t: &mut Tensor| t.flatten_all().map_err(to_rhai)
    );
    def!(
        reg,
        "Tensor.flatten(start_dim: int) -> Tensor",
        "Dimensions from start_dim on merged into one (flatten(1): one row per sample).",
        |t: &mut Tensor, d: INT| -> RResult<Tensor> {
            let d = r(algebra::dim(t, d))?;
            t.flatten_from(d).map_err(to_rhai)
        }
    );
    def!(
        reg,
        "Tensor.transpose(dim0: int, dim1: int) -> Tensor",
        "Two dimensions swapped.",
        |t: &mut Tensor, a: INT, b: INT| -> RResult<Tensor> {
            let (a, b) = (r(algebra::dim(t, a))?, r(algebra::dim(t, b))?);
            t.transpose(a, b).map_err(to_rhai)
        }
    );
    def!(
        reg,
        "Tensor.rows(start: int, end: int) -> Tensor",
        "Samples start..end along the first dimension (negative counts from the end; clipped like a Python slice).",
        |t: &mut Tensor, a: INT, b: INT| r(algebra::rows(t, a, b))
    );
    def!(
        reg,
        "Tensor.narrow(dim: int, start: int, len: int) -> Tensor",
        "len elements along dim from start.",
        |t: &mut Tensor, d: INT, s: INT, l: INT| -> RResult<Tensor> {
            let (s, l) = (usize::try_from(s), usize::try_from(l));
            let (Ok(s), Ok(l)) = (s, l) else {
                return Err(to_rhai("narrow: start and len must be >= 0"));
            };
            r(algebra::narrow(t, d, s, l))
        }
    );
    def!(
        reg,
        "Tensor.index_select(indices: Tensor|Array, dim: int) -> Tensor",
        "The slices along dim that the 1-d integer indices name, in their order.",
        |t: &mut Tensor, i: Dynamic, d: INT| -> RResult<Tensor> {
            let idx = match i.clone().try_cast::<Tensor>() {
                Some(idx) => idx,
                None => {
                    let arr = i.into_array().map_err(|ty| {
                        to_rhai(format!("index_select: indices must be a Tensor or an array, got {ty}"))
                    })?;
                    let v = ints(&arr, "index_select")?;
                    let v: Vec<u32> = v
                        .iter()
                        .map(|&x| u32::try_from(x))
                        .collect::<Result<_, _>>()
                        .map_err(|_| to_rhai("index_select: indices must be >= 0"))?;
                    let n = v.len();
                    Tensor::from_vec(v, n, t.device()).map_err(to_rhai)?
                }
            };
            r(algebra::index_select(t, &idx, d))
        }
    );
    def!(
        reg,
        "cat(tensors: Array, dim: int) -> Tensor",
        "Tensors joined along an existing dimension (the others must match).",
        |a: Array, d: INT| r(algebra::cat(&tensors(&a, "cat")?, d))
    );
    def!(
        reg,
        "stack(tensors: Array, dim: int) -> Tensor",
        "Tensors of one shape stacked along a new dimension.",
        |a: Array, d: INT| r(algebra::stack(&tensors(&a, "stack")?, d))
    );
}

fn constructors(reg: &mut Reg) {
    let s = reg.session.clone();
    def!(
        reg,
        "zeros(shape: Array) -> Tensor",
        "A tensor of zeros (f32) on the session's device.",
        move |sh: Array| r(algebra::full(&ints(&sh, "zeros")?, 0.0, &s.device))
    );
    let s = reg.session.clone();
    def!(
        reg,
        "ones(shape: Array) -> Tensor",
        "A tensor of ones (f32).",
        move |sh: Array| r(algebra::full(&ints(&sh, "ones")?, 1.0, &s.device))
    );
    let s = reg.session.clone();
    def!(
        reg,
        "full(shape: Array, value: float) -> Tensor",
        "A tensor filled with one value (f32).",
        move |sh: Array, v: FLOAT| r(algebra::full(&ints(&sh, "full")?, v, &s.device))
    );
    def!(
        reg,
        "Tensor.zeros_like() -> Tensor",
        "Zeros of this tensor's shape, dtype and device.",
        |t: &mut Tensor| t.zeros_like().map_err(to_rhai)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "rand_uniform(shape: Array, lo: float, hi: float, seed: int) -> Tensor",
        "Uniform values in [lo, hi) (f32) from the seed: the same seed gives the same tensor.",
        move |sh: Array, lo: FLOAT, hi: FLOAT, seed: INT| {
            r(algebra::rand_uniform(
                &ints(&sh, "rand_uniform")?,
                lo,
                hi,
                seed as u64,
                &s.device,
            ))
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "rand_normal(shape: Array, seed: int) -> Tensor",
        "Standard normal values (f32) from the seed.",
        move |sh: Array, seed: INT| { r(algebra::rand_normal(&ints(&sh, "rand_normal")?, seed as u64, &s.device)) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "tensor(values: Array) -> Tensor",
        "A tensor (f32) from numbers or nested arrays of numbers, e.g. tensor([[1, 2], [3, 4]]).",
        move |a: Array| -> RResult<Tensor> {
            let (mut values, mut shape) = (Vec::new(), Vec::new());
            nested(&Dynamic::from_array(a), 0, &mut values, &mut shape)?;
            r(algebra::from_values(values, shape, &s.device))
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "tensor(values: Array, dtype: String) -> Tensor",
        "A tensor from nested arrays as \"f32\" or \"u32\" (labels, indices).",
        move |a: Array, dtype: &str| -> RResult<Tensor> {
            let (mut values, mut shape) = (Vec::new(), Vec::new());
            nested(&Dynamic::from_array(a), 0, &mut values, &mut shape)?;
            let t = r(algebra::from_values(values.clone(), shape, &s.device))?;
            match dtype {
                "f32" => Ok(t),
                // the arrays are read as f32, exact for whole numbers up to 2^24
                "u32"
                    if values
                        .iter()
                        .all(|v| (0.0..=16_777_216.0).contains(v) && v.fract() == 0.0) =>
                {
                    t.to_dtype(DType::U32).map_err(to_rhai)
                }
                "u32" => Err(to_rhai(
                    "tensor(…, \"u32\"): every value must be a whole number from 0 to 16777216 (2^24, exact as f32)",
                )),
                other => Err(to_rhai(format!(
                    "tensor: dtype must be \"f32\" or \"u32\", got \"{other}\""
                ))),
            }
        }
    );
}

fn datasets(reg: &mut Reg) {
    def!(
        reg,
        "Dataset.with_images(images: Tensor) -> Dataset",
        "The same labels with new images (N, C, H, W) of the same shape, e.g. a scripted transformation's output.",
        |d: &mut Dataset, t: Tensor| -> RResult<Dataset> {
            let name = format!("with_images({})", d.name());
            r(d.with_images(t, name))
        }
    );
    def!(
        reg,
        "dataset(images: Tensor, labels: Tensor) -> Dataset",
        "A data set from images (N, C, H, W) in [0, 1] and integer labels (N,); the classes are max label + 1.",
        |i: Tensor, l: Tensor| -> RResult<Dataset> {
            let classes = if l.elem_count() == 0 {
                0
            } else {
                r(algebra::reduce_all(&l, Reduce::Max))? as usize + 1
            };
            from_tensors(i, l, classes)
        }
    );
    def!(
        reg,
        "dataset(images: Tensor, labels: Tensor, classes: int) -> Dataset",
        "A data set from images (N, C, H, W) in [0, 1], integer labels (N,) and the number of classes.",
        |i: Tensor, l: Tensor, c: INT| -> RResult<Dataset> {
            let c = usize::try_from(c)
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(|| to_rhai(format!("dataset: classes must be >= 1, got {c}")))?;
            from_tensors(i, l, c)
        }
    );
}

fn from_tensors(images: Tensor, labels: Tensor, classes: usize) -> RResult<Dataset> {
    if labels.dtype().is_float() {
        return Err(to_rhai(format!(
            "dataset: labels must be an integer tensor (u32), got {:?}; use tensor([...], \"u32\") or argmax",
            labels.dtype()
        )));
    }
    if labels.elem_count() > 0 && r(algebra::reduce_all(&labels, Reduce::Max))? as usize >= classes {
        return Err(to_rhai(format!(
            "dataset: a label is outside 0..={}",
            classes.saturating_sub(1)
        )));
    }
    if images.elem_count() > 0 {
        let (lo, hi) = (
            r(algebra::reduce_all(&images, Reduce::Min))?,
            r(algebra::reduce_all(&images, Reduce::Max))?,
        );
        if !(lo >= 0.0 && hi <= 1.0) {
            return Err(to_rhai(format!(
                "dataset: images must be in [0, 1], got values from {lo} to {hi}"
            )));
        }
    }
    Dataset::new(images, labels, classes, "dataset").map_err(to_rhai)
}

pub(super) fn register(reg: &mut Reg) {
    operators(reg);
    elementwise(reg);
    reductions(reg);
    shapes(reg);
    constructors(reg);
    datasets(reg);
}
