//! The desktop app, rendered headless with egui_kittest: drawing an AOI with simulated clicks,
//! importing a GeoJSON by dropping it, running a stage from the wizard with progress, Cancel and
//! Resume on a small real project, and snapshots of the main screens.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Event, Modifiers, PointerButton, Pos2, Vec2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use s2cr::gui::S2crApp;
use s2cr::gui::wizard::{Outcome, Step};

use eframe::egui;

fn harness(app: S2crApp, size: [f32; 2]) -> Harness<'static, S2crApp> {
    Harness::builder().with_size(size).with_max_steps(64).build_ui_state(|ui, app: &mut S2crApp| app.ui_contents(ui), app)
}

/// A harness that renders (wgpu) for snapshots.
fn snapshot_harness(app: S2crApp) -> Harness<'static, S2crApp> {
    Harness::builder().with_size([1000.0, 600.0]).with_max_steps(64).wgpu().build_ui_state(|ui, app: &mut S2crApp| app.ui_contents(ui), app)
}

fn click_at(h: &mut Harness<'_, S2crApp>, p: Pos2) {
    h.event(Event::PointerMoved(p));
    h.event(Event::PointerButton { pos: p, button: PointerButton::Primary, pressed: true, modifiers: Modifiers::NONE });
    h.event(Event::PointerButton { pos: p, button: PointerButton::Primary, pressed: false, modifiers: Modifiers::NONE });
    h.run();
    // Far apart in time, so two clicks are never a double click.
    h.run_steps(3);
}

/// Steps the app (background jobs report between frames) until `done` holds.
fn step_until(h: &mut Harness<'_, S2crApp>, what: &str, timeout: Duration, done: impl Fn(&S2crApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_window_shows_the_app_name_and_no_project() {
    let mut h = harness(S2crApp::new(None), [1000.0, 650.0]);
    h.run();
    h.get_by_label("sent2-cloud-remover");
    h.get_by_label("No project open");
    h.get_by_label("Create project");
}

#[test]
fn a_broken_project_is_shown_not_crashed_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = harness(S2crApp::new(Some(tmp.path().to_path_buf())), [1000.0, 650.0]);
    h.run();
    h.get_by_label("Project: could not be opened");
}

#[test]
fn clicks_on_the_map_draw_a_polygon() {
    let mut app = S2crApp::new(None);
    app.map.memory.center_at(walkers::lon_lat(137.0, -35.8));
    app.map.memory.set_zoom(10.0).unwrap();
    let mut h = harness(app, [1000.0, 650.0]);
    h.run();
    h.get_by_label("Draw").click();
    h.run();
    assert!(h.state().map.drawing);
    let c = h.state().map.rect.center();
    let points = [c, c + Vec2::new(100.0, 0.0), c + Vec2::new(100.0, 100.0)];
    for p in points {
        click_at(&mut h, p);
    }
    assert_eq!(h.state().editor.vertices.len(), 3);
    // Clicking the first vertex closes the ring.
    click_at(&mut h, points[0]);
    let e = &h.state().editor;
    assert!(e.closed, "{e:?}");
    assert_eq!(e.vertices.len(), 3);
    // The centre of the view is where the map was centred; 100 px at zoom 10 is
    // 100 / (256 * 2^10) of 360 degrees of longitude; y grows southwards.
    let [a, b, d] = [e.vertices[0], e.vertices[1], e.vertices[2]];
    assert!((a[0] - 137.0).abs() < 1e-3 && (a[1] + 35.8).abs() < 1e-3, "{a:?}");
    let dlon = 100.0 / (256.0 * 1024.0) * 360.0;
    assert!((b[0] - a[0] - dlon).abs() < 1e-4 && (b[1] - a[1]).abs() < 1e-6, "{b:?}");
    assert!((d[0] - b[0]).abs() < 1e-6 && d[1] < b[1], "{d:?}");
    let ring = e.ring();
    assert_eq!(ring.first(), ring.last());
    // The Area step shows the live area: half of a 0.137 x 0.111 degree box near 35.8 S.
    let (area, problems) = e.check(&Default::default());
    assert!(problems.is_empty(), "{problems:?}");
    let area = area.unwrap();
    assert!(area > 60.0 && area < 80.0, "{area}");
    h.get_by_label_contains("Area: ");
    // Right-click a vertex deletes it (and a two-point ring reopens).
    let p = h.state().map.vertex_screen[1];
    h.event(Event::PointerMoved(p));
    for pressed in [true, false] {
        h.event(Event::PointerButton { pos: p, button: PointerButton::Secondary, pressed, modifiers: Modifiers::NONE });
    }
    h.run();
    assert_eq!(h.state().editor.vertices.len(), 2);
    assert!(!h.state().editor.closed);
}

/// A file dropped on the window, as the windowing system hands it over.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn a_dropped_geojson_is_imported_and_shown() {
    let aoi = Path::new(env!("CARGO_MANIFEST_DIR")).join("confs/kangaroo-island-west.geojson");
    let mut h = harness(S2crApp::new(None), [1000.0, 650.0]);
    h.run();
    h.input_mut().dropped_files.push(Arc::new(Dropped(aoi.clone())));
    h.run();
    let expected = s2cr::aoi::Aoi::load(&aoi, &Default::default()).unwrap();
    let e = &h.state().editor;
    assert!(e.closed);
    assert_eq!(e.ring(), expected.rings()[0][0]);
    h.get_by_label_contains("Imported");
    // The map zoomed to it: every vertex is on screen.
    let rect = h.state().map.rect;
    assert!(!h.state().map.vertex_screen.is_empty());
    assert!(h.state().map.vertex_screen.iter().all(|p| rect.contains(*p)), "{:?} in {rect:?}", h.state().map.vertex_screen);
}

