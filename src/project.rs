//! The project folder: `project.yaml` (read strictly, errors with line numbers), the folder
//! layout, atomic writes, and stage manifests that let a stage know whether it is up to date.
//!
//! Layout (see DESIGN.md): `project.yaml`, `aoi.geojson`, `catalog/`, `raw/`, `preprocessed/`,
//! `dataset/`, `runs/<run-id>/`, `outputs/<run-id>/`. This module runs no stage.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aoi::{Aoi, AoiLimits};
use crate::error::{Error, Result};
use crate::raster::TargetGrid;

/// Version of the `project.yaml` schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
pub const PROJECT_FILE: &str = "project.yaml";
pub const AOI_FILE: &str = "aoi.geojson";

/// Sentinel-2 L2A band names the pipeline knows.
pub const S2_BANDS: &[&str] = &["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL"];
/// Sentinel-1 polarisations.
pub const S1_BANDS: &[&str] = &["VV", "VH", "HH", "HV"];

/// A closed range of dates, written `2019-11-01/2019-12-31` (as STAC datetime intervals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl std::str::FromStr for DateRange {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, b) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not a date range; write it as FROM/TO, e.g. 2019-11-01/2019-12-31"))?;
        let parse = |d: &str| {
            NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|e| format!("'{}' is not a date YYYY-MM-DD: {e}", d.trim()))
        };
        let (from, to) = (parse(a)?, parse(b)?);
        if to < from {
            return Err(format!("'{s}' ends before it starts"));
        }
        Ok(DateRange { from, to })
    }
}

impl std::fmt::Display for DateRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.from, self.to)
    }
}

impl Serialize for DateRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DateRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where scenes are searched and fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// Element 84's Earth Search v1 (anonymous).
    #[default]
    EarthSearch,
    /// Microsoft Planetary Computer (signed asset URLs).
    PlanetaryComputer,
    /// Copernicus Data Space Ecosystem (downloads need a token).
    Cdse,
    /// A static STAC catalog on disk (the embedded demo).
    Local,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::EarthSearch => "earth-search",
            Provider::PlanetaryComputer => "planetary-computer",
            Provider::Cdse => "cdse",
            Provider::Local => "local",
        })
    }
}

/// Bands used by the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    #[serde(default = "default_s2_bands")]
    pub s2: Vec<String>,
    #[serde(default = "default_s1_bands")]
    pub s1: Vec<String>,
}

impl Default for Bands {
    fn default() -> Self {
        Bands { s2: default_s2_bands(), s1: default_s1_bands() }
    }
}

fn default_s2_bands() -> Vec<String> {
    ["B02", "B03", "B04", "B08", "B8A", "B11", "B12", "SCL"].map(String::from).to_vec()
}

fn default_s1_bands() -> Vec<String> {
    ["VV", "VH"].map(String::from).to_vec()
}

fn default_max_cloud() -> f64 {
    20.0
}

/// `project.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    pub schema_version: u32,
    pub name: String,
    /// The AOI file, relative to the project folder.
    pub aoi: PathBuf,
    /// Reference date range (before the change; pre-fire).
    pub t0: DateRange,
    /// Target date range (the image to synthesize; post-fire).
    pub t1: DateRange,
    #[serde(default)]
    pub provider: Provider,
    /// Largest cloud cover over the AOI, percent.
    #[serde(default = "default_max_cloud")]
    pub max_cloud_percent: f64,
    #[serde(default)]
    pub bands: Bands,
    /// The common 10 m grid every preprocessed raster lands on.
    pub grid: TargetGrid,
    /// Model configuration (model.yaml), relative to the project; built-in defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_config: Option<PathBuf>,
    /// Training configuration (train.yaml), relative to the project; built-in defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_config: Option<PathBuf>,
    /// The static STAC catalog (catalog.json) the `local` provider searches, relative to the
    /// project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<PathBuf>,
    /// Collections to search instead of the provider's usual ones (for example Earth Search's
    /// `sentinel-2-c1-l2a`, or a static catalog's `sentinel-2-l1c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<Collections>,
}

/// The STAC collections that hold a provider's Sentinel-2 and Sentinel-1 scenes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collections {
    pub s2: String,
    pub s1: String,
}

