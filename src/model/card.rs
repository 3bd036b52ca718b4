//! A run's model card: `runs/<run>/model.json` (for programs), `model.md` (for people) and
//! `model.stac.json`, a STAC Item with the Machine Learning Model (MLM) extension v1.4 that
//! catalogs and QGIS's STAC browser read. Written when training ends, when a run is imported
//! and when it is assessed (`s2cr model card` writes it again); it gathers what the run's files
//! say: the architecture, the channels in order with their scenes and dates, the normalization,
//! the training area, steps and losses, the assessment, and where the weights came from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{ModelConfig, TrainConfig};
use super::discriminator::Discriminator;
use super::checkpoint::{CheckpointFiles, latest_checkpoint};
use crate::dataset::normalize::{ChannelKind, DataRange, Normalization, S1Method, S2Method};
use crate::dataset::{DatasetSummary, Source};
use crate::error::{Error, Result};
use crate::fsutil::{load_json, save_json, sha256_file, write_atomic};
use crate::project::{Project, RunName};

pub const CARD_FORMAT: &str = "s2cr-model-card/1";
/// The MLM extension version the STAC Item follows.
pub const MLM_SCHEMA: &str = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json";
/// The STAC file extension (`file:checksum`, `file:size`).
pub const FILE_SCHEMA: &str = "https://stac-extensions.github.io/file/v2.1.0/schema.json";

/// One input channel: its name, and the scene and date it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardChannel {
    pub name: String,
    pub band: String,
    /// S1_t0, S1_t1, S2_t0 or S2_t1.
    pub source: String,
    pub scenes: Vec<String>,
    pub date: Option<String>,
}

/// `runs/<run>/model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub project: String,
    pub run: String,
    pub model: ModelConfig,
    pub generator_parameters: usize,
    pub discriminator_parameters: usize,
    pub patch_size: usize,
    pub inputs: Vec<CardChannel>,
    pub outputs: Vec<CardChannel>,
    pub normalization: Normalization,
    /// AOI bounds in longitude and latitude, its area, the grid and the date ranges.
    pub training_area: BTreeMap<String, serde_json::Value>,
    /// train.yaml of the run (absent for an imported run).
    pub training: Option<TrainConfig>,
    pub steps: usize,
    /// The device the training that saved the latest checkpoint ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_on: Option<String>,
    /// The last row of metrics.csv: losses, and the validation figures when there were any.
    pub last_metrics: BTreeMap<String, f64>,
    /// From the run's assessment, when it has one: burned-area agreement and image quality.
    pub assessment: BTreeMap<String, f64>,
    pub imported: Option<Imported>,
    pub fine_tuned_from: Option<Init>,
    pub generator_sha256: String,
    pub written_at: String,
    pub s2cr_version: String,
}

fn source_name(s: Source) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| format!("{s:?}"))
}

