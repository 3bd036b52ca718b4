//! Composites and the gap-filled post-fire image on a window of several acquisitions derived
//! from the demo's real t1 (no real second acquisition of one place is reachable offline): each
//! `-derived-shifted` scene is the real t1 with its cloud mask (the demo's threshold classes)
//! shifted by a known offset over it, its reflectance scaled by a known factor so that the median
//! and the latest clear value differ, and a date 5, 10 and 15 days after t1.

use std::path::{Path, PathBuf};

use s2cr::assess::gapfill::{GapFillInputs, write_gapfilled};
use s2cr::job::Progress;
use s2cr::preprocess::composite::{Acquisition, COUNT_BAND, CompositeMethod, DATE_BAND, epoch_days, write_composite};
use s2cr::raster::{self, BandStack, WriteOptions};

const BANDS: [&str; 6] = ["B02", "B03", "B04", "B08", "B11", "B12"];

fn read(p: &Path) -> BandStack {
    raster::read_window(&p.display().to_string(), &[], None).unwrap()
}

fn band(s: &BandStack, name: &str) -> usize {
    s.descriptions.iter().position(|d| d.eq_ignore_ascii_case(name)).unwrap_or_else(|| panic!("{name} in {:?}", s.descriptions))
}

/// Clear in a preprocessed image: valid, mask 0, every band finite.
fn clear(s: &BandStack, i: usize) -> bool {
    s.valid[i] && s.bands[band(s, "mask")][i] == 0.0 && BANDS.iter().all(|b| s.bands[band(s, b)][i].is_finite())
}

/// The real t1 with its mask shifted by (dx, dy) over it and its bands scaled by `factor`.
fn derived_shifted(real: &BandStack, dx: isize, dy: isize, factor: f32, path: &Path) -> Vec<bool> {
    let (w, h) = (real.width, real.height);
    let m = band(real, "mask");
    let cloudy_at = |x: isize, y: isize| x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h && real.bands[m][y as usize * w + x as usize] != 0.0;
    let mut out = BandStack { bands: Vec::new(), descriptions: Vec::new(), ..real.clone() };
    let mut clear_here = vec![false; w * h];
    for i in 0..w * h {
        let (x, y) = ((i % w) as isize, (i / w) as isize);
        clear_here[i] = clear(real, i) && !cloudy_at(x - dx, y - dy);
    }
    for b in BANDS {
        out.bands.push(real.bands[band(real, b)].iter().map(|v| v * factor).collect());
        out.descriptions.push(b.to_string());
    }
    out.bands.push(clear_here.iter().map(|c| if *c { 0.0 } else { 1.0 }).collect());
    out.descriptions.push("mask".into());
    raster::write_raster(path, &out, &WriteOptions::default()).unwrap();
    clear_here
}

