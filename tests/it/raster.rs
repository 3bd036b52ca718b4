//! Raster I/O on real Sentinel data: band stacking onto one 10 m grid, warps against the
//! `gdalwarp` command, COG writing, windowed reads.

use std::process::Command;

use s2cr::grid::TargetGrid;
use s2cr::raster::{self, BandStack, Resampling, WarpOptions, WriteOptions};

use crate::{bigearthnet_s1, bigearthnet_s2};

/// The 10 m grid of the BigEarthNet patch (120 x 120 pixels, EPSG:32633).
fn patch_grid() -> TargetGrid {
    let i = raster::info(&bigearthnet_s2("B02")).unwrap();
    assert_eq!(i.epsg, Some(32633));
    TargetGrid {
        epsg: 32633,
        pixel_size_m: i.geo_transform[1],
        x_min: i.geo_transform[0],
        y_max: i.geo_transform[3],
        width: i.width,
        height: i.height,
    }
}

fn read_all(path: &str) -> BandStack {
    raster::read_window(path, &[], None).unwrap()
}

#[test]
fn stacking_10_and_20_m_bands_onto_the_10_m_grid() {
    let dir = tempfile::tempdir().unwrap();
    let grid = patch_grid();
    let b11_nearest = dir.path().join("b11_near.tif");
    let b11_bilinear = dir.path().join("b11_bil.tif");
    let opts = |r| WarpOptions { resampling: r, output_type: Some("Float32".into()), ..Default::default() };
    raster::warp_to_grid(&[&bigearthnet_s2("B11")], &b11_nearest, &grid, &opts(Resampling::Nearest)).unwrap();
    raster::warp_to_grid(&[&bigearthnet_s2("B11")], &b11_bilinear, &grid, &opts(Resampling::Bilinear)).unwrap();

    let src = read_all(&bigearthnet_s2("B11"));
    assert_eq!((src.width, src.height), (60, 60));
    let near = read_all(b11_nearest.to_str().unwrap());
    assert_eq!((near.width, near.height), (120, 120));
    assert_eq!(near.geo_transform, grid.geo_transform());
    // Nearest: every 2 x 2 block of 10 m pixels repeats its 20 m pixel.
    for row in 0..120 {
        for col in 0..120 {
            assert_eq!(near.get(0, col, row), src.get(0, col / 2, row / 2), "({col}, {row})");
        }
    }
    // Bilinear on pixel centres: 10 m pixel c has its centre at 20 m pixel coordinate c/2 - 0.25.
    let bil = read_all(b11_bilinear.to_str().unwrap());
    for (col, row) in [(10usize, 10usize), (57, 33), (100, 91), (33, 70)] {
        let (x, y) = (col as f64 / 2.0 - 0.25, row as f64 / 2.0 - 0.25);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let v = |c: usize, r: usize| src.get(0, c, r) as f64;
        let expected = v(x0, y0) * (1.0 - fx) * (1.0 - fy)
            + v(x0 + 1, y0) * fx * (1.0 - fy)
            + v(x0, y0 + 1) * (1.0 - fx) * fy
            + v(x0 + 1, y0 + 1) * fx * fy;
        let got = bil.get(0, col, row) as f64;
        assert!((got - expected).abs() < 1e-2, "({col}, {row}): {got} vs {expected}");
    }

    // A band stack like `gdalbuildvrt -separate`: S1 VV, VH and S2 B02, B11 on the 10 m grid.
    let vrt = dir.path().join("stack.vrt");
    let sources = [bigearthnet_s1("VV"), bigearthnet_s1("VH"), bigearthnet_s2("B02"), bigearthnet_s2("B11")];
    let refs: Vec<&str> = sources.iter().map(String::as_str).collect();
    raster::build_vrt(&vrt, &refs, true, Some(&grid), Resampling::Nearest, &[]).unwrap();
    let info = raster::info(vrt.to_str().unwrap()).unwrap();
    assert_eq!((info.width, info.height, info.bands.len()), (120, 120, 4));
    assert_eq!(info.geo_transform, grid.geo_transform());
    assert_eq!(info.epsg, Some(32633));
    let stack = read_all(vrt.to_str().unwrap());
    let vv = read_all(&bigearthnet_s1("VV"));
    let b02 = read_all(&bigearthnet_s2("B02"));
    assert_eq!(stack.bands[0], vv.bands[0]);
    assert_eq!(stack.bands[2], b02.bands[0]);
    assert_eq!(stack.bands[3], near.bands[0]);
    // The VRT points at its sources; it never copies pixels.
    assert!(std::fs::metadata(&vrt).unwrap().len() < 20_000);
}

