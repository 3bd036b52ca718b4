//! Runs a hot loop compiled for AVX2 and FMA where the CPU has them (checked once per call, by
//! the standard library's cached detection), and for baseline x86-64 otherwise: the crate is
//! built for any x86-64, so without this the element-wise CPU kernels use 4-wide SSE only.

/// Declares `fn $name(args) body` twice over: as written, and compiled with AVX2 + FMA enabled,
/// and calls the second where the CPU supports it. The arguments must be plain values or
/// slices (no closures).
macro_rules! with_avx2 {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn inner($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                /// # Safety
                /// The CPU must support AVX2 and FMA.
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    inner($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports AVX2 and FMA (detected just above).
                    unsafe { avx2($($arg),*) };
                    return;
                }
            }
            inner($($arg),*)
        }
    };
}

pub(crate) use with_avx2;

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

#[cfg(test)]
mod tests {
    with_avx2! {
        fn scale(out: &mut [f32], x: &[f32], a: f32) {
            for (o, v) in out.iter_mut().zip(x) {
                *o = v * a;
            }
        }
    }

    #[test]
    fn the_dispatched_loop_computes_what_it_says() {
        let x: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let mut out = vec![0.0; 37];
        scale(&mut out, &x, 0.5);
        assert!(out.iter().zip(&x).all(|(o, v)| *o == v * 0.5));
    }
}
