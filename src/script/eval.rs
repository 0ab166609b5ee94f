//! Evaluation: `evaluate`, the robustness `report`, `accuracy_vs_eps` and `transfer_matrix`.

use super::attack::{attack_list, AttackRef};
use super::error::{to_rhai, RResult};
use super::keys;
use super::{def, def_get, Reg};
use crate::attack::Attack;
use crate::data::Dataset;
use crate::eval::{AttackReport, Report};
use crate::nn::Model;
use rhai::{Array, Dynamic, Map, INT};

/// The columns of a saved report, in this order.
const REPORT_COLUMNS: [&str; 16] = [
    "attack",
    "samples",
    "clean_accuracy",
    "robust_accuracy",
    "success_rate",
    "gap",
    "attempted",
    "successes",
    "linf_mean",
    "linf_median",
    "l2_mean",
    "l2_median",
    "l0_mean",
    "l0_median",
    "true_confidence",
    "seconds",
];

fn refs(list: &[AttackRef]) -> Vec<&dyn Attack> {
    list.iter().map(|r| r.0.as_ref()).collect()
}

/// One report row as a flat map (the parameters are in the JSON form of the report).
fn row(r: &AttackReport) -> RResult<Map> {
    let mut v = serde_json::to_value(r).map_err(to_rhai)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("params");
        let key = o.remove("key").unwrap_or_default();
        let mut flat = serde_json::Map::new();
        flat.insert("attack".into(), key);
        flat.extend(std::mem::take(o));
        v = serde_json::Value::Object(flat);
    }
    rhai::serde::to_dynamic(v)?
        .try_cast::<Map>()
        .ok_or_else(|| to_rhai("report row is not a map"))
}

fn rows(r: &Report) -> RResult<Array> {
    r.attacks.iter().map(|a| row(a).map(Dynamic::from)).collect()
}

