//! The small resnet (and the CNN on other image shapes): PyTorch names, the forward pass
//! against plain candle ops, shape and parameter errors, checkpoints, and learning.

use crate::common::{advlab, max_abs_diff, script, values};
use advlab::data::{synthetic, SyntheticParams};
use advlab::eval::accuracy;
use advlab::nn::{load_model, save_model, Arch, Model};
use advlab::train::{fit, FitParams};
use candle_core::{Device, Tensor};
use predicates::str::contains;

fn resnet(input: [usize; 3], width: usize, blocks: Vec<usize>, seed: u64) -> Model {
    Model::new(Arch::resnet(input, width, blocks, 10).unwrap(), &Device::Cpu, seed).unwrap()
}

fn param(m: &Model, name: &str) -> Tensor {
    m.named_params()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

#[test]
fn resnet_parameters_follow_the_torch_module() {
    let m = resnet([3, 32, 32], 16, vec![1, 2, 1], 0);
    let names: Vec<(&str, Vec<usize>)> = m.named_params().map(|(n, t)| (n, t.dims().to_vec())).collect();
    let want: Vec<(&str, Vec<usize>)> = vec![
        ("stem.weight", vec![16, 3, 3, 3]),
        ("stem.bias", vec![16]),
        ("stages.0.0.conv1.weight", vec![16, 16, 3, 3]),
        ("stages.0.0.conv1.bias", vec![16]),
        ("stages.0.0.conv2.weight", vec![16, 16, 3, 3]),
        ("stages.0.0.conv2.bias", vec![16]),
        ("stages.1.0.conv1.weight", vec![32, 16, 3, 3]),
        ("stages.1.0.conv1.bias", vec![32]),
        ("stages.1.0.conv2.weight", vec![32, 32, 3, 3]),
        ("stages.1.0.conv2.bias", vec![32]),
        ("stages.1.0.shortcut.weight", vec![32, 16, 1, 1]),
        ("stages.1.0.shortcut.bias", vec![32]),
        ("stages.1.1.conv1.weight", vec![32, 32, 3, 3]),
        ("stages.1.1.conv1.bias", vec![32]),
        ("stages.1.1.conv2.weight", vec![32, 32, 3, 3]),
        ("stages.1.1.conv2.bias", vec![32]),
        ("stages.2.0.conv1.weight", vec![64, 32, 3, 3]),
        ("stages.2.0.conv1.bias", vec![64]),
        ("stages.2.0.conv2.weight", vec![64, 64, 3, 3]),
        ("stages.2.0.conv2.bias", vec![64]),
        ("stages.2.0.shortcut.weight", vec![64, 32, 1, 1]),
        ("stages.2.0.shortcut.bias", vec![64]),
        ("fc.weight", vec![10, 64]),
        ("fc.bias", vec![10]),
    ];
    assert_eq!(names, want);
    let torch = m.arch().torch_module();
    assert!(
        torch.contains("self.stem = nn.Conv2d(3, 16, 3, padding=1)")
            && torch.contains("nn.Sequential(Block(16, 32, 2), Block(32, 32, 1))")
            && torch.contains("self.fc = nn.Linear(64, 10)")
            && torch.contains(".mean((2, 3))"),
        "{torch}"
    );
    // He's init of the convs: normal with std √(2/fan_in), biases 0; the fc layer keeps
    // PyTorch's default uniform in ±1/√fan_in
    for (name, fan_in) in [("stages.1.0.conv1", 16 * 9), ("stages.2.0.conv2", 64 * 9)] {
        let w = values(&param(&m, &format!("{name}.weight")));
        let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
        let want = (2.0 / fan_in as f32).sqrt();
        assert!((std / want - 1.0).abs() < 0.1, "{name}: std {std}, want {want}");
        assert!(values(&param(&m, &format!("{name}.bias"))).iter().all(|&b| b == 0.0));
    }
    let fc = values(&param(&m, "fc.weight"));
    assert!(fc.iter().all(|v| v.abs() <= 0.125) && fc.iter().any(|v| v.abs() > 0.1));
    // the CNN on CIFAR-sized images: the first linear layer sees 64·8·8 features
    let c = Model::new(Arch::cnn_for([3, 32, 32], 10).unwrap(), &Device::Cpu, 0).unwrap();
    assert_eq!(param(&c, "0.weight").dims(), &[32, 3, 3, 3]);
    assert_eq!(param(&c, "7.weight").dims(), &[128, 64 * 8 * 8]);
}

/// The resnet's forward pass written again with candle's own conv2d and reductions.
fn reference(m: &Model, x: &Tensor, blocks: &[(String, usize, bool)]) -> Tensor {
    let conv = |x: &Tensor, name: &str, pad: usize, stride: usize| {
        let (w, b) = (param(m, &format!("{name}.weight")), param(m, &format!("{name}.bias")));
        x.conv2d(&w, pad, stride, 1, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, b.dims()[0], 1, 1)).unwrap())
            .unwrap()
    };
    let mut h = conv(x, "stem", 1, 1).relu().unwrap();
    for (prefix, stride, projection) in blocks {
        let o = conv(&h, &format!("{prefix}.conv1"), 1, *stride).relu().unwrap();
        let o = conv(&o, &format!("{prefix}.conv2"), 1, 1);
        let sc = if *projection {
            conv(&h, &format!("{prefix}.shortcut"), 0, *stride)
        } else {
            h.clone()
        };
        h = (o + sc).unwrap().relu().unwrap();
    }
    let pooled = h
        .mean_keepdim(3)
        .unwrap()
        .mean_keepdim(2)
        .unwrap()
        .flatten_from(1)
        .unwrap();
    let (w, b) = (param(m, "fc.weight"), param(m, "fc.bias"));
    pooled.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap()
}

