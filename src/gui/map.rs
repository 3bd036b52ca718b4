//! The map: walkers with OpenStreetMap tiles (disk-cached) when a tile server answers, Natural
//! Earth country outlines drawn over it from the binary (so the map is never blank offline),
//! and the AOI editor: click to add a vertex, click the first vertex (or "Close") to finish,
//! drag a vertex to move it, right-click a vertex to delete it.

use std::sync::OnceLock;

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke, Vec2};
use walkers::{HttpOptions, HttpTiles, MapMemory, MercatorProjection, Position, Projection, Projector, lon_lat};

use super::editor::AoiEditor;

/// Natural Earth country outlines at 1:110m and 1:50m (public domain), see
/// assets/basemap/README.md.
const COUNTRIES_110M: &str = include_str!("../../assets/basemap/countries-110m.geojson");
const COUNTRIES_50M: &str = include_str!("../../assets/basemap/countries-50m.geojson");

/// Map zoom from which the 1:50m outlines are drawn (at 5 a pixel is about 5 km).
const DETAILED_FROM_ZOOM: f64 = 5.0;

/// One country part: its rings (outer first) and a triangulation of it for the land fill.
struct LandPolygon {
    rings: Vec<Vec<[f64; 2]>>,
    triangle_vertices: Vec<[f64; 2]>,
    triangle_indices: Vec<u32>,
    /// [min lon, min lat, max lon, max lat]
    bbox: [f64; 4],
}

/// The offline basemap: country polygons in [lon, lat], triangulated once (earcut) so land can
/// be filled, not only outlined.
pub struct Basemap {
    polygons: Vec<LandPolygon>,
}

impl Basemap {
    /// The embedded outlines for a map zoom, each scale parsed once when first needed.
    pub fn natural_earth(zoom: f64) -> &'static Basemap {
        static COARSE: OnceLock<Basemap> = OnceLock::new();
        static DETAILED: OnceLock<Basemap> = OnceLock::new();
        if zoom >= DETAILED_FROM_ZOOM {
            DETAILED.get_or_init(|| Basemap::parse(COUNTRIES_50M))
        } else {
            COARSE.get_or_init(|| Basemap::parse(COUNTRIES_110M))
        }
    }

    fn parse(text: &str) -> Basemap {
        use geo::TriangulateEarcut;
        let mut polygons = Vec::new();
        if let Ok(geojson::GeoJson::FeatureCollection(fc)) = text.parse::<geojson::GeoJson>() {
            for f in fc.features {
                let parts = match f.geometry.map(|g| g.value) {
                    Some(geojson::GeometryValue::Polygon { coordinates }) => vec![coordinates],
                    Some(geojson::GeometryValue::MultiPolygon { coordinates }) => coordinates,
                    _ => continue,
                };
                for part in parts {
                    let rings: Vec<Vec<[f64; 2]>> = part.iter().map(|r| r.iter().filter(|p| p.len() >= 2).map(|p| [p[0], p[1]]).collect()).collect();
                    let Some(outer) = rings.first() else { continue };
                    let bbox = outer.iter().fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, c| [b[0].min(c[0]), b[1].min(c[1]), b[2].max(c[0]), b[3].max(c[1])]);
                    let line = |r: &Vec<[f64; 2]>| geo::LineString::from(r.iter().map(|c| (c[0], c[1])).collect::<Vec<_>>());
                    let polygon = geo::Polygon::new(line(outer), rings[1..].iter().map(line).collect());
                    let t = polygon.earcut_triangles_raw();
                    polygons.push(LandPolygon { triangle_vertices: t.vertices, triangle_indices: t.triangle_indices.iter().map(|i| *i as u32).collect(), rings, bbox });
                }
            }
        }
        Basemap { polygons }
    }

    pub fn polygon_count(&self) -> usize {
        self.polygons.len()
    }

    pub fn triangle_count(&self) -> usize {
        self.polygons.iter().map(|p| p.triangle_indices.len() / 3).sum()
    }

    /// Fills the land that touches the visible area (`fill`, when given) and outlines it.
    pub fn draw(&self, painter: &egui::Painter, projector: &Projector, fill: Option<Color32>, stroke: Stroke) {
        let view = visible_lon_lat(projector);
        let project = |c: &[f64; 2]| projector.project(lon_lat(c[0], c[1])).to_pos2();
        for p in &self.polygons {
            let b = p.bbox;
            if b[2] < view[0] || b[0] > view[2] || b[3] < view[1] || b[1] > view[3] {
                continue;
            }
            if let Some(colour) = fill {
                let mut mesh = egui::Mesh::default();
                for v in &p.triangle_vertices {
                    mesh.colored_vertex(project(v), colour);
                }
                mesh.indices.extend_from_slice(&p.triangle_indices);
                painter.add(egui::Shape::mesh(mesh));
            }
            for ring in &p.rings {
                painter.add(egui::Shape::line(ring.iter().map(project).collect(), stroke));
            }
        }
    }
}

