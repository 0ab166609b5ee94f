//! Ward, average and complete linkage in O(n) memory: the nearest-neighbour chain (the three
//! linkages are reducible, so the chain finds exactly the greedy algorithm's merges) with
//! cluster distances recomputed instead of read from an n×n matrix: Ward's from the centroids
//! and sizes, average and complete linkage's from the member points.
//!
//! Centroid bounds keep the recomputation rare. For both linkages
//! `‖c_a − c_b‖ ≤ D(A, B) ≤ ‖c_a − c_b‖ + r_a + r_b`, with `r` a bound on a cluster's radius
//! (the lower bound is Jensen's inequality, the upper one the triangle inequality). A nearest
//! neighbour search takes the smallest upper bound over all clusters, then computes the exact
//! distance only to clusters whose lower bound is below it, in increasing order, stopping at
//! the first lower bound above the best exact distance. Complete linkage on 2-D points keeps
//! only each cluster's convex hull: the farthest pair of two sets lies on their hulls.

use super::agglomerative::{Linkage, Merge};
use crate::error::{Error, Result};
use ndarray::Array2;
use rayon::prelude::*;

/// Relative slack on the bounds, so rounding never prunes the true nearest neighbour.
const SLACK: f64 = 1e-9;
/// Member points per unit of work in an exact distance (fixed, so sums are reproducible).
const CHUNK: usize = 64;

/// Euclidean distance.
fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()
}

/// The clusters of the chain: each one is named by one of its points, which keeps it on merges.
struct Clusters<'a> {
    x: &'a [f64],
    d: usize,
    linkage: Linkage,
    /// Complete linkage on 2-D points: members hold the convex hull only.
    hull: bool,
    centroid: Vec<f64>,
    size: Vec<usize>,
    /// An upper bound on the distance of any member from the centroid.
    radius: Vec<f64>,
    /// The size at which `radius` was last computed exactly.
    exact_at: Vec<usize>,
    members: Vec<Vec<u32>>,
}

impl<'a> Clusters<'a> {
    fn new(x: &'a [f64], n: usize, d: usize, linkage: Linkage) -> Self {
        Self {
            x,
            d,
            linkage,
            hull: linkage == Linkage::Complete && d == 2,
            centroid: x.to_vec(),
            size: vec![1; n],
            radius: vec![0.0; n],
            exact_at: vec![1; n],
            // Ward's distance needs only centroids and sizes
            members: match linkage {
                Linkage::Ward => Vec::new(),
                _ => (0..n as u32).map(|i| vec![i]).collect(),
            },
        }
    }

    fn point(&self, i: u32) -> &[f64] {
        &self.x[i as usize * self.d..(i as usize + 1) * self.d]
    }

    fn centroid(&self, a: usize) -> &[f64] {
        &self.centroid[a * self.d..(a + 1) * self.d]
    }

    /// Ward's merge cost of clusters `a` and `b`.
    fn ward(&self, a: usize, b: usize) -> f64 {
        let (na, nb) = (self.size[a] as f64, self.size[b] as f64);
        let d = dist(self.centroid(a), self.centroid(b));
        na * nb / (na + nb) * d * d
    }

    /// Lower and upper bounds of the linkage distance between clusters `a` and `c`.
    fn bounds(&self, a: usize, c: usize) -> (f64, f64) {
        if self.linkage == Linkage::Ward {
            let w = self.ward(a, c);
            return (w, w);
        }
        let lower = dist(self.centroid(a), self.centroid(c));
        (lower, lower + self.radius[a] + self.radius[c])
    }

    /// The exact linkage distance between clusters `a` and `b`.
    fn linkage_distance(&self, a: usize, b: usize) -> f64 {
        if self.linkage == Linkage::Ward {
            return self.ward(a, b);
        }
        let (ma, mb) = (&self.members[a], &self.members[b]);
        let (outer, inner) = if ma.len() >= mb.len() { (ma, mb) } else { (mb, ma) };
        let part = |chunk: &[u32]| -> f64 {
            let pairs = chunk
                .iter()
                .flat_map(|&i| inner.iter().map(move |&j| (i, j)))
                .map(|(i, j)| dist(self.point(i), self.point(j)));
            match self.linkage {
                Linkage::Complete => pairs.fold(0.0, f64::max),
                _ => pairs.sum(),
            }
        };
        let parts: Vec<f64> = if outer.len() * inner.len() >= 1 << 14 {
            outer.par_chunks(CHUNK).map(part).collect()
        } else {
            outer.chunks(CHUNK).map(part).collect()
        };
        match self.linkage {
            Linkage::Complete => parts.into_iter().fold(0.0, f64::max),
            _ => parts.into_iter().sum::<f64>() / (ma.len() as f64 * mb.len() as f64),
        }
    }

    /// The nearest active cluster to `a` and its distance; ties go to `prev`, then the lowest id.
    /// `lower` is scratch space for the lower bounds, one per active cluster.
    fn nearest(&self, a: usize, active: &[usize], prev: Option<usize>, lower: &mut Vec<f64>) -> (usize, f64) {
        lower.resize(active.len(), 0.0);
        let upper = lower
            .par_iter_mut()
            .zip(active.par_iter())
            .with_min_len(2048)
            .map(|(l, &c)| {
                let (lo, up) = self.bounds(a, c);
                *l = lo;
                if c == a {
                    f64::INFINITY
                } else {
                    up
                }
            })
            .reduce(|| f64::INFINITY, f64::min)
            * (1.0 + SLACK);
        let mut candidates: Vec<(f64, usize)> = lower
            .iter()
            .zip(active)
            .filter(|&(&l, &c)| c != a && l <= upper)
            .map(|(&l, &c)| (l, c))
            .collect();
        candidates.sort_by(|u, v| u.0.total_cmp(&v.0).then(u.1.cmp(&v.1)));
        let key = |c: usize, dc: f64| (dc, Some(c) != prev, c);
        let mut best = (usize::MAX, f64::INFINITY);
        for (lower, c) in candidates {
            if lower * (1.0 - SLACK) > best.1 {
                break;
            }
            let dc = self.linkage_distance(a, c);
            if key(c, dc).partial_cmp(&key(best.0, best.1)) == Some(std::cmp::Ordering::Less) {
                best = (c, dc);
            }
        }
        best
    }

