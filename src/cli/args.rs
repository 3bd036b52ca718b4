//! The command line's shape: clap's definitions of `s2cr`'s commands, arguments and value
//! enums, and nothing else. The doc comments here are the `--help` text.
//!
//! This module must not open projects, convert arguments into the library's settings (that is
//! `convert`) or run anything; the only code here is `parse_run`, which makes every `--run`
//! a validated [`RunName`] at parse time.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::aoi::DEFAULT_MAX_AREA_KM2;
use crate::project::RunName;

/// Parses a `--run` value: a run name is one plain folder name (`--run ../../x` is refused).
pub fn parse_run(text: &str) -> Result<RunName, String> {
    RunName::new(text).map_err(|e| match e {
        crate::Error::InvalidValue { message, .. } => message,
        other => other.to_string(),
    })
}

/// The exit status, for `--help` and the man page.
pub const EXIT_STATUS: &str = "Exit status: 0 done; 1 an error (the message names the file, field or URL and what to do); 2 a usage error (the command line); 130 cancelled (Ctrl-C), after keeping what the stage keeps on a cancel (training saves a checkpoint; a rerun resumes).";

/// Synthesize cloud-free Sentinel-2 images from Sentinel-1 radar, and judge them by the burned
/// areas they map. Without a command, opens the desktop app.
#[derive(Debug, Parser)]
#[command(name = "s2cr", version, long_version = crate::provenance::long_version(), about, long_about = None, after_long_help = EXIT_STATUS)]
pub struct Cli {
    /// Project folder (default: the current folder).
    #[arg(long, global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// More log output (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors; no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// When another s2cr is writing the project, wait for it instead of stopping at once.
    #[arg(long, global = true)]
    pub wait: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a project folder for an area of interest and two date ranges.
    Init(InitArgs),
    /// Work with area-of-interest files (GeoJSON, WKT).
    #[command(subcommand)]
    Aoi(AoiCommand),
    /// Show a project: AOI, dates, grid, and each stage as done / stale / missing.
    Info {
        /// Project folder (default: --project or the current folder).
        dir: Option<PathBuf>,
    },
    /// Search Sentinel-2 and Sentinel-1 scenes for the project's AOI and dates (STAC).
    Search(SearchArgs),
    /// Download the AOI windows of the chosen scenes into raw/ (resumable).
    Fetch(FetchArgs),
    /// Put the fetched scenes on the project grid: S2 reflectance + mask, S1 dB after a speckle filter.
    Preprocess(PreprocessArgs),
    /// Build the training set: VRT stacks, patches, spatial split, normalization statistics.
    Dataset(DatasetArgs),
    /// Train the conditional GAN (pix2pix) on the training set; resumable.
    Train(TrainArgs),
    /// Synthesize Sentinel-2 at t1 over the whole grid with a trained run.
    Infer(InferArgs),
    /// Judge a synthetic post-fire image by the burned area it maps, against the real one.
    Assess(AssessArgs),
    /// Inspect rasters with GDAL.
    #[command(subcommand)]
    Raster(RasterCommand),
    /// Measure speed and peak memory of each stage (speckle filters, preprocessing, loader,
    /// model, inference, display, assessment), on generated data of --size.
    Bench(BenchArgs),
    /// Run the pipeline's stages in order (search, fetch, preprocess, dataset, train, infer, assess),
    /// skipping those that are up to date; running it again after a stop resumes.
    Run {
        /// Pipeline file (YAML: project, stages, run, device and each stage's settings; see
        /// confs/pipeline.yaml). Without one, every stage with its defaults.
        pipeline: Option<PathBuf>,
    },
    /// Write a project layer (Sentinel-2, Sentinel-1, synthetic, dNBR, severity, perimeters) as
    /// a COG, a PNG as displayed (with a world file), or GeoJSON; --list shows the layers.
    Export(ExportArgs),
    /// Import a generator (pix2pix's latest_net_G.pth, safetensors) as a run, or export a run's
    /// generator as safetensors with pix2pix's keys.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Check this machine for s2cr: GDAL and its drivers, compute devices, disk space, the
    /// providers, credentials (present or absent), the map's tile cache; each problem with its
    /// fix. Fails only when a required check (GDAL) does.
    Doctor {
        /// Do not contact the providers.
        #[arg(long)]
        offline: bool,
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a project's intermediates (raw windows, preprocessed rasters, the training set,
    /// all but each run's last checkpoint) and say what was freed; outputs/ always stays.
    Clean {
        /// Keep these too (comma-separated): raw, preprocessed, dataset, checkpoints; outputs
        /// are always kept.
        #[arg(long, value_delimiter = ',', value_name = "PART")]
        keep: Vec<CleanPartArg>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Create a project from the embedded offline demo (real Sentinel-1/2 data with a simulated
    /// burn) and run every stage on it with CPU-friendly settings; then open the app on it.
    Demo(DemoArgs),
    /// Write the man pages and the shell completions (bash, zsh, fish) into a folder, for
    /// packages (`make deb`).
    #[command(hide = true)]
    DistAssets {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Rebuild the embedded demo's catalog (assets/demo) from SEN12MS-CR's folder.
    #[command(hide = true)]
    BuildDemoAssets {
        /// shared/data/s1s2-sen12mscr
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        #[arg(long, value_name = "DIR", default_value = "assets/demo")]
        out: PathBuf,
        /// The SEN12MS-CR patch to cut (its file name without .tif); another patch than the
        /// embedded demo's makes a second demo-like catalog for `s2cr demo --catalog`.
        #[arg(long, value_name = "NAME", default_value = crate::tools::demo_assets::SOURCE_PATCH)]
        patch: String,
    },
    /// Open the desktop app (also what `s2cr` alone does).
    #[cfg(feature = "gui")]
    Gui {
        /// Project folder to open, or an AOI file (GeoJSON, WKT) to start a project from.
        dir: Option<PathBuf>,
        /// No map tiles from the internet: the built-in Natural Earth basemap only.
        #[arg(long)]
        offline: bool,
        /// The renderer: wgpu (falling back to OpenGL when it cannot start), or one of them.
        #[arg(long, value_enum, default_value = "auto")]
        renderer: RendererArg,
        /// Write every frame's timing to this CSV (seconds, interval_ms, frame_ms; replaced if
        /// there), e.g. for scripts/frame-bench.sh.
        #[arg(long, value_name = "CSV")]
        frame_stats: Option<PathBuf>,
    },
}

#[cfg(feature = "gui")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RendererArg {
    Auto,
    Wgpu,
    Glow,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to create the project in (created if missing).
    pub dir: PathBuf,
    /// Area of interest: GeoJSON (.geojson/.json) or WKT (.wkt/.txt), WGS84 lon/lat.
    #[arg(long, value_name = "FILE")]
    pub aoi: PathBuf,
    /// Reference (pre-fire) date range, FROM/TO, e.g. 2019-11-01/2019-12-31.
    #[arg(long, value_name = "FROM/TO")]
    pub t0: String,
    /// Target (post-fire) date range, FROM/TO, e.g. 2020-01-10/2020-02-28.
    #[arg(long, value_name = "FROM/TO")]
    pub t1: String,
    /// Project name (default: the folder name).
    #[arg(long)]
    pub name: Option<String>,
    /// Scene provider.
    #[arg(long, value_enum, default_value = "earth-search")]
    pub provider: ProviderArg,
    /// The static STAC catalog (catalog.json) the local provider searches.
    #[arg(long, value_name = "CATALOG_JSON")]
    pub catalog: Option<PathBuf>,
    /// Largest cloud cover over the AOI, percent.
    #[arg(long, default_value_t = 20.0)]
    pub max_cloud: f64,
    /// Target grid pixel size in metres (10, 20 or 60).
    #[arg(long, default_value_t = 10.0)]
    pub pixel_size: f64,
    /// Largest AOI accepted, km2.
    #[arg(long, default_value_t = DEFAULT_MAX_AREA_KM2)]
    pub max_area_km2: f64,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Any STAC API (a mirror, a private catalog) instead of the provider's public one.
    #[arg(long, value_name = "URL")]
    pub stac_url: Option<String>,
    /// Conventions (asset keys, collections) of the API at --stac-url; default: the project's provider.
    #[arg(long, value_enum)]
    pub provider_kind: Option<ProviderKindArg>,
    /// Token endpoint for signing asset URLs (Planetary Computer kind), instead of the public one.
    #[arg(long, value_name = "URL")]
    pub token_url: Option<String>,
    /// Scene-level cloud cover prefilter, percent.
    #[arg(long, default_value_t = 80.0)]
    pub scene_max_cloud: f64,
    /// Do not read each candidate's SCL to measure cloud over the AOI; choose by scene cloud.
    #[arg(long)]
    pub skip_aoi_cloud: bool,
    /// Largest time between a Sentinel-2 scene and its Sentinel-1 partner, days.
    #[arg(long, default_value_t = 6.0)]
    pub max_gap_days: f64,
    /// Sentinel-1 collection instead of the provider's default, e.g. sentinel-1-grd on
    /// Planetary Computer (radar geometry, calibrated and geocoded by `s2cr preprocess`).
    #[arg(long, value_name = "ID")]
    pub s1_collection: Option<String>,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Files fetched at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Margin around the AOI, metres.
    #[arg(long, default_value_t = 200.0)]
    pub margin_m: f64,
    /// Timeout of one HTTP request, seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Attempts per file before giving up.
    #[arg(long, default_value_t = 5)]
    pub attempts: u32,
}

#[derive(Debug, Args)]
pub struct PreprocessArgs {
    /// Speckle filter on Sentinel-1 linear power.
    #[arg(long, value_enum, default_value = "refined-lee")]
    pub speckle: SpeckleArg,
    /// Grow cloud and shadow masks by this many 10 m pixels.
    #[arg(long, default_value_t = 2)]
    pub mask_buffer: usize,
    /// Also mask snow and ice.
    #[arg(long)]
    pub mask_snow: bool,
    /// Mask haze and smoke where L2A's aerosol optical thickness exceeds this (e.g. 0.5);
    /// needs the band AOT in project.yaml's bands.
    #[arg(long, value_name = "AOT")]
    pub mask_haze_aot: Option<f32>,
    /// Rows processed at a time (memory follows rows x grid width).
    #[arg(long, default_value_t = 512)]
    pub block_rows: usize,
    /// native: this program (RTC or GRD windows from `s2cr fetch`); snap: ESA SNAP's gpt with
    /// the research graphs on whole SAFE products; openeo: batch jobs on an openEO back-end
    /// (project.yaml's `openeo:`, or --openeo-backend), no `s2cr fetch` needed.
    #[arg(long, value_enum, default_value = "native")]
    pub engine: EngineArg,
    /// SNAP engine: the Sentinel-1 graph (v3 terrain-corrects onto the Sentinel-2 grid).
    #[arg(long, value_enum, default_value = "v3")]
    pub snap_graph: SnapGraphArg,
    /// SNAP engine: the gpt executable (default: gpt on the PATH, ~/esa-snap/bin/gpt).
    #[arg(long, value_name = "PATH")]
    pub gpt: Option<PathBuf>,
    /// SNAP engine: folder with the SAFE products (folders or zips); default raw/<date>/<scene>/.
    #[arg(long, value_name = "DIR")]
    pub products: Option<PathBuf>,
    /// Native engine, GRD input: backscatter coefficient of the calibration.
    #[arg(long, value_enum, default_value = "sigma0")]
    pub grd_coefficient: CoefficientArg,
    /// openEO engine: the API's root URL (instead of project.yaml's `openeo: {backend: URL}`),
    /// e.g. https://openeo.dataspace.copernicus.eu/openeo/1.2. Credentials come from
    /// S2CR_OPENEO_* variables or ~/.config/s2cr/openeo-credentials.
    #[arg(long, value_name = "URL")]
    pub openeo_backend: Option<String>,
    /// openEO engine, with --openeo-backend: sar_backscatter's coefficient (default
    /// gamma0-terrain: terrain-corrected; project.yaml's `openeo: {s1_coefficient: ...}`
    /// otherwise).
    #[arg(long, value_name = "NAME", requires = "openeo_backend")]
    pub s1_coefficient: Option<String>,
}

#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// Input channels: research (S1 t0 + S1 t1 + S2 t0), sar-only (S1 t1), or a list such as
    /// S1_t1:VV,S1_t1:VH,S2_t0:B04,mask_t0.
    #[arg(long, default_value = "research", value_name = "PRESET|LIST")]
    pub inputs: String,
    /// Add the S2 t0 cloud mask as an input channel.
    #[arg(long)]
    pub mask_channel: bool,
    /// Output bands (Sentinel-2 at t1); B08 and B12 are needed for NBR.
    #[arg(long, value_delimiter = ',', default_value = "B02,B03,B04,B08,B11,B12")]
    pub outputs: Vec<String>,
    /// Patch side, pixels.
    #[arg(long, default_value_t = 256)]
    pub patch: usize,
    /// Distance between patches, pixels (default: the patch side).
    #[arg(long)]
    pub stride: Option<usize>,
    /// Least share of valid pixels in a patch (no cloud, shadow or no data).
    #[arg(long, default_value_t = 0.9)]
    pub min_valid: f64,
    #[arg(long, default_value_t = 0.15)]
    pub val: f64,
    #[arg(long, default_value_t = 0.15)]
    pub test: f64,
    /// Side of the blocks shuffled into splits, in patches.
    #[arg(long, default_value_t = 4)]
    pub split_block: usize,
    /// Pixels kept between patches of different splits.
    #[arg(long, default_value_t = 0)]
    pub gap: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Sentinel-2 normalization.
    #[arg(long, value_enum, default_value = "batch-min-max")]
    pub s2_norm: S2NormArg,
    /// Sentinel-1 normalization.
    #[arg(long, value_enum, default_value = "standardize")]
    pub s1_norm: S1NormArg,
    /// Date range FROM/TO of the yearly S2 min/max (STAC search + COG overviews).
    #[arg(long, value_name = "FROM/TO")]
    pub yearly: Option<String>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Name of the run (runs/<run>/).
    #[arg(long, default_value = RunName::DEFAULT, value_parser = parse_run)]
    pub run: RunName,
    /// model.yaml (default: the project's model_config, else pix2pix defaults).
    #[arg(long, value_name = "YAML")]
    pub model: Option<PathBuf>,
    /// train.yaml (default: the project's train_config, else pix2pix defaults).
    #[arg(long = "train", value_name = "YAML")]
    pub train_config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// Continue the run from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// With --resume: go on from the checkpoint of this step instead of the latest (one of the
    /// last three kept; for a latest checkpoint that is damaged).
    #[arg(long, requires = "resume", value_name = "STEP")]
    pub from_step: Option<usize>,
    /// Stop after this many steps in all (overrides train.yaml).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Overrides train.yaml's batch_size (at least 1).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub batch_size: Option<usize>,
    /// Fine-tune: start from the weights of a run folder (runs/<run> of any project) or a
    /// generator file (.pth, .safetensors) instead of random ones (train.yaml's init_from).
    #[arg(long, value_name = "RUN_DIR|FILE")]
    pub init_from: Option<PathBuf>,
    /// With --init-from: where the channels differ, start the first or last layer afresh.
    #[arg(long)]
    pub adapt_channels: bool,
    /// Say how long the run would take (a few measured steps, one checkpoint and validation)
    /// and stop, without training.
    #[arg(long)]
    pub estimate: bool,
}

#[derive(Debug, Args)]
pub struct InferArgs {
    /// The trained run to use.
    #[arg(long, default_value = RunName::DEFAULT, value_parser = parse_run)]
    pub run: RunName,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// Share of each window's side shared with its neighbours (blended across it), 0 to 0.9.
    #[arg(long, default_value_t = crate::model::infer::DEFAULT_OVERLAP)]
    pub overlap: f64,
    /// Windows per forward pass. With the batch-min-max normalization the windows of one pass
    /// share their ranges, as the tiles of a training batch did.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Monte-Carlo dropout: K stochastic passes per window (2 or more; off by default). The
    /// synthetic image is then their mean, with uncertainty_S2_t1.tif (standard deviation per
    /// band) and burn_probability.tif (share of passes whose dNBR reaches the burned class)
    /// beside it. Takes K times as long.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub samples: usize,
    /// The lowest dNBR the burn probability counts as burned (raw, before any offset; the
    /// assessment finds its own classes' probability after the offset from the passes' dNBR
    /// mean and sd). Default: the USGS low-severity bound, 0.1; 0.1045 for BARC4's low.
    #[arg(long, value_name = "DNBR", default_value_t = 0.1, allow_hyphen_values = true)]
    pub burned_dnbr: f32,
    /// Split the grid into this many tiles of rows, for several processes or machines: each
    /// runs one with --tile, then --merge assembles them (docs/scale/ has Dask, Slurm and
    /// Kubernetes recipes). The merged image equals a single process's.
    #[arg(long, value_name = "N")]
    pub tiles: Option<usize>,
    /// With --tiles: the tile to synthesize, 0 to N-1.
    #[arg(long, value_name = "I", requires = "tiles", conflicts_with = "merge")]
    pub tile: Option<usize>,
    /// With --tiles: assemble the tiles into the run's synthetic image.
    #[arg(long, requires = "tiles")]
    pub merge: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DeviceArg {
    Auto,
    Gpu,
    Cpu,
    /// NVIDIA through Burn's CUDA backend (builds with the `cuda` feature; `auto` otherwise).
    Cuda,
    /// AMD through Burn's ROCm backend (builds with the `rocm` feature; `auto` otherwise).
    Rocm,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum S2NormArg {
    BatchMinMax,
    TileMinMax,
    Percentile,
    TrainMinMax,
    Yearly,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum S1NormArg {
    Standardize,
    Percentile,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Image side in pixels (a full Sentinel-2 tile is 10980).
    #[arg(long, default_value_t = 2048)]
    pub size: usize,
    /// filters: speckle filters in memory; preprocess: the whole preprocess stage on one
    /// generated Sentinel-2 and one Sentinel-1 scene (written to --dir, a few GB at 10980);
    /// loader: training patches per second from disk (generated scenes of --size);
    /// model: generator inference and GAN training step times on --size patches
    /// (256 for pix2pix's unet_256), CPU and GPU; compare with scripts/bench_pytorch.py;
    /// profile: the generator's layers one by one on the CPU (unet_256, or --model);
    /// infer: whole-grid inference on generated scenes of --size (time, peak memory);
    /// display: the app's layer display; assess: the assessment of generated images of
    /// --size (time, peak memory).
    #[arg(long, value_enum, default_value = "filters")]
    pub what: BenchWhat,
    /// model: skip the GPU (wgpu) rows.
    #[arg(long)]
    pub no_gpu: bool,
    /// model: run PyTorch (scripts/bench_pytorch.py, pix2pix's loop on the same shapes) in the
    /// same invocation, interleaved with ours on the CPU, and print both with their ratio.
    /// Needs a Python with torch: `python3` or $S2CR_PYTHON.
    #[arg(long)]
    pub compare_pytorch: bool,
    /// model, profile: only these models, comma-separated: unet_256, small (default: both;
    /// profile: unet_256).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub model: Vec<String>,
    /// model --compare-pytorch: rounds of interleaved runs; each figure is their median.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub rounds: u64,
    /// infer: only these overlaps of the windows, comma-separated (default: 0.5, 0.25, 0.125
    /// and the default).
    #[arg(long, value_delimiter = ',', value_name = "FRACTION")]
    pub overlap: Vec<f64>,
    /// Working folder of the preprocess, loader and infer benchmarks (default: the system's temporary folder).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `model export --keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeysArg {
    Pix2pix,
    S2cr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchWhat {
    Filters,
    Preprocess,
    Loader,
    Model,
    /// The generator's layers timed alone on the CPU (part of `model`).
    Profile,
    /// Whole-grid inference (overlapping windows, blended, written as a COG) on generated
    /// scenes of --size: time and peak memory.
    Infer,
    /// The app's layer display on a generated --size layer: first load, stretch and gamma
    /// changes, the mesh for pan/zoom.
    Display,
    /// The assessment on a generated --size pre-fire, real and synthetic image (about 9 GB of
    /// inputs at 10980, kept in --dir for reuse): time and peak memory.
    Assess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CleanPartArg {
    Raw,
    Preprocessed,
    Dataset,
    Checkpoints,
    /// Always kept; accepted so that `--keep outputs` says so.
    Outputs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EngineArg {
    Native,
    Snap,
    Openeo,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SnapGraphArg {
    V1,
    V2,
    V3,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CoefficientArg {
    Sigma0,
    Beta0,
    Gamma0,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SpeckleArg {
    None,
    Boxcar,
    Lee,
    RefinedLee,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProviderKindArg {
    EarthSearch,
    Pc,
    Cdse,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Make a run from a generator file: pix2pix's `latest_net_G.pth` (unet_128, unet_256, any
    /// ngf, batch or instance norm), a safetensors file with the same keys, or one `s2cr model
    /// export` wrote (its sidecar JSON gives the channels and normalization). Every key and shape
    /// is checked; the run then works with `s2cr infer` and `s2cr assess`.
    Import(ModelImportArgs),
    /// Write a run's generator as safetensors with pix2pix's keys (loads into PyTorch's
    /// UnetGenerator with load_state_dict(strict=True)) and a sidecar JSON beside it.
    Export {
        /// The run to export.
        #[arg(long, default_value = RunName::DEFAULT, value_parser = parse_run)]
        run: RunName,
        /// The weights file to write (.safetensors); the sidecar goes beside it (.json). With
        /// --bundle, the bundle file (.s2crmodel).
        #[arg(long)]
        out: PathBuf,
        /// The weights' keys: pix2pix's (PyTorch's UnetGenerator loads them; refused for a run
        /// that is not pix2pix's network) or s2cr's own (any run; read back by `model import`).
        #[arg(long, value_enum, default_value_t = KeysArg::Pix2pix)]
        keys: KeysArg,
        /// Write the whole run as one file instead (checkpoint with both networks and
        /// optimizers, settings, dataset records, metrics, card; every file's SHA-256), for
        /// `s2cr model import` in another project or on another machine.
        #[arg(long)]
        bundle: bool,
    },
    /// Write a run's model card again: runs/<run>/model.json, model.md and model.stac.json (a
    /// STAC Item with the ML Model extension). Training, import and assessment write it too.
    Card {
        #[arg(long, default_value = RunName::DEFAULT, value_parser = parse_run)]
        run: RunName,
    },
}

#[derive(Debug, Args)]
pub struct ModelImportArgs {
    /// The generator file (.pth or .safetensors).
    pub file: PathBuf,
    /// Name of the new run (runs/<run>/).
    #[arg(long, value_parser = parse_run)]
    pub run: RunName,
    /// model.yaml for the file (default: read from its keys and shapes, or its sidecar).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Dropout of the decoder blocks, which a state dict does not record (pix2pix: 0.5; 0 for
    /// a model trained with --no_dropout). Inference does not use it; fine-tuning does.
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
    /// The model's input channels in order, comma-separated (S1_t0:VV,...), or `dataset` for
    /// the project's dataset order. Needed when the file has no sidecar.
    #[arg(long, value_delimiter = ',')]
    pub inputs: Option<Vec<String>>,
    /// The model's output bands in order (B02,...), or `dataset`.
    #[arg(long, value_delimiter = ',')]
    pub outputs: Option<Vec<String>>,
    /// normalization.json the model's inputs need (default: the sidecar's, else the project's
    /// dataset's).
    #[arg(long)]
    pub normalization: Option<PathBuf>,
    /// The data range the model was trained on: `symmetric` ([-1, 1], pix2pix's
    /// `Normalize(0.5, 0.5)` with a Tanh output) or `unit` ([0, 1], s2cr's). Default: the
    /// sidecar's; a file without a sidecar is taken as pix2pix's (symmetric).
    #[arg(long, value_enum)]
    pub range: Option<RangeArg>,
}

/// `model import --range`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RangeArg {
    Unit,
    Symmetric,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The layer, by id (`--list` shows them): pre, real, synthetic, s1-t0, s1-t1, difference
    /// (synthetic − real; a PNG shows --composite's first band), sam (spectral angle), dnbr-real,
    /// dnbr-synthetic, severity-real, severity-synthetic, perimeter-real, perimeter-synthetic,
    /// perimeter-reference.
    #[arg(long, required_unless_present = "list")]
    pub layer: Option<String>,
    /// The file to write: .tif (Cloud-Optimized GeoTIFF of the values; severity: the classes
    /// with their colour and attribute tables), .png (as displayed, with a world file), or for
    /// perimeters and severity classes (as polygons) .geojson, .gpkg, .shp.zip or .kml.
    #[arg(long, short, value_name = "FILE", required_unless_present = "list")]
    pub out: Option<PathBuf>,
    /// List the project's layers and their files.
    #[arg(long)]
    pub list: bool,
    /// Training run whose outputs to use.
    #[arg(long, default_value = RunName::DEFAULT, value_parser = parse_run)]
    pub run: RunName,
    /// PNG of an optical layer: true, false, swir, or three bands like B12,B08,B04.
    #[arg(long, default_value = "true")]
    pub composite: String,
    /// PNG: `minmax` or percentiles like `2-98`.
    #[arg(long, default_value = "2-98")]
    pub stretch: String,
    /// PNG: gamma of the stretch (above 1 brightens the darks).
    #[arg(long, default_value_t = 1.0)]
    pub gamma: f32,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder of the demo project (created, or resumed when it holds the demo already).
    #[arg(default_value = "s2cr-demo")]
    pub dir: PathBuf,
    /// Do not open the app at the end (it opens only where a display is available anyway).
    #[arg(long)]
    pub no_gui: bool,
    /// Training steps (the demo's default trains for a few minutes on 2 CPU cores).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Where the model trains and runs.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// A demo catalog made by `s2cr build-demo-assets --patch NAME --out DIR` from another
    /// SEN12MS-CR patch, used instead of the embedded one (copied into the project).
    #[arg(long, value_name = "DIR")]
    pub catalog: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AssessArgs {
    /// Pre-fire Sentinel-2 image (t0). Without --pre, --real and --synthetic: the project's
    /// preprocessed t0 and t1 and the run's synthetic t1.
    #[arg(long, value_name = "TIF", requires_all = ["real", "synthetic"])]
    pub pre: Option<PathBuf>,
    /// Real post-fire Sentinel-2 image (t1), the reference.
    #[arg(long, value_name = "TIF", requires_all = ["pre", "synthetic"])]
    pub real: Option<PathBuf>,
    /// Synthetic post-fire Sentinel-2 image (t1).
    #[arg(long, value_name = "TIF", requires_all = ["pre", "real"])]
    pub synthetic: Option<PathBuf>,
    /// Output folder (needs --pre, --real and --synthetic). Without it the assessment goes to
    /// the project's outputs/<run>/assess/ with a manifest, and is skipped when up to date.
    #[arg(long, value_name = "DIR", requires = "pre")]
    pub out: Option<PathBuf>,
    /// Training run the synthetic image comes from (project mode).
    #[arg(long, default_value = RunName::DEFAULT, value_parser = parse_run)]
    pub run: RunName,
    /// Band names in file order, for files without band descriptions, e.g. B01,B02,...,B12.
    #[arg(long, value_name = "B02,B03,...", value_delimiter = ',')]
    pub band_order: Option<Vec<String>>,
    /// Multiplier from stored values to reflectance (0.0001 for DN x 10000).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f32,
    /// Near-infrared band of NBR.
    #[arg(long, value_enum, default_value = "b08")]
    pub nir: NirArg,
    /// Severity classes: `usgs` (dNBR, 7 classes), `barc4` (BAER's four classes over BARC256),
    /// or a YAML/JSON file with a scheme (`classes:` of code, name, color, from; `burned_from:`).
    #[arg(long, value_name = "usgs|barc4|FILE", default_value = "usgs")]
    pub classes: String,
    /// Least severe class counted as burned, by name (default: the scheme's, low severity).
    #[arg(long, value_name = "CLASS")]
    pub burned_from: Option<String>,
    /// The classes' lower bounds after the first, on the scheme's scale: for USGS regrowth-low,
    /// unburned, low, moderate-low, moderate-high, high (-0.25,-0.1,0.1,0.27,0.44,0.66); for
    /// BARC4 low, moderate, high in BARC256 (76,110,188).
    #[arg(long, value_name = "B1,B2,...", value_delimiter = ',', allow_hyphen_values = true)]
    pub thresholds: Option<Vec<f32>>,
    /// Reflectance data range for PSNR and SSIM.
    #[arg(long, default_value_t = 1.0)]
    pub data_range: f64,
    /// Say in every output that the post-fire burn scar is simulated, and how.
    #[arg(long, value_name = "DESCRIPTION")]
    pub simulated_burn: Option<String>,
    /// An official fire perimeter (GeoJSON, Shapefile, GeoPackage, KML, any file GDAL/OGR
    /// reads; MTBS, EFFIS, NIFC, CAL FIRE ...): both burned maps are compared with it (kappa,
    /// F1, IoU, commission and omission, hectares). Default: project.yaml's
    /// `reference_perimeter`.
    #[arg(long, value_name = "FILE")]
    pub perimeter: Option<PathBuf>,
    /// Classes on the raw dNBR: no offset (by default the mean dNBR of unburned pixels around
    /// the fire is subtracted from every map first, as MTBS does).
    #[arg(long, conflicts_with_all = ["offset_ring", "offset_polygon"])]
    pub no_offset: bool,
    /// The offset's ring of unburned pixels, metres outside the perimeter or the real burned
    /// map (default 100,1000).
    #[arg(long, value_name = "INNER,OUTER", value_delimiter = ',')]
    pub offset_ring: Option<Vec<f64>>,
    /// The offset's unburned pixels inside this polygon (any vector file GDAL/OGR reads)
    /// instead of a ring.
    #[arg(long, value_name = "FILE")]
    pub offset_polygon: Option<PathBuf>,
    /// Clean the burned maps with a 3 x 3 majority filter before their perimeters are drawn.
    #[arg(long)]
    pub majority: bool,
    /// Minimum mapping unit of the perimeters: burned patches under this many hectares dropped.
    #[arg(long, value_name = "HA", default_value_t = 0.0)]
    pub min_area_ha: f64,
    /// Unburned holes under this many hectares inside the perimeters filled.
    #[arg(long, value_name = "HA", default_value_t = 0.0)]
    pub fill_holes_ha: f64,
    /// Field plots with a Composite Burn Index each (any point file GDAL/OGR reads, or a CSV
    /// with lon, lat and CBI columns): dNBR, RdNBR and RBR at each plot (3 x 3 mean) fitted
    /// against CBI (Miller & Thode's saturating model and a line), with the class bounds at
    /// CBI 0.1, 1.25 and 2.25.
    #[arg(long, value_name = "FILE")]
    pub plots: Option<PathBuf>,
    /// The plots' CBI field.
    #[arg(long, value_name = "NAME", default_value = "CBI", requires = "plots")]
    pub plots_field: String,
    /// Classify both maps with the class bounds the real map's dNBR fit gives.
    #[arg(long, requires = "plots")]
    pub plots_classes: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum NirArg {
    B08,
    B8a,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProviderArg {
    EarthSearch,
    PlanetaryComputer,
    Cdse,
    Local,
}

#[derive(Debug, Subcommand)]
pub enum AoiCommand {
    /// Convert between GeoJSON and WKT (one polygon per line), by the files' extensions.
    Convert {
        #[arg(long, short)]
        input: PathBuf,
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Check an AOI and list every problem found.
    Validate {
        file: PathBuf,
        #[arg(long, default_value_t = DEFAULT_MAX_AREA_KM2)]
        max_area_km2: f64,
    },
    /// Area, bounds, UTM zone and target grid of an AOI.
    Info {
        file: PathBuf,
        #[arg(long, default_value_t = DEFAULT_MAX_AREA_KM2)]
        max_area_km2: f64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RasterCommand {
    /// Size, CRS, geotransform and bands of a raster (local path or http(s) URL).
    Info { location: String },
}
