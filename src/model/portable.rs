//! Models in and out of a project. `s2cr model import` makes a run from a generator file: a
//! pix2pix `latest_net_G.pth`, a safetensors file with pix2pix's keys, or what `s2cr model
//! export` wrote. `s2cr model export` writes a run's generator as safetensors with pix2pix's keys
//! (PyTorch's `UnetGenerator` loads it with `load_state_dict(strict=True)`), with a sidecar
//! `<name>.json` ([`ModelSidecar`]) saying what the weights cannot: the channels in order, the
//! normalization the inputs need, and where the model came from.
//!
//! An imported run is an ordinary run with one checkpoint (step 0, the generator only): `s2cr
//! infer` and `s2cr assess` use it as they use a trained one. It is tied to the project's
//! dataset: the channels the file's model takes must be the dataset's, in the same order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::ModelConfig;
use super::generator::Generator;
use super::card::{Imported, Init};
use super::pix2pix::{self, KeyStyle};
use super::checkpoint::{CHECKPOINT_FORMAT, Checkpoint, CheckpointFiles};
use super::{infer::load_generator, output_activation};
use crate::dataset::normalize::{DataRange, Normalization};
use crate::dataset::{DatasetSummary, TileIndex};
use crate::error::{Error, Result};
use crate::fsutil::{load_json, save_json, sha256_file, temp_sibling, write_atomic};
use crate::project::{Project, RunName};

/// The format name a sidecar carries.
pub const SIDECAR_FORMAT: &str = "s2cr-generator/1";

/// What travels beside exported weights (`G.safetensors` -> `G.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSidecar {
    pub format: String,
    pub model: ModelConfig,
    /// Input channels in tensor order (`S1_t0:VV`, ...).
    pub inputs: Vec<String>,
    /// Output bands in tensor order.
    pub outputs: Vec<String>,
    pub normalization: Normalization,
    /// The data range the model takes and gives: `unit` ([0, 1], s2cr's) or `symmetric`
    /// ([-1, 1], pix2pix's). Sidecars written before it existed: the normalization's.
    #[serde(default)]
    pub range: Option<DataRange>,
    /// SHA-256 of the weights file.
    pub weights_sha256: String,
    /// Where the weights came from: project, run, step, or the file imported before.
    pub provenance: BTreeMap<String, String>,
}

/// `s2cr model import`'s settings.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub run: RunName,
    /// model.yaml given by the user (its keys are still checked against the file).
    pub model: Option<ModelConfig>,
    /// Dropout for the decoder blocks (not in a state dict; pix2pix trains with 0.5).
    pub dropout: f64,
    /// normalization.json for the inputs (default: the sidecar's, else the project's dataset).
    pub normalization: Option<PathBuf>,
    /// The file's input channels in order; `["dataset"]` means the dataset's order.
    pub inputs: Option<Vec<String>>,
    pub outputs: Option<Vec<String>>,
    /// The data range the model was trained on (default: the sidecar's; without one,
    /// symmetric, as pix2pix trains).
    pub range: Option<DataRange>,
}

#[derive(Debug, Clone)]
pub struct ImportReport {
    pub run: RunName,
    pub run_dir: PathBuf,
    pub model: ModelConfig,
    pub imported: Imported,
}

/// The sidecar path of a weights file: `G.safetensors` -> `G.json`.
pub fn sidecar_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

fn channel_check(what: &str, declared: &[String], dataset: &[String]) -> Result<()> {
    if declared == dataset {
        return Ok(());
    }
    let differ: Vec<String> = (0..declared.len().max(dataset.len()))
        .filter(|&i| declared.get(i) != dataset.get(i))
        .take(4)
        .map(|i| format!("#{}: model {} / dataset {}", i + 1, declared.get(i).map(String::as_str).unwrap_or("-"), dataset.get(i).map(String::as_str).unwrap_or("-")))
        .collect();
    Err(Error::invalid(
        what,
        format!("the model's channels ({}) are not the dataset's ({}): {}; rebuild the dataset with the model's channels (`s2cr dataset`), or import into a project that has them", declared.join(","), dataset.join(","), differ.join("; ")),
    ))
}

