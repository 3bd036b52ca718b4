//! Synthesizing Sentinel-2 at t1 over the whole grid: the generator slides over the inputs in
//! overlapping windows (by an eighth of their side unless told); each window's prediction is
//! de-normalized with its own maps (as in training) and blended with weights that rise as a
//! raised cosine across the overlap from almost zero at the window's edge (a Tukey window; at
//! half overlap the Hann window), so no seam shows where windows meet. The next row of windows
//! is read on a thread of its own while the generator runs. Rows are finished and written as soon
//! as no later window touches them: memory follows the grid's width, not its area.
//!
//! Output: `outputs/<run>/synthetic_S2_t1.tif`, a COG on the project grid with the output
//! bands' names, no data where an input has none.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::ModelConfig;
use super::generator::Generator;
use super::checkpoint::{CheckpointFiles, latest_checkpoint};
use super::{DeviceChoice, device, output_activation};
use crate::dataset::normalize::{Normalization, TileRange};
use crate::dataset::{DatasetSummary, TileIndex};
use crate::fsutil::load_json;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::{Manifest, Project, RunName, Stage};
use crate::raster::{self, PixelWindow};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferOptions {
    pub run: RunName,
    pub device: DeviceChoice,
    /// Share of a window shared with its neighbour, 0 to 0.9.
    pub overlap: f64,
    pub batch_size: usize,
    /// Monte-Carlo dropout passes per window (0 or 1: off, one deterministic pass). With K of
    /// 2 or more the synthetic image is the mean of K stochastic passes, and the standard
    /// deviation per band and the burn probability are written beside it.
    #[serde(default, skip_serializing_if = "is_off")]
    pub samples: usize,
    /// The lowest dNBR (raw: inference knows no offset) the burn probability counts as burned:
    /// the burned class's bound of the assessment's severity classes (USGS low: 0.1).
    #[serde(default = "usgs_burned_dnbr", skip_serializing_if = "is_usgs_burned_dnbr")]
    pub burned_dnbr: f32,
}

fn is_off(samples: &usize) -> bool {
    *samples <= 1
}

fn usgs_burned_dnbr() -> f32 {
    crate::indices::severity::SeverityScheme::usgs().burned_dnbr()
}

fn is_usgs_burned_dnbr(d: &f32) -> bool {
    *d == usgs_burned_dnbr()
}

/// Share of a window's side its neighbours overlap, unless told: an eighth (32 px of a 256 px
/// window), blended with [`taper`] weights. The seams are as invisible as with half (the Hann
/// window of earlier versions: `s2cr bench --what infer`, border-to-inside error ratios of
/// 1.000 and 0.999) at less than half the windows.
pub const DEFAULT_OVERLAP: f64 = 0.125;

/// Most passes per window `--samples` takes.
pub const MAX_SAMPLES: usize = 256;

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions { run: RunName::default(), device: DeviceChoice::Auto, overlap: DEFAULT_OVERLAP, batch_size: 4, samples: 0, burned_dnbr: usgs_burned_dnbr() }
    }
}

/// Which input and output channels make NBR before and after (for the burn probability).
#[derive(Debug, Clone, Copy)]
struct NbrChannels {
    pre_nir: usize,
    pre_swir: usize,
    post_nir: usize,
    post_swir: usize,
}

/// What an inference writes: the synthetic image, and with Monte-Carlo dropout the standard
/// deviation of the passes per band and (when the inputs have Sentinel-2 t0's B08 and B12 and
/// the outputs B08 and B12) the burn probability.
struct Plan {
    names: Vec<String>,
    samples: usize,
    nbr: Option<NbrChannels>,
    /// The generator predicts its own uncertainty (`uncertainty: aleatoric`).
    aleatoric: bool,
}

/// The products of a plan: (name, band names). "synthetic" first.
impl Plan {
    fn new(summary: &DatasetSummary, opts: &InferOptions, aleatoric: bool) -> Result<Plan> {
        if opts.samples > MAX_SAMPLES {
            return Err(Error::invalid("samples", format!("{}: give at most {MAX_SAMPLES} passes per window", opts.samples)));
        }
        let names: Vec<String> = summary.outputs.iter().map(|c| c.band.clone()).collect();
        let input = |name: &str| summary.inputs.iter().position(|c| c.name == name);
        let output = |name: &str| names.iter().position(|b| b == name);
        let nbr = match (input("S2_t0:B08"), input("S2_t0:B12"), output("B08"), output("B12")) {
            (Some(pre_nir), Some(pre_swir), Some(post_nir), Some(post_swir)) => Some(NbrChannels { pre_nir, pre_swir, post_nir, post_swir }),
            _ => None,
        };
        Ok(Plan { names, samples: if opts.samples >= 2 { opts.samples } else { 1 }, nbr, aleatoric })
    }

    fn sampling(&self) -> bool {
        self.samples >= 2
    }

    fn products(&self) -> Vec<(&'static str, Vec<String>)> {
        let mut v = vec![("synthetic", self.names.clone())];
        if self.sampling() || self.aleatoric {
            v.push(("uncertainty", self.names.iter().map(|n| format!("{n} sd")).collect()));
        }
        if self.sampling() || self.aleatoric {
            if self.nbr.is_some() {
                v.push(("burn-probability", BURN_PROBABILITY_BANDS.map(String::from).to_vec()));
            }
        }
        v
    }

    /// The whole-grid file of a product, or a tile's.
    fn path(project: &Project, run: &RunName, product: &str, tile: Option<(usize, usize)>) -> PathBuf {
        match (product, tile) {
            ("synthetic", None) => project.synthetic_s2(run),
            ("uncertainty", None) => project.uncertainty_s2(run),
            (_, None) => project.burn_probability(run),
            ("synthetic", Some((tiles, t))) => project.infer_tile_tif(run, tiles, t),
            (other, Some((tiles, t))) => project.infer_tile_product_tif(run, tiles, t, other),
        }
    }
}

