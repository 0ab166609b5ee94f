//! Agglomerative clustering in O(n) memory, so 60k points never need the n×n distance matrix
//! (about 14 GB): Ward, average and complete linkage by the nearest-neighbour chain with
//! distances recomputed on demand (`chain.rs`), single linkage by Prim's minimum spanning
//! tree. All cut the merge tree at `k` clusters.

use super::Clustering;
use crate::error::{Error, ParamError, Result};
use ndarray::Array2;
use rayon::prelude::*;

/// Linkage criterion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linkage {
    Ward,
    Average,
    Complete,
    Single,
}

impl Linkage {
    /// Parse `ward`, `average`, `complete` or `single`.
    pub fn parse(s: &str) -> std::result::Result<Self, ParamError> {
        match s {
            "ward" => Ok(Linkage::Ward),
            "average" => Ok(Linkage::Average),
            "complete" => Ok(Linkage::Complete),
            "single" => Ok(Linkage::Single),
            other => Err(ParamError::UnknownLinkage(other.to_string())),
        }
    }
}

/// Unchecked parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct AgglomerativeParams {
    pub k: usize,
    pub linkage: Linkage,
}

impl AgglomerativeParams {
    /// k clusters with Ward's linkage (scikit-learn's default).
    pub fn new(k: usize) -> Self {
        Self {
            k,
            linkage: Linkage::Ward,
        }
    }

    /// Check the rule that holds for any points: k ≥ 1.
    pub fn check(&self) -> std::result::Result<&Self, ParamError> {
        if self.k == 0 {
            return Err(ParamError::KZero);
        }
        Ok(self)
    }

    /// [`AgglomerativeParams::check`], and k ≤ the number of points.
    pub fn check_for(&self, points: usize) -> std::result::Result<&Self, ParamError> {
        self.check()?;
        super::check_k(self.k, points)?;
        Ok(self)
    }
}

/// A merge of two clusters (by any of their member points) at a height.
#[derive(Clone, Copy, Debug)]
pub(super) struct Merge {
    pub a: usize,
    pub b: usize,
    pub height: f64,
}

fn sq(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Ward's merge cost between clusters of sizes `na`, `nb` with centroids `ca`, `cb`.
fn ward(na: f64, ca: &[f64], nb: f64, cb: &[f64]) -> f64 {
    na * nb / (na + nb) * sq(ca, cb)
}

/// Prim's minimum spanning tree: O(n) memory, O(n²) time; its edges are single linkage's merges.
fn single_merges(x: &Array2<f64>, progress: &dyn Fn(usize)) -> Result<Vec<Merge>> {
    let (n, d) = x.dim();
    let owned = x.as_standard_layout();
    let data = owned
        .as_slice()
        .ok_or_else(|| Error::Invalid("agglomerative: non-contiguous points".into()))?;
    let rows: Vec<&[f64]> = data.chunks(d.max(1)).collect();
    let mut in_tree = vec![false; n];
    let mut best = vec![(f64::INFINITY, 0usize); n];
    let mut merges = Vec::with_capacity(n.saturating_sub(1));
    let mut cur = 0;
    in_tree[0] = true;
    for _ in 1..n {
        crate::interrupt::check()?;
        let c = rows[cur];
        best.par_iter_mut().enumerate().with_min_len(2048).for_each(|(i, b)| {
            if !in_tree[i] {
                let dist = sq(rows[i], c);
                if dist < b.0 {
                    *b = (dist, cur);
                }
            }
        });
        let (next, &(dist, from)) = best
            .iter()
            .enumerate()
            .filter(|(i, _)| !in_tree[*i])
            .min_by(|u, v| u.1 .0.total_cmp(&v.1 .0).then(u.0.cmp(&v.0)))
            .ok_or_else(|| Error::Invalid("agglomerative: internal error in the spanning tree".into()))?;
        in_tree[next] = true;
        merges.push(Merge {
            a: from,
            b: next,
            height: dist.sqrt(),
        });
        progress(merges.len());
        cur = next;
    }
    Ok(merges)
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Apply the `n − k` lowest merges and number the clusters by their smallest point.
fn cut(n: usize, mut merges: Vec<Merge>, k: usize) -> Vec<Option<usize>> {
    merges.sort_by(|u, v| u.height.total_cmp(&v.height));
    let mut parent: Vec<usize> = (0..n).collect();
    for m in merges.iter().take(n - k) {
        let (ra, rb) = (find(&mut parent, m.a), find(&mut parent, m.b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut id = vec![usize::MAX; n];
    let mut next = 0;
    (0..n)
        .map(|i| {
            let r = find(&mut parent, i);
            if id[r] == usize::MAX {
                id[r] = next;
                next += 1;
            }
            Some(id[r])
        })
        .collect()
}

/// The full merge tree of the rows of a point set: cut it at any `k` without recomputing.
#[derive(Clone, Debug)]
pub struct MergeTree {
    n: usize,
    merges: Vec<Merge>,
    linkage: Linkage,
}

impl MergeTree {
    /// Build the tree of the rows of `x` (at least one point).
    pub fn build(x: &Array2<f64>, linkage: Linkage) -> Result<Self> {
        Self::build_with_progress(x, linkage, &|_| {})
    }

    /// Build the tree, calling `progress` with the number of merges done (n − 1 in all).
    pub fn build_with_progress(x: &Array2<f64>, linkage: Linkage, progress: &dyn Fn(usize)) -> Result<Self> {
        if x.nrows() == 0 {
            return Err(Error::Invalid("agglomerative: there are no points".into()));
        }
        let merges = match linkage {
            Linkage::Ward | Linkage::Average | Linkage::Complete => super::chain::chain_merges(x, linkage, progress)?,
            Linkage::Single => single_merges(x, progress)?,
        };
        Ok(Self {
            n: x.nrows(),
            merges,
            linkage,
        })
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True for a tree of no points (never built).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The clustering into `k` clusters.
    pub fn cut(&self, k: usize) -> Result<Clustering> {
        let p = AgglomerativeParams {
            k,
            linkage: self.linkage,
        };
        p.check_for(self.n)?;
        let name = format!("agglomerative(k={k}, linkage={:?})", self.linkage).to_lowercase();
        Ok(Clustering::new(cut(self.n, self.merges.clone(), k), None, name))
    }
}

thread_local! {
    /// The last merge tree built, by a fingerprint of the points and the linkage: a sweep over
    /// k on the same points builds the tree once.
    static TREE: std::cell::RefCell<Option<(u64, Linkage, MergeTree)>> = const { std::cell::RefCell::new(None) };
}

/// A hash of the points' shape and every value's bits.
fn fingerprint(x: &Array2<f64>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    x.dim().hash(&mut h);
    x.iter().for_each(|v| v.to_bits().hash(&mut h));
    h.finish()
}

impl super::Clusterer for AgglomerativeParams {
    fn name(&self) -> &'static str {
        "agglomerative"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "algorithm": self.name(), "k": self.k,
            "linkage": format!("{:?}", self.linkage).to_lowercase() })
    }

    /// The merge tree of the points (built once for the same points and linkage, with a
    /// progress bar), cut at k.
    fn fit(&self, x: &Array2<f64>) -> Result<Clustering> {
        self.check_for(x.nrows())?;
        let key = fingerprint(x);
        let cached = TREE.with(|t| {
            t.borrow()
                .as_ref()
                .filter(|(id, l, _)| *id == key && *l == self.linkage)
                .map(|(_, _, tree)| tree.cut(self.k))
        });
        if let Some(c) = cached {
            return c;
        }
        let pb = crate::progress::bar(
            x.nrows().saturating_sub(1) as u64,
            format!("agglomerative ({:?}) merges", self.linkage).to_lowercase(),
        );
        let tree = MergeTree::build_with_progress(x, self.linkage, &|done| pb.set_position(done as u64));
        pb.finish_and_clear();
        let tree = tree?;
        let c = tree.cut(self.k);
        TREE.with(|t| *t.borrow_mut() = Some((key, self.linkage, tree)));
        c
    }
}

impl std::fmt::Display for AgglomerativeParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "agglomerative(k={}, linkage={})",
            self.k,
            format!("{:?}", self.linkage).to_lowercase()
        )
    }
}

