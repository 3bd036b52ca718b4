//! Feeding patches to Burn: a `Dataset` of patches read as windows of the dataset's VRTs (the
//! dataset never has to fit in memory) or, where it fits a memory budget, cut from the stacks
//! read whole once ([`ResidentStacks`]), with random flips and 90-degree rotations applied
//! identically to inputs, label and validity, and a `Batcher` that normalizes a batch
//! (`normalize`) and stacks it into `[batch, channels, height, width]` tensors.
//!
//! Augmentation is a function of (seed, epoch, patch index), not of the order in which worker
//! threads ask, so a seed gives the same batches every time.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;

use super::normalize::{Affine, Normalization, TileRange};
use super::tiles::{Patch, Split, SplitMix};
use super::{DatasetSummary, TileIndex};
use crate::fsutil::load_json;
use crate::error::{Error, Result};
use crate::project::Project;
use crate::raster::{self, PixelWindow};

/// One of the 8 symmetries of a square: `k` quarter turns, then a horizontal flip when `flip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dihedral {
    pub quarter_turns: u8,
    pub flip: bool,
}

impl Dihedral {
    pub const IDENTITY: Dihedral = Dihedral { quarter_turns: 0, flip: false };

    pub fn from_index(i: u64) -> Dihedral {
        Dihedral { quarter_turns: (i % 4) as u8, flip: (i / 4) % 2 == 1 }
    }

    /// Applies the symmetry to a square `n` x `n` plane (row-major).
    pub fn apply<T: Copy>(&self, plane: &[T], n: usize) -> Vec<T> {
        let mut out = plane.to_vec();
        for _ in 0..self.quarter_turns {
            // Rotate 90 degrees clockwise: out[y][x] = in[n-1-x][y].
            let src = out.clone();
            for y in 0..n {
                for x in 0..n {
                    out[y * n + x] = src[(n - 1 - x) * n + y];
                }
            }
        }
        if self.flip {
            for row in out.chunks_mut(n) {
                row.reverse();
            }
        }
        out
    }
}

/// One patch, as read from disk (not normalized).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchItem {
    pub patch_id: usize,
    pub size: usize,
    /// `[channels, size, size]`, NaN where there is no data.
    pub input: Vec<f32>,
    /// `[outputs, size, size]`.
    pub label: Vec<f32>,
    /// `[size, size]`: the pixel counts in the loss (no cloud, no data in any channel).
    pub valid: Vec<bool>,
    /// The patch's input ranges, for tile and batch normalization.
    pub input_ranges: Vec<TileRange>,
    pub transform: Dihedral,
}

/// The patches of one split, read from the dataset's VRTs. Clones share the epoch.
#[derive(Clone)]
pub struct PatchDataset {
    inputs_vrt: String,
    label_vrt: String,
    masks_vrt: String,
    patches: Vec<Patch>,
    size: usize,
    inputs: usize,
    outputs: usize,
    /// S2 t0 masks count as invalid (an S2 t0 band is an input).
    t0_mask_matters: bool,
    /// Random flips and rotations (training).
    augment: Option<u64>,
    epoch: Arc<AtomicU64>,
    /// Visiting order: a seeded permutation per epoch (training), else the index order.
    order: Option<(u64, Arc<std::sync::RwLock<(u64, Vec<usize>)>>)>,
    /// The stacks in memory, when they were loaded (see [`PatchDataset::holding`]).
    resident: Option<Arc<ResidentStacks>>,
}

/// The dataset's three stacks (inputs, label, masks) read whole into memory. A patch is then a
/// copy of rows, where a window read goes through three levels of VRT to GeoTIFF blocks that
/// hold every band of a pixel: GDAL's block cache, capped while training, holds the decoded
/// blocks of only part of the bands, and decodes whole blocks again for nearly every patch (on
/// the demo's grid 70 % of the training time went to that).
pub struct ResidentStacks {
    inputs: raster::BandStack,
    label: raster::BandStack,
    masks: raster::BandStack,
}

impl ResidentStacks {
    /// Bytes the stacks of `data`'s dataset take in memory (values and validity).
    pub fn bytes_needed(data: &PatchDataset) -> Result<u64> {
        let mut bytes = 0u64;
        for vrt in [&data.inputs_vrt, &data.label_vrt, &data.masks_vrt] {
            let info = raster::info(vrt)?;
            let pixels = (info.width * info.height) as u64;
            bytes += pixels * (4 * info.bands.len() as u64 + 1);
        }
        Ok(bytes)
    }

    /// Reads the stacks of `data`'s dataset whole.
    pub fn load(data: &PatchDataset) -> Result<Arc<ResidentStacks>> {
        Ok(Arc::new(ResidentStacks {
            inputs: raster::read_window(&data.inputs_vrt, &[], None)?,
            label: raster::read_window(&data.label_vrt, &[], None)?,
            masks: raster::read_window(&data.masks_vrt, &[], None)?,
        }))
    }

