//! Pairing Sentinel-1 scenes with Sentinel-2 dates: for each S2 date, the S1 scenes closest in
//! time within a maximum gap, with VV and VH, preferring one relative orbit and pass direction
//! for t0 and t1 so both radar images see the ground from the same geometry.

use serde::{Deserialize, Serialize};

use super::Scene;

/// A chosen Sentinel-1 scene for a Sentinel-2 scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub s2_id: String,
    pub s1_id: String,
    /// S1 time minus S2 time, hours.
    pub gap_hours: f64,
    pub relative_orbit: Option<u32>,
    pub orbit_state: Option<String>,
}

/// Why an S2 scene got no partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unpaired {
    pub s2_id: String,
    pub reason: String,
}

fn has_dual_pol(s: &Scene) -> bool {
    s.assets.contains_key("VV") && s.assets.contains_key("VH")
}

/// The closest dual-polarisation S1 scene to `s2` within `max_gap_hours`, optionally restricted
/// to one (relative orbit, pass direction).
fn closest<'a>(s2: &Scene, s1: &'a [Scene], max_gap_hours: f64, geometry: Option<(Option<u32>, Option<&str>)>) -> Option<&'a Scene> {
    s1.iter()
        .filter(|s| has_dual_pol(s))
        .filter(|s| match geometry {
            None => true,
            Some((orbit, state)) => s.relative_orbit == orbit && s.orbit_state.as_deref() == state,
        })
        .map(|s| (s, (s.datetime - s2.datetime).num_seconds().abs() as f64 / 3600.0))
        .filter(|(_, gap)| *gap <= max_gap_hours)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(s, _)| s)
}

/// Pairs the t0 and t1 Sentinel-2 scenes with Sentinel-1 scenes. A geometry (relative orbit and
/// pass direction) available for both dates within the gap is preferred; otherwise each date
/// takes its closest scene and the result says the geometries differ.
pub fn pair_scenes(s2_t0: &Scene, s2_t1: &Scene, s1: &[Scene], max_gap_hours: f64) -> (Vec<Pair>, Vec<Unpaired>) {
    let make = |s2: &Scene, s: &Scene| Pair {
        s2_id: s2.id.clone(),
        s1_id: s.id.clone(),
        gap_hours: (s.datetime - s2.datetime).num_seconds() as f64 / 3600.0,
        relative_orbit: s.relative_orbit,
        orbit_state: s.orbit_state.clone(),
    };
    // Geometries seen near both dates, best (smallest summed gap) first.
    let mut shared: Vec<(f64, &Scene, &Scene)> = Vec::new();
    for a in s1.iter().filter(|s| has_dual_pol(s)) {
        let geometry = Some((a.relative_orbit, a.orbit_state.as_deref()));
        if let (Some(x), Some(y)) = (closest(s2_t0, s1, max_gap_hours, geometry), closest(s2_t1, s1, max_gap_hours, geometry)) {
            let gap = (x.datetime - s2_t0.datetime).num_seconds().abs() + (y.datetime - s2_t1.datetime).num_seconds().abs();
            shared.push((gap as f64, x, y));
        }
    }
    shared.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((_, x, y)) = shared.first() {
        return (vec![make(s2_t0, x), make(s2_t1, y)], vec![]);
    }
    let mut pairs = Vec::new();
    let mut unpaired = Vec::new();
    for s2 in [s2_t0, s2_t1] {
        match closest(s2, s1, max_gap_hours, None) {
            Some(s) => pairs.push(make(s2, s)),
            None => unpaired.push(Unpaired {
                s2_id: s2.id.clone(),
                reason: format!("no Sentinel-1 scene with VV and VH within {max_gap_hours} h"),
            }),
        }
    }
    (pairs, unpaired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Mission;
    use chrono::{TimeZone, Utc};
    use std::collections::BTreeMap;

    fn scene(id: &str, mission: Mission, day: u32, hour: u32, orbit: u32, state: &str, pols: &[&str]) -> Scene {
        Scene {
            id: id.into(),
            collection: "c".into(),
            mission,
            datetime: Utc.with_ymd_and_hms(2020, 1, day, hour, 0, 0).unwrap(),
            platform: None,
            cloud_cover: None,
            bbox: None,
            assets: pols.iter().map(|p| (p.to_string(), format!("http://x/{id}/{p}.tif"))).collect::<BTreeMap<_, _>>(),
            relative_orbit: Some(orbit),
            orbit_state: Some(state.into()),
            processing_baseline: None,
            boa_offset_applied: None,
            mgrs_tile: None,
            aoi_cloud_percent: None,
            aoi_coverage_percent: None,
            simulated: None,
        }
    }

    #[test]
    fn same_geometry_is_preferred_over_the_closest() {
        let t0 = scene("s2a", Mission::Sentinel2, 5, 1, 0, "", &[]);
        let t1 = scene("s2b", Mission::Sentinel2, 20, 1, 0, "", &[]);
        let s1 = vec![
            scene("asc-t0", Mission::Sentinel1, 6, 9, 45, "ascending", &["VV", "VH"]),
            scene("desc-t0-close", Mission::Sentinel1, 5, 2, 118, "descending", &["VV", "VH"]),
            scene("asc-t1", Mission::Sentinel1, 18, 9, 45, "ascending", &["VV", "VH"]),
            scene("hh-only", Mission::Sentinel1, 20, 2, 118, "descending", &["HH"]),
        ];
        let (pairs, unpaired) = pair_scenes(&t0, &t1, &s1, 72.0);
        assert!(unpaired.is_empty());
        assert_eq!(pairs.iter().map(|p| p.s1_id.as_str()).collect::<Vec<_>>(), ["asc-t0", "asc-t1"]);
        assert_eq!(pairs[1].gap_hours, -40.0);
    }

    #[test]
    fn a_date_without_radar_in_the_gap_is_reported() {
        let t0 = scene("s2a", Mission::Sentinel2, 5, 1, 0, "", &[]);
        let t1 = scene("s2b", Mission::Sentinel2, 25, 1, 0, "", &[]);
        let s1 = vec![scene("near-t0", Mission::Sentinel1, 6, 1, 45, "ascending", &["VV", "VH"])];
        let (pairs, unpaired) = pair_scenes(&t0, &t1, &s1, 48.0);
        assert_eq!(pairs.len(), 1);
        assert_eq!(unpaired[0].s2_id, "s2b");
        assert!(unpaired[0].reason.contains("within 48 h"));
    }
}
