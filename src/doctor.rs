//! `s2cr doctor`: what this machine has for s2cr, and how to fix what is missing. Checks are
//! required (GDAL and the drivers every stage uses) or optional (a GPU, the network, the
//! providers, credentials, disk space, the map's tile cache); only a failed required check is an
//! error. Being offline is reported as such. Credentials are reported present or absent, never
//! shown.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub required: bool,
    pub ok: bool,
    pub detail: String,
    /// What to do when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &str, required: bool, detail: impl Into<String>) -> Check {
        Check { name: name.into(), required, ok: true, detail: detail.into(), fix: None }
    }
    fn problem(name: &str, required: bool, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), required, ok: false, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct DoctorOptions<'a> {
    /// Where projects live (free disk space is measured there).
    pub projects: &'a Path,
    /// Ask the providers' STAC APIs whether they answer.
    pub network: bool,
    pub timeout: Duration,
}

/// GDAL drivers every stage needs: GeoTIFF and COG output, VRT stacks, HTTP reads (`/vsicurl/`).
pub const REQUIRED_DRIVERS: [&str; 4] = ["GTiff", "COG", "VRT", "HTTP"];

/// Below this much free space a project's fetch and preprocessing may not fit.
const LOW_DISK_BYTES: u64 = 10 << 30;

/// Every check, in the order they are shown.
pub fn run(opts: &DoctorOptions) -> Vec<Check> {
    let mut checks = gdal_checks();
    checks.push(device_check(crate::model::gpu_available(), &cpu_features()));
    let projects = std::path::absolute(opts.projects).unwrap_or_else(|_| opts.projects.to_path_buf());
    checks.push(disk_check(&projects, crate::fsutil::available_space(&projects)));
    if opts.network {
        for kind in [crate::catalog::ProviderKind::EarthSearch, crate::catalog::ProviderKind::PlanetaryComputer, crate::catalog::ProviderKind::Cdse] {
            let provider = crate::catalog::ProviderConfig::default_for(kind);
            checks.push(provider_check(&format!("{kind:?}"), &provider.stac_url, probe(&provider.stac_url, opts.timeout)));
        }
    } else {
        checks.push(Check::ok("providers", false, "not asked (--offline)"));
    }
    checks.extend(credential_checks());
    checks.push(tile_cache_check());
    checks
}

/// True when a required check failed (the command's exit status).
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.required && !c.ok)
}

/// The oldest GDAL s2cr runs with (Debian 12's is 3.6.2).
pub const GDAL_MIN: (i64, i64) = (3, 6);

/// The GDAL check for the library found at run time (`VERSION_NUM`, e.g. 3060200 for 3.6.2).
fn gdal_version_check(version_num: &str, release: &str) -> Check {
    let built = env!("S2CR_GDAL_BUILD_VERSION");
    let Ok(num) = version_num.trim().parse::<i64>() else {
        return Check::problem("GDAL", true, format!("unknown version {version_num:?}"), "install GDAL 3.6 or newer (Debian/Ubuntu: gdal-bin libgdal-dev)");
    };
    let (major, minor) = (num / 1_000_000, num / 10_000 % 100);
    if (major, minor) < GDAL_MIN {
        return Check::problem(
            "GDAL",
            true,
            format!("{release}, older than {}.{} (built against {built})", GDAL_MIN.0, GDAL_MIN.1),
            format!("install GDAL {}.{} or newer (Debian/Ubuntu: gdal-bin libgdal-dev), then rebuild s2cr", GDAL_MIN.0, GDAL_MIN.1),
        );
    }
    Check::ok("GDAL", true, format!("{release} (built against {built})"))
}

fn gdal_checks() -> Vec<Check> {
    let version = gdal::version::version_info("RELEASE_NAME");
    let mut checks = vec![gdal_version_check(&gdal::version::version_info("VERSION_NUM"), &version)];
    for name in REQUIRED_DRIVERS {
        checks.push(match gdal::DriverManager::get_driver_by_name(name) {
            Ok(d) => Check::ok(&format!("GDAL driver {name}"), true, d.long_name()),
            Err(_) => {
                let skipped = std::env::var("GDAL_SKIP").ok().filter(|s| s.split([' ', ',']).any(|d| d.eq_ignore_ascii_case(name)));
                let fix = match skipped {
                    Some(list) => format!("GDAL_SKIP={list:?} in the environment turns it off; unset GDAL_SKIP"),
                    None if name == "HTTP" => "GDAL was built without curl: install Debian's libgdal32 (or gdal-bin) package, which has it".into(),
                    None => format!("install a complete GDAL (Debian/Ubuntu: gdal-bin libgdal-dev, {}.{} or newer)", GDAL_MIN.0, GDAL_MIN.1),
                };
                Check::problem(&format!("GDAL driver {name}"), true, "missing", fix)
            }
        });
    }
    checks
}

