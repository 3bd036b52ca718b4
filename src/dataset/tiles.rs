//! Patches of the grid and their spatially disjoint train / validation / test split.
//!
//! The grid is cut into square blocks (`split_block_patches` patches on a side); blocks, not
//! patches, are shuffled (seeded) into the splits, so neighbouring patches, which look alike,
//! do not end up on both sides. A patch is kept in a split only when every block within
//! `gap_px` of it belongs to that split: with overlapping patches (stride < size) or a gap, no
//! pixel of one split is ever seen by another.

use serde::{Deserialize, Serialize};

use super::normalize::TileRange;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// How patches are cut and split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TileConfig {
    /// Patch side, pixels.
    pub size: usize,
    /// Distance between patch origins, pixels.
    pub stride: usize,
    /// Smallest share of valid pixels (no cloud, shadow or no data in inputs and label).
    pub min_valid: f64,
    pub val_fraction: f64,
    pub test_fraction: f64,
    /// Side of a split block, in patches.
    pub split_block_patches: usize,
    /// Pixels between patches of different splits.
    pub gap_px: usize,
    pub seed: u64,
}

impl Default for TileConfig {
    fn default() -> Self {
        TileConfig { size: 256, stride: 256, min_valid: 0.9, val_fraction: 0.15, test_fraction: 0.15, split_block_patches: 4, gap_px: 0, seed: 42 }
    }
}

/// One patch of the grid, kept or not, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    pub id: usize,
    /// Top-left pixel on the grid.
    pub x: usize,
    pub y: usize,
    pub split: Split,
    pub kept: bool,
    /// Empty for kept patches.
    pub reason: String,
    /// Share of pixels valid in every channel.
    pub valid_fraction: f64,
    /// Shares masked by the S2 t0 and t1 masks (cloud, shadow, cirrus, buffer, no data).
    pub masked_t0: f64,
    pub masked_t1: f64,
    /// Share of pixels without data in some channel.
    pub no_data: f64,
    /// Min and max of each input channel over the patch's valid pixels.
    pub input_ranges: Vec<TileRange>,
    /// Min and max of each output channel over the patch's valid pixels.
    pub output_ranges: Vec<TileRange>,
}

/// SplitMix64: a tiny, well-mixed generator for seeded shuffles.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// The split of every block of a `width` x `height` grid: `[by][bx]`.
pub fn block_splits(width: usize, height: usize, cfg: &TileConfig) -> (usize, Vec<Vec<Split>>) {
    let block = cfg.split_block_patches.max(1).saturating_mul(cfg.size).max(1);
    let (nx, ny) = (width.div_ceil(block).max(1), height.div_ceil(block).max(1));
    let n = nx * ny;
    let count = |f: f64| -> usize {
        let c = (f * n as f64).round() as usize;
        // Every split asked for gets a block when there are enough to go round.
        if f > 0.0 && c == 0 && n >= 3 { 1 } else { c }
    };
    let (mut n_val, mut n_test) = if n < 3 { (0, 0) } else { (count(cfg.val_fraction), count(cfg.test_fraction)) };
    // Training keeps at least one block.
    while n_val + n_test >= n && n_val + n_test > 0 {
        if n_test >= n_val { n_test -= 1 } else { n_val -= 1 }
    }
    let mut order: Vec<usize> = (0..n).collect();
    SplitMix(cfg.seed).shuffle(&mut order);
    let mut splits = vec![vec![Split::Train; nx]; ny];
    for (rank, b) in order.iter().enumerate() {
        splits[b / nx][b % nx] = if rank < n_val {
            Split::Val
        } else if rank < n_val + n_test {
            Split::Test
        } else {
            Split::Train
        };
    }
    (block, splits)
}

/// Every patch position of the grid with its split; patches that would share pixels (or come
/// within the gap) with another split are marked dropped.
pub fn plan(width: usize, height: usize, cfg: &TileConfig) -> Vec<Patch> {
    let (block, splits) = block_splits(width, height, cfg);
    let size = cfg.size;
    if width < size || height < size || size == 0 {
        return Vec::new();
    }
    let stride = cfg.stride.max(1);
    let mut patches = Vec::new();
    for y in (0..=height - size).step_by(stride) {
        for x in (0..=width - size).step_by(stride) {
            let g = cfg.gap_px;
            let (x0, y0) = (x.saturating_sub(g), y.saturating_sub(g));
            let (x1, y1) = ((x + size + g).min(width) - 1, (y + size + g).min(height) - 1);
            let own = splits[y / block][x / block];
            let mut crossing = false;
            for by in y0 / block..=y1 / block {
                for bx in x0 / block..=x1 / block {
                    crossing |= splits[by][bx] != own;
                }
            }
            patches.push(Patch {
                id: patches.len(),
                x,
                y,
                split: own,
                kept: !crossing,
                reason: if crossing { format!("within {g} px of another split") } else { String::new() },
                valid_fraction: 0.0,
                masked_t0: 0.0,
                masked_t1: 0.0,
                no_data: 0.0,
                input_ranges: Vec::new(),
                output_ranges: Vec::new(),
            });
        }
    }
    patches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels(p: &Patch, size: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (p.y..p.y + size).flat_map(move |y| (p.x..p.x + size).map(move |x| (x, y)))
    }

    #[test]
    fn splits_share_no_pixel_even_with_overlapping_patches() {
        let cfg = TileConfig { size: 32, stride: 16, split_block_patches: 2, val_fraction: 0.2, test_fraction: 0.2, gap_px: 8, ..Default::default() };
        let patches = plan(320, 256, &cfg);
        let mut owner = std::collections::HashMap::new();
        for p in patches.iter().filter(|p| p.kept) {
            for px in pixels(p, cfg.size) {
                let s = owner.entry(px).or_insert(p.split);
                assert_eq!(*s, p.split, "pixel {px:?} in two splits");
            }
        }
        // The gap: no kept pixel of one split within 8 px of another split's kept pixel.
        for p in patches.iter().filter(|p| p.kept) {
            for q in patches.iter().filter(|q| q.kept && q.split != p.split) {
                let dx = (p.x as i64 - q.x as i64).abs() - cfg.size as i64;
                let dy = (p.y as i64 - q.y as i64).abs() - cfg.size as i64;
                assert!(dx.max(dy) >= cfg.gap_px as i64, "{p:?} and {q:?} closer than the gap");
            }
        }
        for s in [Split::Train, Split::Val, Split::Test] {
            assert!(patches.iter().any(|p| p.kept && p.split == s), "{s:?} has patches");
        }
        assert!(patches.iter().any(|p| !p.kept), "patches across block borders are dropped");
    }

    #[test]
    fn the_split_is_seeded() {
        let cfg = TileConfig { size: 16, stride: 16, split_block_patches: 1, ..Default::default() };
        let a = block_splits(160, 160, &cfg).1;
        assert_eq!(a, block_splits(160, 160, &cfg).1);
        assert_ne!(a, block_splits(160, 160, &TileConfig { seed: 7, ..cfg.clone() }).1);
        let n = |s: Split| a.iter().flatten().filter(|x| **x == s).count();
        assert_eq!((n(Split::Val), n(Split::Test), n(Split::Train)), (15, 15, 70));
    }
}
