//! Checkpoints written by the binary of 2026-12-02 (before models became layer lists), one per
//! architecture and option, with the logits each gave on a fixed probe: they must still load,
//! describe themselves the same way and give the same logits (stochastic ones after the
//! same reseed). `cargo test --release -- --ignored write_checkpoint_fixtures` rewrote them.

use super::common::values;
use advlab::nn::{load_model, save_model, Arch, IbpPrior, Lwta, Model, NoiseSite};
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints")
}

/// The architectures, small enough to commit.
fn archs() -> Vec<(&'static str, Arch)> {
    let lwta = Lwta {
        units_per_block: 2,
        ..Lwta::default()
    };
    vec![
        ("mlp", Arch::mlp(vec![16, 8, 6, 3]).unwrap()),
        (
            "mlp_pni_weights",
            Arch::mlp(vec![16, 8, 3])
                .unwrap()
                .with_noise_injection(Some(NoiseSite::Weights)),
        ),
        ("cnn", Arch::cnn_for([1, 4, 4], 3).unwrap()),
        (
            "cnn_pni_activations",
            Arch::cnn_for([1, 4, 4], 3)
                .unwrap()
                .with_noise_injection(Some(NoiseSite::Activations)),
        ),
        ("resnet", Arch::resnet([1, 4, 4], 2, vec![1, 2], 3).unwrap()),
        (
            "lwta_mlp_ibp",
            Arch::lwta_mlp(
                vec![16, 8, 3],
                Lwta {
                    ibp: Some(IbpPrior::default()),
                    ..lwta
                },
            )
            .unwrap(),
        ),
        (
            "lwta_cnn",
            Arch::lwta_cnn([1, 4, 4], 3, Lwta { passes: 2, ..lwta }).unwrap(),
        ),
    ]
}

/// Two 1×4×4 images in [0, 1].
fn probe() -> Tensor {
    let v: Vec<f32> = (0..32).map(|i| ((i as f32) * 0.37).sin().abs()).collect();
    Tensor::from_vec(v, (2, 1, 4, 4), &Device::Cpu).unwrap()
}

/// What a model gives on the probe: its description, parameter names and logits after reseed 5.
fn record(m: &Model) -> serde_json::Value {
    m.reseed(5);
    let logits = values(&m.forward(&probe()).unwrap());
    serde_json::json!({
        "arch": m.arch().to_string(),
        "torch_module": m.arch().torch_module(),
        "params": m.named_params().map(|(n, _)| n.to_string()).collect::<Vec<_>>(),
        "logits": logits,
    })
}

#[test]
#[ignore = "rewrites the committed fixtures"]
fn write_checkpoint_fixtures() {
    let mut expected = BTreeMap::new();
    for (i, (name, arch)) in archs().into_iter().enumerate() {
        let m = Model::new(arch, &Device::Cpu, 10 + i as u64).unwrap();
        save_model(
            &m,
            &dir().join(format!("{name}.safetensors")),
            &serde_json::json!({"seed": 10 + i}),
        )
        .unwrap();
        expected.insert(name.to_string(), record(&m));
    }
    std::fs::write(
        dir().join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap(),
    )
    .unwrap();
}

#[test]
fn checkpoints_of_the_earlier_binary_load_and_give_the_same_logits() {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let expected: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(expected.len(), archs().len());
    for (name, want) in &expected {
        let m = load_model(&dir().join(format!("{name}.safetensors")), &Device::Cpu).unwrap();
        let got = record(&m);
        assert_eq!(got["arch"], want["arch"], "{name}");
        assert_eq!(got["params"], want["params"], "{name}");
        let (g, w) = (got["logits"].as_array().unwrap(), want["logits"].as_array().unwrap());
        assert_eq!(g.len(), w.len(), "{name}");
        for (a, b) in g.iter().zip(w) {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{name}: logit {a} != {b}");
        }
    }
}
