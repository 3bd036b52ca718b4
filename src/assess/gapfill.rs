//! The gap-filled post-fire image: the real t1 where it is clear, else a composite of the t1
//! window where it has a clear observation, else the synthetic pixel; and a source raster that
//! says which, per pixel (a class map with a colour table and names: real t1, composite,
//! synthetic; 0 where none has a value). The image carries a `mask` band (1 where nothing fills
//! the pixel) and the date its value stands for (days since 1970-01-01: t1's for the real and the
//! synthetic image, the composite's own date used otherwise). Its clear pixels are the real
//! ones, so it is not scored against the real image. With a pre-fire image (t0 where it is
//! clear, else the t0 window's composite where it has a clear observation), the gap-filled
//! image's NBR, dNBR and severity classes too, with the burned area by source.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Image;
use crate::error::{Error, Result};
use crate::indices::severity::{NO_DATA, SeverityScheme};
use crate::job::Progress;
use crate::raster::{BlockWriter, ByteBlockWriter};

/// The source raster's classes: (code, colour, name).
pub const SOURCE_CLASSES: [(u8, [u8; 3], &str); 3] = [(1, [46, 125, 50], "real t1"), (2, [30, 136, 229], "composite"), (3, [251, 140, 0], "synthetic")];

/// How much of the grid each source fills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GapFillSummary {
    pub pixels: u64,
    pub real: u64,
    pub composite: u64,
    pub synthetic: u64,
    /// Pixels nothing fills.
    pub none: u64,
    /// With a pre-fire image: what the dNBR's pre-fire side came from, and the burned area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<GapFillSeverity>,
}

/// The gap-filled image's dNBR severity, with where each burned pixel's post-fire value came
/// from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GapFillSeverity {
    /// Pixels whose pre-fire value is the chosen t0's, and the t0 composite's.
    pub pre_t0: u64,
    pub pre_composite: u64,
    /// Pixels with a dNBR (both sides have a value).
    pub pixels: u64,
    /// Burned pixels (the scheme's burned classes) by the source of their post-fire value:
    /// real t1, composite, synthetic.
    pub burned_real: u64,
    pub burned_composite: u64,
    pub burned_synthetic: u64,
    /// Hectares per severity class, in the scheme's order: (class, hectares).
    pub class_ha: Vec<(String, f64)>,
    pub burned_ha: f64,
}

impl GapFillSummary {
    /// The share of the grid each source fills, in words.
    pub fn shares(&self) -> String {
        let pct = |n: u64| 100.0 * n as f64 / self.pixels.max(1) as f64;
        let mut s = format!("real t1 {:.1} %, composite {:.1} %, synthetic {:.1} %", pct(self.real), pct(self.composite), pct(self.synthetic));
        if self.none > 0 {
            s.push_str(&format!(", nothing {:.1} %", pct(self.none)));
        }
        s
    }

    /// What the report, the CLI and the app say of it, one sentence a line.
    pub fn lines(&self, pixel_area_m2: f64, composite: bool) -> Vec<String> {
        let mut v = vec![format!("Gap-filled post-fire image: {} of the grid.", self.shares())];
        if !composite {
            v.push("No composite of the t1 window (project.yaml `composite:`): the synthetic image fills every pixel the real t1 does not.".into());
        }
        if let Some(s) = &self.severity {
            let ha = pixel_area_m2 / 10_000.0;
            let pre = |n: u64| 100.0 * n as f64 / self.pixels.max(1) as f64;
            v.push(format!(
                "Its burned area: {:.2} ha ({:.2} ha from real t1 pixels, {:.2} ha from the composite, {:.2} ha synthetic); the pre-fire side is the chosen t0 on {:.1} % of the grid and the t0 composite on {:.1} %.",
                s.burned_ha,
                s.burned_real as f64 * ha,
                s.burned_composite as f64 * ha,
                s.burned_synthetic as f64 * ha,
                pre(s.pre_t0),
                pre(s.pre_composite)
            ));
        }
        v
    }
}

/// What the assessment is asked to gap-fill (project mode): where the image and its source
/// raster go (`outputs/<run>/`), the t1 composite when there is one, and t1's date (the t0
/// composite is the assessment's `pre_fill`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapFillRequest {
    pub image: std::path::PathBuf,
    pub source: std::path::PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_t1: Option<std::path::PathBuf>,
    /// t1's date (days since 1970-01-01).
    pub t1_days: i64,
}

/// The dNBR of the gap-filled image: its pre-fire side and the outputs.
pub struct PreFire<'a> {
    /// The chosen t0 (preprocessed, with its mask).
    pub t0: &'a Path,
    /// The t0 window's composite, where t0 is cloudy.
    pub composite: Option<&'a Path>,
    /// The NIR band of NBR.
    pub nir: &'a str,
    pub classes: &'a SeverityScheme,
    /// The dNBR offset subtracted before the classes (0: none).
    pub offset: f32,
    /// NBR_pre, NBR_post and dNBR; the severity classes (colour table).
    pub indices_out: &'a Path,
    pub severity_out: &'a Path,
}

/// The three sources, each read through [`Image`] (bands by description, masked pixels not
/// valid).
pub struct GapFillInputs<'a> {
    pub real: &'a Path,
    pub composite: Option<&'a Path>,
    pub synthetic: &'a Path,
    /// t1's date (days since 1970-01-01).
    pub t1_days: i64,
    /// With it, the gap-filled image's dNBR and severity too.
    pub pre: Option<PreFire<'a>>,
    /// The attribution and provenance every file written carries (none: untagged).
    pub tags: Option<&'a crate::raster::Tags>,
}

