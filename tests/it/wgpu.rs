//! Training on wgpu against the CPU: the networks layer by layer (training mode with batch
//! statistics, and inference mode), the losses, the gradients through one optimizer step, and
//! steps of the demo's model with the same weights and batches. On the machines here the adapter
//! is Mesa's software Vulkan (lavapipe); a hardware GPU runs the same tests.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use s2cr::model::config::ModelConfig;
use s2cr::model::discriminator::Discriminator;
use s2cr::model::generator::{Activation, Generator};

/// The wgpu device, or `None` with the reason said (a failure in CI, where lavapipe is
/// installed).
fn gpu() -> Option<(Device, String)> {
    match s2cr::model::gpu_available() {
        Ok(name) => Some((s2cr::model::device(s2cr::model::DeviceChoice::Gpu).unwrap().0, name)),
        Err(why) => {
            crate::missing_tool(&format!("a wgpu adapter (Mesa's lavapipe: mesa-vulkan-drivers): {why}"));
            None
        }
    }
}

fn values(t: &Tensor<4>) -> Vec<f32> {
    t.clone().try_into_vec_as::<f32>().unwrap()
}

/// The largest difference between `a` and `b`, relative to the largest magnitude of `a`.
fn relative(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) }) / scale
}

/// Two copies of a weight after Adam's first step from the same values: Adam moves each value by
/// about the learning rate whatever its gradient's size, so a gradient that is zero to float
/// rounding may move it either way. Returns the largest difference in units of the learning rate
/// (at most 2 for a flipped one) and the share of values that differ by more than 1e-6.
fn first_step_difference(a: &[f32], b: &[f32], lr: f32) -> (f32, usize) {
    let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    let largest = d.iter().fold(0f32, |m, v| if v.is_nan() { f32::NAN } else { m.max(*v) }) / lr;
    (largest, d.iter().filter(|v| !(**v <= 1e-6)).count())
}

/// Every float parameter's values, in the module's order, with their paths.
fn parameters<M: Module>(m: &M) -> Vec<(String, Vec<f32>)> {
    struct Collect(Vec<String>, Vec<(String, Vec<f32>)>);
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.1.push((self.0.join("."), p.val().try_into_vec_as::<f32>().unwrap()));
        }
    }
    let mut c = Collect(Vec::new(), Vec::new());
    m.visit(&mut c);
    c.1
}

/// The demo's model (ngf 16, depth 6, batch norm, 11 -> 6 channels) without dropout, so that
/// both devices compute the same function.
fn demo_model() -> ModelConfig {
    ModelConfig { input_channels: 11, output_channels: 6, dropout: 0.0, ..s2cr::demo::model_config() }
}

/// Compares two traces layer by layer; returns the first layer over `tol` (relative), printing
/// the whole table.
fn first_parting(what: &str, cpu: &[(String, Tensor<4>)], gpu: &[(String, Tensor<4>)], tol: f32) -> Option<(String, f32)> {
    assert_eq!(cpu.len(), gpu.len());
    let mut first = None;
    for ((name, a), (_, b)) in cpu.iter().zip(gpu) {
        let d = relative(&values(a), &values(b));
        println!("{what} {name:>12} {:?}: {d:.2e}", a.dims());
        if first.is_none() && !(d <= tol) {
            first = Some((name.clone(), d));
        }
    }
    first
}

