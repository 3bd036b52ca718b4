//! A small STAC API on 127.0.0.1 for tests: POST /search over real captured items, with bbox,
//! datetime, collections and eo:cloud_cover filters, paging through `next` links shaped like
//! Earth Search's (POST, body {"next": token}, merge false), and injectable failures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// A failure the server plays for the next requests, in order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    Status(u16),
    /// Closes the connection without answering.
    Drop,
    /// Answers 200 with this body, as it is.
    Body(&'static str),
    /// Answers 200 announcing a 10 GB body, then sends a few bytes and closes.
    HugeLength,
}

pub struct StacServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    pub faults: Arc<Mutex<Vec<Fault>>>,
    /// Bodies of the POST requests received.
    pub bodies: Arc<Mutex<Vec<Value>>>,
}

impl StacServer {
    /// Serves `items` (STAC Item JSON) on an ephemeral loopback port until the test ends.
    pub fn start(items: Vec<Value>) -> StacServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let faults = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let items = Arc::new(items);
        let (r, f, b, u) = (requests.clone(), faults.clone(), bodies.clone(), url.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (items, r, f, b, u) = (items.clone(), r.clone(), f.clone(), b.clone(), u.clone());
                std::thread::spawn(move || handle(stream, &items, &r, &f, &b, &u));
            }
        });
        StacServer { url, requests, faults, bodies }
    }
}

fn handle(mut stream: TcpStream, items: &[Value], requests: &AtomicUsize, faults: &Mutex<Vec<Fault>>, bodies: &Mutex<Vec<Value>>, root: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; content_length];
    let _ = reader.read_exact(&mut body);
    requests.fetch_add(1, Ordering::SeqCst);
    let fault = {
        let mut f = faults.lock().unwrap();
        if f.is_empty() { None } else { Some(f.remove(0)) }
    };
    if let Some(Fault::Body(text)) = fault {
        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/geo+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
        return;
    }
    if let Some(Fault::HugeLength) = fault {
        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/geo+json\r\nContent-Length: 10737418240\r\nConnection: close\r\n\r\n{{\"type\":");
        return;
    }
    let (status, payload) = match fault {
        Some(Fault::Drop) => return,
        Some(Fault::Body(_)) | Some(Fault::HugeLength) => return,
        Some(Fault::Status(code)) => (code, json!({"code": "ServerError", "description": "injected failure"})),
        None => {
            let parts: Vec<&str> = request_line.split_whitespace().collect();
            match (parts.first().copied(), parts.get(1).copied()) {
                (Some("POST"), Some("/search")) => {
                    let query: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
                    bodies.lock().unwrap().push(query.clone());
                    (200, search(items, &query, root))
                }
                _ => (404, json!({"code": "NotFound", "description": request_line.trim()})),
            }
        }
    };
    let text = payload.to_string();
    let reason = if status == 200 { "OK" } else { "Error" };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/geo+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn intersects(a: &[f64], b: &[f64]) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

/// Item search as STAC API servers do it, over the in-memory items.
pub fn search(items: &[Value], q: &Value, root: &str) -> Value {
    let collections: Option<Vec<&str>> = q["collections"].as_array().map(|c| c.iter().filter_map(|v| v.as_str()).collect());
    let bbox: Option<Vec<f64>> = q["bbox"].as_array().map(|b| b.iter().filter_map(|v| v.as_f64()).collect());
    let (from, to) = match q["datetime"].as_str().and_then(|d| d.split_once('/')) {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => ("0000".into(), "9999".into()),
    };
    let max_cloud = q["query"]["eo:cloud_cover"]["lte"].as_f64();
    let limit = q["limit"].as_u64().unwrap_or(10) as usize;
    let offset: usize = q["next"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
    let matched: Vec<&Value> = items
        .iter()
        .filter(|i| collections.as_ref().is_none_or(|c| c.contains(&i["collection"].as_str().unwrap_or(""))))
        .filter(|i| {
            let ib: Vec<f64> = i["bbox"].as_array().map(|b| b.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
            bbox.as_ref().is_none_or(|b| ib.len() >= 4 && intersects(b, &ib))
        })
        .filter(|i| {
            // RFC 3339 UTC timestamps compare as text.
            let dt = i["properties"]["datetime"].as_str().unwrap_or("");
            dt >= from.as_str() && dt <= to.as_str()
        })
        .filter(|i| max_cloud.is_none_or(|m| i["properties"]["eo:cloud_cover"].as_f64().is_none_or(|c| c <= m)))
        .collect();
    let page: Vec<&Value> = matched.iter().skip(offset).take(limit).copied().collect();
    let mut links = vec![json!({"rel": "root", "type": "application/json", "href": root})];
    if offset + page.len() < matched.len() {
        links.insert(
            0,
            json!({"rel": "next", "title": "Next page of Items", "method": "POST", "type": "application/geo+json",
                   "href": format!("{root}/search"), "merge": false, "body": {"next": (offset + page.len()).to_string()}}),
        );
    }
    json!({
        "type": "FeatureCollection",
        "stac_version": "1.0.0",
        "context": {"limit": limit, "matched": matched.len(), "returned": page.len()},
        "numberMatched": matched.len(),
        "numberReturned": page.len(),
        "features": page,
        "links": links,
    })
}
