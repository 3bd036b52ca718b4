//! The preprocess stage (native engine): the fetched AOI windows in `raw/` onto the project's
//! grid, one COG per date and sensor in `preprocessed/<date>/`:
//! - `S2.tif`: reflectance of the project's S2 bands (20 m bands resampled by GDAL's warp, which
//!   places pixels by their geotransforms), the baseline offset removed, and a last band `mask`
//!   (1 = cloud, shadow, cirrus with buffer, or no data);
//! - `S1.tif`: VV and VH backscatter in dB after a speckle filter on linear power.
//!
//! Sentinel-1 input must be map-projected linear power (Planetary Computer's sentinel-1-rtc);
//! GRD in radar geometry needs the SNAP engine or geocoding that is not built yet.
//! Rasters are processed whole per date (the AOI window), not yet block by block.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::s1::{self, SpeckleFilter};
use super::s2::{self, SclMaskOptions};
use crate::catalog::stage::SearchResult;
use crate::catalog::{Scene, safe_id};
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::{Manifest, Project, Stage};
use crate::raster::{self, BandStack, Resampling, WarpOptions, WriteOptions};

/// Parameters of the native engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    pub s2_resampling: Resampling,
    pub mask: SclMaskOptions,
    pub speckle: SpeckleFilter,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig { s2_resampling: Resampling::Bilinear, mask: SclMaskOptions::default(), speckle: SpeckleFilter::RefinedLee }
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

/// Warps one band of several scenes (a mosaic) onto the grid and reads it back.
fn warped(sources: &[PathBuf], tmp_dir: &Path, name: &str, project: &Project, resampling: Resampling, src_nodata: Option<f64>) -> Result<BandStack> {
    let paths: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    for p in sources {
        if !p.is_file() {
            return Err(Error::Project { path: p.clone(), message: "missing; run `s2cr fetch` first".into() });
        }
    }
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out = tmp_dir.join(format!("{name}.tif"));
    let opts = WarpOptions { resampling, src_nodata, dst_nodata: Some(f64::NAN), output_type: Some("Float32".into()) };
    raster::warp_to_grid(&refs, &out, &project.config.grid, &opts)?;
    let stack = raster::read_window(&out.display().to_string(), &[1], None)?;
    let _ = std::fs::remove_file(&out);
    Ok(stack)
}

fn write_stack(path: &Path, project: &Project, bands: Vec<Vec<f32>>, names: Vec<String>, valid: Vec<bool>) -> Result<()> {
    let g = &project.config.grid;
    let crs_wkt = gdal::spatial_ref::SpatialRef::from_epsg(g.epsg)
        .and_then(|s| s.to_wkt())
        .map_err(Error::gdal(format!("EPSG:{}", g.epsg), "creating the grid CRS"))?;
    let stack = BandStack { width: g.width, height: g.height, bands, valid, geo_transform: g.geo_transform(), crs_wkt, descriptions: names };
    raster::write_raster(path, &stack, &WriteOptions::default())
}

fn s2_date(project: &Project, scenes: &[&Scene], cfg: &PreprocessConfig, date: &str, tmp: &Path) -> Result<Preprocessed> {
    let bands: Vec<String> = project.config.bands.s2.iter().filter(|b| *b != "SCL").cloned().collect();
    let n = project.config.grid.width * project.config.grid.height;
    let mut out_bands = Vec::new();
    let mut valid = vec![true; n];
    for band in &bands {
        let sources: Vec<PathBuf> = scenes.iter().map(|s| raw_band(project, s, band)).collect();
        // DN 0 is no data in L2A.
        let mut stack = warped(&sources, tmp, band, project, cfg.s2_resampling, Some(0.0))?;
        // One offset for the mosaic: the scenes of one acquisition share their baseline.
        let offset = s2::dn_offset(scenes[0].processing_baseline.as_deref(), scenes[0].boa_offset_applied);
        let values = &mut stack.bands[0];
        for (v, ok) in values.iter_mut().zip(&stack.valid) {
            if !*ok {
                *v = 0.0;
            }
        }
        s2::dn_to_reflectance(values, offset);
        for (ok, v) in valid.iter_mut().zip(values.iter()) {
            *ok &= v.is_finite();
        }
        out_bands.push(std::mem::take(values));
    }
    let mut mask: Vec<f32> = valid.iter().map(|ok| if *ok { 0.0 } else { 1.0 }).collect();
    if project.config.bands.s2.iter().any(|b| b == "SCL") {
        let sources: Vec<PathBuf> = scenes.iter().map(|s| raw_band(project, s, "SCL")).collect();
        let scl = warped(&sources, tmp, "SCL", project, Resampling::Nearest, Some(0.0))?;
        let classes: Vec<u8> = scl.bands[0].iter().zip(&scl.valid).map(|(v, ok)| if *ok { *v as u8 } else { 0 }).collect();
        let g = &project.config.grid;
        let scl_mask = s2::scl_mask(&classes, g.width, g.height, &cfg.mask);
        for (m, s) in mask.iter_mut().zip(&scl_mask) {
            if *s {
                *m = 1.0;
            }
        }
    }
    let usable = mask.iter().filter(|m| **m == 0.0).count();
    let mut names = bands.clone();
    names.push("mask".into());
    out_bands.push(mask);
    // The mask band is valid everywhere; reflectance bands carry NaN where they have no data.
    let path = project.preprocessed_dir().join(date).join("S2.tif");
    write_stack(&path, project, out_bands, names, vec![true; n])?;
    Ok(Preprocessed { date: date.into(), sensor: "S2".into(), path, valid_percent: 100.0 * usable as f64 / n as f64 })
}

