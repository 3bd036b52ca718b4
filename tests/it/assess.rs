//! Assessment on real chips: metrics against numpy / scikit-image references
//! (scripts/assess_reference.py), and burned-area agreement on a simulated burn scar.

use std::path::{Path, PathBuf};

use s2cr::assess::{self, AssessConfig, AssessInputs};
use s2cr::job::Progress;
use s2cr::raster::{self, BandStack, WriteOptions};

use crate::shared_data;

const BANDS: [&str; 6] = ["B02", "B03", "B04", "B08", "B11", "B12"];
/// 1-based positions of BANDS in SEN12MS-CR's 13-band files (B1..B8, B8A, B9, B10, B11, B12).
const SEN12MS_INDEX: [usize; 6] = [2, 3, 4, 8, 12, 13];

fn sen12ms(kind: &str) -> PathBuf {
    shared_data().join(format!("s1s2-sen12mscr/{kind}/ROIs1970_fall_139_p839.tif"))
}

/// The six bands of a SEN12MS-CR chip as reflectance (DN / 10000, in f32 as the reference does).
fn reflectance(kind: &str) -> BandStack {
    let mut s = raster::read_window(sen12ms(kind).to_str().unwrap(), &SEN12MS_INDEX, None).unwrap();
    s.bands.iter_mut().flatten().for_each(|v| *v /= 10000.0);
    s.descriptions = BANDS.map(String::from).to_vec();
    s
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/assess_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn close(got: f64, expected: &serde_json::Value, what: &str) {
    let e = expected.as_f64().unwrap_or_else(|| panic!("{what}: no reference value"));
    assert!((got - e).abs() < 1e-5, "{what}: {got} vs reference {e}");
}

#[test]
fn metrics_match_numpy_and_scikit_image_on_a_real_chip() {
    use s2cr::indices::metrics;
    let (real, synth) = (reflectance("s2_cloudfree"), reflectance("s2_cloudy"));
    let reference = reference();
    let all_valid = vec![true; real.width * real.height];
    let masked: Vec<bool> = synth.bands[0].iter().map(|v| *v < 0.2).collect();
    for (case, valid) in [("all_valid", &all_valid), ("masked", &masked)] {
        let r = &reference[case];
        assert_eq!(valid.iter().filter(|v| **v).count() as u64, r["valid_pixels"].as_u64().unwrap());
        for (i, band) in BANDS.iter().enumerate() {
            let e = &r["bands"][band];
            let (a, b) = (&real.bands[i], &synth.bands[i]);
            close(metrics::rmse(a, b, valid), &e["rmse"], &format!("{case} {band} rmse"));
            close(metrics::mae(a, b, valid), &e["mae"], &format!("{case} {band} mae"));
            close(metrics::psnr(a, b, valid, 1.0), &e["psnr"], &format!("{case} {band} psnr"));
            close(metrics::ssim(a, b, real.width, real.height, valid, 1.0), &e["ssim"], &format!("{case} {band} ssim"));
        }
        let rr: Vec<&[f32]> = real.bands.iter().map(Vec::as_slice).collect();
        let ss: Vec<&[f32]> = synth.bands.iter().map(Vec::as_slice).collect();
        close(metrics::sam_degrees(&rr, &ss, valid), &r["sam_degrees"], &format!("{case} sam"));
    }
    let nbr = s2cr::indices::spectral::nbr(&real.bands[3], &real.bands[5], &all_valid);
    let nbr_synth = s2cr::indices::spectral::nbr(&synth.bands[3], &synth.bands[5], &all_valid);
    let mean = |v: &[f32]| v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
    // NBR is computed in f32 here and in f64 by numpy: agreement to 1e-5 still holds.
    close(mean(&nbr), &reference["nbr_real_mean"], "mean NBR");
    let dnbr = s2cr::indices::spectral::dnbr(&nbr, &nbr_synth);
    close(mean(&dnbr), &reference["dnbr_mean"], "mean dNBR");
    close(dnbr[100 * 256 + 200] as f64, &reference["dnbr_at_100_200"], "dNBR at (100, 200)");
}

/// Simulated burn scar: NIR (B08) halved and SWIR2 (B12) raised by 60 % inside a rectangle, the
/// direction of change that burned vegetation shows (NIR falls, SWIR rises).
fn apply_simulated_burn(stack: &mut BandStack, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) {
    for r in rows {
        for c in cols.clone() {
            let i = r * stack.width + c;
            stack.bands[3][i] *= 0.5;
            stack.bands[5][i] *= 1.6;
        }
    }
}

/// Burned pixels expected inside a rectangle, from the closed form of dNBR for this simulation:
/// with r = NIR/SWIR2 before, dNBR = (r-1)/(r+1) - (r-3.2)/(r+3.2) = 4.4 r / ((r+1)(r+3.2)).
fn expected_burned(pre: &BandStack, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> u64 {
    let mut n = 0;
    for r in rows {
        for c in cols.clone() {
            let i = r * pre.width + c;
            let ratio = pre.bands[3][i] as f64 / pre.bands[5][i] as f64;
            if 4.4 * ratio / ((ratio + 1.0) * (ratio + 3.2)) >= 0.1 + 1e-6 {
                n += 1;
            }
        }
    }
    n
}

fn write(dir: &Path, name: &str, stack: &BandStack) -> PathBuf {
    let p = dir.join(name);
    raster::write_raster(&p, stack, &WriteOptions::default()).unwrap();
    p
}

fn kappa(tp: f64, fp: f64, fn_: f64, tn: f64) -> f64 {
    let n = tp + fp + fn_ + tn;
    let po = (tp + tn) / n;
    let pe = ((tp + fn_) / n) * ((tp + fp) / n) + ((tn + fp) / n) * ((tn + fn_) / n);
    (po - pe) / (1.0 - pe)
}

#[test]
fn simulated_burn_nir_halved_swir2_up_60_percent_gives_expected_hectares_and_kappa() {
    let tmp = tempfile::tempdir().unwrap();
    // S2CR_KEEP_TEST_OUTPUT=DIR keeps the outputs there, to look at the report.
    let kept = std::env::var_os("S2CR_KEEP_TEST_OUTPUT").map(PathBuf::from);
    let tmp_path = kept.unwrap_or_else(|| tmp.path().to_path_buf());
    let pre = reflectance("s2_cloudfree");
    let mut post = pre.clone();
    apply_simulated_burn(&mut post, 64..128, 64..192);
    // The synthetic image found only the left half of the scar.
    let mut partial = pre.clone();
    apply_simulated_burn(&mut partial, 64..128, 64..128);
    let (pre_p, post_p, partial_p) = (write(tmp_path.as_path(), "pre.tif", &pre), write(tmp_path.as_path(), "post.tif", &post), write(tmp_path.as_path(), "partial.tif", &partial));
    let cfg = AssessConfig { simulated_burn: Some("NIR (B08) x 0.5 and SWIR2 (B12) x 1.6 in a 64 x 128 px rectangle".into()), ..Default::default() };

    let left = expected_burned(&pre, 64..128, 64..128);
    let right = expected_burned(&pre, 64..128, 128..192);
    assert!(left + right > 7000, "most of the 8192 scar pixels burn: {}", left + right);

    let same = assess::assess_files(
        &AssessInputs { pre: pre_p.clone(), real: post_p.clone(), synthetic: post_p.clone(), ..Default::default() },
        &tmp_path.as_path().join("same"),
        &cfg,
        &Progress::silent("assess"),
    )
    .unwrap();
    let b = &same.burned;
    assert_eq!(b.true_positive, left + right);
    assert_eq!((b.false_positive, b.false_negative), (0, 0));
    assert!((b.burned_ha_real - (left + right) as f64 * 0.01).abs() < 1e-9, "10 m pixels are 0.01 ha");
    assert_eq!(b.kappa, 1.0);
    assert_eq!(b.f1, 1.0);
    assert!(same.quality.psnr_db.is_infinite());

    let half = assess::assess_files(
        &AssessInputs { pre: pre_p, real: post_p, synthetic: partial_p, ..Default::default() },
        &tmp_path.as_path().join("half"),
        &cfg,
        &Progress::silent("assess"),
    )
    .unwrap();
    let b = &half.burned;
    let total = (256 * 256) as u64;
    assert_eq!((b.true_positive, b.false_positive, b.false_negative), (left, 0, right));
    let expected_kappa = kappa(left as f64, 0.0, right as f64, (total - left - right) as f64);
    assert!((b.kappa - expected_kappa).abs() < 1e-12, "{} vs {expected_kappa}", b.kappa);
    assert!(b.kappa < 0.9);
    assert!((b.omission_error - right as f64 / (left + right) as f64).abs() < 1e-12);
    assert!((b.burned_ha_synthetic - left as f64 * 0.01).abs() < 1e-9);

    // The outputs a user opens.
    let out = tmp_path.as_path().join("half");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for section in ["id=\"simulated\"", "id=\"agreement\"", "id=\"areas\"", "id=\"quality\"", "id=\"figures\"", "id=\"files\""] {
        assert!(html.contains(section), "report.html lacks {section}");
    }
    assert_eq!(html.matches("data:image/png;base64,").count(), 5);
    for fig in ["rgb", "dnbr", "severity", "confusion", "bands"] {
        let bytes = std::fs::read(out.join(format!("figures/{fig}.png"))).unwrap();
        assert!(bytes.len() > 2000 && bytes.starts_with(b"\x89PNG"), "{fig}.png");
    }
    let sev = raster::info(out.join("severity_synthetic.tif").to_str().unwrap()).unwrap();
    assert_eq!(sev.bands[0].data_type, "Byte");
    assert!(sev.is_cog);
    let gdalinfo = std::process::Command::new("gdalinfo").arg(out.join("severity_synthetic.tif")).output().unwrap();
    let text = String::from_utf8_lossy(&gdalinfo.stdout);
    assert!(text.contains("Color Table") && text.contains("high severity"), "{text}");
    let geojson: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("burned_synthetic.geojson")).unwrap()).unwrap();
    let features = geojson["features"].as_array().unwrap();
    assert!(!features.is_empty());
    // RFC 7946: WGS84 lon/lat (the chip is in eastern China, EPSG:32650, centre 119.19 E 33.50 N).
    let first = &features[0]["geometry"]["coordinates"][0][0];
    let (lon, lat) = (first[0].as_f64().unwrap(), first[1].as_f64().unwrap());
    assert!((119.1..119.3).contains(&lon) && (33.4..33.6).contains(&lat), "({lon}, {lat})");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["burned"]["true_positive"].as_u64(), Some(left));
    assert!(std::fs::read_to_string(out.join("severity.qml")).unwrap().contains("paletteEntry value=\"7\""));

    // The QA numbers and rasters, checked against the images themselves: the difference is
    // synthetic − real per band, the spectral angle 0 where the spectra agree, and R² the
    // share of the real band's variance reproduced, recomputed here over every pixel.
    let diff = raster::read_window(out.join("difference_S2_t1.tif").to_str().unwrap(), &[], None).unwrap();
    assert_eq!(diff.descriptions, BANDS.map(|b| format!("{b} difference")));
    let sam = raster::read_window(out.join("sam_S2_t1.tif").to_str().unwrap(), &[], None).unwrap();
    let (w, n) = (post.width, post.width * post.height);
    for (b, band) in diff.bands.iter().enumerate() {
        for i in 0..n {
            let expected = partial.bands[b][i] - post.bands[b][i];
            assert!((band[i] - expected).abs() < 1e-6, "{} at {i}: {} vs {expected}", BANDS[b], band[i]);
        }
    }
    let scar = |i: usize| (64..128).contains(&(i / w)) && (128..192).contains(&(i % w));
    assert!((0..n).filter(|i| !scar(*i)).all(|i| sam.bands[0][i].abs() < 0.01), "same spectra outside the missed half");
    assert!((0..n).filter(|i| scar(*i)).all(|i| sam.bands[0][i] > 1.0), "the missed half's spectra differ");
    let qa: assess::qa::Qa = serde_json::from_str(&std::fs::read_to_string(out.join("qa.json")).unwrap()).unwrap();
    assert_eq!(qa.density_pixels, "clear pixels");
    for (b, q) in qa.bands.iter().enumerate() {
        let (r, y) = (&post.bands[b], &partial.bands[b]);
        let mean = r.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
        let ss_tot: f64 = r.iter().map(|v| (*v as f64 - mean).powi(2)).sum();
        let ss_res: f64 = r.iter().zip(y).map(|(a, b)| (*b as f64 - *a as f64).powi(2)).sum();
        let r2 = 1.0 - ss_res / ss_tot;
        assert!((q.r2 - r2).abs() < 1e-6, "{}: R² {} vs {r2}", q.band, q.r2);
        assert_eq!(q.pixels, n as u64);
        assert_eq!(q.hist_real.iter().sum::<u64>(), n as u64);
        assert_eq!(q.density.iter().sum::<u64>(), n as u64);
    }
    let by = |name: &str| qa.bands.iter().find(|q| q.band == name).unwrap();
    assert_eq!(by("B02").r2, 1.0, "an unchanged band");
    assert!(by("B08").r2 < 1.0 && by("B08").bias > 0.0, "NIR too high where the burn was missed");
    assert!(by("B12").r2 < 1.0 && by("B12").bias < 0.0, "SWIR2 too low there");
}

