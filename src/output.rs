//! Writing results: atomic file writes (a finished result is never lost or half-written)
//! and the provenance record that goes beside every output.

use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` atomically: into a temporary file in the same directory, then
/// renamed over the target. Parent directories are created.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let werr = |reason: String| Error::Write {
        path: path.to_path_buf(),
        reason,
    };
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(werr("the path has no file name".into()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| werr(format!("cannot create directory {}: {e}", dir.display())))?;
    if path.is_dir() {
        return Err(werr("it is a directory".into()));
    }
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(e.to_string()));
    }
    Ok(())
}

/// Everything needed to say how an output was made: the advlab version, the script and its
/// arguments, the default seed, the device, and the resolved parameters of every training
/// run and attack executed before the output was written.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Provenance {
    pub advlab: String,
    pub script: Option<String>,
    pub args: serde_json::Value,
    pub seed: u64,
    pub device: String,
    pub operations: Vec<serde_json::Value>,
}

impl Provenance {
    /// A record for a run on `device` with default seed `seed`.
    pub fn new(seed: u64, device: &str) -> Self {
        Self {
            advlab: env!("CARGO_PKG_VERSION").to_string(),
            seed,
            device: device.to_string(),
            args: serde_json::json!({}),
            ..Self::default()
        }
    }

    /// Record one operation (its resolved parameters).
    pub fn record(&mut self, op: serde_json::Value) {
        self.operations.push(op);
    }

    /// Path of the sidecar that describes `output`: `output` + `.meta.json`.
    pub fn sidecar_path(output: &Path) -> PathBuf {
        let mut s = output.as_os_str().to_owned();
        s.push(".meta.json");
        PathBuf::from(s)
    }

    /// Write the sidecar of `output` (atomically).
    pub fn write_sidecar(&self, output: &Path) -> Result<()> {
        let mut value = serde_json::to_value(self).map_err(|e| Error::Invalid(e.to_string()))?;
        value["output"] = serde_json::Value::String(output.display().to_string());
        let text = serde_json::to_string_pretty(&value).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&Self::sidecar_path(output), text.as_bytes())
    }
}
