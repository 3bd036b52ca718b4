//! A static file server on 127.0.0.1 that honours HTTP Range requests (what GDAL's /vsicurl/
//! and cloud storage do), counts the bytes it serves, and can play faults: an error status, a
//! connection cut mid-body, an answer slower than the client's timeout, a wrong Content-Length.
//! It records every request's target and Authorization header, and can redirect a path to
//! another server.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Send the headers and half the body, then close.
    CutMidBody,
    /// Wait this long before answering.
    Slow(Duration),
    /// Announce more bytes than are sent, then close.
    WrongLength,
}

pub struct CogServer {
    pub url: String,
    pub bytes_served: Arc<AtomicU64>,
    pub requests: Arc<AtomicUsize>,
    /// Faults for the next GET requests with a Range header, in order.
    pub faults: Arc<Mutex<Vec<Fault>>>,
    /// When set, file requests without this text in their query get 403 (a SAS signature).
    pub required_query: Arc<Mutex<Option<String>>>,
    /// Requests to /token/<collection>, which answers like Planetary Computer's SAS endpoint.
    pub token_requests: Arc<AtomicUsize>,
    /// (target, Authorization header) of every request, in order.
    pub seen: Arc<Mutex<Vec<(String, Option<String>)>>>,
    /// Paths answered with a 302 to the given URL.
    pub redirects: Arc<Mutex<Vec<(String, String)>>>,
    /// Statuses for the next token requests, in order (then the token).
    pub token_faults: Arc<Mutex<Vec<u16>>>,
}

impl CogServer {
    pub fn start(root: PathBuf) -> CogServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bytes_served = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let faults = Arc::new(Mutex::new(Vec::new()));
        let required_query = Arc::new(Mutex::new(None));
        let token_requests = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let redirects = Arc::new(Mutex::new(Vec::new()));
        let (b, r, f, q, t) = (bytes_served.clone(), requests.clone(), faults.clone(), required_query.clone(), token_requests.clone());
        let token_faults = Arc::new(Mutex::new(Vec::new()));
        let (s, d, tf) = (seen.clone(), redirects.clone(), token_faults.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, b, r, f, q, t) = (root.clone(), b.clone(), r.clone(), f.clone(), q.clone(), t.clone());
                let (s, d, tf) = (s.clone(), d.clone(), tf.clone());
                std::thread::spawn(move || handle(stream, &root, &b, &r, &f, &q, &t, &s, &d, &tf));
            }
        });
        CogServer { url, bytes_served, requests, faults, required_query, token_requests, seen, redirects, token_faults }
    }

    pub fn reset_counters(&self) {
        self.bytes_served.store(0, Ordering::SeqCst);
        self.requests.store(0, Ordering::SeqCst);
    }
}

fn handle(
    mut stream: TcpStream,
    root: &PathBuf,
    bytes: &AtomicU64,
    requests: &AtomicUsize,
    faults: &Mutex<Vec<Fault>>,
    required_query: &Mutex<Option<String>>,
    token_requests: &AtomicUsize,
    seen: &Mutex<Vec<(String, Option<String>)>>,
    redirects: &Mutex<Vec<(String, String)>>,
    token_faults: &Mutex<Vec<u16>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut range: Option<(u64, Option<u64>)> = None;
        let mut authorization = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("authorization:") {
                authorization = Some(line["authorization:".len()..].trim().to_string());
            }
            if let Some(v) = lower.strip_prefix("range:").and_then(|v| v.trim().strip_prefix("bytes=")) {
                let (a, b) = v.split_once('-').unwrap_or((v, ""));
                range = Some((a.trim().parse().unwrap_or(0), b.trim().parse().ok()));
            }
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let parts: Vec<&str> = request_line.split_whitespace().collect();
        let (method, target) = (parts.first().copied().unwrap_or(""), parts.get(1).copied().unwrap_or("/"));
        seen.lock().unwrap().push((target.to_string(), authorization));
        let redirect = redirects.lock().unwrap().iter().find(|(p, _)| p == target).map(|(_, to)| to.clone());
        if let Some(to) = redirect {
            let _ = write!(stream, "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        if target.starts_with("/token/") {
            token_requests.fetch_add(1, Ordering::SeqCst);
            let fault = {
                let mut f = token_faults.lock().unwrap();
                if f.is_empty() { None } else { Some(f.remove(0)) }
            };
            if let Some(code) = fault {
                let _ = write!(stream, "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\n\r\n");
                continue;
            }
            let expiry = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
            let body = format!(r#"{{"msft:expiry":"{expiry}","token":"st=2026-01-01&se=2026-01-02&sp=rl&sig=loopback"}}"#);
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            continue;
        }
        let required = required_query.lock().unwrap().clone();
        if let Some(q) = required
            && !target.split_once('?').is_some_and(|(_, query)| query.contains(&q))
        {
            let _ = write!(stream, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        let path = root.join(target.split('?').next().unwrap_or("").trim_start_matches('/'));
        let Ok(data) = std::fs::read(&path) else {
            let _ = write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        let len = data.len() as u64;
        let fault = if method == "GET" && range.is_some() {
            let mut f = faults.lock().unwrap();
            if f.is_empty() { None } else { Some(f.remove(0)) }
        } else {
            None
        };
        if let Some(Fault::Slow(d)) = fault {
            std::thread::sleep(d);
        }
        if let Some(Fault::Status(code)) = fault {
            let _ = write!(stream, "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        let (status, start, end) = match range {
            Some((a, b)) if a < len => (206, a, b.map(|b| b.min(len - 1)).unwrap_or(len - 1)),
            Some(_) => {
                let _ = write!(stream, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n");
                continue;
            }
            None => (200, 0, len.saturating_sub(1)),
        };
        let body = &data[start as usize..=(end as usize).min(data.len().saturating_sub(1))];
        let mut head = format!("HTTP/1.1 {status} OK\r\nAccept-Ranges: bytes\r\nContent-Type: image/tiff\r\n");
        if status == 206 {
            head.push_str(&format!("Content-Range: bytes {start}-{end}/{len}\r\n"));
        }
        let announced = if fault == Some(Fault::WrongLength) { body.len() + 1000 } else { body.len() };
        head.push_str(&format!("Content-Length: {announced}\r\n\r\n"));
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        if method == "HEAD" {
            continue;
        }
        let send = match fault {
            Some(Fault::CutMidBody) => &body[..body.len() / 2],
            _ => body,
        };
        // Counted before they are written: a client that has read them all (and a test that
        // then reads the count) must find them counted.
        bytes.fetch_add(send.len() as u64, Ordering::SeqCst);
        if stream.write_all(send).is_err() {
            return;
        }
        if matches!(fault, Some(Fault::CutMidBody) | Some(Fault::WrongLength)) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}
