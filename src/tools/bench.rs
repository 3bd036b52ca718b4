//! What `s2cr bench` measures, for people comparing hardware: the preprocess stage, the data
//! loader, the generator (whole, and layer by layer against the CPU's matrix product),
//! whole-grid inference and the app's display costs, each with its time and peak memory.
//!
//! The inputs are generated in a scratch folder, where the stages expect them (a benchmark
//! measures time and memory, not content): Sentinel-2 digital numbers over flat fields with
//! 10 % cloud and shadow in the SCL, 20 m bands at half the size, and Sentinel-1 RTC power with
//! 4-look speckle, written where `s2cr fetch` leaves them; or preprocessed scenes for the
//! stages after preprocessing. Nothing in the pipeline uses this module.

use std::path::Path;
use std::time::Instant;

use gdal::{DriverManager, Metadata};
use gdal::raster::{Buffer, GdalType, RasterCreationOptions};

use crate::catalog::stage::SearchResult;
use crate::catalog::{Mission, Scene};
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::preprocess::stage::{self, PreprocessConfig, Preprocessed};
use crate::project::{Project, ProjectConfig, RunName};
use crate::grid::TargetGrid;

pub use super::peak_rss_mib;

/// What the stage benchmark measured.
#[derive(Debug, Clone)]
pub struct StageBench {
    pub size: usize,
    pub generate_secs: f64,
    pub rss_after_generate_mib: f64,
    pub stage_secs: f64,
    pub peak_rss_mib: f64,
    pub outputs: Vec<Preprocessed>,
}

/// A small xorshift generator: reproducible noise without a dependency.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// Writes a single-band tiled GeoTIFF of type `T`, row block by row block, from `value(x, y)`.
fn write_band<T: GdalType>(path: &Path, size: usize, pixel_m: f64, x_min: f64, y_max: f64, nodata: Option<f64>, mut value: impl FnMut(usize, usize) -> f64) -> Result<()> {
    write_stack::<T>(path, size, pixel_m, x_min, y_max, nodata, &[], |_, x, y| value(x, y))
}

/// Writes a tiled GeoTIFF of type `T` with one band per description (at least one), row block
/// by row block, from `value(band, x, y)`.
fn write_stack<T: GdalType>(
    path: &Path,
    size: usize,
    pixel_m: f64,
    x_min: f64,
    y_max: f64,
    nodata: Option<f64>,
    descriptions: &[&str],
    mut value: impl FnMut(usize, usize, usize) -> f64,
) -> Result<()> {
    let loc = path.display().to_string();
    let driver = DriverManager::get_driver_by_name("GTiff").map_err(Error::gdal("GTiff", "loading the GDAL driver"))?;
    let options = RasterCreationOptions::from_iter(["TILED=YES", "BIGTIFF=IF_SAFER"]);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(parent, "creating a folder"))?;
    }
    let count = descriptions.len().max(1);
    let mut ds = driver.create_with_band_type_with_options::<T, _>(path, size, size, count, &options).map_err(Error::gdal(&loc, "creating"))?;
    ds.set_geo_transform(&[x_min, pixel_m, 0.0, y_max, 0.0, -pixel_m]).map_err(Error::gdal(&loc, "setting the geotransform"))?;
    let srs = gdal::spatial_ref::SpatialRef::from_epsg(32633).map_err(Error::gdal(&loc, "creating the CRS"))?;
    ds.set_spatial_ref(&srs).map_err(Error::gdal(&loc, "setting the CRS"))?;
    for b in 0..count {
        let mut band = ds.rasterband(b + 1).map_err(Error::gdal(&loc, "opening the band"))?;
        if let Some(nd) = nodata {
            band.set_no_data_value(Some(nd)).map_err(Error::gdal(&loc, "setting nodata"))?;
        }
        if let Some(d) = descriptions.get(b) {
            band.set_description(d).map_err(Error::gdal(&loc, "setting a description"))?;
        }
        let rows = 256;
        for y0 in (0..size).step_by(rows) {
            let n = rows.min(size - y0);
            let data: Vec<f64> = (0..n * size).map(|i| value(b, i % size, y0 + i / size)).collect();
            let mut buf = Buffer::new((size, n), data);
            band.write((0, y0 as isize), (size, n), &mut buf).map_err(Error::gdal(&loc, "writing"))?;
        }
    }
    Ok(())
}

fn scene(id: &str, mission: Mission, collection: &str, datetime: &str) -> Result<Scene> {
    let datetime = datetime.parse().map_err(|e| Error::invalid("datetime", format!("{e}")))?;
    Ok(Scene {
        platform: Some(if mission == Mission::Sentinel2 { "sentinel-2a" } else { "sentinel-1a" }.into()),
        relative_orbit: Some(1),
        orbit_state: Some("descending".into()),
        processing_baseline: Some("05.10".into()),
        ..Scene::new(id, collection, mission, datetime)
    })
}

