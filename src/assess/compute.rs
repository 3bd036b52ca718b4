//! The assessment itself: the three images read in strips of whole rows (memory follows the
//! grid's width, not its area), indices, severity and agreement added strip by strip, the
//! rasters written block by block, image quality and the QA plots' numbers gathered in the
//! same strips, then the report.

use std::ops::Range;
use std::path::Path;

use super::agreement::BurnedCounts;
use super::*;
use crate::indices::metrics::{self, ErrorSums, MeanSum, SSIM_RADIUS};
use crate::indices::severity::NO_DATA;
use crate::indices::spectral;
use crate::raster::{self, BlockWriter, ByteBlockWriter};

/// Pixels of one band read at a time, at most: the assessment works in strips of whole rows, so
/// its memory follows the grid's width, not its area (about 30 strips of one band are in
/// memory at once: the index bands of three images, the outputs, the image-quality bands).
const STRIP_PIXELS: usize = 1 << 20;

/// GDAL's block cache during an assessment: a row of 256-pixel tiles of the three inputs' index
/// bands at 10980 pixels wide, with room for the outputs' blocks.
const ASSESS_BLOCK_CACHE: i64 = 256 << 20;

/// Rows of one strip on a grid `width` pixels wide: a multiple of 16, as the outputs' tiles are
/// that high.
fn strip_rows(width: usize) -> usize {
    (STRIP_PIXELS / width.max(1)).clamp(16, 1024) / 16 * 16
}

/// Runs the assessment on three files and writes every output into `out_dir`.
pub fn assess_files(inputs: &AssessInputs, out_dir: &Path, cfg: &AssessConfig, progress: &Progress) -> Result<AssessReport> {
    assess_in_strips(inputs, out_dir, cfg, progress, None)
}

