//! Tools for users comparing hardware (`s2cr bench`) and for maintainers (rebuilding the demo's
//! assets); nothing in the pipeline uses them.

#[cfg(feature = "gdal")]
pub mod bench;
#[cfg(feature = "gdal")]
pub mod demo_assets;
#[cfg(feature = "gdal")]
pub mod filters_bench;
pub mod model_bench;

/// Peak resident memory of this process so far, MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()))
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}