/// Makes run `opts.run` of `project` from a generator file.
pub fn import_run(project: &Project, file: &Path, opts: &ImportOptions) -> Result<ImportReport> {
    let run_dir = project.run_dir(&opts.run);
    if run_dir.exists() {
        return Err(Error::Project { path: run_dir, message: format!("run {} exists: choose another --run", opts.run) });
    }
    let summary: DatasetSummary = load_json(&project.dataset_json(), "run `s2cr dataset` first: an imported model works on the dataset's channels")?;
    let index = TileIndex::load(project)?;
    let sidecar_file = sidecar_path(file);
    let sidecar: Option<ModelSidecar> = if sidecar_file.is_file() && sidecar_file != file {
        let s: ModelSidecar = load_json(&sidecar_file, "remove it or fix it")?;
        if s.format != SIDECAR_FORMAT {
            return Err(Error::Project { path: sidecar_file, message: format!("format {:?} is not {SIDECAR_FORMAT:?}: written by another version of s2cr?", s.format) });
        }
        Some(s)
    } else {
        None
    };
    let sha256 = sha256_file(file)?;
    if let Some(s) = &sidecar
        && s.weights_sha256 != sha256
    {
        return Err(Error::Project { path: file.to_path_buf(), message: format!("its checksum {sha256} is not the one its sidecar {} records ({}): the file changed or is not the one exported", sidecar_file.display(), s.weights_sha256) });
    }
    let weights = pix2pix::read_weights(file)?;
    let style = KeyStyle::of(&weights);
    let from_keys = match style {
        KeyStyle::Pix2pix => pix2pix::read_config(&weights, opts.dropout)?,
        KeyStyle::S2cr if opts.model.is_none() && sidecar.is_none() => {
            return Err(Error::Project {
                path: file.to_path_buf(),
                message: format!(
                    "has s2cr's own keys, which do not say the model's last activation or dropout: keep its sidecar {} beside it (as `s2cr model export --keys s2cr` writes it), or give --model with its model.yaml",
                    sidecar_file.display()
                ),
            });
        }
        KeyStyle::S2cr => pix2pix::read_config_s2cr(&weights, opts.dropout)?,
    };
    let (mut cfg, config_from) = match (&opts.model, &sidecar) {
        (Some(m), _) => (m.clone(), "model.yaml"),
        (None, Some(s)) => (s.model.clone(), "sidecar"),
        (None, None) => (from_keys.clone(), "keys"),
    };
    for (given, read) in [(&mut cfg.input_channels, from_keys.input_channels), (&mut cfg.output_channels, from_keys.output_channels)] {
        if *given == 0 {
            *given = read;
        }
    }
    cfg.check("model settings")?;
    // Channels: stated by the user or the sidecar, and the dataset's.
    let dataset_inputs: Vec<String> = summary.inputs.iter().map(|c| c.name.clone()).collect();
    let dataset_outputs: Vec<String> = summary.outputs.iter().map(|c| c.band.clone()).collect();
    let (inputs, outputs, channels_from) = match (&opts.inputs, &opts.outputs, &sidecar) {
        (Some(i), Some(o), _) => {
            let pick = |given: &Vec<String>, dataset: &Vec<String>| if given.len() == 1 && given[0] == "dataset" { dataset.clone() } else { given.clone() };
            (pick(i, &dataset_inputs), pick(o, &dataset_outputs), "--inputs/--outputs")
        }
        (None, None, Some(s)) => (s.inputs.clone(), s.outputs.clone(), "sidecar"),
        _ => {
            return Err(Error::invalid(
                "--inputs/--outputs",
                format!(
                    "{} does not say what its channels are: give both, comma-separated in the model's order (this dataset's: --inputs {} --outputs {}), or `dataset` for each to state that the model takes the dataset's order",
                    file.display(),
                    dataset_inputs.join(","),
                    dataset_outputs.join(",")
                ),
            ));
        }
    };
    if inputs.len() != cfg.input_channels || outputs.len() != cfg.output_channels {
        return Err(Error::invalid(
            "--inputs/--outputs",
            format!(
                "{} input and {} output channels are named ({channels_from}), but the weights take {} and give {}: the model was trained on other channels than these",
                inputs.len(),
                outputs.len(),
                cfg.input_channels,
                cfg.output_channels
            ),
        ));
    }
    channel_check("--inputs", &inputs, &dataset_inputs)?;
    channel_check("--outputs", &outputs, &dataset_outputs)?;
    let cfg = super::resolve(&cfg, inputs.len(), outputs.len(), index.size)?;
    // Normalization.
    let (normalization, normalization_from): (Normalization, String) = match (&opts.normalization, &sidecar) {
        (Some(p), _) => (load_json(p, "give a normalization.json as `s2cr dataset` writes it")?, p.display().to_string()),
        (None, Some(s)) => (s.normalization.clone(), "sidecar".into()),
        (None, None) => (crate::dataset::loader::load_normalization(project)?, "the project's dataset".into()),
    };
    // The range: stated, the sidecar's, else pix2pix's [-1, 1] (a file without a sidecar is
    // pix2pix's own: s2cr keys without one were refused above).
    let (range, range_from) = match (opts.range, &sidecar) {
        (Some(r), _) => (r, "--range"),
        (None, Some(s)) => (s.range.unwrap_or(s.normalization.range), "sidecar"),
        (None, None) => (DataRange::Symmetric, "pix2pix's default"),
    };
    let mut normalization = normalization;
    normalization.range = range;
    let norm_inputs: Vec<String> = normalization.inputs.iter().map(|c| c.name.clone()).collect();
    let norm_outputs: Vec<String> = normalization.outputs.iter().map(|c| c.name.clone()).collect();
    if norm_inputs != dataset_inputs || norm_outputs.len() != dataset_outputs.len() {
        return Err(Error::invalid(
            "normalization",
            format!("{normalization_from} normalizes {} -> {}, but the dataset's channels are {} -> {}: give the normalization the model was trained with for these channels", norm_inputs.join(","), norm_outputs.join(","), dataset_inputs.join(","), dataset_outputs.join(",")),
        ));
    }
    // The weights, every key and shape checked.
    let dev = Device::flex();
    let g = pix2pix::build_as(&cfg, output_activation(&cfg, &normalization), &weights, style, &dev)?;
    let imported = Imported {
        file: std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()),
        sha256,
        format: if file.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors")) { "safetensors".into() } else { "pth".into() },
        config_from: config_from.into(),
        channels_from: channels_from.into(),
        normalization_from,
        range: range.name().into(),
        range_from: range_from.into(),
        provenance: sidecar.map(|s| s.provenance).unwrap_or_default(),
        imported_at: chrono::Utc::now().to_rfc3339(),
        s2cr_version: env!("CARGO_PKG_VERSION").into(),
    };
    // Everything into a temporary folder, renamed into place last: an interrupted import
    // leaves no run behind.
    let tmp = temp_sibling(&run_dir);
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> Result<()> {
        let inside = |p: PathBuf| tmp.join(p.strip_prefix(&run_dir).unwrap_or(&p));
        let cp = Checkpoint { step: 0, epoch: 0, batch_in_epoch: 0, dir: PathBuf::from("checkpoints/step-0"), format: CHECKPOINT_FORMAT, device: None };
        let cp_dir = tmp.join(&cp.dir);
        std::fs::create_dir_all(&cp_dir).map_err(Error::io(&cp_dir, "creating the run folder"))?;
        let f = CheckpointFiles::in_dir(&cp_dir);
        g.clone().save_file(&f.generator).map_err(Error::checkpoint(&f.generator, "saving the generator"))?;
        write_atomic(&inside(project.run_model_yaml(&opts.run)), cfg.to_yaml().as_bytes())?;
        save_json(&inside(project.run_normalization_json(&opts.run)), &normalization)?;
        for (src, dst) in [(project.dataset_json(), project.run_dataset_json(&opts.run)), (project.tiles_json(), project.run_tiles_json(&opts.run))] {
            let dst = inside(dst);
            std::fs::copy(&src, &dst).map_err(Error::io(&src, "copying into the run"))?;
        }
        save_json(&inside(project.run_imported_json(&opts.run)), &imported)?;
        save_json(&inside(project.checkpoint_json(&opts.run)), &cp)?;
        std::fs::rename(&tmp, &run_dir).map_err(Error::io(&run_dir, "moving the imported run into place"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result?;
    super::card::write_card(project, &opts.run)?;
    Ok(ImportReport { run: opts.run.clone(), run_dir, model: cfg, imported })
}

/// What `export_run` wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub weights: PathBuf,
    pub sidecar: PathBuf,
    /// The run's model card (markdown) beside the weights.
    pub card: PathBuf,
    pub parameters: usize,
    pub step: usize,
}

/// Writes run `run`'s generator to `out` (safetensors, pix2pix's keys) and its sidecar beside.
pub fn export_run(project: &Project, run: &RunName, out: &Path) -> Result<ExportReport> {
    export_run_as(project, run, out, KeyStyle::Pix2pix)
}

/// [`export_run`] with keys of `keys`. pix2pix's keys are refused for a generator that PyTorch's
/// `UnetGenerator` would load into a different network (another last activation, fewer than 5
/// levels, an instance norm with parameters), saying why: ours (`--keys s2cr`) fit any run.
pub fn export_run_as(project: &Project, run: &RunName, out: &Path, keys: KeyStyle) -> Result<ExportReport> {
    if out.extension().is_none_or(|e| !e.eq_ignore_ascii_case("safetensors")) {
        return Err(Error::invalid("--out", format!("{} should end in .safetensors", out.display())));
    }
    let dev = Device::flex();
    let (g, cfg, normalization, step) = load_generator(project, run, &dev)?;
    if keys == KeyStyle::Pix2pix
        && let Some(why) = pix2pix::pix2pix_mismatch(&cfg, output_activation(&cfg, &normalization))
    {
        return Err(Error::invalid(
            "--keys",
            format!("run {run} is not pix2pix's network: {why}. With pix2pix's keys, PyTorch's UnetGenerator would load these weights into a different network; export with --keys s2cr (read back by `s2cr model import`)"),
        ));
    }
    let summary: DatasetSummary = load_json(&project.run_dataset_json(run), "train the run again")?;
    let mut provenance = BTreeMap::from([
        ("project".to_string(), project.config.name.clone()),
        ("run".to_string(), run.to_string()),
        ("step".to_string(), step.to_string()),
        ("s2cr_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]);
    if let Ok(imp) = load_json::<Imported>(&project.run_imported_json(run), "") {
        provenance.insert("imported_from".into(), format!("{} (sha256 {})", imp.file.display(), imp.sha256));
    }
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string()), ("s2cr".to_string(), SIDECAR_FORMAT.to_string())]);
    let bytes = pix2pix::to_safetensors_as(&g, &cfg, &metadata, keys)?;
    write_atomic(out, &bytes)?;
    let sidecar = ModelSidecar {
        format: SIDECAR_FORMAT.into(),
        model: cfg,
        inputs: summary.inputs.iter().map(|c| c.name.clone()).collect(),
        outputs: summary.outputs.iter().map(|c| c.band.clone()).collect(),
        range: Some(normalization.range),
        normalization,
        weights_sha256: sha256_file(out)?,
        provenance,
    };
    let sidecar_file = sidecar_path(out);
    save_json(&sidecar_file, &sidecar)?;
    // The model card beside them, for people.
    let card = super::card::write_card(project, run)?;
    let card_beside = out.with_extension("md");
    std::fs::copy(&card.markdown, &card_beside).map_err(Error::io(&card_beside, "writing the model card beside the weights"))?;
    Ok(ExportReport { weights: out.to_path_buf(), sidecar: sidecar_file, card: card_beside, parameters: g.num_params(), step })
}

/// The data range the model at `from` (a run folder or a weights file) was trained on: a run's
/// normalization.json, a weights file's sidecar, else pix2pix's [-1, 1] for pix2pix's keys and
/// s2cr's [0, 1] for ours. A run started from it trains in the same range.
pub fn source_range(from: &Path) -> DataRange {
    if from.is_dir() {
        return load_json::<Normalization>(&from.join("normalization.json"), "").map(|n| n.range).unwrap_or_default();
    }
    if let Ok(s) = load_json::<ModelSidecar>(&sidecar_path(from), "") {
        return s.range.unwrap_or(s.normalization.range);
    }
    match pix2pix::read_weights(from).map(|w| KeyStyle::of(&w)) {
        Ok(KeyStyle::Pix2pix) => DataRange::Symmetric,
        _ => DataRange::Unit,
    }
}

/// The generator (and discriminator) of `from` (a run folder, or a weights file that `s2cr
/// model import` reads) into fresh networks of `cfg`: the architecture must be the same; where
/// the channels differ, `adapt` leaves the first layer (inputs) or the last one (outputs) fresh,
/// and without it that is an error. `activation` is the new run's last activation: a source
/// that ends in another is another network too (where the source says which it ends in).
pub fn init_networks(g: Generator, d: super::discriminator::Discriminator, cfg: &ModelConfig, from: &Path, adapt: bool, activation: super::generator::Activation) -> Result<(Generator, super::discriminator::Discriminator, Init)> {
    use super::discriminator::Discriminator;
    use burn::store::ModuleSnapshot;
    let cpu = Device::flex();
    let bad = |message: String| Error::Project { path: from.to_path_buf(), message };
    let mut sha256 = BTreeMap::new();
    let (src_g, src_cfg, src_d, kind, src_activation) = if from.is_dir() {
        let cp: Checkpoint = load_json(&from.join("checkpoint.json"), "give a run folder with a checkpoint (runs/<run>), or a weights file")?;
        let src_cfg = ModelConfig::load(&from.join("model.yaml"))?;
        let files = CheckpointFiles::in_dir(&from.join(&cp.dir));
        sha256.insert(files.generator.display().to_string(), sha256_file(&files.generator)?);
        let g = Generator::new(&src_cfg, super::generator::Activation::Identity, &cpu).try_load_file(&files.generator).map_err(Error::checkpoint(&files.generator, "loading the generator to start from"))?;
        let d = if files.discriminator.is_file() {
            sha256.insert(files.discriminator.display().to_string(), sha256_file(&files.discriminator)?);
            Some(Discriminator::new(&src_cfg, &cpu).try_load_file(&files.discriminator).map_err(Error::checkpoint(&files.discriminator, "loading the discriminator to start from"))?)
        } else {
            None
        };
        let src_activation = load_json::<Normalization>(&from.join("normalization.json"), "").ok().map(|n| output_activation(&src_cfg, &n));
        (g, src_cfg, d, "run", src_activation)
    } else {
        sha256.insert(from.display().to_string(), sha256_file(from)?);
        let w = pix2pix::read_weights(from)?;
        match KeyStyle::of(&w) {
            KeyStyle::Pix2pix => {
                let c = pix2pix::read_config(&w, cfg.dropout)?;
                let g = pix2pix::build(&c, super::generator::Activation::Tanh, &w, &cpu)?;
                (g, c, None, "weights", Some(super::generator::Activation::Tanh))
            }
            // Our keys: the structure from them, the last activation from the sidecar.
            KeyStyle::S2cr => {
                let c = pix2pix::read_config_s2cr(&w, cfg.dropout)?;
                let act = load_json::<ModelSidecar>(&sidecar_path(from), "").ok().map(|s| output_activation(&s.model, &s.normalization));
                let g = pix2pix::build_as(&c, act.unwrap_or(super::generator::Activation::Identity), &w, KeyStyle::S2cr, &cpu)?;
                (g, c, None, "weights", act)
            }
        }
    };
    let differ: Vec<String> = [("ngf", src_cfg.ngf, cfg.ngf), ("depth", src_cfg.depth, cfg.depth)]
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(n, a, b)| format!("{n} {a} there, {b} here"))
        .chain((src_cfg.norm != cfg.norm).then(|| format!("norm {:?} there, {:?} here", src_cfg.norm, cfg.norm)))
        .chain((src_cfg.upsample != cfg.upsample).then(|| format!("upsample {:?} there, {:?} here", src_cfg.upsample, cfg.upsample)))
        .chain(src_activation.filter(|a| *a != activation).map(|a| format!("last activation {a:?} there, {activation:?} here (model.yaml's output_activation)")))
        .collect();
    if !differ.is_empty() {
        return Err(bad(format!("is another architecture ({}): give this run the same model settings (--model with its model.yaml)", differ.join(", "))));
    }
    let mut skip_g = Vec::new();
    let mut skip_d = Vec::new();
    let last_layer = if cfg.upsample.is_transposed() { "up.0." } else { "up_resize.0." };
    for (what, there, here, layer) in [("input", src_cfg.input_channels, cfg.input_channels, "down.0."), ("output", src_cfg.output_channels, cfg.output_channels, last_layer)] {
        if there != here {
            if !adapt {
                return Err(bad(format!("takes {there} {what} channels where this dataset has {here}: use --adapt-channels to start the {} layer afresh and the rest from these weights", if what == "input" { "first" } else { "last" })));
            }
            skip_g.push(layer.to_string());
            // The layers whose channels follow the inputs' or the outputs' too.
            if cfg.linear {
                skip_g.push("linear.".to_string());
            }
            if what == "output" && !cfg.uncertainty.is_none() {
                skip_g.push("scale_head.".to_string());
            }
            skip_d.push("convs.0.".to_string());
        }
    }
    // Layers the source has not start afresh: an uncertainty head, a linear map.
    if src_cfg.uncertainty.is_none() && !cfg.uncertainty.is_none() {
        skip_g.push("scale_head.".to_string());
    }
    if !src_cfg.linear && cfg.linear {
        skip_g.push("linear.".to_string());
    }
    let keep = |t: &burn::store::burn_pack::Tensor, skip: &[String]| !skip.iter().any(|p| t.name.starts_with(p.as_str()));
    let tensors: Vec<_> = src_g.collect(None, None, false).into_iter().filter(|t| keep(t, &skip_g)).collect();
    let mut g = g;
    let r = g.apply(tensors, None, None, false);
    if !r.errors.is_empty() || r.missing.iter().any(|(m, _)| !skip_g.iter().any(|p| m.starts_with(p.as_str()))) {
        return Err(bad(format!("its generator does not fit this one: {:?} {:?}", r.errors.iter().take(3).map(|e| e.to_string()).collect::<Vec<_>>(), r.missing.iter().take(3).map(|m| &m.0).collect::<Vec<_>>())));
    }
    let same_d = src_cfg.ndf == cfg.ndf && src_cfg.discriminator_layers == cfg.discriminator_layers;
    let mut d = d;
    let mut d_loaded = false;
    if let Some(src_d) = src_d.filter(|_| same_d) {
        let tensors: Vec<_> = src_d.collect(None, None, false).into_iter().filter(|t| keep(t, &skip_d)).collect();
        let r = d.apply(tensors, None, None, false);
        if !r.errors.is_empty() {
            return Err(bad(format!("its discriminator does not fit this one: {:?}", r.errors.iter().take(3).map(|e| e.to_string()).collect::<Vec<_>>())));
        }
        d_loaded = true;
    }
    skip_g.sort();
    skip_g.dedup();
    let reinitialised = skip_g.iter().map(|p| format!("generator {}", p.trim_end_matches('.'))).chain(d_loaded.then(|| skip_d.first().map(|_| "discriminator convs.0".to_string())).flatten()).collect();
    Ok((g, d, Init { from: from.to_path_buf(), kind: kind.into(), sha256, reinitialised, discriminator_from_source: d_loaded }))
}

