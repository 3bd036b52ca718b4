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

/// The Laplace negative log-likelihood of `target` under location `prediction` and scale
/// e^`log_scale`, per value `|target - prediction| / b + log b` (the constant log 2 left out),
/// averaged over the valid pixels of every channel as [`masked_l1`] is.
pub fn laplace_nll(prediction: Tensor<4>, log_scale: Tensor<4>, target: Tensor<4>, valid: Tensor<4>) -> Tensor<1> {
    let channels = prediction.dims()[1] as f64;
    let count = valid.clone().sum().mul_scalar(channels).clamp_min(1.0);
    let per_value = (target - prediction).abs().mul(log_scale.clone().neg().exp()) + log_scale;
    per_value.mul(valid).sum().div(count)
}

/// Floor of the denominator of a normalized difference (NIR + SWIR reflectance), so that a
/// prediction near zero in both bands gives a large but finite index and gradient.
const ND_FLOOR: f64 = 1e-2;

/// The normalized difference `(a - b) / (a + b)` of two bands `[batch, 1, h, w]`.
fn normalized_difference(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    (a.clone() - b.clone()).div((a + b).clamp_min(ND_FLOOR))
}

/// Losses on what the analyst reads from the image, in reflectance, on the label's clear
/// pixels: L1 between the synthetic and the real NBR and NDVI, and the mean spectral angle
/// (radians) between synthetic and real pixels. Weights 0: off.
#[derive(Debug, Clone)]
pub struct Spectral {
    pub nbr_weight: f64,
    pub ndvi_weight: f64,
    pub sam_weight: f64,
    /// Output channels of NIR (B08 or B8A), SWIR (B12) and red (B04).
    pub nir: usize,
    pub swir: usize,
    pub red: usize,
    /// The batch's de-normalization, `[batch, outputs, 1, 1]`: reflectance = value x scale + offset.
    pub scale: Tensor<4>,
    pub offset: Tensor<4>,
}

impl Spectral {
    /// The weighted sum of the three terms for a prediction against its label.
    pub fn loss(&self, prediction: Tensor<4>, label: Tensor<4>, valid: Tensor<4>) -> Tensor<1> {
        let reflectance = |x: Tensor<4>| x.mul(self.scale.clone()) + self.offset.clone();
        let (p, l) = (reflectance(prediction), reflectance(label));
        let band = |x: &Tensor<4>, c: usize| x.clone().narrow(1, c, 1);
        let mut total = valid.clone().sum().mul_scalar(0.0);
        if self.nbr_weight != 0.0 {
            let (np, nl) = (normalized_difference(band(&p, self.nir), band(&p, self.swir)), normalized_difference(band(&l, self.nir), band(&l, self.swir)));
            total = total + masked_l1(np, nl, valid.clone()).mul_scalar(self.nbr_weight);
        }
        if self.ndvi_weight != 0.0 {
            let (np, nl) = (normalized_difference(band(&p, self.nir), band(&p, self.red)), normalized_difference(band(&l, self.nir), band(&l, self.red)));
            total = total + masked_l1(np, nl, valid.clone()).mul_scalar(self.ndvi_weight);
        }
        if self.sam_weight != 0.0 {
            total = total + spectral_angle(p, l, valid).mul_scalar(self.sam_weight);
        }
        total
    }
}

/// Mean spectral angle (radians) between the pixels of two images over valid pixels: acos of
/// the cosine of the band vectors, the cosine kept inside (-1, 1) so the gradient stays finite.
pub fn spectral_angle(prediction: Tensor<4>, target: Tensor<4>, valid: Tensor<4>) -> Tensor<1> {
    let dot = prediction.clone().mul(target.clone()).sum_dim(1);
    let norm = |x: Tensor<4>| x.clone().mul(x).sum_dim(1).add_scalar(1e-12).sqrt();
    let cos = dot.div(norm(prediction).mul(norm(target)).clamp_min(1e-12)).clamp(-1.0 + 1e-6, 1.0 - 1e-6);
    let count = valid.clone().sum().clamp_min(1.0);
    cos.acos().mul(valid).sum().div(count)
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
    /// Losses on NBR, NDVI and the spectral angle, when any weight is set.
    pub spectral: Option<Spectral>,
}

