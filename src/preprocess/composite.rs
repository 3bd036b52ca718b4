//! Composites of a date window's clear Sentinel-2 observations, per pixel.
//!
//! Every input is one acquisition preprocessed onto the project grid (reflectance bands and a
//! `mask` band, non-zero where cloud, shadow or no data, as `preprocessed/<date>/S2.tif`). Over
//! the clear observations of each pixel the composite takes the median of each band (`median`:
//! the middle value, or the mean of the two middle ones) or the values of the latest clear
//! acquisition (`latest-clear`). Beside the bands it writes a `mask` band (1 where no
//! acquisition is clear), the count of clear observations and the date used, in days since
//! 1970-01-01 (with the median: the latest clear date among those it took), so the composite
//! reads like any preprocessed Sentinel-2 image. Strips of rows, so memory follows the grid's
//! width times the number of acquisitions.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::job::Progress;
use crate::raster::{self, BlockWriter, PixelWindow};

pub use crate::project::CompositeMethod;

/// One acquisition on the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Acquisition {
    pub date: chrono::NaiveDate,
    /// A preprocessed Sentinel-2 raster (reflectance bands and `mask`).
    pub path: PathBuf,
}

/// The composite's extra bands, after the reflectance bands and `mask`.
pub const COUNT_BAND: &str = "clear observations";
pub const DATE_BAND: &str = "date used (days since 1970-01-01)";

/// What [`write_composite`] made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositeSummary {
    pub method: CompositeMethod,
    /// The acquisitions' dates, oldest first.
    pub dates: Vec<String>,
    pub bands: Vec<String>,
    pub path: PathBuf,
    /// Grid pixels, and those with at least one clear observation.
    pub pixels: u64,
    pub covered: u64,
}

/// Days since 1970-01-01 of `date`.
pub fn epoch_days(date: chrono::NaiveDate) -> i64 {
    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days()
}

/// The acquisitions' positions of the reflectance bands (1-based, in the first file's order of
/// the bands named, all but `mask`) and of the mask band; refuses files off the first's grid or
/// without a band.
fn band_layout(acquisitions: &[Acquisition]) -> Result<(Vec<String>, Vec<(Vec<usize>, usize)>, raster::RasterInfo)> {
    let first = raster::info(&acquisitions[0].path.display().to_string())?;
    let names: Vec<String> = first.bands.iter().map(|b| b.description.clone()).filter(|d| !d.eq_ignore_ascii_case("mask")).collect();
    let mut layout = Vec::with_capacity(acquisitions.len());
    for a in acquisitions {
        let loc = a.path.display().to_string();
        let info = raster::info(&loc)?;
        if (info.width, info.height) != (first.width, first.height) || info.geo_transform != first.geo_transform || !raster::same_crs(&info.crs_wkt, &first.crs_wkt) {
            return Err(Error::Raster { location: loc, message: format!("not on the grid of {} ({} x {}); preprocess it onto the project grid", acquisitions[0].path.display(), first.width, first.height) });
        }
        let find = |name: &str| info.bands.iter().position(|b| b.description.eq_ignore_ascii_case(name)).map(|i| i + 1);
        let mut bands = Vec::with_capacity(names.len());
        for n in &names {
            bands.push(find(n).ok_or_else(|| Error::Raster { location: loc.clone(), message: format!("has no band {n} (its bands: {}); preprocess every acquisition with the same bands", info.bands.iter().map(|b| b.description.as_str()).collect::<Vec<_>>().join(", ")) })?);
        }
        let mask = find("mask").ok_or_else(|| Error::Raster { location: loc.clone(), message: "has no mask band: a composite needs each acquisition's cloud mask (preprocess it with SCL)".into() })?;
        layout.push((bands, mask));
    }
    Ok((names, layout, first))
}

