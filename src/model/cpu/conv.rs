//! The convolutions on plain slices: forward and backward (input, weight and bias gradients)
//! of a layer as gathers, products and scatters. Each is tested against Burn's kernels to 1e-4
//! (see `tests`).

use rayon::prelude::*;

use super::gather::*;
use super::gemm::*;
use super::geometry::*;
use super::one_channel;
use super::scatter::*;

/// Adds `bias[o]` to every value of row `o` of `y` (`[channels, pixels]` blocks, batch-major).
pub(super) fn add_bias(y: &mut [f32], bias: &[f32], pixels: usize) {
    let channels = bias.len();
    y.par_chunks_mut(pixels).enumerate().for_each(|(i, row)| {
        let b = bias[i % channels];
        row.iter_mut().for_each(|v| *v += b);
    });
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
