//! One thin function per `s2cr` command: open the project, convert the arguments (`convert`),
//! run the library function as a job (`render`), print the result (`print`).
//!
//! This module must not hold stage logic, presets or policies (what to skip, how to resume,
//! which values are valid): those are the library's. Only how a command finds its project
//! folder is decided here.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use super::args::*;
use super::convert::{self, ExportStyle};
use super::print;
use super::render::run_job;
use crate::aoi::{Aoi, AoiLimits};
use crate::assess::AssessConfig;
use crate::fetch::FetchOptions;
use crate::model::infer::InferOptions;
use crate::pipeline::PipelineSettings;
use crate::preprocess::stage::PreprocessConfig;
use crate::project::{NewProject, Project};

/// The project folder a command works in: the one given, else the current folder.
pub fn here(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| PathBuf::from("."))
}

/// `s2cr init`.
pub fn init(args: InitArgs) -> Result<()> {
    let new = NewProject::try_from(&args)?;
    let project = Project::init(&new).map_err(convert::init_error)?;
    print::created(&project, &new.aoi, &args.dir);
    Ok(())
}

/// `s2cr aoi convert|validate|info`.
pub fn aoi(cmd: AoiCommand) -> Result<()> {
    match cmd {
        AoiCommand::Convert { input, output } => {
            // Conversion keeps what it is given; only structure and geometry must be valid.
            let aoi = Aoi::load(&input, &AoiLimits { max_area_km2: f64::INFINITY })?;
            aoi.write(&output)?;
            println!("Wrote {} ({} polygon(s))", output.display(), aoi.summary().polygons);
        }
        AoiCommand::Validate { file, max_area_km2 } => {
            let aoi = Aoi::load(&file, &AoiLimits { max_area_km2 })?;
            println!("{}: valid, {:.2} km2", file.display(), aoi.area_km2());
        }
        AoiCommand::Info { file, max_area_km2 } => {
            let aoi = Aoi::load(&file, &AoiLimits { max_area_km2 })?;
            print::aoi_info(&file, &aoi, &aoi.target_grid(10.0)?);
        }
    }
    Ok(())
}

/// `s2cr info`.
pub fn info(dir: &Path) -> Result<()> {
    let project = Project::open(dir)?;
    print::project_info(&project, &project.status()?);
    Ok(())
}

/// `s2cr raster info`.
pub fn raster_info(location: &str) -> Result<()> {
    print::raster_info(&crate::raster::info(location)?);
    Ok(())
}

/// `s2cr search`.
pub fn search(args: SearchArgs, dir: &Path, quiet: bool) -> Result<()> {
    let project = Project::open(dir)?;
    let cfg = convert::search_config(&args, &project)?;
    let r = run_job("search", quiet, move |p| crate::catalog::stage::search(&project, &cfg, p))?;
    print::search(&r);
    Ok(())
}

/// `s2cr fetch`.
pub fn fetch(args: FetchArgs, dir: &Path, quiet: bool) -> Result<()> {
    let project = Project::open(dir)?;
    let opts = FetchOptions::from(&args);
    let r = run_job("fetch", quiet, move |p| crate::fetch::fetch(&project, &opts, p))?;
    print::fetched(&r);
    Ok(())
}

/// `s2cr preprocess`.
pub fn preprocess(args: PreprocessArgs, dir: &Path, quiet: bool) -> Result<()> {
    let project = Project::open(dir)?;
    let cfg = PreprocessConfig::from(&args);
    let done = run_job("preprocess", quiet, move |p| crate::preprocess::stage::preprocess(&project, &cfg, p))?;
    print::preprocessed(&done);
    Ok(())
}

/// `s2cr dataset`.
pub fn dataset(args: DatasetArgs, dir: &Path, quiet: bool) -> Result<()> {
    let project = Project::open(dir)?;
    let cfg = convert::dataset_config(&args, &project);
    let written = project.dataset_dir();
    let (summary, normalization) = run_job("dataset", quiet, move |p| {
        let summary = crate::dataset::build(&project, &cfg, p)?;
        let normalization = crate::dataset::loader::load_normalization(&project)?;
        Ok((summary, normalization))
    })?;
    print::dataset(&summary, &normalization, &written);
    Ok(())
}

