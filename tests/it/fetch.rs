//! Fetching AOI windows of Cloud-Optimized GeoTIFFs over HTTP range requests from a loopback
//! server that plays faults. The COGs are made with GDAL's COG driver from a real SEN12MS-CR chip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gdal::Metadata;
use predicates::prelude::PredicateBooleanExt;
use s2cr::fetch::{self, FetchOptions};
use s2cr::job::Progress;
use s2cr::raster;

use crate::cog_server::{CogServer, Fault};
use crate::shared_data;

/// A 2560 x 2560 COG (256 px tiles, DEFLATE) of band 4 (B04) of the real chip, resampled to
/// 1 m pixels so that a small AOI touches a small part of a large file.
fn big_cog(dir: &Path) -> PathBuf {
    let src = shared_data().join("s1s2-sen12mscr/s2_cloudfree/ROIs1970_fall_139_p839.tif");
    let out = dir.join("B04.tif");
    let status = Command::new("gdal_translate")
        .args(["-q", "-b", "4", "-outsize", "2560", "2560", "-r", "bilinear", "-of", "COG", "-co", "BLOCKSIZE=256", "-co", "COMPRESS=DEFLATE", "-co", "OVERVIEWS=AUTO"])
        .arg(&src)
        .arg(&out)
        .status()
        .expect("gdal_translate (gdal-bin) is needed by this test");
    assert!(status.success());
    out
}

/// A WGS84 box of about 300 x 300 m inside the chip (EPSG:32650, centre 119.187 E 33.500 N).
const AOI: [f64; 4] = [119.1855, 33.4985, 119.1887, 33.5012];

fn options() -> FetchOptions {
    FetchOptions { attempts: 4, backoff_ms: 50, timeout_secs: 2, margin_m: 0.0, parallel: 1 }
}

/// Compressed bytes of the full-resolution tiles of `path` that intersect `window`.
fn tile_bytes(path: &Path, w: raster::PixelWindow) -> u64 {
    let ds = gdal::Dataset::open(path).unwrap();
    let band = ds.rasterband(1).unwrap();
    let (bx, by) = band.block_size();
    let mut total = 0;
    for ty in w.y_off / by..=(w.y_off + w.height - 1) / by {
        for tx in w.x_off / bx..=(w.x_off + w.width - 1) / bx {
            let size: u64 = band.metadata_item(&format!("BLOCK_SIZE_{tx}_{ty}"), "TIFF").unwrap().parse().unwrap();
            total += size;
        }
    }
    total
}

