//! The openEO engine: preprocessing run near the data by an openEO back-end (Copernicus Data
//! Space Ecosystem, Terrascope, EODC, or any other implementing openEO API 1.x), as batch jobs.
//!
//! - [`s2_graph`] and [`s1_graph`] build the process graphs of one date from the project's grid,
//!   bands and mask rules, with standard openEO processes only: the Sentinel-2 bands and the
//!   scene classification are resampled onto the grid (the grid's CRS, 10 m, aligned to its
//!   upper-left corner), the cloud/shadow/cirrus classes are dilated by the project's buffer with
//!   `apply_kernel` (a square of ones: the native engine's square dilation) and masked, no data
//!   and saturated pixels too, then DNs become reflectance with the scene's baseline offset;
//!   Sentinel-1 goes through `sar_backscatter` (by default `gamma0-terrain`: terrain-corrected
//!   backscatter, which the native engine cannot do), is resampled onto the grid and turned to dB
//!   with the native engine's floor. Each graph ends in one GeoTIFF (`save_result`).
//! - [`Backend`] is the client: capabilities, authentication (HTTP Basic for development
//!   back-ends; OpenID Connect client credentials or refresh token, as CDSE wants), batch jobs
//!   (create, start, poll with backoff, logs on error, cancel), and the result assets downloaded
//!   with resume and checked against the sizes and checksums the back-end gives.
//!
//! Credentials come from the environment or from a file outside every project (see
//! [`Credentials::load`]); they are never printed, logged or written, and go only to the
//! back-end's own origin (and, for OpenID Connect, to the token endpoint its identity provider
//! names). The stage (`stage`) puts the downloaded GeoTIFFs through the same writers as the
//! native engine, so later stages cannot tell the difference.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::grid::TargetGrid;
use crate::job::Progress;

pub use crate::project::openeo::{AuthMethod, OpenEoCollections, OpenEoSettings};

// ---------------------------------------------------------------------------------------------
// Process graphs

/// What a graph needs of the project: the grid and one day.
#[derive(Debug, Clone)]
pub struct GraphScope<'a> {
    pub grid: &'a TargetGrid,
    /// `YYYY-MM-DD`.
    pub date: &'a str,
}

impl GraphScope<'_> {
    fn spatial_extent(&self) -> Value {
        let g = self.grid;
        json!({
            "west": g.x_min,
            "south": g.y_max - g.height as f64 * g.pixel_size_m,
            "east": g.x_min + g.width as f64 * g.pixel_size_m,
            "north": g.y_max,
            "crs": g.epsg,
        })
    }

    /// `[date, date + 1 day)`.
    fn temporal_extent(&self) -> Result<Value> {
        let day = chrono::NaiveDate::parse_from_str(self.date, "%Y-%m-%d").map_err(|e| Error::invalid("date", format!("{:?}: {e}", self.date)))?;
        let next = day.succ_opt().ok_or_else(|| Error::invalid("date", format!("{:?} has no next day", self.date)))?;
        Ok(json!([day.format("%Y-%m-%d").to_string(), next.format("%Y-%m-%d").to_string()]))
    }

    fn load(&self, collection: &str, bands: &[String]) -> Result<Value> {
        Ok(json!({"process_id": "load_collection", "arguments": {
            "id": collection, "spatial_extent": self.spatial_extent(), "temporal_extent": self.temporal_extent()?, "bands": bands}}))
    }

    fn resample(&self, from: &str, method: &str) -> Value {
        json!({"process_id": "resample_spatial", "arguments": {
            "data": {"from_node": from}, "resolution": self.grid.pixel_size_m, "projection": self.grid.epsg,
            "method": method, "align": "upper-left"}})
    }
}

/// A callback that is 1 where the first band's value is one of `classes` (or NaN when
/// `nan`), else 0.
fn class_reducer(classes: &[u8], nan: bool) -> Value {
    let mut pg = serde_json::Map::new();
    pg.insert("scl".into(), json!({"process_id": "array_element", "arguments": {"data": {"from_parameter": "data"}, "index": 0}}));
    let mut terms: Vec<String> = Vec::new();
    for c in classes {
        let name = format!("eq{c}");
        pg.insert(name.clone(), json!({"process_id": "eq", "arguments": {"x": {"from_node": "scl"}, "y": c}}));
        terms.push(name);
    }
    if nan {
        pg.insert("isnan".into(), json!({"process_id": "is_nan", "arguments": {"x": {"from_node": "scl"}}}));
        terms.push("isnan".into());
    }
    let mut last = terms.first().cloned().unwrap_or_else(|| "scl".into());
    for (i, t) in terms.iter().enumerate().skip(1) {
        let name = format!("or{i}");
        pg.insert(name.clone(), json!({"process_id": "or", "arguments": {"x": {"from_node": last}, "y": {"from_node": t}}}));
        last = name;
    }
    pg.insert("out".into(), json!({"process_id": "if", "arguments": {"value": {"from_node": last}, "accept": 1, "reject": 0}, "result": true}));
    json!({"process_graph": pg})
}

/// Mosaic of the day (the first valid value over time) and one GeoTIFF.
fn mosaic_and_save(g: &mut serde_json::Map<String, Value>, from: &str) {
    g.insert("mosaic".into(), json!({"process_id": "reduce_dimension", "arguments": {"data": {"from_node": from}, "dimension": "t",
        "reducer": {"process_graph": {"first": {"process_id": "first", "arguments": {"data": {"from_parameter": "data"}, "ignore_nodata": true}, "result": true}}}}}));
    g.insert("save".into(), json!({"process_id": "save_result", "arguments": {"data": {"from_node": "mosaic"}, "format": "GTiff"}, "result": true}));
}

