//! The desktop application (feature `gui`): the map in the centre (`map`), the project wizard on
//! the left (`wizard`, the Area step in `project_form`), log and progress at the bottom, a
//! status bar. It draws state and sends actions; stages run on worker threads through
//! `crate::pipeline`, the same code as the CLI, and so does whatever else would hold up a frame
//! (opening a project, reading it again, exporting a layer: `background`).

pub mod background;
pub mod editor;
pub mod frame_stats;
pub mod layers;
pub mod legend;
pub mod map;
pub mod project_form;
pub mod qa;
pub mod stretch_gpu;
pub mod wizard;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use eframe::egui::{self, RichText};
use walkers::lon_lat;

use self::background::{OpenedProject, POLL, Pending, ProjectView, busy_ui, take_finished};
use self::editor::AoiEditor;
use self::map::MapView;
use self::wizard::{LogLine, Step, Wizard};
use crate::aoi::AoiLimits;
use crate::catalog::stage::SearchResult;
use crate::error::{Error, Result};
use crate::job::LogLevel;
use crate::project::{PROJECT_FILE, Project};

pub use self::project_form::NewProjectForm;

pub const APP_NAME: &str = "sent2-cloud-remover";

/// What the app remembers between sessions (eframe storage).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Persisted {
    pub last_project: Option<PathBuf>,
    /// [lon, lat] and zoom of the map.
    pub map_centre: [f64; 2],
    pub map_zoom: f64,
    pub osm_tiles: bool,
    pub wizard_width: f32,
    /// Projects opened lately, the last first (at most [`RECENT_PROJECTS`]).
    pub recent: Vec<PathBuf>,
}

/// How many recent projects the app remembers.
pub const RECENT_PROJECTS: usize = 8;

impl Default for Persisted {
    fn default() -> Self {
        Persisted { last_project: None, map_centre: [137.0, -35.8], map_zoom: 5.0, osm_tiles: true, wizard_width: 330.0, recent: Vec::new() }
    }
}

impl Persisted {
    /// `dir` first among the recent projects.
    fn remember(&mut self, dir: &Path) {
        self.recent.retain(|p| p != dir);
        self.recent.insert(0, dir.to_path_buf());
        self.recent.truncate(RECENT_PROJECTS);
    }
}

/// What the app tells the user about the last action (import, export, project creation). An
/// error stays an error until it is drawn.
#[derive(Debug, Clone)]
pub enum Notice {
    Done(String),
    Failed(Arc<Error>),
}

impl Notice {
    pub fn failed(error: Error) -> Notice {
        Notice::Failed(Arc::new(error))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Notice::Failed(_))
    }

    /// The text shown: the message, or the error with its causes.
    pub fn text(&self) -> String {
        match self {
            Notice::Done(text) => text.clone(),
            Notice::Failed(e) => crate::error_chain(e.as_ref()),
        }
    }
}

/// The application state.
pub struct S2crApp {
    /// The open project, or why the last one asked for did not open.
    project: Option<std::result::Result<Project, Arc<Error>>>,
    /// Opening a project and reading it again, on worker threads.
    pending: Pending,
    pub map: MapView,
    pub editor: AoiEditor,
    pub wizard: Wizard,
    pub form: NewProjectForm,
    pub persisted: Persisted,
    /// The compute device, once probed in the background ("GPU (wgpu: ...)" or "CPU ...").
    device: Arc<Mutex<Option<String>>>,
    search: Option<SearchResult>,
    /// A message for the user about the last action (import, export, project creation).
    pub notice: Option<Notice>,
    /// The drawn AOI's check (area, problems, bbox) for the polygon and limits it was made
    /// for: redone only when they change, not every frame.
    area_check: Option<(AoiEditor, AoiLimits, project_form::AreaCheck)>,
    /// The open project's rasters on the map, the swipe comparison and the pixel inspector.
    pub layers: layers::LayerPanel,
    /// The WGSL stretch pipeline is installed in the wgpu renderer.
    gpu_ready: bool,
    /// `--frame-stats`: every frame's timing, to a CSV.
    pub frame_stats: Option<frame_stats::FrameStats>,
    /// The lon/lat under the pointer in the last frame (the panes' linked cursor).
    cursor: Option<(f64, f64)>,
}

