//! The layers and networks of the robustness literature: dropout, average pooling and the
//! other activations against their definitions, Madry's MNIST network and TRADES' SmallCNN
//! with their reference names and sizes, and `load_weights` from a plain state_dict.

use crate::common::{fails, max_abs_diff, run_in, script, values};
use advlab::nn::{load_weights, save_model, Arch, Input, Layer, Model};
use candle_core::{Device, Tensor};
use predicates::str::contains;
use std::collections::HashMap;

fn images(n: usize, c: usize, h: usize, w: usize) -> Tensor {
    let v: Vec<f32> = (0..n * c * h * w).map(|i| ((i as f32) * 0.37).sin()).collect();
    Tensor::from_vec(v, (n, c, h, w), &Device::Cpu).unwrap()
}

fn names(m: &Model) -> Vec<(String, Vec<usize>)> {
    m.named_params()
        .map(|(n, t)| (n.to_string(), t.dims().to_vec()))
        .collect()
}

/// An activation's definition, element by element.
type Activation = Box<dyn Fn(f32) -> f32>;

#[test]
fn activations_and_pooling_follow_their_definitions() {
    // one layer between flatten and a fixed linear map is enough to read each activation
    let x = images(2, 1, 4, 4);
    let flat = values(&x);
    let cases: Vec<(Layer, Activation)> = vec![
        (
            Layer::LeakyRelu { slope: 0.1 },
            Box::new(|v| if v >= 0.0 { v } else { 0.1 * v }),
        ),
        (Layer::Softplus, Box::new(|v: f32| (1.0 + v.exp()).ln())),
        (Layer::Tanh, Box::new(|v: f32| v.tanh())),
        (Layer::Sigmoid, Box::new(|v: f32| 1.0 / (1.0 + (-v).exp()))),
        (Layer::Identity, Box::new(|v| v)),
    ];
    for (layer, f) in cases {
        let kind = layer.kind();
        let arch = Arch::sequential(Input::Image(1, 4, 4), vec![Layer::Flatten, layer, Layer::linear(2)]).unwrap();
        let m = Model::new(arch, &Device::Cpu, 1).unwrap();
        // logits = W·act(x) + b with the model's own W and b
        let w = m.named_params().find(|(n, _)| *n == "2.weight").unwrap().1.clone();
        let b = m.named_params().find(|(n, _)| *n == "2.bias").unwrap().1.clone();
        let act: Vec<f32> = flat.iter().map(|&v| f(v)).collect();
        let a = Tensor::from_vec(act, (2, 16), &Device::Cpu).unwrap();
        let want = a.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
        let got = m.forward(&x).unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-5, "{kind}");
    }
    // 2×2 average pooling of a 4×4 image
    let arch = Arch::sequential(
        Input::Image(1, 4, 4),
        vec![Layer::AvgPool { size: 2 }, Layer::Flatten, Layer::linear(2)],
    )
    .unwrap();
    let m = Model::new(arch, &Device::Cpu, 1).unwrap();
    assert_eq!(m.named_params().next().unwrap().1.dims(), [2, 4]);
    assert!(m.arch().torch_module().contains("nn.AvgPool2d(2)"));
}

