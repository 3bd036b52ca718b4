//! The assessment report: PNG figures (drawn with plotters), CSV tables, a QGIS style for the
//! severity rasters, and one self-contained HTML page embedding everything.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use plotters::prelude::*;

use crate::indices::severity::{NO_DATA_COLOR, SeverityScheme};
use super::{AssessConfig, AssessReport, Image};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
pub(super) use super::draw::{FONT_NAME, esc, plot_err, register_font, save_png};

/// Longest side of one image panel in a figure, pixels.
const PANEL_MAX_PX: usize = 420;


/// What the figures are drawn from.
pub(super) struct Figures<'a> {
    pub pre: &'a Image,
    pub real: &'a Image,
    pub synthetic: &'a Image,
    pub cfg: &'a AssessConfig,
    /// The folder holding the index and severity rasters already written.
    pub out_dir: &'a Path,
}

/// Longest side of the previews the true-colour stretch is taken from (at most ~1 million
/// pixels, whatever the grid).
const STRETCH_PREVIEW_PX: usize = 1024;

/// An RGB picture.
struct Picture {
    w: usize,
    h: usize,
    px: Vec<[u8; 3]>,
}

impl Picture {
    /// Nearest-neighbour reduction so the longer side is at most [`PANEL_MAX_PX`].
    fn from_fn(width: usize, height: usize, color: impl Fn(usize) -> [u8; 3]) -> Picture {
        let scale = (width.max(height) as f64 / PANEL_MAX_PX as f64).max(1.0);
        let (w, h) = (((width as f64 / scale).round() as usize).max(1), ((height as f64 / scale).round() as usize).max(1));
        let mut px = Vec::with_capacity(w * h);
        for y in 0..h {
            let sy = ((y as f64 + 0.5) * height as f64 / h as f64) as usize;
            for x in 0..w {
                let sx = ((x as f64 + 0.5) * width as f64 / w as f64) as usize;
                px.push(color(sy.min(height - 1) * width + sx.min(width - 1)));
            }
        }
        Picture { w, h, px }
    }
}


/// 2 and 98 % percentiles of the finite values (a subsample of at most ~1 million).
fn percentile_stretch(values: &[f32]) -> (f32, f32) {
    let step = (values.len() / 1_000_000).max(1);
    let mut v: Vec<f32> = values.iter().step_by(step).copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let (lo, hi) = (at(0.02), at(0.98));
    if hi > lo { (lo, hi) } else { (lo, lo + 1e-6) }
}

fn stretch(v: f32, lo: f32, hi: f32) -> u8 {
    if !v.is_finite() {
        return 0;
    }
    (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8
}

/// dNBR colour ramp: regrowth green, unchanged white, burned orange to red to purple.
pub fn dnbr_color(v: f32) -> [u8; 3] {
    const STOPS: [(f32, [f32; 3]); 5] =
        [(-0.5, [26., 150., 65.]), (0.0, [255., 255., 255.]), (0.27, [253., 174., 97.]), (0.66, [215., 25., 28.]), (1.0, [110., 0., 120.])];
    if !v.is_finite() {
        return [200, 200, 200];
    }
    let v = v.clamp(STOPS[0].0, STOPS[STOPS.len() - 1].0);
    for w in STOPS.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if v <= b {
            let t = (v - a) / (b - a);
            return [0, 1, 2].map(|i| (ca[i] + t * (cb[i] - ca[i])).round() as u8);
        }
    }
    [110, 0, 120]
}

enum Legend {
    Colorbar { min: f32, max: f32, label: String },
    Classes(Vec<([u8; 3], String)>),
}

