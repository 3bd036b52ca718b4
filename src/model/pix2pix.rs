//! pix2pix's generator weights in and out: the state dict that junyanz/pytorch-CycleGAN-and-
//! pix2pix's `save_networks` writes (`latest_net_G.pth`) or the same keys in a safetensors file,
//! mapped onto our [`Generator`] and back.
//!
//! pix2pix builds its `UnetGenerator` recursively: the outermost `UnetSkipConnectionBlock` is
//! `model`, and each block's `nn.Sequential` is `<block>.model`, holding its layers by index
//! with the next block inside. So the keys spell the nesting, e.g. for unet_256's level 2
//! encoder convolution `model.model.1.model.3.model.1.weight`. [`keys`] lists every key of a
//! configuration with our parameter and its shape, in both directions; [`read_config`] finds
//! the configuration (depth, ngf, channels, norm) from the keys and shapes of a file.
//!
//! Layers by index (pix2pix's `UnetSkipConnectionBlock.__init__`):
//! - outermost: `[downconv, submodule, uprelu, upconv, tanh]`;
//! - middle: `[downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm(, dropout)]`;
//! - innermost: `[downrelu, downconv, uprelu, upconv, upnorm]`.
//!
//! PyTorch names a norm's scale and shift `weight` and `bias`, Burn `gamma` and `beta`;
//! `BatchNorm2d` also keeps `num_batches_tracked`, which Burn has no use for (it is read and
//! dropped, and written as 0). pix2pix's instance norm has no parameters at all.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, ModuleStore, PytorchStore, SafetensorsStore};

use super::config::{DropoutBlocks, ModelConfig, NormKind, OutputActivation};
use super::generator::{Activation, Generator, level_channels};
use crate::error::{Error, Result};

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A float parameter or running statistic that Burn keeps.
    Float,
    /// `num_batches_tracked`: int64, one value, not used by Burn.
    BatchCount,
}

/// One tensor of pix2pix's state dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// pix2pix's name (`model.model.1.model.1.weight`).
    pub pix2pix: String,
    /// Our parameter's path in the [`Generator`] module (`down.1.weight`).
    pub ours: String,
    pub shape: Vec<usize>,
    pub role: Role,
}

/// The prefix of each level's `UnetSkipConnectionBlock` (`model` for the outermost).
fn block_prefixes(depth: usize) -> Vec<String> {
    let mut prefixes = vec!["model".to_string()];
    for i in 1..depth {
        // The submodule sits at index 1 of the outermost block and 3 of the others.
        let inner = if i == 1 { 1 } else { 3 };
        prefixes.push(format!("{}.model.{inner}", prefixes[i - 1]));
    }
    prefixes
}

