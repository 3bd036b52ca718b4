//! What the app's QA plots show of an assessment, gathered in the same pass over the images:
//! per-band histograms of real and synthetic t1 over the clear pixels, a density of synthetic
//! against real per band over the clear held-out pixels with R², and the difference raster
//! (synthetic − real, per band; the spectral-angle raster comes from the image-quality pass,
//! which computes the angles for the report's SAM anyway).
//! The numbers go to `qa.json` in the assessment's folder (cached with the run's assessment).

use serde::{Deserialize, Serialize};

/// Reflectance range of the histograms and densities; values beyond fall in the end bins.
pub const RANGE: [f32; 2] = [0.0, 0.8];
/// Bins of a histogram over [`RANGE`].
pub const HIST_BINS: usize = 160;
/// Bins a side of a density over [`RANGE`] x [`RANGE`].
pub const DENSITY_BINS: usize = 64;

/// One band's distributions and agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandQa {
    pub band: String,
    /// Counts over [`RANGE`] in [`HIST_BINS`] bins, over the clear pixels where both images
    /// have data.
    pub hist_real: Vec<u64>,
    pub hist_synthetic: Vec<u64>,
    /// Counts of (real, synthetic) pairs: row = real's bin, column = synthetic's bin, each of
    /// [`DENSITY_BINS`] over [`RANGE`]; over the density's pixels (held-out where there are).
    pub density: Vec<u64>,
    /// Pixels in the density.
    pub pixels: u64,
    /// 1 − Σ(synthetic − real)² / Σ(real − mean real)² over the density's pixels: the share
    /// of the real band's variance the synthetic one reproduces (1 is perfect; it can be
    /// negative).
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub r2: f64,
    /// Mean of synthetic − real over the density's pixels.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub bias: f64,
}

/// The QA plots' numbers of one assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qa {
    /// The pixels of the densities, in words ("held-out clear pixels" or "clear pixels").
    pub density_pixels: String,
    pub range: [f32; 2],
    pub bands: Vec<BandQa>,
}

impl Qa {
    /// Whether the numbers have the shape this version draws (a file from another version, or
    /// edited, may not).
    pub fn check(&self) -> Result<(), String> {
        for b in &self.bands {
            if b.hist_real.len() != HIST_BINS || b.hist_synthetic.len() != HIST_BINS || b.density.len() != DENSITY_BINS * DENSITY_BINS {
                return Err(format!("band {}: histograms of {} and {} bins and a density of {} cells, not {HIST_BINS} and {}", b.band, b.hist_real.len(), b.hist_synthetic.len(), b.density.len(), DENSITY_BINS * DENSITY_BINS));
            }
        }
        if self.range.iter().any(|v| !v.is_finite()) || self.range[1] <= self.range[0] {
            return Err(format!("range {:?} is empty", self.range));
        }
        Ok(())
    }
}

fn bin(v: f32, bins: usize) -> usize {
    let t = (v - RANGE[0]) / (RANGE[1] - RANGE[0]);
    ((t * bins as f32).floor().max(0.0) as usize).min(bins - 1)
}

/// The sums of one band, added strip by strip.
#[derive(Debug, Clone)]
struct BandSums {
    hist_real: Vec<u64>,
    hist_synthetic: Vec<u64>,
    density: Vec<u64>,
    n: u64,
    sum_real: f64,
    sum_real_sq: f64,
    sum_err: f64,
    sum_err_sq: f64,
}

/// [`Qa`] added to strip by strip.
pub struct QaAcc {
    bands: Vec<(String, BandSums)>,
}

impl QaAcc {
    pub fn new(bands: &[String]) -> QaAcc {
        let sums = BandSums { hist_real: vec![0; HIST_BINS], hist_synthetic: vec![0; HIST_BINS], density: vec![0; DENSITY_BINS * DENSITY_BINS], n: 0, sum_real: 0.0, sum_real_sq: 0.0, sum_err: 0.0, sum_err_sq: 0.0 };
        QaAcc { bands: bands.iter().map(|b| (b.clone(), sums.clone())).collect() }
    }

    /// Adds one strip: per band, real and synthetic values (NaN where masked) and which pixels
    /// go into the densities (`keep`, e.g. the held-out ones).
    pub fn add(&mut self, real: &[Vec<f32>], synthetic: &[Vec<f32>], keep: &[bool]) {
        for ((_, s), (r, y)) in self.bands.iter_mut().zip(real.iter().zip(synthetic)) {
            for (i, (a, b)) in r.iter().zip(y).enumerate() {
                if !(a.is_finite() && b.is_finite()) {
                    continue;
                }
                s.hist_real[bin(*a, HIST_BINS)] += 1;
                s.hist_synthetic[bin(*b, HIST_BINS)] += 1;
                if !keep.get(i).copied().unwrap_or(true) {
                    continue;
                }
                s.density[bin(*a, DENSITY_BINS) * DENSITY_BINS + bin(*b, DENSITY_BINS)] += 1;
                let (a, b) = (*a as f64, *b as f64);
                s.n += 1;
                s.sum_real += a;
                s.sum_real_sq += a * a;
                s.sum_err += b - a;
                s.sum_err_sq += (b - a) * (b - a);
            }
        }
    }

