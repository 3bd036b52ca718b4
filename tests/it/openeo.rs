//! The openEO engine against a real openEO back-end on loopback (`scripts/openeo_backend.py`:
//! openeo-driver's API, batch jobs run by openeo-pg-parser-networkx and openeo-processes-dask on
//! a Dask distributed cluster of two workers, collections from the demo's static STAC catalog
//! under CDSE's names). The back-end runs the graphs this program builds; its results are
//! compared with the native engine's on the same demo project, and its faults (a failing job,
//! server errors while polling, a dropped download, wrong credentials, a cancel) are the
//! back-end's own behaviour, switched on by its command line.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use s2cr::job::{JobEvent, Progress};
use s2cr::pipeline::PipelineSettings;
use s2cr::preprocess::openeo::OpenEoSettings;
use s2cr::preprocess::s1::SpeckleFilter;
use s2cr::preprocess::stage::{Engine, PreprocessConfig};
use s2cr::project::{Project, Stage};
use s2cr::raster;

const USER: &str = "s2cr-test";
const PASSWORD: &str = "s2cr-test-password";

/// The back-end's Python, or `None` (with the reason printed) when it cannot run.
fn backend_python() -> Option<String> {
    let python = std::env::var("S2CR_OPENEO_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import openeo_driver, openeo_pg_parser_networkx, distributed, rasterio, openeo_processes_dask.process_implementations"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        crate::missing_tool(&format!("{python} cannot import the openEO back-end's packages (scripts/requirements-openeo.txt; .ci/run installs them and sets S2CR_OPENEO_PYTHON)"));
        return None;
    }
    Some(python)
}

/// A running back-end; stopped (the server and its Dask workers, by PID) when dropped.
struct Backend {
    child: Child,
    url: String,
    pids: Vec<u32>,
    _dir: tempfile::TempDir,
}

impl Backend {
    fn start(python: &str, extra: &[&str]) -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready.json");
        let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/catalog.json");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/openeo_backend.py");
        let log = std::fs::File::create(dir.path().join("backend.log")).unwrap();
        let mut child = Command::new(python)
            .arg(&script)
            .args(["--catalog", catalog.to_str().unwrap(), "--workdir", dir.path().join("jobs").to_str().unwrap(), "--ready", ready.to_str().unwrap()])
            .args(["--port", "0", "--user", USER, "--password", PASSWORD])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !ready.is_file() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the openEO back-end exited ({status}) before it was ready:\n{}", std::fs::read_to_string(dir.path().join("backend.log")).unwrap_or_default());
            }
            assert!(started.elapsed() < Duration::from_secs(120), "the openEO back-end was not ready within 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("openEO back-end ready in {:.1} s", started.elapsed().as_secs_f64());
        let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
        let mut pids = vec![info["pid"].as_u64().unwrap() as u32];
        pids.extend(info["worker_pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32));
        assert_eq!(pids.len(), 3, "a server and two Dask workers: {info}");
        Backend { child, url: info["url"].as_str().unwrap().trim_end_matches('/').to_string(), pids, _dir: dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("backend.log")).unwrap_or_default()
    }

    fn settings(&self) -> OpenEoSettings {
        OpenEoSettings { poll_max_s: 0.5, ..OpenEoSettings::new(&self.url) }
    }

    /// A job's status, read with our own login (not the client under test's).
    fn job_status(&self, id: &str) -> String {
        let http = reqwest::blocking::Client::new();
        let token: serde_json::Value = http.get(format!("{}/credentials/basic", self.url)).basic_auth(USER, Some(PASSWORD)).send().unwrap().json().unwrap();
        let bearer = format!("basic//{}", token["access_token"].as_str().unwrap());
        let job: serde_json::Value = http.get(format!("{}/jobs/{id}", self.url)).bearer_auth(bearer).send().unwrap().json().unwrap();
        job["status"].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        // Whatever is left (the server, its workers) is stopped by PID.
        for pid in &self.pids {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).stderr(Stdio::null()).status();
        }
        let _ = self.child.wait();
    }
}

