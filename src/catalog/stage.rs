//! The search stage of a project: Sentinel-2 candidates for t0 and t1, Sentinel-1 scenes around
//! them, the choice of one S2 scene per date range and its S1 partners, written to `catalog/`
//! (`items.json`: the STAC items as served; `search.json`: scenes, choice and pairing).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pairing::{Pair, Unpaired, pair_scenes};
use super::search::{SearchQuery, StacClient};
use super::sign::PcSigner;
use super::local::StaticCatalog;
use super::{Mission, ProviderConfig, ProviderKind, Scene, cover};
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
    /// Measure cloud and coverage over the AOI from each candidate's SCL (a few kB each).
    pub measure_aoi_cover: bool,
    /// Least share of the AOI a date's scenes must cover, percent.
    pub min_coverage_percent: f64,
}

impl SearchConfig {
    pub fn new(provider: ProviderConfig) -> Self {
        SearchConfig {
            provider,
            scene_max_cloud_percent: 80.0,
            max_gap_days: 6.0,
            page_size: 100,
            max_items: 2000,
            timeout_secs: 60,
            measure_aoi_cover: true,
            min_coverage_percent: 95.0,
        }
    }
}

/// Sample points per side of the AOI grid for cloud cover.
const COVER_SAMPLES: usize = 48;
/// Largest SCL read per scene, pixels per side (GDAL takes it from an overview).
const COVER_READ_PX: usize = 96;

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
    /// Every scene of the chosen date and platform (a mosaic when the AOI spans tiles).
    #[serde(default)]
    pub t0_scenes: Vec<String>,
    #[serde(default)]
    pub t1_scenes: Vec<String>,
    /// The provider searched, so later stages can sign or authorise asset URLs.
    #[serde(default)]
    pub provider: Option<ProviderConfig>,
    /// Why a date range has no choice, and other findings for the user.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The other acquisitions of each window kept for its composite (every scene of each, by
    /// date); absent where project.yaml's `composite:` leaves the window off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_t0: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_t1: Option<Vec<String>>,
}

impl SearchResult {
    /// A choice made without a search (local data, benchmarks): the chosen S2 scenes of t0 and
    /// t1, and each S1 scene with the S2 scene it partners.
    pub fn of_choice(t0: Option<Scene>, t1: Option<Scene>, s1_pairs: Vec<(Scene, Scene)>) -> SearchResult {
        let pairs = s1_pairs
            .iter()
            .map(|(s2, s1)| Pair {
                s2_id: s2.id.clone(),
                s1_id: s1.id.clone(),
                gap_hours: (s1.datetime - s2.datetime).num_minutes() as f64 / 60.0,
                relative_orbit: s1.relative_orbit,
                orbit_state: s1.orbit_state.clone(),
            })
            .collect();
        SearchResult {
            chosen_t0: t0.as_ref().map(|s| s.id.clone()),
            chosen_t1: t1.as_ref().map(|s| s.id.clone()),
            s2_t0: t0.into_iter().collect(),
            s2_t1: t1.into_iter().collect(),
            s1: s1_pairs.into_iter().map(|(_, s1)| s1).collect(),
            pairs,
            unpaired: vec![],
            t0_scenes: vec![],
            t1_scenes: vec![],
            provider: None,
            notes: vec![],
            composite_t0: None,
            composite_t1: None,
        }
    }

    /// Writes `catalog/search.json`.
    pub fn save(&self, project: &Project) -> Result<()> {
        crate::fsutil::save_json(&project.search_json(), self)
    }

