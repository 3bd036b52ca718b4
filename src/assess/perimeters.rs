//! The burned maps' perimeters: the burned pixels of a severity map, cleaned when asked (a 3 x 3
//! majority filter, a minimum mapping unit, small unburned holes filled), drawn as polygons
//! (GeoJSON, WGS84), each with its area per severity class, and the totals in the report.
//!
//! Cleaning changes the polygons and their areas only: kappa, F1 and IoU stay on the pixel maps.
//! Drawing holds the grid in memory (the severity codes, the burned mask and a 4-byte label a
//! pixel: about 6 bytes a pixel).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::indices::severity::SeverityScheme;
use crate::raster;

/// `perimeter_cleaning:` of the assessment's settings. All off (the default) draws the burned
/// pixels as classified.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerimeterCleaning {
    /// A 3 x 3 majority filter of the burned map first (speckle out, ragged edges smoothed).
    pub majority: bool,
    /// The minimum mapping unit: burned patches smaller than this many hectares are dropped.
    pub min_area_ha: f64,
    /// Unburned holes inside the burned area smaller than this many hectares are filled.
    pub fill_holes_ha: f64,
}

impl PerimeterCleaning {
    pub fn is_off(&self) -> bool {
        !self.majority && self.min_area_ha <= 0.0 && self.fill_holes_ha <= 0.0
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, v) in [("min_area_ha", self.min_area_ha), ("fill_holes_ha", self.fill_holes_ha)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("perimeter_cleaning.{name} is hectares, 0 or more (got {v})"));
            }
        }
        Ok(())
    }
}

/// One polygon's areas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolygonAreas {
    pub id: u32,
    pub area_ha: f64,
    /// Hectares of each severity class inside it, in the scheme's order.
    pub class_ha: Vec<f64>,
}

/// A map's perimeters, in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Perimeters {
    /// `real` or `synthetic`.
    pub map: String,
    pub polygons: usize,
    pub area_ha: f64,
    /// Hectares of each severity class inside the polygons, in total: (class, ha).
    pub class_ha: Vec<(String, f64)>,
    /// The largest polygons (up to [`LARGEST`]), by area.
    pub largest: Vec<PolygonAreas>,
}

/// The polygons the report lists one by one.
pub const LARGEST: usize = 20;

/// The GeoJSON's field for a class's hectares (`ha_moderate_low_severity`).
pub fn class_field(name: &str) -> String {
    let slug: String = name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("ha_{}", slug.split('_').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("_"))
}

/// A 3 x 3 majority: a pixel is burned when more than half of its neighbourhood (itself
/// included; fewer pixels at the grid's edge) is.
pub fn majority_3x3(mask: &[bool], width: usize) -> Vec<bool> {
    let w = width.max(1);
    let h = mask.len() / w;
    let mut out = vec![false; mask.len()];
    for y in 0..h {
        for x in 0..w {
            let (mut on, mut n) = (0, 0);
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    n += 1;
                    on += mask[yy * w + xx] as usize;
                }
            }
            out[y * w + x] = 2 * on > n;
        }
    }
    out
}

/// The 4-connected components of the pixels equal to `of`: a label a pixel (0 for the others,
/// from 1 in raster order of each component's first pixel) and each label's pixel count
/// (`sizes[0]` unused).
pub fn components(mask: &[bool], width: usize, of: bool) -> (Vec<u32>, Vec<u64>) {
    let w = width.max(1);
    let mut labels = vec![0u32; mask.len()];
    let mut sizes = vec![0u64];
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if mask[start] != of || labels[start] != 0 {
            continue;
        }
        let label = sizes.len() as u32;
        sizes.push(0);
        labels[start] = label;
        stack.push(start);
        while let Some(i) = stack.pop() {
            sizes[label as usize] += 1;
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if mask[j] == of && labels[j] == 0 {
                    labels[j] = label;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if i + w < mask.len() {
                visit(i + w);
            }
        }
    }
    (labels, sizes)
}