/// Which renderer draws the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RendererChoice {
    /// wgpu, else OpenGL when wgpu cannot start.
    #[default]
    Auto,
    Wgpu,
    Glow,
}

/// How the window opens.
#[derive(Debug, Clone, Default)]
pub struct WindowOptions {
    /// No map tiles from the internet this session.
    pub offline: bool,
    pub renderer: RendererChoice,
    /// Append each frame's timing to this CSV (see `frame_stats`).
    pub frame_stats: Option<PathBuf>,
}

impl S2crApp {
    /// The app on a project folder (or none), without tiles or a device probe, and with the
    /// project open once this returns: what the tests drive. [`run`] adds tiles and the probe,
    /// and opens the project while the window shows.
    pub fn new(project_dir: Option<PathBuf>) -> Self {
        let mut app = S2crApp::with_state(project_dir, Persisted { osm_tiles: false, ..Default::default() });
        app.wait_for_background();
        app
    }

    /// The app on a project folder (or none); the project opens on a worker thread.
    pub fn with_state(project_dir: Option<PathBuf>, persisted: Persisted) -> Self {
        let centre = lon_lat(persisted.map_centre[0], persisted.map_centre[1]);
        let mut app = S2crApp {
            project: None,
            pending: Pending::default(),
            map: MapView::new(centre, persisted.map_zoom),
            editor: AoiEditor::default(),
            wizard: Wizard::default(),
            form: NewProjectForm::default(),
            persisted,
            device: Arc::new(Mutex::new(None)),
            search: None,
            notice: None,
            area_check: None,
            layers: layers::LayerPanel::default(),
            gpu_ready: false,
            frame_stats: None,
            cursor: None,
        };
        // A file (the desktop entry opens GeoJSON files) is an AOI for a new project; a folder a
        // project.
        match project_dir {
            Some(path) if path.is_file() => app.import_aoi(&path),
            Some(dir) => app.open_project(&dir),
            None => {}
        }
        app
    }

    /// Closes the open project (refused while one of its stages runs); `new` also clears the
    /// drawn area and goes to the Area step, ready for a new project, without a restart.
    pub fn close_project(&mut self, new: bool) {
        if let Some(stage) = self.wizard.running_stage() {
            self.notice = Some(Notice::failed(Error::invalid(stage, "is running in the open project; wait for it or cancel it before closing the project")));
            return;
        }
        self.project = None;
        self.search = None;
        self.layers = layers::LayerPanel::default();
        self.wizard = Wizard::default();
        self.persisted.last_project = None;
        if new {
            self.editor = AoiEditor::default();
            self.form = NewProjectForm::default();
            self.area_check = None;
            self.map.drawing = false;
        }
        self.notice = None;
    }

    /// Starts opening a project folder on a worker thread: its AOI goes on the map and its
    /// stages' states in the wizard when it arrives. The project open so far is closed.
    pub fn open_project(&mut self, dir: &Path) {
        // A running stage reports to the project it belongs to: not to one opened meanwhile.
        if let Some(stage) = self.wizard.running_stage() {
            self.notice = Some(Notice::failed(Error::invalid(stage, "is running in the open project; wait for it or cancel it before opening another")));
            return;
        }
        self.wizard.outcomes.clear();
        self.project = None;
        self.search = None;
        self.layers.replace(layers::LayerPanel::default());
        self.wizard.forget_run();
        self.pending.refresh = None;
        if let Err(e) = self.pending.open(dir) {
            self.project = Some(Err(Arc::new(e)));
        }
    }

    pub fn project(&self) -> Option<&Project> {
        self.project.as_ref().and_then(|p| p.as_ref().ok())
    }

    /// True while a stage, an opening, a refresh or an export is out.
    pub fn is_busy(&self) -> bool {
        self.wizard.is_running() || !self.pending.is_empty() || self.layers.export.is_some() || self.wizard.estimating.is_some()
    }

