//! Evaluation: `evaluate(model, data, attacks)`.

use super::attack::AttackRef;
use super::error::{to_rhai, RResult};
use super::{def, Reg};
use crate::attack::Attack;
use crate::data::Dataset;
use crate::nn::Model;
use rhai::{Array, Map};

pub(super) fn register(reg: &mut Reg) {
    let s = reg.session.clone();
    def!(
        reg,
        "evaluate(model: Model, data: Dataset, attacks: Array) -> Map",
        "Clean accuracy and robust accuracy (true labels) under each attack, keyed clean, fgsm, pgd, …",
        move |m: Model, d: Dataset, attacks: Array| -> RResult<Map> {
            let refs = attacks
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    a.clone().try_cast::<AttackRef>().ok_or_else(|| {
                        to_rhai(format!(
                            "evaluate: element {i} of the attack list is {}, not an Attack",
                            a.type_name()
                        ))
                    })
                })
                .collect::<RResult<Vec<_>>>()?;
            let list: Vec<&dyn Attack> = refs.iter().map(|r| r.0.as_ref()).collect();
            let result = crate::eval::evaluate(&m, &d, &list).map_err(to_rhai)?;
            s.record(serde_json::json!({
            "op": "evaluate", "model": m.arch(), "data": d.name(), "samples": d.len(),
            "attacks": list.iter().map(|a| a.params()).collect::<Vec<_>>(),
            "result": result.rows.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        }));
            Ok(result.rows.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
        }
    );
}
