//! A project's rasters as layers to look at and export: which files a project has to show
//! (Sentinel-2 t0, real and synthetic t1, Sentinel-1, dNBR and severity, burned perimeters),
//! band composites and contrast stretches (the CPU reference of what the app displays), colour
//! ramps for dNBR and severity, and `s2cr export`.

use std::path::{Path, PathBuf};

use crate::indices::severity::{NO_DATA, SeverityScheme};
use crate::error::{Error, Result};
use crate::project::{Project, RunName, date_folder};
use crate::raster::{self, BandStack, WriteOptions};

/// How a layer is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Sentinel-2 reflectance: a band composite with a stretch.
    Optical,
    /// Sentinel-1 backscatter (dB): VV, VH and VV - VH as red, green, blue.
    Radar,
    /// dNBR on the report's colour ramp.
    Dnbr,
    /// dNBR severity classes in a scheme's colours, classified from the dNBR band when drawn
    /// (so an edited scheme shows at once).
    Severity,
    /// Synthetic − real t1, one band at a time on a diverging ramp, symmetric about 0.
    Difference,
    /// The spectral angle between real and synthetic t1 (degrees) on a sequential ramp.
    Angle,
    /// Burned-area perimeters (GeoJSON), for export.
    Perimeter,
    /// Which source filled each pixel of the gap-filled image (real t1, composite, synthetic).
    Source,
}

impl LayerKind {
    /// Classes, not a ramp: read with the nearest pixels of overviews, never averaged.
    pub fn is_categorical(self) -> bool {
        matches!(self, LayerKind::Severity | LayerKind::Source)
    }
}

/// One layer of a project.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Short name, as `s2cr export --layer` takes it.
    pub id: String,
    pub title: String,
    pub kind: LayerKind,
    pub path: PathBuf,
    /// The band that holds the layer (1-based) in a multi-band file (dNBR in indices_*.tif).
    pub band: Option<usize>,
    /// The data's attribution, which every export carries.
    pub attribution: String,
    /// A severity layer's classes (the assessment's, or as edited in the app).
    pub scheme: Option<SeverityScheme>,
    /// What made it (software, run, model checksum), which vector exports carry.
    pub provenance: String,
}

impl Layer {
    fn new(id: &str, title: &str, kind: LayerKind, path: PathBuf, band: Option<usize>) -> Layer {
        Layer { id: id.into(), title: title.into(), kind, path, band, attribution: String::new(), scheme: None, provenance: String::new() }
    }

    /// A categorical layer's classes, (code, colour, name), for its colours and legend.
    pub fn classes(&self) -> Vec<(u8, [u8; 3], String)> {
        match self.kind {
            LayerKind::Severity => self.scheme.clone().unwrap_or_default().classes.into_iter().map(|c| (c.code, c.color, c.name)).collect(),
            LayerKind::Source => crate::assess::gapfill::SOURCE_CLASSES.iter().map(|(c, rgb, n)| (*c, *rgb, n.to_string())).collect(),
            _ => Vec::new(),
        }
    }

    /// What a categorical layer's value is, in words: a severity layer's class (and its dNBR,
    /// the value it holds), a class map's class name.
    pub fn class_text(&self, value: f32) -> String {
        match self.kind {
            LayerKind::Severity => {
                let s = self.scheme.clone().unwrap_or_default();
                format!("{} (dNBR {value:.3})", s.label(s.classify(value)))
            }
            _ => self.classes().into_iter().find(|k| k.0 as f32 == value).map(|k| k.2).unwrap_or_else(|| format!("class {value}")),
        }
    }
}

