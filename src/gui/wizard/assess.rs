//! The Assess step: its settings (an official perimeter, the dNBR offset, the severity classes,
//! which re-colour the severity layers at once) and the run's
//! assessment (burned areas, agreement, held-out pixels, the offset, what was simulated, the
//! HTML report).

use eframe::egui::{self, RichText};

use super::{LogLine, Wizard, open_in_browser};
use crate::indices::severity::{Scale, SeverityScheme};
use crate::job::LogLevel;
use crate::pipeline::PipelineSettings;
use crate::project::Project;

/// The step's rows of the settings grid.
pub(super) fn settings(ui: &mut egui::Ui, s: &mut PipelineSettings, running: bool) {
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
    ui.label("dNBR offset");
    ui.horizontal(|ui| {
        let o = &mut s.assess.dnbr_offset;
        ui.add_enabled(!running, egui::Checkbox::new(&mut o.enabled, "subtract unburned land's mean"))
            .on_hover_text("As MTBS does (Key 2006): each map's mean dNBR over unburned pixels around the fire is subtracted before RdNBR, RBR and the classes");
        let enabled = o.enabled && !running && o.polygon.is_none();
        ui.add_enabled_ui(enabled, |ui| {
            ui.label("ring");
            let outer = o.ring_outer_m;
            ui.add(egui::DragValue::new(&mut o.ring_inner_m).range(0.0..=(outer - 10.0).max(0.0)).speed(10.0).suffix(" m"));
            ui.label("to");
            let inner = o.ring_inner_m;
            ui.add(egui::DragValue::new(&mut o.ring_outer_m).range(inner + 10.0..=100_000.0).speed(10.0).suffix(" m"))
                .on_hover_text("outside the official perimeter, else outside the real burned map; clear at t0 and t1");
        });
        if let Some(p) = o.polygon.as_ref().and_then(|p| p.file_name()) {
            ui.label(format!("inside {}", p.to_string_lossy()));
        }
    });
    ui.end_row();
    ui.label("Perimeters");
    ui.horizontal(|ui| {
        let c = &mut s.assess.perimeter_cleaning;
        ui.add_enabled(!running, egui::Checkbox::new(&mut c.majority, "3 x 3 majority")).on_hover_text("Smooths the burned map before its polygons are drawn");
        ui.label("drop under");
        ui.add_enabled(!running, egui::DragValue::new(&mut c.min_area_ha).range(0.0..=10_000.0).speed(0.1).suffix(" ha")).on_hover_text("Minimum mapping unit: smaller burned patches are left out of the perimeters (0: none)");
        ui.label("fill holes under");
        ui.add_enabled(!running, egui::DragValue::new(&mut c.fill_holes_ha).range(0.0..=10_000.0).speed(0.1).suffix(" ha")).on_hover_text("Unburned holes inside the burned area smaller than this are filled (0: none)");
    });
    ui.end_row();
    let l = ui.label("Field plots");
    ui.horizontal(|ui| {
        let shown = s.assess.plots.as_ref().and_then(|p| p.file.file_name()).map(|n| n.to_string_lossy().to_string());
        ui.label(shown.as_deref().unwrap_or("none")).labelled_by(l.id);
        if ui.add_enabled(!running, egui::Button::new("Choose…")).on_hover_text("Field plots with a Composite Burn Index each (GeoPackage, Shapefile, GeoJSON, KML, or a CSV with lon, lat and CBI columns): the indices are fitted against CBI").clicked()
            && let Some(p) = rfd::FileDialog::new().set_title("Field plots (CBI)").add_filter("Point files", &["csv", "gpkg", "shp", "geojson", "json", "kml"]).pick_file()
        {
            s.assess.plots = Some(crate::assess::plots::FieldPlots { file: p, field: "CBI".into(), classify: false });
        }
        if s.assess.plots.is_some() && ui.add_enabled(!running, egui::Button::new("clear")).clicked() {
            s.assess.plots = None;
        }
    });
    ui.end_row();
    if let Some(p) = s.assess.plots.as_mut() {
        ui.label("");
        ui.horizontal(|ui| {
            let f = ui.label("CBI field");
            ui.add_enabled(!running, egui::TextEdit::singleline(&mut p.field).desired_width(70.0)).labelled_by(f.id);
            ui.add_enabled(!running, egui::Checkbox::new(&mut p.classify, "classify with its bounds")).on_hover_text("Both maps in the four classes the real map's dNBR fit gives at CBI 0.1, 1.25 and 2.25");
        });
        ui.end_row();
    }
    let l = ui.label("Severity classes");
    ui.add_enabled_ui(!running, |ui| classes_editor(ui, &mut s.assess.severity_classes, l.id));
    ui.end_row();
}

