//! One step of pix2pix's GAN loop and its losses, on any device: the training stage and the
//! model benchmark both run it. Needs Burn only (no GDAL), like the networks themselves.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation;

use super::config::GanLoss;
use super::discriminator::Discriminator;
use super::generator::Generator;

/// The adversarial loss of logits against "real" (`true`) or "fake".
pub fn gan_loss(kind: GanLoss, logits: Tensor<4>, real: bool) -> Tensor<1> {
    let target = if real { 1.0 } else { 0.0 };
    match kind {
        // BCE with logits: softplus(x) - x y.
        GanLoss::Vanilla => (activation::softplus(logits.clone(), 1.0) - logits.mul_scalar(target)).mean(),
        GanLoss::LeastSquares => logits.sub_scalar(target).powf_scalar(2.0).mean(),
    }
}

/// Mean absolute difference over valid pixels (`valid` is `[batch, 1, h, w]` of 0/1).
pub fn masked_l1(prediction: Tensor<4>, target: Tensor<4>, valid: Tensor<4>) -> Tensor<1> {
    let channels = prediction.dims()[1] as f64;
    let count = valid.clone().sum().mul_scalar(channels).clamp_min(1.0);
    (prediction - target).abs().mul(valid).sum().div(count)
}

/// The networks, their optimizers and the settings of one GAN step.
pub struct GanStep<'a> {
    pub g: Generator,
    pub d: Discriminator,
    pub opt_g: &'a mut ModuleOptimizer,
    pub opt_d: &'a mut ModuleOptimizer,
    pub lr: f64,
    pub gan_loss: GanLoss,
    pub l1_weight: f64,
}

/// What a step computed: the losses (not yet read back from the device) and the generator's
/// output (detached).
pub struct StepLosses {
    pub g_adversarial: Tensor<1>,
    pub g_l1: Tensor<1>,
    pub d_real: Tensor<1>,
    pub d_fake: Tensor<1>,
    pub fake: Tensor<4>,
}

/// One step of pix2pix's loop: the discriminator learns real (condition, label) pairs against
/// (condition, detached fake) pairs; then the generator learns to fool the updated
/// discriminator, frozen (pix2pix's `set_requires_grad(netD, False)`: no gradients of its
/// weights are computed), plus `l1_weight` x L1 to the label on valid pixels. The training
/// stage and `s2cr bench` both run this.
pub fn gan_step(s: GanStep, input: Tensor<4>, label: Tensor<4>, valid: Tensor<4>) -> (Generator, Discriminator, StepLosses) {
    let GanStep { g, d, opt_g, opt_d, lr, gan_loss: kind, l1_weight } = s;
    let fake = g.forward(input.clone());
    let d_real = gan_loss(kind, d.forward(input.clone(), label.clone()), true);
    let d_fake = gan_loss(kind, d.forward(input.clone(), fake.clone().detach()), false);
    let d_loss = (d_real.clone() + d_fake.clone()).mul_scalar(0.5);
    let grads = GradientsParams::from_grads(d_loss.backward(), &d);
    let d = opt_d.step(lr, d, grads);
    let frozen = d.clone().no_grad();
    let g_adversarial = gan_loss(kind, frozen.forward(input, fake.clone()), true);
    let g_l1 = masked_l1(fake.clone(), label, valid);
    let g_loss = g_adversarial.clone() + g_l1.clone().mul_scalar(l1_weight);
    let grads = GradientsParams::from_grads(g_loss.backward(), &g);
    let g = opt_g.step(lr, g, grads);
    (g, d, StepLosses { g_adversarial, g_l1, d_real, d_fake, fake: fake.detach() })
}

/// The value of a one-element tensor (NaN when it cannot be read back).
pub fn scalar(t: Tensor<1>) -> f64 {
    t.try_into_vec_as::<f32>().ok().and_then(|v| v.first().copied()).map(f64::from).unwrap_or(f64::NAN)
}
