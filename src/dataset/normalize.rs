//! Normalization of the training data: the research code's methods (Sentinel-2 batch min/max:
//! per band, the mean over the batch's tiles of each tile's min and max; Sentinel-1
//! standardization) and robust ones (2-98 % percentiles of the training split; a "yearly" S2
//! min/max per band over the AOI). Every method maps a channel affinely, `(v - offset) / scale`,
//! so de-normalization is exact: `v = n * scale + offset`.
//!
//! Statistics are computed once by the dataset builder and persisted (normalization.json/.csv);
//! training runs copy them so inference de-normalizes with the same numbers.

use serde::{Deserialize, Serialize};

/// What a channel holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Sentinel-1 backscatter, dB.
    S1,
    /// Sentinel-2 reflectance.
    S2,
    /// A 0/1 mask (not normalized).
    Mask,
}

/// How Sentinel-2 channels (inputs and outputs) are scaled to about [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum S2Method {
    /// The research default: per band, the mean over the batch's tiles of each tile's min and
    /// max. Outputs use the batch's S2 t0 values of the same band (known at inference).
    #[default]
    BatchMinMax,
    /// Each tile's own min and max (outputs: the tile's S2 t0 band).
    TileMinMax,
    /// 2nd and 98th percentiles over the training split.
    Percentile,
    /// Min and max over the training split.
    TrainMinMax,
    /// Min and max per band over the AOI for a date range (from COG overviews of every scene).
    Yearly,
}

/// How Sentinel-1 channels are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum S1Method {
    /// (dB - mean) / std over the training split (the research default).
    #[default]
    Standardize,
    /// 2nd and 98th percentiles of dB over the training split.
    Percentile,
}

/// The range a model sees its Sentinel-2 data in: s2cr's maps send it to [0, 1]; pix2pix
/// trains on [-1, 1] (torchvision's `Normalize(0.5, 0.5)` after `ToTensor`) with a Tanh output.
/// Symmetric sends each channel a method maps to [0, 1] on to `2n - 1`; standardized
/// Sentinel-1 channels and masks are the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DataRange {
    /// [0, 1] (s2cr's runs).
    #[default]
    Unit,
    /// [-1, 1] (pix2pix's runs).
    Symmetric,
}

impl DataRange {
    pub fn name(self) -> &'static str {
        match self {
            DataRange::Unit => "unit",
            DataRange::Symmetric => "symmetric",
        }
    }
}

/// The affine map of one channel: normalized = (v - offset) / scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affine {
    pub offset: f32,
    pub scale: f32,
}

impl Affine {
    /// The map sending `lo` to 0 and `hi` to 1 (a unit scale when they are equal).
    pub fn min_max(lo: f32, hi: f32) -> Affine {
        let scale = hi - lo;
        Affine { offset: lo, scale: if scale.abs() > f32::EPSILON && scale.is_finite() { scale } else { 1.0 } }
    }

    pub fn standardize(mean: f32, std: f32) -> Affine {
        Affine { offset: mean, scale: if std > f32::EPSILON && std.is_finite() { std } else { 1.0 } }
    }

    pub const IDENTITY: Affine = Affine { offset: 0.0, scale: 1.0 };

    /// This map followed by `n -> 2n - 1`: what sends `offset` to -1 and `offset + scale` to 1.
    pub fn symmetric(self) -> Affine {
        Affine { offset: self.offset + self.scale / 2.0, scale: self.scale / 2.0 }
    }

    pub fn normalize(&self, values: &mut [f32]) {
        for v in values {
            *v = (*v - self.offset) / self.scale;
        }
    }

    pub fn denormalize(&self, values: &mut [f32]) {
        for v in values {
            *v = *v * self.scale + self.offset;
        }
    }
}

/// f32 values that may be NaN (no valid pixel): JSON has no NaN, so they are written as null
/// and read back as NaN.
pub mod nan_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() { s.serialize_f32(*v) } else { s.serialize_none() }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
    }
}

