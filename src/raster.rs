//! A thin layer over GDAL: open local files or HTTP(S) URLs (through `/vsicurl/`), read windows
//! of chosen bands into `f32` arrays with a validity mask, write GeoTIFF and Cloud-Optimized
//! GeoTIFF, warp onto a target grid, and build VRTs (mosaics and band stacks).
//!
//! Every output is written under a temporary name and renamed when complete, so a file with the
//! final name is always whole. This module knows nothing of Sentinel bands or project folders.

use std::ffi::{c_char, c_int, CString};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::Once;

use gdal::raster::{Buffer, RasterCreationOptions};
use gdal::{Dataset, DriverManager, Metadata};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The one grid every preprocessed raster of a project lands on: a north-up UTM grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGrid {
    /// EPSG code of the CRS (WGS84 / UTM zone).
    pub epsg: u32,
    pub pixel_size_m: f64,
    /// Left edge of the first column, metres.
    pub x_min: f64,
    /// Top edge of the first row, metres.
    pub y_max: f64,
    pub width: usize,
    pub height: usize,
}

impl TargetGrid {
    /// GDAL geotransform: [x_min, pixel width, 0, y_max, 0, -pixel height].
    pub fn geo_transform(&self) -> [f64; 6] {
        [self.x_min, self.pixel_size_m, 0.0, self.y_max, 0.0, -self.pixel_size_m]
    }

    /// [x_min, y_min, x_max, y_max] in the grid's CRS.
    pub fn bounds(&self) -> [f64; 4] {
        [
            self.x_min,
            self.y_max - self.height as f64 * self.pixel_size_m,
            self.x_min + self.width as f64 * self.pixel_size_m,
            self.y_max,
        ]
    }

    pub fn crs(&self) -> String {
        format!("EPSG:{}", self.epsg)
    }

    pub fn area_km2(&self) -> f64 {
        self.width as f64 * self.height as f64 * self.pixel_size_m * self.pixel_size_m / 1.0e6
    }
}

/// What GDAL reports about a raster.
#[derive(Debug, Clone, PartialEq)]
pub struct RasterInfo {
    pub location: String,
    pub driver: String,
    pub width: usize,
    pub height: usize,
    pub geo_transform: [f64; 6],
    /// CRS as WKT; empty when the raster has none.
    pub crs_wkt: String,
    /// EPSG code when the CRS has one.
    pub epsg: Option<u32>,
    pub bands: Vec<BandInfo>,
    /// True when the file carries GDAL's `LAYOUT=COG` marker.
    pub is_cog: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BandInfo {
    pub description: String,
    pub data_type: String,
    pub nodata: Option<f64>,
    pub overviews: usize,
}

/// A rectangle of pixels: column/row offset and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelWindow {
    pub x_off: usize,
    pub y_off: usize,
    pub width: usize,
    pub height: usize,
}

/// Bands read into memory, row-major, with a per-pixel validity mask shared by all bands.
#[derive(Debug, Clone, PartialEq)]
pub struct BandStack {
    pub width: usize,
    pub height: usize,
    /// One `width * height` vector per band.
    pub bands: Vec<Vec<f32>>,
    /// True where every band holds a real value (finite, not nodata, not masked).
    pub valid: Vec<bool>,
    pub geo_transform: [f64; 6],
    pub crs_wkt: String,
    pub descriptions: Vec<String>,
}

impl BandStack {
    /// The value of `band` at (column, row).
    pub fn get(&self, band: usize, col: usize, row: usize) -> f32 {
        self.bands[band][row * self.width + col]
    }

    pub fn valid_fraction(&self) -> f64 {
        if self.valid.is_empty() {
            return 0.0;
        }
        self.valid.iter().filter(|v| **v).count() as f64 / self.valid.len() as f64
    }
}

/// Resampling methods, by GDAL's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Resampling {
    Nearest,
    #[default]
    Bilinear,
    Cubic,
    CubicSpline,
    Lanczos,
    Average,
    Mode,
}

impl Resampling {
    pub fn gdal_name(self) -> &'static str {
        match self {
            Resampling::Nearest => "near",
            Resampling::Bilinear => "bilinear",
            Resampling::Cubic => "cubic",
            Resampling::CubicSpline => "cubicspline",
            Resampling::Lanczos => "lanczos",
            Resampling::Average => "average",
            Resampling::Mode => "mode",
        }
    }
}

impl std::str::FromStr for Resampling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "near" | "nearest" => Resampling::Nearest,
            "bilinear" => Resampling::Bilinear,
            "cubic" => Resampling::Cubic,
            "cubicspline" => Resampling::CubicSpline,
            "lanczos" => Resampling::Lanczos,
            "average" => Resampling::Average,
            "mode" => Resampling::Mode,
            other => {
                return Err(Error::invalid(
                    "resampling",
                    format!("'{other}' is not one of nearest, bilinear, cubic, cubicspline, lanczos, average, mode"),
                ));
            }
        })
    }
}

/// Compression of written GeoTIFFs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    Lzw,
    #[default]
    Deflate,
    Zstd,
}

/// How [`write_raster`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// Cloud-Optimized GeoTIFF (tiled, with overviews) instead of a plain tiled GeoTIFF.
    pub cog: bool,
    pub compression: Compression,
    /// Value written where the stack is not valid; NaN by default.
    pub nodata: f32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { cog: true, compression: Compression::Deflate, nodata: f32::NAN }
    }
}

/// Routes GDAL's own messages to `tracing` instead of stderr, once per process. Errors still
/// reach callers through the `Result`s of the GDAL calls.
fn init_gdal() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gdal::config::set_error_handler(|class, code, msg| {
            tracing::debug!(target: "gdal", "{class:?} {code}: {msg}");
        });
        // Network reads: retry transient errors, do not list remote directories.
        for (key, value) in [
            ("GDAL_HTTP_MAX_RETRY", "4"),
            ("GDAL_HTTP_RETRY_DELAY", "1"),
            ("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR"),
            // Count the bytes received, so fetches can report them.
            ("CPL_VSIL_NETWORK_STATS_ENABLED", "YES"),
        ] {
            let _ = gdal::config::set_config_option(key, value);
        }
    });
}

/// The GDAL path for a location: `/vsicurl/` for HTTP(S) URLs, the path otherwise.
pub fn gdal_path(location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        format!("/vsicurl/{location}")
    } else {
        location.to_string()
    }
}

