//! What a training recipe is: the [`Recipe`] trait, whose hooks the epoch loop in
//! `train/mod.rs` calls (epoch start, craft, loss; a [`Monitor`] for what is checked after each
//! epoch), and the [`TrainingPlan`] that composes recipes (at most one that crafts the samples,
//! at most one that only shapes the loss). The loop knows no recipe by name: adding one is a
//! file in `src/train/` implementing [`Recipe`], and its binding in `src/script/recipes.rs`.
//!
//! Samples are crafted with the model's detached forward pass, so crafting never touches the
//! weights' gradients; every random draw comes from the recipe's seed, the epoch and the batch
//! ([`batch_seed`]).

use crate::data::Dataset;
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::{Tensor, D};
use candle_nn::ops::log_softmax;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

/// What an epoch measured, by name (per-sample means, or per-epoch values).
pub type Measured = BTreeMap<String, f64>;

/// Whether training goes on after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// The samples one batch trains on, and what crafting them measured (sums over the batch's
/// samples, divided by the epoch's sample count at its end).
pub struct Crafting {
    pub input: Tensor,
    pub sums: Vec<(&'static str, f64)>,
    /// The attack used on this batch (mixed training), or "clean".
    pub used: Option<String>,
}

impl Crafting {
    /// The batch itself.
    pub fn clean(x: &Tensor) -> Self {
        Self {
            input: x.clone(),
            sums: Vec::new(),
            used: None,
        }
    }
}

/// What one batch contributes: the loss to minimise (with the weights' graph), the detached
/// logits training accuracy is counted on, and sums of what the recipe measures.
pub struct BatchLoss {
    pub loss: Tensor,
    pub logits: Tensor,
    pub sums: Vec<(&'static str, f64)>,
    pub used: Option<String>,
}

/// A checked training recipe. Every hook has the plain-training default, so a recipe writes
/// only the ones it changes.
pub trait Recipe: fmt::Debug + fmt::Display {
    /// The script name.
    fn name(&self) -> &'static str;

    /// Every resolved parameter, as recorded beside outputs.
    fn params(&self) -> serde_json::Value;

    /// Whether it crafts the samples a batch trains on (a plan holds one at most); a recipe
    /// that does not only shapes the loss (label smoothing).
    fn crafts(&self) -> bool {
        true
    }

    /// The label smoothing it puts on the cross-entropy (0: none).
    fn smoothing(&self) -> f64 {
        0.0
    }

    /// Before the first epoch: what watches the run over `data` (and which of its samples
    /// train), if anything does.
    fn start(&self, data: &Dataset) -> Result<Option<Box<dyn Monitor>>> {
        let _ = data;
        Ok(None)
    }

    /// At the start of epoch `epoch` (0-based): the samples the epoch trains on instead of
    /// `data`, if the recipe replaces them; what it measured goes into `measured`.
    fn epoch_start(
        &self,
        model: &Model,
        data: &Dataset,
        epoch: usize,
        measured: &mut Measured,
    ) -> Result<Option<Dataset>> {
        let _ = (model, data, epoch, measured);
        Ok(None)
    }

    /// The samples batch `batch` of epoch `epoch`, `(x, y)`, trains on, crafted from the
    /// model's current weights.
    fn craft(&self, model: &Model, x: &Tensor, y: &Tensor, epoch: usize, batch: usize) -> Result<Crafting> {
        let _ = (model, y, epoch, batch);
        Ok(Crafting::clean(x))
    }

    /// The loss of the batch `(x, y)` given what [`Recipe::craft`] made of it, with `smoothing`
    /// on the labels: by default the cross-entropy on the crafted samples.
    fn loss(&self, model: &Model, x: &Tensor, y: &Tensor, crafted: Crafting, smoothing: f64) -> Result<BatchLoss> {
        let _ = x;
        cross_entropy_loss(model, y, crafted, smoothing)
    }
}

/// What a recipe keeps over one run and checks after every epoch (fast FGSM's guard).
pub trait Monitor {
    /// The indices of the samples that train (the others are held out).
    fn train_indices(&self) -> Vec<u32>;

    /// After epoch `epoch` (1-based): what it measured, and whether to go on.
    fn epoch_end(&mut self, model: &Model, epoch: usize, measured: &mut Measured) -> Result<Flow>;