/// Statistics of one channel over the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    pub name: String,
    pub kind: ChannelKind,
    /// Valid pixels counted.
    pub count: u64,
    #[serde(with = "nan_null")]
    pub min: f32,
    #[serde(with = "nan_null")]
    pub max: f32,
    pub mean: f64,
    pub std: f64,
    #[serde(with = "nan_null")]
    pub p2: f32,
    #[serde(with = "nan_null")]
    pub p98: f32,
    /// Yearly min and max over the AOI (S2 channels, when computed).
    #[serde(default)]
    pub yearly: Option<(f32, f32)>,
}

/// Streaming statistics of a channel: exact count, sums, min and max; percentiles from a
/// deterministic subsample (every `step`-th valid pixel).
#[derive(Debug, Clone)]
pub struct StatsAccumulator {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f32,
    max: f32,
    step: u64,
    seen: u64,
    sample: Vec<f32>,
}

impl StatsAccumulator {
    /// `expected` pixels will be offered; the percentile sample keeps about `sample_size`.
    pub fn new(expected: u64, sample_size: u64) -> StatsAccumulator {
        StatsAccumulator { count: 0, sum: 0.0, sum_sq: 0.0, min: f32::INFINITY, max: f32::NEG_INFINITY, step: (expected / sample_size.max(1)).max(1), seen: 0, sample: Vec::new() }
    }

    pub fn add(&mut self, v: f32) {
        if !v.is_finite() {
            return;
        }
        self.count += 1;
        self.sum += v as f64;
        self.sum_sq += (v as f64) * (v as f64);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if self.seen % self.step == 0 {
            self.sample.push(v);
        }
        self.seen += 1;
    }

    pub fn finish(mut self, name: &str, kind: ChannelKind) -> ChannelStats {
        let n = self.count.max(1) as f64;
        let mean = self.sum / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        self.sample.sort_by(f32::total_cmp);
        ChannelStats {
            name: name.into(),
            kind,
            count: self.count,
            min: if self.count == 0 { f32::NAN } else { self.min },
            max: if self.count == 0 { f32::NAN } else { self.max },
            mean,
            std: var.sqrt(),
            p2: percentile(&self.sample, 2.0),
            p98: percentile(&self.sample, 98.0),
            yearly: None,
        }
    }
}

/// The `p`-th percentile of sorted values (linear interpolation between ranks, as numpy's
/// default); NaN when empty.
pub fn percentile(sorted: &[f32], p: f64) -> f32 {
    if sorted.is_empty() {
        return f32::NAN;
    }
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let t = (rank - lo as f64) as f32;
    sorted[lo] + (sorted[hi] - sorted[lo]) * t
}

/// Min and max of one channel of one tile (valid pixels), for tile and batch methods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TileRange {
    #[serde(with = "nan_null")]
    pub min: f32,
    #[serde(with = "nan_null")]
    pub max: f32,
}

/// The dataset's normalization: the chosen methods and every statistic they may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub s2_method: S2Method,
    pub s1_method: S1Method,
    /// Input channels, in tensor order.
    pub inputs: Vec<ChannelStats>,
    /// Output (label) channels, in tensor order.
    pub outputs: Vec<ChannelStats>,
    /// The range the model takes and gives (files written before it existed: unit).
    #[serde(default)]
    pub range: DataRange,
}

impl Normalization {
    /// The fixed map of a channel under a method that does not depend on tiles; `None` for the
    /// tile and batch methods.
    fn fixed(&self, stats: &ChannelStats) -> Option<Affine> {
        match stats.kind {
            ChannelKind::Mask => Some(Affine::IDENTITY),
            ChannelKind::S1 => Some(match self.s1_method {
                S1Method::Standardize => Affine::standardize(stats.mean as f32, stats.std as f32),
                S1Method::Percentile => Affine::min_max(stats.p2, stats.p98),
            }),
            ChannelKind::S2 => match self.s2_method {
                S2Method::Percentile => Some(Affine::min_max(stats.p2, stats.p98)),
                S2Method::TrainMinMax => Some(Affine::min_max(stats.min, stats.max)),
                // Without yearly numbers, the training split's percentiles stand in.
                S2Method::Yearly => Some(stats.yearly.map(|(lo, hi)| Affine::min_max(lo, hi)).unwrap_or(Affine::min_max(stats.p2, stats.p98))),
                S2Method::BatchMinMax | S2Method::TileMinMax => None,
            },
        }
    }

