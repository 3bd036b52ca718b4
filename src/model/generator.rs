//! The pix2pix U-Net generator (Isola et al. 2017, `UnetGenerator` of
//! junyanz/pytorch-CycleGAN-and-pix2pix), built level by level instead of recursively:
//!
//! - encoder level 0: Conv 4x4/2 (no norm, no activation before it);
//! - encoder level i > 0: LeakyReLU(0.2), Conv 4x4/2, norm (none at the innermost level);
//!   channels ngf, 2 ngf, 4 ngf, then 8 ngf down to the innermost;
//! - decoder level i (innermost first): ReLU, ConvTranspose 4x4/2, norm, dropout (as pix2pix,
//!   in the 8 ngf blocks between level 4 and the innermost; see `DropoutBlocks`), then
//!   concatenation with the encoder output of level i - 1;
//! - decoder level 0: ReLU, ConvTranspose 4x4/2 to the output channels, output activation.
//!
//! Convolutions have a bias only with instance norm (batch norm's shift makes it redundant),
//! except the last transposed convolution, weights N(0, 0.02) as pix2pix's
//! `init_weights('normal')`: the same 54.4 M parameters for 10 inputs and 6 outputs.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, InstanceNorm, InstanceNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation;

use super::config::{DropoutBlocks, ModelConfig, NormKind};

/// Batch or instance normalization.
#[derive(Module, Debug)]
pub struct Norm {
    batch: Option<BatchNorm>,
    instance: Option<InstanceNorm>,
}

impl Norm {
    pub fn new(kind: NormKind, channels: usize, device: &Device) -> Norm {
        match kind {
            NormKind::Batch => Norm { batch: Some(BatchNormConfig::new(channels).init(device)), instance: None },
            NormKind::Instance => Norm { batch: None, instance: Some(InstanceNormConfig::new(channels).with_affine(true).init(device)) },
            NormKind::InstanceNoAffine => Norm { batch: None, instance: Some(InstanceNormConfig::new(channels).with_affine(false).init(device)) },
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match (&self.batch, &self.instance) {
            (Some(b), _) => super::cpu::norm::batch_norm(b, x),
            (_, Some(i)) => i.forward(x),
            _ => x,
        }
    }
}

pub fn init_weights() -> Initializer {
    Initializer::Normal { mean: 0.0, std: 0.02 }
}

pub fn down_conv(c_in: usize, c_out: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [4, 4])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(bias)
        .with_initializer(init_weights())
        .init(device)
}

pub fn up_conv(c_in: usize, c_out: usize, bias: bool, device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([c_in, c_out], [4, 4]).with_stride([2, 2]).with_padding([1, 1]).with_bias(bias).with_initializer(init_weights()).init(device)
}

/// A resize-conv decoder layer: 3x3, stride 1, padding 1 (after a nearest 2x resize).
pub fn resize_conv(c_in: usize, c_out: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).with_bias(bias).with_initializer(init_weights()).init(device)
}

/// Twice the size by repeating each value (nearest-neighbour).
fn nearest_2x(x: Tensor<4>) -> Tensor<4> {
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
    let [_, _, h, w] = x.dims();
    burn::tensor::module::interpolate(x, InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]))
}

/// Encoder channels of level `i` (pix2pix: ngf, 2 ngf, 4 ngf, 8 ngf, 8 ngf, ...).
pub fn level_channels(ngf: usize, i: usize) -> usize {
    ngf * (1usize << i.min(3))
}

/// The activation at the end of the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    Tanh,
    Sigmoid,
    Identity,
}

#[derive(Module, Debug)]
pub struct Generator {
    down: Vec<Conv2d>,
    /// Norms of encoder levels 1..depth-1 (the innermost has none: `None`).
    down_norm: Vec<Option<Norm>>,
    /// Decoder convolutions, index = level.
    up: Vec<ConvTranspose2d>,
    /// Norms of decoder levels 1..depth (level 0 has none).
    up_norm: Vec<Option<Norm>>,
    dropout: Vec<Option<Dropout>>,
    #[module(skip)]
    pub(crate) activation: Activation,
    /// A residual generator: per output channel, the input channel of S2 t0 and the map into
    /// the label's normalization that the network's change is added to (`None`: pix2pix).
    #[module(skip)]
    pub(crate) residual: Option<Residual>,
    /// model.yaml's `linear`: a 1 x 1 convolution of the inputs added to the output.
    linear: Option<Conv2d>,
    /// model.yaml's `uncertainty: aleatoric`: a transposed convolution beside the last one, from
    /// the same features, giving per pixel and output band the log of a Laplace scale (in the
    /// label's normalized units).
    scale_head: Option<ConvTranspose2d>,
    /// model.yaml's `upsample: resize-conv`: per decoder level, the 3x3 convolution after a
    /// nearest-neighbour resize, in place of `up` (then empty).
    up_resize: Vec<Conv2d>,
}