/// The HTML report renders in headless Chromium: the page loads, every figure decodes, and the
/// console shows no error. Chromium is a test tool (`scripts/install-deps.sh --test`): missing,
/// the test fails in CI and skips elsewhere.
#[test]
fn the_html_report_renders_in_a_headless_browser() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        crate::missing_tool("no Chromium to render the HTML report (scripts/install-deps.sh --test installs it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pre = reflectance("s2_cloudfree");
    let mut post = pre.clone();
    apply_simulated_burn(&mut post, 100..160, 40..200);
    let (pre_p, post_p) = (write(tmp.path(), "pre.tif", &pre), write(tmp.path(), "post.tif", &post));
    let out = tmp.path().join("out");
    assess::assess_files(
        &AssessInputs { pre: pre_p.clone(), real: post_p.clone(), synthetic: pre_p, ..Default::default() },
        &out,
        &AssessConfig { simulated_burn: Some("NIR (B08) x 0.5, SWIR2 (B12) x 1.6 in a rectangle".into()), ..Default::default() },
        &Progress::silent("assess"),
    )
    .unwrap();
    // A page script would be a second source of truth; instead ask the browser for the DOM after
    // load with every image's natural width written into it by a tiny wrapper page.
    let wrapper = tmp.path().join("check.html");
    std::fs::write(
        &wrapper,
        format!(
            "<!DOCTYPE html><html><body><iframe id=f src=\"{}\" width=1200 height=800></iframe><pre id=r>pending</pre><script>\
             document.getElementById('f').onload=()=>{{const d=document.getElementById('f').contentDocument;\
             const imgs=[...d.images];document.getElementById('r').textContent='IMAGES '+imgs.length+' DECODED '+\
             imgs.filter(i=>i.complete&&i.naturalWidth>100).length+' H1 '+d.querySelector('h1').textContent;}};</script></body></html>",
            out.join("report.html").display()
        ),
    )
    .unwrap();
    let profile = tmp.path().join("profile");
    let output = std::process::Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync", "--allow-file-access-from-files"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--enable-logging=stderr", "--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}", wrapper.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(dom.contains("IMAGES 5 DECODED 5 H1 Burned-area assessment"), "DOM: {dom}\nlog: {log}");
    let console_errors: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE") && l.to_lowercase().contains("error")).collect();
    assert!(console_errors.is_empty(), "{console_errors:?}");
}

