//! The dNBR offset (Key 2006, FIREMON; MTBS practice; Parks, Dillon & Miller 2014): two images
//! of unburned land are never alike (phenology, sun angle, moisture), so the mean dNBR of
//! unburned pixels is subtracted from every map's dNBR before RdNBR, RBR and the classes.
//!
//! One set of unburned pixels serves every map (real, synthetic, the baselines, the gap-filled
//! image), each map's offset being the mean of its own dNBR there: a ring between an inner and
//! an outer distance outside the official perimeter when there is one, else outside the real
//! burned map (classified without offset), or the inside of a polygon the user gives; always
//! clear at t0 and t1 (a finite real dNBR). Finding the ring holds three bytes a pixel of the
//! grid (the burned and clear masks, then the distance); the images are read in strips.

use std::ops::Range;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{AssessConfig, Image};
use crate::error::{Error, Result};
use crate::indices::spectral;
use crate::job::Progress;
use crate::raster::{self, Polygons};

/// `dnbr_offset:` of the assessment's settings (`assess:` in pipeline.yaml, `s2cr assess`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnbrOffset {
    /// Subtract the offset (the default, as MTBS does); false: classes on the raw dNBR.
    pub enabled: bool,
    /// The ring of unburned pixels starts this far outside the perimeter or burned map, metres
    /// (its edge is left out: mixed pixels, unmapped fingers of the fire).
    pub ring_inner_m: f64,
    /// And ends this far outside, metres.
    pub ring_outer_m: f64,
    /// The unburned pixels inside this polygon (any vector file GDAL/OGR reads) instead of a ring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polygon: Option<PathBuf>,
}

impl Default for DnbrOffset {
    fn default() -> Self {
        DnbrOffset { enabled: true, ring_inner_m: 100.0, ring_outer_m: 1000.0, polygon: None }
    }
}

impl DnbrOffset {
    /// No offset: what an assessment's settings from before the offset mean.
    pub fn off() -> DnbrOffset {
        DnbrOffset { enabled: false, ..DnbrOffset::default() }
    }

    /// Checks the ring's distances (`field` names the setting in the message).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let (a, b) = (self.ring_inner_m, self.ring_outer_m);
        if a.is_finite() && b.is_finite() && a >= 0.0 && b > a {
            Ok(())
        } else {
            Err(format!("the offset's ring runs from ring_inner_m to ring_outer_m metres outside the burned area: give 0 <= inner < outer (got {a} and {b})"))
        }
    }
}

/// The offsets an assessment subtracted, in its report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffsetReport {
    /// Where the unburned pixels are, in words.
    pub source: String,
    /// How many there are (clear at t0 and t1).
    pub pixels: u64,
    /// The mean dNBR there of the real and the synthetic map (0 where there is no pixel).
    #[serde(deserialize_with = "super::f64_or_nan")]
    pub real: f64,
    #[serde(deserialize_with = "super::f64_or_nan")]
    pub synthetic: f64,
}

/// The unburned pixels every map's offset is the mean dNBR over.
#[derive(Debug, Clone, PartialEq)]
pub struct UnburnedSet {
    width: usize,
    pixels_in: Vec<bool>,
    pub pixels: u64,
    /// Where they are, in words.
    pub source: String,
}

impl UnburnedSet {
    pub fn contains(&self, x: usize, y: usize) -> bool {
        self.pixels_in.get(y * self.width + x).copied().unwrap_or(false)
    }

    /// Whether rows `rows` hold any of its pixels (strips without are not read).
    pub fn any_in(&self, rows: Range<usize>) -> bool {
        self.pixels_in.get(rows.start * self.width..(rows.end * self.width).min(self.pixels_in.len())).is_some_and(|s| s.iter().any(|v| *v))
    }

