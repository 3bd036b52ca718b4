//! Baselines: what an analyst has without the model, scored over the same held-out clear pixels
//! as the synthetic image, so that every assessment answers "which source should I trust here?".
//!
//! - *persistence*: the pre-fire image taken as the post-fire one (no change);
//! - *linear model*: per band, a ridge regression of Sentinel-2 t1 on the dataset's inputs
//!   (Sentinel-1 t0 and t1, Sentinel-2 t0) and the radar's change in dB (t1 - t0 per
//!   polarisation), on standardized features with a fixed, reported lambda, fitted on the clear
//!   pixels of the dataset's training blocks (one pass: the normal equations are sums);
//! - *radar-only burned area*: burned where the VH backscatter (VV without VH) fell between t0
//!   and t1 by more than a threshold, the one that maximises F1 against the real burned map on
//!   the training blocks' clear pixels (C-band backscatter falls with burn severity: Tanase et
//!   al. 2010, Remote Sensing of Environment 114; a burned-area map, no image).
//!
//! Both are project-mode only: `--pre/--real/--synthetic` has no radar and no training split.
//! Each row gets MAE, PSNR, SSIM, the spectral angle, NBR and dNBR MAE, and the burned-area
//! agreement with the real map and, when given, with the official perimeter. Memory is bounded
//! by strips, as the rest of the assessment.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::agreement::{BurnedAgreement, BurnedCounts};
use super::{AssessConfig, AssessInputs, HeldOut, Image};
use crate::error::{Error, Result};
use crate::indices::metrics::{self, ErrorSums, MeanSum, spectral_angle_deg};
use crate::indices::severity::NO_DATA;
use crate::job::Progress;
use crate::raster::{self, PixelWindow};

/// The ridge penalty per pixel on standardized features (the intercept is not penalized).
pub const RIDGE_LAMBDA: f64 = 1e-3;

/// Training pixels past which the linear model and the radar-only threshold are fitted on every
/// k-th strip only (a fit of some twenty coefficients does not move with more; the demo's and a
/// usual AOI's are fitted on all of them).
pub const FIT_PIXELS: usize = 4 << 20;

/// What the baselines need beyond the three images: the dataset's inputs on the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineInputs {
    /// The dataset's inputs VRT (one band per input channel, named `S1_t0:VV`, `S2_t0:B04`, ...).
    pub inputs_vrt: PathBuf,
    /// A post-fire composite of the t1 window without the target date (reflectance bands and
    /// `mask`, as `preprocess::composite` writes it), when there is one. Left out of the
    /// parameters when there is none, so earlier assessments stay up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite: Option<PathBuf>,
}

/// Image scores of a row over the compared pixels (NaN, written as null, where a row has no
/// image).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageScores {
    #[serde(deserialize_with = "super::f64_or_nan")]
    pub mae: f64,
    #[serde(deserialize_with = "super::f64_or_nan")]
    pub psnr_db: f64,
    /// Mean SSIM over the bands, over the windows wholly inside the compared pixels.
    #[serde(default = "nan", deserialize_with = "super::f64_or_nan")]
    pub ssim: f64,
    #[serde(deserialize_with = "super::f64_or_nan")]
    pub sam_deg: f64,
    #[serde(deserialize_with = "super::f64_or_nan")]
    pub nbr_mae: f64,
    #[serde(deserialize_with = "super::f64_or_nan")]
    pub dnbr_mae: f64,
}

/// One source an analyst could use for the post-fire image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRow {
    /// `synthetic`, `persistence`, `linear`.
    pub id: String,
    pub name: String,
    pub image: ImageScores,
    pub burned: BurnedAgreement,
    /// Its burned map against the official perimeter over the same pixels, when one is given.
    #[serde(default)]
    pub perimeter: Option<BurnedAgreement>,
    /// The pixels of a row scored on fewer than the table's (the composite: where it has a
    /// clear observation).
    #[serde(default)]
    pub pixels: Option<u64>,
    /// The dNBR offset subtracted from its dNBR (the mean over the assessment's unburned
    /// pixels), when the assessment subtracts one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnbr_offset: Option<f64>,
}

/// The assessment's dNBR offsets: its unburned pixels, and the real and synthetic maps' offsets.
#[derive(Debug, Clone)]
pub struct Offsets {
    pub set: Arc<super::offset::UnburnedSet>,
    pub real: f32,
    pub synthetic: f32,
}

fn nan() -> f64 {
    f64::NAN
}

/// A fitted per-band ridge model: `t1[band] = intercept + sum(coefficients[i] * feature[i])`
/// on the raw features (the standardization folded in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// Feature names, in order (`S1_t0:VV`, ..., `dB change VV`).
    pub features: Vec<String>,
    /// Per band: (band, intercept, coefficients).
    pub bands: Vec<(String, f64, Vec<f64>)>,
    pub lambda: f64,
    /// Training pixels it was fitted on.
    pub pixels: u64,
}

/// The baselines section of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    /// The pixels every row is scored on, in words, and their count.
    pub pixels: String,
    pub count: u64,
    /// The synthetic image first, then the baselines.
    pub rows: Vec<BaselineRow>,
    pub linear: Option<LinearModel>,
    /// The radar-only map's threshold on the dB change (burned at or below it) and its
    /// polarisation.
    #[serde(default)]
    pub radar_threshold_db: Option<(String, f64)>,
    /// Caveats the numbers need (a simulated burn the radar also carries).
    pub notes: Vec<String>,
    /// Baselines that beat the synthetic image on burned-area kappa or dNBR MAE, in words.
    pub beaten_by: Vec<String>,
    /// How long scoring them took, seconds (for the benchmark; not in report.json, which stays
    /// the same for the same inputs).
    #[serde(skip)]
    pub seconds: f64,
}

