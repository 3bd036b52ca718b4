//! Rebuilds the embedded demo's catalog (`assets/demo/`) from SEN12MS-CR, for maintainers
//! (`s2cr build-demo-assets`, a hidden command); `s2cr demo` itself only unpacks the result
//! ([`crate::demo`]).
//!
//! The builder cuts one real SEN12MS-CR patch (Jiangsu, China) into single-band COGs, adds a
//! **simulated** burn scar to the post-fire scenes ([`burn_severity`], [`S2_BURN_FACTORS`],
//! [`S1_BURN_DB`]), described by [`simulation_note`] in those items (`s2cr:simulated`), and
//! writes cloud classes that are not ESA's Scene Classification but simple thresholds on the
//! real top-of-atmosphere reflectance ([`cloud_class`]), then the STAC items, collections,
//! catalog and AOI. `assets/demo/README.md` says all of this for people reading the files.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::demo::{ATTRIBUTION, CATALOG_AOI_FILE, CATALOG_FILE, PLOTS_FILE, S1_COLLECTION, S2_COLLECTION};
use crate::error::{Error, Result};
use crate::raster::{self, BandStack, ClassRaster, WriteOptions};

/// The SEN12MS-CR patch the embedded demo is cut from (Jiangsu, China; WGS84 / UTM 50N).
pub const SOURCE_PATCH: &str = "ROIs1970_fall_139_p839";

/// Where the SEN12MS-CR patches of `shared/data/s1s2-sen12mscr` lie (the files do not say).
const KNOWN_PLACES: [(&str, &str); 2] = [("ROIs1970_fall_139_p839", "Jiangsu, China"), ("ROIs2017_winter_112_p797", "Belgium")];

/// A SEN12MS-CR patch to cut a demo catalog from: its file name without `.tif`
/// (`ROIs1970_fall_139_p839`), which also gives the season of its scenes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    name: String,
}

