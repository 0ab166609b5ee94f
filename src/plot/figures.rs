//! The attack-suite figures: grids of images with captions (originals, perturbations and
//! adversarial images; a universal perturbation), histograms (predicted probabilities), and
//! heatmaps with the value in every cell (transfer matrices).

use super::{perr, range, FAMILY};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::Model;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One image of a grid: `C·H·W` values (C = 1 grey or 3 RGB), in [0, 1], or signed (a
/// perturbation, drawn blue–white–red and scaled to its own largest magnitude).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageCell {
    pub pixels: Vec<f32>,
    pub shape: (usize, usize, usize),
    pub signed: bool,
    pub caption: String,
}

/// Rows of images, each row with a label on its left.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRows {
    pub title: String,
    pub row_labels: Vec<String>,
    pub rows: Vec<Vec<ImageCell>>,
}

impl ImageRows {
    /// Originals, perturbations and adversarial images of up to `n` samples of `clean` and
    /// `adv` (the same samples, attacked), with the true label, the predictions and their
    /// probabilities, and each perturbation's L∞ and L2 norm; with `successful_only`, only
    /// samples the model got right before the attack and wrong after it.
    pub fn adversarial(
        model: &Model,
        clean: &Dataset,
        adv: &Dataset,
        n: usize,
        successful_only: bool,
        title: Option<String>,
    ) -> Result<Self> {
        if clean.len() != adv.len() || clean.image_shape() != adv.image_shape() {
            return Err(Error::Invalid(format!(
                "the clean and adversarial sets differ ({} vs {} samples of {:?} vs {:?})",
                clean.len(),
                adv.len(),
                clean.image_shape(),
                adv.image_shape()
            )));
        }
        let before = crate::eval::predictions(model, clean)?;
        let after = crate::eval::predictions(model, adv)?;
        let labels = clean.labels().to_vec1::<u32>()?;
        let chosen: Vec<usize> = (0..clean.len())
            .filter(|&i| !successful_only || (before.pred[i] == labels[i] && after.pred[i] != labels[i]))
            .take(n.max(1))
            .collect();
        if chosen.is_empty() {
            return Err(Error::Invalid(
                "no sample was correct when clean and wrong after the attack; pass successful_only: false to show the first ones"
                    .into(),
            ));
        }
        // only the chosen samples leave the device
        let (clean_n, adv_n) = (clean.subset(&chosen)?, adv.subset(&chosen)?);
        let (linf, l2, _) = crate::eval::perturbation_norms(&clean_n, &adv_n)?;
        let host = |d: &Dataset| -> Result<Vec<Vec<f32>>> {
            Ok(d.images()
                .flatten_from(1)?
                .to_dtype(candle_core::DType::F32)?
                .to_vec2::<f32>()?)
        };
        let (x, a) = (host(&clean_n)?, host(&adv_n)?);
        let shape = clean.image_shape();
        let mut rows = vec![Vec::new(), Vec::new(), Vec::new()];
        for (k, &i) in chosen.iter().enumerate() {
            let delta: Vec<f32> = a[k].iter().zip(&x[k]).map(|(p, q)| p - q).collect();
            rows[0].push(ImageCell {
                pixels: x[k].clone(),
                shape,
                signed: false,
                caption: format!("true {} pred {}\n{:.2}", labels[i], before.pred[i], before.max_prob[i]),
            });
            rows[1].push(ImageCell {
                pixels: delta,
                shape,
                signed: true,
                caption: format!("L∞ {:.3}\nL2 {:.2}", linf[k], l2[k]),
            });
            rows[2].push(ImageCell {
                pixels: a[k].clone(),
                shape,
                signed: false,
                caption: format!("pred {}\n{:.2}", after.pred[i], after.max_prob[i]),
            });
        }
        Ok(ImageRows {
            title: title.unwrap_or_else(|| format!("{} → {}", clean.name(), adv.name())),
            row_labels: vec!["original".into(), "perturbation".into(), "adversarial".into()],
            rows,
        })
    }
}

