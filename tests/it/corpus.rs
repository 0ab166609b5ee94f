//! The bad-input corpus (issue 19): malformed scripts and corrupt files that the test writes
//! itself (IDX, CIFAR batches, safetensors checkpoints and data sets, npy and npz arrays, image
//! folders), each with its expected outcome, run by one test with every `advlab run` under a
//! memory limit. An input either fails with exit code 1 and a message that names the problem
//! (its script position for a script mistake; the file, and the field where there is one, for a
//! file) or succeeds with a stated property; it never panics, aborts or reports an internal
//! error.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The address space of every advlab process, in KiB (`ulimit -v`): an input that allocates
/// without bound ends in an allocation failure (an abort, which the test reports) instead of
/// taking the machine's memory. The run thread's 1 GiB stack is reserved address space too.
const MEMORY_LIMIT_KIB: u64 = 4_000_000;

/// The longest one case may run; none should come near it.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Bad inputs a case sees through its folder: the script is `bad.rhai`, paths are relative.
type Files = Vec<(String, Vec<u8>)>;

/// What a case must end in.
enum Expect {
    /// Exit code 1, `what` in stderr and the script position `bad.rhai:LINE:COL`.
    Fails { what: String, at: &'static str },
    /// Exit code 0 and `what` in stdout: the documented result, which the script prints.
    Prints(String),
}

/// One bad input: a script, the files it reads, and its outcome.
struct Case {
    name: &'static str,
    script: String,
    files: Files,
    expect: Expect,
}

/// A case that must fail with `what` at `at` (`LINE:COL` in bad.rhai).
fn fails(name: &'static str, script: impl Into<String>, what: impl Into<String>, at: &'static str) -> Case {
    Case {
        name,
        script: script.into(),
        files: Vec::new(),
        expect: Expect::Fails { what: what.into(), at },
    }
}

/// A case that must succeed, printing `what`.
fn prints(name: &'static str, script: impl Into<String>, what: impl Into<String>) -> Case {
    Case {
        name,
        script: script.into(),
        files: Vec::new(),
        expect: Expect::Prints(what.into()),
    }
}

impl Case {
    /// The same case with these files in its folder.
    fn with(mut self, files: Files) -> Self {
        self.files.extend(files);
        self
    }
}

/// One file at `path`.
fn file(path: &str, bytes: Vec<u8>) -> Files {
    vec![(path.to_string(), bytes)]
}

// ---------------------------------------------------------------------------------------------
// Generated files

/// `bytes`, gzip-compressed.
fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An IDX file of unsigned bytes with these dimensions and data (which need not agree).
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

/// `n` IDX images of 4×4 pixels.
fn idx_images(n: u32) -> Vec<u8> {
    idx(&[n, 4, 4], &vec![7; n as usize * 16])
}

/// `n` IDX labels 0, 1, … 9, 0, ….
fn idx_labels(n: u32) -> Vec<u8> {
    idx(&[n], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>())
}

/// An MNIST folder `m/` of 6 training and 4 test images, gzip-compressed (`gzip`) or raw, with
/// `changes` (a file's stem and its bytes) in place of some files; changed bytes that already
/// start with the gzip magic are written as they are (corrupt gzip data), `None` leaves the
/// file out.
fn mnist(gzip: bool, changes: Vec<(&str, Option<Vec<u8>>)>) -> Files {
    let mut files: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("train-images-idx3-ubyte", Some(idx_images(6))),
        ("train-labels-idx1-ubyte", Some(idx_labels(6))),
        ("t10k-images-idx3-ubyte", Some(idx_images(4))),
        ("t10k-labels-idx1-ubyte", Some(idx_labels(4))),
    ];
    for (stem, bytes) in changes {
        let at = files.iter().position(|(s, _)| *s == stem).unwrap();
        files[at].1 = bytes;
    }
    files
        .into_iter()
        .filter_map(|(stem, bytes)| {
            let bytes = bytes?;
            Some(match gzip {
                true if bytes.starts_with(&[0x1f, 0x8b]) => (format!("m/{stem}.gz"), bytes),
                true => (format!("m/{stem}.gz"), gz(&bytes)),
                false => (format!("m/{stem}"), bytes),
            })
        })
        .collect()
}

/// The gzip MNIST folder with one file replaced.
fn mnist_with(stem: &str, bytes: Vec<u8>) -> Files {
    mnist(true, vec![(stem, Some(bytes))])
}

/// One CIFAR-10 record: a label byte and 3072 pixel bytes.
fn record(label: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend(vec![100u8; 3072]);
    r
}

/// A CIFAR-10 folder `c/` of five training batches of two records and a test batch of two,
/// with `changes` (a file name and its bytes, `None` to leave it out) in place of some.
fn cifar(changes: Vec<(&str, Option<Vec<u8>>)>) -> Files {
    let mut names: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    names.push("test_batch.bin".into());
    names
        .into_iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let bytes = match changes.iter().find(|(n, _)| *n == name) {
                Some((_, b)) => b.clone()?,
                None => [record(i as u8), record(3)].concat(),
            };
            Some((format!("c/{name}"), bytes))
        })
        .collect()
}

/// A safetensors file: the 8-byte header length, the header text (any) and the data.
fn st_raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.extend(data);
    b
}

/// A tensor of a safetensors file: name, dtype, shape and its bytes (which need not agree).
type StTensor = (&'static str, &'static str, Vec<usize>, Vec<u8>);

/// A safetensors file of `tensors`, with `meta` as its metadata when there is any.
fn st(tensors: &[StTensor], meta: &[(&str, &str)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend(bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [start, data.len()] }),
        );
    }
    if !meta.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> =
            meta.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
        header.insert("__metadata__".into(), m.into());
    }
    st_raw(&serde_json::Value::Object(header).to_string(), &data)
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn u32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The tensors of mlp([4, 3]).
fn mlp43() -> Vec<StTensor> {
    vec![
        ("1.weight", "F32", vec![3, 4], f32s(&[0.1; 12])),
        ("1.bias", "F32", vec![3], f32s(&[0.0; 3])),
    ]
}

/// A checkpoint `m.safetensors` holding mlp([4, 3])'s tensors and `arch` (JSON text) as its
/// `advlab.arch` record.
fn checkpoint(arch: &str) -> Files {
    file("m.safetensors", st(&mlp43(), &[("advlab.arch", arch)]))
}

/// mlp([4, 3])'s record.
const MLP43: &str = r#"{"kind":"mlp","layers":[4,3]}"#;

/// A checkpoint of mlp([4, 3])'s record with `tensors`.
fn checkpoint_of(tensors: &[StTensor]) -> Files {
    file("m.safetensors", st(tensors, &[("advlab.arch", MLP43)]))
}

/// A sequential record over 4 features: `layers` (JSON text), then a linear layer of 3.
fn seq(layers: &str) -> String {
    format!(r#"{{"kind":"sequential","input":[4],"layers":[{layers},{{"type":"linear","out":3}}]}}"#)
}

/// A sequential record over 1×4×4 images: `layers` (JSON text), then flatten and linear 3.
fn seq_image(layers: &str) -> String {
    format!(
        r#"{{"kind":"sequential","input":[1,4,4],"layers":[{layers},{{"type":"flatten"}},{{"type":"linear","out":3}}]}}"#
    )
}

/// A data set file `d.safetensors` (as Dataset.save writes it) of `images` and `labels`, with
/// `meta` as its metadata.
fn saved_dataset(meta: &[(&str, &str)], images: StTensor, labels: StTensor) -> Files {
    file("d.safetensors", st(&[images, labels], meta))
}

/// Two 1×2×2 images in [0, 1].
fn good_images() -> StTensor {
    ("images", "F32", vec![2, 1, 2, 2], f32s(&[0.5; 8]))
}

/// Labels 0 and 1.
fn good_labels() -> StTensor {
    ("labels", "U32", vec![2], u32s(&[0, 1]))
}

/// The metadata of a saved data set of `classes` classes.
fn dataset_meta(classes: &str) -> Vec<(&'static str, &str)> {
    vec![("advlab.dataset", "saved"), ("advlab.classes", classes)]
}

/// A `.npy` file of `header` (the dict's text, any) and `data`, version 1.
fn npy_text(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    b.extend(data);
    b
}

/// A `.npy` file of element type `descr`, shape (its text, e.g. `(2, 3, 3)`) and `data`.
fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    npy_text(
        &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"),
        data,
    )
}

/// Two 3×3 uint8 images.
fn npy_images() -> Vec<u8> {
    npy("|u1", "(2, 3, 3)", &(0..18).collect::<Vec<u8>>())
}

/// Labels 0 and 1 as int64.
fn npy_labels() -> Vec<u8> {
    npy(
        "<i8",
        "(2,)",
        &[0i64, 1].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
    )
}

/// `x.npy` and `y.npy`, images and labels.
fn npy_pair(x: Vec<u8>, y: Vec<u8>) -> Files {
    vec![("x.npy".into(), x), ("y.npy".into(), y)]
}

/// A `.npz` archive `a.npz` of these entries (`name` gets `.npy`), stored or deflated.
fn npz(entries: Vec<(&str, Vec<u8>)>, deflate: bool) -> Files {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = match deflate {
        true => zip::CompressionMethod::Deflated,
        false => zip::CompressionMethod::Stored,
    };
    for (name, bytes) in entries {
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        z.start_file(format!("{name}.npy"), options).unwrap();
        z.write_all(&bytes).unwrap();
    }
    file("a.npz", z.finish().unwrap().into_inner())
}

/// Keras' four arrays, each replaced where `changes` names it (`None` leaves it out).
fn keras(changes: Vec<(&str, Option<Vec<u8>>)>) -> Vec<(&'static str, Vec<u8>)> {
    ["x_train", "y_train", "x_test", "y_test"]
        .into_iter()
        .filter_map(|k| {
            let default = if k.starts_with('x') { npy_images() } else { npy_labels() };
            match changes.iter().find(|(n, _)| *n == k) {
                Some((_, b)) => b.clone().map(|b| (k, b)),
                None => Some((k, default)),
            }
        })
        .collect()
}

/// A grey PNG of `w`×`h` pixels of value `v`.
fn png(w: u32, h: u32, v: u8) -> Vec<u8> {
    let mut c = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_pixel(w, h, image::Luma([v]))
        .write_to(&mut c, image::ImageFormat::Png)
        .unwrap();
    c.into_inner()
}

/// A colour PNG of `w`×`h` pixels.
fn rgb_png(w: u32, h: u32) -> Vec<u8> {
    let mut c = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(w, h, image::Rgb([10, 200, 30]))
        .write_to(&mut c, image::ImageFormat::Png)
        .unwrap();
    c.into_inner()
}

/// A PNG whose header (with a correct checksum) claims `w`×`h` pixels, and whose data is a
/// 4×4 image's.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let small = png(4, 4, 9);
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    let mut crc = flate2::Crc::new();
    crc.update(&ihdr);
    let mut b = small[..8].to_vec();
    b.extend(13u32.to_be_bytes());
    b.extend(&ihdr);
    b.extend(crc.sum().to_be_bytes());
    b.extend(&small[33..]);
    b
}

/// An image folder `img/` of classes `a` and `b` with three 4×4 grey PNGs each, with `changes`
/// (a path under `img/` and its bytes) added.
fn folder(changes: Vec<(&str, Vec<u8>)>) -> Files {
    let mut files: Files = ["a", "b"]
        .iter()
        .flat_map(|c| (0..3u8).map(move |i| (format!("img/{c}/{i}.png"), png(4, 4, 40 * i))))
        .collect();
    files.extend(changes.into_iter().map(|(p, b)| (format!("img/{p}"), b)));
    files
}

/// `n` bytes from a fixed pseudo-random sequence.
fn noise_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The table

/// A small data set and an untrained 10-class MLP: the third line of a script is the case's.
const SMALL: &str = "let d = synthetic(#{ train: 20, test: 10, seed: 1 });\nlet m = mlp([784, 10]);\n";

/// `SMALL`, then `line`.
fn small(line: &str) -> String {
    format!("{SMALL}{line}")
}

/// A script line printing the least and largest pixel of `attack`'s images of `d.test`, and
/// whether their sum is finite (no NaN hides between them).
fn in_range(attack: &str) -> String {
    format!("let a = {attack}.perturb(m, d.test).images();\nprint([a.min(), a.max(), a.sum().is_finite]);")
}

