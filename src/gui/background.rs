//! Work the app hands to worker threads instead of doing it in a frame: opening a project
//! (its stages' states hash the inputs whose times changed), re-reading a project's states,
//! assessment, search and layers after a stage or another run, and exporting a layer.
//!
//! Each is a [`Task`] over [`crate::job::spawn`], the runner of the stages. The app keeps
//! its tasks in [`Pending`], polls them once per frame ([`take_finished`]) and asks for a
//! repaint while one is out; [`crate::gui::S2crApp::wait_for_background`] waits for them
//! instead (the headless app of the tests). Nothing here decides anything: it reads what the
//! library says about a project, for the app to show.

use std::time::Duration;

use eframe::egui;

use crate::aoi::Aoi;
use crate::assess::AssessReport;
use crate::catalog::stage::SearchResult;
use crate::error::{Error, Result};
use crate::job::{JobHandle, Progress};
use crate::pipeline::PipelineSettings;
use crate::project::{Project, RunName, Stage, StageState};

use crate::layers::{Layer, LayerKind, project_layers};

/// A run's layers as found on disk, each raster with its Sentinel-2 band names: read on a
/// worker thread, shown by [`LayerPanel::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSet {
    pub run: RunName,
    pub rasters: Vec<(Layer, Vec<String>)>,
    /// Burned-area perimeters, for export only.
    pub perimeters: Vec<Layer>,
    /// The QA plots' numbers of the run's assessment: none before an assessment, or why they
    /// could not be read.
    pub qa: Option<std::result::Result<crate::assess::qa::Qa, String>>,
}

impl LayerSet {
    /// The layers of a project's run and their files' bands (the files are opened).
    pub fn scan(project: &Project, run: &RunName) -> LayerSet {
        let (perimeters, rasters): (Vec<Layer>, Vec<Layer>) = project_layers(project, run).into_iter().partition(|l| l.kind == LayerKind::Perimeter);
        let rasters = rasters
            .into_iter()
            .map(|layer| {
                let bands: Vec<String> = crate::raster::info(&layer.path.display().to_string()).map(|i| i.bands.iter().map(|b| b.description.clone()).filter(|d| d.starts_with('B')).collect()).unwrap_or_default();
                (layer, bands)
            })
            .collect();
        let qa_path = project.assess_dir(run).join(crate::assess::files::QA_JSON);
        let qa = qa_path.is_file().then(|| {
            let qa: crate::assess::qa::Qa = crate::fsutil::load_json(&qa_path, "assess the run again").map_err(|e| crate::error_chain(&e))?;
            qa.check().map_err(|m| format!("{}: {m}; assess the run again", qa_path.display()))?;
            Ok(qa)
        });
        LayerSet { run: run.clone(), rasters, perimeters, qa }
    }
}

/// How often a frame looks at its pending work again.
pub const POLL: Duration = Duration::from_millis(100);

/// A piece of work on a worker thread and what the app says about it meanwhile.
pub struct Task<T> {
    /// "Opening project…", "Exporting view.tif…".
    what: String,
    handle: JobHandle<T>,
}

impl<T: Send + 'static> Task<T> {
    /// Starts `work` on a worker thread named after `name`.
    pub fn spawn(name: &str, what: impl Into<String>, work: impl FnOnce(&Progress) -> Result<T> + Send + 'static) -> Result<Task<T>> {
        Ok(Task { what: what.into(), handle: crate::job::spawn(name, work)? })
    }
}

impl<T> Task<T> {
    pub fn what(&self) -> &str {
        &self.what
    }

    /// True once the worker has returned.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the worker and returns its result.
    pub fn join(self) -> Result<T> {
        // Nobody reads these tasks' progress events; the result says everything.
        let _ = self.handle.drain();
        self.handle.join()
    }
}

/// The result of a finished task, taken out of its slot; `None` while it runs (or when there
/// is none).
pub fn take_finished<T>(slot: &mut Option<Task<T>>) -> Option<Result<T>> {
    if slot.as_ref().is_some_and(|t| t.is_finished()) { slot.take().map(Task::join) } else { None }
}

/// The result of a task, waiting for it; `None` when there is none.
pub fn wait<T>(slot: &mut Option<Task<T>>) -> Option<Result<T>> {
    slot.take().map(Task::join)
}

