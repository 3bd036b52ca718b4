//! The training set, from `preprocessed/` to `dataset/`, in the research code's layout:
//!
//! ```text
//! dataset/dataX/Sentinel1_t0/{VV,VH}.vrt + Sentinel1_t0.vrt   (one VRT per band, then a stack)
//! dataset/dataX/Sentinel1_t1/...       dataset/dataX/Sentinel2_t0/{B02,...,mask}.vrt + stack
//! dataset/dataX/dataX.vrt               every input channel in tensor order
//! dataset/label/{B02,...}.vrt + label.vrt   Sentinel-2 at t1 (the output channels)
//! dataset/label/mask.vrt                the t1 mask (valid pixels of the label)
//! dataset/tiles.csv, tiles.json         every patch: split, kept or why not, valid shares, ranges
//! dataset/normalization.json, .csv      statistics of the training split, methods
//! dataset/dataset.json                  channels, configuration, counts
//! ```
//!
//! Patches are scanned in strips of rows, one band at a time, so memory follows the grid's
//! width; the loader (`loader`) reads windows from the VRTs, so the dataset never has to fit in
//! memory.

pub mod loader;
pub mod normalize;
pub mod tiles;
pub mod yearly;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use self::normalize::{ChannelKind, Normalization, S1Method, S2Method, StatsAccumulator, TileRange};
use self::tiles::{Patch, Split, TileConfig};
use crate::catalog::stage::SearchResult;
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::{Manifest, Project, Stage, StageState};
use crate::raster::{self, PixelWindow};

/// Where a channel comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    #[serde(rename = "S1_t0")]
    S1T0,
    #[serde(rename = "S1_t1")]
    S1T1,
    #[serde(rename = "S2_t0")]
    S2T0,
    #[serde(rename = "S2_t1")]
    S2T1,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::S1T0 => "S1_t0",
            Source::S1T1 => "S1_t1",
            Source::S2T0 => "S2_t0",
            Source::S2T1 => "S2_t1",
        }
    }

    /// The research code's folder name.
    pub fn folder(self) -> &'static str {
        match self {
            Source::S1T0 => "dataX/Sentinel1_t0",
            Source::S1T1 => "dataX/Sentinel1_t1",
            Source::S2T0 => "dataX/Sentinel2_t0",
            Source::S2T1 => "label",
        }
    }
}

/// One channel of the input or output tensor: `S1_t0:VV`, `S2_t0:B04`, `mask_t0` (the S2 t0
/// cloud mask as an input), or for outputs `B04` (S2 at t1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub name: String,
    pub source: Source,
    /// The band's description in the preprocessed file.
    pub band: String,
    pub kind: ChannelKind,
}

impl Channel {
    /// Parses an input channel name.
    pub fn input(name: &str) -> Result<Channel> {
        let bad = || {
            Error::invalid(
                "dataset inputs",
                format!("{name:?} is not a channel: use S1_t0:VV, S1_t1:VH, S2_t0:B04 (any S2 band) or mask_t0"),
            )
        };
        if name == "mask_t0" {
            return Ok(Channel { name: name.into(), source: Source::S2T0, band: "mask".into(), kind: ChannelKind::Mask });
        }
        let (src, band) = name.split_once(':').ok_or_else(bad)?;
        let source = match src {
            "S1_t0" => Source::S1T0,
            "S1_t1" => Source::S1T1,
            "S2_t0" => Source::S2T0,
            _ => return Err(bad()),
        };
        let kind = if matches!(source, Source::S1T0 | Source::S1T1) { ChannelKind::S1 } else { ChannelKind::S2 };
        if band.is_empty() || band == "mask" {
            return Err(bad());
        }
        Ok(Channel { name: name.into(), source, band: band.into(), kind })
    }

    /// An output channel: a Sentinel-2 band at t1.
    pub fn output(band: &str) -> Channel {
        Channel { name: format!("S2_t1:{band}"), source: Source::S2T1, band: band.into(), kind: ChannelKind::S2 }
    }
}

/// The research setup's inputs: S1 t0 and t1 (each polarisation), S2 t0 (each band).
pub fn research_inputs(s1: &[String], s2: &[String]) -> Vec<String> {
    let mut v: Vec<String> = s1.iter().map(|p| format!("S1_t0:{p}")).collect();
    v.extend(s1.iter().map(|p| format!("S1_t1:{p}")));
    v.extend(s2.iter().filter(|b| crate::project::is_reflectance_band(b)).map(|b| format!("S2_t0:{b}")));
    v
}

