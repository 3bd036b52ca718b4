//! The parts of a STAC item and item collection this program reads: what a STAC API's search
//! answers and what a static catalogue on disk holds (STAC 1.x, and the 0.9-1.0 beta items some
//! catalogues still serve). Every other field is kept as it came (`extra`), so an item written
//! back (the search's `items.json`) is the one the server sent. The outputs' STAC is written by
//! `assess::stac` and checked against the core schemas in the tests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A GeoJSON Feature that is a STAC item.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: FeatureType,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<Bbox>,
    pub properties: Properties,
    #[serde(default)]
    pub assets: BTreeMap<String, Asset>,
    #[serde(default)]
    pub links: Vec<Link>,
    /// `stac_version`, `geometry`, `stac_extensions` and whatever else the item has.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Only `"Feature"` deserializes: a collection or catalogue read as an item is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum FeatureType {
    Feature,
}

/// An item's time (`datetime`, or the start of its range when `datetime` is null) and every
/// other property as it came.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Properties {
    #[serde(default)]
    pub datetime: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_datetime: Option<Time>,
    #[serde(flatten)]
    pub additional_fields: Map<String, Value>,
}

impl Properties {
    /// `datetime`, or the start of the item's range when `datetime` is null.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.datetime.as_ref().or(self.start_datetime.as_ref()).map(|t| t.at)
    }
}

/// An RFC 3339 time, with the text it was read from (written back unchanged).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Time {
    pub at: DateTime<Utc>,
    text: String,
}

impl TryFrom<String> for Time {
    type Error = String;
    fn try_from(text: String) -> Result<Time, String> {
        match DateTime::parse_from_rfc3339(&text) {
            Ok(t) => Ok(Time { at: t.with_timezone(&Utc), text }),
            Err(e) => Err(format!("{text:?} is not an RFC 3339 time ({e})")),
        }
    }
}

impl From<Time> for String {
    fn from(t: Time) -> String {
        t.text
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Asset {
    pub href: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Link {
    pub rel: String,
    pub href: String,
    /// A STAC API's paging link: the method and body of the next request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A bbox of 4 numbers, or 6 with heights (kept, to be written back as they came).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "Vec<f64>", into = "Vec<f64>")]
pub struct Bbox(Vec<f64>);

impl Bbox {
    /// West, south, east, north in degrees (a 3-D box's heights dropped).
    pub fn corners(&self) -> [f64; 4] {
        match self.0[..] {
            [w, s, _, e, n, _] => [w, s, e, n],
            [w, s, e, n] => [w, s, e, n],
            // `try_from` lets no other length in.
            _ => [f64::NAN; 4],
        }
    }
}

impl TryFrom<Vec<f64>> for Bbox {
    type Error = String;
    fn try_from(v: Vec<f64>) -> Result<Bbox, String> {
        match v.len() {
            4 | 6 => Ok(Bbox(v)),
            n => Err(format!("a bbox has 4 or 6 numbers, not {n}")),
        }
    }
}

impl From<Bbox> for Vec<f64> {
    fn from(b: Bbox) -> Vec<f64> {
        b.0
    }
}

/// A search's page: `features` and the links to the next one.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ItemCollection {
    #[serde(rename = "type")]
    pub kind: CollectionType,
    #[serde(rename = "features")]
    pub items: Vec<Item>,
    #[serde(default)]
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum CollectionType {
    FeatureCollection,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_with_two_and_three_dimensional_boxes_and_a_time_range() {
        let item: Item = serde_json::from_value(json!({
            "type": "Feature", "stac_version": "1.0.0", "id": "a", "collection": "sentinel-2-l2a",
            "bbox": [1.0, 2.0, 0.0, 3.0, 4.0, 10.0], "geometry": null,
            "properties": {"datetime": null, "start_datetime": "2020-07-14T11:30:00+02:00", "eo:cloud_cover": 12.5},
            "assets": {"B04": {"href": "b04.tif", "type": "image/tiff"}}, "links": []
        }))
        .unwrap();
        assert_eq!(item.bbox.as_ref().map(Bbox::corners), Some([1.0, 2.0, 3.0, 4.0]));
        assert_eq!(item.properties.datetime, None);
        assert_eq!(item.properties.time().unwrap().to_rfc3339(), "2020-07-14T09:30:00+00:00");
        assert_eq!(item.properties.additional_fields["eo:cloud_cover"], 12.5);
        assert_eq!(item.assets["B04"].href, "b04.tif");
        let two: Item = serde_json::from_value(json!({"type": "Feature", "id": "b", "bbox": [1, 2, 3, 4], "properties": {"datetime": "2020-07-14T09:30:00Z"}})).unwrap();
        assert_eq!(two.bbox.as_ref().map(Bbox::corners), Some([1.0, 2.0, 3.0, 4.0]));
        assert!(two.collection.is_none() && two.assets.is_empty());
    }

    #[test]
    fn an_item_is_written_back_with_every_field_it_came_with() {
        let original = json!({
            "type": "Feature", "stac_version": "1.1.0", "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
            "id": "S2B_20EPT_20250731_0_L2A", "collection": "sentinel-2-l2a", "bbox": [1.0, 2.0, 0.0, 3.0, 4.0, 10.0],
            "geometry": {"type": "Point", "coordinates": [2.0, 3.0]},
            "properties": {"datetime": "2025-07-31T13:59:37.024000Z", "eo:cloud_cover": 99.9, "platform": "sentinel-2b"},
            "assets": {"red": {"href": "https://example.com/B04.tif", "type": "image/tiff; application=geotiff", "roles": ["data"]}},
            "links": [{"rel": "self", "href": "https://example.com/items/x", "type": "application/geo+json"}]
        });
        let item: Item = serde_json::from_value(original.clone()).unwrap();
        assert_eq!(serde_json::to_value(&item).unwrap(), original);
    }

    #[test]
    fn what_is_not_an_item_says_why() {
        let e = serde_json::from_value::<Item>(json!({"type": "Catalog", "id": "c", "properties": {}})).unwrap_err().to_string();
        assert!(e.contains("Catalog"), "{e}");
        let e = serde_json::from_value::<Item>(json!({"type": "Feature", "id": "c", "bbox": [1, 2, 3], "properties": {}})).unwrap_err().to_string();
        assert!(e.contains("4 or 6 numbers, not 3"), "{e}");
        let e = serde_json::from_value::<Item>(json!({"type": "Feature", "id": "c", "properties": {"datetime": "yesterday"}})).unwrap_err().to_string();
        assert!(e.contains("\"yesterday\" is not an RFC 3339 time"), "{e}");
        let e = serde_json::from_value::<ItemCollection>(json!({"type": "FeatureCollection"})).unwrap_err().to_string();
        assert!(e.contains("features"), "{e}");
    }
}
