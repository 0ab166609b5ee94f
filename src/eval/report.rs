//! The robustness report of a model under a list of attacks, with the metric definitions
//! pinned down (they differ between libraries):
//! - robust accuracy: adversarial predictions equal to the true label, over all samples;
//! - attack success rate: over the samples the model classified correctly when clean (and,
//!   for a targeted attack, whose label is not the target): untargeted, the prediction
//!   changed away from the label; targeted, it reached the target;
//! - robustness gap: clean minus robust accuracy;
//! - perturbation size (L∞, L2, L0 = pixels changed by more than 1e-6): mean and median over
//!   the successful samples;
//! - confidence: mean probability of the true class on the adversarial images, all samples.

use crate::attack::{perturb, Attack};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{predictions, Model, EVAL_BATCH};
use crate::util::unique_key;
use candle_core::DType;
use std::fmt;
use std::time::Instant;

/// The metrics of one attack.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AttackReport {
    /// The key in the report: the attack's name, `_2`, `_3` … when repeated.
    pub key: String,
    pub params: serde_json::Value,
    pub samples: usize,
    pub clean_accuracy: f64,
    pub robust_accuracy: f64,
    pub gap: f64,
    /// Samples the attack could succeed on (correct when clean, label ≠ target).
    pub attempted: usize,
    pub successes: usize,
    pub success_rate: f64,
    pub linf_mean: f64,
    pub linf_median: f64,
    pub l2_mean: f64,
    pub l2_median: f64,
    pub l0_mean: f64,
    pub l0_median: f64,
    pub true_confidence: f64,
    pub seconds: f64,
}

/// Clean metrics and one [`AttackReport`] per attack.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    pub model: String,
    pub data: String,
    pub samples: usize,
    pub clean_accuracy: f64,
    pub clean_confidence: f64,
    pub attacks: Vec<AttackReport>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Per-sample L∞, L2 and L0 norms of `adv − clean`.
pub fn perturbation_norms(clean: &Dataset, adv: &Dataset) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let d = (adv.images() - clean.images())?.flatten_from(1)?.to_dtype(DType::F32)?;
    let a = d.abs()?;
    Ok((
        a.max(1)?.to_vec1()?,
        d.sqr()?.sum(1)?.sqrt()?.to_vec1()?,
        a.gt(1e-6)?.to_dtype(DType::F32)?.sum(1)?.to_vec1()?,
    ))
}

/// The targets an attack aimed for, sample by sample (`None` when untargeted).
fn targets(attack: &dyn Attack, model: &Model, data: &Dataset) -> Result<Option<Vec<u32>>> {
    let target = attack.target();
    if !target.is_targeted() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(data.len());
    let mut start = 0;
    while start < data.len() {
        let len = EVAL_BATCH.min(data.len() - start);
        let b = data.slice(start, len)?;
        if let Some(t) = target.resolve(model, b.images(), b.labels())? {
            out.extend(t.to_vec1::<u32>()?);
        }
        start += len;
    }
    Ok(Some(out))
}