/// Every key of a generator with this configuration (channels resolved), in pix2pix's order.
pub fn keys(cfg: &ModelConfig) -> Vec<Key> {
    let depth = cfg.depth;
    let ch = |i: usize| level_channels(cfg.ngf, i);
    let bias = cfg.norm.is_instance();
    let mut out = Vec::new();
    let conv = |out: &mut Vec<Key>, at: String, ours: String, shape: [usize; 4], with_bias: bool, bias_len: usize| {
        out.push(Key { pix2pix: format!("{at}.weight"), ours: format!("{ours}.weight"), shape: shape.to_vec(), role: Role::Float });
        if with_bias {
            out.push(Key { pix2pix: format!("{at}.bias"), ours: format!("{ours}.bias"), shape: vec![bias_len], role: Role::Float });
        }
    };
    let norm = |out: &mut Vec<Key>, at: String, ours: String, channels: usize| match cfg.norm {
        NormKind::Batch => {
            for (p, o) in [("weight", "gamma"), ("bias", "beta"), ("running_mean", "running_mean"), ("running_var", "running_var")] {
                out.push(Key { pix2pix: format!("{at}.{p}"), ours: format!("{ours}.batch.{o}"), shape: vec![channels], role: Role::Float });
            }
            out.push(Key { pix2pix: format!("{at}.num_batches_tracked"), ours: String::new(), shape: vec![], role: Role::BatchCount });
        }
        NormKind::Instance => {
            for (p, o) in [("weight", "gamma"), ("bias", "beta")] {
                out.push(Key { pix2pix: format!("{at}.{p}"), ours: format!("{ours}.instance.{o}"), shape: vec![channels], role: Role::Float });
            }
        }
        NormKind::InstanceNoAffine => {}
    };
    let prefixes = block_prefixes(depth);
    for (i, p) in prefixes.iter().enumerate() {
        let innermost = i == depth - 1;
        let c_in = if i == 0 { cfg.input_channels } else { ch(i - 1) };
        let c_up_in = if innermost { ch(i) } else { 2 * ch(i) };
        let c_up_out = if i == 0 { cfg.output_channels } else { ch(i - 1) };
        // The decoder's layer: pix2pix's transposed convolution, or ours after a resize.
        let (up, up_shape) = if cfg.upsample.is_transposed() { (format!("up.{i}"), [c_up_in, c_up_out, 4, 4]) } else { (format!("up_resize.{i}"), [c_up_out, c_up_in, 3, 3]) };
        if i == 0 {
            conv(&mut out, format!("{p}.model.0"), "down.0".into(), [ch(0), c_in, 4, 4], bias, ch(0));
            conv(&mut out, format!("{p}.model.3"), up, up_shape, true, c_up_out);
        } else if innermost {
            conv(&mut out, format!("{p}.model.1"), format!("down.{i}"), [ch(i), c_in, 4, 4], bias, ch(i));
            conv(&mut out, format!("{p}.model.3"), up, up_shape, bias, c_up_out);
            norm(&mut out, format!("{p}.model.4"), format!("up_norm.{i}"), c_up_out);
        } else {
            conv(&mut out, format!("{p}.model.1"), format!("down.{i}"), [ch(i), c_in, 4, 4], bias, ch(i));
            norm(&mut out, format!("{p}.model.2"), format!("down_norm.{i}"), ch(i));
            conv(&mut out, format!("{p}.model.5"), up, up_shape, bias, c_up_out);
            norm(&mut out, format!("{p}.model.6"), format!("up_norm.{i}"), c_up_out);
        }
    }
    if cfg.linear {
        // Ours only: pix2pix has no such layer (`pix2pix_mismatch` refuses its keys).
        conv(&mut out, "linear".into(), "linear".into(), [cfg.output_channels, cfg.input_channels, 1, 1], true, cfg.output_channels);
    }
    if !cfg.uncertainty.is_none() {
        // Ours only, as the linear map: the log-scale head beside the last layer.
        conv(&mut out, "scale_head".into(), "scale_head".into(), [2 * ch(0), cfg.output_channels, 4, 4], true, cfg.output_channels);
    }
    out
}

/// How a weights file names the generator's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyStyle {
    /// pix2pix's state-dict keys (`model.model.1.model.1.weight`): PyTorch's `UnetGenerator`
    /// loads them.
    #[default]
    Pix2pix,
    /// Our generator's own parameter paths (`down.1.weight`), for any configuration: only s2cr
    /// reads them back (with the sidecar, which holds the configuration).
    S2cr,
}

impl KeyStyle {
    /// The style of a file's keys: ours when it has our first convolution's.
    pub fn of(w: &WeightsFile) -> KeyStyle {
        if w.tensors.contains_key("down.0.weight") { KeyStyle::S2cr } else { KeyStyle::Pix2pix }
    }
}

