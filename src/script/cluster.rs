//! Clusterers: `kmeans`, `dbscan`, and the `Clustering` they return.

use super::error::{to_rhai, RResult};
use super::keys;
use super::opts::{to_usize, Opts};
use super::{def, Reg, Session};
use crate::cluster::{adjusted_rand, AgglomerativeParams, Clusterer, Clustering, DbscanParams, KMeansParams, Linkage};
use crate::reduce::to_matrix;
use candle_core::Tensor;
use rhai::{Array, Dynamic, Map, INT};
use std::rc::Rc;

/// A clustering algorithm as a script value.
pub(crate) type ClustererRef = Rc<dyn Clusterer>;

fn fit(s: &Session, c: &dyn Clusterer, points: &Tensor) -> RResult<Clustering> {
    if points.rank() != 2 {
        return Err(to_rhai(format!(
            "clustering expects (N, d) points, e.g. from pca(...).fit_transform(data), got shape {:?}",
            points.dims()
        )));
    }
    let x = to_matrix(points).map_err(to_rhai)?;
    let result = c
        .fit(&x)
        .and_then(|r| r.with_centroids(&x))
        .map_err(|e| to_rhai(format!("{}: {e}", c.name())))?;
    s.record(
        serde_json::json!({ "op": "cluster", "algorithm": result.algorithm(), "points": x.nrows(),
        "sizes": result.sizes(), "noise": result.noise(), "inertia": result.inertia() }),
    );
    Ok(result)
}

/// A checked clusterer as a script value, or the broken rule prefixed with its name.
fn clusterer<C: Clusterer + 'static>(
    c: C,
    check: impl FnOnce(&C) -> Result<&C, crate::ParamError>,
) -> RResult<ClustererRef> {
    check(&c).map_err(|e| to_rhai(format!("{}: {e}", c.name())))?;
    Ok(Rc::new(c))
}

fn ints(v: impl IntoIterator<Item = usize>) -> Array {
    v.into_iter().map(|i| Dynamic::from(i as INT)).collect()
}

fn truth(labels: &Tensor) -> RResult<Vec<Option<usize>>> {
    let v = labels
        .flatten_all()
        .and_then(|t| t.to_dtype(candle_core::DType::U32))
        .and_then(|t| t.to_vec1::<u32>());
    Ok(v.map_err(to_rhai)?.into_iter().map(|l| Some(l as usize)).collect())
}