/// The burn probability's bands: the share of passes (or draws) whose dNBR reaches the burned
/// bound, and the mean and standard deviation of their dNBR (raw), from which the assessment
/// finds the probability of its own classes after the offset.
pub const BURN_PROBABILITY_BANDS: [&str; 3] = ["burn probability", "dNBR mean", "dNBR sd"];

/// 64-bit mix (splitmix64's finalizer).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A dropout mask for one pass: 0 with probability `p`, else 1 / (1 - p), for a batch whose
/// element b is the window with seed `seeds[b]` (its position in the grid), so a window gets the
/// same masks whatever batch or tile it is computed in. Public so that a test can make the
/// passes again on its own.
pub fn keep_mask(p: f64, dims: [usize; 4], seeds: &[u64], level: usize, sample: usize) -> Vec<f32> {
    let per = dims[1] * dims[2] * dims[3];
    let scale = (1.0 / (1.0 - p)) as f32;
    let mut v = Vec::with_capacity(dims[0] * per);
    for b in 0..dims[0] {
        let base = mix(seeds.get(b).copied().unwrap_or(0) ^ mix(((level as u64) << 32) ^ sample as u64));
        for j in 0..per as u64 {
            let u = (mix(base ^ j) >> 11) as f64 / (1u64 << 53) as f64;
            v.push(if u < p { 0.0 } else { scale });
        }
    }
    v
}

/// The seed of the window at grid position (x, y).
pub fn window_seed(x: usize, y: usize) -> u64 {
    mix(((y as u64) << 32) ^ x as u64)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferReport {
    pub path: PathBuf,
    pub windows: usize,
    pub device: String,
    pub checkpoint_step: usize,
    pub seconds: f64,
    /// Share of the grid with a synthetic value, percent.
    pub valid_percent: f64,
    /// Nothing ran: the output was up to date with this checkpoint and these options.
    #[serde(default)]
    pub skipped: bool,
}

/// Pixels between the origins of neighbouring windows of `n` pixels that share `overlap` (0 to
/// 0.9) of their side.
pub fn window_stride(n: usize, overlap: f64) -> usize {
    ((n as f64) * (1.0 - overlap.clamp(0.0, 0.9))).round().max(1.0) as usize
}

/// Window origins along one axis: every `stride`, the last one flush with the end.
pub fn window_starts(length: usize, window: usize, stride: usize) -> Vec<usize> {
    if length <= window {
        return vec![0];
    }
    let mut v: Vec<usize> = (0..=length - window).step_by(stride.max(1)).collect();
    if *v.last().unwrap_or(&0) != length - window {
        v.push(length - window);
    }
    v
}

/// Raised-cosine weights of a window side: sin^2(pi (i + 0.5) / n), never zero.
pub fn hann(n: usize) -> Vec<f32> {
    (0..n).map(|i| (std::f64::consts::PI * (i as f64 + 0.5) / n as f64).sin().powi(2) as f32).collect()
}

/// Weights of a window side of `n` pixels that rise as sin^2 over the first `band` pixels, stay
/// 1 in the middle and fall symmetrically (a Tukey window), never zero. With `band` the overlap
/// of neighbouring windows, the two weights in a shared band add up to one (sin^2 + cos^2) and
/// each window's edge, where its prediction is weakest, counts for almost nothing; from `band`
/// n / 2 on it is [`hann`].
pub fn taper(n: usize, band: usize) -> Vec<f32> {
    if 2 * band >= n {
        return hann(n);
    }
    let band = band.max(1);
    (0..n)
        .map(|i| {
            let k = i.min(n - 1 - i);
            if k >= band { 1.0 } else { (std::f64::consts::FRAC_PI_2 * (k as f64 + 0.5) / band as f64).sin().powi(2) as f32 }
        })
        .collect()
}

/// The generator of a run's latest checkpoint, on `dev`, with the run's configuration.
pub fn load_generator(project: &Project, run: &RunName, dev: &Device) -> Result<(Generator, ModelConfig, Normalization, usize)> {
    let run_dir = project.run_dir(run);
    let cp = latest_checkpoint(project, run)?.ok_or_else(|| Error::Project { path: run_dir.clone(), message: format!("run {run} has no checkpoint; train it first (the Train step, `s2cr train`)") })?;
    let cfg = ModelConfig::load(&project.run_model_yaml(run))?;
    let normalization: Normalization = load_json(&project.run_normalization_json(run), "train the run again")?;
    let f = CheckpointFiles::in_dir(&run_dir.join(&cp.dir));
    let g = Generator::new(&cfg, output_activation(&cfg, &normalization), dev)
        .try_load_file(&f.generator)
        .map_err(Error::checkpoint(&f.generator, "loading the generator"))?;
    let g = super::with_output(g, &cfg, &normalization)?;
    if let Some((parameter, count)) = super::finite::non_finite_parameter(&g) {
        return Err(Error::Project {
            path: f.generator.clone(),
            message: format!("the generator of step {} has {count} non-finite value(s) (NaN or infinity) in {parameter}: its training diverged; train the run again (a lower learning rate, or --device cpu if it trained on a GPU)", cp.step),
        });
    }
    Ok((g.valid(), cfg, normalization, cp.step))
}

/// Runs the generator over the whole grid.
pub fn infer(project: &Project, opts: &InferOptions, progress: &Progress) -> Result<InferReport> {
    progress.cleaned(crate::fsutil::remove_stale_partials(&project.output_dir(&opts.run), crate::project::MAX_DEPTH));
    let start = Instant::now();
    // Up to date: the same checkpoint and options made the file that is there.
    let parameters = project.stage_parameters(Stage::Infer, serde_json::to_value(opts).map_err(|e| Error::invalid("inference options", e.to_string()))?);
    if let (crate::project::StageState::Done, Some(m)) = project.stage_state(Stage::Infer, Some(&opts.run))?
        && m.parameters == parameters
    {
        progress.info("up to date; nothing to do");
        let step = latest_checkpoint(project, &opts.run)?.map(|c| c.step).unwrap_or(0);
        let path = project.synthetic_s2(&opts.run);
        return Ok(InferReport { path, windows: 0, device: String::new(), checkpoint_step: step, seconds: 0.0, valid_percent: f64::NAN, skipped: true });
    }
    let core = synthesize_rows(project, opts, 0..project.config.grid.height, None, progress)?;
    remove_unsampled_leftovers(project, opts, &core.outputs);
    let path = project.synthetic_s2(&opts.run);
    let mut manifest = Manifest::new(Stage::Infer, parameters);
    core.record_inputs(project, &mut manifest)?;
    for out in &core.outputs {
        manifest.add_output(project.root(), out)?;
    }
    manifest.save(&project.manifest_path(Stage::Infer, Some(&opts.run)))?;
    let (w, h) = (project.config.grid.width, project.config.grid.height);
    Ok(InferReport { path, windows: core.windows, device: core.device, checkpoint_step: core.step, seconds: start.elapsed().as_secs_f64(), valid_percent: 100.0 * core.written_valid as f64 / (w * h) as f64, skipped: false })
}

/// What one tile of a split inference records beside its GeoTIFF: merging checks that every
/// tile came from the same checkpoint, dataset and options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileRecord {
    pub tiles: usize,
    pub tile: usize,
    /// Grid rows this tile holds.
    pub rows: [usize; 2],
    pub windows: usize,
    pub checkpoint_step: usize,
    /// The stage parameters (run, options) as a whole-grid run records them.
    pub parameters: serde_json::Value,
    /// SHA-256 of the generator and of dataset.json it used.
    pub generator_sha256: String,
    pub dataset_sha256: String,
}

