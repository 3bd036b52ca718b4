//! Sentinel-1 radiometry: calibration of GRD digital numbers to sigma0 / beta0 / gamma0 with the
//! product's calibration look-up tables, thermal noise removal with its noise vectors, and
//! decibels. The speckle filters on linear power are in [`super::speckle`] (re-exported here).
//!
//! Works on arrays; reading the SAFE's rasters and warping onto the project grid are elsewhere.

use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};

/// Which backscatter coefficient to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coefficient {
    Sigma0,
    Beta0,
    Gamma0,
}

/// A look-up table sampled on a sparse grid: for each listed line, values at listed pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseLut {
    pub lines: Vec<f64>,
    /// Per line: the pixel positions and the values there.
    pub pixels: Vec<Vec<f64>>,
    pub values: Vec<Vec<f64>>,
}

/// Linear interpolation of `ys` at `x` on increasing `xs`, clamped at the ends (over the
/// pairs there are, should the two lists differ in length).
fn interp1(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    match n {
        0 => f64::NAN,
        1 => ys[0],
        n => {
            let i = xs.partition_point(|v| *v <= x).clamp(1, n - 1);
            let (x0, x1) = (xs[i - 1], xs[i]);
            let t = if x1 > x0 { ((x - x0) / (x1 - x0)).clamp(0.0, 1.0) } else { 0.0 };
            ys[i - 1] + t * (ys[i] - ys[i - 1])
        }
    }
}

impl SparseLut {
    /// Bilinear interpolation at (line, pixel): along pixels on the two bracketing lines, then
    /// between them (ESA, "Radiometric Calibration of S-1 Level-1 Products", ESA-EOPG-CSCOP-TN-0002).
    pub fn at(&self, line: f64, pixel: f64) -> f64 {
        let n = self.lines.len();
        if n == 0 {
            return f64::NAN;
        }
        if n == 1 {
            return interp1(&self.pixels[0], &self.values[0], pixel);
        }
        let i = self.lines.partition_point(|v| *v <= line).clamp(1, n - 1);
        let (l0, l1) = (self.lines[i - 1], self.lines[i]);
        let v0 = interp1(&self.pixels[i - 1], &self.values[i - 1], pixel);
        let v1 = interp1(&self.pixels[i], &self.values[i], pixel);
        let t = if l1 > l0 { ((line - l0) / (l1 - l0)).clamp(0.0, 1.0) } else { 0.0 };
        v0 + t * (v1 - v0)
    }
}

fn numbers(node: roxmltree::Node, path: &Path, what: &str) -> Result<Vec<f64>> {
    node.text()
        .unwrap_or("")
        .split_whitespace()
        .map(|t| t.parse::<f64>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Project { path: path.to_path_buf(), message: format!("{what}: not a list of numbers: {e}") })
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| c.has_tag_name(name))
}

fn parse_doc<'i>(text: &'i str, path: &Path) -> Result<roxmltree::Document<'i>> {
    roxmltree::Document::parse(text).map_err(|e| Error::Project { path: path.to_path_buf(), message: format!("not valid XML: {e}") })
}

/// Reads every `<vector_tag>` under the root: its `<line>`, `<pixel>` and `<value_tag>`.
fn sparse_lut(doc: &roxmltree::Document, path: &Path, vector_tag: &str, value_tag: &str) -> Result<SparseLut> {
    let mut lut = SparseLut { lines: Vec::new(), pixels: Vec::new(), values: Vec::new() };
    for v in doc.descendants().filter(|n| n.has_tag_name(vector_tag)) {
        let missing = |what: &str| Error::Project { path: path.to_path_buf(), message: format!("a <{vector_tag}> has no <{what}>") };
        let line = child(v, "line").ok_or_else(|| missing("line"))?;
        let line: f64 = line.text().unwrap_or("").trim().parse().map_err(|_| missing("line number"))?;
        let pixels = numbers(child(v, "pixel").ok_or_else(|| missing("pixel"))?, path, "pixel")?;
        let values = numbers(child(v, value_tag).ok_or_else(|| missing(value_tag))?, path, value_tag)?;
        if pixels.len() != values.len() {
            return Err(Error::Project {
                path: path.to_path_buf(),
                message: format!("line {line}: {} pixels but {} {value_tag} values", pixels.len(), values.len()),
            });
        }
        lut.lines.push(line);
        lut.pixels.push(pixels);
        lut.values.push(values);
    }
    if lut.lines.is_empty() {
        return Err(Error::Project { path: path.to_path_buf(), message: format!("no <{vector_tag}> found; is this a Sentinel-1 annotation file?") });
    }
    Ok(lut)
}