/// A benchmark project of a `size` x `size` grid at 10 m in `dir/name` (replacing an earlier
/// one), with the given S2 and S1 bands.
fn bench_project(dir: &Path, name: &str, size: usize, s2: &[&str], s1: &[&str]) -> Result<Project> {
    let grid = TargetGrid { epsg: 32633, pixel_size_m: 10.0, x_min: X_MIN, y_max: Y_MAX, width: size, height: size };
    let root = dir.join(name);
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(Error::io(&root, "removing an earlier benchmark project"))?;
    }
    // The AOI is only recorded; the benchmark sets the grid itself.
    let aoi = crate::aoi::Aoi::parse_geojson(r#"{"type":"Polygon","coordinates":[[[15.0,45.0],[16.0,45.0],[16.0,46.0],[15.0,46.0],[15.0,45.0]]]}"#, "benchmark")?;
    let mut config = ProjectConfig {
        schema_version: crate::project::SCHEMA_VERSION,
        name: "bench".into(),
        aoi: crate::project::AOI_FILE.into(),
        t0: "2024-01-01/2024-01-10".parse().map_err(|e: String| Error::invalid("t0", e))?,
        t1: "2024-02-01/2024-02-10".parse().map_err(|e: String| Error::invalid("t1", e))?,
        provider: Default::default(),
        max_cloud_percent: 100.0,
        bands: Default::default(),
        grid,
        model_config: None,
        train_config: None,
        catalog: None,
        collections: None,
        openeo: None,
        reference_perimeter: None,
        composite: None,
    };
    config.bands.s2 = s2.iter().map(|s| s.to_string()).collect();
    config.bands.s1 = s1.iter().map(|s| s.to_string()).collect();
    Project::create(&root, config, &aoi)
}

/// Origin of the benchmark grids (UTM 33N).
const X_MIN: f64 = 300_000.0;
const Y_MAX: f64 = 5_100_000.0;

/// Generates one S2 scene (7 bands + SCL) and one S1 RTC scene (VV, VH) of `size` x `size`
/// 10 m pixels in a project under `dir`, then runs the preprocess stage and measures it.
pub fn preprocess_stage(size: usize, dir: &Path, cfg: &PreprocessConfig, progress: &Progress) -> Result<StageBench> {
    let (x_min, y_max) = (X_MIN, Y_MAX);
    let project = bench_project(dir, "bench-project", size, &["B02", "B03", "B04", "B08", "B8A", "B11", "B12", "SCL"], &["VV", "VH"])?;
    let s2 = scene("BENCH_S2", Mission::Sentinel2, "sentinel-2-l2a", "2024-02-05T10:00:00Z")?;
    let s1 = scene("BENCH_S1", Mission::Sentinel1, "sentinel-1-rtc", "2024-02-04T17:00:00Z")?;
    // Where `s2cr fetch` leaves a scene's bands (and where preprocessing looks for them).
    let raw = |s: &Scene, band: &str| project.raw_band_file(&s.datetime, &s.id, band);

    let start = Instant::now();
    progress.info(format!("generating a {size} x {size} Sentinel-2 scene and a Sentinel-1 scene"));
    let field = |x: usize, y: usize, scale: usize| (((x * scale / 97) ^ (y * scale / 89)) % 7) as f64;
    for (i, band) in ["B02", "B03", "B04", "B08"].iter().enumerate() {
        progress.check_cancelled()?;
        write_band::<u16>(&raw(&s2, band), size, 10.0, x_min, y_max, Some(0.0), |x, y| 1000.0 + 300.0 * (i + 1) as f64 + 150.0 * field(x, y, 1))?;
    }
    let half = size.div_ceil(2);
    for (i, band) in ["B8A", "B11", "B12"].iter().enumerate() {
        progress.check_cancelled()?;
        write_band::<u16>(&raw(&s2, band), half, 20.0, x_min, y_max, Some(0.0), |x, y| 2000.0 + 200.0 * i as f64 + 150.0 * field(x, y, 2))?;
    }
    // SCL: vegetation, with cloud (9) and shadow (3) squares over 8 % of the scene.
    write_band::<u8>(&raw(&s2, "SCL"), half, 20.0, x_min, y_max, Some(0.0), |x, y| match ((x / 10) % 5, (y / 10) % 5) {
        (1, 1) => 9.0,
        (2, 1) => 3.0,
        _ => 4.0,
    })?;
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    for (pol, level) in [("VV", 0.08), ("VH", 0.02)] {
        progress.check_cancelled()?;
        write_band::<f32>(&raw(&s1, pol), size, 10.0, x_min, y_max, None, |x, y| {
            let speckle: f64 = (0..4).map(|_| -noise.uniform().ln()).sum::<f64>() / 4.0;
            level * (1.0 + 0.5 * field(x, y, 1)) * speckle
        })?;
    }
    let generate_secs = start.elapsed().as_secs_f64();
    let rss_after_generate_mib = peak_rss_mib();
    SearchResult::of_choice(None, Some(s2.clone()), vec![(s2, s1)]).save(&project)?;
    let start = Instant::now();
    let outputs = stage::preprocess(&project, cfg, progress)?;
    Ok(StageBench { size, generate_secs, rss_after_generate_mib, stage_secs: start.elapsed().as_secs_f64(), peak_rss_mib: peak_rss_mib(), outputs })
}

/// What the loader benchmark measured.
#[derive(Debug, Clone)]
pub struct LoaderBench {
    pub size: usize,
    pub patch: usize,
    pub patches: usize,
    pub channels: (usize, usize),
    /// Baseline: GDAL reads of the same windows, one thread, no normalization.
    pub raw_read_patches_per_sec: f64,
    /// The Burn data loader (augmentation, normalization, tensors), per worker count.
    pub loader_patches_per_sec: Vec<(usize, f64)>,
    /// The dataset held in memory: seconds to read it, MiB, and the loader (no worker thread).
    pub resident: Option<(f64, f64, f64)>,
    pub peak_rss_mib: f64,
}

