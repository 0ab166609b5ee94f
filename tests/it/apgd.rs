//! Auto-PGD (README, "AutoAttack: APGD, APGD-T, FAB-T, Square"): at least as strong as PGD, within the budget and the box,
//! deterministic with a seed, batch-independent, and its parameter rules and class-count
//! requirements are errors.

use crate::common::{distances, fails, max_abs_diff, trained, values};
use advlab::attack::loss::LossKind;
use advlab::attack::{perturb, ApgdParams, Norm, PgdParams};
use advlab::eval::accuracy;
use advlab::ParamError;

fn apgd(eps: f64, loss: LossKind, steps: usize, seed: u64) -> advlab::attack::Apgd {
    ApgdParams {
        loss,
        steps,
        seed,
        ..ApgdParams::new(eps)
    }
    .check()
    .unwrap()
}

/// Every output within ε of its clean image in the attack's norm, and in [0, 1].
fn assert_feasible(adv: &advlab::data::Dataset, clean: &advlab::data::Dataset, eps: f64, norm: Norm) {
    assert!(values(adv.images()).iter().all(|v| (0.0..=1.0).contains(v)));
    for d in distances(adv, clean, norm) {
        assert!(d <= eps * (1.0 + 1e-5) + 1e-6, "distance {d} > eps {eps}");
    }
}

#[test]
fn apgd_is_at_least_as_strong_as_pgd_and_stays_feasible() {
    let (model, data) = trained();
    let test = data.test.take(300).unwrap();
    let eps = 0.08;
    let pgd = PgdParams {
        steps: 20,
        seed: 1,
        ..PgdParams::new(eps)
    }
    .check()
    .unwrap();
    let pgd_acc = accuracy(model, &perturb(&pgd, model, &test).unwrap()).unwrap();
    for loss in [LossKind::Ce, LossKind::Dlr] {
        let adv = perturb(&apgd(eps, loss, 100, 1), model, &test).unwrap();
        assert_feasible(&adv, &test, eps, Norm::Linf);
        let acc = accuracy(model, &adv).unwrap();
        // one sample of slack: APGD-100 must not be weaker than PGD-20
        assert!(acc <= pgd_acc + 1.0 / 300.0, "{loss:?}: apgd {acc} vs pgd {pgd_acc}");
    }
    let t = ApgdParams {
        steps: 30,
        seed: 1,
        ..ApgdParams::targeted(eps)
    }
    .check()
    .unwrap();
    let adv = perturb(&t, model, &test).unwrap();
    assert_feasible(&adv, &test, eps, Norm::Linf);
    let ce = accuracy(model, &perturb(&apgd(eps, LossKind::Ce, 30, 1), model, &test).unwrap()).unwrap();
    let clean = accuracy(model, &test).unwrap();
    let t_acc = accuracy(model, &adv).unwrap();
    assert!(t_acc < clean, "apgd_t {t_acc} does not beat clean {clean}");
    assert!(t_acc <= ce + 0.05, "apgd_t {t_acc} far weaker than apgd_ce {ce}");
    let l2 = ApgdParams {
        norm: Norm::L2,
        steps: 30,
        ..ApgdParams::new(1.5)
    }
    .check()
    .unwrap();
    let adv = perturb(&l2, model, &test).unwrap();
    assert_feasible(&adv, &test, 1.5, Norm::L2);
    assert!(accuracy(model, &adv).unwrap() < clean);
}

