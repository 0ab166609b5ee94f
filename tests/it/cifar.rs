//! CIFAR-10: binary batches generated here in the published format (1 label byte + 3072
//! CHW pixel bytes per record), read back value by value; truncated and wrongly sized files,
//! bad labels and missing files are clear errors; the resolution order is that of MNIST.

use crate::common::{advlab, assert_missing_folder, assert_resolution_order, script, values};
use advlab::data::{load_cifar10, load_dataset, read_cifar_batch, save_dataset, CifarParams, CIFAR10_CLASSES};
use candle_core::Device;
use predicates::str::contains;
use std::path::{Path, PathBuf};

const TRAIN: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// The pixel byte `j` (0..3072, CHW) of record `r` of file `f`, and the record's label: every
/// image different, every channel different, every class present.
fn pixel(f: usize, r: usize, j: usize) -> u8 {
    ((f * 31 + r * 7 + j * 13 + (j / 1024) * 5) % 256) as u8
}
fn label(f: usize, r: usize) -> u8 {
    ((f * 3 + r) % 10) as u8
}

/// One batch of `n` records of file number `f`.
fn batch(f: usize, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 3073);
    for r in 0..n {
        out.push(label(f, r));
        out.extend((0..3072).map(|j| pixel(f, r, j)));
    }
    out
}

/// A `cifar-10-batches-bin` folder in `root`: `per_file` records in each training batch
/// (files 0..4) and `test` in the test batch (file 5).
pub(crate) fn write_cifar(root: &Path, per_file: usize, test: usize) -> PathBuf {
    let dir = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for (f, name) in TRAIN.iter().enumerate() {
        std::fs::write(dir.join(name), batch(f, per_file)).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), batch(5, test)).unwrap();
    dir
}

fn explicit(path: &Path) -> CifarParams {
    CifarParams {
        path: Some(path.to_path_buf()),
        ..CifarParams::default()
    }
}

#[test]
fn generated_batches_load_with_their_values_labels_and_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_cifar(tmp.path(), 3, 4);
    let s = load_cifar10(&explicit(&dir), &Device::Cpu).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (15, 4));
    assert_eq!(s.train.image_shape(), (3, 32, 32));
    assert_eq!(s.train.classes(), 10);
    assert_eq!(s.train.name(), "cifar10-train");
    assert_eq!(s.test.class_names(), CIFAR10_CLASSES.map(String::from).to_vec());
    assert_eq!(s.train.class_names()[4], "deer");
    // training images come from data_batch_1 … 5 in order, each (C, H, W) in [0, 1]
    let px = values(s.train.images());
    let labels = s.train.labels().to_vec1::<u32>().unwrap();
    for f in 0..5 {
        for r in 0..3 {
            let i = f * 3 + r;
            assert_eq!(labels[i], u32::from(label(f, r)));
            for (c, y, x) in [(0, 0, 0), (0, 0, 31), (1, 5, 7), (2, 31, 31), (2, 16, 3)] {
                let j = c * 1024 + y * 32 + x;
                let want = f32::from(pixel(f, r, j)) / 255.0;
                assert_eq!(px[i * 3072 + j], want, "file {f} record {r} channel {c} ({y}, {x})");
            }
        }
    }
    let t = s.test.images().get(3).unwrap().get(2).unwrap().get(10).unwrap();
    assert_eq!(values(&t)[20], f32::from(pixel(5, 3, 2 * 1024 + 10 * 32 + 20)) / 255.0);
    assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(px.contains(&0.0) && px.contains(&1.0));
    // the parent folder works too, and limits read only the first images
    let p = CifarParams {
        path: Some(tmp.path().to_path_buf()),
        train: Some(4),
        test: Some(2),
    };
    let small = load_cifar10(&p, &Device::Cpu).unwrap();
    assert_eq!((small.train.len(), small.test.len()), (4, 2));
    assert_eq!(
        values(small.train.images()),
        values(&s.train.images().narrow(0, 0, 4).unwrap())
    );
    // class names survive subsets and a save/load round trip
    let path = tmp.path().join("d.safetensors");
    save_dataset(&small.train.take(3).unwrap(), &path).unwrap();
    let back = load_dataset(&path, &Device::Cpu).unwrap();
    assert_eq!(back.class_names()[9], "truck");
    assert_eq!(
        values(back.images()),
        values(&s.train.images().narrow(0, 0, 3).unwrap())
    );
}

