//! MNIST-like data sets in the IDX format (gzip or raw), found in the order users expect:
//! an explicit directory, then `$ADVLAB_DATA/<name>`, then `./data/<name>`, then a download of
//! the four files into the first of those (a cargo feature, on by default).

// File bytes are not trusted: no indexing that can panic on them.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use super::{Dataset, Splits};
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use flate2::read::GzDecoder;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Which MNIST-like data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Mnist,
    FashionMnist,
}

impl Which {
    /// The name of every class, in label order.
    pub fn class_names(self) -> Vec<String> {
        match self {
            Which::Mnist => (0..10).map(|d| d.to_string()).collect(),
            Which::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    /// Directory name under `$ADVLAB_DATA` and `./data`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Which::Mnist => "mnist",
            Which::FashionMnist => "fashion-mnist",
        }
    }
}

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Read an IDX file of unsigned bytes (gzip-compressed when it starts with the gzip magic).
/// Returns the dimensions from the header and the data, after checking that they agree.
pub fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let raw = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::Data(format!("{}: corrupt gzip data ({e})", path.display())))?;
        out
    } else {
        raw
    };
    let bad = |why: String| Error::Data(format!("{}: not a valid IDX file: {why}", path.display()));
    let [0, 0, kind, ndim, rest @ ..] = bytes.as_slice() else {
        return Err(bad("it does not start with the IDX magic number".into()));
    };
    if *kind != 0x08 {
        return Err(bad(format!(
            "element type 0x{kind:02x}, expected 0x08 (unsigned bytes)"
        )));
    }
    let ndim = usize::from(*ndim);
    let (Some(head), Some(data)) = (rest.get(..4 * ndim), rest.get(4 * ndim..)) else {
        return Err(bad(format!("header of {ndim} dimensions is truncated")));
    };
    if ndim == 0 {
        return Err(bad(format!("header of {ndim} dimensions is truncated")));
    }
    let dims: Vec<usize> = head
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap_or_default()) as usize)
        .collect();
    let found = data.len();
    // a forged header's product can exceed usize (and wrap to the file's size): checked
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if expected != Some(found) {
        let expected = expected.map_or("over 2^64".to_string(), |e| e.to_string());
        return Err(bad(format!(
            "the header says {dims:?} = {expected} bytes of data but the file holds {found}"
        )));
    }
    Ok((dims, data.to_vec()))
}

/// Write an IDX file of unsigned bytes, gzip-compressed when the name ends in `.gz`
/// (used by tests and to export subsets).
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8]) -> Result<()> {
    let mut buf = vec![0u8, 0, 0x08, dims.len() as u8];
    for &d in dims {
        buf.extend_from_slice(&(d as u32).to_be_bytes());
    }
    buf.extend_from_slice(data);
    let werr = |e: std::io::Error| Error::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&buf).map_err(werr)?;
        enc.finish().map_err(werr)?
    } else {
        buf
    };
    crate::output::write_atomic(path, &bytes)
}

/// The file for `stem` in `dir`: `stem.gz` or `stem`, whichever exists.
fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(format!("{stem}.gz")), dir.join(stem)]
        .into_iter()
        .find(|p| p.is_file())
}

/// True when `dir` holds the four IDX files (gzip or raw).
fn has_files(dir: &Path) -> bool {
    FILES.iter().all(|f| find_file(dir, f).is_some())
}

fn load_split(dir: &Path, images: &str, labels: &str, device: &Device, name: String) -> Result<Dataset> {
    let missing = |stem: &str| {
        Error::Data(format!(
            "{}: missing {stem}.gz (or {stem}); an MNIST directory needs {}",
            dir.display(),
            FILES.map(|f| format!("{f}.gz")).join(", ")
        ))
    };
    let ipath = find_file(dir, images).ok_or_else(|| missing(images))?;
    let lpath = find_file(dir, labels).ok_or_else(|| missing(labels))?;
    let (idims, ibytes) = read_idx(&ipath)?;
    let (ldims, lbytes) = read_idx(&lpath)?;
    let [n, h, w] = idims[..] else {
        return Err(Error::Data(format!(
            "{}: expected images of 3 dimensions (N, H, W), the header says {idims:?}",
            ipath.display()
        )));
    };
    if ldims != [n] {
        return Err(Error::Data(format!(
            "{} holds {n} images but {} holds labels of shape {ldims:?}",
            ipath.display(),
            lpath.display()
        )));
    }
    if let Some(bad) = lbytes.iter().find(|&&l| l >= 10) {
        return Err(Error::Data(format!(
            "{}: label {bad} is out of range (MNIST-like data sets have classes 0..9)",
            lpath.display()
        )));
    }
    if h == 0 || w == 0 {
        return Err(Error::Data(format!(
            "{}: the header says images of {h}×{w} pixels; height and width must be at least 1",
            ipath.display()
        )));
    }
    let images = Tensor::from_vec(ibytes, (n, 1, h, w), &Device::Cpu)?.to_dtype(candle_core::DType::F32)?;
    let images = (images / 255.0)?.to_device(device)?;
    let labels: Vec<u32> = lbytes.into_iter().map(u32::from).collect();
    let labels = Tensor::from_vec(labels, n, device)?;
    Dataset::new(images, labels, 10, name)
}

