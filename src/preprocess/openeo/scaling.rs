//! How the back-end's Sentinel-2 numbers become reflectance: `reflectance = value * scale +
//! offset`, from the back-end's own collection (`GET /collections/{id}`: `raster:bands` or
//! `eo:bands` in its summaries, per band by name), else project.yaml's `openeo.s2_offset` (digital
//! numbers added before dividing by 10 000, as ESA's BOA_ADD_OFFSET), else no offset with a
//! warning. Not from the STAC provider of the search: a back-end may serve the data with the
//! offset already removed (harmonized), and only it can say.

use serde_json::Value;

use crate::preprocess::s2::QUANTIFICATION_VALUE;

/// `reflectance = value * scale + offset`, and where the numbers came from.
#[derive(Debug, Clone, PartialEq)]
pub struct S2Scaling {
    pub scale: f64,
    pub offset: f64,
    /// Said in the log and the preprocess report.
    pub source: String,
    /// Set when no one stated the offset (0 was taken).
    pub warning: Option<String>,
}

impl S2Scaling {
    /// DN / 10 000 + `dn_offset` / 10 000.
    fn from_dn_offset(dn_offset: f64, source: String, warning: Option<String>) -> S2Scaling {
        let q = QUANTIFICATION_VALUE as f64;
        S2Scaling { scale: 1.0 / q, offset: dn_offset / q, source, warning }
    }

    pub fn describe(&self) -> String {
        format!("reflectance = value x {} + {} ({})", self.scale, self.offset, self.source)
    }
}

/// The scale and offset the collection's metadata gives for every band of `bands`: `None` when
/// it gives none; an error text when it gives them for some bands only, or different ones
/// (the graph applies one pair to all bands).
pub fn from_collection(collection: &Value, bands: &[String]) -> std::result::Result<Option<(f64, f64, &'static str)>, String> {
    for key in ["raster:bands", "eo:bands"] {
        let Some(entries) = collection["summaries"][key].as_array() else { continue };
        let stated = |e: &Value| e.get("scale").and_then(Value::as_f64).is_some() || e.get("offset").and_then(Value::as_f64).is_some();
        if !entries.iter().any(stated) {
            continue;
        }
        let pair = |e: &Value| (e.get("scale").and_then(Value::as_f64).unwrap_or(1.0), e.get("offset").and_then(Value::as_f64).unwrap_or(0.0));
        // One unnamed entry: the same for every band.
        let named = entries.iter().any(|e| e.get("name").is_some());
        let mut pairs = Vec::new();
        for band in bands {
            let entry = if named { entries.iter().find(|e| e["name"].as_str() == Some(band.as_str())) } else { entries.first() };
            match entry.filter(|e| stated(e)) {
                Some(e) => pairs.push(pair(e)),
                None => return Err(format!("its summaries' {key} state a scale or offset for some bands but not for {band}")),
            }
        }
        let first = pairs[0];
        if let Some((band, other)) = bands.iter().zip(&pairs).find(|(_, p)| **p != first) {
            return Err(format!("its summaries' {key} give {band} scale {} offset {}, other bands scale {} offset {}: s2cr applies one pair to all bands", other.0, other.1, first.0, first.1));
        }
        return Ok(Some((first.0, first.1, key)));
    }
    Ok(None)
}

/// The scaling for `bands` of `collection_id`: the collection's metadata (`collection`, when
/// it could be read), else `setting` (project.yaml `openeo.s2_offset`, DNs), else none.
pub fn choose(collection_id: &str, collection: Option<&Value>, bands: &[String], setting: Option<f64>) -> std::result::Result<S2Scaling, String> {
    if let Some(c) = collection
        && let Some((scale, offset, key)) = from_collection(c, bands).map_err(|why| format!("the back-end's collection {collection_id}: {why}"))?
    {
        return Ok(S2Scaling { scale, offset, source: format!("the back-end's collection {collection_id} ({key})"), warning: None });
    }
    if let Some(dn) = setting {
        return Ok(S2Scaling::from_dn_offset(dn, "project.yaml openeo.s2_offset".into(), None));
    }
    Ok(S2Scaling::from_dn_offset(
        0.0,
        "no offset: neither the back-end's collection nor project.yaml states one".into(),
        Some(format!(
            "the back-end's collection {collection_id} states no scale or offset for its bands: taking reflectance = DN / 10000 with no offset. If its data keep the offset of processing baseline 04.00 and later (BOA_ADD_OFFSET, -1000), set `openeo: {{s2_offset: -1000}}` in project.yaml"
        )),
    ))
}