impl Patch {
    /// Refuses a name that is not a SEN12MS-CR patch's (`ROIs<n>_<season>_<n>_p<n>`).
    pub fn new(name: &str) -> Result<Patch> {
        let parts: Vec<&str> = name.split('_').collect();
        let ok = parts.len() == 4
            && parts[0].starts_with("ROIs")
            && ["spring", "summer", "fall", "winter"].contains(&parts[1])
            && parts[3].strip_prefix('p').is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(Error::invalid("--patch", format!("{name:?} is not a SEN12MS-CR patch name (ROIs<n>_<season>_<n>_p<n>, as the files in s2_cloudfree/ are named without .tif)")));
        }
        Ok(Patch { name: name.to_string() })
    }

    /// The embedded demo's patch.
    pub fn demo() -> Patch {
        Patch { name: SOURCE_PATCH.to_string() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `p839`: what the item ids carry.
    fn short(&self) -> &str {
        self.name.rsplit('_').next().unwrap_or(&self.name)
    }

    /// The season of the patch's scenes, as its name gives it (SEN12MS-CR's data are of 2018).
    fn season(&self) -> &str {
        match self.name.split('_').nth(1) {
            Some("fall") => "autumn",
            Some(s) => s,
            None => "",
        }
    }

    /// Where it lies, for the AOI's name ("SEN12MS-CR" where the list does not know it).
    fn place(&self) -> &str {
        KNOWN_PLACES.iter().find(|(n, _)| *n == self.name).map(|(_, p)| *p).unwrap_or("SEN12MS-CR")
    }

    /// An item's id: `sen12mscr-p839-s2-cloudfree` for `what` = `s2-cloudfree`.
    pub fn item_id(&self, what: &str) -> String {
        format!("sen12mscr-{}-{what}", self.short())
    }
}

/// SEN12MS-CR's Sentinel-2 band order (13 bands, L1C top-of-atmosphere reflectance x 10000).
const SEN12MS_S2: [&str; 13] = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"];

/// The Sentinel-2 bands the demo ships (a project's default bands, without SCL).
pub const S2_BANDS: [&str; 7] = ["B02", "B03", "B04", "B08", "B8A", "B11", "B12"];

/// Multipliers of pre-fire reflectance that give the burned surface. A burned pixel at t1
/// takes `(1 - s) t1 + s (f t0)` for severity `s`: the fire burned what stood at t0 (the
/// patch's fields green up between the two dates; a burned field does not), char and ash
/// darken the visible bands a little, the loss of leaf structure drops the near infrared, and
/// drier, exposed soil raises the shortwave infrared: the post-fire change NBR and dNBR were
/// designed on (Key & Benson 2006, FIREMON Landscape Assessment).
pub const S2_BURN_FACTORS: [(&str, f32); 7] =
    [("B02", 0.85), ("B03", 0.80), ("B04", 0.85), ("B08", 0.45), ("B8A", 0.50), ("B11", 1.15), ("B12", 1.50)];

/// Change of backscatter at full burn severity, dB (scaled by severity): the loss of canopy
/// lowers C-band backscatter, cross-polarisation most (Tanase et al. 2010, IEEE TGRS,
/// "Sensitivity of X-, C-, and L-band SAR backscatter to burn severity").
pub const S1_BURN_DB: [(&str, f32); 2] = [("VV", -1.5), ("VH", -3.0)];

/// Centre (column, row) and mean radius of the simulated scar, in pixels of the source patch.
const SCAR_CENTRE: (f64, f64) = (150.0, 150.0);
const SCAR_RADIUS: f64 = 48.0;
/// Severity at the scar's edge; it rises to 1.0 at the centre.
const RIM_SEVERITY: f32 = 0.3;

/// The scar's radius, pixels, in the direction `theta` (radians, from the column axis).
fn scar_radius(theta: f64) -> f64 {
    SCAR_RADIUS * (1.0 + 0.22 * (3.0 * theta + 0.6).sin() + 0.12 * (5.0 * theta + 2.1).cos())
}

/// The simulated scar's outline as `n` points (column, row) of the source patch, in pixel
/// coordinates (0, 0 = the patch's upper-left corner): the "official perimeter" of the demo's
/// fire, for the assessment's perimeter check.
pub fn scar_outline(n: usize) -> Vec<(f64, f64)> {
    (0..n.max(3))
        .map(|i| {
            let theta = -std::f64::consts::PI + 2.0 * std::f64::consts::PI * i as f64 / n.max(3) as f64;
            let r = scar_radius(theta);
            (SCAR_CENTRE.0 + r * theta.cos(), SCAR_CENTRE.1 + r * theta.sin())
        })
        .collect()
}

/// Burn severity (0 = unburned, up to 1) of the simulated scar at a pixel of the source patch:
/// an irregular blob (its radius wavers with the direction) that is most severe at its centre.
pub fn burn_severity(col: f64, row: f64) -> f32 {
    let (dx, dy) = (col - SCAR_CENTRE.0, row - SCAR_CENTRE.1);
    let theta = dy.atan2(dx);
    let radius = scar_radius(theta);
    let d = (dx * dx + dy * dy).sqrt() / radius;
    if d >= 1.0 { 0.0 } else { RIM_SEVERITY + (1.0 - RIM_SEVERITY) * (1.0 - d * d) as f32 }
}

/// Which sensor a simulation note describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensor {
    Sentinel2,
    Sentinel1,
}

/// The words every output of a simulated scene carries.
pub fn simulation_note(sensor: Sensor, patch: &Patch) -> String {
    let list = |pairs: &mut dyn Iterator<Item = String>| pairs.collect::<Vec<_>>().join(", ");
    let shape = format!(
        "SIMULATED burn scar (the real data has no fire): an irregular blob of about {:.0} ha centred at pixel ({}, {}) of SEN12MS-CR patch {}, severity {RIM_SEVERITY} at its edge rising to 1 at its centre",
        std::f64::consts::PI * SCAR_RADIUS * SCAR_RADIUS / 100.0,
        SCAR_CENTRE.0,
        SCAR_CENTRE.1,
        patch.name()
    );
    match sensor {
        Sensor::Sentinel2 => format!(
            "{shape}; Sentinel-2 reflectance at t1 = (1 - severity) x t1 + severity x f x t0, with f = {} (Key & Benson 2006: NIR falls, SWIR rises); pixels in the cloud classes at t1 are left as they are",
            list(&mut S2_BURN_FACTORS.iter().map(|(b, f)| format!("{b} {f}")))
        ),
        Sensor::Sentinel1 => format!(
            "{shape}; Sentinel-1 backscatter changed by severity x {} dB (Tanase et al. 2010: C-band backscatter falls with burn severity); the same radar acquisition as t0 otherwise",
            list(&mut S1_BURN_DB.iter().map(|(b, db)| format!("{b} {db:+}")))
        ),
    }
}

