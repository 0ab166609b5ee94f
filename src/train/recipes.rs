//! Training-time defences ("recipes"): how the samples of every batch are crafted from the
//! current weights (PGD training, fast FGSM training, TRADES, mixed training) and how the loss
//! is computed from them (label smoothing composes with any of them).
//!
//! Each recipe has unchecked parameters with defaults → `check()` → a [`Recipe`]; a list of
//! recipes becomes a [`Defence`] (at most one that crafts samples, at most one label
//! smoothing). The epoch loop in `train/mod.rs` asks the defence for each batch's loss.
//! Samples are crafted with the model's detached forward pass, so crafting never touches the
//! weights' gradients; every random draw comes from the recipe's seed, the epoch and the batch.

use crate::attack::{linf_step, sample_noise, Attack, PgdParams};
use crate::data::Dataset;
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::{Tensor, Var, D};
use candle_nn::ops::log_softmax;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

/// The rule every recipe's budget follows: ε in (0, 1] (pixels are in [0, 1]).
fn check_recipe_eps(eps: f64) -> std::result::Result<f64, ParamError> {
    if eps.is_finite() && eps > 0.0 && eps <= 1.0 {
        Ok(eps)
    } else {
        Err(ParamError::RecipeEps(eps))
    }
}

/// Steps ≥ 1 and a finite α > 0, `2.5·ε/steps` when not given.
fn check_steps_alpha(eps: f64, steps: usize, alpha: Option<f64>) -> std::result::Result<f64, ParamError> {
    if steps == 0 {
        return Err(ParamError::StepsZero);
    }
    let alpha = alpha.unwrap_or(2.5 * eps / steps as f64);
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(ParamError::AlphaNotPositive(alpha));
    }
    Ok(alpha)
}

/// Unchecked parameters of PGD training (Madry et al.): every batch is replaced by its PGD-L∞
/// samples (uniform random start, `steps` signed steps of α, the last iterate).
#[derive(Clone, Debug, PartialEq)]
pub struct PgdTrainingParams {
    pub eps: f64,
    pub steps: usize,
    /// `None`: 2.5·ε/steps.
    pub alpha: Option<f64>,
    pub seed: u64,
}

impl PgdTrainingParams {
    /// Budget `eps`, 10 steps, α = 2.5·ε/steps, seed 0.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            steps: 10,
            alpha: None,
            seed: 0,
        }
    }

    /// Check the rules: ε in (0, 1], steps ≥ 1, α finite and > 0.
    pub fn check(&self) -> std::result::Result<Recipe, ParamError> {
        let eps = check_recipe_eps(self.eps)?;
        let alpha = check_steps_alpha(eps, self.steps, self.alpha)?;
        Ok(Recipe::PgdTraining(Crafted {
            eps,
            alpha,
            steps: self.steps,
            seed: self.seed,
        }))
    }
}

/// Unchecked parameters of fast FGSM training (Wong et al. 2020): FGSM from a uniform random
/// start with step α = 1.25·ε, and a guard against catastrophic overfitting.
#[derive(Clone, Debug, PartialEq)]
pub struct FastFgsmParams {
    pub eps: f64,
    /// `None`: 1.25·ε.
    pub alpha: Option<f64>,
    pub seed: u64,
    pub guard: GuardParams,
}

/// The guard of fast FGSM training: after every epoch, PGD accuracy on `samples` training
/// samples held out from training. Losing the fraction `drop` of the best epoch's accuracy (and
/// at least [`GUARD_MIN_FALL`] of it, well above the sampling noise of a few hundred samples) is
/// catastrophic overfitting: reported, and with `stop`, training stops and the best epoch's
/// weights are restored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GuardParams {
    /// Held-out samples (0: no guard).
    pub samples: usize,
    /// Steps of the guard's PGD (α = 2.5·ε/steps, random start).
    pub steps: usize,
    /// The fraction of the best held-out PGD accuracy whose loss counts as a collapse.
    pub drop: f64,
    pub stop: bool,
}

/// The smallest fall of held-out PGD accuracy the guard reports (absolute).
pub const GUARD_MIN_FALL: f64 = 0.05;

impl Default for GuardParams {
    fn default() -> Self {
        Self {
            samples: 500,
            steps: 10,
            drop: 0.5,
            stop: false,
        }
    }
}

