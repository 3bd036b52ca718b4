//! Polygons from any vector file OGR reads (GeoJSON, Shapefile, GeoPackage, KML, ...), moved
//! into a raster's CRS and burned onto its pixels strip by strip: official fire perimeters
//! (MTBS, EFFIS, NIFC, CAL FIRE) compared with burned-area maps.

use std::path::Path;

use gdal::spatial_ref::{AxisMappingStrategy, SpatialRef};
use gdal::vector::{Geometry, LayerAccess, OGRwkbGeometryType};
use gdal::{Dataset, DriverManager};

use crate::error::{Error, Result};

/// The polygons of a vector file in a grid's CRS.
pub struct Polygons {
    geometries: Vec<Geometry>,
    /// Features with a polygon.
    pub features: usize,
    /// Their bounding box in the grid's CRS: [min x, min y, max x, max y].
    pub bbox: [f64; 4],
    /// Their area in the grid's CRS units squared (m²), overlaps counted twice.
    pub area_m2: f64,
}

fn srs_traditional(mut srs: SpatialRef) -> SpatialRef {
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    srs
}

fn is_polygonal(g: &Geometry) -> bool {
    let t = gdal::vector::geometry_type_flatten(g.geometry_type());
    t == OGRwkbGeometryType::wkbPolygon || t == OGRwkbGeometryType::wkbMultiPolygon || t == OGRwkbGeometryType::wkbCurvePolygon || t == OGRwkbGeometryType::wkbMultiSurface
}

/// Reads every polygon of every layer of `path` and moves it into `crs_wkt`. A layer without a
/// CRS is taken as WGS84 longitude/latitude (GeoJSON's rule).
pub fn load_polygons(path: &Path, crs_wkt: &str) -> Result<Polygons> {
    let loc = path.display().to_string();
    let fail = |message: String| Error::Raster { location: loc.clone(), message };
    if !path.is_file() {
        return Err(fail("no such file; give a perimeter file GDAL/OGR reads (GeoJSON, Shapefile, GeoPackage, KML)".into()));
    }
    let ds = Dataset::open_ex(path, gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_VECTOR, ..Default::default() })
        .map_err(|e| fail(format!("not a vector file GDAL/OGR can read ({e}); give GeoJSON, Shapefile (.shp with its .shx/.dbf/.prj), GeoPackage or KML")))?;
    let target = srs_traditional(SpatialRef::from_wkt(crs_wkt).map_err(|e| fail(format!("the grid's CRS: {e}")))?);
    let wgs84 = srs_traditional(SpatialRef::from_epsg(4326).map_err(|e| fail(format!("WGS84: {e}")))?);
    let mut geometries = Vec::new();
    let mut bbox = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    let mut area_m2 = 0.0;
    let mut skipped = 0usize;
    for mut layer in ds.layers() {
        let source = layer.spatial_ref().map(srs_traditional).unwrap_or_else(|| wgs84.clone());
        for feature in layer.features() {
            let Some(g) = feature.geometry() else { continue };
            if g.is_empty() || !is_polygonal(g) {
                skipped += 1;
                continue;
            }
            let mut g = g.clone();
            g.set_spatial_ref(source.clone());
            let mut moved = g.transform_to(&target).map_err(|e| fail(format!("moving a polygon into the grid's CRS: {e}")))?;
            moved.set_spatial_ref(target.clone());
            let e = moved.envelope();
            bbox = [bbox[0].min(e.MinX), bbox[1].min(e.MinY), bbox[2].max(e.MaxX), bbox[3].max(e.MaxY)];
            area_m2 += moved.area();
            geometries.push(moved);
        }
    }
    if geometries.is_empty() {
        let also = if skipped > 0 { format!(" ({skipped} feature(s) of other kinds: points or lines)") } else { String::new() };
        return Err(fail(format!("has no polygon{also}; a perimeter file holds the burned area's polygons")));
    }
    Ok(Polygons { features: geometries.len(), geometries, bbox, area_m2 })
}

