//! How each command's typed result reads on standard output: tables and summary lines.
//!
//! This module must not compute results, read project files or decide anything; it formats
//! what the library returned (percentages of counts it was given at most).

use std::path::Path;

use crate::aoi::Aoi;
use crate::assess::AssessReport;
use crate::catalog::stage::SearchResult;
use crate::dataset::DatasetSummary;
use crate::dataset::normalize::Normalization;
use crate::fetch::FetchReport;
use crate::grid::TargetGrid;
use crate::layers::Layer;
use crate::model::infer::InferReport;
use crate::model::train::TrainReport;
use crate::preprocess::stage::Preprocessed;
use crate::project::{Project, RunName, Stage, StageState, StageStatus};
use crate::raster::RasterInfo;

/// `s2cr init`.
pub fn created(project: &Project, aoi: &Aoi, dir: &Path) {
    let g = &project.config.grid;
    println!(
        "Created project '{}' in {}\n  AOI {:.1} km2, grid EPSG:{} at {} m: {} x {} pixels\nNext: s2cr info {}",
        project.config.name,
        project.root().display(),
        aoi.area_km2(),
        g.epsg,
        g.pixel_size_m,
        g.width,
        g.height,
        dir.display()
    );
}

/// `s2cr aoi info`.
pub fn aoi_info(file: &Path, aoi: &Aoi, g: &TargetGrid) {
    let s = aoi.summary();
    println!("File       {}", file.display());
    println!("Polygons   {} ({} vertices)", s.polygons, s.vertices);
    println!("Area       {:.2} km2 (geodesic, WGS84)", s.area_km2);
    println!("Bounds     lon {:.5} .. {:.5}, lat {:.5} .. {:.5}", s.bbox[0], s.bbox[2], s.bbox[1], s.bbox[3]);
    println!("Centroid   {:.5}, {:.5}", s.centroid[0], s.centroid[1]);
    println!("UTM        EPSG:{}", s.utm_epsg);
    println!("Grid 10 m  {} x {} pixels, x {} .. {}, y {} .. {}", g.width, g.height, g.bounds()[0], g.bounds()[2], g.bounds()[1], g.bounds()[3]);
}

/// `s2cr info`.
pub fn project_info(project: &Project, status: &[StageStatus]) {
    let c = &project.config;
    println!("Project   {} ({})", c.name, std::path::absolute(project.root()).unwrap_or(project.root().to_path_buf()).display());
    match project.aoi() {
        Ok(aoi) => {
            let s = aoi.summary();
            println!(
                "AOI       {}: {} polygon(s), {:.2} km2, lon {:.4} .. {:.4}, lat {:.4} .. {:.4}",
                c.aoi.display(),
                s.polygons,
                s.area_km2,
                s.bbox[0],
                s.bbox[2],
                s.bbox[1],
                s.bbox[3]
            );
        }
        Err(e) => println!("AOI       {}: unusable: {}", c.aoi.display(), crate::error_chain(&e)),
    }
    println!("Dates     t0 {}   t1 {}", c.t0, c.t1);
    println!("Provider  {}, at most {} % cloud over the AOI", c.provider, c.max_cloud_percent);
    println!("Bands     S2 {}   S1 {}", c.bands.s2.join(" "), c.bands.s1.join(" "));
    println!(
        "Grid      EPSG:{}, {} m, {} x {} pixels ({:.1} km2), origin ({}, {})",
        c.grid.epsg,
        c.grid.pixel_size_m,
        c.grid.width,
        c.grid.height,
        c.grid.area_km2(),
        c.grid.x_min,
        c.grid.y_max
    );
    println!("Stages");
    for s in status {
        let name = match &s.run {
            Some(run) => format!("{} [{run}]", s.stage),
            None => s.stage.to_string(),
        };
        let when = match (&s.state, &s.finished) {
            (StageState::Done, Some(t)) => format!("  ({t})"),
            _ => String::new(),
        };
        println!("  {name:<20} {}{when}", s.state);
    }
}

