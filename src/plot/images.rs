//! A montage of small images (samples of a data set, the mean image of each cluster), each
//! with a caption, drawn pixel by pixel so that PNG and SVG look the same.

use super::{perr, FAMILY};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Images of `channels × height × width` values in [0, 1] (row-major, channel first), laid
/// out in a grid of `cols` columns, each with a caption under it.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageGrid {
    pub title: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub images: Vec<Vec<f32>>,
    pub captions: Vec<String>,
    /// Columns of the grid; 0 picks about a square.
    pub cols: usize,
}

const PAD: u32 = 8;
const CAPTION: u32 = 18;
const TITLE: u32 = 40;

impl ImageGrid {
    /// Check the image sizes and the caption count.
    pub fn check(&self) -> Result<()> {
        let px = self.channels * self.height * self.width;
        if self.images.is_empty() {
            return Err(Error::Plot("there are no images to draw".into()));
        }
        if !(self.channels == 1 || self.channels == 3) || self.height == 0 || self.width == 0 {
            return Err(Error::Plot(format!(
                "images must be 1×H×W (grey) or 3×H×W (colour), got {}×{}×{}",
                self.channels, self.height, self.width
            )));
        }
        if let Some(i) = self.images.iter().position(|im| im.len() != px) {
            return Err(Error::Plot(format!(
                "image {i} has {} values, expected {px}",
                self.images[i].len()
            )));
        }
        if self.captions.len() > self.images.len() {
            return Err(Error::Plot(format!(
                "{} captions for {} images",
                self.captions.len(),
                self.images.len()
            )));
        }
        Ok(())
    }

    fn grid(&self) -> (usize, usize) {
        let n = self.images.len().max(1);
        let cols = if self.cols > 0 {
            self.cols.min(n)
        } else {
            (n as f64).sqrt().ceil() as usize
        };
        (cols, n.div_ceil(cols))
    }

    /// Pixels per image pixel: bigger for few or small images.
    fn scale(&self) -> u32 {
        let side = self.height.max(self.width).max(1) as u32;
        let target = if self.images.len() <= 16 { 140 } else { 84 };
        (target / side).clamp(1, 8)
    }

    fn cell(&self) -> (u32, u32) {
        let s = self.scale();
        (self.width as u32 * s, self.height as u32 * s)
    }

    /// The picture size in pixels.
    pub fn size(&self) -> (u32, u32) {
        let (cols, rows) = self.grid();
        let (cw, ch) = self.cell();
        let title = if self.title.is_empty() { 0 } else { TITLE };
        // wide enough for the title (about 13 px a character at 24 px)
        let w = (cols as u32 * (cw + PAD) + PAD)
            .max(200)
            .max(self.title.chars().count() as u32 * 13 + 2 * PAD);
        let h = rows as u32 * (ch + CAPTION + PAD) + PAD + title;
        (w, h)
    }

    pub(super) fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()> {
        self.check()?;
        root.fill(&WHITE).map_err(perr)?;
        let area = if self.title.is_empty() {
            root.clone()
        } else {
            root.titled(&self.title, (FAMILY, 24)).map_err(perr)?
        };
        let (cols, _) = self.grid();
        let (cw, ch) = self.cell();
        let s = self.scale() as i32;
        let plane = self.height * self.width;
        for (k, img) in self.images.iter().enumerate() {
            let x0 = (PAD + (k % cols) as u32 * (cw + PAD)) as i32;
            let y0 = (PAD + (k / cols) as u32 * (ch + CAPTION + PAD)) as i32;
            area.draw(&Rectangle::new(
                [(x0, y0), (x0 + cw as i32, y0 + ch as i32)],
                BLACK.filled(),
            ))
            .map_err(perr)?;
            let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            for r in 0..self.height {
                for c in 0..self.width {
                    let p = r * self.width + c;
                    let color = if self.channels == 3 {
                        RGBColor(byte(img[p]), byte(img[plane + p]), byte(img[2 * plane + p]))
                    } else {
                        let g = byte(img[p]);
                        RGBColor(g, g, g)
                    };
                    if color == RGBColor(0, 0, 0) {
                        continue;
                    }
                    let (x, y) = (x0 + c as i32 * s, y0 + r as i32 * s);
                    area.draw(&Rectangle::new([(x, y), (x + s, y + s)], color.filled()))
                        .map_err(perr)?;
                }
            }
            if let Some(cap) = self.captions.get(k) {
                area.draw(&Text::new(cap.as_str(), (x0, y0 + ch as i32 + 2), (FAMILY, 14)))
                    .map_err(perr)?;
            }
        }
        root.present().map_err(perr)
    }
}
