//! The desktop application (feature `gui`): the map in the centre (`map`), the project wizard on
//! the left (`wizard`), log and progress at the bottom, a status bar. It draws state and sends
//! actions; stages run on worker threads through `crate::pipeline`, the same code as the CLI.

pub mod editor;
pub mod layers;
pub mod stretch_gpu;
pub mod map;
pub mod wizard;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use eframe::egui::{self, RichText};
use walkers::lon_lat;

use self::editor::AoiEditor;
use self::map::MapView;
use self::wizard::{LogLine, Step, Wizard};
use crate::aoi::{Aoi, AoiLimits};
use crate::catalog::stage::SearchResult;
use crate::error::{Error, Result};
use crate::job::LogLevel;
use crate::project::{DateRange, Project, ProjectConfig, Provider};

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
}

impl Default for Persisted {
    fn default() -> Self {
        Persisted { last_project: None, map_centre: [137.0, -35.8], map_zoom: 5.0, osm_tiles: true, wizard_width: 330.0 }
    }
}

/// The new-project form of the Area step.
#[derive(Debug, Clone)]
pub struct NewProjectForm {
    pub folder: String,
    pub name: String,
    pub t0: String,
    pub t1: String,
    pub provider: Provider,
    pub max_cloud: f64,
}

impl Default for NewProjectForm {
    fn default() -> Self {
        NewProjectForm { folder: String::new(), name: String::new(), t0: "2019-11-01/2019-12-15".into(), t1: "2020-01-15/2020-02-28".into(), provider: Provider::EarthSearch, max_cloud: 20.0 }
    }
}

/// The application state.
pub struct S2crApp {
    project_dir: Option<PathBuf>,
    project: Option<std::result::Result<Project, String>>,
    pub map: MapView,
    pub editor: AoiEditor,
    pub wizard: Wizard,
    pub form: NewProjectForm,
    pub persisted: Persisted,
    /// The compute device, once probed in the background ("GPU (wgpu: ...)" or "CPU ...").
    device: Arc<Mutex<Option<String>>>,
    search: Option<SearchResult>,
    /// A message for the user about the last action (import, export, project creation).
    pub notice: Option<(bool, String)>,
    /// The drawn AOI's check (area, problems, bbox) for the polygon it was made for: redone
    /// only when the polygon changes, not every frame.
    area_check: Option<(AoiEditor, AreaCheck)>,
    /// The open project's rasters on the map, the swipe comparison and the pixel inspector.
    pub layers: layers::LayerPanel,
    /// The WGSL stretch pipeline is installed in the wgpu renderer.
    gpu_ready: bool,
}

/// What the Area step shows about the drawn polygon.
#[derive(Debug, Clone)]
struct AreaCheck {
    area_km2: Option<f64>,
    problems: Vec<String>,
    /// [min lon, min lat, max lon, max lat] when the polygon makes an AOI.
    bbox: Option<[f64; 4]>,
}

impl S2crApp {
    /// The app on a project folder (or none), without tiles or a device probe: what the tests
    /// drive. [`run`] adds both.
    pub fn new(project_dir: Option<PathBuf>) -> Self {
        S2crApp::with_state(project_dir, Persisted { osm_tiles: false, ..Default::default() })
    }

    pub fn with_state(project_dir: Option<PathBuf>, persisted: Persisted) -> Self {
        let centre = lon_lat(persisted.map_centre[0], persisted.map_centre[1]);
        let mut app = S2crApp {
            project_dir: None,
            project: None,
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
        };
        if let Some(dir) = project_dir {
            app.open_project(&dir);
        }
        app
    }

    /// Opens a project folder: its AOI on the map, its stages' states in the wizard.
    pub fn open_project(&mut self, dir: &Path) {
        self.project_dir = Some(dir.to_path_buf());
        let opened = Project::open(dir).map_err(|e| crate::error_chain(&e));
        if let Ok(p) = &opened {
            self.persisted.last_project = Some(p.root().to_path_buf());
            if let Ok(aoi) = Aoi::load(&p.root().join(&p.config.aoi), &AoiLimits::default()) {
                self.editor = AoiEditor::from_aoi(&aoi).0;
                self.map.zoom_to(aoi.bbox());
            }
            match crate::pipeline::PipelineSettings::of_project(p) {
                Ok(settings) => self.wizard.settings = settings,
                Err(e) => self.notice = Some((true, crate::error_chain(&e))),
            }
            self.wizard.show_run(p);
            // A project whose stages are all done opens on its assessment.
            if crate::project::Stage::ALL.iter().filter(|s| crate::pipeline::availability(**s).is_ok()).all(|s| self.wizard.state(*s) == Some(&crate::project::StageState::Done)) {
                self.wizard.step = wizard::Step::Assess;
            }
            self.search = SearchResult::load(p, "the app").ok();
            self.layers = layers::LayerPanel::load(p, self.wizard.settings.run_name());
        }
        self.project = Some(opened);
    }