/// A project of `size` x `size` generated preprocessed scenes (S2 t0/t1 with 6 bands + mask,
/// S1 t0/t1 VV/VH) and the search result that names them, ready for the dataset stage.
fn preprocessed_project(dir: &Path, name: &str, size: usize, progress: &Progress) -> Result<Project> {
    let (x_min, y_max) = (X_MIN, Y_MAX);
    let s2_bands = ["B02", "B03", "B04", "B08", "B11", "B12"];
    let project = bench_project(dir, name, size, &s2_bands, &["VV", "VH"])?;
    progress.info(format!("generating {size} x {size} preprocessed scenes"));
    let field = |x: usize, y: usize| (((x / 97) ^ (y / 89)) % 7) as f64;
    let mut s2_names: Vec<&str> = s2_bands.to_vec();
    s2_names.push("mask");
    for (date, shift) in [("2024-01-05", 0.0), ("2024-02-05", 0.02)] {
        progress.check_cancelled()?;
        write_stack::<f32>(&project.preprocessed_s2(date), size, 10.0, x_min, y_max, None, &s2_names, |b, x, y| {
            if b == 6 { if (x / 40) % 9 == 0 && (y / 40) % 9 == 0 { 1.0 } else { 0.0 } } else { 0.03 * (b + 1) as f64 + 0.02 * field(x, y) + shift }
        })?;
    }
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    for date in ["2024-01-04", "2024-02-04"] {
        progress.check_cancelled()?;
        write_stack::<f32>(&project.preprocessed_s1(date), size, 10.0, x_min, y_max, None, &["VV", "VH"], |b, x, y| {
            -12.0 - 6.0 * b as f64 + field(x, y) + 2.0 * (noise.uniform() - 0.5)
        })?;
    }
    let s2 = |id: &str, date: &str| scene(id, Mission::Sentinel2, "sentinel-2-l2a", date);
    let s1 = |id: &str, date: &str| scene(id, Mission::Sentinel1, "sentinel-1-rtc", date);
    let (t0, t1, r0, r1) = (s2("T0", "2024-01-05T10:00:00Z")?, s2("T1", "2024-02-05T10:00:00Z")?, s1("R0", "2024-01-04T17:00:00Z")?, s1("R1", "2024-02-04T17:00:00Z")?);
    SearchResult::of_choice(Some(t0.clone()), Some(t1.clone()), vec![(t0, r0), (t1, r1)]).save(&project)?;
    Ok(project)
}

/// Generates preprocessed scenes of `size` x `size` (S2 t0/t1 with 6 bands + mask, S1 t0/t1),
/// builds the dataset with `patch` x `patch` patches, and measures reading it: GDAL window
/// reads on one thread (baseline) against the Burn data loader with 0, 1 and 2 workers.
pub fn loader(size: usize, patch: usize, dir: &Path, progress: &Progress) -> Result<LoaderBench> {
    use burn::data::dataloader::DataLoaderBuilder;
    use crate::dataset::{self, DatasetConfig, loader::{PatchBatcher, PatchDataset}, tiles::{Split, TileConfig}};
    // As training does: the loader keeps its files open, with GDAL's cache capped.
    let _cache = crate::raster::BlockCacheLimit::set(crate::model::train::TRAINING_BLOCK_CACHE);
    let project = preprocessed_project(dir, "bench-loader", size, progress)?;
    let cfg = DatasetConfig { tiles: TileConfig { size: patch, stride: patch, val_fraction: 0.0, test_fraction: 0.0, min_valid: 0.5, ..Default::default() }, ..DatasetConfig::research(&project) };
    progress.info("building the dataset");
    let summary = dataset::build(&project, &cfg, progress)?;
    // The VRTs the dataset stage wrote (paths relative to the project, as dataset.json records).
    let inputs_vrt = project.root().join(&summary.files.inputs_vrt).display().to_string();
    let label_vrt = project.root().join(&summary.files.label_vrt).display().to_string();
    let data = PatchDataset::open(&project, Split::Train, Some(1))?;
    let patches = data.patches().len();
    let channels = data.channels();
    progress.info(format!("reading {patches} patches"));
    let start = Instant::now();
    for i in 0..patches {
        progress.check_cancelled()?;
        let p = &data.patches()[i];
        let w = Some(crate::raster::PixelWindow { x_off: p.x, y_off: p.y, width: patch, height: patch });
        std::hint::black_box(crate::raster::read_window(&inputs_vrt, &[], w)?);
        std::hint::black_box(crate::raster::read_window(&label_vrt, &[], w)?);
    }
    let raw_read_patches_per_sec = patches as f64 / start.elapsed().as_secs_f64();
    let normalization = crate::dataset::loader::load_normalization(&project)?;
    let mut loader_patches_per_sec = Vec::new();
    for workers in [0usize, 1, 2] {
        progress.check_cancelled()?;
        let data = PatchDataset::open(&project, Split::Train, Some(1))?;
        let loader = DataLoaderBuilder::new(PatchBatcher { normalization: normalization.clone() })
            .batch_size(4)
            .shuffle(1)
            .num_workers(workers)
            .set_device(burn::prelude::Device::flex())
            .build(data);
        let start = Instant::now();
        let mut n = 0;
        for batch in loader.iter() {
            let batch = batch.map_err(|e| Error::invalid("data loader", e.to_string()))?;
            n += batch.patch_ids.len();
        }
        loader_patches_per_sec.push((workers, n as f64 / start.elapsed().as_secs_f64()));
    }
    // As training does when the dataset fits its memory budget.
    progress.check_cancelled()?;
    let start = Instant::now();
    let data = PatchDataset::open(&project, Split::Train, Some(1))?;
    let stacks = crate::dataset::loader::ResidentStacks::load(&data)?;
    let load_secs = start.elapsed().as_secs_f64();
    let mib = stacks.bytes() as f64 / (1 << 20) as f64;
    let loader = DataLoaderBuilder::new(PatchBatcher { normalization }).batch_size(4).shuffle(1).num_workers(0).set_device(burn::prelude::Device::flex()).build(data.holding(stacks));
    let start = Instant::now();
    let mut n = 0;
    for batch in loader.iter() {
        let batch = batch.map_err(|e| Error::invalid("data loader", e.to_string()))?;
        n += batch.patch_ids.len();
    }
    let resident = Some((load_secs, mib, n as f64 / start.elapsed().as_secs_f64()));
    Ok(LoaderBench { size, patch, patches, channels, raw_read_patches_per_sec, loader_patches_per_sec, resident, peak_rss_mib: peak_rss_mib() })
}

