//! `s2cr clean`: removes a project's intermediates (the fetched windows in `raw/`, the
//! preprocessed rasters, the training set, every checkpoint but each run's last) and says what
//! it freed (raw/ stays when it holds SAFE products put there by hand for the SNAP engine).
//! The project file, the AOI, the search results, the runs' last checkpoints and
//! settings, and `outputs/` (synthetic images, assessments) always stay. Running the pipeline
//! again fetches, preprocesses and builds the training set anew; a run whose training set comes
//! back the same is not trained again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::Project;

/// What `clean` removes, each of which `--keep` can spare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    Raw,
    Preprocessed,
    Dataset,
    /// Checkpoints other than each run's last.
    Checkpoints,
}

impl Part {
    pub const ALL: [Part; 4] = [Part::Raw, Part::Preprocessed, Part::Dataset, Part::Checkpoints];

    pub fn name(self) -> &'static str {
        match self {
            Part::Raw => "raw",
            Part::Preprocessed => "preprocessed",
            Part::Dataset => "dataset",
            Part::Checkpoints => "checkpoints",
        }
    }
}

/// One removed (or, in a dry run, removable) folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Removed {
    pub part: Part,
    pub path: PathBuf,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleanReport {
    pub removed: Vec<Removed>,
    pub freed_bytes: u64,
    pub dry_run: bool,
}

/// What is kept: the parts asked for, and the preprocessed rasters when the training set is
/// kept (its stacks are VRTs that read them).
pub fn kept(keep: &[Part]) -> Vec<Part> {
    let mut k = keep.to_vec();
    if k.contains(&Part::Dataset) && !k.contains(&Part::Preprocessed) {
        k.push(Part::Preprocessed);
    }
    k
}

/// Files inside a part that `clean` never removes: the openEO job book records the jobs already
/// paid for (a later run takes them up instead of paying again); it is no intermediate.
fn kept_records(project: &Project, part: Part) -> Vec<PathBuf> {
    match part {
        Part::Preprocessed => vec![project.preprocessed_openeo_jobs()],
        _ => Vec::new(),
    }
}

/// The folders (or files) `clean` would remove, with their sizes.
fn candidates(project: &Project, keep: &[Part]) -> Result<Vec<Removed>> {
    let keep = kept(keep);
    let keep = keep.as_slice();
    let mut found = Vec::new();
    let mut add = |part: Part, path: PathBuf| {
        if path.exists() {
            let (files, bytes) = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => (1, m.len()),
                _ => crate::doctor::folder_size(&path, crate::project::MAX_DEPTH + 4),
            };
            found.push(Removed { part, path, files, bytes });
        }
    };
    for (part, dir) in [(Part::Raw, project.raw_dir()), (Part::Preprocessed, project.preprocessed_dir()), (Part::Dataset, project.dataset_dir())] {
        // SAFE products put in raw/ by hand for the SNAP engine cannot be fetched again.
        if keep.contains(&part) || (part == Part::Raw && !safe_products(&dir).is_empty()) {
            continue;
        }
        let records = kept_records(project, part);
        if records.iter().any(|r| r.is_file()) {
            // What records paid work stays: the folder's other entries go one by one.
            for e in std::fs::read_dir(&dir).map_err(Error::io(&dir, "listing it"))?.flatten() {
                if !records.contains(&e.path()) {
                    add(part, e.path());
                }
            }
        } else {
            add(part, dir);
        }
    }
    if !keep.contains(&Part::Checkpoints) {
        for run in project.runs() {
            let dir = project.checkpoints_dir(&run);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            // The last checkpoint (the one checkpoint.json names) stays: inference and resuming
            // need it. Without a readable checkpoint.json nothing of the run is touched.
            let Ok(last) = crate::fsutil::load_json::<crate::model::checkpoint::Checkpoint>(&project.checkpoint_json(&run), "") else { continue };
            let last = project.run_dir(&run).join(&last.dir);
            let last = std::fs::canonicalize(&last).unwrap_or(last);
            for e in entries.flatten() {
                let path = e.path();
                if std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone()) != last && e.file_type().is_ok_and(|t| t.is_dir()) {
                    add(Part::Checkpoints, path);
                }
            }
        }
    }
    Ok(found)
}

