//! The conditional GAN (pix2pix) in Burn: `generator` (U-Net), `discriminator` (PatchGAN),
//! `config` (model.yaml, train.yaml), `train` (the GAN loop, checkpoints, resume) and `infer`
//! (the whole AOI by overlapping windows, blended, de-normalized, as a COG).
//!
//! Devices: wgpu (Vulkan, Metal, DX12) when an adapter exists, Burn's CPU backend otherwise;
//! `auto` probes once per process. Builds with the `cuda` or `rocm` feature add Burn's CUDA and
//! ROCm backends (`--device cuda`, `--device rocm`); asking for one a build or a machine lacks
//! falls back to `auto` and says why.

pub mod config;
pub mod conv;
pub mod cpu;
pub mod discriminator;
#[cfg(feature = "gdal")]
pub mod estimate;
pub mod finite;
pub mod generator;
#[cfg(feature = "gdal")]
pub mod infer;
pub mod pix2pix;
#[cfg(feature = "gdal")]
pub mod portable;
#[cfg(feature = "gdal")]
pub mod card;
#[cfg(feature = "gdal")]
pub mod checkpoint;
pub mod preview;
pub mod step;
#[cfg(feature = "gdal")]
pub mod calibration;
#[cfg(feature = "gdal")]
pub mod train;

use std::sync::OnceLock;

use burn::prelude::*;

use self::config::ModelConfig;
#[cfg(feature = "gdal")]
use self::config::OutputActivation;
#[cfg(feature = "gdal")]
use self::generator::Activation;
#[cfg(feature = "gdal")]
use crate::dataset::normalize::{DataRange, Normalization, S2Method};
use crate::error::{Error, Result};

/// Where the networks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The GPU through wgpu when an adapter exists, else the CPU.
    #[default]
    Auto,
    Gpu,
    Cpu,
    /// NVIDIA through Burn's CUDA backend (builds with the `cuda` feature).
    Cuda,
    /// AMD through Burn's ROCm (HIP) backend (builds with the `rocm` feature).
    Rocm,
}

impl DeviceChoice {
    /// The choices this build can honour, for menus: CUDA and ROCm only where compiled in.
    pub fn available() -> Vec<DeviceChoice> {
        let mut v = vec![DeviceChoice::Auto, DeviceChoice::Gpu, DeviceChoice::Cpu];
        if cfg!(feature = "cuda") {
            v.push(DeviceChoice::Cuda);
        }
        if cfg!(feature = "rocm") {
            v.push(DeviceChoice::Rocm);
        }
        v
    }
}

/// A wgpu adapter: the device, its name, and whether it is a software rasterizer (Mesa's
/// lavapipe, WARP) running on the CPU.
#[derive(Debug, Clone)]
pub struct GpuAdapter {
    pub device: Device,
    pub name: String,
    pub software: bool,
}

/// The wgpu device, probed once (a second initialisation is an error in Burn).
fn wgpu_device() -> &'static std::result::Result<GpuAdapter, String> {
    static WGPU: OnceLock<std::result::Result<GpuAdapter, String>> = OnceLock::new();
    WGPU.get_or_init(|| {
        // wgpu panics on some broken drivers instead of failing: treat that as no adapter.
        match std::panic::catch_unwind(|| Device::wgpu_options().init_with_setup()) {
            Ok(Ok((device, setup))) => {
                let info = setup.adapter.get_info();
                let software = format!("{:?}", info.device_type) == "Cpu";
                Ok(GpuAdapter { device, name: format!("{} ({:?})", info.name, setup.backend), software })
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the wgpu driver failed while starting".into()),
        }
    })
}

/// Tells glibc's allocator to keep freed memory for reuse instead of handing it back to the
/// system at once: blocks up to 32 MiB (the most it allows) come from the heap, not from fresh
/// mappings, and up to 1 GiB of free heap stays mapped. Without this every tensor a CPU
/// training step allocates (each layer's activations, gradients, optimizer updates) arrived as
/// fresh pages, zeroed by the kernel on first touch: about 900,000 page faults and a quarter of
/// the convolution time in `s2cr bench --what profile`. Peak memory is unchanged; memory is
/// returned when the process ends or calls `malloc_trim`.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: glibc's `int mallopt(int param, int value)` (Linux with glibc only).
            unsafe extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            // SAFETY: mallopt only changes the thresholds of glibc's allocator; any value is
            // valid (an out-of-range one is refused and changes nothing).
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}

/// The text of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "no message".into())
}