/// Pure SAR-to-optical: S1 at t1 only.
pub fn sar_only_inputs(s1: &[String]) -> Vec<String> {
    s1.iter().map(|p| format!("S1_t1:{p}")).collect()
}

/// The input channels a preset or a list names: `research` ([`research_inputs`]), `sar-only`
/// ([`sar_only_inputs`]) or a comma-separated list such as `S1_t1:VV,S1_t1:VH,S2_t0:B04,mask_t0`
/// (checked when the dataset is built). `mask_channel` adds the S2 t0 cloud mask (`mask_t0`)
/// when the channels lack it. `s1_bands` and `s2_bands` are the project's bands.
pub fn input_channels(preset_or_list: &str, s1_bands: &[String], s2_bands: &[String], mask_channel: bool) -> Vec<String> {
    let mut inputs = match preset_or_list.trim() {
        "research" => research_inputs(s1_bands, s2_bands),
        "sar-only" => sar_only_inputs(s1_bands),
        list => list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
    };
    if mask_channel && !inputs.iter().any(|c| c == "mask_t0") {
        inputs.push("mask_t0".into());
    }
    inputs
}

/// Default outputs: enough for true colour, NIR and NBR (B08 and B12 are required for NBR).
pub const DEFAULT_OUTPUTS: [&str; 6] = ["B02", "B03", "B04", "B08", "B11", "B12"];

/// Parameters of the dataset stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    /// Input channel names, in tensor order.
    pub inputs: Vec<String>,
    /// Output bands (Sentinel-2 at t1), in tensor order.
    pub outputs: Vec<String>,
    pub tiles: TileConfig,
    pub s2_method: S2Method,
    pub s1_method: S1Method,
    /// Date range of the yearly S2 min/max (from COG overviews); none when unset.
    #[serde(default)]
    pub yearly_range: Option<String>,
}

impl DatasetConfig {
    pub fn research(project: &Project) -> DatasetConfig {
        DatasetConfig {
            inputs: research_inputs(&project.config.bands.s1, &project.config.bands.s2),
            outputs: DEFAULT_OUTPUTS.iter().map(|s| s.to_string()).collect(),
            tiles: TileConfig::default(),
            s2_method: S2Method::default(),
            s1_method: S1Method::default(),
            yearly_range: None,
        }
    }
}

/// The preprocessed files of the four sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    pub s1_t0: Option<PathBuf>,
    pub s1_t1: Option<PathBuf>,
    pub s2_t0: PathBuf,
    pub s2_t1: PathBuf,
}

impl Sources {
    pub fn path(&self, s: Source) -> Option<&PathBuf> {
        match s {
            Source::S1T0 => self.s1_t0.as_ref(),
            Source::S1T1 => self.s1_t1.as_ref(),
            Source::S2T0 => Some(&self.s2_t0),
            Source::S2T1 => Some(&self.s2_t1),
        }
    }

    /// The chosen scenes' preprocessed files: S2 of t0 and t1, and the S1 paired with each.
    pub fn of_project(project: &Project) -> Result<Sources> {
        let search = SearchResult::load(project, "dataset")?;
        let date_of = |id: &Option<String>, list: &[crate::catalog::Scene]| -> Option<String> {
            list.iter().find(|s| Some(&s.id) == id.as_ref()).map(|s| s.datetime.format("%Y-%m-%d").to_string())
        };
        let (t0, t1) = match (date_of(&search.chosen_t0, &search.s2_t0), date_of(&search.chosen_t1, &search.s2_t1)) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                return Err(Error::Project {
                    path: project.search_json(),
                    message: "no Sentinel-2 scene chosen for t0 or t1; run `s2cr search` with wider dates".into(),
                });
            }
        };
        let [g0, g1] = search.chosen_s2();
        let s1_for = |group: &[&crate::catalog::Scene]| -> Option<PathBuf> {
            let ids: Vec<&String> = group.iter().map(|s| &s.id).collect();
            let pair = search.pairs.iter().find(|p| ids.contains(&&p.s2_id))?;
            let s1 = search.s1.iter().find(|s| s.id == pair.s1_id)?;
            Some(project.preprocessed_s1(&crate::project::date_folder(&s1.datetime)))
        };
        let sources = Sources {
            s1_t0: s1_for(&g0),
            s1_t1: s1_for(&g1),
            s2_t0: project.preprocessed_s2(&t0),
            s2_t1: project.preprocessed_s2(&t1),
        };
        for p in [Some(&sources.s2_t0), Some(&sources.s2_t1), sources.s1_t0.as_ref(), sources.s1_t1.as_ref()].into_iter().flatten() {
            if !p.is_file() {
                return Err(Error::Project { path: p.clone(), message: "missing; run `s2cr preprocess` first".into() });
            }
        }
        Ok(sources)
    }
}

