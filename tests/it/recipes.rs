//! Training-time defences (recipes) and PGD restarts: robustness gained over plain training,
//! samples crafted from the current weights, the label-smoothing loss, seeds, and errors.

use crate::common::{advlab, fails, max_abs_diff, run_in, run_quick, script, trained, values};
use advlab::attack::{perturb, Attack, FgsmParams, NoiseParams, PgdParams};
use advlab::data::{synthetic, Splits, SyntheticParams};
use advlab::eval::accuracy;
use advlab::nn::{Arch, Model};
use advlab::train::{
    fit_with, smoothed_cross_entropy, ClusterTraining, ClusterTrainingParams, FastFgsmParams, FitParams, GuardParams,
    LabelSmoothingParams, MixedParams, PgdTrainingParams, Recipe, TradesParams, TrainingPlan,
};
use advlab::ParamError;
use candle_core::{Device, Tensor};
use predicates::str::contains;
use std::rc::Rc;
use std::sync::OnceLock;

const EPS: f64 = 0.1;

/// A checked recipe as the plan takes it.
trait IntoRc {
    fn into_rc(self) -> Rc<dyn Recipe>;
}

impl<R: Recipe + 'static> IntoRc for R {
    fn into_rc(self) -> Rc<dyn Recipe> {
        Rc::new(self)
    }
}

fn data() -> &'static Splits {
    static CELL: OnceLock<Splits> = OnceLock::new();
    CELL.get_or_init(|| {
        synthetic(
            &SyntheticParams {
                train: 3000,
                test: 500,
                seed: 1,
            },
            &Device::Cpu,
        )
        .unwrap()
    })
}

fn fresh() -> Model {
    Model::new(Arch::mlp(vec![784, 64, 10]).unwrap(), &Device::Cpu, 2).unwrap()
}

fn fit_params(epochs: usize) -> advlab::train::FitValid {
    FitParams {
        epochs,
        seed: 1,
        ..FitParams::default()
    }
    .check()
    .unwrap()
}

/// A fresh MLP trained 5 epochs on the synthetic set under `defence`.
fn train(recipes: Vec<Rc<dyn Recipe>>) -> (Model, advlab::train::FitHistory) {
    let model = fresh();
    let h = fit_with(
        &model,
        &data().train,
        &fit_params(5),
        &TrainingPlan::new(recipes).unwrap(),
    )
    .unwrap();
    (model, h)
}

fn pgd_accuracy(model: &Model) -> f64 {
    let attack = PgdParams {
        steps: 10,
        seed: 5,
        ..PgdParams::new(EPS)
    }
    .check()
    .unwrap();
    accuracy(model, &perturb(&attack, model, &data().test).unwrap()).unwrap()
}

fn attacks() -> Vec<Rc<dyn Attack>> {
    vec![
        Rc::new(
            PgdParams {
                steps: 5,
                ..PgdParams::new(EPS)
            }
            .check()
            .unwrap(),
        ),
        Rc::new(FgsmParams::new(EPS).check().unwrap()),
        Rc::new(NoiseParams::new(EPS).check().unwrap()),
    ]
}

fn pgd_training() -> Rc<dyn Recipe> {
    Rc::new(
        PgdTrainingParams {
            steps: 5,
            ..PgdTrainingParams::new(EPS)
        }
        .check()
        .unwrap(),
    )
}

fn fast_fgsm(guard: usize) -> Rc<dyn Recipe> {
    Rc::new(
        FastFgsmParams {
            guard: GuardParams {
                samples: guard,
                ..GuardParams::default()
            },
            ..FastFgsmParams::new(EPS)
        }
        .check()
        .unwrap(),
    )
}

fn trades() -> Rc<dyn Recipe> {
    Rc::new(
        TradesParams {
            beta: 3.0,
            steps: 5,
            ..TradesParams::new(EPS)
        }
        .check()
        .unwrap(),
    )
}

fn mixed(p: f64) -> Rc<dyn Recipe> {
    Rc::new(
        MixedParams {
            p,
            ..MixedParams::new(attacks())
        }
        .check()
        .unwrap(),
    )
}

fn cluster_training(seed: u64) -> ClusterTraining {
    ClusterTrainingParams {
        k: 2,
        augment: true,
        seed,
        ..ClusterTrainingParams::new(attacks().swap_remove(0))
    }
    .check()
    .unwrap()
}

