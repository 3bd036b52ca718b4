//! Tells the crate which GDAL it is built against (from gdal-sys): `gdal_http_headers` where
//! GDAL reads `GDAL_HTTP_HEADERS` (3.6 and newer), which carries a credential per request.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gdal_http_headers)");
    println!("cargo::rerun-if-env-changed=DEP_GDAL_VERSION_NUMBER");
    let version = std::env::var("DEP_GDAL_VERSION_NUMBER").ok().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    if version >= 3_060_000 {
        println!("cargo::rustc-cfg=gdal_http_headers");
    }
    println!("cargo::rustc-env=S2CR_GDAL_BUILD_VERSION={}.{}", version / 1_000_000, (version % 1_000_000) / 10_000);
}
