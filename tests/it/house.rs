//! The house rules that `make test` checks with scripts (import circles, links), tested on trees
//! made here so that the checks themselves are known to fail when they should.

use std::path::Path;
use std::process::Command;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn module_graph(root: &Path, files: bool) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/module-graph.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg("--quiet").arg("--root").arg(root);
    if files {
        cmd.arg("--files");
    }
    let out = cmd.output().expect("python3 runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn the_module_graph_finds_circles_between_rooms_and_between_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    write(src, "lib.rs", "pub mod a;\npub mod b;\n");
    // Two rooms that import each other: a circle at the top level.
    write(src, "a/mod.rs", "mod x;\nmod y;\npub use x::X;\npub fn helper() {}\n");
    write(src, "a/x.rs", "use super::y::Y;\npub struct X(Y);\npub fn h() { super::helper() }\n");
    write(src, "a/y.rs", "pub struct Y;\npub fn f() -> crate::b::B { crate::b::B }\n");
    write(src, "b.rs", "pub struct B;\npub fn g() -> crate::a::X { todo!() }\n");
    let (ok, out) = module_graph(src, false);
    assert!(!ok && out.contains("a <-> b"), "{out}");
    // Without it, a file using its room's front (x calls `super::helper`) makes no circle.
    write(src, "b.rs", "pub struct B;\n");
    let (ok, out) = module_graph(src, true);
    assert!(ok, "{out}");
    // Two files of a room that import each other do.
    write(src, "a/y.rs", "pub struct Y;\npub fn f() -> super::x::X { todo!() }\n");
    let (ok, out) = module_graph(src, false);
    assert!(ok, "{out}");
    let (ok, out) = module_graph(src, true);
    assert!(!ok && out.contains("a::x <-> a::y"), "{out}");
}

#[test]
fn the_repository_has_no_import_circle_and_no_broken_link() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for files in [false, true] {
        let (ok, out) = module_graph(&root.join("src"), files);
        assert!(ok, "{out}");
    }
    let out = Command::new("python3").arg(root.join("scripts/check-links.py")).current_dir(root).output().expect("python3 runs");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_link_check_reports_broken_links_and_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "README.md", "# Top\n\nSee [the guide](docs/guide.md#set-up), [gone](docs/none.md) and [here](#top).\n");
    write(root, "docs/guide.md", "# Guide\n\n## Set-up\n\nBack to [the start](../README.md#nowhere).\n");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-links.py");
    let out = Command::new("python3").arg(&script).arg(root.join("README.md")).arg(root.join("docs/guide.md")).output().expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("docs/none.md") && text.contains("#nowhere"), "{text}");
    assert!(!text.contains("#top"), "a good anchor reported: {text}");
}
