//! Field plots and CBI calibration: the Composite Burn Index measured at plots on the ground,
//! against the index values of each map there (the 3 x 3 mean around the plot, as MTBS's plot
//! extraction takes it), fitted with Miller & Thode's (2007) saturating model
//! `index = a + b exp(c CBI)` and a straight line; the class bounds the real map's dNBR fit gives
//! at CBI 0.1, 1.25 and 2.25 (unburned, low, moderate, high), with which both maps are
//! classified on request. Plots outside the grid, under clouds or with a CBI outside 0-3 are
//! listed with the reason and left out of the fits.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::offset::Maps;
use super::{AssessConfig, Image};
use crate::error::{Error, Result};
use crate::indices::severity::{Scale, SeverityClass, SeverityScheme};
use crate::indices::spectral;

/// The field plots an assessment is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPlots {
    /// Any point file OGR reads, or a CSV with lon and lat columns (WGS84).
    pub file: PathBuf,
    /// The field holding each plot's CBI (case does not matter).
    #[serde(default = "cbi_field")]
    pub field: String,
    /// Classify both maps with the bounds the real map's dNBR fit gives (the scheme "CBI").
    #[serde(default)]
    pub classify: bool,
}

fn cbi_field() -> String {
    "CBI".into()
}

/// The indices fitted, in the order of [`PlotValues`].
pub const INDICES: [&str; 3] = ["dNBR", "RdNBR", "RBR"];

/// The CBI at the bounds of low, moderate and high severity (Miller & Thode 2007).
pub const CBI_BOUNDS: [f64; 3] = [0.1, 1.25, 2.25];

/// The smallest rate c of the saturating fit: at it the curve is all but a line (a fit that
/// stops there is no better than one; the report says so).
pub const C_MIN: f64 = 0.01;

/// Fewest plots a fit takes.
pub const MIN_PLOTS: usize = 4;

/// A map's 3 x 3 means of dNBR, RdNBR and RBR at a plot (after the map's offset).
pub type PlotValues = [f64; 3];

/// One plot, with what each map reads there or why it is left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plot {
    pub id: String,
    pub lon: f64,
    pub lat: f64,
    /// Its CBI when the file gives a number.
    pub cbi: Option<f64>,
    /// Left out of every fit, and why (outside the grid, at its edge, no CBI, CBI outside 0-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_out: Option<String>,
    /// The real map's values, or none under clouds or without data there.
    pub real: Option<PlotValues>,
    pub synthetic: Option<PlotValues>,
}

/// One fit of an index against CBI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// `real` or `synthetic`.
    pub map: String,
    pub index: String,
    /// `saturating` (a + b exp(c CBI)) or `linear` (a + b CBI).
    pub model: String,
    pub n: usize,
    pub coefficients: Vec<f64>,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub r2: f64,
    #[serde(deserialize_with = "crate::assess::f64_or_nan")]
    pub rmse: f64,
    /// The index at CBI 0.1, 1.25 and 2.25.
    pub bounds: Vec<f64>,
}

impl Fit {
    /// The model's index at a CBI.
    pub fn at(&self, cbi: f64) -> f64 {
        let c = &self.coefficients;
        match self.model.as_str() {
            "saturating" => c[0] + c[1] * (c[2] * cbi).exp(),
            _ => c[0] + c[1] * cbi,
        }
    }
}

/// What the plots gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub file: PathBuf,
    pub field: String,
    pub plots: Vec<Plot>,
    pub fits: Vec<Fit>,
    /// The classes the real map's dNBR fit gives (none when it does not rise with CBI).
    pub scheme: Option<SeverityScheme>,
    /// Whether both maps were classified with them.
    pub classified: bool,
    pub notes: Vec<String>,
}

/// y = a + b x by least squares; `None` with fewer than two distinct x.
pub fn fit_linear(x: &[f64], y: &[f64]) -> Option<[f64; 2]> {
    let n = x.len() as f64;
    if x.len() < 2 {
        return None;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|v| (v - mx) * (v - mx)).sum();
    if sxx <= 1e-12 {
        return None;
    }
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let b = sxy / sxx;
    Some([my - b * mx, b])
}

