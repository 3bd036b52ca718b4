//! Preprocessing onto the project's 10 m grid. `s1`: Sentinel-1 radiometry (calibration, thermal
//! noise, dB); `speckle`: the speckle filters (boxcar, Lee, Refined Lee); `s2`: Sentinel-2
//! reflectance with the baseline offset and SCL masks; `snap`: the research code's SNAP graphs run by `gpt`; `openeo`: process graphs run as
//! batch jobs by an openEO back-end, and its client. `stage`: from `raw/` to `preprocessed/` with
//! the native, SNAP or openEO engine, in blocks of rows. `composite`: a date window's clear
//! observations, per pixel, as one image.

pub mod composite;
pub mod openeo;
pub mod s1;
pub mod s2;
pub mod snap;
pub mod speckle;
pub mod stage;
