//! The geometry of the 4x4 layers (padding 1): which layer, its output side, which output
//! columns a tap reads inside the input, where a stride-2 tap lands in the input's parity
//! planes, and the shapes of one call. No arithmetic on values here.

use super::simd::deinterleave;

/// The layers: a 4x4 kernel with padding 1, as a convolution of stride 1 or 2, or the
/// transpose of the stride-2 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Conv { stride: usize },
    Transposed,
}

pub(super) const K: usize = 4;
pub(super) const TAPS: usize = K * K;

/// Output side of a 4x4 convolution with padding 1.
pub(super) fn conv_out(side: usize, stride: usize) -> usize {
    (side + 2).saturating_sub(K) / stride + 1
}

/// The output columns `ox` of a tap `kx` that read inside a row of `w` pixels
/// (`ox * stride + kx - 1` in `[0, w)`), as a range.
pub(super) fn valid_columns(kx: usize, stride: usize, w: usize, wo: usize) -> std::ops::Range<usize> {
    // ox * stride + kx >= 1 and ox * stride + kx <= w.
    let lo = if kx >= 1 { 0 } else { 1usize.div_ceil(stride) };
    let hi = if w >= kx { ((w - kx) / stride + 1).min(wo) } else { 0 };
    lo.min(hi)..hi
}

/// Where tap `k` of output index `o` reads at stride 2 (padding 1): input `2 (o + d) + parity`,
/// as (d, parity). Row 2 o + k - 1.
pub(super) fn s2_tap(k: usize) -> (isize, usize) {
    match k {
        0 => (-1, 1),
        1 => (0, 0),
        2 => (0, 1),
        _ => (1, 0),
    }
}

/// The outputs `o` in `0..n_out` whose input `o + d` lies in `0..n_half`, as a range.
pub(super) fn s2_valid(d: isize, n_out: usize, n_half: usize) -> std::ops::Range<usize> {
    let lo = (-d).max(0) as usize;
    let hi = ((n_half as isize - d).max(0) as usize).min(n_out);
    lo.min(hi)..hi
}

/// Splits one channel (`[h, w]`, even sides) into its four parity planes (`[4, h / 2, w / 2]`,
/// plane `py * 2 + px` holding input `(2 a + py, 2 b + px)`).
pub(super) fn split_parity(plane: &[f32], h: usize, w: usize, parity: &mut [f32]) {
    let (hh, wh) = (h / 2, w / 2);
    let (even_rows, odd_rows) = parity.split_at_mut(2 * hh * wh);
    for iy in 0..h {
        let (a, py) = (iy / 2, iy % 2);
        let rows = if py == 0 { &mut *even_rows } else { &mut *odd_rows };
        let (even, odd) = rows.split_at_mut(hh * wh);
        deinterleave(&mut even[a * wh..(a + 1) * wh], &mut odd[a * wh..(a + 1) * wh], &plane[iy * w..(iy + 1) * w]);
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
