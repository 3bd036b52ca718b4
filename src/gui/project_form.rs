//! The Area step: the polygon drawn on the map (import, export, its live check) and the
//! new-project form, whose values go to [`Project::init`], the one way to create a project
//! (the checks of `s2cr init`).

use std::path::{Path, PathBuf};

use eframe::egui::{self, RichText};

use super::editor::AoiEditor;
use super::{Notice, S2crApp};
use crate::aoi::{Aoi, AoiLimits, DEFAULT_MAX_AREA_KM2};
use crate::error::{Error, Result};
use crate::project::{AOI_FILE, DateRange, NewProject, Project, Provider};

/// Pixel sizes a project can have, metres (those of Sentinel-2's bands).
pub const PIXEL_SIZES_M: [f64; 3] = [10.0, 20.0, 60.0];

/// The new-project form of the Area step.
#[derive(Debug, Clone)]
pub struct NewProjectForm {
    pub folder: String,
    pub name: String,
    pub t0: String,
    pub t1: String,
    pub provider: Provider,
    pub max_cloud: f64,
    /// The largest area accepted, km2.
    pub max_area_km2: f64,
    /// The project grid's pixel size, metres.
    pub pixel_size_m: f64,
    /// With the local provider: the static STAC catalog's catalog.json.
    pub catalog: String,
}

impl Default for NewProjectForm {
    fn default() -> Self {
        NewProjectForm {
            folder: String::new(),
            name: String::new(),
            t0: "2019-11-01/2019-12-15".into(),
            t1: "2020-01-15/2020-02-28".into(),
            provider: Provider::EarthSearch,
            max_cloud: 20.0,
            max_area_km2: DEFAULT_MAX_AREA_KM2,
            pixel_size_m: 10.0,
            catalog: String::new(),
        }
    }
}

impl NewProjectForm {
    /// The project these values describe around `aoi` (checked by [`Project::init`]).
    pub fn new_project(&self, aoi: Aoi) -> Result<NewProject> {
        let folder = self.folder.trim();
        if folder.is_empty() {
            return Err(Error::invalid("folder", "choose a folder for the project"));
        }
        let t0: DateRange = self.t0.parse().map_err(|e| Error::invalid("t0 (pre-fire)", e))?;
        let t1: DateRange = self.t1.parse().map_err(|e| Error::invalid("t1 (post-fire)", e))?;
        let name = Some(self.name.trim().to_string()).filter(|n| !n.is_empty());
        Ok(NewProject {
            name,
            provider: self.provider,
            max_cloud_percent: self.max_cloud,
            pixel_size_m: self.pixel_size_m,
            limits: self.limits(),
            catalog: (self.provider == Provider::Local && !self.catalog.trim().is_empty()).then(|| PathBuf::from(self.catalog.trim())),
            ..NewProject::new(PathBuf::from(folder), aoi, t0, t1)
        })
    }

    pub fn limits(&self) -> AoiLimits {
        AoiLimits { max_area_km2: self.max_area_km2 }
    }
}

/// What the Area step shows about the drawn polygon.
#[derive(Debug, Clone)]
pub struct AreaCheck {
    area_km2: Option<f64>,
    problems: Vec<String>,
    /// [min lon, min lat, max lon, max lat] when the polygon makes an AOI.
    bbox: Option<[f64; 4]>,
}