/// Fetches the AOI window; returns the bytes served and the retry warnings the fetch sent.
fn fetch_and_compare(server: &CogServer, dir: &Path, cog: &Path, name: &str, opts: &FetchOptions) -> (u64, Vec<String>) {
    let href = format!("{}/B04.tif", server.url);
    let dst = dir.join(format!("{name}.tif"));
    server.reset_counters();
    let (tx, rx) = std::sync::mpsc::channel();
    let progress = Progress::new("fetch", tx, Default::default());
    let fetched = fetch::fetch_window(&href, &dst, AOI, opts, &progress).unwrap();
    drop(progress);
    let warnings: Vec<String> = rx
        .iter()
        .filter_map(|e| match e {
            s2cr::job::JobEvent::Log { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert!(fetched.downloaded);
    let [x, y, w, h] = fetched.window;
    let window = raster::PixelWindow { x_off: x, y_off: y, width: w, height: h };
    // Same pixels as a local read of the same window, same georeferencing and data type.
    let local = raster::read_window(cog.to_str().unwrap(), &[1], Some(window)).unwrap();
    let got = raster::read_window(dst.to_str().unwrap(), &[1], None).unwrap();
    assert_eq!(got.bands, local.bands, "{name}: pixels differ");
    assert_eq!(got.geo_transform, local.geo_transform);
    assert_eq!(raster::info(dst.to_str().unwrap()).unwrap().bands[0].data_type, "UInt16");
    // Nothing half-written is left.
    let leftovers: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains("partial")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(fetched.source_bytes, std::fs::metadata(cog).unwrap().len());
    (server.bytes_served.load(Ordering::SeqCst), warnings)
}

#[test]
fn a_small_aoi_costs_a_small_fraction_of_a_large_cog() {
    let tmp = tempfile::tempdir().unwrap();
    let cog = big_cog(tmp.path());
    let server = CogServer::start(tmp.path().to_path_buf());
    let out = tmp.path().join("out");
    let (served, warnings) = fetch_and_compare(&server, &out, &cog, "clean", &options());
    assert!(warnings.is_empty(), "{warnings:?}");
    let (_, window) = fetch::window_for_wgs84_bbox(cog.to_str().unwrap(), AOI, 0.0).unwrap();
    let tiles = tile_bytes(&cog, window);
    let file = std::fs::metadata(&cog).unwrap().len();
    println!("served {served} bytes for a {}x{} window: tiles {tiles} bytes, file {file} bytes", window.width, window.height);
    assert!(window.width > 250 && window.width < 400, "{window:?}");
    // The tiles, at most half again for read-ahead, plus the header and tile index (one 16 KiB
    // chunk each).
    assert!(served <= tiles * 3 / 2 + 2 * 16384, "served {served}, tiles {tiles}");
    assert!(served * 5 < file, "served {served} of a {file}-byte file");
}

#[test]
fn fetch_survives_every_fault_with_identical_results() {
    let tmp = tempfile::tempdir().unwrap();
    let cog = big_cog(tmp.path());
    let server = CogServer::start(tmp.path().to_path_buf());
    let out = tmp.path().join("out");
    for (name, fault) in [
        ("status503", Fault::Status(503)),
        ("cut", Fault::CutMidBody),
        ("slow", Fault::Slow(Duration::from_millis(3500))),
        ("wrong_length", Fault::WrongLength),
    ] {
        raster::clear_http_cache();
        server.faults.lock().unwrap().push(fault);
        let (_, warnings) = fetch_and_compare(&server, &out, &cog, name, &options());
        assert!(server.faults.lock().unwrap().is_empty(), "{name}: the fault was played");
        // GDAL recovers from some of these itself, our retry loop from the rest.
        println!("{name}: {warnings:?}");
    }
}

#[test]
fn the_retry_loop_recovers_when_gdal_gives_up() {
    let tmp = tempfile::tempdir().unwrap();
    let cog = big_cog(tmp.path());
    let server = CogServer::start(tmp.path().to_path_buf());
    raster::info(cog.to_str().unwrap()).unwrap();
    // No retries inside GDAL: every failure reaches our loop.
    gdal::config::set_config_option("GDAL_HTTP_MAX_RETRY", "0").unwrap();
    server.faults.lock().unwrap().extend([Fault::Status(503), Fault::CutMidBody, Fault::Status(502)]);
    let (_, warnings) = fetch_and_compare(&server, &tmp.path().join("out"), &cog, "retried", &options());
    let retries = warnings.iter().filter(|w| w.contains("retrying")).count();
    assert!(retries >= 2, "{warnings:?}");
    assert!(server.faults.lock().unwrap().is_empty());
}

#[test]
fn an_unreachable_file_fails_after_its_attempts_naming_the_url() {
    let tmp = tempfile::tempdir().unwrap();
    let server = CogServer::start(tmp.path().to_path_buf());
    let href = format!("{}/missing.tif", server.url);
    let dst = tmp.path().join("x.tif");
    let err = fetch::fetch_window(&href, &dst, AOI, &options(), &Progress::silent("fetch")).unwrap_err();
    let text = s2cr::error_chain(&err);
    assert!(text.contains("missing.tif"), "{text}");
    assert!(!dst.exists());
}

/// Single-band COGs of the real chip's bands, named as the band.
fn band_cogs(dir: &Path, bands: &[(&str, u32)]) {
    let src = shared_data().join("s1s2-sen12mscr/s2_cloudfree/ROIs1970_fall_139_p839.tif");
    for (name, index) in bands {
        let status = Command::new("gdal_translate")
            .args(["-q", "-b", &index.to_string(), "-of", "COG", "-co", "BLOCKSIZE=128", "-co", "COMPRESS=DEFLATE"])
            .arg(&src)
            .arg(dir.join(format!("{name}.tif")))
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A project over the real chip (four Sentinel-2 bands) whose catalog, as the search stage
/// would write it, holds two real Earth Search items (a clear date in each range) and a real
/// Sentinel-1 item, their asset hrefs rewritten by `href_of(band)` to COGs in `served` (made
/// here); `provider` is the catalog's provider. Returns the project folder and the S1 scene.
fn fetch_project(tmp: &Path, served: &Path, href_of: impl Fn(&str) -> String, provider: impl FnOnce(s2cr::catalog::ProviderConfig) -> s2cr::catalog::ProviderConfig) -> (PathBuf, s2cr::catalog::Scene) {
    std::fs::create_dir_all(served).unwrap();
    band_cogs(served, &[("B02", 2), ("B04", 4), ("B08", 8), ("B12", 13)]);

    // A project over the chip, with four bands.
    let aoi = tmp.join("aoi.geojson");
    std::fs::write(&aoi, format!(r#"{{"type":"Polygon","coordinates":[[[{a},{b}],[{c},{b}],[{c},{d}],[{a},{d}],[{a},{b}]]]}}"#, a = AOI[0], b = AOI[1], c = AOI[2], d = AOI[3])).unwrap();
    let dir = tmp.join("p");
    let mut init = assert_cmd::cargo::cargo_bin_cmd!("s2cr");
    init.args(["init", dir.to_str().unwrap(), "--aoi", aoi.to_str().unwrap(), "--t0", "2024-03-30/2024-04-08", "--t1", "2024-04-10/2024-04-22"]).assert().success();
    let yaml = dir.join("project.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let start = text.find("  s2:").unwrap();
    let end = text.find("  s1:").unwrap();
    std::fs::write(&yaml, format!("{}  s2: [B02, B04, B08, B12]\n{}", &text[..start], &text[end..])).unwrap();

    // The catalog the search stage would write: two real Earth Search items (a clear date in
    // each range) whose asset hrefs are rewritten to the loopback COGs.
    let items: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared_data().join("stac/rustac/crates_server_data_sentinel-2_item-collection_earth-search-c1.json")).unwrap(),
    )
    .unwrap();
    let kind = s2cr::catalog::ProviderKind::EarthSearch;
    let mut config = s2cr::catalog::ProviderConfig::default_for(kind);
    config.s2_collection = "sentinel-2-c1-l2a".into();
    let mut scenes: Vec<s2cr::catalog::Scene> = items["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| s2cr::catalog::Scene::from_item(&serde_json::from_value(f.clone()).unwrap(), kind, &config))
        .collect();
    for s in &mut scenes {
        for (band, href) in s.assets.iter_mut() {
            *href = href_of(band);
        }
    }
    let pick = |id: &str| scenes.iter().find(|s| s.id == id).unwrap().clone();
    // Sentinel-1: the real PC-style item (stactools), described as an RTC scene (terrain-corrected
    // linear power), its VV/VH rewritten to COGs of the real SEN12MS-CR radar chip of the same
    // place turned from dB into linear power.
    let s1_src = shared_data().join("s1s2-sen12mscr/s1/ROIs1970_fall_139_p839.tif");
    for (pol, band) in [("VV", 1), ("VH", 2)] {
        let mut stack = raster::read_window(s1_src.to_str().unwrap(), &[band], None).unwrap();
        stack.bands[0] = s2cr::preprocess::s1::from_db(&stack.bands[0]);
        raster::write_raster(&served.join(format!("{pol}.tif")), &stack, &raster::WriteOptions::default()).unwrap();
    }
    let s1_item: s2cr::catalog::item::Item = serde_json::from_str(
        &std::fs::read_to_string(shared_data().join("stac/stactools-sentinel1/S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13.json")).unwrap(),
    )
    .unwrap();
    let mut s1 = s2cr::catalog::Scene::from_item(&s1_item, s2cr::catalog::ProviderKind::PlanetaryComputer, &s2cr::catalog::ProviderConfig::default_for(s2cr::catalog::ProviderKind::PlanetaryComputer)).unwrap();
    s1.collection = "sentinel-1-rtc".into();
    s1.assets.retain(|k, _| k == "VV" || k == "VH");
    for (pol, href) in s1.assets.iter_mut() {
        *href = href_of(pol);
    }
    let pair = s2cr::catalog::pairing::Pair { s2_id: "S2A_T13TDE_20240412T175055_L2A".into(), s1_id: s1.id.clone(), gap_hours: 0.0, relative_orbit: s1.relative_orbit, orbit_state: s1.orbit_state.clone() };
    let result = s2cr::catalog::stage::SearchResult {
        s2_t0: vec![pick("S2A_T13TDE_20240402T174230_L2A")],
        s2_t1: vec![pick("S2A_T13TDE_20240412T175055_L2A")],
        s1: vec![s1.clone()],
        chosen_t0: Some("S2A_T13TDE_20240402T174230_L2A".into()),
        chosen_t1: Some("S2A_T13TDE_20240412T175055_L2A".into()),
        pairs: vec![pair],
        unpaired: vec![],
        t0_scenes: vec![],
        t1_scenes: vec![],
        // The catalog is served from loopback too (a catalog on the internet may not point at
        // this machine's addresses).
        provider: Some(provider(config.clone())),
        notes: vec![],
        composite_t0: None,
        composite_t1: None,
    };
    std::fs::write(dir.join("catalog/search.json"), serde_json::to_string(&result).unwrap()).unwrap();
    (dir, s1)
}

#[test]
fn the_fetch_stage_downloads_the_chosen_scenes_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    let server = CogServer::start(served.clone());
    let (dir, s1) = fetch_project(tmp.path(), &served, |band| format!("{}/{band}.tif", server.url), |config| s2cr::catalog::ProviderConfig { stac_url: server.url.clone(), ..config });
    let yaml = dir.join("project.yaml");
    let result: s2cr::catalog::stage::SearchResult = serde_json::from_str(&std::fs::read_to_string(dir.join("catalog/search.json")).unwrap()).unwrap();

    let fetch = || {
        let mut c = assert_cmd::cargo::cargo_bin_cmd!("s2cr");
        c.args(["--project", dir.to_str().unwrap(), "fetch", "--margin-m", "50"]);
        c
    };
    let out = String::from_utf8(fetch().assert().success().get_output().stdout.clone()).unwrap();
    assert!(out.contains("10 files (10 downloaded, 0 already there)"), "{out}");
    let vh = dir.join(format!("raw/2021-08-09/{}/VH.tif", s2cr::fsutil::safe_name(&s1.id)));
    assert_eq!(raster::info(vh.to_str().unwrap()).unwrap().bands[0].data_type, "Float32");
    assert!(out.contains("Fetched") && out.contains("MiB over the network for source files of"), "{out}");
    let b08 = dir.join("raw/2024-04-12/S2A_T13TDE_20240412T175055_L2A/B08.tif");
    let info = raster::info(b08.to_str().unwrap()).unwrap();
    assert_eq!(info.epsg, Some(32650));
    assert!(info.width > 35 && info.width < 45, "~300 m + 2 x 50 m at 10 m: {}", info.width);
    assert!(dir.join("raw/manifest.json").is_file());

    // Killed with SIGKILL at fixed moments (the server slowed down so that the kills land
    // mid-transfer), then run again: byte for byte the files of the uninterrupted fetch,
    // and no unfinished file left.
    let raw = dir.join("raw");
    let files_of = |root: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().unwrap() != "manifest.json" {
                    out.push((p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    };
    let uninterrupted = files_of(&raw);
    std::fs::remove_dir_all(&raw).unwrap();
    // Each ranged read waits 400 ms, so that one fetch takes seconds: the kills land mid-transfer
    // (at 60 ms a read, the first fetch finished before the first kill and the test tested nothing).
    server.faults.lock().unwrap().extend(std::iter::repeat_n(Fault::Slow(Duration::from_millis(400)), 1000));
    let bin = assert_cmd::cargo::cargo_bin!("s2cr");
    let mut landed = 0;
    for delay_ms in [300, 700, 1100, 1500, 1900] {
        let mut child = Command::new(bin).args(["--project", dir.to_str().unwrap(), "--quiet", "fetch", "--margin-m", "50"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            landed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(landed >= 1, "no kill landed while the fetch ran");
    // The killed fetches finished some files: the last one resumes, it does not start over.
    let kept = if raw.is_dir() { files_of(&raw).len() } else { 0 };
    assert!(kept >= 1, "{kept} of {} files done before the last fetch", uninterrupted.len());
    let done_before = crate::cli::mtimes(&raw);
    server.faults.lock().unwrap().clear();
    fetch().assert().success();
    let after = crate::cli::mtimes(&raw);
    for (file, when) in &done_before {
        if file.extension().is_some_and(|e| e == "tif") {
            assert_eq!(after.get(file), Some(when), "{} was done before the last fetch and fetched again", file.display());
        }
    }
    assert_eq!(files_of(&raw).iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), uninterrupted.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
    assert!(files_of(&raw) == uninterrupted, "the files differ from the uninterrupted fetch's");

    // Preprocess the S2 dates first (the radar at the end).
    let mut s2_only = result.clone();
    s2_only.pairs.clear();
    std::fs::write(dir.join("catalog/search.json"), serde_json::to_string(&s2_only).unwrap()).unwrap();
    let mut pre = assert_cmd::cargo::cargo_bin_cmd!("s2cr");
    let out = String::from_utf8(pre.args(["--project", dir.to_str().unwrap(), "preprocess"]).assert().success().get_output().stdout.clone()).unwrap();
    assert!(out.contains("S2 2024-04-02") && out.contains("S2 2024-04-12"), "{out}");
    let s2 = dir.join("preprocessed/2024-04-12/S2.tif");
    let info = raster::info(s2.to_str().unwrap()).unwrap();
    let project = s2cr::project::Project::open(&dir).unwrap();
    assert_eq!((info.width, info.height), (project.config.grid.width, project.config.grid.height));
    assert_eq!(info.geo_transform, project.config.grid.geo_transform());
    assert_eq!(info.bands.iter().map(|b| b.description.as_str()).collect::<Vec<_>>(), ["B02", "B04", "B08", "B12", "mask"]);
    // Reflectance = (DN - 1000) / 10000 (baseline 05.x, offset not applied by the provider),
    // checked at the grid centre against the DN warped by GDAL independently.
    let centre = raster::read_window(s2.to_str().unwrap(), &[3], Some(raster::PixelWindow { x_off: info.width / 2, y_off: info.height / 2, width: 1, height: 1 })).unwrap();
    let warped = dir.join("b08_check.tif");
    let g = &project.config.grid;
    let b = g.bounds();
    let status = Command::new("gdalwarp")
        .args(["-q", "-t_srs", &format!("EPSG:{}", g.epsg), "-tr", "10", "10", "-r", "bilinear", "-ot", "Float32", "-srcnodata", "0", "-te"])
        .args(b.iter().map(|v| v.to_string()))
        .arg(served.join("B08.tif"))
        .arg(&warped)
        .status()
        .unwrap();
    assert!(status.success());
    let dn = raster::read_window(warped.to_str().unwrap(), &[1], Some(raster::PixelWindow { x_off: info.width / 2, y_off: info.height / 2, width: 1, height: 1 })).unwrap();
    assert!((centre.bands[0][0] - (dn.bands[0][0] - 1000.0) / 10000.0).abs() < 1e-5, "{} vs DN {}", centre.bands[0][0], dn.bands[0][0]);
    assert!(dir.join("preprocessed/manifest.json").is_file());
    // Blocks of 7 rows give the same raster as one block.
    let whole = raster::read_window(s2.to_str().unwrap(), &[], None).unwrap();
    let mut pre = assert_cmd::cargo::cargo_bin_cmd!("s2cr");
    pre.args(["--project", dir.to_str().unwrap(), "preprocess", "--block-rows", "7"]).assert().success();
    let blocks = raster::read_window(s2.to_str().unwrap(), &[], None).unwrap();
    assert!(info.height > 14, "several blocks: {}", info.height);
    assert_eq!(blocks.bands, whole.bands);
    std::fs::write(dir.join("catalog/search.json"), serde_json::to_string(&result).unwrap()).unwrap();
    let mut pre = assert_cmd::cargo::cargo_bin_cmd!("s2cr");
    let out = String::from_utf8(pre.args(["--project", dir.to_str().unwrap(), "preprocess"]).assert().success().get_output().stdout.clone()).unwrap();
    assert!(out.contains("S1 2021-08-09") && out.contains("native RTC gamma0"), "{out}");
    assert!(out.contains("masked: no data") && out.contains("clear"), "mask counts reported: {out}");
    let s1_out = raster::read_window(dir.join("preprocessed/2021-08-09/S1.tif").to_str().unwrap(), &[], None).unwrap();
    assert_eq!(s1_out.bands.len(), 2);
    assert!(s1_out.bands[0].iter().filter(|v| v.is_finite()).all(|v| *v > -40.0 && *v < 10.0), "VV in dB");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("preprocessed/report.json")).unwrap()).unwrap();
    assert_eq!(report["outputs"].as_array().unwrap().len(), 3);
    // Up to date: a second run does nothing.
    let mut pre = assert_cmd::cargo::cargo_bin_cmd!("s2cr");
    pre.args(["--project", dir.to_str().unwrap(), "-v", "preprocess"]).assert().success().stderr(predicates::str::contains("up to date"));
    // The grid of project.yaml is a setting of the stage: moved by 60 m, the rasters are redone.
    let text = std::fs::read_to_string(&yaml).unwrap();
    let x_min: f64 = text.lines().find_map(|l| l.trim().strip_prefix("x_min:")).unwrap().trim().parse().unwrap();
    std::fs::write(&yaml, text.replace(&format!("x_min: {x_min:?}"), &format!("x_min: {:?}", x_min + 60.0))).unwrap();
    assert_ne!(std::fs::read_to_string(&yaml).unwrap(), text, "the grid moved");
    let mut pre = assert_cmd::cargo::cargo_bin_cmd!("s2cr");
    pre.args(["--project", dir.to_str().unwrap(), "-v", "preprocess"]).assert().success().stderr(predicates::str::contains("up to date").not());
    let moved = raster::info(s2.to_str().unwrap()).unwrap();
    assert_eq!(moved.geo_transform[0], x_min + 60.0);

    // Resume: only the missing file is fetched again.
    std::fs::remove_file(&b08).unwrap();
    server.reset_counters();
    let out = String::from_utf8(fetch().assert().success().get_output().stdout.clone()).unwrap();
    assert!(out.contains("10 files (1 downloaded, 9 already there)"), "{out}");
    assert!(b08.is_file());
}

#[test]
fn a_whole_file_download_resumes_after_a_cut_instead_of_starting_again() {
    let tmp = tempfile::tempdir().unwrap();
    let cog = big_cog(tmp.path());
    let size = std::fs::metadata(&cog).unwrap().len();
    let server = CogServer::start(tmp.path().to_path_buf());
    let dst = tmp.path().join("dl/B04-copy.tif");
    // An earlier run was interrupted after 1 MB; this run's first (ranged) transfer is cut
    // halfway too. Both must be resumed, not restarted.
    server.faults.lock().unwrap().push(Fault::CutMidBody);
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::write(format!("{}.partial", dst.display()), &std::fs::read(&cog).unwrap()[..1_000_000]).unwrap();
    server.reset_counters();
    let opts = FetchOptions { attempts: 4, backoff_ms: 20, timeout_secs: 5, margin_m: 0.0, parallel: 1 };
    let received = fetch::fetch_file(&format!("{}/B04.tif", server.url), &dst, &opts, None, &Progress::silent("fetch")).unwrap();
    assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&cog).unwrap(), "byte-identical");
    assert!(!PathBuf::from(format!("{}.partial", dst.display())).exists());
    let served = server.bytes_served.load(Ordering::SeqCst);
    assert_eq!(received, served);
    // 1 MB was there; after the cut the transfer resumed from where it broke.
    assert!(served < size, "served {served} for a {size}-byte file with 1 MB already there");
    assert_eq!(served, size - 1_000_000, "no byte sent twice");
}

/// The CDSE token reaches its provider's host only: through reqwest (whole files, and not
/// across a redirect to another host) and through GDAL (COG windows, path-specific options), and
/// no error or log line carries it.
#[test]
fn the_token_goes_only_to_its_providers_host() {
    use s2cr::catalog::sign::BearerToken;
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    big_cog(&files);
    let provider = CogServer::start(files.clone());
    let other = CogServer::start(files.clone());
    const TOKEN: &str = "s2cr-test-token-3f9a7c";
    let bearer = BearerToken::new(TOKEN, &provider.url);
    let (tx, rx) = std::sync::mpsc::channel();
    let progress = Progress::new("fetch", tx, Default::default());
    let opts = options();
    // reqwest: to the provider, to another host, and to the provider redirecting to the other.
    provider.redirects.lock().unwrap().push(("/moved.tif".into(), format!("{}/B04.tif", other.url)));
    for (url, name) in [(format!("{}/B04.tif", provider.url), "a"), (format!("{}/B04.tif", other.url), "b"), (format!("{}/moved.tif", provider.url), "c")] {
        fetch::fetch_file(&url, &tmp.path().join(format!("{name}.tif")), &opts, Some(&bearer), &progress).unwrap();
    }
    let err = fetch::fetch_file(&format!("{}/missing.tif", provider.url), &tmp.path().join("d.tif"), &opts, Some(&bearer), &progress).unwrap_err();
    assert!(!s2cr::error_chain(&err).contains(TOKEN));
    // GDAL: the guard of each URL, as the fetch stage takes it around a window read.
    let gdal = bearer.gdal_guard(&format!("{}/B04.tif", provider.url));
    match gdal {
        Ok(guard) => {
            assert!(guard.is_some());
            drop(guard);
            for server in [&provider, &other] {
                let url = format!("{}/B04.tif", server.url);
                let guard = bearer.gdal_guard(&url).unwrap();
                assert_eq!(guard.is_some(), std::ptr::eq(server, &provider));
                raster::read_window(&url, &[1], Some(raster::PixelWindow { x_off: 0, y_off: 0, width: 16, height: 16 })).unwrap();
                drop(guard);
            }
            let with_token = provider.seen.lock().unwrap().iter().filter(|(t, a)| t == "/B04.tif" && a.is_some()).count();
            assert!(with_token >= 2, "GDAL's reads of the provider carry the token");
        }
        Err(e) => crate::missing_tool(&format!("GDAL with HTTP (the token's GDAL half): {}", s2cr::error_chain(&e))),
    }
    let expected = format!("Bearer {TOKEN}");
    for (target, auth) in provider.seen.lock().unwrap().iter() {
        if target != "/missing.tif" || auth.is_some() {
            assert_eq!(auth.as_deref(), Some(expected.as_str()), "{target} on the provider's host");
        }
    }
    let seen_by_other = other.seen.lock().unwrap().clone();
    assert!(seen_by_other.len() >= 3, "{seen_by_other:?}");
    assert!(seen_by_other.iter().all(|(_, auth)| auth.is_none()), "another host got the token: {seen_by_other:?}");
    drop(progress);
    for event in rx.try_iter() {
        assert!(!format!("{event:?}").contains(TOKEN), "{event:?}");
    }
}

/// A whole `s2cr fetch` of a CDSE catalog with the token in the environment: every request to
/// the provider's host carries it and none to another host (assets there, and a redirect from
/// the provider to it, through GDAL's reads); neither the output, with debug logging, nor any
/// file of the project holds it.
#[test]
fn a_cdse_fetch_sends_the_token_only_to_the_providers_host_and_writes_it_nowhere() {
    use s2cr::catalog::{ProviderConfig, ProviderKind};
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    let provider = CogServer::start(served.clone());
    let other = CogServer::start(served.clone());
    // Sentinel-2 on the provider's host, B12 by a redirect to the other host; Sentinel-1 there.
    provider.redirects.lock().unwrap().push(("/moved/B12.tif".into(), format!("{}/B12.tif", other.url)));
    let href = |band: &str| match band {
        "VV" | "VH" => format!("{}/{band}.tif", other.url),
        "B12" => format!("{}/moved/B12.tif", provider.url),
        _ => format!("{}/{band}.tif", provider.url),
    };
    let (dir, _) = fetch_project(tmp.path(), &served, href, |config| ProviderConfig { kind: ProviderKind::Cdse, stac_url: provider.url.clone(), ..config });
    const TOKEN: &str = "s2cr-cdse-token-7d1e5b";
    let out = assert_cmd::cargo::cargo_bin_cmd!("s2cr")
        .env("CDSE_ACCESS_TOKEN", TOKEN)
        .args(["-vv", "--project", dir.to_str().unwrap(), "fetch", "--margin-m", "50"])
        .assert()
        .success()
        .get_output()
        .clone();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("10 files (10 downloaded"), "{printed}");
    assert!(!printed.contains(TOKEN), "the output holds the token");
    let bearer = format!("Bearer {TOKEN}");
    let to_provider = provider.seen.lock().unwrap().clone();
    assert!(to_provider.iter().any(|(t, _)| t == "/moved/B12.tif") && to_provider.len() >= 4, "{to_provider:?}");
    assert!(to_provider.iter().all(|(_, auth)| auth.as_deref() == Some(bearer.as_str())), "a request to the provider went without the token: {to_provider:?}");
    let to_other = other.seen.lock().unwrap().clone();
    for target in ["/B12.tif", "/VV.tif", "/VH.tif"] {
        assert!(to_other.iter().any(|(t, _)| t == target), "{target} was not read from the other host: {to_other:?}");
    }
    assert!(to_other.iter().all(|(_, auth)| auth.is_none()), "another host got the token: {to_other:?}");
    // Not one file of the project holds it.
    let mut stack = vec![dir.clone()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let bytes = std::fs::read(&p).unwrap();
                assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "{} holds the token", p.display());
            }
        }
    }
    assert!(files > 10, "{files} files in the project");
}

/// Planetary Computer's token endpoint answering 429 and 503 first: the signer waits and asks
/// again; a refusal (403) is not retried and says what to do.
#[test]
fn sas_token_requests_are_retried_on_rate_limits_and_server_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let server = CogServer::start(tmp.path().to_path_buf());
    server.token_faults.lock().unwrap().extend([429, 503]);
    let signer = s2cr::catalog::sign::PcSigner::new(&format!("{}/token", server.url), Duration::from_secs(5)).unwrap();
    let signed = signer.sign("https://example.blob.core.windows.net/c/B04.tif", "sentinel-2-l2a").unwrap();
    assert!(signed.ends_with("?st=2026-01-01&se=2026-01-02&sp=rl&sig=loopback"), "{signed}");
    assert_eq!(server.token_requests.load(Ordering::SeqCst), 3);
    server.token_faults.lock().unwrap().push(403);
    let err = signer.sign("https://example.blob.core.windows.net/c/B04.tif", "other-collection").unwrap_err();
    assert!(s2cr::error_chain(&err).contains("PC_SDK_SUBSCRIPTION_KEY"), "{err}");
    assert_eq!(server.token_requests.load(Ordering::SeqCst), 4);
}
