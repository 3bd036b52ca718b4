//! The process graphs of one date, from the project's grid, bands and mask rules, with standard
//! openEO processes only, each ending in one GeoTIFF (`save_result`); and a graph's digest, its
//! identity for taking up jobs and skipping outputs.

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::grid::TargetGrid;

/// What a graph needs of the project: the grid and one day.
#[derive(Debug, Clone)]
pub struct GraphScope<'a> {
    pub grid: &'a TargetGrid,
    /// `YYYY-MM-DD`.
    pub date: &'a str,
}

impl GraphScope<'_> {
    pub(super) fn spatial_extent(&self) -> Value {
        let g = self.grid;
        json!({
            "west": g.x_min,
            "south": g.y_max - g.height as f64 * g.pixel_size_m,
            "east": g.x_min + g.width as f64 * g.pixel_size_m,
            "north": g.y_max,
            "crs": g.epsg,
        })
    }

    /// `[date, date + 1 day)`.
    pub(super) fn temporal_extent(&self) -> Result<Value> {
        let day = chrono::NaiveDate::parse_from_str(self.date, "%Y-%m-%d").map_err(|e| Error::invalid("date", format!("{:?}: {e}", self.date)))?;
        let next = day.succ_opt().ok_or_else(|| Error::invalid("date", format!("{:?} has no next day", self.date)))?;
        Ok(json!([day.format("%Y-%m-%d").to_string(), next.format("%Y-%m-%d").to_string()]))
    }

    pub(super) fn load(&self, collection: &str, bands: &[String]) -> Result<Value> {
        Ok(json!({"process_id": "load_collection", "arguments": {
            "id": collection, "spatial_extent": self.spatial_extent(), "temporal_extent": self.temporal_extent()?, "bands": bands}}))
    }

    pub(super) fn resample(&self, from: &str, method: &str) -> Value {
        json!({"process_id": "resample_spatial", "arguments": {
            "data": {"from_node": from}, "resolution": self.grid.pixel_size_m, "projection": self.grid.epsg,
            "method": method, "align": "upper-left"}})
    }
}

/// A callback that is 1 where the first band's value is one of `classes` (or NaN when
/// `nan`), else 0.
pub(super) fn class_reducer(classes: &[u8], nan: bool) -> Value {
    let mut pg = serde_json::Map::new();
    pg.insert("scl".into(), json!({"process_id": "array_element", "arguments": {"data": {"from_parameter": "data"}, "index": 0}}));
    let mut terms: Vec<String> = Vec::new();
    for c in classes {
        let name = format!("eq{c}");
        pg.insert(name.clone(), json!({"process_id": "eq", "arguments": {"x": {"from_node": "scl"}, "y": c}}));
        terms.push(name);
    }
    if nan {
        pg.insert("isnan".into(), json!({"process_id": "is_nan", "arguments": {"x": {"from_node": "scl"}}}));
        terms.push("isnan".into());
    }
    let mut last = terms.first().cloned().unwrap_or_else(|| "scl".into());
    for (i, t) in terms.iter().enumerate().skip(1) {
        let name = format!("or{i}");
        pg.insert(name.clone(), json!({"process_id": "or", "arguments": {"x": {"from_node": last}, "y": {"from_node": t}}}));
        last = name;
    }
    pg.insert("out".into(), json!({"process_id": "if", "arguments": {"value": {"from_node": last}, "accept": 1, "reject": 0}, "result": true}));
    json!({"process_graph": pg})
}

/// Mosaic of the day (the first valid value over time) and one GeoTIFF.
pub(super) fn mosaic_and_save(g: &mut serde_json::Map<String, Value>, from: &str) {
    g.insert("mosaic".into(), json!({"process_id": "reduce_dimension", "arguments": {"data": {"from_node": from}, "dimension": "t",
        "reducer": {"process_graph": {"first": {"process_id": "first", "arguments": {"data": {"from_parameter": "data"}, "ignore_nodata": true}, "result": true}}}}}));
    g.insert("save".into(), json!({"process_id": "save_result", "arguments": {"data": {"from_node": "mosaic"}, "format": "GTiff"}, "result": true}));
}