/// Resets this process's peak resident memory (Linux: `5` to `/proc/self/clear_refs`), so a
/// later `peak_rss_mib` measures one phase alone. False where that is not possible. Memory the
/// set-up freed is first handed back to the system (glibc keeps it otherwise, and it would
/// count in the next phase's peak).
pub fn reset_peak_rss() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: glibc's `int malloc_trim(size_t pad)` (Linux with glibc only).
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim only returns free heap pages to the system.
        unsafe { malloc_trim(0) };
    }
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// What the whole-grid inference benchmark measured.
#[derive(Debug, Clone)]
pub struct InferBench {
    pub size: usize,
    pub patch: usize,
    pub model: String,
    /// One row per window overlap, largest first: the previous default (0.5, Hann weights),
    /// 0.25, 0.125 and today's default.
    pub rows: Vec<InferRow>,
    pub setup_secs: f64,
}

/// One inference of [`InferBench`].
#[derive(Debug, Clone)]
pub struct InferRow {
    pub overlap: f64,
    pub report: crate::model::infer::InferReport,
    /// Peak RSS during this inference alone (None where it could not be reset).
    pub peak_rss_mib: Option<f64>,
    pub seams: SeamCheck,
}

/// The synthetic image's error against the generated scene's label near the windows' borders
/// and away from them: a seam shows as a ratio above one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeamCheck {
    /// Mean absolute error (over bands and pixels) within [`SEAM_BAND`] pixels of a border
    /// between windows (not the grid's edge), and elsewhere.
    pub border_mae: f64,
    pub inside_mae: f64,
    pub border_pixels: u64,
    pub inside_pixels: u64,
}

impl SeamCheck {
    /// `None` when there is nothing to compare: one window covers the grid (no border between
    /// windows), or no pixel is away from a border.
    pub fn ratio(&self) -> Option<f64> {
        (self.border_pixels > 0 && self.inside_pixels > 0 && self.inside_mae > 0.0).then(|| self.border_mae / self.inside_mae)
    }
}

/// Pixels on each side of a border between windows that [`SeamCheck`] counts as the border.
pub const SEAM_BAND: usize = 4;

/// Generates `size` x `size` preprocessed scenes, builds the dataset (256 px patches), trains a
/// small generator for one step (the weights do not change the cost) and synthesizes the whole
/// grid with overlapping windows, at the previous default overlap (0.5), smaller ones and
/// today's default (or the `overlaps` given), measuring time, the peak memory of the inference
/// alone, and the seams against the label.
pub fn infer(size: usize, dir: &Path, overlaps: &[f64], progress: &Progress) -> Result<InferBench> {
    use crate::dataset::{self, DatasetConfig, tiles::TileConfig};
    use crate::model::config::{ModelConfig, TrainConfig};
    use crate::model::infer::InferOptions;
    use crate::model::train::{TrainOptions, train};
    // Checked before the minutes of set-up a large grid takes.
    if let Some(bad) = overlaps.iter().find(|o| !(0.0..1.0).contains(*o)) {
        return Err(Error::invalid("--overlap", format!("{bad} is not in [0, 1)")));
    }
    let start = Instant::now();
    let patch = 256;
    let project = preprocessed_project(dir, "bench-infer", size, progress)?;
    let tiles = TileConfig { size: patch, stride: patch, val_fraction: 0.0, test_fraction: 0.0, min_valid: 0.5, ..Default::default() };
    progress.info("building the dataset");
    dataset::build(&project, &DatasetConfig { tiles, ..DatasetConfig::research(&project) }, progress)?;
    let model = ModelConfig::small();
    let name = "small (ngf 16, depth 6)".to_string();
    let train_cfg = TrainConfig { max_steps: 1, checkpoint_every: 0, workers: 0, ..Default::default() };
    progress.info("one training step for a checkpoint");
    let run = RunName::new("bench")?;
    train(&project, &TrainOptions { run: run.clone(), model, train: train_cfg, device: crate::model::DeviceChoice::Cpu, resume: false }, progress)?;
    let setup_secs = start.elapsed().as_secs_f64();
    // The previous default (0.5, the Hann window), smaller overlaps, and today's default.
    let mut overlaps = if overlaps.is_empty() { vec![0.5, 0.25, 0.125, InferOptions::default().overlap] } else { overlaps.to_vec() };
    overlaps.sort_by(|a, b| b.total_cmp(a));
    overlaps.dedup();
    let mut rows = Vec::new();
    for overlap in overlaps {
        let reset = reset_peak_rss();
        progress.info(format!("synthesizing the whole grid, windows overlapping by {overlap}"));
        let opts = InferOptions { run: run.clone(), device: crate::model::DeviceChoice::Cpu, overlap, ..Default::default() };
        let report = crate::model::infer::infer(&project, &opts, progress)?;
        let peak_rss_mib = reset.then(peak_rss_mib);
        let stride = crate::model::infer::window_stride(patch, overlap);
        let seams = seam_check(&report.path, &project.preprocessed_s2("2024-02-05"), patch, stride, progress)?;
        rows.push(InferRow { overlap, report, peak_rss_mib, seams });
    }
    Ok(InferBench { size, patch, model: name, rows, setup_secs })
}