/// Sentinel-2 of one date: reflectance of `bands` on the grid, masked by the SCL rules when
/// `scl` (the mask of the native engine: classes 3, 8, 9, 10 (and 11 with `mask.snow`) dilated
/// by `mask.buffer_px` in a square, classes 0 and 1 as they are).
pub fn s2_graph(scope: &GraphScope, collection: &str, bands: &[String], scl: bool, mask: &super::s2::SclMaskOptions, resampling: crate::raster::Resampling, dn_offset: f32) -> Result<Value> {
    let mut g = serde_json::Map::new();
    g.insert("load_bands".into(), scope.load(collection, bands)?);
    g.insert("resample_bands".into(), scope.resample("load_bands", resampling.gdal_name()));
    let mut last = "resample_bands".to_string();
    if scl {
        g.insert("load_scl".into(), scope.load(collection, &["SCL".to_string()])?);
        g.insert("resample_scl".into(), scope.resample("load_scl", "near"));
        let mut grow: Vec<u8> = vec![3, 8, 9, 10];
        if mask.snow {
            grow.push(11);
        }
        g.insert("clouds".into(), json!({"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "resample_scl"}, "dimension": "bands", "reducer": class_reducer(&grow, false)}}));
        let mut clouds = "clouds".to_string();
        if mask.buffer_px > 0 {
            let side = 2 * mask.buffer_px + 1;
            let kernel = vec![vec![1; side]; side];
            g.insert("buffer".into(), json!({"process_id": "apply_kernel", "arguments": {"data": {"from_node": "clouds"}, "kernel": kernel, "factor": 1, "border": 0, "replace_invalid": 0}}));
            clouds = "buffer".into();
        }
        g.insert("no_data".into(), json!({"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "resample_scl"}, "dimension": "bands", "reducer": class_reducer(&[0, 1], true)}}));
        g.insert("mask_clouds".into(), json!({"process_id": "mask", "arguments": {"data": {"from_node": last}, "mask": {"from_node": clouds}}}));
        g.insert("mask_no_data".into(), json!({"process_id": "mask", "arguments": {"data": {"from_node": "mask_clouds"}, "mask": {"from_node": "no_data"}}}));
        last = "mask_no_data".into();
    }
    if let Some(threshold) = mask.haze_aot {
        // Haze and smoke: aerosol optical thickness (DN / 1000) above the threshold.
        g.insert("load_aot".into(), scope.load(collection, &["AOT".to_string()])?);
        g.insert("resample_aot".into(), scope.resample("load_aot", "bilinear"));
        g.insert("haze".into(), json!({"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "resample_aot"}, "dimension": "bands", "reducer": {"process_graph": {
            "aot": {"process_id": "array_element", "arguments": {"data": {"from_parameter": "data"}, "index": 0}},
            "scaled": {"process_id": "divide", "arguments": {"x": {"from_node": "aot"}, "y": super::s2::AOT_QUANTIFICATION_VALUE}},
            "above": {"process_id": "gt", "arguments": {"x": {"from_node": "scaled"}, "y": threshold}},
            "out": {"process_id": "if", "arguments": {"value": {"from_node": "above"}, "accept": 1, "reject": 0}, "result": true}}}}}));
        g.insert("mask_haze".into(), json!({"process_id": "mask", "arguments": {"data": {"from_node": last}, "mask": {"from_node": "haze"}}}));
        last = "mask_haze".into();
    }
    g.insert("reflectance".into(), json!({"process_id": "apply", "arguments": {"data": {"from_node": last}, "process": {"process_graph": {
        "offset": {"process_id": "add", "arguments": {"x": {"from_parameter": "x"}, "y": dn_offset}},
        "scale": {"process_id": "divide", "arguments": {"x": {"from_node": "offset"}, "y": super::s2::QUANTIFICATION_VALUE}, "result": true}}}}}));
    mosaic_and_save(&mut g, "reflectance");
    Ok(Value::Object(g))
}

/// Sentinel-1 of one date: `sar_backscatter` (noise removed), on the grid, in dB.
pub fn s1_graph(scope: &GraphScope, collection: &str, polarisations: &[String], coefficient: &str) -> Result<Value> {
    let mut g = serde_json::Map::new();
    g.insert("load".into(), scope.load(collection, polarisations)?);
    g.insert("backscatter".into(), json!({"process_id": "sar_backscatter", "arguments": {"data": {"from_node": "load"}, "coefficient": coefficient,
        "elevation_model": null, "mask": false, "contributing_area": false, "local_incidence_angle": false, "ellipsoid_incidence_angle": false, "noise_removal": true}}));
    g.insert("resample".into(), scope.resample("backscatter", "bilinear"));
    g.insert("db".into(), json!({"process_id": "apply", "arguments": {"data": {"from_node": "resample"}, "process": {"process_graph": {
        "floor": {"process_id": "clip", "arguments": {"x": {"from_parameter": "x"}, "min": super::s1::DB_FLOOR_LINEAR, "max": 1e30}},
        "log": {"process_id": "log", "arguments": {"x": {"from_node": "floor"}, "base": 10}},
        "db": {"process_id": "multiply", "arguments": {"x": {"from_node": "log"}, "y": 10}, "result": true}}}}}));
    mosaic_and_save(&mut g, "db");
    Ok(Value::Object(g))
}

/// SHA-256 of a graph's JSON (its identity for resuming jobs and skipping outputs).
pub fn graph_digest(graph: &Value) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(graph).unwrap_or_default();
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Credentials

/// A secret: never shown by `Debug`.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// The credentials found for a back-end.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    user: Option<String>,
    password: Option<Secret>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    refresh_token: Option<Secret>,
}

/// The file read after the environment: `$XDG_CONFIG_HOME/s2cr/openeo-credentials` (or
/// `~/.config/s2cr/...`), `NAME=value` lines with the variables' names.
pub fn credentials_file() -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(dir.join("s2cr").join("openeo-credentials"))
}

impl Credentials {
    /// From the variables `S2CR_OPENEO_USER`, `S2CR_OPENEO_PASSWORD`, `S2CR_OPENEO_CLIENT_ID`,
    /// `S2CR_OPENEO_CLIENT_SECRET`, `S2CR_OPENEO_REFRESH_TOKEN`, each one falling back to the
    /// same name in [`credentials_file`].
    pub fn load() -> Credentials {
        let file: Vec<(String, String)> = credentials_file()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                text.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let get = |name: &str| -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_string()).or_else(|| file.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty()))
        };
        Credentials {
            user: get("S2CR_OPENEO_USER"),
            password: get("S2CR_OPENEO_PASSWORD").map(Secret),
            client_id: get("S2CR_OPENEO_CLIENT_ID"),
            client_secret: get("S2CR_OPENEO_CLIENT_SECRET").map(Secret),
            refresh_token: get("S2CR_OPENEO_REFRESH_TOKEN").map(Secret),
        }
    }

    /// The names of the credentials found (never their values).
    pub fn configured(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.user.is_some() && self.password.is_some() {
            names.push("user and password");
        }
        if self.client_id.is_some() && self.client_secret.is_some() {
            names.push("OIDC client credentials");
        }
        if self.refresh_token.is_some() {
            names.push("OIDC refresh token");
        }
        names
    }

    fn method(&self, asked: AuthMethod) -> AuthMethod {
        match asked {
            AuthMethod::Auto if self.client_id.is_some() && self.client_secret.is_some() => AuthMethod::OidcClientCredentials,
            AuthMethod::Auto if self.refresh_token.is_some() => AuthMethod::OidcRefreshToken,
            AuthMethod::Auto if self.user.is_some() && self.password.is_some() => AuthMethod::Basic,
            AuthMethod::Auto => AuthMethod::None,
            other => other,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client

/// Largest JSON answer read from a back-end.
const MAX_JSON: u64 = 16 << 20;
/// Consecutive failed polls (server errors, broken connections) before giving up.
const POLL_ATTEMPTS: u32 = 8;

/// A job's state as the back-end reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub status: String,
    pub progress: Option<f64>,
}

/// One result file of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultAsset {
    pub name: String,
    pub href: String,
    pub size: Option<u64>,
    /// SHA-256 in hex, from `file:checksum` (multihash 0x12 0x20) when the back-end gives it.
    pub sha256: Option<String>,
}

