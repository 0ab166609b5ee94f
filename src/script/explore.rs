//! Looking inside a clustering: `summary`, `purity`, `label_histogram`, `silhouette`,
//! `mean_images`, `samples_grid`, `inertia_chart`, and `scatter_chart` coloured by cluster.

use super::error::{to_rhai, RResult};
use super::keys;
use super::opts::Opts;
use super::{def, Reg, Session};
use crate::cluster::{self, Clustering};
use crate::data::Dataset;
use crate::plot::{Chart, ImageGrid, LineChart};
use crate::reduce::to_matrix;
use candle_core::{DType, Tensor};
use rhai::{Array, Dynamic, Map, INT};

/// The columns of `Clustering.summary`, in display order.
pub const SUMMARY_COLUMNS: [&str; 6] = ["cluster", "size", "share", "majority", "purity", "histogram"];

/// Default number of points above which the silhouette is computed on a sample.
const SILHOUETTE_POINTS: usize = 2000;

/// Labels are class indices below this (histograms have one column per class).
const MAX_LABEL: usize = 100_000;

/// Integer class labels from a tensor of any dtype, checked.
fn labels_of(func: &str, t: &Tensor) -> RResult<Vec<usize>> {
    let v = t
        .flatten_all()
        .and_then(|f| f.to_dtype(DType::F64))
        .and_then(|f| f.to_vec1::<f64>())
        .map_err(to_rhai)?;
    v.iter()
        .enumerate()
        .map(|(i, &x)| {
            if x >= 0.0 && x.fract() == 0.0 && x < MAX_LABEL as f64 {
                Ok(x as usize)
            } else {
                Err(to_rhai(format!(
                    "{func}: labels must be class indices, integers in 0..{MAX_LABEL}; element {i} is {x}"
                )))
            }
        })
        .collect()
}

fn dataset_labels(func: &str, d: &Dataset) -> RResult<(Vec<usize>, usize)> {
    Ok((labels_of(func, d.labels())?, d.classes()))
}

fn summary_rows(c: &Clustering, labels: &[usize], classes: usize) -> RResult<Array> {
    let rows = cluster::summary(c, labels, classes).map_err(|e| to_rhai(format!("summary: {e}")))?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("cluster".into(), (r.cluster.map_or(-1, |v| v as INT)).into());
            m.insert("size".into(), (r.size as INT).into());
            m.insert("share".into(), r.share.into());
            m.insert(
                "majority".into(),
                r.majority.map_or(Dynamic::UNIT, |v| (v as INT).into()),
            );
            m.insert("purity".into(), r.purity.into());
            m.insert("histogram".into(), r.histogram_text().into());
            Dynamic::from_map(m)
        })
        .collect())
}

fn silhouette(s: &Session, c: &Clustering, points: &Tensor, opts: &Map) -> RResult<Map> {
    let o = Opts::new(&keys::SILHOUETTE, opts)?;
    let max_points = o.usize("max_points")?.unwrap_or(SILHOUETTE_POINTS);
    let seed = o.u64("seed")?.unwrap_or(s.seed);
    if points.rank() != 2 {
        return Err(to_rhai(format!(
            "silhouette: expected (N, d) points, got shape {:?}",
            points.dims()
        )));
    }
    let x = to_matrix(points).map_err(to_rhai)?;
    let r = cluster::silhouette(c, &x, max_points, seed).map_err(|e| to_rhai(format!("silhouette: {e}")))?;
    s.record(
        serde_json::json!({ "op": "silhouette", "score": r.score, "points": r.points, "of": r.total,
        "sampled": r.sampled, "seed": r.seed }),
    );
    let mut m = Map::new();
    m.insert("score".into(), r.score.into());
    m.insert("points".into(), (r.points as INT).into());
    m.insert("of".into(), (r.total as INT).into());
    m.insert("sampled".into(), r.sampled.into());
    m.insert("seed".into(), (r.seed as INT).into());
    Ok(m)
}

/// The images of a data set as row-major f32, and (C, H, W).
fn pixels(d: &Dataset) -> RResult<(Vec<f32>, (usize, usize, usize))> {
    let v = d
        .images()
        .flatten_all()
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(to_rhai)?;
    Ok((v, d.image_shape()))
}