    /// Waits for the opening, refresh and export in flight (not for a running stage) and shows
    /// their results: a headless app (the tests) then sees the state a window would show a
    /// few frames later.
    pub fn wait_for_background(&mut self) {
        self.poll_background(true);
    }

    /// Takes what the background work has finished (with `wait`, waits for it), starting the
    /// refresh a finished stage asks for.
    fn poll_background(&mut self, wait: bool) {
        self.start_requested();
        loop {
            self.wizard.poll();
            if let Some(layers) = self.wizard.take_refresh_request() {
                self.start_refresh(layers);
            }
            let opened = if wait { background::wait(&mut self.pending.open) } else { take_finished(&mut self.pending.open) };
            if let Some(result) = opened {
                self.opened(result);
                continue;
            }
            let refreshed = if wait { background::wait(&mut self.pending.refresh) } else { take_finished(&mut self.pending.refresh) };
            if let Some(result) = refreshed {
                match result {
                    Ok(view) => self.show_view(view),
                    Err(e) => self.notice = Some(Notice::failed(e)),
                }
                continue;
            }
            break;
        }
        self.wizard.poll_estimate(wait);
        if wait {
            self.layers.wait_for_export();
        } else {
            self.layers.poll();
        }
    }

    /// Starts the refresh the wizard asked for, or that the run shown needs (a run set from
    /// outside the run field has no layers yet).
    fn start_requested(&mut self) {
        if self.project().is_some() && self.pending.is_empty() && self.layers.run() != self.wizard.settings.run_name() {
            self.wizard.request_refresh(true);
        }
        if let Some(layers) = self.wizard.take_refresh_request() {
            self.start_refresh(layers);
        }
    }

    fn start_refresh(&mut self, layers: bool) {
        let Some(Ok(project)) = &self.project else { return };
        // One refresh at a time: a request made meanwhile waits for it (it would read the same
        // files; the answer for a run no longer shown is dropped when it arrives).
        if self.pending.refresh.is_some() {
            self.wizard.request_refresh(layers);
            return;
        }
        if let Err(e) = self.pending.refresh(project, self.wizard.settings.run_name(), layers) {
            self.notice = Some(Notice::failed(e));
        }
    }

    /// Shows a project that has opened (or why it did not).
    fn opened(&mut self, result: Result<OpenedProject>) {
        match result {
            Ok(OpenedProject { project, settings, settings_error, aoi, view }) => {
                self.persisted.last_project = Some(project.root().to_path_buf());
                self.persisted.remember(project.root());
                if let Some(aoi) = aoi {
                    self.editor = AoiEditor::from_aoi(&aoi).0;
                    self.map.zoom_to(aoi.bbox());
                }
                self.wizard.settings = settings;
                self.wizard.forget_run();
                if let Some(e) = settings_error {
                    self.notice = Some(Notice::failed(e));
                }
                self.project = Some(Ok(project));
                self.show_view(view);
                // A project whose stages are all done opens on its assessment.
                if crate::project::Stage::ALL.iter().filter(|s| crate::pipeline::availability(**s).is_ok()).all(|s| self.wizard.state(*s) == Some(&crate::project::StageState::Done)) {
                    self.wizard.step = wizard::Step::Assess;
                }
            }
            Err(e) => self.project = Some(Err(Arc::new(e))),
        }
    }

    /// Shows what was read of the open project, unless it was read for another run than the
    /// one shown now (a newer reading is on its way).
    fn show_view(&mut self, view: ProjectView) {
        if view.run != *self.wizard.settings.run_name() {
            return;
        }
        self.wizard.apply(view.states, view.assessment, view.has_preview);
        self.search = view.search;
        if let Some(set) = view.layers {
            self.layers.replace(layers::LayerPanel::new(set));
        }
    }