/// The layers a project has on disk now, for a training run; in pipeline order.
pub fn project_layers(project: &Project, run: &RunName) -> Vec<Layer> {
    let mut v = Vec::new();
    if let Ok(search) = crate::catalog::stage::SearchResult::load(project, "the layers") {
        let date = |id: &Option<String>, list: &[crate::catalog::Scene]| list.iter().find(|s| Some(&s.id) == id.as_ref()).map(|s| date_folder(&s.datetime));
        if let Some(d) = date(&search.chosen_t0, &search.s2_t0) {
            v.push(Layer::new("pre", &format!("Sentinel-2 t0 ({d})"), LayerKind::Optical, project.preprocessed_s2(&d), None));
        }
        if let Some(d) = date(&search.chosen_t1, &search.s2_t1) {
            v.push(Layer::new("real", &format!("Sentinel-2 t1, real ({d})"), LayerKind::Optical, project.preprocessed_s2(&d), None));
        }
        let mut s1: Vec<String> = search.paired_s1().iter().map(|s| date_folder(&s.datetime)).collect();
        s1.sort();
        s1.dedup();
        for (i, d) in s1.iter().enumerate() {
            let id = if i == 0 { "s1-t0".to_string() } else { format!("s1-t{i}") };
            v.push(Layer::new(&id, &format!("Sentinel-1 ({d})"), LayerKind::Radar, project.preprocessed_s1(d), None));
        }
    }
    v.push(Layer::new("synthetic", &format!("Sentinel-2 t1, synthetic ({run})"), LayerKind::Optical, project.synthetic_s2(run), None));
    let assess = project.assess_dir(run);
    use crate::assess::files;
    v.push(Layer::new("difference", "Difference, synthetic − real t1", LayerKind::Difference, assess.join(files::DIFFERENCE), None));
    v.push(Layer::new("sam", "Spectral angle, synthetic vs real t1", LayerKind::Angle, assess.join(files::SAM), None));
    // Severity from the dNBR band (after any offset) with the assessment's classes.
    for which in ["real", "synthetic"] {
        v.push(Layer::new(&format!("dnbr-{which}"), &format!("dNBR, {which}"), LayerKind::Dnbr, assess.join(files::indices(which)), Some(3)));
        v.push(Layer::new(&format!("severity-{which}"), &format!("Burn severity, {which}"), LayerKind::Severity, assess.join(files::indices(which)), Some(3)));
        v.push(Layer::new(&format!("perimeter-{which}"), &format!("Burned perimeter, {which}"), LayerKind::Perimeter, assess.join(files::perimeter(which)), None));
    }
    // The gap-filled post-fire image, where each pixel came from, and its dNBR and severity.
    v.push(Layer::new("gapfilled", "Sentinel-2 t1, gap-filled", LayerKind::Optical, project.gapfilled_s2(run), None));
    v.push(Layer::new("gapfill-source", "Gap-fill source", LayerKind::Source, project.gapfill_source(run), None));
    v.push(Layer::new("dnbr-gapfilled", "dNBR, gap-filled", LayerKind::Dnbr, assess.join(files::indices("gapfilled")), Some(3)));
    v.push(Layer::new("severity-gapfilled", "Burn severity, gap-filled", LayerKind::Severity, assess.join(files::indices("gapfilled")), Some(3)));
    v.push(Layer::new("perimeter-reference", "Official perimeter (the reference file)", LayerKind::Perimeter, assess.join(files::PERIMETER_REFERENCE), None));
    v.retain(|l| l.path.is_file());
    let attribution = crate::assess::stac::project_attribution(project);
    let scheme = crate::assess::assessed_classes(project, run).unwrap_or_default();
    let provenance = crate::assess::stac::project_provenance(project, run);
    for l in &mut v {
        l.attribution = attribution.clone();
        l.provenance = provenance.clone();
        if l.kind == LayerKind::Severity {
            l.scheme = Some(scheme.clone());
        }
    }
    v
}

/// A band composite: the bands shown as red, green and blue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composite {
    pub name: String,
    pub bands: [String; 3],
}

impl Composite {
    pub fn new(name: &str, bands: [&str; 3]) -> Composite {
        Composite { name: name.into(), bands: bands.map(String::from) }
    }

    /// True colour (B04 B03 B02), false colour (B08 B04 B03), SWIR (B12 B08 B04).
    pub fn presets() -> [Composite; 3] {
        [Composite::new("true colour", ["B04", "B03", "B02"]), Composite::new("false colour", ["B08", "B04", "B03"]), Composite::new("SWIR", ["B12", "B08", "B04"])]
    }

