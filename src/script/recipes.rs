//! Training-time defences: `pgd_training`, `fast_fgsm_training`, `trades`, `mixed_training`,
//! `cluster_training`, `vat`, `logit_pairing`, `label_smoothing`, given to `Model.fit` as its `defence` option (one recipe or an array).

use super::attack::{attack_list, AttackRef};
use super::error::{to_rhai, RResult};
use super::keys;
use super::opts::Opts;
use super::{def, def_get, Reg};
use crate::error::ParamError;
use crate::train::{
    ClusterTrainingParams, FastFgsmParams, GuardParams, LabelSmoothingParams, LogitPairingParams, MixedParams,
    PgdTrainingParams, Recipe, TradesParams, TrainingPlan, VatParams,
};
use rhai::{Dynamic, Map};
use std::rc::Rc;

/// A recipe as a script value.
pub(crate) type RecipeRef = Rc<dyn Recipe>;

/// A checked recipe as a script value, or the broken rule prefixed with the function's name.
fn recipe<R: Recipe + 'static>(func: &str, checked: Result<R, ParamError>) -> RResult<RecipeRef> {
    match checked {
        Ok(r) => Ok(Rc::new(r)),
        Err(e) => Err(to_rhai(format!("{func}: {e}"))),
    }
}

/// The required `eps` option.
fn eps(o: &Opts) -> RResult<f64> {
    o.f64("eps")?.ok_or_else(|| {
        to_rhai(format!(
            "{0}: option `eps` is required, e.g. {0}(#{{ eps: 0.3 }})",
            o.func()
        ))
    })
}

/// The optional `attack` option: an Attack, or an error naming the function and the type given.
fn attack_opt(o: &Opts) -> RResult<Option<std::rc::Rc<dyn crate::attack::Attack>>> {
    match o.get("attack") {
        Some(v) => v.clone().try_cast::<AttackRef>().map(|a| Some(a.0)).ok_or_else(|| {
            to_rhai(format!(
                "{}: option `attack` must be an Attack, got {}",
                o.func(),
                v.type_name()
            ))
        }),
        None => Ok(None),
    }
}

