//! Scene catalogs: STAC providers (Earth Search, Planetary Computer, CDSE, or any STAC API of
//! one of those kinds), their asset keys mapped to our band names, search over HTTP with
//! paging, and the pairing of Sentinel-1 scenes with Sentinel-2 dates.
//!
//! This module reads catalogs; it downloads no imagery (that is `fetch`).

pub mod cover;
pub mod item;
pub mod local;
pub mod pairing;
pub mod search;
pub mod sign;
pub mod stage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::Provider;

/// The kinds of STAC API we know the conventions of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    EarthSearch,
    PlanetaryComputer,
    Cdse,
    /// A static STAC catalog on disk (`stac_url` is its catalog.json); assets named by band.
    Local,
}

/// Which mission an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mission {
    Sentinel1,
    Sentinel2,
}

/// Where and how to search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// STAC API root, without a trailing slash.
    pub stac_url: String,
    pub s2_collection: String,
    pub s1_collection: String,
    /// Planetary Computer's SAS token endpoint (assets must be signed before reading).
    pub token_url: Option<String>,
}

impl ProviderConfig {
    /// The public endpoint of a provider kind.
    pub fn default_for(kind: ProviderKind) -> ProviderConfig {
        match kind {
            ProviderKind::EarthSearch => ProviderConfig {
                kind,
                stac_url: "https://earth-search.aws.element84.com/v1".into(),
                s2_collection: "sentinel-2-l2a".into(),
                s1_collection: "sentinel-1-grd".into(),
                token_url: None,
            },
            ProviderKind::PlanetaryComputer => ProviderConfig {
                kind,
                stac_url: "https://planetarycomputer.microsoft.com/api/stac/v1".into(),
                s2_collection: "sentinel-2-l2a".into(),
                // Radiometrically terrain-corrected gamma0, linear power.
                s1_collection: "sentinel-1-rtc".into(),
                token_url: Some("https://planetarycomputer.microsoft.com/api/sas/v1/token".into()),
            },
            ProviderKind::Cdse => ProviderConfig {
                kind,
                stac_url: "https://stac.dataspace.copernicus.eu/v1".into(),
                s2_collection: "sentinel-2-l2a".into(),
                s1_collection: "sentinel-1-grd".into(),
                token_url: None,
            },
            // The catalog's path is the project's to give (`catalog` in project.yaml).
            ProviderKind::Local => ProviderConfig {
                kind,
                stac_url: "catalog.json".into(),
                s2_collection: "sentinel-2-l2a".into(),
                s1_collection: "sentinel-1-rtc".into(),
                token_url: None,
            },
        }
    }

    /// The provider of a project; for the local provider, the static catalog that project.yaml
    /// names (`catalog`, relative to the project folder).
    pub fn for_project(config: &crate::project::ProjectConfig, root: &std::path::Path) -> Result<ProviderConfig> {
        let provider = Self::provider_of(config, root)?;
        Ok(match &config.collections {
            Some(c) => ProviderConfig { s2_collection: c.s2.clone(), s1_collection: c.s1.clone(), ..provider },
            None => provider,
        })
    }

    fn provider_of(config: &crate::project::ProjectConfig, root: &std::path::Path) -> Result<ProviderConfig> {
        match config.provider {
            Provider::EarthSearch => Ok(Self::default_for(ProviderKind::EarthSearch)),
            Provider::PlanetaryComputer => Ok(Self::default_for(ProviderKind::PlanetaryComputer)),
            Provider::Cdse => Ok(Self::default_for(ProviderKind::Cdse)),
            Provider::Local => match &config.catalog {
                Some(c) => Ok(ProviderConfig { stac_url: root.join(c).display().to_string(), ..Self::default_for(ProviderKind::Local) }),
                None => Err(Error::invalid("project.yaml", "provider local needs `catalog:` (the path of a static STAC catalog.json, relative to the project)")),
            },
        }
    }
}