#[test]
fn apgd_restarts_never_weaken_and_the_seed_fixes_the_output() {
    let (model, data) = trained();
    let test = data.test.take(200).unwrap();
    let a = perturb(&apgd(0.05, LossKind::Ce, 20, 3), model, &test).unwrap();
    let b = perturb(&apgd(0.05, LossKind::Ce, 20, 3), model, &test).unwrap();
    let c = perturb(&apgd(0.05, LossKind::Ce, 20, 4), model, &test).unwrap();
    assert_eq!(max_abs_diff(a.images(), b.images()), 0.0);
    assert!(max_abs_diff(a.images(), c.images()) > 0.0);
    // the same samples attacked in other batches: the same output (the noise is per sample)
    let small = ApgdParams {
        steps: 20,
        seed: 3,
        batch_size: 7,
        ..ApgdParams::new(0.05)
    }
    .check()
    .unwrap();
    let d = perturb(&small, model, &test).unwrap();
    // (GEMM rounding differs with the batch size, so a near-zero gradient may flip its sign)
    let (va, vd) = (values(a.images()), values(d.images()));
    let same = va.iter().zip(&vd).filter(|(u, v)| (*u - *v).abs() <= 1e-6).count();
    assert!(
        same as f64 >= 0.99 * va.len() as f64,
        "{same} of {} pixels equal",
        va.len()
    );
    assert!((accuracy(model, &a).unwrap() - accuracy(model, &d).unwrap()).abs() <= 1.0 / 200.0);
    let once = accuracy(model, &a).unwrap();
    let r = ApgdParams {
        steps: 20,
        seed: 3,
        restarts: 3,
        ..ApgdParams::new(0.05)
    }
    .check()
    .unwrap();
    let thrice = accuracy(model, &perturb(&r, model, &test).unwrap()).unwrap();
    assert!(thrice <= once, "restarts weakened the attack: {thrice} > {once}");
}

#[test]
fn apgd_parameter_rules_and_class_counts_are_errors() {
    let bad = |p: ApgdParams| p.check().unwrap_err();
    assert_eq!(
        bad(ApgdParams {
            rho: 0.0,
            ..ApgdParams::new(0.1)
        }),
        ParamError::Rho(0.0)
    );
    assert_eq!(
        bad(ApgdParams {
            steps: 0,
            ..ApgdParams::new(0.1)
        }),
        ParamError::StepsZero
    );
    assert_eq!(
        bad(ApgdParams {
            restarts: 0,
            ..ApgdParams::new(0.1)
        }),
        ParamError::RestartsZero
    );
    assert_eq!(bad(ApgdParams::new(-1.0)), ParamError::EpsNegative(-1.0));
    assert_eq!(
        bad(ApgdParams {
            target_classes: Some(0),
            ..ApgdParams::targeted(0.1)
        }),
        ParamError::TargetClassesZero
    );
    assert!(matches!(
        bad(ApgdParams {
            loss: LossKind::Kl,
            ..ApgdParams::new(0.1)
        }),
        ParamError::ApgdLoss(_)
    ));
    let data = "let data = synthetic(#{ train: 200, test: 50, seed: 1 });\n";
    // labels 0 and 1 only, so that the models below accept them
    let two = "let x = dataset(data.test.images().rows(0, 4), tensor([0, 1, 0, 1], \"u32\"));\n";
    fails(
        &format!("{data}let m = mlp([784, 2]);\n{two}let a = apgd(#{{ eps: 0.1, loss: \"dlr\" }}).perturb(m, x);"),
        "at least 3 classes",
        "4:42",
    );
    fails(
        &format!("{data}let m = mlp([784, 3]);\n{two}let a = apgd_t(#{{ eps: 0.1 }}).perturb(m, x);"),
        "at least 4 classes",
        "4:31",
    );
    fails("let a = apgd(#{ eps: 0.1, rho: 1.5 });", "rho must be in (0, 1]", "1:9");
    fails(
        "let a = apgd(#{ eps: 0.1, loss: \"kl\" });",
        "APGD's loss must be",
        "1:9",
    );
    fails("let a = apgd(#{ steps: 10 });", "option `eps` is required", "1:9");
    fails(
        "let a = apgd_t(#{ eps: 0.1, targets: 3 });",
        "unknown option `targets`",
        "1:29",
    );
}

