//! The gather (im2col) of a 4x4 convolution's taps, whole or a block of output rows at a
//! time ([`Taps`]); at stride 2 each channel is first split into its four parity planes, so
//! every tap's row is one contiguous copy. A block stays in a core's L2 cache while gemm reads
//! it; blocks are multiplied and (for weight gradients) summed per thread in a fixed order.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::gemm::*;
use super::geometry::*;

/// Values of the gathered taps a block holds (512 KiB): the block and gemm's packed copy of it
/// stay in a core's L2 cache while the product reads them.
pub(super) const BLOCK_VALUES: usize = 128 * 1024;

/// Gathered matrices from this many values on are built and multiplied a block of output rows
/// at a time (smaller ones fit in cache whole).
pub(super) const BLOCKED_FROM: usize = 512 * 1024;

/// The taps of a 4x4 convolution (padding 1) at `stride` of one source (`[c, h, w]`): the
/// matrix `[c * 16, ho * wo]` (rows in the weight's order c, ky, kx) that im2col would write,
/// gathered whole or a block of output rows at a time. At stride 2 (even sides) each channel
/// is first split into its four parity planes, so that every tap's row is one contiguous copy.
pub(super) struct Taps<'a> {
    pub(super) src: &'a [f32],
    pub(super) c: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) stride: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    /// `[c, 4, h / 2, w / 2]` at stride 2 with even sides.
    pub(super) parity: Option<Vec<f32>>,
    /// The whole matrix, once gathered (unblocked products).
    pub(super) whole: OnceLock<Scratch>,
}

