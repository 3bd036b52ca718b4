//! The training-set builder on real chips (SEN12MS-CR, Jiangsu, EPSG:32650, 256 x 256 at 10 m),
//! placed in preprocessed/ as the preprocess stage leaves them:
//! - S2 t0: the CLOUDY chip's reflectance, with a SIMULATED mask (1 where its blue band exceeds
//!   0.2, i.e. the visible clouds; the chip has no SCL);
//! - S2 t1: the cloud-free chip, mask 0;
//! - S1 t0 and S1 t1: the one real radar chip of the place (VV, VH dB) for both dates (the data
//!   set has a single radar acquisition per place).

use std::path::Path;

use burn::data::dataloader::DataLoaderBuilder;
use burn::prelude::*;
use s2cr::catalog::{Mission, Scene, stage::SearchResult};
use s2cr::dataset::loader::{PatchBatcher, PatchDataset};
use s2cr::dataset::normalize::{S1Method, S2Method};
use s2cr::dataset::tiles::{Split, TileConfig};
use s2cr::dataset::{self, DatasetConfig, DatasetSummary};
use s2cr::job::Progress;
use s2cr::project::Project;
use s2cr::raster::{self, PixelWindow};

use crate::shared_data;

/// The SEN12MS-CR patch most tests use (eastern China, autumn; EPSG:32650).
pub const P839: &str = "ROIs1970_fall_139_p839";
/// The other patch in shared/data, on other ground (western Europe, winter; EPSG:32631).
pub const P797: &str = "ROIs2017_winter_112_p797";

fn chip_of(patch: &str, kind: &str) -> String {
    shared_data().join(format!("s1s2-sen12mscr/{kind}/{patch}.tif")).display().to_string()
}

fn chip(kind: &str) -> String {
    chip_of(P839, kind)
}

/// SEN12MS-CR S2 band order: B1 B2 B3 B4 B5 B6 B7 B8 B8A B9 B10 B11 B12.
const S2: [(&str, usize); 6] = [("B02", 2), ("B03", 3), ("B04", 4), ("B08", 8), ("B11", 12), ("B12", 13)];

fn scene(id: &str, mission: Mission, date: &str) -> Scene {
    let collection = if mission == Mission::Sentinel2 { "sentinel-2-l2a" } else { "sentinel-1-rtc" };
    Scene {
        platform: Some("sentinel-2a".into()),
        cloud_cover: Some(10.0),
        relative_orbit: Some(10),
        orbit_state: Some("descending".into()),
        processing_baseline: Some("05.10".into()),
        ..Scene::new(id, collection, mission, format!("{date}T03:00:00Z").parse().unwrap())
    }
}

/// A project whose preprocessed/ holds the four sources.
pub fn project_with_preprocessed(root: &Path) -> Project {
    project_of_patch(root, P839)
}