    /// Draws the whole window content into `ui` (also used by the GUI tests).
    pub fn ui_contents(&mut self, ui: &mut egui::Ui) {
        // Background work first, so this frame shows its latest state.
        self.poll_background(false);
        // The severity layers in the Assess step's classes, as edited (a valid scheme only).
        self.layers.set_scheme(&self.wizard.settings.assess.severity_classes);
        let dropped: Vec<PathBuf> = ui.ctx().input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        for path in dropped {
            self.import_aoi(&path);
        }
        // Home: back to the area (unless a text field takes the key).
        if ui.ctx().input(|i| i.key_pressed(egui::Key::Home)) && !ui.ctx().egui_wants_keyboard_input()
            && let Ok(aoi) = self.editor.aoi()
        {
            self.map.zoom_to(aoi.bbox());
        }

        egui::Panel::top("title").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(APP_NAME);
                ui.separator();
                ui.label("Sentinel-1 + Sentinel-2 cloud removal for burned-area mapping");
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.button("Open project…").clicked() {
                        if let Some(dir) = rfd::FileDialog::new().set_title("Open a project folder").pick_folder() {
                            self.open_project(&dir);
                        }
                    }
                    let recent: Vec<PathBuf> = self.persisted.recent.iter().filter(|p| p.join(PROJECT_FILE).is_file()).cloned().collect();
                    ui.add_enabled_ui(!recent.is_empty(), |ui| {
                        ui.menu_button("Recent", |ui| {
                            for dir in recent {
                                let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| dir.display().to_string());
                                if ui.button(name).on_hover_text(dir.display().to_string()).clicked() {
                                    self.open_project(&dir);
                                    ui.close();
                                }
                            }
                        });
                    });
                    if self.project.is_some() {
                        if ui.button("Close project").clicked() {
                            self.close_project(false);
                        }
                        if ui.button("New project").on_hover_text("close this project and draw a new area").clicked() {
                            self.close_project(true);
                        }
                    }
                });
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::bottom("log").resizable(true).default_size(90.0).show(ui, |ui| self.log_ui(ui));
        egui::Panel::left("wizard").resizable(true).default_size(self.persisted.wizard_width).show(ui, |ui| {
            self.persisted.wizard_width = ui.available_width();
            egui::ScrollArea::vertical().show(ui, |ui| self.wizard_ui(ui));
        });
        // The QA plots take the layers panel's place while they are open: beside the wizard and
        // the layers too, they left the map a sliver at 1280 x 800.
        let qa_open = self.project().is_some() && self.layers.show_qa && self.layers.qa.is_some();
        if self.project().is_some() && !self.layers.is_empty() && !qa_open {
            egui::Panel::right("layers").resizable(true).default_size(290.0).show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.layers.ui(ui));
            });
        }
        if qa_open && let Some(qa) = &mut self.layers.qa {
            let show_qa = &mut self.layers.show_qa;
            egui::Panel::right("qa").resizable(true).default_size(330.0).show(ui, |ui| {
                if ui.button("Back to layers").on_hover_text("close the QA plots and show the layers again").clicked() {
                    *show_qa = false;
                }
                egui::ScrollArea::vertical().show(ui, |ui| qa.ui(ui));
            });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            let footprints = self.footprints();
            let editable = self.project.is_none() && self.pending.open.is_none();
            let ctx = ui.ctx().clone();
            let panes = if self.project().is_some() { self.layers.pane_count() } else { 1 };
            // Side by side, the cursor shows in every pane at the same ground position.
            let cursor = self.cursor;
            let layers = &mut self.layers;
            let hover = self.map.ui_panes(ui, panes, cursor, &mut self.editor, &footprints, editable, &mut |pane, painter, projector| layers.draw(&ctx, pane, painter, projector));
            if hover != self.cursor && panes > 1 {
                ui.ctx().request_repaint();
            }
            self.cursor = hover;
            // Not while a button is down (a pan): the inspector reads every layer at full
            // resolution, which on large files costs more than a frame.
            if let Some((lon, lat)) = hover
                && !self.layers.is_empty()
                && !ui.ctx().input(|i| i.pointer.any_down())
                && self.layers.inspected.as_ref().is_none_or(|i| (i.lon, i.lat) != (lon, lat))
            {
                self.layers.inspect(lon, lat);
            }
            self.layers.save_view_if_requested(ui.ctx(), self.map.rect);
        });
        if let Some(c) = self.map.memory.detached() {
            self.persisted.map_centre = [c.x(), c.y()];
        }
        self.persisted.map_zoom = self.map.memory.zoom();
        // What this frame asked for starts now, and frames keep coming while work is out.
        self.start_requested();
        if self.is_busy() {
            ui.ctx().request_repaint_after(POLL);
        }
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let project = match (&self.project, &self.pending.open) {
                (_, Some(_)) => "Project: opening…".to_string(),
                (None, None) => "No project open".to_string(),
                (Some(Ok(p)), None) => format!("Project: {}", p.config.name),
                (Some(Err(_)), None) => "Project: could not be opened".to_string(),
            };
            ui.label(project);
            ui.separator();
            let device = self.device.lock().ok().and_then(|d| d.clone()).unwrap_or_else(|| "auto (GPU when present, else CPU)".into());
            ui.label(format!("Compute: {device}"));
            ui.separator();
            let mut tiles = self.map.tiles.is_some();
            if ui.checkbox(&mut tiles, "OpenStreetMap tiles").on_hover_text("off: the offline Natural Earth outlines only").changed() {
                self.map.set_tiles(tiles, ui.ctx());
                self.persisted.osm_tiles = tiles;
            }
            let unreachable = self.map.tiles.as_ref().and(self.map.tiles_reachable.lock().ok().and_then(|r| r.clone())).and_then(|r| r.err());
            if let Some(why) = unreachable {
                ui.colored_label(ui.visuals().warn_fg_color, "unreachable: the offline basemap is shown").on_hover_text(format!("The tile server did not answer ({why}); the map shows the built-in Natural Earth outlines instead."));
            }
            ui.separator();
            match &self.wizard.job {
                Some(j) => ui.label(format!("Jobs: {} running", j.stage)),
                None => ui.label("Jobs: none running"),
            };
            ui.separator();
            ui.label(if self.gpu_ready { "Layers: GPU (WGSL stretch)" } else { "Layers: CPU stretch" }).on_hover_text("how the map's raster layers are coloured");
            if let Some(task) = &self.pending.refresh {
                ui.separator();
                busy_ui(ui, task.what());
            }
        });
    }

    fn log_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(RichText::new("Log").strong());
            if let Some(job) = &self.wizard.job {
                ui.add(egui::ProgressBar::new(job.fraction()).desired_width(240.0).text(format!("{} {}/{}", job.stage, job.done, job.total)));
            }
        });
        egui::ScrollArea::vertical().stick_to_bottom(true).auto_shrink([false, false]).show(ui, |ui| {
            for LogLine { level, stage, text } in &self.wizard.log {
                let line = format!("[{stage}] {text}");
                match level {
                    LogLevel::Info => ui.label(RichText::new(line).monospace()),
                    LogLevel::Warn => ui.label(RichText::new(line).monospace().color(ui.visuals().warn_fg_color)),
                };
            }
        });
    }

    fn wizard_ui(&mut self, ui: &mut egui::Ui) {
        self.wizard.steps_ui(ui);
        ui.separator();
        let step = self.wizard.step;
        ui.heading(step.title());
        // (A refresh says so in the status bar: nothing here moves under the pointer.)
        if let Some(task) = &self.pending.open {
            busy_ui(ui, task.what());
        }
        if let Some(Err(e)) = &self.project {
            ui.colored_label(ui.visuals().error_fg_color, format!("The project could not be opened: {}", crate::error_chain(e.as_ref())));
        }
        if let Some(notice) = &self.notice {
            if notice.is_error() {
                ui.colored_label(ui.visuals().error_fg_color, notice.text());
            } else {
                ui.label(notice.text());
            }
        }
        if step == Step::Area {
            self.area_ui(ui);
            return;
        }
        if step == Step::Scenes {
            self.scenes_ui(ui);
        }
        let project = self.project.as_ref().and_then(|p| p.as_ref().ok());
        if let Some(stage) = step.stage() {
            self.wizard.stage_ui(ui, project, stage);
        }
    }

    /// The search results: candidates per date range with the chosen ones ticked (a click
    /// chooses another), their cloud and cover over the AOI, their S1 partners.
    fn scenes_ui(&mut self, ui: &mut egui::Ui) {
        let Some(r) = &self.search else {
            ui.label("No search yet: Run finds Sentinel-2 scenes for t0 and t1 and Sentinel-1 partners.");
            return;
        };
        let mut choice: Option<(bool, String)> = None;
        for line in r.window_summary() {
            ui.label(line);
        }
        let composites = r.composite_t0.is_some() || r.composite_t1.is_some();
        let heads: &[&str] = if composites { &["use", "date", "AOI cloud", "cover", "Sentinel-1 partner", "composite"] } else { &["use", "date", "AOI cloud", "cover", "Sentinel-1 partner"] };
        egui::Grid::new("scenes").striped(true).num_columns(heads.len()).show(ui, |ui| {
            for h in heads {
                ui.label(RichText::new(*h).strong());
            }
            ui.end_row();
            for (role, scenes, chosen) in [("t0", &r.s2_t0, &r.chosen_t0), ("t1", &r.s2_t1, &r.chosen_t1)] {
                for s in scenes {
                    let is_chosen = chosen.as_deref() == Some(s.id.as_str());
                    if ui.radio(is_chosen, role).on_hover_text(format!("use this scene for {role}")).clicked() && !is_chosen {
                        choice = Some((role == "t1", s.id.clone()));
                    }
                    if let Some(note) = &s.simulated {
                        ui.label(RichText::new(format!("{} SIMULATED", s.datetime.format("%Y-%m-%d"))).color(ui.visuals().warn_fg_color)).on_hover_text(format!("{}\n{note}", s.id));
                    } else {
                        ui.label(s.datetime.format("%Y-%m-%d").to_string()).on_hover_text(&s.id);
                    }
                    let pct = |v: Option<f64>| v.map(|v| format!("{v:.1} %")).unwrap_or_else(|| "?".into());
                    ui.label(pct(s.aoi_cloud_percent));
                    ui.label(pct(s.aoi_coverage_percent));
                    match r.pairs.iter().find(|p| p.s2_id == s.id) {
                        Some(p) => ui.label(format!("{:+.1} h", p.gap_hours)).on_hover_text(&p.s1_id),
                        None => ui.label("–"),
                    };
                    if composites {
                        ui.label(if r.in_composite(&s.id) { "kept" } else { "" });
                    }
                    ui.end_row();
                }
            }
        });
        for note in &r.notes {
            ui.label(RichText::new(note).weak());
        }
        // Simulated scenes (the embedded demo's) say so in full, Sentinel-1 partners included.
        let simulated: Vec<&crate::catalog::Scene> = r.s2_t0.iter().chain(&r.s2_t1).chain(&r.s1).filter(|s| s.simulated.is_some()).collect();
        if !simulated.is_empty() {
            ui.add_space(6.0);
            ui.colored_label(ui.visuals().warn_fg_color, "Simulated data in this search:");
            for s in simulated {
                ui.label(RichText::new(format!("{}: {}", s.id, s.simulated.as_deref().unwrap_or_default())).small());
            }
        }
        if let Some((t1, id)) = choice {
            self.choose_scene(t1, &id);
        }
    }

    /// Makes another search candidate the choice for t0 or t1 and saves it.
    pub fn choose_scene(&mut self, t1: bool, id: &str) {
        let (Some(project), Some(r)) = (self.project().cloned(), self.search.as_mut()) else { return };
        if self.wizard.is_running() {
            self.notice = Some(Notice::failed(Error::invalid(if t1 { "t1" } else { "t0" }, "wait for the running stage before changing the choice")));
            return;
        }
        let gap = self.wizard.settings.search_config(&project).map(|c| c.max_gap_days).unwrap_or(6.0);
        let result = r.choose(t1, id, gap).and_then(|()| r.save_choice(&project));
        self.notice = Some(match result {
            Ok(()) => Notice::Done(format!("{id} is now the {} scene; fetch and the later stages use it at their next run", if t1 { "t1" } else { "t0" })),
            Err(e) => Notice::failed(e),
        });
        self.wizard.request_refresh(false);
    }

    /// Outlines of the search's candidate scenes (their bounding boxes) for the map.
    fn footprints(&self) -> Vec<Vec<[f64; 2]>> {
        let Some(r) = &self.search else { return Vec::new() };
        r.s2_t0
            .iter()
            .chain(&r.s2_t1)
            .filter_map(|s| s.bbox)
            .map(|b| vec![[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]])
            .collect()
    }

    /// Starts probing the compute device on a background thread (wgpu start-up can take
    /// seconds); the status bar shows the answer.
    pub fn probe_device(&self) {
        let slot = self.device.clone();
        let _ = std::thread::Builder::new().name("device-probe".into()).spawn(move || {
            let text = crate::model::auto_device_description();
            if let Ok(mut d) = slot.lock() {
                *d = Some(text);
            }
        });
    }
}

