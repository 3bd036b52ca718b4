//! Speckle filters on linear power: boxcar, Lee (1980) and Refined Lee (Lee 1981) as ESA SNAP
//! computes them, and the equivalent number of looks. NaN marks no data.

use rayon::prelude::*;

/// Speckle filters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "filter")]
pub enum SpeckleFilter {
    None,
    /// Mean over a size x size window.
    Boxcar { size: usize },
    /// Lee (1980) with a size x size window and the number of looks of the product.
    Lee { size: usize, looks: f64 },
    /// Refined Lee (Lee 1981), 7 x 7.
    RefinedLee,
}

impl SpeckleFilter {
    /// Window side of the boxcar and Lee presets, pixels.
    pub const PRESET_SIZE: usize = 7;
    /// Number of looks of the Lee preset: Earth-observation RTC products are multilooked to
    /// about 4 looks.
    pub const PRESET_LOOKS: f64 = 4.0;

    /// The boxcar preset: the mean over a 7 x 7 window.
    pub fn boxcar() -> SpeckleFilter {
        SpeckleFilter::Boxcar { size: Self::PRESET_SIZE }
    }

    /// The Lee preset: 7 x 7 window, 4 looks (Earth-observation RTC products are multilooked
    /// to about 4 looks).
    pub fn lee() -> SpeckleFilter {
        SpeckleFilter::Lee { size: Self::PRESET_SIZE, looks: Self::PRESET_LOOKS }
    }

    /// The Refined Lee preset (7 x 7, the research default).
    pub fn refined_lee() -> SpeckleFilter {
        SpeckleFilter::RefinedLee
    }
}

/// Applies a speckle filter to linear power. NaN marks no data: it is left out of every window
/// and stays NaN.
pub fn speckle_filter(img: &[f32], width: usize, height: usize, filter: SpeckleFilter) -> Vec<f32> {
    match filter {
        SpeckleFilter::None => img.to_vec(),
        SpeckleFilter::Boxcar { size } => boxcar(img, width, height, size),
        SpeckleFilter::Lee { size, looks } => lee(img, width, height, size, looks),
        SpeckleFilter::RefinedLee => refined_lee(img, width, height),
    }
}

/// Calls `f(x, y)` for every pixel, rows in parallel.
fn per_pixel(width: usize, height: usize, f: impl Fn(usize, usize) -> f32 + Sync) -> Vec<f32> {
    (0..height).into_par_iter().flat_map_iter(|y| (0..width).map(move |x| (x, y)).map(|(x, y)| f(x, y)).collect::<Vec<_>>()).collect()
}

/// Valid values of the size x size window around (x, y).
fn window(img: &[f32], width: usize, height: usize, x: usize, y: usize, half: usize, out: &mut Vec<f64>) {
    out.clear();
    for yy in y.saturating_sub(half)..(y + half + 1).min(height) {
        for xx in x.saturating_sub(half)..(x + half + 1).min(width) {
            let v = img[yy * width + xx];
            if !v.is_nan() {
                out.push(v as f64);
            }
        }
    }
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    // Sample variance, as SNAP computes it.
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var)
}

pub fn boxcar(img: &[f32], width: usize, height: usize, size: usize) -> Vec<f32> {
    let half = size / 2;
    per_pixel(width, height, |x, y| {
        if img[y * width + x].is_nan() {
            return f32::NAN;
        }
        let mut w = Vec::with_capacity(size * size);
        window(img, width, height, x, y, half, &mut w);
        mean_var(&w).0 as f32
    })
}

/// Lee (1980): mean + b (centre - mean), b = max(0, 1 - Cu^2 / Ci^2), with Cu = 1/sqrt(looks)
/// the speckle's coefficient of variation and Ci the window's.
pub fn lee(img: &[f32], width: usize, height: usize, size: usize, looks: f64) -> Vec<f32> {
    let half = size / 2;
    let cu2 = 1.0 / looks.max(1e-6);
    per_pixel(width, height, |x, y| {
        let centre = img[y * width + x];
        if centre.is_nan() {
            return f32::NAN;
        }
        let mut w = Vec::with_capacity(size * size);
        window(img, width, height, x, y, half, &mut w);
        let (mean, var) = mean_var(&w);
        if mean <= 0.0 || var <= 0.0 {
            return mean as f32;
        }
        let ci2 = var / (mean * mean);
        if ci2 <= cu2 {
            return mean as f32;
        }
        let b = 1.0 - cu2 / ci2;
        (mean + b * (centre as f64 - mean)) as f32
    })
}

