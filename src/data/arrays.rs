//! Data sets from numpy arrays: `.npy` pairs (images, labels) and `.npz` archives with Keras'
//! keys (`x_train`, `y_train`, `x_test`, `y_test`). candle decodes the arrays; this file checks
//! what their headers promise against the bytes there are before anything is allocated, and
//! turns the arrays into images in [0, 1] and labels.
//!
//! Images may be `(N, H, W)` (one channel), `(N, C, H, W)` or `(N, H, W, C)` (C of 1, 3 or 4
//! in the last axis and not in the second), `uint8` (divided by 255) or floating point (which
//! must already lie in [0, 1]); labels integers from 0.

use super::{Dataset, Splits, MAX_CLASSES};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::io::Read;
use std::path::Path;

/// The bytes one element of a numpy `descr` (`<f4`, `|u1`, …) takes, if candle reads it.
fn item_size(descr: &str) -> Option<usize> {
    match descr.trim_matches(|c: char| c == '<' || c == '|' || c == '=') {
        "u1" | "B" | "b1" | "?" => Some(1),
        "i2" | "h" | "f2" | "e" => Some(2),
        "i4" | "i" | "u4" | "I" | "f4" | "f" => Some(4),
        "i8" | "q" | "f8" | "d" => Some(8),
        _ => None,
    }
}

/// The value of `key` in a numpy header dict (`{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`).
fn header_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find(',').unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// The shape and byte count a `.npy` stream's header declares (the stream is left after the
/// header), or what is wrong with it.
fn read_header(r: &mut impl Read) -> std::result::Result<(Vec<usize>, usize, usize), String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|_| "shorter than a .npy header".to_string())?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (no \\x93NUMPY magic)".into());
    }
    let len = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| "truncated header".to_string())?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| "truncated header".to_string())?;
            u32::from_le_bytes(b) as usize
        }
        v => return Err(format!("unknown .npy version {v}")),
    };
    if len > 1 << 16 {
        return Err(format!("a header of {len} bytes is not a numpy array's"));
    }
    let mut h = vec![0u8; len];
    r.read_exact(&mut h).map_err(|_| "truncated header".to_string())?;
    let h = String::from_utf8_lossy(&h);
    let descr = header_field(&h, "descr")
        .ok_or("no descr in the header")?
        .trim_matches('\'');
    let size = item_size(descr).ok_or_else(|| format!("unsupported element type {descr}"))?;
    if header_field(&h, "fortran_order") == Some("True") {
        return Err("Fortran-ordered arrays are not supported: save np.ascontiguousarray(a)".into());
    }
    let shape = header_field(&h, "shape").ok_or("no shape in the header")?;
    let dims = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape {shape}")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let bytes = dims
        .iter()
        .try_fold(size, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape} is too large"))?;
    Ok((dims, bytes, 10 + len + if magic[6] == 1 { 0 } else { 2 }))
}

/// An error about `path` (and the array `what` in it).
fn bad(path: &Path, what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Data(format!("{} ({what}): {reason}", path.display()))
}

/// Read one `.npy` file, after checking that it holds the bytes its header declares.
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut f = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (dims, bytes, header) = read_header(&mut f).map_err(|e| bad(path, "array", e))?;
    let have = meta.len() as usize - header.min(meta.len() as usize);
    if have < bytes {
        return Err(bad(
            path,
            "array",
            format!("its header declares shape {dims:?} ({bytes} bytes) but the file holds {have}: truncated"),
        ));
    }
    Tensor::read_npy(path).map_err(|e| bad(path, "array", e))
}

/// The most a deflate stream expands (258-byte matches coded in about 2 bits each).
const MAX_DEFLATE_RATIO: usize = 1032;

/// Read the arrays of a `.npz` archive, after checking each entry's header against its size.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(path, "archive", format!("not a .npz (zip) archive: {e}")))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(path, "archive", e))?;
        let name = entry.name().map_err(|e| bad(path, "archive", e))?.to_string();
        let size = entry.size() as usize;
        // the declared size is what the reader will allocate: it cannot exceed what the stored
        // bytes can hold (deflate expands at most 1032-fold)
        let packed = entry.compressed_size() as usize;
        let most = match entry.compression() {
            zip::CompressionMethod::Stored => packed,
            _ => packed.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1024),
        };
        if size > most {
            return Err(bad(
                path,
                &name,
                format!("the archive declares {size} bytes for it, more than its {packed} stored bytes can hold: corrupt or forged"),
            ));
        }
        let (dims, bytes, header) = read_header(&mut entry).map_err(|e| bad(path, &name, e))?;
        if size < header + bytes {
            return Err(bad(
                path,
                &name,
                format!(
                    "its header declares shape {dims:?} ({bytes} bytes) but the entry holds {}",
                    size.saturating_sub(header)
                ),
            ));
        }
    }
    Tensor::read_npz(path).map_err(|e| bad(path, "archive", e))
}

