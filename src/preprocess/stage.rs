//! The preprocess stage: the fetched scenes in `raw/` onto the project's grid, one COG per date
//! and sensor in `preprocessed/<date>/`:
//! - `S2.tif`: reflectance of the project's S2 bands (20 m bands resampled by GDAL's warp, which
//!   places pixels by their geotransforms), the baseline offset removed, and a last band `mask`
//!   (1 = cloud, shadow, cirrus with buffer, or no data);
//! - `S1.tif`: VV and VH backscatter in dB after a speckle filter on linear power.
//!
//! Two engines. **Native** (default): Sentinel-1 is either map-projected linear power
//! (Planetary Computer's sentinel-1-rtc: terrain-corrected gamma0) or a GRD window in radar
//! geometry (digital numbers + the product's calibration and noise XML): calibrated to sigma0
//! with thermal noise removed, speckle-filtered in radar geometry, then placed on the grid by a
//! thin-plate spline through the product's geolocation-grid GCPs. That is *ellipsoid*
//! geocoding: the GCPs sit on the ellipsoid at the heights of the annotation grid, so relief
//! displacement (foreshortening, layover) is not corrected and no radiometric terrain
//! flattening is applied; GDAL offers DEM-assisted geocoding only for RPC models, not GCPs. For
//! terrain correction use RTC input or the SNAP engine. **SNAP**: the research code's graphs run
//! by ESA SNAP's `gpt` on whole SAFE products (see `snap`); their output is warped onto the grid.
//!
//! Rasters are converted and filtered in blocks of rows (with the context rows the mask buffer
//! and the 7 x 7 filters need), so memory follows the grid's width, not the scene's size.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::s1::{self, Calibration, Coefficient, Noise, SpeckleFilter};
use super::s2::{self, MaskCounts, SclMaskOptions};
use super::openeo::{self, OpenEoSettings};
use super::snap::{self, SnapGraph, SnapParams};
use crate::catalog::stage::SearchResult;
use crate::catalog::Scene;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::{Manifest, Project, Stage, StageState};
use crate::grid::TargetGrid;
use crate::raster::{self, PixelWindow, Resampling, WarpOptions};

/// Which software does the preprocessing. In YAML a name (`engine: openeo`) or a map with the
/// engine's settings (`engine: {engine: snap, s1_graph: ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", tag = "engine")]
#[serde(try_from = "EngineText")]
pub enum Engine {
    /// This program (GDAL for warping).
    #[default]
    Native,
    /// ESA SNAP's gpt with the research graphs, on SAFE products.
    Snap {
        /// Sentinel-1 graph (v3 puts the output on the Sentinel-2 grid).
        s1_graph: SnapGraph,
        /// gpt executable; PATH and SNAP's install places when unset.
        gpt: Option<PathBuf>,
        /// Folder holding the SAFE products (folders or zips); `raw/<date>/<scene>/` when unset.
        products: Option<PathBuf>,
    },
    /// Process graphs run as batch jobs by an openEO back-end (`openeo:` in project.yaml, or in
    /// these settings).
    Openeo,
}

/// How an engine is written: its name, or the tagged map.
#[derive(Deserialize)]
#[serde(untagged)]
enum EngineText {
    Name(String),
    Map(EngineMap),
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", tag = "engine")]
enum EngineMap {
    Native,
    Snap { s1_graph: SnapGraph, gpt: Option<PathBuf>, products: Option<PathBuf> },
    Openeo,
}

impl TryFrom<EngineText> for Engine {
    type Error = String;
    fn try_from(text: EngineText) -> std::result::Result<Engine, String> {
        Ok(match text {
            EngineText::Name(name) => match name.as_str() {
                "native" => Engine::Native,
                "openeo" => Engine::Openeo,
                "snap" => Engine::Snap { s1_graph: SnapGraph::Sentinel1V3, gpt: None, products: None },
                other => return Err(format!("unknown engine {other:?}: native, snap or openeo")),
            },
            EngineText::Map(EngineMap::Native) => Engine::Native,
            EngineText::Map(EngineMap::Openeo) => Engine::Openeo,
            EngineText::Map(EngineMap::Snap { s1_graph, gpt, products }) => Engine::Snap { s1_graph, gpt, products },
        })
    }
}

/// Parameters of the stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreprocessConfig {
    pub engine: Engine,
    pub s2_resampling: Resampling,
    pub mask: SclMaskOptions,
    pub speckle: SpeckleFilter,
    /// Backscatter coefficient of GRD calibration (native engine).
    pub grd_coefficient: Coefficient,
    /// Rows processed at a time: memory follows block_rows x grid width.
    pub block_rows: usize,
    /// openEO engine: the back-end, instead of project.yaml's `openeo:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openeo: Option<OpenEoSettings>,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            engine: Engine::Native,
            s2_resampling: Resampling::Bilinear,
            mask: SclMaskOptions::default(),
            speckle: SpeckleFilter::RefinedLee,
            grd_coefficient: Coefficient::Sigma0,
            block_rows: 512,
            openeo: None,
        }
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
    /// Sentinel-2: masked pixels by cause.
    #[serde(default)]
    pub mask_counts: Option<MaskCounts>,
    /// What was done, in words (engine, input kind, corrections).
    #[serde(default)]
    pub processing: String,
}

