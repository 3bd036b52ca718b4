//! Scene search against a real STAC API shape on loopback, and parsing of every real captured
//! STAC response with each provider's band mapping.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use s2cr::catalog::search::{SearchQuery, StacClient};
use s2cr::catalog::{Mission, ProviderConfig, ProviderKind, Scene};
use s2cr::job::Progress;
use s2cr::project::DateRange;

use crate::shared_data;
use crate::stac_server::{Fault, StacServer};

fn fixture(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(shared_data().join("stac").join(path)).unwrap()).unwrap()
}

fn features(path: &str) -> Vec<Value> {
    let v = fixture(path);
    match v["features"].as_array() {
        Some(f) => f.clone(),
        None => vec![v],
    }
}

fn scenes(path: &str, kind: ProviderKind) -> Vec<Scene> {
    let config = ProviderConfig::default_for(kind);
    features(path)
        .iter()
        .map(|f| serde_json::from_value::<s2cr::catalog::item::Item>(f.clone()).unwrap_or_else(|e| panic!("{path}: {e}")))
        .filter_map(|item| Scene::from_item(&item, kind, &config))
        .collect()
}

const S2_PIPELINE: [&str; 8] = ["B02", "B03", "B04", "B08", "B8A", "B11", "B12", "SCL"];

#[test]
fn every_real_fixture_parses_with_its_providers_band_mapping() {
    // Earth Search v1: common-name asset keys; the mixed search also returns L1C, C1 and S1 HH.
    let es = scenes("pystac-client/earth-search-v1_search_s1grd_s2l2a_mixed.json", ProviderKind::EarthSearch);
    let s2: Vec<&Scene> = es.iter().filter(|s| s.mission == Mission::Sentinel2).collect();
    assert_eq!(s2.len(), 2, "only the sentinel-2-l2a items are Sentinel-2 L2A scenes");
    for s in &s2 {
        for band in S2_PIPELINE {
            assert!(s.assets.contains_key(band), "{} lacks {band}", s.id);
        }
        assert!(s.assets["B12"].ends_with("B12.tif"), "{}", s.assets["B12"]);
        assert_eq!(s.boa_offset_applied, Some(true));
        assert_eq!(s.processing_baseline.as_deref(), Some("05.11"));
        assert_eq!(s.mgrs_tile.as_deref().map(|t| t.len()), Some(5));
    }
    let s1: Vec<&Scene> = es.iter().filter(|s| s.mission == Mission::Sentinel1).collect();
    assert_eq!(s1.len(), 3);
    assert!(s1.iter().all(|s| s.polarisations() == ["HH"] && s.orbit_state.as_deref() == Some("ascending") && s.relative_orbit == Some(56)));
    let es2 = scenes("pystac-client/earth-search-v1_search_s2l2a_landsat.json", ProviderKind::EarthSearch);
    assert!(es2.iter().all(|s| S2_PIPELINE.iter().all(|b| s.assets[*b].ends_with(".tif"))), "COGs, not the -jp2 assets");
    // The aerosol optical thickness (the haze mask's band) under each provider's key.
    assert!(es2.iter().all(|s| s.assets.get("AOT").is_some_and(|h| h.ends_with("AOT.tif"))), "Earth Search's `aot`");

    // Planetary Computer: band-name keys.
    let pc = scenes("pystac-client/planetary-computer_search_sentinel-2-l2a.json", ProviderKind::PlanetaryComputer);
    assert_eq!(pc.len(), 33);
    assert!(pc.iter().all(|s| S2_PIPELINE.iter().all(|b| s.assets.contains_key(*b)) && s.cloud_cover.is_some()));
    assert!(pc.iter().all(|s| s.assets.contains_key("AOT")), "Planetary Computer's `AOT`");
    let odc = scenes("odc-stac/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json", ProviderKind::PlanetaryComputer);
    assert_eq!(odc.len(), 1);
    let page = scenes("rustac/crates_io_mocks_search-page-1.json", ProviderKind::PlanetaryComputer);
    assert_eq!(page.len(), 1);

    // The PC-style Sentinel-1 GRD item (stactools): VV and VH, orbit geometry.
    let grd = scenes("stactools-sentinel1/S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13.json", ProviderKind::PlanetaryComputer);
    assert_eq!(grd.len(), 1);
    assert_eq!(grd[0].mission, Mission::Sentinel1);
    assert_eq!(grd[0].polarisations(), ["VV", "VH"]);
    assert!(grd[0].relative_orbit.is_some() && grd[0].orbit_state.is_some());
    // Its calibration and noise tables, which the native engine needs for GRD.
    assert!(grd[0].is_grd());
    for key in ["calibration-VV", "noise-VV", "calibration-VH", "noise-VH"] {
        assert!(grd[0].assets.get(key).is_some_and(|h| h.ends_with(".xml")), "{key}: {:?}", grd[0].assets);
    }

    // Earth Search collection 1 items parse as STAC (their collection is not the L2A one we search).
    let c1 = features("rustac/crates_server_data_sentinel-2_item-collection_earth-search-c1.json");
    assert_eq!(c1.len(), 10);
    for f in c1 {
        serde_json::from_value::<s2cr::catalog::item::Item>(f).unwrap();
    }
}