/// A connected, authenticated back-end.
pub struct Backend {
    http: reqwest::blocking::Client,
    root: String,
    origin: String,
    settings: OpenEoSettings,
    credentials: Credentials,
    method: AuthMethod,
    /// The value of the Authorization header.
    authorization: Option<Secret>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("root", &self.root).field("method", &self.method).finish()
    }
}

/// The message of an openEO error answer (`{"code", "message"}`), or the start of the body.
fn error_message(status: reqwest::StatusCode, body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v["message"].is_string() => {
            let code = v["code"].as_str().map(|c| format!(" ({c})")).unwrap_or_default();
            format!("HTTP {status}{code}: {}", v["message"].as_str().unwrap_or_default())
        }
        _ => format!("HTTP {status}: {}", body.chars().take(300).collect::<String>().trim()),
    }
}

impl Backend {
    /// Connects to the back-end of `settings` and authenticates with `credentials`.
    pub fn connect(settings: &OpenEoSettings, credentials: Credentials) -> Result<Backend> {
        settings.check().map_err(|m| Error::invalid("openeo", m))?;
        let root = settings.backend.trim_end_matches('/').to_string();
        let origin = crate::catalog::http_url(&root).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::invalid("http client", e.to_string()))?;
        let method = credentials.method(settings.auth);
        let mut backend = Backend { http, root, origin, settings: settings.clone(), credentials, method, authorization: None };
        let caps = backend.get_json("/", "capabilities")?;
        let version = caps["api_version"].as_str().unwrap_or_default().to_string();
        if !version.starts_with("1.") {
            return Err(Error::http(backend.root.clone(), format!("this is not an openEO 1.x API (api_version {version:?}); give the API's root URL, e.g. https://openeo.dataspace.copernicus.eu/openeo/1.2")));
        }
        backend.authenticate()?;
        Ok(backend)
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    /// Whether the back-end's credentials may go with a request for `url` (its own origin only).
    fn same_origin(&self, url: &str) -> bool {
        crate::catalog::http_url(url).is_some_and(|u| u.origin().ascii_serialization() == self.origin)
    }

