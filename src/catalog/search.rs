//! STAC API item search over HTTP (POST /search), following `next` links, with retries on
//! transient failures. Returns the items as the server sent them.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::job::Progress;
use crate::project::DateRange;
use super::item::{Item, ItemCollection};

/// One search: collections intersecting an area in a date range.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub collections: Vec<String>,
    /// [min lon, min lat, max lon, max lat].
    pub bbox: [f64; 4],
    pub dates: DateRange,
    /// Largest scene cloud cover, percent (adds a `query` on eo:cloud_cover).
    pub max_cloud_percent: Option<f64>,
    /// Items per page.
    pub page_size: u32,
    /// Stop after this many items (a guard against runaway paging).
    pub max_items: usize,
}

impl SearchQuery {
    /// The POST /search body (STAC API item search with the query extension).
    pub fn body(&self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("collections".into(), json!(self.collections));
        body.insert("bbox".into(), json!(self.bbox));
        body.insert(
            "datetime".into(),
            json!(format!("{}T00:00:00Z/{}T23:59:59Z", self.dates.from, self.dates.to)),
        );
        body.insert("limit".into(), json!(self.page_size));
        if let Some(max) = self.max_cloud_percent {
            body.insert("query".into(), json!({"eo:cloud_cover": {"lte": max}}));
        }
        body
    }
}

/// A STAC API client.
pub struct StacClient {
    http: reqwest::blocking::Client,
    root: String,
    /// Attempts per request on timeouts, connection errors, 429 and 5xx.
    pub attempts: u32,
    /// First retry delay; doubles each attempt.
    pub backoff: Duration,
}

impl StacClient {
    pub fn new(root: &str, timeout: Duration) -> Result<StacClient> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("sent2-cloud-remover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::invalid("http client", e.to_string()))?;
        Ok(StacClient { http, root: root.trim_end_matches('/').to_string(), attempts: 4, backoff: Duration::from_millis(500) })
    }

    /// Runs a search and follows `next` links until the last page or `max_items`.
    pub fn search(&self, query: &SearchQuery, progress: &Progress) -> Result<Vec<Item>> {
        let first_body = query.body();
        let mut url = format!("{}/search", self.root);
        let mut method = "POST".to_string();
        let mut body = Some(first_body.clone());
        let mut items: Vec<Item> = Vec::new();
        for page in 1.. {
            progress.check_cancelled()?;
            let value = self.request(&method, &url, body.as_ref())?;
            let collection: ItemCollection = serde_json::from_value(value.clone()).map_err(Error::json(&url, "the search response is not a STAC ItemCollection"))?;
            let n = collection.items.len();
            items.extend(collection.items);
            progress.info(format!("page {page}: {n} items ({} so far)", items.len()));
            if items.len() >= query.max_items {
                items.truncate(query.max_items);
                progress.warn(format!("stopped at {} items; narrow the dates or the area to see everything", query.max_items));
                break;
            }
            let Some(next) = collection.links.iter().find(|l| l.rel == "next") else { break };
            if n == 0 {
                break;
            }
            url = next.href.clone();
            method = next.method.clone().unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
            body = match (&method[..], &next.body) {
                // Servers differ on `merge`; the original parameters plus the link's body is
                // what every one of them accepts.
                ("POST", Some(link_body)) => {
                    let mut merged = first_body.clone();
                    merged.extend(link_body.clone());
                    Some(merged)
                }
                ("POST", None) => Some(first_body.clone()),
                _ => None,
            };
        }
        Ok(items)
    }

    /// One request with retries; returns the JSON body.
    fn request(&self, method: &str, url: &str, body: Option<&Map<String, Value>>) -> Result<Value> {
        let mut last_error = String::new();
        for attempt in 0..self.attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(self.backoff * 2u32.pow(attempt - 1));
            }
            let request = match (method, body) {
                ("POST", Some(b)) => self.http.post(url).json(b),
                _ => self.http.get(url),
            };
            match request.send() {
                Ok(response) => {
                    let status = response.status();
                    let text = match super::read_body(response, super::MAX_STAC_RESPONSE) {
                        Ok(t) => t,
                        Err(why) => return Err(Error::http(url, format!("{why}; is {} a STAC API?", self.root))),
                    };
                    if status.is_success() {
                        return serde_json::from_str(&text).map_err(Error::json(url, format!("the response is not JSON; is {} a STAC API?", self.root)));
                    }
                    let snippet: String = text.chars().take(300).collect();
                    last_error = format!("HTTP {status}: {snippet}");
                    if !(status.is_server_error() || status.as_u16() == 429) {
                        break;
                    }
                }
                Err(e) => {
                    last_error = crate::error::network_cause(&e);
                }
            }
            tracing::debug!("{method} {url} failed (attempt {}): {last_error}", attempt + 1);
        }
        Err(Error::http(url.to_string(), last_error))
    }
}