/// Panels side by side under a title, with an optional legend below.
fn panels_figure(path: &Path, title: &str, panels: &[(String, Picture)], legend: Option<Legend>) -> Result<()> {
    register_font();
    let margin = 20usize;
    let header = 70usize;
    let pw = panels.iter().map(|p| p.1.w).max().unwrap_or(1);
    let ph = panels.iter().map(|p| p.1.h).max().unwrap_or(1);
    let legend_h = match &legend {
        None => 0,
        Some(Legend::Colorbar { .. }) => 70,
        Some(Legend::Classes(c)) => 26 * c.len().div_ceil(2) + 20,
    };
    // Wide enough for the title at ~11 px per character of a 22 px font.
    let width = (margin + (pw + margin) * panels.len()).max(520).max(title.chars().count() * 11 + 2 * margin);
    let height = header + ph + margin + legend_h;
    let mut buf = vec![255u8; width * height * 3];
    let err = plot_err(path);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width as u32, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let title_style = TextStyle::from((FONT_NAME, 22).into_font()).color(&BLACK);
        root.draw(&Text::new(title.to_string(), (margin as i32, 12), title_style)).map_err(|e| err(e.to_string()))?;
        let label_style = TextStyle::from((FONT_NAME, 16).into_font()).color(&BLACK);
        for (i, (label, _)) in panels.iter().enumerate() {
            let x = (margin + i * (pw + margin)) as i32;
            root.draw(&Text::new(label.clone(), (x, 44), label_style.clone())).map_err(|e| err(e.to_string()))?;
        }
        let top = (header + ph + margin) as i32;
        match &legend {
            None => {}
            Some(Legend::Colorbar { min, max, label }) => {
                let (x0, bar_w) = (margin as i32, (width - 2 * margin) as i32);
                for i in 0..bar_w {
                    let v = min + (max - min) * i as f32 / (bar_w - 1).max(1) as f32;
                    let c = dnbr_color(v);
                    root.draw(&Rectangle::new([(x0 + i, top), (x0 + i + 1, top + 18)], RGBColor(c[0], c[1], c[2]).filled()))
                        .map_err(|e| err(e.to_string()))?;
                }
                let small = TextStyle::from((FONT_NAME, 14).into_font()).color(&BLACK);
                for k in 0..=6 {
                    let v = min + (max - min) * k as f32 / 6.0;
                    let x = x0 + (bar_w - 1) * k / 6;
                    root.draw(&Text::new(format!("{v:.2}"), (x - 12, top + 22), small.clone())).map_err(|e| err(e.to_string()))?;
                }
                root.draw(&Text::new(label.clone(), (x0, top + 44), small)).map_err(|e| err(e.to_string()))?;
            }
            Some(Legend::Classes(classes)) => {
                let col_w = ((width - 2 * margin) / 2) as i32;
                let small = TextStyle::from((FONT_NAME, 14).into_font()).color(&BLACK);
                for (i, (c, label)) in classes.iter().enumerate() {
                    let x = margin as i32 + (i % 2) as i32 * col_w;
                    let y = top + (i / 2) as i32 * 26;
                    root.draw(&Rectangle::new([(x, y), (x + 22, y + 18)], RGBColor(c[0], c[1], c[2]).filled()))
                        .map_err(|e| err(e.to_string()))?;
                    root.draw(&Rectangle::new([(x, y), (x + 22, y + 18)], BLACK.stroke_width(1))).map_err(|e| err(e.to_string()))?;
                    root.draw(&Text::new(label.clone(), (x + 30, y + 1), small.clone())).map_err(|e| err(e.to_string()))?;
                }
            }
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    for (i, (_, p)) in panels.iter().enumerate() {
        let x0 = margin + i * (pw + margin);
        for y in 0..p.h {
            for x in 0..p.w {
                let o = ((header + y) * width + x0 + x) * 3;
                buf[o..o + 3].copy_from_slice(&p.px[y * p.w + x]);
            }
        }
        // A grey frame, so a white (unchanged) panel still shows its extent.
        for x in x0.saturating_sub(1)..=(x0 + p.w).min(width - 1) {
            for y in [header - 1, header + p.h] {
                let o = (y * width + x) * 3;
                buf[o..o + 3].copy_from_slice(&[150, 150, 150]);
            }
        }
        for y in header - 1..=header + p.h {
            for x in [x0.saturating_sub(1), (x0 + p.w).min(width - 1)] {
                let o = (y * width + x) * 3;
                buf[o..o + 3].copy_from_slice(&[150, 150, 150]);
            }
        }
    }
    save_png(path, width, height, &buf)
}

/// Real and synthetic per-band metrics as bars.
fn bands_figure(path: &Path, report: &AssessReport) -> Result<()> {
    let names: Vec<String> = report.quality.bands.iter().map(|b| b.band.clone()).collect();
    // An infinite PSNR (identical bands) is drawn as 99 dB.
    bar_panels(
        path,
        &names,
        &[
            ("PSNR (dB) per band", report.quality.bands.iter().map(|b| if b.psnr_db.is_finite() { b.psnr_db } else { 99.0 }).collect()),
            ("SSIM per band", report.quality.bands.iter().map(|b| b.ssim).collect()),
        ],
    )
}

/// Every source of the baselines table against the real t1 over the held-out pixels: burned-area
/// kappa and dNBR MAE (the radar-only map has no image: n/a).
fn baselines_figure(path: &Path, baselines: &super::baselines::Baselines) -> Result<()> {
    let names: Vec<String> = baselines.rows.iter().map(|r| r.id.replace("radar", "radar only").replace("linear", "linear model")).collect();
    bar_panels(
        path,
        &names,
        &[
            ("burned-area kappa, held-out pixels (higher is better)", baselines.rows.iter().map(|r| r.burned.kappa).collect()),
            ("dNBR MAE, held-out pixels (lower is better)", baselines.rows.iter().map(|r| r.image.dnbr_mae).collect()),
        ],
    )
}

/// Side-by-side bar panels, one value a label each (a value that is not finite: no bar, n/a).
fn bar_panels(path: &Path, names: &[String], panels: &[(&str, Vec<f64>)]) -> Result<()> {
    register_font();
    let (width, height) = (450 * panels.len().max(1) as u32, 380u32);
    let mut buf = vec![255u8; (width * height * 3) as usize];
    let err = plot_err(path);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, (caption, values)) in areas.iter().zip(panels) {
            let top = values.iter().copied().filter(|v| v.is_finite()).fold(0.0f64, f64::max).max(1e-6) * 1.15;
            let bottom = values.iter().copied().filter(|v| v.is_finite()).fold(0.0f64, f64::min).min(0.0) * 1.15;
            let n = values.len().max(1) as f64;
            let mut chart = ChartBuilder::on(area)
                .caption(*caption, (FONT_NAME, 16))
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d(-0.5f64..n - 0.5, bottom..top)
                .map_err(|e| err(e.to_string()))?;
            let labels = names.to_vec();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(values.len().max(1))
                .x_label_formatter(&move |x| {
                    let i = x.round();
                    if (x - i).abs() < 0.01 && i >= 0.0 { labels.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
                })
                .label_style((FONT_NAME, 13))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(values.iter().enumerate().map(|(i, v)| {
                    Rectangle::new([(i as f64 - 0.35, 0.0), (i as f64 + 0.35, if v.is_finite() { *v } else { 0.0 })], RGBColor(60, 110, 180).filled())
                }))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(values.iter().enumerate().map(|(i, v)| {
                    let label = if v.is_finite() { format!("{v:.3}") } else { "n/a".to_string() };
                    Text::new(label, (i as f64 - 0.3, if v.is_finite() { v.max(0.0) } else { 0.0 } + top * 0.07), (FONT_NAME, 12).into_font())
                }))
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    save_png(path, width as usize, height as usize, &buf)
}

/// Heatmaps of the burned/unburned and the severity confusion matrices, with counts.
fn confusion_figure(path: &Path, report: &AssessReport) -> Result<()> {
    register_font();
    let (width, height) = (1080usize, 580usize);
    let mut buf = vec![255u8; width * height * 3];
    let err = plot_err(path);
    let b = &report.burned;
    let binary = super::agreement::ConfusionMatrix {
        labels: vec!["unburned".into(), "burned".into()],
        counts: vec![vec![b.true_negative, b.false_positive], vec![b.false_negative, b.true_positive]],
    };
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width as u32, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let title = TextStyle::from((FONT_NAME, 18).into_font()).color(&BLACK);
        let small = TextStyle::from((FONT_NAME, 11).into_font()).color(&BLACK);
        let short = |s: &str| s.replace(" severity", "").replace("enhanced regrowth, ", "regrowth ");
        // Column headers: initials (RH, RL, U, L, ML, MH, H), which fit narrow cells.
        let code = |s: &str| -> String {
            let s = short(s);
            s.split([' ', '-']).filter(|w| !w.is_empty()).map(|w| w[..1].to_ascii_uppercase()).collect()
        };
        let draw_matrix = |x0: i32, y0: i32, cell: i32, m: &super::agreement::ConfusionMatrix, caption: &str| -> Result<()> {
            root.draw(&Text::new(caption.to_string(), (x0 - 120, y0 - 60), title.clone())).map_err(|e| err(e.to_string()))?;
            root.draw(&Text::new("synthetic (columns) vs real (rows)".to_string(), (x0 - 120, y0 - 38), small.clone()))
                .map_err(|e| err(e.to_string()))?;
            let max = m.counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
            for (r, row) in m.counts.iter().enumerate() {
                let row_label = if m.labels.len() > 2 { format!("{} {}", code(&m.labels[r]), short(&m.labels[r])) } else { short(&m.labels[r]) };
                root.draw(&Text::new(row_label, (x0 - 118, y0 + r as i32 * cell + cell / 2 - 6), small.clone()))
                    .map_err(|e| err(e.to_string()))?;
                for (c, count) in row.iter().enumerate() {
                    let t = (*count as f64 / max).sqrt();
                    let shade = (255.0 - t * 200.0) as u8;
                    let (x, y) = (x0 + c as i32 * cell, y0 + r as i32 * cell);
                    let color = if r == c { RGBColor(shade, 255, shade) } else { RGBColor(255, shade, shade) };
                    root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], color.filled())).map_err(|e| err(e.to_string()))?;
                    root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], BLACK.stroke_width(1))).map_err(|e| err(e.to_string()))?;
                    root.draw(&Text::new(count.to_string(), (x + 4, y + cell / 2 - 6), small.clone())).map_err(|e| err(e.to_string()))?;
                }
            }
            for (c, label) in m.labels.iter().enumerate() {
                let x = x0 + c as i32 * cell + 2;
                let y = y0 + m.counts.len() as i32 * cell + 4;
                let column_label = if m.labels.len() > 2 { code(label) } else { short(label) };
                root.draw(&Text::new(column_label, (x, y), small.clone())).map_err(|e| err(e.to_string()))?;
            }
            Ok(())
        };
        draw_matrix(150, 110, 90, &binary, "Burned / unburned")?;
        draw_matrix(580, 110, 60, &report.severity_confusion, "Severity classes")?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    save_png(path, width, height, &buf)
}