/// Constant images on the real chip's grid: NIR 0.4 and SWIR2 0.1 before, and after the fire
/// NIR 0.1 and SWIR2 0.3 inside a disc of `radius` px around the pixel corner (128, 128)
/// (dNBR 1.1: high severity), unchanged outside (dNBR 0).
fn disc_fire(dir: &Path, radius: f64) -> (AssessInputs, BandStack, u64) {
    let mut pre = reflectance("s2_cloudfree");
    for (b, name) in BANDS.iter().enumerate() {
        let v = match *name {
            "B08" => 0.4,
            "B12" => 0.1,
            _ => 0.05,
        };
        pre.bands[b].iter_mut().for_each(|x| *x = v);
    }
    pre.valid.iter_mut().for_each(|v| *v = true);
    let mut post = pre.clone();
    let mut inside = 0;
    for i in 0..pre.width * pre.height {
        let (x, y) = ((i % pre.width) as f64 + 0.5, (i / pre.width) as f64 + 0.5);
        if ((x - 128.0).powi(2) + (y - 128.0).powi(2)).sqrt() <= radius {
            post.bands[3][i] = 0.1;
            post.bands[5][i] = 0.3;
            inside += 1;
        }
    }
    let (pre_p, post_p) = (write(dir, "pre.tif", &pre), write(dir, "post.tif", &post));
    (AssessInputs { pre: pre_p, real: post_p.clone(), synthetic: post_p, ..Default::default() }, pre, inside)
}

/// A square of `side_m` around the grid point (128, 128) px, as GeoJSON in the grid's UTM CRS.
fn square_geojson(path: &Path, grid: &BandStack, side_m: f64, shift_m: f64) {
    let gt = grid.geo_transform;
    let (cx, cy) = (gt[0] + 128.0 * gt[1] + shift_m, gt[3] + 128.0 * gt[5]);
    let h = side_m / 2.0;
    let ring = [[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h], [cx - h, cy - h]];
    let doc = serde_json::json!({
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32650"}},
        "features": [{"type": "Feature", "properties": {"name": "official"}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]
    });
    std::fs::write(path, doc.to_string()).unwrap();
}

#[test]
fn agreement_with_an_official_perimeter_matches_a_hand_computation() {
    let tmp = tempfile::tempdir().unwrap();
    let radius = 60.0;
    let (inputs, grid, disc) = disc_fire(tmp.path(), radius);
    // The square of side 2R around the disc: every burned pixel is inside it. Its 120 x 120 px
    // have their edges on pixel edges, so rasterized it is exactly 14 400 pixels; the disc is
    // `disc` pixel centres (pi R^2 = 11 310 analytically).
    let utm = tmp.path().join("perimeter.geojson");
    square_geojson(&utm, &grid, 2.0 * radius * 10.0, 0.0);
    // The same perimeter in another CRS and format (WGS84, GeoPackage), by GDAL's ogr2ogr.
    let gpkg = tmp.path().join("perimeter.gpkg");
    let out = std::process::Command::new("ogr2ogr").args(["-f", "GPKG", "-t_srs", "EPSG:4326"]).arg(&gpkg).arg(&utm).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let square = 120u64 * 120;
    let analytic = std::f64::consts::PI / 4.0;
    for (name, file) in [("utm", &utm), ("gpkg", &gpkg)] {
        let cfg = AssessConfig { perimeter: Some(file.clone()), ..Default::default() };
        let report = assess::assess_files(&inputs, &tmp.path().join(name), &cfg, &Progress::silent("assess")).unwrap();
        let p = report.perimeter.as_ref().unwrap();
        for a in [&p.real, &p.synthetic] {
            assert_eq!((a.true_positive, a.false_positive, a.false_negative), (disc, 0, square - disc), "{name}");
            assert!((a.iou - disc as f64 / square as f64).abs() < 1e-12);
            // Rasterizing at 10 m moves the disc's count from pi R^2 by a few pixels along its
            // rim: within 0.5 % of the analytic value here.
            assert!((a.iou - analytic).abs() < 0.005 * analytic, "{name}: IoU {} vs pi/4", a.iou);
            assert_eq!(a.commission_error, 0.0);
            assert!((a.omission_error - (1.0 - disc as f64 / square as f64)).abs() < 1e-12);
            assert!((a.burned_ha_real - 144.0).abs() < 1e-9 && (a.burned_ha_synthetic - disc as f64 * 0.01).abs() < 1e-9);
        }
        assert!((p.area_ha - 144.0).abs() < 1e-3, "{name}: {} ha", p.area_ha);
        assert!((p.area_ha_on_grid - 144.0).abs() < 1e-9);
        let html = std::fs::read_to_string(tmp.path().join(name).join("report.html")).unwrap();
        assert!(html.contains("id=\"perimeter\"") && html.contains("agreement with the official perimeter"));
        let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join(name).join("perimeter_reference.geojson")).unwrap()).unwrap();
        let mut first = &written["features"][0]["geometry"]["coordinates"];
        while let Some(inner) = first.get(0).filter(|_| first.is_array()) {
            first = inner;
        }
        let lon = first.as_f64().unwrap();
        assert!((119.1..119.3).contains(&lon), "the map's copy is in WGS84: {lon}");
    }

    // Bad inputs, each with a clear message.
    let bad = |name: &str, text: &str| -> String {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        let cfg = AssessConfig { perimeter: Some(path), ..Default::default() };
        s2cr::error_chain(&assess::assess_files(&inputs, &tmp.path().join("bad"), &cfg, &Progress::silent("assess")).unwrap_err())
    };
    let e = bad("empty.geojson", r#"{"type": "FeatureCollection", "features": []}"#);
    assert!(e.contains("empty.geojson") && e.contains("has no polygon"), "{e}");
    let e = bad("points.geojson", r#"{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [119.2, 33.5]}}]}"#);
    assert!(e.contains("has no polygon") && e.contains("points or lines"), "{e}");
    let e = bad("corrupt.geojson", "{ this is not GeoJSON");
    assert!(e.contains("corrupt.geojson") && e.contains("not a vector file"), "{e}");
    let far = tmp.path().join("elsewhere.geojson");
    square_geojson(&far, &grid, 1200.0, 100_000.0);
    let cfg = AssessConfig { perimeter: Some(far), ..Default::default() };
    let e = s2cr::error_chain(&assess::assess_files(&inputs, &tmp.path().join("bad"), &cfg, &Progress::silent("assess")).unwrap_err());
    assert!(e.contains("elsewhere.geojson") && e.contains("does not overlap the grid"), "{e}");
    let cfg = AssessConfig { perimeter: Some(tmp.path().join("missing.shp")), ..Default::default() };
    let e = s2cr::error_chain(&assess::assess_files(&inputs, &tmp.path().join("bad"), &cfg, &Progress::silent("assess")).unwrap_err());
    assert!(e.contains("missing.shp") && e.contains("no such file"), "{e}");
}

/// A stack written as a GeoTIFF of `T` values (`convert` of each value, `hole` at `holes`), with
/// `nodata` declared or not.
fn write_typed<T: gdal::raster::GdalType + Copy>(path: &Path, stack: &BandStack, holes: &dyn Fn(usize) -> bool, hole: T, convert: &dyn Fn(f32) -> T, nodata: Option<f64>) -> PathBuf {
    use gdal::Metadata;
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver.create_with_band_type::<T, _>(path, stack.width, stack.height, stack.bands.len()).unwrap();
    ds.set_geo_transform(&stack.geo_transform).unwrap();
    ds.set_spatial_ref(&gdal::spatial_ref::SpatialRef::from_wkt(&stack.crs_wkt).unwrap()).unwrap();
    for (b, values) in stack.bands.iter().enumerate() {
        let mut band = ds.rasterband(b + 1).unwrap();
        let data: Vec<T> = values.iter().enumerate().map(|(i, v)| if holes(i) { hole } else { convert(*v) }).collect();
        let mut buf = gdal::raster::Buffer::new((stack.width, stack.height), data);
        band.write((0, 0), (stack.width, stack.height), &mut buf).unwrap();
        band.set_description(&stack.descriptions[b]).unwrap();
        if let Some(nd) = nodata {
            band.set_no_data_value(Some(nd)).unwrap();
        }
    }
    path.to_path_buf()
}

/// What an assessment found, without where its files are: agreement, areas, quality and the QA
/// plots' numbers.
fn findings(inputs: &AssessInputs, out: &Path, cfg: &AssessConfig) -> serde_json::Value {
    let r = assess::assess_files(inputs, out, cfg, &Progress::silent("assess")).unwrap();
    let qa: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("qa.json")).unwrap()).unwrap();
    serde_json::json!({
        "burned": r.burned, "severity_confusion": r.severity_confusion, "severity_areas": r.severity_areas,
        "quality": r.quality, "mean_dnbr": [r.mean_dnbr_real, r.mean_dnbr_synthetic], "qa": qa,
    })
}

