//! Tensors as scripts see them: shape, summary statistics, row access, a readable print.

use super::error::{to_rhai, RResult};
use super::{def, Reg};
use candle_core::{DType, Tensor};
use rhai::{Array, INT};

/// `Tensor[3, 28, 28] f32, range [0, 1], mean 0.13: [0, 0, 0.2, …]`
pub(crate) fn describe(t: &Tensor) -> String {
    let dims = t.dims().iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
    let flat = t
        .flatten_all()
        .and_then(|f| f.to_dtype(DType::F32))
        .and_then(|f| f.to_vec1::<f32>());
    match flat {
        Ok(v) if !v.is_empty() => {
            let min = v.iter().copied().fold(f32::INFINITY, f32::min);
            let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
            let head: Vec<String> = v.iter().take(8).map(|x| format!("{x:.4}")).collect();
            let more = if v.len() > 8 { ", …" } else { "" };
            format!(
                "Tensor[{dims}] {:?}, range [{min:.4}, {max:.4}], mean {mean:.4}: [{}{more}]",
                t.dtype(),
                head.join(", ")
            )
        }
        _ => format!("Tensor[{dims}] {:?} (empty)", t.dtype()),
    }
}

fn stat(t: &Tensor, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> RResult<f64> {
    if t.elem_count() == 0 {
        return Err(to_rhai("the tensor is empty"));
    }
    f(&t.flatten_all().and_then(|x| x.to_dtype(DType::F64)).map_err(to_rhai)?)
        .and_then(|x| x.to_scalar::<f64>())
        .map_err(to_rhai)
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<Tensor>("Tensor");
    def!(
        reg,
        "Tensor.shape() -> Array",
        "The dimensions, e.g. [10000, 1, 28, 28].",
        |t: &mut Tensor| { t.dims().iter().map(|&d| (d as INT).into()).collect::<Array>() }
    );
    def!(
        reg,
        "Tensor.len() -> int",
        "Size of the first dimension.",
        |t: &mut Tensor| t.dims().first().copied().unwrap_or(0) as INT
    );
    def!(
        reg,
        "Tensor.min() -> float",
        "Smallest element.",
        |t: &mut Tensor| stat(t, |x| x.min(0))
    );
    def!(reg, "Tensor.max() -> float", "Largest element.", |t: &mut Tensor| stat(
        t,
        |x| x.max(0)
    ));
    def!(
        reg,
        "Tensor.mean() -> float",
        "Mean of all elements.",
        |t: &mut Tensor| stat(t, |x| x.mean(0))
    );
    def!(
        reg,
        "Tensor.to_array() -> Array",
        "All elements, flattened, as an array of floats.",
        |t: &mut Tensor| -> RResult<Array> {
            let v = t
                .flatten_all()
                .and_then(|f| f.to_dtype(DType::F64))
                .and_then(|f| f.to_vec1::<f64>())
                .map_err(to_rhai)?;
            Ok(v.into_iter().map(Into::into).collect())
        }
    );
    reg.engine
        .register_indexer_get(|t: &mut Tensor, i: INT| -> RResult<Tensor> {
            let n = t.dims().first().copied().unwrap_or(0);
            let idx = if i < 0 { i + n as INT } else { i };
            if t.rank() == 0 || idx < 0 || idx as usize >= n {
                return Err(to_rhai(format!(
                    "index {i} is out of range for a tensor of shape {:?}",
                    t.dims()
                )));
            }
            t.get(idx as usize).map_err(to_rhai)
        });
    reg.docs.push(super::FnDoc {
        domain: reg.domain,
        sig: "Tensor[i: int] -> Tensor",
        doc: "Row i (negative counts from the end).",
    });
    let s = reg.session.clone();
    def!(
        reg,
        "Tensor.save(path: String)",
        "Write the tensor as safetensors (name \"tensor\"), atomically, with a .meta.json sidecar; out/… follows --out.",
        move |t: &mut Tensor, p: &str| -> RResult<()> {
            let host = t.to_device(&candle_core::Device::Cpu).map_err(to_rhai)?;
            let bytes = safetensors::serialize([("tensor", &host)], None).map_err(to_rhai)?;
            super::io::write_with_sidecar(&s, p, &bytes)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "load_tensor(path: String) -> Tensor",
        "A tensor written by Tensor.save (or the only tensor of any safetensors file).",
        move |p: &str| -> RResult<Tensor> {
            let path = s.resolve_out(p);
            let bytes = std::fs::read(&path).map_err(|e| to_rhai(format!("cannot read {}: {e}", path.display())))?;
            let mut all = candle_core::safetensors::load_buffer(&bytes, &s.device)
                .map_err(|e| to_rhai(format!("{}: not a safetensors file ({e})", path.display())))?;
            let n = all.len();
            let only = if n == 1 { all.values().next().cloned() } else { None };
            all.remove("tensor").or(only).ok_or_else(|| {
                to_rhai(format!(
                    "{}: holds {n} tensors and none is named \"tensor\"; it was not written by Tensor.save",
                    path.display()
                ))
            })
        }
    );
    def!(
        reg,
        "Tensor.to_string() -> String",
        "Shape, dtype, range, mean and the first values.",
        |t: &mut Tensor| describe(t)
    );
    reg.engine.register_fn("to_debug", |t: &mut Tensor| describe(t));
}