/// Forward, layer by layer: in training mode (an autodiff device: batch norm over the batch's
/// statistics) and inference mode (running statistics), at the demo's 64 px (the
/// discriminator's odd 7 x 7 and 6 x 6 maps) and at 256 px.
#[test]
fn the_networks_forward_on_wgpu_as_on_the_cpu_layer_by_layer() {
    let Some((gpu, name)) = gpu() else { return };
    println!("adapter: {name}");
    let cpu = Device::flex();
    let mut parted = Vec::new();
    for (size, cfg) in [(64, demo_model()), (256, ModelConfig { ngf: 4, ndf: 4, depth: 8, ..demo_model() })] {
        for training in [true, false] {
            let (c, g) = if training { (cpu.clone().autodiff(), gpu.clone().autodiff()) } else { (cpu.clone(), gpu.clone()) };
            let gen_c = Generator::new(&cfg, Activation::Tanh, &c);
            let disc_c = Discriminator::new(&cfg, &c);
            let (gen_g, disc_g) = (gen_c.clone().fork(&g), disc_c.clone().fork(&g));
            let x = Tensor::<4>::random([2, 11, size, size], Distribution::Normal(0.0, 1.0), &cpu);
            let y = Tensor::<4>::random([2, 6, size, size], Distribution::Uniform(-1.0, 1.0), &cpu);
            let (mut tc, mut tg) = (Vec::new(), Vec::new());
            gen_c.forward_traced(x.clone().to_device(&c), &mut tc);
            gen_g.forward_traced(x.clone().to_device(&g), &mut tg);
            let what = format!("{size} px {} G", if training { "training" } else { "inference" });
            if let Some(p) = first_parting(&what, &tc, &tg, 1e-3) {
                parted.push(format!("{what}: {} ({:.2e})", p.0, p.1));
            }
            let (mut dc, mut dg) = (Vec::new(), Vec::new());
            disc_c.forward_traced(x.clone().to_device(&c), y.clone().to_device(&c), Some(&mut dc));
            disc_g.forward_traced(x.to_device(&g), y.to_device(&g), Some(&mut dg));
            let what = format!("{size} px {} D", if training { "training" } else { "inference" });
            if let Some(p) = first_parting(&what, &dc, &dg, 1e-3) {
                parted.push(format!("{what}: {} ({:.2e})", p.0, p.1));
            }
        }
    }
    assert!(parted.is_empty(), "wgpu ({name}) parts from the CPU at: {parted:#?}");
}

/// The losses, the gradients (through one Adam step of each network, compared weight by weight)
/// and the demo model's steps on the same weights and batches: within the stated tolerances of
/// the CPU's, step by step.
#[test]
fn training_steps_on_wgpu_give_the_cpus_losses() {
    use s2cr::model::config::GanLoss;
    use s2cr::model::cpu::adam::FusedAdam;
    use s2cr::model::step::{GanStep, gan_step, scalar};
    let Some((gpu, name)) = gpu() else { return };
    let cfg = demo_model();
    // The same weights and batches every run (flips of near-zero gradients still depend on
    // the order the GPU sums in).
    Device::flex().seed(20261207);
    let (c, g) = (Device::flex().autodiff(), gpu.autodiff());
    let generator = Generator::new(&cfg, Activation::Sigmoid, &c);
    let disc = Discriminator::new(&cfg, &c);
    let mut nets = [(generator.clone(), disc.clone(), FusedAdam::init(0.5, 0.999, 1e-8), FusedAdam::init(0.5, 0.999, 1e-8)), (generator.fork(&g), disc.fork(&g), FusedAdam::init(0.5, 0.999, 1e-8), FusedAdam::init(0.5, 0.999, 1e-8))];
    let cpu = Device::flex();
    let mut worst = 0f64;
    let mut table = Vec::new();
    for step in 0..20 {
        let x = Tensor::<4>::random([2, 11, 64, 64], Distribution::Normal(0.0, 1.0), &cpu);
        let y = Tensor::<4>::random([2, 6, 64, 64], Distribution::Uniform(0.0, 1.0), &cpu);
        let valid = Tensor::<4>::ones([2, 1, 64, 64], &cpu);
        let mut losses = Vec::new();
        for (i, dev) in [&c, &g].into_iter().enumerate() {
            let (gn, dn, og, od) = &mut nets[i];
            let (g2, d2, l) = gan_step(GanStep { g: gn.clone(), d: dn.clone(), opt_g: og, opt_d: od, lr: 2e-4, gan_loss: GanLoss::Vanilla, l1_weight: 100.0, spectral: None }, x.clone().to_device(dev), y.clone().to_device(dev), valid.clone().to_device(dev));
            (*gn, *dn) = (g2, d2);
            losses.push([scalar(l.g_adversarial), scalar(l.g_l1), scalar(l.d_real), scalar(l.d_fake)]);
        }
        let d = losses[0].iter().zip(&losses[1]).map(|(a, b)| (a - b).abs() / a.abs().max(1e-3)).fold(0f64, |m, d| if d.is_nan() { f64::NAN } else { m.max(d) });
        table.push(format!("step {:>2}: cpu {:?} wgpu {:?} ({d:.1e})", step + 1, losses[0], losses[1]));
        worst = if d.is_nan() { f64::NAN } else { worst.max(d) };
        if step == 0 {
            // After one step: the weights of both networks, parameter by parameter.
            for (what, a, b) in [("G", parameters(&nets[0].0), parameters(&nets[1].0)), ("D", parameters(&nets[0].1), parameters(&nets[1].1))] {
                for ((path, p), (_, q)) in a.iter().zip(&b).filter(|((p, _), _)| !p.contains("running")) {
                    // Adam's first step is lr * sign(gradient): a gradient within rounding of zero
                    // may take either sign on the two devices and move its value by 2 lr (one of
                    // the 64 values of a batch norm's beta did so in CI, and two of the 128 of a
                    // gamma once). Allowed: such flips on two values or 1 % of a parameter's
                    // values, whichever is more; the gradients themselves are compared in
                    // `gradients_on_wgpu_are_the_cpus`.
                    let (largest, differ) = first_step_difference(p, q, 2e-4);
                    let allowed = (p.len() / 100).max(2);
                    assert!(largest <= 2.01 && differ <= allowed, "{what} {path} after one step on {name}: {largest} learning rates, {differ} of {} values differ ({allowed} allowed)\n{}", p.len(), table.join("\n"));
                }
            }
        }
    }
    println!("{}", table.join("\n"));
    // Stated tolerance: 0.2 % of each loss at every one of the 20 steps (sums in another order
    // drift apart in a GAN: 5e-7 at step 1 and 3.4e-4 at step 20 measured on lavapipe; before
    // the Adam work-around, g_adversarial was 0 at step 1 and NaN from step 3).
    assert!(worst < 2e-3, "losses on {name} part from the CPU's by {worst:e} at most:\n{}", table.join("\n"));
}

