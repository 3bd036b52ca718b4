//! `s2cr-model-bench`: the model benchmark of `s2cr bench --what model` alone, built from Burn
//! only (no GDAL, no GUI), so that it can be carried to a machine with a GPU and nothing else.
//! `scripts/gpu-bench.sh` builds it with the `cuda` feature and runs it beside PyTorch.

use anyhow::{Result, bail};
use clap::Parser;
use s2cr::model::DeviceChoice;
use s2cr::tools::model_bench;

#[derive(Parser)]
#[command(version, about = "Times the conditional GAN's inference and training step on each device asked for (Burn only, no GDAL)")]
struct Args {
    /// Patch side in pixels (256 for pix2pix's unet_256; a power of two from 32).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Timed runs per figure (after one warm-up; training steps at most 3).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Devices, comma-separated: cpu, gpu (wgpu), cuda, rocm, auto.
    #[arg(long, value_delimiter = ',', default_value = "cpu,gpu,cuda")]
    device: Vec<String>,
    /// Only these models, comma-separated: unet_256, small (default: both).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    model: Vec<String>,
    /// One JSON line per row instead of the table.
    #[arg(long)]
    json: bool,
}

fn choice(name: &str) -> Result<DeviceChoice> {
    Ok(match name.trim() {
        "cpu" => DeviceChoice::Cpu,
        "gpu" | "wgpu" => DeviceChoice::Gpu,
        "cuda" => DeviceChoice::Cuda,
        "rocm" => DeviceChoice::Rocm,
        "auto" => DeviceChoice::Auto,
        other => bail!("--device: unknown device {other:?}; use cpu, gpu, cuda, rocm or auto"),
    })
}

fn main() -> Result<()> {
    // SAFETY: the first thing the process does: no other thread runs yet.
    unsafe {
        s2cr::model::set_default_burn_device();
        s2cr::model::quiet_gpu_probe();
    }
    let args = Args::parse();
    let choices = args.device.iter().map(|d| choice(d)).collect::<Result<Vec<_>>>()?;
    model_bench::check_patch(args.size)?;
    let models = model_bench::selected(args.size, &args.model)?;
    let mut devices = Vec::new();
    for (name, c) in args.device.iter().zip(choices) {
        // No fallback: a device this build or machine lacks is skipped, not replaced.
        match s2cr::model::exact_device(c) {
            Ok((dev, description)) => devices.push((dev, description)),
            Err(e) => eprintln!("{name}: skipped: {}", s2cr::error_chain(&e)),
        }
    }
    if devices.is_empty() {
        bail!("none of the devices asked for ({}) is available here", args.device.join(", "));
    }
    if !args.json {
        println!("conditional GAN, 10 input and 6 output channels, {0} x {0} patches, batch 1, {1} CPU threads", args.size, rayon::current_num_threads());
        println!("  {:<36} {:>8} {:<48} {:>12} {:>14} {:>10}", "model", "params", "device", "ms/patch", "s/train step", "peak RSS");
    }
    for (key, name, cfg) in models {
        for (dev, description) in &devices {
            let (params_m, infer_ms, train_step_s) = model_bench::measure(&cfg, dev, true, args.size, args.repeats)?;
            let rss = s2cr::tools::peak_rss_mib();
            if args.json {
                let row = serde_json::json!({"model": key, "params_m": params_m, "device": description, "infer_ms": infer_ms, "train_step_s": train_step_s, "peak_rss_mib": rss});
                println!("{row}");
            } else {
                println!("  {:<36} {:>7.1}M {:<48} {:>12.1} {:>14.3} {:>7.0} MiB", name, params_m, description, infer_ms, train_step_s, rss);
            }
        }
    }
    Ok(())
}
