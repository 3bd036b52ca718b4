//! Is the synthetic image's uncertainty honest? With Monte-Carlo dropout (`s2cr infer
//! --samples K`) inference writes a standard deviation per band and a burn probability; the
//! assessment checks them against the real image where it is clear (over the held-out blocks
//! when the project has them): the correlation between predicted standard deviation and actual
//! absolute error per band, the share of real values inside mean ± 2 sd, the mean error by
//! bins of predicted standard deviation (with pixel counts), and a reliability table for the
//! burn probability (bins of predicted probability against the burned share the real map shows).

use serde::{Deserialize, Serialize};

/// Edges of the standard-deviation bins (reflectance).
pub const SD_EDGES: [f64; 8] = [0.0, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, f64::INFINITY];
/// Burn-probability bins: tenths.
pub const PROB_BINS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandUncertainty {
    pub band: String,
    pub pixels: u64,
    /// Pearson correlation of predicted sd with |synthetic - real|.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub correlation: f64,
    /// Share of real values within mean ± 2 sd.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub within_2sd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdBin {
    pub sd_from: f64,
    /// `null` for the last, open bin.
    pub sd_to: Option<f64>,
    pub pixels: u64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub mean_abs_error: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub p_from: f64,
    pub p_to: f64,
    pub pixels: u64,
    /// Mean predicted probability in the bin.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub predicted: f64,
    /// Share of those pixels the real map calls burned.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub observed: f64,
}

/// The check, as the report gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UncertaintyCheck {
    /// Which pixels: "held-out clear pixels" or "clear pixels".
    pub scope: String,
    pub bands: Vec<BandUncertainty>,
    /// Error by predicted sd, over the bands together.
    pub sd_bins: Vec<SdBin>,
    /// Empty without a burn probability raster.
    pub reliability: Vec<ReliabilityBin>,
    /// How the burn probability checked was found (inference's share of passes, or the
    /// probability of the assessment's classes after the offset from the passes' dNBR).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub probability: String,
}

