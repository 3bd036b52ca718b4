//! Training the conditional GAN (pix2pix's loop): for each batch, the discriminator learns real
//! (condition, label) pairs against (condition, detached fake) pairs, then the generator learns
//! to fool the updated discriminator plus lambda x L1 to the label (on valid pixels only).
//!
//! `runs/<run>/` holds copies of model.yaml, train.yaml, the dataset's normalization and
//! summary (inference de-normalizes with these numbers), `metrics.csv` (one row per step, with
//! validation columns where it ran), and `checkpoints/step-<n>/` (generator, discriminator,
//! both optimizers, position) with `checkpoint.json` naming the latest. A checkpoint is written
//! every `checkpoint_every` steps, at the end and on cancel; `resume` continues from it with
//! the step count, the epoch position and the optimizers' state.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{ModelConfig, TrainConfig};
use super::discriminator::Discriminator;
use super::checkpoint::{CHECKPOINT_FORMAT, Checkpoint, CheckpointFiles, latest_checkpoint, record_err, save_checkpoint};
use super::generator::Generator;
use super::cpu::adam::FusedAdam;
pub use super::step::{GanStep, StepLosses, gan_step, masked_l1};
use super::step::scalar;
use super::{DeviceChoice, device, output_activation, resolve};
use crate::dataset::loader::{PatchBatch, PatchBatcher, PatchDataset, ResidentStacks, load_normalization};
use crate::dataset::tiles::Split;
use crate::dataset::{DatasetSummary, TileIndex};
use crate::fsutil::load_json;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::fsutil::write_atomic;
use crate::project::{Project, RunName};

/// What a training run needs besides the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub run: RunName,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub device: DeviceChoice,
    pub resume: bool,
}

/// `runs/<run>/diverged.json`: where a run's training stopped on a non-finite loss.
pub const DIVERGED_JSON: &str = "diverged.json";

/// The record of a training that stopped on a non-finite loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diverged {
    pub step: usize,
    /// The first loss that was not finite (`g_adversarial`, `g_l1`, `d_real`, `d_fake`).
    pub loss: String,
    /// Its value (`NaN`, `inf`).
    pub value: String,
    pub learning_rate: f64,
    pub device: String,
    /// The step of the checkpoint kept (the run's latest), if one was saved before.
    pub last_checkpoint: Option<usize>,
}

impl Diverged {
    /// The step's weights after its update, when a value is not finite although the step's
    /// losses were (a gradient of infinity or NaN): the stop, before they are saved over a good
    /// checkpoint.
    pub fn in_weights(step: usize, g: &Generator, d: &Discriminator, learning_rate: f64, device: &str, last_checkpoint: Option<usize>) -> Option<Diverged> {
        let (network, (parameter, count)) = super::finite::non_finite_parameter(g).map(|p| ("generator", p)).or_else(|| super::finite::non_finite_parameter(d).map(|p| ("discriminator", p)))?;
        Some(Diverged { step, loss: format!("the {network}'s {parameter} after the update ({count} value(s))"), value: "NaN or infinity".into(), learning_rate, device: device.into(), last_checkpoint })
    }

    pub fn message(&self, run: &RunName) -> String {
        let kept = match self.last_checkpoint {
            Some(s) => format!("the checkpoint of step {s} is kept (the diverged state is not saved)"),
            None => "no checkpoint had been saved yet".to_string(),
        };
        let device = if self.device.starts_with("CPU") { String::new() } else { format!(", or the device computing wrongly ({}: compare with --device cpu)", self.device) };
        format!(
            "training of run {run} stopped at step {}: {} is {} (not finite); {kept}. Likely causes: a learning rate too high for this model and data ({:e}: lower learning_rate in train.yaml){device}. Recorded in {DIVERGED_JSON} and metrics.csv",
            self.step, self.loss, self.value, self.learning_rate
        )
    }
}

/// One row of metrics.csv.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct StepMetrics {
    pub step: usize,
    pub epoch: usize,
    pub learning_rate: f64,
    pub g_adversarial: f64,
    pub g_l1: f64,
    pub d_real: f64,
    pub d_fake: f64,
    /// Validation, NaN where it did not run.
    pub val_l1: f64,
    pub val_psnr: f64,
    pub val_ssim: f64,
    pub seconds: f64,
}

const CSV_HEADER: &str = "step,epoch,learning_rate,g_adversarial,g_l1,d_real,d_fake,val_l1,val_psnr,val_ssim,seconds";

impl StepMetrics {
    /// A row of metrics.csv back (None when it is not one).
    /// The first of the step's losses that is not finite, with its value.
    pub fn first_non_finite(&self) -> Option<(&'static str, f64)> {
        [("g_adversarial", self.g_adversarial), ("g_l1", self.g_l1), ("d_real", self.d_real), ("d_fake", self.d_fake)].into_iter().find(|(_, v)| !v.is_finite())
    }

