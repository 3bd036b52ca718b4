//! The pix2pix PatchGAN discriminator (`NLayerDiscriminator`, n_layers = 3 gives the 70 x 70
//! receptive field): it sees the condition and an image, concatenated on channels, and scores
//! each overlapping patch real or fake (logits, `[batch, 1, h/8 - 2, w/8 - 2]` for 3 layers).
//!
//! Conv 4x4/2 + LeakyReLU(0.2); (n - 1) x [Conv 4x4/2, norm, LeakyReLU]; Conv 4x4/1, norm,
//! LeakyReLU; Conv 4x4/1 to one channel. Filters double per layer up to 8 ndf.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;

use super::config::ModelConfig;
use super::generator::{Norm, down_conv, init_weights};

#[derive(Module, Debug)]
pub struct Discriminator {
    convs: Vec<Conv2d>,
    norms: Vec<Option<Norm>>,
}

fn conv_s1(c_in: usize, c_out: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [4, 4]).with_stride([1, 1]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).with_bias(bias).with_initializer(init_weights()).init(device)
}

impl Discriminator {
    pub fn new(cfg: &ModelConfig, device: &Device) -> Discriminator {
        let bias = cfg.norm.is_instance();
        let ch = |n: usize| cfg.ndf * (1usize << n.min(3));
        let layers = cfg.discriminator_layers;
        let mut convs = vec![down_conv(cfg.input_channels + cfg.output_channels, cfg.ndf, true, device)];
        let mut norms = vec![None];
        for n in 1..layers {
            convs.push(down_conv(ch(n - 1), ch(n), bias, device));
            norms.push(Some(Norm::new(cfg.norm, ch(n), device)));
        }
        convs.push(conv_s1(ch(layers - 1), ch(layers), bias, device));
        norms.push(Some(Norm::new(cfg.norm, ch(layers), device)));
        convs.push(conv_s1(ch(layers), 1, true, device));
        norms.push(None);
        Discriminator { convs, norms }
    }

    /// `condition` `[batch, inputs, h, w]` and `image` `[batch, outputs, h, w]` -> logits.
    pub fn forward(&self, condition: Tensor<4>, image: Tensor<4>) -> Tensor<4> {
        self.forward_traced(condition, image, None)
    }

    /// [`Discriminator::forward`], keeping every layer's output (`conv.0`, `norm.1`,
    /// `act.1`, ...): for comparing devices layer by layer.
    pub fn forward_traced(&self, condition: Tensor<4>, image: Tensor<4>, mut trace: Option<&mut Vec<(String, Tensor<4>)>>) -> Tensor<4> {
        let mut keep = |name: String, t: &Tensor<4>| {
            if let Some(v) = trace.as_mut() {
                v.push((name, t.clone()));
            }
        };
        let mut h = Tensor::cat(vec![condition, image], 1);
        let last = self.convs.len() - 1;
        for (i, conv) in self.convs.iter().enumerate() {
            // All but the last two are stride-2 down-sampling convolutions.
            h = if i + 1 < last { super::conv::down(conv, h) } else { super::conv::same(conv, h) };
            keep(format!("conv.{i}"), &h);
            if let Some(n) = &self.norms[i] {
                h = n.forward(h);
                keep(format!("norm.{i}"), &h);
            }
            if i < last {
                h = super::cpu::act::leaky_relu(h, 0.2);
                keep(format!("act.{i}"), &h);
            }
        }
        h
    }
}