#[test]
fn warp_matches_the_gdalwarp_command() {
    let dir = tempfile::tempdir().unwrap();
    // Another UTM zone and a grid offset by a fraction of a pixel: a real resampling.
    let grid = TargetGrid { epsg: 32632, pixel_size_m: 10.0, x_min: 849_905.0, y_max: 5_352_355.0, width: 150, height: 130 };
    let ours = dir.path().join("ours.tif");
    let opts = WarpOptions { resampling: Resampling::Bilinear, output_type: Some("Float32".into()), dst_nodata: Some(-9999.0), ..Default::default() };
    raster::warp_to_grid(&[&bigearthnet_s2("B04")], &ours, &grid, &opts).unwrap();
    let theirs = dir.path().join("theirs.tif");
    let b = grid.bounds();
    let status = Command::new("gdalwarp")
        .args(["-q", "-t_srs", "EPSG:32632", "-tr", "10", "10", "-r", "bilinear", "-ot", "Float32", "-dstnodata", "-9999", "-te"])
        .args(b.iter().map(|v| v.to_string()))
        .arg(bigearthnet_s2("B04"))
        .arg(&theirs)
        .status()
        .expect("the gdalwarp command (package gdal-bin) is needed by this test");
    assert!(status.success());
    let (a, c) = (read_all(ours.to_str().unwrap()), read_all(theirs.to_str().unwrap()));
    assert_eq!(a.geo_transform, c.geo_transform);
    assert_eq!(a.valid, c.valid);
    let valid = a.valid.iter().filter(|v| **v).count();
    assert!(valid > 5000, "the warp should cover much of the grid, covers {valid} pixels");
    let max_diff = a.bands[0].iter().zip(&c.bands[0]).zip(&a.valid).filter(|(_, ok)| **ok).map(|((x, y), _)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max_diff < 1e-3, "max difference {max_diff}");
}

#[test]
fn cog_output_is_cloud_optimized_and_keeps_georeferencing() {
    let dir = tempfile::tempdir().unwrap();
    let sen12 = crate::shared_data().join("s1s2-sen12mscr/s2_cloudfree/ROIs1970_fall_139_p839.tif");
    let src = raster::read_window(sen12.to_str().unwrap(), &[2, 3, 4], None).unwrap();
    let mut stack = src.clone();
    stack.descriptions = vec!["B02".into(), "B03".into(), "B04".into()];
    let out = dir.path().join("rgb.tif");
    raster::write_raster(&out, &stack, &WriteOptions::default()).unwrap();
    let info = raster::info(out.to_str().unwrap()).unwrap();
    assert!(info.is_cog);
    assert_eq!(info.bands.iter().map(|b| b.description.as_str()).collect::<Vec<_>>(), ["B02", "B03", "B04"]);
    assert_eq!(info.geo_transform, src.geo_transform);
    let back = read_all(out.to_str().unwrap());
    assert_eq!(back.bands, src.bands);
    // gdalinfo agrees that it is a COG.
    let out_text = Command::new("gdalinfo").arg(&out).output().expect("gdalinfo (gdal-bin)");
    assert!(String::from_utf8_lossy(&out_text.stdout).contains("LAYOUT=COG"));
}

#[test]
fn reading_by_bounds_returns_the_same_pixels_as_a_full_read() {
    let path = bigearthnet_s2("B08");
    let full = read_all(&path);
    let gt = full.geo_transform;
    // Columns 20..50, rows 30..45.
    let bounds = [gt[0] + 200.0, gt[3] - 450.0, gt[0] + 500.0, gt[3] - 300.0];
    let part = raster::read_bounds(&path, &[1], bounds).unwrap();
    assert_eq!((part.width, part.height), (30, 15));
    assert_eq!(part.geo_transform[0], gt[0] + 200.0);
    assert_eq!(part.geo_transform[3], gt[3] - 300.0);
    for row in 0..15 {
        for col in 0..30 {
            assert_eq!(part.get(0, col, row), full.get(0, col + 20, row + 30));
        }
    }
}

#[test]
fn an_unreadable_tiff_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.tif");
    std::fs::write(&bad, b"II*\0this is not really a tiff").unwrap();
    let err = raster::info(bad.to_str().unwrap()).unwrap_err();
    let text = s2cr::error_chain(&err);
    assert!(text.contains("broken.tif") && text.contains("opening the raster"), "{text}");
    let missing = raster::info("/no/such/file.tif").unwrap_err().to_string();
    assert_eq!(missing, "/no/such/file.tif: no such file");
}