#[test]
fn composites_and_the_gap_filled_image_on_derived_shifted_acquisitions() {
    let tmp = tempfile::tempdir().unwrap();
    let project = crate::demo_after_pipeline(&tmp.path().join("demo"), 2);
    let run = s2cr::demo::run_name();
    let summary: s2cr::dataset::DatasetSummary = s2cr::fsutil::load_json(&project.dataset_json(), "").unwrap();
    let abs = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { project.root().join(p) };
    let real_path = abs(&summary.sources.s2_t1);
    let real = read(&real_path);
    let (w, h) = (real.width, real.height);
    let t1 = chrono::NaiveDate::from_ymd_opt(2018, 11, 4).unwrap();
    // Three scenes of the window, given out of date order.
    let specs = [(2, 20isize, 0isize, 1.06f32), (0, 0, 25, 1.02), (1, -30, -15, 1.04)];
    let mut scenes: Vec<(Acquisition, Vec<bool>, f32)> = Vec::new();
    for (k, dx, dy, factor) in specs {
        let date = t1 + chrono::Days::new(5 * (k as u64 + 1));
        let path = tmp.path().join(format!("S2-{date}-derived-shifted.tif"));
        let clear_here = derived_shifted(&real, dx, dy, factor, &path);
        scenes.push((Acquisition { date, path }, clear_here, factor));
    }
    let acquisitions: Vec<Acquisition> = scenes.iter().map(|s| s.0.clone()).collect();
    scenes.sort_by_key(|s| s.0.date);
    let quiet = Progress::silent("composite");
    for method in [CompositeMethod::Median, CompositeMethod::LatestClear] {
        let out = tmp.path().join(format!("composite-{}-derived-shifted.tif", method.name()));
        // Strips of 7 rows: not a divisor of the grid's height.
        let made = write_composite(&acquisitions, method, &out, 7, &quiet).unwrap();
        assert_eq!(made.dates, scenes.iter().map(|s| s.0.date.to_string()).collect::<Vec<_>>());
        let c = read(&out);
        let (count, date, mask) = (band(&c, COUNT_BAND), band(&c, DATE_BAND), band(&c, "mask"));
        let mut covered = 0;
        for i in 0..w * h {
            let clear_k: Vec<usize> = (0..3).filter(|&k| scenes[k].1[i]).collect();
            assert_eq!(c.bands[count][i], clear_k.len() as f32, "pixel {i}");
            let Some(&latest) = clear_k.last() else {
                assert!(c.bands[mask][i] == 1.0 && c.bands[band(&c, "B04")][i].is_nan(), "pixel {i}: no clear observation");
                continue;
            };
            covered += 1;
            assert_eq!((c.bands[mask][i], c.bands[date][i]), (0.0, epoch_days(scenes[latest].0.date) as f32), "pixel {i}");
            for b in BANDS {
                let v = real.bands[band(&real, b)][i];
                let mut values: Vec<f32> = clear_k.iter().map(|&k| v * scenes[k].2).collect();
                values.sort_by(f32::total_cmp);
                let expected = match method {
                    CompositeMethod::LatestClear => v * scenes[latest].2,
                    _ if values.len() % 2 == 1 => values[values.len() / 2],
                    _ => (values[values.len() / 2 - 1] + values[values.len() / 2]) / 2.0,
                };
                assert_eq!(c.bands[band(&c, b)][i], expected, "{} {b} at pixel {i}", method.name());
            }
        }
        assert_eq!(made.covered, covered);
        assert!(covered > 0 && covered < (w * h) as u64, "the shifted clouds leave gaps: {covered} of {}", w * h);
    }

    // The composite as the assessment's post-fire composite row: the scenes are the real t1
    // scaled, and NBR does not change with a common scale, so its dNBR is the real one.
    let latest = tmp.path().join("composite-latest-clear-derived-shifted.tif");
    std::fs::create_dir_all(project.composite_s2("t1").parent().unwrap()).unwrap();
    std::fs::copy(&latest, project.composite_s2("t1")).unwrap();
    let done = s2cr::assess::assess_project(&project, &run, &s2cr::assess::AssessConfig::default(), &quiet).unwrap();
    assert!(!done.up_to_date, "a new composite is a new input");
    let bl = done.report.baselines.unwrap();
    let ids: Vec<&str> = bl.rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["synthetic", "persistence", "linear", "composite", "radar"]);
    let row = &bl.rows[3];
    println!("composite row: {row:?}");
    let pixels = row.pixels.unwrap();
    assert!(pixels > 0 && pixels < bl.count && row.burned.pixels == pixels, "{row:?}");
    assert!(row.image.dnbr_mae < 1e-6 && row.burned.kappa > 0.999 && row.image.ssim.is_finite(), "{row:?}");
    assert!(bl.beaten_by.iter().any(|b| b.contains("post-fire composite")), "{:?}", bl.beaten_by);
    assert!(bl.notes.iter().any(|n| n.contains(&format!("{pixels} of the {} pixels", bl.count))), "{:?}", bl.notes);
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(project.manifest_path(s2cr::project::Stage::Assess, Some(&run))).unwrap()).unwrap();
    assert!(manifest["inputs"].as_array().unwrap().iter().any(|i| i["path"].as_str().is_some_and(|p| p.contains("composite-t1"))), "{manifest}");

    // Gap-filled: real where t1 is clear, else the composite, else the synthetic image. The
    // target date is itself derived (the real t1 with its clouds shifted by (40, 10) over it),
    // so that the composite of the other dates fills some of its clouds.
    let target_path = tmp.path().join(format!("S2-{t1}-derived-shifted.tif"));
    derived_shifted(&real, 40, 10, 1.0, &target_path);
    let target = read(&target_path);
    let composite = tmp.path().join("composite-latest-clear-derived-shifted.tif");
    let synthetic = project.synthetic_s2(&run);
    let (image, source) = (tmp.path().join("gapfilled_S2_t1-derived-shifted.tif"), tmp.path().join("gapfilled_source-derived-shifted.tif"));
    let bands: Vec<String> = BANDS.map(String::from).to_vec();
    let inputs = GapFillInputs { real: &target_path, composite: Some(&composite), synthetic: &synthetic, t1_days: epoch_days(t1), pre: None, tags: None };
    let filled = write_gapfilled(&inputs, &bands, &image, &source, 16, &quiet).unwrap();
    let (c, s, g, src) = (read(&composite), read(&synthetic), read(&image), read(&source));
    let mut counts = [0u64; 4];
    for i in 0..w * h {
        let expected: (u8, Option<&BandStack>) = if clear(&target, i) {
            (1, Some(&target))
        } else if c.bands[band(&c, "mask")][i] == 0.0 {
            (2, Some(&c))
        } else if s.valid[i] && BANDS.iter().all(|b| s.bands[band(&s, b)][i].is_finite()) {
            (3, Some(&s))
        } else {
            (0, None)
        };
        counts[expected.0 as usize] += 1;
        assert_eq!(src.bands[0][i], expected.0 as f32, "source at pixel {i}");
        if let Some(from) = expected.1 {
            for b in BANDS {
                assert_eq!(g.bands[band(&g, b)][i], from.bands[band(from, b)][i], "{b} at pixel {i} from source {}", expected.0);
            }
        }
    }
    assert_eq!([filled.none, filled.real, filled.composite, filled.synthetic], counts);
    assert_eq!(filled.severity, None, "no pre-fire image given");
    assert!(filled.composite > 0 && filled.synthetic > 0, "{filled:?}");
    let info = raster::info(&source.display().to_string()).unwrap();
    assert_eq!(info.bands[0].description, "source of the gap-filled post-fire image");
    println!("gap-filled: {filled:?}");

    // A composite of one scene is that scene where it is clear; a window with none is refused,
    // and so is a file without its cloud mask.
    let one = tmp.path().join("composite-one-derived-shifted.tif");
    let made = write_composite(&acquisitions[..1], CompositeMethod::Median, &one, 64, &quiet).unwrap();
    assert_eq!(made.covered, scenes.iter().find(|s| s.0 == acquisitions[0]).unwrap().1.iter().filter(|c| **c).count() as u64);
    let err = write_composite(&[], CompositeMethod::Median, &one, 64, &quiet).unwrap_err().to_string();
    assert!(err.contains("widen its dates"), "{err}");
    // A window whose acquisitions are cloudy everywhere: a composite that fills nothing.
    let overcast_path = tmp.path().join("overcast-derived-shifted.tif");
    let mut overcast = real.clone();
    let m = band(&overcast, "mask");
    overcast.bands[m].iter_mut().for_each(|v| *v = 1.0);
    raster::write_raster(&overcast_path, &overcast, &WriteOptions::default()).unwrap();
    let made = write_composite(&[Acquisition { date: t1, path: overcast_path }], CompositeMethod::LatestClear, &one, 64, &quiet).unwrap();
    assert_eq!(made.covered, 0);
    let c = read(&one);
    assert!(c.bands[band(&c, "mask")].iter().all(|v| *v == 1.0) && c.bands[band(&c, COUNT_BAND)].iter().all(|v| *v == 0.0));
    let no_mask: PathBuf = tmp.path().join("no-mask.tif");
    let mut bare = real.clone();
    let m = band(&bare, "mask");
    bare.bands.remove(m);
    bare.descriptions.remove(m);
    raster::write_raster(&no_mask, &bare, &WriteOptions::default()).unwrap();
    let err = write_composite(&[Acquisition { date: t1, path: no_mask }], CompositeMethod::Median, &one, 64, &quiet).unwrap_err().to_string();
    assert!(err.contains("no mask band"), "{err}");
}

