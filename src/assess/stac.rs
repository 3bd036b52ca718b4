//! A run's outputs as a static STAC catalog, `outputs/<run>/catalog.json`, with one item per
//! product (in `outputs/<run>/stac/`): the synthetic Sentinel-2 image (`eo:bands`), the burn
//! indices, the severity maps (`classification`), the burned-area perimeters (and the official
//! one when the assessment had it), and the assessment report. Every item has the grid's `proj:`
//! fields, the `processing` extension naming this software and its version, the data's
//! attribution, and a link to the model's STAC item when the run has one. Hrefs are relative, so
//! the folder can be moved or uploaded as it is. Written by the assessment stage, when the
//! outputs are complete.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::project::{Project, RunName};

const EO: &str = "https://stac-extensions.github.io/eo/v1.1.0/schema.json";
const PROJECTION: &str = "https://stac-extensions.github.io/projection/v1.1.0/schema.json";
const PROCESSING: &str = "https://stac-extensions.github.io/processing/v1.2.0/schema.json";
const CLASSIFICATION: &str = "https://stac-extensions.github.io/classification/v1.1.0/schema.json";

/// Sentinel-2's common band names and centre wavelengths (µm).
fn eo_band(name: &str) -> Value {
    let (common, centre) = match name {
        "B01" => ("coastal", 0.443),
        "B02" => ("blue", 0.490),
        "B03" => ("green", 0.560),
        "B04" => ("red", 0.665),
        "B05" => ("rededge", 0.705),
        "B06" => ("rededge", 0.740),
        "B07" => ("rededge", 0.783),
        "B08" => ("nir", 0.842),
        "B8A" => ("nir08", 0.865),
        "B09" => ("nir09", 0.945),
        "B11" => ("swir16", 1.610),
        "B12" => ("swir22", 2.190),
        _ => return json!({"name": name}),
    };
    json!({"name": name, "common_name": common, "center_wavelength": centre})
}

/// The data's attribution (the catalog's: every stage's files carry it).
pub use crate::catalog::stage::{attribution, project_attribution};

/// What made a run's outputs, in one line: this program's version and build, the run, and the
/// SHA-256 of the generator checkpoint its inference read (from the infer manifest).
pub fn project_provenance(project: &Project, run: &RunName) -> String {
    let manifest = crate::project::Manifest::load(&project.manifest_path(crate::project::Stage::Infer, Some(run))).ok().flatten();
    let model = manifest.and_then(|m| m.inputs.into_iter().find(|f| f.path.contains("generator")).map(|f| format!("; generator {} sha256 {}", f.path, f.sha256)));
    format!("sent2-cloud-remover {}; run {run}{}", crate::provenance::long_version(), model.unwrap_or_default())
}

struct Context {
    bbox: [f64; 4],
    datetime: String,
    year: i32,
    proj: Value,
    processing: Value,
    model_item: Option<String>,
}

impl Context {
    fn item(&self, id: &str, title: &str, description: &str, extensions: &[&str], properties: Value, assets: Value) -> Value {
        let [w, s, e, n] = self.bbox;
        let mut props = json!({
            "title": title,
            "description": description,
            "datetime": self.datetime,
            "s2cr:attribution": attribution(self.year),
        });
        for source in [&self.proj, &self.processing, &properties] {
            if let (Some(p), Some(add)) = (props.as_object_mut(), source.as_object()) {
                p.extend(add.clone());
            }
        }
        let mut links = vec![
            json!({"rel": "root", "href": "../catalog.json", "type": "application/json"}),
            json!({"rel": "parent", "href": "../catalog.json", "type": "application/json"}),
        ];
        if let Some(model) = &self.model_item {
            links.push(json!({"rel": "derived_from", "href": model, "type": "application/geo+json", "title": "The model that made the synthetic image (STAC MLM item)"}));
        }
        let mut ext = vec![PROJECTION, PROCESSING];
        ext.extend_from_slice(extensions);
        json!({
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": ext,
            "id": id,
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
            "bbox": [w, s, e, n],
            "properties": props,
            "assets": assets,
            "links": links,
        })
    }
}

