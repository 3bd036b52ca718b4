//! Warping onto the project grid, copying pixel windows, and VRTs (single bands, mosaics, band
//! stacks).

use std::path::Path;

use gdal::{Dataset, Metadata};

use super::env::init_gdal;
use super::ffi::{run_gdal_translate, run_gdal_warp};
use super::read::open;
use super::write::commit;
use super::{PixelWindow, Resampling};
use crate::error::{Error, Result};
use crate::fsutil::{ensure_parent, temp_sibling};
use crate::grid::TargetGrid;

/// Options of [`warp_to_grid`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WarpOptions {
    pub resampling: Resampling,
    /// Overrides the sources' nodata value.
    pub src_nodata: Option<f64>,
    /// Nodata of the output; NaN when none is given and the output is Float32.
    pub dst_nodata: Option<f64>,
    /// Output data type by GDAL name (`Float32`, `UInt16` ...); the source type when `None`.
    pub output_type: Option<String>,
    /// Place pixels of a GCP-georeferenced source (radar geometry) by a thin-plate spline
    /// through its GCPs (`-tps`), exact at every GCP, instead of a polynomial fit.
    pub tps: bool,
}

/// The `gdalwarp` arguments [`warp_to_grid`] uses: the same as running
/// `gdalwarp <args> src dst` on the command line.
pub fn warp_args(grid: &TargetGrid, options: &WarpOptions) -> Vec<String> {
    let b = grid.bounds();
    let mut args: Vec<String> = vec![
        "-of".into(),
        "GTiff".into(),
        "-t_srs".into(),
        grid.crs(),
        "-te".into(),
        b[0].to_string(),
        b[1].to_string(),
        b[2].to_string(),
        b[3].to_string(),
        "-tr".into(),
        grid.pixel_size_m.to_string(),
        grid.pixel_size_m.to_string(),
        "-r".into(),
        options.resampling.gdal_name().into(),
        "-co".into(),
        "TILED=YES".into(),
        "-co".into(),
        "COMPRESS=DEFLATE".into(),
        "-overwrite".into(),
    ];
    if let Some(nd) = options.src_nodata {
        args.extend(["-srcnodata".into(), nd.to_string()]);
    }
    if let Some(nd) = options.dst_nodata {
        args.extend(["-dstnodata".into(), nd.to_string()]);
    }
    if let Some(t) = &options.output_type {
        args.extend(["-ot".into(), t.clone()]);
    }
    if options.tps {
        args.push("-tps".into());
    }
    args
}

/// Warps (reprojects, resamples, mosaics) `sources` onto `grid`, writing a tiled GeoTIFF at
/// `path`. Several sources are mosaicked in order, later ones on top.
pub fn warp_to_grid(sources: &[&str], path: &Path, grid: &TargetGrid, options: &WarpOptions) -> Result<()> {
    init_gdal();
    let loc = path.display().to_string();
    if sources.is_empty() {
        return Err(Error::Raster { location: loc, message: "nothing to warp: no source rasters".into() });
    }
    let datasets = sources.iter().map(|s| open(s)).collect::<Result<Vec<_>>>()?;
    ensure_parent(path)?;
    let args = warp_args(grid, options);
    let tmp = temp_sibling(path);
    let result = run_gdal_warp(&datasets, &tmp, &args);
    match result {
        Ok(()) => commit(&tmp, path),
        Err(message) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::Raster { location: loc, message: format!("warping {} onto {}: {message}", sources.join(", "), grid.crs()) })
        }
    }
}

/// Copies a pixel window of `src` (a path or URL) to a tiled, compressed GeoTIFF at `dst` in
/// the source's data type, with its georeferencing, nodata, scale/offset and metadata (like
/// `gdal_translate -srcwin`). The result is read back whole before it takes its final name.
pub fn extract_window(src: &str, dst: &Path, window: PixelWindow) -> Result<()> {
    extract_window_with_metadata(src, dst, window, &[])
}