/// The VRTs of a built dataset, relative to the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetFiles {
    /// Every input channel, in tensor order.
    pub inputs_vrt: PathBuf,
    /// Every output channel.
    pub label_vrt: PathBuf,
    /// The S2 t0 and t1 masks (1 = masked), two bands.
    pub masks_vrt: PathBuf,
}

/// What `dataset/dataset.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub config: DatasetConfig,
    pub inputs: Vec<Channel>,
    pub outputs: Vec<Channel>,
    pub sources: Sources,
    pub files: DatasetFiles,
    pub grid_width: usize,
    pub grid_height: usize,
    /// Kept patches per split.
    pub train: usize,
    pub val: usize,
    pub test: usize,
    /// Patches dropped, by reason class.
    pub dropped_invalid: usize,
    pub dropped_split_border: usize,
    /// Mean valid share of kept patches.
    pub mean_valid_fraction: f64,
}

fn band_index(path: &Path, band: &str) -> Result<usize> {
    let loc = path.display().to_string();
    let info = raster::info(&loc)?;
    info.bands.iter().position(|b| b.description == band).map(|i| i + 1).ok_or_else(|| Error::Raster {
        location: loc,
        message: format!(
            "no band {band:?} (bands: {}); add it to the project's bands and preprocess again",
            info.bands.iter().map(|b| b.description.clone()).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// Writes the research layout of VRTs for the channels.
fn build_vrts(project: &Project, sources: &Sources, inputs: &[Channel], outputs: &[Channel]) -> Result<DatasetFiles> {
    let dir = project.dataset_dir();
    let mut per_channel = |c: &Channel| -> Result<String> {
        let src = sources.path(c.source).ok_or_else(|| Error::Project {
            path: project.search_json(),
            message: format!("channel {} needs a Sentinel-1 scene paired with {}; search again allowing a longer gap between the two (max_gap_days)", c.name, if c.source == Source::S1T0 { "t0" } else { "t1" }),
        })?;
        let vrt = dir.join(c.source.folder()).join(format!("{}.vrt", crate::fsutil::safe_name(&c.band)));
        raster::band_vrt(&vrt, &src.display().to_string(), band_index(src, &c.band)?)?;
        Ok(vrt.display().to_string())
    };
    let input_vrts: Vec<String> = inputs.iter().map(&mut per_channel).collect::<Result<_>>()?;
    let output_vrts: Vec<String> = outputs.iter().map(&mut per_channel).collect::<Result<_>>()?;
    // One stack per source (the research code's per-input VRT), then the tensor stacks.
    for source in [Source::S1T0, Source::S1T1, Source::S2T0, Source::S2T1] {
        let members: Vec<(&Channel, &String)> = inputs.iter().zip(&input_vrts).chain(outputs.iter().zip(&output_vrts)).filter(|(c, _)| c.source == source).collect();
        if members.is_empty() {
            continue;
        }
        let folder = dir.join(source.folder());
        let stem = folder.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let stack = folder.join(format!("{stem}.vrt"));
        let refs: Vec<&str> = members.iter().map(|(_, v)| v.as_str()).collect();
        raster::build_vrt(&stack, &refs, true, None, raster::Resampling::Nearest, &members.iter().map(|(c, _)| c.band.clone()).collect::<Vec<_>>())?;
    }
    let stack = |path: PathBuf, vrts: &[String], names: Vec<String>| -> Result<PathBuf> {
        let refs: Vec<&str> = vrts.iter().map(String::as_str).collect();
        raster::build_vrt(&path, &refs, true, None, raster::Resampling::Nearest, &names)?;
        Ok(path)
    };
    let inputs_vrt = stack(project.dataset_inputs_vrt(), &input_vrts, inputs.iter().map(|c| c.name.clone()).collect())?;
    let label_vrt = stack(project.dataset_label_vrt(), &output_vrts, outputs.iter().map(|c| c.name.clone()).collect())?;
    let mask_t0 = dir.join(Source::S2T0.folder()).join("mask.vrt");
    raster::band_vrt(&mask_t0, &sources.s2_t0.display().to_string(), band_index(&sources.s2_t0, "mask")?)?;
    let mask_t1 = dir.join(Source::S2T1.folder()).join("mask.vrt");
    raster::band_vrt(&mask_t1, &sources.s2_t1.display().to_string(), band_index(&sources.s2_t1, "mask")?)?;
    let masks_vrt = stack(project.dataset_masks_vrt(), &[mask_t0.display().to_string(), mask_t1.display().to_string()], vec!["mask_t0".into(), "mask_t1".into()])?;
    let rel = |p: PathBuf| p.strip_prefix(project.root()).map(Path::to_path_buf).unwrap_or(p);
    Ok(DatasetFiles { inputs_vrt: rel(inputs_vrt), label_vrt: rel(label_vrt), masks_vrt: rel(masks_vrt) })
}

/// Validity of the pixels of a strip: every channel finite, and unmasked where S2 matters (t1
/// always: it is the label; t0 when an S2 t0 band is an input).
struct StripValidity {
    valid: Vec<bool>,
    masked_t0: Vec<bool>,
    masked_t1: Vec<bool>,
    no_data: Vec<bool>,
}

/// Runs the dataset stage.
pub fn build(project: &Project, cfg: &DatasetConfig, progress: &Progress) -> Result<DatasetSummary> {
    progress.cleaned(crate::fsutil::remove_stale_partials(&project.dataset_dir(), crate::project::MAX_DEPTH));
    let parameters = project.stage_parameters(Stage::Dataset, serde_json::to_value(cfg).map_err(|e| Error::invalid("dataset parameters", e.to_string()))?);
    let summary_path = project.dataset_json();
    if let (StageState::Done, Some(m)) = project.stage_state(Stage::Dataset, None)?
        && m.parameters == parameters
        && let Ok(text) = std::fs::read_to_string(&summary_path)
        && let Ok(summary) = serde_json::from_str::<DatasetSummary>(&text)
    {
        progress.info("up to date; nothing to do");
        return Ok(summary);
    }
    let inputs: Vec<Channel> = cfg.inputs.iter().map(|n| Channel::input(n)).collect::<Result<_>>()?;
    let outputs: Vec<Channel> = cfg.outputs.iter().map(|b| Channel::output(b)).collect();
    if inputs.is_empty() || outputs.is_empty() {
        return Err(Error::invalid("dataset", "at least one input and one output channel are needed"));
    }
    let sources = Sources::of_project(project)?;
    progress.started(None);
    progress.info("building the VRTs");
    let files = build_vrts(project, &sources, &inputs, &outputs)?;
    let root = project.root();
    let loc = |p: &Path| root.join(p).display().to_string();
    let (inputs_vrt, label_vrt, masks_vrt) = (loc(&files.inputs_vrt), loc(&files.label_vrt), loc(&files.masks_vrt));
    let grid = &project.config.grid;
    let (w, h) = (grid.width, grid.height);
    let t = &cfg.tiles;
    if w < t.size || h < t.size {
        return Err(Error::invalid("patch size", format!("{} px patches do not fit the {w} x {h} grid; choose a smaller patch size", t.size)));
    }
    let mut patches = tiles::plan(w, h, t);
    let s2_t0_used = inputs.iter().any(|c| c.source == Source::S2T0 && c.kind == ChannelKind::S2);
    let train_planned = patches.iter().filter(|p| p.kept && p.split == Split::Train).count() as u64;
    let expected = train_planned * (t.size * t.size) as u64;
    let mut acc_in: Vec<StatsAccumulator> = inputs.iter().map(|_| StatsAccumulator::new(expected, 2_000_000)).collect();
    let mut acc_out: Vec<StatsAccumulator> = outputs.iter().map(|_| StatsAccumulator::new(expected, 2_000_000)).collect();
    let mut rows_y: Vec<usize> = patches.iter().map(|p| p.y).collect();
    rows_y.dedup();
    progress.started(Some(rows_y.len() as u64));
    for (step, &y) in rows_y.iter().enumerate() {
        progress.check_cancelled()?;
        let window = PixelWindow { x_off: 0, y_off: y, width: w, height: t.size };
        let n = w * t.size;
        let mut v = StripValidity { valid: vec![true; n], masked_t0: vec![false; n], masked_t1: vec![false; n], no_data: vec![false; n] };
        let masks = raster::read_window(&masks_vrt, &[], Some(window))?;
        for i in 0..n {
            v.masked_t0[i] = masks.bands[0][i] != 0.0 || !masks.valid[i];
            v.masked_t1[i] = masks.bands[1][i] != 0.0 || !masks.valid[i];
        }
        // Pass 1: validity over every channel, one band at a time.
        for (path, count) in [(&inputs_vrt, inputs.len()), (&label_vrt, outputs.len())] {
            for b in 1..=count {
                let s = raster::read_window(path, &[b], Some(window))?;
                for (nd, (x, ok)) in v.no_data.iter_mut().zip(s.bands[0].iter().zip(&s.valid)) {
                    *nd |= !ok || !x.is_finite();
                }
            }
        }
        for i in 0..n {
            v.valid[i] = !v.no_data[i] && !v.masked_t1[i] && !(s2_t0_used && v.masked_t0[i]);
        }
        let row: Vec<usize> = patches.iter().enumerate().filter(|(_, p)| p.y == y).map(|(i, _)| i).collect();
        for &i in &row {
            let p = &mut patches[i];
            let (mut valid, mut m0, mut m1, mut nd) = (0usize, 0usize, 0usize, 0usize);
            for yy in 0..t.size {
                for xx in p.x..p.x + t.size {
                    let k = yy * w + xx;
                    valid += v.valid[k] as usize;
                    m0 += v.masked_t0[k] as usize;
                    m1 += v.masked_t1[k] as usize;
                    nd += v.no_data[k] as usize;
                }
            }
            let area = (t.size * t.size) as f64;
            p.valid_fraction = valid as f64 / area;
            p.masked_t0 = m0 as f64 / area;
            p.masked_t1 = m1 as f64 / area;
            p.no_data = nd as f64 / area;
            if p.kept && p.valid_fraction < t.min_valid {
                p.kept = false;
                let mut causes = vec![("no data", p.no_data), ("masked at t1", p.masked_t1)];
                if s2_t0_used {
                    causes.push(("masked at t0", p.masked_t0));
                }
                causes.sort_by(|a, b| b.1.total_cmp(&a.1));
                p.reason = format!("valid {:.2} < {:.2}; mostly {} ({:.0} %)", p.valid_fraction, t.min_valid, causes[0].0, 100.0 * causes[0].1);
            }
        }
        // Pass 2: per-patch ranges and training statistics, one band at a time.
        for (path, count, is_input) in [(&inputs_vrt, inputs.len(), true), (&label_vrt, outputs.len(), false)] {
            for b in 1..=count {
                let s = raster::read_window(path, &[b], Some(window))?;
                for &i in &row {
                    let p = &mut patches[i];
                    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
                    let train = p.kept && p.split == Split::Train;
                    let acc = if is_input { &mut acc_in[b - 1] } else { &mut acc_out[b - 1] };
                    for yy in 0..t.size {
                        for xx in p.x..p.x + t.size {
                            let k = yy * w + xx;
                            if v.valid[k] {
                                let x = s.bands[0][k];
                                lo = lo.min(x);
                                hi = hi.max(x);
                                if train {
                                    acc.add(x);
                                }
                            }
                        }
                    }
                    let r = if lo <= hi { TileRange { min: lo, max: hi } } else { TileRange { min: f32::NAN, max: f32::NAN } };
                    if is_input { p.input_ranges.push(r) } else { p.output_ranges.push(r) }
                }
            }
        }
        progress.advanced(step as u64 + 1, rows_y.len() as u64, format!("rows {y}..{}", y + t.size));
    }
    let mut normalization = Normalization {
        s2_method: cfg.s2_method,
        s1_method: cfg.s1_method,
        inputs: acc_in.into_iter().zip(&inputs).map(|(a, c)| a.finish(&c.name, c.kind)).collect(),
        outputs: acc_out.into_iter().zip(&outputs).map(|(a, c)| a.finish(&c.name, c.kind)).collect(),
        range: normalize::DataRange::Unit,
    };
    if let Some(range) = &cfg.yearly_range {
        let bands: Vec<String> = inputs.iter().chain(&outputs).filter(|c| c.kind == ChannelKind::S2).map(|c| c.band.clone()).collect();
        let yearly = yearly::yearly_min_max(project, range, &bands, progress)?;
        crate::fsutil::save_json(&project.yearly_json(), &yearly)?;
        for c in normalization.inputs.iter_mut().chain(normalization.outputs.iter_mut()) {
            if c.kind == ChannelKind::S2 {
                let band = c.name.rsplit(':').next().unwrap_or_default();
                c.yearly = yearly.bands.iter().find(|b| b.band == band).map(|b| (b.min, b.max));
            }
        }
    } else if cfg.s2_method == S2Method::Yearly {
        return Err(Error::invalid("s2 normalization", "the yearly method needs a date range (--yearly FROM/TO)"));
    }
    let kept = |s: Split| patches.iter().filter(|p| p.kept && p.split == s).count();
    if kept(Split::Train) == 0 {
        return Err(Error::invalid(
            "dataset",
            format!("no training patch has {:.0} % valid pixels; lower --min-valid, use smaller patches, or choose clearer scenes", 100.0 * t.min_valid),
        ));
    }
    let kept_all: Vec<&Patch> = patches.iter().filter(|p| p.kept).collect();
    let summary = DatasetSummary {
        config: cfg.clone(),
        inputs: inputs.clone(),
        outputs: outputs.clone(),
        sources: sources.clone(),
        files,
        grid_width: w,
        grid_height: h,
        train: kept(Split::Train),
        val: kept(Split::Val),
        test: kept(Split::Test),
        dropped_invalid: patches.iter().filter(|p| !p.kept && p.reason.starts_with("valid")).count(),
        dropped_split_border: patches.iter().filter(|p| !p.kept && !p.reason.starts_with("valid")).count(),
        mean_valid_fraction: kept_all.iter().map(|p| p.valid_fraction).sum::<f64>() / kept_all.len().max(1) as f64,
    };
    crate::fsutil::save_json(&project.tiles_json(), &TileIndex { size: t.size, inputs: inputs.iter().map(|c| c.name.clone()).collect(), outputs: outputs.iter().map(|c| c.name.clone()).collect(), patches: patches.clone() })?;
    crate::fsutil::write_atomic(&project.tiles_csv(), tiles_csv(&patches, &inputs, &outputs, t.size).as_bytes())?;
    crate::fsutil::save_json(&project.normalization_json(), &normalization)?;
    crate::fsutil::write_atomic(&project.normalization_csv(), normalization.to_csv().as_bytes())?;
    crate::fsutil::save_json(&summary_path, &summary)?;
    let mut manifest = Manifest::new(Stage::Dataset, parameters);
    for p in [Some(&sources.s2_t0), Some(&sources.s2_t1), sources.s1_t0.as_ref(), sources.s1_t1.as_ref()].into_iter().flatten() {
        manifest.add_input(root, p)?;
    }
    for f in [project.tiles_json(), project.tiles_csv(), project.normalization_json(), project.normalization_csv(), project.dataset_json()] {
        manifest.add_output(root, &f)?;
    }
    manifest.save(&project.manifest_path(Stage::Dataset, None))?;
    Ok(summary)
}

/// `dataset/tiles.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileIndex {
    pub size: usize,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub patches: Vec<Patch>,
}

impl TileIndex {
    pub fn load(project: &Project) -> Result<TileIndex> {
        crate::fsutil::load_json(&project.tiles_json(), "run `s2cr dataset` first")
    }
}


fn tiles_csv(patches: &[Patch], inputs: &[Channel], outputs: &[Channel], size: usize) -> String {
    let mut out = String::from("id,x,y,size,split,kept,valid_fraction,masked_t0,masked_t1,no_data,reason");
    for c in inputs.iter().chain(outputs) {
        out.push_str(&format!(",{0}_min,{0}_max", c.name));
    }
    out.push('\n');
    for p in patches {
        out.push_str(&format!(
            "{},{},{},{size},{},{},{:.4},{:.4},{:.4},{:.4},\"{}\"",
            p.id,
            p.x,
            p.y,
            p.split.name(),
            p.kept,
            p.valid_fraction,
            p.masked_t0,
            p.masked_t1,
            p.no_data,
            p.reason.replace('"', "'")
        ));
        for r in p.input_ranges.iter().chain(&p.output_ranges) {
            out.push_str(&format!(",{},{}", r.min, r.max));
        }
        out.push('\n');
    }
    out
}