/// Every float parameter's path and id, in the module's order.
fn parameter_ids<M: Module>(m: &M) -> Vec<(String, burn::module::ParamId, usize)> {
    struct Collect(Vec<String>, Vec<(String, burn::module::ParamId, usize)>);
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.1.push((self.0.join("."), p.id, D));
        }
    }
    let mut c = Collect(Vec::new(), Vec::new());
    m.visit(&mut c);
    c.1
}

fn grad_values(grads: &burn::optim::GradientsParams, id: burn::module::ParamId, dims: usize) -> Option<Vec<f32>> {
    match dims {
        1 => grads.get::<1>(id).map(|t| t.try_into_vec_as::<f32>().unwrap()),
        4 => grads.get::<4>(id).map(|t| t.try_into_vec_as::<f32>().unwrap()),
        _ => None,
    }
}

/// Elements of the traced layers whose sign differs between the devices, in the layers that feed
/// a ReLU or leaky ReLU (every traced layer but the networks' outputs), and in `fake - y` (the
/// L1 loss's sign). Their derivatives are steps: a value within rounding of zero may go either
/// way on the two devices and take a whole element's gradient with it.
fn sign_flips(cpu: &[(String, Tensor<4>)], gpu: &[(String, Tensor<4>)], last: &[&str]) -> Vec<String> {
    let mut flips = Vec::new();
    for ((name, a), (_, b)) in cpu.iter().zip(gpu).filter(|((n, _), _)| !last.contains(&n.as_str())) {
        let n = values(a).iter().zip(values(b)).filter(|(p, q)| (**p > 0.0) != (*q > 0.0)).count();
        if n > 0 {
            flips.push(format!("{name}: {n}"));
        }
    }
    flips
}

/// The gradients of the discriminator's and the generator's losses, parameter by parameter, on a
/// draw of inputs where both devices agree on the sign of every activation that meets a ReLU and
/// of every L1 difference (see [`sign_flips`]; about one draw in eight has one such element
/// with the demo's model, which moved up to 12 % of a gradient).
#[test]
fn gradients_on_wgpu_are_the_cpus() {
    compare_gradients(64, 5, 1e-3);
}