/// Draws every figure into `out_dir/figures/`; returns their paths relative to `out_dir`.
pub(super) fn write_figures(out_dir: &Path, f: &Figures, report: &AssessReport) -> Result<Vec<String>> {
    let dir = out_dir.join("figures");
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir, "creating the figures folder"))?;
    let sim = if f.cfg.simulated_burn.is_some() { " (SIMULATED burn)" } else { "" };

    // True colour, one stretch (from the real post-fire image) for all three; drawn from
    // previews, so memory does not grow with the grid.
    let rgb_names = ["B04", "B03", "B02"];
    let real_rgb = f.real.preview(&rgb_names, f.cfg.scale, STRETCH_PREVIEW_PX)?;
    let stretches: Vec<(f32, f32)> = real_rgb.bands.iter().map(|b| percentile_stretch(b)).collect();
    let to_picture = |s: &crate::raster::BandStack| {
        Picture::from_fn(s.width, s.height, |i| {
            if !s.valid[i] {
                return [0, 0, 0];
            }
            [0, 1, 2].map(|b| stretch(s.bands[b][i], stretches[b].0, stretches[b].1))
        })
    };
    let pre_rgb = f.pre.preview(&rgb_names, f.cfg.scale, STRETCH_PREVIEW_PX)?;
    let synth_rgb = f.synthetic.preview(&rgb_names, f.cfg.scale, STRETCH_PREVIEW_PX)?;
    panels_figure(
        &dir.join("rgb.png"),
        &format!("True colour (B4, B3, B2), 2-98 % stretch of the real t1 image{sim}"),
        &[
            ("pre-fire t0".into(), to_picture(&pre_rgb)),
            (format!("real t1{sim}"), to_picture(&real_rgb)),
            ("synthetic t1".into(), to_picture(&synth_rgb)),
        ],
        None,
    )?;
    drop((pre_rgb, synth_rgb, real_rgb));

    // Maps from the rasters just written (nearest pixels of their overviews).
    let map = |file: String, band: usize, color: &dyn Fn(f32, bool) -> [u8; 3]| -> Result<Picture> {
        let s = crate::raster::read_preview(&f.out_dir.join(file).display().to_string(), &[band], PANEL_MAX_PX, false)?;
        Ok(Picture::from_fn(s.width, s.height, |i| color(s.bands[0][i], s.valid[i])))
    };
    let dnbr = |v: f32, ok: bool| dnbr_color(if ok { v } else { f32::NAN });
    let scheme = &report.config.severity_classes;
    let severity = |v: f32, ok: bool| if ok { scheme.color(v as u8) } else { NO_DATA_COLOR };
    panels_figure(
        &dir.join("dnbr.png"),
        &format!("dNBR = NBR(t0) - NBR(t1){}, {}{sim}", if report.dnbr_offset.as_ref().is_some_and(|o| o.pixels > 0) { " - offset" } else { "" }, report.nbr_definition),
        &[
            ("from the real t1 image".into(), map(super::files::indices("real"), 3, &dnbr)?),
            ("from the synthetic t1 image".into(), map(super::files::indices("synthetic"), 3, &dnbr)?),
        ],
        Some(Legend::Colorbar { min: -0.5, max: 1.0, label: "dNBR (grey: no data)".into() }),
    )?;

    let classes = scheme.classes.iter().map(|c| (c.color, c.name.clone())).collect();
    panels_figure(
        &dir.join("severity.png"),
        &format!("Burn severity ({} classes on the {}){sim}", scheme.name, scheme.scale.name()),
        &[
            ("from the real t1 image".into(), map(super::files::severity("real"), 1, &severity)?),
            ("from the synthetic t1 image".into(), map(super::files::severity("synthetic"), 1, &severity)?),
        ],
        Some(Legend::Classes(classes)),
    )?;
    confusion_figure(&dir.join("confusion.png"), report)?;
    bands_figure(&dir.join("bands.png"), report)?;
    let mut names = vec!["rgb", "dnbr", "severity", "confusion", "bands"];
    if let Some(bl) = &report.baselines {
        baselines_figure(&dir.join("baselines.png"), bl)?;
        names.push("baselines");
    }
    if report.uncertainty.as_ref().is_some_and(|u| !u.reliability.is_empty()) {
        reliability_figure(&dir.join("reliability.png"), report)?;
        names.push("reliability");
    }
    if let Some(c) = &report.plots {
        super::plots::figure(&dir.join("cbi.png"), c)?;
        names.push("cbi");
    }
    Ok(names.iter().map(|n| format!("figures/{n}.png")).collect())
}