fn cluster(seed: u64) -> Rc<dyn Recipe> {
    Rc::new(cluster_training(seed))
}

fn smoothing(amount: f64) -> Rc<dyn Recipe> {
    Rc::new(LabelSmoothingParams { amount }.check().unwrap())
}

#[test]
fn every_recipe_improves_pgd_accuracy_over_plain_training() {
    let (plain, _) = train(vec![]);
    let base = pgd_accuracy(&plain);
    assert!(
        base < 0.5,
        "plain training is already robust ({base}): the test cannot tell"
    );
    let cases: Vec<(&str, Vec<Rc<dyn Recipe>>)> = vec![
        ("pgd_training", vec![pgd_training()]),
        ("fast_fgsm_training", vec![fast_fgsm(200)]),
        ("trades", vec![trades()]),
        ("mixed_training", vec![mixed(0.5)]),
        ("cluster_training", vec![cluster(0)]),
        ("label_smoothing + mixed_training", vec![smoothing(0.1), mixed(0.5)]),
        ("label_smoothing + pgd_training", vec![smoothing(0.1), pgd_training()]),
    ];
    for (name, recipes) in cases {
        let (model, h) = train(recipes);
        let robust = pgd_accuracy(&model);
        let clean = accuracy(&model, &data().test).unwrap();
        eprintln!("{name}: PGD accuracy {robust:.3} (plain {base:.3}), clean {clean:.3}");
        assert!(
            robust >= base + 0.1,
            "{name}: PGD accuracy {robust} is not 10 points above plain training's {base}"
        );
        assert!(clean > 0.6, "{name}: clean accuracy {clean}");
        assert_eq!(h.epochs.len(), 5);
    }
}

#[test]
fn each_recipe_reports_what_it_measured() {
    let (_, h) = train(vec![fast_fgsm(200)]);
    for e in &h.epochs {
        for k in ["guard_clean", "guard_pgd"] {
            let v = e.measured[k];
            assert!((0.0..=1.0).contains(&v), "{k} = {v}");
        }
    }
    assert_eq!(h.outcome["guard_samples"], 200);
    assert_eq!(h.outcome["catastrophic_overfitting"], false);
    assert!(h.outcome["best_epoch"].as_u64().is_some());

    let (_, h) = train(vec![trades()]);
    let last = &h.epochs[4].measured;
    assert!(
        last["kl"] > 0.0 && last["adv_accuracy"] <= h.epochs[4].accuracy + 0.05,
        "{last:?}"
    );
    // the loss is CE + beta·KL
    let e = &h.epochs[4];
    assert!(
        (e.loss - (last["cross_entropy"] + 3.0 * last["kl"])).abs() < 1e-3,
        "{e:?}"
    );

    let (_, h) = train(vec![mixed(0.5)]);
    let counts = h.outcome["attack_batches"].as_object().unwrap();
    let total: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 5 * 3000u64.div_ceil(128));
    for k in ["clean", "pgd", "fgsm", "noise"] {
        assert!(counts[k].as_u64().unwrap() > 5, "{k} drawn too rarely: {counts:?}");
    }
    let attacked: f64 = h.epochs.iter().map(|e| e.measured["attacked"]).sum::<f64>() / 5.0;
    assert!((attacked - 0.5).abs() < 0.15, "attacked share {attacked}");
}

#[test]
fn mixed_training_with_p_zero_is_plain_training_and_with_p_one_attacks_every_batch() {
    let (plain, _) = train(vec![]);
    let (never, h) = train(vec![mixed(0.0)]);
    for ((_, a), (_, b)) in plain.named_params().zip(never.named_params()) {
        assert_eq!(max_abs_diff(a, b), 0.0);
    }
    assert!(h.epochs.iter().all(|e| e.measured["attacked"] == 0.0));
    let (_, h) = train(vec![mixed(1.0)]);
    assert!(h.epochs.iter().all(|e| e.measured["attacked"] == 1.0));
    assert!(!h.outcome["attack_batches"].as_object().unwrap().contains_key("clean"));
}