/// A demo item (`source`) copied as a `-derived-shifted` acquisition `days` after it: the demo's
/// t1 cloud classes shifted by (dx, dy) (the classes of the pixel (dx, dy) away; t1's own at the
/// edges),
/// its bands scaled by `factor`; `overcast` makes every pixel cloud. Where the shift uncovers the
/// real t1's clouds, the derived scene calls cloudy values clear: it tests where values come
/// from, not what they are. Returns the item's id.
fn derived_item(collection: &Path, source: &str, days: i64, dx: isize, dy: isize, factor: f32, overcast: bool) -> String {
    let item_text = std::fs::read_to_string(collection.join(source).join(format!("{source}.json"))).unwrap();
    let mut item: serde_json::Value = serde_json::from_str(&item_text).unwrap();
    let when = chrono::DateTime::parse_from_rfc3339(item["properties"]["datetime"].as_str().unwrap()).unwrap() + chrono::Duration::days(days);
    let id = format!("{source}-{}{}d{}-derived-shifted", if days < 0 { "minus" } else { "plus" }, days.abs(), if overcast { "-overcast" } else { "" });
    let dir = collection.join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let scl = read(&collection.join(T1_ITEM).join("SCL.tif"));
    let (w, h) = (scl.width, scl.height);
    let cloud = |v: f32| (8.0..=10.0).contains(&v);
    let classes: Vec<f32> = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as isize - dx, (i / w) as isize - dy);
            let shifted = (x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h).then(|| scl.bands[0][y as usize * w + x as usize]);
            if overcast { 9.0 } else { shifted.unwrap_or(scl.bands[0][i]) }
        })
        .collect();
    let cloudy = 100.0 * classes.iter().filter(|c| cloud(**c)).count() as f64 / (w * h) as f64;
    for band in item["assets"].as_object().unwrap().keys().cloned().collect::<Vec<_>>() {
        let mut stack = read(&collection.join(source).join(format!("{band}.tif")));
        if band == "SCL" {
            stack.bands[0] = classes.clone();
        } else {
            stack.bands[0].iter_mut().for_each(|v| *v *= factor);
        }
        stack.descriptions = vec![band.clone()];
        raster::write_raster(&dir.join(format!("{band}.tif")), &stack, &WriteOptions::default()).unwrap();
    }
    item["id"] = serde_json::json!(id);
    item["properties"]["datetime"] = serde_json::json!(when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    item["properties"]["eo:cloud_cover"] = serde_json::json!((cloudy * 10.0).round() / 10.0);
    let note = item["properties"]["s2cr:simulated"].as_str().unwrap_or_default().to_string();
    item["properties"]["s2cr:simulated"] = serde_json::json!(format!("DERIVED-SHIFTED from {source} (no real second acquisition is reachable offline): the t1 cloud classes shifted by ({dx}, {dy}) px over it, its bands x {factor}, {days} days later{}{note}", if note.is_empty() { "" } else { "; " }));
    std::fs::write(dir.join(format!("{id}.json")), serde_json::to_vec_pretty(&item).unwrap()).unwrap();
    let collection_file = collection.join("collection.json");
    let mut c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&collection_file).unwrap()).unwrap();
    c["links"].as_array_mut().unwrap().push(serde_json::json!({"rel": "item", "href": format!("./{id}/{id}.json"), "type": "application/geo+json"}));
    std::fs::write(&collection_file, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    id
}

