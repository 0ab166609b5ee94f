//! Property tests: the bounded stand-in for fuzzing that CI runs (issue 19). (a) Arbitrary and
//! mutated bytes through the loaders' headers (IDX, CIFAR batches, safetensors checkpoints and
//! data sets with hostile metadata, npy and npz), called in-process; (b) the script API's
//! numeric options (NaN, ±inf, 0, negative, huge, small random values and wrong types) through
//! advlab's own engine. Each input gives an error or a valid result, never a panic. Inputs that
//! once failed are kept as cases of the corpus (tests/it/corpus.rs).

use advlab::data::{load_dataset, load_mnist_like, load_npy, read_cifar_batch, read_idx, read_npy, read_npz, Which};
use advlab::nn::load_model;
use candle_core::{DType, Device, Tensor};
use proptest::collection::vec;
use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `f()`, or the message of its panic.
fn no_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    })
}

/// A fresh folder for one case's files.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// (a) the loaders

/// A dimension of a header: small, zero, or one whose products overflow.
fn dim() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..6, 1 => Just(u32::MAX), 1 => Just(1 << 31), 1 => Just(1 << 16), 1 => any::<u32>()]
}

/// IDX bytes: arbitrary ones, or a header of 1 to 4 dimensions (IDX magic, maybe another
/// element type) before data of any length, with a few bytes flipped.
fn idx_bytes() -> impl Strategy<Value = Vec<u8>> {
    let made = (
        prop_oneof![4 => Just(0x08u8), 1 => any::<u8>()],
        vec(dim(), 0..5),
        vec(any::<u8>(), 0..80),
        vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|(ty, dims, data, flips)| {
            let mut b = vec![0, 0, ty, dims.len() as u8];
            for d in dims {
                b.extend(d.to_be_bytes());
            }
            b.extend(data);
            for (at, v) in flips {
                let i = at.index(b.len());
                b[i] = v;
            }
            b
        });
    prop_oneof![1 => vec(any::<u8>(), 0..64), 4 => made]
}

/// A tensor of a safetensors file: its dtype, shape and bytes (which need not agree).
fn st_tensor() -> impl Strategy<Value = (String, Vec<u64>, Vec<u8>)> {
    (
        prop::sample::select(vec!["F32", "F64", "F16", "U8", "I64", "U32", "BOOL", "STRING"]),
        vec(prop_oneof![3 => 0u64..5, 1 => Just(u64::MAX), 1 => Just(1 << 40)], 0..4),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(|(d, s, b)| (d.to_string(), s, b))
}

/// A safetensors file of `tensors` (name, dtype, shape, bytes) and `meta`, its header as
/// safetensors writes it.
fn safetensors_file(tensors: &[(String, String, Vec<u64>, Vec<u8>)], meta: &serde_json::Value) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend(bytes);
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [start, data.len()] }),
        );
    }
    header.insert("__metadata__".into(), meta.clone());
    let text = serde_json::Value::Object(header).to_string();
    let mut b = (text.len() as u64).to_le_bytes().to_vec();
    b.extend(text.as_bytes());
    b.extend(data);
    b
}

/// A number a hostile record may hold: small, zero, negative, huge, fractional, not finite.
fn json_number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        6 => (0u64..5).prop_map(serde_json::Value::from),
        1 => Just(serde_json::json!(28)),
        1 => Just(serde_json::json!(-1)),
        1 => Just(serde_json::json!(u64::MAX)),
        1 => Just(serde_json::json!(1u64 << 40)),
        1 => Just(serde_json::json!(1u64 << 62)),
        1 => Just(serde_json::json!(0.5)),
        1 => Just(serde_json::json!(-0.5)),
        1 => Just(serde_json::json!(1e300)),
    ]
}