    /// Reads `catalog/search.json`; `next` names the command the user wants to run after search.
    pub fn load(project: &Project, next: &str) -> Result<SearchResult> {
        let path = project.search_json();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Project { path: path.clone(), message: format!("{e}; run `s2cr search` before `s2cr {next}`") })?;
        serde_json::from_str(&text).map_err(Error::json(&path, "run `s2cr search` again"))
    }

    /// Chooses another candidate for t0 (`t1` false) or t1 by hand: the scenes of its
    /// acquisition join it, Sentinel-1 partners are paired again (within `max_gap_days`), and a
    /// note records the choice. Later stages see the new choice at their next run.
    pub fn choose(&mut self, t1: bool, id: &str, max_gap_days: f64) -> Result<()> {
        let list = if t1 { &self.s2_t1 } else { &self.s2_t0 };
        let Some(scene) = list.iter().find(|s| s.id == id) else {
            return Err(Error::invalid(if t1 { "t1" } else { "t0" }, format!("{id} is not one of the search's candidates for this date range")));
        };
        let group: Vec<String> = list.iter().filter(|s| group_key(s) == group_key(scene)).map(|s| s.id.clone()).collect();
        let old = self.chosen_s2()[t1 as usize].iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        // The composite keeps the window's other acquisitions: the old choice joins it, the new
        // one leaves it.
        let composite = if t1 { &mut self.composite_t1 } else { &mut self.composite_t0 };
        if let Some(ids) = composite {
            ids.retain(|i| !group.contains(i));
            for i in old {
                if !ids.contains(&i) {
                    ids.push(i);
                }
            }
            let order = |i: &String| list.iter().find(|s| &s.id == i).map(|s| (s.datetime, s.id.clone()));
            ids.sort_by_key(order);
        }
        if t1 {
            (self.chosen_t1, self.t1_scenes) = (Some(id.to_string()), group);
        } else {
            (self.chosen_t0, self.t0_scenes) = (Some(id.to_string()), group);
        }
        let find = |list: &[Scene], id: &Option<String>| list.iter().find(|s| Some(&s.id) == id.as_ref()).cloned();
        if let (Some(a), Some(b)) = (find(&self.s2_t0, &self.chosen_t0), find(&self.s2_t1, &self.chosen_t1)) {
            (self.pairs, self.unpaired) = pair_scenes(&a, &b, &self.s1, max_gap_days * 24.0);
        }
        let window = if t1 { "t1" } else { "t0" };
        self.notes.retain(|n| !n.starts_with(&format!("{window}:")));
        self.notes.push(format!("{window}: {id} chosen by hand"));
        if self.composite_t0.is_some() && !t1 || self.composite_t1.is_some() && t1 {
            let dates: Vec<String> = self.composite_s2(t1).iter().map(|g| group_key(g[0]).0).collect();
            let prefix = format!("{window} composite:");
            self.notes.retain(|n| !n.starts_with(&prefix));
            self.notes.push(composite_note(window, &dates));
        }
        Ok(())
    }

    /// Saves a choice made by hand and records the new search.json in the search stage's
    /// manifest, so the stage stays done (its result is what the user wants).
    pub fn save_choice(&self, project: &Project) -> Result<()> {
        self.save(project)?;
        let manifest_path = project.manifest_path(Stage::Search, None);
        if let Some(mut m) = Manifest::load(&manifest_path)? {
            let path = project.search_json();
            let record = crate::project::FileRecord::of(project.root(), &path)?;
            m.outputs.retain(|f| f.path != record.path);
            m.outputs.push(record);
            m.save(&manifest_path)?;
        }
        Ok(())
    }

    /// The Sentinel-2 scenes to use for t0 and for t1: the chosen scene of each date range with
    /// the other scenes of its acquisition (an AOI across tiles). Empty where nothing was chosen.
    pub fn chosen_s2(&self) -> [Vec<&Scene>; 2] {
        fn pick<'a>(list: &'a [Scene], chosen: &Option<String>, group: &[String]) -> Vec<&'a Scene> {
            let wanted: Vec<&String> = if group.is_empty() { chosen.iter().collect() } else { group.iter().collect() };
            list.iter().filter(|s| wanted.contains(&&s.id)).collect()
        }
        [pick(&self.s2_t0, &self.chosen_t0, &self.t0_scenes), pick(&self.s2_t1, &self.chosen_t1, &self.t1_scenes)]
    }

    /// The acquisitions kept for a window's composite (`t1` false: t0), oldest first, each with
    /// all its scenes (an AOI across tiles); empty where the composite is off.
    pub fn composite_s2(&self, t1: bool) -> Vec<Vec<&Scene>> {
        let (list, ids) = if t1 { (&self.s2_t1, &self.composite_t1) } else { (&self.s2_t0, &self.composite_t0) };
        let Some(ids) = ids else { return Vec::new() };
        let mut groups: Vec<Vec<&Scene>> = Vec::new();
        let mut scenes: Vec<&Scene> = list.iter().filter(|s| ids.contains(&s.id)).collect();
        scenes.sort_by(|a, b| a.datetime.cmp(&b.datetime).then(a.id.cmp(&b.id)));
        for s in scenes {
            match groups.last_mut() {
                Some(g) if group_key(g[0]) == group_key(s) => g.push(s),
                _ => groups.push(vec![s]),
            }
        }
        groups
    }

    /// The acquisitions (days and platforms; one may span tiles) among a window's candidates.
    pub fn acquisitions(&self, t1: bool) -> usize {
        let mut keys: Vec<(String, String)> = if t1 { &self.s2_t1 } else { &self.s2_t0 }.iter().map(group_key).collect();
        keys.sort();
        keys.dedup();
        keys.len()
    }

    /// Whether a scene is kept for its window's composite.
    pub fn in_composite(&self, id: &str) -> bool {
        [&self.composite_t0, &self.composite_t1].into_iter().flatten().any(|ids| ids.iter().any(|i| i == id))
    }

    /// One line per window on its acquisitions: how many, and what the composite keeps.
    pub fn window_summary(&self) -> Vec<String> {
        [false, true]
            .into_iter()
            .map(|t1| {
                let (window, composite) = if t1 { ("t1", &self.composite_t1) } else { ("t0", &self.composite_t0) };
                let kept = match composite {
                    Some(_) => format!("; {} kept for the composite", self.composite_s2(t1).len()),
                    None => "; no composite (project.yaml `composite:`)".into(),
                };
                format!("{window}: {} acquisition(s) in the window{kept}", self.acquisitions(t1))
            })
            .collect()
    }

    /// The Sentinel-1 scenes paired with the chosen Sentinel-2 scenes.
    pub fn paired_s1(&self) -> Vec<&Scene> {
        self.pairs.iter().filter_map(|p| self.s1.iter().find(|s| s.id == p.s1_id)).collect()
    }
}