/// `s2cr train`.
pub fn train(args: TrainArgs, dir: &Path, quiet: bool) -> Result<()> {
    let project = Project::open(dir)?;
    let opts = convert::train_options(&args, &project)?;
    if args.estimate {
        let e = run_job("estimate", quiet, move |p| crate::model::estimate::estimate(&project, &opts, crate::model::estimate::MEASURED_STEPS, p))?;
        println!("{}", e.summary());
        println!(
            "  set-up {:.1} s; {} warm-up steps at {:.3} s, then {:.3} s a step (mean of {}); {} validations at {:.2} s; {} checkpoints at {:.2} s; {} previews at {:.2} s",
            e.setup_s, crate::model::estimate::WARM_UP_STEPS.min(e.steps), e.warm_up_step_s, e.step_s, e.measured_steps, e.validations, e.validation_s, e.checkpoints, e.checkpoint_s, e.previews, e.preview_s
        );
        return Ok(());
    }
    if let Some(step) = args.from_step {
        let cp = crate::model::checkpoint::rewind(&project, &args.run, step)?;
        eprintln!("run {}: going on from {}", args.run, cp.dir.display());
    }
    let r = run_job("train", quiet, move |p| crate::model::train::train(&project, &opts, p))?;
    print::trained(&r);
    Ok(())
}

/// `s2cr infer`.
pub fn infer(args: InferArgs, dir: &Path, quiet: bool) -> Result<()> {
    let project = Project::open(dir)?;
    let opts = InferOptions::from(&args);
    match (args.tiles, args.tile, args.merge) {
        (Some(n), Some(i), false) => {
            let r = run_job("infer", quiet, move |p| crate::model::infer::infer_tile(&project, &opts, n, i, p))?;
            println!("tile {i} of {n}: grid rows {}..{}, {} windows; merge with `s2cr infer --tiles {n} --merge` once every tile is done", r.rows[0], r.rows[1], r.windows);
        }
        (Some(n), None, true) => {
            let r = run_job("infer", quiet, move |p| crate::model::infer::merge_tiles(&project, &opts, n, p))?;
            print::inferred(&r);
        }
        (Some(_), None, false) => bail!("--tiles: give --tile I to synthesize one tile, or --merge to assemble them"),
        _ => {
            let r = run_job("infer", quiet, move |p| crate::model::infer::infer(&project, &opts, p))?;
            print::inferred(&r);
        }
    }
    Ok(())
}

/// `s2cr model import|export`.
pub fn model(cmd: ModelCommand, dir: &Path) -> Result<()> {
    let project = Project::open(dir)?;
    match cmd {
        ModelCommand::Import(a) if crate::model::portable::is_bundle(&a.file) => {
            if a.model.is_some() || a.inputs.is_some() || a.outputs.is_some() || a.normalization.is_some() {
                bail!("{}: a bundle carries its model, channels and normalization; give only --run", a.file.display());
            }
            let m = crate::model::portable::import_bundle(&project, &a.file, &a.run)?;
            println!("imported run {} of project {} (step {}, {} files checked) as run {}; next: s2cr infer --run {}", m.run, m.project, m.step, m.files.len(), a.run, a.run);
        }
        ModelCommand::Import(a) => {
            let model = a.model.as_deref().map(crate::model::config::ModelConfig::load).transpose()?;
            let range = a.range.map(|r| match r {
                super::args::RangeArg::Unit => crate::dataset::normalize::DataRange::Unit,
                super::args::RangeArg::Symmetric => crate::dataset::normalize::DataRange::Symmetric,
            });
            let opts = crate::model::portable::ImportOptions { run: a.run, model, dropout: a.dropout, normalization: a.normalization, inputs: a.inputs, outputs: a.outputs, range };
            let r = crate::model::portable::import_run(&project, &a.file, &opts)?;
            let m = &r.model;
            println!(
                "imported {} as run {}: depth {}, ngf {}, {:?} norm, {} -> {} channels (configuration from {}, channels from {}, normalization from {}, data range {} from {})",
                a.file.display(),
                r.run,
                m.depth,
                m.ngf,
                m.norm,
                m.input_channels,
                m.output_channels,
                r.imported.config_from,
                r.imported.channels_from,
                r.imported.normalization_from,
                r.imported.range,
                r.imported.range_from
            );
            println!("run folder: {}; next: s2cr infer --run {}", r.run_dir.display(), r.run);
        }
        ModelCommand::Card { run } => {
            let f = crate::model::card::write_card(&project, &run)?;
            println!("model card of run {run}: {}, {} and {}", f.markdown.display(), f.json.display(), f.stac.display());
        }
        ModelCommand::Export { run, out, bundle: true, .. } => {
            let m = crate::model::portable::export_bundle(&project, &run, &out)?;
            println!("bundled run {run} (step {}, {} files) into {}", m.step, m.files.len(), out.display());
        }
        ModelCommand::Export { run, out, bundle: false, keys } => {
            let keys = match keys {
                super::args::KeysArg::Pix2pix => crate::model::pix2pix::KeyStyle::Pix2pix,
                super::args::KeysArg::S2cr => crate::model::pix2pix::KeyStyle::S2cr,
            };
            let r = crate::model::portable::export_run_as(&project, &run, &out, keys)?;
            println!("exported run {run} (step {}, {:.2} M parameters) to {}, with {} and {}", r.step, r.parameters as f64 / 1e6, r.weights.display(), r.sidecar.display(), r.card.display());
        }
    }
    Ok(())
}

