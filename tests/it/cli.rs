//! The `s2cr` command line, run as a user would (assert_cmd).

use gdal::Dataset;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

use crate::example_aoi;

fn s2cr() -> Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("s2cr");
    cmd.env_remove("S2CR_LOG");
    cmd
}

fn init_example(dir: &Path) {
    s2cr()
        .args(["init", dir.to_str().unwrap(), "--aoi", example_aoi().to_str().unwrap()])
        .args(["--t0", "2019-11-01/2019-12-15", "--t1", "2020-01-15/2020-02-28"])
        .assert()
        .success()
        .stdout(predicate::str::contains("grid EPSG:32753 at 10 m"));
}

#[test]
fn init_then_info_shows_every_stage_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ki-west");
    init_example(&dir);
    for sub in ["catalog", "raw", "preprocessed", "dataset", "runs", "outputs"] {
        assert!(dir.join(sub).is_dir(), "{sub}/ missing");
    }
    assert!(dir.join("aoi.geojson").is_file());
    let out = s2cr().args(["info", dir.to_str().unwrap()]).assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Project   ki-west"), "{text}");
    assert!(text.contains("t0 2019-11-01/2019-12-15   t1 2020-01-15/2020-02-28"), "{text}");
    assert!(text.contains("Grid      EPSG:32753, 10 m"), "{text}");
    for stage in ["search", "fetch", "preprocess", "dataset", "train", "infer", "assess", "export"] {
        assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [stage, "missing"]), "{stage}: {text}");
    }
    // --project works the same, and a second init refuses to overwrite.
    s2cr().args(["--project", dir.to_str().unwrap(), "info"]).assert().success();
    s2cr()
        .args(["init", dir.to_str().unwrap(), "--aoi", example_aoi().to_str().unwrap()])
        .args(["--t0", "2019-11-01/2019-12-15", "--t1", "2020-01-15/2020-02-28"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("a project already exists here"));
}

#[test]
fn info_reports_a_done_stage_and_then_a_stale_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    init_example(&dir);
    let project = s2cr::project::Project::open(&dir).unwrap();
    std::fs::write(dir.join("catalog/items.json"), "[]").unwrap();
    let mut m = s2cr::project::Manifest::new(s2cr::project::Stage::Search, project.stage_parameters(s2cr::project::Stage::Search, serde_json::json!({"max_cloud": 20})));
    m.add_input(project.root(), Path::new("aoi.geojson")).unwrap();
    m.add_output(project.root(), Path::new("catalog/items.json")).unwrap();
    m.save(&project.manifest_path(s2cr::project::Stage::Search, None)).unwrap();
    s2cr().args(["info", dir.to_str().unwrap()]).assert().success().stdout(predicate::str::is_match(r"search +done").unwrap());
    std::fs::write(dir.join("catalog/items.json"), "[1]").unwrap();
    s2cr()
        .args(["info", dir.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("stale (output catalog/items.json changed size)"));
}

#[test]
fn a_yaml_typo_is_reported_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    init_example(&dir);
    let file = dir.join("project.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().position(|l| l.starts_with("max_cloud_percent")).unwrap() + 1;
    std::fs::write(&file, text.replace("max_cloud_percent", "max_cloud_precent")).unwrap();
    s2cr()
        .args(["info", dir.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("project.yaml: line {line}, column 1: unknown field `max_cloud_precent`")));
}

#[test]
fn aoi_convert_round_trips_geojson_and_wkt() {
    let tmp = tempfile::tempdir().unwrap();
    let wkt = tmp.path().join("zone_wkt.txt");
    let back = tmp.path().join("zone.geojson");
    s2cr().args(["aoi", "convert", "--input", example_aoi().to_str().unwrap(), "--output", wkt.to_str().unwrap()]).assert().success();
    let text = std::fs::read_to_string(&wkt).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with("POLYGON ((136.56 -35.93, 136.65 -36.06,"), "{text}");
    s2cr().args(["aoi", "convert", "-i", wkt.to_str().unwrap(), "-o", back.to_str().unwrap()]).assert().success();
    let a = s2cr::aoi::Aoi::load(&example_aoi(), &Default::default()).unwrap();
    let b = s2cr::aoi::Aoi::load(&back, &Default::default()).unwrap();
    assert_eq!(a.geometry(), b.geometry());
    s2cr()
        .args(["aoi", "info", example_aoi().to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("UTM        EPSG:32753"));
}

