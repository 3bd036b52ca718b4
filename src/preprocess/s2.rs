//! Sentinel-2 radiometry and masks: digital numbers to surface reflectance with the processing
//! baseline's offset, and masks from the scene classification (SCL), dilated by a buffer.
//! Resampling of the 20 m bands onto the 10 m grid is a GDAL warp (`raster::warp_to_grid`),
//! which places pixels by their geotransforms, so the half-pixel shift between the 10 m and
//! 20 m grids is handled there.

use serde::{Deserialize, Serialize};

/// L2A digital numbers per unit of reflectance.
pub const QUANTIFICATION_VALUE: f32 = 10_000.0;
/// L2A digital numbers per unit of aerosol optical thickness (AOT_QUANTIFICATION_VALUE).
pub const AOT_QUANTIFICATION_VALUE: f32 = 1_000.0;
/// BOA_ADD_OFFSET of processing baseline 04.00 and later (ESA, "Sentinel-2 L2A product format
/// changes", January 2022): reflectance = (DN + offset) / 10000.
pub const BOA_ADD_OFFSET: f32 = -1000.0;

/// True for processing baselines from 04.00 on (strings like "04.00", "05.11").
pub fn baseline_has_offset(baseline: Option<&str>) -> bool {
    baseline.and_then(|b| b.split('.').next()).and_then(|major| major.trim().parse::<u32>().ok()).is_some_and(|major| major >= 4)
}

/// The offset to add to DNs of a scene: -1000 for baseline >= 04.00 unless the provider already
/// removed it (Earth Search's `earthsearch:boa_offset_applied`), else 0.
pub fn dn_offset(baseline: Option<&str>, offset_already_applied: Option<bool>) -> f32 {
    if baseline_has_offset(baseline) && offset_already_applied != Some(true) { BOA_ADD_OFFSET } else { 0.0 }
}

/// Reflectance from DNs in place; DN 0 is no data (NaN). Negative results (dark water after
/// the offset) are kept: clipping would bias means.
pub fn dn_to_reflectance(values: &mut [f32], offset: f32) {
    for v in values.iter_mut() {
        *v = if *v == 0.0 || !v.is_finite() { f32::NAN } else { (*v + offset) / QUANTIFICATION_VALUE };
    }
}

/// Which SCL classes are masked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SclMaskOptions {
    /// Also mask snow and ice (class 11).
    pub snow: bool,
    /// Grow cloud and shadow by this many pixels (square), to catch their fuzzy edges.
    pub buffer_px: usize,
    /// Mask haze and smoke where L2A's aerosol optical thickness (band AOT, at 550 nm) exceeds
    /// this (e.g. 0.5); off when unset. SCL flags no smoke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub haze_aot: Option<f32>,
}

impl Default for SclMaskOptions {
    fn default() -> Self {
        SclMaskOptions { snow: false, buffer_px: 2, haze_aot: None }
    }
}

/// SCL classes (L2A product specification): 0 no data, 1 saturated or defective, 3 cloud
/// shadows, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus, 11 snow.
fn masked_class(class: u8, snow: bool) -> (bool, bool) {
    // (masked, grows with the buffer)
    match class {
        0 | 1 => (true, false),
        3 | 8 | 9 | 10 => (true, true),
        11 if snow => (true, true),
        _ => (false, false),
    }
}

/// Mask (true = unusable) from an SCL raster: no data as is, clouds, shadows, cirrus (and snow
/// when asked) dilated by `buffer_px`.
pub fn scl_mask(scl: &[u8], width: usize, height: usize, opts: &SclMaskOptions) -> Vec<bool> {
    let mut mask = vec![false; scl.len()];
    let mut grow = vec![false; scl.len()];
    for (i, c) in scl.iter().enumerate() {
        let (m, g) = masked_class(*c, opts.snow);
        mask[i] = m;
        grow[i] = g;
    }
    if opts.buffer_px == 0 {
        return mask;
    }
    let b = opts.buffer_px;
    // Separable square dilation: rows, then columns.
    let mut rows = vec![false; scl.len()];
    for y in 0..height {
        for x in 0..width {
            let (x0, x1) = (x.saturating_sub(b), (x + b).min(width - 1));
            rows[y * width + x] = grow[y * width + x0..=y * width + x1].iter().any(|v| *v);
        }
    }
    for x in 0..width {
        for y in 0..height {
            let (y0, y1) = (y.saturating_sub(b), (y + b).min(height - 1));
            if (y0..=y1).any(|yy| rows[yy * width + x]) {
                mask[y * width + x] = true;
            }
        }
    }
    mask
}