/// Runs a small sum on a device that may not work on this machine (CUDA and ROCm load their
/// driver libraries at first use, and Burn panics when they are missing), so a missing driver
/// is found here, with its reason, and not in the middle of training.
#[cfg_attr(not(any(feature = "cuda", feature = "rocm")), allow(dead_code))]
fn probe(make: fn() -> Device) -> std::result::Result<Device, String> {
    let run = || {
        let device = make();
        let sum = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &device).sum().try_into_vec_as::<f32>();
        (device, sum)
    };
    match std::panic::catch_unwind(run) {
        Ok((device, Ok(v))) if v.first() == Some(&3.0) => Ok(device),
        Ok((_, Ok(v))) => Err(format!("a test sum of 1 + 2 gave {v:?}")),
        Ok((_, Err(e))) => Err(format!("{e:?}")),
        Err(panic) => Err(panic_text(panic.as_ref())),
    }
}

/// The CUDA device, probed once per process.
fn cuda_device() -> &'static std::result::Result<Device, String> {
    static CUDA: OnceLock<std::result::Result<Device, String>> = OnceLock::new();
    CUDA.get_or_init(|| {
        #[cfg(feature = "cuda")]
        return probe(|| Device::cuda(0usize));
        #[cfg(not(feature = "cuda"))]
        Err("this build has no CUDA backend: build with `cargo build --release --features cuda`".into())
    })
}

/// The ROCm device, probed once per process.
fn rocm_device() -> &'static std::result::Result<Device, String> {
    static ROCM: OnceLock<std::result::Result<Device, String>> = OnceLock::new();
    ROCM.get_or_init(|| {
        #[cfg(feature = "rocm")]
        return probe(|| Device::rocm(0usize));
        #[cfg(not(feature = "rocm"))]
        Err("this build has no ROCm backend: build with `cargo build --release --features rocm` (needs ROCm's HIP libraries)".into())
    })
}

/// The device for a choice, and a description of it for logs and reports. `auto` takes a
/// hardware GPU; a software adapter (lavapipe) is slower than Burn's CPU backend, so `auto`
/// leaves it for `gpu`, which takes any adapter. `cuda` and `rocm` fall back to `auto` when
/// the build or the machine lacks them: the description says so and why, and a warning is
/// logged.
pub fn device(choice: DeviceChoice) -> Result<(Device, String)> {
    let missing = match choice {
        DeviceChoice::Cuda => cuda_device().as_ref().err().map(|why| ("CUDA", why)),
        DeviceChoice::Rocm => rocm_device().as_ref().err().map(|why| ("ROCm", why)),
        _ => None,
    };
    match missing {
        Some((name, why)) => {
            let (dev, description) = exact_device(DeviceChoice::Auto)?;
            tracing::warn!("{name} is not available ({why}); using {description}");
            Ok((dev, format!("{description}; {name} was asked for but is not available: {why}")))
        }
        None => exact_device(choice),
    }
}

/// The device for a choice, or an error saying why this build or machine cannot give it (no
/// fallback: for benchmarks, which must measure what they name).
pub fn exact_device(choice: DeviceChoice) -> Result<(Device, String)> {
    let cpu = || {
        // Burn materialises loaded optimizer state on its default device before moving it: the
        // programs make that the CPU at their start ([`set_default_burn_device`]), while they
        // have one thread; changing the environment here, from a job thread, would not be sound.
        keep_freed_memory();
        (Device::flex(), format!("CPU (Burn flex, {} threads)", rayon::current_num_threads()))
    };
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Gpu => match wgpu_device() {
            Ok(a) => Ok((a.device.clone(), format!("GPU (wgpu: {}{})", a.name, if a.software { ", software" } else { "" }))),
            Err(e) => Err(Error::invalid("device", format!("no GPU adapter for wgpu: {e}; choose the CPU device"))),
        },
        DeviceChoice::Auto => match wgpu_device() {
            Ok(a) if !a.software => Ok((a.device.clone(), format!("GPU (wgpu: {})", a.name))),
            _ => Ok(cpu()),
        },
        DeviceChoice::Cuda => match cuda_device() {
            Ok(d) => Ok((d.clone(), "GPU (CUDA device 0)".into())),
            Err(why) => Err(Error::invalid("--device cuda", why.clone())),
        },
        DeviceChoice::Rocm => match rocm_device() {
            Ok(d) => Ok((d.clone(), "GPU (ROCm device 0)".into())),
            Err(why) => Err(Error::invalid("--device rocm", why.clone())),
        },
    }
}

/// What `--device auto` will use, for status displays: probes wgpu (once per process) but,
/// unlike [`device`], changes nothing, so any thread may ask.
pub fn auto_device_description() -> String {
    match wgpu_device() {
        Ok(a) if !a.software => format!("GPU (wgpu: {})", a.name),
        _ => format!("CPU (Burn flex, {} threads)", rayon::current_num_threads()),
    }
}