/// Each file's own no-data value is no data in every metric: -9999 in float files and 0 in
/// digital numbers read with a scale give the same findings as NaN there; a file that declares
/// no nodata has none (its zeros are values). The holes differ from file to file and some lie in
/// the scar.
#[test]
fn each_files_nodata_is_no_data_in_every_metric() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pre = reflectance("s2_cloudfree");
    let mut post = pre.clone();
    apply_simulated_burn(&mut post, 64..128, 64..192);
    let mut partial = pre.clone();
    apply_simulated_burn(&mut partial, 64..128, 64..160);
    let w = pre.width;
    let hole_pre = move |i: usize| (10..20).contains(&(i / w)) && (10..40).contains(&(i % w));
    let hole_real = move |i: usize| (70..80).contains(&(i / w)) && (100..130).contains(&(i % w));
    let hole_synth = move |i: usize| (90..100).contains(&(i / w)) && (150..200).contains(&(i % w)) || i % 97 == 0;
    let holes: [(&str, &BandStack, &dyn Fn(usize) -> bool); 3] = [("pre", &pre, &hole_pre), ("real", &post, &hole_real), ("synth", &partial, &hole_synth)];
    // Digital numbers as Sentinel-2 L2A stores them (reflectance x 10000, 0 = no data).
    let dn = |v: f32| (v * 10000.0).round().clamp(1.0, 65535.0) as u16;
    let dn_reflectance = |v: f32| dn(v) as f32 * 0.0001;
    let files = |kind: &str, f: &dyn Fn(&str, &BandStack, &dyn Fn(usize) -> bool) -> PathBuf| -> AssessInputs {
        let [p, r, s] = holes.map(|(name, stack, hole)| f(&format!("{kind}-{name}"), stack, hole));
        AssessInputs { pre: p, real: r, synthetic: s, ..Default::default() }
    };
    let nan = files("nan", &|n, s, h| write_typed::<f32>(&d.join(format!("{n}.tif")), s, h, f32::NAN, &|v| v, None));
    let minus = files("minus", &|n, s, h| write_typed::<f32>(&d.join(format!("{n}.tif")), s, h, -9999.0, &|v| v, Some(-9999.0)));
    let dn_nan = files("dnnan", &|n, s, h| write_typed::<f32>(&d.join(format!("{n}.tif")), s, h, f32::NAN, &dn_reflectance, None));
    let dn_zero = files("dnzero", &|n, s, h| write_typed::<u16>(&d.join(format!("{n}.tif")), s, h, 0, &dn, Some(0.0)));
    let dn_undeclared = files("dnnone", &|n, s, h| write_typed::<u16>(&d.join(format!("{n}.tif")), s, h, 0, &dn, None));
    let dn_values = files("dnvalue", &|n, s, h| write_typed::<f32>(&d.join(format!("{n}.tif")), s, h, 0.0, &dn_reflectance, None));
    let cfg = AssessConfig::default();
    let dn_cfg = AssessConfig { scale: 0.0001, ..Default::default() };
    let reference = findings(&nan, &d.join("out-nan"), &cfg);
    let n = (w * pre.height) as u64;
    let held = (0..n as usize).filter(|i| hole_pre(*i) || hole_real(*i) || hole_synth(*i)).count() as u64;
    let b = &reference["burned"];
    let counted = ["true_positive", "false_positive", "false_negative", "true_negative"].iter().map(|k| b[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(counted, n - held, "the NaN holes are no data");
    assert_eq!(findings(&minus, &d.join("out-minus"), &cfg), reference, "-9999 declared as nodata");
    assert_eq!(findings(&dn_zero, &d.join("out-dnzero"), &dn_cfg), findings(&dn_nan, &d.join("out-dnnan"), &cfg), "0 declared as nodata in DN files read with a scale");
    // Undeclared, 0 is a value: image quality counts the zeros that declared no-data left out
    // (NBR, 0/0 there, does not), as it does for the same zeros in a float file.
    let undeclared = findings(&dn_undeclared, &d.join("out-dnnone"), &dn_cfg);
    let quality_pixels = |f: &serde_json::Value| f["quality"]["valid_pixels"].as_u64().unwrap();
    assert!(quality_pixels(&undeclared) > quality_pixels(&reference), "{} vs {}", quality_pixels(&undeclared), quality_pixels(&reference));
    assert_eq!(undeclared, findings(&dn_values, &d.join("out-dnvalue"), &cfg));
}

/// Two images with the same size and geotransform in two CRSs (two UTM zones) are two places:
/// the assessment refuses them, naming both CRSs.
#[test]
fn images_in_another_crs_are_refused_even_with_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let pre = reflectance("s2_cloudfree");
    let mut other_zone = pre.clone();
    other_zone.crs_wkt = gdal::spatial_ref::SpatialRef::from_epsg(32651).unwrap().to_wkt().unwrap();
    let (p, o) = (write(tmp.path(), "pre.tif", &pre), write(tmp.path(), "zone51.tif", &other_zone));
    let e = assess::assess_files(&AssessInputs { pre: p.clone(), real: p.clone(), synthetic: o.clone(), ..Default::default() }, &tmp.path().join("out"), &AssessConfig::default(), &Progress::silent("assess")).unwrap_err();
    let text = s2cr::error_chain(&e);
    assert!(text.contains("zone51.tif") && text.contains("EPSG:32651") && text.contains("EPSG:32650") && text.contains("warp"), "{text}");
    // The same CRS written another way is the same place.
    let mut reworded = pre.clone();
    reworded.crs_wkt = gdal::spatial_ref::SpatialRef::from_proj4("+proj=utm +zone=50 +datum=WGS84 +units=m +no_defs").unwrap().to_wkt().unwrap();
    let r = write(tmp.path(), "reworded.tif", &reworded);
    assess::assess_files(&AssessInputs { pre: p.clone(), real: p, synthetic: r, ..Default::default() }, &tmp.path().join("out2"), &AssessConfig::default(), &Progress::silent("assess")).unwrap();
}

/// A synthetic image with no valid pixel (what a model whose training went NaN writes) is
/// refused with the reason, not assessed as "0 ha, kappa n/a".
#[test]
fn a_synthetic_image_with_no_valid_pixel_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (inputs, pre, _) = disc_fire(tmp.path(), 40.0);
    let mut nan = pre.clone();
    nan.bands.iter_mut().for_each(|b| b.iter_mut().for_each(|v| *v = f32::NAN));
    let synthetic = write(tmp.path(), "nan.tif", &nan);
    let e = assess::assess_files(&AssessInputs { synthetic, ..inputs.clone() }, &tmp.path().join("out"), &AssessConfig::default(), &Progress::silent("assess")).unwrap_err();
    let e = s2cr::error_chain(&e);
    assert!(e.contains("nan.tif") && e.contains("has no valid pixel") && e.contains("65536 such pixels") && e.contains("non-finite"), "{e}");
    // The same inputs with the real image as the synthetic one: assessed.
    assert!(assess::assess_files(&inputs, &tmp.path().join("ok"), &AssessConfig::default(), &Progress::silent("assess")).is_ok());
}

