//! Runs a hot loop compiled for AVX2 and FMA where the CPU has them (checked once per call, by
//! the standard library's cached detection), and for baseline x86-64 otherwise: the crate is
//! built for any x86-64, so without this the element-wise loops use SSE only. Used by the CPU
//! kernels of the model (`model::cpu`) and the image-quality filters (`indices::metrics`).
//! Floating-point results are the same on both paths: Rust never fuses a multiply and an add
//! into an FMA unless asked (`mul_add`).

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
