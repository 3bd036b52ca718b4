//! Assessment: judges a synthetic post-fire Sentinel-2 image by the burned-area map it yields,
//! against the map from the real post-fire image (same pre-fire image for both), and by its
//! image quality. Writes index rasters, severity maps (GeoTIFF with colour table + QGIS style),
//! burned-area perimeters (GeoJSON), and a report (JSON, CSV, PNG figures, one HTML page).
//!
//! Inputs are three rasters on one grid, with bands named by their descriptions (as the
//! pipeline writes them) or by a band order given by the user.

pub mod agreement;
pub mod indices;
pub mod metrics;
mod project;
pub mod report;
pub mod severity;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::job::Progress;
use crate::raster::{self, BandStack, ClassRaster, WriteOptions};
use agreement::{BurnedAgreement, ConfusionMatrix};
use severity::{Severity, SeverityThresholds};

/// The names of the files an assessment writes into its folder.
pub use crate::project::assess_files as files;

pub use project::{ProjectAssessment, assess_project, assess_project_files};

/// Reads a number that JSON holds as `null` when it was not finite (serde_json writes NaN and
/// infinities as `null`), so a report reads back as it was written.
pub(crate) fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The near-infrared band used in NBR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NirBand {
    /// B8, 10 m, broad NIR (the default).
    #[default]
    B08,
    /// B8A, 20 m, narrow NIR (closer to Landsat's NIR band).
    B8A,
}

impl NirBand {
    pub fn name(self) -> &'static str {
        match self {
            NirBand::B08 => "B08",
            NirBand::B8A => "B8A",
        }
    }
}

/// Parameters of the assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssessConfig {
    /// Band names of the inputs, in file order, for files without band descriptions.
    pub band_order: Option<Vec<String>>,
    /// Multiplier from stored values to reflectance (e.g. 0.0001 for DN x 10000).
    pub scale: f32,
    pub nir: NirBand,
    pub thresholds: SeverityThresholds,
    /// Data range of reflectances for PSNR and SSIM.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub data_range: f64,
    /// Bands compared for image quality.
    pub quality_bands: Vec<String>,
    /// When the post-fire image carries a simulated burn scar, what was simulated; shown in
    /// every output.
    pub simulated_burn: Option<String>,
    /// Pixels the model never trained on, for a second agreement over them alone.
    pub held_out: Option<HeldOut>,
}

/// A set of pixels (row-major on the grid) with what it is, in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub description: String,
    /// Number of pixels in the set (so the parameters change when the set does).
    pub pixels: usize,
    #[serde(skip)]
    pub mask: Vec<bool>,
}

/// The burned-area agreement over held-out pixels only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutAgreement {
    pub description: String,
    pub burned: BurnedAgreement,
}

impl Default for AssessConfig {
    fn default() -> Self {
        AssessConfig {
            band_order: None,
            scale: 1.0,
            nir: NirBand::B08,
            thresholds: SeverityThresholds::default(),
            data_range: 1.0,
            quality_bands: ["B02", "B03", "B04", "B08", "B11", "B12"].map(String::from).to_vec(),
            simulated_burn: None,
            held_out: None,
        }
    }
}

/// The three images compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssessInputs {
    /// Pre-fire Sentinel-2 (t0).
    pub pre: PathBuf,
    /// Real post-fire Sentinel-2 (t1): the reference.
    pub real: PathBuf,
    /// Synthetic post-fire Sentinel-2 (t1) from the model.
    pub synthetic: PathBuf,
}

/// Quality of one band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandQuality {
    pub band: String,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub psnr_db: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub ssim: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub rmse: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub mae: f64,
}

/// Image quality over all compared bands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub bands: Vec<BandQuality>,
    /// PSNR from the MSE over every band's valid pixels.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub psnr_db: f64,
    /// Mean of the bands' SSIM.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub ssim: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub rmse: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub mae: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub sam_degrees: f64,
    pub valid_pixels: u64,
}

/// Area of each severity class, real and synthetic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassArea {
    pub class: String,
    pub code: u8,
    /// Over the pixels with data in both maps (as the agreement).
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub hectares_real: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub hectares_synthetic: f64,
    /// Over every pixel of the synthetic map, including those the real image cannot show
    /// (clouds): what the synthetic image adds.
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub hectares_synthetic_all: f64,
}

