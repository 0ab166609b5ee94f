//! Input-time defences (seed 003): what each transform computes, defended models attacked end
//! to end, EOT and BPDA against the naive attack, the robustness checks, seeds, and errors.

use crate::common::{max_abs_diff, run_in, script, script_fails, trained, values};
use crate::suite::{csv_rows, num, reproduce};
use advlab::attack::{perturb, Attack, PgdParams};
use advlab::data::{synthetic, Dataset, SyntheticParams};
use advlab::defence::{
    apply_to, median_filter, AeFitParams, Autoencoder, AutoencoderKind, BitDepth, Downsample, GaussianNoise,
    MedianSmoothing, PcaChoice, PcaProjection, Pipeline, Transform, UniformNoise,
};
use advlab::eval::{accuracy, evaluate, report, robustness_checks, ChecksParams, Status};
use advlab::nn::Model;
use advlab::train::{fit, FitParams};
use advlab::ParamError;
use candle_core::{Device, Tensor, Var};
use predicates::str::contains;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::Arc;

fn images(v: Vec<f32>, n: usize, h: usize, w: usize) -> Tensor {
    Tensor::from_vec(v, (n, 1, h, w), &Device::Cpu).unwrap()
}

fn dataset(x: Tensor) -> Dataset {
    let n = x.dim(0).unwrap();
    let labels = Tensor::from_vec(vec![0u32; n], n, &Device::Cpu).unwrap();
    Dataset::new(x, labels, 10, "fixture").unwrap()
}

/// The transform applied once, from its own seed.
fn run(t: &dyn Transform, x: &Tensor) -> Tensor {
    let mut rng = StdRng::seed_from_u64(t.seed().unwrap_or(0));
    t.apply(x, &mut rng).unwrap()
}

/// The gradient of `sum(t(x))` with respect to `x` (zeros when none reaches it).
fn input_grad(t: &dyn Transform, x: &Tensor) -> Vec<f32> {
    let v = Var::from_tensor(x).unwrap();
    let y = run(t, v.as_tensor());
    let grads = y.sum_all().unwrap().backward().unwrap();
    match grads.get(v.as_tensor()) {
        Some(g) => values(g),
        None => vec![0.0; x.elem_count()],
    }
}

fn pgd(eps: f64, steps: usize, eot: usize, seed: u64) -> advlab::attack::Pgd {
    PgdParams {
        steps,
        eot,
        seed,
        ..PgdParams::new(eps)
    }
    .check()
    .unwrap()
}

fn robust(m: &Model, a: &dyn Attack, d: &Dataset) -> f64 {
    accuracy(m, &perturb(a, m, d).unwrap()).unwrap()
}

#[test]
fn pca_projection_is_the_identity_on_the_span_it_was_fitted_on() {
    // 300 points of 16 features in a 3-dimensional affine subspace
    let mut rng = StdRng::seed_from_u64(1);
    let (d, k) = (16, 3);
    let mean: Vec<f32> = (0..d).map(|_| rng.random_range(0.3..0.7)).collect();
    let axes: Vec<Vec<f32>> = (0..k)
        .map(|_| (0..d).map(|_| rng.random_range(-0.1..0.1)).collect())
        .collect();
    let point = |rng: &mut StdRng| -> Vec<f32> {
        let c: Vec<f32> = (0..k).map(|_| rng.random_range(-1.0..1.0)).collect();
        (0..d)
            .map(|j| mean[j] + (0..k).map(|i| c[i] * axes[i][j]).sum::<f32>())
            .collect()
    };
    let fit_set: Vec<f32> = (0..300).flat_map(|_| point(&mut rng)).collect();
    let held_out = dataset(images(fit_set, 300, 4, 4));
    let fresh = images((0..50).flat_map(|_| point(&mut rng)).collect(), 50, 4, 4);
    for choice in [PcaChoice::Components(3), PcaChoice::Variance(0.999)] {
        let pca = PcaProjection::fit(&held_out, choice).unwrap();
        assert_eq!(pca.components(), 3, "{choice:?}: {pca}");
        assert!(pca.explained_variance() > 0.9999, "{pca}");
        let y = run(&pca, &fresh);
        assert!(
            max_abs_diff(&y, &fresh) < 1e-4,
            "not the identity: {}",
            max_abs_diff(&y, &fresh)
        );
    }
    // off the span: the projection moves the point, and projecting twice changes nothing more
    let pca = PcaProjection::fit(&held_out, PcaChoice::Components(2)).unwrap();
    let y = run(&pca, &fresh);
    assert!(max_abs_diff(&y, &fresh) > 1e-3);
    assert!(max_abs_diff(&run(&pca, &y), &y) < 1e-5, "not a projection");
    // differentiable: the gradient of sum(P x) is 1ᵀP, not zero
    assert!(input_grad(&pca, &fresh).iter().any(|g| g.abs() > 1e-3));
    let err = pca.check_input(&[1, 1, 28, 28]).unwrap_err().to_string();
    assert!(err.contains("fitted on 16 features per sample"), "{err}");
    assert_eq!(
        PcaProjection::fit(&held_out, PcaChoice::Components(17))
            .unwrap_err()
            .to_string(),
        ParamError::PcaComponents {
            components: 17,
            features: 16
        }
        .to_string()
    );
}

