//! Data sets: the synthetic set, IDX reading and validation, the resolution order.

use crate::common::{assert_missing_folder, assert_resolution_order, mnist_dir, script, values};
use advlab::data::{load_mnist_like, read_idx, synthetic, write_idx, SyntheticParams, Which};
use advlab::nn::{Arch, Model};
use advlab::train::{fit, FitParams};
use candle_core::Device;
use std::path::Path;

#[test]
fn synthetic_is_deterministic_balanced_and_in_range() {
    let p = SyntheticParams {
        train: 500,
        test: 100,
        seed: 11,
    };
    let a = synthetic(&p, &Device::Cpu).unwrap();
    let b = synthetic(&p, &Device::Cpu).unwrap();
    assert_eq!(values(a.train.images()), values(b.train.images()));
    assert_eq!(a.train.len(), 500);
    assert_eq!(a.test.len(), 100);
    assert_eq!(a.train.image_shape(), (1, 28, 28));
    assert_eq!(a.train.label_counts().unwrap(), vec![50; 10]);
    let v = values(a.test.images());
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    let c = synthetic(&SyntheticParams { seed: 12, ..p }, &Device::Cpu).unwrap();
    assert_ne!(values(a.train.images()), values(c.train.images()));
    assert!(SyntheticParams {
        train: 0,
        test: 1,
        seed: 0
    }
    .check()
    .is_err());
}

#[test]
fn synthetic_is_learnable_by_an_mlp_in_seconds() {
    let data = synthetic(
        &SyntheticParams {
            train: 6000,
            test: 1000,
            seed: 7,
        },
        &Device::Cpu,
    )
    .unwrap();
    let model = Model::new(Arch::mlp(vec![784, 256, 256, 10]).unwrap(), &Device::Cpu, 7).unwrap();
    fit(
        &model,
        &data.train,
        &FitParams {
            epochs: 2,
            seed: 7,
            ..FitParams::default()
        }
        .check()
        .unwrap(),
    )
    .unwrap();
    let acc = advlab::eval::accuracy(&model, &data.test).unwrap();
    assert!(acc > 0.95, "synthetic test accuracy {acc}");
}

/// Write a small MNIST-like directory: `n` train and `m` test images from the synthetic set.
pub fn write_fixture(dir: &Path, n: usize, m: usize) {
    let d = synthetic(
        &SyntheticParams {
            train: n,
            test: m,
            seed: 1,
        },
        &Device::Cpu,
    )
    .unwrap();
    for (split, prefix) in [(&d.train, "train"), (&d.test, "t10k")] {
        let px: Vec<u8> = values(split.images())
            .iter()
            .map(|v| (v * 255.0).round() as u8)
            .collect();
        let lb: Vec<u8> = split
            .labels()
            .to_vec1::<u32>()
            .unwrap()
            .iter()
            .map(|&l| l as u8)
            .collect();
        write_idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            &[split.len(), 28, 28],
            &px,
        )
        .unwrap();
        write_idx(&dir.join(format!("{prefix}-labels-idx1-ubyte")), &[split.len()], &lb).unwrap();
    }
}

#[test]
fn idx_round_trip_gzip_and_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..24).collect();
    for name in ["a.idx", "b.idx.gz"] {
        let p = tmp.path().join(name);
        write_idx(&p, &[2, 3, 4], &data).unwrap();
        assert_eq!(read_idx(&p).unwrap(), (vec![2, 3, 4], data.clone()));
    }
}

#[test]
fn corrupt_idx_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x");
    std::fs::write(&p, [0u8, 0, 8, 1, 0, 0, 0, 9, 1, 2]).unwrap();
    let e = read_idx(&p).unwrap_err().to_string();
    assert!(e.contains("header says [9]") && e.contains("holds 2"), "{e}");
    std::fs::write(&p, b"hello world").unwrap();
    assert!(read_idx(&p).unwrap_err().to_string().contains("magic number"));
    std::fs::write(&p, [0x1f, 0x8b, 1, 2, 3]).unwrap();
    assert!(read_idx(&p).unwrap_err().to_string().contains("corrupt gzip"));
    let e = read_idx(&tmp.path().join("missing")).unwrap_err().to_string();
    assert!(e.contains("cannot read") && e.contains("missing"), "{e}");
}

#[test]
fn loading_checks_labels_and_counts() {
    let tmp = tempfile::tempdir().unwrap();
    write_fixture(tmp.path(), 30, 10);
    let s = load_mnist_like(Which::Mnist, Some(tmp.path()), &Device::Cpu).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (30, 10));
    // a label file with fewer labels than images
    write_idx(&tmp.path().join("t10k-labels-idx1-ubyte"), &[9], &[1; 9]).unwrap();
    let e = load_mnist_like(Which::Mnist, Some(tmp.path()), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("10 images") && e.contains("[9]"), "{e}");
    // a label out of range
    write_idx(&tmp.path().join("t10k-labels-idx1-ubyte"), &[10], &[12; 10]).unwrap();
    let e = load_mnist_like(Which::Mnist, Some(tmp.path()), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 12 is out of range"), "{e}");
    // an explicit directory that does not exist
    assert_missing_folder(
        load_mnist_like(Which::Mnist, Some(&tmp.path().join("nope")), &Device::Cpu),
        "nope",
    );
}

#[test]
fn resolution_order_env_then_local_then_download_names_every_place() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(tmp.path(), "m.rhai", "let m = mnist(); print(m.train.len());");
    // nothing anywhere: the error lists $ADVLAB_DATA/mnist, ./data/mnist and the download;
    // then ./data/mnist is used when $ADVLAB_DATA has none, and $ADVLAB_DATA comes first
    assert_resolution_order(
        tmp.path(),
        &s,
        &[
            "mnist data not found",
            "empty/mnist (no such directory)",
            "data/mnist (no such directory)",
            "download",
            "m.rhai:1:9",
        ],
        |data| {
            write_fixture(&data.join("mnist"), 20, 5);
            "20\n"
        },
        |env| {
            write_fixture(&env.join("mnist"), 30, 5);
            "30\n"
        },
    );
}

#[test]
fn real_mnist_loads_when_present() {
    let Some(dir) = mnist_dir() else { return };
    let s = load_mnist_like(Which::Mnist, Some(&dir), &Device::Cpu).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (60000, 10000));
    assert_eq!(s.train.image_shape(), (1, 28, 28));
    let v = values(s.test.images());
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    assert!(s.train.label_counts().unwrap().iter().all(|&c| c > 5000));
}