/// [`assess_files`] with the strip height given (tests: any height gives the same report).
fn assess_in_strips(inputs: &AssessInputs, out_dir: &Path, cfg: &AssessConfig, progress: &Progress, rows_per_strip: Option<usize>) -> Result<AssessReport> {
    progress.cleaned(crate::fsutil::remove_stale_partials(out_dir, 1));
    cfg.severity_classes.validate().map_err(|m| Error::invalid("severity classes", m))?;
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
        // The same numbers in another CRS (say two UTM zones) are another place.
        if !raster::same_crs(&a.crs_wkt, &b.crs_wkt) {
            return Err(Error::Raster {
                location: other.path.display().to_string(),
                message: format!(
                    "in {}, but {} is in {}: same size and geotransform, another place; warp it onto the project grid first",
                    raster::crs_name(&b.crs_wkt),
                    pre.path.display(),
                    raster::crs_name(&a.crs_wkt)
                ),
            });
        }
    }
    let (width, height) = (pre.info.width, pre.info.height);
    crate::grid::check_size(width, height).map_err(|m| Error::Raster { location: inputs.pre.display().to_string(), message: m })?;
    let gt = pre.info.geo_transform;
    let pixel_area_m2 = (gt[1] * gt[5]).abs();
    let crs_wkt = pre.info.crs_wkt.clone();
    if let Some(h) = &cfg.held_out
        && !h.fits(width, height)
    {
        return Err(Error::invalid(
            "held-out pixels",
            format!("{}: blocks of {} px in {} rows do not cover the {width} x {height} grid of the images; rebuild the dataset (`s2cr dataset`)", h.description, h.block, h.blocks.len()),
        ));
    }
    for name in &cfg.quality_bands {
        real.band_index(name)?;
        synth.band_index(name)?;
    }
    let perimeter = match &cfg.perimeter {
        Some(path) => {
            let polygons = raster::load_polygons(path, &crs_wkt)?;
            if !polygons.overlaps(&gt, width, height) {
                let b = polygons.bbox;
                return Err(Error::Raster {
                    location: path.display().to_string(),
                    message: format!(
                        "the perimeter ({} polygon(s), {:.0}..{:.0} E, {:.0}..{:.0} N in the grid's CRS) does not overlap the grid ({:.0}..{:.0} E, {:.0}..{:.0} N); is it the right fire?",
                        polygons.features,
                        b[0],
                        b[2],
                        b[1],
                        b[3],
                        gt[0],
                        gt[0] + gt[1] * width as f64,
                        gt[3] + gt[5] * height as f64,
                        gt[3]
                    ),
                });
            }
            Some(polygons)
        }
        None => None,
    };
    // Monte-Carlo uncertainty, checked against the real image.
    let sd_image = inputs.uncertainty.as_ref().map(|p| Image::open(p, None)).transpose()?;
    let prob_image = inputs.burn_probability.as_ref().map(|p| Image::open(p, None)).transpose()?;
    for other in sd_image.iter().chain(prob_image.iter()) {
        if !pre.same_grid(other) {
            return Err(Error::Raster { location: other.path.display().to_string(), message: "not on the grid of the synthetic image; synthesize again with uncertainty passes".into() });
        }
    }
    if let Some(sd) = &sd_image {
        for name in &cfg.quality_bands {
            sd.band_index(&format!("{name} sd"))?;
        }
    }
    // The t0 composite, where t0 is cloudy.
    let pre_fill = inputs.pre_fill.as_ref().map(|p| Image::open(p, None)).transpose()?;
    if let Some(f) = pre_fill.as_ref().filter(|f| !pre.same_grid(f)) {
        return Err(Error::Raster { location: f.path.display().to_string(), message: format!("not on the grid of {}; preprocess again", inputs.pre.display()) });
    }
    let mut pre_filled_pixels = 0u64;
    let prob_from_dnbr = prob_image.as_ref().is_some_and(|p| p.band_index("dNBR mean").is_ok() && p.band_index("dNBR sd").is_ok());
    let mut uncertainty_acc = sd_image.as_ref().map(|_| uncertainty::UncertaintyAcc::new(cfg.quality_bands.len(), prob_image.is_some()));
    let mut perimeter_counts = [BurnedCounts::default(); 2];
    let mut perimeter_pixels = 0u64;
    let nir = cfg.nir.name();
    let index_bands = [nir, "B12", "B04"];
    let rows_per_strip = rows_per_strip.unwrap_or_else(|| strip_rows(width)).max(1);
    // GDAL's block cache would otherwise grow to 5 % of the machine's memory over the inputs.
    let _cache = raster::BlockCacheLimit::set(ASSESS_BLOCK_CACHE);
    // The dNBR offsets (MTBS practice), before any class is drawn: every map's and baseline's
    // over one set of unburned pixels.
    let maps = super::offset::Maps { pre: &pre, pre_fill: pre_fill.as_ref(), real: &real, synthetic: &synth, perimeter: perimeter.as_ref(), gt, crs_wkt: &crs_wkt };
    let offsets = super::offset::find(cfg, &maps, rows_per_strip, progress)?;
    let map_offsets = offsets.as_ref().map_or([0.0, 0.0], |f| [f.real, f.synthetic]);
    // Field plots: each map's values there, the fits against CBI, and on request the classes
    // the real map's dNBR fit gives, which every map below is drawn in.
    let calibration = match &cfg.plots {
        Some(p) => {
            progress.info(format!("field plots: the index values at the plots of {}, fitted against {}", p.file.display(), p.field));
            Some(super::plots::calibrate(p, &maps, cfg, map_offsets)?)
        }
        None => None,
    };
    let with_cbi;
    let cfg = match calibration.as_ref().filter(|c| c.classified).and_then(|c| c.scheme.clone()) {
        Some(scheme) => {
            with_cbi = AssessConfig { severity_classes: scheme, ..cfg.clone() };
            &with_cbi
        }
        None => cfg,
    };
    // Every output is written strip by strip, in tiles as high as a strip, and appears under its
    // name only when complete.
    let classes = &cfg.severity_classes;
    // With classes on BARC256, the BARC256 values too (as BAER delivers them; NaN: no data).
    let barc = classes.scale == crate::indices::severity::Scale::Barc256;
    let mut index_names: Vec<String> = ["NBR_pre", "NBR_post", "dNBR", "RdNBR", "RBR", "NDVI_post"].map(String::from).to_vec();
    if barc {
        index_names.push("BARC256".into());
    }
    let palette = classes.palette();
    let tags = raster::Tags {
        attribution: inputs.attribution.clone().unwrap_or_default(),
        provenance: inputs.provenance.clone().unwrap_or_else(|| format!("sent2-cloud-remover {}", crate::provenance::long_version())),
    };
    let mut outputs = Vec::new();
    for name in ["real", "synthetic"] {
        let mut o = Outputs {
            indices: BlockWriter::create_on(&out_dir.join(files::indices(name)), width, height, gt, &crs_wkt, &index_names, f32::NAN, rows_per_strip)?,
            severity: ByteBlockWriter::create(&out_dir.join(files::severity(name)), width, height, gt, &crs_wkt, &format!("dNBR severity ({name})"), Some(&palette), rows_per_strip)?,
            dnbr: MeanSum::default(),
        };
        o.indices.tag(&tags)?;
        o.severity.tag(&tags)?;
        outputs.push(o);
    }
    // The QA plots' numbers and the difference and spectral-angle rasters, from the quality
    // bands' rows.
    let mut qa_acc = qa::QaAcc::new(&cfg.quality_bands);
    let difference_names: Vec<String> = cfg.quality_bands.iter().map(|b| format!("{b} difference")).collect();
    let mut difference_out = BlockWriter::create_on(&out_dir.join(files::DIFFERENCE), width, height, gt, &crs_wkt, &difference_names, f32::NAN, rows_per_strip)?;
    let mut sam_out = BlockWriter::create_on(&out_dir.join(files::SAM), width, height, gt, &crs_wkt, &["spectral angle (degrees)".to_string()], f32::NAN, rows_per_strip)?;
    difference_out.tag(&tags)?;
    sam_out.tag(&tags)?;
    let mut burned = BurnedCounts::default();
    let mut held_counts = BurnedCounts::default();
    let mut severity_confusion = agreement::severity_matrix(classes);
    // Per class code: real with synthetic data, synthetic with real data, synthetic anywhere.
    let mut areas = [[0u64; 3]; 256];
    let mut quality = QualityAcc::new(cfg.quality_bands.len());

    // What an analyst has without the model, over the same held-out pixels (project mode),
    // scored on a thread of their own beside the strips below and the writing after them.
    let pending_baselines = match (&cfg.baselines, &cfg.held_out) {
        (Some(with), Some(held)) => {
            progress.info("scoring the baselines (persistence, a linear model, radar-only) over the held-out pixels, beside the assessment");
            let offsets = offsets.as_ref().map(|f| super::baselines::Offsets { set: f.set.clone(), real: f.real, synthetic: f.synthetic });
            Some(super::baselines::Pending::start(inputs, cfg, with, held, pixel_area_m2, (gt, crs_wkt.clone()), rows_per_strip, offsets, progress)?)
        }
        _ => None,
    };
    let strips = height.div_ceil(rows_per_strip) as u64;
    let total = strips + 2;
    progress.started(Some(total));
    for (done, y0) in (0..height).step_by(rows_per_strip).enumerate() {
        progress.check_cancelled()?;
        let y1 = (y0 + rows_per_strip).min(height);
        let rows = y1 - y0;
        let (nbr_pre, filled) = pre.prefire_nbr(pre_fill.as_ref(), nir, cfg.scale, y0..y1)?;
        pre_filled_pixels += filled;
        let mut sev = Vec::with_capacity(2);
        for ((image, out), offset) in [&real, &synth].into_iter().zip(outputs.iter_mut()).zip(map_offsets) {
            let post = image.read(&index_bands, cfg.scale, y0..y1)?;
            let nbr_post = spectral::nbr(&post.bands[0], &post.bands[1], &post.valid);
            let mut dnbr = spectral::dnbr(&nbr_pre, &nbr_post);
            super::offset::subtract(&mut dnbr, offset);
            let rdnbr = spectral::rdnbr(&nbr_pre, &dnbr);
            let rbr = spectral::rbr(&nbr_pre, &dnbr);
            let ndvi = spectral::ndvi(&post.bands[0], &post.bands[2], &post.valid);
            drop(post);
            let barc256: Vec<f32> = if barc { dnbr.iter().map(|d| crate::indices::severity::barc256(*d).map_or(f32::NAN, f32::from)).collect() } else { Vec::new() };
            for (b, values) in [&nbr_pre, &nbr_post, &dnbr, &rdnbr, &rbr, &ndvi, &barc256].into_iter().take(index_names.len()).enumerate() {
                // Pixels without a dNBR are nodata in every band, as the maps built on it.
                let masked: Vec<f32> = values.iter().zip(&dnbr).map(|(v, d)| if d.is_finite() { *v } else { f32::NAN }).collect();
                out.indices.write_rows(b, y0, rows, &masked)?;
            }
            for v in dnbr.iter().filter(|v| v.is_finite()) {
                out.dnbr.sum += *v as f64;
                out.dnbr.count += 1;
            }
            let codes = classes.classify_all(&dnbr);
            out.severity.write_rows(y0, rows, &codes)?;
            sev.push(codes);
        }
        let (sev_real, sev_synth) = (&sev[0], &sev[1]);
        burned.add(sev_real, sev_synth, &cfg.severity_classes);
        // The real map's burned pixels, for the burn probability's reliability (checked below).
        let burned_codes = classes.burned_codes();
        let burned_real: Option<Vec<Option<bool>>> =
            prob_image.as_ref().map(|_| sev_real.iter().map(|c| (*c != NO_DATA).then(|| burned_codes.contains(*c))).collect());
        if let Some(p) = &perimeter {
            let inside = p.burn_rows(&gt, &crs_wkt, width, y0, rows)?;
            perimeter_pixels += inside.iter().filter(|v| **v != 0).count() as u64;
            for (counts, map) in perimeter_counts.iter_mut().zip([sev_real, sev_synth]) {
                counts.add_reference(&inside, map, &cfg.severity_classes);
            }
        }
        agreement::add_severity_pairs(&mut severity_confusion, classes, sev_real, sev_synth);
        if let Some(h) = &cfg.held_out {
            let only = |s: &[u8]| -> Vec<u8> { s.iter().enumerate().map(|(i, s)| if h.contains(i % width, y0 + i / width) { *s } else { NO_DATA }).collect() };
            held_counts.add(&only(sev_real), &only(sev_synth), &cfg.severity_classes);
        }
        for (r, s) in sev_real.iter().zip(sev_synth) {
            if *s != NO_DATA {
                areas[*r as usize][0] += 1;
            }
            if *r != NO_DATA {
                areas[*s as usize][1] += 1;
            }
            areas[*s as usize][2] += 1;
        }
        drop(sev);
        let (real_rows, synth_rows, angles) = quality.add(&real, &synth, cfg, width, height, y0..y1)?;
        // Held-out pixels only, when the project has them; the quality bands' rows as the
        // image quality read them.
        let keep: Vec<bool> = match &cfg.held_out {
            Some(h) => (0..rows * width).map(|i| h.contains(i % width, y0 + i / width)).collect(),
            None => Vec::new(),
        };
        qa_acc.add(&real_rows, &synth_rows, &keep);
        for (b, (r, y)) in real_rows.iter().zip(&synth_rows).enumerate() {
            difference_out.write_rows(b, y0, rows, &qa::difference(r, y))?;
        }
        sam_out.write_rows(0, y0, rows, &angles)?;
        if let (Some(acc), Some(sd)) = (uncertainty_acc.as_mut(), &sd_image) {
            // The test blocks alone when the validation blocks calibrated the uncertainty.
            let only: Vec<bool>;
            let keep = match &cfg.uncertainty_held_out {
                Some(h) => {
                    only = (0..rows * width).map(|i| h.contains(i % width, y0 + i / width)).collect();
                    &only
                }
                None => &keep,
            };
            for (b, name) in cfg.quality_bands.iter().enumerate() {
                let d = sd.read(&[format!("{name} sd").as_str()], cfg.scale, y0..y1)?;
                acc.add_band(b, &real_rows[b], &synth_rows[b], &d.bands[0], keep);
            }
            if let (Some(prob), Some(burned)) = (&prob_image, &burned_real) {
                // The probability of this assessment's burned classes after the offset, from
                // the passes' dNBR (raw) mean and sd; a file without them: inference's share.
                let p = if prob_from_dnbr {
                    let d = prob.read(&["dNBR mean", "dNBR sd"], 1.0, y0..y1)?;
                    let bound = classes.burned_dnbr() + map_offsets[1];
                    d.bands[0].iter().zip(&d.bands[1]).map(|(m, s)| uncertainty::exceedance(*m, *s, bound)).collect()
                } else {
                    prob.read(&["burn probability"], 1.0, y0..y1)?.bands.swap_remove(0)
                };
                acc.add_probability(&p, burned, keep);
            }
        }
        progress.advanced(done as u64 + 1, total, format!("rows {y0}..{y1} of {height}"));
    }

    progress.check_cancelled()?;
    // A synthetic image with no valid pixel where the image before the fire has one (a model
    // whose training went non-finite writes NaN everywhere) is nothing to assess: refused, not
    // reported as 0 ha and kappa n/a.
    if let [real_out, synth_out] = outputs.as_slice()
        && synth_out.dnbr.count == 0
    {
        return Err(Error::Raster {
            location: inputs.synthetic.display().to_string(),
            message: format!(
                "has no valid pixel where {} has one (every value no data or not finite; the real image has {} such pixels): there is nothing to assess. A model whose training went non-finite (NaN) gives this: see its metrics.csv, and train it again",
                inputs.pre.display(),
                real_out.dnbr.count
            ),
        });
    }
    // The gap-filled post-fire image (project mode): real, else composite, else synthetic.
    let mut rasters_written = Vec::new();
    let gapfill = match &inputs.gapfill {
        Some(g) => {
            progress.info("writing the gap-filled post-fire image (real t1 where clear, else the composite, else the synthetic image)");
            let bands: Vec<String> = synth.info.bands.iter().map(|b| b.description.clone()).filter(|d| real.band_index(d).is_ok() && !d.eq_ignore_ascii_case("mask")).collect();
            let (indices_out, severity_out) = (out_dir.join(files::indices("gapfilled")), out_dir.join(files::severity("gapfilled")));
            // Where the offset's pixels lie the real image is clear, so the gap-filled image is the
            // real one there: the real map's offset is its own.
            let pre = super::gapfill::PreFire { t0: &inputs.pre, composite: inputs.pre_fill.as_deref(), nir, classes: &cfg.severity_classes, offset: map_offsets[0], indices_out: &indices_out, severity_out: &severity_out };
            let fill = super::gapfill::GapFillInputs { real: &inputs.real, composite: g.composite_t1.as_deref(), synthetic: &inputs.synthetic, t1_days: g.t1_days, pre: Some(pre), tags: Some(&tags) };
            let made = super::gapfill::write_gapfilled(&fill, &bands, &g.image, &g.source, rows_per_strip, &progress.for_stage("gap-fill"))?;
            rasters_written.extend([files::indices("gapfilled"), files::severity("gapfilled")]);
            Some(made)
        }
        None => None,
    };
    progress.check_cancelled()?;
    progress.advanced(strips, total, "writing the maps and perimeters");
    let mut maps = Vec::new();
    let mut mean_dnbr = Vec::new();
    for (name, out) in ["real", "synthetic"].into_iter().zip(outputs) {
        out.indices.finish()?;
        rasters_written.push(files::indices(name));
        mean_dnbr.push(out.dnbr.mean());
        maps.push((name, out.severity));
    }
    difference_out.finish()?;
    sam_out.finish()?;
    rasters_written.extend([files::DIFFERENCE.to_string(), files::SAM.to_string()]);
    let qa = qa_acc.finish(if cfg.held_out.is_some() { "held-out clear pixels" } else { "clear pixels" });
    crate::fsutil::write_atomic(&out_dir.join(files::QA_JSON), &serde_json::to_vec(&qa).map_err(|e| Error::invalid("QA numbers", e.to_string()))?)?;
    rasters_written.push(files::QA_JSON.into());
    let mut perimeters = Vec::new();
    for (name, severity) in maps {
        progress.check_cancelled()?;
        severity.finish()?;
        rasters_written.push(files::severity(name));
        // The burned pixels' outlines, cleaned as asked, with their areas per class.
        perimeters.push(super::perimeters::draw(&out_dir.join(files::severity(name)), &out_dir.join(files::perimeter(name)), name, &cfg.severity_classes, &cfg.perimeter_cleaning, pixel_area_m2, &tags)?);
        rasters_written.push(files::perimeter(name));
    }
    crate::fsutil::write_atomic(&out_dir.join("severity.qml"), report::qgis_style(&cfg.severity_classes).as_bytes())?;
    rasters_written.push("severity.qml".into());

    let ha = pixel_area_m2 / 10_000.0;
    let severity_areas = classes
        .classes
        .iter()
        .map(|c| ClassArea {
            class: c.name.clone(),
            code: c.code,
            hectares_real: areas[c.code as usize][0] as f64 * ha,
            hectares_synthetic: areas[c.code as usize][1] as f64 * ha,
            hectares_synthetic_all: areas[c.code as usize][2] as f64 * ha,
        })
        .collect();
    let held_out = cfg.held_out.as_ref().map(|h| HeldOutAgreement { description: h.description.clone(), burned: held_counts.agreement(pixel_area_m2) });
    let perimeter = match (perimeter, &cfg.perimeter) {
        (Some(p), Some(file)) => {
            p.write_geojson(&out_dir.join(files::PERIMETER_REFERENCE), "official_perimeter")?;
            rasters_written.push(files::PERIMETER_REFERENCE.into());
            Some(PerimeterAgreement {
                file: file.clone(),
                features: p.features,
                area_ha: p.area_m2 / 10_000.0,
                area_ha_on_grid: perimeter_pixels as f64 * ha,
                real: perimeter_counts[0].agreement(pixel_area_m2),
                synthetic: perimeter_counts[1].agreement(pixel_area_m2),
            })
        }
        _ => None,
    };
    let baselines = pending_baselines.map(super::baselines::Pending::join).transpose()?;
    let mut report = AssessReport {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        provenance: crate::provenance::current(),
        inputs: inputs.clone(),
        config: cfg.clone(),
        width,
        height,
        pixel_area_m2,
        crs_wkt: crs_wkt.clone(),
        nbr_definition: format!("NBR = ({nir} - B12) / ({nir} + B12)"),
        quality: quality.finish(cfg),
        burned: burned.agreement(pixel_area_m2),
        severity_confusion,
        held_out,
        perimeter,
        uncertainty: uncertainty_acc.map(|acc| {
            let scope = match (&cfg.uncertainty_held_out, &cfg.held_out) {
                (Some(_), _) => "clear pixels of the test blocks (the validation blocks calibrated it)",
                (None, Some(_)) => "held-out clear pixels",
                (None, None) => "clear pixels",
            };
            let mut check = acc.finish(&cfg.quality_bands, scope);
            if prob_image.is_some() {
                check.probability = if prob_from_dnbr {
                    format!(
                        "the probability that the dNBR after the synthetic offset ({:+.4}) reaches {} ({} or more on the dNBR), from a normal approximation of the passes' dNBR (their mean and sd in {})",
                        map_offsets[1],
                        classes.burned_from,
                        classes.burned_dnbr(),
                        inputs.burn_probability.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
                    )
                } else {
                    "the share of passes whose raw dNBR (no offset) reached the burned bound inference was given (a file without the passes' dNBR mean and sd)".into()
                };
            }
            check
        }),
        baselines,
        pre_filled_pixels,
        gapfill,
        severity_areas,
        dnbr_offset: offsets.as_ref().map(|f| f.report()),
        plots: calibration,
        perimeters,
        mean_dnbr_real: mean_dnbr[0],
        mean_dnbr_synthetic: mean_dnbr[1],
        files: rasters_written,
    };

    progress.advanced(strips + 1, total, "figures and report");
    let figures = report::Figures { pre: &pre, real: &real, synthetic: &synth, cfg, out_dir };
    let pngs = report::write_figures(out_dir, &figures, &report)?;
    report.files.extend(pngs.iter().cloned());
    progress.check_cancelled()?;
    report::write_tables(out_dir, &mut report)?;
    report::write_html(out_dir, &mut report, &pngs)?;
    progress.advanced(total, total, "done");
    Ok(report)
}

