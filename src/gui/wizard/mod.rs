//! The project wizard: one step per stage (Area -> Scenes -> Fetch -> Preprocess -> Dataset ->
//! Train -> Synthesize -> Assess -> Export), each with its settings, a Run button that starts
//! the stage on a worker thread (`crate::pipeline::run_stage`, the same function `s2cr run`
//! uses), progress with ETA, Cancel, and the step's state read from the project's manifests.
//! The wizard holds no pipeline logic: it edits settings and watches events. What it shows of
//! the project (states, assessment) is read on a worker thread by the app
//! (`background::ProjectView`) when the wizard asks for it ([`Wizard::request_refresh`]).
//!
//! This front holds the wizard's state, the job it runs and the frame every step shares (state,
//! Run/Cancel, progress, outcome); each step with settings of its own has a file: `fetch`,
//! `preprocess`, `train` (Train and Synthesize) and `assess`.

use std::sync::Arc;
use std::time::Instant;

use eframe::egui::{self, Color32, RichText};

use crate::assess::AssessReport;
use crate::error::{Error, Result};
use crate::job::{JobEvent, JobHandle, LogLevel};
use crate::pipeline::{PipelineSettings, availability, run_stage};
use crate::project::{Project, RunName, Stage, StageState};

mod assess;
mod fetch;
mod preprocess;
mod train;

/// The wizard's steps, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Step {
    Area,
    Scenes,
    Fetch,
    Preprocess,
    Dataset,
    Train,
    Synthesize,
    Assess,
    Export,
}

impl Step {
    pub const ALL: [Step; 9] = [Step::Area, Step::Scenes, Step::Fetch, Step::Preprocess, Step::Dataset, Step::Train, Step::Synthesize, Step::Assess, Step::Export];

    pub fn title(self) -> &'static str {
        match self {
            Step::Area => "Area",
            Step::Scenes => "Scenes",
            Step::Fetch => "Fetch",
            Step::Preprocess => "Preprocess",
            Step::Dataset => "Dataset",
            Step::Train => "Train",
            Step::Synthesize => "Synthesize",
            Step::Assess => "Assess",
            Step::Export => "Export",
        }
    }

    /// The stage a step runs (the Area step runs none).
    pub fn stage(self) -> Option<Stage> {
        match self {
            Step::Area => None,
            Step::Scenes => Some(Stage::Search),
            Step::Fetch => Some(Stage::Fetch),
            Step::Preprocess => Some(Stage::Preprocess),
            Step::Dataset => Some(Stage::Dataset),
            Step::Train => Some(Stage::Train),
            Step::Synthesize => Some(Stage::Infer),
            Step::Assess => Some(Stage::Assess),
            Step::Export => Some(Stage::Export),
        }
    }
}

/// A stage running in the background and what it has reported so far.
pub struct RunningJob {
    pub stage: Stage,
    pub handle: JobHandle<String>,
    pub started: Instant,
    pub done: u64,
    pub total: u64,
    pub message: String,
}

impl RunningJob {
    pub fn fraction(&self) -> f32 {
        if self.total == 0 { 0.0 } else { (self.done as f32 / self.total as f32).clamp(0.0, 1.0) }
    }

    /// Seconds left at the pace so far, once some work is done.
    pub fn eta_secs(&self) -> Option<f64> {
        (self.done > 0 && self.total > self.done).then(|| self.started.elapsed().as_secs_f64() * (self.total - self.done) as f64 / self.done as f64)
    }
}

/// How the last run of a stage ended in this session.
#[derive(Debug, Clone)]
pub enum Outcome {
    Finished(String),
    Failed(Arc<Error>),
    Cancelled,
}

impl PartialEq for Outcome {
    fn eq(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Finished(a), Outcome::Finished(b)) => a == b,
            (Outcome::Failed(a), Outcome::Failed(b)) => Arc::ptr_eq(a, b) || crate::error_chain(a.as_ref()) == crate::error_chain(b.as_ref()),
            (Outcome::Cancelled, Outcome::Cancelled) => true,
            _ => false,
        }
    }
}

/// A line of the log panel.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: LogLevel,
    pub stage: String,
    pub text: String,
}

/// Training curves: (step, value) per metric name.
#[derive(Debug, Clone, Default)]
pub struct Curves {
    pub series: std::collections::BTreeMap<String, Vec<[f64; 2]>>,
}

