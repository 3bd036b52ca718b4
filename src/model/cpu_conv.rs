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
//! ([`Taps`]): each thread gathers a block into its L2-sized buffer and multiplies it there.
//! Products scattered into an image of few channels (`col2im`) are blocked the same way
//! ([`scatter_blocked`]). The inner levels (a handful of pixels, weights of up to 32 MB) write
//! their product column by column, the order in which gemm streams the weight
//! ([`product_by_column`]). The discriminator's last layer (one output channel) skips the gather
//! altogether (`one_channel`).
//!
//! Sums split over threads (a long inner dimension, blocks of rows) are added in a fixed order,
//! and a batch is summed in order, so results are the same run to run for a given thread count.
//!
//! Used on Burn's CPU backend only (`Autodiff<Flex>` in training, `Flex` in inference); other
//! devices and dtypes keep Burn's kernels (see [`conv`], [`conv_transpose`]).

use burn::prelude::*;
use burn::tensor::TensorData;
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::simd::with_avx2;
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::OnceLock;

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

/// The layers: a 4x4 kernel with padding 1, as a convolution of stride 1 or 2, or the
/// transpose of the stride-2 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Conv { stride: usize },
    Transposed,
}

const K: usize = 4;
const TAPS: usize = K * K;

/// Output side of a 4x4 convolution with padding 1.
fn conv_out(side: usize, stride: usize) -> usize {
    (side + 2).saturating_sub(K) / stride + 1
}

/// The output columns `ox` of a tap `kx` that read inside a row of `w` pixels
/// (`ox * stride + kx - 1` in `[0, w)`), as a range.
fn valid_columns(kx: usize, stride: usize, w: usize, wo: usize) -> std::ops::Range<usize> {
    // ox * stride + kx >= 1 and ox * stride + kx <= w.
    let lo = if kx >= 1 { 0 } else { 1usize.div_ceil(stride) };
    let hi = if w >= kx { ((w - kx) / stride + 1).min(wo) } else { 0 };
    lo.min(hi)..hi
}

/// The adjoint of the gather ([`Taps`], im2col): adds every tap of `cols` (`[c * 16, ho * wo]`) back onto the
/// pixel it was read from in `x` (`[c, h, w]`, added to).
fn col2im(cols: &[f32], c: usize, h: usize, w: usize, stride: usize, x: &mut [f32]) {
    if stride == 2 && h.is_multiple_of(2) && w.is_multiple_of(2) {
        col2im_s2(cols, c, h, w, x)
    } else {
        col2im_any(cols, c, h, w, stride, x)
    }
}

/// Where tap `k` of output index `o` reads at stride 2 (padding 1): input `2 (o + d) + parity`,
/// as (d, parity). Row 2 o + k - 1.
fn s2_tap(k: usize) -> (isize, usize) {
    match k {
        0 => (-1, 1),
        1 => (0, 0),
        2 => (0, 1),
        _ => (1, 0),
    }
}

/// The outputs `o` in `0..n_out` whose input `o + d` lies in `0..n_half`, as a range.
fn s2_valid(d: isize, n_out: usize, n_half: usize) -> std::ops::Range<usize> {
    let lo = (-d).max(0) as usize;
    let hi = ((n_half as isize - d).max(0) as usize).min(n_out);
    lo.min(hi)..hi
}

with_avx2! {
    /// `even[i] = line[2 i]`, `odd[i] = line[2 i + 1]`.
    fn deinterleave(even: &mut [f32], odd: &mut [f32], line: &[f32]) {
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(line.chunks_exact(2)) {
            *e = pair[0];
            *o = pair[1];
        }
    }
}

with_avx2! {
    /// `dst += src`.
    fn add_into(dst: &mut [f32], src: &[f32]) {
        for (o, v) in dst.iter_mut().zip(src) {
            *o += v;
        }
    }
}

with_avx2! {
    /// `line[2 i] += even[i]`, `line[2 i + 1] += odd[i]`.
    fn interleave_add(line: &mut [f32], even: &[f32], odd: &[f32]) {
        for ((pair, e), o) in line.chunks_exact_mut(2).zip(even).zip(odd) {
            pair[0] += e;
            pair[1] += o;
        }
    }
}

/// Splits one channel (`[h, w]`, even sides) into its four parity planes (`[4, h / 2, w / 2]`,
/// plane `py * 2 + px` holding input `(2 a + py, 2 b + px)`).
fn split_parity(plane: &[f32], h: usize, w: usize, parity: &mut [f32]) {
    let (hh, wh) = (h / 2, w / 2);
    let (even_rows, odd_rows) = parity.split_at_mut(2 * hh * wh);
    for iy in 0..h {
        let (a, py) = (iy / 2, iy % 2);
        let rows = if py == 0 { &mut *even_rows } else { &mut *odd_rows };
        let (even, odd) = rows.split_at_mut(hh * wh);
        deinterleave(&mut even[a * wh..(a + 1) * wh], &mut odd[a * wh..(a + 1) * wh], &plane[iy * w..(iy + 1) * w]);
    }
}