#[test]
fn the_wizard_runs_cancels_and_resumes_training_on_a_real_project() {
    let tmp = tempfile::tempdir().unwrap();
    let project = crate::dataset::project_with_preprocessed(tmp.path());
    let tiles = s2cr::dataset::tiles::TileConfig { size: 64, stride: 64, min_valid: 0.0, val_fraction: 0.0, test_fraction: 0.0, split_block_patches: 1, gap_px: 0, seed: 1 };
    s2cr::dataset::build(&project, &s2cr::dataset::DatasetConfig { tiles, ..s2cr::dataset::DatasetConfig::research(&project) }, &s2cr::job::Progress::silent("dataset")).unwrap();

    let mut app = S2crApp::new(Some(project.root().to_path_buf()));
    app.wizard.settings.model = Some(s2cr::model::config::ModelConfig { ngf: 8, ndf: 8, depth: 4, ..Default::default() });
    app.wizard.settings.train = Some(s2cr::model::config::TrainConfig { max_steps: 40, checkpoint_every: 0, workers: 0, batch_size: 1, preview_every: 10, ..Default::default() });
    app.wizard.settings.device = s2cr::model::DeviceChoice::Cpu;
    let mut h = harness(app, [1100.0, 700.0]);
    h.run();
    h.get_by_label("Train").click();
    h.run();
    assert_eq!(h.state().wizard.step, Step::Train);
    h.get_by_label("Run").click();
    h.step();
    step_until(&mut h, "training progress", Duration::from_secs(120), |a| a.wizard.job.as_ref().is_some_and(|j| j.done >= 3));
    // The progress bar names the steps done of all.
    h.get_by_label_contains("/ 40");
    // Another project is not opened under a running stage (its results would land there).
    h.state_mut().open_project(tmp.path());
    match &h.state().notice {
        Some(s2cr::gui::Notice::Failed(e)) => assert!(s2cr::error_chain(e.as_ref()).contains("train: is running"), "{}", s2cr::error_chain(e.as_ref())),
        _ => panic!("opening a project while training is refused"),
    }
    assert_eq!(h.state().project().map(|p| p.root().to_path_buf()), Some(project.root().to_path_buf()));
    h.state_mut().notice = None;
    h.get_by_label("Cancel").click();
    h.step();
    step_until(&mut h, "the cancelled run to stop", Duration::from_secs(60), |a| a.wizard.job.is_none());
    assert_eq!(h.state().wizard.outcomes.get("train"), Some(&Outcome::Cancelled));
    let cp: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(project.checkpoint_json(&Default::default())).unwrap()).unwrap();
    let stopped_at = cp["step"].as_u64().unwrap();
    assert!((3..40).contains(&stopped_at), "checkpoint at {stopped_at}");
    // Resume continues from the checkpoint to the end.
    h.run();
    h.get_by_label("Resume").click();
    h.step();
    step_until(&mut h, "the resumed run to finish", Duration::from_secs(300), |a| a.wizard.job.is_none());
    let outcome = h.state().wizard.outcomes.get("train").cloned();
    assert!(matches!(outcome, Some(Outcome::Finished(_))), "{outcome:?}");
    let rows = std::fs::read_to_string(project.metrics_csv(&Default::default())).unwrap().lines().count() - 1;
    assert_eq!(rows, 40);
    assert!(h.state().wizard.log.iter().any(|l| l.text.contains(&format!("resuming default at step {stopped_at}"))), "{:?}", h.state().wizard.log);
    // Curves were drawn from the loss events.
    assert!(h.state().wizard.curves.series.get("g_l1").is_some_and(|s| !s.is_empty()));
    h.run();
    h.get_by_label_contains("Finished:");
    // The training preview of the last step is shown.
    assert!(project.preview_png(&Default::default()).is_file());
    assert_eq!(h.state().wizard.preview.as_ref().map(|(_, step)| *step), Some(40));
    h.get_by_label_contains("Real | synthetic (true colour), step 40");
    if let Ok(dir) = std::env::var("S2CR_KEEP_TEST_OUTPUT") {
        std::fs::copy(project.preview_png(&Default::default()), Path::new(&dir).join("training-preview.png")).unwrap();
    }
    // Another writer holds the project (an `s2cr run`, say): the step does not start, and says
    // who is writing.
    let other = project.lock_for_writing("s2cr run (another process)", false).unwrap();
    h.get_by_label("Run").click();
    h.step();
    h.run();
    assert!(h.state().wizard.job.is_none(), "nothing started");
    match h.state().wizard.outcomes.get("train") {
        Some(Outcome::Failed(e)) => assert!(s2cr::error_chain(e.as_ref()).contains("s2cr run (another process)"), "{}", s2cr::error_chain(e.as_ref())),
        o => panic!("the step names the other writer: {o:?}"),
    }
    // On the step and in the log.
    assert!(h.get_all_by_label_contains("is writing this project").count() >= 1);
    drop(other);
}

#[test]
fn snapshots_of_the_main_screens() {
    // Without a project: the Area step and the offline basemap.
    let mut app = S2crApp::new(None);
    app.map.memory.center_at(walkers::lon_lat(137.0, -35.8));
    app.map.memory.set_zoom(4.0).unwrap();
    let mut h = snapshot_harness(app);
    h.run();
    h.snapshot("app_area_step");
    // An imported AOI on the map.
    h.state_mut().import_aoi(&Path::new(env!("CARGO_MANIFEST_DIR")).join("confs/kangaroo-island-west.geojson"));
    h.run();
    h.snapshot("app_aoi_imported");
}

#[test]
fn new_project_from_an_open_project_starts_empty_and_recent_projects_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let project = crate::dataset::project_with_preprocessed(tmp.path());
    let mut h = snapshot_harness(S2crApp::new(Some(project.root().to_path_buf())));
    h.run();
    assert!(h.state().project().is_some() && !h.state().editor.is_empty());
    assert_eq!(h.state().persisted.recent, [project.root().to_path_buf()]);
    h.get_by_label("Dataset").click();
    h.run();
    h.get_by_label("New project").click();
    h.run();
    assert!(h.state().project().is_none(), "closed");
    assert!(h.state().editor.is_empty(), "an empty area to draw");
    assert_eq!(h.state().wizard.step, s2cr::gui::wizard::Step::Area);
    h.get_by_label("Draw");
    // The project is among the recent ones, and opens again from there.
    h.get_by_label("Recent").click();
    h.run();
    h.get_by_label(project.root().file_name().unwrap().to_str().unwrap()).click();
    h.run();
    step_until(&mut h, "the project to open", Duration::from_secs(10), |a| a.project().is_some());
    assert_eq!(h.state().project().map(|p| p.root().to_path_buf()), Some(project.root().to_path_buf()));
    h.get_by_label("Close project").click();
    h.run();
    assert!(h.state().project().is_none() && !h.state().editor.is_empty(), "closing keeps the drawn area");
}