    /// What it found over the run, added to the history's outcome.
    fn outcome(&self, out: &mut serde_json::Map<String, serde_json::Value>);
}

/// The training logits of the clean batch `x` and of `crafted` (same size): one forward pass
/// over both, or, for a network with batch norm, a pass per batch so that each normalises by
/// its own statistics (as TRADES' code). Used by the recipes whose loss compares the two.
pub(crate) fn clean_and_crafted_logits(model: &Model, x: &Tensor, crafted: &Tensor) -> Result<(Tensor, Tensor)> {
    if model.arch().has_batch_norm() {
        return Ok((model.forward_train(x)?, model.forward_train(crafted)?));
    }
    let n = x.dim(0)?;
    let logits = model.forward_train(&Tensor::cat(&[x, crafted], 0)?)?;
    Ok((logits.narrow(0, 0, n)?, logits.narrow(0, n, n)?))
}

/// The default loss: cross-entropy (smoothed by `smoothing`) of the crafted samples.
pub fn cross_entropy_loss(model: &Model, y: &Tensor, crafted: Crafting, smoothing: f64) -> Result<BatchLoss> {
    let Crafting { input, mut sums, used } = crafted;
    let logits = model.forward_train(&input)?;
    let loss = smoothed_cross_entropy(&logits, y, smoothing)?;
    if smoothing > 0.0 {
        let ce = candle_nn::loss::cross_entropy(&logits.detach(), y)?;
        sums.push(("cross_entropy", ce.to_scalar::<f32>()? as f64 * y.dim(0)? as f64));
    }
    Ok(BatchLoss {
        loss,
        logits: logits.detach(),
        sums,
        used,
    })
}

/// Plain training: every hook's default.
#[derive(Debug)]
struct Plain;

impl Recipe for Plain {
    fn name(&self) -> &'static str {
        "plain"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "recipe": "plain" })
    }
}

impl fmt::Display for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("plain training")
    }
}

/// How a model is trained: at most one recipe that crafts the samples and at most one that
/// only shapes the loss. The default is plain training.
#[derive(Clone, Debug, Default)]
pub struct TrainingPlan {
    recipes: Vec<Rc<dyn Recipe>>,
    /// Model selection on held-out data (the best epoch's state kept and restored).
    selection: Option<super::Selection>,
}

impl TrainingPlan {
    /// Plain training on the clean batches.
    pub fn none() -> Self {
        Self::default()
    }

    /// Compose `recipes`, checking that one crafts the samples at most and that label
    /// smoothing is given once at most.
    pub fn new(recipes: Vec<Rc<dyn Recipe>>) -> std::result::Result<Self, ParamError> {
        let crafting: Vec<&Rc<dyn Recipe>> = recipes.iter().filter(|r| r.crafts()).collect();
        if crafting.len() > 1 {
            return Err(ParamError::TwoCraftingRecipes(
                crafting[0].name().into(),
                crafting[1].name().into(),
            ));
        }
        if recipes.iter().filter(|r| !r.crafts()).count() > 1 {
            return Err(ParamError::SmoothingTwice);
        }
        Ok(Self {
            recipes,
            selection: None,
        })
    }

    /// The same plan selecting the best epoch on held-out data.
    pub fn with_selection(mut self, selection: Option<super::Selection>) -> Self {
        self.selection = selection;
        self
    }

    /// How the run selects its best epoch, if it does.
    pub fn selection(&self) -> Option<&super::Selection> {
        self.selection.as_ref()
    }

    /// Whether no recipe is given (plain training).
    pub fn is_plain(&self) -> bool {
        self.recipes.is_empty()
    }

    /// The recipes, in the order given.
    pub fn recipes(&self) -> &[Rc<dyn Recipe>] {
        &self.recipes
    }

    /// The resolved parameters of every recipe.
    pub fn params(&self) -> serde_json::Value {
        serde_json::Value::Array(self.recipes.iter().map(|r| r.params()).collect())
    }

    /// The recipe whose hooks the loop calls: the one that crafts, else plain training.
    pub fn crafter(&self) -> &dyn Recipe {
        match self.recipes.iter().find(|r| r.crafts()) {
            Some(r) => r.as_ref(),
            None => &Plain,
        }
    }

    /// The label smoothing of the loss (0 when none).
    pub fn smoothing(&self) -> f64 {
        self.recipes.iter().map(|r| r.smoothing()).sum()
    }

    /// The samples batch `batch` of epoch `epoch`, `(x, y)`, trains on under this plan.
    pub fn craft(&self, model: &Model, x: &Tensor, y: &Tensor, epoch: usize, batch: usize) -> Result<Tensor> {
        Ok(self.crafter().craft(model, x, y, epoch, batch)?.input)
    }
}