/// Any JSON built from the words of architecture records and hostile numbers, nested a few
/// levels.
fn json_garbage() -> impl Strategy<Value = serde_json::Value> {
    const WORDS: &[&str] = &[
        "kind",
        "mlp",
        "cnn",
        "resnet",
        "lwta_mlp",
        "lwta_cnn",
        "preact_resnet18",
        "wide_resnet",
        "sequential",
        "layers",
        "channels",
        "height",
        "width",
        "classes",
        "base_width",
        "blocks",
        "lwta",
        "units_per_block",
        "temperature",
        "passes",
        "depth",
        "widen",
        "drop",
        "input",
        "type",
        "linear",
        "conv2d",
        "relu",
        "flatten",
        "upsample",
        "residual",
        "body",
        "shortcut",
        "out",
        "kernel",
        "stride",
        "padding",
        "factor",
        "p",
        "batch_norm",
        "eps",
    ];
    let word = prop::sample::select(WORDS.to_vec()).prop_map(serde_json::Value::from);
    let leaf = prop_oneof![2 => json_number(), 2 => word, 1 => Just(serde_json::Value::Null), 1 => any::<bool>().prop_map(serde_json::Value::from)];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            vec((prop::sample::select(WORDS.to_vec()), inner), 0..6).prop_map(|kv| {
                serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// A layer of a sequential record with hostile sizes.
fn json_layer() -> impl Strategy<Value = serde_json::Value> {
    let n = json_number;
    prop_oneof![
        n().prop_map(|o| serde_json::json!({ "type": "linear", "out": o })),
        (n(), n(), n(), n()).prop_map(
            |(o, k, s, p)| serde_json::json!({ "type": "conv2d", "out": o, "kernel": k, "stride": s, "padding": p })
        ),
        Just(serde_json::json!({ "type": "relu" })),
        Just(serde_json::json!({ "type": "flatten" })),
        n().prop_map(|f| serde_json::json!({ "type": "upsample", "factor": f })),
        n().prop_map(|s| serde_json::json!({ "type": "max_pool", "size": s })),
        (n(), n()).prop_map(|(u, t)| serde_json::json!({ "type": "lwta", "units": u, "temperature": t })),
        n().prop_map(|p| serde_json::json!({ "type": "dropout", "p": p })),
        (n(), n()).prop_map(|(e, m)| serde_json::json!({ "type": "batch_norm", "eps": e, "momentum": m })),
        Just(serde_json::json!({ "type": "residual", "body": [{ "type": "relu" }] })),
    ]
}

/// An architecture record of a known kind whose fields hold hostile values.
fn json_record() -> impl Strategy<Value = serde_json::Value> {
    let n = json_number;
    let lwta = || {
        (n(), n(), n()).prop_map(|(u, t, p)| serde_json::json!({ "units_per_block": u, "temperature": t, "passes": p }))
    };
    prop_oneof![
        vec(n(), 0..4).prop_map(|l| serde_json::json!({ "kind": "mlp", "layers": l })),
        Just(serde_json::json!({ "kind": "mlp", "layers": [4, 3] })),
        (n(), n(), n(), n()).prop_map(|(c, h, w, k)| serde_json::json!({ "kind": "cnn", "channels": c, "height": h, "width": w, "classes": k })),
        (n(), n(), vec(n(), 0..5)).prop_map(|(k, b, s)| serde_json::json!({ "kind": "resnet", "channels": 3, "height": 8, "width": 8, "classes": k, "base_width": b, "blocks": s })),
        (vec(n(), 0..4), lwta()).prop_map(|(l, w)| serde_json::json!({ "kind": "lwta_mlp", "layers": l, "lwta": w })),
        (n(), lwta()).prop_map(|(k, w)| serde_json::json!({ "kind": "lwta_cnn", "channels": 1, "height": 8, "width": 8, "classes": k, "lwta": w })),
        n().prop_map(|k| serde_json::json!({ "kind": "preact_resnet18", "classes": k })),
        (n(), n(), n(), n()).prop_map(|(d, w, k, p)| serde_json::json!({ "kind": "wide_resnet", "depth": d, "widen": w, "classes": k, "drop": p })),
        (vec(n(), 0..4), vec(json_layer(), 0..5), n()).prop_map(|(i, l, p)| serde_json::json!({ "kind": "sequential", "input": i, "layers": l, "passes": p })),
    ]
}

/// The tensors of mlp([4, 3]), so that some records load.
fn mlp43() -> Vec<(String, String, Vec<u64>, Vec<u8>)> {
    vec![
        ("1.weight".into(), "F32".into(), vec![3, 4], f32_bytes(&[0.1; 12])),
        ("1.bias".into(), "F32".into(), vec![3], f32_bytes(&[0.0; 3])),
    ]
}

/// Values per sample a model of `dims` takes.
fn size(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// A `.npy` header dict from fragments (element types, Fortran order, shapes with hostile
/// sizes), or arbitrary text.
fn npy_header() -> impl Strategy<Value = String> {
    let descr = prop::sample::select(vec![
        "<f4", "|u1", "<i8", "<i4", "|b1", "<f8", ">f4", "<c8", "|O", "<u8", "x",
    ]);
    let fortran = prop::sample::select(vec!["False", "True", "1", "'no'"]);
    let dim = prop_oneof![4 => (0i64..5).prop_map(|d| d.to_string()), 1 => Just("-3".to_string()), 1 => Just("1099511627776".to_string()), 1 => Just("x".to_string()), 1 => Just(u64::MAX.to_string())];
    let made = (descr, fortran, vec(dim, 0..5)).prop_map(|(d, f, s)| {
        let shape: String = s.iter().map(|x| format!("{x}, ")).collect();
        format!("{{'descr': '{d}', 'fortran_order': {f}, 'shape': ({shape}), }}")
    });
    prop_oneof![4 => made, 1 => "[ -~]{0,60}"]
}

/// A `.npy` file: version, header and data, with a few bytes flipped.
fn npy_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![4 => Just(1u8), 1 => Just(2u8), 1 => any::<u8>()],
        npy_header(),
        vec(any::<u8>(), 0..100),
        vec((any::<prop::sample::Index>(), any::<u8>()), 0..2),
    )
        .prop_map(|(version, header, data, flips)| {
            let mut b = b"\x93NUMPY".to_vec();
            b.extend([version, 0]);
            match version {
                1 => b.extend((header.len() as u16).to_le_bytes()),
                _ => b.extend((header.len() as u32).to_le_bytes()),
            }
            b.extend(header.as_bytes());
            b.extend(data);
            for (at, v) in flips {
                let i = at.index(b.len());
                b[i] = v;
            }
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// An IDX file (raw or gzip) reads as dimensions and data that agree, or is an error.
    #[test]
    fn idx_headers_read_consistently_or_fail(bytes in idx_bytes(), gzip in any::<bool>()) {
        let tmp = scratch();
        let p = tmp.path().join("f.idx");
        let written = if gzip {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            e.finish().unwrap()
        } else {
            bytes.clone()
        };
        std::fs::write(&p, written).unwrap();
        let read = no_panic(|| read_idx(&p));
        prop_assert!(read.is_ok(), "read_idx panicked: {:?}", read.err());
        if let Ok(Ok((dims, data))) = read {
            let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            prop_assert_eq!(n, Some(data.len()), "dims {:?}", dims);
        }
    }

    /// An MNIST folder whose training images are those bytes loads as a data set of whole
    /// images in [0, 1], or is an error.
    #[test]
    fn mnist_folders_load_whole_images_or_fail(bytes in idx_bytes()) {
        let tmp = scratch();
        let dir = tmp.path();
        std::fs::write(dir.join("train-images-idx3-ubyte"), &bytes).unwrap();
        advlab::data::write_idx(&dir.join("train-labels-idx1-ubyte"), &[2], &[0, 1]).unwrap();
        advlab::data::write_idx(&dir.join("t10k-images-idx3-ubyte"), &[1, 2, 2], &[0; 4]).unwrap();
        advlab::data::write_idx(&dir.join("t10k-labels-idx1-ubyte"), &[1], &[3]).unwrap();
        let loaded = no_panic(|| load_mnist_like(Which::Mnist, Some(dir), &Device::Cpu));
        prop_assert!(loaded.is_ok(), "load_mnist_like panicked: {:?}", loaded.err());
        if let Ok(Ok(s)) = loaded {
            let (c, h, w) = s.train.image_shape();
            prop_assert!(s.train.len() == 2 && c == 1 && h > 0 && w > 0);
        }
    }

    /// A CIFAR batch of any length and labels is whole records of classes 0..9, or an error.
    #[test]
    fn cifar_batches_read_whole_records_or_fail(
        records in 0usize..3,
        extra in prop_oneof![3 => Just(0usize), 1 => 1usize..3074],
        labels in vec(prop_oneof![3 => 0u8..10, 1 => any::<u8>()], 3),
    ) {
        let tmp = scratch();
        let p = tmp.path().join("b.bin");
        let mut bytes = Vec::new();
        for l in labels.iter().take(records) {
            bytes.push(*l);
            bytes.extend(vec![9u8; 3072]);
        }
        bytes.extend(vec![0u8; extra]);
        std::fs::write(&p, &bytes).unwrap();
        let read = no_panic(|| read_cifar_batch(&p));
        prop_assert!(read.is_ok(), "read_cifar_batch panicked: {:?}", read.err());
        if let Ok(Ok((pixels, labels))) = read {
            prop_assert_eq!(pixels.len(), labels.len() * 3072);
            prop_assert!(labels.iter().all(|&l| l < 10));
            prop_assert!(!labels.is_empty());
        }
    }

    /// A checkpoint whose `advlab.arch` record is hostile (a known kind with hostile sizes, or
    /// garbage) loads as a model that classifies, or is an error; it never panics, and it never
    /// builds a network larger than its file before saying so.
    #[test]
    fn checkpoints_with_hostile_records_load_or_fail(
        record in prop_oneof![3 => json_record(), 1 => json_garbage()],
        extra in vec(st_tensor(), 0..2),
        as_text in any::<bool>(),
    ) {
        let tmp = scratch();
        let p = tmp.path().join("m.safetensors");
        let mut tensors = mlp43();
        tensors.extend(extra.into_iter().enumerate().map(|(i, (d, s, b))| (format!("x{i}"), d, s, b)));
        // the record as safetensors metadata must be a string; a raw value tests that too
        let arch = if as_text { serde_json::Value::from(record.to_string()) } else { record };
        std::fs::write(&p, safetensors_file(&tensors, &serde_json::json!({ "advlab.arch": arch }))).unwrap();
        let loaded = no_panic(|| load_model(&p, &Device::Cpu));
        prop_assert!(loaded.is_ok(), "load_model panicked: {:?}", loaded.err());
        if let Ok(Ok(m)) = loaded {
            prop_assert!(m.classes() >= 2);
            let dims = m.arch().input().dims();
            if size(&dims) <= 1 << 16 {
                let mut shape = vec![2];
                shape.extend(&dims);
                let x = Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
                let out = no_panic(|| m.forward(&x));
                prop_assert!(out.is_ok(), "forward panicked: {:?}", out.err());
            }
        }
    }

    /// A safetensors file of any header bytes (after a length that fits or not) is read or
    /// refused by every loader of safetensors files.
    #[test]
    fn safetensors_headers_of_any_bytes_read_or_fail(
        len in prop_oneof![3 => Just(None), 1 => any::<u64>().prop_map(Some)],
        header in prop_oneof!["[ -~]{0,80}", json_garbage().prop_map(|v| v.to_string())],
        data in vec(any::<u8>(), 0..32),
    ) {
        let tmp = scratch();
        let p = tmp.path().join("m.safetensors");
        let mut b = len.unwrap_or(header.len() as u64).to_le_bytes().to_vec();
        b.extend(header.as_bytes());
        b.extend(data);
        std::fs::write(&p, b).unwrap();
        for (what, r) in [
            ("load_model", no_panic(|| load_model(&p, &Device::Cpu).map(|_| ()))),
            ("load_dataset", no_panic(|| load_dataset(&p, &Device::Cpu).map(|_| ()))),
        ] {
            prop_assert!(r.is_ok(), "{} panicked: {:?}", what, r.err());
        }
    }

    /// A saved data set with hostile metadata and tensors loads as a data set whose labels are
    /// below its class count and whose pixels lie in [0, 1], or is an error.
    #[test]
    fn saved_data_sets_load_valid_or_fail(
        classes in prop_oneof![Just("2".to_string()), Just("0".to_string()), Just("-1".to_string()), Just("65537".to_string()), Just(u64::MAX.to_string()), "[0-9a-z]{0,6}"],
        images in prop_oneof![
            2 => Just(("F32".to_string(), vec![2u64, 1, 1, 2], f32_bytes(&[0.5, 0.0, 1.0, 0.25]))),
            1 => (prop::sample::select(vec![0.5f32, 2.0, -1.0, f32::NAN, f32::INFINITY])).prop_map(|v| ("F32".to_string(), vec![2u64, 1, 1, 2], f32_bytes(&[v; 4]))),
            1 => st_tensor(),
        ],
        labels in prop_oneof![
            2 => (0u32..4, 0u32..4).prop_map(|(a, b)| ("U32".to_string(), vec![2u64], [a, b].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())),
            1 => st_tensor(),
        ],
    ) {
        let tmp = scratch();
        let p = tmp.path().join("d.safetensors");
        let tensors = vec![
            ("images".to_string(), images.0, images.1, images.2),
            ("labels".to_string(), labels.0, labels.1, labels.2),
        ];
        let meta = serde_json::json!({ "advlab.dataset": "d", "advlab.classes": classes });
        std::fs::write(&p, safetensors_file(&tensors, &meta)).unwrap();
        let loaded = no_panic(|| load_dataset(&p, &Device::Cpu));
        prop_assert!(loaded.is_ok(), "load_dataset panicked: {:?}", loaded.err());
        if let Ok(Ok(d)) = loaded {
            let k = d.classes();
            prop_assert!(k >= 1);
            prop_assert!(d.labels().to_vec1::<u32>().unwrap().iter().all(|&l| (l as usize) < k));
            let px = d.images().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            prop_assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
            let counts = no_panic(|| d.label_counts());
            prop_assert!(counts.is_ok());
        }
    }

    /// A `.npy` file reads as a tensor no larger than its bytes, and as a data set's images
    /// in [0, 1], or is an error.
    #[test]
    fn npy_headers_read_within_their_bytes_or_fail(bytes in npy_bytes()) {
        let tmp = scratch();
        let (x, y) = (tmp.path().join("x.npy"), tmp.path().join("y.npy"));
        std::fs::write(&x, &bytes).unwrap();
        Tensor::new(&[0i64, 1], &Device::Cpu).unwrap().write_npy(&y).unwrap();
        let read = no_panic(|| read_npy(&x));
        prop_assert!(read.is_ok(), "read_npy panicked: {:?}", read.err());
        if let Ok(Ok(t)) = read {
            prop_assert!(t.elem_count() * t.dtype().size_in_bytes() <= bytes.len());
        }
        let set = no_panic(|| load_npy(&x, &y, &Device::Cpu));
        prop_assert!(set.is_ok(), "load_npy panicked: {:?}", set.err());
        if let Ok(Ok(d)) = set {
            let px = d.images().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            prop_assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        let as_labels = no_panic(|| load_npy(&y, &x, &Device::Cpu));
        prop_assert!(as_labels.is_ok(), "load_npy (labels) panicked: {:?}", as_labels.err());
    }

    /// A `.npz` archive of one mutated `.npy` entry, stored or deflated, or of arbitrary bytes,
    /// reads or is an error.
    #[test]
    fn npz_archives_read_or_fail(entry in npy_bytes(), deflate in any::<bool>(), cut in prop_oneof![3 => Just(None), 1 => any::<prop::sample::Index>().prop_map(Some)]) {
        use std::io::Write;
        let tmp = scratch();
        let p = tmp.path().join("a.npz");
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
        z.start_file("x_train.npy", zip::write::SimpleFileOptions::default().compression_method(method)).unwrap();
        z.write_all(&entry).unwrap();
        let mut bytes = z.finish().unwrap().into_inner();
        if let Some(at) = cut {
            bytes.truncate(at.index(bytes.len()));
        }
        std::fs::write(&p, &bytes).unwrap();
        let read = no_panic(|| read_npz(&p));
        prop_assert!(read.is_ok(), "read_npz panicked: {:?}", read.err());
    }
}

// ---------------------------------------------------------------------------------------------
// (b) the script API's numeric options

/// A float as a Rhai expression (NaN and the infinities as divisions).
fn float_lit(v: f64) -> String {
    if v.is_nan() {
        "(0.0 / 0.0)".into()
    } else if v == f64::INFINITY {
        "(1.0 / 0.0)".into()
    } else if v == f64::NEG_INFINITY {
        "(-1.0 / 0.0)".into()
    } else {
        format!("{v:?}")
    }
}

/// An integer as a Rhai expression (i64::MIN has no literal).
fn int_lit(v: i64) -> String {
    if v == i64::MIN {
        "(-9223372036854775807 - 1)".into()
    } else {
        v.to_string()
    }
}

/// NaN, the infinities, zeros, negative, huge and tiny values.
const SPECIAL: [f64; 10] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.0,
    -0.0,
    -1.0,
    1e300,
    -1e300,
    1e-300,
    f64::MAX,
];

/// A value of another type than an option takes (or an int for a float, a float for an int).
fn wrong_type() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["\"x\"", "()", "true", "[]", "#{}", "0.5", "3"]).prop_map(String::from)
}

/// A float option: often a plausible value in `lo..hi` (so that the other options' values are
/// reached), else a special one, a small random one, or one of the wrong type.
fn float_opt(lo: f64, hi: f64) -> impl Strategy<Value = String> {
    special_opt(lo, hi, &SPECIAL)
}

/// [`float_opt`] with the special values of `special`.
fn special_opt(lo: f64, hi: f64, special: &[f64]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (lo..hi).prop_map(float_lit),
        2 => prop::sample::select(special.to_vec()).prop_map(float_lit),
        1 => (-2.0f64..2.0).prop_map(float_lit),
        1 => wrong_type(),
    ]
}

/// An attack's float option: [`float_opt`]'s values, 1e300 and the like included (finite as
/// f64, infinite as f32: refused by the option reader since issue 19, they panicked or gave NaN
/// pixels before).
fn attack_opt(lo: f64, hi: f64) -> impl Strategy<Value = String> {
    special_opt(lo, hi, &SPECIAL)
}

/// A size option (widths, sample counts, k, batch sizes): often small, else negative, 0, far
/// beyond what can be allocated, or of the wrong type; never one that is allocatable but slow.
fn size_opt() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (1i64..8).prop_map(int_lit),
        2 => prop::sample::select(vec![i64::MIN, -1, 0, 1 << 40, i64::MAX]).prop_map(int_lit),
        1 => wrong_type(),
    ]
}