    fn authenticate(&mut self) -> Result<()> {
        let missing = |what: &str| {
            let file = credentials_file().map(|p| format!(" or in {}", p.display())).unwrap_or_default();
            Error::invalid("openeo credentials", format!("{} needs {what} (in the environment{file})", self.root))
        };
        self.authorization = match self.method {
            AuthMethod::None | AuthMethod::Auto => None,
            AuthMethod::Basic => {
                let (Some(user), Some(password)) = (&self.credentials.user, &self.credentials.password) else {
                    return Err(missing("S2CR_OPENEO_USER and S2CR_OPENEO_PASSWORD"));
                };
                let url = self.url("/credentials/basic");
                let r = self.http.get(&url).basic_auth(user, Some(&password.0)).send().map_err(|e| Error::Http { url: url.clone(), message: format!("logging in: {}", crate::error::network_cause(&e)), source: Some(e) })?;
                let status = r.status();
                let body = crate::catalog::read_body(r, MAX_JSON).map_err(|why| Error::http(url.clone(), why))?;
                if status.as_u16() == 401 || status.as_u16() == 403 {
                    return Err(Error::http(url, format!("the back-end refused the user name and password ({}); check S2CR_OPENEO_USER and S2CR_OPENEO_PASSWORD", error_message(status, &body))));
                }
                if !status.is_success() {
                    return Err(Error::http(url, format!("logging in: {}", error_message(status, &body))));
                }
                let v: Value = serde_json::from_str(&body).map_err(Error::json(&url, "the login answer is not JSON"))?;
                let token = v["access_token"].as_str().ok_or_else(|| Error::http(url.clone(), "the login answer has no access_token"))?;
                Some(Secret(format!("Bearer basic//{token}")))
            }
            AuthMethod::OidcClientCredentials | AuthMethod::OidcRefreshToken => {
                let (provider, client_default) = self.oidc_provider()?;
                let token_endpoint = self.oidc_token_endpoint(&provider.1)?;
                let mut form: Vec<(&str, String)> = Vec::new();
                if self.method == AuthMethod::OidcClientCredentials {
                    let (Some(id), Some(secret)) = (&self.credentials.client_id, &self.credentials.client_secret) else {
                        return Err(missing("S2CR_OPENEO_CLIENT_ID and S2CR_OPENEO_CLIENT_SECRET"));
                    };
                    form.extend([("grant_type", "client_credentials".into()), ("client_id", id.clone()), ("client_secret", secret.0.clone())]);
                } else {
                    let Some(refresh) = &self.credentials.refresh_token else { return Err(missing("S2CR_OPENEO_REFRESH_TOKEN")) };
                    let Some(id) = self.credentials.client_id.clone().or(client_default) else {
                        return Err(missing("S2CR_OPENEO_CLIENT_ID (the provider lists no default client)"));
                    };
                    form.extend([("grant_type", "refresh_token".into()), ("client_id", id), ("refresh_token", refresh.0.clone())]);
                }
                let r = self.http.post(&token_endpoint).form(&form).send().map_err(|e| Error::Http { url: token_endpoint.clone(), message: format!("getting an access token: {}", crate::error::network_cause(&e)), source: Some(e) })?;
                let status = r.status();
                let body = crate::catalog::read_body(r, MAX_JSON).map_err(|why| Error::http(token_endpoint.clone(), why))?;
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if !status.is_success() {
                    let why = v["error_description"].as_str().or(v["error"].as_str()).unwrap_or("no reason given");
                    return Err(Error::http(token_endpoint, format!("the identity provider refused the credentials (HTTP {status}: {why}); check the client id and secret or the refresh token")));
                }
                if let Some(rotated) = v["refresh_token"].as_str() {
                    self.credentials.refresh_token = Some(Secret(rotated.to_string()));
                }
                let token = v["access_token"].as_str().ok_or_else(|| Error::http(token_endpoint.clone(), "the token answer has no access_token"))?;
                Some(Secret(format!("Bearer oidc/{}/{token}", provider.0)))
            }
        };
        Ok(())
    }

    /// `(id, issuer)` of the OpenID Connect provider to use, and its default client id.
    fn oidc_provider(&self) -> Result<((String, String), Option<String>)> {
        let v = self.get_json("/credentials/oidc", "OpenID Connect providers")?;
        let providers = v["providers"].as_array().cloned().unwrap_or_default();
        let chosen = match &self.settings.oidc_provider {
            Some(id) => providers.iter().find(|p| p["id"].as_str() == Some(id.as_str())),
            None => providers.first(),
        };
        let Some(p) = chosen else {
            let ids: Vec<&str> = providers.iter().filter_map(|p| p["id"].as_str()).collect();
            return Err(Error::http(self.url("/credentials/oidc"), format!("no OpenID Connect provider {:?} here (it lists: {})", self.settings.oidc_provider, ids.join(", "))));
        };
        let id = p["id"].as_str().unwrap_or_default().to_string();
        let issuer = p["issuer"].as_str().unwrap_or_default().trim_end_matches('/').to_string();
        let client = p["default_clients"].as_array().and_then(|c| c.first()).and_then(|c| c["id"].as_str()).map(String::from);
        Ok(((id, issuer), client))
    }

