//! The CPU kernels against Burn's (forward and gradients to 1e-4), the blocked and whole paths
//! against each other, and run-to-run determinism.

use burn::prelude::*;

use super::autodiff::*;
use super::gather::*;
use super::gemm::*;
use super::geometry::*;
use super::scatter::*;
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
    dev.seed(7);
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
    dev.seed(11);
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
        let ours_y = ours.clone().detach();
        let (g_ours, g_burn) = (loss(ours).backward(), loss(reference).backward());
        let what = format!("{layer:?} batch {batch} {c_in}->{c_out} at {h}x{w}");
        let d = max_diff(x.grad(&g_ours).unwrap(), x.grad(&g_burn).unwrap());
        assert!(d < 1e-4, "input gradient, {what}: {d}");
        let d = max_diff(wt.grad(&g_ours).unwrap(), wt.grad(&g_burn).unwrap());
        assert!(d < 1e-4, "weight gradient, {what}: {d}");
        if let Some(b) = &b {
            // A bias gradient is one sum of many output gradients that may nearly cancel: its
            // rounding is measured against the sum of their sizes, not against the result.
            let dy = (ours_y - target).abs().mul_scalar(2.0);
            let sizes: Vec<f32> = dy.sum_dim(0).sum_dim(2).sum_dim(3).reshape([c_out]).try_into_vec_as().unwrap();
            let (a, r): (Vec<f32>, Vec<f32>) = (b.grad(&g_ours).unwrap().try_into_vec_as().unwrap(), b.grad(&g_burn).unwrap().try_into_vec_as().unwrap());
            let d = a.iter().zip(&r).zip(&sizes).map(|((x, y), s)| (x - y).abs() / s.max(1.0)).fold(0.0, f32::max);
            assert!(d < 1e-5, "bias gradient, {what}: {d}");
        }
    }
}

#[test]
fn only_the_asked_gradients_are_computed_and_untracked_inputs_stay_untracked() {
    let dev = Device::flex().autodiff();
    dev.seed(7);
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
    dev.seed(7);
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
