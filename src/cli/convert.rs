//! From command-line arguments to the library's typed settings: `TryFrom<&XArgs>` / `From`
//! for each command's arguments and value enums, and a few functions where the conversion
//! needs the open project (its bands, its provider). A malformed value is refused here with
//! an error that names its flag (`--thresholds: ...`).
//!
//! This module must not run stages, print, or decide what the library decides (presets,
//! limits, resume policy, defaults): it only maps names onto the library's own constructors.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use super::args::*;
use crate::aoi::{Aoi, AoiLimits};
use crate::indices::severity::SeverityScheme;
use crate::assess::{AssessConfig, AssessInputs, NirBand};
use crate::catalog::stage::SearchConfig;
use crate::catalog::{ProviderConfig, ProviderKind};
use crate::dataset::DatasetConfig;
use crate::dataset::normalize::{S1Method, S2Method};
use crate::fetch::FetchOptions;
use crate::layers::{Composite, StretchKind};
use crate::model::DeviceChoice;
use crate::model::config::{ModelConfig, TrainConfig};
use crate::model::infer::InferOptions;
use crate::model::train::TrainOptions;
use crate::pipeline::PipelineSettings;
use crate::preprocess::s1::{Coefficient, SpeckleFilter};
use crate::preprocess::snap::SnapGraph;
use crate::preprocess::openeo::OpenEoSettings;
use crate::preprocess::stage::{Engine, PreprocessConfig};
use crate::project::{DateRange, NewProject, Project, Provider};

/// A library error as the message of a flag: `--flag: message` (the library's own field name
/// replaced by the flag's).
fn flag_error(flag: &str, error: crate::Error) -> anyhow::Error {
    match error {
        crate::Error::InvalidValue { message, .. } => anyhow!("{flag}: {message}"),
        other => anyhow!("{flag}: {}", crate::error_chain(&other)),
    }
}

// ---- value enums ----

impl From<DeviceArg> for DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Gpu => DeviceChoice::Gpu,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
            DeviceArg::Rocm => DeviceChoice::Rocm,
        }
    }
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

impl From<ProviderKindArg> for ProviderKind {
    fn from(k: ProviderKindArg) -> ProviderKind {
        match k {
            ProviderKindArg::EarthSearch => ProviderKind::EarthSearch,
            ProviderKindArg::Pc => ProviderKind::PlanetaryComputer,
            ProviderKindArg::Cdse => ProviderKind::Cdse,
        }
    }
}

impl From<S2NormArg> for S2Method {
    fn from(m: S2NormArg) -> S2Method {
        match m {
            S2NormArg::BatchMinMax => S2Method::BatchMinMax,
            S2NormArg::TileMinMax => S2Method::TileMinMax,
            S2NormArg::Percentile => S2Method::Percentile,
            S2NormArg::TrainMinMax => S2Method::TrainMinMax,
            S2NormArg::Yearly => S2Method::Yearly,
        }
    }
}

impl From<S1NormArg> for S1Method {
    fn from(m: S1NormArg) -> S1Method {
        match m {
            S1NormArg::Standardize => S1Method::Standardize,
            S1NormArg::Percentile => S1Method::Percentile,
        }
    }
}

impl From<SpeckleArg> for SpeckleFilter {
    fn from(s: SpeckleArg) -> SpeckleFilter {
        match s {
            SpeckleArg::None => SpeckleFilter::None,
            SpeckleArg::Boxcar => SpeckleFilter::boxcar(),
            SpeckleArg::Lee => SpeckleFilter::lee(),
            SpeckleArg::RefinedLee => SpeckleFilter::refined_lee(),
        }
    }
}

impl From<SnapGraphArg> for SnapGraph {
    fn from(g: SnapGraphArg) -> SnapGraph {
        match g {
            SnapGraphArg::V1 => SnapGraph::Sentinel1V1,
            SnapGraphArg::V2 => SnapGraph::Sentinel1V2,
            SnapGraphArg::V3 => SnapGraph::Sentinel1V3,
        }
    }
}

impl From<CoefficientArg> for Coefficient {
    fn from(c: CoefficientArg) -> Coefficient {
        match c {
            CoefficientArg::Sigma0 => Coefficient::Sigma0,
            CoefficientArg::Beta0 => Coefficient::Beta0,
            CoefficientArg::Gamma0 => Coefficient::Gamma0,
        }
    }
}

impl From<NirArg> for NirBand {
    fn from(n: NirArg) -> NirBand {
        match n {
            NirArg::B08 => NirBand::B08,
            NirArg::B8a => NirBand::B8A,
        }
    }
}