/// Everything the assessment found; also written as report.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssessReport {
    pub tool_version: String,
    pub inputs: AssessInputs,
    pub config: AssessConfig,
    pub width: usize,
    pub height: usize,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub pixel_area_m2: f64,
    pub crs_wkt: String,
    /// Which bands made NBR, in words.
    pub nbr_definition: String,
    pub quality: Quality,
    pub burned: BurnedAgreement,
    pub severity_confusion: ConfusionMatrix,
    /// Agreement over the pixels the model never trained on, when the caller knows them.
    pub held_out: Option<HeldOutAgreement>,
    pub severity_areas: Vec<ClassArea>,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub mean_dnbr_real: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub mean_dnbr_synthetic: f64,
    /// Files written, relative to the output folder.
    pub files: Vec<String>,
}

/// One input raster with its bands found by name.
struct Image {
    path: PathBuf,
    names: Vec<String>,
    info: raster::RasterInfo,
}

impl Image {
    fn open(path: &Path, band_order: Option<&[String]>) -> Result<Image> {
        let loc = path.display().to_string();
        let info = raster::info(&loc)?;
        let names: Vec<String> = match band_order {
            Some(order) => {
                if order.len() != info.bands.len() {
                    return Err(Error::Raster {
                        location: loc,
                        message: format!("--band-order names {} bands but the file has {}", order.len(), info.bands.len()),
                    });
                }
                order.to_vec()
            }
            None => info.bands.iter().map(|b| b.description.trim().to_ascii_uppercase()).collect(),
        };
        Ok(Image { path: path.to_path_buf(), names, info })
    }

    fn band_index(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n.eq_ignore_ascii_case(name)).map(|i| i + 1).ok_or_else(|| Error::Raster {
            location: self.path.display().to_string(),
            message: format!(
                "no band named {name} (bands: {}); name the bands with --band-order, e.g. --band-order B02,B03,B04,B08,B11,B12",
                if self.names.iter().all(|n| n.is_empty()) { "unnamed".to_string() } else { self.names.join(", ") }
            ),
        })
    }

    /// Reads the named bands, scaled to reflectance. Where the file has a `mask` band (as a
    /// project's preprocessed Sentinel-2 has: 1 for cloud, shadow or no data), masked pixels are
    /// not valid and read as NaN.
    fn read(&self, names: &[&str], scale: f32) -> Result<BandStack> {
        let idx = names.iter().map(|n| self.band_index(n)).collect::<Result<Vec<_>>>()?;
        let location = self.path.display().to_string();
        let mut stack = raster::read_window(&location, &idx, None)?;
        if scale != 1.0 {
            stack.bands.iter_mut().flatten().for_each(|v| *v *= scale);
        }
        if let Some(m) = self.names.iter().position(|n| n.eq_ignore_ascii_case("mask")) {
            let mask = raster::read_window(&location, &[m + 1], None)?;
            for (i, masked) in mask.bands[0].iter().enumerate() {
                if *masked != 0.0 {
                    stack.valid[i] = false;
                    stack.bands.iter_mut().for_each(|b| b[i] = f32::NAN);
                }
            }
        }
        Ok(stack)
    }
}

