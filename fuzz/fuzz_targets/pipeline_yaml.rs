//! pipeline.yaml text: parsing, the stage list and the checks of inline model and training
//! settings never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use s2cr::pipeline::PipelineSettings;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(settings) = PipelineSettings::parse(text, Path::new("pipeline.yaml")) else { return };
    let _ = settings.selected_stages();
    if let Some(model) = &settings.model {
        let _ = model.check("pipeline.yaml");
    }
    if let Some(train) = &settings.train {
        let _ = train.check("pipeline.yaml");
    }
});