impl FastFgsmParams {
    /// Budget `eps`, α = 1.25·ε, seed 0, the default guard.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            alpha: None,
            seed: 0,
            guard: GuardParams::default(),
        }
    }

    /// Check the rules: ε in (0, 1], α finite and > 0, guard steps ≥ 1, guard drop in (0, 1].
    pub fn check(&self) -> std::result::Result<Recipe, ParamError> {
        let eps = check_recipe_eps(self.eps)?;
        let alpha = self.alpha.unwrap_or(1.25 * eps);
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(ParamError::AlphaNotPositive(alpha));
        }
        if self.guard.steps == 0 {
            return Err(ParamError::GuardStepsZero);
        }
        if !(self.guard.drop > 0.0 && self.guard.drop <= 1.0) {
            return Err(ParamError::GuardDrop(self.guard.drop));
        }
        Ok(Recipe::FastFgsm(FastFgsm {
            step: Crafted {
                eps,
                alpha,
                steps: 1,
                seed: self.seed,
            },
            guard: self.guard.clone(),
        }))
    }
}

/// Unchecked TRADES parameters (Zhang et al. 2019): the inner maximisation ascends
/// KL(p(x) ‖ p(x')) from x + 0.001·N(0, 1) with signed steps; the loss is
/// CE(f(x), y) + β·KL(p(x) ‖ p(x')).
#[derive(Clone, Debug, PartialEq)]
pub struct TradesParams {
    pub eps: f64,
    pub beta: f64,
    pub steps: usize,
    /// `None`: 2.5·ε/steps.
    pub alpha: Option<f64>,
    pub seed: u64,
}

impl TradesParams {
    /// Budget `eps`, β = 1 (TRADES' MNIST setting), 10 steps, α = 2.5·ε/steps, seed 0.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            beta: 1.0,
            steps: 10,
            alpha: None,
            seed: 0,
        }
    }

    /// Check the rules: ε in (0, 1], β finite and ≥ 0, steps ≥ 1, α finite and > 0.
    pub fn check(&self) -> std::result::Result<Recipe, ParamError> {
        let eps = check_recipe_eps(self.eps)?;
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(ParamError::BetaNegative(self.beta));
        }
        let alpha = check_steps_alpha(eps, self.steps, self.alpha)?;
        Ok(Recipe::Trades(Trades {
            inner: Crafted {
                eps,
                alpha,
                steps: self.steps,
                seed: self.seed,
            },
            beta: self.beta,
        }))
    }
}

/// Unchecked parameters of mixed training (seed 001): at each batch, with probability `p` one
/// attack drawn uniformly from `attacks` replaces the batch, else the clean batch is used.
#[derive(Clone, Debug)]
pub struct MixedParams {
    pub attacks: Vec<Rc<dyn Attack>>,
    pub p: f64,
    pub seed: u64,
}

impl MixedParams {
    /// The attacks, p = 0.5 (seed 001's 4/8), seed 0.
    pub fn new(attacks: Vec<Rc<dyn Attack>>) -> Self {
        Self {
            attacks,
            p: 0.5,
            seed: 0,
        }
    }

    /// Check the rules: at least one attack, p in [0, 1].
    pub fn check(&self) -> std::result::Result<Recipe, ParamError> {
        if self.attacks.is_empty() {
            return Err(ParamError::NoAttacks);
        }
        if !(0.0..=1.0).contains(&self.p) {
            return Err(ParamError::AttackProbability(self.p));
        }
        Ok(Recipe::Mixed(Mixed {
            attacks: self.attacks.clone(),
            p: self.p,
            seed: self.seed,
        }))
    }
}

/// Unchecked label smoothing: the target puts `1 − amount` on the label and spreads `amount`
/// evenly over all K classes, as PyTorch's `CrossEntropyLoss(label_smoothing=amount)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelSmoothingParams {
    pub amount: f64,
}

impl LabelSmoothingParams {
    /// Check the rule: amount in [0, 1).
    pub fn check(&self) -> std::result::Result<Recipe, ParamError> {
        if !(0.0..1.0).contains(&self.amount) {
            return Err(ParamError::SmoothingAmount(self.amount));
        }
        Ok(Recipe::LabelSmoothing { amount: self.amount })
    }
}