    /// The index of the input channel an output channel borrows its tile ranges from: the S2
    /// t0 input of the same band (`S2_t0:B04` for `S2_t1:B04`).
    pub fn reference_input(&self, output: usize) -> Option<usize> {
        let band = self.outputs.get(output)?.name.rsplit(':').next()?.to_string();
        self.inputs.iter().position(|c| c.kind == ChannelKind::S2 && c.name.rsplit(':').next() == Some(band.as_str()))
    }

    /// For a generator that predicts the change from the pre-fire image: per output channel, the
    /// input channel of S2 t0 of the same band and the map `y = a x + b` from that channel's
    /// normalized values to the output's (the identity where the output borrows the input's
    /// tile or batch ranges; from the two channels' fixed maps otherwise). `Err` names an
    /// output band without S2 t0 among the inputs.
    pub fn residual_maps(&self) -> std::result::Result<Vec<(usize, f32, f32)>, String> {
        let mut maps = Vec::with_capacity(self.outputs.len());
        for (o, out) in self.outputs.iter().enumerate() {
            let c = self.reference_input(o).ok_or_else(|| {
                format!(
                    "output {} has no Sentinel-2 t0 channel of its band among the inputs ({}): a residual generator adds its change to S2 t0; use output: direct with these inputs",
                    out.name,
                    self.inputs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            })?;
            let (a_in, a_out) = match (self.fixed(&self.inputs[c]), self.fixed(out)) {
                (Some(i), Some(o)) => {
                    let sym = |a: Affine, s: &ChannelStats| if self.range == DataRange::Symmetric && self.maps_to_unit(s) { a.symmetric() } else { a };
                    (sym(i, &self.inputs[c]), sym(o, out))
                }
                // The output uses its reference input's tile or batch map: the same values.
                _ => (Affine::IDENTITY, Affine::IDENTITY),
            };
            maps.push((c, a_in.scale / a_out.scale, (a_in.offset - a_out.offset) / a_out.scale));
        }
        Ok(maps)
    }

    /// The maps of every input and output channel for a batch of tiles, given each tile's
    /// input ranges (`tile_inputs[tile][channel]`). Per-tile methods give one map per tile;
    /// the others the same map for every tile. Returns `[tile][channel]` for inputs and outputs.
    pub fn maps(&self, tile_inputs: &[Vec<TileRange>]) -> (Vec<Vec<Affine>>, Vec<Vec<Affine>>) {
        let (mut inputs, mut outputs) = self.unit_maps(tile_inputs);
        if self.range == DataRange::Symmetric {
            for (list, stats) in inputs.iter_mut().map(|t| (t, &self.inputs)).chain(outputs.iter_mut().map(|t| (t, &self.outputs))) {
                for (a, s) in list.iter_mut().zip(stats) {
                    if self.maps_to_unit(s) {
                        *a = a.symmetric();
                    }
                }
            }
        }
        (inputs, outputs)
    }

    /// Whether a channel's method sends it to [0, 1] (min-max and percentile maps), as the
    /// symmetric range changes; standardized channels and masks are left as they are.
    fn maps_to_unit(&self, stats: &ChannelStats) -> bool {
        match stats.kind {
            ChannelKind::Mask => false,
            ChannelKind::S1 => self.s1_method == S1Method::Percentile,
            ChannelKind::S2 => true,
        }
    }

    /// [`Normalization::maps`] in the unit range.
    fn unit_maps(&self, tile_inputs: &[Vec<TileRange>]) -> (Vec<Vec<Affine>>, Vec<Vec<Affine>>) {
        let n = tile_inputs.len();
        // Batch means of the tiles' ranges per input channel.
        let batch: Vec<Affine> = (0..self.inputs.len())
            .map(|c| {
                let valid: Vec<&TileRange> = tile_inputs.iter().filter_map(|t| t.get(c)).filter(|r| r.min.is_finite() && r.max.is_finite()).collect();
                if valid.is_empty() {
                    return Affine::min_max(self.inputs[c].p2, self.inputs[c].p98);
                }
                let lo = valid.iter().map(|r| r.min as f64).sum::<f64>() / valid.len() as f64;
                let hi = valid.iter().map(|r| r.max as f64).sum::<f64>() / valid.len() as f64;
                Affine::min_max(lo as f32, hi as f32)
            })
            .collect();
        let input_map = |tile: usize, c: usize| -> Affine {
            let stats = &self.inputs[c];
            if let Some(a) = self.fixed(stats) {
                return a;
            }
            match self.s2_method {
                S2Method::TileMinMax => match tile_inputs.get(tile).and_then(|t| t.get(c)) {
                    Some(r) if r.min.is_finite() && r.max.is_finite() => Affine::min_max(r.min, r.max),
                    _ => Affine::min_max(stats.p2, stats.p98),
                },
                _ => batch[c],
            }
        };
        let inputs: Vec<Vec<Affine>> = (0..n).map(|t| (0..self.inputs.len()).map(|c| input_map(t, c)).collect()).collect();
        let outputs: Vec<Vec<Affine>> = (0..n)
            .map(|t| {
                (0..self.outputs.len())
                    .map(|o| {
                        let stats = &self.outputs[o];
                        if let Some(a) = self.fixed(stats) {
                            return a;
                        }
                        match self.reference_input(o) {
                            Some(c) => input_map(t, c),
                            None => Affine::min_max(stats.p2, stats.p98),
                        }
                    })
                    .collect()
            })
            .collect();
        (inputs, outputs)
    }

    /// normalization.csv: one row per channel.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("role,channel,kind,count,min,max,mean,std,p2,p98,yearly_min,yearly_max\n");
        for (role, list) in [("input", &self.inputs), ("output", &self.outputs)] {
            for c in list {
                let (ymin, ymax) = c.yearly.map(|(a, b)| (a.to_string(), b.to_string())).unwrap_or_default();
                out.push_str(&format!(
                    "{role},{},{},{},{},{},{},{},{},{},{ymin},{ymax}\n",
                    c.name,
                    serde_json::to_value(c.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                    c.count,
                    c.min,
                    c.max,
                    c.mean,
                    c.std,
                    c.p2,
                    c.p98
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &str, kind: ChannelKind, values: &[f32]) -> ChannelStats {
        let mut acc = StatsAccumulator::new(values.len() as u64, 1_000_000);
        for v in values {
            acc.add(*v);
        }
        acc.finish(name, kind)
    }

    #[test]
    fn percentiles_match_numpy_linear_interpolation() {
        let v: Vec<f32> = (0..=100).map(|i| i as f32).collect();
        assert_eq!(percentile(&v, 2.0), 2.0);
        assert_eq!(percentile(&v, 98.0), 98.0);
        // numpy.percentile([1, 2, 3, 4], 50) == 2.5
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        let s = stats("x", ChannelKind::S2, &[1.0, 2.0, 3.0, 4.0, f32::NAN]);
        assert_eq!((s.count, s.min, s.max, s.mean), (4, 1.0, 4.0, 2.5));
        assert!((s.std - 1.118_034).abs() < 1e-6, "population std {}", s.std);
    }

    #[test]
    fn every_method_round_trips() {
        let s2: Vec<f32> = (0..500).map(|i| 0.01 + i as f32 * 0.001).collect();
        let s1: Vec<f32> = (0..500).map(|i| -25.0 + i as f32 * 0.03).collect();
        let mut inputs = vec![stats("S1_t0:VV", ChannelKind::S1, &s1), stats("S2_t0:B04", ChannelKind::S2, &s2), stats("mask_t0", ChannelKind::Mask, &[0.0, 1.0])];
        inputs[1].yearly = Some((0.0, 0.6));
        let mut outputs = vec![stats("S2_t1:B04", ChannelKind::S2, &s2), stats("S2_t1:B12", ChannelKind::S2, &s2)];
        outputs[0].yearly = Some((0.0, 0.6));
        let tiles = vec![
            vec![TileRange { min: -20.0, max: -5.0 }, TileRange { min: 0.02, max: 0.3 }, TileRange { min: 0.0, max: 1.0 }],
            vec![TileRange { min: -22.0, max: -7.0 }, TileRange { min: 0.04, max: 0.5 }, TileRange { min: 0.0, max: 1.0 }],
        ];
        for s2_method in [S2Method::BatchMinMax, S2Method::TileMinMax, S2Method::Percentile, S2Method::TrainMinMax, S2Method::Yearly] {
            for s1_method in [S1Method::Standardize, S1Method::Percentile] {
                let n = Normalization { s2_method, s1_method, inputs: inputs.clone(), outputs: outputs.clone(), range: DataRange::Unit };
                let (maps_in, maps_out) = n.maps(&tiles);
                for maps in maps_in.iter().chain(&maps_out) {
                    for a in maps {
                        let original: Vec<f32> = s2.iter().chain(&s1).copied().collect();
                        let mut v = original.clone();
                        a.normalize(&mut v);
                        a.denormalize(&mut v);
                        for (x, y) in v.iter().zip(&original) {
                            assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{s2_method:?}/{s1_method:?}: {x} vs {y}");
                        }
                    }
                }
                // The output B04 borrows the S2 t0 B04 map; B12 has no t0 band and uses
                // percentiles under tile methods.
                assert_eq!(maps_out[0][0], maps_in[0][1], "{s2_method:?}");
            }
        }
        let n = Normalization { s2_method: S2Method::BatchMinMax, s1_method: S1Method::Standardize, inputs: inputs.clone(), outputs: outputs.clone(), range: DataRange::Unit };
        let (maps_in, _) = n.maps(&tiles);
        // Batch min/max: the mean of the tiles' minima and maxima.
        assert!((maps_in[0][1].offset - 0.03).abs() < 1e-6 && (maps_in[0][1].scale - 0.37).abs() < 1e-6, "{:?}", maps_in[0][1]);
        assert_eq!(maps_in[0][1], maps_in[1][1], "one map for the whole batch");
        let tile = Normalization { s2_method: S2Method::TileMinMax, ..n.clone() };
        let (maps_in, _) = tile.maps(&tiles);
        assert_ne!(maps_in[0][1], maps_in[1][1], "one map per tile");
        assert_eq!(maps_in[0][2], Affine::IDENTITY, "masks stay 0/1");
        let yearly = Normalization { s2_method: S2Method::Yearly, ..n };
        assert_eq!(yearly.maps(&tiles).0[0][1], Affine::min_max(0.0, 0.6));
    }

    /// A residual generator's base: the S2 t0 input's normalized value mapped into the label's
    /// normalization gives the label's normalized value of the same reflectance, under every
    /// method and range; an output band without S2 t0 is refused by name.
    #[test]
    fn residual_maps_carry_s2_t0_into_the_labels_normalization() {
        let t0: Vec<f32> = (0..500).map(|i| 0.01 + i as f32 * 0.001).collect();
        let t1: Vec<f32> = (0..500).map(|i| 0.05 + i as f32 * 0.0007).collect();
        let inputs = vec![stats("S1_t0:VV", ChannelKind::S1, &t0), stats("S2_t0:B04", ChannelKind::S2, &t0)];
        let mut outputs = vec![stats("S2_t1:B04", ChannelKind::S2, &t1)];
        let tiles = vec![vec![TileRange { min: -20.0, max: -5.0 }, TileRange { min: 0.02, max: 0.3 }]];
        for s2_method in [S2Method::BatchMinMax, S2Method::TileMinMax, S2Method::Percentile, S2Method::TrainMinMax, S2Method::Yearly] {
            for range in [DataRange::Unit, DataRange::Symmetric] {
                let n = Normalization { s2_method, s1_method: S1Method::Standardize, inputs: inputs.clone(), outputs: outputs.clone(), range };
                let maps = n.residual_maps().unwrap();
                assert_eq!(maps.len(), 1);
                let (c, a, b) = maps[0];
                assert_eq!(c, 1, "S2_t0:B04");
                let (maps_in, maps_out) = n.maps(&tiles);
                for v in [0.0f32, 0.07, 0.31] {
                    let (mut x, mut y) = ([v], [v]);
                    maps_in[0][1].normalize(&mut x);
                    maps_out[0][0].normalize(&mut y);
                    assert!((a * x[0] + b - y[0]).abs() < 1e-5, "{s2_method:?} {range:?} at {v}: {} vs {}", a * x[0] + b, y[0]);
                }
            }
        }
        outputs.push(stats("S2_t1:B12", ChannelKind::S2, &t1));
        let n = Normalization { s2_method: S2Method::Percentile, s1_method: S1Method::Standardize, inputs, outputs, range: DataRange::Unit };
        let e = n.residual_maps().unwrap_err();
        assert!(e.contains("S2_t1:B12") && e.contains("output: direct"), "{e}");
    }

    /// pix2pix's range: every channel a method sends to [0, 1] goes to [-1, 1] (n' = 2n - 1),
    /// inputs and outputs alike; standardized S1 and masks stay; the maps still invert.
    #[test]
    fn the_symmetric_range_is_pix2pixs_2n_minus_1_on_the_unit_channels() {
        let s2: Vec<f32> = (0..500).map(|i| 0.01 + i as f32 * 0.001).collect();
        let s1: Vec<f32> = (0..500).map(|i| -25.0 + i as f32 * 0.03).collect();
        let inputs = vec![stats("S1_t0:VV", ChannelKind::S1, &s1), stats("S2_t0:B04", ChannelKind::S2, &s2), stats("mask_t0", ChannelKind::Mask, &[0.0, 1.0])];
        let outputs = vec![stats("S2_t1:B04", ChannelKind::S2, &s2)];
        let tiles = vec![vec![TileRange { min: -20.0, max: -5.0 }, TileRange { min: 0.02, max: 0.3 }, TileRange { min: 0.0, max: 1.0 }]];
        for s1_method in [S1Method::Standardize, S1Method::Percentile] {
            for s2_method in [S2Method::BatchMinMax, S2Method::TileMinMax, S2Method::Percentile, S2Method::TrainMinMax] {
                let unit = Normalization { s2_method, s1_method, inputs: inputs.clone(), outputs: outputs.clone(), range: DataRange::Unit };
                let sym = Normalization { range: DataRange::Symmetric, ..unit.clone() };
                let (ui, uo) = unit.maps(&tiles);
                let (si, so) = sym.maps(&tiles);
                let probe = [-3.0f32, 0.02, 0.1, 0.3, 1.0, -20.0, -5.0];
                for (c, (u, s)) in ui[0].iter().zip(&si[0]).chain(uo[0].iter().zip(&so[0])).enumerate() {
                    let (mut a, mut b) = (probe.to_vec(), probe.to_vec());
                    u.normalize(&mut a);
                    s.normalize(&mut b);
                    let changes = match c {
                        0 => s1_method == S1Method::Percentile,
                        2 => false,
                        _ => true,
                    };
                    for (x, y) in a.iter().zip(&b) {
                        let want = if changes { 2.0 * x - 1.0 } else { *x };
                        assert!((y - want).abs() <= 1e-5 * want.abs().max(1.0), "{s2_method:?}/{s1_method:?} channel {c}: {y} vs {want}");
                    }
                    let back = { let mut v = b.clone(); s.denormalize(&mut v); v };
                    for (x, y) in back.iter().zip(&probe) {
                        assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "round trip {x} vs {y}");
                    }
                }
                // The output's t0 band range goes to -1..1.
                assert!((so[0][0].offset - (uo[0][0].offset + uo[0][0].scale / 2.0)).abs() < 1e-6 && (so[0][0].scale - uo[0][0].scale / 2.0).abs() < 1e-6);
            }
        }
        // Files without the field are unit.
        let json = serde_json::to_value(Normalization { s2_method: S2Method::BatchMinMax, s1_method: S1Method::Standardize, inputs, outputs, range: DataRange::Symmetric }).unwrap();
        assert_eq!(json["range"], "symmetric");
        let mut old = json.clone();
        old.as_object_mut().unwrap().remove("range");
        assert_eq!(serde_json::from_value::<Normalization>(old).unwrap().range, DataRange::Unit);
    }
}
