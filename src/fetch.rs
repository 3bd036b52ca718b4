//! Downloads only the area of interest of each chosen scene: windowed reads of Cloud-Optimized
//! GeoTIFFs over HTTP range requests (GDAL /vsicurl/), written as `raw/<date>/<scene>/<band>.tif`
//! in the source's data type. Retries with exponential backoff on timeouts, server errors and
//! truncated bodies; a file appears under its final name only after it was read back whole, so
//! an interrupted fetch resumes by skipping the files that exist.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalog::stage::SearchResult;
use crate::catalog::Scene;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::{Manifest, Project, Stage};
use crate::raster::{self, PixelWindow};

/// How to fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FetchOptions {
    /// Attempts per file.
    pub attempts: u32,
    /// First retry delay, milliseconds; doubles each attempt.
    pub backoff_ms: u64,
    /// Timeout of one HTTP request, seconds.
    pub timeout_secs: u64,
    /// Margin around the AOI, metres (room for reprojection and filters' edges).
    pub margin_m: f64,
    /// Files fetched at once.
    pub parallel: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions { attempts: 5, backoff_ms: 1000, timeout_secs: 60, margin_m: 200.0, parallel: 4 }
    }
}

/// One fetched file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fetched {
    pub href: String,
    pub path: PathBuf,
    pub window: [usize; 4],
    /// Size of the source file, from the server.
    pub source_bytes: u64,
    /// False when the file was already there (resumed run).
    pub downloaded: bool,
}

/// The pixel window of `location` covering a WGS84 bounding box plus `margin_m`.
pub fn window_for_wgs84_bbox(location: &str, bbox: [f64; 4], margin_m: f64) -> Result<(raster::RasterInfo, PixelWindow)> {
    let info = raster::info(location)?;
    if info.crs_wkt.is_empty() {
        // Radar geometry (Sentinel-1 GRD): the window comes from the GCPs. GRD pixels are 10 m.
        let points = bbox_outline(bbox, 21);
        let window = raster::gcp_window_for_wgs84(location, &points, (margin_m / GRD_PIXEL_M).ceil() as usize).map_err(|e| match e {
            Error::Raster { location, message } => Error::Raster {
                location,
                message: format!("{message}; without a map projection or GCPs use a terrain-corrected product such as Planetary Computer's sentinel-1-rtc"),
            },
            e => e,
        })?;
        return Ok((info, window));
    }
    let wgs84 = crate::grid::wgs84_traditional()?;
    let mut target = gdal::spatial_ref::SpatialRef::from_wkt(&info.crs_wkt).map_err(Error::gdal(location, "reading the CRS"))?;
    target.set_axis_mapping_strategy(gdal::spatial_ref::AxisMappingStrategy::TraditionalGisOrder);
    let transform = gdal::spatial_ref::CoordTransform::new(&wgs84, &target).map_err(Error::gdal(location, "creating a transformation"))?;
    let b = transform.transform_bounds(&bbox, 21).map_err(Error::gdal(location, "projecting the AOI"))?;
    let bounds = [b[0] - margin_m, b[1] - margin_m, b[2] + margin_m, b[3] + margin_m];
    let window = raster::window_for_bounds(&info, bounds)?;
    Ok((info, window))
}

/// Pixel spacing of Sentinel-1 IW GRDH products, metres.
const GRD_PIXEL_M: f64 = 10.0;

/// Metadata item of a window cut from a radar-geometry raster: "x_off,y_off" of the window in
/// the full product, which the calibration LUTs are indexed by.
pub const WINDOW_OFFSET_KEY: &str = "S2CR_WINDOW_OFFSET";

/// `n` points along each edge of a lon/lat bounding box.
fn bbox_outline(b: [f64; 4], n: usize) -> Vec<(f64, f64)> {
    let n = n.max(2);
    let mut points = Vec::with_capacity(4 * n);
    for i in 0..n {
        let t = i as f64 / (n - 1) as f64;
        let (x, y) = (b[0] + t * (b[2] - b[0]), b[1] + t * (b[3] - b[1]));
        points.extend([(x, b[1]), (x, b[3]), (b[0], y), (b[2], y)]);
    }
    points
}

