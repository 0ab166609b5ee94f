//! Attacks: `fgsm`, `bim`, `pgd` (L∞ and L2), `cw_l2`, `deepfool`, `noise`, `universal`, and
//! what every attack can do (`perturb`, `params`, `with_eps`).

use super::error::{to_rhai, RResult};
use super::keys;
use super::opts::Opts;
use super::{def, def_get, Reg, Session};
use crate::attack::loss::LossKind;
use crate::attack::{
    fooling_rate, perturb, ApgdParams, Attack, CwL2Params, DeepFoolParams, FgsmParams, NoiseKind, NoiseParams, Norm,
    PgdParams, Target, Universal, UniversalParams, UniversalSearch,
};
use crate::attack::{FabParams, SquareParams};
use crate::data::Dataset;
use crate::error::ParamError;
use crate::nn::Model;
use candle_core::Tensor;
use rhai::{Dynamic, Map, INT};
use std::rc::Rc;

/// A script handle to a checked attack.
#[derive(Clone, Debug)]
pub(crate) struct AttackRef(pub Rc<dyn Attack>);

/// Attack `data` and record what was done.
pub(crate) fn run_attack(s: &Session, a: &dyn Attack, m: &Model, d: &Dataset) -> RResult<Dataset> {
    let adv = perturb(a, m, d).map_err(to_rhai)?;
    s.record(serde_json::json!({ "op": "perturb", "attack": a.params(), "model": m.arch(), "data": d.name(), "samples": d.len() }));
    Ok(adv)
}

/// A checked attack as a script value, or the broken rule prefixed with the function's name.
fn attack<A: Attack + 'static>(func: &str, checked: Result<A, ParamError>) -> RResult<AttackRef> {
    checked
        .map(|a| AttackRef(Rc::new(a)))
        .map_err(|e| to_rhai(format!("{func}: {e}")))
}

/// A rule broken while reading options, prefixed with the function's name.
fn rule(o: &Opts, e: ParamError) -> Box<rhai::EvalAltResult> {
    to_rhai(format!("{}: {e}", o.func()))
}

/// The required `eps` option.
fn eps(o: &Opts, example: &str) -> RResult<f64> {
    o.f64("eps")?
        .ok_or_else(|| to_rhai(format!("{}: option `eps` is required, e.g. {example}", o.func())))
}

/// The `norm` option (`default` when absent).
fn norm(o: &Opts, default: Norm) -> RResult<Norm> {
    match o.string("norm")? {
        Some(n) => Norm::parse(&n).map_err(|e| rule(o, e)),
        None => Ok(default),
    }
}

/// The `target` option: absent (untargeted), a class number, "least_likely" or "random"
/// (drawn per sample from `seed`).
fn target(o: &Opts, seed: u64) -> RResult<Target> {
    let Some(v) = o.get("target") else {
        return Ok(Target::Untargeted);
    };
    if let Some(c) = v.clone().try_cast::<INT>() {
        return u32::try_from(c)
            .map(Target::Class)
            .map_err(|_| rule(o, ParamError::TargetNegative(c)));
    }
    match v.clone().into_string().as_deref() {
        Ok("least_likely") => Ok(Target::LeastLikely),
        Ok("random") => Ok(Target::Random(seed)),
        Ok(other) => Err(rule(o, ParamError::UnknownTarget(other.to_string()))),
        Err(_) => Err(rule(o, ParamError::UnknownTarget(v.to_string()))),
    }
}

/// The options APGD and APGD-T share, on top of `base`.
fn apgd_common(o: &Opts, s: &Session, base: ApgdParams) -> RResult<ApgdParams> {
    Ok(ApgdParams {
        norm: norm(o, base.norm)?,
        steps: o.usize("steps")?.unwrap_or(base.steps),
        restarts: o.usize("restarts")?.unwrap_or(base.restarts),
        rho: o.f64("rho")?.unwrap_or(base.rho),
        seed: o.u64("seed")?.unwrap_or(s.seed),
        eot: o.usize("eot")?.unwrap_or(base.eot),
        batch_size: o.usize("batch_size")?.unwrap_or(base.batch_size),
        ..base
    })
}