    /// A preset by name (`true`, `false`, `swir`) or three band names `B12,B08,B04`.
    pub fn parse(text: &str) -> Result<Composite> {
        let t = text.trim().to_ascii_lowercase();
        let presets = Composite::presets();
        let by_name = match t.as_str() {
            "true" | "true-colour" | "true-color" | "rgb" => Some(0),
            "false" | "false-colour" | "false-color" | "cir" => Some(1),
            "swir" => Some(2),
            _ => None,
        };
        if let Some(i) = by_name {
            return Ok(presets[i].clone());
        }
        let parts: Vec<String> = text.split(',').map(|b| b.trim().to_ascii_uppercase()).collect();
        match <[String; 3]>::try_from(parts) {
            Ok(bands) => Ok(Composite { name: bands.join(" "), bands }),
            Err(_) => Err(Error::invalid("composite", format!("{text:?}: give true, false, swir or three bands like B12,B08,B04"))),
        }
    }
}

/// How the lowest and highest displayed values are found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StretchKind {
    MinMax,
    /// Percentiles, e.g. 2 and 98.
    Percentile(f32, f32),
}

/// A contrast stretch per channel: `((v - low) / (high - low))` clamped to 0..1, raised to
/// `1 / gamma`, times 255.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stretch {
    pub low: [f32; 3],
    pub high: [f32; 3],
    pub gamma: f32,
}

/// One channel's display value: the reference the app's display follows.
pub fn stretch_value(v: f32, low: f32, high: f32, gamma: f32) -> u8 {
    if !v.is_finite() {
        return 0;
    }
    let span = if high > low { high - low } else { f32::EPSILON };
    let t = ((v - low) / span).clamp(0.0, 1.0);
    let g = if gamma > 0.0 { gamma } else { 1.0 };
    (t.powf(1.0 / g) * 255.0).round() as u8
}

/// Percentiles are taken from at most this many pixels (evenly spaced), so a stretch change
/// stays quick on a large display image.
const PERCENTILE_SAMPLE: usize = 1 << 18;

/// The low and high values of one channel over the valid pixels (percentiles from a sample of
/// at most 262,144 of them).
pub fn channel_range(values: &[f32], valid: &[bool], kind: StretchKind) -> (f32, f32) {
    let ok = |(x, v): (&f32, &bool)| *v && x.is_finite();
    match kind {
        StretchKind::MinMax => {
            let (lo, hi) = values.iter().zip(valid).filter(|p| ok(*p)).fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
            if lo <= hi { (lo, hi) } else { (0.0, 1.0) }
        }
        StretchKind::Percentile(lo, hi) => {
            let step = (values.len() / PERCENTILE_SAMPLE).max(1);
            let mut v: Vec<f32> = values.iter().zip(valid).step_by(step).filter(|p| ok(*p)).map(|(x, _)| *x).collect();
            if v.is_empty() {
                return (0.0, 1.0);
            }
            let rank = |p: f32, n: usize| (((p / 100.0).clamp(0.0, 1.0)) * (n - 1) as f32).round() as usize;
            let n = v.len();
            let (i, j) = (rank(lo, n), rank(hi, n));
            let a = *v.select_nth_unstable_by(i, f32::total_cmp).1;
            let b = *v.select_nth_unstable_by(j, f32::total_cmp).1;
            (a, b)
        }
    }
}

/// Entries of the table that maps a stretched value (0..1) to its display level.
const LUT_SIZE: usize = 1 << 16;

/// [`stretch_value`] as a table over 65,536 steps of the stretched value: at most 1 level off
/// for gamma 1 (a value on a rounding edge), 2 for other gammas (in the darkest steps, where
/// t^(1/gamma) is steepest), and no `powf` per pixel.
fn stretch_lut(gamma: f32) -> Vec<u8> {
    let g = if gamma > 0.0 { gamma } else { 1.0 };
    (0..LUT_SIZE).map(|k| ((k as f32 / (LUT_SIZE - 1) as f32).powf(1.0 / g) * 255.0).round() as u8).collect()
}

/// Three channels of a layer, ready to stretch: a composite's bands (optical) or VV, VH and
/// VV - VH (radar); a severity layer's dNBR, classified when drawn. Pixels are valid where all
/// three are.
pub struct Channels {
    pub width: usize,
    pub height: usize,
    pub values: [Vec<f32>; 3],
    pub valid: Vec<bool>,
    pub geo_transform: [f64; 6],
    pub crs_wkt: String,
}