/// The same at 256 px (the research's patch size), on one draw: with 16 times the elements, a
/// few of them within rounding of zero take opposite signs at a ReLU on the two devices in most
/// draws, so the comparison allows what such elements move. Measured on lavapipe: every
/// gradient within 2.8e-3 of the CPU's (the largest, the generator's `up.1.weight`). Ignored:
/// about 9 minutes on lavapipe with 2 cores, too long for every CI run; by hand:
/// `cargo nextest run --test it --run-ignored only -E 'test(at_256_px)' --no-capture`.
#[test]
#[ignore = "about 9 minutes on a software adapter; run by hand"]
fn gradients_on_wgpu_at_256_px_are_the_cpus() {
    compare_gradients(256, 1, 1e-2);
}

/// Compares the gradients of both networks on wgpu and the CPU at `size` px, drawing inputs up to
/// `draws` times until no element meets a ReLU with opposite signs (on the last draw, compared
/// anyway); each parameter's gradient within `tolerance` of the CPU's, relative to its largest
/// value.
fn compare_gradients(size: usize, draws_allowed: usize, tolerance: f32) {
    use burn::optim::GradientsParams;
    use s2cr::model::config::GanLoss;
    use s2cr::model::step::{gan_loss, masked_l1};
    let Some((gpu, name)) = gpu() else { return };
    let cfg = demo_model();
    let (c, g) = (Device::flex().autodiff(), gpu.autodiff());
    let generator = Generator::new(&cfg, Activation::Sigmoid, &c);
    let disc = Discriminator::new(&cfg, &c);
    let cpu = Device::flex();
    let mut draws = Vec::new();
    let grads = loop {
        let x = Tensor::<4>::random([2, 11, size, size], Distribution::Normal(0.0, 1.0), &cpu);
        let y = Tensor::<4>::random([2, 6, size, size], Distribution::Uniform(0.0, 1.0), &cpu);
        let valid = Tensor::<4>::ones([2, 1, size, size], &cpu);
        let mut grads = Vec::new();
        let mut traces = Vec::new();
        for dev in [&c, &g] {
            let (gn, dn) = (generator.clone().fork(dev), disc.clone().fork(dev));
            let (x, y, v) = (x.clone().to_device(dev), y.clone().to_device(dev), valid.clone().to_device(dev));
            let mut trace = Vec::new();
            let fake = gn.forward_traced(x.clone(), &mut trace);
            let mut d_trace = Vec::new();
            let d_real = gan_loss(GanLoss::Vanilla, dn.forward_traced(x.clone(), y.clone(), Some(&mut d_trace)), true);
            let d_fake = gan_loss(GanLoss::Vanilla, dn.forward_traced(x.clone(), fake.clone().detach(), Some(&mut d_trace)), false);
            let d_loss = (d_real + d_fake).mul_scalar(0.5);
            let gd = GradientsParams::from_grads(d_loss.backward(), &dn);
            let frozen = dn.clone().no_grad();
            let g_loss = gan_loss(GanLoss::Vanilla, frozen.forward_traced(x, fake.clone(), Some(&mut d_trace)), true) + masked_l1(fake.clone(), y.clone(), v).mul_scalar(100.0);
            let gg = GradientsParams::from_grads(g_loss.backward(), &gn);
            trace.push(("fake - y".to_string(), fake - y));
            trace.extend(d_trace);
            grads.push((gd, gg, parameter_ids(&dn), parameter_ids(&gn)));
            traces.push(trace);
        }
        let last_d = format!("conv.{}", cfg.discriminator_layers + 1);
        let flips = sign_flips(&traces[0], &traces[1], &["up.0", "out", &last_d]);
        if flips.is_empty() || draws.len() + 1 >= draws_allowed {
            if !flips.is_empty() {
                println!("{size} px: elements of opposite signs, compared as they are: {flips:?}");
            }
            break grads;
        }
        println!("draw {}: elements of opposite signs: {flips:?}; drawing again", draws.len() + 1);
        draws.push(flips);
    };
    println!("{} and {} discriminator gradients, {} and {} generator gradients", grads[0].0.len(), grads[1].0.len(), grads[0].1.len(), grads[1].1.len());
    let mut parted = Vec::new();
    for (what, ids_a, ids_b, a, b) in [("D", &grads[0].2, &grads[1].2, &grads[0].0, &grads[1].0), ("G", &grads[0].3, &grads[1].3, &grads[0].1, &grads[1].1)] {
        for ((path, id_a, dims), (_, id_b, _)) in ids_a.iter().zip(ids_b) {
            let (path, dims) = (path.clone(), *dims);
            match (grad_values(a, *id_a, dims), grad_values(b, *id_b, dims)) {
                (Some(p), Some(q)) => {
                    let r = relative(&p, &q);
                    println!("{what} grad {path:>24} at {size} px: {r:.2e}");
                    if !(r < tolerance) {
                        parted.push(format!("{what} {path}: {r:e}"));
                    }
                }
                (p, q) => println!("{what} grad {path:>24}: cpu {} wgpu {}", p.is_some(), q.is_some()),
            }
        }
    }
    assert!(parted.is_empty(), "gradients on {name} part from the CPU's: {parted:#?}");
}

