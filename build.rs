//! Tells the crate which GDAL it is built against (from gdal-sys): `gdal_http_headers` where
//! GDAL reads `GDAL_HTTP_HEADERS` (3.6 and newer), which carries a credential per request.
//! Also the git commit it is built from (`S2CR_GIT_COMMIT`, with `-dirty` when the tree has
//! changes), for release builds only: a commit then rebuilds the crate, which debug and test
//! builds are spared (they say `unknown`). `S2CR_GIT_COMMIT` in the environment wins (packages
//! built from a tarball).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gdal_http_headers)");
    println!("cargo::rerun-if-env-changed=DEP_GDAL_VERSION_NUMBER");
    let version = std::env::var("DEP_GDAL_VERSION_NUMBER").ok().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    if version >= 3_060_000 {
        println!("cargo::rustc-cfg=gdal_http_headers");
    }
    println!("cargo::rustc-env=S2CR_GDAL_BUILD_VERSION={}.{}", version / 1_000_000, (version % 1_000_000) / 10_000);
    println!("cargo::rerun-if-env-changed=S2CR_GIT_COMMIT");
    let commit = std::env::var("S2CR_GIT_COMMIT").ok().filter(|c| !c.trim().is_empty()).or_else(|| {
        if std::env::var("PROFILE").as_deref() != Ok("release") {
            return None;
        }
        for watched in [".git/HEAD", ".git/index", ".git/refs/heads"] {
            if std::path::Path::new(watched).exists() {
                println!("cargo::rerun-if-changed={watched}");
            }
        }
        let git = |args: &[&str]| std::process::Command::new("git").args(args).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        let head = git(&["rev-parse", "--short=12", "HEAD"])?;
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Some(if dirty { format!("{head}-dirty") } else { head })
    });
    println!("cargo::rustc-env=S2CR_GIT_COMMIT={}", commit.unwrap_or_else(|| "unknown".into()));
}
