//! Burn severity classes from dNBR, after the USGS / Key & Benson (2006) thresholds
//! (FIREMON Landscape Assessment, Table LA-4 as popularised by UN-SPIDER), configurable.

use serde::{Deserialize, Serialize};

/// Severity classes; the discriminant is the value written to the severity GeoTIFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Severity {
    NoData = 0,
    EnhancedRegrowthHigh = 1,
    EnhancedRegrowthLow = 2,
    Unburned = 3,
    Low = 4,
    ModerateLow = 5,
    ModerateHigh = 6,
    High = 7,
}

impl Severity {
    /// The classes with data, in order.
    pub const CLASSES: [Severity; 7] = [
        Severity::EnhancedRegrowthHigh,
        Severity::EnhancedRegrowthLow,
        Severity::Unburned,
        Severity::Low,
        Severity::ModerateLow,
        Severity::ModerateHigh,
        Severity::High,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Severity::NoData => "no data",
            Severity::EnhancedRegrowthHigh => "enhanced regrowth, high",
            Severity::EnhancedRegrowthLow => "enhanced regrowth, low",
            Severity::Unburned => "unburned",
            Severity::Low => "low severity",
            Severity::ModerateLow => "moderate-low severity",
            Severity::ModerateHigh => "moderate-high severity",
            Severity::High => "high severity",
        }
    }

    /// The classes with data as a class map's table: (code, colour, label).
    pub fn palette() -> Vec<(u8, [u8; 3], &'static str)> {
        Severity::CLASSES.iter().map(|c| (*c as u8, c.color(), c.label())).collect()
    }

    /// The usual USGS/UN-SPIDER colours (RGB).
    pub fn color(self) -> [u8; 3] {
        match self {
            Severity::NoData => [255, 255, 255],
            Severity::EnhancedRegrowthHigh => [122, 135, 55],
            Severity::EnhancedRegrowthLow => [172, 190, 77],
            Severity::Unburned => [10, 224, 66],
            Severity::Low => [255, 248, 27],
            Severity::ModerateLow => [255, 165, 31],
            Severity::ModerateHigh => [255, 51, 45],
            Severity::High => [167, 31, 208],
        }
    }

    pub fn from_code(code: u8) -> Severity {
        match code {
            1 => Severity::EnhancedRegrowthHigh,
            2 => Severity::EnhancedRegrowthLow,
            3 => Severity::Unburned,
            4 => Severity::Low,
            5 => Severity::ModerateLow,
            6 => Severity::ModerateHigh,
            7 => Severity::High,
            _ => Severity::NoData,
        }
    }
}

/// dNBR class boundaries. A value equal to a boundary belongs to the class above it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityThresholds {
    /// Below this: enhanced regrowth, high (-0.25).
    pub regrowth_high_below: f32,
    /// Below this: enhanced regrowth, low (-0.1).
    pub regrowth_low_below: f32,
    /// From this: low severity (0.1); between the regrowth bound and this: unburned.
    pub low_from: f32,
    /// From this: moderate-low (0.27).
    pub moderate_low_from: f32,
    /// From this: moderate-high (0.44).
    pub moderate_high_from: f32,
    /// From this: high (0.66).
    pub high_from: f32,
    /// The least severe class counted as burned (low by default).
    pub burned_from: Severity,
}

impl Default for SeverityThresholds {
    fn default() -> Self {
        SeverityThresholds {
            regrowth_high_below: -0.25,
            regrowth_low_below: -0.1,
            low_from: 0.1,
            moderate_low_from: 0.27,
            moderate_high_from: 0.44,
            high_from: 0.66,
            burned_from: Severity::Low,
        }
    }
}

impl SeverityThresholds {
    /// Checks that the bounds increase.
    pub fn validate(&self) -> Result<(), String> {
        let b = [self.regrowth_high_below, self.regrowth_low_below, self.low_from, self.moderate_low_from, self.moderate_high_from, self.high_from];
        if b.windows(2).all(|w| w[0] < w[1]) && b.iter().all(|v| v.is_finite()) {
            Ok(())
        } else {
            Err(format!("severity thresholds must increase strictly, got {b:?}"))
        }
    }

    pub fn classify(&self, dnbr: f32) -> Severity {
        if !dnbr.is_finite() {
            Severity::NoData
        } else if dnbr < self.regrowth_high_below {
            Severity::EnhancedRegrowthHigh
        } else if dnbr < self.regrowth_low_below {
            Severity::EnhancedRegrowthLow
        } else if dnbr < self.low_from {
            Severity::Unburned
        } else if dnbr < self.moderate_low_from {
            Severity::Low
        } else if dnbr < self.moderate_high_from {
            Severity::ModerateLow
        } else if dnbr < self.high_from {
            Severity::ModerateHigh
        } else {
            Severity::High
        }
    }

    pub fn is_burned(&self, s: Severity) -> bool {
        s != Severity::NoData && s >= self.burned_from
    }

    /// Classes of a dNBR raster.
    pub fn classify_all(&self, dnbr: &[f32]) -> Vec<Severity> {
        dnbr.iter().map(|v| self.classify(*v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_boundary_falls_in_the_class_above() {
        let t = SeverityThresholds::default();
        let cases = [
            (-0.2501, Severity::EnhancedRegrowthHigh),
            (-0.25, Severity::EnhancedRegrowthLow),
            (-0.1001, Severity::EnhancedRegrowthLow),
            (-0.1, Severity::Unburned),
            (0.0999, Severity::Unburned),
            (0.1, Severity::Low),
            (0.2699, Severity::Low),
            (0.27, Severity::ModerateLow),
            (0.4399, Severity::ModerateLow),
            (0.44, Severity::ModerateHigh),
            (0.6599, Severity::ModerateHigh),
            (0.66, Severity::High),
            (1.3, Severity::High),
            (f32::NAN, Severity::NoData),
        ];
        for (v, expected) in cases {
            assert_eq!(t.classify(v), expected, "dNBR {v}");
        }
        assert!(t.is_burned(Severity::Low) && !t.is_burned(Severity::Unburned) && !t.is_burned(Severity::NoData));
        let strict = SeverityThresholds { burned_from: Severity::ModerateLow, ..t };
        assert!(!strict.is_burned(Severity::Low));
    }

    #[test]
    fn thresholds_must_increase() {
        assert!(SeverityThresholds::default().validate().is_ok());
        let bad = SeverityThresholds { low_from: 0.5, ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("increase"));
    }
}