/// `s2cr raster info`.
pub fn raster_info(i: &RasterInfo) {
    println!("Raster     {} ({}{})", i.location, i.driver, if i.is_cog { ", cloud-optimized" } else { "" });
    println!("Size       {} x {} pixels, {} band(s)", i.width, i.height, i.bands.len());
    println!("CRS        {}", i.epsg.map(|e| format!("EPSG:{e}")).unwrap_or_else(|| if i.crs_wkt.is_empty() { "none".into() } else { "custom (WKT)".into() }));
    let gt = i.geo_transform;
    println!("Origin     ({}, {}), pixel {} x {}", gt[0], gt[3], gt[1], gt[5]);
    for (n, b) in i.bands.iter().enumerate() {
        println!(
            "Band {:<3}   {} {}{}{}",
            n + 1,
            b.data_type,
            if b.description.is_empty() { String::new() } else { format!("'{}' ", b.description) },
            b.nodata.map(|v| format!("nodata={v} ")).unwrap_or_default(),
            if b.overviews > 0 { format!("{} overviews", b.overviews) } else { String::new() }
        );
    }
}

/// `s2cr search`: the candidates (the chosen ones starred), their Sentinel-1 partners, and
/// what to change when a date has no choice.
pub fn search(r: &SearchResult) {
    println!("Sentinel-2: {} scenes at t0, {} at t1; Sentinel-1: {} scenes", r.s2_t0.len(), r.s2_t1.len(), r.s1.len());
    println!("{:<6} {:<17} {:<12} {:>7} {:>9} {:>9}  id", "role", "date (UTC)", "platform", "scene", "AOI cloud", "coverage");
    for (role, scenes, chosen) in [("t0", &r.s2_t0, &r.chosen_t0), ("t1", &r.s2_t1, &r.chosen_t1)] {
        for s in scenes.iter() {
            let mark = if chosen.as_deref() == Some(s.id.as_str()) { "*" } else { " " };
            let pct = |v: Option<f64>| v.map(|v| format!("{v:.1}%")).unwrap_or_else(|| "?".into());
            println!(
                "{role}{mark:<4} {:<17} {:<12} {:>7} {:>9} {:>9}  {}",
                s.datetime.format("%Y-%m-%d %H:%M"),
                s.platform.as_deref().unwrap_or("?"),
                pct(s.cloud_cover),
                pct(s.aoi_cloud_percent),
                pct(s.aoi_coverage_percent),
                s.id
            );
        }
    }
    for p in &r.pairs {
        println!(
            "S1 for {}: {} (gap {:+.1} h, relative orbit {}, {})",
            p.s2_id,
            p.s1_id,
            p.gap_hours,
            p.relative_orbit.map(|o| o.to_string()).unwrap_or_else(|| "?".into()),
            p.orbit_state.as_deref().unwrap_or("?")
        );
    }
    for u in &r.unpaired {
        println!("S1 for {}: none ({})", u.s2_id, u.reason);
    }
    for note in &r.notes {
        println!("No choice for {note}");
    }
    if r.chosen_t0.is_none() || r.chosen_t1.is_none() {
        println!("Widen the dates, raise max_cloud_percent in project.yaml, or raise --scene-max-cloud.");
    }
}

/// `s2cr fetch`.
pub fn fetched(r: &FetchReport) {
    let downloaded = r.files.iter().filter(|f| f.downloaded).count();
    let mb = |b: u64| b as f64 / 1_048_576.0;
    println!("{} files ({} downloaded, {} already there) in {:.1} s", r.files.len(), downloaded, r.files.len() - downloaded, r.elapsed_secs);
    if r.source_bytes > 0 {
        println!(
            "Fetched {:.2} MiB over the network for source files of {:.2} MiB ({:.2} %)",
            mb(r.network_bytes),
            mb(r.source_bytes),
            100.0 * r.network_bytes as f64 / r.source_bytes as f64
        );
    }
}

