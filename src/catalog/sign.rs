//! Access to protected assets: Planetary Computer's SAS tokens (one per collection, cached until
//! shortly before expiry) and CDSE's OAuth bearer token (from the environment, never logged and
//! never written into the project).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// Refresh a token this long before it expires.
const EXPIRY_MARGIN_SECS: i64 = 60;

/// Signs Planetary Computer asset URLs with SAS tokens from its token endpoint.
pub struct PcSigner {
    http: reqwest::blocking::Client,
    token_url: String,
    tokens: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
}

impl PcSigner {
    /// `token_url` without the collection, e.g. `https://planetarycomputer.microsoft.com/api/sas/v1/token`.
    pub fn new(token_url: &str, timeout: Duration) -> Result<PcSigner> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::invalid("http client", e.to_string()))?;
        Ok(PcSigner { http, token_url: token_url.trim_end_matches('/').to_string(), tokens: Mutex::new(HashMap::new()) })
    }

    /// The SAS token of a collection, fetched once and reused until a minute before expiry.
    pub fn token(&self, collection: &str) -> Result<String> {
        let now = Utc::now();
        if let Ok(cache) = self.tokens.lock()
            && let Some((token, expiry)) = cache.get(collection)
            && (*expiry - now).num_seconds() > EXPIRY_MARGIN_SECS
        {
            return Ok(token.clone());
        }
        let url = format!("{}/{collection}", self.token_url);
        // Rate limits (429) and server errors are retried with a growing pause.
        let mut attempt = 0u32;
        let response = loop {
            let mut request = self.http.get(&url);
            // An optional subscription key raises rate limits (the SDK's variable name).
            if let Ok(key) = std::env::var("PC_SDK_SUBSCRIPTION_KEY") {
                request = request.header("Ocp-Apim-Subscription-Key", key);
            }
            let retry = match request.send() {
                Ok(r) if r.status().is_success() => break r,
                Ok(r) if (r.status().is_server_error() || r.status().as_u16() == 429) && attempt < TOKEN_ATTEMPTS => format!("HTTP {}", r.status()),
                Ok(r) => {
                    return Err(Error::http(
                        url,
                        format!("HTTP {} for a SAS token; collections marked as requiring an account need PC_SDK_SUBSCRIPTION_KEY", r.status()),
                    ));
                }
                Err(e) if attempt < TOKEN_ATTEMPTS => crate::error::network_cause(&e),
                Err(e) => return Err(Error::Http { url: url.clone(), message: format!("requesting a SAS token: {}", crate::error::network_cause(&e)), source: Some(e) }),
            };
            attempt += 1;
            tracing::debug!("SAS token request failed ({retry}); attempt {} of {TOKEN_ATTEMPTS}", attempt + 1);
            std::thread::sleep(Duration::from_millis(500 * 2u64.pow(attempt - 1)));
        };
        let text = super::read_body(response, 1 << 20).map_err(|why| Error::http(url.clone(), format!("the token response: {why}")))?;
        let body: serde_json::Value = serde_json::from_str(&text).map_err(Error::json(&url, "the token response is not JSON"))?;
        let token = body["token"].as_str().ok_or_else(|| Error::http(url.clone(), "the response has no `token`"))?.to_string();
        let expiry = body["msft:expiry"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(now + chrono::Duration::minutes(30));
        if let Ok(mut cache) = self.tokens.lock() {
            cache.insert(collection.to_string(), (token.clone(), expiry));
        }
        Ok(token)
    }

    /// `href?token` for HTTP(S) hrefs not signed yet.
    pub fn sign(&self, href: &str, collection: &str) -> Result<String> {
        if !(href.starts_with("http://") || href.starts_with("https://")) || href.contains("sig=") {
            return Ok(href.to_string());
        }
        let token = self.token(collection)?;
        let sep = if href.contains('?') { '&' } else { '?' };
        Ok(format!("{href}{sep}{token}"))
    }
}

/// Where the CDSE access token is looked for: the `CDSE_ACCESS_TOKEN` variable, else the file
/// `$XDG_CONFIG_HOME/s2cr/cdse-token` (or `~/.config/s2cr/cdse-token`), outside every project.
pub fn cdse_token() -> Option<String> {
    if let Ok(token) = std::env::var("CDSE_ACCESS_TOKEN")
        && !token.trim().is_empty()
    {
        return Some(token.trim().to_string());
    }
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config")))?;
    let token = std::fs::read_to_string(dir.join("s2cr/cdse-token")).ok()?;
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Retries of a SAS token request after a rate limit or a server error.
const TOKEN_ATTEMPTS: u32 = 4;

/// Copernicus Data Space's own hosts end with this: downloads there may carry the token.
const CDSE_DOMAIN: &str = ".dataspace.copernicus.eu";

/// The CDSE access token with the hosts it belongs to: the provider's STAC API and Copernicus
/// Data Space's own (`*.dataspace.copernicus.eu`). It is sent per request, to those hosts only,
/// over HTTPS or to a loopback test server; never printed (`Debug` hides it), logged or
/// written.
#[derive(Clone)]
pub struct BearerToken {
    token: String,
    /// `scheme://host[:port]` of the STAC API.
    api_origin: Option<String>,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken").field("token", &"<hidden>").field("api_origin", &self.api_origin).finish()
    }
}