/// `s2cr assess`: files into `--out`, or a project's run (its own images, or those given).
pub fn assess(args: AssessArgs, project_dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    let inputs = convert::assess_inputs(&args)?;
    let cfg = AssessConfig::try_from(&args)?;
    if let Some(out) = &args.out {
        let Some(inputs) = inputs else { bail!("--out: give the images to assess with --pre, --real and --synthetic") };
        let dir = out.clone();
        let report = run_job("assess", quiet, move |p| crate::assess::assess_files(&inputs, &dir, &cfg, p))?;
        print::assessment(&report, &out.join(crate::assess::files::REPORT_HTML));
        return Ok(());
    }
    let project = Project::open(&here(project_dir))
        .map_err(|e| anyhow!("{}; give --out DIR to assess files outside a project", crate::error_chain(&e)))?;
    // The flags over pipeline.yaml's `assess:` settings, as `s2cr run` takes them.
    let cfg = crate::pipeline::PipelineSettings::of_project(&project)?.assess.under(&project, cfg);
    let run = args.run.clone();
    let done = run_job("assess", quiet, move |p| match inputs {
        Some(inputs) => crate::assess::assess_project_files(&project, &run, &inputs, &cfg, p),
        None => crate::assess::assess_project(&project, &run, &cfg, p),
    })?;
    print::assessment(&done.report, &done.dir.join(crate::assess::files::REPORT_HTML));
    Ok(())
}

/// `s2cr export`.
pub fn export(args: ExportArgs, dir: &Path) -> Result<()> {
    let project = Project::open(dir)?;
    let layers = crate::layers::project_layers(&project, &args.run);
    if args.list {
        print::layers(&project, &args.run, &layers);
        return Ok(());
    }
    let (Some(id), Some(out)) = (&args.layer, &args.out) else {
        bail!("give --layer and --out (or --list)");
    };
    let Some(layer) = layers.iter().find(|l| &l.id == id) else {
        let ids: Vec<&str> = layers.iter().map(|l| l.id.as_str()).collect();
        bail!("--layer {id}: not in this project (run {}); it has: {}", args.run, if ids.is_empty() { "none yet".into() } else { ids.join(", ") });
    };
    let style = ExportStyle::try_from(&args)?;
    let done = crate::layers::export(layer, out, &style.composite, style.stretch, style.gamma)?;
    println!("{}: {}", done.path.display(), done.what);
    Ok(())
}

