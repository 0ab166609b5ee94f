//! Stochastic LWTA (Panousis et al. 2021): the fused op against plain candle ops, one winner
//! per block at test time drawn from softmax(h), gradients of the relaxed training pass,
//! learning, passes, seeds and checkpoints.

use crate::common::{advlab, max_abs_diff, round_trip, script, values};
use advlab::data::{synthetic, SyntheticParams};
use advlab::eval::accuracy;
use advlab::nn::lwta::{lwta, lwta_candle, Draw};
use advlab::nn::{Arch, Lwta, Model};
use advlab::train::{fit, FitParams};
use candle_core::{Device, Tensor, Var};
use predicates::str::contains;

fn draw(units: usize, hard: bool, key: u64) -> Draw {
    Draw {
        units,
        temperature: 0.67,
        hard,
        key,
    }
}

/// Nonzero count of every block of `y` (channels in dimension 1, blocks of `u`).
fn winners_per_block(y: &Tensor, u: usize) -> Vec<usize> {
    let d = y.dims();
    let inner: usize = d[2..].iter().product();
    let v = values(y);
    let blocks = d[0] * d[1] / u;
    let mut out = Vec::new();
    for b in 0..blocks {
        for p in 0..inner {
            out.push((0..u).filter(|j| v[(b * u + j) * inner + p] != 0.0).count());
        }
    }
    out
}

#[test]
fn fused_op_equals_plain_candle_ops_with_gradients() {
    for (shape, u) in [(vec![5, 8], 2), (vec![3, 6, 4, 5], 3), (vec![2, 4, 3, 3], 4)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1f32, shape.as_slice(), &Device::Cpu).unwrap()).unwrap();
        for hard in [false, true] {
            let d = draw(u, hard, 77);
            let (a, b) = (lwta(x.as_tensor(), d).unwrap(), lwta_candle(x.as_tensor(), d).unwrap());
            assert!(max_abs_diff(&a, &b) < 1e-6, "{shape:?} hard={hard}: outputs differ");
            // a weighted sum, so that the gradient depends on every output
            let w = Tensor::randn(0f32, 1f32, shape.as_slice(), &Device::Cpu).unwrap();
            let ga = (a * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let (ga, gb) = (ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap());
            let diff = max_abs_diff(ga, gb);
            assert!(diff < 1e-5, "{shape:?} hard={hard}: gradients differ by {diff}");
            assert!(values(ga).iter().any(|g| g.abs() > 1e-3));
        }
        // another key draws other winners
        let (a, c) = (
            lwta(x.as_tensor(), draw(u, true, 1)).unwrap(),
            lwta(x.as_tensor(), draw(u, true, 2)).unwrap(),
        );
        assert_ne!(values(&a), values(&c));
    }
}

#[test]
fn exactly_one_winner_per_block_at_test_time_drawn_from_the_softmax() {
    let x = Tensor::randn(0f32, 1f32, (16, 12, 7, 7), &Device::Cpu).unwrap();
    for u in [2, 3, 4] {
        let y = lwta(&x, draw(u, true, 5)).unwrap();
        assert!(winners_per_block(&y, u).iter().all(|&w| w == 1), "U = {u}");
        // the winner passes its value unchanged
        let (xv, yv) = (values(&x), values(&y));
        assert!(yv.iter().zip(&xv).all(|(y, x)| *y == 0.0 || y == x));
        // relaxed winners: weights in [0, 1] summing to 1 in every block, mostly not one-hot
        let r = lwta(&x, draw(u, false, 5)).unwrap();
        let xi: Vec<f32> = values(&r).iter().zip(&xv).map(|(r, x)| r / x).collect();
        assert!(xi.iter().all(|w| (0.0..=1.0).contains(w)));
        let inner = 49;
        for b in 0..16 * 12 / u {
            for p in 0..inner {
                let sum: f32 = (0..u).map(|j| xi[(b * u + j) * inner + p]).sum();
                assert!((sum - 1.0).abs() < 1e-4, "block weights sum to {sum}");
            }
        }
        let inside = xi.iter().filter(|w| **w > 0.01 && **w < 0.99).count();
        assert!(
            inside > xi.len() / 2,
            "only {inside} of {} relaxed weights are inside (0, 1)",
            xi.len()
        );
    }
    // unit 1 of a block wins with probability softmax([1, 1 + ln 3])₁ = 3/4
    let n = 40_000;
    let h: Vec<f32> = (0..n).flat_map(|_| [1.0f32, 1.0 + 3f32.ln()]).collect();
    let h = Tensor::from_vec(h, (n, 2), &Device::Cpu).unwrap();
    let y = values(&lwta(&h, draw(2, true, 9)).unwrap());
    let second = (0..n).filter(|i| y[2 * i] == 0.0).count() as f64 / n as f64;
    assert!(
        (second - 0.75).abs() < 0.01,
        "unit 1 won {second} of the draws, want 0.75"
    );
    // through a model: identity layers show the hidden competition in the logits
    let eye = Tensor::eye(6, candle_core::DType::F32, &Device::Cpu).unwrap();
    let zeros = Tensor::zeros(6, candle_core::DType::F32, &Device::Cpu).unwrap();
    let arch = Arch::lwta_mlp(vec![6, 6, 6], Lwta::default()).unwrap();
    let m = Model::from_tensors(
        arch,
        vec![
            ("1.weight".into(), eye.clone()),
            ("1.bias".into(), zeros.clone()),
            ("3.weight".into(), eye),
            ("3.bias".into(), zeros),
        ],
        &Device::Cpu,
    )
    .unwrap();
    let x = Tensor::rand(0.5f32, 1.5f32, (50, 1, 2, 3), &Device::Cpu).unwrap();
    let test = m.forward(&x).unwrap();
    assert!(winners_per_block(&test, 2).iter().all(|&w| w == 1));
    let train = m.forward_train(&x).unwrap();
    assert!(values(&train).iter().all(|&v| v != 0.0), "training winners are relaxed");
}