impl Baselines {
    /// The table the report and the CLI show: the columns (name, decimals), then each row's
    /// name and values in that order (NaN where a row has none: n/a). The perimeter's columns
    /// only when a row has them.
    pub fn table(&self) -> (Vec<(&'static str, usize)>, Vec<(&str, Vec<f64>)>) {
        let with_perimeter = self.rows.iter().any(|r| r.perimeter.is_some());
        let mut columns = vec![("kappa", 3), ("F1", 3), ("IoU", 3), ("burned ha", 2)];
        if with_perimeter {
            columns.extend([("kappa vs perimeter", 3), ("IoU vs perimeter", 3)]);
        }
        columns.extend([("MAE", 4), ("PSNR dB", 2), ("SSIM", 3), ("SAM deg", 2), ("NBR MAE", 3), ("dNBR MAE", 3)]);
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let mut v = vec![r.burned.kappa, r.burned.f1, r.burned.iou, r.burned.burned_ha_synthetic];
                if with_perimeter {
                    v.extend(r.perimeter.as_ref().map_or([f64::NAN; 2], |p| [p.kappa, p.iou]));
                }
                v.extend([r.image.mae, r.image.psnr_db, r.image.ssim, r.image.sam_deg, r.image.nbr_mae, r.image.dnbr_mae]);
                (r.name.as_str(), v)
            })
            .collect();
        (columns, rows)
    }
}

/// The features of the linear model: the inputs' channels that are not masks, then the dB
/// change of each polarisation present at t0 and t1. Returns (names, band index per channel
/// feature, pairs (t0, t1) of indices for the changes).
fn features(channels: &[String]) -> (Vec<String>, Vec<usize>, Vec<(usize, usize)>) {
    let used: Vec<usize> = (0..channels.len()).filter(|&i| !channels[i].to_ascii_lowercase().contains("mask")).collect();
    let mut names: Vec<String> = used.iter().map(|&i| channels[i].clone()).collect();
    let mut pairs = Vec::new();
    for (i, c) in channels.iter().enumerate() {
        if let Some(pol) = c.strip_prefix("S1_t0:")
            && let Some(j) = channels.iter().position(|d| d == &format!("S1_t1:{pol}"))
        {
            pairs.push((i, j));
            names.push(format!("dB change {pol}"));
        }
    }
    (names, used, pairs)
}

/// The feature vector of pixel `i` (None where one is not finite).
fn feature_row(bands: &[Vec<f32>], used: &[usize], pairs: &[(usize, usize)], i: usize, out: &mut Vec<f64>) -> bool {
    out.clear();
    for &b in used {
        out.push(bands[b][i] as f64);
    }
    for &(a, b) in pairs {
        out.push(bands[b][i] as f64 - bands[a][i] as f64);
    }
    out.iter().all(|v| v.is_finite())
}

/// The pixels of the blocks a set does not hold (the training blocks, for the held-out set).
fn outside(set: &HeldOut, x: usize, y: usize) -> bool {
    !set.contains(x, y)
}


/// Scores the synthetic image, persistence and the linear model over the held-out clear pixels.
/// `perimeter`: the official perimeter with the grid's geotransform and CRS, when given; `strip`:
/// rows a strip (any height gives the same numbers).
/// The baselines being scored on a thread of their own, beside the rest of the assessment (which
/// leaves part of the cores idle while it reads and writes): [`Pending::join`] waits for them;
/// dropped unjoined (the assessment failed or was cancelled), the thread stops at its next strip.
pub struct Pending {
    handle: Option<std::thread::JoinHandle<Result<Baselines>>>,
    stop: Arc<AtomicBool>,
}

