//! `s2cr bench --what model|profile`: the generator's inference and a whole GAN training step
//! (the training stage's own `gan_step`), on the CPU with Burn's convolutions and with ours, on
//! the GPU, and side by side with PyTorch running pix2pix's loop on the same shapes
//! (`scripts/bench_pytorch.py`, embedded, run in the same invocation and interleaved with our
//! runs: machines are noisy, so each figure is the median of several rounds, with its spread).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::module::Module;
use burn::prelude::*;

use super::peak_rss_mib;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::model::config::{GanLoss, ModelConfig};
use crate::model::discriminator::Discriminator;
use crate::model::generator::{Activation, Generator};
use crate::model::cpu::adam::FusedAdam;
use crate::model::step::{GanStep, gan_step};

/// The PyTorch side of the comparison, the same network shapes and loop as ours.
pub const PYTORCH_SCRIPT: &str = include_str!("../../scripts/bench_pytorch.py");

/// One row of the model benchmark.
#[derive(Debug, Clone)]
pub struct ModelBenchRow {
    pub model: String,
    pub params_m: f64,
    pub device: String,
    /// Milliseconds per patch at batch 1 (generator, inference mode).
    pub infer_ms: f64,
    /// Seconds per training step at batch 1 (discriminator and generator, Adam).
    pub train_step_s: f64,
    pub peak_rss_mib: f64,
}

/// The two models measured: pix2pix's unet_256 (or as deep as the patch allows) and a small
/// one, with the names the PyTorch script reports them under.
pub fn models(patch: usize) -> Vec<(&'static str, String, ModelConfig)> {
    let levels = (patch.max(2) as f64).log2().floor() as usize;
    vec![
        ("unet_256", format!("pix2pix unet_256 (ngf 64, depth {})", levels.min(8)), ModelConfig { input_channels: 10, output_channels: 6, depth: levels.min(8), ..Default::default() }),
        ("small", format!("small (ngf 16, ndf 16, depth {})", levels.min(6)), ModelConfig { input_channels: 10, output_channels: 6, ngf: 16, ndf: 16, depth: levels.min(6), ..Default::default() }),
    ]
}

/// The models named in `only` (their keys: unet_256, small), all of them when `only` is empty;
/// an unknown name is refused, naming the known ones.
pub fn selected(patch: usize, only: &[String]) -> Result<Vec<(&'static str, String, ModelConfig)>> {
    let all = models(patch);
    if let Some(unknown) = only.iter().find(|o| !all.iter().any(|(key, _, _)| key == o)) {
        let keys: Vec<&str> = all.iter().map(|(key, _, _)| *key).collect();
        return Err(Error::invalid("--model", format!("unknown model {unknown:?}: use {}", keys.join(" or "))));
    }
    Ok(all.into_iter().filter(|(key, _, _)| only.is_empty() || only.iter().any(|o| o == key)).collect())
}

/// Refuses a patch side the models cannot take (each halves it `depth` times; the
/// discriminator's patches need 32 px or more), naming sides that work.
pub fn check_patch(patch: usize) -> Result<()> {
    let fits = patch >= 32 && models(patch).iter().all(|(_, _, cfg)| patch.is_multiple_of(1 << cfg.depth));
    if fits {
        Ok(())
    } else {
        Err(Error::invalid("--size", format!("{patch} px patches do not fit the models (each halves them up to 8 times): use 256 (pix2pix), or a power of two from 32, or a multiple of 256")))
    }
}

fn bench_err(e: impl std::fmt::Debug) -> Error {
    Error::invalid("benchmark", format!("{e:?}"))
}

/// Inference milliseconds per patch and training seconds per step of one model on one device
/// (`hand_written`: our CPU convolutions, else Burn's), each the mean of `repeats` runs after
/// one warm-up.
pub fn measure(cfg: &ModelConfig, dev: &Device, hand_written: bool, patch: usize, repeats: usize) -> Result<(f64, f64, f64)> {
    crate::model::conv::set_hand_written(hand_written);
    let result = measure_inner(cfg, dev, patch, repeats, hand_written);
    crate::model::conv::set_hand_written(true);
    result
}