/// The options of attacks: NaN, infinities, negative, zero and huge values, wrong types,
/// unknown names.
fn attack_cases() -> Vec<Case> {
    vec![
        fails(
            "fgsm eps NaN",
            "let a = fgsm(#{ eps: 0.0 / 0.0 });",
            "fgsm: eps must be a finite number >= 0 (got NaN)",
            "1:9",
        ),
        fails(
            "fgsm eps inf",
            "let a = fgsm(#{ eps: 1.0 / 0.0 });",
            "eps must be a finite number >= 0 (got inf)",
            "1:9",
        ),
        fails(
            "fgsm eps -inf",
            "let a = fgsm(#{ eps: -1.0 / 0.0 });",
            "eps must be a finite number >= 0 (got -inf)",
            "1:9",
        ),
        fails(
            "fgsm eps negative",
            "let a = fgsm(#{ eps: -0.5 });",
            "eps must be a finite number >= 0 (got -0.5)",
            "1:9",
        ),
        fails(
            "fgsm eps missing",
            "let a = fgsm(#{});",
            "option `eps` is required",
            "1:9",
        ),
        fails(
            "fgsm eps string",
            "let a = fgsm(#{ eps: \"0.1\" });",
            "option `eps` must be a number, got string",
            "1:9",
        ),
        fails(
            "fgsm eps bool",
            "let a = fgsm(#{ eps: true });",
            "option `eps` must be a number, got bool",
            "1:9",
        ),
        fails(
            "fgsm batch_size 0",
            "let a = fgsm(#{ eps: 0.1, batch_size: 0 });",
            "batch_size must be at least 1 (got 0)",
            "1:9",
        ),
        fails(
            "fgsm batch_size negative",
            "let a = fgsm(#{ eps: 0.1, batch_size: -5 });",
            "option `batch_size` must be >= 0, got -5",
            "1:9",
        ),
        fails(
            "fgsm eot 0",
            "let a = fgsm(#{ eps: 0.1, eot: 0 });",
            "eot (the gradient samples averaged per step) must be at least 1",
            "1:9",
        ),
        fails(
            "fgsm target unknown",
            "let a = fgsm(#{ eps: 0.1, target: \"nobody\" });",
            "unknown target \"nobody\"",
            "1:9",
        ),
        fails(
            "fgsm target negative",
            "let a = fgsm(#{ eps: 0.1, target: -1 });",
            "target must be a class number >= 0 (got -1)",
            "1:9",
        ),
        fails(
            "fgsm target beyond classes",
            small("print(fgsm(#{ eps: 0.1, target: 99 }).perturb(m, d.test));"),
            "target class 99 is outside the model's classes 0..=9",
            "3:39",
        ),
        fails(
            "fgsm called with a number",
            "let a = fgsm(0.5);",
            "fgsm is called as: fgsm(opts: Map) -> Attack",
            "1:9",
        ),
        fails(
            "fgsm unknown option",
            "let a = fgsm(#{ epz: 0.1 });",
            "unknown option `epz` (did you mean `eps`?)",
            "1:17",
        ),
        fails(
            "pgd eps NaN",
            "let a = pgd(#{ eps: 0.0 / 0.0 });",
            "pgd: eps must be a finite number >= 0 (got NaN)",
            "1:9",
        ),
        fails(
            "pgd steps 0",
            "let a = pgd(#{ eps: 0.1, steps: 0 });",
            "steps must be at least 1 (got 0)",
            "1:9",
        ),
        fails(
            "pgd alpha NaN",
            "let a = pgd(#{ eps: 0.1, alpha: 0.0 / 0.0 });",
            "alpha (the step size) must be a finite number > 0 (got NaN)",
            "1:9",
        ),
        fails(
            "pgd alpha negative",
            "let a = pgd(#{ eps: 0.1, alpha: -1.0 });",
            "alpha (the step size) must be a finite number > 0 (got -1)",
            "1:9",
        ),
        fails(
            "pgd alpha 0",
            "let a = pgd(#{ eps: 0.1, alpha: 0.0 });",
            "alpha (the step size) must be a finite number > 0 (got 0)",
            "1:9",
        ),
        fails(
            "pgd norm unknown",
            "let a = pgd(#{ eps: 0.1, norm: \"l7\" });",
            "unknown norm \"l7\": use \"linf\" or \"l2\"",
            "1:9",
        ),
        fails(
            "pgd restarts 0",
            "let a = pgd(#{ eps: 0.1, restarts: 0 });",
            "restarts must be at least 1 (got 0)",
            "1:9",
        ),
        fails(
            "pgd seed negative",
            "let a = pgd(#{ eps: 0.1, seed: -1 });",
            "option `seed` must be >= 0, got -1",
            "1:9",
        ),
        fails(
            "pgd random_start a number",
            "let a = pgd(#{ eps: 0.1, random_start: 3 });",
            "option `random_start` must be true or false",
            "1:9",
        ),
        fails(
            "bim steps 0",
            "let a = bim(#{ eps: 0.1, steps: 0 });",
            "bim: steps must be at least 1 (got 0)",
            "1:9",
        ),
        fails(
            "apgd rho above 1",
            "let a = apgd(#{ eps: 0.1, rho: 1.5 });",
            "apgd: rho must be in (0, 1] (got 1.5)",
            "1:9",
        ),
        fails(
            "apgd rho NaN",
            "let a = apgd(#{ eps: 0.1, rho: 0.0 / 0.0 });",
            "rho must be in (0, 1] (got NaN)",
            "1:9",
        ),
        fails(
            "apgd loss unknown",
            "let a = apgd(#{ eps: 0.1, loss: \"hinge\" });",
            "unknown loss \"hinge\"",
            "1:9",
        ),
        fails(
            "apgd eps inf",
            "let a = apgd(#{ eps: 1.0 / 0.0 });",
            "eps must be a finite number >= 0 (got inf)",
            "1:9",
        ),
        fails(
            "apgd_t no target classes",
            "let a = apgd_t(#{ eps: 0.1, n_target_classes: 0 });",
            "n_target_classes must be at least 1 (got 0)",
            "1:9",
        ),
        fails(
            "apgd_t more targets than classes",
            small("print(apgd_t(#{ eps: 0.1, steps: 2, n_target_classes: 50 }).perturb(m, d.test));"),
            "n_target_classes 50 is more than the model's other classes (9)",
            "3:61",
        ),
        fails(
            "square p_init 0",
            "let a = square(#{ eps: 0.1, p_init: 0.0 });",
            "p_init must be in (0, 1] (got 0)",
            "1:9",
        ),
        fails(
            "square p_init 2",
            "let a = square(#{ eps: 0.1, p_init: 2.0 });",
            "p_init must be in (0, 1] (got 2)",
            "1:9",
        ),
        fails(
            "square queries 0",
            "let a = square(#{ eps: 0.1, queries: 0 });",
            "must be at least 1 (got 0)",
            "1:9",
        ),
        fails(
            "fab_t eta NaN",
            "let a = fab_t(#{ eps: 0.1, eta: 0.0 / 0.0 });",
            "eta (FAB's overshoot) must be a finite number >= 1 (got NaN)",
            "1:9",
        ),
        fails(
            "fab_t beta above 1",
            "let a = fab_t(#{ eps: 0.1, beta: 1.5 });",
            "beta (FAB's step back towards the clean image) must be in (0, 1]",
            "1:9",
        ),
        fails(
            "fab_t alpha_max negative",
            "let a = fab_t(#{ eps: 0.1, alpha_max: -1.0 });",
            "alpha_max (FAB's largest weight",
            "1:9",
        ),
        fails(
            "cw c 0",
            "let a = cw_l2(#{ c: 0.0 });",
            "c (the weight of the classification term) must be a finite number > 0 (got 0)",
            "1:9",
        ),
        fails(
            "cw c negative",
            "let a = cw_l2(#{ c: -1.0 });",
            "must be a finite number > 0 (got -1)",
            "1:9",
        ),
        fails(
            "cw c NaN",
            "let a = cw_l2(#{ c: 0.0 / 0.0 });",
            "must be a finite number > 0 (got NaN)",
            "1:9",
        ),
        fails(
            "cw kappa negative",
            "let a = cw_l2(#{ kappa: -1.0 });",
            "kappa (the confidence margin) must be a finite number >= 0 (got -1)",
            "1:9",
        ),
        fails(
            "cw lr 0",
            "let a = cw_l2(#{ lr: 0.0 });",
            "lr (the learning rate) must be a finite number > 0 (got 0)",
            "1:9",
        ),
        fails(
            "cw lr inf",
            "let a = cw_l2(#{ lr: 1.0 / 0.0 });",
            "lr (the learning rate) must be a finite number > 0 (got inf)",
            "1:9",
        ),
        fails(
            "cw binary_search_steps 0",
            "let a = cw_l2(#{ binary_search_steps: 0 });",
            "binary_search_steps must be at least 1 (got 0)",
            "1:9",
        ),
        fails(
            "cw target beyond classes",
            small("print(cw_l2(#{ target: 42, steps: 2 }).perturb(m, d.test));"),
            "target class 42 is outside the model's classes 0..=9",
            "3:40",
        ),
        fails(
            "deepfool overshoot negative",
            "let a = deepfool(#{ overshoot: -1.0 });",
            "overshoot must be a finite number >= 0 (got -1)",
            "1:9",
        ),
        fails(
            "deepfool overshoot NaN",
            "let a = deepfool(#{ overshoot: 0.0 / 0.0 });",
            "overshoot must be a finite number >= 0 (got NaN)",
            "1:9",
        ),
        fails(
            "deepfool num_classes 1",
            "let a = deepfool(#{ num_classes: 1 });",
            "num_classes (the candidate classes DeepFool considers) must be at least 2 (got 1)",
            "1:9",
        ),
        fails(
            "deepfool steps 0",
            "let a = deepfool(#{ steps: 0 });",
            "deepfool: steps must be at least 1 (got 0)",
            "1:9",
        ),
        fails(
            "noise kind unknown",
            "let a = noise(#{ eps: 0.1, kind: \"pink\" });",
            "unknown noise kind \"pink\"",
            "1:9",
        ),
        fails(
            "universal fooling_rate 0",
            "let a = universal(#{ eps: 0.1, fooling_rate: 0.0 });",
            "fooling_rate (the target fraction of fooled images) must be in (0, 1] (got 0)",
            "1:9",
        ),
        fails(
            "universal max_iters 0",
            "let a = universal(#{ eps: 0.1, max_iters: 0 });",
            "max_iters must be at least 1 (got 0)",
            "1:9",
        ),
        fails(
            "universal on no data",
            small("print(universal(#{ eps: 0.1 }).fit(m, d.test.take(0)));"),
            "universal: cannot fit on an empty data set",
            "3:32",
        ),
        fails(
            "universal perturbation of another shape",
            small("print(universal_from(zeros([1, 3, 28, 28])).perturb(m, d.test));"),
            "a universal perturbation of shape 3×28×28 does not fit images of shape 1×28×28",
            "3:45",
        ),
        fails(
            "with_eps NaN",
            "let a = fgsm(#{ eps: 0.1 }).with_eps(0.0 / 0.0);",
            "eps must be a finite number >= 0 (got NaN)",
            "1:29",
        ),
        fails(
            "accuracy_vs_eps negative eps",
            small("print(accuracy_vs_eps(m, d.test, [fgsm(#{ eps: 0.1 })], [-1.0]));"),
            "eps must be a finite number >= 0 (got -1)",
            "3:7",
        ),
        fails(
            "accuracy_vs_eps of cw",
            small("print(accuracy_vs_eps(m, d.test, [cw_l2(#{})], [0.1]));"),
            "cw_l2 has no eps budget to vary",
            "3:7",
        ),
        fails(
            "autoattack eps NaN",
            small("print(autoattack(m, d.test, #{ eps: 0.0 / 0.0 }));"),
            "autoattack: eps must be a finite number >= 0 (got NaN)",
            "3:7",
        ),
        fails(
            "autoattack version unknown",
            small("print(autoattack(m, d.test, #{ eps: 0.1, version: \"turbo\" }));"),
            "unknown autoattack version \"turbo\"",
            "3:7",
        ),
        fails(
            "robustness_checks no samples",
            small("print(robustness_checks(m, d.test, #{ samples: 0 }));"),
            "samples must be at least 1 (got 0)",
            "3:7",
        ),
        fails(
            "evaluate with a number for an attack",
            small("print(evaluate(m, d.test, [1]));"),
            "element 0 of the attack list is i64, not an Attack",
            "3:7",
        ),
        fails(
            "perturb with swapped arguments",
            small("print(fgsm(#{ eps: 0.1 }).perturb(d.test, m));"),
            "perturb",
            "3:27",
        ),
        prints(
            "fgsm of a huge eps stays in [0, 1]",
            small(&in_range("fgsm(#{ eps: 1e30 })")),
            "[0.0, 1.0, true]",
        ),
        prints(
            "pgd of a huge step stays in [0, 1]",
            small(&in_range("pgd(#{ eps: 0.3, steps: 2, alpha: 1e30 })")),
            "[0.0, 1.0, true]",
        ),
        prints(
            "pgd-l2 of a huge eps stays in [0, 1]",
            small(&in_range("pgd(#{ eps: 1e30, steps: 2, norm: \"l2\" })")),
            "[0.0, 1.0, true]",
        ),
        prints(
            "apgd of a huge eps stays in [0, 1]",
            small(&in_range("apgd(#{ eps: 1e30, steps: 2 })")),
            "[0.0, 1.0, true]",
        ),
        prints(
            "cw of a huge c and lr stays in [0, 1]",
            small(&in_range(
                "cw_l2(#{ steps: 2, binary_search_steps: 1, c: 1e30, lr: 1e30 })",
            )),
            "true]",
        ),
        prints(
            "gaussian noise of a huge eps stays in [0, 1]",
            small(&in_range("noise(#{ eps: 1e30, kind: \"gaussian\" })")),
            "[0.0, 1.0, true]",
        ),
        prints(
            "a batch_size beyond the data is one batch",
            small("print(pgd(#{ eps: 0.1, steps: 2, batch_size: 9223372036854775807 }).perturb(m, d.test).len());"),
            "10",
        ),
        prints(
            "evaluate with no attacks gives the clean accuracy",
            small("print(evaluate(m, d.test, []).keys());"),
            "[\"clean\"]",
        ),
    ]
}