impl ProjectConfig {
    /// A new project's configuration for an AOI: its UTM grid at `pixel_size_m`, default bands,
    /// built-in model and training settings. Checks that t1 starts after t0 ends and that the
    /// cloud limit is a percentage.
    pub fn for_aoi(name: &str, aoi: &Aoi, t0: DateRange, t1: DateRange, provider: Provider, max_cloud_percent: f64, pixel_size_m: f64) -> Result<ProjectConfig> {
        if t0.to >= t1.from {
            return Err(Error::invalid("t1", format!("{t1} must start after t0 ({t0}) ends")));
        }
        if !(0.0..=100.0).contains(&max_cloud_percent) {
            return Err(Error::invalid("max_cloud_percent", format!("{max_cloud_percent} is not a percentage 0..100")));
        }
        Ok(ProjectConfig {
            schema_version: SCHEMA_VERSION,
            name: name.to_string(),
            aoi: PathBuf::from(AOI_FILE),
            t0,
            t1,
            provider,
            max_cloud_percent,
            bands: Bands::default(),
            grid: aoi.target_grid(pixel_size_m)?,
            model_config: None,
            train_config: None,
            catalog: None,
            collections: None,
        })
    }

    /// Parses `project.yaml` text; every error names the file, line and field.
    pub fn parse(text: &str, path: &Path) -> Result<ProjectConfig> {
        let config: ProjectConfig = serde_norway::from_str(text).map_err(|e| {
            let (mut line, mut column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            // Errors raised by a value's own parser (a date, say) carry no useful location:
            // find the quoted value in the text instead.
            if line <= 1
                && let Some(value) = e.to_string().split('\'').nth(1)
                && let Some((l, c)) = locate_text(text, value)
            {
                (line, column) = (l, c);
            }
            // serde_norway appends " at line N column M"; the variant prints the location itself.
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_string(),
                None => message,
            };
            Error::Yaml { path: path.to_path_buf(), line, column, message }
        })?;
        config.check(text, path)?;
        Ok(config)
    }

    /// Checks the values that parse but make no sense.
    fn check(&self, text: &str, path: &Path) -> Result<()> {
        let fail = |key: &str, message: String| {
            let (line, column) = locate_key(text, key);
            Err(Error::Yaml { path: path.to_path_buf(), line, column, message: format!("{key}: {message}") })
        };
        if self.schema_version != SCHEMA_VERSION {
            return fail(
                "schema_version",
                format!("this version of s2cr reads schema {SCHEMA_VERSION}, the file says {}", self.schema_version),
            );
        }
        if self.t0.to >= self.t1.from {
            return fail("t1", format!("t1 ({}) must start after t0 ({}) ends", self.t1, self.t0));
        }
        if !(0.0..=100.0).contains(&self.max_cloud_percent) {
            return fail("max_cloud_percent", format!("{} is not a percentage 0..100", self.max_cloud_percent));
        }
        if let Some(b) = self.bands.s2.iter().find(|b| !S2_BANDS.contains(&b.as_str())) {
            return fail("s2", format!("unknown Sentinel-2 band '{b}'; known: {}", S2_BANDS.join(", ")));
        }
        if let Some(b) = self.bands.s1.iter().find(|b| !S1_BANDS.contains(&b.as_str())) {
            return fail("s1", format!("unknown Sentinel-1 polarisation '{b}'; known: {}", S1_BANDS.join(", ")));
        }
        if self.grid.width == 0 || self.grid.height == 0 || self.grid.pixel_size_m <= 0.0 {
            return fail("grid", "the grid is empty; run `s2cr init` again to recompute it from the AOI".into());
        }
        if self.name.trim().is_empty() {
            return fail("name", "the project needs a name".into());
        }
        Ok(())
    }
}

/// (line, column), 1-based, of the first `key:` in YAML text; (0, 0) when absent.
fn locate_key(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':')) {
            return (i + 1, line.len() - trimmed.len() + 1);
        }
    }
    (0, 0)
}

/// (line, column), 1-based, of the first occurrence of `needle` in `text`.
fn locate_text(text: &str, needle: &str) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    text.lines().enumerate().find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
}

/// Writes `bytes` to `path` through a temporary sibling and a rename, so readers see either the
/// old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(Error::io(parent, "creating the folder"))?;
    }
    let tmp = crate::raster::temp_sibling(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io { path: path.to_path_buf(), action: "writing", source: e }
    })
}

/// The pipeline's stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Search,
    Fetch,
    Preprocess,
    Dataset,
    Train,
    Infer,
    Assess,
    Export,
}