/// Unchecked parameters of seed 000's cluster-based adversarial training: at the start of
/// every epoch, the whole training set is attacked from the current weights, the adversarial
/// samples are reduced with PCA to `dims` dimensions and clustered with k-means (`k`); the
/// epoch trains on the adversarial samples of one cluster picked at random (with `augment`,
/// on the clean set plus them).
#[derive(Clone, Debug)]
pub struct ClusterTrainingParams {
    pub attack: Rc<dyn Attack>,
    pub k: usize,
    pub dims: usize,
    pub augment: bool,
    pub seed: u64,
}

impl ClusterTrainingParams {
    /// The attack, k = 3, PCA to 2 dimensions, no augmentation, seed 0.
    pub fn new(attack: Rc<dyn Attack>) -> Self {
        Self {
            attack,
            k: 3,
            dims: 2,
            augment: false,
            seed: 0,
        }
    }

    /// Check the rules: k ≥ 1 and dims ≥ 1 (both are checked against the data when they meet
    /// it: k against the samples, dims against the pixels).
    pub fn check(&self) -> std::result::Result<Recipe, ParamError> {
        if self.k == 0 {
            return Err(ParamError::KZero);
        }
        if self.dims == 0 {
            return Err(ParamError::DimsZero);
        }
        Ok(Recipe::Cluster(ClusterTraining {
            attack: self.attack.clone(),
            k: self.k,
            dims: self.dims,
            augment: self.augment,
            seed: self.seed,
        }))
    }
}

/// Checked cluster-based adversarial training.
#[derive(Clone, Debug)]
pub struct ClusterTraining {
    pub attack: Rc<dyn Attack>,
    pub k: usize,
    pub dims: usize,
    pub augment: bool,
    pub seed: u64,
}

impl ClusterTraining {
    /// The samples epoch `epoch` trains on: the adversarial samples of `data` crafted from the
    /// model's current weights, reduced with PCA, clustered with k-means, one cluster picked at
    /// random (the code of seed 000's reproduction: `Pca`, `kmeans`, `Clustering::pick_random`).
    /// Returns them with the chosen cluster and the number of clusters.
    pub fn epoch_samples(&self, model: &Model, data: &Dataset, epoch: usize) -> Result<(Dataset, usize, usize)> {
        let seed = batch_seed(self.seed, epoch, usize::MAX);
        let adv = match self.attack.with_seed(seed) {
            Some(fresh) => crate::attack::perturb(fresh.as_ref(), model, data)?,
            None => crate::attack::perturb(self.attack.as_ref(), model, data)?,
        };
        let (rows, n, d) = crate::reduce::rows_f32(adv.images())?;
        let pca = crate::reduce::Pca::fit_rows(rows.clone(), n, d, &crate::reduce::PcaParams { dims: self.dims })?;
        let points = pca.transform_rows(&rows, n, d)?;
        let clusters = crate::cluster::kmeans(
            &points,
            &crate::cluster::KMeansParams {
                seed: self.seed,
                ..crate::cluster::KMeansParams::new(self.k)
            },
        )?;
        let chosen = clusters.pick_random(seed)?;
        let picked = adv.subset(&clusters.members(chosen)?)?;
        let samples = if self.augment { data.concat(&picked)? } else { picked };
        Ok((samples, chosen, clusters.n_clusters()))
    }
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
    fn attack(&self, seed: u64, batch: usize) -> Result<crate::attack::Pgd> {
        Ok(PgdParams {
            alpha: Some(self.alpha),
            steps: self.steps,
            seed,
            batch_size: batch.max(1),
            keep_best: false,
            ..PgdParams::new(self.eps)
        }
        .check()?)
    }
}

/// Checked fast FGSM training.
#[derive(Clone, Debug, PartialEq)]
pub struct FastFgsm {
    pub step: Crafted,
    pub guard: GuardParams,
}

/// Checked TRADES.
#[derive(Clone, Debug, PartialEq)]
pub struct Trades {
    pub inner: Crafted,
    pub beta: f64,
}

/// Checked mixed training.
#[derive(Clone, Debug)]
pub struct Mixed {
    pub attacks: Vec<Rc<dyn Attack>>,
    pub p: f64,
    pub seed: u64,
}

impl Mixed {
    /// The attacks' names, made unique with `_2`, `_3` … as evaluation keys are.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::with_capacity(self.attacks.len());
        for a in &self.attacks {
            let key = crate::util::unique_key(names.iter().map(String::as_str), a.name());
            names.push(key);
        }
        names
    }
}