/// The calibration LUTs of one polarisation (annotation/calibration/calibration-*.xml).
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub polarisation: String,
    pub sigma0: SparseLut,
    pub beta0: SparseLut,
    pub gamma0: SparseLut,
}

impl Calibration {
    pub fn parse(text: &str, path: &Path) -> Result<Calibration> {
        let doc = parse_doc(text, path)?;
        let polarisation = doc.descendants().find(|n| n.has_tag_name("polarisation")).and_then(|n| n.text()).unwrap_or("").to_string();
        Ok(Calibration {
            polarisation,
            sigma0: sparse_lut(&doc, path, "calibrationVector", "sigmaNought")?,
            beta0: sparse_lut(&doc, path, "calibrationVector", "betaNought")?,
            gamma0: sparse_lut(&doc, path, "calibrationVector", "gamma")?,
        })
    }

    pub fn load(path: &Path) -> Result<Calibration> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path, "reading the calibration annotation"))?;
        Calibration::parse(&text, path)
    }

    pub fn lut(&self, c: Coefficient) -> &SparseLut {
        match c {
            Coefficient::Sigma0 => &self.sigma0,
            Coefficient::Beta0 => &self.beta0,
            Coefficient::Gamma0 => &self.gamma0,
        }
    }
}

/// A block of the noise azimuth profile: one swath's lines and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct AzimuthBlock {
    pub first_line: f64,
    pub last_line: f64,
    pub first_sample: f64,
    pub last_sample: f64,
    pub lines: Vec<f64>,
    pub values: Vec<f64>,
}

/// Thermal noise vectors (annotation/calibration/noise-*.xml): a range LUT on sparse lines and,
/// since IPF 2.9, an azimuth profile per swath block; the noise is their product (ESA,
/// "Thermal Denoising of Products Generated by the S-1 IPF", MPC-0392).
#[derive(Debug, Clone, PartialEq)]
pub struct Noise {
    pub range: SparseLut,
    pub azimuth: Vec<AzimuthBlock>,
}

impl Noise {
    pub fn parse(text: &str, path: &Path) -> Result<Noise> {
        let doc = parse_doc(text, path)?;
        let range = sparse_lut(&doc, path, "noiseRangeVector", "noiseRangeLut")?;
        let mut azimuth = Vec::new();
        for v in doc.descendants().filter(|n| n.has_tag_name("noiseAzimuthVector")) {
            let num = |name: &str| -> Result<f64> {
                child(v, name).and_then(|n| n.text()).and_then(|t| t.trim().parse().ok()).ok_or_else(|| Error::Project {
                    path: path.to_path_buf(),
                    message: format!("a <noiseAzimuthVector> has no <{name}>"),
                })
            };
            let lines = numbers(child(v, "line").ok_or_else(|| Error::Project { path: path.to_path_buf(), message: "<noiseAzimuthVector> without <line>".into() })?, path, "line")?;
            let values = numbers(
                child(v, "noiseAzimuthLut").ok_or_else(|| Error::Project { path: path.to_path_buf(), message: "<noiseAzimuthVector> without <noiseAzimuthLut>".into() })?,
                path,
                "noiseAzimuthLut",
            )?;
            if lines.len() != values.len() {
                return Err(Error::Project {
                    path: path.to_path_buf(),
                    message: format!("a <noiseAzimuthVector> has {} lines but {} noiseAzimuthLut values", lines.len(), values.len()),
                });
            }
            azimuth.push(AzimuthBlock {
                first_line: num("firstAzimuthLine")?,
                last_line: num("lastAzimuthLine")?,
                first_sample: num("firstRangeSample")?,
                last_sample: num("lastRangeSample")?,
                lines,
                values,
            });
        }
        Ok(Noise { range, azimuth })
    }

    pub fn load(path: &Path) -> Result<Noise> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path, "reading the noise annotation"))?;
        Noise::parse(&text, path)
    }

    /// Noise power at (line, pixel), in DN^2.
    pub fn at(&self, line: f64, pixel: f64) -> f64 {
        let range = self.range.at(line, pixel);
        let azimuth = self
            .azimuth
            .iter()
            .find(|b| line >= b.first_line && line <= b.last_line && pixel >= b.first_sample && pixel <= b.last_sample)
            .map(|b| interp1(&b.lines, &b.values, line))
            .unwrap_or(1.0);
        range * azimuth
    }
}

