//! ReLU, LeakyReLU and tanh on the CPU (Burn flex) as single passes: Burn writes the first two as
//! a comparison, a multiplication and a masked select, forward and again backward, and tanh's
//! gradient as three operations, each a pass over the tensor on one core; here the forward is
//! one parallel pass and the gradient another. Other devices keep Burn's (see [`leaky_relu`]).

use burn::prelude::*;
use burn::tensor::activation;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::{Ad, enabled, flex, is_f32, values};
use super::simd::with_avx2;

/// Values each rayon task handles.
const CHUNK: usize = 1 << 14;

with_avx2! {
    fn leaky_chunk(y: &mut [f32], x: &[f32], slope: f32) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = if v > 0.0 { v } else { v * slope };
        }
    }
}

with_avx2! {
    fn leaky_grad_chunk(dx: &mut [f32], x: &[f32], dy: &[f32], slope: f32) {
        for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            *o = if v > 0.0 { g } else { g * slope };
        }
    }
}

fn forward(x: &[f32], slope: f32) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| leaky_chunk(y, x, slope));
    y
}

fn backward(x: &[f32], dy: &[f32], slope: f32) -> Vec<f32> {
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).zip(dy.par_chunks(CHUNK)).for_each(|((dx, x), dy)| leaky_grad_chunk(dx, x, dy, slope));
    dx
}

fn tanh_forward(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v.tanh();
        }
    });
    y
}

with_avx2! {
    fn tanh_grad_chunk(dx: &mut [f32], y: &[f32], dy: &[f32]) {
        for ((o, &v), &g) in dx.iter_mut().zip(y).zip(dy) {
            *o = g * (1.0 - v * v);
        }
    }
}

/// tanh's gradient from its output: dy (1 - y²).
fn tanh_backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0f32; y.len()];
    dx.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK)).zip(dy.par_chunks(CHUNK)).for_each(|((dx, y), dy)| tanh_grad_chunk(dx, y, dy));
    dx
}

/// Which activation, and what its gradient needs: the input (ReLUs) or the output (tanh).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Leaky(f32),
    Tanh,
}

#[derive(Debug)]
struct ActBackward;

impl Backward<Flex, 1> for ActBackward {
    type State = (FlexTensor, Kind);

    fn backward(self, ops: Ops<(FlexTensor, Kind), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            let (saved, kind) = &ops.state;
            let dx = match kind {
                Kind::Leaky(slope) => backward(&values(saved), &values(&dy), *slope),
                Kind::Tanh => tanh_backward(&values(saved), &values(&dy)),
            };
            grads.register::<Flex>(node.id, flex(dx, saved.layout().shape().to_vec()));
        }
    }
}

fn run(x: &[f32], kind: Kind) -> Vec<f32> {
    match kind {
        Kind::Leaky(slope) => forward(x, slope),
        Kind::Tanh => tanh_forward(x),
    }
}