const T1_ITEM: &str = "sen12mscr-p839-s2-cloudy-simulated-burn";
const T0_ITEM: &str = "sen12mscr-p839-s2-cloudfree";

/// project.yaml's `composite:` through the whole pipeline, on the demo's catalog with two
/// `-derived-shifted` acquisitions in the t1 window (and one overcast, which is no use), and in
/// the t0 window a copy of the cloud-free t0 under t1's clouds, chosen by hand as t0 so that the
/// real t0 is its window's composite and fills its clouds.
#[test]
fn composites_go_through_search_fetch_preprocess_and_the_gap_filled_assessment() {
    use s2cr::catalog::stage::SearchResult;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let project = s2cr::demo::create_project(&dir).unwrap();
    let collection = dir.join(s2cr::demo::CATALOG_DIR).join(s2cr::demo::S2_COLLECTION);
    let a = derived_item(&collection, T1_ITEM, 5, 20, 0, 1.04, false);
    let b = derived_item(&collection, T1_ITEM, 10, -30, -15, 1.08, false);
    derived_item(&collection, T1_ITEM, 15, 0, 0, 1.0, true);
    let cloudy_t0 = derived_item(&collection, T0_ITEM, -3, 0, 0, 1.0, false);
    let text = std::fs::read_to_string(project.project_file()).unwrap() + "composite:\n  t0: median\n  t1: latest-clear\n";
    std::fs::write(project.project_file(), text).unwrap();
    let project = s2cr::project::Project::open(&dir).unwrap();
    let mut settings = s2cr::demo::settings(&project, Some(2), s2cr::model::DeviceChoice::Cpu).unwrap();
    if let Some(t) = settings.train.as_mut() {
        t.workers = 0;
    }
    let quiet = Progress::silent("composite");
    // The derived scenes are clearer than the real t1 (their clouds shifted partly off the
    // grid): the search chooses one, and the real t1 is chosen by hand (it has radar).
    s2cr::pipeline::run_stage(&project, s2cr::project::Stage::Search, &settings, &quiet).unwrap();
    let mut search = SearchResult::load(&project, "test").unwrap();
    assert_eq!(search.composite_t1.as_ref().map(|c| c.len()), Some(2), "{:?}", search.notes);
    search.choose(true, T1_ITEM, 6.0).unwrap();
    assert_eq!(search.chosen_t0.as_deref(), Some(T0_ITEM), "the clearest");
    search.choose(false, &cloudy_t0, 6.0).unwrap();
    search.save_choice(&project).unwrap();
    s2cr::pipeline::run(&project, &settings, &quiet).unwrap();

    // Search: the two usable acquisitions kept for t1, the real t0 for t0, each said in a note.
    let search = SearchResult::load(&project, "test").unwrap();
    assert_eq!(search.composite_t1.as_deref(), Some(&[a.clone(), b.clone()][..]), "{:?}", search.notes);
    assert_eq!(search.composite_t0.as_deref(), Some(&[T0_ITEM.to_string()][..]));
    assert!(search.notes.iter().any(|n| n == "t1 composite: 2 other acquisition(s) kept (2018-11-09, 2018-11-14)"), "{:?}", search.notes);
    assert!(search.notes.iter().any(|n| n == "t0 composite: 1 other acquisition(s) kept (2018-09-20)"), "{:?}", search.notes);
    // Fetch and preprocess: each acquisition on the grid, the real t1 times its factor.
    let real_t1 = read(&project.preprocessed_s2("2018-11-04"));
    let mut acquisitions = Vec::new();
    for (date, factor) in [("2018-11-09", 1.04f32), ("2018-11-14", 1.08)] {
        let p = read(&project.preprocessed_s2(date));
        let b04 = (band(&p, "B04"), band(&real_t1, "B04"));
        let mut compared = 0;
        for i in 0..p.width * p.height {
            let (x, y) = (p.bands[b04.0][i], real_t1.bands[b04.1][i]);
            if x.is_finite() && y.is_finite() && y > 0.0 {
                assert!((x / (y * factor) - 1.0).abs() < 1e-4, "{date} B04 at pixel {i}: {x} vs {y} x {factor}");
                compared += 1;
            }
        }
        assert!(compared > 1000, "{compared}");
        acquisitions.push(p);
    }
    // The t0 composite is the real t0 where it is clear (median of one).
    let (c0, real_t0) = (read(&project.composite_s2("t0")), read(&project.preprocessed_s2("2018-09-20")));
    for i in 0..c0.width * c0.height {
        assert_eq!(c0.bands[band(&c0, COUNT_BAND)][i], clear(&real_t0, i) as u8 as f32, "pixel {i}");
    }
    let c = read(&project.composite_s2("t1"));
    let (count, mask) = (band(&c, COUNT_BAND), band(&c, "mask"));
    for i in 0..c.width * c.height {
        let clear: Vec<usize> = (0..2).filter(|&k| clear(&acquisitions[k], i)).collect();
        assert_eq!(c.bands[count][i], clear.len() as f32, "pixel {i}");
        match clear.last() {
            Some(&k) => assert_eq!(c.bands[band(&c, "B12")][i], acquisitions[k].bands[band(&acquisitions[k], "B12")][i], "pixel {i}"),
            None => assert_eq!(c.bands[mask][i], 1.0, "pixel {i}"),
        }
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(project.preprocess_report()).unwrap()).unwrap();
    assert!(report["outputs"].as_array().unwrap().iter().any(|o| o["date"] == "composite-t1" && o["processing"].as_str().unwrap().starts_with("latest-clear of the clear observations of 2 acquisition(s)")), "{report}");

    // The assessment: the composite row, the gap-filled image with its source, dNBR and
    // severity, in the report, the STAC catalog and the layers.
    let run = s2cr::demo::run_name();
    let assessed: s2cr::assess::AssessReport = s2cr::fsutil::load_json(&project.report_json(&run), "").unwrap();
    let bl = assessed.baselines.as_ref().unwrap();
    assert!(bl.rows.iter().any(|r| r.id == "composite" && r.pixels.is_some_and(|p| p > 0)), "{:?}", bl.rows);
    let g = assessed.gapfill.as_ref().unwrap();
    let (t1_real, src, synth) = (read(&project.preprocessed_s2("2018-11-04")), read(&project.gapfill_source(&run)), read(&project.synthetic_s2(&run)));
    let mut counts = [0u64; 4];
    for i in 0..src.width * src.height {
        let expected = if clear(&t1_real, i) {
            1
        } else if c.bands[mask][i] == 0.0 {
            2
        } else if synth.valid[i] && BANDS.iter().all(|b| synth.bands[band(&synth, b)][i].is_finite()) {
            3
        } else {
            0
        };
        counts[expected] += 1;
        assert_eq!(src.bands[0][i], expected as f32, "source at pixel {i}");
    }
    assert_eq!([g.none, g.real, g.composite, g.synthetic], counts);
    assert!(g.composite > 0 && g.synthetic > 0 && g.real > 0, "{g:?}");
    let sev = g.severity.as_ref().unwrap();
    assert!(sev.pre_composite > 1000 && assessed.pre_filled_pixels > 1000, "the real t0 fills the chosen t0's clouds: {sev:?}, {}", assessed.pre_filled_pixels);
    // Every dNBR's pre-fire side: the chosen t0 where clear, else the t0 composite's NBR.
    let chosen_t0 = read(&project.preprocessed_s2("2018-09-17"));
    let indices = read(&project.assess_dir(&run).join(s2cr::assess::files::indices("synthetic")));
    let nbr = |s: &BandStack, i: usize| (s.bands[band(s, "B08")][i] - s.bands[band(s, "B12")][i]) / (s.bands[band(s, "B08")][i] + s.bands[band(s, "B12")][i]);
    let mut filled = 0;
    for i in 0..indices.width * indices.height {
        let v = indices.bands[0][i];
        if !v.is_finite() {
            continue;
        }
        let expected = if clear(&chosen_t0, i) { nbr(&chosen_t0, i) } else { nbr(&c0, i) };
        filled += !clear(&chosen_t0, i) as usize;
        assert!((v - expected).abs() < 1e-6, "NBR pre at pixel {i}: {v} vs {expected}");
    }
    assert_eq!(filled as u64, assessed.pre_filled_pixels);
    assert!(sev.burned_ha > 0.0 && sev.burned_composite > 0, "{sev:?}");
    let html = std::fs::read_to_string(project.report_html(&run)).unwrap();
    assert!(html.contains("The gap-filled post-fire image") && html.contains(&g.shares()), "the report says it");
    let item: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(project.output_dir(&run).join("stac").join("gapfilled-s2.json")).unwrap()).unwrap();
    assert_eq!(item["assets"]["source"]["href"], "../gapfilled_source.tif", "{item}");
    assert_eq!(item["assets"]["source"]["classification:classes"].as_array().map(|c| c.len()), Some(3), "{item}");
    let ids: Vec<String> = s2cr::layers::project_layers(&project, &run).into_iter().map(|l| l.id).collect();
    for id in ["gapfilled", "gapfill-source", "dnbr-gapfilled", "severity-gapfilled"] {
        assert!(ids.iter().any(|i| i == id), "layer {id} in {ids:?}");
    }
    let source_layer = s2cr::layers::project_layers(&project, &run).into_iter().find(|l| l.id == "gapfill-source").unwrap();
    let png = tmp.path().join("source.png");
    s2cr::layers::export(&source_layer, &png, &s2cr::layers::Composite::presets()[0], s2cr::layers::StretchKind::MinMax, 1.0).unwrap();
    assert!(png.is_file());
    println!("gap-filled: {}; {:?}", g.shares(), g.lines(assessed.pixel_area_m2, true));

    // Composites are the native engine's: the openEO engine says so before any job.
    let mut openeo = settings.preprocess.clone();
    openeo.engine = s2cr::preprocess::stage::Engine::Openeo;
    std::fs::remove_file(project.manifest_path(s2cr::project::Stage::Preprocess, None)).unwrap();
    let err = s2cr::preprocess::stage::preprocess(&project, &openeo, &quiet).unwrap_err().to_string();
    assert!(err.contains("native engine makes") && err.contains("openEO"), "{err}");
    let snap = s2cr::preprocess::stage::PreprocessConfig { engine: s2cr::preprocess::stage::Engine::Snap { s1_graph: s2cr::preprocess::snap::SnapGraph::Sentinel1V3, gpt: None, products: None }, ..settings.preprocess.clone() };
    let err = s2cr::preprocess::stage::preprocess(&project, &snap, &quiet).unwrap_err().to_string();
    assert!(err.contains("native engine makes") && err.contains("SNAP"), "{err} (before looking for gpt)");
    // `s2cr clean` removes the extra acquisitions with the rest of raw/.
    let raw_extra = project.raw_dir().join("2018-11-09");
    assert!(raw_extra.is_dir());
    s2cr::clean::clean(&project, &[], false).unwrap();
    assert!(!raw_extra.exists());
}
