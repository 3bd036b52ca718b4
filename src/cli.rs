//! The `s2cr` command line: argument parsing (clap), rendering job events as progress bars, and
//! printing results. Every command calls library functions; none holds pipeline logic.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::aoi::{Aoi, AoiLimits, DEFAULT_MAX_AREA_KM2};
use crate::job::{JobEvent, JobHandle, LogLevel};
use crate::project::{DateRange, Project, ProjectConfig, Provider, StageState};

/// Synthesize cloud-free Sentinel-2 images from Sentinel-1 radar, and judge them by the burned
/// areas they map. Without a command, opens the desktop app.
#[derive(Debug, Parser)]
#[command(name = "s2cr", version, about, long_about = None)]
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
    /// Measure speckle-filter throughput and peak memory on a generated size x size image.
    Bench {
        /// Image side in pixels (a full Sentinel-2 tile is 10980).
        #[arg(long, default_value_t = 2048)]
        size: usize,
        /// filters: speckle filters in memory; preprocess: the whole preprocess stage on one
        /// generated Sentinel-2 and one Sentinel-1 scene (written to --dir, a few GB at 10980);
        /// loader: training patches per second from disk (generated scenes of --size);
        /// model: generator inference and GAN training step times on --size patches
        /// (256 for pix2pix's unet_256), CPU and GPU; compare with scripts/bench_pytorch.py;
        /// profile: unet_256's layers one by one on the CPU; infer: whole-grid inference on
        /// generated scenes of --size (time, peak memory).
        #[arg(long, value_enum, default_value = "filters")]
        what: BenchWhat,
        /// model: skip the GPU (wgpu) rows.
        #[arg(long)]
        no_gpu: bool,
        /// Working folder of the preprocess, loader and infer benchmarks (default: the system's temporary folder).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
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
    /// Create a project from the embedded offline demo (real Sentinel-1/2 data with a simulated
    /// burn) and run every stage on it with CPU-friendly settings; then open the app on it.
    Demo(DemoArgs),
    /// Rebuild the embedded demo's catalog (assets/demo) from SEN12MS-CR's folder.
    #[command(hide = true)]
    BuildDemoAssets {
        /// shared/data/s1s2-sen12mscr
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        #[arg(long, value_name = "DIR", default_value = "assets/demo")]
        out: PathBuf,
    },
    /// Open the desktop app (also what `s2cr` alone does).
    #[cfg(feature = "gui")]
    Gui {
        /// Project folder to open.
        dir: Option<PathBuf>,
        /// No map tiles from the internet: the built-in Natural Earth basemap only.
        #[arg(long)]
        offline: bool,
    },
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
    /// Rows processed at a time (memory follows rows x grid width).
    #[arg(long, default_value_t = 512)]
    pub block_rows: usize,
    /// native: this program (RTC or GRD windows from `s2cr fetch`); snap: ESA SNAP's gpt with
    /// the research graphs on whole SAFE products.
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
    #[arg(long, default_value = "default")]
    pub run: String,
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
    /// Stop after this many steps in all (overrides train.yaml).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Overrides train.yaml's batch_size.
    #[arg(long)]
    pub batch_size: Option<usize>,
}

#[derive(Debug, Args)]
pub struct InferArgs {
    /// The trained run to use.
    #[arg(long, default_value = "default")]
    pub run: String,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// Share of each window shared with its neighbours (blended).
    #[arg(long, default_value_t = 0.5)]
    pub overlap: f64,
    /// Windows per forward pass. With the batch-min-max normalization the windows of one pass
    /// share their ranges, as the tiles of a training batch did.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DeviceArg {
    Auto,
    Gpu,
    Cpu,
}

impl From<DeviceArg> for crate::model::DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => crate::model::DeviceChoice::Auto,
            DeviceArg::Gpu => crate::model::DeviceChoice::Gpu,
            DeviceArg::Cpu => crate::model::DeviceChoice::Cpu,
        }
    }
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

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
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
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EngineArg {
    Native,
    Snap,
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

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The layer, by id (`--list` shows them): pre, real, synthetic, s1-t0, s1-t1, dnbr-real,
    /// dnbr-synthetic, severity-real, severity-synthetic, perimeter-real, perimeter-synthetic.
    #[arg(long, required_unless_present = "list")]
    pub layer: Option<String>,
    /// The file to write: .tif (Cloud-Optimized GeoTIFF of the values), .png (as displayed,
    /// with a world file), .geojson (perimeters).
    #[arg(long, short, value_name = "FILE", required_unless_present = "list")]
    pub out: Option<PathBuf>,
    /// List the project's layers and their files.
    #[arg(long)]
    pub list: bool,
    /// Training run whose outputs to use.
    #[arg(long, default_value = "default")]
    pub run: String,
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
}

