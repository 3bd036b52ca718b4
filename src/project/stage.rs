//! The pipeline's stages: their order and names. A leaf of `project`: where a stage's files
//! and manifest live is `paths`'s business.

use serde::{Deserialize, Serialize};

/// The pipeline's stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Search,
    Fetch,
    Preprocess,
    Dataset,
    Train,
    Infer,
    Assess,
    Export,
}

impl Stage {
    pub const ALL: [Stage; 8] =
        [Stage::Search, Stage::Fetch, Stage::Preprocess, Stage::Dataset, Stage::Train, Stage::Infer, Stage::Assess, Stage::Export];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Search => "search",
            Stage::Fetch => "fetch",
            Stage::Preprocess => "preprocess",
            Stage::Dataset => "dataset",
            Stage::Train => "train",
            Stage::Infer => "infer",
            Stage::Assess => "assess",
            Stage::Export => "export",
        }
    }

    /// True for stages that run once per training run (`runs/<id>`, `outputs/<id>`).
    pub fn per_run(self) -> bool {
        matches!(self, Stage::Train | Stage::Infer | Stage::Assess | Stage::Export)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