impl Polygons {
    /// Whether the polygons reach into a grid (`gt`, `width` x `height`).
    pub fn overlaps(&self, gt: &[f64; 6], width: usize, height: usize) -> bool {
        let (x0, y1) = (gt[0], gt[3]);
        let (x1, y0) = (gt[0] + gt[1] * width as f64, gt[3] + gt[5] * height as f64);
        self.bbox[0] < x1 && self.bbox[2] > x0 && self.bbox[1] < y1 && self.bbox[3] > y0
    }

    /// 1 inside a polygon, 0 outside, for rows `y0..y0 + rows` of a grid (`gt`, `width` wide):
    /// a pixel is inside when its centre is (GDAL's rasterization rule).
    pub fn burn_rows(&self, gt: &[f64; 6], crs_wkt: &str, width: usize, y0: usize, rows: usize) -> Result<Vec<u8>> {
        let fail = |e: gdal::errors::GdalError| Error::Raster { location: "perimeter".into(), message: format!("rasterizing the polygons: {e}") };
        let driver = DriverManager::get_driver_by_name("MEM").map_err(fail)?;
        let mut ds = driver.create_with_band_type::<u8, _>("", width, rows, 1).map_err(fail)?;
        let strip = [gt[0], gt[1], gt[2], gt[3] + gt[5] * y0 as f64, gt[4], gt[5]];
        ds.set_geo_transform(&strip).map_err(fail)?;
        ds.set_projection(crs_wkt).map_err(fail)?;
        let burn = vec![1.0; self.geometries.len()];
        gdal::raster::rasterize(&mut ds, &[1], &self.geometries, &burn, None).map_err(fail)?;
        let band = ds.rasterband(1).map_err(fail)?;
        let buf = band.read_as::<u8>((0, 0), (width, rows), (width, rows), None).map_err(fail)?;
        Ok(buf.data().to_vec())
    }