/// The baselines in project mode (the demo, 2 training steps): persistence and the linear model
/// scored over the held-out clear pixels, checked against an independent computation here (the
/// held-out blocks from the dataset's split, every file read whole, the linear prediction made
/// from the reported coefficients); persistence maps no burn; the linear row is close to an
/// oracle on the demo (its radar carries the simulated burn), which the report says.
#[test]
fn baselines_score_persistence_and_a_linear_model_over_the_held_out_pixels() {
    use s2cr::dataset::tiles::{Split, block_splits};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let project = crate::demo_after_pipeline(&dir, 2);
    let run = s2cr::demo::run_name();
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(project.assess_dir(&run).join("report.json")).unwrap()).unwrap();
    let bl: assess::baselines::Baselines = serde_json::from_value(report["baselines"].clone()).unwrap();
    let ids: Vec<&str> = bl.rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["synthetic", "persistence", "linear", "radar"]);
    assert!(bl.notes.iter().any(|n| n.contains("close to an oracle")), "{:?}", bl.notes);
    assert!(bl.notes.iter().any(|n| n.starts_with("no post-fire composite")), "the demo has one t1 acquisition: {:?}", bl.notes);
    let html = std::fs::read_to_string(project.assess_dir(&run).join("report.html")).unwrap();
    assert!(html.contains("id=\"baselines\"") && html.contains("persistence (the pre-fire image as it is)"));
    assert!(report["files"].as_array().unwrap().iter().any(|f| f == "figures/baselines.png"), "{}", report["files"]);
    assert!(std::fs::read(project.assess_dir(&run).join("figures/baselines.png")).unwrap().starts_with(b"\x89PNG"));

    // Independently: the held-out blocks, and every source read whole.
    let summary: s2cr::dataset::DatasetSummary = s2cr::fsutil::load_json(&project.dataset_json(), "").unwrap();
    let (w, h) = (summary.grid_width, summary.grid_height);
    let (block, splits) = block_splits(w, h, &summary.config.tiles);
    let held = |i: usize| splits[(i / w) / block][(i % w) / block] != Split::Train;
    let read = |p: &Path| raster::read_window(&p.display().to_string(), &[], None).unwrap();
    let abs = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { project.root().join(p) };
    let (pre, real, synth) = (read(&abs(&summary.sources.s2_t0)), read(&abs(&summary.sources.s2_t1)), read(&project.synthetic_s2(&run)));
    let inputs = read(&project.root().join(&summary.files.inputs_vrt));
    let band = |s: &BandStack, name: &str| s.descriptions.iter().position(|d| d.eq_ignore_ascii_case(name)).unwrap_or_else(|| panic!("{name} in {:?}", s.descriptions));
    let clear = |s: &BandStack, i: usize| s.valid[i] && s.descriptions.iter().position(|d| d.eq_ignore_ascii_case("mask")).is_none_or(|m| s.bands[m][i] == 0.0);
    let linear = bl.linear.clone().unwrap();
    let feature = |i: usize| -> Vec<f64> {
        linear
            .features
            .iter()
            .map(|f| match f.strip_prefix("dB change ") {
                Some(pol) => (inputs.bands[band(&inputs, &format!("S1_t1:{pol}"))][i] - inputs.bands[band(&inputs, &format!("S1_t0:{pol}"))][i]) as f64,
                None => inputs.bands[band(&inputs, f)][i] as f64,
            })
            .collect()
    };
    let bands = ["B02", "B03", "B04", "B08", "B11", "B12"];
    let (mut persist, mut lin, mut n) = (0f64, 0f64, 0u64);
    // The radar-only map with the reported threshold, judged against the real map here.
    let (pol, t) = bl.radar_threshold_db.clone().unwrap();
    assert_eq!(pol, "VH");
    let th = s2cr::indices::severity::SeverityScheme::usgs();
    let nbr = |s: &BandStack, i: usize| {
        let (a, b) = (s.bands[band(s, "B08")][i], s.bands[band(s, "B12")][i]);
        (a - b) / (a + b)
    };
    let mut radar = [0u64; 4];
    // The demo's assessment subtracts the dNBR offset (MTBS practice): every map's own.
    let off_real = report["dnbr_offset"]["real"].as_f64().unwrap() as f32;
    let offsets: Vec<f64> = bl.rows[..3].iter().map(|r| r.dnbr_offset.unwrap()).collect();
    assert_eq!(offsets[0], report["dnbr_offset"]["synthetic"].as_f64().unwrap());
    assert_eq!(offsets[1], 0.0, "persistence's dNBR is 0");
    assert!(off_real < -0.1 && offsets[2] < -0.1, "the demo's fields green up between t0 and t1: {off_real}, {offsets:?}");
    for i in 0..w * h {
        if !(held(i) && clear(&pre, i) && clear(&real, i) && synth.valid[i] && inputs.valid[i]) {
            continue;
        }
        let x = feature(i);
        if x.iter().any(|v| !v.is_finite()) {
            continue;
        }
        n += 1;
        let change = inputs.bands[band(&inputs, "S1_t1:VH")][i] - inputs.bands[band(&inputs, "S1_t0:VH")][i];
        let real_burned = th.is_burned(th.classify(nbr(&pre, i) - nbr(&real, i) - off_real));
        radar[(real_burned as usize) * 2 + ((change as f64) <= t) as usize] += 1;
        for (k, b) in bands.iter().enumerate() {
            let r = real.bands[band(&real, b)][i] as f64;
            persist += (pre.bands[band(&pre, b)][i] as f64 - r).abs();
            let (_, intercept, coef) = &linear.bands[k];
            let y = intercept + coef.iter().zip(&x).map(|(c, v)| c * v).sum::<f64>();
            lin += (y as f32 as f64 - r).abs();
        }
    }
    let n6 = (n * 6) as f64;
    println!("held-out pixels {n} (report {}); MAE persistence {:.5} (report {:.5}), linear {:.5} (report {:.5})", bl.count, persist / n6, bl.rows[1].image.mae, lin / n6, bl.rows[2].image.mae);
    assert_eq!(n, bl.count, "the same pixels");
    assert!((persist / n6 - bl.rows[1].image.mae).abs() < 1e-6 && (lin / n6 - bl.rows[2].image.mae).abs() < 1e-5);
    // Persistence is "no change": no pixel reaches the burned class; the scar burns in the real map.
    assert_eq!(bl.rows[1].burned.true_positive + bl.rows[1].burned.false_positive, 0);
    assert!(bl.rows[1].burned.burned_ha_real > 1.0 && bl.rows[1].burned.kappa.abs() < 1e-9);
    // The linear model reads the simulated burn from the radar: well above persistence; so does
    // the radar-only map (the demo's radar carries the burn: -3 dB in VH at its centre).
    assert!(bl.rows[2].burned.kappa > 0.5, "{:?}", bl.rows[2].burned);
    let r = &bl.rows[3].burned;
    assert_eq!([r.true_negative, r.false_positive, r.false_negative, r.true_positive], radar, "the radar-only map's pairs, counted here");
    assert!(r.kappa > 0.5 && bl.rows[3].image.dnbr_mae.is_nan() && t < -0.3, "{r:?} at {t} dB");
    assert!(bl.notes.iter().any(|n| n.contains("Tanase")), "{:?}", bl.notes);

    // A second computation in numpy (scripts/baselines_reference.py): its own ridge fit, SSIM
    // with scipy's Gaussian filter, its own threshold search; the held-out pixels given.
    let held_path = tmp.path().join("held.u8");
    std::fs::write(&held_path, (0..w * h).map(|i| held(i) as u8).collect::<Vec<u8>>()).unwrap();
    let python = ["S2CR_OPENEO_PYTHON", "S2CR_PYTHON"].iter().filter_map(|v| std::env::var(v).ok()).chain(["python3".to_string()]).find(|p| {
        std::process::Command::new(p).args(["-c", "import numpy, scipy, rasterio"]).output().is_ok_and(|o| o.status.success())
    });
    let Some(python) = python else {
        crate::missing_tool("no Python with numpy, scipy and rasterio for the baselines' second computation (scripts/requirements-openeo.txt has them; .ci/run sets S2CR_OPENEO_PYTHON)");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/baselines_reference.py");
    let arg = |p: &Path| p.display().to_string();
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args(["--pre", &arg(&abs(&summary.sources.s2_t0)), "--real", &arg(&abs(&summary.sources.s2_t1)), "--synthetic", &arg(&project.synthetic_s2(&run))])
        .args(["--inputs", &arg(&project.root().join(&summary.files.inputs_vrt)), "--held", &arg(&held_path), "--lambda", &linear.lambda.to_string()])
        .arg(format!("--offsets={off_real},{},{}", offsets[0] as f32, offsets[2] as f32))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let numpy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("numpy: {numpy}");
    assert_eq!(numpy["count"].as_u64(), Some(bl.count));
    assert_eq!(numpy["fit_pixels"].as_u64(), Some(linear.pixels));
    for (k, id) in ["synthetic", "persistence", "linear"].iter().enumerate() {
        let (row, theirs) = (&bl.rows[k], &numpy["rows"][id]);
        assert_eq!(row.id, *id);
        for (what, ours, tol) in [("mae", row.image.mae, 1e-5), ("psnr_db", row.image.psnr_db, 1e-3), ("ssim", row.image.ssim, 1e-5), ("sam_deg", row.image.sam_deg, 1e-3), ("nbr_mae", row.image.nbr_mae, 1e-5), ("dnbr_mae", row.image.dnbr_mae, 1e-5), ("kappa", row.burned.kappa, 1e-3)] {
            let v = theirs[what].as_f64().unwrap();
            assert!((ours - v).abs() < tol, "{id} {what}: {ours} here, {v} in numpy");
        }
    }
    let radar_numpy = &numpy["rows"]["radar"];
    assert!((radar_numpy["threshold_db"].as_f64().unwrap() - t).abs() < 1e-4, "threshold {t} here, {radar_numpy} in numpy");
    assert!((radar_numpy["kappa"].as_f64().unwrap() - r.kappa).abs() < 1e-9, "{radar_numpy} in numpy, {} here", r.kappa);
}