    pub fn project(&self) -> Option<&Project> {
        self.project.as_ref().and_then(|p| p.as_ref().ok())
    }

    /// Reads an AOI file (GeoJSON or WKT) into the editor and zooms to it.
    pub fn import_aoi(&mut self, path: &Path) {
        match Aoi::load(path, &AoiLimits { max_area_km2: f64::INFINITY }) {
            Ok(aoi) => {
                let (editor, note) = AoiEditor::from_aoi(&aoi);
                self.editor = editor;
                self.map.drawing = false;
                self.map.zoom_to(aoi.bbox());
                let s = aoi.summary();
                self.notice = Some((false, format!("Imported {}: {} polygon(s), {:.1} km2{}", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), s.polygons, s.area_km2, note.map(|n| format!("; {n}")).unwrap_or_default())));
            }
            Err(e) => self.notice = Some((true, crate::error_chain(&e))),
        }
    }

    pub fn export_aoi(&mut self, path: &Path) {
        let result = self.editor.aoi().map_err(|e| e.to_string()).and_then(|a| a.write(path).map_err(|e| crate::error_chain(&e)));
        self.notice = Some(match result {
            Ok(()) => (false, format!("Saved the AOI to {}", path.display())),
            Err(e) => (true, e),
        });
    }

    /// Creates a project from the drawn AOI and the form, then opens it.
    pub fn create_project(&mut self) {
        let result = (|| -> std::result::Result<PathBuf, String> {
            let aoi = self.editor.aoi()?;
            aoi.validate(&AoiLimits::default()).map_err(|e| crate::error_chain(&e))?;
            if self.form.folder.trim().is_empty() {
                return Err("choose a folder for the project".into());
            }
            let dir = PathBuf::from(self.form.folder.trim());
            let t0: DateRange = self.form.t0.parse().map_err(|e| format!("t0: {e}"))?;
            let t1: DateRange = self.form.t1.parse().map_err(|e| format!("t1: {e}"))?;
            let name = if self.form.name.trim().is_empty() { dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "project".into()) } else { self.form.name.trim().to_string() };
            let config = ProjectConfig::for_aoi(&name, &aoi, t0, t1, self.form.provider, self.form.max_cloud, 10.0).map_err(|e| crate::error_chain(&e))?;
            Project::create(&dir, config, &aoi).map_err(|e| crate::error_chain(&e))?;
            Ok(dir)
        })();
        match result {
            Ok(dir) => {
                self.open_project(&dir);
                self.notice = Some((false, format!("Created the project in {}", dir.display())));
            }
            Err(e) => self.notice = Some((true, e)),
        }
    }

    /// Draws the whole window content into `ui` (also used by the GUI tests).
    pub fn ui_contents(&mut self, ui: &mut egui::Ui) {
        // Background work first, so this frame shows its latest state; a finished search is read
        // once.
        let project = self.project.as_ref().and_then(|p| p.as_ref().ok());
        let ended = self.wizard.poll(project);
        if ended == Some(crate::project::Stage::Search) {
            self.search = project.and_then(|p| SearchResult::load(p, "the app").ok());
        }
        // A stage that ended may have made new layers (or a run was renamed).
        if let Some(p) = project
            && (ended.is_some() || self.layers.run() != self.wizard.settings.run_name())
        {
            self.layers = layers::LayerPanel::load(p, self.wizard.settings.run_name());
        }
        if self.wizard.is_running() {
            ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
        }
        let dropped: Vec<PathBuf> = ui.ctx().input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        for path in dropped {
            self.import_aoi(&path);
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
                });
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::bottom("log").resizable(true).default_size(90.0).show(ui, |ui| self.log_ui(ui));
        egui::Panel::left("wizard").resizable(true).default_size(self.persisted.wizard_width).show(ui, |ui| {
            self.persisted.wizard_width = ui.available_width();
            egui::ScrollArea::vertical().show(ui, |ui| self.wizard_ui(ui));
        });
        if self.project().is_some() && !self.layers.is_empty() {
            egui::Panel::right("layers").resizable(true).default_size(290.0).show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.layers.ui(ui));
            });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            let footprints = self.footprints();
            let editable = self.project.is_none();
            let ctx = ui.ctx().clone();
            let layers = &mut self.layers;
            let hover = self.map.ui(ui, &mut self.editor, &footprints, editable, &mut |painter, projector| layers.draw(&ctx, painter, projector));
            if let Some((lon, lat)) = hover
                && !self.layers.is_empty()
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
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let project = match &self.project {
                None => "No project open".to_string(),
                Some(Ok(p)) => format!("Project: {}", p.config.name),
                Some(Err(_)) => "Project: could not be opened".to_string(),
            };
            ui.label(project);
            ui.separator();
            let device = self.device.lock().ok().and_then(|d| d.clone()).unwrap_or_else(|| "auto (GPU when present, else CPU)".into());
            ui.label(format!("Compute: {device}"));
            ui.separator();
            let mut tiles = self.map.tiles.is_some();
            if ui.checkbox(&mut tiles, "OpenStreetMap tiles").on_hover_text("off: the offline Natural Earth outlines only").changed() {
                self.map.tiles = tiles.then(|| map::osm_tiles(ui.ctx()));
                self.persisted.osm_tiles = tiles;
            }
            ui.separator();
            match &self.wizard.job {
                Some(j) => ui.label(format!("Jobs: {} running", j.stage)),
                None => ui.label("Jobs: none running"),
            };
            ui.separator();
            ui.label(if self.gpu_ready { "Layers: GPU (WGSL stretch)" } else { "Layers: CPU stretch" }).on_hover_text("how the map's raster layers are coloured");
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
        if let Some((error, text)) = &self.notice {
            if *error {
                ui.colored_label(ui.visuals().error_fg_color, text);
            } else {
                ui.label(text);
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

    /// The drawn polygon's check, redone when the polygon has changed since the last one.
    fn area_check(&mut self) -> AreaCheck {
        match &self.area_check {
            Some((editor, check)) if *editor == self.editor => check.clone(),
            _ => {
                let (area_km2, problems) = self.editor.check(&AoiLimits::default());
                let bbox = area_km2.and_then(|_| self.editor.aoi().ok()).map(|a| a.bbox());
                let check = AreaCheck { area_km2, problems, bbox };
                self.area_check = Some((self.editor.clone(), check.clone()));
                check
            }
        }
    }

    fn area_ui(&mut self, ui: &mut egui::Ui) {
        let has_project = self.project().is_some();
        let check = self.area_check();
        if has_project {
            ui.label("The project's area. A project keeps its grid; to change the area, save it and create a new project.");
        } else {
            ui.label("Draw the area on the map (click to add points, click the first point to close), or import a GeoJSON/WKT file (or drop it on the window).");
        }
        ui.horizontal_wrapped(|ui| {
            if !has_project {
                let label = if self.map.drawing { "Stop drawing" } else { "Draw" };
                if ui.button(label).clicked() {
                    self.map.drawing = !self.map.drawing;
                }
                if ui.add_enabled(!self.editor.closed && self.editor.vertices.len() >= 3, egui::Button::new("Close polygon")).clicked() {
                    self.editor.close();
                }
                if ui.add_enabled(!self.editor.is_empty(), egui::Button::new("Clear")).clicked() {
                    self.editor.clear();
                }
                if ui.button("Import…").clicked() {
                    if let Some(p) = rfd::FileDialog::new().add_filter("GeoJSON or WKT", &["geojson", "json", "wkt", "txt"]).pick_file() {
                        self.import_aoi(&p);
                    }
                }
            }
            if ui.add_enabled(check.bbox.is_some(), egui::Button::new("Export…")).clicked() {
                if let Some(p) = rfd::FileDialog::new().add_filter("GeoJSON", &["geojson"]).add_filter("WKT", &["wkt"]).set_file_name("aoi.geojson").save_file() {
                    self.export_aoi(&p);
                }
            }
            if ui.add_enabled(check.bbox.is_some(), egui::Button::new("Zoom to AOI")).clicked() {
                if let Some(b) = check.bbox {
                    self.map.zoom_to(b);
                }
            }
        });
        let AreaCheck { area_km2: area, problems, .. } = check;
        if let Some(a) = area {
            ui.label(format!("Area: {a:.1} km2 ({} vertices{})", self.editor.vertices.len(), if self.editor.closed { ", closed" } else { ", open" }));
        }
        for p in &problems {
            ui.colored_label(if area.is_some() { ui.visuals().error_fg_color } else { ui.visuals().weak_text_color() }, p);
        }
        if has_project {
            return;
        }
        ui.separator();
        ui.label(RichText::new("New project").strong());
        egui::Grid::new("new-project").num_columns(2).show(ui, |ui| {
            let l = ui.label("Folder");
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut self.form.folder).desired_width(150.0)).labelled_by(l.id);
                if ui.button("…").on_hover_text("choose a folder").clicked() {
                    if let Some(d) = rfd::FileDialog::new().pick_folder() {
                        self.form.folder = d.display().to_string();
                    }
                }
            });
            ui.end_row();
            for (label, value) in [("Name", &mut self.form.name), ("t0 (pre-fire)", &mut self.form.t0), ("t1 (post-fire)", &mut self.form.t1)] {
                let l = ui.label(label);
                ui.text_edit_singleline(value).labelled_by(l.id);
                ui.end_row();
            }
            let l = ui.label("Provider");
            egui::ComboBox::from_id_salt("provider")
                .selected_text(self.form.provider.to_string())
                .show_ui(ui, |ui| {
                    for p in [Provider::EarthSearch, Provider::PlanetaryComputer, Provider::Cdse] {
                        ui.selectable_value(&mut self.form.provider, p, p.to_string());
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Max cloud over the AOI (%)");
            ui.add(egui::DragValue::new(&mut self.form.max_cloud).range(0.0..=100.0)).labelled_by(l.id);
            ui.end_row();
        });
        if ui.add_enabled(area.is_some() && problems.is_empty(), egui::Button::new("Create project")).clicked() {
            self.create_project();
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
        egui::Grid::new("scenes").striped(true).num_columns(5).show(ui, |ui| {
            for h in ["use", "date", "AOI cloud", "cover", "Sentinel-1 partner"] {
                ui.label(RichText::new(h).strong());
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
            self.notice = Some((true, "wait for the running stage before changing the choice".into()));
            return;
        }
        let gap = self.wizard.settings.search_config(&project).map(|c| c.max_gap_days).unwrap_or(6.0);
        let result = r.choose(t1, id, gap).and_then(|()| r.save_choice(&project));
        self.notice = Some(match result {
            Ok(()) => (false, format!("{id} is now the {} scene; fetch and the later stages use it at their next run", if t1 { "t1" } else { "t0" })),
            Err(e) => (true, crate::error_chain(&e)),
        });
        self.wizard.refresh(&project);
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
        self.ui_contents(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.persisted);
    }
}

/// Opens the main window; tries the wgpu renderer first and falls back to OpenGL (glow).
/// `offline`: no map tiles from the internet this session.
pub fn run(project_dir: Option<PathBuf>, offline: bool) -> Result<()> {
    // SAFETY: the window and the workers have not started; nothing else runs yet.
    unsafe { crate::model::set_default_burn_device() };
    let options = |renderer| eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title(APP_NAME).with_inner_size([1280.0, 800.0]),
        renderer,
        ..Default::default()
    };
    let creator = |dir: Option<PathBuf>| -> eframe::AppCreator<'static> {
        Box::new(move |cc| {
            let persisted: Persisted = cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
            // The last project when none is named.
            let dir = dir.or_else(|| persisted.last_project.clone().filter(|p| p.join("project.yaml").is_file()));
            let tiles = persisted.osm_tiles && !offline;
            let mut app = S2crApp::with_state(dir, persisted);
            if tiles {
                app.map.tiles = Some(map::osm_tiles(&cc.egui_ctx));
            }
            app.probe_device();
            Ok(Box::new(app))
        })
    };
    let first = eframe::run_native(APP_NAME, options(eframe::Renderer::Wgpu), creator(project_dir.clone()));
    let Err(wgpu_error) = first else { return Ok(()) };
    tracing::warn!("the wgpu renderer could not start ({wgpu_error}); trying OpenGL");
    eframe::run_native(APP_NAME, options(eframe::Renderer::Glow), creator(project_dir))
        .map_err(|e| Error::invalid("display", format!("no renderer could start (wgpu: {wgpu_error}; OpenGL: {e}); is a display available?")))
}