/// Size in bytes of a local file or URL, as GDAL sees it (for a URL, from the size GDAL already
/// learnt; no extra download).
fn source_size(location: &str) -> u64 {
    let (Ok(path), Ok(mode)) = (std::ffi::CString::new(raster::gdal_path(location)), std::ffi::CString::new("rb")) else {
        return 0;
    };
    // SAFETY: a file handle opened, positioned and closed here; null checked.
    unsafe {
        let f = gdal_sys::VSIFOpenL(path.as_ptr(), mode.as_ptr());
        if f.is_null() {
            return 0;
        }
        let size = if gdal_sys::VSIFSeekL(f, 0, 2 /* SEEK_END */) == 0 { gdal_sys::VSIFTellL(f) } else { 0 };
        gdal_sys::VSIFCloseL(f);
        size
    }
}

/// Copies the window of `href` over the AOI to `dst`, retrying transient failures. An existing
/// `dst` is complete (it was renamed into place after validation) and is kept.
pub fn fetch_window(href: &str, dst: &Path, bbox: [f64; 4], opts: &FetchOptions, progress: &Progress) -> Result<Fetched> {
    if dst.is_file() {
        let info = raster::info(&dst.display().to_string())?;
        return Ok(Fetched { href: href.into(), path: dst.to_path_buf(), window: [0, 0, info.width, info.height], source_bytes: 0, downloaded: false });
    }
    raster::set_http_timeout(opts.timeout_secs);
    let mut last: Option<Error> = None;
    for attempt in 0..opts.attempts.max(1) {
        progress.check_cancelled()?;
        if attempt > 0 {
            let delay = Duration::from_millis(opts.backoff_ms.saturating_mul(1 << (attempt - 1).min(10)));
            progress.warn(format!(
                "{href}: attempt {attempt} failed ({}); retrying in {:.1} s",
                last.as_ref().map(|e| crate::error_chain(e)).unwrap_or_default(),
                delay.as_secs_f64()
            ));
            std::thread::sleep(delay);
            // Forget what GDAL cached of a failed transfer.
            raster::clear_http_cache();
        }
        let result = (|| -> Result<Fetched> {
            let (info, w) = window_for_wgs84_bbox(href, bbox, opts.margin_m)?;
            if info.crs_wkt.is_empty() {
                raster::extract_window_with_metadata(href, dst, w, &[(WINDOW_OFFSET_KEY, format!("{},{}", w.x_off, w.y_off))])?;
            } else {
                raster::extract_window(href, dst, w)?;
            }
            Ok(Fetched { href: href.into(), path: dst.to_path_buf(), window: [w.x_off, w.y_off, w.width, w.height], source_bytes: source_size(href), downloaded: true })
        })();
        match result {
            Ok(f) => return Ok(f),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(Error::Cancelled))
}

/// Downloads a whole file (e.g. a Sentinel-1 GRD SAFE zip for the SNAP engine) to `dst`,
/// resuming an interrupted transfer with a Range request from where it stopped. The partial
/// file is `<dst>.partial`; `dst` appears only when the size matches what the server announced.
pub fn fetch_file(url: &str, dst: &Path, opts: &FetchOptions, bearer: Option<&crate::catalog::sign::BearerToken>, progress: &Progress) -> Result<u64> {
    // The token goes with requests to its own hosts only; reqwest drops it when a redirect
    // leads to another host.
    let authorization = bearer.and_then(|b| b.for_url(url)).map(|t| format!("Bearer {t}"));
    fetch_file_authorized(url, dst, opts, authorization.as_deref(), progress)
}

/// [`fetch_file`] with the value of an `Authorization` header that the caller has decided may
/// go to `url` (reqwest drops it when a redirect leads to another host).
pub fn fetch_file_authorized(url: &str, dst: &Path, opts: &FetchOptions, authorization: Option<&str>, progress: &Progress) -> Result<u64> {
    use std::io::{Read, Write};
    if dst.is_file() {
        return Ok(0);
    }
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(parent, "creating the download folder"))?;
    }
    let partial = PathBuf::from(format!("{}.partial", dst.display()));
    let http = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(opts.timeout_secs))
        // For the blocking client this bounds each read, not the whole transfer.
        .timeout(Duration::from_secs(opts.timeout_secs))
        .build()
        .map_err(|e| Error::invalid("http client", e.to_string()))?;
    let mut received = 0u64;
    let mut last = String::new();
    for attempt in 0..opts.attempts.max(1) {
        progress.check_cancelled()?;
        if attempt > 0 {
            let delay = Duration::from_millis(opts.backoff_ms.saturating_mul(1 << (attempt - 1).min(10)));
            progress.warn(format!("{url}: {last}; resuming in {:.1} s", delay.as_secs_f64()));
            std::thread::sleep(delay);
        }
        let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        let mut request = http.get(url);
        if have > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        if let Some(value) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let mut response = match request.send() {
            Ok(r) => r,
            Err(e) => {
                last = crate::error::network_cause(&e);
                continue;
            }
        };
        let status = response.status();
        let (append, total) = match status.as_u16() {
            206 => {
                let range = response.headers().get(reqwest::header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).and_then(content_range);
                match range {
                    // The bytes follow what we have, and the whole size is known.
                    Some((start, Some(total))) if start == have => (true, Some(total)),
                    _ => {
                        // Another offset (or no size): what we have cannot be completed from this
                        // answer; start again from the first byte.
                        let _ = std::fs::remove_file(&partial);
                        last = format!("the server answered the resume from byte {have} with {range:?}");
                        continue;
                    }
                }
            }
            200 => (false, response.content_length()),
            416 if have > 0 => {
                // The partial file is already whole or longer than the file: start again.
                let _ = std::fs::remove_file(&partial);
                last = "the server refused the resume range".into();
                continue;
            }
            _ => {
                last = format!("HTTP {status}");
                if status.is_client_error() && status.as_u16() != 429 {
                    break;
                }
                continue;
            }
        };
        let file = std::fs::OpenOptions::new().create(true).append(append).write(true).truncate(!append).open(&partial);
        let mut file = file.map_err(Error::io(&partial, "opening the partial download"))?;
        let mut buf = vec![0u8; 1 << 16];
        let mut failed = None;
        loop {
            match response.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    file.write_all(&buf[..n]).map_err(Error::io(&partial, "writing the download"))?;
                    received += n as u64;
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
            if progress.is_cancelled() {
                // The partial file stays for the next run to resume.
                return Err(Error::Cancelled);
            }
        }
        file.flush().map_err(Error::io(&partial, "writing the download"))?;
        drop(file);
        let size = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        match (failed, total) {
            (None, Some(t)) if size == t => {
                std::fs::rename(&partial, dst).map_err(Error::io(dst, "moving the download into place"))?;
                return Ok(received);
            }
            (None, None) => {
                std::fs::rename(&partial, dst).map_err(Error::io(dst, "moving the download into place"))?;
                return Ok(received);
            }
            (Some(e), _) => last = format!("transfer broken after {size} bytes: {e}"),
            (None, Some(t)) => last = format!("got {size} of {t} bytes"),
        }
    }
    Err(Error::http(url, format!("{last}; the partial download is kept and the next run resumes it")))
}

