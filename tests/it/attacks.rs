//! Attack properties, including the pitfalls that broke other libraries.

use crate::common::{max_abs_diff, trained, values};
use advlab::attack::{perturb, Attack, FgsmParams, PgdParams};
use advlab::data::Dataset;
use advlab::eval::{accuracy, evaluate};
use advlab::nn::{Arch, Model};
use advlab::ParamError;
use candle_core::{Device, Tensor};

fn pgd(eps: f64, steps: usize, alpha: Option<f64>, random_start: bool, seed: u64) -> advlab::attack::Pgd {
    PgdParams {
        alpha,
        steps,
        random_start,
        seed,
        ..PgdParams::new(eps)
    }
    .check()
    .unwrap()
}

fn fgsm(eps: f64) -> advlab::attack::Fgsm {
    FgsmParams::new(eps).check().unwrap()
}

fn labels(d: &Dataset) -> Vec<u32> {
    d.labels().to_vec1::<u32>().unwrap()
}

fn assert_feasible(adv: &Dataset, orig: &Dataset, eps: f64) {
    let (lo, hi) = values(adv.images())
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(lo >= 0.0 && hi <= 1.0, "pixels out of [0,1]: [{lo}, {hi}]");
    let d = max_abs_diff(adv.images(), orig.images());
    assert!(d as f64 <= eps + 1e-6, "L∞ distance {d} exceeds eps {eps}");
    assert_eq!(labels(adv), labels(orig), "labels changed");
}

#[test]
fn fgsm_stays_within_eps_and_in_unit_box() {
    let (model, data) = trained();
    for eps in [0.05, 0.3, 1.5] {
        let adv = perturb(&fgsm(eps), model, &data.test).unwrap();
        assert_feasible(&adv, &data.test, eps);
    }
}

#[test]
fn pgd_stays_within_eps_even_with_alpha_above_eps() {
    let (model, data) = trained();
    let test = data.test.take(200).unwrap();
    for (eps, alpha, steps) in [(0.1, 0.5, 7), (0.1, 0.1, 15), (0.3, 0.01, 3), (2.0, 0.7, 4)] {
        for (rs, keep_best) in [(true, true), (false, true), (true, false)] {
            let p = PgdParams {
                alpha: Some(alpha),
                steps,
                random_start: rs,
                seed: 1,
                keep_best,
                ..PgdParams::new(eps)
            };
            let adv = perturb(&p.check().unwrap(), model, &test).unwrap();
            assert_feasible(&adv, &test, eps);
        }
    }
}

#[test]
fn pgd_is_at_least_as_strong_as_fgsm() {
    let (model, data) = trained();
    for eps in [0.05, 0.1, 0.2] {
        let f = accuracy(model, &perturb(&fgsm(eps), model, &data.test).unwrap()).unwrap();
        let p = accuracy(
            model,
            &perturb(&pgd(eps, 20, None, true, 1), model, &data.test).unwrap(),
        )
        .unwrap();
        assert!(p <= f, "eps {eps}: pgd accuracy {p} > fgsm accuracy {f}");
    }
    // and the attacks do something: at eps 0.2 the trained model loses most of its accuracy
    let clean = accuracy(model, &data.test).unwrap();
    let p = accuracy(
        model,
        &perturb(&pgd(0.2, 20, None, true, 1), model, &data.test).unwrap(),
    )
    .unwrap();
    assert!(clean > 0.9 && p < clean - 0.3, "clean {clean}, pgd {p}");
}

#[test]
fn eps_zero_returns_the_input_bit_exactly() {
    let (model, data) = trained();
    let attacks: [Box<dyn Attack>; 2] = [Box::new(fgsm(0.0)), Box::new(pgd(0.0, 5, None, true, 1))];
    for a in attacks {
        let adv = perturb(a.as_ref(), model, &data.test).unwrap();
        let (x, y) = (values(adv.images()), values(data.test.images()));
        assert!(
            x.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{a} changed the input"
        );
        assert_eq!(accuracy(model, &adv).unwrap(), accuracy(model, &data.test).unwrap());
    }
}