impl eframe::App for S2crApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        // With the wgpu renderer, layers are stretched by the WGSL shader.
        if !self.gpu_ready
            && let Some(rs) = frame.wgpu_render_state()
        {
            let store = stretch_gpu::GpuStore::new(&rs.device, rs.target_format, layers::MESH as u32);
            rs.renderer.write().callback_resources.insert(store);
            tracing::info!("raster layers are stretched on the GPU (WGSL)");
            self.gpu_ready = true;
        }
        self.layers.gpu = self.gpu_ready;
        if let Some(stats) = &mut self.frame_stats {
            stats.frame(frame.info().cpu_usage);
        }
        self.ui_contents(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.persisted);
    }
}

/// Opens the main window; tries the wgpu renderer first and falls back to OpenGL (glow),
/// unless `options` names one.
pub fn run(project_dir: Option<PathBuf>, options: WindowOptions) -> Result<()> {
    // SAFETY: the window and the workers have not started; nothing else runs yet.
    unsafe { crate::model::set_default_burn_device() };
    let native = |renderer| eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title(APP_NAME).with_inner_size([1280.0, 800.0]),
        renderer,
        ..Default::default()
    };
    let stats_path = options.frame_stats.clone();
    let offline = options.offline;
    let creator = |dir: Option<PathBuf>| -> eframe::AppCreator<'static> {
        let stats_path = stats_path.clone();
        Box::new(move |cc| {
            let persisted: Persisted = cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
            // The last project when none is named.
            let dir = dir.or_else(|| persisted.last_project.clone().filter(|p| p.join(PROJECT_FILE).is_file()));
            let tiles = persisted.osm_tiles && !offline;
            let mut app = S2crApp::with_state(dir, persisted);
            if tiles {
                app.map.set_tiles(true, &cc.egui_ctx);
            }
            if let Some(path) = &stats_path {
                app.frame_stats = Some(frame_stats::FrameStats::create(path).map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?);
            }
            app.probe_device();
            Ok(Box::new(app))
        })
    };
    let renderer_error = |name: &str, e: eframe::Error| Error::invalid("display", format!("the {name} renderer could not start ({e}); is a display available?"));
    match options.renderer {
        RendererChoice::Wgpu => return eframe::run_native(APP_NAME, native(eframe::Renderer::Wgpu), creator(project_dir)).map_err(|e| renderer_error("wgpu", e)),
        RendererChoice::Glow => return eframe::run_native(APP_NAME, native(eframe::Renderer::Glow), creator(project_dir)).map_err(|e| renderer_error("OpenGL", e)),
        RendererChoice::Auto => {}
    }
    let first = eframe::run_native(APP_NAME, native(eframe::Renderer::Wgpu), creator(project_dir.clone()));
    let Err(wgpu_error) = first else { return Ok(()) };
    tracing::warn!("the wgpu renderer could not start ({wgpu_error}); trying OpenGL");
    eframe::run_native(APP_NAME, native(eframe::Renderer::Glow), creator(project_dir))
        .map_err(|e| Error::invalid("display", format!("no renderer could start (wgpu: {wgpu_error}; OpenGL: {e}); is a display available?")))
}