/// [`SeamCheck`] of a synthetic image against its label (bands matched by name), for windows
/// of `n` pixels every `stride`, read in strips of rows.
pub fn seam_check(synthetic: &Path, label: &Path, n: usize, stride: usize, progress: &Progress) -> Result<SeamCheck> {
    use crate::model::infer::window_starts;
    use crate::raster::{self, PixelWindow};
    let (syn, lab) = (synthetic.display().to_string(), label.display().to_string());
    let (si, li) = (raster::info(&syn)?, raster::info(&lab)?);
    let (w, h) = (si.width, si.height);
    if (li.width, li.height) != (w, h) {
        return Err(Error::Raster { location: lab, message: format!("is {} x {}, the synthetic image {w} x {h}", li.width, li.height) });
    }
    // Label band (1-based) of each synthetic band, by name.
    let mut pairs = Vec::new();
    for (k, b) in si.bands.iter().enumerate() {
        match li.bands.iter().position(|l| l.description == b.description) {
            Some(j) => pairs.push((k + 1, j + 1)),
            None => return Err(Error::Raster { location: lab, message: format!("has no band {} of {syn}", b.description) }),
        }
    }
    // Columns (rows) within SEAM_BAND of a border between two windows.
    let near = |length: usize| {
        let mut near = vec![false; length];
        for s in window_starts(length, n, stride) {
            for border in [s, s + n] {
                if border > 0 && border < length {
                    near[border.saturating_sub(SEAM_BAND)..(border + SEAM_BAND).min(length)].fill(true);
                }
            }
        }
        near
    };
    let (near_x, near_y) = (near(w), near(h));
    let (mut sums, mut counts) = ([0.0f64; 2], [0u64; 2]);
    let strip = 256;
    for y0 in (0..h).step_by(strip) {
        progress.check_cancelled()?;
        let window = Some(PixelWindow { x_off: 0, y_off: y0, width: w, height: strip.min(h - y0) });
        let s = raster::read_window(&syn, &pairs.iter().map(|p| p.0).collect::<Vec<_>>(), window)?;
        let l = raster::read_window(&lab, &pairs.iter().map(|p| p.1).collect::<Vec<_>>(), window)?;
        for i in 0..s.width * s.height {
            let (x, y) = (i % w, y0 + i / w);
            let mut e = 0.0f64;
            for (a, b) in s.bands.iter().zip(&l.bands) {
                e += (a[i] as f64 - b[i] as f64).abs();
            }
            if e.is_finite() {
                let k = usize::from(near_x[x] || near_y[y]);
                sums[k] += e / pairs.len() as f64;
                counts[k] += 1;
            }
        }
    }
    Ok(SeamCheck { border_mae: sums[1] / counts[1].max(1) as f64, inside_mae: sums[0] / counts[0].max(1) as f64, border_pixels: counts[1], inside_pixels: counts[0] })
}

/// What `s2cr bench --what display` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayBench {
    pub size: usize,
    pub preview: (usize, usize),
    pub write_secs: f64,
    /// Reading the display image from disk (overviews), as a layer is first shown.
    pub load_ms: f64,
    /// A stretch change: new percentiles and re-colouring the cached image.
    pub stretch_ms: f64,
    /// A gamma change: re-colouring with the same stretch.
    pub gamma_ms: f64,
    /// A pan or zoom: projecting the mesh's vertices to lon/lat (done once) and then to the
    /// screen (each frame); no raster work.
    pub mesh_ms: f64,
    /// With a wgpu adapter (and the app built in): its name, the upload of the channels, and
    /// a stretch change on the GPU including a read-back of the frame.
    pub gpu: Option<(String, f64, f64)>,
}