/// Builds the card from the run's files.
pub fn card(project: &Project, run: &RunName) -> Result<ModelCard> {
    let run_dir = project.run_dir(run);
    let cp = latest_checkpoint(project, run)?.ok_or_else(|| Error::Project { path: run_dir.clone(), message: format!("run {run} has no checkpoint yet: train or import it first") })?;
    let model = ModelConfig::load(&project.run_model_yaml(run))?;
    let summary: DatasetSummary = load_json(&project.run_dataset_json(run), "train the run again")?;
    let normalization: Normalization = load_json(&project.run_normalization_json(run), "train the run again")?;
    let index: crate::dataset::TileIndex = load_json(&project.run_tiles_json(run), "train the run again")?;
    let dev = Device::flex();
    let g_params = super::generator::Generator::new(&model, super::generator::Activation::Identity, &dev).num_params();
    let d_params = Discriminator::new(&model, &dev).num_params();
    // Scenes and dates of each source, from the search's choice.
    let search = crate::catalog::stage::SearchResult::load(project, "the model card").ok();
    let scenes_of = |source: &str| -> (Vec<String>, Option<String>) {
        let Some(s) = &search else { return (Vec::new(), None) };
        let [t0, t1] = s.chosen_s2();
        let s2 = |list: Vec<&crate::catalog::Scene>| (list.iter().map(|x| x.id.clone()).collect(), list.first().map(|x| x.datetime.format("%Y-%m-%d").to_string()));
        let s1 = |t: &[&crate::catalog::Scene]| {
            let ids: Vec<&str> = t.iter().map(|x| x.id.as_str()).collect();
            let paired: Vec<&crate::catalog::Scene> = s.pairs.iter().filter(|p| ids.contains(&p.s2_id.as_str())).filter_map(|p| s.s1.iter().find(|x| x.id == p.s1_id)).collect();
            (paired.iter().map(|x| x.id.clone()).collect(), paired.first().map(|x| x.datetime.format("%Y-%m-%d").to_string()))
        };
        match source {
            "S2_t0" => s2(t0),
            "S2_t1" => s2(t1),
            "S1_t0" => s1(&t0),
            "S1_t1" => s1(&t1),
            _ => (Vec::new(), None),
        }
    };
    let inputs = summary
        .inputs
        .iter()
        .map(|c| {
            let source = source_name(c.source);
            let (scenes, date) = scenes_of(&source);
            CardChannel { name: c.name.clone(), band: c.band.clone(), source, scenes, date }
        })
        .collect();
    let outputs = summary
        .outputs
        .iter()
        .map(|c| {
            let (scenes, date) = scenes_of("S2_t1");
            CardChannel { name: c.name.clone(), band: c.band.clone(), source: "S2_t1".into(), scenes, date }
        })
        .collect();
    let mut area = BTreeMap::new();
    if let Ok(aoi) = project.aoi() {
        area.insert("aoi_bbox_lonlat".into(), serde_json::json!(aoi.bbox()));
        area.insert("aoi_km2".into(), serde_json::json!((aoi.area_km2() * 1000.0).round() / 1000.0));
    }
    area.insert("grid".into(), serde_json::to_value(&project.config.grid).unwrap_or_default());
    area.insert("t0".into(), serde_json::json!(project.config.t0.to_string()));
    area.insert("t1".into(), serde_json::json!(project.config.t1.to_string()));
    area.insert("patches".into(), serde_json::json!({"train": summary.train, "val": summary.val, "test": summary.test}));
    let training: Option<TrainConfig> = TrainConfig::load(&project.run_train_yaml(run)).ok();
    let mut last_metrics = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(project.metrics_csv(run)) {
        let mut lines = text.lines();
        if let (Some(header), Some(last)) = (lines.next(), text.lines().last()) {
            for (k, v) in header.split(',').zip(last.split(',')) {
                if let Ok(x) = v.parse::<f64>()
                    && x.is_finite()
                {
                    last_metrics.insert(k.to_string(), x);
                }
            }
        }
    }
    let mut assessment = BTreeMap::new();
    if let Ok(r) = load_json::<ReportFigures>(&project.report_json(run), "") {
        let figures = [
            ("kappa", r.burned.kappa),
            ("f1", r.burned.f1),
            ("iou", r.burned.iou),
            ("psnr_db", r.quality.psnr_db),
            ("ssim", r.quality.ssim),
            ("held_out_kappa", r.held_out.and_then(|h| h.burned.kappa)),
        ];
        assessment.extend(figures.into_iter().filter_map(|(k, v)| Some((k.to_string(), v.filter(|v| v.is_finite())?))));
    }
    let generator = CheckpointFiles::in_dir(&run_dir.join(&cp.dir)).generator;
    let generator_sha256 = sha256_file(&generator)?;
    // A run that came in a bundle keeps the card it came with (where and how it was trained)
    // while its generator is the one it came with; only its assessment, made here, is new.
    // Trained further here, it gets a card of its own (steps, losses, checksum).
    if project.run_bundle_json(run).is_file()
        && let Ok(mut came_with) = load_json::<ModelCard>(&run_dir.join("model.json"), "")
        && came_with.generator_sha256 == generator_sha256
        && came_with.steps == cp.step
    {
        came_with.assessment = assessment;
        came_with.run = run.to_string();
        came_with.written_at = chrono::Utc::now().to_rfc3339();
        return Ok(came_with);
    }
    Ok(ModelCard {
        format: CARD_FORMAT.into(),
        project: project.config.name.clone(),
        run: run.to_string(),
        model,
        generator_parameters: g_params,
        discriminator_parameters: d_params,
        patch_size: index.size,
        inputs,
        outputs,
        normalization,
        training_area: area,
        training: if project.run_imported_json(run).is_file() { None } else { training },
        steps: cp.step,
        trained_on: cp.device.clone(),
        last_metrics,
        assessment,
        imported: load_json(&project.run_imported_json(run), "").ok(),
        fine_tuned_from: load_json(&project.run_init_json(run), "").ok(),
        generator_sha256,
        written_at: chrono::Utc::now().to_rfc3339(),
        s2cr_version: env!("CARGO_PKG_VERSION").into(),
    })
}

