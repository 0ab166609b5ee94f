//! CIFAR-10 in its binary format: `data_batch_1.bin` … `data_batch_5.bin` and
//! `test_batch.bin` in a `cifar-10-batches-bin` folder, each a run of 3073-byte records (one
//! label byte, then 3072 pixel bytes: 1024 red, 1024 green, 1024 blue, rows of 32). Found in
//! the order of MNIST: an explicit folder, `$ADVLAB_DATA`, `./data`, then a download of the
//! publisher's archive into the first of those (a cargo feature, on by default; never with
//! `ADVLAB_OFFLINE`).

// File bytes are not trusted: no indexing that can panic on them.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use super::{Dataset, Splits};
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The folder the CIFAR-10 binary archive unpacks to.
pub const CIFAR_DIR: &str = "cifar-10-batches-bin";

/// Bytes of one record: a label byte and a 3×32×32 image.
pub const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// The ten classes, in label order (as `batches.meta.txt` lists them).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
const TEST_FILE: &str = "test_batch.bin";

/// Where to look and how much to read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CifarParams {
    /// A folder holding the six files, or holding `cifar-10-batches-bin` (only that one is tried).
    pub path: Option<PathBuf>,
    /// Read only the first `train` training images (the batches are read in order).
    pub train: Option<usize>,
    /// Read only the first `test` test images.
    pub test: Option<usize>,
}

/// Read one binary batch: the pixel bytes of every record (CHW, one image after the other)
/// and the labels, after checking that the file is a whole number of records and that every
/// label is a class 0..9.
pub fn read_cifar_batch(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |why: String| Error::Data(format!("{}: not a CIFAR-10 binary batch: {why}", path.display()));
    if bytes.is_empty() {
        return Err(bad("the file is empty".into()));
    }
    if bytes.len() % CIFAR_RECORD != 0 {
        let hint = if bytes.len() % (CIFAR_RECORD + 1) == 0 {
            " (its size fits CIFAR-100's 3074-byte records, which advlab does not read)"
        } else {
            ""
        };
        return Err(bad(format!(
            "{} bytes is not a whole number of {CIFAR_RECORD}-byte records (1 label byte + 3072 pixel bytes): \
             {} complete records and {} bytes left over, so the file is truncated or of another format{hint}",
            bytes.len(),
            bytes.len() / CIFAR_RECORD,
            bytes.len() % CIFAR_RECORD
        )));
    }
    let n = bytes.len() / CIFAR_RECORD;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * (CIFAR_RECORD - 1));
    for (i, rec) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
        let Some((&label, image)) = rec.split_first() else {
            continue;
        };
        if label >= 10 {
            return Err(bad(format!("record {i} has label {label} (CIFAR-10 has classes 0..9)")));
        }
        labels.push(label);
        pixels.extend_from_slice(image);
    }
    Ok((pixels, labels))
}

/// True when `dir` holds the six files.
fn has_files(dir: &Path) -> bool {
    TRAIN_FILES.iter().chain([&TEST_FILE]).all(|f| dir.join(f).is_file())
}

/// Read `files` in order until `limit` records (all of them without a limit).
fn load_split(dir: &Path, files: &[&str], limit: Option<usize>, device: &Device, name: &str) -> Result<Dataset> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        if limit.is_some_and(|l| labels.len() >= l) {
            break;
        }
        let path = dir.join(f);
        if !path.is_file() {
            return Err(Error::Data(format!(
                "{}: missing {f}; a CIFAR-10 folder needs {} and {TEST_FILE}",
                dir.display(),
                TRAIN_FILES.join(", ")
            )));
        }
        let (p, l) = read_cifar_batch(&path)?;
        pixels.extend(p);
        labels.extend(l);
    }
    let n = limit.map_or(labels.len(), |l| l.min(labels.len()));
    let len = n * (CIFAR_RECORD - 1);
    pixels.truncate(len);
    let mut images = vec![0f32; len];
    images
        .par_chunks_mut(1 << 16)
        .zip(pixels.par_chunks(1 << 16))
        .for_each(|(o, p)| o.iter_mut().zip(p).for_each(|(o, &v)| *o = f32::from(v) / 255.0));
    let images = Tensor::from_vec(images, (n, 3, 32, 32), device)?;
    let labels: Vec<u32> = labels.iter().take(n).map(|&l| u32::from(l)).collect();
    let labels = Tensor::from_vec(labels, n, device)?;
    with_names(Dataset::new(images, labels, 10, name)?)
}

fn with_names(d: Dataset) -> Result<Dataset> {
    d.with_class_names(CIFAR10_CLASSES.iter().map(|c| c.to_string()).collect())
}

fn load_dir(dir: &Path, p: &CifarParams, device: &Device) -> Result<Splits> {
    Ok(Splits {
        train: load_split(dir, &TRAIN_FILES, p.train, device, "cifar10-train")?,
        test: load_split(dir, &[TEST_FILE], p.test, device, "cifar10-test")?,
    })
}

