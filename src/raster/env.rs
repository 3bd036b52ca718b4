//! GDAL's process-wide configuration: its messages routed to `tracing`, the GDAL path of a
//! location (`/vsicurl/` for URLs), HTTP timeout, block-cache limit and network statistics.

use std::ptr::null_mut;
use std::sync::Once;

/// Routes GDAL's own messages to `tracing` instead of stderr, once per process. Errors still
/// reach callers through the `Result`s of the GDAL calls.
pub(super) fn init_gdal() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gdal::config::set_error_handler(|class, code, msg| {
            tracing::debug!(target: "gdal", "{class:?} {code}: {}", crate::error::redact(msg));
        });
        // Network reads: retry transient errors, do not list remote directories.
        for (key, value) in [
            ("GDAL_HTTP_MAX_RETRY", "4"),
            ("GDAL_HTTP_RETRY_DELAY", "1"),
            ("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR"),
            // Count the bytes received, so fetches can report them.
            ("CPL_VSIL_NETWORK_STATS_ENABLED", "YES"),
        ] {
            let _ = gdal::config::set_config_option(key, value);
        }
    });
}

/// The GDAL path for a location: `/vsicurl/` for HTTP(S) URLs, the path otherwise.
pub fn gdal_path(location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        format!("/vsicurl/{location}")
    } else {
        location.to_string()
    }
}

/// HTTP headers GDAL sends with the requests this thread makes while the guard lives
/// (`GDAL_HTTP_HEADERS`, thread-local): a credential set only around reads of its own host's
/// URLs. The value is never logged.
pub struct ThreadHttpHeaders(());

impl ThreadHttpHeaders {
    pub fn set(headers: &str) -> ThreadHttpHeaders {
        let _ = gdal::config::set_thread_local_config_option("GDAL_HTTP_HEADERS", headers);
        ThreadHttpHeaders(())
    }
}

impl Drop for ThreadHttpHeaders {
    fn drop(&mut self) {
        let _ = gdal::config::clear_thread_local_config_option("GDAL_HTTP_HEADERS");
    }
}

/// Timeout of GDAL's HTTP requests, seconds (process-wide).
pub fn set_http_timeout(secs: u64) {
    init_gdal();
    let _ = gdal::config::set_config_option("GDAL_HTTP_TIMEOUT", &secs.to_string());
    let _ = gdal::config::set_config_option("GDAL_HTTP_CONNECTTIMEOUT", &secs.min(30).to_string());
}

/// A limit on GDAL's block cache for as long as it lives; the previous limit comes back on
/// drop. Does nothing when the user set `GDAL_CACHEMAX` (their choice wins).
pub struct BlockCacheLimit {
    previous: Option<i64>,
}

impl BlockCacheLimit {
    pub fn set(bytes: i64) -> BlockCacheLimit {
        init_gdal();
        if std::env::var_os("GDAL_CACHEMAX").is_some() {
            return BlockCacheLimit { previous: None };
        }
        // SAFETY: plain getters and setters of GDAL's global cache size.
        let previous = unsafe { gdal_sys::GDALGetCacheMax64() };
        // SAFETY: as above; takes no pointer.
        unsafe { gdal_sys::GDALSetCacheMax64(bytes) };
        BlockCacheLimit { previous: Some(previous) }
    }
}

impl Drop for BlockCacheLimit {
    fn drop(&mut self) {
        if let Some(p) = self.previous {
            // SAFETY: as above.
            unsafe { gdal_sys::GDALSetCacheMax64(p) };
        }
    }
}

/// Drops what GDAL cached of remote files (sizes, blocks), e.g. after a failed transfer.
pub fn clear_http_cache() {
    // SAFETY: no arguments; clears GDAL's global /vsicurl/ caches.
    unsafe { gdal_sys::VSICurlClearCache() };
}

pub fn network_stats_reset() {
    init_gdal();
    // SAFETY: no arguments.
    unsafe { gdal_sys::VSINetworkStatsReset() };
}

/// Bytes received over HTTP by GDAL since the last reset.
pub fn network_stats_downloaded_bytes() -> u64 {
    // SAFETY: returns a string GDAL allocated (or null), freed with VSIFree below.
    let json = unsafe {
        let ptr = gdal_sys::VSINetworkStatsGetAsSerializedJSON(null_mut());
        if ptr.is_null() {
            return 0;
        }
        let s = std::ffi::CStr::from_ptr(ptr).to_string_lossy().to_string();
        gdal_sys::VSIFree(ptr as *mut std::ffi::c_void);
        s
    };
    let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    value["methods"].as_object().map(|m| m.values().filter_map(|v| v["downloaded_bytes"].as_u64()).sum()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_go_through_vsicurl() {
        assert_eq!(gdal_path("https://x.org/a.tif"), "/vsicurl/https://x.org/a.tif");
        assert_eq!(gdal_path("/data/a.tif"), "/data/a.tif");
    }
}