/// A count option (steps, epochs, restarts): often 1 or 2, else negative, 0 or of the wrong
/// type (a huge count is valid and only slow).
fn count_opt() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (1i64..3).prop_map(int_lit),
        1 => prop::sample::select(vec![i64::MIN, -1, 0]).prop_map(int_lit),
        1 => wrong_type(),
    ]
}

thread_local! {
    /// advlab's engine with `run`'s limits, and a scope holding `d` (8 synthetic test images)
    /// and `m` (an untrained 10-class MLP).
    static ENGINE: (rhai::Engine, rhai::Scope<'static>) = {
        let session = std::rc::Rc::new(advlab::script::Session::new(Device::Cpu, 0, std::env::temp_dir().join("advlab-props")));
        let (mut engine, _) = advlab::script::new_engine(session);
        advlab::repl::limit(&mut engine, advlab::repl::MAX_OPERATIONS);
        let mut scope = rhai::Scope::new();
        engine
            .run_with_scope(&mut scope, "let d = synthetic(#{ train: 8, test: 8, seed: 1 }).test;\nlet m = mlp([784, 10]);")
            .unwrap();
        (engine, scope)
    };
}

/// The marker of a result that a script found invalid.
const INVALID: &str = "INVALID RESULT";

/// Run `script` in the engine (on a copy of the scope): Ok(Ok) for a result, Ok(Err) for an
/// error, Err for a panic.
fn eval(script: &str) -> Result<Result<(), String>, String> {
    ENGINE.with(|(engine, scope)| {
        let mut scope = scope.clone();
        no_panic(|| engine.run_with_scope(&mut scope, script).map_err(|e| e.to_string()))
    })
}