#[test]
fn same_seed_same_tensor_other_seed_other_tensor() {
    let (model, data) = trained();
    let test = data.test.take(100).unwrap();
    let a = perturb(&pgd(0.1, 5, None, true, 42), model, &test).unwrap();
    let b = perturb(&pgd(0.1, 5, None, true, 42), model, &test).unwrap();
    assert_eq!(values(a.images()), values(b.images()));
    let c = perturb(&pgd(0.1, 5, None, true, 43), model, &test).unwrap();
    assert_ne!(values(a.images()), values(c.images()));
    assert_feasible(&c, &test, 0.1);
}

#[test]
fn clipping_after_random_start_and_every_step_with_saturated_pixels() {
    let (model, _) = trained();
    // images that are all 0, all 1, and half-and-half: every pixel sits on the box boundary
    let n = 3;
    let mut px = vec![0f32; n * 784];
    px[784..2 * 784].iter_mut().for_each(|v| *v = 1.0);
    px[2 * 784..2 * 784 + 392].iter_mut().for_each(|v| *v = 1.0);
    let images = Tensor::from_vec(px, (n, 1, 28, 28), &Device::Cpu).unwrap();
    let labels = Tensor::from_vec(vec![0u32, 1, 2], n, &Device::Cpu).unwrap();
    let data = Dataset::new(images, labels, 10, "saturated").unwrap();
    for eps in [0.3, 1.5] {
        for steps in [1, 3] {
            let adv = perturb(&pgd(eps, steps, Some(eps), true, 9), model, &data).unwrap();
            assert_feasible(&adv, &data, eps);
        }
        assert_feasible(&perturb(&fgsm(eps), model, &data).unwrap(), &data, eps);
    }
}

/// A one-layer model (logits = W x + b) whose first 100 input columns are zero.
fn linear_model() -> (Model, Vec<f32>, Vec<f32>) {
    let mut w = vec![0f32; 10 * 784];
    for (i, v) in w.iter_mut().enumerate() {
        let col = i % 784;
        if col >= 100 {
            *v = (((i * 7919) % 1000) as f32 / 1000.0 - 0.5) * 0.2;
        }
    }
    let b: Vec<f32> = (0..10).map(|k| k as f32 * 0.01).collect();
    let tensors = vec![
        (
            "1.weight".to_string(),
            Tensor::from_vec(w.clone(), (10, 784), &Device::Cpu).unwrap(),
        ),
        (
            "1.bias".to_string(),
            Tensor::from_vec(b.clone(), 10, &Device::Cpu).unwrap(),
        ),
    ];
    (
        Model::from_tensors(Arch::mlp(vec![784, 10]).unwrap(), tensors, &Device::Cpu).unwrap(),
        w,
        b,
    )
}

#[test]
fn sign_of_zero_gradient_is_zero_so_such_pixels_do_not_move() {
    let (model, _, _) = linear_model();
    let data = trained().1.test.take(50).unwrap();
    let x = values(data.images());
    for adv in [
        perturb(&fgsm(0.2), &model, &data).unwrap(),
        perturb(&pgd(0.2, 5, None, false, 0), &model, &data).unwrap(),
    ] {
        let a = values(adv.images());
        for s in 0..50 {
            for p in 0..100 {
                let i = s * 784 + p;
                assert_eq!(
                    a[i].to_bits(),
                    x[i].to_bits(),
                    "pixel {p} of sample {s} has zero gradient but moved"
                );
            }
        }
        assert!(a.iter().zip(&x).any(|(u, v)| u != v), "the other pixels should move");
    }
}

#[test]
fn fgsm_uses_cross_entropy_on_logits() {
    // For logits z = W x + b, d CE / d x = Wᵀ (softmax(z) − onehot(y)). A loss on probabilities
    // (a double softmax) has a different gradient and a different sign pattern.
    let (model, w, b) = linear_model();
    let data = trained().1.test.take(20).unwrap();
    let eps = 0.1f32;
    let adv = values(perturb(&fgsm(eps as f64), &model, &data).unwrap().images());
    let x = values(data.images());
    let y = labels(&data);
    for s in 0..20 {
        let xs = &x[s * 784..(s + 1) * 784];
        let z: Vec<f32> = (0..10)
            .map(|k| b[k] + (0..784).map(|j| w[k * 784 + j] * xs[j]).sum::<f32>())
            .collect();
        let m = z.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
        let sum: f32 = e.iter().sum();
        let delta: Vec<f32> = (0..10)
            .map(|k| e[k] / sum - if k as u32 == y[s] { 1.0 } else { 0.0 })
            .collect();
        let mut agree = 0;
        for j in 0..784 {
            let g: f32 = (0..10).map(|k| w[k * 784 + j] * delta[k]).sum();
            let expect = (xs[j] + eps * (g > 0.0) as i32 as f32 - eps * (g < 0.0) as i32 as f32).clamp(0.0, 1.0);
            if (adv[s * 784 + j] - expect).abs() < 1e-6 {
                agree += 1;
            }
        }
        assert!(
            agree >= 780,
            "sample {s}: only {agree}/784 pixels match the logit-loss FGSM"
        );
    }
}