/// The 28 pixels of the 7 x 7 window on the centre's side of an edge, for each of the 8
/// directions: 0/4 right/left half, 2/6 upper/lower half, 1/5 and 3/7 the diagonal halves.
const fn edge_window(d: usize, row: usize, col: usize) -> bool {
    match d {
        0 => col >= 3,
        1 => col >= row,
        2 => row <= 3,
        3 => col + row <= 6,
        4 => col <= 3,
        5 => col <= row,
        6 => row >= 3,
        _ => col + row >= 6,
    }
}

/// [`edge_window`] as a table: direction, then row-major position in the 7 x 7 window.
const EDGE_WINDOWS: [[bool; 49]; 8] = {
    let mut t = [[false; 49]; 8];
    let mut d = 0;
    while d < 8 {
        let mut k = 0;
        while k < 49 {
            t[d][k] = edge_window(d, k / 7, k % 7);
            k += 1;
        }
        d += 1;
    }
    t
};

/// Refined Lee (Lee 1981, "Refined filtering of image noise using local statistics"), in the
/// form of ESA SNAP's Speckle-Filter operator (from NEST's SpeckleFilterOp): a 7 x 7 window
/// split into nine 3 x 3 sub-windows (stride 2); the largest of four gradients between their
/// means picks the edge direction; of the two halves along that edge, the one whose mean is
/// closer to the centre's gives the 28 pixels whose mean and variance drive the filter; the
/// noise variance is the mean of the five smallest sub-window variances. Windows with missing
/// pixels use plain local statistics over the valid ones. Unlike SNAP we do not skip the edge
/// step below an absolute variance threshold (SNAP's `edgeThreshold` is scaled for amplitude
/// DNs and would disable it for calibrated power). Every sum runs in row-major order in f64, as
/// the filter was first written (a test keeps that one and checks every bit): each 3 x 3
/// sub-window's mean and variance once per strip of rows (every pixel's window shares them
/// with its neighbours'), the 28 edge pixels per pixel; strips in parallel, pixels within 3 of
/// the grid's edge the general way.
pub fn refined_lee(img: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; width * height];
    if width == 0 {
        return out;
    }
    // Offsets of each direction's 28 pixels from the window's top-left corner, row-major.
    let mut offsets = [[0usize; 28]; 8];
    for (d, o) in offsets.iter_mut().enumerate() {
        let kept = (0..49).filter(|k| EDGE_WINDOWS[d][*k]).map(|k| (k / 7) * width + k % 7);
        for (slot, off) in o.iter_mut().zip(kept) {
            *slot = off;
        }
    }
    out.par_chunks_mut(LEE_STRIP * width).enumerate().for_each(|(k, chunk)| {
        let (y0, rows) = (k * LEE_STRIP, chunk.len() / width);
        // 3 x 3 statistics centred on rows y0 - 2 .. y0 + rows + 2 (within the grid).
        let (c0, c1) = (y0.saturating_sub(2).max(1), (y0 + rows + 2).min(height.saturating_sub(1)));
        let stats = SubWindows::new(img, width, c0..c1.max(c0));
        for (r, row) in chunk.chunks_mut(width).enumerate() {
            let y = y0 + r;
            let inside = if y >= 3 && y + 3 < height && width >= 7 { 3..width - 3 } else { 0..0 };
            for (x, v) in row.iter_mut().enumerate() {
                *v = if inside.contains(&x) {
                    refined_lee_inside(img, width, height, x, y, &stats, c0, &offsets)
                } else {
                    refined_lee_at(img, width, height, x, y)
                };
            }
        }
    });
    out
}

/// Rows of one strip of [`refined_lee`].
const LEE_STRIP: usize = 32;

/// The 3 x 3 windows' statistics centred on every pixel of some rows, from running sums in
/// f64: mean, sample variance (of complete windows; 0 where rounding makes it negative) and
/// whether all nine pixels are valid. Columns 0 and width - 1 are never the centre of an inside
/// pixel's sub-window.
struct SubWindows {
    mean: Vec<f64>,
    var: Vec<f64>,
    complete: Vec<bool>,
}

