//! The stages as one list with their settings: what the desktop app's wizard runs step by step
//! (and what a whole-pipeline run goes through in order). Each entry calls the same library
//! function as its `s2cr` command; nothing here decides anything a stage does not.

use serde::{Deserialize, Serialize};

use crate::catalog::ProviderConfig;
use crate::catalog::stage::SearchConfig;
use crate::dataset::DatasetConfig;
use crate::error::{Error, Result};
use crate::fetch::FetchOptions;
use crate::job::Progress;
use crate::model::DeviceChoice;
use crate::model::config::{ModelConfig, TrainConfig};
use crate::model::infer::InferOptions;
use crate::preprocess::stage::PreprocessConfig;
use crate::project::{Project, Stage};

/// Settings of every stage; `None` means the stage's defaults for the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSettings {
    pub search: Option<SearchConfig>,
    pub fetch: FetchOptions,
    pub preprocess: PreprocessConfig,
    pub dataset: Option<DatasetConfig>,
    /// Run name (runs/<run>, outputs/<run>).
    pub run: String,
    pub model: Option<ModelConfig>,
    pub train: Option<TrainConfig>,
    pub device: DeviceChoice,
    pub overlap: Option<f64>,
}

impl PipelineSettings {
    /// The run name, `default` when none is set.
    pub fn run_name(&self) -> &str {
        if self.run.is_empty() { "default" } else { &self.run }
    }

    pub fn search_config(&self, project: &Project) -> Result<SearchConfig> {
        match &self.search {
            Some(s) => Ok(s.clone()),
            None => Ok(SearchConfig::new(ProviderConfig::for_project(project.config.provider)?)),
        }
    }

    pub fn dataset_config(&self, project: &Project) -> DatasetConfig {
        self.dataset.clone().unwrap_or_else(|| DatasetConfig::research(project))
    }

    /// model.yaml: these settings, else the project's model_config file, else pix2pix's.
    pub fn model_config(&self, project: &Project) -> Result<ModelConfig> {
        if let Some(m) = &self.model {
            return Ok(m.clone());
        }
        match &project.config.model_config {
            Some(p) => ModelConfig::load(&project.root().join(p)),
            None => Ok(ModelConfig::default()),
        }
    }

    /// train.yaml: these settings, else the project's train_config file, else pix2pix's.
    pub fn train_config(&self, project: &Project) -> Result<TrainConfig> {
        if let Some(t) = &self.train {
            return Ok(t.clone());
        }
        match &project.config.train_config {
            Some(p) => TrainConfig::load(&project.root().join(p)),
            None => Ok(TrainConfig::default()),
        }
    }
}

/// Whether the app and `s2cr run` can run a stage from the project alone, and if not, why.
pub fn availability(stage: Stage) -> std::result::Result<(), &'static str> {
    match stage {
        Stage::Search | Stage::Fetch | Stage::Preprocess | Stage::Dataset | Stage::Train | Stage::Infer => Ok(()),
        Stage::Assess => Err("needs a real post-fire Sentinel-2 to compare with: run `s2cr assess --pre --real --synthetic`"),
        Stage::Export => Err("not built yet: the files in outputs/<run>/ are GeoTIFFs (COG) already"),
    }
}

/// Runs one stage with these settings, resuming where an earlier run of it stopped; returns a
/// one-line summary for logs and the app.
pub fn run_stage(project: &Project, stage: Stage, settings: &PipelineSettings, progress: &Progress) -> Result<String> {
    if let Err(why) = availability(stage) {
        return Err(Error::invalid(stage.name(), why));
    }
    let run = settings.run_name().to_string();
    match stage {
        Stage::Search => {
            let r = crate::catalog::stage::search(project, &settings.search_config(project)?, progress)?;
            Ok(format!(
                "{} + {} Sentinel-2 and {} Sentinel-1 scenes found; chosen t0 {}, t1 {}",
                r.s2_t0.len(),
                r.s2_t1.len(),
                r.s1.len(),
                r.chosen_t0.as_deref().unwrap_or("none"),
                r.chosen_t1.as_deref().unwrap_or("none")
            ))
        }
        Stage::Fetch => {
            let r = crate::fetch::fetch(project, &settings.fetch, progress)?;
            Ok(format!("{} files, {} downloaded, {:.1} MiB over the network", r.files.len(), r.files.iter().filter(|f| f.downloaded).count(), r.network_bytes as f64 / 1_048_576.0))
        }
        Stage::Preprocess => {
            let r = crate::preprocess::stage::preprocess(project, &settings.preprocess, progress)?;
            Ok(format!("{} rasters on the project grid", r.len()))
        }
        Stage::Dataset => {
            let s = crate::dataset::build(project, &settings.dataset_config(project), progress)?;
            Ok(format!("patches: train {}, val {}, test {}", s.train, s.val, s.test))
        }
        Stage::Train => {
            let resume = project.run_dir(&run).join("checkpoint.json").is_file();
            let opts = crate::model::train::TrainOptions { run: run.clone(), model: settings.model_config(project)?, train: settings.train_config(project)?, device: settings.device, resume };
            let r = crate::model::train::train(project, &opts, progress)?;
            Ok(format!("{} steps on {}; G L1 {:.4}", r.steps, r.device, r.last.g_l1))
        }
        Stage::Infer => {
            let defaults = InferOptions::default();
            let opts = InferOptions { run, device: settings.device, overlap: settings.overlap.unwrap_or(defaults.overlap), ..defaults };
            let r = crate::model::infer::infer(project, &opts, progress)?;
            Ok(format!("{} windows; {:.1} % of the grid synthesized: {}", r.windows, r.valid_percent, r.path.display()))
        }
        Stage::Assess | Stage::Export => Err(Error::invalid(stage.name(), "not available")),
    }
}