#[test]
fn bit_depth_rounds_to_two_to_the_bits_levels() {
    let ramp = images((0..1000).map(|i| i as f32 / 999.0).collect(), 1, 10, 100);
    for bits in [1, 2, 3, 5] {
        let t = BitDepth::new(bits, true).unwrap();
        let top = ((1 << bits) - 1) as f32;
        let mut levels: Vec<f32> = values(&run(&t, &ramp));
        for v in &levels {
            assert!(
                (v * top - (v * top).round()).abs() < 1e-5,
                "{v} is not a level of {bits} bits"
            );
        }
        levels.sort_by(f32::total_cmp);
        levels.dedup();
        assert_eq!(levels.len(), 1 << bits, "{bits} bits: {levels:?}");
        assert_eq!((levels[0], levels[levels.len() - 1]), (0.0, 1.0));
    }
    // BPDA: the backward pass is the identity; without it there is no gradient at all
    let x = images(vec![0.3; 16], 1, 4, 4);
    assert!(input_grad(&BitDepth::new(3, true).unwrap(), &x)
        .iter()
        .all(|&g| g == 1.0));
    assert!(input_grad(&BitDepth::new(3, false).unwrap(), &x)
        .iter()
        .all(|&g| g == 0.0));
}

#[test]
fn median_smoothing_of_known_images() {
    // a 3×3 ramp, border replicated: worked by hand
    let ramp: Vec<f32> = (1..=9).map(|v| v as f32 / 10.0).collect();
    let out = median_filter(&ramp, 3, 3, 3);
    let expected: Vec<f32> = [2, 3, 3, 4, 5, 6, 7, 7, 8].iter().map(|&v| v as f32 / 10.0).collect();
    assert_eq!(out, expected);
    // an isolated bright pixel vanishes, a 3×3 bright block keeps its centre and the corners
    // of the block go dark
    let mut spike = vec![0f32; 49];
    spike[3 * 7 + 3] = 1.0;
    let t = MedianSmoothing::new(3, true).unwrap();
    assert!(values(&run(&t, &images(spike, 1, 7, 7))).iter().all(|&v| v == 0.0));
    let mut block = vec![0f32; 49];
    for i in 2..5 {
        for j in 2..5 {
            block[i * 7 + j] = 1.0;
        }
    }
    let y = values(&run(&t, &images(block, 1, 7, 7)));
    assert_eq!(y[3 * 7 + 3], 1.0);
    assert_eq!(y[2 * 7 + 2], 0.0, "a corner sees 4 of 9 bright pixels");
    assert_eq!(y[2 * 7 + 3], 1.0, "an edge centre sees 6 of 9");
    // size 1 is the identity; the BPDA gradient is the identity
    let x = images((0..49).map(|i| (i % 5) as f32 / 4.0).collect(), 1, 7, 7);
    assert_eq!(values(&run(&MedianSmoothing::new(1, true).unwrap(), &x)), values(&x));
    assert!(input_grad(&t, &x).iter().all(|&g| g == 1.0));
}

