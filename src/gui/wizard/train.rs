//! The Train and Synthesize steps: the run's name and device, the model and training settings
//! (fine-tuning included), the synthesis's uncertainty passes; the training-time estimate, the
//! loss curves and the training preview.

use std::sync::Arc;

use eframe::egui::{self, RichText};

use super::{EstimateFor, LogLine, Wizard, load_png};
use crate::error::Error;
use crate::job::LogLevel;
use crate::model::config::{ModelConfig, TrainConfig};
use crate::pipeline::PipelineSettings;
use crate::project::{Project, RunName, Stage};

/// The weight of each spectral loss when the Train step turns them on (that of the L1 term).
const SPECTRAL_WEIGHT: f64 = 100.0;

/// The steps' rows of the settings grid; true when the run changed.
pub(super) fn settings(ui: &mut egui::Ui, s: &mut PipelineSettings, run_edit: &mut Option<(String, Error)>, stage: Stage, running: bool, project_train: Option<&TrainConfig>, project: &Project) -> bool {
    let mut run_changed = false;
    let l = ui.label("Run name");
    // The text as typed while it is not a valid name; else the settings' run.
    let mut text = match run_edit {
        Some((t, _)) => t.clone(),
        None => s.run.to_string(),
    };
    if ui.add_enabled(!running, egui::TextEdit::singleline(&mut text).hint_text(RunName::DEFAULT)).labelled_by(l.id).changed() {
        match text.parse::<RunName>() {
            Ok(name) => {
                *run_edit = None;
                run_changed = name != s.run;
                s.run = name;
            }
            Err(e) => *run_edit = Some((text, e)),
        }
    }
    ui.end_row();
    let l = ui.label("Device");
    egui::ComboBox::from_id_salt("device")
        .selected_text(format!("{:?}", s.device))
        .show_ui(ui, |ui| {
            for d in crate::model::DeviceChoice::available() {
                ui.selectable_value(&mut s.device, d, format!("{d:?}"));
            }
        })
        .response
        .labelled_by(l.id);
    ui.end_row();
    if stage == Stage::Infer {
        let l = ui.label("Uncertainty passes");
        ui.add_enabled(!running, egui::DragValue::new(&mut s.infer.samples).range(0..=crate::model::infer::MAX_SAMPLES))
            .on_hover_text("Monte-Carlo dropout: passes per window (0 = off). The image is then their mean, with the standard deviation and the burn probability beside it; takes that many times as long")
            .labelled_by(l.id);
        ui.end_row();
    }
    if stage == Stage::Train {
        let mut small = s.model.as_ref().is_some_and(|m| m.ngf <= 16);
        let label = match &s.model {
            Some(m) if small => format!("small (ngf {}, depth {}: CPU-friendly)", m.ngf, m.depth),
            _ => "small (ngf 16, depth 6: CPU-friendly)".to_string(),
        };
        ui.label("Model");
        if ui.checkbox(&mut small, label).changed() {
            let (output, uncertainty, upsample) = s.model.as_ref().map(|m| (m.output, m.uncertainty, m.upsample)).unwrap_or_default();
            s.model = small.then(|| crate::model::config::ModelConfig { output, uncertainty, upsample, ..crate::model::config::ModelConfig::small() });
        }
        ui.end_row();
        // model.yaml's switches: the image (pix2pix) or its change from S2 t0, the upsampling,
        // the generator's own uncertainty.
        use crate::model::config::{GeneratorOutput, UncertaintyHead, Upsample};
        model_switch(ui, s, project, running, "Output", "the change from the pre-fire image (residual)",
            "The generator predicts t1 - t0 and adds it to S2 t0: pre-fire texture survives and the network spends itself on what the radar says changed. Off: pix2pix's whole image. Needs S2 t0 among the inputs for every output band",
            |m| m.output == GeneratorOutput::Residual, |m, on| m.output = if on { GeneratorOutput::Residual } else { GeneratorOutput::Direct });
        model_switch(ui, s, project, running, "Upsampling", "resize, then a 3x3 convolution (no checkerboard)",
            "The decoder doubles its size by repeating pixels and convolving 3x3, instead of pix2pix's 4x4 transposed convolutions whose uneven overlaps draw a checkerboard into the image. Slower on the CPU",
            |m| m.upsample == Upsample::ResizeConv, |m, on| m.upsample = if on { Upsample::ResizeConv } else { Upsample::Transposed });
        model_switch(ui, s, project, running, "Uncertainty", "the generator predicts its own (aleatoric)",
            "A second head predicts each pixel's error scale (Laplace), trained by the likelihood instead of L1; inference then writes the uncertainty without extra passes, and Monte-Carlo passes add theirs to it",
            |m| m.uncertainty == UncertaintyHead::Aleatoric, |m, on| m.uncertainty = if on { UncertaintyHead::Aleatoric } else { UncertaintyHead::None });
        let train = s.train.get_or_insert_with(|| project_train.cloned().unwrap_or_default());
        let l = ui.label("Steps (0 = by epochs)");
        ui.add(egui::DragValue::new(&mut train.max_steps).range(0..=1_000_000)).labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Batch size");
        ui.add(egui::DragValue::new(&mut train.batch_size).range(1..=64)).labelled_by(l.id);
        ui.end_row();
        // train.yaml's nbr_weight, ndvi_weight and sam_weight, on or off together here.
        let mut spectral = train.nbr_weight > 0.0 || train.ndvi_weight > 0.0 || train.sam_weight > 0.0;
        ui.label("Losses");
        let text = if spectral && (train.nbr_weight, train.ndvi_weight, train.sam_weight) != (SPECTRAL_WEIGHT, SPECTRAL_WEIGHT, SPECTRAL_WEIGHT) {
            format!("NBR {}, NDVI {}, spectral angle {} (from train.yaml)", train.nbr_weight, train.ndvi_weight, train.sam_weight)
        } else {
            format!("also NBR, NDVI and spectral angle (weights {SPECTRAL_WEIGHT})")
        };
        if ui
            .add_enabled(!running, egui::Checkbox::new(&mut spectral, text))
            .on_hover_text("Besides L1 and the adversarial loss, train on what the analyst reads: the L1 of the synthetic NBR and NDVI against the real ones and the spectral angle, in reflectance on the label's clear pixels (train.yaml nbr_weight, ndvi_weight, sam_weight). Needs B08 or B8A, B12 and B04 among the outputs")
            .changed()
        {
            let w = if spectral { SPECTRAL_WEIGHT } else { 0.0 };
            (train.nbr_weight, train.ndvi_weight, train.sam_weight) = (w, w, w);
        }
        ui.end_row();
        // Fine-tuning: the weights a new run starts from (train.yaml's init_from).
        ui.label("Start from");
        ui.horizontal(|ui| match train.init_from.clone() {
            Some(from) => {
                let name = from.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| from.display().to_string());
                ui.label(name).on_hover_text(from.display().to_string());
                if ui.small_button("use random weights").on_hover_text("Train from random weights instead").clicked() {
                    train.init_from = None;
                }
            }
            None => {
                ui.label(RichText::new("random weights").weak());
            }
        });
        ui.end_row();
        ui.label("");
        ui.horizontal(|ui| {
            if ui.add_enabled(!running, egui::Button::new("Start from a trained model…")).on_hover_text("pix2pix's latest_net_G.pth or a .safetensors generator").clicked()
                && let Some(f) = rfd::FileDialog::new().set_title("Start from a trained model").add_filter("Generator weights", &["pth", "safetensors"]).pick_file()
            {
                train.init_from = Some(f);
            }
            if ui.add_enabled(!running, egui::Button::new("…or a run")).on_hover_text("A run folder (runs/<run>) of this or another project").clicked()
                && let Some(d) = rfd::FileDialog::new().set_title("Start from a trained run (its folder under runs/)").set_directory(project.runs_dir()).pick_folder()
            {
                train.init_from = Some(d);
            }
        });
        ui.end_row();
        if train.init_from.is_some() {
            ui.label("Channels");
            ui.checkbox(&mut train.adapt_channels, "where they differ, start the first or last layer afresh");
            ui.end_row();
        }
    }
    run_changed
}

