//! Batch norm and the batch-normed networks: PyTorch's logits in evaluation and in training,
//! PyTorch's running statistics after a training pass, the reference state_dict names of
//! PreAct ResNet-18 and WideResNet, buffers in checkpoints, and clear errors.
//! The fixtures come from `benches/reference/batchnorm_check.py`.

use crate::common::{fails, max_abs_diff, round_trip, run_in, script, values};
use advlab::nn::{load_weights, Arch, Input, Layer, Model, WideResnetParams, BN_EPS, BN_MOMENTUM};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const FIXTURES: &str = "tests/fixtures/torch_parity";

fn bn(momentum: f64) -> Layer {
    Layer::BatchNorm {
        eps: BN_EPS,
        momentum,
        affine: true,
        name: None,
    }
}

fn conv(out: usize, kernel: usize, padding: usize) -> Layer {
    let mut l = Layer::conv2d(out, kernel);
    if let Layer::Conv2d { padding: p, opts, .. } = &mut l {
        *p = padding;
        opts.no_bias = true;
    }
    l
}

/// The networks of the fixture, as advlab builds them.
fn fixture_arch(name: &str) -> Arch {
    match name {
        "wrn16_1" => Arch::wide_resnet(&WideResnetParams {
            depth: 16,
            widen: 1,
            ..WideResnetParams::default()
        })
        .unwrap(),
        "preact_small" => Arch::sequential(
            Input::Image(3, 16, 16),
            vec![
                conv(8, 3, 1),
                Layer::PreactBlock { out: 8, stride: 1 },
                Layer::PreactBlock { out: 16, stride: 2 },
                bn(BN_MOMENTUM),
                Layer::Relu,
                Layer::GlobalAvgPool,
                Layer::linear(10),
            ],
        )
        .unwrap(),
        "features" => Arch::sequential(
            Input::Image(3, 4, 4),
            vec![
                Layer::Flatten,
                Layer::linear(12),
                bn(0.3),
                Layer::Relu,
                Layer::linear(10),
            ],
        )
        .unwrap(),
        "preact_resnet18" => Arch::preact_resnet18(10).unwrap(),
        "wrn28_10" => Arch::wide_resnet(&WideResnetParams::default()).unwrap(),
        other => panic!("no fixture network {other}"),
    }
}

/// Load each network's state_dict and compare with PyTorch: eval logits, train logits (batch
/// statistics), and the running statistics that training pass left.
fn check_parity(dir: &Path, names: &[&str]) {
    let probe: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("bn_probe.safetensors"), &Device::Cpu).unwrap();
    for name in names {
        let m = Model::new(fixture_arch(name), &Device::Cpu, 1).unwrap();
        load_weights(&m, &dir.join(format!("bn_{name}.safetensors"))).unwrap();
        let x = &probe[&format!("{name}.x")];
        let eval = m.forward(x).unwrap();
        let d = max_abs_diff(&eval, &probe[&format!("{name}.eval")]);
        assert!(d < 1e-4, "{name}: eval logits differ from PyTorch's by {d}");
        let train = m.forward_train(x).unwrap();
        let d = max_abs_diff(&train, &probe[&format!("{name}.train")]);
        assert!(d < 1e-4, "{name}: train logits differ from PyTorch's by {d}");
        eprintln!(
            "{name}: largest logit difference from PyTorch {:.2e} (eval), {d:.2e} (train)",
            max_abs_diff(&eval, &probe[&format!("{name}.eval")])
        );
        let mut buffers = 0;
        for (b, t) in m.named_buffers() {
            let want = &probe[&format!("{name}.after.{b}")];
            let d = max_abs_diff(t, want);
            assert!(d < 1e-5, "{name}: {b} after one training pass differs by {d}");
            buffers += 1;
        }
        assert!(buffers >= 2, "{name}: no buffers");
        // evaluation now reads the moved statistics: other logits than before
        assert!(max_abs_diff(&m.forward(x).unwrap(), &eval) > 1e-4, "{name}");
    }
}

#[test]
fn batch_norm_networks_give_pytorchs_logits_and_running_statistics() {
    check_parity(Path::new(FIXTURES), &["wrn16_1", "preact_small", "features"]);
}

/// PreActResNet18 and WideResNet-28-10 at full size (180 MB of weights, not committed):
/// `python3 benches/reference/batchnorm_check.py --full DIR`, then `ADVLAB_PARITY_FULL=DIR`.
#[test]
fn full_size_presets_give_pytorchs_logits_when_their_fixture_is_written() {
    match std::env::var_os("ADVLAB_PARITY_FULL") {
        Some(dir) => check_parity(&PathBuf::from(dir), &["preact_resnet18", "wrn28_10"]),
        None => eprintln!("skipped: ADVLAB_PARITY_FULL is not set (see benches/reference/batchnorm_check.py)"),
    }
}