/// The burn probability's reliability diagram: the burned share the real map shows against the
/// mean predicted probability of each bin (the diagonal is perfect calibration), with the
/// pixels of each bin.
fn reliability_figure(path: &Path, report: &AssessReport) -> Result<()> {
    register_font();
    let (width, height) = (560u32, 520u32);
    let mut buf = vec![255u8; (width * height * 3) as usize];
    let err = plot_err(path);
    let Some(u) = &report.uncertainty else { return Ok(()) };
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Burn probability: reliability ({})", u.scope), (FONT_NAME, 17))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0f64..1.0, 0.0f64..1.0)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("predicted probability")
            .y_desc("burned in the real map")
            .label_style((FONT_NAME, 13))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, 0.0), (1.0, 1.0)], RGBColor(150, 150, 150)))).map_err(|e| err(e.to_string()))?;
        let points: Vec<(f64, f64, u64)> = u.reliability.iter().filter(|b| b.pixels > 0 && b.predicted.is_finite() && b.observed.is_finite()).map(|b| (b.predicted, b.observed, b.pixels)).collect();
        chart.draw_series(std::iter::once(PathElement::new(points.iter().map(|(x, y, _)| (*x, *y)).collect::<Vec<_>>(), RGBColor(200, 60, 30).stroke_width(2)))).map_err(|e| err(e.to_string()))?;
        chart.draw_series(points.iter().map(|(x, y, _)| Circle::new((*x, *y), 4, RGBColor(200, 60, 30).filled()))).map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(points.iter().map(|(x, y, n)| Text::new(format!("{n} px"), (if *x > 0.85 { *x - 0.11 } else { *x + 0.015 }, (*y - 0.04).max(0.01)), (FONT_NAME, 11).into_font())))
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    save_png(path, width as usize, height as usize, &buf)
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v.is_infinite() {
        "inf".into()
    } else {
        format!("{v:.6}")
    }
}