impl SubWindows {
    fn new(img: &[f32], width: usize, rows: std::ops::Range<usize>) -> SubWindows {
        let n = rows.len() * width;
        let mut s = SubWindows { mean: vec![f64::NAN; n], var: vec![f64::NAN; n], complete: vec![false; n] };
        if rows.is_empty() || width < 3 {
            return s;
        }
        // Sums of three neighbours along each row (value, square, valid count) for the rows
        // rows.start - 1 ..= rows.end, then of three rows.
        let lines = rows.start - 1..rows.end + 1;
        let mut h = vec![[0.0f64; 3]; lines.len() * width];
        for (k, y) in lines.clone().enumerate() {
            let line = &img[y * width..(y + 1) * width];
            let sums = &mut h[k * width..(k + 1) * width];
            for (x, out) in sums.iter_mut().enumerate().take(width - 1).skip(1) {
                let mut acc = [0.0f64; 3];
                for p in &line[x - 1..x + 2] {
                    let (v, ok) = if p.is_nan() { (0.0, 0.0) } else { (*p as f64, 1.0) };
                    acc[0] += v;
                    acc[1] += v * v;
                    acc[2] += ok;
                }
                *out = acc;
            }
        }
        for k in 0..rows.len() {
            let (a, b, c) = (&h[k * width..(k + 1) * width], &h[(k + 1) * width..(k + 2) * width], &h[(k + 2) * width..(k + 3) * width]);
            for x in 1..width - 1 {
                let sum = a[x][0] + b[x][0] + c[x][0];
                let sq = a[x][1] + b[x][1] + c[x][1];
                let count = a[x][2] + b[x][2] + c[x][2];
                let i = k * width + x;
                s.mean[i] = sum / 9.0;
                s.var[i] = ((sq - sum * sum / 9.0) / 8.0).max(0.0);
                s.complete[i] = count == 9.0;
            }
        }
        s
    }
}

/// The nine values in ascending order (a sorting network of 25 compare-exchanges, unrolled so
/// the values stay in registers; none may be NaN).
fn sort9(v: &mut [f64; 9]) {
    macro_rules! exchange {
        ($($a:literal $b:literal),*) => {$(
            let (x, y) = (v[$a], v[$b]);
            v[$a] = if y < x { y } else { x };
            v[$b] = if y < x { x } else { y };
        )*};
    }
    exchange!(0 3, 1 7, 2 5, 4 8, 0 7, 2 4, 3 8, 5 6, 0 2, 1 3, 4 5, 7 8, 1 4, 3 6, 5 7, 0 1, 2 4, 3 5, 6 8, 2 3, 4 5, 6 7, 1 2, 3 4, 5 6);
}

/// Mean and sample variance of 28 values, summed in four interleaved partial sums.
fn mean_var28(v: &[f64; 28]) -> (f64, f64) {
    let (mut s, mut q) = ([0.0f64; 4], [0.0f64; 4]);
    for c in v.chunks_exact(4) {
        for k in 0..4 {
            s[k] += c[k];
        }
    }
    let mean = ((s[0] + s[1]) + (s[2] + s[3])) / 28.0;
    for c in v.chunks_exact(4) {
        for k in 0..4 {
            q[k] += (c[k] - mean) * (c[k] - mean);
        }
    }
    (mean, ((q[0] + q[1]) + (q[2] + q[3])) / 27.0)
}

