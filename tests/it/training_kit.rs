//! The training kit of the published recipes: SGD with Nesterov momentum and weight decay,
//! Adam with weight decay and AdamW give PyTorch's weights after the same steps, and the
//! learning-rate schedules give PyTorch's rates.

use crate::common::{fails, values};
use advlab::data::Dataset;
use advlab::nn::{Arch, Model};
use advlab::train::{fit, FitParams, LrSchedule};
use advlab::ParamError;
use candle_core::{Device, Tensor};
use std::collections::HashMap;

/// `tests/fixtures/torch_parity/optim.safetensors` (benches/reference/presets_check.py): its
/// tensors, and its batch as a data set.
fn optim_fixture() -> (HashMap<String, Tensor>, Dataset) {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_parity/optim.safetensors");
    let f = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let y = f["y"].to_dtype(candle_core::DType::U32).unwrap();
    let data = Dataset::new(f["x"].clone(), y, 3, "fixture").unwrap();
    (f, data)
}

/// The fixture's linear model at its start weights.
fn start_model(f: &HashMap<String, Tensor>) -> Model {
    let start = vec![
        ("1.weight".to_string(), f["start.weight"].clone()),
        ("1.bias".to_string(), f["start.bias"].clone()),
    ];
    Model::from_tensors(Arch::mlp(vec![16, 3]).unwrap(), start, &Device::Cpu).unwrap()
}

#[test]
fn optimizers_take_pytorchs_steps() {
    let (f, data) = optim_fixture();
    for (name, optimizer, lr, momentum, nesterov, weight_decay) in [
        ("sgd_nesterov", "sgd", 0.1, 0.9, true, 5e-4),
        ("sgd_decay", "sgd", 0.1, 0.9, false, 1e-2),
        ("adam_decay", "adam", 1e-2, 0.9, false, 1e-2),
        ("adamw", "adamw", 1e-2, 0.9, false, 1e-2),
    ] {
        let m = start_model(&f);
        // three epochs of one full batch: three steps (the shuffled order does not change a mean)
        let p = FitParams {
            epochs: 3,
            batch_size: 8,
            lr,
            optimizer: optimizer.into(),
            momentum,
            nesterov,
            weight_decay,
            ..FitParams::default()
        }
        .check()
        .unwrap();
        fit(&m, &data, &p).unwrap();
        for (ours, theirs) in m.vars().iter().zip(["weight", "bias"]) {
            let want = values(&f[&format!("{name}.{theirs}")]);
            let got = values(ours.as_tensor());
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-5, "{name}.{theirs}: {diff} from PyTorch's");
        }
    }
}

