//! The assess stage of a project: the one function `s2cr assess`, the pipeline's Assess stage and
//! the app call. It compares the synthetic t1 with the real t1 where that is clear (its mask),
//! both against the pre-fire t0, adds the agreement over the dataset's held-out blocks, and says
//! in every output when the catalog marks a scene as simulated.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{AssessConfig, AssessInputs, AssessReport, HeldOut, assess_files};
use crate::catalog::Scene;
use crate::catalog::stage::SearchResult;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::{Manifest, Project, RunName, Stage, StageState};

/// What [`assess_project`] found (or found up to date).
#[derive(Debug, Clone)]
pub struct ProjectAssessment {
    pub report: AssessReport,
    /// `outputs/<run>/assess/`.
    pub dir: PathBuf,
    /// Nothing had changed since the last assessment: the report is that one's.
    pub up_to_date: bool,
    /// A scene compared carries a simulated burn (the demo).
    pub simulated: bool,
}

impl ProjectAssessment {
    /// One line for logs, the pipeline's summary and the app.
    pub fn summary(&self) -> String {
        let f = |x: f64| if x.is_finite() { format!("{x:.2}") } else { "n/a".into() };
        let b = &self.report.burned;
        let held = match &self.report.held_out {
            Some(h) => format!(", held-out kappa {}", f(h.burned.kappa)),
            None => String::new(),
        };
        let perimeter = match &self.report.perimeter {
            Some(p) => format!("; vs the official perimeter IoU {} real, {} synthetic", f(p.real.iou), f(p.synthetic.iou)),
            None => String::new(),
        };
        format!(
            "{}burned {} ha real vs {} ha synthetic, kappa {}{held}{perimeter}{}: {}",
            if self.up_to_date { "up to date: " } else { "" },
            f(b.burned_ha_real),
            f(b.burned_ha_synthetic),
            f(b.kappa),
            if self.simulated { " (SIMULATED burn)" } else { "" },
            self.dir.join(super::files::REPORT_HTML).display()
        )
    }
}

