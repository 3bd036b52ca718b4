//! Showing a running job: its events as progress bars on a terminal (log lines elsewhere,
//! nothing but errors when quiet), Ctrl-C as a clean cancel, and the job's result at the end.
//!
//! This module must not know any command or stage: it renders `JobEvent`s of whatever job it
//! is given.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::job::{JobEvent, JobHandle, LogLevel};

/// The cancel flag of the job the CLI is currently showing; Ctrl-C sets it.
fn ctrl_c_target() -> &'static Mutex<Option<Arc<AtomicBool>>> {
    static TARGET: OnceLock<Mutex<Option<Arc<AtomicBool>>>> = OnceLock::new();
    TARGET.get_or_init(|| {
        let _ = ctrlc::set_handler(|| {
            if let Ok(target) = ctrl_c_target().lock()
                && let Some(flag) = target.as_ref()
            {
                if flag.swap(true, Ordering::SeqCst) {
                    // Second Ctrl-C: the user really wants out.
                    std::process::exit(130);
                }
                eprintln!("\nCancelling after the current step (Ctrl-C again to quit at once)...");
            } else {
                std::process::exit(130);
            }
        });
        Mutex::new(None)
    })
}

/// Shows a job's events as progress bars (or log lines when not on a terminal / quiet) until it
/// ends, then returns its result. Ctrl-C cancels the job cleanly.
pub fn render_job<T>(handle: JobHandle<T>, quiet: bool) -> Result<T> {
    if let Ok(mut t) = ctrl_c_target().lock() {
        *t = Some(handle.cancel_flag());
    }
    let bars = MultiProgress::with_draw_target(if quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let plain = !quiet && !std::io::stderr().is_terminal();
    let style = ProgressStyle::with_template("{prefix:>12.bold} [{bar:30}] {pos}/{len} {wide_msg} ({eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut current: Option<(String, ProgressBar)> = None;
    let mut throttle = Throttle::new(PLAIN_EVERY);
    for event in handle.events().iter() {
        let stage = event.stage().to_string();
        if current.as_ref().is_none_or(|(s, _)| *s != stage) {
            if let Some((_, bar)) = current.take() {
                bar.finish_and_clear();
            }
            let bar = bars.add(ProgressBar::new(0));
            bar.set_style(style.clone());
            bar.set_prefix(stage.clone());
            current = Some((stage.clone(), bar));
        }
        let Some((_, bar)) = current.as_ref() else { continue };
        if plain {
            for line in throttle.lines(&event, std::time::Instant::now()) {
                eprintln!("{line}");
            }
        }
        for line in event_lines(&event) {
            if plain {
                continue;
            } else if !quiet && !matches!(event, JobEvent::Advanced { .. } | JobEvent::Started { .. }) {
                bars.suspend(|| eprintln!("{line}"));
            }
        }
        match &event {
            JobEvent::Started { total, .. } => bar.set_length(total.unwrap_or(0)),
            JobEvent::Advanced { done, total, message, .. } => {
                bar.set_length(*total);
                bar.set_position(*done);
                bar.set_message(message.clone());
            }
            JobEvent::Finished { .. } | JobEvent::Failed { .. } | JobEvent::Cancelled { .. } => bar.finish_and_clear(),
            _ => {}
        }
    }
    if let Ok(mut t) = ctrl_c_target().lock() {
        *t = None;
    }
    Ok(handle.join()?)
}

/// Runs `work` as a job named `name` and renders it until it ends (see [`render_job`]).
pub fn run_job<T, F>(name: &str, quiet: bool, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&crate::job::Progress) -> crate::Result<T> + Send + 'static,
{
    render_job(crate::job::spawn(name, work)?, quiet)
}

/// Without a terminal (a log file, CI), progress and metrics are summed up in one line this
/// often; messages, warnings and a stage's end are written as they come.
const PLAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The lines written without a terminal: every message, and one line per `every` (and at a
/// stage's end) with its progress and latest metrics, instead of a line per step and metric.
struct Throttle {
    every: std::time::Duration,
    last: Option<std::time::Instant>,
    /// The latest progress line, not yet written.
    progress: Option<String>,
    /// The latest value of each metric since the last line, in the order first seen.
    metrics: Vec<(String, f64, u64)>,
}

impl Throttle {
    fn new(every: std::time::Duration) -> Throttle {
        Throttle { every, last: None, progress: None, metrics: Vec::new() }
    }

    fn summary(&mut self, stage: &str) -> Option<String> {
        if self.progress.is_none() && self.metrics.is_empty() {
            return None;
        }
        let mut line = self.progress.take().unwrap_or_else(|| format!("[{stage}]"));
        if let Some(step) = self.metrics.iter().map(|m| m.2).max() {
            let values: Vec<String> = self.metrics.iter().map(|(n, v, _)| format!("{n} {v:.4}")).collect();
            line.push_str(&format!(" | step {step}: {}", values.join(", ")));
        }
        self.metrics.clear();
        Some(line)
    }

    fn lines(&mut self, event: &JobEvent, now: std::time::Instant) -> Vec<String> {
        let stage = event.stage().to_string();
        match event {
            // Metrics ride along with the next progress line.
            JobEvent::Metric { name, value, step, .. } => {
                match self.metrics.iter_mut().find(|m| m.0 == *name) {
                    Some(m) => (m.1, m.2) = (*value, *step),
                    None => self.metrics.push((name.clone(), *value, *step)),
                }
                Vec::new()
            }
            JobEvent::Advanced { done, total, .. } => {
                self.progress = event_lines(event).pop();
                let due = self.last.is_none_or(|t| now.duration_since(t) >= self.every);
                if due || done == total {
                    self.last = Some(now);
                    return self.summary(&stage).into_iter().collect();
                }
                Vec::new()
            }
            // The progress so far first, then the event itself.
            _ => {
                let mut out: Vec<String> = if matches!(event, JobEvent::Log { .. }) { Vec::new() } else { self.summary(&stage).into_iter().collect() };
                out.extend(event_lines(event));
                out
            }
        }
    }
}

/// How an event reads as a log line (for non-terminal output and the log panel).
pub fn event_lines(event: &JobEvent) -> Vec<String> {
    match event {
        JobEvent::Started { stage, total } => {
            vec![format!("[{stage}] started{}", total.map(|t| format!(" ({t} steps)")).unwrap_or_default())]
        }
        JobEvent::Advanced { stage, done, total, message } => vec![format!("[{stage}] {done}/{total} {message}")],
        JobEvent::Metric { stage, name, value, step } => vec![format!("[{stage}] step {step}: {name} = {value:.5}")],
        JobEvent::Log { stage, level: LogLevel::Info, message } => vec![format!("[{stage}] {message}")],
        JobEvent::Log { stage, level: LogLevel::Warn, message } => vec![format!("[{stage}] warning: {message}")],
        JobEvent::Finished { stage, summary, elapsed_secs } => vec![format!("[{stage}] {summary} in {elapsed_secs:.1} s")],
        JobEvent::Failed { stage, error } => vec![format!("[{stage}] failed: {error}")],
        JobEvent::Cancelled { stage } => vec![format!("[{stage}] cancelled; run the command again to resume")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_job_returns_the_result_and_the_error() {
        let ok = crate::job::spawn("count", |p| {
            p.started(Some(2));
            p.advanced(1, 2, "a");
            p.advanced(2, 2, "b");
            Ok(7)
        })
        .unwrap();
        assert_eq!(render_job(ok, true).unwrap(), 7);
        let bad = crate::job::spawn("bad", |_| -> crate::Result<()> { Err(crate::Error::invalid("x", "nope")) }).unwrap();
        assert!(render_job(bad, true).unwrap_err().to_string().contains("nope"));
    }

    /// Without a terminal, 400 steps of 5 metrics each are a handful of lines, not 2400; the
    /// messages and the end come through as they are.
    #[test]
    fn plain_output_sums_progress_up_every_few_seconds() {
        let mut t = Throttle::new(std::time::Duration::from_secs(10));
        let start = std::time::Instant::now();
        let mut lines = t.lines(&JobEvent::Started { stage: "train".into(), total: Some(400) }, start);
        for step in 1..=400u64 {
            // Four steps a second.
            let now = start + std::time::Duration::from_millis(250 * step);
            for name in ["g_adversarial", "g_l1", "d_real", "d_fake", "lr"] {
                lines.extend(t.lines(&JobEvent::Metric { stage: "train".into(), name: name.into(), value: step as f64 / 1000.0, step }, now));
            }
            lines.extend(t.lines(&JobEvent::Advanced { stage: "train".into(), done: step, total: 400, message: format!("step {step}") }, now));
            if step == 200 {
                lines.extend(t.lines(&JobEvent::Log { stage: "train".into(), level: LogLevel::Info, message: "checkpoint saved".into() }, now));
            }
        }
        lines.extend(t.lines(&JobEvent::Finished { stage: "train".into(), summary: "400 steps".into(), elapsed_secs: 100.0 }, start + std::time::Duration::from_secs(100)));
        // Started, a line every 10 s of the 100 s (and the last step), the message, the end.
        assert!((10..=14).contains(&lines.len()), "{} lines: {lines:#?}", lines.len());
        assert_eq!(lines[0], "[train] started (400 steps)");
        assert!(lines.iter().any(|l| l == "[train] checkpoint saved"));
        assert!(lines.iter().any(|l| l.starts_with("[train] 400/400 step 400 | step 400: g_adversarial 0.4000")), "{lines:#?}");
        assert_eq!(lines.last().unwrap(), "[train] 400 steps in 100.0 s");
    }

    #[test]
    fn events_read_as_lines() {
        let line = &event_lines(&JobEvent::Metric { stage: "train".into(), name: "g_l1".into(), value: 0.25, step: 10 })[0];
        assert_eq!(line, "[train] step 10: g_l1 = 0.25000");
    }
}