/// `s2cr preprocess`: each written file, its usable share and what masked the rest.
pub fn preprocessed(done: &[Preprocessed]) {
    for p in done {
        println!("{} {}  {:>5.1} % usable  {}", p.sensor, p.date, p.valid_percent, p.path.display());
        if let Some(c) = &p.mask_counts {
            let total = c.total().max(1) as f64;
            let pct = |n: usize| 100.0 * n as f64 / total;
            if c.haze > 0 {
                println!("      of the pixels SCL calls clear, {:.1} % hazy or smoky by AOT (masked)", pct(c.haze));
            }
            if c.masked_remotely > 0 {
                println!("      masked by the openEO back-end (the project's SCL rules; it does not say why) {:.1} %; clear {:.1} %", pct(c.masked_remotely), pct(c.clear));
            } else {
                println!(
                "      masked: no data {:.1} %, cloud/shadow/cirrus {:.1} %, snow {:.1} %, buffer {:.1} %, band gaps {:.1} %; clear {:.1} %",
                pct(c.no_data),
                pct(c.cloud_shadow_cirrus),
                pct(c.snow),
                pct(c.buffer),
                pct(c.missing_bands),
                pct(c.clear)
            );
            }
        }
        println!("      {}", p.processing);
    }
}

/// `s2cr dataset`: channels, patches per split and the normalization statistics.
pub fn dataset(s: &DatasetSummary, n: &Normalization, written: &Path) {
    println!("{} input channels: {}", s.inputs.len(), s.inputs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" "));
    println!("{} output channels: {}", s.outputs.len(), s.outputs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" "));
    println!(
        "patches of {0} x {0} px (stride {1}): train {2}, val {3}, test {4}; dropped {5} (too few valid pixels) + {6} (split borders)",
        s.config.tiles.size, s.config.tiles.stride, s.train, s.val, s.test, s.dropped_invalid, s.dropped_split_border
    );
    println!("mean valid share of kept patches: {:.1} %", 100.0 * s.mean_valid_fraction);
    println!("normalization: S2 {:?}, S1 {:?} (statistics of the training split)", n.s2_method, n.s1_method);
    println!("  {:<14} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}", "channel", "pixels", "min", "p2", "mean", "std", "p98", "max");
    for c in n.inputs.iter().chain(&n.outputs) {
        println!("  {:<14} {:>10} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4}", c.name, c.count, c.min, c.p2, c.mean, c.std, c.p98, c.max);
    }
    println!("written to {}", written.display());
}

/// `s2cr train`.
pub fn trained(r: &TrainReport) {
    println!("{} steps on {} in {:.1} s{}", r.steps, r.device, r.seconds, r.resumed_from.map(|s| format!(" (resumed at step {s})")).unwrap_or_default());
    println!(
        "last step: G L1 {:.4}, G adversarial {:.4}, D real {:.4}, D fake {:.4}{}",
        r.last.g_l1,
        r.last.g_adversarial,
        r.last.d_real,
        r.last.d_fake,
        if r.last.val_l1.is_finite() { format!("; validation L1 {:.4}, PSNR {:.2} dB, SSIM {:.3}", r.last.val_l1, r.last.val_psnr, r.last.val_ssim) } else { String::new() }
    );
    println!("generator {:.2} M, discriminator {:.2} M parameters; run in {}", r.generator_params as f64 / 1e6, r.discriminator_params as f64 / 1e6, r.run_dir.display());
}

/// `s2cr infer`.
pub fn inferred(r: &InferReport) {
    println!("{} windows on {} in {:.1} s (checkpoint of step {}); {:.1} % of the grid synthesized", r.windows, r.device, r.seconds, r.checkpoint_step, r.valid_percent);
    println!("written {}", r.path.display());
}