fn set_credentials(user: &str, password: &str) {
    // SAFETY: each test of this binary runs in its own process (nextest), and these variables
    // are read only by the stage this test runs.
    unsafe {
        std::env::set_var("S2CR_OPENEO_USER", user);
        std::env::set_var("S2CR_OPENEO_PASSWORD", password);
        std::env::set_var("XDG_CONFIG_HOME", "/nonexistent");
    }
}

/// The demo project searched (and fetched, for the native engine).
fn demo_project(dir: &Path, fetch: bool) -> (Project, PipelineSettings) {
    let project = s2cr::demo::create_project(dir).unwrap();
    let settings = s2cr::demo::settings(&project, Some(1), s2cr::model::DeviceChoice::Cpu).unwrap();
    let progress = Progress::silent("test");
    s2cr::pipeline::run_stage(&project, Stage::Search, &settings, &progress).unwrap();
    if fetch {
        let (progress, rx) = recording("fetch");
        s2cr::pipeline::run_stage(&project, Stage::Fetch, &settings, &progress).unwrap();
        // The fetch says what it will store before it starts.
        let log = messages(&rx);
        assert!(log.iter().any(|m| m.contains("file(s) to fetch: up to") && m.contains("MiB") && m.contains("GiB free")), "{log:?}");
    }
    (project, settings)
}

fn openeo_config(backend: &Backend) -> PreprocessConfig {
    PreprocessConfig { engine: Engine::Openeo, speckle: SpeckleFilter::None, openeo: Some(backend.settings()), ..PreprocessConfig::default() }
}

fn recording(stage: &str) -> (Progress, Receiver<JobEvent>) {
    let (tx, rx) = std::sync::mpsc::channel();
    (Progress::new(stage, tx, Default::default()), rx)
}

