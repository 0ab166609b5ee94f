//! Charts with plotters, saved as PNG or SVG (chosen by the file extension). The font is
//! embedded from `assets/`, so charts render on a machine with no fonts installed.

mod figures;

pub use figures::{Heatmap, Histogram, ImageCell, ImageRows};

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

mod images;
pub use images::ImageGrid;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 600);

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut ok = true;
    ONCE.call_once(|| {
        ok = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok();
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Plot("the embedded font could not be loaded".into()))
    }
}

/// A line chart: one x column and one or more y series.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: Vec<f64>,
    pub series: Vec<(String, Vec<f64>)>,
    /// Per series, optional ± error (e.g. a standard deviation) drawn as error bars.
    pub errors: Vec<Option<Vec<f64>>>,
}

/// A grouped bar chart: one group per category, one bar per series, optional error bars.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub groups: Vec<String>,
    pub series: Vec<(String, Vec<f64>)>,
    pub errors: Vec<Option<Vec<f64>>>,
}

/// 2-D points coloured by an integer label (-1 = noise, grey), one label optionally highlighted.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterChart {
    pub title: String,
    pub points: Vec<(f64, f64)>,
    pub labels: Vec<i64>,
    pub highlight: Option<i64>,
}

/// Any chart a script can save.
#[derive(Clone, Debug, PartialEq)]
pub enum Chart {
    Line(LineChart),
    Bar(BarChart),
    Scatter(ScatterChart),
    /// A montage of images with captions (`plot/images.rs`).
    Images(ImageGrid),
    /// Rows of images with row labels, signed ones in blue/red (`plot/figures.rs`).
    ImageRows(ImageRows),
    Histogram(Histogram),
    Heatmap(Heatmap),
}

impl Chart {
    /// Render to `path` (`.png` or `.svg`), written atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        register_font()?;
        if let Chart::Images(g) = self {
            g.check()?;
        }
        let size = self.size();
        let draw = |c: &Chart, svg: bool| -> Result<Vec<u8>> {
            if svg {
                let mut s = String::new();
                c.draw_any(SVGBackend::with_string(&mut s, size).into_drawing_area())?;
                Ok(s.into_bytes())
            } else {
                let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
                c.draw_any(BitMapBackend::with_buffer(&mut buf, size).into_drawing_area())?;
                encode_png(&buf, size)
            }
        };
        let bytes = draw(self, Format::from_path(path)? == Format::Svg)?;
        crate::output::write_atomic(path, &bytes)
    }

    fn draw_any<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        match self {
            Chart::Line(c) => c.draw(root),
            Chart::Bar(c) => c.draw(root),
            Chart::Scatter(c) => c.draw(root),
            Chart::Images(c) => c.draw(root),
            Chart::ImageRows(c) => c.draw(root),
            Chart::Histogram(c) => c.draw(root),
            Chart::Heatmap(c) => c.draw(root),
        }
    }

    /// The canvas size in pixels.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Chart::Images(g) => g.size(),
            Chart::ImageRows(g) => g.size(),
            _ => SIZE,
        }
    }
}

/// A chart with f64 axes, as every chart here draws on.
type F64Chart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// The legend of a chart's labelled series, at `position`, in the shared style.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut F64Chart<'a, DB>,
    position: SeriesLabelPosition,
    font: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FAMILY, font))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(perr)
}

fn error_bar<DB: DrawingBackend>(
    chart: &mut F64Chart<'_, DB>,
    points: &[(f64, f64, f64)],
    color: RGBAColor,
) -> Result<()> {
    chart
        .draw_series(
            points
                .iter()
                .map(|&(x, y, e)| ErrorBar::new_vertical(x, y - e, y, y + e, color.stroke_width(2), 8)),
        )
        .map_err(perr)?;
    Ok(())
}

