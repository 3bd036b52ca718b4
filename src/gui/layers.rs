//! The project's rasters on the map: each layer drawn at its true position (a mesh whose
//! vertices are projected from the layer's own CRS, so a UTM grid sits right on the Web Mercator
//! map), with opacity, band composite and stretch for Sentinel-2, colour ramps and legends for
//! dNBR and severity; a swipe comparison of two layers; and the pixel inspector (its panel and
//! the legends are drawn by `legend`).
//!
//! A layer is read once at display size (at most [`PREVIEW_SIDE`] px a side, from overviews
//! when the file has them). With the wgpu renderer its channels go to the GPU once and the WGSL
//! shader stretches them every frame (a stretch change is a uniform); otherwise it is coloured
//! on the CPU ([`crate::layers::Channels::rgba`], the reference) when its stretch changes.
//!
//! Finding a run's layers ([`LayerSet::scan`]) and exporting one run on worker threads.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use eframe::egui::{self, Color32, Pos2, RichText, Stroke, TextureHandle};
use walkers::{Projector, lon_lat};

use super::background::{Task, busy_ui, take_finished};
use super::legend::{inspector_ui, legend_ui, map_legend};
use crate::error::Error;
use crate::layers::{Channels, Composite, Exported, Layer, LayerKind, Stretch, StretchKind, project_layers};
use crate::project::{Project, RunName};

/// Largest side of a layer's display image, pixels.
pub const PREVIEW_SIDE: usize = 1024;
/// Mesh cells a side: enough for the curvature of a UTM grid on Web Mercator.
pub const MESH: usize = 16;
/// [`MapLayer::composite`] of the user's own bands.
pub const CUSTOM: usize = 3;

/// One layer and how it is shown.
pub struct MapLayer {
    pub layer: Layer,
    pub visible: bool,
    pub opacity: f32,
    /// Index into [`Composite::presets`], or [`CUSTOM`] for `custom`.
    pub composite: usize,
    /// The user's own red, green and blue bands.
    pub custom: [String; 3],
    /// The file's band names (for the custom composite).
    pub bands: Vec<String>,
    pub percentile: bool,
    pub gamma: f32,
    channels: Option<std::sync::Arc<Channels>>,
    /// Bumped whenever `channels` is read again (the GPU copy follows it).
    generation: u64,
    /// The stretch the texture was coloured with.
    used: Option<Stretch>,
    texture: Option<TextureHandle>,
    dirty: bool,
    /// Lon/lat of the mesh vertices, (MESH + 1)^2, row-major from the top-left corner.
    mesh: Vec<[f64; 2]>,
    /// Lon/lat to the layer's CRS, and the file's geotransform and size: for the inspector,
    /// made on first use (not on every mouse move).
    to_pixel: Option<(gdal::spatial_ref::CoordTransform, [f64; 6], usize, usize)>,
    pub error: Option<String>,
}

/// A swipe comparison: `left` shown left of the divider, `right` on its right.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Swipe {
    pub left: usize,
    pub right: usize,
    /// Divider position across the map, 0..1.
    pub at: f32,
}

/// Linked side-by-side panes: each its own stack of layers, all over one centre and zoom (the
/// map's panes, `map::MapView::ui_panes`).
#[derive(Debug, Clone, PartialEq)]
pub struct Panes {
    /// Each pane's layers, bottom first (indices into [`LayerPanel::layers`]).
    pub stacks: Vec<Vec<usize>>,
    /// Optical layers showing the same bands take the first pane's stretch, so that a
    /// difference in colour between panes is a difference in the data.
    pub linked_stretch: bool,
}

/// The comparisons one click sets up in the panes: real against synthetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    /// Sentinel-2 t1, real | synthetic.
    Image,
    /// dNBR, real | synthetic.
    Dnbr,
    /// Burn severity, real | synthetic.
    Severity,
}

impl Pair {
    pub const ALL: [Pair; 3] = [Pair::Image, Pair::Dnbr, Pair::Severity];

