//! Sanity checks of a robustness evaluation (Carlini et al. 2019, "On evaluating adversarial
//! robustness"; Athalye et al. 2018): a defence that only hides gradients fails them.
//!
//! 1. robust accuracy falls as ε grows (and is below the clean accuracy at ε);
//! 2. robust accuracy does not rise with the number of steps, and the attack moves it at all
//!    (below the clean accuracy);
//! 3. a large ε (1.0 under L∞: any image is reachable) drives accuracy to ≈ 0;
//! 4. a transfer attack from an undefended surrogate is not stronger than the white-box one;
//! 5. random noise of the same budget is weaker than the attack;
//! 6. on a model with randomised or non-differentiable transforms, the adaptive attack (EOT
//!    over the randomness, BPDA through the non-differentiable steps) is not weaker than the
//!    naive one (one sample, true gradients).
//!
//! "Not weaker", "falls" and "≈ 0" are up to `tolerance` (accuracy points).

use super::accuracy;
use crate::attack::{perturb, Attack, NoiseParams, PgdParams};
use crate::data::Dataset;
use crate::error::{ParamError, Result};
use crate::nn::{Arch, Model};
use crate::train::{fit, FitParams};
use std::fmt;

/// Unchecked parameters of [`robustness_checks`].
#[derive(Clone, Debug)]
pub struct ChecksParams {
    /// The L∞ budget of the white-box PGD.
    pub eps: f64,
    /// Its steps (α = 2.5·ε/steps).
    pub steps: usize,
    /// EOT samples of the white-box PGD.
    pub eot: usize,
    /// EOT samples of the adaptive attack in check 6 (on a randomised model).
    pub eot_check: usize,
    /// The budget of check 3.
    pub large_eps: f64,
    /// How many samples of the data are used.
    pub samples: usize,
    /// Slack, in accuracy points, of every comparison.
    pub tolerance: f64,
    pub seed: u64,
    /// The undefended surrogate of check 4; when absent, an MLP (one hidden layer of 256) is
    /// trained here on `surrogate_data`, else on the checked data.
    pub surrogate: Option<Model>,
    pub surrogate_data: Option<Dataset>,
}

impl Default for ChecksParams {
    fn default() -> Self {
        Self {
            eps: 0.3,
            steps: 20,
            eot: 1,
            eot_check: 10,
            large_eps: 1.0,
            samples: 500,
            tolerance: 0.02,
            seed: 0,
            surrogate: None,
            surrogate_data: None,
        }
    }
}

/// Checked parameters of [`robustness_checks`].
#[derive(Clone, Debug)]
pub struct ChecksValid {
    p: ChecksParams,
}

impl ChecksParams {
    /// Check every rule: ε finite and > 0 (and below `large_eps`), steps ≥ 1, eot ≥ 1,
    /// samples ≥ 1, tolerance in [0, 1).
    pub fn check(self) -> std::result::Result<ChecksValid, ParamError> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(ParamError::EpsNegative(self.eps));
        }
        if self.steps == 0 {
            return Err(ParamError::StepsZero);
        }
        if self.eot == 0 || self.eot_check == 0 {
            return Err(ParamError::EotZero);
        }
        if !(self.large_eps.is_finite() && self.large_eps > self.eps) {
            return Err(ParamError::LargeEps {
                large_eps: self.large_eps,
                eps: self.eps,
            });
        }
        if self.samples == 0 {
            return Err(ParamError::SamplesZero);
        }
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            return Err(ParamError::CheckTolerance(self.tolerance));
        }
        Ok(ChecksValid { p: self })
    }
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not applicable to this model.
    Skipped,
}

impl Status {
    fn of(ok: bool) -> Self {
        if ok {
            Status::Pass
        } else {
            Status::Fail
        }
    }

    /// `yes`, `NO` or `n/a`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "yes",
            Status::Fail => "NO",
            Status::Skipped => "n/a",
        }
    }
}

/// One check: a short key, what it checks, the outcome and the numbers behind it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub key: &'static str,
    pub description: String,
    pub status: Status,
    pub evidence: String,
    pub values: serde_json::Value,
}

/// Every check of one model on one data set.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RobustnessChecks {
    pub model: String,
    pub data: String,
    pub samples: usize,
    pub params: serde_json::Value,
    pub checks: Vec<Check>,
}

