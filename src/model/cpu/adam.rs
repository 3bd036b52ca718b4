//! Adam for training: on Burn's CPU backend one parallel pass per parameter updates the two
//! moments and the weights in place, where Burn's Adam makes about 13 whole-tensor passes (each
//! a new tensor); on other devices it is Burn's Adam.
//!
//! The state is Burn's own `AdamState`, so a checkpoint's optimizer file is the same either way:
//! checkpoints of earlier versions resume, and the update is Burn's to float rounding (test below).

use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::prelude::*;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::simd::with_avx2;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Adam with pix2pix's settings (`beta_1`, `beta_2`, epsilon 1e-8), fused on the CPU.
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    /// Burn's Adam with the same settings, for tensors not on the CPU backend.
    burn: Adam,
}

impl FusedAdam {
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32) -> FusedAdam {
        FusedAdam { beta_1, beta_2, epsilon, burn: AdamConfig::new().with_beta_1(beta_1).with_beta_2(beta_2).with_epsilon(epsilon).build() }
    }

    /// The optimizer of a whole module.
    pub fn init(beta_1: f32, beta_2: f32, epsilon: f32) -> ModuleOptimizer {
        ModuleOptimizer::from(FusedAdam::new(beta_1, beta_2, epsilon))
    }
}

/// A contiguous, uniquely owned copy of `t` (no copy when it is one already).
fn owned(t: FlexTensor) -> FlexTensor {
    let n = t.layout().shape().num_elements();
    if t.is_contiguous() && t.layout().start_offset() == 0 && t.bytes().len() == n * 4 && t.is_unique() { t } else { t.to_contiguous() }
}

/// Values of `t` for reading (contiguous).
fn readable(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

/// Parameter tensors updated by the fused pass since the process started (tests check the
/// path is taken).
static FUSED_UPDATES: AtomicUsize = AtomicUsize::new(0);

/// How many parameter tensors the fused pass has updated in this process.
pub fn fused_updates() -> usize {
    FUSED_UPDATES.load(Ordering::Relaxed)
}

/// Rows of values each rayon task updates.
const CHUNK: usize = 1 << 15;

impl FusedAdam {
    /// The update on flex tensors, in place where they are not shared.
    fn fused(&self, lr: f32, p: FlexTensor, g: FlexTensor, m: Option<FlexTensor>, v: Option<FlexTensor>, time: usize) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = p.layout().shape().clone();
        let (mut p, g) = (owned(p), readable(g));
        let n = shape.num_elements();
        let fresh = || FlexTensor::zeros(shape.clone(), burn::tensor::DType::F32);
        let (mut m, mut v) = (m.map(owned).unwrap_or_else(fresh), v.map(owned).unwrap_or_else(fresh));
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        // Burn's Adam: m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps), written as it writes it.
        let t = time as i32;
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let factor = bc2_sqrt / (1.0 - b1.powi(t));
        let eps_scaled = eps * bc2_sqrt;
        let (a1, a2) = (1.0 - b1, 1.0 - b2);
        let gs = g.as_slice::<f32>().unwrap_or(&[]);
        let (ps, ms, vs) = (p.storage_mut::<f32>(), m.storage_mut::<f32>(), v.storage_mut::<f32>());
        // The shapes are checked by `step`: this holds for any input.
        assert!(gs.len() == n && ps.len() == n && ms.len() == n && vs.len() == n, "Adam: parameter, gradient and moments differ in size");
        let k = AdamConstants { lr, b1, b2, a1, a2, factor, eps_scaled };
        ps.par_chunks_mut(CHUNK).zip(ms.par_chunks_mut(CHUNK)).zip(vs.par_chunks_mut(CHUNK)).zip(gs.par_chunks(CHUNK)).for_each(|(((p, m), v), g)| adam_chunk(p, m, v, g, k));
        (p, m, v)
    }
}

/// The numbers of one Adam update, the same for every value of a step.
#[derive(Clone, Copy)]
struct AdamConstants {
    lr: f32,
    b1: f32,
    b2: f32,
    a1: f32,
    a2: f32,
    factor: f32,
    eps_scaled: f32,
}

