//! Parametric noise injection (He et al. 2019): α = 0 is the plain model, the injected noise
//! has standard deviation α·σ, α is trained, seeds reproduce, checkpoints keep α.

use crate::common::{advlab, max_abs_diff, round_trip, script, values};
use advlab::data::{synthetic, SyntheticParams};
use advlab::nn::{Arch, Model, NoiseSite};
use advlab::train::{fit, FitParams};
use candle_core::{Device, Tensor};
use predicates::str::contains;

fn small_data() -> advlab::data::Splits {
    synthetic(
        &SyntheticParams {
            train: 1000,
            test: 200,
            seed: 6,
        },
        &Device::Cpu,
    )
    .unwrap()
}

/// `model`'s parameters with every noise scale set to `alpha`, in a model of `arch`.
fn with_alpha(model: &Model, arch: Arch, alpha: f32) -> Model {
    let mut tensors: Vec<(String, Tensor)> = model.named_params().map(|(n, t)| (n.to_string(), t.clone())).collect();
    for spec in Model::new(arch.clone(), &Device::Cpu, 0).unwrap().named_params() {
        if spec.0.contains("alpha") {
            tensors.push((spec.0.to_string(), Tensor::new(&[alpha], &Device::Cpu).unwrap()));
        }
    }
    Model::from_tensors(arch, tensors, &Device::Cpu).unwrap()
}

