//! Training previews: the label and the generator's output for one patch, side by side as a
//! true-colour PNG (B04, B03, B02 when the outputs have them, else the first three channels),
//! both stretched with the label's 2-98 % range so they compare directly. Written atomically
//! to `runs/<run>/preview.png` every `preview_every` steps; the desktop app shows it.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Output channel indices to show as red, green, blue.
pub fn rgb_channels(names: &[String]) -> [usize; 3] {
    let find = |band: &str| names.iter().position(|n| n.rsplit(':').next() == Some(band));
    match (find("B04"), find("B03"), find("B02")) {
        (Some(r), Some(g), Some(b)) => [r, g, b],
        _ => {
            let last = names.len().saturating_sub(1);
            [0, 1.min(last), 2.min(last)]
        }
    }
}

/// Writes `real | synthetic` for planes `[channels][size * size]` (channel-major).
pub fn write_preview(path: &Path, real: &[f32], synthetic: &[f32], channels: usize, size: usize, rgb: [usize; 3]) -> Result<()> {
    let plane = size * size;
    if channels == 0 || real.len() < channels * plane || synthetic.len() < channels * plane {
        return Err(Error::invalid("preview", format!("{} and {} values for {channels} channels of {size} x {size}", real.len(), synthetic.len())));
    }
    let gap = 4usize;
    let width = 2 * size + gap;
    let mut rgba = vec![0u8; width * size * 4];
    for px in rgba.chunks_exact_mut(4) {
        px.copy_from_slice(&[255, 255, 255, 255]);
    }
    for (k, &c) in rgb.iter().enumerate() {
        let band = &real[c * plane..(c + 1) * plane];
        let mut sorted: Vec<f32> = band.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f32::total_cmp);
        let (lo, hi) = match sorted.len() {
            0 => (0.0, 1.0),
            n => (sorted[n * 2 / 100], sorted[(n * 98 / 100).min(n - 1)]),
        };
        let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
        for (offset, source) in [(0usize, band), (size + gap, &synthetic[c * plane..(c + 1) * plane])] {
            for y in 0..size {
                for x in 0..size {
                    let v = source[y * size + x];
                    let byte = if v.is_finite() { ((v - lo) * scale).clamp(0.0, 255.0) as u8 } else { 0 };
                    rgba[((y * width) + offset + x) * 4 + k] = byte;
                }
            }
        }
    }
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width as u32, size as u32);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| Error::invalid("preview", e.to_string()))?;
        writer.write_image_data(&rgba).map_err(|e| Error::invalid("preview", e.to_string()))?;
    }
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_colour_channels_are_found_by_band() {
        let names: Vec<String> = ["S2_t1:B02", "S2_t1:B03", "S2_t1:B04", "S2_t1:B08"].iter().map(|s| s.to_string()).collect();
        assert_eq!(rgb_channels(&names), [2, 1, 0]);
        assert_eq!(rgb_channels(&["S2_t1:B08".to_string(), "S2_t1:B11".to_string()]), [0, 1, 1]);
    }

    #[test]
    fn the_preview_is_a_png_of_both_patches() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("preview.png");
        let real: Vec<f32> = (0..3 * 16).map(|i| (i % 16) as f32 / 16.0).collect();
        let fake: Vec<f32> = real.iter().map(|v| 1.0 - v).collect();
        write_preview(&path, &real, &fake, 3, 4, [0, 1, 2]).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (12, 4));
    }
}