fn raw_band(project: &Project, scene: &Scene, band: &str) -> PathBuf {
    project.raw_band_file(&scene.datetime, &scene.id, band)
}

fn scene_dir(project: &Project, scene: &Scene) -> PathBuf {
    project.raw_scene_dir(&scene.datetime, &scene.id)
}

fn require(path: &Path, what: &str) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Error::Project { path: path.to_path_buf(), message: format!("missing {what}; run `s2cr fetch` first") })
    }
}

/// Warps one band of several scenes (a mosaic) onto the grid, into `tmp_dir/<name>.tif`.
fn warp_band(sources: &[PathBuf], tmp_dir: &Path, name: &str, grid: &TargetGrid, resampling: Resampling, src_nodata: Option<f64>) -> Result<String> {
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
struct BandRef {
    name: String,
    path: String,
    band: usize,
}

/// Rows `y0..y0+rows` of a band (invalid pixels as NaN), plus `halo` rows each side where the
/// raster has them; returns the values and the number of halo rows above.
fn read_rows(b: &BandRef, width: usize, height: usize, y0: usize, rows: usize, halo: usize) -> Result<(Vec<f32>, usize)> {
    let top = y0.saturating_sub(halo);
    let bottom = (y0 + rows + halo).min(height);
    let stack = raster::read_window(&b.path, &[b.band], Some(PixelWindow { x_off: 0, y_off: top, width, height: bottom - top }))?;
    let values = stack.bands[0].iter().zip(&stack.valid).map(|(v, ok)| if *ok { *v } else { f32::NAN }).collect();
    Ok((values, y0 - top))
}

/// The AOT band for the haze mask when the mask asks for it: an error without AOT in the
/// project's bands (the mask cannot be made), none when the mask is off.
fn haze_source(project: &Project, cfg: &PreprocessConfig, progress: &Progress, make: impl FnOnce() -> Result<BandRef>) -> Result<Option<BandRef>> {
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
struct S2Sources {
    bands: Vec<BandRef>,
    scl: Option<BandRef>,
    /// Aerosol optical thickness and its values per unit (1000 for digital numbers, 1 when
    /// scaled already), for the haze mask.
    aot: Option<(BandRef, f32)>,
    /// DN offset before scaling by 1/10000; `None` when the values are reflectance already.
    dn_offset: Option<f32>,
}

/// Writes `S2.tif` (reflectance bands + mask) block by block; returns the usable share and the
/// mask counts.
fn write_s2(grid: &TargetGrid, src: &S2Sources, cfg: &PreprocessConfig, path: &Path, progress: &Progress) -> Result<(f64, MaskCounts)> {
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
enum S1Values {
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
fn write_s1(grid: &TargetGrid, bands: &[BandRef], values: S1Values, block_rows: usize, path: &Path, progress: &Progress) -> Result<f64> {
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

fn s2_native(project: &Project, scenes: &[&Scene], cfg: &PreprocessConfig, date: &str, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
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

fn s1_native(project: &Project, scene: &Scene, cfg: &PreprocessConfig, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
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
fn window_offset(location: &str) -> Result<(usize, usize)> {
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
fn grd_to_radar_power(project: &Project, scene: &Scene, pol: &str, cfg: &PreprocessConfig, tmp: &Path, progress: &Progress) -> Result<String> {
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

/// A SAFE product (folder or zip) of `scene` in `dir`: names starting with the scene id (PC
/// and Earth Search ids are SAFE names without the unique suffix), or for Sentinel-2 any L2A
/// product of the same date and MGRS tile.
fn find_product(dir: &Path, scene: &Scene) -> Option<PathBuf> {
    let id = scene.id.trim_end_matches("_rtc");
    let day = scene.datetime.format("%Y%m%d").to_string();
    let tile = scene.mgrs_tile.as_deref().map(|t| format!("_T{t}_"));
    let entries = std::fs::read_dir(dir).ok()?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let is_product = name.ends_with(".SAFE") || name.ends_with(".zip");
            let same_scene = name.starts_with(id)
                || (name.contains(&format!("MSIL2A_{day}")) && tile.as_ref().is_some_and(|t| name.contains(t.as_str())));
            is_product && same_scene
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn snap_product(project: &Project, scene: &Scene, products: Option<&Path>) -> Result<PathBuf> {
    let dirs: Vec<PathBuf> = products.map(Path::to_path_buf).into_iter().chain([scene_dir(project, scene)]).collect();
    dirs.iter().find_map(|d| find_product(d, scene)).ok_or_else(|| Error::Project {
        path: dirs[0].clone(),
        message: format!(
            "no SAFE product (folder or zip) for {} in {}: the SNAP engine works on whole products; download it \
             (e.g. from the Copernicus Data Space Browser) into one of these folders, or use the native engine",
            scene.id,
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" or ")
        ),
    })
}

/// SNAP's names of Sentinel-2 bands (B2 ... B12, B8A).
fn snap_band_name(band: &str) -> String {
    match band {
        "SCL" => "quality_scene_classification".into(),
        "AOT" => "quality_aot".into(),
        b => match b.strip_prefix("B0") {
            Some(rest) => format!("B{rest}"),
            None => b.into(),
        },
    }
}

fn snap_params(project: &Project, input: PathBuf, output: PathBuf) -> Result<SnapParams> {
    let aoi = project.aoi()?;
    // Subset takes one polygon: the AOI's when it is one, else its bounding box.
    let lines = aoi.to_wkt_lines();
    let geo_region_wkt = match lines.lines().collect::<Vec<_>>().as_slice() {
        [one] => one.to_string(),
        _ => {
            let b = aoi.bbox();
            format!("POLYGON (({0} {1}, {2} {1}, {2} {3}, {0} {3}, {0} {1}))", b[0], b[1], b[2], b[3])
        }
    };
    Ok(SnapParams {
        input,
        output,
        geo_region_wkt,
        grid: project.config.grid.clone(),
        polarisations: project.config.bands.s1.clone(),
        s2_bands: project.config.bands.s2.iter().map(|b| snap_band_name(b)).collect(),
    })
}

fn warp_all_bands(src: &Path, tmp: &Path, name: &str, grid: &TargetGrid, resampling: Resampling) -> Result<String> {
    let out = tmp.join(format!("{name}.tif"));
    let opts = WarpOptions { resampling, src_nodata: None, dst_nodata: Some(f64::NAN), output_type: Some("Float32".into()), tps: false };
    raster::warp_to_grid(&[src.display().to_string().as_str()], &out, grid, &opts)?;
    Ok(out.display().to_string())
}

fn s2_snap(project: &Project, scenes: &[&Scene], cfg: &PreprocessConfig, gpt: &Path, products: Option<&Path>, date: &str, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
    let grid = &project.config.grid;
    // One SNAP run per scene of the date; the grid warp mosaics them.
    let mut outputs = Vec::new();
    for (i, scene) in scenes.iter().enumerate() {
        let input = snap_product(project, scene, products)?;
        let output = tmp.join(format!("snap-s2-{i}.tif"));
        snap::run_graph(gpt, SnapGraph::Sentinel2, &snap_params(project, input, output.clone())?, progress)?;
        outputs.push(output.display().to_string());
    }
    // The graph keeps the bands in the order asked; SNAP's reader already applied the scale and
    // offset when the output is floating point, integer output holds digital numbers (0 = none).
    let first = raster::info(&outputs[0])?;
    let integer = first.bands.first().is_some_and(|b| !b.data_type.contains("Float"));
    let src_nodata = integer.then_some(0.0);
    let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    // Measurements bilinear (or as configured), the classes nearest.
    let warp = |name: &str, resampling: Resampling| -> Result<String> {
        let out = tmp.join(name);
        raster::warp_to_grid(&refs, &out, grid, &WarpOptions { resampling, src_nodata, dst_nodata: Some(f64::NAN), output_type: Some("Float32".into()), tps: false })?;
        Ok(out.display().to_string())
    };
    let mosaic = warp("snap-s2.tif", cfg.s2_resampling)?;
    let mut bands = Vec::new();
    let mut scl = None;
    let mut aot = None;
    for (i, name) in project.config.bands.s2.iter().enumerate() {
        if name == "SCL" {
            scl = Some(BandRef { name: name.clone(), path: warp("snap-s2-classes.tif", Resampling::Nearest)?, band: i + 1 });
        } else if name == "AOT" {
            aot = Some(BandRef { name: name.clone(), path: mosaic.clone(), band: i + 1 });
        } else {
            bands.push(BandRef { name: name.clone(), path: mosaic.clone(), band: i + 1 });
        }
    }
    let dn_offset = integer.then(|| s2::dn_offset(scenes[0].processing_baseline.as_deref(), scenes[0].boa_offset_applied));
    let path = project.preprocessed_s2(date);
    // SNAP's floating-point output is scaled already (AOT as is); integer output holds DNs.
    let aot = if cfg.mask.haze_aot.is_some() { aot.map(|b| (b, if integer { s2::AOT_QUANTIFICATION_VALUE } else { 1.0 })) } else { None };
    let (valid_percent, counts) = write_s2(grid, &S2Sources { bands, scl, aot, dn_offset }, cfg, &path, progress)?;
    Ok(Preprocessed { date: date.into(), sensor: "S2".into(), path, valid_percent, mask_counts: Some(counts), processing: "SNAP gpt calibrate_sent2.xml, warped onto the grid".into() })
}

fn s1_snap(project: &Project, scene: &Scene, cfg: &PreprocessConfig, graph: SnapGraph, gpt: &Path, products: Option<&Path>, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
    let grid = &project.config.grid;
    let date = crate::project::date_folder(&scene.datetime);
    let input = snap_product(project, scene, products)?;
    let output = tmp.join("snap-s1.tif");
    snap::run_graph(gpt, graph, &snap_params(project, input, output.clone())?, progress)?;
    let warped = warp_all_bands(&output, tmp, "snap-s1-grid", grid, Resampling::Bilinear)?;
    let bands: Vec<BandRef> = project.config.bands.s1.iter().enumerate().map(|(i, p)| BandRef { name: p.clone(), path: warped.clone(), band: i + 1 }).collect();
    // v1 writes linear sigma0; v2 and v3 end with LinearToFromdB.
    let values = if graph == SnapGraph::Sentinel1V1 { S1Values::Linear } else { S1Values::Db };
    let path = project.preprocessed_s1(&date);
    let valid_percent = write_s1(grid, &bands, values, cfg.block_rows, &path, progress)?;
    Ok(Preprocessed { date, sensor: "S1".into(), path, valid_percent, mask_counts: None, processing: format!("SNAP gpt {}, warped onto the grid", graph.file_name()) })
}

/// The openEO back-end of the stage, connected and logged in.
fn openeo_backend(project: &Project, cfg: &PreprocessConfig, progress: &Progress) -> Result<openeo::Backend> {
    let settings = openeo_settings(project, cfg)?;
    progress.info(format!("openEO back-end {}", settings.backend));
    openeo::Backend::connect(settings, openeo::Credentials::load())
}

/// The openEO settings in force: the stage's own, else project.yaml's.
fn openeo_settings<'a>(project: &'a Project, cfg: &'a PreprocessConfig) -> Result<&'a OpenEoSettings> {
    cfg.openeo.as_ref().or(project.config.openeo.as_ref()).ok_or_else(|| Error::Project {
        path: project.root().join(crate::project::PROJECT_FILE),
        message: "the openEO engine needs a back-end: give its URL (the Preprocess step's openEO back-end, or `openeo: {backend: URL}` in project.yaml)".into(),
    })
}

/// A downloaded result on the project grid: as it is when it lies on the grid exactly, else
/// warped onto it (with a warning: a second resampling).
fn openeo_on_grid(files: &[PathBuf], grid: &TargetGrid, tmp: &Path, name: &str, resampling: Resampling, label: &str, progress: &Progress) -> Result<String> {
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

fn s2_openeo(project: &Project, backend: &mut openeo::Backend, scenes: &[&Scene], cfg: &PreprocessConfig, date: &str, graph: &serde_json::Value, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
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
    let offset = s2::dn_offset(scenes[0].processing_baseline.as_deref(), scenes[0].boa_offset_applied);
    Ok(Preprocessed {
        date: date.into(),
        sensor: "S2".into(),
        path,
        valid_percent,
        mask_counts: Some(counts),
        processing: format!(
            "openEO {}: {} {} resampled onto the grid, SCL mask (buffer {} px) applied by the back-end, DN offset {offset}, /10000",
            backend.root(),
            openeo_settings(project, cfg)?.collections.s2,
            cfg.s2_resampling.gdal_name(),
            cfg.mask.buffer_px
        ),
    })
}

fn s1_openeo(project: &Project, backend: &mut openeo::Backend, date: &str, cfg: &PreprocessConfig, graph: &serde_json::Value, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
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
fn s2_openeo_graph(project: &Project, cfg: &PreprocessConfig, scenes: &[&Scene], date: &str) -> Result<serde_json::Value> {
    let settings = openeo_settings(project, cfg)?;
    let bands: Vec<String> = project.config.bands.s2.iter().filter(|b| crate::project::is_reflectance_band(b)).cloned().collect();
    let scl = project.config.bands.s2.iter().any(|b| b == "SCL");
    if cfg.mask.haze_aot.is_some() && !project.config.bands.s2.iter().any(|b| b == "AOT") {
        return Err(Error::Project { path: project.root().join(crate::project::PROJECT_FILE), message: "the haze mask (haze_aot) needs AOT in bands.s2 of project.yaml".into() });
    }
    let offset = s2::dn_offset(scenes[0].processing_baseline.as_deref(), scenes[0].boa_offset_applied);
    let scope = openeo::GraphScope { grid: &project.config.grid, date };
    openeo::s2_graph(&scope, &settings.collections.s2, &bands, scl, &cfg.mask, cfg.s2_resampling, offset)
}

fn s1_openeo_graph(project: &Project, cfg: &PreprocessConfig, date: &str) -> Result<serde_json::Value> {
    let settings = openeo_settings(project, cfg)?;
    let scope = openeo::GraphScope { grid: &project.config.grid, date };
    openeo::s1_graph(&scope, &settings.collections.s1, &project.config.bands.s1, &settings.s1_coefficient)
}

/// The record kept next to an output (`S2.json`): what made it. A rerun with the same record
/// and the output in place skips the work (resume after an interruption).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OutputRecord {
    parameters: serde_json::Value,
    inputs: Vec<(String, u64)>,
    result: Preprocessed,
}

fn input_list(paths: &[PathBuf]) -> Vec<(String, u64)> {
    paths.iter().map(|p| (p.display().to_string(), std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))).collect()
}

fn record_path(output: &Path) -> PathBuf {
    output.with_extension("json")
}

fn reuse(output: &Path, parameters: &serde_json::Value, inputs: &[(String, u64)]) -> Option<Preprocessed> {
    let text = std::fs::read_to_string(record_path(output)).ok()?;
    let r: OutputRecord = serde_json::from_str(&text).ok()?;
    (output.is_file() && &r.parameters == parameters && r.inputs == inputs).then_some(r.result)
}

/// An output as an earlier run made it from the same inputs and parameters, or made now (and
/// its record written beside it).
fn produce(out: &Path, parameters: &serde_json::Value, listed: Vec<(String, u64)>, make: impl FnOnce() -> Result<Preprocessed>) -> Result<Preprocessed> {
    if let Some(p) = reuse(out, parameters, &listed) {
        return Ok(p);
    }
    let p = make()?;
    let record = OutputRecord { parameters: parameters.clone(), inputs: listed, result: p.clone() };
    crate::fsutil::write_atomic(&record_path(out), &serde_json::to_vec_pretty(&record).unwrap_or_default())?;
    Ok(p)
}

/// What an output is made from, for [`reuse`]: the fetched files with their sizes, or the
/// openEO graph's digest.
fn listed_inputs(graph: Option<&serde_json::Value>, inputs: &[PathBuf]) -> Vec<(String, u64)> {
    match graph {
        Some(g) => vec![(format!("openeo graph sha256 {}", openeo::graph_digest(g)), 0)],
        None => input_list(inputs),
    }
}

/// The stage's openEO back-end, connected at its first use.
fn connected<'a>(slot: &'a mut Option<openeo::Backend>, project: &Project, cfg: &PreprocessConfig, progress: &Progress) -> Result<&'a mut openeo::Backend> {
    if slot.is_none() {
        *slot = Some(openeo_backend(project, cfg, progress)?);
    }
    slot.as_mut().ok_or_else(|| Error::invalid("openeo", "no back-end"))
}

/// Inputs of one output: the fetched files it reads.
fn s2_inputs(project: &Project, scenes: &[&Scene]) -> Vec<PathBuf> {
    scenes.iter().flat_map(|s| project.config.bands.s2.iter().map(|b| raw_band(project, s, b))).collect()
}

fn s1_inputs(project: &Project, scene: &Scene) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = project.config.bands.s1.iter().map(|p| raw_band(project, scene, p)).collect();
    if scene.is_grd() {
        for p in &project.config.bands.s1 {
            v.push(project.raw_grd_table(&scene.datetime, &scene.id, "calibration", p));
            v.push(project.raw_grd_table(&scene.datetime, &scene.id, "noise", p));
        }
    }
    v
}

/// What the stage did, written to `preprocessed/report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessReport {
    pub outputs: Vec<Preprocessed>,
    /// True when everything was up to date and nothing ran.
    pub skipped: bool,
    /// The build that wrote it.
    #[serde(default)]
    pub provenance: crate::provenance::Provenance,
}

/// Runs the preprocessing of the fetched scenes (skipped when its manifest is up to date;
/// outputs already made with the same inputs and parameters are kept).
pub fn preprocess(project: &Project, cfg: &PreprocessConfig, progress: &Progress) -> Result<Vec<Preprocessed>> {
    progress.cleaned(crate::fsutil::remove_stale_partials(&project.preprocessed_dir(), crate::project::MAX_DEPTH));
    // Every setting the stage reads, project.yaml's grid and bands included: a changed one
    // makes the outputs stale.
    let mut settings = serde_json::to_value(cfg).map_err(|e| Error::invalid("preprocess parameters", e.to_string()))?;
    if let Some(o) = &cfg.openeo {
        settings["openeo"] = o.identity();
    }
    let parameters = project.stage_parameters(Stage::Preprocess, settings);
    let report_path = project.preprocess_report();
    if let (StageState::Done, Some(m)) = project.stage_state(Stage::Preprocess, None)?
        && m.parameters == parameters
        && let Ok(text) = std::fs::read_to_string(&report_path)
        && let Ok(report) = serde_json::from_str::<PreprocessReport>(&text)
    {
        progress.info("up to date; nothing to do");
        return Ok(report.outputs);
    }
    let search = SearchResult::load(project, "preprocess")?;
    let tmp = project.preprocessed_dir().join(".work");
    std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp, "creating a working folder"))?;
    let gpt = match &cfg.engine {
        Engine::Snap { gpt, .. } => Some(snap::find_gpt(gpt.as_deref())?),
        Engine::Native | Engine::Openeo => None,
    };
    // Connected when the first job needs it (outputs already made need no back-end).
    let mut backend: Option<openeo::Backend> = None;
    let jobs: Vec<(String, Vec<&Scene>)> = search
        .chosen_s2()
        .into_iter()
        .filter_map(|scenes| scenes.first().map(|first| (first.datetime.format("%Y-%m-%d").to_string(), scenes.clone())))
        .collect();
    let s1 = search.paired_s1();
    let total = (jobs.len() + s1.len()) as u64;
    progress.started(Some(total));
    let mut done: Vec<Preprocessed> = Vec::new();
    let mut manifest = Manifest::new(Stage::Preprocess, parameters.clone());
    for (date, scenes) in &jobs {
        progress.check_cancelled()?;
        let graph = match cfg.engine {
            Engine::Openeo => Some(s2_openeo_graph(project, cfg, scenes, date)?),
            _ => None,
        };
        // An openEO output is made from its graph, not from fetched files.
        let inputs = if graph.is_some() { Vec::new() } else { s2_inputs(project, scenes) };
        let out = project.preprocessed_s2(date);
        let p = produce(&out, &parameters, listed_inputs(graph.as_ref(), &inputs), || match (&cfg.engine, &graph) {
            (Engine::Openeo, Some(g)) => s2_openeo(project, connected(&mut backend, project, cfg, progress)?, scenes, cfg, date, g, &tmp, progress),
            (Engine::Snap { products, .. }, _) => s2_snap(project, scenes, cfg, gpt.as_deref().unwrap_or(Path::new("gpt")), products.as_deref(), date, &tmp, progress),
            _ => s2_native(project, scenes, cfg, date, &tmp, progress),
        })?;
        progress.advanced(done.len() as u64 + 1, total, format!("S2 {date}: {:.1} % usable", p.valid_percent));
        if matches!(cfg.engine, Engine::Native) {
            for i in &inputs {
                manifest.add_input(project.root(), i)?;
            }
        }
        done.push(p);
    }
    for scene in s1 {
        progress.check_cancelled()?;
        let date = crate::project::date_folder(&scene.datetime);
        let graph = match cfg.engine {
            Engine::Openeo => Some(s1_openeo_graph(project, cfg, &date)?),
            _ => None,
        };
        let inputs = if graph.is_some() { Vec::new() } else { s1_inputs(project, scene) };
        let out = project.preprocessed_s1(&date);
        let p = produce(&out, &parameters, listed_inputs(graph.as_ref(), &inputs), || match (&cfg.engine, &graph) {
            (Engine::Openeo, Some(g)) => s1_openeo(project, connected(&mut backend, project, cfg, progress)?, &date, cfg, g, &tmp, progress),
            (Engine::Snap { s1_graph, products, .. }, _) => s1_snap(project, scene, cfg, *s1_graph, gpt.as_deref().unwrap_or(Path::new("gpt")), products.as_deref(), &tmp, progress),
            _ => s1_native(project, scene, cfg, &tmp, progress),
        })?;
        progress.advanced(done.len() as u64 + 1, total, format!("S1 {}: {:.1} % valid", p.date, p.valid_percent));
        if matches!(cfg.engine, Engine::Native) {
            for i in &inputs {
                manifest.add_input(project.root(), i)?;
            }
        }
        done.push(p);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let report = PreprocessReport { outputs: done.clone(), skipped: false, provenance: crate::provenance::current() };
    crate::fsutil::write_atomic(&report_path, &serde_json::to_vec_pretty(&report).unwrap_or_default())?;
    for p in &done {
        manifest.add_output(project.root(), &p.path)?;
    }
    manifest.save(&project.manifest_path(Stage::Preprocess, None))?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_is_a_name_or_a_map() {
        let c: PreprocessConfig = serde_norway::from_str("engine: openeo\nopeneo:\n  backend: https://openeo.example.org/openeo/1.2\n").unwrap();
        assert_eq!(c.engine, Engine::Openeo);
        assert_eq!(c.openeo.as_ref().map(|o| o.backend.as_str()), Some("https://openeo.example.org/openeo/1.2"));
        let c: PreprocessConfig = serde_norway::from_str("engine: {engine: snap, s1_graph: sentinel1-v2}\n").unwrap();
        assert!(matches!(c.engine, Engine::Snap { s1_graph: SnapGraph::Sentinel1V2, .. }), "{c:?}");
        assert_eq!(serde_norway::from_str::<PreprocessConfig>("engine: native\n").unwrap().engine, Engine::Native);
        let e = serde_norway::from_str::<PreprocessConfig>("engine: gee\n").unwrap_err().to_string();
        assert!(e.contains("unknown engine") && e.contains("openeo"), "{e}");
        // Written back as the map, read again the same.
        let c = PreprocessConfig { engine: Engine::Openeo, ..PreprocessConfig::default() };
        let text = serde_norway::to_string(&c).unwrap();
        assert_eq!(serde_norway::from_str::<PreprocessConfig>(&text).unwrap(), c);
    }
}