/// Model constructors and architectures: zero, negative, huge and wrong-typed sizes.
fn model_cases() -> Vec<Case> {
    vec![
        fails("mlp zero width", "let m = mlp([784, 0, 10]);", "every layer size must be at least 1 (got [784, 0, 10])", "1:9"),
        fails("mlp one size", "let m = mlp([784]);", "an mlp needs at least an input and an output size", "1:9"),
        fails("mlp no sizes", "let m = mlp([]);", "an mlp needs at least an input and an output size", "1:9"),
        fails("mlp negative width", "let m = mlp([784, -3, 10]);", "mlp: layers must be >= 0, got -3", "1:9"),
        fails("mlp float width", "let m = mlp([784, 2.5, 10]);", "mlp: layers: element 1 is f64, not an integer", "1:9"),
        fails("mlp string width", "let m = mlp([784, \"a\", 10]);", "element 1 is string, not an integer", "1:9"),
        fails("mlp of one class", "let m = mlp([784, 10, 1]);", "classes must be at least 2 (got 1)", "1:9"),
        fails("mlp of a number", "let m = mlp(784);", "wrong argument types in call to mlp", "1:9"),
        fails("mlp huge width refused before allocating", "let m = mlp([784, 4000000000000, 10]);", "a 4000000000000×784 weight of 3136000000000000 values is too large", "1:9"),
        fails("mlp noise site unknown", "let m = mlp([784, 10], #{ noise_injection: \"everywhere\" });", "unknown noise_injection \"everywhere\"", "1:9"),
        fails("cnn zero classes", "let m = cnn(#{ classes: 0 });", "classes must be at least 2 (got 0)", "1:9"),
        fails("cnn one class", "let m = cnn(#{ classes: 1 });", "classes must be at least 2 (got 1)", "1:9"),
        fails("cnn zero channels", "let m = cnn(#{ input: [0, 28, 28] });", "input must be [channels, height, width], each at least 1 (got [0, 28, 28])", "1:9"),
        fails("cnn tiny images", "let m = cnn(#{ input: [1, 2, 2] });", "the images must be at least 4×4 (got 2×2)", "1:9"),
        fails("cnn input of two sizes", "let m = cnn(#{ input: [1, 28] });", "option `input` must be [channels, height, width], got [1, 28]", "1:9"),
        fails("cnn huge images refused before allocating", "let m = cnn(#{ input: [1, 100000, 100000] });", "an input of 1×100000×100000 would need 10000000000 values", "1:9"),
        fails("cnn huge classes refused before allocating", "let m = cnn(#{ classes: 1000000000000 });", "a 1000000000000×128 weight", "1:9"),
        fails("resnet no stages", "let m = resnet(#{ blocks: [] });", "blocks must list 1 to 4 stages", "1:9"),
        fails("resnet five stages", "let m = resnet(#{ blocks: [1, 1, 1, 1, 1] });", "blocks must list 1 to 4 stages", "1:9"),
        fails("resnet zero width", "let m = resnet(#{ width: 0 });", "width (the channels of the first stage) must be at least 1 (got 0)", "1:9"),
        fails("resnet input not divisible", "let m = resnet(#{ input: [3, 30, 30], blocks: [1, 1, 1] });", "height and width must be divisible by 4 (got 30×30)", "1:9"),
        fails("resnet huge width refused before allocating", "let m = resnet(#{ width: 100000000 });", "would need 102400000000 values, more than the 4294967296 advlab allocates", "1:9"),
        fails("resnet huge stage refused before building", "let m = resnet(#{ blocks: [1000000000] });", "1000000000 residual blocks in one stage is more than the 1000", "1:9"),
        fails("lwta zero units", "let m = lwta_mlp(#{ layers: [784, 30, 10], units_per_block: 0 });", "units_per_block (the units competing in one LWTA block) must be at least 2 (got 0)", "1:9"),
        fails("lwta layer not divisible", "let m = lwta_mlp(#{ layers: [784, 31, 10] });", "every hidden layer must split into blocks of units_per_block = 2 units (a layer has 31)", "1:9"),
        fails("lwta negative temperature", "let m = lwta_mlp(#{ layers: [784, 30, 10], temperature: -1.0 });", "temperature (of the Gumbel-softmax relaxation) must be a finite number > 0 (got -1)", "1:9"),
        fails("lwta NaN temperature", "let m = lwta_mlp(#{ layers: [784, 30, 10], temperature: 0.0 / 0.0 });", "must be a finite number > 0 (got NaN)", "1:9"),
        fails("lwta zero passes", "let m = lwta_mlp(#{ layers: [784, 30, 10], passes: 0 });", "passes must be at least 1 (got 0)", "1:9"),
        fails("lwta huge passes", "let m = lwta_mlp(#{ layers: [784, 30, 10], passes: 1000000000000 });", "passes must be at most 1000 (got 1000000000000)", "1:9"),
        fails("lwta ibp alpha 0", "let m = lwta_mlp(#{ layers: [784, 30, 10], ibp: true, ibp_alpha: 0.0 });", "ibp_alpha (the concentration of the IBP prior) must be a finite number > 0 (got 0)", "1:9"),
        fails("lwta_mlp without layers", "let m = lwta_mlp(#{});", "option `layers` is required", "1:9"),
        fails("lwta_cnn blocks of 3", "let m = lwta_cnn(#{ units_per_block: 3 });", "blocks of units_per_block = 3 units (a layer has 32)", "1:9"),
        fails("with_passes huge", "let m = lwta_mlp(#{ layers: [784, 10, 10] }).with_passes(1000000);", "passes must be at most 1000 (got 1000000)", "1:46"),
        fails("with_passes of a deterministic model", "let m = mlp([784, 10]).with_passes(3);", "passes only applies to stochastic LWTA models", "1:24"),
        fails("wide_resnet depth not 6n+4", "let m = wide_resnet(#{ depth: 27 });", "a WideResNet's depth must be 6n + 4", "1:9"),
        fails("wide_resnet widen 0", "let m = wide_resnet(#{ widen: 0 });", "widen (the WideResNet's widening factor) must be at least 1 (got 0)", "1:9"),
        fails("wide_resnet drop 1", "let m = wide_resnet(#{ drop: 1.0 });", "drop (the WideResNet's dropout between a block's convolutions) must be in [0, 1) (got 1)", "1:9"),
        fails("wide_resnet huge depth refused before building", "let m = wide_resnet(#{ depth: 1000000000 });", "166666666 residual blocks in one stage is more than the 1000", "1:9"),
        fails("preact_resnet18 one class", "let m = preact_resnet18(#{ classes: 1 });", "classes must be at least 2 (got 1)", "1:9"),
        fails("trades_small_cnn drop NaN", "let m = trades_small_cnn(#{ drop: 0.0 / 0.0 });", "(dropout): p must be in [0, 1) (got NaN)", "1:9"),
        fails("sequential empty", "let m = sequential([]);", "a sequential network needs at least one layer", "1:9"),
        fails("linear 0", "let m = sequential([linear(0)]);", "linear: out must be at least 1 (got 0)", "1:21"),
        fails("linear negative", "let m = sequential([linear(-1)]);", "linear: out must be at least 1 (got -1)", "1:21"),
        fails("sequential of one class", "let m = sequential([flatten(), linear(1)]);", "a classifier must end in a flat output of at least 2 classes", "1:9"),
        fails("conv2d kernel 0", "let m = sequential([conv2d(#{ out: 8, kernel: 0 }), flatten(), linear(10)]);", "layer 0 (conv2d): out, kernel and stride must be at least 1 (got 8, 0, 1)", "1:9"),
        fails("conv2d kernel larger than the image", "let m = sequential([conv2d(#{ out: 8, kernel: 50 }), flatten(), linear(10)]);", "a 50×50 kernel does not fit a 28×28 input with padding 0", "1:9"),
        fails("conv2d stride 0", "let m = sequential([conv2d(#{ out: 8, kernel: 3, stride: 0 }), flatten(), linear(10)]);", "out, kernel and stride must be at least 1 (got 8, 3, 0)", "1:9"),
        fails("max_pool 0", "let m = sequential([max_pool(0), flatten(), linear(10)]);", "max_pool: size must be at least 1 (got 0)", "1:21"),
        fails("max_pool larger than the image", "let m = sequential([max_pool(100), flatten(), linear(10)]);", "a 100×100 window does not fit a 28×28 input", "1:9"),
        fails("avg_pool 0", "let m = sequential([avg_pool(0), flatten(), linear(10)]);", "avg_pool: size must be at least 1 (got 0)", "1:21"),
        fails("upsample 0", "let m = sequential([upsample(0), flatten(), linear(10)]);", "upsample: factor must be at least 1 (got 0)", "1:21"),
        fails("upsample huge refused before allocating", "let m = sequential([upsample(1000000), flatten(), linear(10)]);", "the output of layer 0 (upsample) per sample, 1×28000000×28000000, would need 784000000000000 values", "1:9"),
        fails("dropout 1", "let m = sequential([dropout(1.0), flatten(), linear(10)]);", "layer 0 (dropout): p must be in [0, 1) (got 1)", "1:9"),
        fails("dropout negative", "let m = sequential([dropout(-0.1), flatten(), linear(10)]);", "p must be in [0, 1) (got -0.1)", "1:9"),
        fails("leaky_relu slope NaN", "let m = sequential([flatten(), leaky_relu(0.0 / 0.0), linear(10)]);", "layer 1 (leaky_relu): slope must be a finite number (got NaN)", "1:9"),
        fails("sequential input empty", "let m = sequential([flatten(), linear(10)], #{ input: [] });", "input must be [channels, height, width], each at least 1 (got [])", "1:9"),
        fails("sequential input of zero channels", "let m = sequential([flatten(), linear(10)], #{ input: [0, 28, 28] });", "each at least 1 (got [0, 28, 28])", "1:9"),
        fails("sequential input of four sizes", "let m = sequential([flatten(), linear(10)], #{ input: [1, 2, 3, 4] });", "(got [1, 2, 3, 4])", "1:9"),
        fails("sequential huge input refused", "let m = sequential([flatten(), linear(10)], #{ input: [1099511627776, 1099511627776, 1099511627776] });", "would need over 2^64 values", "1:9"),
        fails("linear on an image", "let m = sequential([linear(10)]);", "linear needs a flat input, but its input is a 1×28×28 image: put flatten() before it", "1:9"),
        fails("lwta layer units 0", "let m = sequential([flatten(), lwta(#{ units: 0 }), linear(10)]);", "layer 1 (lwta): units_per_block", "1:9"),
        fails("batch_norm eps 0", "let m = sequential([flatten(), batch_norm(#{ eps: 0.0 }), linear(10)]);", "layer 1 (batch_norm): eps must be a positive number (got 0)", "1:9"),
        fails("batch_norm momentum 2", "let m = sequential([flatten(), batch_norm(#{ momentum: 2.0 }), linear(10)]);", "momentum must be in [0, 1] (got 2)", "1:9"),
        fails("residual empty body", "let m = sequential([residual([]), flatten(), linear(10)]);", "the body of a residual block needs at least one layer", "1:9"),
        fails("residual shapes disagree", "let m = sequential([residual([conv2d(#{ out: 4, kernel: 3 })]), flatten(), linear(10)]);", "the body gives 4×26×26 but the shortcut gives 1×28×28", "1:9"),
        fails("preact_block out 0", "let m = sequential([preact_block(#{ out: 0 }), flatten(), linear(10)]);", "layer 0 (preact_block): out and stride must be at least 1 (got 0, 1)", "1:9"),
        fails("sequential of numbers", "let m = sequential([1, 2, 3]);", "element 0 is i64, not a layer", "1:9"),
        fails("sequential huge linear refused before allocating", "let m = sequential([flatten(), linear(4000000000), linear(10)]);", "layer 1 (linear): a 4000000000×784 weight", "1:9"),
        fails("residual blocks nested too deep", "let l = relu();\nfor i in 0..200 { l = residual([l]); }\nlet m = sequential([l, flatten(), linear(10)]);", "residual blocks are nested 200 deep, more than the 64 levels", "3:9"),
        prints("residual blocks nested 64 deep build", "let l = relu();\nfor i in 0..64 { l = residual([l]); }\nprint(sequential([l, flatten(), linear(10)]).param_count());", "7850"),
        fails("denoising_autoencoder huge layer refused", "let t = denoising_autoencoder(#{ hidden: [1000000000000] });", "weight of 784000000000000 values is too large", "1:9"),
        fails("conv_autoencoder huge channels refused", "let t = conv_autoencoder(#{ channels: [1000000000] });", "layer 0 (conv2d): a 1000000000×1×3×3 weight of 9000000000 values is too large", "1:9"),
        fails("model too small for the images", small("let mm = mlp([100, 10]);\nprint(mm.accuracy(d.test));"), "mlp([100, 10]) takes 100 input features per sample, but the images are 1×28×28 = 784", "4:10"),
        fails("cnn for other images", small("let mm = cnn(#{ input: [3, 32, 32] });\nprint(mm.accuracy(d.test));"), "takes 3×32×32 images, but the images are 1×28×28", "4:10"),
        fails("fit a model of fewer classes", small("let mm = mlp([784, 5]);\nmm.fit(d.train);"), "fit: the data set has 10 classes but mlp([784, 5]) has only 5 outputs", "4:4"),
    ]
}

/// Data in a script: sizes, classes, tensors and data sets.
fn data_cases() -> Vec<Case> {
    vec![
        fails("synthetic no training samples", "let d = synthetic(#{ train: 0, test: 10 });", "the synthetic data set needs train >= 1 and test >= 1 samples (got train 0, test 10)", "1:9"),
        fails("synthetic negative size", "let d = synthetic(#{ train: -1 });", "synthetic: option `train` must be >= 0, got -1", "1:9"),
        fails("synthetic float size", "let d = synthetic(#{ train: 1.5 });", "option `train` must be an integer, got f64", "1:9"),
        fails("synthetic negative seed", "let d = synthetic(#{ train: 10, test: 10, seed: -3 });", "option `seed` must be >= 0, got -3", "1:9"),
        fails("synthetic huge refused before allocating", "let d = synthetic(#{ train: 100000000000, test: 10 });", "each split may have at most 5478274 samples", "1:9"),
        fails("synthetic of i64::MAX samples refused", "let d = synthetic(#{ train: 9223372036854775807, test: 9223372036854775807 });", "is too large", "1:9"),
        fails("zeros huge refused before allocating", "let t = zeros([100000, 100000, 100000]);", "has more than 4294967296 elements", "1:9"),
        fails("zeros negative size", "let t = zeros([-1, 3]);", "shape [-1, 3]: -1 is only allowed in reshape", "1:9"),
        fails("ones just over the limit", "let t = ones([4294967297]);", "has more than 4294967296 elements", "1:9"),
        fails("rand_uniform lo above hi", "let t = rand_uniform([2, 2], 1.0, 0.0, 1);", "rand_uniform: needs finite lo <= hi whose difference fits a 32-bit float (±3.4e38), got 1e0 and 0e0", "1:9"),
        fails("rand_uniform NaN bound", "let t = rand_uniform([2, 2], 0.0 / 0.0, 1.0, 1);", "got NaN and 1e0", "1:9"),
        fails("tensor ragged", "let t = tensor([[1, 2], [3]]);", "tensor: the arrays are ragged", "1:9"),
        fails("tensor of strings", "let t = tensor([1, \"a\"]);", "tensor: expected numbers or arrays, got string", "1:9"),
        fails("tensor dtype unknown", "let t = tensor([1, 2], \"complex\");", "dtype must be \"f32\" or \"u32\", got \"complex\"", "1:9"),
        fails("u32 tensor of fractions", "let t = tensor([1.5, 2.0], \"u32\");", "every value must be a whole number from 0 to 16777216", "1:9"),
        fails("u32 tensor of negatives", "let t = tensor([-1, 2], \"u32\");", "every value must be a whole number from 0 to 16777216", "1:9"),
        fails("reshape to another count", "let t = zeros([2, 3]).reshape([7]);", "cannot reshape a tensor of shape [2, 3] (6 elements) into [7]", "1:23"),
        fails("reshape two holes", "let t = zeros([2, 3]).reshape([-1, -1]);", "with at most one -1", "1:23"),
        fails("reshape huge refused", "let t = zeros([2, 3]).reshape([100000, 100000, 100000]);", "has more than 4294967296 elements", "1:23"),
        fails("transpose beyond rank", "let t = zeros([2, 3]).transpose(0, 5);", "dim 5 is out of range for a tensor of shape [2, 3]", "1:23"),
        fails("sum beyond rank", "let t = zeros([2, 3]).sum(9);", "dim 9 is out of range", "1:23"),
        fails("narrow beyond the end", "let t = zeros([2, 3]).narrow(1, 2, 5);", "narrow: 2..7 is outside dimension 1 of size 3", "1:23"),
        fails("index beyond the end", "let t = zeros([2, 3])[5];", "index 5 is out of range for a tensor of shape [2, 3]", "1:22"),
        fails("negative index beyond the start", "let t = zeros([2, 3])[-9];", "index -9 is out of range", "1:22"),
        fails("index_select beyond the end", "let t = zeros([2, 3]).index_select([0, 7], 0);", "index_select: index 7 is out of range for a dimension of size 2", "1:23"),
        fails("index_select with float indices", "let t = zeros([2, 3]).index_select(tensor([0.5, 1.0]), 0);", "indices must be an integer tensor", "1:23"),
        fails("gather with float indices", "let t = zeros([2, 3]).gather(tensor([0.0, 1.0]), 1);", "gather: indices must be an integer tensor", "1:23"),
        fails("one_hot of 0 classes", "let t = tensor([0, 3], \"u32\").one_hot(0);", "at least one class", "1:31"),
        fails("one_hot label beyond classes", "let t = tensor([0, 3], \"u32\").one_hot(2);", "index 3 is out of range for a dimension of size 2", "1:31"),
        fails("one_hot of floats", "let t = tensor([0.0, 1.0]).one_hot(3);", "one_hot: indices must be an integer tensor", "1:28"),
        fails("shapes that do not broadcast", "let t = zeros([2, 3]) + zeros([4, 5]);", "shapes [2, 3] and [4, 5] do not broadcast", "1:23"),
        fails("cat of nothing", "let t = cat([], 0);", "cat: needs at least one tensor", "1:9"),
        fails("cat of other shapes", "let t = cat([zeros([2, 3]), zeros([2, 4])], 0);", "tensor 1 has shape [2, 4], tensor 0 has [2, 3]", "1:9"),
        fails("stack with a number", "let t = stack([zeros([2, 3]), 5], 0);", "stack: element 1 is i64, not a Tensor", "1:9"),
        fails("item of an empty tensor", "let t = zeros([0, 3]).item();", "item: the tensor has shape [0, 3], not one element", "1:23"),
        fails("norm of negative order", "let t = zeros([2, 3]).norm(-1.0, 1);", "norm order p must be 0, > 0 or infinity, got -1", "1:23"),
        fails("norm of NaN order", "let t = zeros([2, 3]).norm(0.0 / 0.0, 1);", "got NaN", "1:23"),
        fails("sample_norm unknown", "let t = zeros([2, 3]).sample_norm(\"l5\");", "unknown norm \"l5\"", "1:23"),
        fails("max of an empty tensor", "let t = zeros([0]).max();", "the tensor is empty", "1:20"),
        fails("where_ with a float mask", "let t = where_(zeros([2]), zeros([3]), 1.0);", "where_: the mask must be a comparison result (u8)", "1:9"),
        fails("dataset label beyond classes", "let d = dataset(zeros([2, 1, 2, 2]), tensor([0, 5], \"u32\"), 3);", "dataset: a label is outside 0..=2", "1:9"),
        fails("dataset of zero classes", "let d = dataset(zeros([2, 1, 2, 2]), tensor([0, 1], \"u32\"), 0);", "dataset: classes must be >= 1, got 0", "1:9"),
        fails("dataset of negative classes", "let d = dataset(zeros([2, 1, 2, 2]), tensor([0, 1], \"u32\"), -2);", "classes must be >= 1, got -2", "1:9"),
        fails("dataset of huge classes", "let d = dataset(zeros([2, 1, 2, 2]), tensor([0, 1], \"u32\"), 9223372036854775807);", "9223372036854775807 classes is more than the 65536 a data set may have", "1:9"),
        fails("dataset of 3-d images", "let d = dataset(zeros([2, 2, 2]), tensor([0, 1], \"u32\"), 2);", "images must be (N, C, H, W), got shape [2, 2, 2]", "1:9"),
        fails("dataset label count", "let d = dataset(zeros([2, 1, 2, 2]), tensor([0, 1, 1], \"u32\"), 2);", "2 images but labels of shape [3]", "1:9"),
        fails("dataset pixels above 1", "let d = dataset(full([2, 1, 2, 2], 2.0), tensor([0, 1], \"u32\"), 2);", "images must be in [0, 1], got values from 2 to 2", "1:9"),
        fails("dataset NaN pixels", "let d = dataset(full([2, 1, 2, 2], 0.0 / 0.0), tensor([0, 1], \"u32\"), 2);", "images must be in [0, 1], got values from NaN", "1:9"),
        fails("dataset float labels", "let d = dataset(zeros([2, 1, 2, 2]), tensor([0.5, 1.0]), 2);", "labels must be an integer tensor (u32), got F32", "1:9"),
        fails("accuracy of an empty data set", "let d = dataset(zeros([0, 1, 2, 2]), tensor([], \"u32\"), 2);\nlet m = mlp([4, 2]);\nprint(m.accuracy(d));", "it has no samples", "3:9"),
        fails("labels beyond the model's classes", "let d = synthetic(#{ train: 20, test: 10, seed: 1 });\nlet m = mlp([784, 5]);\nprint(m.accuracy(d.test));", "has label 9, but", "3:9"),
        fails("take negative", small("print(d.test.take(-1));"), "take: n must be >= 0, got -1", "3:14"),
        fails("subset negative", small("print(d.test.subset([-1]));"), "subset: indices must be >= 0, got -1", "3:14"),
        fails("subset beyond the end", small("print(d.test.subset([0, 25]));"), "index 25 is out of range for a data set of 10 samples", "3:14"),
        fails("concat of other images", small("print(d.test.concat(dataset(zeros([2, 3, 4, 4]), tensor([0, 1], \"u32\"), 10)));"), "concat: images of shape (1, 28, 28) and (3, 4, 4) cannot be joined", "3:14"),
        fails("add a perturbation of the wrong shape", small("print(d.test.add(zeros([2, 2])));"), "a universal perturbation must be one image", "3:14"),
        prints("take beyond the end takes all", small("print(d.test.take(1000000000000).len());"), "10"),
        prints("skip beyond the end leaves none", small("print(d.test.skip(1000000000000).len());"), "0"),
        prints("predict on no samples", small("print(m.predict(d.test.take(0)).shape());"), "[0]"),
        prints("a scalar tensor", "print(zeros([]).shape());", "[]"),
        prints("an empty tensor", "print(tensor([]).shape());", "[0]"),
    ]
}