#[test]
fn resnet_forward_equals_plain_candle_ops_and_gradients_reach_the_input() {
    let m = resnet([3, 16, 12], 4, vec![2, 1, 1], 5);
    let x = Tensor::rand(0f32, 1f32, (3, 3, 16, 12), &Device::Cpu).unwrap();
    let blocks = vec![
        ("stages.0.0".to_string(), 1, false),
        ("stages.0.1".to_string(), 1, false),
        ("stages.1.0".to_string(), 2, true),
        ("stages.2.0".to_string(), 2, true),
    ];
    let ours = m.forward(&x).unwrap();
    assert_eq!(ours.dims(), &[3, 10]);
    let want = reference(&m, &x, &blocks);
    let d = max_abs_diff(&ours, &want);
    assert!(d < 1e-5, "resnet logits differ from the candle reference by {d}");
    // input gradients through the custom ops equal candle's
    let xv = candle_core::Var::from_tensor(&x).unwrap();
    let g1 = m
        .forward(xv.as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g2 = reference(&m, xv.as_tensor(), &blocks)
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let (a, b) = (g1.get(xv.as_tensor()).unwrap(), g2.get(xv.as_tensor()).unwrap());
    assert!(values(a).iter().any(|v| v.abs() > 1e-6));
    let d = max_abs_diff(a, b);
    assert!(d < 1e-5, "input gradients differ by {d}");
}

#[test]
fn resnet_checks_its_input_and_parameters() {
    let m = resnet([3, 32, 32], 8, vec![1, 1, 1], 0);
    let x = Tensor::zeros((2, 1, 28, 28), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = m.forward(&x).unwrap_err().to_string();
    assert!(e.contains("takes 3×32×32 images") && e.contains("1×28×28"), "{e}");
    let e = Arch::resnet([3, 30, 32], 8, vec![1, 1, 1], 10).unwrap_err().to_string();
    assert!(e.contains("divisible by 4") && e.contains("30×32"), "{e}");
    assert!(Arch::resnet([3, 30, 30], 8, vec![1, 1], 10).is_ok());
    let e = Arch::resnet([3, 32, 32], 8, vec![], 10).unwrap_err().to_string();
    assert!(e.contains("1 to 4 stages"), "{e}");
    assert!(Arch::resnet([3, 32, 32], 8, vec![1, 0, 1], 10).is_err());
    assert!(Arch::resnet([3, 32, 32], 0, vec![1], 10)
        .unwrap_err()
        .to_string()
        .contains("width"));
    assert!(Arch::resnet([0, 32, 32], 8, vec![1], 10).is_err());
    assert!(Arch::resnet([3, 32, 32], 8, vec![1], 1)
        .unwrap_err()
        .to_string()
        .contains("classes must be at least 2"));
    assert!(Arch::cnn_for([3, 3, 32], 10)
        .unwrap_err()
        .to_string()
        .contains("at least 4×4"));
    // the same rules from a script, with the line of the call
    let tmp = tempfile::tempdir().unwrap();
    let s = script(tmp.path(), "r.rhai", "let m = resnet(#{ blocks: [2, 0] });");
    advlab()
        .arg("run")
        .arg(&s)
        .assert()
        .failure()
        .stderr(contains("1 to 4 stages"))
        .stderr(contains("r.rhai:1:9"));
    let s = script(
        tmp.path(),
        "r2.rhai",
        "let m = resnet(#{ input: [1, 28, 28], width: 4, blocks: [1, 1, 1], classes: 10, seed: 1 }); print(m.param_count()); print(cnn(#{ input: [3, 32, 32] }).arch);",
    );
    advlab()
        .arg("run")
        .arg(&s)
        .assert()
        .success()
        .stdout(contains("cnn(3×32×32"));
}

#[test]
fn resnet_save_load_round_trip_and_learns_synthetic_data() {
    let data = synthetic(
        &SyntheticParams {
            train: 2000,
            test: 300,
            seed: 4,
        },
        &Device::Cpu,
    )
    .unwrap();
    let m = resnet([1, 28, 28], 8, vec![1, 1, 1], 2);
    let p = FitParams {
        epochs: 3,
        seed: 4,
        lr: 3e-3,
        ..FitParams::default()
    }
    .check()
    .unwrap();
    let hist = fit(&m, &data.train, &p).unwrap();
    let acc = accuracy(&m, &data.test).unwrap();
    eprintln!("resnet on synthetic: {hist:?}, test accuracy {acc:.3}");
    assert!(acc > 0.5, "resnet test accuracy {acc} (chance 0.1)");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("r.safetensors");
    save_model(&m, &path, &serde_json::json!({})).unwrap();
    let again = load_model(&path, &Device::Cpu).unwrap();
    assert_eq!(again.arch(), m.arch());
    let x = data.test.images().narrow(0, 0, 50).unwrap();
    assert_eq!(values(&m.forward(&x).unwrap()), values(&again.forward(&x).unwrap()));
}