#[test]
fn unreachable_tiles_are_said_once_in_the_status_bar() {
    // The tile server's stand-in: a loopback port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // SAFETY: each test of this binary runs in its own process (nextest).
    unsafe { std::env::set_var("S2CR_TILE_PROBE_URL", format!("http://127.0.0.1:{closed}/0/0/0.png")) };
    let mut h = snapshot_harness(S2crApp::new(None));
    h.run();
    assert!(h.query_by_label_contains("unreachable").is_none());
    let ctx = h.ctx.clone();
    h.state_mut().map.set_tiles(true, &ctx);
    step_until(&mut h, "the tile probe to answer", Duration::from_secs(10), |a| a.map.tiles_reachable.lock().unwrap().is_some());
    h.run();
    h.get_by_label("unreachable: the offline basemap is shown");
    h.snapshot("app_tiles_unreachable");
    // Tiles off: nothing to say.
    h.state_mut().map.set_tiles(false, &ctx);
    h.run();
    assert!(h.query_by_label_contains("unreachable").is_none());
}

#[test]
fn the_assess_step_takes_an_official_perimeter() {
    let tmp = tempfile::tempdir().unwrap();
    let project = crate::dataset::project_with_preprocessed(tmp.path());
    let mut h = snapshot_harness(S2crApp::new(Some(project.root().to_path_buf())));
    h.run();
    h.get_by_label("Assess").click();
    h.run();
    h.get_by_label_contains("none (project.yaml's reference_perimeter when set)");
    assert!(h.query_by_label("clear").is_none());
    h.state_mut().wizard.settings.assess.perimeter = Some(tmp.path().join("mtbs_perimeter.shp"));
    h.run();
    h.get_by_label("mtbs_perimeter.shp");
    h.snapshot("app_assess_step_perimeter");
    h.get_by_label("clear").click();
    h.run();
    assert!(h.state().wizard.settings.assess.perimeter.is_none());
    // The dNBR offset: on by default (MTBS practice), off with its checkbox.
    assert!(h.state().wizard.settings.assess.dnbr_offset.enabled);
    h.get_by_label("subtract unburned land's mean").click();
    h.run();
    assert!(!h.state().wizard.settings.assess.dnbr_offset.enabled);
    // Perimeters as classified by default; the majority filter one click away.
    assert!(h.state().wizard.settings.assess.perimeter_cleaning.is_off());
    h.get_by_label("3 x 3 majority").click();
    h.run();
    assert!(h.state().wizard.settings.assess.perimeter_cleaning.majority);
    // Field plots: a file, its CBI field, and classifying with its bounds one click away.
    h.state_mut().wizard.settings.assess.plots = Some(s2cr::assess::plots::FieldPlots { file: tmp.path().join("plots.gpkg"), field: "CBI".into(), classify: false });
    h.run();
    h.get_by_label("plots.gpkg");
    h.get_by_label("classify with its bounds").click();
    h.run();
    assert!(h.state().wizard.settings.assess.plots.as_ref().unwrap().classify);
}

#[test]
fn a_geojson_file_given_to_the_app_starts_a_project_from_it() {
    // What the desktop entry does with a GeoJSON file: `s2cr gui FILE`.
    let aoi = Path::new(env!("CARGO_MANIFEST_DIR")).join("confs/kangaroo-island-west.geojson");
    let mut h = snapshot_harness(S2crApp::new(Some(aoi)));
    h.run();
    assert!(h.state().project().is_none());
    h.get_by_label_contains("Imported kangaroo-island-west.geojson");
}

#[test]
fn snapshot_of_a_project_on_the_dataset_step() {
    let tmp = tempfile::tempdir().unwrap();
    let project = crate::dataset::project_with_preprocessed(tmp.path());
    let mut h = snapshot_harness(S2crApp::new(Some(project.root().to_path_buf())));
    h.run();
    h.get_by_label("Dataset").click();
    h.run();
    h.snapshot("app_dataset_step");
}

#[test]
fn the_preprocess_step_offers_an_openeo_back_end() {
    let tmp = tempfile::tempdir().unwrap();
    let project = crate::dataset::project_with_preprocessed(tmp.path());
    let mut h = snapshot_harness(S2crApp::new(Some(project.root().to_path_buf())));
    h.run();
    h.get_by_label("Preprocess").click();
    h.run();
    assert!(h.query_by_label("Back-end URL").is_none(), "no URL field for the native engine");
    h.get_by_label("openEO back-end").click();
    h.run();
    assert_eq!(h.state().wizard.settings.preprocess.engine, s2cr::preprocess::stage::Engine::Openeo);
    h.get_by_label("Back-end URL").focus();
    h.run();
    h.get_by_label("Back-end URL").type_text("https://openeo.dataspace.copernicus.eu/openeo/1.2");
    h.run();
    let backend = h.state().wizard.settings.preprocess.openeo.as_ref().map(|o| o.backend.clone());
    assert_eq!(backend.as_deref(), Some("https://openeo.dataspace.copernicus.eu/openeo/1.2"));
    h.snapshot("app_preprocess_step_openeo");
    h.get_by_label("this computer").click();
    h.run();
    assert_eq!(h.state().wizard.settings.preprocess.engine, s2cr::preprocess::stage::Engine::Native);
}

