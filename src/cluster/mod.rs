//! Clustering of points: the [`Clusterer`] trait, k-means (ours: vectorised assignment,
//! k-means++), DBSCAN (linfa's, with a k-d tree), agglomerative clustering in O(n) memory, and
//! the `Clustering` result that scripts query. Adding a clusterer is a file here implementing
//! [`Clusterer`], and its binding in `src/script/cluster.rs`.

mod agglomerative;
mod chain;
mod explore;
mod kmeans;
mod metrics;

pub use agglomerative::{agglomerative, agglomerative_brute_force, AgglomerativeParams, Linkage, MergeTree};

pub use explore::{
    inertia_curve, label_histogram, mean_images, purity, silhouette, summary, ClusterRow, InertiaParams, Silhouette,
};
pub use kmeans::{kmeans, KMeansParams};
pub use metrics::adjusted_rand;

use crate::error::{Error, ParamError, Result};
use linfa::traits::Transformer;
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::fmt;

/// A partition of points into clusters; `None` is noise (DBSCAN), never picked.
#[derive(Clone, Debug, PartialEq)]
pub struct Clustering {
    labels: Vec<Option<usize>>,
    k: usize,
    inertia: Option<f64>,
    algorithm: String,
    /// Each cluster's centroid (k × d), once computed from the points.
    centroids: Option<Array2<f64>>,
}

impl Clustering {
    /// A clustering from labels (`None` = noise); clusters are numbered `0..k`.
    pub fn new(labels: Vec<Option<usize>>, inertia: Option<f64>, algorithm: impl Into<String>) -> Self {
        let k = labels.iter().flatten().map(|&l| l + 1).max().unwrap_or(0);
        Self {
            labels,
            k,
            inertia,
            algorithm: algorithm.into(),
            centroids: None,
        }
    }

    /// The same clustering with each cluster's centroid, the mean of its rows of `points` (the
    /// points it was computed from; noise belongs to none). For k-means these are its centres.
    pub fn with_centroids(mut self, points: &Array2<f64>) -> Result<Self> {
        if points.nrows() != self.labels.len() {
            return Err(Error::Invalid(format!(
                "centroids: {} points for a clustering of {}",
                points.nrows(),
                self.labels.len()
            )));
        }
        let mut c = Array2::<f64>::zeros((self.k, points.ncols()));
        for (row, label) in points.rows().into_iter().zip(&self.labels) {
            if let Some(l) = label {
                let mut centre = c.row_mut(*l);
                centre += &row;
            }
        }
        for (mut centre, size) in c.rows_mut().into_iter().zip(self.sizes()) {
            // an empty cluster has no centroid (NaN; null in JSON)
            centre /= size as f64;
        }
        self.centroids = Some(c);
        Ok(self)
    }

    /// The centroids (k × d) when computed ([`Clustering::with_centroids`]).
    pub fn centroids(&self) -> Option<&Array2<f64>> {
        self.centroids.as_ref()
    }

    /// Everything a clustering holds, as written by `Clustering.save`: the algorithm with its
    /// parameters, the label of every point (−1 for noise), sizes, noise, inertia and centroids.
    pub fn to_json(&self) -> serde_json::Value {
        // rows of f64 (an empty cluster's NaN becomes null)
        let centroids = self
            .centroids
            .as_ref()
            .map(|c| c.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>());
        serde_json::json!({
            "algorithm": self.algorithm,
            "n_clusters": self.k,
            "points": self.labels.len(),
            "sizes": self.sizes(),
            "noise": self.noise(),
            "inertia": self.inertia,
            "centroids": centroids,
            "labels": self.signed_labels(),
        })
    }

    /// Number of clusters (noise not counted).
    pub fn n_clusters(&self) -> usize {
        self.k
    }

    /// Label of every point, `None` for noise.
    pub fn labels(&self) -> &[Option<usize>] {
        &self.labels
    }

    /// Label of every point as scripts and files see it: −1 for noise.
    pub fn signed_labels(&self) -> Vec<i64> {
        self.labels.iter().map(|l| l.map_or(-1, |v| v as i64)).collect()
    }