impl S2crApp {
    /// Reads an AOI file (GeoJSON or WKT) into the editor and zooms to it.
    pub fn import_aoi(&mut self, path: &Path) {
        match Aoi::load(path, &AoiLimits { max_area_km2: f64::INFINITY }) {
            Ok(aoi) => {
                let (editor, note) = AoiEditor::from_aoi(&aoi);
                self.editor = editor;
                self.map.drawing = false;
                self.map.zoom_to(aoi.bbox());
                let s = aoi.summary();
                self.notice = Some(Notice::Done(format!("Imported {}: {} polygon(s), {:.1} km2{}", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), s.polygons, s.area_km2, note.map(|n| format!("; {n}")).unwrap_or_default())));
            }
            Err(e) => self.notice = Some(Notice::failed(e)),
        }
    }

    pub fn export_aoi(&mut self, path: &Path) {
        self.notice = Some(match self.editor.aoi().and_then(|a| a.write(path)) {
            Ok(()) => Notice::Done(format!("Saved the AOI to {}", path.display())),
            Err(e) => Notice::failed(e),
        });
    }

    /// Creates a project from the drawn AOI and the form ([`Project::init`]), then opens it.
    pub fn create_project(&mut self) {
        let created = self.editor.aoi().and_then(|aoi| self.form.new_project(aoi)).and_then(|new| Project::init(&new));
        match created {
            Ok(project) => {
                let dir = project.root().to_path_buf();
                self.open_project(&dir);
                self.notice = Some(Notice::Done(format!("Created the project in {}", dir.display())));
            }
            Err(e) => self.notice = Some(Notice::failed(e)),
        }
    }

    /// The drawn polygon's check, redone when the polygon (or the limit) has changed since the
    /// last one. An open project's area is checked for validity only, as the project reads it.
    fn area_check(&mut self) -> AreaCheck {
        let limits = if self.project().is_some() { AoiLimits { max_area_km2: f64::INFINITY } } else { self.form.limits() };
        match &self.area_check {
            Some((editor, l, check)) if *editor == self.editor && *l == limits => check.clone(),
            _ => {
                let (area_km2, problems) = self.editor.check(&limits);
                let bbox = area_km2.and_then(|_| self.editor.aoi().ok()).map(|a| a.bbox());
                let check = AreaCheck { area_km2, problems, bbox };
                self.area_check = Some((self.editor.clone(), limits, check.clone()));
                check
            }
        }
    }

    pub(super) fn area_ui(&mut self, ui: &mut egui::Ui) {
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
                if let Some(p) = rfd::FileDialog::new().add_filter("GeoJSON", &["geojson"]).add_filter("WKT", &["wkt"]).set_file_name(AOI_FILE).save_file() {
                    self.export_aoi(&p);
                }
            }
            if ui.add_enabled(check.bbox.is_some(), egui::Button::new("Zoom to AOI")).on_hover_text("also the Home key, on any step").clicked() {
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
        if has_project || self.pending.open.is_some() {
            return;
        }
        ui.separator();
        ui.label(RichText::new("New project").strong());
        self.form_ui(ui);
        if ui.add_enabled(area.is_some() && problems.is_empty(), egui::Button::new("Create project")).clicked() {
            self.create_project();
        }
    }

    fn form_ui(&mut self, ui: &mut egui::Ui) {
        let form = &mut self.form;
        egui::Grid::new("new-project").num_columns(2).show(ui, |ui| {
            let l = ui.label("Folder");
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut form.folder).desired_width(150.0)).labelled_by(l.id);
                if ui.button("…").on_hover_text("choose a folder").clicked() {
                    if let Some(d) = rfd::FileDialog::new().pick_folder() {
                        form.folder = d.display().to_string();
                    }
                }
            });
            ui.end_row();
            for (label, value) in [("Name", &mut form.name), ("t0 (pre-fire)", &mut form.t0), ("t1 (post-fire)", &mut form.t1)] {
                let l = ui.label(label);
                ui.text_edit_singleline(value).labelled_by(l.id);
                ui.end_row();
            }
            let l = ui.label("Provider");
            egui::ComboBox::from_id_salt("provider")
                .selected_text(form.provider.to_string())
                .show_ui(ui, |ui| {
                    for p in [Provider::EarthSearch, Provider::PlanetaryComputer, Provider::Cdse, Provider::Local] {
                        ui.selectable_value(&mut form.provider, p, p.to_string());
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            if form.provider == Provider::Local {
                let l = ui.label("Catalog");
                ui.horizontal(|ui| {
                    ui.add(egui::TextEdit::singleline(&mut form.catalog).hint_text("catalog.json of a static STAC catalog").desired_width(150.0)).labelled_by(l.id);
                    if ui.button("…").on_hover_text("choose the catalog.json").clicked()
                        && let Some(f) = rfd::FileDialog::new().set_title("A static STAC catalog").add_filter("STAC catalog", &["json"]).pick_file()
                    {
                        form.catalog = f.display().to_string();
                    }
                });
                ui.end_row();
            }
            let l = ui.label("Max cloud over the AOI (%)");
            ui.add(egui::DragValue::new(&mut form.max_cloud).range(0.0..=100.0)).labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Largest area, km²");
            ui.add(egui::DragValue::new(&mut form.max_area_km2).range(1.0..=1_000_000.0).speed(50.0)).labelled_by(l.id).on_hover_text("a larger area is refused: it would be too many pixels for one project");
            ui.end_row();
            let l = ui.label("Pixel size");
            egui::ComboBox::from_id_salt("pixel-size")
                .selected_text(format!("{} m", form.pixel_size_m))
                .show_ui(ui, |ui| {
                    for m in PIXEL_SIZES_M {
                        ui.selectable_value(&mut form.pixel_size_m, m, format!("{m} m"));
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
        });
    }
}