#[test]
fn samples_are_crafted_from_the_current_weights() {
    let model = trained().0.clone();
    // attacks that read the weights (noise does not)
    let weighted: Rc<dyn Recipe> = Rc::new(
        MixedParams {
            p: 1.0,
            ..MixedParams::new(attacks().into_iter().take(2).collect())
        }
        .check()
        .unwrap(),
    );
    let batch = data().train.take(64).unwrap();
    let (x, y) = (batch.images(), batch.labels());
    for recipe in [pgd_training(), fast_fgsm(0), trades(), weighted] {
        let name = recipe.name();
        let d = TrainingPlan::new(vec![recipe]).unwrap();
        let a = d.craft(&model, x, y, 0, 0).unwrap();
        let again = d.craft(&model, x, y, 0, 0).unwrap();
        assert_eq!(max_abs_diff(&a, &again), 0.0, "{name}: not deterministic");
        assert!(max_abs_diff(&a, x) > 0.01, "{name}: the batch was not perturbed");
        assert!(max_abs_diff(&a, x) <= EPS as f32 + 1e-6, "{name}: outside the budget");
        assert!(!a.track_op(), "{name}: the crafted batch holds a graph");
        // the same model with one weight tensor changed crafts another batch
        let changed = model.deep_clone().unwrap();
        let vars = changed.vars();
        let w = vars[0].as_tensor();
        vars[0].set(&(w * -1.0).unwrap()).unwrap();
        let b = d.craft(&changed, x, y, 0, 0).unwrap();
        let moved = values(&a)
            .iter()
            .zip(values(&b))
            .filter(|(p, q)| (*p - q).abs() > 1e-6)
            .count();
        assert!(moved > 1000, "{name}: only {moved} pixels changed with the weights");
        // another batch index draws another random start
        if name == "pgd_training" || name == "fast_fgsm_training" {
            let c = d.craft(&model, x, y, 0, 1).unwrap();
            assert!(
                max_abs_diff(&a, &c) > 0.0,
                "{name}: the same random start for every batch"
            );
        }
    }
    // cluster training crafts a whole epoch's samples from the current weights
    let small = data().train.take(300).unwrap();
    let c = cluster_training(0);
    let (a, _, k) = c.epoch_samples(&model, &small, 0).unwrap();
    let (again, _, _) = c.epoch_samples(&model, &small, 0).unwrap();
    assert_eq!(k, 2);
    assert!(
        a.len() > 300 && a.len() < 600,
        "clean set plus one cluster: {}",
        a.len()
    );
    assert_eq!(max_abs_diff(a.images(), again.images()), 0.0);
    let changed = model.deep_clone().unwrap();
    let w = changed.vars()[0].as_tensor() * -1.0;
    changed.vars()[0].set(&w.unwrap()).unwrap();
    let (b, _, _) = c.epoch_samples(&changed, &small, 0).unwrap();
    let tail = |d: &advlab::data::Dataset| values(&d.images().narrow(0, 300, d.len() - 300).unwrap());
    assert!(
        tail(&a) != tail(&b),
        "cluster_training: the same samples from other weights"
    );
    // crafting reads the weights without changing them
    let before: Vec<Vec<f32>> = model.named_params().map(|(_, t)| values(t)).collect();
    TrainingPlan::new(vec![pgd_training()])
        .unwrap()
        .craft(&model, x, y, 3, 7)
        .unwrap();
    let after: Vec<Vec<f32>> = model.named_params().map(|(_, t)| values(t)).collect();
    assert_eq!(before, after);
}

/// `-(1−a)·log p_y − (a/K)·Σ_k log p_k`, averaged over samples, in f64 from the logits.
fn hand_smoothed(logits: &Tensor, y: &Tensor, a: f64) -> f64 {
    let rows = logits.to_vec2::<f32>().unwrap();
    let labels = y.to_vec1::<u32>().unwrap();
    let mut total = 0.0;
    for (row, &label) in rows.iter().zip(&labels) {
        let max = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        let logp: Vec<f64> = row.iter().map(|&v| v as f64 - lse).collect();
        let k = logp.len() as f64;
        total += -(1.0 - a) * logp[label as usize] - a / k * logp.iter().sum::<f64>();
    }
    total / rows.len() as f64
}