/// (first byte, whole size) of a `Content-Range: bytes FIRST-LAST/SIZE` header; the size is
/// `None` where the server gives `*`.
fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, size) = rest.split_once('/')?;
    let first = span.split_once('-')?.0.trim().parse().ok()?;
    Some((first, size.trim().parse().ok()))
}

/// A file to fetch.
#[derive(Debug, Clone)]
struct Task {
    href: String,
    collection: String,
    dst: PathBuf,
    /// A small file fetched whole (GRD calibration and noise XML), not a raster window.
    whole: bool,
    /// Upper estimate of the bytes it adds to raw/ ([`window_estimate`]).
    estimate: u64,
}

/// Bytes a GRD calibration or noise table takes, about (they are 0.5 to 3 MB).
const TABLE_ESTIMATE: u64 = 3 << 20;

/// Upper estimate of the bytes of one band's window, uncompressed: the grid's extent plus the
/// margin each side, at the band's native resolution and sample size (Sentinel-2 60/20/10 m
/// 16-bit, SCL 8-bit; Sentinel-1 10 m, 32-bit for RTC power, which bounds GRD's 16-bit DNs).
pub fn window_estimate(grid: &crate::grid::TargetGrid, margin_m: f64, band: &str, sentinel1: bool) -> u64 {
    let (resolution, bytes) = if sentinel1 {
        (10.0, 4)
    } else {
        match band {
            "B01" | "B09" | "B10" => (60.0, 2),
            "SCL" => (20.0, 1),
            "AOT" => (10.0, 2),
            "B05" | "B06" | "B07" | "B8A" | "B11" | "B12" => (20.0, 2),
            _ => (10.0, 2),
        }
    };
    let side = |n: usize| ((n as f64 * grid.pixel_size_m + 2.0 * margin_m.max(0.0)) / resolution).ceil().max(1.0) as u64;
    side(grid.width) * side(grid.height) * bytes
}

