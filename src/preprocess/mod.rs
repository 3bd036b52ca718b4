//! Preprocessing onto the project's 10 m grid. `s1`: Sentinel-1 radiometry (calibration, thermal
//! noise, speckle filters, dB). Sentinel-2 resampling and masks, the stage itself and the SNAP
//! engine are still to come.

pub mod s1;
