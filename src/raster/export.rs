//! Vector files in the formats agencies exchange: GeoPackage, zipped Shapefile (with its .prj),
//! KML and GeoJSON, each with the data's attribution and the provenance of what made it (as
//! fields of every feature, and as the file's metadata where the format has some); and class
//! maps drawn as polygons, one per patch of a class, with its name and area.

use std::path::{Path, PathBuf};

use gdal::spatial_ref::SpatialRef;
use gdal::vector::{Feature, LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType};
use gdal::{Dataset, DriverManager};

use crate::error::{Error, Result};

/// What every exported file says of itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tags {
    /// The data's attribution (Copernicus, the dataset).
    pub attribution: String,
    /// What made the file: software version, run, model checksum.
    pub provenance: String,
}

/// The vector format of an output path, by its extension: (GDAL driver, in words).
pub fn vector_format(out: &Path) -> Option<(&'static str, &'static str)> {
    let name = out.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".gpkg") {
        Some(("GPKG", "GeoPackage"))
    } else if name.ends_with(".shp.zip") || name.ends_with(".shz") {
        Some(("ESRI Shapefile", "zipped Shapefile with .prj"))
    } else if name.ends_with(".kml") {
        Some((if DriverManager::get_driver_by_name("LIBKML").is_ok() { "LIBKML" } else { "KML" }, "KML (WGS84)"))
    } else if name.ends_with(".geojson") || name.ends_with(".json") {
        Some(("GeoJSON", "GeoJSON (WGS84)"))
    } else {
        None
    }
}

/// The extensions [`vector_format`] knows, for messages.
pub const VECTOR_EXTENSIONS: &str = ".gpkg, .shp.zip, .kml or .geojson";

/// A temporary name beside `out` that keeps its extensions (drivers choose by them: a
/// Shapefile is zipped when the name ends .shp.zip).
fn partial(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    out.with_file_name(format!(".partial-{}-{name}", std::process::id()))
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Writes the first layer of `src` to `out` in the format its extension names, with fields
/// `source` (the attribution) and `made_by` (the provenance) on every feature, and the same as
/// the GeoPackage's metadata or the KML document's description. Whole or not at all.
pub fn translate_vector(src: &Dataset, what: &str, out: &Path, tags: &Tags) -> Result<String> {
    super::env::init_gdal();
    let loc = out.display().to_string();
    let Some((driver, words)) = vector_format(out) else {
        return Err(Error::invalid("--out", format!("{loc}: write {VECTOR_EXTENSIONS}")));
    };
    let layer = src.layer(0).map_err(|e| Error::Raster { location: what.into(), message: format!("no layer to export: {e}") })?;
    let layer_name = layer.name();
    drop(layer);
    let stem = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or("layer").to_string();
    let mut args: Vec<String> = vec!["-f".into(), driver.into(), "-nln".into(), stem.clone()];
    args.extend(["-dialect".into(), "OGRSQL".into(), "-sql".into(), format!("SELECT *, {} AS source, {} AS made_by FROM \"{}\"", sql_text(&tags.attribution), sql_text(&tags.provenance), layer_name.replace('"', ""))]);
    match driver {
        "GPKG" => {
            args.extend(["-mo".into(), format!("ATTRIBUTION={}", tags.attribution), "-mo".into(), format!("PROVENANCE={}", tags.provenance)]);
        }
        "LIBKML" => {
            args.extend(["-t_srs".into(), "EPSG:4326".into(), "-dsco".into(), format!("NAME={stem}"), "-dsco".into(), format!("DESCRIPTION={}. {}", tags.attribution, tags.provenance)]);
        }
        "KML" => args.extend(["-t_srs".into(), "EPSG:4326".into()]),
        "GeoJSON" => args.extend(["-t_srs".into(), "EPSG:4326".into(), "-lco".into(), "RFC7946=YES".into()]),
        _ => {}
    }
    let tmp = partial(out);
    let _ = std::fs::remove_file(&tmp);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(Error::io(parent, "creating the folder"))?;
    }
    match super::ffi::run_vector_translate(src, &tmp, &args) {
        Ok(()) => {
            std::fs::rename(&tmp, out).map_err(Error::io(out, "moving the export into place"))?;
            Ok(words.to_string())
        }
        Err(m) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::Raster { location: loc, message: format!("writing {words} from {what}: {m}") })
        }
    }
}