/// SAFE products (folders or zips, for the SNAP engine) under `raw/`: `s2cr clean` leaves raw/
/// alone when there are any, as the fetch cannot download them again.
pub fn safe_products(raw: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(raw.to_path_buf(), 0usize)];
    while let Some((dir, level)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".SAFE") || name.ends_with(".SAFE.zip") || (name.ends_with(".zip") && name.starts_with("S1")) || (name.ends_with(".zip") && name.starts_with("S2")) {
                found.push(e.path());
            } else if e.file_type().is_ok_and(|t| t.is_dir()) && level < 3 {
                stack.push((e.path(), level + 1));
            }
        }
    }
    found
}

/// Removes the intermediates not in `keep` (nothing when `dry_run`); returns what was (or would
/// be) freed.
pub fn clean(project: &Project, keep: &[Part], dry_run: bool) -> Result<CleanReport> {
    let removed = candidates(project, keep)?;
    if !dry_run {
        for r in &removed {
            if r.path.is_dir() {
                std::fs::remove_dir_all(&r.path).map_err(Error::io(&r.path, "removing it"))?;
            } else {
                std::fs::remove_file(&r.path).map_err(Error::io(&r.path, "removing it"))?;
            }
        }
    }
    let freed_bytes = removed.iter().map(|r| r.bytes).sum();
    Ok(CleanReport { removed, freed_bytes, dry_run })
}

#[cfg(test)]
mod tests {
    /// The openEO job book records paid jobs: `clean` removes the preprocessed rasters around it
    /// and keeps it (a dry run says the same).
    #[test]
    fn the_openeo_job_book_survives_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let aoi = crate::aoi::Aoi::parse_geojson(r#"{"type":"Polygon","coordinates":[[[10.0,45.0],[10.02,45.0],[10.02,45.02],[10.0,45.02],[10.0,45.0]]]}"#, "test").unwrap();
        let dates = |t: &str| t.parse::<crate::project::DateRange>().unwrap();
        let new = crate::project::NewProject::new(tmp.path().join("p"), aoi, dates("2020-01-01/2020-01-31"), dates("2020-03-01/2020-03-31"));
        let project = crate::project::Project::init(&new).unwrap();
        let book = project.preprocessed_openeo_jobs();
        let raster = project.preprocessed_dir().join("2020-01-01/S2.tif");
        std::fs::create_dir_all(raster.parent().unwrap()).unwrap();
        std::fs::write(&raster, vec![0u8; 1000]).unwrap();
        std::fs::write(project.preprocessed_dir().join("report.json"), b"{}").unwrap();
        std::fs::write(&book, br#"{"jobs":[{"backend":"https://b","graph_sha256":"x","job_id":"j-1","title":"t"}]}"#).unwrap();
        let dry = super::clean(&project, &[], true).unwrap();
        assert!(dry.removed.iter().all(|r| r.path != book) && dry.removed.iter().any(|r| r.path == raster.parent().unwrap()), "{:?}", dry.removed);
        super::clean(&project, &[], false).unwrap();
        assert!(!raster.exists() && !project.preprocessed_dir().join("report.json").exists());
        assert!(book.is_file(), "the job book is kept");
        // Without a book the folder goes whole.
        std::fs::remove_file(&book).unwrap();
        std::fs::write(project.preprocessed_dir().join("report.json"), b"{}").unwrap();
        super::clean(&project, &[], false).unwrap();
        assert!(!project.preprocessed_dir().exists());
    }

    #[test]
    fn safe_products_put_by_hand_are_found() {
        let tmp = tempfile::tempdir().unwrap();
        let scene = tmp.path().join("2021-12-23/S1B_IW_GRDH_1SDV_20211223T051122");
        std::fs::create_dir_all(scene.join("S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")).unwrap();
        std::fs::write(scene.join("VV.tif"), b"x").unwrap();
        assert_eq!(super::safe_products(tmp.path()).len(), 1);
        let plain = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(plain.path().join("2021-12-23/scene")).unwrap();
        std::fs::write(plain.path().join("2021-12-23/scene/B04.tif"), b"x").unwrap();
        assert!(super::safe_products(plain.path()).is_empty());
    }
}
