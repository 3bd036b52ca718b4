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
//!
//! The room's files: this front (settings, outputs and their records, the stage itself),
//! `writers` (the rasters every engine writes), `native`, `via_snap` and `via_openeo` (the
//! engines).

mod native;
mod via_openeo;
mod via_snap;
mod writers;

use native::{s1_native, s2_native};
use via_openeo::{connected, s1_openeo, s1_openeo_graph, s2_openeo, s2_openeo_graph, s2_scaling};
use via_snap::{s1_snap, s2_snap};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::s1::{self, Coefficient, SpeckleFilter};
use super::s2::{self, MaskCounts, SclMaskOptions};
use super::openeo::{self, OpenEoSettings};
use super::snap::{self, SnapGraph};
use super::composite::{Acquisition, CompositeMethod, write_composite};
use crate::catalog::stage::SearchResult;
use crate::catalog::Scene;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::{Manifest, Project, Stage, StageState};
use crate::raster::Resampling;

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

pub(super) fn raw_band(project: &Project, scene: &Scene, band: &str) -> PathBuf {
    project.raw_band_file(&scene.datetime, &scene.id, band)
}

pub(super) fn scene_dir(project: &Project, scene: &Scene) -> PathBuf {
    project.raw_scene_dir(&scene.datetime, &scene.id)
}

pub(super) fn require(path: &Path, what: &str) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(Error::Project { path: path.to_path_buf(), message: format!("missing {what}; run `s2cr fetch` first") })
    }
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
    let composite = project.config.composite;
    if composite.is_some_and(|c| c.t0 != CompositeMethod::Off || c.t1 != CompositeMethod::Off) && cfg.engine != Engine::Native {
        return Err(Error::invalid(
            "composite",
            format!(
                "project.yaml asks for composites, which the native engine makes and the {} engine does not (it preprocesses the chosen t0 and t1 only); \
                 preprocess with `engine: native`, or set the composite's windows to off",
                match cfg.engine { Engine::Snap { .. } => "SNAP", _ => "openEO" }
            ),
        ));
    }
    let tmp = project.preprocessed_dir().join(".work");
    std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp, "creating a working folder"))?;
    let gpt = match &cfg.engine {
        Engine::Snap { gpt, .. } => Some(snap::find_gpt(gpt.as_deref())?),
        Engine::Native | Engine::Openeo => None,
    };
    // Connected when the first job needs it (outputs already made need no back-end).
    let mut backend: Option<openeo::Backend> = None;
    let mut scaling: Option<openeo::S2Scaling> = None;
    // The chosen t0 and t1, then the other acquisitions of the windows' composites.
    // Only windows project.yaml asks a composite of (a search.json from other settings may list
    // acquisitions for another).
    let method = |t1: bool| composite.map(|c| c.method(t1)).unwrap_or_default();
    let windows = [false, true].map(|t1| if method(t1) == CompositeMethod::Off { Vec::new() } else { search.composite_s2(t1) });
    let jobs: Vec<(String, Vec<&Scene>)> = search
        .chosen_s2()
        .into_iter()
        .chain(windows.iter().flatten().cloned())
        .filter_map(|scenes| scenes.first().map(|first| (first.datetime.format("%Y-%m-%d").to_string(), scenes.clone())))
        .collect();
    let s1 = search.paired_s1();
    let composites = windows.iter().filter(|w| !w.is_empty()).count();
    let total = (jobs.len() + s1.len() + composites) as u64;
    progress.started(Some(total));
    let mut done: Vec<Preprocessed> = Vec::new();
    let mut manifest = Manifest::new(Stage::Preprocess, parameters.clone());
    for (date, scenes) in &jobs {
        progress.check_cancelled()?;
        let graph = match cfg.engine {
            Engine::Openeo => {
                if scaling.is_none() {
                    scaling = Some(s2_scaling(project, cfg, progress)?);
                }
                scaling.as_ref().map(|s| s2_openeo_graph(project, cfg, s, date)).transpose()?
            }
            _ => None,
        };
        // An openEO output is made from its graph, not from fetched files.
        let inputs = if graph.is_some() { Vec::new() } else { s2_inputs(project, scenes) };
        let out = project.preprocessed_s2(date);
        let p = produce(&out, &parameters, listed_inputs(graph.as_ref(), &inputs), || match (&cfg.engine, &graph) {
            (Engine::Openeo, Some(g)) => match &scaling {
                Some(s) => s2_openeo(project, connected(&mut backend, project, cfg, progress)?, s, cfg, date, g, &tmp, progress),
                None => Err(Error::invalid("openeo", "no Sentinel-2 scaling")),
            },
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
    for (k, window) in windows.iter().enumerate() {
        let name = ["t0", "t1"][k];
        let out = project.composite_s2(name);
        if window.is_empty() {
            // None asked, or nothing to composite: no composite of earlier settings stays to be
            // taken as this one.
            if let Some(dir) = out.parent().filter(|d| d.exists()) {
                std::fs::remove_dir_all(dir).map_err(Error::io(dir, "removing a composite of earlier settings"))?;
            }
            continue;
        }
        progress.check_cancelled()?;
        let method = method(k == 1);
        let acquisitions: Vec<Acquisition> = window
            .iter()
            .filter_map(|g| g.first())
            .map(|s| Acquisition { date: s.datetime.date_naive(), path: project.preprocessed_s2(&s.datetime.format("%Y-%m-%d").to_string()) })
            .collect();
        let inputs: Vec<PathBuf> = acquisitions.iter().map(|a| a.path.clone()).collect();
        let p = produce(&out, &parameters, input_list(&inputs), || {
            let made = write_composite(&acquisitions, method, &out, cfg.block_rows, &progress.for_stage("composite"))?;
            Ok(Preprocessed {
                date: format!("composite-{name}"),
                sensor: "S2".into(),
                path: out.clone(),
                valid_percent: 100.0 * made.covered as f64 / made.pixels.max(1) as f64,
                mask_counts: None,
                processing: format!("{} of the clear observations of {} acquisition(s) of the {name} window besides the chosen one ({})", method.name(), made.dates.len(), made.dates.join(", ")),
            })
        })?;
        if p.valid_percent == 0.0 {
            progress.warn(format!("{name} composite: no pixel is clear in any of its {} acquisition(s); it fills nothing", acquisitions.len()));
        }
        progress.advanced(done.len() as u64 + 1, total, format!("{name} composite: {:.1} % of the grid has a clear observation", p.valid_percent));
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
