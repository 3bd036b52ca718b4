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
        for line in event_lines(&event) {
            if plain {
                eprintln!("{line}");
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

    #[test]
    fn events_read_as_lines() {
        let line = &event_lines(&JobEvent::Metric { stage: "train".into(), name: "g_l1".into(), value: 0.25, step: 10 })[0];
        assert_eq!(line, "[train] step 10: g_l1 = 0.25000");
    }
}
