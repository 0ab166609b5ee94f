//! Fast FGSM training (Wong et al. 2020): FGSM from a uniform random start, and a guard that
//! watches held-out samples for catastrophic overfitting.

use super::recipe::{check_recipe_eps, Crafted, Crafting, Flow, Measured, Monitor, Recipe};
use crate::data::Dataset;
use crate::error::{Error, ParamError, Result};
use crate::nn::Model;
use candle_core::Tensor;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use std::fmt;

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
    pub fn check(&self) -> std::result::Result<FastFgsm, ParamError> {
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
        Ok(FastFgsm {
            step: Crafted {
                eps,
                alpha,
                steps: 1,
                seed: self.seed,
            },
            guard: self.guard.clone(),
        })
    }
}

/// Checked fast FGSM training.
#[derive(Clone, Debug, PartialEq)]
pub struct FastFgsm {
    pub step: Crafted,
    pub guard: GuardParams,
}

impl Recipe for FastFgsm {
    fn name(&self) -> &'static str {
        "fast_fgsm_training"
    }

    fn params(&self) -> serde_json::Value {
        let f = self;
        serde_json::json!({
            "recipe": self.name(), "eps": f.step.eps, "alpha": f.step.alpha, "seed": f.step.seed,
            "random_start": true, "guard_samples": f.guard.samples, "guard_steps": f.guard.steps,
            "guard_drop": f.guard.drop, "stop_on_overfit": f.guard.stop,
        })
    }

    /// With the guard on, hold its samples out of training and watch them.
    fn start(&self, data: &Dataset) -> Result<Option<Box<dyn Monitor>>> {
        let g = &self.guard;
        if g.samples == 0 {
            return Ok(None);
        }
        if g.samples >= data.len() {
            return Err(Error::Invalid(format!(
                "fast_fgsm_training: guard_samples ({}) must be fewer than the training samples ({}); \
                 lower it, or set guard_samples: 0 to train without the guard",
                g.samples,
                data.len()
            )));
        }
        let (held, train) = hold_out(data.len(), g.samples, self.step.seed);
        let guard = GuardState::new(data.subset(&held)?, g, &self.step)?;
        Ok(Some(Box::new(Guarded { guard, train })))
    }

    fn craft(&self, model: &Model, x: &Tensor, y: &Tensor, epoch: usize, batch: usize) -> Result<Crafting> {
        self.step.craft(model, x, y, epoch, batch)
    }
}

impl fmt::Display for FastFgsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self;
        write!(
            f,
            "{}(eps={}, alpha={}, seed={}, guard_samples={}, guard_steps={}, guard_drop={}, stop_on_overfit={})",
            self.name(),
            x.step.eps,
            x.step.alpha,
            x.step.seed,
            x.guard.samples,
            x.guard.steps,
            x.guard.drop,
            x.guard.stop
        )
    }
}

/// Indices of the samples the guard holds out (`k` of `n`, drawn from `seed`), and the
/// others, in order.
fn hold_out(n: usize, k: usize, seed: u64) -> (Vec<usize>, Vec<u32>) {
    let mut all: Vec<usize> = (0..n).collect();
    all.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x6775_6172_6400));
    let mut guard = all[..k].to_vec();
    guard.sort_unstable();
    let mut keep = vec![true; n];
    guard.iter().for_each(|&i| keep[i] = false);
    let train = (0..n as u32).filter(|&i| keep[i as usize]).collect();
    (guard, train)
}

/// The guard over one run: its state, and the samples that train.
struct Guarded {
    guard: GuardState,
    train: Vec<u32>,
}

impl Monitor for Guarded {
    fn train_indices(&self) -> Vec<u32> {
        self.train.clone()
    }

    fn epoch_end(&mut self, model: &Model, epoch: usize, measured: &mut Measured) -> Result<Flow> {
        let check = self.guard.check(model, epoch)?;
        measured.insert("guard_clean".into(), check.clean);
        measured.insert("guard_pgd".into(), check.pgd);
        Ok(if check.stop { Flow::Stop } else { Flow::Continue })
    }

    fn outcome(&self, out: &mut serde_json::Map<String, serde_json::Value>) {
        let g = &self.guard;
        out.insert("guard_samples".into(), serde_json::json!(g.data.len()));
        out.insert(
            "catastrophic_overfitting".into(),
            serde_json::json!(g.overfit_epoch.is_some()),
        );
        out.insert("overfit_epoch".into(), serde_json::json!(g.overfit_epoch));
        out.insert("best_epoch".into(), serde_json::json!(g.best().map(|b| b.0)));
        out.insert("stopped_early".into(), serde_json::json!(g.stopped_early));
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
        let attack = crate::attack::PgdParams {
            steps: params.steps,
            seed: step.seed,
            batch_size: 256,
            ..crate::attack::PgdParams::new(step.eps)
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
                        for (var, t) in model.state_vars().iter().zip(snapshot) {
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
                            .state_vars()
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
}