/// The format name of a run bundle's `bundle.json`.
pub const BUNDLE_FORMAT: &str = "s2cr-run-bundle/1";
/// The extension `s2cr model export --bundle` suggests.
pub const BUNDLE_EXTENSION: &str = "s2crmodel";

/// `bundle.json`, the first entry of a bundle: every other entry with its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: String,
    pub run: String,
    pub project: String,
    pub step: usize,
    /// Path inside the run folder -> SHA-256.
    pub files: BTreeMap<String, String>,
    pub s2cr_version: String,
    pub created_at: String,
}

/// The files of a run that travel in a bundle, relative to its folder: the latest checkpoint
/// (networks and optimizers, so the run can go on elsewhere), the settings and dataset records
/// it needs, its metrics and its card.
fn bundle_files(project: &Project, run: &RunName) -> Result<(Vec<PathBuf>, usize)> {
    let run_dir = project.run_dir(run);
    let cp = super::checkpoint::latest_checkpoint(project, run)?.ok_or_else(|| Error::Project { path: run_dir.clone(), message: format!("run {run} has no checkpoint: train or import it first") })?;
    let mut files = Vec::new();
    for p in [project.run_model_yaml(run), project.run_train_yaml(run), project.run_normalization_json(run), project.run_dataset_json(run), project.run_tiles_json(run), project.checkpoint_json(run), project.metrics_csv(run), project.run_imported_json(run), project.run_init_json(run)] {
        if p.is_file() {
            files.push(p);
        }
    }
    let cp_dir = run_dir.join(&cp.dir);
    let mut in_cp: Vec<PathBuf> = std::fs::read_dir(&cp_dir).map_err(Error::io(&cp_dir, "listing the checkpoint"))?.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    in_cp.sort();
    files.extend(in_cp);
    for name in ["model.md", "model.json", "model.stac.json"] {
        let p = run_dir.join(name);
        if p.is_file() {
            files.push(p);
        }
    }
    let rel = files.into_iter().map(|p| p.strip_prefix(&run_dir).map(Path::to_path_buf).unwrap_or(p)).collect();
    Ok((rel, cp.step))
}