/// Pixel size of a cell's image, caption height, row-label width, title height.
const CELL: u32 = 112;
const CAPTION: u32 = 40;
const LABEL_W: u32 = 130;
const TITLE_H: u32 = 50;

impl ImageRows {
    /// The canvas size the grid needs.
    pub fn size(&self) -> (u32, u32) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(1).max(1) as u32;
        let w = LABEL_W + cols * (CELL + 10) + 10;
        let h = TITLE_H + self.rows.len().max(1) as u32 * (CELL + CAPTION + 10);
        (w, h)
    }

    pub(super) fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(perr)?;
        let title = (FAMILY, 24).into_font();
        root.draw(&Text::new(self.title.clone(), (10, 12), title))
            .map_err(perr)?;
        let small = (FAMILY, 13).into_font();
        for (r, row) in self.rows.iter().enumerate() {
            let y0 = (TITLE_H + r as u32 * (CELL + CAPTION + 10)) as i32;
            if let Some(label) = self.row_labels.get(r) {
                root.draw(&Text::new(
                    label.clone(),
                    (8, y0 + CELL as i32 / 2),
                    (FAMILY, 16).into_font(),
                ))
                .map_err(perr)?;
            }
            for (c, cell) in row.iter().enumerate() {
                let x0 = (LABEL_W + c as u32 * (CELL + 10)) as i32;
                draw_image(&root, cell, (x0, y0))?;
                for (k, line) in cell.caption.lines().take(2).enumerate() {
                    root.draw(&Text::new(
                        line.to_string(),
                        (x0, y0 + CELL as i32 + 4 + 17 * k as i32),
                        small.clone(),
                    ))
                    .map_err(perr)?;
                }
            }
        }
        root.present().map_err(perr)
    }
}

/// Blue (−1) – white (0) – red (+1).
fn diverging(v: f32) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let fade = |t: f32| (255.0 * (1.0 - t)) as u8;
    if v >= 0.0 {
        RGBColor(255, fade(v), fade(v))
    } else {
        RGBColor(fade(-v), fade(-v), 255)
    }
}

fn draw_image<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, cell: &ImageCell, (x0, y0): (i32, i32)) -> Result<()> {
    let (ch, h, w) = cell.shape;
    if ch * h * w != cell.pixels.len() || h == 0 || w == 0 || !(ch == 1 || ch == 3) {
        return Err(Error::Plot(format!(
            "an image of shape {ch}×{h}×{w} cannot be drawn from {} values (1 or 3 channels)",
            cell.pixels.len()
        )));
    }
    let scale = if cell.signed {
        cell.pixels.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12)
    } else {
        1.0
    };
    let px = CELL as f64 / h.max(w) as f64;
    let at = |c: usize, i: usize, j: usize| cell.pixels[c * h * w + i * w + j];
    for i in 0..h {
        for j in 0..w {
            let color = if cell.signed {
                // the channel mean for colour perturbations
                diverging((0..ch).map(|c| at(c, i, j)).sum::<f32>() / ch as f32 / scale)
            } else if ch == 1 {
                let g = (at(0, i, j).clamp(0.0, 1.0) * 255.0) as u8;
                RGBColor(g, g, g)
            } else {
                let q = |c| (at(c, i, j).clamp(0.0, 1.0) * 255.0) as u8;
                RGBColor(q(0), q(1), q(2))
            };
            let (a, b) = (
                (x0 + (j as f64 * px) as i32, y0 + (i as f64 * px) as i32),
                (x0 + ((j + 1) as f64 * px) as i32, y0 + ((i + 1) as f64 * px) as i32),
            );
            root.draw(&Rectangle::new([a, b], color.filled())).map_err(perr)?;
        }
    }
    root.draw(&Rectangle::new(
        [(x0, y0), (x0 + (w as f64 * px) as i32, y0 + (h as f64 * px) as i32)],
        BLACK.mix(0.3),
    ))
    .map_err(perr)
}

