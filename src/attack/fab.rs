//! Targeted FAB (Croce and Hein 2020, "Minimally distorted adversarial examples with a fast
//! adaptive boundary attack"), AutoAttack's third stage: a minimal-norm attack that, step after
//! step, linearises the decision boundary between the true class and a target class and moves
//! towards its projection there.
//!
//! One step at the iterate x₁ (for the clean image x₀ and the target t): the logit difference
//! f = z_t − z_y and its input gradient w give the hyperplane w·z = w·x₁ − f. Both x₁ and x₀ are
//! projected onto it in the attack's norm, inside the [0, 1] box (d₁ and d₂: the minimal step
//! that reaches it, or, where the box does not allow that, the step that comes closest). With
//! α = min(‖d₁‖ / (‖d₁‖ + ‖d₂‖), α_max) the next iterate is the box-clipped
//! (1 − α)(x₁ + η d₁) + α (x₀ + η d₂): a step towards the boundary, biased towards the clean
//! image. When the iterate is misclassified, its distance to x₀ is compared with the smallest
//! found so far (kept per sample), and the iterate goes back towards x₀ by the factor β.
//!
//! A sample counts as fooled when its smallest misclassified iterate is within ε of x₀; its
//! output is that iterate. Other samples (and those the model misclassifies already) keep the
//! clean input. The targets are the 2nd, 3rd, … most likely classes on the clean input, each a
//! run on the samples not yet fooled; restarts after the first start at x₀ plus noise of half ε.

use super::loss::input_gradient;
use super::{check_eps, run_seed, runs_on_unfooled, sample_noise, sphere_fill, Attack, Norm, RunOutput, Target};
use crate::error::{Error, ParamError, Result};
use crate::nn::Model;
use candle_core::{DType, Tensor, D};
use rand::Rng;
use rayon::prelude::*;
use std::fmt;

/// Unchecked FAB-T parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct FabParams {
    pub eps: f64,
    pub norm: Norm,
    pub steps: usize,
    pub restarts: usize,
    /// The number of target classes (the 2nd, 3rd, … most likely on the clean input).
    pub target_classes: usize,
    /// The largest weight of the step from the clean image.
    pub alpha_max: f64,
    /// Overshoot of the projection step.
    pub eta: f64,
    /// The factor by which a misclassified iterate goes back towards the clean image.
    pub beta: f64,
    pub seed: u64,
    pub batch_size: usize,
}

impl FabParams {
    /// FAB-T with budget `eps` and AutoAttack's settings: L∞, 100 steps, one run per target,
    /// 9 target classes, α_max 0.1, η 1.05, β 0.9.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            norm: Norm::Linf,
            steps: 100,
            restarts: 1,
            target_classes: 9,
            alpha_max: 0.1,
            eta: 1.05,
            beta: 0.9,
            seed: 0,
            batch_size: 256,
        }
    }

    /// Check the rules: ε finite and ≥ 0; steps, restarts, target classes and batch size ≥ 1;
    /// α_max in [0, 1], η ≥ 1 and β in (0, 1].
    pub fn check(&self) -> std::result::Result<Fab, ParamError> {
        check_eps(self.eps)?;
        if self.steps == 0 {
            return Err(ParamError::StepsZero);
        }
        if self.restarts == 0 {
            return Err(ParamError::RestartsZero);
        }
        if self.batch_size == 0 {
            return Err(ParamError::BatchSizeZero);
        }
        if self.target_classes == 0 {
            return Err(ParamError::TargetClassesZero);
        }
        if !(0.0..=1.0).contains(&self.alpha_max) {
            return Err(ParamError::FabAlphaMax(self.alpha_max));
        }
        if !(self.eta.is_finite() && self.eta >= 1.0) {
            return Err(ParamError::FabEta(self.eta));
        }
        if !(self.beta > 0.0 && self.beta <= 1.0) {
            return Err(ParamError::FabBeta(self.beta));
        }
        Ok(Fab { p: self.clone() })
    }
}

/// Checked FAB-T.
#[derive(Clone, Debug, PartialEq)]
pub struct Fab {
    p: FabParams,
}

