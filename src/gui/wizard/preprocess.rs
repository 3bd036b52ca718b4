//! The Preprocess step's settings: the cloud mask (buffer, snow, haze) and the engine (this
//! computer or an openEO back-end).

use eframe::egui;

use crate::pipeline::PipelineSettings;

/// The step's rows of the settings grid.
pub(super) fn settings(ui: &mut egui::Ui, s: &mut PipelineSettings, running: bool) {
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
    engine_settings(ui, &mut s.preprocess, running);
}

/// The Preprocess step's engine choice: this program, or batch jobs on an openEO back-end (its
/// URL here, or project.yaml's `openeo:`). A SNAP engine set in pipeline.yaml is shown as it is.
fn engine_settings(ui: &mut egui::Ui, p: &mut crate::preprocess::stage::PreprocessConfig, running: bool) {
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
