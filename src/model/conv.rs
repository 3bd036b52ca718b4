//! pix2pix's two convolutions, 4x4 stride 2 padding 1 and its transpose, written as one
//! large matrix product each, for Burn's CPU backend where that is faster than Burn's kernels.
//!
//! Why: Burn flex's convolution splits the output into 512-pixel tiles and gives each tile one
//! single-threaded product, and re-lays out the whole weight on every call; at the U-Net's
//! inner levels (16 px and less) that leaves one tile, one core, and a 4-16 MB weight copied
//! with a cache-hostile stride: 5-10 ms per call for almost no arithmetic. Here:
//!
//! - the convolution gathers its 16 taps with a space-to-depth view (stride 2 becomes a
//!   reshape) into `[c_in * 16, batch * pixels]` and multiplies by the weight as it is stored
//!   (`[c_out, c_in * 16]`, no copy), a product Burn's matmul runs on every core;
//! - the transposed convolution multiplies every input pixel by the whole weight (read through
//!   a transposed view, no copy) into `[c_out * 16, pixels]` and sums the four taps that reach
//!   each output pixel (2 x 2 per output phase, the sub-pixel view of Shi et al. 2016) as
//!   shifted slices, instead of a scatter.
//!
//! Both are plain tensor operations (pad, reshape, slice, cat, matmul), so autodiff derives
//! their backward passes. They equal Burn's `conv2d` / `conv_transpose2d` to float rounding
//! (tests below). Inference on the CPU uses them for layers with at most
//! [`MATMUL_CONV_MAX_PIXELS`] (transposed: [`MATMUL_CONV_TRANSPOSE_MAX_PIXELS`]) output pixels,
//! where they win (`s2cr bench --what profile` times both per layer, forward and backward);
//! wider layers, training (their derived backward pass is slower than Burn's) and every GPU
//! layer keep Burn's kernels.

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Off: Burn's own kernels everywhere (for benchmarks that compare the two).
static MATMUL_CONV: AtomicBool = AtomicBool::new(true);

/// Turns the matrix-product forms on or off for the whole process (benchmarks compare both).
pub fn set_matmul_conv(enabled: bool) {
    MATMUL_CONV.store(enabled, Ordering::Relaxed);
}

/// Output pixels (batch x height x width) up to which the product form of the convolution
/// beats Burn flex's tiled one in inference: there flex has a single 512-pixel tile (one core)
/// and re-lays out the whole weight per call. Above it flex's tiles keep every core busy and it
/// is the faster one (`s2cr bench --what profile`, release build, 2 cores).
pub const MATMUL_CONV_MAX_PIXELS: usize = 512;

/// The same for the transposed convolution, which gains only at the innermost levels.
pub const MATMUL_CONV_TRANSPOSE_MAX_PIXELS: usize = 64;

/// Weights (c_in x c_out x 16 values) from which the product form pays: flex's per-call weight
/// re-layout grows with the weight, our gathering of the taps with the input. unet_256's inner
/// levels hold 2-4 M values; a small model's (ngf 16) at most 0.26 M, where flex stays faster.
pub const MATMUL_CONV_MIN_WEIGHTS: usize = 1 << 20;

/// Whether to use the product form for a layer with `pixels` output pixels (at most `limit`)
/// and `weights` weight values on `device`: the CPU, in inference only. With autodiff their backward pass (slices taken
/// back as padded copies) is slower than Burn's, so training keeps Burn's kernels.
pub fn use_matmul_conv(device: &Device, pixels: usize, limit: usize, weights: usize) -> bool {
    MATMUL_CONV.load(Ordering::Relaxed) && pixels <= limit && weights >= MATMUL_CONV_MIN_WEIGHTS && !device.is_autodiff() && *device == Device::flex()
}

/// A pix2pix down-sampling convolution (4x4, stride 2, padding 1) on the fastest path for the
/// input's device and size.
pub fn down(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [batch, _, h, w] = x.dims();
    let weights = conv.weight.shape().num_elements();
    if h % 2 == 0 && w % 2 == 0 && use_matmul_conv(&x.device(), batch * (h / 2) * (w / 2), MATMUL_CONV_MAX_PIXELS, weights) {
        conv4x4_s2(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()))
    } else {
        conv.forward(x)
    }
}

