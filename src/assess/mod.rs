//! Assessment: judges a synthetic post-fire Sentinel-2 image by the burned-area map it yields,
//! against the map from the real post-fire image (same pre-fire image for both), and by its
//! image quality. Writes index rasters, severity maps (GeoTIFF with colour table + QGIS style),
//! burned-area perimeters (GeoJSON), and a report (JSON, CSV, PNG figures, one HTML page).
//!
//! Inputs are three rasters on one grid, with bands named by their descriptions (as the
//! pipeline writes them) or by a band order given by the user.
//!
//! The room's files: this front (settings, inputs, the report's types, the input images),
//! `compute` (the assessment itself, strip by strip), `agreement`, `qa`, `uncertainty`,
//! `offset`, `perimeters`, `plots` (field plots and CBI calibration), `baselines`, `gapfill`,
//! `report` (JSON, CSV, figures, HTML), `stac` (the outputs as a STAC catalog) and `project`
//! (a project's assessment). Indices, metrics and severity classes are `crate::indices`'s.

pub mod agreement;
pub mod baselines;
mod compute;
mod draw;
pub mod gapfill;
pub mod offset;
pub mod perimeters;
pub mod plots;
mod project;
pub mod qa;
pub mod report;
pub mod stac;
pub mod uncertainty;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::job::Progress;
use crate::raster::{self, BandStack, PixelWindow};
use agreement::{BurnedAgreement, ConfusionMatrix};
use crate::indices::severity::SeverityScheme;

/// The names of the files an assessment writes into its folder.
pub use crate::project::assess_files as files;
pub use compute::assess_files;
pub use project::{ProjectAssessment, assess_project, assess_project_files, assessed_classes};

/// Reads a number that JSON holds as `null` when it was not finite (serde_json writes NaN and
/// infinities as `null`), so a report reads back as it was written.
pub(crate) fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// The severity classes and the least severe one counted as burned (settings from before
    /// schemes held the six USGS bounds as `thresholds`).
    #[serde(alias = "thresholds")]
    pub severity_classes: SeverityScheme,
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
    /// Where the uncertainty is checked when not over `held_out`: the test blocks alone, when
    /// the validation blocks calibrated the run's uncertainty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty_held_out: Option<HeldOut>,
    /// An official fire perimeter (any vector file OGR reads) both burned maps are compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perimeter: Option<PathBuf>,
    /// The dataset's inputs, for the baselines (persistence, a linear model) scored beside the
    /// synthetic image over the held-out pixels: project mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baselines: Option<baselines::BaselineInputs>,
    /// The mean dNBR of unburned pixels subtracted from every map before RdNBR, RBR and the
    /// classes ([`offset`]); settings from before it read as off.
    #[serde(default = "offset::DnbrOffset::off")]
    pub dnbr_offset: offset::DnbrOffset,
    /// How the burned maps are cleaned before their perimeters are drawn; off: as classified.
    #[serde(default, skip_serializing_if = "perimeters::PerimeterCleaning::is_off")]
    pub perimeter_cleaning: perimeters::PerimeterCleaning,
    /// Field plots with a CBI each: fits against CBI, and the CBI classes on request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plots: Option<plots::FieldPlots>,
}

/// Both burned maps judged against an official perimeter. In each agreement the perimeter
/// takes the place of the real map: `burned_ha_real` is the perimeter's area over the pixels
/// where that map has data, `burned_ha_synthetic` the map's burned area there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerimeterAgreement {
    pub file: PathBuf,
    /// Polygon features read.
    pub features: usize,
    /// The polygons' area, and the part of it on the grid (pixels whose centre is inside).
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub area_ha: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub area_ha_on_grid: f64,
    /// The real burned map against the perimeter, over the pixels where it has data.
    pub real: BurnedAgreement,
    /// The synthetic burned map against the perimeter, over every pixel it covers.
    pub synthetic: BurnedAgreement,
}

/// A set of square blocks of the grid with what it is, in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub description: String,
    /// Number of pixels in the set (so the parameters change when the set does).
    pub pixels: usize,
    /// Side of a block, pixels.
    #[serde(skip)]
    pub block: usize,
    /// `blocks[by][bx]`: whether the block at (bx, by) is in the set.
    #[serde(skip)]
    pub blocks: Vec<Vec<bool>>,
}

impl HeldOut {
    /// Whether the set covers a `width` x `height` grid (every pixel falls in a block).
    fn fits(&self, width: usize, height: usize) -> bool {
        self.block > 0 && self.blocks.len() == height.div_ceil(self.block) && self.blocks.iter().all(|r| r.len() == width.div_ceil(self.block))
    }

    fn contains(&self, x: usize, y: usize) -> bool {
        self.blocks[y / self.block][x / self.block]
    }
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
            severity_classes: SeverityScheme::usgs(),
            data_range: 1.0,
            quality_bands: ["B02", "B03", "B04", "B08", "B11", "B12"].map(String::from).to_vec(),
            simulated_burn: None,
            held_out: None,
            uncertainty_held_out: None,
            perimeter: None,
            baselines: None,
            dnbr_offset: offset::DnbrOffset::default(),
            perimeter_cleaning: perimeters::PerimeterCleaning::default(),
            plots: None,
        }
    }
}