    /// The mean over the set of each of the maps `dnbr_of(rows)` gives for a strip (one vector
    /// per map, the strip's pixels row-major), each over its own finite values; 0 for a map
    /// with none (nothing is subtracted from it). Strips of `strip` rows, those without a
    /// pixel of the set skipped.
    pub fn means(&self, height: usize, strip: usize, maps: usize, mut dnbr_of: impl FnMut(Range<usize>) -> Result<Vec<Vec<f32>>>) -> Result<Vec<f64>> {
        let mut sums = vec![(0.0f64, 0u64); maps];
        for y0 in (0..height).step_by(strip.max(1)) {
            let y1 = (y0 + strip.max(1)).min(height);
            if !self.any_in(y0..y1) {
                continue;
            }
            let values = dnbr_of(y0..y1)?;
            let inside = &self.pixels_in[y0 * self.width..y1 * self.width];
            for (sum, map) in sums.iter_mut().zip(&values) {
                for (v, _) in map.iter().zip(inside).filter(|(v, inside)| **inside && v.is_finite()) {
                    sum.0 += *v as f64;
                    sum.1 += 1;
                }
            }
        }
        Ok(sums.into_iter().map(|(s, n)| if n > 0 { s / n as f64 } else { 0.0 }).collect())
    }
}

/// What bounds the unburned pixels.
pub enum Around<'a> {
    /// Outside this burned mask (the official perimeter rasterized, or the real burned map).
    Burned { burned: Vec<bool>, what: &'a str },
    /// Inside this polygon.
    Polygon { inside: Vec<bool>, file: &'a str },
}

/// The unburned set on a `width` x `height` grid of `pixel_m` metre pixels: `clear[i]` where the
/// real dNBR is finite; the ring of `cfg` outside the burned mask, or the polygon's inside.
/// With no burned pixel at all every clear pixel is unburned.
pub fn unburned_set(cfg: &DnbrOffset, around: Around, clear: &[bool], width: usize, pixel_m: f64) -> UnburnedSet {
    let (pixels_in, source) = match around {
        Around::Polygon { inside, file } => (inside.iter().zip(clear).map(|(a, b)| *a && *b).collect::<Vec<bool>>(), format!("inside the polygon {file}")),
        Around::Burned { burned, what } if !burned.iter().any(|b| *b) => (clear.to_vec(), format!("every clear pixel (no pixel inside {what})")),
        Around::Burned { burned, what } => {
            let d = chamfer_distance(&burned, width);
            // Chamfer 3-4: three units a pixel's step.
            let units = |m: f64| (3.0 * m / pixel_m.max(f64::MIN_POSITIVE)).round().min(u16::MAX as f64 - 1.0) as u16;
            let (inner, outer) = (units(cfg.ring_inner_m), units(cfg.ring_outer_m));
            let set = d.iter().zip(clear).map(|(d, c)| *c && *d > inner && *d <= outer).collect();
            (set, format!("a ring {:.0}-{:.0} m outside {what}", cfg.ring_inner_m, cfg.ring_outer_m))
        }
    };
    let pixels = pixels_in.iter().filter(|v| **v).count() as u64;
    UnburnedSet { width, pixels_in, pixels, source: format!("{source}, clear at t0 and t1") }
}

/// The distance of every pixel to the nearest `true` one, in chamfer 3-4 units (3 a step along
/// a row or column, 4 a diagonal one: within 8 % of the Euclidean distance), saturating at
/// `u16::MAX`.
pub fn chamfer_distance(set: &[bool], width: usize) -> Vec<u16> {
    let w = width.max(1);
    let h = set.len() / w;
    let mut d: Vec<u16> = set.iter().map(|v| if *v { 0 } else { u16::MAX }).collect();
    let step = |from: u16, by: u16| from.saturating_add(by);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let mut v = d[i];
            if x > 0 {
                v = v.min(step(d[i - 1], 3));
            }
            if y > 0 {
                v = v.min(step(d[i - w], 3));
                if x > 0 {
                    v = v.min(step(d[i - w - 1], 4));
                }
                if x + 1 < w {
                    v = v.min(step(d[i - w + 1], 4));
                }
            }
            d[i] = v;
        }
    }
    for y in (0..h).rev() {
        for x in (0..w).rev() {
            let i = y * w + x;
            let mut v = d[i];
            if x + 1 < w {
                v = v.min(step(d[i + 1], 3));
            }
            if y + 1 < h {
                v = v.min(step(d[i + w], 3));
                if x + 1 < w {
                    v = v.min(step(d[i + w + 1], 4));
                }
                if x > 0 {
                    v = v.min(step(d[i + w - 1], 4));
                }
            }
            d[i] = v;
        }
    }
    d
}

