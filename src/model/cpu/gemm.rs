//! Matrix products through the `gemm` crate on checked operands ([`Mat`]), sums of per-thread
//! parts added in a fixed order (so results do not depend on timing), and the per-thread
//! scratch buffer the gathers and blocks reuse. `gemm_raw` is the one call into gemm's unsafe
//! API; its callers check the operands' shapes and strides first ([`check_operand`]) and give
//! each thread a disjoint part of the output ([`SendPtr`]).

use rayon::prelude::*;

/// A matrix as gemm reads it: data and (row, column) strides.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    pub(super) data: &'a [f32],
    pub(super) rs: isize,
    pub(super) cs: isize,
}

impl<'a> Mat<'a> {
    /// Row-major `[rows, cols]`.
    pub(super) fn rows(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat { data, rs: cols as isize, cs: 1 }
    }
    /// The transpose of a row-major `[rows, cols]`.
    pub(super) fn transposed(data: &'a [f32], cols: usize) -> Mat<'a> {
        Mat { data, rs: 1, cs: cols as isize }
    }
}

/// Panics unless `a` holds a `[rows, cols]` matrix with its strides (an empty one passes).
pub(super) fn check_operand(a: Mat, rows: usize, cols: usize) {
    let last = (rows as isize - 1) * a.rs + (cols as isize - 1) * a.cs;
    assert!(a.rs >= 0 && a.cs >= 0 && last < a.data.len() as isize, "matmul operand too small");
}

/// `dst` (row-major `[m, n]`) = `a` (`[m, k]`) · `b` (`[k, n]`), or `dst +=` with `accumulate`.
pub(super) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
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

/// `dst = Σ parts` (or `dst += Σ parts`), each value summed in the parts' order.
pub(super) fn add_in_order(dst: &mut [f32], parts: &[Vec<f32>], accumulate: bool) {
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
pub(super) fn gemm_checked(m: usize, n: usize, k: usize, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool, parallelism: gemm::Parallelism) {
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
pub(super) struct SendPtr(pub(super) *mut f32);

// SAFETY: used only to hand each block the disjoint part of one output it writes (see
// `Taps::product_blocked`, and `scatter_blocked`, whose blocks of one phase write disjoint rows).
unsafe impl Send for SendPtr {}
// SAFETY: as for Send: shared by the blocks of one call, each dereferencing its own part only.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    pub(super) fn at(self, offset: usize) -> *mut f32 {
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
pub(super) unsafe fn gemm_raw(m: usize, n: usize, k: usize, dst: *mut f32, dst_strides: [isize; 2], a: Mat, b: Mat, accumulate: bool, parallelism: gemm::Parallelism) {
    let [rs, cs] = dst_strides;
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(m, n, k, dst, cs, rs, accumulate, a.data.as_ptr(), a.cs, a.rs, b.data.as_ptr(), b.cs, b.rs, 1.0f32, 1.0f32, false, false, false, parallelism);
    }
}

/// A buffer of the calling thread's for gathered taps and blocks of products, kept between calls: the
/// same few sizes come back every step, and a fresh buffer would be zeroed first (its values
/// are all overwritten before they are read). It only grows: shrinking it for a small layer
/// and growing it back for the next large one zeroed the difference every time.
pub(super) struct Scratch(pub(super) Vec<f32>, pub(super) usize);

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Scratch {
    pub(super) fn take(len: usize) -> Scratch {
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