/// `../<relative>` from the items' folder, when the file exists.
fn asset_href(out: &Path, relative: &str) -> Option<String> {
    out.join(relative).is_file().then(|| format!("../{relative}"))
}

/// Writes `outputs/<run>/catalog.json` and its items; returns the catalog's path.
pub fn write_catalog(project: &Project, run: &RunName) -> Result<PathBuf> {
    use super::files;
    let out = project.output_dir(run);
    let stac_dir = out.join("stac");
    std::fs::create_dir_all(&stac_dir).map_err(Error::io(&stac_dir, "creating the folder"))?;
    let search = crate::catalog::stage::SearchResult::load(project, "the outputs' catalog")?;
    let t1 = search.chosen_s2()[1].first().map(|s| s.datetime);
    let datetime = t1.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    let year = t1.map(|d| chrono::Datelike::year(&d)).unwrap_or(1970);
    let g = &project.config.grid;
    let model = project.run_dir(run).join("model.stac.json");
    let ctx = Context {
        bbox: project.aoi()?.bbox(),
        datetime,
        year,
        proj: json!({"proj:epsg": g.epsg, "proj:shape": [g.height, g.width], "proj:transform": [g.pixel_size_m, 0.0, g.x_min, 0.0, -g.pixel_size_m, g.y_max]}),
        processing: json!({"processing:software": {"sent2-cloud-remover": crate::provenance::long_version()}, "processing:level": "L4"}),
        model_item: model.is_file().then(|| format!("../../../runs/{run}/model.stac.json")),
    };
    let assess = format!("{}/", project.assess_dir(run).strip_prefix(&out).map(|p| p.display().to_string()).unwrap_or_else(|_| "assess".into()));
    let tif = "image/tiff; application=geotiff; profile=cloud-optimized";
    let mut items: Vec<(String, Value)> = Vec::new();

    // The synthetic image, its bands named as written.
    let synthetic = project.synthetic_s2(run);
    if let Some(href) = synthetic.strip_prefix(&out).ok().and_then(|r| asset_href(&out, &r.display().to_string())) {
        let info = crate::raster::info(&synthetic.display().to_string())?;
        let bands: Vec<Value> = info.bands.iter().map(|b| eo_band(b.description.trim())).collect();
        items.push((
            "synthetic-s2".into(),
            ctx.item(
                "synthetic-s2",
                "Synthetic Sentinel-2 at t1",
                "Cloud-free Sentinel-2 reflectance at t1 synthesized by the run's pix2pix generator from Sentinel-1 at t0 and t1 and Sentinel-2 at t0.",
                &[EO],
                json!({"processing:lineage": format!("s2cr infer, run {run}")}),
                json!({"image": {"href": href, "type": tif, "title": "Synthetic Sentinel-2 t1 (reflectance)", "roles": ["data"], "eo:bands": bands}}),
            ),
        ));
    }
    // The gap-filled post-fire image and where each pixel came from.
    let (gapfilled, source) = (project.gapfilled_s2(run), project.gapfill_source(run));
    if let (Some(image), Some(from)) = (
        gapfilled.strip_prefix(&out).ok().and_then(|r| asset_href(&out, &r.display().to_string())),
        source.strip_prefix(&out).ok().and_then(|r| asset_href(&out, &r.display().to_string())),
    ) {
        let info = crate::raster::info(&gapfilled.display().to_string())?;
        let bands: Vec<Value> = info.bands.iter().map(|b| eo_band(b.description.trim())).collect();
        let classes: Vec<Value> = crate::assess::gapfill::SOURCE_CLASSES
            .iter()
            .map(|(code, [r, g, b], name)| json!({"value": code, "name": crate::fsutil::safe_name(name), "description": name, "color_hint": format!("{r:02X}{g:02X}{b:02X}")}))
            .collect();
        items.push((
            "gapfilled-s2".into(),
            ctx.item(
                "gapfilled-s2",
                "Gap-filled Sentinel-2 at t1",
                "The real post-fire Sentinel-2 where it is clear, else the composite of the t1 window's other clear acquisitions, else the synthetic image; with a mask band, the date each value stands for, and a class map of the source of each pixel. Its clear pixels are the real ones: it is not scored against the real image.",
                &[EO, CLASSIFICATION],
                json!({"processing:lineage": format!("s2cr assess, run {run}")}),
                json!({
                    "image": {"href": image, "type": tif, "title": "Gap-filled Sentinel-2 t1 (reflectance, mask, date used)", "roles": ["data"], "eo:bands": bands},
                    "source": {"href": from, "type": tif, "title": "Source of each pixel (real t1, composite, synthetic)", "roles": ["data"], "classification:classes": classes}
                }),
            ),
        ));
    }
    // Monte-Carlo dropout's uncertainty and burn probability, when inference wrote them.
    let mut mc = serde_json::Map::new();
    for (key, path, title) in [("sd", project.uncertainty_s2(run), "Standard deviation of the Monte-Carlo dropout passes, per band"), ("burn-probability", project.burn_probability(run), "Share of the passes whose dNBR reaches the burned class")] {
        if let Some(href) = path.strip_prefix(&out).ok().and_then(|r| asset_href(&out, &r.display().to_string())) {
            mc.insert(key.into(), json!({"href": href, "type": tif, "title": title, "roles": ["data"]}));
        }
    }
    if !mc.is_empty() {
        items.push(("uncertainty".into(), ctx.item("uncertainty", "Uncertainty of the synthetic image", "Monte-Carlo dropout (s2cr infer --samples): the passes' standard deviation per band, and the burn probability.", &[], json!({}), Value::Object(mc))));
    }
    // Burn indices, severity, perimeters: one asset per map (real, synthetic).
    let mut indices = serde_json::Map::new();
    let mut severity = serde_json::Map::new();
    let mut perimeters = serde_json::Map::new();
    for which in ["real", "synthetic", "gapfilled"] {
        if let Some(href) = asset_href(&out, &format!("{assess}{}", files::indices(which))) {
            let what = if which == "gapfilled" { "NBR pre/post, dNBR" } else { "NBR pre/post, dNBR, RdNBR, RBR, NDVI" };
            indices.insert(which.into(), json!({"href": href, "type": tif, "title": format!("{what} ({which})"), "roles": ["data"]}));
        }
        if let Some(href) = asset_href(&out, &format!("{assess}{}", files::severity(which))) {
            severity.insert(which.into(), json!({"href": href, "type": tif, "title": format!("dNBR burn severity ({which})"), "roles": ["data"]}));
        }
        if let Some(href) = asset_href(&out, &format!("{assess}{}", files::perimeter(which))) {
            perimeters.insert(which.into(), json!({"href": href, "type": "application/geo+json", "title": format!("Burned-area outlines ({which} map)"), "roles": ["data"]}));
        }
    }
    if let Some(href) = asset_href(&out, &format!("{assess}{}", files::PERIMETER_REFERENCE)) {
        perimeters.insert("official".into(), json!({"href": href, "type": "application/geo+json", "title": "Official perimeter the maps were compared with", "roles": ["data"]}));
    }
    // The QA rasters: where and by how much the synthetic image departs from the real one.
    let mut qa = serde_json::Map::new();
    for (key, name, title, kind) in [
        ("difference", files::DIFFERENCE, "Synthetic − real t1 reflectance, per band", tif),
        ("spectral-angle", files::SAM, "Spectral angle between synthetic and real t1 (degrees)", tif),
        ("numbers", files::QA_JSON, "Histograms, densities and R² per band", "application/json"),
    ] {
        if let Some(href) = asset_href(&out, &format!("{assess}{name}")) {
            qa.insert(key.into(), json!({"href": href, "type": kind, "title": title, "roles": [if kind == tif { "data" } else { "metadata" }]}));
        }
    }
    if !qa.is_empty() {
        items.push(("quality".into(), ctx.item("quality", "Synthetic against real t1", "Per-band difference and spectral angle between the synthetic and the real post-fire image, with the QA plots' numbers.", &[], json!({}), Value::Object(qa))));
    }
    if !indices.is_empty() {
        items.push(("burn-indices".into(), ctx.item("burn-indices", "Burn indices", "NBR before and after, dNBR, RdNBR, RBR and NDVI after, from the real, the synthetic and the gap-filled post-fire image.", &[], json!({}), Value::Object(indices))));
    }
    if !severity.is_empty() {
        let scheme = super::assessed_classes(project, run).unwrap_or_default();
        let classes: Vec<Value> = scheme
            .classes
            .iter()
            .map(|c| {
                let [r, g, b] = c.color;
                json!({"value": c.code, "name": crate::fsutil::safe_name(&c.name.to_lowercase()), "description": c.name, "color_hint": format!("{r:02X}{g:02X}{b:02X}")})
            })
            .collect();
        items.push((
            "burn-severity".into(),
            ctx.item("burn-severity", "Burn severity", &format!("dNBR severity classes ({} on the {}), from the real, the synthetic and the gap-filled post-fire image.", scheme.name, scheme.scale.name()), &[CLASSIFICATION], json!({"classification:classes": classes}), Value::Object(severity)),
        ));
    }
    if !perimeters.is_empty() {
        items.push(("burned-perimeters".into(), ctx.item("burned-perimeters", "Burned-area perimeters", "Outlines of the burned area of each map (WGS84), and the official perimeter when one was given.", &[], json!({}), Value::Object(perimeters))));
    }
    let mut report = serde_json::Map::new();
    for (key, name, kind) in [("html", files::REPORT_HTML, "text/html"), ("json", files::REPORT_JSON, "application/json")] {
        if let Some(href) = asset_href(&out, &format!("{assess}{name}")) {
            report.insert(key.into(), json!({"href": href, "type": kind, "title": "Assessment report", "roles": ["metadata"]}));
        }
    }
    if !report.is_empty() {
        items.push(("assessment".into(), ctx.item("assessment", "Assessment", "The synthetic image judged by the burned area it maps, against the real one.", &[], json!({}), Value::Object(report))));
    }

    let mut links = vec![json!({"rel": "root", "href": "./catalog.json", "type": "application/json"}), json!({"rel": "self", "href": "./catalog.json", "type": "application/json"})];
    for (id, item) in &items {
        let path = stac_dir.join(format!("{id}.json"));
        let mut item = item.clone();
        if let Some(l) = item["links"].as_array_mut() {
            l.push(json!({"rel": "self", "href": format!("./{id}.json"), "type": "application/geo+json"}));
        }
        crate::fsutil::save_json(&path, &item)?;
        links.push(json!({"rel": "item", "href": format!("./stac/{id}.json"), "type": "application/geo+json", "title": item["properties"]["title"]}));
    }
    if let Some(model) = &ctx.model_item {
        let _ = model;
        links.push(json!({"rel": "related", "href": format!("../../runs/{run}/model.stac.json"), "type": "application/geo+json", "title": "The model (STAC MLM item)"}));
    }
    let catalog = json!({
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": crate::fsutil::safe_name(&format!("s2cr-{}-{run}", project.config.name)),
        "description": format!("Outputs of run {run} of the s2cr project {:?}: the synthetic Sentinel-2 image and its assessment. {}.", project.config.name, attribution(year)),
        "links": links,
    });
    let path = out.join("catalog.json");
    crate::fsutil::save_json(&path, &catalog)?;
    Ok(path)
}