/// Display costs of one `size` x `size` three-band layer (a generated COG with overviews, as
/// the pipeline writes): first load, stretch change, gamma change; the first load is the
/// baseline a stretch change would cost if the display re-read the file.
pub fn display(size: usize, dir: &Path, progress: &Progress) -> Result<DisplayBench> {
    use crate::layers::{Composite, Layer, LayerKind, StretchKind};
    let grid = TargetGrid { epsg: 32633, pixel_size_m: 10.0, x_min: 300_000.0, y_max: 5_000_040.0, width: size, height: size };
    let path = dir.join("layer.tif");
    let names: Vec<String> = ["B04", "B03", "B02"].map(String::from).to_vec();
    let start = Instant::now();
    progress.info(format!("writing a {size} x {size} three-band COG"));
    let mut w = crate::raster::BlockWriter::create(&path, &grid, &names, f32::NAN)?;
    let rows = 512;
    for y0 in (0..size).step_by(rows) {
        progress.check_cancelled()?;
        let n = rows.min(size - y0);
        for b in 0..3 {
            let data: Vec<f32> = (0..n * size).map(|i| {
                let (x, y) = ((i % size) as f32, (y0 + i / size) as f32);
                0.05 + 0.1 * (1.0 + ((x * 0.013 + b as f32).sin() * (y * 0.007).cos())) + 0.01 * ((x * 7.3 + y * 3.1).sin())
            }).collect();
            w.write_rows(b, y0, n, &data)?;
        }
        progress.advanced((y0 + n) as u64, size as u64, "writing");
    }
    w.finish()?;
    let write_secs = start.elapsed().as_secs_f64();
    let layer = Layer { id: "bench".into(), title: "bench".into(), kind: LayerKind::Optical, path: path.clone(), band: None, attribution: String::new(), scheme: None, provenance: String::new() };
    let composite = Composite::presets()[0].clone();
    let t = Instant::now();
    let ch = crate::layers::read_channels(&layer, &composite, 1024)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let repeat = 5;
    let t = Instant::now();
    for k in 0..repeat {
        let s = ch.stretch(if k % 2 == 0 { StretchKind::Percentile(2.0, 98.0) } else { StretchKind::Percentile(1.0, 99.0) }, 1.0);
        std::hint::black_box(ch.rgba(LayerKind::Optical, &s, &[], None));
    }
    let stretch_ms = t.elapsed().as_secs_f64() * 1e3 / repeat as f64;
    let s = ch.stretch(StretchKind::Percentile(2.0, 98.0), 1.0);
    let t = Instant::now();
    for k in 0..repeat {
        std::hint::black_box(ch.rgba(LayerKind::Optical, &crate::layers::Stretch { gamma: 1.0 + 0.2 * k as f32, ..s }, &[], None));
    }
    let gamma_ms = t.elapsed().as_secs_f64() * 1e3 / repeat as f64;
    // The mesh: 17 x 17 vertices from the layer's CRS to lon/lat.
    let t = Instant::now();
    let srs = gdal::spatial_ref::SpatialRef::from_epsg(grid.epsg).map_err(Error::gdal("EPSG:32633", "creating the CRS"))?;
    let wgs84 = crate::grid::wgs84_traditional()?;
    let tr = gdal::spatial_ref::CoordTransform::new(&srs, &wgs84).map_err(Error::gdal("EPSG:32633", "creating a transformation"))?;
    let (mut xs, mut ys): (Vec<f64>, Vec<f64>) = (0..17 * 17).map(|k| (grid.x_min + (k % 17) as f64 * size as f64 * 10.0 / 16.0, grid.y_max - (k / 17) as f64 * size as f64 * 10.0 / 16.0)).unzip();
    let mut zs = vec![0.0; xs.len()];
    tr.transform_coords(&mut xs, &mut ys, &mut zs).map_err(Error::gdal("EPSG:32633", "transforming the mesh"))?;
    let mesh_ms = t.elapsed().as_secs_f64() * 1e3;
    let _ = std::fs::remove_file(&path);
    progress.info("timing the GPU stretch");
    #[cfg(feature = "gui")]
    let gpu = crate::gui::stretch_gpu::time_stretch(&ch, &s, repeat);
    #[cfg(not(feature = "gui"))]
    let gpu = None;
    Ok(DisplayBench { size, preview: (ch.width, ch.height), write_secs, load_ms, stretch_ms, gamma_ms, mesh_ms, gpu })
}

/// What `s2cr bench --what assess` measured.
#[derive(Debug, Clone)]
pub struct AssessBench {
    pub size: usize,
    /// The generated inputs (kept in the working folder, reused by a later run of the same size).
    pub inputs: crate::assess::AssessInputs,
    pub input_bytes: u64,
    pub generate_secs: f64,
    /// The assessment of the three images with the held-out split, without the baselines.
    pub assess_secs: f64,
    /// The same with the baselines (persistence, the linear model, radar-only, the post-fire
    /// composite), in the same run.
    pub with_baselines_secs: f64,
    /// How long the baselines' thread ran within it (beside the assessment's own strips and
    /// writing: what they add is the difference of the two runs).
    pub baselines_secs: f64,
    /// The composite of two acquisitions with clouds (`preprocess::composite`, median), written
    /// before the assessments (the preprocess stage's cost, not the assessment's).
    pub composite_secs: f64,
    /// The baselines and the gap-filled image with its dNBR and severity: what a project's
    /// assessment does.
    pub with_gapfill_secs: f64,
    /// Peak RSS during the assessment without the baselines (None where it could not be reset).
    pub plain_rss_mib: Option<f64>,
    /// Peak RSS during the assessment with the baselines (None where it could not be reset).
    pub peak_rss_mib: Option<f64>,
    pub kappa: f64,
    /// The baselines' burned-area kappa, by row id.
    pub baseline_kappas: Vec<(String, f64)>,
}

