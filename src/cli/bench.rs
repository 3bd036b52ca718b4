//! `s2cr bench`: runs a benchmark of `crate::tools` (as a job where it reports progress) and
//! prints its table, with the baseline each figure compares against.
//!
//! This module prints only: what is generated and measured lives in `crate::tools::bench` and
//! `crate::tools::filters_bench`.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::args::{BenchArgs, BenchWhat};
use super::render::run_job;
use crate::tools::bench::{self, peak_rss_mib};
use crate::tools::model_bench;

/// `s2cr bench --what ...`.
pub fn run(args: &BenchArgs, quiet: bool) -> Result<()> {
    let (size, dir) = (args.size, args.dir.clone());
    let what = clap::ValueEnum::to_possible_value(&args.what).map(|v| v.get_name().to_string()).unwrap_or_default();
    if !args.model.is_empty() && !matches!(args.what, BenchWhat::Model | BenchWhat::Profile) {
        anyhow::bail!("--model chooses the models of --what model or --what profile; leave it out for --what {what}");
    }
    if !args.overlap.is_empty() && args.what != BenchWhat::Infer {
        anyhow::bail!("--overlap chooses the overlaps of --what infer; leave it out for --what {what}");
    }
    match args.what {
        BenchWhat::Filters => bench_filters(size),
        BenchWhat::Preprocess => bench_preprocess(size, dir, quiet),
        BenchWhat::Loader => bench_loader(size, dir, quiet),
        BenchWhat::Model if args.compare_pytorch => bench_compare_pytorch(size, args.model.clone(), args.rounds as usize, quiet),
        BenchWhat::Model => bench_model(size, args.model.clone(), !args.no_gpu, quiet),
        BenchWhat::Profile => bench_profile(size, &args.model),
        BenchWhat::Infer => bench_infer(size, dir, &args.overlap, quiet),
        BenchWhat::Display => bench_display(size, dir, quiet),
        BenchWhat::Assess => bench_assess(size, dir, quiet),
    }
}

/// Throughput of the speckle filters on synthetic 4-look speckle, with the 7 x 7 boxcar as the
/// baseline of the same run.
fn bench_filters(size: usize) -> Result<()> {
    let r = crate::tools::filters_bench::filters(size);
    println!("{0} x {0} image ({1:.1} Mpixel), {2} threads; peak RSS after setup {3:.0} MiB", r.size, r.megapixels, r.threads, r.setup_peak_rss_mib);
    for row in &r.rows {
        println!("{:<24} {:>8.2} s  {:>7.2} Mpixel/s  peak RSS {:.0} MiB", row.name, row.secs, row.mpixel_per_sec, row.peak_rss_mib);
    }
    Ok(())
}

/// Ours against PyTorch on the CPU, interleaved, medians with their range and the ratio.
fn bench_compare_pytorch(size: usize, only: Vec<String>, rounds: usize, quiet: bool) -> Result<()> {
    let run = run_job("bench", quiet, move |p| model_bench::compare_pytorch(size, &only, rounds, 3, p))?;
    println!(
        "conditional GAN on the CPU, 10 input and 6 output channels, {size} x {size} patches, batch 1, {} threads; ours (Burn) and PyTorch {} ({}), interleaved, median of {} rounds [min-max]",
        run.threads,
        run.torch_version,
        run.python.display(),
        run.rounds
    );
    println!("  {:<36} {:<18} {:>24} {:>24} {:>8}", "model", "", "ours", "PyTorch", "ratio");
    let cell = |s: model_bench::Spread, digits: usize| format!("{:.d$} [{:.d$}-{:.d$}]", s.median, s.min, s.max, d = digits);
    for r in &run.rows {
        println!("  {:<36} {:<18} {:>24} {:>24} {:>8.2}", r.model, "train step (s)", cell(r.ours_train_s, 3), cell(r.torch_train_s, 3), r.ours_train_s.median / r.torch_train_s.median);
        println!("  {:<36} {:<18} {:>24} {:>24} {:>8.2}", "", "inference (ms)", cell(r.ours_infer_ms, 1), cell(r.torch_infer_ms, 1), r.ours_infer_ms.median / r.torch_infer_ms.median);
    }
    println!("  ratio: ours / PyTorch (below 1: ours is faster)");
    Ok(())
}