/// Whether the program may read `href` (fetch, the AOI cloud reads of search) for a scene of
/// `provider`: a remote provider's assets are
/// http(s) URLs, and on a loopback or private address only when its STAC API is too (a
/// catalog must not make us read our own machine or network); the local provider's are files
/// under its catalog's folder. The reason when not.
pub fn check_href(provider: &crate::catalog::ProviderConfig, href: &str) -> std::result::Result<(), String> {
    if provider.kind == ProviderKind::Local {
        if href.contains("://") || href.starts_with("/vsi") {
            return Err(format!("{href:?} is not a file; a static catalog's assets are files beside it"));
        }
        let root = Path::new(&provider.stac_url).parent().map(lexical).unwrap_or_default();
        let path = lexical(Path::new(href));
        return if path.starts_with(&root) && !root.as_os_str().is_empty() {
            Ok(())
        } else {
            Err(format!("{href:?} is outside the catalog's folder {}; refusing to read it", root.display()))
        };
    }
    let Some(asset) = http_url(href) else {
        return Err(format!("{:?} is not an http(s) URL; a remote provider's assets are", crate::error::redact(href)));
    };
    if is_internal(&asset) && !http_url(&provider.stac_url).is_some_and(|api| is_internal(&api)) {
        let host = asset.host_str().unwrap_or_default();
        return Err(format!("{} points into this machine or its local network ({host}) while the catalog is on the internet; refusing to read it", crate::error::redact(href)));
    }
    Ok(())
}