#[test]
fn the_fused_noise_op_equals_plain_candle_ops_with_gradients() {
    use advlab::nn::noise::{add_noise, add_noise_candle};
    use candle_core::Var;
    for shape in [vec![7, 13], vec![4, 3, 9, 9], vec![40_000]] {
        let t = Var::from_tensor(&Tensor::randn(0.5f32, 2f32, shape.as_slice(), &Device::Cpu).unwrap()).unwrap();
        let a = Var::from_tensor(&Tensor::new(&[0.3f32], &Device::Cpu).unwrap()).unwrap();
        let (y1, y2) = (
            add_noise(t.as_tensor(), a.as_tensor(), 11).unwrap(),
            add_noise_candle(t.as_tensor(), a.as_tensor(), 11).unwrap(),
        );
        assert!(max_abs_diff(&y1, &y2) < 1e-5, "{shape:?}: values differ");
        let w = Tensor::randn(0f32, 1f32, shape.as_slice(), &Device::Cpu).unwrap();
        let g1 = (y1 * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (y2 * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&t, &a] {
            let (d1, d2) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            let scale = values(d2).iter().fold(1f32, |m, x| m.max(x.abs()));
            assert!(max_abs_diff(d1, d2) < 1e-4 * scale, "{shape:?}: gradients differ");
        }
        // another key, other noise
        let y3 = add_noise(t.as_tensor(), a.as_tensor(), 12).unwrap();
        assert_ne!(
            values(&y3),
            values(&add_noise(t.as_tensor(), a.as_tensor(), 11).unwrap())
        );
    }
}

#[test]
fn alpha_zero_is_the_plain_model_and_noise_changes_outputs_otherwise() {
    let x = small_data().test.images().narrow(0, 0, 20).unwrap();
    for plain in [
        Model::new(Arch::mlp(vec![784, 64, 32, 10]).unwrap(), &Device::Cpu, 1).unwrap(),
        Model::new(Arch::cnn(), &Device::Cpu, 1).unwrap(),
        Model::new(Arch::resnet([1, 28, 28], 4, vec![1, 1], 10).unwrap(), &Device::Cpu, 1).unwrap(),
    ] {
        let want = values(&plain.forward(&x).unwrap());
        for site in [NoiseSite::Weights, NoiseSite::Activations] {
            let arch = plain.arch().clone().with_noise_injection(Some(site));
            let zero = with_alpha(&plain, arch.clone(), 0.0);
            assert_eq!(values(&zero.forward(&x).unwrap()), want, "{arch}, α = 0");
            assert_eq!(
                values(&zero.forward_train(&x).unwrap()),
                want,
                "{arch}, α = 0, training"
            );
            let noisy = with_alpha(&plain, arch.clone(), 0.25);
            let (a, b) = (noisy.forward(&x).unwrap(), noisy.forward(&x).unwrap());
            assert_ne!(values(&a), want, "{arch}: no noise at α = 0.25");
            assert_ne!(values(&a), values(&b), "{arch}: the noise is not redrawn at each pass");
        }
    }
}

fn std(v: &[f32]) -> f32 {
    let m = v.iter().sum::<f32>() / v.len() as f32;
    ((v.iter().map(|x| (x - m) * (x - m)).sum::<f32>()) / (v.len() - 1) as f32).sqrt()
}

/// Noisy minus clean outputs: their standard deviation over α·σ, and their mean over α·σ.
fn noise_stats(noisy: &[f32], clean: &[f32], alpha: f32, sigma: f32) -> (f32, f32) {
    let diff: Vec<f32> = noisy.iter().zip(clean).map(|(a, b)| a - b).collect();
    let mean = diff.iter().sum::<f32>() / diff.len() as f32;
    (std(&diff) / (alpha * sigma), mean / (alpha * sigma))
}

#[test]
fn injected_noise_has_standard_deviation_alpha_sigma() {
    // a linear layer on one-hot inputs returns its (noisy) weight matrix plus the bias
    let (d, o) = (400, 300);
    let plain = Model::new(Arch::mlp(vec![d, o]).unwrap(), &Device::Cpu, 2).unwrap();
    let eye = Tensor::eye(d, candle_core::DType::F32, &Device::Cpu)
        .unwrap()
        .reshape((d, 1, 20, 20))
        .unwrap();
    let clean = values(&plain.forward(&eye).unwrap());
    let w = values(&plain.named_params().next().unwrap().1.clone());
    let m = with_alpha(
        &plain,
        plain.arch().clone().with_noise_injection(Some(NoiseSite::Weights)),
        0.7,
    );
    let (ratio, mean) = noise_stats(&values(&m.forward(&eye).unwrap()), &clean, 0.7, std(&w));
    assert!((ratio - 1.0).abs() < 0.02, "weight noise std / (α·σ_w) = {ratio}");
    assert!(mean.abs() < 0.02, "weight noise mean / (α·σ_w) = {mean}");
    // the classifier gets no output noise
    let m = with_alpha(
        &plain,
        plain.arch().clone().with_noise_injection(Some(NoiseSite::Activations)),
        0.4,
    );
    assert_eq!(values(&m.forward(&eye).unwrap()), clean);
    // a hidden layer does: put an identity classifier behind it, and a bias of 10 so that the
    // ReLU passes everything; the logits are then the hidden output and its noise
    let mut tensors: Vec<(String, Tensor)> = plain
        .named_params()
        .map(|(n, t)| {
            (
                n.to_string(),
                if n == "1.bias" { (t + 10.0).unwrap() } else { t.clone() },
            )
        })
        .collect();
    tensors.push((
        "3.weight".into(),
        Tensor::eye(o, candle_core::DType::F32, &Device::Cpu).unwrap(),
    ));
    tensors.push((
        "3.bias".into(),
        Tensor::zeros(o, candle_core::DType::F32, &Device::Cpu).unwrap(),
    ));
    tensors.push(("1.alpha_a".into(), Tensor::new(&[0.4f32], &Device::Cpu).unwrap()));
    let arch = Arch::mlp(vec![d, o, o])
        .unwrap()
        .with_noise_injection(Some(NoiseSite::Activations));
    let two = Model::from_tensors(arch.clone(), tensors, &Device::Cpu).unwrap();
    let names: Vec<&str> = two.named_params().map(|(n, _)| n).collect();
    assert_eq!(names, ["1.weight", "1.bias", "1.alpha_a", "3.weight", "3.bias"]);
    let clean: Vec<f32> = clean.iter().map(|v| v + 10.0).collect();
    let (ratio, mean) = noise_stats(&values(&two.forward(&eye).unwrap()), &clean, 0.4, std(&clean));
    assert!((ratio - 1.0).abs() < 0.02, "activation noise std / (α·σ_y) = {ratio}");
    assert!(mean.abs() < 0.02, "activation noise mean / (α·σ_y) = {mean}");
}

#[test]
fn alpha_gets_gradients_and_is_trained_by_fit() {
    let data = small_data();
    for arch in [
        Arch::cnn().with_noise_injection(Some(NoiseSite::Weights)),
        Arch::mlp(vec![784, 64, 10])
            .unwrap()
            .with_noise_injection(Some(NoiseSite::Activations)),
    ] {
        let m = Model::new(arch.clone(), &Device::Cpu, 3).unwrap();
        let before = m.noise_scales().unwrap();
        assert!(
            !before.is_empty() && before.iter().all(|(_, a)| *a == 0.25),
            "{before:?}"
        );
        // a gradient reaches every α
        let x = data.train.images().narrow(0, 0, 64).unwrap();
        let y = data.train.labels().narrow(0, 0, 64).unwrap();
        let loss = candle_nn::loss::cross_entropy(&m.forward_train(&x).unwrap(), &y).unwrap();
        let grads = loss.backward().unwrap();
        for (name, t) in m.named_params().filter(|(n, _)| n.contains("alpha")) {
            let g = grads.get(t).unwrap_or_else(|| panic!("{arch}: no gradient for {name}"));
            assert!(values(g)[0] != 0.0, "{arch}: zero gradient for {name}");
        }
        let p = FitParams {
            epochs: 1,
            seed: 3,
            ..FitParams::default()
        }
        .check()
        .unwrap();
        fit(&m, &data.train, &p).unwrap();
        let after = m.noise_scales().unwrap();
        assert!(
            after.iter().zip(&before).all(|(a, b)| (a.1 - b.1).abs() > 1e-4),
            "{arch}: α did not move: {before:?} → {after:?}"
        );
        assert!(
            advlab::eval::accuracy(&m, &data.test).unwrap() > 0.3,
            "{arch} did not learn"
        );
    }
}

#[test]
fn seeds_reproduce_noise_and_checkpoints_keep_alpha() {
    let x = small_data().test.images().narrow(0, 0, 10).unwrap();
    let arch = Arch::cnn().with_noise_injection(Some(NoiseSite::Weights));
    let (a, b, c) = (
        Model::new(arch.clone(), &Device::Cpu, 9).unwrap(),
        Model::new(arch.clone(), &Device::Cpu, 9).unwrap(),
        Model::new(arch.clone(), &Device::Cpu, 10).unwrap(),
    );
    let first = values(&a.forward(&x).unwrap());
    assert_eq!(first, values(&b.forward(&x).unwrap()));
    let second = values(&a.forward(&x).unwrap());
    assert_eq!(second, values(&b.forward(&x).unwrap()));
    assert_ne!(first, second);
    assert_ne!(first, values(&c.forward(&x).unwrap()));
    a.reseed(9);
    assert_eq!(
        values(&a.forward(&x).unwrap()),
        first,
        "reseed did not restart the noise"
    );
    // a clone continues the same stream, independently
    let d = a.deep_clone().unwrap();
    assert_eq!(values(&a.forward(&x).unwrap()), values(&d.forward(&x).unwrap()));
    // checkpoints: α under PyTorch's names, the architecture with its noise site
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("pni.safetensors");
    let back = round_trip(&a, &path, &x, 4);
    assert_eq!(back.noise_scales().unwrap(), a.noise_scales().unwrap());
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("3.alpha_w").unwrap().shape(), &[1]);
    let torch = a.arch().torch_module();
    assert!(
        torch.contains("class PNIConv2d(nn.Conv2d)")
            && torch.contains("self.alpha_w = nn.Parameter(torch.tensor([0.25]))")
            && torch.contains("nn.Sequential(PNIConv2d(1, 32, 3, padding=1)")
            && torch.contains("PNILinear(128, 10))"),
        "{torch}"
    );
    let act = Arch::cnn()
        .with_noise_injection(Some(NoiseSite::Activations))
        .torch_module();
    assert!(
        act.contains("PNILinear(3136, 128), nn.ReLU(), nn.Linear(128, 10))"),
        "{act}"
    );
}

#[test]
fn scripts_choose_the_noise_site_and_read_alpha() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "p.rhai",
        r#"
let d = synthetic(#{ train: 300, test: 50, seed: 1 });
let m = mlp([784, 32, 10], #{ noise_injection: "weights", seed: 2 });
print(m.noise_scales());
let a = m.accuracy(d.test);
m.reseed(5);
let b = m.accuracy(d.test);
m.reseed(5);
print(b == m.accuracy(d.test));
print(m.arch);
"#,
    );
    advlab()
        .arg("run")
        .arg(&s)
        .assert()
        .success()
        .stdout(contains("\"1.alpha_w\": 0.25"))
        .stdout(contains("true"))
        .stdout(contains("with noise injection on the weights"));
    let bad = script(tmp.path(), "b.rhai", r#"cnn(#{ noise_injection: "input" });"#);
    advlab().arg("run").arg(&bad).assert().failure().stderr(contains(
        "unknown noise_injection \"input\": use \"weights\" or \"activations\"",
    ));
}