/// One checked training recipe.
#[derive(Clone, Debug)]
pub enum Recipe {
    PgdTraining(Crafted),
    FastFgsm(FastFgsm),
    Trades(Trades),
    Mixed(Mixed),
    Cluster(ClusterTraining),
    LabelSmoothing { amount: f64 },
}

impl Recipe {
    /// The script name of the recipe.
    pub fn name(&self) -> &'static str {
        match self {
            Recipe::PgdTraining(_) => "pgd_training",
            Recipe::FastFgsm(_) => "fast_fgsm_training",
            Recipe::Trades(_) => "trades",
            Recipe::Mixed(_) => "mixed_training",
            Recipe::Cluster(_) => "cluster_training",
            Recipe::LabelSmoothing { .. } => "label_smoothing",
        }
    }

    /// Whether it crafts the samples a batch trains on (all but label smoothing).
    pub fn crafts(&self) -> bool {
        !matches!(self, Recipe::LabelSmoothing { .. })
    }

    /// Every resolved parameter, as recorded beside outputs.
    pub fn params(&self) -> serde_json::Value {
        let name = self.name();
        match self {
            Recipe::PgdTraining(c) => serde_json::json!({
                "recipe": name, "eps": c.eps, "alpha": c.alpha, "steps": c.steps, "seed": c.seed,
                "random_start": true, "keep_best": false,
            }),
            Recipe::FastFgsm(f) => serde_json::json!({
                "recipe": name, "eps": f.step.eps, "alpha": f.step.alpha, "seed": f.step.seed,
                "random_start": true, "guard_samples": f.guard.samples, "guard_steps": f.guard.steps,
                "guard_drop": f.guard.drop, "stop_on_overfit": f.guard.stop,
            }),
            Recipe::Trades(t) => serde_json::json!({
                "recipe": name, "eps": t.inner.eps, "beta": t.beta, "alpha": t.inner.alpha,
                "steps": t.inner.steps, "seed": t.inner.seed, "start_std": TRADES_START_STD,
            }),
            Recipe::Mixed(m) => serde_json::json!({
                "recipe": name, "p": m.p, "seed": m.seed,
                "attacks": m.attacks.iter().map(|a| a.params()).collect::<Vec<_>>(),
            }),
            Recipe::Cluster(c) => serde_json::json!({
                "recipe": name, "attack": c.attack.params(), "reduction": "pca", "dims": c.dims,
                "algorithm": "kmeans", "k": c.k, "augment": c.augment, "seed": c.seed,
            }),
            Recipe::LabelSmoothing { amount } => serde_json::json!({ "recipe": name, "amount": amount }),
        }
    }
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Recipe::PgdTraining(c) => write!(
                f,
                "{name}(eps={}, alpha={}, steps={}, seed={}, random_start=true, keep_best=false)",
                c.eps, c.alpha, c.steps, c.seed
            ),
            Recipe::FastFgsm(x) => write!(
                f,
                "{name}(eps={}, alpha={}, seed={}, guard_samples={}, guard_steps={}, guard_drop={}, stop_on_overfit={})",
                x.step.eps, x.step.alpha, x.step.seed, x.guard.samples, x.guard.steps, x.guard.drop, x.guard.stop
            ),
            Recipe::Trades(t) => write!(
                f,
                "{name}(eps={}, beta={}, alpha={}, steps={}, seed={})",
                t.inner.eps, t.beta, t.inner.alpha, t.inner.steps, t.inner.seed
            ),
            Recipe::Mixed(m) => {
                let attacks: Vec<String> = m.attacks.iter().map(|a| a.to_string()).collect();
                write!(f, "{name}(p={}, seed={}, attacks=[{}])", m.p, m.seed, attacks.join(", "))
            }
            Recipe::Cluster(c) => write!(
                f,
                "{name}(attack={}, reduction=pca(dims={}), algorithm=kmeans(k={}), augment={}, seed={})",
                c.attack, c.dims, c.k, c.augment, c.seed
            ),
            Recipe::LabelSmoothing { amount } => write!(f, "{name}(amount={amount})"),
        }
    }
}

/// The standard deviation of TRADES' Gaussian start around the clean input.
const TRADES_START_STD: f32 = 0.001;

