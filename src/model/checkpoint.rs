//! Checkpoints of a run: `checkpoint.json` naming the latest `checkpoints/step-<n>/` (generator,
//! discriminator, both optimizers' state as burnpack files). A save writes a fresh folder and
//! then renames `checkpoint.json` over the old one, so an interrupted save leaves the previous
//! checkpoint in charge; the folder the live `checkpoint.json` names is never removed or
//! replaced. Training writes them, inference, import, export and the model card read them.

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