/// A pix2pix up-sampling transposed convolution (4x4, stride 2, padding 1) on the fastest path
/// for the input's device and size.
pub fn up(conv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let [batch, _, h, w] = x.dims();
    let weights = conv.weight.shape().num_elements();
    if use_matmul_conv(&x.device(), batch * 4 * h * w, MATMUL_CONV_TRANSPOSE_MAX_PIXELS, weights) {
        conv_transpose4x4_s2(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()))
    } else {
        conv.forward(x)
    }
}

/// Convolution with a 4x4 kernel, stride 2, padding 1 on every side.
///
/// `x` `[batch, c_in, h, w]` (h, w even), `weight` `[c_out, c_in, 4, 4]`, `bias` `[c_out]` ->
/// `[batch, c_out, h / 2, w / 2]`.
pub fn conv4x4_s2(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let [batch, c_in, h, w] = x.dims();
    let c_out = weight.dims()[0];
    let (ho, wo) = (h / 2, w / 2);
    let (hs, ws) = (ho + 1, wo + 1);
    let pixels = batch * ho * wo;
    // [c_in, batch, h + 2, w + 2], then every second row and column as its own axis: padded
    // row 2 s + p is (s, p).
    let xp = x.swap_dims(0, 1).pad((1, 1, 1, 1), PadMode::Constant(0.0));
    let x6: Tensor<6> = xp.reshape([c_in, batch, hs, 2, ws, 2]);
    // Tap (ky, kx) of output (i, j) reads padded (2 i + ky, 2 j + kx) = (i + ky / 2, ky % 2).
    let mut taps = Vec::with_capacity(16);
    for ky in 0..4 {
        for kx in 0..4 {
            let (dy, py, dx, px) = (ky / 2, ky % 2, kx / 2, kx % 2);
            let t = x6.clone().slice([0..c_in, 0..batch, dy..dy + ho, py..py + 1, dx..dx + wo, px..px + 1]);
            taps.push(t.reshape([c_in, 1, pixels]));
        }
    }
    // [c_in * 16, pixels], rows in the weight's own order (c_in, ky, kx).
    let cols: Tensor<2> = Tensor::cat(taps, 1).reshape([c_in * 16, pixels]);
    let out = weight.reshape([c_out, c_in * 16]).matmul(cols);
    let out = match bias {
        Some(b) => out + b.reshape([c_out, 1]),
        None => out,
    };
    out.reshape([c_out, batch, ho, wo]).swap_dims(0, 1)
}

