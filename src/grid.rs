//! The project grid and coordinate reference systems: [`TargetGrid`] (the north-up UTM grid every
//! preprocessed raster lands on), the choice of UTM zone and WGS84 in longitude-first order.
//! A leaf: it imports nothing of the crate but the error type.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest side of a grid the program accepts, pixels (1000 km at 10 m; a Sentinel-2 tile is
/// 10,980). Stages work in strips of rows, so memory follows the width.
pub const MAX_GRID_SIDE: usize = 100_000;
/// Most pixels of a grid the program accepts (100,000 km2 at 10 m, ten times the largest AOI
/// `s2cr init` accepts by default): each full-grid Float32 band is 4 GB at this size.
pub const MAX_GRID_PIXELS: usize = 1_000_000_000;

/// Refuses a grid of absurd size (a corrupt header, a mistyped project.yaml) before anything is
/// allocated for it: the message says the size and the limits.
pub fn check_size(width: usize, height: usize) -> std::result::Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("the grid is empty ({width} x {height} pixels)"));
    }
    if width > MAX_GRID_SIDE || height > MAX_GRID_SIDE || width.saturating_mul(height) > MAX_GRID_PIXELS {
        return Err(format!(
            "a grid of {width} x {height} pixels is larger than this program handles (at most {MAX_GRID_SIDE} pixels a side and {} million pixels); use a smaller area or a coarser pixel size",
            MAX_GRID_PIXELS / 1_000_000
        ));
    }
    Ok(())
}

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

    /// Checks the grid's size ([`check_size`]) and pixel size.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(self.pixel_size_m.is_finite() && self.pixel_size_m > 0.0) {
            return Err(format!("pixel_size_m {} is not a positive size", self.pixel_size_m));
        }
        if !(self.x_min.is_finite() && self.y_max.is_finite()) {
            return Err("x_min and y_max must be finite".into());
        }
        check_size(self.width, self.height)
    }

    pub fn area_km2(&self) -> f64 {
        self.width as f64 * self.height as f64 * self.pixel_size_m * self.pixel_size_m / 1.0e6
    }

    /// The UTM grid of an area: the UTM zone of `centroid` (lon, lat), `pixel_size_m` pixels,
    /// the lon/lat `bbox` projected with densified edges and snapped outward to multiples of
    /// 60 m. Sentinel-2 tiles start at multiples of 60 m, so the 10, 20 and 60 m pixels of every
    /// S2 band fall on whole pixels of this grid.
    pub fn utm_for(bbox: [f64; 4], centroid: [f64; 2], pixel_size_m: f64) -> Result<TargetGrid> {
        if !(pixel_size_m > 0.0 && 60.0 % pixel_size_m == 0.0) {
            return Err(Error::invalid(
                "pixel_size_m",
                format!("{pixel_size_m} m does not divide the 60 m Sentinel-2 grid; use 10, 20 or 60"),
            ));
        }
        let epsg = utm_epsg(centroid[0], centroid[1]);
        let wgs84 = wgs84_traditional()?;
        let utm = gdal::spatial_ref::SpatialRef::from_epsg(epsg).map_err(Error::gdal(format!("EPSG:{epsg}"), "creating the UTM CRS"))?;
        let transform = gdal::spatial_ref::CoordTransform::new(&wgs84, &utm)
            .map_err(Error::gdal(format!("EPSG:4326 -> EPSG:{epsg}"), "creating a coordinate transformation"))?;
        // Densified edges: a lon/lat box is curved in UTM.
        let b = transform
            .transform_bounds(&bbox, 21)
            .map_err(Error::gdal(format!("EPSG:4326 -> EPSG:{epsg}"), "projecting the AOI bounds"))?;
        const ALIGN_M: f64 = 60.0;
        let x_min = (b[0] / ALIGN_M).floor() * ALIGN_M;
        let y_min = (b[1] / ALIGN_M).floor() * ALIGN_M;
        let x_max = (b[2] / ALIGN_M).ceil() * ALIGN_M;
        let y_max = (b[3] / ALIGN_M).ceil() * ALIGN_M;
        let grid = TargetGrid {
            epsg,
            pixel_size_m,
            x_min,
            y_max,
            width: ((x_max - x_min) / pixel_size_m).round() as usize,
            height: ((y_max - y_min) / pixel_size_m).round() as usize,
        };
        check_size(grid.width, grid.height).map_err(|m| Error::invalid("AOI", format!("its bounding box in UTM: {m}")))?;
        Ok(grid)
    }
}

/// WGS84 with longitude first, as GeoJSON and WKT give coordinates.
pub fn wgs84_traditional() -> Result<gdal::spatial_ref::SpatialRef> {
    let mut srs = gdal::spatial_ref::SpatialRef::from_epsg(4326).map_err(Error::gdal("EPSG:4326", "creating the WGS84 CRS"))?;
    srs.set_axis_mapping_strategy(gdal::spatial_ref::AxisMappingStrategy::TraditionalGisOrder);
    Ok(srs)
}

/// EPSG code of the WGS84 / UTM zone containing (lon, lat), with the Norway and Svalbard
/// exceptions that the MGRS grid (and so the Sentinel-2 tiling grid) uses.
pub fn utm_epsg(lon: f64, lat: f64) -> u32 {
    let mut zone = (((lon + 180.0) / 6.0).floor() as i64 + 1).clamp(1, 60) as u32;
    if (56.0..64.0).contains(&lat) && (3.0..12.0).contains(&lon) {
        zone = 32;
    }
    if (72.0..84.0).contains(&lat) {
        zone = match lon {
            l if (0.0..9.0).contains(&l) => 31,
            l if (9.0..21.0).contains(&l) => 33,
            l if (21.0..33.0).contains(&l) => 35,
            l if (33.0..42.0).contains(&l) => 37,
            _ => zone,
        };
    }
    if lat >= 0.0 { 32600 + zone } else { 32700 + zone }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_bounds_and_transform() {
        let g = TargetGrid { epsg: 32633, pixel_size_m: 10.0, x_min: 300000.0, y_max: 4600020.0, width: 4, height: 3 };
        assert_eq!(g.bounds(), [300000.0, 4599990.0, 300040.0, 4600020.0]);
        assert_eq!(g.geo_transform(), [300000.0, 10.0, 0.0, 4600020.0, 0.0, -10.0]);
    }

    #[test]
    fn utm_zones_including_exceptions() {
        assert_eq!(utm_epsg(136.65, -35.85), 32753);
        assert_eq!(utm_epsg(12.5, 41.9), 32633);
        assert_eq!(utm_epsg(5.3, 60.4), 32632); // Bergen: Norway exception
        assert_eq!(utm_epsg(15.0, 78.0), 32633); // Svalbard
        assert_eq!(utm_epsg(-180.0, 10.0), 32601);
        assert_eq!(utm_epsg(180.0, 10.0), 32660);
    }
}
