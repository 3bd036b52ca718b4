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
use crate::project::{Project, RunName, Stage, StageState};

/// Settings of every stage; `None` means the stage's defaults for the project. This is also the
/// pipeline file of `s2cr run` (YAML), where `project` and `stages` say what to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSettings {
    /// The project folder, relative to the pipeline file (default: `--project` or the current
    /// folder).
    pub project: Option<std::path::PathBuf>,
    /// Stages to run, in pipeline order whatever the order here (default: every stage that can
    /// run from the project alone).
    pub stages: Vec<String>,
    pub search: Option<SearchConfig>,
    pub fetch: FetchOptions,
    pub preprocess: PreprocessConfig,
    pub dataset: Option<DatasetConfig>,
    /// Run name (runs/<run>, outputs/<run>); `default` when not given.
    pub run: RunName,
    pub model: Option<ModelConfig>,
    pub train: Option<TrainConfig>,
    pub device: DeviceChoice,
    pub overlap: Option<f64>,
    pub assess: AssessSettings,
    pub infer: InferSettings,
}

/// `infer:` in a pipeline file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferSettings {
    /// Monte-Carlo dropout passes per window (0: off); see `s2cr infer --samples`.
    #[serde(skip_serializing_if = "is_zero")]
    pub samples: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// `assess:` in a pipeline file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssessSettings {
    /// An official fire perimeter both burned maps are compared with (instead of project.yaml's
    /// `reference_perimeter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perimeter: Option<std::path::PathBuf>,
    /// The dNBR offset (on unless `enabled: false`; the ring's distances or a polygon).
    #[serde(skip_serializing_if = "is_default_offset")]
    pub dnbr_offset: crate::assess::offset::DnbrOffset,
    /// The burned maps cleaned before their perimeters are drawn (majority, minimum mapping
    /// unit, holes); absent: as classified.
    #[serde(skip_serializing_if = "crate::assess::perimeters::PerimeterCleaning::is_off")]
    pub perimeter_cleaning: crate::assess::perimeters::PerimeterCleaning,
    /// The severity classes: a preset's name (`usgs`, `barc4`), a preset with other `bounds`
    /// and `burned_from`, or the analyst's own `classes`; absent: USGS.
    #[serde(skip_serializing_if = "is_usgs")]
    pub severity_classes: crate::indices::severity::SeverityScheme,
    /// Field plots with a CBI each (`file`, `field`: CBI, `classify`: false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plots: Option<crate::assess::plots::FieldPlots>,
}

impl AssessSettings {
    /// The assessment's settings these give (a plots file relative to the project folder).
    pub fn config(&self, project: &Project) -> crate::assess::AssessConfig {
        crate::assess::AssessConfig {
            perimeter: self.perimeter.clone(),
            dnbr_offset: self.dnbr_offset.clone(),
            perimeter_cleaning: self.perimeter_cleaning.clone(),
            severity_classes: self.severity_classes.clone(),
            plots: self.plots.clone().map(|mut p| {
                p.file = project.root().join(&p.file);
                p
            }),
            ..Default::default()
        }
    }

    /// `cli`'s settings where it departs from the defaults, else these (what `s2cr assess` in a
    /// project runs: its flags over pipeline.yaml's `assess:`, as `s2cr run` would).
    pub fn under(&self, project: &Project, cli: crate::assess::AssessConfig) -> crate::assess::AssessConfig {
        let (base, d) = (self.config(project), crate::assess::AssessConfig::default());
        crate::assess::AssessConfig {
            perimeter: cli.perimeter.clone().or(base.perimeter),
            dnbr_offset: if cli.dnbr_offset != d.dnbr_offset { cli.dnbr_offset.clone() } else { base.dnbr_offset },
            perimeter_cleaning: if cli.perimeter_cleaning != d.perimeter_cleaning { cli.perimeter_cleaning.clone() } else { base.perimeter_cleaning },
            severity_classes: if cli.severity_classes != d.severity_classes { cli.severity_classes.clone() } else { base.severity_classes },
            plots: cli.plots.clone().or(base.plots),
            ..cli
        }
    }
}

fn is_usgs(s: &crate::indices::severity::SeverityScheme) -> bool {
    *s == crate::indices::severity::SeverityScheme::usgs()
}

fn is_default_offset(o: &crate::assess::offset::DnbrOffset) -> bool {
    *o == crate::assess::offset::DnbrOffset::default()
}