/// A script line that throws `INVALID` unless the data set `adv` holds finite pixels in
/// [0, 1] and as many samples as `d`.
fn check_images(adv: &str) -> String {
    format!(
        "let lo = {adv}.images().min(); let hi = {adv}.images().max(); let s = {adv}.images().sum();\n\
         if !(lo >= 0.0 && hi <= 1.0 && s == s && {adv}.len() == d.len()) {{ throw `{INVALID}: ${{lo}} ${{hi}} ${{s}}`; }}"
    )
}

/// `script` ends in a result or an error, never in a panic or a result it finds invalid.
fn error_or_valid(script: &str) -> Result<(), TestCaseError> {
    match eval(script) {
        Err(panic) => Err(TestCaseError::fail(format!("panicked ({panic}) on:\n{script}"))),
        Ok(Err(e)) if e.contains(INVALID) => Err(TestCaseError::fail(format!("invalid result ({e}) of:\n{script}"))),
        Ok(_) => Ok(()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// FGSM's options: its perturbed images stay finite and in [0, 1], or the options are an
    /// error.
    #[test]
    fn fgsm_options_give_an_error_or_images_in_range(eps in attack_opt(0.0, 0.5), batch in size_opt(), eot in count_opt()) {
        error_or_valid(&format!(
            "let a = fgsm(#{{ eps: {eps}, batch_size: {batch}, eot: {eot} }});\nlet adv = a.perturb(m, d);\n{}",
            check_images("adv")
        ))?;
    }

    /// PGD's options, under L∞ and L2.
    #[test]
    fn pgd_options_give_an_error_or_images_in_range(
        eps in attack_opt(0.0, 0.5),
        alpha in attack_opt(0.001, 0.1),
        steps in count_opt(),
        restarts in count_opt(),
        batch in size_opt(),
        norm in prop::sample::select(vec!["\"linf\"", "\"l2\"", "\"l3\"", "0.5"]),
    ) {
        error_or_valid(&format!(
            "let a = pgd(#{{ eps: {eps}, alpha: {alpha}, steps: {steps}, restarts: {restarts}, batch_size: {batch}, norm: {norm} }});\n\
             let adv = a.perturb(m, d);\n{}",
            check_images("adv")
        ))?;
    }

    /// APGD's options.
    #[test]
    fn apgd_options_give_an_error_or_images_in_range(
        eps in attack_opt(0.0, 0.5),
        rho in attack_opt(0.1, 1.0),
        steps in count_opt(),
        loss in prop::sample::select(vec!["\"ce\"", "\"dlr\"", "\"hinge\"", "1"]),
    ) {
        error_or_valid(&format!(
            "let a = apgd(#{{ eps: {eps}, rho: {rho}, steps: {steps}, loss: {loss} }});\nlet adv = a.perturb(m, d);\n{}",
            check_images("adv")
        ))?;
    }

    /// Carlini–Wagner's options.
    #[test]
    fn cw_options_give_an_error_or_images_in_range(
        c in attack_opt(0.1, 10.0),
        kappa in attack_opt(0.0, 1.0),
        lr in attack_opt(0.001, 0.1),
        steps in count_opt(),
        search in count_opt(),
    ) {
        error_or_valid(&format!(
            "let a = cw_l2(#{{ c: {c}, kappa: {kappa}, lr: {lr}, steps: {steps}, binary_search_steps: {search} }});\n\
             let adv = a.perturb(m, d);\n{}",
            check_images("adv")
        ))?;
    }

    /// Network sizes of mlp, cnn and sequential: a network whose logits on `d` have a column
    /// per class (or an error that says why its input does not fit), or an error; never an
    /// allocation beyond the limit.
    #[test]
    fn network_sizes_give_an_error_or_a_network(
        width in size_opt(),
        classes in size_opt(),
        kernel in size_opt(),
        stride in size_opt(),
        padding in size_opt(),
        factor in size_opt(),
        which in 0usize..5,
    ) {
        let net = match which {
            0 => format!("mlp([784, {width}, {classes}])"),
            1 => format!("cnn(#{{ classes: {classes}, input: [1, {width}, {width}] }})"),
            2 => format!("cnn(#{{ classes: {classes} }})"),
            3 => format!("sequential([conv2d(#{{ out: {width}, kernel: {kernel}, stride: {stride}, padding: {padding} }}), relu(), flatten(), linear({classes})])"),
            _ => format!("sequential([upsample({factor}), max_pool({kernel}), flatten(), linear({classes})])"),
        };
        error_or_valid(&format!(
            "let n = {net};\nlet p = n.param_count();\nlet y = n.logits(d.images());\n\
             if y.shape()[0] != 8 || type_of({classes}) == \"i64\" && y.shape()[1] != {classes} {{ throw `{INVALID}: ${{y.shape()}}`; }}"
        ))?;
    }

    /// The synthetic data set's sizes and seed.
    #[test]
    fn synthetic_sizes_give_an_error_or_that_many_samples(train in size_opt(), test in size_opt(), seed in size_opt()) {
        error_or_valid(&format!(
            "let s = synthetic(#{{ train: {train}, test: {test}, seed: {seed} }});\n\
             // () is an option left out: the default size
             if type_of({train}) == \"i64\" && s.train.len() != {train} || type_of({test}) == \"i64\" && s.test.len() != {test} {{ throw `{INVALID}`; }}"
        ))?;
    }

    /// fit's learning rate, epochs, batch size, momentum and weight decay.
    #[test]
    fn fit_options_give_an_error_or_a_history(
        lr in float_opt(1e-4, 1e-2),
        epochs in count_opt(),
        batch in size_opt(),
        momentum in float_opt(0.0, 0.99),
        decay in float_opt(0.0, 0.01),
        optimizer in prop::sample::select(vec!["\"adam\"", "\"sgd\"", "\"adamw\"", "\"lbfgs\""]),
    ) {
        error_or_valid(&format!(
            "let n = mlp([784, 10]);\n\
             let h = n.fit(d, #{{ lr: {lr}, epochs: {epochs}, batch_size: {batch}, momentum: {momentum}, weight_decay: {decay}, optimizer: {optimizer} }});\n\
             if type_of({epochs}) == \"i64\" && h.loss.len() != {epochs} {{ throw `{INVALID}`; }}"
        ))?;
    }

    /// k-means' k, restarts, iterations and tolerance on 20 points.
    #[test]
    fn kmeans_options_give_an_error_or_k_clusters(k in size_opt(), n_init in count_opt(), max_iter in count_opt(), tol in float_opt(0.0, 1e-3)) {
        error_or_valid(&format!(
            "let c = kmeans(#{{ k: {k}, n_init: {n_init}, max_iter: {max_iter}, tol: {tol} }}).fit(rand_normal([20, 2], 1));\n\
             if type_of({k}) == \"i64\" && c.n_clusters() > {k} || c.labels().len() != 20 {{ throw `{INVALID}`; }}"
        ))?;
    }
}