/// Opens a local file or an HTTP(S) URL (by range requests) read-only.
pub fn open(location: &str) -> Result<Dataset> {
    init_gdal();
    if !location.contains("://") && !location.starts_with("/vsi") && !Path::new(location).exists() {
        return Err(Error::Raster { location: location.into(), message: "no such file".into() });
    }
    // Listing folders is switched off for remote files (init_gdal); local files need it to
    // find their sidecars (a PNG's world file and .aux.xml, external overviews).
    let local = !location.contains("://") && !location.starts_with("/vsi");
    if local {
        let _ = gdal::config::set_thread_local_config_option("GDAL_DISABLE_READDIR_ON_OPEN", "FALSE");
    }
    let ds = Dataset::open(gdal_path(location));
    if local {
        let _ = gdal::config::clear_thread_local_config_option("GDAL_DISABLE_READDIR_ON_OPEN");
    }
    ds.map_err(Error::gdal(location, "opening the raster (is it a GeoTIFF or another format GDAL reads?)"))
}

/// Size, georeferencing and bands of a raster.
pub fn info(location: &str) -> Result<RasterInfo> {
    let ds = open(location)?;
    info_of(&ds, location)
}

fn info_of(ds: &Dataset, location: &str) -> Result<RasterInfo> {
    let (width, height) = ds.raster_size();
    let geo_transform = ds.geo_transform().unwrap_or([0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    let crs_wkt = ds.projection();
    let epsg = ds.spatial_ref().ok().and_then(|mut s| {
        let _ = s.auto_identify_epsg();
        s.auth_code().ok().map(|c| c as u32)
    });
    let mut bands = Vec::new();
    for i in 1..=ds.raster_count() {
        let band = ds.rasterband(i).map_err(Error::gdal(location, format!("reading band {i}")))?;
        bands.push(BandInfo {
            description: band.description().unwrap_or_default(),
            data_type: band.band_type().name(),
            nodata: band.no_data_value(),
            overviews: band.overview_count().unwrap_or(0).max(0) as usize,
        });
    }
    let is_cog = ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref() == Some("COG");
    Ok(RasterInfo {
        location: location.to_string(),
        driver: ds.driver().short_name(),
        width,
        height,
        geo_transform,
        crs_wkt,
        epsg,
        bands,
        is_cog,
    })
}

/// The pixel window of `info` covering `bounds` ([x_min, y_min, x_max, y_max] in the raster's
/// CRS), rounded outward to whole pixels and clipped to the raster.
pub fn window_for_bounds(info: &RasterInfo, bounds: [f64; 4]) -> Result<PixelWindow> {
    let gt = info.geo_transform;
    if gt[2] != 0.0 || gt[4] != 0.0 {
        return Err(Error::Raster {
            location: info.location.clone(),
            message: "the raster is rotated; warp it to a north-up grid first".into(),
        });
    }
    let col = |x: f64| (x - gt[0]) / gt[1];
    let row = |y: f64| (y - gt[3]) / gt[5];
    // Tolerate float noise of a thousandth of a pixel before rounding outward.
    let eps = 1e-3;
    let (c0, c1) = (col(bounds[0]).min(col(bounds[2])), col(bounds[0]).max(col(bounds[2])));
    let (r0, r1) = (row(bounds[1]).min(row(bounds[3])), row(bounds[1]).max(row(bounds[3])));
    let c0 = ((c0 + eps).floor().max(0.0)) as usize;
    let r0 = ((r0 + eps).floor().max(0.0)) as usize;
    let c1 = ((c1 - eps).ceil().min(info.width as f64)).max(0.0) as usize;
    let r1 = ((r1 - eps).ceil().min(info.height as f64)).max(0.0) as usize;
    if c1 <= c0 || r1 <= r0 {
        return Err(Error::Raster {
            location: info.location.clone(),
            message: format!("the bounds {bounds:?} do not overlap the raster"),
        });
    }
    Ok(PixelWindow { x_off: c0, y_off: r0, width: c1 - c0, height: r1 - r0 })
}

/// The pixel window of a raster georeferenced only by GCPs (a Sentinel-1 GRD in radar geometry)
/// that covers the given WGS84 (lon, lat) points, grown by `margin_px` and clipped to the raster.
/// Points are placed by a thin-plate spline through the GCPs, as [`WarpOptions::tps`] does.
pub fn gcp_window_for_wgs84(location: &str, points: &[(f64, f64)], margin_px: usize) -> Result<PixelWindow> {
    init_gdal();
    let ds = open(location)?;
    let (width, height) = ds.raster_size();
    let err = |message: String| Error::Raster { location: location.into(), message };
    let srs = ds.gcp_spatial_ref().ok_or_else(|| err("the raster has neither a map projection nor GCPs".into()))?;
    if !srs.is_geographic() || ds.gcps().len() < 3 {
        return Err(err(format!("{} GCPs in a projected CRS: only GCPs in longitude/latitude (as in Sentinel-1 GRD) are supported", ds.gcps().len())));
    }
    let mut options = gdal::cpl::CslStringList::new();
    options.set_name_value("METHOD", "GCP_TPS").map_err(Error::gdal(location, "setting transformer options"))?;
    let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let mut ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let mut zs = vec![0.0; points.len()];
    let mut ok = vec![0 as c_int; points.len()];
    // SAFETY: the dataset outlives the transformer, which is destroyed before returning; the
    // point arrays hold points.len() values each.
    unsafe {
        let arg = gdal_sys::GDALCreateGenImgProjTransformer2(ds.c_dataset(), null_mut(), options.as_ptr() as *mut *mut c_char);
        if arg.is_null() {
            return Err(err(format!("cannot build a transformer from its {} GCPs", ds.gcps().len())));
        }
        gdal_sys::GDALGenImgProjTransform(arg, 1, points.len() as c_int, xs.as_mut_ptr(), ys.as_mut_ptr(), zs.as_mut_ptr(), ok.as_mut_ptr());
        gdal_sys::GDALDestroyGenImgProjTransformer(arg);
    }
    let placed: Vec<(f64, f64)> = xs.iter().zip(&ys).zip(&ok).filter(|(_, s)| **s != 0).map(|((x, y), _)| (*x, *y)).collect();
    if placed.is_empty() {
        return Err(err("no point of the AOI could be placed in the image by its GCPs".into()));
    }
    let m = margin_px as f64;
    let x0 = placed.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) - m;
    let x1 = placed.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max) + m;
    let y0 = placed.iter().map(|p| p.1).fold(f64::INFINITY, f64::min) - m;
    let y1 = placed.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max) + m;
    let (cx0, cy0) = (x0.floor().max(0.0) as usize, y0.floor().max(0.0) as usize);
    let (cx1, cy1) = ((x1.ceil().max(0.0) as usize).min(width), (y1.ceil().max(0.0) as usize).min(height));
    if cx1 <= cx0 || cy1 <= cy0 {
        return Err(err(format!("the AOI falls outside the image (pixels {x0:.0}..{x1:.0}, lines {y0:.0}..{y1:.0} of {width} x {height})")));
    }
    Ok(PixelWindow { x_off: cx0, y_off: cy0, width: cx1 - cx0, height: cy1 - cy0 })
}

