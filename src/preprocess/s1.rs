//! Sentinel-1 radiometry: calibration of GRD digital numbers to sigma0 / beta0 / gamma0 with the
//! product's calibration look-up tables, thermal noise removal with its noise vectors, speckle
//! filters on linear power (boxcar, Lee, Refined Lee), and decibels.
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

/// Speckle filters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "filter")]
pub enum SpeckleFilter {
    None,
    /// Mean over a size x size window.
    Boxcar { size: usize },
    /// Lee (1980) with a size x size window and the number of looks of the product.
    Lee { size: usize, looks: f64 },
    /// Refined Lee (Lee 1981), 7 x 7.
    RefinedLee,
}

impl SpeckleFilter {
    /// Window side of the boxcar and Lee presets, pixels.
    pub const PRESET_SIZE: usize = 7;
    /// Number of looks of the Lee preset: Earth-observation RTC products are multilooked to
    /// about 4 looks.
    pub const PRESET_LOOKS: f64 = 4.0;

    /// The boxcar preset: the mean over a 7 x 7 window.
    pub fn boxcar() -> SpeckleFilter {
        SpeckleFilter::Boxcar { size: Self::PRESET_SIZE }
    }

    /// The Lee preset: 7 x 7 window, 4 looks (Earth-observation RTC products are multilooked
    /// to about 4 looks).
    pub fn lee() -> SpeckleFilter {
        SpeckleFilter::Lee { size: Self::PRESET_SIZE, looks: Self::PRESET_LOOKS }
    }

    /// The Refined Lee preset (7 x 7, the research default).
    pub fn refined_lee() -> SpeckleFilter {
        SpeckleFilter::RefinedLee
    }
}

/// Applies a speckle filter to linear power. NaN marks no data: it is left out of every window
/// and stays NaN.
pub fn speckle_filter(img: &[f32], width: usize, height: usize, filter: SpeckleFilter) -> Vec<f32> {
    match filter {
        SpeckleFilter::None => img.to_vec(),
        SpeckleFilter::Boxcar { size } => boxcar(img, width, height, size),
        SpeckleFilter::Lee { size, looks } => lee(img, width, height, size, looks),
        SpeckleFilter::RefinedLee => refined_lee(img, width, height),
    }
}

/// Calls `f(x, y)` for every pixel, rows in parallel.
fn per_pixel(width: usize, height: usize, f: impl Fn(usize, usize) -> f32 + Sync) -> Vec<f32> {
    (0..height).into_par_iter().flat_map_iter(|y| (0..width).map(move |x| (x, y)).map(|(x, y)| f(x, y)).collect::<Vec<_>>()).collect()
}

/// Valid values of the size x size window around (x, y).
fn window(img: &[f32], width: usize, height: usize, x: usize, y: usize, half: usize, out: &mut Vec<f64>) {
    out.clear();
    for yy in y.saturating_sub(half)..(y + half + 1).min(height) {
        for xx in x.saturating_sub(half)..(x + half + 1).min(width) {
            let v = img[yy * width + xx];
            if !v.is_nan() {
                out.push(v as f64);
            }
        }
    }
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    // Sample variance, as SNAP computes it.
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var)
}

pub fn boxcar(img: &[f32], width: usize, height: usize, size: usize) -> Vec<f32> {
    let half = size / 2;
    per_pixel(width, height, |x, y| {
        if img[y * width + x].is_nan() {
            return f32::NAN;
        }
        let mut w = Vec::with_capacity(size * size);
        window(img, width, height, x, y, half, &mut w);
        mean_var(&w).0 as f32
    })
}