    /// The layer ids of the pair, real first.
    pub fn ids(self) -> [&'static str; 2] {
        match self {
            Pair::Image => ["real", "synthetic"],
            Pair::Dnbr => ["dnbr-real", "dnbr-synthetic"],
            Pair::Severity => ["severity-real", "severity-synthetic"],
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Pair::Image => "t1 real | synthetic",
            Pair::Dnbr => "dNBR real | synthetic",
            Pair::Severity => "severity real | synthetic",
        }
    }

    fn next(self) -> Pair {
        match self {
            Pair::Image => Pair::Dnbr,
            Pair::Dnbr => Pair::Severity,
            Pair::Severity => Pair::Image,
        }
    }
}

/// How the layers are laid out on the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One map, the ticked layers over each other.
    Single,
    /// Two layers either side of a divider.
    Swipe,
    /// Linked panes side by side.
    SideBySide,
}

/// What the cursor is over: lon/lat and each layer's values there.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inspected {
    pub lon: f64,
    pub lat: f64,
    /// (layer title, kind, band names, values) of the layers with data there; side by side,
    /// those of each pane's layers, pane by pane, the title starting "pane N: ".
    pub values: Vec<(String, LayerKind, Vec<String>, Vec<f32>)>,
}

#[derive(Default)]
pub struct LayerPanel {
    pub layers: Vec<MapLayer>,
    /// Burned-area perimeters (GeoJSON), offered for export.
    pub perimeters: Vec<Layer>,
    pub swipe: Option<Swipe>,
    /// Side by side (when set, `swipe` is not).
    pub panes: Option<Panes>,
    /// The QA plots of the run (when assessed), and whether they are shown beside the map.
    pub qa: Option<super::qa::QaView>,
    pub qa_error: Option<String>,
    pub show_qa: bool,
    pub inspected: Option<Inspected>,
    /// The last export's (or view's) outcome when it succeeded.
    pub notice: Option<String>,
    /// The last export's (or view's) failure: what failed, and why.
    pub failure: Option<(&'static str, Arc<Error>)>,
    /// The export being written on a worker thread.
    pub export: Option<Task<Exported>>,
    /// A PNG of the map view to write at the end of this frame (legend and scale bar included).
    pub view_request: Option<PathBuf>,
    /// The outcome of the last view PNG, written by the renderer's thread: what was saved...
    pub view_done: Arc<Mutex<Option<String>>>,
    /// ...or why it was not.
    pub view_failed: Arc<Mutex<Option<Error>>>,
    run: RunName,
    /// Set when the window draws with wgpu: layers are then stretched by the WGSL shader
    /// (`stretch_gpu`), else coloured on the CPU.
    pub gpu: bool,
}

/// A run's layers as found on disk, each raster with its Sentinel-2 band names: read on a
/// worker thread, shown by [`LayerPanel::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSet {
    pub run: RunName,
    pub rasters: Vec<(Layer, Vec<String>)>,
    /// Burned-area perimeters, for export only.
    pub perimeters: Vec<Layer>,
    /// The QA plots' numbers of the run's assessment: none before an assessment, or why they
    /// could not be read.
    pub qa: Option<std::result::Result<crate::assess::qa::Qa, String>>,
}

impl LayerSet {
    /// The layers of a project's run and their files' bands (the files are opened).
    pub fn scan(project: &Project, run: &RunName) -> LayerSet {
        let (perimeters, rasters): (Vec<Layer>, Vec<Layer>) = project_layers(project, run).into_iter().partition(|l| l.kind == LayerKind::Perimeter);
        let rasters = rasters
            .into_iter()
            .map(|layer| {
                let bands: Vec<String> = crate::raster::info(&layer.path.display().to_string()).map(|i| i.bands.iter().map(|b| b.description.clone()).filter(|d| d.starts_with('B')).collect()).unwrap_or_default();
                (layer, bands)
            })
            .collect();
        let qa_path = project.assess_dir(run).join(crate::assess::files::QA_JSON);
        let qa = qa_path.is_file().then(|| {
            let qa: crate::assess::qa::Qa = crate::fsutil::load_json(&qa_path, "assess the run again").map_err(|e| crate::error_chain(&e))?;
            qa.check().map_err(|m| format!("{}: {m}; assess the run again", qa_path.display()))?;
            Ok(qa)
        });
        LayerSet { run: run.clone(), rasters, perimeters, qa }
    }
}

