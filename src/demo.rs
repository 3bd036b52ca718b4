//! The embedded offline demo: a small static STAC catalog of real Sentinel-1/Sentinel-2 data
//! (one SEN12MS-CR patch in Jiangsu, China), shipped inside the binary, that `s2cr demo` turns
//! into a project and runs through every stage with the same search, fetch and preprocessing
//! code as the real providers (the `local` provider).
//!
//! The real data has no fire: the post-fire scenes carry a **simulated** burn scar, described
//! in the catalog's items (`s2cr:simulated`), and so in the search results, the app and the
//! assessment report (the COGs themselves carry no such tag). Its cloud classes are not ESA's
//! Scene Classification either, but simple thresholds on the real top-of-atmosphere
//! reflectance. `assets/demo/README.md` says all of this for people reading the files;
//! [`crate::tools::demo_assets`] holds the simulation and the thresholds, and makes the catalog
//! from `shared/data` again.

use std::path::{Path, PathBuf};

use crate::aoi::{Aoi, AoiLimits};
use crate::dataset::DatasetConfig;
use crate::dataset::tiles::TileConfig;
use crate::error::{Error, Result};
use crate::model::DeviceChoice;
use crate::model::config::{ModelConfig, TrainConfig};
use crate::pipeline::PipelineSettings;
use crate::project::{Collections, DateRange, Project, ProjectConfig, Provider, RunName};

/// `(name, include_bytes!(assets/demo/name))` for each file of the demo catalog.
macro_rules! demo_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/", $name)))),*]
    };
}

/// The attribution Copernicus asks for, with the dataset the patch comes from.
pub const ATTRIBUTION: &str =
    "Contains modified Copernicus Sentinel data 2018, from SEN12MS-CR (Ebel et al. 2020, TUM, doi:10.14459/2020mp1554803, CC BY 4.0)";

/// The demo project's date ranges, around the catalog's nominal acquisition times
/// (`tools::demo_assets::S2_T0_DATETIME` and the others; a test there checks they agree).
pub const T0_RANGE: &str = "2018-09-01/2018-09-30";
pub const T1_RANGE: &str = "2018-10-20/2018-11-20";

/// Collections of the demo catalog.
pub const S2_COLLECTION: &str = "sentinel-2-l1c";
pub const S1_COLLECTION: &str = "sentinel-1-sigma0";

/// The demo catalog's root and AOI files, relative to the catalog's folder.
pub const CATALOG_FILE: &str = "catalog.json";
pub const CATALOG_AOI_FILE: &str = "aoi.geojson";
/// Generated field plots over the simulated scar, in the catalog's folder (not field data: the
/// plots' CBI is made from the simulated severity by `tools::demo_assets`).
pub const PLOTS_FILE: &str = "generated_cbi_plots.csv";

/// The name of the demo's training run (runs/demo, outputs/demo); [`run_name`] gives it as a
/// [`RunName`].
pub const RUN: &str = "demo";

/// The demo's training run.
pub fn run_name() -> RunName {
    RunName::new(RUN).expect("demo::RUN is a valid run name")
}

/// Where a demo project keeps the catalog, relative to the project.
pub const CATALOG_DIR: &str = "demo-stac";
/// The demo's model and training settings, relative to the project (its `model_config` and
/// `train_config`).
const MODEL_FILE: &str = "model.yaml";
const TRAIN_FILE: &str = "train.yaml";
/// Training steps of `s2cr demo` unless told otherwise: a few minutes on 2 CPU cores.
pub const DEFAULT_STEPS: usize = 600;

/// The demo catalog, embedded in the binary: (path relative to assets/demo, bytes).
pub const FILES: &[(&str, &[u8])] = demo_files![
    "README.md",
    "SOURCE.txt",
    "aoi.geojson",
    "catalog.json",
    "generated_cbi_plots.csv",
    "sentinel-1-sigma0/collection.json",
    "sentinel-1-sigma0/sen12mscr-p839-s1-simulated-burn/sen12mscr-p839-s1-simulated-burn.json",
    "sentinel-1-sigma0/sen12mscr-p839-s1-simulated-burn/vh.tif",
    "sentinel-1-sigma0/sen12mscr-p839-s1-simulated-burn/vv.tif",
    "sentinel-1-sigma0/sen12mscr-p839-s1/sen12mscr-p839-s1.json",
    "sentinel-1-sigma0/sen12mscr-p839-s1/vh.tif",
    "sentinel-1-sigma0/sen12mscr-p839-s1/vv.tif",
    "sentinel-2-l1c/collection.json",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/B02.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/B03.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/B04.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/B08.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/B11.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/B12.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/B8A.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/SCL.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/SCL.tif.aux.xml",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudfree/sen12mscr-p839-s2-cloudfree.json",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudy-simulated-burn/B02.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudy-simulated-burn/B03.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudy-simulated-burn/B04.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudy-simulated-burn/B08.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudy-simulated-burn/B11.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudy-simulated-burn/B12.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudy-simulated-burn/B8A.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudy-simulated-burn/SCL.tif",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudy-simulated-burn/SCL.tif.aux.xml",
    "sentinel-2-l1c/sen12mscr-p839-s2-cloudy-simulated-burn/sen12mscr-p839-s2-cloudy-simulated-burn.json",
];