fn sse(x: &[f64], y: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    x.iter().zip(y).map(|(a, b)| (b - f(*a)).powi(2)).sum()
}

/// Miller & Thode's saturating model y = a + b exp(c x) by least squares: for each rate c the
/// best a and b are a straight line in exp(c x); c is searched over 0.01-4 in steps of 0.01,
/// then refined by golden section. `None` with fewer than [`MIN_PLOTS`] points or one CBI.
pub fn fit_saturating(x: &[f64], y: &[f64]) -> Option<[f64; 3]> {
    if x.len() < MIN_PLOTS {
        return None;
    }
    let at = |c: f64| -> Option<(f64, [f64; 3])> {
        let e: Vec<f64> = x.iter().map(|v| (c * v).exp()).collect();
        let [a, b] = fit_linear(&e, y)?;
        Some((sse(x, y, |v| a + b * (c * v).exp()), [a, b, c]))
    };
    let mut best: Option<(f64, [f64; 3])> = None;
    for k in 1..=400 {
        if let Some(s) = at(k as f64 * 0.01)
            && best.is_none_or(|b| s.0 < b.0)
        {
            best = Some(s);
        }
    }
    let (_, [_, _, c0]) = best?;
    // Golden section on [c0 - 0.01, c0 + 0.01].
    let (mut lo, mut hi) = ((c0 - 0.01).max(C_MIN), c0 + 0.01);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let (m1, m2) = (hi - g * (hi - lo), lo + g * (hi - lo));
        let (s1, s2) = (at(m1).map_or(f64::INFINITY, |s| s.0), at(m2).map_or(f64::INFINITY, |s| s.0));
        if s1 < s2 {
            hi = m2;
        } else {
            lo = m1;
        }
    }
    let refined = at((lo + hi) / 2.0)?;
    Some(if refined.0 <= best?.0 { refined.1 } else { best?.1 })
}

fn fit(map: &str, index: usize, model: &str, x: &[f64], y: &[f64]) -> Option<Fit> {
    let coefficients: Vec<f64> = match model {
        "saturating" => fit_saturating(x, y)?.to_vec(),
        _ => fit_linear(x, y)?.to_vec(),
    };
    let mut f = Fit { map: map.into(), index: INDICES[index].into(), model: model.into(), n: x.len(), coefficients, r2: f64::NAN, rmse: f64::NAN, bounds: Vec::new() };
    let n = x.len() as f64;
    let my = y.iter().sum::<f64>() / n;
    let sst: f64 = y.iter().map(|v| (v - my).powi(2)).sum();
    let e = sse(x, y, |v| f.at(v));
    f.r2 = if sst > 0.0 { 1.0 - e / sst } else { f64::NAN };
    f.rmse = (e / n).sqrt();
    f.bounds = CBI_BOUNDS.iter().map(|c| f.at(*c)).collect();
    Some(f)
}

/// Every fit of every map and index with enough plots.
pub fn fits(plots: &[Plot]) -> Vec<Fit> {
    let mut v = Vec::new();
    for map in ["real", "synthetic"] {
        let values: Vec<(f64, PlotValues)> = plots
            .iter()
            .filter(|p| p.left_out.is_none())
            .filter_map(|p| Some((p.cbi?, if map == "real" { p.real? } else { p.synthetic? })))
            .filter(|(_, v)| v.iter().all(|x| x.is_finite()))
            .collect();
        let x: Vec<f64> = values.iter().map(|(c, _)| *c).collect();
        for index in 0..INDICES.len() {
            let y: Vec<f64> = values.iter().map(|(_, v)| v[index]).collect();
            for model in ["saturating", "linear"] {
                v.extend(fit(map, index, model, &x, &y));
            }
        }
    }
    v
}