fn mean_images(c: &Clustering, d: &Dataset, opts: &Map) -> RResult<Chart> {
    let o = Opts::new(&keys::MEAN_IMAGES, opts)?;
    let (v, (ch, h, w)) = pixels(d)?;
    let means = cluster::mean_images(c, &v, ch * h * w).map_err(|e| to_rhai(format!("mean_images: {e}")))?;
    if means.is_empty() {
        return Err(to_rhai(
            "mean_images: the clustering has no clusters (every point is noise)",
        ));
    }
    let captions = c
        .sizes()
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i} (n={n})"))
        .collect();
    Ok(Chart::Images(ImageGrid {
        title: o
            .string("title")?
            .unwrap_or_else(|| format!("Mean image of each of the {} clusters", c.n_clusters())),
        channels: ch,
        height: h,
        width: w,
        images: means,
        captions,
        cols: o.usize("cols")?.unwrap_or(0),
    }))
}

fn samples_grid(d: &Dataset, opts: &Map) -> RResult<Chart> {
    let o = Opts::new(&keys::SAMPLES_GRID, opts)?;
    let n = o.usize("n")?.unwrap_or(64);
    if n == 0 || d.is_empty() {
        return Err(to_rhai(format!(
            "samples_grid: nothing to draw ({} samples, n = {n})",
            d.len()
        )));
    }
    let idx = crate::util::sample_indices(d.len(), n, o.u64("seed")?);
    let (v, (ch, h, w)) = pixels(d)?;
    let labels = labels_of("samples_grid", d.labels())?;
    let px = ch * h * w;
    let (mut images, mut captions) = (Vec::with_capacity(idx.len()), Vec::with_capacity(idx.len()));
    for i in idx {
        let (Some(image), Some(label)) = (v.get(i * px..(i + 1) * px), labels.get(i)) else {
            return Err(to_rhai(format!("samples_grid: {} has no sample {i}", d.name())));
        };
        images.push(image.to_vec());
        captions.push(format!("#{i}: {label}"));
    }
    Ok(Chart::Images(ImageGrid {
        title: o.string("title")?.unwrap_or_else(|| d.name().to_string()),
        channels: ch,
        height: h,
        width: w,
        images,
        captions,
        cols: o.usize("cols")?.unwrap_or(0),
    }))
}

fn inertia_chart(s: &Session, points: &Tensor, opts: &Map) -> RResult<Chart> {
    let o = Opts::new(&keys::INERTIA_CHART, opts)?;
    let d = cluster::InertiaParams::default();
    let p = cluster::InertiaParams {
        k_min: o.usize("k_min")?.unwrap_or(d.k_min),
        k_max: o.usize("k_max")?.unwrap_or(d.k_max),
        n_init: o.usize("n_init")?.unwrap_or(d.n_init),
        seed: o.u64("seed")?.unwrap_or(s.seed),
    };
    if points.rank() != 2 {
        return Err(to_rhai(format!(
            "inertia_chart: expected (N, d) points, got shape {:?}",
            points.dims()
        )));
    }
    let x = to_matrix(points).map_err(to_rhai)?;
    let curve = cluster::inertia_curve(&x, &p).map_err(|e| to_rhai(format!("inertia_chart: {e}")))?;
    let (k_min, k_max, n_init, seed) = (p.k_min, p.k_max, p.n_init, p.seed);
    s.record(
        serde_json::json!({ "op": "inertia_curve", "points": x.nrows(), "k_min": k_min, "k_max": k_max,
        "n_init": n_init, "seed": seed, "inertia": curve.iter().map(|c| c.1).collect::<Vec<_>>() }),
    );
    Ok(Chart::Line(LineChart {
        title: o
            .string("title")?
            .unwrap_or_else(|| "k-means inertia against k (the elbow)".into()),
        x_label: "k".into(),
        y_label: "inertia".into(),
        x: curve.iter().map(|c| c.0 as f64).collect(),
        series: vec![("inertia".into(), curve.iter().map(|c| c.1).collect())],
        errors: vec![None],
    }))
}

