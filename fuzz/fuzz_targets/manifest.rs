//! The JSON files a project keeps (stage manifests, the search result, the assessment report):
//! reading them never panics, and a manifest is compared with an empty project without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use s2cr::project::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let root = std::env::temp_dir().join("s2cr-fuzz-empty-project");
        let _ = std::fs::create_dir_all(&root);
        let _ = m.state(&root, Some(&serde_json::Value::Null));
    }
    let _ = serde_json::from_slice::<s2cr::catalog::stage::SearchResult>(data);
    let _ = serde_json::from_slice::<s2cr::assess::AssessReport>(data);
    let _ = serde_json::from_slice::<s2cr::dataset::DatasetSummary>(data);
});
