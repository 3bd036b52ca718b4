//! Burn's CPU backend made fast for pix2pix: the hot operations of training and inference as
//! our own kernels, registered as custom autodiff operations (`Backward` on `Autodiff<Flex>`,
//! tensors reached with `try_into_primitive`). Each file is one kind of work:
//!
//! | file | work |
//! |---|---|
//! | `geometry` | the 4x4 layers, their shapes, where a tap reads |
//! | `gather` | im2col, whole or a block of output rows at a time (`Taps`) |
//! | `gemm` | matrix products through `gemm`, sums in a fixed order, scratch buffers |
//! | `scatter` | col2im, whole, column by column or in blocks (two phases of disjoint rows) |
//! | `one_channel` | the discriminator's one-channel last layer, direct |
//! | `conv` | forward and gradients of a layer on plain slices |
//! | `autodiff` | the glue to Burn's tensors and autodiff ([`apply`]) |
//! | `norm`, `act` | batch norm; ReLU, LeakyReLU, tanh (single parallel passes each way) |
//! | `adam` | a fused Adam keeping Burn's Adam state (checkpoints stay Burn's format) |
//! | `simd` | element-wise loops compiled for baseline x86-64 and AVX2+FMA, picked at run time |
//!
//! Invariants: results are the same run to run for a given thread count (every split sum is
//! added in a fixed order; a batch is summed in order; the two-phase scatter gives each value
//! its blocks in block order), and every kernel equals Burn's to 1e-4, forward and gradients
//! (`tests`). Other devices and dtypes keep Burn's kernels; [`set_enabled`] turns ours off per
//! thread for comparisons.
//!
//! ## The convolutions
//!
//! pix2pix's convolutions on the CPU (Burn flex) with hand-written gradients: the 4x4 stride-2
//! padding-1 convolution of both networks, its transpose (the generator's decoder) and the
//! discriminator's 4x4 stride-1 convolution.
//!
//! Each is one gather (im2col), one large multi-threaded matrix product (the `gemm` crate flex
//! itself uses, with its AVX-512 kernels where the CPU has them) and, for the transpose and the
//! input gradient, one scatter (col2im):
//!
//! | | convolution (weight `[o, i, 4, 4]`) | transposed (weight `[i, o, 4, 4]`) |
//! |---|---|---|
//! | forward | `y = W · im2col(x)` | `y = col2im(Wᵀ · x)` |
//! | input gradient | `dx = col2im(Wᵀ · dy)` | `dx = W · im2col(dy)` |
//! | weight gradient | `dW = dy · im2col(x)ᵀ` | `dW = x · im2col(dy)ᵀ` |
//!
//! with `im2col` and `col2im` of the same 4x4 geometry (the transposed convolution is the
//! convolution's input gradient). Gathers and scatters run on every core, one channel or one
//! block of rows a task.
//! Burn's generic backward (the weight gradient as a convolution with `dy` as the kernel) is
//! what this replaces: it was most of a training step's time.
//!
//! The outer levels' gathered matrices (16 taps x a few channels x tens of thousands of pixels)
//! are far larger than a core's cache, and their products are short (few output channels), so
//! writing the whole matrix and reading it back cost more than the multiply-adds. Those
//! products (`im2col` on the right) are made a block of output rows at a time instead
//! (`gather::Taps`): each thread gathers a block into its L2-sized buffer and multiplies it there.
//! Products scattered into an image of few channels (`col2im`) are blocked the same way
//! (`scatter::scatter_blocked`). The inner levels (a handful of pixels, weights of up to 32 MB) write
//! their product column by column, the order in which gemm streams the weight
//! (`scatter::product_by_column`). The discriminator's last layer (one output channel) skips the gather
//! altogether (`one_channel`).
//!
//! Sums split over threads (a long inner dimension, blocks of rows) are added in a fixed order,
//! and a batch is summed in order, so results are the same run to run for a given thread count.
//!
//! Used on Burn's CPU backend only (`Autodiff<Flex>` in training, `Flex` in inference); other
//! devices and dtypes keep Burn's kernels (see `model::conv`).

pub mod act;
pub mod adam;
mod autodiff;
mod conv;
mod gather;
mod gemm;
mod geometry;
pub mod norm;
mod one_channel;
mod scatter;
pub(super) mod simd;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::cell::Cell;

use burn::tensor::TensorData;
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_flex::{Flex, FlexTensor};

pub use autodiff::apply;
pub use conv::{Grads, backward, forward};
pub use geometry::{Layer, Shapes};

thread_local! {
    /// Off: Burn's own kernels on this thread (benchmarks compare the two; tests use Burn's as
    /// the reference). Per thread, so a test comparing them never changes another's kernels.
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Turns the hand-written kernels on or off for the calling thread.
pub fn set_enabled(enabled: bool) {
    ENABLED.with(|e| e.set(enabled));
}

/// Whether the hand-written kernels are on for the calling thread.
pub fn enabled() -> bool {
    ENABLED.with(Cell::get)
}

/// A flex tensor's values in row-major order (no copy when it is contiguous already).
pub(super) fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => Cow::Borrowed(v),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().map(<[f32]>::to_vec).unwrap_or_default()),
    }
}

pub(super) fn flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

pub(super) fn is_f32(t: &FlexTensor) -> bool {
    t.dtype() == burn::tensor::DType::F32
}

pub(super) type Ad = Autodiff<Flex, NoCheckpointing>;