/// The severity classes run `run`'s assessment drew (its report.json's settings; those from
/// before schemes read as USGS with their bounds), or `None` before any assessment.
pub fn assessed_classes(project: &Project, run: &RunName) -> Option<crate::indices::severity::SeverityScheme> {
    let bytes = std::fs::read(project.report_json(run)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let config = v.get("config")?;
    let scheme = config.get("severity_classes").or_else(|| config.get("thresholds"))?;
    serde_json::from_value(scheme.clone()).ok()
}

/// Assesses run `run` of a project with `options` (severity classes, NIR band, ...): its synthetic t1
/// against the project's preprocessed t0 and t1. The held-out pixels and the simulated-burn
/// notes come from the project, whatever `options` says of them. Writes
/// `outputs/<run>/assess/` and its manifest; skipped when the manifest matches the inputs and
/// parameters.
pub fn assess_project(project: &Project, run: &RunName, options: &AssessConfig, progress: &Progress) -> Result<ProjectAssessment> {
    let sources = crate::dataset::Sources::of_project(project)?;
    let synthetic = project.synthetic_s2(run);
    if !synthetic.is_file() {
        return Err(Error::Project { path: synthetic, message: format!("missing: synthesize run {run} first (the Synthesize step, `s2cr infer`)") });
    }
    let search = SearchResult::load(project, "assess")?;
    let notes = simulation_notes(&search);
    let t1_days = search.chosen_s2()[1].first().map(|s| crate::preprocess::composite::epoch_days(s.datetime.date_naive())).unwrap_or_default();
    let composite = |w: &str| Some(project.composite_s2(w)).filter(|p| p.is_file());
    let cfg = AssessConfig {
        simulated_burn: (!notes.is_empty()).then(|| notes.join("\n")),
        held_out: held_out(project, false)?,
        uncertainty_held_out: if project.run_uncertainty_calibration(run).is_file() { held_out(project, true)? } else { None },
        baselines: Some(super::baselines::BaselineInputs {
            inputs_vrt: project.root().join(&crate::fsutil::load_json::<crate::dataset::DatasetSummary>(&project.dataset_json(), "run `s2cr dataset` first")?.files.inputs_vrt),
            composite: composite("t1"),
        }),
        perimeter: options.perimeter.clone().or_else(|| project.config.reference_perimeter.as_ref().map(|p| project.root().join(p))),
        ..options.clone()
    };
    // Monte-Carlo dropout's rasters, when the run's inference wrote them with this image.
    let infer_manifest = Manifest::load(&project.manifest_path(Stage::Infer, Some(run)))?;
    let written = |path: &Path| infer_manifest.as_ref().is_some_and(|m| m.outputs.iter().any(|o| project.root().join(&o.path) == path)) && path.is_file();
    let (sd, prob) = (project.uncertainty_s2(run), project.burn_probability(run));
    let samples = infer_manifest.as_ref().and_then(|m| m.parameters["settings"]["samples"].as_u64()).map(|k| k as usize);
    let inputs = AssessInputs {
        pre: sources.s2_t0,
        real: sources.s2_t1,
        uncertainty: written(&sd).then_some(sd),
        burn_probability: written(&prob).then_some(prob),
        samples: samples.filter(|k| *k >= 2),
        attribution: Some(super::stac::project_attribution(project)),
        provenance: None,
        synthetic,
        pre_fill: composite("t0"),
        gapfill: Some(super::gapfill::GapFillRequest { image: project.gapfilled_s2(run), source: project.gapfill_source(run), composite_t1: composite("t1"), t1_days }),
    };
    assess_into_project(project, run, &inputs, &cfg, progress)
}

/// Like [`assess_project`] for images the user names (any grid): the results still go to the
/// run's `outputs/<run>/assess/` with a manifest, with `options` as given (no held-out pixels,
/// no notes from the catalog).
pub fn assess_project_files(project: &Project, run: &RunName, inputs: &AssessInputs, options: &AssessConfig, progress: &Progress) -> Result<ProjectAssessment> {
    assess_into_project(project, run, inputs, options, progress)
}

fn assess_into_project(project: &Project, run: &RunName, inputs: &AssessInputs, cfg: &AssessConfig, progress: &Progress) -> Result<ProjectAssessment> {
    let dir = project.assess_dir(run);
    let simulated = cfg.simulated_burn.is_some();
    let manifest_path = project.manifest_path(Stage::Assess, Some(run));
    let params = project.stage_parameters(Stage::Assess, serde_json::to_value(cfg).map_err(|e| Error::invalid("assess parameters", e.to_string()))?);
    if let Some(m) = Manifest::load(&manifest_path)?
        && m.state(project.root(), Some(&params)) == StageState::Done
        && m.inputs.iter().map(|r| r.path.clone()).collect::<Vec<_>>() == input_paths(project, inputs, cfg)
        // An assessment from before the QA plots is made again.
        && dir.join(super::files::QA_JSON).is_file()
        // And one from before the gap-filled image.
        && inputs.gapfill.as_ref().is_none_or(|g| g.image.is_file() && dir.join(super::files::severity("gapfilled")).is_file())
        && let Ok(report) = crate::fsutil::load_json::<AssessReport>(&project.report_json(run), "")
    {
        progress.info("up to date; nothing to do");
        return Ok(ProjectAssessment { report, dir, up_to_date: true, simulated });
    }
    let start = Instant::now();
    // Every file written says what made it: the program, the run and its generator.
    let mut inputs = inputs.clone();
    inputs.provenance.get_or_insert_with(|| super::stac::project_provenance(project, run));
    inputs.attribution.get_or_insert_with(|| super::stac::project_attribution(project));
    let report = assess_files(&inputs, &dir, cfg, progress)?;
    let mut manifest = Manifest::new(Stage::Assess, params);
    for p in input_list(&inputs, cfg) {
        manifest.add_input(project.root(), p)?;
    }
    for f in &report.files {
        manifest.add_output(project.root(), &dir.join(f))?;
    }
    if let Some(g) = &inputs.gapfill {
        manifest.add_output(project.root(), &g.image)?;
        manifest.add_output(project.root(), &g.source)?;
    }
    manifest.save(&manifest_path)?;
    progress.info(format!("assessment written to {} in {:.1} s", dir.display(), start.elapsed().as_secs_f64()));
    // The outputs as a STAC catalog, now that they are complete.
    match super::stac::write_catalog(project, run) {
        Ok(path) => progress.info(format!("STAC catalog of the outputs: {}", path.display())),
        Err(e) => progress.warn(format!("the outputs' STAC catalog was not written: {}", crate::error_chain(&e))),
    }
    // The run's model card carries the assessment too (a run with a checkpoint only).
    if crate::model::checkpoint::latest_checkpoint(project, run).ok().flatten().is_some()
        && let Err(e) = crate::model::card::write_card(project, run)
    {
        progress.warn(format!("the model card was not updated: {}", crate::error_chain(&e)));
    }
    Ok(ProjectAssessment { report, dir, up_to_date: false, simulated })
}

/// What the catalog says is simulated in the chosen scenes and their Sentinel-1 partners, one
/// line per scene.
fn simulation_notes(search: &SearchResult) -> Vec<String> {
    let [t0, t1] = search.chosen_s2();
    let partners = |group: &[&Scene]| -> Vec<&Scene> {
        search.pairs.iter().filter(|p| group.iter().any(|s| s.id == p.s2_id)).filter_map(|p| search.s1.iter().find(|s| s.id == p.s1_id)).collect()
    };
    let mut notes: Vec<String> = Vec::new();
    for scene in t0.iter().chain(&t1).copied().chain(partners(&t0)).chain(partners(&t1)) {
        if let Some(note) = &scene.simulated {
            let line = format!("{}: {note}", scene.id);
            if !notes.contains(&line) {
                notes.push(line);
            }
        }
    }
    notes
}

/// The pixels of the dataset's validation and test blocks (`test_only`: of its test blocks): no
/// training patch covers them (the split drops patches that would reach into another split's
/// block). `None` when there is no such block.
fn held_out(project: &Project, test_only: bool) -> Result<Option<HeldOut>> {
    use crate::dataset::tiles::{Split, block_splits};
    let path = project.dataset_json();
    let summary: crate::dataset::DatasetSummary = crate::fsutil::load_json(&path, "run `s2cr dataset` first")?;
    let (w, h) = (summary.grid_width, summary.grid_height);
    let tiles = &summary.config.tiles;
    // A damaged file must not make the blocks (or their count) absurd.
    let corrupt = |m: String| Error::Project { path: path.clone(), message: format!("{m}; run `s2cr dataset` again") };
    crate::grid::check_size(w, h).map_err(corrupt)?;
    let side = tiles.split_block_patches.max(1).saturating_mul(tiles.size);
    if tiles.size == 0 || w.div_ceil(side.max(1)).saturating_mul(h.div_ceil(side.max(1))) > 1_000_000 {
        return Err(corrupt(format!("{} px patches, {} a split block, make {side} px blocks: too many for the grid", tiles.size, tiles.split_block_patches)));
    }
    let (block, splits) = block_splits(w, h, tiles);
    let blocks: Vec<Vec<bool>> = splits.iter().map(|row| row.iter().map(|s| if test_only { *s == Split::Test } else { *s != Split::Train }).collect()).collect();
    // Pixels of the held-out blocks, edge blocks cut by the grid's border.
    let side = |i: usize, n: usize| (block * (i + 1)).min(n).saturating_sub(block * i);
    let pixels: usize = blocks
        .iter()
        .enumerate()
        .flat_map(|(by, row)| row.iter().enumerate().filter(|(_, held)| **held).map(move |(bx, _)| side(bx, w) * side(by, h)))
        .sum();
    if pixels == 0 {
        return Ok(None);
    }
    Ok(Some(HeldOut {
        description: format!("the dataset's {} ({block} px blocks, split seed {}): {pixels} of {} grid pixels", if test_only { "test blocks" } else { "validation and test blocks" }, tiles.seed, w * h),
        pixels,
        block,
        blocks,
    }))
}

/// Every input of an assessment: the images, the perimeter, the uncertainty rasters, the
/// windows' composites.
fn input_list<'a>(inputs: &'a AssessInputs, cfg: &'a AssessConfig) -> Vec<&'a PathBuf> {
    let mut v: Vec<&PathBuf> = [&inputs.pre, &inputs.real, &inputs.synthetic].into_iter().chain(cfg.perimeter.as_ref()).chain(cfg.plots.as_ref().map(|p| &p.file)).chain(inputs.uncertainty.as_ref()).chain(inputs.burn_probability.as_ref()).collect();
    // The t1 composite (the baselines' and the gap-fill's), then the t0 composite.
    let composites = cfg.baselines.as_ref().and_then(|b| b.composite.as_ref()).into_iter().chain(inputs.gapfill.iter().flat_map(|g| g.composite_t1.iter())).chain(inputs.pre_fill.iter());
    for c in composites {
        if !v.contains(&c) {
            v.push(c);
        }
    }
    v
}

/// The inputs' paths as the manifest records them (relative to the project where inside it).
fn input_paths(project: &Project, inputs: &AssessInputs, cfg: &AssessConfig) -> Vec<String> {
    input_list(inputs, cfg)
        .into_iter()
        .map(|p| {
            let full = if p.is_absolute() { p.to_path_buf() } else { project.root().join(p) };
            full.strip_prefix(project.root()).map(Path::to_path_buf).unwrap_or(full).to_string_lossy().to_string()
        })
        .collect()
}
