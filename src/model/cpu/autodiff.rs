//! The glue to Burn: the convolutions on flex tensors, registered as custom autodiff operations
//! (`Backward` on `Autodiff<Flex>`, tensors reached with `try_into_primitive`), and on plain
//! flex tensors for inference. Anything that is not ours (another device, dtype or shape)
//! returns None and the caller runs Burn's kernel.

use burn::prelude::*;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};

use super::conv::{Grads, backward, forward};
use super::geometry::{Layer, Shapes};
use super::{Ad, enabled, flex, is_f32, values};

/// Forward on flex tensors; None when the shapes or dtypes are not ours.
pub(super) fn forward_flex(layer: Layer, x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>) -> Option<(FlexTensor, Shapes)> {
    let dims = |t: &FlexTensor| -> Option<[usize; 4]> { t.layout().shape().as_slice().try_into().ok() };
    let s = layer.shapes(dims(x)?, dims(weight)?)?;
    if !is_f32(x) || !is_f32(weight) || bias.is_some_and(|b| !is_f32(b) || b.layout().shape().num_elements() != s.c_out) {
        return None;
    }
    let b = bias.map(values);
    let y = forward(layer, s, &values(x), &values(weight), b.as_deref());
    Some((flex(y, vec![s.batch, s.c_out, s.ho, s.wo]), s))
}

#[derive(Debug, Clone)]
pub(super) struct State {
    layer: Layer,
    shapes: Shapes,
    x: FlexTensor,
    weight: FlexTensor,
}

impl State {
    fn grads(&self, dy: &FlexTensor, want: [bool; 3]) -> Grads {
        backward(self.layer, self.shapes, &values(&self.x), &values(&self.weight), &values(dy), want)
    }
}

#[derive(Debug)]
pub(super) struct WithBias;
#[derive(Debug)]
pub(super) struct NoBias;

impl Backward<Flex, 3> for WithBias {
    type State = State;

    fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [nx, nw, nb] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let s = &ops.state;
        let g = s.grads(&dy, [nx.is_some(), nw.is_some(), nb.is_some()]);
        register(grads, nx.map(|n| n.id), g.x, s.x.layout().shape().to_vec());
        register(grads, nw.map(|n| n.id), g.weight, s.weight.layout().shape().to_vec());
        register(grads, nb.map(|n| n.id), g.bias, vec![s.shapes.c_out]);
    }
}

impl Backward<Flex, 2> for NoBias {
    type State = State;

    fn backward(self, ops: Ops<State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [nx, nw] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let s = &ops.state;
        let g = s.grads(&dy, [nx.is_some(), nw.is_some(), false]);
        register(grads, nx.map(|n| n.id), g.x, s.x.layout().shape().to_vec());
        register(grads, nw.map(|n| n.id), g.weight, s.weight.layout().shape().to_vec());
    }
}

pub(super) fn register(grads: &mut Gradients, node: Option<burn_autodiff::NodeId>, values: Option<Vec<f32>>, shape: Vec<usize>) {
    if let (Some(id), Some(v)) = (node, values) {
        grads.register::<Flex>(id, flex(v, shape));
    }
}


/// The layer on tracked CPU tensors, with its backward registered; None when the tensors are
/// not on Burn's CPU backend with autodiff, or the shapes are not ours.
pub(super) fn apply_autodiff(layer: Layer, x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>) -> Option<Tensor<4>> {
    let xa = x.clone().try_into_primitive::<Ad>().ok()?;
    let wa = weight.clone().try_into_primitive::<Ad>().ok()?;
    let ba = match bias {
        Some(b) => Some(b.clone().try_into_primitive::<Ad>().ok()?),
        None => None,
    };
    let (y, shapes) = forward_flex(layer, xa.primitive(), wa.primitive(), ba.as_ref().map(|b| b.primitive()))?;
    let state = || State { layer, shapes, x: xa.primitive().clone(), weight: wa.primitive().clone() };
    let out = match &ba {
        Some(ba) => match WithBias.prepare::<NoCheckpointing>([xa.node(), wa.node(), ba.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(state(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        },
        None => match NoBias.prepare::<NoCheckpointing>([xa.node(), wa.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(state(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        },
    };
    Some(Tensor::from_primitive::<Ad>(out))
}

/// The layer on plain CPU tensors (inference); None when not on Burn's CPU backend.
pub(super) fn apply_plain(layer: Layer, x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>) -> Option<Tensor<4>> {
    let xp = x.clone().try_into_primitive::<Flex>().ok()?;
    let wp = weight.clone().try_into_primitive::<Flex>().ok()?;
    let bp = match bias {
        Some(b) => Some(b.clone().try_into_primitive::<Flex>().ok()?),
        None => None,
    };
    let (y, _) = forward_flex(layer, &xp, &wp, bp.as_ref())?;
    Some(Tensor::from_primitive::<Flex>(y))
}

/// The layer with the hand-written kernels when `x` is on Burn's CPU backend (with or without
/// autodiff) and they are enabled; None otherwise (the caller runs Burn's kernel).
pub fn apply(layer: Layer, x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>) -> Option<Tensor<4>> {
    if !enabled() {
        return None;
    }
    let dev = x.device();
    if dev.is_autodiff() { apply_autodiff(layer, x, weight, bias) } else { apply_plain(layer, x, weight, bias) }
}