#[test]
fn label_smoothing_changes_the_loss_as_defined() {
    let batch = data().train.take(100).unwrap();
    let model = fresh();
    let logits = model.forward(batch.images()).unwrap();
    for a in [0.0, 0.1, 0.5] {
        let got = smoothed_cross_entropy(&logits, batch.labels(), a)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let want = hand_smoothed(&logits, batch.labels(), a);
        assert!((got - want).abs() < 1e-5, "amount {a}: {got} vs {want}");
    }
    // through fit: one batch of the whole set, so the epoch's loss is the loss at the start
    let p = FitParams {
        epochs: 1,
        batch_size: 100,
        seed: 1,
        ..FitParams::default()
    }
    .check()
    .unwrap();
    let h = fit_with(&model, &batch, &p, &TrainingPlan::new(vec![smoothing(0.2)]).unwrap()).unwrap();
    let want = hand_smoothed(&logits, batch.labels(), 0.2);
    assert!((h.epochs[0].loss - want).abs() < 1e-5, "{} vs {want}", h.epochs[0].loss);
    let ce = hand_smoothed(&logits, batch.labels(), 0.0);
    assert!((h.epochs[0].measured["cross_entropy"] - ce).abs() < 1e-5);
    assert!(want > ce, "smoothing a confident-free start must raise the loss");
}

#[test]
fn the_same_seed_gives_identical_weights_and_another_seed_other_weights() {
    let small = data().train.take(600).unwrap();
    let p = fit_params(2);
    let run = |recipe: Rc<dyn Recipe>| {
        let model = fresh();
        fit_with(
            &model,
            &small,
            &p,
            &TrainingPlan::new(vec![smoothing(0.1), recipe]).unwrap(),
        )
        .unwrap();
        model.named_params().map(|(_, t)| values(t)).collect::<Vec<_>>()
    };
    let with_seed = |seed: u64| -> Vec<Rc<dyn Recipe>> {
        vec![
            PgdTrainingParams {
                steps: 3,
                seed,
                ..PgdTrainingParams::new(EPS)
            }
            .check()
            .unwrap()
            .into_rc(),
            FastFgsmParams {
                seed,
                guard: GuardParams {
                    samples: 100,
                    ..GuardParams::default()
                },
                ..FastFgsmParams::new(EPS)
            }
            .check()
            .unwrap()
            .into_rc(),
            TradesParams {
                steps: 3,
                seed,
                ..TradesParams::new(EPS)
            }
            .check()
            .unwrap()
            .into_rc(),
            MixedParams {
                seed,
                ..MixedParams::new(attacks())
            }
            .check()
            .unwrap()
            .into_rc(),
            cluster(seed),
        ]
    };
    let (ones, twos) = (with_seed(1), with_seed(2));
    for (i, (a, c)) in ones.into_iter().zip(twos).enumerate() {
        let name = a.name();
        let b = with_seed(1).swap_remove(i);
        let wa = run(a);
        assert!(wa == run(b), "{name}: the same seed gave other weights");
        assert!(wa != run(c), "{name}: the recipe's seed is ignored");
    }
}

#[test]
fn pgd_restarts_never_raise_robust_accuracy_and_follow_the_seed() {
    let (model, data) = trained();
    let test = data.test.take(300).unwrap();
    let attack = |restarts: usize, seed: u64| {
        PgdParams {
            steps: 5,
            alpha: Some(0.01),
            restarts,
            seed,
            ..PgdParams::new(0.06)
        }
        .check()
        .unwrap()
    };
    let one = perturb(&attack(1, 3), model, &test).unwrap();
    let acc1 = accuracy(model, &one).unwrap();
    let clean = accuracy(model, &test).unwrap();
    assert!(
        acc1 > 0.05 && acc1 < clean - 0.05,
        "pick a budget where PGD is partial: {acc1}"
    );
    let five = perturb(&attack(5, 3), model, &test).unwrap();
    let acc5 = accuracy(model, &five).unwrap();
    assert!(acc5 <= acc1, "restarts raised robust accuracy: {acc5} > {acc1}");
    // per sample: a sample fooled by the single run stays fooled
    let p1 = advlab::eval::predict(model, &one).unwrap().to_vec1::<u32>().unwrap();
    let p5 = advlab::eval::predict(model, &five).unwrap().to_vec1::<u32>().unwrap();
    let y = test.labels().to_vec1::<u32>().unwrap();
    for i in 0..y.len() {
        assert!(
            p1[i] == y[i] || p5[i] != y[i],
            "sample {i} was fooled by one run, not by five"
        );
    }
    let again = perturb(&attack(5, 3), model, &test).unwrap();
    assert_eq!(max_abs_diff(five.images(), again.images()), 0.0);
    let other = perturb(&attack(5, 4), model, &test).unwrap();
    assert!(max_abs_diff(five.images(), other.images()) > 0.0);
    assert!(max_abs_diff(five.images(), test.images()) <= 0.06 + 1e-6);
    let v = values(five.images());
    assert!(v.iter().all(|p| (0.0..=1.0).contains(p)));
    assert_eq!(attack(5, 3).params()["restarts"], 5);
    assert!(attack(5, 3).to_string().contains("restarts=5"));
}