/// How a model is trained: at most one recipe that crafts the samples and at most one label
/// smoothing. The default is plain training.
#[derive(Clone, Debug, Default)]
pub struct Defence {
    recipes: Vec<Recipe>,
}

impl Defence {
    /// Plain training on the clean batches.
    pub fn none() -> Self {
        Self::default()
    }

    /// Compose `recipes`, checking that one crafts the samples at most and that label
    /// smoothing is given once at most.
    pub fn new(recipes: Vec<Recipe>) -> std::result::Result<Self, ParamError> {
        let crafting: Vec<&Recipe> = recipes.iter().filter(|r| r.crafts()).collect();
        if crafting.len() > 1 {
            return Err(ParamError::TwoCraftingRecipes(
                crafting[0].name().into(),
                crafting[1].name().into(),
            ));
        }
        if recipes.iter().filter(|r| !r.crafts()).count() > 1 {
            return Err(ParamError::SmoothingTwice);
        }
        Ok(Self { recipes })
    }

    /// Whether no recipe is given (plain training).
    pub fn is_plain(&self) -> bool {
        self.recipes.is_empty()
    }

    /// The recipes, in the order given.
    pub fn recipes(&self) -> &[Recipe] {
        &self.recipes
    }

    /// The resolved parameters of every recipe.
    pub fn params(&self) -> serde_json::Value {
        serde_json::Value::Array(self.recipes.iter().map(Recipe::params).collect())
    }

    /// The recipe that crafts the samples, if any.
    pub(crate) fn crafter(&self) -> Option<&Recipe> {
        self.recipes.iter().find(|r| r.crafts())
    }

    /// The label smoothing amount (0 when none).
    pub(crate) fn smoothing(&self) -> f64 {
        self.recipes
            .iter()
            .find_map(|r| match r {
                Recipe::LabelSmoothing { amount } => Some(*amount),
                _ => None,
            })
            .unwrap_or(0.0)
    }

    /// Cluster-based training, whose samples change per epoch.
    pub(crate) fn cluster(&self) -> Option<&ClusterTraining> {
        match self.crafter() {
            Some(Recipe::Cluster(c)) => Some(c),
            _ => None,
        }
    }

    /// The guard of fast FGSM training, when it is on.
    pub(crate) fn guard(&self) -> Option<(&GuardParams, &Crafted)> {
        match self.crafter() {
            Some(Recipe::FastFgsm(f)) if f.guard.samples > 0 => Some((&f.guard, &f.step)),
            _ => None,
        }
    }
}

impl fmt::Display for Defence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.recipes.is_empty() {
            return write!(f, "plain training");
        }
        let parts: Vec<String> = self.recipes.iter().map(|r| r.to_string()).collect();
        write!(f, "{}", parts.join(" + "))
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

/// KL(p ‖ q) of the softmaxes of two logit batches, summed over classes, mean over samples.
fn kl_mean(logits_p: &Tensor, logits_q: &Tensor) -> Result<Tensor> {
    let lp = log_softmax(logits_p, D::Minus1)?;
    let lq = log_softmax(logits_q, D::Minus1)?;
    Ok((lp.exp()? * (&lp - &lq)?)?.sum(D::Minus1)?.mean_all()?)
}

/// TRADES' inner maximisation: from x + 0.001·N(0, 1) (seeded per sample, clipped to [0, 1]),
/// `steps` signed steps of α up the KL divergence from the clean prediction, each projected on
/// the ε-ball around x and on [0, 1]. Uses the detached forward pass.
pub fn trades_samples(model: &Model, x: &Tensor, inner: &Crafted, seed: u64) -> Result<Tensor> {
    let lp_clean = log_softmax(&model.forward(x)?, D::Minus1)?;
    let p_clean = lp_clean.exp()?;
    let start = sample_noise(x, seed, |rng, out| {
        out.iter_mut()
            .for_each(|v| *v = TRADES_START_STD * rng.sample::<f32, _>(rand_distr::StandardNormal))
    })?;
    let mut xa = (x + start)?.clamp(0f32, 1f32)?;
    for _ in 0..inner.steps {
        crate::interrupt::check()?;
        let var = Var::from_tensor(&xa)?;
        let lp = log_softmax(&model.forward(var.as_tensor())?, D::Minus1)?;
        let kl = (&p_clean * (&lp_clean - &lp)?)?.sum_all()?;
        let grads = kl.backward()?;
        let g = match grads.get(var.as_tensor()) {
            Some(g) => g.detach(),
            None => xa.zeros_like()?,
        };
        xa = linf_step(&xa, &g, x, inner.alpha, inner.eps)?;
    }
    Ok(xa.detach())
}

