//! The AOI being drawn on the map: an ordered ring of lon/lat vertices, open while the user adds
//! points and closed when they finish it, with live area and validation from `crate::aoi` (the
//! same checks as `s2cr aoi validate`). No drawing here: the map plugin turns clicks into calls.

use crate::aoi::{Aoi, AoiLimits};

/// What errors call the polygon drawn on the map.
const SOURCE_NAME: &str = "the drawn area";

/// The polygon under edit.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AoiEditor {
    /// Vertices as [lon, lat], without repeating the first at the end.
    pub vertices: Vec<[f64; 2]>,
    /// Finished: the ring is closed and no click adds vertices.
    pub closed: bool,
    /// Other polygons of an imported MultiPolygon, kept as they were (shown, not edited).
    pub other_rings: Vec<Vec<[f64; 2]>>,
}

impl AoiEditor {
    /// Adds a vertex at the end of the open ring; ignored once closed.
    pub fn add(&mut self, lon_lat: [f64; 2]) {
        if !self.closed {
            self.vertices.push(lon_lat);
        }
    }

    pub fn move_vertex(&mut self, index: usize, lon_lat: [f64; 2]) {
        if let Some(v) = self.vertices.get_mut(index) {
            *v = lon_lat;
        }
    }

    /// Removes a vertex; a closed ring left with fewer than 3 reopens.
    pub fn delete(&mut self, index: usize) {
        if index < self.vertices.len() {
            self.vertices.remove(index);
        }
        if self.vertices.len() < 3 {
            self.closed = false;
        }
    }

    /// Closes the ring when it has at least 3 vertices; returns whether it is closed.
    pub fn close(&mut self) -> bool {
        if self.vertices.len() >= 3 {
            self.closed = true;
        }
        self.closed
    }

    pub fn clear(&mut self) {
        *self = AoiEditor::default();
    }

    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty() && self.other_rings.is_empty()
    }

    /// The closed ring as GeoJSON-style positions (first vertex repeated at the end).
    pub fn ring(&self) -> Vec<[f64; 2]> {
        let mut r = self.vertices.clone();
        if let Some(first) = r.first().copied() {
            r.push(first);
        }
        r
    }

    /// The AOI this polygon describes (not validated), or why there is none yet.
    pub fn aoi(&self) -> crate::Result<Aoi> {
        if self.vertices.len() < 3 && self.other_rings.is_empty() {
            let problem = format!("{} of at least 3 vertices placed; click on the map to add more", self.vertices.len());
            return Err(crate::Error::InvalidAoi { source_name: SOURCE_NAME.into(), problems: vec![problem] });
        }
        let mut rings: Vec<Vec<[f64; 2]>> = self.other_rings.iter().map(|r| closed(r)).collect();
        if self.vertices.len() >= 3 {
            rings.insert(0, self.ring());
        }
        let coords: Vec<String> = rings
            .iter()
            .map(|r| format!("[[{}]]", r.iter().map(|c| format!("[{},{}]", c[0], c[1])).collect::<Vec<_>>().join(",")))
            .collect();
        let text = format!(r#"{{"type":"MultiPolygon","coordinates":[{}]}}"#, coords.join(","));
        Aoi::parse_geojson(&text, SOURCE_NAME)
    }

    /// Area in km2 and the validation problems (empty when the AOI is usable).
    pub fn check(&self, limits: &AoiLimits) -> (Option<f64>, Vec<String>) {
        match self.aoi() {
            Err(crate::error::Error::InvalidAoi { problems, .. }) => (None, problems),
            Err(e) => (None, vec![crate::error_chain(&e)]),
            Ok(aoi) => {
                let problems = match aoi.validate(limits) {
                    Ok(()) => Vec::new(),
                    Err(crate::error::Error::InvalidAoi { problems, .. }) => problems,
                    Err(e) => vec![crate::error_chain(&e)],
                };
                (Some(aoi.area_km2()), problems)
            }
        }
    }

    /// An editor holding an AOI read from a file: its first polygon's outer ring becomes
    /// editable, the other polygons are kept; holes are dropped (said in the returned note).
    pub fn from_aoi(aoi: &Aoi) -> (AoiEditor, Option<String>) {
        let mut polygons = aoi.rings().into_iter();
        let mut editor = AoiEditor::default();
        let mut holes = 0;
        if let Some(first) = polygons.next() {
            holes += first.len().saturating_sub(1);
            editor.vertices = open(&first[0]);
            editor.closed = editor.vertices.len() >= 3;
        }
        for p in polygons {
            holes += p.len().saturating_sub(1);
            editor.other_rings.push(open(&p[0]));
        }
        let note = (holes > 0).then(|| format!("{holes} hole(s) of the imported polygons were dropped; the map edits outer rings only"));
        (editor, note)
    }
}

fn open(ring: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut r = ring.to_vec();
    if r.len() > 1 && r.first() == r.last() {
        r.pop();
    }
    r
}

fn closed(ring: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut r = ring.to_vec();
    if let Some(first) = r.first().copied() {
        r.push(first);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_closing_and_deleting() {
        let mut e = AoiEditor::default();
        assert!(e.aoi().unwrap_err().to_string().contains("0 of at least 3"));
        for v in [[137.0, -35.8], [137.1, -35.8], [137.1, -35.7]] {
            e.add(v);
        }
        assert!(e.close());
        e.add([0.0, 0.0]);
        assert_eq!(e.vertices.len(), 3, "a closed ring takes no more clicks");
        let (area, problems) = e.check(&AoiLimits::default());
        assert!(problems.is_empty(), "{problems:?}");
        // Half of a 0.1 x 0.1 degree cell at 35.75 S: 0.5 x 9.06 km x 11.1 km ~ 50 km2.
        let area = area.unwrap();
        assert!((area - 50.3).abs() < 1.0, "{area}");
        e.delete(1);
        assert!(!e.closed, "two vertices cannot stay closed");
    }

    #[test]
    fn a_self_intersecting_ring_is_reported() {
        let mut e = AoiEditor::default();
        for v in [[10.0, 45.0], [10.1, 45.1], [10.1, 45.0], [10.0, 45.1]] {
            e.add(v);
        }
        e.close();
        let (_, problems) = e.check(&AoiLimits::default());
        assert!(problems.iter().any(|p| p.contains("intersect")), "{problems:?}");
    }

    #[test]
    fn an_imported_aoi_round_trips() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/confs/kangaroo-island-west.geojson")).unwrap();
        let aoi = Aoi::parse_geojson(&text, "ki").unwrap();
        let (e, note) = AoiEditor::from_aoi(&aoi);
        assert!(note.is_none());
        assert!(e.closed);
        let back = e.aoi().unwrap();
        assert!((back.area_km2() - aoi.area_km2()).abs() < 1e-6 * aoi.area_km2());
    }
}