/// The polygon's pixels (centre inside) on the grid, strip by strip.
pub fn polygon_pixels(polygons: &Polygons, file: &str, gt: &[f64; 6], crs_wkt: &str, width: usize, height: usize, strip: usize) -> Result<Vec<bool>> {
    if !polygons.overlaps(gt, width, height) {
        return Err(Error::Raster { location: file.to_string(), message: "the dNBR offset's polygon does not overlap the grid; is it the right file (dnbr_offset.polygon, --offset-polygon)?".into() });
    }
    let mut inside = Vec::with_capacity(width * height);
    for y0 in (0..height).step_by(strip.max(1)) {
        let rows = (strip.max(1)).min(height - y0);
        inside.extend(polygons.burn_rows(gt, crs_wkt, width, y0, rows)?.into_iter().map(|v| v != 0));
    }
    Ok(inside)
}

/// The unburned set of an assessment and the real and synthetic maps' offsets over it.
pub(super) struct Found {
    pub set: std::sync::Arc<UnburnedSet>,
    pub real: f32,
    pub synthetic: f32,
}

impl Found {
    pub fn report(&self) -> OffsetReport {
        OffsetReport { source: self.set.source.clone(), pixels: self.set.pixels, real: self.real as f64, synthetic: self.synthetic as f64 }
    }
}

/// An assessment's images and where their grid lies, for [`find`].
pub(super) struct Maps<'a> {
    pub pre: &'a Image,
    pub pre_fill: Option<&'a Image>,
    pub real: &'a Image,
    pub synthetic: &'a Image,
    /// The official perimeter, when the assessment has one.
    pub perimeter: Option<&'a Polygons>,
    pub gt: [f64; 6],
    pub crs_wkt: &'a str,
}

/// The unburned set and the two maps' offsets (`None` when the offset is off): one pass over
/// the real map's dNBR (strips of `strip` rows) for the clear and burned masks, then one over
/// the strips that hold the set for the means.
pub(super) fn find(cfg: &AssessConfig, m: &Maps, strip: usize, progress: &Progress) -> Result<Option<Found>> {
    let o = &cfg.dnbr_offset;
    if !o.enabled {
        return Ok(None);
    }
    o.validate().map_err(|e| Error::invalid("dnbr_offset", e))?;
    let (nir, th) = (cfg.nir.name(), &cfg.severity_classes);
    let (width, height) = (m.pre.info.width, m.pre.info.height);
    let strip = strip.max(1);
    // The dNBR of each of `images` over `rows`, against the one pre-fire NBR.
    let dnbr_rows = |images: &[&Image], rows: Range<usize>| -> Result<Vec<Vec<f32>>> {
        let (nbr_pre, _) = m.pre.prefire_nbr(m.pre_fill, nir, cfg.scale, rows.clone())?;
        images
            .iter()
            .map(|image| {
                let post = image.read(&[nir, "B12"], cfg.scale, rows.clone())?;
                Ok(spectral::dnbr(&nbr_pre, &spectral::nbr(&post.bands[0], &post.bands[1], &post.valid)))
            })
            .collect()
    };
    let polygon = o.polygon.as_ref().map(|p| Ok::<_, Error>((raster::load_polygons(p, m.crs_wkt)?, p.display().to_string()))).transpose()?;
    let mut clear = Vec::with_capacity(width * height);
    let mut burned = Vec::with_capacity(if polygon.is_none() { width * height } else { 0 });
    let burned_codes = th.burned_codes();
    for y0 in (0..height).step_by(strip) {
        progress.check_cancelled()?;
        let y1 = (y0 + strip).min(height);
        let d = dnbr_rows(&[m.real], y0..y1)?.remove(0);
        clear.extend(d.iter().map(|v| v.is_finite()));
        if polygon.is_none() {
            match m.perimeter {
                Some(p) => burned.extend(p.burn_rows(&m.gt, m.crs_wkt, width, y0, y1 - y0)?.into_iter().map(|v| v != 0)),
                None => burned.extend(d.iter().map(|v| v.is_finite() && burned_codes.contains(th.classify(*v)))),
            }
        }
    }
    let around = match &polygon {
        Some((p, file)) => Around::Polygon { inside: polygon_pixels(p, file, &m.gt, m.crs_wkt, width, height, strip)?, file },
        None => Around::Burned { burned, what: if m.perimeter.is_some() { "the official perimeter" } else { "the real burned map" } },
    };
    let set = unburned_set(o, around, &clear, width, pixel_metres(&m.gt, m.crs_wkt, height));
    drop(clear);
    let means = set.means(height, strip, 2, |rows| {
        progress.check_cancelled()?;
        dnbr_rows(&[m.real, m.synthetic], rows)
    })?;
    if set.pixels == 0 {
        progress.warn(format!("no dNBR offset: no clear unburned pixel in {}; the classes are drawn on the raw dNBR", set.source));
    } else {
        progress.info(format!("dNBR offset: real {:+.4}, synthetic {:+.4}, the mean dNBR over {} pixels of {}", means[0], means[1], set.pixels, set.source));
    }
    Ok(Some(Found { set: std::sync::Arc::new(set), real: means[0] as f32, synthetic: means[1] as f32 }))
}