/// Writes run `run` as one file (a tar archive: `bundle.json` with every file's SHA-256, then
/// the files), written whole or not at all.
pub fn export_bundle(project: &Project, run: &RunName, out: &Path) -> Result<BundleManifest> {
    // The card first, so the bundle carries a current one.
    super::card::write_card(project, run)?;
    let run_dir = project.run_dir(run);
    let (files, step) = bundle_files(project, run)?;
    let mut sums = BTreeMap::new();
    for f in &files {
        sums.insert(f.to_string_lossy().to_string(), sha256_file(&run_dir.join(f))?);
    }
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT.into(),
        run: run.to_string(),
        project: project.config.name.clone(),
        step,
        files: sums,
        s2cr_version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now().to_rfc3339(),
    };
    let tmp = temp_sibling(out);
    let result = (|| -> Result<()> {
        crate::fsutil::ensure_parent(out)?;
        let file = std::fs::File::create(&tmp).map_err(Error::io(&tmp, "creating the bundle"))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::invalid("bundle.json", e.to_string()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(json.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "bundle.json", json.as_slice()).map_err(Error::io(&tmp, "writing the bundle"))?;
        for f in &files {
            tar.append_path_with_name(run_dir.join(f), Path::new("run").join(f)).map_err(Error::io(run_dir.join(f), "adding to the bundle"))?;
        }
        let inner = tar.into_inner().map_err(Error::io(&tmp, "finishing the bundle"))?;
        let file = inner.into_inner().map_err(|e| Error::invalid("bundle", e.to_string()))?;
        file.sync_all().map_err(Error::io(&tmp, "syncing the bundle"))?;
        std::fs::rename(&tmp, out).map_err(Error::io(out, "moving the bundle into place"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    Ok(manifest)
}

/// True when `path` looks like a bundle (a tar archive).
pub fn is_bundle(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case(BUNDLE_EXTENSION)) {
        return true;
    }
    let mut magic = [0u8; 263];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok() && &magic[257..262] == b"ustar"
}

/// Makes run `run` of `project` from a bundle: every file checked against the bundle's
/// manifest, the run's channels against the project's dataset; nothing is written unless all
/// of it holds.
pub fn import_bundle(project: &Project, file: &Path, run: &RunName) -> Result<BundleManifest> {
    use std::io::Read;
    let bad = |message: String| Error::Project { path: file.to_path_buf(), message };
    let run_dir = project.run_dir(run);
    if run_dir.exists() {
        return Err(Error::Project { path: run_dir, message: format!("run {run} exists: choose another --run") });
    }
    let f = std::fs::File::open(file).map_err(Error::io(file, "opening the bundle"))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let mut manifest: Option<BundleManifest> = None;
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let entries = archive.entries().map_err(|e| bad(format!("not a readable bundle: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a readable bundle: {e}")))?;
        if !entry.header().entry_type().is_file() {
            return Err(bad("holds something that is not a plain file: not a bundle s2cr wrote".into()));
        }
        let path = entry.path().map_err(|e| bad(format!("an entry has an unreadable name: {e}")))?.to_path_buf();
        // Only plain relative names: nothing may land outside the run folder.
        if path.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(bad(format!("entry {} is not a plain relative path: refused", path.display())));
        }
        let size = entry.header().size().map_err(|e| bad(format!("entry {}: {e}", path.display())))?;
        if size > 8 << 30 {
            return Err(bad(format!("entry {} claims {size} bytes: refused", path.display())));
        }
        // Grown as the bytes arrive, not from the size the header claims.
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("reading entry {}: {e} (a truncated file?)", path.display())))?;
        if path == Path::new("bundle.json") {
            let m: BundleManifest = serde_json::from_slice(&bytes).map_err(|e| bad(format!("bundle.json: {e}")))?;
            if m.format != BUNDLE_FORMAT {
                return Err(bad(format!("bundle format {:?} is not {BUNDLE_FORMAT:?}: written by another version of s2cr?", m.format)));
            }
            manifest = Some(m);
        } else if let Ok(rel) = path.strip_prefix("run") {
            contents.insert(rel.to_string_lossy().to_string(), bytes);
        } else {
            return Err(bad(format!("entry {} is outside run/: not a bundle s2cr wrote", path.display())));
        }
    }
    let manifest = manifest.ok_or_else(|| bad("has no bundle.json: not a bundle s2cr wrote".into()))?;
    use sha2::Digest;
    for (name, want) in &manifest.files {
        let bytes = contents.get(name).ok_or_else(|| bad(format!("lacks {name}, which its bundle.json lists (a truncated file?)")))?;
        let got = format!("{:x}", sha2::Sha256::digest(bytes));
        if &got != want {
            return Err(bad(format!("{name} has SHA-256 {got}, but bundle.json records {want}: the bundle is damaged or was changed")));
        }
    }
    if let Some(extra) = contents.keys().find(|k| !manifest.files.contains_key(*k)) {
        return Err(bad(format!("holds {extra}, which its bundle.json does not list: refused")));
    }
    // The run's channels against this project's dataset.
    let theirs: DatasetSummary = serde_json::from_slice(contents.get("dataset.json").ok_or_else(|| bad("has no dataset.json".into()))?).map_err(|e| bad(format!("dataset.json: {e}")))?;
    let ours: DatasetSummary = load_json(&project.dataset_json(), "run `s2cr dataset` first: a run works on the dataset's channels")?;
    let names = |s: &DatasetSummary| (s.inputs.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), s.outputs.iter().map(|c| c.band.clone()).collect::<Vec<_>>());
    let ((ti, to), (oi, oo)) = (names(&theirs), names(&ours));
    channel_check("inputs", &ti, &oi)?;
    channel_check("outputs", &to, &oo)?;
    let tmp = temp_sibling(&run_dir);
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> Result<()> {
        for (name, bytes) in &contents {
            let dst = tmp.join(name);
            crate::fsutil::ensure_parent(&dst)?;
            std::fs::write(&dst, bytes).map_err(Error::io(&dst, "writing the bundle's file"))?;
        }
        std::fs::rename(&tmp, &run_dir).map_err(Error::io(&run_dir, "moving the run into place"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result?;
    // The bundle's card stays: it describes where the run was trained (later cards keep it).
    save_json(&project.run_bundle_json(run), &manifest)?;
    Ok(manifest)
}
