//! The layer panel: the list of layers (order, visibility, opacity, composite, stretch),
//! the comparison's layout (single, swipe, side by side and its pairs), export, the legends and
//! the inspector's panel.

use eframe::egui::{self, RichText};

use super::{CUSTOM, LayerPanel, Mode, Pair};
use crate::gui::background::busy_ui;
use crate::gui::legend::legend_ui;
use super::draw::is_shown;
use super::inspector::inspector_ui;
use crate::layers::{Composite, LayerKind, StretchKind};

impl LayerPanel {
    /// The layer list, the comparison, the legends and the inspector.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let presets = Composite::presets();
        let titles: Vec<String> = self.layers.iter().map(|l| l.layer.title.clone()).collect();
        ui.heading("Layers");
        let mut mode = self.mode();
        ui.horizontal(|ui| {
            ui.selectable_value(&mut mode, Mode::Single, "One map").on_hover_text("the ticked layers over each other");
            ui.selectable_value(&mut mode, Mode::SideBySide, "Side by side").on_hover_text("linked panes: pan or zoom one, all follow");
            ui.selectable_value(&mut mode, Mode::Swipe, "Swipe").on_hover_text("two layers either side of a divider");
        });
        self.set_mode(mode);
        let qa_button = ui.add_enabled(self.qa.is_some(), egui::Button::selectable(self.show_qa, "QA plots")).on_hover_text("histograms and density of synthetic against real t1, beside the map");
        if qa_button.clicked() {
            self.show_qa = !self.show_qa;
        }
        if let Some(e) = &self.qa_error {
            ui.colored_label(ui.visuals().error_fg_color, RichText::new(format!("QA plots: {e}")).small());
        } else if self.qa.is_none() {
            qa_button.on_disabled_hover_text("assess the run first (the Assess step)");
        }
        if let Some(s) = &mut self.swipe {
            egui::ComboBox::from_label("left").selected_text(titles[s.left].as_str()).show_ui(ui, |ui| {
                for (i, t) in titles.iter().enumerate() {
                    ui.selectable_value(&mut s.left, i, t.as_str());
                }
            });
            egui::ComboBox::from_label("right").selected_text(titles[s.right].as_str()).show_ui(ui, |ui| {
                for (i, t) in titles.iter().enumerate() {
                    ui.selectable_value(&mut s.right, i, t.as_str());
                }
            });
            let l = ui.label("divider");
            ui.add(egui::Slider::new(&mut s.at, 0.0..=1.0).show_value(false)).labelled_by(l.id);
        }
        if self.panes.is_some() {
            self.panes_ui(ui);
        }
        ui.separator();
        let (swipe, panes) = (self.swipe, self.panes.clone());
        let can_export = self.export.is_none();
        let mut export = None;
        for (i, ml) in self.layers.iter_mut().enumerate() {
            let shown = is_shown(swipe, panes.as_ref(), i, ml);
            ui.horizontal(|ui| {
                if swipe.is_none() && panes.is_none() {
                    if ui.checkbox(&mut ml.visible, "").on_hover_text("show on the map").changed() && ml.visible {
                        // Shown again: try reading it again.
                        ml.error = None;
                    }
                }
                ui.label(RichText::new(&ml.layer.title).strong()).on_hover_text(ml.layer.path.display().to_string());
            });
            if !shown {
                continue;
            }
            ui.indent(("layer", i), |ui| {
                let l = ui.label("opacity");
                ui.add(egui::Slider::new(&mut ml.opacity, 0.0..=1.0)).labelled_by(l.id);
                let before = (ml.composite, ml.custom.clone(), ml.percentile, ml.gamma);
                if ml.layer.kind == LayerKind::Optical {
                    let l = ui.label("bands");
                    egui::ComboBox::from_id_salt(("composite", i))
                        .selected_text(ml.composite().name)
                        .show_ui(ui, |ui| {
                            for (k, c) in presets.iter().enumerate() {
                                ui.selectable_value(&mut ml.composite, k, format!("{} ({})", c.name, c.bands.join(" ")));
                            }
                            ui.selectable_value(&mut ml.composite, CUSTOM, "your own bands");
                        })
                        .response
                        .labelled_by(l.id);
                    if ml.composite == CUSTOM {
                        ui.horizontal(|ui| {
                            let l = ui.label("R G B");
                            for (c, colour) in ["red", "green", "blue"].iter().enumerate() {
                                let current = ml.custom[c].clone();
                                egui::ComboBox::from_id_salt(("custom", i, c)).width(52.0).selected_text(current).show_ui(ui, |ui| {
                                    for b in &ml.bands {
                                        ui.selectable_value(&mut ml.custom[c], b.clone(), b.as_str());
                                    }
                                }).response.labelled_by(l.id).on_hover_text(*colour);
                            }
                        });
                    }
                }
                if ml.layer.kind == LayerKind::Difference {
                    let l = ui.label("band");
                    egui::ComboBox::from_id_salt(("difference-band", i))
                        .selected_text(ml.custom[0].as_str())
                        .show_ui(ui, |ui| {
                            for b in ml.bands.clone() {
                                if ui.selectable_label(ml.custom[0] == b, b.as_str()).clicked() {
                                    ml.custom = [b.clone(), b.clone(), b];
                                }
                            }
                        })
                        .response
                        .labelled_by(l.id);
                }
                if matches!(ml.layer.kind, LayerKind::Difference | LayerKind::Angle) {
                    ui.horizontal(|ui| {
                        ui.radio_value(&mut ml.percentile, true, "2-98 %");
                        ui.radio_value(&mut ml.percentile, false, "min-max");
                    });
                }
                if matches!(ml.layer.kind, LayerKind::Optical | LayerKind::Radar) {
                    ui.horizontal(|ui| {
                        ui.radio_value(&mut ml.percentile, true, "2-98 %");
                        ui.radio_value(&mut ml.percentile, false, "min-max");
                    });
                    let l = ui.label("gamma");
                    ui.add(egui::Slider::new(&mut ml.gamma, 0.3..=3.0)).labelled_by(l.id);
                }
                if before.0 != ml.composite || before.1 != ml.custom {
                    (ml.channels, ml.error) = (None, None);
                }
                if before != (ml.composite, ml.custom.clone(), ml.percentile, ml.gamma) {
                    ml.dirty = true;
                }
                legend_ui(ui, &ml.layer);
                if ui.add_enabled(can_export, egui::Button::new("Export…")).on_hover_text("as a COG (.tif), as displayed (.png with a world file), or the perimeter (.geojson)").clicked() {
                    let name = format!("{}.tif", ml.layer.id);
                    if let Some(out) = rfd::FileDialog::new().set_title("Export the layer").set_file_name(name).add_filter("GeoTIFF (COG)", &["tif"]).add_filter("PNG as displayed", &["png"]).save_file() {
                        let kind = if ml.percentile { StretchKind::Percentile(2.0, 98.0) } else { StretchKind::MinMax };
                        export = Some((ml.layer.clone(), out, ml.composite(), kind, ml.gamma));
                    }
                }
                if let Some(e) = &ml.error {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
            });
        }
        for p in &self.perimeters {
            if ui.add_enabled(can_export, egui::Button::new(format!("Export {}…", p.title.to_lowercase()))).on_hover_text("GeoJSON, WGS84").clicked()
                && let Some(out) = rfd::FileDialog::new().set_title("Export the perimeter").set_file_name(format!("{}.geojson", p.id)).add_filter("GeoJSON", &["geojson"]).save_file()
            {
                export = Some((p.clone(), out, presets[0].clone(), StretchKind::MinMax, 1.0));
            }
        }
        if let Some((layer, out, composite, stretch, gamma)) = export {
            self.start_export(layer, out, composite, stretch, gamma);
        }
        if ui.button("Save view as PNG…").on_hover_text("the map as shown, with its legend and scale bar").clicked()
            && let Some(out) = rfd::FileDialog::new().set_title("Save the map view").set_file_name("view.png").add_filter("PNG", &["png"]).save_file()
        {
            self.view_request = Some(out);
        }
        if let Some(done) = self.view_done.lock().ok().and_then(|mut d| d.take()) {
            self.succeeded(done);
        }
        if let Some(e) = self.view_failed.lock().ok().and_then(|mut d| d.take()) {
            self.failed("Saving the view failed", e);
        }
        if let Some(task) = &self.export {
            busy_ui(ui, task.what());
        }
        if let Some(n) = &self.notice {
            ui.label(RichText::new(n).small());
        }
        if let Some((what, e)) = &self.failure {
            ui.colored_label(ui.visuals().error_fg_color, RichText::new(format!("{what}: {}", crate::error_chain(e.as_ref()))).small());
        }
        ui.separator();
        inspector_ui(ui, self.inspected.as_ref());
    }