/// The back-end's description of collection `id` (`GET {root}/collections/{id}`, public: no
/// credentials go with it).
pub fn collection_metadata(root: &str, id: &str) -> crate::error::Result<Value> {
    use crate::error::Error;
    let url = format!("{}/collections/{id}", root.trim_end_matches('/'));
    let http = reqwest::blocking::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(20))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Error::invalid("http client", e.to_string()))?;
    let what = "reading the collection's metadata (its Sentinel-2 scale and offset)";
    let response = http.get(&url).send().map_err(|e| Error::Http { url: url.clone(), message: format!("{what}: {}", crate::error::network_cause(&e)), source: Some(e) })?;
    let status = response.status();
    let text = crate::catalog::read_body(response, 16 << 20).map_err(|why| Error::http(url.clone(), format!("{what}: {why}")))?;
    if !status.is_success() {
        return Err(Error::http(url, format!("{what}: {}; check `collections.s2` of the openEO settings", super::client::error_message(status, &text))));
    }
    serde_json::from_str(&text).map_err(Error::json(&url, "the back-end's collection is not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bands() -> Vec<String> {
        ["B04", "B08"].map(String::from).to_vec()
    }

    #[test]
    fn the_collection_then_the_setting_then_none_with_a_warning() {
        let meta = json!({"summaries": {"eo:bands": [{"name": "B04"}, {"name": "B08"}], "raster:bands": [{"name": "B04", "scale": 0.0001, "offset": -0.1}, {"name": "B08", "scale": 0.0001, "offset": -0.1}]}});
        let s = choose("SENTINEL2_L2A", Some(&meta), &bands(), Some(-1000.0)).unwrap();
        assert_eq!((s.scale, s.offset, s.warning.is_none()), (0.0001, -0.1, true));
        assert!(s.source.contains("collection SENTINEL2_L2A (raster:bands)"), "{}", s.source);
        // eo:bands with scale and offset (older STAC), one unnamed raster:bands entry.
        let eo = json!({"summaries": {"eo:bands": [{"name": "B04", "scale": 0.0001, "offset": 0}, {"name": "B08", "scale": 0.0001, "offset": 0}]}});
        assert_eq!(from_collection(&eo, &bands()), Ok(Some((0.0001, 0.0, "eo:bands"))));
        let one = json!({"summaries": {"raster:bands": [{"scale": 0.0001}]}});
        assert_eq!(from_collection(&one, &bands()), Ok(Some((0.0001, 0.0, "raster:bands"))));
        // Names only: the setting, then nothing.
        let bare = json!({"summaries": {"eo:bands": [{"name": "B04"}, {"name": "B08"}]}});
        let s = choose("X", Some(&bare), &bands(), Some(-1000.0)).unwrap();
        assert_eq!((s.scale, s.offset, s.source.as_str()), (0.0001, -0.1, "project.yaml openeo.s2_offset"));
        let s = choose("X", None, &bands(), None).unwrap();
        assert_eq!((s.scale, s.offset), (0.0001, 0.0));
        assert!(s.warning.as_deref().is_some_and(|w| w.contains("s2_offset: -1000") && w.contains("collection X")), "{s:?}");
        // Some bands only, or different pairs: refused with the reason.
        let partial = json!({"summaries": {"raster:bands": [{"name": "B04", "scale": 0.0001}]}});
        assert!(choose("X", Some(&partial), &bands(), None).unwrap_err().contains("not for B08"));
        let mixed = json!({"summaries": {"raster:bands": [{"name": "B04", "scale": 0.0001}, {"name": "B08", "scale": 0.001}]}});
        assert!(choose("X", Some(&mixed), &bands(), None).unwrap_err().contains("one pair"));
    }
}
