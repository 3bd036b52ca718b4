//! The REST client of a back-end: connection, requests with the credentials sent only to its
//! own origin, answers read with a size limit, batch jobs (create, start, state, logs, cancel,
//! result assets) and the wait for a job to end (polled with backoff, cancelled remotely when
//! the user cancels or the time runs out).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::auth::{Credentials, Secret, credentials_file};
use super::AuthMethod;
use super::OpenEoSettings;
use crate::error::{Error, Result};
use crate::job::Progress;

/// Largest JSON answer read from a back-end.
pub(super) const MAX_JSON: u64 = 16 << 20;
/// Consecutive failed polls (server errors, broken connections) before giving up.
pub(super) const POLL_ATTEMPTS: u32 = 8;

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
    pub(super) http: reqwest::blocking::Client,
    pub(super) root: String,
    pub(super) origin: String,
    pub(super) settings: OpenEoSettings,
    pub(super) credentials: Credentials,
    pub(super) method: AuthMethod,
    /// The value of the Authorization header.
    pub(super) authorization: Option<Secret>,
    /// Warnings for the user that arose inside the client (a refresh token gone stale), taken
    /// by [`Backend::take_notices`].
    pub(super) notices: Vec<String>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("root", &self.root).field("method", &self.method).finish()
    }
}

/// The message of an openEO error answer (`{"code", "message"}`), or the start of the body.
pub(super) fn error_message(status: reqwest::StatusCode, body: &str) -> String {
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
        let mut backend = Backend { http, root, origin, settings: settings.clone(), credentials, method, authorization: None, notices: Vec::new() };
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

    /// The warnings the client has for the user since the last call.
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    /// Whether the back-end's credentials may go with a request for `url` (its own origin only).
    pub(super) fn same_origin(&self, url: &str) -> bool {
        crate::catalog::http_url(url).is_some_and(|u| u.origin().ascii_serialization() == self.origin)
    }

    pub(super) fn request(&self, method: reqwest::Method, url: &str) -> reqwest::blocking::RequestBuilder {
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
    pub(super) fn send(&mut self, method: reqwest::Method, path: &str, body: Option<&Value>, what: &str) -> Result<(reqwest::StatusCode, String)> {
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

    pub(super) fn ok_json(&self, path: &str, status: reqwest::StatusCode, text: &str, what: &str) -> Result<Value> {
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

    pub(super) fn get_json(&self, path: &str, what: &str) -> Result<Value> {
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

// Login: HTTP Basic, or OpenID Connect with the provider the back-end names.

impl Backend {
    pub(super) fn authenticate(&mut self) -> Result<()> {
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
                let (provider, client_default, scopes) = self.oidc_provider()?;
                let (token_endpoint, supported) = self.oidc_token_endpoint(&provider.1)?;
                let mut form: Vec<(&str, String)> = Vec::new();
                if self.method == AuthMethod::OidcClientCredentials {
                    let (Some(id), Some(secret)) = (&self.credentials.client_id, &self.credentials.client_secret) else {
                        return Err(missing("S2CR_OPENEO_CLIENT_ID and S2CR_OPENEO_CLIENT_SECRET"));
                    };
                    form.extend([("grant_type", "client_credentials".into()), ("client_id", id.clone()), ("client_secret", secret.0.clone()), ("scope", request_scope(&scopes, supported.as_deref()))]);
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
                if let Some(rotated) = v["refresh_token"].as_str()
                    && self.method == AuthMethod::OidcRefreshToken
                    && let Some(notice) = self.credentials.rotate_refresh_token(rotated.to_string())
                {
                    self.notices.push(notice);
                }
                let token = v["access_token"].as_str().ok_or_else(|| Error::http(token_endpoint.clone(), "the token answer has no access_token"))?;
                Some(Secret(format!("Bearer oidc/{}/{token}", provider.0)))
            }
        };
        Ok(())
    }

    /// `(id, issuer)` of the OpenID Connect provider to use, its default client id, and the
    /// scopes the back-end lists for it.
    pub(super) fn oidc_provider(&self) -> Result<((String, String), Option<String>, Vec<String>)> {
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
        let scopes = p["scopes"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default();
        Ok(((id, issuer), client, scopes))
    }

    /// The token endpoint from the issuer's discovery document (HTTPS only, or loopback), and
    /// the scopes it supports where it says.
    pub(super) fn oidc_token_endpoint(&self, issuer: &str) -> Result<(String, Option<Vec<String>>)> {
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
        let supported = v["scopes_supported"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect());
        Ok((endpoint.to_string(), supported))
    }
}

/// The `scope` of a client-credentials request, as the openEO Python client builds it:
/// `openid` and the scopes the back-end lists for the provider, those the provider supports
/// (its discovery document's `scopes_supported`; `openid` only where it says none), sorted,
/// space-separated.
pub(super) fn request_scope(listed: &[String], supported: Option<&[String]>) -> String {
    let default = ["openid".to_string()];
    let supported = supported.unwrap_or(&default);
    let mut scopes: Vec<&str> = std::iter::once("openid").chain(listed.iter().map(String::as_str)).filter(|s| supported.iter().any(|x| x == s)).collect();
    scopes.sort_unstable();
    scopes.dedup();
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_credentials_scope_is_the_openeo_clients() {
        let listed = ["openid".to_string(), "openeo".to_string(), "earth".to_string()];
        let supported = ["openid".to_string(), "openeo".to_string(), "offline_access".to_string()];
        assert_eq!(request_scope(&listed, Some(&supported)), "openeo openid");
        assert_eq!(request_scope(&[], Some(&supported)), "openid");
        assert_eq!(request_scope(&listed, None), "openid", "a provider that lists no scopes_supported: openid");
    }

    #[test]
    pub(super) fn error_answers_are_read() {
        let m = error_message(reqwest::StatusCode::BAD_REQUEST, r#"{"code":"ProcessUnsupported","message":"no such process"}"#);
        assert_eq!(m, "HTTP 400 Bad Request (ProcessUnsupported): no such process");
        assert!(error_message(reqwest::StatusCode::BAD_GATEWAY, "<html>").contains("<html>"));
    }
}