/// The rasters of one post-fire image (real or synthetic), written strip by strip.
struct Outputs {
    indices: BlockWriter,
    severity: ByteBlockWriter,
    dnbr: MeanSum,
}

/// Image quality, added to strip by strip.
struct QualityAcc {
    errors: Vec<ErrorSums>,
    ssim: Vec<MeanSum>,
    sam: MeanSum,
    valid_pixels: u64,
}

impl QualityAcc {
    fn new(bands: usize) -> QualityAcc {
        QualityAcc { errors: vec![ErrorSums::default(); bands], ssim: vec![MeanSum::default(); bands], sam: MeanSum::default(), valid_pixels: 0 }
    }

    /// Adds the rows `rows` of the grid: band by band (each with its own valid pixels), read with
    /// the rows SSIM's window needs above and below. Returns the quality bands' values on those
    /// rows, real and synthetic (NaN where either is not valid), for the uncertainty check and
    /// the QA numbers, and each pixel's spectral angle (degrees, NaN where not valid).
    fn add(&mut self, real: &Image, synth: &Image, cfg: &AssessConfig, width: usize, height: usize, rows: Range<usize>) -> Result<(Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<f32>)> {
        let r = SSIM_RADIUS;
        let (h0, h1) = (rows.start.saturating_sub(r), (rows.end + r).min(height));
        let own = (rows.start - h0) * width..(rows.end - h0) * width;
        // SSIM windows centred on these rows lie wholly inside the grid.
        let centres = rows.start.max(r)..rows.end.min(height.saturating_sub(r));
        // The bands in parallel (each with its own sums, added in row order as before).
        use rayon::prelude::*;
        let own_rows: Vec<Result<(Vec<f32>, Vec<f32>, Vec<bool>)>> = cfg
            .quality_bands
            .par_iter()
            .zip(self.errors.par_iter_mut())
            .zip(self.ssim.par_iter_mut())
            .map(|((name, errors), ssim)| {
                let rs = real.read(&[name.as_str()], cfg.scale, h0..h1)?;
                let ss = synth.read(&[name.as_str()], cfg.scale, h0..h1)?;
                let valid: Vec<bool> = rs.valid.iter().zip(&ss.valid).map(|(a, b)| *a && *b).collect();
                let (rb, sb) = (&rs.bands[0], &ss.bands[0]);
                errors.add(&rb[own.clone()], &sb[own.clone()], &valid[own.clone()]);
                if !centres.is_empty() {
                    metrics::ssim_add(ssim, rb, sb, width, &valid, cfg.data_range, centres.start - h0..centres.end - h0);
                }
                // NaN where either is not valid (a file's nodata value, not only the mask), as
                // the QA numbers, their rasters and the uncertainty check expect.
                let nan_unless = |values: &[f32]| -> Vec<f32> { values[own.clone()].iter().zip(&valid[own.clone()]).map(|(v, ok)| if *ok { *v } else { f32::NAN }).collect() };
                Ok((nan_unless(rb), nan_unless(sb), valid[own.clone()].to_vec()))
            })
            .collect();
        let mut valid_all: Option<Vec<bool>> = None;
        let mut real_spectra = Vec::with_capacity(cfg.quality_bands.len());
        let mut synth_spectra = Vec::with_capacity(cfg.quality_bands.len());
        for band in own_rows {
            let (rb, sb, own_valid) = band?;
            valid_all = Some(match valid_all {
                None => own_valid,
                Some(v) => v.iter().zip(&own_valid).map(|(a, b)| *a && *b).collect(),
            });
            real_spectra.push(rb);
            synth_spectra.push(sb);
        }
        let valid = valid_all.unwrap_or_default();
        let rr: Vec<&[f32]> = real_spectra.iter().map(Vec::as_slice).collect();
        let ss: Vec<&[f32]> = synth_spectra.iter().map(Vec::as_slice).collect();
        // The spectral angle of every pixel, once: its mean for the report, the raster for the
        // QA layer (NaN where a value is missing).
        let angles: Vec<f32> = (0..valid.len())
            .map(|i| match metrics::spectral_angle_deg(&rr, &ss, i).filter(|_| valid[i]) {
                Some(a) => {
                    self.sam.sum += a;
                    self.sam.count += 1;
                    a as f32
                }
                None => f32::NAN,
            })
            .collect();
        self.valid_pixels += valid.iter().filter(|v| **v).count() as u64;
        Ok((real_spectra, synth_spectra, angles))
    }

