//! The project folder: its configuration (`config`, project.yaml), every path inside it
//! (`paths`, with [`RunName`]), and stage manifests (`manifest`) that let a stage know whether it
//! is up to date. This module runs no stage.

mod config;
mod lock;
pub mod openeo;
mod manifest;
mod paths;
mod stage;

use std::path::{Path, PathBuf};

pub use config::*;
pub use lock::{LockHolder, ProjectLock};
pub use manifest::*;
pub use paths::*;
pub use stage::Stage;

use crate::aoi::{Aoi, AoiLimits};
use crate::error::{Error, Result};

/// What a new project is made of: what `s2cr init` takes and the app's "Create project" form.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// Folder to create the project in (created if missing).
    pub dir: PathBuf,
    /// Project name; the folder's name when `None`.
    pub name: Option<String>,
    pub aoi: Aoi,
    pub t0: DateRange,
    pub t1: DateRange,
    pub provider: Provider,
    /// The static STAC catalog (catalog.json) of the `local` provider.
    pub catalog: Option<PathBuf>,
    pub max_cloud_percent: f64,
    pub pixel_size_m: f64,
    /// Largest AOI accepted.
    pub limits: AoiLimits,
}

impl NewProject {
    /// A new project with the defaults of `s2cr init` (Earth Search, 20 % cloud, 10 m, the
    /// default area limit).
    pub fn new(dir: PathBuf, aoi: Aoi, t0: DateRange, t1: DateRange) -> NewProject {
        NewProject {
            dir,
            name: None,
            aoi,
            t0,
            t1,
            provider: Provider::default(),
            catalog: None,
            max_cloud_percent: 20.0,
            pixel_size_m: 10.0,
            limits: AoiLimits::default(),
        }
    }
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
        for dir in FOLDERS {
            let d = root.join(dir);
            std::fs::create_dir_all(&d).map_err(Error::io(&d, "creating the project folder"))?;
        }
        aoi.write(&root.join(&config.aoi))?;
        let text = serde_norway::to_string(&config)
            .map_err(|e| Error::Project { path: file.clone(), message: format!("serializing: {e}") })?;
        let header = "# sent2-cloud-remover project (see `s2cr info`). Dates are FROM/TO, inclusive.\n";
        crate::fsutil::write_atomic(&file, format!("{header}{text}").as_bytes())?;
        Project::open(root)
    }

    /// Creates a new project after every check `s2cr init` and the app make: the AOI within
    /// its limits, the dates in order, the cloud limit a percentage, a catalog exactly when the
    /// provider is `local`.
    pub fn init(new: &NewProject) -> Result<Project> {
        new.aoi.validate(&new.limits)?;
        let name = match new.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => std::path::absolute(&new.dir)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
                .unwrap_or_else(|| "project".into()),
        };
        let mut config = ProjectConfig::for_aoi(&name, &new.aoi, new.t0, new.t1, new.provider, new.max_cloud_percent, new.pixel_size_m)?;
        match (&new.catalog, config.provider) {
            // Stored absolute: the project folder may be anywhere relative to the catalog.
            (Some(c), Provider::Local) => {
                if !c.exists() {
                    return Err(Error::invalid("catalog", format!("{} does not exist", c.display())));
                }
                config.catalog = Some(std::path::absolute(c).map_err(Error::io(c, "resolving the catalog path"))?);
            }
            (Some(_), _) => return Err(Error::invalid("catalog", "a catalog is for the local provider only")),
            (None, Provider::Local) => {
                return Err(Error::invalid("catalog", "the local provider needs a static STAC catalog (catalog.json)"));
            }
            (None, _) => {}
        }
        Project::create(&new.dir, config, &new.aoi)
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

    /// The project.yaml settings a stage reads, in one place. A stage records them in its
    /// manifest's parameters (see [`Project::stage_parameters`]), and a change to any of them
    /// makes the stage stale ([`Project::stage_state`]), as `s2cr info` shows.
    pub fn stage_settings(&self, stage: Stage) -> serde_json::Value {
        let c = &self.config;
        let mut v = match stage {
            Stage::Search => serde_json::json!({
                "aoi": c.aoi,
                "t0": c.t0,
                "t1": c.t1,
                "max_cloud_percent": c.max_cloud_percent,
                "bands": c.bands,
                "provider": c.provider,
                "catalog": c.catalog,
                "collections": c.collections,
            }),
            Stage::Fetch => serde_json::json!({ "bands": c.bands }),
            // The openEO back-end only where one is set (projects without one keep their
            // parameters, so their outputs stay up to date).
            Stage::Preprocess => match &c.openeo {
                Some(o) => serde_json::json!({ "grid": c.grid, "bands": c.bands, "openeo": o.identity() }),
                None => serde_json::json!({ "grid": c.grid, "bands": c.bands }),
            },
            Stage::Dataset => serde_json::json!({ "grid": c.grid, "bands": c.bands }),
            // A run records the model and training settings it was given (from the files
            // project.yaml names, or others); the names alone decide nothing for it.
            Stage::Train => serde_json::json!({}),
            Stage::Infer | Stage::Assess | Stage::Export => serde_json::json!({ "grid": c.grid }),
        };
        // Composites, only where asked (projects without them keep their parameters).
        if let Some(composite) = &c.composite
            && matches!(stage, Stage::Search | Stage::Fetch | Stage::Preprocess)
        {
            v["composite"] = serde_json::json!(composite);
        }
        v
    }

    /// A stage's manifest parameters: its own `settings` and the project.yaml settings it reads,
    /// as they read back from a manifest (so the two compare equal).
    pub fn stage_parameters(&self, stage: Stage, settings: serde_json::Value) -> serde_json::Value {
        as_read_back(serde_json::json!({ "settings": settings, "project": self.stage_settings(stage) }))
    }

    /// The state of one stage from its manifest, the files on disk and project.yaml.
    pub fn stage_state(&self, stage: Stage, run: Option<&RunName>) -> Result<(StageState, Option<Manifest>)> {
        let Some(m) = Manifest::load(&self.manifest_path(stage, run))? else {
            return Ok((StageState::Missing, None));
        };
        let state = match m.parameters.get("project") {
            None => StageState::Stale("written by an older version of s2cr".into()),
            Some(recorded) => {
                let now = as_read_back(self.stage_settings(stage));
                let changed: Vec<&str> = match (recorded.as_object(), now.as_object()) {
                    (Some(a), Some(b)) => b.iter().filter(|(k, v)| a.get(k.as_str()) != Some(*v)).map(|(k, _)| k.as_str()).collect(),
                    _ => vec!["settings"],
                };
                if changed.is_empty() { m.state(&self.root, None) } else { StageState::Stale(format!("{PROJECT_FILE}'s {} changed", changed.join(", "))) }
            }
        };
        Ok((state, Some(m)))
    }

    /// Every stage's state; per-run stages once per run found (or once as missing). A stage
    /// done after a stage that is now stale (its settings or inputs changed) is stale too: its
    /// results came from the old ones.
    pub fn status(&self) -> Result<Vec<StageStatus>> {
        let runs = self.runs();
        let mut out: Vec<StageStatus> = Vec::new();
        for stage in Stage::ALL {
            let run_list: Vec<Option<RunName>> =
                if stage.per_run() && !runs.is_empty() { runs.iter().cloned().map(Some).collect() } else { vec![None] };
            for run in run_list {
                let (mut state, manifest) = self.stage_state(stage, run.as_ref())?;
                // The stages this one's results come from: the shared ones and its run's.
                // (A stage whose outputs were removed, to save disk, leaves later results valid.)
                let upstream_stale = out
                    .iter()
                    .filter(|s| s.run.is_none() || s.run == run)
                    .find(|s| matches!(&s.state, StageState::Stale(why) if !why.starts_with("output ")))
                    .map(|s| s.stage);
                if let (StageState::Done, Some(before)) = (&state, upstream_stale) {
                    state = StageState::Stale(format!("{before} is stale"));
                }
                out.push(StageStatus { stage, run, state, finished: manifest.map(|m| m.finished) });
            }
        }
        Ok(out)
    }
}

/// `value` as it reads back from JSON text: serde_json's float parsing may land one unit off a
/// number it wrote, so fresh parameters go through the same text before they are compared with
/// a manifest's.
fn as_read_back(value: serde_json::Value) -> serde_json::Value {
    serde_json::to_string(&value).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or(value)
}
