//! The Fetch step's settings: parallel downloads and the margin around the AOI.

use eframe::egui;

use crate::pipeline::PipelineSettings;

/// The step's rows of the settings grid.
pub(super) fn settings(ui: &mut egui::Ui, s: &mut PipelineSettings) {
    let l = ui.label("Parallel downloads");
    ui.add(egui::DragValue::new(&mut s.fetch.parallel).range(1..=16)).labelled_by(l.id);
    ui.end_row();
    let l = ui.label("Margin around the AOI (m)");
    ui.add(egui::DragValue::new(&mut s.fetch.margin_m).range(0.0..=5000.0)).labelled_by(l.id);
    ui.end_row();
}
