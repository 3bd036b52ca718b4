//! Checkpoints of a run: `checkpoint.json` naming the latest `checkpoints/step-<n>/` (generator,
//! discriminator, both optimizers' state as burnpack files). A save writes a fresh folder and
//! then renames `checkpoint.json` over the old one, so an interrupted save leaves the previous
//! checkpoint in charge; the folder the live `checkpoint.json` names is never removed or
//! replaced. Each folder holds its own `step.json` (the same record), so a run can go back to
//! an earlier checkpoint ([`rewind`]) when the latest is damaged. Training writes them,
//! inference, import, export and the model card read them.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use super::discriminator::Discriminator;
use super::generator::Generator;
use crate::error::{Error, Result};
use crate::fsutil::load_json;
use crate::project::{Project, RunName};

/// Where a run stopped: `checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Optimizer steps done.
    pub step: usize,
    /// The epoch in progress and the batches of it already done.
    pub epoch: usize,
    pub batch_in_epoch: usize,
    /// Folder with the files, relative to the run.
    pub dir: PathBuf,
    /// The layout of the checkpoint's files ([`CHECKPOINT_FORMAT`]); absent in checkpoints of
    /// versions before it was written, which are format 1.
    #[serde(default = "first_format")]
    pub format: u32,
    /// The device the training that saved it ran on ("CPU (Burn flex, 2 threads)", "GPU (wgpu:
    /// ...)"); absent for imported runs and checkpoints of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The checkpoint layout this version writes and reads: burnpack files of both networks and of
/// both optimizers' state (Burn's Adam state, which the fused CPU Adam keeps too). A later
/// layout raises it and migrates older ones when it reads them.
pub const CHECKPOINT_FORMAT: u32 = 1;

fn first_format() -> u32 {
    1
}

/// The files of a checkpoint.
pub struct CheckpointFiles {
    pub generator: PathBuf,
    pub discriminator: PathBuf,
    pub optim_g: PathBuf,
    pub optim_d: PathBuf,
}

impl CheckpointFiles {
    pub fn in_dir(dir: &Path) -> CheckpointFiles {
        CheckpointFiles { generator: dir.join("generator.bpk"), discriminator: dir.join("discriminator.bpk"), optim_g: dir.join("optim_g.bpk"), optim_d: dir.join("optim_d.bpk") }
    }

    /// Writes both networks and both optimizers' states to these files.
    pub(super) fn save(&self, g: &Generator, d: &Discriminator, opt_g: &ModuleOptimizer, opt_d: &ModuleOptimizer) -> Result<()> {
        g.clone().save_file(&self.generator).map_err(record_err(&self.generator, "saving the generator"))?;
        d.clone().save_file(&self.discriminator).map_err(record_err(&self.discriminator, "saving the discriminator"))?;
        opt_g.save(&self.optim_g).map_err(record_err(&self.optim_g, "saving the generator's optimizer"))?;
        opt_d.save(&self.optim_d).map_err(record_err(&self.optim_d, "saving the discriminator's optimizer"))
    }
}

pub(super) fn record_err(path: &Path, action: &str) -> impl FnOnce(burn::store::RecordError) -> Error {
    Error::checkpoint(path, action)
}

/// The record each checkpoint folder keeps of itself.
pub const STEP_JSON: &str = "step.json";