/// `scheme://host[:port]` of an http(s) URL (the port left out where it is the scheme's).
fn origin(url: &str) -> Option<String> {
    super::http_url(url).map(|u| u.origin().ascii_serialization())
}

impl BearerToken {
    /// The configured token for a CDSE provider (see [`cdse_token`]); `None` for other providers
    /// or when none is configured.
    pub fn for_provider(provider: &super::ProviderConfig) -> Option<BearerToken> {
        if provider.kind != super::ProviderKind::Cdse {
            return None;
        }
        Some(BearerToken { token: cdse_token()?, api_origin: origin(&provider.stac_url) })
    }

    /// A token for the hosts of `stac_url` and CDSE (tests give a loopback STAC API).
    pub fn new(token: &str, stac_url: &str) -> BearerToken {
        BearerToken { token: token.trim().to_string(), api_origin: origin(stac_url) }
    }

    /// Whether the token may go with a request for `url`: its host is the STAC API's or CDSE's,
    /// over HTTPS (plain HTTP only to the STAC API's own origin, for loopback servers).
    pub fn applies_to(&self, url: &str) -> bool {
        let Some(u) = super::http_url(url) else { return false };
        let https = u.scheme() == "https";
        let same_api = self.api_origin.as_deref() == Some(u.origin().ascii_serialization().as_str());
        // Plain HTTP only to a STAC API on this machine (a test server), never over a network.
        (same_api && (https || super::is_internal(&u))) || (https && u.host_str().is_some_and(|h| h.ends_with(CDSE_DOMAIN)))
    }

    /// The token for a request to `url`, when it may go there.
    pub fn for_url(&self, url: &str) -> Option<&str> {
        self.applies_to(url).then_some(self.token.as_str())
    }

    /// Has GDAL send the token with the requests this thread makes for `url` while the guard
    /// lives, when the token may go there (`None` otherwise). The header is set for this thread
    /// only (GDAL's thread-local configuration), so other threads' reads, of other hosts or
    /// other providers, carry nothing; curl does not send it on across a redirect to another
    /// host. Needs GDAL 3.6 or newer (`GDAL_HTTP_HEADERS`).
    pub fn gdal_guard(&self, url: &str) -> Result<Option<crate::raster::ThreadHttpHeaders>> {
        if !self.applies_to(url) {
            return Ok(None);
        }
        gdal_headers_supported()?;
        Ok(Some(crate::raster::ThreadHttpHeaders::set(&format!("Authorization: Bearer {}", self.token))))
    }
}

/// GDAL reads `GDAL_HTTP_HEADERS` from 3.6 on.
fn gdal_headers_supported() -> Result<()> {
    if cfg!(gdal_http_headers) {
        return Ok(());
    }
    Err(Error::invalid(
        "GDAL",
        format!(
            "CDSE downloads need GDAL 3.6 or newer (for per-request headers); this s2cr was built with GDAL {}. \
             Install GDAL 3.6+ (Debian 12, Ubuntu 24.04) and rebuild, or use another provider",
            env!("S2CR_GDAL_BUILD_VERSION")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_to_its_hosts_only() {
        let b = BearerToken::new(" secret ", "https://stac.dataspace.copernicus.eu/v1");
        assert_eq!(b.for_url("https://zipper.dataspace.copernicus.eu/odata/x.tif"), Some("secret"));
        assert_eq!(b.for_url("https://stac.dataspace.copernicus.eu/v1/search"), Some("secret"));
        for other in [
            "http://zipper.dataspace.copernicus.eu/x.tif",
            "https://dataspace.copernicus.eu.evil.org/x.tif",
            "https://evil.org/x.dataspace.copernicus.eu",
            "https://zipper.dataspace.copernicus.eu@evil.org/x.tif",
            "file:///etc/passwd",
            "/vsis3/bucket/x.tif",
        ] {
            assert_eq!(b.for_url(other), None, "{other}");
        }
        let local = BearerToken::new("t", "http://127.0.0.1:4000");
        assert!(local.applies_to("http://127.0.0.1:4000/a.tif") && !local.applies_to("http://127.0.0.1:4001/a.tif"));
        let plain = BearerToken::new("t", "http://stac.example.org");
        assert!(!plain.applies_to("http://stac.example.org/a.tif"), "never in clear text over a network");
        assert!(!format!("{b:?}").contains("secret"));
    }
    #[test]
    fn the_cdse_token_comes_from_the_user_config_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("s2cr")).unwrap();
        std::fs::write(dir.path().join("s2cr/cdse-token"), "abc.def\n").unwrap();
        // SAFETY: this test binary's tests do not read these variables concurrently.
        unsafe {
            std::env::remove_var("CDSE_ACCESS_TOKEN");
            std::env::set_var("XDG_CONFIG_HOME", dir.path());
        }
        assert_eq!(super::cdse_token().as_deref(), Some("abc.def"));
    }
}
