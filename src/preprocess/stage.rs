//! The preprocess stage (native engine): the fetched AOI windows in `raw/` onto the project's
//! grid, one COG per date and sensor in `preprocessed/<date>/`:
//! - `S2.tif`: reflectance of the project's S2 bands (20 m bands resampled by GDAL's warp, which
//!   places pixels by their geotransforms), the baseline offset removed, and a last band `mask`
//!   (1 = cloud, shadow, cirrus with buffer, or no data);
//! - `S1.tif`: VV and VH backscatter in dB after a speckle filter on linear power.
//!
//! Sentinel-1 input must be map-projected linear power (Planetary Computer's sentinel-1-rtc);
//! GRD in radar geometry needs the SNAP engine or geocoding that is not built yet.
//! Rasters are warped by GDAL, then converted and filtered in blocks of rows (with the context
//! rows the mask buffer and the 7 x 7 filters need), so memory follows the grid's width.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::s1::{self, SpeckleFilter};
use super::s2::{self, SclMaskOptions};
use crate::catalog::stage::SearchResult;
use crate::catalog::{Scene, safe_id};
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::{Manifest, Project, Stage};
use crate::raster::{self, PixelWindow, Resampling, WarpOptions};

/// Parameters of the native engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    pub s2_resampling: Resampling,
    pub mask: SclMaskOptions,
    pub speckle: SpeckleFilter,
    /// Rows processed at a time: memory follows block_rows x grid width.
    pub block_rows: usize,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig { s2_resampling: Resampling::Bilinear, mask: SclMaskOptions::default(), speckle: SpeckleFilter::RefinedLee, block_rows: 512 }
    }
}

/// One written file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessed {
    pub date: String,
    pub sensor: String,
    pub path: PathBuf,
    /// Share of the grid with usable pixels, percent.
    pub valid_percent: f64,
}

fn raw_band(project: &Project, scene: &Scene, band: &str) -> PathBuf {
    project.raw_dir().join(scene.datetime.format("%Y-%m-%d").to_string()).join(safe_id(&scene.id)).join(format!("{}.tif", safe_id(band)))
}

/// Warps one band of several scenes (a mosaic) onto the grid, into `tmp_dir/<name>.tif`.
fn warp_band(sources: &[PathBuf], tmp_dir: &Path, name: &str, project: &Project, resampling: Resampling, src_nodata: Option<f64>) -> Result<String> {
    // Class rasters (SCL) stay bytes with 0 as no data (they may carry a colour table, which a
    // Float32 GeoTIFF cannot hold); measurements become Float32 with NaN.
    let classes = resampling == Resampling::Nearest && name == "SCL";
    for p in sources {
        if !p.is_file() {
            return Err(Error::Project { path: p.clone(), message: "missing; run `s2cr fetch` first".into() });
        }
    }
    let paths: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out = tmp_dir.join(format!("{name}.tif"));
    let opts = if classes {
        WarpOptions { resampling, src_nodata, dst_nodata: Some(0.0), output_type: Some("Byte".into()) }
    } else {
        WarpOptions { resampling, src_nodata, dst_nodata: Some(f64::NAN), output_type: Some("Float32".into()) }
    };
    raster::warp_to_grid(&refs, &out, &project.config.grid, &opts)?;
    Ok(out.display().to_string())
}

/// Rows `y0..y0+rows` of a warped band (invalid pixels as NaN), plus `halo` rows each side where
/// the grid has them; returns the values and the number of halo rows above.
fn read_rows(path: &str, width: usize, height: usize, y0: usize, rows: usize, halo: usize) -> Result<(Vec<f32>, usize)> {
    let top = y0.saturating_sub(halo);
    let bottom = (y0 + rows + halo).min(height);
    let stack = raster::read_window(path, &[1], Some(PixelWindow { x_off: 0, y_off: top, width, height: bottom - top }))?;
    let values = stack.bands[0].iter().zip(&stack.valid).map(|(v, ok)| if *ok { *v } else { f32::NAN }).collect();
    Ok((values, y0 - top))
}

