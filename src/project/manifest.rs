//! Stage manifests: what a stage read, with which parameters, and what it wrote, so that a stage
//! knows whether its results are up to date. A manifest is written last, atomically: one exists
//! only for a stage that completed.

use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::paths::RunName;
use super::stage::Stage;
use crate::error::{Error, Result};

/// A file a stage read or wrote, as recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Relative to the project folder (or absolute for files outside it).
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// Modification time when hashed, to skip re-hashing unchanged files.
    pub modified_unix_ms: u128,
}

impl FileRecord {
    /// Hashes `path` (absolute, or relative to `root`).
    pub fn of(root: &Path, path: &Path) -> Result<FileRecord> {
        let full = if path.is_absolute() { path.to_path_buf() } else { root.join(path) };
        let meta = std::fs::metadata(&full).map_err(Error::io(&full, "reading file metadata"))?;
        let rel = full.strip_prefix(root).map(Path::to_path_buf).unwrap_or(full.clone());
        Ok(FileRecord {
            path: rel.to_string_lossy().to_string(),
            bytes: meta.len(),
            sha256: crate::fsutil::sha256_file(&full)?,
            modified_unix_ms: modified_ms(&meta),
        })
    }

    /// None when the file on disk is still this one, else why not.
    fn changed(&self, root: &Path) -> Option<String> {
        let full = root.join(&self.path);
        let Ok(meta) = std::fs::metadata(&full) else {
            return Some(format!("{} is missing", self.path));
        };
        // Only regular files are hashed (a manifest naming a device or a folder never makes
        // s2cr read it).
        if !meta.is_file() {
            return Some(format!("{} is not a regular file", self.path));
        }
        if meta.len() != self.bytes {
            return Some(format!("{} changed size", self.path));
        }
        if modified_ms(&meta) == self.modified_unix_ms {
            return None;
        }
        match crate::fsutil::sha256_file(&full) {
            Ok(h) if h == self.sha256 => None,
            Ok(_) => Some(format!("{} changed", self.path)),
            Err(e) => Some(e.to_string()),
        }
    }
}

fn modified_ms(meta: &std::fs::Metadata) -> u128 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis()).unwrap_or(0)
}

/// What a stage read, with which parameters, and what it wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: Stage,
    /// The `s2cr` version that wrote it.
    pub tool_version: String,
    /// RFC 3339 time the stage finished.
    pub finished: String,
    pub parameters: serde_json::Value,
    pub inputs: Vec<FileRecord>,
    pub outputs: Vec<FileRecord>,
    /// The build that wrote it (not compared: a rebuilt program keeps stages up to date).
    #[serde(default)]
    pub provenance: crate::provenance::Provenance,
}

/// Whether a stage's results can be used as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageState {
    /// Never run (no manifest).
    Missing,
    /// Ran, and its inputs, parameters and outputs are as recorded.
    Done,
    /// Ran, but something changed since: the reason.
    Stale(String),
}

impl std::fmt::Display for StageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageState::Missing => f.write_str("missing"),
            StageState::Done => f.write_str("done"),
            StageState::Stale(why) => write!(f, "stale ({why})"),
        }
    }
}

impl Manifest {
    pub fn new(stage: Stage, parameters: serde_json::Value) -> Manifest {
        Manifest {
            stage,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            finished: String::new(),
            parameters,
            inputs: Vec::new(),
            outputs: Vec::new(),
            provenance: crate::provenance::current(),
        }
    }

    pub fn add_input(&mut self, root: &Path, path: &Path) -> Result<()> {
        self.inputs.push(FileRecord::of(root, path)?);
        Ok(())
    }

    pub fn add_output(&mut self, root: &Path, path: &Path) -> Result<()> {
        self.outputs.push(FileRecord::of(root, path)?);
        Ok(())
    }

    /// Reads a manifest; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Manifest>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Io { path: path.to_path_buf(), action: "reading the manifest", source: e }),
        };
        serde_json::from_str(&text).map(Some).map_err(Error::json(path, "delete the file to run the stage again"))
    }

    /// Stamps the finish time and writes the manifest atomically: the last thing a stage does,
    /// so a manifest exists only for a stage that completed.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.finished = chrono::Utc::now().to_rfc3339();
        crate::fsutil::save_json(path, self)
    }

    /// Compares the manifest with the files on disk and, when given, the parameters a new run
    /// would use.
    pub fn state(&self, root: &Path, parameters: Option<&serde_json::Value>) -> StageState {
        if let Some(p) = parameters
            && p != &self.parameters
        {
            return StageState::Stale("parameters changed".into());
        }
        for r in &self.inputs {
            if let Some(why) = r.changed(root) {
                return StageState::Stale(format!("input {why}"));
            }
        }
        for r in &self.outputs {
            if let Some(why) = r.changed(root) {
                return StageState::Stale(format!("output {why}"));
            }
        }
        StageState::Done
    }
}

/// One line of `s2cr info`.
#[derive(Debug, Clone, PartialEq)]
pub struct StageStatus {
    pub stage: Stage,
    pub run: Option<RunName>,
    pub state: StageState,
    pub finished: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_detect_changed_inputs_outputs_and_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("in.txt"), b"input").unwrap();
        std::fs::write(root.join("out.txt"), b"output").unwrap();
        let params = serde_json::json!({"speckle": "refined-lee"});
        let mut m = Manifest::new(Stage::Preprocess, params.clone());
        m.add_input(root, Path::new("in.txt")).unwrap();
        m.add_output(root, &root.join("out.txt")).unwrap();
        assert_eq!(m.outputs[0].path, "out.txt");
        let path = root.join("preprocessed/manifest.json");
        m.save(&path).unwrap();
        let loaded = Manifest::load(&path).unwrap().unwrap();
        assert_eq!(loaded.state(root, Some(&params)), StageState::Done);
        assert!(matches!(loaded.state(root, Some(&serde_json::json!({"speckle": "lee"}))), StageState::Stale(_)));
        // Same size, different content, different mtime.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(root.join("in.txt"), b"INPUT").unwrap();
        assert_eq!(loaded.state(root, None), StageState::Stale("input in.txt changed".into()));
        std::fs::write(root.join("in.txt"), b"input").unwrap();
        assert_eq!(loaded.state(root, None), StageState::Done, "same content again: hash matches");
        std::fs::remove_file(root.join("out.txt")).unwrap();
        assert_eq!(loaded.state(root, None), StageState::Stale("output out.txt is missing".into()));
    }

    #[test]
    fn a_manifest_naming_a_device_or_a_folder_is_stale_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        // A hostile manifest: /dev/zero has size 0 like the record, and would never end hashing.
        let text = r#"{"stage":"search","tool_version":"0","finished":"","parameters":null,
            "inputs":[{"path":"/dev/zero","bytes":0,"sha256":"","modified_unix_ms":0}],"outputs":[]}"#;
        let m: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(m.state(dir.path(), None), StageState::Stale("input /dev/zero is not a regular file".into()));
        let folder: Manifest = serde_json::from_str(&text.replace("/dev/zero", ".")).unwrap();
        assert!(matches!(folder.state(dir.path(), None), StageState::Stale(why) if why.contains("not a regular file")));
    }

    #[test]
    fn a_corrupt_manifest_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, "{ truncated").unwrap();
        let err = Manifest::load(&path).unwrap_err().to_string();
        assert!(err.contains("delete the file"), "{err}");
    }
}