/// Lee (1980): mean + b (centre - mean), b = max(0, 1 - Cu^2 / Ci^2), with Cu = 1/sqrt(looks)
/// the speckle's coefficient of variation and Ci the window's.
pub fn lee(img: &[f32], width: usize, height: usize, size: usize, looks: f64) -> Vec<f32> {
    let half = size / 2;
    let cu2 = 1.0 / looks.max(1e-6);
    per_pixel(width, height, |x, y| {
        let centre = img[y * width + x];
        if centre.is_nan() {
            return f32::NAN;
        }
        let mut w = Vec::with_capacity(size * size);
        window(img, width, height, x, y, half, &mut w);
        let (mean, var) = mean_var(&w);
        if mean <= 0.0 || var <= 0.0 {
            return mean as f32;
        }
        let ci2 = var / (mean * mean);
        if ci2 <= cu2 {
            return mean as f32;
        }
        let b = 1.0 - cu2 / ci2;
        (mean + b * (centre as f64 - mean)) as f32
    })
}

/// The 28 pixels of the 7 x 7 window on the centre's side of an edge, for each of the 8
/// directions: 0/4 right/left half, 2/6 upper/lower half, 1/5 and 3/7 the diagonal halves.
const fn edge_window(d: usize, row: usize, col: usize) -> bool {
    match d {
        0 => col >= 3,
        1 => col >= row,
        2 => row <= 3,
        3 => col + row <= 6,
        4 => col <= 3,
        5 => col <= row,
        6 => row >= 3,
        _ => col + row >= 6,
    }
}

/// [`edge_window`] as a table: direction, then row-major position in the 7 x 7 window.
const EDGE_WINDOWS: [[bool; 49]; 8] = {
    let mut t = [[false; 49]; 8];
    let mut d = 0;
    while d < 8 {
        let mut k = 0;
        while k < 49 {
            t[d][k] = edge_window(d, k / 7, k % 7);
            k += 1;
        }
        d += 1;
    }
    t
};

/// Refined Lee (Lee 1981, "Refined filtering of image noise using local statistics"), in the
/// form of ESA SNAP's Speckle-Filter operator (from NEST's SpeckleFilterOp): a 7 x 7 window
/// split into nine 3 x 3 sub-windows (stride 2); the largest of four gradients between their
/// means picks the edge direction; of the two halves along that edge, the one whose mean is
/// closer to the centre's gives the 28 pixels whose mean and variance drive the filter; the
/// noise variance is the mean of the five smallest sub-window variances. Windows with missing
/// pixels use plain local statistics over the valid ones. Unlike SNAP we do not skip the edge
/// step below an absolute variance threshold (SNAP's `edgeThreshold` is scaled for amplitude
/// DNs and would disable it for calibrated power). Every sum runs in row-major order in f64, as
/// the filter was first written (a test keeps that one and checks every bit): each 3 x 3
/// sub-window's mean and variance once per strip of rows (every pixel's window shares them
/// with its neighbours'), the 28 edge pixels per pixel; strips in parallel, pixels within 3 of
/// the grid's edge the general way.
pub fn refined_lee(img: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; width * height];
    if width == 0 {
        return out;
    }
    out.par_chunks_mut(LEE_STRIP * width).enumerate().for_each(|(k, chunk)| {
        let (y0, rows) = (k * LEE_STRIP, chunk.len() / width);
        // 3 x 3 statistics centred on rows y0 - 2 .. y0 + rows + 2 (within the grid).
        let (c0, c1) = (y0.saturating_sub(2).max(1), (y0 + rows + 2).min(height.saturating_sub(1)));
        let stats = sub_window_stats(img, width, c0..c1.max(c0));
        for (r, row) in chunk.chunks_mut(width).enumerate() {
            let y = y0 + r;
            for (x, v) in row.iter_mut().enumerate() {
                *v = if x >= 3 && y >= 3 && x + 3 < width && y + 3 < height {
                    refined_lee_inside(img, width, x, y, &stats, c0)
                } else {
                    refined_lee_at(img, width, height, x, y)
                };
            }
        }
    });
    out
}

/// Rows of one strip of [`refined_lee`].
const LEE_STRIP: usize = 32;

/// A 3 x 3 window's mean and sample variance over its valid pixels (as [`mean_var`] gives
/// them, summed in row-major order) and whether all nine are valid.
#[derive(Clone, Copy)]
struct SubWindow {
    mean: f64,
    var: f64,
    complete: bool,
}