/// `s2cr run [PIPELINE]`.
pub fn run_pipeline(file: Option<PathBuf>, project_dir: Option<PathBuf>, quiet: bool, wait: bool) -> Result<()> {
    let settings = file.as_deref().map(PipelineSettings::load).transpose()?;
    // --project wins; then the file's project (relative to the file); then the current folder.
    let dir = match (project_dir, settings.as_ref().and_then(|s| s.project.as_ref()), &file) {
        (Some(d), _, _) => d,
        (None, Some(p), Some(f)) => f.parent().unwrap_or(Path::new(".")).join(p),
        (None, Some(p), None) => p.clone(),
        (None, None, _) => PathBuf::from("."),
    };
    let project = Project::open(&dir)?;
    let _lock = project.lock_for_writing(&super::command_line(), wait)?;
    // Without a file: the project's own pipeline.yaml, else the defaults.
    let settings = match settings {
        Some(s) => s,
        None => PipelineSettings::of_project(&project)?,
    };
    let done = run_job("pipeline", quiet, move |p| crate::pipeline::run(&project, &settings, p))?;
    print::stage_summaries(&done);
    println!("pipeline done: {} stage(s) in {}", done.len(), dir.display());
    Ok(())
}

/// `s2cr demo`: the embedded demo project, every stage, then the app where there is a display.
pub fn demo(args: DemoArgs, quiet: bool, wait: bool) -> Result<()> {
    let project = crate::demo::create_project_from(&args.dir, args.catalog.as_deref())?;
    // Held while the pipeline runs; the app takes it per stage afterwards.
    let lock = project.lock_for_writing(&super::command_line(), wait)?;
    let settings = crate::demo::settings(&project, args.max_steps, args.device.into())?;
    let report = project.report_html(settings.run_name());
    // The project's root is absolute (Project::open makes it so).
    let dir = project.root().to_path_buf();
    println!("demo project: {} (real Sentinel-1/2 data of SEN12MS-CR; the burn scar at t1 is SIMULATED)", dir.display());
    let done = run_job("demo", quiet, move |p| crate::pipeline::run(&project, &settings, p))?;
    drop(lock);
    print::stage_summaries(&done);
    println!("report: {}", report.display());
    println!("{}", crate::demo::ATTRIBUTION);
    let display = std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if args.no_gui || !display {
        if !args.no_gui {
            println!("no display: open the project later with `s2cr gui {}`", dir.display());
        }
        return Ok(());
    }
    open_gui(Some(dir), crate::gui::WindowOptions { offline: true, ..Default::default() })
}

/// `s2cr build-demo-assets` (hidden).
pub fn build_demo_assets(from: &Path, patch: &str, out: &Path) -> Result<()> {
    let patch = crate::tools::demo_assets::Patch::new(patch)?;
    let s = crate::tools::demo_assets::build_assets(from, &patch, out)?;
    println!("{} files in {}", s.files.len(), out.display());
    println!("cloud classes: t0 {:.1} %, t1 {:.1} %", s.t0_cloud_percent, s.t1_cloud_percent);
    println!("simulated scar: {} px, {} of them clear at t1", s.scar_pixels, s.scar_clear_pixels);
    Ok(())
}

/// `s2cr gui` and `s2cr` alone.
#[cfg(feature = "gui")]
pub fn open_gui(project: Option<PathBuf>, options: crate::gui::WindowOptions) -> Result<()> {
    use anyhow::Context as _;
    crate::gui::run(project, options).context("opening the desktop app (use a subcommand for the command line; see --help)")
}

#[cfg(not(feature = "gui"))]
pub fn open_gui(_project: Option<PathBuf>, _offline: bool) -> Result<()> {
    bail!("this s2cr was built without the desktop app (feature `gui`); see `s2cr --help` for the commands")
}

/// `s2cr doctor`: every check with its fix; an error when a required one failed.
pub fn doctor(dir: &Path, offline: bool, json: bool) -> Result<()> {
    let opts = crate::doctor::DoctorOptions { projects: dir, network: !offline, timeout: std::time::Duration::from_secs(5) };
    let checks = crate::doctor::run(&opts);
    if json {
        println!("{}", serde_json::to_string_pretty(&checks).unwrap_or_default());
    } else {
        println!("s2cr {}", crate::provenance::long_version());
        for c in &checks {
            let mark = match (c.ok, c.required) {
                (true, _) => "ok  ",
                (false, true) => "FAIL",
                (false, false) => "warn",
            };
            println!("[{mark}] {}: {}", c.name, c.detail);
            if let Some(fix) = c.fix.as_deref().filter(|_| !c.ok) {
                println!("       fix: {fix}");
            }
        }
    }
    let failed: Vec<&str> = checks.iter().filter(|c| c.required && !c.ok).map(|c| c.name.as_str()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("required checks failed: {} (see the fixes above)", failed.join(", ")))
    }
}

