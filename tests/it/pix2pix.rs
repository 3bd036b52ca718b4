//! pix2pix's own generators (tests/fixtures/pix2pix, made by scripts/pix2pix_fixtures.py with
//! PyTorch from networks.py's classes) imported and run: the same output as PyTorch's, and
//! back: our export loaded strictly into PyTorch's `UnetGenerator`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use s2cr::model::config::{DropoutBlocks, NormKind};
use s2cr::model::pix2pix;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pix2pix").join(name)
}

/// The fixed input of scripts/pix2pix_fixtures.py: value i is ((i * 7919) % 2001) / 1000 - 1,
/// computed in f64 and rounded to f32.
pub fn fixed_input(channels: usize, size: usize) -> Tensor<4> {
    let values: Vec<f32> = (0..channels * size * size).map(|i| (((i as u64 * 7919) % 2001) as f64 / 1000.0 - 1.0) as f32).collect();
    Tensor::from_data(TensorData::new(values, [1, channels, size, size]), &Device::flex())
}

/// PyTorch's output and the fixture's settings (config JSON, input size).
pub fn expected(name: &str) -> (Vec<f32>, serde_json::Value, usize) {
    let bytes = std::fs::read(fixture(&format!("{name}.expect.safetensors"))).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: BTreeMap<String, String> = meta.metadata().clone().unwrap().into_iter().collect();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let out = st.tensor("output").unwrap();
    let values = out.data().chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (values, serde_json::from_str(&meta["config"]).unwrap(), meta["size"].parse().unwrap())
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

const GOOD: [(&str, &str); 3] = [
    ("unet128_batch_10to6", "unet128_batch_10to6.pth"),
    ("unet256_instance_3to3", "unet256_instance_3to3.safetensors"),
    ("unet128_instance_11to6", "unet128_instance_11to6.pth"),
];

#[test]
fn pix2pix_generators_import_and_give_pytorchs_output() {
    for (name, file) in GOOD {
        let (want, cfg_json, size) = expected(name);
        let (g, cfg) = pix2pix::import_generator(&fixture(file), 0.5, &Device::flex()).unwrap();
        let norm = if cfg_json["norm"] == "batch" { NormKind::Batch } else { NormKind::InstanceNoAffine };
        assert_eq!(
            (cfg.input_channels, cfg.output_channels, cfg.depth, cfg.ngf, cfg.norm, cfg.dropout_blocks),
            (cfg_json["input_channels"].as_u64().unwrap() as usize, cfg_json["output_channels"].as_u64().unwrap() as usize, cfg_json["depth"].as_u64().unwrap() as usize, cfg_json["ngf"].as_u64().unwrap() as usize, norm, DropoutBlocks::Pix2pix),
            "{name}: the configuration read from the keys"
        );
        let y: Vec<f32> = g.forward(fixed_input(cfg.input_channels, size)).into_data().try_to_vec().unwrap();
        let d = max_diff(&y, &want);
        // Inference folds the batch norms into the convolutions: the same output.
        let folded: Vec<f32> = g.clone().fold_batch_norm().forward(fixed_input(cfg.input_channels, size)).into_data().try_to_vec().unwrap();
        let df = max_diff(&folded, &want);
        println!("{name}: {} values, max |ours - PyTorch| = {d:e}, batch norms folded {df:e}", y.len());
        assert!(d < 1e-4 && df < 1e-4, "{name}: max abs difference {d}, folded {df}");
    }
}

#[test]
fn bad_weight_files_are_refused_with_what_is_wrong() {
    let dev = Device::flex();
    let err = |file: &str| pix2pix::import_generator(&fixture(file), 0.5, &dev).err().map(|e| s2cr::error_chain(&e)).unwrap_or_default();
    // The tiny generator the bad files come from imports.
    assert!(pix2pix::import_generator(&fixture("bad_tiny_ok.pth"), 0.5, &dev).is_ok());
    let e = err("bad_truncated.pth");
    assert!(e.contains("bad_truncated.pth") && e.contains("not a readable PyTorch checkpoint"), "{e}");
    let e = err("bad_not_a_state_dict.pth");
    assert!(e.contains("bad_not_a_state_dict.pth") && (e.contains("holds no tensors") || e.contains("not a pix2pix UnetGenerator")), "{e}");
    let e = err("bad_wrong_shape.pth");
    assert!(e.contains("model.model.1.model.1.weight has shape [4, 2, 4, 3]") && e.contains("needs [4, 2, 4, 4]"), "{e}");
    let e = err("bad_discriminator.pth");
    assert!(e.contains("NLayerDiscriminator") && e.contains("latest_net_G.pth"), "{e}");
    let e = err("no_such_file.pth");
    assert!(e.contains("no such file"), "{e}");
    // A generator file that is not ours to guess: a key too many.
    let tmp = tempfile::tempdir().unwrap();
    let extra = tmp.path().join("extra.safetensors");
    let (g, cfg) = pix2pix::import_generator(&fixture("unet256_instance_3to3.safetensors"), 0.5, &dev).unwrap();
    let mut bytes = pix2pix::to_safetensors(&g, &cfg, &BTreeMap::new()).unwrap();
    std::fs::write(&extra, &bytes).unwrap();
    assert!(pix2pix::import_generator(&extra, 0.5, &dev).is_ok());
    // Corrupt the header's length: refused, named.
    bytes[0] ^= 0x40;
    std::fs::write(&extra, &bytes).unwrap();
    let e = pix2pix::import_generator(&extra, 0.5, &dev).err().map(|e| s2cr::error_chain(&e)).unwrap();
    assert!(e.contains("extra.safetensors") && e.contains("not a readable safetensors file"), "{e}");
}

fn python() -> Option<String> {
    let python = std::env::var("S2CR_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python).args(["-c", "import torch"]).output().is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

#[test]
fn an_export_loads_strictly_into_pytorchs_unet_generator_and_gives_our_output() {
    let dev = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    for (name, file) in GOOD {
        let (_, cfg_json, size) = expected(name);
        let (g, cfg) = pix2pix::import_generator(&fixture(file), 0.5, &dev).unwrap();
        let weights = tmp.path().join(format!("{name}.safetensors"));
        std::fs::write(&weights, pix2pix::to_safetensors(&g, &cfg, &BTreeMap::from([("source".to_string(), name.to_string())])).unwrap()).unwrap();
        // Ours back in: the same network.
        let (again, cfg2) = pix2pix::import_generator(&weights, 0.5, &dev).unwrap();
        assert_eq!(cfg2, cfg);
        let x = fixed_input(cfg.input_channels, size);
        let (a, b): (Vec<f32>, Vec<f32>) = (g.forward(x.clone()).into_data().try_to_vec().unwrap(), again.forward(x).into_data().try_to_vec().unwrap());
        assert_eq!(a, b, "{name}: exported and imported again, the same output");
        // Our output, for PyTorch to compare with.
        let out = tmp.path().join(format!("{name}.ours.safetensors"));
        let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![a.len()], &bytes).unwrap();
        std::fs::write(&out, safetensors::serialize([("output", view)], None).unwrap()).unwrap();
        let Some(python) = python() else {
            crate::missing_tool("no Python with torch for the PyTorch side (set S2CR_PYTHON; scripts/requirements-bench.txt)");
            continue;
        };
        let mut config = cfg_json.clone();
        config["size"] = size.into();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pix2pix_fixtures.py");
        let o = std::process::Command::new(&python)
            .arg(&script)
            .args(["check", "--weights"])
            .arg(&weights)
            .args(["--config", &config.to_string(), "--expect"])
            .arg(&out)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        println!("{name}: PyTorch {stdout}");
        assert!(o.status.success(), "{name}: PyTorch refused or differs: {stdout} {}", String::from_utf8_lossy(&o.stderr));
    }
}

mod runs {
    use super::*;
    use s2cr::dataset::{self, DatasetConfig};
    use s2cr::dataset::tiles::TileConfig;
    use s2cr::job::Progress;
    use s2cr::model::portable::{ImportOptions, export_run, import_run};
    use s2cr::model::{DeviceChoice, infer};
    use s2cr::project::{Project, RunName};
    use s2cr::raster;

    fn run(name: &str) -> RunName {
        RunName::new(name).unwrap()
    }

    fn opts(name: &str, channels: Option<&str>) -> ImportOptions {
        let list = |s: &str| vec![s.to_string()];
        ImportOptions { run: run(name), model: None, dropout: 0.5, normalization: None, inputs: channels.map(list), outputs: channels.map(list), range: None }
    }

    /// A project on the real SEN12MS-CR chip with 128 px patches and the research layout (10
    /// inputs, 6 outputs): what unet128_batch_10to6 takes.
    fn project(root: &Path) -> Project {
        std::fs::create_dir_all(root).unwrap();
        let project = crate::dataset::project_with_preprocessed(root);
        let tiles = TileConfig { size: 128, stride: 64, min_valid: 0.5, val_fraction: 0.0, test_fraction: 0.3, split_block_patches: 1, gap_px: 0, seed: 3 };
        dataset::build(&project, &DatasetConfig { tiles, ..DatasetConfig::research(&project) }, &Progress::silent("dataset")).unwrap();
        project
    }

    fn synthesize(project: &Project, name: &str) -> Vec<Vec<f32>> {
        let o = infer::InferOptions { run: run(name), device: DeviceChoice::Cpu, ..Default::default() };
        infer::infer(project, &o, &Progress::silent("infer")).unwrap();
        raster::read_window(&project.synthetic_s2(&run(name)).display().to_string(), &[], None).unwrap().bands
    }

    /// A run that is not pix2pix's network (trained here: depth 4, sigmoid output) is not
    /// written with pix2pix's keys, which PyTorch would load into another network; with our
    /// own keys it travels and comes back the same. A run to start from that ends in another
    /// activation is another network too.
    #[test]
    fn a_run_that_is_not_pix2pixs_network_is_exported_with_our_keys_only() {
        use s2cr::model::config::{ModelConfig, OutputActivation, TrainConfig};
        use s2cr::model::pix2pix::KeyStyle;
        use s2cr::model::portable::export_run_as;
        use s2cr::model::train::{TrainOptions, train};
        let tmp = tempfile::tempdir().unwrap();
        let project = project(&tmp.path().join("p"));
        let model = ModelConfig { ngf: 4, ndf: 4, depth: 4, dropout: 0.0, output_activation: OutputActivation::Sigmoid, ..Default::default() };
        let quick = TrainConfig { batch_size: 1, max_steps: 2, checkpoint_every: 0, workers: 0, augment: false, ..Default::default() };
        let go = |name: &str, model: &ModelConfig, tc: &TrainConfig| train(&project, &TrainOptions { run: run(name), model: model.clone(), train: tc.clone(), device: DeviceChoice::Cpu, resume: false }, &Progress::silent("train"));
        go("ours", &model, &quick).unwrap();
        let out = tmp.path().join("shared/G.safetensors");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let e = s2cr::error_chain(&export_run(&project, &run("ours"), &out).unwrap_err());
        assert!(e.contains("not pix2pix's network") && e.contains("Sigmoid") && e.contains("depth is 4") && e.contains("--keys s2cr"), "{e}");
        assert!(!out.exists(), "nothing written");
        export_run_as(&project, &run("ours"), &out, KeyStyle::S2cr).unwrap();
        let back = import_run(&project, &out, &opts("back", None)).unwrap();
        assert_eq!((back.model.depth, back.model.ngf), (4, 4));
        let bits = |b: &Vec<Vec<f32>>| b.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&synthesize(&project, "ours")), bits(&synthesize(&project, "back")), "exported with our keys and imported: the same image");
        // Without its sidecar our keys do not say the activation: refused, naming the sidecar.
        std::fs::remove_file(out.with_extension("json")).unwrap();
        let e = s2cr::error_chain(&import_run(&project, &out, &opts("bare", Some("dataset"))).unwrap_err());
        assert!(e.contains("G.json") && e.contains("--keys s2cr"), "{e}");
        // Starting a tanh run from the sigmoid one: another network, named.
        let tanh = ModelConfig { output_activation: OutputActivation::Tanh, ..model.clone() };
        let from = TrainConfig { init_from: Some(project.run_dir(&run("ours"))), ..quick.clone() };
        let e = s2cr::error_chain(&go("tanh", &tanh, &from).unwrap_err());
        assert!(e.contains("last activation Sigmoid there, Tanh here"), "{e}");
    }

    /// A residual generator with a linear map (started at the ridge fit) is exported with our
    /// keys and comes back the same: the same image from both runs; pix2pix's keys refuse it,
    /// naming both options.
    #[test]
    fn a_residual_generator_with_a_linear_map_travels_with_our_keys() {
        use s2cr::model::config::{GeneratorOutput, ModelConfig, TrainConfig};
        use s2cr::model::pix2pix::KeyStyle;
        use s2cr::model::portable::export_run_as;
        use s2cr::model::train::{TrainOptions, train};
        let tmp = tempfile::tempdir().unwrap();
        let project = project(&tmp.path().join("p"));
        let model = ModelConfig { ngf: 4, ndf: 4, depth: 4, dropout: 0.0, output: GeneratorOutput::Residual, linear: true, uncertainty: s2cr::model::config::UncertaintyHead::Aleatoric, upsample: s2cr::model::config::Upsample::ResizeConv, ..Default::default() };
        let quick = TrainConfig { batch_size: 1, max_steps: 2, checkpoint_every: 0, workers: 0, augment: false, ..Default::default() };
        train(&project, &TrainOptions { run: run("res"), model, train: quick, device: DeviceChoice::Cpu, resume: false }, &Progress::silent("train")).unwrap();
        let out = tmp.path().join("shared/R.safetensors");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let e = s2cr::error_chain(&export_run(&project, &run("res"), &out).unwrap_err());
        assert!(e.contains("output: residual") && e.contains("linear: true") && e.contains("--keys s2cr"), "{e}");
        export_run_as(&project, &run("res"), &out, KeyStyle::S2cr).unwrap();
        let back = import_run(&project, &out, &opts("back", None)).unwrap();
        assert_eq!((back.model.output, back.model.linear, back.model.uncertainty, back.model.upsample), (GeneratorOutput::Residual, true, s2cr::model::config::UncertaintyHead::Aleatoric, s2cr::model::config::Upsample::ResizeConv));
        let bits = |b: &Vec<Vec<f32>>| b.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&synthesize(&project, "res")), bits(&synthesize(&project, "back")), "exported with our keys and imported: the same image");
        let sd = |name: &str| bits(&raster::read_window(project.uncertainty_s2(&run(name)).to_str().unwrap(), &[], None).unwrap().bands);
        assert_eq!(sd("res"), sd("back"), "and the same uncertainty (the head travels too)");
    }

    /// pix2pix trains on [-1, 1] with a Tanh output. An imported .pth sees its inputs there
    /// and its output is de-normalized from there: the synthetic image, where one window alone
    /// covers it, is what the network (PyTorch's output, checked above) gives on inputs
    /// normalized by hand as pix2pix does (`2 (v - min) / (max - min) - 1` on Sentinel-2, the
    /// Sentinel-1 standardization as it is), mapped back with `(y + 1) / 2 (max - min) + min`.
    #[test]
    fn an_imported_pix2pix_generator_sees_and_gives_minus_one_to_one() {
        use s2cr::dataset::normalize::{ChannelKind, DataRange};
        let tmp = tempfile::tempdir().unwrap();
        let project = project(&tmp.path().join("p"));
        let r = import_run(&project, &fixture("unet128_batch_10to6.pth"), &opts("pt", Some("dataset"))).unwrap();
        assert_eq!((r.imported.range.as_str(), r.imported.range_from.as_str()), ("symmetric", "pix2pix's default"));
        let dev = Device::flex();
        let (g, _, normalization, _) = infer::load_generator(&project, &run("pt"), &dev).unwrap();
        assert_eq!(normalization.range, DataRange::Symmetric);
        let (want, _, size) = expected("unet128_batch_10to6");
        let y: Vec<f32> = g.forward(fixed_input(10, size)).into_data().try_to_vec().unwrap();
        assert!(max_diff(&y, &want) < 1e-4, "the run's network is PyTorch's");
        // Each window its own batch (its own ranges); with overlap 0.5 the first window alone
        // covers the grid's first 64 x 64 pixels.
        let o = infer::InferOptions { run: run("pt"), device: DeviceChoice::Cpu, batch_size: 1, overlap: 0.5, ..Default::default() };
        infer::infer(&project, &o, &Progress::silent("infer")).unwrap();
        let synthetic = raster::read_window(&project.synthetic_s2(&run("pt")).display().to_string(), &[], None).unwrap();
        let summary: s2cr::dataset::DatasetSummary = s2cr::fsutil::load_json(&project.dataset_json(), "").unwrap();
        let n = 128;
        let window = raster::read_window(&project.root().join(&summary.files.inputs_vrt).display().to_string(), &[], Some(raster::PixelWindow { x_off: 0, y_off: 0, width: n, height: n })).unwrap();
        let range = |c: usize| window.bands[c].iter().zip(&window.valid).filter(|(_, ok)| **ok).fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (v, _)| (lo.min(*v), hi.max(*v)));
        let mut input = Vec::with_capacity(10 * n * n);
        for (c, stats) in normalization.inputs.iter().enumerate() {
            let (lo, hi) = range(c);
            for (v, ok) in window.bands[c].iter().zip(&window.valid) {
                let x = match stats.kind {
                    ChannelKind::S2 => 2.0 * (v - lo) / (hi - lo) - 1.0,
                    ChannelKind::S1 => (v - stats.mean as f32) / stats.std as f32,
                    ChannelKind::Mask => *v,
                };
                input.push(if *ok && x.is_finite() { x } else { 0.0 });
            }
        }
        let ours: Vec<f32> = g.fold_batch_norm().forward(Tensor::from_data(TensorData::new(input.clone(), [1, 10, n, n]), &dev)).into_data().try_to_vec().unwrap();
        // PyTorch's own output for that input (the .pth in UnetGenerator, eval mode), when a
        // Python with torch is there: the de-normalized image is checked against it.
        let out = match python() {
            Some(python) => {
                let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
                let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 10, n, n], &bytes).unwrap();
                let (x_file, y_file) = (tmp.path().join("window.in.safetensors"), tmp.path().join("window.out.safetensors"));
                std::fs::write(&x_file, safetensors::serialize([("input", view)], None).unwrap()).unwrap();
                let (_, cfg_json, _) = expected("unet128_batch_10to6");
                let o = std::process::Command::new(&python)
                    .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pix2pix_fixtures.py"))
                    .args(["run", "--weights"])
                    .arg(fixture("unet128_batch_10to6.pth"))
                    .args(["--config", &cfg_json.to_string(), "--input"])
                    .arg(&x_file)
                    .arg("--out")
                    .arg(&y_file)
                    .output()
                    .unwrap();
                assert!(o.status.success(), "PyTorch: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
                let file = std::fs::read(&y_file).unwrap();
                let t = safetensors::SafeTensors::deserialize(&file).unwrap();
                let torch: Vec<f32> = t.tensor("output").unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                assert!(max_diff(&torch, &ours) < 1e-4, "PyTorch and our network on the window: {}", max_diff(&torch, &ours));
                torch
            }
            None => {
                crate::missing_tool("no Python with torch for PyTorch's output on the window (set S2CR_PYTHON; scripts/requirements-bench.txt)");
                ours
            }
        };
        let (mut worst, mut checked, mut below_min) = (0f32, 0usize, 0usize);
        for (o, stats) in normalization.outputs.iter().enumerate() {
            let band = stats.name.rsplit(':').next().unwrap();
            let c = normalization.inputs.iter().position(|s| s.kind == ChannelKind::S2 && s.name.rsplit(':').next() == Some(band)).unwrap();
            let (lo, hi) = range(c);
            for r in 0..64 {
                for col in 0..64 {
                    let i = r * n + col;
                    if !window.valid[i] {
                        continue;
                    }
                    let want = (out[o * n * n + i] + 1.0) / 2.0 * (hi - lo) + lo;
                    let got = synthetic.bands[o][r * synthetic.width + col];
                    worst = worst.max((got - want).abs() / (hi - lo));
                    below_min += (got < lo) as usize;
                    checked += 1;
                }
            }
        }
        assert!(checked > 6 * 3000, "{checked} pixels compared");
        assert!(worst < 1e-4, "the synthetic image is PyTorch's output de-normalized from [-1, 1]: worst difference {worst} of the band's range");
        assert_eq!(below_min, 0, "a Tanh output in [-1, 1] stays within the window's t0 range");
        // Trained further, it goes on in its range.
        use s2cr::model::config::{ModelConfig, TrainConfig};
        use s2cr::model::train::{TrainOptions, train};
        let model = ModelConfig::load(&project.run_model_yaml(&run("pt"))).unwrap();
        let tc = TrainConfig { batch_size: 1, max_steps: 1, checkpoint_every: 0, workers: 0, augment: false, init_from: Some(project.run_dir(&run("pt"))), ..Default::default() };
        train(&project, &TrainOptions { run: run("tuned"), model, train: tc, device: DeviceChoice::Cpu, resume: false }, &Progress::silent("train")).unwrap();
        let tuned: s2cr::dataset::normalize::Normalization = s2cr::fsutil::load_json(&project.run_normalization_json(&run("tuned")), "").unwrap();
        assert_eq!(tuned.range, DataRange::Symmetric, "a fine-tuned pix2pix model keeps pix2pix's range");
    }

    #[test]
    fn a_pix2pix_generator_becomes_a_run_that_synthesizes_the_grid_and_travels_back() {
        let tmp = tempfile::tempdir().unwrap();
        let project = project(&tmp.path().join("p"));
        let pth = fixture("unet128_batch_10to6.pth");
        // A .pth says nothing of its channels: the user must.
        let e = s2cr::error_chain(&import_run(&project, &pth, &opts("pt", None)).unwrap_err());
        assert!(e.contains("--inputs") && e.contains("S1_t0:VV") && e.contains("does not say what its channels are"), "{e}");
        // Channels in another order than the dataset's: refused, naming the first that differ.
        let mut wrong = opts("pt", None);
        let mut names: Vec<String> = s2cr::fsutil::load_json::<s2cr::dataset::DatasetSummary>(&project.dataset_json(), "").unwrap().inputs.iter().map(|c| c.name.clone()).collect();
        names.swap(0, 1);
        (wrong.inputs, wrong.outputs) = (Some(names), Some(vec!["dataset".into()]));
        let e = s2cr::error_chain(&import_run(&project, &pth, &wrong).unwrap_err());
        assert!(e.contains("#1: model S1_t0:VH / dataset S1_t0:VV"), "{e}");
        // A discriminator: refused, and no run is left behind.
        let e = s2cr::error_chain(&import_run(&project, &fixture("bad_discriminator.pth"), &opts("d", Some("dataset"))).unwrap_err());
        assert!(e.contains("NLayerDiscriminator"), "{e}");
        assert!(!project.run_dir(&run("d")).exists() && !project.run_dir(&run("pt")).exists(), "nothing written");
        // Imported, the run gives PyTorch's output from its checkpoint.
        let r = import_run(&project, &pth, &opts("pt", Some("dataset"))).unwrap();
        assert_eq!((r.model.depth, r.model.ngf, r.imported.config_from.as_str(), r.imported.format.as_str()), (7, 4, "keys", "pth"));
        let (g, cfg, _, step) = infer::load_generator(&project, &run("pt"), &Device::flex()).unwrap();
        assert_eq!((step, cfg.depth), (0, 7));
        let (want, _, size) = expected("unet128_batch_10to6");
        let y: Vec<f32> = g.forward(fixed_input(10, size)).into_data().try_to_vec().unwrap();
        assert!(max_diff(&y, &want) < 1e-4, "the run's checkpoint is the file's network");
        let e = s2cr::error_chain(&import_run(&project, &pth, &opts("pt", Some("dataset"))).unwrap_err());
        assert!(e.contains("run pt exists"), "{e}");
        // Its card says where it came from.
        let card: s2cr::model::card::ModelCard = s2cr::fsutil::load_json(&project.run_dir(&run("pt")).join("model.json"), "").unwrap();
        assert!(card.imported.as_ref().is_some_and(|i| i.sha256 == s2cr::fsutil::sha256_file(&pth).unwrap()) && card.training.is_none());
        let md = std::fs::read_to_string(project.run_dir(&run("pt")).join("model.md")).unwrap();
        assert!(md.contains("Imported from") && md.contains("unet128_batch_10to6.pth"), "{md}");
        let first = synthesize(&project, "pt");
        assert_eq!(first.len(), 6);
        assert!(first[0].iter().filter(|v| v.is_finite()).count() > first[0].len() / 2, "the grid is synthesized");
        // Exported with its sidecar, imported back without flags: the same image.
        let out = tmp.path().join("shared/G.safetensors");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let x = export_run(&project, &run("pt"), &out).unwrap();
        assert!(x.sidecar.is_file() && x.sidecar.extension().unwrap() == "json");
        let sidecar: s2cr::model::portable::ModelSidecar = s2cr::fsutil::load_json(&x.sidecar, "").unwrap();
        assert_eq!((sidecar.inputs.len(), sidecar.outputs.len(), sidecar.model.depth), (10, 6, 7));
        assert!(sidecar.provenance["imported_from"].contains("unet128_batch_10to6.pth"));
        assert_eq!(sidecar.range, Some(s2cr::dataset::normalize::DataRange::Symmetric), "pix2pix's range travels with it");
        let back = import_run(&project, &out, &opts("back", None)).unwrap();
        assert_eq!((back.imported.config_from.as_str(), back.imported.channels_from.as_str(), back.imported.normalization_from.as_str(), back.imported.range.as_str(), back.imported.range_from.as_str()), ("sidecar", "sidecar", "sidecar", "symmetric", "sidecar"));
        let again = synthesize(&project, "back");
        let bits = |b: &Vec<Vec<f32>>| b.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&first), bits(&again), "export and import change nothing");
        // A file that is not the one its sidecar describes: refused, nothing written.
        let mut bytes = std::fs::read(&out).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&out, &bytes).unwrap();
        let e = s2cr::error_chain(&import_run(&project, &out, &opts("tampered", None)).unwrap_err());
        assert!(e.contains("checksum") && e.contains("G.json"), "{e}");
        assert!(!project.run_dir(&run("tampered")).exists());
    }
}