#[test]
fn dropout_is_the_identity_in_evaluation_and_drops_p_in_training() {
    let p = 0.3;
    let x = (images(64, 1, 8, 8).abs().unwrap() + 0.5).unwrap();
    let with = Arch::sequential(
        Input::Image(1, 8, 8),
        vec![Layer::Flatten, Layer::Dropout { p }, Layer::linear(10)],
    )
    .unwrap();
    let without = Arch::sequential(
        Input::Image(1, 8, 8),
        vec![Layer::Flatten, Layer::Identity, Layer::linear(10)],
    )
    .unwrap();
    let a = Model::new(with, &Device::Cpu, 4).unwrap();
    let b = Model::new(without, &Device::Cpu, 4).unwrap();
    assert_eq!(values(&a.forward(&x).unwrap()), values(&b.forward(&x).unwrap()));
    assert!(!a.arch().is_stochastic() && a.arch().draws_in_training());
    // in training: the logits' gradient w.r.t. the weight reads the kept, scaled inputs
    let y = a.forward_train(&x).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let g = values(grads.get(a.vars()[0].as_tensor()).unwrap());
    // row 0 of d(sum)/dW = Σ_n masked(x_n): compare with the clean sum per input
    let clean: Vec<f32> = {
        let s = x.flatten_from(1).unwrap().sum(0).unwrap();
        values(&s)
    };
    let ratio: f32 = g[..64].iter().sum::<f32>() / clean.iter().sum::<f32>();
    assert!((ratio - 1.0).abs() < 0.1, "inverted dropout keeps the mean: {ratio}");
    let dropped = {
        let y1 = a.forward_train(&x).unwrap();
        let y2 = a.forward_train(&x).unwrap();
        max_abs_diff(&y1, &y2)
    };
    assert!(dropped > 0.0, "two training passes drew the same mask");
    // the same seed draws the same masks
    a.reseed(9);
    let m1 = values(&a.forward_train(&x).unwrap());
    a.reseed(9);
    assert_eq!(m1, values(&a.forward_train(&x).unwrap()));
    assert!(
        Arch::sequential(Input::Features(4), vec![Layer::Dropout { p: 1.0 }, Layer::linear(2)])
            .unwrap_err()
            .to_string()
            .contains("p must be in [0, 1)")
    );
}