/// Reads `bands` (1-based) of the whole raster, or of `window`, as `f32`.
pub fn read_window(location: &str, bands: &[usize], window: Option<PixelWindow>) -> Result<BandStack> {
    let ds = open(location)?;
    read_window_of(&ds, location, bands, window)
}

/// Like [`read_window`], for many small reads of the same files (training patches): each
/// thread keeps the last few datasets open, so GDAL's block cache keeps their decompressed
/// blocks between reads instead of decompressing whole tiles for every patch. A file changed
/// on disk since it was opened (its modification time or size) is opened again.
pub fn read_window_reusing(location: &str, bands: &[usize], window: Option<PixelWindow>) -> Result<BandStack> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    type Stamp = Option<(std::time::SystemTime, u64)>;
    thread_local! {
        static OPEN: RefCell<HashMap<String, (Stamp, Dataset)>> = RefCell::new(HashMap::new());
    }
    const MAX_OPEN: usize = 8;
    let stamp: Stamp = std::fs::metadata(location).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    OPEN.with(|open| {
        let mut open = open.borrow_mut();
        let fresh = open.get(location).is_some_and(|(s, _)| stamp.is_some() && *s == stamp);
        if !fresh {
            if open.len() >= MAX_OPEN {
                open.clear();
            }
            open.insert(location.to_string(), (stamp, self::open(location)?));
        }
        match open.get(location) {
            Some((_, ds)) => read_window_of(ds, location, bands, window),
            None => read_window(location, bands, window),
        }
    })
}

/// Reads `bands` of the whole raster scaled to fit in `max_side` x `max_side` pixels (keeping
/// its aspect; never enlarged), for display: GDAL reads overviews where the file has them and
/// averages (or, with `average` false, for class maps, takes the nearest pixel).
pub fn read_preview(location: &str, bands: &[usize], max_side: usize, average: bool) -> Result<BandStack> {
    let ds = open(location)?;
    let (w, h) = ds.raster_size();
    let scale = (max_side.max(1) as f64 / w.max(h).max(1) as f64).min(1.0);
    let (ow, oh) = (((w as f64 * scale).round() as usize).max(1), ((h as f64 * scale).round() as usize).max(1));
    read_window_sized(&ds, location, bands, None, Some((ow, oh, average)))
}

/// Reads `bands` over `bounds` given in the raster's CRS (see [`window_for_bounds`]).
pub fn read_bounds(location: &str, bands: &[usize], bounds: [f64; 4]) -> Result<BandStack> {
    let ds = open(location)?;
    let window = window_for_bounds(&info_of(&ds, location)?, bounds)?;
    read_window_of(&ds, location, bands, Some(window))
}

fn read_window_of(ds: &Dataset, location: &str, bands: &[usize], window: Option<PixelWindow>) -> Result<BandStack> {
    read_window_sized(ds, location, bands, window, None)
}

/// Reads a window into `out` (width, height) pixels when given: GDAL resamples (from overviews
/// where the file has them) with `average` or nearest neighbour.
fn read_window_sized(ds: &Dataset, location: &str, bands: &[usize], window: Option<PixelWindow>, out: Option<(usize, usize, bool)>) -> Result<BandStack> {
    let (w, h) = ds.raster_size();
    let win = window.unwrap_or(PixelWindow { x_off: 0, y_off: 0, width: w, height: h });
    if win.x_off + win.width > w || win.y_off + win.height > h || win.width == 0 || win.height == 0 {
        return Err(Error::Raster {
            location: location.into(),
            message: format!("window {win:?} is outside the raster's {w} x {h} pixels"),
        });
    }
    let bands: Vec<usize> = if bands.is_empty() { (1..=ds.raster_count()).collect() } else { bands.to_vec() };
    let (ow, oh) = out.map(|(w, h, _)| (w.max(1), h.max(1))).unwrap_or((win.width, win.height));
    let resample = out.and_then(|(_, _, average)| average.then_some(gdal::raster::ResampleAlg::Average));
    let n = ow * oh;
    let mut valid = vec![true; n];
    let mut data = Vec::with_capacity(bands.len());
    let mut descriptions = Vec::with_capacity(bands.len());
    for &b in &bands {
        if b == 0 || b > ds.raster_count() {
            return Err(Error::Raster {
                location: location.into(),
                message: format!("band {b} requested but the raster has bands 1..={}", ds.raster_count()),
            });
        }
        let band = ds.rasterband(b).map_err(Error::gdal(location, format!("opening band {b}")))?;
        let buf: Buffer<f32> = band
            .read_as((win.x_off as isize, win.y_off as isize), (win.width, win.height), (ow, oh), resample)
            .map_err(Error::gdal(location, format!("reading band {b}, window {win:?}")))?;
        let (_, values) = buf.into_shape_and_vec();
        let nodata = band.no_data_value();
        for (v, ok) in values.iter().zip(valid.iter_mut()) {
            if !v.is_finite() || nodata.is_some_and(|nd| (*v as f64) == nd || (nd.is_nan() && v.is_nan())) {
                *ok = false;
            }
        }
        // A real mask band (not the implicit all-valid or nodata one) marks more invalid pixels.
        if let Ok(flags) = band.mask_flags()
            && !flags.is_all_valid()
            && !flags.is_nodata()
            && let Ok(mask) = band.open_mask_band()
        {
            let m: Buffer<u8> = mask
                .read_as((win.x_off as isize, win.y_off as isize), (win.width, win.height), (ow, oh), None)
                .map_err(Error::gdal(location, format!("reading the mask of band {b}")))?;
            for (mv, ok) in m.data().iter().zip(valid.iter_mut()) {
                if *mv == 0 {
                    *ok = false;
                }
            }
        }
        descriptions.push(band.description().unwrap_or_default());
        data.push(values);
    }
    let gt = ds.geo_transform().unwrap_or([0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    // Pixels of the output are larger than the file's by these factors.
    let (sx, sy) = (win.width as f64 / ow as f64, win.height as f64 / oh as f64);
    let geo_transform = [
        gt[0] + win.x_off as f64 * gt[1] + win.y_off as f64 * gt[2],
        gt[1] * sx,
        gt[2] * sy,
        gt[3] + win.x_off as f64 * gt[4] + win.y_off as f64 * gt[5],
        gt[4] * sx,
        gt[5] * sy,
    ];
    Ok(BandStack { width: ow, height: oh, bands: data, valid, geo_transform, crs_wkt: ds.projection(), descriptions })
}

/// A temporary sibling of `path` (same folder, so the final rename is atomic).
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!(".{name}.partial-{}{ext}", std::process::id()))
}

