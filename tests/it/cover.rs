//! Cloud over the AOI from a scene classification read at a coarse overview over HTTP, with
//! Planetary Computer-style signed URLs. The SCL here is SIMULATED from a real cloudy SEN12MS-CR
//! chip (no real SCL is among the reference data): class 9 (cloud, high probability) where the
//! blue reflectance exceeds 0.2, class 4 (vegetation) elsewhere.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use s2cr::aoi::Aoi;
use s2cr::catalog::cover;
use s2cr::catalog::sign::PcSigner;
use s2cr::raster::{self, ClassRaster};

use crate::cog_server::CogServer;
use crate::shared_data;

/// The simulated SCL at 1 m (each 10 m pixel repeated 10 x 10) so that its COG has overviews.
fn simulated_scl(dir: &Path) -> PathBuf {
    let src = shared_data().join("s1s2-sen12mscr/s2_cloudy/ROIs1970_fall_139_p839.tif");
    let blue = raster::read_window(src.to_str().unwrap(), &[2], None).unwrap();
    let (w, h, k) = (blue.width, blue.height, 10usize);
    let mut codes = vec![0u8; w * k * h * k];
    for y in 0..h * k {
        for x in 0..w * k {
            codes[y * w * k + x] = if blue.get(0, x / k, y / k) / 10000.0 > 0.2 { 9 } else { 4 };
        }
    }
    let mut gt = blue.geo_transform;
    gt[1] /= k as f64;
    gt[5] /= k as f64;
    let out = dir.join("SCL.tif");
    raster::write_classes(
        &out,
        &ClassRaster {
            width: w * k,
            height: h * k,
            codes: &codes,
            geo_transform: gt,
            crs_wkt: &blue.crs_wkt,
            description: "SCL (simulated from blue reflectance)",
            classes: &[(4, [0, 160, 0], "vegetation"), (9, [255, 255, 255], "cloud high probability")],
        },
    )
    .unwrap();
    out
}

#[test]
fn aoi_cloud_from_a_signed_overview_read_matches_a_full_resolution_count() {
    let tmp = tempfile::tempdir().unwrap();
    let scl = simulated_scl(tmp.path());
    assert!(raster::info(scl.to_str().unwrap()).unwrap().bands[0].overviews >= 2);
    let server = CogServer::start(tmp.path().to_path_buf());
    *server.required_query.lock().unwrap() = Some("sig=".into());
    // An AOI over most of the chip (centre 119.187 E 33.500 N, 2.56 km wide).
    let aoi = Aoi::parse_geojson(r#"{"type":"Polygon","coordinates":[[[119.176,33.491],[119.198,33.491],[119.198,33.509],[119.176,33.509],[119.176,33.491]]]}"#, "t").unwrap();
    let points = cover::sample_points(&aoi, 48);

    let href = format!("{}/SCL.tif", server.url);
    // Unsigned: refused, and the error names the file.
    raster::clear_http_cache();
    let err = cover::sample_scl(&href, &points, 96).unwrap_err();
    assert!(s2cr::error_chain(&err).contains("SCL.tif"), "{err}");

    let signer = PcSigner::new(&format!("{}/token", server.url), Duration::from_secs(5)).unwrap();
    let signed = signer.sign(&href, "sentinel-2-l2a").unwrap();
    assert!(signed.ends_with("?st=2026-01-01&se=2026-01-02&sp=rl&sig=loopback"), "{signed}");
    signer.sign(&href, "sentinel-2-l2a").unwrap();
    assert_eq!(server.token_requests.load(Ordering::SeqCst), 1, "the token is cached");

    raster::clear_http_cache();
    raster::network_stats_reset();
    server.reset_counters();
    let remote = cover::combine(&[cover::sample_scl(&signed, &points, 96).unwrap()]);
    let served = server.bytes_served.load(Ordering::SeqCst);
    let file = std::fs::metadata(&scl).unwrap().len();
    assert!(served * 4 < file, "an overview read costs a fraction of the file: {served} of {file} bytes");

    // Second method: every sample point looked up in the full-resolution raster.
    let local = cover::combine(&[cover::sample_scl(scl.to_str().unwrap(), &points, 100_000).unwrap()]);
    println!("AOI cloud: overview {:.2} %, full resolution {:.2} %", remote.cloud_percent, local.cloud_percent);
    assert!(local.cloud_percent > 5.0 && local.cloud_percent < 95.0, "a partly cloudy AOI: {}", local.cloud_percent);
    assert!((remote.cloud_percent - local.cloud_percent).abs() < 5.0);
    assert_eq!(remote.coverage_percent, 100.0);

    // An AOI half outside the scene is half covered.
    let edge = Aoi::parse_geojson(r#"{"type":"Polygon","coordinates":[[[119.190,33.495],[119.220,33.495],[119.220,33.505],[119.190,33.505],[119.190,33.495]]]}"#, "t").unwrap();
    let c = cover::combine(&[cover::sample_scl(&signed, &cover::sample_points(&edge, 40), 96).unwrap()]);
    assert!(c.coverage_percent > 10.0 && c.coverage_percent < 60.0, "{}", c.coverage_percent);
}