/// The grid rows tile `tile` of `tiles` holds: equal shares of the grid's rows.
pub fn tile_rows(height: usize, tiles: usize, tile: usize) -> std::ops::Range<usize> {
    (tile * height / tiles)..((tile + 1) * height / tiles)
}

fn check_tiles(tiles: usize, tile: Option<usize>) -> Result<()> {
    if tiles == 0 || tiles > 10_000 {
        return Err(Error::invalid("--tiles", format!("{tiles}: give 1 to 10000")));
    }
    if let Some(t) = tile
        && t >= tiles
    {
        return Err(Error::invalid("--tile", format!("{t} is not below --tiles {tiles} (tiles are numbered 0 to {})", tiles - 1)));
    }
    Ok(())
}

/// One of `tiles` pieces of the whole-grid inference: rows [`tile_rows`] with the windows of
/// their neighbours that reach into them, so that [`merge_tiles`] assembles the same image a
/// single process writes. Any scheduler can run the tiles at once (docs/scale/).
pub fn infer_tile(project: &Project, opts: &InferOptions, tiles: usize, tile: usize, progress: &Progress) -> Result<TileRecord> {
    check_tiles(tiles, Some(tile))?;
    let dir = project.infer_tiles_dir(&opts.run);
    progress.cleaned(crate::fsutil::remove_stale_partials(&dir, 1));
    let rows = tile_rows(project.config.grid.height, tiles, tile);
    let core = synthesize_rows(project, opts, rows.clone(), Some((tiles, tile)), progress)?;
    let record = TileRecord {
        tiles,
        tile,
        rows: [rows.start, rows.end],
        windows: core.windows,
        checkpoint_step: core.step,
        parameters: project.stage_parameters(Stage::Infer, serde_json::to_value(opts).map_err(|e| Error::invalid("inference options", e.to_string()))?),
        generator_sha256: crate::fsutil::sha256_file(&core.checkpoint_generator)?,
        dataset_sha256: crate::fsutil::sha256_file(&project.dataset_json())?,
    };
    crate::fsutil::save_json(&project.infer_tile_json(&opts.run, tiles, tile), &record)?;
    Ok(record)
}

