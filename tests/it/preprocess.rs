//! Sentinel-1 radiometry on real data: calibration with the real SAFE's LUTs (on generated DNs,
//! the SAFE's pixels being zeros), and speckle filters on a real SEN12MS-CR radar chip.

use std::path::PathBuf;

use s2cr::preprocess::s1::{self, Calibration, Coefficient, Noise, SpeckleFilter};
use s2cr::raster;

use crate::shared_data;

fn annotation(kind: &str) -> PathBuf {
    let dir = shared_data().join("s1-grd-safe-annotation/S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE/annotation/calibration");
    std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).find(|p| p.file_name().unwrap().to_string_lossy().starts_with(kind)).unwrap()
}

/// The first `count` numbers of element `tag` in the n-th occurrence, read with plain string
/// operations (a second reading of the XML, independent of the parser under test).
fn numbers_of(text: &str, tag: &str, nth: usize, count: usize) -> Vec<f64> {
    let start = text.match_indices(&format!("<{tag} ")).nth(nth).unwrap().0;
    let body = &text[start..];
    let body = &body[body.find('>').unwrap() + 1..body.find(&format!("</{tag}>")).unwrap()];
    body.split_whitespace().take(count).map(|t| t.parse().unwrap()).collect()
}

#[test]
fn calibration_with_the_real_lut_and_noise_vectors() {
    let cal_path = annotation("calibration");
    let noise_path = annotation("noise");
    let cal = Calibration::load(&cal_path).unwrap();
    let noise = Noise::load(&noise_path).unwrap();
    assert_eq!(cal.polarisation, "VV");
    assert_eq!(cal.sigma0.lines.len(), 27);
    assert!(cal.sigma0.pixels.iter().all(|p| p.len() == 654));
    assert_eq!(noise.range.lines.len(), 27);
    assert_eq!(noise.azimuth.len(), 3, "one azimuth block per IW swath");

    let text = std::fs::read_to_string(&cal_path).unwrap();
    let sigma_line0 = numbers_of(&text, "sigmaNought", 0, 2);
    let pixels_line0 = numbers_of(&text, "pixel", 0, 2);
    assert_eq!(pixels_line0, [0.0, 40.0]);
    // Generated DNs on the first line: pixels 0 and 20 (halfway between two LUT samples).
    let dn = vec![100.0f32, 0.0, 250.0];
    let sigma = s1::calibrate(&dn, 3, (0, 0), &cal, Coefficient::Sigma0, None);
    let a0 = sigma_line0[0];
    assert!((sigma[0] as f64 - 1e4 / (a0 * a0)).abs() < 1e-9, "{} vs {}", sigma[0], 1e4 / (a0 * a0));
    assert!(sigma[1].is_nan(), "DN 0 is no data");
    let mid = s1::calibrate(&[250.0], 1, (20, 0), &cal, Coefficient::Sigma0, None)[0] as f64;
    let a_mid = (sigma_line0[0] + sigma_line0[1]) / 2.0;
    assert!((mid - 62500.0 / (a_mid * a_mid)).abs() / mid < 1e-6);
    // Noise removal: (DN^2 - range LUT x azimuth LUT) / A^2 at line 0, pixel 0 (swath IW1).
    let noise_text = std::fs::read_to_string(&noise_path).unwrap();
    let range0 = numbers_of(&noise_text, "noiseRangeLut", 0, 1)[0];
    let azimuth0 = numbers_of(&noise_text, "noiseAzimuthLut", 0, 1)[0];
    let denoised = s1::calibrate(&[100.0], 1, (0, 0), &cal, Coefficient::Sigma0, Some(&noise))[0] as f64;
    let expected = (1e4 - range0 * azimuth0).max(0.0) / (a0 * a0);
    assert!((denoised - expected).abs() < 1e-9, "{denoised} vs {expected}");
    // Gamma0 and beta0 use their own LUTs.
    let g = s1::calibrate(&[100.0], 1, (0, 0), &cal, Coefficient::Gamma0, None)[0] as f64;
    let g0 = numbers_of(&text, "gamma", 0, 1)[0];
    assert!((g - 1e4 / (g0 * g0)).abs() < 1e-9);
}

#[test]
fn a_broken_annotation_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("calibration-x.xml");
    std::fs::write(&p, "<calibration><calibrationVector><line>0</line></calibration>").unwrap();
    let err = Calibration::load(&p).unwrap_err().to_string();
    assert!(err.contains("calibration-x.xml") && err.contains("not valid XML"), "{err}");
    std::fs::write(&p, "<calibration></calibration>").unwrap();
    let err = Calibration::load(&p).unwrap_err().to_string();
    assert!(err.contains("no <calibrationVector> found"), "{err}");
}

