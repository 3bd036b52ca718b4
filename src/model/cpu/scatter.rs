//! The scatter (col2im): a product's taps added back onto the pixels they were read from, for
//! the transposed layer's forward and the convolution's input gradient. Whole, column by column
//! (a handful of pixels), or a block of rows at a time in two phases ([`scatter_blocked`]):
//! even blocks in parallel, then odd ones, so that concurrent blocks add onto disjoint rows of
//! the parity planes (blocks of at least two rows) and every value receives its blocks' sums in
//! block order, whatever the threads.

use rayon::prelude::*;

use super::gather::*;
use super::gemm::*;
use super::geometry::*;
use super::simd::{add_into, interleave_add};

/// The adjoint of the gather ([`Taps`], im2col): adds every tap of `cols` (`[c * 16, ho * wo]`) back onto the
/// pixel it was read from in `x` (`[c, h, w]`, added to).
pub(super) fn col2im(cols: &[f32], c: usize, h: usize, w: usize, stride: usize, x: &mut [f32]) {
    if stride == 2 && h.is_multiple_of(2) && w.is_multiple_of(2) {
        col2im_s2(cols, c, h, w, x)
    } else {
        col2im_any(cols, c, h, w, stride, x)
    }
}

/// [`col2im`] at stride 2: taps are added into the four parity planes of the channel (each a
/// contiguous add), which are then interleaved onto `x`.
pub(super) fn col2im_s2(cols: &[f32], c: usize, h: usize, w: usize, x: &mut [f32]) {
    let (hh, wh) = (h / 2, w / 2);
    let (ho, wo) = (hh, wh);
    let p = ho * wo;
    debug_assert_eq!(cols.len(), c * TAPS * p);
    x[..c * h * w].par_chunks_mut(h * w).enumerate().for_each(|(ch, plane)| {
        let mut parity = vec![0.0f32; 4 * hh * wh];
        for tap in 0..TAPS {
            let (ky, kx) = (tap / K, tap % K);
            let ((dy, py), (dx, px)) = (s2_tap(ky), s2_tap(kx));
            let acc = &mut parity[(py * 2 + px) * hh * wh..(py * 2 + px + 1) * hh * wh];
            let row = &cols[(ch * TAPS + tap) * p..(ch * TAPS + tap + 1) * p];
            let cols_ok = s2_valid(dx, wo, wh);
            let b0 = (cols_ok.start as isize + dx) as usize;
            for oy in s2_valid(dy, ho, hh) {
                let a = (oy as isize + dy) as usize;
                let src = &row[oy * wo + cols_ok.start..oy * wo + cols_ok.end];
                add_into(&mut acc[a * wh + b0..a * wh + b0 + src.len()], src);
            }
        }
        for iy in 0..h {
            let (a, py) = (iy / 2, iy % 2);
            let even = &parity[(py * 2) * hh * wh + a * wh..(py * 2) * hh * wh + (a + 1) * wh];
            let odd = &parity[(py * 2 + 1) * hh * wh + a * wh..(py * 2 + 1) * hh * wh + (a + 1) * wh];
            interleave_add(&mut plane[iy * w..(iy + 1) * w], even, odd);
        }
    });
}

/// [`col2im`] for any stride, one channel a task, taps in order.
pub(super) fn col2im_any(cols: &[f32], c: usize, h: usize, w: usize, stride: usize, x: &mut [f32]) {
    let (ho, wo) = (conv_out(h, stride), conv_out(w, stride));
    let p = ho * wo;
    debug_assert_eq!(cols.len(), c * TAPS * p);
    x[..c * h * w].par_chunks_mut(h * w).enumerate().for_each(|(ch, plane)| {
        for tap in 0..TAPS {
            let (ky, kx) = (tap / K, tap % K);
            let valid = valid_columns(kx, stride, w, wo);
            let row = &cols[(ch * TAPS + tap) * p..(ch * TAPS + tap + 1) * p];
            for oy in 0..ho {
                let iy = (oy * stride + ky) as isize - 1;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                let line = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                let first = valid.start * stride + kx - 1;
                let src = &row[oy * wo + valid.start..oy * wo + valid.end];
                if stride == 1 {
                    for (o, v) in line[first..first + src.len()].iter_mut().zip(src) {
                        *o += v;
                    }
                } else {
                    for (o, v) in line[first..].iter_mut().step_by(stride).zip(src) {
                        *o += v;
                    }
                }
            }
        }
    });
}