#[test]
fn downsampling_keeps_constant_images_and_removes_fine_detail() {
    let flat = images(vec![0.37; 2 * 28 * 28], 2, 28, 28);
    for factor in [0.5, 0.25, 0.3, 1.0] {
        let t = Downsample::new(factor).unwrap();
        assert!(max_abs_diff(&run(&t, &flat), &flat) < 1e-6, "factor {factor}");
    }
    // a one-pixel checkerboard averages to flat grey at half size
    let board = images((0..784).map(|i| ((i / 28 + i % 28) % 2) as f32).collect(), 1, 28, 28);
    let y = values(&run(&Downsample::new(0.5).unwrap(), &board));
    assert!(y.iter().all(|v| (v - 0.5).abs() < 1e-6), "{:?}", &y[..8]);
    // factor 1 is the identity; the transform is differentiable
    let x = images((0..784).map(|i| (i % 7) as f32 / 6.0).collect(), 1, 28, 28);
    assert!(max_abs_diff(&run(&Downsample::new(1.0).unwrap(), &x), &x) < 1e-6);
    let g = input_grad(&Downsample::new(0.25).unwrap(), &x);
    assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|v| v.abs() > 0.1));
}

#[test]
fn noise_is_seeded_bounded_and_fresh_at_every_pass() {
    let x = images(vec![0.5; 4 * 28 * 28], 4, 28, 28);
    let pipeline = |t: Arc<dyn Transform>| Pipeline::new(vec![t]).unwrap();
    for t in [
        Arc::new(UniformNoise::new(0.2, 5).unwrap()) as Arc<dyn Transform>,
        Arc::new(GaussianNoise::new(0.1, 5).unwrap()),
    ] {
        let (a, b) = (pipeline(t.clone()), pipeline(t.clone()));
        let (a1, a2) = (a.apply(&x).unwrap(), a.apply(&x).unwrap());
        assert!(max_abs_diff(&a1, &a2) > 0.05, "{t}: the same noise twice");
        assert_eq!(values(&a1), values(&b.apply(&x).unwrap()), "{t}: not seeded");
        assert_eq!(values(&a2), values(&b.apply(&x).unwrap()));
        let other = pipeline(Arc::new(UniformNoise::new(0.2, 6).unwrap()));
        assert!(max_abs_diff(&a1, &other.apply(&x).unwrap()) > 0.05);
    }
    let u = values(&run(&UniformNoise::new(0.2, 1).unwrap(), &x));
    assert!(u.iter().all(|v| (v - 0.5).abs() <= 0.2 + 1e-6));
    let g = values(&run(&GaussianNoise::new(0.1, 1).unwrap(), &x));
    let sd = (g.iter().map(|v| (v - 0.5) * (v - 0.5)).sum::<f32>() / g.len() as f32).sqrt();
    assert!((sd - 0.1).abs() < 0.01, "std {sd}");
    // clipped to [0, 1] where the image is black or white
    let edges = images((0..784).map(|i| (i % 2) as f32).collect(), 1, 28, 28);
    for t in [
        Arc::new(GaussianNoise::new(0.5, 2).unwrap()) as Arc<dyn Transform>,
        Arc::new(UniformNoise::new(0.5, 2).unwrap()),
    ] {
        let y = values(&run(t.as_ref(), &edges));
        assert!(y.iter().all(|v| (0.0..=1.0).contains(v)), "{t}");
    }
}