/// Why `need` bytes do not fit in `free` (with 512 MiB to spare for the stages after), or None.
pub fn space_shortfall(need: u64, free: Option<u64>, dir: &Path) -> Option<String> {
    let free = free?;
    let want = need.saturating_add(512 << 20);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    (want > free).then(|| {
        format!(
            "the fetch needs up to {:.2} GiB (uncompressed estimate, plus 0.5 GiB for the next stages) but the disk holding {} has {:.2} GiB free: {:.2} GiB missing. \
             Free space (`s2cr clean` removes other projects' intermediates) or move the project to a larger disk",
            gib(need),
            dir.display(),
            gib(free),
            gib(want - free)
        )
    })
}

fn scene_tasks(project: &Project, provider: &crate::catalog::ProviderConfig, scene: &Scene, bands: &[String], margin_m: f64) -> Result<Vec<Task>> {
    let sentinel1 = scene.mission == crate::catalog::Mission::Sentinel1;
    let checked = |key: &str, href: &String| -> Result<String> {
        crate::catalog::check_href(provider, href).map_err(|why| Error::Asset { item: scene.id.clone(), message: format!("asset {key}: {why}") })?;
        Ok(href.clone())
    };
    let mut tasks = Vec::new();
    for band in bands {
        let href = scene.assets.get(band).ok_or_else(|| Error::Asset {
            item: scene.id.clone(),
            message: format!("the scene has no {band} asset (assets: {})", scene.assets.keys().cloned().collect::<Vec<_>>().join(", ")),
        })?;
        let estimate = window_estimate(&project.config.grid, margin_m, band, sentinel1);
        tasks.push(Task { href: checked(band, href)?, collection: scene.collection.clone(), dst: project.raw_band_file(&scene.datetime, &scene.id, band), whole: false, estimate });
        // GRD digital numbers need their calibration and noise tables.
        if scene.is_grd() {
            for kind in ["calibration", "noise"] {
                let key = format!("{kind}-{band}");
                let href = scene.assets.get(&key).ok_or_else(|| Error::Asset {
                    item: scene.id.clone(),
                    message: format!("the GRD scene has no {key} asset (schema-{kind}-{}); the native engine needs it to calibrate", band.to_lowercase()),
                })?;
                tasks.push(Task { href: checked(&key, href)?, collection: scene.collection.clone(), dst: project.raw_grd_table(&scene.datetime, &scene.id, kind, band), whole: true, estimate: TABLE_ESTIMATE });
            }
        }
    }
    Ok(tasks)
}

