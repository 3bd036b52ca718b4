//! What the layer panel and the map say about layers besides the layers themselves: the legends
//! of the colour ramps (in the panel and on the map). The pixel inspector's panel is
//! `layers::inspector`'s.

use eframe::egui::{self, Color32, Pos2, RichText};

use crate::layers::{Layer, LayerKind};

/// A legend box in the map's top-right corner; `scale` is the end of a difference's or an
/// angle's ramp (its stretch).
pub fn map_legend(painter: &egui::Painter, rect: egui::Rect, layer: &Layer, scale: Option<f32>) {
    let font = egui::FontId::proportional(11.0);
    let (w, line) = (170.0, 15.0);
    let kind = layer.kind;
    match kind {
        LayerKind::Severity | LayerKind::Source => {
            let classes = layer.classes();
            let h = line * (classes.len() as f32 + 1.0) + 8.0;
            let b = egui::Rect::from_min_size(Pos2::new(rect.right() - w - 10.0, rect.top() + 10.0), egui::vec2(w, h));
            painter.rect_filled(b, 3.0, Color32::from_white_alpha(215));
            let title = match (&layer.scheme, kind) {
                (_, LayerKind::Source) => "gap-filled from".to_string(),
                (Some(s), _) => format!("severity, {}", s.name),
                (None, _) => "dNBR severity".to_string(),
            };
            painter.text(b.min + egui::vec2(6.0, 4.0), egui::Align2::LEFT_TOP, title, font.clone(), Color32::BLACK);
            for (k, (_, [r, g, bl], name)) in classes.iter().enumerate() {
                let y = b.top() + 4.0 + line * (k as f32 + 1.0);
                painter.rect_filled(egui::Rect::from_min_size(Pos2::new(b.left() + 6.0, y + 2.0), egui::vec2(14.0, 10.0)), 0.0, Color32::from_rgb(*r, *g, *bl));
                painter.text(Pos2::new(b.left() + 26.0, y), egui::Align2::LEFT_TOP, name, font.clone(), Color32::BLACK);
            }
        }
        LayerKind::Dnbr => {
            let b = egui::Rect::from_min_size(Pos2::new(rect.right() - w - 10.0, rect.top() + 10.0), egui::vec2(w, 46.0));
            painter.rect_filled(b, 3.0, Color32::from_white_alpha(215));
            painter.text(b.min + egui::vec2(6.0, 4.0), egui::Align2::LEFT_TOP, "dNBR", font.clone(), Color32::BLACK);
            let bar = egui::Rect::from_min_size(b.min + egui::vec2(6.0, 20.0), egui::vec2(w - 12.0, 10.0));
            let steps = 50;
            for k in 0..steps {
                let v = -0.5 + 1.5 * k as f32 / (steps - 1) as f32;
                let [r, g, bl] = crate::assess::report::dnbr_color(v);
                let x0 = bar.left() + bar.width() * k as f32 / steps as f32;
                painter.rect_filled(egui::Rect::from_min_max(Pos2::new(x0, bar.top()), Pos2::new(x0 + bar.width() / steps as f32 + 0.5, bar.bottom())), 0.0, Color32::from_rgb(r, g, bl));
            }
            for (v, align) in [(-0.5f32, egui::Align2::LEFT_TOP), (0.0, egui::Align2::CENTER_TOP), (1.0, egui::Align2::RIGHT_TOP)] {
                let x = bar.left() + bar.width() * (v + 0.5) / 1.5;
                painter.text(Pos2::new(x, bar.bottom() + 1.0), align, format!("{v}"), font.clone(), Color32::BLACK);
            }
        }
        LayerKind::Difference | LayerKind::Angle => {
            // Its numbers come from the layer's stretch: none before it is drawn.
            let Some(s) = scale.filter(|s| s.is_finite()) else { return };
            let (title, labels) = match kind {
                LayerKind::Difference => ("synthetic − real", [format!("{:.3}", -s), "0".to_string(), format!("+{s:.3}")]),
                _ => ("spectral angle (°)", ["0".to_string(), format!("{:.1}", s / 2.0), format!("{s:.1}")]),
            };
            let b = egui::Rect::from_min_size(Pos2::new(rect.right() - w - 10.0, rect.top() + 10.0), egui::vec2(w, 46.0));
            painter.rect_filled(b, 3.0, Color32::from_white_alpha(215));
            painter.text(b.min + egui::vec2(6.0, 4.0), egui::Align2::LEFT_TOP, title, font.clone(), Color32::BLACK);
            let bar = egui::Rect::from_min_size(b.min + egui::vec2(6.0, 20.0), egui::vec2(w - 12.0, 10.0));
            ramp(painter, bar, kind);
            for (label, (t, align)) in labels.iter().zip([(0.0f32, egui::Align2::LEFT_TOP), (0.5, egui::Align2::CENTER_TOP), (1.0, egui::Align2::RIGHT_TOP)]) {
                painter.text(Pos2::new(bar.left() + bar.width() * t, bar.bottom() + 1.0), align, label, font.clone(), Color32::BLACK);
            }
        }
        _ => {}
    }
}

/// A difference's or an angle's ramp across `bar`.
fn ramp(painter: &egui::Painter, bar: egui::Rect, kind: LayerKind) {
    let steps = 50;
    for k in 0..steps {
        let t = k as f32 / (steps - 1) as f32;
        let [r, g, b] = if kind == LayerKind::Difference { crate::layers::diverging_color(2.0 * t - 1.0) } else { crate::layers::angle_color(t) };
        let x0 = bar.left() + bar.width() * k as f32 / steps as f32;
        painter.rect_filled(egui::Rect::from_min_max(Pos2::new(x0, bar.top()), Pos2::new(x0 + bar.width() / steps as f32 + 0.5, bar.bottom())), 0.0, Color32::from_rgb(r, g, b));
    }
}

pub fn legend_ui(ui: &mut egui::Ui, layer: &Layer) {
    let kind = layer.kind;
    match kind {
        LayerKind::Severity | LayerKind::Source => {
            for (_, [r, g, b], name) in layer.classes() {
                ui.horizontal(|ui| {
                    let (rect, _) = ui.allocate_exact_size(egui::vec2(14.0, 10.0), egui::Sense::hover());
                    ui.painter().rect_filled(rect, 0.0, Color32::from_rgb(r, g, b));
                    ui.label(RichText::new(name).small());
                });
            }
        }
        LayerKind::Dnbr => {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(180.0, 12.0), egui::Sense::hover());
            let steps = 60;
            for k in 0..steps {
                let v = -0.5 + 1.5 * k as f32 / (steps - 1) as f32;
                let [r, g, b] = crate::assess::report::dnbr_color(v);
                let x0 = rect.left() + rect.width() * k as f32 / steps as f32;
                ui.painter().rect_filled(egui::Rect::from_min_max(Pos2::new(x0, rect.top()), Pos2::new(x0 + rect.width() / steps as f32 + 0.5, rect.bottom())), 0.0, Color32::from_rgb(r, g, b));
            }
            ui.label(RichText::new("dNBR -0.5 … 0 … 1.0").small());
        }
        LayerKind::Difference | LayerKind::Angle => {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(180.0, 12.0), egui::Sense::hover());
            ramp(ui.painter(), rect, kind);
            let text = if kind == LayerKind::Difference { "blue: synthetic lower, red: higher; symmetric about 0 over the stretch" } else { "0° (same spectral shape) … the stretch's high end" };
            ui.label(RichText::new(text).small());
        }
        _ => {}
    }
}
