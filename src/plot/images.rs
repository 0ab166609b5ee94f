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
/// The largest picture drawn (about 150 MB of RGB while it is encoded).
const MAX_PIXELS: u64 = 50_000_000;

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
        let (w, h) = self.size64();
        if w.saturating_mul(h) > MAX_PIXELS {
            return Err(Error::Plot(format!(
                "{} images of {}×{} make a {w}×{h} picture, more than {MAX_PIXELS} pixels: draw fewer",
                self.images.len(),
                self.height,
                self.width
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
    fn scale(&self) -> u64 {
        let side = self.height.max(self.width).max(1) as u64;
        let target = if self.images.len() <= 16 { 140 } else { 84 };
        (target / side).clamp(1, 8)
    }

    fn cell(&self) -> (u64, u64) {
        let s = self.scale();
        (self.width as u64 * s, self.height as u64 * s)
    }

    fn size64(&self) -> (u64, u64) {
        let (cols, rows) = self.grid();
        let (cw, ch) = self.cell();
        let (pad, caption) = (PAD as u64, CAPTION as u64);
        let title = if self.title.is_empty() { 0 } else { TITLE as u64 };
        // wide enough for the title (about 13 px a character at 24 px)
        let w = (cols as u64 * (cw + pad) + pad)
            .max(200)
            .max(self.title.chars().count() as u64 * 13 + 2 * pad);
        let h = rows as u64 * (ch + caption + pad) + pad + title;
        (w, h)
    }

    /// The picture size in pixels.
    pub fn size(&self) -> (u32, u32) {
        let (w, h) = self.size64();
        (w.min(u32::MAX as u64) as u32, h.min(u32::MAX as u64) as u32)
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
            let x0 = (PAD as u64 + (k % cols) as u64 * (cw + PAD as u64)) as i32;
            let y0 = (PAD as u64 + (k / cols) as u64 * (ch + CAPTION as u64 + PAD as u64)) as i32;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(n: usize) -> ImageGrid {
        ImageGrid {
            title: "t".into(),
            channels: 1,
            height: 28,
            width: 28,
            images: vec![vec![0.5; 784]; n],
            captions: (0..n).map(|i| i.to_string()).collect(),
            cols: 0,
        }
    }

    #[test]
    fn the_grid_is_about_square_and_bounded() {
        let g = grid(64);
        assert_eq!(g.grid(), (8, 8));
        assert!(g.check().is_ok());
        let err = grid(8000).check().unwrap_err().to_string();
        assert!(err.contains("draw fewer"), "{err}");
        let mut bad = grid(2);
        bad.images[1].pop();
        assert!(bad.check().unwrap_err().to_string().contains("image 1 has 783 values"));
    }
}