impl BarChart {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(perr)?;
        let g = self.groups.len().max(1) as f64;
        let tops = self.series.iter().enumerate().flat_map(|(i, (_, v))| {
            v.iter()
                .enumerate()
                .map(move |(j, y)| y + self.errors.get(i).and_then(|e| e.as_ref()).map_or(0.0, |e| e[j]))
        });
        let (_, y1) = range(tops.chain(std::iter::once(0.0)));
        let groups = self.groups.clone();
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FAMILY, 28))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..g, 0.0..y1)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.26 {
                    groups.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(&self.y_label)
            .label_style((FAMILY, 16))
            .axis_desc_style((FAMILY, 18))
            .draw()
            .map_err(perr)?;
        let ns = self.series.len().max(1) as f64;
        let width = 0.8 / ns;
        for (i, (name, values)) in self.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let x = |j: usize| j as f64 + 0.1 + width * i as f64;
            chart
                .draw_series(
                    values
                        .iter()
                        .enumerate()
                        .map(|(j, &v)| Rectangle::new([(x(j), 0.0), (x(j) + width, v)], color.filled())),
                )
                .map_err(perr)?
                .label(name)
                .legend(move |(a, b)| Rectangle::new([(a, b - 6), (a + 16, b + 6)], color.filled()));
            if let Some(Some(e)) = self.errors.get(i) {
                let pts: Vec<(f64, f64, f64)> = values
                    .iter()
                    .zip(e)
                    .enumerate()
                    .map(|(j, (&v, &e))| (x(j) + width / 2.0, v, e))
                    .collect();
                error_bar(&mut chart, &pts, BLACK.to_rgba())?;
            }
        }
        legend(&mut chart, SeriesLabelPosition::MiddleRight, 16)?;
        root.present().map_err(perr)
    }
}

impl ScatterChart {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(perr)?;
        let (x0, x1) = range(self.points.iter().map(|p| p.0));
        let (y0, y1) = range(self.points.iter().map(|p| p.1));
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FAMILY, 28))
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(perr)?;
        chart.configure_mesh().label_style((FAMILY, 14)).draw().map_err(perr)?;
        let mut labels: Vec<i64> = self.labels.clone();
        labels.sort_unstable();
        labels.dedup();
        for &l in &labels {
            let dim = self.highlight.is_some_and(|h| h != l);
            let color = if l < 0 {
                RGBAColor(150, 150, 150, 0.4)
            } else {
                let c = Palette99::pick(l as usize).to_rgba();
                if dim {
                    c.mix(0.15)
                } else {
                    c.mix(0.8)
                }
            };
            let size = if self.highlight == Some(l) { 3 } else { 2 };
            let pts = self
                .points
                .iter()
                .zip(&self.labels)
                .filter(|(_, &pl)| pl == l)
                .map(|(p, _)| *p);
            let name = if l < 0 { "noise".to_string() } else { l.to_string() };
            chart
                .draw_series(pts.map(|p| Circle::new(p, size, color.filled())))
                .map_err(perr)?
                .label(if self.highlight == Some(l) {
                    format!("{name} (chosen)")
                } else {
                    name
                })
                .legend(move |(a, b)| Circle::new((a + 8, b), 5, color.filled()));
        }
        if labels.len() <= 20 {
            legend(&mut chart, SeriesLabelPosition::MiddleRight, 14)?;
        }
        root.present().map_err(perr)
    }
}

/// Output format, from the file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// `png` or `svg` from the path's extension, or a clear error.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(Error::Plot(format!(
                "cannot tell the format of {}: name the file .png or .svg",
                path.display()
            ))),
        }
    }
}

fn perr(e: impl std::fmt::Display) -> Error {
    Error::Plot(e.to_string())
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

impl LineChart {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(perr)?;
        let (x0, x1) = range(self.x.iter().copied());
        let spread = |i: usize, j: usize| self.errors.get(i).and_then(|e| e.as_ref()).map_or(0.0, |e| e[j]);
        let (y0, y1) = range(self.series.iter().enumerate().flat_map(|(i, (_, ys))| {
            ys.iter()
                .enumerate()
                .flat_map(move |(j, &y)| [y - spread(i, j), y + spread(i, j)])
        }));
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, (FAMILY, 28))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style((FAMILY, 16))
            .axis_desc_style((FAMILY, 18))
            .draw()
            .map_err(perr)?;
        for (i, (name, ys)) in self.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = self
                .x
                .iter()
                .copied()
                .zip(ys.iter().copied())
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
                .map_err(perr)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
            if let Some(Some(e)) = self.errors.get(i) {
                // paired before filtering, so that a missing (non-finite) point shifts no error bar
                let bars: Vec<(f64, f64, f64)> = self
                    .x
                    .iter()
                    .zip(ys)
                    .zip(e)
                    .map(|((&x, &y), &e)| (x, y, e))
                    .filter(|(x, y, _)| x.is_finite() && y.is_finite())
                    .collect();
                error_bar(&mut chart, &bars, color)?;
            }
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                .map_err(perr)?;
        }
        legend(&mut chart, SeriesLabelPosition::MiddleRight, 16)?;
        // present() explicitly, so that a drawing failure is not ignored silently.
        root.present().map_err(perr)
    }
}

/// Encode an RGB buffer as PNG.
pub fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(perr)?;
        writer.write_image_data(rgb).map_err(perr)?;
    }
    Ok(out)
}
