//! Points with a value from any vector file OGR reads, or a CSV with longitude and latitude
//! columns: field plots (a Composite Burn Index per plot) moved into a grid's CRS.

use std::path::Path;

use gdal::Dataset;
use gdal::spatial_ref::{AxisMappingStrategy, SpatialRef};
use gdal::vector::{FieldValue, LayerAccess, OGRwkbGeometryType};

use crate::error::{Error, Result};

/// One point of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRecord {
    /// Its `id`, `plot`, `plot_id` or `name` field, else its feature number (from 1).
    pub id: String,
    pub lon: f64,
    pub lat: f64,
    /// In the grid's CRS.
    pub x: f64,
    pub y: f64,
    /// The value field's number, or why there is none.
    pub value: std::result::Result<f64, String>,
}

fn traditional(mut srs: SpatialRef) -> SpatialRef {
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    srs
}

fn number(v: Option<FieldValue>) -> std::result::Result<f64, String> {
    match v {
        None => Err("empty".into()),
        Some(FieldValue::RealValue(x)) => Ok(x),
        Some(FieldValue::IntegerValue(x)) => Ok(x as f64),
        Some(FieldValue::Integer64Value(x)) => Ok(x as f64),
        Some(FieldValue::StringValue(s)) if s.trim().is_empty() => Err("empty".into()),
        Some(FieldValue::StringValue(s)) => s.trim().parse::<f64>().map_err(|_| format!("{s:?} is not a number")),
        Some(other) => Err(format!("{other:?} is not a number")),
    }
}

fn text(v: Option<FieldValue>) -> Option<String> {
    match v? {
        FieldValue::StringValue(s) => Some(s),
        FieldValue::IntegerValue(x) => Some(x.to_string()),
        FieldValue::Integer64Value(x) => Some(x.to_string()),
        FieldValue::RealValue(x) => Some(x.to_string()),
        _ => None,
    }
}

/// Reads every point of `path` with its `field` (case does not matter), moved into `crs_wkt`.
/// A CSV gives its points in columns `lon`/`longitude`/`x` and `lat`/`latitude`/`y`, WGS84; any
/// other layer without a CRS is taken as WGS84 (GeoJSON's rule). A file that is missing, not
/// vector data, without points, or without the field is refused, naming what it has.
pub fn load_points(path: &Path, crs_wkt: &str, field: &str) -> Result<Vec<PointRecord>> {
    super::env::init_gdal();
    let loc = path.display().to_string();
    let fail = |message: String| Error::Raster { location: loc.clone(), message };
    if !path.is_file() {
        return Err(fail("no such file; give a point file GDAL/OGR reads (GeoPackage, Shapefile, GeoJSON, KML) or a CSV with lon, lat and CBI columns".into()));
    }
    let csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let options: &[&str] = if csv { &["X_POSSIBLE_NAMES=lon,longitude,long,x", "Y_POSSIBLE_NAMES=lat,latitude,y", "KEEP_GEOM_COLUMNS=NO"] } else { &[] };
    let ds = Dataset::open_ex(path, gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_VECTOR, open_options: Some(options), ..Default::default() })
        .map_err(|e| fail(format!("not a vector file GDAL/OGR can read ({e}); give GeoPackage, Shapefile, GeoJSON, KML or a CSV with lon and lat columns")))?;
    let target = traditional(SpatialRef::from_wkt(crs_wkt).map_err(|e| fail(format!("the grid's CRS: {e}")))?);
    let wgs84 = traditional(SpatialRef::from_epsg(4326).map_err(|e| fail(format!("WGS84: {e}")))?);
    let to_grid = gdal::spatial_ref::CoordTransform::new(&wgs84, &target).map_err(|e| fail(format!("WGS84 to the grid's CRS: {e}")))?;
    let (mut points, mut other, mut fields_seen) = (Vec::new(), 0usize, Vec::<String>::new());
    let mut has_field = false;
    for mut layer in ds.layers() {
        let names: Vec<String> = layer.defn().fields().map(|f| f.name()).collect();
        let value_field = names.iter().position(|n| n.eq_ignore_ascii_case(field));
        let id_field = names.iter().position(|n| ["id", "plot", "plot_id", "name"].iter().any(|k| n.eq_ignore_ascii_case(k)));
        has_field |= value_field.is_some();
        fields_seen.extend(names.iter().cloned());
        let source = layer.spatial_ref().map(traditional).unwrap_or_else(|| wgs84.clone());
        let to_wgs84 = gdal::spatial_ref::CoordTransform::new(&source, &wgs84).map_err(|e| fail(format!("the file's CRS to WGS84: {e}")))?;
        for (k, feature) in layer.features().enumerate() {
            let Some(g) = feature.geometry().filter(|g| !g.is_empty()) else {
                other += 1;
                continue;
            };
            let t = gdal::vector::geometry_type_flatten(g.geometry_type());
            let (x, y, _) = if t == OGRwkbGeometryType::wkbPoint {
                g.get_point(0)
            } else if t == OGRwkbGeometryType::wkbMultiPoint && g.geometry_count() == 1 {
                g.get_geometry(0).get_point(0)
            } else {
                other += 1;
                continue;
            };
            let (mut lon, mut lat, mut z) = ([x], [y], [0.0]);
            to_wgs84.transform_coords(&mut lon, &mut lat, &mut z).map_err(|e| fail(format!("point {}: {e}", k + 1)))?;
            let (mut gx, mut gy) = (lon, lat);
            to_grid.transform_coords(&mut gx, &mut gy, &mut z).map_err(|e| fail(format!("point {}: {e}", k + 1)))?;
            let value = match value_field {
                Some(i) => number(feature.field(i).ok().flatten()),
                None => Err(format!("no {field} field")),
            };
            let id = id_field.and_then(|i| text(feature.field(i).ok().flatten())).unwrap_or_else(|| (points.len() + 1).to_string());
            points.push(PointRecord { id, lon: lon[0], lat: lat[0], x: gx[0], y: gy[0], value });
        }
    }
    if points.is_empty() {
        let also = if other > 0 { format!(" ({other} feature(s) without a point: polygons, lines or empty)") } else { String::new() };
        return Err(fail(format!("has no plots{also}; give one point per field plot with its {field}")));
    }
    if !has_field {
        fields_seen.dedup();
        return Err(fail(format!("has no field {field:?} (fields: {}); name the plots' field, e.g. --plots-field CBI_TOTAL", if fields_seen.is_empty() { "none".into() } else { fields_seen.join(", ") })));
    }
    Ok(points)
}