/// [min lon, min lat, max lon, max lat] of the map's visible rectangle.
pub fn visible_lon_lat(projector: &Projector) -> [f64; 4] {
    let r = projector.clip_rect();
    let a = projector.unproject(r.left_top().to_vec2());
    let b = projector.unproject(r.right_bottom().to_vec2());
    [a.x().min(b.x()), a.y().min(b.y()), a.x().max(b.x()), a.y().max(b.y())]
}

/// Centre and zoom that fit a [min lon, min lat, max lon, max lat] box into a `size` px view,
/// with a margin.
pub fn fit_bbox(bbox: [f64; 4], size: Vec2) -> (Position, f64) {
    let p = MercatorProjection;
    let a = p.project(lon_lat(bbox[0], bbox[3]), 0.0);
    let b = p.project(lon_lat(bbox[2], bbox[1]), 0.0);
    let (w, h) = ((b.x() - a.x()).abs().max(1e-9), (b.y() - a.y()).abs().max(1e-9));
    let zoom = ((size.x as f64 * 0.8 / w).min(size.y as f64 * 0.8 / h)).log2().clamp(1.0, 18.0);
    let centre = lon_lat((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
    (centre, zoom)
}

impl MapView {
    /// Turns the OpenStreetMap tiles on or off; on, asks the tile server once in the background
    /// whether it answers.
    pub fn set_tiles(&mut self, on: bool, ctx: &egui::Context) {
        self.tiles = on.then(|| osm_tiles(ctx));
        let slot = self.tiles_reachable.clone();
        if let Ok(mut s) = slot.lock() {
            *s = None;
        }
        if on {
            let repaint = ctx.clone();
            std::thread::spawn(move || {
                let answer = reqwest::blocking::Client::builder()
                    .timeout(std::time::Duration::from_secs(5))
                    .user_agent(concat!("sent2-cloud-remover/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .and_then(|c| c.get(tile_probe_url()).send())
                    .map_err(|e| crate::error::network_cause(&e))
                    .and_then(|r| if r.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", r.status())) });
                if let Ok(mut s) = slot.lock() {
                    *s = Some(answer);
                }
                repaint.request_repaint();
            });
        }
    }
}

/// The tiles the map shows.
pub fn osm_tiles(ctx: &egui::Context) -> HttpTiles {
    let cache = crate::fsutil::tile_cache_dir();
    HttpTiles::with_options(walkers::sources::OpenStreetMap, HttpOptions { cache, ..Default::default() }, ctx.clone())
}

/// What the map view keeps between frames.
pub struct MapView {
    pub memory: MapMemory,
    pub tiles: Option<HttpTiles>,
    /// Screen rectangle of the map in the last frame (all its panes; for the view PNG and tests).
    pub rect: Rect,
    /// Each pane's rectangle and centre (lon, lat) in the last frame.
    pub pane_rects: Vec<Rect>,
    pub pane_centres: Vec<(f64, f64)>,
    /// Clicks add vertices (otherwise the map only pans and zooms).
    pub drawing: bool,
    /// Screen positions of the AOI's vertices in the last frame.
    pub vertex_screen: Vec<Pos2>,
    /// A box to fit once the map's size is known (the next frame).
    pending_fit: Option<[f64; 4]>,
    /// Whether the tile server answered when tiles were turned on (`None` while asking): walkers
    /// falls back to nothing visible on failure, the offline basemap shows, and the status bar
    /// says why.
    pub tiles_reachable: std::sync::Arc<std::sync::Mutex<Option<std::result::Result<(), String>>>>,
}

/// The URL asked to know whether the tile server answers (`S2CR_TILE_PROBE_URL` overrides it,
/// for tests).
fn tile_probe_url() -> String {
    std::env::var("S2CR_TILE_PROBE_URL").unwrap_or_else(|_| "https://tile.openstreetmap.org/0/0/0.png".into())
}

impl MapView {
    pub fn new(centre: Position, zoom: f64) -> MapView {
        let mut memory = MapMemory::default();
        memory.center_at(centre);
        let _ = memory.set_zoom(zoom);
        MapView { memory, tiles: None, rect: Rect::NOTHING, pane_rects: Vec::new(), pane_centres: Vec::new(), drawing: false, vertex_screen: Vec::new(), pending_fit: None, tiles_reachable: Default::default() }
    }

    /// Centres and zooms the map on a [min lon, min lat, max lon, max lat] box (at the next
    /// frame, when the map's size is known).
    pub fn zoom_to(&mut self, bbox: [f64; 4]) {
        self.pending_fit = Some(bbox);
    }

    fn apply_fit(&mut self, size: Vec2) {
        if let Some(bbox) = self.pending_fit.take() {
            let (centre, zoom) = fit_bbox(bbox, size);
            self.memory.center_at(centre);
            let _ = self.memory.set_zoom(zoom);
        }
    }

    /// Draws the map with the basemap, other outlines (footprints), and the AOI editor.
    /// `editable`: the AOI's vertices can be moved and deleted (not for an open project's AOI).
    /// `overlay` draws raster layers under the outlines. Returns the lon/lat under the cursor.
    pub fn ui(&mut self, ui: &mut egui::Ui, editor: &mut AoiEditor, footprints: &[Vec<[f64; 2]>], editable: bool, overlay: &mut dyn FnMut(usize, &egui::Painter, &Projector)) -> Option<(f64, f64)> {
        self.ui_panes(ui, 1, None, editor, footprints, editable, overlay)
    }

    /// The map as `panes` linked panes (1, 2 side by side, or 4 in a 2 x 2 grid) sharing one
    /// centre and zoom: a pan or zoom in any pane moves them all. `overlay` draws pane `i`'s
    /// layers; `cursor` (lon/lat) is marked with a crosshair in every pane when there are
    /// several. Returns the lon/lat under the pointer, whichever pane it is over.
    #[allow(clippy::too_many_arguments)]
    pub fn ui_panes(
        &mut self,
        ui: &mut egui::Ui,
        panes: usize,
        cursor: Option<(f64, f64)>,
        editor: &mut AoiEditor,
        footprints: &[Vec<[f64; 2]>],
        editable: bool,
        overlay: &mut dyn FnMut(usize, &egui::Painter, &Projector),
    ) -> Option<(f64, f64)> {
        let full = ui.available_rect_before_wrap();
        let rects = pane_rects(full, panes);
        if let Some(first) = rects.first() {
            self.apply_fit(first.size());
        }
        // Every pane starts from the same memory; the one the user acts on carries its change to
        // all of them: the pane being dragged (a drag goes on over the other panes), else the one
        // under the pointer (a zoom), else the first.
        let start = self.memory.clone();
        let mut leader: Option<(MapMemory, u8)> = None;
        let mut hover = None;
        let mut vertex_screen = Vec::new();
        self.pane_rects.clear();
        self.pane_centres.clear();
        for (i, rect) in rects.iter().enumerate() {
            let mut memory = start.clone();
            let builder = egui::UiBuilder::new().max_rect(*rect).id_salt(("map-pane", i));
            let (pane_hover, acted) = ui
                .scope_builder(builder, |ui| {
                    self.pane(ui, &mut memory, i, if panes > 1 { cursor } else { None }, editor, footprints, editable, overlay, &mut vertex_screen)
                })
                .inner;
            hover = hover.or(pane_hover);
            let centre = memory.detached().map(|p| (p.x(), p.y()));
            self.pane_centres.push(centre.unwrap_or((0.0, 0.0)));
            if leader.as_ref().is_none_or(|(_, best)| acted > *best) {
                leader = Some((memory, acted));
            }
        }
        if let Some((memory, _)) = leader {
            // Panes drawn before the one acted on show its change next frame.
            let view = |m: &MapMemory| (m.detached().map(|p| (p.x(), p.y())), m.zoom());
            if panes > 1 && view(&memory) != view(&start) {
                ui.ctx().request_repaint();
            }
            self.memory = memory;
        }
        self.rect = full;
        self.vertex_screen = vertex_screen;
        if let Some(t) = &self.tiles {
            use walkers::Tiles;
            let a = t.attribution();
            ui.put(Rect::from_min_size(full.right_bottom() - Vec2::new(190.0, 18.0), Vec2::new(190.0, 18.0)), egui::Hyperlink::from_label_and_url(egui::RichText::new(a.text).small(), a.url));
        }
        hover
    }

    /// One pane of the map. Returns the lon/lat under the pointer and how much the user acts on
    /// this pane: 2 dragging it (or letting it go), 1 the pointer over it, 0 neither.
    #[allow(clippy::too_many_arguments)]
    fn pane(
        &mut self,
        ui: &mut egui::Ui,
        memory: &mut MapMemory,
        index: usize,
        cursor: Option<(f64, f64)>,
        editor: &mut AoiEditor,
        footprints: &[Vec<[f64; 2]>],
        editable: bool,
        overlay: &mut dyn FnMut(usize, &egui::Painter, &Projector),
        vertex_screen: &mut Vec<Pos2>,
    ) -> (Option<(f64, f64)>, u8) {
        let my_position = lon_lat(0.0, 0.0);
        // No tiles, or a tile server that does not answer: the offline basemap, land filled.
        let unreachable = self.tiles_reachable.lock().ok().is_some_and(|r| matches!(*r, Some(Err(_))));
        let no_tiles = self.tiles.is_none() || unreachable;
        let tiles = self.tiles.as_mut().map(|t| t as &mut dyn walkers::Tiles);
        let drawing = editable && self.drawing && !editor.closed;
        let map = walkers::Map::new(tiles, memory, my_position).double_click_to_zoom(!drawing);
        let mut hover = None;
        let response = map.show(ui, |ui, response, projector, _memory| {
            // Everything drawn stays inside this pane.
            ui.set_clip_rect(response.rect.intersect(ui.clip_rect()));
            let painter = ui.painter().clone();
            // Offline: sea and land from the basemap; over tiles, only the borders.
            if no_tiles {
                painter.rect_filled(response.rect, 0.0, Color32::from_rgb(0xaa, 0xc6, 0xdc));
            }
            let land = no_tiles.then_some(Color32::from_rgb(0xf0, 0xec, 0xe0));
            Basemap::natural_earth(projector.zoom()).draw(&painter, projector, land, Stroke::new(1.0, Color32::from_gray(110)));
            overlay(index, &painter, projector);
            if let Some(p) = response.hover_pos() {
                let g = projector.unproject(p.to_vec2());
                hover = Some((g.x(), g.y()));
            }
            for f in footprints {
                let pts: Vec<Pos2> = f.iter().map(|c| projector.project(lon_lat(c[0], c[1])).to_pos2()).collect();
                painter.add(egui::Shape::closed_line(pts, Stroke::new(1.0, Color32::from_rgb(0x30, 0x60, 0xc0))));
            }
            aoi_ui(ui, response, projector, editor, drawing, editable, vertex_screen);
            if let Some((lon, lat)) = cursor {
                crosshair(&painter, projector.project(lon_lat(lon, lat)).to_pos2(), response.rect);
            }
            scale_bar(&painter, projector, response.rect);
        });
        let r = &response.response;
        self.pane_rects.push(r.rect);
        let acted = if r.dragged() || r.drag_stopped() {
            2
        } else {
            u8::from(r.contains_pointer())
        };
        (hover, acted)
    }
}

/// The panes' rectangles in the map's rectangle: one, two side by side, or a 2 x 2 grid.
pub fn pane_rects(full: Rect, panes: usize) -> Vec<Rect> {
    let gap = 2.0;
    match panes {
        0 | 1 => vec![full],
        2 | 3 => {
            let w = (full.width() - gap) / 2.0;
            vec![Rect::from_min_size(full.min, Vec2::new(w, full.height())), Rect::from_min_size(full.min + Vec2::new(w + gap, 0.0), Vec2::new(w, full.height()))]
        }
        _ => {
            let (w, h) = ((full.width() - gap) / 2.0, (full.height() - gap) / 2.0);
            [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)].iter().map(|(i, j)| Rect::from_min_size(full.min + Vec2::new(i * (w + gap), j * (h + gap)), Vec2::new(w, h))).collect()
        }
    }
}

/// The linked cursor: a crosshair at the same ground position in every pane.
fn crosshair(painter: &egui::Painter, p: Pos2, rect: Rect) {
    if !rect.contains(p) {
        return;
    }
    for (stroke, r) in [(Stroke::new(3.0, Color32::from_black_alpha(160)), 11.0), (Stroke::new(1.0, Color32::WHITE), 10.0)] {
        painter.line_segment([p - Vec2::new(r, 0.0), p - Vec2::new(3.0, 0.0)], stroke);
        painter.line_segment([p + Vec2::new(3.0, 0.0), p + Vec2::new(r, 0.0)], stroke);
        painter.line_segment([p - Vec2::new(0.0, r), p - Vec2::new(0.0, 3.0)], stroke);
        painter.line_segment([p + Vec2::new(0.0, 3.0), p + Vec2::new(0.0, r)], stroke);
    }
}

/// Ground distance between two lon/lat points, metres (haversine on a sphere of the WGS84
/// mean radius: ample for a scale bar).
pub fn ground_distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, la2) = (a.1.to_radians(), b.1.to_radians());
    let (dla, dlo) = (la2 - la1, (b.0 - a.0).to_radians());
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6_371_008.8 * h.sqrt().asin()
}

/// The longest round length (1, 2 or 5 x 10^k metres) not over `max_m`.
pub fn round_length_m(max_m: f64) -> f64 {
    if !(max_m > 0.0) {
        return 0.0;
    }
    let p = 10f64.powf(max_m.log10().floor());
    [5.0, 2.0, 1.0].into_iter().map(|f| f * p).find(|l| *l <= max_m).unwrap_or(p)
}

/// A scale bar in the map's bottom-left corner, true at the map's centre latitude.
fn scale_bar(painter: &egui::Painter, projector: &Projector, rect: Rect) {
    let y = rect.center().y;
    let (a, b) = (projector.unproject(Vec2::new(rect.center().x - 60.0, y)), projector.unproject(Vec2::new(rect.center().x + 60.0, y)));
    let per_px = ground_distance_m((a.x(), a.y()), (b.x(), b.y())) / 120.0;
    let length = round_length_m(per_px * 150.0);
    if !(length > 0.0) || !per_px.is_finite() {
        return;
    }
    let px = (length / per_px) as f32;
    let origin = Pos2::new(rect.left() + 12.0, rect.bottom() - 14.0);
    let end = origin + Vec2::new(px, 0.0);
    let bg = Rect::from_min_max(origin - Vec2::new(6.0, 18.0), end + Vec2::new(6.0, 6.0));
    painter.rect_filled(bg, 2.0, Color32::from_white_alpha(190));
    let stroke = Stroke::new(2.0, Color32::BLACK);
    painter.line_segment([origin, end], stroke);
    painter.line_segment([origin, origin - Vec2::new(0.0, 5.0)], stroke);
    painter.line_segment([end, end - Vec2::new(0.0, 5.0)], stroke);
    let text = if length >= 1000.0 { format!("{} km", length / 1000.0) } else { format!("{length} m") };
    painter.text(origin + Vec2::new(px / 2.0, -8.0), egui::Align2::CENTER_CENTER, text, egui::FontId::proportional(11.0), Color32::BLACK);
}

const AOI_COLOUR: Color32 = Color32::from_rgb(0xe0, 0x40, 0x20);

/// Draws the AOI and handles the editing gestures.
fn aoi_ui(ui: &mut egui::Ui, response: &egui::Response, projector: &Projector, editor: &mut AoiEditor, drawing: bool, editable: bool, vertex_screen: &mut Vec<Pos2>) {
    let to_screen = |c: [f64; 2]| projector.project(lon_lat(c[0], c[1])).to_pos2();
    let to_lon_lat = |p: Pos2| {
        let g = projector.unproject(p.to_vec2());
        [g.x(), g.y()]
    };
    let painter = ui.painter().clone();
    for ring in &editor.other_rings {
        painter.add(egui::Shape::closed_line(ring.iter().map(|c| to_screen(*c)).collect(), Stroke::new(2.0, AOI_COLOUR)));
    }
    let pts: Vec<Pos2> = editor.vertices.iter().map(|c| to_screen(*c)).collect();
    if editor.closed {
        painter.add(egui::Shape::closed_line(pts.clone(), Stroke::new(2.0, AOI_COLOUR)));
    } else if pts.len() > 1 {
        painter.add(egui::Shape::line(pts.clone(), Stroke::new(2.0, AOI_COLOUR)));
    }
    // Vertices are widgets of their own, registered after the map, so a drag on one moves it
    // instead of panning the map.
    let mut delete = None;
    let mut close = false;
    for (i, p) in pts.iter().enumerate() {
        if !editable {
            painter.circle(*p, 3.0, AOI_COLOUR, Stroke::NONE);
            continue;
        }
        let r = ui.interact(Rect::from_center_size(*p, Vec2::splat(12.0)), ui.scope_id().with(("aoi-vertex", i)), Sense::click_and_drag());
        if r.dragged() {
            if let Some(pos) = r.interact_pointer_pos() {
                editor.move_vertex(i, to_lon_lat(pos));
            }
        }
        if r.secondary_clicked() {
            delete = Some(i);
        }
        if r.clicked() && i == 0 && drawing && pts.len() >= 3 {
            close = true;
        }
        let hot = r.hovered() || r.dragged();
        painter.circle(*p, if hot { 6.0 } else { 4.5 }, Color32::WHITE, Stroke::new(2.0, AOI_COLOUR));
        r.on_hover_text(if i == 0 && drawing && pts.len() >= 3 { "click to close the polygon; drag to move; right-click to delete" } else { "drag to move; right-click to delete" });
    }
    vertex_screen.extend(pts.iter().copied());
    if let Some(i) = delete {
        editor.delete(i);
    } else if close {
        editor.close();
    } else if drawing && response.clicked() {
        if let Some(pos) = response.interact_pointer_pos() {
            editor.add(to_lon_lat(pos));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_bar_lengths_are_round_and_distances_right() {
        assert_eq!(round_length_m(1234.0), 1000.0);
        assert_eq!(round_length_m(299.0), 200.0);
        assert_eq!(round_length_m(5000.0), 5000.0);
        assert_eq!(round_length_m(0.0), 0.0);
        // One degree of latitude is about 111.2 km; one of longitude at 60 degrees half that.
        assert!((ground_distance_m((0.0, 0.0), (0.0, 1.0)) - 111_195.0).abs() < 10.0);
        assert!((ground_distance_m((0.0, 60.0), (1.0, 60.0)) - 55_597.0).abs() < 50.0);
    }

    #[test]
    fn the_basemap_holds_the_world() {
        for (zoom, least_polygons) in [(2.0, 250), (8.0, 1000)] {
            let b = Basemap::natural_earth(zoom);
            assert!(b.polygon_count() > least_polygons, "{}", b.polygon_count());
        // Every polygon is triangulated for the land fill.
        assert!(b.polygons.iter().all(|p| p.triangle_indices.iter().all(|i| (*i as usize) < p.triangle_vertices.len())));
        let empty = b.polygons.iter().filter(|p| p.triangle_indices.is_empty()).count();
        assert!(empty * 100 < b.polygon_count(), "{empty} polygons without triangles");
            assert!(b.triangle_count() > 5000, "{}", b.triangle_count());
        }
    }

    #[test]
    fn fit_bbox_centres_and_zooms_in_on_small_areas() {
        let (c, z_small) = fit_bbox([136.5, -36.1, 136.9, -35.8], Vec2::new(800.0, 600.0));
        assert!((c.x() - 136.7).abs() < 1e-9 && (c.y() + 35.95).abs() < 1e-9);
        let (_, z_large) = fit_bbox([100.0, -40.0, 150.0, -10.0], Vec2::new(800.0, 600.0));
        assert!(z_small > z_large + 5.0, "{z_small} vs {z_large}");
    }
}