#[test]
fn truncated_and_wrongly_sized_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_cifar(tmp.path(), 2, 2);
    let p = dir.join("data_batch_3.bin");
    // one byte short
    let mut b = batch(2, 2);
    b.pop();
    std::fs::write(&p, &b).unwrap();
    let e = read_cifar_batch(&p).unwrap_err().to_string();
    assert!(
        e.contains("data_batch_3.bin") && e.contains("6145 bytes") && e.contains("truncated"),
        "{e}"
    );
    let e = load_cifar10(&explicit(&dir), &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("data_batch_3.bin") && e.contains("truncated"), "{e}");
    // CIFAR-100 sized records (two label bytes)
    std::fs::write(&p, vec![1u8; 3 * 3074]).unwrap();
    let e = read_cifar_batch(&p).unwrap_err().to_string();
    assert!(e.contains("CIFAR-100"), "{e}");
    // empty
    std::fs::write(&p, []).unwrap();
    assert!(read_cifar_batch(&p).unwrap_err().to_string().contains("empty"));
    // a label out of range
    let mut b = batch(2, 2);
    b[3073] = 10;
    std::fs::write(&p, &b).unwrap();
    let e = read_cifar_batch(&p).unwrap_err().to_string();
    assert!(e.contains("record 1 has label 10"), "{e}");
    // a missing file is named, with the files a folder needs
    std::fs::remove_file(&p).unwrap();
    let e = load_cifar10(&explicit(&dir), &Device::Cpu).unwrap_err().to_string();
    assert!(
        e.contains("missing data_batch_3.bin") && e.contains("test_batch.bin"),
        "{e}"
    );
    assert_missing_folder(load_cifar10(&explicit(&tmp.path().join("nope")), &Device::Cpu), "nope");
}

#[test]
fn resolution_order_env_then_local_then_download_names_every_place() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "c.rhai",
        "let c = cifar10(); print(`${c.train.len()} ${c.test.shape()} ${c.test.class_names()[0]}`);",
    );
    // nothing anywhere: every place is named, and ADVLAB_OFFLINE skips the download; then
    // ./data is used when $ADVLAB_DATA has none, and $ADVLAB_DATA comes first
    assert_resolution_order(
        tmp.path(),
        &s,
        &[
            "cifar10 data not found",
            "empty/cifar-10-batches-bin (no such directory)",
            "data/cifar-10-batches-bin (no such directory)",
            "skipped: ADVLAB_OFFLINE is set",
            "c.rhai:1:9",
        ],
        |data| {
            write_cifar(data, 2, 3);
            "10 [3, 32, 32] airplane\n"
        },
        |env| {
            write_cifar(env, 1, 3);
            "5 [3, 32, 32] airplane\n"
        },
    );
    // the option map: a path and limits; unknown options are errors naming the valid ones
    let s2 = script(
        tmp.path(),
        "c2.rhai",
        r#"let c = cifar10(#{ path: "env/cifar-10-batches-bin", train: 2 }); print(`${c.train.len()} ${c.test.len()}`);"#,
    );
    advlab()
        .current_dir(tmp.path())
        .arg("run")
        .arg(&s2)
        .assert()
        .success()
        .stdout("2 3\n");
    let s3 = script(tmp.path(), "c3.rhai", "cifar10(#{ tran: 2 });");
    advlab()
        .current_dir(tmp.path())
        .arg("run")
        .arg(&s3)
        .assert()
        .failure()
        .stderr(contains("unknown option `tran` (did you mean `train`?)"));
}

/// Run `scripts/<script>` with quick=true on the CIFAR folder written in `tmp`, its outputs
/// under `tmp/out`; it must succeed.
fn run_quick_cifar(tmp: &Path, script: &str) -> assert_cmd::assert::Assert {
    advlab()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .arg(format!("scripts/{script}"))
        .arg(format!("dir={:?}", tmp.display().to_string()))
        .arg("quick=true")
        .arg("--out")
        .arg(tmp.join("out"))
        .assert()
        .success()
}

#[test]
fn the_cifar_models_script_runs_quick_on_generated_files() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar(tmp.path(), 420, 500);
    let out = tmp.path().join("out");
    run_quick_cifar(tmp.path(), "cifar_models.rhai").stdout(contains("classes: [\"airplane\""));
    let csv = std::fs::read_to_string(out.join("cifar_models/quick/results.csv")).unwrap();
    assert!(csv.lines().count() == 3 && csv.contains("resnet"), "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",2000")), "{csv}");
    for f in [
        "resnet.safetensors",
        "test.safetensors",
        "predictions.safetensors",
        "resnet_module.json",
    ] {
        assert!(out.join("cifar_models/quick").join(f).is_file(), "{f} missing");
    }
}

#[test]
fn the_preact_resnet_pgd_training_script_runs_quick_on_generated_files() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar(tmp.path(), 30, 40);
    let out = tmp.path().join("out");
    let stdout = run_quick_cifar(tmp.path(), "reproduce/cifar_pgd_at.rhai")
        .stdout(contains("PreAct ResNet-18"))
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8(stdout).unwrap();
    let dir = out.join("cifar_pgd_at/quick");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["train_samples"], 80, "{r}");
    assert_eq!(r["selected_epoch"], 1, "{r}");
    for k in ["clean", "pgd20", "pgd50_restarts"] {
        let v = r[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} {v}");
    }
    // the stronger attack is not weaker
    assert!(r["pgd50_restarts"].as_f64() <= r["clean"].as_f64(), "{r}");
    assert!(dir.join("model.safetensors").is_file() && dir.join("history.csv").is_file());
    assert!(stdout.contains("held_out_pgd10"), "{stdout}");
    // the checkpoint is the PreAct ResNet-18 preset, with its batch-norm statistics
    let m = advlab::nn::load_model(&dir.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(m.arch().to_string(), "preact_resnet18(3×32×32 → 10 classes)");
    assert_eq!(m.named_buffers().count(), 2 * 17);
}