fn normalization_text(n: &Normalization) -> String {
    let s2 = match n.s2_method {
        S2Method::BatchMinMax => "min-max over each batch of patches (computed at run time)",
        S2Method::TileMinMax => "min-max over each patch (computed at run time)",
        S2Method::TrainMinMax => "min-max of the training split",
        S2Method::Percentile => "2nd-98th percentiles of the training split",
        S2Method::Yearly => "yearly min-max",
    };
    let s1 = match n.s1_method {
        S1Method::Standardize => "standardized by the training split's mean and standard deviation",
        S1Method::Percentile => "2nd-98th percentiles of the training split",
    };
    let range = match n.range {
        DataRange::Unit => "",
        DataRange::Symmetric => "; the min-max and percentile maps then sent to [-1, 1] (pix2pix's range: 2n - 1)",
    };
    format!("Sentinel-2: {s2}; Sentinel-1: {s1}{range}")
}

/// `model.md`.
pub fn markdown(c: &ModelCard) -> String {
    let mut md = format!("# Model card: run {} of project {}\n\n", c.run, c.project);
    let m = &c.model;
    md += &format!(
        "pix2pix conditional GAN: U-Net generator (depth {}, ngf {}, {:?} norm, dropout {} in {:?} blocks, {}), {:.2} M parameters; PatchGAN discriminator ({} layers, ndf {}), {:.2} M. Patches of {} px.\n\n",
        m.depth,
        m.ngf,
        m.norm,
        m.dropout,
        m.dropout_blocks,
        match m.output {
            crate::model::config::GeneratorOutput::Residual => "output: the change from Sentinel-2 t0, added to it (residual)".to_string(),
            crate::model::config::GeneratorOutput::Direct => format!("output {:?}", m.output_activation),
        } + if m.linear { ", with a learned linear map of the inputs beside it" } else { "" }
            + if m.upsample.is_transposed() { "" } else { ", upsampling by resize and 3x3 convolution" }
            + if m.uncertainty.is_none() { "" } else { ", and a head predicting each pixel's Laplace scale (its own uncertainty, trained by the likelihood)" },
        c.generator_parameters as f64 / 1e6,
        m.discriminator_layers,
        m.ndf,
        c.discriminator_parameters as f64 / 1e6,
        c.patch_size
    );
    let table = |rows: &[CardChannel]| -> String {
        let mut t = "| # | channel | band | source | date | scenes |\n|---|---|---|---|---|---|\n".to_string();
        for (i, r) in rows.iter().enumerate() {
            t += &format!("| {} | {} | {} | {} | {} | {} |\n", i + 1, r.name, r.band, r.source, r.date.as_deref().unwrap_or("-"), if r.scenes.is_empty() { "-".into() } else { r.scenes.join(", ") });
        }
        t
    };
    md += &format!("## Inputs, in order\n\n{}\n## Outputs\n\n{}\n", table(&c.inputs), table(&c.outputs));
    md += &format!("## Normalization\n\n{}.\n\n", normalization_text(&c.normalization));
    md += "## Training area\n\n";
    for (k, v) in &c.training_area {
        md += &format!("- {k}: {v}\n");
    }
    md += &format!("\n## Training\n\n{} steps.", c.steps);
    if let Some(t) = &c.training {
        md += &format!(" Batch {}, Adam lr {} (betas {}, {}), L1 weight {}, {:?} GAN loss, seed {}.", t.batch_size, t.learning_rate, t.beta1, t.beta2, t.l1_weight, t.gan_loss, t.seed);
    }
    md += "\n\n";
    if !c.last_metrics.is_empty() {
        md += "Last step: ";
        md += &c.last_metrics.iter().filter(|(k, _)| k.as_str() != "step" && k.as_str() != "epoch").map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join(", ");
        md += "\n\n";
    }
    if !c.assessment.is_empty() {
        md += "## Assessment\n\n";
        md += &c.assessment.iter().map(|(k, v)| format!("{k} {v:.3}")).collect::<Vec<_>>().join(", ");
        md += "\n\n";
    }
    md += "## Provenance\n\n";
    if let Some(i) = &c.imported {
        md += &format!("Imported from {} (SHA-256 {}, {}), configuration from {}, channels from {}, normalization from {}", i.file.display(), i.sha256, i.format, i.config_from, i.channels_from, i.normalization_from);
        md += &if i.range.is_empty() { ".\n".to_string() } else { format!(", data range {} (from {}).\n", i.range, i.range_from) };
    }
    if let Some(f) = &c.fine_tuned_from {
        md += &format!("Fine-tuned from {} ({}); afresh: {}; discriminator from the source: {}.\n", f.from.display(), f.kind, if f.reinitialised.is_empty() { "nothing".into() } else { f.reinitialised.join(", ") }, f.discriminator_from_source);
        for (file, sum) in &f.sha256 {
            md += &format!("- {file}: SHA-256 {sum}\n");
        }
    }
    if c.imported.is_none() && c.fine_tuned_from.is_none() {
        md += "Trained from random weights.\n";
    }
    if let Some(d) = &c.trained_on {
        md += &format!("Trained on {d}.\n");
    }
    md += &format!("\nGenerator weights SHA-256 {}. Written by s2cr {} at {}.\n", c.generator_sha256, c.s2cr_version, c.written_at);
    md
}