/// [`refined_lee`] at (x, y) at least 3 pixels inside the grid: from the strip's sub-window
/// statistics (`stats`, centred rows from `c0`) and each direction's pixel offsets where the
/// whole 7 x 7 window is valid, the general way ([`refined_lee_at`]) elsewhere.
#[allow(clippy::too_many_arguments)]
fn refined_lee_inside(img: &[f32], width: usize, height: usize, x: usize, y: usize, stats: &SubWindows, c0: usize, offsets: &[[usize; 28]; 8]) -> f32 {
    let centre = img[y * width + x];
    if centre.is_nan() {
        return f32::NAN;
    }
    let mut means = [0.0f64; 9];
    let mut vars = [0.0f64; 9];
    let mut complete = true;
    for j in 0..3 {
        let base = (y - 2 + 2 * j - c0) * width + x - 2;
        for i in 0..3 {
            means[3 * j + i] = stats.mean[base + 2 * i];
            vars[3 * j + i] = stats.var[base + 2 * i];
            complete &= stats.complete[base + 2 * i];
        }
    }
    if !complete {
        return refined_lee_at(img, width, height, x, y);
    }
    // The five smallest variances, then the edge's half of the window.
    sort9(&mut vars);
    let noise_var = (vars[0] + vars[1] + vars[2] + vars[3] + vars[4]) / 5.0;
    let top_left = (y - 3) * width + x - 3;
    let window = &img[top_left..top_left + 6 * width + 7];
    let mut pixels = [0.0f64; 28];
    for (p, off) in pixels.iter_mut().zip(&offsets[edge_side(&means)]) {
        *p = window[*off] as f64;
    }
    let (mean, var) = mean_var28(&pixels);
    if !(var + noise_var > 0.0) {
        return mean as f32;
    }
    let k = var / (var + noise_var);
    (mean + k * (centre as f64 - mean)) as f32
}

/// [`edge_direction`] of row-major sub-window means, without branches.
fn edge_side(m: &[f64; 9]) -> usize {
    // Per gradient: the two sub-windows across the edge, and the direction towards each.
    const ACROSS: [(usize, usize, usize, usize); 4] = [(3, 5, 4, 0), (2, 6, 1, 5), (1, 7, 2, 6), (0, 8, 3, 7)];
    let (mut best, mut largest) = (0, (m[3] - m[5]).abs());
    for (k, (a, b, _, _)) in ACROSS.iter().enumerate().skip(1) {
        let g = (m[*a] - m[*b]).abs();
        let larger = g > largest;
        best = if larger { k } else { best };
        largest = if larger { g } else { largest };
    }
    let (a, b, towards_a, towards_b) = ACROSS[best];
    let c = m[4];
    if (m[a] - c).abs() < (c - m[b]).abs() { towards_a } else { towards_b }
}

/// Of the four gradients between the sub-windows' means the largest picks the edge; of its two
/// sides, the one the centre resembles: the direction of [`EDGE_WINDOWS`].
fn edge_direction(m: &[[f64; 3]; 3]) -> usize {
    let gradients = [(m[1][0] - m[1][2]).abs(), (m[0][2] - m[2][0]).abs(), (m[0][1] - m[2][1]).abs(), (m[0][0] - m[2][2]).abs()];
    let mut direction = 0;
    for (k, g) in gradients.iter().enumerate() {
        if *g > gradients[direction] {
            direction = k;
        }
    }
    let c = m[1][1];
    match direction {
        0 => if (m[1][0] - c).abs() < (c - m[1][2]).abs() { 4 } else { 0 },
        1 => if (m[0][2] - c).abs() < (c - m[2][0]).abs() { 1 } else { 5 },
        2 => if (m[0][1] - c).abs() < (c - m[2][1]).abs() { 2 } else { 6 },
        _ => if (m[0][0] - c).abs() < (c - m[2][2]).abs() { 3 } else { 7 },
    }
}

