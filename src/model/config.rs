//! model.yaml and train.yaml, the research code's two configuration files. Both are strict:
//! an unknown key or a wrong type is reported with the file, line and column.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Normalization layers of both networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    /// Batch normalization (pix2pix's default).
    #[default]
    Batch,
    /// Instance normalization with a learned scale and shift per channel.
    Instance,
    /// Instance normalization without learned parameters: pix2pix's `--norm instance`
    /// (`InstanceNorm2d(affine=False)`).
    #[serde(rename = "instance-no-affine")]
    InstanceNoAffine,
}

impl NormKind {
    /// Instance normalizations, after which convolutions have a bias (pix2pix's `use_bias`).
    pub fn is_instance(self) -> bool {
        matches!(self, NormKind::Instance | NormKind::InstanceNoAffine)
    }
}

/// Which decoder blocks of the generator have dropout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DropoutBlocks {
    /// As pix2pix: the `num_downs - 5` blocks of 8 ngf channels inside the innermost's
    /// neighbours (3 for unet_256, 2 for unet_128, 1 at depth 6).
    #[default]
    Pix2pix,
    /// The three decoder blocks after the innermost whatever the depth (models of s2cr 0.1;
    /// the same as pix2pix at depth 8). A model.yaml without the key means this.
    Three,
}

fn dropout_blocks_before_the_key() -> DropoutBlocks {
    DropoutBlocks::Three
}

/// The generator's last activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputActivation {
    /// From the dataset's normalization: sigmoid for maps into [0, 1] (tile and training
    /// min/max), none otherwise.
    #[default]
    Auto,
    Tanh,
    Sigmoid,
    None,
}

/// What the generator's output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorOutput {
    /// The post-fire image itself (pix2pix).
    #[default]
    Direct,
    /// The change from the pre-fire image: the synthetic t1 is the input's S2 t0, mapped into
    /// the label's normalization, plus the network's output (no output activation). Needs S2 t0
    /// among the inputs for every output band.
    Residual,
}

impl GeneratorOutput {
    pub fn is_direct(&self) -> bool {
        *self == GeneratorOutput::Direct
    }
}

/// How the generator's decoder doubles its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Upsample {
    /// pix2pix's 4x4 transposed convolution of stride 2 (its uneven overlaps draw a checkerboard).
    #[default]
    Transposed,
    /// Nearest-neighbour resizing, then a 3x3 convolution (Odena et al. 2016): no checkerboard.
    ResizeConv,
}

impl Upsample {
    pub fn is_transposed(&self) -> bool {
        *self == Upsample::Transposed
    }
}

/// The generator's own estimate of its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UncertaintyHead {
    /// None (pix2pix); Monte-Carlo dropout at inference is the only uncertainty.
    #[default]
    None,
    /// A second head beside the last layer predicts, per pixel and band, the log of a Laplace
    /// scale b; training minimizes the Laplace negative log-likelihood |y - mu| / b + log b on
    /// the label's clear pixels instead of L1 (UnCRtainTS's way), and plain inference writes
    /// the standard deviation sqrt(2) b.
    Aleatoric,
}

impl UncertaintyHead {
    pub fn is_none(&self) -> bool {
        *self == UncertaintyHead::None
    }
}