/// The 3 x 3 statistics centred on every pixel of `rows` (columns 1 .. width - 1; the rows and
/// columns at the grid's edge are never a centre of an inside pixel's sub-window).
fn sub_window_stats(img: &[f32], width: usize, rows: std::ops::Range<usize>) -> Vec<SubWindow> {
    let mut out = vec![SubWindow { mean: f64::NAN, var: f64::NAN, complete: false }; rows.len() * width];
    for (k, cy) in rows.enumerate() {
        for cx in 1..width.saturating_sub(1) {
            let (mut s, mut n) = ([0.0f64; 9], 0);
            for yy in cy - 1..cy + 2 {
                for p in &img[yy * width + cx - 1..yy * width + cx + 2] {
                    if !p.is_nan() {
                        s[n] = *p as f64;
                        n += 1;
                    }
                }
            }
            let (mean, var) = mean_var(&s[..n]);
            out[k * width + cx] = SubWindow { mean, var, complete: n == 9 };
        }
    }
    out
}

/// [`refined_lee`] at (x, y) at least 3 pixels inside the grid, from the strip's sub-window
/// statistics (`stats`, centred rows from `c0`).
fn refined_lee_inside(img: &[f32], width: usize, x: usize, y: usize, stats: &[SubWindow], c0: usize) -> f32 {
    let centre = img[y * width + x];
    if centre.is_nan() {
        return f32::NAN;
    }
    let mut means = [[0.0f64; 3]; 3];
    let (mut complete_vars, mut complete) = ([0.0f64; 9], 0);
    for j in 0..3 {
        for i in 0..3 {
            let w = stats[(y - 2 + 2 * j - c0) * width + x - 2 + 2 * i];
            means[j][i] = w.mean;
            if w.complete {
                complete_vars[complete] = w.var;
                complete += 1;
            }
        }
    }
    let all_valid = complete == 9;
    let complete_vars = &mut complete_vars[..complete];
    complete_vars.sort_by(|a, b| a.total_cmp(b));
    let noise_var = match complete_vars.len() {
        0 => 0.0,
        9 => complete_vars[..5].iter().sum::<f64>() / 5.0,
        _ => complete_vars[0],
    };
    let (mut pixels, mut np) = ([0.0f64; 49], 0);
    let window = |r: usize| &img[(y + r - 3) * width + x - 3..(y + r - 3) * width + x + 4];
    if !all_valid {
        for r in 0..7 {
            for p in window(r).iter().filter(|p| !p.is_nan()) {
                pixels[np] = *p as f64;
                np += 1;
            }
        }
    } else {
        let d = edge_direction(&means);
        for r in 0..7 {
            for (p, keep) in window(r).iter().zip(&EDGE_WINDOWS[d][r * 7..r * 7 + 7]) {
                if *keep {
                    pixels[np] = *p as f64;
                    np += 1;
                }
            }
        }
    }
    let (mean, var) = mean_var(&pixels[..np]);
    if !(var + noise_var > 0.0) {
        return mean as f32;
    }
    let k = var / (var + noise_var);
    (mean + k * (centre as f64 - mean)) as f32
}

/// Of the four gradients between the sub-windows' means the largest picks the edge; of its two
/// sides, the one the centre resembles: the direction of [`EDGE_WINDOWS`].
fn edge_direction(m: &[[f64; 3]; 3]) -> usize {
    let gradients = [(m[1][0] - m[1][2]).abs(), (m[0][2] - m[2][0]).abs(), (m[0][1] - m[2][1]).abs(), (m[0][0] - m[2][2]).abs()];
    let mut direction = 0;
    for (k, g) in gradients.iter().enumerate() {
        if *g > gradients[direction] {
            direction = k;
        }
    }
    let c = m[1][1];
    match direction {
        0 => if (m[1][0] - c).abs() < (c - m[1][2]).abs() { 4 } else { 0 },
        1 => if (m[0][2] - c).abs() < (c - m[2][0]).abs() { 1 } else { 5 },
        2 => if (m[0][1] - c).abs() < (c - m[2][1]).abs() { 2 } else { 6 },
        _ => if (m[0][0] - c).abs() < (c - m[2][2]).abs() { 3 } else { 7 },
    }
}