/// [`refined_lee`]'s value at (x, y), anywhere on the grid.
fn refined_lee_at(img: &[f32], width: usize, height: usize, x: usize, y: usize) -> f32 {
    let centre = img[y * width + x];
    if centre.is_nan() {
        return f32::NAN;
    }
    let mut n = [[f64::NAN; 7]; 7];
    let mut valid = 0;
    let inside = x >= 3 && y >= 3 && x + 3 < width && y + 3 < height;
    for (r, row) in n.iter_mut().enumerate() {
        if inside {
            let base = (y + r - 3) * width + x - 3;
            for (v, p) in row.iter_mut().zip(&img[base..base + 7]) {
                if !p.is_nan() {
                    *v = *p as f64;
                    valid += 1;
                }
            }
            continue;
        }
        for (c, v) in row.iter_mut().enumerate() {
            let (yy, xx) = (y as isize + r as isize - 3, x as isize + c as isize - 3);
            if yy >= 0 && xx >= 0 && (yy as usize) < height && (xx as usize) < width {
                let p = img[yy as usize * width + xx as usize];
                if !p.is_nan() {
                    *v = p as f64;
                    valid += 1;
                }
            }
        }
    }
    // Sub-window statistics (3 x 3 windows at rows/cols 0, 2, 4).
    let mut means = [[0.0f64; 3]; 3];
    let (mut complete_vars, mut complete) = ([0.0f64; 9], 0);
    for j in 0..3 {
        for i in 0..3 {
            let (mut s, mut k) = ([0.0f64; 9], 0);
            for row in &n[2 * j..2 * j + 3] {
                for v in &row[2 * i..2 * i + 3] {
                    if !v.is_nan() {
                        s[k] = *v;
                        k += 1;
                    }
                }
            }
            let (m, v) = mean_var(&s[..k]);
            means[j][i] = m;
            if k == 9 {
                complete_vars[complete] = v;
                complete += 1;
            }
        }
    }
    let complete_vars = &mut complete_vars[..complete];
    complete_vars.sort_by(|a, b| a.total_cmp(b));
    let noise_var = match complete_vars.len() {
        0 => 0.0,
        9 => complete_vars[..5].iter().sum::<f64>() / 5.0,
        _ => complete_vars[0],
    };
    let (mut pixels, mut np) = ([0.0f64; 49], 0);
    if valid < 49 {
        for v in n.iter().flatten().filter(|v| !v.is_nan()) {
            pixels[np] = *v;
            np += 1;
        }
    } else {
        let d = edge_direction(&means);
        for (v, keep) in n.iter().flatten().zip(&EDGE_WINDOWS[d]) {
            if *keep {
                pixels[np] = *v;
                np += 1;
            }
        }
    }
    let (mean, var) = mean_var(&pixels[..np]);
    if !(var + noise_var > 0.0) {
        return mean as f32;
    }
    let k = var / (var + noise_var);
    (mean + k * (centre as f64 - mean)) as f32
}