pub(super) fn register(reg: &mut Reg) {
    def!(
        reg,
        "Clustering.summary(data: Dataset) -> Array",
        "One row per cluster (then noise, cluster -1): cluster, size, share, majority (label), purity, histogram (label:count, largest first).",
        |c: &mut Clustering, d: Dataset| -> RResult<Array> {
            let (l, classes) = dataset_labels("summary", &d)?;
            summary_rows(c, &l, classes)
        }
    );
    def!(
        reg,
        "Clustering.summary(labels: Tensor) -> Array",
        "The summary against the labels in a tensor.",
        |c: &mut Clustering, t: Tensor| -> RResult<Array> { summary_rows(c, &labels_of("summary", &t)?, 0) }
    );
    def!(
        reg,
        "Clustering.purity(labels: Tensor) -> float",
        "Fraction of points carrying their cluster's majority label (noise counts as one more cluster).",
        |c: &mut Clustering, t: Tensor| -> RResult<f64> {
            cluster::purity(c, &labels_of("purity", &t)?).map_err(to_rhai)
        }
    );
    def!(
        reg,
        "Clustering.purity(data: Dataset) -> float",
        "Purity against a data set's labels.",
        |c: &mut Clustering, d: Dataset| -> RResult<f64> {
            cluster::purity(c, &dataset_labels("purity", &d)?.0).map_err(to_rhai)
        }
    );
    def!(
        reg,
        "Clustering.label_histogram(labels: Tensor) -> Array",
        "Counts of each label in each cluster: h[cluster][label] (noise not counted).",
        |c: &mut Clustering, t: Tensor| -> RResult<Array> {
            let h = cluster::label_histogram(c, &labels_of("label_histogram", &t)?, 0)
                .map_err(|e| to_rhai(format!("label_histogram: {e}")))?;
            Ok(h.into_iter()
                .map(|row| Dynamic::from_array(row.into_iter().map(|n| (n as INT).into()).collect()))
                .collect())
        }
    );
    let s = reg.session.clone();
    def!(
        reg,
        "silhouette(c: Clustering, points: Tensor) -> Map",
        "Mean silhouette of the non-noise points: #{ score, points, of, sampled, seed }; exact up to 2000 points, else on a sample of 2000 drawn from --seed.",
        move |c: Clustering, p: Tensor| silhouette(&s, &c, &p, &Map::new())
    );
    let s = reg.session.clone();
    def!(
        reg,
        "silhouette(c: Clustering, points: Tensor, opts: Map) -> Map",
        "The silhouette with options max_points (2000: above it a sample of that many) and seed (of the sample).",
        move |c: Clustering, p: Tensor, o: Map| silhouette(&s, &c, &p, &o)
    );
    def!(
        reg,
        "Clustering.mean_images(data: Dataset) -> Chart",
        "A montage of each cluster's mean image (data: the images that were clustered), captioned with the size.",
        |c: &mut Clustering, d: Dataset| mean_images(c, &d, &Map::new())
    );
    def!(
        reg,
        "Clustering.mean_images(data: Dataset, opts: Map) -> Chart",
        "The mean-image montage with options title, cols.",
        |c: &mut Clustering, d: Dataset, o: Map| mean_images(c, &d, &o)
    );
    def!(
        reg,
        "samples_grid(data: Dataset) -> Chart",
        "A grid of the first 64 images, each captioned `#index: label`.",
        |d: Dataset| samples_grid(&d, &Map::new())
    );
    def!(
        reg,
        "samples_grid(data: Dataset, opts: Map) -> Chart",
        "The image grid with options n (64), seed (a random sample of n; without it the first n), title, cols.",
        |d: Dataset, o: Map| samples_grid(&d, &o)
    );
    let s = reg.session.clone();
    def!(
        reg,
        "inertia_chart(points: Tensor, opts: Map) -> Chart",
        "k-means inertia against k, to find the elbow: k_min (1), k_max (10), n_init (10), seed (--seed), title.",
        move |p: Tensor, o: Map| inertia_chart(&s, &p, &o)
    );
    def!(
        reg,
        "scatter_chart(points: Tensor, c: Clustering, opts: Map) -> Chart",
        "(N, 2) points coloured by cluster (noise grey): title, highlight (a cluster drawn on top, the rest faded).",
        |p: Tensor, c: Clustering, o: Map| -> RResult<Chart> {
            let labels: Vec<i64> = c.labels().iter().map(|l| l.map_or(-1, |v| v as i64)).collect();
            super::io::scatter_chart(&p, &labels, &o)
        }
    );
}
