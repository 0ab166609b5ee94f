//! Attacks: `fgsm`, `pgd`, and `Attack.perturb`.

use super::error::{to_rhai, RResult};
use super::opts::Opts;
use super::{def, def_get, Reg, Session};
use crate::attack::{perturb, Attack, FgsmParams, PgdParams};
use crate::data::Dataset;
use crate::nn::Model;
use rhai::{Dynamic, Map};
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

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<AttackRef>("Attack");
    def!(
        reg,
        "fgsm(opts: Map) -> Attack",
        "FGSM under L∞: options eps (required, >= 0), batch_size (256).",
        |m: Map| -> RResult<AttackRef> {
            let o = Opts::new("fgsm", &m, &["eps", "batch_size"])?;
            let eps = o
                .f64("eps")?
                .ok_or_else(|| to_rhai("fgsm: option `eps` is required, e.g. fgsm(#{ eps: 0.3 })"))?;
            let mut p = FgsmParams::new(eps);
            p.batch_size = o.usize("batch_size")?.unwrap_or(p.batch_size);
            Ok(AttackRef(Rc::new(
                p.check().map_err(|e| to_rhai(format!("fgsm: {e}")))?,
            )))
        }
    );
    let s = reg.session.clone();
    def!(reg, "pgd(opts: Map) -> Attack", "PGD under L∞: eps (required), steps (10), alpha (2.5·eps/steps), random_start (true), seed (--seed), keep_best (true: a sample keeps its first misclassified iterate), batch_size (256).", move |m: Map| -> RResult<AttackRef> {
        let o = Opts::new("pgd", &m, &["eps", "steps", "alpha", "random_start", "seed", "batch_size", "keep_best", "norm"])?;
        if let Some(norm) = o.string("norm")? {
            if norm != "linf" {
                return Err(to_rhai(format!("pgd: norm \"{norm}\" is not supported yet; use \"linf\"")));
            }
        }
        let eps = o.f64("eps")?.ok_or_else(|| to_rhai("pgd: option `eps` is required, e.g. pgd(#{ eps: 0.3 })"))?;
        let mut p = PgdParams::new(eps);
        p.steps = o.usize("steps")?.unwrap_or(p.steps);
        p.alpha = o.f64("alpha")?;
        p.random_start = o.bool("random_start")?.unwrap_or(p.random_start);
        p.seed = o.u64("seed")?.unwrap_or(s.seed);
        p.batch_size = o.usize("batch_size")?.unwrap_or(p.batch_size);
        p.keep_best = o.bool("keep_best")?.unwrap_or(p.keep_best);
        Ok(AttackRef(Rc::new(p.check().map_err(|e| to_rhai(format!("pgd: {e}")))?)))
    });
    let s = reg.session.clone();
    def!(
        reg,
        "Attack.perturb(model: Model, data: Dataset) -> Dataset",
        "Adversarial versions of every sample (same labels), crafted against the model.",
        move |a: &mut AttackRef, m: Model, d: Dataset| { run_attack(&s, a.0.as_ref(), &m, &d) }
    );
    def_get!(
        reg,
        "Attack.name",
        "The attack's short name (fgsm, pgd).",
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