fn load_dir(which: Which, dir: &Path, device: &Device) -> Result<Splits> {
    let base = which.dir_name();
    Ok(Splits {
        train: load_split(dir, FILES[0], FILES[1], device, format!("{base}-train"))?
            .with_class_names(which.class_names())?,
        test: load_split(dir, FILES[2], FILES[3], device, format!("{base}-test"))?
            .with_class_names(which.class_names())?,
    })
}

/// Load MNIST or Fashion-MNIST.
///
/// With `explicit`, only that directory is used. Otherwise the places are tried in order:
/// `$ADVLAB_DATA/<name>`, `./data/<name>`, then a download into the first of them (unless
/// `ADVLAB_OFFLINE` is set). When nothing works the error names every place tried.
pub fn load_mnist_like(which: Which, explicit: Option<&Path>, device: &Device) -> Result<Splits> {
    if let Some(dir) = explicit {
        if !dir.is_dir() {
            return Err(Error::Data(format!(
                "{} data: directory {} does not exist",
                which.dir_name(),
                dir.display()
            )));
        }
        return load_dir(which, dir, device);
    }
    let mut tried = Vec::new();
    for dir in super::search_places(which.dir_name(), &mut tried) {
        if has_files(&dir) {
            return load_dir(which, &dir, device);
        }
        let why = if dir.is_dir() {
            "no IDX files there"
        } else {
            "no such directory"
        };
        tried.push(format!("{} ({why})", dir.display()));
    }
    match download(which, device) {
        Ok(splits) => Ok(splits),
        Err(why) => {
            tried.push(why);
            Err(Error::Data(format!(
                "{} data not found; tried:\n  - {}\nput the four IDX files (train-images-idx3-ubyte.gz, ...) in one of \
                 these places, set ADVLAB_DATA, or pass the directory: {}(\"path/to/dir\")",
                which.dir_name(),
                tried.join("\n  - "),
                match which {
                    Which::Mnist => "mnist",
                    Which::FashionMnist => "fashion_mnist",
                }
            )))
        }
    }
}

/// The publishers' servers for the four files, tried in order.
fn bases(which: Which) -> &'static [&'static str] {
    match which {
        Which::Mnist => &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        // the publisher's bucket answers plain HTTP only; the gzip checksum of every file and the
        // IDX header's sizes are checked when the files are read
        Which::FashionMnist => &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    }
}

/// Download the four gzip files into the first place searched and load them from there; files
/// that turn out unusable are removed, so the next run fetches them again.
fn download(which: Which, device: &Device) -> std::result::Result<Splits, String> {
    use super::download as dl;
    if let Some(why) = dl::skipped() {
        return Err(why);
    }
    let dir = dl::destination(which.dir_name());
    dl::create_dir(&dir)?;
    let mut fetched = Vec::new();
    for stem in FILES {
        if find_file(&dir, stem).is_some() {
            continue;
        }
        let file = format!("{stem}.gz");
        let dest = dir.join(&file);
        // the largest, train-images, is 9.9 MB
        dl::fetch(&dl::urls(which.dir_name(), &file, bases(which)), &dest, 64 << 20)?;
        fetched.push(dest);
    }
    load_dir(which, &dir, device).map_err(|e| {
        for f in &fetched {
            let _ = std::fs::remove_file(f);
        }
        format!("a download into {} (unusable data, removed: {e})", dir.display())
    })
}