/// Totals of a fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchReport {
    pub files: Vec<Fetched>,
    /// Bytes received over the network (GDAL's network statistics).
    pub network_bytes: u64,
    /// Sum of the sizes of the source files touched.
    pub source_bytes: u64,
    pub elapsed_secs: f64,
}

/// Fetches the scenes the search chose (S2 t0 and t1, their S1 partners, and the acquisitions
/// kept for composites) into `raw/`.
pub fn fetch(project: &Project, opts: &FetchOptions, progress: &Progress) -> Result<FetchReport> {
    progress.cleaned(crate::fsutil::remove_stale_partials(&project.raw_dir(), crate::project::MAX_DEPTH));
    let search_path = project.search_json();
    let search = SearchResult::load(project, "fetch")?;
    if search.chosen_t0.is_none() || search.chosen_t1.is_none() {
        return Err(Error::Project {
            path: search_path,
            message: format!("the search chose no Sentinel-2 scene for t0 or t1 ({}); widen the dates and search again", search.notes.join("; ")),
        });
    }
    let provider = match &search.provider {
        Some(p) => p.clone(),
        None => crate::catalog::ProviderConfig::for_project(&project.config, project.root())?,
    };
    let mut tasks = Vec::new();
    // The chosen scenes, then the other acquisitions the windows' composites keep.
    let composites = [search.composite_s2(false), search.composite_s2(true)].concat();
    for scenes in search.chosen_s2().into_iter().chain(composites) {
        for scene in scenes {
            tasks.extend(scene_tasks(project, &provider, scene, &project.config.bands.s2, opts.margin_m)?);
        }
    }
    for s1 in search.paired_s1() {
        tasks.extend(scene_tasks(project, &provider, s1, &project.config.bands.s1, opts.margin_m)?);
    }
    // What it will add to raw/, before anything is downloaded: refused when the disk is short.
    let pending: Vec<&Task> = tasks.iter().filter(|t| !t.dst.is_file()).collect();
    let need: u64 = pending.iter().map(|t| t.estimate).sum();
    let free = crate::fsutil::available_space(project.root());
    progress.info(format!(
        "{} of {} file(s) to fetch: up to {:.1} MiB to download and store in raw/ (uncompressed estimate){}",
        pending.len(),
        tasks.len(),
        need as f64 / (1u64 << 20) as f64,
        free.map(|f| format!("; {:.1} GiB free", f as f64 / (1u64 << 30) as f64)).unwrap_or_default()
    ));
    if let Some(why) = space_shortfall(need, free, project.root()) {
        return Err(Error::Project { path: project.raw_dir(), message: why });
    }
    // Protected assets: Planetary Computer URLs are signed here (tokens expire, so never
    // stored); CDSE downloads take a bearer token from the environment, sent to CDSE's hosts
    // only.
    let mut bearer = None;
    if let Some(provider) = &search.provider {
        if let Some(token_url) = &provider.token_url {
            let signer = crate::catalog::sign::PcSigner::new(token_url, Duration::from_secs(opts.timeout_secs))?;
            for t in &mut tasks {
                t.href = signer.sign(&t.href, &t.collection)?;
            }
        }
        bearer = crate::catalog::sign::BearerToken::for_provider(provider);
        match &bearer {
            Some(b) => {
                let mine = tasks.iter().filter(|t| b.applies_to(&t.href)).count();
                progress.info(format!("the CDSE token goes with the {mine} download(s) from CDSE's hosts, no others"));
            }
            None if provider.kind == crate::catalog::ProviderKind::Cdse => progress.warn(
                "CDSE downloads need an access token: set CDSE_ACCESS_TOKEN or write it to ~/.config/s2cr/cdse-token \
                 (it is never written to the project)",
            ),
            None => {}
        }
    }
    let bbox = project.aoi()?.bbox();
    let start = Instant::now();
    raster::network_stats_reset();
    let total = tasks.len() as u64;
    progress.started(Some(total));
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let results: Mutex<Vec<Result<Fetched>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..opts.parallel.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(task) = tasks.get(i) else { break };
                    if progress.is_cancelled() {
                        break;
                    }
                    let r = if task.whole {
                        fetch_file(&task.href, &task.dst, opts, bearer.as_ref(), progress).map(|bytes| Fetched {
                            href: task.href.clone(),
                            path: task.dst.clone(),
                            window: [0; 4],
                            source_bytes: std::fs::metadata(&task.dst).map(|m| m.len()).unwrap_or(bytes),
                            downloaded: bytes > 0,
                        })
                    } else {
                        // The token rides along with this thread's reads of its own hosts only.
                        match bearer.as_ref().map(|b| b.gdal_guard(&task.href)).transpose() {
                            Ok(guard) => {
                                let fetched = fetch_window(&task.href, &task.dst, bbox, opts, progress);
                                drop(guard);
                                fetched
                            }
                            Err(e) => Err(e),
                        }
                    };
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    progress.advanced(n, total, task.dst.strip_prefix(project.root()).unwrap_or(&task.dst).display().to_string());
                    if let Ok(mut r_all) = results.lock() {
                        r_all.push(r);
                    }
                }
            });
        }
    });
    progress.check_cancelled()?;
    let mut files = Vec::new();
    for r in results.into_inner().unwrap_or_default() {
        files.push(r?);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let report = FetchReport {
        network_bytes: raster::network_stats_downloaded_bytes(),
        source_bytes: files.iter().map(|f| f.source_bytes).sum(),
        elapsed_secs: start.elapsed().as_secs_f64(),
        files,
    };
    let mut manifest = Manifest::new(Stage::Fetch, project.stage_parameters(Stage::Fetch, serde_json::json!({"margin_m": opts.margin_m})));
    manifest.add_input(project.root(), &search_path)?;
    for f in &report.files {
        manifest.add_output(project.root(), &f.path)?;
    }
    manifest.save(&project.manifest_path(Stage::Fetch, None))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_size_is_estimated_and_a_short_disk_refused() {
        let grid = crate::grid::TargetGrid { epsg: 32633, pixel_size_m: 10.0, x_min: 0.0, y_max: 0.0, width: 1000, height: 500 };
        // 10 km x 5 km plus 200 m each side.
        assert_eq!(window_estimate(&grid, 200.0, "B04", false), 1040 * 540 * 2);
        assert_eq!(window_estimate(&grid, 200.0, "B11", false), 520 * 270 * 2);
        assert_eq!(window_estimate(&grid, 200.0, "SCL", false), 520 * 270);
        assert_eq!(window_estimate(&grid, 200.0, "B01", false), 174 * 90 * 2);
        assert_eq!(window_estimate(&grid, 0.0, "VV", true), 1000 * 500 * 4);
        let dir = Path::new("/data/fire");
        assert!(space_shortfall(1 << 30, Some(10 << 30), dir).is_none());
        let why = space_shortfall(3 << 30, Some(2 << 30), dir).unwrap();
        assert!(why.contains("3.00 GiB") && why.contains("2.00 GiB free") && why.contains("1.50 GiB missing") && why.contains("/data/fire"), "{why}");
        assert!(space_shortfall(u64::MAX, None, dir).is_none(), "unknown free space: no refusal");
    }

    #[test]
    fn content_ranges_give_their_first_byte_and_size() {
        assert_eq!(content_range("bytes 100-199/1000"), Some((100, Some(1000))));
        assert_eq!(content_range("bytes 0-9/*"), Some((0, None)));
        assert_eq!(content_range("items 0-9/10"), None);
        assert_eq!(content_range("bytes x-9/10"), None);
    }
}