fn messages(rx: &Receiver<JobEvent>) -> Vec<String> {
    rx.try_iter()
        .filter_map(|e| match e {
            JobEvent::Log { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

/// Every band of a raster, and its size.
fn bands(path: &Path) -> (Vec<Vec<f32>>, usize) {
    let loc = path.display().to_string();
    let info = raster::info(&loc).unwrap();
    let idx: Vec<usize> = (1..=info.bands.len()).collect();
    let stack = raster::read_window(&loc, &idx, None).unwrap();
    (stack.bands, info.width * info.height)
}

#[test]
fn openeo_engine_matches_the_native_engine_and_survives_the_back_ends_faults() {
    let Some(python) = backend_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (project, settings) = demo_project(&dir.path().join("demo"), true);
    // The native engine as the reference: Sentinel-1 with the Refined Lee filter, then without
    // any (the state the openEO results are compared with first).
    let keep = |outputs: &[s2cr::preprocess::stage::Preprocessed], to: &Path| {
        for p in outputs {
            let dst = to.join(&p.date).join(p.path.file_name().unwrap());
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(&p.path, &dst).unwrap();
        }
    };
    let filtered_cfg = PreprocessConfig { speckle: SpeckleFilter::RefinedLee, ..settings.preprocess.clone() };
    let filtered = dir.path().join("native-refined-lee");
    keep(&s2cr::preprocess::stage::preprocess(&project, &filtered_cfg, &Progress::silent("native")).unwrap(), &filtered);
    let native_cfg = PreprocessConfig { speckle: SpeckleFilter::None, ..settings.preprocess.clone() };
    let native = s2cr::preprocess::stage::preprocess(&project, &native_cfg, &Progress::silent("native")).unwrap();
    let kept = dir.path().join("native");
    keep(&native, &kept);

    // The first two status polls answer 500, the first download breaks halfway.
    let backend = Backend::start(&python, &["--fail-polls", "2", "--drop-downloads", "1"]);
    let cfg = openeo_config(&backend);

    // Wrong credentials: a clear message, and no job.
    set_credentials(USER, "wrong");
    let e = s2cr::error_chain(&s2cr::preprocess::stage::preprocess(&project, &cfg, &Progress::silent("openeo")).unwrap_err());
    assert!(e.contains("refused the user name and password") && e.contains("S2CR_OPENEO_PASSWORD") && !e.contains("wrong"), "{e}");
    set_credentials(USER, PASSWORD);

    // A job that fails on the back-end (a grid where the catalog has no data): its log is shown.
    let mut elsewhere = project.clone();
    elsewhere.config.grid.x_min -= 300_000.0;
    let (progress, rx) = recording("openeo");
    let e = s2cr::error_chain(&s2cr::preprocess::stage::preprocess(&elsewhere, &cfg, &progress).unwrap_err());
    let first_log = messages(&rx);
    assert!(e.contains("ended in error") && e.contains("log") && e.contains("no SENTINEL2_L2A items"), "{e}\nback-end log:\n{}", backend.log());

    // The real run, through the injected faults.
    let (progress, rx) = recording("openeo");
    let outputs = s2cr::preprocess::stage::preprocess(&project, &cfg, &progress).unwrap_or_else(|e| panic!("{}\nback-end log:\n{}", s2cr::error_chain(&e), backend.log()));
    let log = messages(&rx);
    let joined = log.join("\n");
    // The first polls (of the failing job) answered 500 and were retried.
    assert!(first_log.iter().chain(&log).any(|m| m.contains("polling job") && m.contains("500")), "the 500s were retried:\n{first_log:?}\n{joined}");
    assert!(log.iter().any(|m| m.contains("transfer broken") || m.contains("resuming")), "the broken download was resumed:\n{joined}");
    assert!(!joined.contains("not on the project grid"), "the results landed on the grid:\n{joined}");
    // The back-end's collection states no scale or offset: none is taken, with a warning that
    // names the setting, and the report says so.
    assert!(log.iter().any(|m| m.contains("states no scale or offset") && m.contains("s2_offset: -1000")), "{joined}");
    assert!(outputs.iter().filter(|p| p.sensor == "S2").all(|p| p.processing.contains("x 0.0001 + 0 (no offset")), "{outputs:?}");
    // Each job went created -> queued/running -> finished, in that order.
    let statuses = |job_word: &str| -> Vec<usize> { log.iter().enumerate().filter(|(_, m)| m.contains(job_word)).map(|(i, _)| i).collect() };
    let (created, finished) = (statuses(" created"), statuses(" finished"));
    assert_eq!(created.len(), outputs.len(), "one job per output:\n{joined}");
    assert_eq!(finished.len(), outputs.len(), "{joined}");
    assert!(created.iter().zip(&finished).all(|(c, f)| c < f), "{joined}");
    assert!(log.iter().any(|m| m.contains(" running") || m.contains(" queued")), "{joined}");
    assert_eq!(outputs.len(), native.len());

    let grid = &project.config.grid;
    for p in &outputs {
        let info = raster::info(&p.path.display().to_string()).unwrap();
        assert_eq!((info.width, info.height, info.epsg), (grid.width, grid.height, Some(grid.epsg)));
        assert!(p.processing.starts_with("openEO "), "{}", p.processing);
        let reference = kept.join(&p.date).join(p.path.file_name().unwrap());
        let (ours, n) = bands(&p.path);
        let (theirs, _) = bands(&reference);
        assert_eq!(ours.len(), theirs.len());
        if p.sensor == "S2" {
            // The last band is the mask (1 = unusable).
            let (m_ours, m_theirs) = (&ours[ours.len() - 1], &theirs[theirs.len() - 1]);
            let agree = m_ours.iter().zip(m_theirs).filter(|(a, b)| a == b).count();
            let both_clear: Vec<usize> = (0..n).filter(|&i| m_ours[i] == 0.0 && m_theirs[i] == 0.0).collect();
            let mut worst = 0f32;
            for b in 0..ours.len() - 1 {
                for &i in &both_clear {
                    worst = worst.max((ours[b][i] - theirs[b][i]).abs());
                }
            }
            println!(
                "S2 {}: masks agree on {agree} of {n} pixels ({:.3} %), {} clear in both; largest reflectance difference there {worst:e}",
                p.date,
                100.0 * agree as f64 / n as f64,
                both_clear.len()
            );
            assert!(both_clear.len() > n / 4, "most of the demo is clear");
            assert!(worst <= 1e-6, "S2 {}: {worst}", p.date);
            assert!(agree as f64 >= 0.99 * n as f64, "S2 {}: masks agree on {agree} of {n}", p.date);
        } else {
            let mut worst = 0f32;
            let mut finite_agree = 0;
            for b in 0..ours.len() {
                for i in 0..n {
                    let (a, c) = (ours[b][i], theirs[b][i]);
                    if a.is_finite() == c.is_finite() {
                        finite_agree += 1;
                    }
                    if a.is_finite() && c.is_finite() {
                        worst = worst.max((a - c).abs());
                    }
                }
            }
            println!("S1 {}: valid pixels agree on {finite_agree} of {}; largest dB difference {worst:e}", p.date, n * ours.len());
            assert!(worst <= 1e-4, "S1 {}: {worst} dB", p.date);
            assert_eq!(finite_agree, n * ours.len());
        }
    }

    // Again, from the command line: nothing to do, no new job.
    let out = assert_cmd::cargo::cargo_bin_cmd!("s2cr")
        .args(["--project", project.root().to_str().unwrap(), "preprocess", "--engine", "openeo", "--speckle", "none", "--openeo-backend", &backend.url])
        .env_remove("S2CR_LOG")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("up to date") && !text.contains(" created"), "{text}");

    // The speckle filter runs here, after the download: the graphs are the same, so the
    // finished jobs are taken up (none submitted, none paid twice), and Sentinel-1 equals the
    // native engine's Refined Lee (filtered on linear power in both).
    let (progress, rx) = recording("openeo");
    let cfg = PreprocessConfig { speckle: SpeckleFilter::RefinedLee, ..cfg };
    let outputs = s2cr::preprocess::stage::preprocess(&project, &cfg, &progress).unwrap();
    let log = messages(&rx);
    assert_eq!(log.iter().filter(|m| m.contains("taking up job") && m.contains("finished")).count(), outputs.len(), "{log:?}");
    assert!(!log.iter().any(|m| m.contains(" created")), "{log:?}");
    for p in outputs.iter().filter(|p| p.sensor == "S1") {
        let (ours, n) = bands(&p.path);
        let (theirs, _) = bands(&filtered.join(&p.date).join("S1.tif"));
        let mut worst = 0f32;
        for b in 0..ours.len() {
            for i in 0..n {
                assert_eq!(ours[b][i].is_finite(), theirs[b][i].is_finite());
                if ours[b][i].is_finite() {
                    worst = worst.max((ours[b][i] - theirs[b][i]).abs());
                }
            }
        }
        println!("S1 {} with Refined Lee: largest dB difference {worst:e}", p.date);
        assert!(worst <= 1e-4, "S1 {}: {worst} dB", p.date);
    }
}

/// A preprocess run that must fail: its error chain and its log.
fn failing_preprocess(project: &Project, cfg: &PreprocessConfig) -> (String, Vec<String>) {
    let (progress, rx) = recording("openeo");
    let e = s2cr::error_chain(&s2cr::preprocess::stage::preprocess(project, cfg, &progress).unwrap_err());
    (e, messages(&rx))
}

/// The demo project and a back-end started with `faults` (its first result listing answering
/// 503), after a first run that paid for one job, booked it, and failed on that 503.
fn one_job_booked(python: &str, faults: &[&str]) -> (tempfile::TempDir, Project, Backend, PreprocessConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (project, _) = demo_project(&dir.path().join("demo"), false);
    let backend = Backend::start(python, faults);
    set_credentials(USER, PASSWORD);
    let cfg = openeo_config(&backend);
    let (e, log) = failing_preprocess(&project, &cfg);
    assert!(e.contains("503"), "{e}\n{log:?}");
    assert_eq!(created(&log), 1, "{log:?}");
    (dir, project, backend, cfg)
}

/// Jobs a run's log says it created (paid for), and took up from the book.
fn created(log: &[String]) -> usize {
    log.iter().filter(|m| m.contains(" created")).count()
}
fn taken_up(log: &[String]) -> usize {
    log.iter().filter(|m| m.contains("taking up job")).count()
}

/// A job taken up from the job book is paid for again only when the back-end says it or its
/// results are gone: a 503 on its results fails the run (the next run takes the job up again),
/// a job the back-end does not know is submitted anew, and a damaged book is refused with its
/// path instead of being read as empty.
#[test]
fn a_taken_up_job_is_paid_again_only_when_the_back_end_says_it_is_gone() {
    let Some(python) = backend_python() else { return };
    // The first two listings of a job's results answer 503; the first download breaks halfway.
    let (_dir, project, backend, cfg) = one_job_booked(&python, &["--fail-results", "2", "--drop-downloads", "1"]);
    // Run 2: the booked job is taken up; its results answer 503 again: not paid for again.
    let (e, log) = failing_preprocess(&project, &cfg);
    assert!(e.contains("503"), "{e}\n{log:?}");
    assert!(log.iter().any(|m| m.contains("taking up job")), "{log:?}");
    assert_eq!(created(&log), 0, "a 503 must not pay for the job again: {log:?}");
    // Run 3: taken up once more (its download, the first, breaks halfway and is resumed, not
    // paid for again), and the rest submitted.
    let (progress, rx) = recording("openeo");
    let outputs = s2cr::preprocess::stage::preprocess(&project, &cfg, &progress).unwrap_or_else(|e| panic!("{}\n{}", s2cr::error_chain(&e), backend.log()));
    let log = messages(&rx);
    assert_eq!(log.iter().filter(|m| m.contains("taking up job")).count(), 1, "{log:?}");
    assert!(log.iter().any(|m| m.contains("transfer broken") || m.contains("resuming")), "the taken-up job's broken download was resumed: {log:?}");
    assert_eq!(created(&log), outputs.len() - 1, "{log:?}");
    // A booked job the back-end does not know (404): submitted anew.
    let book_path = project.preprocessed_openeo_jobs();
    let mut book: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&book_path).unwrap()).unwrap();
    for j in book["jobs"].as_array_mut().unwrap() {
        j["job_id"] = serde_json::json!("no-such-job");
    }
    std::fs::write(&book_path, serde_json::to_vec(&book).unwrap()).unwrap();
    std::fs::remove_file(project.manifest_path(Stage::Preprocess, None)).unwrap();
    for p in &outputs {
        std::fs::remove_file(&p.path).unwrap();
    }
    let (progress, rx) = recording("openeo");
    s2cr::preprocess::stage::preprocess(&project, &cfg, &progress).unwrap();
    assert_eq!(created(&messages(&rx)), outputs.len());
    // A damaged book is refused, naming it; nothing is submitted.
    std::fs::write(&book_path, b"{\"jobs\": [").unwrap();
    for p in &outputs {
        std::fs::remove_file(&p.path).unwrap();
    }
    let (progress, rx) = recording("openeo");
    let e = s2cr::error_chain(&s2cr::preprocess::stage::preprocess(&project, &cfg, &progress).unwrap_err());
    assert!(e.contains("openeo-jobs.json") && e.contains("damaged"), "{e}");
    assert_eq!(created(&messages(&rx)), 0);
    // `s2cr clean` keeps the book (it records what was paid for).
    std::fs::write(&book_path, serde_json::to_vec(&book).unwrap()).unwrap();
    s2cr::clean::clean(&project, &[], false).unwrap();
    assert!(book_path.is_file());
}

/// A damaged download (a checksum mismatch, twice) and a full disk (writes failing with EFBIG)
/// on a job taken up from the book fail the run without paying for the job again; the next run
/// takes the job up once more and finishes.
#[test]
fn a_damaged_download_or_a_full_disk_on_a_taken_up_job_does_not_pay_again() {
    let Some(python) = backend_python() else { return };
    // The first listing of a job's results answers 503; the first two downloads come with their
    // first byte changed.
    let (_dir, project, backend, cfg) = one_job_booked(&python, &["--fail-results", "1", "--corrupt-downloads", "2"]);
    // Run 2: taken up; its download does not match the announced checksum, twice.
    let (e, log) = failing_preprocess(&project, &cfg);
    assert!(e.contains("damaged") && e.contains("SHA-256"), "{e}\n{log:?}");
    assert!(log.iter().any(|m| m.contains("downloading it again")), "{log:?}");
    assert_eq!((taken_up(&log), created(&log)), (1, 0), "a checksum mismatch must not pay for the job again: {log:?}");
    // Run 3: taken up; the disk is full (files over 64 KiB cannot be written; SIGXFSZ ignored so
    // the write fails with EFBIG instead of killing the test).
    let limit = |bytes: Option<u64>| {
        // SAFETY: getrlimit/setrlimit/signal on this test's own process (nextest runs each test in
        // a process of its own); the soft limit only, restored below.
        unsafe {
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
            lim.rlim_cur = bytes.map_or(lim.rlim_max, |b| b as libc::rlim_t);
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
    };
    limit(Some(64 << 10));
    let (progress, rx) = recording("openeo");
    let result = s2cr::preprocess::stage::preprocess(&project, &cfg, &progress);
    limit(None);
    let e = s2cr::error_chain(&result.unwrap_err());
    let log = messages(&rx);
    eprintln!("full disk: {e}");
    assert!(e.to_lowercase().contains("file too large"), "{e}\n{log:?}");
    assert_eq!((taken_up(&log), created(&log)), (1, 0), "a full disk must not pay for the job again: {log:?}");
    // Run 4: taken up once more, and the rest submitted.
    let (progress, rx) = recording("openeo");
    let outputs = s2cr::preprocess::stage::preprocess(&project, &cfg, &progress).unwrap_or_else(|e| panic!("{}\n{}", s2cr::error_chain(&e), backend.log()));
    let log = messages(&rx);
    assert_eq!(taken_up(&log), 1, "{log:?}");
    assert_eq!(created(&log), outputs.len() - 1, "{log:?}");
}

#[test]
fn cancelling_the_stage_stops_the_remote_job() {
    let Some(python) = backend_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (project, _) = demo_project(&dir.path().join("demo"), false);
    // Jobs wait 30 s in `running` before they compute.
    let backend = Backend::start(&python, &["--job-delay", "30"]);
    set_credentials(USER, PASSWORD);
    let cfg = openeo_config(&backend);
    let (progress, rx) = recording("openeo");
    let cancel = progress.cancel_flag();
    let worker = {
        let (project, cfg, progress) = (project.clone(), cfg.clone(), progress.clone());
        std::thread::spawn(move || s2cr::preprocess::stage::preprocess(&project, &cfg, &progress))
    };
    // Wait for the first job to run, then cancel.
    let started = Instant::now();
    let mut log = Vec::new();
    let job = loop {
        log.extend(messages(&rx));
        if let Some(m) = log.iter().find(|m| m.contains(" running")) {
            break m.split("job ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no job ran: {log:?}\n{}", backend.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    let result = worker.join().unwrap();
    assert!(matches!(result, Err(s2cr::Error::Cancelled)), "{result:?}");
    log.extend(messages(&rx));
    assert!(log.iter().any(|m| m.contains(&format!("job {job} cancelled on the back-end"))), "{log:?}");
    assert_eq!(backend.job_status(&job), "canceled");
    // The cancelled job is in the project's job book (a rerun sees it cancelled and submits
    // anew), and no output was written.
    let book: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(project.preprocessed_openeo_jobs()).unwrap()).unwrap();
    assert!(book["jobs"].as_array().unwrap().iter().any(|j| j["job_id"] == job.as_str()));
    assert!(!project.preprocessed_s2("2018-09-20").is_file());
}

#[test]
fn openid_connect_logins_renew_expired_tokens_and_keep_secrets_to_the_token_endpoint() {
    let Some(python) = backend_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (project, _) = demo_project(&dir.path().join("demo"), false);
    // Access tokens live 2 s and every job waits 3 s: each job's polls outlive a token.
    let (secret, refresh) = ("client-secret-7f3a9c21e4b8", "refresh-token-2d8e61b0c5f9");
    let backend = Backend::start(&python, &["--oidc-client-id", "s2cr-ci", "--oidc-client-secret", secret, "--oidc-refresh-token", refresh, "--oidc-token-ttl", "2", "--job-delay", "3"]);
    let issuer = |path: &str| -> serde_json::Value {
        let origin = backend.url.split("/openeo").next().unwrap().to_string();
        reqwest::blocking::get(format!("{origin}/oidc/{path}")).unwrap().json().unwrap()
    };
    // SAFETY: as in set_credentials.
    let set = |pairs: &[(&str, Option<&str>)]| unsafe {
        std::env::set_var("XDG_CONFIG_HOME", "/nonexistent");
        for (k, v) in pairs {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    };
    let config = |auth: s2cr::preprocess::openeo::AuthMethod| PreprocessConfig { openeo: Some(OpenEoSettings { auth, ..backend.settings() }), ..openeo_config(&backend) };

    // A wrong client secret: the identity provider's refusal, clearly.
    set(&[("S2CR_OPENEO_CLIENT_ID", Some("s2cr-ci")), ("S2CR_OPENEO_CLIENT_SECRET", Some("not-the-secret-91c3"))]);
    let cfg = config(s2cr::preprocess::openeo::AuthMethod::OidcClientCredentials);
    let e = s2cr::error_chain(&s2cr::preprocess::stage::preprocess(&project, &cfg, &Progress::silent("openeo")).unwrap_err());
    assert!(e.contains("identity provider refused") && e.contains("client id and secret") && !e.contains("not-the-secret"), "{e}");

    // Client credentials: every job runs, tokens renewed on the way.
    set(&[("S2CR_OPENEO_CLIENT_SECRET", Some(secret))]);
    let before = issuer("_seen")["token_requests"].as_u64().unwrap();
    let outputs = s2cr::preprocess::stage::preprocess(&project, &cfg, &Progress::silent("openeo")).unwrap_or_else(|e| panic!("{}\n{}", s2cr::error_chain(&e), backend.log()));
    assert_eq!(outputs.len(), 4);
    let logins = issuer("_seen")["token_requests"].as_u64().unwrap() - before;
    assert!(logins >= 2, "expired tokens were renewed: {logins} token request(s)");
    // With the scope the openEO client sends: openid and the back-end's scopes for the
    // provider, those the provider supports.
    let scopes = issuer("_seen")["scopes"].clone();
    assert!(scopes.as_array().unwrap().iter().any(|s| s == &serde_json::json!(["client_credentials", "openeo openid"])), "{scopes}");

    // A refresh token from the credentials file, rotated by the provider at each use: the
    // client keeps the new one and stores it back in the file.
    std::fs::remove_dir_all(project.preprocessed_dir()).unwrap();
    set(&[("S2CR_OPENEO_CLIENT_ID", None), ("S2CR_OPENEO_CLIENT_SECRET", None), ("S2CR_OPENEO_REFRESH_TOKEN", None)]);
    let config_home = dir.path().join("config");
    let file = config_home.join("s2cr/openeo-credentials");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, format!("# CDSE\nS2CR_OPENEO_REFRESH_TOKEN={refresh}\n")).unwrap();
    // SAFETY: as in set_credentials.
    unsafe { std::env::set_var("XDG_CONFIG_HOME", &config_home) };
    let cfg = config(s2cr::preprocess::openeo::AuthMethod::Auto);
    let (progress, rx) = recording("openeo");
    s2cr::preprocess::stage::preprocess(&project, &cfg, &progress).unwrap_or_else(|e| panic!("{}\n{}", s2cr::error_chain(&e), backend.log()));
    let log = messages(&rx);
    let stored = std::fs::read_to_string(&file).unwrap();
    let current = stored.lines().find_map(|l| l.strip_prefix("S2CR_OPENEO_REFRESH_TOKEN=")).unwrap().to_string();
    assert!(stored.starts_with("# CDSE\n") && current != refresh && !current.is_empty(), "the rotated token is stored back");
    assert!(!log.iter().any(|m| m.contains("stale")), "{log:?}");
    // From a variable, a rotated token cannot be stored back: the variable is said stale (the
    // file is left as it is), and no token is shown.
    set(&[("S2CR_OPENEO_REFRESH_TOKEN", Some(current.as_str()))]);
    unsafe { std::env::set_var("XDG_CONFIG_HOME", &config_home) };
    let mut b = s2cr::preprocess::openeo::Backend::connect(&OpenEoSettings { auth: s2cr::preprocess::openeo::AuthMethod::OidcRefreshToken, ..backend.settings() }, s2cr::preprocess::openeo::Credentials::load()).unwrap();
    let notices = b.take_notices().join("\n");
    assert!(notices.contains("S2CR_OPENEO_REFRESH_TOKEN is now stale") && !notices.contains(&current), "{notices}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stored, "the file is not the variable's");
    unsafe { std::env::remove_var("S2CR_OPENEO_REFRESH_TOKEN") };
    // The first login's jobs are in the job book but belong to another user here (the back-end
    // answers 404 for them): new jobs are submitted.
    assert_eq!(log.iter().filter(|m| m.contains("taking up job")).count(), 0, "another user's jobs are not this user's: {log:?}");
    let seen = issuer("_seen");
    assert_eq!(seen["secret_seen_outside_token_endpoint"], false, "{seen}");
    assert!(!log.join("\n").contains(refresh) && !log.join("\n").contains(secret));
}

#[test]
fn a_result_off_the_project_grid_is_warped_onto_it_with_a_warning() {
    let Some(python) = backend_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (project, _) = demo_project(&dir.path().join("demo"), false);
    // A back-end that aligns its grid 5 m (half a pixel) east of the one asked for, and whose
    // collection states its Sentinel-2 scale and offset (taken over the search's provider).
    let backend = Backend::start(&python, &["--shift-grid", "5", "--s2-scaling", "0.0001,-0.05"]);
    set_credentials(USER, PASSWORD);
    let (progress, rx) = recording("openeo");
    let outputs = s2cr::preprocess::stage::preprocess(&project, &openeo_config(&backend), &progress).unwrap_or_else(|e| panic!("{}\n{}", s2cr::error_chain(&e), backend.log()));
    let log = messages(&rx);
    assert_eq!(log.iter().filter(|m| m.contains("is not on the project grid") && m.contains("warping it onto the grid")).count(), outputs.len(), "{log:?}");
    let g = &project.config.grid;
    for p in &outputs {
        let info = raster::info(&p.path.display().to_string()).unwrap();
        assert_eq!((info.width, info.height, info.geo_transform), (g.width, g.height, g.geo_transform()));
        assert!(p.valid_percent > 20.0, "{} {}: {} %", p.sensor, p.date, p.valid_percent);
        if p.sensor == "S2" {
            assert!(p.processing.contains("reflectance = value x 0.0001 + -0.05 (the back-end's collection SENTINEL2_L2A (raster:bands))"), "{}", p.processing);
        }
    }
    assert!(!log.iter().any(|m| m.contains("states no scale or offset")), "{log:?}");
}