/// Sentinel-2 of one date: reflectance of `bands` on the grid, masked by the SCL rules when
/// `scl` (the mask of the native engine: classes 3, 8, 9, 10 (and 11 with `mask.snow`) dilated
/// by `mask.buffer_px` in a square, classes 0 and 1 as they are).
pub fn s2_graph(scope: &GraphScope, collection: &str, bands: &[String], scl: bool, mask: &crate::preprocess::s2::SclMaskOptions, resampling: crate::raster::Resampling, scaling: &super::S2Scaling) -> Result<Value> {
    let mut g = serde_json::Map::new();
    g.insert("load_bands".into(), scope.load(collection, bands)?);
    g.insert("resample_bands".into(), scope.resample("load_bands", resampling.gdal_name()));
    let mut last = "resample_bands".to_string();
    if scl {
        g.insert("load_scl".into(), scope.load(collection, &["SCL".to_string()])?);
        g.insert("resample_scl".into(), scope.resample("load_scl", "near"));
        let mut grow: Vec<u8> = vec![3, 8, 9, 10];
        if mask.snow {
            grow.push(11);
        }
        g.insert("clouds".into(), json!({"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "resample_scl"}, "dimension": "bands", "reducer": class_reducer(&grow, false)}}));
        let mut clouds = "clouds".to_string();
        if mask.buffer_px > 0 {
            let side = 2 * mask.buffer_px + 1;
            let kernel = vec![vec![1; side]; side];
            g.insert("buffer".into(), json!({"process_id": "apply_kernel", "arguments": {"data": {"from_node": "clouds"}, "kernel": kernel, "factor": 1, "border": 0, "replace_invalid": 0}}));
            clouds = "buffer".into();
        }
        g.insert("no_data".into(), json!({"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "resample_scl"}, "dimension": "bands", "reducer": class_reducer(&[0, 1], true)}}));
        g.insert("mask_clouds".into(), json!({"process_id": "mask", "arguments": {"data": {"from_node": last}, "mask": {"from_node": clouds}}}));
        g.insert("mask_no_data".into(), json!({"process_id": "mask", "arguments": {"data": {"from_node": "mask_clouds"}, "mask": {"from_node": "no_data"}}}));
        last = "mask_no_data".into();
    }
    if let Some(threshold) = mask.haze_aot {
        // Haze and smoke: aerosol optical thickness (DN / 1000) above the threshold.
        g.insert("load_aot".into(), scope.load(collection, &["AOT".to_string()])?);
        g.insert("resample_aot".into(), scope.resample("load_aot", "bilinear"));
        g.insert("haze".into(), json!({"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "resample_aot"}, "dimension": "bands", "reducer": {"process_graph": {
            "aot": {"process_id": "array_element", "arguments": {"data": {"from_parameter": "data"}, "index": 0}},
            "scaled": {"process_id": "divide", "arguments": {"x": {"from_node": "aot"}, "y": crate::preprocess::s2::AOT_QUANTIFICATION_VALUE}},
            "above": {"process_id": "gt", "arguments": {"x": {"from_node": "scaled"}, "y": threshold}},
            "out": {"process_id": "if", "arguments": {"value": {"from_node": "above"}, "accept": 1, "reject": 0}, "result": true}}}}}));
        g.insert("mask_haze".into(), json!({"process_id": "mask", "arguments": {"data": {"from_node": last}, "mask": {"from_node": "haze"}}}));
        last = "mask_haze".into();
    }
    g.insert("reflectance".into(), json!({"process_id": "apply", "arguments": {"data": {"from_node": last}, "process": {"process_graph": {
        "scale": {"process_id": "multiply", "arguments": {"x": {"from_parameter": "x"}, "y": scaling.scale}},
        "offset": {"process_id": "add", "arguments": {"x": {"from_node": "scale"}, "y": scaling.offset}, "result": true}}}}}));
    mosaic_and_save(&mut g, "reflectance");
    Ok(Value::Object(g))
}

/// Sentinel-1 of one date: `sar_backscatter` (noise removed), on the grid, in dB.
pub fn s1_graph(scope: &GraphScope, collection: &str, polarisations: &[String], coefficient: &str) -> Result<Value> {
    let mut g = serde_json::Map::new();
    g.insert("load".into(), scope.load(collection, polarisations)?);
    g.insert("backscatter".into(), json!({"process_id": "sar_backscatter", "arguments": {"data": {"from_node": "load"}, "coefficient": coefficient,
        "elevation_model": null, "mask": false, "contributing_area": false, "local_incidence_angle": false, "ellipsoid_incidence_angle": false, "noise_removal": true}}));
    g.insert("resample".into(), scope.resample("backscatter", "bilinear"));
    g.insert("db".into(), json!({"process_id": "apply", "arguments": {"data": {"from_node": "resample"}, "process": {"process_graph": {
        "floor": {"process_id": "clip", "arguments": {"x": {"from_parameter": "x"}, "min": crate::preprocess::s1::DB_FLOOR_LINEAR, "max": 1e30}},
        "log": {"process_id": "log", "arguments": {"x": {"from_node": "floor"}, "base": 10}},
        "db": {"process_id": "multiply", "arguments": {"x": {"from_node": "log"}, "y": 10}, "result": true}}}}}));
    mosaic_and_save(&mut g, "db");
    Ok(Value::Object(g))
}

/// SHA-256 of a graph's JSON (its identity for resuming jobs and skipping outputs).
pub fn graph_digest(graph: &Value) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(graph).unwrap_or_default();
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn grid() -> TargetGrid {
        TargetGrid { epsg: 32650, pixel_size_m: 10.0, x_min: 701880.0, y_max: 3710100.0, width: 240, height: 200 }
    }

    #[test]
    pub(super) fn the_s2_graph_follows_the_project() {
        let g = grid();
        let scope = GraphScope { grid: &g, date: "2018-09-30" };
        let bands: Vec<String> = ["B04", "B08"].map(String::from).to_vec();
        let mask = crate::preprocess::s2::SclMaskOptions { snow: true, buffer_px: 2, haze_aot: None };
        let scaling = super::super::S2Scaling { scale: 0.0001, offset: -0.1, source: String::new(), warning: None };
        let v = s2_graph(&scope, "SENTINEL2_L2A", &bands, true, &mask, crate::raster::Resampling::Bilinear, &scaling).unwrap();
        let load = &v["load_bands"]["arguments"];
        assert_eq!(load["spatial_extent"], json!({"west": 701880.0, "south": 3708100.0, "east": 704280.0, "north": 3710100.0, "crs": 32650}));
        assert_eq!(load["temporal_extent"], json!(["2018-09-30", "2018-10-01"]));
        assert_eq!(load["bands"], json!(["B04", "B08"]));
        assert_eq!(v["resample_scl"]["arguments"]["method"], "near");
        assert_eq!(v["resample_bands"]["arguments"]["method"], "bilinear");
        assert_eq!(v["buffer"]["arguments"]["kernel"].as_array().unwrap().len(), 5);
        let clouds = v["clouds"]["arguments"]["reducer"]["process_graph"].as_object().unwrap();
        assert!(clouds.contains_key("eq11") && clouds.contains_key("eq3") && !clouds.contains_key("eq4"));
        let reflectance = &v["reflectance"]["arguments"]["process"]["process_graph"];
        assert_eq!((reflectance["scale"]["arguments"]["y"].clone(), reflectance["offset"]["arguments"]["y"].clone()), (json!(0.0001), json!(-0.1)));
        assert_eq!(v.as_object().unwrap().values().filter(|n| n["result"] == json!(true)).count(), 1);
        // No buffer, no snow: no kernel, no class 11.
        let plain = s2_graph(&scope, "X", &bands, true, &crate::preprocess::s2::SclMaskOptions { snow: false, buffer_px: 0, haze_aot: None }, crate::raster::Resampling::Bilinear, &scaling).unwrap();
        assert!(plain.get("buffer").is_none() && plain["mask_clouds"]["arguments"]["mask"]["from_node"] == "clouds");
        assert!(plain["clouds"]["arguments"]["reducer"]["process_graph"].get("eq11").is_none());
        assert!(plain.get("haze").is_none());
        // The haze mask from AOT, after the SCL masks.
        let hazy = s2_graph(&scope, "X", &bands, true, &crate::preprocess::s2::SclMaskOptions { haze_aot: Some(0.5), ..Default::default() }, crate::raster::Resampling::Bilinear, &scaling).unwrap();
        assert_eq!(hazy["load_aot"]["arguments"]["bands"], json!(["AOT"]));
        assert_eq!(hazy["haze"]["arguments"]["reducer"]["process_graph"]["above"]["arguments"]["y"].as_f64().map(|v| v as f32), Some(0.5));
        assert_eq!(hazy["mask_haze"]["arguments"]["data"]["from_node"], "mask_no_data");
        assert_eq!(hazy["reflectance"]["arguments"]["data"]["from_node"], "mask_haze");
        assert_ne!(graph_digest(&v), graph_digest(&plain));
        assert!(GraphScope { grid: &g, date: "2018-13-01" }.temporal_extent().is_err());
    }

    #[test]
    pub(super) fn the_s1_graph_asks_for_terrain_correction_and_db() {
        let g = grid();
        let v = s1_graph(&GraphScope { grid: &g, date: "2018-12-31" }, "SENTINEL1_GRD", &["VV".into(), "VH".into()], "gamma0-terrain").unwrap();
        assert_eq!(v["backscatter"]["arguments"]["coefficient"], "gamma0-terrain");
        assert_eq!(v["backscatter"]["arguments"]["noise_removal"], true);
        assert_eq!(v["load"]["arguments"]["temporal_extent"], json!(["2018-12-31", "2019-01-01"]));
        assert_eq!(v["db"]["arguments"]["process"]["process_graph"]["floor"]["arguments"]["min"].as_f64().unwrap() as f32, crate::preprocess::s1::DB_FLOOR_LINEAR);
        assert_eq!(v["save"]["arguments"]["format"], "GTiff");
    }
}