#[test]
fn the_train_step_offers_to_start_from_a_trained_model() {
    let tmp = tempfile::tempdir().unwrap();
    let project = crate::dataset::project_with_preprocessed(tmp.path());
    let mut app = S2crApp::new(Some(project.root().to_path_buf()));
    let from = project.runs_dir().join("last-year");
    app.wizard.settings.train = Some(s2cr::model::config::TrainConfig { init_from: Some(from.clone()), ..Default::default() });
    let mut h = snapshot_harness(app);
    h.run();
    h.get_by_label("Train").click();
    h.run();
    h.get_by_label("Start from a trained model…");
    h.get_by_label("last-year");
    // Below the model's options: scrolled into view first.
    h.get_by_label("where they differ, start the first or last layer afresh").scroll_to_me();
    h.run();
    h.get_by_label("where they differ, start the first or last layer afresh").click();
    h.run();
    assert!(h.state().wizard.settings.train.as_ref().is_some_and(|t| t.adapt_channels && t.init_from.as_deref() == Some(from.as_path())));
    // The losses on NBR, NDVI and the spectral angle: on together.
    h.get_by_label("also NBR, NDVI and spectral angle (weights 100)").click();
    h.run();
    assert!(h.state().wizard.settings.train.as_ref().is_some_and(|t| (t.nbr_weight, t.ndvi_weight, t.sam_weight) == (100.0, 100.0, 100.0)));
    h.get_by_label("the generator predicts its own (aleatoric)").click();
    h.run();
    h.get_by_label("resize, then a 3x3 convolution (no checkerboard)").click();
    h.run();
    assert!(h.state().wizard.settings.model.as_ref().is_some_and(|m| m.upsample == s2cr::model::config::Upsample::ResizeConv));
    assert!(h.state().wizard.settings.model.as_ref().is_some_and(|m| m.uncertainty == s2cr::model::config::UncertaintyHead::Aleatoric));
    h.snapshot("app_train_step_fine_tune");
    // Back to random weights.
    h.get_by_label("use random weights").click();
    h.run();
    assert!(h.state().wizard.settings.train.as_ref().is_some_and(|t| t.init_from.is_none()));
    assert!(h.query_by_label("where they differ, start the first or last layer afresh").is_none());
}

#[test]
fn the_train_step_says_how_long_training_will_take() {
    use s2cr::dataset::tiles::TileConfig;
    let tmp = tempfile::tempdir().unwrap();
    let project = crate::dataset::project_with_preprocessed(tmp.path());
    let tiles = TileConfig { size: 64, stride: 128, min_valid: 0.0, val_fraction: 0.0, test_fraction: 0.0, split_block_patches: 1, gap_px: 0, seed: 1 };
    s2cr::dataset::build(&project, &s2cr::dataset::DatasetConfig { tiles, ..s2cr::dataset::DatasetConfig::research(&project) }, &s2cr::job::Progress::silent("dataset")).unwrap();
    let mut app = S2crApp::new(Some(project.root().to_path_buf()));
    app.wizard.settings.model = Some(s2cr::model::config::ModelConfig::small());
    app.wizard.settings.device = s2cr::model::DeviceChoice::Cpu;
    app.wizard.settings.train = Some(s2cr::model::config::TrainConfig { max_steps: 40, batch_size: 2, workers: 0, checkpoint_every: 20, ..Default::default() });
    let mut h = snapshot_harness(app);
    h.run();
    h.get_by_label("Train").click();
    h.run();
    // Below the settings: scrolled into view first.
    h.get_by_label("Estimate time").scroll_to_me();
    h.run();
    h.get_by_label("Estimate time").click();
    h.run();
    assert!(h.state().wizard.estimating.is_some() || h.state().wizard.estimate.is_some(), "the click starts a measurement");
    step_until(&mut h, "the measurement", Duration::from_secs(120), |a| a.wizard.estimating.is_none());
    h.run();
    let (_, e) = h.state().wizard.estimate.clone().expect("an estimate");
    let e = e.expect("measured");
    assert_eq!((e.steps, e.checkpoints), (40, 2));
    assert!(e.step_s > 0.0 && e.total_s > 40.0 * e.step_s, "{e:?}");
    h.get_by_label("Measure again");
    h.get_by_label_contains("Estimated: about").scroll_to_me();
    h.run();
    assert!(!project.run_dir(h.state().wizard.settings.run_name()).exists(), "the run is not touched");
    // The measured times differ from run to run: the digits of the estimate may differ, and
    // move the rest of its line and the wrapped part (about 950 pixels in CI).
    h.snapshot_options("app_train_step_estimate", &egui_kittest::SnapshotOptions::new().max_failed_pixels(2000));
    // Other settings: the estimate no longer shows; the same ones again read the kept one.
    h.state_mut().wizard.settings.train.as_mut().unwrap().batch_size = 1;
    h.run();
    assert!(h.query_by_label_contains("Estimated: about").is_none());
    h.state_mut().wizard.settings.train.as_mut().unwrap().batch_size = 2;
    h.state_mut().wizard.estimate = None;
    h.run();
    h.get_by_label("Estimate time").scroll_to_me();
    h.run();
    h.get_by_label("Estimate time").click();
    h.run();
    assert!(h.state().wizard.estimating.is_none(), "read, not measured");
    assert_eq!(h.state().wizard.estimate.clone().unwrap().1.unwrap().measured_at, e.measured_at);
}

#[test]
fn the_scenes_step_lists_candidates_and_a_click_changes_the_choice() {
    let tmp = tempfile::tempdir().unwrap();
    let project = crate::dataset::project_with_preprocessed(tmp.path());
    // A second, later t0 candidate beside the one the fixture chose.
    let mut r = s2cr::catalog::stage::SearchResult::load(&project, "test").unwrap();
    let mut other = r.s2_t0[0].clone();
    other.id = "S2B_LATER".into();
    other.datetime += chrono::Duration::days(2);
    other.aoi_cloud_percent = Some(3.5);
    r.s2_t0.push(other);
    r.save(&project).unwrap();
    let mut h = harness(S2crApp::new(Some(project.root().to_path_buf())), [1100.0, 700.0]);
    h.run();
    h.get_by_label("Scenes").click();
    h.run();
    h.get_by_label("3.5 %");
    h.get_by_label("t0: 2 acquisition(s) in the window; no composite (project.yaml `composite:`)");
    let radios = h.get_all_by_label("t0").collect::<Vec<_>>();
    assert_eq!(radios.len(), 2);
    radios[1].click();
    h.run();
    let saved = s2cr::catalog::stage::SearchResult::load(&project, "test").unwrap();
    assert_eq!(saved.chosen_t0.as_deref(), Some("S2B_LATER"));
    h.get_by_label_contains("is now the t0 scene");
}