/// `s2cr bench --what assess` at a small size: the three assessments run (without the
/// baselines, with them and the composite row, with the gap-filled image too) and the composite
/// row is scored.
#[test]
fn the_assessment_benchmark_runs_every_part() {
    let tmp = tempfile::tempdir().unwrap();
    let r = s2cr::tools::bench::assess(512, tmp.path(), &s2cr::job::Progress::silent("bench")).unwrap();
    let ids: Vec<&str> = r.baseline_kappas.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["synthetic", "persistence", "linear", "composite", "radar"]);
    assert!(r.baseline_kappas.iter().all(|(_, k)| k.is_finite()), "{:?}", r.baseline_kappas);
    assert!(r.assess_secs > 0.0 && r.with_baselines_secs > 0.0 && r.with_gapfill_secs > 0.0 && r.composite_secs > 0.0, "{r:?}");
    assert!(tmp.path().join("assess-out").join("gapfilled_source.tif").is_file());
}

/// The dNBR offset on a generated pair (say so: generated from a real chip): the post-fire image
/// is the pre-fire one with a burned disc (NIR halved, SWIR2 up 60 %) and, everywhere, NBR raised
/// by a known 0.15 (the land greened up). The offset over the ring outside the real burned map
/// is the shift (-0.15 in dNBR) to 1e-6, and every class comes out as in the same pair without
/// the shift; without the offset the shift moves classes (the test can fail).
#[test]
fn the_dnbr_offset_of_a_generated_greening_is_the_shift_and_the_classes_come_out_as_without_it() {
    let tmp = tempfile::tempdir().unwrap();
    let pre = reflectance("s2_cloudfree");
    let (w, h) = (pre.width, pre.height);
    let mut burned = pre.clone();
    for i in 0..w * h {
        let (x, y) = ((i % w) as f64 - 128.0, (i / w) as f64 - 128.0);
        if (x * x + y * y).sqrt() < 40.0 {
            burned.bands[3][i] *= 0.5;
            burned.bands[5][i] *= 1.6;
        }
    }
    // NBR + 0.15 at every pixel, NIR + SWIR2 kept: N = T (1 + NBR') / 2, S = T (1 - NBR') / 2.
    let shift = 0.15f64;
    let mut greener = burned.clone();
    for i in 0..w * h {
        let (n, s) = (burned.bands[3][i] as f64, burned.bands[5][i] as f64);
        let t = n + s;
        let nbr = (n - s) / t + shift;
        greener.bands[3][i] = (t * (1.0 + nbr) / 2.0) as f32;
        greener.bands[5][i] = (t * (1.0 - nbr) / 2.0) as f32;
    }
    let (pre_p, plain_p, greener_p) = (write(tmp.path(), "pre.tif", &pre), write(tmp.path(), "post.tif", &burned), write(tmp.path(), "greener.tif", &greener));
    let run = |post: &Path, name: &str, cfg: &AssessConfig| {
        let out = tmp.path().join(name);
        let report = assess::assess_files(&AssessInputs { pre: pre_p.clone(), real: post.to_path_buf(), synthetic: post.to_path_buf(), ..Default::default() }, &out, cfg, &Progress::silent("assess")).unwrap();
        let classes = raster::read_window(&out.join("severity_real.tif").display().to_string(), &[1], None).unwrap().bands[0].clone();
        (report, classes)
    };
    let cfg = AssessConfig { simulated_burn: Some("generated: a burned disc and NBR + 0.15 everywhere, from a real SEN12MS-CR chip".into()), ..Default::default() };
    let (plain, plain_classes) = run(&plain_p, "plain", &cfg);
    let (shifted, shifted_classes) = run(&greener_p, "greener", &cfg);
    let o = shifted.dnbr_offset.as_ref().unwrap();
    println!("offset {o:?}; without the shift {:?}", plain.dnbr_offset);
    assert!(o.source.contains("100-1000 m outside the real burned map") && o.pixels > 20_000, "{o:?}");
    assert!((o.real + shift).abs() < 1e-6 && (o.synthetic + shift).abs() < 1e-6, "offset {} for a shift of -{shift}", o.real);
    assert!(plain.dnbr_offset.as_ref().unwrap().real.abs() < 1e-6, "no shift, no offset");
    assert!(plain.burned.true_positive > 3000, "{:?}", plain.burned);
    assert_eq!(shifted_classes, plain_classes, "the classes after the offset are those without the shift");
    assert_eq!(shifted.burned, plain.burned);
    // Without the offset the greening moves classes: the unburned land becomes regrowth.
    let off = AssessConfig { dnbr_offset: assess::offset::DnbrOffset::off(), ..cfg };
    let (raw, raw_classes) = run(&greener_p, "raw", &off);
    assert!(raw.dnbr_offset.is_none());
    let moved = raw_classes.iter().zip(&plain_classes).filter(|(a, b)| a != b).count();
    assert!(moved > w * h / 2, "{moved} pixels change class without the offset");
}

