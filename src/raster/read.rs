//! Opening rasters and reading them: info, pixel windows for bounds (also through GCPs),
//! windows of bands as `f32` with a validity mask, scaled previews.

use std::ffi::{c_char, c_int};
use std::path::Path;
use std::ptr::null_mut;

use gdal::raster::Buffer;
use gdal::{Dataset, Metadata};

use super::env::{gdal_path, init_gdal};
use super::{BandInfo, BandStack, PixelWindow, RasterInfo};
use crate::error::{Error, Result};

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
/// Whether two CRSs (WKT, as [`RasterInfo::crs_wkt`] holds them) are the same, as GDAL judges
/// (`OSRIsSame`: the same datum and projection, whatever the WKT's wording). Two empty ones are
/// the same; an empty one and a set one, or one GDAL cannot read, are not.
pub fn same_crs(a: &str, b: &str) -> bool {
    use gdal::spatial_ref::SpatialRef;
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => true,
        (false, false) => matches!((SpatialRef::from_wkt(a), SpatialRef::from_wkt(b)), (Ok(x), Ok(y)) if x == y),
        _ => false,
    }
}

/// A CRS in a few words for messages: its EPSG code where it has one, else its name.
pub fn crs_name(wkt: &str) -> String {
    use gdal::spatial_ref::SpatialRef;
    if wkt.trim().is_empty() {
        return "no CRS".into();
    }
    match SpatialRef::from_wkt(wkt) {
        Ok(mut s) => {
            let _ = s.auto_identify_epsg();
            match (s.auth_name(), s.auth_code().ok(), s.name()) {
                (Some(a), Some(c), _) => format!("{a}:{c}"),
                (_, _, Some(n)) => n,
                _ => "an unnamed CRS".into(),
            }
        }
        Err(_) => "a CRS GDAL cannot read".into(),
    }
}

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
    // More than a project has layers (the inspector reads every one under the cursor).
    const MAX_OPEN: usize = 32;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
