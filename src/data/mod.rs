//! Data sets: images as an `(N, C, H, W)` f32 tensor in [0, 1] and labels as an `(N,)` u32
//! tensor, on one device.

mod arrays;
mod augment;
mod cifar;
mod download;
mod folder;
mod idx;
mod synthetic;

pub use arrays::{load_npy, load_npz, read_npy, read_npz};
pub use augment::Augment;
pub use cifar::{load_cifar10, read_cifar_batch, CifarParams, CIFAR10_CLASSES, CIFAR_DIR, CIFAR_RECORD};
pub use folder::{load_image_folder, FolderParams};
pub use idx::{load_mnist_like, read_idx, write_idx, Which};
pub use synthetic::{synthetic, SyntheticParams};

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::fmt;
use std::sync::Arc;

/// The most classes a data set may have (a class count or label beyond it is a corrupt file or
/// a mistake, not a class: every per-class table would be that long).
pub const MAX_CLASSES: usize = 1 << 16;

/// Where a data set stored under `name` is looked for when no folder is given, in order:
/// `$ADVLAB_DATA/<name>` (when set; `tried` notes it when not) and `./data/<name>`.
pub(crate) fn search_places(name: impl AsRef<std::path::Path>, tried: &mut Vec<String>) -> Vec<std::path::PathBuf> {
    let mut places = Vec::new();
    match std::env::var_os("ADVLAB_DATA") {
        Some(root) => places.push(std::path::PathBuf::from(root).join(name.as_ref())),
        None => tried.push("$ADVLAB_DATA (not set)".to_string()),
    }
    places.push(std::path::PathBuf::from("data").join(name.as_ref()));
    places
}

/// A labelled image data set. Cloning is cheap (tensors are reference counted).
#[derive(Clone, Debug)]
pub struct Dataset {
    images: Tensor,
    labels: Tensor,
    classes: usize,
    name: String,
    /// The name of every class, when the data set has them (CIFAR-10, Fashion-MNIST).
    class_names: Option<Arc<[String]>>,
}

/// A train/test pair of data sets.
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
}

impl Dataset {
    /// Build a data set, checking that images are `(N, C, H, W)` f32 and labels `(N,)`.
    pub fn new(images: Tensor, labels: Tensor, classes: usize, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if images.rank() != 4 {
            return Err(Error::Shape(format!(
                "{name}: images must be (N, C, H, W), got shape {:?}",
                images.dims()
            )));
        }
        if labels.rank() != 1 || labels.dim(0)? != images.dim(0)? {
            return Err(Error::Shape(format!(
                "{name}: {} images but labels of shape {:?}",
                images.dim(0)?,
                labels.dims()
            )));
        }
        if classes > MAX_CLASSES {
            return Err(Error::Invalid(format!(
                "{name}: {classes} classes is more than the {MAX_CLASSES} a data set may have"
            )));
        }
        let images = images.to_dtype(DType::F32)?;
        let labels = labels.to_dtype(DType::U32)?;
        Ok(Self {
            images,
            labels,
            classes,
            name,
            class_names: None,
        })
    }

    /// The same data set with a name for each class (one per class).
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Self> {
        if names.len() != self.classes {
            return Err(Error::Invalid(format!(
                "{}: {} class names for {} classes",
                self.name,
                names.len(),
                self.classes
            )));
        }
        self.class_names = Some(names.into());
        Ok(self)
    }

