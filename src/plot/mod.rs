//! Charts with plotters, saved as PNG or SVG (chosen by the file extension). The font is
//! embedded from `assets/`, so charts render on a machine with no fonts installed.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

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
        let (y0, y1) = range(self.series.iter().flat_map(|(_, ys)| ys.iter().copied()));
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
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                .map_err(perr)?;
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(perr)?;
        // present() explicitly, so that a drawing failure is not ignored silently.
        root.present().map_err(perr)
    }

    /// Render to `path` (`.png` or `.svg`), written atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        register_font()?;
        let bytes = match Format::from_path(path)? {
            Format::Svg => {
                let mut s = String::new();
                self.draw(SVGBackend::with_string(&mut s, SIZE).into_drawing_area())?;
                s.into_bytes()
            }
            Format::Png => {
                let mut buf = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
                self.draw(BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area())?;
                encode_png(&buf, SIZE)?
            }
        };
        crate::output::write_atomic(path, &bytes)
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