/// Writes the embedded catalog into `dir/demo-stac/`, leaving files that are already whole.
pub fn write_catalog(dir: &Path) -> Result<()> {
    write_files(dir, FILES.iter().copied())
}

fn write_files<'a>(dir: &Path, files: impl Iterator<Item = (&'a str, &'a [u8])>) -> Result<()> {
    for (name, bytes) in files {
        let path = dir.join(CATALOG_DIR).join(name);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) && std::fs::read(&path).is_ok_and(|b| b == bytes) {
            continue;
        }
        crate::fsutil::write_atomic(&path, bytes)?;
    }
    Ok(())
}

/// The files of a demo catalog folder made by `s2cr build-demo-assets` (relative names, and
/// their bytes), which must hold the catalog and its AOI.
fn catalog_files(from: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    for needed in [CATALOG_FILE, CATALOG_AOI_FILE] {
        if !from.join(needed).is_file() {
            return Err(Error::Project { path: from.to_path_buf(), message: format!("has no {needed}: give `s2cr demo --catalog` a folder made by `s2cr build-demo-assets --patch NAME --out DIR`") });
        }
    }
    let (mut files, mut stack) = (Vec::new(), vec![from.to_path_buf()]);
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(Error::io(&dir, "listing a demo catalog"))? {
            let path = entry.map_err(Error::io(&dir, "listing a demo catalog"))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(name) = path.strip_prefix(from) {
                let bytes = std::fs::read(&path).map_err(Error::io(&path, "reading a demo catalog"))?;
                files.push((name.to_string_lossy().replace('\\', "/"), bytes));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Creates the demo project in `dir` (which must be empty or missing), or opens it when `dir`
/// holds the demo already (so `s2cr demo` again resumes and skips what is done).
pub fn create_project(dir: &Path) -> Result<Project> {
    create_project_from(dir, None)
}

/// [`create_project`] with the catalog of `catalog` (a folder made by `s2cr build-demo-assets
/// --patch`) instead of the embedded one. A project resumes only with the catalog it was made
/// from: its AOI must be the same.
pub fn create_project_from(dir: &Path, catalog_dir: Option<&Path>) -> Result<Project> {
    // A catalog folder's files, read once; the embedded ones as they are.
    let read = match catalog_dir {
        Some(from) => catalog_files(from)?,
        None => Vec::new(),
    };
    let files: Vec<(&str, &[u8])> = match catalog_dir {
        Some(_) => read.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())).collect(),
        None => FILES.to_vec(),
    };
    let write = |dir: &Path| write_files(dir, files.iter().copied());
    // Relative to the project, so the folder can move with its catalog.
    let catalog = PathBuf::from(CATALOG_DIR).join(CATALOG_FILE);
    if dir.join(crate::project::PROJECT_FILE).is_file() {
        let project = Project::open(dir)?;
        if project.config.catalog.as_deref() != Some(catalog.as_path()) {
            return Err(Error::Project { path: dir.to_path_buf(), message: "holds another project, not the demo; give `s2cr demo` another folder".into() });
        }
        let aoi = files.iter().find(|(n, _)| *n == CATALOG_AOI_FILE).map(|(_, b)| *b);
        if std::fs::read(dir.join(CATALOG_DIR).join(CATALOG_AOI_FILE)).ok().as_deref() != aoi {
            let which = catalog_dir.map(|c| format!("than {}", c.display())).unwrap_or_else(|| "than the embedded one (it was made with --catalog)".into());
            return Err(Error::Project { path: dir.to_path_buf(), message: format!("holds a demo made from another catalog {which}; give `s2cr demo` the same --catalog or another folder") });
        }
        write(dir)?;
        return Ok(project);
    }
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Project { path: dir.to_path_buf(), message: "is not empty; give `s2cr demo` a new or empty folder".into() });
    }
    write(dir)?;
    let aoi = Aoi::load(&dir.join(CATALOG_DIR).join(CATALOG_AOI_FILE), &AoiLimits::default())?;
    let range = |field: &str, text: &str| text.parse::<DateRange>().map_err(|e| Error::invalid(field, e.to_string()));
    let mut config = ProjectConfig::for_aoi("demo: SEN12MS-CR patch, simulated burn", &aoi, range("t0", T0_RANGE)?, range("t1", T1_RANGE)?, Provider::Local, 60.0, 10.0)?;
    config.catalog = Some(catalog);
    config.collections = Some(Collections { s2: S2_COLLECTION.into(), s1: S1_COLLECTION.into() });
    config.model_config = Some(PathBuf::from(MODEL_FILE));
    config.train_config = Some(PathBuf::from(TRAIN_FILE));
    // Not `Project::init`: the demo's project also names its collections and settings files,
    // and keeps its catalog relative to the project (init stores it absolute).
    let project = Project::create(dir, config, &aoi)?;
    write_yaml(&project.root().join(MODEL_FILE), &model_config())?;
    write_yaml(&project.root().join(TRAIN_FILE), &train_config())?;
    let mut pipeline = PipelineSettings { run: run_name(), dataset: Some(dataset_config(&project)), ..PipelineSettings::default() };
    // The catalog's generated field plots (CBI from the simulated severity, with noise).
    let plots = PathBuf::from(CATALOG_DIR).join(PLOTS_FILE);
    if dir.join(&plots).is_file() {
        pipeline.assess.plots = Some(crate::assess::plots::FieldPlots { file: plots, field: "CBI".into(), classify: false });
    }
    write_yaml(&project.pipeline_file(), &pipeline)?;
    Ok(project)
}