/// Pixels up to which [`product_col2im`] writes its product column by column.
pub(super) const FEW_PIXELS: usize = 4;

/// `cols` (row-major `[m, p]`) = `a` (`[m, k]`, column-major: a weight read transposed) · `b`
/// (`[k, p]`), the product whose columns col2im then adds up. With few pixels (the inner
/// levels: a large weight, a handful of positions) gemm streams the weight best as its
/// left-hand side, which it reads in place when the output is column-major: the product is
/// written so, then transposed (a few thousand values).
pub(super) fn product_by_column(m: usize, p: usize, k: usize, cols: &mut [f32], a: Mat, b: Mat) {
    assert!(cols.len() >= m * p, "matmul output too small");
    check_operand(a, m, k);
    check_operand(b, k, p);
    let mut by_column = vec![0.0f32; m * p];
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 && m * p * k >= 1 << 21 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: both operands are checked just above; `by_column` holds p columns of m.
    unsafe { gemm_raw(m, p, k, by_column.as_mut_ptr(), [1, m as isize], a, b, false, parallelism) };
    cols[..m * p].par_chunks_mut(p).enumerate().for_each(|(r, row)| {
        for (j, v) in row.iter_mut().enumerate() {
            *v = by_column[j * m + r];
        }
    });
}

/// `out` (`[c, h, w]`, added to) += col2im of `a` (`[c * 16, k]`) · `b` (`[k, ho * wo]`): the
/// transposed convolution's forward and the convolution's input gradient. Three ways:
/// - a handful of pixels (the inner levels): the product column by column
///   ([`product_by_column`]), then col2im;
/// - at stride 2, into an image of few channels, with a product too large for a core's cache: a
///   block of rows at a time, each thread multiplying into its L2-sized buffer and adding the
///   block's taps onto the output's parity planes ([`scatter_blocked`]);
/// - otherwise the whole product, then col2im.
#[allow(clippy::too_many_arguments)]
pub(super) fn product_col2im(c: usize, h: usize, w: usize, stride: usize, k: usize, a: Mat, b: &[f32], out: &mut [f32]) {
    let (ho, wo) = (conv_out(h, stride), conv_out(w, stride));
    let (m, p) = (c * TAPS, ho * wo);
    if m == 0 || k == 0 {
        // Nothing to add (no channels on one side).
        return;
    }
    // Blocks pay for images of few channels (the outer levels): with many, each block's
    // product is too short (few pixels against a long weight) to run at gemm's pace.
    let blocks = (stride == 2 && h.is_multiple_of(2) && w.is_multiple_of(2) && c <= 16).then(|| scatter_block_rows(m, ho, wo)).flatten();
    if let Some(rows) = blocks {
        return scatter_blocked(c, h, w, k, a, b, out, rows);
    }
    let mut cols = Scratch::take(m * p);
    if p <= FEW_PIXELS {
        product_by_column(m, p, k, &mut cols, a, Mat::rows(b, p));
    } else {
        matmul(m, p, k, &mut cols, a, Mat::rows(b, p), false);
    }
    col2im(&cols, c, h, w, stride, out);
}

/// Rows per block of [`scatter_blocked`] for a product of `m` rows over `ho` x `wo` pixels, or
/// None when it is small enough to make whole or gives a thread fewer than two blocks a phase.
pub(super) fn scatter_block_rows(m: usize, ho: usize, wo: usize) -> Option<usize> {
    let threads = rayon::current_num_threads();
    if threads < 2 || m * ho * wo < BLOCKED_FROM {
        return None;
    }
    // At least 2 rows: a block adds onto the rows from one above to one below its own, so
    // blocks two apart never touch the same row.
    let rows = (BLOCK_VALUES / (m * wo)).clamp(2, ho.max(2));
    (ho.div_ceil(rows) >= 4 * threads).then_some(rows)
}