    pub fn finish(self, density_pixels: &str) -> Qa {
        let bands = self
            .bands
            .into_iter()
            .map(|(band, s)| {
                let n = s.n as f64;
                let ss_tot = s.sum_real_sq - s.sum_real * s.sum_real / n.max(1.0);
                let r2 = if s.n < 2 || ss_tot <= 0.0 { f64::NAN } else { 1.0 - s.sum_err_sq / ss_tot };
                let bias = if s.n == 0 { f64::NAN } else { s.sum_err / n };
                BandQa { band, hist_real: s.hist_real, hist_synthetic: s.hist_synthetic, density: s.density, pixels: s.n, r2, bias }
            })
            .collect();
        Qa { density_pixels: density_pixels.into(), range: RANGE, bands }
    }
}

/// Synthetic − real per band (NaN where either is missing).
pub fn difference(real: &[f32], synthetic: &[f32]) -> Vec<f32> {
    real.iter().zip(synthetic).map(|(a, b)| if a.is_finite() && b.is_finite() { b - a } else { f32::NAN }).collect()
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_histograms_and_densities_follow_the_pixels() {
        let names = vec!["B04".to_string()];
        let mut acc = QaAcc::new(&names);
        let real: Vec<f32> = (0..100).map(|i| 0.005 * i as f32).collect();
        // A perfect copy but for one masked pixel and one pixel left out of the density.
        let mut synthetic = real.clone();
        synthetic[3] = f32::NAN;
        let mut keep = vec![true; 100];
        keep[10] = false;
        acc.add(std::slice::from_ref(&real), &[synthetic], &keep);
        let qa = acc.finish("clear pixels");
        let b = &qa.bands[0];
        assert_eq!(b.hist_real.iter().sum::<u64>(), 99);
        assert_eq!(b.hist_synthetic, b.hist_real);
        assert_eq!(b.pixels, 98);
        assert_eq!(b.density.iter().sum::<u64>(), 98);
        // Everything on the diagonal.
        let off: u64 = (0..DENSITY_BINS).flat_map(|r| (0..DENSITY_BINS).filter(move |c| *c != r).map(move |c| r * DENSITY_BINS + c)).map(|k| b.density[k]).sum();
        assert_eq!(off, 0);
        assert_eq!(b.r2, 1.0);
        assert_eq!(b.bias, 0.0);
        // A constant offset of 0.05 over values spread as 0..0.495: R² = 1 − 0.0025 / var.
        let mut acc = QaAcc::new(&names);
        let shifted: Vec<f32> = real.iter().map(|v| v + 0.05).collect();
        acc.add(std::slice::from_ref(&real), &[shifted], &[]);
        let b = &acc.finish("clear pixels").bands[0];
        let mean = real.iter().map(|v| *v as f64).sum::<f64>() / 100.0;
        let var = real.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / 100.0;
        assert!((b.r2 - (1.0 - 0.0025 / var)).abs() < 1e-4, "{} vs {}", b.r2, 1.0 - 0.0025 / var);
        assert!((b.bias - 0.05).abs() < 1e-6);
        // Out of range values fall in the end bins.
        assert_eq!(bin(-1.0, HIST_BINS), 0);
        assert_eq!(bin(5.0, HIST_BINS), HIST_BINS - 1);
        // A file of another shape is refused, not drawn.
        let mut qa = acc_finish_one();
        assert!(qa.check().is_ok());
        qa.bands[0].density.pop();
        assert!(qa.check().unwrap_err().contains("density of 4095 cells"));
    }

    fn acc_finish_one() -> Qa {
        let mut acc = QaAcc::new(&["B08".to_string()]);
        acc.add(&[vec![0.1, 0.2]], &[vec![0.1, 0.3]], &[]);
        acc.finish("clear pixels")
    }

    #[test]
    fn angles_and_differences() {
        let real = vec![vec![0.1f32, 0.1, f32::NAN], vec![0.0, 0.1, 0.2]];
        let synthetic = vec![vec![0.2f32, 0.1, 0.1], vec![0.0, 0.0, 0.2]];
        let (rr, ss): (Vec<&[f32]>, Vec<&[f32]>) = (real.iter().map(Vec::as_slice).collect(), synthetic.iter().map(Vec::as_slice).collect());
        let a: Vec<f32> = (0..3).map(|i| crate::indices::metrics::spectral_angle_deg(&rr, &ss, i).map_or(f32::NAN, |a| a as f32)).collect();
        assert!(a[0].abs() < 1e-4, "parallel spectra: {}", a[0]);
        assert!((a[1] - 45.0).abs() < 1e-3, "{}", a[1]);
        assert!(a[2].is_nan());
        let d = difference(&real[0], &synthetic[0]);
        assert!((d[0] - 0.1).abs() < 1e-7 && d[1] == 0.0 && d[2].is_nan());
    }
}