/// `model.stac.json`: a STAC Item with the MLM extension.
pub fn stac_item(c: &ModelCard) -> serde_json::Value {
    let bbox = c.training_area.get("aoi_bbox_lonlat").and_then(|v| serde_json::from_value::<[f64; 4]>(v.clone()).ok()).unwrap_or([-180.0, -90.0, 180.0, 90.0]);
    let [w, s, e, n] = bbox;
    let p = c.patch_size as i64;
    // Fixed maps per channel where the method has them (the tile and batch ones are computed
    // from each patch, which MLM's value_scaling cannot say: described instead).
    let n_ = &c.normalization;
    // A map to [0, 1]; in pix2pix's [-1, 1] it is a z-score about the middle of the range.
    let min_max = |lo: f32, hi: f32| match n_.range {
        DataRange::Unit => serde_json::json!({"type": "min-max", "minimum": lo, "maximum": hi}),
        DataRange::Symmetric => serde_json::json!({"type": "z-score", "mean": (lo + hi) / 2.0, "stddev": (hi - lo) / 2.0}),
    };
    let fixed: Option<Vec<serde_json::Value>> = n_
        .inputs
        .iter()
        .map(|ch| match ch.kind {
            ChannelKind::S1 => Some(match n_.s1_method {
                S1Method::Standardize => serde_json::json!({"type": "z-score", "mean": ch.mean, "stddev": ch.std}),
                S1Method::Percentile => min_max(ch.p2, ch.p98),
            }),
            ChannelKind::S2 => match n_.s2_method {
                S2Method::TrainMinMax => Some(min_max(ch.min, ch.max)),
                S2Method::Percentile => Some(min_max(ch.p2, ch.p98)),
                _ => None,
            },
            ChannelKind::Mask => Some(serde_json::json!({"type": "offset", "value": 0})),
        })
        .collect();
    let input_bands: Vec<&str> = c.inputs.iter().map(|i| i.name.as_str()).collect();
    let output_bands: Vec<&str> = c.outputs.iter().map(|o| o.band.as_str()).collect();
    let dates: Vec<&str> = c.inputs.iter().chain(&c.outputs).filter_map(|x| x.date.as_deref()).collect();
    let (start, end) = (dates.iter().min().map(|d| format!("{d}T00:00:00Z")), dates.iter().max().map(|d| format!("{d}T23:59:59Z")));
    let mut properties = serde_json::json!({
        "description": format!("pix2pix generator that synthesizes cloud-free Sentinel-2 ({}) at t1 from Sentinel-1 at t0 and t1 and Sentinel-2 at t0; inputs normalized: {}.", output_bands.join(", "), normalization_text(n_)),
        "mlm:name": crate::fsutil::safe_name(&format!("s2cr-{}-{}", c.project, c.run)),
        "mlm:architecture": "U-Net (pix2pix UnetGenerator)",
        "mlm:tasks": ["generative"],
        "mlm:framework": "burn",
        "mlm:framework_version": "0.22",
        "mlm:accelerator": "amd64",
        "mlm:accelerator_constrained": false,
        "mlm:total_parameters": c.generator_parameters,
        "mlm:pretrained": c.imported.is_some() || c.fine_tuned_from.is_some(),
        "mlm:input": [{
            "name": "S1 t0 and t1, S2 t0",
            "bands": input_bands,
            "input": {"shape": [-1, input_bands.len(), p, p], "dim_order": ["batch", "channel", "height", "width"], "data_type": "float32"},
            "value_scaling": fixed,
            "resize_type": null,
            "pre_processing_function": null
        }],
        "mlm:output": [{
            "name": "synthetic S2 t1",
            "tasks": ["generative"],
            "bands": output_bands,
            "result": {"shape": [-1, output_bands.len(), p, p], "dim_order": ["batch", "channel", "height", "width"], "data_type": "float32"},
            "post_processing_function": null
        }],
        "s2cr:steps": c.steps,
        "s2cr:trained_on": c.trained_on,
    });
    if let Some(obj) = properties.as_object_mut() {
        // STAC: a datetime, or null with both ends of a range. Without the training data's
        // dates (an imported model), the time the card was written.
        match (start, end) {
            (Some(start), Some(end)) => {
                obj.insert("datetime".into(), serde_json::Value::Null);
                obj.insert("start_datetime".into(), serde_json::json!(start));
                obj.insert("end_datetime".into(), serde_json::json!(end));
            }
            _ => {
                obj.insert("datetime".into(), serde_json::json!(c.written_at));
            }
        }
        if let Some(f) = &c.fine_tuned_from {
            obj.insert("mlm:pretrained_source".into(), serde_json::json!(f.from.display().to_string()));
        } else if let Some(i) = &c.imported {
            obj.insert("mlm:pretrained_source".into(), serde_json::json!(i.file.display().to_string()));
        }
        for (k, v) in &c.assessment {
            obj.insert(format!("s2cr:{k}"), serde_json::json!(v));
        }
    }
    serde_json::json!({
        "type": "Feature",
        "stac_version": "1.0.0",
        // `file:checksum` on the weights is the file extension's.
        "stac_extensions": [MLM_SCHEMA, FILE_SCHEMA],
        "id": crate::fsutil::safe_name(&format!("{}-{}", c.project, c.run)),
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": [w, s, e, n],
        "properties": properties,
        "assets": {
            "weights": {
                "href": format!("./{}", c.generator_file()),
                "type": "application/octet-stream; application=burn",
                "title": "Generator weights (Burn burnpack)",
                "mlm:artifact_type": "burn.burnpack",
                "roles": ["mlm:model", "mlm:weights", "data"],
                "file:checksum": format!("1220{}", c.generator_sha256)
            },
            "card": {"href": "./model.md", "type": "text/markdown", "title": "Model card", "roles": ["metadata"]},
            "card-json": {"href": "./model.json", "type": "application/json", "title": "Model card (JSON)", "roles": ["metadata"]}
        },
        "links": [{"rel": "self", "href": "./model.stac.json", "type": "application/geo+json"}]
    })
}