#[derive(Debug, Args)]
pub struct AssessArgs {
    /// Pre-fire Sentinel-2 image (t0).
    #[arg(long, value_name = "TIF")]
    pub pre: PathBuf,
    /// Real post-fire Sentinel-2 image (t1), the reference.
    #[arg(long, value_name = "TIF")]
    pub real: PathBuf,
    /// Synthetic post-fire Sentinel-2 image (t1).
    #[arg(long, value_name = "TIF")]
    pub synthetic: PathBuf,
    /// Output folder. Without it the assessment goes to the project's outputs/<run>/assess/
    /// with a manifest, and is skipped when up to date.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Training run the synthetic image comes from (project mode).
    #[arg(long, default_value = "default")]
    pub run: String,
    /// Band names in file order, for files without band descriptions, e.g. B01,B02,...,B12.
    #[arg(long, value_name = "B02,B03,...", value_delimiter = ',')]
    pub band_order: Option<Vec<String>>,
    /// Multiplier from stored values to reflectance (0.0001 for DN x 10000).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f32,
    /// Near-infrared band of NBR.
    #[arg(long, value_enum, default_value = "b08")]
    pub nir: NirArg,
    /// Least severe class counted as burned.
    #[arg(long, value_enum, default_value = "low")]
    pub burned_from: BurnedFromArg,
    /// dNBR class bounds: regrowth-high, regrowth-low, low, moderate-low, moderate-high, high
    /// (USGS defaults -0.25,-0.1,0.1,0.27,0.44,0.66).
    #[arg(long, value_name = "T1,...,T6", value_delimiter = ',', allow_hyphen_values = true)]
    pub thresholds: Option<Vec<f32>>,
    /// Reflectance data range for PSNR and SSIM.
    #[arg(long, default_value_t = 1.0)]
    pub data_range: f64,
    /// Say in every output that the post-fire burn scar is simulated, and how.
    #[arg(long, value_name = "DESCRIPTION")]
    pub simulated_burn: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum NirArg {
    B08,
    B8a,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BurnedFromArg {
    Low,
    ModerateLow,
    ModerateHigh,
    High,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProviderArg {
    EarthSearch,
    PlanetaryComputer,
    Cdse,
    Local,
}

impl From<ProviderArg> for Provider {
    fn from(p: ProviderArg) -> Provider {
        match p {
            ProviderArg::EarthSearch => Provider::EarthSearch,
            ProviderArg::PlanetaryComputer => Provider::PlanetaryComputer,
            ProviderArg::Cdse => Provider::Cdse,
            ProviderArg::Local => Provider::Local,
        }
    }
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

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
fn chain(e: &anyhow::Error) -> String {
    crate::error_chain(e.as_ref())
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("S2CR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("s2cr={level},gdal={level}")));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().try_init();
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let project_dir = cli.project.clone();
    match cli.command {
        None => open_gui(project_dir, false),
        #[cfg(feature = "gui")]
        Some(Command::Gui { dir, offline }) => open_gui(dir.or(project_dir), offline),
        Some(Command::Init(args)) => init(args),
        Some(Command::Run { pipeline }) => run_pipeline(pipeline, project_dir, cli.quiet),
        Some(Command::Demo(args)) => demo(args, cli.quiet),
        Some(Command::Export(args)) => export(args, &project_dir.clone().unwrap_or_else(|| PathBuf::from("."))),
        Some(Command::BuildDemoAssets { from, out }) => build_demo_assets(&from, &out),
        Some(Command::Aoi(cmd)) => aoi(cmd),
        Some(Command::Info { dir }) => info(&dir.or(project_dir).unwrap_or_else(|| PathBuf::from("."))),
        Some(Command::Raster(RasterCommand::Info { location })) => raster_info(&location),
        Some(Command::Bench { size, what: BenchWhat::Filters, .. }) => bench(size),
        Some(Command::Bench { size, what: BenchWhat::Preprocess, dir, .. }) => bench_preprocess(size, dir, cli.quiet),
        Some(Command::Bench { size, what: BenchWhat::Loader, dir, .. }) => bench_loader(size, dir, cli.quiet),
        Some(Command::Bench { size, what: BenchWhat::Model, no_gpu, .. }) => bench_model(size, !no_gpu, cli.quiet),
        Some(Command::Bench { size, what: BenchWhat::Profile, .. }) => bench_profile(size),
        Some(Command::Bench { size, what: BenchWhat::Infer, dir, .. }) => bench_infer(size, dir, cli.quiet),
        Some(Command::Bench { size, what: BenchWhat::Display, dir, .. }) => bench_display(size, dir, cli.quiet),
        Some(Command::Assess(args)) => assess(args, project_dir, cli.quiet),
        Some(Command::Train(args)) => train(args, &project_dir.clone().unwrap_or_else(|| PathBuf::from(".")), cli.quiet),
        Some(Command::Infer(args)) => infer(args, &project_dir.clone().unwrap_or_else(|| PathBuf::from(".")), cli.quiet),
        Some(Command::Dataset(args)) => dataset(args, &project_dir.clone().unwrap_or_else(|| PathBuf::from(".")), cli.quiet),
        Some(Command::Preprocess(args)) => preprocess(args, &project_dir.clone().unwrap_or_else(|| PathBuf::from(".")), cli.quiet),
        Some(Command::Fetch(args)) => fetch(args, &project_dir.clone().unwrap_or_else(|| PathBuf::from(".")), cli.quiet),
        Some(Command::Search(args)) => search(args, &project_dir.unwrap_or_else(|| PathBuf::from(".")), cli.quiet),
    }
}

fn run_pipeline(file: Option<PathBuf>, project_dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    let settings = match &file {
        Some(f) => Some(crate::pipeline::PipelineSettings::load(f)?),
        None => None,
    };
    // --project wins; then the file's project (relative to the file); then the current folder.
    let dir = match (project_dir, settings.as_ref().and_then(|s| s.project.as_ref()), &file) {
        (Some(d), _, _) => d,
        (None, Some(p), Some(f)) => f.parent().unwrap_or(Path::new(".")).join(p),
        (None, Some(p), None) => p.clone(),
        (None, None, _) => PathBuf::from("."),
    };
    let project = Project::open(&dir)?;
    // Without a file: the project's own pipeline.yaml, else the defaults.
    let settings = match settings {
        Some(s) => s,
        None => crate::pipeline::PipelineSettings::of_project(&project)?,
    };
    let handle = crate::job::spawn("pipeline", move |p| crate::pipeline::run(&project, &settings, p))?;
    let done = render_job(handle, quiet)?;
    for (stage, summary) in &done {
        println!("{:<11} {summary}", stage.name());
    }
    println!("pipeline done: {} stage(s) in {}", done.len(), dir.display());
    Ok(())
}

fn demo(args: DemoArgs, quiet: bool) -> Result<()> {
    let project = crate::demo::create_project(&args.dir)?;
    let settings = crate::demo::settings(&project, args.max_steps, args.device.into())?;
    // The project's root is absolute (Project::open makes it so).
    let dir = project.root().to_path_buf();
    println!("demo project: {} (real Sentinel-1/2 data of SEN12MS-CR; the burn scar at t1 is SIMULATED)", dir.display());
    let job_project = project.clone();
    let handle = crate::job::spawn("demo", move |p| crate::pipeline::run(&job_project, &settings, p))?;
    let done = render_job(handle, quiet)?;
    for (stage, summary) in &done {
        println!("{:<11} {summary}", stage.name());
    }
    let report = project.output_dir(crate::demo::RUN).join("assess").join("report.html");
    println!("report: {}", report.display());
    println!("{}", crate::demo::ATTRIBUTION);
    let display = std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if args.no_gui || !display {
        if !args.no_gui {
            println!("no display: open the project later with `s2cr gui {}`", dir.display());
        }
        return Ok(());
    }
    open_gui(Some(dir), true)
}

fn parse_stretch(text: &str) -> Result<crate::layers::StretchKind> {
    use crate::layers::StretchKind;
    if text.eq_ignore_ascii_case("minmax") {
        return Ok(StretchKind::MinMax);
    }
    let parsed = text.split_once('-').and_then(|(a, b)| Some((a.trim().parse::<f32>().ok()?, b.trim().parse::<f32>().ok()?)));
    match parsed {
        Some((lo, hi)) if (0.0..hi).contains(&lo) && hi <= 100.0 => Ok(StretchKind::Percentile(lo, hi)),
        _ => anyhow::bail!("--stretch {text:?}: give minmax or two percentiles like 2-98"),
    }
}

fn export(args: ExportArgs, dir: &Path) -> Result<()> {
    let project = Project::open(dir)?;
    let layers = crate::layers::project_layers(&project, &args.run);
    if args.list {
        if layers.is_empty() {
            println!("no layers yet in {} (run {}): run the pipeline first", project.root().display(), args.run);
        }
        for l in &layers {
            println!("{:<20} {:<40} {}", l.id, l.title, l.path.display());
        }
        return Ok(());
    }
    let (Some(id), Some(out)) = (&args.layer, &args.out) else {
        anyhow::bail!("give --layer and --out (or --list)");
    };
    let Some(layer) = layers.iter().find(|l| &l.id == id) else {
        let ids: Vec<&str> = layers.iter().map(|l| l.id.as_str()).collect();
        anyhow::bail!("--layer {id}: not in this project (run {}); it has: {}", args.run, if ids.is_empty() { "none yet".into() } else { ids.join(", ") });
    };
    let composite = crate::layers::Composite::parse(&args.composite)?;
    let stretch = parse_stretch(&args.stretch)?;
    let done = crate::layers::export(layer, out, &composite, stretch, args.gamma)?;
    println!("{}: {}", done.path.display(), done.what);
    Ok(())
}

fn build_demo_assets(from: &Path, out: &Path) -> Result<()> {
    let s = crate::demo::build_assets(from, out)?;
    println!("{} files in {}", s.files.len(), out.display());
    println!("cloud classes: t0 {:.1} %, t1 {:.1} %", s.t0_cloud_percent, s.t1_cloud_percent);
    println!("simulated scar: {} px, {} of them clear at t1", s.scar_pixels, s.scar_clear_pixels);
    Ok(())
}

fn train(args: TrainArgs, dir: &Path, quiet: bool) -> Result<()> {
    use crate::model::config::{ModelConfig, TrainConfig};
    let project = Project::open(dir)?;
    // --model/--train, else the project's files, else pix2pix's defaults (as `s2cr run`).
    let settings = crate::pipeline::PipelineSettings {
        model: args.model.as_deref().map(ModelConfig::load).transpose()?,
        train: args.train_config.as_deref().map(TrainConfig::load).transpose()?,
        ..Default::default()
    };
    let model = settings.model_config(&project)?;
    let mut train = settings.train_config(&project)?;
    if let Some(n) = args.max_steps {
        train.max_steps = n;
    }
    if let Some(n) = args.batch_size {
        train.batch_size = n.max(1);
    }
    let opts = crate::model::train::TrainOptions { run: args.run, model, train, device: args.device.into(), resume: args.resume };
    let handle = crate::job::spawn("train", move |p| crate::model::train::train(&project, &opts, p))?;
    let r = render_job(handle, quiet)?;
    println!("{} steps on {} in {:.1} s{}", r.steps, r.device, r.seconds, r.resumed_from.map(|s| format!(" (resumed at step {s})")).unwrap_or_default());
    println!(
        "last step: G L1 {:.4}, G adversarial {:.4}, D real {:.4}, D fake {:.4}{}",
        r.last.g_l1,
        r.last.g_adversarial,
        r.last.d_real,
        r.last.d_fake,
        if r.last.val_l1.is_finite() { format!("; validation L1 {:.4}, PSNR {:.2} dB, SSIM {:.3}", r.last.val_l1, r.last.val_psnr, r.last.val_ssim) } else { String::new() }
    );
    println!("generator {:.2} M, discriminator {:.2} M parameters; run in {}", r.generator_params as f64 / 1e6, r.discriminator_params as f64 / 1e6, r.run_dir.display());
    Ok(())
}

fn infer(args: InferArgs, dir: &Path, quiet: bool) -> Result<()> {
    let project = Project::open(dir)?;
    let opts = crate::model::infer::InferOptions { run: args.run, device: args.device.into(), overlap: args.overlap, batch_size: args.batch_size };
    let handle = crate::job::spawn("infer", move |p| crate::model::infer::infer(&project, &opts, p))?;
    let r = render_job(handle, quiet)?;
    println!("{} windows on {} in {:.1} s (checkpoint of step {}); {:.1} % of the grid synthesized", r.windows, r.device, r.seconds, r.checkpoint_step, r.valid_percent);
    println!("written {}", r.path.display());
    Ok(())
}

fn dataset(args: DatasetArgs, dir: &Path, quiet: bool) -> Result<()> {
    use crate::dataset::normalize::{S1Method, S2Method};
    let project = Project::open(dir)?;
    let mut inputs = match args.inputs.as_str() {
        "research" => crate::dataset::research_inputs(&project.config.bands.s1, &project.config.bands.s2),
        "sar-only" => crate::dataset::sar_only_inputs(&project.config.bands.s1),
        list => list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
    };
    if args.mask_channel && !inputs.iter().any(|c| c == "mask_t0") {
        inputs.push("mask_t0".into());
    }
    let cfg = crate::dataset::DatasetConfig {
        inputs,
        outputs: args.outputs,
        tiles: crate::dataset::tiles::TileConfig {
            size: args.patch,
            stride: args.stride.unwrap_or(args.patch),
            min_valid: args.min_valid,
            val_fraction: args.val,
            test_fraction: args.test,
            split_block_patches: args.split_block,
            gap_px: args.gap,
            seed: args.seed,
        },
        s2_method: match args.s2_norm {
            S2NormArg::BatchMinMax => S2Method::BatchMinMax,
            S2NormArg::TileMinMax => S2Method::TileMinMax,
            S2NormArg::Percentile => S2Method::Percentile,
            S2NormArg::TrainMinMax => S2Method::TrainMinMax,
            S2NormArg::Yearly => S2Method::Yearly,
        },
        s1_method: match args.s1_norm {
            S1NormArg::Standardize => S1Method::Standardize,
            S1NormArg::Percentile => S1Method::Percentile,
        },
        yearly_range: args.yearly,
    };
    let handle = crate::job::spawn("dataset", move |p| {
        let summary = crate::dataset::build(&project, &cfg, p)?;
        let normalization = crate::dataset::loader::load_normalization(&project)?;
        Ok((summary, normalization))
    })?;
    let (s, n) = render_job(handle, quiet)?;
    println!("{} input channels: {}", s.inputs.len(), s.inputs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" "));
    println!("{} output channels: {}", s.outputs.len(), s.outputs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" "));
    println!(
        "patches of {0} x {0} px (stride {1}): train {2}, val {3}, test {4}; dropped {5} (too few valid pixels) + {6} (split borders)",
        s.config.tiles.size, s.config.tiles.stride, s.train, s.val, s.test, s.dropped_invalid, s.dropped_split_border
    );
    println!("mean valid share of kept patches: {:.1} %", 100.0 * s.mean_valid_fraction);
    println!("normalization: S2 {:?}, S1 {:?} (statistics of the training split)", n.s2_method, n.s1_method);
    println!("  {:<14} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}", "channel", "pixels", "min", "p2", "mean", "std", "p98", "max");
    for c in n.inputs.iter().chain(&n.outputs) {
        println!("  {:<14} {:>10} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4}", c.name, c.count, c.min, c.p2, c.mean, c.std, c.p98, c.max);
    }
    println!("written to {}", dir.join("dataset").display());
    Ok(())
}

fn preprocess(args: PreprocessArgs, dir: &Path, quiet: bool) -> Result<()> {
    use crate::preprocess::s1::SpeckleFilter;
    let project = Project::open(dir)?;
    let cfg = crate::preprocess::stage::PreprocessConfig {
        mask: crate::preprocess::s2::SclMaskOptions { snow: args.mask_snow, buffer_px: args.mask_buffer },
        speckle: match args.speckle {
            SpeckleArg::None => SpeckleFilter::None,
            SpeckleArg::Boxcar => SpeckleFilter::Boxcar { size: 7 },
            // Earth-observation RTC products are multilooked to about 4 looks.
            SpeckleArg::Lee => SpeckleFilter::Lee { size: 7, looks: 4.0 },
            SpeckleArg::RefinedLee => SpeckleFilter::RefinedLee,
        },
        block_rows: args.block_rows,
        engine: match args.engine {
            EngineArg::Native => crate::preprocess::stage::Engine::Native,
            EngineArg::Snap => crate::preprocess::stage::Engine::Snap {
                s1_graph: match args.snap_graph {
                    SnapGraphArg::V1 => crate::preprocess::snap::SnapGraph::Sentinel1V1,
                    SnapGraphArg::V2 => crate::preprocess::snap::SnapGraph::Sentinel1V2,
                    SnapGraphArg::V3 => crate::preprocess::snap::SnapGraph::Sentinel1V3,
                },
                gpt: args.gpt,
                products: args.products,
            },
        },
        grd_coefficient: match args.grd_coefficient {
            CoefficientArg::Sigma0 => crate::preprocess::s1::Coefficient::Sigma0,
            CoefficientArg::Beta0 => crate::preprocess::s1::Coefficient::Beta0,
            CoefficientArg::Gamma0 => crate::preprocess::s1::Coefficient::Gamma0,
        },
        ..Default::default()
    };
    let handle = crate::job::spawn("preprocess", move |p| crate::preprocess::stage::preprocess(&project, &cfg, p))?;
    for p in render_job(handle, quiet)? {
        println!("{} {}  {:>5.1} % usable  {}", p.sensor, p.date, p.valid_percent, p.path.display());
        if let Some(c) = p.mask_counts {
            let total = (c.no_data + c.cloud_shadow_cirrus + c.snow + c.buffer + c.missing_bands + c.clear).max(1) as f64;
            let pct = |n: usize| 100.0 * n as f64 / total;
            println!(
                "      masked: no data {:.1} %, cloud/shadow/cirrus {:.1} %, snow {:.1} %, buffer {:.1} %, band gaps {:.1} %; clear {:.1} %",
                pct(c.no_data),
                pct(c.cloud_shadow_cirrus),
                pct(c.snow),
                pct(c.buffer),
                pct(c.missing_bands),
                pct(c.clear)
            );
        }
        println!("      {}", p.processing);
    }
    Ok(())
}

fn fetch(args: FetchArgs, dir: &Path, quiet: bool) -> Result<()> {
    let project = Project::open(dir)?;
    let opts = crate::fetch::FetchOptions {
        attempts: args.attempts,
        backoff_ms: 1000,
        timeout_secs: args.timeout,
        margin_m: args.margin_m,
        parallel: args.parallel,
    };
    let handle = crate::job::spawn("fetch", move |p| crate::fetch::fetch(&project, &opts, p))?;
    let r = render_job(handle, quiet)?;
    let downloaded = r.files.iter().filter(|f| f.downloaded).count();
    let mb = |b: u64| b as f64 / 1_048_576.0;
    println!("{} files ({} downloaded, {} already there) in {:.1} s", r.files.len(), downloaded, r.files.len() - downloaded, r.elapsed_secs);
    if r.source_bytes > 0 {
        println!(
            "Fetched {:.2} MiB over the network for source files of {:.2} MiB ({:.2} %)",
            mb(r.network_bytes),
            mb(r.source_bytes),
            100.0 * r.network_bytes as f64 / r.source_bytes as f64
        );
    }
    Ok(())
}

fn search(args: SearchArgs, dir: &Path, quiet: bool) -> Result<()> {
    use crate::catalog::{ProviderConfig, ProviderKind};
    let project = Project::open(dir)?;
    let mut provider = match args.provider_kind {
        Some(k) => ProviderConfig::default_for(match k {
            ProviderKindArg::EarthSearch => ProviderKind::EarthSearch,
            ProviderKindArg::Pc => ProviderKind::PlanetaryComputer,
            ProviderKindArg::Cdse => ProviderKind::Cdse,
        }),
        None => ProviderConfig::for_project(&project.config, project.root())?,
    };
    if let Some(url) = &args.stac_url {
        provider.stac_url = url.trim_end_matches('/').to_string();
    }
    if let Some(url) = &args.token_url {
        provider.token_url = Some(url.trim_end_matches('/').to_string());
    }
    if let Some(c) = &args.s1_collection {
        provider.s1_collection = c.clone();
    }
    let mut cfg = crate::catalog::stage::SearchConfig::new(provider);
    cfg.scene_max_cloud_percent = args.scene_max_cloud;
    cfg.max_gap_days = args.max_gap_days;
    cfg.measure_aoi_cover = !args.skip_aoi_cloud;
    let handle = crate::job::spawn("search", move |p| crate::catalog::stage::search(&project, &cfg, p))?;
    let r = render_job(handle, quiet)?;
    println!("Sentinel-2: {} scenes at t0, {} at t1; Sentinel-1: {} scenes", r.s2_t0.len(), r.s2_t1.len(), r.s1.len());
    println!("{:<6} {:<17} {:<12} {:>7} {:>9} {:>9}  id", "role", "date (UTC)", "platform", "scene", "AOI cloud", "coverage");
    for (role, scenes, chosen) in [("t0", &r.s2_t0, &r.chosen_t0), ("t1", &r.s2_t1, &r.chosen_t1)] {
        for s in scenes.iter() {
            let mark = if chosen.as_deref() == Some(s.id.as_str()) { "*" } else { " " };
            let pct = |v: Option<f64>| v.map(|v| format!("{v:.1}%")).unwrap_or_else(|| "?".into());
            println!(
                "{role}{mark:<4} {:<17} {:<12} {:>7} {:>9} {:>9}  {}",
                s.datetime.format("%Y-%m-%d %H:%M"),
                s.platform.as_deref().unwrap_or("?"),
                pct(s.cloud_cover),
                pct(s.aoi_cloud_percent),
                pct(s.aoi_coverage_percent),
                s.id
            );
        }
    }
    for p in &r.pairs {
        println!(
            "S1 for {}: {} (gap {:+.1} h, relative orbit {}, {})",
            p.s2_id,
            p.s1_id,
            p.gap_hours,
            p.relative_orbit.map(|o| o.to_string()).unwrap_or_else(|| "?".into()),
            p.orbit_state.as_deref().unwrap_or("?")
        );
    }
    for u in &r.unpaired {
        println!("S1 for {}: none ({})", u.s2_id, u.reason);
    }
    for note in &r.notes {
        println!("No choice for {note}");
    }
    if r.chosen_t0.is_none() || r.chosen_t1.is_none() {
        println!("Widen the dates, raise max_cloud_percent in project.yaml, or raise --scene-max-cloud.");
    }
    Ok(())
}

fn assess(args: AssessArgs, project_dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    use crate::assess::{AssessConfig, AssessInputs, NirBand};
    use crate::assess::severity::{Severity, SeverityThresholds};
    for (flag, path) in [("--pre", &args.pre), ("--real", &args.real), ("--synthetic", &args.synthetic)] {
        if !path.is_file() {
            anyhow::bail!("{flag}: {} does not exist", path.display());
        }
    }
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let inputs = AssessInputs { pre: absolute(&args.pre), real: absolute(&args.real), synthetic: absolute(&args.synthetic) };
    let mut thresholds = SeverityThresholds::default();
    if let Some(t) = &args.thresholds {
        if t.len() != 6 {
            anyhow::bail!("--thresholds: give 6 increasing dNBR bounds, e.g. -0.25,-0.1,0.1,0.27,0.44,0.66 (got {})", t.len());
        }
        (thresholds.regrowth_high_below, thresholds.regrowth_low_below, thresholds.low_from) = (t[0], t[1], t[2]);
        (thresholds.moderate_low_from, thresholds.moderate_high_from, thresholds.high_from) = (t[3], t[4], t[5]);
        thresholds.validate().map_err(|m| anyhow::anyhow!("--thresholds: {m}"))?;
    }
    let cfg = AssessConfig {
        band_order: args.band_order.map(|v| v.iter().map(|b| b.trim().to_ascii_uppercase()).collect()),
        scale: args.scale,
        nir: match args.nir {
            NirArg::B08 => NirBand::B08,
            NirArg::B8a => NirBand::B8A,
        },
        thresholds: SeverityThresholds {
            burned_from: match args.burned_from {
                BurnedFromArg::Low => Severity::Low,
                BurnedFromArg::ModerateLow => Severity::ModerateLow,
                BurnedFromArg::ModerateHigh => Severity::ModerateHigh,
                BurnedFromArg::High => Severity::High,
            },
            ..thresholds
        },
        data_range: args.data_range,
        simulated_burn: args.simulated_burn,
        ..Default::default()
    };
    let (out_dir, project) = match &args.out {
        Some(out) => (out.clone(), None),
        None => {
            let dir = project_dir.unwrap_or_else(|| PathBuf::from("."));
            let project = Project::open(&dir).map_err(|e| {
                anyhow::anyhow!("{}; give --out DIR to assess files outside a project", crate::error_chain(&e))
            })?;
            (project.output_dir(&args.run).join("assess"), Some(project))
        }
    };
    let handle = match project {
        None => {
            let out = out_dir.clone();
            crate::job::spawn("assess", move |p| crate::assess::assess_files(&inputs, &out, &cfg, p).map(|_| ()))?
        }
        Some(project) => {
            let run = args.run.clone();
            crate::job::spawn("assess", move |p| crate::assess::assess(&project, &run, &inputs, &cfg, p).map(|_| ()))?
        }
    };
    render_job(handle, quiet)?;
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("report.json")).with_context(|| format!("reading {}", out_dir.join("report.json").display()))?,
    )?;
    let f = |v: &serde_json::Value| v.as_f64().map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into());
    let b = &report["burned"];
    let q = &report["quality"];
    println!("Burned area   real {} ha, synthetic {} ha", f(&b["burned_ha_real"]), f(&b["burned_ha_synthetic"]));
    println!("Agreement     kappa {}, F1 {}, IoU {}, OA {}", f(&b["kappa"]), f(&b["f1"]), f(&b["iou"]), f(&b["overall_accuracy"]));
    println!("Quality       PSNR {} dB, SSIM {}, SAM {} deg, RMSE {}", f(&q["psnr_db"]), f(&q["ssim"]), f(&q["sam_degrees"]), f(&q["rmse"]));
    println!("Report        {}", out_dir.join("report.html").display());
    Ok(())
}

