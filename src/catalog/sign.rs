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
        let mut request = self.http.get(&url);
        // An optional subscription key raises rate limits (the SDK's variable name).
        if let Ok(key) = std::env::var("PC_SDK_SUBSCRIPTION_KEY") {
            request = request.header("Ocp-Apim-Subscription-Key", key);
        }
        let response = request.send().map_err(|e| Error::Http { url: url.clone(), message: "requesting a SAS token".into(), source: Some(e) })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::http(
                url,
                format!("HTTP {status} for a SAS token; collections marked as requiring an account need PC_SDK_SUBSCRIPTION_KEY"),
            ));
        }
        let body: serde_json::Value = response.json().map_err(|e| Error::Http { url: url.clone(), message: "the token response is not JSON".into(), source: Some(e) })?;
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

/// Hands the CDSE token to GDAL as a bearer header for downloads. Returns whether there was
/// one. The token itself is never printed.
pub fn use_cdse_token() -> bool {
    match cdse_token() {
        Some(token) => {
            let _ = gdal::config::set_config_option("GDAL_HTTP_HEADERS", &format!("Authorization: Bearer {token}"));
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
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
