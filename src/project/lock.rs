//! One writer per project: an OS advisory lock (`flock`, through `File::try_lock`) on the
//! project's lock file, taken by whatever writes the project (a command, a stage the app runs)
//! and released when it ends, exits or crashes (the OS drops the lock with the process). The
//! file names its holder (process id, command, start time) for the message a second writer
//! gets. Readers (`s2cr info`, the app browsing layers) never take it, so they never wait. The
//! lock file is in no manifest and `s2cr clean` leaves it alone.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Project;
use crate::error::{Error, Result};

/// Who holds (or last held) a project's lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    /// What it runs: the command line (`s2cr run`), or the app's stage.
    pub command: String,
    /// RFC 3339.
    pub started: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {} ({}), since {}", self.pid, self.command, self.started)
    }
}

/// The project's write lock while it is held; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct ProjectLock {
    file: File,
    path: PathBuf,
}

impl ProjectLock {
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for ProjectLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it immediate for any
        // clone of the handle.
        let _ = self.file.unlock();
    }
}

impl Project {
    /// Takes the project's write lock for `command` (what the holder message will say). Another
    /// holder: with `wait`, waits for it; without, an error naming the holder at once.
    pub fn lock_for_writing(&self, command: &str, wait: bool) -> Result<ProjectLock> {
        let path = self.lock_file();
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(Error::io(&path, "opening the project's lock file"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if wait => {
                tracing::info!("waiting for {} to finish writing the project", read_holder(&mut file).map_or("another s2cr".to_string(), |h| h.to_string()));
                file.lock().map_err(Error::io(&path, "waiting for the project's lock"))?;
            }
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file).map_or("another s2cr process".to_string(), |h| h.to_string());
                return Err(Error::Project {
                    path: self.root().to_path_buf(),
                    message: format!("{holder} is writing this project; wait for it to finish (or pass --wait to wait for it), then run this again"),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, "locking the project")(e)),
        }
        let holder = LockHolder { pid: std::process::id(), command: crate::error::redact(command), started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true) };
        let text = serde_json::to_string(&holder).unwrap_or_default();
        let written = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(text.as_bytes())).and_then(|_| file.flush());
        written.map_err(Error::io(&path, "writing the project's lock file"))?;
        Ok(ProjectLock { file, path })
    }

    /// Who is writing the project now, if anyone (another process, or this one's own stage):
    /// the app shows it on its steps. Never waits.
    pub fn lock_holder(&self) -> Option<LockHolder> {
        let path = self.lock_file();
        let mut file = std::fs::OpenOptions::new().read(true).open(&path).ok()?;
        match file.try_lock_shared() {
            // Nobody holds it: whatever the file says is history.
            Ok(()) => {
                let _ = file.unlock();
                None
            }
            Err(TryLockError::WouldBlock) => read_holder(&mut file).or_else(|| Some(LockHolder { pid: 0, command: "another s2cr process".into(), started: String::new() })),
            Err(TryLockError::Error(_)) => None,
        }
    }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(dir: &std::path::Path) -> Project {
        let aoi = crate::aoi::Aoi::parse_geojson(r#"{"type":"Polygon","coordinates":[[[10.0,45.0],[10.02,45.0],[10.02,45.02],[10.0,45.02],[10.0,45.0]]]}"#, "test").unwrap();
        let dates = |t: &str| t.parse::<super::super::DateRange>().unwrap();
        Project::init(&super::super::NewProject::new(dir.join("p"), aoi, dates("2020-01-01/2020-01-31"), dates("2020-03-01/2020-03-31"))).unwrap()
    }

    #[test]
    fn a_second_writer_is_refused_naming_the_first_and_gets_the_lock_once_it_is_free() {
        let tmp = tempfile::tempdir().unwrap();
        let p = project(tmp.path());
        assert_eq!(p.lock_holder(), None);
        let first = p.lock_for_writing("s2cr run", false).unwrap();
        let holder = p.lock_holder().unwrap();
        assert_eq!((holder.pid, holder.command.as_str()), (std::process::id(), "s2cr run"));
        let e = crate::error_chain(&p.lock_for_writing("s2cr train", false).unwrap_err());
        assert!(e.contains(&format!("process {}", std::process::id())) && e.contains("s2cr run") && e.contains("--wait"), "{e}");
        // --wait: waits until the first lets go.
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || p.lock_for_writing("s2cr clean", true).map(|_| ()))
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!waiter.is_finished(), "waits while the first holds the lock");
        drop(first);
        waiter.join().unwrap().unwrap();
        assert_eq!(p.lock_holder(), None, "free again once the second dropped it");
        // Readers see the project as ever; the lock file is no project file a stage lists.
        assert!(p.lock_file().is_file());
    }
}