#[test]
fn the_model_commands_import_and_export_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("p");
    std::fs::create_dir_all(&root).unwrap();
    let project = crate::dataset::project_with_preprocessed(&root);
    let tiles = s2cr::dataset::tiles::TileConfig { size: 128, stride: 128, min_valid: 0.5, val_fraction: 0.0, test_fraction: 0.0, split_block_patches: 1, gap_px: 0, seed: 3 };
    s2cr::dataset::build(&project, &s2cr::dataset::DatasetConfig { tiles, ..s2cr::dataset::DatasetConfig::research(&project) }, &s2cr::job::Progress::silent("dataset")).unwrap();
    let dir = project.root().to_path_buf();
    let s2cr = |args: &[&str]| assert_cmd::cargo::cargo_bin_cmd!("s2cr").arg("--project").arg(&dir).args(args).assert();
    let pth = fixture("unet128_batch_10to6.pth");
    let out = s2cr(&["model", "import", pth.to_str().unwrap(), "--run", "pt"]).code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("--inputs") && err.contains("S2_t0:B02"), "{err}");
    let out = s2cr(&["model", "import", pth.to_str().unwrap(), "--run", "pt", "--inputs", "dataset", "--outputs", "dataset"]).success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("as run pt: depth 7, ngf 4, Batch norm, 10 -> 6 channels (configuration from keys") && text.contains("data range symmetric from pix2pix's default"), "{text}");
    let out = s2cr(&["model", "import", pth.to_str().unwrap(), "--run", "unit", "--inputs", "dataset", "--outputs", "dataset", "--range", "unit"]).success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("data range unit from --range"), "{text}");
    assert!(std::fs::read_to_string(dir.join("runs/unit/model.md")).unwrap().contains("data range unit (from --range)"), "the card says the range");
    let g = tmp.path().join("G.safetensors");
    let out = s2cr(&["model", "export", "--run", "pt", "--out", g.to_str().unwrap()]).success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("exported run pt (step 0, 0.17 M parameters)") && g.is_file() && tmp.path().join("G.json").is_file(), "{text}");
    assert!(std::fs::read_to_string(tmp.path().join("G.md")).unwrap().contains("# Model card: run pt"), "the card beside the weights");
    // The same run with our keys, from the command line: read back with its sidecar.
    let ours = tmp.path().join("ours/G.safetensors");
    std::fs::create_dir_all(ours.parent().unwrap()).unwrap();
    let out = s2cr(&["model", "export", "--run", "pt", "--keys", "s2cr", "--out", ours.to_str().unwrap()]).success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("exported run pt") && ours.with_extension("json").is_file(), "{text}");
    let header = String::from_utf8_lossy(&std::fs::read(&ours).unwrap()[..4096]).to_string();
    assert!(header.contains("\"down.0.weight\"") && !header.contains("model.model.0.weight"), "our keys, not pix2pix's: {header:.200}");
    s2cr(&["model", "import", ours.to_str().unwrap(), "--run", "back"]).success();
    let out = s2cr(&["model", "export", "--run", "pt", "--keys", "torch", "--out", g.to_str().unwrap()]).code(2);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("pix2pix"), "a usage error lists the choices");
    let out = s2cr(&["model", "export", "--run", "nothing", "--out", g.to_str().unwrap()]).code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("run nothing has no checkpoint"), "{err}");
}