/// The robustness report of `model` on `data` under each attack.
pub fn report(model: &Model, data: &Dataset, attacks: &[&dyn Attack]) -> Result<Report> {
    if data.is_empty() {
        return Err(Error::Invalid("report: the data set is empty".into()));
    }
    let n = data.len();
    let labels = data.labels().to_vec1::<u32>()?;
    let clean = predictions(model, data)?;
    let correct: Vec<bool> = clean.pred.iter().zip(&labels).map(|(p, l)| p == l).collect();
    let clean_accuracy = correct.iter().filter(|&&c| c).count() as f64 / n as f64;
    let mut rows: Vec<AttackReport> = Vec::new();
    for attack in attacks {
        let t = Instant::now();
        let adv = perturb(*attack, model, data)?;
        let seconds = t.elapsed().as_secs_f64();
        let after = predictions(model, &adv)?;
        let targets = targets(*attack, model, data)?;
        let (linf, l2, l0) = perturbation_norms(data, &adv)?;
        let (mut attempted, mut successes) = (0, 0);
        let (mut s_linf, mut s_l2, mut s_l0) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let (eligible, success) = match &targets {
                None => (correct[i], after.pred[i] != labels[i]),
                Some(t) => (correct[i] && labels[i] != t[i], after.pred[i] == t[i]),
            };
            if !eligible {
                continue;
            }
            attempted += 1;
            if success {
                successes += 1;
                s_linf.push(linf[i] as f64);
                s_l2.push(l2[i] as f64);
                s_l0.push(l0[i] as f64);
            }
        }
        let robust = after.pred.iter().zip(&labels).filter(|(p, l)| p == l).count() as f64 / n as f64;
        rows.push(AttackReport {
            key: unique_key(rows.iter().map(|r| r.key.as_str()), attack.name()),
            params: attack.params(),
            samples: n,
            clean_accuracy,
            robust_accuracy: robust,
            gap: clean_accuracy - robust,
            attempted,
            successes,
            success_rate: if attempted == 0 {
                f64::NAN
            } else {
                successes as f64 / attempted as f64
            },
            linf_mean: mean(&s_linf),
            linf_median: median(&s_linf),
            l2_mean: mean(&s_l2),
            l2_median: median(&s_l2),
            l0_mean: mean(&s_l0),
            l0_median: median(&s_l0),
            true_confidence: mean(&after.true_prob.iter().map(|&p| p as f64).collect::<Vec<_>>()),
            seconds,
        });
    }
    Ok(Report {
        model: model.arch().to_string(),
        data: data.name().to_string(),
        samples: n,
        clean_accuracy,
        clean_confidence: mean(&clean.true_prob.iter().map(|&p| p as f64).collect::<Vec<_>>()),
        attacks: rows,
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Report: {} on {} ({} samples), clean accuracy {:.4}, mean true-class confidence {:.4}",
            self.model, self.data, self.samples, self.clean_accuracy, self.clean_confidence
        )?;
        writeln!(
            f,
            "{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>9} {:>8}",
            "attack",
            "robust",
            "ASR",
            "gap",
            "L∞ mean",
            "L∞ med",
            "L2 mean",
            "L2 med",
            "L0 med",
            "conf",
            "succ",
            "seconds"
        )?;
        let num = |v: f64| if v.is_nan() { "-".to_string() } else { format!("{v:.4}") };
        for r in &self.attacks {
            writeln!(
                f,
                "{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>9} {:>8.2}",
                r.key,
                num(r.robust_accuracy),
                num(r.success_rate),
                num(r.gap),
                num(r.linf_mean),
                num(r.linf_median),
                num(r.l2_mean),
                num(r.l2_median),
                if r.l0_median.is_nan() {
                    "-".to_string()
                } else {
                    format!("{:.0}", r.l0_median)
                },
                num(r.true_confidence),
                format!("{}/{}", r.successes, r.attempted),
                r.seconds
            )?;
        }
        Ok(())
    }
}

/// One point of an accuracy-versus-ε curve: ε and the accuracy under each attack, by key.
pub type CurveRow = (f64, Vec<(String, f64)>);

/// Accuracy under each attack at each budget: one row per ε, one column per attack (keyed by
/// name), with ε = 0 meaning the clean accuracy.
pub fn accuracy_vs_eps(model: &Model, data: &Dataset, attacks: &[&dyn Attack], eps: &[f64]) -> Result<Vec<CurveRow>> {
    let mut keys: Vec<String> = Vec::new();
    for a in attacks {
        keys.push(unique_key(keys.iter().map(String::as_str), a.name()));
    }
    let variants = attacks
        .iter()
        .map(|a| eps.iter().map(|&e| a.with_eps(e)).collect::<Result<Vec<_>>>())
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::with_capacity(eps.len());
    for (j, &e) in eps.iter().enumerate() {
        let mut cols = Vec::with_capacity(attacks.len());
        for (key, v) in keys.iter().zip(&variants) {
            let adv = perturb(v[j].as_ref(), model, data)?;
            cols.push((key.clone(), super::accuracy(model, &adv)?));
        }
        rows.push((e, cols));
    }
    Ok(rows)
}

/// One cell of a transfer matrix: the accuracy of `target` on the adversarial images crafted
/// against `source`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TransferCell {
    pub source: String,
    pub target: String,
    pub accuracy: f64,
}

/// Cross-testing (seed 003): attack `data` against each model, then measure every model on each
/// model's adversarial images. The diagonal is the white-box accuracy.
pub fn transfer_matrix(models: &[(String, Model)], data: &Dataset, attack: &dyn Attack) -> Result<Vec<TransferCell>> {
    let mut cells = Vec::with_capacity(models.len() * models.len());
    for (source, sm) in models {
        let adv = perturb(attack, sm, data)?;
        for (target, tm) in models {
            cells.push(TransferCell {
                source: source.clone(),
                target: target.clone(),
                accuracy: super::accuracy(tm, &adv)?,
            });
        }
    }
    Ok(cells)
}