/// What one batch contributes: the loss to minimise (with the weights' graph), the detached
/// logits and labels training accuracy is counted on, and per-sample sums of what the recipe
/// measures.
pub(crate) struct BatchLoss {
    pub loss: Tensor,
    pub logits: Tensor,
    pub sums: Vec<(&'static str, f64)>,
    /// The attack used on this batch (mixed training), or "clean".
    pub used: Option<String>,
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

/// The samples one batch trains on, and what the crafting measured.
struct Crafting {
    input: Tensor,
    sums: Vec<(&'static str, f64)>,
    used: Option<String>,
}

impl Defence {
    /// The samples batch `batch` of epoch `epoch`, `(x, y)`, trains on under this defence,
    /// crafted from the model's current weights: the adversarial samples of the crafting
    /// recipe (TRADES: its KL samples; mixed training: the attacked or the clean batch), or
    /// `x` itself without one.
    pub fn craft(&self, model: &Model, x: &Tensor, y: &Tensor, epoch: usize, batch: usize) -> Result<Tensor> {
        Ok(self.craft_batch(model, x, y, epoch, batch)?.input)
    }

    fn craft_batch(&self, model: &Model, x: &Tensor, y: &Tensor, epoch: usize, batch: usize) -> Result<Crafting> {
        let n = x.dim(0)?;
        let mut sums = Vec::new();
        let mut used = None;
        let input = match self.crafter() {
            // cluster training crafts its samples per epoch (see `ClusterTraining::epoch_samples`)
            None | Some(Recipe::LabelSmoothing { .. }) | Some(Recipe::Cluster(_)) => x.clone(),
            Some(Recipe::PgdTraining(c)) => c
                .attack(batch_seed(c.seed, epoch, batch), n)?
                .perturb_batch(model, x, y)?,
            Some(Recipe::FastFgsm(f)) => f
                .step
                .attack(batch_seed(f.step.seed, epoch, batch), n)?
                .perturb_batch(model, x, y)?,
            Some(Recipe::Trades(t)) => trades_samples(model, x, &t.inner, batch_seed(t.inner.seed, epoch, batch))?,
            Some(Recipe::Mixed(m)) => {
                let mut rng = StdRng::seed_from_u64(batch_seed(m.seed, epoch, batch));
                if rng.random::<f64>() < m.p {
                    let k = rng.random_range(0..m.attacks.len());
                    let attack = &m.attacks[k];
                    used = m.names().into_iter().nth(k);
                    sums.push(("attacked", n as f64));
                    match attack.with_seed(rng.random()) {
                        Some(fresh) => fresh.perturb_batch(model, x, y)?,
                        None => attack.perturb_batch(model, x, y)?,
                    }
                } else {
                    used = Some("clean".into());
                    sums.push(("attacked", 0.0));
                    x.clone()
                }
            }
        };
        Ok(Crafting { input, sums, used })
    }

    /// The loss of batch `(x, y)` (batch `batch` of epoch `epoch`) under this defence.
    pub(crate) fn batch_loss(
        &self,
        model: &Model,
        x: &Tensor,
        y: &Tensor,
        epoch: usize,
        batch: usize,
    ) -> Result<BatchLoss> {
        let amount = self.smoothing();
        let n = x.dim(0)?;
        let Crafting { input, mut sums, used } = self.craft_batch(model, x, y, epoch, batch)?;
        if let Some(Recipe::Trades(t)) = self.crafter() {
            // one pass over the clean and the adversarial batch together
            let logits = model.forward_train(&Tensor::cat(&[x, &input], 0)?)?;
            let (clean, adv) = (logits.narrow(0, 0, n)?, logits.narrow(0, n, n)?);
            let ce = smoothed_cross_entropy(&clean, y, amount)?;
            let kl = kl_mean(&clean, &adv)?;
            let loss = (&ce + (&kl * t.beta)?)?;
            sums.push(("cross_entropy", ce.to_scalar::<f32>()? as f64 * n as f64));
            sums.push(("kl", kl.to_scalar::<f32>()? as f64 * n as f64));
            sums.push(("adv_accuracy", correct(&adv.detach(), y)?));
            return Ok(BatchLoss {
                loss,
                logits: clean.detach(),
                sums,
                used,
            });
        }
        let logits = model.forward_train(&input)?;
        let loss = smoothed_cross_entropy(&logits, y, amount)?;
        if amount > 0.0 {
            let ce = candle_nn::loss::cross_entropy(&logits.detach(), y)?;
            sums.push(("cross_entropy", ce.to_scalar::<f32>()? as f64 * n as f64));
        }
        Ok(BatchLoss {
            loss,
            logits: logits.detach(),
            sums,
            used,
        })
    }
}

/// The held-out samples of the fast-FGSM guard and their bookkeeping over the epochs.
pub(crate) struct GuardState {
    pub data: Dataset,
    params: GuardParams,
    attack: crate::attack::Pgd,
    best: Option<(usize, f64)>,
    snapshot: Option<Vec<Tensor>>,
    pub overfit_epoch: Option<usize>,
    pub stopped_early: bool,
}

/// Whether held-out PGD accuracy `now` is a collapse from the best epoch's `best`: a loss of
/// the share `drop` of it, and of at least [`GUARD_MIN_FALL`].
pub(crate) fn collapsed(best: f64, now: f64, drop: f64) -> bool {
    best - now >= (drop * best).max(GUARD_MIN_FALL)
}

/// What the guard found after one epoch.
pub(crate) struct GuardCheck {
    pub clean: f64,
    pub pgd: f64,
    /// Training must stop (catastrophic overfitting with `stop_on_overfit`).
    pub stop: bool,
}

impl GuardState {
    /// A guard over `data` (the held-out samples).
    pub fn new(data: Dataset, params: &GuardParams, step: &Crafted) -> Result<Self> {
        let attack = PgdParams {
            steps: params.steps,
            seed: step.seed,
            batch_size: 256,
            ..PgdParams::new(step.eps)
        }
        .check()?;
        Ok(Self {
            data,
            params: params.clone(),
            attack,
            best: None,
            snapshot: None,
            overfit_epoch: None,
            stopped_early: false,
        })
    }

    /// The best epoch so far (1-based) and its held-out PGD accuracy.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }

    /// Measure clean and PGD accuracy on the held-out samples after epoch `epoch` (1-based),
    /// report a sharp fall, and restore the best weights when asked to stop.
    pub fn check(&mut self, model: &Model, epoch: usize) -> Result<GuardCheck> {
        let clean = crate::nn::accuracy(model, &self.data)?;
        let adv = crate::attack::perturb(&self.attack, model, &self.data)?;
        let pgd = crate::nn::accuracy(model, &adv)?;
        let mut stop = false;
        match self.best {
            Some((best_epoch, best)) if collapsed(best, pgd, self.params.drop) => {
                if self.overfit_epoch.is_none() {
                    self.overfit_epoch = Some(epoch);
                }
                eprintln!(
                    "warning: fast_fgsm_training: catastrophic overfitting at epoch {epoch}: PGD accuracy on the \
                     {} held-out samples fell from {best:.4} (epoch {best_epoch}) to {pgd:.4} (clean {clean:.4}){}",
                    self.data.len(),
                    if self.params.stop {
                        format!("; stopping and restoring the weights of epoch {best_epoch}")
                    } else {
                        "; set stop_on_overfit: true to stop and keep the best epoch".into()
                    }
                );
                if self.params.stop {
                    if let Some(snapshot) = &self.snapshot {
                        for (var, t) in model.vars().iter().zip(snapshot) {
                            var.set(t)?;
                        }
                    }
                    self.stopped_early = true;
                    stop = true;
                }
            }
            Some((_, best)) if pgd <= best => {}
            _ => {
                self.best = Some((epoch, pgd));
                if self.params.stop {
                    self.snapshot = Some(
                        model
                            .vars()
                            .iter()
                            .map(|v| v.as_tensor().copy())
                            .collect::<candle_core::Result<Vec<_>>>()?,
                    );
                }
            }
        }
        Ok(GuardCheck { clean, pgd, stop })
    }
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
    use crate::data::{synthetic, SyntheticParams};
    use crate::nn::Arch;
    use candle_core::Device;

    fn weights(m: &Model) -> Vec<Vec<f32>> {
        m.vars()
            .iter()
            .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    }

    /// A robust-ish model at epoch 1, then random weights at epoch 2: the guard must report the
    /// fall, and with `stop` restore the epoch-1 weights.
    #[test]
    fn guard_reports_a_sharp_fall_and_restores_the_best_epoch() {
        let data = synthetic(
            &SyntheticParams {
                train: 1500,
                test: 200,
                seed: 4,
            },
            &Device::Cpu,
        )
        .unwrap();
        let model = Model::new(Arch::mlp(vec![784, 32, 10]).unwrap(), &Device::Cpu, 1).unwrap();
        let p = crate::train::FitParams {
            epochs: 3,
            seed: 1,
            ..Default::default()
        }
        .check()
        .unwrap();
        crate::train::fit(&model, &data.train, &p).unwrap();
        let random = Model::new(Arch::mlp(vec![784, 32, 10]).unwrap(), &Device::Cpu, 9).unwrap();
        let step = Crafted {
            eps: 0.05,
            alpha: 0.0625,
            steps: 1,
            seed: 3,
        };
        for stop in [false, true] {
            let m = model.deep_clone().unwrap();
            let trained = weights(&m);
            let params = GuardParams {
                samples: 200,
                steps: 5,
                drop: 0.5,
                stop,
            };
            let mut g = GuardState::new(data.test.clone(), &params, &step).unwrap();
            let first = g.check(&m, 1).unwrap();
            assert!(
                first.pgd > 0.5,
                "the trained model must be robust at this budget: {}",
                first.pgd
            );
            assert!(!first.stop && g.overfit_epoch.is_none());
            for (v, r) in m.vars().iter().zip(random.vars()) {
                v.set(r.as_tensor()).unwrap();
            }
            let second = g.check(&m, 2).unwrap();
            assert!(second.pgd < first.pgd - 0.2, "{} then {}", first.pgd, second.pgd);
            assert_eq!(g.overfit_epoch, Some(2));
            assert_eq!(g.best(), Some((1, first.pgd)));
            assert_eq!(second.stop, stop);
            assert_eq!(g.stopped_early, stop);
            if stop {
                assert_eq!(weights(&m), trained, "the best epoch's weights were not restored");
            } else {
                assert_ne!(weights(&m), trained);
            }
        }
    }

    #[test]
    fn a_rise_or_a_small_fall_is_not_overfitting() {
        let data = synthetic(
            &SyntheticParams {
                train: 10,
                test: 100,
                seed: 4,
            },
            &Device::Cpu,
        )
        .unwrap();
        let m = Model::new(Arch::mlp(vec![784, 8, 10]).unwrap(), &Device::Cpu, 1).unwrap();
        let step = Crafted {
            eps: 0.05,
            alpha: 0.0625,
            steps: 1,
            seed: 3,
        };
        let mut g = GuardState::new(data.test.clone(), &GuardParams::default(), &step).unwrap();
        for e in 1..=3 {
            let c = g.check(&m, e).unwrap();
            assert!(!c.stop);
        }
        assert_eq!(g.overfit_epoch, None);
        assert_eq!(
            g.best().map(|b| b.0),
            Some(1),
            "equal accuracy keeps the first best epoch"
        );
    }

    #[test]
    fn a_collapse_is_half_the_best_and_more_than_the_noise() {
        // a run that collapsed after two epochs (held-out PGD-10 accuracy 0.164, 0.114, 0.056, 0.0)
        assert!(!collapsed(0.164, 0.114, 0.5));
        assert!(collapsed(0.164, 0.056, 0.5));
        assert!(collapsed(0.164, 0.0, 0.5));
        // a healthy run's wobble, and noise around 0 early on
        assert!(!collapsed(0.874, 0.862, 0.5));
        assert!(!collapsed(0.02, 0.0, 0.5));
        assert!(collapsed(0.894, 0.40, 0.5));
        assert!(collapsed(0.894, 0.60, 0.3) && !collapsed(0.894, 0.70, 0.3));
    }

    #[test]
    fn batch_seeds_differ_between_batches_and_epochs() {
        let seeds: std::collections::HashSet<u64> = (0..20)
            .flat_map(|e| (0..50).map(move |b| batch_seed(7, e, b)))
            .collect();
        assert_eq!(seeds.len(), 1000);
        assert_ne!(batch_seed(7, 0, 0), batch_seed(8, 0, 0));
    }
}
