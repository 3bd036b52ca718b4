//! Integration tests, in one binary so the library is linked once.

mod assess;
mod catalog;
mod cli;
mod cog_server;
mod composite;
mod cover;
mod dataset;
mod fetch;
mod model;
mod openeo;
mod pix2pix;
mod preprocess;
#[cfg(feature = "gui")]
mod gui;
mod house;
mod raster;
mod stac_server;
mod wgpu;

use std::path::{Path, PathBuf};

/// A tool a test needs is missing: in CI (`CI=true`) the test fails, since CI installs every
/// tool its tests need (`.ci/run`, `scripts/install-deps.sh`); elsewhere it skips, saying why
/// on stderr. Returns so the caller can `return` or `continue`.
pub fn missing_tool(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("missing in CI: {what}");
    }
    eprintln!("SKIPPED (not in CI): {what}");
    // `make test` lists the skips after the run (nextest shows no output of a passing test).
    if let Some(log) = std::env::var_os("S2CR_SKIP_LOG") {
        use std::io::Write;
        let test = std::thread::current().name().unwrap_or("a test").to_string();
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(log) {
            let _ = writeln!(f, "  {test}: {what}");
        }
    }
}

/// `../shared/data` beside the repository: real captured satellite data (see its README).
pub fn shared_data() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(dir.is_dir(), "the reference data folder {} is missing; the tests need it", dir.display());
    dir
}

/// A BigEarthNet Sentinel-2 patch band (Austria, 2017-06-13, EPSG:32633).
pub fn bigearthnet_s2(band: &str) -> String {
    let name = "S2A_MSIL2A_20170613T101031_87_48";
    shared_data()
        .join(format!("s1s2-bigearthnet/BigEarthNet-S2-Example/{name}/{name}_{band}.tif"))
        .to_string_lossy()
        .to_string()
}

/// The Sentinel-1 patch on the same grid as [`bigearthnet_s2`].
pub fn bigearthnet_s1(pol: &str) -> String {
    let name = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48";
    shared_data()
        .join(format!("s1s2-bigearthnet/BigEarthNet-S1-Example/{name}/{name}_{pol}.tif"))
        .to_string_lossy()
        .to_string()
}

pub fn example_aoi() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("confs/kangaroo-island-west.geojson")
}

/// The embedded demo in `dir`, run through the whole pipeline with `steps` training steps and no
/// loader threads (their timing orders the batches: the same model every run).
pub fn demo_after_pipeline(dir: &Path, steps: usize) -> s2cr::project::Project {
    demo_from_after_pipeline(dir, None, steps)
}

/// [`demo_after_pipeline`] from a catalog made by `s2cr build-demo-assets --patch`.
pub fn demo_from_after_pipeline(dir: &Path, catalog: Option<&Path>, steps: usize) -> s2cr::project::Project {
    let project = s2cr::demo::create_project_from(dir, catalog).unwrap();
    let mut settings = s2cr::demo::settings(&project, Some(steps), s2cr::model::DeviceChoice::Cpu).unwrap();
    if let Some(t) = settings.train.as_mut() {
        t.workers = 0;
    }
    s2cr::pipeline::run(&project, &settings, &s2cr::job::Progress::silent("demo")).unwrap();
    project
}
