//! Layers on the map: each drawn at its true position as a mesh projected from its own CRS,
//! read once at display size; stretched by the WGSL shader on the GPU or coloured on the CPU
//! when its stretch changes. Also the map's legend and a pane's title.

use eframe::egui::{self, Color32, Pos2, Stroke};
use walkers::{Projector, lon_lat};

use super::{LayerPanel, MapLayer, Panes, Swipe, PREVIEW_SIDE, MESH};
use crate::gui::legend::map_legend;
use crate::layers::{Channels, Composite, LayerKind, Stretch, StretchKind};

impl LayerPanel {
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
                map_legend(painter, rect.with_min_y(rect.top() + 24.0), &ml.layer, ml.ramp_scale());
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
            map_legend(painter, rect, &ml.layer, ml.ramp_scale());
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
}

impl MapLayer {
    /// Drawn on a colour ramp with a legend on the map.
    pub(super) fn has_ramp(&self) -> bool {
        matches!(self.layer.kind, LayerKind::Dnbr | LayerKind::Severity | LayerKind::Source | LayerKind::Difference | LayerKind::Angle)
    }

    /// The end of a difference's (symmetric) or an angle's ramp, as last drawn.
    pub(super) fn ramp_scale(&self) -> Option<f32> {
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
    pub(super) fn own_stretch(&self, c: &Channels) -> Stretch {
        let kind = if self.percentile { StretchKind::Percentile(2.0, 98.0) } else { StretchKind::MinMax };
        c.stretch(kind, self.gamma)
    }

    pub(super) fn ensure_image(&mut self, ctx: &egui::Context, shared: Option<Stretch>, gpu: bool) {
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
            let rgba = c.rgba(self.layer.kind, &stretch, &self.layer.classes(), self.layer.scheme.as_ref());
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

    pub(super) fn draw(&mut self, ctx: &egui::Context, pane: usize, painter: &egui::Painter, projector: &Projector, shared: Option<Stretch>, gpu: bool) {
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

    pub(super) fn draw_gpu(&self, pane: usize, painter: &egui::Painter, projector: &Projector) {
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
        let callback = crate::gui::stretch_gpu::LayerCallback {
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
}

/// Lon/lat of the mesh's vertices over a layer's extent.
pub(super) fn mesh_lon_lat(c: &Channels) -> Option<Vec<[f64; 2]>> {
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
pub(super) fn is_shown(swipe: Option<Swipe>, panes: Option<&Panes>, i: usize, layer: &MapLayer) -> bool {
    if let Some(p) = panes {
        return p.stacks.iter().any(|s| s.contains(&i));
    }
    swipe.map(|s| s.left == i || s.right == i).unwrap_or(layer.visible)
}

/// A pane's number and top layer, top left.
pub(super) fn pane_title(painter: &egui::Painter, rect: egui::Rect, text: &str) {
    let font = egui::FontId::proportional(12.0);
    let galley = painter.layout_no_wrap(text.to_string(), font, Color32::WHITE);
    let bg = egui::Rect::from_min_size(rect.min + egui::vec2(6.0, 6.0), galley.size() + egui::vec2(10.0, 6.0));
    painter.rect_filled(bg, 3.0, Color32::from_black_alpha(170));
    painter.galley(bg.min + egui::vec2(5.0, 3.0), galley, Color32::WHITE);
}
