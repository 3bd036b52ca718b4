//! Progress reporting, cancellation and background execution of pipeline stages.
//!
//! A stage receives a [`Progress`]: it reports through it and checks its cancel flag between
//! tiles or batches. [`spawn`] runs a stage on a named worker thread and returns a
//! [`JobHandle`] whose events the CLI renders as progress bars and the GUI drains once per
//! frame. This module knows nothing about how events are shown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{Error, Result};

/// Severity of a log line sent by a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
}

/// What a running stage tells whoever watches it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// A stage (or sub-step) began; `total` is the number of units of work when known.
    Started { stage: String, total: Option<u64> },
    /// `done` of `total` units finished; `message` names the current unit.
    Advanced { stage: String, done: u64, total: u64, message: String },
    /// A measured value, e.g. a loss at a training step.
    Metric { stage: String, name: String, value: f64, step: u64 },
    /// A line of text worth showing to the user.
    Log { stage: String, level: LogLevel, message: String },
    /// The stage completed; `summary` is one line for the user.
    Finished { stage: String, summary: String, elapsed_secs: f64 },
    /// The stage failed with this message (the full cause chain).
    Failed { stage: String, error: String },
    /// The stage stopped because the user asked it to; what it finished is kept.
    Cancelled { stage: String },
}

impl JobEvent {
    /// The stage this event belongs to.
    pub fn stage(&self) -> &str {
        match self {
            JobEvent::Started { stage, .. }
            | JobEvent::Advanced { stage, .. }
            | JobEvent::Metric { stage, .. }
            | JobEvent::Log { stage, .. }
            | JobEvent::Finished { stage, .. }
            | JobEvent::Failed { stage, .. }
            | JobEvent::Cancelled { stage } => stage,
        }
    }
}

/// Handed to a stage: where to report, and whether to stop.
///
/// Cloning is cheap; clones share the cancel flag and the channel.
#[derive(Debug, Clone)]
pub struct Progress {
    stage: String,
    cancel: Arc<AtomicBool>,
    events: Option<Sender<JobEvent>>,
    /// Units of work left before the cancel flag is set by itself ([`Progress::cancel_after`]),
    /// or before the work waits for a cancel ([`PAUSE_AFTER_UNITS`]).
    countdown: Option<(Arc<std::sync::atomic::AtomicU64>, AtZero)>,
}

/// What a [`Progress`] does when its countdown of units reaches zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtZero {
    Cancel,
    WaitForCancel,
}

/// Test hook of the command line: with this variable set to N, a job's work waits after its
/// N-th unit until it is cancelled (at most two minutes), having said so on stderr, so that a
/// test can send a real Ctrl-C (SIGINT) in the middle of a stage that would otherwise end
/// before the signal arrives. The signal, the handler, the stage's own checks and the exit
/// status are the real ones; only the wait is added.
pub const PAUSE_AFTER_UNITS: &str = "S2CR_TEST_PAUSE_AFTER_UNITS";

/// The line written to stderr when the work waits ([`PAUSE_AFTER_UNITS`]).
pub const PAUSED: &str = "paused for a cancel";

impl Progress {
    /// A progress that reports to `events` and stops when `cancel` is set.
    pub fn new(stage: impl Into<String>, events: Sender<JobEvent>, cancel: Arc<AtomicBool>) -> Self {
        Progress { stage: stage.into(), cancel, events: Some(events), countdown: None }
    }

    /// A progress that reports nowhere and is never cancelled (tests, library use).
    pub fn silent(stage: impl Into<String>) -> Self {
        Progress { stage: stage.into(), cancel: Arc::new(AtomicBool::new(false)), events: None, countdown: None }
    }

    /// The same channel and cancel flag, reporting under another stage name.
    pub fn for_stage(&self, stage: impl Into<String>) -> Self {
        Progress { stage: stage.into(), cancel: self.cancel.clone(), events: self.events.clone(), countdown: self.countdown.clone() }
    }

