//! Median smoothing: each pixel replaced by the median of the `size × size` window around it,
//! channel by channel, with the border replicated. Not differentiable in any useful way; with
//! BPDA (the default) the backward pass is the identity.

use super::{backward_name, bpda_switch, cpu_values, image_dims, through, Transform};
use crate::error::{ParamError, Result};
use candle_core::Tensor;
use rand::rngs::StdRng;
use rayon::prelude::*;
use std::fmt;

/// The median filter of `planes` (each `h × w`, row-major, one after another) with a
/// `size × size` window: offsets `−(size−1)/2 ..= size/2` on each axis, the border replicated;
/// for an even window the upper of the two middle values (as `scipy.ndimage.median_filter`).
pub fn median_filter(planes: &[f32], h: usize, w: usize, size: usize) -> Vec<f32> {
    let mut out = vec![0f32; planes.len()];
    let lo = (size as isize - 1) / 2;
    let hi = size as isize / 2;
    out.par_chunks_mut(h * w)
        .zip(planes.par_chunks(h * w))
        .for_each(|(o, p)| {
            let mut window = Vec::with_capacity(size * size);
            for i in 0..h as isize {
                for j in 0..w as isize {
                    window.clear();
                    for di in -lo..=hi {
                        let r = (i + di).clamp(0, h as isize - 1) as usize;
                        for dj in -lo..=hi {
                            let c = (j + dj).clamp(0, w as isize - 1) as usize;
                            window.push(p[r * w + c]);
                        }
                    }
                    let mid = window.len() / 2;
                    let (_, m, _) = window.select_nth_unstable_by(mid, f32::total_cmp);
                    o[i as usize * w + j as usize] = *m;
                }
            }
        });
    out
}

/// Median smoothing with a `size × size` window.
#[derive(Clone, Debug, PartialEq)]
pub struct MedianSmoothing {
    size: usize,
    bpda: bool,
}

impl MedianSmoothing {
    /// 3×3 windows.
    pub const DEFAULT_SIZE: usize = 3;
    /// The backward pass is the identity (BPDA) unless asked otherwise.
    pub const DEFAULT_BPDA: bool = true;

    /// Checked: 1 ≤ size ≤ 15.
    pub fn new(size: usize, bpda: bool) -> std::result::Result<Self, ParamError> {
        if !(1..=15).contains(&size) {
            return Err(ParamError::MedianSize(size));
        }
        Ok(Self { size, bpda })
    }
}

impl Transform for MedianSmoothing {
    fn name(&self) -> &'static str {
        "median_smoothing"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "transform": self.name(), "size": self.size, "bpda": self.bpda })
    }

    fn check_input(&self, dims: &[usize]) -> Result<()> {
        image_dims(self.name(), dims).map(|_| ())
    }

    fn apply(&self, x: &Tensor, _rng: &mut StdRng) -> Result<Tensor> {
        let (_, h, w) = image_dims(self.name(), x.dims())?;
        let m = median_filter(&cpu_values(x)?, h, w, self.size);
        through(x, m, self.bpda)
    }

    bpda_switch!();
}

impl fmt::Display for MedianSmoothing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "median_smoothing(size={}×{}, border replicated, backward={})",
            self.size,
            self.size,
            backward_name(self.bpda)
        )
    }
}