/// A project whose preprocessed/ holds the four sources of a SEN12MS-CR patch.
pub fn project_of_patch(root: &Path, patch: &str) -> Project {
    let chip = |kind: &str| chip_of(patch, kind);
    let s1 = raster::read_window(&chip("s1"), &[], None).unwrap();
    let gt = s1.geo_transform;
    let epsg = raster::info(&chip("s1")).unwrap().epsg.unwrap();
    let grid = s2cr::grid::TargetGrid { epsg, pixel_size_m: 10.0, x_min: gt[0], y_max: gt[3], width: s1.width, height: s1.height };
    let aoi_path = root.join("aoi.geojson");
    std::fs::write(&aoi_path, r#"{"type":"Polygon","coordinates":[[[119.180,33.494],[119.194,33.494],[119.194,33.506],[119.180,33.506],[119.180,33.494]]]}"#).unwrap();
    let aoi = s2cr::aoi::Aoi::load(&aoi_path, &Default::default()).unwrap();
    let mut config = s2cr::project::ProjectConfig {
        schema_version: s2cr::project::SCHEMA_VERSION,
        name: "dataset".into(),
        aoi: "aoi.geojson".into(),
        t0: "2024-03-30/2024-04-08".parse().unwrap(),
        t1: "2024-04-10/2024-04-22".parse().unwrap(),
        provider: s2cr::project::Provider::PlanetaryComputer,
        max_cloud_percent: 100.0,
        bands: Default::default(),
        grid,
        model_config: None,
        train_config: None,
        catalog: None,
        collections: None,
        openeo: None,
        reference_perimeter: None,
        composite: None,
    };
    config.bands.s2 = S2.iter().map(|(b, _)| b.to_string()).chain(["SCL".to_string()]).collect();
    let project = Project::create(&root.join("p"), config, &aoi).unwrap();
    let pre = project.preprocessed_dir();
    let s2_file = |kind: &str, date: &str, masked: &dyn Fn(&raster::BandStack, usize) -> bool| {
        let src = raster::read_window(&chip(kind), &S2.iter().map(|(_, i)| *i).collect::<Vec<_>>(), None).unwrap();
        let mut out = src.clone();
        for b in out.bands.iter_mut() {
            for v in b.iter_mut() {
                *v /= 10000.0;
            }
        }
        out.bands.push((0..src.width * src.height).map(|i| if masked(&src, i) { 1.0 } else { 0.0 }).collect());
        out.descriptions = S2.iter().map(|(b, _)| b.to_string()).chain(["mask".to_string()]).collect();
        raster::write_raster(&pre.join(date).join("S2.tif"), &out, &raster::WriteOptions::default()).unwrap();
    };
    s2_file("s2_cloudy", "2024-04-02", &|s, i| s.bands[0][i] / 10000.0 > 0.2);
    s2_file("s2_cloudfree", "2024-04-12", &|_, _| false);
    let mut s1_out = s1.clone();
    s1_out.descriptions = vec!["VV".into(), "VH".into()];
    for date in ["2024-04-01", "2024-04-11"] {
        raster::write_raster(&pre.join(date).join("S1.tif"), &s1_out, &raster::WriteOptions::default()).unwrap();
    }
    let (t0, t1) = (scene("S2_T0", Mission::Sentinel2, "2024-04-02"), scene("S2_T1", Mission::Sentinel2, "2024-04-12"));
    let (r0, r1) = (scene("S1_T0", Mission::Sentinel1, "2024-04-01"), scene("S1_T1", Mission::Sentinel1, "2024-04-11"));
    SearchResult::of_choice(Some(t0.clone()), Some(t1.clone()), vec![(t0, r0), (t1, r1)]).save(&project).unwrap();
    project
}

fn config(project: &Project, tiles: TileConfig) -> DatasetConfig {
    DatasetConfig { tiles, ..DatasetConfig::research(project) }
}

fn small_tiles() -> TileConfig {
    TileConfig { size: 64, stride: 64, min_valid: 0.5, val_fraction: 0.2, test_fraction: 0.2, split_block_patches: 1, gap_px: 0, seed: 3 }
}

#[test]
fn the_research_layout_stacks_the_right_bands() {
    let tmp = tempfile::tempdir().unwrap();
    let project = project_with_preprocessed(tmp.path());
    let summary = dataset::build(&project, &config(&project, small_tiles()), &Progress::silent("dataset")).unwrap();
    let d = project.dataset_dir();
    for f in [
        "dataX/Sentinel1_t0/VV.vrt",
        "dataX/Sentinel1_t0/Sentinel1_t0.vrt",
        "dataX/Sentinel1_t1/VH.vrt",
        "dataX/Sentinel2_t0/B12.vrt",
        "dataX/Sentinel2_t0/Sentinel2_t0.vrt",
        "dataX/dataX.vrt",
        "label/B08.vrt",
        "label/label.vrt",
        "tiles.csv",
        "tiles.json",
        "normalization.json",
        "normalization.csv",
        "dataset.json",
        "manifest.json",
    ] {
        assert!(d.join(f).is_file(), "{f} missing");
    }
    let names = |p: &str| raster::info(d.join(p).to_str().unwrap()).unwrap().bands.iter().map(|b| b.description.clone()).collect::<Vec<_>>();
    assert_eq!(names("dataX/dataX.vrt"), ["S1_t0:VV", "S1_t0:VH", "S1_t1:VV", "S1_t1:VH", "S2_t0:B02", "S2_t0:B03", "S2_t0:B04", "S2_t0:B08", "S2_t0:B11", "S2_t0:B12"]);
    assert_eq!(names("label/label.vrt"), ["S2_t1:B02", "S2_t1:B03", "S2_t1:B04", "S2_t1:B08", "S2_t1:B11", "S2_t1:B12"]);
    assert_eq!(names("dataX/Sentinel2_t0/Sentinel2_t0.vrt"), ["B02", "B03", "B04", "B08", "B11", "B12"]);
    // The stack's pixels are the source's: S1 t1 VH and S2 t0 B11 of dataX, B12 of the label.
    let w = Some(PixelWindow { x_off: 30, y_off: 40, width: 50, height: 20 });
    let x = raster::read_window(d.join("dataX/dataX.vrt").to_str().unwrap(), &[4, 9], w).unwrap();
    let s1 = raster::read_window(project.preprocessed_dir().join("2024-04-11/S1.tif").to_str().unwrap(), &[2], w).unwrap();
    let s2 = raster::read_window(project.preprocessed_dir().join("2024-04-02/S2.tif").to_str().unwrap(), &[5], w).unwrap();
    assert_eq!(x.bands[0], s1.bands[0]);
    assert_eq!(x.bands[1], s2.bands[0]);
    let label = raster::read_window(d.join("label/label.vrt").to_str().unwrap(), &[6], w).unwrap();
    let cloudfree_b12 = raster::read_window(&chip("s2_cloudfree"), &[13], w).unwrap();
    for (a, b) in label.bands[0].iter().zip(&cloudfree_b12.bands[0]) {
        assert!((a - b / 10000.0).abs() < 1e-7);
    }
    assert_eq!(x.geo_transform, label.geo_transform);
    assert_eq!(summary.inputs.len(), 10);
    // Up to date: a second run is skipped and returns the same summary.
    assert_eq!(dataset::build(&project, &config(&project, small_tiles()), &Progress::silent("dataset")).unwrap(), summary);
}

#[test]
fn tiles_are_counted_split_without_shared_pixels_and_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let project = project_with_preprocessed(tmp.path());
    // Overlapping patches (stride 32) and a gap: the hard case for disjointness.
    let tiles = TileConfig { size: 64, stride: 32, min_valid: 0.4, val_fraction: 0.25, test_fraction: 0.25, split_block_patches: 2, gap_px: 8, seed: 11 };
    let summary = dataset::build(&project, &config(&project, tiles.clone()), &Progress::silent("dataset")).unwrap();
    let index = dataset::TileIndex::load(&project).unwrap();
    // (256 - 64) / 32 + 1 = 7 positions per side.
    assert_eq!(index.patches.len(), 49);
    assert_eq!(summary.train + summary.val + summary.test + summary.dropped_invalid + summary.dropped_split_border, 49);
    assert!(summary.train > 0 && summary.val > 0 && summary.test > 0, "{summary:?}");
    let mut owner = std::collections::HashMap::new();
    for p in index.patches.iter().filter(|p| p.kept) {
        for y in p.y..p.y + 64 {
            for x in p.x..p.x + 64 {
                assert_eq!(*owner.entry((x, y)).or_insert(p.split), p.split, "pixel ({x}, {y}) in two splits");
            }
        }
    }
    // The valid share of every patch, recomputed from the masks: t0 and t1 unmasked.
    let mask_t0 = raster::read_window(project.preprocessed_dir().join("2024-04-02/S2.tif").to_str().unwrap(), &[7], None).unwrap();
    for p in &index.patches {
        let mut valid = 0;
        for y in p.y..p.y + 64 {
            for x in p.x..p.x + 64 {
                valid += (mask_t0.bands[0][y * 256 + x] == 0.0) as usize;
            }
        }
        assert!((p.valid_fraction - valid as f64 / 4096.0).abs() < 1e-9, "patch {}: {} vs {}", p.id, p.valid_fraction, valid as f64 / 4096.0);
        if p.valid_fraction < 0.4 && !p.reason.contains("another split") {
            assert!(!p.kept && p.reason.contains("mostly masked at t0"), "{p:?}");
        }
    }
    assert!(summary.dropped_invalid > 0, "the cloudy chip drops some patches");
    let csv = std::fs::read_to_string(project.dataset_dir().join("tiles.csv")).unwrap();
    assert_eq!(csv.lines().count(), 50);
    assert!(csv.lines().next().unwrap().contains("S2_t1:B12_max"));
    // Pure SAR-to-optical ignores the t0 clouds: more patches survive.
    let sar = DatasetConfig { inputs: dataset::sar_only_inputs(&project.config.bands.s1), ..config(&project, tiles) };
    let sar_summary = dataset::build(&project, &sar, &Progress::silent("dataset")).unwrap();
    assert_eq!(sar_summary.dropped_invalid, 0);
    assert_eq!(sar_summary.inputs.len(), 2);
}

