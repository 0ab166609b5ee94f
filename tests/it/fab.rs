//! Targeted FAB and the full AutoAttack sequence (README, "AutoAttack: APGD, APGD-T, FAB-T, Square"): FAB-T's outputs stay
//! within ε and the box, its fooled set only grows with ε (it minimises the norm, ε is only the
//! threshold), its perturbations are smaller than PGD's, it is seeded and batch-independent;
//! the standard AutoAttack has four stages; Square runs on a model whose backward pass fails.

use crate::common::{distances, fails, max_abs_diff, trained, values};
use advlab::attack::{perturb, ApgdParams, FabParams, Norm, PgdParams, SquareParams};
use advlab::eval::accuracy;
use advlab::ParamError;

fn fab(eps: f64, steps: usize) -> advlab::attack::Fab {
    FabParams {
        steps,
        target_classes: 3,
        ..FabParams::new(eps)
    }
    .check()
    .unwrap()
}

#[test]
fn fab_t_is_feasible_monotone_in_eps_and_smaller_than_pgd() {
    let (model, data) = trained();
    let test = data.test.take(120).unwrap();
    let clean = accuracy(model, &test).unwrap();
    let mut prev = clean;
    for eps in [0.04, 0.08, 0.15] {
        let adv = perturb(&fab(eps, 40), model, &test).unwrap();
        assert!(values(adv.images()).iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(
            distances(&adv, &test, Norm::Linf).iter().all(|&d| d <= eps + 1e-6),
            "eps {eps}"
        );
        let acc = accuracy(model, &adv).unwrap();
        assert!(acc <= prev, "eps {eps}: {acc} above {prev} at a smaller eps");
        prev = acc;
    }
    assert!(prev < clean - 0.3, "fab_t at 0.15 only {prev} from clean {clean}");
    // minimal norm: the images both fool are perturbed less by FAB-T than by PGD (which goes to ε)
    let eps = 0.15;
    let f = perturb(&fab(eps, 40), model, &test).unwrap();
    let p = perturb(&PgdParams::new(eps).check().unwrap(), model, &test).unwrap();
    let (df, dp) = (distances(&f, &test, Norm::Linf), distances(&p, &test, Norm::Linf));
    let (fp, pp) = (
        advlab::nn::predict(model, &f).unwrap().to_vec1::<u32>().unwrap(),
        advlab::nn::predict(model, &p).unwrap().to_vec1::<u32>().unwrap(),
    );
    let y = test.labels().to_vec1::<u32>().unwrap();
    let both: Vec<usize> = (0..y.len())
        .filter(|&i| fp[i] != y[i] && pp[i] != y[i] && df[i] > 0.0)
        .collect();
    assert!(both.len() >= 20, "only {} images fooled by both", both.len());
    let mean = |d: &[f64]| both.iter().map(|&i| d[i]).sum::<f64>() / both.len() as f64;
    assert!(mean(&df) < 0.8 * mean(&dp), "fab_t {} vs pgd {}", mean(&df), mean(&dp));
    // L2 too: within the budget, and it fools
    let l2 = FabParams {
        norm: Norm::L2,
        steps: 30,
        target_classes: 2,
        ..FabParams::new(1.5)
    }
    .check()
    .unwrap();
    let adv = perturb(&l2, model, &test).unwrap();
    assert!(distances(&adv, &test, Norm::L2).iter().all(|&d| d <= 1.5 + 1e-4));
    assert!(accuracy(model, &adv).unwrap() < clean - 0.2);
}

#[test]
fn fab_t_is_seeded_batch_independent_and_its_rules_are_errors() {
    let (model, data) = trained();
    let test = data.test.take(60).unwrap();
    let with = |batch_size, seed| {
        FabParams {
            steps: 15,
            restarts: 2,
            target_classes: 2,
            batch_size,
            seed,
            ..FabParams::new(0.06)
        }
        .check()
        .unwrap()
    };
    let a = perturb(&with(256, 4), model, &test).unwrap();
    let b = perturb(&with(256, 4), model, &test).unwrap();
    assert_eq!(max_abs_diff(a.images(), b.images()), 0.0);
    let c = perturb(&with(7, 4), model, &test).unwrap();
    let (va, vc) = (values(a.images()), values(c.images()));
    let same = va.iter().zip(&vc).filter(|(p, q)| (*p - *q).abs() < 1e-4).count();
    assert!(
        same as f64 >= 0.99 * va.len() as f64,
        "{same} of {} pixels equal",
        va.len()
    );
    assert!((accuracy(model, &a).unwrap() - accuracy(model, &c).unwrap()).abs() <= 1.0 / 60.0);
    let rule = |p: FabParams| p.check().unwrap_err();
    let d = FabParams::new(0.1);
    assert_eq!(
        rule(FabParams {
            alpha_max: 1.5,
            ..d.clone()
        }),
        ParamError::FabAlphaMax(1.5)
    );
    assert_eq!(rule(FabParams { eta: 0.5, ..d.clone() }), ParamError::FabEta(0.5));
    assert_eq!(rule(FabParams { beta: 0.0, ..d.clone() }), ParamError::FabBeta(0.0));
    assert_eq!(rule(FabParams { steps: 0, ..d.clone() }), ParamError::StepsZero);
    assert_eq!(
        rule(FabParams { target_classes: 0, ..d }),
        ParamError::TargetClassesZero
    );
    fails(
        "let d = synthetic(#{ train: 100, test: 20, seed: 1 });\nlet m = mlp([784, 16, 10]);\nlet a = fab_t(#{ eps: 0.1, n_target_classes: 10 });\nlet r = evaluate(m, d.test.take(5), [a]);",
        "n_target_classes 10 is more than the model's other classes (9)",
        "4:9",
    );
    fails("let a = fab_t(#{ eps: 0.1, eta: 0.9 });", "eta", "1:9");
}

/// An input transform whose backward pass fails: a model behind it answers queries, but any
/// gradient through it is an error.
#[derive(Debug)]
struct NoBackward;

impl candle_core::CustomOp1 for NoBackward {
    fn name(&self) -> &'static str {
        "no-backward"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let v = s.as_slice::<f32>()?;
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("no-backward: contiguous input expected")
        };
        Ok((candle_core::CpuStorage::F32(v[a..b].to_vec()), l.shape().clone()))
    }
}

