//! `s2cr gui --frame-stats FILE`: every frame's timing appended to a CSV, for measuring the app
//! in a real window (`scripts/frame-bench.sh` drives it under Xvfb with xdotool). A line per
//! frame: seconds since the window opened, the time since the previous frame and the time the
//! previous frame took to run (egui's `cpu_usage`: layout, tessellation and the renderer's
//! submission), both in milliseconds. Written out once a second, so a killed app loses at most
//! the last second.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};

pub struct FrameStats {
    path: PathBuf,
    file: std::fs::File,
    start: Instant,
    last: Option<Instant>,
    pending: String,
    flushed: Instant,
}

impl FrameStats {
    /// Starts the file (replacing one there) with its header.
    pub fn create(path: &Path) -> Result<FrameStats> {
        let mut file = std::fs::File::create(path).map_err(Error::io(path, "creating the frame statistics"))?;
        writeln!(file, "seconds,interval_ms,frame_ms").map_err(Error::io(path, "writing the frame statistics"))?;
        let now = Instant::now();
        Ok(FrameStats { path: path.to_path_buf(), file, start: now, last: None, pending: String::new(), flushed: now })
    }

    /// Records a frame: `cpu_usage` is the previous frame's run time, seconds (eframe's).
    pub fn frame(&mut self, cpu_usage: Option<f32>) {
        let now = Instant::now();
        let interval = self.last.map(|l| (now - l).as_secs_f64() * 1e3);
        self.last = Some(now);
        let cell = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
        self.pending.push_str(&format!("{:.3},{},{}\n", (now - self.start).as_secs_f64(), cell(interval), cell(cpu_usage.map(|c| c as f64 * 1e3))));
        if (now - self.flushed).as_secs_f64() >= 1.0 {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Err(e) = self.file.write_all(self.pending.as_bytes()) {
            tracing::warn!("frame statistics not written to {}: {e}", self.path.display());
        }
        self.pending.clear();
        self.flushed = Instant::now();
    }
}

impl Drop for FrameStats {
    fn drop(&mut self) {
        self.flush();
    }
}
