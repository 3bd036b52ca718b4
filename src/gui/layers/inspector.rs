//! The pixel inspector: every shown layer's values under the cursor, read at full resolution
//! (each layer's CRS transform kept), and its panel with NBR and the spectral profile.

use eframe::egui::{self, RichText};

use super::{LayerPanel, MapLayer};
use crate::layers::LayerKind;

/// What the cursor is over: lon/lat and each layer's values there.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inspected {
    pub lon: f64,
    pub lat: f64,
    /// (layer title, kind, band names, values) of the layers with data there; side by side,
    /// those of each pane's layers, pane by pane, the title starting "pane N: ".
    pub values: Vec<(String, LayerKind, Vec<String>, Vec<f32>)>,
}

impl LayerPanel {
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
    /// The layer's band names and values at a lon/lat, full resolution; `None` outside it or
    /// where it has no data.
    pub(super) fn value_at(&mut self, lon: f64, lat: f64) -> Option<(Vec<String>, Vec<f32>)> {
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
        // A class map's value in words (a severity layer's class with its dNBR).
        let names = match self.layer.kind {
            LayerKind::Dnbr => vec!["dNBR".to_string()],
            LayerKind::Severity | LayerKind::Source => vec![self.layer.class_text(s.bands[0][0])],
            _ => s.descriptions.clone(),
        };
        Some((names, s.bands.iter().map(|b| b[0]).collect()))
    }
}

/// The values under the cursor, NBR and dNBR, and the spectral profile of the optical layers.
pub(super) fn inspector_ui(ui: &mut egui::Ui, inspected: Option<&Inspected>) {
    ui.label(RichText::new("Pixel inspector").strong());
    let Some(ins) = inspected else {
        ui.label(RichText::new("Hover over the map.").weak());
        return;
    };
    ui.label(format!("lon {:.5}, lat {:.5}", ins.lon, ins.lat));
    let mut profiles = Vec::new();
    for (title, kind, names, values) in &ins.values {
        let text = match kind {
            LayerKind::Optical => {
                let get = |b: &str| names.iter().position(|n| n == b).map(|i| values[i]);
                let nbr = match (get("B08"), get("B12")) {
                    (Some(n), Some(s)) if n + s != 0.0 => format!(", NBR {:.3}", (n - s) / (n + s)),
                    _ => String::new(),
                };
                let bands: Vec<(f64, f64)> = names.iter().zip(values).filter(|(n, _)| n.starts_with('B')).filter_map(|(n, v)| Some((band_wavelength(n)?, *v as f64))).collect();
                profiles.push((title.clone(), bands));
                let list: Vec<String> = names.iter().zip(values).filter(|(n, _)| n.as_str() != "mask").map(|(n, v)| format!("{n} {v:.3}")).collect();
                format!("{}{nbr}", list.join(" "))
            }
            LayerKind::Severity | LayerKind::Source => names.first().cloned().unwrap_or_default(),
            _ => names.iter().zip(values).map(|(n, v)| format!("{n} {v:.3}")).collect::<Vec<_>>().join(" "),
        };
        ui.label(RichText::new(format!("{title}: {text}")).small());
    }
    if !profiles.is_empty() {
        egui_plot::Plot::new("spectrum").height(120.0).x_axis_label("wavelength (nm)").y_axis_label("reflectance").legend(egui_plot::Legend::default()).show(ui, |plot| {
            for (title, points) in profiles {
                plot.line(egui_plot::Line::new(title, egui_plot::PlotPoints::from(points.iter().map(|(x, y)| [*x, *y]).collect::<Vec<_>>())));
            }
        });
    }
}

/// Central wavelength of a Sentinel-2 band, nm (S2A).
pub(super) fn band_wavelength(band: &str) -> Option<f64> {
    Some(match band {
        "B01" => 443.0,
        "B02" => 492.0,
        "B03" => 560.0,
        "B04" => 665.0,
        "B05" => 704.0,
        "B06" => 740.0,
        "B07" => 783.0,
        "B08" => 833.0,
        "B8A" => 865.0,
        "B09" => 945.0,
        "B11" => 1614.0,
        "B12" => 2202.0,
        _ => return None,
    })
}