    fn parse(line: &str) -> Option<StepMetrics> {
        let v: Vec<&str> = line.split(',').collect();
        if v.len() != 11 {
            return None;
        }
        let f = |i: usize| v[i].parse::<f64>().ok();
        Some(StepMetrics {
            step: v[0].parse().ok()?,
            epoch: v[1].parse().ok()?,
            learning_rate: f(2)?,
            g_adversarial: f(3)?,
            g_l1: f(4)?,
            d_real: f(5)?,
            d_fake: f(6)?,
            val_l1: f(7)?,
            val_psnr: f(8)?,
            val_ssim: f(9)?,
            seconds: f(10)?,
        })
    }

    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{:.3}",
            self.step, self.epoch, self.learning_rate, self.g_adversarial, self.g_l1, self.d_real, self.d_fake, self.val_l1, self.val_psnr, self.val_ssim, self.seconds
        )
    }
}

/// What a finished (or cancelled) run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub run_dir: PathBuf,
    pub device: String,
    pub steps: usize,
    pub resumed_from: Option<usize>,
    pub last: StepMetrics,
    pub generator_params: usize,
    pub discriminator_params: usize,
    pub seconds: f64,
}

/// The training and validation patches as training reads them: shuffled and augmented per the
/// settings, held in memory when they fit.
pub(super) fn training_data(project: &Project, tc: &TrainConfig, progress: &Progress) -> Result<(PatchDataset, PatchDataset)> {
    let mut train_data = PatchDataset::open(project, Split::Train, tc.augment.then_some(tc.seed))?.shuffled(tc.seed);
    let mut val_data = PatchDataset::open(project, Split::Val, None)?;
    if let Some(stacks) = resident_stacks(&train_data, tc.in_memory_mib, progress)? {
        train_data = train_data.holding(stacks.clone());
        val_data = val_data.holding(stacks);
    }
    Ok((train_data, val_data))
}

/// Ridge penalty of the linear map's start, per sample (the features are normalized).
const LINEAR_START_LAMBDA: f64 = 1e-3;
/// Every this many valid pixels of each training patch goes into the fit.
const LINEAR_START_STRIDE: usize = 3;

/// `linear: true` on a new run: the 1 x 1 map of the inputs starts at the ridge regression of the
/// labels (for a residual generator: of their change from its pre-fire base) on the inputs, over
/// the training patches' valid pixels, normalized as training sees them. The model then starts
/// where a linear regression already is, and the U-Net learns what it misses.
fn linear_start(mut g: Generator, data: &PatchDataset, batcher: &PatchBatcher, progress: &Progress) -> Result<Generator> {
    use burn::data::dataset::Dataset;
    let base = g.residual_maps();
    let mut sums: Option<crate::indices::linalg::RidgeSums> = None;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..data.len() {
        progress.check_cancelled()?;
        let item = data.get(i).map_err(|e| Error::invalid("training data", e.to_string()))?;
        let plane = item.size * item.size;
        let (c_in, c_out) = (item.input.len() / plane.max(1), item.label.len() / plane.max(1));
        let (input, label, valid, _) = batcher.normalize(std::slice::from_ref(&item));
        let sums = sums.get_or_insert_with(|| crate::indices::linalg::RidgeSums::new(c_in, c_out));
        for p in (0..plane).filter(|p| valid[*p] > 0.0).step_by(LINEAR_START_STRIDE) {
            x.clear();
            x.extend((0..c_in).map(|c| input[c * plane + p] as f64));
            y.clear();
            y.extend((0..c_out).map(|o| {
                let from = base.as_ref().map(|b| b[o].1 as f64 * x[b[o].0] + b[o].2 as f64).unwrap_or(0.0);
                label[o * plane + p] as f64 - from
            }));
            sums.add(&x, &y);
        }
    }
    let Some(fit) = sums.as_ref().and_then(|s| s.solve(LINEAR_START_LAMBDA)) else {
        progress.warn("the linear map starts at zero: no valid training pixel to fit it on (or a singular fit)");
        return Ok(g);
    };
    let c_in = fit.first().map(|f| f.len() - 1).unwrap_or(0);
    let weight: Vec<f32> = fit.iter().flat_map(|f| f[..c_in].iter().map(|v| *v as f32)).collect();
    let bias: Vec<f32> = fit.iter().map(|f| f[c_in] as f32).collect();
    progress.info(format!("the linear map starts at the ridge fit of {} training pixels (lambda {LINEAR_START_LAMBDA})", sums.map(|s| s.count).unwrap_or(0)));
    g.set_linear(weight, bias);
    Ok(g)
}

/// The dataset files a run keeps a copy of (what it trained on; inference reads the copies),
/// as (dataset file, run copy).
pub(super) fn dataset_copies(project: &Project, run: &RunName) -> [(PathBuf, PathBuf); 3] {
    [
        (project.dataset_json(), project.run_dataset_json(run)),
        (project.normalization_json(), project.run_normalization_json(run)),
        (project.tiles_json(), project.run_tiles_json(run)),
    ]
}

