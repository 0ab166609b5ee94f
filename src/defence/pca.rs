//! PCA projection (seed 003's "PCA" model): principal axes fitted on a held-out set (with
//! `reduce::Pca`), then every input projected onto them and back into image space:
//! `x → mean + (x − mean)·V·Vᵀ`. Linear, so differentiable.

use super::Transform;
use crate::data::Dataset;
use crate::error::{Error, ParamError, Result};
use crate::reduce::{rows_f32, Pca, PcaParams};
use candle_core::Tensor;
use rand::rngs::StdRng;
use std::fmt;

/// How many axes to keep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PcaChoice {
    /// The fewest axes that explain at least this share of the variance.
    Variance(f64),
    /// Exactly this many.
    Components(usize),
}

impl PcaChoice {
    /// The share of variance kept when neither is given.
    pub const DEFAULT_VARIANCE: f64 = 0.99;

    /// From the options a user gives: a variance share, or a component count, not both; the
    /// default share when neither.
    pub fn from_options(variance: Option<f64>, components: Option<usize>) -> std::result::Result<Self, ParamError> {
        match (variance, components) {
            (Some(_), Some(_)) => Err(ParamError::PcaVarianceAndComponents),
            (None, Some(k)) => PcaChoice::Components(k).check(),
            (v, None) => PcaChoice::Variance(v.unwrap_or(Self::DEFAULT_VARIANCE)).check(),
        }
    }

    /// Checked: a variance share in (0, 1], or components ≥ 1 (the upper bound is checked
    /// against the data).
    pub fn check(self) -> std::result::Result<Self, ParamError> {
        match self {
            PcaChoice::Variance(v) if !(v.is_finite() && v > 0.0 && v <= 1.0) => Err(ParamError::PcaVariance(v)),
            PcaChoice::Components(0) => Err(ParamError::PcaComponents {
                components: 0,
                features: 0,
            }),
            c => Ok(c),
        }
    }
}

/// A fitted PCA projection.
#[derive(Clone, Debug)]
pub struct PcaProjection {
    choice: PcaChoice,
    components: usize,
    explained: f64,
    features: usize,
    fitted_on: String,
    samples: usize,
    /// `(D)` the mean.
    mean: Tensor,
    /// `(k, D)` the axes, one per row.
    axes: Tensor,
    /// `(D, k)` their transpose.
    axes_t: Tensor,
    /// `(k)`: `−mean · Vᵀ`.
    shift: Tensor,
}

impl PcaProjection {
    /// Fit on the images of `data` (at least 2).
    pub fn fit(data: &Dataset, choice: PcaChoice) -> Result<Self> {
        let choice = choice.check()?;
        let (rows, n, d) = rows_f32(data.images())?;
        let dims = match choice {
            PcaChoice::Variance(_) => d,
            PcaChoice::Components(k) if k > d => {
                return Err(ParamError::PcaComponents {
                    components: k,
                    features: d,
                }
                .into())
            }
            PcaChoice::Components(k) => k,
        };
        let pca = Pca::fit_rows(rows, n, d, &PcaParams { dims })?;
        let ratio = pca.explained_variance_ratio();
        let k = match choice {
            PcaChoice::Components(k) => k,
            PcaChoice::Variance(v) => {
                let mut acc = 0.0;
                // the fewest axes reaching the share (rounding can leave the sum a hair below 1)
                ratio
                    .iter()
                    .position(|r| {
                        acc += r;
                        acc >= v - 1e-12
                    })
                    .map_or(d, |i| i + 1)
            }
        };
        let explained = ratio.iter().take(k).sum::<f64>();
        let device = data.device();
        let axes: Vec<f32> = pca
            .components()
            .rows()
            .into_iter()
            .take(k)
            .flat_map(|r| r.iter().map(|&v| v as f32).collect::<Vec<_>>())
            .collect();
        let axes = Tensor::from_vec(axes, (k, d), device)?;
        let mean: Vec<f32> = pca.mean().iter().map(|&v| v as f32).collect();
        let mean = Tensor::from_vec(mean, d, device)?;
        let shift = axes.matmul(&mean.unsqueeze(1)?)?.squeeze(1)?.neg()?;
        Ok(Self {
            choice,
            components: k,
            explained,
            features: d,
            fitted_on: data.name().to_string(),
            samples: n,
            axes_t: axes.t()?.contiguous()?,
            axes,
            mean,
            shift,
        })
    }

    /// The number of axes kept.
    pub fn components(&self) -> usize {
        self.components
    }

    /// The share of the fitting data's variance they explain.
    pub fn explained_variance(&self) -> f64 {
        self.explained
    }
}

impl Transform for PcaProjection {
    fn name(&self) -> &'static str {
        "pca_projection"
    }

    fn params(&self) -> serde_json::Value {
        let asked = match self.choice {
            PcaChoice::Variance(v) => serde_json::json!({ "variance": v }),
            PcaChoice::Components(k) => serde_json::json!({ "components": k }),
        };
        serde_json::json!({
            "transform": self.name(), "asked": asked, "components": self.components,
            "explained_variance": self.explained, "features": self.features,
            "fitted_on": self.fitted_on, "samples": self.samples,
        })
    }

    fn check_input(&self, dims: &[usize]) -> Result<()> {
        let per: usize = dims.iter().skip(1).product();
        if per != self.features {
            return Err(Error::Shape(format!(
                "pca_projection was fitted on {} features per sample ({}), but the images have {per}",
                self.features, self.fitted_on
            )));
        }
        Ok(())
    }

    fn apply(&self, x: &Tensor, _rng: &mut StdRng) -> Result<Tensor> {
        self.check_input(x.dims())?;
        let flat = x.flatten_from(1)?;
        let z = crate::kernels::linear(&flat, &self.axes, &self.shift)?;
        let y = crate::kernels::linear(&z, &self.axes_t, &self.mean)?;
        Ok(y.reshape(x.dims())?)
    }
}

impl fmt::Display for PcaProjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pca_projection({} of {} components, {:.2}% of the variance, fitted on {} samples of {})",
            self.components,
            self.features,
            self.explained * 100.0,
            self.samples,
            self.fitted_on
        )
    }
}