/// A model.yaml switch as a row of the settings grid: on or off as the edited model (else the
/// project's) has it; a change edits the model with `set`.
#[allow(clippy::too_many_arguments)]
fn model_switch(ui: &mut egui::Ui, s: &mut PipelineSettings, project: &Project, running: bool, row: &str, text: &str, hover: &str, get: fn(&ModelConfig) -> bool, set: fn(&mut ModelConfig, bool)) {
    let mut on = s.model.as_ref().map(get).or_else(|| s.model_config(project).ok().map(|m| get(&m))).unwrap_or(false);
    ui.label(row);
    if ui.add_enabled(!running, egui::Checkbox::new(&mut on, text)).on_hover_text(hover).changed() {
        let base = s.model_config(project).unwrap_or_default();
        set(s.model.get_or_insert(base), on);
    }
    ui.end_row();
}

impl Wizard {
    /// Says how long training with the current settings will take: the kept measurement for
    /// them when there is one (unless `again`), else a few steps measured on a worker thread.
    pub fn start_estimate(&mut self, project: &Project, again: bool) {
        let key = EstimateFor::of(&self.settings);
        let opts = match crate::pipeline::train_options(project, &self.settings) {
            Ok(o) => o,
            Err(e) => {
                self.estimate = Some((key, Err(Arc::new(e))));
                return;
            }
        };
        if !again && let Some(e) = crate::model::estimate::last_estimate(project, &opts) {
            self.estimate = Some((key, Ok(e)));
            return;
        }
        let project = project.clone();
        match crate::gui::background::Task::spawn("estimate", "Measuring a few training steps…", move |p| crate::model::estimate::estimate(&project, &opts, crate::model::estimate::MEASURED_STEPS, p)) {
            Ok(task) => (self.estimating, self.estimate) = (Some((key, task)), None),
            Err(e) => self.estimate = Some((key, Err(Arc::new(e)))),
        }
    }