/// Generator inference and GAN training step times.
fn bench_model(size: usize, only: Vec<String>, with_gpu: bool, quiet: bool) -> Result<()> {
    let models = only.clone();
    let rows = run_job("bench", quiet, move |p| model_bench::model(size, &models, 3, with_gpu, p))?;
    println!("conditional GAN, 10 input and 6 output channels, {size} x {size} patches, batch 1, {} CPU threads", rayon::current_num_threads());
    println!("  {:<36} {:>8} {:<48} {:>12} {:>14} {:>10}", "model", "params", "device", "ms/patch", "s/train step", "peak RSS");
    for r in &rows {
        println!("  {:<36} {:>7.1}M {:<48} {:>12.1} {:>14.3} {:>7.0} MiB", r.model, r.params_m, r.device, r.infer_ms, r.train_step_s, r.peak_rss_mib);
    }
    println!("  (PyTorch on the same machine, in the same run: s2cr bench --what model --size {size} --compare-pytorch)");
    bench_profile(size, &only)
}

/// Each level's convolution and transposed convolution of each generator asked for (unet_256
/// by default), timed alone, Burn's kernels against the hand-written ones the CPU uses.
fn bench_profile(size: usize, only: &[String]) -> Result<()> {
    let only = if only.is_empty() { vec!["unet_256".to_string()] } else { only.to_vec() };
    for (key, _, cfg) in model_bench::selected(size, &only)? {
        profile_generator(size, key, &cfg)?;
    }
    println!("  baseline: Burn's CPU matrix product, 1024 x 1024 x 1024: {:.0} GFLOP/s", model_bench::matmul_gflops(1024, 5)?);
    Ok(())
}

fn profile_generator(size: usize, key: &str, cfg: &crate::model::config::ModelConfig) -> Result<()> {
    println!("where {key}'s time goes on the CPU (each layer alone, ms; Burn's kernel / ours):");
    println!("  {:>5} {:>9} {:>22} {:>30} {:>36} {:>24}", "level", "input px", "conv 4x4/2", "transposed conv 4x4/2", "both, forward + backward", "norms, ReLUs, cat (f+b)");
    let profile = model_bench::generator_profile(size, cfg, 3)?;
    for r in &profile {
        println!(
            "  {:>5} {:>9} {:>10.2} / {:>9.2} {:>18.2} / {:>9.2} {:>24.2} / {:>9.2} {:>24.2}",
            r.level, r.input_px, r.conv_burn_ms, r.conv_ours_ms, r.up_burn_ms, r.up_ours_ms, r.train_burn_ms, r.train_ours_ms, r.rest_train_ms
        );
    }
    let sum = |f: fn(&model_bench::LayerProfile) -> f64| profile.iter().map(f).sum::<f64>();
    println!(
        "  total: convolutions {:.1} ms (Burn) / {:.1} ms (ours), transposed convolutions {:.1} ms (Burn) / {:.1} ms (ours)",
        sum(|r| r.conv_burn_ms),
        sum(|r| r.conv_ours_ms),
        sum(|r| r.up_burn_ms),
        sum(|r| r.up_ours_ms)
    );
    println!("  forward + backward of both: {:.1} ms (Burn) / {:.1} ms (ours); norms, ReLUs and concatenations {:.1} ms", sum(|r| r.train_burn_ms), sum(|r| r.train_ours_ms), sum(|r| r.rest_train_ms));
    Ok(())
}