    /// The name of every class: the data set's own names, else "0", "1", ….
    pub fn class_names(&self) -> Vec<String> {
        match &self.class_names {
            Some(names) => names.to_vec(),
            None => (0..self.classes).map(|c| c.to_string()).collect(),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.images.dims()[0]
    }

    /// True when the data set holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(C, H, W)` of one image.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        let d = self.images.dims();
        (d[1], d[2], d[3])
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Name of the data set (where it came from and what was done to it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `(N, C, H, W)` images.
    pub fn images(&self) -> &Tensor {
        &self.images
    }

    /// The `(N,)` u32 labels.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    /// Device the tensors live on.
    pub fn device(&self) -> &Device {
        self.images.device()
    }

    /// Same labels, new images (e.g. adversarial ones), with a new name.
    pub fn with_images(&self, images: Tensor, name: impl Into<String>) -> Result<Self> {
        if images.dims() != self.images.dims() {
            return Err(Error::Shape(format!(
                "new images of shape {:?} do not match the data set's {:?}",
                images.dims(),
                self.images.dims()
            )));
        }
        let mut d = Self::new(images, self.labels.clone(), self.classes, name)?;
        d.class_names = self.class_names.clone();
        Ok(d)
    }

    /// The first `n` samples (all of them when `n >= len`).
    pub fn take(&self, n: usize) -> Result<Self> {
        let n = n.min(self.len());
        Ok(Self {
            images: self.images.narrow(0, 0, n)?,
            labels: self.labels.narrow(0, 0, n)?,
            classes: self.classes,
            name: format!("{}[:{n}]", self.name),
            class_names: self.class_names.clone(),
        })
    }

    /// All but the first `n` samples (none when n ≥ len): with [`Dataset::take`], a split.
    pub fn skip(&self, n: usize) -> Result<Self> {
        let n = n.min(self.len());
        let rest = self.len() - n;
        Ok(Self {
            images: self.images.narrow(0, n, rest)?,
            labels: self.labels.narrow(0, n, rest)?,
            classes: self.classes,
            name: format!("{}[{n}:]", self.name),
            class_names: self.class_names.clone(),
        })
    }

    /// Samples `start..start+len`, as a cheap view.
    pub fn slice(&self, start: usize, len: usize) -> Result<Self> {
        Ok(Self {
            images: self.images.narrow(0, start, len)?,
            labels: self.labels.narrow(0, start, len)?,
            classes: self.classes,
            name: self.name.clone(),
            class_names: self.class_names.clone(),
        })
    }

    /// The samples at `indices`, in that order. Every index must be `< len`.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::Invalid(format!(
                "subset: index {bad} is out of range for a data set of {} samples",
                self.len()
            )));
        }
        let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let idx = Tensor::from_vec(idx, indices.len(), self.device())?;
        Ok(Self {
            images: self.images.index_select(&idx, 0)?,
            labels: self.labels.index_select(&idx, 0)?,
            classes: self.classes,
            name: format!("{}[subset of {}]", self.name, indices.len()),
            class_names: self.class_names.clone(),
        })
    }

    /// This data set followed by `other`; both must have the same image shape.
    pub fn concat(&self, other: &Dataset) -> Result<Self> {
        if self.image_shape() != other.image_shape() {
            return Err(Error::Shape(format!(
                "concat: images of shape {:?} and {:?} cannot be joined",
                self.image_shape(),
                other.image_shape()
            )));
        }
        Ok(Self {
            images: Tensor::cat(&[&self.images, &other.images], 0)?,
            labels: Tensor::cat(&[&self.labels, &other.labels], 0)?,
            classes: self.classes.max(other.classes),
            name: format!("{}+{}", self.name, other.name),
            class_names: self
                .class_names
                .clone()
                .filter(|_| self.class_names == other.class_names),
        })
    }

    /// Move to another device.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            images: self.images.to_device(device)?,
            labels: self.labels.to_device(device)?,
            classes: self.classes,
            name: self.name.clone(),
            class_names: self.class_names.clone(),
        })
    }

    /// How many samples of each class.
    pub fn label_counts(&self) -> Result<Vec<usize>> {
        let mut counts = vec![0usize; self.classes];
        for l in self.labels.to_vec1::<u32>()? {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        Ok(counts)
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, h, w) = self.image_shape();
        write!(
            f,
            "Dataset \"{}\": {} samples of {c}×{h}×{w}, {} classes",
            self.name,
            self.len(),
            self.classes
        )
    }
}

impl fmt::Display for Splits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "train: {}\ntest:  {}", self.train, self.test)
    }
}