/// What a step computed: the losses (not yet read back from the device) and the generator's
/// output (detached).
pub struct StepLosses {
    pub g_adversarial: Tensor<1>,
    pub g_l1: Tensor<1>,
    /// The weighted spectral terms (NBR, NDVI, angle), when they are on.
    pub g_spectral: Option<Tensor<1>>,
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
    let GanStep { g, d, opt_g, opt_d, lr, gan_loss: kind, l1_weight, spectral } = s;
    let (fake, log_scale) = g.forward_with_scale(input.clone());
    let d_real = gan_loss(kind, d.forward(input.clone(), label.clone()), true);
    let d_fake = gan_loss(kind, d.forward(input.clone(), fake.clone().detach()), false);
    let d_loss = (d_real.clone() + d_fake.clone()).mul_scalar(0.5);
    let grads = GradientsParams::from_grads(d_loss.backward(), &d);
    let d = opt_d.step(lr, d, grads);
    let frozen = d.clone().no_grad();
    let g_adversarial = gan_loss(kind, frozen.forward(input, fake.clone()), true);
    let g_spectral = spectral.map(|sp| sp.loss(fake.clone(), label.clone(), valid.clone()));
    let g_l1 = masked_l1(fake.clone(), label.clone(), valid.clone());
    // With an uncertainty head, its likelihood takes the L1 term's place (L1 is still reported).
    let fit = match log_scale {
        Some(s) => laplace_nll(fake.clone(), s, label, valid),
        None => g_l1.clone(),
    };
    let mut g_loss = g_adversarial.clone() + fit.mul_scalar(l1_weight);
    if let Some(extra) = &g_spectral {
        g_loss = g_loss + extra.clone();
    }
    let grads = GradientsParams::from_grads(g_loss.backward(), &g);
    let g = opt_g.step(lr, g, grads);
    (g, d, StepLosses { g_adversarial, g_l1, g_spectral: g_spectral.map(Tensor::detach), d_real, d_fake, fake: fake.detach() })
}

