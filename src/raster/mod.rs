//! A thin layer over GDAL: open local files or HTTP(S) URLs (through `/vsicurl/`), read windows
//! of chosen bands into `f32` arrays with a validity mask, write GeoTIFF and Cloud-Optimized
//! GeoTIFF, warp onto a target grid, and build VRTs (mosaics and band stacks).
//!
//! Split by job: `env` (GDAL's process-wide configuration: messages, HTTP, cache), `read`,
//! `write` (GeoTIFF, COG, class maps, polygons), `warp` (warps, windows, VRTs), `png`, and `ffi`
//! (GDAL's C utility functions). Every output is written under a temporary name and renamed
//! when complete, so a file with the final name is always whole. This module knows nothing of
//! Sentinel bands or project folders.

mod env;
mod export;
mod ffi;
mod png;
mod points;
mod read;
mod vector;
mod warp;
mod write;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use env::*;
pub use export::*;
pub use png::*;
pub use points::*;
pub use read::*;
pub use vector::*;
pub use warp::*;
pub use write::*;

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

    /// The pixels of `win` (in this stack's pixels), as a read of that window would give them;
    /// None when the window is empty or reaches outside the stack.
    pub fn crop(&self, win: PixelWindow) -> Option<BandStack> {
        if win.width == 0 || win.height == 0 || win.x_off + win.width > self.width || win.y_off + win.height > self.height {
            return None;
        }
        let rows = |plane: &[f32]| -> Vec<f32> {
            let mut out = Vec::with_capacity(win.width * win.height);
            for r in win.y_off..win.y_off + win.height {
                let start = r * self.width + win.x_off;
                out.extend_from_slice(&plane[start..start + win.width]);
            }
            out
        };
        let mut valid = Vec::with_capacity(win.width * win.height);
        for r in win.y_off..win.y_off + win.height {
            let start = r * self.width + win.x_off;
            valid.extend_from_slice(&self.valid[start..start + win.width]);
        }
        let g = self.geo_transform;
        let (x, y) = (win.x_off as f64, win.y_off as f64);
        Some(BandStack {
            width: win.width,
            height: win.height,
            bands: self.bands.iter().map(|b| rows(b)).collect(),
            valid,
            geo_transform: [g[0] + x * g[1] + y * g[2], g[1], g[2], g[3] + x * g[4] + y * g[5], g[4], g[5]],
            crs_wkt: self.crs_wkt.clone(),
            descriptions: self.descriptions.clone(),
        })
    }

    /// Bytes of its values and validity.
    pub fn bytes(&self) -> usize {
        self.bands.iter().map(|b| b.len() * 4).sum::<usize>() + self.valid.len()
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
    /// The data's attribution, written as TIFFTAG_COPYRIGHT.
    pub copyright: Option<String>,
    /// What made the file (program, run, model), written as TIFFTAG_SOFTWARE.
    pub software: Option<String>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { cog: true, compression: Compression::Deflate, nodata: f32::NAN, copyright: None, software: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_names_parse() {
        assert_eq!("Bilinear".parse::<Resampling>().unwrap(), Resampling::Bilinear);
        assert!("fancy".parse::<Resampling>().unwrap_err().to_string().contains("not one of"));
    }

    #[test]
    fn a_crop_holds_the_window_with_its_own_georeference() {
        let (w, h) = (5, 4);
        let stack = BandStack {
            width: w,
            height: h,
            bands: vec![(0..20).map(|v| v as f32).collect(), (0..20).map(|v| 100.0 + v as f32).collect()],
            valid: (0..20).map(|v| v % 3 != 0).collect(),
            geo_transform: [1000.0, 10.0, 0.0, 2000.0, 0.0, -10.0],
            crs_wkt: "EPSG:32650".into(),
            descriptions: vec!["a".into(), "b".into()],
        };
        let c = stack.crop(PixelWindow { x_off: 1, y_off: 2, width: 3, height: 2 }).unwrap();
        assert_eq!((c.width, c.height), (3, 2));
        assert_eq!(c.bands[0], vec![11.0, 12.0, 13.0, 16.0, 17.0, 18.0]);
        assert_eq!(c.bands[1], vec![111.0, 112.0, 113.0, 116.0, 117.0, 118.0]);
        assert_eq!(c.valid, vec![true, false, true, true, true, false]);
        assert_eq!(c.geo_transform, [1010.0, 10.0, 0.0, 1980.0, 0.0, -10.0]);
        assert_eq!((c.crs_wkt.as_str(), c.descriptions.len()), ("EPSG:32650", 2));
        assert_eq!(stack.crop(PixelWindow { x_off: 0, y_off: 0, width: w, height: h }).unwrap(), stack);
        assert!(stack.crop(PixelWindow { x_off: 3, y_off: 0, width: 3, height: 1 }).is_none(), "past the right edge");
        assert!(stack.crop(PixelWindow { x_off: 0, y_off: 4, width: 1, height: 1 }).is_none(), "past the bottom");
        assert!(stack.crop(PixelWindow { x_off: 0, y_off: 0, width: 0, height: 1 }).is_none(), "empty");
        assert_eq!(stack.bytes(), 2 * 20 * 4 + 20);
    }
}