/// The smallest step `d` (in the L∞ or L2 norm) that takes `t` onto the hyperplane `w·z = b`
/// while `t + d` stays in the [0, 1] box; where the box does not allow reaching the hyperplane,
/// the step that comes closest (every coordinate at its bound). `order` is scratch space.
///
/// Coordinate i moves away from the hyperplane's far side by m_i(λ) = min(λ·k_i, cap_i), where
/// cap_i is its room in the box in the helpful direction and k_i is 1 (L∞) or |w_i| (L2, the
/// KKT solution clip(−λw)); the change of w·z, Σ |w_i| m_i(λ), is piecewise linear and rising
/// in λ, so λ is found by walking the breakpoints cap_i / k_i in increasing order.
pub(crate) fn project_onto_hyperplane(
    t: &[f32],
    w: &[f32],
    b: f32,
    norm: Norm,
    d: &mut [f32],
    order: &mut Vec<(f64, usize)>,
) {
    let c = t.iter().zip(w).map(|(&t, &w)| t as f64 * w as f64).sum::<f64>() - b as f64;
    // moving coordinate i up changes w·z by w_i: to lower it by c ≥ 0 (raise it by −c when
    // c < 0) a coordinate moves up where w_i < 0 (w_i > 0) and down otherwise
    let need = c.abs();
    let up = |wi: f32| (wi < 0.0) == (c >= 0.0);
    let active = |wi: f32| match norm {
        Norm::Linf => wi != 0.0,
        Norm::L2 => wi.abs() > 1e-8,
    };
    let cap = |ti: f32, wi: f32| if up(wi) { (1.0 - ti).max(0.0) } else { ti.max(0.0) } as f64;
    let rate = |wi: f32| match norm {
        Norm::Linf => 1.0,
        Norm::L2 => wi.abs() as f64,
    };
    order.clear();
    let (mut reach, mut slope) = (0.0f64, 0.0f64);
    for (i, (&ti, &wi)) in t.iter().zip(w).enumerate() {
        if active(wi) {
            let (ci, ki) = (cap(ti, wi), rate(wi));
            reach += wi.abs() as f64 * ci;
            slope += wi.abs() as f64 * ki;
            order.push((ci / ki, i));
        }
    }
    let lambda = if reach <= need {
        f64::INFINITY
    } else {
        order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut saturated = 0.0f64;
        let mut lambda = f64::INFINITY;
        for &(brk, i) in order.iter() {
            if saturated + brk * slope >= need {
                lambda = ((need - saturated) / slope).max(0.0);
                break;
            }
            let (wi, ti) = (w[i], t[i]);
            saturated += wi.abs() as f64 * cap(ti, wi);
            slope -= wi.abs() as f64 * rate(wi);
        }
        lambda
    };
    for (i, di) in d.iter_mut().enumerate() {
        let (ti, wi) = (t[i], w[i]);
        *di = if active(wi) {
            let m = (lambda * rate(wi)).min(cap(ti, wi)) as f32;
            if up(wi) {
                m
            } else {
                -m
            }
        } else {
            0.0
        };
    }
}

/// The norm of a flat vector.
fn norm_of(v: impl Iterator<Item = f32>, norm: Norm) -> f32 {
    match norm {
        Norm::Linf => v.fold(0f32, |m, x| m.max(x.abs())),
        Norm::L2 => v.map(|x| x * x).sum::<f32>().sqrt(),
    }
}

impl Fab {
    /// The random start of restart `seed`: x₀ plus noise of norm ε/2 (L∞: uniform, scaled so its
    /// largest coordinate is ε/2; L2: a Gaussian direction of length ε/2), clipped to [0, 1].
    fn start(&self, x0: &Tensor, seed: u64) -> Result<Tensor> {
        let r = 0.5 * self.p.eps as f32;
        let noise = match self.p.norm {
            Norm::Linf => sample_noise(x0, seed, |rng, out| {
                out.iter_mut().for_each(|v| *v = rng.random_range(-1.0f32..1.0));
                let m = out.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
                out.iter_mut().for_each(|v| *v *= r / m);
            })?,
            Norm::L2 => sample_noise(x0, seed, |rng, out| sphere_fill(rng, out, r))?,
        };
        Ok((x0 + noise)?.clamp(0f32, 1f32)?)
    }

