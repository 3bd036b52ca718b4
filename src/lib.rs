//! sent2-cloud-remover: synthesize a cloud-free Sentinel-2 image from Sentinel-1 radar and an
//! earlier Sentinel-2 with a pix2pix-style conditional GAN, and judge it by the burned-area map
//! (dNBR) it yields.
//!
//! The pipeline is a chain of stages over files in a project folder (see `project`). Each stage is
//! a plain function taking the project, its configuration and a [`job::Progress`]; the CLI
//! (`cli`) and the desktop app (`gui`) call the same functions and hold no pipeline logic.
//! ARCHITECTURE.md at the repository root maps the modules.

// Burn only: the networks, their training step and the model benchmark (`s2cr-model-bench`).
pub mod error;
pub mod fsutil;
pub mod job;
pub mod indices;
pub mod model;
pub mod provenance;
pub(crate) mod simd;
pub mod tools;

/// Declares modules that exist only with the `gdal` feature.
macro_rules! with_gdal {
    ($($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "gdal")]
            pub mod $name;
        )*
    };
}

// The pipeline: everything that reads or writes rasters through GDAL.
with_gdal!(aoi, assess, catalog, clean, cli, dataset, demo, doctor, fetch, grid, layers, pipeline, preprocess, project, raster);

#[cfg(feature = "gui")]
pub mod gui;

pub use error::{Error, Result};

/// An error and all its causes on one line, outermost first.
/// URLs in it lose their query strings and user information (see [`error::redact`]).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // thiserror variants often print their source already; do not repeat it. Parser errors
        // are often shown without their " at line N column M" tail (the variant says where).
        let head = cause_text.split(" at line ").next().unwrap_or(&cause_text);
        if !text.contains(&cause_text) && !text.contains(head) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    error::redact(&text)
}