/// report.json and the CSV tables.
pub(super) fn write_tables(out_dir: &Path, report: &mut AssessReport) -> Result<()> {
    let mut bands = String::from("band,psnr_db,ssim,rmse,mae\n");
    for b in &report.quality.bands {
        let _ = writeln!(bands, "{},{},{},{},{}", b.band, num(b.psnr_db), num(b.ssim), num(b.rmse), num(b.mae));
    }
    let q = &report.quality;
    let _ = writeln!(bands, "all,{},{},{},{}", num(q.psnr_db), num(q.ssim), num(q.rmse), num(q.mae));
    write_atomic(&out_dir.join("metrics_bands.csv"), bands.as_bytes())?;

    let a = &report.burned;
    let mut agreement = String::from("metric,value\n");
    for (k, v) in [
        ("overall_accuracy", a.overall_accuracy),
        ("kappa", a.kappa),
        ("f1", a.f1),
        ("iou", a.iou),
        ("commission_error", a.commission_error),
        ("omission_error", a.omission_error),
        ("burned_ha_real", a.burned_ha_real),
        ("burned_ha_synthetic", a.burned_ha_synthetic),
        ("sam_degrees", q.sam_degrees),
        ("severity_overall_accuracy", report.severity_confusion.overall_accuracy()),
        ("severity_kappa", report.severity_confusion.kappa()),
    ] {
        let _ = writeln!(agreement, "{k},{}", num(v));
    }
    write_atomic(&out_dir.join("agreement.csv"), agreement.as_bytes())?;

    let m = &report.severity_confusion;
    let mut confusion = format!("real \\ synthetic,{}\n", m.labels.join(","));
    for (label, row) in m.labels.iter().zip(&m.counts) {
        let _ = writeln!(confusion, "{label},{}", row.iter().map(u64::to_string).collect::<Vec<_>>().join(","));
    }
    write_atomic(&out_dir.join("severity_confusion.csv"), confusion.as_bytes())?;

    let mut areas = String::from("code,class,hectares_real,hectares_synthetic,hectares_synthetic_all\n");
    for c in &report.severity_areas {
        let _ = writeln!(areas, "{},{},{:.4},{:.4},{:.4}", c.code, c.class, c.hectares_real, c.hectares_synthetic, c.hectares_synthetic_all);
    }
    write_atomic(&out_dir.join("severity_areas.csv"), areas.as_bytes())?;
    if let Some(c) = &report.plots {
        write_atomic(&out_dir.join("plots.csv"), super::plots::csv(c).as_bytes())?;
        report.files.push("plots.csv".into());
    }
    report.files.extend(["metrics_bands.csv", "agreement.csv", "severity_confusion.csv", "severity_areas.csv", super::files::REPORT_JSON].map(String::from));
    report.files.push(super::files::REPORT_HTML.into());
    // JSON cannot hold NaN/inf: serde_json writes them as null.
    crate::fsutil::save_json(&out_dir.join(super::files::REPORT_JSON), report)
}