    /// The side-by-side controls: panes, one-click pairs, linked stretch, and which layers
    /// each pane shows (a tick per pane).
    pub(super) fn panes_ui(&mut self, ui: &mut egui::Ui) {
        let Some(count) = self.panes.as_ref().map(|p| p.stacks.len()) else { return };
        ui.horizontal(|ui| {
            for n in [2, 4] {
                if ui.selectable_label(count == n, format!("{n} panes")).clicked() && count != n {
                    let pair = self.current_pair().unwrap_or(Pair::Image);
                    if !self.set_pair(pair, n)
                        && let Some(p) = &mut self.panes
                    {
                        p.stacks.resize(n, Vec::new());
                    }
                }
            }
        });
        ui.horizontal_wrapped(|ui| {
            for pair in Pair::ALL {
                let available = pair.ids().iter().all(|id| self.find(id).is_some());
                let current = self.current_pair() == Some(pair);
                if ui.add_enabled(available, egui::Button::selectable(current, pair.label())).on_disabled_hover_text("this run has not got both layers yet").clicked() {
                    self.set_pair(pair, count);
                }
            }
        });
        let Some(panes) = &mut self.panes else { return };
        let relink = ui.checkbox(&mut panes.linked_stretch, "Link the stretch across panes").on_hover_text("optical layers with the same bands take the first pane's stretch; off: each layer its own").changed();
        // Each pane's layers, ticked in a menu of its own (bottom first, in the list's order).
        let titles: Vec<String> = self.layers.iter().map(|l| l.layer.title.clone()).collect();
        ui.horizontal_wrapped(|ui| {
            for (p, stack) in panes.stacks.iter_mut().enumerate() {
                ui.menu_button(format!("Pane {} layers", p + 1), |ui| {
                    for (i, title) in titles.iter().enumerate() {
                        let mut on = stack.contains(&i);
                        if ui.checkbox(&mut on, title.as_str()).changed() {
                            if on {
                                stack.push(i);
                                stack.sort_unstable();
                            } else {
                                stack.retain(|k| *k != i);
                            }
                        }
                    }
                })
                .response
                .on_hover_text(stack.iter().filter_map(|i| titles.get(*i)).cloned().collect::<Vec<_>>().join("\n"));
            }
        });
        if relink {
            for ml in &mut self.layers {
                ml.dirty = true;
            }
        }
    }
}