/// Scene-classification codes (those of Sentinel-2 L2A's SCL) given by [`cloud_class`].
pub const CLOUD_CLASSES: [(u8, [u8; 3], &str); 7] = [
    (0, [0, 0, 0], "No data"),
    (4, [0, 160, 0], "Vegetation (NDVI > 0.3)"),
    (5, [255, 230, 90], "Not vegetated"),
    (6, [0, 0, 255], "Water (NDWI > 0.2)"),
    (8, [128, 128, 128], "Cloud, medium probability (blue > 0.16 and visible mean > 0.15)"),
    (9, [255, 255, 255], "Cloud, high probability (blue > 0.22 and visible mean > 0.20)"),
    (10, [100, 200, 255], "Thin cirrus (B10 > 0.012)"),
];

/// A rough scene classification from top-of-atmosphere reflectance (not Sen2Cor's): bright,
/// white pixels are cloud, a bright cirrus band is cirrus, the rest is water, vegetation or
/// neither by NDWI and NDVI. Cloud shadows are not detected. Codes follow SCL, so the
/// preprocessing masks these clouds as it masks Sen2Cor's.
pub fn cloud_class(blue: f32, green: f32, red: f32, nir: f32, cirrus: f32) -> u8 {
    if [blue, green, red, nir, cirrus].iter().any(|v| !v.is_finite()) || blue <= 0.0 {
        return 0;
    }
    let visible = (blue + green + red) / 3.0;
    if blue > 0.22 && visible > 0.20 {
        9
    } else if blue > 0.16 && visible > 0.15 {
        8
    } else if cirrus > 0.012 {
        10
    } else if (green - nir) / (green + nir) > 0.2 {
        6
    } else if (nir - red) / (nir + red) > 0.3 {
        4
    } else {
        5
    }
}

/// Nominal acquisition times: SEN12MS-CR gives only the season (autumn 2018) and not which of
/// the two Sentinel-2 acquisitions came first; the demo takes the cloud-free one as t0. The
/// demo project's date ranges ([`crate::demo::T0_RANGE`], [`crate::demo::T1_RANGE`]) hold them.
/// CBI of a generated plot at simulated severity `s` (0 outside the scar, 0.3-1 inside), before
/// noise: 0.6 + 2.3 s in the scar, 0.1 outside.
pub fn generated_cbi(s: f32) -> f64 {
    if s > 0.0 { 0.6 + 2.3 * s as f64 } else { 0.1 }
}

/// Standard deviation of the generated plots' noise, in CBI.
pub const PLOTS_NOISE: f64 = 0.2;

/// Generated field plots as CSV (`id,lon,lat,CBI`): every 17th pixel of the patch within 1.6 scar
/// radii of its centre, CBI [`generated_cbi`] of the simulated severity plus seeded normal noise
/// of [`PLOTS_NOISE`], kept within 0-3; ids say "generated".
fn generated_plots(w: usize, h: usize, gt: [f64; 6], to_wgs84: &dyn Fn(f64, f64) -> Result<[f64; 2]>) -> Result<String> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut csv = String::from("id,lon,lat,CBI\n");
    let mut k = 0;
    for row in (8..h.saturating_sub(8)).step_by(17) {
        for col in (8..w.saturating_sub(8)).step_by(17) {
            let (c, r) = (col as f64 + 0.5, row as f64 + 0.5);
            if ((c - SCAR_CENTRE.0).powi(2) + (r - SCAR_CENTRE.1).powi(2)).sqrt() > 1.6 * SCAR_RADIUS {
                continue;
            }
            let noise = PLOTS_NOISE * (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
            let cbi = (generated_cbi(burn_severity(c, r)) + noise).clamp(0.0, 3.0);
            let [lon, lat] = to_wgs84(gt[0] + c * gt[1], gt[3] + r * gt[5])?;
            k += 1;
            csv.push_str(&format!("generated-{k},{lon},{lat},{cbi:.2}\n"));
        }
    }
    Ok(csv)
}