/// One optimizer step of the discriminator (the training's own optimizer: the fused Adam on the
/// CPU, Burn's elsewhere), parameter by parameter. Its last convolution (one output channel) is
/// where Burn's Adam on lavapipe went wrong (see `model::cpu::adam`).
#[test]
fn a_discriminator_step_on_wgpu_is_the_cpus() {
    use burn::optim::GradientsParams;
    use s2cr::model::config::GanLoss;
    use s2cr::model::cpu::adam::FusedAdam;
    use s2cr::model::step::gan_loss;
    let Some((gpu, name)) = gpu() else { return };
    let cfg = demo_model();
    let (c, g) = (Device::flex().autodiff(), gpu.autodiff());
    let disc = Discriminator::new(&cfg, &c);
    let cpu = Device::flex();
    let x = Tensor::<4>::random([2, 11, 64, 64], Distribution::Normal(0.0, 1.0), &cpu);
    let y = Tensor::<4>::random([2, 6, 64, 64], Distribution::Uniform(0.0, 1.0), &cpu);
    let mut after = Vec::new();
    for dev in [&c, &g] {
        let dn = disc.clone().fork(dev);
        let d_loss = gan_loss(GanLoss::Vanilla, dn.forward(x.clone().to_device(dev), y.clone().to_device(dev)), true);
        let grads = GradientsParams::from_grads(d_loss.backward(), &dn);
        let mut opt = FusedAdam::init(0.5, 0.999, 1e-8);
        after.push(parameters(&opt.step(2e-4, dn, grads)));
    }
    let mut parted = Vec::new();
    // (The batch norms' running statistics are shared by the clones, and updated by each
    // forward: not compared.)
    for ((path, a), (_, b)) in after[0].iter().zip(&after[1]).filter(|((p, _), _)| !p.contains("running")) {
        // (Sign flips of gradients within rounding of zero: as in the training steps' test.)
        let (largest, differ) = first_step_difference(a, b, 2e-4);
        let allowed = (a.len() / 100).max(1);
        println!("D {path:>22} after one step: at most {largest:.2} learning rates apart, {differ} of {} values", a.len());
        if !(largest <= 2.01 && differ <= allowed) {
            parted.push(format!("{path}: {largest} learning rates, {differ} of {} values ({allowed} allowed)", a.len()));
        }
    }
    assert!(parted.is_empty(), "after one step on {name}: {parted:#?}");
}