/// Load CIFAR-10: (N, 3, 32, 32) images in [0, 1], 10 classes with their names.
///
/// With `p.path`, only that folder is used (the six files in it or in its
/// `cifar-10-batches-bin`). Otherwise the places are tried in order:
/// `$ADVLAB_DATA/cifar-10-batches-bin`, `./data/cifar-10-batches-bin`, then a download into
/// the first of them (unless `ADVLAB_OFFLINE` is set). When nothing works the error
/// names every place tried.
pub fn load_cifar10(p: &CifarParams, device: &Device) -> Result<Splits> {
    if let Some(dir) = &p.path {
        if !dir.is_dir() {
            return Err(Error::Data(format!(
                "cifar10 data: directory {} does not exist",
                dir.display()
            )));
        }
        // the six files in `dir`, else in `dir/cifar-10-batches-bin` when that exists (the
        // error then names the file missing there)
        let inner = dir.join(CIFAR_DIR);
        let found = if !has_files(dir) && inner.is_dir() {
            inner
        } else {
            dir.clone()
        };
        return load_dir(&found, p, device);
    }
    let mut tried = Vec::new();
    for dir in super::search_places(CIFAR_DIR, &mut tried) {
        if has_files(&dir) {
            return load_dir(&dir, p, device);
        }
        let why = if dir.is_dir() {
            "not all six .bin files are there"
        } else {
            "no such directory"
        };
        tried.push(format!("{} ({why})", dir.display()));
    }
    match download(p, device) {
        Ok(splits) => Ok(splits),
        Err(why) => {
            tried.push(why);
            Err(Error::Data(format!(
                "cifar10 data not found; tried:\n  - {}\nunpack cifar-10-binary.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) \
                 in one of these places, set ADVLAB_DATA to the folder that holds {CIFAR_DIR}, or pass the folder: \
                 cifar10(\"path/to/{CIFAR_DIR}\")",
                tried.join("\n  - ")
            )))
        }
    }
}

/// The publisher's copy of the binary version, and its size bound (it is 162 MB).
const ARCHIVE: &str = "cifar-10-binary.tar.gz";
const ARCHIVE_BASES: &[&str] = &["https://www.cs.toronto.edu/~kriz/"];
const ARCHIVE_LIMIT: u64 = 400 << 20;

/// Download the archive beside the first place searched, unpack the six batches into that
/// place and load them from there (the archive is removed once unpacked).
fn download(p: &CifarParams, device: &Device) -> std::result::Result<Splits, String> {
    use super::download as dl;
    if let Some(why) = dl::skipped() {
        return Err(why);
    }
    let dir = dl::destination(CIFAR_DIR);
    dl::create_dir(&dir)?;
    let archive = dir.with_file_name(ARCHIVE);
    if !archive.is_file() {
        dl::fetch(&dl::urls(CIFAR_DIR, ARCHIVE, ARCHIVE_BASES), &archive, ARCHIVE_LIMIT)?;
    }
    let unpacked = unpack(&archive, &dir);
    // a corrupt archive is fetched again next time; a good one is not needed any more
    let _ = std::fs::remove_file(&archive);
    unpacked.map_err(|e| format!("a download into {} (unusable archive, removed: {e})", dir.display()))?;
    load_dir(&dir, p, device).map_err(|e| format!("a download into {} (unusable data: {e})", dir.display()))
}

/// Write the six batch files of the archive (a gzip tar of `cifar-10-batches-bin/*.bin`) into
/// `dir`, each complete before it takes its name.
fn unpack(archive: &Path, dir: &Path) -> std::result::Result<(), String> {
    let file = std::fs::File::open(archive).map_err(|e| format!("cannot open {}: {e}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let wanted: Vec<&str> = TRAIN_FILES.iter().chain([&TEST_FILE]).copied().collect();
    let mut found = Vec::new();
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).filter(|n| wanted.contains(n)) else {
            continue;
        };
        // every batch holds 10,000 records
        if entry.size() > 10_000 * CIFAR_RECORD as u64 {
            return Err(format!(
                "{name} in the archive is {} bytes, larger than a batch",
                entry.size()
            ));
        }
        let dest = dir.join(name);
        let part = super::download::partial(&dest);
        let mut out = std::fs::File::create(&part).map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| format!("{name}: {e}"))?;
        std::fs::rename(&part, &dest).map_err(|e| format!("cannot move {} into place: {e}", part.display()))?;
        found.push(name.to_string());
    }
    let missing: Vec<&&str> = wanted.iter().filter(|w| !found.iter().any(|f| f == *w)).collect();
    if !missing.is_empty() {
        return Err(format!("the archive lacks {missing:?}"));
    }
    Ok(())
}
