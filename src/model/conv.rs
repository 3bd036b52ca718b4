//! The networks' convolutions on the fastest kernels for their device: on Burn's CPU backend the
//! hand-written forward and gradients of [`super::cpu`] (training and inference), on a GPU
//! Burn's own kernels. The layers are pix2pix's: 4x4 kernels with padding 1, stride 2 down, its
//! transpose up, and the discriminator's last two of stride 1.

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::prelude::*;

use super::cpu::{self, Layer};

/// Turns the hand-written CPU kernels on or off for the calling thread (benchmarks and tests
/// compare them with Burn's).
pub fn set_hand_written(enabled: bool) {
    cpu::set_enabled(enabled);
}

fn conv(layer: Layer, conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    // Only the geometry the kernels are written for: 4x4, padding 1 (checked by `shapes`),
    // no dilation or groups.
    let ours = conv.dilation == [1, 1] && conv.groups == 1 && conv.stride == [layer_stride(layer); 2] && padding_is_one(conv);
    match ours.then(|| cpu::apply(layer, &x, &weight, bias.as_ref())).flatten() {
        Some(y) => y,
        None => conv.forward(x),
    }
}

fn layer_stride(layer: Layer) -> usize {
    match layer {
        Layer::Conv { stride } => stride,
        Layer::Transposed => 2,
    }
}

fn padding_is_one(conv: &Conv2d) -> bool {
    matches!(conv.padding, burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
}

/// A pix2pix down-sampling convolution (4x4, stride 2, padding 1).
pub fn down(c: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    conv(Layer::Conv { stride: 2 }, c, x)
}

/// The discriminator's 4x4 stride-1 convolution (padding 1: one pixel smaller).
pub fn same(c: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    conv(Layer::Conv { stride: 1 }, c, x)
}

/// A pix2pix up-sampling transposed convolution (4x4, stride 2, padding 1: twice the size).
pub fn up(c: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let ours = c.stride == [2, 2] && c.padding == [1, 1] && c.padding_out == [0, 0] && c.dilation == [1, 1] && c.groups == 1;
    let weight = c.weight.val();
    let bias = c.bias.as_ref().map(|b| b.val());
    match ours.then(|| cpu::apply(Layer::Transposed, &x, &weight, bias.as_ref())).flatten() {
        Some(y) => y,
        None => c.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::ModelConfig;
    use crate::model::discriminator::Discriminator;
    use crate::model::generator::{Activation, Generator};
    use burn::tensor::Distribution;

    #[test]
    fn the_networks_give_the_same_outputs_with_either_kernels() {
        let dev = Device::flex();
        dev.seed(7);
        let cfg = ModelConfig { input_channels: 5, output_channels: 3, ngf: 4, ndf: 4, depth: 5, ..Default::default() };
        let g = Generator::new(&cfg, Activation::Tanh, &dev);
        let d = Discriminator::new(&cfg, &dev);
        let x = Tensor::<4>::random([2, 5, 64, 64], Distribution::Normal(0.0, 1.0), &dev);
        let run = |hand: bool| {
            set_hand_written(hand);
            let y = g.forward(x.clone());
            let score = d.forward(x.clone(), y.clone());
            set_hand_written(true);
            (y.try_into_vec_as::<f32>().unwrap(), score.try_into_vec_as::<f32>().unwrap())
        };
        let (a, b) = (run(true), run(false));
        let diff = |p: &[f32], q: &[f32]| p.iter().zip(q).map(|(u, v)| (u - v).abs()).fold(0.0f32, f32::max);
        assert!(diff(&a.0, &b.0) < 1e-4 && diff(&a.1, &b.1) < 1e-4, "generator {}, discriminator {}", diff(&a.0, &b.0), diff(&a.1, &b.1));
    }
}