#[test]
fn a_defended_model_is_attackable_end_to_end_and_trains_its_network() {
    let (model, data) = trained();
    let test = data.test.take(300).unwrap();
    let held_out = data.train.take(1000).unwrap();
    let pca = PcaProjection::fit(&held_out, PcaChoice::Variance(0.99)).unwrap();
    let transforms: Vec<Arc<dyn Transform>> = vec![
        Arc::new(pca),
        Arc::new(Downsample::new(0.5).unwrap()),
        Arc::new(BitDepth::new(4, true).unwrap()),
        Arc::new(MedianSmoothing::new(2, true).unwrap()),
    ];
    let defended = model.defended(transforms).unwrap();
    assert_eq!(defended.transforms().len(), 4);
    let text = defended.to_string();
    assert!(
        text.contains("pca_projection(") && text.contains("→ bit_depth(bits=4"),
        "{text}"
    );
    let clean = accuracy(&defended, &test).unwrap();
    assert!(clean > 0.7, "clean accuracy through the transforms {clean}");
    let e = evaluate(&defended, &test, &[&pgd(0.2, 10, 1, 1)]).unwrap();
    assert!(e.rows[1].1 < clean - 0.4, "PGD through the defence: {:?}", e.rows);
    let r = report(&defended, &test, &[&pgd(0.2, 10, 1, 1)]).unwrap();
    assert!(r.attacks[0].linf_median <= 0.2 + 1e-6);

    // fit on a defended model trains the shared network (through the transforms)
    let net = model.deep_clone().unwrap();
    let before = values(net.named_params().next().unwrap().1);
    let noisy = net
        .defended(vec![Arc::new(GaussianNoise::new(0.1, 3).unwrap())])
        .unwrap();
    let p = FitParams {
        seed: 3,
        ..FitParams::default()
    }
    .check()
    .unwrap();
    fit(&noisy, &data.train.take(500).unwrap(), &p).unwrap();
    assert_ne!(
        values(net.named_params().next().unwrap().1),
        before,
        "the network did not train"
    );
    assert!(noisy.network().unwrap().transforms().is_empty());
    // a checkpoint holds a network: a defended model is refused with a way out
    let tmp = tempfile::tempdir().unwrap();
    let err = advlab::nn::save_model(&noisy, &tmp.path().join("m.safetensors"), &serde_json::Value::Null).unwrap_err();
    assert!(err.to_string().contains("model.network()"), "{err}");
    advlab::nn::save_model(
        &noisy.network().unwrap(),
        &tmp.path().join("m.safetensors"),
        &serde_json::Value::Null,
    )
    .unwrap();
}

#[test]
fn eot_gives_a_lower_robust_accuracy_than_the_naive_attack_on_gaussian_noise() {
    let (model, data) = trained();
    let test = data.test.take(300).unwrap();
    let defend = || {
        model
            .defended(vec![Arc::new(GaussianNoise::new(0.3, 11).unwrap())])
            .unwrap()
    };
    let naive = robust(&defend(), &pgd(0.1, 10, 1, 4), &test);
    let eot = robust(&defend(), &pgd(0.1, 10, 10, 4), &test);
    assert!(eot < naive - 0.05, "EOT {eot} not below naive {naive}");
}

#[test]
fn bpda_through_bit_depth_beats_the_zero_gradient_attack() {
    let (model, data) = trained();
    let test = data.test.take(300).unwrap();
    let with = |bpda| model.defended(vec![Arc::new(BitDepth::new(3, bpda).unwrap())]).unwrap();
    let clean = accuracy(&with(true), &test).unwrap();
    let naive = robust(&with(false), &pgd(0.2, 10, 1, 4), &test);
    let bpda = robust(&with(true), &pgd(0.2, 10, 1, 4), &test);
    assert!(
        naive > clean - 0.15,
        "the zero-gradient attack should barely move: {naive} vs clean {clean}"
    );
    assert!(bpda < naive - 0.4, "BPDA {bpda} not far below naive {naive}");
}

