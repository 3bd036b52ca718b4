//! What the report's figures and page share: the embedded font, figure errors, PNG writing
//! and HTML escaping (the report and the field plots' section both draw with them).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

/// DejaVu Sans (Bitstream Vera licence, see assets/fonts/DejaVu-LICENSE.txt), so figures render
/// the same on every machine without system fonts.
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
pub(crate) const FONT_NAME: &str = "sans-serif";

pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FONT_NAME, FontStyle::Normal, FONT).is_err() {
            tracing::warn!("the embedded font could not be loaded; figure text may be missing");
        }
    });
}

pub(crate) fn plot_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Raster { location: path.display().to_string(), message: format!("drawing the figure: {e}") }
}

/// Encodes an RGB buffer as PNG, atomically.
pub(crate) fn save_png(path: &Path, w: usize, h: usize, rgb: &[u8]) -> Result<()> {
    crate::raster::write_png(path, w, h, rgb, 3)
}

/// Text for HTML and XML: &, <, > and " escaped.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