/// Training, recipes, transforms, clustering and reduction options.
fn training_cases() -> Vec<Case> {
    vec![
        fails("fit lr NaN", small("m.fit(d.train, #{ lr: 0.0 / 0.0 });"), "lr (the learning rate) must be a finite number > 0 (got NaN)", "3:3"),
        fails("fit lr negative", small("m.fit(d.train, #{ lr: -0.1 });"), "must be a finite number > 0 (got -0.1)", "3:3"),
        fails("fit lr inf", small("m.fit(d.train, #{ lr: 1.0 / 0.0 });"), "must be a finite number > 0 (got inf)", "3:3"),
        fails("fit epochs 0", small("m.fit(d.train, #{ epochs: 0 });"), "epochs must be at least 1 (got 0)", "3:3"),
        fails("fit epochs negative", small("m.fit(d.train, #{ epochs: -1 });"), "fit: option `epochs` must be >= 0, got -1", "3:3"),
        fails("fit batch_size 0", small("m.fit(d.train, #{ batch_size: 0 });"), "batch_size must be at least 1 (got 0)", "3:3"),
        fails("fit optimizer unknown", small("m.fit(d.train, #{ optimizer: \"lbfgs\" });"), "unknown optimizer \"lbfgs\"", "3:3"),
        fails("fit momentum negative", small("m.fit(d.train, #{ momentum: -1.0, optimizer: \"sgd\" });"), "momentum must be in [0, 1) (got -1)", "3:3"),
        fails("fit momentum NaN", small("m.fit(d.train, #{ momentum: 0.0 / 0.0, optimizer: \"sgd\" });"), "momentum must be in [0, 1) (got NaN)", "3:3"),
        fails("fit weight_decay negative", small("m.fit(d.train, #{ weight_decay: -1.0 });"), "weight_decay must be a finite number >= 0 (got -1)", "3:3"),
        fails("fit schedule unknown", small("m.fit(d.train, #{ lr_schedule: \"exponential\" });"), "unknown lr_schedule \"exponential\"", "3:3"),
        fails("fit milestones decreasing", small("m.fit(d.train, #{ lr_schedule: \"multistep\", milestones: [5, 2] });"), "needs milestones: increasing epochs", "3:3"),
        fails("fit piecewise of other lengths", small("m.fit(d.train, #{ lr_schedule: \"piecewise\", piecewise: #{ epochs: [0], lrs: [] } });"), "two arrays of numbers of the same length", "3:3"),
        fails("fit clip_grad_norm 0", small("m.fit(d.train, #{ clip_grad_norm: 0.0 });"), "clip_grad_norm must be a positive number (got 0)", "3:3"),
        fails("fit eval_every 0", small("m.fit(d.train, #{ eval_every: 0, eval_data: d.test });"), "eval_every must be at least 1 epoch (got 0)", "3:3"),
        fails("fit craft_mode unknown", small("m.fit(d.train, #{ craft_mode: \"sleep\" });"), "unknown craft_mode \"sleep\"", "3:3"),
        fails("fit augment a number", small("m.fit(d.train, #{ augment: 3 });"), "option `augment` must be an augmentation or an array of them", "3:3"),
        fails("fit defence a number", small("m.fit(d.train, #{ defence: 3 });"), "option `defence` must be a Recipe or an array of recipes, got i64", "3:3"),
        fails("fit unknown option", small("m.fit(d.train, #{ epoch: 1 });"), "unknown option `epoch` (did you mean `epochs`?)", "3:19"),
        fails("fit batch norm on one sample", "let d = synthetic(#{ train: 21, test: 10 });\nlet m = sequential([flatten(), linear(8), batch_norm(), relu(), linear(10)]);\nm.fit(d.train, #{ batch_size: 10 });", "holds one sample, which batch norm cannot normalise in training", "3:3"),
        fails("random_crop negative padding", "let a = random_crop(#{ padding: -1 });", "option `padding` must be >= 0, got -1", "1:9"),
        fails("pgd_training eps 0", "let r = pgd_training(#{ eps: 0.0 });", "eps of a training recipe must be in (0, 1], the range of the pixels (got 0)", "1:9"),
        fails("pgd_training eps 2", "let r = pgd_training(#{ eps: 2.0 });", "(got 2)", "1:9"),
        fails("pgd_training eps NaN", "let r = pgd_training(#{ eps: 0.0 / 0.0 });", "(got NaN)", "1:9"),
        fails("trades beta negative", "let r = trades(#{ eps: 0.3, beta: -1.0 });", "beta (the weight of the KL term) must be a finite number >= 0 (got -1)", "1:9"),
        fails("fast_fgsm guard_drop 2", "let r = fast_fgsm_training(#{ eps: 0.3, guard_drop: 2.0 });", "must be in (0, 1] (got 2)", "1:9"),
        fails("mixed_training no attacks", "let r = mixed_training(#{ attacks: [], p: 0.5 });", "attacks must list at least one attack", "1:9"),
        fails("mixed_training p 1.5", "let r = mixed_training(#{ attacks: [fgsm(#{ eps: 0.1 })], p: 1.5 });", "p (the probability of attacking a batch) must be in [0, 1] (got 1.5)", "1:9"),
        fails("mixed_training numbers for attacks", "let r = mixed_training(#{ attacks: [1, 2], p: 0.5 });", "element 0 of the attack list is i64, not an Attack", "1:9"),
        fails("cluster_training k 0", "let r = cluster_training(#{ attack: fgsm(#{ eps: 0.1 }), k: 0 });", "cluster_training: k must be at least 1 (got 0)", "1:9"),
        fails("label_smoothing 1.5", "let r = label_smoothing(#{ amount: 1.5 });", "amount (of label smoothing) must be in [0, 1) (got 1.5)", "1:9"),
        fails("label_smoothing NaN", "let r = label_smoothing(#{ amount: 0.0 / 0.0 });", "(got NaN)", "1:9"),
        fails("gaussian_noise std negative", "let t = gaussian_noise(#{ std: -1.0 });", "std (the noise's standard deviation) must be a finite number >= 0 (got -1)", "1:9"),
        fails("uniform_noise magnitude inf", "let t = uniform_noise(#{ magnitude: 1.0 / 0.0 });", "must be a finite number >= 0 (got inf)", "1:9"),
        fails("bit_depth 0", "let t = bit_depth(#{ bits: 0 });", "bits must be between 1 and 16 (got 0)", "1:9"),
        fails("bit_depth 64", "let t = bit_depth(#{ bits: 64 });", "bits must be between 1 and 16 (got 64)", "1:9"),
        fails("median_smoothing 1000", "let t = median_smoothing(#{ size: 1000 });", "must be between 1 and 15 (got 1000)", "1:9"),
        fails("downsample factor NaN", "let t = downsample(#{ factor: 0.0 / 0.0 });", "factor (the fraction of the side kept) must be in (0, 1]", "1:9"),
        fails("pca_projection variance 1.5", small("let t = pca_projection(#{ data: d.train, variance: 1.5 });"), "variance (the share of the variance kept) must be in (0, 1] (got 1.5)", "3:9"),
        fails("pca_projection components beyond features", small("let t = pca_projection(#{ data: d.train, components: 100000 });"), "components must be between 1 and the number of input features (784), got 100000", "3:9"),
        fails("autoencoder no hidden layers", "let t = denoising_autoencoder(#{ hidden: [] });", "hidden must list at least one layer size", "1:9"),
        fails("autoencoder noise_std negative", small("let t = denoising_autoencoder(#{});\nt.fit(d.train, #{ noise_std: -1.0 });"), "noise_std must be a finite number >= 0 (got -1)", "4:3"),
        fails("defended with a number", small("print(defended(m, [1]));"), "element 0 of the transform list is i64, not a Transform", "3:7"),
        fails("defended with nothing", small("print(defended(m, []));"), "give at least one transform", "3:7"),
        fails("kmeans k 0", "let c = kmeans(#{ k: 0 });", "kmeans: k must be at least 1 (got 0)", "1:9"),
        fails("kmeans k negative", "let c = kmeans(#{ k: -1 });", "option `k` must be >= 0, got -1", "1:9"),
        fails("kmeans without k", "let c = kmeans(#{});", "option `k` is required", "1:9"),
        fails("kmeans n_init 0", "let c = kmeans(#{ k: 3, n_init: 0 });", "n_init and max_iter must be at least 1", "1:9"),
        fails("kmeans tol NaN", "let c = kmeans(#{ k: 3, tol: 0.0 / 0.0 });", "tol must be a finite number >= 0 (got NaN)", "1:9"),
        fails("kmeans k beyond the points", "let c = kmeans(#{ k: 50 }).fit(rand_normal([10, 2], 1));", "k = 50 is larger than the number of points (10)", "1:28"),
        fails("kmeans k of i64::MAX", "let c = kmeans(#{ k: 9223372036854775807 }).fit(rand_normal([10, 2], 1));", "is larger than the number of points (10)", "1:45"),
        fails("kmeans of NaN points", "let c = kmeans(#{ k: 2 }).fit(full([10, 2], 0.0 / 0.0));", "the points contain a non-finite value (NaN) at row 0, column 0", "1:27"),
        fails("kmeans of inf points", "let c = kmeans(#{ k: 2 }).fit(full([10, 2], 1.0 / 0.0));", "non-finite value (inf)", "1:27"),
        fails("kmeans of no points", "let c = kmeans(#{ k: 2 }).fit(zeros([0, 2]));", "larger than the number of points (0)", "1:27"),
        fails("dbscan eps negative", "let c = dbscan(#{ eps: -1.0 });", "eps (the neighbourhood radius) must be a finite number > 0 (got -1)", "1:9"),
        fails("dbscan min_points 0", "let c = dbscan(#{ eps: 0.5, min_points: 0 });", "min_points must be at least 2 (got 0)", "1:9"),
        fails("dbscan of NaN points", "let c = dbscan(#{ eps: 0.5 }).fit(full([10, 2], 0.0 / 0.0));", "non-finite value (NaN)", "1:31"),
        fails("agglomerative linkage unknown", "let c = agglomerative(#{ k: 2, linkage: \"centroid\" });", "unknown linkage \"centroid\"", "1:9"),
        fails("agglomerative k beyond the points", "print(agglomerative(#{ k: 2 }).fit(rand_normal([1, 2], 1)));", "k = 2 is larger than the number of points (1)", "1:32"),
        fails("pca dims 0", "let r = pca(#{ dims: 0 });", "pca: dims must be at least 1", "1:9"),
        fails("pca dims beyond features", "let r = pca(#{ dims: 50 }).fit(rand_normal([10, 4], 1));", "dims must be between 1 and the number of input features (4), got 50", "1:28"),
        fails("pca of NaN points", "let r = pca(#{ dims: 2 }).fit(full([10, 4], 0.0 / 0.0));", "non-finite value (NaN)", "1:27"),
        fails("pca of one point", "print(pca(#{ dims: 1 }).fit(rand_normal([1, 4], 1)));", "pca needs at least 2 points, got 1", "1:25"),
        fails("pca transform of other features", "print(pca(#{ dims: 2 }).fit(rand_normal([10, 4], 1)).transform(rand_normal([3, 5], 2)));", "pca was fitted on 4 features but the input has 5", "1:54"),
        fails("tsne perplexity 0", "let r = tsne(#{ perplexity: 0.0 });", "perplexity must be a finite number > 0 (got 0)", "1:9"),
        fails("tsne dims 3", "let r = tsne(#{ dims: 3 });", "only dims 2 is supported, got 3", "1:9"),
        fails("tsne theta negative", "let r = tsne(#{ theta: -1.0 });", "theta (the Barnes-Hut opening angle) must be in [0, 1] (got -1)", "1:9"),
        fails("tsne too few iterations", "let r = tsne(#{ iterations: 0 });", "t-SNE needs at least 250 iterations", "1:9"),
        fails("tsne perplexity beyond the points", "print(tsne(#{ perplexity: 30.0 }).fit_transform(rand_normal([10, 4], 1)));", "perplexity must be a number in (0, N - 1) for N = 10 points (got 30)", "1:35"),
        fails("silhouette max_points 0", "let c = kmeans(#{ k: 2 }).fit(rand_normal([20, 2], 1));\nprint(silhouette(c, rand_normal([20, 2], 1), #{ max_points: 0 }));", "max_points must be at least 2 (got 0)", "2:7"),
        fails("silhouette of other points", "let c = kmeans(#{ k: 2 }).fit(rand_normal([20, 2], 1));\nprint(silhouette(c, rand_normal([30, 2], 1)));", "30 points for a clustering of 20 points", "2:7"),
        fails("cluster beyond the count", "let c = kmeans(#{ k: 2 }).fit(rand_normal([20, 2], 1));\nprint(c.members(5));", "cluster 5 does not exist: there are 2 clusters (0..1)", "2:9"),
        fails("adjusted_rand of other labels", "let c = kmeans(#{ k: 2 }).fit(rand_normal([20, 2], 1));\nprint(adjusted_rand(c, tensor([0, 1], \"u32\")));", "adjusted_rand: 2 labels for 20 points", "2:7"),
        prints("fit with a batch_size beyond the data", small("print(m.fit(d.train, #{ batch_size: 9223372036854775807 }).loss.len());"), "1"),
        prints("kmeans of one point", "print(kmeans(#{ k: 1 }).fit(rand_normal([1, 2], 1)).n_clusters());", "1"),
        prints("dbscan of a huge radius is one cluster", "print(dbscan(#{ eps: 1e30 }).fit(rand_normal([30, 2], 1)).n_clusters());", "1"),
        prints("dbscan of a tiny radius is all noise", "print(dbscan(#{ eps: 1e-300 }).fit(rand_normal([30, 2], 1)).labels().filter(|l| l == -1).len());", "30"),
    ]
}