/// The four classes a dNBR fit gives at CBI 0.1, 1.25 and 2.25; `None` when its bounds do not
/// rise.
pub fn scheme_from(fit: &Fit) -> Option<SeverityScheme> {
    let b = &fit.bounds;
    if b.len() != 3 || !b.iter().all(|v| v.is_finite()) || !(b[0] < b[1] && b[1] < b[2]) {
        return None;
    }
    let barc = SeverityScheme::barc4();
    let names = ["unburned", "low", "moderate", "high"];
    let classes = (0..4).map(|i| SeverityClass { code: i as u8 + 1, name: names[i].into(), color: barc.classes[i].color, from: (i > 0).then(|| b[i - 1] as f32) }).collect();
    let s = SeverityScheme { name: "CBI".into(), scale: Scale::Dnbr, classes, burned_from: "low".into() };
    s.validate().ok().map(|_| s)
}

/// A plot's values in one map: the 3 x 3 means of dNBR (less `offset`), RdNBR and RBR around
/// column `col` of the three rows read (`nbr_pre` and the map's rows, full width); `None` where
/// any of the nine has no data.
fn values_at(nbr_pre: &[f32], image: &Image, nir: &str, scale: f32, rows: std::ops::Range<usize>, col: usize, width: usize, offset: f32) -> Result<Option<PlotValues>> {
    let post = image.read(&[nir, "B12"], scale, rows)?;
    let nine = |v: &[f32]| -> Vec<f32> { (0..3).flat_map(|r| (col - 1..=col + 1).map(move |c| (r, c))).map(|(r, c)| v[r * width + c]).collect() };
    let valid: Vec<bool> = (0..3).flat_map(|r| (col - 1..=col + 1).map(move |c| r * width + c)).map(|i| post.valid[i]).collect();
    let nbr_post = spectral::nbr(&nine(&post.bands[0]), &nine(&post.bands[1]), &valid);
    let pre = nine(nbr_pre);
    let mut dnbr = spectral::dnbr(&pre, &nbr_post);
    super::offset::subtract(&mut dnbr, offset);
    let (rdnbr, rbr) = (spectral::rdnbr(&pre, &dnbr), spectral::rbr(&pre, &dnbr));
    let mut out = [0f64; 3];
    for (k, v) in [&dnbr, &rdnbr, &rbr].into_iter().enumerate() {
        if v.iter().any(|x| !x.is_finite()) {
            return Ok(None);
        }
        out[k] = v.iter().map(|x| *x as f64).sum::<f64>() / 9.0;
    }
    Ok(Some(out))
}

