//! The project wizard: one step per stage (Area -> Scenes -> Fetch -> Preprocess -> Dataset ->
//! Train -> Synthesize -> Assess -> Export), each with its settings, a Run button that starts
//! the stage on a worker thread (`crate::pipeline::run_stage`, the same function `s2cr run`
//! uses), progress with ETA, Cancel, and the step's state read from the project's manifests.
//! The wizard holds no pipeline logic: it edits settings and watches events. What it shows of
//! the project (states, assessment) is read on a worker thread by the app
//! (`background::ProjectView`) when the wizard asks for it ([`Wizard::request_refresh`]).

use std::sync::Arc;
use std::time::Instant;

use eframe::egui::{self, Color32, RichText};

use crate::assess::AssessReport;
use crate::error::{Error, Result};
use crate::job::{JobEvent, JobHandle, LogLevel};
use crate::pipeline::{PipelineSettings, availability, run_stage};
use crate::project::{Project, RunName, Stage, StageState};

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
        let handle = crate::job::spawn(stage.name(), move |p| run_stage(&project, stage, &settings, p))?;
        self.outcomes.remove(stage.name());
        self.log.push(LogLine { level: LogLevel::Info, stage: stage.name().into(), text: "started".into() });
        self.job = Some(RunningJob { stage, handle, started: Instant::now(), done: 0, total: 0, message: String::new() });
        Ok(())
    }

    /// Says how long training with the current settings will take: the kept measurement for
    /// them when there is one (unless `again`), else a few steps measured on a worker thread.
    pub fn start_estimate(&mut self, project: &Project, again: bool) {
        let key = EstimateFor::of(&self.settings);
        let opts = match crate::pipeline::train_options(project, &self.settings) {
            Ok(o) => o,
            Err(e) => {
                self.estimate = Some((key, Err(Arc::new(e))));
                return;
            }
        };
        if !again && let Some(e) = crate::model::estimate::last_estimate(project, &opts) {
            self.estimate = Some((key, Ok(e)));
            return;
        }
        let project = project.clone();
        match super::background::Task::spawn("estimate", "Measuring a few training steps…", move |p| crate::model::estimate::estimate(&project, &opts, crate::model::estimate::MEASURED_STEPS, p)) {
            Ok(task) => (self.estimating, self.estimate) = (Some((key, task)), None),
            Err(e) => self.estimate = Some((key, Err(Arc::new(e)))),
        }
    }

    /// Takes a finished measurement (with `wait`, waits for it).
    pub fn poll_estimate(&mut self, wait: bool) {
        let Some((key, task)) = self.estimating.take() else { return };
        let mut slot = Some(task);
        let done = if wait { super::background::wait(&mut slot) } else { super::background::take_finished(&mut slot) };
        match (done, slot) {
            // Shown for the settings it was measured with.
            (Some(result), _) => self.estimate = Some((key, result.map_err(Arc::new))),
            (None, Some(task)) => self.estimating = Some((key, task)),
            (None, None) => {}
        }
    }

    /// The Train step's estimate: a button, the measurement in flight, or the answer.
    fn estimate_ui(&mut self, ui: &mut egui::Ui, project: &Project) {
        let current = EstimateFor::of(&self.settings);
        let shown = self.estimate.as_ref().filter(|(k, _)| *k == current).map(|(_, r)| r.clone());
        let free = self.job.is_none() && self.estimating.is_none();
        ui.horizontal(|ui| {
            let label = if shown.is_some() { "Measure again" } else { "Estimate time" };
            if ui.add_enabled(free, egui::Button::new(label)).on_hover_text("runs a few steps of this run on the chosen device (the first ones, which warm up, apart), one checkpoint and one validation; the run itself is not touched").clicked() {
                self.start_estimate(project, shown.is_some());
            }
            if let Some((_, task)) = &self.estimating {
                super::background::busy_ui(ui, task.what());
            }
        });
        match shown {
            Some(Ok(e)) => {
                ui.label(RichText::new(format!("Estimated: {}", e.summary())).strong())
                    .on_hover_text(format!("measured {} ({} steps after {} warm-up steps; set-up {:.1} s; {} checkpoints at {:.2} s, {} validations at {:.2} s)", e.measured_at.format("%Y-%m-%d %H:%M UTC"), e.measured_steps, crate::model::estimate::WARM_UP_STEPS, e.setup_s, e.checkpoints, e.checkpoint_s, e.validations, e.validation_s));
            }
            Some(Err(err)) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("No estimate: {}", crate::error_chain(err.as_ref())));
            }
            None => {}
        }
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

    /// The run's assessment, when there is one: the burned areas, the agreement (and over the
    /// held-out pixels), what was simulated, and a button that opens the HTML report.
    fn assessment_ui(&mut self, ui: &mut egui::Ui, project: &Project) {
        let report = match &self.assessment {
            None => return,
            Some(Ok(report)) => report,
            Some(Err(e)) => {
                ui.add_space(6.0);
                ui.colored_label(ui.visuals().error_fg_color, crate::error_chain(e));
                return;
            }
        };
        ui.add_space(6.0);
        if let Some(sim) = &report.config.simulated_burn {
            ui.colored_label(ui.visuals().warn_fg_color, "SIMULATED burn: the real data has no fire.").on_hover_text(sim);
        }
        // Not finite (nothing burned, no pixels held out): n/a.
        let f = |v: Option<f64>| v.filter(|x| x.is_finite()).map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
        egui::Grid::new("assessment").striped(true).num_columns(3).show(ui, |ui| {
            for h in ["", "all pixels", "held out"] {
                ui.label(RichText::new(h).strong());
            }
            ui.end_row();
            let held = report.held_out.as_ref().map(|h| &h.burned);
            type Pick = fn(&crate::assess::agreement::BurnedAgreement) -> f64;
            let rows: [(&str, Pick); 5] = [
                ("burned, real (ha)", |b| b.burned_ha_real),
                ("burned, synthetic (ha)", |b| b.burned_ha_synthetic),
                ("kappa", |b| b.kappa),
                ("F1", |b| b.f1),
                ("IoU", |b| b.iou),
            ];
            for (name, pick) in rows {
                ui.label(name);
                ui.label(f(Some(pick(&report.burned))));
                ui.label(f(held.map(pick)));
                ui.end_row();
            }
        });
        // Both maps against the official perimeter, when one was given.
        if let Some(p) = &report.perimeter {
            ui.add_space(4.0);
            ui.label(RichText::new(format!("Against the official perimeter ({:.1} ha on the grid)", p.area_ha_on_grid)).strong())
                .on_hover_text(p.file.display().to_string());
            egui::Grid::new("perimeter").striped(true).num_columns(3).show(ui, |ui| {
                for h in ["", "real map", "synthetic map"] {
                    ui.label(RichText::new(h).strong());
                }
                ui.end_row();
                type Pick = fn(&crate::assess::agreement::BurnedAgreement) -> f64;
                let rows: [(&str, Pick); 5] = [
                    ("kappa", |b| b.kappa),
                    ("F1", |b| b.f1),
                    ("IoU", |b| b.iou),
                    ("commission", |b| b.commission_error),
                    ("omission", |b| b.omission_error),
                ];
                for (name, pick) in rows {
                    ui.label(name);
                    ui.label(f(Some(pick(&p.real))));
                    ui.label(f(Some(pick(&p.synthetic))));
                    ui.end_row();
                }
            });
        }
        // The burned / unburned confusion matrix over all compared pixels.
        let c = &report.burned;
        let n = |v: u64| v.to_string();
        ui.add_space(4.0);
        egui::Grid::new("confusion").striped(true).num_columns(3).show(ui, |ui| {
            ui.label(RichText::new("real \\ synthetic").small());
            ui.label(RichText::new("unburned").strong());
            ui.label(RichText::new("burned").strong());
            ui.end_row();
            ui.label("unburned");
            ui.label(n(c.true_negative));
            ui.label(n(c.false_positive));
            ui.end_row();
            ui.label("burned");
            ui.label(n(c.false_negative));
            ui.label(n(c.true_positive));
            ui.end_row();
        });
        let html = project.report_html(self.settings.run_name());
        if ui.button("Open report").on_hover_text(html.display().to_string()).clicked() {
            if let Err(e) = open_in_browser(&html) {
                self.log.push(LogLine { level: LogLevel::Warn, stage: "assess".into(), text: format!("{}; open it in a browser", crate::error_chain(&e)) });
            }
        }
    }

    /// The latest training preview of the run, reloaded when training reports a new one.
    fn preview_ui(&mut self, ui: &mut egui::Ui, project: &Project) {
        let path = project.preview_png(self.settings.run_name());
        if let Some(step) = self.preview_pending.take() {
            match load_png(&path) {
                Ok(image) => self.preview = Some((ui.ctx().load_texture("training-preview", image, egui::TextureOptions::NEAREST), step)),
                Err(e) => self.log.push(LogLine { level: LogLevel::Warn, stage: "train".into(), text: crate::error_chain(&e) }),
            }
        }
        if let Some((texture, step)) = &self.preview {
            let caption = if *step > 0 { format!("Real | synthetic (true colour), step {step}") } else { "Real | synthetic (true colour), last run".to_string() };
            ui.label(caption);
            let size = texture.size_vec2();
            let width = ui.available_width().min(size.x * 2.0);
            ui.image((texture.id(), egui::vec2(width, width * size.y / size.x)));
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
            Stage::Fetch => {
                let l = ui.label("Parallel downloads");
                ui.add(egui::DragValue::new(&mut s.fetch.parallel).range(1..=16)).labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Margin around the AOI (m)");
                ui.add(egui::DragValue::new(&mut s.fetch.margin_m).range(0.0..=5000.0)).labelled_by(l.id);
                ui.end_row();
            }
            Stage::Preprocess => {
                let l = ui.label("Cloud mask buffer (px)");
                ui.add(egui::DragValue::new(&mut s.preprocess.mask.buffer_px).range(0..=50)).labelled_by(l.id);
                ui.end_row();
                ui.label("Snow");
                ui.checkbox(&mut s.preprocess.mask.snow, "mask snow");
                ui.end_row();
                ui.label("Haze and smoke");
                ui.horizontal(|ui| {
                    let mut on = s.preprocess.mask.haze_aot.is_some();
                    if ui.checkbox(&mut on, "mask where AOT exceeds").on_hover_text("L2A's aerosol optical thickness (band AOT, which project.yaml's bands must list): SCL flags no smoke").changed() {
                        s.preprocess.mask.haze_aot = on.then_some(0.5);
                    }
                    if let Some(t) = s.preprocess.mask.haze_aot.as_mut() {
                        ui.add(egui::DragValue::new(t).range(0.05..=5.0).speed(0.01));
                    }
                });
                ui.end_row();
                preprocess_engine_settings(ui, &mut s.preprocess, running);
            }
            Stage::Assess => {
                let l = ui.label("Official perimeter");
                ui.horizontal(|ui| {
                    let shown = s.assess.perimeter.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().to_string());
                    ui.label(shown.as_deref().unwrap_or("none (project.yaml's reference_perimeter when set)")).labelled_by(l.id);
                    if ui.add_enabled(!running, egui::Button::new("Choose…")).on_hover_text("A fire perimeter (GeoJSON, Shapefile, GeoPackage, KML) to compare both burned maps with").clicked()
                        && let Some(p) = rfd::FileDialog::new()
                            .set_title("Official fire perimeter")
                            .add_filter("Vector files", &["geojson", "json", "shp", "gpkg", "kml", "kmz", "fgb"])
                            .pick_file()
                    {
                        s.assess.perimeter = Some(p);
                    }
                    if s.assess.perimeter.is_some() && ui.add_enabled(!running, egui::Button::new("clear")).clicked() {
                        s.assess.perimeter = None;
                    }
                });
                ui.end_row();
            }
            Stage::Train | Stage::Infer => {
                let l = ui.label("Run name");
                // The text as typed while it is not a valid name; else the settings' run.
                let mut text = match run_edit {
                    Some((t, _)) => t.clone(),
                    None => s.run.to_string(),
                };
                if ui.add_enabled(!running, egui::TextEdit::singleline(&mut text).hint_text(RunName::DEFAULT)).labelled_by(l.id).changed() {
                    match text.parse::<RunName>() {
                        Ok(name) => {
                            *run_edit = None;
                            run_changed = name != s.run;
                            s.run = name;
                        }
                        Err(e) => *run_edit = Some((text, e)),
                    }
                }
                ui.end_row();
                let l = ui.label("Device");
                egui::ComboBox::from_id_salt("device")
                    .selected_text(format!("{:?}", s.device))
                    .show_ui(ui, |ui| {
                        for d in crate::model::DeviceChoice::available() {
                            ui.selectable_value(&mut s.device, d, format!("{d:?}"));
                        }
                    })
                    .response
                    .labelled_by(l.id);
                ui.end_row();
                if stage == Stage::Infer {
                    let l = ui.label("Uncertainty passes");
                    ui.add_enabled(!running, egui::DragValue::new(&mut s.infer.samples).range(0..=crate::model::infer::MAX_SAMPLES))
                        .on_hover_text("Monte-Carlo dropout: passes per window (0 = off). The image is then their mean, with the standard deviation and the burn probability beside it; takes that many times as long")
                        .labelled_by(l.id);
                    ui.end_row();
                }
                if stage == Stage::Train {
                    let mut small = s.model.as_ref().is_some_and(|m| m.ngf <= 16);
                    let label = match &s.model {
                        Some(m) if small => format!("small (ngf {}, depth {}: CPU-friendly)", m.ngf, m.depth),
                        _ => "small (ngf 16, depth 6: CPU-friendly)".to_string(),
                    };
                    ui.label("Model");
                    if ui.checkbox(&mut small, label).changed() {
                        s.model = small.then(crate::model::config::ModelConfig::small);
                    }
                    ui.end_row();
                    let train = s.train.get_or_insert_with(|| project_train.clone().unwrap_or_default());
                    let l = ui.label("Steps (0 = by epochs)");
                    ui.add(egui::DragValue::new(&mut train.max_steps).range(0..=1_000_000)).labelled_by(l.id);
                    ui.end_row();
                    let l = ui.label("Batch size");
                    ui.add(egui::DragValue::new(&mut train.batch_size).range(1..=64)).labelled_by(l.id);
                    ui.end_row();
                    // Fine-tuning: the weights a new run starts from (train.yaml's init_from).
                    ui.label("Start from");
                    ui.horizontal(|ui| match train.init_from.clone() {
                        Some(from) => {
                            let name = from.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| from.display().to_string());
                            ui.label(name).on_hover_text(from.display().to_string());
                            if ui.small_button("use random weights").on_hover_text("Train from random weights instead").clicked() {
                                train.init_from = None;
                            }
                        }
                        None => {
                            ui.label(RichText::new("random weights").weak());
                        }
                    });
                    ui.end_row();
                    ui.label("");
                    ui.horizontal(|ui| {
                        if ui.add_enabled(!running, egui::Button::new("Start from a trained model…")).on_hover_text("pix2pix's latest_net_G.pth or a .safetensors generator").clicked()
                            && let Some(f) = rfd::FileDialog::new().set_title("Start from a trained model").add_filter("Generator weights", &["pth", "safetensors"]).pick_file()
                        {
                            train.init_from = Some(f);
                        }
                        if ui.add_enabled(!running, egui::Button::new("…or a run")).on_hover_text("A run folder (runs/<run>) of this or another project").clicked()
                            && let Some(d) = rfd::FileDialog::new().set_title("Start from a trained run (its folder under runs/)").set_directory(project.runs_dir()).pick_folder()
                        {
                            train.init_from = Some(d);
                        }
                    });
                    ui.end_row();
                    if train.init_from.is_some() {
                        ui.label("Channels");
                        ui.checkbox(&mut train.adapt_channels, "where they differ, start the first or last layer afresh");
                        ui.end_row();
                    }
                }
            }
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

    fn curves_ui(&self, ui: &mut egui::Ui) {
        if self.curves.series.is_empty() {
            return;
        }
        ui.label("Losses");
        egui_plot::Plot::new("losses").height(160.0).legend(egui_plot::Legend::default()).allow_scroll(false).show(ui, |plot| {
            for (name, points) in &self.curves.series {
                plot.line(egui_plot::Line::new(name.clone(), egui_plot::PlotPoints::from(points.clone())));
            }
        });
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

/// The Preprocess step's engine choice: this program, or batch jobs on an openEO back-end (its
/// URL here, or project.yaml's `openeo:`). A SNAP engine set in pipeline.yaml is shown as it is.
fn preprocess_engine_settings(ui: &mut egui::Ui, p: &mut crate::preprocess::stage::PreprocessConfig, running: bool) {
    use crate::preprocess::openeo::OpenEoSettings;
    use crate::preprocess::stage::Engine;
    ui.label("Engine");
    ui.add_enabled_ui(!running, |ui| {
        ui.horizontal(|ui| {
            ui.radio_value(&mut p.engine, Engine::Native, "this computer").on_hover_text("Calibration, masks and warps here, from the fetched scenes");
            ui.radio_value(&mut p.engine, Engine::Openeo, "openEO back-end").on_hover_text(
                "Batch jobs near the data (e.g. Copernicus Data Space): Sentinel-1 terrain-corrected (gamma0-terrain); no fetch needed. Uses the back-end's credits.",
            );
            if matches!(p.engine, Engine::Snap { .. }) {
                ui.label("ESA SNAP (pipeline.yaml)");
            }
        });
    });
    ui.end_row();
    if p.engine == Engine::Openeo {
        let l = ui.label("Back-end URL");
        let mut text = p.openeo.as_ref().map(|o| o.backend.clone()).unwrap_or_default();
        let edit = egui::TextEdit::singleline(&mut text).desired_width(330.0).hint_text("project.yaml's openeo.backend, e.g. https://openeo.dataspace.copernicus.eu/openeo/1.2");
        if ui.add_enabled(!running, edit).labelled_by(l.id).changed() {
            p.openeo = match (text.trim().is_empty(), p.openeo.take()) {
                (true, _) => None,
                (false, Some(o)) => Some(OpenEoSettings { backend: text.trim().to_string(), ..o }),
                (false, None) => Some(OpenEoSettings { backend: text.trim().to_string(), ..OpenEoSettings::new("") }),
            };
        }
        ui.end_row();
        ui.label("");
        ui.small("Credentials: S2CR_OPENEO_* variables or ~/.config/s2cr/openeo-credentials").on_hover_text(
            "S2CR_OPENEO_USER and S2CR_OPENEO_PASSWORD (HTTP Basic), S2CR_OPENEO_CLIENT_ID and S2CR_OPENEO_CLIENT_SECRET (OpenID Connect client credentials), or S2CR_OPENEO_REFRESH_TOKEN; sent only to the back-end and its identity provider, never written",
        );
        ui.end_row();
    }
}
