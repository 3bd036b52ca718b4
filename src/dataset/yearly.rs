//! The "yearly" Sentinel-2 min/max of the research code (which asked Google Earth Engine): per
//! band, the smallest and largest clear reflectance over the AOI among every scene of a date
//! range. Cheap: each scene's band and SCL are read at a coarse COG overview at sample points
//! of the AOI (a few kilobytes per scene), clouds and no data left out by the SCL.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::cover::{sample_band, sample_points, scl_has_data, scl_is_cloud};
use crate::catalog::search::{SearchQuery, StacClient};
use crate::catalog::sign::PcSigner;
use crate::catalog::stage::SearchResult;
use crate::catalog::{Mission, ProviderConfig, Scene};
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::preprocess::s2;
use crate::project::{DateRange, Project};

/// Sample points per side of the AOI.
const SAMPLES: usize = 64;
/// Largest read per scene and band, pixels per side.
const READ_PX: usize = 128;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct YearlyBand {
    pub band: String,
    pub min: f32,
    pub max: f32,
    /// Clear samples behind the numbers.
    pub samples: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct YearlyMinMax {
    pub range: String,
    /// Scenes that contributed.
    pub scenes: Vec<String>,
    pub bands: Vec<YearlyBand>,
}

/// Min and max reflectance per band over the AOI among the scenes of `range` ("FROM/TO").
pub fn yearly_min_max(project: &Project, range: &str, bands: &[String], progress: &Progress) -> Result<YearlyMinMax> {
    let dates: DateRange = range.parse().map_err(|e: String| Error::invalid("yearly date range", e))?;
    // The provider the project's search used (a mirror or a private catalog), else its default.
    let provider: ProviderConfig = match SearchResult::load(project, "dataset").ok().and_then(|s| s.provider) {
        Some(p) => p,
        None => ProviderConfig::for_project(&project.config, project.root())?,
    };
    let aoi = project.aoi()?;
    let points = sample_points(&aoi, SAMPLES);
    let client = StacClient::new(&provider.stac_url, Duration::from_secs(60))?;
    let query = SearchQuery { collections: vec![provider.s2_collection.clone()], bbox: aoi.bbox(), dates, max_cloud_percent: None, page_size: 100, max_items: 2000 };
    let items = client.search(&query, progress)?;
    let scenes: Vec<Scene> = items.iter().filter_map(|i| Scene::from_item(i, provider.kind, &provider)).filter(|s| s.mission == Mission::Sentinel2).collect();
    let signer = match &provider.token_url {
        Some(url) => Some(PcSigner::new(url, Duration::from_secs(60))?),
        None => None,
    };
    let sign = |href: &str, s: &Scene| -> Result<String> {
        match &signer {
            Some(signer) => signer.sign(href, &s.collection),
            None => Ok(href.to_string()),
        }
    };
    let mut out: Vec<YearlyBand> = bands.iter().map(|b| YearlyBand { band: b.clone(), min: f32::INFINITY, max: f32::NEG_INFINITY, samples: 0 }).collect();
    let mut used = Vec::new();
    progress.started(Some(scenes.len() as u64));
    for (i, s) in scenes.iter().enumerate() {
        progress.check_cancelled()?;
        progress.advanced(i as u64 + 1, scenes.len() as u64, format!("yearly min/max: {}", s.id));
        let Some(scl_href) = s.assets.get("SCL") else {
            progress.warn(format!("{}: no SCL asset; left out of the yearly min/max", s.id));
            continue;
        };
        let classes: Vec<u8> = match sample_band(&sign(scl_href, s)?, &points, READ_PX) {
            Ok(c) => c,
            Err(e) => {
                progress.warn(format!("{}: {}; left out", s.id, crate::error_chain(&e)));
                continue;
            }
        };
        let clear: Vec<bool> = classes.iter().map(|c| scl_has_data(*c) && !scl_is_cloud(*c)).collect();
        if !clear.iter().any(|c| *c) {
            continue;
        }
        let offset = s2::dn_offset(s.processing_baseline.as_deref(), s.boa_offset_applied);
        for b in out.iter_mut() {
            let Some(href) = s.assets.get(&b.band) else { continue };
            let dn: Vec<f32> = sample_band(&sign(href, s)?, &points, READ_PX)?;
            let mut values: Vec<f32> = dn.iter().zip(&clear).filter(|(_, c)| **c).map(|(v, _)| *v).collect();
            s2::dn_to_reflectance(&mut values, offset);
            for v in values.into_iter().filter(|v| v.is_finite()) {
                b.min = b.min.min(v);
                b.max = b.max.max(v);
                b.samples += 1;
            }
        }
        used.push(s.id.clone());
    }
    if used.is_empty() {
        return Err(Error::invalid("yearly min/max", format!("no scene of {range} has a clear view of the AOI; choose another range")));
    }
    Ok(YearlyMinMax { range: range.into(), scenes: used, bands: out })
}
