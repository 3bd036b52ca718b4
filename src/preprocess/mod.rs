//! Preprocessing onto the project's 10 m grid. `s1`: Sentinel-1 radiometry (calibration, thermal
//! noise, speckle filters, dB); `s2`: Sentinel-2 reflectance with the baseline offset and SCL
//! masks; `snap`: the research code's SNAP graphs run by `gpt`. `stage`: from `raw/` to
//! `preprocessed/` with the native or the SNAP engine, in blocks of rows.

pub mod s1;
pub mod s2;
pub mod snap;
pub mod stage;