/// The app's work in flight, other than stages (the wizard runs those) and layer exports
/// (the layer panel keeps those).
#[derive(Default)]
pub struct Pending {
    /// A project being opened; it replaces the open one when it arrives.
    pub open: Option<Task<OpenedProject>>,
    /// The open project being read again.
    pub refresh: Option<Task<ProjectView>>,
    /// Whether `refresh` reads the layers too (a newer refresh keeps asking for them).
    pub refresh_layers: bool,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.open.is_none() && self.refresh.is_none()
    }

    /// Starts opening the project in `dir`, dropping an opening in flight.
    pub fn open(&mut self, dir: &std::path::Path) -> Result<()> {
        let dir = dir.to_path_buf();
        let what = format!("Opening {}…", dir.display());
        self.open = Some(Task::spawn("open-project", what, move |_| OpenedProject::read(&dir))?);
        Ok(())
    }

    /// Starts reading the project again for `run`, replacing a refresh in flight: its answer
    /// would be older, and goes nowhere (its thread ends on its own).
    pub fn refresh(&mut self, project: &Project, run: &RunName, layers: bool) -> Result<()> {
        let layers = layers || (self.refresh.is_some() && self.refresh_layers);
        let (project, run) = (project.clone(), run.clone());
        self.refresh = Some(Task::spawn("refresh", "Reading the project…", move |_| Ok(ProjectView::read(&project, &run, layers)))?);
        self.refresh_layers = layers;
        Ok(())
    }
}

/// A project as the app opens it, read on a worker thread.
pub struct OpenedProject {
    pub project: Project,
    /// Its pipeline.yaml (else the defaults), with the error that made it the defaults.
    pub settings: PipelineSettings,
    pub settings_error: Option<Error>,
    /// Its area, when it reads.
    pub aoi: Option<Aoi>,
    /// Its stages' states, assessment, search and layers for the settings' run.
    pub view: ProjectView,
}

impl OpenedProject {
    fn read(dir: &std::path::Path) -> Result<OpenedProject> {
        let project = Project::open(dir)?;
        let (settings, settings_error) = match PipelineSettings::of_project(&project) {
            Ok(s) => (s, None),
            Err(e) => (PipelineSettings::default(), Some(e)),
        };
        let aoi = project.aoi().ok();
        let view = ProjectView::read(&project, settings.run_name(), true);
        Ok(OpenedProject { project, settings, settings_error, aoi, view })
    }
}

/// What the app shows of a project for one run: read on a worker thread, shown by frames.
pub struct ProjectView {
    pub run: RunName,
    /// Each stage's state from its manifest (the files whose times changed are hashed).
    pub states: Vec<(Stage, StageState)>,
    /// The run's assessment (report.json); `None` when there is none yet.
    pub assessment: Option<Result<AssessReport>>,
    /// The run has a training preview.
    pub has_preview: bool,
    /// The search's candidates and choice, when there was a search.
    pub search: Option<SearchResult>,
    /// The run's layers, when asked for.
    pub layers: Option<LayerSet>,
}

impl ProjectView {
    pub fn read(project: &Project, run: &RunName, layers: bool) -> ProjectView {
        let states = Stage::ALL
            .iter()
            .map(|s| {
                let state = project
                    .stage_state(*s, s.per_run().then_some(run))
                    .map(|(st, _)| st)
                    .unwrap_or_else(|e| StageState::Stale(crate::error_chain(&e)));
                (*s, state)
            })
            .collect();
        let report = project.report_json(run);
        let assessment = report.is_file().then(|| crate::fsutil::load_json::<AssessReport>(&report, "run the Assess step again"));
        ProjectView {
            run: run.clone(),
            states,
            assessment,
            has_preview: project.preview_png(run).is_file(),
            search: SearchResult::load(project, "the app").ok(),
            layers: layers.then(|| LayerSet::scan(project, run)),
        }
    }
}

/// A small turning arc and `text`: shown while work is out. It asks for the next frame after
/// [`POLL`], not at once (an animation that repaints at once would keep a headless test
/// harness stepping).
pub fn busy_ui(ui: &mut egui::Ui, text: &str) {
    ui.horizontal(|ui| {
        // As high as a line of text, so that it changes no row's height.
        let size = ui.text_style_height(&egui::TextStyle::Body);
        let (rect, _) = ui.allocate_exact_size(egui::vec2(size, size), egui::Sense::hover());
        let t = ui.input(|i| i.time);
        let radius = rect.height() * 0.5 - 2.0;
        let points: Vec<egui::Pos2> = (0..=16)
            .map(|k| {
                let angle = t * std::f64::consts::TAU + k as f64 / 16.0 * 4.2;
                rect.center() + radius * egui::vec2(angle.cos() as f32, angle.sin() as f32)
            })
            .collect();
        ui.painter().add(egui::Shape::line(points, egui::Stroke::new(2.0, ui.visuals().strong_text_color())));
        ui.label(text);
    });
    ui.ctx().request_repaint_after(POLL);
}
