//! The search stage of a project: Sentinel-2 candidates for t0 and t1, Sentinel-1 scenes around
//! them, the choice of one S2 scene per date range and its S1 partners, written to `catalog/`
//! (`items.json`: the STAC items as served; `search.json`: scenes, choice and pairing).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pairing::{Pair, Unpaired, pair_scenes};
use super::search::{SearchQuery, StacClient};
use super::{Mission, ProviderConfig, Scene};
use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::{DateRange, Manifest, Project, Stage, StageState};

/// Parameters of the search stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    pub provider: ProviderConfig,
    /// Scene-level cloud cover prefilter, percent. Looser than the project's AOI threshold: a
    /// scene that is 60 % cloudy can still be clear over a small AOI.
    pub scene_max_cloud_percent: f64,
    /// Largest time between an S2 scene and its S1 partner, days.
    pub max_gap_days: f64,
    pub page_size: u32,
    pub max_items: usize,
    pub timeout_secs: u64,
}

impl SearchConfig {
    pub fn new(provider: ProviderConfig) -> Self {
        SearchConfig { provider, scene_max_cloud_percent: 80.0, max_gap_days: 6.0, page_size: 100, max_items: 2000, timeout_secs: 60 }
    }
}

/// What the search found and chose; written as `catalog/search.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    pub s2_t0: Vec<Scene>,
    pub s2_t1: Vec<Scene>,
    pub s1: Vec<Scene>,
    pub chosen_t0: Option<String>,
    pub chosen_t1: Option<String>,
    pub pairs: Vec<Pair>,
    pub unpaired: Vec<Unpaired>,
}

/// The clearest scene of a date range, the one nearest to the fire breaking the ties: the latest
/// before (t0), the earliest after (t1).
fn choose(scenes: &[Scene], latest: bool) -> Option<&Scene> {
    scenes.iter().min_by(|a, b| {
        let ca = a.cloud_cover.unwrap_or(100.0);
        let cb = b.cloud_cover.unwrap_or(100.0);
        ca.total_cmp(&cb).then_with(|| if latest { b.datetime.cmp(&a.datetime) } else { a.datetime.cmp(&b.datetime) })
    })
}

fn widen(range: DateRange, days: f64) -> DateRange {
    let d = chrono::Duration::days(days.ceil() as i64);
    DateRange { from: range.from - d, to: range.to + d }
}

/// Runs the search for a project; skipped when `catalog/` is up to date with these parameters.
pub fn search(project: &Project, cfg: &SearchConfig, progress: &Progress) -> Result<SearchResult> {
    let result_path = project.catalog_dir().join("search.json");
    let manifest_path = project.manifest_path(Stage::Search, None);
    let params = serde_json::json!({
        "search": cfg,
        "t0": project.config.t0.to_string(),
        "t1": project.config.t1.to_string(),
    });
    if let Some(m) = Manifest::load(&manifest_path)?
        && m.state(project.root(), Some(&params)) == StageState::Done
        && let Ok(text) = std::fs::read_to_string(&result_path)
        && let Ok(result) = serde_json::from_str::<SearchResult>(&text)
    {
        progress.info("catalog is up to date; nothing to search");
        return Ok(result);
    }
    let aoi = project.aoi()?;
    let bbox = aoi.bbox();
    let client = StacClient::new(&cfg.provider.stac_url, Duration::from_secs(cfg.timeout_secs))?;
    progress.started(Some(4));
    let mut all_items = Vec::new();
    let mut run = |step: u64, what: &str, collection: &str, dates: DateRange, max_cloud: Option<f64>| -> Result<Vec<Scene>> {
        progress.advanced(step - 1, 4, format!("searching {what}"));
        let query = SearchQuery {
            collections: vec![collection.to_string()],
            bbox,
            dates,
            max_cloud_percent: max_cloud,
            page_size: cfg.page_size,
            max_items: cfg.max_items,
        };
        let items = client.search(&query, &progress.for_stage("search"))?;
        let scenes: Vec<Scene> = items.iter().filter_map(|i| Scene::from_item(i, cfg.provider.kind, &cfg.provider)).collect();
        all_items.extend(items);
        progress.info(format!("{what}: {} scenes", scenes.len()));
        Ok(scenes)
    };
    let (t0, t1) = (project.config.t0, project.config.t1);
    let s2_t0 = run(1, "Sentinel-2 at t0", &cfg.provider.s2_collection, t0, Some(cfg.scene_max_cloud_percent))?;
    let s2_t1 = run(2, "Sentinel-2 at t1", &cfg.provider.s2_collection, t1, Some(cfg.scene_max_cloud_percent))?;
    let mut s1 = run(3, "Sentinel-1 around t0", &cfg.provider.s1_collection, widen(t0, cfg.max_gap_days), None)?;
    s1.extend(run(4, "Sentinel-1 around t1", &cfg.provider.s1_collection, widen(t1, cfg.max_gap_days), None)?);
    s1.retain(|s| s.mission == Mission::Sentinel1);
    s1.sort_by(|a, b| a.datetime.cmp(&b.datetime).then(a.id.cmp(&b.id)));
    s1.dedup_by(|a, b| a.id == b.id);

    let chosen_t0 = choose(&s2_t0, true);
    let chosen_t1 = choose(&s2_t1, false);
    let (pairs, unpaired) = match (chosen_t0, chosen_t1) {
        (Some(a), Some(b)) => pair_scenes(a, b, &s1, cfg.max_gap_days * 24.0),
        _ => (Vec::new(), Vec::new()),
    };
    let result = SearchResult {
        chosen_t0: chosen_t0.map(|s| s.id.clone()),
        chosen_t1: chosen_t1.map(|s| s.id.clone()),
        s2_t0,
        s2_t1,
        s1,
        pairs,
        unpaired,
    };
    let items_path = project.catalog_dir().join("items.json");
    let collection = serde_json::json!({"type": "FeatureCollection", "features": all_items});
    write_json(&items_path, &collection)?;
    write_json(&result_path, &result)?;
    let mut manifest = Manifest::new(Stage::Search, params);
    manifest.add_input(project.root(), &project.config.aoi)?;
    manifest.add_output(project.root(), &items_path)?;
    manifest.add_output(project.root(), &result_path)?;
    manifest.save(&manifest_path)?;
    progress.advanced(4, 4, "done");
    Ok(result)
}

fn write_json<T: Serialize>(path: &std::path::Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Json { path: path.to_path_buf(), message: e.to_string() })?;
    crate::project::write_atomic(path, text.as_bytes())
}