/// The embedded demo, run through the pipeline with a tiny training run, opened in the app: it
/// opens on the assessment, which says the burn is simulated, and the Scenes step marks the
/// simulated scenes.
#[test]
fn the_demo_project_opens_on_its_assessment_and_says_what_is_simulated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    crate::demo_after_pipeline(&dir, 2);

    let mut h = snapshot_harness(S2crApp::new(Some(dir.clone())));
    h.run();
    assert_eq!(h.state().wizard.step, Step::Assess);
    assert_eq!(h.state().wizard.settings.run_name().as_str(), s2cr::demo::RUN, "the project's pipeline.yaml names the run");
    h.get_by_label("SIMULATED burn: the real data has no fire.");
    h.get_by_label("Open report");
    h.get_by_label("held out");
    h.snapshot("app_demo_assess");
    // Against the alternatives: the synthetic image's row first, the verdict above the table.
    h.get_by_label("Against the alternatives (held-out pixels)");
    h.get_by_label("radar only");
    h.get_by_label_contains("A simpler source does better: the linear model");
    h.set_size(Vec2::new(1000.0, 1100.0));
    h.run();
    h.snapshot("app_demo_baselines");
    h.set_size(Vec2::new(1000.0, 600.0));
    h.run();

    // The layers: real against synthetic t1 side by side in two linked panes (in a window as
    // wide as the app opens).
    h.set_size(Vec2::new(1280.0, 720.0));
    h.run();
    let ids: Vec<String> = h.state().layers.layers.iter().map(|l| l.layer.id.clone()).collect();
    assert_eq!(ids, ["pre", "real", "s1-t0", "s1-t1", "synthetic", "difference", "sam", "dnbr-real", "severity-real", "dnbr-synthetic", "severity-synthetic", "gapfilled", "gapfill-source", "dnbr-gapfilled", "severity-gapfilled"]);
    let id = |i: usize| ids[i].as_str();
    let panes = h.state().layers.panes.clone().expect("side by side to start with");
    assert_eq!(panes.stacks.iter().map(|s| s.iter().map(|i| id(*i)).collect::<Vec<_>>()).collect::<Vec<_>>(), [["real"], ["synthetic"]]);
    assert!(h.state().layers.swipe.is_none());
    h.get_by_label("Side by side");
    let rects = h.state().map.pane_rects.clone();
    assert_eq!(rects.len(), 2, "two panes");
    assert!(rects[0].max.x <= rects[1].min.x && (rects[0].width() - rects[1].width()).abs() < 1.0, "{rects:?}");
    // A drag in the left pane pans both: their centres move together, by the drag.
    let before = h.state().map.pane_centres.clone();
    assert_eq!(before[0], before[1]);
    let start = rects[0].center();
    h.event(Event::PointerMoved(start));
    h.event(Event::PointerButton { pos: start, button: PointerButton::Primary, pressed: true, modifiers: Modifiers::NONE });
    h.run_steps(2);
    for k in 1..=8 {
        h.event(Event::PointerMoved(start + Vec2::new(-10.0 * k as f32, 0.0)));
        h.run_steps(1);
    }
    let end = start + Vec2::new(-80.0, 0.0);
    h.event(Event::PointerButton { pos: end, button: PointerButton::Primary, pressed: false, modifiers: Modifiers::NONE });
    h.run();
    let after = h.state().map.pane_centres.clone();
    assert!(after[0].0 > before[0].0 + 1e-4, "dragging left moves the view east: {before:?} -> {after:?}");
    assert!((after[0].0 - after[1].0).abs() < 1e-12 && (after[0].1 - after[1].1).abs() < 1e-12, "both panes follow: {after:?}");
    // The same in the right pane: the left one follows.
    let start = rects[1].center();
    h.event(Event::PointerMoved(start));
    h.event(Event::PointerButton { pos: start, button: PointerButton::Primary, pressed: true, modifiers: Modifiers::NONE });
    h.run_steps(2);
    for k in 1..=6 {
        h.event(Event::PointerMoved(start + Vec2::new(0.0, 10.0 * k as f32)));
        h.run_steps(1);
    }
    h.event(Event::PointerButton { pos: start + Vec2::new(0.0, 60.0), button: PointerButton::Primary, pressed: false, modifiers: Modifiers::NONE });
    h.run();
    let moved = h.state().map.pane_centres.clone();
    assert!(moved[0].1 > after[0].1 + 1e-4, "dragging down moves the view north: {after:?} -> {moved:?}");
    assert!((moved[0].0 - moved[1].0).abs() < 1e-12 && (moved[0].1 - moved[1].1).abs() < 1e-12, "both panes follow: {moved:?}");
    // A drag from the right pane on over the left one pans by all of its length: the same as a
    // drag of that length inside one pane.
    let drag = |h: &mut Harness<'_, S2crApp>, from: Pos2, by: f32| {
        h.event(Event::PointerMoved(from));
        h.event(Event::PointerButton { pos: from, button: PointerButton::Primary, pressed: true, modifiers: Modifiers::NONE });
        h.run_steps(2);
        for k in 1..=10 {
            h.event(Event::PointerMoved(from + Vec2::new(-by * k as f32 / 10.0, 0.0)));
            h.run_steps(1);
        }
        h.run_steps(3);
        h.event(Event::PointerButton { pos: from + Vec2::new(-by, 0.0), button: PointerButton::Primary, pressed: false, modifiers: Modifiers::NONE });
        h.run();
        h.state().map.pane_centres[0].0
    };
    let x0 = h.state().map.pane_centres[0].0;
    let across = drag(&mut h, Pos2::new(rects[1].left() + 40.0, rects[1].center().y), 160.0) - x0;
    let x1 = h.state().map.pane_centres[0].0;
    let inside = drag(&mut h, Pos2::new(rects[1].right() - 20.0, rects[1].center().y), 160.0) - x1;
    assert!(across > 0.0 && (across - inside).abs() < 0.05 * inside, "a drag across panes pans {across} against {inside} inside one");
    // Back over the scar, the cursor in the left pane: the inspector lists both panes' values
    // at that ground position (the same offset from each pane's centre).
    // (the Home key zooms back to the area).
    let bbox = h.state().editor.aoi().expect("the project's area").bbox();
    h.key_press(egui::Key::Home);
    h.run();
    let c = h.state().map.pane_centres[0];
    assert!((c.0 - (bbox[0] + bbox[2]) / 2.0).abs() < 1e-6 && (c.1 - (bbox[1] + bbox[3]) / 2.0).abs() < 1e-6, "Home centres the area: {c:?} for {bbox:?}");
    let rects = h.state().map.pane_rects.clone();
    h.event(Event::PointerMoved(rects[0].center() + Vec2::new(5.0, 3.0)));
    h.run();
    let inspected = h.state().layers.inspected.clone().expect("the inspector follows the cursor");
    let titles: Vec<&str> = inspected.values.iter().map(|v| v.0.as_str()).collect();
    assert!(titles.len() == 2 && titles[0].starts_with("pane 1: Sentinel-2 t1, real") && titles[1].starts_with("pane 2: Sentinel-2 t1, synthetic"), "{titles:?}");
    let synthetic = &inspected.values[1];
    assert_eq!(synthetic.2, ["B02", "B03", "B04", "B08", "B11", "B12"]);
    // The same position from the right pane gives the same values.
    h.event(Event::PointerMoved(rects[1].center() + Vec2::new(5.0, 3.0)));
    h.run();
    let again = h.state().layers.inspected.clone().unwrap();
    assert!((again.lon - inspected.lon).abs() < 1e-9 && (again.lat - inspected.lat).abs() < 1e-9, "{again:?} vs {inspected:?}");
    assert_eq!(again.values, inspected.values);
    h.snapshot("app_demo_side_by_side");
    // The QA plots beside the map: histograms and the density with R², per band.
    assert!(!h.state().layers.show_qa);
    h.get_by_label("QA plots").click();
    h.run();
    h.get_by_label("QA: synthetic vs real t1");
    let qa = h.state().layers.qa.clone().expect("the demo's QA numbers");
    assert_eq!(qa.qa.bands.iter().map(|b| b.band.as_str()).collect::<Vec<_>>(), ["B02", "B03", "B04", "B08", "B11", "B12"]);
    assert_eq!(qa.qa.density_pixels, "held-out clear pixels");
    let nir = &qa.qa.bands[qa.band];
    assert_eq!(nir.band, "B08");
    assert!(nir.pixels > 1000 && nir.r2.is_finite() && nir.r2 < 1.0, "{} px, R² {}", nir.pixels, nir.r2);
    h.get_by_label_contains("B08 density: R²");
    // (B12 is also a band in the layers' composites: the QA panel's button is under its title.)
    let panel = h.get_by_label("QA: synthetic vs real t1").rect();
    h.get_all_by_label("B12").find(|n| n.rect().center().x > panel.left() - 20.0 && n.rect().center().x < panel.left() + 400.0 && n.rect().top() > panel.top()).unwrap().click();
    h.run();
    assert_eq!(h.state().layers.qa.as_ref().unwrap().band, 5);
    // The difference and the spectral angle on the map, side by side.
    let (diff, sam) = (h.state().layers.find("difference").unwrap(), h.state().layers.find("sam").unwrap());
    h.state_mut().layers.panes.as_mut().unwrap().stacks = vec![vec![diff], vec![sam]];
    h.run();
    assert!(h.state().layers.layers.iter().all(|l| l.error.is_none()), "{:?}", h.state().layers.layers.iter().filter_map(|l| l.error.clone()).collect::<Vec<_>>());
    // The plots take the layers panel's place: at the app's 1280 x 800, two panes keep a
    // usable width (they were slivers of 60 px beside the wizard, the layers and the plots).
    h.set_size(Vec2::new(1280.0, 800.0));
    h.run();
    let widths: Vec<f32> = h.state().map.pane_rects.iter().map(|r| r.width()).collect();
    assert!(widths.len() == 2 && widths.iter().all(|w| *w >= 200.0), "pane widths with the QA plots open: {widths:?}");
    h.snapshot("app_demo_qa");
    h.get_by_label("Back to layers").click();
    h.run();
    assert!(!h.state().layers.show_qa, "closed, the layers are back");
    h.set_size(Vec2::new(1280.0, 720.0));
    h.run();
    h.get_by_label("t1 real | synthetic").click();
    h.run();
    // One click: dNBR real | synthetic, then four panes.
    h.get_by_label("dNBR real | synthetic").click();
    h.run();
    let stacks = h.state().layers.panes.clone().unwrap().stacks;
    assert_eq!(stacks.iter().map(|s| s.iter().map(|i| id(*i)).collect::<Vec<_>>()).collect::<Vec<_>>(), [["dnbr-real"], ["dnbr-synthetic"]]);
    h.get_by_label("4 panes").click();
    h.run();
    assert_eq!(h.state().map.pane_rects.len(), 4);
    let centres = h.state().map.pane_centres.clone();
    assert!(centres.iter().all(|c| *c == centres[0]), "{centres:?}");
    h.snapshot("app_demo_four_panes");
    // The swipe stays as another mode, real against synthetic t1 sharing one stretch.
    h.get_by_label("Swipe").click();
    h.run();
    h.set_size(Vec2::new(1000.0, 600.0));
    h.run();
    let swipe = h.state().layers.swipe.expect("a swipe");
    assert_eq!((id(swipe.left), id(swipe.right)), ("real", "synthetic"));
    assert!(h.state().layers.panes.is_none() && h.state().map.pane_rects.len() == 1);
    let centre = h.state().map.rect.center();
    h.event(Event::PointerMoved(centre));
    h.run();
    let inspected = h.state().layers.inspected.clone().expect("the inspector follows the cursor");
    let titles: Vec<&str> = inspected.values.iter().map(|v| v.0.as_str()).collect();
    assert!(titles.iter().any(|t| t.starts_with("Sentinel-2 t1, synthetic")) && titles.iter().any(|t| t.starts_with("dNBR, synthetic")), "{titles:?}");
    h.get_by_label("Pixel inspector");
    h.get_by_label("Export burned perimeter, real…");
    h.get_by_label("Save view as PNG…");
    h.snapshot("app_demo_compare");
    // One layer alone: the synthetic severity map with its legend on the map and the scale bar;
    // the synthetic t1 below it in the user's own bands.
    {
        let app = h.state_mut();
        app.layers.set_mode(s2cr::gui::layers::Mode::Single);
        for l in &mut app.layers.layers {
            l.visible = l.layer.id == "severity-synthetic" || l.layer.id == "synthetic";
            if l.layer.id == "synthetic" {
                l.composite = s2cr::gui::layers::CUSTOM;
                l.custom = ["B12", "B08", "B04"].map(String::from);
            }
        }
    }
    h.run();
    assert_eq!(h.state().layers.layers.iter().find(|l| l.layer.id == "synthetic").unwrap().composite().bands, ["B12", "B08", "B04"]);
    assert!(h.state().layers.layers.iter().all(|l| l.error.is_none()));
    h.snapshot("app_demo_severity");
    // The view as a PNG: the map's part of the frame, legend and scale bar included.
    let view = tmp.path().join("view.png");
    h.state_mut().layers.view_request = Some(view.clone());
    h.run();
    h.run();
    let map = h.state().map.rect;
    // The outcome is shown in the layers panel.
    let done = h.state().layers.notice.clone().or_else(|| h.state().layers.view_done.lock().unwrap().clone()).unwrap_or_default();
    assert!(done.starts_with("Saved the view"), "{done}");
    // S2CR_KEEP_TEST_OUTPUT=DIR keeps the view there, to look at.
    if let Some(keep) = std::env::var_os("S2CR_KEEP_TEST_OUTPUT") {
        std::fs::copy(&view, Path::new(&keep).join("view.png")).unwrap();
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&view).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let (w, hgt) = (reader.info().width as f32, reader.info().height as f32);
    assert!((w - map.width()).abs() <= 2.0 && (hgt - map.height()).abs() <= 2.0, "{w} x {hgt} for a map of {map:?}");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    // Severity colours are in it (the USGS high-severity purple is in the legend at least).
    let purple = s2cr::indices::severity::SeverityScheme::usgs().color(7);
    assert!(buf.chunks(4).any(|p| (p[0] as i32 - purple[0] as i32).abs() < 6 && (p[1] as i32 - purple[1] as i32).abs() < 6 && (p[2] as i32 - purple[2] as i32).abs() < 6), "no severity colour in the view");
    // The Assess step's classes re-colour the severity layer at once, without running the
    // assessment: BARC4, then higher bounds (less burned, more unburned green).
    let report_json = s2cr::project::Project::open(&dir).unwrap().report_json(&s2cr::project::RunName::new(s2cr::demo::RUN).unwrap());
    let stamp = std::fs::metadata(&report_json).unwrap().modified().unwrap();
    let view_counts = |h: &mut Harness<'_, S2crApp>, colours: &[[u8; 3]]| -> Vec<usize> {
        h.state_mut().layers.view_request = Some(view.clone());
        h.run();
        h.run();
        let mut reader = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&view).unwrap())).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        colours.iter().map(|c| buf.chunks(4).filter(|p| (0..3).all(|k| (p[k] as i32 - c[k] as i32).abs() < 6)).count()).collect()
    };
    let barc = s2cr::indices::severity::SeverityScheme::barc4();
    let (unburned, low) = (barc.classes[0].color, barc.classes[1].color);
    h.state_mut().wizard.settings.assess.severity_classes = barc.clone();
    h.run();
    let layer = h.state().layers.layers.iter().find(|l| l.layer.id == "severity-synthetic").unwrap();
    assert_eq!(layer.layer.scheme.as_ref().map(|s| s.name.as_str()), Some("BARC4"));
    let before = view_counts(&mut h, &[unburned, low, purple]);
    assert!(before[0] > 1000 && before[1] > 200 && before[2] == 0, "BARC4's colours, none of USGS's: {before:?}");
    h.snapshot("app_demo_severity_barc4");
    h.state_mut().wizard.settings.assess.severity_classes = barc.with_bounds(&[200.0, 230.0, 250.0]).unwrap();
    h.run();
    let after = view_counts(&mut h, &[unburned, low, purple]);
    assert!(after[0] > before[0] + 200 && after[1] < before[1], "raised bounds: {before:?} -> {after:?}");
    assert!(h.state().wizard.job.is_none(), "no stage ran");
    assert_eq!(std::fs::metadata(&report_json).unwrap().modified().unwrap(), stamp, "the assessment was not made again");
    h.state_mut().wizard.settings.assess.severity_classes = s2cr::indices::severity::SeverityScheme::usgs();
    h.run();
    // The gap-filled image's sources as a class map with its legend (the demo has no
    // composite: real t1 where clear, synthetic elsewhere).
    {
        let app = h.state_mut();
        for l in &mut app.layers.layers {
            l.visible = l.layer.id == "gapfill-source";
        }
    }
    h.run();
    assert!(h.state().layers.layers.iter().all(|l| l.error.is_none()), "{:?}", h.state().layers.layers.iter().filter_map(|l| l.error.clone()).collect::<Vec<_>>());
    h.snapshot("app_demo_gapfill_source");
    h.get_by_label("Scenes").click();
    h.run();
    h.get_by_label("2018-11-04 SIMULATED");
    h.get_by_label("Simulated data in this search:");
    h.get_by_label("t1: 1 acquisition(s) in the window; no composite (project.yaml `composite:`)");
}