fn pc_query(page_size: u32) -> SearchQuery {
    SearchQuery {
        collections: vec!["sentinel-2-l2a".into()],
        bbox: [170.0, 50.0, 180.0, 65.0],
        dates: "2019-01-01/2019-01-01".parse::<DateRange>().unwrap(),
        max_cloud_percent: None,
        page_size,
        max_items: 1000,
    }
}

fn client(server: &StacServer) -> StacClient {
    let mut c = StacClient::new(&server.url, Duration::from_secs(5)).unwrap();
    c.backoff = Duration::from_millis(10);
    c
}

#[test]
fn search_follows_next_links_through_every_page() {
    let items = features("pystac-client/planetary-computer_search_sentinel-2-l2a.json");
    let server = StacServer::start(items.clone());
    let found = client(&server).search(&pc_query(10), &Progress::silent("search")).unwrap();
    let expected: Vec<&Value> = items.iter().filter(|i| i["bbox"][0].as_f64().unwrap() <= 180.0 && i["bbox"][2].as_f64().unwrap() >= 170.0 && i["bbox"][1].as_f64().unwrap() <= 65.0 && i["bbox"][3].as_f64().unwrap() >= 50.0).collect();
    assert!(expected.len() > 10, "the query spans several pages");
    assert_eq!(found.len(), expected.len());
    assert_eq!(server.requests.load(Ordering::SeqCst), expected.len().div_ceil(10));
    // Every page repeats the original parameters next to the server's token.
    let bodies = server.bodies.lock().unwrap();
    assert!(bodies[1]["next"].is_string() && bodies[1]["collections"] == bodies[0]["collections"] && bodies[1]["bbox"] == bodies[0]["bbox"]);
}

#[test]
fn search_filters_by_cloud_cover_dates_and_area() {
    let items = features("pystac-client/planetary-computer_search_sentinel-2-l2a.json");
    let server = StacServer::start(items.clone());
    let mut q = pc_query(100);
    q.max_cloud_percent = Some(10.0);
    let found = client(&server).search(&q, &Progress::silent("search")).unwrap();
    let clear = items.iter().filter(|i| i["properties"]["eo:cloud_cover"].as_f64().unwrap() <= 10.0 && i["bbox"][0].as_f64().unwrap() <= 180.0 && i["bbox"][2].as_f64().unwrap() >= 170.0).count();
    assert_eq!(found.len(), clear);
    q.dates = "2019-01-02/2019-01-31".parse().unwrap();
    assert!(client(&server).search(&q, &Progress::silent("search")).unwrap().is_empty());
}