    /// The token endpoint from the issuer's discovery document; HTTPS only (or loopback).
    fn oidc_token_endpoint(&self, issuer: &str) -> Result<String> {
        let url = format!("{issuer}/.well-known/openid-configuration");
        let loopback = |p: &reqwest::Url| {
            let host = p.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
        };
        let secure = |u: &str| crate::catalog::http_url(u).is_some_and(|p| p.scheme() == "https" || loopback(&p));
        if !secure(&url) {
            return Err(Error::http(url, "the identity provider is not reached over HTTPS; refusing to send credentials"));
        }
        let r = self.http.get(&url).send().map_err(|e| Error::Http { url: url.clone(), message: crate::error::network_cause(&e), source: Some(e) })?;
        let body = crate::catalog::read_body(r, MAX_JSON).map_err(|why| Error::http(url.clone(), why))?;
        let v: Value = serde_json::from_str(&body).map_err(Error::json(&url, "the discovery document is not JSON"))?;
        let endpoint = v["token_endpoint"].as_str().ok_or_else(|| Error::http(url.clone(), "the discovery document has no token_endpoint"))?;
        if !secure(endpoint) {
            return Err(Error::http(endpoint, "the token endpoint is not HTTPS; refusing to send credentials"));
        }
        Ok(endpoint.to_string())
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::blocking::RequestBuilder {
        let mut r = self.http.request(method, url);
        if let Some(a) = &self.authorization
            && self.same_origin(url)
        {
            r = r.header(reqwest::header::AUTHORIZATION, &a.0);
        }
        r
    }

    /// Sends a request; an expired token (401, or 403 `TokenInvalid`) is renewed once. Returns
    /// the status and body.
    fn send(&mut self, method: reqwest::Method, path: &str, body: Option<&Value>, what: &str) -> Result<(reqwest::StatusCode, String)> {
        let url = self.url(path);
        for attempt in 0..2 {
            let mut r = self.request(method.clone(), &url);
            if let Some(b) = body {
                r = r.json(b);
            }
            let response = r.send().map_err(|e| Error::Http { url: url.clone(), message: format!("{what}: {}", crate::error::network_cause(&e)), source: Some(e) })?;
            let status = response.status();
            let text = crate::catalog::read_body(response, MAX_JSON).map_err(|why| Error::http(url.clone(), format!("{what}: {why}")))?;
            // An expired token: 401, or openeo-driver's 403 TokenInvalid.
            let expired = status.as_u16() == 401 || (status.as_u16() == 403 && text.contains("TokenInvalid"));
            if expired && attempt == 0 && self.authorization.is_some() {
                self.authenticate()?;
                continue;
            }
            return Ok((status, text));
        }
        Err(Error::http(url, format!("{what}: the back-end refused the renewed credentials")))
    }

    fn ok_json(&self, path: &str, status: reqwest::StatusCode, text: &str, what: &str) -> Result<Value> {
        let url = self.url(path);
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(Error::http(url, format!("{what}: {}; check the openEO credentials", error_message(status, text))));
        }
        if !status.is_success() {
            return Err(Error::http(url, format!("{what}: {}", error_message(status, text))));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(text).map_err(Error::json(&url, "the back-end's answer is not JSON"))
    }

    fn get_json(&self, path: &str, what: &str) -> Result<Value> {
        let url = self.url(path);
        let response = self.request(reqwest::Method::GET, &url).send().map_err(|e| Error::Http { url: url.clone(), message: format!("{what}: {}", crate::error::network_cause(&e)), source: Some(e) })?;
        let status = response.status();
        let text = crate::catalog::read_body(response, MAX_JSON).map_err(|why| Error::http(url.clone(), format!("{what}: {why}")))?;
        self.ok_json(path, status, &text, what)
    }

    /// Creates a batch job; returns its id.
    pub fn create_job(&mut self, graph: &Value, title: &str) -> Result<String> {
        let body = json!({"title": title, "process": {"process_graph": graph}});
        let url = self.url("/jobs");
        let mut attempt = 0;
        let (status, id, location, text) = loop {
            let response = self.request(reqwest::Method::POST, &url).json(&body).send().map_err(|e| Error::Http { url: url.clone(), message: format!("creating a job: {}", crate::error::network_cause(&e)), source: Some(e) })?;
            let status = response.status();
            let id = response.headers().get("OpenEO-Identifier").and_then(|v| v.to_str().ok()).map(String::from);
            let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(String::from);
            let text = crate::catalog::read_body(response, MAX_JSON).map_err(|why| Error::http(url.clone(), why))?;
            // An expired token (between two dates' jobs): renewed once.
            let expired = status.as_u16() == 401 || (status.as_u16() == 403 && text.contains("TokenInvalid"));
            if expired && attempt == 0 && self.authorization.is_some() {
                attempt += 1;
                self.authenticate()?;
                continue;
            }
            break (status, id, location, text);
        };
        self.ok_json("/jobs", status, &text, "creating a job")?;
        let id = id.or_else(|| location.and_then(|l| l.trim_end_matches('/').rsplit('/').next().map(String::from))).ok_or_else(|| Error::http(url, "the back-end created a job but gave no id (no OpenEO-Identifier or Location header)"))?;
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(Error::http(self.url("/jobs"), format!("the back-end gave the job an id this program will not put in a URL: {id:?}")));
        }
        Ok(id)
    }

    pub fn start_job(&mut self, id: &str) -> Result<()> {
        let path = format!("/jobs/{id}/results");
        let (status, text) = self.send(reqwest::Method::POST, &path, None, "starting the job")?;
        self.ok_json(&path, status, &text, "starting the job").map(|_| ())
    }

    pub fn job_state(&mut self, id: &str) -> Result<JobState> {
        let path = format!("/jobs/{id}");
        let (status, text) = self.send(reqwest::Method::GET, &path, None, "the job's status")?;
        let v = self.ok_json(&path, status, &text, "the job's status")?;
        let status = v["status"].as_str().ok_or_else(|| Error::http(self.url(&path), "the job has no status"))?.to_string();
        Ok(JobState { status, progress: v["progress"].as_f64() })
    }