fn measure_inner(cfg: &ModelConfig, dev: &Device, patch: usize, repeats: usize, ours: bool) -> Result<(f64, f64, f64)> {
    let read = |t: Tensor<4>| -> Result<()> { t.try_into_vec_as::<f32>().map(|_| ()).map_err(bench_err) };
    let ad = dev.clone().autodiff();
    let mut g = Generator::new(cfg, Activation::Tanh, &ad);
    let mut d = Discriminator::new(cfg, &ad);
    let params_m = g.num_params() as f64 / 1e6;
    let x = Tensor::<4>::random([1, 10, patch, patch], burn::tensor::Distribution::Normal(0.0, 1.0), dev);
    // Our inference folds the batch norms into the convolutions, as `s2cr infer` does; Burn's
    // row runs the network as it is.
    let infer = if ours { g.valid().fold_batch_norm() } else { g.valid() };
    read(infer.forward(x.clone()))?;
    let start = Instant::now();
    for _ in 0..repeats.max(1) {
        read(infer.forward(x.clone()))?;
    }
    let infer_ms = 1000.0 * start.elapsed().as_secs_f64() / repeats.max(1) as f64;
    drop(infer);
    let mut opt_g = FusedAdam::init(0.5, 0.999, 1e-8);
    let mut opt_d = FusedAdam::init(0.5, 0.999, 1e-8);
    let x = Tensor::<4>::random([1, 10, patch, patch], burn::tensor::Distribution::Normal(0.0, 1.0), &ad);
    let y = Tensor::<4>::random([1, 6, patch, patch], burn::tensor::Distribution::Normal(0.0, 1.0), &ad);
    let valid = Tensor::<4>::ones([1, 1, patch, patch], &ad);
    // The training stage's own step (pix2pix's loop, least-squares GAN loss, lambda 100).
    let mut step = |g: Generator, d: Discriminator| -> Result<(Generator, Discriminator)> {
        let s = GanStep { g, d, opt_g: &mut opt_g, opt_d: &mut opt_d, lr: 2e-4, gan_loss: GanLoss::LeastSquares, l1_weight: 100.0, spectral: None };
        let (g, d, losses) = gan_step(s, x.clone(), y.clone(), valid.clone());
        // Wait for the device: read the loss back (the next step's work queues behind this
        // step's updates).
        losses.g_l1.try_into_vec_as::<f32>().map_err(bench_err)?;
        Ok((g, d))
    };
    (g, d) = step(g, d)?;
    let start = Instant::now();
    let steps = repeats.clamp(1, 3);
    for _ in 0..steps {
        (g, d) = step(g, d)?;
    }
    let train_step_s = start.elapsed().as_secs_f64() / steps as f64;
    drop((g, d));
    Ok((params_m, infer_ms, train_step_s))
}

/// Times the generator's inference and a full GAN training step on `patch` x `patch` patches
/// with 10 input and 6 output channels, for pix2pix's unet_256 and a small model, on the CPU
/// (Burn's convolutions and ours) and, with `with_gpu`, on the wgpu adapter.
pub fn model(patch: usize, only: &[String], repeats: usize, with_gpu: bool, progress: &Progress) -> Result<Vec<ModelBenchRow>> {
    check_patch(patch)?;
    let models = selected(patch, only)?;
    // The CPU twice: Burn's own convolutions (the baseline) and the hand-written ones of
    // `model::cpu` (what training and inference use).
    let (cpu, cpu_name) = crate::model::device(crate::model::DeviceChoice::Cpu)?;
    let mut devices = vec![(cpu.clone(), format!("{cpu_name}, Burn's convolutions"), false), (cpu, format!("{cpu_name}, ours"), true)];
    if with_gpu {
        if let Ok((gpu, name)) = crate::model::device(crate::model::DeviceChoice::Gpu) {
            devices.push((gpu, name, true));
        }
    }
    let mut rows = Vec::new();
    for (_, name, cfg) in models {
        for (dev, dev_name, hand_written) in &devices {
            progress.check_cancelled()?;
            progress.info(format!("{name} on {dev_name}"));
            let (params_m, infer_ms, train_step_s) = measure(&cfg, dev, *hand_written, patch, repeats)?;
            rows.push(ModelBenchRow { model: name.clone(), params_m, device: dev_name.clone(), infer_ms, train_step_s, peak_rss_mib: peak_rss_mib() });
        }
    }
    Ok(rows)
}

/// The median and the range of a set of measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Spread { median, min: v.first().copied().unwrap_or(f64::NAN), max: v.last().copied().unwrap_or(f64::NAN) }
    }
}

/// One model of the comparison: ours and PyTorch's, inference and training, over the rounds.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub model: String,
    pub params_m: f64,
    pub ours_infer_ms: Spread,
    pub ours_train_s: Spread,
    pub torch_infer_ms: Spread,
    pub torch_train_s: Spread,
}