/// `url` parsed, when it is an http(s) URL with a host (the one URL parser of the program's
/// security checks: `reqwest`'s, which handles user information, IPv6 and default ports).
pub fn http_url(url: &str) -> Option<reqwest::Url> {
    reqwest::Url::parse(url).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Whether a URL's host is this machine or its local network (loopback, private, link-local).
pub fn is_internal(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
    match ip {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified(),
        Ok(std::net::IpAddr::V6(v6)) => v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80,
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    }
}

/// `path` made absolute with `.` and `..` resolved by its text (the file need not exist).
fn lexical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The body of an HTTP response as text, refused beyond `limit` bytes: a server (or something
/// posing as one) cannot make us hold an unbounded answer in memory.
pub fn read_body(response: reqwest::blocking::Response, limit: u64) -> std::result::Result<String, String> {
    use std::io::Read;
    if let Some(n) = response.content_length().filter(|n| *n > limit) {
        return Err(format!("the server announces a {n}-byte answer, more than the {limit} bytes accepted"));
    }
    let mut bytes = Vec::new();
    response.take(limit + 1).read_to_end(&mut bytes).map_err(|e| format!("reading the answer: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("the answer is longer than the {limit} bytes accepted"));
    }
    String::from_utf8(bytes).map_err(|_| "the answer is not UTF-8 text".to_string())
}

/// Largest STAC API answer accepted (a page of items), bytes.
pub const MAX_STAC_RESPONSE: u64 = 64 << 20;

/// Asset keys that hold `band` for a provider kind and mission, most likely first.
pub fn asset_keys(kind: ProviderKind, mission: Mission, band: &str) -> &'static [&'static str] {
    use Mission::*;
    use ProviderKind::*;
    match (kind, mission, band) {
        // Earth Search v1 names assets by common name (eo:bands common_name).
        (EarthSearch, Sentinel2, "B01") => &["coastal"],
        (EarthSearch, Sentinel2, "B02") => &["blue"],
        (EarthSearch, Sentinel2, "B03") => &["green"],
        (EarthSearch, Sentinel2, "B04") => &["red"],
        (EarthSearch, Sentinel2, "B05") => &["rededge1"],
        (EarthSearch, Sentinel2, "B06") => &["rededge2"],
        (EarthSearch, Sentinel2, "B07") => &["rededge3"],
        (EarthSearch, Sentinel2, "B08") => &["nir"],
        (EarthSearch, Sentinel2, "B8A") => &["nir08"],
        (EarthSearch, Sentinel2, "B09") => &["nir09"],
        (EarthSearch, Sentinel2, "B11") => &["swir16"],
        (EarthSearch, Sentinel2, "B12") => &["swir22"],
        (EarthSearch, Sentinel2, "SCL") => &["scl"],
        (EarthSearch, Sentinel2, "AOT") => &["aot"],
        // Planetary Computer keeps the band names.
        (PlanetaryComputer | Local, Sentinel2, "B01") => &["B01"],
        (PlanetaryComputer | Local, Sentinel2, "B02") => &["B02"],
        (PlanetaryComputer | Local, Sentinel2, "B03") => &["B03"],
        (PlanetaryComputer | Local, Sentinel2, "B04") => &["B04"],
        (PlanetaryComputer | Local, Sentinel2, "B05") => &["B05"],
        (PlanetaryComputer | Local, Sentinel2, "B06") => &["B06"],
        (PlanetaryComputer | Local, Sentinel2, "B07") => &["B07"],
        (PlanetaryComputer | Local, Sentinel2, "B08") => &["B08"],
        (PlanetaryComputer | Local, Sentinel2, "B8A") => &["B8A"],
        (PlanetaryComputer | Local, Sentinel2, "B09") => &["B09"],
        (PlanetaryComputer | Local, Sentinel2, "B11") => &["B11"],
        (PlanetaryComputer | Local, Sentinel2, "B12") => &["B12"],
        (PlanetaryComputer | Local, Sentinel2, "SCL") => &["SCL"],
        (PlanetaryComputer | Local, Sentinel2, "AOT") => &["AOT"],
        // CDSE suffixes the native resolution.
        (Cdse, Sentinel2, "B01") => &["B01_60m"],
        (Cdse, Sentinel2, "B02") => &["B02_10m"],
        (Cdse, Sentinel2, "B03") => &["B03_10m"],
        (Cdse, Sentinel2, "B04") => &["B04_10m"],
        (Cdse, Sentinel2, "B05") => &["B05_20m"],
        (Cdse, Sentinel2, "B06") => &["B06_20m"],
        (Cdse, Sentinel2, "B07") => &["B07_20m"],
        (Cdse, Sentinel2, "B08") => &["B08_10m"],
        (Cdse, Sentinel2, "B8A") => &["B8A_20m"],
        (Cdse, Sentinel2, "B09") => &["B09_60m"],
        (Cdse, Sentinel2, "B11") => &["B11_20m"],
        (Cdse, Sentinel2, "B12") => &["B12_20m"],
        (Cdse, Sentinel2, "SCL") => &["SCL_20m"],
        (Cdse, Sentinel2, "AOT") => &["AOT_10m"],
        // Sentinel-1: lower-case polarisation keys everywhere (Earth Search GRD, PC RTC and GRD,
        // CDSE's GRD COGs).
        (_, Sentinel1, "VV") => &["vv", "VV"],
        (_, Sentinel1, "VH") => &["vh", "VH"],
        (_, Sentinel1, "HH") => &["hh", "HH"],
        (_, Sentinel1, "HV") => &["hv", "HV"],
        _ => &[],
    }
}

/// A scene as the pipeline needs it, read from a STAC item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub id: String,
    pub collection: String,
    pub mission: Mission,
    pub datetime: DateTime<Utc>,
    /// e.g. sentinel-2a, sentinel-1a.
    pub platform: Option<String>,
    /// Scene cloud cover, percent (Sentinel-2).
    pub cloud_cover: Option<f64>,
    /// [min lon, min lat, max lon, max lat].
    pub bbox: Option<[f64; 4]>,
    /// Our band name -> asset href.
    pub assets: BTreeMap<String, String>,
    pub relative_orbit: Option<u32>,
    /// ascending or descending (Sentinel-1).
    pub orbit_state: Option<String>,
    /// Sentinel-2 processing baseline, e.g. "04.00".
    pub processing_baseline: Option<String>,
    /// Earth Search removes the BOA offset of baseline >= 04.00 itself when true.
    pub boa_offset_applied: Option<bool>,
    /// MGRS tile, e.g. "53HNA" (Sentinel-2).
    pub mgrs_tile: Option<String>,
    /// Cloud over the AOI, percent, from the SCL (with the other scenes of the same date and
    /// platform); `None` until measured.
    #[serde(default)]
    pub aoi_cloud_percent: Option<f64>,
    /// Share of the AOI with data, percent (same scenes combined).
    #[serde(default)]
    pub aoi_coverage_percent: Option<f64>,
    /// What was simulated in this scene's pixels, when the catalog says so (the item property
    /// `s2cr:simulated`, as in the embedded demo); shown wherever its results are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<String>,
}

fn prop<'a>(item: &'a item::Item, key: &str) -> Option<&'a serde_json::Value> {
    item.properties.additional_fields.get(key)
}