/// Why a generator of `cfg` ending in `activation` must not be written with pix2pix's keys:
/// PyTorch's `UnetGenerator` would load them into a different network (it ends in tanh, builds
/// at least 5 levels, and its instance norm has no parameters). None when it is pix2pix's.
pub fn pix2pix_mismatch(cfg: &ModelConfig, activation: Activation) -> Option<String> {
    let mut why = Vec::new();
    if cfg.output == super::config::GeneratorOutput::Residual {
        why.push("it predicts the change from the pre-fire image (output: residual), where pix2pix's predicts the image".to_string());
    }
    if cfg.linear {
        why.push("it has a linear map of the inputs beside the U-Net (linear: true), which pix2pix's has not".to_string());
    }
    if !cfg.upsample.is_transposed() {
        why.push("its decoder resizes and convolves 3x3 (upsample: resize-conv), where pix2pix's uses 4x4 transposed convolutions".to_string());
    }
    if !cfg.uncertainty.is_none() {
        why.push("it predicts its own uncertainty (uncertainty: aleatoric), a head pix2pix's has not".to_string());
    }
    if activation != Activation::Tanh {
        why.push(format!("its last activation is {activation:?}, where pix2pix's ends in tanh"));
    }
    if cfg.depth < 5 {
        why.push(format!("its depth is {}, where pix2pix's UnetGenerator builds at least 5 levels", cfg.depth));
    }
    if cfg.norm == NormKind::Instance {
        why.push("its instance norm has scale and shift parameters, where pix2pix's has none".to_string());
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The generator configuration of a file with our keys ([`KeyStyle::S2cr`]): channels, ngf,
/// depth and norm from its keys and shapes; the rest (activation, dropout) is the sidecar's.
pub fn read_config_s2cr(w: &WeightsFile, dropout: f64) -> Result<ModelConfig> {
    let bad = |message: String| Error::Project { path: w.path.clone(), message };
    let first = w.shape("down.0.weight").ok_or_else(|| bad("has no key down.0.weight".into()))?;
    // The last layer: a transposed convolution [c_in, c_out, 4, 4], or resize-conv's [c_out, c_in, 3, 3].
    let (last, outputs_at, upsample) = match (w.shape("up.0.weight"), w.shape("up_resize.0.weight")) {
        (Some(s), _) => (s, 1, super::config::Upsample::Transposed),
        (None, Some(s)) => (s, 0, super::config::Upsample::ResizeConv),
        _ => return Err(bad("has no key up.0.weight or up_resize.0.weight (the last layer)".into())),
    };
    if first.len() != 4 || last.len() != 4 {
        return Err(bad(format!("down.0.weight is {first:?} and the last layer's weight {last:?}: 4-d convolution weights expected")));
    }
    let depth = (0..=12).take_while(|i| w.tensors.contains_key(&format!("down.{i}.weight"))).count();
    if !(2..=12).contains(&depth) {
        return Err(bad(format!("has {depth} levels (down.N.weight): not an s2cr generator")));
    }
    let norm = if w.tensors.keys().any(|k| k.contains(".batch.")) {
        NormKind::Batch
    } else if w.tensors.keys().any(|k| k.contains(".instance.")) {
        NormKind::Instance
    } else {
        NormKind::InstanceNoAffine
    };
    let uncertainty = if w.tensors.contains_key("scale_head.weight") { super::config::UncertaintyHead::Aleatoric } else { super::config::UncertaintyHead::None };
    Ok(ModelConfig { input_channels: first[1], output_channels: last[outputs_at], ngf: first[0], depth, norm, dropout, linear: w.tensors.contains_key("linear.weight"), uncertainty, upsample, ..ModelConfig::default() })
}

/// The tensors of a weights file: name -> (shape, float values or None for other types).
pub struct WeightsFile {
    pub tensors: BTreeMap<String, burn::store::burn_pack::Tensor>,
    pub path: std::path::PathBuf,
}

/// Reads a `.pth` (PyTorch's zip or legacy pickle) or `.safetensors` file; a `module.` prefix
/// (a model saved from `DataParallel`) is dropped.
pub fn read_weights(path: &Path) -> Result<WeightsFile> {
    let bad = |message: String| Error::Project { path: path.to_path_buf(), message };
    if !path.is_file() {
        return Err(bad("no such file".into()));
    }
    let is_safetensors = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let tensors = if is_safetensors {
        // pix2pix's indices have gaps (a ReLU holds no tensor): keep them as they are.
        let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
        store.get_all_tensors().map_err(|e| bad(format!("not a readable safetensors file: {e}")))?.clone()
    } else {
        let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
        store.get_all_tensors().map_err(|e| bad(format!("not a readable PyTorch checkpoint (torch.save of a state dict): {e}")))?.clone()
    };
    if tensors.is_empty() {
        return Err(bad("holds no tensors: give the state dict that pix2pix's save_networks writes (latest_net_G.pth), not a whole pickled model".into()));
    }
    let all_prefixed = tensors.keys().all(|k| k.starts_with("module."));
    let tensors = if all_prefixed { tensors.into_iter().map(|(k, mut t)| (k["module.".len()..].to_string(), { t.name = t.name.trim_start_matches("module.").to_string(); t })).collect() } else { tensors };
    Ok(WeightsFile { tensors, path: path.to_path_buf() })
}

impl WeightsFile {
    fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.get(key).map(|t| t.shape.iter().copied().collect())
    }

    /// Some keys, for error messages.
    fn sample_keys(&self) -> String {
        let mut v: Vec<&str> = self.tensors.keys().take(6).map(String::as_str).collect();
        if self.tensors.len() > 6 {
            v.push("...");
        }
        v.join(", ")
    }
}

/// The generator configuration a pix2pix state dict was saved from: depth, ngf, channels and
/// norm from the keys and shapes. Dropout is not in a state dict: `dropout` is the caller's
/// (pix2pix trains with 0.5 unless `--no_dropout`).
pub fn read_config(w: &WeightsFile, dropout: f64) -> Result<ModelConfig> {
    let bad = |message: String| Error::Project { path: w.path.clone(), message };
    let Some(first) = w.shape("model.model.0.weight") else {
        let hint = if w.tensors.contains_key("model.0.weight") {
            " (its keys look like pix2pix's NLayerDiscriminator: give the generator, latest_net_G.pth)"
        } else {
            ""
        };
        return Err(bad(format!("is not a pix2pix UnetGenerator state dict: no key model.model.0.weight{hint}; its keys: {}", w.sample_keys())));
    };
    let last = w.shape("model.model.3.weight").ok_or_else(|| bad("has no key model.model.3.weight (the outermost transposed convolution)".into()))?;
    if first.len() != 4 || last.len() != 4 {
        return Err(bad(format!("model.model.0.weight is {first:?} and model.model.3.weight {last:?}: 4-d convolution weights expected")));
    }
    let (ngf, input_channels, output_channels) = (first[0], first[1], last[1]);
    // Levels: follow the blocks inward until one has no block inside (the innermost).
    let mut depth = 1;
    loop {
        let inner = &block_prefixes(depth + 1)[depth];
        if w.shape(&format!("{inner}.model.1.weight")).is_none() {
            break;
        }
        depth += 1;
        if depth > 12 {
            return Err(bad("has more than 12 nested blocks: not a pix2pix UnetGenerator".into()));
        }
    }
    if depth < 2 {
        return Err(bad("has no block inside the outermost: not a pix2pix UnetGenerator".into()));
    }
    let level1 = &block_prefixes(2)[1];
    let norm = if depth == 2 {
        // The only inner block is the innermost: its norm is the up norm at index 4.
        norm_of(w, &format!("{level1}.model.4"))
    } else {
        norm_of(w, &format!("{level1}.model.2"))
    };
    Ok(ModelConfig {
        input_channels,
        output_channels,
        ngf,
        depth,
        norm,
        dropout,
        dropout_blocks: DropoutBlocks::Pix2pix,
        // pix2pix's generator ends in tanh whatever the data.
        output_activation: OutputActivation::Tanh,
        ..ModelConfig::default()
    })
}

fn norm_of(w: &WeightsFile, at: &str) -> NormKind {
    if w.tensors.contains_key(&format!("{at}.running_mean")) {
        NormKind::Batch
    } else if w.tensors.contains_key(&format!("{at}.weight")) {
        NormKind::Instance
    } else {
        NormKind::InstanceNoAffine
    }
}

/// Parameters (and running statistics) beyond which a file is refused before anything is
/// allocated for it: twenty times pix2pix's unet_256.
const MAX_VALUES: usize = 1_100_000_000;

/// A generator of `cfg` with the file's weights: every key of [`keys`] must be there with its
/// shape, and no other key may be (each error names the key). Everything is checked against
/// the file's header before any tensor is read or the network is built, so a file that claims
/// absurd shapes costs nothing.
pub fn build(cfg: &ModelConfig, activation: Activation, w: &WeightsFile, dev: &Device) -> Result<Generator> {
    build_as(cfg, activation, w, KeyStyle::Pix2pix, dev)
}

/// [`build`] from a file with keys of `style` (ours carry no `num_batches_tracked`).
pub fn build_as(cfg: &ModelConfig, activation: Activation, w: &WeightsFile, style: KeyStyle, dev: &Device) -> Result<Generator> {
    let bad = |message: String| Error::Project { path: w.path.clone(), message };
    let expected: Vec<Key> = match style {
        KeyStyle::Pix2pix => keys(cfg),
        KeyStyle::S2cr => keys(cfg).into_iter().filter(|k| k.role == Role::Float).map(|k| Key { pix2pix: k.ours.clone(), ..k }).collect(),
    };
    let values: usize = expected.iter().map(|k| k.shape.iter().product::<usize>()).sum();
    if values > MAX_VALUES {
        return Err(bad(format!("describes a generator of {values} values (ngf {}, depth {}): more than s2cr loads ({MAX_VALUES})", cfg.ngf, cfg.depth)));
    }
    let missing: Vec<&str> = expected.iter().filter(|k| !w.tensors.contains_key(&k.pix2pix)).map(|k| k.pix2pix.as_str()).collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "lacks {} key(s) a {} generator (depth {}, ngf {}) has: {}",
            missing.len(),
            norm_name(cfg.norm),
            cfg.depth,
            cfg.ngf,
            missing.iter().take(5).copied().collect::<Vec<_>>().join(", ")
        )));
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|k| k.pix2pix.as_str()).collect();
    let extra: Vec<&String> = w.tensors.keys().filter(|k| !known.contains(k.as_str())).collect();
    if !extra.is_empty() {
        return Err(bad(format!(
            "has {} key(s) that a {} generator of depth {} does not: {} (a different architecture, or another network's file?)",
            extra.len(),
            norm_name(cfg.norm),
            cfg.depth,
            extra.iter().take(5).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    for k in &expected {
        let shape: Vec<usize> = w.tensors.get(&k.pix2pix).map(|t| t.shape.iter().copied().collect()).unwrap_or_default();
        if shape != k.shape && !(k.role == Role::BatchCount && shape.iter().product::<usize>() == 1) {
            return Err(bad(format!("{} has shape {shape:?}, but a generator of {} input and {} output channels, ngf {}, depth {} needs {:?}", k.pix2pix, cfg.input_channels, cfg.output_channels, cfg.ngf, cfg.depth, k.shape)));
        }
    }
    let mut tensors = Vec::new();
    for k in expected.iter().filter(|k| k.role == Role::Float) {
        let Some(t) = w.tensors.get(&k.pix2pix) else { continue };
        let data = burn::store::bridge::to_data(t).map_err(|e| bad(format!("reading {}: {e}", k.pix2pix)))?;
        let values: Vec<f32> = data.convert::<f32>().try_to_vec::<f32>().map_err(|e| bad(format!("reading {} as f32: {e:?}", k.pix2pix)))?;
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(bad(format!("{} holds {v}: not a usable weight", k.pix2pix)));
        }
        tensors.push(burn::store::bridge::from_data(TensorData::new(values, k.shape.clone()), k.ours.clone(), None));
    }
    let mut g = Generator::new(cfg, activation, dev);
    let result = g.apply(tensors, None, None, false);
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(bad(format!(
            "could not be applied to the generator: {} error(s) {:?}, {} missing {:?}, {} unused {:?}",
            result.errors.len(),
            result.errors.iter().take(3).map(|e| e.to_string()).collect::<Vec<_>>(),
            result.missing.len(),
            result.missing.iter().take(3).map(|m| m.0.clone()).collect::<Vec<_>>(),
            result.unused.len(),
            result.unused.iter().take(3).collect::<Vec<_>>()
        )));
    }
    Ok(g)
}

fn norm_name(n: NormKind) -> &'static str {
    match n {
        NormKind::Batch => "batch-norm",
        NormKind::Instance => "affine instance-norm",
        NormKind::InstanceNoAffine => "instance-norm",
    }
}