/// One self-contained HTML page (figures embedded as data URIs).
pub(super) fn write_html(out_dir: &Path, report: &mut AssessReport, figures: &[String]) -> Result<()> {
    let mut h = String::new();
    let q = &report.quality;
    let a = &report.burned;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Burned-area assessment</title>\n<style>\
         body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}} table{{border-collapse:collapse;margin:1em 0}} \
         td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}} th{{background:#eee}} td:first-child{{text-align:left}} \
         img{{max-width:100%;border:1px solid #ddd}} .sim{{background:#fff3cd;border:2px solid #e0a800;padding:1em}} .small{{color:#666;font-size:90%}}\
         </style></head><body>\n<h1>Burned-area assessment of a synthetic Sentinel-2 image</h1>\n"
    );
    if let Some(sim) = &report.config.simulated_burn {
        let lines: Vec<String> = sim.lines().map(esc).collect();
        let _ = write!(h, "<div class=\"sim\" id=\"simulated\"><b>Simulated burn.</b> {}</div>\n", lines.join("<br>\n"));
    }
    // Said first when a simpler source does better: the reader may stop here.
    if let Some(bl) = report.baselines.as_ref().filter(|b| !b.beaten_by.is_empty()) {
        let items: Vec<String> = bl.beaten_by.iter().map(|b| esc(b)).collect();
        let notes: String = bl.notes.iter().map(|n| format!(" ({})", esc(n))).collect();
        let _ = write!(h, "<div class=\"sim\" id=\"baselines-verdict\"><b>A simpler source does better here.</b> Over the held-out pixels, {}{notes}. See <a href=\"#baselines\">against the alternatives</a>.</div>\n", items.join("; "));
    }
    let _ = write!(
        h,
        "<p>The synthetic post-fire image is judged by the burned-area map it yields, against the map from the real post-fire \
         image, with the same pre-fire image for both. {} pixels of {:.0} m<sup>2</sup>; {}.</p>\n\
         <table id=\"inputs\"><tr><th>input</th><th>file</th></tr><tr><td>pre-fire (t0)</td><td>{}</td></tr>\
         <tr><td>real post-fire (t1)</td><td>{}</td></tr><tr><td>synthetic post-fire (t1)</td><td>{}</td></tr></table>\n",
        report.width * report.height,
        report.pixel_area_m2,
        esc(&report.nbr_definition),
        esc(&report.inputs.pre.display().to_string()),
        esc(&report.inputs.real.display().to_string()),
        esc(&report.inputs.synthetic.display().to_string()),
    );
    let _ = write!(
        h,
        "<h2 id=\"agreement\">Burned area: agreement</h2>\n<table><tr><th>measure</th><th>value</th></tr>\
         <tr><td>burned area, real</td><td>{:.2} ha</td></tr><tr><td>burned area, synthetic</td><td>{:.2} ha</td></tr>\
         <tr><td>overall accuracy</td><td>{}</td></tr><tr><td>Cohen's kappa</td><td>{}</td></tr><tr><td>F1 (Dice)</td><td>{}</td></tr>\
         <tr><td>IoU</td><td>{}</td></tr><tr><td>commission error</td><td>{}</td></tr><tr><td>omission error</td><td>{}</td></tr>\
         <tr><td>severity classes: overall accuracy</td><td>{}</td></tr><tr><td>severity classes: kappa</td><td>{}</td></tr></table>\n",
        a.burned_ha_real,
        a.burned_ha_synthetic,
        num(a.overall_accuracy),
        num(a.kappa),
        num(a.f1),
        num(a.iou),
        num(a.commission_error),
        num(a.omission_error),
        num(report.severity_confusion.overall_accuracy()),
        num(report.severity_confusion.kappa()),
    );
    match &report.held_out {
        Some(held) => {
            let b = &held.burned;
            let _ = write!(
                h,
                "<h2 id=\"held-out\">Burned area: agreement where the model did not train</h2>\n<p class=\"small\">{} ({} pixels compared). \
                 The table above includes pixels the model trained on, where agreement flatters it; this one does not.</p>\n\
                 <table><tr><th>measure</th><th>value</th></tr><tr><td>burned area, real</td><td>{:.2} ha</td></tr>\
                 <tr><td>burned area, synthetic</td><td>{:.2} ha</td></tr><tr><td>overall accuracy</td><td>{}</td></tr>\
                 <tr><td>Cohen's kappa</td><td>{}</td></tr><tr><td>F1 (Dice)</td><td>{}</td></tr><tr><td>IoU</td><td>{}</td></tr></table>\n",
                esc(&held.description),
                b.pixels,
                b.burned_ha_real,
                b.burned_ha_synthetic,
                num(b.overall_accuracy),
                num(b.kappa),
                num(b.f1),
                num(b.iou),
            );
        }
        None => {
            let _ = write!(h, "<p class=\"small\">The agreement above is over every pixel with data in both maps, including any the model was trained on.</p>\n");
        }
    }
    if let Some(bl) = &report.baselines {
        let (columns, rows) = bl.table();
        let _ = write!(
            h,
            "<h2 id=\"baselines\">Against the alternatives</h2>\n<p class=\"small\">What an analyst has without the model, scored over the same pixels: {} ({} pixels). \
             Persistence takes the pre-fire image as the post-fire one; the linear model is a per-band ridge regression of t1 on the \
             dataset's inputs and the radar's dB change, fitted on the training blocks' clear pixels{}; the radar-only map is burned \
             where the backscatter fell past a threshold set on the training blocks (a map, no image: n/a).</p>\n<table><tr><th>source</th>",
            esc(&bl.pixels),
            bl.count,
            bl.linear.as_ref().map(|m| format!(" ({} pixels, lambda {})", m.pixels, m.lambda)).unwrap_or_default(),
        );
        for (name, _) in &columns {
            let _ = write!(h, "<th>{name}</th>");
        }
        let _ = write!(h, "</tr>");
        for (name, values) in rows {
            let _ = write!(h, "<tr><td>{}</td>", esc(name));
            for (v, (_, digits)) in values.iter().zip(&columns) {
                let _ = write!(h, "<td>{}</td>", if v.is_finite() { format!("{v:.digits$}") } else { num(*v) });
            }
            let _ = write!(h, "</tr>");
        }
        let _ = write!(h, "</table>\n");
        for n in &bl.notes {
            let _ = write!(h, "<p class=\"small\">{}</p>\n", esc(n));
        }
    }
    if let Some(g) = &report.gapfill {
        let _ = write!(h, "<h2 id=\"gapfilled\">The gap-filled post-fire image</h2>\n<p class=\"small\">Real t1 where it is clear, else the composite of the t1 window's other clear acquisitions, else the synthetic image (<code>gapfilled_S2_t1.tif</code>, the source of each pixel in <code>gapfilled_source.tif</code>). Its clear pixels are the real ones, so it is not scored against the real image.</p>\n");
        for line in g.lines(report.pixel_area_m2, report.inputs.gapfill.as_ref().is_some_and(|r| r.composite_t1.is_some())) {
            let _ = write!(h, "<p>{}</p>\n", esc(&line));
        }
        if report.inputs.pre_fill.is_some() {
            let _ = write!(h, "<p class=\"small\">The t0 composite stands in for the chosen t0 where t0 is cloudy, in every dNBR of this report: {} pixels.</p>\n", report.pre_filled_pixels);
        }
    }
    if let Some(p) = &report.perimeter {
        let _ = write!(
            h,
            "<h2 id=\"perimeter\">Burned area: agreement with the official perimeter</h2>\n<p class=\"small\">{} ({} polygon(s), {:.2} ha, {:.2} ha of it on the grid; \
             a pixel is inside when its centre is). Each map is compared with the perimeter over the pixels where it has data: the real map \
             only where its image is clear, the synthetic one everywhere.</p>\n<table><tr><th>measure</th><th>real map</th><th>synthetic map</th></tr>",
            esc(&p.file.display().to_string()),
            p.features,
            p.area_ha,
            p.area_ha_on_grid
        );
        let rows: [(&str, fn(&super::BurnedAgreement) -> String); 9] = [
            ("pixels compared", |a| a.pixels.to_string()),
            ("perimeter area there", |a| format!("{:.2} ha", a.burned_ha_real)),
            ("burned area of the map there", |a| format!("{:.2} ha", a.burned_ha_synthetic)),
            ("Cohen's kappa", |a| num(a.kappa)),
            ("F1 (Dice)", |a| num(a.f1)),
            ("IoU", |a| num(a.iou)),
            ("commission error (burned outside the perimeter)", |a| num(a.commission_error)),
            ("omission error (perimeter not mapped burned)", |a| num(a.omission_error)),
            ("overall accuracy", |a| num(a.overall_accuracy)),
        ];
        for (name, value) in rows {
            let _ = write!(h, "<tr><td>{name}</td><td>{}</td><td>{}</td></tr>", value(&p.real), value(&p.synthetic));
        }
        let _ = write!(h, "</table>\n");
    }
    if let Some(u) = &report.uncertainty {
        let k = report.inputs.samples.map(|k| format!("the mean of {k} Monte-Carlo dropout passes")).unwrap_or_else(|| "a mean of Monte-Carlo dropout passes".into());
        let _ = write!(
            h,
            "<h2 id=\"uncertainty\">Is the uncertainty honest?</h2>\n<p class=\"small\">The synthetic image is {k}; beside it, their standard \
             deviation per band and the burn probability (the share of passes whose dNBR reaches the burned class). Checked over the {}: \
             an honest standard deviation grows with the actual error, and about 95 % of real values lie within 2 sd of a Gaussian mean.</p>\n\
             <table><tr><th>band</th><th>pixels</th><th>correlation of sd with |error|</th><th>real within mean ± 2 sd</th></tr>",
            esc(&u.scope)
        );
        for b in &u.bands {
            let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&b.band), b.pixels, num(b.correlation), num(b.within_2sd));
        }
        let _ = write!(h, "</table>\n<table><tr><th>predicted sd</th><th>pixels</th><th>mean |error|</th></tr>");
        for b in &u.sd_bins {
            let to = b.sd_to.map(|t| format!("{t}")).unwrap_or_else(|| "and above".into());
            let _ = write!(h, "<tr><td>{} to {to}</td><td>{}</td><td>{}</td></tr>", b.sd_from, b.pixels, num(b.mean_abs_error));
        }
        let _ = write!(h, "</table>\n");
        if !u.reliability.is_empty() {
            let _ = write!(h, "<table><tr><th>burn probability</th><th>pixels</th><th>mean predicted</th><th>burned in the real map</th></tr>");
            for b in &u.reliability {
                let _ = write!(h, "<tr><td>{:.1} to {:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>", b.p_from, b.p_to, b.pixels, num(b.predicted), num(b.observed));
            }
            let _ = write!(h, "</table>\n");
            if !u.probability.is_empty() {
                let _ = write!(h, "<p class=\"small\" id=\"probability\">The burn probability here is {}.</p>\n", esc(&u.probability));
            }
            if report.dnbr_offset.as_ref().is_some_and(|o| o.pixels > 0) && u.probability.starts_with("the share") {
                let _ = write!(
                    h,
                    "<p class=\"sim\">The burn probability was drawn at inference on the raw dNBR (inference does not know the offset), while the real map's classes \
                     here are drawn after the dNBR offset: the two disagree by the offset, and this table says so.</p>\n"
                );
            }
        }
    }
    let _ = write!(
        h,
        "<h2 id=\"areas\">Severity classes</h2>\n<p class=\"small\">Real and synthetic over the pixels with data in both; the last column over every \
         pixel of the synthetic image, including those the real image cannot show (clouds, shadows).</p>\n\
         <table><tr><th>class</th><th>real (ha)</th><th>synthetic (ha)</th><th>synthetic, whole grid (ha)</th></tr>"
    );
    for c in &report.severity_areas {
        let _ = write!(h, "<tr><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>", esc(&c.class), c.hectares_real, c.hectares_synthetic, c.hectares_synthetic_all);
    }
    let t = &report.config.severity_classes;
    let source = match t.name.as_str() {
        "USGS" => " after Key &amp; Benson (2006), USGS FIREMON",
        "BARC4" => ", BAER's BARC4 over BARC256 = (dNBR x 1000 + 275) / 5",
        _ => "",
    };
    let ranges: Vec<String> = t.classes.iter().zip(t.ranges()).map(|(c, r)| format!("{} {}", esc(&c.name), esc(&r))).collect();
    let _ = write!(
        h,
        "</table>\n<p class=\"small\" id=\"classes\">{} classes on the {}{source}: {}. Burned = {} or worse.</p>\n",
        esc(&t.name),
        t.scale.name(),
        ranges.join(", "),
        esc(&t.burned_from)
    );
    let _ = match &report.dnbr_offset {
        Some(o) if o.pixels > 0 => write!(
            h,
            "<p class=\"small\" id=\"dnbr-offset\">dNBR offset (Key 2006; MTBS practice): the mean dNBR of {} unburned pixels ({}) was subtracted from each map \
             before RdNBR, RBR and the classes: real {:+.4}, synthetic {:+.4}{}.</p>\n",
            o.pixels,
            esc(&o.source),
            o.real,
            o.synthetic,
            match report.baselines.as_ref().map(|b| b.rows.iter().filter(|r| r.id != "synthetic").filter_map(|r| r.dnbr_offset.map(|v| format!("{} {v:+.4}", r.id))).collect::<Vec<_>>()) {
                Some(others) if !others.is_empty() => format!("; of the baselines: {}", others.join(", ")),
                _ => String::new(),
            }
        ),
        Some(o) => write!(h, "<p class=\"small\" id=\"dnbr-offset\">No dNBR offset: no clear unburned pixel in {}; the classes are drawn on the raw dNBR.</p>\n", esc(&o.source)),
        None => write!(h, "<p class=\"small\" id=\"dnbr-offset\">No dNBR offset (turned off): the classes are drawn on the raw dNBR.</p>\n"),
    };
    if !report.perimeters.is_empty() {
        let c = &report.config.perimeter_cleaning;
        let cleaning = if c.is_off() {
            "the burned pixels as classified (no cleaning)".to_string()
        } else {
            format!(
                "the burned pixels cleaned: {}minimum mapping unit {} ha, holes under {} ha filled",
                if c.majority { "3 x 3 majority filter, " } else { "" },
                c.min_area_ha,
                c.fill_holes_ha
            )
        };
        let _ = write!(h, "<h3 id=\"perimeters\">Perimeters</h3>\n<p class=\"small\">Polygons of {}; hectares of each class inside them (burned_*.geojson has them per polygon). Kappa, F1 and IoU stay on the pixel maps.</p>\n<table><tr><th>map</th><th>polygons</th><th>area (ha)</th>", esc(&cleaning));
        let classes = &report.perimeters[0].class_ha;
        for (name, _) in classes {
            let _ = write!(h, "<th>{}</th>", esc(name));
        }
        let _ = write!(h, "</tr>");
        for p in &report.perimeters {
            let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{:.2}</td>", esc(&p.map), p.polygons, p.area_ha);
            for (_, ha) in &p.class_ha {
                let _ = write!(h, "<td>{ha:.2}</td>");
            }
            let _ = write!(h, "</tr>");
        }
        let _ = write!(h, "</table>\n");
    }
    if let Some(c) = &report.plots {
        h.push_str(&super::plots::html(c));
    }
    let _ = write!(
        h,
        "<h2 id=\"quality\">Image quality</h2>\n<table><tr><th>band</th><th>PSNR (dB)</th><th>SSIM</th><th>RMSE</th><th>MAE</th></tr>"
    );
    for b in &q.bands {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&b.band), num(b.psnr_db), num(b.ssim), num(b.rmse), num(b.mae));
    }
    let _ = write!(
        h,
        "<tr><th>all</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></table>\n<p>Spectral angle (SAM): {} degrees over {} valid \
         pixels. Reflectance data range {} for PSNR and SSIM (Gaussian 11x11, sigma 1.5).</p>\n",
        num(q.psnr_db),
        num(q.ssim),
        num(q.rmse),
        num(q.mae),
        num(q.sam_degrees),
        q.valid_pixels,
        report.config.data_range
    );
    let _ = write!(h, "<h2 id=\"figures\">Figures</h2>\n");
    for f in figures {
        let path = out_dir.join(f);
        let bytes = std::fs::read(&path).map_err(Error::io(&path, "reading a figure to embed"))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let _ = write!(h, "<p><img alt=\"{}\" src=\"data:image/png;base64,{b64}\"></p>\n", esc(f));
    }
    let _ = write!(h, "<h2 id=\"files\">Files</h2>\n<ul>");
    for f in &report.files {
        let _ = write!(h, "<li><a href=\"{0}\">{0}</a></li>", esc(f));
    }
    let _ = write!(
        h,
        "</ul>\n<p class=\"small\">sent2-cloud-remover {}. {}.</p>\n</body></html>\n",
        esc(&crate::provenance::long_version()),
        esc(report.inputs.attribution.as_deref().unwrap_or("Contains modified Copernicus Sentinel data"))
    );
    write_atomic(&out_dir.join(super::files::REPORT_HTML), h.as_bytes())
}

/// A QGIS layer style (.qml) showing severity rasters in a scheme's colours, with each class's
/// name and range.
pub fn qgis_style(t: &SeverityScheme) -> String {
    let mut entries = String::new();
    for (c, range) in t.classes.iter().zip(t.ranges()) {
        let [r, g, b] = c.color;
        let _ = writeln!(
            entries,
            "        <paletteEntry value=\"{}\" color=\"#{r:02x}{g:02x}{b:02x}\" alpha=\"255\" label=\"{} ({} {})\"/>",
            c.code,
            esc(&c.name),
            t.scale.name(),
            esc(&range)
        );
    }
    format!(
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n<qgis version=\"3.28\" styleCategories=\"Symbology\">\n  <pipe>\n    \
         <rasterrenderer type=\"paletted\" band=\"1\" opacity=\"1\" alphaBand=\"-1\" nodataColor=\"\">\n      <colorPalette>\n{entries}      \
         </colorPalette>\n    </rasterrenderer>\n  </pipe>\n</qgis>\n"
    )
}