pub struct Wizard {
    pub step: Step,
    pub settings: PipelineSettings,
    pub job: Option<RunningJob>,
    /// Each stage's state from the manifests (read again when a job ends or a project opens).
    pub states: Vec<(Stage, StageState)>,
    pub outcomes: std::collections::BTreeMap<&'static str, Outcome>,
    pub log: Vec<LogLine>,
    pub curves: Curves,
    /// The training preview (label | synthetic) and the step it shows.
    pub preview: Option<(egui::TextureHandle, u64)>,
    /// The step of the newest preview the training reported, not loaded yet.
    preview_pending: Option<u64>,
    /// The run's assessment (report.json), read with the states, not every frame.
    assessment: Option<Result<AssessReport>>,
    /// The run name field while it does not hold a valid name, and why (the settings keep the
    /// last valid one).
    run_edit: Option<(String, Error)>,
    /// The project should be read again (true: its layers too), for the app to start.
    refresh_request: Option<bool>,
    /// The training-time measurement in flight, and the last one shown with the settings it
    /// was for.
    pub estimating: Option<(EstimateFor, super::background::Task<crate::model::estimate::Estimate>)>,
    pub estimate: Option<(EstimateFor, std::result::Result<crate::model::estimate::Estimate, Arc<Error>>)>,
}

/// The settings an estimate was made for: it is shown while they stay the same.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateFor {
    run: RunName,
    model: Option<crate::model::config::ModelConfig>,
    train: Option<crate::model::config::TrainConfig>,
    device: crate::model::DeviceChoice,
}

impl EstimateFor {
    fn of(s: &PipelineSettings) -> EstimateFor {
        EstimateFor { run: s.run_name().clone(), model: s.model.clone(), train: s.train.clone(), device: s.device }
    }
}

impl Default for Wizard {
    fn default() -> Self {
        Wizard {
            step: Step::Area,
            settings: PipelineSettings::default(),
            job: None,
            states: Vec::new(),
            outcomes: Default::default(),
            log: Vec::new(),
            curves: Curves::default(),
            preview: None,
            preview_pending: None,
            assessment: None,
            run_edit: None,
            refresh_request: None,
            estimating: None,
            estimate: None,
        }
    }
}

impl Wizard {
    /// Asks for the project's states (and with `layers`, its layers) to be read again; the app
    /// starts the reading and hands the answer to [`Wizard::apply`].
    pub fn request_refresh(&mut self, layers: bool) {
        self.refresh_request = Some(self.refresh_request.unwrap_or(false) || layers);
    }

    /// The refresh asked for since the last call (true: layers too).
    pub fn take_refresh_request(&mut self) -> Option<bool> {
        self.refresh_request.take()
    }

    /// Shows what was read of the project for the settings' run.
    pub fn apply(&mut self, states: Vec<(Stage, StageState)>, assessment: Option<Result<AssessReport>>, has_preview: bool) {
        self.states = states;
        self.assessment = assessment;
        // The run's last training preview, shown until training reports a new one.
        if self.preview.is_none() && self.preview_pending.is_none() && has_preview {
            self.preview_pending = Some(0);
        }
    }

    /// Drops what belonged to the run (or project) shown so far.
    pub fn forget_run(&mut self) {
        (self.preview, self.preview_pending) = (None, None);
        self.curves = Curves::default();
        self.states.clear();
        self.assessment = None;
        self.run_edit = None;
    }

    /// Shows another run: drops the previous one's states and asks for the new one's.
    pub fn show_run(&mut self) {
        self.forget_run();
        self.request_refresh(true);
    }

