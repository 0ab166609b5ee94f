//! Data sets: `synthetic`, `mnist`, `fashion_mnist`, `cifar10`, `image_folder`, `npz`, `npy`,
//! and the `Dataset` methods.

use super::error::{to_rhai, RResult};
use super::keys;
use super::opts::{to_usize, usize_array, Opts};
use super::{def, def_get, Reg};
use crate::data::{
    load_cifar10, load_dataset, load_image_folder, load_mnist_like, load_npy, load_npz, save_dataset, synthetic,
    CifarParams, Dataset, FolderParams, Splits, SyntheticParams, Which,
};
use candle_core::Tensor;
use rhai::{Array, Map, INT};
use std::path::{Path, PathBuf};

fn cifar(s: &super::Session, p: CifarParams) -> RResult<Splits> {
    let splits = load_cifar10(&p, &s.device).map_err(to_rhai)?;
    s.record(serde_json::json!({
        "op": "load", "data": "cifar10", "path": p.path, "train": splits.train.len(), "test": splits.test.len(),
    }));
    Ok(splits)
}

fn image_folder(s: &super::Session, path: &str, m: &Map) -> RResult<Splits> {
    let o = Opts::new(&keys::IMAGE_FOLDER, m)?;
    let d = FolderParams::new(path);
    let p = FolderParams {
        size: o.chw("size")?,
        split: o.f64("split")?.unwrap_or(d.split),
        seed: o.u64("seed")?.unwrap_or(s.seed),
        ..d
    };
    let splits = load_image_folder(&p, &s.device).map_err(to_rhai)?;
    s.record(serde_json::json!({
        "op": "load", "data": "image_folder", "path": path, "size": p.size, "split": p.split, "seed": p.seed,
        "train": splits.train.len(), "test": splits.test.len(), "classes": splits.train.class_names(),
    }));
    Ok(splits)
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<Splits>("Splits");
    reg.engine.register_type_with_name::<Dataset>("Dataset");

    let s = reg.session.clone();
    def!(
        reg,
        "synthetic() -> Splits",
        "The built-in 10-class 28×28 data set (6000 train, 1000 test, seed 0): no files needed.",
        move || { synthetic(&SyntheticParams::default(), &s.device).map_err(to_rhai) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "synthetic(opts: Map) -> Splits",
        "The built-in data set with options train (6000), test (1000) (sample counts) and seed (0); the same options give the same data.",
        move |m: Map| -> RResult<Splits> {
            let o = Opts::new(&keys::SYNTHETIC, &m)?;
            let d = SyntheticParams::default();
            let p = SyntheticParams {
                train: o.usize("train")?.unwrap_or(d.train),
                test: o.usize("test")?.unwrap_or(d.test),
                seed: o.u64("seed")?.unwrap_or(s.seed),
            };
            synthetic(&p, &s.device).map_err(to_rhai)
        }
    );
    for which in [Which::Mnist, Which::FashionMnist] {
        let s = reg.session.clone();
        let load0 = move || load_mnist_like(which, None, &s.device).map_err(to_rhai);
        let s = reg.session.clone();
        let load1 = move |dir: &str| load_mnist_like(which, Some(Path::new(dir)), &s.device).map_err(to_rhai);
        if which == Which::Mnist {
            def!(reg, "mnist() -> Splits", "MNIST from $ADVLAB_DATA/mnist, then ./data/mnist, then a download into the first of those (IDX files, gzip or raw).", load0);
            def!(
                reg,
                "mnist(dir: String) -> Splits",
                "MNIST from the four IDX files in `dir`.",
                load1
            );
        } else {
            def!(
                reg,
                "fashion_mnist() -> Splits",
                "Fashion-MNIST from $ADVLAB_DATA/fashion-mnist, then ./data/fashion-mnist, then a download.",
                load0
            );
            def!(
                reg,
                "fashion_mnist(dir: String) -> Splits",
                "Fashion-MNIST from the four IDX files in `dir`.",
                load1
            );
        }
    }
    let s = reg.session.clone();
    def!(
        reg,
        "cifar10() -> Splits",
        "CIFAR-10 (binary batches) from $ADVLAB_DATA/cifar-10-batches-bin, then ./data/cifar-10-batches-bin, then a download of the archive unpacked there: (N, 3, 32, 32) images in [0, 1], 10 named classes.",
        move || cifar(&s, CifarParams::default())
    );
    let s = reg.session.clone();
    def!(
        reg,
        "cifar10(dir: String) -> Splits",
        "CIFAR-10 from data_batch_1.bin … data_batch_5.bin and test_batch.bin in `dir` (or in dir/cifar-10-batches-bin).",
        move |dir: &str| cifar(
            &s,
            CifarParams {
                path: Some(PathBuf::from(dir)),
                ..CifarParams::default()
            }
        )
    );
    let s = reg.session.clone();
    def!(
        reg,
        "cifar10(opts: Map) -> Splits",
        "CIFAR-10 with options path (a folder; else the search order of cifar10()), train and test (read only the first n images).",
        move |m: Map| -> RResult<Splits> {
            let o = Opts::new(&keys::CIFAR10, &m)?;
            let p = CifarParams {
                path: o.string("path")?.map(PathBuf::from),
                train: o.usize("train")?,
                test: o.usize("test")?,
            };
            cifar(&s, p)
        }
    );

    let s = reg.session.clone();
    def!(
        reg,
        "image_folder(path: String) -> Splits",
        "PyTorch's ImageFolder layout (path/<class>/*.png|jpg|jpeg|bmp; path as given, else under $ADVLAB_DATA, else ./data): classes from the sorted folder names, every image at the first one's size, 10% held out as the test split by a shuffle from --seed.",
        move |p: &str| image_folder(&s, p, &Map::new())
    );
    let s = reg.session.clone();
    def!(
        reg,
        "image_folder(path: String, opts: Map) -> Splits",
        "An image folder with options: size ([C, H, W], C 1 or 3; the first image's: images of another size are resized bilinearly), split (0.1, the test share), seed (the split's shuffle).",
        move |p: &str, m: Map| image_folder(&s, p, &m)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "npz(path: String) -> Splits",
        "Arrays saved with np.savez(path, x_train=…, y_train=…, x_test=…, y_test=…) (Keras' mnist.npz layout): images (N, H, W), (N, C, H, W) or (N, H, W, C), uint8 or floats in [0, 1]; integer labels.",
        move |p: &str| -> RResult<Splits> {
            let splits = load_npz(Path::new(p), &s.device).map_err(to_rhai)?;
            s.record(serde_json::json!({ "op": "load", "data": "npz", "path": p, "train": splits.train.len(), "test": splits.test.len() }));
            Ok(splits)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "npy(images: String, labels: String) -> Dataset",
        "A data set from two np.save files: images ((N, H, W), (N, C, H, W) or (N, H, W, C), uint8 or floats in [0, 1]) and integer labels (N,).",
        move |x: &str, y: &str| -> RResult<Dataset> {
            let d = load_npy(Path::new(x), Path::new(y), &s.device).map_err(to_rhai)?;
            s.record(serde_json::json!({ "op": "load", "data": "npy", "images": x, "labels": y, "samples": d.len() }));
            Ok(d)
        }
    );

    def_get!(
        reg,
        "Splits.train -> Dataset",
        "The training split.",
        |s: &mut Splits| s.train.clone()
    );
    def_get!(reg, "Splits.test -> Dataset", "The test split.", |s: &mut Splits| s
        .test
        .clone());
    def!(
        reg,
        "Splits.to_string() -> String",
        "Sizes and shapes of both splits.",
        |s: &mut Splits| s.to_string()
    );

    def!(
        reg,
        "Dataset.len() -> int",
        "Number of samples.",
        |d: &mut Dataset| d.len() as INT
    );
    def_get!(
        reg,
        "Dataset.name -> String",
        "Where the data came from and what was done to it.",
        |d: &mut Dataset| d.name().to_string()
    );
    def!(
        reg,
        "Dataset.take(n: int) -> Dataset",
        "The first n samples (all when n >= len).",
        |d: &mut Dataset, n: INT| -> RResult<Dataset> { d.take(to_usize("take: n", n)?).map_err(to_rhai) }
    );
    def!(
        reg,
        "Dataset.skip(n: int) -> Dataset",
        "All but the first n samples: data.take(n) and data.skip(n) split a set (e.g. a held-out part for fit's eval_data).",
        |d: &mut Dataset, n: INT| -> RResult<Dataset> { d.skip(to_usize("skip: n", n)?).map_err(to_rhai) }
    );
    def!(
        reg,
        "Dataset.subset(indices: Array) -> Dataset",
        "The samples at the given indices, in that order.",
        |d: &mut Dataset, idx: Array| -> RResult<Dataset> {
            d.subset(&usize_array("subset: indices", &idx)?).map_err(to_rhai)
        }
    );
    def!(
        reg,
        "Dataset.subset(indices: Tensor) -> Dataset",
        "The samples at the indices held in a 1-D tensor.",
        |d: &mut Dataset, idx: Tensor| -> RResult<Dataset> {
            let idx: Vec<usize> = idx
                .flatten_all()
                .and_then(|t| t.to_dtype(candle_core::DType::U32))
                .and_then(|t| t.to_vec1::<u32>())
                .map_err(to_rhai)?
                .into_iter()
                .map(|i| i as usize)
                .collect();
            d.subset(&idx).map_err(to_rhai)
        }
    );
    def!(
        reg,
        "Dataset.concat(other: Dataset) -> Dataset",
        "This data set followed by another of the same image shape.",
        |d: &mut Dataset, o: Dataset| -> RResult<Dataset> { d.concat(&o).map_err(to_rhai) }
    );
    def!(
        reg,
        "Dataset.images() -> Tensor",
        "The (N, C, H, W) images, pixels in [0, 1].",
        |d: &mut Dataset| d.images().clone()
    );
    def!(
        reg,
        "Dataset.labels() -> Tensor",
        "The (N,) labels.",
        |d: &mut Dataset| d.labels().clone()
    );
    def!(
        reg,
        "Dataset.shape() -> Array",
        "[C, H, W] of one image.",
        |d: &mut Dataset| {
            let (c, h, w) = d.image_shape();
            vec![(c as INT).into(), (h as INT).into(), (w as INT).into()] as Array
        }
    );
    def!(
        reg,
        "Dataset.class_names() -> Array",
        "The name of every class in label order (CIFAR-10: airplane … truck; \"0\" … when the data set has none).",
        |d: &mut Dataset| -> Array { d.class_names().into_iter().map(Into::into).collect() }
    );
    def!(
        reg,
        "Dataset.label_counts() -> Array",
        "How many samples of each class.",
        |d: &mut Dataset| -> RResult<Array> {
            Ok(d.label_counts()
                .map_err(to_rhai)?
                .into_iter()
                .map(|c| (c as INT).into())
                .collect())
        }
    );
    def!(
        reg,
        "Dataset.to_string() -> String",
        "Name, size and image shape.",
        |d: &mut Dataset| d.to_string()
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Dataset.save(path: String)",
        "Write the data set (e.g. adversarial samples) as safetensors, atomically; out/… follows --out.",
        move |d: &mut Dataset, p: &str| -> RResult<()> { save_dataset(d, &s.resolve_out(p)).map_err(to_rhai) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "load_dataset(path: String) -> Dataset",
        "A data set written by Dataset.save.",
        move |p: &str| -> RResult<Dataset> { load_dataset(&s.resolve_out(p), &s.device).map_err(to_rhai) }
    );
}
