//! Batch normalization in training on the CPU (Burn flex): the batch statistics in one parallel
//! pass per channel, the normalization in another, and the gradient in two more, where Burn's
//! generic `batch_norm_train` runs about eight single-threaded whole-tensor operations forward
//! and twelve backward. The running statistics are updated as Burn's `BatchNorm` does, so the
//! module, its records and inference are Burn's. Other devices, inference and non-f32 tensors
//! keep Burn's path (see [`batch_norm`]).

use burn::nn::BatchNorm;
use burn::prelude::*;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::{Ad, enabled, flex, is_f32, values};
use super::simd::with_avx2;

/// Lanes of the partial sums below: independent accumulators the compiler keeps in one vector
/// register (a single running sum would serialize every addition).
const LANES: usize = 8;

/// Sum of `f(i)` over `0..n`, in `LANES` f32 partial sums per block of 4096 values, blocks added
/// in f64: vectorized, and as accurate as f64 summation for these sizes.
#[inline(always)]
fn lane_sum(n: usize, f: impl Fn(usize) -> f32) -> f64 {
    let mut total = 0.0f64;
    let mut start = 0;
    while start < n {
        let end = (start + 4096).min(n);
        let mut acc = [0.0f32; LANES];
        let mut i = start;
        while i + LANES <= end {
            for (l, a) in acc.iter_mut().enumerate() {
                *a += f(i + l);
            }
            i += LANES;
        }
        let mut block: f32 = acc.iter().sum();
        while i < end {
            block += f(i);
            i += 1;
        }
        total += block as f64;
        start = end;
    }
    total
}

