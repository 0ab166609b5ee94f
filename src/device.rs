//! Device selection, in one place.

use crate::error::{Error, Result};
use candle_core::Device;

/// Parse a device name (`cpu` or `cuda`) into a candle device.
///
/// `cuda` needs the crate to be built with the `cuda` feature; without it this is a clear
/// error that says how to rebuild.
pub fn select(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(),
        other => Err(Error::Device(format!(
            "unknown device \"{other}\": use \"cpu\" or \"cuda\""
        ))),
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Device> {
    Device::new_cuda(0).map_err(|e| Error::Device(format!("cannot open CUDA device 0: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Device> {
    Err(Error::Device(
        "this advlab was built without CUDA support: rebuild with `cargo build --release --features cuda` \
         on a machine with the CUDA toolkit, or use --device cpu"
            .into(),
    ))
}

/// Short name of a device, as recorded in every output.
pub fn name(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}