/// The networks of a run, built for its dataset (for inference and tests).
pub fn build_networks(model: &ModelConfig, project: &Project, dev: &Device) -> Result<(Generator, Discriminator, ModelConfig)> {
    let summary: DatasetSummary = load_json(&project.dataset_json(), "run `s2cr dataset` first")?;
    let index = TileIndex::load(project)?;
    let normalization = load_normalization(project)?;
    let cfg = resolve(model, summary.inputs.len(), summary.outputs.len(), index.size)?;
    Ok((super::generator_for(&cfg, &normalization, dev)?, Discriminator::new(&cfg, dev), cfg))
}

/// The output channels (NIR, SWIR, red) of the spectral losses when any of their weights is
/// set: NIR is B08, else B8A. `Err` names the band the outputs lack.
pub(super) fn spectral_bands(tc: &TrainConfig, outputs: &[String]) -> Result<Option<(usize, usize, usize)>> {
    for (key, w) in [("nbr_weight", tc.nbr_weight), ("ndvi_weight", tc.ndvi_weight), ("sam_weight", tc.sam_weight)] {
        if !w.is_finite() || w < 0.0 {
            return Err(Error::invalid(key, format!("{w} is not a weight: use 0 (off) or a positive number")));
        }
    }
    if tc.nbr_weight == 0.0 && tc.ndvi_weight == 0.0 && tc.sam_weight == 0.0 {
        return Ok(None);
    }
    let find = |band: &str| outputs.iter().position(|o| o.rsplit(':').next().is_some_and(|b| b.eq_ignore_ascii_case(band)));
    let nir = find("B08").or_else(|| find("B8A"));
    let need = |i: Option<usize>, band: &str, key: &str, w: f64| -> Result<usize> {
        match i {
            Some(i) => Ok(i),
            None if w == 0.0 => Ok(0),
            None => Err(Error::invalid(key, format!("the outputs ({}) have no {band}: add it to the dataset's outputs, or set {key} to 0", outputs.join(", ")))),
        }
    };
    let index_weight = tc.nbr_weight.max(tc.ndvi_weight);
    let nir = need(nir, "B08 or B8A", if tc.nbr_weight > 0.0 { "nbr_weight" } else { "ndvi_weight" }, index_weight)?;
    let swir = need(find("B12"), "B12", "nbr_weight", tc.nbr_weight)?;
    let red = need(find("B04"), "B04", "ndvi_weight", tc.ndvi_weight)?;
    Ok(Some((nir, swir, red)))
}

/// The spectral terms of a batch: its de-normalization as tensors on the device.
pub(super) fn spectral_terms(tc: &TrainConfig, (nir, swir, red): (usize, usize, usize), output_maps: &[Vec<crate::dataset::normalize::Affine>], dev: &Device) -> super::step::Spectral {
    let (b, c) = (output_maps.len(), output_maps.first().map_or(0, Vec::len));
    let scale: Vec<f32> = output_maps.iter().flat_map(|m| m.iter().map(|a| a.scale)).collect();
    let offset: Vec<f32> = output_maps.iter().flat_map(|m| m.iter().map(|a| a.offset)).collect();
    super::step::Spectral {
        nbr_weight: tc.nbr_weight,
        ndvi_weight: tc.ndvi_weight,
        sam_weight: tc.sam_weight,
        nir,
        swir,
        red,
        scale: Tensor::from_data(TensorData::new(scale, [b, c, 1, 1]), dev),
        offset: Tensor::from_data(TensorData::new(offset, [b, c, 1, 1]), dev),
    }
}

/// Validation over the val split: L1 on normalized values, PSNR and SSIM on reflectance
/// (de-normalized, data range 1), means over patches and bands.
pub(super) fn validate(g: &Generator, data: &PatchDataset, batcher: &PatchBatcher, batch_size: usize, dev: &Device) -> Result<(f64, f64, f64)> {
    let model = g.valid();
    let (mut l1, mut psnr, mut ssim, mut n, mut nb) = (0.0, 0.0, 0.0, 0usize, 0usize);
    let len = data.patches().len();
    for start in (0..len).step_by(batch_size.max(1)) {
        let items: Vec<_> = (start..(start + batch_size).min(len)).map(|i| data.read(i)).collect::<Result<_>>()?;
        let batch = burn::data::dataloader::batcher::Batcher::batch(batcher, items.clone(), dev);
        let pred = model.forward(batch.input.clone());
        l1 += scalar(masked_l1(pred.clone(), batch.label.clone(), batch.valid.clone())) * items.len() as f64;
        let values: Vec<f32> = pred.try_into_vec_as::<f32>().map_err(|e| Error::invalid("validation", format!("{e:?}")))?;
        let size = items[0].size;
        let plane = size * size;
        for (k, item) in items.iter().enumerate() {
            for (c, map) in batch.output_maps[k].iter().enumerate() {
                let start = (k * batch.output_maps[k].len() + c) * plane;
                let mut synthetic = values[start..start + plane].to_vec();
                map.denormalize(&mut synthetic);
                let real = &item.label[c * plane..(c + 1) * plane];
                psnr += crate::indices::metrics::psnr(real, &synthetic, &item.valid, 1.0);
                ssim += crate::indices::metrics::ssim(real, &synthetic, size, size, &item.valid, 1.0);
                nb += 1;
            }
        }
        n += items.len();
    }
    if n == 0 {
        return Ok((f64::NAN, f64::NAN, f64::NAN));
    }
    Ok((l1 / n as f64, psnr / nb as f64, ssim / nb as f64))
}

