//! Data from the files PyTorch and numpy users already have: an ImageFolder tree of PNG/JPEG
//! files, `np.savez` archives in Keras' layout and `np.save` pairs, written here and read back
//! value by value; bad files are clear errors naming the file and what is wrong.

use crate::common::{fails, run_in, script, values};
use advlab::data::{load_image_folder, load_npy, load_npz, FolderParams};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// The pixel (r, g, b) at (y, x) of image `i` of class `k`.
fn rgb(k: usize, i: usize, y: usize, x: usize) -> [u8; 3] {
    [(k * 100 + i * 10) as u8, (y * 20 + x) as u8, (255 - x * 9 - y) as u8]
}

/// `root/<class>/<i>.png`: 8×6 (H×W) RGB images, `counts[k]` in class `k`, plus a stray text
/// file that is not an image.
fn write_folder(root: &Path, classes: &[&str], counts: &[usize]) {
    for (k, (name, &n)) in classes.iter().zip(counts).enumerate() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let img = image::RgbImage::from_fn(6, 8, |x, y| image::Rgb(rgb(k, i, y as usize, x as usize)));
            img.save(dir.join(format!("{i:03}.png"))).unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    }
}

#[test]
fn an_image_folder_loads_with_its_classes_values_and_a_seeded_split() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pets");
    write_folder(&root, &["dog", "cat"], &[4, 6]);
    let p = FolderParams {
        split: 0.2,
        seed: 3,
        ..FolderParams::new(&root)
    };
    let s = load_image_folder(&p, &Device::Cpu).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (8, 2));
    assert_eq!(s.train.image_shape(), (3, 8, 6));
    // classes from the sorted folder names, as torchvision's ImageFolder
    assert_eq!(s.train.class_names(), vec!["cat".to_string(), "dog".to_string()]);
    // every image is one of the written ones, channel-major, in [0, 1]
    let all = s.train.concat(&s.test).unwrap();
    let px = values(all.images());
    let labels = all.labels().to_vec1::<u32>().unwrap();
    let mut seen = Vec::new();
    for (n, &label) in labels.iter().enumerate() {
        // written as ["dog", "cat"]: class 0 (cat) is the second folder written
        let k = 1 - label as usize;
        let img = &px[n * 144..(n + 1) * 144];
        let i = (0..6)
            .find(|&i| (0..3).all(|c| img[c * 48] == rgb(k, i, 0, 0)[c] as f32 / 255.0))
            .expect("a written image");
        for (y, x, c) in [(7, 5, 0), (3, 2, 1), (5, 4, 2)] {
            assert_eq!(img[c * 48 + y * 6 + x], rgb(k, i, y, x)[c] as f32 / 255.0);
        }
        seen.push((label, i));
    }
    assert_eq!(labels.iter().filter(|&&l| l == 0).count(), 6, "6 cats");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 10, "every image once");
    // the same seed, the same split; another seed, another one
    let again = load_image_folder(&p, &Device::Cpu).unwrap();
    assert_eq!(values(again.test.images()), values(s.test.images()));
    let other = load_image_folder(&FolderParams { seed: 4, ..p.clone() }, &Device::Cpu).unwrap();
    assert_ne!(values(other.test.images()), values(s.test.images()));
    // a requested size: grey and resized
    let grey = load_image_folder(
        &FolderParams {
            size: Some([1, 4, 3]),
            ..p.clone()
        },
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(grey.train.image_shape(), (1, 4, 3));
    assert!(values(grey.train.images()).iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn image_folder_errors_name_the_place_and_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let e = |p: &FolderParams| load_image_folder(p, &Device::Cpu).unwrap_err().to_string();
    let missing = e(&FolderParams::new(tmp.path().join("nowhere")));
    assert!(
        missing.contains("nowhere") && missing.contains("not found"),
        "{missing}"
    );
    let root = tmp.path().join("d");
    write_folder(&root, &["a", "b"], &[2, 2]);
    std::fs::create_dir_all(root.join("c")).unwrap();
    let empty = e(&FolderParams::new(&root));
    assert!(
        empty.contains("class folder with no images") && empty.contains("/c"),
        "{empty}"
    );
    std::fs::write(root.join("c/broken.png"), b"\x89PNG not really").unwrap();
    let broken = e(&FolderParams::new(&root));
    assert!(
        broken.contains("broken.png") && broken.contains("cannot decode"),
        "{broken}"
    );
    let split = e(&FolderParams {
        split: 1.0,
        ..FolderParams::new(&root)
    });
    assert!(split.contains("split"), "{split}");
    let size = e(&FolderParams {
        size: Some([2, 4, 4]),
        ..FolderParams::new(&root)
    });
    assert!(size.contains("C 1 or 3"), "{size}");
}

#[test]
fn npz_and_npy_arrays_load_as_data_sets() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &Device::Cpu;
    // (N, H, W, C) uint8 images, as numpy users keep CIFAR; int64 labels
    let n = 5;
    let raw: Vec<u8> = (0..n * 5 * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
    let x = Tensor::from_vec(raw.clone(), (n, 5, 4, 3), d).unwrap();
    let y = Tensor::new(&[0i64, 2, 1, 2, 0], d).unwrap();
    let xt = Tensor::from_vec(raw[..2 * 60].to_vec(), (2, 5, 4, 3), d).unwrap();
    let yt = Tensor::new(&[1i64, 0], d).unwrap();
    let npz = tmp.path().join("set.npz");
    Tensor::write_npz(
        &[("x_train", &x), ("y_train", &y), ("x_test", &xt), ("y_test", &yt)],
        &npz,
    )
    .unwrap();
    let s = load_npz(&npz, d).unwrap();
    assert_eq!((s.train.len(), s.test.len(), s.train.classes()), (5, 2, 3));
    assert_eq!(s.train.image_shape(), (3, 5, 4), "NHWC becomes NCHW");
    let px = values(s.train.images());
    // sample 1, channel 2, row 3, column 1 is raw[((1·5 + 3)·4 + 1)·3 + 2] / 255
    assert!((px[60 + 2 * 20 + 3 * 4 + 1] - raw[((5 + 3) * 4 + 1) * 3 + 2] as f32 / 255.0).abs() < 1e-6);
    assert_eq!(s.train.labels().to_vec1::<u32>().unwrap(), vec![0, 2, 1, 2, 0]);
    // (N, H, W) float images in [0, 1] and their labels as two .npy files
    let xf = (Tensor::arange(0f32, 24.0, d).unwrap().reshape((2, 3, 4)).unwrap() / 24.0).unwrap();
    let (xp, yp) = (tmp.path().join("x.npy"), tmp.path().join("y.npy"));
    xf.write_npy(&xp).unwrap();
    Tensor::new(&[1u8, 0], d).unwrap().write_npy(&yp).unwrap();
    let one = load_npy(&xp, &yp, d).unwrap();
    assert_eq!((one.len(), one.image_shape(), one.classes()), (2, (1, 3, 4), 2));
    assert_eq!(values(one.images()), values(&xf));
    // bad arrays, each named
    let e = |r: advlab::Result<advlab::data::Dataset>| r.unwrap_err().to_string();
    (xf.clone() * 255.0).unwrap().write_npy(&xp).unwrap();
    let big = e(load_npy(&xp, &yp, d));
    assert!(big.contains("x.npy") && big.contains("[0, 1]"), "{big}");
    xf.write_npy(&xp).unwrap();
    Tensor::new(&[1i64, -1], d).unwrap().write_npy(&yp).unwrap();
    let neg = e(load_npy(&xp, &yp, d));
    assert!(neg.contains("y.npy") && neg.contains("0 or more"), "{neg}");
    Tensor::new(&[1i64, 0, 1], d).unwrap().write_npy(&yp).unwrap();
    let count = e(load_npy(&xp, &yp, d));
    assert!(count.contains("3 labels for 2 images"), "{count}");
    // a header that promises more than the file holds: refused before anything is allocated
    let bytes = std::fs::read(&xp).unwrap();
    // candle writes the shape as (2,3,4,); the same length keeps the header's size
    let at = bytes.windows(8).position(|w| w == b"(2,3,4,)").unwrap();
    let mut edited = bytes[..at].to_vec();
    edited.extend_from_slice(b"(9,3,4,)");
    edited.extend_from_slice(&bytes[at + 8..]);
    std::fs::write(&xp, edited).unwrap();
    let cut = e(load_npy(&xp, &yp, d));
    assert!(cut.contains("x.npy") && cut.contains("truncated"), "{cut}");
    // an archive whose directory declares more bytes than its entry can hold (a forged size that
    // the reader would allocate): refused, naming the entry
    let mut forged = std::fs::read(&npz).unwrap();
    let dir = forged.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    forged[dir + 24..dir + 28].copy_from_slice(&0xF000_0000u32.to_le_bytes());
    let lying = tmp.path().join("lying.npz");
    std::fs::write(&lying, forged).unwrap();
    let lie = load_npz(&lying, d).unwrap_err().to_string();
    assert!(
        lie.contains("lying.npz") && lie.contains("x_train") && lie.contains("corrupt or forged"),
        "{lie}"
    );
    // an archive without Keras' keys lists what it holds
    let other = tmp.path().join("other.npz");
    Tensor::write_npz(&[("images", &x), ("labels", &y)], &other).unwrap();
    let keys = load_npz(&other, d).unwrap_err().to_string();
    assert!(
        keys.contains("no array named x_train") && keys.contains("\"images\""),
        "{keys}"
    );
    assert_eq!(xf.dtype(), DType::F32);
}

#[test]
fn scripts_load_image_folders_and_arrays() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder(&tmp.path().join("data/pets"), &["cat", "dog"], &[5, 5]);
    // found under ./data, trained on, split from the seed
    let s = script(
        tmp.path(),
        "f.rhai",
        "let s = image_folder(\"pets\", #{ split: 0.2, size: [3, 8, 6] });\n\
         print(`${s.train.len()} ${s.test.len()} ${s.train.class_names()}`);\n\
         let m = cnn(#{ input: [3, 8, 6], classes: 2 });\n\
         m.fit(s.train, #{ epochs: 1 });",
    );
    run_in(tmp.path(), &s)
        .success()
        .stdout(predicates::str::contains("8 2 [\"cat\", \"dog\"]"));
    fails("let s = image_folder(\"nope\");", "image folder not found", "1:9");
    fails(
        "let s = image_folder(\"nope\", #{ split: 2.0 });",
        "must be in [0, 1)",
        "1:9",
    );
    fails("let s = npz(\"missing.npz\");", "missing.npz", "1:9");
}

#[test]
fn loaders_refuse_sizes_and_labels_that_cannot_be_meant() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &Device::Cpu;
    let root = tmp.path().join("two");
    write_folder(&root, &["a", "b"], &[1, 1]);
    // 0.75 of 2 images rounds to 2: nothing would be left to train on
    let all = load_image_folder(
        &FolderParams {
            split: 0.75,
            ..FolderParams::new(&root)
        },
        d,
    )
    .unwrap_err()
    .to_string();
    assert!(all.contains("leaves none to train on"), "{all}");
    let huge = load_image_folder(
        &FolderParams {
            size: Some([3, 1 << 40, 4]),
            ..FolderParams::new(&root)
        },
        d,
    )
    .unwrap_err()
    .to_string();
    assert!(huge.contains("8192"), "{huge}");
    let (xp, yp) = (tmp.path().join("x.npy"), tmp.path().join("y.npy"));
    Tensor::zeros((2, 3, 3), DType::F32, d).unwrap().write_npy(&xp).unwrap();
    Tensor::new(&[0i64, 4_000_000_000], d).unwrap().write_npy(&yp).unwrap();
    let label = load_npy(&xp, &yp, d).unwrap_err().to_string();
    assert!(label.contains("label 4000000000 is too large"), "{label}");
}