    /// Takes a finished measurement (with `wait`, waits for it).
    pub fn poll_estimate(&mut self, wait: bool) {
        let Some((key, task)) = self.estimating.take() else { return };
        let mut slot = Some(task);
        let done = if wait { crate::gui::background::wait(&mut slot) } else { crate::gui::background::take_finished(&mut slot) };
        match (done, slot) {
            // Shown for the settings it was measured with.
            (Some(result), _) => self.estimate = Some((key, result.map_err(Arc::new))),
            (None, Some(task)) => self.estimating = Some((key, task)),
            (None, None) => {}
        }
    }

    /// The Train step's estimate: a button, the measurement in flight, or the answer.
    pub(super) fn estimate_ui(&mut self, ui: &mut egui::Ui, project: &Project) {
        let current = EstimateFor::of(&self.settings);
        let shown = self.estimate.as_ref().filter(|(k, _)| *k == current).map(|(_, r)| r.clone());
        let free = self.job.is_none() && self.estimating.is_none();
        ui.horizontal(|ui| {
            let label = if shown.is_some() { "Measure again" } else { "Estimate time" };
            if ui.add_enabled(free, egui::Button::new(label)).on_hover_text("runs a few steps of this run on the chosen device (the first ones, which warm up, apart), one checkpoint and one validation; the run itself is not touched").clicked() {
                self.start_estimate(project, shown.is_some());
            }
            if let Some((_, task)) = &self.estimating {
                crate::gui::background::busy_ui(ui, task.what());
            }
        });
        match shown {
            Some(Ok(e)) => {
                ui.label(RichText::new(format!("Estimated: {}", e.summary())).strong())
                    .on_hover_text(format!("measured {} ({} steps after {} warm-up steps; set-up {:.1} s; {} checkpoints at {:.2} s, {} validations at {:.2} s)", e.measured_at.format("%Y-%m-%d %H:%M UTC"), e.measured_steps, crate::model::estimate::WARM_UP_STEPS, e.setup_s, e.checkpoints, e.checkpoint_s, e.validations, e.validation_s));
            }
            Some(Err(err)) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("No estimate: {}", crate::error_chain(err.as_ref())));
            }
            None => {}
        }
    }

    /// The latest training preview of the run, reloaded when training reports a new one.
    pub(super) fn preview_ui(&mut self, ui: &mut egui::Ui, project: &Project) {
        let path = project.preview_png(self.settings.run_name());
        if let Some(step) = self.preview_pending.take() {
            match load_png(&path) {
                Ok(image) => self.preview = Some((ui.ctx().load_texture("training-preview", image, egui::TextureOptions::NEAREST), step)),
                Err(e) => self.log.push(LogLine { level: LogLevel::Warn, stage: "train".into(), text: crate::error_chain(&e) }),
            }
        }
        if let Some((texture, step)) = &self.preview {
            let caption = if *step > 0 { format!("Real | synthetic (true colour), step {step}") } else { "Real | synthetic (true colour), last run".to_string() };
            ui.label(caption);
            let size = texture.size_vec2();
            let width = ui.available_width().min(size.x * 2.0);
            ui.image((texture.id(), egui::vec2(width, width * size.y / size.x)));
        }
    }

    pub(super) fn curves_ui(&self, ui: &mut egui::Ui) {
        if self.curves.series.is_empty() {
            return;
        }
        ui.label("Losses");
        egui_plot::Plot::new("losses").height(160.0).legend(egui_plot::Legend::default()).allow_scroll(false).show(ui, |plot| {
            for (name, points) in &self.curves.series {
                plot.line(egui_plot::Line::new(name.clone(), egui_plot::PlotPoints::from(points.clone())));
            }
        });
    }
}