#[cfg(feature = "gui")]
fn open_gui(project: Option<PathBuf>, offline: bool) -> Result<()> {
    crate::gui::run(project, offline).context("opening the desktop app (use a subcommand for the command line; see --help)")
}

#[cfg(not(feature = "gui"))]
fn open_gui(_project: Option<PathBuf>, _offline: bool) -> Result<()> {
    anyhow::bail!("this s2cr was built without the desktop app (feature `gui`); see `s2cr --help` for the commands")
}

fn parse_range(field: &str, text: &str) -> Result<DateRange> {
    text.parse::<DateRange>().map_err(|e| anyhow::anyhow!("--{field}: {e}"))
}

fn init(args: InitArgs) -> Result<()> {
    let t0 = parse_range("t0", &args.t0)?;
    let t1 = parse_range("t1", &args.t1)?;
    let aoi = Aoi::load(&args.aoi, &AoiLimits { max_area_km2: args.max_area_km2 })?;
    let name = args.name.clone().unwrap_or_else(|| {
        std::path::absolute(&args.dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| "project".into())
    });
    let mut config = ProjectConfig::for_aoi(&name, &aoi, t0, t1, args.provider.into(), args.max_cloud, args.pixel_size)?;
    match (&args.catalog, config.provider) {
        // Stored absolute: the project folder may be anywhere relative to the catalog.
        (Some(c), Provider::Local) => {
            if !c.exists() {
                anyhow::bail!("--catalog: {} does not exist", c.display());
            }
            config.catalog = Some(std::path::absolute(c)?);
        }
        (Some(_), _) => anyhow::bail!("--catalog is for --provider local"),
        (None, Provider::Local) => anyhow::bail!("--provider local needs --catalog PATH/catalog.json (a static STAC catalog)"),
        (None, _) => {}
    }
    let project = Project::create(&args.dir, config, &aoi)?;
    let g = &project.config.grid;
    println!(
        "Created project '{}' in {}\n  AOI {:.1} km2, grid EPSG:{} at {} m: {} x {} pixels\nNext: s2cr info {}",
        project.config.name,
        project.root().display(),
        aoi.area_km2(),
        g.epsg,
        g.pixel_size_m,
        g.width,
        g.height,
        args.dir.display()
    );
    Ok(())
}