/// [`extract_window`], adding dataset metadata items (`gdal_translate -mo KEY=VALUE`).
pub fn extract_window_with_metadata(src: &str, dst: &Path, window: PixelWindow, metadata: &[(&str, String)]) -> Result<()> {
    init_gdal();
    let loc = dst.display().to_string();
    let ds = open(src)?;
    ensure_parent(dst)?;
    let mut args: Vec<String> = vec![
        "-srcwin".into(),
        window.x_off.to_string(),
        window.y_off.to_string(),
        window.width.to_string(),
        window.height.to_string(),
        "-of".into(),
        "GTiff".into(),
        "-co".into(),
        "TILED=YES".into(),
        "-co".into(),
        "COMPRESS=DEFLATE".into(),
    ];
    for (k, v) in metadata {
        args.extend(["-mo".into(), format!("{k}={v}")]);
    }
    let tmp = temp_sibling(dst);
    let result = run_gdal_translate(&ds, &tmp, &args).and_then(|()| {
        // Decode every pixel of the copy: a truncated transfer shows up here at the latest.
        let copy = Dataset::open(&tmp).map_err(|e| e.to_string())?;
        if copy.raster_size() != (window.width, window.height) {
            return Err(format!("the copy is {:?}, expected {} x {}", copy.raster_size(), window.width, window.height));
        }
        for b in 1..=copy.raster_count() {
            let band = copy.rasterband(b).map_err(|e| e.to_string())?;
            band.read_as::<f64>((0, 0), (window.width, window.height), (window.width, window.height), None).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    match result {
        Ok(()) => commit(&tmp, dst),
        Err(message) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::Raster { location: loc, message: format!("copying window {window:?} of {src}: {message}") })
        }
    }
}

/// A single-band VRT at `path` over band `band` (1-based) of `source` (`gdalbuildvrt -b`),
/// keeping the band's description.
pub fn band_vrt(path: &Path, source: &str, band: usize) -> Result<()> {
    init_gdal();
    let loc = path.display().to_string();
    let ds = open(source)?;
    if band == 0 || band > ds.raster_count() {
        return Err(Error::Raster { location: source.into(), message: format!("band {band} requested but the raster has bands 1..={}", ds.raster_count()) });
    }
    let description = ds.rasterband(band).map(|b| b.description().unwrap_or_default()).unwrap_or_default();
    let args: Vec<String> = vec!["-b".into(), band.to_string()];
    ensure_parent(path)?;
    let tmp = temp_sibling(path);
    let options = gdal::programs::raster::BuildVRTOptions::new(args.clone()).map_err(Error::gdal(&loc, format!("parsing VRT options {args:?}")))?;
    let vrt = gdal::programs::raster::build_vrt(Some(&tmp), &[ds], Some(options)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Gdal { location: loc.clone(), action: "building the VRT".into(), source: e }
    })?;
    finish_vrt(vrt, &tmp, path, &[description])
}

/// Names the bands of a VRT just built at `tmp` and writes it, then gives it its final name:
/// the file at `path` is whole, descriptions included, or absent.
fn finish_vrt(vrt: Dataset, tmp: &Path, path: &Path, descriptions: &[String]) -> Result<()> {
    let loc = path.display().to_string();
    let described = (|| -> Result<()> {
        for (i, d) in descriptions.iter().enumerate() {
            let mut band = vrt.rasterband(i + 1).map_err(Error::gdal(&loc, "opening a band"))?;
            band.set_description(d).map_err(Error::gdal(&loc, "setting a band description"))?;
        }
        vrt.close().map_err(Error::gdal(&loc, "writing the VRT"))
    })();
    if let Err(e) = described {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    commit(tmp, path)
}

/// Sets the descriptions of the first bands of a raster in place (VRT, GeoTIFF).
pub fn set_band_descriptions(path: &Path, descriptions: &[String]) -> Result<()> {
    init_gdal();
    let loc = path.display().to_string();
    let ds = Dataset::open_ex(path, gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE, ..Default::default() })
        .map_err(Error::gdal(&loc, "opening for update"))?;
    for (i, d) in descriptions.iter().enumerate() {
        let mut band = ds.rasterband(i + 1).map_err(Error::gdal(&loc, "opening a band"))?;
        band.set_description(d).map_err(Error::gdal(&loc, "setting a band description"))?;
    }
    ds.close().map_err(Error::gdal(&loc, "writing the descriptions"))
}

/// Builds a VRT at `path` over `sources`: a mosaic, or with `separate` one band per source (like
/// `gdalbuildvrt -separate`). With `grid`, the VRT covers exactly that grid (sources resampled
/// with `resampling`). `descriptions` name its first bands. Source paths are stored relative to
/// the VRT when possible; the file appears whole, descriptions included, or not at all.
pub fn build_vrt(
    path: &Path,
    sources: &[&str],
    separate: bool,
    grid: Option<&TargetGrid>,
    resampling: Resampling,
    descriptions: &[String],
) -> Result<()> {
    init_gdal();
    let loc = path.display().to_string();
    if sources.is_empty() {
        return Err(Error::Raster { location: loc, message: "a VRT needs at least one source".into() });
    }
    let datasets = sources.iter().map(|s| open(s)).collect::<Result<Vec<_>>>()?;
    let mut args: Vec<String> = vec!["-r".into(), resampling.gdal_name().into()];
    if separate {
        args.push("-separate".into());
    }
    if let Some(g) = grid {
        let b = g.bounds();
        args.extend(["-te".into(), b[0].to_string(), b[1].to_string(), b[2].to_string(), b[3].to_string()]);
        args.extend(["-tr".into(), g.pixel_size_m.to_string(), g.pixel_size_m.to_string()]);
    }
    ensure_parent(path)?;
    let tmp = temp_sibling(path);
    let options = gdal::programs::raster::BuildVRTOptions::new(args.clone())
        .map_err(Error::gdal(&loc, format!("parsing VRT options {args:?}")))?;
    let vrt = gdal::programs::raster::build_vrt(Some(&tmp), &datasets, Some(options)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Gdal { location: loc.clone(), action: "building the VRT".into(), source: e }
    })?;
    // A VRT names its sources relative to its own folder; the temp file is in the same folder.
    finish_vrt(vrt, &tmp, path, descriptions)
}
