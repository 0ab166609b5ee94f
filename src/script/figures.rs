//! The attack-suite figures: `adversarial_grid`, `confidence_histogram`, `heatmap_chart`,
//! `image_chart`. Each returns a `Chart` that `save` writes as PNG or SVG.

use super::error::{to_rhai, RResult};
use super::io::{cell, maps};
use super::keys;
use super::opts::{number, Opts};
use super::{def, Reg};
use crate::data::Dataset;
use crate::nn::Model;
use crate::plot::{Chart, Heatmap, Histogram, ImageCell, ImageRows};
use candle_core::{DType, Tensor};
use rhai::{Array, Map};

/// Images as host rows, one per image, with the `(C, H, W)` shape of one.
type HostImages = (Vec<Vec<f32>>, (usize, usize, usize));

/// The images of an `(N, C, H, W)` tensor as host rows, with their shape.
fn images(t: &Tensor, func: &str) -> RResult<HostImages> {
    let t = match t.rank() {
        3 => t.unsqueeze(0).map_err(to_rhai)?,
        4 => t.clone(),
        _ => {
            return Err(to_rhai(format!(
                "{func}: expected images (N, C, H, W) or one image (C, H, W), got shape {:?}",
                t.dims()
            )))
        }
    };
    let (_, c, h, w) = t.dims4().map_err(to_rhai)?;
    let rows = t
        .flatten_from(1)
        .and_then(|f| f.to_dtype(DType::F32))
        .and_then(|f| f.to_vec2::<f32>())
        .map_err(to_rhai)?;
    Ok((rows, (c, h, w)))
}

fn adversarial_grid(model: &Model, clean: &Dataset, adv: &Dataset, opts: &Map) -> RResult<Chart> {
    let o = Opts::new(&keys::ADVERSARIAL_GRID, opts)?;
    let rows = ImageRows::adversarial(
        model,
        clean,
        adv,
        o.usize("n")?.unwrap_or(8),
        o.bool("successful_only")?.unwrap_or(true),
        o.string("title")?,
    )
    .map_err(|e| to_rhai(format!("adversarial_grid: {e}")))?;
    Ok(Chart::ImageRows(rows))
}

/// The most bins a histogram may have (more than a chart's pixels).
const MAX_BINS: usize = 10_000;

fn confidence_histogram(model: &Model, data: &Dataset, opts: &Map) -> RResult<Chart> {
    let o = Opts::new(&keys::CONFIDENCE_HISTOGRAM, opts)?;
    let bins = o.usize("bins")?.unwrap_or(20);
    if bins == 0 || bins > MAX_BINS {
        return Err(to_rhai(format!(
            "confidence_histogram: bins must be from 1 to {MAX_BINS}, got {bins}"
        )));
    }
    let p = crate::eval::predictions(model, data).map_err(to_rhai)?;
    let labels = data.labels().to_vec1::<u32>().map_err(to_rhai)?;
    let all: Vec<f64> = p.max_prob.iter().map(|&v| v as f64).collect();
    let correct: Vec<f64> = all
        .iter()
        .zip(p.pred.iter().zip(&labels))
        .filter(|(_, (pred, label))| pred == label)
        .map(|(&v, _)| v)
        .collect();
    Ok(Chart::Histogram(Histogram {
        title: o
            .string("title")?
            .unwrap_or_else(|| format!("predicted probability on {}", data.name())),
        x_label: "probability of the predicted class".into(),
        bins,
        range: (0.0, 1.0),
        series: vec![
            (format!("all ({})", all.len()), all),
            (format!("correct ({})", correct.len()), correct),
        ],
    }))
}