    /// Loads the stacks when they take at most `max_bytes` (None when they are larger).
    pub fn load_within(data: &PatchDataset, max_bytes: u64) -> Result<Option<Arc<ResidentStacks>>> {
        if Self::bytes_needed(data)? > max_bytes {
            return Ok(None);
        }
        Self::load(data).map(Some)
    }

    pub fn bytes(&self) -> usize {
        self.inputs.bytes() + self.label.bytes() + self.masks.bytes()
    }
}

impl PatchDataset {
    /// The kept patches of `split` of the project's dataset; `augment` = Some(seed) for
    /// training.
    pub fn open(project: &Project, split: Split, augment: Option<u64>) -> Result<PatchDataset> {
        let summary: DatasetSummary = load_json(&project.dataset_json(), "run `s2cr dataset` first")?;
        let index = TileIndex::load(project)?;
        let root = project.root();
        let loc = |p: &Path| root.join(p).display().to_string();
        Ok(PatchDataset {
            inputs_vrt: loc(&summary.files.inputs_vrt),
            label_vrt: loc(&summary.files.label_vrt),
            masks_vrt: loc(&summary.files.masks_vrt),
            patches: index.patches.into_iter().filter(|p| p.kept && p.split == split).collect(),
            size: index.size,
            inputs: summary.inputs.len(),
            outputs: summary.outputs.len(),
            t0_mask_matters: summary.inputs.iter().any(|c| c.source == super::Source::S2T0 && c.kind == super::normalize::ChannelKind::S2),
            augment,
            epoch: Arc::new(AtomicU64::new(0)),
            order: None,
            resident: None,
        })
    }

    /// Cuts patches from `stacks` (loaded from this dataset's files) instead of reading them
    /// from disk; the patches are the same.
    pub fn holding(mut self, stacks: Arc<ResidentStacks>) -> PatchDataset {
        self.resident = Some(stacks);
        self
    }

    /// True when patches come from stacks held in memory.
    pub fn is_resident(&self) -> bool {
        self.resident.is_some()
    }

    /// Visits the patches in a seeded order that changes with the epoch (a function of seed and
    /// epoch only, so a resumed run sees the same batches).
    pub fn shuffled(mut self, seed: u64) -> PatchDataset {
        let perm = Self::permutation(seed, 0, self.patches.len());
        self.order = Some((seed, Arc::new(std::sync::RwLock::new((0, perm)))));
        self
    }

    fn permutation(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        SplitMix(seed ^ epoch.wrapping_mul(0xD6E8_FEB8_6659_FD93)).shuffle(&mut v);
        v
    }

    /// Sets the epoch, which changes the augmentation and order of the patches.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
        if let Some((seed, order)) = &self.order
            && let Ok(mut o) = order.write()
        {
            *o = (epoch, Self::permutation(*seed, epoch, self.patches.len()));
        }
    }

    /// The patch visited at position `index` in the current epoch.
    fn position(&self, index: usize) -> usize {
        match &self.order {
            Some((_, order)) => order.read().ok().and_then(|o| o.1.get(index).copied()).unwrap_or(index),
            None => index,
        }
    }

    /// A handle to the epoch counter (the dataset itself moves into the data loader).
    pub fn epoch_handle(&self) -> Arc<AtomicU64> {
        self.epoch.clone()
    }

    pub fn patches(&self) -> &[Patch] {
        &self.patches
    }

    pub fn channels(&self) -> (usize, usize) {
        (self.inputs, self.outputs)
    }

    fn transform(&self, index: usize) -> Dihedral {
        match self.augment {
            None => Dihedral::IDENTITY,
            Some(seed) => {
                let mut rng = SplitMix(seed ^ self.epoch.load(Ordering::SeqCst).wrapping_mul(0x9E37_79B9) ^ (index as u64).wrapping_mul(0x85EB_CA6B));
                Dihedral::from_index(rng.next_u64() % 8)
            }
        }
    }

    /// Reads the patch at position `index` (of this split, in the current order) from disk.
    pub fn read(&self, index: usize) -> Result<PatchItem> {
        let index = self.position(index);
        let p = self.patches.get(index).ok_or_else(|| Error::invalid("patch", format!("index {index} of {}", self.patches.len())))?;
        let n = self.size;
        let window = Some(PixelWindow { x_off: p.x, y_off: p.y, width: n, height: n });
        let (inputs, label, masks) = match &self.resident {
            Some(r) => {
                let cut = |stack: &raster::BandStack, vrt: &str| {
                    window.and_then(|w| stack.crop(w)).ok_or_else(|| Error::Raster {
                        location: vrt.into(),
                        message: format!("patch {} at ({}, {}) is outside the {} x {} pixels in memory: run `s2cr dataset` again", p.id, p.x, p.y, stack.width, stack.height),
                    })
                };
                (cut(&r.inputs, &self.inputs_vrt)?, cut(&r.label, &self.label_vrt)?, cut(&r.masks, &self.masks_vrt)?)
            }
            None => (
                raster::read_window_reusing(&self.inputs_vrt, &[], window)?,
                raster::read_window_reusing(&self.label_vrt, &[], window)?,
                raster::read_window_reusing(&self.masks_vrt, &[], window)?,
            ),
        };
        let t = self.transform(index);
        let mut valid = vec![true; n * n];
        for (i, v) in valid.iter_mut().enumerate() {
            *v = inputs.valid[i] && label.valid[i] && masks.valid[i] && masks.bands[1][i] == 0.0 && !(self.t0_mask_matters && masks.bands[0][i] != 0.0);
        }
        let planes = |stack: &raster::BandStack| -> Vec<f32> { stack.bands.iter().flat_map(|b| t.apply(b, n)).collect() };
        Ok(PatchItem {
            patch_id: p.id,
            size: n,
            input: planes(&inputs),
            label: planes(&label),
            valid: t.apply(&valid, n),
            input_ranges: p.input_ranges.clone(),
            transform: t,
        })
    }
}