/// Cleans a burned mask in place: the majority filter, then burned patches under the minimum
/// mapping unit dropped, then unburned holes under `fill_holes_ha` filled (a region that touches
/// the grid's edge is no hole).
pub fn clean(mask: &mut Vec<bool>, width: usize, cfg: &PerimeterCleaning, pixel_area_m2: f64) {
    if cfg.majority {
        *mask = majority_3x3(mask, width);
    }
    let pixels = |ha: f64| ha * 10_000.0 / pixel_area_m2.max(f64::MIN_POSITIVE);
    if cfg.min_area_ha > 0.0 {
        let (labels, sizes) = components(mask, width, true);
        let small = pixels(cfg.min_area_ha);
        for (m, l) in mask.iter_mut().zip(&labels) {
            if *l != 0 && (sizes[*l as usize] as f64) < small {
                *m = false;
            }
        }
    }
    if cfg.fill_holes_ha > 0.0 {
        let (labels, sizes) = components(mask, width, false);
        let w = width.max(1);
        let h = mask.len() / w;
        let mut edge = vec![false; sizes.len()];
        for x in 0..w {
            edge[labels[x] as usize] = true;
            edge[labels[(h.max(1) - 1) * w + x] as usize] = true;
        }
        for y in 0..h {
            edge[labels[y * w] as usize] = true;
            edge[labels[y * w + w - 1] as usize] = true;
        }
        let small = pixels(cfg.fill_holes_ha);
        for (m, l) in mask.iter_mut().zip(&labels) {
            if *l != 0 && !edge[*l as usize] && (sizes[*l as usize] as f64) < small {
                *m = true;
            }
        }
    }
}

