//! A small deterministic 10-class 28×28 data set, so that everything runs on a machine with no
//! data files. Each class is a prototype drawn from three thick strokes; a sample is its
//! class prototype shifted by up to two pixels, scaled in intensity, with a few random
//! strokes of clutter and pixel noise.

use super::{Dataset, Splits};
use crate::error::{ParamError, Result};
use candle_core::{Device, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};

const SIDE: usize = 28;
const CLASSES: usize = 10;

/// Parameters of `synthetic()`.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticParams {
    pub train: usize,
    pub test: usize,
    pub seed: u64,
}

impl Default for SyntheticParams {
    fn default() -> Self {
        Self {
            train: 6000,
            test: 1000,
            seed: 0,
        }
    }
}

impl SyntheticParams {
    /// Check the parameters.
    pub fn check(&self) -> std::result::Result<&Self, ParamError> {
        if self.train == 0 || self.test == 0 {
            return Err(ParamError::SyntheticEmpty(self.train, self.test));
        }
        // refused before the images are allocated
        let most = crate::algebra::MAX_ELEMENTS / (SIDE * SIDE);
        if self.train > most || self.test > most {
            return Err(ParamError::SyntheticTooLarge {
                train: self.train,
                test: self.test,
                most,
            });
        }
        Ok(self)
    }
}

type Stroke = ((f32, f32), (f32, f32));

fn random_stroke(rng: &mut StdRng, margin: f32) -> Stroke {
    let lo = margin;
    let hi = SIDE as f32 - 1.0 - margin;
    (
        (rng.random_range(lo..hi), rng.random_range(lo..hi)),
        (rng.random_range(lo..hi), rng.random_range(lo..hi)),
    )
}

/// Distance from point p to segment ab.
fn seg_dist(p: (f32, f32), (a, b): Stroke) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    };
    let (qx, qy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - qx).powi(2) + (p.1 - qy).powi(2)).sqrt()
}

fn draw(img: &mut [f32], strokes: &[Stroke], shift: (f32, f32), intensity: f32, width: f32) {
    for y in 0..SIDE {
        for x in 0..SIDE {
            let p = (x as f32 - shift.0, y as f32 - shift.1);
            let d = strokes.iter().map(|&s| seg_dist(p, s)).fold(f32::INFINITY, f32::min);
            let v = intensity * (1.0 - (d - width).max(0.0)).clamp(0.0, 1.0);
            let px = &mut img[y * SIDE + x];
            *px = px.max(v);
        }
    }
}

fn split(protos: &[Vec<Stroke>], n: usize, rng: &mut StdRng, device: &Device, name: &str) -> Result<Dataset> {
    let mut images = vec![0f32; n * SIDE * SIDE];
    let mut labels = Vec::with_capacity(n);
    for (i, img) in images.chunks_mut(SIDE * SIDE).enumerate() {
        let class = i % CLASSES;
        labels.push(class as u32);
        let shift = (rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0));
        let intensity = rng.random_range(0.6..1.0);
        let width = rng.random_range(0.6..1.4);
        draw(img, &protos[class], shift, intensity, width);
        // clutter: one faint stroke that belongs to no class
        let clutter = [random_stroke(rng, 1.0)];
        draw(img, &clutter, (0.0, 0.0), rng.random_range(0.2..0.5), 0.5);
        for px in img.iter_mut() {
            *px = (*px + rng.random_range(-0.1..0.1)).clamp(0.0, 1.0);
        }
    }
    // Labels cycle through the classes, so every batch holds all of them.
    let images = Tensor::from_vec(images, (n, 1, SIDE, SIDE), device)?;
    let labels = Tensor::from_vec(labels, n, device)?;
    Dataset::new(images, labels, CLASSES, name)
}

/// Generate the synthetic train/test splits. The same parameters always give the same data.
pub fn synthetic(params: &SyntheticParams, device: &Device) -> Result<Splits> {
    let p = params.check()?;
    let mut rng = StdRng::seed_from_u64(p.seed);
    let protos: Vec<Vec<Stroke>> = (0..CLASSES)
        .map(|_| (0..3).map(|_| random_stroke(&mut rng, 5.0)).collect())
        .collect();
    let mut train_rng = StdRng::seed_from_u64(p.seed.wrapping_mul(2).wrapping_add(1));
    let mut test_rng = StdRng::seed_from_u64(p.seed.wrapping_mul(2).wrapping_add(2));
    Ok(Splits {
        train: split(&protos, p.train, &mut train_rng, device, "synthetic-train")?,
        test: split(&protos, p.test, &mut test_rng, device, "synthetic-test")?,
    })
}