mod bundles {
    use super::*;
    use s2cr::dataset::{self, DatasetConfig};
    use s2cr::dataset::tiles::TileConfig;
    use s2cr::job::Progress;
    use s2cr::model::config::{ModelConfig, TrainConfig};
    use s2cr::model::portable::{export_bundle, import_bundle};
    use s2cr::model::{DeviceChoice, infer, train};
    use s2cr::project::{Project, RunName};

    fn run(name: &str) -> RunName {
        RunName::new(name).unwrap()
    }

    fn project(root: &Path, sar_only: bool) -> Project {
        std::fs::create_dir_all(root).unwrap();
        let project = crate::dataset::project_with_preprocessed(root);
        let tiles = TileConfig { size: 64, stride: 64, min_valid: 0.0, val_fraction: 0.0, test_fraction: 0.0, split_block_patches: 1, gap_px: 0, seed: 1 };
        let mut cfg = DatasetConfig { tiles, ..DatasetConfig::research(&project) };
        if sar_only {
            cfg.inputs = dataset::sar_only_inputs(&project.config.bands.s1);
        }
        dataset::build(&project, &cfg, &Progress::silent("dataset")).unwrap();
        project
    }

    fn synthesize(project: &Project, name: &str) -> Vec<u8> {
        let o = infer::InferOptions { run: run(name), device: DeviceChoice::Cpu, ..Default::default() };
        infer::infer(project, &o, &Progress::silent("infer")).unwrap();
        let stack = s2cr::raster::read_window(&project.synthetic_s2(&run(name)).display().to_string(), &[], None).unwrap();
        stack.bands.iter().flatten().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn a_bundle_carries_a_run_to_another_project_and_is_checked_on_the_way_in() {
        let tmp = tempfile::tempdir().unwrap();
        let a = project(&tmp.path().join("a"), false);
        let model = ModelConfig { ngf: 8, ndf: 8, depth: 4, ..Default::default() };
        let tc = TrainConfig { max_steps: 3, checkpoint_every: 0, workers: 0, batch_size: 1, ..Default::default() };
        train::train(&a, &train::TrainOptions { run: run("t"), model: model.clone(), train: tc.clone(), device: DeviceChoice::Cpu, resume: false }, &Progress::silent("train")).unwrap();
        let out = tmp.path().join("t.s2crmodel");
        let m = export_bundle(&a, &run("t"), &out).unwrap();
        assert_eq!(m.step, 3);
        for f in ["model.yaml", "normalization.json", "dataset.json", "checkpoint.json", "checkpoints/step-3/generator.bpk", "checkpoints/step-3/optim_d.bpk", "model.stac.json"] {
            assert!(m.files.contains_key(f), "{f} travels");
        }
        assert!(s2cr::model::portable::is_bundle(&out));
        // Into another project on the same ground: the same image.
        let b = project(&tmp.path().join("b"), false);
        import_bundle(&b, &out, &run("came")).unwrap();
        assert_eq!(synthesize(&a, "t"), synthesize(&b, "came"), "the bundled run synthesizes the same image");
        assert!(b.run_bundle_json(&run("came")).is_file());
        let card = |p: &Project, r: &str| -> s2cr::model::card::ModelCard { s2cr::fsutil::load_json(&p.run_dir(&run(r)).join("model.json"), "").unwrap() };
        assert_eq!(card(&b, "came").steps, 3, "the card it came with");
        // Trained further here: a card of its own, with the new steps, losses and checksum.
        let more = TrainConfig { max_steps: 5, ..tc.clone() };
        train::train(&b, &train::TrainOptions { run: run("came"), model: model.clone(), train: more, device: DeviceChoice::Cpu, resume: true }, &Progress::silent("train")).unwrap();
        let now = card(&b, "came");
        let generator = b.run_dir(&run("came")).join("checkpoints/step-5/generator.bpk");
        assert_eq!(now.steps, 5);
        assert_eq!(now.generator_sha256, s2cr::fsutil::sha256_file(&generator).unwrap());
        assert_ne!(now.generator_sha256, card(&a, "t").generator_sha256);
        assert!(now.last_metrics.contains_key("g_l1"), "{:?}", now.last_metrics);
        // Damaged on the way: refused, nothing written.
        let bytes = std::fs::read(&out).unwrap();
        let bad = tmp.path().join("bad.s2crmodel");
        let mut flipped = bytes.clone();
        let mid = bytes.len() / 2;
        flipped[mid] ^= 0x10;
        std::fs::write(&bad, &flipped).unwrap();
        let e = s2cr::error_chain(&import_bundle(&b, &bad, &run("x")).unwrap_err());
        assert!(e.contains("bad.s2crmodel") && (e.contains("SHA-256") || e.contains("not a readable bundle") || e.contains("bundle.json")), "{e}");
        std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
        let e = s2cr::error_chain(&import_bundle(&b, &bad, &run("x")).unwrap_err());
        assert!(e.contains("bad.s2crmodel"), "{e}");
        assert!(!b.run_dir(&run("x")).exists(), "nothing written");
        // An entry that would land outside the run: refused.
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_old();
        let name = b"../evil.txt";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append(&h, &b"evil"[..]).unwrap();
        std::fs::write(&bad, builder.into_inner().unwrap()).unwrap();
        let e = s2cr::error_chain(&import_bundle(&b, &bad, &run("x")).unwrap_err());
        assert!(e.contains("../evil.txt") && e.contains("not a plain relative path"), "{e}");
        assert!(!tmp.path().join("evil.txt").exists() && !b.runs_dir().join("evil.txt").exists());
        // A project of other channels: refused, saying which.
        let c = project(&tmp.path().join("c"), true);
        let e = s2cr::error_chain(&import_bundle(&c, &out, &run("x")).unwrap_err());
        assert!(e.contains("the model's channels") && e.contains("S2_t0:B02"), "{e}");
    }
}