/// The WGSL stretch, read back from its texture, against the CPU reference on a real chip
/// (SEN12MS-CR, true colour, with a block of invalid pixels), for several stretches and gammas:
/// within one level of 255 everywhere, transparent where the data is not valid.
#[test]
fn the_stretch_shader_matches_the_cpu_reference() {
    use eframe::egui_wgpu::wgpu;
    use s2cr::layers::{Channels, Stretch, StretchKind, stretch_value};
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = match s2cr::gui::stretch_gpu::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions { force_fallback_adapter: false, ..Default::default() })) {
        Ok(a) => a,
        Err(e) => {
            // CI installs Mesa's software adapter (lavapipe): missing there, this fails.
            crate::missing_tool(&format!("a wgpu adapter (Mesa's lavapipe: mesa-vulkan-drivers): {e}"));
            return;
        }
    };
    println!("adapter: {:?}", adapter.get_info().name);
    let (device, queue) = s2cr::gui::stretch_gpu::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).expect("a device from the adapter");

    let chip = crate::shared_data().join("s1s2-sen12mscr/s2_cloudfree/ROIs1970_fall_139_p839.tif");
    let s = s2cr::raster::read_window(&chip.display().to_string(), &[4, 3, 2], None).unwrap();
    let (w, h) = (s.width, s.height);
    let mut valid = s.valid.clone();
    for y in 100..140 {
        for x in 30..90 {
            valid[y * w + x] = false;
        }
    }
    let values = [0, 1, 2].map(|b| s.bands[b].iter().map(|v| v / 10_000.0).collect::<Vec<f32>>());
    let ch = Channels { width: w, height: h, values, valid: valid.clone(), geo_transform: s.geo_transform, crs_wkt: s.crs_wkt.clone() };
    let renderer = s2cr::gui::stretch_gpu::StretchRenderer::new(&device, wgpu::TextureFormat::Rgba8Unorm);
    let layer = renderer.upload(&device, &queue, &ch);
    for (kind, gamma) in [(StretchKind::Percentile(2.0, 98.0), 1.0), (StretchKind::MinMax, 1.0), (StretchKind::Percentile(2.0, 98.0), 2.2), (StretchKind::Percentile(1.0, 99.0), 0.6)] {
        let stretch: Stretch = ch.stretch(kind, gamma);
        let gpu = renderer.render_to_rgba(&device, &queue, &layer, &stretch).unwrap();
        let mut worst = 0;
        for i in 0..w * h {
            if !valid[i] {
                assert_eq!(gpu[i * 4 + 3], 0, "pixel {i} is not valid: transparent");
                continue;
            }
            assert_eq!(gpu[i * 4 + 3], 255);
            for c in 0..3 {
                let cpu = stretch_value(ch.values[c][i], stretch.low[c], stretch.high[c], gamma) as i32;
                worst = worst.max((gpu[i * 4 + c] as i32 - cpu).abs());
            }
        }
        println!("{kind:?}, gamma {gamma}: largest difference {worst} level(s)");
        assert!(worst <= 1, "{kind:?} gamma {gamma}: {worst} levels from the CPU reference");
    }
}