/// Agglomerative clustering of the rows of `x` into `k` clusters.
pub fn agglomerative(x: &Array2<f64>, p: &AgglomerativeParams) -> Result<Clustering> {
    p.check_for(x.nrows())?;
    MergeTree::build(x, p.linkage)?.cut(p.k)
}

/// The textbook O(n³) algorithm with all pairwise cluster distances, for tests.
pub fn agglomerative_brute_force(x: &Array2<f64>, k: usize, linkage: Linkage) -> Vec<Option<usize>> {
    let n = x.nrows();
    let mut clusters: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let row = |i: usize| x.row(i).to_vec();
    let centroid = |c: &[usize]| {
        let mut m = vec![0f64; x.ncols()];
        for &i in c {
            m.iter_mut().zip(row(i)).for_each(|(a, v)| *a += v / c.len() as f64);
        }
        m
    };
    while clusters.len() > k {
        let mut best = (f64::INFINITY, 0, 0);
        for i in 0..clusters.len() {
            for j in i + 1..clusters.len() {
                let d = match linkage {
                    Linkage::Ward => ward(
                        clusters[i].len() as f64,
                        &centroid(&clusters[i]),
                        clusters[j].len() as f64,
                        &centroid(&clusters[j]),
                    ),
                    _ => {
                        let pairs = clusters[i]
                            .iter()
                            .flat_map(|&a| clusters[j].iter().map(move |&b| (a, b)))
                            .map(|(a, b)| sq(&row(a), &row(b)).sqrt());
                        match linkage {
                            Linkage::Single => pairs.fold(f64::INFINITY, f64::min),
                            Linkage::Complete => pairs.fold(0.0, f64::max),
                            _ => pairs.sum::<f64>() / (clusters[i].len() * clusters[j].len()) as f64,
                        }
                    }
                };
                if d < best.0 {
                    best = (d, i, j);
                }
            }
        }
        let merged = clusters.swap_remove(best.2);
        clusters[best.1].extend(merged);
    }
    let mut labels = vec![None; n];
    for (c, members) in clusters.iter().enumerate() {
        for &i in members {
            labels[i] = Some(c);
        }
    }
    labels
}