fn apply(x: &Tensor<4>, kind: Kind) -> Option<Tensor<4>> {
    if !enabled() {
        return None;
    }
    if x.device().is_autodiff() {
        let xa = x.clone().try_into_primitive::<Ad>().ok()?;
        if !is_f32(xa.primitive()) {
            return None;
        }
        let y = flex(run(&values(xa.primitive()), kind), xa.primitive().layout().shape().to_vec());
        let saved = match kind {
            Kind::Leaky(_) => xa.primitive().clone(),
            Kind::Tanh => y.clone(),
        };
        let out = match ActBackward.prepare::<NoCheckpointing>([xa.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((saved, kind), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        Some(Tensor::from_primitive::<Ad>(out))
    } else {
        let xp = x.clone().try_into_primitive::<Flex>().ok()?;
        if !is_f32(&xp) {
            return None;
        }
        let y = flex(run(&values(&xp), kind), xp.layout().shape().to_vec());
        Some(Tensor::from_primitive::<Flex>(y))
    }
}

/// LeakyReLU with `slope` below zero; one pass each way on the CPU, Burn's elsewhere.
pub fn leaky_relu(x: Tensor<4>, slope: f64) -> Tensor<4> {
    apply(&x, Kind::Leaky(slope as f32)).unwrap_or_else(|| activation::leaky_relu(x, slope))
}

/// ReLU; one pass each way on the CPU, Burn's elsewhere.
pub fn relu(x: Tensor<4>) -> Tensor<4> {
    apply(&x, Kind::Leaky(0.0)).unwrap_or_else(|| activation::relu(x))
}

/// ReLU of the concatenation of `a` and `b` on channels: the decoder's skip connection and the
/// next level's activation. Without autodiff on the CPU, one parallel pass writes the result
/// (instead of a copy and then a pass over the copy); elsewhere Burn's cat, then [`relu`].
pub fn relu_cat(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    relu_cat_flex(&a, &b).unwrap_or_else(|| relu(Tensor::cat(vec![a, b], 1)))
}

fn relu_cat_flex(a: &Tensor<4>, b: &Tensor<4>) -> Option<Tensor<4>> {
    if !enabled() || a.device().is_autodiff() {
        return None;
    }
    let (ap, bp) = (a.clone().try_into_primitive::<Flex>().ok()?, b.clone().try_into_primitive::<Flex>().ok()?);
    let (sa, sb) = (ap.layout().shape().to_vec(), bp.layout().shape().to_vec());
    if !is_f32(&ap) || !is_f32(&bp) || sa.len() != 4 || sb.len() != 4 || sa[0] != sb[0] || sa[2..] != sb[2..] {
        return None;
    }
    let (av, bv) = (values(&ap), values(&bp));
    let (n, ca, cb, plane) = (sa[0], sa[1], sb[1], sa[2] * sa[3]);
    let mut y = vec![0.0f32; n * (ca + cb) * plane];
    // Each channel plane of the result is one task's: ReLU of the plane it comes from.
    y.par_chunks_mut(plane.max(1)).enumerate().for_each(|(i, out)| {
        let (k, c) = (i / (ca + cb), i % (ca + cb));
        let src = if c < ca { &av[(k * ca + c) * plane..][..plane] } else { &bv[(k * cb + c - ca) * plane..][..plane] };
        leaky_chunk(out, src, 0.0);
    });
    Some(Tensor::from_primitive::<Flex>(flex(y, vec![n, ca + cb, sa[2], sa[3]])))
}

/// tanh; one pass each way on the CPU, Burn's elsewhere.
pub fn tanh(x: Tensor<4>) -> Tensor<4> {
    apply(&x, Kind::Tanh).unwrap_or_else(|| activation::tanh(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn activations_and_their_gradients_equal_burns() {
        let dev = Device::flex().autodiff();
        dev.seed(7);
        for slope in [0.0, 0.2] {
            let x = Tensor::<4>::random([2, 3, 33, 17], Distribution::Normal(0.0, 1.0), &dev).require_grad();
            let w = Tensor::<4>::random([2, 3, 33, 17], Distribution::Normal(0.0, 1.0), &dev);
            let ours = if slope == 0.0 { relu(x.clone()) } else { leaky_relu(x.clone(), slope) };
            let burns = if slope == 0.0 { activation::relu(x.clone()) } else { activation::leaky_relu(x.clone(), slope) };
            let (a, b): (Vec<f32>, Vec<f32>) = (ours.clone().try_into_vec_as().unwrap(), burns.clone().try_into_vec_as().unwrap());
            assert_eq!(a, b, "forward, slope {slope}");
            let (ga, gb) = ((ours * w.clone()).sum().backward(), (burns * w).sum().backward());
            let (a, b): (Vec<f32>, Vec<f32>) = (x.grad(&ga).unwrap().try_into_vec_as().unwrap(), x.grad(&gb).unwrap().try_into_vec_as().unwrap());
            let d = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(d < 1e-6, "gradient, slope {slope}: {d}");
        }
        // tanh, whose gradient reads its output.
        let x = Tensor::<4>::random([2, 3, 33, 17], Distribution::Normal(0.0, 2.0), &dev).require_grad();
        let w = Tensor::<4>::random([2, 3, 33, 17], Distribution::Normal(0.0, 1.0), &dev);
        let (ours, burns) = (tanh(x.clone()), activation::tanh(x.clone()));
        let (a, b): (Vec<f32>, Vec<f32>) = (ours.clone().try_into_vec_as().unwrap(), burns.clone().try_into_vec_as().unwrap());
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-6), "tanh forward");
        let (ga, gb) = ((ours * w.clone()).sum().backward(), (burns * w).sum().backward());
        let (a, b): (Vec<f32>, Vec<f32>) = (x.grad(&ga).unwrap().try_into_vec_as().unwrap(), x.grad(&gb).unwrap().try_into_vec_as().unwrap());
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5), "tanh gradient");
        // ReLU of a concatenation, fused without autodiff: the same as Burn's cat and ReLU.
        for dev in [Device::flex(), Device::flex().autodiff()] {
            let a = Tensor::<4>::random([2, 3, 7, 5], Distribution::Normal(0.0, 1.0), &dev);
            let b = Tensor::<4>::random([2, 4, 7, 5], Distribution::Normal(0.0, 1.0), &dev);
            let (x, y): (Vec<f32>, Vec<f32>) = (relu_cat(a.clone(), b.clone()).try_into_vec_as().unwrap(), activation::relu(Tensor::cat(vec![a, b], 1)).try_into_vec_as().unwrap());
            assert_eq!(x, y, "relu_cat, autodiff {}", dev.is_autodiff());
        }
        // Without autodiff too.
        let x = Tensor::<4>::random([1, 2, 5, 5], Distribution::Normal(0.0, 1.0), &Device::flex());
        let (a, b): (Vec<f32>, Vec<f32>) = (leaky_relu(x.clone(), 0.2).try_into_vec_as().unwrap(), activation::leaky_relu(x, 0.2).try_into_vec_as().unwrap());
        assert_eq!(a, b);
    }
}