/// Scenes of one acquisition: the same day and platform.
fn group_key(s: &Scene) -> (String, String) {
    (s.datetime.format("%Y-%m-%d").to_string(), s.platform.clone().unwrap_or_default())
}

/// Sets each scene's cloud and coverage over the AOI, scenes of one acquisition combined.
fn measure_cover(provider: &super::ProviderConfig, scenes: &mut [Scene], points: &[(f64, f64)], signer: Option<&PcSigner>, progress: &Progress) -> Result<()> {
    let mut keys: Vec<(String, String)> = scenes.iter().map(group_key).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        progress.check_cancelled()?;
        let mut samples = Vec::new();
        for s in scenes.iter().filter(|s| group_key(s) == key) {
            let Some(href) = s.assets.get("SCL") else { continue };
            if let Err(why) = super::check_href(provider, href) {
                progress.warn(format!("{}: cloud over the AOI unknown: asset SCL: {why}", s.id));
                continue;
            }
            let href = match signer {
                Some(signer) => match signer.sign(href, &s.collection) {
                    Ok(h) => h,
                    Err(e) => {
                        progress.warn(format!("{}: {}", s.id, crate::error_chain(&e)));
                        continue;
                    }
                },
                None => href.clone(),
            };
            match cover::sample_scl(&href, points, COVER_READ_PX) {
                Ok(v) => samples.push(v),
                Err(e) => progress.warn(format!("{}: cloud over the AOI unknown: {}", s.id, crate::error_chain(&e))),
            }
        }
        if samples.is_empty() {
            continue;
        }
        let c = cover::combine(&samples);
        for s in scenes.iter_mut().filter(|s| group_key(s) == key) {
            s.aoi_cloud_percent = Some(c.cloud_percent);
            s.aoi_coverage_percent = Some(c.coverage_percent);
        }
    }
    Ok(())
}