/// Renames a finished temporary file onto its final name, removing it on failure.
/// GDAL's side-car file (category names, statistics) travels with it.
fn commit(tmp: &Path, path: &Path) -> Result<()> {
    let aux = |p: &Path| PathBuf::from(format!("{}.aux.xml", p.display()));
    if aux(tmp).exists() {
        std::fs::rename(aux(tmp), aux(path)).map_err(Error::io(aux(path), "moving the side-car file into place"))?;
    } else {
        let _ = std::fs::remove_file(aux(path));
    }
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        Error::Io { path: path.to_path_buf(), action: "moving the finished file into place", source: e }
    })
}

fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(Error::io(parent, "creating the output folder"))?;
    }
    Ok(())
}

/// Writes RGBA pixels as a PNG that GIS software places on the map: a world file (`.pgw`) for
/// the position and an `.aux.xml` with the CRS beside it (as GDAL reads them). Each file is
/// written atomically; the PNG last.
pub fn write_rgba_png(path: &Path, width: usize, height: usize, rgba: &[u8], gt: [f64; 6], crs_wkt: &str) -> Result<()> {
    let loc = path.display().to_string();
    if rgba.len() != width * height * 4 {
        return Err(Error::Raster { location: loc, message: "RGBA size does not match width x height".into() });
    }
    ensure_parent(path)?;
    // World file: pixel sizes and rotations, then the centre of the top-left pixel.
    let world = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n",
        gt[1],
        gt[4],
        gt[2],
        gt[5],
        gt[0] + gt[1] / 2.0 + gt[2] / 2.0,
        gt[3] + gt[4] / 2.0 + gt[5] / 2.0
    );
    crate::project::write_atomic(&path.with_extension("pgw"), world.as_bytes())?;
    let esc = crs_wkt.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let aux = PathBuf::from(format!("{}.aux.xml", path.display()));
    crate::project::write_atomic(&aux, format!("<PAMDataset>\n  <SRS>{esc}</SRS>\n</PAMDataset>\n").as_bytes())?;
    write_png(path, width, height, rgba, 4)
}

/// Writes 8-bit pixels (`channels` 3: RGB, 4: RGBA, row-major) as a PNG, atomically.
pub fn write_png(path: &Path, width: usize, height: usize, pixels: &[u8], channels: usize) -> Result<()> {
    let err = |message: String| Error::Raster { location: path.display().to_string(), message };
    let color = match channels {
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        n => return Err(err(format!("{n} channels: a PNG here is RGB or RGBA"))),
    };
    if width == 0 || height == 0 || pixels.len() != width * height * channels {
        return Err(err(format!("{} bytes do not make a {width} x {height} image of {channels} channels", pixels.len())));
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, width as u32, height as u32);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| err(format!("encoding PNG: {e}")))?;
        writer.write_image_data(pixels).map_err(|e| err(format!("encoding PNG: {e}")))?;
    }
    ensure_parent(path)?;
    crate::project::write_atomic(path, &bytes)
}

/// Writes a band stack as a GeoTIFF or COG (Float32), with nodata where the stack is invalid
/// and the band descriptions. The file appears under its name only when complete.
pub fn write_raster(path: &Path, stack: &BandStack, options: &WriteOptions) -> Result<()> {
    write_typed(path, stack, options, options.nodata, |v| v)
}

/// Like [`write_raster`], as UInt16 (digital numbers such as Sentinel-2's reflectance x 10000):
/// values are rounded and clamped to 0..=65535, and pixels that are not valid get `nodata`.
pub fn write_raster_u16(path: &Path, stack: &BandStack, options: &WriteOptions, nodata: u16) -> Result<()> {
    write_typed(path, stack, options, nodata, |v| v.round().clamp(0.0, 65535.0) as u16)
}

fn write_typed<T: gdal::raster::GdalType + Copy>(path: &Path, stack: &BandStack, options: &WriteOptions, nodata: T, convert: impl Fn(f32) -> T) -> Result<()>
where
    f64: From<T>,
{
    init_gdal();
    let loc = path.display().to_string();
    if stack.bands.is_empty() || stack.bands.iter().any(|b| b.len() != stack.width * stack.height) {
        return Err(Error::Raster { location: loc, message: "band sizes do not match the stack's width x height".into() });
    }
    ensure_parent(path)?;
    let mem = DriverManager::get_driver_by_name("MEM").map_err(Error::gdal("MEM", "loading GDAL's memory driver"))?;
    let mut ds = mem
        .create_with_band_type::<T, _>("", stack.width, stack.height, stack.bands.len())
        .map_err(Error::gdal(&loc, "creating the in-memory raster"))?;
    ds.set_geo_transform(&stack.geo_transform).map_err(Error::gdal(&loc, "setting the geotransform"))?;
    if !stack.crs_wkt.is_empty() {
        ds.set_projection(&stack.crs_wkt).map_err(Error::gdal(&loc, "setting the CRS"))?;
    }
    for (i, values) in stack.bands.iter().enumerate() {
        let mut band = ds.rasterband(i + 1).map_err(Error::gdal(&loc, "opening a band"))?;
        let data: Vec<T> = values.iter().zip(&stack.valid).map(|(v, ok)| if *ok { convert(*v) } else { nodata }).collect();
        let mut buf = Buffer::new((stack.width, stack.height), data);
        band.write((0, 0), (stack.width, stack.height), &mut buf).map_err(Error::gdal(&loc, "writing pixels"))?;
        band.set_no_data_value(Some(f64::from(nodata))).map_err(Error::gdal(&loc, "setting nodata"))?;
        if let Some(d) = stack.descriptions.get(i).filter(|d| !d.is_empty()) {
            band.set_description(d).map_err(Error::gdal(&loc, "setting a band description"))?;
        }
    }
    translate_to_file(&ds, path, options)
}