fn band_of(stack: &BandStack, name: &str, what: &Path) -> Result<usize> {
    stack.descriptions.iter().position(|d| d.eq_ignore_ascii_case(name)).ok_or_else(|| Error::Raster {
        location: what.display().to_string(),
        message: format!("no band named {name} (bands: {})", stack.descriptions.join(", ")),
    })
}

/// Reads a layer at display size (at most `max_side` pixels a side; the full size with
/// `usize::MAX`) as three channels: optical layers by `composite`, radar as VV, VH, VV - VH;
/// a difference as the composite's first band in every channel; dNBR, severity and the
/// spectral angle as their one band in every channel.
pub fn read_channels(layer: &Layer, composite: &Composite, max_side: usize) -> Result<Channels> {
    let loc = layer.path.display().to_string();
    let average = !layer.kind.is_categorical();
    let stack = match layer.band {
        Some(b) => raster::read_preview(&loc, &[b], max_side, average)?,
        None => raster::read_preview(&loc, &[], max_side, average)?,
    };
    // The mask band of preprocessed Sentinel-2 marks clouds: not valid.
    let mut valid = stack.valid.clone();
    if let Some(m) = stack.descriptions.iter().position(|d| d.eq_ignore_ascii_case("mask")) {
        for (ok, v) in valid.iter_mut().zip(&stack.bands[m]) {
            *ok &= *v == 0.0;
        }
    }
    let values: [Vec<f32>; 3] = match layer.kind {
        LayerKind::Optical => {
            let idx = [0, 1, 2].map(|i| band_of(&stack, &composite.bands[i], &layer.path));
            let [r, g, b] = idx;
            [stack.bands[r?].clone(), stack.bands[g?].clone(), stack.bands[b?].clone()]
        }
        LayerKind::Radar => {
            let (vv, vh) = (band_of(&stack, "VV", &layer.path)?, band_of(&stack, "VH", &layer.path)?);
            let ratio = stack.bands[vv].iter().zip(&stack.bands[vh]).map(|(a, b)| a - b).collect();
            [stack.bands[vv].clone(), stack.bands[vh].clone(), ratio]
        }
        LayerKind::Difference => {
            // "B08" names the band "B08 difference".
            let b = band_of(&stack, &format!("{} difference", composite.bands[0].trim_end_matches(" difference")), &layer.path)?;
            [stack.bands[b].clone(), stack.bands[b].clone(), stack.bands[b].clone()]
        }
        LayerKind::Dnbr | LayerKind::Severity | LayerKind::Source | LayerKind::Angle => [stack.bands[0].clone(), stack.bands[0].clone(), stack.bands[0].clone()],
        LayerKind::Perimeter => return Err(Error::invalid(&layer.id, "a perimeter is vector data; export it as GeoJSON")),
    };
    for ch in &values {
        for (ok, v) in valid.iter_mut().zip(ch) {
            *ok &= v.is_finite();
        }
    }
    if layer.kind == LayerKind::Source {
        for (ok, v) in valid.iter_mut().zip(&values[0]) {
            *ok &= *v != 0.0;
        }
    }
    Ok(Channels { width: stack.width, height: stack.height, values, valid, geo_transform: stack.geo_transform, crs_wkt: stack.crs_wkt })
}

impl Channels {
    /// The stretch of these channels.
    pub fn stretch(&self, kind: StretchKind, gamma: f32) -> Stretch {
        let r = [0, 1, 2].map(|i| channel_range(&self.values[i], &self.valid, kind));
        Stretch { low: r.map(|x| x.0), high: r.map(|x| x.1), gamma }
    }

