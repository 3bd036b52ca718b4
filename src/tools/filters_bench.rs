//! The speckle-filter benchmark of `s2cr bench` (`--what filters`): the filters' throughput and
//! peak memory on generated 4-look speckle, the 7 x 7 boxcar as the baseline of the same run.
//!
//! It measures; it prints nothing (the CLI does) and nothing in the pipeline uses it.

use std::time::Instant;

use crate::preprocess::s1::{self, SpeckleFilter};

/// One filter's time over the whole image.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterRow {
    /// The filter, e.g. "boxcar 7x7 (baseline)".
    pub name: String,
    pub secs: f64,
    pub mpixel_per_sec: f64,
    /// Peak resident memory of the process after the filter, MiB.
    pub peak_rss_mib: f64,
}

/// The benchmark's image and each filter's row.
#[derive(Debug, Clone, PartialEq)]
pub struct FiltersBench {
    /// Image side, pixels.
    pub size: usize,
    pub megapixels: f64,
    /// Threads of the filters (rayon's pool).
    pub threads: usize,
    /// Peak resident memory once the image is generated, MiB.
    pub setup_peak_rss_mib: f64,
    /// The baseline (boxcar) first.
    pub rows: Vec<FilterRow>,
}

/// Throughput of the speckle filters on synthetic 4-look speckle (gamma-distributed, over a
/// scene of flat 64 px patches), with the 7 x 7 boxcar as the baseline of the same run.
pub fn filters(size: usize) -> FiltersBench {
    let n = size * size;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let image: Vec<f32> = (0..n)
        .map(|i| {
            let (x, y) = (i % size, i / size);
            let level = if ((x / 64) + (y / 64)) % 2 == 0 { 0.05 } else { 0.2 };
            let speckle: f64 = (0..4).map(|_| -uniform().ln()).sum::<f64>() / 4.0;
            (level * speckle) as f32
        })
        .collect();
    let megapixels = n as f64 / 1e6;
    let setup_peak_rss_mib = super::bench::peak_rss_mib();
    let mut rows = Vec::new();
    for (name, filter) in [("boxcar 7x7 (baseline)", SpeckleFilter::boxcar()), ("Refined Lee 7x7", SpeckleFilter::refined_lee())] {
        let start = Instant::now();
        let out = s1::speckle_filter(&image, size, size, filter);
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(&out);
        rows.push(FilterRow { name: name.to_string(), secs, mpixel_per_sec: megapixels / secs, peak_rss_mib: super::bench::peak_rss_mib() });
    }
    FiltersBench { size, megapixels, threads: rayon::current_num_threads(), setup_peak_rss_mib, rows }
}