impl Stage {
    pub const ALL: [Stage; 8] =
        [Stage::Search, Stage::Fetch, Stage::Preprocess, Stage::Dataset, Stage::Train, Stage::Infer, Stage::Assess, Stage::Export];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Search => "search",
            Stage::Fetch => "fetch",
            Stage::Preprocess => "preprocess",
            Stage::Dataset => "dataset",
            Stage::Train => "train",
            Stage::Infer => "infer",
            Stage::Assess => "assess",
            Stage::Export => "export",
        }
    }

    /// True for stages that run once per training run (`runs/<id>`, `outputs/<id>`).
    pub fn per_run(self) -> bool {
        matches!(self, Stage::Train | Stage::Infer | Stage::Assess | Stage::Export)
    }

    /// Where the stage's manifest lives, relative to the project folder.
    pub fn manifest_path(self, run: Option<&str>) -> PathBuf {
        let run = run.unwrap_or("default");
        match self {
            Stage::Search => PathBuf::from("catalog/manifest.json"),
            Stage::Fetch => PathBuf::from("raw/manifest.json"),
            Stage::Preprocess => PathBuf::from("preprocessed/manifest.json"),
            Stage::Dataset => PathBuf::from("dataset/manifest.json"),
            Stage::Train => PathBuf::from(format!("runs/{run}/manifest.json")),
            // Three stages write into outputs/<run>/: one manifest each.
            Stage::Infer | Stage::Assess | Stage::Export => {
                PathBuf::from(format!("outputs/{run}/manifest-{}.json", self.name()))
            }
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A file a stage read or wrote, as recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Relative to the project folder (or absolute for files outside it).
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// Modification time when hashed, to skip re-hashing unchanged files.
    pub modified_unix_ms: u128,
}

impl FileRecord {
    /// Hashes `path` (absolute, or relative to `root`).
    pub fn of(root: &Path, path: &Path) -> Result<FileRecord> {
        let full = if path.is_absolute() { path.to_path_buf() } else { root.join(path) };
        let meta = std::fs::metadata(&full).map_err(Error::io(&full, "reading file metadata"))?;
        let rel = full.strip_prefix(root).map(Path::to_path_buf).unwrap_or(full.clone());
        Ok(FileRecord {
            path: rel.to_string_lossy().to_string(),
            bytes: meta.len(),
            sha256: sha256_file(&full)?,
            modified_unix_ms: modified_ms(&meta),
        })
    }

    /// None when the file on disk is still this one, else why not.
    fn changed(&self, root: &Path) -> Option<String> {
        let full = root.join(&self.path);
        let Ok(meta) = std::fs::metadata(&full) else {
            return Some(format!("{} is missing", self.path));
        };
        if meta.len() != self.bytes {
            return Some(format!("{} changed size", self.path));
        }
        if modified_ms(&meta) == self.modified_unix_ms {
            return None;
        }
        match sha256_file(&full) {
            Ok(h) if h == self.sha256 => None,
            Ok(_) => Some(format!("{} changed", self.path)),
            Err(e) => Some(e.to_string()),
        }
    }
}

fn modified_ms(meta: &std::fs::Metadata) -> u128 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis()).unwrap_or(0)
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(Error::io(path, "opening for checksum"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(Error::io(path, "reading for checksum"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// What a stage read, with which parameters, and what it wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: Stage,
    /// The `s2cr` version that wrote it.
    pub tool_version: String,
    /// RFC 3339 time the stage finished.
    pub finished: String,
    pub parameters: serde_json::Value,
    pub inputs: Vec<FileRecord>,
    pub outputs: Vec<FileRecord>,
}

/// Whether a stage's results can be used as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageState {
    /// Never run (no manifest).
    Missing,
    /// Ran, and its inputs, parameters and outputs are as recorded.
    Done,
    /// Ran, but something changed since: the reason.
    Stale(String),
}

impl std::fmt::Display for StageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageState::Missing => f.write_str("missing"),
            StageState::Done => f.write_str("done"),
            StageState::Stale(why) => write!(f, "stale ({why})"),
        }
    }
}

