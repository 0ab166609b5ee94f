//! Checkpoints: safetensors files whose tensor names and layouts match the PyTorch
//! `nn.Sequential` of the architecture, with the architecture (and how the model was made)
//! in the safetensors metadata, so `load_model` needs nothing else.

use super::{Arch, Model};
use crate::error::{Error, Result};
use candle_core::Device;
use std::collections::HashMap;
use std::path::Path;

const ARCH_KEY: &str = "advlab.arch";
const PROVENANCE_KEY: &str = "advlab.provenance";

/// Save the weights to `path` (atomically), with the architecture and `provenance` (any JSON:
/// seed, device, training parameters) in the metadata.
/// A defended model is refused: a checkpoint holds a network, and its input transforms (PCA
/// axes, autoencoders, noise streams) are not saved.
pub fn save_model(model: &Model, path: &Path, provenance: &serde_json::Value) -> Result<()> {
    if let Some(p) = model.pipeline() {
        return Err(Error::Invalid(format!(
            "save: this model is defended ({p}); a checkpoint holds only the network and the transforms are not saved: \
             save model.network() (the same weights) and rebuild the defence with defended(load_model(path), [...])"
        )));
    }
    let werr = |reason: String| Error::Write {
        path: path.to_path_buf(),
        reason,
    };
    let mut meta = HashMap::new();
    meta.insert(
        ARCH_KEY.to_string(),
        serde_json::to_string(model.arch()).map_err(|e| werr(e.to_string()))?,
    );
    meta.insert(PROVENANCE_KEY.to_string(), provenance.to_string());
    meta.insert("format".to_string(), "pt".to_string());
    let cpu: Vec<(String, candle_core::Tensor)> = model
        .named_state()
        .map(|(n, t)| Ok((n.to_string(), t.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(cpu.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
        .map_err(|e| werr(e.to_string()))?;
    crate::output::write_atomic(path, &bytes)
}

/// The bytes of a checkpoint file.
fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// What is wrong with the checkpoint at `path`, as an error naming it.
fn checkpoint_error(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    }
}

/// Every float tensor's values are numbers: a NaN or infinite weight would give predictions
/// (and accuracies) that mean nothing. The error names the first such tensor.
fn all_finite(tensors: &HashMap<String, candle_core::Tensor>) -> std::result::Result<(), String> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let Some(t) = tensors.get(name).filter(|t| t.dtype().is_float()) else {
            continue;
        };
        let values = t
            .flatten_all()
            .and_then(|v| v.to_dtype(candle_core::DType::F32))
            .and_then(|v| v.to_vec1::<f32>())
            .map_err(|e| format!("cannot read tensor {name} ({e})"))?;
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(format!(
                "tensor {name} holds {bad}: a checkpoint's weights must all be finite numbers"
            ));
        }
    }
    Ok(())
}

/// Load a model saved by [`save_model`] (or by PyTorch with the same names plus the
/// `advlab.arch` metadata).
pub fn load_model(path: &Path, device: &Device) -> Result<Model> {
    let bytes = read(path)?;
    let cerr = checkpoint_error(path);
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| cerr(format!("not a safetensors file ({e})")))?;
    let arch_json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(ARCH_KEY))
        .ok_or_else(|| cerr(format!("no \"{ARCH_KEY}\" metadata: it was not saved by advlab")))?;
    let arch: Arch = serde_json::from_str(arch_json).map_err(|e| cerr(format!("bad architecture record ({e})")))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| cerr(format!("cannot read tensors ({e})")))?;
    all_finite(&tensors).map_err(&cerr)?;
    Model::from_tensors(arch, tensors.into_iter().collect(), device).map_err(|e| cerr(e.to_string()))
}

/// Fill `model`'s parameters from any safetensors state_dict with its PyTorch names (no advlab
/// metadata needed: `safetensors.torch.save_file(model.state_dict(), path)`). Every name and
/// shape is checked first, and the error lists all that is missing, unexpected or mis-shaped;
/// `num_batches_tracked` counters are accepted and ignored. Nothing changes on an error.
pub fn load_weights(model: &Model, path: &Path) -> Result<()> {
    let bytes = read(path)?;
    let cerr = checkpoint_error(path);
    let tensors: HashMap<String, candle_core::Tensor> = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| cerr(format!("not a safetensors state_dict ({e})")))?;
    let params: Vec<(&str, &candle_core::Tensor)> = model.named_state().collect();
    let mut problems = Vec::new();
    for (name, t) in &params {
        match tensors.get(*name) {
            None => problems.push(format!("missing {name} {:?}", t.dims())),
            Some(f) if f.dims() != t.dims() => problems.push(format!(
                "{name} is {:?} in the file but {:?} in the model",
                f.dims(),
                t.dims()
            )),
            Some(_) => {}
        }
    }
    let mut unexpected: Vec<&String> = tensors
        .keys()
        .filter(|k| !k.ends_with("num_batches_tracked") && !params.iter().any(|(n, _)| n == k))
        .collect();
    unexpected.sort();
    problems.extend(unexpected.into_iter().map(|k| format!("unexpected {k}")));
    all_finite(&tensors).map_err(&cerr)?;
    if !problems.is_empty() {
        return Err(cerr(format!(
            "the state_dict does not fit {}: {}",
            model.arch(),
            problems.join("; ")
        )));
    }
    for (var, (name, _)) in model.state_vars().iter().zip(&params) {
        let t = tensors[*name]
            .to_dtype(candle_core::DType::F32)?
            .to_device(model.device())?;
        var.set(&t)?;
    }
    Ok(())
}