/// Images in [0, 1] as `(N, C, H, W)` f32 from an array of `(N, H, W)`, `(N, C, H, W)` or
/// `(N, H, W, C)` values (`uint8` divided by 255).
fn images(t: Tensor, path: &Path, what: &str) -> Result<Tensor> {
    let t = match t.dims() {
        [n, h, w] => t.reshape((*n, 1, *h, *w))?,
        [_, c, _, last] if matches!(last, 1 | 3 | 4) && !matches!(c, 1 | 3 | 4) => {
            t.permute((0, 3, 1, 2))?.contiguous()?
        }
        [_, _, _, _] => t,
        d => {
            return Err(bad(
                path,
                what,
                format!("images must be (N, H, W), (N, C, H, W) or (N, H, W, C), got shape {d:?}"),
            ))
        }
    };
    if let [_, c, h, w] = *t.dims() {
        if c == 0 || h == 0 || w == 0 {
            return Err(bad(
                path,
                what,
                format!("images of {c}×{h}×{w} values: channels, height and width must be at least 1"),
            ));
        }
    }
    let t = match t.dtype() {
        DType::U8 => (t.to_dtype(DType::F32)? / 255.0)?,
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => {
            let t = t.to_dtype(DType::F32)?;
            let (lo, hi) = (t.min_all()?.to_scalar::<f32>()?, t.max_all()?.to_scalar::<f32>()?);
            if t.elem_count() > 0 && !(lo >= 0.0 && hi <= 1.0) {
                return Err(bad(
                    path,
                    what,
                    format!(
                        "floating-point images must lie in [0, 1], got values from {lo} to {hi}: divide by 255 first"
                    ),
                ));
            }
            t
        }
        d => {
            return Err(bad(
                path,
                what,
                format!("images must be uint8 or floating point, got {d:?}"),
            ))
        }
    };
    Ok(t)
}

/// Labels as u32 from an integer array of shape `(N,)`, and the class count (max + 1).
fn labels(t: Tensor, path: &Path, what: &str) -> Result<(Tensor, usize)> {
    if t.rank() != 1 {
        return Err(bad(
            path,
            what,
            format!("labels must be a vector (N,), got shape {:?}", t.dims()),
        ));
    }
    if !matches!(t.dtype(), DType::U8 | DType::U32 | DType::I16 | DType::I32 | DType::I64) {
        return Err(bad(path, what, format!("labels must be integers, got {:?}", t.dtype())));
    }
    let v = t.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    if let Some(neg) = v.iter().find(|&&l| l < 0) {
        return Err(bad(path, what, format!("labels must be 0 or more, got {neg}")));
    }
    let max = v.iter().copied().max().unwrap_or(0);
    if max >= MAX_CLASSES as i64 {
        return Err(bad(
            path,
            what,
            format!("label {max} is too large: classes are numbered from 0 and at most {MAX_CLASSES}"),
        ));
    }
    let classes = (max as usize + 1).max(2);
    let t = Tensor::from_vec(
        v.into_iter().map(|l| l as u32).collect::<Vec<_>>(),
        t.dims(),
        &Device::Cpu,
    )?;
    Ok((t, classes))
}

/// A data set of converted images and labels, which must be as many.
fn assemble(
    x: Tensor,
    (y, classes): (Tensor, usize),
    (path, what): (&Path, &str),
    name: String,
    device: &Device,
) -> Result<Dataset> {
    if x.dim(0)? != y.dim(0)? {
        return Err(bad(
            path,
            what,
            format!("{} labels for {} images", y.dim(0)?, x.dim(0)?),
        ));
    }
    Dataset::new(x.to_device(device)?, y.to_device(device)?, classes, name)
}

/// A data set from two `.npy` files: images and labels (`np.save`).
pub fn load_npy(images_path: &Path, labels_path: &Path, device: &Device) -> Result<Dataset> {
    let x = images(read_npy(images_path)?, images_path, "images")?;
    let y = labels(read_npy(labels_path)?, labels_path, "labels")?;
    let name = images_path
        .file_stem()
        .map_or("npy".into(), |s| s.to_string_lossy().to_string());
    assemble(x, y, (labels_path, "labels"), name, device)
}

/// Keras' `.npz` layout: `x_train`, `y_train`, `x_test`, `y_test`; both splits share the class
/// count (the larger label + 1).
pub fn load_npz(path: &Path, device: &Device) -> Result<Splits> {
    let mut arrays = read_npz(path)?;
    // every array the archive holds, for the error of a missing one (`take` removes them)
    let mut names: Vec<String> = arrays.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    let mut take = |key: &str| -> Result<Tensor> {
        let at = arrays.iter().position(|(n, _)| n == key).ok_or_else(|| {
            bad(
                path,
                key,
                format!(
                    "no array named {key}; a .npz data set holds x_train, y_train, x_test and y_test (np.savez(path, x_train=…, …)), this one holds {names:?}"
                ),
            )
        })?;
        Ok(arrays.swap_remove(at).1)
    };
    let (xtr, ytr, xte, yte) = (take("x_train")?, take("y_train")?, take("x_test")?, take("y_test")?);
    let stem = path
        .file_stem()
        .map_or("npz".into(), |s| s.to_string_lossy().to_string());
    let (xtr, xte) = (images(xtr, path, "x_train")?, images(xte, path, "x_test")?);
    let (ytr, a) = labels(ytr, path, "y_train")?;
    let (yte, b) = labels(yte, path, "y_test")?;
    let classes = a.max(b);
    Ok(Splits {
        train: assemble(xtr, (ytr, classes), (path, "y_train"), format!("{stem}-train"), device)?,
        test: assemble(xte, (yte, classes), (path, "y_test"), format!("{stem}-test"), device)?,
    })
}
