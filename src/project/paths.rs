//! Every path inside a project folder, in one place: one function per file or folder the
//! pipeline writes or reads, and [`RunName`], the only way to name a training run. No other
//! module spells a project file's name.
//!
//! ```text
//! project.yaml  aoi.geojson  pipeline.yaml
//! catalog/   search.json items.json manifest.json
//! raw/       <date>/<scene>/<band>.tif ...            manifest.json
//! preprocessed/ <date>/S2.tif <date>/S1.tif report.json manifest.json
//! dataset/   dataset.json tiles.json tiles.csv normalization.json|csv yearly.json dataX/ label/
//! runs/<run>/    checkpoint.json checkpoints/ model.yaml train.yaml metrics.csv preview.png
//!                [uncertainty_calibration.json] (an uncertainty head's scales on the validation blocks)
//!                dataset.json tiles.json normalization.json (copies of what it trained on)
//! outputs/<run>/ synthetic_S2_t1.tif assess/ manifest-{infer,assess,export}.json
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Project;
use super::stage::Stage;
use crate::error::{Error, Result};

/// The project file.
pub const PROJECT_FILE: &str = "project.yaml";
/// The area of interest of a new project.
pub const AOI_FILE: &str = "aoi.geojson";
/// The project's own pipeline settings (`s2cr run` without a file, the app, the demo).
pub const PIPELINE_FILE: &str = "pipeline.yaml";
/// How deep the folders a stage writes go below its own (raw/<date>/<scene>/, dataset/dataX/<source>/).
pub const MAX_DEPTH: usize = 4;

/// The folders a new project starts with.
pub const FOLDERS: [&str; 6] = ["catalog", "raw", "preprocessed", "dataset", "runs", "outputs"];

/// The name of a training run (`runs/<run>/`, `outputs/<run>/`): letters, digits, `-`, `_` and
/// `.` (not leading), at most 100 characters, so it is always one plain folder name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunName(String);

impl RunName {
    /// The run used when none is named.
    pub const DEFAULT: &'static str = "default";