/// [`product_col2im`] at stride 2 a block of `rows` output rows at a time. The even blocks run
/// in parallel, then the odd ones: blocks of one phase add onto disjoint rows of the parity
/// planes, and every value receives its blocks' sums in the same order whatever the threads.
#[allow(clippy::too_many_arguments)]
pub(super) fn scatter_blocked(c: usize, h: usize, w: usize, k: usize, a: Mat, b: &[f32], out: &mut [f32], rows: usize) {
    debug_assert!(h.is_multiple_of(2) && w.is_multiple_of(2), "the parity planes need even sides");
    let (hh, wh) = (h / 2, w / 2);
    let (ho, wo) = (hh, wh);
    let (m, p) = (c * TAPS, ho * wo);
    assert!(rows >= 2 && out.len() >= c * h * w, "scatter output too small");
    check_operand(a, m, k);
    check_operand(Mat::rows(b, p), k, p);
    // [c, 4, hh, wh]: output (2 a + py, 2 b + px) of channel ch at plane ch * 4 + py * 2 + px.
    let mut parity = vec![0.0f32; c * h * w];
    let planes = SendPtr(parity.as_mut_ptr());
    let blocks = ho.div_ceil(rows);
    for phase in 0..2 {
        (0..blocks).into_par_iter().filter(|block| block % 2 == phase).for_each(|block| {
            let (r0, r1) = (block * rows, ((block + 1) * rows).min(ho));
            let n = (r1 - r0) * wo;
            let mut cols = Scratch::take(m * n);
            let b_block = Mat { data: &b[r0 * wo..], rs: p as isize, cs: 1 };
            gemm_checked(m, n, k, &mut cols, a, b_block, false, gemm::Parallelism::None);
            // The parity rows this block adds onto: one above its first to one below its last.
            let (lo, hi) = (r0.saturating_sub(1), (r1 + 1).min(hh));
            for plane in 0..c * 4 {
                // SAFETY: rows lo..hi of this parity plane lie inside `parity` (plane < c * 4,
                // hi <= hh), and no other block of this phase touches them (blocks of a phase are
                // two blocks of >= 2 rows apart, and each touches only its own rows +- 1).
                let acc = unsafe { std::slice::from_raw_parts_mut(planes.at(plane * hh * wh + lo * wh), (hi - lo) * wh) };
                let (ch, py, px) = (plane / 4, (plane % 4) / 2, plane % 2);
                for tap in 0..TAPS {
                    let ((dy, tpy), (dx, tpx)) = (s2_tap(tap / K), s2_tap(tap % K));
                    if (tpy, tpx) != (py, px) {
                        continue;
                    }
                    let row = &cols[(ch * TAPS + tap) * n..(ch * TAPS + tap + 1) * n];
                    let cols_ok = s2_valid(dx, wo, wh);
                    let b0 = (cols_ok.start as isize + dx) as usize;
                    let valid = s2_valid(dy, ho, hh);
                    for oy in r0.max(valid.start)..r1.min(valid.end) {
                        let a_row = (oy as isize + dy) as usize - lo;
                        let src = &row[(oy - r0) * wo + cols_ok.start..(oy - r0) * wo + cols_ok.end];
                        add_into(&mut acc[a_row * wh + b0..a_row * wh + b0 + src.len()], src);
                    }
                }
            }
        });
    }
    out[..c * h * w].par_chunks_mut(h * w).enumerate().for_each(|(ch, plane)| {
        let par = &parity[ch * h * w..(ch + 1) * h * w];
        for iy in 0..h {
            let (a, py) = (iy / 2, iy % 2);
            let even = &par[(py * 2) * hh * wh + a * wh..(py * 2) * hh * wh + (a + 1) * wh];
            let odd = &par[(py * 2 + 1) * hh * wh + a * wh..(py * 2 + 1) * hh * wh + (a + 1) * wh];
            interleave_add(&mut plane[iy * w..(iy + 1) * w], even, odd);
        }
    });
}