/// Trains (or resumes) a run of the project's dataset.
/// The training preview of a step (first patch of the batch); a failure to write it is logged,
/// not fatal. Reported as the metric `preview` (its step) so a watcher can reload the image.
pub(super) fn write_step_preview(path: &Path, label: Tensor<4>, fake: Tensor<4>, normalization: &crate::dataset::normalize::Normalization, step: usize, progress: &Progress) {
    let [_, channels, h, w] = label.dims();
    let first = |t: Tensor<4>| -> std::result::Result<Vec<f32>, String> { t.slice([0..1, 0..channels, 0..h, 0..w]).try_into_vec_as::<f32>().map_err(|e| format!("{e:?}")) };
    let names: Vec<String> = normalization.outputs.iter().map(|c| c.name.clone()).collect();
    let result = match (first(label), first(fake)) {
        (Ok(real), Ok(synthetic)) if h == w => super::preview::write_preview(path, &real, &synthetic, channels, h, super::preview::rgb_channels(&names)).map_err(|e| crate::error_chain(&e)),
        (Err(e), _) | (_, Err(e)) => Err(e),
        _ => Err(format!("patches of {w} x {h} are not square")),
    };
    match result {
        Ok(()) => progress.metric("preview", step as f64, step as u64),
        Err(e) => progress.warn(format!("training preview not written: {e}")),
    }
}

/// The dataset's stacks read into memory when they take at most `max_mib` MiB and half the
/// memory available (None: patches are read from disk).
pub(super) fn resident_stacks(data: &PatchDataset, max_mib: usize, progress: &Progress) -> Result<Option<std::sync::Arc<ResidentStacks>>> {
    if max_mib == 0 {
        return Ok(None);
    }
    let needed = ResidentStacks::bytes_needed(data)?;
    let mut budget = (max_mib as u64) << 20;
    if let Some(available) = crate::fsutil::available_memory_bytes() {
        budget = budget.min(available / 2);
    }
    if needed > budget {
        progress.info(format!(
            "reading patches from disk: the dataset takes {} MiB in memory, more than the {} MiB allowed (train.yaml's in_memory_mib, and half the free memory)",
            needed >> 20,
            budget >> 20
        ));
        return Ok(None);
    }
    let start = Instant::now();
    let stacks = ResidentStacks::load(data)?;
    progress.info(format!("dataset held in memory: {:.1} MiB, read in {:.1} s", stacks.bytes() as f64 / (1 << 20) as f64, start.elapsed().as_secs_f64()));
    Ok(Some(stacks))
}

/// GDAL's block cache while training, bytes (`s2cr bench --what loader` measures this setting).
pub const TRAINING_BLOCK_CACHE: i64 = 64 << 20;

/// The steps of a run: its epochs' batches, or `max_steps` when fewer.
pub(super) fn total_steps(tc: &TrainConfig, batches_per_epoch: usize) -> usize {
    let all = (tc.epochs + tc.decay_epochs) * batches_per_epoch;
    if tc.max_steps > 0 { tc.max_steps.min(all) } else { all }
}

/// Whether training validates after step `step` (1-based; `end_of_epoch` when it ends one).
pub(super) fn validates_after(tc: &TrainConfig, step: usize, end_of_epoch: bool, total_steps: usize) -> bool {
    (tc.validate_every > 0 && step % tc.validate_every == 0) || (tc.validate_every == 0 && end_of_epoch) || step == total_steps
}

