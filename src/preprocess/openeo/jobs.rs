//! The job book and the run of one job: every job submitted for a project is recorded
//! (`preprocessed/openeo-jobs.json`), so that a run after an interruption takes up the job it
//! left (finished or still running) instead of paying for it again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{Backend, ResultAsset};
use super::graph_digest;
use crate::error::{Error, Result};
use crate::job::Progress;

/// The jobs submitted for a project (`preprocessed/openeo-jobs.json`), so that a run after an
/// interruption takes up the job it left (finished or still running) instead of paying for it
/// again. It records what was paid for: `s2cr clean` keeps it, and a damaged one is refused,
/// never read as empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobBook {
    pub jobs: Vec<JobEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEntry {
    pub backend: String,
    pub graph_sha256: String,
    pub job_id: String,
    pub title: String,
}

impl JobBook {
    /// The book at `path`: empty when there is none yet; an error naming the file when it cannot
    /// be read or is damaged (reading it as empty would pay for every job again).
    pub fn load(path: &Path) -> Result<JobBook> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(JobBook::default()),
            Err(e) => return Err(Error::io(path, "reading the openEO job book")(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::Project {
            path: path.to_path_buf(),
            message: format!(
                "the openEO job book is damaged ({e}): it records the jobs already paid for, so they can be taken up; repair it, or remove it to submit every job again"
            ),
        })
    }

    pub(super) fn find(&self, backend: &str, digest: &str) -> Option<&JobEntry> {
        self.jobs.iter().rev().find(|j| j.backend == backend && j.graph_sha256 == digest)
    }

    pub(super) fn record(path: &Path, entry: JobEntry) -> Result<()> {
        let mut book = JobBook::load(path)?;
        book.jobs.retain(|j| !(j.backend == entry.backend && j.graph_sha256 == entry.graph_sha256));
        book.jobs.push(entry);
        crate::fsutil::ensure_parent(path)?;
        crate::fsutil::save_json(path, &book)
    }
}

/// Runs `graph` as a batch job (or takes up the job an earlier run submitted for the same graph)
/// and downloads its GeoTIFF results into `dir`; returns their paths.
pub fn run_job(backend: &mut Backend, graph: &Value, title: &str, book: &Path, dir: &Path, progress: &Progress) -> Result<Vec<PathBuf>> {
    let result = match run_job_once(backend, graph, title, book, dir, true, progress) {
        Err(TakeUp::Gone(why)) => {
            // A job of an earlier run whose results are no longer there: submitted anew, once.
            progress.warn(format!("{title}: the earlier job's results cannot be had ({why}); submitting the job again"));
            run_job_once(backend, graph, title, book, dir, false, progress).map_err(TakeUp::into_error)
        }
        other => other.map_err(TakeUp::into_error),
    };
    // What the client has to say (a refresh token gone stale on a renewed login).
    for notice in backend.take_notices() {
        progress.warn(notice);
    }
    result
}

/// Why [`run_job_once`] failed: a job taken up from the book whose results are gone, or
/// anything else.
enum TakeUp {
    Gone(Error),
    Failed(Error),
}

impl TakeUp {
    pub(super) fn into_error(self) -> Error {
        match self {
            TakeUp::Gone(e) | TakeUp::Failed(e) => e,
        }
    }
}

impl From<Error> for TakeUp {
    fn from(e: Error) -> TakeUp {
        TakeUp::Failed(e)
    }
}

/// Whether an error is the back-end saying that a job or its results are gone (HTTP 404 or 410,
/// openEO's `JobNotFound`): only then is a job of an earlier run submitted (and paid for) again.
/// A server error, a dropped connection, a full disk or a damaged download is not that.
pub(super) fn gone(e: &Error) -> bool {
    matches!(e, Error::Http { message, .. } if ["HTTP 404", "HTTP 410", "JobNotFound"].iter().any(|m| message.contains(m)))
}

fn run_job_once(backend: &mut Backend, graph: &Value, title: &str, book: &Path, dir: &Path, take_up: bool, progress: &Progress) -> std::result::Result<Vec<PathBuf>, TakeUp> {
    let digest = graph_digest(graph);
    let earlier = if take_up { JobBook::load(book)?.find(backend.root(), &digest).cloned() } else { None };
    let mut id = None;
    let mut taken_up = false;
    if let Some(e) = earlier {
        match backend.job_state(&e.job_id) {
            Ok(s) if matches!(s.status.as_str(), "finished" | "running" | "queued") => {
                progress.info(format!("{title}: taking up job {} of an earlier run ({})", e.job_id, s.status));
                id = Some(e.job_id);
                taken_up = true;
            }
            Ok(s) if s.status == "created" => {
                backend.start_job(&e.job_id)?;
                id = Some(e.job_id);
                taken_up = true;
            }
            // Failed, cancelled, or unknown to the back-end (another user's): a new job.
            Ok(_) => {}
            Err(e) if gone(&e) => {}
            // Anything else (the network, a server error) must not pay for a second job.
            Err(e) => return Err(TakeUp::Failed(e)),
        }
    }
    let id = match id {
        Some(id) => id,
        None => {
            let id = backend.create_job(graph, title)?;
            JobBook::record(book, JobEntry { backend: backend.root().to_string(), graph_sha256: digest, job_id: id.clone(), title: title.to_string() })?;
            progress.info(format!("{title}: job {id} created"));
            backend.start_job(&id)?;
            id
        }
    };
    backend.wait(&id, title, progress)?;
    // Results go to a folder of their own job: a partial download of another job's (an earlier
    // run with other settings) is never resumed into this one.
    let dir = dir.join(crate::fsutil::safe_name(&id));
    let lost = |e: Error| if taken_up && gone(&e) { TakeUp::Gone(e) } else { TakeUp::Failed(e) };
    let assets: Vec<ResultAsset> = backend.result_assets(&id).map_err(lost)?.into_iter().filter(|a| a.name.ends_with(".tif") || a.name.ends_with(".tiff") || a.href.contains(".tif")).collect();
    if assets.is_empty() {
        return Err(TakeUp::Failed(Error::http(backend.url(&format!("/jobs/{id}/results")), format!("{title}: the job finished without a GeoTIFF result"))));
    }
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir, "creating the download folder"))?;
    let mut files = Vec::new();
    for a in &assets {
        progress.check_cancelled()?;
        files.push(backend.download(a, &dir, progress).map_err(lost)?);
    }
    Ok(files)
}
