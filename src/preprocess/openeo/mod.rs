//! The openEO engine: preprocessing run near the data by an openEO back-end (Copernicus Data
//! Space Ecosystem, Terrascope, EODC, or any other implementing openEO API 1.x), as batch jobs.
//!
//! - [`s2_graph`] and [`s1_graph`] build the process graphs of one date from the project's grid,
//!   bands and mask rules, with standard openEO processes only: the Sentinel-2 bands and the
//!   scene classification are resampled onto the grid (the grid's CRS, 10 m, aligned to its
//!   upper-left corner), the cloud/shadow/cirrus classes are dilated by the project's buffer with
//!   `apply_kernel` (a square of ones: the native engine's square dilation) and masked, no data
//!   and saturated pixels too, then the values become reflectance with the scale and offset the
//!   back-end's collection states (`scaling`);
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
//!
//! The room's files: `graph` (process graphs), `client` (requests, batch jobs, waiting),
//! `auth` (credentials and login), `download` (result files), `jobs` (the job book) and
//! `scaling` (Sentinel-2 numbers to reflectance, from the back-end's collection).

mod auth;
mod client;
mod download;
mod graph;
mod jobs;
mod scaling;

pub use crate::project::openeo::{AuthMethod, OpenEoCollections, OpenEoSettings};
pub use auth::{Credentials, credentials_file};
pub use client::{Backend, JobState, ResultAsset};
pub use graph::{GraphScope, graph_digest, s1_graph, s2_graph};
pub use jobs::{JobBook, JobEntry, run_job};
pub use scaling::S2Scaling;
pub use scaling::{choose as choose_s2_scaling, collection_metadata};

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!((parsed.auth, parsed.s1_coefficient.as_str(), parsed.collections.s2.as_str(), parsed.s2_offset), (AuthMethod::OidcRefreshToken, "gamma0-terrain", "SENTINEL2_L2A", None));
        // The offset decides the results: in the stage's parameters when set, absent (as before it existed) when not.
        assert!(parsed.identity().get("s2_offset").is_none());
        let offset: OpenEoSettings = serde_norway::from_str(&format!("{yaml}s2_offset: -1000\n")).unwrap();
        assert_eq!(offset.identity()["s2_offset"], serde_json::json!(-1000.0));
    }
}