fn aoi(cmd: AoiCommand) -> Result<()> {
    match cmd {
        AoiCommand::Convert { input, output } => {
            // Conversion keeps what it is given; only structure and geometry must be valid.
            let aoi = Aoi::load(&input, &AoiLimits { max_area_km2: f64::INFINITY })?;
            aoi.write(&output)?;
            println!("Wrote {} ({} polygon(s))", output.display(), aoi.summary().polygons);
            Ok(())
        }
        AoiCommand::Validate { file, max_area_km2 } => {
            let aoi = Aoi::load(&file, &AoiLimits { max_area_km2 })?;
            println!("{}: valid, {:.2} km2", file.display(), aoi.area_km2());
            Ok(())
        }
        AoiCommand::Info { file, max_area_km2 } => {
            let aoi = Aoi::load(&file, &AoiLimits { max_area_km2 })?;
            let s = aoi.summary();
            let g = aoi.target_grid(10.0)?;
            println!("File       {}", file.display());
            println!("Polygons   {} ({} vertices)", s.polygons, s.vertices);
            println!("Area       {:.2} km2 (geodesic, WGS84)", s.area_km2);
            println!("Bounds     lon {:.5} .. {:.5}, lat {:.5} .. {:.5}", s.bbox[0], s.bbox[2], s.bbox[1], s.bbox[3]);
            println!("Centroid   {:.5}, {:.5}", s.centroid[0], s.centroid[1]);
            println!("UTM        EPSG:{}", s.utm_epsg);
            println!(
                "Grid 10 m  {} x {} pixels, x {} .. {}, y {} .. {}",
                g.width,
                g.height,
                g.bounds()[0],
                g.bounds()[2],
                g.bounds()[1],
                g.bounds()[3]
            );
            Ok(())
        }
    }
}

