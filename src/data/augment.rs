//! Training-time augmentation of a batch, drawn from a seed: `random_crop` (zero padding, then
//! a crop of the original size at a random offset, as torchvision's `RandomCrop(size,
//! padding)`) and `horizontal_flip` (each image mirrored with probability 1/2, as
//! `RandomHorizontalFlip()`).

use crate::error::{Error, ParamError, Result};
use candle_core::{DType, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;
use std::fmt;

/// One augmentation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "augment", rename_all = "snake_case")]
pub enum Augment {
    /// Pad every side with `padding` zeros, then crop back to the image's size at an offset
    /// drawn uniformly in `[0, 2·padding]²`.
    RandomCrop { padding: usize },
    /// Mirror each image left–right with probability 1/2.
    HorizontalFlip,
}

impl Augment {
    /// The random crop of torchvision's CIFAR recipe.
    pub const DEFAULT_PADDING: usize = 4;

    /// A random crop, checked: padding ≥ 1.
    pub fn random_crop(padding: usize) -> std::result::Result<Self, ParamError> {
        if padding == 0 {
            return Err(ParamError::CropPaddingZero);
        }
        Ok(Augment::RandomCrop { padding })
    }

    /// `x` `(N, C, H, W)` augmented, every random draw from `seed`.
    pub fn apply(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let (n, c, h, w) = x
            .dims4()
            .map_err(|_| Error::Shape(format!("augmentation works on images (N, C, H, W), got {:?}", x.dims())))?;
        let v = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = vec![0f32; v.len()];
        let img = c * h * w;
        for s in 0..n {
            let (src, dst) = (&v[s * img..(s + 1) * img], &mut out[s * img..(s + 1) * img]);
            match *self {
                Augment::HorizontalFlip => {
                    let flip = rng.random::<bool>();
                    for (k, d) in dst.iter_mut().enumerate() {
                        let (row, col) = (k / w, k % w);
                        *d = src[row * w + if flip { w - 1 - col } else { col }];
                    }
                }
                Augment::RandomCrop { padding: p } => {
                    // output (i, j) reads padded (i + dy, j + dx) = original (i + dy − p, j + dx − p)
                    let (dy, dx) = (rng.random_range(0..=2 * p), rng.random_range(0..=2 * p));
                    for ch in 0..c {
                        for i in 0..h {
                            let si = (i + dy) as isize - p as isize;
                            if si < 0 || si >= h as isize {
                                continue;
                            }
                            for j in 0..w {
                                let sj = (j + dx) as isize - p as isize;
                                if sj >= 0 && sj < w as isize {
                                    dst[(ch * h + i) * w + j] = src[(ch * h + si as usize) * w + sj as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Tensor::from_vec(out, x.dims(), x.device())?.to_dtype(x.dtype())?)
    }
}

impl fmt::Display for Augment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Augment::RandomCrop { padding } => write!(f, "random_crop(padding={padding})"),
            Augment::HorizontalFlip => write!(f, "horizontal_flip()"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn batch() -> Tensor {
        let v: Vec<f32> = (0..2 * 3 * 5 * 5).map(|i| 1.0 + i as f32).collect();
        Tensor::from_vec(v, (2, 3, 5, 5), &Device::Cpu).unwrap()
    }

    #[test]
    fn a_crop_is_the_padded_image_shifted_and_a_flip_mirrors() {
        let x = batch();
        let xv = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for seed in 0..20 {
            let y = Augment::RandomCrop { padding: 2 }.apply(&x, seed).unwrap();
            let yv = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            // every sample is the original shifted by one offset in [-2, 2]², zeros outside
            for s in 0..2 {
                let found = (-2i32..=2)
                    .flat_map(|a| (-2i32..=2).map(move |b| (a, b)))
                    .any(|(a, b)| {
                        (0..75).all(|k| {
                            let (ch, i, j) = (k / 25, (k % 25) / 5, k % 5);
                            let (si, sj) = (i as i32 + a, j as i32 + b);
                            let want = if (0..5).contains(&si) && (0..5).contains(&sj) {
                                xv[s * 75 + ch * 25 + si as usize * 5 + sj as usize]
                            } else {
                                0.0
                            };
                            yv[s * 75 + k] == want
                        })
                    });
                assert!(found, "seed {seed}, sample {s}");
            }
            assert_eq!(
                yv,
                Augment::RandomCrop { padding: 2 }
                    .apply(&x, seed)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            );
        }
        let mut flipped = 0;
        for seed in 0..50 {
            let y = Augment::HorizontalFlip.apply(&x, seed).unwrap();
            let yv = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for s in 0..2 {
                let same = yv[s * 75..(s + 1) * 75] == xv[s * 75..(s + 1) * 75];
                let mirrored = (0..75).all(|k| yv[s * 75 + k] == xv[s * 75 + (k / 5) * 5 + 4 - k % 5]);
                assert!(same ^ mirrored);
                flipped += usize::from(mirrored);
            }
        }
        assert!((30..=70).contains(&flipped), "{flipped} of 100 flipped");
        assert!(Augment::random_crop(0).is_err());
    }
}