/// The app creates projects through the same checks as `s2cr init` (`Project::init`): the area
/// limit set in the form is enforced, and nothing is written when a check fails.
#[test]
fn the_new_project_form_checks_like_init() {
    let tmp = tempfile::tempdir().unwrap();
    let mut app = S2crApp::new(None);
    app.import_aoi(&Path::new(env!("CARGO_MANIFEST_DIR")).join("confs/kangaroo-island-west.geojson"));
    app.form.folder = tmp.path().join("ki").display().to_string();
    app.form.max_area_km2 = 1.0;
    app.create_project();
    match &app.notice {
        Some(s2cr::gui::Notice::Failed(e)) => assert!(s2cr::error_chain(e.as_ref()).contains("over the limit of 1 km2"), "{}", s2cr::error_chain(e.as_ref())),
        _ => panic!("an area over the form's limit is refused"),
    }
    assert!(!tmp.path().join("ki/project.yaml").exists(), "nothing is written when a check fails");
    app.form.max_area_km2 = s2cr::aoi::DEFAULT_MAX_AREA_KM2;
    app.form.t1 = "2019-12-01/2020-02-28".into();
    app.create_project();
    match &app.notice {
        Some(s2cr::gui::Notice::Failed(e)) => assert!(s2cr::error_chain(e.as_ref()).contains("must start after t0"), "{}", s2cr::error_chain(e.as_ref())),
        _ => panic!("dates out of order are refused"),
    }
    app.form.t1 = "2020-01-15/2020-02-28".into();
    // A local catalog needs its file, as `init --provider local --catalog` does.
    app.form.provider = s2cr::project::Provider::Local;
    app.create_project();
    match &app.notice {
        Some(s2cr::gui::Notice::Failed(e)) => {
            let text = s2cr::error_chain(e.as_ref());
            assert!(text.contains("catalog") && !text.contains("--"), "names the form's field, not a flag: {text}");
        }
        _ => panic!("a local provider without a catalog is refused"),
    }
    app.form.provider = s2cr::project::Provider::EarthSearch;
    app.create_project();
    app.wait_for_background();
    assert!(tmp.path().join("ki/project.yaml").is_file());
    assert!(app.project().is_some(), "the new project is open");
    // The form shows the limit and the pixel size (a window tall enough to show the whole form).
    let mut h = harness(S2crApp::new(None), [1000.0, 1400.0]);
    h.run();
    h.get_by_label_contains("Largest area");
    h.get_by_label_contains("Pixel size");
    h.state_mut().form.provider = s2cr::project::Provider::Local;
    h.run();
    h.get_by_label("Catalog");
}

/// Opening a project is background work: the frame that asks for it returns at once, later
/// frames show it when it has been read (stage states hash the project's files).
#[test]
fn a_project_opens_in_the_background_while_frames_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let project = crate::dataset::project_with_preprocessed(tmp.path());
    let mut h = harness(S2crApp::new(None), [1000.0, 700.0]);
    h.run();
    h.state_mut().open_project(project.root());
    assert!(h.state().project().is_none(), "nothing is read on the UI thread");
    step_until(&mut h, "the project to open", Duration::from_secs(60), |app| app.project().is_some());
    h.run();
    assert_eq!(h.state().project().map(|p| p.root().to_path_buf()), Some(project.root().to_path_buf()));
    h.get_by_label_contains(&project.config.name);
}