fn info(dir: &Path) -> Result<()> {
    let project = Project::open(dir)?;
    let c = &project.config;
    println!("Project   {} ({})", c.name, std::path::absolute(project.root()).unwrap_or(project.root().to_path_buf()).display());
    match project.aoi() {
        Ok(aoi) => {
            let s = aoi.summary();
            println!(
                "AOI       {}: {} polygon(s), {:.2} km2, lon {:.4} .. {:.4}, lat {:.4} .. {:.4}",
                c.aoi.display(),
                s.polygons,
                s.area_km2,
                s.bbox[0],
                s.bbox[2],
                s.bbox[1],
                s.bbox[3]
            );
        }
        Err(e) => println!("AOI       {}: unusable: {}", c.aoi.display(), crate::error_chain(&e)),
    }
    println!("Dates     t0 {}   t1 {}", c.t0, c.t1);
    println!("Provider  {}, at most {} % cloud over the AOI", c.provider, c.max_cloud_percent);
    println!("Bands     S2 {}   S1 {}", c.bands.s2.join(" "), c.bands.s1.join(" "));
    println!(
        "Grid      EPSG:{}, {} m, {} x {} pixels ({:.1} km2), origin ({}, {})",
        c.grid.epsg,
        c.grid.pixel_size_m,
        c.grid.width,
        c.grid.height,
        c.grid.area_km2(),
        c.grid.x_min,
        c.grid.y_max
    );
    println!("Stages");
    for s in project.status()? {
        let name = match &s.run {
            Some(run) => format!("{} [{run}]", s.stage),
            None => s.stage.to_string(),
        };
        let when = match (&s.state, &s.finished) {
            (StageState::Done, Some(t)) => format!("  ({t})"),
            _ => String::new(),
        };
        println!("  {name:<20} {}{when}", s.state);
    }
    Ok(())
}