    pub fn state(&self, stage: Stage) -> Option<&StageState> {
        self.states.iter().find(|(s, _)| *s == stage).map(|(_, st)| st)
    }

    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// The stage running now, if any.
    pub fn running_stage(&self) -> Option<&'static str> {
        self.job.as_ref().map(|j| j.stage.name())
    }

    /// Starts a stage on a worker thread; refused while another runs.
    pub fn start(&mut self, project: &Project, stage: Stage) -> Result<()> {
        if let Some(j) = &self.job {
            return Err(Error::invalid(stage.name(), format!("{} is running; wait for it or cancel it", j.stage)));
        }
        availability(stage).map_err(|why| Error::invalid(stage.name(), why))?;
        let project = project.clone();
        let settings = self.settings.clone();
        if stage == Stage::Train {
            self.curves = Curves::default();
        }
        // One writer per project: the stage holds the project's lock until it ends; another
        // writer (an `s2cr run`, say) is named on the step.
        let lock = match project.lock_for_writing(&format!("the s2cr app's {} step", stage.name()), false) {
            Ok(l) => l,
            Err(e) => {
                let e = Arc::new(e);
                self.outcomes.insert(stage.name(), Outcome::Failed(e.clone()));
                return Err(Error::invalid(stage.name(), crate::error_chain(e.as_ref())));
            }
        };
        let handle = crate::job::spawn(stage.name(), move |p| {
            let _lock = lock;
            run_stage(&project, stage, &settings, p)
        })?;
        self.outcomes.remove(stage.name());
        self.log.push(LogLine { level: LogLevel::Info, stage: stage.name().into(), text: "started".into() });
        self.job = Some(RunningJob { stage, handle, started: Instant::now(), done: 0, total: 0, message: String::new() });
        Ok(())
    }


    pub fn cancel(&mut self) {
        if let Some(j) = &self.job {
            j.handle.cancel();
            self.log.push(LogLine { level: LogLevel::Warn, stage: j.stage.name().into(), text: "cancel requested; stopping after the current unit of work".into() });
        }
    }

    /// Takes the running job's events; when it has ended, records the outcome and asks for the
    /// project to be read again. Returns the stage that ended this frame, if one did.
    pub fn poll(&mut self) -> Option<Stage> {
        let Some(job) = &mut self.job else { return None };
        let events = job.handle.drain();
        for e in events {
            match e {
                JobEvent::Started { total, .. } => {
                    job.total = total.unwrap_or(0);
                    job.done = 0;
                }
                JobEvent::Advanced { done, total, message, .. } => {
                    (job.done, job.total, job.message) = (done, total, message);
                }
                JobEvent::Metric { name, step, .. } if name == "preview" => self.preview_pending = Some(step),
                JobEvent::Metric { name, value, step, .. } => {
                    if value.is_finite() {
                        self.curves.series.entry(name).or_default().push([step as f64, value]);
                    }
                }
                JobEvent::Log { stage, level, message } => self.log.push(LogLine { level, stage, text: message }),
                JobEvent::Finished { .. } | JobEvent::Failed { .. } | JobEvent::Cancelled { .. } => {}
            }
        }
        if !job.handle.is_finished() {
            return None;
        }
        let Some(job) = self.job.take() else { return None };
        let stage = job.stage;
        let outcome = match job.handle.join() {
            Ok(summary) => Outcome::Finished(summary),
            Err(Error::Cancelled) => Outcome::Cancelled,
            Err(e) => Outcome::Failed(Arc::new(e)),
        };
        let (level, text) = match &outcome {
            Outcome::Finished(s) => (LogLevel::Info, format!("finished: {s}")),
            Outcome::Failed(e) => (LogLevel::Warn, format!("failed: {}", crate::error_chain(e.as_ref()))),
            Outcome::Cancelled => (LogLevel::Warn, "cancelled; what was finished is kept, Run resumes".to_string()),
        };
        self.log.push(LogLine { level, stage: stage.name().into(), text });
        self.outcomes.insert(stage.name(), outcome);
        // A stage that ended may have changed states and made new layers.
        self.request_refresh(true);
        Some(stage)
    }

    /// The step list: a selectable row per step with its state.
    pub fn steps_ui(&mut self, ui: &mut egui::Ui) {
        for step in Step::ALL {
            let (mark, colour) = match step.stage() {
                None => ("", ui.visuals().text_color()),
                Some(stage) => self.badge(stage, ui),
            };
            ui.horizontal(|ui| {
                if ui.selectable_label(self.step == step, RichText::new(step.title()).strong()).clicked() {
                    self.step = step;
                }
                if !mark.is_empty() {
                    ui.label(RichText::new(mark).color(colour).small());
                }
            });
        }
    }

    fn badge(&self, stage: Stage, ui: &egui::Ui) -> (&'static str, Color32) {
        if self.job.as_ref().is_some_and(|j| j.stage == stage) {
            return ("running", Color32::from_rgb(0x20, 0x80, 0xd0));
        }
        if availability(stage).is_err() {
            return ("unavailable", ui.visuals().weak_text_color());
        }
        match (self.outcomes.get(stage.name()), self.state(stage)) {
            (Some(Outcome::Failed(_)), _) => ("failed", ui.visuals().error_fg_color),
            (Some(Outcome::Cancelled), _) => ("cancelled", ui.visuals().warn_fg_color),
            (_, Some(StageState::Done)) => ("done", Color32::from_rgb(0x30, 0xa0, 0x40)),
            (_, Some(StageState::Stale(_))) => ("stale", ui.visuals().warn_fg_color),
            _ => ("", ui.visuals().text_color()),
        }
    }

    /// The selected step's page for a stage: state, settings, Run / Cancel / Retry, progress.
    pub fn stage_ui(&mut self, ui: &mut egui::Ui, project: Option<&Project>, stage: Stage) {
        let Some(project) = project else {
            ui.label("Open or create a project first (Area step).");
            return;
        };
        if let Err(why) = availability(stage) {
            ui.label(RichText::new(format!("Unavailable here: {why}")).weak());
            return;
        }
        match self.state(stage) {
            Some(StageState::Done) => ui.label("State: done (up to date; Run again skips or redoes only what changed)"),
            Some(StageState::Stale(why)) => ui.label(format!("State: stale ({why})")),
            _ => ui.label("State: not run yet"),
        };
        ui.add_space(4.0);
        self.settings_ui(ui, project, stage);
        ui.add_space(6.0);
        let running_this = self.job.as_ref().is_some_and(|j| j.stage == stage);
        ui.horizontal(|ui| {
            let label = match self.outcomes.get(stage.name()) {
                Some(Outcome::Failed(_)) => "Retry",
                Some(Outcome::Cancelled) => "Resume",
                _ => "Run",
            };
            // (Not while training steps are being measured: both would share the cores.)
            if ui.add_enabled(self.job.is_none() && self.estimating.is_none(), egui::Button::new(label)).clicked() {
                if let Err(e) = self.start(project, stage) {
                    self.log.push(LogLine { level: LogLevel::Warn, stage: stage.name().into(), text: crate::error_chain(&e) });
                }
            }
            if ui.add_enabled(running_this, egui::Button::new("Cancel")).clicked() {
                self.cancel();
            }
        });
        if let Some(job) = self.job.as_ref().filter(|j| j.stage == stage) {
            let eta = job.eta_secs().map(|s| format!(", about {} left", crate::job::human_duration(s))).unwrap_or_default();
            let text = if job.total > 0 { format!("{} / {}{eta}  {}", job.done, job.total, job.message) } else { format!("working… {}", job.message) };
            ui.add(egui::ProgressBar::new(job.fraction()).text(text).animate(job.total == 0));
        }
        match self.outcomes.get(stage.name()) {
            Some(Outcome::Finished(s)) => {
                ui.label(RichText::new(format!("Finished: {s}")).color(Color32::from_rgb(0x30, 0xa0, 0x40)));
            }
            Some(Outcome::Failed(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("Failed: {}", crate::error_chain(e.as_ref())));
            }
            Some(Outcome::Cancelled) => {
                ui.colored_label(ui.visuals().warn_fg_color, "Cancelled. What was finished is kept; Resume continues.");
            }
            None => {}
        }
        if stage == Stage::Train {
            self.estimate_ui(ui, project);
            self.curves_ui(ui);
            self.preview_ui(ui, project);
        }
        if stage == Stage::Assess {
            self.assessment_ui(ui, project);
        }
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui, project: &Project, stage: Stage) {
        // Training settings shown here start from the project's train.yaml (else the defaults).
        let project_train = if stage == Stage::Train && self.settings.train.is_none() { self.settings.train_config(project).ok() } else { None };
        let mut run_changed = false;
        // The run of a running stage stays the shown one until it ends.
        let running = self.job.is_some();
        let s = &mut self.settings;
        let run_edit = &mut self.run_edit;
        egui::Grid::new(("settings", stage.name())).num_columns(2).show(ui, |ui| match stage {
            Stage::Fetch => fetch::settings(ui, s),
            Stage::Preprocess => preprocess::settings(ui, s, running),
            Stage::Assess => assess::settings(ui, s, running),
            Stage::Train | Stage::Infer => run_changed = train::settings(ui, s, run_edit, stage, running, project_train.as_ref(), project),
            _ => {
                ui.label(RichText::new("Defaults from the project; `s2cr` options give more control.").weak());
                ui.end_row();
            }
        });
        if let (Some((_, e)), Stage::Train | Stage::Infer) = (&self.run_edit, stage) {
            ui.colored_label(ui.visuals().error_fg_color, format!("{}; the run stays {}", crate::error_chain(e), self.settings.run_name()));
        }
        if run_changed {
            // Another run: its own states and preview.
            self.show_run();
        }
    }
}


/// An RGBA PNG as an egui image.
fn load_png(path: &std::path::Path) -> Result<egui::ColorImage> {
    let bad = |message: String| Error::Raster { location: path.display().to_string(), message };
    let file = std::fs::File::open(path).map_err(Error::io(path, "reading the training preview"))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(e.to_string()))?;
    let (w, h) = (info.width as usize, info.height as usize);
    match info.color_type {
        png::ColorType::Rgba => Ok(egui::ColorImage::from_rgba_unmultiplied([w, h], &buf[..w * h * 4])),
        png::ColorType::Rgb => Ok(egui::ColorImage::from_rgb([w, h], &buf[..w * h * 3])),
        other => Err(bad(format!("unexpected PNG colour type {other:?}"))),
    }
}

/// Opens a file with the system's default application (a browser for HTML).
fn open_in_browser(path: &std::path::Path) -> Result<()> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(program).arg(path).spawn().map(|_| ()).map_err(Error::io(path, "opening the report in a browser"))
}