#[test]
fn robustness_checks_flag_masked_gradients_and_pass_an_ordinary_model() {
    let (model, data) = trained();
    let p = || {
        ChecksParams {
            samples: 300,
            steps: 10,
            seed: 2,
            ..ChecksParams::default()
        }
        .check()
        .unwrap()
    };
    let ordinary = robustness_checks(model, &data.test, &p()).unwrap();
    assert!(ordinary.passed(), "{ordinary}");
    assert_eq!(ordinary.checks.len(), 6);
    assert_eq!(ordinary.checks[5].status, Status::Skipped, "no transform to adapt to");
    let masked = model
        .defended(vec![Arc::new(BitDepth::new(3, false).unwrap())])
        .unwrap();
    let r = robustness_checks(&masked, &data.test, &p()).unwrap();
    assert!(!r.passed(), "{r}");
    for key in ["large_eps", "transfer", "noise"] {
        assert!(r.failures().contains(&key), "{key} not flagged:\n{r}");
    }
    // and the adaptive attack (BPDA) is what the naive one missed
    assert_eq!(r.checks[5].status, Status::Pass, "{r}");
    let text = r.to_string();
    assert!(text.contains("FAILED") && text.contains("NO"), "{text}");
}

#[test]
fn the_same_seed_gives_the_same_numbers() {
    let (model, data) = trained();
    let test = data.test.take(100).unwrap();
    let attack = |seed| {
        let m = model
            .defended(vec![
                Arc::new(GaussianNoise::new(0.2, seed).unwrap()),
                Arc::new(UniformNoise::new(0.1, seed).unwrap()),
            ])
            .unwrap();
        let adv = perturb(&pgd(0.1, 5, 3, 1), &m, &test).unwrap();
        (values(adv.images()), accuracy(&m, &adv).unwrap())
    };
    let (a, b) = (attack(7), attack(7));
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert_ne!(a.0, attack(8).0);
    // an autoencoder's training too
    let d = synthetic(
        &SyntheticParams {
            train: 300,
            test: 1,
            seed: 1,
        },
        &Device::Cpu,
    )
    .unwrap();
    let train = |seed| {
        let ae = Autoencoder::new(
            AutoencoderKind::Dense { hidden: vec![32] },
            &[1, 28, 28],
            3,
            &Device::Cpu,
        )
        .unwrap();
        let p = AeFitParams {
            epochs: 2,
            seed,
            ..AeFitParams::default()
        };
        let h = ae.fit(&d.train, &p.check().unwrap()).unwrap();
        (
            h.iter().map(|e| e.loss).collect::<Vec<_>>(),
            values(apply_to(&ae, &d.train).unwrap().images()),
        )
    };
    assert_eq!(train(5), train(5));
}

#[test]
fn autoencoders_learn_to_reconstruct_and_pass_gradients() {
    let d = synthetic(
        &SyntheticParams {
            train: 1000,
            test: 50,
            seed: 4,
        },
        &Device::Cpu,
    )
    .unwrap();
    for kind in [
        AutoencoderKind::Dense { hidden: vec![128] },
        AutoencoderKind::Conv { channels: vec![16, 8] },
    ] {
        let ae = Autoencoder::new(kind, &[1, 28, 28], 1, &Device::Cpu).unwrap();
        assert!(apply_to(&ae, &d.test)
            .unwrap_err()
            .to_string()
            .contains("has not been trained"));
        let p = AeFitParams {
            epochs: 4,
            batch_size: 32,
            ..AeFitParams::default()
        };
        let h = ae.fit(&d.train, &p.check().unwrap()).unwrap();
        assert!(h[3].loss < 0.7 * h[0].loss, "{}: {h:?}", ae.name());
        let x = d.test.images();
        let y = run(&ae, x);
        assert_eq!(y.dims(), x.dims());
        let mse = (y - x)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((mse as f64) < h[0].loss, "{}: test mse {mse}", ae.name());
        assert!(
            input_grad(&ae, x).iter().any(|g| g.abs() > 1e-4),
            "{}: no gradient",
            ae.name()
        );
        assert!(ae.to_string().contains("trained 4 epochs"), "{ae}");
    }
    assert!(matches!(
        Autoencoder::new(
            AutoencoderKind::Conv {
                channels: vec![8, 8, 8]
            },
            &[1, 28, 28],
            1,
            &Device::Cpu
        ),
        Err(advlab::Error::Param(ParamError::AutoencoderPooling { divisor: 8, .. }))
    ));
}