/// The uncertainty head's bias at the start: a scale of e^-3 (0.05 of the normalized range).
const LOG_SCALE_START: f32 = -3.0;
/// The log-scale the head can give: e^-12 to e^4 normalized units (the gradient stops outside).
pub const LOG_SCALE_RANGE: (f32, f32) = (-12.0, 4.0);

/// The pre-fire base of a residual generator's output: output channel `o` is
/// `scale[o] * x[index[o]] + shift[o]` plus the network's change.
#[derive(Debug, Clone, PartialEq)]
pub struct Residual {
    pub index: Vec<usize>,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

impl Residual {
    /// From [`crate::dataset::normalize::Normalization::residual_maps`]'s (input, a, b).
    pub fn new(maps: &[(usize, f32, f32)]) -> Residual {
        Residual { index: maps.iter().map(|m| m.0).collect(), scale: maps.iter().map(|m| m.1).collect(), shift: maps.iter().map(|m| m.2).collect() }
    }

    /// The base for inputs `x` (`[batch, inputs, h, w]` -> `[batch, outputs, h, w]`).
    pub fn base(&self, x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        let c = self.index.len();
        let channels: Vec<Tensor<4>> = self.index.iter().map(|i| x.clone().narrow(1, *i, 1)).collect();
        let scale = Tensor::<4>::from_data(burn::tensor::TensorData::new(self.scale.clone(), [1, c, 1, 1]), &device);
        let shift = Tensor::<4>::from_data(burn::tensor::TensorData::new(self.shift.clone(), [1, c, 1, 1]), &device);
        Tensor::cat(channels, 1).mul(scale).add(shift)
    }
}

/// Whether decoder level `i` of a `depth`-level generator has dropout: as pix2pix, the blocks
/// of 8 ngf channels on both sides (levels 4 ..), or the three levels next to the innermost.
fn dropout_at(cfg: &ModelConfig, i: usize, depth: usize) -> bool {
    let innermost = i + 1 == depth;
    let blocks = match cfg.dropout_blocks {
        DropoutBlocks::Pix2pix => i >= 4,
        DropoutBlocks::Three => i > 0 && i + 4 >= depth,
    };
    cfg.dropout > 0.0 && !innermost && blocks
}

impl Generator {
    pub fn new(cfg: &ModelConfig, activation: Activation, device: &Device) -> Generator {
        let depth = cfg.depth;
        let bias = cfg.norm.is_instance();
        let ch = |i: usize| level_channels(cfg.ngf, i);
        let mut down = Vec::new();
        let mut down_norm = Vec::new();
        let mut up = Vec::new();
        let mut up_norm = Vec::new();
        let mut dropout = Vec::new();
        let mut up_resize = Vec::new();
        let resize = cfg.upsample == super::config::Upsample::ResizeConv;
        for i in 0..depth {
            let c_in = if i == 0 { cfg.input_channels } else { ch(i - 1) };
            let innermost = i == depth - 1;
            // As pix2pix: a bias only with instance norm, also where no norm follows.
            down.push(down_conv(c_in, ch(i), bias, device));
            down_norm.push(if i == 0 || innermost { None } else { Some(Norm::new(cfg.norm, ch(i), device)) });
            let c_up_in = if innermost { ch(i) } else { 2 * ch(i) };
            let c_up_out = if i == 0 { cfg.output_channels } else { ch(i - 1) };
            if resize {
                up_resize.push(resize_conv(c_up_in, c_up_out, bias || i == 0, device));
            } else {
                up.push(up_conv(c_up_in, c_up_out, bias || i == 0, device));
            }
            up_norm.push(if i == 0 { None } else { Some(Norm::new(cfg.norm, c_up_out, device)) });
            dropout.push(dropout_at(cfg, i, depth).then(|| DropoutConfig::new(cfg.dropout).init()));
            let _ = innermost;
        }
        let linear = cfg.linear.then(|| Conv2dConfig::new([cfg.input_channels, cfg.output_channels], [1, 1]).with_bias(true).with_initializer(Initializer::Zeros).init(device));
        // From the last layer's input: the level-0 skip and the decoder's output, 2 ngf channels.
        let scale_head = (!cfg.uncertainty.is_none()).then(|| {
            let mut head = up_conv(2 * ch(0), cfg.output_channels, true, device);
            head.bias = Some(burn::module::Param::from_tensor(Tensor::full([cfg.output_channels], LOG_SCALE_START, device)));
            head
        });
        Generator { down, down_norm, up, up_norm, dropout, activation, residual: None, linear, scale_head, up_resize }
    }