pub const S2_T0_DATETIME: &str = "2018-09-20T02:50:00Z";
pub const S2_T1_DATETIME: &str = "2018-11-04T02:50:00Z";
pub const S1_T0_DATETIME: &str = "2018-09-21T10:00:00Z";
pub const S1_T1_DATETIME: &str = "2018-11-03T10:00:00Z";

/// What the item ids say after the patch's (see [`Patch::item_id`]).
const S2_T0_ID: &str = "s2-cloudfree";
const S2_T1_ID: &str = "s2-cloudy-simulated-burn";
const S1_T0_ID: &str = "s1";
const S1_T1_ID: &str = "s1-simulated-burn";

/// The AOI is the patch less this margin on each side, so that the project's grid (aligned to
/// 60 m, in its own UTM orientation) stays inside the data.
const AOI_INSET_M: f64 = 200.0;

/// What [`build_assets`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSummary {
    pub files: Vec<PathBuf>,
    /// Cloud classes 8-10 over the t1 patch, percent.
    pub t1_cloud_percent: f64,
    pub t0_cloud_percent: f64,
    /// Pixels the scar touches, and of those, how many are clear at t1.
    pub scar_pixels: usize,
    pub scar_clear_pixels: usize,
}

fn sen12ms_band(name: &str) -> usize {
    SEN12MS_S2.iter().position(|b| *b == name).map(|i| i + 1).unwrap_or(1)
}

fn is_cloud(class: u8) -> bool {
    matches!(class, 8..=10)
}