/// Mean absolute difference between neighbours at the strongest edges of `reference`.
fn edge_strength(img: &[f32], reference: &[f32], w: usize, h: usize) -> f64 {
    let grad = |a: &[f32], x: usize, y: usize| ((a[y * w + x + 1] - a[y * w + x]).abs() + (a[(y + 1) * w + x] - a[y * w + x]).abs()) as f64;
    let mut g: Vec<(f64, usize, usize)> = Vec::new();
    for y in 4..h - 5 {
        for x in 4..w - 5 {
            g.push((grad(reference, x, y), x, y));
        }
    }
    g.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top = &g[..g.len() / 50];
    top.iter().map(|(_, x, y)| grad(img, *x, *y)).sum::<f64>() / top.len() as f64
}

#[test]
fn refined_lee_smooths_homogeneous_areas_and_keeps_edges_sharper_than_a_boxcar() {
    let chip = shared_data().join("s1s2-sen12mscr/s1/ROIs1970_fall_139_p839.tif");
    let vv = raster::read_window(chip.to_str().unwrap(), &[1], None).unwrap();
    let (w, h) = (vv.width, vv.height);
    let linear = s1::from_db(&vv.bands[0]);
    let refined = s1::refined_lee(&linear, w, h);
    let boxcar = s1::boxcar(&linear, w, h, 7);
    // Homogeneous area: the 24 x 24 block whose boxcar-smoothed values vary least.
    let mut best = (f64::INFINITY, 0, 0);
    for by in (8..h - 32).step_by(8) {
        for bx in (8..w - 32).step_by(8) {
            let block: Vec<f32> = (by..by + 24).flat_map(|y| (bx..bx + 24).map(move |x| (x, y))).map(|(x, y)| boxcar[y * w + x]).collect();
            let m = block.iter().map(|v| *v as f64).sum::<f64>() / block.len() as f64;
            let cv = (block.iter().map(|v| (*v as f64 - m).powi(2)).sum::<f64>() / block.len() as f64).sqrt() / m;
            if cv < best.0 {
                best = (cv, bx, by);
            }
        }
    }
    let (_, bx, by) = best;
    let block = |img: &[f32]| -> Vec<f32> { (by..by + 24).flat_map(|y| (bx..bx + 24).map(move |x| (x, y))).map(|(x, y)| img[y * w + x]).collect() };
    let enl_before = s1::equivalent_number_of_looks(&block(&linear));
    let enl_refined = s1::equivalent_number_of_looks(&block(&refined));
    let edges_original = edge_strength(&linear, &boxcar, w, h);
    let edges_refined = edge_strength(&refined, &boxcar, w, h);
    let edges_boxcar = edge_strength(&boxcar, &boxcar, w, h);
    println!(
        "homogeneous block at ({bx}, {by}): ENL {enl_before:.2} -> {enl_refined:.2} (refined Lee); \
         edge strength: original {edges_original:.4}, refined Lee {edges_refined:.4}, 7x7 boxcar {edges_boxcar:.4}"
    );
    // Measured here: ENL 9.2 -> 13.4 (the chip is already multilooked); SNAP's noise model keeps k near 0.5 in flat areas.
    assert!(enl_refined > 1.2 * enl_before, "ENL {enl_before} -> {enl_refined}");
    assert!(edges_refined > edges_boxcar, "refined Lee {edges_refined} vs boxcar {edges_boxcar}");
    // Filters keep the mean level of the area (speckle is multiplicative noise around it).
    let mean = |v: &[f32]| v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
    assert!((mean(&block(&refined)) / mean(&block(&linear)) - 1.0).abs() < 0.1);
    let lee = s1::speckle_filter(&linear, w, h, SpeckleFilter::Lee { size: 7, looks: enl_before.max(1.0) });
    assert!(s1::equivalent_number_of_looks(&block(&lee)) > enl_before);
}