    /// The job's log lines (`level: message`), errors and warnings first.
    pub fn job_logs(&mut self, id: &str) -> Result<Vec<String>> {
        let path = format!("/jobs/{id}/logs");
        let (status, text) = self.send(reqwest::Method::GET, &path, None, "the job's logs")?;
        let v = self.ok_json(&path, status, &text, "the job's logs")?;
        let mut lines: Vec<(u8, String)> = v["logs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|l| {
                        let level = l["level"].as_str().unwrap_or("info");
                        let rank = match level {
                            "error" => 0,
                            "warning" => 1,
                            _ => 2,
                        };
                        (rank, format!("{level}: {}", l["message"].as_str().unwrap_or_default()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        lines.sort_by_key(|(rank, _)| *rank);
        Ok(lines.into_iter().map(|(_, l)| l).collect())
    }

    /// Stops the job on the back-end.
    pub fn cancel_job(&mut self, id: &str) -> Result<()> {
        let path = format!("/jobs/{id}/results");
        let (status, text) = self.send(reqwest::Method::DELETE, &path, None, "cancelling the job")?;
        self.ok_json(&path, status, &text, "cancelling the job").map(|_| ())
    }

    /// The job's result files.
    pub fn result_assets(&mut self, id: &str) -> Result<Vec<ResultAsset>> {
        let path = format!("/jobs/{id}/results");
        let (status, text) = self.send(reqwest::Method::GET, &path, None, "the job's results")?;
        let v = self.ok_json(&path, status, &text, "the job's results")?;
        let mut assets = Vec::new();
        if let Some(map) = v["assets"].as_object() {
            for (name, a) in map {
                let Some(href) = a["href"].as_str() else { continue };
                // Relative hrefs are relative to the results document.
                let href = match reqwest::Url::parse(&self.url(&path)).and_then(|base| base.join(href)) {
                    Ok(u) => u.to_string(),
                    Err(_) => continue,
                };
                let sha256 = a["file:checksum"].as_str().and_then(|c| c.strip_prefix("1220")).filter(|h| h.len() == 64).map(str::to_lowercase);
                assets.push(ResultAsset { name: name.clone(), href, size: a["file:size"].as_u64(), sha256 });
            }
        }
        assets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(assets)
    }

    /// Downloads one asset into `dir` (resuming a partial download of an earlier attempt or
    /// run); checks its size and checksum when the back-end gave them.
    pub fn download(&mut self, asset: &ResultAsset, dir: &Path, progress: &Progress) -> Result<PathBuf> {
        let dst = dir.join(crate::fsutil::safe_name(&asset.name));
        let opts = crate::fetch::FetchOptions::default();
        for attempt in 0..2 {
            let auth = self.authorization.as_ref().filter(|_| self.same_origin(&asset.href)).map(|a| a.0.clone());
            if let Err(e) = crate::fetch::fetch_file_authorized(&asset.href, &dst, &opts, auth.as_deref(), progress) {
                // A token that expired while the job ran: renewed once (the partial file stays).
                let expired = matches!(&e, Error::Http { message, .. } if message.contains("HTTP 401") || message.contains("HTTP 403"));
                if attempt == 0 && expired && auth.is_some() {
                    self.authenticate()?;
                    continue;
                }
                return Err(e);
            }
            let size = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
            let bad = match (asset.size, &asset.sha256) {
                (Some(s), _) if s != size => Some(format!("{size} bytes where the back-end announced {s}")),
                (_, Some(sum)) => {
                    let got = crate::fsutil::sha256_file(&dst)?;
                    (got != *sum).then(|| format!("SHA-256 {got} where the back-end announced {sum}"))
                }
                _ => None,
            };
            match bad {
                None => return Ok(dst),
                Some(why) => {
                    let _ = std::fs::remove_file(&dst);
                    if attempt == 1 {
                        return Err(Error::http(asset.href.clone(), format!("the download is damaged: {why}; run the stage again")));
                    }
                    progress.warn(format!("{}: {why}; downloading it again", asset.href));
                }
            }
        }
        Err(Error::http(asset.href.clone(), "the download failed"))
    }

    /// Waits for a started job to end, polling with a growing wait; cancels the remote job
    /// when `progress` is cancelled or the job takes longer than the settings allow.
    pub fn wait(&mut self, id: &str, label: &str, progress: &Progress) -> Result<()> {
        let started = Instant::now();
        let limit = Duration::from_secs_f64(self.settings.job_timeout_min * 60.0);
        let mut wait = Duration::from_millis(250).min(Duration::from_secs_f64(self.settings.poll_max_s));
        let mut failures = 0u32;
        let mut last_status = String::new();
        loop {
            // Sleep in slices so a cancel is seen at once.
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if progress.is_cancelled() {
                    let stopped = self.cancel_job(id);
                    return Err(match stopped {
                        Ok(()) => {
                            progress.info(format!("{label}: job {id} cancelled on the back-end"));
                            Error::Cancelled
                        }
                        Err(e) => {
                            progress.warn(format!("{label}: job {id} could not be cancelled on the back-end ({e}); stop it there"));
                            Error::Cancelled
                        }
                    });
                }
                std::thread::sleep(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())));
            }
            if started.elapsed() > limit {
                let _ = self.cancel_job(id);
                return Err(Error::http(self.url(&format!("/jobs/{id}")), format!("{label}: the job did not finish within {} minutes (job_timeout_min); it was cancelled", self.settings.job_timeout_min)));
            }
            wait = (wait.mul_f64(1.5)).min(Duration::from_secs_f64(self.settings.poll_max_s));
            let state = match self.job_state(id) {
                Ok(s) => {
                    failures = 0;
                    s
                }
                Err(e) => {
                    failures += 1;
                    if failures >= POLL_ATTEMPTS {
                        return Err(e);
                    }
                    progress.warn(format!("{label}: polling job {id} failed ({e}); trying again"));
                    continue;
                }
            };
            if state.status != last_status {
                let pct = state.progress.map(|p| format!(" ({p:.0} %)")).unwrap_or_default();
                progress.info(format!("{label}: job {id} {}{pct}", state.status));
                last_status = state.status.clone();
            }
            match state.status.as_str() {
                "finished" => return Ok(()),
                "error" => {
                    let logs = self.job_logs(id).unwrap_or_else(|e| vec![format!("(the logs could not be read: {e})")]);
                    let shown: Vec<String> = logs.iter().take(20).cloned().collect();
                    return Err(Error::http(
                        self.url(&format!("/jobs/{id}")),
                        format!("{label}: the openEO job ended in error. The back-end's log:\n  {}", if shown.is_empty() { "(empty)".to_string() } else { shown.join("\n  ") }),
                    ));
                }
                "canceled" => return Err(Error::http(self.url(&format!("/jobs/{id}")), format!("{label}: the job was cancelled on the back-end; run the stage again to submit it anew"))),
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs across runs

/// The jobs submitted for a project (`preprocessed/openeo-jobs.json`), so that a run after an
/// interruption takes up the job it left (finished or still running) instead of paying for it
/// again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobBook {
    pub jobs: Vec<JobEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEntry {
    pub backend: String,
    pub graph_sha256: String,
    pub job_id: String,
    pub title: String,
}

impl JobBook {
    pub fn load(path: &Path) -> JobBook {
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn find(&self, backend: &str, digest: &str) -> Option<&JobEntry> {
        self.jobs.iter().rev().find(|j| j.backend == backend && j.graph_sha256 == digest)
    }

    fn record(path: &Path, entry: JobEntry) -> Result<()> {
        let mut book = JobBook::load(path);
        book.jobs.retain(|j| !(j.backend == entry.backend && j.graph_sha256 == entry.graph_sha256));
        book.jobs.push(entry);
        crate::fsutil::ensure_parent(path)?;
        crate::fsutil::save_json(path, &book)
    }
}

/// Runs `graph` as a batch job (or takes up the job an earlier run submitted for the same graph)
/// and downloads its GeoTIFF results into `dir`; returns their paths.
pub fn run_job(backend: &mut Backend, graph: &Value, title: &str, book: &Path, dir: &Path, progress: &Progress) -> Result<Vec<PathBuf>> {
    match run_job_once(backend, graph, title, book, dir, true, progress) {
        Err(TakeUp::Gone(why)) => {
            // A job of an earlier run whose results are no longer there: submitted anew, once.
            progress.warn(format!("{title}: the earlier job's results cannot be had ({why}); submitting the job again"));
            run_job_once(backend, graph, title, book, dir, false, progress).map_err(TakeUp::into_error)
        }
        other => other.map_err(TakeUp::into_error),
    }
}

/// Why [`run_job_once`] failed: a job taken up from the book whose results are gone, or
/// anything else.
enum TakeUp {
    Gone(Error),
    Failed(Error),
}

impl TakeUp {
    fn into_error(self) -> Error {
        match self {
            TakeUp::Gone(e) | TakeUp::Failed(e) => e,
        }
    }
}

impl From<Error> for TakeUp {
    fn from(e: Error) -> TakeUp {
        TakeUp::Failed(e)
    }
}

/// Whether an error is the back-end saying it does not know a job.
fn not_found(e: &Error) -> bool {
    matches!(e, Error::Http { message, .. } if message.contains("HTTP 404") || message.contains("JobNotFound"))
}

fn run_job_once(backend: &mut Backend, graph: &Value, title: &str, book: &Path, dir: &Path, take_up: bool, progress: &Progress) -> std::result::Result<Vec<PathBuf>, TakeUp> {
    let digest = graph_digest(graph);
    let earlier = if take_up { JobBook::load(book).find(backend.root(), &digest).cloned() } else { None };
    let mut id = None;
    let mut taken_up = false;
    if let Some(e) = earlier {
        match backend.job_state(&e.job_id) {
            Ok(s) if matches!(s.status.as_str(), "finished" | "running" | "queued") => {
                progress.info(format!("{title}: taking up job {} of an earlier run ({})", e.job_id, s.status));
                id = Some(e.job_id);
                taken_up = true;
            }
            Ok(s) if s.status == "created" => {
                backend.start_job(&e.job_id)?;
                id = Some(e.job_id);
                taken_up = true;
            }
            // Failed, cancelled, or unknown to the back-end (another user's): a new job.
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            // Anything else (the network, a server error) must not pay for a second job.
            Err(e) => return Err(TakeUp::Failed(e)),
        }
    }
    let id = match id {
        Some(id) => id,
        None => {
            let id = backend.create_job(graph, title)?;
            JobBook::record(book, JobEntry { backend: backend.root().to_string(), graph_sha256: digest, job_id: id.clone(), title: title.to_string() })?;
            progress.info(format!("{title}: job {id} created"));
            backend.start_job(&id)?;
            id
        }
    };
    backend.wait(&id, title, progress)?;
    // Results go to a folder of their own job: a partial download of another job's (an earlier
    // run with other settings) is never resumed into this one.
    let dir = dir.join(crate::fsutil::safe_name(&id));
    let gone = |e: Error| if taken_up { TakeUp::Gone(e) } else { TakeUp::Failed(e) };
    let assets: Vec<ResultAsset> = backend.result_assets(&id).map_err(gone)?.into_iter().filter(|a| a.name.ends_with(".tif") || a.name.ends_with(".tiff") || a.href.contains(".tif")).collect();
    if assets.is_empty() {
        return Err(gone(Error::http(backend.url(&format!("/jobs/{id}/results")), format!("{title}: the job finished without a GeoTIFF result"))));
    }
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir, "creating the download folder"))?;
    let mut files = Vec::new();
    for a in &assets {
        progress.check_cancelled()?;
        files.push(backend.download(a, &dir, progress).map_err(|e| if matches!(e, Error::Cancelled) { TakeUp::Failed(e) } else { gone(e) })?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> TargetGrid {
        TargetGrid { epsg: 32650, pixel_size_m: 10.0, x_min: 701880.0, y_max: 3710100.0, width: 240, height: 200 }
    }

    #[test]
    fn the_s2_graph_follows_the_project() {
        let g = grid();
        let scope = GraphScope { grid: &g, date: "2018-09-30" };
        let bands: Vec<String> = ["B04", "B08"].map(String::from).to_vec();
        let mask = crate::preprocess::s2::SclMaskOptions { snow: true, buffer_px: 2, haze_aot: None };
        let v = s2_graph(&scope, "SENTINEL2_L2A", &bands, true, &mask, crate::raster::Resampling::Bilinear, -1000.0).unwrap();
        let load = &v["load_bands"]["arguments"];
        assert_eq!(load["spatial_extent"], json!({"west": 701880.0, "south": 3708100.0, "east": 704280.0, "north": 3710100.0, "crs": 32650}));
        assert_eq!(load["temporal_extent"], json!(["2018-09-30", "2018-10-01"]));
        assert_eq!(load["bands"], json!(["B04", "B08"]));
        assert_eq!(v["resample_scl"]["arguments"]["method"], "near");
        assert_eq!(v["resample_bands"]["arguments"]["method"], "bilinear");
        assert_eq!(v["buffer"]["arguments"]["kernel"].as_array().unwrap().len(), 5);
        let clouds = v["clouds"]["arguments"]["reducer"]["process_graph"].as_object().unwrap();
        assert!(clouds.contains_key("eq11") && clouds.contains_key("eq3") && !clouds.contains_key("eq4"));
        assert_eq!(v["reflectance"]["arguments"]["process"]["process_graph"]["offset"]["arguments"]["y"], json!(-1000.0));
        assert_eq!(v.as_object().unwrap().values().filter(|n| n["result"] == json!(true)).count(), 1);
        // No buffer, no snow: no kernel, no class 11.
        let plain = s2_graph(&scope, "X", &bands, true, &crate::preprocess::s2::SclMaskOptions { snow: false, buffer_px: 0, haze_aot: None }, crate::raster::Resampling::Bilinear, 0.0).unwrap();
        assert!(plain.get("buffer").is_none() && plain["mask_clouds"]["arguments"]["mask"]["from_node"] == "clouds");
        assert!(plain["clouds"]["arguments"]["reducer"]["process_graph"].get("eq11").is_none());
        assert!(plain.get("haze").is_none());
        // The haze mask from AOT, after the SCL masks.
        let hazy = s2_graph(&scope, "X", &bands, true, &crate::preprocess::s2::SclMaskOptions { haze_aot: Some(0.5), ..Default::default() }, crate::raster::Resampling::Bilinear, 0.0).unwrap();
        assert_eq!(hazy["load_aot"]["arguments"]["bands"], json!(["AOT"]));
        assert_eq!(hazy["haze"]["arguments"]["reducer"]["process_graph"]["above"]["arguments"]["y"].as_f64().map(|v| v as f32), Some(0.5));
        assert_eq!(hazy["mask_haze"]["arguments"]["data"]["from_node"], "mask_no_data");
        assert_eq!(hazy["reflectance"]["arguments"]["data"]["from_node"], "mask_haze");
        assert_ne!(graph_digest(&v), graph_digest(&plain));
        assert!(GraphScope { grid: &g, date: "2018-13-01" }.temporal_extent().is_err());
    }

    #[test]
    fn the_s1_graph_asks_for_terrain_correction_and_db() {
        let g = grid();
        let v = s1_graph(&GraphScope { grid: &g, date: "2018-12-31" }, "SENTINEL1_GRD", &["VV".into(), "VH".into()], "gamma0-terrain").unwrap();
        assert_eq!(v["backscatter"]["arguments"]["coefficient"], "gamma0-terrain");
        assert_eq!(v["backscatter"]["arguments"]["noise_removal"], true);
        assert_eq!(v["load"]["arguments"]["temporal_extent"], json!(["2018-12-31", "2019-01-01"]));
        assert_eq!(v["db"]["arguments"]["process"]["process_graph"]["floor"]["arguments"]["min"].as_f64().unwrap() as f32, crate::preprocess::s1::DB_FLOOR_LINEAR);
        assert_eq!(v["save"]["arguments"]["format"], "GTiff");
    }

    #[test]
    fn settings_are_checked() {
        assert!(OpenEoSettings::new("https://openeo.dataspace.copernicus.eu/openeo/1.2/").check().is_ok());
        assert_eq!(OpenEoSettings::new("https://x.org/openeo/").backend, "https://x.org/openeo");
        assert!(OpenEoSettings::new("http://127.0.0.1:8080/openeo/1.2").check().is_ok());
        assert!(OpenEoSettings::new("http://openeo.example.org").check().unwrap_err().contains("clear text"));
        assert!(OpenEoSettings::new("ftp://x").check().is_err());
        let mut s = OpenEoSettings::new("https://x.org");
        s.s1_coefficient = "gamma0".into();
        assert!(s.check().unwrap_err().contains("gamma0-terrain"));
        let yaml = "backend: https://x.org/openeo/1.2\nauth: oidc-refresh-token\n";
        let parsed: OpenEoSettings = serde_norway::from_str(yaml).unwrap();
        assert_eq!((parsed.auth, parsed.s1_coefficient.as_str(), parsed.collections.s2.as_str()), (AuthMethod::OidcRefreshToken, "gamma0-terrain", "SENTINEL2_L2A"));
    }

    #[test]
    fn credentials_pick_a_method_and_hide_their_secrets() {
        let c = Credentials { user: Some("u".into()), password: Some(Secret("pw-secret".into())), ..Credentials::default() };
        assert_eq!(c.method(AuthMethod::Auto), AuthMethod::Basic);
        assert!(!format!("{c:?}").contains("pw-secret"));
        let oidc = Credentials { client_id: Some("id".into()), client_secret: Some(Secret("s".into())), ..c.clone() };
        assert_eq!(oidc.method(AuthMethod::Auto), AuthMethod::OidcClientCredentials);
        assert_eq!(oidc.method(AuthMethod::Basic), AuthMethod::Basic);
        assert_eq!(Credentials::default().method(AuthMethod::Auto), AuthMethod::None);
    }

    #[test]
    fn error_answers_are_read() {
        let m = error_message(reqwest::StatusCode::BAD_REQUEST, r#"{"code":"ProcessUnsupported","message":"no such process"}"#);
        assert_eq!(m, "HTTP 400 Bad Request (ProcessUnsupported): no such process");
        assert!(error_message(reqwest::StatusCode::BAD_GATEWAY, "<html>").contains("<html>"));
    }
}