/// model.yaml: the U-Net generator and the PatchGAN discriminator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Input channels; 0 = from the dataset.
    pub input_channels: usize,
    /// Output channels; 0 = from the dataset.
    pub output_channels: usize,
    /// Generator filters in the first layer (pix2pix: 64).
    pub ngf: usize,
    /// Discriminator filters in the first layer (pix2pix: 64).
    pub ndf: usize,
    /// Downsamplings of the U-Net (pix2pix unet_256: 8; patches must be a multiple of 2^depth).
    pub depth: usize,
    /// Discriminator layers (pix2pix basic 70x70 PatchGAN: 3).
    pub discriminator_layers: usize,
    pub norm: NormKind,
    /// Dropout in the decoder blocks `dropout_blocks` names (pix2pix: 0.5).
    pub dropout: f64,
    #[serde(default = "dropout_blocks_before_the_key")]
    pub dropout_blocks: DropoutBlocks,
    pub output_activation: OutputActivation,
    /// The image (pix2pix) or its change from S2 t0 (`residual`); absent: the image.
    #[serde(skip_serializing_if = "GeneratorOutput::is_direct")]
    pub output: GeneratorOutput,
    /// A learned per-pixel linear map of all inputs (a 1 x 1 convolution beside the U-Net)
    /// added to the output, started on a new run at the training patches' ridge fit: the model
    /// starts where a linear regression already is. Absent: none (pix2pix).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub linear: bool,
    /// `aleatoric`: a head that predicts each pixel's error scale (see [`UncertaintyHead`]);
    /// absent: none (pix2pix).
    #[serde(skip_serializing_if = "UncertaintyHead::is_none")]
    pub uncertainty: UncertaintyHead,
    /// The decoder's upsampling: `resize-conv` (nearest resize, then 3x3) or pix2pix's
    /// transposed convolution; absent: transposed.
    #[serde(skip_serializing_if = "Upsample::is_transposed")]
    pub upsample: Upsample,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { input_channels: 0, output_channels: 0, ngf: 64, ndf: 64, depth: 8, discriminator_layers: 3, norm: NormKind::Batch, dropout: 0.5, dropout_blocks: DropoutBlocks::Pix2pix, output_activation: OutputActivation::Auto, output: GeneratorOutput::Direct, linear: false, uncertainty: UncertaintyHead::None, upsample: Upsample::Transposed }
    }
}

/// The adversarial loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GanLoss {
    /// Binary cross-entropy on logits (pix2pix "vanilla").
    #[default]
    Vanilla,
    /// Least squares (LSGAN).
    LeastSquares,
}

/// train.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Epochs at the initial learning rate (pix2pix n_epochs).
    pub epochs: usize,
    /// Further epochs with the rate decaying linearly to 0 (pix2pix n_epochs_decay).
    pub decay_epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Weight of the L1 term (pix2pix lambda_L1).
    pub l1_weight: f64,
    pub gan_loss: GanLoss,
    /// Save a checkpoint every this many steps (and always at the end and on cancel).
    pub checkpoint_every: usize,
    /// Validate every this many steps (0: at the end of each epoch only).
    pub validate_every: usize,
    /// Stop after this many steps in all (0: no limit), e.g. for quick tests.
    pub max_steps: usize,
    pub seed: u64,
    /// Data loading threads, when patches are read from disk (none when the dataset is held in
    /// memory, see `in_memory_mib`).
    pub workers: usize,
    /// Random flips and rotations of training patches.
    pub augment: bool,
    /// Write runs/<run>/preview.png (label and synthetic, true colour) every this many steps
    /// (0: never).
    pub preview_every: usize,
    /// Hold the dataset's stacks in memory (read once) when they take at most this many MiB
    /// and half the available memory; 0: read every patch from disk.
    pub in_memory_mib: usize,
    /// Fine-tune: start a new run from the weights of a run folder (of any project) or a
    /// generator file (.pth, .safetensors); relative paths are from the project folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<std::path::PathBuf>,
    /// With `init_from`: where the channels differ, start the first (inputs) or last (outputs)
    /// layer afresh instead of refusing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adapt_channels: bool,
    /// Weight of the L1 between the synthetic and the real NBR (NIR and B12 of the outputs, in
    /// reflectance), on the label's clear pixels; 0: off (pix2pix).
    #[serde(skip_serializing_if = "is_zero")]
    pub nbr_weight: f64,
    /// Weight of the L1 between the synthetic and the real NDVI (NIR and B04); 0: off.
    #[serde(skip_serializing_if = "is_zero")]
    pub ndvi_weight: f64,
    /// Weight of the mean spectral angle (radians) between synthetic and real pixels over the
    /// output bands, in reflectance; 0: off.
    #[serde(skip_serializing_if = "is_zero")]
    pub sam_weight: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            decay_epochs: 100,
            batch_size: 1,
            learning_rate: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            l1_weight: 100.0,
            gan_loss: GanLoss::Vanilla,
            checkpoint_every: 500,
            validate_every: 0,
            max_steps: 0,
            seed: 42,
            workers: 2,
            augment: true,
            preview_every: 50,
            in_memory_mib: 2048,
            init_from: None,
            adapt_channels: false,
            nbr_weight: 0.0,
            ndvi_weight: 0.0,
            sam_weight: 0.0,
        }
    }
}

