//! Runs a hot loop compiled for AVX2 and FMA where the CPU has them (checked once per call, by
//! the standard library's cached detection), and for baseline x86-64 otherwise: the crate is
//! built for any x86-64, so without this the element-wise CPU kernels use 4-wide SSE only.

pub(crate) use crate::simd::with_avx2;

// The element-wise loops the gathers and scatters share.

with_avx2! {
    /// `even[i] = line[2 i]`, `odd[i] = line[2 i + 1]`.
    pub(super) fn deinterleave(even: &mut [f32], odd: &mut [f32], line: &[f32]) {
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(line.chunks_exact(2)) {
            *e = pair[0];
            *o = pair[1];
        }
    }
}

with_avx2! {
    /// `dst += src`.
    pub(super) fn add_into(dst: &mut [f32], src: &[f32]) {
        for (o, v) in dst.iter_mut().zip(src) {
            *o += v;
        }
    }
}

with_avx2! {
    /// `line[2 i] += even[i]`, `line[2 i + 1] += odd[i]`.
    pub(super) fn interleave_add(line: &mut [f32], even: &[f32], odd: &[f32]) {
        for ((pair, e), o) in line.chunks_exact_mut(2).zip(even).zip(odd) {
            pair[0] += e;
            pair[1] += o;
        }
    }
}