#[test]
fn schedules_give_pytorchs_rates() {
    let (lr, per_epoch) = (0.1, 10);
    let total = 5 * per_epoch;
    // MultiStepLR(milestones=[2, 4], gamma=0.1), stepped per epoch
    let ms = LrSchedule::MultiStep {
        milestones: vec![2, 4],
        gamma: 0.1,
    };
    let rates: Vec<f64> = (0..total)
        .step_by(per_epoch)
        .map(|t| ms.rate(lr, t, total, per_epoch))
        .collect();
    let want = [0.1, 0.1, 0.01, 0.01, 0.001];
    assert!(rates.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{rates:?}");
    // CosineAnnealingLR(T_max = total), stepped per update: lr at 0, lr/2 half-way
    let c = LrSchedule::Cosine;
    assert_eq!(c.rate(lr, 0, total, per_epoch), lr);
    assert!((c.rate(lr, total / 2, total, per_epoch) - lr / 2.0).abs() < 1e-12);
    assert!(c.rate(lr, total - 1, total, per_epoch) < 1e-3);
    // Wong et al.'s np.interp([epoch + (i + 1)/n], [0, 2, 5], [0, 0.2, 0])
    let pw = LrSchedule::Piecewise {
        points: vec![(0.0, 0.0), (2.0, 0.2), (5.0, 0.0)],
    };
    assert!((pw.rate(lr, 9, total, per_epoch) - 0.1).abs() < 1e-12, "after epoch 1");
    assert!(
        (pw.rate(lr, 19, total, per_epoch) - 0.2).abs() < 1e-12,
        "the peak at epoch 2"
    );
    assert!((pw.rate(lr, 34, total, per_epoch) - 0.2 * 1.5 / 3.0).abs() < 1e-12);
    assert!(pw.rate(lr, total - 1, total, per_epoch).abs() < 1e-12);
}

#[test]
fn training_kit_rules_and_script_options() {
    let p = |f: FitParams| f.check().unwrap_err();
    assert_eq!(
        p(FitParams {
            nesterov: true,
            momentum: 0.0,
            optimizer: "sgd".into(),
            ..FitParams::default()
        }),
        ParamError::NesterovWithoutMomentum
    );
    assert_eq!(
        p(FitParams {
            weight_decay: -1.0,
            ..FitParams::default()
        }),
        ParamError::WeightDecay(-1.0)
    );
    assert_eq!(
        p(FitParams {
            lr_schedule: "multistep".into(),
            milestones: vec![5, 3],
            ..FitParams::default()
        }),
        ParamError::Milestones(vec![5, 3])
    );
    assert!(matches!(
        p(FitParams {
            lr_schedule: "piecewise".into(),
            piecewise: vec![(0.0, 0.1)],
            ..FitParams::default()
        }),
        ParamError::Piecewise(_)
    ));
    let pre = "let d = synthetic(#{ train: 64, test: 10 });\nlet m = mlp([784, 8, 10]);\n";
    // a script trains with every option (and the loss falls)
    let tmp = tempfile::tempdir().unwrap();
    let s = crate::common::script(
        tmp.path(),
        "k.rhai",
        &format!(
            "{pre}let h = m.fit(d.train, #{{ epochs: 3, optimizer: \"sgd\", lr: 0.05, nesterov: true, weight_decay: 5e-4, lr_schedule: \"piecewise\", piecewise: #{{ epochs: [0, 1, 3], lrs: [0.0, 0.1, 0.0] }} }});\nif h.loss[2] >= h.loss[0] {{ throw \"no progress\"; }}\nlet g = m.fit(d.train, #{{ epochs: 2, optimizer: \"adamw\", weight_decay: 0.01, lr_schedule: \"multistep\", milestones: [1] }});\nprint(g.loss);"
        ),
    );
    crate::common::run_in(tmp.path(), &s).success();
    fails(
        &format!("{pre}m.fit(d.train, #{{ lr_schedule: \"piecewise\", piecewise: #{{ epochs: [0, 1] }} }});"),
        "option `piecewise` must be",
        "3:3",
    );
    fails(
        &format!("{pre}m.fit(d.train, #{{ optimizer: \"adam\", nesterov: true }});"),
        "nesterov needs optimizer \"sgd\"",
        "3:3",
    );
}

#[test]
fn convolutions_without_bias_and_augmented_batches() {
    use advlab::nn::{Input, Layer, Weighted};
    let conv = |no_bias| Layer::Conv2d {
        out: 4,
        kernel: 3,
        stride: 1,
        padding: 1,
        opts: Weighted {
            no_bias,
            ..Weighted::default()
        },
    };
    let arch = |no_bias| {
        Arch::sequential(
            Input::Image(1, 6, 6),
            vec![conv(no_bias), Layer::Flatten, Layer::linear(3)],
        )
        .unwrap()
    };
    let a = Model::new(arch(true), &Device::Cpu, 1).unwrap();
    let names: Vec<&str> = a.named_params().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight", "2.weight", "2.bias"]);
    assert!(a
        .arch()
        .torch_module()
        .contains("nn.Conv2d(1, 4, 3, padding=1, bias=False)"));
    // the same weights with a zero bias give the same logits
    let mut tensors: Vec<(String, candle_core::Tensor)> =
        a.named_params().map(|(n, t)| (n.to_string(), t.clone())).collect();
    tensors.push((
        "0.bias".into(),
        candle_core::Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap(),
    ));
    let b = Model::from_tensors(arch(false), tensors, &Device::Cpu).unwrap();
    let x = candle_core::Tensor::rand(0f32, 1f32, (2, 1, 6, 6), &Device::Cpu).unwrap();
    assert_eq!(values(&a.forward(&x).unwrap()), values(&b.forward(&x).unwrap()));

    // augmentation: seeded (the same weights twice), and it changes what is learnt
    let tmp = tempfile::tempdir().unwrap();
    let s = crate::common::script(
        tmp.path(),
        "aug.rhai",
        r#"
let d = synthetic(#{ train: 256, test: 10 });
let run = |aug| { let m = mlp([784, 8, 10], #{ seed: 1 }); m.fit(d.train, #{ epochs: 1, seed: 2, augment: aug }); m.accuracy(d.train) };
let a = run.call([random_crop(#{ padding: 2 }), horizontal_flip()]);
let b = run.call([random_crop(#{ padding: 2 }), horizontal_flip()]);
let c = run.call([]);
print(`a=${a} b=${b} c=${c}`);
if a != b { throw "augmentation is not seeded"; }
if a == c { throw "augmentation changed nothing"; }
let w = sequential([conv2d(#{ out: 2, kernel: 3, bias: false }), flatten(), linear(10)]);
print(w.param_count());
"#,
    );
    crate::common::run_in(tmp.path(), &s)
        .success()
        .stdout(predicates::str::contains("13548"));
    fails(
        "let a = random_crop(#{ padding: 0 });",
        "padding (of random_crop) must be at least 1",
        "1:9",
    );
    fails(
        "let d = synthetic(#{ train: 20, test: 10 });\nlet m = mlp([784, 8, 10]);\nm.fit(d.train, #{ augment: [1] });",
        "element 0 of `augment` is i64",
        "3:3",
    );
}

#[test]
fn gradient_clipping_scales_the_step_to_the_norm() {
    let (f, data) = optim_fixture();
    let step = |clip: Option<f64>| -> f32 {
        let m = start_model(&f);
        let before: Vec<f32> = m.vars().iter().flat_map(|v| values(v.as_tensor())).collect();
        // one full-batch SGD step of rate 1 without momentum: the step is the (clipped) gradient
        let p = FitParams {
            batch_size: 8,
            lr: 1.0,
            optimizer: "sgd".into(),
            momentum: 0.0,
            clip_grad_norm: clip,
            ..FitParams::default()
        }
        .check()
        .unwrap();
        fit(&m, &data, &p).unwrap();
        let after: Vec<f32> = m.vars().iter().flat_map(|v| values(v.as_tensor())).collect();
        before
            .iter()
            .zip(&after)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            .sqrt()
    };
    let free = step(None);
    assert!(free > 0.05, "{free}");
    let clipped = step(Some(0.01));
    assert!((clipped - 0.01).abs() < 1e-4, "the step's norm is the clip: {clipped}");
    // a bound above the norm changes nothing
    assert!((step(Some(10.0)) - free).abs() < 1e-6);
    assert_eq!(
        FitParams {
            clip_grad_norm: Some(0.0),
            ..FitParams::default()
        }
        .check()
        .unwrap_err(),
        ParamError::ClipGradNorm(0.0)
    );
}

#[test]
fn crafting_in_training_mode_uses_the_batch_statistics() {
    use advlab::nn::{Input, Layer, BN_EPS};
    let arch = Arch::sequential(
        Input::Image(1, 8, 8),
        vec![
            Layer::Flatten,
            Layer::linear(12),
            Layer::BatchNorm {
                eps: BN_EPS,
                momentum: 0.1,
                affine: true,
                name: None,
            },
            Layer::Relu,
            Layer::linear(3),
        ],
    )
    .unwrap();
    let m = Model::new(arch, &Device::Cpu, 2).unwrap();
    let x: Vec<f32> = (0..16 * 64).map(|i| ((i as f32) * 0.29).sin().abs()).collect();
    let x = candle_core::Tensor::from_vec(x, (16, 1, 8, 8), &Device::Cpu).unwrap();
    let running = |m: &Model| -> Vec<f32> { m.named_buffers().flat_map(|(_, t)| values(t)).collect() };
    let start = running(&m);
    let t = m.in_training_mode().unwrap();
    assert!(t.is_in_training_mode() && !m.is_in_training_mode());
    // the untracked pass of the training-mode model is the training pass (batch statistics) …
    let a = values(&t.forward(&x).unwrap());
    let moved = running(&m);
    assert_ne!(start, moved, "a training-mode pass moves the shared running statistics");
    let b = values(&m.forward_train(&x).unwrap());
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
    // … while the model itself still evaluates on the running statistics
    let e = values(&m.forward(&x).unwrap());
    assert!(a.iter().zip(&e).any(|(p, q)| (p - q).abs() > 1e-3));
    // dropout: the crafting copy draws its own masks (not the training passes' next ones), the
    // same ones for the same seed
    let dropped = Arch::sequential(
        Input::Image(1, 8, 8),
        vec![
            Layer::Flatten,
            Layer::linear(12),
            Layer::Dropout { p: 0.5 },
            Layer::linear(3),
        ],
    )
    .unwrap();
    let masks = || {
        let m = Model::new(dropped.clone(), &Device::Cpu, 2).unwrap();
        m.reseed(5);
        let t = m.in_training_mode().unwrap();
        (values(&t.forward(&x).unwrap()), values(&m.forward_train(&x).unwrap()))
    };
    let (crafted, trained) = masks();
    assert_ne!(crafted, trained, "crafting and training passes draw different masks");
    assert_eq!(masks().0, crafted, "the same seed, the same crafting masks");
    let bad = FitParams {
        craft_mode: "training".into(),
        ..FitParams::default()
    };
    assert_eq!(
        bad.check().unwrap_err(),
        ParamError::UnknownCraftMode("training".into())
    );
    // PGD training crafts differently in the two modes: other weights after one epoch
    let tmp = tempfile::tempdir().unwrap();
    let s = crate::common::script(
        tmp.path(),
        "c.rhai",
        "let d = synthetic(#{ train: 128, test: 10 });\n\
         let w = [];\n\
         for mode in [\"eval\", \"train\", \"eval\"] {\n\
         \x20   let m = sequential([flatten(), linear(16), batch_norm(), relu(), linear(10)], #{ seed: 1 });\n\
         \x20   let h = m.fit(d.train, #{ epochs: 2, batch_size: 32, craft_mode: mode, defence: pgd_training(#{ eps: 0.1, steps: 2, seed: 1 }) });\n\
         \x20   w.push(h.loss);\n\
         }\n\
         print(`${w[0] == w[2]} ${w[0] == w[1]}`);",
    );
    let out = crate::common::run_in(tmp.path(), &s)
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(String::from_utf8(out).unwrap().trim(), "true false");
}

#[test]
fn model_selection_restores_the_best_evaluated_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let s = crate::common::script(
        tmp.path(),
        "s.rhai",
        "let d = synthetic(#{ train: 300, test: 100, seed: 3 });\n\
         let held = d.train.skip(200);\n\
         let m = mlp([784, 16, 10], #{ seed: 4 });\n\
         let h = m.fit(d.train.take(200), #{ epochs: 6, optimizer: \"sgd\", lr: 0.8, momentum: 0.9, batch_size: 20,\n\
         \x20   eval_data: held, eval_every: 2, eval_attack: fgsm(#{ eps: 0.05 }) });\n\
         print(h.eval_accuracy);\n\
         print(`${h.selected_epoch} ${h.selected_eval_accuracy}`);\n\
         let r = evaluate(m, held, [fgsm(#{ eps: 0.05 })]);\n\
         print(`${r.fgsm}`);",
    );
    let out = crate::common::run_in(tmp.path(), &s)
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    // evaluated at epochs 2, 4 and 6 only
    let col: Vec<f64> = lines[0]
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|v| v.trim().parse::<f64>().unwrap_or(f64::NAN))
        .collect();
    assert_eq!(col.len(), 6, "{out}");
    assert!(
        col.iter().enumerate().all(|(i, v)| v.is_nan() == (i % 2 == 0)),
        "{col:?}"
    );
    let sel: Vec<f64> = lines[1].split(' ').map(|v| v.parse().unwrap()).collect();
    let best = col.iter().cloned().filter(|v| !v.is_nan()).fold(f64::MIN, f64::max);
    assert_eq!(sel[1], best, "{out}");
    assert_eq!(col[sel[0] as usize - 1], best, "{out}");
    // the model ends with the selected epoch's weights: its held-out accuracy is that one
    let now: f64 = lines[2].parse().unwrap();
    assert!((now - best).abs() < 1e-9, "{out}");
    fails(
        "let d = synthetic(#{ train: 64, test: 10 });\nlet m = mlp([784, 8, 10]);\nm.fit(d.train, #{ eval_every: 2 });",
        "need eval_data",
        "3:3",
    );
}
