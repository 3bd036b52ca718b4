//! The native engine: Sentinel-2 warped onto the grid and masked by its scene classification;
//! Sentinel-1 as map-projected linear power (RTC) or a GRD window calibrated, noise-removed and
//! speckle-filtered in radar geometry, then placed on the grid through its GCPs.

use std::path::{Path, PathBuf};

use super::s1::{self, Calibration, Noise};
use super::s2;
use super::{PreprocessConfig, Preprocessed, raw_band, require, scene_dir};
use crate::catalog::Scene;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::Project;
use crate::raster::{self, Resampling, WarpOptions};
use super::writers::*;

pub(super) fn s2_native(project: &Project, scenes: &[&Scene], cfg: &PreprocessConfig, date: &str, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
    let grid = &project.config.grid;
    // DN 0 is no data in L2A; one offset for the mosaic (the scenes of one acquisition share
    // their baseline).
    let offset = s2::dn_offset(scenes[0].processing_baseline.as_deref(), scenes[0].boa_offset_applied);
    let mut bands = Vec::new();
    for band in project.config.bands.s2.iter().filter(|b| crate::project::is_reflectance_band(b)) {
        let sources: Vec<PathBuf> = scenes.iter().map(|s| raw_band(project, s, band)).collect();
        bands.push(BandRef { name: band.clone(), path: warp_band(&sources, tmp, band, grid, cfg.s2_resampling, Some(0.0))?, band: 1 });
    }
    let scl = if project.config.bands.s2.iter().any(|b| b == "SCL") {
        let sources: Vec<PathBuf> = scenes.iter().map(|s| raw_band(project, s, "SCL")).collect();
        Some(BandRef { name: "SCL".into(), path: warp_band(&sources, tmp, "SCL", grid, Resampling::Nearest, Some(0.0))?, band: 1 })
    } else {
        None
    };
    let aot = haze_source(project, cfg, progress, || {
        let sources: Vec<PathBuf> = scenes.iter().map(|s| raw_band(project, s, "AOT")).collect();
        Ok(BandRef { name: "AOT".into(), path: warp_band(&sources, tmp, "AOT", grid, Resampling::Bilinear, Some(0.0))?, band: 1 })
    })?
    .map(|b| (b, s2::AOT_QUANTIFICATION_VALUE));
    let path = project.preprocessed_s2(date);
    let (valid_percent, counts) = write_s2(grid, &S2Sources { bands, scl, aot, dn_offset: Some(offset) }, cfg, &path, progress)?;
    Ok(Preprocessed {
        date: date.into(),
        sensor: "S2".into(),
        path,
        valid_percent,
        mask_counts: Some(counts),
        processing: format!("native: DN offset {offset}, /10000, {} resampling to {} m", cfg.s2_resampling.gdal_name(), grid.pixel_size_m),
    })
}

pub(super) fn s1_native(project: &Project, scene: &Scene, cfg: &PreprocessConfig, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
    let grid = &project.config.grid;
    let date = crate::project::date_folder(&scene.datetime);
    let path = project.preprocessed_s1(&date);
    let mut bands = Vec::new();
    let (values, processing) = if scene.is_grd() {
        for pol in &project.config.bands.s1 {
            progress.check_cancelled()?;
            let radar = grd_to_radar_power(project, scene, pol, cfg, tmp, progress)?;
            let out = tmp.join(format!("{pol}.tif"));
            let opts = WarpOptions { resampling: Resampling::Bilinear, src_nodata: None, dst_nodata: Some(f64::NAN), output_type: Some("Float32".into()), tps: true };
            raster::warp_to_grid(&[radar.as_str()], &out, grid, &opts)?;
            bands.push(BandRef { name: pol.clone(), path: out.display().to_string(), band: 1 });
        }
        (
            S1Values::Linear,
            format!(
                "native GRD: {:?} with thermal noise removed, {:?} in radar geometry, ellipsoid geocoding by thin-plate spline through the GCPs (no terrain correction), dB",
                cfg.grd_coefficient, cfg.speckle
            ),
        )
    } else if scene.collection.contains("rtc") || scene.collection.contains("sigma0") {
        for pol in &project.config.bands.s1 {
            bands.push(BandRef { name: pol.clone(), path: warp_band(&[raw_band(project, scene, pol)], tmp, pol, grid, Resampling::Bilinear, None)?, band: 1 });
        }
        let what = if scene.collection.contains("rtc") { "RTC gamma0" } else { "terrain-corrected sigma0" };
        (S1Values::LinearToFilter(cfg.speckle), format!("native {what} (linear power): {:?} on the grid, dB", cfg.speckle))
    } else {
        return Err(Error::Project {
            path: scene_dir(project, scene),
            message: format!(
                "{} is from {}: the native engine reads map-projected linear power (a collection named *rtc* or *sigma0*) or sentinel-1-grd (with calibration XML)",
                scene.id, scene.collection
            ),
        });
    };
    let valid_percent = write_s1(grid, &bands, values, cfg.block_rows, &path, progress)?;
    Ok(Preprocessed { date, sensor: "S1".into(), path, valid_percent, mask_counts: None, processing })
}

