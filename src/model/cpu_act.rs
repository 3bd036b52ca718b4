//! ReLU and LeakyReLU on the CPU (Burn flex) as single passes: Burn writes them as a comparison,
//! a multiplication and a masked select, forward and again backward, each a pass over the tensor
//! on one core; here the forward is one parallel pass and the gradient another. Other devices
//! keep Burn's (see [`leaky_relu`]).

use burn::prelude::*;
use burn::tensor::activation;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::cpu_conv::{Ad, enabled, flex, is_f32, values};

/// Values each rayon task handles.
const CHUNK: usize = 1 << 14;

fn forward(x: &[f32], slope: f32) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = if v > 0.0 { v } else { v * slope };
        }
    });
    y
}

fn backward(x: &[f32], dy: &[f32], slope: f32) -> Vec<f32> {
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).zip(dy.par_chunks(CHUNK)).for_each(|((dx, x), dy)| {
        for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            *o = if v > 0.0 { g } else { g * slope };
        }
    });
    dx
}

#[derive(Debug)]
struct LeakyBackward;

impl Backward<Flex, 1> for LeakyBackward {
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<(FlexTensor, f32), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            let (x, slope) = &ops.state;
            let dx = backward(&values(x), &values(&dy), *slope);
            grads.register::<Flex>(node.id, flex(dx, x.layout().shape().to_vec()));
        }
    }
}

fn apply(x: &Tensor<4>, slope: f32) -> Option<Tensor<4>> {
    if !enabled() {
        return None;
    }
    if x.device().is_autodiff() {
        let xa = x.clone().try_into_primitive::<Ad>().ok()?;
        if !is_f32(xa.primitive()) {
            return None;
        }
        let y = flex(forward(&values(xa.primitive()), slope), xa.primitive().layout().shape().to_vec());
        let out = match LeakyBackward.prepare::<NoCheckpointing>([xa.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((xa.primitive().clone(), slope), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        Some(Tensor::from_primitive::<Ad>(out))
    } else {
        let xp = x.clone().try_into_primitive::<Flex>().ok()?;
        if !is_f32(&xp) {
            return None;
        }
        let y = flex(forward(&values(&xp), slope), xp.layout().shape().to_vec());
        Some(Tensor::from_primitive::<Flex>(y))
    }
}

/// LeakyReLU with `slope` below zero; one pass each way on the CPU, Burn's elsewhere.
pub fn leaky_relu(x: Tensor<4>, slope: f64) -> Tensor<4> {
    apply(&x, slope as f32).unwrap_or_else(|| activation::leaky_relu(x, slope))
}

/// ReLU; one pass each way on the CPU, Burn's elsewhere.
pub fn relu(x: Tensor<4>) -> Tensor<4> {
    apply(&x, 0.0).unwrap_or_else(|| activation::relu(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn activations_and_their_gradients_equal_burns() {
        let dev = Device::flex().autodiff();
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
        // Without autodiff too.
        let x = Tensor::<4>::random([1, 2, 5, 5], Distribution::Normal(0.0, 1.0), &Device::flex());
        let (a, b): (Vec<f32>, Vec<f32>) = (leaky_relu(x.clone(), 0.2).try_into_vec_as().unwrap(), activation::leaky_relu(x, 0.2).try_into_vec_as().unwrap());
        assert_eq!(a, b);
    }
}