#[test]
fn bad_options_are_clear_errors() {
    let pre = "let d = synthetic(#{ train: 20, test: 20 }).train;\nlet m = mlp([784, 8, 10]);\n";
    for (line, what) in [
        (
            "gaussian_noise(#{ std: -1 })",
            "gaussian_noise: std (the noise's standard deviation) must be a finite number >= 0 (got -1)",
        ),
        (
            "gaussian_noise(#{ sdt: 0.1 })",
            "unknown option `sdt` (did you mean `std`?)",
        ),
        ("gaussian_noise(#{})", "gaussian_noise: option `std` is required"),
        (
            "uniform_noise(#{ magnitude: \"big\" })",
            "option `magnitude` must be a number",
        ),
        (
            "pca_projection(#{ variance: 0.9 })",
            "option `data` (the held-out images",
        ),
        (
            "pca_projection(#{ variance: 0.9, components: 3, data: d })",
            "give either variance or components, not both",
        ),
        (
            "pca_projection(#{ variance: 1.5, data: d })",
            "variance (the share of the variance kept) must be in (0, 1]",
        ),
        (
            "pca_projection(#{ components: 0, data: d })",
            "components must be between 1",
        ),
        (
            "downsample(#{ factor: 2.0 })",
            "factor (the fraction of the side kept) must be in (0, 1]",
        ),
        ("bit_depth(#{ bits: 0 })", "bits must be between 1 and 16"),
        (
            "bit_depth(#{ bits: 3, bpda: 1 })",
            "option `bpda` must be true or false",
        ),
        (
            "median_smoothing(#{ size: 0 })",
            "size (the median window's side) must be between 1 and 15",
        ),
        (
            "conv_autoencoder(#{ input: [1, 30, 30] })",
            "needs H and W divisible by 4",
        ),
        (
            "denoising_autoencoder(#{ hidden: [] })",
            "hidden must list at least one layer size",
        ),
        (
            "defended(m, [1])",
            "element 0 of the transform list is i64, not a Transform",
        ),
        ("defended(m, [])", "give at least one transform"),
        (
            "defended(m, [denoising_autoencoder(#{})]).accuracy(d)",
            "has not been trained: call .fit(data",
        ),
        (
            "gaussian_noise(#{ std: 0.1 }).fit(d)",
            "gaussian_noise has nothing to train",
        ),
        (
            "denoising_autoencoder(#{}).fit(d, #{ noise_std: -0.1 })",
            "noise_std must be a finite number >= 0",
        ),
        (
            "pgd(#{ eps: 0.1, eot: 0 })",
            "pgd: eot (the gradient samples averaged per step) must be at least 1",
        ),
        ("fgsm(#{ eps: 0.1, eot: 0 })", "fgsm: eot"),
        (
            "defended(m, [gaussian_noise(#{ std: 0.1 })]).save(\"out/m.safetensors\")",
            "this model is defended",
        ),
        (
            "robustness_checks(m, d, #{ tolerance: 2 })",
            "tolerance must be a finite number in [0, 1)",
        ),
        (
            "robustness_checks(m, d, #{ eps: 0.5, large_eps: 0.4 })",
            "large_eps must be a finite number > eps",
        ),
        (
            "robustness_checks(m, d, #{ surrogate: 3 })",
            "option `surrogate` must be a Model",
        ),
    ] {
        script_fails(&format!("{pre}{line};"), what);
    }
}

#[test]
fn a_script_defends_attacks_and_checks_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "defend.rhai",
        r#"