/// `s2cr assess`: burned area, agreement and image quality, "n/a" where undefined.
pub fn assessment(report: &AssessReport, html: &Path) {
    let f = |x: f64| if x.is_finite() { format!("{x:.3}") } else { "n/a".into() };
    let (b, q) = (&report.burned, &report.quality);
    println!("Burned area   real {} ha, synthetic {} ha", f(b.burned_ha_real), f(b.burned_ha_synthetic));
    println!("Agreement     kappa {}, F1 {}, IoU {}, OA {}", f(b.kappa), f(b.f1), f(b.iou), f(b.overall_accuracy));
    if let Some(h) = &report.held_out {
        println!("Held out      kappa {}, F1 {}, burned real {} ha, synthetic {} ha ({})", f(h.burned.kappa), f(h.burned.f1), f(h.burned.burned_ha_real), f(h.burned.burned_ha_synthetic), h.description);
    }
    if let Some(p) = &report.perimeter {
        println!(
            "Perimeter     vs the official perimeter IoU {} real, {} synthetic; kappa {} real, {} synthetic; {} ha on the grid ({})",
            f(p.real.iou),
            f(p.synthetic.iou),
            f(p.real.kappa),
            f(p.synthetic.kappa),
            f(p.area_ha_on_grid),
            p.file.display()
        );
    }
    println!("Quality       PSNR {} dB, SSIM {}, SAM {} deg, RMSE {}", f(q.psnr_db), f(q.ssim), f(q.sam_degrees), f(q.rmse));
    if let Some(bl) = &report.baselines {
        println!("Baselines     over {} ({} px):", bl.pixels, bl.count);
        let (columns, rows) = bl.table();
        let cell = |text: &str, name: &str| format!(" {text:>w$}", w = name.len().max(7));
        let head: String = columns.iter().map(|(name, _)| cell(name, name)).collect();
        println!("              {:<48}{head}", "source");
        for (name, values) in rows {
            let cells: String = values.iter().zip(&columns).map(|(v, (c, digits))| cell(&if v.is_finite() { format!("{v:.digits$}") } else { "n/a".into() }, c)).collect();
            println!("              {name:<48}{cells}");
        }
        for b in &bl.beaten_by {
            println!("Baselines     NOTE: {b}");
        }
        for n in &bl.notes {
            println!("Baselines     ({n})");
        }
    }
    if report.inputs.pre_fill.is_some() {
        println!("Pre-fire      the t0 composite stands in for the chosen t0 on {} pixels where t0 is cloudy (every dNBR)", report.pre_filled_pixels);
    }
    if let Some(g) = &report.gapfill {
        for line in g.lines(report.pixel_area_m2, report.inputs.gapfill.as_ref().is_some_and(|r| r.composite_t1.is_some())) {
            println!("Gap-filled    {line}");
        }
    }
    if let Some(u) = &report.uncertainty {
        let per_band: Vec<String> = u.bands.iter().map(|b| format!("{} {} ({:.0} % within 2 sd)", b.band, f(b.correlation), 100.0 * b.within_2sd)).collect();
        println!("Uncertainty   correlation of sd with |error| over {}: {}", u.scope, per_band.join(", "));
        if !u.reliability.is_empty() {
            let bins: Vec<String> = u.reliability.iter().filter(|b| b.pixels > 0).map(|b| format!("{:.1}-{:.1}: {} of {} px", b.p_from, b.p_to, f(b.observed), b.pixels)).collect();
            println!("Burn prob.    burned share by predicted probability: {}", bins.join("; "));
        }
    }
    if let Some(note) = &report.config.simulated_burn {
        for line in note.lines() {
            println!("SIMULATED     {line}");
        }
    }
    println!("Report        {}", html.display());
}

/// `s2cr export --list`.
pub fn layers(project: &Project, run: &RunName, layers: &[Layer]) {
    if layers.is_empty() {
        println!("no layers yet in {} (run {run}): run the pipeline first", project.root().display());
    }
    for l in layers {
        println!("{:<20} {:<40} {}", l.id, l.title, l.path.display());
    }
}

/// `s2cr run` and `s2cr demo`: the pipeline's summary of each stage.
pub fn stage_summaries(done: &[(Stage, String)]) {
    for (stage, summary) in done {
        println!("{:<11} {summary}", stage.name());
    }
}
