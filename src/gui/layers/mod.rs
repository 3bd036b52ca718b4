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
//! Finding a run's layers (`background::LayerSet::scan`) and exporting one run on worker threads.
//! The room's files: this front (the panel's state: layers, layout, pairs, export), `stack`
//! (the panel: layer list, comparison, composites), `draw` (layers on the map) and `inspector`
//! (the values under the cursor).

mod draw;
mod inspector;
mod stack;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use eframe::egui::TextureHandle;

use super::background::{LayerSet, Task, take_finished};
use crate::error::Error;
use crate::layers::{Channels, Composite, Exported, Layer, LayerKind, Stretch, StretchKind};
use crate::project::RunName;
pub use inspector::Inspected;

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

    /// Draws the severity layers with `scheme` (the Assess step's classes, as edited): their
    /// dNBR is classified again when next drawn, without reading or running anything.
    /// A scheme that does not validate (mid-edit) leaves them as they are; it is checked only
    /// when it differs from what they show.
    pub fn set_scheme(&mut self, scheme: &crate::indices::severity::SeverityScheme) {
        let differs = |l: &MapLayer| l.layer.kind == LayerKind::Severity && l.layer.scheme.as_ref() != Some(scheme);
        if !self.layers.iter().any(differs) || scheme.validate().is_err() {
            return;
        }
        for ml in self.layers.iter_mut().filter(|l| l.layer.kind == LayerKind::Severity) {
            if ml.layer.scheme.as_ref() != Some(scheme) {
                ml.layer.scheme = Some(scheme.clone());
                ml.dirty = true;
            }
        }
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

    /// The pair the first two panes show, if they show one.
    pub fn current_pair(&self) -> Option<Pair> {
        let p = self.panes.as_ref()?;
        Pair::ALL.into_iter().find(|pair| {
            let [a, b] = pair.ids();
            p.stacks.len() >= 2 && p.stacks[0] == self.find(a).into_iter().collect::<Vec<_>>() && p.stacks[1] == self.find(b).into_iter().collect::<Vec<_>>()
        })
    }
}
