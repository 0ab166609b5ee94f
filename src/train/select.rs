//! Model selection on held-out data: every few epochs the model is evaluated (clean, or under
//! an attack), the best state is kept, and it is restored when training ends (Rice et al.
//! 2020: the best PGD checkpoint on a held-out split against robust overfitting).

use super::recipe::Measured;
use crate::attack::{perturb, Attack};
use crate::data::Dataset;
use crate::error::{ParamError, Result};
use crate::nn::{accuracy, Model};
use candle_core::Tensor;
use std::rc::Rc;

/// How a run selects its best epoch: evaluate on `data` every `every` epochs, under `attack`
/// (clean accuracy when none), keep the best.
#[derive(Clone, Debug)]
pub struct SelectionParams {
    pub every: usize,
    pub data: Dataset,
    pub attack: Option<Rc<dyn Attack>>,
}

impl SelectionParams {
    /// Check the rules: every ≥ 1, a held-out set with samples.
    pub fn check(self) -> std::result::Result<Selection, ParamError> {
        if self.every == 0 {
            return Err(ParamError::EvalEveryZero);
        }
        if self.data.is_empty() {
            return Err(ParamError::EvalDataEmpty);
        }
        Ok(Selection(self))
    }
}

/// Checked model selection.
#[derive(Clone, Debug)]
pub struct Selection(SelectionParams);

impl Selection {
    /// Every resolved parameter, as recorded beside outputs.
    pub fn params(&self) -> serde_json::Value {
        let p = &self.0;
        serde_json::json!({
            "eval_every": p.every, "eval_data": p.data.name(), "eval_samples": p.data.len(),
            "eval_attack": p.attack.as_ref().map(|a| a.params()),
        })
    }

    /// The held-out set it evaluates on.
    pub fn data(&self) -> &Dataset {
        &self.0.data
    }

    pub(super) fn start(&self) -> Keeper<'_> {
        Keeper {
            sel: &self.0,
            best: None,
            snapshot: None,
        }
    }
}

/// What a run keeps while it selects: the best evaluation so far and that epoch's state.
pub(super) struct Keeper<'a> {
    sel: &'a SelectionParams,
    best: Option<(usize, f64)>,
    snapshot: Option<Vec<Tensor>>,
}

impl Keeper<'_> {
    /// After epoch `epoch` (1-based, of `epochs`): evaluate when it is due (every `every`
    /// epochs, and after the last), keep the state when it is the best so far.
    pub fn epoch_end(&mut self, model: &Model, epoch: usize, epochs: usize, measured: &mut Measured) -> Result<()> {
        if !epoch.is_multiple_of(self.sel.every) && epoch != epochs {
            return Ok(());
        }
        let acc = match &self.sel.attack {
            Some(a) => accuracy(model, &perturb(a.as_ref(), model, &self.sel.data)?)?,
            None => accuracy(model, &self.sel.data)?,
        };
        measured.insert("eval_accuracy".into(), acc);
        if self.best.is_none_or(|(_, b)| acc > b) {
            self.best = Some((epoch, acc));
            let state: candle_core::Result<Vec<Tensor>> =
                model.state_vars().iter().map(|v| v.as_tensor().copy()).collect();
            self.snapshot = Some(state.map_err(crate::error::Error::from)?);
        }
        Ok(())
    }

    /// At the end of the run: put the best epoch's state back, and say which it was.
    pub fn finish(&self, model: &Model, outcome: &mut serde_json::Map<String, serde_json::Value>) -> Result<()> {
        let (Some((epoch, acc)), Some(state)) = (self.best, &self.snapshot) else {
            return Ok(());
        };
        for (var, t) in model.state_vars().iter().zip(state) {
            var.set(t)?;
        }
        outcome.insert("selected_epoch".into(), epoch.into());
        outcome.insert("selected_eval_accuracy".into(), acc.into());
        Ok(())
    }
}