/// Assembles the `tiles` pieces into `outputs/<run>/synthetic_S2_t1.tif` (a COG, as a single
/// process writes it) with the same manifest, after checking that every tile is there and came
/// from this run's checkpoint, this dataset and these options.
pub fn merge_tiles(project: &Project, opts: &InferOptions, tiles: usize, progress: &Progress) -> Result<InferReport> {
    check_tiles(tiles, None)?;
    let start = Instant::now();
    let parameters = project.stage_parameters(Stage::Infer, serde_json::to_value(opts).map_err(|e| Error::invalid("inference options", e.to_string()))?);
    let run_dir = project.run_dir(&opts.run);
    let cp = latest_checkpoint(project, &opts.run)?.ok_or_else(|| Error::Project { path: run_dir.clone(), message: format!("run {} has no checkpoint", opts.run) })?;
    let generator = CheckpointFiles::in_dir(&run_dir.join(&cp.dir)).generator;
    let (generator_sha256, dataset_sha256) = (crate::fsutil::sha256_file(&generator)?, crate::fsutil::sha256_file(&project.dataset_json())?);
    let missing: Vec<usize> = (0..tiles).filter(|&t| !project.infer_tile_json(&opts.run, tiles, t).is_file() || !project.infer_tile_tif(&opts.run, tiles, t).is_file()).collect();
    if !missing.is_empty() {
        return Err(Error::Project {
            path: project.infer_tiles_dir(&opts.run),
            message: format!("tile(s) {} of {tiles} are not done: run `s2cr infer --run {} --tiles {tiles} --tile I` for each", missing.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "), opts.run),
        });
    }
    let grid = project.config.grid.clone();
    let summary: DatasetSummary = load_json(&project.run_dataset_json(&opts.run), "train the run again")?;
    let aleatoric = !ModelConfig::load(&project.run_model_yaml(&opts.run))?.uncertainty.is_none();
    let products = Plan::new(&summary, opts, aleatoric)?.products();
    let path = project.synthetic_s2(&opts.run);
    let mut writers = Vec::new();
    let mut outputs = Vec::new();
    for (product, names) in &products {
        let whole = Plan::path(project, &opts.run, product, None);
        writers.push(raster::BlockWriter::create(&whole, &grid, names, f32::NAN)?);
        outputs.push(whole);
    }
    let (mut windows, mut valid) = (0usize, 0usize);
    progress.started(Some(tiles as u64));
    for t in 0..tiles {
        progress.check_cancelled()?;
        let json = project.infer_tile_json(&opts.run, tiles, t);
        let r: TileRecord = load_json(&json, "run that tile again")?;
        let stale = if r.parameters != parameters {
            Some("other options or another run")
        } else if r.generator_sha256 != generator_sha256 || r.checkpoint_step != cp.step {
            Some("another checkpoint")
        } else if r.dataset_sha256 != dataset_sha256 {
            Some("another dataset")
        } else if r.rows != [tile_rows(grid.height, tiles, t).start, tile_rows(grid.height, tiles, t).end] {
            Some("another grid")
        } else {
            None
        };
        if let Some(why) = stale {
            return Err(Error::Project { path: json, message: format!("tile {t} was made with {why}: run it again (`s2cr infer --run {} --tiles {tiles} --tile {t}`)", opts.run) });
        }
        let rows = r.rows[1] - r.rows[0];
        for ((product, names), writer) in products.iter().zip(writers.iter_mut()) {
            let tif = Plan::path(project, &opts.run, product, Some((tiles, t)));
            if !tif.is_file() {
                return Err(Error::Project { path: tif, message: format!("missing: tile {t} was made without this product; run it again (`s2cr infer --run {} --tiles {tiles} --tile {t}`)", opts.run) });
            }
            let stack = raster::read_window(&tif.display().to_string(), &[], None)?;
            if stack.width != grid.width || stack.height != rows || stack.bands.len() != names.len() {
                return Err(Error::Project { path: tif, message: format!("is {} x {} with {} bands where tile {t} should be {} x {rows} with {}: run it again", stack.width, stack.height, stack.bands.len(), grid.width, names.len()) });
            }
            for (c, band) in stack.bands.iter().enumerate() {
                if rows > 0 {
                    writer.write_rows(c, r.rows[0], rows, band)?;
                }
            }
            if *product == "synthetic" {
                valid += band_valid(&stack.bands);
            }
        }
        windows += r.windows;
        progress.advanced(t as u64 + 1, tiles as u64, format!("tile {t}"));
    }
    for writer in writers {
        writer.finish()?;
    }
    remove_unsampled_leftovers(project, opts, &outputs);
    let mut manifest = Manifest::new(Stage::Infer, parameters);
    manifest.add_input(project.root(), &generator)?;
    manifest.add_input(project.root(), &project.checkpoint_json(&opts.run))?;
    manifest.add_input(project.root(), &project.root().join(&summary.files.inputs_vrt))?;
    manifest.add_input(project.root(), &project.dataset_json())?;
    for out in &outputs {
        manifest.add_output(project.root(), out)?;
    }
    manifest.save(&project.manifest_path(Stage::Infer, Some(&opts.run)))?;
    Ok(InferReport { path, windows, device: "tiles".into(), checkpoint_step: cp.step, seconds: start.elapsed().as_secs_f64(), valid_percent: 100.0 * valid as f64 / (grid.width * grid.height) as f64, skipped: false })
}

/// The uncertainty and burn probability of an earlier inference that this one did not write
/// (`written`) no longer go with the image: removed, so nothing shows them beside it.
fn remove_unsampled_leftovers(project: &Project, opts: &InferOptions, written: &[PathBuf]) {
    for path in [project.uncertainty_s2(&opts.run), project.burn_probability(&opts.run)] {
        if !written.contains(&path) {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(format!("{}.aux.xml", path.display()));
        }
    }
}

/// Pixels with a value in the first band.
fn band_valid(bands: &[Vec<f32>]) -> usize {
    bands.first().map(|b| b.iter().filter(|v| v.is_finite()).count()).unwrap_or(0)
}

/// What one pass of [`synthesize_rows`] did.
struct Synthesized {
    windows: usize,
    device: String,
    step: usize,
    written_valid: usize,
    checkpoint_generator: PathBuf,
    /// The run's checkpoint.json: names the latest checkpoint (an older one's files stay
    /// unchanged beside a newer one).
    checkpoint_json: PathBuf,
    inputs_vrt: PathBuf,
    /// The files written: the synthetic image first.
    outputs: Vec<PathBuf>,
}

impl Synthesized {
    /// The inputs an inference manifest records: a rebuilt dataset or another checkpoint makes
    /// the output stale.
    fn record_inputs(&self, project: &Project, manifest: &mut Manifest) -> Result<()> {
        manifest.add_input(project.root(), &self.checkpoint_generator)?;
        manifest.add_input(project.root(), &self.checkpoint_json)?;
        manifest.add_input(project.root(), &self.inputs_vrt)?;
        manifest.add_input(project.root(), &project.dataset_json())
    }
}

/// Synthesizes grid rows `rows` into `out` (a GeoTIFF of those rows, full width): every window
/// of the global layout that touches them, in the global order and batches, so the rows get
/// the same values as in a whole-grid run.
fn synthesize_rows(project: &Project, opts: &InferOptions, rows_wanted: std::ops::Range<usize>, tile: Option<(usize, usize)>, progress: &Progress) -> Result<Synthesized> {
    let (dev, device_name) = device(opts.device)?;
    // Windows are read once or a few times each and the OS caches the files: GDAL's default
    // block cache (5 % of RAM) only adds memory here (measured: 732 against 288 MiB peak on a
    // 4096 grid, and no slower with 64 MB).
    let _cache = raster::BlockCacheLimit::set(64 << 20);
    let (g, cfg, normalization, step) = load_generator(project, &opts.run, &dev)?;
    let g = g.fold_batch_norm().with_dropout(&cfg);
    let run_dir = project.run_dir(&opts.run);
    let summary: DatasetSummary = load_json(&project.run_dataset_json(&opts.run), "train the run again")?;
    let index: TileIndex = load_json(&project.run_tiles_json(&opts.run), "train the run again")?;
    let n = index.size;
    let inputs_vrt = project.root().join(&summary.files.inputs_vrt).display().to_string();
    let grid = &project.config.grid;
    let (w, h) = (grid.width, grid.height);
    let (c_in, c_out) = (summary.inputs.len(), summary.outputs.len());
    // The dataset may have been rebuilt with other channels since the run was trained.
    let now = raster::info(&inputs_vrt)?;
    let channels_now: Vec<&str> = now.bands.iter().map(|b| b.description.as_str()).collect();
    let trained: Vec<&str> = summary.inputs.iter().map(|c| c.name.as_str()).collect();
    if channels_now != trained {
        return Err(Error::Project {
            path: project.root().join(&summary.files.inputs_vrt),
            message: format!("holds {} but run {} was trained on {}; rebuild the dataset as it was, or train a new run", channels_now.join(" "), opts.run, trained.join(" ")),
        });
    }
    let stride = window_stride(n, opts.overlap);
    let (r0, r1) = (rows_wanted.start.min(h), rows_wanted.end.min(h));
    // The window rows that touch the rows wanted.
    let ys: Vec<usize> = window_starts(h, n, stride).into_iter().filter(|&y| y < r1 && y + n.min(h - y) > r0).collect();
    let xs = window_starts(w, n, stride);
    let total = xs.len() * ys.len();
    // Each window's edge band as wide as the overlap (at 0.5, the Hann window).
    let weights = taper(n, n - stride.min(n));
    let plan = Plan::new(&summary, opts, g.has_scale_head())?;
    // The head's scales times their calibration on the validation blocks, when training made one.
    let calibration_path = project.run_uncertainty_calibration(&opts.run);
    let factors: Vec<f32> = if plan.aleatoric && calibration_path.is_file() {
        let c: super::calibration::ScaleCalibration = load_json(&calibration_path, "train the run again")?;
        if c.factors.len() != c_out || c.factors.iter().any(|f| !f.is_finite() || *f <= 0.0) {
            return Err(Error::Project { path: calibration_path, message: format!("holds {} factors for {c_out} bands, or one not positive: train the run again", c.factors.len()) });
        }
        progress.info(format!("uncertainty calibrated on {} validation pixels", c.pixels));
        c.factors.iter().map(|f| *f as f32).collect()
    } else {
        if plan.aleatoric {
            progress.warn("the uncertainty is not calibrated (the run has no validation blocks): the head's scales as trained");
        }
        vec![1.0; c_out]
    };
    match (plan.aleatoric, plan.sampling()) {
        (true, true) => progress.info(format!("uncertainty: the generator's own (aleatoric) and {} Monte-Carlo passes, variances added", plan.samples)),
        (true, false) => progress.info("uncertainty: the generator's own (aleatoric), sd = sqrt(2) x its Laplace scale"),
        _ => {}
    }
    if plan.sampling() && g.dropout_levels().is_empty() {
        return Err(Error::invalid(
            "samples",
            format!(
                "run {} has no dropout layer (model.yaml: dropout {}, dropout_blocks {:?}, depth {}): Monte-Carlo passes would all be the same and the uncertainty zero; infer without --samples, or train with dropout",
                opts.run, cfg.dropout, cfg.dropout_blocks, cfg.depth
            ),
        ));
    }
    if (plan.sampling() || plan.aleatoric) && plan.nbr.is_none() {
        progress.warn("no burn probability: the run's inputs lack Sentinel-2 t0's B08 and B12, or its outputs B08 and B12 (NBR needs both)");
    }
    let part = crate::grid::TargetGrid { y_max: grid.y_max - r0 as f64 * grid.pixel_size_m, height: r1 - r0, ..grid.clone() };
    let products = plan.products();
    let mut outs = Vec::new();
    let mut writers = Vec::new();
    // Each file says whose data it holds and what made it.
    let tags = raster::Tags {
        attribution: crate::catalog::stage::project_attribution(project),
        provenance: format!("sent2-cloud-remover {}; run {}; generator of step {step}", crate::provenance::long_version(), opts.run),
    };
    for (product, names) in &products {
        let path = Plan::path(project, &opts.run, product, tile);
        let mut w = raster::BlockWriter::create(&path, &part, names, f32::NAN)?;
        w.tag(&tags)?;
        writers.push(w);
        outs.push(path);
    }
    // Plane p of the accumulators goes to (writer, band): the image, then the standard
    // deviations, then the burn probability.
    let plane_to: Vec<(usize, usize)> = products.iter().enumerate().flat_map(|(wi, (_, names))| (0..names.len()).map(move |b| (wi, b))).collect();
    let planes = plane_to.len();
    // Rolling accumulators over rows [buf_y, buf_y + n) (or fewer at the bottom).
    let rows = n.min(h);
    let mut acc = vec![vec![0f32; rows * w]; planes];
    let mut wsum = vec![0f32; rows * w];
    let mut buf_y = ys.first().copied().unwrap_or(r0);
    let mut written_valid = 0usize;
    let mut flush = |upto: usize, buf_y: &mut usize, acc: &mut Vec<Vec<f32>>, wsum: &mut Vec<f32>, writers: &mut [raster::BlockWriter]| -> Result<()> {
        let count = upto.saturating_sub(*buf_y);
        if count == 0 {
            return Ok(());
        }
        // Of the final rows [buf_y, upto), those wanted.
        let (lo, hi) = ((*buf_y).max(r0), upto.min(r1));
        for (c, a) in acc.iter_mut().enumerate() {
            if lo < hi {
                let out: Vec<f32> = a[(lo - *buf_y) * w..(hi - *buf_y) * w].iter().zip(&wsum[(lo - *buf_y) * w..(hi - *buf_y) * w]).map(|(v, s)| if *s > 0.0 { v / s } else { f32::NAN }).collect();
                let (wi, band) = plane_to[c];
                writers[wi].write_rows(band, lo - r0, hi - lo, &out)?;
            }
            a.copy_within(count * w.., 0);
            let len = a.len();
            a[len - count * w..].fill(0.0);
        }
        if lo < hi {
            written_valid += wsum[(lo - *buf_y) * w..(hi - *buf_y) * w].iter().filter(|s| **s > 0.0).count();
        }
        wsum.copy_within(count * w.., 0);
        let len = wsum.len();
        wsum[len - count * w..].fill(0.0);
        *buf_y = upto;
        Ok(())
    };
    progress.started(Some(total as u64));
    let mut done = 0usize;
    // The uncertainty head's output is read without de-normalization (see `laplace_sd`).
    let identity = vec![crate::dataset::normalize::Affine::IDENTITY; c_out];
    let burned_dnbr = opts.burned_dnbr;
    // The next row of windows is read on a thread of its own while the generator runs on this
    // one (at most one row waits; none is read after an error or a cancel here).
    let read_row = |y: usize| raster::read_window_reusing(&inputs_vrt, &[], Some(PixelWindow { x_off: 0, y_off: y, width: w, height: n.min(h - y) }));
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(0);
        let rows_to_read = &ys;
        std::thread::Builder::new()
            .name("infer-read".into())
            .spawn_scoped(scope, move || {
                for &y in rows_to_read {
                    if tx.send(read_row(y)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::invalid("inference", format!("cannot start the reading thread: {e}")))?;
        for &y in &ys {
            progress.check_cancelled()?;
            // Rows above this window row are final.
            flush(y, &mut buf_y, &mut acc, &mut wsum, &mut writers)?;
            let wh = n.min(h - y);
            // The whole row of windows in one read: each window read on its own decoded the
            // files' blocks again (they span several windows; GeoTIFF blocks hold all bands).
            let strip = rx.recv().map_err(|_| Error::Raster { location: inputs_vrt.clone(), message: format!("the reading thread ended before row {y}") })??;
            for chunk in xs.chunks(opts.batch_size.max(1)) {
                let mut stacks = Vec::with_capacity(chunk.len());
                let mut ranges = Vec::with_capacity(chunk.len());
                for &x in chunk {
                    let ww = n.min(w - x);
                    let stack = strip.crop(PixelWindow { x_off: x, y_off: 0, width: ww, height: wh }).ok_or_else(|| Error::Raster {
                        location: inputs_vrt.clone(),
                        message: format!("window at column {x} is outside the {} pixels read of row {y}", strip.width),
                    })?;
                    // The window's own ranges, as the tile and batch normalizations use them.
                    ranges.push(
                        stack
                            .bands
                            .iter()
                            .map(|b| {
                                let (lo, hi) = b.iter().zip(&stack.valid).filter(|(_, ok)| **ok).fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (v, _)| (lo.min(*v), hi.max(*v)));
                                if lo <= hi { TileRange { min: lo, max: hi } } else { TileRange { min: f32::NAN, max: f32::NAN } }
                            })
                            .collect::<Vec<TileRange>>(),
                    );
                    stacks.push((x, ww, stack));
                }
                // One map set for the whole batch of windows, as training computed it for a batch
                // of tiles (the batch normalization shares ranges across the batch; the tile one
                // gives each window its own).
                let (in_maps, out_maps) = normalization.maps(&ranges);
                let mut batch = Vec::with_capacity(chunk.len() * c_in * n * n);
                let mut windows = Vec::new();
                for (k, (x, ww, stack)) in stacks.into_iter().enumerate() {
                    for (c, band) in stack.bands.iter().enumerate() {
                        let mut v = band.clone();
                        in_maps[k][c].normalize(&mut v);
                        // Pad to a full window (grids smaller than a patch, or the last window).
                        let mut plane = vec![0f32; n * n];
                        for r in 0..wh {
                            for col in 0..ww {
                                let x = v[r * ww + col];
                                plane[r * n + col] = if stack.valid[r * ww + col] && x.is_finite() { x } else { 0.0 };
                            }
                        }
                        batch.extend(plane);
                    }
                    // NBR before the fire, from the window's raw Sentinel-2 t0 (burn probability).
                    let nbr_pre: Option<Vec<f32>> = plan.nbr.filter(|_| plan.sampling() || plan.aleatoric).map(|b| {
                        stack.bands[b.pre_nir].iter().zip(&stack.bands[b.pre_swir]).map(|(nir, swir)| (nir - swir) / (nir + swir)).collect()
                    });
                    windows.push((x, ww, stack.valid, out_maps[k].clone(), nbr_pre));
                }
                let input = Tensor::<4>::from_data(TensorData::new(batch, [chunk.len(), c_in, n, n]), &dev);
                if !plan.sampling() {
                    // One deterministic pass, blended straight into the accumulators.
                    let (mean, log_scale) = g.forward_with_scale(input);
                    let pred: Vec<f32> = mean.try_into_vec_as::<f32>().map_err(|e| Error::invalid("inference", format!("{e:?}")))?;
                    let scale: Option<Vec<f32>> = log_scale.map(|s| s.try_into_vec_as::<f32>().map_err(|e| Error::invalid("inference", format!("{e:?}")))).transpose()?;
                    for (k, (x, ww, valid, maps, _)) in windows.iter().enumerate() {
                        each_valid_value(&pred, k, c_out, n, wh, *ww, valid, maps, |c, r, col, v| {
                            let weight = weights[r] * weights[col];
                            let i = (y + r - buf_y) * w + x + col;
                            acc[c][i] += v * weight;
                            if c == 0 {
                                wsum[i] += weight;
                            }
                        });
                        if let Some(scale) = &scale {
                            each_valid_value(scale, k, c_out, n, wh, *ww, valid, &identity, |c, r, col, s| {
                                let i = (y + r - buf_y) * w + x + col;
                                acc[c_out + c][i] += laplace_sd(s, maps[c].scale * factors[c]) * weights[r] * weights[col];
                            });
                            // The burn probability: the share of draws from the predicted
                            // distributions of NIR and SWIR whose dNBR reaches the burned class.
                            if let (Some(b), Some(pre)) = (plan.nbr, &windows[k].4) {
                                let seed = window_seed(*x, y);
                                for r in 0..wh {
                                    for col in 0..*ww {
                                        if !valid[r * ww + col] {
                                            continue;
                                        }
                                        let at = |c: usize| (k * c_out + c) * n * n + r * n + col;
                                        let draw = |c: usize| (maps[c].scale * pred[at(c)] + maps[c].offset, (scale[at(c)]).exp() * (maps[c].scale * factors[c]).abs());
                                        let d = laplace_burn_probability(draw(b.post_nir), draw(b.post_swir), pre[r * ww + col], burned_dnbr, seed ^ ((r * n + col) as u64).wrapping_mul(0x9E37_79B9));
                                        let (i, weight) = ((y + r - buf_y) * w + x + col, weights[r] * weights[col]);
                                        for (k, v) in [d.probability, d.mean, d.sd].into_iter().enumerate() {
                                            acc[2 * c_out + k][i] += v * weight;
                                        }
                                    }
                                }
                            }
                        }
                        done += 1;
                    }
                    progress.advanced(done as u64, total as u64, format!("window row {y}"));
                    continue;
                }
                // Monte-Carlo dropout. Per window, pixel and band: the sum and sum of squares of the
                // de-normalized passes, and the passes whose dNBR reaches the burned class.
                let cells = wh * n;
                let mut sum = vec![vec![0f64; c_out * cells]; windows.len()];
                let mut sumsq = vec![vec![0f64; c_out * cells]; windows.len()];
                let mut burned = vec![vec![0u32; cells]; windows.len()];
                // The passes' dNBR: sum and sum of squares.
                let mut dnbr_sums = vec![vec![[0f64; 2]; cells]; windows.len()];
                // The generator's own variance, summed over the passes (with an uncertainty head).
                let mut own = vec![vec![0f64; if plan.aleatoric { c_out * cells } else { 0 }]; windows.len()];
                let seeds: Vec<u64> = windows.iter().map(|(x, ..)| window_seed(*x, y)).collect();
                for sample in 0..plan.samples {
                    let p = cfg.dropout;
                    let mut mask = |level: usize, dims: [usize; 4]| Tensor::<4>::from_data(TensorData::new(keep_mask(p, dims, &seeds, level, sample), dims), &dev);
                    let (out, log_scale) = g.forward_sampled(input.clone(), &mut mask);
                    let pred: Vec<f32> = out.try_into_vec_as::<f32>().map_err(|e| Error::invalid("inference", format!("{e:?}")))?;
                    let scale: Option<Vec<f32>> = log_scale.map(|s| s.try_into_vec_as::<f32>().map_err(|e| Error::invalid("inference", format!("{e:?}")))).transpose()?;
                    for (k, (_, ww, valid, maps, nbr_pre)) in windows.iter().enumerate() {
                        if let Some(scale) = &scale {
                            each_valid_value(scale, k, c_out, n, wh, *ww, valid, &identity, |c, r, col, s| {
                                own[k][c * cells + r * n + col] += (laplace_sd(s, maps[c].scale * factors[c]) as f64).powi(2);
                            });
                        }
                        let mut post = vec![[0f32; 2]; if nbr_pre.is_some() { cells } else { 0 }];
                        each_valid_value(&pred, k, c_out, n, wh, *ww, valid, maps, |c, r, col, v| {
                            let cell = r * n + col;
                            sum[k][c * cells + cell] += v as f64;
                            sumsq[k][c * cells + cell] += (v as f64) * (v as f64);
                            if let Some(b) = plan.nbr.filter(|_| nbr_pre.is_some()) {
                                if c == b.post_nir {
                                    post[cell][0] = v;
                                } else if c == b.post_swir {
                                    post[cell][1] = v;
                                }
                            }
                        });
                        if let Some(pre) = nbr_pre {
                            for r in 0..wh {
                                for col in 0..*ww {
                                    let cell = r * n + col;
                                    let [nir, swir] = post[cell];
                                    let dnbr = pre[r * ww + col] - (nir - swir) / (nir + swir);
                                    if valid[r * ww + col] && dnbr >= burned_dnbr {
                                        burned[k][cell] += 1;
                                    }
                                    if dnbr.is_finite() {
                                        dnbr_sums[k][cell][0] += dnbr as f64;
                                        dnbr_sums[k][cell][1] += (dnbr as f64) * (dnbr as f64);
                                    }
                                }
                            }
                        }
                    }
                }
                let passes = plan.samples as f64;
                for (k, (x, ww, valid, _, nbr_pre)) in windows.iter().enumerate() {
                    for r in 0..wh {
                        for col in 0..*ww {
                            if !valid[r * ww + col] {
                                continue;
                            }
                            let cell = r * n + col;
                            let weight = weights[r] * weights[col];
                            let i = (y + r - buf_y) * w + x + col;
                            wsum[i] += weight;
                            for c in 0..c_out {
                                let mean = sum[k][c * cells + cell] / passes;
                                acc[c][i] += mean as f32 * weight;
                                let mut var = (sumsq[k][c * cells + cell] / passes - mean * mean).max(0.0);
                                if plan.aleatoric {
                                    // Variances add: the passes' spread and the mean of the generator's own.
                                    var += own[k][c * cells + cell] / passes;
                                }
                                acc[c_out + c][i] += var.sqrt() as f32 * weight;
                            }
                            if nbr_pre.is_some() {
                                let [s, sq] = dnbr_sums[k][cell];
                                let m = s / passes;
                                let sd = (sq / passes - m * m).max(0.0).sqrt();
                                for (b, v) in [burned[k][cell] as f64 / passes, m, sd].into_iter().enumerate() {
                                    acc[2 * c_out + b][i] += v as f32 * weight;
                                }
                            }
                        }
                    }
                    done += 1;
                }
                progress.advanced(done as u64, total as u64, format!("window row {y}"));
            }
        }
        Ok(())
    })?;
    let end = ys.last().map(|&y| y + n.min(h - y)).unwrap_or(r1).max(r1);
    flush(end, &mut buf_y, &mut acc, &mut wsum, &mut writers)?;
    for writer in writers {
        writer.finish()?;
    }
    let checkpoint_generator = CheckpointFiles::in_dir(&run_dir.join(latest_checkpoint(project, &opts.run)?.map(|c| c.dir).unwrap_or_default())).generator;
    Ok(Synthesized { windows: total, device: device_name, step, written_valid, checkpoint_generator, checkpoint_json: project.checkpoint_json(&opts.run), inputs_vrt: project.root().join(&summary.files.inputs_vrt), outputs: outs })
}


/// Draws of a pixel's NIR and SWIR from the generator's own distributions (Laplace, location and
/// scale in reflectance) per burn probability.
pub const ALEATORIC_DRAWS: u64 = 64;

/// What [`ALEATORIC_DRAWS`] draws of a pixel's dNBR give: the share at or above the burned
/// bound, and their mean and standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DnbrDraws {
    pub probability: f32,
    pub mean: f32,
    pub sd: f32,
}