fn write_yaml<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_norway::to_string(value).map_err(|e| Error::Project { path: path.to_path_buf(), message: format!("serializing: {e}") })?;
    crate::fsutil::write_atomic(path, format!("# The demo's CPU-friendly settings; edit them and run `s2cr demo` again.\n{text}").as_bytes())
}

/// A generator small enough to train in minutes on a CPU (patches are multiples of 2^6 px).
pub fn model_config() -> ModelConfig {
    // Dropout in three decoder blocks, not pix2pix's one at depth 6: over the demo's 400 steps
    // it held kappa at 0.87 (held-out 0.82) where pix2pix's placement gave 0.81 (0.77).
    ModelConfig { dropout_blocks: crate::model::config::DropoutBlocks::Three, ..ModelConfig::small() }
}

pub fn train_config() -> TrainConfig {
    TrainConfig { max_steps: DEFAULT_STEPS, batch_size: 4, checkpoint_every: 100, preview_every: 50, ..TrainConfig::default() }
}

/// 64 px patches every 16 px (the patch is small, so it needs many overlapping patches), at
/// least half of each clear; 30 % of the 64 px blocks held out from training, so that the
/// assessment can also judge pixels the model never saw. The split's seed is one whose
/// held-out blocks hold about half of the scar's clear part (about half of all seeds do; the
/// default seed puts none of it there, and a test without the phenomenon tests nothing).
pub fn dataset_config(project: &Project) -> DatasetConfig {
    let research = DatasetConfig::research(project);
    let tiles = TileConfig { size: 64, stride: 16, min_valid: 0.5, split_block_patches: 1, val_fraction: 0.0, test_fraction: 0.3, seed: 0, ..TileConfig::default() };
    DatasetConfig { tiles, ..research }
}

/// The pipeline of `s2cr demo`: the project's pipeline.yaml (every stage, the demo's run and
/// training set), model.yaml and train.yaml (with `max_steps` when given).
pub fn settings(project: &Project, max_steps: Option<usize>, device: DeviceChoice) -> Result<PipelineSettings> {
    let mut settings = PipelineSettings { device, ..PipelineSettings::of_project(project)? };
    let mut train = settings.train_config(project)?;
    if let Some(n) = max_steps {
        train.max_steps = n;
    }
    settings.train = Some(train);
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_run_is_a_valid_run_name() {
        assert_eq!(run_name().as_str(), RUN);
    }

    #[test]
    fn the_embedded_files_are_the_demo_folder() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    on_disk.push(path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let embedded: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(embedded, on_disk, "update FILES in src/demo.rs");
        let total: usize = FILES.iter().map(|(_, b)| b.len()).sum();
        assert!(total < 4 << 20, "the demo stays a few MiB: {total} bytes");
    }
}
