//! The desktop app window, rendered headless with egui_kittest.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use s2cr::gui::S2crApp;

#[test]
fn the_window_shows_the_app_name_and_no_project() {
    let mut harness = Harness::builder().with_size([900.0, 500.0]).build_ui_state(|ui, app: &mut S2crApp| app.ui_contents(ui), S2crApp::new(None));
    harness.run();
    harness.get_by_label("sent2-cloud-remover");
    harness.get_by_label("No project open");
}

#[test]
fn a_broken_project_is_shown_not_crashed_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut harness = Harness::new_ui_state(|ui, app: &mut S2crApp| app.ui_contents(ui), S2crApp::new(Some(tmp.path().to_path_buf())));
    harness.run();
    harness.get_by_label("Project: could not be opened");
}

#[test]
fn snapshot_of_the_window_without_a_project() {
    let mut harness = Harness::builder()
        .with_size([900.0, 400.0])
        .wgpu()
        .build_ui_state(|ui, app: &mut S2crApp| app.ui_contents(ui), S2crApp::new(None));
    harness.run();
    harness.snapshot("app_without_project");
}