impl Dataset<PatchItem> for PatchDataset {
    fn get(&self, index: usize) -> std::result::Result<PatchItem, DatasetError> {
        self.read(index).map_err(DatasetError::new)
    }

    fn len(&self) -> usize {
        self.patches.len()
    }
}

/// A normalized batch.
#[derive(Debug, Clone)]
pub struct PatchBatch {
    /// `[batch, inputs, size, size]`, invalid pixels 0.
    pub input: Tensor<4>,
    /// `[batch, outputs, size, size]`, invalid pixels 0.
    pub label: Tensor<4>,
    /// `[batch, 1, size, size]`: 1 where the pixel counts.
    pub valid: Tensor<4>,
    /// Per patch and output channel, the map to undo (de-normalization of predictions).
    pub output_maps: Vec<Vec<Affine>>,
    pub patch_ids: Vec<usize>,
}

/// Normalizes and stacks patches.
#[derive(Debug, Clone)]
pub struct PatchBatcher {
    pub normalization: Normalization,
}

impl PatchBatcher {
    /// The normalized flat arrays of a batch: (input, label, valid, output maps).
    pub fn normalize(&self, items: &[PatchItem]) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<Vec<Affine>>) {
        let ranges: Vec<Vec<TileRange>> = items.iter().map(|i| i.input_ranges.clone()).collect();
        let (in_maps, out_maps) = self.normalization.maps(&ranges);
        let mut input = Vec::new();
        let mut label = Vec::new();
        let mut valid = Vec::new();
        for (k, item) in items.iter().enumerate() {
            let plane = item.size * item.size;
            for (c, chunk) in item.input.chunks(plane).enumerate() {
                let mut v = chunk.to_vec();
                in_maps[k][c].normalize(&mut v);
                input.extend(v.into_iter().zip(&item.valid).map(|(x, ok)| if *ok && x.is_finite() { x } else { 0.0 }));
            }
            for (c, chunk) in item.label.chunks(plane).enumerate() {
                let mut v = chunk.to_vec();
                out_maps[k][c].normalize(&mut v);
                label.extend(v.into_iter().zip(&item.valid).map(|(x, ok)| if *ok && x.is_finite() { x } else { 0.0 }));
            }
            valid.extend(item.valid.iter().map(|v| if *v { 1.0 } else { 0.0 }));
        }
        (input, label, valid, out_maps)
    }
}

impl Batcher<PatchItem, PatchBatch> for PatchBatcher {
    fn batch(&self, items: Vec<PatchItem>, device: &Device) -> PatchBatch {
        let b = items.len();
        let n = items.first().map(|i| i.size).unwrap_or(0);
        let c_in = items.first().map(|i| i.input.len() / (n * n).max(1)).unwrap_or(0);
        let c_out = items.first().map(|i| i.label.len() / (n * n).max(1)).unwrap_or(0);
        let (input, label, valid, output_maps) = self.normalize(&items);
        PatchBatch {
            input: Tensor::from_data(TensorData::new(input, [b, c_in, n, n]), device),
            label: Tensor::from_data(TensorData::new(label, [b, c_out, n, n]), device),
            valid: Tensor::from_data(TensorData::new(valid, [b, 1, n, n]), device),
            output_maps,
            patch_ids: items.iter().map(|i| i.patch_id).collect(),
        }
    }
}

/// The dataset's normalization (dataset/normalization.json).
pub fn load_normalization(project: &Project) -> Result<Normalization> {
    load_json(&project.normalization_json(), "run `s2cr dataset` first")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eight_symmetries_are_distinct_and_invertible() {
        let n = 3;
        let plane: Vec<u8> = (0..9).collect();
        let images: Vec<Vec<u8>> = (0..8).map(|i| Dihedral::from_index(i).apply(&plane, n)).collect();
        for i in 0..8 {
            for j in i + 1..8 {
                assert_ne!(images[i], images[j], "{i} and {j}");
            }
        }
        // One quarter turn clockwise: the first row becomes the last column.
        assert_eq!(Dihedral { quarter_turns: 1, flip: false }.apply(&plane, n), vec![6, 3, 0, 7, 4, 1, 8, 5, 2]);
        // Four quarter turns and two flips are the identity.
        let t = Dihedral { quarter_turns: 2, flip: true };
        assert_eq!(t.apply(&t.apply(&plane, n), n), plane);
    }
}