/// The `defence` option of `fit`: one recipe or an array of recipes.
pub(crate) fn plan(v: &Dynamic) -> RResult<TrainingPlan> {
    let recipes = if let Some(r) = v.clone().try_cast::<RecipeRef>() {
        vec![r]
    } else {
        match v.clone().into_array() {
            Ok(arr) => {
                super::opts::typed::<RecipeRef>(&arr, |i, t| {
                    format!("fit: element {i} of the defence list is {t}, not a Recipe (e.g. pgd_training(#{{ eps: 0.3 }}))")
                })?
            }
            Err(t) => {
                return Err(to_rhai(format!(
                    "fit: option `defence` must be a Recipe or an array of recipes, got {t}"
                )))
            }
        }
    };
    TrainingPlan::new(recipes).map_err(|e| to_rhai(format!("fit: {e}")))
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<RecipeRef>("Recipe");
    let s = reg.session.clone();
    def!(reg, "pgd_training(opts: Map) -> Recipe", "PGD training (Madry et al.): every batch replaced by its PGD-L∞ samples crafted from the current weights; eps (required, in (0, 1]), steps (10), alpha (2.5·eps/steps), seed (random starts; --seed).", move |m: Map| -> RResult<RecipeRef> {
        let o = Opts::new(&keys::PGD_TRAINING, &m)?;
        let d = PgdTrainingParams::new(eps(&o)?);
        let p = PgdTrainingParams {
            steps: o.usize("steps")?.unwrap_or(d.steps),
            alpha: o.f64("alpha")?,
            seed: o.u64("seed")?.unwrap_or(s.seed),
            ..d
        };
        recipe("pgd_training", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "fast_fgsm_training(opts: Map) -> Recipe", "Fast FGSM training (Wong et al.): FGSM from a uniform random start; eps (required), alpha (1.25·eps), seed; guard: guard_samples (500 held out; 0 = off), guard_steps (10), guard_drop (0.5: a fall to half the best epoch's held-out PGD accuracy), stop_on_overfit (false).", move |m: Map| -> RResult<RecipeRef> {
        let o = Opts::new(&keys::FAST_FGSM_TRAINING, &m)?;
        let g = GuardParams::default();
        let p = FastFgsmParams {
            alpha: o.f64("alpha")?,
            seed: o.u64("seed")?.unwrap_or(s.seed),
            guard: GuardParams {
                samples: o.usize("guard_samples")?.unwrap_or(g.samples),
                steps: o.usize("guard_steps")?.unwrap_or(g.steps),
                drop: o.f64("guard_drop")?.unwrap_or(g.drop),
                stop: o.bool("stop_on_overfit")?.unwrap_or(g.stop),
            },
            ..FastFgsmParams::new(eps(&o)?)
        };
        recipe("fast_fgsm_training", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "trades(opts: Map) -> Recipe", "TRADES (Zhang et al.): loss CE(clean) + beta·KL(p_clean ‖ p_adv), the adversarial samples ascending the KL; eps (required), beta (1.0), steps (10), alpha (2.5·eps/steps), seed.", move |m: Map| -> RResult<RecipeRef> {
        let o = Opts::new(&keys::TRADES, &m)?;
        let d = TradesParams::new(eps(&o)?);
        let p = TradesParams {
            beta: o.f64("beta")?.unwrap_or(d.beta),
            steps: o.usize("steps")?.unwrap_or(d.steps),
            alpha: o.f64("alpha")?,
            seed: o.u64("seed")?.unwrap_or(s.seed),
            ..d
        };
        recipe("trades", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "mixed_training(opts: Map) -> Recipe", "Mixed training (seed 001): each batch is attacked with probability p by one attack drawn uniformly from the list, else kept clean; attacks (required: an array of attacks), p (0.5), seed (the draws and fresh random starts).", move |m: Map| -> RResult<RecipeRef> {
        let o = Opts::new(&keys::MIXED_TRAINING, &m)?;
        let attacks = match o.get("attacks") {
            Some(v) => attack_list(v, "mixed_training")?,
            None => {
                return Err(to_rhai(
                    "mixed_training: option `attacks` is required, e.g. mixed_training(#{ attacks: [pgd(#{ eps: 0.3 }), fgsm(#{ eps: 0.3 })] })",
                ))
            }
        };
        let d = MixedParams::new(attacks.into_iter().map(|a| a.0).collect());
        let p = MixedParams {
            p: o.f64("p")?.unwrap_or(d.p),
            seed: o.u64("seed")?.unwrap_or(s.seed),
            ..d
        };
        recipe("mixed_training", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "cluster_training(opts: Map) -> Recipe", "Seed 000's cluster-based training: each epoch, attack the training set from the current weights, reduce with PCA, cluster with k-means, train on one random cluster's adversarial samples; attack (required), k (3), dims (2), augment (false: with true, the clean set too), seed.", move |m: Map| -> RResult<RecipeRef> {
        let o = Opts::new(&keys::CLUSTER_TRAINING, &m)?;
        let Some(attack) = attack_opt(&o)? else {
            return Err(to_rhai("cluster_training: option `attack` is required, e.g. cluster_training(#{ attack: fgsm(#{ eps: 0.5 }), k: 3 })"));
        };
        let d = ClusterTrainingParams::new(attack);
        let p = ClusterTrainingParams {
            k: o.usize("k")?.unwrap_or(d.k),
            dims: o.usize("dims")?.unwrap_or(d.dims),
            augment: o.bool("augment")?.unwrap_or(d.augment),
            seed: o.u64("seed")?.unwrap_or(s.seed),
            ..d
        };
        recipe("cluster_training", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "vat(opts: Map) -> Recipe", "Virtual adversarial training (Miyato et al.): loss CE + alpha·KL(p(x) ‖ p(x + r)), r of L2 length eps along the direction power iteration finds (no labels needed); eps (required, L2), xi (1e-6), power_iterations (1), alpha (1.0), use_labels (true; false: the KL alone, for unlabelled data), seed.", move |m: Map| -> RResult<RecipeRef> {
        let o = Opts::new(&keys::VAT, &m)?;
        let d = VatParams::new(eps(&o)?);
        let p = VatParams {
            xi: o.f64("xi")?.unwrap_or(d.xi),
            power_iterations: o.usize("power_iterations")?.unwrap_or(d.power_iterations),
            alpha: o.f64("alpha")?.unwrap_or(d.alpha),
            use_labels: o.bool("use_labels")?.unwrap_or(d.use_labels),
            seed: o.u64("seed")?.unwrap_or(s.seed),
            ..d
        };
        recipe("vat", p.check())
    });
    let s = reg.session.clone();
    def!(reg, "logit_pairing(opts: Map) -> Recipe", "Logit pairing (Kannan et al.): CE of the clean and adversarial halves + weight·‖logits(x) − logits(x_adv)‖² (mean over samples); attack (required unless clean_pairing), weight (0.5), clean_pairing (false; true: pairs of clean images of the batch, no attack), seed.", move |m: Map| -> RResult<RecipeRef> {
        let o = Opts::new(&keys::LOGIT_PAIRING, &m)?;
        let attack = attack_opt(&o)?;
        let d = LogitPairingParams::default();
        let p = LogitPairingParams {
            attack,
            weight: o.f64("weight")?.unwrap_or(d.weight),
            clean_pairing: o.bool("clean_pairing")?.unwrap_or(d.clean_pairing),
            seed: o.u64("seed")?.unwrap_or(s.seed),
        };
        recipe("logit_pairing", p.check())
    });
    def!(reg, "label_smoothing(opts: Map) -> Recipe", "Label smoothing: the target puts 1 − amount on the label and amount/K on every class (as PyTorch); amount (0.1). Composes with one crafting recipe: defence: [label_smoothing(..), mixed_training(..)].", |m: Map| -> RResult<RecipeRef> {
        let o = Opts::new(&keys::LABEL_SMOOTHING, &m)?;
        let p = LabelSmoothingParams {
            amount: o.f64("amount")?.unwrap_or(LabelSmoothingParams::default().amount),
        };
        recipe("label_smoothing", p.check())
    });
    def_get!(
        reg,
        "Recipe.name -> String",
        "The recipe's name (pgd_training, fast_fgsm_training, trades, mixed_training, cluster_training, vat, logit_pairing, label_smoothing).",
        |r: &mut RecipeRef| r.name().to_string()
    );
    def!(
        reg,
        "Recipe.params() -> Map",
        "Every resolved parameter, e.g. alpha after its default was applied.",
        |r: &mut RecipeRef| -> RResult<Dynamic> { rhai::serde::to_dynamic(r.params()) }
    );
    def!(
        reg,
        "Recipe.to_string() -> String",
        "The recipe with all its parameters.",
        |r: &mut RecipeRef| r.to_string()
    );
}
