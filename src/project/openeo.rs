//! `openeo:` in project.yaml (or in pipeline.yaml's `preprocess:`): the openEO back-end of the
//! preprocess stage's openEO engine, and how to log in to it. The engine itself (graphs, client)
//! is `preprocess::openeo`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How to authenticate with the back-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// Whatever credentials are configured: client credentials, else a refresh token, else a
    /// user name and password, else none.
    #[default]
    Auto,
    None,
    /// HTTP Basic (`S2CR_OPENEO_USER`, `S2CR_OPENEO_PASSWORD`): development back-ends.
    Basic,
    /// OpenID Connect client credentials (`S2CR_OPENEO_CLIENT_ID`, `S2CR_OPENEO_CLIENT_SECRET`).
    OidcClientCredentials,
    /// OpenID Connect refresh token (`S2CR_OPENEO_REFRESH_TOKEN`, optionally
    /// `S2CR_OPENEO_CLIENT_ID`; the provider's default client otherwise).
    OidcRefreshToken,
}

/// Collection names on the back-end (CDSE's by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenEoCollections {
    pub s2: String,
    pub s1: String,
}

impl Default for OpenEoCollections {
    fn default() -> Self {
        OpenEoCollections { s2: "SENTINEL2_L2A".into(), s1: "SENTINEL1_GRD".into() }
    }
}

/// `openeo:` in project.yaml (or in pipeline.yaml's `preprocess:`): which back-end and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenEoSettings {
    /// The API's root URL, e.g. `https://openeo.dataspace.copernicus.eu/openeo/1.2`.
    pub backend: String,
    #[serde(default)]
    pub auth: AuthMethod,
    /// OpenID Connect provider id of the back-end; its first one when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_provider: Option<String>,
    #[serde(default)]
    pub collections: OpenEoCollections,
    /// `sar_backscatter`'s coefficient: gamma0-terrain (terrain-corrected), sigma0-ellipsoid, ...
    #[serde(default = "default_coefficient")]
    pub s1_coefficient: String,
    /// Longest wait between two status polls, seconds (the wait grows from 1 s).
    #[serde(default = "default_poll_max")]
    pub poll_max_s: f64,
    /// Give up on a job that has not finished after this many minutes (it is cancelled).
    #[serde(default = "default_job_timeout")]
    pub job_timeout_min: f64,
    /// Digital numbers added to Sentinel-2 values before dividing by 10 000 (ESA's
    /// BOA_ADD_OFFSET, -1000 from processing baseline 04.00), used when the back-end's
    /// collection states no scale or offset of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s2_offset: Option<f64>,
}

fn default_coefficient() -> String {
    "gamma0-terrain".into()
}
fn default_poll_max() -> f64 {
    30.0
}
fn default_job_timeout() -> f64 {
    240.0
}

impl OpenEoSettings {
    pub fn new(backend: &str) -> OpenEoSettings {
        OpenEoSettings {
            backend: backend.trim().trim_end_matches('/').to_string(),
            auth: AuthMethod::Auto,
            oidc_provider: None,
            collections: OpenEoCollections::default(),
            s1_coefficient: default_coefficient(),
            poll_max_s: default_poll_max(),
            job_timeout_min: default_job_timeout(),
            s2_offset: None,
        }
    }

    /// What decides the results (the back-end, its collections, the coefficient), for the
    /// stage's parameters: how to log in and how often to poll change nothing in the outputs.
    pub fn identity(&self) -> Value {
        let mut v = json!({"backend": self.backend.trim_end_matches('/'), "collections": self.collections, "s1_coefficient": self.s1_coefficient});
        if let Some(o) = self.s2_offset {
            v["s2_offset"] = json!(o);
        }
        v
    }

    /// Problems with the settings, for the config readers.
    pub fn check(&self) -> std::result::Result<(), String> {
        let url = match reqwest::Url::parse(self.backend.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            _ => return Err(format!("backend {:?} is not an http(s) URL", self.backend)),
        };
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
        if url.scheme() == "http" && !loopback {
            return Err(format!("backend {:?}: credentials would cross the network in clear text; use https", self.backend));
        }
        if !(self.poll_max_s >= 0.05 && self.poll_max_s <= 3600.0) {
            return Err(format!("poll_max_s {} must be between 0.05 and 3600", self.poll_max_s));
        }
        if !(self.job_timeout_min > 0.0 && self.job_timeout_min <= 7.0 * 24.0 * 60.0) {
            return Err(format!("job_timeout_min {} must be positive and at most a week", self.job_timeout_min));
        }
        const COEFFICIENTS: [&str; 5] = ["beta0", "sigma0-ellipsoid", "sigma0-terrain", "gamma0-ellipsoid", "gamma0-terrain"];
        if !COEFFICIENTS.contains(&self.s1_coefficient.as_str()) {
            return Err(format!("s1_coefficient {:?} is not one of {}", self.s1_coefficient, COEFFICIENTS.join(", ")));
        }
        Ok(())
    }
}

