//! `advlab inspect FILE`: what a safetensors file holds, read from its header alone (a 180 MB
//! WideResNet is not loaded): the kind of file (an advlab checkpoint, data set or reducer, or a
//! plain PyTorch state_dict), its metadata, every tensor's name, type and shape, and how to load
//! it: the PyTorch module whose `state_dict` it is, and the advlab call. For a state_dict without
//! advlab metadata, the preset whose names and shapes it matches, if one does.

// What a script or a file gives is not trusted: no indexing that can panic on it (the
// loaders and the bindings use `get`, iterators or a checked shape instead).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::error::{Error, Result};
use crate::nn::Arch;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

/// The largest header read (safetensors' own limit).
const MAX_HEADER: u64 = 100 << 20;

/// One tensor of the file, as its header describes it.
#[derive(Debug)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// What `inspect` found: the report, and what is wrong with the file (exit code 1 when any).
pub struct Inspection {
    pub text: String,
    pub problems: Vec<String>,
}

/// The metadata and tensors of the safetensors file at `path`, every offset checked against the
/// file's size.
pub fn read_header(path: &Path) -> Result<(BTreeMap<String, String>, Vec<TensorInfo>)> {
    let bad = |why: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("not a safetensors file ({why})"),
    };
    let mut file = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let size = file
        .metadata()
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| bad(format!("{size} bytes, too short for a header")))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER || n > size - 8 {
        return Err(bad(format!("a header of {n} bytes in a file of {size}")));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    let data = size - 8 - n;
    let mut meta = BTreeMap::new();
    let mut tensors = Vec::new();
    for (name, v) in json {
        if name == "__metadata__" {
            let m = v.as_object().ok_or_else(|| bad("__metadata__ is not a map".into()))?;
            for (k, v) in m {
                let text = v
                    .as_str()
                    .ok_or_else(|| bad(format!("metadata `{k}` is not a string")))?;
                meta.insert(k.clone(), text.to_string());
            }
            continue;
        }
        let field = |key: &str| v.get(key).ok_or_else(|| bad(format!("tensor `{name}` has no {key}")));
        let dtype = field("dtype")?
            .as_str()
            .ok_or_else(|| bad(format!("tensor `{name}`: dtype is not a string")))?
            .to_string();
        let numbers = |key: &str| -> Result<Vec<u64>> {
            field(key)?
                .as_array()
                .and_then(|a| a.iter().map(|x| x.as_u64()).collect::<Option<Vec<u64>>>())
                .ok_or_else(|| bad(format!("tensor `{name}`: {key} is not a list of whole numbers")))
        };
        let shape = numbers("shape")?;
        let offsets = numbers("data_offsets")?;
        let start = match offsets[..] {
            [a, b] if a <= b && b <= data => a,
            _ => {
                return Err(bad(format!(
                    "tensor `{name}`: data_offsets {offsets:?} outside the {data} bytes of data"
                )))
            }
        };
        let shape = shape
            .into_iter()
            .map(usize::try_from)
            .collect::<std::result::Result<Vec<usize>, _>>()
            .map_err(|_| bad(format!("tensor `{name}`: a dimension too large")))?;
        tensors.push((start, TensorInfo { name, dtype, shape }));
    }
    tensors.sort_by_key(|(offset, t)| (*offset, t.name.clone()));
    Ok((meta, tensors.into_iter().map(|(_, t)| t).collect()))
}

fn elements(t: &TensorInfo) -> u64 {
    t.shape.iter().map(|&d| d as u64).product()
}

/// The file's tensors as an aligned table.
fn tensor_table(tensors: &[TensorInfo]) -> String {
    let width = tensors.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for t in tensors {
        let _ = writeln!(out, "  {:width$}  {:4}  {:?}", t.name, t.dtype, t.shape);
    }
    out
}

/// The names and shapes `arch`'s state_dict has.
fn expected(arch: &Arch) -> Vec<(String, Vec<usize>)> {
    arch.param_specs()
        .map(|specs| specs.into_iter().map(|s| (s.name, s.shape)).collect())
        .unwrap_or_default()
}

/// Whether the file's tensors are exactly `arch`'s (PyTorch's `num_batches_tracked` aside).
fn fits(arch: &Arch, tensors: &[TensorInfo]) -> bool {
    let mut want = expected(arch);
    let mut have: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .filter(|t| !t.name.ends_with("num_batches_tracked"))
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    want.sort();
    have.sort();
    want == have
}