/// The CPU features the hand-written kernels use.
pub fn cpu_features() -> Vec<&'static str> {
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            f.push("AVX2");
        }
        if std::is_x86_feature_detected!("fma") {
            f.push("FMA");
        }
        if std::is_x86_feature_detected!("avx512f") {
            f.push("AVX-512");
        }
    }
    f
}

/// The compute devices: the wgpu adapter probe's answer and the CPU's features.
pub fn device_check(gpu: std::result::Result<String, String>, cpu: &[&str]) -> Check {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu_text = format!("CPU: {threads} threads{}", if cpu.is_empty() { String::new() } else { format!(", {}", cpu.join(", ")) });
    match gpu {
        Ok(name) if name.contains("(Cpu)") || name.to_lowercase().contains("llvmpipe") || name.to_lowercase().contains("lavapipe") => Check::problem(
            "compute devices",
            false,
            format!("GPU: only a software adapter ({name}); {cpu_text}"),
            "training runs on the CPU; for a GPU install its Vulkan driver (Debian: mesa-vulkan-drivers for AMD/Intel, NVIDIA's driver with its Vulkan ICD)",
        ),
        Ok(name) => Check::ok("compute devices", false, format!("GPU: {name}; {cpu_text}")),
        Err(why) => Check::problem(
            "compute devices",
            false,
            format!("GPU: none ({why}); {cpu_text}"),
            "training and inference run on the CPU (slower); for a GPU install its Vulkan driver (Debian: mesa-vulkan-drivers, or NVIDIA's driver) and check `vulkaninfo --summary`",
        ),
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

pub fn disk_check(dir: &Path, available: Option<u64>) -> Check {
    match available {
        Some(free) if free >= LOW_DISK_BYTES => Check::ok("disk space", false, format!("{:.1} GiB free in {}", gib(free), dir.display())),
        Some(free) => Check::problem(
            "disk space",
            false,
            format!("{:.1} GiB free in {}", gib(free), dir.display()),
            format!("a project needs a few GiB per 100 km² (a whole Sentinel-2 tile tens of GiB): free space, `s2cr clean` old projects, or put projects on a larger disk (at least {:.0} GiB free advised)", gib(LOW_DISK_BYTES)),
        ),
        None => Check::problem("disk space", false, format!("could not measure the free space of {}", dir.display()), "check that the folder exists and can be read"),
    }
}

/// How a STAC API answered: an HTTP status, or why it could not be reached.
pub fn probe(url: &str, timeout: Duration) -> std::result::Result<u16, String> {
    let http = reqwest::blocking::Client::builder().timeout(timeout).connect_timeout(timeout).build().map_err(|e| e.to_string())?;
    http.get(url).send().map(|r| r.status().as_u16()).map_err(|e| crate::error::network_cause(&e))
}

pub fn provider_check(name: &str, url: &str, answer: std::result::Result<u16, String>) -> Check {
    let label = format!("provider {name}");
    match answer {
        Ok(status) if status < 400 => Check::ok(&label, false, format!("{url} answers (HTTP {status})")),
        Ok(status) => Check::problem(&label, false, format!("{url} answers HTTP {status}"), "the service may be down or changed; try again later or use another provider (`--provider`)"),
        Err(why) => Check::problem(
            &label,
            false,
            format!("{url} unreachable: {why}"),
            "offline is fine for the demo and for local catalogs; for real areas connect to the internet, or set HTTPS_PROXY where a proxy is needed",
        ),
    }
}

/// Which credentials are configured: present or absent, never their values.
fn credential_checks() -> Vec<Check> {
    let present = |yes: bool| if yes { "present" } else { "absent" };
    let cdse = crate::catalog::sign::cdse_token().is_some();
    let pc = std::env::var("PC_SDK_SUBSCRIPTION_KEY").is_ok_and(|k| !k.trim().is_empty());
    let openeo = crate::preprocess::openeo::Credentials::load().configured();
    let mut checks = vec![
        if cdse {
            Check::ok("credentials CDSE", false, "access token present")
        } else {
            Check::problem("credentials CDSE", false, "access token absent", "needed for CDSE downloads only: put a token in CDSE_ACCESS_TOKEN or ~/.config/s2cr/cdse-token")
        },
        Check::ok("credentials Planetary Computer", false, format!("subscription key {} (optional: public collections need none)", present(pc))),
    ];
    checks.push(if openeo.is_empty() {
        Check::problem(
            "credentials openEO",
            false,
            "none",
            "needed for `--engine openeo` only: S2CR_OPENEO_USER/PASSWORD, S2CR_OPENEO_CLIENT_ID/SECRET or S2CR_OPENEO_REFRESH_TOKEN in the environment or ~/.config/s2cr/openeo-credentials",
        )
    } else {
        Check::ok("credentials openEO", false, format!("present: {}", openeo.join(", ")))
    });
    checks
}

fn tile_cache_check() -> Check {
    match crate::fsutil::tile_cache_dir() {
        Some(dir) => {
            let (files, bytes) = folder_size(&dir, 6);
            Check::ok("map tile cache", false, format!("{} files, {:.1} MiB in {}", files, bytes as f64 / (1 << 20) as f64, dir.display()))
        }
        None => Check::problem("map tile cache", false, "no cache folder (neither XDG_CACHE_HOME nor HOME is set)", "set HOME; the map then caches OpenStreetMap tiles in ~/.cache/s2cr/tiles"),
    }
}

/// Files and bytes under `dir`, `depth` levels deep.
pub fn folder_size(dir: &Path, depth: usize) -> (u64, u64) {
    let mut total = (0, 0);
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, level)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() && level < depth => stack.push((e.path(), level + 1)),
                Ok(t) if t.is_file() => {
                    total.0 += 1;
                    total.1 += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdal_older_than_the_minimum_fails_the_check_with_the_fix() {
        let old = gdal_version_check("3050300", "3.5.3");
        assert!(!old.ok && old.required && old.detail.contains("older than 3.6"), "{old:?}");
        assert!(old.fix.as_deref().is_some_and(|f| f.contains("3.6 or newer")), "{old:?}");
        assert!(failed(&[old]));
        let fine = gdal_version_check("3060200", "3.6.2");
        assert!(fine.ok && fine.detail.starts_with("3.6.2"), "{fine:?}");
        assert!(gdal_version_check("3100000", "3.10.0").ok);
        assert!(!gdal_version_check("garbage", "?").ok);
        // The library this build runs with passes (CI installs a current one).
        assert!(gdal_checks()[0].ok, "{:?}", gdal_checks()[0]);
    }

    #[test]
    fn no_gpu_is_reported_with_its_fix_and_is_optional() {
        let c = device_check(Err("no adapter found".into()), &["AVX2"]);
        assert!(!c.ok && !c.required && c.detail.contains("GPU: none (no adapter found)") && c.detail.contains("AVX2"), "{c:?}");
        assert!(c.fix.as_deref().is_some_and(|f| f.contains("Vulkan")));
        let soft = device_check(Ok("llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)".into()), &[]);
        assert!(!soft.ok && soft.detail.contains("software"));
        assert!(device_check(Ok("NVIDIA H200 (Vulkan)".into()), &[]).ok);
        assert!(!failed(&[c, soft]));
    }

    #[test]
    fn disk_and_providers() {
        let low = disk_check(Path::new("/p"), Some(2 << 30));
        assert!(!low.ok && low.detail.starts_with("2.0 GiB free") && low.fix.is_some());
        assert!(disk_check(Path::new("/p"), Some(100 << 30)).ok);
        let offline = provider_check("Cdse", "https://stac.dataspace.copernicus.eu/v1", Err("could not resolve the host name".into()));
        assert!(!offline.ok && !offline.required && offline.detail.contains("unreachable") && offline.fix.as_deref().is_some_and(|f| f.contains("demo")));
        assert!(provider_check("X", "u", Ok(200)).ok && !provider_check("X", "u", Ok(503)).ok);
    }

    #[test]
    fn a_real_loopback_server_answers_and_a_closed_port_does_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
            }
        });
        assert_eq!(probe(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5)), Ok(200));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(probe(&format!("http://127.0.0.1:{closed}/"), Duration::from_secs(5)).is_err());
    }
}