/// [`ALEATORIC_DRAWS`] seeded draws of NIR and SWIR (each `(location, scale)`) and their dNBR
/// against the pre-fire NBR `pre`, judged against the lowest burned dNBR `burned_dnbr`.
pub fn laplace_burn_probability(nir: (f32, f32), swir: (f32, f32), pre: f32, burned_dnbr: f32, seed: u64) -> DnbrDraws {
    // Inverse CDF of a Laplace at a uniform u in (-1/2, 1/2): mu - b sgn(u) ln(1 - 2|u|).
    let draw = |(mu, b): (f32, f32), z: u64| {
        let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64 - 0.5;
        mu - b * (u.signum() * (1.0 - 2.0 * u.abs()).ln()) as f32
    };
    let (mut burned, mut sum, mut sq, mut finite) = (0u64, 0f64, 0f64, 0u64);
    for d in 0..ALEATORIC_DRAWS {
        let z = mix(seed.wrapping_add(2 * d));
        let (n, s) = (draw(nir, z), draw(swir, mix(z ^ 0x5851_F42D_4C95_7F2D)));
        let dnbr = pre - (n - s) / (n + s);
        if dnbr >= burned_dnbr {
            burned += 1;
        }
        if dnbr.is_finite() {
            sum += dnbr as f64;
            sq += (dnbr as f64) * (dnbr as f64);
            finite += 1;
        }
    }
    let m = if finite > 0 { sum / finite as f64 } else { f64::NAN };
    let sd = if finite > 0 { (sq / finite as f64 - m * m).max(0.0).sqrt() } else { f64::NAN };
    DnbrDraws { probability: burned as f32 / ALEATORIC_DRAWS as f32, mean: m as f32, sd: sd as f32 }
}

