//! AutoAttack's evaluation (Croce and Hein 2020): a fixed sequence of attacks, each run only on
//! the images still classified correctly, with the robust accuracy after every stage. An image
//! counts as robust only if every stage failed on it; its adversarial image is the one of the
//! stage that fooled it (or the clean one for images misclassified already).
//!
//! The versions: `"standard"` (APGD-CE, APGD-T, FAB-T, Square: AutoAttack's standard
//! sequence), `"apgd_square"` (without FAB-T), `"apgd"` (APGD-CE, APGD-T) and `"rand"` (APGD-CE
//! and APGD-DLR with EOT 20, for randomised defences). `"plus"` needs untargeted FAB, which
//! advlab does not have, and is refused with a message saying so.
//!
//! Like the reference, the evaluation checks what would make its numbers misleading and says so
//! in `warnings`: a model whose outputs change between two passes on one input (randomised: use
//! `"rand"`), clean images whose input gradient is exactly zero (gradient masking), and a Square
//! stage that fools images the gradient stages did not (gradient masking again).

use crate::attack::loss::LossKind;
use crate::attack::loss::{input_gradient, loss_value, Loss};
use crate::attack::{perturb, scatter_rows, ApgdParams, Attack, FabParams, Norm, SquareParams};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{predict, Model};
use std::time::Instant;

/// AutoAttack's settings: the budget, the norm, the version and the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoAttackParams {
    pub eps: f64,
    pub norm: Norm,
    pub version: String,
    pub seed: u64,
    pub batch_size: usize,
}

impl AutoAttackParams {
    /// The default version, `"standard"`, under L∞.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            norm: Norm::Linf,
            version: "standard".into(),
            seed: 0,
            batch_size: 256,
        }
    }

    /// The stages of the version, in order (their parameters as AutoAttack's).
    pub fn stages(&self) -> Result<Vec<Box<dyn Attack>>> {
        let apgd = |loss, eot| ApgdParams {
            loss,
            eot,
            norm: self.norm,
            seed: self.seed,
            batch_size: self.batch_size,
            ..ApgdParams::new(self.eps)
        };
        let ce = Box::new(apgd(LossKind::Ce, 1).check()?) as Box<dyn Attack>;
        let t = Box::new(
            ApgdParams {
                norm: self.norm,
                seed: self.seed,
                batch_size: self.batch_size,
                ..ApgdParams::targeted(self.eps)
            }
            .check()?,
        ) as Box<dyn Attack>;
        let square = || -> Result<Box<dyn Attack>> {
            Ok(Box::new(
                SquareParams {
                    seed: self.seed,
                    batch_size: self.batch_size,
                    norm: self.norm,
                    ..SquareParams::new(self.eps)
                }
                .check()?,
            ))
        };
        let fab = Box::new(
            FabParams {
                norm: self.norm,
                seed: self.seed,
                batch_size: self.batch_size,
                ..FabParams::new(self.eps)
            }
            .check()?,
        ) as Box<dyn Attack>;
        match self.version.as_str() {
            "standard" => Ok(vec![ce, t, fab, square()?]),
            "apgd_square" => Ok(vec![ce, t, square()?]),
            "apgd" => Ok(vec![ce, t]),
            "rand" => Ok(vec![
                Box::new(apgd(LossKind::Ce, 20).check()?),
                Box::new(apgd(LossKind::Dlr, 20).check()?),
            ]),
            "plus" => Err(Error::Invalid(
                "autoattack version \"plus\" needs untargeted FAB, which advlab does not have; \"standard\" runs APGD-CE, APGD-T, FAB-T and Square".into(),
            )),
            other => Err(Error::Invalid(format!(
                "unknown autoattack version \"{other}\": use \"standard\", \"apgd_square\", \"apgd\" or \"rand\""
            ))),
        }
    }
}

/// One stage's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Stage {
    pub attack: serde_json::Value,
    /// Robust accuracy on the whole data set after this stage.
    pub robust_accuracy: f64,
    /// Images this stage fooled.
    pub fooled: usize,
    pub seconds: f64,
}

