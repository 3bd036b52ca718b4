//! The writers every engine's rasters go through, block by block of rows (with the context
//! rows the mask buffer and the 7 x 7 filters need): `S2.tif` (reflectance bands and the mask)
//! and `S1.tif` (dB per polarisation), and the warp of a band onto the grid. Later stages cannot
//! tell the engines apart because of this.

use std::path::{Path, PathBuf};

use super::s1::{self, SpeckleFilter};
use super::s2::{self, MaskCounts};
use super::{PreprocessConfig, require};
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::Project;
use crate::grid::TargetGrid;
use crate::raster::{self, PixelWindow, Resampling, WarpOptions};

/// Warps one band of several scenes (a mosaic) onto the grid, into `tmp_dir/<name>.tif`.
pub(super) fn warp_band(sources: &[PathBuf], tmp_dir: &Path, name: &str, grid: &TargetGrid, resampling: Resampling, src_nodata: Option<f64>) -> Result<String> {
    // Class rasters (SCL) stay bytes with 0 as no data (they may carry a colour table, which a
    // Float32 GeoTIFF cannot hold); measurements become Float32 with NaN.
    let classes = resampling == Resampling::Nearest && name == "SCL";
    for p in sources {
        require(p, "raster")?;
    }
    let paths: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out = tmp_dir.join(format!("{name}.tif"));
    let opts = if classes {
        WarpOptions { resampling, src_nodata, dst_nodata: Some(0.0), output_type: Some("Byte".into()), tps: false }
    } else {
        WarpOptions { resampling, src_nodata, dst_nodata: Some(f64::NAN), output_type: Some("Float32".into()), tps: false }
    };
    raster::warp_to_grid(&refs, &out, grid, &opts)?;
    Ok(out.display().to_string())
}

/// One band of a raster: path and 1-based band index.
#[derive(Debug, Clone)]
pub(super) struct BandRef {
    pub(super) name: String,
    pub(super) path: String,
    pub(super) band: usize,
}

/// Rows `y0..y0+rows` of a band (invalid pixels as NaN), plus `halo` rows each side where the
/// raster has them; returns the values and the number of halo rows above.
pub(super) fn read_rows(b: &BandRef, width: usize, height: usize, y0: usize, rows: usize, halo: usize) -> Result<(Vec<f32>, usize)> {
    let top = y0.saturating_sub(halo);
    let bottom = (y0 + rows + halo).min(height);
    let stack = raster::read_window(&b.path, &[b.band], Some(PixelWindow { x_off: 0, y_off: top, width, height: bottom - top }))?;
    let values = stack.bands[0].iter().zip(&stack.valid).map(|(v, ok)| if *ok { *v } else { f32::NAN }).collect();
    Ok((values, y0 - top))
}

/// The AOT band for the haze mask when the mask asks for it: an error without AOT in the
/// project's bands (the mask cannot be made), none when the mask is off.
pub(super) fn haze_source(project: &Project, cfg: &PreprocessConfig, progress: &Progress, make: impl FnOnce() -> Result<BandRef>) -> Result<Option<BandRef>> {
    let has_aot = project.config.bands.s2.iter().any(|b| b == "AOT");
    match (cfg.mask.haze_aot, has_aot) {
        (Some(_), true) => Ok(Some(make()?)),
        (Some(_), false) => Err(Error::Project {
            path: project.root().join(crate::project::PROJECT_FILE),
            message: "the haze mask (haze_aot) needs L2A's aerosol optical thickness: add AOT to bands.s2 in project.yaml, then fetch again".into(),
        }),
        (None, true) => {
            progress.info("AOT is fetched but the haze mask is off (haze_aot unset)");
            Ok(None)
        }
        (None, false) => Ok(None),
    }
}

/// Sentinel-2 bands on the grid, ready to be converted.
pub(super) struct S2Sources {
    pub(super) bands: Vec<BandRef>,
    pub(super) scl: Option<BandRef>,
    /// Aerosol optical thickness and its values per unit (1000 for digital numbers, 1 when
    /// scaled already), for the haze mask.
    pub(super) aot: Option<(BandRef, f32)>,
    /// DN offset before scaling by 1/10000; `None` when the values are reflectance already.
    pub(super) dn_offset: Option<f32>,
}