/// Histograms of several series over the same bins, drawn side by side in each bin.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub title: String,
    pub x_label: String,
    pub bins: usize,
    /// The range the bins cover (values outside are clamped into the end bins).
    pub range: (f64, f64),
    pub series: Vec<(String, Vec<f64>)>,
}

impl Histogram {
    /// Count of each series in each bin.
    pub fn counts(&self) -> Vec<Vec<usize>> {
        let (lo, hi) = self.range;
        let width = (hi - lo) / self.bins as f64;
        self.series
            .iter()
            .map(|(_, values)| {
                let mut c = vec![0usize; self.bins];
                for v in values.iter().filter(|v| v.is_finite()) {
                    let b = (((v - lo) / width).floor().max(0.0) as usize).min(self.bins - 1);
                    c[b] += 1;
                }
                c
            })
            .collect()
    }

    pub(super) fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(perr)?;
        let counts = self.counts();
        let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64 * 1.08;
        let (lo, hi) = self.range;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FAMILY, 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(lo..hi, 0f64..top)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc("samples")
            .label_style((FAMILY, 16))
            .axis_desc_style((FAMILY, 18))
            .draw()
            .map_err(perr)?;
        let width = (hi - lo) / self.bins as f64;
        let k = self.series.len().max(1) as f64;
        for (s, ((name, _), c)) in self.series.iter().zip(&counts).enumerate() {
            let color = Palette99::pick(s).to_rgba();
            chart
                .draw_series(c.iter().enumerate().map(|(b, &n)| {
                    let x = lo + b as f64 * width + width * (0.05 + 0.9 * s as f64 / k);
                    Rectangle::new([(x, 0.0), (x + width * 0.9 / k, n as f64)], color.filled())
                }))
                .map_err(perr)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        }
        super::legend(&mut chart, SeriesLabelPosition::UpperLeft, 16)?;
        root.present().map_err(perr)
    }
}

/// A matrix of values, one coloured cell each with its value written in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_labels: Vec<String>,
    pub y_labels: Vec<String>,
    /// `values[row][col]`, rows along y; NaN cells are left blank.
    pub values: Vec<Vec<f64>>,
}

impl Heatmap {
    pub(super) fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(perr)?;
        let (nx, ny) = (self.x_labels.len(), self.y_labels.len());
        let (lo, hi) = range(self.values.iter().flatten().copied());
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FAMILY, 26))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(140)
            .build_cartesian_2d(0f64..nx as f64, 0f64..ny as f64)
            .map_err(perr)?;
        let xl = self.x_labels.clone();
        let yl = self.y_labels.clone();
        let name = |labels: &[String], v: f64| {
            let i = v - 0.5;
            if (i - i.round()).abs() < 1e-6 && i >= 0.0 {
                labels.get(i.round() as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels(nx * 2 + 1)
            .y_labels(ny * 2 + 1)
            .x_label_formatter(&|v| name(&xl, *v))
            .y_label_formatter(&|v| name(&yl, ny as f64 - *v))
            .label_style((FAMILY, 16))
            .axis_desc_style((FAMILY, 18))
            .draw()
            .map_err(perr)?;
        for (r, row) in self.values.iter().enumerate() {
            // row 0 at the top
            let y = (ny - 1 - r) as f64;
            for (c, &v) in row.iter().enumerate() {
                if !v.is_finite() {
                    continue;
                }
                let t = ((v - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0);
                let color = RGBColor(255 - (t * 200.0) as u8, 255 - (t * 120.0) as u8, 255);
                chart
                    .draw_series([Rectangle::new(
                        [(c as f64, y), (c as f64 + 1.0, y + 1.0)],
                        color.filled(),
                    )])
                    .map_err(perr)?;
                chart
                    .draw_series([Text::new(
                        format!("{v:.3}"),
                        (c as f64 + 0.38, y + 0.55),
                        (FAMILY, 18).into_font(),
                    )])
                    .map_err(perr)?;
            }
        }
        root.present().map_err(perr)
    }
}