/// Perimeters on a generated pair (say so: generated values on a real chip's grid): uniform
/// vegetation (NIR 0.3, SWIR2 0.1), burned to NIR 0.1, SWIR2 0.3 in a 40 x 50 px rectangle with a
/// 2 x 2 unburned hole, a 3 x 3 patch and three lone pixels. As classified: five polygons, each
/// with its area per class in the GeoJSON; cleaned (minimum mapping unit and holes 0.05 ha, 5
/// pixels): the lone pixels gone, the hole filled, two polygons; the pixel agreement unchanged.
#[test]
fn perimeters_are_cleaned_and_carry_their_areas_per_class() {
    use gdal::vector::LayerAccess;
    let tmp = tempfile::tempdir().unwrap();
    let chip = reflectance("s2_cloudfree");
    let (w, h) = (100usize, 100usize);
    let gt = chip.geo_transform;
    let uniform = |nir: f32, swir: f32| BandStack {
        width: w,
        height: h,
        bands: BANDS.iter().map(|b| vec![if *b == "B08" { nir } else if *b == "B12" { swir } else { 0.05 }; w * h]).collect(),
        valid: vec![true; w * h],
        geo_transform: gt,
        crs_wkt: chip.crs_wkt.clone(),
        descriptions: BANDS.map(String::from).to_vec(),
    };
    let pre = uniform(0.3, 0.1);
    let mut post = pre.clone();
    let mut burn = |x: usize, y: usize| {
        post.bands[3][y * w + x] = 0.1;
        post.bands[5][y * w + x] = 0.3;
    };
    for y in 20..70 {
        for x in 20..60 {
            if !((40..42).contains(&x) && (40..42).contains(&y)) {
                burn(x, y);
            }
        }
    }
    for y in 80..83 {
        for x in 80..83 {
            burn(x, y);
        }
    }
    for (x, y) in [(90, 10), (5, 90), (95, 95)] {
        burn(x, y);
    }
    let (pre_p, post_p) = (write(tmp.path(), "pre.tif", &pre), write(tmp.path(), "post.tif", &post));
    let inputs = AssessInputs { pre: pre_p, real: post_p.clone(), synthetic: post_p, ..Default::default() };
    let cfg = AssessConfig { simulated_burn: Some("generated: uniform values on a SEN12MS-CR chip's grid, a burned rectangle, a patch and lone pixels".into()), ..Default::default() };
    let read_geojson = |path: &Path| -> Vec<(i64, f64, f64, f64)> {
        let ds = gdal::Dataset::open(path).unwrap();
        let mut layer = ds.layer(0).unwrap();
        let idx = |f: &gdal::vector::Feature, n: &str| f.field_index(n).unwrap();
        let mut v: Vec<(i64, f64, f64, f64)> = layer
            .features()
            .map(|f| {
                assert_eq!(f.field_as_integer(idx(&f, "burned")).unwrap(), Some(1));
                (f.field_as_integer(idx(&f, "id")).unwrap().unwrap() as i64, f.field_as_double(idx(&f, "area_ha")).unwrap().unwrap(), f.field_as_double(idx(&f, "ha_high_severity")).unwrap().unwrap(), f.field_as_double(idx(&f, "ha_unburned")).unwrap().unwrap())
            })
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    };
    let plain = assess::assess_files(&inputs, &tmp.path().join("plain"), &cfg, &Progress::silent("assess")).unwrap();
    let p = &plain.perimeters[0];
    assert_eq!((p.map.as_str(), p.polygons), ("real", 5));
    assert!((p.area_ha - (1996 + 9 + 3) as f64 * 0.01).abs() < 1e-9 && (p.area_ha - plain.burned.burned_ha_real).abs() < 1e-9, "{p:?}");
    let features = read_geojson(&tmp.path().join("plain/burned_real.geojson"));
    assert_eq!(features.len(), 5);
    assert_eq!((features[0].1, features[0].2, features[0].3), (19.96, 19.96, 0.0), "the rectangle, all high severity");
    assert_eq!((features[1].1, features[4].1), (0.09, 0.01));

    let cleaned_cfg = AssessConfig { perimeter_cleaning: assess::perimeters::PerimeterCleaning { majority: false, min_area_ha: 0.05, fill_holes_ha: 0.05 }, ..cfg };
    let cleaned = assess::assess_files(&inputs, &tmp.path().join("cleaned"), &cleaned_cfg, &Progress::silent("assess")).unwrap();
    let c = &cleaned.perimeters[0];
    assert_eq!(c.polygons, 2);
    assert!((c.area_ha - 20.09).abs() < 1e-9, "{c:?}");
    let by_class: std::collections::HashMap<&str, f64> = c.class_ha.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert!((by_class["high severity"] - 20.05).abs() < 1e-9 && (by_class["unburned"] - 0.04).abs() < 1e-9, "{by_class:?}");
    let features = read_geojson(&tmp.path().join("cleaned/burned_real.geojson"));
    assert_eq!(features.iter().map(|f| (f.1, f.2, f.3)).collect::<Vec<_>>(), [(20.0, 19.96, 0.04), (0.09, 0.09, 0.0)], "the hole filled, the lone pixels gone");
    assert_eq!(cleaned.burned, plain.burned, "the pixel agreement does not move");
    let html = std::fs::read_to_string(tmp.path().join("cleaned/report.html")).unwrap();
    assert!(html.contains("id=\"perimeters\"") && html.contains("minimum mapping unit 0.05 ha"), "the report says how they were cleaned");
}

/// A real chip before, and after a generated burn: a disc of 40 px radius at (128, 128) whose
/// NIR and SWIR2 are multiplied by `factors(r)` at distance r (0 at the centre, 1 at the rim);
/// the inputs with the burned image as both real and synthetic.
fn graded_disc(dir: &Path, factors: impl Fn(f64) -> (f64, f64)) -> (BandStack, AssessInputs) {
    let pre = reflectance("s2_cloudfree");
    let w = pre.width;
    let mut burned = pre.clone();
    for i in 0..w * pre.height {
        let (x, y) = ((i % w) as f64 + 0.5 - 128.0, (i / w) as f64 + 0.5 - 128.0);
        let r = (x * x + y * y).sqrt() / 40.0;
        if r < 1.0 {
            let (nir, swir) = factors(r);
            burned.bands[3][i] *= nir as f32;
            burned.bands[5][i] *= swir as f32;
        }
    }
    let (pre_p, post_p) = (write(dir, "pre.tif", &pre), write(dir, "post.tif", &burned));
    (pre, AssessInputs { pre: pre_p, real: post_p.clone(), synthetic: post_p, ..Default::default() })
}

/// BARC4 over BARC256 on a real chip with a generated burned disc, most severe at its centre:
/// the BARC256 band is (dNBR x 1000 + 275) / 5 by hand at every pixel, the severity raster's
/// codes are BARC4's classes of it with the scheme's colour table and names, and the QGIS
/// style, the class areas and the perimeters' fields follow the scheme. An own scheme that does
/// not hold together is refused, naming its problem.
#[test]
fn barc4_classes_over_barc256_follow_a_hand_computation_on_a_real_chip() {
    use s2cr::indices::severity::SeverityScheme;
    let tmp = tempfile::tempdir().unwrap();
    let (pre, inputs) = graded_disc(tmp.path(), |r| (0.3 + 0.65 * r, 1.9 - 0.85 * r));
    let (w, h) = (pre.width, pre.height);
    let out = tmp.path().join("barc");
    let cfg = AssessConfig { severity_classes: SeverityScheme::barc4(), dnbr_offset: assess::offset::DnbrOffset::off(), ..Default::default() };
    let report = assess::assess_files(&inputs, &out, &cfg, &Progress::silent("assess")).unwrap();
    let indices = raster::read_window(&out.join("indices_real.tif").display().to_string(), &[], None).unwrap();
    assert_eq!(indices.descriptions, ["NBR_pre", "NBR_post", "dNBR", "RdNBR", "RBR", "NDVI_post", "BARC256"]);
    let codes = raster::read_window(&out.join("severity_real.tif").display().to_string(), &[1], None).unwrap().bands[0].clone();
    let mut per_class = [0u64; 5];
    for i in 0..w * h {
        let d = indices.bands[2][i];
        if !d.is_finite() {
            assert!(indices.bands[6][i].is_nan() && codes[i] == 0.0, "no data at {i}");
            continue;
        }
        // By hand: the dNBR as BAER's integer x 1000, + 275, / 5, truncated, in 0-255.
        let barc = (((d as f64 * 1000.0).round() as i64 + 275).div_euclid(5)).clamp(0, 255) as f32;
        assert_eq!(indices.bands[6][i], barc, "BARC256 at {i} (dNBR {d})");
        let class = 1 + [76.0, 110.0, 188.0].iter().filter(|b| barc >= **b).count();
        assert_eq!(codes[i] as usize, class, "BARC4 class at {i} (BARC256 {barc})");
        per_class[class] += 1;
    }
    println!("BARC4 pixels per class: {per_class:?}");
    assert!(per_class[1..].iter().all(|n| *n > 100), "every class present: {per_class:?}");
    // The colour table and names GDAL reads back, the style and the report's classes.
    let ds = gdal::Dataset::open(out.join("severity_real.tif")).unwrap();
    let band = ds.rasterband(1).unwrap();
    let table = band.color_table().expect("a colour table");
    for c in &SeverityScheme::barc4().classes {
        let e = table.entry_as_rgb(c.code as usize).unwrap();
        assert_eq!([e.r, e.g, e.b], c.color.map(i16::from), "{}", c.name);
    }
    let qml = std::fs::read_to_string(out.join("severity.qml")).unwrap();
    assert!(qml.contains("label=\"high (BARC256 ≥ 188)\"") && qml.contains("value=\"4\" color=\"#ff0000\""), "{qml}");
    assert_eq!(report.severity_areas.iter().map(|c| c.class.as_str()).collect::<Vec<_>>(), ["unburned", "low", "moderate", "high"]);
    let ha = report.severity_areas.iter().map(|c| c.hectares_real).collect::<Vec<_>>();
    assert!(ha.iter().zip(&per_class[1..]).all(|(a, n)| (a - *n as f64 * 0.01).abs() < 1e-9), "{ha:?} vs {per_class:?}");
    let geojson = std::fs::read_to_string(out.join("burned_real.geojson")).unwrap();
    assert!(geojson.contains("\"ha_moderate\"") && !geojson.contains("ha_moderate_low_severity"));
    // The report says which classes, with their ranges.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("BARC4 classes on the BARC256") && html.contains("moderate 110 to &lt; 188"), "classes paragraph");
    // An own scheme whose bounds go down is refused before anything is written.
    let mut bad = SeverityScheme::usgs();
    bad.classes[4].from = Some(0.05);
    let e = s2cr::error_chain(&assess::assess_files(&inputs, &tmp.path().join("bad"), &AssessConfig { severity_classes: bad, ..cfg }, &Progress::silent("assess")).unwrap_err());
    assert!(e.contains("severity classes") && e.contains("bounds must increase"), "{e}");
}

