//! How long a training run will take, said before it starts: a few real steps of the run's
//! model, batch and data on the chosen device (the first ones, which warm up, timed apart), one
//! validation pass, one checkpoint save and one preview, scaled by how many of each the run's
//! schedule has. The last measurement of each setting is kept in `runs/estimates.json`, so the
//! app can show it again without measuring.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use serde::{Deserialize, Serialize};

use super::cpu::adam::FusedAdam;
use super::checkpoint::{CheckpointFiles, latest_checkpoint};
use super::train::{TrainOptions, total_steps, training_data, validate, validates_after, write_step_preview};
use super::device;
use super::step::{GanStep, gan_step, scalar};
use crate::dataset::loader::{PatchBatch, PatchBatcher, load_normalization};
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::Project;

/// Steps run before timing: the first ones allocate and warm caches.
pub const WARM_UP_STEPS: usize = 2;
/// Steps timed by default.
pub const MEASURED_STEPS: usize = 10;
/// Settings whose last measurement is kept.
const KEPT: usize = 16;

/// The expected wall time of a training run, and what it is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// What decides the time: model, batch, patches, device (see [`setting_key`]).
    pub key: String,
    /// The device measured on, in words.
    pub device: String,
    /// The model, in words ("ngf 16, depth 6").
    pub model: String,
    /// The run's steps (those left, when it resumes).
    pub steps: usize,
    /// Opening the data and building the networks.
    pub setup_s: f64,
    /// The warm-up steps, each.
    pub warm_up_step_s: f64,
    /// A step after the warm-up (mean of the timed ones).
    pub step_s: f64,
    pub measured_steps: usize,
    pub validations: usize,
    pub validation_s: f64,
    pub checkpoints: usize,
    pub checkpoint_s: f64,
    pub previews: usize,
    pub preview_s: f64,
    /// Everything together.
    pub total_s: f64,
    pub measured_at: chrono::DateTime<chrono::Utc>,
}

impl Estimate {
    /// "about 3 min 10 s for 600 steps (0.28 s a step) on CPU, model ngf 16, depth 6".
    pub fn summary(&self) -> String {
        format!("about {} for {} steps ({:.3} s a step) on {}, model {}", crate::job::human_duration(self.total_s), self.steps, self.step_s, self.device, self.model)
    }
}

/// What decides a run's time, as a key: the model, the batch, the number of training and
/// validation patches, the device asked for, the schedule.
pub fn setting_key(project: &Project, opts: &TrainOptions) -> String {
    let summary: Option<crate::dataset::DatasetSummary> = crate::fsutil::load_json(&project.dataset_json(), "").ok();
    let tc = &opts.train;
    let value = serde_json::json!({
        "model": opts.model,
        "device": format!("{:?}", opts.device),
        "batch": tc.batch_size,
        "loader": [tc.workers, tc.augment as usize],
        "steps": [tc.epochs, tc.decay_epochs, tc.max_steps, tc.validate_every, tc.checkpoint_every, tc.preview_every],
        "in_memory_mib": tc.in_memory_mib,
        "dataset": summary.map(|s| serde_json::json!([s.train, s.val, s.config.tiles.size])),
    });
    value.to_string()
}

/// The last measurement for these settings, if any (and readable).
pub fn last_estimate(project: &Project, opts: &TrainOptions) -> Option<Estimate> {
    let all: BTreeMap<String, Estimate> = crate::fsutil::load_json(&project.train_estimates_json(), "").ok()?;
    let mut e = all.get(&setting_key(project, opts))?.clone();
    // The steps left depend on the run's checkpoint, not on the measurement.
    let (steps, ..) = schedule(project, opts).ok()?;
    e.rescale(steps);
    Some(e)
}