/// Save a data set (images, labels, name, classes) as safetensors, atomically.
pub fn save_dataset(d: &Dataset, path: &std::path::Path) -> Result<()> {
    let werr = |reason: String| Error::Write {
        path: path.to_path_buf(),
        reason,
    };
    let images = d.images.to_device(&Device::Cpu)?;
    let labels = d.labels.to_device(&Device::Cpu)?;
    let mut meta = std::collections::HashMap::from([
        ("advlab.dataset".to_string(), d.name.clone()),
        ("advlab.classes".to_string(), d.classes.to_string()),
    ]);
    if let Some(names) = &d.class_names {
        let json = serde_json::to_string(&names[..]).map_err(|e| werr(e.to_string()))?;
        meta.insert("advlab.class_names".to_string(), json);
    }
    let bytes = safetensors::serialize([("images", &images), ("labels", &labels)], Some(meta))
        .map_err(|e| werr(e.to_string()))?;
    crate::output::write_atomic(path, &bytes)
}

/// Load a data set saved by [`save_dataset`]. Everything the file says is checked before the
/// data set is made, and an error names the file and the field: the class count (1 to
/// [`MAX_CLASSES`]), the images (`(N, C, H, W)` floats in [0, 1], every side at least 1), the
/// labels (integers from 0 below the class count, one per image) and the class names (one per
/// class).
pub fn load_dataset(path: &std::path::Path, device: &Device) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |why: String| Error::Data(format!("{}: not a data set saved by advlab ({why})", path.display()));
    let field = |key: &str, why: String| Error::Data(format!("{}: {key}: {why}", path.display()));
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let info = meta.metadata().clone().unwrap_or_default();
    let name = info
        .get("advlab.dataset")
        .cloned()
        .ok_or_else(|| bad("no advlab.dataset metadata".into()))?;
    let classes = info
        .get("advlab.classes")
        .ok_or_else(|| bad("no advlab.classes metadata".into()))?;
    let classes = classes
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|c| (1..=MAX_CLASSES).contains(c))
        .ok_or_else(|| {
            field(
                "advlab.classes",
                format!("the class count must be a whole number from 1 to {MAX_CLASSES}, got {classes:?}"),
            )
        })?;
    let mut t = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| bad(e.to_string()))?;
    let images = t.remove("images").ok_or_else(|| bad("no images tensor".into()))?;
    let labels = t.remove("labels").ok_or_else(|| bad("no labels tensor".into()))?;
    if !matches!(*images.dims(), [_, c, h, w] if c > 0 && h > 0 && w > 0) || !images.dtype().is_float() {
        return Err(field(
            "images",
            format!(
                "must be floats of shape (N, C, H, W) with C, H and W at least 1, got {:?} of shape {:?}",
                images.dtype(),
                images.dims()
            ),
        ));
    }
    let images = images.to_dtype(DType::F32)?;
    if let Some(v) = images
        .flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .find(|v| !(0.0..=1.0).contains(v))
    {
        return Err(field("images", format!("pixels must lie in [0, 1], found {v}")));
    }
    if labels.dims() != [images.dim(0)?] {
        return Err(field(
            "labels",
            format!(
                "must be one per image, shape [{}], got shape {:?}",
                images.dim(0)?,
                labels.dims()
            ),
        ));
    }
    if !matches!(
        labels.dtype(),
        DType::U8 | DType::U32 | DType::I16 | DType::I32 | DType::I64
    ) {
        return Err(field("labels", format!("must be integers, got {:?}", labels.dtype())));
    }
    let values = labels.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    if let Some(l) = values.iter().find(|&&l| !(0..classes as i64).contains(&l)) {
        return Err(field(
            "labels",
            format!(
                "label {l} is outside the {classes} classes (0..={}) that advlab.classes declares",
                classes - 1
            ),
        ));
    }
    let labels = Tensor::from_vec(
        values.into_iter().map(|l| l as u32).collect::<Vec<_>>(),
        labels.dims(),
        device,
    )?;
    let d = Dataset::new(images.to_device(device)?, labels, classes, name)?;
    match info.get("advlab.class_names") {
        Some(json) => {
            let names: Vec<String> =
                serde_json::from_str(json).map_err(|e| bad(format!("bad advlab.class_names ({e})")))?;
            if names.len() != classes {
                return Err(field(
                    "advlab.class_names",
                    format!("{} names for {classes} classes", names.len()),
                ));
            }
            d.with_class_names(names)
        }
        None => Ok(d),
    }
}