#[test]
fn bad_aois_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let cases = [
        (write("syntax.geojson", r#"{"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0]]"#), "invalid GeoJSON"),
        (write("bowtie.geojson", r#"{"type":"Polygon","coordinates":[[[136.6,-35.9],[136.7,-35.8],[136.7,-35.9],[136.6,-35.8],[136.6,-35.9]]]}"#), "self-intersection"),
        (write("huge.geojson", r#"{"type":"Polygon","coordinates":[[[130,-30],[135,-30],[135,-25],[130,-25],[130,-30]]]}"#), "over the limit of 10000 km2"),
        (write("open.wkt", "POLYGON ((0 0, 1 0, 1 1, 0 1))"), "is not closed"),
        (write("empty.wkt", "\n"), "invalid WKT: the file is empty"),
    ];
    for (file, expected) in cases {
        let out = s2cr().args(["aoi", "validate", &file]).assert().code(1).get_output().stderr.clone();
        let err = String::from_utf8(out).unwrap();
        assert!(err.starts_with("error: ") && err.contains(&file) && err.contains(expected), "{file}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    // The limit is configurable.
    s2cr().args(["aoi", "validate", &tmp.path().join("huge.geojson").to_string_lossy(), "--max-area-km2", "500000"]).assert().success();
}

#[test]
fn bad_dates_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    s2cr()
        .args(["init", tmp.path().join("p").to_str().unwrap(), "--aoi", example_aoi().to_str().unwrap()])
        .args(["--t0", "2019-11-01/2019-12-15", "--t1", "2019-12-01/2020-02-28"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("must start after t0"));
    s2cr()
        .args(["init", tmp.path().join("p").to_str().unwrap(), "--aoi", example_aoi().to_str().unwrap()])
        .args(["--t0", "2019-11-01", "--t1", "2020-01-01/2020-02-28"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--t0: '2019-11-01' is not a date range"));
    assert!(!tmp.path().join("p").exists(), "nothing is created when the arguments are wrong");
}

#[test]
fn raster_info_and_an_unreadable_tiff() {
    s2cr()
        .args(["raster", "info", &crate::bigearthnet_s2("B11")])
        .assert()
        .success()
        .stdout(predicate::str::contains("60 x 60 pixels, 1 band(s)").and(predicate::str::contains("EPSG:32633")));
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("corrupt.tif");
    std::fs::write(&bad, vec![0u8; 1000]).unwrap();
    s2cr()
        .args(["raster", "info", bad.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("corrupt.tif: opening the raster"));
}

#[test]
fn info_outside_a_project_says_how_to_make_one() {
    let tmp = tempfile::tempdir().unwrap();
    s2cr().current_dir(tmp.path()).arg("info").assert().code(1).stderr(predicate::str::contains("create a project with `s2cr init`"));
}

#[test]
fn assess_in_a_project_writes_a_manifest_and_skips_when_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    init_example(&dir);
    let chip = |kind: &str| crate::shared_data().join(format!("s1s2-sen12mscr/{kind}/ROIs2017_winter_112_p797.tif"));
    let order = "B01,B02,B03,B04,B05,B06,B07,B08,B8A,B09,B10,B11,B12";
    let run = || {
        let mut cmd = s2cr();
        cmd.args(["--project", dir.to_str().unwrap(), "assess", "--run", "r1", "--band-order", order, "--scale", "0.0001"])
            .arg("--pre")
            .arg(chip("s2_cloudfree"))
            .arg("--real")
            .arg(chip("s2_cloudfree"))
            .arg("--synthetic")
            .arg(chip("s2_cloudy"));
        cmd
    };
    run().assert().success().stdout(predicate::str::contains("Burned area   real 0.000 ha"));
    assert!(dir.join("outputs/r1/manifest-assess.json").is_file());
    assert!(dir.join("outputs/r1/assess/report.html").is_file());
    run().assert().success().stderr(predicate::str::contains("up to date"));
    s2cr().args(["info", dir.to_str().unwrap()]).assert().success().stdout(predicate::str::is_match(r"assess \[r1\] +done").unwrap());
    // Files on different grids are refused with the remedy.
    s2cr()
        .args(["assess", "--out", tmp.path().join("x").to_str().unwrap(), "--band-order", order])
        .arg("--pre")
        .arg(chip("s2_cloudfree"))
        .arg("--real")
        .arg(crate::shared_data().join("s1s2-sen12mscr/s2_cloudfree/ROIs1970_fall_139_p839.tif"))
        .arg("--synthetic")
        .arg(chip("s2_cloudy"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("warp it onto the project grid first"));
}

#[test]
fn search_against_a_loopback_stac_api_writes_the_catalog() {
    let text = std::fs::read_to_string(crate::shared_data().join("stac/pystac-client/planetary-computer_search_sentinel-2-l2a.json")).unwrap();
    let items: Vec<serde_json::Value> = serde_json::from_str::<serde_json::Value>(&text).unwrap()["features"].as_array().unwrap().clone();
    let server = crate::stac_server::StacServer::start(items);
    let tmp = tempfile::tempdir().unwrap();
    let aoi = tmp.path().join("aoi.geojson");
    std::fs::write(&aoi, r#"{"type":"Polygon","coordinates":[[[173.6,57.7],[174.0,57.7],[174.0,58.0],[173.6,58.0],[173.6,57.7]]]}"#).unwrap();
    let dir = tmp.path().join("p");
    s2cr()
        .args(["init", dir.to_str().unwrap(), "--aoi", aoi.to_str().unwrap(), "--provider", "planetary-computer", "--max-cloud", "100"])
        .args(["--t0", "2018-12-20/2019-01-05", "--t1", "2019-02-01/2019-02-28"])
        .assert()
        .success();
    let search = || {
        let mut c = s2cr();
        // The fixture's assets are on the internet: no SCL reads, and a loopback token endpoint.
        c.args(["--project", dir.to_str().unwrap(), "search", "--stac-url", &server.url, "--skip-aoi-cloud"]);
        c.args(["--token-url", &format!("{}/token", server.url)]);
        c
    };
    let out = search().assert().success().get_output().stdout.clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("No choice for t1: no Sentinel-2 scene in the date range"), "{out}");
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("catalog/search.json")).unwrap()).unwrap();
    let t0 = result["s2_t0"].as_array().unwrap();
    assert!(!t0.is_empty());
    // The clearest candidate is chosen.
    let min_cloud = t0.iter().map(|s| s["cloud_cover"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    let chosen = t0.iter().find(|s| s["id"] == result["chosen_t0"]).unwrap();
    assert_eq!(chosen["cloud_cover"].as_f64().unwrap(), min_cloud);
    assert!(chosen["assets"]["SCL"].as_str().unwrap().ends_with("SCL_20m.tif"));
    assert!(out.contains("t0*   "), "{out}");
    let requests = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    search().assert().success().stderr(predicate::str::contains("up to date"));
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), requests, "an up-to-date catalog asks nothing");
    s2cr().args(["info", dir.to_str().unwrap()]).assert().success().stdout(predicate::str::is_match(r"search +done").unwrap());
    // A setting of project.yaml that the search reads makes the catalog stale.
    let yaml = dir.join("project.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    assert!(text.contains("max_cloud_percent: 100"), "{text}");
    std::fs::write(&yaml, text.replace("max_cloud_percent: 100", "max_cloud_percent: 50")).unwrap();
    search().assert().success().stderr(predicate::str::contains("up to date").not());
    assert!(server.requests.load(std::sync::atomic::Ordering::SeqCst) > requests, "the search ran again");
}

#[test]
fn bench_prints_throughput_against_its_baseline() {
    s2cr()
        .args(["bench", "--size", "96"])
        .assert()
        .success()
        .stdout(predicate::str::contains("boxcar 7x7 (baseline)").and(predicate::str::contains("Refined Lee 7x7")).and(predicate::str::contains("Mpixel/s")));
}

#[test]
fn the_preprocess_stage_benchmark_runs_on_generated_scenes_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    s2cr()
        .args(["bench", "--what", "preprocess", "--size", "300", "--dir", tmp.path().to_str().unwrap()])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("preprocess stage, 300 x 300 grid")
                .and(predicate::str::contains("peak RSS"))
                .and(predicate::str::is_match(r"S2 2024-02-05 +(8|9)\d\.\d % usable").unwrap())
                .and(predicate::str::contains("S1 2024-02-04 100.0 % usable")),
        );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "the generated project is removed");
}

#[test]
fn the_loader_benchmark_compares_with_plain_reads() {
    let tmp = tempfile::tempdir().unwrap();
    s2cr()
        .args(["bench", "--what", "loader", "--size", "512", "--dir", tmp.path().to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("4 patches of 256 x 256 px, 10 input + 6 output channels").and(predicate::str::contains("baseline: GDAL window reads")).and(predicate::str::contains("2 workers")));
}

#[test]
fn the_model_benchmark_prints_inference_and_training_times() {
    s2cr()
        .args(["bench", "--what", "model", "--size", "32", "--no-gpu"])
        .assert()
        .success()
        .stdout(predicate::str::contains("pix2pix unet_256 (ngf 64, depth 5)").and(predicate::str::contains("CPU (Burn flex, 2 threads), Burn's convolutions").or(predicate::str::contains("Burn's convolutions"))).and(predicate::str::contains("s/train step")).and(predicate::str::contains("--compare-pytorch")).and(predicate::str::contains("ours")).and(predicate::str::contains("transposed convolutions")));
}

#[test]
fn the_model_benchmark_compares_with_pytorch_in_the_same_run_or_says_what_is_missing() {
    // No Python with torch: a clear error that names the fix, before anything is measured.
    s2cr()
        .env("S2CR_PYTHON", "/nonexistent/python3")
        .args(["bench", "--what", "model", "--size", "32", "--compare-pytorch", "--rounds", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot run /nonexistent/python3").and(predicate::str::contains("requirements-bench.txt")));
    // --model names known models, and only where models are measured.
    s2cr().args(["bench", "--what", "model", "--model", "resnet"]).assert().code(1).stderr(predicate::str::contains("unknown model \"resnet\": use unet_256 or small"));
    s2cr().args(["bench", "--what", "filters", "--model", "small"]).assert().code(1).stderr(predicate::str::contains("leave it out for --what filters"));
    let python = std::env::var("S2CR_PYTHON").unwrap_or_else(|_| "python3".into());
    let torch = std::process::Command::new(&python).args(["-c", "import torch"]).status().is_ok_and(|s| s.success());
    if !torch {
        crate::missing_tool(&format!("{python} cannot import torch for the comparison itself (.ci/run installs scripts/requirements-bench.txt and sets S2CR_PYTHON)"));
        return;
    }
    s2cr()
        .env("S2CR_PYTHON", &python)
        .args(["bench", "--what", "model", "--size", "32", "--compare-pytorch", "--rounds", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("median of 2 rounds").and(predicate::str::contains("pix2pix unet_256 (ngf 64, depth 5)")).and(predicate::str::contains("small (ngf 16, ndf 16, depth 5)")).and(predicate::str::contains("train step (s)")).and(predicate::str::contains("ratio")));
}

/// `s2cr-model-bench`, the GDAL-free benchmark carried to GPU machines: real figures for each
/// device it can use, and a device this build or machine lacks is skipped with the reason.
#[test]
fn the_standalone_model_benchmark_measures_each_device_and_skips_missing_ones() {
    let out = assert_cmd::cargo::cargo_bin_cmd!("s2cr-model-bench").args(["--size", "32", "--repeats", "1", "--device", "cpu", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r["model"].as_str().unwrap()).collect::<Vec<_>>(), ["unet_256", "small"]);
    for r in &rows {
        assert!(r["device"].as_str().unwrap().starts_with("CPU (Burn flex"), "{r}");
        assert!(r["infer_ms"].as_f64().unwrap() > 0.0 && r["train_step_s"].as_f64().unwrap() > 0.0, "{r}");
    }
    // One model only.
    let out = assert_cmd::cargo::cargo_bin_cmd!("s2cr-model-bench").args(["--size", "32", "--repeats", "1", "--device", "cpu", "--json", "--model", "small"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let models: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["model"].as_str().unwrap().to_string()).collect();
    assert_eq!(models, ["small"]);
    let (rocm_build, why) = (cfg!(feature = "rocm"), "this build has no ROCm backend");
    if rocm_build {
        println!("skipped the missing-device check: this build has the rocm feature");
        return;
    }
    assert_cmd::cargo::cargo_bin_cmd!("s2cr-model-bench")
        .args(["--size", "32", "--device", "rocm"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(why).and(predicate::str::contains("none of the devices asked for (rocm) is available")));
    assert_cmd::cargo::cargo_bin_cmd!("s2cr-model-bench").args(["--size", "30", "--device", "cpu"]).assert().code(1).stderr(predicate::str::contains("--size"));
}

/// The embedded demo end to end, with a tiny training run: every stage leaves its manifest, the
/// report has every section and says the burn is simulated (and how), a second run finds the
/// stages up to date, and a folder holding something else is refused.
#[test]
fn the_demo_runs_every_stage_and_says_its_burn_is_simulated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    // A relative folder, as `make run` gives it.
    let out = s2cr()
        .current_dir(tmp.path())
        .args(["demo", "demo", "--no-gui", "--max-steps", "4", "--device", "cpu"])
        .assert()
        .success()
        .stdout(predicate::str::contains("SIMULATED"))
        .stdout(predicate::str::contains("Contains modified Copernicus Sentinel data 2018"))
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("chosen t0 sen12mscr-p839-s2-cloudfree, t1 sen12mscr-p839-s2-cloudy-simulated-burn"), "{out}");
    assert!(out.contains("4 steps on CPU"), "{out}");
    let project = s2cr::project::Project::open(&dir).unwrap();
    for stage in s2cr::project::Stage::ALL.into_iter().filter(|s| *s != s2cr::project::Stage::Export) {
        let manifest = project.manifest_path(stage, Some(&s2cr::demo::run_name()));
        assert!(manifest.is_file(), "{stage}: no manifest at {}", manifest.display());
    }
    let assess = project.assess_dir(&s2cr::demo::run_name());
    let html = std::fs::read_to_string(assess.join("report.html")).unwrap();
    for section in ["id=\"simulated\"", "id=\"inputs\"", "id=\"agreement\"", "id=\"areas\"", "id=\"quality\"", "id=\"figures\"", "id=\"files\""] {
        assert!(html.contains(section), "report.html lacks {section}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(assess.join("report.json")).unwrap()).unwrap();
    let note = report["config"]["simulated_burn"].as_str().unwrap();
    for words in ["sen12mscr-p839-s2-cloudy-simulated-burn: SIMULATED", "sen12mscr-p839-s1-simulated-burn: SIMULATED", "B08 0.45", "VH -3 dB", "Key & Benson 2006", "Tanase et al. 2010"] {
        assert!(note.contains(words), "the note lacks {words:?}: {note}");
    }
    // Real pixels only where t1 is clear: fewer than the grid's.
    let (w, h) = (project.config.grid.width as u64, project.config.grid.height as u64);
    let compared = report["burned"]["pixels"].as_u64().unwrap();
    assert!(compared > w * h / 5 && compared < w * h * 3 / 4, "{compared} of {} pixels compared", w * h);
    assert!(report["burned"]["burned_ha_real"].as_f64().unwrap() > 5.0, "the simulated scar burns in the real map");
    // Training is deterministic (seeded, no loader threads): the numbers are pinned, to the
    // digits that held with 1, 2 and 5 compute threads (the model of 4 steps is no good yet:
    // kappa about 0 is what it should give). A change of defaults re-pins them here. The dNBR
    // offset (on by default) is the real map's mean over its 11340 unburned ring pixels: the
    // demo's fields green up between the dates (without it the real map burns 14.77 ha).
    let b = &report["burned"];
    let near = |v: &serde_json::Value, want: f64, tol: f64, what: &str| assert!((v.as_f64().unwrap() - want).abs() <= tol, "{what}: {v} (pinned {want} ± {tol})");
    assert_eq!(b["pixels"], 15302);
    assert_eq!(report["dnbr_offset"]["pixels"], 11340);
    near(&report["dnbr_offset"]["real"], -0.39378, 1e-5, "the real map's offset");
    near(&b["burned_ha_real"], 54.4, 1e-9, "burned ha, real");
    near(&b["burned_ha_synthetic"], 62.83, 0.5, "burned ha, synthetic");
    near(&b["kappa"], 0.0006, 5e-3, "kappa");
    near(&b["f1"], 0.3815, 5e-3, "F1");
    near(&report["held_out"]["burned"]["kappa"], -0.0106, 5e-3, "held-out kappa");

    let again = s2cr().args(["demo", dir.to_str().unwrap(), "--no-gui", "--max-steps", "4", "--device", "cpu"]).assert().success().get_output().stdout.clone();
    let again = String::from_utf8_lossy(&again);
    assert!(again.contains("train       up to date") && again.contains("infer       up to date"), "{again}");

    // `s2cr assess` is the pipeline's Assess stage: assessed anew by the command, the report keeps
    // the SIMULATED notice and the held-out section, and `s2cr run` then finds it up to date.
    std::fs::remove_dir_all(&assess).unwrap();
    let by_command = s2cr().args(["--project", dir.to_str().unwrap(), "assess", "--run", "demo"]).assert().success().get_output().stdout.clone();
    let by_command = String::from_utf8_lossy(&by_command);
    assert!(by_command.contains("SIMULATED") && by_command.contains("Held out"), "{by_command}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(assess.join("report.json")).unwrap()).unwrap();
    assert!(report["config"]["simulated_burn"].as_str().unwrap().contains("SIMULATED"));
    assert!(report["held_out"]["burned"]["kappa"].is_number(), "{}", report["held_out"]);
    let html = std::fs::read_to_string(assess.join("report.html")).unwrap();
    assert!(html.contains("id=\"simulated\"") && html.contains("id=\"held-out\""), "report.html lacks the simulated or held-out section");
    // `s2cr run` reads the project's own files: train.yaml says the 4 steps the demo was given.
    let train_yaml = dir.join("train.yaml");
    let text = std::fs::read_to_string(&train_yaml).unwrap();
    let text: String = text.lines().map(|l| if l.starts_with("max_steps:") { "max_steps: 4\n".to_string() } else { format!("{l}\n") }).collect();
    std::fs::write(&train_yaml, text).unwrap();
    // ... and pipeline.yaml the device (a setting of inference too).
    let pipeline_yaml = dir.join("pipeline.yaml");
    let text = std::fs::read_to_string(&pipeline_yaml).unwrap();
    let mut text: String = text.lines().filter(|l| !l.starts_with("device:")).map(|l| format!("{l}\n")).collect();
    text.push_str("device: cpu\n");
    std::fs::write(&pipeline_yaml, text).unwrap();
    let run = s2cr().args(["--project", dir.to_str().unwrap(), "run"]).assert().success().get_output().stdout.clone();
    let run = String::from_utf8_lossy(&run);
    assert!(run.contains("assess      up to date") && run.contains("(SIMULATED burn)"), "{run}");
    s2cr().args(["info", dir.to_str().unwrap()]).assert().success().stdout(predicate::str::is_match(r"assess \[demo\] +done").unwrap());
    // Every project.yaml setting a stage reads makes that stage and every later one stale.
    let project_yaml = dir.join("project.yaml");
    let original = std::fs::read_to_string(&project_yaml).unwrap();
    use s2cr::project::{Stage, StageState};
    let states = || s2cr::project::Project::open(&dir).unwrap().status().unwrap().into_iter().filter(|s| s.stage != Stage::Export).map(|s| (s.stage, s.state)).collect::<Vec<_>>();
    assert!(states().iter().all(|(_, state)| *state == StageState::Done), "{:?}", states());
    let edits: [(&str, &str, &str, Stage); 9] = [
        ("t0", "t0: 2018-09-01/2018-09-30", "t0: 2018-09-01/2018-09-29", Stage::Search),
        ("t1", "t1: 2018-10-20/2018-11-20", "t1: 2018-10-20/2018-11-21", Stage::Search),
        ("max_cloud_percent", "max_cloud_percent: 60.0", "max_cloud_percent: 70.0", Stage::Search),
        ("aoi", "aoi: aoi.geojson", "aoi: ./aoi.geojson", Stage::Search),
        ("provider", "provider: local", "provider: earth-search", Stage::Search),
        ("catalog", "catalog: demo-stac/catalog.json", "catalog: ./demo-stac/catalog.json", Stage::Search),
        ("collections", "s1: sentinel-1-sigma0", "s1: sentinel-1-grd", Stage::Search),
        ("bands", "  - B8A\n", "", Stage::Search),
        ("grid", "x_min: 702000.0", "x_min: 702060.0", Stage::Preprocess),
    ];
    for (field, from, to, first) in edits {
        assert!(original.contains(from), "project.yaml lacks {from:?}");
        std::fs::write(&project_yaml, original.replacen(from, to, 1)).unwrap();
        let got = states();
        let at = got.iter().position(|(stage, _)| *stage == first).unwrap();
        for (i, (stage, state)) in got.iter().enumerate() {
            match state {
                StageState::Done => assert!(i < at, "{field}: {stage} is still done: {got:?}"),
                StageState::Stale(why) if i == at => assert!(why.contains(&format!("project.yaml's {field} changed")), "{field}: {stage}: {why}"),
                StageState::Stale(_) => assert!(i > at, "{field}: {stage} went stale before {first}: {got:?}"),
                StageState::Missing => panic!("{field}: {stage} missing"),
            }
        }
        if field == "max_cloud_percent" {
            s2cr().args(["info", dir.to_str().unwrap()]).assert().success().stdout(predicate::str::is_match(r"search +stale \(project.yaml's max_cloud_percent changed\)").unwrap());
        }
    }
    // Which model or training file a new run takes is not a setting of the runs already trained
    // (each records its own); nor does removing fetched files (to save disk) outdate later results.
    std::fs::write(&project_yaml, original.replace("train_config: train.yaml", "train_config: ./train.yaml")).unwrap();
    assert!(states().iter().all(|(_, state)| *state == StageState::Done), "{:?}", states());
    std::fs::write(&project_yaml, &original).unwrap();
    assert!(states().iter().all(|(_, state)| *state == StageState::Done), "{:?}", states());
    // A run name that is not a plain folder name is refused by every command that takes one.
    for cmd in [&["assess"][..], &["infer"], &["train"], &["export", "--list"]] {
        s2cr().args(["--project", dir.to_str().unwrap()]).args(cmd).args(["--run", "../../x"]).assert().code(2).stderr(predicate::str::contains("a run name uses letters, digits"));
    }

    // Export: the layers re-open with the project's CRS, transform and values.
    s2cr().current_dir(tmp.path()).args(["--project", "demo", "export", "--list", "--run", "demo"]).assert().success().stdout(predicate::str::contains("severity-synthetic"));
    let export = |layer: &str, file: &str, extra: &[&str]| {
        let out = tmp.path().join(file);
        s2cr().args(["--project", dir.to_str().unwrap(), "export", "--run", "demo", "--layer", layer, "--out", out.to_str().unwrap()]).args(extra).assert().success();
        out
    };
    let grid = &project.config.grid;
    let check_grid = |path: &Path| {
        let info = s2cr::raster::info(&path.display().to_string()).unwrap();
        assert_eq!(info.epsg, Some(grid.epsg), "{}", path.display());
        assert_eq!((info.width, info.height), (grid.width, grid.height));
        let gt = info.geo_transform;
        assert!((gt[0] - grid.x_min).abs() < 1e-6 && (gt[3] - grid.y_max).abs() < 1e-6 && gt[1] == 10.0 && gt[5] == -10.0, "{gt:?}");
        info
    };
    let synthetic = export("synthetic", "synthetic.tif", &[]);
    let info = check_grid(&synthetic);
    assert!(info.is_cog);
    let source = project.synthetic_s2(&s2cr::demo::run_name()).display().to_string();
    assert_eq!(s2cr::raster::read_window(&synthetic.display().to_string(), &[], None).unwrap().bands, s2cr::raster::read_window(&source, &[], None).unwrap().bands);
    let dnbr = export("dnbr-real", "dnbr.tif", &[]);
    check_grid(&dnbr);
    let indices = s2cr::raster::read_window(&assess.join("indices_real.tif").display().to_string(), &[3], None).unwrap();
    let exported = s2cr::raster::read_window(&dnbr.display().to_string(), &[], None).unwrap();
    assert_eq!(exported.descriptions, ["dNBR"]);
    assert!(exported.bands[0].iter().zip(&indices.bands[0]).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())));
    let png = export("synthetic", "synthetic.png", &["--composite", "swir", "--stretch", "2-98"]);
    check_grid(&png);
    assert!(png.with_extension("pgw").is_file());
    let perimeter = export("perimeter-real", "burned.geojson", &[]);
    let text = std::fs::read_to_string(perimeter).unwrap();
    assert!(text.contains("\"Polygon\""));
    // Every export carries the data's attribution, with its year.
    let attribution = "Contains modified Copernicus Sentinel data 2018";
    assert!(text.contains(attribution), "{text}");
    let gdalinfo = |p: &Path| String::from_utf8_lossy(&std::process::Command::new("gdalinfo").arg(p).output().unwrap().stdout).to_string();
    assert!(gdalinfo(&synthetic).contains(&format!("TIFFTAG_COPYRIGHT={attribution}")), "{}", gdalinfo(&synthetic));
    assert!(gdalinfo(&dnbr).contains(&format!("TIFFTAG_COPYRIGHT={attribution}")));
    assert!(gdalinfo(&png).contains(&format!("TIFFTAG_COPYRIGHT={attribution}")), "{}", gdalinfo(&png));
    assert!(std::fs::read_to_string(assess.join("report.html")).unwrap().contains(attribution));
    // The formats agencies exchange, opened again through GDAL/OGR: the perimeter as
    // GeoPackage, zipped Shapefile (with its .prj) and KML, each feature with the attribution
    // and what made it; the severity classes as polygons whose areas add up to the class
    // raster's pixels; the severity COG's colour and attribute tables.
    let features = |path: &Path| -> (Option<u32>, Vec<std::collections::BTreeMap<String, String>>, Dataset) {
        let ds = Dataset::open_ex(path, gdal::DatasetOptions { open_flags: gdal::GdalOpenFlags::GDAL_OF_VECTOR, ..Default::default() }).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        use gdal::vector::LayerAccess;
        let mut layer = ds.layer(0).unwrap();
        let epsg = layer.spatial_ref().and_then(|s| s.auth_code().ok()).map(|c| c as u32);
        let rows = layer.features().map(|f| f.fields().map(|(k, v)| (k, v.map(|v| format!("{v:?}")).unwrap_or_default())).collect()).collect();
        drop(layer);
        (epsg, rows, ds)
    };
    let geojson_count = features(&tmp.path().join("burned.geojson")).1.len();
    for file in ["burned.gpkg", "burned.shp.zip", "burned.kml"] {
        let out = export("perimeter-real", file, &[]);
        let path = if file.ends_with(".zip") { PathBuf::from(format!("/vsizip/{}", out.display())) } else { out.clone() };
        let (epsg, rows, ds) = features(&path);
        assert_eq!((epsg, rows.len()), (Some(4326), geojson_count), "{file}");
        for r in &rows {
            assert!(r.get("source").is_some_and(|v| v.contains(attribution)), "{file}: {r:?}");
            assert!(r.get("made_by").is_some_and(|v| v.contains("sent2-cloud-remover") && v.contains("run demo") && v.contains("sha256")), "{file}: {r:?}");
            assert!(r.contains_key("area_ha"), "{file}: {r:?}");
        }
        if file.ends_with(".gpkg") {
            use gdal::Metadata;
            assert!(ds.metadata_item("ATTRIBUTION", "").is_some_and(|v| v.contains(attribution)), "GeoPackage metadata");
        }
        if file.ends_with(".zip") {
            let bytes = std::fs::read(&out).unwrap();
            assert!(bytes.windows(8).any(|w| w == b"burned.p"), "the zip holds the .prj");
        }
    }
    let classes = export("severity-real", "classes.gpkg", &[]);
    let (epsg, rows, _) = features(&classes);
    assert_eq!(epsg, Some(grid.epsg), "class polygons stay in the grid's CRS");
    let codes = s2cr::raster::read_window(&assess.join("severity_real.tif").display().to_string(), &[1], None).unwrap().bands[0].clone();
    for (code, name) in [(3, "unburned"), (4, "low severity"), (7, "high severity")] {
        let pixels = codes.iter().filter(|c| **c == code as f32).count() as f64;
        let ha: f64 = rows.iter().filter(|r| r["code"].contains(&format!("({code})"))).map(|r| r["area_ha"].trim_start_matches("RealValue(").trim_end_matches(')').parse::<f64>().unwrap()).sum();
        assert!((ha - pixels * 0.01).abs() < 1e-3, "{name}: {ha} ha of polygons, {pixels} px");
        assert!(rows.iter().any(|r| r["class"].contains(name)), "{name}");
    }
    let info = gdalinfo(&assess.join("severity_real.tif"));
    assert!(info.contains("Color Table") && info.contains("<GDALRasterAttributeTable") && info.contains("moderate-low severity"), "{info}");
    // The stages' own rasters and the exports say whose data they hold and what made them.
    for file in [assess.join("severity_real.tif"), assess.join("indices_synthetic.tif"), project.synthetic_s2(&s2cr::demo::run_name()), synthetic.clone()] {
        let info = gdalinfo(&file);
        assert!(info.contains(&format!("TIFFTAG_COPYRIGHT={attribution}")) && info.contains("TIFFTAG_SOFTWARE=sent2-cloud-remover") && info.contains("run demo"), "{}: {info}", file.display());
    }
    assert!(gdalinfo(&assess.join("severity_real.tif")).contains("sha256"), "the generator's checksum");
    assert!(gdalinfo(&assess.join("severity_gapfilled.tif")).contains("TIFFTAG_SOFTWARE=sent2-cloud-remover"), "the gap-filled maps too");
    let own = std::fs::read_to_string(assess.join("burned_real.geojson")).unwrap();
    assert!(own.contains("\"description\"") && own.contains(attribution) && own.contains("run demo"), "the assessment's own perimeters");
    s2cr().args(["--project", dir.to_str().unwrap(), "export", "--run", "demo", "--layer", "nope", "--out", "x.tif"]).assert().code(1).stderr(predicate::str::contains("it has: pre, real"));

    // An official perimeter: the simulated scar's outline, as a fire service would publish it
    // (GeoJSON in the patch's UTM CRS). The real map, which has the scar, agrees with it closely.
    let b02 = s2cr::raster::info(&dir.join("demo-stac/sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/B02.tif").display().to_string()).unwrap();
    let gt = b02.geo_transform;
    let ring: Vec<[f64; 2]> = s2cr::tools::demo_assets::scar_outline(180).into_iter().chain(s2cr::tools::demo_assets::scar_outline(180).into_iter().take(1)).map(|(c, r)| [gt[0] + c * gt[1], gt[3] + r * gt[5]]).collect();
    let scar = tmp.path().join("scar-perimeter.geojson");
    let doc = serde_json::json!({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32650"}},
        "features": [{"type": "Feature", "properties": {"fire": "demo (SIMULATED)"}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]});
    std::fs::write(&scar, doc.to_string()).unwrap();
    let out = s2cr().args(["--project", dir.to_str().unwrap(), "assess", "--run", "demo", "--perimeter", scar.to_str().unwrap()]).assert().success().get_output().stdout.clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("vs the official perimeter IoU"), "{out}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(assess.join("report.json")).unwrap()).unwrap();
    let p = &report["perimeter"];
    let (real_iou, synthetic_iou) = (p["real"]["iou"].as_f64().unwrap(), p["synthetic"]["iou"].as_f64().unwrap());
    println!("demo vs the scar's outline: IoU real {real_iou:.3}, synthetic {synthetic_iou:.3}; {:.2} ha on the grid", p["area_ha_on_grid"]);
    assert!((real_iou - 0.5394).abs() < 1e-4 && (synthetic_iou - 0.1003).abs() < 5e-3 && (p["area_ha_on_grid"].as_f64().unwrap() - 74.6).abs() < 1e-9, "pinned IoU 0.5394 real, 0.1003 synthetic; 74.6 ha: {p}");
    // With the dNBR offset (the ring's mean, taken outside this outline now) the real map finds
    // the whole scar, its low-severity rim included (omission under 2 %; without the offset
    // half the outline was missed), but the greened fields' spread puts part of the unburned
    // land in the low class (commission about 0.46). The outline's area on the grid equals the
    // polygon's to within one rim of pixels.
    assert!(real_iou > 0.5 && p["real"]["omission_error"].as_f64().unwrap() < 0.02 && (p["real"]["commission_error"].as_f64().unwrap() - 0.458).abs() < 0.01, "{p}");
    assert!(report["dnbr_offset"]["source"].as_str().unwrap().contains("outside the official perimeter"), "{}", report["dnbr_offset"]);
    assert!((p["area_ha_on_grid"].as_f64().unwrap() - p["area_ha"].as_f64().unwrap()).abs() < 1.0, "{p}");
    assert!(assess.join("perimeter_reference.geojson").is_file());
    // Every baseline's map against the perimeter too, over its own pixels: the same map (its
    // burned count and its total) judged against another reference.
    assert!(out.contains("kappa vs perimeter"), "{out}");
    for row in report["baselines"]["rows"].as_array().unwrap() {
        let (b, p) = (&row["burned"], &row["perimeter"]);
        let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {row}"));
        println!("{} vs the outline: kappa {}, IoU {}", row["id"], p["kappa"], p["iou"]);
        assert_eq!(n(b, "true_positive") + n(b, "false_positive"), n(p, "true_positive") + n(p, "false_positive"), "{row}");
        assert_eq!(n(b, "true_negative") + n(b, "false_negative"), n(p, "true_negative") + n(p, "false_negative"), "{row}");
    }
    assert!(report["baselines"]["rows"][0]["perimeter"]["iou"].as_f64().unwrap() < report["baselines"]["rows"][3]["perimeter"]["iou"].as_f64().unwrap(), "the radar map finds the scar the synthetic image misses");
    s2cr().current_dir(tmp.path()).args(["--project", "demo", "export", "--list", "--run", "demo"]).assert().success().stdout(predicate::str::contains("perimeter-reference"));
    check_outputs_catalog(&project.output_dir(&s2cr::demo::run_name()));

    // Monte-Carlo dropout: the image becomes the mean of the passes, with its uncertainty and
    // burn probability, which the assessment then checks against the real image.
    let out = s2cr().args(["--project", dir.to_str().unwrap(), "infer", "--run", "demo", "--device", "cpu", "--samples", "4"]).assert().success().get_output().stdout.clone();
    assert!(String::from_utf8_lossy(&out).contains("written"), "{}", String::from_utf8_lossy(&out));
    let out = s2cr().args(["--project", dir.to_str().unwrap(), "assess", "--run", "demo"]).assert().success().get_output().stdout.clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("Uncertainty   correlation of sd with |error| over held-out clear pixels") && out.contains("Burn prob."), "{out}");
    println!("{out}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(assess.join("report.json")).unwrap()).unwrap();
    let u = &report["uncertainty"];
    assert_eq!(report["inputs"]["samples"], 4);
    let bands = u["bands"].as_array().unwrap();
    let pinned = [-0.1023, -0.1170, 0.0269, -0.0215, 0.1027, 0.1045];
    let got: Vec<f64> = bands.iter().map(|b| b["correlation"].as_f64().unwrap()).collect();
    assert!(got.iter().zip(pinned).all(|(g, p)| (g - p).abs() < 1e-3), "sd/|error| correlations {got:?}, pinned {pinned:?}");
    assert_eq!(bands.len(), 6);
    assert!(bands.iter().all(|b| b["pixels"].as_u64().unwrap() > 1000 && b["correlation"].is_number()), "{u}");
    let binned: u64 = u["sd_bins"].as_array().unwrap().iter().map(|b| b["pixels"].as_u64().unwrap()).sum();
    assert_eq!(binned, bands.iter().map(|b| b["pixels"].as_u64().unwrap()).sum::<u64>(), "every pixel in one sd bin");
    assert_eq!(u["reliability"].as_array().unwrap().len(), 10);
    assert!(assess.join("figures/reliability.png").is_file());
    assert!(std::fs::read_to_string(assess.join("report.html")).unwrap().contains("id=\"uncertainty\""));
    check_outputs_catalog(&project.output_dir(&s2cr::demo::run_name()));

    // Every STAC item and catalog the demo wrote (its STAC catalog, the outputs' catalog and
    // items, the model card's item) is valid against the core STAC schemas (pystac's own copy:
    // offline); extension schemas are not shipped by any installed package and are listed.
    check_stac(&dir);

    // A changed training set: the finished run is not retrained silently.
    let pipeline = dir.join("pipeline.yaml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    assert!(text.contains("stride: 16"), "{text}");
    std::fs::write(&pipeline, text.replace("stride: 16", "stride: 32")).unwrap();
    let changed = s2cr().args(["demo", dir.to_str().unwrap(), "--no-gui", "--max-steps", "4", "--device", "cpu"]).assert().success().get_output().stdout.clone();
    let changed = String::from_utf8_lossy(&changed);
    assert!(changed.contains("trained before a change: input dataset/dataset.json changed"), "{changed}");

    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    s2cr().args(["demo", other.to_str().unwrap(), "--no-gui"]).assert().code(1).stderr(predicate::str::contains("is not empty"));
}

#[test]
fn doctor_reports_each_check_with_its_fix_and_fails_only_on_required_ones() {
    let tmp = tempfile::tempdir().unwrap();
    // Offline, no credentials: warnings, success.
    let out = s2cr()
        .args(["--project", tmp.path().to_str().unwrap(), "doctor", "--offline", "--json"])
        .env("XDG_CONFIG_HOME", tmp.path())
        .env("XDG_CACHE_HOME", tmp.path())
        .env_remove("CDSE_ACCESS_TOKEN")
        .env_remove("S2CR_OPENEO_USER")
        .env_remove("S2CR_OPENEO_PASSWORD")
        .env_remove("GDAL_SKIP")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |name: &str| checks.as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap_or_else(|| panic!("no check {name}: {checks}"));
    for driver in ["GTiff", "COG", "VRT", "HTTP"] {
        assert_eq!(find(&format!("GDAL driver {driver}"))["ok"], true);
    }
    let cdse = find("credentials CDSE");
    assert!(cdse["ok"] == false && cdse["required"] == false && cdse["fix"].as_str().unwrap().contains("CDSE_ACCESS_TOKEN"), "{cdse}");
    assert!(find("disk space")["detail"].as_str().unwrap().contains("GiB free"));
    assert!(find("compute devices")["detail"].as_str().unwrap().contains("CPU: "));
    // A credential is reported present, its value never shown.
    let out = s2cr()
        .args(["--project", tmp.path().to_str().unwrap(), "doctor", "--offline"])
        .env("XDG_CONFIG_HOME", tmp.path())
        .env("S2CR_OPENEO_USER", "analyst")
        .env("S2CR_OPENEO_PASSWORD", "pw-never-shown")
        .env_remove("GDAL_SKIP")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("[ok  ] credentials openEO: present: user and password") && !text.contains("pw-never-shown"), "{text}");
    // GDAL without a needed driver: a required check fails, with its fix, and the exit says so.
    let out = s2cr().args(["--project", tmp.path().to_str().unwrap(), "doctor", "--offline"]).env("GDAL_SKIP", "COG").output().unwrap();
    let (text, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("[FAIL] GDAL driver COG: missing") && text.contains("unset GDAL_SKIP"), "{text}");
    assert!(err.contains("required checks failed: GDAL driver COG"), "{err}");
}

/// Without a desktop session (no XDG_RUNTIME_DIR: ssh, cron, CI, cluster nodes) the GPU probe
/// is quiet: Mesa's Vulkan device-selection layer printed `error: XDG_RUNTIME_DIR is invalid or
/// not set` once per Vulkan instance before the program's own output. The doctor still says
/// what the GPU is, once, with its fix.
#[test]
fn the_gpu_probe_says_nothing_without_a_desktop_session() {
    let tmp = tempfile::tempdir().unwrap();
    let out = s2cr()
        .args(["--project", tmp.path().to_str().unwrap(), "doctor", "--offline"])
        .env("XDG_CONFIG_HOME", tmp.path())
        .env("XDG_CACHE_HOME", tmp.path())
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("NODEVICE_SELECT")
        .env_remove("DRI_PRIME")
        .output()
        .unwrap();
    let (text, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!err.contains("error:") && !text.contains("XDG_RUNTIME_DIR"), "stderr: {err}\nstdout: {text}");
    assert_eq!(text.matches("compute devices").count(), 1, "{text}");
}

/// The run's outputs as a STAC catalog: read back by the `stac` crate and by pystac (when a
/// Python with pystac is at hand), every href resolving to a file.
/// Validates every STAC file under `dir` with scripts/validate_stac.py (core schemas, offline).
fn check_stac(dir: &Path) {
    let python = std::env::var("S2CR_OPENEO_PYTHON").unwrap_or_else(|_| "python3".into());
    if !std::process::Command::new(&python).args(["-c", "import pystac.validation.local_validator, jsonschema, referencing"]).output().is_ok_and(|o| o.status.success()) {
        crate::missing_tool(&format!("{python} cannot import pystac and jsonschema (scripts/requirements-openeo.txt; .ci/run installs them and sets S2CR_OPENEO_PYTHON)"));
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/validate_stac.py");
    let out = std::process::Command::new(&python).arg(&script).arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "STAC files break the core schemas:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let checked = report["checked"].as_array().unwrap();
    for kind in ["demo-stac/catalog.json", "outputs/demo/catalog.json", "outputs/demo/stac/synthetic-s2.json", "runs/demo/model.stac.json"] {
        assert!(checked.iter().any(|c| c.as_str().unwrap().ends_with(kind)), "{kind} was not checked: {text}");
    }
    let unchecked: Vec<&String> = report["unchecked_extensions"].as_object().unwrap().keys().collect();
    eprintln!("STAC: {} files valid against the core schemas; extension schemas not checked (no local copy): {unchecked:?}", checked.len());
}

fn check_outputs_catalog(out: &Path) {
    let catalog_path = out.join("catalog.json");
    // The files' validity against the STAC schemas is checked with pystac below; here what they say.
    let read = |p: &Path| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let catalog = read(&catalog_path);
    assert_eq!(catalog["type"], "Catalog");
    let description = catalog["description"].as_str().unwrap();
    assert!(description.contains("Contains modified Copernicus Sentinel data 2018"), "{description}");
    let mut ids = Vec::new();
    let resolve = |base: &Path, href: &str| -> PathBuf {
        assert!(!href.starts_with('/') && !href.contains("://"), "hrefs are relative: {href}");
        let p = base.parent().unwrap().join(href);
        assert!(p.is_file(), "{href} (from {}) does not resolve", base.display());
        p
    };
    for link in catalog["links"].as_array().unwrap() {
        let target = resolve(&catalog_path, link["href"].as_str().unwrap());
        if link["rel"] == "item" {
            let item = read(&target);
            assert_eq!(item["type"], "Feature");
            for asset in item["assets"].as_object().unwrap().values() {
                resolve(&target, asset["href"].as_str().unwrap());
            }
            for l in item["links"].as_array().unwrap() {
                resolve(&target, l["href"].as_str().unwrap());
            }
            let properties = &item["properties"];
            assert_eq!(properties["proj:epsg"], 32650);
            assert!(properties["processing:software"]["sent2-cloud-remover"].as_str().unwrap().starts_with(env!("CARGO_PKG_VERSION")));
            assert!(properties["s2cr:attribution"].as_str().unwrap().contains("Copernicus Sentinel data 2018"));
            ids.push((item["id"].as_str().unwrap().to_string(), item));
        }
    }
    let find = |id: &str| &ids.iter().find(|(i, _)| i == id).unwrap_or_else(|| panic!("no item {id}")).1;
    let bands = find("synthetic-s2")["assets"]["image"]["eo:bands"].as_array().unwrap().clone();
    assert!(bands.iter().any(|b| b["name"] == "B08" && b["common_name"] == "nir"), "{bands:?}");
    let classes = find("burn-severity")["properties"]["classification:classes"].as_array().unwrap().clone();
    assert!(classes.iter().any(|c| c["description"] == "high severity"), "{classes:?}");
    assert!(find("burned-perimeters")["assets"].get("official").is_some());
    if out.join("uncertainty_S2_t1.tif").is_file() {
        assert!(find("uncertainty")["assets"].get("sd").is_some() && find("uncertainty")["assets"].get("burn-probability").is_some());
    }
    let links = find("synthetic-s2")["links"].as_array().unwrap().clone();
    assert!(links.iter().any(|l| l["rel"] == "derived_from" && l["href"].as_str().unwrap().ends_with("model.stac.json")), "{links:?}");
    // pystac, where a Python has it (the openEO back-end's venv does).
    let python = ["S2CR_OPENEO_PYTHON", "S2CR_PYTHON"].iter().filter_map(|v| std::env::var(v).ok()).chain(["python3".to_string()]).find(|p| {
        std::process::Command::new(p).args(["-c", "import pystac"]).output().is_ok_and(|o| o.status.success())
    });
    let Some(python) = python else {
        crate::missing_tool("no Python with pystac for the STAC check (scripts/requirements-openeo.txt has it; .ci/run sets S2CR_OPENEO_PYTHON)");
        return;
    };
    let script = r#"
import os, sys, pystac
cat = pystac.Catalog.from_file(sys.argv[1])
items = list(cat.get_items())
assert len(items) >= 5, [i.id for i in items]
for item in items:
    for key, asset in item.assets.items():
        path = asset.get_absolute_href()
        assert os.path.isfile(path), (item.id, key, path)
print("pystac", pystac.__version__, "read", len(items), "items")
"#;
    let out = std::process::Command::new(&python).args(["-c", script, catalog_path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

/// One writer per project: two `s2cr run` started at once on the demo leave one complete set of
/// outputs (no second checkpoint folder of a step, every stage done) and the second says who is
/// writing; `--wait` waits instead; a holder killed with SIGKILL frees the lock for the next run.
#[test]
fn two_writers_at_once_one_runs_the_other_is_told_who_writes() {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let project = s2cr::demo::create_project(&dir).unwrap();
    let settings = s2cr::demo::settings(&project, Some(6), s2cr::model::DeviceChoice::Cpu).unwrap();
    let pipeline = tmp.path().join("pipeline.yaml");
    std::fs::write(&pipeline, serde_norway::to_string(&settings).unwrap()).unwrap();
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("s2cr"));
        cmd.args(["--project", dir.to_str().unwrap()]).args(extra).args(["run", pipeline.to_str().unwrap()]).env_remove("S2CR_LOG").stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    };
    let first = run(&[]).spawn().unwrap();
    let second = run(&[]).spawn().unwrap();
    let (a, b) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    let text = |o: &std::process::Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let (won, lost) = match (a.status.success(), b.status.success()) {
        (true, false) => (&a, &b),
        (false, true) => (&b, &a),
        _ => panic!("exactly one run succeeds:\n--- first\n{}\n--- second\n{}", text(&a), text(&b)),
    };
    assert_eq!(lost.status.code(), Some(1), "{}", text(lost));
    let said = text(lost);
    assert!(said.contains("is writing this project") && said.contains("s2cr --project") && said.contains("--wait"), "{said}");
    assert!(text(won).contains("pipeline done"), "{}", text(won));
    let checkpoints: Vec<String> = std::fs::read_dir(project.checkpoints_dir(&s2cr::demo::run_name())).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert!(checkpoints.iter().all(|c| !c.contains('.')), "one set of checkpoints: {checkpoints:?}");
    let project = s2cr::project::Project::open(&dir).unwrap();
    for stage in s2cr::project::Stage::ALL.into_iter().filter(|s| *s != s2cr::project::Stage::Export) {
        let run = stage.per_run().then(s2cr::demo::run_name);
        assert_eq!(project.stage_state(stage, run.as_ref()).unwrap().0, s2cr::project::StageState::Done, "{stage}");
    }
    // A reader does not wait: `s2cr info` while a writer holds the lock.
    let lock = project.lock_for_writing("a test", false).unwrap();
    s2cr().args(["info", dir.to_str().unwrap()]).timeout(std::time::Duration::from_secs(60)).assert().success();
    s2cr().args(["--project", dir.to_str().unwrap(), "clean"]).assert().code(1).stderr(predicate::str::contains("a test").and(predicate::str::contains("is writing this project")));
    // --wait: waits for the holder, then runs.
    let waiting = run(&["--wait"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    drop(lock);
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // `clean` is a writer that runs once nobody holds the lock, and it keeps the lock file (in
    // no manifest).
    s2cr().args(["--project", dir.to_str().unwrap(), "clean"]).assert().success();
    assert!(dir.join(".s2cr.lock").is_file(), "the lock file survives clean");
    // SIGKILL of the holder frees the lock: a longer run killed while it holds it.
    std::fs::write(&pipeline, serde_norway::to_string(&s2cr::demo::settings(&project, Some(400), s2cr::model::DeviceChoice::Cpu).unwrap()).unwrap()).unwrap();
    let mut holder = run(&[]).spawn().unwrap();
    let started = std::time::Instant::now();
    while project.lock_holder().is_none_or(|h| h.pid != holder.id()) {
        assert!(started.elapsed().as_secs() < 60, "the run never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(holder.try_wait().unwrap().is_none(), "still running when killed");
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(project.lock_holder(), None, "the OS dropped the killed holder's lock");
    let again = project.lock_for_writing("after the kill", false);
    assert!(again.is_ok(), "{:?}", again.err());
}

/// Exit status: a usage error is 2, a runtime error 1, and Ctrl-C (SIGINT) 130, after the stage
/// kept what it keeps on a cancel (training saves a checkpoint; the next run resumes from it).
#[test]
fn exit_status_is_2_for_usage_1_for_errors_and_130_for_ctrl_c() {
    use std::process::Stdio;
    s2cr().args(["--no-such-flag"]).assert().code(2);
    s2cr().arg("--help").assert().success().stdout(predicate::str::contains("130 cancelled (Ctrl-C)"));
    let tmp = tempfile::tempdir().unwrap();
    s2cr().args(["--project", tmp.path().join("none").to_str().unwrap(), "train"]).assert().code(1);
    let dir = tmp.path().join("demo");
    let project = s2cr::demo::create_project(&dir).unwrap();
    let settings = s2cr::demo::settings(&project, Some(400), s2cr::model::DeviceChoice::Cpu).unwrap();
    for stage in [s2cr::project::Stage::Search, s2cr::project::Stage::Fetch, s2cr::project::Stage::Preprocess, s2cr::project::Stage::Dataset] {
        s2cr::pipeline::run_stage(&project, stage, &settings, &s2cr::job::Progress::silent("setup")).unwrap();
    }
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("s2cr"))
        .args(["--project", dir.to_str().unwrap(), "train", "--run", "c", "--device", "cpu", "--max-steps", "400"])
        .env_remove("S2CR_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once it trains (metrics.csv has rows), Ctrl-C.
    let metrics = project.metrics_csv(&s2cr::project::RunName::new("c").unwrap());
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 3 {
        assert!(started.elapsed().as_secs() < 120, "training never started");
        assert!(child.try_wait().unwrap().is_none(), "training ended before it was interrupted");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{said}");
    let cp = s2cr::model::checkpoint::latest_checkpoint(&project, &s2cr::project::RunName::new("c").unwrap()).unwrap();
    assert!(cp.is_some_and(|c| c.step >= 2 && c.step < 400), "a checkpoint of the interrupted run: {said}");
}

/// The demo project, nothing run yet, with settings that train 6 steps on the CPU.
fn demo_for_stages() -> (tempfile::TempDir, s2cr::project::Project, s2cr::pipeline::PipelineSettings) {
    let tmp = tempfile::tempdir().unwrap();
    let project = s2cr::demo::create_project(&tmp.path().join("demo")).unwrap();
    let settings = s2cr::demo::settings(&project, Some(6), s2cr::model::DeviceChoice::Cpu).unwrap();
    (tmp, project, settings)
}

/// Ctrl-C (a real SIGINT) in the middle of each stage of the command line: the stage stops at
/// its next check, exits 130, is not taken as done, keeps what it promises (fetched files,
/// finished outputs) and the next run finishes it. The work waits after its first unit
/// (`S2CR_TEST_PAUSE_AFTER_UNITS`) so that the signal lands mid-stage: the demo's stages end
/// faster than a signal can be sent. Training's Ctrl-C is tested above without the wait.
#[test]
fn ctrl_c_in_each_stage_exits_130_keeps_what_it_promises_and_the_next_run_finishes() {
    use s2cr::project::{Stage, StageState};
    use std::io::BufRead;
    use std::process::Stdio;
    let (tmp, project, settings) = demo_for_stages();
    let (dir, run) = (tmp.path().join("demo"), settings.run_name().clone());
    for stage in [Stage::Search, Stage::Fetch, Stage::Preprocess, Stage::Dataset, Stage::Train, Stage::Infer, Stage::Assess] {
        if stage == Stage::Train {
            s2cr::pipeline::run_stage(&project, stage, &settings, &s2cr::job::Progress::silent("train")).unwrap();
            continue;
        }
        let before = mtimes(project.root());
        // `s2cr dataset` takes its settings from flags; the demo's are in its pipeline file, so
        // the dataset is made by `s2cr run` (the stages before it are up to date).
        let command = if stage == Stage::Dataset { "run".to_string() } else { stage.to_string() };
        let mut args = vec!["--project".to_string(), dir.to_str().unwrap().to_string(), command];
        if matches!(stage, Stage::Infer | Stage::Assess) {
            args.extend(["--run".to_string(), run.to_string()]);
        }
        if stage == Stage::Infer {
            args.extend(["--device".to_string(), "cpu".to_string()]);
        }
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("s2cr"))
            .args(&args)
            .env(s2cr::job::PAUSE_AFTER_UNITS, "1")
            .env_remove("S2CR_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let started = std::time::Instant::now();
        loop {
            match rx.recv_timeout(std::time::Duration::from_secs(120)) {
                Ok(line) if line.contains(s2cr::job::PAUSED) => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().unwrap();
                    panic!("{stage}: never paused after its first unit ({:?}, {status}): {}", started.elapsed(), reader.join().unwrap());
                }
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "{stage}: still running when interrupted");
        assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
        let status = child.wait().unwrap();
        let said = reader.join().unwrap();
        assert_eq!(status.code(), Some(130), "{stage}: {said}");
        assert!(said.contains("Cancelling"), "{stage}: the handler said it cancels: {said}");
        let (state, _) = project.stage_state(stage, Some(&run)).unwrap();
        assert_ne!(state, StageState::Done, "{stage}: an interrupted stage is not done");
        let after_stop = mtimes(project.root());
        let kept: Vec<_> = after_stop.iter().filter(|(p, m)| before.get(*p) != Some(*m)).map(|(p, _)| p.clone()).collect();
        match stage {
            Stage::Fetch => assert!(kept.iter().any(|p| p.starts_with("raw")), "{stage}: the files fetched are kept: {kept:?}"),
            Stage::Preprocess => assert!(kept.iter().any(|p| p.starts_with("preprocessed") && p.extension().is_some_and(|e| e == "tif")), "{stage}: the finished outputs are kept: {kept:?}"),
            _ => {}
        }
        s2cr::pipeline::run_stage(&project, stage, &settings, &s2cr::job::Progress::silent("again")).unwrap_or_else(|e| panic!("{stage}: {}", s2cr::error_chain(&e)));
        let (state, _) = project.stage_state(stage, Some(&run)).unwrap();
        assert_eq!(state, StageState::Done, "{stage}: the next run finishes it");
        if matches!(stage, Stage::Fetch | Stage::Preprocess) {
            let now = mtimes(project.root());
            let redone: Vec<_> = kept.iter().filter(|p| !p.starts_with("preprocessed/.work") && p.extension().is_some_and(|e| e == "tif") && now.get(*p) != after_stop.get(*p)).collect();
            assert!(redone.is_empty(), "{stage}: kept files were not made again: {redone:?}");
        }
    }
}

/// The mtime of every file under `dir` (relative path -> modified), for "kept, not redone".
pub fn mtimes(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, std::time::SystemTime> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), m);
            }
        }
    }
    out
}

/// Each stage stopped after its first unit of work (as Ctrl-C there would stop it: the same
/// cancel flag, checked at the same places) ends in `Cancelled` (exit 130 in the CLI), is not
/// taken as done, keeps what it promises (fetched files, finished outputs, a checkpoint), and the
/// next run finishes without redoing what was kept.
#[test]
fn each_stage_stopped_after_its_first_unit_keeps_what_it_promises() {
    use s2cr::job::Progress;
    use s2cr::project::{Stage, StageState};
    let (_tmp, project, settings) = demo_for_stages();
    let run = settings.run_name().clone();
    for stage in [Stage::Search, Stage::Fetch, Stage::Preprocess, Stage::Dataset, Stage::Train, Stage::Infer, Stage::Assess] {
        let before = mtimes(project.root());
        let stopped = s2cr::pipeline::run_stage(&project, stage, &settings, &Progress::silent("stop").cancel_after(1));
        let (state, _) = project.stage_state(stage, Some(&run)).unwrap();
        let after_stop = mtimes(project.root());
        let kept: Vec<_> = after_stop.iter().filter(|(p, m)| before.get(*p) != Some(*m)).map(|(p, _)| p.clone()).collect();
        match &stopped {
            Err(s2cr::Error::Cancelled) => {}
            other => panic!("{stage}: stopped after one unit: {:?}", other.as_ref().map_err(|e| s2cr::error_chain(e))),
        }
        assert_ne!(state, StageState::Done, "{stage}: a stopped stage is not done");
        eprintln!("{stage}: stopped; written meanwhile: {kept:?}");
        match stage {
            Stage::Fetch => assert!(kept.iter().any(|p| p.starts_with("raw")), "{stage}: the files fetched are kept: {kept:?}"),
            Stage::Preprocess => assert!(kept.iter().any(|p| p.starts_with("preprocessed") && p.extension().is_some_and(|e| e == "tif")), "{stage}: the finished outputs are kept: {kept:?}"),
            Stage::Train => assert!(s2cr::model::checkpoint::latest_checkpoint(&project, &run).unwrap().is_some_and(|c| c.step >= 1), "{stage}: a checkpoint of the stopped run"),
            _ => {}
        }
        s2cr::pipeline::run_stage(&project, stage, &settings, &Progress::silent("go on")).unwrap_or_else(|e| panic!("{stage}: {}", s2cr::error_chain(&e)));
        let (state, _) = project.stage_state(stage, Some(&run)).unwrap();
        assert_eq!(state, StageState::Done, "{stage}");
        if matches!(stage, Stage::Fetch | Stage::Preprocess) {
            let now = mtimes(project.root());
            // (`.work` holds the stage's scratch files, made again as needed.)
            let redone: Vec<_> = kept.iter().filter(|p| !p.starts_with("preprocessed/.work") && p.extension().is_some_and(|e| e == "tif") && now.get(*p) != after_stop.get(*p)).collect();
            assert!(redone.is_empty(), "{stage}: kept files were not made again: {redone:?}");
        }
    }
}

/// `s2cr run` on a training that goes non-finite (a learning rate of 1e30) stops there with the
/// reason and exit status 1: no inference from the diverged weights, no assessment reported as a
/// success.
#[test]
fn a_pipeline_whose_training_diverges_exits_1_before_inference() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let project = s2cr::demo::create_project(&dir).unwrap();
    let mut settings = s2cr::demo::settings(&project, Some(20), s2cr::model::DeviceChoice::Cpu).unwrap();
    if let Some(t) = settings.train.as_mut() {
        t.learning_rate = 1e30;
    }
    let pipeline = tmp.path().join("pipeline.yaml");
    std::fs::write(&pipeline, serde_norway::to_string(&settings).unwrap()).unwrap();
    let out = s2cr().args(["--project", dir.to_str().unwrap(), "run", pipeline.to_str().unwrap()]).env_remove("S2CR_LOG").assert().code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("stopped at step") && err.contains("learning rate"), "{err}");
    let run = settings.run_name().clone();
    assert!(project.run_dir(&run).join("diverged.json").is_file(), "the stop is recorded");
    for stage in [s2cr::project::Stage::Infer, s2cr::project::Stage::Assess] {
        assert_ne!(project.stage_state(stage, Some(&run)).unwrap().0, s2cr::project::StageState::Done, "{stage} did not run on diverged weights");
    }
    assert!(!project.synthetic_s2(&run).exists(), "no synthetic image");
}
