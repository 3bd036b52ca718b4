//! Cloud cover and coverage *over the AOI*, from the Sentinel-2 scene classification (SCL) read at
//! a coarse overview of its COG: a 100 km scene that is 60 % cloudy can be clear over a small
//! AOI, and the user's threshold is about the AOI.
//!
//! The AOI is sampled on a regular longitude/latitude grid (points inside the polygon only);
//! each scene's SCL is read once, downsampled (GDAL picks the matching overview, so a few
//! kilobytes travel), and looked up at the sample points. Scenes of one date and orbit are
//! combined, so an AOI split between two tiles counts as covered.

use geo::Contains;
use serde::{Deserialize, Serialize};

use crate::aoi::Aoi;
use crate::error::{Error, Result};
use crate::raster;

/// SCL classes (Sentinel-2 L2A product specification, scene classification): 0 no data,
/// 1 saturated or defective, 3 cloud shadows, 8 cloud medium probability, 9 cloud high
/// probability, 10 thin cirrus.
pub fn scl_is_cloud(class: u8) -> bool {
    matches!(class, 3 | 8 | 9 | 10)
}

pub fn scl_has_data(class: u8) -> bool {
    !matches!(class, 0 | 1)
}

/// Cloud and coverage over the AOI, percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AoiCover {
    /// Cloud, cloud shadow and cirrus among the AOI pixels with data.
    pub cloud_percent: f64,
    /// AOI pixels with data.
    pub coverage_percent: f64,
}

/// Regular sample points (lon, lat) inside the AOI: about `n` x `n` over its bounding box.
pub fn sample_points(aoi: &Aoi, n: usize) -> Vec<(f64, f64)> {
    let b = aoi.bbox();
    let geometry = aoi.geometry();
    let n = n.max(2);
    let mut points = Vec::with_capacity(n * n);
    for j in 0..n {
        for i in 0..n {
            let lon = b[0] + (b[2] - b[0]) * (i as f64 + 0.5) / n as f64;
            let lat = b[1] + (b[3] - b[1]) * (j as f64 + 0.5) / n as f64;
            if geometry.contains(&geo::Point::new(lon, lat)) {
                points.push((lon, lat));
            }
        }
    }
    points
}

/// SCL classes of one scene at `points` (0 where the scene has no pixel), from a read of at
/// most `max_px` x `max_px` pixels over the points' extent.
pub fn sample_scl(href: &str, points: &[(f64, f64)], max_px: usize) -> Result<Vec<u8>> {
    sample_band(href, points, max_px)
}

/// Values of band 1 of a raster at WGS84 `points` (the type's default where the raster has no
/// pixel), from a nearest-neighbour read of at most `max_px` x `max_px` pixels over the points'
/// extent: GDAL serves it from the matching overview, so a few kilobytes travel.
pub fn sample_band<T: gdal::raster::GdalType + Copy + Default>(href: &str, points: &[(f64, f64)], max_px: usize) -> Result<Vec<T>> {
    if points.is_empty() {
        return Ok(Vec::new());
    }
    let info = raster::info(href)?;
    let wgs84 = crate::grid::wgs84_traditional()?;
    let mut srs = gdal::spatial_ref::SpatialRef::from_wkt(&info.crs_wkt).map_err(Error::gdal(href, "reading the CRS"))?;
    srs.set_axis_mapping_strategy(gdal::spatial_ref::AxisMappingStrategy::TraditionalGisOrder);
    let transform = gdal::spatial_ref::CoordTransform::new(&wgs84, &srs).map_err(Error::gdal(href, "creating a transformation"))?;
    let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let mut ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    transform.transform_coords(&mut xs, &mut ys, &mut []).map_err(Error::gdal(href, "projecting the AOI samples"))?;
    let gt = info.geo_transform;
    let cols: Vec<f64> = xs.iter().map(|x| (x - gt[0]) / gt[1]).collect();
    let rows: Vec<f64> = ys.iter().map(|y| (y - gt[3]) / gt[5]).collect();
    let clamp = |v: f64, max: usize| v.floor().clamp(0.0, max as f64) as usize;
    let (c0, c1) = (clamp(cols.iter().copied().fold(f64::INFINITY, f64::min), info.width), clamp(cols.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 1.0, info.width));
    let (r0, r1) = (clamp(rows.iter().copied().fold(f64::INFINITY, f64::min), info.height), clamp(rows.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 1.0, info.height));
    if c1 <= c0 || r1 <= r0 {
        return Ok(vec![T::default(); points.len()]);
    }
    let (w, h) = (c1 - c0, r1 - r0);
    let scale = (w.max(h) as f64 / max_px.max(1) as f64).max(1.0);
    let (ow, oh) = (((w as f64 / scale).ceil() as usize).max(1), ((h as f64 / scale).ceil() as usize).max(1));
    let ds = raster::open(href)?;
    let band = ds.rasterband(1).map_err(Error::gdal(href, "opening band 1"))?;
    // Downsampled read with nearest neighbour: GDAL serves it from the matching overview.
    let buf = band
        .read_as::<T>((c0 as isize, r0 as isize), (w, h), (ow, oh), Some(gdal::raster::ResampleAlg::NearestNeighbour))
        .map_err(Error::gdal(href, "reading an overview"))?;
    let data = buf.data();
    Ok(cols
        .iter()
        .zip(&rows)
        .map(|(c, r)| {
            if *c < 0.0 || *r < 0.0 || *c >= info.width as f64 || *r >= info.height as f64 {
                return T::default();
            }
            let (x, y) = (((c - c0 as f64) / w as f64 * ow as f64) as usize, ((r - r0 as f64) / h as f64 * oh as f64) as usize);
            data[y.min(oh - 1) * ow + x.min(ow - 1)]
        })
        .collect())
}

/// Cover of one date: several scenes' samples combined, the first scene with data at a point
/// deciding that point.
pub fn combine(samples: &[Vec<u8>]) -> AoiCover {
    let n = samples.first().map(Vec::len).unwrap_or(0);
    let (mut data, mut cloud) = (0usize, 0usize);
    for i in 0..n {
        if let Some(class) = samples.iter().map(|s| s[i]).find(|c| scl_has_data(*c)) {
            data += 1;
            if scl_is_cloud(class) {
                cloud += 1;
            }
        }
    }
    AoiCover {
        cloud_percent: if data == 0 { 100.0 } else { 100.0 * cloud as f64 / data as f64 },
        coverage_percent: if n == 0 { 0.0 } else { 100.0 * data as f64 / n as f64 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_combination() {
        assert!(scl_is_cloud(9) && scl_is_cloud(3) && !scl_is_cloud(4));
        // Two tiles of one date: the first covers the left half (one cloudy point), the
        // second the right half.
        let a = vec![4, 9, 0, 0];
        let b = vec![0, 0, 5, 4];
        let c = combine(&[a.clone(), b]);
        assert_eq!(c.coverage_percent, 100.0);
        assert_eq!(c.cloud_percent, 25.0);
        let alone = combine(&[a]);
        assert_eq!(alone.coverage_percent, 50.0);
        assert_eq!(alone.cloud_percent, 50.0);
    }

    #[test]
    fn samples_stay_inside_the_polygon() {
        // A triangle covers half its bounding box.
        let aoi = Aoi::parse_geojson(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,1],[0,0]]]}"#, "t").unwrap();
        let points = sample_points(&aoi, 20);
        assert!((points.len() as f64 - 190.0).abs() <= 20.0, "{}", points.len());
        assert!(points.iter().all(|(x, y)| x + y <= 1.0 + 1e-9));
    }
}
