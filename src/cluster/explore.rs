//! Looking inside a clustering: label histograms, a per-cluster summary, purity, the
//! silhouette (exact, on a seeded sample above `max_points`), the k-means inertia curve and
//! per-cluster mean images.

use super::{kmeans, Clustering, KMeansParams};
use crate::error::{Error, Result};
use ndarray::Array2;
use rayon::prelude::*;

fn check_len(c: &Clustering, n: usize, what: &str) -> Result<()> {
    if c.labels().len() != n {
        return Err(Error::Invalid(format!(
            "{n} {what} for a clustering of {} points",
            c.labels().len()
        )));
    }
    Ok(())
}

/// Counts of each label in each cluster: `hist[cluster][label]`, `classes` columns (at least
/// one more than the largest label). Noise points are not counted.
pub fn label_histogram(c: &Clustering, labels: &[usize], classes: usize) -> Result<Vec<Vec<usize>>> {
    check_len(c, labels.len(), "labels")?;
    let classes = classes.max(labels.iter().map(|&l| l + 1).max().unwrap_or(0));
    let mut hist = vec![vec![0usize; classes]; c.n_clusters()];
    for (cl, &l) in c.labels().iter().zip(labels) {
        if let Some(cl) = cl {
            hist[*cl][l] += 1;
        }
    }
    Ok(hist)
}

/// One row of a clustering's summary.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterRow {
    /// The cluster, `None` for the noise points (DBSCAN).
    pub cluster: Option<usize>,
    pub size: usize,
    /// size / number of points.
    pub share: f64,
    /// The most frequent label (the smallest on ties), `None` for an empty cluster.
    pub majority: Option<usize>,
    /// Fraction of the cluster that has the majority label (0 for an empty cluster).
    pub purity: f64,
    /// How many points of each label.
    pub histogram: Vec<usize>,
}

