//! The ESA SNAP engine: the research code's processing graphs (snap-confs/, embedded in the
//! binary) run by SNAP's `gpt` with the project's parameters passed as `-P` arguments, which gpt
//! substitutes for the graphs' `${...}` placeholders.
//!
//! SNAP is not bundled: without `gpt` the error says how to install it or to use the native
//! engine.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::job::Progress;
use crate::grid::TargetGrid;

/// The graphs of snap-confs/.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapGraph {
    /// Orbit, subset, sigma0, Refined Lee, terrain correction.
    Sentinel1V1,
    /// v1 plus thermal and border noise removal, dB.
    Sentinel1V2,
    /// v2 with terrain correction onto the Sentinel-2 grid.
    Sentinel1V3,
    /// Resample to 10 m, subset.
    Sentinel2,
}

impl SnapGraph {
    pub fn file_name(self) -> &'static str {
        match self {
            SnapGraph::Sentinel1V1 => "calibrate_sent1.xml",
            SnapGraph::Sentinel1V2 => "calibrate_sent1_v2.xml",
            SnapGraph::Sentinel1V3 => "calibrate_sent1_v3.xml",
            SnapGraph::Sentinel2 => "calibrate_sent2.xml",
        }
    }

    pub fn template(self) -> &'static str {
        match self {
            SnapGraph::Sentinel1V1 => include_str!("../../snap-confs/calibrate_sent1.xml"),
            SnapGraph::Sentinel1V2 => include_str!("../../snap-confs/calibrate_sent1_v2.xml"),
            SnapGraph::Sentinel1V3 => include_str!("../../snap-confs/calibrate_sent1_v3.xml"),
            SnapGraph::Sentinel2 => include_str!("../../snap-confs/calibrate_sent2.xml"),
        }
    }

    pub fn is_sentinel1(self) -> bool {
        self != SnapGraph::Sentinel2
    }
}

/// What a graph run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapParams {
    /// The product: a SAFE folder or zip (its manifest.safe).
    pub input: PathBuf,
    /// GeoTIFF to write.
    pub output: PathBuf,
    /// The AOI as one WKT polygon (Subset's geoRegion).
    pub geo_region_wkt: String,
    pub grid: TargetGrid,
    /// e.g. ["VV", "VH"] (Sentinel-1) .
    pub polarisations: Vec<String>,
    /// Sentinel-2 bands to keep, e.g. ["B2", "B3", "B4", "B8"] (SNAP's names).
    pub s2_bands: Vec<String>,
}

/// The `-Pname=value` arguments for a graph, one per placeholder it uses.
pub fn gpt_parameters(graph: SnapGraph, p: &SnapParams) -> Vec<String> {
    let mut args = vec![
        format!("-Pinput={}", p.input.display()),
        format!("-Poutput={}", p.output.display()),
        format!("-PgeoRegion={}", p.geo_region_wkt),
    ];
    if graph.is_sentinel1() {
        args.push(format!("-Ppolarisations={}", p.polarisations.join(",")));
        args.push(format!("-PpixelSpacing={}", p.grid.pixel_size_m));
        args.push(format!("-PmapProjection=EPSG:{}", p.grid.epsg));
    } else {
        args.push(format!("-Pbands={}", p.s2_bands.join(",")));
    }
    if graph == SnapGraph::Sentinel1V3 {
        args.push(format!("-PgridOriginX={}", p.grid.x_min));
        args.push(format!("-PgridOriginY={}", p.grid.y_max));
    }
    args
}

/// The gpt executable: `configured`, else `gpt` on the PATH, else SNAP's default install place.
pub fn find_gpt(configured: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = configured {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        return Err(Error::invalid("gpt", format!("{} does not exist", p.display())));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join("gpt")).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join("esa-snap/bin/gpt"));
    }
    candidates.push(PathBuf::from("/opt/esa-snap/bin/gpt"));
    candidates.into_iter().find(|c| c.is_file()).ok_or_else(|| {
        Error::invalid(
            "gpt",
            "ESA SNAP's gpt was not found on the PATH or in ~/esa-snap/bin: install SNAP from https://step.esa.int \
             (and put snap/bin on the PATH or give its path), or use the native engine",
        )
    })
}