/// Reads the plots, takes each map's values there, fits, and gives the classes of the real
/// map's dNBR fit (the saturating one, else the line). `offsets`: real and synthetic.
pub(super) fn calibrate(plots: &FieldPlots, maps: &Maps, cfg: &AssessConfig, offsets: [f32; 2]) -> Result<Calibration> {
    let points = crate::raster::load_points(&plots.file, maps.crs_wkt, &plots.field)?;
    let (gt, width, height) = (maps.gt, maps.pre.info.width, maps.pre.info.height);
    let nir = cfg.nir.name();
    let mut out = Vec::with_capacity(points.len());
    for p in points {
        let mut plot = Plot { id: p.id.clone(), lon: p.lon, lat: p.lat, cbi: p.value.as_ref().ok().copied(), left_out: None, real: None, synthetic: None };
        let (col, row) = (((p.x - gt[0]) / gt[1]).floor(), ((p.y - gt[3]) / gt[5]).floor());
        plot.left_out = match &p.value {
            _ if !(col >= 0.0 && row >= 0.0 && col < width as f64 && row < height as f64) => Some("outside the grid".into()),
            _ if col < 1.0 || row < 1.0 || col + 1.0 >= width as f64 || row + 1.0 >= height as f64 => Some("at the grid's edge: no 3 x 3 window".into()),
            Err(e) => Some(format!("no {}: {e}", plots.field)),
            Ok(v) if !(0.0..=3.0).contains(v) => Some(format!("{} {v} outside 0-3", plots.field)),
            Ok(_) => None,
        };
        if plot.left_out.is_none() {
            let (col, row) = (col as usize, row as usize);
            let rows = row - 1..row + 2;
            let (nbr_pre, _) = maps.pre.prefire_nbr(maps.pre_fill, nir, cfg.scale, rows.clone())?;
            plot.real = values_at(&nbr_pre, maps.real, nir, cfg.scale, rows.clone(), col, width, offsets[0])?;
            plot.synthetic = values_at(&nbr_pre, maps.synthetic, nir, cfg.scale, rows, col, width, offsets[1])?;
        }
        out.push(plot);
    }
    let fits = fits(&out);
    let mut notes = Vec::new();
    let used = |real: bool| out.iter().filter(|p| p.left_out.is_none() && if real { p.real.is_some() } else { p.synthetic.is_some() }).count();
    let (n_real, n_synth) = (used(true), used(false));
    let left = out.iter().filter(|p| p.left_out.is_some()).count();
    notes.push(format!(
        "{} plot(s) read from {}: {n_real} with the real image's values, {n_synth} with the synthetic image's{}; {left} left out (listed)",
        out.len(),
        plots.file.display(),
        if n_synth > n_real { " (it sees under the clouds)" } else { "" }
    ));
    let dnbr_fit = |model: &str| fits.iter().find(|f| f.map == "real" && f.index == "dNBR" && f.model == model);
    let scheme = dnbr_fit("saturating").and_then(scheme_from).or_else(|| dnbr_fit("linear").and_then(scheme_from));
    if scheme.is_none() {
        notes.push(if n_real < MIN_PLOTS {
            format!("no class bounds: the fits take at least {MIN_PLOTS} plots with the real image's values, {n_real} have them")
        } else {
            "no class bounds: the real map's dNBR does not rise with CBI at these plots".into()
        });
    }
    if plots.classify && scheme.is_none() {
        return Err(Error::invalid("plots", format!("{}: classifying with the CBI bounds was asked, but {}", plots.file.display(), notes.last().cloned().unwrap_or_default())));
    }
    Ok(Calibration { file: plots.file.clone(), field: plots.field.clone(), plots: out, classified: plots.classify, scheme, fits, notes })
}

/// The plots' table: each plot, its CBI, why it was left out, and each map's values.
pub(super) fn csv(c: &Calibration) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("id,lon,lat,cbi,left_out,real_dnbr,real_rdnbr,real_rbr,synthetic_dnbr,synthetic_rdnbr,synthetic_rbr\n");
    let cell = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    for p in &c.plots {
        let quoted = |t: &str| if t.contains([',', '"', '\n']) { format!("\"{}\"", t.replace('"', "\"\"")) } else { t.to_string() };
        let _ = write!(out, "{},{:.7},{:.7},{},{}", quoted(&p.id), p.lon, p.lat, cell(p.cbi), quoted(p.left_out.as_deref().unwrap_or("")));
        for values in [p.real, p.synthetic] {
            for k in 0..3 {
                let _ = write!(out, ",{}", cell(values.map(|v| v[k])));
            }
        }
        out.push('\n');
    }
    out
}