/// Builds the demo catalog in `out` from SEN12MS-CR's folder (`shared/data/s1s2-sen12mscr`):
/// single-band COGs of the shipped bands (UInt16 DN for Sentinel-2, Float32 linear power for
/// Sentinel-1), the cloud classes as an `SCL` asset, the simulated burn on the t1 scenes,
/// STAC items, collections and the catalog, and the AOI.
pub fn build_assets(source: &Path, patch: &Patch, out: &Path) -> Result<BuildSummary> {
    let file = |kind: &str| source.join(kind).join(format!("{}.tif", patch.name())).display().to_string();
    let mut written = Vec::new();
    let s2_t0 = raster::read_window(&file("s2_cloudfree"), &[], None)?;
    let s2_t1 = raster::read_window(&file("s2_cloudy"), &[], None)?;
    let s1 = raster::read_window(&file("s1"), &[], None)?;
    if s2_t0.bands.len() != 13 || s2_t1.bands.len() != 13 || s1.bands.len() != 2 {
        return Err(Error::Raster { location: source.display().to_string(), message: "expected SEN12MS-CR patches: 13 Sentinel-2 bands and 2 Sentinel-1 bands (VV, VH)".into() });
    }
    let (w, h) = (s2_t0.width, s2_t0.height);
    let severity: Vec<f32> = (0..w * h).map(|i| burn_severity((i % w) as f64 + 0.5, (i / w) as f64 + 0.5)).collect();
    let classes = |s: &BandStack| -> Vec<u8> {
        let b = |name: &str| &s.bands[sen12ms_band(name) - 1];
        let (blue, green, red, nir, cirrus) = (b("B02"), b("B03"), b("B04"), b("B08"), b("B10"));
        (0..w * h).map(|i| cloud_class(blue[i] / 1e4, green[i] / 1e4, red[i] / 1e4, nir[i] / 1e4, cirrus[i] / 1e4)).collect()
    };
    let (classes_t0, classes_t1) = (classes(&s2_t0), classes(&s2_t1));
    let cloud_percent = |c: &[u8]| 100.0 * c.iter().filter(|k| is_cloud(**k)).count() as f64 / c.len() as f64;

    // The WGS84 footprint of the patch, and the AOI inside it.
    let gt = s2_t0.geo_transform;
    let utm_bounds = [gt[0], gt[3] + gt[5] * h as f64, gt[0] + gt[1] * w as f64, gt[3]];
    let to_wgs84 = |x: f64, y: f64| -> Result<[f64; 2]> { utm_to_wgs84(&s2_t0.crs_wkt, x, y) };
    let footprint = ring(utm_bounds, &to_wgs84)?;
    let inset = [utm_bounds[0] + AOI_INSET_M, utm_bounds[1] + AOI_INSET_M, utm_bounds[2] - AOI_INSET_M, utm_bounds[3] - AOI_INSET_M];
    let aoi_ring = ring(inset, &to_wgs84)?;
    let aoi = json!({"type": "Feature", "properties": {"name": format!("SEN12MS-CR patch {} ({})", patch.name(), patch.place())}, "geometry": {"type": "Polygon", "coordinates": [aoi_ring]}});
    written.push(write_json(&out.join(CATALOG_AOI_FILE), &aoi)?);

    let s2_note = simulation_note(Sensor::Sentinel2, patch);
    let s1_note = simulation_note(Sensor::Sentinel1, patch);
    let bbox = bbox_of(&footprint);
    let write_opts = WriteOptions::default();

    // Sentinel-2: t0 as it is, t1 with the burn where it is clear.
    let mut s2_items = Vec::new();
    for (id, stack, classes, datetime, simulated, source_folder) in [
        (patch.item_id(S2_T0_ID), &s2_t0, &classes_t0, S2_T0_DATETIME, None, "s2_cloudfree"),
        (patch.item_id(S2_T1_ID), &s2_t1, &classes_t1, S2_T1_DATETIME, Some(&s2_note), "s2_cloudy"),
    ] {
        let id = id.as_str();
        let dir = out.join(S2_COLLECTION).join(id);
        let mut assets = serde_json::Map::new();
        for band in S2_BANDS {
            let mut values = stack.bands[sen12ms_band(band) - 1].clone();
            if simulated.is_some() {
                let f = S2_BURN_FACTORS.iter().find(|(b, _)| *b == band).map(|(_, f)| *f).unwrap_or(1.0);
                let before = &s2_t0.bands[sen12ms_band(band) - 1];
                for (i, v) in values.iter_mut().enumerate() {
                    let s = severity[i];
                    if s > 0.0 && !is_cloud(classes[i]) {
                        *v = (1.0 - s) * *v + s * f * before[i];
                    }
                }
            }
            let one = BandStack { bands: vec![values], descriptions: vec![band.to_string()], ..stack_like(stack) };
            let path = dir.join(format!("{band}.tif"));
            raster::write_raster_u16(&path, &one, &write_opts, 0)?;
            written.push(path);
            assets.insert(band.into(), json!({"href": format!("./{band}.tif"), "type": "image/tiff; application=geotiff; profile=cloud-optimized", "title": format!("{band}: top-of-atmosphere reflectance x 10000 (L1C)"), "roles": ["data"]}));
        }
        let scl = dir.join("SCL.tif");
        raster::write_classes(&scl, &ClassRaster { width: w, height: h, codes: classes, geo_transform: stack.geo_transform, crs_wkt: &stack.crs_wkt, description: "SCL (s2cr demo: TOA thresholds, not Sen2Cor)", classes: &CLOUD_CLASSES })?;
        written.push(scl);
        assets.insert("SCL".into(), json!({"href": "./SCL.tif", "type": "image/tiff; application=geotiff; profile=cloud-optimized", "title": "Cloud classes in SCL codes from top-of-atmosphere thresholds (s2cr's demo builder, not ESA Sen2Cor); cloud shadows are not detected", "roles": ["data"]}));
        let mut properties = json!({
            "datetime": datetime,
            "constellation": "sentinel-2",
            "eo:cloud_cover": (cloud_percent(classes) * 10.0).round() / 10.0,
            "processing:level": "L1C",
            "s2cr:nominal_datetime": true,
            "s2cr:source": format!("SEN12MS-CR {source_folder}/{}.tif (bands {}) of {} 2018; the date is nominal", patch.name(), S2_BANDS.join(", "), patch.season()),
            "s2cr:attribution": ATTRIBUTION,
        });
        if let Some(note) = simulated {
            properties["s2cr:simulated"] = json!(note);
        }
        s2_items.push(write_item(&dir, id, S2_COLLECTION, &footprint, bbox, properties, assets)?);
    }

    // Sentinel-1: one real acquisition; linear power for t0, and with the burn for t1.
    let mut s1_items = Vec::new();
    for (id, datetime, simulated) in [(patch.item_id(S1_T0_ID), S1_T0_DATETIME, None), (patch.item_id(S1_T1_ID), S1_T1_DATETIME, Some(&s1_note))] {
        let id = id.as_str();
        let dir = out.join(S1_COLLECTION).join(id);
        let mut assets = serde_json::Map::new();
        for (i, pol) in ["VV", "VH"].iter().enumerate() {
            let change = S1_BURN_DB.iter().find(|(p, _)| p == pol).map(|(_, d)| *d).unwrap_or(0.0);
            let values: Vec<f32> = s1.bands[i]
                .iter()
                .zip(&severity)
                .map(|(db, s)| {
                    let db = if simulated.is_some() { db + s * change } else { *db };
                    10f32.powf(db / 10.0)
                })
                .collect();
            let one = BandStack { bands: vec![values], descriptions: vec![pol.to_string()], ..stack_like(&s1) };
            let key = pol.to_lowercase();
            let path = dir.join(format!("{key}.tif"));
            raster::write_raster(&path, &one, &write_opts)?;
            written.push(path);
            assets.insert(key.clone(), json!({"href": format!("./{key}.tif"), "type": "image/tiff; application=geotiff; profile=cloud-optimized", "title": format!("{pol}: terrain-corrected sigma0, linear power"), "roles": ["data"]}));
        }
        let mut properties = json!({
            "datetime": datetime,
            "constellation": "sentinel-1",
            "sar:instrument_mode": "IW",
            "sar:polarizations": ["VV", "VH"],
            "sat:orbit_state": "ascending",
            "sat:relative_orbit": 1,
            "s2cr:nominal_datetime": true,
            "s2cr:source": format!("SEN12MS-CR s1/{}.tif (sigma0 dB, turned into linear power) of {} 2018; the one Sentinel-1 acquisition of the patch, used for both dates; the date is nominal", patch.name(), patch.season()),
            "s2cr:attribution": ATTRIBUTION,
        });
        if let Some(note) = simulated {
            properties["s2cr:simulated"] = json!(note);
        }
        s1_items.push(write_item(&dir, id, S1_COLLECTION, &footprint, bbox, properties, assets)?);
    }

    for (collection, items, description) in [
        (S2_COLLECTION, &s2_items, "Sentinel-2 L1C top-of-atmosphere reflectance (x 10000) of SEN12MS-CR patch ROIs1970_fall_139_p839, with cloud classes from thresholds"),
        (S1_COLLECTION, &s1_items, "Sentinel-1 IW terrain-corrected sigma0 (linear power) of SEN12MS-CR patch ROIs1970_fall_139_p839"),
    ] {
        let mut links = vec![json!({"rel": "root", "href": "../catalog.json"}), json!({"rel": "parent", "href": "../catalog.json"})];
        links.extend(items.iter().map(|id| json!({"rel": "item", "href": format!("./{id}/{id}.json"), "type": "application/geo+json"})));
        let value = json!({
            "type": "Collection", "stac_version": "1.0.0", "id": collection, "description": description,
            "license": "CC-BY-4.0",
            "providers": [{"name": "ESA / Copernicus", "roles": ["producer", "licensor"]}, {"name": "TUM (SEN12MS-CR)", "roles": ["processor"]}],
            "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [["2018-09-01T00:00:00Z", "2018-11-30T23:59:59Z"]]}},
            "links": links,
        });
        written.push(write_json(&out.join(collection).join("collection.json"), &value)?);
    }
    let catalog = json!({
        "type": "Catalog", "stac_version": "1.0.0", "id": "s2cr-demo",
        "description": format!("The s2cr offline demo: one SEN12MS-CR patch, with a SIMULATED burn scar in its t1 scenes. {ATTRIBUTION}."),
        "links": [
            {"rel": "root", "href": "./catalog.json"},
            {"rel": "child", "href": format!("./{S2_COLLECTION}/collection.json")},
            {"rel": "child", "href": format!("./{S1_COLLECTION}/collection.json")},
        ],
    });
    written.push(write_json(&out.join(CATALOG_FILE), &catalog)?);
    let plots = out.join(PLOTS_FILE);
    crate::fsutil::write_atomic(&plots, generated_plots(w, h, gt, &to_wgs84)?.as_bytes())?;
    written.push(plots);

    let scar_pixels = severity.iter().filter(|s| **s > 0.0).count();
    let scar_clear_pixels = severity.iter().zip(&classes_t1).filter(|(s, c)| **s > 0.0 && !is_cloud(**c)).count();
    Ok(BuildSummary { files: written, t1_cloud_percent: cloud_percent(&classes_t1), t0_cloud_percent: cloud_percent(&classes_t0), scar_pixels, scar_clear_pixels })
}