/// Copies an open dataset to `path` as GeoTIFF or COG, atomically.
fn translate_to_file(ds: &Dataset, path: &Path, options: &WriteOptions) -> Result<()> {
    let loc = path.display().to_string();
    let compress = match options.compression {
        Compression::None => "NONE",
        Compression::Lzw => "LZW",
        Compression::Deflate => "DEFLATE",
        Compression::Zstd => "ZSTD",
    };
    let driver_name = if options.cog { "COG" } else { "GTiff" };
    let driver = DriverManager::get_driver_by_name(driver_name).map_err(Error::gdal(driver_name, "loading the GDAL driver"))?;
    let mut opts = vec![format!("COMPRESS={compress}"), "BIGTIFF=IF_SAFER".to_string()];
    if compress != "NONE" {
        // Predictors shrink smooth rasters: floating-point (3) for reflectance and backscatter,
        // horizontal differencing (2) for integers; none for class maps (Byte).
        let band_type = ds.rasterband(1).map(|b| b.band_type().name()).unwrap_or_default();
        match band_type.as_str() {
            "Float32" | "Float64" => opts.push("PREDICTOR=3".into()),
            "Byte" => {}
            _ => opts.push("PREDICTOR=2".into()),
        }
    }
    if !options.cog {
        opts.push("TILED=YES".into());
    }
    let creation = RasterCreationOptions::from_iter(opts.iter().map(String::as_str));
    let tmp = temp_sibling(path);
    let written = ds.create_copy(&driver, &tmp, &creation).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Gdal { location: loc.clone(), action: format!("writing a {driver_name}"), source: e }
    })?;
    drop(written);
    commit(&tmp, path)
}

/// Writes a Float32 raster on a target grid block by block (so no stage needs a whole scene in
/// memory), then turns it into a COG under its final name.
pub struct BlockWriter {
    ds: Option<Dataset>,
    tmp: PathBuf,
    path: PathBuf,
    width: usize,
    height: usize,
    /// Write a COG on finish; otherwise the tiled GeoTIFF itself takes the final name.
    cog: bool,
}

impl BlockWriter {
    pub fn create(path: &Path, grid: &TargetGrid, band_names: &[String], nodata: f32) -> Result<BlockWriter> {
        init_gdal();
        let loc = path.display().to_string();
        ensure_parent(path)?;
        let tmp = temp_sibling(&path.with_extension("blocks.tif"));
        let driver = DriverManager::get_driver_by_name("GTiff").map_err(Error::gdal("GTiff", "loading the GDAL driver"))?;
        let options = RasterCreationOptions::from_iter(["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"]);
        let mut ds = driver
            .create_with_band_type_with_options::<f32, _>(&tmp, grid.width, grid.height, band_names.len(), &options)
            .map_err(Error::gdal(&loc, "creating the output raster"))?;
        ds.set_geo_transform(&grid.geo_transform()).map_err(Error::gdal(&loc, "setting the geotransform"))?;
        let srs = gdal::spatial_ref::SpatialRef::from_epsg(grid.epsg).map_err(Error::gdal(&loc, "creating the grid CRS"))?;
        ds.set_spatial_ref(&srs).map_err(Error::gdal(&loc, "setting the CRS"))?;
        for (i, name) in band_names.iter().enumerate() {
            let mut band = ds.rasterband(i + 1).map_err(Error::gdal(&loc, "opening a band"))?;
            band.set_no_data_value(Some(nodata as f64)).map_err(Error::gdal(&loc, "setting nodata"))?;
            band.set_description(name).map_err(Error::gdal(&loc, "setting a band description"))?;
        }
        Ok(BlockWriter { ds: Some(ds), tmp, path: path.to_path_buf(), width: grid.width, height: grid.height, cog: true })
    }

    /// A Float32 raster in the geometry of `like` (same size, its GCPs or geotransform and CRS),
    /// e.g. calibrated radar values in the geometry of a GRD window, written as a tiled GeoTIFF.
    pub fn create_like(path: &Path, like: &str, band_names: &[String], nodata: f32) -> Result<BlockWriter> {
        init_gdal();
        let loc = path.display().to_string();
        let src = open(like)?;
        let (width, height) = src.raster_size();
        ensure_parent(path)?;
        let tmp = temp_sibling(path);
        let driver = DriverManager::get_driver_by_name("GTiff").map_err(Error::gdal("GTiff", "loading the GDAL driver"))?;
        let options = RasterCreationOptions::from_iter(["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"]);
        let mut ds = driver
            .create_with_band_type_with_options::<f32, _>(&tmp, width, height, band_names.len(), &options)
            .map_err(Error::gdal(&loc, "creating the output raster"))?;
        if let Some(srs) = src.gcp_spatial_ref() {
            let gcps: Vec<gdal::Gcp> = src
                .gcps()
                .iter()
                .map(|g| gdal::Gcp { id: g.id(), info: g.info(), pixel: g.pixel(), line: g.line(), x: g.x(), y: g.y(), z: g.z() })
                .collect();
            ds.set_gcps(gcps, &srs).map_err(Error::gdal(&loc, "copying the GCPs"))?;
        } else {
            let gt = src.geo_transform().map_err(Error::gdal(like, "reading the geotransform"))?;
            ds.set_geo_transform(&gt).map_err(Error::gdal(&loc, "setting the geotransform"))?;
            if let Ok(srs) = src.spatial_ref() {
                ds.set_spatial_ref(&srs).map_err(Error::gdal(&loc, "setting the CRS"))?;
            }
        }
        for (i, name) in band_names.iter().enumerate() {
            let mut band = ds.rasterband(i + 1).map_err(Error::gdal(&loc, "opening a band"))?;
            band.set_no_data_value(Some(nodata as f64)).map_err(Error::gdal(&loc, "setting nodata"))?;
            band.set_description(name).map_err(Error::gdal(&loc, "setting a band description"))?;
        }
        Ok(BlockWriter { ds: Some(ds), tmp, path: path.to_path_buf(), width, height, cog: false })
    }

