//! Tools for users comparing hardware (`s2cr bench`) and for maintainers (rebuilding the demo's
//! assets); nothing in the pipeline uses them.

pub mod bench;
pub mod demo_assets;
pub mod filters_bench;
pub mod model_bench;