/// The presets a plain state_dict could be, from the names it has and the sizes its shapes
/// give (classes, depth, width), each with the script expression that builds it.
fn candidates(tensors: &[TensorInfo]) -> Vec<(String, Arch)> {
    let shape = |name: &str| tensors.iter().find(|t| t.name == name).map(|t| t.shape.clone());
    let mut out = Vec::new();
    if shape("feature_extractor.conv1.weight").is_some() {
        if let Ok(a) = Arch::trades_small_cnn(crate::nn::TRADES_DROP) {
            out.push(("trades_small_cnn()".to_string(), a));
        }
    }
    if shape("conv1.weight").is_some() && shape("fc1.weight").is_some() {
        out.push(("madry_mnist_cnn()".to_string(), Arch::madry_mnist_cnn()));
    }
    let rows = |name: &str| shape(name).and_then(|s| s.first().copied());
    if let Some(classes) = rows("linear.weight").filter(|_| shape("layer1.0.bn1.weight").is_some()) {
        if let Ok(a) = Arch::preact_resnet18(classes) {
            out.push((format!("preact_resnet18(#{{ classes: {classes} }})"), a));
        }
    }
    if let (Some(classes), Some(width)) = (rows("fc.weight"), rows("block1.layer.0.conv1.weight")) {
        let blocks = tensors
            .iter()
            .filter(|t| t.name.starts_with("block1.layer.") && t.name.ends_with(".conv1.weight"))
            .count();
        let p = crate::nn::WideResnetParams {
            depth: 6 * blocks + 4,
            widen: width / 16,
            classes,
            ..Default::default()
        };
        if let Ok(a) = Arch::wide_resnet(&p) {
            out.push((
                format!(
                    "wide_resnet(#{{ depth: {}, widen: {}, classes: {} }})",
                    p.depth, p.widen, p.classes
                ),
                a,
            ));
        }
    }
    // advlab's own presets, saved without their metadata: Linear layers only, or the CNN
    let weights: Vec<&TensorInfo> = tensors.iter().filter(|t| t.name.ends_with(".weight")).collect();
    let matrices: Option<Vec<[usize; 2]>> = weights
        .iter()
        .map(|t| <[usize; 2]>::try_from(t.shape.as_slice()).ok())
        .collect();
    if let Some(&[_, inputs]) = matrices.as_ref().and_then(|m| m.first()) {
        let mut layers = vec![inputs];
        layers.extend(matrices.iter().flatten().map(|[rows, _]| *rows));
        if let Ok(a) = Arch::mlp(layers.clone()) {
            out.push((format!("mlp({layers:?})"), a));
        }
    }
    if let (Some(first), Some(last)) = (shape("0.weight"), shape("9.weight")) {
        for side in [28, 32] {
            if let (Some(&c), Some(&classes)) = (first.get(1), last.first()) {
                if let Ok(a) = Arch::cnn_for([c, side, side], classes) {
                    out.push((
                        format!("cnn(#{{ input: [{c}, {side}, {side}], classes: {classes} }})"),
                        a,
                    ));
                }
            }
        }
    }
    out
}

/// Inspect the file at `path` (shown as `shown`).
pub fn inspect(path: &Path) -> Result<Inspection> {
    let (meta, tensors) = read_header(path)?;
    let shown = path.display().to_string();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let total: u64 = tensors.iter().map(elements).sum();
    let mut text = String::new();
    let mut problems = Vec::new();
    let kind = if meta.contains_key("advlab.arch") {
        "advlab model checkpoint"
    } else if meta.contains_key("advlab.dataset") {
        "advlab data set"
    } else if meta.contains_key("advlab.reducer") {
        "advlab reducer"
    } else {
        "safetensors without advlab metadata (a PyTorch state_dict or a tensor file)"
    };
    let _ = writeln!(
        text,
        "{shown}: {kind}\n{} tensors, {} values, {} bytes",
        tensors.len(),
        crate::util::thousands(total),
        crate::util::thousands(size)
    );
    if !meta.is_empty() {
        let _ = writeln!(text, "\nmetadata:");
        for (k, v) in &meta {
            let v = match serde_json::from_str::<serde_json::Value>(v) {
                Ok(json @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => json.to_string(),
                _ => v.clone(),
            };
            let _ = writeln!(text, "  {k}: {v}");
        }
    }
    let _ = write!(text, "\ntensors:\n{}", tensor_table(&tensors));
    let quoted = serde_json::to_string(&shown).unwrap_or_default();
    if let Some(record) = meta.get("advlab.arch") {
        match serde_json::from_str::<Arch>(record) {
            Ok(arch) => {
                if !fits(&arch, &tensors) {
                    problems.push(format!("the tensors are not those of its architecture, {arch}"));
                }
                let _ = writeln!(text, "\narchitecture: {arch}");
                let _ = writeln!(text, "\nadvlab:  let m = load_model({quoted});");
                let _ = writeln!(
                    text,
                    "\nPyTorch:\n  from safetensors.torch import load_file\n  model = {}\n  model.load_state_dict(load_file({quoted}))",
                    arch.torch_module().replace('\n', "\n  ")
                );
            }
            Err(e) => problems.push(format!("advlab.arch is not a valid architecture: {e}")),
        }
    } else if meta.contains_key("advlab.dataset") {
        let _ = writeln!(text, "\nadvlab:  let d = load_dataset({quoted});");
        let _ = writeln!(
            text,
            "\nPyTorch:\n  from safetensors.torch import load_file\n  t = load_file({quoted})\n  data = torch.utils.data.TensorDataset(t[\"images\"], t[\"labels\"].long())"
        );
        if let Err(e) = crate::data::load_dataset(path, &candle_core::Device::Cpu) {
            problems.push(e.to_string());
        }
    } else if meta.contains_key("advlab.reducer") {
        let _ = writeln!(text, "\nadvlab:  let r = load_reducer({quoted});");
        if let Err(e) = crate::reduce::load_reducer(path) {
            problems.push(e.to_string());
        }
    } else {
        let matches: Vec<(String, Arch)> = candidates(&tensors)
            .into_iter()
            .filter(|(_, a)| fits(a, &tensors))
            .collect();
        match matches.first() {
            Some((call, arch)) => {
                let _ = writeln!(text, "\nmatches {call}: its names and shapes, every one");
                let _ = writeln!(text, "\nadvlab:  let m = {call};\n         m.load_weights({quoted});");
                let _ = writeln!(
                    text,
                    "\nPyTorch:\n  model = {}\n  model.load_state_dict(load_file({quoted}))",
                    arch.torch_module().replace('\n', "\n  ")
                );
            }
            None => {
                let _ = writeln!(
                    text,
                    "\nno preset has these names and shapes: build the network in a script (a preset, or \
                     sequential([...]) whose torch_module() has these names) and call m.load_weights({quoted}), \
                     whose error lists every tensor that differs"
                );
            }
        }
    }
    Ok(Inspection { text, problems })
}