impl PipelineSettings {
    /// Reads a pipeline file; an unknown key or a wrong value names its line.
    pub fn load(path: &std::path::Path) -> Result<PipelineSettings> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path, "reading the pipeline file"))?;
        Self::parse(&text, path)
    }

    /// Parses the text of a pipeline file (`path` names it in errors).
    pub fn parse(text: &str, path: &std::path::Path) -> Result<PipelineSettings> {
        serde_norway::from_str(text).map_err(|e| Error::yaml(path, text, e))
    }

    /// A project's own pipeline settings: its `pipeline.yaml` when it has one (the demo's
    /// does), else the defaults. `s2cr run` without a file and the app start from these.
    pub fn of_project(project: &Project) -> Result<PipelineSettings> {
        let path = project.pipeline_file();
        if path.is_file() { PipelineSettings::load(&path) } else { Ok(PipelineSettings::default()) }
    }

    /// The stages to run, in pipeline order.
    pub fn selected_stages(&self) -> Result<Vec<Stage>> {
        for name in &self.stages {
            if !Stage::ALL.iter().any(|s| s.name() == name) {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
                return Err(Error::invalid("stages", format!("{name:?} is not a stage; use {}", names.join(", "))));
            }
        }
        Ok(Stage::ALL
            .into_iter()
            .filter(|s| if self.stages.is_empty() { availability(*s).is_ok() } else { self.stages.iter().any(|n| n == s.name()) })
            .collect())
    }

    /// The run's name.
    pub fn run_name(&self) -> &RunName {
        &self.run
    }

    pub fn search_config(&self, project: &Project) -> Result<SearchConfig> {
        match &self.search {
            Some(s) => Ok(s.clone()),
            None => Ok(SearchConfig::new(ProviderConfig::for_project(&project.config, project.root())?)),
        }
    }

    pub fn dataset_config(&self, project: &Project) -> DatasetConfig {
        self.dataset.clone().unwrap_or_else(|| DatasetConfig::research(project))
    }

    /// model.yaml: these settings, else the project's model_config file, else pix2pix's.
    pub fn model_config(&self, project: &Project) -> Result<ModelConfig> {
        given_or_project(&self.model, &project.config.model_config, project, ModelConfig::load)
    }

    /// train.yaml: these settings, else the project's train_config file, else pix2pix's.
    pub fn train_config(&self, project: &Project) -> Result<TrainConfig> {
        given_or_project(&self.train, &project.config.train_config, project, TrainConfig::load)
    }
}

/// A configuration given here, else the file project.yaml names (relative to the project),
/// else the defaults.
fn given_or_project<T: Clone + Default>(given: &Option<T>, file: &Option<std::path::PathBuf>, project: &Project, load: fn(&std::path::Path) -> Result<T>) -> Result<T> {
    match (given, file) {
        (Some(c), _) => Ok(c.clone()),
        (None, Some(p)) => load(&project.root().join(p)),
        (None, None) => Ok(T::default()),
    }
}

/// Whether the app and `s2cr run` can run a stage from the project alone, and if not, why.
pub fn availability(stage: Stage) -> std::result::Result<(), &'static str> {
    match stage {
        Stage::Search | Stage::Fetch | Stage::Preprocess | Stage::Dataset | Stage::Train | Stage::Infer => Ok(()),
        Stage::Assess => Ok(()),
        Stage::Export => Err("not a pipeline stage: export layers with Export… in the Layers panel or `s2cr export`"),
    }
}

/// What the Train stage trains with these settings: the run, its model and training settings,
/// the device, and whether it continues from a checkpoint (when the run has one).
pub fn train_options(project: &Project, settings: &PipelineSettings) -> Result<crate::model::train::TrainOptions> {
    let run = settings.run_name().clone();
    let resume = project.checkpoint_json(&run).is_file();
    Ok(crate::model::train::TrainOptions { run, model: settings.model_config(project)?, train: settings.train_config(project)?, device: settings.device, resume })
}