/// Transposed convolution with a 4x4 kernel, stride 2, padding 1 (doubles the size).
///
/// `x` `[batch, c_in, h, w]`, `weight` `[c_in, c_out, 4, 4]` (Burn's layout for transposed
/// convolutions), `bias` `[c_out]` -> `[batch, c_out, 2 h, 2 w]`.
pub fn conv_transpose4x4_s2(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let [batch, c_in, h, w] = x.dims();
    let c_out = weight.dims()[1];
    let pixels = batch * h * w;
    // Every input pixel's contribution to its 4 x 4 output neighbourhood, in one product with
    // the weight as stored (read through a transposed view, no copy): [c_out * 16, pixels].
    let x2: Tensor<2> = x.swap_dims(0, 1).reshape([c_in, pixels]);
    let cols = weight.reshape([c_in, c_out * 16]).transpose().matmul(x2);
    // [c_out, ky, kx, batch, h + 2, w + 2]: padded by one pixel so border taps read zeros.
    let cols: Tensor<6> = cols.reshape([c_out, 4, 4, batch, h, w]).pad([(0, 0), (0, 0), (0, 0), (0, 0), (1, 1), (1, 1)], PadMode::Constant(0.0));
    // out(2 i + a) gathers input rows r with 2 r - 1 + ky = 2 i + a: for a = 0, r = i (ky 1)
    // and r = i - 1 (ky 3); for a = 1, r = i (ky 2) and r = i + 1 (ky 0). In padded rows that
    // is row i + a + t with ky = 3 - a - 2 t, t in {0, 1}; the same for columns.
    let tap = |ky: usize, kx: usize, sy: usize, sx: usize| -> Tensor<6> { cols.clone().slice([0..c_out, ky..ky + 1, kx..kx + 1, 0..batch, sy..sy + h, sx..sx + w]) };
    let mut rows = Vec::with_capacity(2);
    for a in 0..2 {
        let mut phases = Vec::with_capacity(2);
        for b in 0..2 {
            let mut sum: Option<Tensor<6>> = None;
            for t in 0..2 {
                for u in 0..2 {
                    let term = tap(3 - a - 2 * t, 3 - b - 2 * u, a + t, b + u);
                    sum = Some(match sum {
                        Some(s) => s + term,
                        None => term,
                    });
                }
            }
            // [c_out, 1, 1, batch, h, w] -> [c_out, batch, h, 1, w, 1]
            if let Some(s) = sum {
                phases.push(s.reshape([c_out, batch, h, 1, w, 1]));
            }
        }
        rows.push(Tensor::cat(phases, 5));
    }
    // [c_out, batch, h, 2, w, 2] -> [c_out, batch, 2 h, 2 w]
    let out: Tensor<4> = Tensor::cat(rows, 3).reshape([c_out, batch, 2 * h, 2 * w]);
    let out = match bias {
        Some(b) => out + b.reshape([c_out, 1, 1, 1]),
        None => out,
    };
    out.swap_dims(0, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use burn::tensor::module::{conv_transpose2d, conv2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

    fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let (a, b): (Vec<f32>, Vec<f32>) = (a.try_into_vec_as().unwrap(), b.try_into_vec_as().unwrap());
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn matmul_convolutions_equal_burns() {
        let dev = Device::flex();
        for (batch, c_in, c_out, size, bias) in [(1, 3, 5, 8, true), (2, 4, 3, 6, false), (3, 2, 2, 2, true), (1, 16, 8, 16, false)] {
            let x = Tensor::<4>::random([batch, c_in, size, size], Distribution::Normal(0.0, 1.0), &dev);
            let w = Tensor::<4>::random([c_out, c_in, 4, 4], Distribution::Normal(0.0, 1.0), &dev);
            let b = bias.then(|| Tensor::<1>::random([c_out], Distribution::Normal(0.0, 1.0), &dev));
            let ours = conv4x4_s2(x.clone(), w.clone(), b.clone());
            let burns = conv2d(x, w, b, ConvOptions::new([2, 2], [1, 1], [1, 1], 1));
            let d = max_diff(ours, burns);
            assert!(d < 1e-4, "conv {batch} {c_in}->{c_out} at {size}: {d}");

            let x = Tensor::<4>::random([batch, c_in, size, size], Distribution::Normal(0.0, 1.0), &dev);
            let w = Tensor::<4>::random([c_in, c_out, 4, 4], Distribution::Normal(0.0, 1.0), &dev);
            let b = bias.then(|| Tensor::<1>::random([c_out], Distribution::Normal(0.0, 1.0), &dev));
            let ours = conv_transpose4x4_s2(x.clone(), w.clone(), b.clone());
            let burns = conv_transpose2d(x, w, b, ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1));
            let d = max_diff(ours, burns);
            assert!(d < 1e-4, "transposed conv {batch} {c_in}->{c_out} at {size}: {d}");
        }
    }

    #[test]
    fn gradients_equal_burns() {
        let dev = Device::flex().autodiff();
        let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Normal(0.0, 1.0), &dev).require_grad();
        let w = Tensor::<4>::random([4, 3, 4, 4], Distribution::Normal(0.0, 1.0), &dev).require_grad();
        let wt = Tensor::<4>::random([4, 5, 4, 4], Distribution::Normal(0.0, 1.0), &dev).require_grad();
        let target = Tensor::<4>::random([2, 5, 8, 8], Distribution::Normal(0.0, 1.0), &dev);
        let loss = |ours: bool| {
            let h = if ours { conv4x4_s2(x.clone(), w.clone(), None) } else { conv2d(x.clone(), w.clone(), None, ConvOptions::new([2, 2], [1, 1], [1, 1], 1)) };
            let y = if ours { conv_transpose4x4_s2(h, wt.clone(), None) } else { conv_transpose2d(h, wt.clone(), None, ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1)) };
            (y - target.clone()).powf_scalar(2.0).mean()
        };
        let (g_ours, g_burn) = (loss(true).backward(), loss(false).backward());
        for (name, p) in [("x", &x), ("w", &w), ("wt", &wt)] {
            let (a, b) = (p.grad(&g_ours).unwrap(), p.grad(&g_burn).unwrap());
            let d = max_diff(a, b);
            assert!(d < 1e-4, "gradient of {name}: {d}");
        }
    }
}
