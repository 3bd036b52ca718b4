//! `project.yaml`: the project's configuration, read strictly (unknown keys and bad values name
//! their line), and the small value types it is made of (date ranges, providers, bands).

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::aoi::Aoi;
use crate::error::{Error, Result};
use crate::grid::TargetGrid;

/// Version of the `project.yaml` schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Sentinel-2 L2A band names the pipeline knows.
pub const S2_BANDS: &[&str] = &["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL", "AOT"];

/// Whether a Sentinel-2 band is a reflectance band (not the scene classification or the
/// aerosol optical thickness, which only make masks).
pub fn is_reflectance_band(band: &str) -> bool {
    band != "SCL" && band != "AOT"
}
/// Sentinel-1 polarisations.
pub const S1_BANDS: &[&str] = &["VV", "VH", "HH", "HV"];

/// A closed range of dates, written `2019-11-01/2019-12-31` (as STAC datetime intervals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl std::str::FromStr for DateRange {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, b) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not a date range; write it as FROM/TO, e.g. 2019-11-01/2019-12-31"))?;
        let parse = |d: &str| {
            NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|e| format!("'{}' is not a date YYYY-MM-DD: {e}", d.trim()))
        };
        let (from, to) = (parse(a)?, parse(b)?);
        if to < from {
            return Err(format!("'{s}' ends before it starts"));
        }
        Ok(DateRange { from, to })
    }
}

impl std::fmt::Display for DateRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.from, self.to)
    }
}

impl Serialize for DateRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DateRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where scenes are searched and fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// Element 84's Earth Search v1 (anonymous).
    #[default]
    EarthSearch,
    /// Microsoft Planetary Computer (signed asset URLs).
    PlanetaryComputer,
    /// Copernicus Data Space Ecosystem (downloads need a token).
    Cdse,
    /// A static STAC catalog on disk (the embedded demo).
    Local,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::EarthSearch => "earth-search",
            Provider::PlanetaryComputer => "planetary-computer",
            Provider::Cdse => "cdse",
            Provider::Local => "local",
        })
    }
}

/// Bands used by the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    #[serde(default = "default_s2_bands")]
    pub s2: Vec<String>,
    #[serde(default = "default_s1_bands")]
    pub s1: Vec<String>,
}

impl Default for Bands {
    fn default() -> Self {
        Bands { s2: default_s2_bands(), s1: default_s1_bands() }
    }
}

fn default_s2_bands() -> Vec<String> {
    ["B02", "B03", "B04", "B08", "B8A", "B11", "B12", "SCL"].map(String::from).to_vec()
}

fn default_s1_bands() -> Vec<String> {
    ["VV", "VH"].map(String::from).to_vec()
}

fn default_max_cloud() -> f64 {
    20.0
}

/// `project.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    pub schema_version: u32,
    pub name: String,
    /// The AOI file, relative to the project folder.
    pub aoi: PathBuf,
    /// Reference date range (before the change; pre-fire).
    pub t0: DateRange,
    /// Target date range (the image to synthesize; post-fire).
    pub t1: DateRange,
    #[serde(default)]
    pub provider: Provider,
    /// Largest cloud cover over the AOI, percent.
    #[serde(default = "default_max_cloud")]
    pub max_cloud_percent: f64,
    #[serde(default)]
    pub bands: Bands,
    /// The common 10 m grid every preprocessed raster lands on.
    pub grid: TargetGrid,
    /// Model configuration (model.yaml), relative to the project; built-in defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_config: Option<PathBuf>,
    /// Training configuration (train.yaml), relative to the project; built-in defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_config: Option<PathBuf>,
    /// The static STAC catalog (catalog.json) the `local` provider searches, relative to the
    /// project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<PathBuf>,
    /// Collections to search instead of the provider's usual ones (for example Earth Search's
    /// `sentinel-2-c1-l2a`, or a static catalog's `sentinel-2-l1c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<Collections>,
    /// An official fire perimeter (any vector file GDAL/OGR reads), relative to the project or
    /// absolute: the assessment compares both burned maps with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_perimeter: Option<PathBuf>,
    /// The openEO back-end of the preprocess stage's openEO engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openeo: Option<super::openeo::OpenEoSettings>,
    /// Composites of each date window's other clear acquisitions (absent: none, as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite: Option<CompositeConfig>,
}

