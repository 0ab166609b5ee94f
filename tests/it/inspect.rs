//! `advlab inspect` on every kind of file (README, "`advlab inspect FILE`"), the checkpoint
//! records README gives for every architecture, and reducers saved and loaded back.

use crate::common::{advlab, run_in, script};
use predicates::prelude::*;
use predicates::str::contains;
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch_parity")
        .join(name)
}

fn inspect(file: &Path) -> assert_cmd::assert::Assert {
    advlab().arg("inspect").arg(file).assert()
}

#[test]
fn inspect_names_each_kind_and_how_to_load_it() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "save.rhai",
        "let d = synthetic(#{ train: 40, test: 10, seed: 1 });\ncnn().save(\"out/cnn.safetensors\");\nmlp([784, 32, 10]).save(\"out/mlp.safetensors\");\nd.test.save(\"out/test.safetensors\");\npca(#{ dims: 3 }).fit(d.train).save(\"out/pca.safetensors\");\n",
    );
    run_in(tmp.path(), &s).success();
    let out = tmp.path().join("out");
    inspect(&out.join("cnn.safetensors"))
        .success()
        .stdout(contains("advlab model checkpoint"))
        .stdout(contains("421,642 values"))
        .stdout(contains("0.weight"))
        .stdout(contains("[32, 1, 3, 3]"))
        .stdout(contains("advlab.provenance"))
        .stdout(contains("load_model("))
        .stdout(contains("nn.Conv2d(1, 32, 3, padding=1)"))
        .stdout(contains("model.load_state_dict(load_file("));
    inspect(&out.join("mlp.safetensors"))
        .success()
        .stdout(contains("nn.Linear(784, 32)"));
    inspect(&out.join("test.safetensors"))
        .success()
        .stdout(contains("advlab data set"))
        .stdout(contains("images"))
        .stdout(contains("[10, 1, 28, 28]"))
        .stdout(contains("load_dataset("))
        .stdout(contains("TensorDataset"));
    inspect(&out.join("pca.safetensors"))
        .success()
        .stdout(contains("advlab reducer"))
        .stdout(contains("components"))
        .stdout(contains("[3, 784]"))
        .stdout(contains("load_reducer("));
    // state_dicts PyTorch wrote, without metadata: the preset they fit, sizes read from shapes
    inspect(&fixture("trades_small_cnn.safetensors"))
        .success()
        .stdout(contains("without advlab metadata"))
        .stdout(contains("matches trades_small_cnn()"))
        .stdout(contains("m.load_weights("));
    inspect(&fixture("bn_wrn16_1.safetensors"))
        .success()
        .stdout(contains("matches wide_resnet(#{ depth: 16, widen: 1, classes: 10 })"))
        .stdout(contains("num_batches_tracked"));
    inspect(&fixture("bn_features.safetensors"))
        .success()
        .stdout(contains("no preset has these names and shapes"));
}