/// The value of a one-element tensor (NaN when it cannot be read back).
pub fn scalar(t: Tensor<1>) -> f64 {
    t.try_into_vec_as::<f32>().ok().and_then(|v| v.first().copied()).map(f64::from).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(values: &[f32], shape: [usize; 4], dev: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), dev)
    }

    /// Three bands (red, NIR, SWIR) of two pixels, one of them masked; normalized with one map
    /// per channel. Each term against a hand computation in reflectance.
    #[test]
    fn the_spectral_terms_are_those_computed_by_hand() {
        let dev = Device::flex();
        // Reflectance of the prediction and the label, [band][pixel]: pixel 1 is masked.
        let (pred, real) = ([[0.05f32, 0.5], [0.30, 0.1], [0.10, 0.9]], [[0.04f32, 0.2], [0.35, 0.2], [0.08, 0.2]]);
        let (scale, offset) = ([0.5f32, 0.4, 0.3], [0.01f32, 0.02, 0.03]);
        let normalized = |r: &[[f32; 2]; 3]| -> Vec<f32> { (0..3).flat_map(|c| (0..2).map(move |p| (r[c][p] - offset[c]) / scale[c])).collect() };
        let spectral = |nbr: f64, ndvi: f64, sam: f64| Spectral {
            nbr_weight: nbr,
            ndvi_weight: ndvi,
            sam_weight: sam,
            nir: 1,
            swir: 2,
            red: 0,
            scale: tensor(&scale, [1, 3, 1, 1], &dev),
            offset: tensor(&offset, [1, 3, 1, 1], &dev),
        };
        let (p, l, valid) = (tensor(&normalized(&pred), [1, 3, 1, 2], &dev), tensor(&normalized(&real), [1, 3, 1, 2], &dev), tensor(&[1.0, 0.0], [1, 1, 1, 2], &dev));
        let value = |s: Spectral| scalar(s.loss(p.clone(), l.clone(), valid.clone()));
        let nd = |a: f32, b: f32| ((a - b) / (a + b)) as f64;
        let nbr = (nd(pred[1][0], pred[2][0]) - nd(real[1][0], real[2][0])).abs();
        let ndvi = (nd(pred[1][0], pred[0][0]) - nd(real[1][0], real[0][0])).abs();
        let dot: f32 = (0..3).map(|c| pred[c][0] * real[c][0]).sum();
        let norm = |r: &[[f32; 2]; 3]| (0..3).map(|c| r[c][0] * r[c][0]).sum::<f32>().sqrt();
        let angle = ((dot / (norm(&pred) * norm(&real))) as f64).acos();
        assert!((value(spectral(1.0, 0.0, 0.0)) - nbr).abs() < 1e-5, "NBR {} vs {nbr}", value(spectral(1.0, 0.0, 0.0)));
        assert!((value(spectral(0.0, 1.0, 0.0)) - ndvi).abs() < 1e-5, "NDVI {} vs {ndvi}", value(spectral(0.0, 1.0, 0.0)));
        assert!((value(spectral(0.0, 0.0, 1.0)) - angle).abs() < 1e-4, "angle {} vs {angle}", value(spectral(0.0, 0.0, 1.0)));
        let all = value(spectral(2.0, 3.0, 4.0));
        assert!((all - (2.0 * nbr + 3.0 * ndvi + 4.0 * angle)).abs() < 1e-4, "{all}");
        assert!(nbr > 0.05 && ndvi > 0.05 && angle > 0.05, "the example is not trivial: {nbr} {ndvi} {angle}");
    }

    /// The Laplace likelihood against a hand computation, and its gradient against central
    /// finite differences (in the prediction and in the log-scale).
    #[test]
    fn the_laplace_likelihood_and_its_gradient() {
        let dev = Device::flex();
        let (mu, s, y, v) = ([0.2f32, -0.1, 0.5, 0.3], [-1.0f32, 0.5, -2.0, 0.0], [0.25f32, 0.4, 0.1, 0.3], [1.0f32, 1.0, 0.0, 1.0]);
        let t = |x: &[f32], shape: [usize; 4], dev: &Device| Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), dev);
        let value = |mu: &[f32], s: &[f32]| scalar(laplace_nll(t(mu, [1, 1, 2, 2], &dev), t(s, [1, 1, 2, 2], &dev), t(&y, [1, 1, 2, 2], &dev), t(&v, [1, 1, 2, 2], &dev)));
        let by_hand: f64 = (0..4).filter(|i| v[*i] > 0.0).map(|i| ((y[i] - mu[i]).abs() as f64) / (s[i] as f64).exp() + s[i] as f64).sum::<f64>() / 3.0;
        assert!((value(&mu, &s) - by_hand).abs() < 1e-5, "{} vs {by_hand}", value(&mu, &s));
        let ad = Device::flex().autodiff();
        let (m, l) = (t(&mu, [1, 1, 2, 2], &ad).require_grad(), t(&s, [1, 1, 2, 2], &ad).require_grad());
        let grads = laplace_nll(m.clone(), l.clone(), t(&y, [1, 1, 2, 2], &ad), t(&v, [1, 1, 2, 2], &ad)).backward();
        let (gm, gl): (Vec<f32>, Vec<f32>) = (m.grad(&grads).unwrap().try_into_vec_as::<f32>().unwrap(), l.grad(&grads).unwrap().try_into_vec_as::<f32>().unwrap());
        let h = 1e-3f32;
        for i in 0..4 {
            let nudged = |x: &[f32], d: f32| -> Vec<f32> { let mut x = x.to_vec(); x[i] += d; x };
            let dm = (value(&nudged(&mu, h), &s) - value(&nudged(&mu, -h), &s)) / (2.0 * h as f64);
            let dl = (value(&mu, &nudged(&s, h)) - value(&mu, &nudged(&s, -h))) / (2.0 * h as f64);
            assert!((gm[i] as f64 - dm).abs() < 1e-3 && (gl[i] as f64 - dl).abs() < 1e-3, "value {i}: {} vs {dm}, {} vs {dl}", gm[i], gl[i]);
        }
        assert!(gl[0].abs() > 0.1 && gm[1].abs() > 0.1 && gm[2] == 0.0, "a masked value has no gradient: {gm:?} {gl:?}");
    }

    /// A prediction of zero in every band (the cosine's norm and the index's denominator at
    /// their floors) gives finite values and gradients, so a bad start cannot poison training.
    #[test]
    fn the_spectral_terms_have_finite_gradients_at_zero() {
        let dev = Device::flex().autodiff();
        dev.seed(7);
        let p = Tensor::<4>::zeros([1, 3, 2, 2], &dev).require_grad();
        let l = Tensor::<4>::random([1, 3, 2, 2], burn::tensor::Distribution::Uniform(0.0, 1.0), &dev);
        let s = Spectral { nbr_weight: 1.0, ndvi_weight: 1.0, sam_weight: 1.0, nir: 1, swir: 2, red: 0, scale: Tensor::ones([1, 3, 1, 1], &dev), offset: Tensor::zeros([1, 3, 1, 1], &dev) };
        let loss = s.loss(p.clone(), l, Tensor::ones([1, 1, 2, 2], &dev));
        assert!(scalar(loss.clone()).is_finite());
        let grads = loss.backward();
        let g: Vec<f32> = p.grad(&grads).unwrap().try_into_vec_as::<f32>().unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    }
}