/// Calibrates a window of GRD digital numbers to linear backscatter:
/// value = (DN^2 - noise) / A^2, with A the LUT of `coefficient` (noise removal when `noise` is
/// given; negative results, where noise exceeds signal, become 0). `origin` is the window's
/// (pixel, line) offset in the full image. DN 0 is no data and gives NaN.
pub fn calibrate(
    dn: &[f32],
    width: usize,
    origin: (usize, usize),
    calibration: &Calibration,
    coefficient: Coefficient,
    noise: Option<&Noise>,
) -> Vec<f32> {
    let lut = calibration.lut(coefficient);
    dn.par_chunks(width)
        .enumerate()
        .flat_map_iter(|(row, values)| {
            let line = (origin.1 + row) as f64;
            values.iter().enumerate().map(move |(col, v)| {
                if *v == 0.0 || !v.is_finite() {
                    return f32::NAN;
                }
                let pixel = (origin.0 + col) as f64;
                let a = lut.at(line, pixel);
                let power = (*v as f64) * (*v as f64) - noise.map(|n| n.at(line, pixel)).unwrap_or(0.0);
                (power.max(0.0) / (a * a)) as f32
            })
        })
        .collect()
}

/// Smallest linear value turned into decibels; 0 and below become this (-50 dB).
pub const DB_FLOOR_LINEAR: f32 = 1e-5;

/// 10 log10(v), with values <= 0 floored at [`DB_FLOOR_LINEAR`]; NaN stays NaN.
pub fn to_db(values: &[f32]) -> Vec<f32> {
    values.iter().map(|v| if v.is_nan() { f32::NAN } else { 10.0 * v.max(DB_FLOOR_LINEAR).log10() }).collect()
}

pub fn from_db(values: &[f32]) -> Vec<f32> {
    values.iter().map(|v| 10f32.powf(v / 10.0)).collect()
}

pub use super::speckle::{boxcar, equivalent_number_of_looks, lee, refined_lee, speckle_filter, SpeckleFilter};

#[cfg(test)]
mod tests {
    use super::*;
    /// Found by fuzzing (fuzz/fuzz_targets/s1_xml.rs): an azimuth vector with 24 lines but 9
    /// values made the noise look-up index past its values.
    #[test]
    fn an_azimuth_vector_with_fewer_values_than_lines_is_refused_and_never_panics() {
        let xml = |values: &str| {
            format!(
                "<noise><noiseRangeVectorList count=\"1\"><noiseRangeVector><line>0</line><pixel>0 40</pixel><noiseRangeLut>2375.7 2330.8</noiseRangeLut></noiseRangeVector></noiseRangeVectorList>\
                 <noiseAzimuthVectorList count=\"1\"><noiseAzimuthVector><firstAzimuthLine>0</firstAzimuthLine><firstRangeSample>0</firstRangeSample>\
                 <lastAzimuthLine>16704</lastAzimuthLine><lastRangeSample>8889</lastRangeSample><line>0 10 20 30</line><noiseAzimuthLut>{values}</noiseAzimuthLut>\
                 </noiseAzimuthVector></noiseAzimuthVectorList></noise>"
            )
        };
        let err = Noise::parse(&xml("1.09 1.10"), Path::new("noise.xml")).unwrap_err().to_string();
        assert!(err.contains("noise.xml") && err.contains("4 lines but 2 noiseAzimuthLut values"), "{err}");
        let ok = Noise::parse(&xml("1.0 1.0 2.0 2.0"), Path::new("noise.xml")).unwrap();
        assert!((ok.at(25.0, 20.0) - 2353.25 * 2.0).abs() < 1e-6, "{}", ok.at(25.0, 20.0));
        // Lists of different lengths (as a caller could build them) interpolate over the pairs there are.
        assert_eq!(interp1(&[0.0, 10.0, 20.0], &[1.0, 2.0], 15.0), 2.0);
    }

    #[test]
    fn lut_interpolation_is_bilinear() {
        let lut = SparseLut { lines: vec![0.0, 10.0], pixels: vec![vec![0.0, 100.0], vec![0.0, 100.0]], values: vec![vec![1.0, 3.0], vec![5.0, 7.0]] };
        assert_eq!(lut.at(0.0, 50.0), 2.0);
        assert_eq!(lut.at(5.0, 50.0), 4.0);
        assert_eq!(lut.at(10.0, 100.0), 7.0);
        assert_eq!(lut.at(20.0, 200.0), 7.0, "clamped outside");
    }

    #[test]
    fn db_round_trip_and_floor() {
        let v = [1.0f32, 0.1, 0.012345, 0.0, -1.0, f32::NAN];
        let db = to_db(&v);
        assert_eq!(db[0], 0.0);
        assert!((db[1] + 10.0).abs() < 1e-5);
        assert_eq!(db[3], -50.0);
        assert_eq!(db[4], -50.0);
        assert!(db[5].is_nan());
        let back = from_db(&db[..3]);
        for (a, b) in back.iter().zip(&v[..3]) {
            assert!((a - b).abs() / b < 1e-5, "{a} vs {b}");
        }
    }
}