/// Sets `BURN_DEVICE=flex` unless the user set it, for programs that start threads of their own
/// before choosing a device (the desktop app): [`device`] would otherwise set it later, and
/// changing the environment while other threads run is undefined behaviour. Harmless when the
/// GPU is used: Burn then creates optimizer state on the CPU and moves it once.
///
/// # Safety
/// Call before any other thread exists.
pub unsafe fn set_default_burn_device() {
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: the caller guarantees no other thread runs yet.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
}

/// Keeps the GPU probe quiet where no desktop session runs (ssh, cron, containers, cluster
/// nodes): there Mesa's Vulkan device-selection layer, loaded with every Vulkan instance, asks
/// for a Wayland compositor, and libwayland prints `error: XDG_RUNTIME_DIR is invalid or not set
/// in the environment.` once per instance, though nothing is wrong. Without XDG_RUNTIME_DIR
/// there is no Wayland session to ask, and the layer only orders GPUs for a display or by
/// `DRI_PRIME`; so unless the user set `DRI_PRIME` or `NODEVICE_SELECT`, the layer is turned off
/// for this process (`NODEVICE_SELECT=1`, which Mesa reads). Programs that have a session, and
/// other drivers, are not touched.
///
/// # Safety
/// Call before any other thread exists.
pub unsafe fn quiet_gpu_probe() {
    let session = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if !session && std::env::var_os("DRI_PRIME").is_none() && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the caller guarantees no other thread runs yet.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// Whether a wgpu adapter exists (software ones such as Mesa's lavapipe count).
pub fn gpu_available() -> std::result::Result<String, String> {
    wgpu_device().as_ref().map(|a| a.name.clone()).map_err(Clone::clone)
}

/// The generator's output activation for a dataset's normalization.
#[cfg(feature = "gdal")]
pub fn output_activation(cfg: &ModelConfig, normalization: &Normalization) -> Activation {
    if cfg.output == config::GeneratorOutput::Residual {
        // The change from the pre-fire image has no bounded range.
        return Activation::Identity;
    }
    match cfg.output_activation {
        OutputActivation::Tanh => Activation::Tanh,
        OutputActivation::Sigmoid => Activation::Sigmoid,
        OutputActivation::None => Activation::Identity,
        // Maps that keep every value in [0, 1] ([-1, 1] in the symmetric range); the others
        // can leave it.
        OutputActivation::Auto => match (normalization.s2_method, normalization.range) {
            (S2Method::TileMinMax | S2Method::TrainMinMax, DataRange::Unit) => Activation::Sigmoid,
            (S2Method::TileMinMax | S2Method::TrainMinMax, DataRange::Symmetric) => Activation::Tanh,
            _ => Activation::Identity,
        },
    }
}

/// A generator for a dataset's normalization: its output activation, and with
/// `output: residual` the pre-fire base its change is added to (refused, with the reason, where
/// an output band has no S2 t0 among the inputs).
#[cfg(feature = "gdal")]
pub fn generator_for(cfg: &ModelConfig, normalization: &Normalization, dev: &Device) -> Result<generator::Generator> {
    with_output(generator::Generator::new(cfg, output_activation(cfg, normalization), dev), cfg, normalization)
}

/// `g` with the output `cfg` asks for (a generator loaded from a file, or made from another).
#[cfg(feature = "gdal")]
pub fn with_output(g: generator::Generator, cfg: &ModelConfig, normalization: &Normalization) -> Result<generator::Generator> {
    match cfg.output {
        config::GeneratorOutput::Direct => Ok(g),
        config::GeneratorOutput::Residual => normalization.residual_maps().map(|m| g.with_residual(generator::Residual::new(&m))).map_err(|m| Error::invalid("output", m)),
    }
}

/// The model configuration with the channels of a dataset filled in, checked against a patch
/// size.
pub fn resolve(cfg: &ModelConfig, inputs: usize, outputs: usize, patch: usize) -> Result<ModelConfig> {
    let mut c = cfg.clone();
    for (name, given, actual) in [("input_channels", &mut c.input_channels, inputs), ("output_channels", &mut c.output_channels, outputs)] {
        if *given == 0 {
            *given = actual;
        } else if *given != actual {
            return Err(Error::invalid("model.yaml", format!("{name} is {given} but the dataset has {actual}; set it to 0 (from the dataset)")));
        }
    }
    let factor = 1usize << c.depth;
    if patch % factor != 0 || patch < factor {
        return Err(Error::invalid(
            "model.yaml",
            format!(
                "depth {} halves {patch} px patches {} times, which needs a multiple of {factor}; lower the model's depth, or build the training set with another patch size (`s2cr dataset --patch`, or dataset.tiles.size in pipeline.yaml)",
                c.depth, c.depth
            ),
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::config::NormKind;
    use super::discriminator::Discriminator;
    use super::generator::Generator;
    use super::*;
    use burn::module::Module;

    #[test]
    fn shapes_follow_sizes_and_channels() {
        let device = Device::flex();
        for (inputs, outputs, size, depth, norm) in [(10, 6, 64, 6, NormKind::Batch), (2, 6, 32, 5, NormKind::Instance), (7, 3, 64, 4, NormKind::Batch), (10, 6, 256, 8, NormKind::Batch)] {
            let cfg = ModelConfig { input_channels: inputs, output_channels: outputs, ngf: 4, ndf: 4, depth, norm, ..Default::default() };
            let g = Generator::new(&cfg, Activation::Sigmoid, &device);
            let d = Discriminator::new(&cfg, &device);
            let x = Tensor::<4>::random([2, inputs, size, size], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
            let y = g.forward(x.clone());
            assert_eq!(y.dims(), [2, outputs, size, size], "{inputs} -> {outputs} at {size}");
            let v: Vec<f32> = y.clone().try_into_vec_as::<f32>().unwrap();
            assert!(v.iter().all(|p| (0.0..=1.0).contains(p)), "sigmoid output");
            // 70x70 PatchGAN: 3 stride-2 layers then two 4x4 stride-1 convolutions.
            assert_eq!(d.forward(x, y).dims(), [2, 1, size / 8 - 2, size / 8 - 2]);
        }
    }

    #[test]
    fn unet_256_has_the_pix2pix_parameter_count() {
        // pix2pix's UnetGenerator(10, 6, num_downs=8, ngf=64, BatchNorm): 54,427,270 trainable
        // parameters (54,413,955 for 3 -> 3, the "54.414 M" pix2pix prints): no bias before a
        // BatchNorm. Burn also counts BatchNorm's running mean and variance: 2 x 4,928 values
        // over the 4,928 normalized channels.
        let cfg = ModelConfig { input_channels: 10, output_channels: 6, ..Default::default() };
        let g = Generator::new(&cfg, Activation::Tanh, &Device::flex());
        assert_eq!(g.num_params(), 54_427_270 + 2 * 4_928);
        // NLayerDiscriminator(16, 64, n_layers=3): 2,778,945 trainable (2,768,705 for 6 input
        // channels), plus running statistics of 128 + 256 + 512 channels.
        assert_eq!(Discriminator::new(&cfg, &Device::flex()).num_params(), 2_778_945 + 2 * 896);
    }

    #[test]
    fn a_device_that_fails_its_probe_is_refused_with_the_reason() {
        assert!(probe(Device::flex).is_ok(), "the CPU passes the probe");
        // What Burn does when CUDA's driver library is missing: it panics at first use.
        let err = probe(|| panic!("Unable to dynamically load the \"cuda\" shared library")).unwrap_err();
        assert!(err.contains("Unable to dynamically load"), "{err}");
    }

    #[test]
    #[cfg(not(feature = "cuda"))]
    fn cuda_without_the_feature_falls_back_and_says_how_to_build_it() {
        let (_, description) = device(DeviceChoice::Cuda).unwrap();
        assert!(description.contains("CUDA was asked for but is not available"), "{description}");
        assert!(description.contains("--features cuda"), "{description}");
        assert!(!DeviceChoice::available().contains(&DeviceChoice::Cuda));
        let err = exact_device(DeviceChoice::Cuda).unwrap_err().to_string();
        assert!(err.contains("this build has no CUDA backend"), "{err}");
        // pipeline.yaml and the app's settings name it as the command line does.
        assert_eq!(serde_norway::from_str::<DeviceChoice>("cuda").unwrap(), DeviceChoice::Cuda);
    }

    #[test]
    fn resolve_checks_channels_and_depth() {
        let cfg = ModelConfig::default();
        let r = resolve(&cfg, 10, 6, 256).unwrap();
        assert_eq!((r.input_channels, r.output_channels), (10, 6));
        let err = resolve(&cfg, 10, 6, 64).unwrap_err().to_string();
        assert!(err.contains("multiple of 256"), "{err}");
        let err = resolve(&ModelConfig { input_channels: 4, ..cfg }, 10, 6, 256).unwrap_err().to_string();
        assert!(err.contains("input_channels is 4 but the dataset has 10"), "{err}");
    }
}
