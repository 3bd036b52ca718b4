//! The QA plots beside the map: per-band histograms of real and synthetic t1 overlaid, and a
//! density of synthetic against real with the 1:1 line and R², from the numbers the run's
//! assessment gathered (`assess::qa`, `qa.json`; read with the run's layers, on a worker thread).

use eframe::egui::{self, Color32, RichText};
use egui_plot::{Heatmap, Legend, Line, Plot, PlotPoint, PlotPoints};

use crate::assess::qa::{DENSITY_BINS, HIST_BINS, Qa};

/// What the QA panel shows.
#[derive(Debug, Clone, PartialEq)]
pub struct QaView {
    pub qa: Qa,
    /// The band shown (index into `qa.bands`).
    pub band: usize,
}

impl QaView {
    pub fn new(qa: Qa) -> QaView {
        // NIR first: the band the burn shows most in.
        let band = qa.bands.iter().position(|b| b.band == "B08").unwrap_or(0);
        QaView { qa, band }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("QA: synthetic vs real t1");
        ui.horizontal_wrapped(|ui| {
            for (i, b) in self.qa.bands.iter().enumerate() {
                ui.selectable_value(&mut self.band, i, b.band.as_str());
            }
        });
        let Some(b) = self.qa.bands.get(self.band) else {
            ui.label("No bands were compared.");
            return;
        };
        let [lo, hi] = self.qa.range;
        // Histograms as shares of the pixels, drawn as steps.
        let step = (hi - lo) as f64 / HIST_BINS as f64;
        let steps = |counts: &[u64]| -> Vec<[f64; 2]> {
            let total = counts.iter().sum::<u64>().max(1) as f64;
            let mut pts = Vec::with_capacity(counts.len() * 2);
            for (k, c) in counts.iter().enumerate() {
                let y = *c as f64 / total;
                pts.push([lo as f64 + step * k as f64, y]);
                pts.push([lo as f64 + step * (k + 1) as f64, y]);
            }
            pts
        };
        // Shown up to the last bin either image reaches.
        let last = b.hist_real.iter().zip(&b.hist_synthetic).rposition(|(r, s)| r + s > 0).map_or(HIST_BINS, |k| k + 1);
        let x_max = lo as f64 + step * last as f64;
        ui.label(RichText::new(format!("{} histogram, clear pixels", b.band)).strong());
        Plot::new(("qa-hist", self.band)).height(150.0).legend(Legend::default()).x_axis_label("reflectance").y_axis_label("share of pixels").include_x(0.0).include_x(x_max).allow_scroll(false).show(ui, |plot| {
            plot.line(Line::new("real", PlotPoints::from(steps(&b.hist_real))).color(Color32::from_rgb(0x1f, 0x77, 0xb4)));
            plot.line(Line::new("synthetic", PlotPoints::from(steps(&b.hist_synthetic))).color(Color32::from_rgb(0xff, 0x7f, 0x0e)));
        });
        ui.add_space(4.0);
        let r2 = if b.r2.is_finite() { format!("R² {:.3}", b.r2) } else { "R² –".into() };
        let bias = if b.bias.is_finite() { format!("bias {:+.4}", b.bias) } else { String::new() };
        ui.label(RichText::new(format!("{} density: {r2}, {bias}", b.band)).strong());
        ui.label(RichText::new(format!("{} {}", thousands(b.pixels), self.qa.density_pixels)).small());
        // The density's occupied corner, synthetic (rows) against real (columns).
        let n = DENSITY_BINS;
        let k_max = (0..n * n).filter(|k| b.density[*k] > 0).map(|k| (k / n).max(k % n)).max().map_or(n, |k| (k + 1).min(n));
        let tile = (hi - lo) / n as f32;
        let mut values = vec![0.0f64; k_max * k_max];
        for real in 0..k_max {
            for synth in 0..k_max {
                values[synth * k_max + real] = b.density[real * n + synth] as f64;
            }
        }
        let top = values.iter().cloned().fold(0.0f64, f64::max).max(1.0);
        let colour = move |v: f64| -> Color32 {
            if v <= 0.0 {
                return Color32::TRANSPARENT;
            }
            // Log counts on a dark-to-bright ramp.
            let t = ((1.0 + v).ln() / (1.0 + top).ln()) as f32;
            let [r, g, b] = crate::layers::angle_color(1.0 - t);
            Color32::from_rgb(r, g, b)
        };
        let side = lo as f64 + tile as f64 * k_max as f64;
        Plot::new(("qa-density", self.band)).height(260.0).data_aspect(1.0).x_axis_label("real").y_axis_label("synthetic").allow_scroll(false).show(ui, |plot| {
            plot.heatmap(Heatmap::new(values, k_max).show_labels(false).tile_size(tile, tile).at(PlotPoint::new(lo as f64, lo as f64)).custom_mapping(Box::new(colour)).name("pixels"));
            plot.line(Line::new("1:1", PlotPoints::from(vec![[lo as f64, lo as f64], [side, side]])).color(Color32::GRAY));
        });
        ui.separator();
        egui::Grid::new("qa-bands").striped(true).show(ui, |ui| {
            for h in ["band", "R²", "bias"] {
                ui.label(RichText::new(h).small().strong());
            }
            ui.end_row();
            for b in &self.qa.bands {
                ui.label(RichText::new(&b.band).small());
                ui.label(RichText::new(format!("{:.3}", b.r2)).small());
                ui.label(RichText::new(format!("{:+.4}", b.bias)).small());
                ui.end_row();
            }
        });
        ui.label(RichText::new("R² = 1 − Σ(synthetic − real)² / Σ(real − mean)²; the difference and spectral-angle layers are in the layer list.").small().weak());
    }
}

/// 12345678 as "12 345 678".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}