fn s2_date(project: &Project, scenes: &[&Scene], cfg: &PreprocessConfig, date: &str, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
    let g = &project.config.grid;
    let (w, h) = (g.width, g.height);
    let bands: Vec<String> = project.config.bands.s2.iter().filter(|b| *b != "SCL").cloned().collect();
    // DN 0 is no data in L2A; one offset for the mosaic (the scenes of one acquisition share
    // their baseline).
    let offset = s2::dn_offset(scenes[0].processing_baseline.as_deref(), scenes[0].boa_offset_applied);
    let mut warped = Vec::new();
    for band in &bands {
        let sources: Vec<PathBuf> = scenes.iter().map(|s| raw_band(project, s, band)).collect();
        warped.push(warp_band(&sources, tmp, band, project, cfg.s2_resampling, Some(0.0))?);
    }
    let scl = if project.config.bands.s2.iter().any(|b| b == "SCL") {
        let sources: Vec<PathBuf> = scenes.iter().map(|s| raw_band(project, s, "SCL")).collect();
        Some(warp_band(&sources, tmp, "SCL", project, Resampling::Nearest, Some(0.0))?)
    } else {
        None
    };
    let mut names = bands.clone();
    names.push("mask".into());
    let path = project.preprocessed_dir().join(date).join("S2.tif");
    let mut writer = raster::BlockWriter::create(&path, g, &names, f32::NAN)?;
    let mut usable = 0usize;
    let block_rows = cfg.block_rows.max(1);
    for y0 in (0..h).step_by(block_rows) {
        progress.check_cancelled()?;
        let rows = block_rows.min(h - y0);
        let mut valid = vec![true; rows * w];
        for (i, band) in warped.iter().enumerate() {
            let (mut values, _) = read_rows(band, w, h, y0, rows, 0)?;
            s2::dn_to_reflectance(&mut values, offset);
            for (ok, v) in valid.iter_mut().zip(&values) {
                *ok &= v.is_finite();
            }
            writer.write_rows(i, y0, rows, &values)?;
        }
        let mut mask: Vec<f32> = valid.iter().map(|ok| if *ok { 0.0 } else { 1.0 }).collect();
        if let Some(scl) = &scl {
            // The buffer needs the classes of neighbouring rows.
            let (values, above) = read_rows(scl, w, h, y0, rows, cfg.mask.buffer_px)?;
            let classes: Vec<u8> = values.iter().map(|v| if v.is_finite() { *v as u8 } else { 0 }).collect();
            let block_mask = s2::scl_mask(&classes, w, classes.len() / w, &cfg.mask);
            for (m, s) in mask.iter_mut().zip(&block_mask[above * w..above * w + rows * w]) {
                if *s {
                    *m = 1.0;
                }
            }
        }
        usable += mask.iter().filter(|m| **m == 0.0).count();
        writer.write_rows(bands.len(), y0, rows, &mask)?;
    }
    writer.finish()?;
    Ok(Preprocessed { date: date.into(), sensor: "S2".into(), path, valid_percent: 100.0 * usable as f64 / (w * h) as f64 })
}

fn s1_date(project: &Project, scene: &Scene, cfg: &PreprocessConfig, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
    if !scene.collection.contains("rtc") {
        return Err(Error::Project {
            path: project.raw_dir(),
            message: format!(
                "{} is from {}: the native engine reads terrain-corrected linear power (sentinel-1-rtc); \
                 for GRD use the SNAP engine",
                scene.id, scene.collection
            ),
        });
    }
    let g = &project.config.grid;
    let (w, h) = (g.width, g.height);
    let date = scene.datetime.format("%Y-%m-%d").to_string();
    let pols = project.config.bands.s1.clone();
    let mut warped = Vec::new();
    for pol in &pols {
        warped.push(warp_band(&[raw_band(project, scene, pol)], tmp, pol, project, Resampling::Bilinear, None)?);
    }
    let path = project.preprocessed_dir().join(&date).join("S1.tif");
    let mut writer = raster::BlockWriter::create(&path, g, &pols, f32::NAN)?;
    // A 7 x 7 filter window needs 3 rows of context on each side of a block.
    let halo = 3;
    let mut usable = 0usize;
    let block_rows = cfg.block_rows.max(1);
    for y0 in (0..h).step_by(block_rows) {
        progress.check_cancelled()?;
        let rows = block_rows.min(h - y0);
        let mut valid = vec![true; rows * w];
        for (i, band) in warped.iter().enumerate() {
            let (linear, above) = read_rows(band, w, h, y0, rows, halo)?;
            let filtered = s1::speckle_filter(&linear, w, linear.len() / w, cfg.speckle);
            let db = s1::to_db(&filtered[above * w..above * w + rows * w]);
            for (ok, v) in valid.iter_mut().zip(&db) {
                *ok &= v.is_finite();
            }
            writer.write_rows(i, y0, rows, &db)?;
        }
        usable += valid.iter().filter(|v| **v).count();
    }
    writer.finish()?;
    Ok(Preprocessed { date, sensor: "S1".into(), path, valid_percent: 100.0 * usable as f64 / (w * h) as f64 })
}

/// Runs the native preprocessing of the fetched scenes.
pub fn preprocess(project: &Project, cfg: &PreprocessConfig, progress: &Progress) -> Result<Vec<Preprocessed>> {
    let search = SearchResult::load(project, "preprocess")?;
    let tmp = project.preprocessed_dir().join(".work");
    std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp, "creating a working folder"))?;
    let jobs: Vec<(String, Vec<&Scene>)> = search
        .chosen_s2()
        .into_iter()
        .filter_map(|scenes| scenes.first().map(|first| (first.datetime.format("%Y-%m-%d").to_string(), scenes.clone())))
        .collect();
    let s1 = search.paired_s1();
    let total = (jobs.len() + s1.len()) as u64;
    progress.started(Some(total));
    let mut done = Vec::new();
    let mut manifest = Manifest::new(Stage::Preprocess, serde_json::to_value(cfg).unwrap_or_default());
    for (date, scenes) in &jobs {
        progress.check_cancelled()?;
        let p = s2_date(project, scenes, cfg, date, &tmp, progress)?;
        progress.advanced(done.len() as u64 + 1, total, format!("S2 {date}: {:.1} % usable", p.valid_percent));
        for s in scenes {
            for band in &project.config.bands.s2 {
                manifest.add_input(project.root(), &raw_band(project, s, band))?;
            }
        }
        done.push(p);
    }
    for scene in s1 {
        progress.check_cancelled()?;
        let p = s1_date(project, scene, cfg, &tmp, progress)?;
        progress.advanced(done.len() as u64 + 1, total, format!("S1 {}: {:.1} % valid", p.date, p.valid_percent));
        for pol in &project.config.bands.s1 {
            manifest.add_input(project.root(), &raw_band(project, scene, pol))?;
        }
        done.push(p);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    for p in &done {
        manifest.add_output(project.root(), &p.path)?;
    }
    manifest.save(&project.manifest_path(Stage::Preprocess, None))?;
    Ok(done)
}