impl<'a> Taps<'a> {
    pub(super) fn new(src: &'a [f32], c: usize, h: usize, w: usize, stride: usize) -> Taps<'a> {
        debug_assert!(src.len() >= c * h * w);
        let parity = (stride == 2 && h.is_multiple_of(2) && w.is_multiple_of(2)).then(|| {
            let mut parity = vec![0.0f32; c * h * w];
            parity.par_chunks_mut(h * w).enumerate().for_each(|(ch, planes)| split_parity(&src[ch * h * w..(ch + 1) * h * w], h, w, planes));
            parity
        });
        Taps { src, c, h, w, stride, ho: conv_out(h, stride), wo: conv_out(w, stride), parity, whole: OnceLock::new() }
    }

    /// Rows of the matrix (`c * 16`).
    pub(super) fn rows(&self) -> usize {
        self.c * TAPS
    }

    /// Columns of the matrix (output pixels).
    pub(super) fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// The 16 rows of channel `ch` for output rows `r0..r1` into `out` (`[16, (r1 - r0) * wo]`).
    pub(super) fn gather_channel(&self, ch: usize, r0: usize, r1: usize, out: &mut [f32]) {
        let (ho, wo) = (self.ho, self.wo);
        let n = (r1 - r0) * wo;
        debug_assert_eq!(out.len(), TAPS * n);
        if let Some(parity) = &self.parity {
            let (hh, wh) = (self.h / 2, self.w / 2);
            let planes = &parity[ch * 4 * hh * wh..(ch + 1) * 4 * hh * wh];
            for tap in 0..TAPS {
                let ((dy, py), (dx, px)) = (s2_tap(tap / K), s2_tap(tap % K));
                let src = &planes[(py * 2 + px) * hh * wh..(py * 2 + px + 1) * hh * wh];
                let row = &mut out[tap * n..(tap + 1) * n];
                let (rows_ok, cols_ok) = (s2_valid(dy, ho, hh), s2_valid(dx, wo, wh));
                let b0 = (cols_ok.start as isize + dx) as usize;
                for oy in r0..r1 {
                    let out = &mut row[(oy - r0) * wo..(oy - r0 + 1) * wo];
                    if !rows_ok.contains(&oy) {
                        out.fill(0.0);
                        continue;
                    }
                    let a = (oy as isize + dy) as usize;
                    out[..cols_ok.start].fill(0.0);
                    out[cols_ok.end..].fill(0.0);
                    out[cols_ok.clone()].copy_from_slice(&src[a * wh + b0..a * wh + b0 + cols_ok.len()]);
                }
            }
            return;
        }
        let (h, w, stride) = (self.h, self.w, self.stride);
        let plane = &self.src[ch * h * w..(ch + 1) * h * w];
        for tap in 0..TAPS {
            let (ky, kx) = (tap / K, tap % K);
            let row = &mut out[tap * n..(tap + 1) * n];
            let valid = valid_columns(kx, stride, w, wo);
            for oy in r0..r1 {
                let out = &mut row[(oy - r0) * wo..(oy - r0 + 1) * wo];
                let iy = (oy * stride + ky) as isize - 1;
                if iy < 0 || iy >= h as isize {
                    out.fill(0.0);
                    continue;
                }
                let line = &plane[iy as usize * w..(iy as usize + 1) * w];
                out[..valid.start].fill(0.0);
                out[valid.end..].fill(0.0);
                // Input column of output column ox: ox * stride + kx - 1.
                let first = valid.start * stride + kx - 1;
                let dst = &mut out[valid.clone()];
                if stride == 1 {
                    dst.copy_from_slice(&line[first..first + dst.len()]);
                } else {
                    for (o, v) in dst.iter_mut().zip(line[first..].iter().step_by(stride)) {
                        *o = *v;
                    }
                }
            }
        }
    }

    /// Output rows `r0..r1` of every channel into `cols` (`[c * 16, (r1 - r0) * wo]`).
    pub(super) fn gather(&self, r0: usize, r1: usize, cols: &mut [f32]) {
        let n = (r1 - r0) * self.wo;
        for (ch, rows) in cols.chunks_exact_mut(TAPS * n).enumerate().take(self.c) {
            self.gather_channel(ch, r0, r1, rows);
        }
    }

    /// The whole matrix into `cols`, one channel a task.
    pub(super) fn gather_all(&self, cols: &mut [f32]) {
        let p = self.pixels();
        cols[..self.rows() * p].par_chunks_mut(TAPS * p).enumerate().for_each(|(ch, rows)| self.gather_channel(ch, 0, self.ho, rows));
    }

    /// The whole matrix, gathered on first use.
    pub(super) fn whole(&self) -> &[f32] {
        self.whole.get_or_init(|| {
            let mut cols = Scratch::take(self.rows() * self.pixels());
            self.gather_all(&mut cols);
            cols
        })
    }

    /// Output rows per block when the matrix is better built a block at a time: it is too
    /// large for a core's cache and gives every thread at least two blocks. None otherwise.
    pub(super) fn block_rows(&self) -> Option<usize> {
        let threads = rayon::current_num_threads();
        if threads < 2 || self.rows() * self.pixels() < BLOCKED_FROM {
            return None;
        }
        let rows = (BLOCK_VALUES / (self.rows() * self.wo)).clamp(1, self.ho);
        (self.ho.div_ceil(rows) >= 2 * threads).then_some(rows)
    }

    /// `out` (`[m, pixels]`) = `a` (`[m, c * 16]`) · the matrix.
    pub(super) fn product(&self, m: usize, a: Mat, out: &mut [f32]) {
        // Blocks pay while `a` is small: each block's product packs it again.
        match self.block_rows().filter(|_| m * self.rows() <= 4 * BLOCK_VALUES) {
            Some(rows) => self.product_blocked(m, a, out, rows),
            None => matmul(m, self.pixels(), self.rows(), out, a, Mat::rows(self.whole(), self.pixels()), false),
        }
    }

    /// [`Taps::product`] `rows` output rows at a time, the blocks shared among threads.
    pub(super) fn product_blocked(&self, m: usize, a: Mat, out: &mut [f32], rows: usize) {
        let (k, p, wo) = (self.rows(), self.pixels(), self.wo);
        assert!(out.len() >= m * p && rows > 0, "product output too small");
        check_operand(a, m, k);
        let dst = SendPtr(out.as_mut_ptr());
        (0..self.ho.div_ceil(rows)).into_par_iter().for_each(|block| {
            let (r0, r1) = (block * rows, ((block + 1) * rows).min(self.ho));
            let n = (r1 - r0) * wo;
            let mut cols = Scratch::take(k * n);
            self.gather(r0, r1, &mut cols);
            // SAFETY: `a` is checked above and `cols` is [k, n]; the block writes only columns
            // r0 * wo .. r1 * wo of `out`'s m rows of p (within `out`, checked above), which no
            // other block writes.
            unsafe { gemm_raw(m, n, k, dst.at(r0 * wo), [p as isize, 1], a, Mat::rows(&cols, n), false, gemm::Parallelism::None) };
        });
    }

    /// `out` (`[m, c * 16]`) = `d` (`[m, pixels]`) · the matrix transposed, or `out +=` with
    /// `accumulate`. Blocked, each thread sums its own run of blocks and the runs are added in
    /// order (the same result run to run for a given thread count).
    pub(super) fn product_t(&self, m: usize, d: &[f32], out: &mut [f32], accumulate: bool) {
        if m == 0 {
            return;
        }
        // Blocks pay for short products (few output channels, e.g. the outer levels): each
        // thread's sum `[m, c * 16]` is read and written again by every block.
        match self.block_rows().filter(|_| m <= 64) {
            Some(rows) => self.product_t_blocked(m, d, out, accumulate, rows),
            None => matmul(m, self.rows(), self.pixels(), out, Mat::rows(d, self.pixels()), Mat::transposed(self.whole(), self.pixels()), accumulate),
        }
    }

    /// [`Taps::product_t`] `rows` output rows at a time.
    pub(super) fn product_t_blocked(&self, m: usize, d: &[f32], out: &mut [f32], accumulate: bool, rows: usize) {
        let (k, p, wo) = (self.rows(), self.pixels(), self.wo);
        assert!(rows > 0 && out.len() >= m * k, "product output too small");
        let blocks = self.ho.div_ceil(rows);
        let shares = rayon::current_num_threads().min(blocks);
        let per_share = blocks.div_ceil(shares);
        // Each share sums into `[k, m]` (gemm's preferred orientation here: the gathered block
        // is read as it lies, only the short `d` rows are packed), transposed when the shares
        // are added.
        let partial: Vec<Vec<f32>> = (0..shares)
            .into_par_iter()
            .map(|share| {
                let mut sum = vec![0.0f32; k * m];
                for block in share * per_share..((share + 1) * per_share).min(blocks) {
                    let (r0, r1) = (block * rows, ((block + 1) * rows).min(self.ho));
                    let n = (r1 - r0) * wo;
                    let mut cols = Scratch::take(k * n);
                    self.gather(r0, r1, &mut cols);
                    let d_block = Mat { data: &d[r0 * wo..], rs: p as isize, cs: 1 };
                    check_operand(d_block, m, n);
                    // SAFETY: both operands are checked (cols is [k, n]); `sum` holds k rows of m,
                    // written as the transpose of the [m, k] product.
                    unsafe { gemm_raw(m, k, n, sum.as_mut_ptr(), [1, m as isize], d_block, Mat::transposed(&cols, n), block > share * per_share, gemm::Parallelism::None) };
                }
                sum
            })
            .collect();
        let out = &mut out[..m * k];
        out.par_chunks_mut(k).enumerate().for_each(|(o, row)| {
            for (r, v) in row.iter_mut().enumerate() {
                let mut sum = if accumulate { *v } else { 0.0 };
                for part in &partial {
                    sum += part[r * m + o];
                }
                *v = sum;
            }
        });
    }
}