#[test]
fn normalization_round_trips_for_every_method_on_real_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let project = project_with_preprocessed(tmp.path());
    for s2_method in [S2Method::BatchMinMax, S2Method::TileMinMax, S2Method::Percentile, S2Method::TrainMinMax] {
        for s1_method in [S1Method::Standardize, S1Method::Percentile] {
            let cfg = DatasetConfig { s2_method, s1_method, ..config(&project, small_tiles()) };
            dataset::build(&project, &cfg, &Progress::silent("dataset")).unwrap();
            let normalization = s2cr::dataset::loader::load_normalization(&project).unwrap();
            assert_eq!((normalization.s2_method, normalization.s1_method), (s2_method, s1_method));
            let data = PatchDataset::open(&project, Split::Train, None).unwrap();
            let items: Vec<_> = (0..data.patches().len().min(4)).map(|i| data.read(i).unwrap()).collect();
            let batcher = PatchBatcher { normalization: normalization.clone() };
            let (_, label, valid, maps) = batcher.normalize(&items);
            let plane = 64 * 64;
            for (k, item) in items.iter().enumerate() {
                for c in 0..6 {
                    let start = (k * 6 + c) * plane;
                    let mut back = label[start..start + plane].to_vec();
                    maps[k][c].denormalize(&mut back);
                    for (i, (b, original)) in back.iter().zip(&item.label[c * plane..(c + 1) * plane]).enumerate() {
                        if valid[k * plane + i] == 1.0 {
                            assert!((b - original).abs() <= 1e-5, "{s2_method:?}/{s1_method:?} channel {c}: {b} vs {original}");
                        }
                    }
                }
            }
            // S1 standardization: the training split's dB have mean 0 and std 1 afterwards.
            if s1_method == S1Method::Standardize {
                let vv = &normalization.inputs[0];
                assert!(vv.mean < -5.0 && vv.std > 1.0, "{vv:?}");
            }
        }
    }
    let csv = std::fs::read_to_string(project.dataset_dir().join("normalization.csv")).unwrap();
    assert!(csv.starts_with("role,channel,kind,count,min,max,mean,std,p2,p98") && csv.contains("input,S1_t0:VV,s1,"), "{csv}");
}