#[test]
fn inspect_refuses_what_is_not_what_it_says() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.safetensors");
    std::fs::write(&junk, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header").unwrap();
    inspect(&junk)
        .code(1)
        .stderr(contains("not a safetensors file"))
        .stderr(contains("panicked").not());
    std::fs::write(&junk, b"abc").unwrap();
    inspect(&junk).code(1).stderr(contains("too short"));
    // an architecture record whose tensors are another network's
    let s = script(
        tmp.path(),
        "save.rhai",
        "mlp([784, 32, 10]).save(\"out/mlp.safetensors\");\n",
    );
    run_in(tmp.path(), &s).success();
    let bytes = std::fs::read(tmp.path().join("out/mlp.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = file.tensors().into_iter().collect();
    let meta = std::collections::HashMap::from([(
        "advlab.arch".to_string(),
        r#"{"kind":"mlp","layers":[784,64,10]}"#.to_string(),
    )]);
    let forged = tmp.path().join("forged.safetensors");
    std::fs::write(&forged, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
    inspect(&forged)
        .code(1)
        .stderr(contains("the tensors are not those of its architecture"));
    let meta = std::collections::HashMap::from([(
        "advlab.arch".to_string(),
        r#"{"kind":"mlp","layers":[784,0,10]}"#.to_string(),
    )]);
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = file.tensors().into_iter().collect();
    std::fs::write(&forged, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
    inspect(&forged)
        .code(1)
        .stderr(contains("advlab.arch is not a valid architecture"));
    // a plain state_dict with a preset's names and scalar shapes: no preset matches, no panic
    let one = 1f32.to_le_bytes();
    let scalar = || safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![], &one).unwrap();
    let names = [
        "linear.weight",
        "layer1.0.bn1.weight",
        "fc.weight",
        "block1.layer.0.conv1.weight",
        "a.weight",
    ];
    let plain = tmp.path().join("scalars.safetensors");
    std::fs::write(
        &plain,
        safetensors::serialize(names.map(|n| (n, scalar())), None).unwrap(),
    )
    .unwrap();
    inspect(&plain)
        .success()
        .stdout(contains("linear.weight"))
        .stderr(contains("panicked").not());
}

/// Every record in README's Python block parses as an architecture, each kind is there, and a
/// checkpoint written with the record (and the weights of a model built from it) loads.
#[test]
fn readme_records_cover_every_architecture_and_load() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("ARCH = {  # advlab.arch records\n")
        .nth(1)
        .and_then(|b| b.split("\n}\n").next())
        .expect("the records block in README");
    let mut kinds = std::collections::BTreeSet::new();
    for line in block.lines() {
        let json = line.split_once(": ").unwrap().1.trim().trim_end_matches(',');
        let arch: advlab::nn::Arch = serde_json::from_str(json).unwrap_or_else(|e| panic!("{line}: {e}"));
        let record: serde_json::Value = serde_json::from_str(json).unwrap();
        kinds.insert(record["kind"].as_str().unwrap().to_string());
        // small enough to build: every one but the two CIFAR ResNets at full size
        if matches!(record["kind"].as_str(), Some("wide_resnet" | "preact_resnet18")) {
            continue;
        }
        let model = advlab::nn::Model::new(arch.clone(), &candle_core::Device::Cpu, 0).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.safetensors");
        let tensors: Vec<(&str, &candle_core::Tensor)> = model.named_state().collect();
        let meta = std::collections::HashMap::from([("advlab.arch".to_string(), json.to_string())]);
        std::fs::write(&path, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
        let loaded = advlab::nn::load_model(&path, &candle_core::Device::Cpu).unwrap();
        assert_eq!(loaded.arch(), &arch);
    }
    let all = [
        "cnn",
        "lwta_cnn",
        "lwta_mlp",
        "mlp",
        "preact_resnet18",
        "resnet",
        "sequential",
        "wide_resnet",
    ];
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), all);
}

/// A fitted PCA saved and loaded projects new points exactly as before; t-SNE keeps its
/// parameters; corrupt files are refused naming the field.
#[test]
fn reducers_save_and_load() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "r.rhai",
        "let d = synthetic(#{ train: 200, test: 20, seed: 2 });\nlet p = pca(#{ dims: 4 }).fit(d.train);\np.save(\"out/p.safetensors\");\nlet q = load_reducer(\"out/p.safetensors\");\nlet a = p.transform(d.test);\nlet b = q.transform(d.test);\nif (a - b).abs().max() != 0.0 { throw \"different projections\"; }\nif p.explained_variance_ratio() != q.explained_variance_ratio() { throw \"different variances\"; }\ntsne(#{ perplexity: 5, seed: 9 }).save(\"out/t.safetensors\");\nprint(load_reducer(\"out/t.safetensors\"));\nprint(q);\n",
    );
    run_in(tmp.path(), &s)
        .success()
        .stdout(contains("TSNE(perplexity=5, iterations=1000, theta=0.5, seed=9)"))
        .stdout(contains("PCA(dims=4)"));
    assert!(tmp.path().join("out/p.safetensors.meta.json").exists());
    // a components array of the wrong shape
    let bytes = std::fs::read(tmp.path().join("out/p.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> =
        file.tensors().into_iter().filter(|(n, _)| n != "components").collect();
    std::fs::write(
        tmp.path().join("bad.safetensors"),
        safetensors::serialize(tensors, meta.metadata().clone()).unwrap(),
    )
    .unwrap();
    crate::common::fails(
        &format!(
            "let r = load_reducer(\"{}\");\n",
            tmp.path().join("bad.safetensors").display()
        ),
        "no `components` array",
        "1:9",
    );
}