/// `s2cr clean`: what was (or would be) removed, part by part, and the total freed.
pub fn clean(dir: &Path, keep: &[super::args::CleanPartArg], dry_run: bool) -> Result<()> {
    use super::args::CleanPartArg as A;
    use crate::clean::Part;
    let project = Project::open(dir)?;
    let keep: Vec<Part> = keep
        .iter()
        .filter_map(|k| match k {
            A::Raw => Some(Part::Raw),
            A::Preprocessed => Some(Part::Preprocessed),
            A::Dataset => Some(Part::Dataset),
            A::Checkpoints => Some(Part::Checkpoints),
            A::Outputs => None,
        })
        .collect();
    let report = crate::clean::clean(&project, &keep, dry_run)?;
    let asked = keep.clone();
    let keep = crate::clean::kept(&keep);
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    for part in Part::ALL {
        let of: Vec<&crate::clean::Removed> = report.removed.iter().filter(|r| r.part == part).collect();
        let products = if part == Part::Raw { crate::clean::safe_products(&project.raw_dir()) } else { Vec::new() };
        if !products.is_empty() && !keep.contains(&part) {
            println!("{:<13} kept: it holds {} SAFE product(s) put there by hand (e.g. {}), which the fetch cannot download again", part.name(), products.len(), products[0].display());
        } else if keep.contains(&part) && !asked.contains(&part) {
            println!("{:<13} kept (the training set's stacks read it)", part.name());
        } else if keep.contains(&part) {
            println!("{:<13} kept", part.name());
        } else if of.is_empty() {
            println!("{:<13} nothing to remove", part.name());
        } else {
            let (files, bytes) = of.iter().fold((0, 0), |(f, b), r| (f + r.files, b + r.bytes));
            let verb = if dry_run { "would free" } else { "freed" };
            println!("{:<13} {verb} {:.1} MiB ({files} files in {} folder(s))", part.name(), mib(bytes), of.len());
        }
    }
    println!("outputs       kept");
    let verb = if dry_run { "would free" } else { "freed" };
    println!("{verb} {:.1} MiB in {}", mib(report.freed_bytes), project.root().display());
    Ok(())
}

/// `s2cr dist-assets --out DIR`: `man/s2cr.1` (and one page per command, `s2cr-<command>.1`),
/// `completions/s2cr.bash`, `_s2cr` (zsh) and `s2cr.fish`, generated from the command line's
/// own definition so they cannot drift from it.
pub fn dist_assets(out: &Path) -> Result<()> {
    use clap::CommandFactory;
    let man = out.join("man");
    let completions = out.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).map_err(crate::Error::io(d, "creating the folder"))?;
    }
    let cmd = super::args::Cli::command();
    let write_page = |cmd: clap::Command, name: &str| -> Result<()> {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page).map_err(|e| anyhow::anyhow!("rendering the man page {name}: {e}"))?;
        crate::fsutil::write_atomic(&man.join(format!("{name}.1")), &page)?;
        Ok(())
    };
    write_page(cmd.clone(), "s2cr")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("s2cr-{}", sub.get_name());
        // clap names are &'static str without its `string` feature; this command runs once.
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        write_page(sub.clone().name(leaked), &name)?;
    }
    for (shell, file) in [(clap_complete::Shell::Bash, "s2cr.bash"), (clap_complete::Shell::Zsh, "_s2cr"), (clap_complete::Shell::Fish, "s2cr.fish")] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "s2cr", &mut text);
        crate::fsutil::write_atomic(&completions.join(file), &text)?;
    }
    println!("man pages in {}, completions in {}", man.display(), completions.display());
    Ok(())
}