#[test]
fn batches_have_the_right_shapes_and_augmentation_moves_inputs_and_label_together() {
    let tmp = tempfile::tempdir().unwrap();
    let project = project_with_preprocessed(tmp.path());
    let cfg = config(&project, TileConfig { val_fraction: 0.0, test_fraction: 0.0, ..small_tiles() });
    let summary: DatasetSummary = dataset::build(&project, &cfg, &Progress::silent("dataset")).unwrap();
    let plain = PatchDataset::open(&project, Split::Train, None).unwrap();
    let augmented = PatchDataset::open(&project, Split::Train, Some(7)).unwrap();
    let n = 64;
    let mut transforms = std::collections::HashSet::new();
    for epoch in 0..3 {
        augmented.set_epoch(epoch);
        for i in 0..plain.patches().len() {
            let (a, b) = (plain.read(i).unwrap(), augmented.read(i).unwrap());
            transforms.insert((b.transform.quarter_turns, b.transform.flip));
            let t = b.transform;
            let same = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
            for c in 0..10 {
                assert!(same(&t.apply(&a.input[c * n * n..(c + 1) * n * n], n), &b.input[c * n * n..(c + 1) * n * n]), "input {c}");
            }
            for c in 0..6 {
                assert!(same(&t.apply(&a.label[c * n * n..(c + 1) * n * n], n), &b.label[c * n * n..(c + 1) * n * n]), "label {c}");
            }
            assert_eq!(t.apply(&a.valid, n), b.valid);
        }
    }
    assert!(transforms.len() >= 4, "several of the 8 symmetries are drawn: {transforms:?}");
    // The same seed and epoch give the same transforms.
    augmented.set_epoch(1);
    let again = augmented.read(0).unwrap().transform;
    augmented.set_epoch(1);
    assert_eq!(augmented.read(0).unwrap().transform, again);

    let batcher = PatchBatcher { normalization: s2cr::dataset::loader::load_normalization(&project).unwrap() };
    let train = summary.train;
    let loader = DataLoaderBuilder::new(batcher).batch_size(4).shuffle(5).num_workers(2).set_device(Device::flex()).build(augmented);
    let mut seen = 0;
    for batch in loader.iter() {
        let batch = batch.unwrap();
        let b = batch.input.dims()[0];
        assert_eq!(batch.input.dims(), [b, 10, 64, 64]);
        assert_eq!(batch.label.dims(), [b, 6, 64, 64]);
        assert_eq!(batch.valid.dims(), [b, 1, 64, 64]);
        assert_eq!(batch.input.dtype(), burn::tensor::DType::F32);
        assert_eq!(batch.output_maps.len(), b);
        let v: Vec<f32> = batch.input.clone().try_into_vec_as::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "no NaN reaches the model");
        seen += b;
    }
    assert_eq!(seen, train);
}

