//! The numbers that the assessment, training and inference share: spectral indices of burn and
//! vegetation (`spectral`), image quality of a synthetic image against the real one (`metrics`),
//! burn-severity classes from dNBR (`severity`) and small least-squares fits (`linalg`).
//!
//! A leaf: plain arithmetic on slices, importing nothing of the crate, so `model` (training's
//! PSNR/SSIM, inference's burned class) and `assess` (the report) can both use it without
//! importing each other.

pub mod linalg;
pub mod metrics;
pub mod severity;
pub mod spectral;