/// What the comparison ran with.
#[derive(Debug, Clone)]
pub struct ComparisonRun {
    pub rows: Vec<Comparison>,
    pub rounds: usize,
    pub threads: usize,
    pub torch_version: String,
    pub python: PathBuf,
}

/// One line of the PyTorch script's `--json` output.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TorchRow {
    pub model: String,
    pub torch: String,
    pub threads: usize,
    pub infer_ms: f64,
    pub train_step_s: f64,
}

/// The Python interpreter: `$S2CR_PYTHON`, else `python3`.
pub fn python() -> PathBuf {
    std::env::var_os("S2CR_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("python3"))
}

/// PyTorch's version when `python` can import it; the reason otherwise.
pub fn torch_version(python: &Path) -> std::result::Result<String, String> {
    let out = Command::new(python).args(["-c", "import torch; print(torch.__version__)"]).output().map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("{} cannot import torch ({})", python.display(), err.lines().last().unwrap_or("no message").trim()))
    }
}

/// Runs the embedded PyTorch script once: one row per model.
pub fn run_pytorch(python: &Path, script: &Path, patch: usize, models: &[&str], repeats: usize, threads: usize) -> Result<Vec<TorchRow>> {
    let out = Command::new(python)
        .arg(script)
        .args(["--json", "--size", &patch.to_string(), "--repeats", &repeats.to_string(), "--threads", &threads.to_string(), "--models", &models.join(",")])
        .output()
        .map_err(|e| Error::invalid("benchmark", format!("running {} {}: {e}", python.display(), script.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::invalid("benchmark", format!("the PyTorch benchmark failed ({}): {}", out.status, err.lines().rev().take(5).collect::<Vec<_>>().join(" / "))));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str::<TorchRow>(l).map_err(|e| Error::invalid("benchmark", format!("the PyTorch benchmark printed {l:?}: {e}"))))
        .collect()
}

/// Ours and PyTorch's on the CPU, `rounds` times interleaved (ours for every model, then
/// PyTorch for every model), with the same thread count, shapes and loop.
pub fn compare_pytorch(patch: usize, only: &[String], rounds: usize, repeats: usize, progress: &Progress) -> Result<ComparisonRun> {
    check_patch(patch)?;
    let models = selected(patch, only)?;
    let keys: Vec<&str> = models.iter().map(|(key, _, _)| *key).collect();
    let python = python();
    let torch_version = torch_version(&python).map_err(|why| {
        Error::invalid("--compare-pytorch", format!("{why}; install it with: python3 -m pip install -r scripts/requirements-bench.txt (or point S2CR_PYTHON to a Python that has it)"))
    })?;
    let (cpu, _) = crate::model::device(crate::model::DeviceChoice::Cpu)?;
    let threads = rayon::current_num_threads();
    let dir = tempfile_dir()?;
    let script = dir.join("bench_pytorch.py");
    std::fs::write(&script, PYTORCH_SCRIPT).map_err(Error::io(&script, "writing the PyTorch benchmark"))?;
    let rounds = rounds.max(1);
    // Per model: ours (params, infer, train) and PyTorch's (infer, train), one entry a round.
    let mut ours: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); models.len()];
    let mut torch: Vec<Vec<(f64, f64)>> = vec![Vec::new(); models.len()];
    progress.started(Some(rounds as u64));
    let result = (|| -> Result<()> {
        for round in 0..rounds {
            for (i, (_, name, cfg)) in models.iter().enumerate() {
                progress.check_cancelled()?;
                progress.info(format!("round {} of {rounds}: {name}, ours", round + 1));
                ours[i].push(measure(cfg, &cpu, true, patch, repeats)?);
            }
            progress.check_cancelled()?;
            progress.info(format!("round {} of {rounds}: PyTorch", round + 1));
            for row in run_pytorch(&python, &script, patch, &keys, repeats, threads)? {
                if let Some(i) = models.iter().position(|(key, _, _)| *key == row.model) {
                    torch[i].push((row.infer_ms, row.train_step_s));
                }
            }
            progress.advanced(round as u64 + 1, rounds as u64, format!("round {} of {rounds}", round + 1));
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let rows = models
        .iter()
        .enumerate()
        .map(|(i, (_, name, _))| Comparison {
            model: name.clone(),
            params_m: ours[i].first().map_or(f64::NAN, |r| r.0),
            ours_infer_ms: Spread::of(&ours[i].iter().map(|r| r.1).collect::<Vec<_>>()),
            ours_train_s: Spread::of(&ours[i].iter().map(|r| r.2).collect::<Vec<_>>()),
            torch_infer_ms: Spread::of(&torch[i].iter().map(|r| r.0).collect::<Vec<_>>()),
            torch_train_s: Spread::of(&torch[i].iter().map(|r| r.1).collect::<Vec<_>>()),
        })
        .collect();
    Ok(ComparisonRun { rows, rounds, threads, torch_version, python })
}

/// A fresh folder for the embedded script.
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("s2cr-bench-pytorch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir, "creating a temporary folder"))?;
    Ok(dir)
}

/// The CPU backend's matrix-product throughput, GFLOP/s, on `n` x `n` matrices: the ceiling
/// every convolution form here works under.
pub fn matmul_gflops(n: usize, repeats: usize) -> Result<f64> {
    let dev = Device::flex();
    let a = Tensor::<2>::random([n, n], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let b = Tensor::<2>::random([n, n], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let run = || -> Result<()> { a.clone().matmul(b.clone()).try_into_vec_as::<f32>().map(|_| ()).map_err(bench_err) };
    run()?;
    let start = Instant::now();
    for _ in 0..repeats.max(1) {
        run()?;
    }
    let secs = start.elapsed().as_secs_f64() / repeats.max(1) as f64;
    Ok(2.0 * (n * n * n) as f64 / secs / 1e9)
}

/// One level of the generator profile: milliseconds of each layer alone, Burn's own kernels
/// against the hand-written ones of `model::cpu`.
#[derive(Debug, Clone)]
pub struct LayerProfile {
    pub level: usize,
    pub input_px: usize,
    pub conv_burn_ms: f64,
    pub conv_ours_ms: f64,
    pub up_burn_ms: f64,
    pub up_ours_ms: f64,
    /// Forward and backward (gradients of input and weight) of both layers, as in a training
    /// step, Burn's kernels / ours.
    pub train_burn_ms: f64,
    pub train_ours_ms: f64,
    /// The rest of the level in training: the encoder's batch norm and LeakyReLU and the
    /// decoder's batch norm, ReLU and skip concatenation, forward + backward.
    pub rest_train_ms: f64,
}

/// Where the generator's time goes: each level's encoder convolution and decoder transposed
/// convolution of a generator (`patch` px; pix2pix's unet_256 or the small model, see
/// [`models`]), timed alone on the CPU backend, forward (inference) and forward +
/// backward (training), Burn's kernels and ours.
pub fn generator_profile(patch: usize, cfg: &ModelConfig, repeats: usize) -> Result<Vec<LayerProfile>> {
    use crate::model::conv::{down, set_hand_written, up};
    use crate::model::config::NormKind;
    use crate::model::generator::{Norm, down_conv, level_channels, up_conv};
    crate::model::keep_freed_memory();
    let dev = Device::flex();
    let depth = cfg.depth.min((patch.max(2) as f64).log2().floor() as usize);
    let ch = |i: usize| level_channels(cfg.ngf, i);
    let read = |t: Tensor<4>| -> Result<()> { t.try_into_vec_as::<f32>().map(|_| ()).map_err(|e| Error::invalid("benchmark", format!("{e:?}"))) };
    // Burn's kernel then ours, each warmed up once.
    let time = |f: &dyn Fn() -> Result<()>| -> Result<(f64, f64)> {
        let mut ms = [0.0; 2];
        for (i, hand_written) in [false, true].into_iter().enumerate() {
            set_hand_written(hand_written);
            f()?;
            let start = Instant::now();
            for _ in 0..repeats.max(1) {
                f()?;
            }
            ms[i] = 1000.0 * start.elapsed().as_secs_f64() / repeats.max(1) as f64;
        }
        set_hand_written(true);
        Ok((ms[0], ms[1]))
    };
    let mut rows = Vec::new();
    for i in 0..depth {
        let size = patch >> i;
        let c_in = if i == 0 { cfg.input_channels } else { ch(i - 1) };
        let conv = down_conv(c_in, ch(i), false, &dev);
        let x = Tensor::<4>::random([1, c_in, size, size], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let (conv_burn_ms, conv_ours_ms) = time(&|| read(down(&conv, x.clone())))?;
        let innermost = i == depth - 1;
        let c_up_in = if innermost { ch(i) } else { 2 * ch(i) };
        let c_up_out = if i == 0 { cfg.output_channels } else { ch(i - 1) };
        let upc = up_conv(c_up_in, c_up_out, false, &dev);
        let y = Tensor::<4>::random([1, c_up_in, (size / 2).max(1), (size / 2).max(1)], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let (up_burn_ms, up_ours_ms) = time(&|| read(up(&upc, y.clone())))?;
        // Training: both layers forward, then the gradients of their inputs and weights.
        let ad = dev.clone().autodiff();
        let (conv_ad, up_ad) = (down_conv(c_in, ch(i), false, &ad), up_conv(c_up_in, c_up_out, false, &ad));
        let xa = Tensor::<4>::random([1, c_in, size, size], burn::tensor::Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let ya = Tensor::<4>::random([1, c_up_in, (size / 2).max(1), (size / 2).max(1)], burn::tensor::Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let train = || -> Result<()> {
            let grads = (down(&conv_ad, xa.clone()).sum() + up(&up_ad, ya.clone()).sum()).backward();
            let g = conv_ad.weight.grad(&grads).ok_or_else(|| Error::invalid("benchmark", "no gradient"))?;
            g.try_into_vec_as::<f32>().map(|_| ()).map_err(|e| Error::invalid("benchmark", format!("{e:?}")))
        };
        let (train_burn_ms, train_ours_ms) = time(&train)?;
        // The element-wise rest of the level, on the encoder's output and the decoder's.
        let (enc_norm, dec_norm) = (Norm::new(NormKind::Batch, ch(i), &ad), Norm::new(NormKind::Batch, c_up_out, &ad));
        let half = (size / 2).max(1);
        let e = Tensor::<4>::random([1, ch(i), half, half], burn::tensor::Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let u = Tensor::<4>::random([1, c_up_out, size, size], burn::tensor::Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let skip = Tensor::<4>::random([1, c_up_out, size, size], burn::tensor::Distribution::Normal(0.0, 1.0), &ad);
        let rest = || -> Result<()> {
            let a = burn::tensor::activation::leaky_relu(enc_norm.forward(e.clone()), 0.2);
            let b = burn::tensor::activation::relu(Tensor::cat(vec![skip.clone(), dec_norm.forward(u.clone())], 1));
            let grads = (a.sum() + b.sum()).backward();
            let g = e.grad(&grads).ok_or_else(|| Error::invalid("benchmark", "no gradient"))?;
            g.try_into_vec_as::<f32>().map(|_| ()).map_err(|e| Error::invalid("benchmark", format!("{e:?}")))
        };
        let (_, rest_train_ms) = time(&rest)?;
        rows.push(LayerProfile { level: i, input_px: size, conv_burn_ms, conv_ours_ms, up_burn_ms, up_ours_ms, train_burn_ms, train_ours_ms, rest_train_ms });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_sides_the_models_cannot_take_are_refused() {
        for ok in [32, 64, 256, 512, 768] {
            assert!(check_patch(ok).is_ok(), "{ok}");
        }
        for bad in [0, 1, 16, 100, 300] {
            let err = check_patch(bad).unwrap_err().to_string();
            assert!(err.contains("use 256"), "{bad}: {err}");
        }
    }

    #[test]
    fn models_can_be_chosen_by_name() {
        let names = |only: &[&str]| selected(256, &only.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map(|m| m.iter().map(|(key, _, _)| *key).collect::<Vec<_>>());
        assert_eq!(names(&[]).unwrap(), ["unet_256", "small"]);
        assert_eq!(names(&["small"]).unwrap(), ["small"]);
        let err = names(&["small", "resnet"]).unwrap_err().to_string();
        assert!(err.contains("--model") && err.contains("\"resnet\"") && err.contains("unet_256 or small"), "{err}");
    }

    #[test]
    fn spreads_are_medians_and_ranges() {
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]), Spread { median: 2.0, min: 1.0, max: 3.0 });
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0, f64::NAN]).median, 2.5);
        assert!(Spread::of(&[]).median.is_nan());
    }

    #[test]
    fn the_pytorch_script_runs_the_same_models_and_prints_json() {
        // The script names its models as we do, and its loop freezes D in the G step.
        for (key, _, _) in models(256) {
            assert!(PYTORCH_SCRIPT.contains(&format!("\"{key}\"")), "{key} missing from the script");
        }
        assert!(PYTORCH_SCRIPT.contains("set_requires_grad(d, False)"));
        let python = python();
        if let Err(why) = torch_version(&python) {
            println!("skipped running the PyTorch benchmark: {why}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("bench_pytorch.py");
        std::fs::write(&script, PYTORCH_SCRIPT).unwrap();
        let rows = run_pytorch(&python, &script, 64, &["unet_256", "small"], 1, 1).unwrap();
        assert_eq!(rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(), ["unet_256", "small"]);
        assert!(rows.iter().all(|r| r.infer_ms > 0.0 && r.train_step_s > 0.0 && r.threads == 1), "{rows:?}");
    }
}