pub fn train(project: &Project, opts: &TrainOptions, progress: &Progress) -> Result<TrainReport> {
    progress.cleaned(crate::fsutil::remove_stale_partials(&project.run_dir(&opts.run), crate::project::MAX_DEPTH));
    let start = Instant::now();
    // The loader keeps its VRTs open (decoded blocks are reused between patches); GDAL's block
    // cache would otherwise grow to 5 % of RAM. GDAL_CACHEMAX, when set, wins.
    let _cache = crate::raster::BlockCacheLimit::set(TRAINING_BLOCK_CACHE);
    let tc = &opts.train;
    // Settings from pipeline.yaml, the app or flags arrive here without passing a file's checks.
    opts.model.check("model settings")?;
    tc.check("training settings")?;
    let run_dir = project.run_dir(&opts.run);
    // A damaged latest checkpoint names the way back to the one before (no prompt: the
    // command may run where nobody answers).
    let damaged = |e: Error, step: Option<usize>| Error::Project { path: run_dir.clone(), message: format!("its latest checkpoint cannot be read ({}): {}", crate::error_chain(&e), super::checkpoint::resume_hint(project, &opts.run, step)) };
    let previous = latest_checkpoint(project, &opts.run).map_err(|e| damaged(e, None))?;
    if previous.is_some() && !opts.resume {
        return Err(Error::Project { path: run_dir.clone(), message: "this run has checkpoints: continue it with --resume, or choose another --run".into() });
    }
    let (dev, device_name) = device(opts.device)?;
    dev.seed(tc.seed);
    let ad = dev.clone().autodiff();
    // The initial weights are drawn on the CPU from the seed and then moved, so that one seed
    // starts from the same weights on every device (a GPU's random numbers are its own).
    let cpu = Device::flex();
    cpu.seed(tc.seed);
    let (mut g, mut d, model) = build_networks(&opts.model, project, &cpu.clone().autodiff())?;
    if dev != cpu {
        // Drawn now, on the CPU (parameters are drawn when first read), then forked: a fork
        // keeps them trainable on the device.
        let _ = (super::finite::non_finite_parameter(&g), super::finite::non_finite_parameter(&d));
        (g, d) = (g.fork(&ad), d.fork(&ad));
    }
    let mut opt_g = FusedAdam::init(tc.beta1 as f32, tc.beta2 as f32, 1e-8);
    let mut opt_d = FusedAdam::init(tc.beta1 as f32, tc.beta2 as f32, 1e-8);
    // A resumed run goes on with the statistics it started with (its copy, which inference
    // reads too), not with those of a dataset rebuilt since.
    let run_normalization = project.run_normalization_json(&opts.run);
    let mut normalization: crate::dataset::normalize::Normalization = if previous.is_some() && run_normalization.is_file() {
        load_json(&run_normalization, "delete the run's folder to train it again")?
    } else {
        load_normalization(project)?
    };
    std::fs::create_dir_all(project.checkpoints_dir(&opts.run)).map_err(Error::io(&run_dir, "creating the run folder"))?;
    let (mut step, mut epoch, mut skip) = (0usize, 0usize, 0usize);
    if let Some(cp) = &previous {
        let f = CheckpointFiles::in_dir(&run_dir.join(&cp.dir));
        let broken = |e: Error| damaged(e, Some(cp.step));
        g = g.try_load_file(&f.generator).map_err(record_err(&f.generator, "loading the generator")).map_err(broken)?;
        d = d.try_load_file(&f.discriminator).map_err(record_err(&f.discriminator, "loading the discriminator")).map_err(broken)?;
        opt_g = opt_g.load(&f.optim_g).map_err(record_err(&f.optim_g, "loading the generator's optimizer")).map_err(broken)?;
        opt_d = opt_d.load(&f.optim_d).map_err(record_err(&f.optim_d, "loading the discriminator's optimizer")).map_err(broken)?;
        (step, epoch, skip) = (cp.step, cp.epoch, cp.batch_in_epoch);
        progress.info(format!("resuming {} at step {step} (epoch {}, batch {skip})", opts.run, epoch + 1));
    } else {
        if let Some(from) = &tc.init_from {
            let from = if from.is_relative() { project.root().join(from) } else { from.clone() };
            // A model goes on in the data range it was trained in (pix2pix's [-1, 1]).
            let range = super::portable::source_range(&from);
            if range != normalization.range {
                progress.info(format!("training in the {} data range of {} (the dataset's maps are {})", range.name(), from.display(), normalization.range.name()));
                normalization.range = range;
                g.activation = output_activation(&model, &normalization);
            }
            let (g0, d0, init) = super::portable::init_networks(g, d, &model, &from, tc.adapt_channels, output_activation(&model, &normalization))?;
            (g, d) = (super::with_output(g0, &model, &normalization)?, d0);
            progress.info(format!(
                "starting from {} ({}){}{}",
                from.display(),
                init.kind,
                if init.reinitialised.is_empty() { String::new() } else { format!("; afresh: {}", init.reinitialised.join(", ")) },
                if init.discriminator_from_source { "; discriminator too" } else { "; discriminator fresh" }
            ));
            crate::fsutil::save_json(&project.run_init_json(&opts.run), &init)?;
        }
        // The run's record of what it used; inference reads these.
        write_atomic(&project.run_model_yaml(&opts.run), model.to_yaml().as_bytes())?;
        write_atomic(&project.run_train_yaml(&opts.run), tc.to_yaml().as_bytes())?;
        for (src, dst) in dataset_copies(project, &opts.run) {
            std::fs::copy(&src, &dst).map_err(Error::io(&src, "copying into the run"))?;
        }
        if normalization.range != crate::dataset::normalize::DataRange::default() {
            crate::fsutil::save_json(&run_normalization, &normalization)?;
        }
    }
    // metrics.csv: keep the rows up to the checkpoint (later ones are redone).
    let metrics_path = project.metrics_csv(&opts.run);
    let kept: Vec<String> = std::fs::read_to_string(&metrics_path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        // Whole rows only: a row torn by a crash or a full disk is redone.
        .filter(|l| StepMetrics::parse(l).is_some_and(|m| m.step <= step))
        .map(String::from)
        .collect();
    write_atomic(&metrics_path, format!("{CSV_HEADER}\n{}", kept.iter().map(|l| format!("{l}\n")).collect::<String>()).as_bytes())?;
    let mut metrics_file = std::fs::OpenOptions::new().append(true).open(&metrics_path).map_err(Error::io(&metrics_path, "opening the metrics"))?;

    // A new attempt: the record of an earlier divergence goes (metrics.csv keeps its row).
    let _ = std::fs::remove_file(run_dir.join(DIVERGED_JSON));
    // Its calibration goes with the weights it was made for: made again at the end.
    let _ = std::fs::remove_file(project.run_uncertainty_calibration(&opts.run));
    let (train_data, val_data) = training_data(project, tc, progress)?;
    let spectral_bands = spectral_bands(tc, &normalization.outputs.iter().map(|c| c.name.clone()).collect::<Vec<_>>())?;
    let batcher = PatchBatcher { normalization };
    // A new run with a linear map starts it at the training patches' ridge fit.
    if previous.is_none() && tc.init_from.is_none() && g.has_linear() {
        g = linear_start(g, &train_data, &batcher, progress)?;
    }
    // Cutting patches from memory takes microseconds: loader threads would only compete with
    // training for the cores, and the order in which threads deliver batches is a race.
    let workers = if train_data.is_resident() { 0 } else { tc.workers };
    let loader = DataLoaderBuilder::new(batcher.clone()).batch_size(tc.batch_size).num_workers(workers).set_device(ad.clone()).build(train_data.clone());
    let batches_per_epoch = train_data.patches().len().div_ceil(tc.batch_size);
    let total_epochs = tc.epochs + tc.decay_epochs;
    let total_steps = total_steps(tc, batches_per_epoch);
    progress.started(Some(total_steps as u64));
    progress.info(format!(
        "training on {device_name}: {} train / {} val patches, batch {}, {} steps; generator {:.1} M, discriminator {:.1} M parameters",
        train_data.patches().len(),
        val_data.patches().len(),
        tc.batch_size,
        total_steps,
        g.num_params() as f64 / 1e6,
        d.num_params() as f64 / 1e6
    ));
    let resumed_from = previous.as_ref().map(|c| c.step);
    // A resumed run that has no step left reports the last one it made, not zeros.
    let mut last = kept.last().and_then(|l| StepMetrics::parse(l)).unwrap_or_default();
    // Weights that went non-finite although the losses were finite (a gradient of infinity or
    // NaN) are not saved: the stop is recorded, the last checkpoint kept.
    let checkpoint = |step: usize, epoch: usize, batch_in_epoch: usize, g: &Generator, d: &Discriminator, og: &ModuleOptimizer, od: &ModuleOptimizer, last_saved: usize, lr: f64| {
        if let Some(stop) = Diverged::in_weights(step, g, d, lr, &device_name, (last_saved > 0 || previous.is_some()).then_some(last_saved)) {
            crate::fsutil::save_json(&project.run_dir(&opts.run).join(DIVERGED_JSON), &stop)?;
            return Err(Error::Project { path: run_dir.clone(), message: stop.message(&opts.run) });
        }
        save_checkpoint(project, &opts.run, &Checkpoint { step, epoch, batch_in_epoch, dir: PathBuf::from(format!("checkpoints/step-{step}")), format: CHECKPOINT_FORMAT, device: Some(device_name.clone()) }, g, d, og, od)
    };
    let mut last_saved = step;
    'epochs: while epoch < total_epochs && step < total_steps {
        train_data.set_epoch(epoch as u64);
        let lr = tc.learning_rate_at(epoch);
        let mut batch_in_epoch = 0usize;
        for batch in loader.iter() {
            if batch_in_epoch < skip {
                batch_in_epoch += 1;
                continue;
            }
            if progress.is_cancelled() {
                checkpoint(step, epoch, batch_in_epoch, &g, &d, &opt_g, &opt_d, last_saved, lr)?;
                return Err(Error::Cancelled);
            }
            let PatchBatch { input, label, valid, output_maps, .. } = batch.map_err(|e| Error::invalid("training data", e.to_string()))?;
            let spectral = spectral_bands.map(|bands| spectral_terms(tc, bands, &output_maps, &dev));
            // The random numbers of this step (dropout) follow from the seed and the step alone,
            // so a run resumed from a checkpoint draws what an uninterrupted one would have.
            dev.seed(tc.seed.wrapping_add(step as u64));
            let preview_now = tc.preview_every > 0 && (step + 1) % tc.preview_every == 0;
            let losses;
            (g, d, losses) = gan_step(GanStep { g, d, opt_g: &mut opt_g, opt_d: &mut opt_d, lr, gan_loss: tc.gan_loss, l1_weight: tc.l1_weight, spectral }, input, label.clone(), valid);
            if let Some(extra) = losses.g_spectral.clone() {
                progress.metric("g_spectral", scalar(extra), step as u64 + 1);
            }
            // Every preview_every steps: this batch's first patch, label and output.
            let preview = preview_now.then(|| (label, losses.fake.clone()));
            step += 1;
            batch_in_epoch += 1;
            last = StepMetrics {
                step,
                epoch: epoch + 1,
                learning_rate: lr,
                g_adversarial: scalar(losses.g_adversarial),
                g_l1: scalar(losses.g_l1),
                d_real: scalar(losses.d_real),
                d_fake: scalar(losses.d_fake),
                val_l1: f64::NAN,
                val_psnr: f64::NAN,
                val_ssim: f64::NAN,
                seconds: start.elapsed().as_secs_f64(),
            };
            // A loss that is not finite: the networks are lost from here on. Stop, keep the
            // last checkpoint (the state now is not saved), and say which loss, where and why.
            if let Some((name, value)) = last.first_non_finite() {
                writeln!(metrics_file, "{}", last.csv()).map_err(Error::io(&metrics_path, "writing the metrics"))?;
                let stop = Diverged { step, loss: name.into(), value: value.to_string(), learning_rate: lr, device: device_name.clone(), last_checkpoint: (last_saved > 0 || previous.is_some()).then_some(last_saved) };
                crate::fsutil::save_json(&project.run_dir(&opts.run).join(DIVERGED_JSON), &stop)?;
                return Err(Error::Project { path: run_dir.clone(), message: stop.message(&opts.run) });
            }
            if let Some((label, fake)) = preview {
                write_step_preview(&project.preview_png(&opts.run), label, fake, &batcher.normalization, step, progress);
            }
            let end_of_epoch = batch_in_epoch == batches_per_epoch;
            let validate_now = !val_data.patches().is_empty() && validates_after(tc, step, end_of_epoch, total_steps);
            if validate_now {
                let (l1, psnr, ssim) = validate(&g, &val_data, &batcher, tc.batch_size, &dev)?;
                (last.val_l1, last.val_psnr, last.val_ssim) = (l1, psnr, ssim);
                progress.metric("val_l1", l1, step as u64);
                progress.metric("val_psnr", psnr, step as u64);
            }
            writeln!(metrics_file, "{}", last.csv()).map_err(Error::io(&metrics_path, "writing the metrics"))?;
            progress.metric("g_l1", last.g_l1, step as u64);
            progress.metric("g_adversarial", last.g_adversarial, step as u64);
            progress.metric("d_real", last.d_real, step as u64);
            progress.metric("d_fake", last.d_fake, step as u64);
            progress.advanced(step as u64, total_steps as u64, format!("epoch {} · G L1 {:.4} · G adv {:.3} · D {:.3}/{:.3}", epoch + 1, last.g_l1, last.g_adversarial, last.d_real, last.d_fake));
            let (next_epoch, next_batch) = if end_of_epoch { (epoch + 1, 0) } else { (epoch, batch_in_epoch) };
            if tc.checkpoint_every > 0 && step % tc.checkpoint_every == 0 {
                checkpoint(step, next_epoch, next_batch, &g, &d, &opt_g, &opt_d, last_saved, lr)?;
                last_saved = step;
            }
            if step >= total_steps {
                if last_saved != step {
                    checkpoint(step, next_epoch, next_batch, &g, &d, &opt_g, &opt_d, last_saved, lr)?;
                    last_saved = step;
                }
                break 'epochs;
            }
        }
        skip = 0;
        epoch += 1;
    }
    if last_saved != step {
        checkpoint(step, epoch, 0, &g, &d, &opt_g, &opt_d, last_saved, tc.learning_rate_at(epoch.saturating_sub(1)))?;
    }
    // An uncertainty head's scales, calibrated on the validation blocks; none without them.
    let calibration_path = project.run_uncertainty_calibration(&opts.run);
    let _ = std::fs::remove_file(&calibration_path);
    if g.has_scale_head() {
        match super::calibration::calibrate_scales(&g, &val_data, &batcher, tc.batch_size, &dev)? {
            Some(c) => {
                progress.info(format!("uncertainty calibrated on {} validation pixels ({:.0} % within +/- 2 sd): the scales times {}", c.pixels, 100.0 * super::calibration::CALIBRATED_COVERAGE, c.factors.iter().zip(&c.bands).map(|(f, b)| format!("{f:.2} ({b})")).collect::<Vec<_>>().join(", ")));
                crate::fsutil::save_json(&calibration_path, &c)?;
            }
            None => progress.warn("the uncertainty is not calibrated: the dataset has no validation blocks (its val fraction is 0), so the head's scales are used as trained"),
        }
    }
    // The run's manifest: the dataset it learnt from, the configuration, the checkpoint.
    let mut manifest = crate::project::Manifest::new(
        crate::project::Stage::Train,
        project.stage_parameters(crate::project::Stage::Train, serde_json::json!({"model": model, "train": tc, "steps": step})),
    );
    for (src, _) in dataset_copies(project, &opts.run) {
        manifest.add_input(project.root(), &src)?;
    }
    if let Some(cp) = latest_checkpoint(project, &opts.run)? {
        manifest.add_output(project.root(), &CheckpointFiles::in_dir(&run_dir.join(&cp.dir)).generator)?;
    }
    manifest.save(&project.manifest_path(crate::project::Stage::Train, Some(&opts.run)))?;
    if let Err(e) = super::card::write_card(project, &opts.run) {
        progress.warn(format!("the model card was not written: {}", crate::error_chain(&e)));
    }
    progress.finished(format!("{step} steps, G L1 {:.4}", last.g_l1), start.elapsed().as_secs_f64());
    Ok(TrainReport {
        run_dir: run_dir.clone(),
        device: device_name,
        steps: step,
        resumed_from,
        last,
        generator_params: g.num_params(),
        discriminator_params: d.num_params(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_rows_read_back_as_written() {
        let m = StepMetrics { step: 12, epoch: 3, learning_rate: 2e-4, g_adversarial: 0.7, g_l1: 0.1234, d_real: 0.5, d_fake: 0.25, val_l1: f64::NAN, val_psnr: f64::NAN, val_ssim: f64::NAN, seconds: 1.5 };
        let back = StepMetrics::parse(&m.csv()).unwrap();
        assert_eq!((back.step, back.epoch, back.g_l1, back.d_fake, back.seconds), (12, 3, 0.1234, 0.25, 1.5));
        assert!(back.val_l1.is_nan());
        assert!(StepMetrics::parse(CSV_HEADER).is_none() && StepMetrics::parse("1,2,3").is_none());
    }

    /// The spectral losses find NIR, SWIR and red among the outputs, refuse a weight whose band
    /// is missing (naming the key) or that is negative, and are absent from train.yaml when off
    /// (earlier runs' settings stay the same).
    #[test]
    fn spectral_losses_need_their_bands_and_are_off_by_default() {
        let outs: Vec<String> = ["S2_t1:B02", "S2_t1:B03", "S2_t1:B04", "S2_t1:B08", "S2_t1:B11", "S2_t1:B12"].map(String::from).to_vec();
        let tc = |nbr: f64, ndvi: f64, sam: f64| TrainConfig { nbr_weight: nbr, ndvi_weight: ndvi, sam_weight: sam, ..Default::default() };
        assert_eq!(spectral_bands(&tc(0.0, 0.0, 0.0), &outs).unwrap(), None);
        assert_eq!(spectral_bands(&tc(1.0, 1.0, 0.0), &outs).unwrap(), Some((3, 5, 2)));
        let b8a: Vec<String> = outs.iter().map(|o| o.replace("B08", "B8A")).collect();
        assert_eq!(spectral_bands(&tc(1.0, 0.0, 0.0), &b8a).unwrap(), Some((3, 5, 2)));
        let no_swir = outs[..5].to_vec();
        let e = spectral_bands(&tc(1.0, 0.0, 0.0), &no_swir).unwrap_err().to_string();
        assert!(e.contains("nbr_weight") && e.contains("B12"), "{e}");
        assert!(spectral_bands(&tc(0.0, 1.0, 1.0), &no_swir).is_ok());
        let e = spectral_bands(&tc(0.0, -1.0, 0.0), &outs).unwrap_err().to_string();
        assert!(e.contains("ndvi_weight"), "{e}");
        let yaml = TrainConfig::default().to_yaml();
        assert!(!yaml.contains("nbr_weight") && !yaml.contains("sam_weight"), "{yaml}");
        assert!(tc(100.0, 0.0, 10.0).to_yaml().contains("nbr_weight: 100"));
    }

    /// Weights that are not finite after an update whose losses were finite (a gradient of
    /// infinity) are a stop too, naming the network and the parameter.
    #[test]
    fn non_finite_weights_after_an_update_are_a_stop_naming_the_parameter() {
        struct Poison;
        impl burn::module::ModuleMapper for Poison {
            fn map_float<const D: usize>(&mut self, p: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
                p.map(|t| t.add_scalar(f32::INFINITY))
            }
        }
        let dev = Device::flex();
        let cfg = ModelConfig { input_channels: 3, output_channels: 2, ngf: 4, ndf: 4, depth: 3, ..ModelConfig::default() };
        let (g, d) = (Generator::new(&cfg, super::super::generator::Activation::Sigmoid, &dev), Discriminator::new(&cfg, &dev));
        assert_eq!(Diverged::in_weights(3, &g, &d, 2e-4, "CPU", Some(2)), None, "fresh weights are finite");
        let stop = Diverged::in_weights(3, &g, &d.clone().map(&mut Poison), 2e-4, "CPU", Some(2)).unwrap();
        assert!(stop.loss.starts_with("the discriminator's ") && stop.loss.contains("after the update") && stop.value == "NaN or infinity", "{stop:?}");
        let said = stop.message(&RunName::new("r").unwrap());
        assert!(said.contains("stopped at step 3") && said.contains("the checkpoint of step 2 is kept"), "{said}");
        assert!(Diverged::in_weights(3, &g.map(&mut Poison), &d, 2e-4, "CPU", None).unwrap().loss.starts_with("the generator's "));
    }
}