#[test]
fn the_relaxed_training_pass_has_gradients_and_the_models_learn() {
    let data = synthetic(
        &SyntheticParams {
            train: 2000,
            test: 300,
            seed: 8,
        },
        &Device::Cpu,
    )
    .unwrap();
    let mlp = Model::new(
        Arch::lwta_mlp(vec![784, 128, 64, 10], Lwta::default()).unwrap(),
        &Device::Cpu,
        1,
    )
    .unwrap();
    let cnn = Model::new(
        Arch::lwta_cnn([1, 28, 28], 10, Lwta::default()).unwrap(),
        &Device::Cpu,
        1,
    )
    .unwrap();
    for (m, epochs, bar) in [(&mlp, 3, 0.7), (&cnn, 1, 0.4)] {
        let x = data.train.images().narrow(0, 0, 32).unwrap();
        let y = data.train.labels().narrow(0, 0, 32).unwrap();
        let loss = candle_nn::loss::cross_entropy(&m.forward_train(&x).unwrap(), &y).unwrap();
        let grads = loss.backward().unwrap();
        for (name, t) in m.named_params() {
            let g = grads
                .get(t)
                .unwrap_or_else(|| panic!("{}: no gradient for {name}", m.arch()));
            assert!(
                values(g).iter().any(|v| v.abs() > 0.0),
                "{}: zero gradient for {name}",
                m.arch()
            );
        }
        let p = FitParams {
            epochs,
            seed: 8,
            ..FitParams::default()
        }
        .check()
        .unwrap();
        fit(m, &data.train, &p).unwrap();
        let acc = accuracy(m, &data.test).unwrap();
        eprintln!("{}: test accuracy {acc:.3}", m.arch());
        assert!(acc > bar, "{}: test accuracy {acc} (chance 0.1)", m.arch());
    }
    // averaging passes: predicting from 8 passes is at least as accurate, give or take noise
    let one = accuracy(&mlp, &data.test).unwrap();
    let eight = accuracy(&mlp.with_passes(8).unwrap(), &data.test).unwrap();
    assert!(eight >= one - 0.03, "8 passes {eight} against 1 pass {one}");
}