    /// One run towards `target` on a batch the model classifies correctly: the smallest
    /// misclassified iterate per sample (flat, on the host) and its distance (∞ where none).
    fn run(
        &self,
        model: &Model,
        x0: &Tensor,
        y: &Tensor,
        target: &Tensor,
        start: Option<u64>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = x0.dim(0)?;
        let dims = x0.dims().to_vec();
        let per = x0.elem_count() / n.max(1);
        let norm = self.p.norm;
        let (eta, beta, alpha_max) = (self.p.eta as f32, self.p.beta as f32, self.p.alpha_max as f32);
        let clean = x0.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let labels = y.to_vec1::<u32>()?;
        let (yi, ti) = (y.unsqueeze(1)?, target.unsqueeze(1)?);
        let mut x1 = match start {
            None => clean.clone(),
            Some(seed) => self.start(x0, seed)?.flatten_all()?.to_vec1::<f32>()?,
        };
        let mut best = clean.clone();
        let mut best_dist = vec![f32::INFINITY; n];
        for _ in 0..self.p.steps {
            crate::interrupt::check()?;
            let x = Tensor::from_slice(&x1, dims.as_slice(), x0.device())?;
            let (f, g) = input_gradient(model, &x, |z| Ok((z.gather(&ti, 1)? - z.gather(&yi, 1)?)?.squeeze(1)?))?;
            let f = f.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            let g = g.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            x1.par_chunks_mut(per)
                .zip(clean.par_chunks(per))
                .zip(g.par_chunks(per))
                .zip(f.par_iter())
                .for_each_init(
                    || (vec![0f32; per], vec![0f32; per], Vec::with_capacity(per)),
                    |(d1, d2, order), (((xs, x0s), w), &fs)| {
                        let b = xs.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() as f32 - fs;
                        project_onto_hyperplane(xs, w, b, norm, d1, order);
                        project_onto_hyperplane(x0s, w, b, norm, d2, order);
                        let a1 = norm_of(d1.iter().copied(), norm).max(1e-8);
                        let a2 = norm_of(d2.iter().copied(), norm).max(1e-8);
                        let alpha = (a1 / (a1 + a2)).clamp(0.0, alpha_max);
                        for i in 0..per {
                            let v = (xs[i] + eta * d1[i]) * (1.0 - alpha) + (x0s[i] + eta * d2[i]) * alpha;
                            xs[i] = v.clamp(0.0, 1.0);
                        }
                    },
                );
            let x = Tensor::from_slice(&x1, dims.as_slice(), x0.device())?;
            let pred = model.forward(&x)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
            for j in 0..n {
                if pred[j] == labels[j] {
                    continue;
                }
                let (xs, x0s) = (&mut x1[j * per..(j + 1) * per], &clean[j * per..(j + 1) * per]);
                let dist = norm_of(xs.iter().zip(x0s).map(|(a, b)| a - b), norm);
                if dist < best_dist[j] {
                    best_dist[j] = dist;
                    best[j * per..(j + 1) * per].copy_from_slice(xs);
                }
                xs.iter_mut().zip(x0s).for_each(|(a, &b)| *a = b + (*a - b) * beta);
            }
        }
        Ok((best, best_dist))
    }
}