#[test]
fn parameter_rules_of_the_recipes() {
    assert_eq!(
        PgdParams {
            restarts: 0,
            ..PgdParams::new(0.1)
        }
        .check()
        .err(),
        Some(ParamError::RestartsZero)
    );
    assert_eq!(
        PgdParams::bim(0.1).check().map(|_| ()),
        Ok(()),
        "one run without a random start is fine"
    );
    assert_eq!(
        PgdParams {
            restarts: 3,
            ..PgdParams::bim(0.1)
        }
        .check()
        .err(),
        Some(ParamError::RestartsWithoutRandomStart(3))
    );
    for eps in [0.0, -0.1, 1.5] {
        assert_eq!(
            PgdTrainingParams::new(eps).check().err(),
            Some(ParamError::RecipeEps(eps))
        );
        assert_eq!(FastFgsmParams::new(eps).check().err(), Some(ParamError::RecipeEps(eps)));
        assert_eq!(TradesParams::new(eps).check().err(), Some(ParamError::RecipeEps(eps)));
    }
    assert!(matches!(
        PgdTrainingParams::new(f64::NAN).check(),
        Err(ParamError::RecipeEps(_))
    ));
    assert!(PgdTrainingParams::new(1.0).check().is_ok());
    assert_eq!(
        PgdTrainingParams {
            steps: 0,
            ..PgdTrainingParams::new(0.3)
        }
        .check()
        .err(),
        Some(ParamError::StepsZero)
    );
    assert_eq!(
        PgdTrainingParams {
            alpha: Some(-1.0),
            ..PgdTrainingParams::new(0.3)
        }
        .check()
        .err(),
        Some(ParamError::AlphaNotPositive(-1.0))
    );
    assert_eq!(
        FastFgsmParams {
            alpha: Some(0.0),
            ..FastFgsmParams::new(0.3)
        }
        .check()
        .err(),
        Some(ParamError::AlphaNotPositive(0.0))
    );
    let guard = |g: GuardParams| {
        FastFgsmParams {
            guard: g,
            ..FastFgsmParams::new(0.3)
        }
        .check()
        .err()
    };
    assert_eq!(
        guard(GuardParams {
            steps: 0,
            ..GuardParams::default()
        }),
        Some(ParamError::GuardStepsZero)
    );
    assert_eq!(
        guard(GuardParams {
            drop: 0.0,
            ..GuardParams::default()
        }),
        Some(ParamError::GuardDrop(0.0))
    );
    assert_eq!(
        guard(GuardParams {
            drop: 1.5,
            ..GuardParams::default()
        }),
        Some(ParamError::GuardDrop(1.5))
    );
    assert_eq!(
        TradesParams {
            beta: -1.0,
            ..TradesParams::new(0.3)
        }
        .check()
        .err(),
        Some(ParamError::BetaNegative(-1.0))
    );
    assert!(TradesParams {
        beta: 0.0,
        ..TradesParams::new(0.3)
    }
    .check()
    .is_ok());
    assert_eq!(MixedParams::new(vec![]).check().err(), Some(ParamError::NoAttacks));
    for p in [-0.1, 1.1] {
        assert_eq!(
            MixedParams {
                p,
                ..MixedParams::new(attacks())
            }
            .check()
            .err(),
            Some(ParamError::AttackProbability(p))
        );
    }
    assert_eq!(
        LabelSmoothingParams { amount: 1.0 }.check().err(),
        Some(ParamError::SmoothingAmount(1.0))
    );
    assert_eq!(
        LabelSmoothingParams { amount: -0.1 }.check().err(),
        Some(ParamError::SmoothingAmount(-0.1))
    );
    assert!(LabelSmoothingParams { amount: 0.0 }.check().is_ok());
    assert_eq!(
        TrainingPlan::new(vec![pgd_training(), trades()]).err(),
        Some(ParamError::TwoCraftingRecipes("pgd_training".into(), "trades".into()))
    );
    assert_eq!(
        TrainingPlan::new(vec![smoothing(0.1), smoothing(0.2)]).err(),
        Some(ParamError::SmoothingTwice)
    );
    // the guard cannot hold out the whole training set
    let err = fit_with(
        &fresh(),
        &data().train.take(100).unwrap(),
        &fit_params(1),
        &TrainingPlan::new(vec![fast_fgsm(500)]).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("guard_samples (500) must be fewer than the training samples (100)"),
        "{err}"
    );
}