/// Runs the assessment on three files and writes every output into `out_dir`.
pub fn assess_files(inputs: &AssessInputs, out_dir: &Path, cfg: &AssessConfig, progress: &Progress) -> Result<AssessReport> {
    progress.cleaned(crate::fsutil::remove_stale_partials(out_dir, 1));
    cfg.thresholds.validate().map_err(|m| Error::invalid("thresholds", m))?;
    let total = 7;
    progress.started(Some(total));
    let order = cfg.band_order.as_deref();
    let pre = Image::open(&inputs.pre, order)?;
    let real = Image::open(&inputs.real, order)?;
    let synth = Image::open(&inputs.synthetic, order)?;
    for other in [&real, &synth] {
        let (a, b) = (&pre.info, &other.info);
        if (a.width, a.height) != (b.width, b.height) || a.geo_transform != b.geo_transform {
            return Err(Error::Raster {
                location: other.path.display().to_string(),
                message: format!(
                    "not on the grid of {} ({} x {} at {:?} vs {} x {} at {:?}); warp it onto the project grid first",
                    pre.path.display(),
                    b.width,
                    b.height,
                    b.geo_transform,
                    a.width,
                    a.height,
                    a.geo_transform
                ),
            });
        }
    }
    let (width, height) = (pre.info.width, pre.info.height);
    let gt = pre.info.geo_transform;
    let pixel_area_m2 = (gt[1] * gt[5]).abs();
    let crs_wkt = pre.info.crs_wkt.clone();

    // Indices and severity.
    progress.advanced(1, total, "burn indices");
    let nir = cfg.nir.name();
    let index_bands = [nir, "B12", "B04"];
    let pre_s = pre.read(&index_bands, cfg.scale)?;
    let real_s = real.read(&index_bands, cfg.scale)?;
    let synth_s = synth.read(&index_bands, cfg.scale)?;
    let nbr_pre = indices::nbr(&pre_s.bands[0], &pre_s.bands[1], &pre_s.valid);
    let mut rasters_written = Vec::new();
    let mut outputs = |name: &str, post: &BandStack| -> Result<(Vec<f32>, Vec<Severity>)> {
        let nbr_post = indices::nbr(&post.bands[0], &post.bands[1], &post.valid);
        let dnbr = indices::dnbr(&nbr_pre, &nbr_post);
        let rdnbr = indices::rdnbr(&nbr_pre, &dnbr);
        let rbr = indices::rbr(&nbr_pre, &dnbr);
        let ndvi = indices::ndvi(&post.bands[0], &post.bands[2], &post.valid);
        let valid: Vec<bool> = dnbr.iter().map(|v| v.is_finite()).collect();
        let stack = BandStack {
            width,
            height,
            bands: vec![nbr_pre.clone(), nbr_post, dnbr.clone(), rdnbr, rbr, ndvi],
            valid,
            geo_transform: gt,
            crs_wkt: crs_wkt.clone(),
            descriptions: ["NBR_pre", "NBR_post", "dNBR", "RdNBR", "RBR", "NDVI_post"].map(String::from).to_vec(),
        };
        let file = files::indices(name);
        raster::write_raster(&out_dir.join(&file), &stack, &WriteOptions::default())?;
        rasters_written.push(file);
        let classes = cfg.thresholds.classify_all(&dnbr);
        Ok((dnbr, classes))
    };
    let (dnbr_real, sev_real) = outputs("real", &real_s)?;
    progress.check_cancelled()?;
    let (dnbr_synth, sev_synth) = outputs("synthetic", &synth_s)?;
    progress.check_cancelled()?;

    // Severity rasters, style and perimeters.
    progress.advanced(2, total, "severity maps and perimeters");
    let palette: Vec<(u8, [u8; 3], &str)> = Severity::CLASSES.iter().map(|c| (*c as u8, c.color(), c.label())).collect();
    for (name, sev) in [("real", &sev_real), ("synthetic", &sev_synth)] {
        let codes: Vec<u8> = sev.iter().map(|s| *s as u8).collect();
        let file = files::severity(name);
        raster::write_classes(
            &out_dir.join(&file),
            &ClassRaster {
                width,
                height,
                codes: &codes,
                geo_transform: gt,
                crs_wkt: &crs_wkt,
                description: &format!("dNBR severity ({name})"),
                classes: &palette,
            },
        )?;
        rasters_written.push(file);
        let burned: Vec<bool> = sev.iter().map(|s| cfg.thresholds.is_burned(*s)).collect();
        let file = files::perimeter(name);
        raster::polygonize_mask(&out_dir.join(&file), &burned, width, height, gt, &crs_wkt, &format!("burned_{name}"))?;
        rasters_written.push(file);
    }
    crate::fsutil::write_atomic(&out_dir.join("severity.qml"), report::qgis_style(&cfg.thresholds).as_bytes())?;
    rasters_written.push("severity.qml".into());
    progress.check_cancelled()?;

    // Agreement.
    progress.advanced(3, total, "agreement");
    let burned = agreement::burned_agreement(&sev_real, &sev_synth, &cfg.thresholds, pixel_area_m2);
    let severity_confusion = agreement::severity_confusion(&sev_real, &sev_synth);
    let held_out = match &cfg.held_out {
        Some(h) if h.mask.len() == width * height => {
            let only = |sev: &[Severity]| -> Vec<Severity> { sev.iter().zip(&h.mask).map(|(s, keep)| if *keep { *s } else { Severity::NoData }).collect() };
            let burned = agreement::burned_agreement(&only(&sev_real), &only(&sev_synth), &cfg.thresholds, pixel_area_m2);
            Some(HeldOutAgreement { description: h.description.clone(), burned })
        }
        Some(h) => {
            return Err(Error::invalid("held-out pixels", format!("{} values for a {width} x {height} grid", h.mask.len())));
        }
        None => None,
    };
    let ha = pixel_area_m2 / 10_000.0;
    let severity_areas = Severity::CLASSES
        .iter()
        .map(|c| ClassArea {
            class: c.label().into(),
            code: *c as u8,
            hectares_real: sev_real.iter().zip(&sev_synth).filter(|(r, s)| *r == c && **s != Severity::NoData).count() as f64 * ha,
            hectares_synthetic: sev_synth.iter().zip(&sev_real).filter(|(s, r)| *s == c && **r != Severity::NoData).count() as f64 * ha,
            hectares_synthetic_all: sev_synth.iter().filter(|s| *s == c).count() as f64 * ha,
        })
        .collect();

    // Image quality, band by band (memory: two bands at a time plus the spectra for SAM).
    progress.advanced(4, total, "image quality");
    let quality = quality(&real, &synth, cfg, width, height, progress)?;

    let mean = |v: &[f32]| {
        let (s, n) = v.iter().filter(|x| x.is_finite()).fold((0.0f64, 0u64), |(s, n), x| (s + *x as f64, n + 1));
        if n == 0 { f64::NAN } else { s / n as f64 }
    };
    let mut report = AssessReport {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        inputs: inputs.clone(),
        config: cfg.clone(),
        width,
        height,
        pixel_area_m2,
        crs_wkt: crs_wkt.clone(),
        nbr_definition: format!("NBR = ({nir} - B12) / ({nir} + B12)"),
        quality,
        burned,
        severity_confusion,
        held_out,
        severity_areas,
        mean_dnbr_real: mean(&dnbr_real),
        mean_dnbr_synthetic: mean(&dnbr_synth),
        files: rasters_written,
    };

    progress.advanced(5, total, "figures");
    let figures = report::Figures { pre: &pre, real: &real, synthetic: &synth, cfg, dnbr_real: &dnbr_real, dnbr_synthetic: &dnbr_synth, sev_real: &sev_real, sev_synthetic: &sev_synth };
    let pngs = report::write_figures(out_dir, &figures, &report)?;
    report.files.extend(pngs.iter().cloned());
    progress.check_cancelled()?;

    progress.advanced(6, total, "report");
    report::write_tables(out_dir, &mut report)?;
    report::write_html(out_dir, &mut report, &pngs)?;
    progress.advanced(7, total, "done");
    Ok(report)
}