fn raster_info(location: &str) -> Result<()> {
    let i = crate::raster::info(location)?;
    println!("Raster     {} ({}{})", i.location, i.driver, if i.is_cog { ", cloud-optimized" } else { "" });
    println!("Size       {} x {} pixels, {} band(s)", i.width, i.height, i.bands.len());
    println!("CRS        {}", i.epsg.map(|e| format!("EPSG:{e}")).unwrap_or_else(|| if i.crs_wkt.is_empty() { "none".into() } else { "custom (WKT)".into() }));
    let gt = i.geo_transform;
    println!("Origin     ({}, {}), pixel {} x {}", gt[0], gt[3], gt[1], gt[5]);
    for (n, b) in i.bands.iter().enumerate() {
        println!(
            "Band {:<3}   {} {}{}{}",
            n + 1,
            b.data_type,
            if b.description.is_empty() { String::new() } else { format!("'{}' ", b.description) },
            b.nodata.map(|v| format!("nodata={v} ")).unwrap_or_default(),
            if b.overviews > 0 { format!("{} overviews", b.overviews) } else { String::new() }
        );
    }
    Ok(())
}

use crate::bench::peak_rss_mib;

/// Generator inference and GAN training step times.
fn bench_model(size: usize, with_gpu: bool, quiet: bool) -> Result<()> {
    let handle = crate::job::spawn("bench", move |p| crate::bench::model(size, 3, with_gpu, p))?;
    let rows = render_job(handle, quiet)?;
    println!("conditional GAN, 10 input and 6 output channels, {size} x {size} patches, batch 1, {} CPU threads", rayon::current_num_threads());
    println!("  {:<36} {:>8} {:<48} {:>12} {:>14} {:>10}", "model", "params", "device", "ms/patch", "s/train step", "peak RSS");
    for r in &rows {
        println!("  {:<36} {:>7.1}M {:<48} {:>12.1} {:>14.3} {:>7.0} MiB", r.model, r.params_m, r.device, r.infer_ms, r.train_step_s, r.peak_rss_mib);
    }
    println!("  (PyTorch on the same machine: python3 scripts/bench_pytorch.py --size {size})");
    bench_profile(size)
}

