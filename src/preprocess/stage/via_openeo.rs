//! The openEO engine in the stage: one batch job per date and sensor on the stage's back-end
//! (connected at its first use), the downloaded result put on the grid (warped only when it is
//! off the grid) and written by the same writers.

use std::path::{Path, PathBuf};

use super::s1::SpeckleFilter;
use super::openeo::{self, OpenEoSettings};
use super::{PreprocessConfig, Preprocessed};
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::Project;
use crate::grid::TargetGrid;
use crate::raster::{self, Resampling};
use super::writers::*;

/// The openEO back-end of the stage, connected and logged in.
pub(super) fn openeo_backend(project: &Project, cfg: &PreprocessConfig, progress: &Progress) -> Result<openeo::Backend> {
    let settings = openeo_settings(project, cfg)?;
    progress.info(format!("openEO back-end {}", settings.backend));
    openeo::Backend::connect(settings, openeo::Credentials::load())
}

/// The openEO settings in force: the stage's own, else project.yaml's.
pub(super) fn openeo_settings<'a>(project: &'a Project, cfg: &'a PreprocessConfig) -> Result<&'a OpenEoSettings> {
    cfg.openeo.as_ref().or(project.config.openeo.as_ref()).ok_or_else(|| Error::Project {
        path: project.root().join(crate::project::PROJECT_FILE),
        message: "the openEO engine needs a back-end: give its URL (the Preprocess step's openEO back-end, or `openeo: {backend: URL}` in project.yaml)".into(),
    })
}

/// A downloaded result on the project grid: as it is when it lies on the grid exactly, else
/// warped onto it (with a warning: a second resampling).
pub(super) fn openeo_on_grid(files: &[PathBuf], grid: &TargetGrid, tmp: &Path, name: &str, resampling: Resampling, label: &str, progress: &Progress) -> Result<String> {
    let [file] = files else {
        return Err(Error::Project { path: tmp.to_path_buf(), message: format!("{label}: the openEO job gave {} GeoTIFFs where one was expected (its graph reduces time to one mosaic)", files.len()) });
    };
    let location = file.display().to_string();
    let info = raster::info(&location)?;
    let gt = grid.geo_transform();
    let exact = info.width == grid.width && info.height == grid.height && info.epsg == Some(grid.epsg) && info.geo_transform.iter().zip(gt).all(|(a, b)| (a - b).abs() < 1e-6 * grid.pixel_size_m);
    if exact {
        return Ok(location);
    }
    progress.warn(format!(
        "{label}: the back-end's result ({} x {}, EPSG {:?}, origin {:.3}, {:.3}) is not on the project grid; warping it onto the grid ({} resampling, a second resampling)",
        info.width, info.height, info.epsg, info.geo_transform[0], info.geo_transform[3], resampling.gdal_name()
    ));
    warp_all_bands(file, tmp, name, grid, resampling)
}

/// How the stage's back-end gives Sentinel-2 (read once a stage run): its collection's scale
/// and offset, else project.yaml's `openeo.s2_offset`, else none (with a warning).
pub(super) fn s2_scaling(project: &Project, cfg: &PreprocessConfig, progress: &Progress) -> Result<openeo::S2Scaling> {
    let settings = openeo_settings(project, cfg)?;
    let bands: Vec<String> = project.config.bands.s2.iter().filter(|b| crate::project::is_reflectance_band(b)).cloned().collect();
    let collection = openeo::collection_metadata(&settings.backend, &settings.collections.s2)?;
    let s = openeo::choose_s2_scaling(&settings.collections.s2, Some(&collection), &bands, settings.s2_offset).map_err(|why| Error::invalid("openeo", why))?;
    if let Some(w) = &s.warning {
        progress.warn(w.clone());
    }
    progress.info(format!("Sentinel-2 from openEO: {}", s.describe()));
    Ok(s)
}

