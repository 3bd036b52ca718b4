//! A static STAC catalog on disk (the `local` provider): `catalog.json` with `child` links to
//! collections and `item` links to items, as stactools or pystac write them. Searching it
//! answers the same question as a STAC API's item search (collections, area, dates, scene cloud
//! cover) with the same items, their asset hrefs made absolute so fetch reads them from disk.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use super::search::SearchQuery;
use super::item::{Bbox, Item};

/// Every item reachable from a catalog file.
pub struct StaticCatalog {
    root: PathBuf,
    items: Vec<Item>,
}

/// Links deeper than this are not followed (a guard against link cycles).
const MAX_DEPTH: usize = 8;

impl StaticCatalog {
    /// Reads the catalog at `path` (a `catalog.json`, or a folder holding one) and every
    /// collection and item it links.
    pub fn open(path: &Path) -> Result<StaticCatalog> {
        let root = if path.is_dir() { path.join("catalog.json") } else { path.to_path_buf() };
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        walk(&root, 0, &mut seen, &mut items)?;
        Ok(StaticCatalog { root, items })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items of the query's collections whose bbox meets the query's and whose datetime
    /// falls in its dates (whole days), within its scene cloud limit; at most `max_items`.
    pub fn search(&self, query: &SearchQuery) -> Vec<Item> {
        let from = query.dates.from.and_hms_opt(0, 0, 0).map(|d| d.and_utc());
        let to = query.dates.to.and_hms_opt(23, 59, 59).map(|d| d.and_utc());
        let q = query.bbox;
        self.items
            .iter()
            .filter(|i| i.collection.as_ref().is_some_and(|c| query.collections.contains(c)))
            .filter(|i| {
                let Some(t) = i.properties.time() else { return false };
                from.is_some_and(|f| t >= f) && to.is_some_and(|e| t <= e)
            })
            .filter(|i| match i.bbox.as_ref().map(Bbox::corners) {
                Some(b) => b[0] <= q[2] && b[2] >= q[0] && b[1] <= q[3] && b[3] >= q[1],
                None => false,
            })
            .filter(|i| match (query.max_cloud_percent, i.properties.additional_fields.get("eo:cloud_cover").and_then(|v| v.as_f64())) {
                (Some(max), Some(c)) => c <= max,
                _ => true,
            })
            .take(query.max_items)
            .cloned()
            .collect()
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path, "reading the static STAC catalog"))?;
    serde_json::from_str(&text).map_err(Error::json(path, "is this a STAC catalog, collection or item?"))
}

/// Follows a document's `child` and `item` links; items get absolute asset hrefs.
fn walk(path: &Path, depth: usize, seen: &mut HashSet<PathBuf>, items: &mut Vec<Item>) -> Result<()> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if depth > MAX_DEPTH || !seen.insert(path.clone()) {
        return Ok(());
    }
    let value = read_json(&path)?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if value.get("type").and_then(|t| t.as_str()) == Some("Feature") {
        let mut item: Item = serde_json::from_value(value).map_err(Error::json(&path, "this is not a STAC item"))?;
        for asset in item.assets.values_mut() {
            if !asset.href.contains("://") && !Path::new(&asset.href).is_absolute() {
                asset.href = dir.join(&asset.href).display().to_string();
            }
        }
        items.push(item);
        return Ok(());
    }
    let links = value.get("links").and_then(|l| l.as_array()).cloned().unwrap_or_default();
    for link in links {
        let rel = link.get("rel").and_then(|r| r.as_str()).unwrap_or_default();
        let Some(href) = link.get("href").and_then(|h| h.as_str()) else { continue };
        if (rel == "child" || rel == "item") && !href.contains("://") {
            walk(&dir.join(href), depth + 1, seen, items)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::DateRange;

    fn write(path: &Path, value: serde_json::Value) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    }

    fn item(id: &str, collection: &str, datetime: &str, bbox: [f64; 4], cloud: f64) -> serde_json::Value {
        serde_json::json!({
            "type": "Feature", "stac_version": "1.0.0", "id": id, "collection": collection,
            "geometry": {"type": "Polygon", "coordinates": [[[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]]]},
            "bbox": bbox,
            "properties": {"datetime": datetime, "eo:cloud_cover": cloud, "platform": "sentinel-2a"},
            "links": [],
            "assets": {"B04": {"href": "./B04.tif"}, "SCL": {"href": "/abs/SCL.tif"}}
        })
    }

    #[test]
    fn a_static_catalog_is_searched_like_a_stac_api() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(&root.join("catalog.json"), serde_json::json!({"type": "Catalog", "id": "demo", "stac_version": "1.0.0", "description": "d", "links": [{"rel": "child", "href": "./s2/collection.json"}, {"rel": "self", "href": "./catalog.json"}]}));
        write(&root.join("s2/collection.json"), serde_json::json!({"type": "Collection", "id": "sentinel-2-l2a", "links": [{"rel": "item", "href": "./a/a.json"}, {"rel": "item", "href": "./b/b.json"}, {"rel": "item", "href": "./c/c.json"}, {"rel": "parent", "href": "../catalog.json"}]}));
        write(&root.join("s2/a/a.json"), item("a", "sentinel-2-l2a", "2024-01-05T10:00:00Z", [10.0, 45.0, 11.0, 46.0], 5.0));
        write(&root.join("s2/b/b.json"), item("b", "sentinel-2-l2a", "2024-02-05T10:00:00Z", [10.0, 45.0, 11.0, 46.0], 80.0));
        write(&root.join("s2/c/c.json"), item("c", "sentinel-2-l2a", "2024-01-06T10:00:00Z", [20.0, 45.0, 21.0, 46.0], 1.0));
        let catalog = StaticCatalog::open(root).unwrap();
        assert_eq!(catalog.len(), 3);
        let query = |dates: &str, max_cloud: Option<f64>| SearchQuery {
            collections: vec!["sentinel-2-l2a".into()],
            bbox: [10.5, 45.5, 10.6, 45.6],
            dates: dates.parse::<DateRange>().unwrap(),
            max_cloud_percent: max_cloud,
            page_size: 100,
            max_items: 100,
        };
        // Dates and area: only a (c is elsewhere, b later).
        let found = catalog.search(&query("2024-01-01/2024-01-31", None));
        assert_eq!(found.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["a"]);
        // Relative hrefs become absolute paths next to the item; absolute ones stay.
        assert_eq!(found[0].assets["B04"].href, root.join("s2/a/./B04.tif").display().to_string());
        assert_eq!(found[0].assets["SCL"].href, "/abs/SCL.tif");
        // Scene cloud limit.
        assert!(catalog.search(&query("2024-02-01/2024-02-28", Some(50.0))).is_empty());
        assert_eq!(catalog.search(&query("2024-02-01/2024-02-28", None)).len(), 1);
        // A missing file names itself.
        let err = StaticCatalog::open(&root.join("nope.json")).err().unwrap().to_string();
        assert!(err.contains("nope.json"), "{err}");
    }
}