/// Field plots on a real chip with a generated burned disc (say so: generated), most severe at
/// its centre, and CBI made from the disc's own severity plus a little seeded noise: the fits
/// rise with CBI, the dNBR fit gives increasing class bounds, and asked to, both maps are
/// classified with them (the report's classes are then "CBI"). Plots outside the grid, at its
/// edge, with a CBI of 4.2 or none are listed with the reason and left out; files without
/// plots, without the CBI field or missing are refused with what is wrong.
#[test]
fn generated_field_plots_calibrate_the_classes_and_bad_plot_files_are_named() {
    use s2cr::assess::plots::FieldPlots;
    let tmp = tempfile::tempdir().unwrap();
    let (pre, inputs) = graded_disc(tmp.path(), |r| (1.0 - 0.7 * (1.0 - r), 1.0 + 0.9 * (1.0 - r)));
    let severity = |col: f64, row: f64| (1.0 - ((col - 128.0).powi(2) + (row - 128.0).powi(2)).sqrt() / 40.0).max(0.0);
    // Pixel centres to lon/lat through GDAL, as a GIS would write the plots.
    let wgs84 = s2cr::grid::wgs84_traditional().unwrap();
    let crs = gdal::spatial_ref::SpatialRef::from_wkt(&pre.crs_wkt).unwrap();
    let to_lonlat = gdal::spatial_ref::CoordTransform::new(&crs, &wgs84).unwrap();
    let gt = pre.geo_transform;
    let lonlat = |col: f64, row: f64| {
        let (mut x, mut y, mut z) = ([gt[0] + col * gt[1]], [gt[3] + row * gt[5]], [0.0]);
        to_lonlat.transform_coords(&mut x, &mut y, &mut z).unwrap();
        (x[0], y[0])
    };
    let mut csv = String::from("plot,lon,lat,CBI\n");
    let mut k = 0u64;
    for row in (60..200).step_by(10) {
        for col in (60..200).step_by(10) {
            let (c, r) = (col as f64 + 0.5, row as f64 + 0.5);
            k += 1;
            let noise = 0.05 * (((k * 7919) % 13) as f64 / 6.0 - 1.0);
            let cbi = (2.9 * severity(c, r) + 0.1 + noise).clamp(0.0, 3.0);
            let (lon, lat) = lonlat(c, r);
            csv.push_str(&format!("g{k},{lon},{lat},{cbi:.3}\n"));
        }
    }
    let (out_lon, out_lat) = lonlat(-30.5, 10.5);
    let (edge_lon, edge_lat) = lonlat(0.5, 100.5);
    let (in_lon, in_lat) = lonlat(128.5, 128.5);
    csv.push_str(&format!("outside,{out_lon},{out_lat},1.0\nedge,{edge_lon},{edge_lat},0.5\ntoo-high,{in_lon},{in_lat},4.2\nempty,{in_lon},{in_lat},\n"));
    let plots_file = tmp.path().join("generated_plots.csv");
    std::fs::write(&plots_file, &csv).unwrap();
    let cfg = AssessConfig { dnbr_offset: assess::offset::DnbrOffset::off(), plots: Some(FieldPlots { file: plots_file.clone(), field: "cbi".into(), classify: true }), ..Default::default() };
    let out = tmp.path().join("plots");
    let report = assess::assess_files(&inputs, &out, &cfg, &Progress::silent("assess")).unwrap();
    let c = report.plots.as_ref().expect("the plots' calibration");
    assert_eq!(c.plots.len(), 14 * 14 + 4);
    let reason = |id: &str| c.plots.iter().find(|p| p.id == id).unwrap().left_out.clone().unwrap_or_default();
    assert_eq!(reason("outside"), "outside the grid");
    assert!(reason("edge").contains("edge"), "{}", reason("edge"));
    assert_eq!(reason("too-high"), "cbi 4.2 outside 0-3");
    assert!(reason("empty").starts_with("no cbi"), "{}", reason("empty"));
    let fit = |map: &str, index: &str, model: &str| c.fits.iter().find(|f| f.map == map && f.index == index && f.model == model).unwrap_or_else(|| panic!("{map} {index} {model}"));
    let sat = fit("real", "dNBR", "saturating");
    println!("dNBR fit {:?} R² {} RMSE {} bounds {:?}", sat.coefficients, sat.r2, sat.rmse, sat.bounds);
    assert_eq!(sat.n, 196);
    assert!(sat.r2 > 0.9 && fit("real", "RdNBR", "linear").r2 > 0.5 && fit("synthetic", "RBR", "saturating").n == 196, "{:?}", c.fits);
    assert!(sat.bounds.windows(2).all(|b| b[0] < b[1]), "{:?}", sat.bounds);
    // Classified with the fit's bounds: the report's classes are the CBI scheme's.
    assert_eq!(report.config.severity_classes.name, "CBI");
    assert!((report.config.severity_classes.classes[1].from.unwrap() as f64 - sat.bounds[0]).abs() < 1e-6);
    assert_eq!(report.severity_areas.iter().map(|a| a.class.as_str()).collect::<Vec<_>>(), ["unburned", "low", "moderate", "high"]);
    let table = std::fs::read_to_string(out.join("plots.csv")).unwrap();
    assert_eq!(table.lines().count(), 1 + 200);
    assert!(table.contains("too-high,") && table.contains("outside the grid"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"plots\"") && html.contains("Left out: outside (outside the grid)"), "the plots section");
    assert!(out.join("figures/cbi.png").is_file());

    // Bad files, each named with what is wrong.
    let bad = |name: &str, text: &str, field: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        let cfg = AssessConfig { plots: Some(FieldPlots { file: p, field: field.into(), classify: false }), ..cfg.clone() };
        s2cr::error_chain(&assess::assess_files(&inputs, &tmp.path().join(format!("out-{name}")), &cfg, &Progress::silent("assess")).unwrap_err())
    };
    let e = bad("empty.csv", "id,lon,lat,CBI\n", "CBI");
    assert!(e.contains("empty.csv") && e.contains("has no plots"), "{e}");
    let e = bad("nocbi.csv", &format!("id,lon,lat,severity\na,{in_lon},{in_lat},2\n"), "CBI");
    assert!(e.contains("has no field \"CBI\"") && e.contains("severity"), "{e}");
    let e = bad("notes.txt", "not a table", "CBI");
    assert!(e.contains("notes.txt"), "{e}");
    let missing = AssessConfig { plots: Some(FieldPlots { file: tmp.path().join("nowhere.gpkg"), field: "CBI".into(), classify: false }), ..cfg.clone() };
    let e = s2cr::error_chain(&assess::assess_files(&inputs, &tmp.path().join("out-missing"), &missing, &Progress::silent("assess")).unwrap_err());
    assert!(e.contains("nowhere.gpkg") && e.contains("no such file"), "{e}");
    // Too few plots to classify with, when asked to: refused with the count.
    let few = tmp.path().join("few.csv");
    std::fs::write(&few, format!("id,lon,lat,CBI\na,{in_lon},{in_lat},2\n")).unwrap();
    let asked = AssessConfig { plots: Some(FieldPlots { file: few, field: "CBI".into(), classify: true }), ..cfg.clone() };
    let e = s2cr::error_chain(&assess::assess_files(&inputs, &tmp.path().join("out-few"), &asked, &Progress::silent("assess")).unwrap_err());
    assert!(e.contains("few.csv") && e.contains("at least 4 plots") && e.contains("1 have them"), "{e}");
}
