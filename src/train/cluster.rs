//! Seed 000's cluster-based adversarial training: each epoch trains on one cluster of the
//! training set's adversarial samples.

use super::recipe::{batch_seed, Measured, Recipe};
use crate::attack::Attack;
use crate::data::Dataset;
use crate::error::{ParamError, Result};
use crate::nn::Model;
use std::fmt;
use std::rc::Rc;

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
    pub fn check(&self) -> std::result::Result<ClusterTraining, ParamError> {
        if self.k == 0 {
            return Err(ParamError::KZero);
        }
        if self.dims == 0 {
            return Err(ParamError::DimsZero);
        }
        Ok(ClusterTraining {
            attack: self.attack.clone(),
            k: self.k,
            dims: self.dims,
            augment: self.augment,
            seed: self.seed,
        })
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

impl Recipe for ClusterTraining {
    fn name(&self) -> &'static str {
        "cluster_training"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "recipe": self.name(), "attack": self.attack.params(), "reduction": "pca", "dims": self.dims,
            "algorithm": "kmeans", "k": self.k, "augment": self.augment, "seed": self.seed,
        })
    }

    fn epoch_start(
        &self,
        model: &Model,
        data: &Dataset,
        epoch: usize,
        measured: &mut Measured,
    ) -> Result<Option<Dataset>> {
        let (samples, chosen, k) = self.epoch_samples(model, data, epoch)?;
        measured.insert("cluster".into(), chosen as f64);
        measured.insert("clusters".into(), k as f64);
        measured.insert("samples".into(), samples.len() as f64);
        Ok(Some(samples))
    }
}

impl fmt::Display for ClusterTraining {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}(attack={}, reduction=pca(dims={}), algorithm=kmeans(k={}), augment={}, seed={})",
            self.name(),
            self.attack,
            self.dims,
            self.k,
            self.augment,
            self.seed
        )
    }
}
