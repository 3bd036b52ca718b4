//! Agreement between two classified maps of the same grid (the burned-area map from the real
//! post-fire image, taken as reference, and from the synthetic one): confusion matrices, overall
//! accuracy, Cohen's kappa, F1 (Dice), IoU, commission and omission errors, burned area.

use serde::{Deserialize, Serialize};

use crate::indices::severity::{NO_DATA, SeverityScheme};

/// Counts of (reference class, mapped class) pairs: `counts[reference][mapped]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub labels: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    pub fn new(labels: Vec<String>) -> Self {
        let n = labels.len();
        ConfusionMatrix { labels, counts: vec![vec![0; n]; n] }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Fraction of pixels on the diagonal.
    pub fn overall_accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return f64::NAN;
        }
        (0..self.counts.len()).map(|i| self.counts[i][i]).sum::<u64>() as f64 / total as f64
    }

    /// Cohen's kappa (Cohen 1960): (p_o - p_e) / (1 - p_e). When chance agreement is already
    /// total (one class in both maps) kappa is 1 for perfect agreement, else 0.
    pub fn kappa(&self) -> f64 {
        let total = self.total() as f64;
        if total == 0.0 {
            return f64::NAN;
        }
        let n = self.counts.len();
        let po = self.overall_accuracy();
        let pe: f64 = (0..n)
            .map(|i| {
                let row: u64 = self.counts[i].iter().sum();
                let col: u64 = self.counts.iter().map(|r| r[i]).sum();
                (row as f64 / total) * (col as f64 / total)
            })
            .sum();
        if (1.0 - pe).abs() < 1e-12 {
            return if (po - 1.0).abs() < 1e-12 { 1.0 } else { 0.0 };
        }
        (po - pe) / (1.0 - pe)
    }
}

/// Burned / unburned agreement, the synthetic map judged against the real one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurnedAgreement {
    pub true_positive: u64,
    pub false_positive: u64,
    pub false_negative: u64,
    pub true_negative: u64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub overall_accuracy: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub kappa: f64,
    /// F1 score, equal to the Dice coefficient.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub f1: f64,
    /// Intersection over union of the burned areas (Jaccard).
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub iou: f64,
    /// Fraction of the synthetic burned area that is not burned in the real map.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub commission_error: f64,
    /// Fraction of the real burned area that the synthetic map misses.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub omission_error: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub burned_ha_real: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub burned_ha_synthetic: f64,
    /// Pixels compared (valid in both maps).
    pub pixels: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { f64::NAN } else { a as f64 / b as f64 }
}

/// Burned / unburned pair counts, added to strip by strip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BurnedCounts {
    pub true_positive: u64,
    pub false_positive: u64,
    pub false_negative: u64,
    pub true_negative: u64,
}

impl BurnedCounts {
    /// Adds the pixels valid in both maps.
    pub fn add(&mut self, real: &[u8], synthetic: &[u8], thresholds: &SeverityScheme) {
        let burned = thresholds.burned_codes();
        for (r, s) in real.iter().zip(synthetic) {
            if *r == NO_DATA || *s == NO_DATA {
                continue;
            }
            match (burned.contains(*r), burned.contains(*s)) {
                (true, true) => self.true_positive += 1,
                (false, true) => self.false_positive += 1,
                (true, false) => self.false_negative += 1,
                (false, false) => self.true_negative += 1,
            }
        }
    }

    /// Adds the pixels where `map` has data, judged against a reference (1 = inside the
    /// official perimeter): the reference takes the place of the real map.
    pub fn add_reference(&mut self, reference: &[u8], map: &[u8], thresholds: &SeverityScheme) {
        let burned = thresholds.burned_codes();
        for (r, s) in reference.iter().zip(map) {
            if *s == NO_DATA {
                continue;
            }
            match (*r != 0, burned.contains(*s)) {
                (true, true) => self.true_positive += 1,
                (false, true) => self.false_positive += 1,
                (true, false) => self.false_negative += 1,
                (false, false) => self.true_negative += 1,
            }
        }
    }