/// Equivalent number of looks of a homogeneous area of linear power: mean^2 / variance.
pub fn equivalent_number_of_looks(values: &[f32]) -> f64 {
    let v: Vec<f64> = values.iter().filter(|v| !v.is_nan()).map(|v| *v as f64).collect();
    let (mean, var) = mean_var(&v);
    mean * mean / var
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refined Lee as it was written first (a vector per window and sub-window), the reference the
    /// allocation-free one must equal bit for bit.
    fn refined_lee_reference(img: &[f32], width: usize, height: usize) -> Vec<f32> {
        per_pixel(width, height, |x, y| {
            let centre = img[y * width + x];
            if centre.is_nan() {
                return f32::NAN;
            }
            let mut n = [[f64::NAN; 7]; 7];
            let mut valid = 0;
            for (r, row) in n.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    let (yy, xx) = (y as isize + r as isize - 3, x as isize + c as isize - 3);
                    if yy >= 0 && xx >= 0 && (yy as usize) < height && (xx as usize) < width {
                        let p = img[yy as usize * width + xx as usize];
                        if !p.is_nan() {
                            *v = p as f64;
                            valid += 1;
                        }
                    }
                }
            }
            // Sub-window statistics (3 x 3 windows at rows/cols 0, 2, 4).
            let mut means = [[0.0f64; 3]; 3];
            let mut complete_vars = Vec::with_capacity(9);
            for j in 0..3 {
                for i in 0..3 {
                    let mut s = Vec::with_capacity(9);
                    for r in 2 * j..2 * j + 3 {
                        for c in 2 * i..2 * i + 3 {
                            if !n[r][c].is_nan() {
                                s.push(n[r][c]);
                            }
                        }
                    }
                    let (m, v) = mean_var(&s);
                    means[j][i] = m;
                    if s.len() == 9 {
                        complete_vars.push(v);
                    }
                }
            }
            complete_vars.sort_by(|a, b| a.total_cmp(b));
            let noise_var = match complete_vars.len() {
                0 => 0.0,
                9 => complete_vars[..5].iter().sum::<f64>() / 5.0,
                _ => complete_vars[0],
            };
            let pixels: Vec<f64> = if valid < 49 {
                n.iter().flatten().copied().filter(|v| !v.is_nan()).collect()
            } else {
                let m = &means;
                let gradients = [(m[1][0] - m[1][2]).abs(), (m[0][2] - m[2][0]).abs(), (m[0][1] - m[2][1]).abs(), (m[0][0] - m[2][2]).abs()];
                let mut direction = 0;
                for (k, g) in gradients.iter().enumerate() {
                    if *g > gradients[direction] {
                        direction = k;
                    }
                }
                let c = m[1][1];
                // Of the two sides of the edge, the one the centre resembles.
                let d = match direction {
                    0 => if (m[1][0] - c).abs() < (c - m[1][2]).abs() { 4 } else { 0 },
                    1 => if (m[0][2] - c).abs() < (c - m[2][0]).abs() { 1 } else { 5 },
                    2 => if (m[0][1] - c).abs() < (c - m[2][1]).abs() { 2 } else { 6 },
                    _ => if (m[0][0] - c).abs() < (c - m[2][2]).abs() { 3 } else { 7 },
                };
                let mut p = Vec::with_capacity(28);
                for (r, row) in n.iter().enumerate() {
                    for (cc, v) in row.iter().enumerate() {
                        if edge_window(d, r, cc) {
                            p.push(*v);
                        }
                    }
                }
                p
            };
            let (mean, var) = mean_var(&pixels);
            if !(var + noise_var > 0.0) {
                return mean as f32;
            }
            let k = var / (var + noise_var);
            (mean + k * (centre as f64 - mean)) as f32
        })
    }

    #[test]
    fn each_edge_window_has_28_pixels() {
        for d in 0..8 {
            let count = (0..7).flat_map(|r| (0..7).map(move |c| (r, c))).filter(|(r, c)| edge_window(d, *r, *c)).count();
            assert_eq!(count, 28, "direction {d}");
        }
    }


    #[test]
    fn lee_by_hand_on_a_3x3_window() {
        // Centre 9, others 1: mean 17/9, sample variance 64/9 * 8/8... computed explicitly.
        let mut img = vec![1.0f32; 9];
        img[4] = 9.0;
        let w: Vec<f64> = img.iter().map(|v| *v as f64).collect();
        let mean = w.iter().sum::<f64>() / 9.0;
        let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 8.0;
        let looks = 4.0;
        let b = 1.0 - (1.0 / looks) / (var / (mean * mean));
        let expected = mean + b * (9.0 - mean);
        let out = lee(&img, 3, 3, 3, looks);
        assert!((out[4] as f64 - expected).abs() < 1e-5, "{} vs {expected}", out[4]);
        // A homogeneous window gives its mean.
        assert_eq!(lee(&[2.0; 9], 3, 3, 3, 4.0)[4], 2.0);
    }

    #[test]
    fn refined_lee_by_hand_on_a_vertical_edge() {
        // 7 x 7: left three columns 1, right four columns 10, centre on the bright side.
        let mut img = vec![0f32; 49];
        for r in 0..7 {
            for c in 0..7 {
                img[r * 7 + c] = if c < 3 { 1.0 } else { 10.0 };
            }
        }
        img[3 * 7 + 3] = 12.0;
        let out = refined_lee(&img, 7, 7);
        // Horizontal gradient wins; the centre's sub-window mean (10.67) is closer to the right
        // half's, so the 28 pixels are columns 3..6: 27 tens and the 12.
        let pixels: Vec<f64> = (0..7).flat_map(|r| (3..7).map(move |c| (r, c))).map(|(r, c)| img[r * 7 + c] as f64).collect();
        let (mean, var) = mean_var(&pixels);
        // Sub-window variances: the five smallest are 0 (all-10 windows away from the centre and
        // edge): noise variance 0, so k = 1 and the centre keeps its value.
        let mut sub = Vec::new();
        for j in 0..3 {
            for i in 0..3 {
                let s: Vec<f64> = (2 * j..2 * j + 3).flat_map(|r| (2 * i..2 * i + 3).map(move |c| (r, c))).map(|(r, c)| img[r * 7 + c] as f64).collect();
                sub.push(mean_var(&s).1);
            }
        }
        sub.sort_by(|a, b| a.total_cmp(b));
        let noise: f64 = sub[..5].iter().sum::<f64>() / 5.0;
        let k = var / (var + noise);
        let expected = mean + k * (12.0 - mean);
        assert!((out[24] as f64 - expected).abs() < 1e-5, "{} vs {expected}", out[24]);
        // The dark side never leaks into the bright pixel.
        assert!(out[24] > 9.9);
    }

    /// The fast Refined Lee (running sums, partial sums in another order) equals the first one
    /// within 1e-5 relative: on generated 4-look speckle over a field with edges, with no-data
    /// holes, lone no-data pixels and the grid's borders (every branch: full windows, partial
    /// ones, too few complete sub-windows), and bit for bit wherever a window has no data.
    #[test]
    fn refined_lee_equals_its_reference_within_1e_5() {
        let (w, h) = (97usize, 83usize);
        let mut state = 0x853C_49E6_748F_EA9Bu64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let img: Vec<f32> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let level = if x < 40 { 0.05 } else if x + y < 120 { 0.4 } else { 0.12 };
                let speckle: f64 = (0..4).map(|_| -uniform().ln()).sum::<f64>() / 4.0;
                let hole = (30..36).contains(&x) && (20..27).contains(&y) || i % 211 == 0;
                if hole { f32::NAN } else { (level * speckle) as f32 }
            })
            .collect();
        let close = |a: &[f32], b: &[f32], what: &str| {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_eq!(x.is_nan(), y.is_nan(), "{what}: pixel {i}: {x} vs {y}");
                assert!(x.is_nan() || ((x - y).abs() as f64) <= 1e-5 * (y.abs() as f64), "{what}: pixel {i}: {x} vs {y}");
            }
        };
        let (fast, reference) = (refined_lee(&img, w, h), refined_lee_reference(&img, w, h));
        close(&fast, &reference, "speckle");
        // Where a window holds no data the general way runs, bit for bit.
        let hole_edge = 27 * w + 33;
        assert_eq!(fast[hole_edge].to_bits(), reference[hole_edge].to_bits());
        // A constant image stays constant (zero variances everywhere); grids thinner than a
        // window or than a strip.
        let flat = vec![0.25f32; 20 * 20];
        assert_eq!(refined_lee(&flat, 20, 20), refined_lee_reference(&flat, 20, 20));
        for (w, h) in [(5, 5), (40, 6), (6, 40), (1, 1), (9, 33)] {
            let part = &img[..w * h];
            close(&refined_lee(part, w, h), &refined_lee_reference(part, w, h), &format!("{w} x {h}"));
        }
    }

    /// The branch-free edge choice is the edge direction's, ties included.
    #[test]
    fn the_edge_side_is_the_edge_direction() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for k in 0..20_000 {
            let mut m = [0.0f64; 9];
            for v in &mut m {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Few distinct values in half the cases, so gradients tie.
                *v = if k % 2 == 0 { (state % 4) as f64 } else { (state >> 11) as f64 / (1u64 << 53) as f64 };
            }
            let rows = [[m[0], m[1], m[2]], [m[3], m[4], m[5]], [m[6], m[7], m[8]]];
            assert_eq!(edge_side(&m), edge_direction(&rows), "{m:?}");
        }
    }

    /// The sorting network sorts every input of zeros and ones (the 0-1 principle: then it sorts
    /// every input), and values with ties.
    #[test]
    fn the_nine_value_network_sorts() {
        for bits in 0u32..512 {
            let mut v: [f64; 9] = std::array::from_fn(|i| ((bits >> i) & 1) as f64);
            sort9(&mut v);
            assert!(v.windows(2).all(|w| w[0] <= w[1]), "{bits:09b}: {v:?}");
        }
        let mut v = [0.5, 3.0, -1.0, 0.5, 2.0, 9.0, 0.0, 3.0, 1e-9];
        sort9(&mut v);
        assert_eq!(v, [-1.0, 0.0, 1e-9, 0.5, 0.5, 2.0, 3.0, 3.0, 9.0]);
    }

    #[test]
    fn no_data_stays_no_data_and_is_left_out() {
        let mut img = vec![1.0f32; 100];
        img[55] = f32::NAN;
        for f in [SpeckleFilter::Boxcar { size: 5 }, SpeckleFilter::Lee { size: 5, looks: 4.0 }, SpeckleFilter::RefinedLee] {
            let out = speckle_filter(&img, 10, 10, f);
            assert!(out[55].is_nan(), "{f:?}");
            assert!(out.iter().enumerate().all(|(i, v)| i == 55 || (*v - 1.0).abs() < 1e-6), "{f:?}");
        }
    }
}