#[test]
fn the_presets_have_the_reference_state_dict_names_and_sizes() {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("preact_resnet18_names.json")).unwrap();
    let torch: Vec<(String, Vec<usize>)> = serde_json::from_str(&text).unwrap();
    let mut want: Vec<(String, Vec<usize>)> = torch
        .into_iter()
        .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
        .collect();
    let m = Model::new(Arch::preact_resnet18(10).unwrap(), &Device::Cpu, 1).unwrap();
    let mut got: Vec<(String, Vec<usize>)> = m
        .named_state()
        .map(|(n, t)| (n.to_string(), t.dims().to_vec()))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(m.param_count(), 11_172_170);
    assert!(m.arch().torch_module().contains("class PreActResNet18(nn.Module)"));
    // WideResNet-28-10: RobustBench's names, its parameter count, its init
    let w = Model::new(
        Arch::wide_resnet(&WideResnetParams::default()).unwrap(),
        &Device::Cpu,
        1,
    )
    .unwrap();
    assert_eq!(w.param_count(), 36_479_194);
    let state: HashMap<&str, Vec<usize>> = w.named_state().map(|(n, t)| (n, t.dims().to_vec())).collect();
    for (name, dims) in [
        ("conv1.weight", vec![16, 3, 3, 3]),
        ("block1.layer.0.bn1.running_var", vec![16]),
        ("block1.layer.0.convShortcut.weight", vec![160, 16, 1, 1]),
        ("block2.layer.3.conv2.weight", vec![320, 320, 3, 3]),
        ("bn1.weight", vec![640]),
        ("fc.weight", vec![10, 640]),
        ("fc.bias", vec![10]),
    ] {
        assert_eq!(state.get(name), Some(&dims), "{name}");
    }
    assert!(!state.contains_key("block1.layer.1.convShortcut.weight"));
    let p: HashMap<&str, Vec<f32>> = w.named_state().map(|(n, t)| (n, values(t))).collect();
    let c = &p["block2.layer.0.conv1.weight"];
    let std = (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt();
    // normal(0, √(2 / (3·3·320))): fan-out, as there
    assert!((std / (2.0f32 / 2880.0).sqrt() - 1.0).abs() < 0.05, "init std {std}");
    assert!(p["fc.bias"].iter().all(|v| *v == 0.0));
    assert!(p["bn1.weight"].iter().all(|v| *v == 1.0) && p["bn1.running_var"].iter().all(|v| *v == 1.0));
    for (depth, err) in [(15, "6n + 4"), (4, "6n + 4")] {
        let e = Arch::wide_resnet(&WideResnetParams {
            depth,
            ..WideResnetParams::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains(err), "{e}");
    }
}

#[test]
fn evaluation_uses_running_statistics_so_a_sample_does_not_depend_on_its_batch() {
    let m = Model::new(fixture_arch("preact_small"), &Device::Cpu, 3).unwrap();
    load_weights(&m, &Path::new(FIXTURES).join("bn_preact_small.safetensors")).unwrap();
    let x: Vec<f32> = (0..8 * 3 * 16 * 16).map(|i| ((i as f32) * 0.173).sin().abs()).collect();
    let x = Tensor::from_vec(x, (8, 3, 16, 16), &Device::Cpu).unwrap();
    let all = m.forward(&x).unwrap();
    let one = m.forward(&x.narrow(0, 2, 1).unwrap()).unwrap();
    assert!(max_abs_diff(&all.narrow(0, 2, 1).unwrap(), &one) < 1e-5);
    // evaluation leaves the running statistics alone; training moves them
    let before: Vec<Vec<f32>> = m.named_buffers().map(|(_, t)| values(t)).collect();
    m.forward(&x).unwrap();
    assert_eq!(before, m.named_buffers().map(|(_, t)| values(t)).collect::<Vec<_>>());
    m.forward_train(&x).unwrap();
    assert_ne!(before, m.named_buffers().map(|(_, t)| values(t)).collect::<Vec<_>>());
    // a training pass needs two values per channel: an error, not a panic
    let f = Model::new(fixture_arch("features"), &Device::Cpu, 1).unwrap();
    let e = f.forward_train(&Tensor::ones((1, 3, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap());
    assert!(e.unwrap_err().to_string().contains("more than one value per channel"));
}

#[test]
fn checkpoints_keep_the_running_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Model::new(fixture_arch("preact_small"), &Device::Cpu, 5).unwrap();
    let x: Vec<f32> = (0..6 * 3 * 16 * 16).map(|i| ((i as f32) * 0.31).cos().abs()).collect();
    let x = Tensor::from_vec(x, (6, 3, 16, 16), &Device::Cpu).unwrap();
    for _ in 0..3 {
        m.forward_train(&x).unwrap();
    }
    let loaded = round_trip(&m, &tmp.path().join("bn.safetensors"), &x, 5);
    let b: Vec<Vec<f32>> = loaded.named_buffers().map(|(_, t)| values(t)).collect();
    assert_eq!(b, m.named_buffers().map(|(_, t)| values(t)).collect::<Vec<_>>());
    assert!(b[0].iter().any(|v| *v != 0.0), "the statistics moved");
    // noise injection reaches the convolutions inside a preact_block, and the checkpoint keeps it
    let noisy = Model::new(
        fixture_arch("preact_small").with_noise_injection(Some(advlab::nn::NoiseSite::Weights)),
        &Device::Cpu,
        6,
    )
    .unwrap();
    assert!(noisy.named_params().any(|(n, _)| n == "1.body.2.alpha_w"));
    round_trip(&noisy, &tmp.path().join("noisy.safetensors"), &x, 7);
    // a deep clone copies them: training the clone leaves the original's alone
    let c = m.deep_clone().unwrap();
    c.forward_train(&(x * 2.0).unwrap()).unwrap();
    assert_eq!(b, m.named_buffers().map(|(_, t)| values(t)).collect::<Vec<_>>());
}

#[test]
fn a_script_trains_a_batch_normed_network_and_its_errors_name_the_call() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "bn.rhai",
        "let data = synthetic(#{ train: 600, test: 200, seed: 1 });\n\
         let m = sequential([conv2d(#{ out: 8, kernel: 3, padding: 1, bias: false }), preact_block(#{ out: 8 }),\n\
         \x20   preact_block(#{ out: 16, stride: 2 }), batch_norm(), relu(), global_avg_pool(), linear(10)], #{ seed: 2 });\n\
         let h = m.fit(data.train, #{ epochs: 3, optimizer: \"sgd\", lr: 0.05, momentum: 0.9, weight_decay: 5e-4, batch_size: 64 });\n\
         print(`loss ${h.loss[0]} ${h.loss[2]}`);\n\
         print(m.torch_module());\n\
         let f = sequential([flatten(), linear(16), batch_norm(#{ momentum: 0.3, eps: 1e-3 }), relu(), linear(10)]);\n\
         f.fit(data.train, #{ epochs: 6 });\n\
         print(`acc ${f.accuracy(data.test)}`);\n\
         print(f.torch_module());",
    );
    let out = run_in(tmp.path(), &s).success().get_output().stdout.clone();
    let out = String::from_utf8(out).unwrap();
    let read = |prefix: &str| -> Vec<f64> {
        let line = out.lines().find_map(|l| l.strip_prefix(prefix)).unwrap();
        line.split_whitespace().map(|v| v.parse().unwrap()).collect()
    };
    let loss = read("loss ");
    assert!(
        loss[1] < loss[0] - 0.1,
        "the preact network's loss falls: {loss:?}\n{out}"
    );
    let acc = read("acc ")[0];
    assert!(
        acc > 0.8,
        "a batch-normed network learns the synthetic set: {acc}\n{out}"
    );
    assert!(out.contains("nn.BatchNorm2d(8)"), "{out}");
    assert!(out.contains("nn.Conv2d(8, 16, 1, stride=2, bias=False)"), "{out}");
    assert!(out.contains("nn.BatchNorm1d(16, eps=0.001, momentum=0.3)"), "{out}");
    fails(
        "let m = sequential([flatten(), linear(8), batch_norm(#{ momentum: 2.0 }), linear(2)]);",
        "momentum must be in [0, 1]",
        "1:9",
    );
    fails(
        "let l = preact_block(#{ stride: 2 });",
        "option `out` is required",
        "1:9",
    );
    fails(
        "let m = sequential([flatten(), preact_block(#{ out: 8 }), linear(2)]);",
        "preact_block needs an image",
        "1:9",
    );
    fails("let m = wide_resnet(#{ depth: 15 });", "6n + 4", "1:9");
    fails(
        "let m = preact_resnet18(#{ classes: 1 });",
        "classes must be at least 2",
        "1:9",
    );
    fails(
        "let l = batch_norm(#{ momentun: 0.2 });",
        "did you mean `momentum`?",
        "1:23",
    );
    // 65 samples in batches of 64 leave one: refused before the first step, with the way out
    fails(
        "let d = synthetic(#{ train: 65, test: 10, seed: 1 }).train;\n\
         let m = sequential([flatten(), linear(8), batch_norm(), relu(), linear(10)]);\n\
         m.fit(d, #{ batch_size: 64 });",
        "last batch of batch_size 64 holds one sample, which batch norm cannot normalise in training; \
         choose a batch_size that does not leave one sample over, or take 64 samples",
        "3:3",
    );
    // a 2-d batch norm sees H·W values per channel of one sample: the same split trains, as in PyTorch
    let two_d = script(
        tmp.path(),
        "bn2d.rhai",
        "let d = synthetic(#{ train: 65, test: 10, seed: 1 }).train;\n\
         let m = sequential([conv2d(#{ out: 4, kernel: 3 }), batch_norm(), relu(), flatten(), linear(10)]);\n\
         m.fit(d, #{ batch_size: 64 });",
    );
    run_in(tmp.path(), &two_d).success();
}
