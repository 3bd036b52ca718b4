//! The library's one error type. Every variant names the file, field or URL involved, so the
//! message a user sees says where the problem is and what to do about it.
//! Nothing here decides how errors are shown: the CLI prints the chain, the GUI shows a panel.

use std::path::{Path, PathBuf};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file or folder failed.
    #[error("{}: {action}: {source}", path.display())]
    Io { path: PathBuf, action: &'static str, source: std::io::Error },

    /// A YAML file has a syntax error, an unknown key or a bad value. `source` is the parser's
    /// error where there is one (a value that parses but makes no sense has none).
    #[error("{}: line {line}, column {column}: {message}", path.display())]
    Yaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        #[source]
        source: Option<serde_norway::Error>,
    },

    /// A JSON file (manifest, STAC item, report) could not be read or written; `hint` says what
    /// to do about it.
    #[error("{}: {source}{}", path.display(), hint_suffix(hint))]
    Json { path: PathBuf, hint: String, source: serde_json::Error },

    /// GeoJSON that does not parse or is not a polygon.
    #[error("{source_name}: invalid GeoJSON: {message}")]
    GeoJson { source_name: String, message: String },

    /// WKT that does not parse or is not a polygon.
    #[error("{source_name}: invalid WKT: {message}")]
    Wkt { source_name: String, message: String },

    /// An area of interest that parsed but cannot be used; `problems` says every reason found.
    #[error("{source_name}: the area of interest is not usable: {}", problems.join("; "))]
    InvalidAoi { source_name: String, problems: Vec<String> },

    /// GDAL failed on a file or URL.
    #[cfg(feature = "gdal")]
    #[error("{location}: {action}: {source}")]
    Gdal { location: String, action: String, source: gdal::errors::GdalError },

    /// A raster exists but does not have what the caller needs (bands, size, CRS).
    #[error("{location}: {message}")]
    Raster { location: String, message: String },

    /// A STAC item lacks an asset the pipeline needs.
    #[error("{item}: {message}")]
    Asset { item: String, message: String },

    /// A model checkpoint or weights file could not be saved or loaded.
    #[error("{}: {action}: {source}", path.display())]
    Checkpoint { path: PathBuf, action: String, source: burn::store::RecordError },

    /// An HTTP request failed (after its retries, where it had any). `source` is the client's
    /// error where there is one (a refused status has none).
    #[error("{url}: {message}")]
    Http {
        url: String,
        message: String,
        #[source]
        source: Option<reqwest::Error>,
    },

    /// The project folder or its configuration is not usable.
    #[error("{}: {message}", path.display())]
    Project { path: PathBuf, message: String },

    /// A command-line or configuration value that is out of range or malformed.
    #[error("{field}: {message}")]
    InvalidValue { field: String, message: String },

    /// The user cancelled a job; work done so far is kept and the stage can be resumed.
    #[error("cancelled by the user; run the same command again to resume")]
    Cancelled,

    /// A background job ended without a result (its thread panicked).
    #[error("job '{job}' stopped unexpectedly: {message}")]
    JobPanicked { job: String, message: String },
}

impl Error {
    /// Wraps an I/O error with the path and what was being done.
    pub fn io(path: impl AsRef<Path>, action: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Io { path, action, source }
    }

    /// Wraps a GDAL error with the file or URL and what was being done.
    #[cfg(feature = "gdal")]
    pub fn gdal(
        location: impl std::fmt::Display,
        action: impl Into<String>,
    ) -> impl FnOnce(gdal::errors::GdalError) -> Error {
        let location = location.to_string();
        let action = action.into();
        move |source| Error::Gdal { location, action, source }
    }

    /// A YAML parse error of the file `path` holding `text`, with its line and column. Errors
    /// raised by a value's own parser (a date, say) carry no useful location: the quoted value
    /// is found in the text instead.
    pub fn yaml(path: impl AsRef<Path>, text: &str, source: serde_norway::Error) -> Error {
        let (mut line, mut column) = source.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        let message = source.to_string();
        if line <= 1
            && let Some(value) = message.split('\'').nth(1).filter(|v| !v.is_empty())
            && let Some((l, c)) = text.lines().enumerate().find_map(|(i, l)| l.find(value).map(|c| (i + 1, c + 1)))
        {
            (line, column) = (l, c);
        }
        // serde_norway appends " at line N column M"; the variant prints the location itself.
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        Error::Yaml { path: path.as_ref().to_path_buf(), line, column, message, source: Some(source) }
    }

    /// Wraps a JSON error with the file and what to do about it.
    pub fn json(path: impl AsRef<Path>, hint: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        let hint = hint.into();
        move |source| Error::Json { path, hint, source }
    }

