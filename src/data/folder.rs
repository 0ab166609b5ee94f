//! Data sets in PyTorch's `ImageFolder` layout: one folder per class (`root/cat/001.png`),
//! class names and indices from the sorted folder names, images decoded by the `image` crate
//! (PNG, JPEG, BMP), converted to the requested channels and size, and split into train and
//! test by a seeded shuffle.

use super::{Dataset, Splits};
use crate::error::{Error, ParamError, Result};
use candle_core::{Device, Tensor};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The file endings read as images (any case).
const IMAGE_ENDINGS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// The largest height or width an image folder's images are converted to.
const MAX_SIDE: usize = 8192;

/// Unchecked parameters of an image folder.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderParams {
    /// The folder: as given, else under `$ADVLAB_DATA`, else under `./data`.
    pub path: PathBuf,
    /// `[C, H, W]` of every image (C 1 or 3); `None`: the first image's (grey → 1 channel).
    pub size: Option<[usize; 3]>,
    /// The share of the images that goes to the test split.
    pub split: f64,
    /// The seed of the shuffle that splits.
    pub seed: u64,
}

impl FolderParams {
    /// The share of images held out for testing when none is given.
    pub const DEFAULT_SPLIT: f64 = 0.1;

    /// `path` with the defaults: the first image's size, 10% for testing, seed 0.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            size: None,
            split: Self::DEFAULT_SPLIT,
            seed: 0,
        }
    }

    fn check(&self) -> std::result::Result<(), ParamError> {
        if !(self.split.is_finite() && (0.0..1.0).contains(&self.split)) {
            return Err(ParamError::FolderSplit(self.split));
        }
        if let Some(s) = self.size {
            let side = 1..=MAX_SIDE;
            if !matches!(s[0], 1 | 3) || !side.contains(&s[1]) || !side.contains(&s[2]) {
                return Err(ParamError::FolderSize(s.to_vec()));
            }
        }
        Ok(())
    }
}

/// The folder `path` names: itself, else under `$ADVLAB_DATA`, else under `./data`; the
/// error names every place tried.
fn resolve(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mut tried = vec![format!("{} (no such folder)", path.display())];
    if path.is_relative() {
        for p in super::search_places(path, &mut tried) {
            if p.is_dir() {
                return Ok(p);
            }
            tried.push(format!("{} (no such folder)", p.display()));
        }
    }
    Err(Error::Data(format!(
        "image folder not found; tried:\n  - {}\nan image folder holds one folder of images per class (root/cat/001.png)",
        tried.join("\n  - ")
    )))
}

/// The sorted entries of `dir` that `keep` accepts.
fn listed(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| keep(p))
        .collect();
    out.sort();
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_ENDINGS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// One image as `C·H·W` values in [0, 1] (channel-major), converted and resized to `size`.
fn decode(path: &Path, [c, h, w]: [usize; 3]) -> Result<Vec<f32>> {
    let img =
        image::open(path).map_err(|e| Error::Data(format!("{}: cannot decode the image: {e}", path.display())))?;
    let img = if (img.height() as usize, img.width() as usize) != (h, w) {
        img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let hw = h * w;
    let mut out = vec![0f32; c * hw];
    match c {
        1 => {
            for (o, p) in out.iter_mut().zip(img.to_luma8().pixels()) {
                *o = p.0[0] as f32 / 255.0;
            }
        }
        _ => {
            for (i, p) in img.to_rgb8().pixels().enumerate() {
                for ch in 0..3 {
                    out[ch * hw + i] = p.0[ch] as f32 / 255.0;
                }
            }
        }
    }
    Ok(out)
}

/// Load an image folder as train and test splits.
pub fn load_image_folder(p: &FolderParams, device: &Device) -> Result<Splits> {
    p.check()?;
    let root = resolve(&p.path)?;
    let classes = listed(&root, |q| q.is_dir())?;
    if classes.len() < 2 {
        return Err(Error::Data(format!(
            "{}: an image folder needs a folder per class, at least 2, found {}",
            root.display(),
            classes.len()
        )));
    }
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for (k, dir) in classes.iter().enumerate() {
        let images = listed(dir, is_image)?;
        if images.is_empty() {
            return Err(Error::Data(format!(
                "{}: class folder with no images (.png, .jpg, .jpeg, .bmp)",
                dir.display()
            )));
        }
        files.extend(images.into_iter().map(|f| (f, k as u32)));
    }
    let size = match p.size {
        Some(s) => s,
        None => {
            let first = &files[0].0;
            let img = image::open(first)
                .map_err(|e| Error::Data(format!("{}: cannot decode the image: {e}", first.display())))?;
            let c = if img.color().has_color() { 3 } else { 1 };
            let s = [c, img.height() as usize, img.width() as usize];
            if s[1] > MAX_SIDE || s[2] > MAX_SIDE {
                return Err(Error::Data(format!(
                    "{}: a {}×{} image is larger than {MAX_SIDE} pixels a side: pass a smaller size",
                    first.display(),
                    s[1],
                    s[2]
                )));
            }
            s
        }
    };
    let per = size.iter().product::<usize>();
    let values = files
        .par_iter()
        .map(|(f, _)| decode(f, size))
        .collect::<Result<Vec<Vec<f32>>>>()?;
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(p.seed));
    let test_n = (p.split * files.len() as f64).round() as usize;
    if test_n >= files.len() {
        return Err(Error::Data(format!(
            "{}: split {} of {} images leaves none to train on",
            root.display(),
            p.split,
            files.len()
        )));
    }
    let names: Vec<String> = classes
        .iter()
        .map(|d| d.file_name().map_or(String::new(), |n| n.to_string_lossy().to_string()))
        .collect();
    let stem = root
        .file_name()
        .map_or("images".into(), |n| n.to_string_lossy().to_string());
    let part = |idx: &[usize], which: &str| -> Result<Dataset> {
        let mut x = Vec::with_capacity(idx.len() * per);
        for &i in idx {
            x.extend_from_slice(&values[i]);
        }
        let y: Vec<u32> = idx.iter().map(|&i| files[i].1).collect();
        let x = Tensor::from_vec(x, (idx.len(), size[0], size[1], size[2]), device)?;
        let y = Tensor::from_vec(y, idx.len(), device)?;
        Dataset::new(x, y, names.len(), format!("{stem}-{which}"))?.with_class_names(names.clone())
    };
    Ok(Splits {
        test: part(&order[..test_n], "test")?,
        train: part(&order[test_n..], "train")?,
    })
}