/// Charts, outputs, and the script itself: syntax, unknown names, run-time limits.
fn script_cases() -> Vec<Case> {
    vec![
        fails(
            "confidence_histogram bins 0",
            small("print(confidence_histogram(m, d.test, #{ bins: 0 }));"),
            "confidence_histogram: bins must be from 1 to 10000, got 0",
            "3:7",
        ),
        fails(
            "confidence_histogram bins negative",
            small("confidence_histogram(m, d.test, #{ bins: -1 });"),
            "option `bins` must be >= 0, got -1",
            "3:1",
        ),
        fails(
            "image_chart of a matrix",
            "image_chart(zeros([2, 3]), #{});",
            "image_chart: expected images (N, C, H, W) or one image (C, H, W), got shape [2, 3]",
            "1:1",
        ),
        fails(
            "samples_grid of no samples",
            small("samples_grid(d.test, #{ n: 0 });"),
            "samples_grid: nothing to draw (10 samples, n = 0)",
            "3:1",
        ),
        fails(
            "adversarial_grid of other sizes",
            small("adversarial_grid(m, d.test, d.test.take(5), #{});"),
            "the clean and adversarial sets differ (10 vs 5 samples",
            "3:1",
        ),
        fails(
            "inertia_chart k_min above k_max",
            "inertia_chart(rand_normal([20, 2], 1), #{ k_min: 5, k_max: 2 });",
            "need 1 <= k_min <= k_max (got k_min 5, k_max 2)",
            "1:1",
        ),
        fails(
            "inertia_chart k_max beyond the points",
            "inertia_chart(rand_normal([20, 2], 1), #{ k_max: 1000000000000 });",
            "k_max = 1000000000000 is larger than the number of points (20)",
            "1:1",
        ),
        fails(
            "scatter_chart of 3-d points",
            "let c = kmeans(#{ k: 2 }).fit(rand_normal([20, 2], 1));\nscatter_chart(rand_normal([20, 3], 1), c, #{});",
            "scatter_chart: expected (N, 2) points, got shape [20, 3]",
            "2:1",
        ),
        fails(
            "scatter_chart of fewer labels",
            "scatter_chart(rand_normal([3, 2], 1), [0, 1], #{});",
            "scatter_chart: 3 points but 2 labels",
            "1:1",
        ),
        fails(
            "write_csv of numbers",
            "write_csv(\"out/a.csv\", [1, 2]);",
            "write_csv: row 0 is i64, not a map",
            "1:1",
        ),
        fails(
            "write_csv of no rows",
            "write_csv(\"out/a.csv\", []);",
            "write_csv: there are no rows",
            "1:1",
        ),
        fails(
            "line_chart of no rows",
            "line_chart([], #{ x: \"a\", y: \"b\" });",
            "there are no rows",
            "1:1",
        ),
        fails(
            "line_chart of a missing column",
            "line_chart([#{ a: 1 }], #{ x: \"a\", y: \"zz\" });",
            "no column `zz`; columns are: a",
            "1:1",
        ),
        fails(
            "bar_chart of a missing column",
            "bar_chart([#{ a: \"x\", v: 2.0 }], #{ x: \"a\", y: [\"zz\"] });",
            "row 0 has no column `zz`; columns are: a, v",
            "1:1",
        ),
        fails(
            "chart of an unknown format",
            "line_chart([#{ a: 1, b: 2 }], #{ x: \"a\" }).save(\"out/c.gif\");",
            "name the file .png or .svg",
            "1:44",
        ),
        fails(
            "heatmap of no rows",
            "heatmap_chart([], #{});",
            "heatmap_chart: there are no rows",
            "1:1",
        ),
        fails(
            "read_json of no file",
            "print(read_json(\"out/none.json\"));",
            "none.json: No such file or directory",
            "1:7",
        ),
        fails("syntax error", "let a = 1;\nlet b = (2 + ;", "syntax error", "2:14"),
        fails("missing expression", "let x = ;", "syntax error: Unexpected ';'", "1:9"),
        fails(
            "unknown function",
            "let x = 1;\nlet a = fgsmm(#{ eps: 0.1 });",
            "unknown function `fgsmm`",
            "2:9",
        ),
        fails(
            "unknown function with one argument",
            "undefined_thing(1);",
            "unknown function `undefined_thing`",
            "1:1",
        ),
        fails(
            "unknown method",
            small("let x = m.no_such_method();"),
            "unknown method `no_such_method`",
            "3:11",
        ),
        fails(
            "method with too few arguments",
            small("print(m.accuracy());"),
            "`accuracy` takes 1 argument besides its object, this call gives 0",
            "3:9",
        ),
        fails("unknown variable", "print(y);", "Variable not found: y", "1:7"),
        fails(
            "string minus number",
            "let x = \"a\" - 1;",
            "unknown function: -",
            "1:13",
        ),
        fails("integer division by zero", "let x = 1 / 0;", "Division by zero", "1:11"),
        fails(
            "integer overflow",
            "let x = 9223372036854775807 + 1;",
            "Addition overflow",
            "1:29",
        ),
        fails(
            "array index beyond the end",
            "let a = [1, 2];\nprint(a[5]);",
            "Array index 5 out of bounds",
            "2:9",
        ),
        fails(
            "a string that doubles past the limit",
            "let s = \"x\";\nfor i in 0..40 { s += s; }",
            "Length of string too large",
            "2:20",
        ),
        fails(
            "endless recursion",
            "fn f(x) { f(x + 1) }\nf(0);",
            "Stack overflow",
            "2:1",
        ),
        fails("a thrown error", "throw \"custom failure\";", "custom failure", "1:1"),
    ]
}

/// IDX files of MNIST: bad magic, wrong dimensions, truncated, counts that overflow, images and
/// labels that disagree, gzip and plain.
fn idx_cases() -> Vec<Case> {
    const M: &str = "let s = mnist(\"m\");\nprint(`${s.train.len()} ${s.test.len()}`);";
    let img = "train-images-idx3-ubyte";
    let lab = "train-labels-idx1-ubyte";
    let m_img = "m/train-images-idx3-ubyte.gz";
    let m_lab = "m/train-labels-idx1-ubyte.gz";
    vec![
        prints("idx gzip", M, "6 4").with(mnist(true, vec![])),
        prints("idx plain", M, "6 4").with(mnist(false, vec![])),
        prints("idx of no images", M, "0 4").with(mnist(
            true,
            vec![(img, Some(idx(&[0, 4, 4], &[]))), (lab, Some(idx(&[0], &[])))],
        )),
        fails(
            "idx bad magic",
            M,
            format!("{m_img}: not a valid IDX file: it does not start with the IDX magic number"),
            "1:9",
        )
        .with(mnist_with(img, [vec![1, 2], idx_images(6)[2..].to_vec()].concat())),
        fails(
            "idx bad magic, plain file",
            M,
            "m/train-images-idx3-ubyte: not a valid IDX file: it does not start with the IDX magic number",
            "1:9",
        )
        .with(mnist(false, vec![(img, Some(b"\x01\x02\x08\x03".to_vec()))])),
        fails(
            "idx element type",
            M,
            "element type 0x0d, expected 0x08 (unsigned bytes)",
            "1:9",
        )
        .with(mnist_with(
            img,
            [vec![0, 0, 0x0d, 3], idx_images(6)[4..].to_vec()].concat(),
        )),
        fails("idx empty", M, format!("{m_img}: not a valid IDX file"), "1:9").with(mnist_with(img, Vec::new())),
        fails(
            "idx three bytes",
            M,
            "it does not start with the IDX magic number",
            "1:9",
        )
        .with(mnist_with(img, vec![0, 0, 8])),
        fails("idx no dimensions", M, "header of 0 dimensions is truncated", "1:9")
            .with(mnist_with(img, vec![0, 0, 8, 0])),
        fails("idx header truncated", M, "header of 3 dimensions is truncated", "1:9")
            .with(mnist_with(img, vec![0, 0, 8, 3, 0, 0, 0, 6, 0])),
        fails(
            "idx data truncated",
            M,
            format!(
                "{m_img}: not a valid IDX file: the header says [6, 4, 4] = 96 bytes of data but the file holds 87"
            ),
            "1:9",
        )
        .with(mnist_with(img, idx_images(6)[..103].to_vec())),
        fails(
            "idx data truncated, plain file",
            M,
            "the header says [6, 4, 4] = 96 bytes of data but the file holds 50",
            "1:9",
        )
        .with(mnist(false, vec![(img, Some(idx_images(6)[..66].to_vec()))])),
        fails(
            "idx trailing data",
            M,
            "= 96 bytes of data but the file holds 98",
            "1:9",
        )
        .with(mnist_with(img, [idx_images(6), vec![1, 2]].concat())),
        fails(
            "idx images of 2 dimensions",
            M,
            format!("{m_img}: expected images of 3 dimensions (N, H, W), the header says [6, 16]"),
            "1:9",
        )
        .with(mnist_with(img, idx(&[6, 16], &[0; 96]))),
        fails("idx images of 4 dimensions", M, "the header says [6, 1, 4, 4]", "1:9")
            .with(mnist_with(img, idx(&[6, 1, 4, 4], &[0; 96]))),
        fails(
            "idx of 255 dimensions",
            M,
            "expected images of 3 dimensions (N, H, W), the header says [1, 1, 1",
            "1:9",
        )
        .with(mnist_with(img, idx(&[1; 255], &[0]))),
        fails(
            "idx counts beyond the file",
            M,
            "the header says [4294967295, 4294967295, 4294967295] = over 2^64 bytes of data but the file holds 0",
            "1:9",
        )
        .with(mnist_with(img, idx(&[u32::MAX; 3], &[]))),
        fails(
            "idx counts whose product wraps to the file size",
            M,
            "the header says [2147483648, 2147483648, 4] = over 2^64 bytes of data but the file holds 0",
            "1:9",
        )
        .with(mnist_with(img, idx(&[1 << 31, 1 << 31, 4], &[]))),
        fails(
            "idx images of zero height",
            M,
            format!("{m_img}: the header says images of 0×4 pixels"),
            "1:9",
        )
        .with(mnist_with(img, idx(&[6, 0, 4], &[]))),
        fails(
            "idx fewer labels than images",
            M,
            format!("{m_img} holds 6 images but {m_lab} holds labels of shape [5]"),
            "1:9",
        )
        .with(mnist_with(lab, idx_labels(5))),
        fails("idx labels of 2 dimensions", M, "holds labels of shape [6, 1]", "1:9")
            .with(mnist_with(lab, idx(&[6, 1], &[0; 6]))),
        fails(
            "idx label 10",
            M,
            format!("{m_lab}: label 10 is out of range (MNIST-like data sets have classes 0..9)"),
            "1:9",
        )
        .with(mnist_with(lab, idx(&[6], &[0, 1, 2, 3, 4, 10]))),
        fails(
            "idx label 255 in the test split",
            M,
            "m/t10k-labels-idx1-ubyte.gz: label 255 is out of range",
            "1:9",
        )
        .with(mnist_with("t10k-labels-idx1-ubyte", idx(&[4], &[255, 1, 2, 3]))),
        fails("idx corrupt gzip", M, format!("{m_img}: corrupt gzip data"), "1:9")
            .with(mnist_with(img, b"\x1f\x8b\x08\x00garbage".to_vec())),
        fails("idx truncated gzip", M, format!("{m_img}: corrupt gzip data"), "1:9")
            .with(mnist_with(img, gz(&idx_images(6))[..20].to_vec())),
        fails(
            "idx gzip of gzip",
            M,
            "it does not start with the IDX magic number",
            "1:9",
        )
        .with(mnist_with(img, gz(&gz(&idx_images(6))))),
        fails("idx random bytes", M, format!("{m_img}: not a valid IDX file"), "1:9")
            .with(mnist_with(img, noise_bytes(300, 1))),
        fails(
            "idx random bytes, plain file",
            M,
            "m/train-images-idx3-ubyte: not a valid IDX file",
            "1:9",
        )
        .with(mnist(
            false,
            vec![(img, Some([vec![0, 0], noise_bytes(300, 2)].concat()))],
        )),
        fails(
            "idx file missing",
            M,
            "m: missing t10k-labels-idx1-ubyte.gz (or t10k-labels-idx1-ubyte)",
            "1:9",
        )
        .with(mnist(true, vec![("t10k-labels-idx1-ubyte", None)])),
        fails("idx folder missing", M, "mnist data: directory m does not exist", "1:9"),
        fails("idx folder is a file", M, "directory m does not exist", "1:9").with(file("m", b"x".to_vec())),
        fails(
            "fashion_mnist label 12",
            "let s = fashion_mnist(\"m\");",
            format!("{m_lab}: label 12 is out of range"),
            "1:9",
        )
        .with(mnist_with(lab, idx(&[6], &[0, 1, 2, 3, 4, 12]))),
    ]
}

