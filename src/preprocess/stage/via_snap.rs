//! The SNAP engine: the research code's graphs run by ESA SNAP's `gpt` on whole SAFE products,
//! their output warped onto the grid and written by the same writers.

use std::path::{Path, PathBuf};

use super::s2;
use super::snap::{self, SnapGraph, SnapParams};
use super::{PreprocessConfig, Preprocessed, scene_dir};
use crate::catalog::Scene;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::Project;
use crate::raster::{self, Resampling, WarpOptions};
use super::writers::*;

/// A SAFE product (folder or zip) of `scene` in `dir`: names starting with the scene id (PC
/// and Earth Search ids are SAFE names without the unique suffix), or for Sentinel-2 any L2A
/// product of the same date and MGRS tile.
pub(super) fn find_product(dir: &Path, scene: &Scene) -> Option<PathBuf> {
    let id = scene.id.trim_end_matches("_rtc");
    let day = scene.datetime.format("%Y%m%d").to_string();
    let tile = scene.mgrs_tile.as_deref().map(|t| format!("_T{t}_"));
    let entries = std::fs::read_dir(dir).ok()?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let is_product = name.ends_with(".SAFE") || name.ends_with(".zip");
            let same_scene = name.starts_with(id)
                || (name.contains(&format!("MSIL2A_{day}")) && tile.as_ref().is_some_and(|t| name.contains(t.as_str())));
            is_product && same_scene
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

pub(super) fn snap_product(project: &Project, scene: &Scene, products: Option<&Path>) -> Result<PathBuf> {
    let dirs: Vec<PathBuf> = products.map(Path::to_path_buf).into_iter().chain([scene_dir(project, scene)]).collect();
    dirs.iter().find_map(|d| find_product(d, scene)).ok_or_else(|| Error::Project {
        path: dirs[0].clone(),
        message: format!(
            "no SAFE product (folder or zip) for {} in {}: the SNAP engine works on whole products; download it \
             (e.g. from the Copernicus Data Space Browser) into one of these folders, or use the native engine",
            scene.id,
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" or ")
        ),
    })
}

/// SNAP's names of Sentinel-2 bands (B2 ... B12, B8A).
pub(super) fn snap_band_name(band: &str) -> String {
    match band {
        "SCL" => "quality_scene_classification".into(),
        "AOT" => "quality_aot".into(),
        b => match b.strip_prefix("B0") {
            Some(rest) => format!("B{rest}"),
            None => b.into(),
        },
    }
}

pub(super) fn snap_params(project: &Project, input: PathBuf, output: PathBuf) -> Result<SnapParams> {
    let aoi = project.aoi()?;
    // Subset takes one polygon: the AOI's when it is one, else its bounding box.
    let lines = aoi.to_wkt_lines();
    let geo_region_wkt = match lines.lines().collect::<Vec<_>>().as_slice() {
        [one] => one.to_string(),
        _ => {
            let b = aoi.bbox();
            format!("POLYGON (({0} {1}, {2} {1}, {2} {3}, {0} {3}, {0} {1}))", b[0], b[1], b[2], b[3])
        }
    };
    Ok(SnapParams {
        input,
        output,
        geo_region_wkt,
        grid: project.config.grid.clone(),
        polarisations: project.config.bands.s1.clone(),
        s2_bands: project.config.bands.s2.iter().map(|b| snap_band_name(b)).collect(),
    })
}

pub(super) fn s2_snap(project: &Project, scenes: &[&Scene], cfg: &PreprocessConfig, gpt: &Path, products: Option<&Path>, date: &str, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
    let grid = &project.config.grid;
    // One SNAP run per scene of the date; the grid warp mosaics them.
    let mut outputs = Vec::new();
    for (i, scene) in scenes.iter().enumerate() {
        let input = snap_product(project, scene, products)?;
        let output = tmp.join(format!("snap-s2-{i}.tif"));
        snap::run_graph(gpt, SnapGraph::Sentinel2, &snap_params(project, input, output.clone())?, progress)?;
        outputs.push(output.display().to_string());
    }
    // The graph keeps the bands in the order asked; SNAP's reader already applied the scale and
    // offset when the output is floating point, integer output holds digital numbers (0 = none).
    let first = raster::info(&outputs[0])?;
    let integer = first.bands.first().is_some_and(|b| !b.data_type.contains("Float"));
    let src_nodata = integer.then_some(0.0);
    let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    // Measurements bilinear (or as configured), the classes nearest.
    let warp = |name: &str, resampling: Resampling| -> Result<String> {
        let out = tmp.join(name);
        raster::warp_to_grid(&refs, &out, grid, &WarpOptions { resampling, src_nodata, dst_nodata: Some(f64::NAN), output_type: Some("Float32".into()), tps: false })?;
        Ok(out.display().to_string())
    };
    let mosaic = warp("snap-s2.tif", cfg.s2_resampling)?;
    let mut bands = Vec::new();
    let mut scl = None;
    let mut aot = None;
    for (i, name) in project.config.bands.s2.iter().enumerate() {
        if name == "SCL" {
            scl = Some(BandRef { name: name.clone(), path: warp("snap-s2-classes.tif", Resampling::Nearest)?, band: i + 1 });
        } else if name == "AOT" {
            aot = Some(BandRef { name: name.clone(), path: mosaic.clone(), band: i + 1 });
        } else {
            bands.push(BandRef { name: name.clone(), path: mosaic.clone(), band: i + 1 });
        }
    }
    let dn_offset = integer.then(|| s2::dn_offset(scenes[0].processing_baseline.as_deref(), scenes[0].boa_offset_applied));
    let path = project.preprocessed_s2(date);
    // SNAP's floating-point output is scaled already (AOT as is); integer output holds DNs.
    let aot = if cfg.mask.haze_aot.is_some() { aot.map(|b| (b, if integer { s2::AOT_QUANTIFICATION_VALUE } else { 1.0 })) } else { None };
    let (valid_percent, counts) = write_s2(grid, &S2Sources { bands, scl, aot, dn_offset }, cfg, &path, progress)?;
    Ok(Preprocessed { date: date.into(), sensor: "S2".into(), path, valid_percent, mask_counts: Some(counts), processing: "SNAP gpt calibrate_sent2.xml, warped onto the grid".into() })
}

pub(super) fn s1_snap(project: &Project, scene: &Scene, cfg: &PreprocessConfig, graph: SnapGraph, gpt: &Path, products: Option<&Path>, tmp: &Path, progress: &Progress) -> Result<Preprocessed> {
    let grid = &project.config.grid;
    let date = crate::project::date_folder(&scene.datetime);
    let input = snap_product(project, scene, products)?;
    let output = tmp.join("snap-s1.tif");
    snap::run_graph(gpt, graph, &snap_params(project, input, output.clone())?, progress)?;
    let warped = warp_all_bands(&output, tmp, "snap-s1-grid", grid, Resampling::Bilinear)?;
    let bands: Vec<BandRef> = project.config.bands.s1.iter().enumerate().map(|(i, p)| BandRef { name: p.clone(), path: warped.clone(), band: i + 1 }).collect();
    // v1 writes linear sigma0; v2 and v3 end with LinearToFromdB.
    let values = if graph == SnapGraph::Sentinel1V1 { S1Values::Linear } else { S1Values::Db };
    let path = project.preprocessed_s1(&date);
    let valid_percent = write_s1(grid, &bands, values, cfg.block_rows, &path, progress)?;
    Ok(Preprocessed { date, sensor: "S1".into(), path, valid_percent, mask_counts: None, processing: format!("SNAP gpt {}, warped onto the grid", graph.file_name()) })
}