/// Networks initialized on wgpu (as training makes them there) have the weights pix2pix asks
/// for: normal with sd 0.02 (the same distribution as on the CPU, not the same draws).
#[test]
fn networks_made_on_wgpu_start_from_pix2pix_initial_weights() {
    let Some((gpu, name)) = gpu() else { return };
    let cfg = demo_model();
    for dev in [Device::flex().autodiff(), gpu.autodiff()] {
        let d = Discriminator::new(&cfg, &dev);
        let g = Generator::new(&cfg, Activation::Sigmoid, &dev);
        for (path, v) in parameters(&d).into_iter().chain(parameters(&g)).filter(|(p, _)| p.ends_with("weight")) {
            let n = v.len() as f64;
            let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
            let sd = (v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            println!("{dev:?} {path}: mean {mean:.4}, sd {sd:.4} ({n} values)");
            if n >= 1000.0 {
                assert!(mean.abs() < 0.005 && (sd - 0.02).abs() < 0.004, "{name}: {path} starts with mean {mean}, sd {sd}");
            }
        }
    }
}

/// `--device auto` leaves a software adapter (lavapipe: slower than Burn's CPU backend) for
/// `--device gpu`, and takes a hardware one.
#[test]
fn auto_takes_a_hardware_adapter_and_leaves_a_software_one() {
    use s2cr::model::DeviceChoice;
    let Some((_, _)) = gpu() else { return };
    let (_, gpu_said) = s2cr::model::device(DeviceChoice::Gpu).unwrap();
    let (_, auto_said) = s2cr::model::device(DeviceChoice::Auto).unwrap();
    if gpu_said.ends_with(", software)") {
        assert!(auto_said.starts_with("CPU (Burn flex"), "auto on a software adapter: {auto_said}");
    } else {
        assert!(auto_said.starts_with("GPU (wgpu:"), "auto on a hardware adapter ({gpu_said}): {auto_said}");
    }
    assert_eq!(s2cr::model::auto_device_description(), auto_said);
}

/// A reproduction, with Burn alone, of the Burn 0.22 fault that made training on wgpu diverge
/// (Mesa's lavapipe): one step of Burn's Adam on a convolution with one output channel
/// (`[1, 128, 4, 4]`, as the PatchGAN's last), from the same weights and input on the CPU and
/// on wgpu. The gradients agree; the weights after the step do not past the first four values.
/// Ignored: it fails while the fault is there (our optimizer works around it by handing Burn's
/// Adam the gradient in a plain layout: `model::cpu::adam`). Run it by hand to see whether a
/// Burn release fixed it: `cargo nextest run --run-ignored only -E 'test(burns_adam)' --no-capture`.
#[test]
#[ignore = "reproduces a Burn 0.22 fault on wgpu (lavapipe); run by hand"]
fn burns_adam_on_wgpu_steps_a_one_channel_convolution_as_on_the_cpu() {
    use burn::nn::conv::Conv2dConfig;
    use burn::optim::{AdamConfig, GradientsParams};
    let Some((gpu, name)) = gpu() else { return };
    let cpu = Device::flex();
    let conv = Conv2dConfig::new([128, 1], [4, 4]).with_bias(false).init(&cpu.clone().autodiff());
    let x = Tensor::<4>::random([2, 128, 8, 8], Distribution::Normal(0.0, 1.0), &cpu);
    let (mut grads, mut after) = (Vec::new(), Vec::new());
    for dev in [cpu.clone().autodiff(), gpu.autodiff()] {
        let c = conv.clone().fork(&dev);
        let loss = c.forward(x.clone().to_device(&dev)).sum();
        let g = GradientsParams::from_grads(loss.backward(), &c);
        grads.push(g.get::<4>(c.weight.id).map(|t| t.try_into_vec_as::<f32>().unwrap()).unwrap_or_default());
        let mut adam = AdamConfig::new().with_beta_1(0.5).init();
        after.push(adam.step(1e-3, c, g).weight.val().try_into_vec_as::<f32>().unwrap());
    }
    assert!(relative(&grads[0], &grads[1]) < 1e-5, "the gradients already differ on {name}");
    let apart: Vec<usize> = (0..after[0].len()).filter(|&i| (after[0][i] - after[1][i]).abs() > 1e-6).collect();
    assert!(apart.is_empty(), "after one step of Burn's Adam on {name}, {} of {} weights differ from the CPU's (first at {:?}); gradients equal", apart.len(), after[0].len(), &apart[..apart.len().min(8)]);
}