#[test]
fn search_retries_a_503_and_a_dropped_connection() {
    let server = StacServer::start(features("pystac-client/planetary-computer_search_sentinel-2-l2a.json"));
    server.faults.lock().unwrap().extend([Fault::Status(503), Fault::Drop]);
    let found = client(&server).search(&pc_query(100), &Progress::silent("search")).unwrap();
    assert!(!found.is_empty());
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
}

#[test]
fn a_failing_server_is_reported_with_url_and_status() {
    let server = StacServer::start(vec![]);
    server.faults.lock().unwrap().extend([Fault::Status(500); 4]);
    let err = client(&server).search(&pc_query(10), &Progress::silent("search")).unwrap_err().to_string();
    assert!(err.contains(&format!("{}/search", server.url)) && err.contains("HTTP 500"), "{err}");
    // A 400 is not retried: the request itself is wrong.
    let server = StacServer::start(vec![]);
    server.faults.lock().unwrap().extend([Fault::Status(400), Fault::Status(400)]);
    let err = client(&server).search(&pc_query(10), &Progress::silent("search")).unwrap_err().to_string();
    assert!(err.contains("HTTP 400"), "{err}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[test]
fn the_test_server_answers_in_the_shape_of_the_real_earth_search() {
    let real = fixture("pystac-client/earth-search-v1_search_s1grd_s2l2a_mixed.json");
    let items = real["features"].as_array().unwrap().clone();
    let ours = crate::stac_server::search(&items, &serde_json::json!({"limit": 4}), "http://127.0.0.1:1");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.retain(|k| k != "stac_extensions");
        k.sort();
        k
    };
    let mut real_keys = keys(&real);
    real_keys.retain(|k| k != "stac_extensions");
    assert_eq!(keys(&ours), real_keys);
    let next = |v: &Value| v["links"].as_array().unwrap().iter().find(|l| l["rel"] == "next").cloned().unwrap();
    let (a, b) = (next(&real), next(&ours));
    for field in ["method", "merge", "type"] {
        assert_eq!(a[field], b[field], "next link {field}");
    }
    assert!(a["body"]["next"].is_string() && b["body"]["next"].is_string());
    // Both parse as the same STAC type.
    serde_json::from_value::<s2cr::catalog::item::ItemCollection>(ours).unwrap();
    serde_json::from_value::<s2cr::catalog::item::ItemCollection>(real).unwrap();
}

#[test]
fn the_search_stage_on_earth_search_shaped_responses() {
    let items = features("pystac-client/earth-search-v1_search_s1grd_s2l2a_mixed.json");
    let server = StacServer::start(items);
    let tmp = tempfile::tempdir().unwrap();
    // Inside tile 20EPT (South Orkney Islands, 60.4 S), seen on 2025-07-31.
    let aoi = s2cr::aoi::Aoi::parse_geojson(r#"{"type":"Polygon","coordinates":[[[-59.7,-60.48],[-59.4,-60.48],[-59.4,-60.40],[-59.7,-60.40],[-59.7,-60.48]]]}"#, "aoi").unwrap();
    let config = s2cr::project::ProjectConfig {
        schema_version: s2cr::project::SCHEMA_VERSION,
        name: "es".into(),
        aoi: "aoi.geojson".into(),
        t0: "2025-07-25/2025-07-31".parse().unwrap(),
        t1: "2025-08-10/2025-08-31".parse().unwrap(),
        provider: s2cr::project::Provider::EarthSearch,
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
    let project = s2cr::project::Project::create(&tmp.path().join("p"), config, &aoi).unwrap();
    let mut provider = ProviderConfig::default_for(ProviderKind::EarthSearch);
    provider.stac_url = server.url.clone();
    let mut cfg = s2cr::catalog::stage::SearchConfig::new(provider);
    // The fixture's SCL assets are on the internet.
    cfg.measure_aoi_cover = false;
    let r = s2cr::catalog::stage::search(&project, &cfg, &Progress::silent("search")).unwrap();
    assert_eq!(r.s2_t0.len(), 1, "only the sentinel-2-l2a item of tile 20EPT: {:?}", r.s2_t0.iter().map(|s| &s.id).collect::<Vec<_>>());
    assert_eq!(r.chosen_t0.as_deref(), Some("S2B_20EPT_20250731_0_L2A"));
    assert_eq!(r.t0_scenes, ["S2B_20EPT_20250731_0_L2A"]);
    assert!(r.chosen_t1.is_none() && r.notes.iter().any(|n| n.starts_with("t1: no Sentinel-2 scene")), "{:?}", r.notes);
    let items: Value = serde_json::from_str(&std::fs::read_to_string(project.catalog_dir().join("items.json")).unwrap()).unwrap();
    assert!(!items["features"].as_array().unwrap().is_empty());
    // The Earth Search v0 item (odc-stac) parses too, with band-name keys under its own collection.
    let v0: s2cr::catalog::item::Item = serde_json::from_value(fixture("odc-stac/S2A_28QCH_20200714_0_L2A.json")).unwrap();
    assert_eq!(v0.collection.as_deref(), Some("sentinel-s2-l2a-cogs"));
}

#[test]
fn the_search_stage_searches_a_static_catalog_for_the_local_provider() {
    // A static catalog on disk (as stactools writes one) with two Sentinel-2 and two Sentinel-1
    // items over the SEN12MS-CR Jiangsu chip; the assets point at the real chips.
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("stac");
    let chip = |kind: &str| crate::shared_data().join(format!("s1s2-sen12mscr/{kind}/ROIs1970_fall_139_p839.tif")).display().to_string();
    let bbox = [119.17, 33.48, 119.21, 33.52];
    let item = |id: &str, collection: &str, datetime: &str, assets: serde_json::Value, extra: serde_json::Value| {
        let mut properties = serde_json::json!({"datetime": datetime, "platform": if collection.starts_with("sentinel-2") { "sentinel-2a" } else { "sentinel-1a" }});
        properties.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::json!({"type": "Feature", "stac_version": "1.0.0", "id": id, "collection": collection, "bbox": bbox,
            "geometry": {"type": "Polygon", "coordinates": [[[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]]]},
            "properties": properties, "links": [], "assets": assets})
    };
    let s2_assets = serde_json::json!({"B04": {"href": chip("s2_cloudfree")}});
    let s1_assets = serde_json::json!({"vv": {"href": chip("s1")}, "vh": {"href": chip("s1")}});
    let items = [
        ("s2/t0.json", item("S2_T0", "sentinel-2-l2a", "2024-04-01T03:00:00Z", s2_assets.clone(), serde_json::json!({"eo:cloud_cover": 2.0}))),
        ("s2/t1.json", item("S2_T1", "sentinel-2-l2a", "2024-04-15T03:00:00Z", s2_assets, serde_json::json!({"eo:cloud_cover": 4.0}))),
        ("s1/a.json", item("S1_A", "sentinel-1-rtc", "2024-03-31T10:00:00Z", s1_assets.clone(), serde_json::json!({"sat:relative_orbit": 69, "sat:orbit_state": "ascending"}))),
        ("s1/b.json", item("S1_B", "sentinel-1-rtc", "2024-04-12T10:00:00Z", s1_assets, serde_json::json!({"sat:relative_orbit": 69, "sat:orbit_state": "ascending"}))),
    ];
    let mut links = vec![];
    for (path, value) in &items {
        std::fs::create_dir_all(cat.join(path).parent().unwrap()).unwrap();
        std::fs::write(cat.join(path), value.to_string()).unwrap();
        links.push(serde_json::json!({"rel": "item", "href": format!("./{path}")}));
    }
    std::fs::write(cat.join("catalog.json"), serde_json::json!({"type": "Catalog", "id": "c", "stac_version": "1.0.0", "description": "d", "links": links}).to_string()).unwrap();

    let aoi = s2cr::aoi::Aoi::parse_geojson(r#"{"type":"Polygon","coordinates":[[[119.180,33.494],[119.194,33.494],[119.194,33.506],[119.180,33.506],[119.180,33.494]]]}"#, "aoi").unwrap();
    let mut config = s2cr::project::ProjectConfig::for_aoi("local", &aoi, "2024-03-30/2024-04-08".parse().unwrap(), "2024-04-10/2024-04-22".parse().unwrap(), s2cr::project::Provider::Local, 50.0, 10.0).unwrap();
    let project_dir = tmp.path().join("p");
    config.catalog = Some("../stac/catalog.json".into());
    let project = s2cr::project::Project::create(&project_dir, config, &aoi).unwrap();
    let provider = ProviderConfig::for_project(&project.config, project.root()).unwrap();
    assert_eq!(provider.kind, ProviderKind::Local);
    let mut cfg = s2cr::catalog::stage::SearchConfig::new(provider);
    cfg.measure_aoi_cover = false;
    let r = s2cr::catalog::stage::search(&project, &cfg, &s2cr::job::Progress::silent("search")).unwrap();
    assert_eq!((r.chosen_t0.as_deref(), r.chosen_t1.as_deref()), (Some("S2_T0"), Some("S2_T1")));
    let partners: Vec<(&str, &str)> = r.pairs.iter().map(|p| (p.s2_id.as_str(), p.s1_id.as_str())).collect();
    assert_eq!(partners, [("S2_T0", "S1_A"), ("S2_T1", "S1_B")]);
    // Asset hrefs are the files on disk.
    assert_eq!(r.s2_t0[0].assets["B04"], chip("s2_cloudfree"));
    // Without `catalog:` the provider says what is missing.
    let mut c = project.config.clone();
    c.catalog = None;
    let err = ProviderConfig::for_project(&c, project.root()).unwrap_err().to_string();
    assert!(err.contains("catalog"), "{err}");
}

/// A hostile or broken STAC API: malformed JSON, wrong types, a 10 GB announced body; items with
/// `../` ids and hrefs to local files or this machine. Each ends in a clear error or a refusal
/// naming what is wrong, nothing panics, and nothing would be read or written outside the
/// project.
#[test]
fn a_hostile_catalog_ends_in_clear_errors() {
    let server = StacServer::start(vec![]);
    for (fault, expected) in [
        (Fault::Body("{not json"), "not JSON"),
        (Fault::Body(r#"{"type":"FeatureCollection","features":[{"type":"Feature","id":5,"assets":"x"}]}"#), "not a STAC ItemCollection"),
        (Fault::Body(r#"[1, 2, 3]"#), "not a STAC ItemCollection"),
        (Fault::HugeLength, "more than the"),
    ] {
        server.faults.lock().unwrap().push(fault);
        let err = client(&server).search(&pc_query(10), &Progress::silent("search")).unwrap_err();
        let text = s2cr::error_chain(&err);
        assert!(text.contains(expected) && text.contains(&server.url), "{fault:?}: {text}");
    }
    // Items that try to leave the project or read this machine.
    let mut item = features("pystac-client/planetary-computer_search_sentinel-2-l2a.json").remove(0);
    item["id"] = "../../../../etc/cron.d/x".into();
    let provider = ProviderConfig::default_for(ProviderKind::PlanetaryComputer);
    let scene = Scene::from_item(&serde_json::from_value(item).unwrap(), ProviderKind::PlanetaryComputer, &provider).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("p");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("project.yaml"),
        "schema_version: 1\nname: p\naoi: aoi.geojson\nt0: 2019-11-01/2019-12-31\nt1: 2020-01-10/2020-02-28\n\
         grid:\n  epsg: 32753\n  pixel_size_m: 10.0\n  x_min: 600000.0\n  y_max: 6040020.0\n  width: 100\n  height: 80\n",
    )
    .unwrap();
    let project = s2cr::project::Project::open(&root).unwrap();
    let folder = project.raw_scene_dir(&scene.datetime, &scene.id);
    let root = project.root().to_path_buf();
    assert!(folder.starts_with(root.join("raw")), "{}", folder.display());
    assert!(!folder.components().any(|c| c == std::path::Component::ParentDir), "one plain folder: {}", folder.display());
    assert_eq!(folder.parent().and_then(|p| p.parent()), Some(root.join("raw").as_path()));
    for href in ["file:///etc/passwd", "/vsicurl/http://169.254.169.254/latest", "http://127.0.0.1:22/", "http://169.254.169.254/latest/meta-data"] {
        let why = s2cr::catalog::check_href(&provider, href).unwrap_err();
        assert!(why.contains("refusing") || why.contains("not an http(s) URL"), "{href}: {why}");
    }
}

/// A second demo-like project from the other real SEN12MS-CR patch (Belgium, winter, EPSG:32631)
/// with the same simulated burn, built by `build-demo-assets --patch` and run through every stage:
/// its own items are chosen, the report's notes name its patch, its grid is in its UTM zone; a
/// project made from one catalog does not resume with another, and a folder that is no catalog
/// is refused with what to do.
#[test]
fn a_second_demo_from_another_sen12mscr_patch_runs_end_to_end() {
    use s2cr::tools::demo_assets::{Patch, build_assets};
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat797");
    let patch = Patch::new("ROIs2017_winter_112_p797").unwrap();
    let built = build_assets(&crate::shared_data().join("s1s2-sen12mscr"), &patch, &cat).unwrap();
    assert_eq!(built.files.len(), 25, "7 bands and SCL at t0 and t1, VV and VH twice, 4 items, 2 collections, the catalog, the AOI and the generated plots");
    let plots = std::fs::read_to_string(cat.join(s2cr::demo::PLOTS_FILE)).unwrap();
    assert!(plots.starts_with("id,lon,lat,CBI\ngenerated-1,") && plots.lines().count() > 30, "{plots}");
    assert_eq!((built.scar_pixels, built.scar_clear_pixels), (7467, 7467));
    let aoi = std::fs::read_to_string(cat.join("aoi.geojson")).unwrap();
    assert!(aoi.contains("ROIs2017_winter_112_p797 (Belgium)"), "{aoi}");

    let dir = tmp.path().join("demo");
    let project = crate::demo_from_after_pipeline(&dir, Some(&cat), 2);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("outputs/demo/assess/report.json")).unwrap()).unwrap();
    assert!(report["crs_wkt"].as_str().unwrap().contains("\"EPSG\",\"32631\""), "the patch's UTM zone 31N");
    assert!(report["plots"]["fits"].as_array().is_some_and(|f| f.len() == 12), "the catalog's generated plots fitted: {}", report["plots"]);
    let html = std::fs::read_to_string(project.report_html(&s2cr::demo::run_name())).unwrap();
    assert!(html.contains("sen12mscr-p797-s2-cloudy-simulated-burn") && html.contains("SEN12MS-CR patch ROIs2017_winter_112_p797"), "the report names the second patch's items and simulation");
    assert!(!html.contains("p839"), "nothing of the embedded demo's patch");

    // Resumes with the same catalog; not with the embedded one.
    s2cr::demo::create_project_from(&dir, Some(&cat)).unwrap();
    let e = s2cr::demo::create_project(&dir).unwrap_err().to_string();
    assert!(e.contains("another catalog") && e.contains("--catalog"), "{e}");
    let e = s2cr::demo::create_project_from(&tmp.path().join("other"), Some(tmp.path())).unwrap_err().to_string();
    assert!(e.contains("catalog.json") && e.contains("build-demo-assets --patch"), "{e}");
}