fn s1_date(project: &Project, scene: &Scene, cfg: &PreprocessConfig, tmp: &Path) -> Result<Preprocessed> {
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
    let date = scene.datetime.format("%Y-%m-%d").to_string();
    let mut bands = Vec::new();
    let mut names = Vec::new();
    for pol in &project.config.bands.s1 {
        let stack = warped(&[raw_band(project, scene, pol)], tmp, pol, project, Resampling::Bilinear, None)?;
        let linear: Vec<f32> = stack.bands[0].iter().zip(&stack.valid).map(|(v, ok)| if *ok { *v } else { f32::NAN }).collect();
        let filtered = s1::speckle_filter(&linear, g.width, g.height, cfg.speckle);
        bands.push(s1::to_db(&filtered));
        names.push(pol.clone());
    }
    let valid: Vec<bool> = (0..g.width * g.height).map(|i| bands.iter().all(|b| b[i].is_finite())).collect();
    let usable = valid.iter().filter(|v| **v).count();
    let path = project.preprocessed_dir().join(&date).join("S1.tif");
    write_stack(&path, project, bands, names, valid)?;
    Ok(Preprocessed { date, sensor: "S1".into(), path, valid_percent: 100.0 * usable as f64 / (g.width * g.height) as f64 })
}

/// Runs the native preprocessing of the fetched scenes.
pub fn preprocess(project: &Project, cfg: &PreprocessConfig, progress: &Progress) -> Result<Vec<Preprocessed>> {
    let search_path = project.catalog_dir().join("search.json");
    let text = std::fs::read_to_string(&search_path).map_err(|e| Error::Project { path: search_path.clone(), message: format!("{e}; run `s2cr search` and `s2cr fetch` first") })?;
    let search: SearchResult = serde_json::from_str(&text).map_err(|e| Error::Json { path: search_path.clone(), message: e.to_string() })?;
    let tmp = project.preprocessed_dir().join(".work");
    std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp, "creating a working folder"))?;
    let ids = |chosen: &Option<String>, group: &[String]| -> Vec<String> { if group.is_empty() { chosen.iter().cloned().collect() } else { group.to_vec() } };
    let mut jobs: Vec<(String, Vec<&Scene>)> = Vec::new();
    for (list, wanted) in [(&search.s2_t0, ids(&search.chosen_t0, &search.t0_scenes)), (&search.s2_t1, ids(&search.chosen_t1, &search.t1_scenes))] {
        let scenes: Vec<&Scene> = list.iter().filter(|s| wanted.contains(&s.id)).collect();
        if let Some(first) = scenes.first() {
            jobs.push((first.datetime.format("%Y-%m-%d").to_string(), scenes));
        }
    }
    let s1: Vec<&Scene> = search.pairs.iter().filter_map(|p| search.s1.iter().find(|s| s.id == p.s1_id)).collect();
    let total = (jobs.len() + s1.len()) as u64;
    progress.started(Some(total));
    let mut done = Vec::new();
    let mut manifest = Manifest::new(Stage::Preprocess, serde_json::to_value(cfg).unwrap_or_default());
    for (date, scenes) in &jobs {
        progress.check_cancelled()?;
        let p = s2_date(project, scenes, cfg, date, &tmp)?;
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
        let p = s1_date(project, scene, cfg, &tmp)?;
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