/// Values of the gathered taps a block holds (512 KiB): the block and gemm's packed copy of it
/// stay in a core's L2 cache while the product reads them.
const BLOCK_VALUES: usize = 128 * 1024;

/// Gathered matrices from this many values on are built and multiplied a block of output rows
/// at a time (smaller ones fit in cache whole).
const BLOCKED_FROM: usize = 512 * 1024;

/// The taps of a 4x4 convolution (padding 1) at `stride` of one source (`[c, h, w]`): the
/// matrix `[c * 16, ho * wo]` (rows in the weight's order c, ky, kx) that im2col would write,
/// gathered whole or a block of output rows at a time. At stride 2 (even sides) each channel
/// is first split into its four parity planes, so that every tap's row is one contiguous copy.
struct Taps<'a> {
    src: &'a [f32],
    c: usize,
    h: usize,
    w: usize,
    stride: usize,
    ho: usize,
    wo: usize,
    /// `[c, 4, h / 2, w / 2]` at stride 2 with even sides.
    parity: Option<Vec<f32>>,
    /// The whole matrix, once gathered (unblocked products).
    whole: OnceLock<Scratch>,
}

impl<'a> Taps<'a> {
    fn new(src: &'a [f32], c: usize, h: usize, w: usize, stride: usize) -> Taps<'a> {
        debug_assert!(src.len() >= c * h * w);
        let parity = (stride == 2 && h.is_multiple_of(2) && w.is_multiple_of(2)).then(|| {
            let mut parity = vec![0.0f32; c * h * w];
            parity.par_chunks_mut(h * w).enumerate().for_each(|(ch, planes)| split_parity(&src[ch * h * w..(ch + 1) * h * w], h, w, planes));
            parity
        });
        Taps { src, c, h, w, stride, ho: conv_out(h, stride), wo: conv_out(w, stride), parity, whole: OnceLock::new() }
    }

    /// Rows of the matrix (`c * 16`).
    fn rows(&self) -> usize {
        self.c * TAPS
    }

    /// Columns of the matrix (output pixels).
    fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// The 16 rows of channel `ch` for output rows `r0..r1` into `out` (`[16, (r1 - r0) * wo]`).
    fn gather_channel(&self, ch: usize, r0: usize, r1: usize, out: &mut [f32]) {
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
    fn gather(&self, r0: usize, r1: usize, cols: &mut [f32]) {
        let n = (r1 - r0) * self.wo;
        for (ch, rows) in cols.chunks_exact_mut(TAPS * n).enumerate().take(self.c) {
            self.gather_channel(ch, r0, r1, rows);
        }
    }

    /// The whole matrix into `cols`, one channel a task.
    fn gather_all(&self, cols: &mut [f32]) {
        let p = self.pixels();
        cols[..self.rows() * p].par_chunks_mut(TAPS * p).enumerate().for_each(|(ch, rows)| self.gather_channel(ch, 0, self.ho, rows));
    }

    /// The whole matrix, gathered on first use.
    fn whole(&self) -> &[f32] {
        self.whole.get_or_init(|| {
            let mut cols = Scratch::take(self.rows() * self.pixels());
            self.gather_all(&mut cols);
            cols
        })
    }

    /// Output rows per block when the matrix is better built a block at a time: it is too
    /// large for a core's cache and gives every thread at least two blocks. None otherwise.
    fn block_rows(&self) -> Option<usize> {
        let threads = rayon::current_num_threads();
        if threads < 2 || self.rows() * self.pixels() < BLOCKED_FROM {
            return None;
        }
        let rows = (BLOCK_VALUES / (self.rows() * self.wo)).clamp(1, self.ho);
        (self.ho.div_ceil(rows) >= 2 * threads).then_some(rows)
    }

    /// `out` (`[m, pixels]`) = `a` (`[m, c * 16]`) · the matrix.
    fn product(&self, m: usize, a: Mat, out: &mut [f32]) {
        // Blocks pay while `a` is small: each block's product packs it again.
        match self.block_rows().filter(|_| m * self.rows() <= 4 * BLOCK_VALUES) {
            Some(rows) => self.product_blocked(m, a, out, rows),
            None => matmul(m, self.pixels(), self.rows(), out, a, Mat::rows(self.whole(), self.pixels()), false),
        }
    }

    /// [`Taps::product`] `rows` output rows at a time, the blocks shared among threads.
    fn product_blocked(&self, m: usize, a: Mat, out: &mut [f32], rows: usize) {
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
    fn product_t(&self, m: usize, d: &[f32], out: &mut [f32], accumulate: bool) {
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
    fn product_t_blocked(&self, m: usize, d: &[f32], out: &mut [f32], accumulate: bool, rows: usize) {
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

/// [`col2im`] at stride 2: taps are added into the four parity planes of the channel (each a
/// contiguous add), which are then interleaved onto `x`.
fn col2im_s2(cols: &[f32], c: usize, h: usize, w: usize, x: &mut [f32]) {
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
fn col2im_any(cols: &[f32], c: usize, h: usize, w: usize, stride: usize, x: &mut [f32]) {
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

/// A stride-1 convolution to a single channel (the discriminator's last layer), computed
/// directly: each tap would be read once from the gathered matrix, so gathering it costs more
/// than the sums. On planes padded with zeros to rows of `w + 2`, output `(oy, ox)` at
/// `q = oy (w + 2) + ox` reads tap `(ky, kx)` at `q + ky (w + 2) + kx`, so every tap is one long
/// multiply-add over the whole plane (the columns past `wo` of each output row are dropped).
mod one_channel {
    use super::*;

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
}

/// A matrix as gemm reads it: data and (row, column) strides.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rs: isize,
    cs: isize,
}

impl<'a> Mat<'a> {
    /// Row-major `[rows, cols]`.
    fn rows(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat { data, rs: cols as isize, cs: 1 }
    }
    /// The transpose of a row-major `[rows, cols]`.
    fn transposed(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat { data, rs: 1, cs: cols as isize }
    }
}

/// Panics unless `a` holds a `[rows, cols]` matrix with its strides (an empty one passes).
fn check_operand(a: Mat, rows: usize, cols: usize) {
    let last = (rows as isize - 1) * a.rs + (cols as isize - 1) * a.cs;
    assert!(a.rs >= 0 && a.cs >= 0 && last < a.data.len() as isize, "matmul operand too small");
}

/// `dst` (row-major `[m, n]`) = `a` (`[m, k]`) · `b` (`[k, n]`), or `dst +=` with `accumulate`.
fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    if m == 0 || n == 0 || k == 0 {
        return gemm_checked(m, n, k, dst, a, b, accumulate, gemm::Parallelism::None);
    }
    let threads = rayon::current_num_threads();
    // A long inner dimension with a small output (the weight gradients of the outer levels: a
    // few hundred thousand values summed over tens of thousands of pixels) leaves gemm, which
    // divides the output among threads, on one core: there each thread sums its own share of
    // the inner dimension and the shares are added in order (the same result run to run for a
    // given thread count).
    if threads > 1 && k >= 1024 && k >= 4 * m.max(n) && m * n * k >= 1 << 22 {
        check_operand(a, m, k);
        check_operand(b, k, n);
        let shares = threads.min(k / 256);
        let step = k.div_ceil(shares);
        let partial: Vec<Vec<f32>> = (0..shares)
            .into_par_iter()
            .map(|i| {
                let (start, end) = (i * step, ((i + 1) * step).min(k));
                let mut out = vec![0.0f32; m * n];
                let a_i = Mat { data: &a.data[(start as isize * a.cs) as usize..], ..a };
                let b_i = Mat { data: &b.data[(start as isize * b.rs) as usize..], ..b };
                gemm_checked(m, n, end - start, &mut out, a_i, b_i, false, gemm::Parallelism::None);
                out
            })
            .collect();
        return add_in_order(&mut dst[..m * n], &partial, accumulate);
    }
    // Below ~2 M multiply-adds a product is over before threads pay.
    let parallelism = if threads > 1 && m * n * k >= 1 << 21 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    gemm_checked(m, n, k, dst, a, b, accumulate, parallelism);
}

/// Pixels up to which [`product_col2im`] writes its product column by column.
const FEW_PIXELS: usize = 4;

/// `cols` (row-major `[m, p]`) = `a` (`[m, k]`, column-major: a weight read transposed) · `b`
/// (`[k, p]`), the product whose columns col2im then adds up. With few pixels (the inner
/// levels: a large weight, a handful of positions) gemm streams the weight best as its
/// left-hand side, which it reads in place when the output is column-major: the product is
/// written so, then transposed (a few thousand values).
fn product_by_column(m: usize, p: usize, k: usize, cols: &mut [f32], a: Mat, b: Mat) {
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
fn product_col2im(c: usize, h: usize, w: usize, stride: usize, k: usize, a: Mat, b: &[f32], out: &mut [f32]) {
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
fn scatter_block_rows(m: usize, ho: usize, wo: usize) -> Option<usize> {
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
fn scatter_blocked(c: usize, h: usize, w: usize, k: usize, a: Mat, b: &[f32], out: &mut [f32], rows: usize) {
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

/// `dst = Σ parts` (or `dst += Σ parts`), each value summed in the parts' order.
fn add_in_order(dst: &mut [f32], parts: &[Vec<f32>], accumulate: bool) {
    dst.par_chunks_mut(1 << 14).enumerate().for_each(|(c, chunk)| {
        let base = c << 14;
        for (j, v) in chunk.iter_mut().enumerate() {
            let mut sum = if accumulate { *v } else { 0.0 };
            for p in parts {
                sum += p[base + j];
            }
            *v = sum;
        }
    });
}

/// gemm on checked operands: `dst` (row-major `[m, n]`) = `a` · `b`, or `+=` with `accumulate`.
#[allow(clippy::too_many_arguments)]
fn gemm_checked(m: usize, n: usize, k: usize, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool, parallelism: gemm::Parallelism) {
    assert!(dst.len() >= m * n, "matmul output too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    check_operand(a, m, k);
    check_operand(b, k, n);
    // SAFETY: both operands are checked just above; dst holds m rows of n.
    unsafe { gemm_raw(m, n, k, dst.as_mut_ptr(), [n as isize, 1], a, b, accumulate, parallelism) }
}

/// A pointer into an output that blocks on several threads write disjoint parts of.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);

// SAFETY: used only to hand each block the disjoint part of one output it writes (see
// `Taps::product_blocked`, and `scatter_blocked`, whose blocks of one phase write disjoint rows).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// gemm's call: `dst` (`[m, n]` with (row, column) strides `dst_strides`) = `a` · `b`, or `+=`.
///
/// # Safety
/// `a` and `b` must hold `[m, k]` and `[k, n]` with their strides (see [`check_operand`]), and
/// `dst` must be valid for writes at `i * rs + j * cs` for every `i < m`, `j < n`, with no
/// other thread touching those values meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(m: usize, n: usize, k: usize, dst: *mut f32, dst_strides: [isize; 2], a: Mat, b: Mat, accumulate: bool, parallelism: gemm::Parallelism) {
    let [rs, cs] = dst_strides;
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(m, n, k, dst, cs, rs, accumulate, a.data.as_ptr(), a.cs, a.rs, b.data.as_ptr(), b.cs, b.rs, 1.0f32, 1.0f32, false, false, false, parallelism);
    }
}

/// Adds `bias[o]` to every value of row `o` of `y` (`[channels, pixels]` blocks, batch-major).
fn add_bias(y: &mut [f32], bias: &[f32], pixels: usize) {
    let channels = bias.len();
    y.par_chunks_mut(pixels).enumerate().for_each(|(i, row)| {
        let b = bias[i % channels];
        row.iter_mut().for_each(|v| *v += b);
    });
}

/// A buffer of the calling thread's for gathered taps and blocks of products, kept between calls: the
/// same few sizes come back every step, and a fresh buffer would be zeroed first (its values
/// are all overwritten before they are read). It only grows: shrinking it for a small layer
/// and growing it back for the next large one zeroed the difference every time.
struct Scratch(Vec<f32>, usize);

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Scratch {
    fn take(len: usize) -> Scratch {
        let mut v = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        if v.len() < len {
            v.resize(len, 0.0);
        }
        Scratch(v, len)
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0[..self.1]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0[..self.1]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        // Keep the larger of the two (a nested call may have put one back meanwhile).
        SCRATCH.with(|s| {
            let mut kept = s.borrow_mut();
            if v.capacity() > kept.capacity() {
                *kept = v;
            }
        });
    }
}

/// The shapes of one call: batch, input channels and side, output channels and side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shapes {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub ho: usize,
    pub wo: usize,
}

impl Layer {
    /// Shapes for an input `[batch, c_in, h, w]` and a weight of this layer's layout, or None
    /// when they do not fit (wrong kernel size or channels, too small an input).
    pub fn shapes(self, x: [usize; 4], weight: [usize; 4]) -> Option<Shapes> {
        let [batch, c_in, h, w] = x;
        if weight[2] != K || weight[3] != K || h == 0 || w == 0 {
            return None;
        }
        match self {
            Layer::Conv { stride } => {
                if weight[1] != c_in || !(1..=2).contains(&stride) || h + 2 < K || w + 2 < K || (stride == 2 && (h % 2 != 0 || w % 2 != 0)) {
                    return None;
                }
                Some(Shapes { batch, c_in, h, w, c_out: weight[0], ho: conv_out(h, stride), wo: conv_out(w, stride) })
            }
            Layer::Transposed => (weight[0] == c_in).then_some(Shapes { batch, c_in, h, w, c_out: weight[1], ho: 2 * h, wo: 2 * w }),
        }
    }
}

/// Forward pass on plain slices: `x` `[batch, c_in, h, w]`, weight in the layer's layout, bias
/// `[c_out]` -> `[batch, c_out, ho, wo]`.
pub fn forward(layer: Layer, s: Shapes, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (p_in, p_out) = (s.h * s.w, s.ho * s.wo);
    let mut y = vec![0.0f32; s.batch * s.c_out * p_out];
    match layer {
        Layer::Conv { stride: 1 } if s.c_out == 1 => {
            for b in 0..s.batch {
                one_channel::forward(&s, &x[b * s.c_in * p_in..(b + 1) * s.c_in * p_in], weight, &mut y[b * p_out..(b + 1) * p_out]);
            }
        }
        Layer::Conv { stride } => {
            for b in 0..s.batch {
                let taps = Taps::new(&x[b * s.c_in * p_in..(b + 1) * s.c_in * p_in], s.c_in, s.h, s.w, stride);
                taps.product(s.c_out, Mat::rows(weight, taps.rows()), &mut y[b * s.c_out * p_out..(b + 1) * s.c_out * p_out]);
            }
        }
        Layer::Transposed => {
            let m = s.c_out * TAPS;
            for b in 0..s.batch {
                product_col2im(s.c_out, s.ho, s.wo, 2, s.c_in, Mat::transposed(weight, m), &x[b * s.c_in * p_in..(b + 1) * s.c_in * p_in], &mut y[b * s.c_out * p_out..(b + 1) * s.c_out * p_out]);
            }
        }
    }
    if let Some(bias) = bias {
        add_bias(&mut y, bias, p_out);
    }
    y
}

/// Gradients of one call, each only when asked for.
#[derive(Debug, Default)]
pub struct Grads {
    pub x: Option<Vec<f32>>,
    pub weight: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
}

/// Backward pass on plain slices: the gradients of the input, the weight and the bias for the
/// output gradient `dy` (`[batch, c_out, ho, wo]`).
pub fn backward(layer: Layer, s: Shapes, x: &[f32], weight: &[f32], dy: &[f32], want: [bool; 3]) -> Grads {
    let (p_in, p_out) = (s.h * s.w, s.ho * s.wo);
    let mut dx = want[0].then(|| vec![0.0f32; s.batch * s.c_in * p_in]);
    let mut dw = want[1].then(|| vec![0.0f32; weight.len()]);
    match layer {
        Layer::Conv { stride: 1 } if s.c_out == 1 => {
            for b in 0..s.batch {
                let dy_b = &dy[b * p_out..(b + 1) * p_out];
                if let Some(dw) = dw.as_mut() {
                    one_channel::weight_grad(&s, &x[b * s.c_in * p_in..(b + 1) * s.c_in * p_in], dy_b, dw);
                }
                if let Some(dx) = dx.as_mut() {
                    one_channel::input_grad(&s, weight, dy_b, &mut dx[b * s.c_in * p_in..(b + 1) * s.c_in * p_in]);
                }
            }
        }
        Layer::Conv { stride } => {
            let k = s.c_in * TAPS;
            for b in 0..s.batch {
                let dy_b = &dy[b * s.c_out * p_out..(b + 1) * s.c_out * p_out];
                if let Some(dw) = dw.as_mut() {
                    let taps = Taps::new(&x[b * s.c_in * p_in..(b + 1) * s.c_in * p_in], s.c_in, s.h, s.w, stride);
                    taps.product_t(s.c_out, dy_b, dw, b > 0);
                }
                if let Some(dx) = dx.as_mut() {
                    product_col2im(s.c_in, s.h, s.w, stride, s.c_out, Mat::transposed(weight, k), dy_b, &mut dx[b * s.c_in * p_in..(b + 1) * s.c_in * p_in]);
                }
            }
        }
        Layer::Transposed => {
            for b in 0..s.batch {
                let taps = Taps::new(&dy[b * s.c_out * p_out..(b + 1) * s.c_out * p_out], s.c_out, s.ho, s.wo, 2);
                let x_b = &x[b * s.c_in * p_in..(b + 1) * s.c_in * p_in];
                if let Some(dw) = dw.as_mut() {
                    taps.product_t(s.c_in, x_b, dw, b > 0);
                }
                if let Some(dx) = dx.as_mut() {
                    taps.product(s.c_in, Mat::rows(weight, taps.rows()), &mut dx[b * s.c_in * p_in..(b + 1) * s.c_in * p_in]);
                }
            }
        }
    }
    let db = want[2].then(|| {
        let mut db = vec![0.0f32; s.c_out];
        for (i, row) in dy.chunks(p_out).enumerate() {
            db[i % s.c_out] += row.iter().sum::<f32>();
        }
        db
    });
    Grads { x: dx, weight: dw, bias: db }
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

/// Forward on flex tensors; None when the shapes or dtypes are not ours.
fn forward_flex(layer: Layer, x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>) -> Option<(FlexTensor, Shapes)> {
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
struct State {
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
struct WithBias;
#[derive(Debug)]
struct NoBias;

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

fn register(grads: &mut Gradients, node: Option<burn_autodiff::NodeId>, values: Option<Vec<f32>>, shape: Vec<usize>) {
    if let (Some(id), Some(v)) = (node, values) {
        grads.register::<Flex>(id, flex(v, shape));
    }
}

pub(super) type Ad = Autodiff<Flex, NoCheckpointing>;

/// The layer on tracked CPU tensors, with its backward registered; None when the tensors are
/// not on Burn's CPU backend with autodiff, or the shapes are not ours.
fn apply_autodiff(layer: Layer, x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>) -> Option<Tensor<4>> {
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
fn apply_plain(layer: Layer, x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>) -> Option<Tensor<4>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use burn::tensor::module::{conv_transpose2d, conv2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let (a, b): (Vec<f32>, Vec<f32>) = (a.try_into_vec_as().unwrap(), b.try_into_vec_as().unwrap());
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
    }

    fn burns(layer: Layer, x: Tensor<4>, w: Tensor<4>, b: Option<Tensor<1>>) -> Tensor<4> {
        match layer {
            Layer::Conv { stride } => conv2d(x, w, b, ConvOptions::new([stride, stride], [1, 1], [1, 1], 1)),
            Layer::Transposed => conv_transpose2d(x, w, b, ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1)),
        }
    }

    fn weight_shape(layer: Layer, c_in: usize, c_out: usize) -> [usize; 4] {
        match layer {
            Layer::Conv { .. } => [c_out, c_in, 4, 4],
            Layer::Transposed => [c_in, c_out, 4, 4],
        }
    }

    /// (layer, batch, c_in, c_out, h, w, bias): odd channel counts and sides, batch > 1, 1 px.
    fn cases() -> Vec<(Layer, usize, usize, usize, usize, usize, bool)> {
        let mut v = Vec::new();
        for layer in [Layer::Conv { stride: 2 }, Layer::Conv { stride: 1 }, Layer::Transposed] {
            for (batch, c_in, c_out, h, w, bias) in [(1, 3, 5, 8, 8, true), (2, 4, 3, 6, 10, false), (3, 2, 7, 2, 2, true), (1, 16, 8, 16, 16, false), (2, 5, 1, 4, 6, true)] {
                v.push((layer, batch, c_in, c_out, h, w, bias));
            }
            let (h, w) = if layer == Layer::Transposed { (1, 1) } else { (2, 2) };
            v.push((layer, 1, 9, 4, h, w, true));
        }
        v.push((Layer::Conv { stride: 1 }, 2, 3, 2, 5, 7, true));
        // Weight gradients long enough to be summed in shares across threads.
        v.push((Layer::Conv { stride: 2 }, 2, 16, 16, 128, 128, true));
        v.push((Layer::Transposed, 1, 16, 16, 64, 64, true));
        v.push((Layer::Transposed, 2, 3, 2, 5, 7, false));
        // The discriminator's last layer (one output channel, computed directly).
        v.push((Layer::Conv { stride: 1 }, 2, 64, 1, 31, 29, true));
        v
    }

    #[test]
    fn forwards_equal_burns() {
        let dev = Device::flex();
        for (layer, batch, c_in, c_out, h, w, bias) in cases() {
            let x = Tensor::<4>::random([batch, c_in, h, w], Distribution::Normal(0.0, 1.0), &dev);
            let wt = Tensor::<4>::random(weight_shape(layer, c_in, c_out), Distribution::Normal(0.0, 1.0), &dev);
            let b = bias.then(|| Tensor::<1>::random([c_out], Distribution::Normal(0.0, 1.0), &dev));
            let ours = apply(layer, &x, &wt, b.as_ref()).expect("a CPU tensor takes the hand-written path");
            let d = max_diff(ours, burns(layer, x, wt, b));
            assert!(d < 1e-4, "{layer:?} batch {batch} {c_in}->{c_out} at {h}x{w}: {d}");
        }
    }

    #[test]
    fn gradients_equal_burns() {
        let dev = Device::flex().autodiff();
        for (layer, batch, c_in, c_out, h, w, bias) in cases() {
            let x = Tensor::<4>::random([batch, c_in, h, w], Distribution::Normal(0.0, 1.0), &dev).require_grad();
            let wt = Tensor::<4>::random(weight_shape(layer, c_in, c_out), Distribution::Normal(0.0, 1.0), &dev).require_grad();
            let b = bias.then(|| Tensor::<1>::random([c_out], Distribution::Normal(0.0, 1.0), &dev).require_grad());
            let ours = apply(layer, &x, &wt, b.as_ref()).expect("a CPU tensor takes the hand-written path");
            let reference = burns(layer, x.clone(), wt.clone(), b.clone());
            assert!(max_diff(ours.clone(), reference.clone()) < 1e-4);
            // A loss whose output gradient differs per element.
            let target = Tensor::<4>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &dev);
            let loss = |y: Tensor<4>| (y - target.clone()).powf_scalar(2.0).sum();
            let (g_ours, g_burn) = (loss(ours).backward(), loss(reference).backward());
            let what = format!("{layer:?} batch {batch} {c_in}->{c_out} at {h}x{w}");
            let d = max_diff(x.grad(&g_ours).unwrap(), x.grad(&g_burn).unwrap());
            assert!(d < 1e-4, "input gradient, {what}: {d}");
            let d = max_diff(wt.grad(&g_ours).unwrap(), wt.grad(&g_burn).unwrap());
            assert!(d < 1e-4, "weight gradient, {what}: {d}");
            if let Some(b) = &b {
                let d = max_diff(b.grad(&g_ours).unwrap(), b.grad(&g_burn).unwrap());
                assert!(d < 1e-4, "bias gradient, {what}: {d}");
            }
        }
    }

    #[test]
    fn only_the_asked_gradients_are_computed_and_untracked_inputs_stay_untracked() {
        let dev = Device::flex().autodiff();
        // The generator's first layer: data without a gradient, a weight with one.
        let x = Tensor::<4>::random([1, 3, 8, 8], Distribution::Normal(0.0, 1.0), &dev);
        let wt = Tensor::<4>::random([4, 3, 4, 4], Distribution::Normal(0.0, 1.0), &dev).require_grad();
        let y = apply(Layer::Conv { stride: 2 }, &x, &wt, None).unwrap();
        let g = y.sum().backward();
        assert!(x.grad(&g).is_none());
        assert_eq!(wt.grad(&g).unwrap().dims(), [4, 3, 4, 4]);
        // Nothing tracked: no graph, same values as without autodiff.
        let w2 = Tensor::<4>::random([4, 3, 4, 4], Distribution::Normal(0.0, 1.0), &dev);
        assert!(!apply(Layer::Conv { stride: 2 }, &x, &w2, None).unwrap().is_require_grad());
    }

    #[test]
    fn results_are_the_same_run_to_run() {
        let dev = Device::flex().autodiff();
        // Two threads whatever the machine: the 16-channel case at 128 px then takes the blocked
        // products and the blocked scatter (8 blocks of 8 rows), the 64-channel one the whole
        // products.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for (batch, c, side, c_out) in [(2, 64, 32, 128), (1, 16, 128, 16)] {
            let x = Tensor::<4>::random([batch, c, side, side], Distribution::Normal(0.0, 1.0), &dev).require_grad();
            let wt = Tensor::<4>::random([c_out, c, 4, 4], Distribution::Normal(0.0, 1.0), &dev).require_grad();
            let run = || {
                pool.install(|| {
                    let y = apply(Layer::Conv { stride: 2 }, &x, &wt, None).unwrap();
                    let z = apply(Layer::Transposed, &y, &wt, None).unwrap();
                    let g = (z.clone() * z).sum().backward();
                    let (a, b): (Vec<f32>, Vec<f32>) = (x.grad(&g).unwrap().try_into_vec_as().unwrap(), wt.grad(&g).unwrap().try_into_vec_as().unwrap());
                    (a, b)
                })
            };
            assert!(run() == run(), "gradients differ between two runs ({c} channels at {side} px)");
        }
    }


    #[test]
    fn products_equal_the_textbook_sum_whichever_way_they_are_split() {
        let (m, n, k) = (8, 16, 40_000);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5).collect();
        let mut ours = vec![1.0f32; m * n];
        // b read transposed from a [n, k] buffer, accumulating onto ones.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        matmul(m, n, k, &mut ours, Mat::rows(&a, k), Mat::transposed(&bt, k), true);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 1.0 + (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum::<f64>();
                assert!((ours[i * n + j] as f64 - want).abs() < 1e-2, "({i}, {j}): {} vs {want}", ours[i * n + j]);
            }
        }
    }

    #[test]
    fn the_stride_2_gathers_equal_the_general_ones() {
        for (c, h, w) in [(1, 2, 2), (3, 4, 6), (2, 8, 2), (5, 10, 12)] {
            let x: Vec<f32> = (0..c * h * w).map(|i| (i as f32 * 0.37).sin()).collect();
            let p = conv_out(h, 2) * conv_out(w, 2);
            let (mut a, mut b) = (vec![9.0f32; c * TAPS * p], vec![-9.0f32; c * TAPS * p]);
            let mut taps = Taps::new(&x, c, h, w, 2);
            assert!(taps.parity.is_some());
            taps.gather_all(&mut a);
            taps.parity = None;
            taps.gather_all(&mut b);
            assert_eq!(a, b, "im2col {c}x{h}x{w}");
            let cols: Vec<f32> = (0..c * TAPS * p).map(|i| (i as f32 * 0.11).cos()).collect();
            let (mut a, mut b) = (x.clone(), x.clone());
            col2im_s2(&cols, c, h, w, &mut a);
            col2im_any(&cols, c, h, w, 2, &mut b);
            let d = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(d < 1e-5, "col2im {c}x{h}x{w}: {d}");
        }
    }

    #[test]
    fn products_a_block_of_rows_at_a_time_equal_the_whole_ones() {
        // Odd sides and strides 1 and 2; blocks of 1, 2 and 3 rows (the last one short).
        for (c, h, w, stride) in [(3, 8, 6, 2), (2, 7, 5, 1), (4, 10, 4, 2), (1, 2, 2, 2)] {
            let x: Vec<f32> = (0..c * h * w).map(|i| (i as f32 * 0.37).sin()).collect();
            let taps = Taps::new(&x, c, h, w, stride);
            let (k, p) = (taps.rows(), taps.pixels());
            let m = 5;
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.21).cos()).collect();
            let d: Vec<f32> = (0..m * p).map(|i| (i as f32 * 0.13).sin()).collect();
            let mut want = vec![0.0f32; m * p];
            matmul(m, p, k, &mut want, Mat::rows(&a, k), Mat::rows(taps.whole(), p), false);
            let mut want_t = vec![1.0f32; m * k];
            matmul(m, k, p, &mut want_t, Mat::rows(&d, p), Mat::transposed(taps.whole(), p), true);
            for rows in [1, 2, 3] {
                let mut got = vec![f32::NAN; m * p];
                taps.product_blocked(m, Mat::rows(&a, k), &mut got, rows);
                let diff = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
                assert!(diff < 1e-5, "product, {c}x{h}x{w} stride {stride}, {rows} rows: {diff}");
                for accumulate in [false, true] {
                    let mut got_t = vec![1.0f32; m * k];
                    taps.product_t_blocked(m, &d, &mut got_t, accumulate, rows);
                    let offset = if accumulate { 0.0 } else { 1.0 };
                    let diff = got_t.iter().zip(&want_t).map(|(g, w)| (g + offset - w).abs()).fold(0.0f32, f32::max);
                    assert!(diff < 1e-5, "transposed product, {c}x{h}x{w} stride {stride}, {rows} rows, accumulate {accumulate}: {diff}");
                }
            }
        }
    }

    #[test]
    fn scattered_products_a_block_of_rows_at_a_time_or_column_by_column_equal_the_whole_ones() {
        // (channels, side h, side w, inner k): blocks of 2 and 3 rows (the last one short);
        // 2 x 2 images have few enough pixels for the column-by-column product.
        for (c, h, w, k) in [(3, 8, 6, 5), (2, 12, 4, 7), (1, 10, 10, 3), (4, 2, 2, 6)] {
            let (ho, wo) = (h / 2, w / 2);
            let (m, p) = (c * TAPS, ho * wo);
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.21).cos()).collect();
            let b: Vec<f32> = (0..k * p).map(|i| (i as f32 * 0.13).sin()).collect();
            let start: Vec<f32> = (0..c * h * w).map(|i| (i as f32 * 0.07).cos()).collect();
            let mut cols = vec![0.0f32; m * p];
            matmul(m, p, k, &mut cols, Mat::transposed(&a, m), Mat::rows(&b, p), false);
            let mut want = start.clone();
            col2im(&cols, c, h, w, 2, &mut want);
            let max_diff = |got: &[f32]| got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
            for rows in [2, 3] {
                let mut got = start.clone();
                scatter_blocked(c, h, w, k, Mat::transposed(&a, m), &b, &mut got, rows);
                assert!(max_diff(&got) < 1e-5, "blocked, {c}x{h}x{w}, k {k}, {rows} rows: {}", max_diff(&got));
            }
            let mut got = start.clone();
            product_col2im(c, h, w, 2, k, Mat::transposed(&a, m), &b, &mut got);
            assert!(max_diff(&got) < 1e-5, "{c}x{h}x{w}, k {k}: {}", max_diff(&got));
        }
    }

    #[test]
    fn valid_columns_are_those_inside_the_row() {
        for stride in [1, 2] {
            for w in 1..12 {
                let wo = conv_out(w, stride);
                for kx in 0..K {
                    let want: Vec<usize> = (0..wo).filter(|ox| (1..=w as isize).contains(&((ox * stride + kx) as isize))).collect();
                    let got: Vec<usize> = valid_columns(kx, stride, w, wo).collect();
                    assert_eq!(got, want, "stride {stride}, w {w}, kx {kx}");
                }
            }
        }
    }

    #[test]
    fn shapes_that_are_not_ours_are_left_to_burn() {
        assert!(Layer::Conv { stride: 2 }.shapes([1, 3, 7, 8], [4, 3, 4, 4]).is_none(), "odd side at stride 2");
        assert!(Layer::Conv { stride: 2 }.shapes([1, 3, 8, 8], [4, 3, 3, 3]).is_none(), "3x3 kernel");
        assert!(Layer::Conv { stride: 2 }.shapes([1, 3, 8, 8], [4, 2, 4, 4]).is_none(), "channels");
        assert!(Layer::Transposed.shapes([1, 3, 8, 8], [4, 3, 4, 4]).is_none(), "transposed channels");
        assert_eq!(Layer::Conv { stride: 1 }.shapes([1, 3, 8, 8], [4, 3, 4, 4]).map(|s| (s.ho, s.wo)), Some((7, 7)));
    }
}