// ---- init ----

/// A `FROM/TO` date range of flag `--{field}`.
fn parse_range(field: &str, text: &str) -> Result<DateRange> {
    text.parse::<DateRange>().map_err(|e| anyhow!("--{field}: {e}"))
}

/// `s2cr init`'s arguments as a new project. The AOI is read without an area limit: the
/// limit (`--max-area-km2`) is [`Project::init`]'s to check, with its other checks.
impl TryFrom<&InitArgs> for NewProject {
    type Error = anyhow::Error;
    fn try_from(args: &InitArgs) -> Result<NewProject> {
        let t0 = parse_range("t0", &args.t0)?;
        let t1 = parse_range("t1", &args.t1)?;
        let aoi = Aoi::load(&args.aoi, &AoiLimits { max_area_km2: f64::INFINITY })?;
        Ok(NewProject {
            name: args.name.clone(),
            provider: args.provider.into(),
            catalog: args.catalog.clone(),
            max_cloud_percent: args.max_cloud,
            pixel_size_m: args.pixel_size,
            limits: AoiLimits { max_area_km2: args.max_area_km2 },
            ..NewProject::new(args.dir.clone(), aoi, t0, t1)
        })
    }
}

/// An error of [`Project::init`] with the library's field named as `s2cr init`'s flag
/// (`catalog` as `--catalog`, ...); other errors as they are.
pub fn init_error(error: crate::Error) -> anyhow::Error {
    let flag = match &error {
        crate::Error::InvalidValue { field, .. } => match field.as_str() {
            "t0" => Some("--t0"),
            "t1" => Some("--t1"),
            "max_cloud_percent" => Some("--max-cloud"),
            "catalog" => Some("--catalog"),
            _ => None,
        },
        _ => None,
    };
    match flag {
        Some(flag) => flag_error(flag, error),
        None => error.into(),
    }
}

// ---- search, fetch, preprocess, dataset ----