fn quality(real: &Image, synth: &Image, cfg: &AssessConfig, width: usize, height: usize, progress: &Progress) -> Result<Quality> {
    let mut bands = Vec::new();
    let (mut sq, mut abs, mut n) = (0.0f64, 0.0f64, 0u64);
    let mut real_spectra = Vec::new();
    let mut synth_spectra = Vec::new();
    let mut valid_all: Option<Vec<bool>> = None;
    for name in &cfg.quality_bands {
        progress.check_cancelled()?;
        let r = real.read(&[name.as_str()], cfg.scale)?;
        let s = synth.read(&[name.as_str()], cfg.scale)?;
        let valid: Vec<bool> = r.valid.iter().zip(&s.valid).map(|(a, b)| *a && *b).collect();
        let (rb, sb) = (&r.bands[0], &s.bands[0]);
        let rmse = metrics::rmse(rb, sb, &valid);
        let mae = metrics::mae(rb, sb, &valid);
        let count = valid.iter().filter(|v| **v).count() as u64;
        sq += rmse * rmse * count as f64;
        abs += mae * count as f64;
        n += count;
        bands.push(BandQuality {
            band: name.clone(),
            psnr_db: metrics::psnr(rb, sb, &valid, cfg.data_range),
            ssim: metrics::ssim(rb, sb, width, height, &valid, cfg.data_range),
            rmse,
            mae,
        });
        valid_all = Some(match valid_all {
            None => valid,
            Some(v) => v.iter().zip(&valid).map(|(a, b)| *a && *b).collect(),
        });
        real_spectra.push(r.bands.into_iter().next().unwrap_or_default());
        synth_spectra.push(s.bands.into_iter().next().unwrap_or_default());
    }
    let valid = valid_all.unwrap_or_default();
    let rr: Vec<&[f32]> = real_spectra.iter().map(Vec::as_slice).collect();
    let ss: Vec<&[f32]> = synth_spectra.iter().map(Vec::as_slice).collect();
    let mse = if n == 0 { f64::NAN } else { sq / n as f64 };
    Ok(Quality {
        psnr_db: if mse == 0.0 { f64::INFINITY } else { 10.0 * (cfg.data_range * cfg.data_range / mse).log10() },
        ssim: bands.iter().map(|b| b.ssim).sum::<f64>() / bands.len().max(1) as f64,
        rmse: mse.sqrt(),
        mae: if n == 0 { f64::NAN } else { abs / n as f64 },
        sam_degrees: metrics::sam_degrees(&rr, &ss, &valid),
        valid_pixels: valid.iter().filter(|v| **v).count() as u64,
        bands,
    })
}

