//! What built this program: its version, the git commit (release builds; see build.rs) and the
//! cargo features it has. `s2cr --version` prints it; manifests and reports record it, without
//! making a rebuilt binary's stages stale (a stage's state depends on its parameters and files
//! only).

use serde::{Deserialize, Serialize};

/// The build of the program that wrote a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Provenance {
    pub version: String,
    /// Short commit hash, `-dirty` when built from a changed tree; `unknown` for debug builds.
    pub commit: String,
    pub features: Vec<String>,
}

/// The cargo features this build has.
pub fn features() -> Vec<String> {
    let mut f = Vec::new();
    if cfg!(feature = "gui") {
        f.push("gui".to_string());
    }
    if cfg!(feature = "gdal") {
        f.push("gdal".to_string());
    }
    if cfg!(feature = "cuda") {
        f.push("cuda".to_string());
    }
    if cfg!(feature = "rocm") {
        f.push("rocm".to_string());
    }
    f
}

/// This program's build.
pub fn current() -> Provenance {
    Provenance { version: env!("CARGO_PKG_VERSION").to_string(), commit: env!("S2CR_GIT_COMMIT").to_string(), features: features() }
}

/// `0.1.0 (commit 1a2b3c4d5e6f, features: gui, gdal)`.
pub fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let p = current();
        let features = if p.features.is_empty() { "none".to_string() } else { p.features.join(", ") };
        format!("{} (commit {}, features: {})", p.version, p.commit, features)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_names_commit_and_features() {
        let v = super::long_version();
        assert!(v.starts_with(env!("CARGO_PKG_VERSION")) && v.contains("commit ") && v.contains("features: "), "{v}");
        #[cfg(feature = "gdal")]
        assert!(super::features().contains(&"gdal".to_string()));
    }
}