    /// Writes the polygons as GeoJSON (RFC 7946: WGS84 longitude/latitude), for the map.
    pub fn write_geojson(&self, path: &Path, layer_name: &str) -> Result<()> {
        use gdal::vector::LayerOptions;
        let loc = path.display().to_string();
        let fail = |e: String| Error::Raster { location: loc.clone(), message: format!("writing the perimeter: {e}") };
        let tmp = crate::fsutil::temp_sibling(path);
        let _ = std::fs::remove_file(&tmp);
        let result = (|| -> std::result::Result<(), String> {
            let driver = DriverManager::get_driver_by_name("GeoJSON").map_err(|e| e.to_string())?;
            let mut out = driver.create_vector_only(&tmp).map_err(|e| e.to_string())?;
            let wgs84 = srs_traditional(SpatialRef::from_epsg(4326).map_err(|e| e.to_string())?);
            let mut layer = out
                .create_layer(LayerOptions { name: layer_name, srs: Some(&wgs84), ty: OGRwkbGeometryType::wkbMultiPolygon, options: Some(&["RFC7946=YES", "COORDINATE_PRECISION=7"]) })
                .map_err(|e| e.to_string())?;
            for g in &self.geometries {
                let moved = g.transform_to(&wgs84).map_err(|e| e.to_string())?;
                layer.create_feature(moved).map_err(|e| e.to_string())?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => std::fs::rename(&tmp, path).map_err(Error::io(path, "moving the perimeter into place")),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(fail(e))
            }
        }
    }
}

/// Draws a label raster (`labels`, `width` x `height` on the grid `geo_transform`, `crs_wkt`;
/// 0 = none) as GeoJSON polygons (RFC 7946, WGS84) at `path`, one per 4-connected patch of a
/// label, written whole or not at all. Each feature carries `burned` (1), `id` (its label),
/// `area_ha` and the fields named in `fields`, whose values `values(id)` gives (`area_ha`
/// first, then one per field); `description` is the collection's `description` member (the
/// attribution and provenance).
#[allow(clippy::too_many_arguments)]
pub fn polygonize_labels(path: &Path, labels: &[u32], width: usize, height: usize, geo_transform: [f64; 6], crs_wkt: &str, layer_name: &str, description: &str, fields: &[&str], values: &dyn Fn(u32) -> Vec<f64>) -> Result<usize> {
    use gdal::vector::{Feature, LayerOptions, OGRFieldType};
    super::env::init_gdal();
    let loc = path.display().to_string();
    let tmp = crate::fsutil::temp_sibling(path);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| -> std::result::Result<usize, String> {
        let e = |e: gdal::errors::GdalError| e.to_string();
        let mem = DriverManager::get_driver_by_name("MEM").map_err(e)?;
        let mut ds = mem.create_with_band_type::<u32, _>("", width, height, 1).map_err(e)?;
        ds.set_geo_transform(&geo_transform).map_err(e)?;
        let srs = SpatialRef::from_wkt(crs_wkt).map_err(e)?;
        ds.set_spatial_ref(&srs).map_err(e)?;
        let mut band = ds.rasterband(1).map_err(e)?;
        let mut buffer = gdal::raster::Buffer::new((width, height), labels.to_vec());
        band.write((0, 0), (width, height), &mut buffer).map_err(e)?;
        // The patches into a layer in memory (their label in field 0), then into the file with
        // their fields (the GeoJSON driver writes features as they come).
        let memory = DriverManager::get_driver_by_name("Memory").map_err(e)?;
        let mut scratch = memory.create_vector_only("").map_err(e)?;
        let mut patches = scratch.create_layer(LayerOptions { name: "patches", srs: Some(&srs), ty: OGRwkbGeometryType::wkbPolygon, options: None }).map_err(e)?;
        patches.create_defn_fields(&[("id", OGRFieldType::OFTInteger)]).map_err(e)?;
        // SAFETY: the band (also its own mask: label 0 draws nothing) and the layer outlive the
        // call; options may be null.
        let err = unsafe {
            gdal_sys::CPLErrorReset();
            gdal_sys::GDALPolygonize(band.c_rasterband(), band.c_rasterband(), patches.c_layer(), 0, std::ptr::null_mut(), None, std::ptr::null_mut())
        };
        if err != gdal_sys::CPLErr::CE_None {
            return Err(super::ffi::last_gdal_message());
        }
        let driver = DriverManager::get_driver_by_name("GeoJSON").map_err(e)?;
        let mut out = driver.create_vector_only(&tmp).map_err(e)?;
        let description = format!("DESCRIPTION={description}");
        let layer = out
            .create_layer(LayerOptions { name: layer_name, srs: Some(&srs), ty: OGRwkbGeometryType::wkbPolygon, options: Some(&["RFC7946=YES", "COORDINATE_PRECISION=7", &description]) })
            .map_err(e)?;
        let mut defs: Vec<(&str, OGRFieldType::Type)> = vec![("burned", OGRFieldType::OFTInteger), ("id", OGRFieldType::OFTInteger), ("area_ha", OGRFieldType::OFTReal)];
        defs.extend(fields.iter().map(|f| (*f, OGRFieldType::OFTReal)));
        layer.create_defn_fields(&defs).map_err(e)?;
        let mut count = 0;
        for patch in patches.features() {
            let id = patch.field_as_integer(0).map_err(e)?.unwrap_or(0);
            let Some(geometry) = patch.geometry() else { continue };
            let mut f = Feature::new(layer.defn()).map_err(e)?;
            f.set_geometry(geometry.clone()).map_err(e)?;
            f.set_field_integer(0, 1).map_err(e)?;
            f.set_field_integer(1, id).map_err(e)?;
            for (k, v) in values(id as u32).into_iter().enumerate().take(fields.len() + 1) {
                f.set_field_double(2 + k, (v * 1e4).round() / 1e4).map_err(e)?;
            }
            f.create(&layer).map_err(e)?;
            count += 1;
        }
        drop(out);
        Ok(count)
    })();
    match result {
        Ok(count) => {
            std::fs::rename(&tmp, path).map_err(Error::io(path, "moving the perimeters into place"))?;
            Ok(count)
        }
        Err(message) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::Raster { location: loc, message: format!("drawing the perimeters: {message}") })
        }
    }
}