/// The report's section: the fits, the class bounds, the plots left out.
pub(super) fn html(c: &Calibration) -> String {
    use super::draw::esc;
    use std::fmt::Write as _;
    let num = |v: f64, d: usize| if v.is_finite() { format!("{v:.d$}") } else { "n/a".into() };
    let mut h = format!("<h2 id=\"plots\">Field plots (CBI)</h2>\n<p class=\"small\">{}. Each map's dNBR (after its offset), RdNBR and RBR are the 3 x 3 means around each plot; fitted against the plots' {} with Miller &amp; Thode's (2007) saturating model (index = a + b exp(c CBI)) and a line. The bounds are the fitted index at CBI 0.1, 1.25 and 2.25 (unburned/low, low/moderate, moderate/high).</p>\n", c.notes.iter().map(|n| esc(n)).collect::<Vec<_>>().join(". "), esc(&c.field));
    h.push_str("<table><tr><th>map</th><th>index</th><th>model</th><th>n</th><th>R²</th><th>RMSE</th><th>at CBI 0.1</th><th>1.25</th><th>2.25</th></tr>");
    for f in &c.fits {
        let d = if f.index == "dNBR" { 3 } else { 0 };
        let edge = if f.model == "saturating" && f.coefficients.get(2).is_some_and(|c| *c <= C_MIN * 1.0001) { " (c at its lower edge: no better than a line)" } else { "" };
        let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}{edge}</td><td>{}</td><td>{}</td><td>{}</td>", esc(&f.map), esc(&f.index), esc(&f.model), f.n, num(f.r2, 3), num(f.rmse, d));
        for b in &f.bounds {
            let _ = write!(h, "<td>{}</td>", num(*b, d));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>\n");
    match (&c.scheme, c.classified) {
        (Some(s), true) => {
            let _ = write!(h, "<p class=\"small\">Both maps are classified with these bounds (the real map's dNBR fit): {}.</p>\n", s.classes.iter().zip(s.ranges()).map(|(c, r)| format!("{} {}", esc(&c.name), esc(&r))).collect::<Vec<_>>().join(", "));
        }
        (Some(s), false) => {
            let _ = write!(h, "<p class=\"small\">The real map's dNBR fit gives the bounds {} (not used: ask for them with <code>--plots-classes</code>).</p>\n", s.bounds().iter().map(|b| format!("{b:.3}")).collect::<Vec<_>>().join(", "));
        }
        _ => {}
    }
    let left: Vec<String> = c.plots.iter().filter_map(|p| p.left_out.as_ref().map(|r| format!("{} ({})", esc(&p.id), esc(r)))).collect();
    let cloudy: Vec<String> = c.plots.iter().filter(|p| p.left_out.is_none() && p.real.is_none()).map(|p| esc(&p.id)).collect();
    if !left.is_empty() {
        let _ = write!(h, "<p class=\"small\">Left out: {}.</p>\n", left.join("; "));
    }
    if !cloudy.is_empty() {
        let _ = write!(h, "<p class=\"small\">Without the real image's values (clouds or no data within 3 x 3): {}.</p>\n", cloudy.join(", "));
    }
    h.push_str("<p class=\"small\">Every plot with its values: <code>plots.csv</code>.</p>\n");
    h
}

/// CBI against dNBR at the plots, real and synthetic, with their saturating fits.
pub(super) fn figure(path: &std::path::Path, c: &Calibration) -> Result<()> {
    use super::draw::{FONT_NAME, plot_err, register_font, save_png};
    use plotters::prelude::*;
    register_font();
    let (width, height) = (620u32, 480u32);
    let mut buf = vec![255u8; (width * height * 3) as usize];
    let err = plot_err(path);
    let points = |real: bool| -> Vec<(f64, f64)> { c.plots.iter().filter(|p| p.left_out.is_none()).filter_map(|p| Some((p.cbi?, if real { p.real?[0] } else { p.synthetic?[0] }))).collect() };
    let (pr, ps) = (points(true), points(false));
    let ys: Vec<f64> = pr.iter().chain(&ps).map(|p| p.1).collect();
    let (lo, hi) = ys.iter().fold((0.0f64, 0.5f64), |(a, b), v| (a.min(*v), b.max(*v)));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Field plots: dNBR against CBI", (FONT_NAME, 17))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0f64..3.0, (lo - 0.05)..(hi + 0.05))
            .map_err(|e| err(e.to_string()))?;
        chart.configure_mesh().x_desc(if c.field.eq_ignore_ascii_case("cbi") { "CBI".to_string() } else { format!("CBI ({})", c.field) }).y_desc("dNBR (3 x 3 mean, after the offset)").label_style((FONT_NAME, 13)).draw().map_err(|e| err(e.to_string()))?;
        for (map, pts, colour) in [("real", &pr, RGBColor(200, 60, 30)), ("synthetic", &ps, RGBColor(30, 100, 200))] {
            let n = pts.len();
            chart
                .draw_series(pts.iter().map(|(x, y)| Circle::new((*x, *y), 3, if map == "real" { colour.filled() } else { colour.stroke_width(1) })))
                .map_err(|e| err(e.to_string()))?
                .label(format!("{map} ({n} plots)"))
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
            if let Some(f) = c.fits.iter().find(|f| f.map == map && f.index == "dNBR" && f.model == "saturating") {
                let curve: Vec<(f64, f64)> = (0..=60).map(|k| k as f64 * 0.05).map(|x| (x, f.at(x))).collect();
                chart.draw_series(std::iter::once(PathElement::new(curve, colour.stroke_width(2)))).map_err(|e| err(e.to_string()))?;
            }
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).label_font((FONT_NAME, 13)).position(SeriesLabelPosition::UpperLeft).draw().map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    save_png(path, width as usize, height as usize, &buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated plots from a known saturating model with noise of known spread (seeded): the fit
    /// recovers the curve within what 60 plots allow, and the line fits worse.
    #[test]
    fn the_saturating_fit_recovers_a_generated_model_within_its_noise() {
        let (a, b, c, noise) = (-0.05f64, 0.08f64, 0.95f64, 0.03f64);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let n = 60;
        let x: Vec<f64> = (0..n).map(|i| 3.0 * i as f64 / (n - 1) as f64).collect();
        // Normal noise by Box-Muller.
        let y: Vec<f64> = x.iter().map(|v| a + b * (c * v).exp() + noise * (-2.0 * uniform().max(1e-12).ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos()).collect();
        let [fa, fb, fc] = fit_saturating(&x, &y).unwrap();
        // The curve, not each coefficient (a, b and c trade off), within about 2 standard errors.
        for cbi in [0.1, 1.25, 2.25, 3.0] {
            let (truth, got) = (a + b * (c * cbi as f64).exp(), fa + fb * (fc * cbi).exp());
            assert!((got - truth).abs() < 2.5 * noise / (n as f64).sqrt() * 3.0, "CBI {cbi}: {got} vs {truth} ({fa}, {fb}, {fc})");
        }
        assert!((fc - c).abs() < 0.25, "rate {fc} vs {c}");
        let plots: Vec<Plot> = x.iter().zip(&y).map(|(c, v)| Plot { id: String::new(), lon: 0.0, lat: 0.0, cbi: Some(*c), left_out: None, real: Some([*v, 0.0, 0.0]), synthetic: None }).collect();
        let f = fits(&plots);
        let sat = f.iter().find(|f| f.index == "dNBR" && f.model == "saturating").unwrap();
        let lin = f.iter().find(|f| f.index == "dNBR" && f.model == "linear").unwrap();
        assert!(sat.rmse < lin.rmse && (sat.rmse - noise).abs() < 0.01, "rmse {} vs line {}", sat.rmse, lin.rmse);
        assert!(sat.r2 > 0.95 && sat.n == n);
        let s = scheme_from(sat).unwrap();
        assert_eq!((s.name.as_str(), s.classes.len(), s.burned_from.as_str()), ("CBI", 4, "low"));
        assert!((s.classes[1].from.unwrap() as f64 - sat.at(0.1)).abs() < 1e-6);
    }

    #[test]
    fn an_exact_line_and_too_few_plots() {
        let x = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(fit_linear(&x, &[0.1, 0.3, 0.5, 0.7]).map(|[a, b]| ((a * 1e9).round() / 1e9, (b * 1e9).round() / 1e9)), Some((0.1, 0.2)));
        assert!(fit_linear(&[1.0, 1.0], &[0.0, 1.0]).is_none(), "one CBI: no line");
        assert!(fit_saturating(&x[..3], &[0.1, 0.3, 0.5]).is_none(), "three plots: no saturating fit");
        // A falling fit gives no classes.
        let falling = Fit { map: "real".into(), index: "dNBR".into(), model: "linear".into(), n: 4, coefficients: vec![0.5, -0.1], r2: 1.0, rmse: 0.0, bounds: CBI_BOUNDS.iter().map(|c| 0.5 - 0.1 * c).collect() };
        assert!(scheme_from(&falling).is_none());
    }
}