impl fmt::Display for TrainingPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.recipes.is_empty() {
            return write!(f, "{Plain}");
        }
        let parts: Vec<String> = self.recipes.iter().map(|r| r.to_string()).collect();
        write!(f, "{}", parts.join(" + "))
    }
}

/// The rule every recipe's budget follows: ε in (0, 1] (pixels are in [0, 1]).
pub(crate) fn check_recipe_eps(eps: f64) -> std::result::Result<f64, ParamError> {
    if eps.is_finite() && eps > 0.0 && eps <= 1.0 {
        Ok(eps)
    } else {
        Err(ParamError::RecipeEps(eps))
    }
}

/// Steps ≥ 1 and a finite α > 0, `2.5·ε/steps` when not given.
pub(crate) fn check_steps_alpha(eps: f64, steps: usize, alpha: Option<f64>) -> std::result::Result<f64, ParamError> {
    if steps == 0 {
        return Err(ParamError::StepsZero);
    }
    let alpha = alpha.unwrap_or(2.5 * eps / steps as f64);
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(ParamError::AlphaNotPositive(alpha));
    }
    Ok(alpha)
}

/// A checked L∞ crafting budget: ε, step α, steps, and the seed of the random starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Crafted {
    pub eps: f64,
    pub alpha: f64,
    pub steps: usize,
    pub seed: u64,
}

impl Crafted {
    /// The PGD attack (random start, last iterate, as in training) for one batch.
    pub(crate) fn attack(&self, seed: u64, batch: usize) -> Result<crate::attack::Pgd> {
        Ok(crate::attack::PgdParams {
            alpha: Some(self.alpha),
            steps: self.steps,
            seed,
            batch_size: batch.max(1),
            keep_best: false,
            ..crate::attack::PgdParams::new(self.eps)
        }
        .check()?)
    }

    /// This budget's PGD samples of batch `batch` of epoch `epoch`.
    pub(crate) fn craft(&self, model: &Model, x: &Tensor, y: &Tensor, epoch: usize, batch: usize) -> Result<Crafting> {
        use crate::attack::Attack;
        let input = self
            .attack(batch_seed(self.seed, epoch, batch), x.dim(0)?)?
            .perturb_batch(model, x, y)?;
        Ok(Crafting {
            input,
            sums: Vec::new(),
            used: None,
        })
    }
}

/// SplitMix64: a well-mixed 64-bit hash, for deriving seeds.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of the random draws of batch `batch` of epoch `epoch` under a recipe seed.
pub(crate) fn batch_seed(seed: u64, epoch: usize, batch: usize) -> u64 {
    splitmix(seed ^ splitmix(((epoch as u64) << 32) ^ batch as u64))
}

/// Cross-entropy of `logits` against labels `y` smoothed by `amount` (mean over the batch):
/// `(1 − a)·CE(logits, y) + a·mean_k(−log p_k)`; plain cross-entropy when `amount` is 0.
pub fn smoothed_cross_entropy(logits: &Tensor, y: &Tensor, amount: f64) -> Result<Tensor> {
    if amount == 0.0 {
        return Ok(candle_nn::loss::cross_entropy(logits, y)?);
    }
    let log_probs = log_softmax(logits, D::Minus1)?;
    let nll = log_probs.gather(&y.unsqueeze(1)?, 1)?.mean_all()?.neg()?;
    let uniform = log_probs.mean(D::Minus1)?.mean_all()?.neg()?;
    Ok(((nll * (1.0 - amount))? + (uniform * amount)?)?)
}

/// The number of samples of `logits` whose argmax equals `y`.
pub(crate) fn correct(logits: &Tensor, y: &Tensor) -> Result<f64> {
    Ok(logits
        .argmax(D::Minus1)?
        .eq(y)?
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()? as f64)
}

/// Per-epoch sums of named measurements, divided by the sample count at the end.
pub(crate) fn add_sums(acc: &mut BTreeMap<String, f64>, sums: &[(&'static str, f64)]) {
    for (k, v) in sums {
        *acc.entry((*k).to_string()).or_insert(0.0) += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_seeds_differ_between_batches_and_epochs() {
        let seeds: std::collections::HashSet<u64> = (0..20)
            .flat_map(|e| (0..50).map(move |b| batch_seed(7, e, b)))
            .collect();
        assert_eq!(seeds.len(), 1000);
        assert_ne!(batch_seed(7, 0, 0), batch_seed(8, 0, 0));
    }
}