/// A STAND-IN for SNAP's gpt (SNAP cannot be installed here): a shell script that checks the
/// arguments it gets and writes a GeoTIFF where the graph says, copying a real raster.
#[test]
fn the_snap_engine_runs_gpt_with_the_graph_and_parameters() {
    use s2cr::preprocess::snap::{self, SnapGraph, SnapParams};
    let tmp = tempfile::tempdir().unwrap();
    let standin = tmp.path().join("gpt");
    let chip = shared_data().join("s1s2-sen12mscr/s1/ROIs1970_fall_139_p839.tif");
    let log = tmp.path().join("args.txt");
    std::fs::write(
        &standin,
        format!(
            "#!/bin/sh\n# stand-in for SNAP gpt used by the tests\nprintf '%s\\n' \"$@\" > {log}\n\
             grep -q '<operator>Speckle-Filter</operator>' \"$1\" || exit 3\n\
             out=''\nfor a in \"$@\"; do case \"$a\" in -Poutput=*) out=\"${{a#-Poutput=}}\";; esac; done\n\
             [ -n \"$out\" ] || exit 4\ngdal_translate -q {chip} \"$out\"\n",
            log = log.display(),
            chip = chip.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&standin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gpt = snap::find_gpt(Some(&standin)).unwrap();
    let params = SnapParams {
        input: tmp.path().join("S1B_IW_GRDH.SAFE"),
        output: tmp.path().join("out/s1_vv_vh.tif"),
        geo_region_wkt: "POLYGON ((12.45 41.95, 12.55 41.95, 12.55 42.05, 12.45 42.05, 12.45 41.95))".into(),
        grid: s2cr::grid::TargetGrid { epsg: 32633, pixel_size_m: 10.0, x_min: 290040.0, y_max: 4660020.0, width: 100, height: 100 },
        polarisations: vec!["VV".into(), "VH".into()],
        s2_bands: vec![],
    };
    snap::run_graph(&gpt, SnapGraph::Sentinel1V3, &params, &s2cr::job::Progress::silent("preprocess")).unwrap();
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(args.lines().next().unwrap().ends_with("calibrate_sent1_v3.xml"), "{args}");
    for expected in ["-Ppolarisations=VV,VH", "-PmapProjection=EPSG:32633", "-PgridOriginX=290040", "-PgeoRegion=POLYGON ((12.45 41.95"] {
        assert!(args.contains(expected), "{expected} missing from {args}");
    }
    assert_eq!(raster::info(params.output.to_str().unwrap()).unwrap().bands.len(), 2);
    // A failing gpt leaves no output and reports its stderr.
    std::fs::write(&standin, "#!/bin/sh\necho 'Error: [NodeId: Calibration] no calibration vectors' >&2\nexit 1\n").unwrap();
    let mut p2 = params.clone();
    p2.output = tmp.path().join("out/failed.tif");
    let err = snap::run_graph(&gpt, SnapGraph::Sentinel1V3, &p2, &s2cr::job::Progress::silent("preprocess")).unwrap_err().to_string();
    assert!(err.contains("no calibration vectors") && err.contains("calibrate_sent1_v3.xml"), "{err}");
    assert!(!p2.output.exists());
}

/// The native preprocess stage on real chips placed in raw/ as fetch would leave them: S2 B04
/// (SEN12MS-CR cloud-free DNs), a SIMULATED SCL (cloud where the cloudy chip's blue reflectance
/// exceeds 0.2), and S1 VV as linear power from the real dB chip, described as an RTC scene.
/// Processing in blocks of 5 rows gives the same rasters as one block (halo rows for the mask
/// buffer and the 7 x 7 filter).
#[test]
fn preprocess_in_small_blocks_equals_one_block_for_s2_masks_and_s1() {
    use s2cr::catalog::{Mission, Scene, stage::SearchResult};
    use s2cr::preprocess::stage::{self, PreprocessConfig};
    let tmp = tempfile::tempdir().unwrap();
    let sen = |kind: &str| shared_data().join(format!("s1s2-sen12mscr/{kind}/ROIs1970_fall_139_p839.tif"));
    let aoi_path = tmp.path().join("aoi.geojson");
    std::fs::write(&aoi_path, r#"{"type":"Polygon","coordinates":[[[119.180,33.494],[119.194,33.494],[119.194,33.506],[119.180,33.506],[119.180,33.494]]]}"#).unwrap();
    let aoi = s2cr::aoi::Aoi::load(&aoi_path, &Default::default()).unwrap();
    let mut config = s2cr::project::ProjectConfig {
        schema_version: s2cr::project::SCHEMA_VERSION,
        name: "blocks".into(),
        aoi: "aoi.geojson".into(),
        t0: "2024-03-30/2024-04-08".parse().unwrap(),
        t1: "2024-04-10/2024-04-22".parse().unwrap(),
        provider: s2cr::project::Provider::PlanetaryComputer,
        max_cloud_percent: 100.0,
        bands: Default::default(),
        grid: aoi.target_grid(10.0).unwrap(),
        model_config: None,
        train_config: None,
        catalog: None,
        collections: None,
        openeo: None,
        reference_perimeter: None,
        composite: None,
    };
    config.bands.s2 = vec!["B04".into(), "SCL".into()];
    config.bands.s1 = vec!["VV".into()];
    let project = s2cr::project::Project::create(&tmp.path().join("p"), config, &aoi).unwrap();
    let scene = |id: &str, mission: Mission, collection: &str, date: &str| Scene {
        platform: Some("sentinel-2a".into()),
        cloud_cover: Some(10.0),
        relative_orbit: Some(10),
        orbit_state: Some("descending".into()),
        processing_baseline: Some("05.10".into()),
        ..Scene::new(id, collection, mission, format!("{date}T03:00:00Z").parse().unwrap())
    };
    let t0 = scene("S2_T0", Mission::Sentinel2, "sentinel-2-l2a", "2024-04-02");
    let t1 = scene("S2_T1", Mission::Sentinel2, "sentinel-2-l2a", "2024-04-12");
    let s1 = scene("S1_RTC", Mission::Sentinel1, "sentinel-1-rtc", "2024-04-11");
    let raw = |s: &Scene, band: &str| project.raw_dir().join(s.datetime.format("%Y-%m-%d").to_string()).join(&s.id).join(format!("{band}.tif"));
    // S2 B04 DNs and the simulated SCL.
    let blue = raster::read_window(sen("s2_cloudy").to_str().unwrap(), &[2], None).unwrap();
    let codes: Vec<u8> = blue.bands[0].iter().map(|v| if v / 10000.0 > 0.2 { 9 } else { 4 }).collect();
    for s in [&t0, &t1] {
        std::fs::create_dir_all(raw(s, "B04").parent().unwrap()).unwrap();
        assert!(std::process::Command::new("gdal_translate").args(["-q", "-b", "4"]).arg(sen("s2_cloudfree")).arg(raw(s, "B04")).status().unwrap().success());
        raster::write_classes(&raw(s, "SCL"), &raster::ClassRaster { width: blue.width, height: blue.height, codes: &codes, geo_transform: blue.geo_transform, crs_wkt: &blue.crs_wkt, description: "SCL (simulated)", classes: &[(4, [0, 160, 0], "vegetation"), (9, [255, 255, 255], "cloud")] }).unwrap();
    }
    let mut vv = raster::read_window(sen("s1").to_str().unwrap(), &[1], None).unwrap();
    vv.bands[0] = s1::from_db(&vv.bands[0]);
    raster::write_raster(&raw(&s1, "VV"), &vv, &raster::WriteOptions::default()).unwrap();
    let result = SearchResult {
        s2_t0: vec![t0.clone()],
        s2_t1: vec![t1.clone()],
        s1: vec![s1.clone()],
        chosen_t0: Some(t0.id.clone()),
        chosen_t1: Some(t1.id.clone()),
        pairs: vec![s2cr::catalog::pairing::Pair { s2_id: t1.id.clone(), s1_id: s1.id.clone(), gap_hours: -24.0, relative_orbit: Some(10), orbit_state: Some("descending".into()) }],
        unpaired: vec![],
        t0_scenes: vec![],
        t1_scenes: vec![],
        provider: None,
        notes: vec![],
        composite_t0: None,
        composite_t1: None,
    };
    std::fs::write(project.catalog_dir().join("search.json"), serde_json::to_string(&result).unwrap()).unwrap();

    let run = |block_rows: usize| {
        let cfg = PreprocessConfig { block_rows, ..Default::default() };
        let out = stage::preprocess(&project, &cfg, &s2cr::job::Progress::silent("preprocess")).unwrap();
        out.iter().map(|p| (p.sensor.clone(), raster::read_window(p.path.to_str().unwrap(), &[], None).unwrap())).collect::<Vec<_>>()
    };
    let whole = run(10_000);
    let blocks = run(5);
    assert_eq!(whole.len(), 3, "S2 t0, S2 t1, S1");
    let bits = |v: &[Vec<f32>]| v.iter().map(|b| b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect::<Vec<_>>();
    for ((sensor, a), (_, b)) in whole.iter().zip(&blocks) {
        assert_eq!(bits(&a.bands), bits(&b.bands), "{sensor}: blocks differ from one block");
    }
    let (_, s2) = &whole[0];
    assert!(s2.height > 10, "several 5-row blocks: {}", s2.height);
    let mask = &s2.bands[1];
    let masked = mask.iter().filter(|m| **m == 1.0).count();
    assert!(masked > 0 && masked < mask.len(), "a partly cloudy mask: {masked} of {}", mask.len());
    let (_, s1_out) = &whole[2];
    assert!(s1_out.bands[0].iter().all(|v| v.is_finite() && *v < 5.0 && *v > -40.0), "dB values");

    // The SNAP engine, with a STAND-IN for gpt (SNAP cannot be installed here): for the S2 graph
    // it writes what SNAP's subset would hold (the raw B04 digital numbers and the SCL), for the
    // S1 graph the real VV chip in dB; it checks the parameters the stage passes.
    use s2cr::preprocess::stage::Engine;
    let s2_out = tmp.path().join("snap_s2.tif");
    let vrt = tmp.path().join("snap_s2.vrt");
    assert!(std::process::Command::new("gdalbuildvrt").args(["-q", "-separate"]).arg(&vrt).arg(raw(&t1, "B04")).arg(raw(&t1, "SCL")).status().unwrap().success());
    assert!(std::process::Command::new("gdal_translate").args(["-q", "-ot", "UInt16"]).arg(&vrt).arg(&s2_out).status().unwrap().success());
    let standin = tmp.path().join("gpt");
    std::fs::write(
        &standin,
        format!(
            "#!/bin/sh\n# stand-in for SNAP gpt used by the tests\nout=''\nfor a in \"$@\"; do case \"$a\" in -Poutput=*) out=\"${{a#-Poutput=}}\";; esac; done\n\
             case \"$1\" in\n\
             *calibrate_sent2.xml) echo \"$@\" | grep -q -- '-Pbands=B4,quality_scene_classification' || exit 5; cp {s2} \"$out\";;\n\
             *calibrate_sent1_v3.xml) echo \"$@\" | grep -q -- '-Ppolarisations=VV' || exit 6; gdal_translate -q -b 1 {s1} \"$out\";;\n\
             *) exit 7;;\nesac\n",
            s2 = s2_out.display(),
            s1 = sen("s1").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&standin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let products = tmp.path().join("products");
    let snap_cfg = PreprocessConfig { engine: Engine::Snap { s1_graph: s2cr::preprocess::snap::SnapGraph::Sentinel1V3, gpt: Some(standin.clone()), products: Some(products.clone()) }, ..Default::default() };
    let err = stage::preprocess(&project, &snap_cfg, &s2cr::job::Progress::silent("preprocess")).unwrap_err().to_string();
    assert!(err.contains("no SAFE product") && err.contains("S2_T0"), "{err}");
    for id in ["S2_T0_20240402.SAFE", "S2_T1_20240412.zip", "S1_RTC_ABCD.SAFE"] {
        std::fs::create_dir_all(products.join(id)).unwrap();
    }
    let snap = stage::preprocess(&project, &snap_cfg, &s2cr::job::Progress::silent("preprocess")).unwrap();
    assert!(snap[2].processing.contains("calibrate_sent1_v3.xml"), "{}", snap[2].processing);
    // SNAP's subset of the same digital numbers gives the same S2 raster as the native engine.
    let snap_t1 = raster::read_window(snap[1].path.to_str().unwrap(), &[], None).unwrap();
    assert_eq!(bits(&snap_t1.bands), bits(&whole[1].1.bands), "S2 from the SNAP engine equals the native one");
    let snap_s1 = raster::read_window(snap[2].path.to_str().unwrap(), &[], None).unwrap();
    assert!(snap_s1.bands[0].iter().all(|v| v.is_finite() && *v < 5.0 && *v > -40.0), "dB passed through");
    let native = stage::preprocess(&project, &PreprocessConfig::default(), &s2cr::job::Progress::silent("preprocess")).unwrap();
    let counts = snap[1].mask_counts.unwrap();
    assert_eq!(Some(counts), native[1].mask_counts);
    let g = &project.config.grid;
    assert_eq!(counts.no_data + counts.cloud_shadow_cirrus + counts.snow + counts.buffer + counts.missing_bands + counts.clear, g.width * g.height);
    assert!(counts.cloud_shadow_cirrus > 0 && counts.buffer > 0 && counts.clear > 0, "{counts:?}");
}

fn safe_dir() -> PathBuf {
    shared_data().join("s1-grd-safe-annotation/S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
}

/// lon/lat of a (pixel, line) of a GCP-georeferenced raster by GDAL's own `gdaltransform -tps`.
fn gdaltransform(path: &std::path::Path, pixel: f64, line: f64) -> (f64, f64) {
    use std::io::Write;
    let mut child = std::process::Command::new("gdaltransform")
        .arg("-tps")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{pixel} {line}").unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let v: Vec<f64> = out.split_whitespace().map(|s| s.parse().unwrap()).collect();
    (v[0], v[1])
}

/// A Sentinel-1 GRD in radar geometry, end to end in the native engine. The "product" served
/// over loopback is the first 1024 x 1024 pixels of the real SAFE (its real GCPs, Rome); since
/// the SAFE's pixels are zeros, its digital numbers are GENERATED from the real SEN12MS-CR VV
/// chip (dB -> sigma0, upsampled x4) through the inverse of the real calibration and noise
/// tables: DN = sqrt(sigma0 A^2 + noise). The fetch finds the AOI window by the GCPs and
/// records its offset; preprocessing must give back the chip's sigma0 on the grid, checked
/// against GDAL's gdalwarp -tps of the sigma0 itself.
#[test]
fn a_grd_window_is_found_by_its_gcps_calibrated_and_geocoded() {
    use gdal::Metadata;
    use s2cr::catalog::{Mission, Scene, stage::SearchResult};
    use s2cr::preprocess::stage::{self, PreprocessConfig};
    use std::process::Command;
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let product = served.join("VV.tif");
    let n = 1024usize;
    let ok = Command::new("gdal_translate")
        .args(["-q", "-srcwin", "0", "0", &n.to_string(), &n.to_string(), "-co", "TILED=YES", "-co", "COMPRESS=DEFLATE", "-a_nodata", "none"])
        .arg(safe_dir().join("manifest.safe"))
        .arg(&product)
        .status()
        .unwrap();
    assert!(ok.success());
    let cal = Calibration::load(&annotation("calibration")).unwrap();
    let noise = Noise::load(&annotation("noise")).unwrap();
    let chip = raster::read_window(shared_data().join("s1s2-sen12mscr/s1/ROIs1970_fall_139_p839.tif").to_str().unwrap(), &[1], None).unwrap();
    let sigma0 = |x: usize, y: usize| 10f64.powf(chip.bands[0][(y / 4).min(chip.height - 1) * chip.width + (x / 4).min(chip.width - 1)] as f64 / 10.0);
    let mut dn = vec![0u16; n * n];
    let mut truth = vec![0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            let a = cal.lut(Coefficient::Sigma0).at(y as f64, x as f64);
            let s = sigma0(x, y);
            dn[y * n + x] = (s * a * a + noise.at(y as f64, x as f64)).sqrt().round().clamp(1.0, 65534.0) as u16;
            truth[y * n + x] = s as f32;
        }
    }
    {
        let ds = gdal::Dataset::open_ex(&product, gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE, ..Default::default() }).unwrap();
        let mut band = ds.rasterband(1).unwrap();
        band.write((0, 0), (n, n), &mut gdal::raster::Buffer::new((n, n), dn)).unwrap();
    }
    // The sigma0 itself with the same GCPs, for the reference warp.
    let truth_path = tmp.path().join("sigma0_radar.tif");
    assert!(Command::new("gdal_translate").args(["-q", "-ot", "Float32"]).arg(&product).arg(&truth_path).status().unwrap().success());
    {
        let ds = gdal::Dataset::open_ex(&truth_path, gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE, ..Default::default() }).unwrap();
        ds.rasterband(1).unwrap().write((0, 0), (n, n), &mut gdal::raster::Buffer::new((n, n), truth)).unwrap();
    }

    // The AOI: the ground under pixels 400..700 x 400..700, by GDAL's transformer.
    let corners: Vec<(f64, f64)> = [(400.0, 400.0), (700.0, 400.0), (700.0, 700.0), (400.0, 700.0)].iter().map(|(p, l)| gdaltransform(&product, *p, *l)).collect();
    let bbox = [
        corners.iter().map(|c| c.0).fold(f64::INFINITY, f64::min),
        corners.iter().map(|c| c.1).fold(f64::INFINITY, f64::min),
        corners.iter().map(|c| c.0).fold(f64::NEG_INFINITY, f64::max),
        corners.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max),
    ];
    let aoi_path = tmp.path().join("aoi.geojson");
    std::fs::write(&aoi_path, format!(r#"{{"type":"Polygon","coordinates":[[[{a},{b}],[{c},{b}],[{c},{d}],[{a},{d}],[{a},{b}]]]}}"#, a = bbox[0], b = bbox[1], c = bbox[2], d = bbox[3])).unwrap();
    let aoi = s2cr::aoi::Aoi::load(&aoi_path, &Default::default()).unwrap();
    let mut config = s2cr::project::ProjectConfig {
        schema_version: s2cr::project::SCHEMA_VERSION,
        name: "grd".into(),
        aoi: "aoi.geojson".into(),
        t0: "2021-12-01/2021-12-10".parse().unwrap(),
        t1: "2021-12-20/2021-12-30".parse().unwrap(),
        provider: s2cr::project::Provider::PlanetaryComputer,
        max_cloud_percent: 100.0,
        bands: Default::default(),
        grid: aoi.target_grid(10.0).unwrap(),
        model_config: None,
        train_config: None,
        catalog: None,
        collections: None,
        openeo: None,
        reference_perimeter: None,
        composite: None,
    };
    config.bands.s1 = vec!["VV".into()];
    let project = s2cr::project::Project::create(&tmp.path().join("p"), config, &aoi).unwrap();
    let scene = Scene {
        platform: Some("sentinel-1b".into()),
        relative_orbit: Some(22),
        orbit_state: Some("descending".into()),
        ..Scene::new("S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993", "sentinel-1-grd", Mission::Sentinel1, "2021-12-23T05:11:22Z".parse().unwrap())
    };
    assert!(scene.is_grd());
    let raw = project.raw_dir().join("2021-12-23").join(&scene.id);

    // Fetch over loopback: the window comes from the GCPs and carries its offset.
    let server = crate::cog_server::CogServer::start(served.clone());
    let opts = s2cr::fetch::FetchOptions { attempts: 2, backoff_ms: 50, timeout_secs: 5, margin_m: 100.0, parallel: 1 };
    let fetched = s2cr::fetch::fetch_window(&format!("{}/VV.tif", server.url), &raw.join("VV.tif"), aoi.bbox(), &opts, &s2cr::job::Progress::silent("fetch")).unwrap();
    let [x, y, w, h] = fetched.window;
    println!("GRD window {:?} of {n} x {n}", fetched.window);
    assert!(x <= 400 && y <= 400 && x + w >= 700 && y + h >= 700, "the window covers the AOI: {:?}", fetched.window);
    // The AOI's lon/lat bounding box around a footprint turned by the orbit's heading, plus
    // 10 px margins: well under half the image on each side.
    assert!(w < 480 && h < 480, "and not much more: {:?}", fetched.window);
    let ds = gdal::Dataset::open(raw.join("VV.tif")).unwrap();
    assert_eq!(ds.metadata_item(s2cr::fetch::WINDOW_OFFSET_KEY, "").unwrap(), format!("{x},{y}"));
    assert!(ds.gcps().len() >= 3, "GCPs kept");
    drop(ds);
    std::fs::copy(annotation("calibration"), raw.join("calibration-VV.xml")).unwrap();
    std::fs::copy(annotation("noise"), raw.join("noise-VV.xml")).unwrap();
    let result = SearchResult {
        s2_t0: vec![],
        s2_t1: vec![],
        s1: vec![scene.clone()],
        chosen_t0: None,
        chosen_t1: None,
        pairs: vec![s2cr::catalog::pairing::Pair { s2_id: "none".into(), s1_id: scene.id.clone(), gap_hours: 0.0, relative_orbit: Some(22), orbit_state: Some("descending".into()) }],
        unpaired: vec![],
        t0_scenes: vec![],
        t1_scenes: vec![],
        provider: None,
        notes: vec![],
        composite_t0: None,
        composite_t1: None,
    };
    std::fs::write(project.catalog_dir().join("search.json"), serde_json::to_string(&result).unwrap()).unwrap();

    // No speckle filter, so the output can be compared with the sigma0 warped by gdalwarp.
    let cfg = PreprocessConfig { speckle: SpeckleFilter::None, block_rows: 64, ..Default::default() };
    let out = stage::preprocess(&project, &cfg, &s2cr::job::Progress::silent("preprocess")).unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].processing.contains("no terrain correction"), "{}", out[0].processing);
    assert!(out[0].valid_percent > 99.0, "the AOI lies inside the window: {}", out[0].valid_percent);
    let got = raster::read_window(out[0].path.to_str().unwrap(), &[1], None).unwrap();
    let g = &project.config.grid;
    assert_eq!(got.geo_transform, g.geo_transform());
    let reference = tmp.path().join("reference.tif");
    let b = g.bounds();
    assert!(Command::new("gdalwarp")
        .args(["-q", "-tps", "-r", "bilinear", "-t_srs", &format!("EPSG:{}", g.epsg), "-tr", "10", "10", "-te"])
        .args(b.iter().map(|v| v.to_string()))
        .arg(&truth_path)
        .arg(&reference)
        .status()
        .unwrap()
        .success());
    let want = raster::read_window(reference.to_str().unwrap(), &[1], None).unwrap();
    let mut diffs: Vec<f32> = got.bands[0].iter().zip(&want.bands[0]).filter(|(a, b)| a.is_finite() && b.is_finite() && **b > 0.0).map(|(a, b)| (a - 10.0 * b.log10()).abs()).collect();
    diffs.sort_by(f32::total_cmp);
    let (median, p95) = (diffs[diffs.len() / 2], diffs[diffs.len() * 95 / 100]);
    println!("GRD calibration + geocoding vs gdalwarp -tps of sigma0: median |diff| {median:.3} dB, 95th percentile {p95:.3} dB over {} pixels", diffs.len());
    assert!(diffs.len() > got.bands[0].len() * 9 / 10);
    assert!(median < 0.1 && p95 < 0.5, "median {median} dB, p95 {p95} dB");
    // Run again: up to date, nothing redone.
    let again = stage::preprocess(&project, &cfg, &s2cr::job::Progress::silent("preprocess")).unwrap();
    assert_eq!(again, out);
}

/// The haze mask from L2A's aerosol optical thickness on the demo project. The demo's catalog
/// has no AOT band (SEN12MS-CR does not carry it), so a GENERATED AOT raster is put beside each
/// fetched scene: 0.1 on the left half of the patch, 0.9 on the right half.
#[test]
fn the_haze_mask_masks_what_aot_calls_hazy_and_counts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut project = s2cr::demo::create_project(&tmp.path().join("demo")).unwrap();
    let settings = s2cr::demo::settings(&project, Some(1), s2cr::model::DeviceChoice::Cpu).unwrap();
    let progress = s2cr::job::Progress::silent("test");
    for stage in [s2cr::project::Stage::Search, s2cr::project::Stage::Fetch] {
        s2cr::pipeline::run_stage(&project, stage, &settings, &progress).unwrap();
    }
    let search = s2cr::catalog::stage::SearchResult::load(&project, "test").unwrap();
    for scenes in search.chosen_s2() {
        for scene in scenes {
            let b02 = project.raw_band_file(&scene.datetime, &scene.id, "B02");
            let mut stack = raster::read_window(&b02.display().to_string(), &[1], None).unwrap();
            let w = stack.width;
            for (i, v) in stack.bands[0].iter_mut().enumerate() {
                *v = if i % w < w / 2 { 100.0 } else { 900.0 };
            }
            stack.valid.iter_mut().for_each(|v| *v = true);
            stack.descriptions = vec!["AOT (GENERATED for this test)".into()];
            raster::write_raster_u16(&project.raw_band_file(&scene.datetime, &scene.id, "AOT"), &stack, &raster::WriteOptions::default(), 0).unwrap();
        }
    }
    let cfg = |haze: Option<f32>| s2cr::preprocess::stage::PreprocessConfig { mask: s2cr::preprocess::s2::SclMaskOptions { haze_aot: haze, ..Default::default() }, ..Default::default() };
    // Asked for without AOT among the bands: the reason, not a silent skip.
    let e = s2cr::error_chain(&s2cr::preprocess::stage::preprocess(&project, &cfg(Some(0.5)), &progress).unwrap_err());
    assert!(e.contains("add AOT to bands.s2"), "{e}");
    let plain = s2cr::preprocess::stage::preprocess(&project, &cfg(None), &progress).unwrap();
    project.config.bands.s2.push("AOT".into());
    let hazy = s2cr::preprocess::stage::preprocess(&project, &cfg(Some(0.5)), &progress).unwrap();
    for (p, h) in plain.iter().zip(&hazy).filter(|(p, _)| p.sensor == "S2") {
        let (pc, hc) = (p.mask_counts.unwrap(), h.mask_counts.unwrap());
        assert_eq!(hc.total(), pc.total());
        assert!(hc.haze > 0 && hc.clear + hc.haze == pc.clear, "{pc:?} {hc:?}");
        // The bands written are the reflectance bands only; AOT only makes the mask.
        let info = raster::info(&h.path.display().to_string()).unwrap();
        assert!(info.bands.iter().all(|b| b.description != "AOT"), "{:?}", info.bands);
        let mask = raster::read_window(&h.path.display().to_string(), &[info.bands.len()], None).unwrap();
        let g = &project.config.grid;
        // On the grid the right half of the patch (AOT 0.9) is masked, the far left is not.
        let masked_right = (0..g.height).filter(|y| mask.bands[0][y * g.width + g.width - 10] == 1.0).count();
        assert!(masked_right == g.height, "{masked_right} of {} rows masked at the right edge", g.height);
        println!("S2 {}: {} clear pixels by SCL, {} of them hazy by AOT", h.date, pc.clear, hc.haze);
    }
}