/// The result of an AutoAttack evaluation.
#[derive(Clone, Debug)]
pub struct AutoAttackResult {
    pub clean_accuracy: f64,
    pub stages: Vec<Stage>,
    pub robust_accuracy: f64,
    /// The adversarial images (the clean ones where nothing fooled the model).
    pub adversarial: Dataset,
    /// What makes the numbers doubtful (see the module's documentation); empty when nothing does.
    pub warnings: Vec<String>,
}

/// How many images the checks before the stages look at.
const CHECK_IMAGES: usize = 100;

/// The checks AutoAttack runs before its stages, on the first images of `data`: a randomised
/// model (outputs differ between two passes) and zero input gradients. (The reference also
/// warns of probability outputs; advlab's networks have no softmax layer, so theirs are logits.)
fn checks(model: &Model, data: &Dataset, version: &str) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let idx: Vec<usize> = (0..data.len().min(CHECK_IMAGES)).collect();
    let sub = data.subset(&idx)?;
    let (x, y) = (sub.images(), sub.labels());
    let a = model.forward(x)?;
    let b = model.forward(x)?;
    let change = (&a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    if change > 0.0 && version != "rand" {
        warnings.push(format!(
            "the model is randomised (its outputs on one input differ between two passes by up to {change:.3e}): use version \"rand\", whose attacks average 20 gradients (EOT)"
        ));
    }
    let (_, grad) = input_gradient(model, x, |z| loss_value(&Loss::new(LossKind::Ce), z, y))?;
    let per = grad.flatten_from(1)?.abs()?.max(1)?.to_vec1::<f32>()?;
    let zero = per.iter().filter(|&&g| g == 0.0).count();
    if zero > 0 {
        warnings.push(format!(
            "{zero} of the first {} images have an input gradient of exactly zero: the gradient stages cannot move them (gradient masking or saturated outputs)",
            per.len()
        ));
    }
    Ok(warnings)
}

fn correct(model: &Model, data: &Dataset) -> Result<Vec<bool>> {
    let pred = predict(model, data)?.to_vec1::<u32>()?;
    let labels = data.labels().to_vec1::<u32>()?;
    Ok(pred.iter().zip(&labels).map(|(p, l)| p == l).collect())
}

/// Run the stages of `p` on `data`, each on the images still classified correctly.
pub fn autoattack(model: &Model, data: &Dataset, p: &AutoAttackParams) -> Result<AutoAttackResult> {
    let stages = p.stages()?;
    if data.is_empty() {
        return Err(Error::Invalid("autoattack: the data set is empty".into()));
    }
    let n = data.len();
    let mut warnings = checks(model, data, &p.version)?;
    let mut robust = correct(model, data)?;
    let clean_accuracy = robust.iter().filter(|&&r| r).count() as f64 / n as f64;
    let mut images = data.images().clone();
    let mut out = Vec::new();
    for stage in &stages {
        let left: Vec<usize> = (0..n).filter(|&i| robust[i]).collect();
        let t = Instant::now();
        let mut fooled = Vec::new();
        if !left.is_empty() {
            let sub = data.subset(&left)?;
            let adv = perturb(stage.as_ref(), model, &sub)?;
            fooled = correct(model, &adv)?.iter().map(|&c| !c).collect();
            let idx: Vec<u32> = left.iter().map(|&i| i as u32).collect();
            images = scatter_rows(&images, adv.images(), &idx, &fooled)?;
            for (j, &i) in left.iter().enumerate() {
                robust[i] &= !fooled[j];
            }
        }
        out.push(Stage {
            attack: stage.params(),
            robust_accuracy: robust.iter().filter(|&&r| r).count() as f64 / n as f64,
            fooled: fooled.iter().filter(|&&f| f).count(),
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    for (i, st) in out.iter().enumerate() {
        if i > 0 && st.attack["attack"] == "square" && st.fooled > 0 {
            warnings.push(format!(
                "Square, which uses no gradient, fooled {} images the gradient stages did not: a sign of gradient masking",
                st.fooled
            ));
        }
    }
    let adversarial = data.with_images(images, format!("autoattack({})", data.name()))?;
    Ok(AutoAttackResult {
        clean_accuracy,
        robust_accuracy: robust.iter().filter(|&&r| r).count() as f64 / n as f64,
        stages: out,
        adversarial,
        warnings,
    })
}