let data = synthetic(#{ train: 2000, test: 200, seed: 5 });
let m = mlp([784, 64, 10]);
m.fit(data.train, #{ epochs: 2, seed: 5 });
let pca = pca_projection(#{ components: 40, data: data.train.take(500) });
let d = defended(m, [pca, gaussian_noise(#{ std: 0.1, seed: 3 })]);
print(d);
print(`transforms=${d.transforms().len()} first=${d.transforms()[0].name}`);
let naive = d.accuracy(pgd(#{ eps: 0.1, steps: 5 }).perturb(d, data.test));
let eot = d.accuracy(pgd(#{ eps: 0.1, steps: 5, eot: 4 }).perturb(d, data.test));
print(`naive=${naive} eot=${eot}`);
print(pgd(#{ eps: 0.1, eot: 4 }).params().eot);
let c = robustness_checks(d, data.test, #{ samples: 100, steps: 5, eot: 2, eot_check: 4 });
print(c);
print(`passed=${c.passed} rows=${c.rows().len()}`);
write_csv("out/checks.csv", c.rows());
"#,
    );
    run_in(tmp.path(), &s)
        .success()
        .stdout(contains("defended: input → pca_projection(40 of 784 components"))
        .stdout(contains("gaussian_noise(std=0.1, seed=3"))
        .stdout(contains("transforms=2 first=pca_projection"))
        .stdout(contains("EOT/BPDA not weaker than the naive attack"))
        .stdout(contains("rows=6"));
    let csv = std::fs::read_to_string(tmp.path().join("out/checks.csv")).unwrap();
    assert!(csv.contains("eot_bpda"), "{csv}");
    let meta = std::fs::read_to_string(tmp.path().join("out/checks.csv.meta.json")).unwrap();
    assert!(
        meta.contains("\"defended\"") && meta.contains("\"explained_variance\""),
        "{meta}"
    );
}

#[test]
fn input_defences_reproduction_runs_quick() {
    let Some((tmp, stdout)) = reproduce("input_defences.rhai") else {
        return;
    };
    assert!(stdout.contains("Table 2: cross-testing"), "{stdout}");
    assert!(stdout.contains("Robustness checks of Model(uniform_noise("), "{stdout}");
    let root = tmp.path().join("out/input_defences/quick");
    let t1 = csv_rows(&root.join("table1.csv"));
    assert_eq!(t1.len(), 16, "2 data sets × control and 7 defences");
    for r in t1.iter().filter(|r| r["model"] == "control") {
        assert!(num(r, "universal") < num(r, "original"), "{r:?}");
    }
    // perturbations fitted through each defence cost accuracy on the whole
    let mean = |c: &str| t1.iter().map(|r| num(r, c)).sum::<f64>() / t1.len() as f64;
    assert!(t1.iter().all(|r| (0.0..=1.0).contains(&num(r, "universal_adaptive"))));
    assert!(mean("universal_adaptive") < mean("original"), "{t1:?}");
    assert_eq!(csv_rows(&root.join("table2.csv")).len(), 6);
    assert_eq!(csv_rows(&root.join("table3.csv")).len(), 8);
    let adaptive = csv_rows(&root.join("adaptive.csv"));
    assert_eq!(adaptive.len(), 20);
    for r in &adaptive {
        assert!(
            num(r, "pgd_adaptive") <= num(r, "pgd_naive") + 0.02,
            "adaptive weaker: {r:?}"
        );
        if r["model"] == "bit_depth_3" {
            assert!(num(r, "pgd_adaptive") < num(r, "pgd_naive") - 0.1, "BPDA: {r:?}");
        }
    }
    for name in ["mnist", "fashion-mnist"] {
        let dir = root.join(name);
        for f in [
            "noise.csv",
            "noise.png",
            "noise.svg",
            "transfer.csv",
            "transfer.png",
            "universal.png",
            "universal_through_defences.png",
        ] {
            assert!(dir.join(f).is_file(), "{name}: missing {f}");
        }
        let curve = csv_rows(&dir.join("noise.csv"));
        assert_eq!(curve.len(), 7);
        let control = t1
            .iter()
            .find(|r| r["dataset"] == name && r["model"] == "control")
            .unwrap();
        assert_eq!(
            num(&curve[0], "original"),
            num(control, "original"),
            "noise of magnitude 0 changes nothing"
        );
    }
    let checks = csv_rows(&root.join("mnist/checks_eot.csv"));
    assert_eq!(checks.len(), 6);
    assert!(checks.iter().any(|c| c["check"] == "eot_bpda" && c["passed"] != "n/a"));
}