/// The standard deviation in reflectance of a Laplace distribution whose scale is e^`log_scale`
/// in normalized units: sqrt(2) b, times the band's de-normalization scale.
pub fn laplace_sd(log_scale: f32, map_scale: f32) -> f32 {
    std::f32::consts::SQRT_2 * log_scale.exp() * map_scale.abs()
}

/// Calls `f(band, row, column, value)` for every valid pixel of window `k` in a pass's output
/// (`pred`: windows x `c_out` bands x n x n, `wh` x `ww` of each window used), the value de-normalized
/// with the window's maps: what one deterministic pass and each Monte-Carlo pass read alike.
#[allow(clippy::too_many_arguments)]
fn each_valid_value(pred: &[f32], k: usize, c_out: usize, n: usize, wh: usize, ww: usize, valid: &[bool], maps: &[crate::dataset::normalize::Affine], mut f: impl FnMut(usize, usize, usize, f32)) {
    for (c, map) in maps.iter().enumerate().take(c_out) {
        let base = (k * c_out + c) * n * n;
        for r in 0..wh {
            for col in 0..ww {
                if !valid[r * ww + col] {
                    continue;
                }
                let mut v = [pred[base + r * n + col]];
                map.denormalize(&mut v);
                f(c, r, col, v[0]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The burn probability from draws of the predicted Laplace distributions: 0 and 1 far from
    /// the burned class's bound, about one half with SWIR's location on the bound (NIR certain),
    /// the same for the same seed.
    #[test]
    fn the_burn_probability_of_the_generators_own_distributions() {
        let th = crate::indices::severity::SeverityScheme::usgs();
        // The smallest burned dNBR.
        let t = (0..1000).map(|i| i as f32 / 1000.0).find(|d| th.is_burned(th.classify(*d))).unwrap();
        assert_eq!(t, th.burned_dnbr());
        let (pre, nir) = (0.6f32, 0.3f32);
        // dNBR >= t where SWIR >= nir (1 - q) / (1 + q), q = pre - t.
        let q = pre - t;
        let bound = nir * (1.0 - q) / (1.0 + q);
        let p = |swir: f32, b: f32, seed: u64| laplace_burn_probability((nir, 1e-7), (swir, b), pre, t, seed).probability;
        assert_eq!(p(bound + 0.2, 0.01, 1), 1.0);
        assert_eq!(p(bound - 0.2, 0.01, 1), 0.0);
        let half: f32 = (0..20).map(|s| p(bound, 0.02, s)).sum::<f32>() / 20.0;
        assert!((half - 0.5).abs() < 0.05, "{half}");
        assert_eq!(p(bound, 0.02, 7), p(bound, 0.02, 7));
        assert!(p(bound + 0.01, 0.02, 3) > p(bound - 0.01, 0.02, 3));
        // Near-certain bands: the draws' dNBR is the bands' own, with no spread.
        let d = laplace_burn_probability((nir, 1e-7), (0.1, 1e-7), pre, t, 5);
        assert!((d.mean - (pre - (nir - 0.1) / (nir + 0.1))).abs() < 1e-5 && d.sd < 1e-5, "{d:?}");
    }

    #[test]
    fn windows_cover_the_grid_and_weights_never_vanish() {
        assert_eq!(window_starts(256, 64, 32), vec![0, 32, 64, 96, 128, 160, 192]);
        assert_eq!(window_starts(250, 64, 48), vec![0, 48, 96, 144, 186]);
        assert_eq!(window_starts(50, 64, 32), vec![0]);
        let w = hann(64);
        assert!(w.iter().all(|v| *v > 0.0 && *v <= 1.0));
        assert!((w[31] - w[32]).abs() < 1e-6, "symmetric");
        assert!(w[0] < 0.001, "almost nothing at the edge");
    }
}