/// Runs one stage with these settings, resuming where an earlier run of it stopped; returns a
/// one-line summary for logs and the app.
pub fn run_stage(project: &Project, stage: Stage, settings: &PipelineSettings, progress: &Progress) -> Result<String> {
    if let Err(why) = availability(stage) {
        return Err(Error::invalid(stage.name(), why));
    }
    let run = settings.run_name().clone();
    match stage {
        Stage::Search => {
            let r = crate::catalog::stage::search(project, &settings.search_config(project)?, progress)?;
            let composites: String = [false, true]
                .into_iter()
                .filter(|t1| if *t1 { r.composite_t1.is_some() } else { r.composite_t0.is_some() })
                .map(|t1| format!("; {} composite: {} other acquisition(s)", if t1 { "t1" } else { "t0" }, r.composite_s2(t1).len()))
                .collect();
            Ok(format!(
                "{} + {} Sentinel-2 and {} Sentinel-1 scenes found; chosen t0 {}, t1 {}{composites}",
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
            let opts = train_options(project, settings)?;
            let resume = opts.resume;
            // A checkpoint from before a change of the training set: training goes on from it
            // (fine-tuning); say so, and how to start over.
            let stale = match project.stage_state(Stage::Train, Some(&run)) {
                Ok((StageState::Stale(why), _)) if resume => Some(why),
                _ => None,
            };
            if let Some(why) = &stale {
                progress.warn(format!("run {run} was trained before a change ({why}); training continues from its checkpoint; delete {} to start over", project.run_dir(&run).display()));
            }
            let r = crate::model::train::train(project, &opts, progress)?;
            if r.resumed_from == Some(r.steps) {
                let note = stale.map(|why| format!(" (trained before a change: {why}; delete the run to train again)")).unwrap_or_default();
                return Ok(format!("up to date: {} steps done in {}{note}", r.steps, r.run_dir.display()));
            }
            Ok(format!("{} steps on {}; G L1 {:.4}", r.steps, r.device, r.last.g_l1))
        }
        Stage::Infer => {
            let defaults = InferOptions::default();
            let opts = InferOptions { run, device: settings.device, overlap: settings.overlap.unwrap_or(defaults.overlap), samples: settings.infer.samples, burned_dnbr: settings.assess.severity_classes.burned_dnbr(), ..defaults };
            let r = crate::model::infer::infer(project, &opts, progress)?;
            if r.skipped {
                return Ok(format!("up to date: {}", r.path.display()));
            }
            Ok(format!("{} windows; {:.1} % of the grid synthesized: {}", r.windows, r.valid_percent, r.path.display()))
        }
        Stage::Assess => {
            let cfg = settings.assess.config(project);
            Ok(crate::assess::assess_project(project, &run, &cfg, progress)?.summary())
        }
        Stage::Export => Err(Error::invalid(stage.name(), "not available")),
    }
}

/// Runs the selected stages in order. Each stage skips itself when it is up to date and resumes
/// what an interrupted run left (fetch: the files it has, training: its last checkpoint), so
/// running the pipeline again after a stop continues it. Returns each stage's summary.
pub fn run(project: &Project, settings: &PipelineSettings, progress: &Progress) -> Result<Vec<(Stage, String)>> {
    let stages = settings.selected_stages()?;
    let log = progress.for_stage("pipeline");
    log.info(format!("stages: {}", stages.iter().map(|s| s.name()).collect::<Vec<_>>().join(" -> ")));
    let mut done = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        progress.check_cancelled()?;
        log.info(format!("{}/{}: {stage}", i + 1, stages.len()));
        let summary = run_stage(project, *stage, settings, &progress.for_stage(stage.name()))?;
        log.info(format!("{stage}: {summary}"));
        done.push((*stage, summary));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_file_parses_and_typos_name_their_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("pipeline.yaml");
        std::fs::write(&path, "project: my-fire\nstages: [dataset, train]\nrun: small\nmodel:\n  ngf: 16\n  depth: 6\ntrain:\n  max_steps: 100\npreprocess:\n  block_rows: 256\n").unwrap();
        let s = PipelineSettings::load(&path).unwrap();
        assert_eq!(s.selected_stages().unwrap(), [Stage::Dataset, Stage::Train]);
        assert_eq!(s.model.as_ref().map(|m| (m.ngf, m.ndf)), Some((16, 64)), "unset keys keep their defaults");
        assert_eq!(s.train.as_ref().map(|t| t.max_steps), Some(100));
        assert_eq!(s.preprocess.block_rows, 256);
        std::fs::write(&path, "run: a\ntrian:\n  max_steps: 1\n").unwrap();
        let err = PipelineSettings::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("trian"), "{err}");
        let s = PipelineSettings { stages: vec!["fetchh".into()], ..Default::default() };
        assert!(s.selected_stages().unwrap_err().to_string().contains("\"fetchh\" is not a stage"));
        assert_eq!(PipelineSettings::default().selected_stages().unwrap(), [Stage::Search, Stage::Fetch, Stage::Preprocess, Stage::Dataset, Stage::Train, Stage::Infer, Stage::Assess]);
        // The example shipped in confs/.
        let example = PipelineSettings::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("confs/pipeline.yaml")).unwrap();
        assert_eq!(example.model.map(|m| m.depth), Some(6));
    }
}