/// Generates a `size` x `size` pre-fire, real and synthetic post-fire image (six Float32
/// reflectance bands each, uncompressed: about 9 GB at 10980) and the dataset's inputs (Sentinel-1
/// VV and VH at t0 and t1 in dB, Sentinel-2 t0: ten Float32 bands), and assesses them over a
/// held-out split of 256 px blocks (one in four), first without and then with the baselines,
/// measuring the time of each and the peak memory of the second. The real image carries a round
/// burn scar in the middle; the synthetic one is the real one with a smaller scar and some noise;
/// the radar's VH falls by 3 dB inside the scar.
pub fn assess(size: usize, dir: &Path, progress: &Progress) -> Result<AssessBench> {
    use crate::assess::baselines::BaselineInputs;
    use crate::assess::{AssessConfig, AssessInputs, HeldOut, assess_files};
    const BANDS: [&str; 6] = ["B02", "B03", "B04", "B08", "B11", "B12"];
    const INPUTS: [&str; 10] = ["S1_t0:VV", "S1_t0:VH", "S1_t1:VV", "S1_t1:VH", "S2_t0:B02", "S2_t0:B03", "S2_t0:B04", "S2_t0:B08", "S2_t0:B11", "S2_t0:B12"];
    let start = Instant::now();
    let inputs = AssessInputs { pre: dir.join("assess-pre.tif"), real: dir.join("assess-real.tif"), synthetic: dir.join("assess-synthetic.tif"), ..Default::default() };
    let radar = dir.join("assess-inputs.tif");
    let (c, r2) = (size as f64 / 2.0, (size as f64 / 5.0).powi(2));
    let scar = move |x: usize, y: usize, shrink: f64| ((x as f64 - c).powi(2) + (y as f64 - c).powi(2)) < r2 * shrink;
    let field = |x: usize, y: usize| 0.02 * (((x / 97) * 31 + (y / 89) * 17) % 7) as f64;
    // Vegetation before the fire; a burn scar after it (NIR down, SWIR up).
    let reflectance = move |b: usize, x: usize, y: usize, burned: bool| -> f64 {
        let field = field(x, y);
        match (b, burned) {
            (3, false) => 0.35 + field,
            (3, true) => 0.15 + field,
            (5, false) => 0.08 + field / 2.0,
            (5, true) => 0.22 + field / 2.0,
            (4, _) => 0.18 + field,
            _ => 0.04 + 0.02 * b as f64 + field / 3.0,
        }
    };
    let fits = |path: &Path, bands: usize| crate::raster::info(&path.display().to_string()).is_ok_and(|i| i.width == size && i.height == size && i.bands.len() == bands);
    for (k, path) in [&inputs.pre, &inputs.real, &inputs.synthetic].into_iter().enumerate() {
        if fits(path, BANDS.len()) {
            progress.info(format!("reusing {}", path.display()));
            continue;
        }
        progress.info(format!("writing {} ({size} x {size}, six Float32 bands)", path.display()));
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15 + k as u64);
        // Smaller and noisier in the synthetic image.
        write_stack::<f32>(path, size, 10.0, 300_000.0, 5_000_040.0, None, &BANDS, |b, x, y| {
            let burned = k > 0 && scar(x, y, if k == 2 { 0.8 } else { 1.0 });
            let jitter = if k == 2 { 0.02 * (noise.uniform() - 0.5) } else { 0.0 };
            reflectance(b, x, y, burned) + jitter
        })?;
        progress.check_cancelled()?;
    }
    if fits(&radar, INPUTS.len()) {
        progress.info(format!("reusing {}", radar.display()));
    } else {
        progress.info(format!("writing {} ({size} x {size}, ten Float32 bands: Sentinel-1 at t0 and t1, Sentinel-2 t0)", radar.display()));
        let mut noise = Noise(0x5851_f42d_4c95_7f2d);
        write_stack::<f32>(&radar, size, 10.0, 300_000.0, 5_000_040.0, None, &INPUTS, |b, x, y| match b {
            0..=3 => {
                let base = if b % 2 == 0 { -9.0 } else { -15.0 } + 10.0 * field(x, y);
                let fell = if b == 3 && scar(x, y, 1.0) { -3.0 } else { 0.0 };
                base + fell + 0.5 * (noise.uniform() - 0.5)
            }
            _ => reflectance(b - 4, x, y, false),
        })?;
        progress.check_cancelled()?;
    }
    // Two acquisitions of the t1 window with clouds in other places (the real image's bands a
    // little brighter or darker), for the composite row and the gap-fill.
    let mut scenes = Vec::new();
    let with_mask: Vec<&str> = BANDS.iter().copied().chain(["mask"]).collect();
    for (k, (gain, shift)) in [(1.03, 0usize), (0.97, 700)].into_iter().enumerate() {
        let path = dir.join(format!("assess-window-{k}.tif"));
        if fits(&path, with_mask.len()) {
            progress.info(format!("reusing {}", path.display()));
        } else {
            progress.info(format!("writing {} ({size} x {size}, six Float32 bands and a cloud mask)", path.display()));
            write_stack::<f32>(&path, size, 10.0, 300_000.0, 5_000_040.0, None, &with_mask, |b, x, y| match b {
                6 => (((x + shift) / 300 + (y + shift / 2) / 200) % 3 == 0) as u8 as f64,
                _ => gain * reflectance(b, x, y, scar(x, y, 1.0)),
            })?;
            progress.check_cancelled()?;
        }
        scenes.push(crate::preprocess::composite::Acquisition { date: chrono::NaiveDate::from_ymd_opt(2024, 1, 10 + 5 * k as u32).unwrap_or_default(), path });
    }
    let composite = dir.join("assess-composite.tif");
    let t = Instant::now();
    crate::preprocess::composite::write_composite(&scenes, crate::project::CompositeMethod::Median, &composite, 512, progress)?;
    let composite_secs = t.elapsed().as_secs_f64();
    let input_bytes = [&inputs.pre, &inputs.real, &inputs.synthetic, &radar, &scenes[0].path, &scenes[1].path].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let generate_secs = start.elapsed().as_secs_f64() - composite_secs;
    // One block in four held out, in a fixed pattern.
    let block = 256;
    let blocks: Vec<Vec<bool>> = (0..size.div_ceil(block)).map(|by| (0..size.div_ceil(block)).map(|bx| (bx + 2 * by) % 4 == 0).collect()).collect();
    let held_pixels = (0..size).map(|y| (0..size).filter(|x| blocks[y / block][x / block]).count()).sum();
    let held = HeldOut { description: "one 256 px block in four".into(), pixels: held_pixels, block, blocks };
    let plain = AssessConfig { held_out: Some(held), ..Default::default() };
    let reset_plain = reset_peak_rss();
    let t = Instant::now();
    let report = assess_files(&inputs, &dir.join("assess-out"), &plain, progress)?;
    let assess_secs = t.elapsed().as_secs_f64();
    let plain_rss_mib = reset_plain.then(peak_rss_mib);
    progress.check_cancelled()?;
    let reset = reset_peak_rss();
    let t = Instant::now();
    let with = AssessConfig { baselines: Some(BaselineInputs { inputs_vrt: radar, composite: Some(composite.clone()) }), ..plain };
    let with_report = assess_files(&inputs, &dir.join("assess-out"), &with, progress)?;
    let with_baselines_secs = t.elapsed().as_secs_f64();
    let peak_rss_mib = reset.then(peak_rss_mib);
    progress.check_cancelled()?;
    let gapfill = crate::assess::gapfill::GapFillRequest { image: dir.join("assess-out").join("gapfilled.tif"), source: dir.join("assess-out").join("gapfilled_source.tif"), composite_t1: Some(composite), t1_days: 19_730 };
    let t = Instant::now();
    assess_files(&AssessInputs { gapfill: Some(gapfill), ..inputs.clone() }, &dir.join("assess-out"), &with, progress)?;
    let with_gapfill_secs = t.elapsed().as_secs_f64();
    let baseline_kappas = with_report.baselines.iter().flat_map(|b| b.rows.iter().map(|r| (r.id.clone(), r.burned.kappa))).collect();
    Ok(AssessBench { size, inputs, input_bytes, generate_secs, assess_secs, with_baselines_secs, baselines_secs: with_report.baselines.as_ref().map_or(f64::NAN, |b| b.seconds), composite_secs, with_gapfill_secs, plain_rss_mib, peak_rss_mib, kappa: report.burned.kappa, baseline_kappas })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::{BandStack, WriteOptions, write_raster};

    /// A label of zeros and a "synthetic" image off by 2 near the borders between 32 px windows
    /// every 24 px and by 1 elsewhere: the ratio is 2; one window over the grid has no border.
    #[test]
    fn the_seam_check_finds_a_seam_and_says_when_there_is_no_border() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h, n, stride) = (80, 56, 32, 24);
        let starts = |len: usize| crate::model::infer::window_starts(len, n, stride);
        let near = |i: usize, len: usize| starts(len).iter().flat_map(|s| [*s, s + n]).any(|b| b > 0 && b < len && i + SEAM_BAND >= b && i < b + SEAM_BAND);
        let stack = |f: &dyn Fn(usize, usize) -> f32| BandStack {
            width: w,
            height: h,
            bands: vec![(0..w * h).map(|i| f(i % w, i / w)).collect(); 2],
            valid: vec![true; w * h],
            geo_transform: [500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0],
            crs_wkt: String::new(),
            descriptions: vec!["B04".into(), "B08".into()],
        };
        let (syn, lab) = (dir.path().join("syn.tif"), dir.path().join("lab.tif"));
        write_raster(&syn, &stack(&|x, y| if near(x, w) || near(y, h) { 2.0 } else { 1.0 }), &WriteOptions::default()).unwrap();
        write_raster(&lab, &stack(&|_, _| 0.0), &WriteOptions::default()).unwrap();
        let quiet = Progress::silent("seams");
        let c = seam_check(&syn, &lab, n, stride, &quiet).unwrap();
        assert!(c.border_pixels > 0 && c.inside_pixels > 0, "{c:?}");
        assert_eq!((c.border_mae, c.inside_mae, c.ratio()), (2.0, 1.0, Some(2.0)));
        // Windows as large as the grid: no border between windows, so no ratio.
        let c = seam_check(&syn, &lab, 100, 100, &quiet).unwrap();
        assert_eq!((c.border_pixels, c.inside_pixels, c.ratio()), (0, (w * h) as u64, None));
    }
}