    pub fn agreement(&self, pixel_area_m2: f64) -> BurnedAgreement {
        let (tp, fp, fn_, tn) = (self.true_positive, self.false_positive, self.false_negative, self.true_negative);
        let mut m = ConfusionMatrix::new(vec!["unburned".into(), "burned".into()]);
        m.counts = vec![vec![tn, fp], vec![fn_, tp]];
        let ha = pixel_area_m2 / 10_000.0;
        BurnedAgreement {
            true_positive: tp,
            false_positive: fp,
            false_negative: fn_,
            true_negative: tn,
            overall_accuracy: m.overall_accuracy(),
            kappa: m.kappa(),
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
            iou: ratio(tp, tp + fp + fn_),
            commission_error: ratio(fp, tp + fp),
            omission_error: ratio(fn_, tp + fn_),
            burned_ha_real: (tp + fn_) as f64 * ha,
            burned_ha_synthetic: (tp + fp) as f64 * ha,
            pixels: tp + fp + fn_ + tn,
        }
    }
}

/// Compares burned masks derived from two severity maps, on pixels valid in both.
pub fn burned_agreement(real: &[u8], synthetic: &[u8], thresholds: &SeverityScheme, pixel_area_m2: f64) -> BurnedAgreement {
    let mut counts = BurnedCounts::default();
    counts.add(real, synthetic, thresholds);
    counts.agreement(pixel_area_m2)
}

/// An empty confusion matrix over a scheme's classes.
pub fn severity_matrix(scheme: &SeverityScheme) -> ConfusionMatrix {
    ConfusionMatrix::new(scheme.classes.iter().map(|c| c.name.clone()).collect())
}

/// Adds (real, synthetic) class pairs valid in both maps to a [`severity_matrix`] of the scheme.
pub fn add_severity_pairs(m: &mut ConfusionMatrix, scheme: &SeverityScheme, real: &[u8], synthetic: &[u8]) {
    let mut index = [usize::MAX; 256];
    for (i, c) in scheme.classes.iter().enumerate() {
        index[c.code as usize] = i;
    }
    for (r, s) in real.iter().zip(synthetic) {
        let (i, j) = (index[*r as usize], index[*s as usize]);
        if i != usize::MAX && j != usize::MAX {
            m.counts[i][j] += 1;
        }
    }
}

/// Confusion matrix over a scheme's classes (pixels valid in both maps).
pub fn severity_confusion(scheme: &SeverityScheme, real: &[u8], synthetic: &[u8]) -> ConfusionMatrix {
    let mut m = severity_matrix(scheme);
    add_severity_pairs(&mut m, scheme, real, synthetic);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_kappa() {
        // Cohen's example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> p_o 0.7, p_e 0.5, kappa 0.4.
        let mut m = ConfusionMatrix::new(vec!["yes".into(), "no".into()]);
        m.counts = vec![vec![20, 5], vec![10, 15]];
        assert!((m.overall_accuracy() - 0.7).abs() < 1e-12);
        assert!((m.kappa() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn burned_counts_and_errors() {
        let t = SeverityScheme::usgs();
        let (high, low, unburned, moderate_low) = (7, 4, 3, 5);
        let real = [high, low, unburned, unburned, moderate_low, NO_DATA];
        let synth = [high, unburned, low, unburned, high, high];
        let a = burned_agreement(&real, &synth, &t, 100.0);
        assert_eq!((a.true_positive, a.false_positive, a.false_negative, a.true_negative), (2, 1, 1, 1));
        assert_eq!(a.pixels, 5);
        assert!((a.f1 - 4.0 / 6.0).abs() < 1e-12);
        assert!((a.iou - 0.5).abs() < 1e-12);
        assert!((a.commission_error - 1.0 / 3.0).abs() < 1e-12);
        assert!((a.omission_error - 1.0 / 3.0).abs() < 1e-12);
        assert!((a.burned_ha_real - 0.03).abs() < 1e-12);
        let same = burned_agreement(&real, &real, &t, 100.0);
        assert_eq!(same.kappa, 1.0);
        let m = severity_confusion(&t, &real, &synth);
        assert_eq!(m.total(), 5);
        assert_eq!(m.counts[6][6], 1);
    }
}