fn stack_like(s: &BandStack) -> BandStack {
    BandStack { width: s.width, height: s.height, bands: Vec::new(), valid: s.valid.clone(), geo_transform: s.geo_transform, crs_wkt: s.crs_wkt.clone(), descriptions: Vec::new() }
}

fn utm_to_wgs84(crs_wkt: &str, x: f64, y: f64) -> Result<[f64; 2]> {
    let src = gdal::spatial_ref::SpatialRef::from_wkt(crs_wkt).map_err(Error::gdal("the patch's CRS", "reading the CRS"))?;
    let dst = crate::grid::wgs84_traditional()?;
    let t = gdal::spatial_ref::CoordTransform::new(&src, &dst).map_err(Error::gdal("the patch's CRS -> EPSG:4326", "creating a transformation"))?;
    let (mut xs, mut ys, mut zs) = ([x], [y], [0.0]);
    t.transform_coords(&mut xs, &mut ys, &mut zs).map_err(Error::gdal("the patch's CRS -> EPSG:4326", "transforming a corner"))?;
    // Six decimals (about 0.1 m) keep the files short.
    Ok([(xs[0] * 1e6).round() / 1e6, (ys[0] * 1e6).round() / 1e6])
}

fn ring(b: [f64; 4], to_wgs84: &dyn Fn(f64, f64) -> Result<[f64; 2]>) -> Result<Vec<[f64; 2]>> {
    let corners = [(b[0], b[1]), (b[2], b[1]), (b[2], b[3]), (b[0], b[3]), (b[0], b[1])];
    corners.iter().map(|(x, y)| to_wgs84(*x, *y)).collect()
}

