//! PNG files: plain 8-bit images (report figures, previews) and RGBA images placed on the map by
//! a world file and the CRS in `.aux.xml`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::ensure_parent;

/// Writes RGBA pixels as a PNG that GIS software places on the map: a world file (`.pgw`) for
/// the position and an `.aux.xml` with the CRS beside it (as GDAL reads them). Each file is
/// written atomically; the PNG last.
pub fn write_rgba_png(path: &Path, width: usize, height: usize, rgba: &[u8], gt: [f64; 6], crs_wkt: &str, copyright: Option<&str>) -> Result<()> {
    let loc = path.display().to_string();
    if rgba.len() != width * height * 4 {
        return Err(Error::Raster { location: loc, message: "RGBA size does not match width x height".into() });
    }
    ensure_parent(path)?;
    // World file: pixel sizes and rotations, then the centre of the top-left pixel.
    let world = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n",
        gt[1],
        gt[4],
        gt[2],
        gt[5],
        gt[0] + gt[1] / 2.0 + gt[2] / 2.0,
        gt[3] + gt[4] / 2.0 + gt[5] / 2.0
    );
    crate::fsutil::write_atomic(&path.with_extension("pgw"), world.as_bytes())?;
    let esc = crs_wkt.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let aux = PathBuf::from(format!("{}.aux.xml", path.display()));
    let metadata = copyright
        .map(|c| format!("  <Metadata>\n    <MDI key=\"TIFFTAG_COPYRIGHT\">{}</MDI>\n  </Metadata>\n", c.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")))
        .unwrap_or_default();
    crate::fsutil::write_atomic(&aux, format!("<PAMDataset>\n  <SRS>{esc}</SRS>\n{metadata}</PAMDataset>\n").as_bytes())?;
    write_png_with_text(path, width, height, rgba, 4, copyright.map(|c| ("Copyright", c)))
}

/// Writes 8-bit pixels (`channels` 3: RGB, 4: RGBA, row-major) as a PNG, atomically.
pub fn write_png(path: &Path, width: usize, height: usize, pixels: &[u8], channels: usize) -> Result<()> {
    write_png_with_text(path, width, height, pixels, channels, None)
}

/// [`write_png`] with a text chunk (keyword, text), such as the data's attribution.
pub fn write_png_with_text(path: &Path, width: usize, height: usize, pixels: &[u8], channels: usize, text: Option<(&str, &str)>) -> Result<()> {
    let err = |message: String| Error::Raster { location: path.display().to_string(), message };
    let color = match channels {
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        n => return Err(err(format!("{n} channels: a PNG here is RGB or RGBA"))),
    };
    if width == 0 || height == 0 || pixels.len() != width * height * channels {
        return Err(err(format!("{} bytes do not make a {width} x {height} image of {channels} channels", pixels.len())));
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, width as u32, height as u32);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        if let Some((keyword, value)) = text {
            enc.add_text_chunk(keyword.to_string(), value.to_string()).map_err(|e| err(format!("encoding PNG: {e}")))?;
        }
        let mut writer = enc.write_header().map_err(|e| err(format!("encoding PNG: {e}")))?;
        writer.write_image_data(pixels).map_err(|e| err(format!("encoding PNG: {e}")))?;
    }
    ensure_parent(path)?;
    crate::fsutil::write_atomic(path, &bytes)
}