impl RobustnessChecks {
    /// Whether no check failed (skipped ones do not count).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The keys of the failed checks.
    pub fn failures(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.key)
            .collect()
    }
}

fn r3(v: f64) -> String {
    format!("{v:.3}")
}

/// Run the checks on the first `samples` samples of `data`.
pub fn robustness_checks(model: &Model, data: &Dataset, v: &ChecksValid) -> Result<RobustnessChecks> {
    let p = &v.p;
    model.check_input(data.images().dims())?;
    let data = data.take(p.samples)?;
    let tol = p.tolerance;
    let pgd = |eps: f64, steps: usize, eot: usize| {
        PgdParams {
            steps,
            seed: p.seed,
            eot,
            ..PgdParams::new(eps)
        }
        .check()
    };
    let robust = |m: &Model, attack: &dyn Attack| -> Result<f64> { accuracy(model, &perturb(attack, m, &data)?) };
    let clean = accuracy(model, &data)?;
    let mut checks = Vec::new();

    // 1. ε grows
    let eps_grid = [p.eps / 4.0, p.eps / 2.0, p.eps];
    let by_eps = eps_grid
        .iter()
        .map(|&e| robust(model, &pgd(e, p.steps, p.eot)?))
        .collect::<Result<Vec<f64>>>()?;
    let white_box = by_eps[2];
    let mut seq = vec![clean];
    seq.extend(&by_eps);
    let monotone = seq.windows(2).all(|w| w[1] <= w[0] + tol);
    let falls = white_box < clean - tol || clean <= tol;
    checks.push(Check {
        key: "eps",
        description: "accuracy falls as ε grows".into(),
        status: Status::of(monotone && falls),
        evidence: format!(
            "clean {}, {}",
            r3(clean),
            eps_grid
                .iter()
                .zip(&by_eps)
                .map(|(e, a)| format!("ε {}: {}", r3(*e), r3(*a)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        values: serde_json::json!({ "clean": clean, "eps": eps_grid, "accuracy": by_eps }),
    });

    // 2. steps grow
    let mut step_grid = vec![1, (p.steps / 4).max(1), p.steps];
    step_grid.dedup();
    let mut by_steps = Vec::with_capacity(step_grid.len());
    for &s in &step_grid {
        by_steps.push(if s == p.steps {
            white_box
        } else {
            robust(model, &pgd(p.eps, s, p.eot)?)?
        });
    }
    let monotone = by_steps.windows(2).all(|w| w[1] <= w[0] + tol);
    let moves = white_box < clean - tol || clean <= tol;
    checks.push(Check {
        key: "steps",
        description: "accuracy does not rise with steps".into(),
        status: Status::of(monotone && moves),
        evidence: step_grid
            .iter()
            .zip(&by_steps)
            .map(|(s, a)| format!("{s} step{}: {}", if *s == 1 { "" } else { "s" }, r3(*a)))
            .collect::<Vec<_>>()
            .join(", "),
        values: serde_json::json!({ "steps": step_grid, "accuracy": by_steps }),
    });

    // 3. a large ε
    let large = robust(model, &pgd(p.large_eps, p.steps, p.eot)?)?;
    checks.push(Check {
        key: "large_eps",
        description: format!("ε {} drives accuracy to ~0", p.large_eps),
        status: Status::of(large <= tol),
        evidence: format!("{} (at most {} expected)", r3(large), tol),
        values: serde_json::json!({ "eps": p.large_eps, "accuracy": large }),
    });

    // 4. transfer from an undefended surrogate
    let (surrogate, origin) = match (&p.surrogate, &p.surrogate_data) {
        (Some(s), _) => (s.clone(), "given".to_string()),
        (None, train) => {
            let train = train.as_ref().unwrap_or(&data);
            let (c, h, w) = train.image_shape();
            let s = Model::new(
                Arch::mlp(vec![c * h * w, 256, model.classes()])?,
                model.device(),
                p.seed,
            )?;
            let fp = FitParams {
                epochs: 10,
                batch_size: 64,
                seed: p.seed,
                ..FitParams::default()
            }
            .check()?;
            fit(&s, train, &fp)?;
            (
                s,
                format!("trained here, 10 epochs on {} samples of {}", train.len(), train.name()),
            )
        }
    };
    let surrogate_clean = accuracy(&surrogate, &data)?;
    let transfer = robust(&surrogate, &pgd(p.eps, p.steps, 1)?)?;
    checks.push(Check {
        key: "transfer",
        description: "transfer attack not stronger than white-box".into(),
        status: Status::of(transfer >= white_box - tol),
        evidence: format!(
            "PGD from {} ({origin}; clean {}): {} vs white-box {}",
            surrogate.arch(),
            r3(surrogate_clean),
            r3(transfer),
            r3(white_box)
        ),
        values: serde_json::json!({ "surrogate": surrogate.arch(), "surrogate_clean": surrogate_clean, "transfer": transfer, "white_box": white_box }),
    });

    // 5. noise of the same budget
    let noise = NoiseParams {
        seed: p.seed,
        ..NoiseParams::new(p.eps)
    }
    .check()?;
    let noisy = robust(model, &noise)?;
    checks.push(Check {
        key: "noise",
        description: "noise of the same budget weaker than the attack".into(),
        status: Status::of(white_box < noisy - tol || white_box <= tol),
        evidence: format!("uniform noise ε {}: {} vs PGD {}", p.eps, r3(noisy), r3(white_box)),
        values: serde_json::json!({ "noise": noisy, "white_box": white_box }),
    });

    // 6. EOT / BPDA against the naive attack
    let random = model.pipeline().is_some_and(|d| d.is_random());
    let naive_model = model.with_bpda(false)?;
    let adaptive_model = model.with_bpda(true)?;
    let check6 = if !random && naive_model.is_none() {
        Check {
            key: "eot_bpda",
            description: "EOT/BPDA not weaker than the naive attack".into(),
            status: Status::Skipped,
            evidence: "no randomised or non-differentiable transform".into(),
            values: serde_json::Value::Null,
        }
    } else {
        let eot = if random { p.eot_check } else { 1 };
        let naive = robust(naive_model.as_ref().unwrap_or(model), &pgd(p.eps, p.steps, 1)?)?;
        let adaptive = robust(adaptive_model.as_ref().unwrap_or(model), &pgd(p.eps, p.steps, eot)?)?;
        let how = match (random, naive_model.is_some()) {
            (true, true) => format!("EOT {eot} + BPDA"),
            (true, false) => format!("EOT {eot}"),
            _ => "BPDA".to_string(),
        };
        Check {
            key: "eot_bpda",
            description: "EOT/BPDA not weaker than the naive attack".into(),
            status: Status::of(adaptive <= naive + tol),
            evidence: format!(
                "PGD naive (1 sample{}): {} vs adaptive ({how}): {}",
                if naive_model.is_some() { ", true gradients" } else { "" },
                r3(naive),
                r3(adaptive)
            ),
            values: serde_json::json!({ "naive": naive, "adaptive": adaptive, "eot": eot }),
        }
    };
    checks.push(check6);

    Ok(RobustnessChecks {
        model: format!("{model:?}"),
        data: data.name().to_string(),
        samples: data.len(),
        params: serde_json::json!({
            "eps": p.eps, "steps": p.steps, "eot": p.eot, "eot_check": p.eot_check,
            "large_eps": p.large_eps, "samples": p.samples, "tolerance": p.tolerance, "seed": p.seed,
        }),
        checks,
    })
}

impl fmt::Display for RobustnessChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        writeln!(
            f,
            "Robustness checks of {} on {} ({} samples; PGD-L∞ ε {}, {} steps, eot {}; tolerance {}):",
            self.model, self.data, self.samples, p["eps"], p["steps"], p["eot"], p["tolerance"]
        )?;
        let width = self
            .checks
            .iter()
            .map(|c| c.description.chars().count())
            .max()
            .unwrap_or(5);
        writeln!(f, "{:<width$}  passed  evidence", "check")?;
        for c in &self.checks {
            writeln!(f, "{:<width$}  {:<6}  {}", c.description, c.status.as_str(), c.evidence)?;
        }
        let failures = self.failures();
        if failures.is_empty() {
            write!(f, "no check failed")
        } else {
            write!(
                f,
                "FAILED: {} (the evaluation may be hiding gradients, not measuring robustness)",
                failures.join(", ")
            )
        }
    }
}
