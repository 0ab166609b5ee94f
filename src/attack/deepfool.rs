//! DeepFool (Moosavi-Dezfooli et al. 2016), L2: the minimal-perturbation attack. At each
//! iteration the classifier is linearised around the current point and the sample moves to the
//! nearest linearised decision boundary among the top candidate classes, plus a small
//! overshoot. Batched: one forward pass and one backward pass per candidate class serve all the
//! samples of a batch that have not flipped yet; flipped samples leave the batch.

use super::Attack;
use crate::error::{ParamError, Result};
use crate::nn::Model;
use candle_core::{DType, Tensor, Var};
use std::fmt;

/// Unchecked DeepFool parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct DeepFoolParams {
    /// Maximum iterations per sample.
    pub steps: usize,
    /// The final perturbation is `(1 + overshoot) · r`.
    pub overshoot: f64,
    /// Candidate classes: the top `num_classes` of the clean logits.
    pub num_classes: usize,
    pub batch_size: usize,
}

impl Default for DeepFoolParams {
    fn default() -> Self {
        Self {
            steps: 50,
            overshoot: 0.02,
            num_classes: 10,
            batch_size: 256,
        }
    }
}

impl DeepFoolParams {
    /// Check the rules: steps ≥ 1, overshoot finite and ≥ 0, at least 2 candidate classes,
    /// batch size ≥ 1.
    pub fn check(&self) -> std::result::Result<DeepFool, ParamError> {
        if self.steps == 0 {
            return Err(ParamError::StepsZero);
        }
        if !(self.overshoot.is_finite() && self.overshoot >= 0.0) {
            return Err(ParamError::Overshoot(self.overshoot));
        }
        if self.num_classes < 2 {
            return Err(ParamError::CandidateClasses(self.num_classes));
        }
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        Ok(DeepFool { p: self.clone() })
    }
}

/// Checked DeepFool.
#[derive(Clone, Debug, PartialEq)]
pub struct DeepFool {
    p: DeepFoolParams,
}

/// Host rows of a 2-D tensor.
fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

impl DeepFool {
    /// Minimal perturbations `r` (host, one row of `C·H·W` per sample) that flip the model's
    /// prediction on each sample of `x0`, before the overshoot. Samples that did not flip within
    /// the step budget keep the last `r`.
    pub(crate) fn search(&self, model: &Model, x0: &Tensor) -> Result<Vec<Vec<f32>>> {
        let n = x0.dim(0)?;
        let dims = x0.dims().to_vec();
        let dev = x0.device();
        let classes = model.classes();
        let k = self.p.num_classes.min(classes);
        let scale = 1.0 + self.p.overshoot as f32;
        let x0_h = rows(&x0.flatten_from(1)?)?;
        let d = x0_h.first().map_or(0, |r| r.len());
        // candidates: the top-k classes of the clean logits, the clean prediction first
        let cands: Vec<Vec<usize>> = rows(&model.forward(x0)?)?
            .into_iter()
            .map(|z| {
                let mut idx: Vec<usize> = (0..classes).collect();
                idx.sort_by(|&a, &b| z[b].total_cmp(&z[a]));
                idx.truncate(k);
                idx
            })
            .collect();
        let mut r_tot = vec![vec![0f32; d]; n];
        let mut active: Vec<usize> = (0..n).collect();
        for _ in 0..self.p.steps {
            crate::interrupt::check()?;
            if active.is_empty() {
                break;
            }
            let na = active.len();
            let mut xa = Vec::with_capacity(na * d);
            for &i in &active {
                xa.extend(
                    x0_h[i]
                        .iter()
                        .zip(&r_tot[i])
                        .map(|(&x, &r)| (x + scale * r).clamp(0.0, 1.0)),
                );
            }
            let mut shape = dims.clone();
            shape[0] = na;
            let var = Var::from_tensor(&Tensor::from_vec(xa, shape, dev)?)?;
            let logits = model.forward(var.as_tensor())?;
            let z = rows(&logits)?;
            // samples whose prediction is still the clean one go on
            let still: Vec<usize> = (0..na)
                .filter(|&a| {
                    let pred = (0..classes).max_by(|&p, &q| z[a][p].total_cmp(&z[a][q]).then(q.cmp(&p)));
                    pred == Some(cands[active[a]][0])
                })
                .collect();
            if still.is_empty() {
                break;
            }
            // per candidate rank j: the gradient of Z_{c_j} − Z_{c_0} for every sample at once
            let mut best: Vec<(f32, Vec<f32>)> = vec![(f32::INFINITY, Vec::new()); na];
            for j in 1..k {
                let mut sel = vec![0f32; na * classes];
                for a in 0..na {
                    let c = &cands[active[a]];
                    sel[a * classes + c[j]] += 1.0;
                    sel[a * classes + c[0]] -= 1.0;
                }
                let sel = Tensor::from_vec(sel, (na, classes), dev)?;
                let grads = (&logits * &sel)?.sum_all()?.backward()?;
                let Some(g) = grads.get(var.as_tensor()) else { continue };
                let g = rows(&g.flatten_from(1)?)?;
                for &a in &still {
                    let c = &cands[active[a]];
                    let f = z[a][c[j]] - z[a][c[0]];
                    let norm = g[a].iter().map(|v| v * v).sum::<f32>().sqrt();
                    let dist = f.abs() / (norm + 1e-8);
                    if dist < best[a].0 {
                        // step to the linearised boundary: (|f| + 1e-4) / ‖w‖² · w
                        let s = (f.abs() + 1e-4) / (norm * norm + 1e-8);
                        best[a] = (dist, g[a].iter().map(|v| v * s).collect());
                    }
                }
            }
            for &a in &still {
                if let Some(r) = (!best[a].1.is_empty()).then(|| &best[a].1) {
                    r_tot[active[a]].iter_mut().zip(r).for_each(|(t, v)| *t += v);
                }
            }
            active = still.into_iter().map(|a| active[a]).collect();
        }
        Ok(r_tot)
    }
}

impl Attack for DeepFool {
    fn name(&self) -> &'static str {
        "deepfool"
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.p;
        serde_json::json!({
            "attack": "deepfool", "norm": "l2", "steps": p.steps, "overshoot": p.overshoot,
            "num_classes": p.num_classes, "batch_size": p.batch_size,
        })
    }

    fn batch_size(&self) -> usize {
        self.p.batch_size
    }

    fn perturb_batch(&self, model: &Model, x0: &Tensor, _y: &Tensor) -> Result<Tensor> {
        let r = self.search(model, x0)?;
        let flat: Vec<f32> = r.into_iter().flatten().collect();
        let r = Tensor::from_vec(flat, x0.dims(), x0.device())?;
        Ok((x0 + (r * (1.0 + self.p.overshoot))?)?.clamp(0f32, 1f32)?)
    }
}

impl fmt::Display for DeepFool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.p;
        write!(
            f,
            "DeepFool(steps={}, overshoot={}, num_classes={}, norm=l2, batch_size={})",
            p.steps, p.overshoot, p.num_classes, p.batch_size
        )
    }
}
