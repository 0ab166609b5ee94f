//! The attack-suite figures: `adversarial_grid`, `confidence_histogram`, `heatmap_chart`,
//! `image_chart`. Each returns a `Chart` that `save` writes as PNG or SVG.

use super::error::{to_rhai, RResult};
use super::io::{cell, maps};
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
    let o = Opts::new("adversarial_grid", opts, &["n", "title", "successful_only"])?;
    if clean.len() != adv.len() || clean.image_shape() != adv.image_shape() {
        return Err(to_rhai(format!(
            "adversarial_grid: the clean and adversarial sets differ ({} vs {} samples of {:?} vs {:?})",
            clean.len(),
            adv.len(),
            clean.image_shape(),
            adv.image_shape()
        )));
    }
    let n = o.usize("n")?.unwrap_or(8).max(1);
    let before = crate::eval::predictions(model, clean).map_err(to_rhai)?;
    let after = crate::eval::predictions(model, adv).map_err(to_rhai)?;
    let labels = clean.labels().to_vec1::<u32>().map_err(to_rhai)?;
    let successful_only = o.bool("successful_only")?.unwrap_or(true);
    let chosen: Vec<usize> = (0..clean.len())
        .filter(|&i| !successful_only || (before.pred[i] == labels[i] && after.pred[i] != labels[i]))
        .take(n)
        .collect();
    if chosen.is_empty() {
        return Err(to_rhai(
            "adversarial_grid: no sample was correct when clean and wrong after the attack; pass successful_only: false to show the first ones",
        ));
    }
    let (x, shape) = images(clean.images(), "adversarial_grid")?;
    let (a, _) = images(adv.images(), "adversarial_grid")?;
    let mut rows = vec![Vec::new(), Vec::new(), Vec::new()];
    for &i in &chosen {
        let delta: Vec<f32> = a[i].iter().zip(&x[i]).map(|(p, q)| p - q).collect();
        let linf = delta.iter().fold(0f32, |m, v| m.max(v.abs()));
        let l2 = delta.iter().map(|v| v * v).sum::<f32>().sqrt();
        rows[0].push(ImageCell {
            pixels: x[i].clone(),
            shape,
            signed: false,
            caption: format!("true {} pred {}\n{:.2}", labels[i], before.pred[i], before.max_prob[i]),
        });
        rows[1].push(ImageCell {
            pixels: delta,
            shape,
            signed: true,
            caption: format!("L∞ {linf:.3}\nL2 {l2:.2}"),
        });
        rows[2].push(ImageCell {
            pixels: a[i].clone(),
            shape,
            signed: false,
            caption: format!("pred {}\n{:.2}", after.pred[i], after.max_prob[i]),
        });
    }
    Ok(Chart::ImageRows(ImageRows {
        title: o
            .string("title")?
            .unwrap_or_else(|| format!("{} → {}", clean.name(), adv.name())),
        row_labels: vec!["original".into(), "perturbation".into(), "adversarial".into()],
        rows,
    }))
}

fn confidence_histogram(model: &Model, data: &Dataset, opts: &Map) -> RResult<Chart> {
    let o = Opts::new("confidence_histogram", opts, &["bins", "title"])?;
    let bins = o.usize("bins")?.unwrap_or(20);
    if bins == 0 {
        return Err(to_rhai("confidence_histogram: bins must be at least 1"));
    }
    let p = crate::eval::predictions(model, data).map_err(to_rhai)?;
    let labels = data.labels().to_vec1::<u32>().map_err(to_rhai)?;
    let all: Vec<f64> = p.max_prob.iter().map(|&v| v as f64).collect();
    let correct: Vec<f64> = (0..all.len())
        .filter(|&i| p.pred[i] == labels[i])
        .map(|i| all[i])
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
    let o = Opts::new(
        "heatmap_chart",
        opts,
        &["x", "y", "value", "title", "x_label", "y_label"],
    )?;
    let rows = maps("heatmap_chart", rows)?;
    let x = o.string("x")?.unwrap_or_else(|| "target".into());
    let y = o.string("y")?.unwrap_or_else(|| "source".into());
    let value = o.string("value")?.unwrap_or_else(|| "accuracy".into());
    let (mut xs, mut ys): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        for (col, list) in [(&x, &mut xs), (&y, &mut ys)] {
            let v = r
                .get(col.as_str())
                .ok_or_else(|| to_rhai(format!("heatmap_chart: row {i} has no column `{col}`")))?;
            let name = cell(Some(v));
            if !list.contains(&name) {
                list.push(name);
            }
        }
    }
    let mut values = vec![vec![f64::NAN; xs.len()]; ys.len()];
    for (i, r) in rows.iter().enumerate() {
        let v = r
            .get(value.as_str())
            .and_then(number)
            .ok_or_else(|| to_rhai(format!("heatmap_chart: row {i} has no number in column `{value}`")))?;
        let cx = xs.iter().position(|n| *n == cell(r.get(x.as_str()))).unwrap_or(0);
        let cy = ys.iter().position(|n| *n == cell(r.get(y.as_str()))).unwrap_or(0);
        values[cy][cx] = v;
    }
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
    let o = Opts::new("image_chart", opts, &["title", "signed", "n", "cols"])?;
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