/// A generator built from a pix2pix file alone (configuration from its keys, tanh output).
pub fn import_generator(path: &Path, dropout: f64, dev: &Device) -> Result<(Generator, ModelConfig)> {
    let w = read_weights(path)?;
    let cfg = read_config(&w, dropout)?;
    Ok((build(&cfg, Activation::Tanh, &w, dev)?, cfg))
}

/// The generator's tensors under pix2pix's keys, as safetensors bytes (f32, and int64 zeros
/// for `num_batches_tracked`), loadable into pix2pix's `UnetGenerator` with
/// `load_state_dict(strict=True)`. `metadata` goes into the file's header.
pub fn to_safetensors(g: &Generator, cfg: &ModelConfig, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    to_safetensors_as(g, cfg, metadata, KeyStyle::Pix2pix)
}

/// [`to_safetensors`] with keys of `style`: ours are the generator's parameter paths (no
/// `num_batches_tracked`).
pub fn to_safetensors_as(g: &Generator, cfg: &ModelConfig, metadata: &BTreeMap<String, String>, style: KeyStyle) -> Result<Vec<u8>> {
    let ours: BTreeMap<String, burn::store::burn_pack::Tensor> = g.collect(None, None, false).into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut buffers: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for mut k in keys(cfg) {
        if style == KeyStyle::S2cr {
            if k.role == Role::BatchCount {
                continue;
            }
            k.pix2pix = k.ours.clone();
        }
        if k.role == Role::BatchCount {
            buffers.push((k.pix2pix, safetensors::Dtype::I64, vec![], 0i64.to_le_bytes().to_vec()));
            continue;
        }
        let t = ours.get(&k.ours).ok_or_else(|| Error::invalid("generator", format!("has no parameter {} for {}: its configuration does not match", k.ours, k.pix2pix)))?;
        let data = burn::store::bridge::to_data(t).map_err(|e| Error::invalid("generator", format!("reading {}: {e}", k.ours)))?;
        let values: Vec<f32> = data.convert::<f32>().try_to_vec::<f32>().map_err(|e| Error::invalid("generator", format!("reading {}: {e:?}", k.ours)))?;
        if values.len() != k.shape.iter().product::<usize>() {
            return Err(Error::invalid("generator", format!("{} holds {} values where {:?} needs {}", k.ours, values.len(), k.shape, k.shape.iter().product::<usize>())));
        }
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((k.pix2pix, safetensors::Dtype::F32, k.shape, bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::invalid("safetensors", e.to_string()))?;
    let metadata: std::collections::HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::invalid("safetensors", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(depth: usize, ngf: usize, norm: NormKind) -> ModelConfig {
        ModelConfig { input_channels: 3, output_channels: 2, ngf, depth, norm, ..ModelConfig::default() }
    }

    #[test]
    fn pix2pix_keys_are_refused_for_each_network_pix2pix_does_not_build() {
        assert_eq!(pix2pix_mismatch(&cfg(8, 64, NormKind::Batch), Activation::Tanh), None, "unet_256");
        assert_eq!(pix2pix_mismatch(&cfg(5, 4, NormKind::InstanceNoAffine), Activation::Tanh), None, "instance norm without parameters, as pix2pix's --norm instance");
        let why = |c: ModelConfig, a: Activation| pix2pix_mismatch(&c, a).unwrap_or_default();
        assert!(why(cfg(5, 4, NormKind::Instance), Activation::Tanh).contains("instance norm has scale and shift parameters"));
        assert!(why(cfg(4, 4, NormKind::Batch), Activation::Tanh).contains("depth is 4"));
        assert!(why(cfg(8, 4, NormKind::Batch), Activation::Sigmoid).contains("last activation is Sigmoid"));
        assert!(why(ModelConfig { uncertainty: super::super::config::UncertaintyHead::Aleatoric, ..cfg(8, 64, NormKind::Batch) }, Activation::Tanh).contains("uncertainty: aleatoric"));
        assert!(why(ModelConfig { upsample: super::super::config::Upsample::ResizeConv, ..cfg(8, 64, NormKind::Batch) }, Activation::Tanh).contains("upsample: resize-conv"));
        let all = why(ModelConfig { output: super::super::config::GeneratorOutput::Residual, linear: true, uncertainty: super::super::config::UncertaintyHead::Aleatoric, upsample: super::super::config::Upsample::ResizeConv, ..cfg(3, 4, NormKind::Instance) }, Activation::Sigmoid);
        assert_eq!(all.matches("; ").count(), 6, "every reason, one after another: {all}");
    }

    #[test]
    fn the_keys_follow_pix2pix_nesting_and_name_every_parameter_of_ours() {
        let dev = Device::flex();
        for (depth, norm) in [(8, NormKind::Batch), (7, NormKind::InstanceNoAffine), (6, NormKind::Instance), (2, NormKind::Batch)] {
            let c = cfg(depth, 4, norm);
            let g = Generator::new(&c, Activation::Tanh, &dev);
            let ours: std::collections::BTreeMap<String, Vec<usize>> = g.collect(None, None, false).into_iter().map(|t| (t.name.clone(), t.shape.iter().copied().collect())).collect();
            let mapped: std::collections::BTreeMap<String, Vec<usize>> = keys(&c).into_iter().filter(|k| k.role == Role::Float).map(|k| (k.ours, k.shape)).collect();
            assert_eq!(mapped, ours, "depth {depth} {norm:?}: the key table covers our parameters with their shapes");
        }
        // Our own layers (the linear map, the uncertainty head) too.
        let c = ModelConfig { linear: true, uncertainty: super::super::config::UncertaintyHead::Aleatoric, upsample: super::super::config::Upsample::ResizeConv, ..cfg(5, 4, NormKind::Batch) };
        let g = Generator::new(&c, Activation::Tanh, &dev);
        let ours: std::collections::BTreeMap<String, Vec<usize>> = g.collect(None, None, false).into_iter().map(|t| (t.name.clone(), t.shape.iter().copied().collect())).collect();
        let mapped: std::collections::BTreeMap<String, Vec<usize>> = keys(&c).into_iter().filter(|k| k.role == Role::Float).map(|k| (k.ours, k.shape)).collect();
        assert_eq!(mapped, ours, "linear map and uncertainty head");
        assert!(ours.contains_key("scale_head.weight") && ours.contains_key("up_resize.0.weight") && !ours.contains_key("up.0.weight"), "{:?}", ours.keys());
        // unet_256 as pix2pix names it.
        let k = keys(&cfg(8, 64, NormKind::Batch));
        let names: Vec<&str> = k.iter().map(|k| k.pix2pix.as_str()).collect();
        assert_eq!(names[0], "model.model.0.weight");
        assert!(names.contains(&"model.model.1.model.3.model.1.weight"), "level 2 encoder conv");
        assert!(names.contains(&"model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.3.weight"), "the innermost transposed conv");
        assert!(names.contains(&"model.model.1.model.2.num_batches_tracked"));
        assert!(names.contains(&"model.model.3.bias") && !names.contains(&"model.model.0.bias"), "only the last conv has a bias with batch norm");
        // pix2pix's unet_256 has 54,413,955 trainable parameters for 3 -> 3 channels ("54.414 M").
        let p: usize = keys(&ModelConfig { input_channels: 3, output_channels: 3, ..cfg(8, 64, NormKind::Batch) })
            .iter()
            .filter(|k| k.role == Role::Float && !k.pix2pix.contains("running_"))
            .map(|k| k.shape.iter().product::<usize>())
            .sum();
        assert_eq!(p, 54_413_955);
    }

    #[test]
    fn dropout_sits_where_pix2pix_puts_it_and_old_models_keep_theirs() {
        let count = |depth: usize, blocks: DropoutBlocks| {
            let c = ModelConfig { dropout_blocks: blocks, ..cfg(depth, 4, NormKind::Batch) };
            Generator::new(&c, Activation::Tanh, &Device::flex()).dropout_levels().len()
        };
        assert_eq!((count(8, DropoutBlocks::Pix2pix), count(7, DropoutBlocks::Pix2pix), count(6, DropoutBlocks::Pix2pix)), (3, 2, 1));
        assert_eq!((count(8, DropoutBlocks::Three), count(7, DropoutBlocks::Three), count(6, DropoutBlocks::Three)), (3, 3, 3));
        let old = ModelConfig::parse("ngf: 16\ndepth: 6\n", Path::new("model.yaml")).unwrap();
        assert_eq!(old.dropout_blocks, DropoutBlocks::Three, "a model.yaml without the key is an older model's");
        assert_eq!(ModelConfig::default().dropout_blocks, DropoutBlocks::Pix2pix);
    }
}