/// The batch's mean and biased variance per channel of `x` (`[batch, channels, pixels]`), in
/// two passes per channel: the mean, then the squares about it, as Burn.
fn statistics(x: &[f32], batch: usize, channels: usize, pixels: usize) -> (Vec<f32>, Vec<f32>) {
    let count = (batch * pixels) as f64;
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let plane = |b: usize| &x[(b * channels + c) * pixels..(b * channels + c + 1) * pixels];
            let mean = ((0..batch).map(|b| lane_sum(pixels, |i| plane(b)[i])).sum::<f64>() / count) as f32;
            let var = (0..batch)
                .map(|b| {
                    let p = plane(b);
                    lane_sum(pixels, |i| (p[i] - mean) * (p[i] - mean))
                })
                .sum::<f64>()
                / count;
            (mean, var as f32)
        })
        .unzip()
}

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta`, one plane a task (as a multiply-add with
/// the per-channel scale and shift).
fn normalize(x: &[f32], channels: usize, pixels: usize, stats: (&[f32], &[f32]), gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let (mean, var) = stats;
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(pixels).zip(x.par_chunks(pixels)).enumerate().for_each(|(i, (y, x))| {
        let c = i % channels;
        let scale = gamma[c] / (var[c] + eps).sqrt();
        affine(y, x, scale, beta[c] - mean[c] * scale);
    });
    y
}

with_avx2! {
    /// `y = x * scale + shift`.
    fn affine(y: &mut [f32], x: &[f32], scale: f32, shift: f32) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v * scale + shift;
        }
    }
}

with_avx2! {
    /// `dx = scale * dy + a * (x - center) + b`. Centring first keeps the precision of the
    /// textbook form where the variance is small against the mean (`a * x` and the shift would
    /// otherwise nearly cancel).
    fn affine2(dx: &mut [f32], x: &[f32], dy: &[f32], scale: f32, a: f32, center: f32, b: f32) {
        for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            *o = scale * g + a * (v - center) + b;
        }
    }
}

/// Gradients of the input, gamma and beta for the output gradient `dy`.
#[allow(clippy::too_many_arguments)]
fn gradients(x: &[f32], dy: &[f32], batch: usize, channels: usize, pixels: usize, stats: (&[f32], &[f32]), gamma: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = stats;
    let count = (batch * pixels) as f32;
    // Per channel: sum of dy and of dy * normalized x.
    let (d_beta, d_gamma): (Vec<f32>, Vec<f32>) = (0..channels)
        .into_par_iter()
        .map(|c| {
            let inv_std = 1.0 / (var[c] + eps).sqrt();
            let (mut s, mut sn) = (0.0f64, 0.0f64);
            for b in 0..batch {
                let range = (b * channels + c) * pixels..(b * channels + c + 1) * pixels;
                let (g, v) = (&dy[range.clone()], &x[range]);
                s += lane_sum(pixels, |i| g[i]);
                sn += lane_sum(pixels, |i| g[i] * (v[i] - mean[c])) * inv_std as f64;
            }
            (s as f32, sn as f32)
        })
        .unzip();
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(pixels).zip(x.par_chunks(pixels)).zip(dy.par_chunks(pixels)).enumerate().for_each(|(i, ((dx, x), dy))| {
        let c = i % channels;
        let inv_std = 1.0 / (var[c] + eps).sqrt();
        let (mean_dy, mean_dyn) = (d_beta[c] / count, d_gamma[c] / count);
        // dx = scale (dy - mean_dy - (x - mean) inv_std mean_dyn).
        let scale = gamma[c] * inv_std;
        affine2(dx, x, dy, scale, -scale * inv_std * mean_dyn, mean[c], -scale * mean_dy);
    });
    (dx, d_gamma, d_beta)
}

#[derive(Debug, Clone)]
struct State {
    x: FlexTensor,
    gamma: FlexTensor,
    mean: Vec<f32>,
    var: Vec<f32>,
    eps: f32,
}

#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [nx, ng, nb] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let s = &ops.state;
        let shape = s.x.layout().shape().to_vec();
        let (batch, channels) = (shape[0], shape[1]);
        let pixels = shape[2..].iter().product();
        let (dx, dg, db) = gradients(&values(&s.x), &values(&dy), batch, channels, pixels, (&s.mean, &s.var), &values(&s.gamma), s.eps);
        if let Some(n) = nx {
            grads.register::<Flex>(n.id, flex(dx, shape));
        }
        if let Some(n) = ng {
            grads.register::<Flex>(n.id, flex(dg, vec![channels]));
        }
        if let Some(n) = nb {
            grads.register::<Flex>(n.id, flex(db, vec![channels]));
        }
    }
}

/// The normalized output and the batch statistics (detached), on tracked CPU tensors.
fn train_flex(x: &Tensor<4>, gamma: &Tensor<1>, beta: &Tensor<1>, eps: f64) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)> {
    let xa = x.clone().try_into_primitive::<Ad>().ok()?;
    let ga = gamma.clone().try_into_primitive::<Ad>().ok()?;
    let ba = beta.clone().try_into_primitive::<Ad>().ok()?;
    if !is_f32(xa.primitive()) || !is_f32(ga.primitive()) || !is_f32(ba.primitive()) {
        return None;
    }
    let shape = xa.primitive().layout().shape().to_vec();
    let (batch, channels) = (shape[0], shape[1]);
    let pixels: usize = shape[2..].iter().product();
    let per_channel = |t: &FlexTensor| t.layout().shape().num_elements() == channels;
    // Anything else is Burn's to report (its `BatchNorm` names the shapes).
    if batch * pixels == 0 || !per_channel(ga.primitive()) || !per_channel(ba.primitive()) {
        return None;
    }
    let xv = values(xa.primitive());
    let (mean, var) = statistics(&xv, batch, channels, pixels);
    let y = normalize(&xv, channels, pixels, (&mean, &var), &values(ga.primitive()), &values(ba.primitive()), eps as f32);
    drop(xv);
    let y = flex(y, shape);
    let state = || State { x: xa.primitive().clone(), gamma: ga.primitive().clone(), mean: mean.clone(), var: var.clone(), eps: eps as f32 };
    let out = match NormBackward.prepare::<NoCheckpointing>([xa.node(), ga.node(), ba.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state(), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let detached = |v: Vec<f32>| Tensor::<1>::from_inner(Tensor::<1>::from_primitive::<Flex>(flex(v, vec![channels])));
    Some((Tensor::from_primitive::<Ad>(out), detached(mean), detached(var)))
}

/// Inference (running statistics) on plain CPU tensors: one pass, `x * scale + shift` per
/// channel, where Burn's runs five operations.
fn inference_flex(bn: &BatchNorm, x: &Tensor<4>) -> Option<Tensor<4>> {
    let xp = x.clone().try_into_primitive::<Flex>().ok()?;
    let prim = |t: Tensor<1>| t.try_into_primitive::<Flex>().ok();
    let (gamma, beta, mean, var) = (prim(bn.gamma.val())?, prim(bn.beta.val())?, prim(bn.running_mean.value())?, prim(bn.running_var.value())?);
    if ![&xp, &gamma, &beta, &mean, &var].iter().all(|t| is_f32(t)) {
        return None;
    }
    let shape = xp.layout().shape().to_vec();
    let channels = shape[1];
    let pixels: usize = shape[2..].iter().product();
    let (g, b, m, v) = (values(&gamma), values(&beta), values(&mean), values(&var));
    if g.len() != channels || b.len() != channels || m.len() != channels || v.len() != channels || pixels == 0 {
        return None;
    }
    let y = normalize(&values(&xp), channels, pixels, (&m, &v), &g, &b, bn.epsilon as f32);
    Some(Tensor::from_primitive::<Flex>(flex(y, shape)))
}

/// Burn's `BatchNorm::forward`, with the training path (batch statistics, running statistics
/// updated with the module's momentum) on the fused CPU kernels where they apply.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let training = x.device().is_autodiff() && bn.training.is_enabled();
    if !enabled() {
        return bn.forward(x);
    }
    if !training {
        return (!x.device().is_autodiff()).then(|| inference_flex(bn, &x)).flatten().unwrap_or_else(|| bn.forward(x));
    }
    let Some((y, mean, var)) = train_flex(&x, &bn.gamma.val(), &bn.beta.val(), bn.epsilon) else {
        return bn.forward(x);
    };
    let device = x.device();
    let running_mean = bn.running_mean.value_sync().to_device(&device).mul_scalar(1.0 - bn.momentum).add(mean.mul_scalar(bn.momentum));
    let running_var = bn.running_var.value_sync().to_device(&device).mul_scalar(1.0 - bn.momentum).add(var.mul_scalar(bn.momentum));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::BatchNormConfig;
    use burn::tensor::Distribution;

    fn vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.try_into_vec_as().unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn batch_norm_in_training_equals_burns_with_its_gradients_and_running_statistics() {
        let dev = Device::flex().autodiff();
        dev.seed(7);
        for (batch, channels, h, w) in [(1, 3, 8, 8), (3, 5, 7, 9), (2, 4, 1, 1), (1, 16, 33, 31)] {
            // Two identical modules with non-trivial affine parameters.
            let bn = BatchNormConfig::new(channels).init(&dev);
            let gamma = Tensor::<1>::random([channels], Distribution::Normal(1.0, 0.3), &dev);
            let beta = Tensor::<1>::random([channels], Distribution::Normal(0.0, 0.3), &dev);
            let bn = BatchNorm { gamma: burn::module::Param::from_tensor(gamma), beta: burn::module::Param::from_tensor(beta), ..bn };
            let reference = bn.clone();
            // Separate running statistics for the reference: a fresh module with the same
            // parameters (a clone shares them).
            let reference = BatchNorm { running_mean: burn::module::RunningState::new(Tensor::zeros([channels], &dev)), running_var: burn::module::RunningState::new(Tensor::ones([channels], &dev)), ..reference };
            let x = Tensor::<4>::random([batch, channels, h, w], Distribution::Normal(2.0, 3.0), &dev).require_grad();
            let weight = Tensor::<4>::random([batch, channels, h, w], Distribution::Normal(0.0, 1.0), &dev);
            assert!(train_flex(&x, &bn.gamma.val(), &bn.beta.val(), bn.epsilon).is_some(), "the fused path applies");
            let ours = batch_norm(&bn, x.clone());
            let burns = reference.forward(x.clone());
            let what = format!("{batch}x{channels}x{h}x{w}");
            assert!(max_diff(&vec(ours.clone()), &vec(burns.clone())) < 1e-4, "output, {what}");
            assert!(max_diff(&vec(bn.running_mean.value()), &vec(reference.running_mean.value())) < 1e-5, "running mean, {what}");
            assert!(max_diff(&vec(bn.running_var.value()), &vec(reference.running_var.value())) < 1e-4, "running variance, {what}");
            let (ga, gb) = ((ours * weight.clone()).sum().backward(), (burns * weight).sum().backward());
            let d = max_diff(&vec(x.grad(&ga).unwrap()), &vec(x.grad(&gb).unwrap()));
            assert!(d < 1e-4, "input gradient, {what}: {d}");
            let d = max_diff(&vec(bn.gamma.grad(&ga).unwrap()), &vec(reference.gamma.grad(&gb).unwrap()));
            assert!(d < 1e-3, "gamma gradient, {what}: {d}");
            let d = max_diff(&vec(bn.beta.grad(&ga).unwrap()), &vec(reference.beta.grad(&gb).unwrap()));
            assert!(d < 1e-3, "beta gradient, {what}: {d}");
            // Inference with the running statistics, on the plain CPU backend.
            let (plain_bn, plain_ref) = (bn.valid(), reference.valid());
            let xi = x.clone().inner();
            assert!(inference_flex(&plain_bn, &xi).is_some(), "the fused inference path applies");
            let d = max_diff(&vec(batch_norm(&plain_bn, xi.clone())), &vec(plain_ref.forward(xi)));
            assert!(d < 1e-4, "inference, {what}: {d}");
        }
    }
}