impl Manifest {
    pub fn new(stage: Stage, parameters: serde_json::Value) -> Manifest {
        Manifest {
            stage,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            finished: String::new(),
            parameters,
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    pub fn add_input(&mut self, root: &Path, path: &Path) -> Result<()> {
        self.inputs.push(FileRecord::of(root, path)?);
        Ok(())
    }

    pub fn add_output(&mut self, root: &Path, path: &Path) -> Result<()> {
        self.outputs.push(FileRecord::of(root, path)?);
        Ok(())
    }

    /// Reads a manifest; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Manifest>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Io { path: path.to_path_buf(), action: "reading the manifest", source: e }),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            message: format!("{e}; delete the file to run the stage again"),
        })
    }

    /// Stamps the finish time and writes the manifest atomically: the last thing a stage does,
    /// so a manifest exists only for a stage that completed.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.finished = chrono::Utc::now().to_rfc3339();
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Json { path: path.to_path_buf(), message: e.to_string() })?;
        write_atomic(path, text.as_bytes())
    }

    /// Compares the manifest with the files on disk and, when given, the parameters a new run
    /// would use.
    pub fn state(&self, root: &Path, parameters: Option<&serde_json::Value>) -> StageState {
        if let Some(p) = parameters
            && p != &self.parameters
        {
            return StageState::Stale("parameters changed".into());
        }
        for r in &self.inputs {
            if let Some(why) = r.changed(root) {
                return StageState::Stale(format!("input {why}"));
            }
        }
        for r in &self.outputs {
            if let Some(why) = r.changed(root) {
                return StageState::Stale(format!("output {why}"));
            }
        }
        StageState::Done
    }
}

/// One line of `s2cr info`.
#[derive(Debug, Clone, PartialEq)]
pub struct StageStatus {
    pub stage: Stage,
    pub run: Option<String>,
    pub state: StageState,
    pub finished: Option<String>,
}

/// An open project folder.
#[derive(Debug, Clone)]
pub struct Project {
    root: PathBuf,
    pub config: ProjectConfig,
}

impl Project {
    /// Creates a project folder with its layout, `aoi.geojson` and `project.yaml`. Refuses to
    /// overwrite an existing project.
    pub fn create(root: &Path, config: ProjectConfig, aoi: &Aoi) -> Result<Project> {
        let file = root.join(PROJECT_FILE);
        if file.exists() {
            return Err(Error::Project {
                path: file,
                message: "a project already exists here; open it, or choose another folder".into(),
            });
        }
        for dir in ["catalog", "raw", "preprocessed", "dataset", "runs", "outputs"] {
            let d = root.join(dir);
            std::fs::create_dir_all(&d).map_err(Error::io(&d, "creating the project folder"))?;
        }
        aoi.write(&root.join(&config.aoi))?;
        let text = serde_norway::to_string(&config)
            .map_err(|e| Error::Project { path: file.clone(), message: format!("serializing: {e}") })?;
        let header = "# sent2-cloud-remover project (see `s2cr info`). Dates are FROM/TO, inclusive.\n";
        write_atomic(&file, format!("{header}{text}").as_bytes())?;
        Project::open(root)
    }