/// How a date window's clear observations become one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CompositeMethod {
    /// No composite.
    #[default]
    Off,
    /// Per band, the median of the clear values.
    Median,
    /// The latest clear observation.
    LatestClear,
}

impl CompositeMethod {
    pub fn name(self) -> &'static str {
        match self {
            CompositeMethod::Off => "off",
            CompositeMethod::Median => "median",
            CompositeMethod::LatestClear => "latest-clear",
        }
    }
}

/// `composite:` in project.yaml: besides the chosen t0 and t1 scenes, search, fetch and
/// preprocess keep up to `max_scenes` other acceptable Sentinel-2 acquisitions of each window
/// whose method is not `off`, and preprocessing composites them per pixel
/// (`preprocessed/composite-t0|t1/S2.tif`). The t1 composite is the assessment's post-fire
/// composite baseline and fills the gap-filled image where t1 is cloudy; the t0 composite fills
/// the pre-fire image of the dNBR where the chosen t0 is cloudy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositeConfig {
    #[serde(default)]
    pub t0: CompositeMethod,
    #[serde(default)]
    pub t1: CompositeMethod,
    /// Most acquisitions kept per window besides the chosen one (the clearest over the AOI).
    #[serde(default = "default_composite_scenes")]
    pub max_scenes: usize,
}

fn default_composite_scenes() -> usize {
    8
}

impl CompositeConfig {
    /// The method of a window (`t1` false: t0).
    pub fn method(&self, t1: bool) -> CompositeMethod {
        if t1 { self.t1 } else { self.t0 }
    }
}

/// The STAC collections that hold a provider's Sentinel-2 and Sentinel-1 scenes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collections {
    pub s2: String,
    pub s1: String,
}

impl ProjectConfig {
    /// A new project's configuration for an AOI: its UTM grid at `pixel_size_m`, default bands,
    /// built-in model and training settings. Checks that t1 starts after t0 ends and that the
    /// cloud limit is a percentage.
    pub fn for_aoi(name: &str, aoi: &Aoi, t0: DateRange, t1: DateRange, provider: Provider, max_cloud_percent: f64, pixel_size_m: f64) -> Result<ProjectConfig> {
        if t0.to >= t1.from {
            return Err(Error::invalid("t1", format!("{t1} must start after t0 ({t0}) ends")));
        }
        if !(0.0..=100.0).contains(&max_cloud_percent) {
            return Err(Error::invalid("max_cloud_percent", format!("{max_cloud_percent} is not a percentage 0..100")));
        }
        Ok(ProjectConfig {
            schema_version: SCHEMA_VERSION,
            name: name.to_string(),
            aoi: PathBuf::from(super::paths::AOI_FILE),
            t0,
            t1,
            provider,
            max_cloud_percent,
            bands: Bands::default(),
            grid: aoi.target_grid(pixel_size_m)?,
            model_config: None,
            train_config: None,
            catalog: None,
            collections: None,
            openeo: None,
            reference_perimeter: None,
            composite: None,
        })
    }

    /// Parses `project.yaml` text; every error names the file, line and field.
    pub fn parse(text: &str, path: &Path) -> Result<ProjectConfig> {
        let config: ProjectConfig = serde_norway::from_str(text).map_err(|e| Error::yaml(path, text, e))?;
        config.check(text, path)?;
        Ok(config)
    }

    /// Checks the values that parse but make no sense.
    fn check(&self, text: &str, path: &Path) -> Result<()> {
        let fail = |key: &str, message: String| {
            let (line, column) = locate_key(text, key);
            Err(Error::Yaml { path: path.to_path_buf(), line, column, message: format!("{key}: {message}"), source: None })
        };
        if self.schema_version != SCHEMA_VERSION {
            return fail(
                "schema_version",
                format!("this version of s2cr reads schema {SCHEMA_VERSION}, the file says {}", self.schema_version),
            );
        }
        if self.t0.to >= self.t1.from {
            return fail("t1", format!("t1 ({}) must start after t0 ({}) ends", self.t1, self.t0));
        }
        if !(0.0..=100.0).contains(&self.max_cloud_percent) {
            return fail("max_cloud_percent", format!("{} is not a percentage 0..100", self.max_cloud_percent));
        }
        if let Some(b) = self.bands.s2.iter().find(|b| !S2_BANDS.contains(&b.as_str())) {
            return fail("s2", format!("unknown Sentinel-2 band '{b}'; known: {}", S2_BANDS.join(", ")));
        }
        if let Some(b) = self.bands.s1.iter().find(|b| !S1_BANDS.contains(&b.as_str())) {
            return fail("s1", format!("unknown Sentinel-1 polarisation '{b}'; known: {}", S1_BANDS.join(", ")));
        }
        if let Some(Err(m)) = self.openeo.as_ref().map(|o| o.check()) {
            return fail("openeo", m);
        }
        if let Some(c) = &self.composite
            && !(1..=64).contains(&c.max_scenes)
        {
            return fail("max_scenes", format!("{} acquisitions per window: give 1 to 64", c.max_scenes));
        }
        if let Err(m) = self.grid.check() {
            return fail("grid", format!("{m}; run `s2cr init` again to recompute it from the AOI"));
        }
        if self.name.trim().is_empty() {
            return fail("name", "the project needs a name".into());
        }
        Ok(())
    }
}