/// The clearest acceptable scene of a date range (cloud over the AOI when measured, else the
/// scene's), the one nearest to the fire breaking ties: the latest before (t0), the earliest
/// after (t1). Scenes covering too little of the AOI, or cloudier over it than allowed, are
/// left out; `Err` says why nothing was chosen.
fn choose<'a>(scenes: &'a [Scene], latest: bool, max_aoi_cloud: f64, min_coverage: f64) -> Result<&'a Scene, String> {
    let cloud = |s: &Scene| s.aoi_cloud_percent.or(s.cloud_cover).unwrap_or(100.0);
    if scenes.is_empty() {
        return Err("no Sentinel-2 scene in the date range".into());
    }
    let acceptable: Vec<&Scene> = scenes
        .iter()
        .filter(|s| s.aoi_coverage_percent.is_none_or(|c| c >= min_coverage))
        .filter(|s| cloud(s) <= max_aoi_cloud)
        .collect();
    acceptable
        .into_iter()
        .min_by(|a, b| cloud(a).total_cmp(&cloud(b)).then_with(|| if latest { b.datetime.cmp(&a.datetime) } else { a.datetime.cmp(&b.datetime) }))
        .ok_or_else(|| {
            let best = scenes.iter().map(cloud).fold(f64::INFINITY, f64::min);
            format!(
                "{} scenes, none with at most {max_aoi_cloud} % cloud over the AOI and {min_coverage} % coverage (clearest: {best:.1} % cloud)",
                scenes.len()
            )
        })
}

/// The acquisitions a window's composite keeps besides the chosen one: those covering enough of
/// the AOI with some clear pixels over it (cloud under 100 %, or unknown), the clearest
/// `max_scenes`; every scene of each, by date. With a note for the user.
fn composite_candidates(scenes: &[Scene], chosen: &[String], max_scenes: usize, min_coverage: f64, window: &str) -> (Vec<String>, String) {
    let cloud = |s: &Scene| s.aoi_cloud_percent.or(s.cloud_cover);
    // One acquisition a day (preprocessed/<date>/ holds one), none on the chosen one's day.
    let chosen_days: Vec<String> = scenes.iter().filter(|s| chosen.contains(&s.id)).map(|s| group_key(s).0).collect();
    let mut keys: Vec<((String, String), f64)> = Vec::new();
    for s in scenes.iter().filter(|s| !chosen.contains(&s.id)) {
        let key = group_key(s);
        if s.aoi_coverage_percent.is_some_and(|c| c < min_coverage) || cloud(s).is_some_and(|c| c >= 100.0) || chosen_days.contains(&key.0) || keys.iter().any(|k| k.0.0 == key.0) {
            continue;
        }
        keys.push((key, cloud(s).unwrap_or(0.0)));
    }
    keys.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    keys.truncate(max_scenes);
    let mut kept: Vec<&Scene> = scenes.iter().filter(|s| !chosen.contains(&s.id) && keys.iter().any(|k| k.0 == group_key(s))).collect();
    kept.sort_by(|a, b| a.datetime.cmp(&b.datetime).then(a.id.cmp(&b.id)));
    let mut dates: Vec<String> = keys.iter().map(|k| k.0.0.clone()).collect();
    dates.sort();
    (kept.into_iter().map(|s| s.id.clone()).collect(), composite_note(window, &dates))
}

