//! The `s2cr` command line, split as ripgrep splits its arguments: `args` (clap's definitions),
//! `convert` (arguments into the library's typed settings), `commands` (one thin function per
//! command) with `print` (how results read), `render` (job events as progress bars, Ctrl-C)
//! and `bench` (benchmark tables). This file sets up logging and dispatches.
//!
//! Nothing under `cli` holds pipeline logic: every command opens the project, converts its
//! arguments, runs one library function as a job and prints what it returned.

pub mod args;
mod bench;
mod commands;
mod convert;
mod print;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

pub use args::{Cli, Command};
pub use render::{event_lines, render_job, run_job};

use args::RasterCommand;
use commands::{here, open_gui};

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::error_chain(e.as_ref()));
            // A cancelled job (Ctrl-C) ends as a shell's interrupted command does.
            if e.chain().any(|c| matches!(c.downcast_ref::<crate::Error>(), Some(crate::Error::Cancelled))) { ExitCode::from(130) } else { ExitCode::FAILURE }
        }
    }
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

/// Whether a command writes into the project folder (and so takes its lock while it runs).
/// `run` and `demo` find their project themselves and lock it there. One tile of a tiled
/// inference (`infer --tiles N --tile I`) writes its own tile file only, and the tiles of a
/// cluster run at once by design: it takes no lock (the merge does).
fn writes_project(command: &Command) -> bool {
    match command {
        Command::Infer(args) => args.tile.is_none(),
        Command::Search(_) | Command::Fetch(_) | Command::Preprocess(_) | Command::Dataset(_) | Command::Train(_) => true,
        Command::Export(_) | Command::Model(_) => true,
        Command::Assess(args) => args.out.is_none(),
        Command::Clean { dry_run, .. } => !dry_run,
        _ => false,
    }
}

/// This process's command line, as a lock's holder says it (`s2cr run pipeline.yaml`).
pub(crate) fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let line = format!("s2cr {}", args.join(" "));
    line.chars().take(200).collect()
}

/// The write lock of the project in `dir`, when there is a project there (otherwise the command
/// itself says what is wrong).
pub(crate) fn lock_project(dir: &std::path::Path, wait: bool) -> Result<Option<crate::project::ProjectLock>> {
    if !dir.join(crate::project::PROJECT_FILE).is_file() {
        return Ok(None);
    }
    let project = crate::project::Project::open(dir)?;
    Ok(Some(project.lock_for_writing(&command_line(), wait)?))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let project: Option<PathBuf> = cli.project;
    let quiet = cli.quiet;
    let wait = cli.wait;
    // One writer per project: a command that writes it holds its lock until it returns.
    let _lock = match &cli.command {
        Some(c) if writes_project(c) => lock_project(&here(project.clone()), wait)?,
        _ => None,
    };
    match cli.command {
        None => open_gui(project, Default::default()),
        #[cfg(feature = "gui")]
        Some(Command::Gui { dir, offline, renderer, frame_stats }) => {
            open_gui(dir.or(project), crate::gui::WindowOptions { offline, renderer: renderer.into(), frame_stats })
        }
        Some(Command::Init(args)) => commands::init(args),
        Some(Command::Aoi(cmd)) => commands::aoi(cmd),
        Some(Command::Info { dir }) => commands::info(&here(dir.or(project))),
        Some(Command::Raster(RasterCommand::Info { location })) => commands::raster_info(&location),
        Some(Command::Search(args)) => commands::search(args, &here(project), quiet),
        Some(Command::Fetch(args)) => commands::fetch(args, &here(project), quiet),
        Some(Command::Preprocess(args)) => commands::preprocess(args, &here(project), quiet),
        Some(Command::Dataset(args)) => commands::dataset(args, &here(project), quiet),
        Some(Command::Train(args)) => commands::train(args, &here(project), quiet),
        Some(Command::Infer(args)) => commands::infer(args, &here(project), quiet),
        Some(Command::Assess(args)) => commands::assess(args, project, quiet),
        Some(Command::Export(args)) => commands::export(args, &here(project)),
        Some(Command::Model(cmd)) => commands::model(cmd, &here(project)),
        Some(Command::Run { pipeline }) => commands::run_pipeline(pipeline, project, quiet, wait),
        Some(Command::Demo(args)) => commands::demo(args, quiet, wait),
        Some(Command::Doctor { offline, json }) => commands::doctor(&here(project), offline, json),
        Some(Command::Clean { keep, dry_run }) => commands::clean(&here(project), &keep, dry_run),
        Some(Command::DistAssets { out }) => commands::dist_assets(&out),
        Some(Command::BuildDemoAssets { from, out, patch }) => commands::build_demo_assets(&from, &patch, &out),
        Some(Command::Bench(args)) => bench::run(&args, quiet),
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
}