impl Attack for Fab {
    fn name(&self) -> &'static str {
        "fab_t"
    }

    fn params(&self) -> serde_json::Value {
        let p = &self.p;
        serde_json::json!({
            "attack": self.name(), "eps": p.eps, "norm": p.norm.as_str(), "steps": p.steps,
            "restarts": p.restarts, "n_target_classes": p.target_classes, "alpha_max": p.alpha_max,
            "eta": p.eta, "beta": p.beta, "seed": p.seed, "batch_size": p.batch_size,
        })
    }

    fn batch_size(&self) -> usize {
        self.p.batch_size
    }

    fn target(&self) -> Target {
        Target::Untargeted
    }

    fn with_eps(&self, eps: f64) -> Result<Box<dyn Attack>> {
        Ok(Box::new(FabParams { eps, ..self.p.clone() }.check()?))
    }

    fn with_seed(&self, seed: u64) -> Option<Box<dyn Attack>> {
        Some(Box::new(Fab {
            p: FabParams { seed, ..self.p.clone() },
        }))
    }

    fn perturb_batch(&self, model: &Model, x0: &Tensor, y: &Tensor) -> Result<Tensor> {
        if self.p.eps == 0.0 {
            return Ok(x0.clone());
        }
        let clean_logits = model.forward(x0)?;
        let classes = clean_logits.dim(1)?;
        if self.p.target_classes > classes - 1 {
            return Err(Error::Invalid(format!(
                "fab_t: n_target_classes {} is more than the model's other classes ({})",
                self.p.target_classes,
                classes - 1
            )));
        }
        let targets: Vec<Option<usize>> = (2..self.p.target_classes + 2).map(Some).collect();
        runs_on_unfooled(x0, y, &clean_logits, &targets, self.p.restarts, |r| {
            let start = (r.restart > 0).then(|| run_seed(self.p.seed, r.index));
            let target = r
                .target
                .as_ref()
                .ok_or_else(|| Error::Invalid("fab_t: a run without a target".into()))?;
            let (out, dist) = self.run(model, &r.x, &r.y, target, start)?;
            let fooled: Vec<bool> = dist.iter().map(|&d| d <= self.p.eps as f32).collect();
            let x = Tensor::from_vec(out, r.x.dims(), r.x.device())?.to_dtype(r.x.dtype())?;
            Ok(RunOutput {
                x,
                take: fooled.clone(),
                fooled,
            })
        })
    }
}

impl fmt::Display for Fab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.p;
        write!(
            f,
            "fab_t(eps={}, norm={}, steps={}, restarts={}, n_target_classes={}, alpha_max={}, eta={}, beta={}, seed={}, batch_size={})",
            p.eps,
            p.norm.as_str(),
            p.steps,
            p.restarts,
            p.target_classes,
            p.alpha_max,
            p.eta,
            p.beta,
            p.seed,
            p.batch_size
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The step reaches the hyperplane inside the box, and no cheaper step does: a brute-force
    /// check over random small problems (the optimum is compared with random feasible steps).
    #[test]
    fn projection_is_feasible_and_minimal() {
        use rand::{rngs::StdRng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        let mut order = Vec::new();
        for norm in [Norm::Linf, Norm::L2] {
            for case in 0..300 {
                let n = 2 + case % 6;
                let t: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
                let w: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
                let b: f32 = rng.random_range(-1.0..1.0);
                let mut d = vec![0f32; n];
                project_onto_hyperplane(&t, &w, b, norm, &mut d, &mut order);
                let z: Vec<f32> = t.iter().zip(&d).map(|(a, b)| a + b).collect();
                assert!(
                    z.iter().all(|&v| (-1e-6..=1.0 + 1e-6).contains(&v)),
                    "{norm:?} left the box: {z:?}"
                );
                let wz: f32 = w.iter().zip(&z).map(|(a, b)| a * b).sum();
                let lo: f32 = w.iter().map(|&wi| wi.min(0.0)).sum();
                let hi: f32 = w.iter().map(|&wi| wi.max(0.0)).sum();
                if b > lo + 1e-4 && b < hi - 1e-4 {
                    assert!((wz - b).abs() < 1e-4, "{norm:?} missed the hyperplane: {wz} vs {b}");
                    let cost = norm_of(d.iter().copied(), norm);
                    // a random feasible step: towards a random box point on the hyperplane
                    for _ in 0..50 {
                        let u: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
                        let wu: f32 = w.iter().zip(&u).map(|(a, b)| a * b).sum();
                        let wt: f32 = w.iter().zip(&t).map(|(a, b)| a * b).sum();
                        if (wu - wt).abs() < 1e-3 || (b - wt) / (wu - wt) > 1.0 || (b - wt) / (wu - wt) < 0.0 {
                            continue;
                        }
                        let s = (b - wt) / (wu - wt);
                        let other = norm_of(t.iter().zip(&u).map(|(a, c)| s * (c - a)), norm);
                        assert!(
                            cost <= other + 1e-4,
                            "{norm:?}: step {cost} but {other} also reaches it"
                        );
                    }
                } else if b <= lo || b >= hi {
                    // unreachable: every coordinate at its bound in the helpful direction
                    let best = if b <= lo { lo } else { hi };
                    assert!(
                        (wz - best).abs() < 1e-4,
                        "{norm:?}: {wz} should be the box's extreme {best}"
                    );
                }
            }
        }
    }
}