fn bbox_of(ring: &[[f64; 2]]) -> [f64; 4] {
    ring.iter().fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, p| [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])])
}

fn write_item(dir: &Path, id: &str, collection: &str, footprint: &[[f64; 2]], bbox: [f64; 4], properties: serde_json::Value, assets: serde_json::Map<String, serde_json::Value>) -> Result<String> {
    let item = json!({
        "type": "Feature", "stac_version": "1.0.0", "id": id, "collection": collection,
        "geometry": {"type": "Polygon", "coordinates": [footprint]},
        "bbox": bbox,
        "properties": properties,
        "links": [{"rel": "collection", "href": "../collection.json"}, {"rel": "parent", "href": "../collection.json"}, {"rel": "root", "href": "../../catalog.json"}],
        "assets": assets,
    });
    write_json(&dir.join(format!("{id}.json")), &item)?;
    Ok(id.to_string())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<PathBuf> {
    let text = serde_json::to_string_pretty(value).map_err(Error::json(path, "serializing a file of the demo catalog"))?;
    crate::fsutil::write_atomic(path, format!("{text}\n").as_bytes())?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scar_is_most_severe_at_its_centre_and_ends_at_its_rim() {
        assert_eq!(burn_severity(SCAR_CENTRE.0, SCAR_CENTRE.1), 1.0);
        assert_eq!(burn_severity(SCAR_CENTRE.0 + 2.0 * SCAR_RADIUS, SCAR_CENTRE.1), 0.0);
        let pixels: Vec<f32> = (0..256 * 256).map(|i| burn_severity((i % 256) as f64 + 0.5, (i / 256) as f64 + 0.5)).filter(|s| *s > 0.0).collect();
        assert!(pixels.iter().all(|s| (RIM_SEVERITY..=1.0).contains(s)));
        // About the area the note gives (the radius wavers around its mean).
        let nominal = std::f64::consts::PI * SCAR_RADIUS * SCAR_RADIUS;
        assert!((pixels.len() as f64 / nominal - 1.0).abs() < 0.15, "{} px vs {nominal:.0}", pixels.len());
    }

    #[test]
    fn cloud_classes_follow_the_thresholds() {
        assert_eq!(cloud_class(0.30, 0.30, 0.30, 0.35, 0.001), 9, "bright and white");
        assert_eq!(cloud_class(0.18, 0.17, 0.16, 0.25, 0.001), 8);
        assert_eq!(cloud_class(0.10, 0.09, 0.08, 0.20, 0.02), 10, "cirrus band");
        assert_eq!(cloud_class(0.08, 0.07, 0.05, 0.30, 0.001), 4, "vegetation");
        assert_eq!(cloud_class(0.08, 0.08, 0.03, 0.02, 0.001), 6, "water");
        assert_eq!(cloud_class(0.12, 0.13, 0.15, 0.20, 0.001), 5);
        assert_eq!(cloud_class(0.0, 0.1, 0.1, 0.1, 0.0), 0, "no data");
        assert_eq!(cloud_class(f32::NAN, 0.1, 0.1, 0.1, 0.0), 0);
    }

    #[test]
    fn the_notes_say_simulated_and_give_every_change() {
        let s2 = simulation_note(Sensor::Sentinel2, &Patch::demo());
        assert!(s2.starts_with("SIMULATED burn scar"));
        for (band, f) in S2_BURN_FACTORS {
            assert!(s2.contains(&format!("{band} {f}")), "{s2}");
        }
        let s1 = simulation_note(Sensor::Sentinel1, &Patch::demo());
        assert!(s1.contains("VH -3 dB") || s1.contains("VH -3"), "{s1}");
        assert!(s1.contains(SOURCE_PATCH), "{s1}");
    }

    /// The embedded demo's ids come from its patch as before; another patch gets its own, its
    /// season and place; a name that is not a patch's is refused with the form it should have.
    #[test]
    fn a_patch_names_its_items_season_and_place() {
        let demo = Patch::demo();
        assert_eq!(demo.item_id(S2_T1_ID), "sen12mscr-p839-s2-cloudy-simulated-burn");
        assert_eq!((demo.season(), demo.place()), ("autumn", "Jiangsu, China"));
        let belgium = Patch::new("ROIs2017_winter_112_p797").unwrap();
        assert_eq!(belgium.item_id(S1_T0_ID), "sen12mscr-p797-s1");
        assert_eq!((belgium.season(), belgium.place()), ("winter", "Belgium"));
        for bad in ["", "p797", "ROIs2017_winter_112_797", "ROIs2017_monsoon_112_p797", "../ROIs2017_winter_112_p797"] {
            let e = Patch::new(bad).unwrap_err().to_string();
            assert!(e.contains("--patch") && e.contains("ROIs<n>_<season>_<n>_p<n>"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_nominal_dates_fall_in_the_demo_projects_date_ranges() {
        use crate::project::DateRange;
        let date = |t: &str| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap().date_naive();
        let range = |r: &str| r.parse::<DateRange>().unwrap();
        let (t0, t1) = (range(crate::demo::T0_RANGE), range(crate::demo::T1_RANGE));
        for t in [S2_T0_DATETIME, S1_T0_DATETIME] {
            assert!((t0.from..=t0.to).contains(&date(t)), "{t} not in {t0}");
        }
        for t in [S2_T1_DATETIME, S1_T1_DATETIME] {
            assert!((t1.from..=t1.to).contains(&date(t)), "{t} not in {t1}");
        }
    }
}