    /// Writes `rows` full rows of band `band` (0-based) starting at row `y_off`.
    pub fn write_rows(&mut self, band: usize, y_off: usize, rows: usize, data: &[f32]) -> Result<()> {
        let loc = self.path.display().to_string();
        if data.len() != rows * self.width || y_off + rows > self.height {
            return Err(Error::Raster { location: loc, message: format!("block of {rows} rows at {y_off} does not fit {} x {}", self.width, self.height) });
        }
        let ds = self.ds.as_ref().ok_or_else(|| Error::Raster { location: loc.clone(), message: "already finished".into() })?;
        let mut b = ds.rasterband(band + 1).map_err(Error::gdal(&loc, "opening a band"))?;
        let mut buf = Buffer::new((self.width, rows), data.to_vec());
        b.write((0, y_off as isize), (self.width, rows), &mut buf).map_err(Error::gdal(&loc, "writing a block"))
    }

    /// Closes the blocks and writes the COG under the final name.
    pub fn finish(mut self) -> Result<()> {
        if let Some(ds) = self.ds.take() {
            ds.close().map_err(Error::gdal(self.path.display(), "closing the block file"))?;
        }
        if !self.cog {
            return commit(&self.tmp, &self.path);
        }
        // The temporary block file is removed by Drop, whatever happens here.
        to_cog(&self.tmp.display().to_string(), &self.path, &WriteOptions::default())
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // Close first (an unfinished writer after an error or a cancel), then leave nothing behind.
        drop(self.ds.take());
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Turns any raster GDAL reads into a COG at `path` (e.g. after a warp).
pub fn to_cog(src: &str, path: &Path, options: &WriteOptions) -> Result<()> {
    let ds = open(src)?;
    ensure_parent(path)?;
    translate_to_file(&ds, path, &WriteOptions { cog: true, ..options.clone() })
}

/// A single-band Byte raster of class codes (0 = no data) with a colour table and category
/// names, as QGIS and ArcGIS show classified maps.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassRaster<'a> {
    pub width: usize,
    pub height: usize,
    pub codes: &'a [u8],
    pub geo_transform: [f64; 6],
    pub crs_wkt: &'a str,
    pub description: &'a str,
    /// (code, RGB, name) of each class.
    pub classes: &'a [(u8, [u8; 3], &'a str)],
}

/// Writes a [`ClassRaster`] as a COG with a colour table, atomically.
pub fn write_classes(path: &Path, raster: &ClassRaster) -> Result<()> {
    init_gdal();
    let loc = path.display().to_string();
    if raster.codes.len() != raster.width * raster.height {
        return Err(Error::Raster { location: loc, message: "class codes do not match width x height".into() });
    }
    ensure_parent(path)?;
    let mem = DriverManager::get_driver_by_name("MEM").map_err(Error::gdal("MEM", "loading GDAL's memory driver"))?;
    let mut ds = mem
        .create_with_band_type::<u8, _>("", raster.width, raster.height, 1)
        .map_err(Error::gdal(&loc, "creating the in-memory raster"))?;
    ds.set_geo_transform(&raster.geo_transform).map_err(Error::gdal(&loc, "setting the geotransform"))?;
    if !raster.crs_wkt.is_empty() {
        ds.set_projection(raster.crs_wkt).map_err(Error::gdal(&loc, "setting the CRS"))?;
    }
    {
        let mut band = ds.rasterband(1).map_err(Error::gdal(&loc, "opening the band"))?;
        let mut buf = Buffer::new((raster.width, raster.height), raster.codes.to_vec());
        band.write((0, 0), (raster.width, raster.height), &mut buf).map_err(Error::gdal(&loc, "writing pixels"))?;
        band.set_no_data_value(Some(0.0)).map_err(Error::gdal(&loc, "setting nodata"))?;
        band.set_description(raster.description).map_err(Error::gdal(&loc, "setting the description"))?;
        let mut table = gdal::raster::ColorTable::new(gdal::raster::PaletteInterpretation::Rgba);
        let max_code = raster.classes.iter().map(|c| c.0).max().unwrap_or(0);
        let mut names = vec![String::new(); max_code as usize + 1];
        for code in 0..=max_code {
            let (rgb, alpha) = match raster.classes.iter().find(|c| c.0 == code) {
                Some(c) => {
                    names[code as usize] = c.2.to_string();
                    (c.1, 255)
                }
                None => ([0, 0, 0], 0),
            };
            let entry = gdal::raster::RgbaEntry { r: rgb[0] as i16, g: rgb[1] as i16, b: rgb[2] as i16, a: alpha };
            table.set_color_entry(code as u16, &gdal::raster::ColorEntry::Rgba(entry));
        }
        band.set_color_table(&table);
        let names: Vec<CString> = names.iter().map(|n| CString::new(n.as_str()).unwrap_or_default()).collect();
        let mut ptrs: Vec<*mut c_char> = names.iter().map(|n| n.as_ptr() as *mut c_char).chain(std::iter::once(null_mut())).collect();
        // SAFETY: a NUL-terminated list of C strings that outlive the call; GDAL copies them.
        unsafe { gdal_sys::GDALSetRasterCategoryNames(band.c_rasterband(), ptrs.as_mut_ptr()) };
    }
    translate_to_file(&ds, path, &WriteOptions { cog: true, compression: Compression::Deflate, nodata: 0.0 })
}