    /// Opens the project in `root` (the folder holding `project.yaml`).
    pub fn open(root: &Path) -> Result<Project> {
        let file = root.join(PROJECT_FILE);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Project {
                    path: root.to_path_buf(),
                    message: format!("no {PROJECT_FILE} here; create a project with `s2cr init`"),
                }
            } else {
                Error::Io { path: file.clone(), action: "reading the project file", source: e }
            }
        })?;
        let config = ProjectConfig::parse(&text, &file)?;
        // Absolute, so that paths made from it stay right whatever the current folder (the
        // manifests record paths relative to it).
        let root = std::path::absolute(root).map_err(|e| Error::Io { path: root.to_path_buf(), action: "resolving the project folder", source: e })?;
        Ok(Project { root, config })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The AOI, read and validated from the project's AOI file.
    pub fn aoi(&self) -> Result<Aoi> {
        // The project was created within the limits; an edited AOI is checked for validity only.
        Aoi::load(&self.root.join(&self.config.aoi), &AoiLimits { max_area_km2: f64::INFINITY })
    }

    pub fn catalog_dir(&self) -> PathBuf {
        self.root.join("catalog")
    }
    pub fn raw_dir(&self) -> PathBuf {
        self.root.join("raw")
    }
    pub fn preprocessed_dir(&self) -> PathBuf {
        self.root.join("preprocessed")
    }
    pub fn dataset_dir(&self) -> PathBuf {
        self.root.join("dataset")
    }
    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.root.join("runs").join(run)
    }
    pub fn output_dir(&self, run: &str) -> PathBuf {
        self.root.join("outputs").join(run)
    }

    pub fn manifest_path(&self, stage: Stage, run: Option<&str>) -> PathBuf {
        self.root.join(stage.manifest_path(run))
    }

    /// The training runs present in `runs/` and `outputs/`, sorted.
    pub fn runs(&self) -> Vec<String> {
        let mut runs = Vec::new();
        for dir in [self.root.join("runs"), self.root.join("outputs")] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.path().is_dir()
                        && let Some(name) = e.file_name().to_str()
                        && !runs.iter().any(|r| r == name)
                    {
                        runs.push(name.to_string());
                    }
                }
            }
        }
        runs.sort();
        runs
    }

    /// The state of one stage from its manifest and the files on disk.
    pub fn stage_state(&self, stage: Stage, run: Option<&str>) -> Result<(StageState, Option<Manifest>)> {
        match Manifest::load(&self.manifest_path(stage, run))? {
            None => Ok((StageState::Missing, None)),
            Some(m) => Ok((m.state(&self.root, None), Some(m))),
        }
    }

    /// Every stage's state; per-run stages once per run found (or once as missing).
    pub fn status(&self) -> Result<Vec<StageStatus>> {
        let runs = self.runs();
        let mut out = Vec::new();
        for stage in Stage::ALL {
            let run_list: Vec<Option<String>> =
                if stage.per_run() && !runs.is_empty() { runs.iter().cloned().map(Some).collect() } else { vec![None] };
            for run in run_list {
                let (state, manifest) = self.stage_state(stage, run.as_deref())?;
                out.push(StageStatus { stage, run, state, finished: manifest.map(|m| m.finished) });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml() -> String {
        "schema_version: 1\nname: ki-west\naoi: aoi.geojson\nt0: 2019-11-01/2019-12-31\nt1: 2020-01-10/2020-02-28\n\
         grid:\n  epsg: 32753\n  pixel_size_m: 10.0\n  x_min: 600000.0\n  y_max: 6040020.0\n  width: 100\n  height: 80\n"
            .to_string()
    }

    #[test]
    fn a_minimal_config_gets_defaults() {
        let c = ProjectConfig::parse(&yaml(), Path::new("p.yaml")).unwrap();
        assert_eq!(c.provider, Provider::EarthSearch);
        assert_eq!(c.bands.s1, vec!["VV", "VH"]);
        assert_eq!(c.t0.to, NaiveDate::from_ymd_opt(2019, 12, 31).unwrap());
    }

    #[test]
    fn a_typo_in_a_key_names_line_and_key() {
        let text = yaml().replace("t1:", "t1:") + "max_cloud_percnt: 10\n";
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.starts_with("p.yaml: line 13, column 1:"), "{err}");
        assert!(err.contains("unknown field `max_cloud_percnt`"), "{err}");
    }

    #[test]
    fn bad_values_name_their_line() {
        let text = yaml().replace("t1: 2020-01-10/2020-02-28", "t1: 2020-01-10/2020-13-28");
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("2020-13-28"), "{err}");
        let text = yaml().replace("t1: 2020-01-10/2020-02-28", "t1: 2019-12-01/2020-02-28");
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("must start after t0"), "{err}");
        let text = yaml() + "bands:\n  s2: [B04, B13]\n";
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 14") && err.contains("unknown Sentinel-2 band 'B13'"), "{err}");
        let text = yaml() + "provider: google\n";
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 13") && err.contains("unknown variant `google`"), "{err}");
    }

    #[test]
    fn manifests_detect_changed_inputs_outputs_and_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("in.txt"), b"input").unwrap();
        std::fs::write(root.join("out.txt"), b"output").unwrap();
        let params = serde_json::json!({"speckle": "refined-lee"});
        let mut m = Manifest::new(Stage::Preprocess, params.clone());
        m.add_input(root, Path::new("in.txt")).unwrap();
        m.add_output(root, &root.join("out.txt")).unwrap();
        assert_eq!(m.outputs[0].path, "out.txt");
        let path = root.join("preprocessed/manifest.json");
        m.save(&path).unwrap();
        let loaded = Manifest::load(&path).unwrap().unwrap();
        assert_eq!(loaded.state(root, Some(&params)), StageState::Done);
        assert!(matches!(loaded.state(root, Some(&serde_json::json!({"speckle": "lee"}))), StageState::Stale(_)));
        // Same size, different content, different mtime.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(root.join("in.txt"), b"INPUT").unwrap();
        assert_eq!(loaded.state(root, None), StageState::Stale("input in.txt changed".into()));
        std::fs::write(root.join("in.txt"), b"input").unwrap();
        assert_eq!(loaded.state(root, None), StageState::Done, "same content again: hash matches");
        std::fs::remove_file(root.join("out.txt")).unwrap();
        assert_eq!(loaded.state(root, None), StageState::Stale("output out.txt is missing".into()));
    }

    #[test]
    fn a_corrupt_manifest_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, "{ truncated").unwrap();
        let err = Manifest::load(&path).unwrap_err().to_string();
        assert!(err.contains("delete the file"), "{err}");
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }
}