/// The severity classes: a preset, then each class's colour, name and lower bound, and which
/// is the least severe burned one. The map's severity layers follow every valid edit at once
/// (the app hands the scheme to them each frame); the next assessment uses it.
fn classes_editor(ui: &mut egui::Ui, scheme: &mut SeverityScheme, label: egui::Id) {
    ui.vertical(|ui| {
        let current = scheme.name.clone();
        egui::ComboBox::from_id_salt("severity-scheme")
            .selected_text(&current)
            .show_ui(ui, |ui| {
                for (name, preset) in [("USGS", SeverityScheme::usgs()), ("BARC4", SeverityScheme::barc4())] {
                    if ui.selectable_label(current == name && *scheme == preset, name).clicked() {
                        *scheme = preset;
                    }
                }
            })
            .response
            .labelled_by(label)
            .on_hover_text("USGS: Key & Benson's seven dNBR classes; BARC4: BAER's four classes over BARC256 = (dNBR x 1000 + 275) / 5. Edit any class below to make the scheme your own.");
        let before = scheme.clone();
        let scale = scheme.scale;
        let step = if scale == Scale::Barc256 { 1.0 } else { 0.01 };
        let mut burned = scheme.find(&scheme.burned_from).unwrap_or(0);
        egui::Grid::new("severity-classes").num_columns(5).spacing([6.0, 2.0]).show(ui, |ui| {
            ui.label(RichText::new("code").small());
            ui.label(RichText::new("").small());
            ui.label(RichText::new("class").small());
            ui.label(RichText::new(format!("from ({})", scale.name())).small());
            ui.label(RichText::new("burned").small());
            ui.end_row();
            let n = scheme.classes.len();
            for i in 0..n {
                let c = &mut scheme.classes[i];
                // The code names the row's widgets for screen readers.
                let code = ui.label(RichText::new(c.code.to_string()).small()).id;
                ui.color_edit_button_srgb(&mut c.color).labelled_by(code);
                ui.add_sized([150.0, 18.0], egui::TextEdit::singleline(&mut c.name)).labelled_by(code);
                match c.from.as_mut() {
                    Some(v) => {
                        ui.add(egui::DragValue::new(v).speed(step).max_decimals(if scale == Scale::Barc256 { 0 } else { 3 })).labelled_by(code).on_hover_text(format!("lower bound of {:?}", c.name));
                    }
                    None => {
                        ui.label(RichText::new("below").weak());
                    }
                }
                ui.radio_value(&mut burned, i, "").labelled_by(code).on_hover_text(format!("count {:?} and above as burned", c.name));
                ui.end_row();
            }
        });
        if let Some(c) = scheme.classes.get(burned) {
            scheme.burned_from = c.name.clone();
        }
        ui.horizontal(|ui| {
            if ui.small_button("+ class").on_hover_text("a class above the last").clicked() {
                let last = scheme.classes.last().cloned();
                if let Some(last) = last.filter(|l| l.code < 255) {
                    let from = last.from.map_or(0.0, |b| b + if scale == Scale::Barc256 { 10.0 } else { 0.1 });
                    scheme.classes.push(crate::indices::severity::SeverityClass { code: last.code + 1, name: format!("class {}", last.code + 1), color: [90, 0, 90], from: Some(from) });
                }
            }
            if scheme.classes.len() > 2 && ui.small_button("− class").on_hover_text("remove the last class").clicked() {
                scheme.classes.pop();
            }
        });
        // Any edit makes the scheme the analyst's own (a preset's name only while it is one).
        if *scheme != before && SeverityScheme::preset(&scheme.name).is_some_and(|p| p != *scheme) {
            scheme.name = "own".into();
        }
        if let Err(e) = scheme.validate() {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
    });
}

impl Wizard {
    /// The run's assessment, when there is one: the burned areas, the agreement (and over the
    /// held-out pixels), what was simulated, and a button that opens the HTML report.
    pub(super) fn assessment_ui(&mut self, ui: &mut egui::Ui, project: &Project) {
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
        match &report.dnbr_offset {
            Some(o) if o.pixels > 0 => {
                ui.label(format!("dNBR offset subtracted: real {:+.3}, synthetic {:+.3}", o.real, o.synthetic)).on_hover_text(format!("the mean dNBR over {} unburned pixels: {}", o.pixels, o.source));
            }
            Some(o) => {
                ui.colored_label(ui.visuals().warn_fg_color, "No dNBR offset: no clear unburned pixel").on_hover_text(&o.source);
            }
            None => {
                ui.label("No dNBR offset (turned off)");
            }
        }
        if let Some(c) = &report.plots {
            for f in c.fits.iter().filter(|f| f.index == "dNBR" && f.model == "saturating") {
                let bounds: Vec<String> = f.bounds.iter().map(|b| format!("{b:.3}")).collect();
                ui.label(format!("Field plots, {} map: dNBR against CBI R² {:.2}, RMSE {:.3} ({} plots); bounds {}", f.map, f.r2, f.rmse, f.n, bounds.join(", ")))
                    .on_hover_text(c.notes.join("; "));
            }
        }
        self.baselines_ui(ui, report);
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

    /// The synthetic image against what an analyst has without it, over the same held-out
    /// pixels (report.json's `baselines`): the verdict first when a simpler source does better.
    fn baselines_ui(&self, ui: &mut egui::Ui, report: &crate::assess::AssessReport) {
        let Some(bl) = &report.baselines else { return };
        ui.add_space(4.0);
        ui.label(RichText::new("Against the alternatives (held-out pixels)").strong()).on_hover_text(format!("{} ({} pixels)", bl.pixels, bl.count));
        for b in &bl.beaten_by {
            ui.colored_label(ui.visuals().warn_fg_color, format!("A simpler source does better: {b}."));
        }
        let f = |v: f64, digits: usize| if v.is_finite() { format!("{v:.digits$}") } else { "n/a".into() };
        egui::Grid::new("baselines").striped(true).num_columns(5).show(ui, |ui| {
            for h in ["source", "kappa", "dNBR MAE", "PSNR dB", "SSIM"] {
                ui.label(RichText::new(h).strong());
            }
            ui.end_row();
            for r in &bl.rows {
                let short = match r.id.as_str() {
                    "synthetic" => "synthetic",
                    "persistence" => "persistence",
                    "linear" => "linear model",
                    "radar" => "radar only",
                    "composite" => "composite",
                    other => other,
                };
                ui.label(short).on_hover_text(&r.name);
                ui.label(f(r.burned.kappa, 3));
                ui.label(f(r.image.dnbr_mae, 3));
                ui.label(f(r.image.psnr_db, 1));
                ui.label(f(r.image.ssim, 3));
                ui.end_row();
            }
        });
        for n in &bl.notes {
            ui.label(RichText::new(n).small());
        }
        if let Some(g) = &report.gapfill {
            ui.add_space(4.0);
            ui.label(RichText::new("Gap-filled post-fire image").strong()).on_hover_text("Layers: gap-filled, source of each gap-filled pixel, its dNBR and severity");
            for line in g.lines(report.pixel_area_m2, report.inputs.gapfill.as_ref().is_some_and(|r| r.composite_t1.is_some())) {
                ui.label(RichText::new(line).small());
            }
        }
    }
}