/// Writes the outlines of the `true` pixels of a mask as polygons to a GeoJSON file in WGS84
/// (RFC 7946; GDAL reprojects from the raster's CRS), with GDAL's polygonize. Returns the
/// number of polygons.
pub fn polygonize_mask(
    path: &Path,
    mask: &[bool],
    width: usize,
    height: usize,
    geo_transform: [f64; 6],
    crs_wkt: &str,
    layer_name: &str,
) -> Result<usize> {
    use gdal::vector::{LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType};
    init_gdal();
    let loc = path.display().to_string();
    if mask.len() != width * height {
        return Err(Error::Raster { location: loc, message: "mask does not match width x height".into() });
    }
    ensure_parent(path)?;
    let mem = DriverManager::get_driver_by_name("MEM").map_err(Error::gdal("MEM", "loading GDAL's memory driver"))?;
    let mut ds = mem.create_with_band_type::<u8, _>("", width, height, 1).map_err(Error::gdal(&loc, "creating the mask raster"))?;
    ds.set_geo_transform(&geo_transform).map_err(Error::gdal(&loc, "setting the geotransform"))?;
    ds.set_projection(crs_wkt).map_err(Error::gdal(&loc, "setting the CRS"))?;
    let mut buf = Buffer::new((width, height), mask.iter().map(|m| *m as u8).collect::<Vec<u8>>());
    ds.rasterband(1)
        .and_then(|mut b| b.write((0, 0), (width, height), &mut buf))
        .map_err(Error::gdal(&loc, "writing the mask"))?;
    let srs = gdal::spatial_ref::SpatialRef::from_wkt(crs_wkt).map_err(Error::gdal(&loc, "reading the CRS"))?;
    let driver = DriverManager::get_driver_by_name("GeoJSON").map_err(Error::gdal("GeoJSON", "loading the GDAL driver"))?;
    let tmp = temp_sibling(path);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| -> std::result::Result<usize, String> {
        let mut out = driver.create_vector_only(&tmp).map_err(|e| e.to_string())?;
        let layer = out
            .create_layer(LayerOptions {
                name: layer_name,
                srs: Some(&srs),
                ty: OGRwkbGeometryType::wkbPolygon,
                options: Some(&["RFC7946=YES", "COORDINATE_PRECISION=7"]),
            })
            .map_err(|e| e.to_string())?;
        layer.create_defn_fields(&[("burned", OGRFieldType::OFTInteger)]).map_err(|e| e.to_string())?;
        let band = ds.rasterband(1).map_err(|e| e.to_string())?;
        // SAFETY: the band (also used as its own mask, so only 1-pixels become polygons) and the
        // layer stay alive for the call; options may be null.
        let err = unsafe {
            gdal_sys::CPLErrorReset();
            gdal_sys::GDALPolygonize(
                band.c_rasterband(),
                band.c_rasterband(),
                layer.c_layer(),
                0,
                null_mut(),
                None,
                null_mut(),
            )
        };
        if err != gdal_sys::CPLErr::CE_None {
            return Err(last_gdal_message());
        }
        let count = layer.feature_count() as usize;
        drop(out);
        Ok(count)
    })();
    match result {
        Ok(count) => {
            commit(&tmp, path)?;
            Ok(count)
        }
        Err(message) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::Raster { location: loc, message: format!("polygonizing the mask: {message}") })
        }
    }
}

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

/// Timeout of GDAL's HTTP requests, seconds (process-wide).
pub fn set_http_timeout(secs: u64) {
    init_gdal();
    let _ = gdal::config::set_config_option("GDAL_HTTP_TIMEOUT", &secs.to_string());
    let _ = gdal::config::set_config_option("GDAL_HTTP_CONNECTTIMEOUT", &secs.min(30).to_string());
}

/// A limit on GDAL's block cache for as long as it lives; the previous limit comes back on
/// drop. Does nothing when the user set `GDAL_CACHEMAX` (their choice wins).
pub struct BlockCacheLimit {
    previous: Option<i64>,
}

impl BlockCacheLimit {
    pub fn set(bytes: i64) -> BlockCacheLimit {
        init_gdal();
        if std::env::var_os("GDAL_CACHEMAX").is_some() {
            return BlockCacheLimit { previous: None };
        }
        // SAFETY: plain getters and setters of GDAL's global cache size.
        let previous = unsafe { gdal_sys::GDALGetCacheMax64() };
        unsafe { gdal_sys::GDALSetCacheMax64(bytes) };
        BlockCacheLimit { previous: Some(previous) }
    }
}

impl Drop for BlockCacheLimit {
    fn drop(&mut self) {
        if let Some(p) = self.previous {
            // SAFETY: as above.
            unsafe { gdal_sys::GDALSetCacheMax64(p) };
        }
    }
}

/// Drops what GDAL cached of remote files (sizes, blocks), e.g. after a failed transfer.
pub fn clear_http_cache() {
    // SAFETY: no arguments; clears GDAL's global /vsicurl/ caches.
    unsafe { gdal_sys::VSICurlClearCache() };
}

pub fn network_stats_reset() {
    init_gdal();
    // SAFETY: no arguments.
    unsafe { gdal_sys::VSINetworkStatsReset() };
}

/// Bytes received over HTTP by GDAL since the last reset.
pub fn network_stats_downloaded_bytes() -> u64 {
    // SAFETY: returns a string GDAL allocated (or null), freed with VSIFree below.
    let json = unsafe {
        let ptr = gdal_sys::VSINetworkStatsGetAsSerializedJSON(null_mut());
        if ptr.is_null() {
            return 0;
        }
        let s = std::ffi::CStr::from_ptr(ptr).to_string_lossy().to_string();
        gdal_sys::VSIFree(ptr as *mut std::ffi::c_void);
        s
    };
    let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    value["methods"].as_object().map(|m| m.values().filter_map(|v| v["downloaded_bytes"].as_u64()).sum()).unwrap_or(0)
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

fn run_gdal_translate(src: &Dataset, dst: &Path, args: &[String]) -> std::result::Result<(), String> {
    let mut cargs = CArgs::new(args)?;
    let dst_c = CString::new(dst.to_string_lossy().as_bytes()).map_err(|_| "output path contains a NUL byte".to_string())?;
    // SAFETY: as in run_gdal_warp: NUL-terminated argv outliving the call, options freed, the
    // source open for the whole call, the result closed before returning.
    unsafe {
        gdal_sys::CPLErrorReset();
        let opts = gdal_sys::GDALTranslateOptionsNew(cargs.ptrs.as_mut_ptr(), null_mut());
        if opts.is_null() {
            return Err(format!("bad translate options {args:?}: {}", last_gdal_message()));
        }
        let mut usage_error: c_int = 0;
        let out = gdal_sys::GDALTranslate(dst_c.as_ptr(), src.c_dataset(), opts, &mut usage_error);
        gdal_sys::GDALTranslateOptionsFree(opts);
        if out.is_null() {
            return Err(last_gdal_message());
        }
        let failed_during_copy = gdal_sys::CPLGetLastErrorType() == gdal_sys::CPLErr::CE_Failure;
        gdal_sys::GDALClose(out);
        if failed_during_copy || gdal_sys::CPLGetLastErrorType() == gdal_sys::CPLErr::CE_Failure {
            return Err(last_gdal_message());
        }
    }
    Ok(())
}

/// Owned, NUL-terminated argv for GDAL's utility option parsers.
struct CArgs {
    _strings: Vec<CString>,
    ptrs: Vec<*mut c_char>,
}

impl CArgs {
    fn new(args: &[String]) -> std::result::Result<CArgs, String> {
        let strings = args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| format!("argument {a:?} contains a NUL byte")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ptrs = strings.iter().map(|s| s.as_ptr() as *mut c_char).chain(std::iter::once(null_mut())).collect();
        Ok(CArgs { _strings: strings, ptrs })
    }
}

fn last_gdal_message() -> String {
    // SAFETY: CPLGetLastErrorMsg returns a pointer to a thread-local, NUL-terminated string.
    let msg = unsafe { std::ffi::CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()) };
    let msg = msg.to_string_lossy().trim().to_string();
    if msg.is_empty() { "GDAL gave no reason".into() } else { msg }
}