/// CIFAR-10 binary batches: truncated, empty, CIFAR-100's records, labels above 9.
fn cifar_cases() -> Vec<Case> {
    const C: &str = "let s = cifar10(\"c\");\nprint(`${s.train.len()} ${s.test.len()}`);";
    vec![
        prints("cifar batches", C, "10 2").with(cifar(vec![])),
        prints("cifar in the archive's folder", C, "10 2").with(cifar(vec![]).into_iter().map(|(p, b)| (p.replace("c/", "c/cifar-10-batches-bin/"), b)).collect()),
        prints("cifar reads only the batches it needs", "let s = cifar10(#{ path: \"c\", train: 2, test: 1 });\nprint(`${s.train.len()} ${s.test.len()}`);", "2 1").with(cifar(vec![("data_batch_5.bin", Some(b"junk".to_vec()))])),
        prints("cifar limits of 0", "let s = cifar10(#{ path: \"c\", train: 0, test: 0 });\nprint(`${s.train.len()} ${s.test.len()}`);", "0 0").with(cifar(vec![])),
        prints("cifar limits beyond the files", "let s = cifar10(#{ path: \"c\", train: 1000000000000, test: 1000000000000 });\nprint(`${s.train.len()} ${s.test.len()}`);", "10 2").with(cifar(vec![])),
        fails("cifar truncated", C, "c/data_batch_2.bin: not a CIFAR-10 binary batch: 6246 bytes is not a whole number of 3073-byte records", "1:9").with(cifar(vec![("data_batch_2.bin", Some([record(1), record(1), record(1)[..100].to_vec()].concat()))])),
        fails("cifar empty batch", C, "c/data_batch_1.bin: not a CIFAR-10 binary batch: the file is empty", "1:9").with(cifar(vec![("data_batch_1.bin", Some(Vec::new()))])),
        fails("cifar label 10", C, "c/data_batch_3.bin: not a CIFAR-10 binary batch: record 1 has label 10 (CIFAR-10 has classes 0..9)", "1:9").with(cifar(vec![("data_batch_3.bin", Some([record(1), record(10)].concat()))])),
        fails("cifar label 255 in the test batch", C, "c/test_batch.bin: not a CIFAR-10 binary batch: record 0 has label 255", "1:9").with(cifar(vec![("test_batch.bin", Some(record(255)))])),
        fails("cifar-100 records", C, "its size fits CIFAR-100's 3074-byte records", "1:9").with(cifar(vec![("data_batch_1.bin", Some(vec![1; 3074 * 2]))])),
        fails("cifar random bytes", C, "c/data_batch_4.bin: not a CIFAR-10 binary batch", "1:9").with(cifar(vec![("data_batch_4.bin", Some(noise_bytes(5000, 3)))])),
        fails("cifar batch missing", C, "c: missing data_batch_4.bin; a CIFAR-10 folder needs", "1:9").with(cifar(vec![("data_batch_4.bin", None)])),
        fails("cifar folder missing", C, "cifar10 data: directory c does not exist", "1:9"),
        fails("cifar negative limit", "let s = cifar10(#{ path: \"c\", train: -1 });", "cifar10: option `train` must be >= 0, got -1", "1:9").with(cifar(vec![])),
    ]
}