impl std::fmt::Display for NoBackward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no_backward()")
    }
}

impl advlab::nn::Transform for NoBackward {
    fn name(&self) -> &'static str {
        "no_backward"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "transform": "no_backward" })
    }

    fn apply(&self, x: &candle_core::Tensor, _rng: &mut rand::rngs::StdRng) -> advlab::Result<candle_core::Tensor> {
        Ok(x.contiguous()?.apply_op1(NoBackward)?)
    }
}

#[test]
fn square_needs_no_gradient_and_standard_autoattack_has_four_stages() {
    use advlab::eval::{autoattack, AutoAttackParams};
    let (model, data) = trained();
    let test = data.test.take(80).unwrap();
    let blind = model.defended(vec![std::sync::Arc::new(NoBackward)]).unwrap();
    assert_eq!(accuracy(&blind, &test).unwrap(), accuracy(model, &test).unwrap());
    // a gradient attack fails on it (so the model really has no backward pass) ...
    let apgd = ApgdParams {
        steps: 5,
        ..ApgdParams::new(0.08)
    }
    .check()
    .unwrap();
    let e = perturb(&apgd, &blind, &test).unwrap_err().to_string();
    assert!(e.contains("no-backward"), "{e}");
    // ... and Square does not need one
    let sq = SquareParams {
        queries: 200,
        ..SquareParams::new(0.08)
    }
    .check()
    .unwrap();
    let adv = perturb(&sq, &blind, &test).unwrap();
    assert!(accuracy(&blind, &adv).unwrap() < accuracy(&blind, &test).unwrap());
    // the standard sequence: APGD-CE, APGD-T, FAB-T, Square, never rising, ending at the
    // adversarial set's accuracy, all within ε
    let p = AutoAttackParams {
        seed: 2,
        ..AutoAttackParams::new(0.06)
    };
    assert_eq!(p.version, "standard");
    let r = autoattack(model, &test, &p).unwrap();
    let names: Vec<&str> = r.stages.iter().map(|s| s.attack["attack"].as_str().unwrap()).collect();
    assert_eq!(names, ["apgd_ce", "apgd_t", "fab_t", "square"]);
    let mut prev = r.clean_accuracy;
    for s in &r.stages {
        assert!(s.robust_accuracy <= prev);
        prev = s.robust_accuracy;
    }
    assert_eq!(accuracy(model, &r.adversarial).unwrap(), r.robust_accuracy);
    assert!(distances(&r.adversarial, &test, Norm::Linf)
        .iter()
        .all(|&d| d <= 0.06 + 1e-6));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

/// The reference's checks: a randomised model and a model with zero input gradients each
/// produce their warning; a plain model none.
#[test]
fn autoattack_warns_of_randomised_models_and_zero_gradients() {
    let run = |script_model: &str| {
        let tmp = tempfile::tempdir().unwrap();
        let script = format!(
            "let d = synthetic(#{{ train: 300, test: 20, seed: 3 }});\n{script_model}\nlet r = autoattack(m, d.test, #{{ eps: 0.05, version: \"apgd\" }});\nprint(`warnings=${{r.warnings.len()}}`);\nfor w in r.warnings {{ print(w); }}"
        );
        let path = tmp.path().join("w.rhai");
        std::fs::write(&path, script).unwrap();
        let out = crate::common::advlab()
            .current_dir(tmp.path())
            .args(["run", path.to_str().unwrap(), "--out"])
            .arg(tmp.path().join("out"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let noisy = run("let m = defended(mlp([784, 32, 10]), [gaussian_noise(#{ std: 0.1, seed: 1 })]);");
    assert!(noisy.contains("randomised"), "{noisy}");
    let masked = run("let m = defended(mlp([784, 32, 10]), [bit_depth(#{ bits: 1, bpda: false })]);");
    assert!(masked.contains("input gradient of exactly zero"), "{masked}");
    let plain = run("let m = mlp([784, 32, 10]);");
    assert!(plain.contains("warnings=0"), "{plain}");
}