/// Writes the gap-filled image (`bands`, `mask`, the date) and the source raster, in strips of
/// `rows` rows.
pub fn write_gapfilled(inputs: &GapFillInputs, bands: &[String], out_image: &Path, out_source: &Path, rows: usize, progress: &Progress) -> Result<GapFillSummary> {
    let real = Image::open(inputs.real, None)?;
    let synth = Image::open(inputs.synthetic, None)?;
    let composite = inputs.composite.map(|p| Image::open(p, None)).transpose()?;
    let (width, height) = (real.info.width, real.info.height);
    for other in [Some(&synth), composite.as_ref()].into_iter().flatten() {
        if !real.same_grid(other) {
            return Err(Error::Raster { location: other.path.display().to_string(), message: format!("not on the grid of {}; warp it onto the project grid first", real.path.display()) });
        }
    }
    let pre = match &inputs.pre {
        Some(p) => {
            if !bands.iter().any(|b| b == p.nir) || !bands.iter().any(|b| b == "B12") {
                return Err(Error::invalid("gap-filled image", format!("its dNBR needs {} and B12 among the bands ({})", p.nir, bands.join(", "))));
            }
            let t0 = Image::open(p.t0, None)?;
            let c0 = p.composite.map(|c| Image::open(c, None)).transpose()?;
            for other in [Some(&t0), c0.as_ref()].into_iter().flatten() {
                if !real.same_grid(other) {
                    return Err(Error::Raster { location: other.path.display().to_string(), message: format!("not on the grid of {}; preprocess it onto the project grid", real.path.display()) });
                }
            }
            let names = ["NBR_pre", "NBR_post", "dNBR"].map(String::from);
            let palette = p.classes.palette();
            let gt = real.info.geo_transform;
            let mut indices = BlockWriter::create_on(p.indices_out, width, height, gt, &real.info.crs_wkt, &names, f32::NAN, rows.max(1))?;
            let mut severity = ByteBlockWriter::create(p.severity_out, width, height, gt, &real.info.crs_wkt, "dNBR severity (gap-filled)", Some(&palette), rows.max(1))?;
            if let Some(t) = inputs.tags {
                indices.tag(t)?;
                severity.tag(t)?;
            }
            Some((p, t0, c0, indices, severity, GapFillSeverity::default(), [0u64; 256]))
        }
        None => None,
    };
    let mut pre = pre;
    let names: Vec<&str> = bands.iter().map(String::as_str).collect();
    let date_band = crate::preprocess::composite::DATE_BAND;
    let with_date: Vec<&str> = names.iter().copied().chain([date_band]).collect();
    let mut out_names = bands.to_vec();
    out_names.extend(["mask".to_string(), date_band.to_string()]);
    let rows = rows.max(1);
    let gt = real.info.geo_transform;
    let mut image = BlockWriter::create_on(out_image, width, height, gt, &real.info.crs_wkt, &out_names, f32::NAN, rows)?;
    let mut source = ByteBlockWriter::create(out_source, width, height, gt, &real.info.crs_wkt, "source of the gap-filled post-fire image", Some(&SOURCE_CLASSES), rows)?;
    if let Some(t) = inputs.tags {
        image.tag(t)?;
        source.tag(t)?;
    }
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
        if let Some((p, t0, c0, indices, severity, sev, classes)) = pre.as_mut() {
            let idx = |name: &str| bands.iter().position(|b| b == name).unwrap_or(0);
            let (nir, swir) = (idx(p.nir), idx("B12"));
            let post = crate::indices::spectral::nbr(&values[nir], &values[swir], &vec![true; n]);
            let (nbr_pre, filled) = t0.prefire_nbr(c0.as_ref(), p.nir, 1.0, y0..y1)?;
            sev.pre_t0 += nbr_pre.iter().filter(|v| v.is_finite()).count() as u64 - filled;
            sev.pre_composite += filled;
            let mut dnbr = crate::indices::spectral::dnbr(&nbr_pre, &post);
            super::offset::subtract(&mut dnbr, p.offset);
            let mut codes = vec![0u8; n];
            let burned = p.classes.burned_codes();
            for i in 0..n {
                let class = p.classes.classify(dnbr[i]);
                codes[i] = class;
                classes[class as usize] += 1;
                if class != NO_DATA {
                    sev.pixels += 1;
                }
                if burned.contains(class) {
                    match from[i] {
                        1 => sev.burned_real += 1,
                        2 => sev.burned_composite += 1,
                        _ => sev.burned_synthetic += 1,
                    }
                }
            }
            for (k, v) in [&nbr_pre, &post, &dnbr].into_iter().enumerate() {
                indices.write_rows(k, y0, y1 - y0, v)?;
            }
            severity.write_rows(y0, y1 - y0, &codes)?;
        }
        progress.advanced(done as u64 + 1, strips, format!("gap-filled rows {y0}..{y1}"));
    }
    image.finish()?;
    source.finish()?;
    if let Some((p, _, _, indices, severity, mut sev, classes)) = pre {
        indices.finish()?;
        severity.finish()?;
        let ha = (gt[1] * gt[5]).abs() / 10_000.0;
        sev.class_ha = p.classes.classes.iter().map(|c| (c.name.clone(), classes[c.code as usize] as f64 * ha)).collect();
        sev.burned_ha = (sev.burned_real + sev.burned_composite + sev.burned_synthetic) as f64 * ha;
        summary.severity = Some(sev);
    }
    Ok(summary)
}