pub(super) fn s2_openeo(project: &Project, backend: &mut openeo::Backend, scaling: &openeo::S2Scaling, cfg: &PreprocessConfig, date: &str, graph: &serde_json::Value, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
    let grid = &project.config.grid;
    let label = format!("S2 {date}");
    let dir = tmp.join(format!("openeo-S2-{date}"));
    let files = openeo::run_job(backend, graph, &format!("s2cr {}: {label}", project.config.name), &project.preprocessed_openeo_jobs(), &dir, progress)?;
    let location = openeo_on_grid(&files, grid, &dir, "S2-grid", cfg.s2_resampling, &label, progress)?;
    let names: Vec<String> = project.config.bands.s2.iter().filter(|b| crate::project::is_reflectance_band(b)).cloned().collect();
    let count = raster::info(&location)?.bands.len();
    if count != names.len() {
        return Err(Error::Raster { location, message: format!("{label}: {count} bands where the graph asked for {} ({})", names.len(), names.join(", ")) });
    }
    let bands = names.iter().enumerate().map(|(i, n)| BandRef { name: n.clone(), path: location.clone(), band: i + 1 }).collect();
    let path = project.preprocessed_s2(date);
    let (valid_percent, mut counts) = write_s2(grid, &S2Sources { bands, scl: None, aot: None, dn_offset: None }, cfg, &path, progress)?;
    // The back-end masked by the project's rules; it does not say why a pixel is masked.
    counts.masked_remotely = counts.missing_bands;
    counts.missing_bands = 0;
    Ok(Preprocessed {
        date: date.into(),
        sensor: "S2".into(),
        path,
        valid_percent,
        mask_counts: Some(counts),
        processing: format!(
            "openEO {}: {} {} resampled onto the grid, SCL mask (buffer {} px) applied by the back-end, {}",
            backend.root(),
            openeo_settings(project, cfg)?.collections.s2,
            cfg.s2_resampling.gdal_name(),
            cfg.mask.buffer_px,
            scaling.describe()
        ),
    })
}

pub(super) fn s1_openeo(project: &Project, backend: &mut openeo::Backend, date: &str, cfg: &PreprocessConfig, graph: &serde_json::Value, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
    let grid = &project.config.grid;
    let settings = openeo_settings(project, cfg)?;
    let label = format!("S1 {date}");
    let dir = tmp.join(format!("openeo-S1-{date}"));
    let files = openeo::run_job(backend, graph, &format!("s2cr {}: {label}", project.config.name), &project.preprocessed_openeo_jobs(), &dir, progress)?;
    let location = openeo_on_grid(&files, grid, &dir, "S1-grid", Resampling::Bilinear, &label, progress)?;
    let pols = &project.config.bands.s1;
    let count = raster::info(&location)?.bands.len();
    if count != pols.len() {
        return Err(Error::Raster { location, message: format!("{label}: {count} bands where the graph asked for {}", pols.join(", ")) });
    }
    let bands: Vec<BandRef> = pols.iter().enumerate().map(|(i, p)| BandRef { name: p.clone(), path: location.clone(), band: i + 1 }).collect();
    let values = if cfg.speckle == SpeckleFilter::None { S1Values::Db } else { S1Values::DbToFilter(cfg.speckle) };
    let path = project.preprocessed_s1(date);
    let valid_percent = write_s1(grid, &bands, values, cfg.block_rows, &path, progress)?;
    Ok(Preprocessed {
        date: date.into(),
        sensor: "S1".into(),
        path,
        valid_percent,
        mask_counts: None,
        processing: format!("openEO {}: {} sar_backscatter {} with noise removal, bilinear onto the grid, dB; {:?} here", backend.root(), settings.collections.s1, settings.s1_coefficient, cfg.speckle),
    })
}

/// The graph of one date's Sentinel-2 job.
pub(super) fn s2_openeo_graph(project: &Project, cfg: &PreprocessConfig, scaling: &openeo::S2Scaling, date: &str) -> Result<serde_json::Value> {
    let settings = openeo_settings(project, cfg)?;
    let bands: Vec<String> = project.config.bands.s2.iter().filter(|b| crate::project::is_reflectance_band(b)).cloned().collect();
    let scl = project.config.bands.s2.iter().any(|b| b == "SCL");
    if cfg.mask.haze_aot.is_some() && !project.config.bands.s2.iter().any(|b| b == "AOT") {
        return Err(Error::Project { path: project.root().join(crate::project::PROJECT_FILE), message: "the haze mask (haze_aot) needs AOT in bands.s2 of project.yaml".into() });
    }
    let scope = openeo::GraphScope { grid: &project.config.grid, date };
    openeo::s2_graph(&scope, &settings.collections.s2, &bands, scl, &cfg.mask, cfg.s2_resampling, scaling)
}

pub(super) fn s1_openeo_graph(project: &Project, cfg: &PreprocessConfig, date: &str) -> Result<serde_json::Value> {
    let settings = openeo_settings(project, cfg)?;
    let scope = openeo::GraphScope { grid: &project.config.grid, date };
    openeo::s1_graph(&scope, &settings.collections.s1, &project.config.bands.s1, &settings.s1_coefficient)
}


/// The stage's openEO back-end, connected at its first use.
pub(super) fn connected<'a>(slot: &'a mut Option<openeo::Backend>, project: &Project, cfg: &PreprocessConfig, progress: &Progress) -> Result<&'a mut openeo::Backend> {
    if slot.is_none() {
        let mut backend = openeo_backend(project, cfg, progress)?;
        for notice in backend.take_notices() {
            progress.warn(notice);
        }
        *slot = Some(backend);
    }
    slot.as_mut().ok_or_else(|| Error::invalid("openeo", "no back-end"))
}