with_avx2! {
    fn adam_chunk(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: AdamConstants) {
        for (((p, m), v), &gi) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            let mi = *m * k.b1 + gi * k.a1;
            let vi = *v * k.b2 + gi * gi * k.a2;
            *m = mi;
            *v = vi;
            *p -= k.lr * (mi * k.factor / (vi.sqrt() + k.eps_scaled));
        }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(&self, lr: LearningRate, tensor: Tensor<D>, grad: Tensor<D>, state: Option<AdamState<D>>) -> (Tensor<D>, Option<AdamState<D>>) {
        let f32s = tensor.dtype() == burn::tensor::DType::F32 && grad.dtype() == burn::tensor::DType::F32;
        // amsgrad's extra moment is not ours.
        if !f32s || state.as_ref().is_some_and(|s| s.momentum.max_moment_2.is_some()) {
            return self.burn.step(lr, tensor, grad, state);
        }
        let prim = |t: Tensor<D>| t.try_into_primitive::<Flex>().ok();
        let (mut time, mut m, mut v) = match state {
            Some(s) => (s.momentum.time + 1, Some(s.momentum.moment_1), Some(s.momentum.moment_2)),
            None => (1, None, None),
        };
        // Moments of another shape (an optimizer file that does not belong to these weights):
        // start them again rather than stop the run on a shape mismatch.
        let dims = tensor.dims();
        if m.as_ref().is_some_and(|m| m.dims() != dims) || v.as_ref().is_some_and(|v| v.dims() != dims) {
            tracing::warn!("Adam: the saved moments of a {dims:?} parameter have another shape; starting them again");
            (time, m, v) = (1, None, None);
        }
        // Burn's Adam, with the state as it came, where ours does not apply. The gradient goes
        // in flattened and back: on wgpu (Mesa's lavapipe, Burn 0.22) Burn's Adam reads the
        // gradient of a convolution with one output channel (the discriminator's last,
        // `[1, c, 4, 4]`, as conv backward lays it out) wrongly, and training then diverges; a
        // reshape gives it a plain layout (a copy only when it is not one already). Tested in
        // tests/it/wgpu.rs, which also reproduces the fault with Burn alone (`burns_adam_…`).
        let burns = |tensor, grad: Tensor<D>, m: Option<Tensor<D>>, v: Option<Tensor<D>>| {
            let dims = grad.dims();
            let grad = grad.reshape([-1]).reshape(dims);
            let state = m.zip(v).map(|(m, v)| AdamState::new(AdaptiveMomentumState::new(time - 1, m, v)));
            self.burn.step(lr, tensor, grad, state)
        };
        // The moments are taken by value, so their buffers stay unshared and are updated in
        // place; they live on the parameter's device (the optimizer moves them there), so they
        // convert when the parameter does.
        let on_flex = |t: &Tensor<D>| t.device() == tensor.device() && t.dtype() == burn::tensor::DType::F32;
        if !(m.as_ref().is_none_or(on_flex) && v.as_ref().is_none_or(on_flex)) {
            return burns(tensor, grad, m, v);
        }
        let (tensor_back, grad_back) = (tensor.clone(), grad.clone());
        let (Some(p), Some(g)) = (prim(tensor), prim(grad)) else {
            return burns(tensor_back, grad_back, m, v);
        };
        drop((tensor_back, grad_back));
        let (m_p, v_p) = (m.and_then(prim), v.and_then(prim));
        let (p, m, v) = self.fused(lr as f32, p, g, m_p, v_p, time);
        FUSED_UPDATES.fetch_add(1, Ordering::Relaxed);
        let wrap = |t: FlexTensor| Tensor::<D>::from_primitive::<Flex>(t);
        (wrap(p), Some(AdamState::new(AdaptiveMomentumState::new(time, wrap(m), wrap(v)))))
    }

    fn to_device<const D: usize>(state: AdamState<D>, device: &Device) -> AdamState<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::Distribution;

    fn weights(l: &Linear) -> Vec<f32> {
        l.weight.val().try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn fused_adam_follows_burns_adam_and_reads_its_state() {
        let dev = Device::flex().autodiff();
        dev.seed(7);
        let model = LinearConfig::new(37, 29).init(&dev);
        let x = Tensor::<2>::random([5, 37], Distribution::Normal(0.0, 1.0), &dev);
        let mut ours = (model.clone(), FusedAdam::init(0.5, 0.999, 1e-8));
        let before = fused_updates();
        let mut burns = (model, AdamConfig::new().with_beta_1(0.5).with_beta_2(0.999).with_epsilon(1e-8).init());
        for step in 0..20 {
            for (m, opt) in [&mut ours, &mut burns] {
                let loss = m.forward(x.clone()).powf_scalar(2.0).mean();
                let grads = GradientsParams::from_grads(loss.backward(), &*m);
                *m = opt.step(2e-3, m.clone(), grads);
            }
            let d = weights(&ours.0).iter().zip(weights(&burns.0)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(d < 1e-6, "step {step}: weights differ by {d}");
        }
        // Weight and bias, 20 steps: all through the fused pass.
        assert!(fused_updates() - before >= 40, "the fused pass was not taken");
        // The state is Burn's own: a record of ours loads into Burn's Adam and goes on alike.
        let record = ours.1.to_record();
        let mut reloaded = (ours.0.clone(), AdamConfig::new().with_beta_1(0.5).with_beta_2(0.999).with_epsilon(1e-8).init().load_record(record));
        for (m, opt) in [&mut ours, &mut reloaded] {
            let loss = m.forward(x.clone()).powf_scalar(2.0).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &*m);
            *m = opt.step(2e-3, m.clone(), grads);
        }
        let d = weights(&ours.0).iter().zip(weights(&reloaded.0)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d < 1e-6, "after a reload: {d}");
    }

    #[test]
    fn moments_of_another_shape_start_again_instead_of_stopping_the_run() {
        let dev = Device::flex();
        let p = Tensor::<2>::ones([3, 4], &dev);
        let g = Tensor::<2>::ones([3, 4], &dev);
        let wrong = AdamState::new(AdaptiveMomentumState::new(7, Tensor::<2>::ones([4, 3], &dev), Tensor::<2>::ones([4, 3], &dev)));
        let (after, state) = FusedAdam::new(0.5, 0.999, 1e-8).step(1e-3, p, g, Some(wrong));
        let state = state.unwrap();
        assert_eq!((state.momentum.time, state.momentum.moment_1.dims()), (1, [3, 4]));
        // A first step moves every weight by the learning rate.
        let w: Vec<f32> = after.try_into_vec_as().unwrap();
        assert!(w.iter().all(|x| (x - (1.0 - 1e-3)).abs() < 1e-6), "{w:?}");
    }
}