/// A pixel's side in metres: the CRS's linear unit for a projected grid (metres, feet), about
/// 111 km a degree times the cosine of the grid's middle latitude for a geographic one.
pub fn pixel_metres(gt: &[f64; 6], crs_wkt: &str, height: usize) -> f64 {
    let side = (gt[1] * gt[5]).abs().sqrt();
    match gdal::spatial_ref::SpatialRef::from_wkt(crs_wkt) {
        Ok(srs) if srs.is_geographic() => {
            let lat = gt[3] + gt[5] * height as f64 / 2.0;
            side * 111_320.0 * lat.to_radians().cos().abs().max(1e-6)
        }
        Ok(srs) if srs.linear_units() > 0.0 => side * srs.linear_units(),
        _ => side,
    }
}

/// Subtracts `offset` from a strip's dNBR (in place).
pub fn subtract(dnbr: &mut [f32], offset: f32) {
    if offset != 0.0 {
        dnbr.iter_mut().for_each(|v| *v -= offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Along a row and a column one step is 3 units, a diagonal 4; far pixels saturate only
    /// past u16::MAX.
    #[test]
    fn chamfer_distance_counts_steps() {
        let (w, h) = (7, 5);
        let mut set = vec![false; w * h];
        set[2 * w + 3] = true;
        let d = chamfer_distance(&set, w);
        assert_eq!(d[2 * w + 3], 0);
        assert_eq!(d[2 * w + 4], 3);
        assert_eq!(d[2 * w + 6], 9);
        assert_eq!(d[3 * w + 4], 4);
        assert_eq!(d[4 * w + 5], 8);
        assert_eq!(d[4 * w + 6], 11, "two diagonal steps and one along the row");
        assert_eq!(chamfer_distance(&[false; 4], 2), vec![u16::MAX; 4]);
    }

    /// A generated pair: a burned disc and, outside it, a constant shift of the whole scene's
    /// dNBR. The ring's mean is the shift to 1e-6, and the classes of the shifted dNBR less the
    /// offset are those of the unshifted dNBR.
    #[test]
    fn the_offset_of_a_generated_shift_is_the_shift_and_the_classes_come_out_as_without_it() {
        use crate::indices::severity::SeverityScheme;
        let (w, h, shift) = (120usize, 100usize, 0.0731f32);
        let burned_truth: Vec<bool> = (0..w * h).map(|i| (((i % w) as f64 - 60.0).powi(2) + ((i / w) as f64 - 50.0).powi(2)).sqrt() < 20.0).collect();
        // Unshifted dNBR: 0.5 in the disc, small noise-free texture outside; some cloud.
        let truth: Vec<f32> = (0..w * h).map(|i| if burned_truth[i] { 0.5 + 0.1 * ((i % 7) as f32 / 7.0) } else { 0.02 * (((i * 31) % 11) as f32 / 11.0 - 0.5) }).collect();
        let mean_outside = {
            let v: Vec<f64> = (0..w * h).filter(|i| !burned_truth[*i]).map(|i| truth[i] as f64).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let mut shifted: Vec<f32> = truth.iter().map(|v| v + shift).collect();
        for i in (0..w * h).filter(|i| i % 13 == 0) {
            shifted[i] = f32::NAN;
        }
        let th = SeverityScheme::usgs();
        let burned: Vec<bool> = shifted.iter().map(|d| d.is_finite() && th.is_burned(th.classify(*d))).collect();
        let clear: Vec<bool> = shifted.iter().map(|d| d.is_finite()).collect();
        let cfg = DnbrOffset { ring_inner_m: 30.0, ring_outer_m: 200.0, ..DnbrOffset::default() };
        let set = unburned_set(&cfg, Around::Burned { burned, what: "the real burned map" }, &clear, w, 10.0);
        assert!(set.pixels > 1000, "{}", set.pixels);
        assert!(set.source.contains("30-200 m outside the real burned map"), "{}", set.source);
        // The set lies outside the disc and its rim, at most 20 pixels (+8 %) out.
        for i in 0..w * h {
            let r = (((i % w) as f64 - 60.0).powi(2) + ((i / w) as f64 - 50.0).powi(2)).sqrt();
            if set.contains(i % w, i / w) {
                assert!(r > 22.0 && r < 20.0 + 20.0 * 1.09 + 1.0, "pixel at r {r}");
            }
        }
        let offset = set.means(h, 17, 1, |rows| Ok(vec![shifted[rows.start * w..rows.end * w].to_vec()])).unwrap()[0];
        let expected = shift as f64 + {
            // The unshifted scene's own mean over the same pixels.
            let v: Vec<f64> = (0..w * h).filter(|i| set.contains(i % w, i / w)).map(|i| truth[i] as f64).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!((offset - expected).abs() < 1e-6, "{offset} vs {expected}");
        assert!((offset - shift as f64).abs() < 0.011 && mean_outside.abs() < 0.011);
        let mut corrected = shifted.clone();
        subtract(&mut corrected, offset as f32);
        let (a, b) = (th.classify_all(&corrected), th.classify_all(&truth.iter().zip(&shifted).map(|(t, s)| if s.is_finite() { *t } else { f32::NAN }).collect::<Vec<_>>()));
        let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert_eq!(differ, 0, "classes after the offset as without the shift");
    }

    /// Metres a pixel: UTM's own; a degree grid's by its latitude.
    #[test]
    fn pixels_are_measured_in_metres() {
        let wkt = |epsg: u32| gdal::spatial_ref::SpatialRef::from_epsg(epsg).unwrap().to_wkt().unwrap();
        let utm = wkt(32650);
        assert_eq!(pixel_metres(&[0.0, 10.0, 0.0, 0.0, 0.0, -10.0], &utm, 100), 10.0);
        let wgs84 = wkt(4326);
        let at_60 = pixel_metres(&[0.0, 0.0001, 0.0, 60.0, 0.0, -0.0001], &wgs84, 0);
        assert!((at_60 - 5.566).abs() < 0.01, "{at_60}");
    }

    /// No burned pixel: every clear pixel is unburned. A polygon: its clear inside. An empty
    /// set subtracts nothing. The ring's bounds are checked.
    #[test]
    fn the_set_without_a_burn_from_a_polygon_and_empty() {
        let clear = vec![true, false, true, true];
        let all = unburned_set(&DnbrOffset::default(), Around::Burned { burned: vec![false; 4], what: "the real burned map" }, &clear, 2, 10.0);
        assert_eq!(all.pixels, 3);
        assert!(all.source.starts_with("every clear pixel"));
        let poly = unburned_set(&DnbrOffset::default(), Around::Polygon { inside: vec![true, true, false, false], file: "u.geojson" }, &clear, 2, 10.0);
        assert_eq!((poly.pixels, poly.contains(0, 0), poly.contains(1, 0)), (1, true, false));
        assert!(!poly.any_in(1..2) && poly.any_in(0..1));
        let none = unburned_set(&DnbrOffset::default(), Around::Polygon { inside: vec![false; 4], file: "u.geojson" }, &clear, 2, 10.0);
        assert_eq!(none.means(2, 1, 2, |_| unreachable!("no strip holds a pixel")).unwrap(), vec![0.0, 0.0]);
        assert!(DnbrOffset::default().validate().is_ok());
        for (a, b) in [(100.0, 100.0), (-1.0, 5.0), (0.0, f64::NAN)] {
            let e = DnbrOffset { ring_inner_m: a, ring_outer_m: b, ..DnbrOffset::default() }.validate().unwrap_err();
            assert!(e.contains("ring_inner_m"), "{e}");
        }
    }
}