    fn finish(self, cfg: &AssessConfig) -> Quality {
        let (mut sq, mut abs, mut n) = (0.0f64, 0.0f64, 0u64);
        let mut bands = Vec::new();
        for ((name, e), s) in cfg.quality_bands.iter().zip(&self.errors).zip(&self.ssim) {
            let (rmse, mae) = (e.rmse(), e.mae());
            sq += rmse * rmse * e.count as f64;
            abs += mae * e.count as f64;
            n += e.count;
            bands.push(BandQuality { band: name.clone(), psnr_db: e.psnr(cfg.data_range), ssim: s.mean(), rmse, mae });
        }
        let mse = if n == 0 { f64::NAN } else { sq / n as f64 };
        Quality {
            psnr_db: if mse == 0.0 { f64::INFINITY } else { 10.0 * (cfg.data_range * cfg.data_range / mse).log10() },
            ssim: bands.iter().map(|b| b.ssim).sum::<f64>() / bands.len().max(1) as f64,
            rmse: mse.sqrt(),
            mae: if n == 0 { f64::NAN } else { abs / n as f64 },
            sam_degrees: self.sam.mean(),
            valid_pixels: self.valid_pixels,
            bands,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6-band reflectance image (plus a cloud mask band where `mask` is given) on a small UTM grid.
    fn image(dir: &Path, name: &str, w: usize, h: usize, seed: u32, mask: Option<&dyn Fn(usize) -> bool>) -> PathBuf {
        let bands = ["B02", "B03", "B04", "B08", "B11", "B12"];
        let mut values: Vec<Vec<f32>> = (0..bands.len())
            .map(|b| (0..w * h).map(|i| 0.05 + 0.3 * (((i * 7 + b * 13 + seed as usize * 31) % 97) as f32 / 97.0)).collect())
            .collect();
        let mut descriptions: Vec<String> = bands.map(String::from).to_vec();
        let mut valid = vec![true; w * h];
        valid[3 * w + 4] = seed == 2; // one nodata pixel in the pre and real images
        if let Some(m) = mask {
            values.push((0..w * h).map(|i| m(i) as u8 as f32).collect());
            descriptions.push("mask".into());
        }
        let stack = BandStack {
            width: w,
            height: h,
            bands: values,
            valid,
            geo_transform: [300_000.0, 10.0, 0.0, 4_600_000.0, 0.0, -10.0],
            crs_wkt: gdal::spatial_ref::SpatialRef::from_epsg(32633).unwrap().to_wkt().unwrap(),
            descriptions,
        };
        let path = dir.join(format!("{name}.tif"));
        raster::write_raster(&path, &stack, &raster::WriteOptions::default()).unwrap();
        path
    }

    #[test]
    fn strips_of_any_height_give_the_same_report_and_rasters() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h) = (70, 53);
        let cloud = |i: usize| (i % w) > 60 && (i / w) < 10;
        let inputs = AssessInputs {
            pre: image(dir.path(), "pre", w, h, 0, Some(&cloud)),
            real: image(dir.path(), "real", w, h, 1, None),
            synthetic: image(dir.path(), "synthetic", w, h, 2, None), ..Default::default()
        };
        let held = HeldOut { description: "test blocks".into(), pixels: 0, block: 16, blocks: (0..h.div_ceil(16)).map(|by| (0..w.div_ceil(16)).map(|bx| (bx + by) % 2 == 0).collect()).collect() };
        // The dataset's inputs for the baselines: radar at both dates (dB) and two S2 t0 bands.
        let channels = ["S1_t0:VV", "S1_t0:VH", "S1_t1:VV", "S1_t1:VH", "S2_t0:B04", "S2_t0:B08"];
        let radar = BandStack {
            width: w,
            height: h,
            bands: (0..channels.len()).map(|b| (0..w * h).map(|i| if b < 4 { -15.0 + 8.0 * (((i * 11 + b * 5) % 89) as f32 / 89.0) } else { 0.05 + 0.3 * (((i * 7 + b * 3) % 83) as f32 / 83.0) }).collect()).collect(),
            valid: vec![true; w * h],
            geo_transform: [300_000.0, 10.0, 0.0, 4_600_000.0, 0.0, -10.0],
            crs_wkt: gdal::spatial_ref::SpatialRef::from_epsg(32633).unwrap().to_wkt().unwrap(),
            descriptions: channels.map(String::from).to_vec(),
        };
        let inputs_vrt = dir.path().join("inputs.tif");
        raster::write_raster(&inputs_vrt, &radar, &raster::WriteOptions::default()).unwrap();
        let cfg = AssessConfig { held_out: Some(held), baselines: Some(super::super::baselines::BaselineInputs { inputs_vrt, composite: None }), ..Default::default() };
        let run = |rows: Option<usize>, out: &str| {
            let out = dir.path().join(out);
            let report = assess_in_strips(&inputs, &out, &cfg, &Progress::silent("assess"), rows).unwrap();
            let bits = |file: String, band: usize| -> Vec<u32> {
                raster::read_window(&out.join(file).display().to_string(), &[band], None).unwrap().bands[0].iter().map(|v| v.to_bits()).collect()
            };
            let (dnbr, sev) = (bits(files::indices("synthetic"), 3), bits(files::severity("real"), 1));
            let perimeter = std::fs::read_to_string(out.join(files::perimeter("synthetic"))).unwrap();
            (report, dnbr, sev, perimeter)
        };
        let whole = run(None, "whole");
        assert!(whole.0.quality.valid_pixels > 0 && whole.0.burned.pixels > 0, "{:?}", whole.0.burned);
        assert!(whole.0.held_out.as_ref().is_some_and(|h| h.burned.pixels > 0 && h.burned.pixels < whole.0.burned.pixels));
        assert!(whole.0.quality.ssim.is_finite() && whole.0.quality.sam_degrees.is_finite());
        let bl = whole.0.baselines.as_ref().unwrap();
        assert_eq!(bl.rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["synthetic", "persistence", "linear", "radar"], "{:?}", bl.notes);
        assert!(bl.rows[..3].iter().all(|r| r.image.ssim.is_finite() && r.image.ssim > -1.0 && r.image.ssim < 1.0), "{:?}", bl.rows);
        for rows in [1, 7, 16] {
            let strips = run(Some(rows), &format!("rows-{rows}"));
            // As JSON: NaN (a rate with nothing to count) is written as null on both sides.
            assert_eq!(serde_json::to_string(&strips.0).unwrap(), serde_json::to_string(&whole.0).unwrap(), "{rows} rows a strip");
            assert!(strips.1 == whole.1 && strips.2 == whole.2 && strips.3 == whole.3, "{rows} rows a strip: the rasters differ");
        }
        // Past `fit_pixels` training pixels the linear model and the radar's threshold are fitted
        // on every k-th strip: said in the notes, on fewer pixels, the same rows scored on the
        // same pixels, and close to the fit on all of them.
        let held = cfg.held_out.as_ref().unwrap();
        let with = cfg.baselines.as_ref().unwrap();
        // (The held-out blocks' pixel count is not given here: the grid's 3710 pixels are taken
        // as the training pixels.)
        // (Both without the dNBR offset, which the whole assessment subtracted.)
        let plain = super::super::baselines::compute_fitting_on(&inputs, &cfg, with, held, 100.0, None, 7, None, &|| false, super::super::baselines::FIT_PIXELS).unwrap();
        assert_eq!(plain.linear, bl.linear, "the fit does not depend on the offset");
        let bl = &plain;
        let sampled = super::super::baselines::compute_fitting_on(&inputs, &cfg, with, held, 100.0, None, 7, None, &|| false, w * h / 3).unwrap();
        assert!(sampled.notes.iter().any(|n| n.contains("every 3rd strip of 7 rows")), "{:?}", sampled.notes);
        let (all, part) = (bl.linear.as_ref().unwrap(), sampled.linear.as_ref().unwrap());
        assert!(part.pixels * 2 < all.pixels && part.pixels * 4 > all.pixels, "{} of {}", part.pixels, all.pixels);
        assert_eq!((sampled.count, sampled.rows.len()), (bl.count, bl.rows.len()));
        // (As JSON: a NaN rate is null on both sides.)
        assert_eq!(serde_json::to_string(&sampled.rows[..2]).unwrap(), serde_json::to_string(&bl.rows[..2]).unwrap(), "the synthetic and persistence rows do not depend on the fit");
        let (a, b) = (&bl.rows[2].image, &sampled.rows[2].image);
        assert!((a.psnr_db - b.psnr_db).abs() < 1.0 && (a.mae - b.mae).abs() < 0.2 * a.mae, "{a:?} against {b:?}");
        assert!(bl.notes.iter().all(|n| !n.contains("strip of")), "{:?}", bl.notes);
        // No temporary file of the writers is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("whole")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn a_header_of_absurd_size_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        // A VRT claiming 2,000,000 x 2,000,000 pixels: a few bytes on disk.
        let vrt = dir.path().join("huge.vrt");
        std::fs::write(&vrt, "<VRTDataset rasterXSize=\"2000000\" rasterYSize=\"2000000\"><VRTRasterBand dataType=\"Float32\" band=\"1\"><Description>B08</Description></VRTRasterBand></VRTDataset>").unwrap();
        let inputs = AssessInputs { pre: vrt.clone(), real: vrt.clone(), synthetic: vrt, ..Default::default() };
        let err = assess_files(&inputs, &dir.path().join("out"), &AssessConfig::default(), &Progress::silent("assess")).unwrap_err().to_string();
        assert!(err.contains("2000000 x 2000000") && err.contains("larger than this program handles"), "{err}");
    }
}

