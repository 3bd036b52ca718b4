//! A stride-1 convolution to a single channel (the discriminator's last layer), computed
//! directly: each tap would be read once from the gathered matrix, so gathering it costs more
//! than the sums. On planes padded with zeros to rows of `w + 2`, output `(oy, ox)` at
//! `q = oy (w + 2) + ox` reads tap `(ky, kx)` at `q + ky (w + 2) + kx`, so every tap is one long
//! multiply-add over the whole plane (the columns past `wo` of each output row are dropped).

use rayon::prelude::*;

use super::geometry::*;
use super::simd::{add_into, with_avx2};

/// `[c, (h + 3) (w + 2)]`: each channel with a border of zeros (one more row below, which
/// the last row's dropped columns read).
fn padded(x: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let wp = w + 2;
    let mut out = vec![0.0f32; c * (h + 3) * wp];
    out.par_chunks_mut((h + 3) * wp).enumerate().for_each(|(ch, plane)| {
        for (iy, line) in x[ch * h * w..(ch + 1) * h * w].chunks_exact(w).enumerate() {
            plane[(iy + 1) * wp + 1..(iy + 1) * wp + 1 + w].copy_from_slice(line);
        }
    });
    out
}

/// Where tap `tap` reads, from an output position, on padded rows of `wp`.
fn offset(tap: usize, wp: usize) -> usize {
    (tap / K) * wp + tap % K
}

with_avx2! {
    /// `band` (padded output positions from `q0`) += every channel's taps.
    fn band_forward(band: &mut [f32], xp: &[f32], weight: &[f32], c_in: usize, plane: usize, wp: usize, q0: usize) {
        let n = band.len();
        for c in 0..c_in {
            for tap in 0..TAPS {
                let start = c * plane + q0 + offset(tap, wp);
                let wv = weight[c * TAPS + tap];
                for (o, v) in band.iter_mut().zip(&xp[start..start + n]) {
                    *o += wv * v;
                }
            }
        }
    }
}

with_avx2! {
    /// A channel's padded input gradient (`plane`) += its taps times `dyp`.
    fn channel_input_grad(plane: &mut [f32], weights: &[f32], dyp: &[f32], wp: usize) {
        for (tap, wv) in weights.iter().enumerate() {
            let start = offset(tap, wp);
            for (o, v) in plane[start..start + dyp.len()].iter_mut().zip(dyp) {
                *o += wv * v;
            }
        }
    }
}

with_avx2! {
    /// A channel's weight gradient (`taps`) += `dyp` · each tap's view of its padded input,
    /// summed in 8 lanes (a fixed order).
    fn channel_weight_grad(taps: &mut [f32], plane: &[f32], dyp: &[f32], wp: usize) {
        for (tap, acc) in taps.iter_mut().enumerate() {
            let start = offset(tap, wp);
            let src = &plane[start..start + dyp.len()];
            let whole = dyp.len() - dyp.len() % 8;
            let mut lanes = [0.0f32; 8];
            for (cd, cs) in dyp[..whole].chunks_exact(8).zip(src[..whole].chunks_exact(8)) {
                for i in 0..8 {
                    lanes[i] += cd[i] * cs[i];
                }
            }
            let rest: f32 = dyp[whole..].iter().zip(&src[whole..]).map(|(p, q)| p * q).sum();
            *acc += lanes.iter().sum::<f32>() + rest;
        }
    }
}

/// `dy` (`[ho, wo]`) on padded rows of `w + 2` (zeros in the extra columns).
fn padded_output(dy: &[f32], ho: usize, wo: usize, wp: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; ho * wp];
    for (row, line) in out.chunks_exact_mut(wp).zip(dy.chunks_exact(wo)) {
        row[..wo].copy_from_slice(line);
    }
    out
}

/// `y` (`[ho, wo]`) = the convolution of `x` (`[c_in, h, w]`) with `weight`
/// (`[1, c_in, 4, 4]`), a band of output rows a task.
pub(super) fn forward(s: &Shapes, x: &[f32], weight: &[f32], y: &mut [f32]) {
    let wp = s.w + 2;
    let xp = padded(x, s.c_in, s.h, s.w);
    let mut yp = vec![0.0f32; s.ho * wp];
    let band_rows = s.ho.div_ceil(rayon::current_num_threads().max(1)).max(1);
    yp.par_chunks_mut(band_rows * wp).enumerate().for_each(|(i, band)| band_forward(band, &xp, weight, s.c_in, (s.h + 3) * wp, wp, i * band_rows * wp));
    for (out, row) in y[..s.ho * s.wo].chunks_exact_mut(s.wo).zip(yp.chunks_exact(wp)) {
        out.copy_from_slice(&row[..s.wo]);
    }
}

/// Adds the input gradient for `dy` (`[ho, wo]`) to `dx` (`[c_in, h, w]`), one channel a task.
pub(super) fn input_grad(s: &Shapes, weight: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (h, w, wp) = (s.h, s.w, s.w + 2);
    let dyp = padded_output(dy, s.ho, s.wo, wp);
    dx[..s.c_in * h * w].par_chunks_mut(h * w).enumerate().for_each(|(c, out)| {
        let mut plane = vec![0.0f32; (h + 3) * wp];
        channel_input_grad(&mut plane, &weight[c * TAPS..(c + 1) * TAPS], &dyp, wp);
        for (iy, line) in out.chunks_exact_mut(w).enumerate() {
            add_into(line, &plane[(iy + 1) * wp + 1..(iy + 1) * wp + 1 + w]);
        }
    });
}

/// Adds the weight gradient for `dy` (`[ho, wo]`) and `x` to `dw` (`[1, c_in, 4, 4]`), one
/// channel a task.
pub(super) fn weight_grad(s: &Shapes, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let wp = s.w + 2;
    let (xp, dyp) = (padded(x, s.c_in, s.h, s.w), padded_output(dy, s.ho, s.wo, wp));
    let plane = (s.h + 3) * wp;
    dw[..s.c_in * TAPS].par_chunks_mut(TAPS).enumerate().for_each(|(c, taps)| channel_weight_grad(taps, &xp[c * plane..(c + 1) * plane], &dyp, wp));
}