    /// Checks a run name; the error says what is wrong and what is allowed.
    pub fn new(name: &str) -> Result<RunName> {
        let problem = if name.is_empty() {
            Some("is empty".to_string())
        } else if name.len() > 100 {
            Some(format!("is {} characters long (at most 100)", name.len()))
        } else if name.starts_with('.') {
            Some("starts with '.'".to_string())
        } else {
            name.chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
                .map(|c| format!("contains {c:?}"))
        };
        match problem {
            Some(p) => Err(Error::invalid("run", format!("{name:?} {p}; a run name uses letters, digits, '-', '_' and '.' (not first)"))),
            None => Ok(RunName(name.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RunName {
    fn default() -> Self {
        RunName(RunName::DEFAULT.to_string())
    }
}

impl std::str::FromStr for RunName {
    type Err = Error;
    fn from_str(s: &str) -> Result<RunName> {
        RunName::new(s)
    }
}

impl TryFrom<String> for RunName {
    type Error = Error;
    fn try_from(s: String) -> Result<RunName> {
        RunName::new(&s)
    }
}

impl From<RunName> for String {
    fn from(r: RunName) -> String {
        r.0
    }
}

impl std::fmt::Display for RunName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RunName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<Path> for RunName {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

/// The names of the files an assessment writes into its folder, for each map (`real`,
/// `synthetic`), whether in a project or a folder the user names.
pub mod assess_files {
    /// NBR t0, NBR t1 and dNBR (bands 1-3).
    pub fn indices(which: &str) -> String {
        format!("indices_{which}.tif")
    }
    /// Burn severity classes with a colour table.
    pub fn severity(which: &str) -> String {
        format!("severity_{which}.tif")
    }
    /// The official perimeter the maps were compared with, GeoJSON in WGS84.
    pub const PERIMETER_REFERENCE: &str = "perimeter_reference.geojson";
    /// Burned-area outlines, GeoJSON in WGS84.
    pub fn perimeter(which: &str) -> String {
        format!("burned_{which}.geojson")
    }
    /// Synthetic − real t1, per quality band.
    pub const DIFFERENCE: &str = "difference_S2_t1.tif";
    /// The spectral angle between real and synthetic t1, degrees.
    pub const SAM: &str = "sam_S2_t1.tif";
    /// The QA plots' numbers (`assess::qa::Qa`).
    pub const QA_JSON: &str = "qa.json";
    pub const REPORT_JSON: &str = "report.json";
    pub const REPORT_HTML: &str = "report.html";
}

/// A date as the folders of `raw/` and `preprocessed/` name it.
pub fn date_folder(datetime: &chrono::DateTime<chrono::Utc>) -> String {
    datetime.format("%Y-%m-%d").to_string()
}

impl Project {
    // The project's own files.
    pub fn project_file(&self) -> PathBuf {
        self.root().join(PROJECT_FILE)
    }
    pub fn pipeline_file(&self) -> PathBuf {
        self.root().join(PIPELINE_FILE)
    }

    // catalog/: the search stage.
    pub fn catalog_dir(&self) -> PathBuf {
        self.root().join("catalog")
    }
    /// Scenes found, chosen and paired.
    pub fn search_json(&self) -> PathBuf {
        self.catalog_dir().join("search.json")
    }
    /// The STAC items as the provider served them.
    pub fn items_json(&self) -> PathBuf {
        self.catalog_dir().join("items.json")
    }

    // raw/: the fetch stage.
    pub fn raw_dir(&self) -> PathBuf {
        self.root().join("raw")
    }
    /// The folder of one fetched scene: `raw/<date>/<scene id made safe>/`.
    pub fn raw_scene_dir(&self, datetime: &chrono::DateTime<chrono::Utc>, scene_id: &str) -> PathBuf {
        self.raw_dir().join(date_folder(datetime)).join(crate::fsutil::safe_name(scene_id))
    }
    /// One fetched asset of a scene (`<band>.tif`).
    pub fn raw_band_file(&self, datetime: &chrono::DateTime<chrono::Utc>, scene_id: &str, band: &str) -> PathBuf {
        self.raw_scene_dir(datetime, scene_id).join(format!("{}.tif", crate::fsutil::safe_name(band)))
    }

    /// A table fetched whole beside a GRD window: `kind` is `calibration` or `noise`.
    pub fn raw_grd_table(&self, datetime: &chrono::DateTime<chrono::Utc>, scene_id: &str, kind: &str, pol: &str) -> PathBuf {
        self.raw_scene_dir(datetime, scene_id).join(format!("{}.xml", crate::fsutil::safe_name(&format!("{kind}-{pol}"))))
    }

    // preprocessed/: the preprocess stage.
    pub fn preprocessed_dir(&self) -> PathBuf {
        self.root().join("preprocessed")
    }
    /// Sentinel-2 reflectance and mask of one date on the project grid.
    pub fn preprocessed_s2(&self, date: &str) -> PathBuf {
        self.preprocessed_dir().join(date).join("S2.tif")
    }
    /// The composite of a date window's clear Sentinel-2 acquisitions (`window`: t0 or t1) on
    /// the project grid (`preprocess::composite`).
    pub fn composite_s2(&self, window: &str) -> PathBuf {
        self.preprocessed_dir().join(format!("composite-{window}")).join("S2.tif")
    }
    /// Sentinel-1 backscatter (dB) of one date on the project grid.
    pub fn preprocessed_s1(&self, date: &str) -> PathBuf {
        self.preprocessed_dir().join(date).join("S1.tif")
    }
    /// The openEO batch jobs submitted for the project (taken up again after an interruption).
    /// The write lock (`project::lock`): at the root, in no manifest, never removed by clean.
    pub fn lock_file(&self) -> PathBuf {
        self.root().join(".s2cr.lock")
    }
    pub fn preprocessed_openeo_jobs(&self) -> PathBuf {
        self.preprocessed_dir().join("openeo-jobs.json")
    }
    pub fn preprocess_report(&self) -> PathBuf {
        self.preprocessed_dir().join("report.json")
    }

    // dataset/: the dataset stage.
    pub fn dataset_dir(&self) -> PathBuf {
        self.root().join("dataset")
    }
    pub fn dataset_json(&self) -> PathBuf {
        self.dataset_dir().join("dataset.json")
    }
    pub fn tiles_json(&self) -> PathBuf {
        self.dataset_dir().join("tiles.json")
    }
    pub fn tiles_csv(&self) -> PathBuf {
        self.dataset_dir().join("tiles.csv")
    }
    pub fn normalization_json(&self) -> PathBuf {
        self.dataset_dir().join("normalization.json")
    }
    pub fn normalization_csv(&self) -> PathBuf {
        self.dataset_dir().join("normalization.csv")
    }
    pub fn yearly_json(&self) -> PathBuf {
        self.dataset_dir().join("yearly.json")
    }
    /// Every input channel in tensor order (the research layout's `dataX/dataX.vrt`); the
    /// per-source folders beside it are the dataset module's (`dataset::Source::folder`).
    pub fn dataset_inputs_vrt(&self) -> PathBuf {
        self.dataset_dir().join("dataX").join("dataX.vrt")
    }
    /// The output channels (Sentinel-2 at t1).
    pub fn dataset_label_vrt(&self) -> PathBuf {
        self.dataset_dir().join("label").join("label.vrt")
    }
    /// The t0 and t1 masks as two bands.
    pub fn dataset_masks_vrt(&self) -> PathBuf {
        self.dataset_dir().join("masks.vrt")
    }

    // runs/<run>/: the train stage.
    pub fn runs_dir(&self) -> PathBuf {
        self.root().join("runs")
    }
    /// The last training-time measurement of each setting (`model::estimate`).
    pub fn train_estimates_json(&self) -> PathBuf {
        self.runs_dir().join("estimates.json")
    }
    pub fn run_dir(&self, run: &RunName) -> PathBuf {
        self.runs_dir().join(run.as_str())
    }
    /// The latest checkpoint's record (its presence means the run can resume).
    pub fn checkpoint_json(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("checkpoint.json")
    }
    pub fn checkpoints_dir(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("checkpoints")
    }
    pub fn run_model_yaml(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("model.yaml")
    }
    pub fn run_train_yaml(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("train.yaml")
    }
    /// An uncertainty head's scale factors, calibrated on the validation blocks.
    pub fn run_uncertainty_calibration(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("uncertainty_calibration.json")
    }
    pub fn metrics_csv(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("metrics.csv")
    }
    pub fn preview_png(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("preview.png")
    }
    /// The run's copy of the dataset summary it trained on.
    pub fn run_dataset_json(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("dataset.json")
    }
    pub fn run_tiles_json(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("tiles.json")
    }
    pub fn run_normalization_json(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("normalization.json")
    }
    /// The manifest of the bundle a run came in (`s2cr model import BUNDLE`).
    pub fn run_bundle_json(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("bundle.json")
    }
    /// Where a fine-tuned run's weights started (`train --init-from`).
    pub fn run_init_json(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("init.json")
    }
    /// How an imported run was made (`s2cr model import`).
    pub fn run_imported_json(&self, run: &RunName) -> PathBuf {
        self.run_dir(run).join("imported.json")
    }

    // outputs/<run>/: the infer, assess and export stages.
    pub fn outputs_dir(&self) -> PathBuf {
        self.root().join("outputs")
    }
    pub fn output_dir(&self, run: &RunName) -> PathBuf {
        self.outputs_dir().join(run.as_str())
    }
    /// The pieces of an inference split into tiles (`s2cr infer --tiles N --tile I`).
    pub fn infer_tiles_dir(&self, run: &RunName) -> PathBuf {
        self.output_dir(run).join("tiles")
    }
    pub fn infer_tile_tif(&self, run: &RunName, tiles: usize, tile: usize) -> PathBuf {
        self.infer_tiles_dir(run).join(format!("tile-{tile}-of-{tiles}.tif"))
    }
    /// A tile's piece of another raster inference writes (`uncertainty`, `burn-probability`).
    pub fn infer_tile_product_tif(&self, run: &RunName, tiles: usize, tile: usize, product: &str) -> PathBuf {
        self.infer_tiles_dir(run).join(format!("tile-{tile}-of-{tiles}-{product}.tif"))
    }
    pub fn infer_tile_json(&self, run: &RunName, tiles: usize, tile: usize) -> PathBuf {
        self.infer_tiles_dir(run).join(format!("tile-{tile}-of-{tiles}.json"))
    }
    /// The synthetic Sentinel-2 at t1 over the whole grid.
    pub fn synthetic_s2(&self, run: &RunName) -> PathBuf {
        self.output_dir(run).join("synthetic_S2_t1.tif")
    }
    /// The gap-filled post-fire image (real t1, else the t1 composite, else synthetic) and the
    /// class map of which source each pixel came from; the assessment writes them.
    pub fn gapfilled_s2(&self, run: &RunName) -> PathBuf {
        self.output_dir(run).join("gapfilled_S2_t1.tif")
    }
    pub fn gapfill_source(&self, run: &RunName) -> PathBuf {
        self.output_dir(run).join("gapfilled_source.tif")
    }
    /// Monte-Carlo dropout (`s2cr infer --samples K`): the standard deviation of the passes, per
    /// band, and the share of passes whose dNBR reaches the burned class.
    pub fn uncertainty_s2(&self, run: &RunName) -> PathBuf {
        self.output_dir(run).join("uncertainty_S2_t1.tif")
    }
    pub fn burn_probability(&self, run: &RunName) -> PathBuf {
        self.output_dir(run).join("burn_probability.tif")
    }
    pub fn assess_dir(&self, run: &RunName) -> PathBuf {
        self.output_dir(run).join("assess")
    }
    pub fn report_json(&self, run: &RunName) -> PathBuf {
        self.assess_dir(run).join(assess_files::REPORT_JSON)
    }
    pub fn report_html(&self, run: &RunName) -> PathBuf {
        self.assess_dir(run).join(assess_files::REPORT_HTML)
    }

    /// Where a stage's manifest lives.
    pub fn manifest_path(&self, stage: Stage, run: Option<&RunName>) -> PathBuf {
        let run = run.map(RunName::as_str).unwrap_or(RunName::DEFAULT);
        self.root().join(match stage {
            Stage::Search => PathBuf::from("catalog/manifest.json"),
            Stage::Fetch => PathBuf::from("raw/manifest.json"),
            Stage::Preprocess => PathBuf::from("preprocessed/manifest.json"),
            Stage::Dataset => PathBuf::from("dataset/manifest.json"),
            Stage::Train => PathBuf::from(format!("runs/{run}/manifest.json")),
            // Three stages write into outputs/<run>/: one manifest each.
            Stage::Infer | Stage::Assess | Stage::Export => PathBuf::from(format!("outputs/{run}/manifest-{}.json", stage.name())),
        })
    }

    /// The training runs present in `runs/` and `outputs/`, sorted; folders whose names are not
    /// run names are left out.
    pub fn runs(&self) -> Vec<RunName> {
        let mut runs = Vec::new();
        for dir in [self.runs_dir(), self.outputs_dir()] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.path().is_dir()
                        && let Some(name) = e.file_name().to_str().and_then(|n| RunName::new(n).ok())
                        && !runs.contains(&name)
                    {
                        runs.push(name);
                    }
                }
            }
        }
        runs.sort();
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_are_plain_folder_names() {
        for ok in ["default", "small", "fire-2020_v1.2", "A9"] {
            assert_eq!(RunName::new(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "../x", "a/b", "a\\b", ".hidden", "..", "a b", "x:y", &"r".repeat(101)] {
            let err = RunName::new(bad).unwrap_err().to_string();
            assert!(err.starts_with("run: "), "{bad:?}: {err}");
        }
        assert_eq!(RunName::default().as_str(), "default");
        let parsed: RunName = serde_norway::from_str("small").unwrap();
        assert_eq!(parsed.as_str(), "small");
        assert!(serde_norway::from_str::<RunName>("../../x").is_err());
    }
}
