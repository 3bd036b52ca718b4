//! Sentinel-1 calibration and noise annotation XML: parsing never panics, and neither does
//! looking a value up anywhere on (and off) the image.
#![no_main]
use libfuzzer_sys::fuzz_target;
use s2cr::preprocess::s1::{Calibration, Noise};
use std::path::Path;

const PLACES: [(f64, f64); 6] = [(0.0, 0.0), (-1.0, -1.0), (100.5, 2000.25), (1e9, 1e9), (f64::NAN, 3.0), (16000.0, 25000.0)];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = Calibration::parse(text, Path::new("calibration.xml")) {
        for (line, pixel) in PLACES {
            let _ = (c.sigma0.at(line, pixel), c.beta0.at(line, pixel), c.gamma0.at(line, pixel));
        }
    }
    if let Ok(n) = Noise::parse(text, Path::new("noise.xml")) {
        for (line, pixel) in PLACES {
            let _ = n.at(line, pixel);
        }
    }
});