    /// Size of every cluster.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![0; self.k];
        self.labels.iter().flatten().for_each(|&l| s[l] += 1);
        s
    }

    /// Number of noise points.
    pub fn noise(&self) -> usize {
        self.labels.iter().filter(|l| l.is_none()).count()
    }

    fn check(&self, i: usize) -> Result<()> {
        if i >= self.k {
            return Err(Error::Invalid(format!(
                "cluster {i} does not exist: there are {} clusters (0..{})",
                self.k,
                self.k.saturating_sub(1)
            )));
        }
        Ok(())
    }

    /// Indices of the points of cluster `i`.
    pub fn members(&self, i: usize) -> Result<Vec<usize>> {
        self.check(i)?;
        Ok((0..self.labels.len()).filter(|&p| self.labels[p] == Some(i)).collect())
    }

    /// Size of cluster `i`.
    pub fn size(&self, i: usize) -> Result<usize> {
        self.check(i)?;
        Ok(self.sizes()[i])
    }

    /// A cluster chosen uniformly at random among the non-empty ones (never noise).
    pub fn pick_random(&self, seed: u64) -> Result<usize> {
        let candidates: Vec<usize> = self
            .sizes()
            .iter()
            .enumerate()
            .filter(|(_, &s)| s > 0)
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            return Err(Error::Invalid(
                "there is no cluster to pick: every point is noise".into(),
            ));
        }
        Ok(candidates[StdRng::seed_from_u64(seed).random_range(0..candidates.len())])
    }

    /// The largest cluster (the first on ties).
    pub fn largest(&self) -> Result<usize> {
        let sizes = self.sizes();
        let best = sizes
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i);
        best.ok_or_else(|| Error::Invalid("there is no cluster: every point is noise".into()))
    }

    /// Sum of squared distances to the centroids, for k-means.
    pub fn inertia(&self) -> Option<f64> {
        self.inertia
    }

    /// The algorithm and its parameters.
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }
}

impl fmt::Display for Clustering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Clustering by {}: {} clusters of sizes {:?}",
            self.algorithm,
            self.k,
            self.sizes()
        )?;
        if self.noise() > 0 {
            write!(f, ", {} noise points", self.noise())?;
        }
        if let Some(i) = self.inertia {
            write!(f, ", inertia {i:.4}")?;
        }
        Ok(())
    }
}

/// k clusters need at least k points.
fn check_k(k: usize, points: usize) -> std::result::Result<(), ParamError> {
    if k > points {
        return Err(ParamError::KTooLarge { k, points });
    }
    Ok(())
}

/// A clustering algorithm with its parameters (checked when it meets the points).
pub trait Clusterer: fmt::Debug + fmt::Display {
    /// The script name.
    fn name(&self) -> &'static str;

    /// Every parameter, as recorded beside outputs.
    fn params(&self) -> serde_json::Value;

    /// Cluster the rows of `points`.
    fn fit(&self, points: &Array2<f64>) -> Result<Clustering>;
}

impl Clusterer for KMeansParams {
    fn name(&self) -> &'static str {
        "kmeans"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "algorithm": self.name(), "k": self.k, "n_init": self.n_init,
            "max_iter": self.max_iter, "tol": self.tol, "seed": self.seed })
    }

    fn fit(&self, points: &Array2<f64>) -> Result<Clustering> {
        kmeans(points, self)
    }
}

impl fmt::Display for KMeansParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kmeans(k={}, n_init={}, max_iter={}, tol={}, seed={})",
            self.k, self.n_init, self.max_iter, self.tol, self.seed
        )
    }
}

impl Clusterer for DbscanParams {
    fn name(&self) -> &'static str {
        "dbscan"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "algorithm": self.name(), "eps": self.eps, "min_points": self.min_points })
    }

    fn fit(&self, points: &Array2<f64>) -> Result<Clustering> {
        dbscan(points, self)
    }
}

impl fmt::Display for DbscanParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dbscan(eps={}, min_points={})", self.eps, self.min_points)
    }
}

/// Unchecked DBSCAN parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct DbscanParams {
    pub eps: f64,
    pub min_points: usize,
}

impl DbscanParams {
    /// Neighbourhood radius `eps`, and scikit-learn's 5 points per core.
    pub fn new(eps: f64) -> Self {
        Self { eps, min_points: 5 }
    }

    /// Check: `eps > 0` and finite, `min_points >= 2`.
    pub fn check(&self) -> std::result::Result<&Self, ParamError> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(ParamError::DbscanEps(self.eps));
        }
        if self.min_points < 2 {
            return Err(ParamError::MinPoints(self.min_points));
        }
        Ok(self)
    }
}

/// DBSCAN with a k-d tree (linfa-clustering): noise points get no cluster.
pub fn dbscan(points: &Array2<f64>, p: &DbscanParams) -> Result<Clustering> {
    let p = p.check()?;
    if points.nrows() == 0 {
        return Err(Error::Invalid("dbscan: there are no points".into()));
    }
    let labels = linfa_clustering::Dbscan::params(p.min_points)
        .tolerance(p.eps)
        .transform(points)
        .map_err(|e| Error::Invalid(format!("dbscan: {e}")))?;
    Ok(Clustering::new(
        labels.to_vec(),
        None,
        format!("dbscan(eps={}, min_points={})", p.eps, p.min_points),
    ))
}
