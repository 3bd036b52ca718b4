//! File-system helpers every other module uses: atomic writes, temporary sibling names,
//! streamed checksums and JSON files. A leaf: it imports nothing of the crate but the error type,
//! and knows nothing of projects, rasters or stages.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A temporary sibling of `path` (same folder, so the final rename is atomic). The name starts
/// with a dot and carries the process id, so no later run takes it for a finished file.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!(".{name}.partial-{}{ext}", std::process::id()))
}

/// The process id a [`temp_sibling`] name carries, if `name` is one.
fn partial_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, after) = rest.rsplit_once(".partial-")?;
    after.split('.').next()?.parse().ok()
}

/// Whether process `pid` runs now; `None` where this system cannot say (no `/proc`).
fn process_runs(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    Some(Path::new("/proc").join(pid.to_string()).exists())
}

/// What [`remove_stale_partials`] found and removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cleanup {
    pub dir: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// Leftovers that could not be removed, with why.
    pub failures: Vec<String>,
}

/// Removes the temporary siblings ([`temp_sibling`]) that writers killed before they finished
/// left in `dir` and its subfolders: those of processes that no longer run (a rerun after
/// `kill -9`, a crash or a power cut). Stages call it first, so such leftovers never pile up;
/// what could not be removed is reported, never an error. `depth` bounds how far below `dir`
/// it looks (a project's folders are shallow; a folder the user names may not be).
pub fn remove_stale_partials(dir: &Path, depth: usize) -> Cleanup {
    let mut done = Cleanup { dir: dir.to_path_buf(), ..Cleanup::default() };
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((folder, level)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            let stale = entry.file_name().to_str().and_then(partial_owner).is_some_and(|pid| pid != std::process::id() && process_runs(pid) == Some(false));
            if stale {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                let removed = if kind.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                match removed {
                    Ok(()) => (done.files, done.bytes) = (done.files + 1, done.bytes + size),
                    Err(e) => done.failures.push(format!("{}: could not remove this leftover of an interrupted run: {e}", path.display())),
                }
            } else if kind.is_dir() && level < depth {
                stack.push((path, level + 1));
            }
        }
    }
    done
}

/// Creates the folder that will hold `path`.
pub fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(Error::io(parent, "creating the folder"))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary sibling and a rename, so readers see either the
/// old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ensure_parent(path)?;
    let tmp = temp_sibling(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io { path: path.to_path_buf(), action: "writing", source: e }
    })
}

/// Writes a value as pretty JSON, atomically.
pub fn save_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(Error::json(path, "serializing"))?;
    write_atomic(path, &text)
}

/// Reads a JSON file; `hint` says what to do when it is missing or broken (for example "run
/// `s2cr dataset` first").
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path, hint: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Project { path: path.to_path_buf(), message: format!("{e}; {hint}") })?;
    serde_json::from_str(&text).map_err(Error::json(path, hint))
}

/// The memory the system can give without swapping (Linux's MemAvailable), None where it is
/// not known.
pub fn available_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&meminfo)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.trim_start_matches("MemAvailable:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Free space for an unprivileged user on the file system holding `path` (statvfs), None where
/// it cannot be measured.
pub fn available_space(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs is a plain C struct of integers, for which all-zero bytes are a value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path and `st` a writable statvfs the call fills.
        let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The user's cache folder for s2cr (`$XDG_CACHE_HOME/s2cr`, else `~/.cache/s2cr`).
pub fn user_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"))).map(|c| c.join("s2cr"))
}

/// Where the map keeps the OpenStreetMap tiles it downloaded.
pub fn tile_cache_dir() -> Option<PathBuf> {
    user_cache_dir().map(|c| c.join("tiles"))
}

/// Turns any text (a STAC item id, a band name) into a file or folder name that cannot leave
/// its parent folder.
pub fn safe_name(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    let trimmed = cleaned.trim_matches('.');
    if trimmed.is_empty() { "item".into() } else { trimmed.chars().take(200).collect() }
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(Error::io(path, "opening for checksum"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(Error::io(path, "reading for checksum"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_memory_is_read_from_meminfo() {
        let meminfo = "MemTotal:       131072000 kB\nMemFree:         1000 kB\nMemAvailable:   65536000 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(65_536_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(available_memory_bytes().is_some_and(|b| b > 0));
        }
    }

    #[test]
    fn ids_cannot_escape_the_project() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name(".."), "item");
        assert_eq!(safe_name("S2B_20EPT_20250731_0_L2A"), "S2B_20EPT_20250731_0_L2A");
        assert_eq!(safe_name("a/b\\c:d"), "a_b_c_d");
    }

    #[test]
    fn leftovers_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mine = temp_sibling(&dir.path().join("a/S2.tif"));
        assert_eq!(partial_owner(&mine.file_name().unwrap().to_string_lossy()), Some(std::process::id()));
        // A process id above the kernel's largest (4194304) never runs.
        let dead = dir.path().join("a/.S1.tif.partial-99999999.tif");
        let finished = dir.path().join("a/S1.tif");
        for p in [&mine, &dead, &finished] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_stale_partials(dir.path(), 0).files, 0, "not below the depth asked for");
        assert_eq!(remove_stale_partials(dir.path(), 1).files, 1);
        assert!(!dead.exists(), "a dead writer's file is removed");
        assert!(mine.exists() && finished.exists(), "this process's own and finished files stay");
        assert_eq!(partial_owner("S2.tif"), None);
        assert_eq!(partial_owner(".x.partial-12"), Some(12));
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }

    #[test]
    fn json_round_trips_and_a_broken_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        save_json(&path, &vec![1, 2, 3]).unwrap();
        assert_eq!(load_json::<Vec<i32>>(&path, "run it again").unwrap(), [1, 2, 3]);
        std::fs::write(&path, "{ broken").unwrap();
        let err = load_json::<Vec<i32>>(&path, "run it again").unwrap_err();
        assert!(err.to_string().contains("run it again"), "{err}");
        assert!(std::error::Error::source(&err).is_some(), "the serde error is kept as the source");
    }
}
