//! The area of interest: import from GeoJSON or WKT, export to both, validation with messages a
//! user can act on, and its target grid (the UTM choice itself is `grid`'s).
//!
//! Coordinates are WGS84 longitude/latitude (RFC 7946). This module reads and checks geometry; it
//! imports only the leaves (`error`, `fsutil`, `grid`) and does not touch rasters or projects.

use std::path::Path;

use geo::orient::{Direction, Orient};
use geo::{Area, BoundingRect, Centroid, GeodesicArea, Validation};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use geojson::{GeoJson, GeometryValue};

use crate::error::{Error, Result};
use crate::grid::{TargetGrid, utm_epsg};

/// One ring as given: a list of (lon, lat) positions, first equal to last when closed.
type RawRing = Vec<[f64; 2]>;
/// Exterior ring followed by holes.
type RawPolygon = Vec<RawRing>;

/// Default largest area accepted, in km2. A 10,000 km2 AOI is already ~100 million 10 m pixels
/// per band; larger areas belong in several projects.
pub const DEFAULT_MAX_AREA_KM2: f64 = 10_000.0;

/// Limits an AOI must respect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AoiLimits {
    pub max_area_km2: f64,
}

impl Default for AoiLimits {
    fn default() -> Self {
        AoiLimits { max_area_km2: DEFAULT_MAX_AREA_KM2 }
    }
}

/// Input formats the AOI can be read from and written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AoiFormat {
    GeoJson,
    /// One WKT POLYGON or MULTIPOLYGON per line, as the research code's `convert_geojson` wrote.
    Wkt,
}

impl AoiFormat {
    /// The format a file name implies: `.geojson`/`.json` or `.wkt`/`.txt`.
    pub fn from_path(path: &Path) -> Option<AoiFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "geojson" | "json" => Some(AoiFormat::GeoJson),
            "wkt" | "txt" => Some(AoiFormat::Wkt),
            _ => None,
        }
    }
}

/// An area of interest: one or more polygons in WGS84.
#[derive(Debug, Clone, PartialEq)]
pub struct Aoi {
    /// Where it came from (file name), used in messages.
    pub source_name: String,
    polygons: Vec<RawPolygon>,
}

/// Facts about a valid AOI, for `s2cr aoi info` and the GUI.
#[derive(Debug, Clone, PartialEq)]
pub struct AoiSummary {
    pub polygons: usize,
    pub vertices: usize,
    pub area_km2: f64,
    /// [min lon, min lat, max lon, max lat]
    pub bbox: [f64; 4],
    pub centroid: [f64; 2],
    pub utm_epsg: u32,
}