/// Runs a benchmark job in a fresh working folder (under `dir` or the system's temporary
/// folder), removed afterwards whatever happened.
fn bench_in_dir<T: Send + 'static>(dir: Option<PathBuf>, quiet: bool, f: impl FnOnce(&Path, &crate::job::Progress) -> crate::error::Result<T> + Send + 'static) -> Result<T> {
    let dir = dir.unwrap_or_else(std::env::temp_dir).join(format!("s2cr-bench-{}", std::process::id()));
    let work = dir.clone();
    let result = run_job("bench", quiet, move |p| f(&work, p));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Whole-grid inference: windows per second, the peak memory of the inference alone, and the
/// seams, at the previous default overlap, smaller ones and today's.
fn bench_infer(size: usize, dir: Option<PathBuf>, overlaps: &[f64], quiet: bool) -> Result<()> {
    let overlaps = overlaps.to_vec();
    let r = bench_in_dir(dir, quiet, move |work, p| bench::infer(size, work, &overlaps, p))?;
    let device = r.rows.first().map(|row| row.report.device.clone()).unwrap_or_default();
    println!("whole-grid inference, {0} x {0} grid, {1} px windows, {2}, {3}", r.size, r.patch, r.model, device);
    println!("  set-up (scenes, dataset, one training step)  {:>8.1} s", r.setup_secs);
    println!("  {:<22} {:>8} {:>9} {:>10} {:>12} {:>11} {:>11} {:>12}", "windows overlapping by", "windows", "seconds", "windows/s", "Mpixel/s", "peak MiB", "MAE border", "border/inside");
    for row in &r.rows {
        let rep = &row.report;
        let peak = row.peak_rss_mib.map(|m| format!("{m:.0}")).unwrap_or_else(|| format!("({:.0})", peak_rss_mib()));
        println!(
            "  {:<22} {:>8} {:>9.1} {:>10.1} {:>12.2} {:>11} {:>11} {:>12}",
            row.overlap,
            rep.windows,
            rep.seconds,
            rep.windows as f64 / rep.seconds,
            (r.size * r.size) as f64 / 1e6 / rep.seconds,
            peak,
            if row.seams.border_pixels > 0 { format!("{:.4}", row.seams.border_mae) } else { "-".into() },
            row.seams.ratio().map(|q| format!("{q:.3}")).unwrap_or_else(|| "no border".into())
        );
    }
    println!("  (border: within {} px of a border between windows; the ratio is the MAE there over the MAE elsewhere, against the generated label)", bench::SEAM_BAND);
    Ok(())
}

fn bench_assess(size: usize, dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    // The inputs stay (9 GB take minutes to write): a second build can be measured on them.
    let work = dir.unwrap_or_else(std::env::temp_dir).join("s2cr-bench-assess");
    let out = work.clone();
    let r = run_job("bench", quiet, move |p| bench::assess(size, &out, p))?;
    let _ = std::fs::remove_dir_all(work.join("assess-out"));
    let band_mib = (r.size * r.size * 4) as f64 / 1_048_576.0;
    println!("assessment of a {0} x {0} pre-fire, real and synthetic image, six Float32 bands each, and the dataset's ten input bands ({1:.1} GB of inputs, written in {2:.0} s)", r.size, r.input_bytes as f64 / 1e9, r.generate_secs);
    println!("  one whole-grid Float32 band would be {band_mib:.0} MiB");
    println!("  assessment with a held-out split:    {:>7.1} s, burned kappa {:.3}", r.assess_secs, r.kappa);
    let kappas: Vec<String> = r.baseline_kappas.iter().map(|(id, k)| format!("{id} {k:.3}")).collect();
    println!("  the same with the baselines:         {:>7.1} s (+{:.0} %; kappa {})", r.with_baselines_secs, 100.0 * (r.with_baselines_secs / r.assess_secs - 1.0), kappas.join(", "));
    println!("    the baselines' thread ran for:     {:>7.1} s, beside the assessment's strips and writing", r.baselines_secs);
    println!("  and the gap-filled image too:        {:>7.1} s (+{:.0} %)", r.with_gapfill_secs, 100.0 * (r.with_gapfill_secs / r.assess_secs - 1.0));
    println!("  (the composite of the two window acquisitions, a preprocess cost: {:.1} s)", r.composite_secs);
    if let Some(m) = r.plain_rss_mib {
        println!("  peak RSS during the assessment without the baselines {m:>6.0} MiB");
    }
    match r.peak_rss_mib {
        Some(m) => println!("  peak RSS during the assessment with the baselines    {m:>6.0} MiB"),
        None => println!("  peak RSS of the whole process                {:>8.0} MiB (could not reset it after the set-up)", peak_rss_mib()),
    }
    println!(
        "  inputs kept in {}; the same inputs with another build: /usr/bin/time -v s2cr assess --pre {} --real {} --synthetic {} --out DIR",
        work.display(),
        r.inputs.pre.display(),
        r.inputs.real.display(),
        r.inputs.synthetic.display()
    );
    Ok(())
}

fn bench_display(size: usize, dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    let r = bench_in_dir(dir, quiet, move |work, p| bench::display(size, work, p))?;
    println!("layer display, {0} x {0} three-band COG (written in {1:.1} s), display image {2} x {3}, CPU", r.size, r.write_secs, r.preview.0, r.preview.1);
    println!("  baseline: reading the display image from disk (overviews)   {:>8.1} ms", r.load_ms);
    println!("  stretch change (percentiles + re-colour)                    {:>8.1} ms  ({:.2}x baseline)", r.stretch_ms, r.stretch_ms / r.load_ms);
    println!("  gamma change (re-colour)                                    {:>8.1} ms  ({:.2}x baseline)", r.gamma_ms, r.gamma_ms / r.load_ms);
    println!("  pan/zoom: mesh of 17 x 17 vertices to lon/lat (once)        {:>8.3} ms; then one textured mesh a frame", r.mesh_ms);
    match &r.gpu {
        Some((name, upload, frame)) => {
            println!("  GPU: {name}");
            println!("  GPU upload of the channels (once per layer)                 {upload:>8.1} ms");
            println!("  GPU stretch change: uniform + draw + read-back of the frame {frame:>8.1} ms  ({:.2}x baseline)", frame / r.load_ms);
        }
        None => println!("  GPU: no wgpu adapter (or built without the app): not measured"),
    }
    println!("  peak RSS {:.0} MiB", peak_rss_mib());
    Ok(())
}

/// Training patches per second from disk, against plain GDAL reads of the same windows.
fn bench_loader(size: usize, dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    let patch = 256.min(size);
    let r = bench_in_dir(dir, quiet, move |work, p| bench::loader(size, patch, work, p))?;
    println!(
        "data loader, {0} x {0} grid, {1} patches of {2} x {2} px, {3} input + {4} output channels, {5} threads",
        r.size, r.patches, r.patch, r.channels.0, r.channels.1, rayon::current_num_threads()
    );
    println!("  baseline: GDAL window reads, 1 thread        {:>8.1} patches/s", r.raw_read_patches_per_sec);
    for (workers, rate) in &r.loader_patches_per_sec {
        println!("  Burn loader (augment + normalize), {workers} workers {rate:>8.1} patches/s  ({:.2}x baseline)", rate / r.raw_read_patches_per_sec);
    }
    if let Some((secs, mib, rate)) = r.resident {
        println!("  held in memory ({mib:.0} MiB, read in {secs:.1} s), 0 workers {rate:>8.1} patches/s  ({:.2}x baseline)", rate / r.raw_read_patches_per_sec);
    }
    println!("  peak RSS {:.0} MiB", r.peak_rss_mib);
    Ok(())
}

/// The whole preprocess stage on generated scenes: time and peak memory.
fn bench_preprocess(size: usize, dir: Option<PathBuf>, quiet: bool) -> Result<()> {
    let cfg = crate::preprocess::stage::PreprocessConfig::default();
    let r = bench_in_dir(dir, quiet, move |work, p| bench::preprocess_stage(size, work, &cfg, p))?;
    let mpx = (r.size * r.size) as f64 / 1e6;
    println!("preprocess stage, {0} x {0} grid ({mpx:.1} Mpixel), {1} threads, native engine, Refined Lee, blocks of 512 rows", r.size, rayon::current_num_threads());
    println!("  inputs generated in {:.1} s (peak RSS so far {:.0} MiB)", r.generate_secs, r.rss_after_generate_mib);
    println!("  stage: {:.1} s for one S2 scene (7 bands + SCL) and one S1 scene (VV + VH); peak RSS {:.0} MiB", r.stage_secs, r.peak_rss_mib);
    for o in &r.outputs {
        println!("  {} {} {:.1} % usable", o.sensor, o.date, o.valid_percent);
    }
    Ok(())
}