impl ClusterRow {
    /// The non-zero entries of the histogram, largest first: `7:412 1:30 9:12`.
    pub fn histogram_text(&self) -> String {
        let mut entries: Vec<(usize, usize)> = self
            .histogram
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, n)| n > 0)
            .collect();
        entries.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        entries
            .iter()
            .map(|(l, n)| format!("{l}:{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn row(cluster: Option<usize>, histogram: Vec<usize>, total: usize) -> ClusterRow {
    let size: usize = histogram.iter().sum();
    let best = histogram
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
        .filter(|(_, &n)| n > 0);
    ClusterRow {
        cluster,
        size,
        share: if total == 0 { 0.0 } else { size as f64 / total as f64 },
        majority: best.map(|(l, _)| l),
        purity: best.map_or(0.0, |(_, &n)| n as f64 / size as f64),
        histogram,
    }
}

/// One row per cluster, then one for the noise points when there are any; the sizes add up
/// to the number of points.
pub fn summary(c: &Clustering, labels: &[usize], classes: usize) -> Result<Vec<ClusterRow>> {
    let hist = label_histogram(c, labels, classes)?;
    let classes = hist.first().map_or(classes, |h| h.len());
    let n = labels.len();
    let mut rows: Vec<ClusterRow> = hist.into_iter().enumerate().map(|(i, h)| row(Some(i), h, n)).collect();
    if c.noise() > 0 {
        let mut h = vec![0usize; classes.max(labels.iter().map(|&l| l + 1).max().unwrap_or(0))];
        for (cl, &l) in c.labels().iter().zip(labels) {
            if cl.is_none() {
                h[l] += 1;
            }
        }
        rows.push(row(None, h, n));
    }
    Ok(rows)
}

/// Purity: the fraction of points whose label is the majority label of their cluster. Noise
/// points count as one more cluster. 1 means every cluster holds a single label.
pub fn purity(c: &Clustering, labels: &[usize]) -> Result<f64> {
    if labels.is_empty() {
        return Err(Error::Invalid("purity: there are no points".into()));
    }
    let rows = summary(c, labels, 0)?;
    let majority: usize = rows
        .iter()
        .map(|r| r.histogram.iter().copied().max().unwrap_or(0))
        .sum();
    Ok(majority as f64 / labels.len() as f64)
}

/// The mean silhouette and how it was computed.
#[derive(Clone, Debug, PartialEq)]
pub struct Silhouette {
    /// Mean of (b − a) / max(a, b) over the points used, in [−1, 1].
    pub score: f64,
    /// Points the score was computed on.
    pub points: usize,
    /// Points in the clustering that are not noise.
    pub total: usize,
    /// Whether `points` is a random sample of `total`.
    pub sampled: bool,
    /// The seed of the sample.
    pub seed: u64,
}

/// The mean silhouette coefficient of the non-noise points of `x` (rows) under `c`, with
/// Euclidean distances. Above `max_points` points it is computed exactly on a uniform sample
/// of `max_points` of them drawn from `seed` (as scikit-learn's `sample_size`). A point alone in
/// its cluster scores 0. Needs at least two clusters.
pub fn silhouette(c: &Clustering, x: &Array2<f64>, max_points: usize, seed: u64) -> Result<Silhouette> {
    check_len(c, x.nrows(), "points")?;
    if max_points < 2 {
        return Err(Error::Invalid(format!(
            "silhouette: max_points must be at least 2 (got {max_points})"
        )));
    }
    let clustered: Vec<usize> = (0..x.nrows()).filter(|&i| c.labels()[i].is_some()).collect();
    let total = clustered.len();
    let sampled = total > max_points;
    let idx: Vec<usize> = if sampled {
        // increasing positions in `clustered`, so increasing indices
        crate::util::sample_indices(total, max_points, Some(seed))
            .into_iter()
            .map(|k| clustered[k])
            .collect()
    } else {
        clustered
    };
    let lab: Vec<usize> = idx.iter().map(|&i| c.labels()[i].unwrap_or(0)).collect();
    let k = c.n_clusters();
    let mut counts = vec![0usize; k];
    lab.iter().for_each(|&l| counts[l] += 1);
    let present = counts.iter().filter(|&&n| n > 0).count();
    if present < 2 {
        return Err(Error::Invalid(format!(
            "silhouette needs at least 2 clusters{}, found {present}",
            if sampled { " among the sampled points" } else { "" }
        )));
    }
    let scores: Vec<f64> = idx
        .par_iter()
        .enumerate()
        .map(|(p, &i)| -> Result<f64> {
            crate::interrupt::check()?;
            let xi = x.row(i);
            let mut sums = vec![0.0f64; k];
            for (q, &j) in idx.iter().enumerate() {
                if q != p {
                    let d = xi
                        .iter()
                        .zip(x.row(j).iter())
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f64>();
                    sums[lab[q]] += d.sqrt();
                }
            }
            let own = lab[p];
            if counts[own] < 2 {
                return Ok(0.0);
            }
            let a = sums[own] / (counts[own] - 1) as f64;
            let b = (0..k)
                .filter(|&l| l != own && counts[l] > 0)
                .map(|l| sums[l] / counts[l] as f64)
                .fold(f64::INFINITY, f64::min);
            let m = a.max(b);
            Ok(if m > 0.0 { (b - a) / m } else { 0.0 })
        })
        .collect::<Result<_>>()?;
    Ok(Silhouette {
        score: scores.iter().sum::<f64>() / scores.len() as f64,
        points: idx.len(),
        total,
        sampled,
        seed,
    })
}

/// The k of an elbow curve and the k-means runs behind each point.
#[derive(Clone, Debug, PartialEq)]
pub struct InertiaParams {
    pub k_min: usize,
    pub k_max: usize,
    /// k-means restarts per k.
    pub n_init: usize,
    pub seed: u64,
}

impl Default for InertiaParams {
    /// k from 1 to 10, scikit-learn's 10 restarts each.
    fn default() -> Self {
        Self {
            k_min: 1,
            k_max: 10,
            n_init: KMeansParams::new(1).n_init,
            seed: 0,
        }
    }
}

/// k-means inertia for every k in `k_min..=k_max` (the elbow curve), each run seeded by `seed`.
pub fn inertia_curve(x: &Array2<f64>, p: &InertiaParams) -> Result<Vec<(usize, f64)>> {
    let (k_min, k_max) = (p.k_min, p.k_max);
    if k_min == 0 || k_min > k_max {
        return Err(Error::Invalid(format!(
            "need 1 <= k_min <= k_max (got k_min {k_min}, k_max {k_max})"
        )));
    }
    if k_max > x.nrows() {
        return Err(Error::Invalid(format!(
            "k_max = {k_max} is larger than the number of points ({})",
            x.nrows()
        )));
    }
    let (n_init, seed) = (p.n_init, p.seed);
    (k_min..=k_max)
        .map(|k| {
            let mut p = KMeansParams::new(k);
            p.n_init = n_init;
            p.seed = seed;
            let c = kmeans(x, &p)?;
            Ok((k, c.inertia().unwrap_or(f64::NAN)))
        })
        .collect()
}

/// The mean image of every cluster: `images` holds `labels.len()` images of `pixels` values
/// each, row-major. An empty cluster gets an all-zero image.
pub fn mean_images(c: &Clustering, images: &[f32], pixels: usize) -> Result<Vec<Vec<f32>>> {
    check_len(c, images.len().checked_div(pixels).unwrap_or(0), "images")?;
    let mut sums = vec![vec![0f64; pixels]; c.n_clusters()];
    for (i, cl) in c.labels().iter().enumerate() {
        if let Some(cl) = cl {
            for (s, &v) in sums[*cl].iter_mut().zip(&images[i * pixels..(i + 1) * pixels]) {
                *s += v as f64;
            }
        }
    }
    let sizes = c.sizes();
    Ok(sums
        .into_iter()
        .zip(sizes)
        .map(|(s, n)| s.into_iter().map(|v| (v / n.max(1) as f64) as f32).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clustering(l: &[i64]) -> Clustering {
        Clustering::new(l.iter().map(|&v| usize::try_from(v).ok()).collect(), None, "test")
    }

    #[test]
    fn summary_rows_add_up_and_name_the_majority() {
        let c = clustering(&[0, 0, 0, 1, 1, -1]);
        let rows = summary(&c, &[3, 3, 5, 2, 2, 9], 10).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().map(|r| r.size).sum::<usize>(), 6);
        assert_eq!(rows[0].majority, Some(3));
        assert!((rows[0].purity - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(rows[0].histogram_text(), "3:2 5:1");
        assert_eq!(rows[2].cluster, None);
        assert_eq!(rows[2].histogram.len(), 10);
    }

    #[test]
    fn purity_of_a_known_partition() {
        let c = clustering(&[0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(purity(&c, &[1, 1, 1, 2, 4, 4, 5, 5]).unwrap(), 5.0 / 8.0);
        assert!(purity(&c, &[1, 2]).is_err());
    }
}
