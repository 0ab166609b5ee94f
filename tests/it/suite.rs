//! The attack suite of seeds 001–003 (BIM, PGD-L2, targeted modes, CW-L2, DeepFool, universal
//! perturbations, noise), the robustness report and its metric definitions, accuracy-versus-ε
//! curves and transfer matrices.

use crate::common::{fails, run_in, run_quick, script, trained, values};
use advlab::attack::{
    fooling_rate, perturb, Attack, CwL2Params, DeepFoolParams, FgsmParams, NoiseKind, NoiseParams, Norm, PgdParams,
    Target, Universal, UniversalParams,
};
use advlab::data::Dataset;
use advlab::eval::{accuracy, accuracy_vs_eps, evaluate, predict, report, transfer_matrix};
use advlab::nn::{Arch, Model};
use advlab::ParamError;
use candle_core::{Device, Tensor};
use predicates::str::contains;

fn labels(d: &Dataset) -> Vec<u32> {
    d.labels().to_vec1::<u32>().unwrap()
}

fn preds(m: &Model, d: &Dataset) -> Vec<u32> {
    predict(m, d).unwrap().to_vec1::<u32>().unwrap()
}

/// Per-sample L2 norms of adv − clean.
fn l2_norms(adv: &Dataset, clean: &Dataset) -> Vec<f32> {
    let d = (adv.images() - clean.images()).unwrap().flatten_from(1).unwrap();
    d.sqr()
        .unwrap()
        .sum(1)
        .unwrap()
        .sqrt()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

fn in_unit_box(d: &Dataset) {
    let v = values(d.images());
    let (lo, hi) = v.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    assert!(lo >= 0.0 && hi <= 1.0, "pixels out of [0, 1]: [{lo}, {hi}]");
}

fn pgd_l2(eps: f64, steps: usize, alpha: Option<f64>, random_start: bool) -> advlab::attack::Pgd {
    PgdParams {
        norm: Norm::L2,
        steps,
        alpha,
        random_start,
        seed: 5,
        ..PgdParams::new(eps)
    }
    .check()
    .unwrap()
}

/// CW-L2 with fewer steps, for tests that check properties rather than strength.
fn short_cw(steps: usize, binary_search_steps: usize) -> advlab::attack::CwL2 {
    CwL2Params {
        steps,
        binary_search_steps,
        ..CwL2Params::default()
    }
    .check()
    .unwrap()
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

#[test]
fn l2_attacks_stay_inside_their_ball_and_the_unit_box() {
    let (model, data) = trained();
    let test = data.test.take(200).unwrap();
    for (eps, alpha, steps, rs) in [
        (0.5, Some(2.0), 5, true),
        (1.0, None, 10, false),
        (3.0, Some(0.2), 7, true),
    ] {
        let adv = perturb(&pgd_l2(eps, steps, alpha, rs), model, &test).unwrap();
        in_unit_box(&adv);
        let worst = l2_norms(&adv, &test).into_iter().fold(0f32, f32::max);
        assert!(worst as f64 <= eps * (1.0 + 1e-5), "L2 {worst} > eps {eps}");
        assert_eq!(labels(&adv), labels(&test));
    }
    for kind in [NoiseKind::Uniform, NoiseKind::Gaussian] {
        let noise = NoiseParams {
            kind,
            norm: Norm::L2,
            ..NoiseParams::new(1.5)
        };
        let adv = perturb(&noise.check().unwrap(), model, &test).unwrap();
        in_unit_box(&adv);
        let worst = l2_norms(&adv, &test).into_iter().fold(0f32, f32::max);
        assert!(worst <= 1.5 * (1.0 + 1e-5), "noise L2 {worst} > 1.5");
    }
}

#[test]
fn linf_noise_and_bim_stay_inside_the_box_of_eps() {
    let (model, data) = trained();
    let test = data.test.take(200).unwrap();
    let attacks: Vec<Box<dyn Attack>> = vec![
        Box::new(PgdParams::bim(0.1).check().unwrap()),
        Box::new(NoiseParams::new(0.1).check().unwrap()),
        Box::new(
            NoiseParams {
                kind: NoiseKind::Gaussian,
                ..NoiseParams::new(0.1)
            }
            .check()
            .unwrap(),
        ),
    ];
    for a in &attacks {
        let adv = perturb(a.as_ref(), model, &test).unwrap();
        in_unit_box(&adv);
        let d = crate::common::max_abs_diff(adv.images(), test.images());
        assert!(d <= 0.1 + 1e-6, "{}: L∞ {d} > 0.1", a.name());
    }
}

#[test]
fn bim_is_deterministic_and_more_steps_never_help_the_model() {
    let (model, data) = trained();
    let test = data.test.take(300).unwrap();
    let bim = |steps| {
        PgdParams {
            steps,
            alpha: Some(0.01),
            ..PgdParams::bim(0.08)
        }
        .check()
        .unwrap()
    };
    let a = perturb(&bim(10), model, &test).unwrap();
    let b = perturb(&bim(10), model, &test).unwrap();
    assert_eq!(values(a.images()), values(b.images()), "BIM has no randomness");
    let mut last = 1.0;
    for steps in [1, 5, 10, 20] {
        let acc = accuracy(model, &perturb(&bim(steps), model, &test).unwrap()).unwrap();
        assert!(acc <= last, "{steps} steps: accuracy {acc} rose above {last}");
        last = acc;
    }
}

#[test]
fn larger_eps_never_raises_robust_accuracy() {
    let (model, data) = trained();
    let test = data.test.take(300).unwrap();
    for norm in [Norm::Linf, Norm::L2] {
        let base = PgdParams {
            norm,
            steps: 10,
            seed: 2,
            ..PgdParams::new(0.05)
        }
        .check()
        .unwrap();
        let eps: &[f64] = if norm == Norm::Linf {
            &[0.0, 0.02, 0.05, 0.1, 0.2]
        } else {
            &[0.0, 0.3, 1.0, 2.0, 4.0]
        };
        let curve = accuracy_vs_eps(model, &test, &[&base], eps).unwrap();
        assert_eq!(
            curve[0].1[0].1,
            accuracy(model, &test).unwrap(),
            "eps 0 is the clean accuracy"
        );
        for w in curve.windows(2) {
            assert!(
                w[1].1[0].1 <= w[0].1[0].1 + 0.01,
                "{norm:?}: accuracy rose from {} at eps {} to {} at eps {}",
                w[0].1[0].1,
                w[0].0,
                w[1].1[0].1,
                w[1].0
            );
        }
        assert!(
            curve[4].1[0].1 < 0.2,
            "{norm:?}: a large eps leaves accuracy {}",
            curve[4].1[0].1
        );
    }
}

#[test]
fn targeted_attacks_reach_their_target_far_more_often_than_chance() {
    let (model, data) = trained();
    let test = data.test.take(300).unwrap();
    let y = labels(&test);
    for target in [Target::Class(3), Target::LeastLikely, Target::Random(7)] {
        let pgd = PgdParams {
            steps: 20,
            target: target.clone(),
            ..PgdParams::new(0.3)
        }
        .check()
        .unwrap();
        let t = target.resolve(model, test.images(), test.labels()).unwrap().unwrap();
        let t = t.to_vec1::<u32>().unwrap();
        if let Target::Random(_) = target {
            assert!(
                y.iter().zip(&t).all(|(a, b)| a != b),
                "a random target equals the label"
            );
        }
        let p = preds(model, &perturb(&pgd, model, &test).unwrap());
        let eligible: Vec<usize> = (0..y.len()).filter(|&i| y[i] != t[i]).collect();
        let hit = eligible.iter().filter(|&&i| p[i] == t[i]).count() as f64 / eligible.len() as f64;
        assert!(hit > 0.5, "{target}: reached the target on {hit:.2} (chance is 0.1)");
        // the targeted step descends: FGSM towards class 3 raises its logit
        let f = FgsmParams {
            target: target.clone(),
            ..FgsmParams::new(0.05)
        }
        .check()
        .unwrap();
        let adv = perturb(&f, model, &test).unwrap();
        let logit = |d: &Dataset| {
            let z = model.forward(d.images()).unwrap();
            z.gather(&Tensor::new(t.clone(), &Device::Cpu).unwrap().unsqueeze(1).unwrap(), 1)
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(
            logit(&adv) > logit(&test),
            "{target}: targeted FGSM did not raise the target logit"
        );
    }
}

#[test]
fn a_target_outside_the_classes_is_an_error() {
    let (model, data) = trained();
    let pgd = PgdParams {
        target: Target::Class(10),
        ..PgdParams::new(0.1)
    }
    .check()
    .unwrap();
    let e = perturb(&pgd, model, &data.test.take(10).unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("target class 10 is outside the model's classes 0..=9"),
        "{e}"
    );
}

#[test]
fn deepfool_flips_labels_with_smaller_l2_than_pgd_l2_and_cw_smaller_still() {
    let (model, data) = trained();
    let test = data.test.take(200).unwrap();
    let y = labels(&test);
    let clean = preds(model, &test);
    let df = perturb(&DeepFoolParams::default().check().unwrap(), model, &test).unwrap();
    in_unit_box(&df);
    let p_df = preds(model, &df);
    let flipped = (0..y.len()).filter(|&i| p_df[i] != clean[i]).count() as f64 / y.len() as f64;
    assert!(flipped > 0.95, "DeepFool flipped only {flipped:.2} of the predictions");

    let pg = perturb(&pgd_l2(4.0, 20, None, true), model, &test).unwrap();
    let cw = perturb(
        &CwL2Params {
            binary_search_steps: 4,
            ..CwL2Params::default()
        }
        .check()
        .unwrap(),
        model,
        &test,
    )
    .unwrap();
    in_unit_box(&cw);
    let (p_pg, p_cw) = (preds(model, &pg), preds(model, &cw));
    // samples correct when clean that all three attacks fooled
    let both: Vec<usize> = (0..y.len())
        .filter(|&i| clean[i] == y[i] && p_df[i] != y[i] && p_pg[i] != y[i] && p_cw[i] != y[i])
        .collect();
    assert!(both.len() > 100, "only {} samples fooled by all three", both.len());
    let pick = |d: &Dataset| -> Vec<f32> {
        let n = l2_norms(d, &test);
        both.iter().map(|&i| n[i]).collect()
    };
    let (m_df, m_pg, m_cw) = (median(pick(&df)), median(pick(&pg)), median(pick(&cw)));
    assert!(m_df < m_pg, "DeepFool median L2 {m_df} is not below PGD-L2's {m_pg}");
    assert!(m_cw < m_pg, "CW-L2 median L2 {m_cw} is not below PGD-L2's {m_pg}");
}

#[test]
fn universal_perturbation_fools_held_out_images_far_more_than_noise_of_its_norm() {
    let (model, data) = trained();
    let fit_on = data.train.take(600).unwrap();
    let test = data.test.take(300).unwrap();
    let search = UniversalParams {
        max_iters: 3,
        seed: 1,
        ..UniversalParams::new(0.2)
    }
    .check()
    .unwrap();
    let u = search.fit(model, &fit_on).unwrap();
    let v = u.perturbation().unwrap();
    assert_eq!(v.dims(), &[1, 1, 28, 28]);
    let linf = values(&v).iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(linf <= 0.2 + 1e-6, "‖v‖∞ = {linf} > 0.2");
    let again = search.fit(model, &fit_on).unwrap();
    assert_eq!(
        values(&v),
        values(&again.perturbation().unwrap()),
        "same seed, same perturbation"
    );
    let fooled = fooling_rate(model, &test, &u).unwrap();
    let noise = NoiseParams::new(0.2).check().unwrap();
    let by_noise = fooling_rate(model, &test, &noise).unwrap();
    assert!(
        fooled > 0.1 && fooled > 3.0 * by_noise,
        "universal fooling rate {fooled:.3} against noise {by_noise:.3}"
    );
    // adding it to a data set of another image shape is an error
    let wrong = Universal::new(
        Tensor::zeros((1, 3, 28, 28), candle_core::DType::F32, &Device::Cpu).unwrap(),
        serde_json::Value::Null,
    )
    .unwrap();
    let e = wrong.apply(test.images()).unwrap_err();
    assert!(e.to_string().contains("does not fit images of shape 1×28×28"), "{e}");
}

#[test]
fn the_same_seed_gives_the_same_adversarial_images() {
    let (model, data) = trained();
    let test = data.test.take(100).unwrap();
    let attacks: Vec<Box<dyn Attack>> = vec![
        Box::new(pgd_l2(1.0, 5, None, true)),
        Box::new(
            PgdParams {
                target: Target::Random(3),
                ..PgdParams::new(0.1)
            }
            .check()
            .unwrap(),
        ),
        Box::new(short_cw(10, 2)),
        Box::new(DeepFoolParams::default().check().unwrap()),
        Box::new(
            NoiseParams {
                kind: NoiseKind::Gaussian,
                seed: 4,
                ..NoiseParams::new(0.2)
            }
            .check()
            .unwrap(),
        ),
    ];
    for a in &attacks {
        let x = perturb(a.as_ref(), model, &test).unwrap();
        let y = perturb(a.as_ref(), model, &test).unwrap();
        assert_eq!(
            values(x.images()),
            values(y.images()),
            "{} is not reproducible",
            a.name()
        );
    }
    let noise = |seed| {
        let a = NoiseParams {
            seed,
            ..NoiseParams::new(0.2)
        };
        values(perturb(&a.check().unwrap(), model, &test).unwrap().images())
    };
    assert_ne!(noise(1), noise(2), "another seed, the same noise");
}

#[test]
fn report_metrics_follow_their_definitions() {
    let (model, data) = trained();
    let test = data.test.take(300).unwrap();
    let fgsm = FgsmParams::new(0.1).check().unwrap();
    let zero = Universal::new(
        Tensor::zeros((1, 28, 28), candle_core::DType::F32, &Device::Cpu).unwrap(),
        serde_json::Value::Null,
    )
    .unwrap();
    let targeted = PgdParams {
        target: Target::Class(3),
        ..PgdParams::new(0.2)
    }
    .check()
    .unwrap();
    let r = report(model, &test, &[&fgsm, &zero, &targeted, &fgsm]).unwrap();
    let keys: Vec<&str> = r.attacks.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys, ["fgsm", "universal", "pgd_targeted", "fgsm_2"]);
    let ev = evaluate(model, &test, &[&fgsm]).unwrap();
    assert_eq!(r.clean_accuracy, ev.rows[0].1);

    // recompute FGSM's row by hand
    let y = labels(&test);
    let clean = preds(model, &test);
    let adv = perturb(&fgsm, model, &test).unwrap();
    let after = preds(model, &adv);
    let correct: Vec<usize> = (0..y.len()).filter(|&i| clean[i] == y[i]).collect();
    let succ: Vec<usize> = correct.iter().copied().filter(|&i| after[i] != y[i]).collect();
    let f = &r.attacks[0];
    assert_eq!(f.robust_accuracy, ev.rows[1].1);
    assert_eq!((f.attempted, f.successes), (correct.len(), succ.len()));
    assert!((f.success_rate - succ.len() as f64 / correct.len() as f64).abs() < 1e-12);
    assert!((f.gap - (r.clean_accuracy - f.robust_accuracy)).abs() < 1e-12);
    let norms = l2_norms(&adv, &test);
    let mean_l2 = succ.iter().map(|&i| norms[i] as f64).sum::<f64>() / succ.len() as f64;
    assert!((f.l2_mean - mean_l2).abs() < 1e-4, "{} vs {mean_l2}", f.l2_mean);
    assert!(
        (f.linf_median - 0.1).abs() < 1e-6,
        "FGSM moves some pixel by exactly eps"
    );
    assert!(f.true_confidence < r.clean_confidence);

    // a zero perturbation: robust = clean, no success, no perturbation size
    let z = &r.attacks[1];
    assert_eq!(z.robust_accuracy, r.clean_accuracy);
    assert_eq!(z.successes, 0);
    assert!(z.l2_median.is_nan());

    // targeted: only samples whose label is not the target are attempted, success = target hit
    let t = &r.attacks[2];
    let not3 = correct.iter().filter(|&&i| y[i] != 3).count();
    assert_eq!(t.attempted, not3);
    let tadv = preds(model, &perturb(&targeted, model, &test).unwrap());
    let hits = correct.iter().filter(|&&i| y[i] != 3 && tadv[i] == 3).count();
    assert_eq!(t.successes, hits);
}

#[test]
fn transfer_matrix_diagonal_is_the_white_box_accuracy() {
    let (model, data) = trained();
    let test = data.test.take(200).unwrap();
    let other = Model::new(Arch::mlp(vec![784, 32, 10]).unwrap(), &Device::Cpu, 9).unwrap();
    let pgd = PgdParams::new(0.1).check().unwrap();
    let models = vec![("a".to_string(), model.clone()), ("b".to_string(), other.clone())];
    let cells = transfer_matrix(&models, &test, &pgd).unwrap();
    assert_eq!(cells.len(), 4);
    for (name, m) in &models {
        let white = evaluate(m, &test, &[&pgd]).unwrap().rows[1].1;
        let diag = cells.iter().find(|c| c.source == *name && c.target == *name).unwrap();
        assert_eq!(diag.accuracy, white, "{name}");
    }
}

#[test]
fn parameter_rules_of_the_new_attacks() {
    assert_eq!(Norm::parse("l1"), Err(ParamError::UnknownNorm("l1".into())));
    let cw = |c, kappa| {
        CwL2Params {
            c,
            kappa,
            ..CwL2Params::default()
        }
        .check()
        .map(|_| ())
    };
    assert_eq!(cw(0.0, 0.0), Err(ParamError::CwConst(0.0)));
    assert_eq!(cw(1.0, -1.0), Err(ParamError::Kappa(-1.0)));
    assert_eq!(
        DeepFoolParams {
            num_classes: 1,
            ..DeepFoolParams::default()
        }
        .check()
        .map(|_| ()),
        Err(ParamError::CandidateClasses(1))
    );
    assert_eq!(
        UniversalParams {
            fooling_rate: 1.5,
            ..UniversalParams::new(0.1)
        }
        .check()
        .map(|_| ()),
        Err(ParamError::FoolingRate(1.5))
    );
    assert_eq!(
        NoiseParams::new(-0.1).check().map(|_| ()),
        Err(ParamError::EpsNegative(-0.1))
    );
    assert_eq!(NoiseKind::parse("pink"), Err(ParamError::UnknownNoise("pink".into())));
}

#[test]
fn script_errors_of_the_attack_suite_name_the_problem_and_the_position() {
    let data = "let d = synthetic(#{ train: 20, test: 20 });\nlet m = mlp([784, 8, 10]);\n";
    fails(
        "let a = pgd(#{ eps: 1.0, norm: \"l1\" });",
        "pgd: unknown norm \"l1\"",
        "1:9",
    );
    fails(
        "let a = fgsm(#{ eps: 0.1, target: \"most_likely\" });",
        "unknown target \"most_likely\"",
        "1:9",
    );
    fails(
        "let a = bim(#{ eps: 0.1, target: -2 });",
        "target must be a class number >= 0",
        "1:9",
    );
    fails(
        &format!("{data}let a = pgd(#{{ eps: 0.1, target: 12 }});\nlet x = a.perturb(m, d.test);"),
        "target class 12 is outside the model's classes 0..=9",
        "4:11",
    );
    fails(
        "let a = cw_l2(#{ c: -1.0 });",
        "cw_l2: c (the weight of the classification term) must be",
        "1:9",
    );
    fails(
        "let a = noise(#{ eps: -0.5 });",
        "noise: eps must be a finite number >= 0",
        "1:9",
    );
    fails(
        "let a = universal(#{ eps: 0.1, fooling_rate: 0.0 });",
        "fooling_rate",
        "1:9",
    );
    fails(
        &format!(
            "{data}let v = synthetic(#{{ train: 1, test: 1 }}).test.images();\nlet x = d.test.add(v[0].flatten());"
        ),
        "a universal perturbation must be one image",
        "4:16",
    );
    fails(
        &format!("{data}let a = cw_l2(#{{}});\nlet c = accuracy_vs_eps(m, d.test, a, [0.1]);"),
        "cw_l2 has no eps budget to vary",
        "4:9",
    );
}

#[test]
fn suite_end_to_end_from_a_script() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "suite.rhai",
        r#"
let d = synthetic(#{ train: 1500, test: 200 });
let m = mlp([784, 32, 10], #{ seed: 1 });
m.fit(d.train, #{ epochs: 2, seed: 1 });
let r = report(m, d.test, [fgsm(#{ eps: 0.1 }), pgd(#{ eps: 1.0, norm: "l2" }), deepfool(#{}), noise(#{ eps: 0.1 })]);
print(r);
r.save("out/report.csv");
r.save("out/report.json");
print(`robust=${r["pgd_l2"].robust_accuracy}`);
let u = universal(#{ eps: 0.2, max_iters: 2 }).fit(m, d.train.take(300));
u.perturbation().save("out/uap.safetensors");
let v = load_tensor("out/uap.safetensors");
print(`same=${fooling_rate(m, d.test, universal_from(v)) == fooling_rate(m, d.test, u)}`);
image_chart(v, #{}).save("out/uap.png");
let curve = accuracy_vs_eps(m, d.test, [fgsm(#{ eps: 0.1 }), u], [0.0, 0.1, 0.2]);
line_chart(curve, #{ x: "eps", y: ["fgsm", "universal"] }).save("out/curve.svg");
heatmap_chart(transfer_matrix([m, m.clone()], d.test, fgsm(#{ eps: 0.1 })), #{}).save("out/transfer.png");
adversarial_grid(m, d.test, fgsm(#{ eps: 0.2 }).perturb(m, d.test), #{ n: 4 }).save("out/grid.png");
confidence_histogram(m, d.test, #{ bins: 10 }).save("out/hist.png");
"#,
    );
    run_in(tmp.path(), &s)
        .success()
        .stdout(contains("robust="))
        .stdout(contains("same=true"))
        .stdout(contains("pgd_l2"));
    let out = tmp.path().join("out");
    for f in [
        "report.csv",
        "report.json",
        "uap.safetensors",
        "uap.png",
        "curve.svg",
        "transfer.png",
        "grid.png",
        "hist.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
        assert!(out.join(format!("{f}.meta.json")).is_file(), "{f}.meta.json missing");
    }
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    assert!(csv.starts_with("attack,"), "{csv}");
    assert_eq!(csv.lines().count(), 5);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["attacks"][1]["params"]["norm"], "l2");
}

/// Run a reproduction script with quick=true on the real data (skipped without it); returns
/// the output directory and stdout.
pub(crate) fn reproduce(name: &str) -> Option<(tempfile::TempDir, String)> {
    run_quick(&format!("reproduce/{name}"), &[])
}

pub(crate) fn csv_rows(path: &std::path::Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            headers
                .iter()
                .cloned()
                .zip(rec.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

pub(crate) fn num(row: &std::collections::HashMap<String, String>, col: &str) -> f64 {
    row[col].parse().unwrap_or_else(|_| panic!("{col} = {:?}", row[col]))
}

#[test]
fn attack_suite_reproduction_runs_quick() {
    let Some((tmp, stdout)) = reproduce("attack_suite.rhai") else {
        return;
    };
    assert!(stdout.contains("Seed 001, Table 1"), "{stdout}");
    let dir = tmp.path().join("out/attack_suite/quick");
    for f in [
        "cnn.safetensors",
        "table1.csv",
        "report.csv",
        "report.json",
        "report_cw.csv",
        "universal.csv",
        "universal.png",
        "examples_pgd.png",
        "examples_cw.png",
        "examples_deepfool.png",
        "confidence_clean.png",
        "confidence_pgd.png",
        "accuracy_vs_eps.svg",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let t1 = &csv_rows(&dir.join("table1.csv"))[0];
    assert!(num(t1, "natural") > 0.6, "{t1:?}");
    assert!(num(t1, "pgd") <= num(t1, "fgsm") + 0.02, "PGD weaker than FGSM: {t1:?}");
    assert!(num(t1, "pgd") <= num(t1, "pgd_3_steps"), "{t1:?}");
    let report = csv_rows(&dir.join("report.csv"));
    let row = |k: &str| {
        report
            .iter()
            .find(|r| r["attack"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert!(num(row("noise"), "robust_accuracy") > num(row("pgd"), "robust_accuracy"));
    assert!(num(row("deepfool"), "success_rate") > 0.95);
    let u = csv_rows(&dir.join("universal.csv"));
    assert!(
        num(&u[0], "fooling_rate") > num(&u[1], "fooling_rate"),
        "universal below noise: {u:?}"
    );
}

#[test]
fn universal_perturbations_reproduction_runs_quick() {
    let Some((tmp, stdout)) = reproduce("universal_perturbations.rhai") else {
        return;
    };
    assert!(stdout.contains("Table 2: cross-testing"), "{stdout}");
    let root = tmp.path().join("out/universal/quick");
    let t1 = csv_rows(&root.join("table1.csv"));
    assert_eq!(t1.len(), 4, "mnist and fashion-mnist, mlp and cnn");
    for r in &t1 {
        assert!(num(r, "universal") < num(r, "original"), "{r:?}");
        assert!(num(r, "universal") < num(r, "noise_same_bound"), "{r:?}");
    }
    let t2 = csv_rows(&root.join("table2.csv"));
    assert_eq!(t2.len(), 16);
    for ds in ["mnist", "fashion-mnist"] {
        let dir = root.join(ds);
        for f in [
            "universal_mlp.png",
            "universal_cnn.safetensors",
            "transfer_pgd.png",
            "noise_cnn.png",
            "noise_mlp.csv",
        ] {
            assert!(dir.join(f).is_file(), "missing {ds}/{f}");
        }
    }
}

#[test]
fn attacks_return_detached_tensors_so_no_graph_outlives_a_step() {
    // A gradient carries the graph of its backward pass; an iterate or a best-so-far tensor
    // built from it would keep every step's graph (and activations) alive: CW-L2 grew to
    // 2.5 GB on 500 MNIST images before its tensors were detached.
    let (model, data) = trained();
    let test = data.test.take(64).unwrap();
    let attacks: Vec<Box<dyn Attack>> = vec![
        Box::new(FgsmParams::new(0.1).check().unwrap()),
        Box::new(PgdParams::new(0.1).check().unwrap()),
        Box::new(pgd_l2(1.0, 5, None, true)),
        Box::new(short_cw(5, 1)),
        Box::new(DeepFoolParams::default().check().unwrap()),
    ];
    for a in &attacks {
        let out = a.perturb_batch(model, test.images(), test.labels()).unwrap();
        assert!(
            !out.track_op(),
            "{} returns a tensor that holds an autograd graph",
            a.name()
        );
    }
}

#[test]
fn mixed_adversarial_training_quick_reproduces_table_1() {
    let Some((tmp, stdout)) = reproduce("mixed_adversarial_training.rhai") else {
        return;
    };
    let dir = tmp.path().join("out/mixed_at/quick");
    let rows = csv_rows(&dir.join("table1.csv"));
    assert_eq!(rows.len(), 8, "{stdout}");
    for r in &rows {
        for col in ["natural", "pgd", "fgsm", "cw"] {
            let v: f64 = r[col].parse().unwrap();
            assert!((0.0..=1.0).contains(&v), "{col} = {v} in {r:?}");
        }
        // stochastic models are also attacked with EOT, the others are not
        let stochastic = r["model"].contains("Noise Injection") || r["model"].contains("LWTA");
        assert_eq!(!r["pgd_eot"].is_empty(), stochastic, "{r:?}");
    }
    // trained models beat chance (10 classes) on clean data
    assert!(
        rows.iter().all(|r| r["natural"].parse::<f64>().unwrap() > 0.2),
        "{rows:?}"
    );
    for name in ["regular", "lwta", "smoothing_pgd_fgsm_cw_pni"] {
        assert!(dir.join(format!("examples_{name}.png")).exists());
        assert!(dir.join(format!("confidence_{name}.svg")).exists());
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("table1.json")).unwrap()).unwrap();
    assert_eq!(json["eps"], 0.3);
    assert_eq!(json["rows"].as_array().unwrap().len(), 8);
    // a rerun keeps the finished rows and runs only the one whose settings changed
    let again = crate::common::run_quick_in(
        tmp.path(),
        "reproduce/mixed_adversarial_training.rhai",
        &["rows=lwta", "lwta_ibp=false"],
    );
    assert_eq!(again.matches("kept from").count(), 7, "{again}");
    assert!(again.contains("== Stochastic LWTA"), "{again}");
    assert_eq!(csv_rows(&dir.join("table1.csv")).len(), 8);
}

#[test]
fn defence_benchmark_quick_fills_the_table_and_the_heatmap() {
    let Some((tmp, stdout)) = reproduce("../defence_benchmark.rhai") else {
        return;
    };
    let dir = tmp.path().join("out/defence_benchmark/quick");
    let rows = csv_rows(&dir.join("table.csv"));
    assert_eq!(rows.len(), 11, "{stdout}");
    for r in &rows {
        for col in ["clean", "fgsm", "pgd", "pgd_eot", "cw_l2", "deepfool", "noise"] {
            let v: f64 = r[col].parse().unwrap_or(f64::NAN);
            assert!((0.0..=1.0).contains(&v), "{col} = {:?} in {r:?}", r[col]);
        }
    }
    assert_eq!(csv_rows(&dir.join("cells.csv")).len(), 11 * 7);
    assert_eq!(csv_rows(&dir.join("checks.csv")).len(), 11);
    assert!(dir.join("heatmap.png").exists() && dir.join("heatmap.svg").exists());
}
