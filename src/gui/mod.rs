//! The desktop application (feature `gui`). This first version is the window frame: title,
//! project and status bars, and a placeholder where the map and the wizard will go. It draws
//! state and sends actions; it runs no pipeline logic itself.

use std::path::PathBuf;

use eframe::egui;

use crate::error::{Error, Result};
use crate::project::Project;

pub const APP_NAME: &str = "sent2-cloud-remover";

/// The application state.
pub struct S2crApp {
    project_dir: Option<PathBuf>,
    project: Option<std::result::Result<Project, String>>,
}

impl S2crApp {
    pub fn new(project_dir: Option<PathBuf>) -> Self {
        let project = project_dir.as_deref().map(|d| Project::open(d).map_err(|e| crate::error_chain(&e)));
        S2crApp { project_dir, project }
    }

    /// Draws the whole window content into `ui` (also used by the GUI tests).
    pub fn ui_contents(&mut self, ui: &mut egui::Ui) {
        egui::Panel::top("title").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(APP_NAME);
                ui.separator();
                ui.label("Sentinel-1 + Sentinel-2 cloud removal for burned-area mapping");
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                let project = match &self.project {
                    None => "No project open".to_string(),
                    Some(Ok(p)) => format!("Project: {}", p.config.name),
                    Some(Err(_)) => "Project: could not be opened".to_string(),
                };
                ui.label(project);
                ui.separator();
                ui.label("Jobs: none running");
            });
        });
        egui::CentralPanel::default().show(ui, |ui| {
            ui.vertical_centered(|ui| {
                ui.add_space(40.0);
                ui.label(egui::RichText::new("Map").size(28.0).weak());
                ui.label("The map and the project wizard are not built yet; use the `s2cr` commands (s2cr --help).");
                if let Some(Err(e)) = &self.project {
                    let dir = self.project_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default();
                    ui.colored_label(ui.visuals().error_fg_color, format!("Could not open {dir}: {e}"));
                }
            });
        });
    }
}

impl eframe::App for S2crApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.ui_contents(ui);
    }
}

/// Opens the main window; tries the wgpu renderer first and falls back to OpenGL (glow).
pub fn run(project_dir: Option<PathBuf>) -> Result<()> {
    let options = |renderer| eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title(APP_NAME).with_inner_size([1280.0, 800.0]),
        renderer,
        ..Default::default()
    };
    let first = eframe::run_native(
        APP_NAME,
        options(eframe::Renderer::Wgpu),
        Box::new({
            let dir = project_dir.clone();
            move |_cc| Ok(Box::new(S2crApp::new(dir)))
        }),
    );
    let Err(wgpu_error) = first else { return Ok(()) };
    tracing::warn!("the wgpu renderer could not start ({wgpu_error}); trying OpenGL");
    eframe::run_native(APP_NAME, options(eframe::Renderer::Glow), Box::new(move |_cc| Ok(Box::new(S2crApp::new(project_dir)))))
        .map_err(|e| Error::invalid("display", format!("no renderer could start (wgpu: {wgpu_error}; OpenGL: {e}); is a display available?")))
}
