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

    /// A YAML file has a syntax error, an unknown key or a bad value.
    #[error("{}: line {line}, column {column}: {message}", path.display())]
    Yaml { path: PathBuf, line: usize, column: usize, message: String },

    /// A JSON file (manifest, STAC item) could not be read or written.
    #[error("{}: {message}", path.display())]
    Json { path: PathBuf, message: String },

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
    #[error("{location}: {action}: {source}")]
    Gdal { location: String, action: String, source: gdal::errors::GdalError },

    /// A raster exists but does not have what the caller needs (bands, size, CRS).
    #[error("{location}: {message}")]
    Raster { location: String, message: String },

    /// An HTTP request failed (after its retries, where it had any).
    #[error("{url}: {message}")]
    Http { url: String, message: String },

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
    pub fn gdal(
        location: impl std::fmt::Display,
        action: impl Into<String>,
    ) -> impl FnOnce(gdal::errors::GdalError) -> Error {
        let location = location.to_string();
        let action = action.into();
        move |source| Error::Gdal { location, action, source }
    }

    /// An invalid value for a named field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidValue { field: field.into(), message: message.into() }
    }
}