impl Scene {
    /// Reads a STAC item; `None` when it is neither Sentinel-1 nor Sentinel-2 L2A (other
    /// collections returned by mixed searches).
    pub fn from_item(item: &item::Item, kind: ProviderKind, config: &ProviderConfig) -> Option<Scene> {
        let collection = item.collection.clone().unwrap_or_default();
        let mission = if collection == config.s2_collection {
            Mission::Sentinel2
        } else if collection == config.s1_collection || collection.starts_with("sentinel-1") || collection.starts_with("sentinel1") {
            Mission::Sentinel1
        } else {
            return None;
        };
        let datetime = item.properties.time()?;
        let bands: &[&str] = match mission {
            Mission::Sentinel2 => crate::project::S2_BANDS,
            Mission::Sentinel1 => crate::project::S1_BANDS,
        };
        let mut assets = BTreeMap::new();
        for band in bands {
            if let Some(asset) = asset_keys(kind, mission, band).iter().find_map(|k| item.assets.get(*k)) {
                assets.insert(band.to_string(), asset.href.clone());
            }
            // GRD items carry the calibration and noise tables per polarisation (stactools
            // sentinel1, as on Planetary Computer and Earth Search).
            if mission == Mission::Sentinel1 {
                for kind in ["calibration", "noise"] {
                    if let Some(asset) = item.assets.get(&format!("schema-{kind}-{}", band.to_lowercase())) {
                        assets.insert(format!("{kind}-{band}"), asset.href.clone());
                    }
                }
            }
        }
        let bbox = item.bbox.as_ref().map(|b| b.corners());
        let mgrs_tile = match (prop(item, "mgrs:utm_zone"), prop(item, "mgrs:latitude_band"), prop(item, "mgrs:grid_square")) {
            (Some(z), Some(b), Some(s)) => Some(format!("{:02}{}{}", z.as_u64().unwrap_or(0), b.as_str().unwrap_or(""), s.as_str().unwrap_or(""))),
            // PC: s2:mgrs_tile "33TWM"; CDSE (and newer Earth Search): grid:code "MGRS-33TWM".
            _ => prop(item, "s2:mgrs_tile")
                .or_else(|| prop(item, "grid:code"))
                .and_then(|v| v.as_str())
                .map(|s| s.trim_start_matches("MGRS-").to_string()),
        };
        Some(Scene {
            id: item.id.clone(),
            collection,
            mission,
            datetime,
            platform: prop(item, "platform").and_then(|v| v.as_str()).map(|s| s.to_ascii_lowercase()),
            cloud_cover: prop(item, "eo:cloud_cover").and_then(|v| v.as_f64()),
            bbox,
            assets,
            relative_orbit: prop(item, "sat:relative_orbit").and_then(|v| v.as_u64()).map(|v| v as u32),
            orbit_state: prop(item, "sat:orbit_state").and_then(|v| v.as_str()).map(|s| s.to_ascii_lowercase()),
            processing_baseline: prop(item, "s2:processing_baseline")
                .or_else(|| prop(item, "processing:version"))
                .and_then(|v| v.as_str())
                .map(String::from),
            boa_offset_applied: prop(item, "earthsearch:boa_offset_applied").and_then(|v| v.as_bool()),
            mgrs_tile,
            aoi_cloud_percent: None,
            aoi_coverage_percent: None,
            simulated: prop(item, "s2cr:simulated").and_then(|v| v.as_str()).map(String::from),
        })
    }