impl Aoi {
    /// Reads a GeoJSON or WKT file (by extension, else by content) and validates it.
    pub fn load(path: &Path, limits: &AoiLimits) -> Result<Aoi> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path, "reading the AOI file"))?;
        let name = path.display().to_string();
        let format = AoiFormat::from_path(path).unwrap_or(if text.trim_start().starts_with('{') {
            AoiFormat::GeoJson
        } else {
            AoiFormat::Wkt
        });
        let aoi = match format {
            AoiFormat::GeoJson => Aoi::parse_geojson(&text, &name)?,
            AoiFormat::Wkt => Aoi::parse_wkt(&text, &name)?,
        };
        aoi.validate(limits)?;
        Ok(aoi)
    }

    /// Parses a GeoJSON Feature, FeatureCollection, Polygon or MultiPolygon. Every polygon found
    /// becomes part of the AOI. Does not validate: call [`Aoi::validate`].
    pub fn parse_geojson(text: &str, source_name: &str) -> Result<Aoi> {
        let bad = |message: String| Error::GeoJson { source_name: source_name.to_string(), message };
        let geojson: GeoJson = text.parse().map_err(|e: geojson::Error| bad(e.to_string()))?;
        let mut geometries = Vec::new();
        match geojson {
            GeoJson::Geometry(g) => geometries.push((None, g.value)),
            GeoJson::Feature(f) => match f.geometry {
                Some(g) => geometries.push((None, g.value)),
                None => return Err(bad("the Feature has no geometry".into())),
            },
            GeoJson::FeatureCollection(fc) => {
                for (i, f) in fc.features.into_iter().enumerate() {
                    match f.geometry {
                        Some(g) => geometries.push((Some(i), g.value)),
                        None => return Err(bad(format!("feature {i} has no geometry"))),
                    }
                }
            }
        }
        let mut polygons = Vec::new();
        for (feature, value) in geometries {
            let at = feature.map(|i| format!("feature {i}: ")).unwrap_or_default();
            match value {
                GeometryValue::Polygon { coordinates } => polygons.push(positions_to_raw(&coordinates)),
                GeometryValue::MultiPolygon { coordinates } => {
                    polygons.extend(coordinates.iter().map(|p| positions_to_raw(p)))
                }
                other => {
                    return Err(bad(format!(
                        "{at}a {} is not an area; draw a Polygon or MultiPolygon",
                        other.type_name()
                    )));
                }
            }
        }
        if polygons.is_empty() {
            return Err(bad("no polygon found (the FeatureCollection is empty)".into()));
        }
        Ok(Aoi { source_name: source_name.to_string(), polygons })
    }

    /// Parses WKT: one POLYGON or MULTIPOLYGON per non-empty line (the research code's format),
    /// or a single geometry spread over several lines. Does not validate.
    pub fn parse_wkt(text: &str, source_name: &str) -> Result<Aoi> {
        let bad = |message: String| Error::Wkt { source_name: source_name.to_string(), message };
        let lines: Vec<(usize, &str)> =
            text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty()).collect();
        if lines.is_empty() {
            return Err(bad("the file is empty".into()));
        }
        // One geometry per line, unless the first line alone does not parse (a geometry written
        // over several lines).
        let chunks: Vec<(usize, String)> = if lines[0].1.parse::<wkt::Wkt<f64>>().is_ok() {
            lines.iter().map(|(n, l)| (*n, l.to_string())).collect()
        } else {
            vec![(lines[0].0, lines.iter().map(|(_, l)| *l).collect::<Vec<_>>().join(" "))]
        };
        let mut polygons = Vec::new();
        for (line, chunk) in chunks {
            let parsed: wkt::Wkt<f64> =
                chunk.parse().map_err(|e: &str| bad(format!("line {line}: {e}")))?;
            match parsed {
                wkt::Wkt::Polygon(p) => polygons.push(wkt_polygon_to_raw(&p)),
                wkt::Wkt::MultiPolygon(mp) => polygons.extend(mp.polygons().iter().map(wkt_polygon_to_raw)),
                other => {
                    let kind = format!("{other:?}").split('(').next().unwrap_or("geometry").to_string();
                    return Err(bad(format!("line {line}: a {kind} is not an area; give a POLYGON or MULTIPOLYGON")));
                }
            }
        }
        Ok(Aoi { source_name: source_name.to_string(), polygons })
    }

    /// Checks everything a pipeline needs of an AOI and returns every problem found, each with
    /// what to do about it.
    pub fn validate(&self, limits: &AoiLimits) -> Result<()> {
        let problems = self.problems(limits);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidAoi { source_name: self.source_name.clone(), problems })
        }
    }

    fn problems(&self, limits: &AoiLimits) -> Vec<String> {
        let mut problems = Vec::new();
        let multi = self.polygons.len() > 1;
        for (pi, polygon) in self.polygons.iter().enumerate() {
            let at = if multi { format!("polygon {}: ", pi + 1) } else { String::new() };
            if polygon.is_empty() {
                problems.push(format!("{at}has no rings"));
                continue;
            }
            for (ri, ring) in polygon.iter().enumerate() {
                let ring_name = if ri == 0 { "exterior ring".to_string() } else { format!("hole {ri}") };
                if let Some((vi, p)) = ring.iter().enumerate().find(|(_, p)| !p[0].is_finite() || !p[1].is_finite()) {
                    problems.push(format!("{at}{ring_name}: vertex {} is not a number ({:?})", vi + 1, p));
                    continue;
                }
                if let Some((vi, p)) = ring
                    .iter()
                    .enumerate()
                    .find(|(_, p)| !(-180.0..=180.0).contains(&p[0]) || !(-90.0..=90.0).contains(&p[1]))
                {
                    problems.push(format!(
                        "{at}{ring_name}: vertex {} ({}, {}) is outside WGS84 longitude -180..180 / latitude -90..90; \
                         coordinates must be lon/lat in degrees (EPSG:4326), not projected metres or lat/lon order",
                        vi + 1,
                        p[0],
                        p[1]
                    ));
                    continue;
                }
                if ring.len() < 4 {
                    problems.push(format!(
                        "{at}{ring_name}: has {} positions; a closed ring needs at least 4 (3 corners plus the first repeated)",
                        ring.len()
                    ));
                    continue;
                }
                if ring.first() != ring.last() {
                    problems.push(format!(
                        "{at}{ring_name}: is not closed: its last position {:?} must repeat its first {:?}",
                        ring[ring.len() - 1],
                        ring[0]
                    ));
                }
                // A ring whose corners lie on one line encloses nothing (and geo's validation of
                // a multipolygon with one panics).
                let o = ring[0];
                let flat = ring.windows(2).all(|w| (w[0][0] - o[0]) * (w[1][1] - o[1]) == (w[1][0] - o[0]) * (w[0][1] - o[1]));
                if flat {
                    problems.push(format!("{at}{ring_name}: encloses no area (its corners lie on one line or on each other); draw at least three corners apart"));
                    continue;
                }
                if let Some(w) = ring.windows(2).find(|w| (w[1][0] - w[0][0]).abs() > 180.0) {
                    problems.push(format!(
                        "{at}{ring_name}: crosses the antimeridian (an edge goes from longitude {} to {}); \
                         areas across 180 degrees are not supported because they span two UTM zones: \
                         make one project on each side, or split the polygon at 180 degrees (RFC 7946 section 3.1.9) \
                         and keep one side",
                        w[0][0], w[1][0]
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return problems;
        }
        let geometry = self.geometry();
        // geo's validation panics on some invalid geometries: such a panic is a problem found.
        let checked = |check: &dyn Fn() -> Vec<String>| -> Vec<String> {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(check))
                .unwrap_or_else(|_| vec!["its geometry is invalid (edges or rings touch or overlap in a way that cannot be checked)".into()])
        };
        for (pi, polygon) in geometry.0.iter().enumerate() {
            let at = if multi { format!("polygon {}: ", pi + 1) } else { String::new() };
            for e in checked(&|| polygon.validation_errors().iter().map(|e| e.to_string()).collect()) {
                problems.push(format!("{at}{e}; redraw it so that its edges do not cross or touch"));
            }
        }
        if problems.is_empty() && multi {
            for e in checked(&|| geometry.validation_errors().iter().map(|e| e.to_string()).collect()) {
                problems.push(format!("{e}; merge overlapping polygons into one"));
            }
        }
        if !problems.is_empty() {
            return problems;
        }
        let bbox = self.bbox();
        if bbox[2] - bbox[0] > 180.0 {
            problems.push(
                "its polygons lie on both sides of the antimeridian; a project covers one UTM zone: \
                 make one project for each side"
                    .into(),
            );
        }
        if geometry.unsigned_area() == 0.0 {
            problems.push("has no area (all vertices lie on a line or a point); draw at least three distinct corners".into());
        } else {
            let area = self.area_km2();
            if area > limits.max_area_km2 {
                problems.push(format!(
                    "its area is {area:.0} km2, over the limit of {:.0} km2; draw a smaller area or raise the limit \
                     (Largest area in the app, --max-area-km2 on the command line)",
                    limits.max_area_km2
                ));
            }
        }
        problems
    }

    /// The AOI as a geo MultiPolygon, rings closed and oriented as RFC 7946 asks (exterior
    /// counter-clockwise, holes clockwise) whatever the input's orientation. An AOI not yet
    /// validated may hold coordinates that are not numbers: it is given as it is then (geo's
    /// orientation would panic on them).
    pub fn geometry(&self) -> MultiPolygon<f64> {
        let as_given = self.geometry_as_given();
        let finite = self.polygons.iter().flatten().flatten().all(|p| p[0].is_finite() && p[1].is_finite());
        if finite { as_given.orient(Direction::Default) } else { as_given }
    }

    fn geometry_as_given(&self) -> MultiPolygon<f64> {
        MultiPolygon(
            self.polygons
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let ring = |r: &RawRing| LineString::from(r.iter().map(|c| Coord { x: c[0], y: c[1] }).collect::<Vec<_>>());
                    Polygon::new(ring(&p[0]), p[1..].iter().map(ring).collect())
                })
                .collect(),
        )
    }

    /// The polygons as given (outer ring first, then holes), each ring a list of [lon, lat]
    /// ending where it starts: what the map draws and edits.
    pub fn rings(&self) -> Vec<Vec<Vec<[f64; 2]>>> {
        self.polygons.iter().filter(|p| !p.is_empty()).cloned().collect()
    }

    /// The polygons with RFC 7946 ring orientation, as coordinate lists.
    fn oriented_raw(&self) -> Vec<RawPolygon> {
        let ring = |l: &LineString<f64>| l.coords().map(|c| [c.x, c.y]).collect::<RawRing>();
        self.geometry()
            .0
            .iter()
            .map(|p| std::iter::once(ring(p.exterior())).chain(p.interiors().iter().map(ring)).collect())
            .collect()
    }

    /// Geodesic area on the WGS84 ellipsoid, in km2.
    pub fn area_km2(&self) -> f64 {
        self.geometry().geodesic_area_unsigned() / 1.0e6
    }

    /// [min lon, min lat, max lon, max lat].
    pub fn bbox(&self) -> [f64; 4] {
        match self.geometry().bounding_rect() {
            Some(r) => [r.min().x, r.min().y, r.max().x, r.max().y],
            None => [0.0; 4],
        }
    }

    /// Centroid (lon, lat), computed in degrees; good enough to pick a UTM zone.
    pub fn centroid(&self) -> [f64; 2] {
        match self.geometry().centroid() {
            Some(c) => [c.x(), c.y()],
            None => {
                let b = self.bbox();
                [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]
            }
        }
    }

    pub fn summary(&self) -> AoiSummary {
        let c = self.centroid();
        AoiSummary {
            polygons: self.polygons.len(),
            vertices: self.polygons.iter().flatten().map(|r| r.len().saturating_sub(1)).sum(),
            area_km2: self.area_km2(),
            bbox: self.bbox(),
            centroid: c,
            utm_epsg: utm_epsg(c[0], c[1]),
        }
    }

    /// The AOI as a GeoJSON FeatureCollection with one feature (a Polygon, or a MultiPolygon when
    /// there are several parts).
    pub fn to_geojson(&self) -> String {
        let polygons = self.oriented_raw();
        let to_positions = |p: &RawPolygon| -> Vec<Vec<geojson::Position>> {
            p.iter().map(|r| r.iter().map(|c| geojson::Position::from(vec![c[0], c[1]])).collect()).collect()
        };
        let value = if polygons.len() == 1 {
            GeometryValue::Polygon { coordinates: to_positions(&polygons[0]) }
        } else {
            GeometryValue::MultiPolygon { coordinates: polygons.iter().map(to_positions).collect() }
        };
        let feature = geojson::Feature::from(geojson::Geometry::new(value));
        let fc = geojson::FeatureCollection { bbox: None, features: vec![feature], foreign_members: None };
        let mut text = serde_json::to_string_pretty(&fc).unwrap_or_else(|_| fc.to_string());
        text.push('\n');
        text
    }

    /// One WKT POLYGON per line, the research code's `zone_wkt.txt` format.
    pub fn to_wkt_lines(&self) -> String {
        let mut out = String::new();
        for polygon in &self.oriented_raw() {
            let rings: Vec<String> = polygon
                .iter()
                .map(|r| {
                    let coords: Vec<String> = r.iter().map(|c| format!("{} {}", c[0], c[1])).collect();
                    format!("({})", coords.join(", "))
                })
                .collect();
            out.push_str(&format!("POLYGON ({})\n", rings.join(", ")));
        }
        out
    }

    /// Writes the AOI in the format its extension names (see [`AoiFormat::from_path`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        let format = AoiFormat::from_path(path).ok_or_else(|| {
            Error::invalid(
                path.display().to_string(),
                "unknown output format: name the file .geojson/.json for GeoJSON or .wkt/.txt for WKT",
            )
        })?;
        let text = match format {
            AoiFormat::GeoJson => self.to_geojson(),
            AoiFormat::Wkt => self.to_wkt_lines(),
        };
        crate::fsutil::write_atomic(path, text.as_bytes())
    }

    /// The project's target grid: the UTM zone of the AOI centroid, `pixel_size_m` pixels, bounds
    /// snapped outward to multiples of 60 m (see [`TargetGrid::utm_for`]).
    pub fn target_grid(&self, pixel_size_m: f64) -> Result<TargetGrid> {
        TargetGrid::utm_for(self.bbox(), self.centroid(), pixel_size_m)
    }
}