    pub fn stage(&self) -> &str {
        &self.stage
    }

    fn send(&self, event: JobEvent) {
        if let Some(tx) = &self.events {
            // A closed channel only means nobody watches any more; the work goes on.
            let _ = tx.send(event);
        }
    }

    pub fn started(&self, total: Option<u64>) {
        self.send(JobEvent::Started { stage: self.stage.clone(), total });
    }

    pub fn advanced(&self, done: u64, total: u64, message: impl Into<String>) {
        self.send(JobEvent::Advanced { stage: self.stage.clone(), done, total, message: crate::error::redact(&message.into()) });
        if let Some((left, at_zero)) = &self.countdown
            && left.fetch_sub(1, Ordering::SeqCst) == 1
        {
            match at_zero {
                AtZero::Cancel => self.cancel(),
                AtZero::WaitForCancel => {
                    eprintln!("{}: {PAUSED} ({PAUSE_AFTER_UNITS})", self.stage);
                    let start = Instant::now();
                    while !self.is_cancelled() && start.elapsed() < std::time::Duration::from_secs(120) {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
        }
    }

    /// This progress, cancelled by itself once `units` units of work have been reported
    /// ([`Progress::advanced`]): a stop at a known point, as a Ctrl-C there would be (tests of
    /// what each stage keeps when it is stopped).
    pub fn cancel_after(mut self, units: u64) -> Self {
        self.countdown = Some((Arc::new(std::sync::atomic::AtomicU64::new(units.max(1))), AtZero::Cancel));
        self
    }

    pub fn metric(&self, name: impl Into<String>, value: f64, step: u64) {
        self.send(JobEvent::Metric { stage: self.stage.clone(), name: name.into(), value, step });
    }

    pub fn info(&self, message: impl Into<String>) {
        self.send(JobEvent::Log { stage: self.stage.clone(), level: LogLevel::Info, message: crate::error::redact(&message.into()) });
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.send(JobEvent::Log { stage: self.stage.clone(), level: LogLevel::Warn, message: crate::error::redact(&message.into()) });
    }

    /// Says what a removal of an interrupted run's leftovers did (see
    /// [`crate::fsutil::remove_stale_partials`]): nothing when there were none.
    pub fn cleaned(&self, cleanup: crate::fsutil::Cleanup) {
        if cleanup.files > 0 {
            self.info(format!("removed {} unfinished file(s) of an interrupted run ({:.1} MiB) in {}", cleanup.files, cleanup.bytes as f64 / 1_048_576.0, cleanup.dir.display()));
        }
        for failure in cleanup.failures {
            self.warn(failure);
        }
    }

    pub fn finished(&self, summary: impl Into<String>, elapsed_secs: f64) {
        self.send(JobEvent::Finished { stage: self.stage.clone(), summary: summary.into(), elapsed_secs });
    }

    /// Asks the stage to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// `Err(Error::Cancelled)` once cancel was requested: call between units of work, after
    /// the last finished unit has been saved.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.is_cancelled() { Err(Error::Cancelled) } else { Ok(()) }
    }

    /// The shared cancel flag, e.g. for a Ctrl-C handler.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }
}

/// A job running on a worker thread.
pub struct JobHandle<T> {
    name: String,
    events: Receiver<JobEvent>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<T>>>,
}

impl<T> JobHandle<T> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Events sent so far, without blocking (for a GUI frame).
    pub fn drain(&self) -> Vec<JobEvent> {
        self.events.try_iter().collect()
    }

    /// The event receiver, for a loop that blocks on it (the CLI).
    pub fn events(&self) -> &Receiver<JobEvent> {
        &self.events
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// True once the worker has returned (its last events may still be queued).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the worker and returns its result.
    pub fn join(mut self) -> Result<T> {
        let Some(thread) = self.thread.take() else {
            return Err(Error::JobPanicked { job: self.name.clone(), message: "already joined".into() });
        };
        match thread.join() {
            Ok(result) => result,
            Err(panic) => Err(Error::JobPanicked { job: self.name.clone(), message: panic_message(&panic) }),
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic without a message".to_string()
    }
}

/// Runs `work` on a worker thread named after the job. The runner sends `Finished`,
/// `Cancelled` or `Failed` for the job when `work` returns, so stages need not.
pub fn spawn<T, F>(name: impl Into<String>, work: F) -> Result<JobHandle<T>>
where
    T: Send + 'static,
    F: FnOnce(&Progress) -> Result<T> + Send + 'static,
{
    let name = name.into();
    let (tx, rx) = mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let mut progress = Progress::new(name.clone(), tx, cancel.clone());
    if let Some(units) = std::env::var(PAUSE_AFTER_UNITS).ok().and_then(|v| v.parse::<u64>().ok()) {
        progress.countdown = Some((Arc::new(std::sync::atomic::AtomicU64::new(units.max(1))), AtZero::WaitForCancel));
    }
    let thread = std::thread::Builder::new()
        .name(format!("job-{name}"))
        .spawn(move || {
            let start = Instant::now();
            let result = work(&progress);
            match &result {
                Ok(_) => progress.finished("done", start.elapsed().as_secs_f64()),
                Err(Error::Cancelled) => progress.send(JobEvent::Cancelled { stage: progress.stage.clone() }),
                Err(e) => progress.send(JobEvent::Failed { stage: progress.stage.clone(), error: crate::error_chain(e) }),
            }
            result
        })
        .map_err(Error::io(format!("thread job-{name}"), "starting a worker thread"))?;
    Ok(JobHandle { name, events: rx, cancel, thread: Some(thread) })
}


/// 75 -> "1 min 15 s".
pub fn human_duration(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_arrive_in_order_and_the_runner_reports_the_end() {
        let handle = spawn("count", |p| {
            p.started(Some(3));
            for i in 1..=3 {
                p.advanced(i, 3, format!("tile {i}"));
            }
            p.metric("loss", 0.5, 3);
            Ok(42)
        })
        .unwrap();
        let events: Vec<JobEvent> = handle.events().iter().collect();
        assert_eq!(handle.join().unwrap(), 42);
        assert_eq!(events.first(), Some(&JobEvent::Started { stage: "count".into(), total: Some(3) }));
        assert!(matches!(events[3], JobEvent::Advanced { done: 3, total: 3, .. }));
        assert!(matches!(events.last(), Some(JobEvent::Finished { .. })));
    }

    #[test]
    fn cancel_stops_the_loop_and_reports_cancelled() {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let handle = spawn("long", move |p| -> Result<()> {
            let mut done = 0u64;
            loop {
                p.check_cancelled()?;
                done += 1;
                if done == 1 {
                    // Wait until the test has asked to cancel.
                    let _ = go_rx.recv();
                }
            }
        })
        .unwrap();
        handle.cancel();
        go_tx.send(()).unwrap();
        let events: Vec<JobEvent> = handle.events().iter().collect();
        assert!(matches!(handle.join(), Err(Error::Cancelled)));
        assert_eq!(events.last(), Some(&JobEvent::Cancelled { stage: "long".into() }));
    }

    #[test]
    fn a_failure_carries_its_message() {
        let handle = spawn("bad", |_p| -> Result<()> { Err(Error::invalid("t0", "end before start")) }).unwrap();
        let events: Vec<JobEvent> = handle.events().iter().collect();
        assert!(handle.join().is_err());
        match events.last() {
            Some(JobEvent::Failed { error, .. }) => assert!(error.contains("end before start"), "{error}"),
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn a_panicking_job_is_an_error_not_a_crash() {
        let handle = spawn("panics", |_p| -> Result<()> { panic!("boom") }).unwrap();
        match handle.join() {
            Err(Error::JobPanicked { message, .. }) => assert_eq!(message, "boom"),
            other => panic!("expected JobPanicked, got {other:?}"),
        }
    }
}