    /// A scene with only its identity: no assets, no properties (for scenes made by hand, such
    /// as benchmarks and local data).
    pub fn new(id: &str, collection: &str, mission: Mission, datetime: DateTime<Utc>) -> Scene {
        Scene {
            id: id.into(),
            collection: collection.into(),
            mission,
            datetime,
            platform: None,
            cloud_cover: None,
            bbox: None,
            assets: BTreeMap::new(),
            relative_orbit: None,
            orbit_state: None,
            processing_baseline: None,
            boa_offset_applied: None,
            mgrs_tile: None,
            aoi_cloud_percent: None,
            aoi_coverage_percent: None,
            simulated: None,
        }
    }

    /// A Sentinel-1 GRD (digital numbers in radar geometry), not a terrain-corrected product.
    pub fn is_grd(&self) -> bool {
        self.mission == Mission::Sentinel1 && self.collection.contains("grd")
    }

    /// The polarisations available as assets.
    pub fn polarisations(&self) -> Vec<&str> {
        crate::project::S1_BANDS.iter().copied().filter(|p| self.assets.contains_key(*p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_stay_where_their_catalog_is() {
        let remote = ProviderConfig::default_for(ProviderKind::EarthSearch);
        assert!(check_href(&remote, "https://sentinel-cogs.s3.us-west-2.amazonaws.com/a/B04.tif").is_ok());
        for bad in ["file:///etc/passwd", "/vsicurl/http://x/a.tif", "/etc/passwd", "http://127.0.0.1:8080/a.tif", "http://169.254.169.254/latest/meta-data", "http://[::1]/a", "http://localhost/a", "http://10.0.0.5/a.tif"] {
            assert!(check_href(&remote, bad).is_err(), "{bad}");
        }
        let loopback = ProviderConfig { stac_url: "http://127.0.0.1:4000".into(), ..remote.clone() };
        assert!(check_href(&loopback, "http://127.0.0.1:4001/a.tif").is_ok(), "a loopback catalog may name loopback assets");
        let dir = tempfile::tempdir().unwrap();
        let local = ProviderConfig { stac_url: dir.path().join("catalog.json").display().to_string(), ..ProviderConfig::default_for(ProviderKind::Local) };
        assert!(check_href(&local, &dir.path().join("s2/a/./B04.tif").display().to_string()).is_ok());
        for bad in [dir.path().join("../outside.tif").display().to_string(), "/etc/passwd".into(), "https://x.org/a.tif".into(), "/vsizip/a.zip/b.tif".into()] {
            assert!(check_href(&local, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_provider_maps_the_pipeline_bands() {
        for kind in [ProviderKind::EarthSearch, ProviderKind::PlanetaryComputer, ProviderKind::Cdse, ProviderKind::Local] {
            for band in ["B02", "B03", "B04", "B08", "B8A", "B11", "B12", "SCL"] {
                assert!(!asset_keys(kind, Mission::Sentinel2, band).is_empty(), "{kind:?} {band}");
            }
            for pol in ["VV", "VH"] {
                assert!(!asset_keys(kind, Mission::Sentinel1, pol).is_empty(), "{kind:?} {pol}");
            }
        }
    }
}
