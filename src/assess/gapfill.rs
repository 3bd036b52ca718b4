//! The gap-filled post-fire image: the real t1 where it is clear, else a composite of the t1
//! window where it has a clear observation, else the synthetic pixel; and a source raster that
//! says which, per pixel (a class map with a colour table and names: real t1, composite,
//! synthetic; 0 where none has a value). The image carries a `mask` band (1 where nothing fills
//! the pixel) and the date its value stands for (days since 1970-01-01: t1's for the real and the
//! synthetic image, the composite's own date used otherwise). Its clear pixels are the real
//! ones, so it is not scored against the real image.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Image;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::raster::{BlockWriter, ByteBlockWriter};

/// The source raster's classes: (code, colour, name).
pub const SOURCE_CLASSES: [(u8, [u8; 3], &str); 3] = [(1, [46, 125, 50], "real t1"), (2, [30, 136, 229], "composite"), (3, [251, 140, 0], "synthetic")];

/// How much of the grid each source fills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GapFillSummary {
    pub pixels: u64,
    pub real: u64,
    pub composite: u64,
    pub synthetic: u64,
    /// Pixels nothing fills.
    pub none: u64,
}

/// The three sources, each read through [`Image`] (bands by description, masked pixels not
/// valid).
pub struct GapFillInputs<'a> {
    pub real: &'a Path,
    pub composite: Option<&'a Path>,
    pub synthetic: &'a Path,
    /// t1's date (days since 1970-01-01).
    pub t1_days: i64,
}

/// Writes the gap-filled image (`bands`, `mask`, the date) and the source raster, in strips of
/// `rows` rows.
pub fn write_gapfilled(inputs: &GapFillInputs, bands: &[String], out_image: &Path, out_source: &Path, rows: usize, progress: &Progress) -> Result<GapFillSummary> {
    let real = Image::open(inputs.real, None)?;
    let synth = Image::open(inputs.synthetic, None)?;
    let composite = inputs.composite.map(|p| Image::open(p, None)).transpose()?;
    let (width, height) = (real.info.width, real.info.height);
    for other in [Some(&synth), composite.as_ref()].into_iter().flatten() {
        let (a, b) = (&real.info, &other.info);
        if (a.width, a.height) != (b.width, b.height) || a.geo_transform != b.geo_transform || !crate::raster::same_crs(&a.crs_wkt, &b.crs_wkt) {
            return Err(Error::Raster { location: other.path.display().to_string(), message: format!("not on the grid of {}; warp it onto the project grid first", real.path.display()) });
        }
    }
    let names: Vec<&str> = bands.iter().map(String::as_str).collect();
    let date_band = crate::preprocess::composite::DATE_BAND;
    let with_date: Vec<&str> = names.iter().copied().chain([date_band]).collect();
    let mut out_names = bands.to_vec();
    out_names.extend(["mask".to_string(), date_band.to_string()]);
    let rows = rows.max(1);
    let gt = real.info.geo_transform;
    let mut image = BlockWriter::create_on(out_image, width, height, gt, &real.info.crs_wkt, &out_names, f32::NAN, rows)?;
    let mut source = ByteBlockWriter::create(out_source, width, height, gt, &real.info.crs_wkt, "source of the gap-filled post-fire image", Some(&SOURCE_CLASSES), rows)?;
    let mut summary = GapFillSummary { pixels: (width * height) as u64, ..Default::default() };
    let strips = height.div_ceil(rows) as u64;
    progress.started(Some(strips));
    for (done, y0) in (0..height).step_by(rows).enumerate() {
        progress.check_cancelled()?;
        let y1 = (y0 + rows).min(height);
        let n = (y1 - y0) * width;
        let r = real.read(&names, 1.0, y0..y1)?;
        let s = synth.read(&names, 1.0, y0..y1)?;
        // The composite's bands and, last, its date used: one read.
        let c = composite.as_ref().map(|c| c.read(&with_date, 1.0, y0..y1)).transpose()?;
        let nb = bands.len();
        let has = |valid: &[bool], v: &[Vec<f32>], i: usize| valid[i] && v.iter().all(|b| b[i].is_finite());
        let mut values = vec![vec![f32::NAN; n]; bands.len()];
        let (mut mask, mut date, mut from) = (vec![1f32; n], vec![f32::NAN; n], vec![0u8; n]);
        for i in 0..n {
            let (code, src, day) = if has(&r.valid, &r.bands, i) {
                (1, &r.bands, inputs.t1_days as f32)
            } else if let Some(c) = c.as_ref().filter(|c| has(&c.valid, &c.bands[..nb], i)) {
                (2, &c.bands, c.bands[nb][i])
            } else if has(&s.valid, &s.bands, i) {
                (3, &s.bands, inputs.t1_days as f32)
            } else {
                summary.none += 1;
                continue;
            };
            match code {
                1 => summary.real += 1,
                2 => summary.composite += 1,
                _ => summary.synthetic += 1,
            }
            from[i] = code;
            mask[i] = 0.0;
            date[i] = day;
            for (b, out) in values.iter_mut().enumerate() {
                out[i] = src[b][i];
            }
        }
        for (b, v) in values.iter().enumerate() {
            image.write_rows(b, y0, y1 - y0, v)?;
        }
        image.write_rows(bands.len(), y0, y1 - y0, &mask)?;
        image.write_rows(bands.len() + 1, y0, y1 - y0, &date)?;
        source.write_rows(y0, y1 - y0, &from)?;
        progress.advanced(done as u64 + 1, strips, format!("gap-filled rows {y0}..{y1}"));
    }
    image.finish()?;
    source.finish()?;
    Ok(summary)
}