/// Saves a checkpoint: files into a fresh folder, then `checkpoint.json` names it (atomic), so
/// an interrupted save leaves the previous checkpoint in charge. The folder the live
/// `checkpoint.json` names is never removed or replaced: a save of the same step goes to
/// another name.
pub(super) fn save_checkpoint(project: &Project, run: &RunName, cp: &Checkpoint, g: &Generator, d: &Discriminator, opt_g: &ModuleOptimizer, opt_d: &ModuleOptimizer) -> Result<()> {
    let run_dir = project.run_dir(run);
    let live = latest_checkpoint(project, run).ok().flatten().map(|c| c.dir);
    let mut cp = cp.clone();
    let base = cp.dir.clone();
    let mut n = 1;
    while live.as_ref() == Some(&cp.dir) {
        cp.dir = PathBuf::from(format!("{}.{n}", base.display()));
        n += 1;
    }
    let cp = &cp;
    let dir = run_dir.join(&cp.dir);
    let tmp = project.checkpoints_dir(run).join(format!(".step-{}.partial", cp.step));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp, "creating a checkpoint folder"))?;
    CheckpointFiles::in_dir(&tmp).save(g, d, opt_g, opt_d)?;
    crate::fsutil::save_json(&tmp.join(STEP_JSON), cp)?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(Error::io(&dir, "moving the checkpoint into place"))?;
    crate::fsutil::save_json(&project.checkpoint_json(run), cp)?;
    // Keep the last three.
    let mut old: Vec<(usize, PathBuf)> = std::fs::read_dir(project.checkpoints_dir(run))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.strip_prefix("step-")?.to_string();
                    let step: usize = name.split('.').next()?.parse().ok()?;
                    Some((step, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    old.sort();
    while old.len() > 3 {
        let (_, p) = old.remove(0);
        let _ = std::fs::remove_dir_all(p);
    }
    Ok(())
}

/// The latest checkpoint of a run, if any.
pub fn latest_checkpoint(project: &Project, run: &RunName) -> Result<Option<Checkpoint>> {
    let path = project.checkpoint_json(run);
    if !path.is_file() {
        return Ok(None);
    }
    let cp: Checkpoint = load_json(&path, "delete the run's folder to train it again")?;
    if cp.format > CHECKPOINT_FORMAT {
        return Err(Error::Project {
            path,
            message: format!("checkpoint format {} was written by a newer version of s2cr (this one reads up to {CHECKPOINT_FORMAT}): resume it with that version, or choose another --run", cp.format),
        });
    }
    Ok(Some(cp))
}

/// The checkpoint folders of a run with their own record (`step.json`) and all four files,
/// newest first.
pub fn checkpoint_folders(project: &Project, run: &RunName) -> Vec<Checkpoint> {
    let run_dir = project.run_dir(run);
    let mut found: Vec<Checkpoint> = std::fs::read_dir(project.checkpoints_dir(run))
        .map(|entries| entries.flatten().filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("step-"))).filter_map(|e| load_json::<Checkpoint>(&e.path().join(STEP_JSON), "").ok()).collect())
        .unwrap_or_default();
    found.retain(|cp| {
        let f = CheckpointFiles::in_dir(&run_dir.join(&cp.dir));
        [&f.generator, &f.discriminator, &f.optim_g, &f.optim_d].iter().all(|p| p.metadata().is_ok_and(|m| m.len() > 0))
    });
    found.sort_by(|a, b| b.step.cmp(&a.step).then(b.dir.cmp(&a.dir)));
    found
}

/// What to do when the latest checkpoint of `run` cannot be read: go back to the newest
/// earlier one (the command that does), or start again.
pub fn resume_hint(project: &Project, run: &RunName, broken_step: Option<usize>) -> String {
    let earlier = checkpoint_folders(project, run).into_iter().find(|cp| broken_step.is_none_or(|b| cp.step < b));
    match earlier {
        Some(cp) => format!("go on from the previous checkpoint (step {}) with `s2cr train --run {run} --resume --from-step {}`", cp.step, cp.step),
        None => format!("no earlier checkpoint is whole: train the run again (delete {} or choose another --run)", project.run_dir(run).display()),
    }
}

/// Makes the checkpoint of step `step` (its newest folder) the run's latest, for a resume
/// from it: `checkpoint.json` is rewritten to name it; later folders stay until training
/// replaces them.
pub fn rewind(project: &Project, run: &RunName, step: usize) -> Result<Checkpoint> {
    let folders = checkpoint_folders(project, run);
    let Some(cp) = folders.iter().find(|c| c.step == step).cloned() else {
        let steps: Vec<String> = folders.iter().map(|c| c.step.to_string()).collect();
        return Err(Error::invalid(
            "--from-step",
            format!("run {run} has no whole checkpoint of step {step} (with its step.json); {}", if steps.is_empty() { "it has none: train it again".to_string() } else { format!("it has steps {}", steps.join(", ")) }),
        ));
    };
    crate::fsutil::save_json(&project.checkpoint_json(run), &cp)?;
    Ok(cp)
}