pub(super) fn register(reg: &mut Reg) {
    reg.engine.register_type_with_name::<ClustererRef>("Clusterer");
    reg.engine.register_type_with_name::<Clustering>("Clustering");
    let s = reg.session.clone();
    def!(
        reg,
        "kmeans(opts: Map) -> Clusterer",
        "k-means with k-means++ seeding: k (required), n_init (10), max_iter (300), tol (1e-4), seed (--seed).",
        move |m: Map| -> RResult<ClustererRef> {
            let o = Opts::new(&keys::KMEANS, &m)?;
            let k = o
                .usize("k")?
                .ok_or_else(|| to_rhai("kmeans: option `k` is required, e.g. kmeans(#{ k: 8 })"))?;
            let mut p = KMeansParams::new(k);
            p.n_init = o.usize("n_init")?.unwrap_or(p.n_init);
            p.max_iter = o.usize("max_iter")?.unwrap_or(p.max_iter);
            p.tol = o.f64("tol")?.unwrap_or(p.tol);
            p.seed = o.u64("seed")?.unwrap_or(s.seed);
            clusterer(p, KMeansParams::check)
        }
    );
    def!(
        reg,
        "dbscan(opts: Map) -> Clusterer",
        "DBSCAN with a k-d tree: eps (neighbourhood radius, required), min_points (5); noise gets label -1.",
        |m: Map| -> RResult<ClustererRef> {
            let o = Opts::new(&keys::DBSCAN, &m)?;
            let eps = o.f64("eps")?.ok_or_else(|| {
                to_rhai("dbscan: option `eps` is required, e.g. dbscan(#{ eps: 0.05, min_points: 10 })")
            })?;
            let mut p = DbscanParams::new(eps);
            p.min_points = o.usize("min_points")?.unwrap_or(p.min_points);
            clusterer(p, DbscanParams::check)
        }
    );
    def!(reg, "agglomerative(opts: Map) -> Clusterer", "Agglomerative clustering in O(n) memory: k (required), linkage (\"ward\", \"average\" or \"complete\" by nearest-neighbour chain, \"single\" by spanning tree).", |m: Map| -> RResult<ClustererRef> {
        let o = Opts::new(&keys::AGGLOMERATIVE, &m)?;
        let k = o.usize("k")?.ok_or_else(|| to_rhai("agglomerative: option `k` is required, e.g. agglomerative(#{ k: 8, linkage: \"ward\" })"))?;
        let mut p = AgglomerativeParams::new(k);
        if let Some(l) = o.string("linkage")? {
            p.linkage = Linkage::parse(&l).map_err(|e| to_rhai(format!("agglomerative: {e}")))?;
        }
        clusterer(p, AgglomerativeParams::check)
    });
    let s = reg.session.clone();
    def!(
        reg,
        "Clusterer.fit(points: Tensor) -> Clustering",
        "Cluster the rows of an (N, d) tensor.",
        move |c: &mut ClustererRef, p: Tensor| fit(&s, c.as_ref(), &p)
    );
    def!(
        reg,
        "Clusterer.to_string() -> String",
        "The algorithm and its parameters.",
        |c: &mut ClustererRef| c.to_string()
    );

    def!(
        reg,
        "Clustering.n_clusters() -> int",
        "Number of clusters (noise not counted).",
        |c: &mut Clustering| c.n_clusters() as INT
    );
    def!(
        reg,
        "Clustering.labels() -> Array",
        "The cluster of every point, -1 for noise.",
        |c: &mut Clustering| c.signed_labels().into_iter().map(Dynamic::from).collect::<Array>()
    );
    def!(
        reg,
        "Clustering.sizes() -> Array",
        "The size of every cluster.",
        |c: &mut Clustering| ints(c.sizes())
    );
    def!(
        reg,
        "Clustering.members(i: int) -> Array",
        "Indices of the points in cluster i (for Dataset.subset).",
        |c: &mut Clustering, i: INT| -> RResult<Array> {
            Ok(ints(c.members(to_usize("members: i", i)?).map_err(to_rhai)?))
        }
    );
    def!(
        reg,
        "Clustering.size(i: int) -> int",
        "The size of cluster i.",
        |c: &mut Clustering, i: INT| -> RResult<INT> { Ok(c.size(to_usize("size: i", i)?).map_err(to_rhai)? as INT) }
    );
    def!(
        reg,
        "Clustering.pick_random(seed: int) -> int",
        "A non-empty cluster chosen uniformly from the seed (never noise).",
        |c: &mut Clustering, seed: INT| -> RResult<INT> {
            Ok(c.pick_random(to_usize("pick_random: seed", seed)? as u64)
                .map_err(to_rhai)? as INT)
        }
    );
    def!(
        reg,
        "Clustering.largest() -> int",
        "The largest cluster.",
        |c: &mut Clustering| -> RResult<INT> { Ok(c.largest().map_err(to_rhai)? as INT) }
    );
    def!(
        reg,
        "Clustering.inertia() -> ?",
        "Sum of squared distances to the centroids (k-means), () where undefined.",
        |c: &mut Clustering| { c.inertia().map_or(Dynamic::UNIT, Dynamic::from) }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Clustering.labels_tensor() -> Tensor",
        "The cluster of every point as an (N) int64 tensor, -1 for noise.",
        move |c: &mut Clustering| -> RResult<Tensor> {
            let v = c.signed_labels();
            let n = v.len();
            Tensor::from_vec(v, n, &s.device).map_err(to_rhai)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Clustering.centroids() -> Tensor",
        "The (k, d) centroids: the mean of each cluster's points (k-means' centres; NaN for an empty cluster).",
        move |c: &mut Clustering| -> RResult<Tensor> {
            let m = c
                .centroids()
                .ok_or_else(|| to_rhai("centroids: this clustering was not computed from points"))?;
            crate::reduce::from_matrix(m, &s.device).map_err(to_rhai)
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "Clustering.save(path: String) -> ()",
        "Write the clustering as JSON (algorithm and parameters, labels with -1 for noise, sizes, noise, inertia, centroids), atomically, with the run's seed and device beside it.",
        move |c: &mut Clustering, path: &str| super::io::write_json_value(&s, path, &c.to_json())
    );
    def!(
        reg,
        "Clustering.to_string() -> String",
        "Algorithm, cluster sizes, noise and inertia.",
        |c: &mut Clustering| c.to_string()
    );
    def!(
        reg,
        "adjusted_rand(c: Clustering, labels: Tensor) -> float",
        "Adjusted Rand index between a clustering and labels (1 = same partition, ~0 = chance).",
        |c: Clustering, l: Tensor| -> RResult<f64> {
            let t = truth(&l)?;
            if t.len() != c.labels().len() {
                return Err(to_rhai(format!(
                    "adjusted_rand: {} labels for {} points",
                    t.len(),
                    c.labels().len()
                )));
            }
            Ok(adjusted_rand(c.labels(), &t))
        }
    );
}