/// Each level's convolution and transposed convolution of unet_256, timed alone, Burn's
/// kernels against the matrix-product forms the generator uses on the CPU.
fn bench_profile(size: usize) -> Result<()> {
    println!(
        "where unet_256's inference time goes on the CPU (each layer alone, ms; Burn's kernel / ours, which the CPU uses up to {} output pixels):",
        crate::model::conv::MATMUL_CONV_MAX_PIXELS
    );
    println!("  {:>5} {:>9} {:>22} {:>30} {:>36}", "level", "input px", "conv 4x4/2", "transposed conv 4x4/2", "both, forward + backward");
    let profile = crate::bench::generator_profile(size, 3)?;
    for r in &profile {
        println!(
            "  {:>5} {:>9} {:>10.2} / {:>9.2} {:>18.2} / {:>9.2} {:>24.2} / {:>9.2}",
            r.level, r.input_px, r.conv_burn_ms, r.conv_matmul_ms, r.up_burn_ms, r.up_matmul_ms, r.train_burn_ms, r.train_matmul_ms
        );
    }
    let sum = |f: fn(&crate::bench::LayerProfile) -> f64| profile.iter().map(f).sum::<f64>();
    println!(
        "  total: convolutions {:.1} ms (Burn) / {:.1} ms (ours), transposed convolutions {:.1} ms (Burn) / {:.1} ms (ours)",
        sum(|r| r.conv_burn_ms),
        sum(|r| r.conv_matmul_ms),
        sum(|r| r.up_burn_ms),
        sum(|r| r.up_matmul_ms)
    );
    println!("  forward + backward of both: {:.1} ms (Burn) / {:.1} ms (ours)", sum(|r| r.train_burn_ms), sum(|r| r.train_matmul_ms));
    println!("  baseline: Burn's CPU matrix product, 1024 x 1024 x 1024: {:.0} GFLOP/s", crate::bench::matmul_gflops(1024, 5)?);
    Ok(())
}