impl ModelCard {
    /// The generator's weights, relative to the run folder.
    fn generator_file(&self) -> String {
        format!("checkpoints/step-{}/generator.bpk", self.steps)
    }
}

/// The card's three files.
pub struct CardFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub stac: PathBuf,
}

/// Writes `model.json`, `model.md` and `model.stac.json` into the run folder.
pub fn write_card(project: &Project, run: &RunName) -> Result<CardFiles> {
    let c = card(project, run)?;
    let dir = project.run_dir(run);
    let files = CardFiles { json: dir.join("model.json"), markdown: dir.join("model.md"), stac: dir.join("model.stac.json") };
    save_json(&files.json, &c)?;
    write_atomic(&files.markdown, markdown(&c).as_bytes())?;
    let mut item = stac_item(&c);
    // The weights' path as the checkpoint names it.
    if let Ok(Some(cp)) = latest_checkpoint(project, run)
        && let Some(href) = item.pointer_mut("/assets/weights/href")
    {
        *href = serde_json::json!(format!("./{}", cp.dir.join("generator.bpk").display()));
    }
    let text = serde_json::to_string_pretty(&item).map_err(|e| Error::invalid("model.stac.json", e.to_string()))?;
    write_atomic(&files.stac, text.as_bytes())?;
    Ok(files)
}