/// Writes the composite of `acquisitions` (any order; one is a composite of one scene) to
/// `out`, in strips of `rows` rows.
pub fn write_composite(acquisitions: &[Acquisition], method: CompositeMethod, out: &Path, rows: usize, progress: &Progress) -> Result<CompositeSummary> {
    if method == CompositeMethod::Off {
        return Err(Error::invalid("composite", "the method is off: choose median or latest-clear"));
    }
    if acquisitions.is_empty() {
        return Err(Error::invalid("composite", format!("no acquisition to composite into {}: the window has no Sentinel-2 scene; widen its dates", out.display())));
    }
    let mut acquisitions = acquisitions.to_vec();
    acquisitions.sort_by_key(|a| a.date);
    let (names, layout, grid) = band_layout(&acquisitions)?;
    let (width, height) = (grid.width, grid.height);
    let nb = names.len();
    let mut out_names = names.clone();
    out_names.extend(["mask".to_string(), COUNT_BAND.to_string(), DATE_BAND.to_string()]);
    let rows = rows.max(1);
    let mut writer = BlockWriter::create_on(out, width, height, grid.geo_transform, &grid.crs_wkt, &out_names, f32::NAN, rows)?;
    let days: Vec<f32> = acquisitions.iter().map(|a| epoch_days(a.date) as f32).collect();
    let mut covered = 0u64;
    progress.started(Some(height.div_ceil(rows) as u64));
    for (done, y0) in (0..height).step_by(rows).enumerate() {
        progress.check_cancelled()?;
        let h = rows.min(height - y0);
        let window = Some(PixelWindow { x_off: 0, y_off: y0, width, height: h });
        let n = width * h;
        // Per acquisition: its bands and which pixels are clear.
        let mut stacks = Vec::with_capacity(acquisitions.len());
        for (a, (bands, mask)) in acquisitions.iter().zip(&layout) {
            let loc = a.path.display().to_string();
            let s = raster::read_window_reusing(&loc, bands, window)?;
            let m = raster::read_window_reusing(&loc, &[*mask], window)?;
            let clear: Vec<bool> = (0..n).map(|i| s.valid[i] && m.bands[0][i] == 0.0 && s.bands.iter().all(|b| b[i].is_finite())).collect();
            stacks.push((s.bands, clear));
        }
        let mut values = vec![vec![f32::NAN; n]; nb];
        let (mut mask, mut count, mut date) = (vec![1f32; n], vec![0f32; n], vec![f32::NAN; n]);
        let mut column = Vec::with_capacity(acquisitions.len());
        for i in 0..n {
            let clear: Vec<usize> = (0..acquisitions.len()).filter(|&k| stacks[k].1[i]).collect();
            count[i] = clear.len() as f32;
            let Some(&latest) = clear.last() else { continue };
            covered += 1;
            mask[i] = 0.0;
            date[i] = days[latest];
            for (b, out) in values.iter_mut().enumerate() {
                out[i] = match method {
                    CompositeMethod::LatestClear => stacks[latest].0[b][i],
                    _ => {
                        column.clear();
                        column.extend(clear.iter().map(|&k| stacks[k].0[b][i]));
                        median(&mut column)
                    }
                };
            }
        }
        for (b, v) in values.iter().enumerate() {
            writer.write_rows(b, y0, h, v)?;
        }
        writer.write_rows(nb, y0, h, &mask)?;
        writer.write_rows(nb + 1, y0, h, &count)?;
        writer.write_rows(nb + 2, y0, h, &date)?;
        progress.advanced(done as u64 + 1, height.div_ceil(rows) as u64, format!("composite rows {}..{}", y0, y0 + h));
    }
    writer.finish()?;
    Ok(CompositeSummary {
        method,
        dates: acquisitions.iter().map(|a| a.date.to_string()).collect(),
        bands: names,
        path: out.to_path_buf(),
        pixels: (width * height) as u64,
        covered,
    })
}

/// The median of `v` (not empty): the middle value, or the mean of the two middle ones.
fn median(v: &mut [f32]) -> f32 {
    v.sort_by(f32::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut [7.0]), 7.0);
        assert_eq!(epoch_days(chrono::NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
    }
}