/// `s2cr search`'s arguments over the project's provider (or the `--provider-kind`'s).
pub fn search_config(args: &SearchArgs, project: &Project) -> Result<SearchConfig> {
    let mut provider = match args.provider_kind {
        Some(k) => ProviderConfig::default_for(k.into()),
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
    let mut cfg = SearchConfig::new(provider);
    cfg.scene_max_cloud_percent = args.scene_max_cloud;
    cfg.max_gap_days = args.max_gap_days;
    cfg.measure_aoi_cover = !args.skip_aoi_cloud;
    Ok(cfg)
}

impl From<&FetchArgs> for FetchOptions {
    fn from(args: &FetchArgs) -> FetchOptions {
        FetchOptions {
            attempts: args.attempts,
            timeout_secs: args.timeout,
            margin_m: args.margin_m,
            parallel: args.parallel,
            ..FetchOptions::default()
        }
    }
}

impl From<&PreprocessArgs> for PreprocessConfig {
    fn from(args: &PreprocessArgs) -> PreprocessConfig {
        PreprocessConfig {
            mask: crate::preprocess::s2::SclMaskOptions { snow: args.mask_snow, buffer_px: args.mask_buffer, haze_aot: args.mask_haze_aot },
            speckle: args.speckle.into(),
            block_rows: args.block_rows,
            engine: match args.engine {
                EngineArg::Native => Engine::Native,
                EngineArg::Snap => Engine::Snap { s1_graph: args.snap_graph.into(), gpt: args.gpt.clone(), products: args.products.clone() },
                EngineArg::Openeo => Engine::Openeo,
            },
            openeo: args.openeo_backend.as_deref().map(|url| {
                let settings = OpenEoSettings::new(url);
                OpenEoSettings { s1_coefficient: args.s1_coefficient.clone().unwrap_or(settings.s1_coefficient.clone()), ..settings }
            }),
            grd_coefficient: args.grd_coefficient.into(),
            ..PreprocessConfig::default()
        }
    }
}

/// `s2cr dataset`'s arguments; the input presets take the project's bands.
pub fn dataset_config(args: &DatasetArgs, project: &Project) -> DatasetConfig {
    let bands = &project.config.bands;
    DatasetConfig {
        inputs: crate::dataset::input_channels(&args.inputs, &bands.s1, &bands.s2, args.mask_channel),
        outputs: args.outputs.clone(),
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
        s2_method: args.s2_norm.into(),
        s1_method: args.s1_norm.into(),
        yearly_range: args.yearly.clone(),
    }
}

// ---- train, infer ----

/// `--model` and `--train` files, read; the rest of the settings are the defaults, so the
/// project's own files and pix2pix's defaults apply as in `s2cr run`.
impl TryFrom<&TrainArgs> for PipelineSettings {
    type Error = anyhow::Error;
    fn try_from(args: &TrainArgs) -> Result<PipelineSettings> {
        Ok(PipelineSettings {
            run: args.run.clone(),
            model: args.model.as_deref().map(ModelConfig::load).transpose()?,
            train: args.train_config.as_deref().map(TrainConfig::load).transpose()?,
            device: args.device.into(),
            ..PipelineSettings::default()
        })
    }
}

/// `s2cr train`'s options: the configurations `s2cr run` would use, with `--max-steps` and
/// `--batch-size` over them. The library checks the values and decides how to resume.
pub fn train_options(args: &TrainArgs, project: &Project) -> Result<TrainOptions> {
    let settings = PipelineSettings::try_from(args)?;
    let model = settings.model_config(project)?;
    let mut train = settings.train_config(project)?;
    if let Some(n) = args.max_steps {
        train.max_steps = n;
    }
    if let Some(n) = args.batch_size {
        train.batch_size = n;
    }
    if let Some(from) = &args.init_from {
        // Relative to where the command runs (train.yaml's are relative to the project).
        train.init_from = Some(std::path::absolute(from).map_err(|e| anyhow::anyhow!("--init-from {}: {e}", from.display()))?);
    }
    if args.adapt_channels {
        train.adapt_channels = true;
    }
    Ok(TrainOptions { run: args.run.clone(), model, train, device: args.device.into(), resume: args.resume })
}

impl From<&InferArgs> for InferOptions {
    fn from(args: &InferArgs) -> InferOptions {
        InferOptions { run: args.run.clone(), device: args.device.into(), overlap: args.overlap, batch_size: args.batch_size, samples: args.samples, burned_dnbr: args.burned_dnbr }
    }
}

// ---- assess ----

impl TryFrom<&AssessArgs> for AssessConfig {
    type Error = anyhow::Error;
    fn try_from(args: &AssessArgs) -> Result<AssessConfig> {
        let mut severity_classes = severity_scheme(&args.classes)?;
        if let Some(t) = &args.thresholds {
            severity_classes = severity_classes.with_bounds(t).map_err(|m| anyhow!("--thresholds: {m}"))?;
        }
        if let Some(b) = &args.burned_from {
            severity_classes.burned_from = b.clone();
            severity_classes.validate().map_err(|m| anyhow!("--burned-from: {m}"))?;
        }
        let mut dnbr_offset = if args.no_offset { crate::assess::offset::DnbrOffset::off() } else { crate::assess::offset::DnbrOffset::default() };
        if let Some(ring) = &args.offset_ring {
            let [inner, outer] = ring.as_slice() else {
                bail!("--offset-ring: give the ring's inner and outer distance in metres, e.g. 100,1000 (got {} numbers)", ring.len());
            };
            (dnbr_offset.ring_inner_m, dnbr_offset.ring_outer_m) = (*inner, *outer);
            dnbr_offset.validate().map_err(|m| anyhow!("--offset-ring: {m}"))?;
        }
        dnbr_offset.polygon = args.offset_polygon.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
        let perimeter_cleaning = crate::assess::perimeters::PerimeterCleaning { majority: args.majority, min_area_ha: args.min_area_ha, fill_holes_ha: args.fill_holes_ha };
        perimeter_cleaning.validate().map_err(|m| anyhow!("--min-area-ha / --fill-holes-ha: {m}"))?;
        let plots = args.plots.as_ref().map(|p| crate::assess::plots::FieldPlots { file: std::path::absolute(p).unwrap_or_else(|_| p.clone()), field: args.plots_field.clone(), classify: args.plots_classes });
        Ok(AssessConfig {
            plots,
            dnbr_offset,
            perimeter_cleaning,
            band_order: args.band_order.as_ref().map(|v| v.iter().map(|b| b.trim().to_ascii_uppercase()).collect()),
            scale: args.scale,
            nir: args.nir.into(),
            severity_classes,
            data_range: args.data_range,
            simulated_burn: args.simulated_burn.clone(),
            perimeter: args.perimeter.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            ..AssessConfig::default()
        })
    }
}

/// `--classes`: a preset's name, or a YAML or JSON file holding a scheme.
fn severity_scheme(text: &str) -> Result<SeverityScheme> {
    if let Some(s) = SeverityScheme::preset(text) {
        return Ok(s);
    }
    let path = std::path::Path::new(text);
    if !path.is_file() {
        bail!("--classes {text}: neither a preset ({}) nor a file", SeverityScheme::PRESETS.join(", "));
    }
    let bytes = std::fs::read(path).map_err(|e| anyhow!("--classes {}: {e}", path.display()))?;
    // YAML reads JSON too.
    serde_norway::from_slice(&bytes).map_err(|e| anyhow!("--classes {}: {e}", path.display()))
}

/// The images `--pre`, `--real` and `--synthetic` name (absolute, each checked to exist), or
/// `None` when none is given (the project's own images).
pub fn assess_inputs(args: &AssessArgs) -> Result<Option<AssessInputs>> {
    let (Some(pre), Some(real), Some(synthetic)) = (&args.pre, &args.real, &args.synthetic) else {
        return Ok(None);
    };
    let checked = |flag: &str, p: &Path| -> Result<PathBuf> {
        if !p.is_file() {
            bail!("{flag}: {} does not exist", p.display());
        }
        Ok(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
    };
    Ok(Some(AssessInputs { pre: checked("--pre", pre)?, real: checked("--real", real)?, synthetic: checked("--synthetic", synthetic)?, ..Default::default() }))
}

// ---- export ----

/// How `s2cr export` draws an optical layer as PNG.
#[derive(Debug, Clone)]
pub struct ExportStyle {
    pub composite: Composite,
    pub stretch: StretchKind,
    pub gamma: f32,
}

impl TryFrom<&ExportArgs> for ExportStyle {
    type Error = anyhow::Error;
    fn try_from(args: &ExportArgs) -> Result<ExportStyle> {
        Ok(ExportStyle {
            composite: Composite::parse(&args.composite).map_err(|e| flag_error("--composite", e))?,
            stretch: parse_stretch(&args.stretch)?,
            gamma: args.gamma,
        })
    }
}

/// `--stretch`: `minmax`, or two percentiles like `2-98`.
pub fn parse_stretch(text: &str) -> Result<StretchKind> {
    if text.eq_ignore_ascii_case("minmax") {
        return Ok(StretchKind::MinMax);
    }
    let parsed = text.split_once('-').and_then(|(a, b)| Some((a.trim().parse::<f32>().ok()?, b.trim().parse::<f32>().ok()?)));
    match parsed {
        Some((lo, hi)) if (0.0..hi).contains(&lo) && hi <= 100.0 => Ok(StretchKind::Percentile(lo, hi)),
        _ => bail!("--stretch {text:?}: give minmax or two percentiles like 2-98"),
    }
}

#[cfg(feature = "gui")]
impl From<super::args::RendererArg> for crate::gui::RendererChoice {
    fn from(r: super::args::RendererArg) -> Self {
        use super::args::RendererArg;
        match r {
            RendererArg::Auto => crate::gui::RendererChoice::Auto,
            RendererArg::Wgpu => crate::gui::RendererChoice::Wgpu,
            RendererArg::Glow => crate::gui::RendererChoice::Glow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("s2cr").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn every_run_flag_refuses_a_path() {
        for command in ["train", "infer", "assess", "export"] {
            for bad in ["../../x", "a/b"] {
                let err = Cli::try_parse_from(["s2cr", command, "--run", bad]).unwrap_err().to_string();
                assert!(err.contains("a run name uses letters, digits"), "{command} {bad}: {err}");
            }
        }
        let Some(Command::Train(t)) = parse(&["train", "--run", "r-1.b"]).command else { panic!("not train") };
        assert_eq!(t.run.as_str(), "r-1.b");
    }

    #[test]
    fn presets_map_onto_the_library() {
        let Some(Command::Preprocess(p)) = parse(&["preprocess", "--speckle", "lee"]).command else { panic!("not preprocess") };
        assert_eq!(PreprocessConfig::from(&p).speckle, SpeckleFilter::Lee { size: 7, looks: 4.0 });
        assert!(Cli::try_parse_from(["s2cr", "train", "--batch-size", "0"]).is_err(), "a batch of 0 is refused, not clamped");
        let Some(Command::Train(t)) = parse(&["train", "--batch-size", "2", "--resume"]).command else { panic!("not train") };
        let settings = PipelineSettings::try_from(&t).unwrap();
        assert!(settings.model.is_none() && settings.train.is_none());
        let s1 = vec!["VV".to_string(), "VH".to_string()];
        let s2 = vec!["B04".to_string(), "SCL".to_string()];
        assert_eq!(crate::dataset::input_channels("sar-only", &s1, &s2, true), ["S1_t1:VV", "S1_t1:VH", "mask_t0"]);
        assert_eq!(crate::dataset::input_channels("S2_t0:B04, mask_t0", &s1, &s2, true), ["S2_t0:B04", "mask_t0"]);
    }

    #[test]
    fn bad_values_name_their_flag() {
        let Some(Command::Assess(a)) = parse(&["assess", "--thresholds", "0.3,0.2,0.1,0.27,0.44,0.66"]).command else { panic!("not assess") };
        assert!(AssessConfig::try_from(&a).unwrap_err().to_string().starts_with("--thresholds: "));
        let Some(Command::Assess(a)) = parse(&["assess", "--thresholds", "0.1,0.2"]).command else { panic!("not assess") };
        assert!(AssessConfig::try_from(&a).unwrap_err().to_string().contains("give 6 increasing bounds on the dNBR"));
        // Severity classes: a preset, its bounds, the burned class by name; a bad name or file.
        let classes = |args: &[&str]| {
            let Some(Command::Assess(a)) = parse(args).command else { panic!("not assess") };
            AssessConfig::try_from(&a).map(|c| c.severity_classes).map_err(|e| e.to_string())
        };
        assert_eq!(classes(&["assess"]).unwrap(), SeverityScheme::usgs());
        let barc = classes(&["assess", "--classes", "barc4", "--thresholds", "70,120,190", "--burned-from", "moderate"]).unwrap();
        assert_eq!((barc.name.as_str(), barc.bounds(), barc.burned_code()), ("BARC4", vec![70.0, 120.0, 190.0], 3));
        assert!(classes(&["assess", "--burned-from", "scorched"]).unwrap_err().starts_with("--burned-from: burned_from \"scorched\""));
        assert!(classes(&["assess", "--classes", "mtbs"]).unwrap_err().contains("neither a preset (usgs, barc4) nor a file"));
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("classes.yaml");
        std::fs::write(&own, "classes:\n  - {code: 1, name: unburned, color: '#00aa00'}\n  - {code: 2, name: burned, color: '#aa0000', from: 0.2}\nburned_from: burned\n").unwrap();
        let s = classes(&["assess", "--classes", own.to_str().unwrap()]).unwrap();
        assert_eq!((s.name.as_str(), s.classify(0.25)), ("own", 2));
        std::fs::write(&own, "classes:\n  - {code: 1, name: unburned, color: '#00aa00'}\nburned_from: burned\n").unwrap();
        let e = classes(&["assess", "--classes", own.to_str().unwrap()]).unwrap_err();
        assert!(e.contains("classes.yaml") && e.contains("at least two classes"), "{e}");
        // The dNBR offset: on by default, off, another ring (checked), a polygon.
        let offset = |args: &[&str]| {
            let Some(Command::Assess(a)) = parse(args).command else { panic!("not assess") };
            AssessConfig::try_from(&a).map(|c| c.dnbr_offset).map_err(|e| e.to_string())
        };
        assert_eq!(offset(&["assess"]).unwrap(), crate::assess::offset::DnbrOffset::default());
        assert!(!offset(&["assess", "--no-offset"]).unwrap().enabled);
        let ring = offset(&["assess", "--offset-ring", "50,400"]).unwrap();
        assert_eq!((ring.enabled, ring.ring_inner_m, ring.ring_outer_m), (true, 50.0, 400.0));
        assert!(offset(&["assess", "--offset-ring", "400,50"]).unwrap_err().starts_with("--offset-ring: "));
        assert!(offset(&["assess", "--offset-ring", "400"]).unwrap_err().contains("(got 1 numbers)"));
        assert!(offset(&["assess", "--offset-polygon", "u.gpkg"]).unwrap().polygon.is_some_and(|p| p.is_absolute() && p.ends_with("u.gpkg")));
        assert!(Cli::try_parse_from(["s2cr", "assess", "--no-offset", "--offset-ring", "1,2"]).is_err());
        assert!(parse_stretch("98-2").unwrap_err().to_string().starts_with("--stretch"));
        assert_eq!(parse_stretch("2-98").unwrap(), StretchKind::Percentile(2.0, 98.0));
        let Some(Command::Export(e)) = parse(&["export", "--list", "--composite", "B01,B02"]).command else { panic!("not export") };
        assert!(ExportStyle::try_from(&e).unwrap_err().to_string().starts_with("--composite: "));
        assert_eq!(init_error(crate::Error::invalid("catalog", "x")).to_string(), "--catalog: x");
        assert_eq!(init_error(crate::Error::invalid("name", "x")).to_string(), "name: x");
        // --out assesses files: all three images are needed.
        assert!(Cli::try_parse_from(["s2cr", "assess", "--out", "x", "--pre", "a.tif"]).is_err());
    }
}