/// Runs a benchmark job in a fresh working folder (under `dir` or the system's temporary
/// folder), removed afterwards whatever happened.
fn bench_in_dir<T: Send + 'static>(dir: Option<PathBuf>, quiet: bool, f: impl FnOnce(&Path, &crate::job::Progress) -> crate::error::Result<T> + Send + 'static) -> Result<T> {
    let dir = dir.unwrap_or_else(std::env::temp_dir).join(format!("s2cr-bench-{}", std::process::id()));
    let work = dir.clone();
    let handle = crate::job::spawn("bench", move |p| f(&work, p))?;
    let result = render_job(handle, quiet);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Whole-grid inference: windows per second and the peak memory of the inference alone.
fn bench_infer(size: usize, dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    let r = bench_in_dir(dir, quiet, move |work, p| crate::bench::infer(size, work, p))?;
    println!("whole-grid inference, {0} x {0} grid, {1} px windows with half overlap, {2}, {3}", r.size, r.patch, r.model, r.report.device);
    println!("  set-up (scenes, dataset, one training step)  {:>8.1} s", r.setup_secs);
    println!("  inference: {} windows in {:.1} s, {:.1} windows/s, {:.2} Mpixel/s of grid", r.report.windows, r.report.seconds, r.report.windows as f64 / r.report.seconds, (r.size * r.size) as f64 / 1e6 / r.report.seconds);
    match r.infer_peak_rss_mib {
        Some(m) => println!("  peak RSS during inference                    {m:>8.0} MiB"),
        None => println!("  peak RSS of the whole process                {:>8.0} MiB (could not reset it after the set-up)", peak_rss_mib()),
    }
    Ok(())
}

fn bench_display(size: usize, dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    let r = bench_in_dir(dir, quiet, move |work, p| crate::bench::display(size, work, p))?;
    println!("layer display, {0} x {0} three-band COG (written in {1:.1} s), display image {2} x {3}, CPU", r.size, r.write_secs, r.preview.0, r.preview.1);
    println!("  baseline: reading the display image from disk (overviews)   {:>8.1} ms", r.load_ms);
    println!("  stretch change (percentiles + re-colour)                    {:>8.1} ms  ({:.2}x baseline)", r.stretch_ms, r.stretch_ms / r.load_ms);
    println!("  gamma change (re-colour)                                    {:>8.1} ms  ({:.2}x baseline)", r.gamma_ms, r.gamma_ms / r.load_ms);
    println!("  pan/zoom: mesh of 17 x 17 vertices to lon/lat (once)        {:>8.3} ms; then one textured mesh a frame", r.mesh_ms);
    match &r.gpu {
        Some((name, upload, frame)) => {
            println!("  GPU: {name}");
            println!("  GPU upload of the channels (once per layer)                 {upload:>8.1} ms");
            println!("  GPU stretch change: uniform + draw + read-back of the frame {frame:>8.1} ms  ({:.2}x baseline)", frame / r.load_ms);
        }
        None => println!("  GPU: no wgpu adapter (or built without the app): not measured"),
    }
    println!("  peak RSS {:.0} MiB", peak_rss_mib());
    Ok(())
}

/// Training patches per second from disk, against plain GDAL reads of the same windows.
fn bench_loader(size: usize, dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    let patch = 256.min(size);
    let r = bench_in_dir(dir, quiet, move |work, p| crate::bench::loader(size, patch, work, p))?;
    println!(
        "data loader, {0} x {0} grid, {1} patches of {2} x {2} px, {3} input + {4} output channels, {5} threads",
        r.size, r.patches, r.patch, r.channels.0, r.channels.1, rayon::current_num_threads()
    );
    println!("  baseline: GDAL window reads, 1 thread        {:>8.1} patches/s", r.raw_read_patches_per_sec);
    for (workers, rate) in &r.loader_patches_per_sec {
        println!("  Burn loader (augment + normalize), {workers} workers {rate:>8.1} patches/s  ({:.2}x baseline)", rate / r.raw_read_patches_per_sec);
    }
    println!("  peak RSS {:.0} MiB", r.peak_rss_mib);
    Ok(())
}

/// The whole preprocess stage on generated scenes: time and peak memory.
fn bench_preprocess(size: usize, dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    let cfg = crate::preprocess::stage::PreprocessConfig::default();
    let r = bench_in_dir(dir, quiet, move |work, p| crate::bench::preprocess_stage(size, work, &cfg, p))?;
    let mpx = (r.size * r.size) as f64 / 1e6;
    println!("preprocess stage, {0} x {0} grid ({mpx:.1} Mpixel), {1} threads, native engine, Refined Lee, blocks of 512 rows", r.size, rayon::current_num_threads());
    println!("  inputs generated in {:.1} s (peak RSS so far {:.0} MiB)", r.generate_secs, r.rss_after_generate_mib);
    println!("  stage: {:.1} s for one S2 scene (7 bands + SCL) and one S1 scene (VV + VH); peak RSS {:.0} MiB", r.stage_secs, r.peak_rss_mib);
    for o in &r.outputs {
        println!("  {} {} {:.1} % usable", o.sensor, o.date, o.valid_percent);
    }
    Ok(())
}

/// Throughput of the speckle filters on synthetic 4-look speckle (gamma-distributed, over a
/// scene of flat patches), with the 7 x 7 boxcar as the baseline of the same run.
fn bench(size: usize) -> Result<()> {
    use crate::preprocess::s1;
    let n = size * size;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let image: Vec<f32> = (0..n)
        .map(|i| {
            let (x, y) = (i % size, i / size);
            let level = if ((x / 64) + (y / 64)) % 2 == 0 { 0.05 } else { 0.2 };
            let speckle: f64 = (0..4).map(|_| -uniform().ln()).sum::<f64>() / 4.0;
            (level * speckle) as f32
        })
        .collect();
    println!("{size} x {size} image ({:.1} Mpixel), {} threads; peak RSS after setup {:.0} MiB", n as f64 / 1e6, rayon::current_num_threads(), peak_rss_mib());
    for (name, filter) in [("boxcar 7x7 (baseline)", s1::SpeckleFilter::Boxcar { size: 7 }), ("Refined Lee 7x7", s1::SpeckleFilter::RefinedLee)] {
        let start = std::time::Instant::now();
        let out = s1::speckle_filter(&image, size, size, filter);
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(&out);
        println!("{name:<24} {secs:>8.2} s  {:>7.2} Mpixel/s  peak RSS {:.0} MiB", n as f64 / 1e6 / secs, peak_rss_mib());
    }
    Ok(())
}

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
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

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