/// [`refined_lee`]'s value at (x, y), anywhere on the grid.
fn refined_lee_at(img: &[f32], width: usize, height: usize, x: usize, y: usize) -> f32 {
    let centre = img[y * width + x];
    if centre.is_nan() {
        return f32::NAN;
    }
    let mut n = [[f64::NAN; 7]; 7];
    let mut valid = 0;
    let inside = x >= 3 && y >= 3 && x + 3 < width && y + 3 < height;
    for (r, row) in n.iter_mut().enumerate() {
        if inside {
            let base = (y + r - 3) * width + x - 3;
            for (v, p) in row.iter_mut().zip(&img[base..base + 7]) {
                if !p.is_nan() {
                    *v = *p as f64;
                    valid += 1;
                }
            }
            continue;
        }
        for (c, v) in row.iter_mut().enumerate() {
            let (yy, xx) = (y as isize + r as isize - 3, x as isize + c as isize - 3);
            if yy >= 0 && xx >= 0 && (yy as usize) < height && (xx as usize) < width {
                let p = img[yy as usize * width + xx as usize];
                if !p.is_nan() {
                    *v = p as f64;
                    valid += 1;
                }
            }
        }
    }
    // Sub-window statistics (3 x 3 windows at rows/cols 0, 2, 4).
    let mut means = [[0.0f64; 3]; 3];
    let (mut complete_vars, mut complete) = ([0.0f64; 9], 0);
    for j in 0..3 {
        for i in 0..3 {
            let (mut s, mut k) = ([0.0f64; 9], 0);
            for row in &n[2 * j..2 * j + 3] {
                for v in &row[2 * i..2 * i + 3] {
                    if !v.is_nan() {
                        s[k] = *v;
                        k += 1;
                    }
                }
            }
            let (m, v) = mean_var(&s[..k]);
            means[j][i] = m;
            if k == 9 {
                complete_vars[complete] = v;
                complete += 1;
            }
        }
    }
    let complete_vars = &mut complete_vars[..complete];
    complete_vars.sort_by(|a, b| a.total_cmp(b));
    let noise_var = match complete_vars.len() {
        0 => 0.0,
        9 => complete_vars[..5].iter().sum::<f64>() / 5.0,
        _ => complete_vars[0],
    };
    let (mut pixels, mut np) = ([0.0f64; 49], 0);
    if valid < 49 {
        for v in n.iter().flatten().filter(|v| !v.is_nan()) {
            pixels[np] = *v;
            np += 1;
        }
    } else {
        let d = edge_direction(&means);
        for (v, keep) in n.iter().flatten().zip(&EDGE_WINDOWS[d]) {
            if *keep {
                pixels[np] = *v;
                np += 1;
            }
        }
    }
    let (mean, var) = mean_var(&pixels[..np]);
    if !(var + noise_var > 0.0) {
        return mean as f32;
    }
    let k = var / (var + noise_var);
    (mean + k * (centre as f64 - mean)) as f32
}