fn run_gdal_warp(sources: &[Dataset], dst: &Path, args: &[String]) -> std::result::Result<(), String> {
    let mut cargs = CArgs::new(args)?;
    let dst_c = CString::new(dst.to_string_lossy().as_bytes()).map_err(|_| "output path contains a NUL byte".to_string())?;
    let mut handles: Vec<gdal_sys::GDALDatasetH> = sources.iter().map(|d| d.c_dataset()).collect();
    // SAFETY: argv is NUL-terminated and outlives the call; options are freed below; the
    // source handles stay open (owned by `sources`) for the whole call; the returned dataset
    // is closed before returning.
    unsafe {
        gdal_sys::CPLErrorReset();
        let opts = gdal_sys::GDALWarpAppOptionsNew(cargs.ptrs.as_mut_ptr(), null_mut());
        if opts.is_null() {
            return Err(format!("bad warp options {args:?}: {}", last_gdal_message()));
        }
        let mut usage_error: c_int = 0;
        let out = gdal_sys::GDALWarp(dst_c.as_ptr(), null_mut(), handles.len() as c_int, handles.as_mut_ptr(), opts, &mut usage_error);
        gdal_sys::GDALWarpAppOptionsFree(opts);
        if out.is_null() {
            return Err(last_gdal_message());
        }
        gdal_sys::GDALClose(out);
        // Errors raised while flushing on close (disk full) surface here.
        if gdal_sys::CPLGetLastErrorType() == gdal_sys::CPLErr::CE_Failure {
            return Err(last_gdal_message());
        }
    }
    Ok(())
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
    drop(vrt);
    commit(&tmp, path)?;
    set_band_descriptions(path, &[description])
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
/// with `resampling`). Source paths are stored relative to the VRT when possible.
pub fn build_vrt(
    path: &Path,
    sources: &[&str],
    separate: bool,
    grid: Option<&TargetGrid>,
    resampling: Resampling,
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
    drop(vrt);
    // A VRT names its sources relative to its own folder; the temp file is in the same folder.
    commit(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> TargetGrid {
        TargetGrid { epsg: 32633, pixel_size_m: 10.0, x_min: 300000.0, y_max: 4600020.0, width: 4, height: 3 }
    }

    #[test]
    fn grid_bounds_and_transform() {
        let g = grid();
        assert_eq!(g.bounds(), [300000.0, 4599990.0, 300040.0, 4600020.0]);
        assert_eq!(g.geo_transform(), [300000.0, 10.0, 0.0, 4600020.0, 0.0, -10.0]);
    }

    #[test]
    fn urls_go_through_vsicurl() {
        assert_eq!(gdal_path("https://x.org/a.tif"), "/vsicurl/https://x.org/a.tif");
        assert_eq!(gdal_path("/data/a.tif"), "/data/a.tif");
    }

    #[test]
    fn write_then_read_round_trips_values_nodata_and_descriptions() {
        let dir = tempfile::tempdir().unwrap();
        let g = grid();
        let n = g.width * g.height;
        let mut valid = vec![true; n];
        valid[5] = false;
        let stack = BandStack {
            width: g.width,
            height: g.height,
            bands: vec![(0..n).map(|i| i as f32 * 0.5).collect(), (0..n).map(|i| -(i as f32)).collect()],
            valid,
            geo_transform: g.geo_transform(),
            crs_wkt: gdal::spatial_ref::SpatialRef::from_epsg(g.epsg).unwrap().to_wkt().unwrap(),
            descriptions: vec!["B04".into(), "B08".into()],
        };
        for cog in [false, true] {
            let path = dir.path().join(format!("out-{cog}.tif"));
            write_raster(&path, &stack, &WriteOptions { cog, ..Default::default() }).unwrap();
            let back = read_window(path.to_str().unwrap(), &[], None).unwrap();
            assert_eq!(back.geo_transform, stack.geo_transform);
            assert_eq!(back.valid, stack.valid);
            assert_eq!(back.descriptions, stack.descriptions);
            assert_eq!(back.get(1, 3, 2), -11.0);
            let i = info(path.to_str().unwrap()).unwrap();
            assert_eq!(i.epsg, Some(32633));
            assert_eq!(i.is_cog, cog);
            // No temporary file is left behind.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), if cog { 2 } else { 1 });
        }
    }

    #[test]
    fn window_for_bounds_rounds_outward_and_clips() {
        let i = RasterInfo {
            location: "x".into(),
            driver: "GTiff".into(),
            width: 100,
            height: 100,
            geo_transform: [0.0, 10.0, 0.0, 1000.0, 0.0, -10.0],
            crs_wkt: String::new(),
            epsg: None,
            bands: vec![],
            is_cog: false,
        };
        let w = window_for_bounds(&i, [15.0, 900.0, 45.0, 985.0]).unwrap();
        assert_eq!(w, PixelWindow { x_off: 1, y_off: 1, width: 4, height: 9 });
        let clipped = window_for_bounds(&i, [-50.0, -50.0, 50.0, 2000.0]).unwrap();
        assert_eq!(clipped, PixelWindow { x_off: 0, y_off: 0, width: 5, height: 100 });
        assert!(window_for_bounds(&i, [5000.0, 0.0, 6000.0, 10.0]).is_err());
    }

    #[test]
    fn resampling_names_parse() {
        assert_eq!("Bilinear".parse::<Resampling>().unwrap(), Resampling::Bilinear);
        assert!("fancy".parse::<Resampling>().unwrap_err().to_string().contains("not one of"));
    }
}