/// Square (which reads only logits) stays within ε and the box, fools more images than noise of
/// the same budget (L∞ and L2), is deterministic with a seed, and refuses a p_init outside (0, 1].
#[test]
fn square_stays_feasible_is_seeded_and_fools_more_than_noise() {
    use advlab::attack::{NoiseKind, NoiseParams, SquareParams};
    let (model, data) = trained();
    let test = data.test.take(150).unwrap();
    let eps = 0.08;
    let sq = |seed| {
        SquareParams {
            queries: 300,
            seed,
            ..SquareParams::new(eps)
        }
        .check()
        .unwrap()
    };
    let a = perturb(&sq(1), model, &test).unwrap();
    let b = perturb(&sq(1), model, &test).unwrap();
    assert_eq!(max_abs_diff(a.images(), b.images()), 0.0);
    assert_feasible(&a, &test, eps, Norm::Linf);
    let noise = NoiseParams {
        kind: NoiseKind::Uniform,
        seed: 1,
        ..NoiseParams::new(eps)
    }
    .check()
    .unwrap();
    let noisy = accuracy(model, &perturb(&noise, model, &test).unwrap()).unwrap();
    let square = accuracy(model, &a).unwrap();
    assert!(square < noisy, "square {square} not below noise {noisy}");
    // under L2: within the ball and the box, and stronger than noise of the same norm
    let l2 = SquareParams {
        norm: Norm::L2,
        queries: 300,
        seed: 1,
        ..SquareParams::new(1.5)
    }
    .check()
    .unwrap();
    let a2 = perturb(&l2, model, &test).unwrap();
    assert_feasible(&a2, &test, 1.5, Norm::L2);
    let noise2 = NoiseParams {
        norm: Norm::L2,
        seed: 1,
        ..NoiseParams::new(1.5)
    }
    .check()
    .unwrap();
    let noisy2 = accuracy(model, &perturb(&noise2, model, &test).unwrap()).unwrap();
    let square2 = accuracy(model, &a2).unwrap();
    assert!(square2 < noisy2, "square-L2 {square2} not below noise {noisy2}");
    assert_eq!(
        SquareParams {
            p_init: 0.0,
            ..SquareParams::new(0.1)
        }
        .check()
        .unwrap_err(),
        ParamError::PInit(0.0)
    );
}

/// AutoAttack's sequence without FAB-T: robust accuracy never rises from stage to stage, ends
/// at most at APGD-CE's alone, the adversarial images stay feasible, and `plus` (which needs
/// untargeted FAB) says so.
#[test]
fn autoattack_stages_only_lower_robust_accuracy_and_plus_names_the_missing_fab() {
    use advlab::eval::{autoattack, AutoAttackParams};
    let (model, data) = trained();
    let test = data.test.take(120).unwrap();
    let p = AutoAttackParams {
        seed: 2,
        version: "apgd_square".into(),
        ..AutoAttackParams::new(0.06)
    };
    let r = autoattack(
        model,
        &test,
        &AutoAttackParams {
            version: "apgd".into(),
            ..p.clone()
        },
    )
    .unwrap();
    let full = autoattack(model, &test, &p).unwrap();
    assert_eq!(full.stages.len(), 3);
    let mut prev = full.clean_accuracy;
    for s in &full.stages {
        assert!(s.robust_accuracy <= prev);
        prev = s.robust_accuracy;
    }
    assert!(full.robust_accuracy <= r.stages[0].robust_accuracy);
    assert_eq!(accuracy(model, &full.adversarial).unwrap(), full.robust_accuracy);
    assert_feasible(&full.adversarial, &test, 0.06, Norm::Linf);
    fails(
        "let d = synthetic(#{ train: 100, test: 20, seed: 1 });\nlet m = mlp([784, 10]);\nlet r = autoattack(m, d.test, #{ eps: 0.1, version: \"plus\" });",
        "needs untargeted FAB",
        "3:9",
    );
}

/// The reference-check script runs end to end in quick mode and writes what apgd_check.py reads.
#[test]
fn autoattack_check_script_writes_the_files_the_reference_check_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    crate::common::advlab()
        .current_dir(tmp.path())
        .args([
            "run",
            root.join("scripts/autoattack_check.rhai").to_str().unwrap(),
            "quick=true",
            "--out",
        ])
        .arg(tmp.path().join("out"))
        .assert()
        .success();
    for f in ["model.safetensors", "clean.safetensors", "advlab.json"] {
        assert!(tmp.path().join("out").join(f).is_file(), "{f} missing");
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("out/advlab.json")).unwrap()).unwrap();
    for k in ["apgd_ce", "apgd_dlr", "apgd_t"] {
        assert!(j[k].as_f64().unwrap() <= j["clean"].as_f64().unwrap(), "{k}");
    }
}