/// [`translate_vector`] of a vector file.
pub fn export_vector(src: &Path, out: &Path, tags: &Tags) -> Result<String> {
    super::env::init_gdal();
    let ds = Dataset::open_ex(src, gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_VECTOR, ..Default::default() })
        .map_err(|e| Error::Raster { location: src.display().to_string(), message: format!("not a vector file GDAL/OGR reads ({e}); assess again") })?;
    translate_vector(&ds, &src.display().to_string(), out, tags)
}

/// A class map (`codes`, 0 = no data, on the grid `geo_transform`, `crs_wkt`) as polygons, one
/// per 4-connected patch of a class, each with `code`, `class` (its name in `classes`) and
/// `area_ha`, written to `out` in the format its extension names. Returns the polygons written.
#[allow(clippy::too_many_arguments)]
pub fn write_class_polygons(out: &Path, codes: &[u8], width: usize, height: usize, geo_transform: [f64; 6], crs_wkt: &str, classes: &[(u8, [u8; 3], &str)], tags: &Tags) -> Result<usize> {
    super::env::init_gdal();
    let loc = out.display().to_string();
    let fail = |e: String| Error::Raster { location: loc.clone(), message: format!("drawing the class polygons: {e}") };
    let e = |e: gdal::errors::GdalError| e.to_string();
    let mem = DriverManager::get_driver_by_name("MEM").map_err(|x| fail(e(x)))?;
    let mut ds = mem.create_with_band_type::<u8, _>("", width, height, 1).map_err(|x| fail(e(x)))?;
    ds.set_geo_transform(&geo_transform).map_err(|x| fail(e(x)))?;
    let srs = SpatialRef::from_wkt(crs_wkt).map_err(|x| fail(e(x)))?;
    ds.set_spatial_ref(&srs).map_err(|x| fail(e(x)))?;
    let mut band = ds.rasterband(1).map_err(|x| fail(e(x)))?;
    let mut buffer = gdal::raster::Buffer::new((width, height), codes.to_vec());
    band.write((0, 0), (width, height), &mut buffer).map_err(|x| fail(e(x)))?;
    let memory = DriverManager::get_driver_by_name("Memory").map_err(|x| fail(e(x)))?;
    let mut scratch = memory.create_vector_only("").map_err(|x| fail(e(x)))?;
    let mut patches = scratch.create_layer(LayerOptions { name: "patches", srs: Some(&srs), ty: OGRwkbGeometryType::wkbPolygon, options: None }).map_err(|x| fail(e(x)))?;
    patches.create_defn_fields(&[("code", OGRFieldType::OFTInteger)]).map_err(|x| fail(e(x)))?;
    // SAFETY: the band (its own mask: code 0 draws nothing) and the layer outlive the call;
    // options may be null.
    let err = unsafe {
        gdal_sys::CPLErrorReset();
        gdal_sys::GDALPolygonize(band.c_rasterband(), band.c_rasterband(), patches.c_layer(), 0, std::ptr::null_mut(), None, std::ptr::null_mut())
    };
    if err != gdal_sys::CPLErr::CE_None {
        return Err(fail(super::ffi::last_gdal_message()));
    }
    let mut named = memory.create_vector_only("").map_err(|x| fail(e(x)))?;
    let layer = named.create_layer(LayerOptions { name: "classes", srs: Some(&srs), ty: OGRwkbGeometryType::wkbPolygon, options: None }).map_err(|x| fail(e(x)))?;
    layer.create_defn_fields(&[("code", OGRFieldType::OFTInteger), ("class", OGRFieldType::OFTString), ("area_ha", OGRFieldType::OFTReal)]).map_err(|x| fail(e(x)))?;
    let mut count = 0;
    for patch in patches.features() {
        let code = patch.field_as_integer(0).map_err(|x| fail(e(x)))?.unwrap_or(0);
        let Some(geometry) = patch.geometry() else { continue };
        let mut f = Feature::new(layer.defn()).map_err(|x| fail(e(x)))?;
        f.set_geometry(geometry.clone()).map_err(|x| fail(e(x)))?;
        f.set_field_integer(0, code).map_err(|x| fail(e(x)))?;
        let name = classes.iter().find(|c| c.0 as i32 == code).map_or_else(|| format!("class {code}"), |c| c.2.to_string());
        f.set_field_string(1, &name).map_err(|x| fail(e(x)))?;
        f.set_field_double(2, (geometry.area() / 10_000.0 * 1e4).round() / 1e4).map_err(|x| fail(e(x)))?;
        f.create(&layer).map_err(|x| fail(e(x)))?;
        count += 1;
    }
    drop(layer);
    translate_vector(&named, "the class polygons", out, tags)?;
    Ok(count)
}