/// Equivalent number of looks of a homogeneous area of linear power: mean^2 / variance.
pub fn equivalent_number_of_looks(values: &[f32]) -> f64 {
    let v: Vec<f64> = values.iter().filter(|v| !v.is_nan()).map(|v| *v as f64).collect();
    let (mean, var) = mean_var(&v);
    mean * mean / var
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refined Lee as it was written first (a vector per window and sub-window), the reference the
    /// allocation-free one must equal bit for bit.
    fn refined_lee_reference(img: &[f32], width: usize, height: usize) -> Vec<f32> {
        per_pixel(width, height, |x, y| {
            let centre = img[y * width + x];
            if centre.is_nan() {
                return f32::NAN;
            }
            let mut n = [[f64::NAN; 7]; 7];
            let mut valid = 0;
            for (r, row) in n.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    let (yy, xx) = (y as isize + r as isize - 3, x as isize + c as isize - 3);
                    if yy >= 0 && xx >= 0 && (yy as usize) < height && (xx as usize) < width {
                        let p = img[yy as usize * width + xx as usize];
                        if !p.is_nan() {
                            *v = p as f64;
                            valid += 1;
                        }
                    }
                }
            }
            // Sub-window statistics (3 x 3 windows at rows/cols 0, 2, 4).
            let mut means = [[0.0f64; 3]; 3];
            let mut complete_vars = Vec::with_capacity(9);
            for j in 0..3 {
                for i in 0..3 {
                    let mut s = Vec::with_capacity(9);
                    for r in 2 * j..2 * j + 3 {
                        for c in 2 * i..2 * i + 3 {
                            if !n[r][c].is_nan() {
                                s.push(n[r][c]);
                            }
                        }
                    }
                    let (m, v) = mean_var(&s);
                    means[j][i] = m;
                    if s.len() == 9 {
                        complete_vars.push(v);
                    }
                }
            }
            complete_vars.sort_by(|a, b| a.total_cmp(b));
            let noise_var = match complete_vars.len() {
                0 => 0.0,
                9 => complete_vars[..5].iter().sum::<f64>() / 5.0,
                _ => complete_vars[0],
            };
            let pixels: Vec<f64> = if valid < 49 {
                n.iter().flatten().copied().filter(|v| !v.is_nan()).collect()
            } else {
                let m = &means;
                let gradients = [(m[1][0] - m[1][2]).abs(), (m[0][2] - m[2][0]).abs(), (m[0][1] - m[2][1]).abs(), (m[0][0] - m[2][2]).abs()];
                let mut direction = 0;
                for (k, g) in gradients.iter().enumerate() {
                    if *g > gradients[direction] {
                        direction = k;
                    }
                }
                let c = m[1][1];
                // Of the two sides of the edge, the one the centre resembles.
                let d = match direction {
                    0 => if (m[1][0] - c).abs() < (c - m[1][2]).abs() { 4 } else { 0 },
                    1 => if (m[0][2] - c).abs() < (c - m[2][0]).abs() { 1 } else { 5 },
                    2 => if (m[0][1] - c).abs() < (c - m[2][1]).abs() { 2 } else { 6 },
                    _ => if (m[0][0] - c).abs() < (c - m[2][2]).abs() { 3 } else { 7 },
                };
                let mut p = Vec::with_capacity(28);
                for (r, row) in n.iter().enumerate() {
                    for (cc, v) in row.iter().enumerate() {
                        if edge_window(d, r, cc) {
                            p.push(*v);
                        }
                    }
                }
                p
            };
            let (mean, var) = mean_var(&pixels);
            if !(var + noise_var > 0.0) {
                return mean as f32;
            }
            let k = var / (var + noise_var);
            (mean + k * (centre as f64 - mean)) as f32
        })
    }

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
    fn each_edge_window_has_28_pixels() {
        for d in 0..8 {
            let count = (0..7).flat_map(|r| (0..7).map(move |c| (r, c))).filter(|(r, c)| edge_window(d, *r, *c)).count();
            assert_eq!(count, 28, "direction {d}");
        }
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

    #[test]
    fn lee_by_hand_on_a_3x3_window() {
        // Centre 9, others 1: mean 17/9, sample variance 64/9 * 8/8... computed explicitly.
        let mut img = vec![1.0f32; 9];
        img[4] = 9.0;
        let w: Vec<f64> = img.iter().map(|v| *v as f64).collect();
        let mean = w.iter().sum::<f64>() / 9.0;
        let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 8.0;
        let looks = 4.0;
        let b = 1.0 - (1.0 / looks) / (var / (mean * mean));
        let expected = mean + b * (9.0 - mean);
        let out = lee(&img, 3, 3, 3, looks);
        assert!((out[4] as f64 - expected).abs() < 1e-5, "{} vs {expected}", out[4]);
        // A homogeneous window gives its mean.
        assert_eq!(lee(&[2.0; 9], 3, 3, 3, 4.0)[4], 2.0);
    }

    #[test]
    fn refined_lee_by_hand_on_a_vertical_edge() {
        // 7 x 7: left three columns 1, right four columns 10, centre on the bright side.
        let mut img = vec![0f32; 49];
        for r in 0..7 {
            for c in 0..7 {
                img[r * 7 + c] = if c < 3 { 1.0 } else { 10.0 };
            }
        }
        img[3 * 7 + 3] = 12.0;
        let out = refined_lee(&img, 7, 7);
        // Horizontal gradient wins; the centre's sub-window mean (10.67) is closer to the right
        // half's, so the 28 pixels are columns 3..6: 27 tens and the 12.
        let pixels: Vec<f64> = (0..7).flat_map(|r| (3..7).map(move |c| (r, c))).map(|(r, c)| img[r * 7 + c] as f64).collect();
        let (mean, var) = mean_var(&pixels);
        // Sub-window variances: the five smallest are 0 (all-10 windows away from the centre and
        // edge): noise variance 0, so k = 1 and the centre keeps its value.
        let mut sub = Vec::new();
        for j in 0..3 {
            for i in 0..3 {
                let s: Vec<f64> = (2 * j..2 * j + 3).flat_map(|r| (2 * i..2 * i + 3).map(move |c| (r, c))).map(|(r, c)| img[r * 7 + c] as f64).collect();
                sub.push(mean_var(&s).1);
            }
        }
        sub.sort_by(|a, b| a.total_cmp(b));
        let noise: f64 = sub[..5].iter().sum::<f64>() / 5.0;
        let k = var / (var + noise);
        let expected = mean + k * (12.0 - mean);
        assert!((out[24] as f64 - expected).abs() < 1e-5, "{} vs {expected}", out[24]);
        // The dark side never leaks into the bright pixel.
        assert!(out[24] > 9.9);
    }

    /// The allocation-free Refined Lee equals the first one bit for bit: on generated 4-look
    /// speckle over a field with edges, with no-data holes, lone no-data pixels and the grid's
    /// borders (every branch: full windows, partial ones, too few complete sub-windows).
    #[test]
    fn refined_lee_equals_its_reference_bit_for_bit() {
        let (w, h) = (97usize, 83usize);
        let mut state = 0x853C_49E6_748F_EA9Bu64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let img: Vec<f32> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let level = if x < 40 { 0.05 } else if x + y < 120 { 0.4 } else { 0.12 };
                let speckle: f64 = (0..4).map(|_| -uniform().ln()).sum::<f64>() / 4.0;
                let hole = (30..36).contains(&x) && (20..27).contains(&y) || i % 211 == 0;
                if hole { f32::NAN } else { (level * speckle) as f32 }
            })
            .collect();
        let (fast, reference) = (refined_lee(&img, w, h), refined_lee_reference(&img, w, h));
        let differ = fast.iter().zip(&reference).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{differ} pixels differ");
        // A constant image stays constant (zero variances everywhere); grids thinner than a
        // window or than a strip.
        let flat = vec![0.25f32; 20 * 20];
        assert_eq!(refined_lee(&flat, 20, 20), refined_lee_reference(&flat, 20, 20));
        for (w, h) in [(5, 5), (40, 6), (6, 40), (1, 1), (9, 33)] {
            let part = &img[..w * h];
            let (a, b) = (refined_lee(part, w, h), refined_lee_reference(part, w, h));
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{w} x {h}");
        }
    }

    #[test]
    fn no_data_stays_no_data_and_is_left_out() {
        let mut img = vec![1.0f32; 100];
        img[55] = f32::NAN;
        for f in [SpeckleFilter::Boxcar { size: 5 }, SpeckleFilter::Lee { size: 5, looks: 4.0 }, SpeckleFilter::RefinedLee] {
            let out = speckle_filter(&img, 10, 10, f);
            assert!(out[55].is_nan(), "{f:?}");
            assert!(out.iter().enumerate().all(|(i, v)| i == 55 || (*v - 1.0).abs() < 1e-6), "{f:?}");
        }
    }
}