/// The search's note on a window's composite, from the dates it keeps.
fn composite_note(window: &str, dates: &[String]) -> String {
    if dates.is_empty() {
        format!("{window} composite: no other acquisition in the window covers the AOI with clear pixels; nothing to composite")
    } else {
        format!("{window} composite: {} other acquisition(s) kept ({})", dates.len(), dates.join(", "))
    }
}

fn widen(range: DateRange, days: f64) -> DateRange {
    let d = chrono::Duration::days(days.ceil() as i64);
    DateRange { from: range.from - d, to: range.to + d }
}

/// The data's attribution, as Copernicus asks for it.
pub fn attribution(year: i32) -> String {
    format!("Contains modified Copernicus Sentinel data {year}")
}

/// The attribution of a project's data: the year of its post-fire scene (none named when the
/// search has not run).
pub fn project_attribution(project: &Project) -> String {
    let year = crate::catalog::stage::SearchResult::load(project, "").ok().and_then(|s| s.chosen_s2()[1].first().map(|sc| chrono::Datelike::year(&sc.datetime)));
    match year {
        Some(y) => attribution(y),
        None => "Contains modified Copernicus Sentinel data".into(),
    }
}

/// Runs the search for a project; skipped when `catalog/` is up to date with these parameters.
pub fn search(project: &Project, cfg: &SearchConfig, progress: &Progress) -> Result<SearchResult> {
    progress.cleaned(crate::fsutil::remove_stale_partials(&project.catalog_dir(), crate::project::MAX_DEPTH));
    let result_path = project.search_json();
    let manifest_path = project.manifest_path(Stage::Search, None);
    // Every setting the search reads, project.yaml's included: a changed one makes the
    // catalog stale.
    let params = project.stage_parameters(Stage::Search, serde_json::to_value(cfg).map_err(|e| Error::invalid("search parameters", e.to_string()))?);
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
    // A STAC API, or a static catalog on disk for the local provider.
    let (client, local) = match cfg.provider.kind {
        ProviderKind::Local => (None, Some(StaticCatalog::open(std::path::Path::new(&cfg.provider.stac_url))?)),
        _ => (Some(StacClient::new(&cfg.provider.stac_url, Duration::from_secs(cfg.timeout_secs))?), None),
    };
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
        let items = match (&client, &local) {
            (Some(c), _) => c.search(&query, &progress.for_stage("search"))?,
            (None, Some(l)) => l.search(&query),
            (None, None) => Vec::new(),
        };
        let scenes: Vec<Scene> = items.iter().filter_map(|i| Scene::from_item(i, cfg.provider.kind, &cfg.provider)).collect();
        all_items.extend(items);
        progress.info(format!("{what}: {} scenes", scenes.len()));
        Ok(scenes)
    };
    let (t0, t1) = (project.config.t0, project.config.t1);
    let mut s2_t0 = run(1, "Sentinel-2 at t0", &cfg.provider.s2_collection, t0, Some(cfg.scene_max_cloud_percent))?;
    let mut s2_t1 = run(2, "Sentinel-2 at t1", &cfg.provider.s2_collection, t1, Some(cfg.scene_max_cloud_percent))?;
    let mut s1 = run(3, "Sentinel-1 around t0", &cfg.provider.s1_collection, widen(t0, cfg.max_gap_days), None)?;
    s1.extend(run(4, "Sentinel-1 around t1", &cfg.provider.s1_collection, widen(t1, cfg.max_gap_days), None)?);
    s1.retain(|s| s.mission == Mission::Sentinel1);
    s1.sort_by(|a, b| a.datetime.cmp(&b.datetime).then(a.id.cmp(&b.id)));
    s1.dedup_by(|a, b| a.id == b.id);

    let signer = match &cfg.provider.token_url {
        Some(url) => Some(PcSigner::new(url, Duration::from_secs(cfg.timeout_secs))?),
        None => None,
    };
    if cfg.measure_aoi_cover {
        let points = cover::sample_points(&aoi, COVER_SAMPLES);
        progress.info(format!("measuring cloud over the AOI at {} points from each scene's SCL", points.len()));
        measure_cover(&cfg.provider, &mut s2_t0, &points, signer.as_ref(), progress)?;
        measure_cover(&cfg.provider, &mut s2_t1, &points, signer.as_ref(), progress)?;
    }
    let max_cloud = project.config.max_cloud_percent;
    let mut notes = Vec::new();
    let chosen_t0 = choose(&s2_t0, true, max_cloud, cfg.min_coverage_percent).map_err(|why| notes.push(format!("t0: {why}"))).ok();
    let chosen_t1 = choose(&s2_t1, false, max_cloud, cfg.min_coverage_percent).map_err(|why| notes.push(format!("t1: {why}"))).ok();
    let (pairs, unpaired) = match (chosen_t0, chosen_t1) {
        (Some(a), Some(b)) => pair_scenes(a, b, &s1, cfg.max_gap_days * 24.0),
        _ => (Vec::new(), Vec::new()),
    };
    let group = |chosen: Option<&Scene>, list: &[Scene]| -> Vec<String> {
        chosen.map(|c| list.iter().filter(|s| group_key(s) == group_key(c)).map(|s| s.id.clone()).collect()).unwrap_or_default()
    };
    let (t0_scenes, t1_scenes) = (group(chosen_t0, &s2_t0), group(chosen_t1, &s2_t1));
    let mut composites = [None, None];
    if let Some(c) = &project.config.composite {
        for (k, (list, chosen)) in [(&s2_t0, &t0_scenes), (&s2_t1, &t1_scenes)].into_iter().enumerate() {
            if c.method(k == 1) != crate::project::CompositeMethod::Off {
                let (ids, note) = composite_candidates(list, chosen, c.max_scenes, cfg.min_coverage_percent, ["t0", "t1"][k]);
                progress.info(&note);
                notes.push(note);
                composites[k] = Some(ids);
            }
        }
    }
    let [composite_t0, composite_t1] = composites;
    let result = SearchResult {
        chosen_t0: chosen_t0.map(|s| s.id.clone()),
        chosen_t1: chosen_t1.map(|s| s.id.clone()),
        t0_scenes,
        t1_scenes,
        provider: Some(cfg.provider.clone()),
        notes,
        composite_t0,
        composite_t1,
        s2_t0: s2_t0.clone(),
        s2_t1: s2_t1.clone(),
        s1,
        pairs,
        unpaired,
    };
    let items_path = project.items_json();
    let collection = serde_json::json!({"type": "FeatureCollection", "features": all_items});
    crate::fsutil::save_json(&items_path, &collection)?;
    crate::fsutil::save_json(&result_path, &result)?;
    let mut manifest = Manifest::new(Stage::Search, params);
    manifest.add_input(project.root(), &project.config.aoi)?;
    manifest.add_output(project.root(), &items_path)?;
    manifest.add_output(project.root(), &result_path)?;
    manifest.save(&manifest_path)?;
    progress.advanced(4, 4, "done");
    Ok(result)
}