/// Safetensors checkpoints: not safetensors at all, broken headers, tensors that disagree with
/// the architecture, and hostile `advlab.arch` records.
fn checkpoint_cases() -> Vec<Case> {
    const L: &str = "let m = load_model(\"m.safetensors\");\nprint(m.arch);";
    let ck = "checkpoint m.safetensors: ";
    let rec = "checkpoint m.safetensors: bad architecture record (";
    let weight = ("1.weight", "F32", vec![3, 4], f32s(&[0.0; 12]));
    let bias = ("1.bias", "F32", vec![3], f32s(&[0.0; 3]));
    vec![
        prints("checkpoint of mlp", L, "mlp([4, 3])").with(checkpoint(MLP43)),
        prints("checkpoint of integer weights (cast as PyTorch's load_state_dict does)", L, "mlp([4, 3])").with(checkpoint_of(&[("1.weight", "I64", vec![3, 4], vec![0; 96]), bias.clone()])),
        fails("checkpoint random bytes", L, format!("{ck}not a safetensors file"), "1:9").with(file("m.safetensors", noise_bytes(500, 4))),
        fails("checkpoint empty", L, format!("{ck}not a safetensors file (header too small)"), "1:9").with(file("m.safetensors", Vec::new())),
        fails("checkpoint header length truncated", L, "header too small", "1:9").with(file("m.safetensors", vec![5, 0, 0])),
        fails("checkpoint header length huge", L, format!("{ck}not a safetensors file (header too large)"), "1:9").with(file("m.safetensors", [(1u64 << 63).to_le_bytes().to_vec(), b"{}".to_vec()].concat())),
        fails("checkpoint header length past the end", L, "invalid header length", "1:9").with(file("m.safetensors", [1000u64.to_le_bytes().to_vec(), b"{}".to_vec()].concat())),
        fails("checkpoint header not JSON", L, "invalid JSON in header", "1:9").with(file("m.safetensors", st_raw("not json at all", &[]))),
        fails("checkpoint header an array", L, "invalid JSON in header: invalid type: sequence", "1:9").with(file("m.safetensors", st_raw("[1, 2, 3]", &[]))),
        fails("checkpoint header a string", L, "invalid JSON in header: invalid type: string", "1:9").with(file("m.safetensors", st_raw("\"hello\"", &[]))),
        fails("checkpoint without metadata", L, format!("{ck}no \"advlab.arch\" metadata: it was not saved by advlab"), "1:9").with(file("m.safetensors", st(&mlp43(), &[]))),
        fails("checkpoint of other metadata", L, format!("{ck}no \"advlab.arch\" metadata"), "1:9").with(file("m.safetensors", st(&mlp43(), &[("format", "pt")]))),
        fails("checkpoint metadata not strings", L, "invalid JSON in header", "1:9").with(file("m.safetensors", st_raw(r#"{"__metadata__":{"advlab.arch":{"kind":"mlp"}}}"#, &[]))),
        fails("checkpoint dtype unknown", L, "unknown variant `STRING`", "1:9").with(checkpoint_of(&[("1.weight", "STRING", vec![3, 4], f32s(&[0.0; 12])), bias.clone()])),
        fails("checkpoint dtype bool", L, format!("{ck}cannot read tensors (unsupported safetensor dtype BOOL)"), "1:9").with(checkpoint_of(&[("1.weight", "BOOL", vec![3, 4], vec![0; 12]), bias.clone()])),
        fails("checkpoint shape and data length disagree", L, format!("{ck}not a safetensors file (invalid shape, data type, or offset for tensor)"), "1:9").with(checkpoint_of(&[("1.weight", "F32", vec![3, 4], f32s(&[0.0; 10])), bias.clone()])),
        fails("checkpoint shape overflows", L, "overflow computing buffer size", "1:9").with(file("m.safetensors", st_raw(&format!(r#"{{"1.weight":{{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,48]}},"__metadata__":{{"advlab.arch":{:?}}}}}"#, MLP43), &[0; 48]))),
        fails("checkpoint offsets overlap", L, "invalid offset for tensor", "1:9").with(file("m.safetensors", st_raw(r#"{"1.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]},"1.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#, &[0; 48]))),
        fails("checkpoint offsets past the end", L, "not a safetensors file", "1:9").with(file("m.safetensors", st_raw(r#"{"1.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,1000000000000]}}"#, &[0; 12]))),
        fails("checkpoint tensor missing", L, format!("{ck}missing parameter 1.bias for mlp([4, 3])"), "1:9").with(checkpoint_of(&[weight])),
        fails("checkpoint tensor of the wrong shape", L, format!("{ck}parameter 1.weight of mlp([4, 3]) must have shape [3, 4], got [4, 3]"), "1:9").with(checkpoint_of(&[("1.weight", "F32", vec![4, 3], f32s(&[0.0; 12])), bias.clone()])),
        fails("arch not JSON", L, format!("{rec}key must be a string"), "1:9").with(checkpoint("{not json")),
        fails("arch an array", L, rec, "1:9").with(checkpoint("[1, 2]")),
        fails("arch null", L, format!("{rec}invalid type: null"), "1:9").with(checkpoint("null")),
        fails("arch without kind", L, format!("{rec}missing field `kind`"), "1:9").with(checkpoint(r#"{"layers":[4,3]}"#)),
        fails("arch with a misspelt field", L, format!("{rec}unknown field `noise_injections`"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[4,3],"noise_injections":"input"}"#)),
        fails("arch of an unknown kind", L, format!("{rec}unknown variant `transformer`"), "1:9").with(checkpoint(r#"{"kind":"transformer","layers":[4,3]}"#)),
        fails("arch nested garbage", L, rec, "1:9").with(checkpoint(r#"{"kind":{"kind":{"kind":[null,{"x":[[[]]]}]}}}"#)),
        fails("arch deeply nested arrays", L, rec, "1:9").with(checkpoint(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)))),
        fails("arch mlp zero width", L, format!("{rec}every layer size must be at least 1 (got [4, 0, 3]))"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[4,0,3]}"#)),
        fails("arch mlp one size", L, format!("{rec}an mlp needs at least an input and an output size"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[4]}"#)),
        fails("arch mlp empty", L, format!("{rec}an mlp needs at least an input and an output size"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[]}"#)),
        fails("arch mlp negative width", L, format!("{rec}invalid value: integer `-1`, expected usize"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[4,-1,3]}"#)),
        fails("arch mlp float width", L, format!("{rec}invalid type: floating point `2.5`, expected usize"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[4,2.5,3]}"#)),
        fails("arch mlp layers a string", L, format!("{rec}invalid type: string \"4,3\", expected a sequence"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":"4,3"}"#)),
        fails("arch mlp one class", L, format!("{rec}classes must be at least 2 (got 1))"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[4,1]}"#)),
        fails("arch mlp huge width", L, format!("{rec}layer 1 (linear): a 1000000000000000×4 weight of 4000000000000000 values is too large)"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[4,1000000000000000,3]}"#)),
        fails("arch mlp width u64::MAX", L, "weight of over 2^64 values is too large", "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[4,18446744073709551615,3]}"#)),
        fails("arch mlp width beyond u64", L, format!("{rec}number out of range"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[4,1e400,3]}"#)),
        fails("arch mlp noise site unknown", L, format!("{rec}unknown variant `brain`"), "1:9").with(checkpoint(r#"{"kind":"mlp","layers":[4,3],"noise_injection":"brain"}"#)),
        fails("arch cnn zero classes", L, format!("{rec}classes must be at least 2 (got 0))"), "1:9").with(checkpoint(r#"{"kind":"cnn","channels":1,"height":28,"width":28,"classes":0}"#)),
        fails("arch cnn one class", L, format!("{rec}classes must be at least 2 (got 1))"), "1:9").with(checkpoint(r#"{"kind":"cnn","channels":1,"height":28,"width":28,"classes":1}"#)),
        fails("arch cnn zero channels", L, format!("{rec}input must be [channels, height, width], each at least 1 (got [0, 28, 28]))"), "1:9").with(checkpoint(r#"{"kind":"cnn","channels":0,"height":28,"width":28,"classes":10}"#)),
        fails("arch cnn tiny images", L, "the images must be at least 4×4 (got 2×2)", "1:9").with(checkpoint(r#"{"kind":"cnn","channels":1,"height":2,"width":2,"classes":10}"#)),
        fails("arch cnn huge images", L, format!("{rec}an input of 1×1000000000×1000000000 would need 1000000000000000000 values"), "1:9").with(checkpoint(r#"{"kind":"cnn","channels":1,"height":1000000000,"width":1000000000,"classes":10}"#)),
        fails("arch cnn field missing", L, format!("{rec}missing field `width`"), "1:9").with(checkpoint(r#"{"kind":"cnn","channels":1,"height":28,"classes":10}"#)),
        fails("arch resnet empty block list", L, format!("{rec}blocks must list 1 to 4 stages"), "1:9").with(checkpoint(r#"{"kind":"resnet","channels":3,"height":32,"width":32,"classes":10,"base_width":16,"blocks":[]}"#)),
        fails("arch resnet zero width", L, format!("{rec}width (the channels of the first stage) must be at least 1 (got 0))"), "1:9").with(checkpoint(r#"{"kind":"resnet","channels":3,"height":32,"width":32,"classes":10,"base_width":0,"blocks":[1]}"#)),
        fails("arch resnet huge stage", L, format!("{rec}1000000000000 residual blocks in one stage is more than the 1000 advlab builds)"), "1:9").with(checkpoint(r#"{"kind":"resnet","channels":3,"height":32,"width":32,"classes":10,"base_width":16,"blocks":[1000000000000]}"#)),
        fails("arch resnet huge width", L, format!("{rec}the first stage's 3×3 convolution would need over 2^64 values"), "1:9").with(checkpoint(r#"{"kind":"resnet","channels":3,"height":32,"width":32,"classes":10,"base_width":4611686018427387904,"blocks":[1,1,1,1]}"#)),
        fails("arch lwta negative temperature", L, format!("{rec}temperature (of the Gumbel-softmax relaxation) must be a finite number > 0 (got -0.5))"), "1:9").with(checkpoint(r#"{"kind":"lwta_mlp","layers":[4,2,3],"lwta":{"units_per_block":2,"temperature":-0.5,"passes":1}}"#)),
        fails("arch lwta zero temperature", L, "must be a finite number > 0 (got 0))", "1:9").with(checkpoint(r#"{"kind":"lwta_mlp","layers":[4,2,3],"lwta":{"units_per_block":2,"temperature":0,"passes":1}}"#)),
        fails("arch lwta zero units", L, format!("{rec}units_per_block (the units competing in one LWTA block) must be at least 2 (got 0))"), "1:9").with(checkpoint(r#"{"kind":"lwta_mlp","layers":[4,2,3],"lwta":{"units_per_block":0,"temperature":0.5,"passes":1}}"#)),
        fails("arch lwta zero passes", L, format!("{rec}passes must be at least 1 (got 0))"), "1:9").with(checkpoint(r#"{"kind":"lwta_mlp","layers":[4,2,3],"lwta":{"units_per_block":2,"temperature":0.5,"passes":0}}"#)),
        fails("arch lwta huge passes", L, format!("{rec}passes must be at most 1000 (got 1000000000000000))"), "1:9").with(checkpoint(r#"{"kind":"lwta_mlp","layers":[4,2,3],"lwta":{"units_per_block":2,"temperature":0.5,"passes":1000000000000000}}"#)),
        fails("arch lwta_cnn zero units", L, "units_per_block (the units competing in one LWTA block) must be at least 2 (got 0))", "1:9").with(checkpoint(r#"{"kind":"lwta_cnn","channels":1,"height":28,"width":28,"classes":10,"lwta":{"units_per_block":0,"temperature":0.5,"passes":1}}"#)),
        fails("arch lwta ibp negative alpha", L, "ibp_alpha (the concentration of the IBP prior) must be a finite number > 0 (got -1))", "1:9").with(checkpoint(r#"{"kind":"lwta_mlp","layers":[4,2,3],"lwta":{"units_per_block":2,"temperature":0.5,"passes":1,"ibp":{"alpha":-1,"temperature":0.5}}}"#)),
        fails("arch preact_resnet18 zero classes", L, format!("{rec}classes must be at least 2 (got 0))"), "1:9").with(checkpoint(r#"{"kind":"preact_resnet18","classes":0}"#)),
        fails("arch wide_resnet depth", L, format!("{rec}a WideResNet's depth must be 6n + 4"), "1:9").with(checkpoint(r#"{"kind":"wide_resnet","depth":27,"widen":1,"classes":10}"#)),
        fails("arch wide_resnet huge depth", L, format!("{rec}1000000000 residual blocks in one stage is more than the 1000 advlab builds)"), "1:9").with(checkpoint(r#"{"kind":"wide_resnet","depth":6000000004,"widen":1,"classes":10}"#)),
        fails("arch wide_resnet huge widen", L, format!("{rec}the first group's 3×3 convolution would need over 2^64 values"), "1:9").with(checkpoint(r#"{"kind":"wide_resnet","depth":16,"widen":1000000000000,"classes":10}"#)),
        fails("arch wide_resnet drop 1.5", L, "must be in [0, 1) (got 1.5))", "1:9").with(checkpoint(r#"{"kind":"wide_resnet","depth":16,"widen":1,"classes":10,"drop":1.5}"#)),
        fails("arch sequential empty layer list", L, format!("{rec}a sequential network needs at least one layer)"), "1:9").with(checkpoint(r#"{"kind":"sequential","input":[4],"layers":[]}"#)),
        fails("arch sequential unknown layer kind", L, format!("{rec}unknown variant `attention`"), "1:9").with(checkpoint(&seq(r#"{"type":"attention","out":3}"#))),
        fails("arch sequential layer a number", L, format!("{rec}invalid type: integer `3`, expected internally tagged enum Layer"), "1:9").with(checkpoint(&seq("3"))),
        fails("arch sequential zero input", L, format!("{rec}input must be [channels, height, width], each at least 1 (got [0]))"), "1:9").with(checkpoint(r#"{"kind":"sequential","input":[0],"layers":[{"type":"linear","out":3}]}"#)),
        fails("arch sequential input missing", L, format!("{rec}missing field `input`"), "1:9").with(checkpoint(r#"{"kind":"sequential","layers":[{"type":"linear","out":3}]}"#)),
        fails("arch sequential input of two sizes", L, "(got [2, 2]))", "1:9").with(checkpoint(r#"{"kind":"sequential","input":[2,2],"layers":[{"type":"linear","out":3}]}"#)),
        fails("arch sequential linear 0", L, format!("{rec}layer 0 (linear): out must be at least 1)"), "1:9").with(checkpoint(r#"{"kind":"sequential","input":[4],"layers":[{"type":"linear","out":0}]}"#)),
        fails("arch sequential of one class", L, "a classifier must end in a flat output of at least 2 classes, but this one ends in 1 features", "1:9").with(checkpoint(r#"{"kind":"sequential","input":[4],"layers":[{"type":"linear","out":1}]}"#)),
        fails("arch sequential upsample beyond memory", L, "the output of layer 0 (upsample) per sample, 1×4398046511104×4398046511104, would need over 2^64 values", "1:9").with(checkpoint(&seq_image(r#"{"type":"upsample","factor":1099511627776}"#))),
        fails("arch sequential upsample that overflows", L, "layer 0 (upsample): upsampling a 4×4 input by 4611686018427387904 overflows", "1:9").with(checkpoint(&seq_image(r#"{"type":"upsample","factor":4611686018427387904}"#))),
        fails("arch sequential padding that overflows", L, "layer 0 (conv2d): padding 9223372036854775808 is too large", "1:9").with(checkpoint(&seq_image(r#"{"type":"conv2d","out":2,"kernel":3,"padding":9223372036854775808}"#))),
        fails("arch sequential huge kernel", L, "layer 0 (conv2d): a 2×1×4611686018427387904×4611686018427387904 weight of over 2^64 values is too large", "1:9").with(checkpoint(&seq_image(r#"{"type":"conv2d","out":2,"kernel":4611686018427387904,"padding":4611686018427387904}"#))),
        fails("arch sequential dropout 2", L, format!("{rec}layer 0 (dropout): p must be in [0, 1) (got 2))"), "1:9").with(checkpoint(&seq(r#"{"type":"dropout","p":2.0}"#))),
        fails("arch sequential lwta negative temperature", L, "layer 0 (lwta): temperature (of the Gumbel-softmax relaxation) must be a finite number > 0 (got -1))", "1:9").with(checkpoint(&seq(r#"{"type":"lwta","units":2,"temperature":-1.0}"#))),
        fails("arch sequential residual empty body", L, "layer 0 (residual): the body of a residual block needs at least one layer)", "1:9").with(checkpoint(&seq(r#"{"type":"residual","body":[]}"#))),
        fails("arch sequential batch_norm negative eps", L, "layer 0 (batch_norm): eps must be a positive number (got -1))", "1:9").with(checkpoint(&seq(r#"{"type":"batch_norm","eps":-1.0}"#))),
        fails("arch sequential passes 0", L, format!("{rec}passes must be at least 1 (got 0))"), "1:9").with(checkpoint(r#"{"kind":"sequential","input":[4],"layers":[{"type":"linear","out":3}],"passes":0}"#)),
        fails("arch sequential residual blocks nested beyond the parser", L, format!("{rec}recursion limit exceeded"), "1:9").with(checkpoint(&format!(r#"{{"kind":"sequential","input":[4],"layers":[{}{{"type":"relu"}}{},{{"type":"linear","out":3}}]}}"#, r#"{"type":"residual","body":["#.repeat(3000), "]}".repeat(3000)))),
        prints("arch sequential residual blocks nested 60 deep", "let m = load_model(\"m.safetensors\");\nprint(m.param_count());", "15").with(checkpoint(&seq(&format!("{}{{\"type\":\"relu\"}}{}", r#"{"type":"residual","body":["#.repeat(60), "]}".repeat(60))))),
        fails("load_weights of random bytes", "let m = mlp([4, 3]);\nm.load_weights(\"m.safetensors\");", format!("{ck}not a safetensors state_dict"), "2:3").with(file("m.safetensors", noise_bytes(64, 5))),
        fails("load_weights of another network", "let m = mlp([4, 5, 3]);\nm.load_weights(\"m.safetensors\");", format!("{ck}the state_dict does not fit mlp([4, 5, 3]): 1.weight is [3, 4] in the file but [5, 4] in the model"), "2:3").with(checkpoint_of(&mlp43())),
        fails("load_model of no file", L, "cannot read m.safetensors", "1:9"),
        fails("load_tensor of a checkpoint", "print(load_tensor(\"m.safetensors\"));", "m.safetensors: holds 2 tensors and none is named \"tensor\"", "1:7").with(checkpoint_of(&mlp43())),
        fails("load_reducer of no reducer", "print(load_reducer(\"m.safetensors\"));", "m.safetensors: not a reducer saved by advlab (no advlab.reducer metadata)", "1:7").with(checkpoint(MLP43)),
    ]
}

/// Data sets saved by `Dataset.save`, with wrong or hostile metadata and tensors.
fn dataset_file_cases() -> Vec<Case> {
    const L: &str = "let d = load_dataset(\"d.safetensors\");\nprint(`${d.len()} ${d.label_counts()}`);";
    let not = "d.safetensors: not a data set saved by advlab";
    let two = dataset_meta("2");
    vec![
        prints("data set saved", L, "2 [1, 1]").with(saved_dataset(&two, good_images(), good_labels())),
        fails(
            "data set without metadata",
            L,
            format!("{not} (no advlab.dataset metadata)"),
            "1:9",
        )
        .with(file("d.safetensors", st(&[good_images(), good_labels()], &[]))),
        fails(
            "data set class count missing",
            L,
            format!("{not} (no advlab.classes metadata)"),
            "1:9",
        )
        .with(saved_dataset(&[("advlab.dataset", "x")], good_images(), good_labels())),
        fails(
            "data set of 0 classes",
            L,
            "d.safetensors: advlab.classes: the class count must be a whole number from 1 to 65536, got \"0\"",
            "1:9",
        )
        .with(saved_dataset(&dataset_meta("0"), good_images(), good_labels())),
        fails(
            "data set of negative classes",
            L,
            "d.safetensors: advlab.classes: the class count must be a whole number from 1 to 65536, got \"-3\"",
            "1:9",
        )
        .with(saved_dataset(&dataset_meta("-3"), good_images(), good_labels())),
        fails(
            "data set class count not a number",
            L,
            "advlab.classes: the class count must be a whole number from 1 to 65536, got \"ten\"",
            "1:9",
        )
        .with(saved_dataset(&dataset_meta("ten"), good_images(), good_labels())),
        fails(
            "data set of u64::MAX classes",
            L,
            "advlab.classes: the class count must be a whole number from 1 to 65536, got \"18446744073709551615\"",
            "1:9",
        )
        .with(saved_dataset(
            &dataset_meta("18446744073709551615"),
            good_images(),
            good_labels(),
        )),
        fails("data set of 10^12 classes", L, "got \"1000000000000\"", "1:9").with(saved_dataset(
            &dataset_meta("1000000000000"),
            good_images(),
            good_labels(),
        )),
        fails(
            "data set label beyond the classes",
            L,
            "d.safetensors: labels: label 7 is outside the 2 classes (0..=1) that advlab.classes declares",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            good_images(),
            ("labels", "U32", vec![2], u32s(&[0, 7])),
        )),
        fails(
            "data set of 1 class with label 1",
            L,
            "labels: label 1 is outside the 1 classes (0..=0)",
            "1:9",
        )
        .with(saved_dataset(&dataset_meta("1"), good_images(), good_labels())),
        fails(
            "data set negative label",
            L,
            "labels: label -1 is outside the 2 classes",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            good_images(),
            (
                "labels",
                "I64",
                vec![2],
                [-1i64, 1].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        )),
        fails(
            "data set float labels",
            L,
            "d.safetensors: labels: must be integers, got F32",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            good_images(),
            ("labels", "F32", vec![2], f32s(&[0.5, 1.0])),
        )),
        fails(
            "data set labels of 2 dimensions",
            L,
            "labels: must be one per image, shape [2], got shape [2, 1]",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            good_images(),
            ("labels", "U32", vec![2, 1], u32s(&[0, 1])),
        )),
        fails(
            "data set of more labels than images",
            L,
            "labels: must be one per image, shape [2], got shape [3]",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            good_images(),
            ("labels", "U32", vec![3], u32s(&[0, 1, 1])),
        )),
        fails(
            "data set pixels above 1",
            L,
            "d.safetensors: images: pixels must lie in [0, 1], found 2",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            ("images", "F32", vec![2, 1, 2, 2], f32s(&[2.0; 8])),
            good_labels(),
        )),
        fails(
            "data set negative pixels",
            L,
            "images: pixels must lie in [0, 1], found -0.5",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            ("images", "F32", vec![2, 1, 2, 2], f32s(&[-0.5; 8])),
            good_labels(),
        )),
        fails(
            "data set NaN pixels",
            L,
            "images: pixels must lie in [0, 1], found NaN",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            ("images", "F32", vec![2, 1, 2, 2], f32s(&[f32::NAN; 8])),
            good_labels(),
        )),
        fails(
            "data set infinite pixels",
            L,
            "images: pixels must lie in [0, 1], found inf",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            ("images", "F32", vec![2, 1, 2, 2], f32s(&[f32::INFINITY; 8])),
            good_labels(),
        )),
        fails(
            "data set images of 3 dimensions",
            L,
            "d.safetensors: images: must be floats of shape (N, C, H, W)",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            ("images", "F32", vec![2, 2, 2], f32s(&[0.5; 8])),
            good_labels(),
        )),
        fails(
            "data set images of zero height",
            L,
            "got F32 of shape [2, 1, 0, 2]",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            ("images", "F32", vec![2, 1, 0, 2], Vec::new()),
            good_labels(),
        )),
        fails(
            "data set uint8 images",
            L,
            "images: must be floats of shape (N, C, H, W) with C, H and W at least 1, got U8",
            "1:9",
        )
        .with(saved_dataset(
            &two,
            ("images", "U8", vec![2, 1, 2, 2], vec![200; 8]),
            good_labels(),
        )),
        fails("data set without images", L, format!("{not} (no images tensor)"), "1:9")
            .with(file("d.safetensors", st(&[good_labels()], &two))),
        fails("data set without labels", L, format!("{not} (no labels tensor)"), "1:9")
            .with(file("d.safetensors", st(&[good_images()], &two))),
        fails(
            "data set class names not JSON",
            L,
            format!("{not} (bad advlab.class_names"),
            "1:9",
        )
        .with(saved_dataset(
            &[
                ("advlab.dataset", "x"),
                ("advlab.classes", "2"),
                ("advlab.class_names", "[oops"),
            ],
            good_images(),
            good_labels(),
        )),
        fails(
            "data set class names of another count",
            L,
            "d.safetensors: advlab.class_names: 3 names for 2 classes",
            "1:9",
        )
        .with(saved_dataset(
            &[
                ("advlab.dataset", "x"),
                ("advlab.classes", "2"),
                ("advlab.class_names", r#"["a","b","c"]"#),
            ],
            good_images(),
            good_labels(),
        )),
        fails("data set class names not strings", L, "expected a string", "1:9").with(saved_dataset(
            &[
                ("advlab.dataset", "x"),
                ("advlab.classes", "2"),
                ("advlab.class_names", "[1, 2]"),
            ],
            good_images(),
            good_labels(),
        )),
        fails("data set random bytes", L, not, "1:9").with(file("d.safetensors", noise_bytes(64, 6))),
        fails(
            "data set that is a checkpoint",
            L,
            format!("{not} (no advlab.dataset metadata)"),
            "1:9",
        )
        .with(
            checkpoint(MLP43)
                .into_iter()
                .map(|(_, b)| ("d.safetensors".to_string(), b))
                .collect(),
        ),
    ]
}

/// numpy arrays: bad headers, Fortran order, wrong element types, truncated data, bad labels.
fn npy_cases() -> Vec<Case> {
    const P: &str = "let d = npy(\"x.npy\", \"y.npy\");\nprint(`${d.len()} ${d.shape()}`);";
    const Z: &str = "let s = npz(\"a.npz\");\nprint(`${s.train.len()} ${s.test.len()}`);";
    let x = "x.npy (array): ";
    let f32_images = |v: f32| npy("<f4", "(2, 3, 3)", &f32s(&[v; 18]));
    vec![
        prints("npy pair", P, "2 [1, 3, 3]").with(npy_pair(npy_images(), npy_labels())),
        prints("npy trailing bytes are ignored (as numpy's reader does)", P, "2 [1, 3, 3]").with(npy_pair(npy("|u1", "(2, 3, 3)", &[0; 40]), npy_labels())),
        prints("npy bool labels", P, "2 [1, 3, 3]").with(npy_pair(npy_images(), npy("|b1", "(2,)", &[0, 1]))),
        prints("npy of no images", P, "0 [1, 3, 3]").with(npy_pair(npy("|u1", "(0, 3, 3)", &[]), npy("<i8", "(0,)", &[]))),
        fails("npy bad magic", P, format!("{x}not a .npy array (no \\x93NUMPY magic)"), "1:9").with(npy_pair([b"\x93NUMPZ".to_vec(), npy_images()[6..].to_vec()].concat(), npy_labels())),
        fails("npy empty", P, format!("{x}shorter than a .npy header"), "1:9").with(npy_pair(Vec::new(), npy_labels())),
        fails("npy version 9", P, format!("{x}unknown .npy version 9"), "1:9").with(npy_pair([b"\x93NUMPY\x09".to_vec(), npy_images()[7..].to_vec()].concat(), npy_labels())),
        fails("npy header length huge", P, format!("{x}a header of 2147483648 bytes is not a numpy array's"), "1:9").with(npy_pair([b"\x93NUMPY\x02\x00".to_vec(), (1u32 << 31).to_le_bytes().to_vec(), b"{}".to_vec()].concat(), npy_labels())),
        fails("npy header truncated", P, format!("{x}truncated header"), "1:9").with(npy_pair(npy_images()[..20].to_vec(), npy_labels())),
        fails("npy header not a dict", P, format!("{x}no descr in the header"), "1:9").with(npy_pair(npy_text("garbage", &[0; 18]), npy_labels())),
        fails("npy without a shape", P, format!("{x}no shape in the header"), "1:9").with(npy_pair(npy_text("{'descr': '|u1', 'fortran_order': False}", &[0; 18]), npy_labels())),
        fails("npy shape not numbers", P, format!("{x}bad shape (2, x, 3)"), "1:9").with(npy_pair(npy("|u1", "(2, x, 3)", &[0; 18]), npy_labels())),
        fails("npy negative shape", P, format!("{x}bad shape (2, -3, 3)"), "1:9").with(npy_pair(npy("|u1", "(2, -3, 3)", &[0; 18]), npy_labels())),
        fails("npy shape that overflows", P, format!("{x}shape (1099511627776, 1099511627776, 1099511627776) is too large"), "1:9").with(npy_pair(npy("<f8", "(1099511627776, 1099511627776, 1099511627776)", &[0; 18]), npy_labels())),
        fails("npy Fortran order", P, format!("{x}Fortran-ordered arrays are not supported: save np.ascontiguousarray(a)"), "1:9").with(npy_pair(npy_text("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3, 3), }", &[0; 18]), npy_labels())),
        fails("npy complex numbers", P, format!("{x}unsupported element type <c8"), "1:9").with(npy_pair(npy("<c8", "(2, 3, 3)", &[0; 144]), npy_labels())),
        fails("npy python objects", P, format!("{x}unsupported element type |O"), "1:9").with(npy_pair(npy("|O", "(2, 3, 3)", &[0; 144]), npy_labels())),
        fails("npy big-endian floats", P, format!("{x}unsupported element type >f4"), "1:9").with(npy_pair(npy(">f4", "(2, 3, 3)", &[0; 72]), npy_labels())),
        fails("npy data truncated", P, format!("{x}its header declares shape [2, 3, 3] (72 bytes) but the file holds 40: truncated"), "1:9").with(npy_pair(npy("<f4", "(2, 3, 3)", &[0; 40]), npy_labels())),
        fails("npy float images above 1", P, "x.npy (images): floating-point images must lie in [0, 1], got values from 3 to 3: divide by 255 first", "1:9").with(npy_pair(f32_images(3.0), npy_labels())),
        fails("npy NaN images", P, "x.npy (images): floating-point images must lie in [0, 1], got values from NaN", "1:9").with(npy_pair(f32_images(f32::NAN), npy_labels())),
        fails("npy images of 2 dimensions", P, "x.npy (images): images must be (N, H, W), (N, C, H, W) or (N, H, W, C), got shape [2, 9]", "1:9").with(npy_pair(npy("|u1", "(2, 9)", &[0; 18]), npy_labels())),
        fails("npy images of 5 dimensions", P, "got shape [2, 1, 1, 3, 3]", "1:9").with(npy_pair(npy("|u1", "(2, 1, 1, 3, 3)", &[0; 18]), npy_labels())),
        fails("npy images of zero width", P, "x.npy (images): images of 1×3×0 values: channels, height and width must be at least 1", "1:9").with(npy_pair(npy("|u1", "(2, 3, 0)", &[]), npy_labels())),
        fails("npy float labels", P, "y.npy (labels): labels must be integers, got F32", "1:9").with(npy_pair(npy_images(), npy("<f4", "(2,)", &f32s(&[0.0, 1.0])))),
        fails("npy negative label", P, "y.npy (labels): labels must be 0 or more, got -1", "1:9").with(npy_pair(npy_images(), npy("<i8", "(2,)", &[-1i64, 1].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()))),
        fails("npy huge label", P, "y.npy (labels): label 1099511627776 is too large", "1:9").with(npy_pair(npy_images(), npy("<i8", "(2,)", &[1i64 << 40, 1].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()))),
        fails("npy labels of 2 dimensions", P, "y.npy (labels): labels must be a vector (N,), got shape [2, 1]", "1:9").with(npy_pair(npy_images(), npy("<i8", "(2, 1)", &[0; 16]))),
        fails("npy more labels than images", P, "y.npy (labels): 3 labels for 2 images", "1:9").with(npy_pair(npy_images(), npy("<i8", "(3,)", &[0; 24]))),
        fails("npy uint64 labels", P, "y.npy (array): unsupported element type <u8", "1:9").with(npy_pair(npy_images(), npy("<u8", "(2,)", &[0; 16]))),
        fails("npy labels missing", P, "cannot read y.npy", "1:9").with(file("x.npy", npy_images())),
        prints("npz stored", Z, "2 2").with(npz(keras(vec![]), false)),
        prints("npz deflated", Z, "2 2").with(npz(keras(vec![]), true)),
        fails("npz array missing", Z, "a.npz (y_test): no array named y_test; a .npz data set holds x_train, y_train, x_test and y_test (np.savez(path, x_train=…, …)), this one holds [\"x_test\", \"x_train\", \"y_train\"]", "1:9").with(npz(keras(vec![("y_test", None)]), false)),
        fails("npz random bytes", Z, "a.npz (archive): not a .npz (zip) archive", "1:9").with(file("a.npz", noise_bytes(200, 7))),
        fails("npz truncated", Z, "a.npz (archive): not a .npz (zip) archive", "1:9").with(npz(keras(vec![]), false).into_iter().map(|(p, b)| (p, b[..150].to_vec())).collect()),
        fails("npz that is a .npy", Z, "not a .npz (zip) archive", "1:9").with(file("a.npz", npy_images())),
        fails("npz entry header truncated", Z, "a.npz (x_test.npy): truncated header", "1:9").with(npz(keras(vec![("x_test", Some(b"\x93NUMPY\x01\x00\xff\xff".to_vec()))]), false)),
        fails("npz entry Fortran order", Z, "a.npz (x_train.npy): Fortran-ordered arrays are not supported", "1:9").with(npz(keras(vec![("x_train", Some(npy_text("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3, 3), }", &[0; 18])))]), true)),
        fails("npz entry truncated", Z, "a.npz (x_train.npy): its header declares shape [2, 3, 3] (72 bytes) but the entry holds 10", "1:9").with(npz(keras(vec![("x_train", Some(npy("<f4", "(2, 3, 3)", &[0; 10])))]), false)),
        fails("npz labels of another count", Z, "a.npz (y_train): 3 labels for 2 images", "1:9").with(npz(keras(vec![("y_train", Some(npy("<i8", "(3,)", &[0; 24])))]), false)),
    ]
}

/// Image folders: files that are not images, truncated images, images that claim to be huge,
/// empty classes, bad sizes and splits.
fn folder_cases() -> Vec<Case> {
    const F: &str = "let s = image_folder(\"img\", #{ split: 0.34 });\nprint(`${s.train.len()} ${s.test.len()} ${s.train.shape()}`);";
    vec![
        prints("folder of PNGs", F, "4 2 [1, 4, 4]").with(folder(vec![])),
        prints("folder image of another size is resized", F, "5 2 [1, 4, 4]")
            .with(folder(vec![("a/z.png", png(8, 6, 3))])),
        prints("folder colour image is made grey", F, "5 2 [1, 4, 4]").with(folder(vec![("a/z.png", rgb_png(4, 4))])),
        prints("folder of stray non-image files", F, "4 2 [1, 4, 4]")
            .with(folder(vec![("a/notes.txt", b"not an image".to_vec())])),
        prints(
            "folder split 0",
            "let s = image_folder(\"img\", #{ split: 0.0 });\nprint(`${s.train.len()} ${s.test.len()}`);",
            "6 0",
        )
        .with(folder(vec![])),
        fails(
            "folder text named .png",
            F,
            "img/a/bad.png: cannot decode the image",
            "1:9",
        )
        .with(folder(vec![("a/bad.png", b"hello, not an image".to_vec())])),
        fails("folder truncated PNG", F, "img/b/1.png: cannot decode the image", "1:9")
            .with(folder(vec![("b/1.png", png(4, 4, 1)[..30].to_vec())])),
        fails("folder empty PNG", F, "img/b/2.png: cannot decode the image", "1:9")
            .with(folder(vec![("b/2.png", Vec::new())])),
        fails("folder garbage JPEG", F, "img/a/x.jpg: cannot decode the image", "1:9")
            .with(folder(vec![("a/x.jpg", b"\xff\xd8\xff\xe0garbage".to_vec())])),
        fails("folder garbage BMP", F, "img/a/x.bmp: cannot decode the image", "1:9")
            .with(folder(vec![("a/x.bmp", [b"BM".to_vec(), vec![0; 10]].concat())])),
        fails(
            "folder PNG of random bytes",
            F,
            "img/a/r.png: cannot decode the image",
            "1:9",
        )
        .with(folder(vec![(
            "a/r.png",
            [png(4, 4, 1)[..8].to_vec(), noise_bytes(200, 8)].concat(),
        )])),
        fails(
            "folder PNG claiming 100000×100000 pixels",
            F,
            "img/a/big.png: cannot decode the image",
            "1:9",
        )
        .with(folder(vec![("a/big.png", png_claiming(100_000, 100_000))])),
        fails(
            "folder class of no images",
            F,
            "img/c: class folder with no images (.png, .jpg, .jpeg, .bmp)",
            "1:9",
        )
        .with(folder(vec![("c/readme.txt", b"x".to_vec())])),
        fails(
            "folder of one class",
            F,
            "img: an image folder needs a folder per class, at least 2, found 1",
            "1:9",
        )
        .with(
            folder(vec![])
                .into_iter()
                .filter(|(p, _)| p.starts_with("img/a/"))
                .collect(),
        ),
        fails("folder of no classes", F, "found 0", "1:9").with(file("img/loose.png", png(4, 4, 1))),
        fails("folder that is a file", F, "image folder not found", "1:9").with(file("img", b"x".to_vec())),
        fails(
            "folder split leaving nothing to train on",
            "let s = image_folder(\"img\", #{ split: 0.99 });",
            "img: split 0.99 of 6 images leaves none to train on",
            "1:9",
        )
        .with(folder(vec![])),
        fails(
            "folder split NaN",
            "let s = image_folder(\"img\", #{ split: 0.0 / 0.0 });",
            "split (the share of an image folder held out for testing) must be in [0, 1) (got NaN)",
            "1:9",
        )
        .with(folder(vec![])),
        fails(
            "folder size 0",
            "let s = image_folder(\"img\", #{ size: [1, 0, 4] });",
            "size must be [C, H, W] with C 1 or 3 and H, W from 1 to 8192 (got [1, 0, 4])",
            "1:9",
        )
        .with(folder(vec![])),
        fails(
            "folder size huge",
            "let s = image_folder(\"img\", #{ size: [1, 100000, 100000] });",
            "(got [1, 100000, 100000])",
            "1:9",
        )
        .with(folder(vec![])),
        fails(
            "folder two channels",
            "let s = image_folder(\"img\", #{ size: [2, 4, 4] });",
            "C 1 or 3",
            "1:9",
        )
        .with(folder(vec![])),
        fails(
            "folder size of two numbers",
            "let s = image_folder(\"img\", #{ size: [4, 4] });",
            "option `size` must be [channels, height, width], got [4, 4]",
            "1:9",
        )
        .with(folder(vec![])),
    ]
}

/// Every case of the corpus.
fn corpus() -> Vec<Case> {
    [
        attack_cases(),
        model_cases(),
        data_cases(),
        training_cases(),
        script_cases(),
        idx_cases(),
        cifar_cases(),
        checkpoint_cases(),
        dataset_file_cases(),
        npy_cases(),
        folder_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

// ---------------------------------------------------------------------------------------------
// The run

/// How a run ended.
struct Outcome {
    /// The exit code; None when a signal ended the process (an abort).
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

/// Write the case's files and script into `dir` and run `advlab run bad.rhai` there under the
/// memory limit.
fn run(case: &Case, dir: &Path) -> Outcome {
    std::fs::create_dir_all(dir).unwrap();
    for (path, bytes) in &case.files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    std::fs::write(dir.join("bad.rhai"), &case.script).unwrap();
    let (out, err) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_LIMIT_KIB} && exec \"$0\" \"$@\""))
        .arg(assert_cmd::cargo::cargo_bin("advlab"))
        .args(["run", "bad.rhai", "--out", "out"])
        .current_dir(dir)
        .env("ADVLAB_OFFLINE", "1")
        .env_remove("ADVLAB_DATA")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status, false);
        }
        if start.elapsed() > CASE_TIMEOUT {
            let _ = child.kill();
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    Outcome {
        code: status.code(),
        stdout: read(&out),
        stderr: read(&err),
        timed_out,
    }
}

/// What is wrong with `outcome` for `case`, if anything.
fn judge(case: &Case, o: &Outcome) -> Option<String> {
    let mut wrong = Vec::new();
    if o.timed_out {
        wrong.push(format!("did not finish in {CASE_TIMEOUT:?}"));
    }
    match o.code {
        None => wrong.push("ended by a signal (an abort or a crash)".into()),
        Some(101) => wrong.push("exit code 101 (an internal error)".into()),
        _ => {}
    }
    for bad in [
        "panicked",
        "internal error",
        "overflowed its stack",
        "memory allocation of",
    ] {
        if o.stderr.contains(bad) {
            wrong.push(format!("stderr says \"{bad}\""));
        }
    }
    match &case.expect {
        Expect::Fails { what, at } => {
            if o.code != Some(1) {
                wrong.push(format!("exit code {:?}, expected 1", o.code));
            }
            if !o.stderr.contains(what.as_str()) {
                wrong.push(format!("stderr lacks {what:?}"));
            }
            if !o.stderr.contains(&format!("bad.rhai:{at}\n")) {
                wrong.push(format!("stderr lacks the position bad.rhai:{at}"));
            }
        }
        Expect::Prints(what) => {
            if o.code != Some(0) {
                wrong.push(format!("exit code {:?}, expected 0", o.code));
            }
            if !o.stdout.contains(what.as_str()) {
                wrong.push(format!("stdout lacks {what:?}"));
            }
        }
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "case \"{}\": {}\n--- script:\n{}\n--- stdout:\n{}\n--- stderr:\n{}",
            case.name,
            wrong.join("; "),
            case.script,
            o.stdout.chars().take(1000).collect::<String>(),
            o.stderr.chars().take(2000).collect::<String>()
        )
    })
}

/// Every input of the corpus ends as its table says, within the memory limit: an error with a
/// clear message (and its script position), or the documented result; never a panic, an abort
/// or an internal error. Cases run a few at a time.
#[test]
fn every_bad_input_ends_in_a_clear_error_or_its_documented_result() {
    let cases = corpus();
    let errors = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Fails { .. }))
        .count();
    assert!(
        cases.len() >= 150,
        "the corpus has {} cases, fewer than 150",
        cases.len()
    );
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "two cases share a name");

    let tmp = tempfile::tempdir().unwrap();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let outcome = run(case, &tmp.path().join(format!("{i:03}")));
                if let Some(why) = judge(case, &outcome) {
                    failures.lock().unwrap().push((i, why));
                }
            });
        }
    });
    eprintln!(
        "bad-input corpus: {} cases ({errors} errors, {} documented results) in {:.1} s",
        cases.len(),
        cases.len() - errors,
        start.elapsed().as_secs_f64()
    );
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.into_iter().map(|(_, w)| w).collect::<Vec<_>>().join("\n\n")
    );
}