    /// Wraps a checkpoint error with the file and what was being done.
    pub fn checkpoint(path: impl AsRef<Path>, action: impl Into<String>) -> impl FnOnce(burn::store::RecordError) -> Error {
        let path = path.as_ref().to_path_buf();
        let action = action.into();
        move |source| Error::Checkpoint { path, action, source }
    }

    /// An HTTP failure without an underlying client error (a refused status, a bad body).
    pub fn http(url: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Http { url: url.into(), message: message.into(), source: None }
    }

    /// An invalid value for a named field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidValue { field: field.into(), message: message.into() }
    }
}

/// `text` with the secrets of the URLs in it removed: the query string (a Planetary Computer
/// signature, a token) becomes `?…` and user information (`user:password@`) goes. Everything
/// the program prints, logs or shows goes through it (`error_chain`, job events, GDAL's
/// messages), so a signed URL never reaches a terminal, a log or a report.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = ["http://", "https://"].iter().filter_map(|s| rest.find(s)).min() {
        out.push_str(&rest[..i]);
        let url_len = rest[i..].find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']' | ',')).unwrap_or(rest.len() - i);
        let url = &rest[i..i + url_len];
        let (scheme, after) = url.split_once("://").unwrap_or(("", url));
        let (authority, path) = match after.find(['/', '?', '#']) {
            Some(j) => after.split_at(j),
            None => (after, ""),
        };
        let authority = authority.rsplit_once('@').map(|(_, host)| host).unwrap_or(authority);
        let path = match path.find('?') {
            Some(q) => format!("{}?…", &path[..q]),
            None => path.to_string(),
        };
        out.push_str(&format!("{scheme}://{authority}{path}"));
        rest = &rest[i + url_len..];
    }
    out.push_str(rest);
    out
}

/// Why an HTTP request failed, in words a user can act on: the cause under the client's
/// "error sending request" (name resolution, refused connection, TLS, timeout) with a hint.
pub fn network_cause(error: &reqwest::Error) -> String {
    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    let all = chain.join(": ").to_ascii_lowercase();
    let deepest = chain.last().cloned().unwrap_or_default();
    if error.is_timeout() || all.contains("timed out") {
        format!("timed out ({deepest}); the server is slow or unreachable: try again, or raise the timeout")
    } else if all.contains("dns error") || all.contains("failed to lookup address") || all.contains("name or service not known") {
        format!("the host name could not be resolved ({deepest}): are you offline, or is the host name wrong?")
    } else if all.contains("connection refused") {
        format!("the connection was refused ({deepest}): is the server running, and is the port right?")
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        format!("the secure connection failed ({deepest}): check the system's certificates, the clock, or a proxy that intercepts HTTPS")
    } else if all.contains("connection reset") || all.contains("connection closed") || all.contains("broken pipe") {
        format!("the connection was cut ({deepest}): try again")
    } else {
        redact(&chain.join(": "))
    }
}

/// "; hint", or nothing for an empty hint.
fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() { String::new() } else { format!("; {hint}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_errors_keep_their_source() {
        let json = serde_json::from_str::<u32>("x").map_err(Error::json("a.json", "run it again")).unwrap_err();
        assert!(json.to_string().starts_with("a.json: expected value"), "{json}");
        assert!(json.to_string().ends_with("; run it again"), "{json}");
        assert!(std::error::Error::source(&json).is_some());
        let yaml = serde_norway::from_str::<u32>("[").unwrap_err();
        let e = Error::Yaml { path: "a.yaml".into(), line: 1, column: 1, message: "bad".into(), source: Some(yaml) };
        assert!(std::error::Error::source(&e).is_some());
        assert!(std::error::Error::source(&Error::http("http://x", "status 500")).is_none());
    }

    #[test]
    fn network_failures_say_their_cause() {
        let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let refused = client.get(format!("http://127.0.0.1:{port}/x")).send().unwrap_err();
        assert!(network_cause(&refused).contains("the connection was refused"), "{}", network_cause(&refused));
        let unresolved = client.get("http://no-such-host.invalid/x").send().unwrap_err();
        assert!(network_cause(&unresolved).contains("could not be resolved"), "{}", network_cause(&unresolved));
    }

    #[test]
    fn urls_lose_their_secrets_when_shown() {
        assert_eq!(
            redact("/vsicurl/https://pc.blob.core.windows.net/a/B04.tif?st=1&se=2&sig=SECRET: HTTP 403"),
            "/vsicurl/https://pc.blob.core.windows.net/a/B04.tif?… HTTP 403"
        );
        assert_eq!(redact("see 'http://user:pw@host:8080/x?token=abc' and https://h/y"), "see 'http://host:8080/x?…' and https://h/y");
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(redact("https://h?sig=1"), "https://h?…");
    }
}