#[cfg(test)]
mod choice_tests {
    use super::*;
    use crate::catalog::Mission;

    fn scene(id: &str, mission: Mission, when: &str) -> Scene {
        let mut s = Scene::new(id, "c", mission, when.parse().unwrap());
        s.platform = Some("p".into());
        if mission == Mission::Sentinel1 {
            s.assets.insert("VV".into(), "vv.tif".into());
            s.assets.insert("VH".into(), "vh.tif".into());
        }
        s
    }

    #[test]
    fn a_choice_by_hand_regroups_and_pairs_again() {
        let (a, b, c) = (scene("A", Mission::Sentinel2, "2024-01-05T10:00:00Z"), scene("B", Mission::Sentinel2, "2024-01-20T10:00:00Z"), scene("C", Mission::Sentinel2, "2024-02-10T10:00:00Z"));
        let near_a = scene("S1A", Mission::Sentinel1, "2024-01-04T17:00:00Z");
        let near_b = scene("S1B", Mission::Sentinel1, "2024-01-21T17:00:00Z");
        let near_c = scene("S1C", Mission::Sentinel1, "2024-02-11T17:00:00Z");
        let mut r = SearchResult::of_choice(Some(a.clone()), Some(c.clone()), vec![(a.clone(), near_a.clone()), (c, near_c.clone())]);
        r.s2_t0.push(b);
        r.s1.push(near_b);
        r.choose(false, "B", 6.0).unwrap();
        assert_eq!(r.chosen_t0.as_deref(), Some("B"));
        assert_eq!(r.t0_scenes, ["B"]);
        let partner = r.pairs.iter().find(|p| p.s2_id == "B").map(|p| p.s1_id.as_str());
        assert_eq!(partner, Some("S1B"));
        assert!(r.notes.iter().any(|n| n == "t0: B chosen by hand"));
        assert!(r.choose(true, "A", 6.0).unwrap_err().to_string().contains("not one of the search's candidates"));
    }