/// How a run was imported: `runs/<run>/imported.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imported {
    pub file: PathBuf,
    pub sha256: String,
    /// `pth` or `safetensors`.
    pub format: String,
    /// Where the configuration came from: `keys` (read from the file), `model.yaml`, `sidecar`.
    pub config_from: String,
    /// Where the channel names came from: `--inputs/--outputs` or `sidecar`.
    pub channels_from: String,
    /// Where the normalization came from: a file, the sidecar, or the project's dataset.
    pub normalization_from: String,
    /// The data range the model takes and gives (`unit` [0, 1], `symmetric` [-1, 1]) and who
    /// said so: `--range`, `sidecar`, or `pix2pix's default` for a file without a sidecar.
    #[serde(default)]
    pub range: String,
    #[serde(default)]
    pub range_from: String,
    pub provenance: BTreeMap<String, String>,
    pub imported_at: String,
    pub s2cr_version: String,
}

/// Where a fine-tuned run's weights started: `runs/<run>/init.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Init {
    /// The run folder or weights file given.
    pub from: PathBuf,
    /// `run` or `weights`.
    pub kind: String,
    /// SHA-256 of each file the weights came from.
    pub sha256: BTreeMap<String, String>,
    /// Layers left at their fresh initialisation because the channels differ
    /// (`--adapt-channels`).
    pub reinitialised: Vec<String>,
    /// Whether the discriminator started from the source's too (a run with one and the same
    /// discriminator settings); otherwise it starts fresh.
    pub discriminator_from_source: bool,
}

/// The figures of an assessment report (`assess::AssessReport`, report.json) that the card
/// carries, read by name so that the model does not depend on the assessment (which writes the
/// card). A figure the report holds as `null` (not finite) or lacks is left out.
#[derive(Debug, Default, Deserialize)]
struct ReportFigures {
    #[serde(default)]
    burned: BurnedFigures,
    #[serde(default)]
    quality: QualityFigures,
    #[serde(default)]
    held_out: Option<HeldOutFigures>,
}

#[derive(Debug, Default, Deserialize)]
struct BurnedFigures {
    kappa: Option<f64>,
    f1: Option<f64>,
    iou: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct QualityFigures {
    psnr_db: Option<f64>,
    ssim: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct HeldOutFigures {
    #[serde(default)]
    burned: BurnedFigures,
}