impl Pending {
    /// Starts scoring. The official perimeter, when `cfg` has one, is read again on the thread
    /// (its geometries stay on the thread that reads them).
    #[allow(clippy::too_many_arguments)]
    pub fn start(inputs: &AssessInputs, cfg: &AssessConfig, with: &BaselineInputs, held: &HeldOut, pixel_area_m2: f64, grid: ([f64; 6], String), strip: usize, offsets: Option<Offsets>, progress: &Progress) -> Result<Pending> {
        let stop = Arc::new(AtomicBool::new(false));
        let (inputs, cfg, with, held, progress, flag) = (inputs.clone(), cfg.clone(), with.clone(), held.clone(), progress.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("assess-baselines".into())
            .spawn(move || {
                let (gt, crs) = grid;
                let polygons = cfg.perimeter.as_ref().map(|p| raster::load_polygons(p, &crs)).transpose()?;
                let stopped = || flag.load(Ordering::SeqCst) || progress.is_cancelled();
                compute(&inputs, &cfg, &with, &held, pixel_area_m2, polygons.as_ref().map(|p| (p, &gt, crs.as_str())), strip, offsets.as_ref(), &stopped)
            })
            .map_err(Error::io("thread assess-baselines", "starting a worker thread"))?;
        Ok(Pending { handle: Some(handle), stop })
    }

    /// The baselines, once scored.
    pub fn join(mut self) -> Result<Baselines> {
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(result)) => result,
            _ => Err(Error::invalid("baselines", "the thread scoring them stopped unexpectedly (a bug: please report it)")),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Scores the baselines; `stopped` is asked between strips (`Error::Cancelled` when it says so).
/// With `offsets`, every dNBR less its source's offset over the same unburned pixels.
#[allow(clippy::too_many_arguments)]
pub fn compute(inputs: &AssessInputs, cfg: &AssessConfig, with: &BaselineInputs, held: &HeldOut, pixel_area_m2: f64, perimeter: Option<(&raster::Polygons, &[f64; 6], &str)>, strip: usize, offsets: Option<&Offsets>, stopped: &dyn Fn() -> bool) -> Result<Baselines> {
    compute_fitting_on(inputs, cfg, with, held, pixel_area_m2, perimeter, strip, offsets, stopped, FIT_PIXELS)
}

/// [`compute`] with the training pixels past which the fit takes every k-th strip given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn compute_fitting_on(inputs: &AssessInputs, cfg: &AssessConfig, with: &BaselineInputs, held: &HeldOut, pixel_area_m2: f64, perimeter: Option<(&raster::Polygons, &[f64; 6], &str)>, strip: usize, offsets: Option<&Offsets>, stopped: &dyn Fn() -> bool, fit_pixels: usize) -> Result<Baselines> {
    let started = std::time::Instant::now();
    let check = || if stopped() { Err(Error::Cancelled) } else { Ok(()) };
    let order = cfg.band_order.as_deref();
    let (pre, real, synth) = (Image::open(&inputs.pre, order)?, Image::open(&inputs.real, order)?, Image::open(&inputs.synthetic, order)?);
    let vrt = with.inputs_vrt.display().to_string();
    let info = raster::info(&vrt)?;
    let (width, height) = (pre.info.width, pre.info.height);
    if (info.width, info.height) != (width, height) {
        return Err(Error::Raster { location: vrt, message: format!("{} x {} where the images are {width} x {height}: build the dataset again (`s2cr dataset`)", info.width, info.height) });
    }
    let composite = with.composite.as_ref().map(|p| Image::open(p, order)).transpose()?;
    if let Some(c) = &composite
        && ((c.info.width, c.info.height) != (width, height) || c.info.geo_transform != pre.info.geo_transform || !raster::same_crs(&c.info.crs_wkt, &pre.info.crs_wkt))
    {
        return Err(Error::Raster { location: c.path.display().to_string(), message: format!("not on the grid of {}; write the composite on the project grid", pre.path.display()) });
    }
    let channels: Vec<String> = info.bands.iter().map(|b| b.description.clone()).collect();
    let (names, used, pairs) = features(&channels);
    let bands: Vec<&str> = cfg.quality_bands.iter().map(String::as_str).collect();
    let (nb, nf) = (bands.len(), names.len() + 1);
    let nir = bands.iter().position(|b| b.eq_ignore_ascii_case(cfg.nir.name()));
    let swir = bands.iter().position(|b| b.eq_ignore_ascii_case("B12"));
    // Strips as the rest of the assessment's (about a million pixels a band): about 40 bands of
    // them at once in the second pass (three images, the linear prediction, the inputs).
    let strip = strip.max(1);
    let read_strip = |image: &Image, y0: usize, y1: usize| image.read(&bands, cfg.scale, y0..y1);
    let read_inputs = |y0: usize, y1: usize| raster::read_window_reusing(&vrt, &[], Some(PixelWindow { x_off: 0, y_off: y0, width, height: y1 - y0 }));

    // The radar's change for the radar-only map: VH, else the first polarisation.
    let radar = pairs.iter().zip(names.iter().skip(used.len())).find(|(_, n)| n.ends_with("VH")).or_else(|| pairs.iter().zip(names.iter().skip(used.len())).next()).map(|(p, n)| (*p, n.trim_start_matches("dB change ").to_string()));
    let th = &cfg.severity_classes;
    let off_real = offsets.map_or(0.0, |o| o.real);
    let ratio = |n: f32, s: f32| (n - s) / (n + s);
    let nbr = |v: &[Vec<f32>], i: usize| -> f32 {
        match (nir, swir) {
            (Some(a), Some(b)) => ratio(v[a][i], v[b][i]),
            _ => f32::NAN,
        }
    };
    // Of the pre-fire image, pass 1 (the radar's histogram) needs the NBR bands only.
    let nbr_bands: Option<[&str; 2]> = nir.zip(swir).map(|(a, b)| [bands[a], bands[b]]);
    // Pass 1: the normal equations over the training blocks' clear pixels (raw sums, f64), and
    // the radar change's histogram for burned and unburned pixels there.
    let mut xtx = vec![0.0f64; nf * nf];
    let mut xty = vec![0.0f64; nf * nb];
    let mut n_fit = 0u64;
    let mut hist = vec![[0u64; 2]; RADAR_BINS];
    let every = (width * height).saturating_sub(held.pixels) / fit_pixels.max(1);
    let every = every.max(1);
    for y0 in (0..height).step_by(strip * every) {
        check()?;
        let y1 = (y0 + strip).min(height);
        // The files read side by side (each thread keeps its own GDAL handles).
        let pre_nbr = || nbr_bands.filter(|_| radar.is_some()).map(|two| pre.read(&two, cfg.scale, y0..y1)).transpose();
        let (r, (x, p)) = rayon::join(|| read_strip(&real, y0, y1), || rayon::join(|| read_inputs(y0, y1), pre_nbr));
        let (r, x, p) = (r?, x?, p?);
        if let (Some(((a, b), _)), Some(p)) = (&radar, &p) {
            let burned = th.burned_codes();
            for i in 0..(y1 - y0) * width {
                let change = x.bands[*b][i] - x.bands[*a][i];
                if !(outside(held, i % width, y0 + i / width) && r.valid[i] && p.valid[i] && change.is_finite()) {
                    continue;
                }
                let d = ratio(p.bands[0][i], p.bands[1][i]) - nbr(&r.bands, i) - off_real;
                if d.is_finite() {
                    hist[radar_bin(change)][burned.contains(th.classify(d)) as usize] += 1;
                }
            }
        }
        // Row by row in parallel, each row's sums (the upper triangle of X'X) added in row order:
        // the same numbers for any strip height.
        use rayon::prelude::*;
        let rows: Vec<(Vec<f64>, Vec<f64>, u64)> = (0..y1 - y0)
            .into_par_iter()
            .map(|yy| {
                let (mut sxx, mut sxy, mut n) = (vec![0.0f64; nf * nf], vec![0.0f64; nf * nb], 0u64);
                let mut row = Vec::with_capacity(nf);
                for i in yy * width..(yy + 1) * width {
                    if !(outside(held, i % width, y0 + yy) && r.valid[i] && x.valid[i]) || (0..nb).any(|b| !r.bands[b][i].is_finite()) || !feature_row(&x.bands, &used, &pairs, i, &mut row) {
                        continue;
                    }
                    row.push(1.0);
                    for a in 0..nf {
                        let ra = row[a];
                        for c in a..nf {
                            sxx[a * nf + c] += ra * row[c];
                        }
                        for b in 0..nb {
                            sxy[a * nb + b] += ra * r.bands[b][i] as f64;
                        }
                    }
                    n += 1;
                }
                (sxx, sxy, n)
            })
            .collect();
        for (sxx, sxy, n) in rows {
            xtx.iter_mut().zip(&sxx).for_each(|(t, v)| *t += v);
            xty.iter_mut().zip(&sxy).for_each(|(t, v)| *t += v);
            n_fit += n;
        }
    }
    // The lower triangle of X'X from the upper.
    for a in 0..nf {
        for c in 0..a {
            xtx[a * nf + c] = xtx[c * nf + a];
        }
    }
    let linear = fit(&names, &bands, &xtx, &xty, n_fit);
    let threshold = radar.as_ref().and_then(|_| best_threshold(&hist));

    // Each image source's dNBR offset, in source order (synthetic, persistence, linear,
    // composite): the synthetic map's from the assessment, persistence's 0 (its dNBR is 0), the
    // linear model's and the composite's the real map's plus their mean dNBR difference from
    // the real map over the same unburned pixels (where they have a value: the composite may
    // cover only part of them, and a source equal to the real image gets the real offset).
    let mut source_offsets = [offsets.map_or(0.0, |o| o.synthetic), 0.0, 0.0, 0.0];
    if let (Some(o), Some(a), Some(b), Some(two)) = (offsets, nir, swir, nbr_bands) {
        // The NBR bands alone (`[NIR, SWIR2]`), and the inputs for the linear model.
        let nbr = |v: &[Vec<f32>], i: usize| ratio(v[0][i], v[1][i]);
        let means = o.set.means(height, strip, 2, |rows| {
            check()?;
            let (y0, y1) = (rows.start, rows.end);
            let n = (y1 - y0) * width;
            let r = real.read(&two, cfg.scale, y0..y1)?;
            let x = linear.as_ref().map(|_| read_inputs(y0, y1)).transpose()?;
            let c = composite.as_ref().map(|c| c.read(&two, cfg.scale, y0..y1)).transpose()?;
            let (mut lin, mut comp) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            let mut row = Vec::with_capacity(nf);
            // dNBR(source) - dNBR(real) = NBR(real) - NBR(source): the pre-fire side cancels.
            for i in (0..n).filter(|i| o.set.contains(i % width, y0 + i / width)) {
                let real_nbr = nbr(&r.bands, i);
                if let (Some(m), Some(x)) = (&linear, &x)
                    && x.valid[i]
                    && feature_row(&x.bands, &used, &pairs, i, &mut row)
                {
                    let predict = |k: usize| (m.bands[k].1 + m.bands[k].2.iter().zip(&row).map(|(c, v)| c * v).sum::<f64>()) as f32;
                    lin[i] = real_nbr - ratio(predict(a), predict(b));
                }
                if let Some(c) = c.as_ref().filter(|c| c.valid[i]) {
                    comp[i] = real_nbr - nbr(&c.bands, i);
                }
            }
            Ok(vec![lin, comp])
        })?;
        (source_offsets[2], source_offsets[3]) = (o.real + means[0] as f32, o.real + means[1] as f32);
    }

    // Pass 2: every row over the held-out pixels clear in all of them. Strips are read once, on
    // the same rows as pass 1 (the files' tiles decoded once each); SSIM lags by its window's
    // radius, over this strip and the last 2 x radius rows of the one before (`tail`).
    let radius = metrics::SSIM_RADIUS;
    // Image sources: 0 synthetic, 1 persistence, 2 linear, 3 composite; 4 is the radar-only map.
    // Each source's sums, scored side by side (each sees its pixels in the same order).
    let mut sums = vec![SourceSums { errors: vec![ErrorSums::default(); nb], ..Default::default() }; 5];
    // Per band and source (`[b][k]`), each window added in row order.
    let mut ssim = vec![vec![MeanSum::default(); 4]; nb];
    let (mut count, mut count_composite) = (0u64, 0u64);
    // The kept mask, then per band the real image and the three sources, of the tail's rows.
    let mut tail = Tail { keep: Vec::new(), keep_composite: Vec::new(), real: vec![Vec::new(); nb], sources: vec![vec![Vec::new(); nb]; 4] };
    for y0 in (0..height).step_by(strip) {
        check()?;
        let y1 = (y0 + strip).min(height);
        let ((p, r), (s, (x, c))) = rayon::join(
            || rayon::join(|| read_strip(&pre, y0, y1), || read_strip(&real, y0, y1)),
            || rayon::join(|| read_strip(&synth, y0, y1), || rayon::join(|| read_inputs(y0, y1), || composite.as_ref().map(|c| read_strip(c, y0, y1)).transpose())),
        );
        let (p, r, s, x, c) = (p?, r?, s?, x?, c?);
        let n = (y1 - y0) * width;
        let held_here = |i: usize| held.contains(i % width, y0 + i / width);
        // The linear model's prediction on the held-out pixels, NaN where it cannot be made.
        let mut lin = vec![vec![f32::NAN; n]; nb];
        if let Some(m) = &linear {
            use rayon::prelude::*;
            // Row by row in parallel, pixel-major, then one band a plane.
            let mut pixel_major = vec![f32::NAN; n * nb];
            pixel_major.par_chunks_mut(width * nb).enumerate().for_each(|(yy, out)| {
                let mut row = Vec::with_capacity(nf);
                for xx in 0..width {
                    let i = yy * width + xx;
                    if held_here(i) && x.valid[i] && feature_row(&x.bands, &used, &pairs, i, &mut row) {
                        for (b, (_, intercept, coef)) in m.bands.iter().enumerate() {
                            out[xx * nb + b] = (intercept + coef.iter().zip(&row).map(|(c, v)| c * v).sum::<f64>()) as f32;
                        }
                    }
                }
            });
            for (b, plane) in lin.iter_mut().enumerate() {
                plane.iter_mut().zip(pixel_major.iter().skip(b).step_by(nb)).for_each(|(o, v)| *o = *v);
            }
        }
        let keep: Vec<bool> = {
            use rayon::prelude::*;
            (0..n).into_par_iter()
            .map(|i| held_here(i) && p.valid[i] && r.valid[i] && s.valid[i] && (linear.is_none() || lin.iter().all(|b| b[i].is_finite())) && (0..nb).all(|b| p.bands[b][i].is_finite() && r.bands[b][i].is_finite() && s.bands[b][i].is_finite()))
            .collect()
        };
        count += keep.iter().filter(|k| **k).count() as u64;
        // The composite where it also has a clear observation.
        let keep_composite: Vec<bool> = match &c {
            Some(c) => (0..n).map(|i| keep[i] && c.valid[i] && (0..nb).all(|b| c.bands[b][i].is_finite())).collect(),
            None => vec![false; n],
        };
        count_composite += keep_composite.iter().filter(|k| **k).count() as u64;
        let inside = match perimeter {
            Some((polygons, gt, crs)) => Some(polygons.burn_rows(gt, crs, width, y0, y1 - y0)?),
            None => None,
        };
        let sources: [&[Vec<f32>]; 4] = [&s.bands, &p.bands, &lin, c.as_ref().map_or(&[][..], |c| c.bands.as_slice())];
        let active = if linear.is_some() { 3 } else { 2 };
        // SSIM: the windows centred on rows y0 - radius .. y1 - radius (to the grid's last
        // centre), wholly inside the grid and the kept pixels, over the tail and this strip.
        {
            let base = y0 - tail.keep.len() / width;
            let joined = |old: &[f32], new: &[f32]| -> Vec<f32> {
                let mut v = Vec::with_capacity(old.len() + new.len());
                v.extend_from_slice(old);
                v.extend_from_slice(new);
                v
            };
            let keep_j: Vec<bool> = [tail.keep.as_slice(), keep.as_slice()].concat();
            let keep_c_j: Vec<bool> = [tail.keep_composite.as_slice(), keep_composite.as_slice()].concat();
            let real_j: Vec<Vec<f32>> = (0..nb).map(|b| joined(&tail.real[b], &r.bands[b])).collect();
            let with_composite = composite.is_some();
            let src_j: Vec<Vec<Vec<f32>>> = (0..4).map(|k| if k < active || (k == 3 && with_composite) { (0..nb).map(|b| joined(&tail.sources[k][b], &sources[k][b])).collect() } else { Vec::new() }).collect();
            let centres = y0.saturating_sub(radius).max(radius)..y1.saturating_sub(radius);
            if !centres.is_empty() {
                use rayon::prelude::*;
                ssim.par_iter_mut().enumerate().for_each(|(b, accs)| {
                    let srcs: Vec<&[f32]> = src_j[..active].iter().map(|s| s[b].as_slice()).collect();
                    let rows = centres.start - base..centres.end - base;
                    metrics::ssim_add_sources(&mut accs[..active], &real_j[b], &srcs, width, &keep_j, cfg.data_range, rows.clone());
                    if with_composite {
                        metrics::ssim_add(&mut accs[3], &real_j[b], &src_j[3][b], width, &keep_c_j, cfg.data_range, rows);
                    }
                });
            }
            let rows_j = keep_j.len() / width;
            let from = rows_j.saturating_sub(2 * radius) * width;
            tail.keep = keep_j[from..].to_vec();
            tail.keep_composite = keep_c_j[from..].to_vec();
            tail.real = real_j.iter().map(|v| v[from..].to_vec()).collect();
            for (k, src) in src_j.iter().enumerate() {
                tail.sources[k] = src.iter().map(|v| v[from..].to_vec()).collect();
            }
        }
        let real_refs: Vec<&[f32]> = r.bands.iter().map(Vec::as_slice).collect();
        let radar_map = radar.as_ref().map(|((a, b), _)| (*a, *b)).zip(threshold);
        use rayon::prelude::*;
        sums.par_iter_mut().enumerate().for_each(|(k, acc)| {
            let (mut real_sev, mut src_sev) = (vec![NO_DATA; n], vec![NO_DATA; n]);
            if k < 4 {
                if !(k < active || (k == 3 && composite.is_some())) {
                    return;
                }
                let src = sources[k];
                let keep = if k == 3 { &keep_composite } else { &keep };
                for b in 0..nb {
                    acc.errors[b].add(&r.bands[b], &src[b], keep);
                }
                let refs: Vec<&[f32]> = src.iter().map(Vec::as_slice).collect();
                for i in (0..n).filter(|&i| keep[i]) {
                    if let Some(angle) = spectral_angle_deg(&real_refs, &refs, i) {
                        acc.sam.sum += angle;
                        acc.sam.count += 1;
                    }
                    let (pre_nbr, real_nbr, src_nbr) = (nbr(&p.bands, i), nbr(&r.bands, i), nbr(src, i));
                    acc.nbr.add(&[real_nbr], &[src_nbr], &[true]);
                    let (d_real, d_src) = (pre_nbr - real_nbr - off_real, pre_nbr - src_nbr - source_offsets[k]);
                    acc.dnbr.add(&[d_real], &[d_src], &[true]);
                    real_sev[i] = th.classify(d_real);
                    src_sev[i] = th.classify(d_src);
                }
            } else {
                // The radar-only map: burned at or below the threshold.
                let Some(((a, b), t)) = radar_map else { return };
                let (burned, unburned) = (th.classify(1.0), th.classify(0.0));
                for i in (0..n).filter(|&i| keep[i]) {
                    let change = x.bands[b][i] - x.bands[a][i];
                    if change.is_finite() {
                        real_sev[i] = th.classify(nbr(&p.bands, i) - nbr(&r.bands, i) - off_real);
                        src_sev[i] = if (change as f64) <= t { burned } else { unburned };
                    }
                }
            }
            acc.counts.add(&real_sev, &src_sev, th);
            if let Some(inside) = &inside {
                acc.perimeter.add_reference(inside, &src_sev, th);
            }
        });
    }
    let scores = |k: usize| ImageScores {
        mae: sums[k].errors.iter().map(|e| e.mae()).sum::<f64>() / nb.max(1) as f64,
        psnr_db: {
            let total = sums[k].errors.iter().fold(ErrorSums::default(), |a, e| ErrorSums { squared: a.squared + e.squared, absolute: a.absolute + e.absolute, count: a.count + e.count });
            total.psnr(cfg.data_range)
        },
        ssim: ssim.iter().map(|band| band[k].mean()).sum::<f64>() / nb.max(1) as f64,
        sam_deg: sums[k].sam.mean(),
        nbr_mae: sums[k].nbr.mae(),
        dnbr_mae: sums[k].dnbr.mae(),
    };
    let versus = |k: usize| perimeter.map(|_| sums[k].perimeter.agreement(pixel_area_m2));
    let offset = |k: usize| offsets.map(|_| source_offsets[k] as f64);
    let mut rows = vec![
        BaselineRow { id: "synthetic".into(), name: "synthetic image (this run)".into(), image: scores(0), burned: sums[0].counts.agreement(pixel_area_m2), perimeter: versus(0), pixels: None, dnbr_offset: offset(0) },
        BaselineRow { id: "persistence".into(), name: "persistence (the pre-fire image as it is)".into(), image: scores(1), burned: sums[1].counts.agreement(pixel_area_m2), perimeter: versus(1), pixels: None, dnbr_offset: offset(1) },
    ];
    if linear.is_some() {
        rows.push(BaselineRow { id: "linear".into(), name: format!("linear model (per-band ridge, lambda {RIDGE_LAMBDA})"), image: scores(2), burned: sums[2].counts.agreement(pixel_area_m2), perimeter: versus(2), pixels: None, dnbr_offset: offset(2) });
    }
    if let Some(c) = &composite {
        // The file with its folder (`composite-t1/S2.tif`).
        let file = c.path.iter().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect::<PathBuf>().display().to_string();
        rows.push(BaselineRow { id: "composite".into(), name: format!("post-fire composite ({file})"), image: scores(3), burned: sums[3].counts.agreement(pixel_area_m2), perimeter: versus(3), pixels: Some(count_composite), dnbr_offset: offset(3) });
    }
    if let (Some((_, pol)), Some(t)) = (&radar, threshold) {
        let none = ImageScores { mae: f64::NAN, psnr_db: f64::NAN, ssim: f64::NAN, sam_deg: f64::NAN, nbr_mae: f64::NAN, dnbr_mae: f64::NAN };
        rows.push(BaselineRow { id: "radar".into(), name: format!("radar-only burned area ({pol} change <= {t:.2} dB)"), image: none, burned: sums[4].counts.agreement(pixel_area_m2), perimeter: versus(4), pixels: None, dnbr_offset: None });
    }
    let synthetic = rows[0].clone();
    let beaten_by = rows[1..]
        .iter()
        .filter_map(|b| {
            let kappa = b.burned.kappa > synthetic.burned.kappa;
            let dnbr = b.image.dnbr_mae < synthetic.image.dnbr_mae;
            match (kappa, dnbr) {
                (false, false) => None,
                _ => Some(format!(
                    "the {} beats the synthetic image on {} (kappa {:.3} against {:.3}{})",
                    b.name,
                    match (kappa, dnbr) {
                        (true, true) => "burned-area kappa and dNBR error",
                        (true, false) => "burned-area kappa",
                        _ => "dNBR error",
                    },
                    b.burned.kappa,
                    synthetic.burned.kappa,
                    if b.image.dnbr_mae.is_finite() { format!(", dNBR MAE {:.3} against {:.3}", b.image.dnbr_mae, synthetic.image.dnbr_mae) } else { String::new() }
                )),
            }
        })
        .collect();
    let mut notes = Vec::new();
    if cfg.simulated_burn.is_some() {
        notes.push("the burn is simulated in the radar too: the linear model and the radar-only map read it from the radar's change, so their rows are close to an oracle here".into());
    }
    match (&radar, threshold) {
        (Some((_, pol)), Some(t)) => notes.push(format!("radar-only: burned where the {pol} backscatter changed by {t:+.2} dB or less between t0 and t1, the threshold that maximises F1 against the real burned map on the training blocks' clear pixels (Tanase et al. 2010)")),
        (Some(_), None) => notes.push("no radar-only map: no burned pixel in the training blocks to set its threshold".into()),
        (None, _) => notes.push("no radar-only map: the dataset has no Sentinel-1 at both dates".into()),
    }
    match &composite {
        Some(_) => notes.push(format!("the composite row is scored where the composite has a clear observation: {count_composite} of the {count} pixels")),
        None => notes.push("no post-fire composite: none of the t1 window (it takes several acquisitions of the window, without the target date)".into()),
    }
    if every > 1 {
        notes.push(format!("the linear model and the radar-only threshold are fitted on every {} strip of {strip} rows ({n_fit} training pixels): more do not change a fit of {nf} coefficients a band", ordinal(every)));
    }
    if linear.is_none() {
        notes.push(format!("no linear model: {n_fit} clear training pixels with every input (too few, or the inputs are collinear)"));
    }
    let radar_threshold_db = radar.zip(threshold).map(|((_, pol), t)| (pol, t));
    Ok(Baselines { pixels: format!("{} where t1 is clear and every source has a value", held.description), count, rows, linear, radar_threshold_db, notes, beaten_by, seconds: started.elapsed().as_secs_f64() })
}

/// `2nd`, `3rd`, `4th`, ...
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// One source's sums over the compared pixels: per band errors, spectral angle, NBR and dNBR
/// errors, and its burned map against the real one and the official perimeter.
#[derive(Clone, Default)]
struct SourceSums {
    errors: Vec<ErrorSums>,
    sam: MeanSum,
    nbr: ErrorSums,
    dnbr: ErrorSums,
    counts: BurnedCounts,
    perimeter: BurnedCounts,
}

/// The last rows of the previous strip that SSIM's windows reach into: the kept pixels (and
/// those the composite also covers), the real image's bands and each image source's.
struct Tail {
    keep: Vec<bool>,
    keep_composite: Vec<bool>,
    real: Vec<Vec<f32>>,
    sources: Vec<Vec<Vec<f32>>>,
}

/// Bins of the radar change's histogram: 0.05 dB from -20 to +20 dB (outside: the end bins).
const RADAR_BINS: usize = 800;
const RADAR_LOW: f32 = -20.0;
const RADAR_STEP: f32 = 0.05;

fn radar_bin(change: f32) -> usize {
    (((change - RADAR_LOW) / RADAR_STEP).floor().max(0.0) as usize).min(RADAR_BINS - 1)
}

/// The threshold (a bin's upper edge, dB) maximising F1 when "burned" is a change at or below
/// it, from `[unburned, burned]` counts per bin; `None` without a burned pixel.
fn best_threshold(hist: &[[u64; 2]]) -> Option<f64> {
    let burned: u64 = hist.iter().map(|h| h[1]).sum();
    if burned == 0 {
        return None;
    }
    let (mut tp, mut fp, mut best) = (0u64, 0u64, (0f64, None));
    for (k, h) in hist.iter().enumerate() {
        tp += h[1];
        fp += h[0];
        let f1 = 2.0 * tp as f64 / (2 * tp + fp + (burned - tp)) as f64;
        if f1 > best.0 {
            best = (f1, Some((RADAR_LOW + RADAR_STEP * (k + 1) as f32) as f64));
        }
    }
    best.1
}

/// The ridge fit from raw sums: standardized features (means and deviations from the sums),
/// `lambda` per pixel on the diagonal but not the intercept, folded back to raw coefficients.
fn fit(names: &[String], bands: &[&str], xtx: &[f64], xty: &[f64], n: u64) -> Option<LinearModel> {
    let nf = names.len() + 1;
    let nb = bands.len();
    let p = names.len();
    if n < (4 * nf) as u64 {
        return None;
    }
    let nn = n as f64;
    // Column sums sit in the intercept's row (the last).
    let mean: Vec<f64> = (0..p).map(|a| xtx[(nf - 1) * nf + a] / nn).collect();
    let sd: Vec<f64> = (0..p).map(|a| (xtx[a * nf + a] / nn - mean[a] * mean[a]).max(0.0).sqrt()).collect();
    if sd.iter().any(|s| *s <= 1e-12) {
        return None;
    }
    // Z'Z / n and Z'y / n of the centred, scaled features.
    let mut a = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            a[i * p + j] = (xtx[i * nf + j] / nn - mean[i] * mean[j]) / (sd[i] * sd[j]);
        }
        a[i * p + i] += RIDGE_LAMBDA;
    }
    let mut out = Vec::with_capacity(nb);
    for b in 0..nb {
        let ymean = xty[(nf - 1) * nb + b] / nn;
        let rhs: Vec<f64> = (0..p).map(|i| (xty[i * nb + b] / nn - mean[i] * ymean) / sd[i]).collect();
        let beta = crate::indices::linalg::solve_spd(&a, &rhs, p)?;
        let coef: Vec<f64> = (0..p).map(|i| beta[i] / sd[i]).collect();
        let intercept = ymean - (0..p).map(|i| coef[i] * mean[i]).sum::<f64>();
        out.push((bands[b].to_string(), intercept, coef));
    }
    Some(LinearModel { features: names.to_vec(), bands: out, lambda: RIDGE_LAMBDA, pixels: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ridge_fit_from_sums_finds_a_known_linear_relation() {
        // y0 = 0.1 + 2 a - 0.5 b, y1 = -0.2 + 0.3 b, over a grid of (a, b); lambda small.
        let names = vec!["a".to_string(), "b".to_string()];
        let (nf, nb) = (3, 2);
        let (mut xtx, mut xty, mut n) = (vec![0.0; nf * nf], vec![0.0; nf * nb], 0u64);
        for i in 0..40 {
            for j in 0..30 {
                let (a, b) = (i as f64 * 0.1, (j as f64 * 0.37).sin() * 3.0);
                let x = [a, b, 1.0];
                let y = [0.1 + 2.0 * a - 0.5 * b, -0.2 + 0.3 * b];
                for r in 0..nf {
                    for c in 0..nf {
                        xtx[r * nf + c] += x[r] * x[c];
                    }
                    for k in 0..nb {
                        xty[r * nb + k] += x[r] * y[k];
                    }
                }
                n += 1;
            }
        }
        let m = fit(&names, &["B1", "B2"], &xtx, &xty, n).unwrap();
        let (i0, c0) = (m.bands[0].1, &m.bands[0].2);
        assert!((i0 - 0.1).abs() < 1e-2 && (c0[0] - 2.0).abs() < 1e-2 && (c0[1] + 0.5).abs() < 1e-2, "{:?}", m.bands[0]);
        assert!((m.bands[1].1 + 0.2).abs() < 1e-2 && c0.len() == 2 && (m.bands[1].2[1] - 0.3).abs() < 1e-2, "{:?}", m.bands[1]);
        // Too few pixels: no model.
        assert!(fit(&names, &["B1"], &xtx, &xty[..0], 5).is_none());
    }

    #[test]
    fn without_a_composite_the_parameters_are_as_before() {
        let with = BaselineInputs { inputs_vrt: "dataset/inputs.vrt".into(), composite: None };
        assert_eq!(serde_json::to_value(&with).unwrap(), serde_json::json!({"inputs_vrt": "dataset/inputs.vrt"}));
        let back: BaselineInputs = serde_json::from_value(serde_json::json!({"inputs_vrt": "x.vrt"})).unwrap();
        assert_eq!(back.composite, None);
    }

    #[test]
    fn the_radar_threshold_maximises_f1() {
        // Burned pixels at -3 dB, unburned at 0 dB with a few at -3 too: the edge just above -3.
        let mut hist = vec![[0u64; 2]; RADAR_BINS];
        hist[radar_bin(-3.0)] = [2, 100];
        hist[radar_bin(0.0)] = [1000, 5];
        let t = best_threshold(&hist).unwrap();
        assert!(t > -3.0 && t <= -2.9, "{t}");
        assert_eq!(best_threshold(&vec![[5, 0]; RADAR_BINS]), None);
        assert_eq!((radar_bin(-100.0), radar_bin(100.0)), (0, RADAR_BINS - 1));
    }

    #[test]
    fn features_take_the_channels_and_the_radar_change() {
        let channels: Vec<String> = ["S1_t0:VV", "S1_t0:VH", "S1_t1:VV", "S1_t1:VH", "S2_t0:B04", "S2_t0:mask"].map(String::from).to_vec();
        let (names, used, pairs) = features(&channels);
        assert_eq!(names, ["S1_t0:VV", "S1_t0:VH", "S1_t1:VV", "S1_t1:VH", "S2_t0:B04", "dB change VV", "dB change VH"]);
        assert_eq!(used, [0, 1, 2, 3, 4]);
        assert_eq!(pairs, [(0, 2), (1, 3)]);
    }
}