#[test]
fn recipes_print_and_record_their_resolved_parameters() {
    assert_eq!(
        pgd_training().to_string(),
        "pgd_training(eps=0.1, alpha=0.05, steps=5, seed=0, random_start=true, keep_best=false)"
    );
    assert!(fast_fgsm(500)
        .to_string()
        .starts_with("fast_fgsm_training(eps=0.1, alpha=0.125, seed=0, guard_samples=500"));
    assert_eq!(trades().params()["alpha"], 0.05);
    assert_eq!(smoothing(0.1).to_string(), "label_smoothing(amount=0.1)");
    let m = mixed(0.5).to_string();
    assert!(
        m.starts_with("mixed_training(p=0.5, seed=0, attacks=[PGD(eps=0.1"),
        "{m}"
    );
    let d = TrainingPlan::new(vec![smoothing(0.1), mixed(0.5)]).unwrap();
    assert!(d
        .to_string()
        .starts_with("label_smoothing(amount=0.1) + mixed_training("));
    assert_eq!(d.params()[1]["attacks"][1]["attack"], "fgsm");
}

#[test]
fn recipes_from_a_script_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "s.rhai",
        r#"
let d = synthetic(#{ train: 600, test: 100, seed: 1 });
let m = mlp([784, 32, 10], #{ seed: 1 });
let r = fast_fgsm_training(#{ eps: 0.1, guard_samples: 100, guard_steps: 3 });
print(r);
print(`type=${type_of(r)} name=${r.name} alpha=${r.params().alpha}`);
let h = m.fit(d.train, #{ epochs: 2, seed: 1, defence: r });
print(`guard=${h.guard_pgd.len()} co=${h.catastrophic_overfitting} best=${h.best_epoch} defence=${h.defence}`);
let h = m.fit(d.train, #{ epochs: 1, defence: [label_smoothing(#{ amount: 0.1 }),
    mixed_training(#{ attacks: [pgd(#{ eps: 0.1, steps: 3 }), fgsm(#{ eps: 0.1 }), noise(#{ eps: 0.1 })], p: 0.5, seed: 3 })] });
print(`ce=${h.cross_entropy.len()} attacked=${h.attacked.len()} batches=${h.attack_batches}`);
let h = m.fit(d.train, #{ epochs: 1, defence: trades(#{ eps: 0.1, steps: 2, beta: 6.0 }) });
print(`kl=${h.kl[0] > 0.0}`);
m.fit(d.train, #{ epochs: 1, defence: pgd_training(#{ eps: 0.1, steps: 2 }) });
let h = m.fit(d.train, #{ epochs: 2, defence: cluster_training(#{ attack: fgsm(#{ eps: 0.1 }), k: 2, augment: true }) });
print(`clusters=${h.clusters} grew=${h.samples[0] > 600.0}`);
let a = pgd(#{ eps: 0.1, steps: 3, restarts: 3 });
print(`${a}`);
print(evaluate(m, d.test, [a]));
write_json("out/h.json", h);
"#,
    );
    let out = run_in(tmp.path(), &s).success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for want in [
        "fast_fgsm_training(eps=0.1, alpha=0.125, seed=0, guard_samples=100, guard_steps=3, guard_drop=0.5, stop_on_overfit=false)",
        "type=Recipe name=fast_fgsm_training alpha=0.125",
        "guard=2 co=false",
        "defence=fast_fgsm_training(eps=0.1",
        "ce=1 attacked=1 batches=#{",
        "kl=true",
        "restarts=3",
        "clusters=[2.0, 2.0] grew=true",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("with fast_fgsm_training epoch 2/2"), "{stderr}");
    // the fit record (provenance) holds every recipe's resolved parameters
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("out/h.json.meta.json")).unwrap()).unwrap();
    let fits: Vec<&serde_json::Value> = meta["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["op"] == "fit")
        .collect();
    assert_eq!(fits.len(), 5);
    assert_eq!(fits[0]["defence"][0]["recipe"], "fast_fgsm_training");
    assert_eq!(fits[0]["defence"][0]["alpha"], 0.125);
    assert_eq!(fits[0]["outcome"]["guard_samples"], 100);
    assert_eq!(fits[1]["defence"][0]["amount"], 0.1);
    assert_eq!(fits[1]["defence"][1]["attacks"][0]["steps"], 3);
    assert_eq!(fits[2]["defence"][0]["beta"], 6.0);
    assert_eq!(fits[4]["defence"][0]["algorithm"], "kmeans");
    assert_eq!(fits[4]["defence"][0]["attack"]["attack"], "fgsm");
}

#[test]
fn bad_recipe_options_are_clear_errors_at_their_position() {
    let fit = "let d = synthetic(#{ train: 50, test: 10 });\nlet m = mlp([784, 8, 10]);\n";
    fails(
        "let r = pgd_training(#{ steps: 3 });",
        "pgd_training: option `eps` is required",
        "1:9",
    );
    fails(
        "let r = pgd_training(#{ eps: 1.5 });",
        "pgd_training: eps of a training recipe must be in (0, 1]",
        "1:9",
    );
    fails(
        "let r = pgd_training(#{ eps: 0.3, steps: 0 });",
        "pgd_training: steps must be at least 1",
        "1:9",
    );
    fails(
        "let r = trades(#{ eps: 0.3, beta: -2 });",
        "trades: beta (the weight of the KL term) must be",
        "1:9",
    );
    fails(
        "let r = trades(#{ eps: 0.3, betta: 2 });",
        "unknown option `betta` (did you mean `beta`?)",
        "1:29",
    );
    fails(
        "let r = fast_fgsm_training(#{ eps: 0.0 });",
        "fast_fgsm_training: eps of a training recipe",
        "1:9",
    );
    fails(
        "let r = fast_fgsm_training(#{ eps: 0.3, guard_drop: 0 });",
        "guard_drop",
        "1:9",
    );
    fails(
        "let r = mixed_training(#{ p: 0.5 });",
        "mixed_training: option `attacks` is required",
        "1:9",
    );
    fails(
        "let r = mixed_training(#{ attacks: [] });",
        "attacks must list at least one attack",
        "1:9",
    );
    fails(
        "let r = mixed_training(#{ attacks: [fgsm(#{ eps: 0.1 })], p: 1.5 });",
        "p (the probability of attacking a batch) must be in [0, 1] (got 1.5)",
        "1:9",
    );
    fails(
        "let r = mixed_training(#{ attacks: [fgsm(#{ eps: 0.1 }), 3] });",
        "element 1 of the attack list is i64, not an Attack",
        "1:9",
    );
    fails(
        "let r = label_smoothing(#{ amount: 1.0 });",
        "amount (of label smoothing) must be in [0, 1)",
        "1:9",
    );
    fails(
        "let a = pgd(#{ eps: 0.3, restarts: 0 });",
        "pgd: restarts must be at least 1",
        "1:9",
    );
    fails(
        "let a = pgd(#{ eps: 0.3, restarts: 4, random_start: false });",
        "restarts = 4 needs random_start: true",
        "1:9",
    );
    fails(
        &format!("{fit}m.fit(d.train, #{{ defence: [pgd_training(#{{ eps: 0.1 }}), trades(#{{ eps: 0.1 }})] }});"),
        "fit: a defence crafts its samples with one recipe, got both pgd_training and trades",
        "3:3",
    );
    fails(
        &format!("{fit}m.fit(d.train, #{{ defence: fgsm(#{{ eps: 0.1 }}) }});"),
        "fit: option `defence` must be a Recipe or an array of recipes",
        "3:3",
    );
    fails(
        &format!("{fit}m.fit(d.train, #{{ defence: [label_smoothing(#{{}}), 1] }});"),
        "fit: element 1 of the defence list is i64, not a Recipe",
        "3:3",
    );
    fails(
        &format!("{fit}m.fit(d.train, #{{ defence: fast_fgsm_training(#{{ eps: 0.1 }}) }});"),
        "guard_samples (500) must be fewer than the training samples (50)",
        "3:3",
    );
}

#[test]
fn recipes_mnist_script_runs_quick() {
    let Some((tmp, stdout)) = run_quick("recipes_mnist.rhai", &[]) else {
        return;
    };
    assert!(stdout.contains("pgd40_restarts"), "{stdout}");
    let dir = tmp.path().join("out/recipes_mnist/quick");
    for f in ["model.safetensors", "history.csv", "results.json", "results.csv"] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let (clean, pgd, restarts) = (
        r["clean"].as_f64().unwrap(),
        r["pgd40"].as_f64().unwrap(),
        r["pgd40_restarts"].as_f64().unwrap(),
    );
    assert!(restarts <= pgd && pgd <= clean, "{r}");
    assert!(r["recipe"]
        .as_str()
        .unwrap()
        .starts_with("fast_fgsm_training(eps=0.3, alpha=0.375"));
    // the other recipes, which have no guard
    let (tmp, stdout) = run_quick("recipes_mnist.rhai", &["recipe=pgd", "steps=2"]).unwrap();
    assert!(
        stdout.contains("pgd_training(eps=0.3, alpha=0.375, steps=2"),
        "{stdout}"
    );
    assert!(tmp.path().join("out/recipes_mnist_pgd/quick/results.json").is_file());
}

#[test]
fn recipes_synthetic_script_ranks_every_crafting_recipe_above_plain_training() {
    let tmp = tempfile::tempdir().unwrap();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/recipes_synthetic.rhai");
    advlab()
        .args([
            "run",
            script.to_str().unwrap(),
            "--out",
            tmp.path().join("out").to_str().unwrap(),
        ])
        .assert()
        .success()
        .stdout(contains("pgd_restarts"));
    let mut r = csv::Reader::from_path(tmp.path().join("out/recipes_synthetic.csv")).unwrap();
    let rows: Vec<(String, f64, f64)> = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[0].to_string(), rec[3].parse().unwrap(), rec[4].parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 9);
    let plain = rows[0].1;
    assert_eq!(rows[0].0, "plain training");
    for (name, pgd, restarts) in &rows {
        assert!(restarts <= pgd, "{name}: restarts raised accuracy");
        // every row but plain training and label smoothing alone crafts adversarial samples
        if name != "plain training" && name != "label_smoothing 0.1" {
            assert!(*pgd >= plain + 0.1, "{name}: {pgd} against plain {plain}");
        }
    }
}

#[test]
fn the_cyclic_schedule_rises_to_lr_at_two_fifths_and_falls_to_zero() {
    use advlab::train::LrSchedule;
    let rates: Vec<f64> = (0..100).map(|t| LrSchedule::Cyclic.rate(0.005, t, 100, 10)).collect();
    assert!((rates[0] - 0.005 / 40.0).abs() < 1e-12, "{}", rates[0]);
    assert!((rates[39] - 0.005).abs() < 1e-12);
    assert_eq!(rates[99], 0.0);
    assert!(rates[..40].windows(2).all(|w| w[1] > w[0]));
    assert!(rates[39..].windows(2).all(|w| w[1] < w[0]));
    assert!((0..100).all(|t| LrSchedule::Constant.rate(0.005, t, 100, 10) == 0.005));
    assert_eq!(
        FitParams {
            lr_schedule: "step".into(),
            ..FitParams::default()
        }
        .check()
        .err(),
        Some(ParamError::UnknownLrSchedule("step".into()))
    );
    // the schedule reaches the optimizer: another schedule, other weights
    let small = data().train.take(500).unwrap();
    let run = |schedule: &str| {
        let model = fresh();
        let p = FitParams {
            epochs: 2,
            seed: 1,
            lr_schedule: schedule.into(),
            ..FitParams::default()
        }
        .check()
        .unwrap();
        fit_with(&model, &small, &p, &TrainingPlan::none()).unwrap();
        model.named_params().map(|(_, t)| values(t)).collect::<Vec<_>>()
    };
    assert!(run("constant") != run("cyclic"));
    fails(
        "let d = synthetic(#{ train: 50, test: 10 });\nlet m = mlp([784, 8, 10]);\nm.fit(d.train, #{ lr_schedule: \"linear\" });",
        "unknown lr_schedule \"linear\": use \"constant\", \"cyclic\", \"cosine\", \"multistep\" or \"piecewise\"",
        "3:3",
    );
}