/// How many steps, validations, checkpoints and previews the run has left, and the batches of
/// an epoch.
fn schedule(project: &Project, opts: &TrainOptions) -> Result<(Schedule, usize)> {
    let tc = &opts.train;
    let summary: crate::dataset::DatasetSummary = crate::fsutil::load_json(&project.dataset_json(), "run `s2cr dataset` first")?;
    let batches_per_epoch = summary.train.div_ceil(tc.batch_size.max(1)).max(1);
    let total = total_steps(tc, batches_per_epoch);
    let done = if opts.resume { latest_checkpoint(project, &opts.run)?.map_or(0, |c| c.step) } else { 0 };
    let has_val = summary.val > 0;
    let mut s = Schedule { steps: total.saturating_sub(done), ..Default::default() };
    for step in done + 1..=total {
        if has_val && validates_after(tc, step, step % batches_per_epoch == 0, total) {
            s.validations += 1;
        }
        if (tc.checkpoint_every > 0 && step % tc.checkpoint_every == 0) || step == total {
            s.checkpoints += 1;
        }
        if tc.preview_every > 0 && step % tc.preview_every == 0 {
            s.previews += 1;
        }
    }
    Ok((s, batches_per_epoch))
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Schedule {
    steps: usize,
    validations: usize,
    checkpoints: usize,
    previews: usize,
}

impl Estimate {
    fn total(&self) -> f64 {
        let warm = WARM_UP_STEPS.min(self.steps);
        self.setup_s + warm as f64 * self.warm_up_step_s + (self.steps - warm) as f64 * self.step_s + self.validations as f64 * self.validation_s + self.checkpoints as f64 * self.checkpoint_s + self.previews as f64 * self.preview_s
    }

    fn rescale(&mut self, s: Schedule) {
        (self.steps, self.validations, self.checkpoints, self.previews) = (s.steps, s.validations, s.checkpoints, s.previews);
        self.total_s = self.total();
    }
}

/// Measures `measured` steps (after [`WARM_UP_STEPS`]) of the run `opts` describes, with its
/// data, model, batch and device, and one validation, checkpoint and preview; nothing of the run
/// is touched. The result is also kept for [`last_estimate`].
pub fn estimate(project: &Project, opts: &TrainOptions, measured: usize, progress: &Progress) -> Result<Estimate> {
    let start = Instant::now();
    let tc = &opts.train;
    opts.model.check("model settings")?;
    tc.check("training settings")?;
    // As training would: a run with checkpoints is continued, not started again.
    if !opts.resume && latest_checkpoint(project, &opts.run)?.is_some() {
        return Err(Error::Project { path: project.run_dir(&opts.run), message: "this run has checkpoints: estimate it with --resume (what is left of it), or choose another --run".into() });
    }
    progress.cleaned(crate::fsutil::remove_stale_partials(&project.runs_dir(), 0));
    let (schedule, _) = schedule(project, opts)?;
    let measured = measured.max(1);
    progress.started(Some((WARM_UP_STEPS + measured + 3) as u64));
    let _cache = crate::raster::BlockCacheLimit::set(super::train::TRAINING_BLOCK_CACHE);
    let (dev, device_name) = device(opts.device)?;
    dev.seed(tc.seed);
    let ad = dev.clone().autodiff();
    let (mut g, mut d, model) = super::train::build_networks(&opts.model, project, &ad)?;
    let mut opt_g = FusedAdam::init(tc.beta1 as f32, tc.beta2 as f32, 1e-8);
    let mut opt_d = FusedAdam::init(tc.beta1 as f32, tc.beta2 as f32, 1e-8);
    let normalization = load_normalization(project)?;
    let (train_data, val_data) = training_data(project, tc, progress)?;
    let batcher = PatchBatcher { normalization };
    let workers = if train_data.is_resident() { 0 } else { tc.workers };
    let loader = DataLoaderBuilder::new(batcher.clone()).batch_size(tc.batch_size).num_workers(workers).set_device(ad.clone()).build(train_data.clone());
    let setup_s = start.elapsed().as_secs_f64();
    // Steps: the warm-up ones, then the timed ones (the data loaded as training loads it).
    let (mut warm_s, mut timed_s, mut n) = (0.0, 0.0, 0usize);
    let last_batch;
    // A step from the end of the last one: waiting for the loader counts, as in training.
    let mut t = Instant::now();
    'outer: loop {
        for batch in loader.iter() {
            progress.check_cancelled()?;
            let PatchBatch { input, label, valid, .. } = batch.map_err(|e| Error::invalid("training data", e.to_string()))?;
            dev.seed(tc.seed.wrapping_add(n as u64));
            let losses;
            (g, d, losses) = gan_step(GanStep { g, d, opt_g: &mut opt_g, opt_d: &mut opt_d, lr: tc.learning_rate_at(0), gan_loss: tc.gan_loss, l1_weight: tc.l1_weight, spectral: None }, input, label.clone(), valid);
            // The losses read as training reads them for its log (on a GPU, a wait for the step).
            std::hint::black_box([scalar(losses.g_adversarial), scalar(losses.g_l1), scalar(losses.d_real), scalar(losses.d_fake)]);
            if n < WARM_UP_STEPS {
                warm_s += t.elapsed().as_secs_f64();
            } else {
                timed_s += t.elapsed().as_secs_f64();
            }
            t = Instant::now();
            n += 1;
            progress.advanced(n as u64, (WARM_UP_STEPS + measured + 3) as u64, format!("step {n} of {}", WARM_UP_STEPS + measured));
            if n >= WARM_UP_STEPS + measured {
                last_batch = (label, losses.fake);
                break 'outer;
            }
        }
        if n == 0 {
            return Err(Error::invalid("training data", "the dataset has no training patches; rebuild it (`s2cr dataset`)"));
        }
    }
    let step_s = timed_s / measured as f64;
    // One validation pass, one checkpoint (into a folder removed after) and one preview.
    // Timed whenever there is validation data (a kept measurement may serve a longer run).
    let validation_s = if !val_data.patches().is_empty() {
        let t = Instant::now();
        validate(&g, &val_data, &batcher, tc.batch_size, &dev)?;
        t.elapsed().as_secs_f64()
    } else {
        0.0
    };
    progress.advanced((n + 1) as u64, (n + 3) as u64, "a validation pass");
    let scratch = project.runs_dir().join(format!(".estimate.partial-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(Error::io(&scratch, "creating a scratch folder"))?;
    let t = Instant::now();
    let saved = CheckpointFiles::in_dir(&scratch).save(&g, &d, &opt_g, &opt_d);
    let checkpoint_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (label, fake) = last_batch;
    write_step_preview(&scratch.join("preview.png"), label, fake, &batcher.normalization, n, &Progress::silent("estimate"));
    let preview_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&scratch);
    saved?;
    progress.advanced((n + 3) as u64, (n + 3) as u64, "done");
    let mut e = Estimate {
        key: setting_key(project, opts),
        device: device_name,
        model: format!("ngf {}, depth {}", model.ngf, model.depth),
        steps: 0,
        setup_s,
        warm_up_step_s: warm_s / WARM_UP_STEPS as f64,
        step_s,
        measured_steps: measured,
        validations: 0,
        validation_s,
        checkpoints: 0,
        checkpoint_s,
        previews: 0,
        preview_s,
        total_s: 0.0,
        measured_at: chrono::Utc::now(),
    };
    e.rescale(schedule);
    // Kept for the next time (the last KEPT settings).
    let path = project.train_estimates_json();
    let mut all: BTreeMap<String, Estimate> = crate::fsutil::load_json(&path, "").unwrap_or_default();
    all.insert(e.key.clone(), e.clone());
    while all.len() > KEPT {
        let oldest = all.iter().min_by_key(|(_, v)| v.measured_at).map(|(k, _)| k.clone());
        match oldest {
            Some(k) => all.remove(&k),
            None => break,
        };
    }
    if let Err(err) = crate::fsutil::save_json(&path, &all) {
        progress.warn(format!("the estimate was not kept: {}", crate::error_chain(&err)));
    }
    progress.finished(e.summary(), start.elapsed().as_secs_f64());
    Ok(e)
}