    /// RGBA pixels (row-major; transparent where not valid) for a layer kind: stretched
    /// channels for optical and radar layers, the colour ramps for dNBR, the classes of a
    /// categorical layer (`classes`: (code, colour, name); a severity layer's dNBR classified
    /// with `scheme`).
    pub fn rgba(&self, kind: LayerKind, stretch: &Stretch, classes: &[(u8, [u8; 3], String)], scheme: Option<&SeverityScheme>) -> Vec<u8> {
        let n = self.width * self.height;
        let mut out = vec![0u8; n * 4];
        let lut = stretch_lut(stretch.gamma);
        let scale = [0, 1, 2].map(|c| {
            let span = stretch.high[c] - stretch.low[c];
            if span > 0.0 { (LUT_SIZE - 1) as f32 / span } else { 0.0 }
        });
        let level = |c: usize, v: f32| -> u8 {
            if scale[c] == 0.0 {
                return stretch_value(v, stretch.low[c], stretch.high[c], stretch.gamma);
            }
            let k = ((v - stretch.low[c]) * scale[c]).round().clamp(0.0, (LUT_SIZE - 1) as f32) as usize;
            lut[k]
        };
        // A difference is symmetric about 0 (the larger of the stretch's ends); an angle runs
        // from 0 to the stretch's high end.
        let spread = stretch.low[0].abs().max(stretch.high[0].abs()).max(f32::MIN_POSITIVE);
        let top = stretch.high[0].max(f32::MIN_POSITIVE);
        let usgs;
        let scheme = match (kind, scheme) {
            (LayerKind::Severity, None) => {
                usgs = SeverityScheme::usgs();
                Some(&usgs)
            }
            (_, s) => s,
        };
        let mut table = [[0u8; 3]; 256];
        for (code, rgb, _) in classes {
            table[*code as usize] = *rgb;
        }
        for i in 0..n {
            if !self.valid[i] {
                continue;
            }
            let code = match (kind, scheme) {
                (LayerKind::Severity, Some(s)) => s.classify(self.values[0][i]),
                (LayerKind::Source, _) => self.values[0][i] as u8,
                _ => 1,
            };
            if code == NO_DATA {
                continue;
            }
            let rgb = match kind {
                LayerKind::Difference => diverging_color(self.values[0][i] / spread),
                LayerKind::Angle => angle_color(self.values[0][i] / top),
                LayerKind::Dnbr => crate::assess::report::dnbr_color(self.values[0][i]),
                LayerKind::Severity | LayerKind::Source => table[code as usize],
                _ => [0, 1, 2].map(|c| level(c, self.values[c][i])),
            };
            out[i * 4..i * 4 + 3].copy_from_slice(&rgb);
            out[i * 4 + 3] = 255;
        }
        out
    }
}

/// The diverging ramp of a difference at `t` in -1..1: blue (synthetic lower), white, red
/// (synthetic higher).
pub fn diverging_color(t: f32) -> [u8; 3] {
    let t = if t.is_finite() { t.clamp(-1.0, 1.0) } else { 0.0 };
    let (blue, red) = ([33.0, 102.0, 172.0], [178.0, 24.0, 43.0]);
    let (end, k) = if t < 0.0 { (blue, -t) } else { (red, t) };
    [0, 1, 2].map(|c| (255.0 + (end[c] - 255.0) * k).round() as u8)
}

/// The sequential ramp of a spectral angle at `t` in 0..1: pale yellow to dark red.
pub fn angle_color(t: f32) -> [u8; 3] {
    let stops: [[f32; 3]; 4] = [[255.0, 255.0, 204.0], [253.0, 141.0, 60.0], [227.0, 26.0, 28.0], [128.0, 0.0, 38.0]];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * (stops.len() - 1) as f32;
    let k = (t.floor() as usize).min(stops.len() - 2);
    let f = t - k as f32;
    [0, 1, 2].map(|c| (stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f).round() as u8)
}

fn copyright(layer: &Layer) -> Option<String> {
    (!layer.attribution.is_empty()).then(|| layer.attribution.clone())
}

fn software(layer: &Layer) -> Option<String> {
    (!layer.provenance.is_empty()).then(|| layer.provenance.clone())
}

/// What `s2cr export` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub path: PathBuf,
    pub what: String,
}