impl TrainConfig {
    /// The learning rate of an epoch: constant, then linear decay (pix2pix's "linear" policy).
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        if epoch < self.epochs || self.decay_epochs == 0 {
            return self.learning_rate;
        }
        let past = (epoch - self.epochs + 1) as f64;
        self.learning_rate * (1.0 - past / (self.decay_epochs as f64 + 1.0)).max(0.0)
    }
}

fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    serde_norway::from_str(text).map_err(|e| Error::yaml(path, text, e))
}

impl ModelConfig {
    pub fn parse(text: &str, path: &Path) -> Result<ModelConfig> {
        let c: ModelConfig = parse_yaml(text, path)?;
        c.check(&path.display().to_string())?;
        Ok(c)
    }

    /// Checks the values that parse but cannot build a model; `source` names where they came
    /// from (a file, pipeline.yaml, the app).
    pub fn check(&self, source: &str) -> Result<()> {
        if self.depth < 2 || self.ngf == 0 || self.ndf == 0 || self.discriminator_layers == 0 || !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(source, "depth >= 2, ngf, ndf and discriminator_layers >= 1, 0 <= dropout < 1"));
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path, "reading the model configuration"))?;
        ModelConfig::parse(&text, path)
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }
}

impl ModelConfig {
    /// A generator small enough to train in minutes on a CPU: 16 filters in the first layers of
    /// both networks and 6 levels (patches are multiples of 2^6 = 64 px). The demo's model and
    /// the app's "small model" choice.
    pub fn small() -> ModelConfig {
        ModelConfig { ngf: 16, ndf: 16, depth: 6, ..ModelConfig::default() }
    }
}

impl TrainConfig {
    pub fn parse(text: &str, path: &Path) -> Result<TrainConfig> {
        let c: TrainConfig = parse_yaml(text, path)?;
        c.check(&path.display().to_string())?;
        Ok(c)
    }

    /// Checks the values that parse but cannot train; `source` names where they came from.
    pub fn check(&self, source: &str) -> Result<()> {
        if self.batch_size == 0 || !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) || self.epochs + self.decay_epochs == 0 {
            return Err(Error::invalid(source, "batch_size >= 1, a finite learning_rate > 0 and at least one epoch"));
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path, "reading the training configuration"))?;
        TrainConfig::parse(&text, path)
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_configs_parse_and_typos_name_their_line() {
        let m = ModelConfig::parse(include_str!("../../confs/model.yaml"), Path::new("confs/model.yaml")).unwrap();
        assert_eq!((m.ngf, m.ndf, m.depth, m.norm), (64, 64, 8, NormKind::Batch));
        let t = TrainConfig::parse(include_str!("../../confs/train.yaml"), Path::new("confs/train.yaml")).unwrap();
        assert_eq!((t.learning_rate, t.beta1, t.beta2, t.l1_weight), (2e-4, 0.5, 0.999, 100.0));
        let err = TrainConfig::parse("epochs: 3\nbatch_sise: 4\n", Path::new("train.yaml")).unwrap_err().to_string();
        assert!(err.contains("train.yaml") && err.contains("line 2") && err.contains("batch_sise"), "{err}");
        let ft = TrainConfig::parse("init_from: runs/last-year\nadapt_channels: true\n", Path::new("train.yaml")).unwrap();
        assert_eq!((ft.init_from.as_deref(), ft.adapt_channels), (Some(Path::new("runs/last-year")), true));
        assert!(!t.to_yaml().contains("init_from") && ft.to_yaml().contains("init_from: runs/last-year"), "written only when set");
        let err = ModelConfig::parse("ngf: many\n", Path::new("model.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("ngf"), "{err}");
    }

    #[test]
    fn the_rate_is_constant_then_decays_linearly_to_zero() {
        let t = TrainConfig { epochs: 2, decay_epochs: 3, learning_rate: 1.0, ..Default::default() };
        let rates: Vec<f64> = (0..5).map(|e| t.learning_rate_at(e)).collect();
        assert_eq!(rates, [1.0, 1.0, 0.75, 0.5, 0.25]);
    }
}