/// Counts of masked pixels by cause, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MaskCounts {
    pub no_data: usize,
    pub cloud_shadow_cirrus: usize,
    pub snow: usize,
    pub buffer: usize,
    /// Pixels with a valid class but a band without data (edges of 20 m bands, mosaics).
    #[serde(default)]
    pub missing_bands: usize,
    /// Pixels an openEO back-end masked by the same rules (it does not say why).
    #[serde(default)]
    pub masked_remotely: usize,
    /// Clear by SCL but hazy or smoky by AOT (`haze_aot`).
    #[serde(default)]
    pub haze: usize,
    pub clear: usize,
}

impl MaskCounts {
    /// Every pixel counted, whatever its cause.
    pub fn total(&self) -> usize {
        self.no_data + self.cloud_shadow_cirrus + self.snow + self.buffer + self.missing_bands + self.masked_remotely + self.haze + self.clear
    }
}

/// Haze or smoke from L2A's aerosol optical thickness (digital numbers, 0 = no data): true
/// where AOT exceeds `threshold`. Sen2Cor retrieves AOT over dark dense vegetation and water and
/// spreads it smoothly, so this catches a plume's widespread haze, not its edges; opaque smoke
/// is usually classed as cloud already.
/// `per_unit` is the values per unit of AOT: [`AOT_QUANTIFICATION_VALUE`] for digital numbers,
/// 1 for values already scaled (SNAP's floating-point output).
pub fn haze_mask(aot: &[f32], threshold: f32, per_unit: f32) -> Vec<bool> {
    aot.iter().map(|v| v.is_finite() && *v > 0.0 && *v / per_unit > threshold).collect()
}

pub fn mask_counts(scl: &[u8], mask: &[bool], opts: &SclMaskOptions) -> MaskCounts {
    let mut c = MaskCounts::default();
    for (class, m) in scl.iter().zip(mask) {
        match (*class, *m) {
            (0 | 1, _) => c.no_data += 1,
            (3 | 8 | 9 | 10, _) => c.cloud_shadow_cirrus += 1,
            (11, true) if opts.snow => c.snow += 1,
            (_, true) => c.buffer += 1,
            (_, false) => c.clear += 1,
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_baseline_and_the_provider() {
        assert_eq!(dn_offset(Some("05.11"), None), -1000.0);
        assert_eq!(dn_offset(Some("04.00"), Some(false)), -1000.0);
        assert_eq!(dn_offset(Some("05.11"), Some(true)), 0.0, "Earth Search removed it already");
        assert_eq!(dn_offset(Some("03.01"), None), 0.0);
        assert_eq!(dn_offset(None, None), 0.0);
        let mut v = [0.0f32, 1000.0, 3500.0, 900.0];
        dn_to_reflectance(&mut v, -1000.0);
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], &[0.0, 0.25, -0.01]);
    }

    #[test]
    fn haze_is_masked_above_the_aot_threshold() {
        // DN / 1000 = AOT: 0.12 (clear air), 0.6 and 1.4 (smoke), no data.
        assert_eq!(haze_mask(&[120.0, 600.0, 1400.0, 0.0, f32::NAN], 0.5, AOT_QUANTIFICATION_VALUE), [false, true, true, false, false]);
        assert_eq!(haze_mask(&[0.12, 0.6], 0.5, 1.0), [false, true], "already scaled");
    }

    #[test]
    fn scl_mask_counts_and_buffer() {
        // 7 x 5 scene: one cloud pixel in the middle, a no-data column on the left, snow.
        let (w, h) = (7, 5);
        let mut scl = vec![4u8; w * h];
        for y in 0..h {
            scl[y * w] = 0;
        }
        scl[2 * w + 3] = 9;
        scl[w + 6] = 11;
        let no_buffer = scl_mask(&scl, w, h, &SclMaskOptions { snow: false, buffer_px: 0, haze_aot: None });
        assert_eq!(no_buffer.iter().filter(|m| **m).count(), 5 + 1);
        let opts = SclMaskOptions { snow: false, buffer_px: 1, haze_aot: None };
        let buffered = scl_mask(&scl, w, h, &opts);
        // The cloud grows to 3 x 3; no data does not grow; snow is kept.
        assert_eq!(buffered.iter().filter(|m| **m).count(), 5 + 9);
        assert!(!buffered[w + 6]);
        assert_eq!(mask_counts(&scl, &buffered, &opts), MaskCounts { no_data: 5, cloud_shadow_cirrus: 1, snow: 0, buffer: 8, missing_bands: 0, masked_remotely: 0, haze: 0, clear: 21 });
        let with_snow = SclMaskOptions { snow: true, buffer_px: 1, haze_aot: None };
        let m = scl_mask(&scl, w, h, &with_snow);
        assert!(m[w + 6] && m[5] && m[2 * w + 5], "snow masked and grown");
    }
}