/// The three images compared.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AssessInputs {
    /// Pre-fire Sentinel-2 (t0).
    pub pre: PathBuf,
    /// Real post-fire Sentinel-2 (t1): the reference.
    pub real: PathBuf,
    /// Synthetic post-fire Sentinel-2 (t1) from the model.
    pub synthetic: PathBuf,
    /// With Monte-Carlo dropout: the passes' standard deviation per band (bands `<band> sd`),
    /// the burn probability, and the number of passes the synthetic image is the mean of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_probability: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// The data's attribution with its year, for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
    /// What makes the outputs (program, run, generator checksum), written into each raster's
    /// TIFF software tag; the program's version alone when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
    /// The t0 window's composite: the pre-fire image of every dNBR where t0 is cloudy (project
    /// mode, project.yaml's `composite: {t0: ...}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_fill: Option<PathBuf>,
    /// The gap-filled post-fire image to write beside the assessment (project mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gapfill: Option<gapfill::GapFillRequest>,
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
    /// The build that wrote it.
    #[serde(default)]
    pub provenance: crate::provenance::Provenance,
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
    /// Agreement of both burned maps with an official perimeter, when one was given.
    #[serde(default)]
    pub perimeter: Option<PerimeterAgreement>,
    /// How honest the Monte-Carlo uncertainty is, when the inputs have it.
    #[serde(default)]
    pub uncertainty: Option<uncertainty::UncertaintyCheck>,
    /// The synthetic image against what an analyst has without it, over the held-out pixels
    /// (project mode).
    #[serde(default)]
    pub baselines: Option<baselines::Baselines>,
    /// Pixels whose pre-fire value came from the t0 composite (`inputs.pre_fill`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pre_filled_pixels: u64,
    /// The gap-filled post-fire image: how much of the grid each source fills, its burned area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gapfill: Option<gapfill::GapFillSummary>,
    pub severity_areas: Vec<ClassArea>,
    /// The dNBR offsets subtracted, and over which pixels (none when off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnbr_offset: Option<offset::OffsetReport>,
    /// The burned maps' perimeter polygons: how many, their area per severity class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perimeters: Vec<perimeters::Perimeters>,
    /// The field plots and the fits against CBI, when plots were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plots: Option<plots::Calibration>,
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

    /// Whether `other` lies on this image's grid: the same size, geotransform and CRS.
    fn same_grid(&self, other: &Image) -> bool {
        let (a, b) = (&self.info, &other.info);
        (a.width, a.height) == (b.width, b.height) && a.geo_transform == b.geo_transform && raster::same_crs(&a.crs_wkt, &b.crs_wkt)
    }

    /// The pre-fire NBR of `rows` (this image the chosen t0): its own where it has one, else
    /// `fill`'s (the t0 window's composite); with the number of pixels `fill` gave. The one
    /// place every dNBR of an assessment takes its pre-fire side from.
    fn prefire_nbr(&self, fill: Option<&Image>, nir: &str, scale: f32, rows: Range<usize>) -> Result<(Vec<f32>, u64)> {
        let t0 = self.read(&[nir, "B12"], scale, rows.clone())?;
        let mut nbr = crate::indices::spectral::nbr(&t0.bands[0], &t0.bands[1], &t0.valid);
        let mut filled = 0;
        if let Some(f) = fill {
            let c = f.read(&[nir, "B12"], scale, rows)?;
            for (v, from) in nbr.iter_mut().zip(crate::indices::spectral::nbr(&c.bands[0], &c.bands[1], &c.valid)) {
                if !v.is_finite() && from.is_finite() {
                    *v = from;
                    filled += 1;
                }
            }
        }
        Ok((nbr, filled))
    }

    /// Reads the named bands, scaled to reflectance. Where the file has a `mask` band (as a
    /// project's preprocessed Sentinel-2 has: 1 for cloud, shadow or no data), masked pixels are
    /// not valid and read as NaN.
    fn read(&self, names: &[&str], scale: f32, rows: Range<usize>) -> Result<BandStack> {
        let idx = names.iter().map(|n| self.band_index(n)).collect::<Result<Vec<_>>>()?;
        let location = self.path.display().to_string();
        let window = Some(PixelWindow { x_off: 0, y_off: rows.start, width: self.info.width, height: rows.len() });
        let mut stack = raster::read_window_reusing(&location, &idx, window)?;
        if scale != 1.0 {
            stack.bands.iter_mut().flatten().for_each(|v| *v *= scale);
        }
        if let Some(m) = self.names.iter().position(|n| n.eq_ignore_ascii_case("mask")) {
            let mask = raster::read_window_reusing(&location, &[m + 1], window)?;
            for (i, masked) in mask.bands[0].iter().enumerate() {
                if *masked != 0.0 {
                    stack.valid[i] = false;
                    stack.bands.iter_mut().for_each(|b| b[i] = f32::NAN);
                }
            }
        }
        Ok(stack)
    }

    /// The named bands scaled to fit `max_side` (averaged), masked as [`Image::read`] masks.
    fn preview(&self, names: &[&str], scale: f32, max_side: usize) -> Result<BandStack> {
        let idx = names.iter().map(|n| self.band_index(n)).collect::<Result<Vec<_>>>()?;
        let location = self.path.display().to_string();
        let mut stack = raster::read_preview(&location, &idx, max_side, true)?;
        if scale != 1.0 {
            stack.bands.iter_mut().flatten().for_each(|v| *v *= scale);
        }
        if let Some(m) = self.names.iter().position(|n| n.eq_ignore_ascii_case("mask")) {
            let mask = raster::read_preview(&location, &[m + 1], max_side, false)?;
            for (i, masked) in mask.bands[0].iter().enumerate() {
                if *masked != 0.0 {
                    stack.valid[i] = false;
                }
            }
        }
        // Pixels without data take no part in the stretch.
        for (i, ok) in stack.valid.iter().enumerate() {
            if !ok {
                stack.bands.iter_mut().for_each(|b| b[i] = f32::NAN);
            }
        }
        Ok(stack)
    }
}