/// Writes `S2.tif` (reflectance bands + mask) block by block; returns the usable share and the
/// mask counts.
pub(super) fn write_s2(grid: &TargetGrid, src: &S2Sources, cfg: &PreprocessConfig, path: &Path, progress: &Progress) -> Result<(f64, MaskCounts)> {
    let (w, h) = (grid.width, grid.height);
    let mut names: Vec<String> = src.bands.iter().map(|b| b.name.clone()).collect();
    names.push("mask".into());
    let mut writer = raster::BlockWriter::create(path, grid, &names, f32::NAN)?;
    let mut counts = MaskCounts::default();
    let block_rows = cfg.block_rows.max(1);
    for y0 in (0..h).step_by(block_rows) {
        progress.check_cancelled()?;
        let rows = block_rows.min(h - y0);
        let mut valid = vec![true; rows * w];
        for (i, band) in src.bands.iter().enumerate() {
            let (mut values, _) = read_rows(band, w, h, y0, rows, 0)?;
            if let Some(offset) = src.dn_offset {
                s2::dn_to_reflectance(&mut values, offset);
            }
            for (ok, v) in valid.iter_mut().zip(&values) {
                *ok &= v.is_finite();
            }
            writer.write_rows(i, y0, rows, &values)?;
        }
        let mut mask: Vec<f32> = valid.iter().map(|ok| if *ok { 0.0 } else { 1.0 }).collect();
        if let Some(scl) = &src.scl {
            // The buffer needs the classes of neighbouring rows.
            let (values, above) = read_rows(scl, w, h, y0, rows, cfg.mask.buffer_px)?;
            let classes: Vec<u8> = values.iter().map(|v| if v.is_finite() { *v as u8 } else { 0 }).collect();
            let block_mask = s2::scl_mask(&classes, w, classes.len() / w, &cfg.mask);
            let (central_classes, central_mask) = (&classes[above * w..above * w + rows * w], &block_mask[above * w..above * w + rows * w]);
            let c = s2::mask_counts(central_classes, central_mask, &cfg.mask);
            counts.no_data += c.no_data;
            counts.cloud_shadow_cirrus += c.cloud_shadow_cirrus;
            counts.snow += c.snow;
            counts.buffer += c.buffer;
            for ((m, s), (ok, class)) in mask.iter_mut().zip(central_mask).zip(valid.iter().zip(central_classes)) {
                if *s {
                    *m = 1.0;
                } else if !*ok && !matches!(class, 0 | 1) {
                    counts.missing_bands += 1;
                } else if *ok {
                    counts.clear += 1;
                }
            }
        } else {
            counts.clear += valid.iter().filter(|v| **v).count();
            counts.missing_bands += valid.iter().filter(|v| !**v).count();
        }
        if let (Some((aot, per_unit)), Some(threshold)) = (&src.aot, cfg.mask.haze_aot) {
            let (values, _) = read_rows(aot, w, h, y0, rows, 0)?;
            for (m, hazy) in mask.iter_mut().zip(s2::haze_mask(&values, threshold, *per_unit)) {
                if hazy && *m == 0.0 {
                    *m = 1.0;
                    counts.haze += 1;
                    counts.clear = counts.clear.saturating_sub(1);
                }
            }
        }
        writer.write_rows(src.bands.len(), y0, rows, &mask)?;
    }
    writer.finish()?;
    Ok((100.0 * counts.clear as f64 / (w * h) as f64, counts))
}

/// What to do with Sentinel-1 values on the grid before writing them as dB.
#[derive(Debug, Clone, Copy)]
pub(super) enum S1Values {
    /// Linear power to be speckle-filtered, then dB.
    LinearToFilter(SpeckleFilter),
    /// Linear power, already filtered: dB only.
    Linear,
    /// dB already (SNAP v2/v3, openEO without a speckle filter).
    Db,
    /// dB, to be speckle-filtered on linear power and turned back to dB (openEO).
    DbToFilter(SpeckleFilter),
}

/// Writes `S1.tif` (dB per polarisation) block by block; returns the valid share.
pub(super) fn write_s1(grid: &TargetGrid, bands: &[BandRef], values: S1Values, block_rows: usize, path: &Path, progress: &Progress) -> Result<f64> {
    let (w, h) = (grid.width, grid.height);
    let names: Vec<String> = bands.iter().map(|b| b.name.clone()).collect();
    let mut writer = raster::BlockWriter::create(path, grid, &names, f32::NAN)?;
    // A 7 x 7 filter window needs 3 rows of context on each side of a block.
    let halo = if matches!(values, S1Values::LinearToFilter(_) | S1Values::DbToFilter(_)) { 3 } else { 0 };
    let mut usable = 0usize;
    let block_rows = block_rows.max(1);
    for y0 in (0..h).step_by(block_rows) {
        progress.check_cancelled()?;
        let rows = block_rows.min(h - y0);
        let mut valid = vec![true; rows * w];
        for (i, band) in bands.iter().enumerate() {
            let (v, above) = read_rows(band, w, h, y0, rows, halo)?;
            let db = match values {
                S1Values::LinearToFilter(filter) => {
                    let filtered = s1::speckle_filter(&v, w, v.len() / w, filter);
                    s1::to_db(&filtered[above * w..above * w + rows * w])
                }
                S1Values::Linear => s1::to_db(&v),
                S1Values::Db => v,
                S1Values::DbToFilter(filter) => {
                    let linear: Vec<f32> = s1::from_db(&v);
                    let filtered = s1::speckle_filter(&linear, w, linear.len() / w, filter);
                    s1::to_db(&filtered[above * w..above * w + rows * w])
                }
            };
            for (ok, x) in valid.iter_mut().zip(&db) {
                *ok &= x.is_finite();
            }
            writer.write_rows(i, y0, rows, &db)?;
        }
        usable += valid.iter().filter(|v| **v).count();
    }
    writer.finish()?;
    Ok(100.0 * usable as f64 / (w * h) as f64)
}

/// Every band of `src` warped onto the grid, into `tmp/<name>.tif`.
pub(super) fn warp_all_bands(src: &Path, tmp: &Path, name: &str, grid: &TargetGrid, resampling: Resampling) -> Result<String> {
    let out = tmp.join(format!("{name}.tif"));
    let opts = WarpOptions { resampling, src_nodata: None, dst_nodata: Some(f64::NAN), output_type: Some("Float32".into()), tps: false };
    raster::warp_to_grid(&[src.display().to_string().as_str()], &out, grid, &opts)?;
    Ok(out.display().to_string())
}