/// Models as (name, model): an array gets names m0, m1, …; a map uses its keys.
fn named_models(v: &Dynamic) -> RResult<Vec<(String, Model)>> {
    let bad = |what: String, t: &str| to_rhai(format!("transfer_matrix: {what} is {t}, not a Model"));
    if let Some(map) = v.clone().try_cast::<Map>() {
        return map
            .iter()
            .map(|(k, m)| {
                m.clone()
                    .try_cast::<Model>()
                    .map(|m| (k.to_string(), m))
                    .ok_or_else(|| bad(format!("models.{k}"), m.type_name()))
            })
            .collect();
    }
    match v.clone().into_array() {
        Ok(arr) => arr
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.clone()
                    .try_cast::<Model>()
                    .map(|m| (format!("m{i}"), m))
                    .ok_or_else(|| bad(format!("element {i}"), m.type_name()))
            })
            .collect(),
        Err(t) => Err(to_rhai(format!(
            "transfer_matrix: models must be an array of models or a map name → model, got {t}"
        ))),
    }
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<Report>("Report");
    let s = reg.session.clone();
    def!(
        reg,
        "evaluate(model: Model, data: Dataset, attacks: Array) -> Map",
        "Clean accuracy and robust accuracy (true labels) under each attack, keyed clean, fgsm, pgd, …",
        move |m: Model, d: Dataset, attacks: Dynamic| -> RResult<Map> {
            let list = attack_list(&attacks, "evaluate")?;
            let list = refs(&list);
            let result = crate::eval::evaluate(&m, &d, &list).map_err(to_rhai)?;
            s.record(serde_json::json!({
                "op": "evaluate", "model": m.arch(), "data": d.name(), "samples": d.len(),
                "attacks": list.iter().map(|a| a.params()).collect::<Vec<_>>(),
                "result": result.rows.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            }));
            Ok(result.rows.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
        }
    );
    let s = reg.session.clone();
    def!(reg, "autoattack(model: Model, data: Dataset, opts: Map) -> Map", "AutoAttack's evaluation (Croce and Hein 2020): each stage runs only on the images still robust; eps (required), norm (\"linf\" | \"l2\"), version (\"standard\": APGD-CE, APGD-T, FAB-T, Square | \"apgd_square\": without FAB-T | \"apgd\" | \"rand\": APGD-CE and APGD-DLR with EOT 20), seed (--seed), batch_size (256); returns clean, robust, stages (attack, robust_accuracy after it, fooled, seconds), warnings (a randomised model, zero input gradients, Square fooling images the gradient stages did not) and adversarial (a Dataset).", move |m: Model, d: Dataset, o: Map| -> RResult<Map> {
        let o = super::opts::Opts::new(&keys::AUTOATTACK, &o)?;
        let eps = o.f64("eps")?.ok_or_else(|| to_rhai("autoattack: option `eps` is required, e.g. autoattack(model, data, #{ eps: 0.3 })"))?;
        let d0 = crate::eval::AutoAttackParams::new(eps);
        let p = crate::eval::AutoAttackParams {
            norm: match o.string("norm")? {
                Some(n) => crate::attack::Norm::parse(&n).map_err(|e| to_rhai(format!("autoattack: {e}")))?,
                None => d0.norm,
            },
            version: o.string("version")?.unwrap_or(d0.version.clone()),
            seed: o.u64("seed")?.unwrap_or(s.seed),
            batch_size: o.usize("batch_size")?.unwrap_or(d0.batch_size),
            ..d0
        };
        m.check_input(d.images().dims()).map_err(to_rhai)?;
        let r = crate::eval::autoattack(&m, &d, &p).map_err(|e| to_rhai(format!("autoattack: {e}")))?;
        let stages = serde_json::to_value(&r.stages).map_err(to_rhai)?;
        s.record(serde_json::json!({ "op": "autoattack", "model": m.arch(), "data": d.name(), "samples": d.len(),
            "eps": p.eps, "norm": p.norm.as_str(), "version": p.version, "seed": p.seed,
            "clean": r.clean_accuracy, "robust": r.robust_accuracy, "stages": stages, "warnings": r.warnings }));
        for w in &r.warnings {
            eprintln!("autoattack: warning: {w}");
        }
        let mut out = Map::new();
        out.insert("clean".into(), r.clean_accuracy.into());
        out.insert("robust".into(), r.robust_accuracy.into());
        out.insert("version".into(), p.version.into());
        out.insert("stages".into(), rhai::serde::to_dynamic(&stages).map_err(to_rhai)?);
        out.insert("warnings".into(), r.warnings.iter().map(|w| Dynamic::from(w.clone())).collect::<rhai::Array>().into());
        out.insert("adversarial".into(), Dynamic::from(r.adversarial));
        Ok(out)
    });
    let s = reg.session.clone();
    def!(
        reg,
        "report(model: Model, data: Dataset, attacks: Array) -> Report",
        "Clean and robust accuracy, success rate over the samples correct when clean, gap, L∞/L2/L0 of the successful perturbations (mean, median), true-class confidence and time, per attack.",
        move |m: Model, d: Dataset, attacks: Dynamic| -> RResult<Report> {
            let list = attack_list(&attacks, "report")?;
            let r = crate::eval::report(&m, &d, &refs(&list)).map_err(to_rhai)?;
            s.record(serde_json::json!({ "op": "report", "report": r }));
            Ok(r)
        }
    );
    def!(
        reg,
        "Report.rows() -> Array",
        "One map per attack (attack, robust_accuracy, success_rate, gap, l2_median, …) for print_table, write_csv and charts.",
        |r: &mut Report| rows(r)
    );
    reg.engine
        .register_indexer_get(|r: &mut Report, i: INT| -> RResult<Map> {
            let a = usize::try_from(i)
                .ok()
                .and_then(|i| r.attacks.get(i))
                .ok_or_else(|| to_rhai(format!("index {i} is outside the report's {} attacks", r.attacks.len())))?;
            row(a)
        });
    reg.engine
        .register_indexer_get(|r: &mut Report, key: &str| -> RResult<Map> {
            let a = r.attacks.iter().find(|a| a.key == key).ok_or_else(|| {
                let keys: Vec<&str> = r.attacks.iter().map(|a| a.key.as_str()).collect();
                to_rhai(format!("the report has no attack `{key}`; it has {}", keys.join(", ")))
            })?;
            row(a)
        });
    reg.docs.push(super::FnDoc {
        domain: reg.domain,
        sig: "Report[attack: String or int] -> Map",
        doc: "The row of one attack, by its key (fgsm, pgd, pgd_2, …) or position.",
    });
    def_get!(
        reg,
        "Report.clean_accuracy -> float",
        "Accuracy on the clean data.",
        |r: &mut Report| r.clean_accuracy
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Report.save(path: String)",
        "Write the rows as .csv, or everything (with each attack's parameters) as .json; atomically, with a .meta.json sidecar.",
        move |r: &mut Report, p: &str| -> RResult<()> {
            if p.to_ascii_lowercase().ends_with(".json") {
                super::io::write_json(&s, p, &rhai::serde::to_dynamic(&*r)?)
            } else if p.to_ascii_lowercase().ends_with(".csv") {
                let order: Vec<String> = REPORT_COLUMNS.iter().map(|c| c.to_string()).collect();
                super::io::write_csv(&s, p, &rows(r)?, &order)
            } else {
                Err(to_rhai(format!("Report.save: name the file .csv or .json (got {p})")))
            }
        }
    );
    def!(
        reg,
        "Report.to_string() -> String",
        "The report as an aligned table.",
        |r: &mut Report| r.to_string()
    );
    let s = reg.session.clone();
    def!(
        reg,
        "accuracy_vs_eps(model: Model, data: Dataset, attacks: Array, eps: Array) -> Array",
        "Accuracy under each attack (or one attack) at each ε: rows #{ eps, <attack>: accuracy } for line_chart.",
        move |m: Model, d: Dataset, attacks: Dynamic, eps: Array| -> RResult<Array> {
            let list = attack_list(&attacks, "accuracy_vs_eps")?;
            let eps = eps
                .iter()
                .map(|e| {
                    super::opts::number(e)
                        .ok_or_else(|| to_rhai(format!("accuracy_vs_eps: eps values must be numbers, got {e}")))
                })
                .collect::<RResult<Vec<f64>>>()?;
            let curve = crate::eval::accuracy_vs_eps(&m, &d, &refs(&list), &eps).map_err(to_rhai)?;
            s.record(
                serde_json::json!({ "op": "accuracy_vs_eps", "model": m.arch(), "data": d.name(),
                "attacks": list.iter().map(|a| a.0.params()).collect::<Vec<_>>(), "eps": eps }),
            );
            Ok(curve
                .into_iter()
                .map(|(e, cols)| {
                    let mut row = Map::new();
                    row.insert("eps".into(), e.into());
                    row.extend(cols.into_iter().map(|(k, v)| (k.into(), Dynamic::from(v))));
                    Dynamic::from(row)
                })
                .collect())
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "transfer_matrix(models: Array, data: Dataset, attack: Attack) -> Array",
        "Cross-testing: rows #{ source, target, accuracy } of each model on each model's adversarial images (models: an array, named m0, m1, …, or a map name → model); heatmap_chart shows it.",
        move |models: Dynamic, d: Dataset, a: AttackRef| -> RResult<Array> {
            let models = named_models(&models)?;
            let cells = crate::eval::transfer_matrix(&models, &d, a.0.as_ref()).map_err(to_rhai)?;
            s.record(serde_json::json!({ "op": "transfer_matrix", "attack": a.0.params(), "data": d.name(), "cells": cells }));
            cells
                .iter()
                .map(rhai::serde::to_dynamic)
                .collect()
        }
    );
}
