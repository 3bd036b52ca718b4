//! An AOI as GeoJSON or WKT text -> validation -> the project's target grid: no panic, and a
//! valid AOI gives a grid the program accepts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use s2cr::aoi::{Aoi, AoiLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for parsed in [Aoi::parse_geojson(text, "fuzz.geojson"), Aoi::parse_wkt(text, "fuzz.wkt")] {
        let Ok(aoi) = parsed else { continue };
        let _ = aoi.to_geojson();
        let _ = aoi.to_wkt_lines();
        if aoi.validate(&AoiLimits::default()).is_err() {
            continue;
        }
        let _ = aoi.summary();
        if let Ok(grid) = aoi.target_grid(10.0) {
            assert!(grid.check().is_ok(), "a valid AOI gave a grid the program refuses: {grid:?}");
        }
    }
});