#[test]
fn attacking_a_batch_equals_attacking_each_sample_alone() {
    let (model, data) = trained();
    let test = data.test.take(16).unwrap();
    let attacks: [Box<dyn Attack>; 3] = [
        Box::new(fgsm(0.1)),
        Box::new(pgd(0.1, 5, None, false, 0)),
        Box::new(pgd(0.1, 5, None, true, 5)),
    ];
    for a in attacks {
        let whole = values(perturb(a.as_ref(), model, &test).unwrap().images());
        for i in 0..16 {
            let one = values(
                perturb(a.as_ref(), model, &test.subset(&[i]).unwrap())
                    .unwrap()
                    .images(),
            );
            let part = &whole[i * 784..(i + 1) * 784];
            let same = part.iter().zip(&one).filter(|(u, v)| (*u - *v).abs() <= 1e-6).count();
            assert!(
                same >= 782,
                "{a}: sample {i} differs alone vs in a batch ({same}/784 equal)"
            );
        }
    }
}

#[test]
fn robust_accuracy_counts_clean_mistakes_as_not_robust() {
    let (model, data) = trained();
    let pred = advlab::eval::predict(model, &data.test)
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    let truth = labels(&data.test);
    let wrong: Vec<usize> = (0..pred.len()).filter(|&i| pred[i] != truth[i]).collect();
    assert!(!wrong.is_empty(), "the test model should make some mistakes");
    let misclassified = data.test.subset(&wrong).unwrap();
    let eval = evaluate(model, &misclassified, &[&fgsm(0.1), &pgd(0.1, 10, None, true, 1)]).unwrap();
    assert_eq!(eval.rows[0], ("clean".to_string(), 0.0));
    for (name, acc) in &eval.rows[1..] {
        assert!(*acc <= 0.05, "{name}: {acc} of the clean mistakes counted as robust");
    }
    // evaluate's clean row is accuracy(), and keys follow the attack names, made unique
    let eval = evaluate(model, &data.test, &[&fgsm(0.1), &fgsm(0.2)]).unwrap();
    let keys: Vec<&str> = eval.rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["clean", "fgsm", "fgsm_2"]);
    assert_eq!(eval.rows[0].1, accuracy(model, &data.test).unwrap());
    assert!(eval.rows[2].1 <= eval.rows[0].1);
}

#[test]
fn parameter_rules_each_have_their_error() {
    assert_eq!(
        FgsmParams::new(-0.1).check().unwrap_err(),
        ParamError::EpsNegative(-0.1)
    );
    assert!(matches!(
        FgsmParams::new(f64::NAN).check().unwrap_err(),
        ParamError::EpsNegative(_)
    ));
    assert_eq!(
        FgsmParams {
            batch_size: 0,
            ..FgsmParams::new(0.1)
        }
        .check()
        .unwrap_err(),
        ParamError::BatchSizeZero
    );
    assert_eq!(
        PgdParams {
            steps: 0,
            ..PgdParams::new(0.1)
        }
        .check()
        .unwrap_err(),
        ParamError::StepsZero
    );
    assert_eq!(
        PgdParams {
            alpha: Some(0.0),
            ..PgdParams::new(0.1)
        }
        .check()
        .unwrap_err(),
        ParamError::AlphaNotPositive(0.0)
    );
    assert_eq!(PgdParams::new(-1.0).check().unwrap_err(), ParamError::EpsNegative(-1.0));
    // the default step size is 2.5·eps/steps
    let p = PgdParams {
        steps: 20,
        ..PgdParams::new(0.5)
    }
    .check()
    .unwrap();
    assert!((p.alpha() - 2.5 * 0.5 / 20.0).abs() < 1e-12);
    assert_eq!(p.params()["random_start"], true);
}