#[test]
fn patches_cut_from_the_stacks_in_memory_equal_those_read_from_disk() {
    use s2cr::dataset::loader::ResidentStacks;
    let tmp = tempfile::tempdir().unwrap();
    let project = project_with_preprocessed(tmp.path());
    let cfg = config(&project, TileConfig { val_fraction: 0.2, test_fraction: 0.2, ..small_tiles() });
    dataset::build(&project, &cfg, &Progress::silent("dataset")).unwrap();
    let from_disk = PatchDataset::open(&project, Split::Train, Some(3)).unwrap();
    let needed = ResidentStacks::bytes_needed(&from_disk).unwrap();
    assert!(ResidentStacks::load_within(&from_disk, needed - 1).unwrap().is_none(), "a budget below the stacks' size keeps them on disk");
    let stacks = ResidentStacks::load_within(&from_disk, needed).unwrap().expect("the stacks fit their own size");
    assert_eq!(stacks.bytes() as u64, needed, "the estimate is what the stacks take");
    for split in [Split::Train, Split::Val, Split::Test] {
        let disk = PatchDataset::open(&project, split, Some(3)).unwrap();
        let memory = PatchDataset::open(&project, split, Some(3)).unwrap().holding(stacks.clone());
        assert!(memory.is_resident() && !disk.is_resident());
        assert!(!disk.patches().is_empty(), "{split:?} has patches");
        let mut invalid = 0;
        for i in 0..disk.patches().len() {
            let (a, b) = (disk.read(i).unwrap(), memory.read(i).unwrap());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.input), bits(&b.input), "{split:?} patch {i} input");
            assert_eq!(bits(&a.label), bits(&b.label), "{split:?} patch {i} label");
            assert_eq!(a.valid, b.valid, "{split:?} patch {i} validity");
            assert_eq!((a.patch_id, a.transform), (b.patch_id, b.transform));
            invalid += a.valid.iter().filter(|v| !**v).count();
        }
        println!("{split:?}: {} patches equal, {invalid} invalid pixels among them", disk.patches().len());
    }
}

