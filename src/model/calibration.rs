//! An uncertainty head's scales calibrated on the validation blocks at the end of training
//! (split conformal), kept beside the run and applied by inference.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::generator::Generator;
use crate::dataset::loader::{PatchBatcher, PatchDataset};
use crate::error::{Error, Result};

/// An uncertainty head's scales calibrated on held-out pixels (split conformal): per output
/// band, the factor on every scale that puts [`CALIBRATED_COVERAGE`] of the validation blocks'
/// real values within the synthetic value +/- 2 sd (sd = sqrt(2) x scale): the quantile of
/// |error| / (2 sqrt(2) scale) at that share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleCalibration {
    /// The blocks it was computed on.
    pub split: String,
    pub bands: Vec<String>,
    pub factors: Vec<f64>,
    /// Clear pixels (per band).
    pub pixels: u64,
}

/// The share of real values the calibrated +/- 2 sd is to hold.
pub const CALIBRATED_COVERAGE: f64 = 0.95;

/// [`ScaleCalibration`] over the val split; `None` without validation pixels or a head.
pub fn calibrate_scales(g: &Generator, data: &PatchDataset, batcher: &PatchBatcher, batch_size: usize, dev: &Device) -> Result<Option<ScaleCalibration>> {
    let model = g.valid();
    let len = data.patches().len();
    let c_out = batcher.normalization.outputs.len();
    let (mut ratios, mut count) = (vec![Vec::<f32>::new(); c_out], 0u64);
    let read = |t: Tensor<4>| t.try_into_vec_as::<f32>().map_err(|e| Error::invalid("calibration", format!("{e:?}")));
    for start in (0..len).step_by(batch_size.max(1)) {
        let items: Vec<_> = (start..(start + batch_size).min(len)).map(|i| data.read(i)).collect::<Result<_>>()?;
        let batch = burn::data::dataloader::batcher::Batcher::batch(batcher, items, dev);
        let (pred, scale) = model.forward_with_scale(batch.input.clone());
        let Some(scale) = scale else { return Ok(None) };
        let (pred, scale, label, valid) = (read(pred)?, read(scale)?, read(batch.label)?, read(batch.valid)?);
        let plane = valid.len() / batch.output_maps.len().max(1);
        for (k, v) in valid.chunks(plane.max(1)).enumerate() {
            for p in (0..plane).filter(|p| v[*p] > 0.0) {
                for (c, r) in ratios.iter_mut().enumerate() {
                    let i = (k * c_out + c) * plane + p;
                    r.push((label[i] - pred[i]).abs() / (2.0 * std::f32::consts::SQRT_2 * scale[i].exp()));
                }
                count += 1;
            }
        }
    }
    if count == 0 {
        return Ok(None);
    }
    let quantile = |mut r: Vec<f32>| -> f64 {
        r.sort_by(f32::total_cmp);
        // The smallest value with at least the wanted share at or below it.
        let at = ((CALIBRATED_COVERAGE * r.len() as f64).ceil() as usize).clamp(1, r.len()) - 1;
        (r[at] as f64).max(1e-6)
    };
    Ok(Some(ScaleCalibration { split: "validation".into(), bands: batcher.normalization.outputs.iter().map(|c| c.name.clone()).collect(), factors: ratios.into_iter().map(quantile).collect(), pixels: count }))
}