    /// Merge `b` into `a`.
    fn merge(&mut self, a: usize, b: usize) {
        let d = self.d;
        let (na, nb) = (self.size[a] as f64, self.size[b] as f64);
        let merged: Vec<f64> = (0..d)
            .map(|j| (na * self.centroid[a * d + j] + nb * self.centroid[b * d + j]) / (na + nb))
            .collect();
        if self.linkage == Linkage::Ward {
            self.centroid[a * d..(a + 1) * d].copy_from_slice(&merged);
            self.size[a] += self.size[b];
            return;
        }
        let bound =
            (dist(&merged, self.centroid(a)) + self.radius[a]).max(dist(&merged, self.centroid(b)) + self.radius[b]);
        let mut ma = std::mem::take(&mut self.members[a]);
        let mut mb = std::mem::take(&mut self.members[b]);
        if ma.len() < mb.len() {
            std::mem::swap(&mut ma, &mut mb);
        }
        ma.extend(mb);
        if self.hull {
            ma = hull(self.x, ma);
        }
        self.centroid[a * d..(a + 1) * d].copy_from_slice(&merged);
        self.size[a] += self.size[b];
        // the hull's radius is exact for free; the members' one is recomputed when the size doubles
        self.radius[a] = if self.hull || self.size[a] >= 2 * self.exact_at[a] {
            self.exact_at[a] = self.size[a];
            ma.par_iter()
                .with_min_len(4096)
                .map(|&i| dist(&merged, self.point(i)))
                .reduce(|| 0.0, f64::max)
        } else {
            bound
        };
        self.members[a] = ma;
    }
}

/// The vertices of the convex hull of 2-D points (Andrew's monotone chain).
fn hull(x: &[f64], mut pts: Vec<u32>) -> Vec<u32> {
    let p = |i: u32| (x[2 * i as usize], x[2 * i as usize + 1]);
    pts.sort_by(|&u, &v| {
        let (a, b) = (p(u), p(v));
        a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)).then(u.cmp(&v))
    });
    pts.dedup_by(|u, v| p(*u) == p(*v));
    if pts.len() <= 2 {
        return pts;
    }
    let cross = |o: u32, a: u32, b: u32| {
        let (o, a, b) = (p(o), p(a), p(b));
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut out: Vec<u32> = Vec::with_capacity(2 * pts.len());
    for pass in 0..2 {
        let start = out.len();
        let iter: Box<dyn Iterator<Item = &u32>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &q in iter {
            while out.len() >= start + 2 && cross(out[out.len() - 2], out[out.len() - 1], q) <= 0.0 {
                out.pop();
            }
            out.push(q);
        }
        out.pop(); // the last point of each half starts the other
    }
    out
}

/// Nearest-neighbour chain for Ward, average or complete linkage: O(n) memory. Ward's heights
/// are `sqrt(2 · merge cost)`, SciPy's convention.
pub(super) fn chain_merges(x: &Array2<f64>, linkage: Linkage, progress: &dyn Fn(usize)) -> Result<Vec<Merge>> {
    let (n, d) = x.dim();
    let owned = x.as_standard_layout();
    let data = owned
        .as_slice()
        .ok_or_else(|| Error::Invalid("agglomerative: non-contiguous points".into()))?;
    let mut clusters = Clusters::new(data, n, d, linkage);
    let mut active: Vec<usize> = (0..n).collect();
    let mut pos: Vec<usize> = (0..n).collect(); // index of each cluster in `active`
    let mut merges = Vec::with_capacity(n.saturating_sub(1));
    let mut chain: Vec<usize> = Vec::new();
    let mut lower = Vec::with_capacity(n);
    while active.len() > 1 {
        if chain.is_empty() {
            crate::interrupt::check()?;
            chain.push(active[0]);
        }
        let a = chain[chain.len() - 1];
        let prev = chain.len().checked_sub(2).map(|i| chain[i]);
        let (b, mut height) = clusters.nearest(a, &active, prev, &mut lower);
        if Some(b) != prev {
            chain.push(b);
            continue;
        }
        chain.truncate(chain.len() - 2);
        clusters.merge(a, b);
        let i = pos[b];
        active.swap_remove(i);
        if i < active.len() {
            pos[active[i]] = i;
        }
        if linkage == Linkage::Ward {
            height = (2.0 * height).sqrt();
        }
        merges.push(Merge { a, b, height });
        progress(merges.len());
    }
    Ok(merges)
}

#[cfg(test)]
mod tests {
    use super::hull;

    #[test]
    fn hull_keeps_the_extreme_points_only() {
        // a square with its centre, an edge midpoint and a duplicated corner
        let x = [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.0, 1.0, 1.0];
        let mut h = hull(&x, (0..7).collect());
        h.sort();
        assert_eq!(h, vec![0, 1, 2, 3]);
        // collinear points keep their two ends
        let line = [0.0, 0.0, 2.0, 2.0, 1.0, 1.0, 3.0, 3.0];
        let mut h = hull(&line, (0..4).collect());
        h.sort();
        assert_eq!(h, vec![0, 3]);
    }
}