/// The probability that a dNBR of mean `mean` and standard deviation `sd` (a normal
/// approximation of the passes' or draws' dNBR) is `bound` or more: a step where `sd` is 0, NaN
/// where the mean is not finite. erfc after Numerical Recipes' `erfcc` (fractional error under
/// 1.2e-7).
pub fn exceedance(mean: f32, sd: f32, bound: f32) -> f32 {
    if !mean.is_finite() {
        return f32::NAN;
    }
    if !(sd > 0.0) || !sd.is_finite() {
        return if mean >= bound { 1.0 } else { 0.0 };
    }
    let x = (bound as f64 - mean as f64) / (sd as f64 * std::f64::consts::SQRT_2);
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68 + t * (0.374_091_96 + t * (0.096_784_18 + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    (0.5 * erfc) as f32
}

#[derive(Debug, Clone, Copy, Default)]
struct Pearson {
    n: u64,
    sx: f64,
    sy: f64,
    sxx: f64,
    syy: f64,
    sxy: f64,
    within: u64,
}

impl Pearson {
    fn r(&self) -> f64 {
        let n = self.n as f64;
        let cov = self.sxy - self.sx * self.sy / n;
        let vx = self.sxx - self.sx * self.sx / n;
        let vy = self.syy - self.sy * self.sy / n;
        if self.n < 2 || vx <= 0.0 || vy <= 0.0 { f64::NAN } else { cov / (vx * vy).sqrt() }
    }
}

/// Sums added strip by strip.
#[derive(Debug, Clone)]
pub struct UncertaintyAcc {
    bands: Vec<Pearson>,
    sd_bins: Vec<(u64, f64)>,
    /// Per probability bin: pixels, sum of predicted probabilities, burned in the real map.
    prob_bins: Vec<(u64, f64, u64)>,
    has_probability: bool,
}

impl UncertaintyAcc {
    pub fn new(bands: usize, has_probability: bool) -> UncertaintyAcc {
        UncertaintyAcc { bands: vec![Pearson::default(); bands], sd_bins: vec![(0, 0.0); SD_EDGES.len() - 1], prob_bins: vec![(0, 0.0, 0); PROB_BINS], has_probability }
    }

    /// Adds one band's pixels: real, synthetic (mean) and predicted sd, where `keep` (all
    /// of them when `keep` is empty).
    pub fn add_band(&mut self, band: usize, real: &[f32], synthetic: &[f32], sd: &[f32], keep: &[bool]) {
        let p = &mut self.bands[band];
        for i in 0..real.len() {
            let (r, s, d) = (real[i] as f64, synthetic[i] as f64, sd[i] as f64);
            if !keep.get(i).copied().unwrap_or(true) || !r.is_finite() || !s.is_finite() || !d.is_finite() {
                continue;
            }
            let err = (s - r).abs();
            p.n += 1;
            p.sx += d;
            p.sy += err;
            p.sxx += d * d;
            p.syy += err * err;
            p.sxy += d * err;
            if err <= 2.0 * d {
                p.within += 1;
            }
            let bin = SD_EDGES.windows(2).position(|e| d >= e[0] && d < e[1]).unwrap_or(SD_EDGES.len() - 2);
            self.sd_bins[bin].0 += 1;
            self.sd_bins[bin].1 += err;
        }
    }

    /// Adds burn probabilities against the real map (`burned`: Some(true/false) where it has
    /// data), where `keep` (all of them when `keep` is empty).
    pub fn add_probability(&mut self, probability: &[f32], burned: &[Option<bool>], keep: &[bool]) {
        for i in 0..probability.len() {
            let (p, Some(b)) = (probability[i] as f64, burned[i]) else { continue };
            if !keep.get(i).copied().unwrap_or(true) || !p.is_finite() {
                continue;
            }
            let bin = ((p * PROB_BINS as f64) as usize).min(PROB_BINS - 1);
            let e = &mut self.prob_bins[bin];
            e.0 += 1;
            e.1 += p;
            e.2 += b as u64;
        }
    }

    pub fn finish(&self, names: &[String], scope: &str) -> UncertaintyCheck {
        let ratio = |a: f64, b: u64| if b == 0 { f64::NAN } else { a / b as f64 };
        UncertaintyCheck {
            scope: scope.to_string(),
            bands: self
                .bands
                .iter()
                .zip(names)
                .map(|(p, n)| BandUncertainty { band: n.clone(), pixels: p.n, correlation: p.r(), within_2sd: ratio(p.within as f64, p.n) })
                .collect(),
            sd_bins: self
                .sd_bins
                .iter()
                .enumerate()
                .map(|(i, (n, e))| SdBin { sd_from: SD_EDGES[i], sd_to: SD_EDGES[i + 1].is_finite().then_some(SD_EDGES[i + 1]), pixels: *n, mean_abs_error: ratio(*e, *n) })
                .collect(),
            reliability: if self.has_probability {
                self.prob_bins
                    .iter()
                    .enumerate()
                    .map(|(i, (n, sp, burned))| ReliabilityBin {
                        p_from: i as f64 / PROB_BINS as f64,
                        p_to: (i + 1) as f64 / PROB_BINS as f64,
                        pixels: *n,
                        predicted: ratio(*sp, *n),
                        observed: ratio(*burned as f64, *n),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            probability: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_coverage_and_reliability_by_hand() {
        let mut acc = UncertaintyAcc::new(1, true);
        // Errors 0.01, 0.02, 0.03 with sd 0.005, 0.01, 0.015: perfectly correlated; the third
        // error exceeds 2 sd (0.03 > 0.03 is false: inside), a fourth pixel masked out.
        let real = [0.1f32, 0.2, 0.3, 0.4];
        let synth = [0.11f32, 0.22, 0.33, 0.9];
        let sd = [0.005f32, 0.01, 0.015, 0.001];
        acc.add_band(0, &real, &synth, &sd, &[true, true, true, false]);
        let c = acc.finish(&["B08".into()], "clear pixels");
        assert!((c.bands[0].correlation - 1.0).abs() < 1e-4, "{:?}", c.bands[0]);
        assert_eq!(c.bands[0].pixels, 3);
        assert!(c.bands[0].within_2sd > 0.6);
        assert_eq!(c.sd_bins.iter().map(|b| b.pixels).sum::<u64>(), 3);
        acc.add_probability(&[0.05, 0.95, 0.97, 0.5], &[Some(false), Some(true), Some(false), None], &[true; 4]);
        let c = acc.finish(&["B08".into()], "clear pixels");
        let top = c.reliability.last().unwrap();
        assert_eq!((top.pixels, top.observed), (2, 0.5));
        assert!((top.predicted - 0.96).abs() < 1e-6);
        assert_eq!(c.reliability[0].observed, 0.0);
        assert_eq!(c.reliability.iter().map(|b| b.pixels).sum::<u64>(), 3, "no real data: not counted");
    }

    #[test]
    fn the_normal_exceedance_against_tabled_values() {
        // 1 - Phi(z) for z = 0, 1, 1.96, -1.645 (tables), as (bound - mean) / sd.
        for (z, p) in [(0.0f32, 0.5f32), (1.0, 0.158_655_25), (1.96, 0.024_997_9), (-1.645, 0.950_015_3)] {
            let got = exceedance(0.2, 0.05, 0.2 + z * 0.05);
            assert!((got - p).abs() < 2e-6, "z {z}: {got} vs {p}");
        }
        assert_eq!((exceedance(0.3, 0.0, 0.1), exceedance(0.05, 0.0, 0.1)), (1.0, 0.0));
        assert!(exceedance(f32::NAN, 0.1, 0.1).is_nan());
    }
}