#[test]
fn the_dataset_command_prints_counts_and_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let project = project_with_preprocessed(tmp.path());
    let out = assert_cmd::cargo::cargo_bin_cmd!("s2cr")
        .args(["--project", project.root().to_str().unwrap(), "dataset", "--patch", "64", "--min-valid", "0.5", "--split-block", "1", "--val", "0.2", "--test", "0.2", "--mask-channel"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("11 input channels") && out.contains("mask_t0"), "{out}");
    assert!(out.contains("patches of 64 x 64 px (stride 64): train"), "{out}");
    assert!(out.contains("S2_t1:B12") && out.contains("p98"), "{out}");
    let err = assert_cmd::cargo::cargo_bin_cmd!("s2cr")
        .args(["--project", project.root().to_str().unwrap(), "dataset", "--inputs", "S3_t0:VV"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8(err).unwrap().contains("is not a channel"));
}


/// The yearly S2 min/max from COG overviews over a loopback STAC API and range server. Two real
/// Earth Search items (their bbox and geometry moved onto the chips' place, their assets
/// rewritten to COGs of the real SEN12MS-CR chips): one cloud-free scene, one cloudy scene
/// whose SCL is SIMULATED (cloud where the blue DN exceeds 2000). Cloud never counts: a fully
/// cloudy second scene changes nothing; a partly cloudy one widens the range only within the
/// clear pixels' true range.
#[test]
fn yearly_min_max_reads_overviews_and_leaves_clouds_out() {
    use crate::cog_server::CogServer;
    use crate::stac_server::StacServer;
    use s2cr::dataset::yearly::yearly_min_max;
    let tmp = tempfile::tempdir().unwrap();
    let project = project_with_preprocessed(tmp.path());
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let cogs = CogServer::start(served.clone());
    let keys = [("blue", 2), ("green", 3), ("red", 4), ("nir", 8), ("swir16", 12), ("swir22", 13)];
    let blue_cloudy = raster::read_window(&chip("s2_cloudy"), &[2], None).unwrap();
    let write_scene = |name: &str, kind: &str, scl: &dyn Fn(usize) -> u8| {
        let dir = served.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (key, band) in keys {
            let ok = std::process::Command::new("gdal_translate").args(["-q", "-b", &band.to_string(), "-of", "COG", "-co", "OVERVIEWS=AUTO", "-co", "BLOCKSIZE=64"]).arg(chip(kind)).arg(dir.join(format!("{key}.tif"))).status().unwrap();
            assert!(ok.success());
        }
        let codes: Vec<u8> = (0..256 * 256).map(scl).collect();
        raster::write_classes(&dir.join("scl.tif"), &raster::ClassRaster { width: 256, height: 256, codes: &codes, geo_transform: blue_cloudy.geo_transform, crs_wkt: &blue_cloudy.crs_wkt, description: "SCL (simulated)", classes: &[(4, [0, 160, 0], "vegetation"), (9, [255, 255, 255], "cloud")] }).unwrap();
    };
    write_scene("clear", "s2_cloudfree", &|_| 4);
    write_scene("partly", "s2_cloudy", &|i| if blue_cloudy.bands[0][i] > 2000.0 { 9 } else { 4 });
    write_scene("overcast", "s2_cloudy", &|_| 9);
    let collection: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(shared_data().join("stac/rustac/crates_server_data_sentinel-2_item-collection_earth-search-c1.json")).unwrap()).unwrap();
    let b = project.aoi().unwrap().bbox();
    let item = |i: usize, name: &str| {
        let mut f = collection["features"][i].clone();
        f["bbox"] = serde_json::json!([b[0] - 0.01, b[1] - 0.01, b[2] + 0.01, b[3] + 0.01]);
        f["geometry"] = serde_json::json!({"type": "Polygon", "coordinates": [[[b[0] - 0.01, b[1] - 0.01], [b[2] + 0.01, b[1] - 0.01], [b[2] + 0.01, b[3] + 0.01], [b[0] - 0.01, b[3] + 0.01], [b[0] - 0.01, b[1] - 0.01]]]});
        for key in keys.iter().map(|k| k.0).chain(["scl"]) {
            f["assets"][key]["href"] = serde_json::json!(format!("{}/{name}/{key}.tif", cogs.url));
        }
        f
    };
    let run = |items: Vec<serde_json::Value>| {
        let stac = StacServer::start(items);
        let mut search: SearchResult = serde_json::from_str(&std::fs::read_to_string(project.catalog_dir().join("search.json")).unwrap()).unwrap();
        let mut provider = s2cr::catalog::ProviderConfig::default_for(s2cr::catalog::ProviderKind::EarthSearch);
        provider.stac_url = stac.url.clone();
        provider.s2_collection = "sentinel-2-c1-l2a".into();
        search.provider = Some(provider);
        std::fs::write(project.catalog_dir().join("search.json"), serde_json::to_string(&search).unwrap()).unwrap();
        let bands: Vec<String> = ["B02", "B04", "B12"].iter().map(|s| s.to_string()).collect();
        yearly_min_max(&project, "2024-04-01/2024-04-30", &bands, &Progress::silent("dataset")).unwrap()
    };
    let clear = run(vec![item(4, "clear")]);
    assert_eq!(clear.scenes.len(), 1);
    let with_overcast = run(vec![item(4, "clear"), item(3, "overcast")]);
    assert_eq!(with_overcast.bands, clear.bands, "a fully cloudy scene adds nothing");
    assert_eq!(with_overcast.scenes.len(), 1);
    let with_partly = run(vec![item(4, "clear"), item(3, "partly")]);
    assert_eq!(with_partly.scenes.len(), 2);
    // The true range of clear pixels at full resolution (baseline 05.10: DN - 1000, / 10000).
    let cf = raster::read_window(&chip("s2_cloudfree"), &[2], None).unwrap();
    let clear_dn: Vec<f32> = cf.bands[0].iter().copied().chain(blue_cloudy.bands[0].iter().copied().filter(|v| *v <= 2000.0)).collect();
    let (lo, hi) = (clear_dn.iter().copied().fold(f32::INFINITY, f32::min), clear_dn.iter().copied().fold(f32::NEG_INFINITY, f32::max));
    let (lo, hi) = ((lo - 1000.0) / 10000.0, (hi - 1000.0) / 10000.0);
    let b02 = &with_partly.bands[0];
    let b02_clear = &clear.bands[0];
    println!("yearly B02: clear scene {:.4}..{:.4}, both scenes {:.4}..{:.4}, true clear range {lo:.4}..{hi:.4}", b02_clear.min, b02_clear.max, b02.min, b02.max);
    assert!(b02.min <= b02_clear.min && b02.max >= b02_clear.max);
    assert!(b02.min >= lo - 1e-6 && b02.max <= hi + 1e-6, "within the clear pixels' range");
    assert!(b02.samples > clear.bands[0].samples);
    // The dataset stage stores it and the yearly method uses it.
    let cfg = DatasetConfig { s2_method: S2Method::Yearly, yearly_range: Some("2024-04-01/2024-04-30".into()), ..config(&project, small_tiles()) };
    let err = dataset::build(&project, &DatasetConfig { yearly_range: None, ..cfg.clone() }, &Progress::silent("dataset")).unwrap_err().to_string();
    assert!(err.contains("--yearly"), "{err}");
    let _server = StacServer::start(vec![item(4, "clear"), item(3, "partly")]);
    let mut search: SearchResult = serde_json::from_str(&std::fs::read_to_string(project.catalog_dir().join("search.json")).unwrap()).unwrap();
    search.provider.as_mut().unwrap().stac_url = _server.url.clone();
    std::fs::write(project.catalog_dir().join("search.json"), serde_json::to_string(&search).unwrap()).unwrap();
    dataset::build(&project, &cfg, &Progress::silent("dataset")).unwrap();
    let n = s2cr::dataset::loader::load_normalization(&project).unwrap();
    let b02_input = n.inputs.iter().find(|c| c.name == "S2_t0:B02").unwrap();
    assert_eq!(b02_input.yearly, Some((b02.min, b02.max)));
    assert!(project.dataset_dir().join("yearly.json").is_file());
}