#[test]
fn passes_average_the_softmax_and_seeds_reproduce() {
    let arch = Arch::lwta_mlp(vec![784, 32, 10], Lwta::default()).unwrap();
    let m = Model::new(arch.clone(), &Device::Cpu, 4).unwrap();
    let x = Tensor::rand(0f32, 1f32, (6, 1, 28, 28), &Device::Cpu).unwrap();
    let four = m.with_passes(4).unwrap();
    assert_eq!(four.arch().passes(), 4);
    assert!(four.arch().to_string().contains("predicting from 4 passes"));
    four.reseed(3);
    let avg = four.forward(&x).unwrap();
    m.reseed(3);
    let probs: Vec<Tensor> = (0..4)
        .map(|_| candle_nn::ops::softmax(&m.forward(&x).unwrap(), 1).unwrap())
        .collect();
    let mean = (Tensor::stack(&probs, 0).unwrap().sum(0).unwrap() / 4.0).unwrap();
    let d = max_abs_diff(&candle_nn::ops::softmax(&avg, 1).unwrap(), &mean);
    assert!(
        d < 1e-5,
        "softmax of the averaged logits differs from the mean softmax by {d}"
    );
    // with_passes shares the weights
    assert_eq!(
        values(four.named_params().next().unwrap().1),
        values(m.named_params().next().unwrap().1)
    );
    // seeds
    let (a, b, c) = (
        Model::new(arch.clone(), &Device::Cpu, 4).unwrap(),
        Model::new(arch.clone(), &Device::Cpu, 4).unwrap(),
        Model::new(arch.clone(), &Device::Cpu, 4).unwrap(),
    );
    c.reseed(99);
    let ya = values(&a.forward(&x).unwrap());
    assert_eq!(ya, values(&b.forward(&x).unwrap()));
    assert_ne!(ya, values(&c.forward(&x).unwrap()));
    assert_ne!(ya, values(&a.forward(&x).unwrap()), "a second pass draws other winners");
    // checkpoints
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("l.safetensors");
    let cnn = Model::new(
        Arch::lwta_cnn(
            [3, 32, 32],
            10,
            Lwta {
                units_per_block: 4,
                temperature: 0.5,
                passes: 2,
                ibp: None,
            },
        )
        .unwrap(),
        &Device::Cpu,
        2,
    )
    .unwrap();
    let xc = Tensor::rand(0f32, 1f32, (3, 3, 32, 32), &Device::Cpu).unwrap();
    round_trip(&cnn, &path, &xc, 1);
    let torch = cnn.arch().torch_module();
    assert!(
        torch.contains("class LWTA(nn.Module)")
            && torch.contains("nn.Conv2d(3, 32, 3, padding=1), LWTA(4, 0.5), nn.MaxPool2d(2)")
            && torch.contains("nn.Linear(4096, 128), LWTA(4, 0.5), nn.Linear(128, 10)")
            && torch.contains("range(2)"),
        "{torch}"
    );
}

#[test]
fn lwta_parameters_are_checked() {
    let l = Lwta::default();
    let e = Arch::lwta_mlp(vec![784, 33, 10], l).unwrap_err().to_string();
    assert!(e.contains("blocks of units_per_block = 2") && e.contains("33"), "{e}");
    let one = Lwta {
        units_per_block: 1,
        ..l
    };
    assert!(Arch::lwta_mlp(vec![784, 32, 10], one)
        .unwrap_err()
        .to_string()
        .contains("at least 2"));
    let cold = Lwta { temperature: 0.0, ..l };
    assert!(Arch::lwta_mlp(vec![784, 32, 10], cold)
        .unwrap_err()
        .to_string()
        .contains("temperature"));
    let none = Lwta { passes: 0, ..l };
    assert!(Arch::lwta_cnn([1, 28, 28], 10, none).is_err());
    let three = Lwta {
        units_per_block: 3,
        ..l
    };
    assert!(Arch::lwta_cnn([1, 28, 28], 10, three).is_err());
    let plain = Model::new(Arch::cnn(), &Device::Cpu, 0).unwrap();
    assert!(plain
        .with_passes(2)
        .unwrap_err()
        .to_string()
        .contains("only applies to stochastic LWTA"));
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "l.rhai",
        r#"
let m = lwta_mlp(#{ layers: [784, 64, 10], units_per_block: 4, passes: 1, seed: 1 });
let m3 = m.with_passes(3);
print(`${m.passes} ${m3.passes}`);
print(m3.arch);
print(lwta_cnn(#{ input: [3, 32, 32] }).torch_module());
"#,
    );
    advlab()
        .arg("run")
        .arg(&s)
        .assert()
        .success()
        .stdout(contains("1 3"))
        .stdout(contains(
            "lwta_mlp([784, 64, 10]; blocks of 4 units, temperature 0.67, predicting from 3 passes)",
        ))
        .stdout(contains("nn.Linear(4096, 128), LWTA(2, 0.67)"));
    let bad = script(tmp.path(), "b.rhai", "lwta_mlp(#{ units_per_block: 2 });");
    advlab()
        .arg("run")
        .arg(&bad)
        .assert()
        .failure()
        .stderr(contains("option `layers` is required"));
}

#[test]
fn the_stochastic_models_script_runs_quick() {
    let tmp = tempfile::tempdir().unwrap();
    advlab()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .arg("scripts/stochastic_models.rhai")
        .arg("quick=true")
        .arg("--out")
        .arg(tmp.path())
        .assert()
        .success();
    let csv = std::fs::read_to_string(tmp.path().join("stochastic_models/quick/results.csv")).unwrap();
    // cnn, two PNI models, LWTA from 1 and from 4 passes
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(
        csv.contains("cnn + PNI activations") && csv.contains("lwta_cnn"),
        "{csv}"
    );
}