#[test]
fn the_published_networks_have_their_reference_names_and_sizes() {
    let madry = Model::new(Arch::madry_mnist_cnn(), &Device::Cpu, 1).unwrap();
    let n = |v: &[usize]| v.to_vec();
    assert_eq!(
        names(&madry),
        vec![
            ("conv1.weight".into(), n(&[32, 1, 5, 5])),
            ("conv1.bias".into(), n(&[32])),
            ("conv2.weight".into(), n(&[64, 32, 5, 5])),
            ("conv2.bias".into(), n(&[64])),
            ("fc1.weight".into(), n(&[1024, 3136])),
            ("fc1.bias".into(), n(&[1024])),
            ("fc2.weight".into(), n(&[10, 1024])),
            ("fc2.bias".into(), n(&[10])),
        ]
    );
    assert_eq!(madry.param_count(), 3_274_634);
    let trades = Model::new(Arch::trades_small_cnn(0.5).unwrap(), &Device::Cpu, 1).unwrap();
    let got: Vec<String> = names(&trades).into_iter().map(|(k, _)| k).collect();
    let want: Vec<String> = ["conv1", "conv2", "conv3", "conv4"]
        .iter()
        .map(|c| format!("feature_extractor.{c}"))
        .chain(["fc1", "fc2", "fc3"].iter().map(|f| format!("classifier.{f}")))
        .flat_map(|l| [format!("{l}.weight"), format!("{l}.bias")])
        .collect();
    assert_eq!(got, want);
    assert_eq!(trades.param_count(), 312_202);
    // TRADES' init: the convolutions' biases and the whole last layer start at zero
    let p: HashMap<String, Vec<f32>> = trades.named_params().map(|(k, t)| (k.to_string(), values(t))).collect();
    assert!(p["feature_extractor.conv1.bias"].iter().all(|v| *v == 0.0));
    assert!(p["classifier.fc3.weight"].iter().all(|v| *v == 0.0));
    let std = {
        let w = &p["feature_extractor.conv2.weight"];
        (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt()
    };
    assert!((std / (2.0f32 / 288.0).sqrt() - 1.0).abs() < 0.1, "He init: std {std}");
    for m in [&madry, &trades] {
        assert_eq!(m.forward(&images(3, 1, 28, 28)).unwrap().dims(), [3, 10]);
    }
    assert!(Arch::trades_small_cnn(1.5).is_err());
    // the printed modules keep the names (checked in PyTorch: load_state_dict(strict=True) of
    // advlab's checkpoints into them), and define every helper they use
    let t = trades.arch().torch_module();
    assert!(t.starts_with("from collections import OrderedDict"), "{t}");
    assert!(
        t.contains("(\"feature_extractor\", nn.Sequential(OrderedDict([(\"conv1\", nn.Conv2d(1, 32, 3))"),
        "{t}"
    );
    assert!(
        t.contains("(\"classifier\", nn.Sequential(OrderedDict([(\"fc1\", nn.Linear(1024, 200))"),
        "{t}"
    );
    assert!(madry.arch().torch_module().contains("(\"fc1\", nn.Linear(3136, 1024))"));
    let gap = Arch::sequential(Input::Image(1, 4, 4), vec![Layer::GlobalAvgPool, Layer::linear(2)]).unwrap();
    assert!(gap.torch_module().contains("class GlobalAvgPool(nn.Module)"));
}

#[test]
fn load_weights_fills_a_model_from_a_plain_state_dict_and_lists_what_does_not_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Model::new(Arch::madry_mnist_cnn(), &Device::Cpu, 3).unwrap();
    // a state_dict as PyTorch writes it: names only, no metadata, a BN counter too
    let mut tensors: Vec<(String, Tensor)> = src.named_params().map(|(n, t)| (n.to_string(), t.clone())).collect();
    tensors.push((
        "bn.num_batches_tracked".into(),
        Tensor::new(&[7i64], &Device::Cpu).unwrap(),
    ));
    let path = tmp.path().join("sd.safetensors");
    let write = |path: &std::path::Path, t: &[(String, Tensor)]| {
        let bytes = safetensors::serialize(t.iter().map(|(n, t)| (n.as_str(), t)), None).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    write(&path, &tensors);
    let dst = Model::new(Arch::madry_mnist_cnn(), &Device::Cpu, 4).unwrap();
    let x = images(4, 1, 28, 28);
    assert!(max_abs_diff(&src.forward(&x).unwrap(), &dst.forward(&x).unwrap()) > 1e-3);
    load_weights(&dst, &path).unwrap();
    assert_eq!(values(&src.forward(&x).unwrap()), values(&dst.forward(&x).unwrap()));
    // a mismatch names every problem and changes nothing
    let mut bad = tensors.clone();
    bad.retain(|(n, _)| n != "fc2.bias");
    bad.iter_mut().find(|(n, _)| n == "conv1.weight").unwrap().1 =
        Tensor::zeros((32, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    bad.push((
        "extra.weight".into(),
        Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap(),
    ));
    let bad_path = tmp.path().join("bad.safetensors");
    write(&bad_path, &bad);
    let fresh = Model::new(Arch::madry_mnist_cnn(), &Device::Cpu, 5).unwrap();
    let before = values(&fresh.forward(&x).unwrap());
    let e = load_weights(&fresh, &bad_path).unwrap_err().to_string();
    for part in [
        "missing fc2.bias [10]",
        "conv1.weight is [32, 1, 3, 3] in the file but [32, 1, 5, 5] in the model",
        "unexpected extra.weight",
        "bad.safetensors",
    ] {
        assert!(e.contains(part), "{e}");
    }
    assert_eq!(before, values(&fresh.forward(&x).unwrap()));
    // and from a script; save_model's checkpoint (with metadata) loads the same way
    let ck = tmp.path().join("ck.safetensors");
    save_model(&src, &ck, &serde_json::json!({})).unwrap();
    let s = script(
        tmp.path(),
        "w.rhai",
        &format!(
            "let m = madry_mnist_cnn(#{{ seed: 9 }});\nm.load_weights(\"{}\");\nprint(m.param_count());\nlet t = trades_small_cnn();\nt.load_weights(\"{}\");",
            ck.display(),
            ck.display()
        ),
    );
    run_in(tmp.path(), &s)
        .failure()
        .stdout(contains("3274634"))
        .stderr(contains("missing feature_extractor.conv1.weight"))
        .stderr(contains("w.rhai:5:3"));
}

#[test]
fn script_layers_and_presets_are_checked_at_their_call() {
    fails("let l = avg_pool(0);", "avg_pool: size must be at least 1", "1:9");
    fails(
        "let m = sequential([flatten(), dropout(1.5), linear(10)]);",
        "p must be in [0, 1)",
        "1:9",
    );
    fails(
        "let m = trades_small_cnn(#{ drop: -1.0 });",
        "p must be in [0, 1)",
        "1:9",
    );
    fails(
        "let m = madry_mnist_cnn(#{ seeds: 1 });",
        "did you mean `seed`?",
        "1:28",
    );
}

/// The network of `benches/reference/presets_check.py`'s `layers_net`.
fn layers_net() -> Arch {
    let conv = |out, kernel, padding| Layer::Conv2d {
        out,
        kernel,
        stride: 1,
        padding,
        opts: Default::default(),
    };
    Arch::sequential(
        Input::Image(1, 28, 28),
        vec![
            conv(4, 3, 1),
            Layer::LeakyRelu { slope: 0.1 },
            Layer::AvgPool { size: 2 },
            conv(4, 3, 0),
            Layer::Softplus,
            Layer::MaxPool { size: 2 },
            Layer::Flatten,
            Layer::linear(16),
            Layer::Tanh,
            Layer::Dropout { p: 0.2 },
            Layer::linear(10),
            Layer::Sigmoid,
        ],
    )
    .unwrap()
}

#[test]
fn state_dicts_written_by_pytorch_give_pytorchs_logits() {
    // tests/fixtures/torch_parity: written by benches/reference/presets_check.py (PyTorch 2.x,
    // eval mode); Madry's network is checked when its 13 MB state_dict is there (--madry)
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_parity");
    let probe = candle_core::safetensors::load(dir.join("probe.safetensors"), &Device::Cpu).unwrap();
    let x = &probe["x"];
    let mut checked = 0;
    for (name, arch) in [
        ("trades_small_cnn", Arch::trades_small_cnn(0.5).unwrap()),
        ("layers", layers_net()),
        ("madry_mnist_cnn", Arch::madry_mnist_cnn()),
    ] {
        let path = dir.join(format!("{name}.safetensors"));
        if !path.exists() {
            continue;
        }
        let m = Model::new(arch, &Device::Cpu, 0).unwrap();
        load_weights(&m, &path).unwrap();
        let diff = max_abs_diff(&m.forward(x).unwrap(), &probe[name]);
        eprintln!("{name}: max abs logit difference from PyTorch {diff:.2e}");
        assert!(diff < 1e-4, "{name}: logits differ from PyTorch's by {diff}");
        checked += 1;
    }
    assert!(checked >= 2, "the committed fixture holds trades_small_cnn and layers");
}

/// The published MNIST recipes on the published networks, and the hour's recipe, run end to end
/// in quick mode.
#[test]
fn the_madry_and_trades_reproduction_scripts_run_quick() {
    for (script, dir, network) in [
        ("reproduce/madry_mnist.rhai", "madry_mnist", "conv1.weight"),
        (
            "reproduce/trades_mnist.rhai",
            "trades_mnist",
            "feature_extractor.conv1.weight",
        ),
        ("mnist_hour.rhai", "mnist_hour", "feature_extractor.conv1.weight"),
    ] {
        let Some((tmp, stdout)) = crate::common::run_quick(script, &["autoattack=true", "aa_test=20"]) else {
            eprintln!("skipped: no MNIST files (set ADVLAB_DATA)");
            return;
        };
        let out = tmp.path().join("out").join(dir).join("quick");
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
        let get = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{script}: no {k} in {r}"));
        assert_eq!(get("train_samples"), 500.0);
        if dir == "mnist_hour" {
            // the best epoch under held-out PGD-10 is kept and named
            assert_eq!(get("selected_epoch"), 1.0, "{r}");
            assert!(stdout.contains("held_out_pgd10"), "{stdout}");
        }
        for k in ["clean", "pgd40", "pgd100_restarts", "autoattack"] {
            assert!((0.0..=1.0).contains(&get(k)), "{script}: {k}");
        }
        // autoattack=true: the standard sequence on the first aa_test images, its four stages recorded
        assert_eq!(get("autoattack_samples"), 20.0);
        let stages: Vec<&str> = r["autoattack_stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["attack"].as_str().unwrap())
            .collect();
        assert_eq!(stages, ["apgd_ce", "apgd_t", "fab_t", "square"], "{script}");
        // the stronger attack is not weaker (on the same images), and no attack beats clean accuracy
        let same = if dir == "mnist_hour" { "pgd40_subset" } else { "pgd40" };
        assert!(
            get("pgd100_restarts") <= get(same) + 0.02 && get("pgd40") <= get("clean"),
            "{r}"
        );
        let timing = if dir == "mnist_hour" {
            "train_seconds"
        } else {
            "seconds_per_epoch"
        };
        assert!(stdout.contains(timing), "{stdout}");
        let saved = advlab::nn::load_model(&out.join("model.safetensors"), &Device::Cpu).unwrap();
        assert!(saved.named_params().any(|(n, _)| n == network), "{script}");
    }
}