/// The window offset (pixel, line) of a fetched GRD window in its full product.
pub(super) fn window_offset(location: &str) -> Result<(usize, usize)> {
    use gdal::Metadata;
    let ds = raster::open(location)?;
    let Some(text) = ds.metadata_item(crate::fetch::WINDOW_OFFSET_KEY, "") else {
        return Ok((0, 0));
    };
    let parse = |s: Option<&str>| s.and_then(|v| v.trim().parse::<usize>().ok());
    let mut parts = text.split(',');
    match (parse(parts.next()), parse(parts.next())) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(Error::Raster { location: location.into(), message: format!("metadata {}={text:?} is not \"x,y\"; fetch the scene again", crate::fetch::WINDOW_OFFSET_KEY) }),
    }
}

/// Calibrates a fetched GRD window (digital numbers) to linear power with thermal noise removed
/// and speckle-filters it, in radar geometry (the GCPs are kept): `tmp/<pol>-radar.tif`.
pub(super) fn grd_to_radar_power(project: &Project, scene: &Scene, pol: &str, cfg: &PreprocessConfig, tmp: &Path, progress: &Progress) -> Result<String> {
    let dn_path = raw_band(project, scene, pol);
    let cal_path = project.raw_grd_table(&scene.datetime, &scene.id, "calibration", pol);
    let noise_path = project.raw_grd_table(&scene.datetime, &scene.id, "noise", pol);
    require(&dn_path, "GRD window")?;
    require(&cal_path, "calibration table")?;
    require(&noise_path, "noise table")?;
    let calibration = Calibration::load(&cal_path)?;
    let noise = Noise::load(&noise_path)?;
    let dn_loc = dn_path.display().to_string();
    let origin = window_offset(&dn_loc)?;
    let info = raster::info(&dn_loc)?;
    let (w, h) = (info.width, info.height);
    let out = tmp.join(format!("{pol}-radar.tif"));
    let mut writer = raster::BlockWriter::create_like(&out, &dn_loc, &[pol.to_string()], f32::NAN)?;
    let dn = BandRef { name: pol.into(), path: dn_loc, band: 1 };
    let halo = 3;
    for y0 in (0..h).step_by(cfg.block_rows.max(1)) {
        progress.check_cancelled()?;
        let rows = cfg.block_rows.max(1).min(h - y0);
        let (values, above) = read_rows(&dn, w, h, y0, rows, halo)?;
        let top = y0 - above;
        let power = s1::calibrate(&values, w, (origin.0, origin.1 + top), &calibration, cfg.grd_coefficient, Some(&noise));
        let filtered = s1::speckle_filter(&power, w, power.len() / w, cfg.speckle);
        writer.write_rows(0, y0, rows, &filtered[above * w..above * w + rows * w])?;
    }
    writer.finish()?;
    Ok(out.display().to_string())
}