/// The options PGD and BIM share, on top of `base`.
fn iterative(o: &Opts, s: &Session, base: PgdParams) -> RResult<PgdParams> {
    let seed = o.u64("seed")?.unwrap_or(s.seed);
    Ok(PgdParams {
        steps: o.usize("steps")?.unwrap_or(base.steps),
        alpha: o.f64("alpha")?,
        seed,
        batch_size: o.usize("batch_size")?.unwrap_or(base.batch_size),
        keep_best: o.bool("keep_best")?.unwrap_or(base.keep_best),
        target: target(o, seed)?,
        eot: o.usize("eot")?.unwrap_or(base.eot),
        ..base
    })
}

fn attack_arg(a: &Dynamic, i: usize, func: &str) -> RResult<AttackRef> {
    a.clone().try_cast::<AttackRef>().ok_or_else(|| {
        to_rhai(format!(
            "{func}: element {i} of the attack list is {}, not an Attack",
            a.type_name()
        ))
    })
}

/// An array of attacks (or a single attack) as a list.
pub(crate) fn attack_list(v: &Dynamic, func: &str) -> RResult<Vec<AttackRef>> {
    if let Some(a) = v.clone().try_cast::<AttackRef>() {
        return Ok(vec![a]);
    }
    match v.clone().into_array() {
        Ok(arr) => arr.iter().enumerate().map(|(i, a)| attack_arg(a, i, func)).collect(),
        Err(t) => Err(to_rhai(format!(
            "{func}: expected an Attack or an array of attacks, got {t}"
        ))),
    }
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<AttackRef>("Attack");
    reg.engine.register_type_with_name::<UniversalSearch>("UniversalSearch");
    let s = reg.session.clone();
    def!(
        reg,
        "fgsm(opts: Map) -> Attack",
        "FGSM under L∞: eps (required, >= 0), target (a class, \"least_likely\" or \"random\"; untargeted when absent), seed (random targets), eot (1: gradients averaged over that many passes of a randomised model), batch_size (256).",
        move |m: Map| -> RResult<AttackRef> {
            let o = Opts::new(&keys::FGSM, &m)?;
            let seed = o.u64("seed")?.unwrap_or(s.seed);
            let d = FgsmParams::new(eps(&o, "fgsm(#{ eps: 0.3 })")?);
            let p = FgsmParams {
                batch_size: o.usize("batch_size")?.unwrap_or(d.batch_size),
                target: target(&o, seed)?,
                eot: o.usize("eot")?.unwrap_or(d.eot),
                ..d
            };
            attack("fgsm", p.check())
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "bim(opts: Map) -> Attack",
        "BIM (iterative FGSM, no random start) under L∞: eps (required), steps (10), alpha (2.5·eps/steps), target, keep_best (true), eot (1), seed, batch_size (256).",
        move |m: Map| -> RResult<AttackRef> {
            let o = Opts::new(&keys::BIM, &m)?;
            let p = iterative(&o, &s, PgdParams::bim(eps(&o, "bim(#{ eps: 0.3 })")?))?;
            attack("bim", p.check())
        }
    );
    let s = reg.session.clone();
    def!(reg, "pgd(opts: Map) -> Attack", "PGD: eps (required), norm (\"linf\" | \"l2\"), steps (10), alpha (2.5·eps/steps), random_start (true), restarts (1: runs from other random starts for the samples not yet fooled), target, seed (--seed), keep_best (true: a sample keeps its first successful iterate), eot (1: each step's gradient averaged over that many passes of a randomised model), batch_size (256).", move |m: Map| -> RResult<AttackRef> {
        let o = Opts::new(&keys::PGD, &m)?;
        let d = PgdParams::new(eps(&o, "pgd(#{ eps: 0.3 })")?);
        let base = PgdParams {
            norm: norm(&o, d.norm)?,
            random_start: o.bool("random_start")?.unwrap_or(d.random_start),
            restarts: o.usize("restarts")?.unwrap_or(d.restarts),
            ..d
        };
        attack("pgd", iterative(&o, &s, base)?.check())
    });
    let s = reg.session.clone();
    def!(reg, "apgd(opts: Map) -> Attack", "Auto-PGD (Croce and Hein 2020, AutoAttack's APGD-CE / APGD-DLR): eps (required), norm (\"linf\" | \"l2\"), loss (\"ce\" | \"dlr\"), steps (100), restarts (1, on the samples not yet fooled), rho (0.75: the share of rising steps that keeps the step size at a checkpoint), seed (--seed), eot (1), batch_size (256); step size 2·eps halved at checkpoints, momentum 0.75.", move |m: Map| -> RResult<AttackRef> {
        let o = Opts::new(&keys::APGD, &m)?;
        let d = ApgdParams::new(eps(&o, "apgd(#{ eps: 0.3 })")?);
        let loss = match o.string("loss")? {
            Some(l) => LossKind::parse(&l).map_err(|e| to_rhai(format!("apgd: {e}")))?,
            None => d.loss,
        };
        let p = apgd_common(&o, &s, ApgdParams { loss, ..d })?;
        attack("apgd", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "apgd_t(opts: Map) -> Attack", "Targeted Auto-PGD (AutoAttack's APGD-T): the targeted DLR loss towards each of the n_target_classes (9) next most likely classes on the clean input, one run each on the samples not yet fooled; eps (required), norm, steps (100), restarts (1 per target), rho (0.75), seed, eot (1), batch_size (256). Needs at least 4 classes.", move |m: Map| -> RResult<AttackRef> {
        let o = Opts::new(&keys::APGD_T, &m)?;
        let d = ApgdParams::targeted(eps(&o, "apgd_t(#{ eps: 0.3 })")?);
        let t = o.usize("n_target_classes")?.or(d.target_classes);
        let p = apgd_common(&o, &s, ApgdParams { target_classes: t, ..d })?;
        attack("apgd_t", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "square(opts: Map) -> Attack", "The Square attack (Andriushchenko et al. 2020, AutoAttack's black-box stage): random square windows changed (L∞: moved to ±eps corners; L2: the paper's centred pattern, the perturbation kept at norm eps), kept when the margin falls; only logits, no gradient. eps (required), norm (\"linf\" | \"l2\"), queries (5000 per image), p_init (0.8), restarts (1), seed (--seed), batch_size (256).", move |m: Map| -> RResult<AttackRef> {
        let o = Opts::new(&keys::SQUARE, &m)?;
        let d = SquareParams::new(eps(&o, "square(#{ eps: 0.3 })")?);
        let p = SquareParams {
            norm: norm(&o, d.norm)?,
            queries: o.usize("queries")?.unwrap_or(d.queries),
            p_init: o.f64("p_init")?.unwrap_or(d.p_init),
            restarts: o.usize("restarts")?.unwrap_or(d.restarts),
            seed: o.u64("seed")?.unwrap_or(s.seed),
            batch_size: o.usize("batch_size")?.unwrap_or(d.batch_size),
            ..d
        };
        attack("square", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "fab_t(opts: Map) -> Attack", "Targeted FAB (Croce and Hein 2020, AutoAttack's third stage): a minimal-norm attack that projects onto the linearised boundary towards each of the n_target_classes (9) next most likely classes in turn; an image counts as fooled when its smallest adversarial is within eps. eps (required), norm (\"linf\" | \"l2\"), steps (100), restarts (1 per target; later ones start at eps/2 noise), alpha_max (0.1), eta (1.05), beta (0.9), seed (--seed), batch_size (256).", move |m: Map| -> RResult<AttackRef> {
        let o = Opts::new(&keys::FAB_T, &m)?;
        let d = FabParams::new(eps(&o, "fab_t(#{ eps: 0.3 })")?);
        let p = FabParams {
            norm: norm(&o, d.norm)?,
            steps: o.usize("steps")?.unwrap_or(d.steps),
            restarts: o.usize("restarts")?.unwrap_or(d.restarts),
            target_classes: o.usize("n_target_classes")?.unwrap_or(d.target_classes),
            alpha_max: o.f64("alpha_max")?.unwrap_or(d.alpha_max),
            eta: o.f64("eta")?.unwrap_or(d.eta),
            beta: o.f64("beta")?.unwrap_or(d.beta),
            seed: o.u64("seed")?.unwrap_or(s.seed),
            batch_size: o.usize("batch_size")?.unwrap_or(d.batch_size),
            ..d
        };
        attack("fab_t", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "cw_l2(opts: Map) -> Attack", "Carlini–Wagner L2 (tanh space, Adam, binary search over c per sample): c (1.0), kappa (0), steps (100 per search step), lr (0.1), binary_search_steps (5), abort_early (true), target, seed, batch_size (256).", move |m: Map| -> RResult<AttackRef> {
        let o = Opts::new(&keys::CW_L2, &m)?;
        let d = CwL2Params::default();
        let seed = o.u64("seed")?.unwrap_or(s.seed);
        let p = CwL2Params {
            c: o.f64("c")?.unwrap_or(d.c),
            kappa: o.f64("kappa")?.unwrap_or(d.kappa),
            steps: o.usize("steps")?.unwrap_or(d.steps),
            lr: o.f64("lr")?.unwrap_or(d.lr),
            binary_search_steps: o.usize("binary_search_steps")?.unwrap_or(d.binary_search_steps),
            abort_early: o.bool("abort_early")?.unwrap_or(d.abort_early),
            batch_size: o.usize("batch_size")?.unwrap_or(d.batch_size),
            target: target(&o, seed)?,
        };
        attack("cw_l2", p.check())
    });
    def!(
        reg,
        "deepfool(opts: Map) -> Attack",
        "DeepFool L2, the minimal perturbation that flips the prediction: steps (50), overshoot (0.02), num_classes (10 candidate classes), batch_size (256).",
        |m: Map| -> RResult<AttackRef> {
            let o = Opts::new(&keys::DEEPFOOL, &m)?;
            let d = DeepFoolParams::default();
            let p = DeepFoolParams {
                steps: o.usize("steps")?.unwrap_or(d.steps),
                overshoot: o.f64("overshoot")?.unwrap_or(d.overshoot),
                num_classes: o.usize("num_classes")?.unwrap_or(d.num_classes),
                batch_size: o.usize("batch_size")?.unwrap_or(d.batch_size),
            };
            attack("deepfool", p.check())
        }
    );
    let s = reg.session.clone();
    def!(reg, "noise(opts: Map) -> Attack", "Random noise of the same budget, the baseline: eps (required), kind (\"uniform\" | \"gaussian\"), norm (\"linf\" | \"l2\"), seed, batch_size (1024).", move |m: Map| -> RResult<AttackRef> {
        let o = Opts::new(&keys::NOISE, &m)?;
        let base = NoiseParams::new(eps(&o, "noise(#{ eps: 0.3 })")?);
        let kind = match o.string("kind")? {
            Some(k) => NoiseKind::parse(&k).map_err(|e| rule(&o, e))?,
            None => base.kind,
        };
        let p = NoiseParams {
            kind,
            norm: norm(&o, base.norm)?,
            seed: o.u64("seed")?.unwrap_or(s.seed),
            batch_size: o.usize("batch_size")?.unwrap_or(base.batch_size),
            ..base
        };
        attack("noise", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "universal(opts: Map) -> UniversalSearch", "A universal perturbation search (DeepFool over a set of images); call .fit(model, data): eps (required), norm (\"linf\" | \"l2\"), max_iters (5 passes), fooling_rate (0.8, stop there), overshoot (0.02), deepfool_steps (10), num_classes (10), batch_size (32), seed.", move |m: Map| -> RResult<UniversalSearch> {
        let o = Opts::new(&keys::UNIVERSAL, &m)?;
        let d = UniversalParams::new(eps(&o, "universal(#{ eps: 0.2 })")?);
        let p = UniversalParams {
            norm: norm(&o, d.norm)?,
            max_iters: o.usize("max_iters")?.unwrap_or(d.max_iters),
            fooling_rate: o.f64("fooling_rate")?.unwrap_or(d.fooling_rate),
            overshoot: o.f64("overshoot")?.unwrap_or(d.overshoot),
            deepfool_steps: o.usize("deepfool_steps")?.unwrap_or(d.deepfool_steps),
            num_classes: o.usize("num_classes")?.unwrap_or(d.num_classes),
            batch_size: o.usize("batch_size")?.unwrap_or(d.batch_size),
            seed: o.u64("seed")?.unwrap_or(s.seed),
            ..d
        };
        p.check().map_err(|e| to_rhai(format!("universal: {e}")))
    });
    let s = reg.session.clone();
    def!(
        reg,
        "UniversalSearch.fit(model: Model, data: Dataset) -> Attack",
        "Search the perturbation over the images of `data`; the attack adds it to any data set (perturbation() returns it).",
        move |u: &mut UniversalSearch, m: Model, d: Dataset| -> RResult<AttackRef> {
            let fitted = u.fit(&m, &d).map_err(to_rhai)?;
            s.record(serde_json::json!({ "op": "universal.fit", "attack": fitted.params(), "model": m.arch(), "data": d.name() }));
            Ok(AttackRef(Rc::new(fitted)))
        }
    );
    def!(
        reg,
        "UniversalSearch.to_string() -> String",
        "The search and its parameters.",
        |u: &mut UniversalSearch| u.to_string()
    );
    def!(
        reg,
        "universal_from(perturbation: Tensor) -> Attack",
        "The attack that adds a given (C, H, W) or (1, C, H, W) perturbation (e.g. one loaded with load_tensor) to every image.",
        |t: Tensor| -> RResult<AttackRef> {
            Ok(AttackRef(Rc::new(Universal::new(t, serde_json::Value::Null).map_err(to_rhai)?)))
        }
    );
    def!(
        reg,
        "Dataset.add(perturbation: Tensor) -> Dataset",
        "Every image plus a (C, H, W) or (1, C, H, W) perturbation, clipped to [0, 1] (same labels).",
        |d: &mut Dataset, t: Tensor| -> RResult<Dataset> {
            let u = Universal::new(t, serde_json::Value::Null).map_err(to_rhai)?;
            let images = u.apply(d.images()).map_err(to_rhai)?;
            d.with_images(images, format!("{} + perturbation", d.name()))
                .map_err(to_rhai)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Attack.perturb(model: Model, data: Dataset) -> Dataset",
        "Adversarial versions of every sample (same labels), crafted against the model.",
        move |a: &mut AttackRef, m: Model, d: Dataset| { run_attack(&s, a.0.as_ref(), &m, &d) }
    );
    def!(
        reg,
        "Attack.perturbation() -> Tensor",
        "The (1, C, H, W) perturbation of a universal attack.",
        |a: &mut AttackRef| -> RResult<Tensor> {
            a.0.perturbation().ok_or_else(|| {
                to_rhai(format!(
                    "{} has no fixed perturbation: only universal attacks have one",
                    a.0.name()
                ))
            })
        }
    );
    def!(
        reg,
        "Attack.with_eps(eps: float) -> Attack",
        "The same attack with another budget (alpha follows eps unless it was given).",
        |a: &mut AttackRef, eps: f64| -> RResult<AttackRef> {
            Ok(AttackRef(Rc::from(a.0.with_eps(eps).map_err(to_rhai)?)))
        }
    );
    def!(
        reg,
        "fooling_rate(model: Model, data: Dataset, attack: Attack) -> float",
        "Fraction of the samples whose prediction the attack changes (against the clean prediction, not the label).",
        |m: Model, d: Dataset, a: AttackRef| -> RResult<f64> { fooling_rate(&m, &d, a.0.as_ref()).map_err(to_rhai) }
    );
    def_get!(
        reg,
        "Attack.name -> String",
        "The attack's short name (fgsm, bim, pgd, pgd_l2, cw_l2, deepfool, noise, universal; targeted ones end in _targeted).",
        |a: &mut AttackRef| a.0.name().to_string()
    );
    def!(
        reg,
        "Attack.params() -> Map",
        "Every resolved parameter, e.g. alpha after its default was applied.",
        |a: &mut AttackRef| -> RResult<Dynamic> { rhai::serde::to_dynamic(a.0.params()) }
    );
    def!(
        reg,
        "Attack.to_string() -> String",
        "The attack with all its parameters.",
        |a: &mut AttackRef| a.0.to_string()
    );
}
