//! project.yaml text: parsing and validation never panic, and a config that parses is written
//! back as YAML that parses to the same config (what `s2cr init` and the app save).
#![no_main]
use libfuzzer_sys::fuzz_target;
use s2cr::project::ProjectConfig;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = ProjectConfig::parse(text, Path::new("project.yaml")) else { return };
    assert!(config.grid.check().is_ok(), "{:?}", config.grid);
    let written = serde_norway::to_string(&config).expect("a parsed config serializes");
    let again = ProjectConfig::parse(&written, Path::new("project.yaml")).unwrap_or_else(|e| panic!("written back, it does not parse: {e}\n{written}"));
    assert_eq!(again, config, "{written}");
});