    #[test]
    fn a_composite_keeps_the_windows_other_clear_acquisitions() {
        let at = |id: &str, when: &str, cloud: f64, cover: f64| {
            let mut s = scene(id, Mission::Sentinel2, when);
            (s.aoi_cloud_percent, s.aoi_coverage_percent) = (Some(cloud), Some(cover));
            s
        };
        let list = vec![
            at("chosen", "2024-01-05T10:00:00Z", 0.0, 100.0),
            at("later-a", "2024-01-15T10:00:00Z", 40.0, 100.0),
            // The same acquisition on the next tile.
            at("later-b", "2024-01-15T10:00:01Z", 40.0, 100.0),
            at("overcast", "2024-01-20T10:00:00Z", 100.0, 100.0),
            at("edge", "2024-01-25T10:00:00Z", 0.0, 30.0),
            at("hazy", "2024-01-10T10:00:00Z", 70.0, 100.0),
        ];
        let (ids, note) = composite_candidates(&list, &["chosen".into()], 8, 95.0, "t1");
        assert_eq!(ids, ["hazy", "later-a", "later-b"]);
        assert_eq!(note, "t1 composite: 2 other acquisition(s) kept (2024-01-10, 2024-01-15)");
        // The clearest first when there are more than asked for.
        let (ids, _) = composite_candidates(&list, &["chosen".into()], 1, 95.0, "t1");
        assert_eq!(ids, ["later-a", "later-b"]);
        let (ids, note) = composite_candidates(&list[..1], &["chosen".into()], 8, 95.0, "t1");
        assert!(ids.is_empty() && note.contains("nothing to composite"), "{note}");
        // A choice by hand swaps the chosen acquisition and a composite one.
        let mut r = SearchResult::of_choice(Some(list[0].clone()), Some(list[0].clone()), vec![]);
        r.s2_t1 = list.clone();
        r.composite_t1 = Some(vec!["hazy".into(), "later-a".into(), "later-b".into()]);
        r.choose(true, "hazy", 6.0).unwrap();
        assert_eq!(r.composite_t1.as_deref(), Some(&["chosen".to_string(), "later-a".into(), "later-b".into()][..]));
        let groups: Vec<Vec<&str>> = r.composite_s2(true).iter().map(|g| g.iter().map(|s| s.id.as_str()).collect()).collect();
        assert_eq!(groups, [vec!["chosen"], vec!["later-a", "later-b"]]);
        assert!(r.notes.iter().any(|n| n == "t1 composite: 2 other acquisition(s) kept (2024-01-05, 2024-01-15)"), "{:?}", r.notes);
        assert!(r.composite_s2(false).is_empty());
        assert_eq!(r.window_summary(), ["t0: 1 acquisition(s) in the window; no composite (project.yaml `composite:`)", "t1: 5 acquisition(s) in the window; 2 kept for the composite"]);
        assert!(r.in_composite("later-b") && !r.in_composite("hazy"));
    }
}