impl LayerPanel {
    /// A panel showing a run's layers: real against synthetic t1 when both are there.
    pub fn new(set: LayerSet) -> LayerPanel {
        let custom = ["B12", "B8A", "B04"].map(String::from);
        let layers: Vec<MapLayer> = set
            .rasters
            .into_iter()
            .map(|(layer, bands)| {
                let mut ml = MapLayer { layer, bands, custom: custom.clone(), visible: false, opacity: 1.0, composite: 0, percentile: true, gamma: 1.0, channels: None, generation: 0, used: None, texture: None, dirty: true, mesh: Vec::new(), to_pixel: None, error: None };
                if ml.layer.kind == LayerKind::Difference {
                    // One band at a time, named as Sentinel-2 names it; NIR first.
                    ml.bands = ml.bands.iter().map(|b| b.trim_end_matches(" difference").to_string()).collect();
                    let band = ml.bands.iter().find(|b| *b == "B08").or(ml.bands.first()).cloned().unwrap_or_else(|| "B08".into());
                    (ml.composite, ml.custom) = (CUSTOM, [band.clone(), band.clone(), band]);
                }
                ml
            })
            .collect();
        let (qa, qa_error) = match set.qa {
            Some(Ok(qa)) => (Some(super::qa::QaView::new(qa)), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let mut panel = LayerPanel { layers, perimeters: set.perimeters, run: set.run, qa, qa_error, ..Default::default() };
        // The comparison users come for: real against synthetic t1, side by side.
        if !panel.set_pair(Pair::Image, 2)
            && let Some(first) = panel.layers.last_mut()
        {
            first.visible = true;
        }
        panel
    }

    /// The index of the layer with this id.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.layer.id == id)
    }

    pub fn mode(&self) -> Mode {
        match (&self.swipe, &self.panes) {
            (Some(_), _) => Mode::Swipe,
            (None, Some(_)) => Mode::SideBySide,
            (None, None) => Mode::Single,
        }
    }

    /// Switches the layout; side by side starts on real | synthetic t1 when the run has them
    /// (else the first layers), a swipe on the first two layers.
    pub fn set_mode(&mut self, mode: Mode) {
        if mode == self.mode() {
            return;
        }
        let linked = self.panes.as_ref().is_none_or(|p| p.linked_stretch);
        (self.swipe, self.panes) = (None, None);
        // A stretch shared in the last layout is not kept in the next.
        for ml in &mut self.layers {
            ml.dirty = true;
        }
        match mode {
            Mode::Single => {}
            Mode::Swipe if self.layers.len() >= 2 => {
                let (left, right) = match (self.find("real"), self.find("synthetic")) {
                    (Some(a), Some(b)) => (a, b),
                    _ => (0, 1),
                };
                self.swipe = Some(Swipe { left, right, at: 0.5 });
            }
            Mode::Swipe => {}
            Mode::SideBySide => {
                if !self.set_pair(Pair::Image, 2) {
                    let stacks = (0..2).map(|i| self.layers.len().checked_sub(1).map(|last| vec![i.min(last)]).unwrap_or_default()).collect();
                    self.panes = Some(Panes { stacks, linked_stretch: linked });
                }
                if let Some(p) = &mut self.panes {
                    p.linked_stretch = linked;
                }
            }
        }
    }

    /// Side by side with `count` panes (2 or 4) on a pair: the first two panes show it, the
    /// other two the next pair. False (nothing changed) when the run lacks the pair's layers.
    pub fn set_pair(&mut self, pair: Pair, count: usize) -> bool {
        let ids = |p: Pair| -> Option<[usize; 2]> {
            let [a, b] = p.ids();
            Some([self.find(a)?, self.find(b)?])
        };
        let Some(first) = ids(pair) else { return false };
        let mut stacks = vec![vec![first[0]], vec![first[1]]];
        if count >= 4 {
            // The next pair the run has, else the first one again.
            let second = [pair.next(), pair.next().next()].into_iter().find_map(ids).unwrap_or(first);
            stacks.extend([vec![second[0]], vec![second[1]]]);
        }
        let linked_stretch = self.panes.as_ref().is_none_or(|p| p.linked_stretch);
        self.swipe = None;
        self.panes = Some(Panes { stacks, linked_stretch });
        true
    }

    /// How many map panes are drawn.
    pub fn pane_count(&self) -> usize {
        self.panes.as_ref().map_or(1, |p| p.stacks.len().max(1))
    }

    pub fn run(&self) -> &RunName {
        &self.run
    }

    /// Replaces the shown layers by another panel's, keeping the export and view in flight
    /// and how layers are drawn.
    pub fn replace(&mut self, new: LayerPanel) {
        let (export, gpu) = (self.export.take(), self.gpu);
        let (view_done, view_failed) = (self.view_done.clone(), self.view_failed.clone());
        *self = LayerPanel { export, gpu, view_done, view_failed, ..new };
    }

    /// Takes a finished export's outcome.
    pub fn poll(&mut self) {
        if let Some(result) = take_finished(&mut self.export) {
            self.exported(result);
        }
    }

    /// Waits for an export in flight.
    pub fn wait_for_export(&mut self) {
        if let Some(result) = super::background::wait(&mut self.export) {
            self.exported(result);
        }
    }

    fn exported(&mut self, result: crate::Result<Exported>) {
        match result {
            Ok(done) => self.succeeded(format!("Exported {}: {}", done.path.display(), done.what)),
            Err(e) => self.failed("Export failed", e),
        }
    }

    fn succeeded(&mut self, text: String) {
        (self.notice, self.failure) = (Some(text), None);
    }

    fn failed(&mut self, what: &'static str, error: Error) {
        (self.notice, self.failure) = (None, Some((what, Arc::new(error))));
    }

    /// Writes a layer on a worker thread (see [`crate::layers::export`]).
    fn start_export(&mut self, layer: Layer, out: PathBuf, composite: Composite, stretch: StretchKind, gamma: f32) {
        let what = format!("Exporting {}…", out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
        match Task::spawn("export", what, move |_| crate::layers::export(&layer, &out, &composite, stretch, gamma)) {
            Ok(task) => self.export = Some(task),
            Err(e) => self.failed("Export failed", e),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

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
                legend_ui(ui, ml.layer.kind);
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
    fn panes_ui(&mut self, ui: &mut egui::Ui) {
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

    /// The pair the first two panes show, if they show one.
    pub fn current_pair(&self) -> Option<Pair> {
        let p = self.panes.as_ref()?;
        Pair::ALL.into_iter().find(|pair| {
            let [a, b] = pair.ids();
            p.stacks.len() >= 2 && p.stacks[0] == self.find(a).into_iter().collect::<Vec<_>>() && p.stacks[1] == self.find(b).into_iter().collect::<Vec<_>>()
        })
    }

    /// Draws the shown layers on the map (under the AOI and footprints): pane `pane`'s stack
    /// side by side, else the swipe or the ticked layers.
    pub fn draw(&mut self, ctx: &egui::Context, pane: usize, painter: &egui::Painter, projector: &Projector) {
        let gpu = self.gpu;
        let rect = painter.clip_rect();
        if let Some(panes) = &self.panes {
            let stack = panes.stacks.get(pane).cloned().unwrap_or_default();
            // The first pane's first optical layer sets the stretch of the others' optical
            // layers with the same bands.
            let reference = panes.linked_stretch.then(|| panes.stacks.first().and_then(|s| s.iter().copied().find(|i| self.layers.get(*i).is_some_and(|l| l.layer.kind == LayerKind::Optical)))).flatten();
            let shared = reference.and_then(|r| {
                let ml = self.layers.get_mut(r)?;
                // Read (and stretched) first, whichever pane is drawn first.
                ml.ensure_image(ctx, None, gpu && matches!(ml.layer.kind, LayerKind::Optical | LayerKind::Radar));
                Some((ml.composite().bands, ml.used?))
            });
            for i in &stack {
                let Some(ml) = self.layers.get_mut(*i) else { continue };
                let share = shared.as_ref().filter(|(bands, _)| Some(*i) != reference && ml.layer.kind == LayerKind::Optical && ml.composite().bands == *bands).map(|(_, s)| *s);
                ml.draw(ctx, pane, painter, projector, share, gpu);
            }
            if let Some(ml) = stack.iter().rev().filter_map(|i| self.layers.get(*i)).find(|l| l.has_ramp() && l.error.is_none()) {
                // Below the pane's title.
                map_legend(painter, rect.with_min_y(rect.top() + 24.0), ml.layer.kind, ml.ramp_scale());
            }
            let title = stack.last().and_then(|i| self.layers.get(*i)).map(|l| l.layer.title.clone()).unwrap_or_else(|| "no layer ticked for this pane".into());
            pane_title(painter, rect, &format!("{}  {title}", pane + 1));
            return;
        }
        match self.swipe {
            Some(s) => {
                let x = rect.left() + rect.width() * s.at;
                let (left, right) = (egui::Rect::from_min_max(rect.min, Pos2::new(x, rect.max.y)), egui::Rect::from_min_max(Pos2::new(x, rect.min.y), rect.max));
                // Both sides of an optical comparison with the same bands share the left one's
                // stretch, so that a difference in colour is a difference in the data.
                let mut shared = None;
                if let Some(ml) = self.layers.get_mut(s.left) {
                    ml.draw(ctx, 0, &painter.with_clip_rect(left), projector, None, gpu);
                    shared = ml.used;
                }
                let same_bands = match (self.layers.get(s.left), self.layers.get(s.right)) {
                    (Some(a), Some(b)) => a.layer.kind == LayerKind::Optical && b.layer.kind == LayerKind::Optical && a.composite().bands == b.composite().bands,
                    _ => false,
                };
                if let Some(ml) = self.layers.get_mut(s.right) {
                    ml.draw(ctx, 0, &painter.with_clip_rect(right), projector, shared.filter(|_| same_bands), gpu);
                }
                painter.line_segment([Pos2::new(x, rect.top()), Pos2::new(x, rect.bottom())], Stroke::new(2.0, Color32::WHITE));
            }
            None => {
                for ml in self.layers.iter_mut().filter(|l| l.visible) {
                    ml.draw(ctx, 0, painter, projector, None, gpu);
                }
            }
        }
        // The legend of a colour-ramp layer on the map, top right.
        if let Some(ml) = self.layers.iter().enumerate().rev().find(|(i, l)| is_shown(self.swipe, None, *i, l) && l.has_ramp() && l.error.is_none()).map(|(_, l)| l) {
            map_legend(painter, rect, ml.layer.kind, ml.ramp_scale());
        }
    }

    /// Asks the renderer for this frame's pixels and writes the map's part of them (`map`, in
    /// points) to the requested PNG, when a view was requested.
    pub fn save_view_if_requested(&mut self, ctx: &egui::Context, map: egui::Rect) {
        let Some(path) = self.view_request.take() else { return };
        let ppp = ctx.pixels_per_point();
        let (done, failed) = (self.view_done.clone(), self.view_failed.clone());
        let repaint = ctx.clone();
        ctx.request_screenshot(move |image| {
            let [w, h] = image.size;
            let (x0, y0) = (((map.left() * ppp).round().max(0.0) as usize).min(w), ((map.top() * ppp).round().max(0.0) as usize).min(h));
            let (x1, y1) = (((map.right() * ppp).round().max(0.0) as usize).min(w), ((map.bottom() * ppp).round().max(0.0) as usize).min(h));
            let (cw, ch) = (x1.saturating_sub(x0), y1.saturating_sub(y0));
            let mut rgba = Vec::with_capacity(cw * ch * 4);
            for y in y0..y1 {
                for p in &image.pixels[y * w + x0..y * w + x1] {
                    rgba.extend_from_slice(&p.to_srgba_unmultiplied());
                }
            }
            match crate::raster::write_png(&path, cw, ch, &rgba, 4) {
                Ok(()) => {
                    if let Ok(mut d) = done.lock() {
                        *d = Some(format!("Saved the view ({cw} x {ch} px) to {}", path.display()));
                    }
                }
                Err(e) => {
                    if let Ok(mut f) = failed.lock() {
                        *f = Some(e);
                    }
                }
            }
            repaint.request_repaint();
        });
    }

    /// Reads every layer's values under the cursor (full resolution).
    pub fn inspect(&mut self, lon: f64, lat: f64) {
        // Side by side, only the panes' layers are read (each file a read under the cursor).
        let wanted: Option<Vec<usize>> = self.panes.as_ref().map(|p| p.stacks.iter().flatten().copied().collect());
        let mut read: Vec<Option<(Vec<String>, Vec<f32>)>> =
            self.layers.iter_mut().enumerate().map(|(i, ml)| if wanted.as_ref().is_none_or(|w| w.contains(&i)) { ml.value_at(lon, lat) } else { None }).collect();
        let mut values = Vec::new();
        match &self.panes {
            // Side by side: each pane's layers, pane by pane (a layer in two panes read once).
            Some(panes) => {
                for (p, stack) in panes.stacks.iter().enumerate() {
                    for i in stack.iter().rev() {
                        if let (Some(ml), Some(Some((names, v)))) = (self.layers.get(*i), read.get(*i)) {
                            values.push((format!("pane {}: {}", p + 1, ml.layer.title), ml.layer.kind, names.clone(), v.clone()));
                        }
                    }
                }
            }
            None => {
                for (ml, r) in self.layers.iter().zip(read.iter_mut()) {
                    if let Some((names, v)) = r.take() {
                        values.push((ml.layer.title.clone(), ml.layer.kind, names, v));
                    }
                }
            }
        }
        self.inspected = Some(Inspected { lon, lat, values });
    }
}

impl MapLayer {
    /// Drawn on a colour ramp with a legend on the map.
    fn has_ramp(&self) -> bool {
        matches!(self.layer.kind, LayerKind::Dnbr | LayerKind::Severity | LayerKind::Difference | LayerKind::Angle)
    }

    /// The end of a difference's (symmetric) or an angle's ramp, as last drawn.
    fn ramp_scale(&self) -> Option<f32> {
        let s = self.used?;
        match self.layer.kind {
            LayerKind::Difference => Some(s.low[0].abs().max(s.high[0].abs())),
            LayerKind::Angle => Some(s.high[0]),
            _ => None,
        }
    }

    /// The band composite shown: a preset or the user's bands.
    pub fn composite(&self) -> Composite {
        match Composite::presets().get(self.composite) {
            Some(c) => c.clone(),
            None => Composite { name: format!("your bands ({})", self.custom.join(" ")), bands: self.custom.clone() },
        }
    }

    /// The stretch of the layer's own settings.
    fn own_stretch(&self, c: &Channels) -> Stretch {
        let kind = if self.percentile { StretchKind::Percentile(2.0, 98.0) } else { StretchKind::MinMax };
        c.stretch(kind, self.gamma)
    }

    fn ensure_image(&mut self, ctx: &egui::Context, shared: Option<Stretch>, gpu: bool) {
        // A layer that failed to read is not read again every frame: only after its composite
        // changes (which clears the error).
        if self.channels.is_none() && self.error.is_some() {
            return;
        }
        if self.channels.is_none() {
            match crate::layers::read_channels(&self.layer, &self.composite(), PREVIEW_SIDE) {
                Ok(c) => {
                    self.mesh = mesh_lon_lat(&c).unwrap_or_default();
                    self.channels = Some(std::sync::Arc::new(c));
                    self.generation += 1;
                    self.error = None;
                }
                Err(e) => {
                    self.error = Some(crate::error_chain(&e));
                    self.visible = false;
                    return;
                }
            }
            self.dirty = true;
        }
        let Some(c) = self.channels.as_ref() else { return };
        let wanted = match shared {
            Some(s) => Some(Stretch { gamma: self.gamma, ..s }),
            None if self.dirty || self.used.is_none() => Some(self.own_stretch(c)),
            None => self.used,
        };
        if gpu {
            // The shader stretches; only the parameters are needed.
            self.used = Some(wanted.unwrap_or_else(|| self.own_stretch(c)));
            self.dirty = false;
            return;
        }
        if self.dirty || self.texture.is_none() || wanted != self.used {
            let stretch = wanted.unwrap_or_else(|| self.own_stretch(c));
            let rgba = c.rgba(self.layer.kind, &stretch);
            self.used = Some(stretch);
            let image = egui::ColorImage::from_rgba_unmultiplied([c.width, c.height], &rgba);
            let options = egui::TextureOptions::NEAREST;
            match &mut self.texture {
                Some(t) => t.set(image, options),
                None => self.texture = Some(ctx.load_texture(format!("layer-{}", self.layer.id), image, options)),
            }
            self.dirty = false;
        }
    }

    fn draw(&mut self, ctx: &egui::Context, pane: usize, painter: &egui::Painter, projector: &Projector, shared: Option<Stretch>, gpu: bool) {
        // The GPU stretches optical and radar layers; the colour ramps stay on the CPU.
        let gpu = gpu && matches!(self.layer.kind, LayerKind::Optical | LayerKind::Radar);
        self.ensure_image(ctx, shared, gpu);
        if gpu {
            self.draw_gpu(pane, painter, projector);
            return;
        }
        let (Some(texture), false) = (&self.texture, self.mesh.is_empty()) else { return };
        let mut mesh = egui::Mesh::with_texture(texture.id());
        let tint = Color32::from_white_alpha((self.opacity.clamp(0.0, 1.0) * 255.0) as u8);
        for (k, p) in self.mesh.iter().enumerate() {
            let (i, j) = (k % (MESH + 1), k / (MESH + 1));
            let pos = projector.project(lon_lat(p[0], p[1])).to_pos2();
            mesh.vertices.push(egui::epaint::Vertex { pos, uv: Pos2::new(i as f32 / MESH as f32, j as f32 / MESH as f32), color: tint });
        }
        let n = (MESH + 1) as u32;
        for j in 0..MESH as u32 {
            for i in 0..MESH as u32 {
                let a = j * n + i;
                mesh.add_triangle(a, a + 1, a + n);
                mesh.add_triangle(a + 1, a + n + 1, a + n);
            }
        }
        painter.add(egui::Shape::mesh(mesh));
    }

    fn draw_gpu(&self, pane: usize, painter: &egui::Painter, projector: &Projector) {
        let (Some(channels), Some(stretch), false) = (&self.channels, self.used, self.mesh.is_empty()) else { return };
        let rect = painter.clip_rect();
        if rect.width() <= 0.0 || rect.height() <= 0.0 {
            return;
        }
        let vertices = self
            .mesh
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let (i, j) = (k % (MESH + 1), k / (MESH + 1));
                let pos = projector.project(lon_lat(p[0], p[1])).to_pos2();
                [(pos.x - rect.left()) / rect.width() * 2.0 - 1.0, 1.0 - (pos.y - rect.top()) / rect.height() * 2.0, i as f32 / MESH as f32, j as f32 / MESH as f32]
            })
            .collect();
        let callback = super::stretch_gpu::LayerCallback {
            // Per pane: a layer in two panes has a mesh (and stretch) in each.
            key: format!("{pane}:{}:{}", self.layer.path.display(), self.composite().bands.join(",")),
            generation: self.generation,
            channels: channels.clone(),
            stretch,
            opacity: self.opacity.clamp(0.0, 1.0),
            vertices,
        };
        painter.add(eframe::egui_wgpu::Callback::new_paint_callback(rect, callback));
    }

    /// The layer's band names and values at a lon/lat, full resolution; `None` outside it or
    /// where it has no data.
    fn value_at(&mut self, lon: f64, lat: f64) -> Option<(Vec<String>, Vec<f32>)> {
        let loc = self.layer.path.display().to_string();
        if self.to_pixel.is_none() {
            let info = crate::raster::info(&loc).ok()?;
            let wgs84 = crate::grid::wgs84_traditional().ok()?;
            let crs = gdal::spatial_ref::SpatialRef::from_wkt(&info.crs_wkt).ok()?;
            self.to_pixel = Some((gdal::spatial_ref::CoordTransform::new(&wgs84, &crs).ok()?, info.geo_transform, info.width, info.height));
        }
        let (t, gt, width, height) = self.to_pixel.as_ref()?;
        let (mut x, mut y, mut z) = ([lon], [lat], [0.0]);
        t.transform_coords(&mut x, &mut y, &mut z).ok()?;
        let (col, row) = ((x[0] - gt[0]) / gt[1], (y[0] - gt[3]) / gt[5]);
        if col < 0.0 || row < 0.0 || col >= *width as f64 || row >= *height as f64 {
            return None;
        }
        let window = crate::raster::PixelWindow { x_off: col as usize, y_off: row as usize, width: 1, height: 1 };
        let bands: Vec<usize> = self.layer.band.into_iter().collect();
        let s = crate::raster::read_window_reusing(&loc, &bands, Some(window)).ok()?;
        if !s.valid[0] {
            return None;
        }
        let names = if self.layer.kind == LayerKind::Dnbr { vec!["dNBR".to_string()] } else { s.descriptions.clone() };
        Some((names, s.bands.iter().map(|b| b[0]).collect()))
    }
}

/// Lon/lat of the mesh's vertices over a layer's extent.
fn mesh_lon_lat(c: &Channels) -> Option<Vec<[f64; 2]>> {
    let crs = gdal::spatial_ref::SpatialRef::from_wkt(&c.crs_wkt).ok()?;
    let wgs84 = crate::grid::wgs84_traditional().ok()?;
    let t = gdal::spatial_ref::CoordTransform::new(&crs, &wgs84).ok()?;
    let gt = c.geo_transform;
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for j in 0..=MESH {
        for i in 0..=MESH {
            let (px, py) = (c.width as f64 * i as f64 / MESH as f64, c.height as f64 * j as f64 / MESH as f64);
            xs.push(gt[0] + px * gt[1] + py * gt[2]);
            ys.push(gt[3] + px * gt[4] + py * gt[5]);
        }
    }
    let mut zs = vec![0.0; xs.len()];
    t.transform_coords(&mut xs, &mut ys, &mut zs).ok()?;
    Some(xs.into_iter().zip(ys).map(|(x, y)| [x, y]).collect())
}

/// Whether layer `i` is on the map: one of the compared two, in a pane, or ticked.
fn is_shown(swipe: Option<Swipe>, panes: Option<&Panes>, i: usize, layer: &MapLayer) -> bool {
    if let Some(p) = panes {
        return p.stacks.iter().any(|s| s.contains(&i));
    }
    swipe.map(|s| s.left == i || s.right == i).unwrap_or(layer.visible)
}

/// A pane's number and top layer, top left.
fn pane_title(painter: &egui::Painter, rect: egui::Rect, text: &str) {
    let font = egui::FontId::proportional(12.0);
    let galley = painter.layout_no_wrap(text.to_string(), font, Color32::WHITE);
    let bg = egui::Rect::from_min_size(rect.min + egui::vec2(6.0, 6.0), galley.size() + egui::vec2(10.0, 6.0));
    painter.rect_filled(bg, 3.0, Color32::from_black_alpha(170));
    painter.galley(bg.min + egui::vec2(5.0, 3.0), galley, Color32::WHITE);
}