fn heatmap_chart(rows: &Array, opts: &Map) -> RResult<Chart> {
    let o = Opts::new(&keys::HEATMAP_CHART, opts)?;
    let rows = maps("heatmap_chart", rows)?;
    let x = o.string("x")?.unwrap_or_else(|| "target".into());
    let y = o.string("y")?.unwrap_or_else(|| "source".into());
    let value = o.string("value")?.unwrap_or_else(|| "accuracy".into());
    let text = |i: usize, r: &Map, col: &str| {
        r.get(col)
            .map(|v| cell(Some(v)))
            .ok_or_else(|| to_rhai(format!("heatmap_chart: row {i} has no column `{col}`")))
    };
    let (mut xs, mut ys, mut vs) = (Vec::new(), Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        xs.push(text(i, r, &x)?);
        ys.push(text(i, r, &y)?);
        vs.push(
            r.get(value.as_str())
                .and_then(number)
                .ok_or_else(|| to_rhai(format!("heatmap_chart: row {i} has no number in column `{value}`")))?,
        );
    }
    let (xs, ys, values) = crate::table::pivot(&xs, &ys, &vs);
    Ok(Chart::Heatmap(Heatmap {
        title: o.string("title")?.unwrap_or_else(|| value.clone()),
        x_label: o.string("x_label")?.unwrap_or_else(|| x.clone()),
        y_label: o.string("y_label")?.unwrap_or_else(|| y.clone()),
        x_labels: xs,
        y_labels: ys,
        values,
    }))
}

fn image_chart(t: &Tensor, opts: &Map) -> RResult<Chart> {
    let o = Opts::new(&keys::IMAGE_CHART, opts)?;
    let (rows, shape) = images(t, "image_chart")?;
    let n = o.usize("n")?.unwrap_or(32).max(1);
    let cols = o.usize("cols")?.unwrap_or(8).max(1);
    let any_negative = rows.iter().flatten().any(|&v| v < 0.0);
    let signed = o.bool("signed")?.unwrap_or(any_negative);
    let cells: Vec<ImageCell> = rows
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, pixels)| {
            let linf = pixels.iter().fold(0f32, |m, v| m.max(v.abs()));
            let l2 = pixels.iter().map(|v| v * v).sum::<f32>().sqrt();
            ImageCell {
                caption: if signed {
                    format!("L∞ {linf:.3}\nL2 {l2:.2}")
                } else {
                    format!("#{i}")
                },
                pixels,
                shape,
                signed,
            }
        })
        .collect();
    Ok(Chart::ImageRows(ImageRows {
        title: o.string("title")?.unwrap_or_default(),
        row_labels: Vec::new(),
        rows: cells.chunks(cols).map(|c| c.to_vec()).collect(),
    }))
}

pub(super) fn register(reg: &mut Reg) {
    def!(
        reg,
        "adversarial_grid(model: Model, clean: Dataset, adv: Dataset, opts: Map) -> Chart",
        "Rows of originals, perturbations (scaled, blue − / red +) and adversarial images with true and predicted labels and confidence: n (8), successful_only (true), title.",
        |m: Model, c: Dataset, a: Dataset, o: Map| adversarial_grid(&m, &c, &a, &o)
    );
    def!(
        reg,
        "confidence_histogram(model: Model, data: Dataset, opts: Map) -> Chart",
        "Histogram of the predicted-class probability over all samples and over the correctly classified ones: bins (20), title.",
        |m: Model, d: Dataset, o: Map| confidence_histogram(&m, &d, &o)
    );
    def!(
        reg,
        "heatmap_chart(rows: Array, opts: Map) -> Chart",
        "A matrix with its values in the cells (e.g. transfer_matrix rows): x (\"target\"), y (\"source\"), value (\"accuracy\"), title, x_label, y_label.",
        |rows: Array, o: Map| heatmap_chart(&rows, &o)
    );
    def!(
        reg,
        "image_chart(images: Tensor, opts: Map) -> Chart",
        "Images (N, C, H, W) or one (C, H, W) in a grid; signed values (a perturbation) in blue − / red +: title, n (32), cols (8), signed (auto).",
        |t: Tensor, o: Map| image_chart(&t, &o)
    );
}