/// Writes the graph next to the output (for the record) and runs gpt on it. The output appears
/// under its name only when gpt succeeded.
pub fn run_graph(gpt: &Path, graph: SnapGraph, params: &SnapParams, progress: &Progress) -> Result<()> {
    let dir = params.output.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir, "creating the output folder"))?;
    let graph_path = dir.join(graph.file_name());
    crate::fsutil::write_atomic(&graph_path, graph.template().as_bytes())?;
    let tmp = crate::fsutil::temp_sibling(&params.output);
    let mut with_tmp = params.clone();
    with_tmp.output = tmp.clone();
    progress.info(format!("running {} {}", gpt.display(), graph_path.display()));
    let output = Command::new(gpt)
        .arg(&graph_path)
        .args(gpt_parameters(graph, &with_tmp))
        .output()
        .map_err(Error::io(gpt, "starting SNAP's gpt"))?;
    if !output.status.success() || !tmp.is_file() {
        let _ = std::fs::remove_file(&tmp);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(Error::invalid(
            "gpt",
            format!("{} on {} failed ({}): {}", graph.file_name(), params.input.display(), output.status, tail.join(" | ")),
        ));
    }
    std::fs::rename(&tmp, &params.output).map_err(Error::io(&params.output, "moving gpt's output into place"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (node id, operator) in document order.
    fn operators(xml: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        doc.descendants().filter(|n| n.has_tag_name("operator")).map(|n| n.text().unwrap_or("").to_string()).collect()
    }

    fn placeholders(xml: &str) -> Vec<String> {
        let mut out: Vec<String> = xml.split("${").skip(1).filter_map(|s| s.split('}').next()).map(String::from).collect();
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn the_graphs_are_valid_xml_with_the_research_operators_in_order() {
        assert_eq!(
            operators(SnapGraph::Sentinel1V1.template()),
            ["Read", "Apply-Orbit-File", "Subset", "Calibration", "Speckle-Filter", "Terrain-Correction", "Write"]
        );
        let v2 = ["Read", "Apply-Orbit-File", "Subset", "ThermalNoiseRemoval", "Remove-GRD-Border-Noise", "Calibration", "Speckle-Filter", "Terrain-Correction", "LinearToFromdB", "Write"];
        assert_eq!(operators(SnapGraph::Sentinel1V2.template()), v2);
        assert_eq!(operators(SnapGraph::Sentinel1V3.template()), v2);
        assert!(SnapGraph::Sentinel1V3.template().contains("<alignToStandardGrid>true</alignToStandardGrid>"));
        assert_eq!(operators(SnapGraph::Sentinel2.template()), ["Read", "Resample", "Subset", "Write"]);
        assert!(SnapGraph::Sentinel1V1.template().contains("<filter>Refined Lee</filter>"));
    }

    #[test]
    fn every_placeholder_gets_a_parameter_and_no_parameter_is_unused() {
        let params = SnapParams {
            input: "/d/S1.SAFE".into(),
            output: "/o/s1.tif".into(),
            geo_region_wkt: "POLYGON ((0 0, 1 0, 1 1, 0 0))".into(),
            grid: TargetGrid { epsg: 32753, pixel_size_m: 10.0, x_min: 640440.0, y_max: 6041580.0, width: 10, height: 10 },
            polarisations: vec!["VV".into(), "VH".into()],
            s2_bands: vec!["B2".into(), "B8".into()],
        };
        for graph in [SnapGraph::Sentinel1V1, SnapGraph::Sentinel1V2, SnapGraph::Sentinel1V3, SnapGraph::Sentinel2] {
            let mut given: Vec<String> = gpt_parameters(graph, &params).iter().map(|a| a[2..].split('=').next().unwrap().to_string()).collect();
            given.sort();
            assert_eq!(given, placeholders(graph.template()), "{graph:?}");
        }
        let v3 = gpt_parameters(SnapGraph::Sentinel1V3, &params);
        assert!(v3.contains(&"-PmapProjection=EPSG:32753".to_string()) && v3.contains(&"-PgridOriginX=640440".to_string()));
    }

    #[test]
    fn a_missing_gpt_says_how_to_get_one() {
        let err = find_gpt(Some(Path::new("/nowhere/gpt"))).unwrap_err().to_string();
        assert!(err.contains("/nowhere/gpt does not exist"), "{err}");
    }
}