/// Writes a layer to `out`, by its extension: `.tif` a Cloud-Optimized GeoTIFF of the layer's
/// values (all bands of an optical or radar layer, the one band of dNBR, the classes with their
/// colours for severity); `.png` the layer as displayed (composite and stretch; colour ramps)
/// with a world file (`.pgw`) and the CRS in `.aux.xml`, for GIS; a perimeter, or a severity
/// layer's classes as polygons, as `.geojson`, `.gpkg`, `.shp.zip` or `.kml`, each feature with
/// the attribution and provenance.
pub fn export(layer: &Layer, out: &Path, composite: &Composite, stretch: StretchKind, gamma: f32) -> Result<Exported> {
    let ext = out.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let loc = layer.path.display().to_string();
    let tags = raster::Tags { attribution: layer.attribution.clone(), provenance: layer.provenance.clone() };
    let vector = raster::vector_format(out).filter(|(driver, _)| *driver != "GeoJSON" || layer.kind != LayerKind::Perimeter);
    match (layer.kind, ext.as_str()) {
        (LayerKind::Perimeter, _) if vector.is_some() => {
            let words = raster::export_vector(&layer.path, out, &tags)?;
            Ok(Exported { path: out.to_path_buf(), what: format!("{} ({words})", layer.title) })
        }
        (LayerKind::Severity, _) if vector.is_some() => {
            // Each patch of a class as a polygon, classified with the layer's scheme.
            let scheme = layer.scheme.clone().unwrap_or_default();
            let stack = raster::read_window(&loc, &[layer.band.unwrap_or(1)], None)?;
            let codes: Vec<u8> = stack.bands[0].iter().zip(&stack.valid).map(|(d, ok)| if *ok { scheme.classify(*d) } else { NO_DATA }).collect();
            let n = raster::write_class_polygons(out, &codes, stack.width, stack.height, stack.geo_transform, &stack.crs_wkt, &scheme.palette(), &tags)?;
            let words = vector.map(|v| v.1).unwrap_or_default();
            Ok(Exported { path: out.to_path_buf(), what: format!("{}: {n} polygons of the {} classes ({words})", layer.title, scheme.name) })
        }
        (LayerKind::Perimeter, "geojson" | "json") => {
            let bytes = std::fs::read(&layer.path).map_err(Error::io(&layer.path, "reading the perimeter"))?;
            // The attribution as a member of the FeatureCollection (readers ignore it).
            let mut doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(Error::json(&layer.path, "the perimeter is not GeoJSON; assess again"))?;
            if let Some(o) = doc.as_object_mut().filter(|_| !layer.attribution.is_empty()) {
                o.insert("attribution".into(), serde_json::json!(layer.attribution));
                o.insert("provenance".into(), serde_json::json!(layer.provenance));
            }
            crate::fsutil::write_atomic(out, &serde_json::to_vec(&doc).unwrap_or(bytes))?;
            Ok(Exported { path: out.to_path_buf(), what: format!("{} (GeoJSON, WGS84)", layer.title) })
        }
        (LayerKind::Perimeter, _) => Err(Error::invalid("--out", format!("{}: a perimeter is written as {}", out.display(), raster::VECTOR_EXTENSIONS))),
        (LayerKind::Dnbr, "tif" | "tiff") => {
            let b = layer.band.unwrap_or(1);
            let mut stack = raster::read_window(&loc, &[b], None)?;
            stack.descriptions = vec!["dNBR".into()];
            raster::write_raster(out, &stack, &WriteOptions { copyright: copyright(layer), software: software(layer), ..WriteOptions::default() })?;
            Ok(Exported { path: out.to_path_buf(), what: format!("{} (Float32 COG)", layer.title) })
        }
        (LayerKind::Severity, "tif" | "tiff") => {
            // The classes of the dNBR band with the layer's scheme, colour table and names.
            let scheme = layer.scheme.clone().unwrap_or_default();
            let stack = raster::read_window(&loc, &[layer.band.unwrap_or(1)], None)?;
            let codes: Vec<u8> = stack.bands[0].iter().zip(&stack.valid).map(|(d, ok)| if *ok { scheme.classify(*d) } else { NO_DATA }).collect();
            let description = format!("burn severity ({} classes on the {})", scheme.name, scheme.scale.name());
            let palette = scheme.palette();
            let classes = raster::ClassRaster { width: stack.width, height: stack.height, codes: &codes, geo_transform: stack.geo_transform, crs_wkt: &stack.crs_wkt, description: &description, classes: &palette };
            raster::write_classes_with(out, &classes, copyright(layer).as_deref(), software(layer).as_deref())?;
            Ok(Exported { path: out.to_path_buf(), what: format!("{} ({} classes, Byte COG with colour table)", layer.title, scheme.name) })
        }
        (_, "tif" | "tiff") => {
            raster::to_cog(&loc, out, &WriteOptions { copyright: copyright(layer), software: software(layer), ..WriteOptions::default() })?;
            Ok(Exported { path: out.to_path_buf(), what: format!("{} (COG, as stored)", layer.title) })
        }
        (_, "png") => {
            let ch = read_channels(layer, composite, usize::MAX)?;
            let s = ch.stretch(stretch, gamma);
            let rgba = ch.rgba(layer.kind, &s, &layer.classes(), layer.scheme.as_ref());
            raster::write_rgba_png(out, ch.width, ch.height, &rgba, ch.geo_transform, &ch.crs_wkt, copyright(layer).as_deref())?;
            let how = match layer.kind {
                LayerKind::Optical => format!("{} ({}), {:?}, gamma {gamma}", composite.name, composite.bands.join(" "), stretch),
                LayerKind::Radar => format!("VV, VH, VV-VH, {stretch:?}, gamma {gamma}"),
                LayerKind::Difference => format!("{}, diverging ramp symmetric about 0 over the {stretch:?} range", composite.bands[0]),
                LayerKind::Angle => format!("sequential ramp from 0 to the {stretch:?} high end"),
                LayerKind::Source => "class colours: real t1, composite, synthetic".into(),
                _ => "colour ramp of the report".into(),
            };
            Ok(Exported { path: out.to_path_buf(), what: format!("{} as displayed: {how} (PNG with world file)", layer.title) })
        }
        _ => Err(Error::invalid("--out", format!("{}: write .tif (COG), .png (as displayed), or for perimeters and severity classes {}", out.display(), raster::VECTOR_EXTENSIONS))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stretch_clamps_and_bends_with_gamma() {
        assert_eq!(stretch_value(0.1, 0.1, 0.3, 1.0), 0);
        assert_eq!(stretch_value(0.3, 0.1, 0.3, 1.0), 255);
        assert_eq!(stretch_value(0.25, 0.0, 0.5, 1.0), 128, "127.5 rounds up");
        assert_eq!(stretch_value(0.5, 0.1, 0.3, 1.0), 255, "clamped");
        assert_eq!(stretch_value(0.15, 0.1, 0.3, 2.0), (0.25f32.sqrt() * 255.0).round() as u8);
        assert_eq!(stretch_value(f32::NAN, 0.0, 1.0, 1.0), 0);
        let v: Vec<f32> = (0..=100).map(|i| i as f32).collect();
        let ok = vec![true; v.len()];
        assert_eq!(channel_range(&v, &ok, StretchKind::MinMax), (0.0, 100.0));
        assert_eq!(channel_range(&v, &ok, StretchKind::Percentile(2.0, 98.0)), (2.0, 98.0));
    }

    #[test]
    fn the_display_table_follows_the_reference() {
        let n = 20_000;
        let values: Vec<f32> = (0..n).map(|i| -0.05 + 0.5 * i as f32 / n as f32).collect();
        let ch = Channels { width: n, height: 1, values: [values.clone(), values.clone(), values.clone()], valid: vec![true; n], geo_transform: [0.0, 1.0, 0.0, 0.0, 0.0, -1.0], crs_wkt: String::new() };
        for gamma in [1.0f32, 0.5, 2.2, 3.0] {
            let s = Stretch { low: [0.0, 0.05, 0.1], high: [0.4, 0.3, 0.2], gamma };
            let rgba = ch.rgba(LayerKind::Optical, &s, &[], None);
            let mut worst = 0;
            for (i, v) in values.iter().enumerate() {
                for c in 0..3 {
                    let exact = stretch_value(*v, s.low[c], s.high[c], gamma) as i32;
                    worst = worst.max((rgba[i * 4 + c] as i32 - exact).abs());
                }
            }
            assert!(worst <= if gamma == 1.0 { 1 } else { 2 }, "gamma {gamma}: {worst} levels off");
        }
    }

    #[test]
    fn composites_parse_by_name_or_bands() {
        assert_eq!(Composite::parse("swir").unwrap().bands, ["B12", "B08", "B04"]);
        assert_eq!(Composite::parse("b8a, b11, b04").unwrap().bands, ["B8A", "B11", "B04"]);
        assert!(Composite::parse("B01,B02").unwrap_err().to_string().contains("three bands"));
    }
}