    /// The generator predicting the change from the pre-fire image (`output: residual`): its
    /// output is `residual`'s base plus the network's last layer, with no activation.
    pub fn with_residual(mut self, residual: Residual) -> Generator {
        self.residual = Some(residual);
        self.activation = Activation::Identity;
        self
    }

    /// Sets the linear map of the inputs (`linear: true`): `weight` `[outputs x inputs]`
    /// row-major and `bias` `[outputs]`. Nothing without one.
    pub fn set_linear(&mut self, weight: Vec<f32>, bias: Vec<f32>) {
        if let Some(l) = &mut self.linear {
            let device = l.weight.val().device();
            let [o, c, _, _] = l.weight.dims();
            l.weight = burn::module::Param::from_tensor(Tensor::from_data(burn::tensor::TensorData::new(weight, [o, c, 1, 1]), &device));
            l.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(burn::tensor::TensorData::new(bias, [o]), &device)));
        }
    }

    /// Whether it predicts its own uncertainty (a log-scale head).
    pub fn has_scale_head(&self) -> bool {
        self.scale_head.is_some()
    }

    /// Whether it has a linear map of the inputs beside the U-Net.
    pub fn has_linear(&self) -> bool {
        self.linear.is_some()
    }

    /// The base a residual generator adds its change to, per output channel: (input, a, b).
    pub fn residual_maps(&self) -> Option<Vec<(usize, f32, f32)>> {
        self.residual.as_ref().map(|r| (0..r.index.len()).map(|o| (r.index[o], r.scale[o], r.shift[o])).collect())
    }

    /// Whether it predicts the change from the pre-fire image.
    pub fn is_residual(&self) -> bool {
        self.residual.is_some()
    }

    /// The dropout layers `cfg` asks for. Dropout has no weights, so a generator loaded from a
    /// file comes back without them (Burn records nothing for it); Monte-Carlo inference puts
    /// them back with this.
    pub fn with_dropout(mut self, cfg: &ModelConfig) -> Generator {
        let depth = self.down.len();
        self.dropout = (0..depth).map(|i| dropout_at(cfg, i, depth).then(|| DropoutConfig::new(cfg.dropout).init())).collect();
        self
    }

    /// For inference: every batch norm folded into the convolution before it. With its running
    /// statistics a batch norm is a per-channel scale and shift, which the convolution's weights
    /// and bias can carry: `y = conv(x) * s + t` with `s = gamma / sqrt(var + eps)` and
    /// `t = beta - mean * s`. Inference then skips a pass over every normalized tensor. The
    /// result must not be trained (training normalizes by batch statistics); instance norms
    /// stay as they are.
    pub fn fold_batch_norm(mut self) -> Generator {
        /// `weight` scaled along its output-channel dimension `dim` and the bias shifted.
        fn fold(bn: &BatchNorm, weight: &mut burn::module::Param<Tensor<4>>, bias: &mut Option<burn::module::Param<Tensor<1>>>, dim: usize) {
            let s = bn.gamma.val().div(bn.running_var.value().add_scalar(bn.epsilon).sqrt());
            let t = bn.beta.val().sub(bn.running_mean.value().mul(s.clone()));
            let c_out = s.dims()[0];
            let mut shape = [1usize; 4];
            shape[dim] = c_out;
            let w = weight.val().mul(s.clone().reshape(shape));
            let b = bias.as_ref().map(|b| b.val()).unwrap_or_else(|| Tensor::zeros([c_out], &s.device()));
            *weight = burn::module::Param::from_tensor(w);
            *bias = Some(burn::module::Param::from_tensor(b.mul(s).add(t)));
        }
        for i in 0..self.down.len() {
            // Convolution weights are [c_out, c_in, k, k]; transposed ones [c_in, c_out, k, k].
            // Only batch norms: instance norms stay where they are.
            if let Some(Norm { batch: Some(bn), .. }) = &self.down_norm[i] {
                let conv = &mut self.down[i];
                fold(bn, &mut conv.weight, &mut conv.bias, 0);
                self.down_norm[i] = None;
            }
            if let Some(Norm { batch: Some(bn), .. }) = &self.up_norm[i] {
                match self.up.get_mut(i) {
                    Some(conv) => fold(bn, &mut conv.weight, &mut conv.bias, 1),
                    None => {
                        let conv = &mut self.up_resize[i];
                        fold(bn, &mut conv.weight, &mut conv.bias, 0);
                    }
                }
                self.up_norm[i] = None;
            }
        }
        self
    }

    /// The decoder levels with dropout.
    pub fn dropout_levels(&self) -> Vec<usize> {
        self.dropout.iter().enumerate().filter(|(_, d)| d.is_some()).map(|(i, _)| i).collect()
    }

    /// `[batch, inputs, h, w]` -> `[batch, outputs, h, w]`; h and w multiples of 2^depth.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_masked(x, None, None).0
    }

    /// [`Generator::forward`] and, with an uncertainty head, the log of each pixel's Laplace
    /// scale per band (`[batch, outputs, h, w]`, normalized units, within [`LOG_SCALE_RANGE`]).
    pub fn forward_with_scale(&self, x: Tensor<4>) -> (Tensor<4>, Option<Tensor<4>>) {
        self.forward_masked(x, None, None)
    }

    /// [`Generator::forward`], keeping every layer's output (`down.0`, `down_norm.1`,
    /// `up.3`, `cat.2`, `out`, ...): for comparing devices layer by layer.
    pub fn forward_traced(&self, x: Tensor<4>, trace: &mut Vec<(String, Tensor<4>)>) -> Tensor<4> {
        self.forward_masked(x, None, Some(trace)).0
    }

    /// One stochastic pass for Monte-Carlo dropout at inference: at every decoder level with
    /// dropout, the activations are multiplied by `mask(level, dims)` (zeros and 1 / (1 - p),
    /// made by the caller, so that they can be seeded by window position) instead of Burn's
    /// dropout, which only acts on an autodiff device. Normalization stays as it is (inference
    /// mode).
    pub fn forward_sampled(&self, x: Tensor<4>, mask: &mut dyn FnMut(usize, [usize; 4]) -> Tensor<4>) -> (Tensor<4>, Option<Tensor<4>>) {
        self.forward_masked(x, Some(mask), None)
    }

    fn forward_masked(&self, x: Tensor<4>, mut mask: Option<&mut dyn FnMut(usize, [usize; 4]) -> Tensor<4>>, mut trace: Option<&mut Vec<(String, Tensor<4>)>>) -> (Tensor<4>, Option<Tensor<4>>) {
        let mut keep = |name: String, t: &Tensor<4>| {
            if let Some(v) = trace.as_mut() {
                v.push((name, t.clone()));
            }
        };
        let depth = self.down.len();
        let mut skips: Vec<Tensor<4>> = Vec::with_capacity(depth);
        let base = self.residual.as_ref().map(|r| r.base(x.clone()));
        let linear = self.linear.as_ref().map(|l| l.forward(x.clone()));
        let mut h = x;
        let mut log_scale = None;
        for i in 0..depth {
            if i > 0 {
                h = super::cpu::act::leaky_relu(h, 0.2);
            }
            h = super::conv::down(&self.down[i], h);
            keep(format!("down.{i}"), &h);
            if let Some(n) = &self.down_norm[i] {
                h = n.forward(h);
                keep(format!("down_norm.{i}"), &h);
            }
            skips.push(h.clone());
        }
        for i in (0..depth).rev() {
            // Below the innermost, the ReLU came with the concatenation (`relu_cat`).
            if i == depth - 1 {
                h = super::cpu::act::relu(h);
            }
            if i == 0
                && let Some(head) = &self.scale_head
            {
                let s = super::conv::up(head, h.clone()).clamp(LOG_SCALE_RANGE.0, LOG_SCALE_RANGE.1);
                keep("scale_head".into(), &s);
                log_scale = Some(s);
            }
            h = match self.up.get(i) {
                Some(t) => super::conv::up(t, h),
                None => super::conv::same(&self.up_resize[i], nearest_2x(h)),
            };
            keep(format!("up.{i}"), &h);
            if i == 0 {
                break;
            }
            if let Some(n) = &self.up_norm[i] {
                h = n.forward(h);
                keep(format!("up_norm.{i}"), &h);
            }
            if let Some(d) = &self.dropout[i] {
                h = match mask.as_mut() {
                    Some(m) => {
                        let dims = h.dims();
                        let keep = m(i, dims);
                        h * keep
                    }
                    None => d.forward(h),
                };
            }
            // [batch, 2 * channels(i - 1), ...]: the encoder's output of level i - 1, then ours;
            // and the next level's ReLU.
            h = super::cpu::act::relu_cat(skips[i - 1].clone(), h);
            keep(format!("cat.{i}"), &h);
        }
        if let Some(l) = linear {
            h = h + l;
        }
        let out = match (base, self.activation) {
            (Some(base), _) => base + h,
            (None, Activation::Tanh) => super::cpu::act::tanh(h),
            (None, Activation::Sigmoid) => activation::sigmoid(h),
            (None, Activation::Identity) => h,
        };
        keep("out".into(), &out);
        (out, log_scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `upsample: resize-conv` at every depth: the output has the input's size, the decoder has
    /// 3x3 convolutions and no transposed one, and folding the batch norms into them (as
    /// inference does) gives the same output.
    #[test]
    fn a_resize_conv_generator_keeps_the_size_at_every_depth_and_folds_its_norms() {
        use crate::model::config::Upsample;
        let dev = Device::flex();
        dev.seed(7);
        for depth in 2..=6 {
            let cfg = ModelConfig { input_channels: 3, output_channels: 2, ngf: 4, ndf: 4, depth, dropout: 0.0, upsample: Upsample::ResizeConv, ..ModelConfig::default() };
            let g = Generator::new(&cfg, Activation::Tanh, &dev);
            assert!(g.up.is_empty() && g.up_resize.len() == depth && g.up_resize.iter().all(|c| c.weight.dims()[2..] == [3, 3]));
            let n = 1usize << depth.max(5);
            let x = Tensor::<4>::random([2, 3, n, n], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
            let y = g.forward(x.clone());
            assert_eq!(y.dims(), [2, 2, n, n], "depth {depth}");
            // Running statistics other than 0 and 1, so that folding has something to fold.
            let mut g = g;
            for norm in g.up_norm.iter_mut().flatten() {
                if let Some(bn) = &mut norm.batch {
                    let c = bn.gamma.dims()[0];
                    bn.running_mean = burn::module::RunningState::new(Tensor::full([c], 0.3, &dev));
                    bn.running_var = burn::module::RunningState::new(Tensor::full([c], 2.0, &dev));
                }
            }
            let a: Vec<f32> = g.clone().forward(x.clone()).try_into_vec_as::<f32>().unwrap();
            let b: Vec<f32> = g.fold_batch_norm().forward(x).try_into_vec_as::<f32>().unwrap();
            let diff = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "depth {depth}: folded differs by {diff}");
        }
    }

    /// With the change head at 0 (the last layer's weights and bias zeroed), a residual
    /// generator gives its pre-fire base exactly: S2 t0's channel of each output band, mapped.
    #[test]
    fn a_residual_generator_with_no_change_gives_the_pre_fire_base() {
        // With the linear map too: it starts at zero.
        let cfg = ModelConfig { input_channels: 4, output_channels: 2, ngf: 4, ndf: 4, depth: 3, dropout: 0.0, linear: true, ..ModelConfig::default() };
        let dev = Device::flex();
        dev.seed(7);
        let mut g = Generator::new(&cfg, Activation::Sigmoid, &dev).with_residual(Residual::new(&[(3, 2.0, 0.1), (1, 0.5, -0.2)]));
        assert_eq!(g.activation, Activation::Identity);
        let up = &mut g.up[0];
        up.weight = burn::module::Param::from_tensor(up.weight.val().zeros_like());
        up.bias = up.bias.as_ref().map(|b| burn::module::Param::from_tensor(b.val().zeros_like()));
        let x = Tensor::<4>::random([2, 4, 8, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let out: Vec<f32> = g.forward(x.clone()).try_into_vec_as::<f32>().unwrap();
        let xs: Vec<f32> = x.try_into_vec_as::<f32>().unwrap();
        for b in 0..2 {
            for p in 0..64 {
                let at = |c: usize| xs[(b * 4 + c) * 64 + p];
                assert_eq!(out[(b * 2) * 64 + p], 2.0 * at(3) + 0.1, "batch {b} pixel {p}");
                assert_eq!(out[(b * 2 + 1) * 64 + p], 0.5 * at(1) - 0.2, "batch {b} pixel {p}");
            }
        }
    }
}
