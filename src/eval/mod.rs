//! Evaluation: predictions, accuracy, and robust accuracy under a list of attacks (always
//! against the true labels: a sample misclassified when clean is never robust); the full
//! robustness [`report`]; accuracy-versus-ε curves and transfer matrices; the sanity checks
//! of an evaluation ([`robustness_checks`]).

mod checks;
mod report;

mod autoattack;
pub use autoattack::{autoattack, AutoAttackParams, AutoAttackResult, Stage};
pub use checks::{robustness_checks, Check, ChecksParams, ChecksValid, RobustnessChecks, Status};
pub use report::{
    accuracy_vs_eps, perturbation_norms, report, transfer_matrix, AttackReport, CurveRow, Report, TransferCell,
};

pub use crate::nn::{accuracy, predict, predictions, Predictions};
pub use crate::util::unique_key;

use crate::attack::{perturb, Attack};
use crate::data::Dataset;
use crate::error::Result;
use crate::nn::Model;

/// One row of an evaluation: a key (`clean`, or the attack's name, made unique with a
/// suffix `_2`, `_3` … when two attacks share a name) and the accuracy.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub rows: Vec<(String, f64)>,
}

/// Clean accuracy, then the robust accuracy under each attack.
pub fn evaluate(model: &Model, data: &Dataset, attacks: &[&dyn Attack]) -> Result<Evaluation> {
    let mut rows = vec![("clean".to_string(), accuracy(model, data)?)];
    for attack in attacks {
        let adv = perturb(*attack, model, data)?;
        let acc = accuracy(model, &adv)?;
        let key = unique_key(rows.iter().map(|(name, _)| name.as_str()), attack.name());
        rows.push((key, acc));
    }
    Ok(Evaluation { rows })
}