/// Draws the perimeters of the severity map `severity` (a class raster the assessment wrote)
/// into `out` (GeoJSON): its burned pixels, cleaned as `cleaning` says, one polygon per
/// 4-connected patch with its area per class.
#[allow(clippy::too_many_arguments)]
pub fn draw(severity: &Path, out: &Path, map: &str, classes: &SeverityScheme, cleaning: &PerimeterCleaning, pixel_area_m2: f64, tags: &raster::Tags) -> Result<Perimeters> {
    let loc = severity.display().to_string();
    let info = raster::info(&loc)?;
    let stack = raster::read_window(&loc, &[1], None)?;
    let codes: Vec<u8> = stack.bands[0].iter().zip(&stack.valid).map(|(v, ok)| if *ok && v.is_finite() { *v as u8 } else { 0 }).collect();
    drop(stack);
    let width = info.width;
    let burned = classes.burned_codes();
    let mut mask: Vec<bool> = codes.iter().map(|c| burned.contains(*c)).collect();
    cleaning.validate().map_err(|m| Error::invalid("perimeter_cleaning", m))?;
    if !cleaning.is_off() {
        clean(&mut mask, width, cleaning, pixel_area_m2);
    }
    let (labels, sizes) = components(&mask, width, true);
    drop(mask);
    let ha = pixel_area_m2 / 10_000.0;
    // Per polygon, pixels per class in the scheme's order (a code it lacks counts in none).
    let mut index = [usize::MAX; 256];
    for (i, c) in classes.classes.iter().enumerate() {
        index[c.code as usize] = i;
    }
    let k = classes.classes.len();
    let mut counts = vec![0u64; k * sizes.len()];
    for (l, c) in labels.iter().zip(&codes) {
        if *l != 0 && index[*c as usize] != usize::MAX {
            counts[*l as usize * k + index[*c as usize]] += 1;
        }
    }
    drop(codes);
    let polygons: Vec<PolygonAreas> = (1..sizes.len())
        .map(|l| PolygonAreas { id: l as u32, area_ha: sizes[l] as f64 * ha, class_ha: counts[l * k..(l + 1) * k].iter().map(|n| *n as f64 * ha).collect() })
        .collect();
    let fields: Vec<String> = classes.classes.iter().map(|c| class_field(&c.name)).collect();
    let field_refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    raster::polygonize_labels(out, &labels, width, info.height, info.geo_transform, &info.crs_wkt, &format!("burned_{map}"), &format!("{}. {}", tags.attribution, tags.provenance), &field_refs, &|id| {
        polygons.get((id as usize).wrapping_sub(1)).map(|p| std::iter::once(p.area_ha).chain(p.class_ha.iter().copied()).collect()).unwrap_or_default()
    })?;
    let mut largest = polygons.clone();
    largest.sort_by(|a, b| b.area_ha.total_cmp(&a.area_ha).then(a.id.cmp(&b.id)));
    largest.truncate(LARGEST);
    Ok(Perimeters {
        map: map.to_string(),
        polygons: polygons.len(),
        area_ha: polygons.iter().map(|p| p.area_ha).sum(),
        class_ha: classes.classes.iter().enumerate().map(|(i, c)| (c.name.clone(), polygons.iter().map(|p| p.class_ha[i]).sum())).collect(),
        largest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&str]) -> (Vec<bool>, usize) {
        (rows.iter().flat_map(|r| r.chars().map(|c| c == '#')).collect(), rows[0].len())
    }

    fn show(mask: &[bool], w: usize) -> Vec<String> {
        mask.chunks(w).map(|r| r.iter().map(|b| if *b { '#' } else { '.' }).collect()).collect()
    }

    /// Two 4-connected patches (a diagonal touch does not join them), counted by size.
    #[test]
    fn components_are_four_connected() {
        let (m, w) = grid(&["##..", "##..", "..#.", "...#"]);
        let (labels, sizes) = components(&m, w, true);
        assert_eq!(sizes[1..], [4, 1, 1]);
        assert_eq!((labels[0], labels[10], labels[15], labels[2]), (1, 2, 3, 0));
        let (_, holes) = components(&m, w, false);
        assert_eq!(holes[1..].iter().sum::<u64>(), 10);
    }

    /// The majority takes the lone pixel out and fills the lone gap; off changes nothing.
    #[test]
    fn majority_minimum_unit_and_holes_by_hand() {
        let (mut m, w) = grid(&["......", ".####.", ".#.##.", ".####.", "......", "....#."]);
        let before = m.clone();
        clean(&mut m, w, &PerimeterCleaning::default(), 100.0);
        assert_eq!(m, before, "off: as classified");
        // Minimum mapping unit 2 pixels (0.02 ha at 10 m): the lone pixel goes, the ring stays
        // with its hole; then holes under 2 pixels are filled.
        clean(&mut m, w, &PerimeterCleaning { min_area_ha: 0.02, ..Default::default() }, 100.0);
        assert_eq!(show(&m, w), ["......", ".####.", ".#.##.", ".####.", "......", "......"]);
        clean(&mut m, w, &PerimeterCleaning { fill_holes_ha: 0.02, ..Default::default() }, 100.0);
        assert_eq!(show(&m, w), ["......", ".####.", ".####.", ".####.", "......", "......"]);
        // The unburned land around touches the edge: never a hole, whatever its size.
        clean(&mut m, w, &PerimeterCleaning { fill_holes_ha: 100.0, ..Default::default() }, 100.0);
        assert_eq!(m.iter().filter(|b| **b).count(), 12);
        let (m, w) = grid(&["#..", ".##", "##."]);
        assert_eq!(show(&majority_3x3(&m, w), w), ["...", "##.", "###"].map(String::from), "corners: 2 of 4 stays out, 3 of 4 comes in; centre: 5 of 9");
        assert!(PerimeterCleaning { min_area_ha: -1.0, ..Default::default() }.validate().unwrap_err().contains("min_area_ha"));
        assert_eq!(class_field("Moderate-low severity"), "ha_moderate_low_severity");
    }
}