/// (line, column), 1-based, of the first `key:` in YAML text; (0, 0) when absent.
fn locate_key(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':')) {
            return (i + 1, line.len() - trimmed.len() + 1);
        }
    }
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml() -> String {
        "schema_version: 1\nname: ki-west\naoi: aoi.geojson\nt0: 2019-11-01/2019-12-31\nt1: 2020-01-10/2020-02-28\n\
         grid:\n  epsg: 32753\n  pixel_size_m: 10.0\n  x_min: 600000.0\n  y_max: 6040020.0\n  width: 100\n  height: 80\n"
            .to_string()
    }

    #[test]
    fn a_minimal_config_gets_defaults() {
        let c = ProjectConfig::parse(&yaml(), Path::new("p.yaml")).unwrap();
        assert_eq!(c.provider, Provider::EarthSearch);
        assert_eq!(c.bands.s1, vec!["VV", "VH"]);
        assert_eq!(c.t0.to, NaiveDate::from_ymd_opt(2019, 12, 31).unwrap());
    }

    #[test]
    fn a_typo_in_a_key_names_line_and_key() {
        let text = yaml().replace("t1:", "t1:") + "max_cloud_percnt: 10\n";
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.starts_with("p.yaml: line 13, column 1:"), "{err}");
        assert!(err.contains("unknown field `max_cloud_percnt`"), "{err}");
    }

    #[test]
    fn bad_values_name_their_line() {
        let text = yaml().replace("t1: 2020-01-10/2020-02-28", "t1: 2020-01-10/2020-13-28");
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("2020-13-28"), "{err}");
        let text = yaml().replace("t1: 2020-01-10/2020-02-28", "t1: 2019-12-01/2020-02-28");
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("must start after t0"), "{err}");
        let text = yaml() + "bands:\n  s2: [B04, B13]\n";
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 14") && err.contains("unknown Sentinel-2 band 'B13'"), "{err}");
        let text = yaml() + "provider: google\n";
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 13") && err.contains("unknown variant `google`"), "{err}");
    }

    #[test]
    fn composites_are_off_unless_asked_and_checked() {
        let c = ProjectConfig::parse(&yaml(), Path::new("p.yaml")).unwrap();
        assert_eq!(c.composite, None);
        assert!(!serde_norway::to_string(&c).unwrap().contains("composite"));
        let c = ProjectConfig::parse(&(yaml() + "composite:\n  t1: median\n"), Path::new("p.yaml")).unwrap();
        assert_eq!(c.composite, Some(CompositeConfig { t0: CompositeMethod::Off, t1: CompositeMethod::Median, max_scenes: 8 }));
        let err = ProjectConfig::parse(&(yaml() + "composite:\n  t1: mean\n"), Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 14") && err.contains("latest-clear"), "{err}");
        let err = ProjectConfig::parse(&(yaml() + "composite:\n  t0: latest-clear\n  max_scenes: 0\n"), Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("line 15") && err.contains("1 to 64"), "{err}");
    }

    #[test]
    fn an_absurd_grid_is_refused_before_any_stage_allocates_for_it() {
        for (w, h) in [("2000000", "80"), ("50000", "50000"), ("0", "80")] {
            let text = yaml().replace("width: 100", &format!("width: {w}")).replace("height: 80", &format!("height: {h}"));
            let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
            assert!(err.contains("grid") && (err.contains("larger than this program handles") || err.contains("empty")), "{err}");
        }
        let text = yaml().replace("pixel_size_m: 10.0", "pixel_size_m: .nan");
        let err = ProjectConfig::parse(&text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("pixel_size_m"), "{err}");
    }
}