fn positions_to_raw(polygon: &[Vec<geojson::Position>]) -> RawPolygon {
    polygon
        .iter()
        .map(|ring| {
            ring.iter()
                .map(|p| [p.as_slice().first().copied().unwrap_or(f64::NAN), p.as_slice().get(1).copied().unwrap_or(f64::NAN)])
                .collect()
        })
        .collect()
}

fn wkt_polygon_to_raw(polygon: &wkt::types::Polygon<f64>) -> RawPolygon {
    polygon.rings().iter().map(|r| r.coords().iter().map(|c| [c.x, c.y]).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUARE: &str = r#"{"type":"Polygon","coordinates":[[[136.6,-35.9],[136.7,-35.9],[136.7,-35.8],[136.6,-35.8],[136.6,-35.9]]]}"#;

    fn problems_of(text: &str) -> Vec<String> {
        match Aoi::parse_geojson(text, "t.geojson").unwrap().validate(&AoiLimits::default()) {
            Err(Error::InvalidAoi { problems, .. }) => problems,
            other => panic!("expected InvalidAoi, got {other:?}"),
        }
    }

    /// Found by fuzzing (fuzz/fuzz_targets/aoi.rs): a position with one number read as NaN made
    /// geo's orientation panic when the unvalidated AOI was written out.
    #[test]
    fn a_position_without_latitude_is_reported_and_never_panics() {
        let text = r#"{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[119.175139,33.490467],[119.198309936],[119.175139,34.490467]]]}}"#;
        let aoi = Aoi::parse_geojson(text, "t.geojson").unwrap();
        assert!(aoi.to_geojson().contains("119.198309936"));
        let _ = aoi.to_wkt_lines();
        let _ = aoi.summary();
        let problems = problems_of(text);
        assert!(problems.iter().any(|p| p.contains("vertex 2 is not a number")), "{problems:?}");
    }

    /// Found by fuzzing: a ring whose corners lie on one line, with a hole, made geo's validation
    /// of the multipolygon panic ("topology position conflict").
    #[test]
    fn a_ring_without_area_is_reported_and_never_panics() {
        let text = "POLYGON ((136.62 -35.93, 136.75 -35.93, 136.76 -35.84, 136.62 -35.84, 136.62 -35.93))\n\
                    MULTIPOLYGON (((0 0, 1 1, 5 5, 0 0), (0.2 0.2, 0.4 0.2, 0.4 0.4, 0.2 0.2)))\n";
        let aoi = Aoi::parse_wkt(text, "t.wkt").unwrap();
        let err = aoi.validate(&AoiLimits::default()).unwrap_err().to_string();
        assert!(err.contains("polygon 2: exterior ring: encloses no area"), "{err}");
    }

    #[test]
    fn a_square_is_valid_and_its_geodesic_area_is_right() {
        let aoi = Aoi::parse_geojson(SQUARE, "t").unwrap();
        aoi.validate(&AoiLimits::default()).unwrap();
        // 0.1 deg lon x 0.1 deg lat at 35.85 S: 9.03 km x 11.09 km ~ 100.2 km2.
        let area = aoi.area_km2();
        assert!((area - 100.2).abs() < 0.5, "{area}");
        assert_eq!(aoi.summary().utm_epsg, 32753);
    }

    #[test]
    fn feature_and_collection_forms_are_accepted() {
        let feature = format!(r#"{{"type":"Feature","properties":{{}},"geometry":{SQUARE}}}"#);
        let fc = format!(r#"{{"type":"FeatureCollection","features":[{feature}]}}"#);
        assert_eq!(Aoi::parse_geojson(&feature, "t").unwrap(), Aoi::parse_geojson(&fc, "t").unwrap());
    }

    #[test]
    fn a_point_is_refused_with_its_type() {
        let err = Aoi::parse_geojson(r#"{"type":"Point","coordinates":[1,2]}"#, "p.geojson").unwrap_err();
        assert!(err.to_string().contains("a Point is not an area"), "{err}");
    }

    #[test]
    fn unclosed_ring_is_named() {
        let p = problems_of(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}"#);
        assert!(p[0].contains("is not closed"), "{p:?}");
    }

    #[test]
    fn bow_tie_is_self_intersecting() {
        let p = problems_of(r#"{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}"#);
        assert!(p.iter().any(|m| m.contains("self-intersection")), "{p:?}");
    }

    #[test]
    fn projected_coordinates_are_explained() {
        let p = problems_of(r#"{"type":"Polygon","coordinates":[[[500000,6000000],[500100,6000000],[500100,6000100],[500000,6000000]]]}"#);
        assert!(p[0].contains("outside WGS84"), "{p:?}");
    }

    #[test]
    fn antimeridian_crossing_is_refused_with_advice() {
        let p = problems_of(r#"{"type":"Polygon","coordinates":[[[179.5,-17],[-179.5,-17],[-179.5,-16],[179.5,-16],[179.5,-17]]]}"#);
        assert!(p[0].contains("antimeridian"), "{p:?}");
    }

    #[test]
    fn degenerate_polygon_has_no_area() {
        let p = problems_of(r#"{"type":"Polygon","coordinates":[[[0,0],[1,1],[2,2],[0,0]]]}"#);
        assert!(p.iter().any(|m| m.contains("no area") || m.contains("self-intersection")), "{p:?}");
    }

    #[test]
    fn area_limit_is_enforced() {
        let aoi = Aoi::parse_geojson(SQUARE, "t").unwrap();
        let err = aoi.validate(&AoiLimits { max_area_km2: 50.0 }).unwrap_err().to_string();
        assert!(err.contains("over the limit of 50 km2"), "{err}");
    }

    #[test]
    fn wkt_round_trip_keeps_the_polygons() {
        let aoi = Aoi::parse_geojson(SQUARE, "t").unwrap();
        let wkt = aoi.to_wkt_lines();
        assert!(wkt.starts_with("POLYGON ((136.6 -35.9, 136.7 -35.9"), "{wkt}");
        let back = Aoi::parse_wkt(&wkt, "t").unwrap();
        assert_eq!(back.polygons, aoi.polygons);
        let again = Aoi::parse_geojson(&back.to_geojson(), "t").unwrap();
        assert_eq!(again.polygons, aoi.polygons);
    }

    #[test]
    fn multi_line_wkt_and_multipolygons() {
        let text = "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)),\n ((2 2, 3 2, 3 3, 2 2)))\n";
        let aoi = Aoi::parse_wkt(text, "t").unwrap();
        assert_eq!(aoi.polygons.len(), 2);
        let err = Aoi::parse_wkt("LINESTRING (0 0, 1 1)", "l.wkt").unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("not an area"), "{err}");
    }

    #[test]
    fn target_grid_is_aligned_and_covers_the_aoi() {
        let aoi = Aoi::parse_geojson(SQUARE, "t").unwrap();
        let grid = aoi.target_grid(10.0).unwrap();
        assert_eq!(grid.epsg, 32753);
        assert_eq!(grid.x_min % 60.0, 0.0);
        assert_eq!(grid.y_max % 60.0, 0.0);
        // ~9.0 km x ~11.1 km plus snapping.
        assert!((900..=940).contains(&grid.width), "{grid:?}");
        assert!((1105..=1135).contains(&grid.height), "{grid:?}");
        assert!(aoi.target_grid(7.0).is_err());
    }
}
