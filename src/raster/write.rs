//! Writing rasters atomically: band stacks as GeoTIFF or COG (Float32 or UInt16), block by block
//! on a grid ([`BlockWriter`]), class maps with colour tables, and mask outlines as GeoJSON.

use std::ffi::{CString, c_char};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;

use gdal::raster::{Buffer, RasterCreationOptions};
use gdal::{Dataset, DriverManager, Metadata};

use super::env::init_gdal;
use super::read::open;
use super::{BandStack, Compression, WriteOptions};
use crate::error::{Error, Result};
use crate::fsutil::{ensure_parent, temp_sibling};
use crate::grid::TargetGrid;

/// Renames a finished temporary file onto its final name, removing it on failure.
/// GDAL's side-car file (category names, statistics) travels with it: the old side-car goes
/// first, then the raster, then the new side-car, so a crash in between never pairs a new
/// raster with an old side-car (at worst the new raster lacks its category names).
pub(super) fn commit(tmp: &Path, path: &Path) -> Result<()> {
    let aux = |p: &Path| PathBuf::from(format!("{}.aux.xml", p.display()));
    match std::fs::remove_file(aux(path)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::Io { path: aux(path), action: "removing the old side-car file", source: e }),
    }
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        let _ = std::fs::remove_file(aux(tmp));
        Error::Io { path: path.to_path_buf(), action: "moving the finished file into place", source: e }
    })?;
    if aux(tmp).exists() {
        std::fs::rename(aux(tmp), aux(path)).map_err(Error::io(aux(path), "moving the side-car file into place"))?;
    }
    Ok(())
}

/// Writes a band stack as a GeoTIFF or COG (Float32), with nodata where the stack is invalid
/// and the band descriptions. The file appears under its name only when complete.
pub fn write_raster(path: &Path, stack: &BandStack, options: &WriteOptions) -> Result<()> {
    write_typed(path, stack, options, options.nodata, |v| v)
}

/// Like [`write_raster`], as UInt16 (digital numbers such as Sentinel-2's reflectance x 10000):
/// values are rounded and clamped to 0..=65535, and pixels that are not valid get `nodata`.
pub fn write_raster_u16(path: &Path, stack: &BandStack, options: &WriteOptions, nodata: u16) -> Result<()> {
    write_typed(path, stack, options, nodata, |v| v.round().clamp(0.0, 65535.0) as u16)
}

fn write_typed<T: gdal::raster::GdalType + Copy>(path: &Path, stack: &BandStack, options: &WriteOptions, nodata: T, convert: impl Fn(f32) -> T) -> Result<()>
where
    f64: From<T>,
{
    init_gdal();
    let loc = path.display().to_string();
    if stack.bands.is_empty() || stack.bands.iter().any(|b| b.len() != stack.width * stack.height) {
        return Err(Error::Raster { location: loc, message: "band sizes do not match the stack's width x height".into() });
    }
    ensure_parent(path)?;
    let mem = DriverManager::get_driver_by_name("MEM").map_err(Error::gdal("MEM", "loading GDAL's memory driver"))?;
    let mut ds = mem
        .create_with_band_type::<T, _>("", stack.width, stack.height, stack.bands.len())
        .map_err(Error::gdal(&loc, "creating the in-memory raster"))?;
    ds.set_geo_transform(&stack.geo_transform).map_err(Error::gdal(&loc, "setting the geotransform"))?;
    if !stack.crs_wkt.is_empty() {
        ds.set_projection(&stack.crs_wkt).map_err(Error::gdal(&loc, "setting the CRS"))?;
    }
    for (i, values) in stack.bands.iter().enumerate() {
        let mut band = ds.rasterband(i + 1).map_err(Error::gdal(&loc, "opening a band"))?;
        let data: Vec<T> = values.iter().zip(&stack.valid).map(|(v, ok)| if *ok { convert(*v) } else { nodata }).collect();
        let mut buf = Buffer::new((stack.width, stack.height), data);
        band.write((0, 0), (stack.width, stack.height), &mut buf).map_err(Error::gdal(&loc, "writing pixels"))?;
        band.set_no_data_value(Some(f64::from(nodata))).map_err(Error::gdal(&loc, "setting nodata"))?;
        if let Some(d) = stack.descriptions.get(i).filter(|d| !d.is_empty()) {
            band.set_description(d).map_err(Error::gdal(&loc, "setting a band description"))?;
        }
    }
    translate_to_file(&ds, path, options)
}

/// Copies an open dataset to `path` as GeoTIFF or COG, atomically.
fn translate_to_file(ds: &Dataset, path: &Path, options: &WriteOptions) -> Result<()> {
    let loc = path.display().to_string();
    let compress = match options.compression {
        Compression::None => "NONE",
        Compression::Lzw => "LZW",
        Compression::Deflate => "DEFLATE",
        Compression::Zstd => "ZSTD",
    };
    let driver_name = if options.cog { "COG" } else { "GTiff" };
    let driver = DriverManager::get_driver_by_name(driver_name).map_err(Error::gdal(driver_name, "loading the GDAL driver"))?;
    // Blocks compressed on every core (GDAL's worker threads; the file is the same).
    let mut opts = vec![format!("COMPRESS={compress}"), "BIGTIFF=IF_SAFER".to_string(), "NUM_THREADS=ALL_CPUS".to_string()];
    if compress != "NONE" {
        // Predictors shrink smooth rasters: floating-point (3) for reflectance and backscatter,
        // horizontal differencing (2) for integers; none for class maps (Byte).
        let band_type = ds.rasterband(1).map(|b| b.band_type().name()).unwrap_or_default();
        match band_type.as_str() {
            "Float32" | "Float64" => opts.push("PREDICTOR=3".into()),
            "Byte" => {}
            _ => opts.push("PREDICTOR=2".into()),
        }
    }
    if !options.cog {
        opts.push("TILED=YES".into());
    }
    let creation = RasterCreationOptions::from_iter(opts.iter().map(String::as_str));
    let tmp = temp_sibling(path);
    // The attribution rides on an in-memory VRT of the source (the source itself stays as it is).
    let with_copyright = match (&options.copyright, &options.software) {
        (None, None) => None,
        (copyright, software) => {
            use gdal::Metadata;
            let vrt = DriverManager::get_driver_by_name("VRT").map_err(Error::gdal("VRT", "loading the GDAL driver"))?;
            let mut v = ds.create_copy(&vrt, "", &RasterCreationOptions::new()).map_err(Error::gdal(&loc, "copying for the attribution"))?;
            for (key, text) in [("TIFFTAG_COPYRIGHT", copyright), ("TIFFTAG_SOFTWARE", software)] {
                if let Some(text) = text {
                    v.set_metadata_item(key, text, "").map_err(Error::gdal(&loc, "setting the attribution and provenance"))?;
                }
            }
            Some(v)
        }
    };
    let ds = with_copyright.as_ref().unwrap_or(ds);
    let written = ds.create_copy(&driver, &tmp, &creation).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Gdal { location: loc.clone(), action: format!("writing a {driver_name}"), source: e }
    })?;
    drop(written);
    commit(&tmp, path)
}

/// Writes a Float32 raster on a target grid block by block (so no stage needs a whole scene in
/// memory), then turns it into a COG under its final name.
pub struct BlockWriter {
    ds: Option<Dataset>,
    tmp: PathBuf,
    path: PathBuf,
    width: usize,
    height: usize,
    /// Write a COG on finish; otherwise the tiled GeoTIFF itself takes the final name.
    cog: bool,
}

/// Writes the attribution and provenance into a dataset's TIFF tags (copyright, software).
fn set_tags(ds: &mut Option<Dataset>, path: &Path, tags: &super::Tags) -> Result<()> {
    use gdal::Metadata;
    let Some(ds) = ds.as_mut() else { return Ok(()) };
    for (key, value) in [("TIFFTAG_COPYRIGHT", &tags.attribution), ("TIFFTAG_SOFTWARE", &tags.provenance)] {
        if !value.is_empty() {
            ds.set_metadata_item(key, value, "").map_err(Error::gdal(path.display(), "setting the attribution and provenance"))?;
        }
    }
    Ok(())
}

impl BlockWriter {
    /// The file will say whose data it holds and what made it (TIFF copyright and software).
    pub fn tag(&mut self, tags: &super::Tags) -> Result<()> {
        set_tags(&mut self.ds, &self.path, tags)
    }

    pub fn create(path: &Path, grid: &TargetGrid, band_names: &[String], nodata: f32) -> Result<BlockWriter> {
        init_gdal();
        let srs = gdal::spatial_ref::SpatialRef::from_epsg(grid.epsg).map_err(Error::gdal(path.display(), "creating the grid CRS"))?;
        let wkt = srs.to_wkt().map_err(Error::gdal(path.display(), "writing the grid CRS"))?;
        Self::create_on(path, grid.width, grid.height, grid.geo_transform(), &wkt, band_names, nodata, 256)
    }

    /// Like [`BlockWriter::create`] on any north-up grid: `width` x `height` pixels with this
    /// geotransform and CRS (WKT; empty for none), in tiles `block_rows` high (best the height of
    /// the strips written).
    #[allow(clippy::too_many_arguments)]
    pub fn create_on(
        path: &Path,
        width: usize,
        height: usize,
        geo_transform: [f64; 6],
        crs_wkt: &str,
        band_names: &[String],
        nodata: f32,
        block_rows: usize,
    ) -> Result<BlockWriter> {
        init_gdal();
        let loc = path.display().to_string();
        ensure_parent(path)?;
        let tmp = temp_sibling(&path.with_extension("blocks.tif"));
        let ds = create_tiled::<f32>(&tmp, &loc, width, height, band_names.len(), block_rows, geo_transform, crs_wkt)?;
        // From here on the writer's Drop removes the temporary file, whatever fails.
        let writer = BlockWriter { ds: Some(ds), tmp, path: path.to_path_buf(), width, height, cog: true };
        if let Some(ds) = &writer.ds {
            for (i, name) in band_names.iter().enumerate() {
                let mut band = ds.rasterband(i + 1).map_err(Error::gdal(&loc, "opening a band"))?;
                band.set_no_data_value(Some(nodata as f64)).map_err(Error::gdal(&loc, "setting nodata"))?;
                band.set_description(name).map_err(Error::gdal(&loc, "setting a band description"))?;
            }
        }
        Ok(writer)
    }

    /// A Float32 raster in the geometry of `like` (same size, its GCPs or geotransform and CRS),
    /// e.g. calibrated radar values in the geometry of a GRD window, written as a tiled GeoTIFF.
    pub fn create_like(path: &Path, like: &str, band_names: &[String], nodata: f32) -> Result<BlockWriter> {
        init_gdal();
        let loc = path.display().to_string();
        let src = open(like)?;
        let (width, height) = src.raster_size();
        ensure_parent(path)?;
        let tmp = temp_sibling(path);
        let driver = DriverManager::get_driver_by_name("GTiff").map_err(Error::gdal("GTiff", "loading the GDAL driver"))?;
        let options = RasterCreationOptions::from_iter(["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"]);
        let mut ds = driver
            .create_with_band_type_with_options::<f32, _>(&tmp, width, height, band_names.len(), &options)
            .map_err(Error::gdal(&loc, "creating the output raster"))?;
        if let Some(srs) = src.gcp_spatial_ref() {
            let gcps: Vec<gdal::Gcp> = src
                .gcps()
                .iter()
                .map(|g| gdal::Gcp { id: g.id(), info: g.info(), pixel: g.pixel(), line: g.line(), x: g.x(), y: g.y(), z: g.z() })
                .collect();
            ds.set_gcps(gcps, &srs).map_err(Error::gdal(&loc, "copying the GCPs"))?;
        } else {
            let gt = src.geo_transform().map_err(Error::gdal(like, "reading the geotransform"))?;
            ds.set_geo_transform(&gt).map_err(Error::gdal(&loc, "setting the geotransform"))?;
            if let Ok(srs) = src.spatial_ref() {
                ds.set_spatial_ref(&srs).map_err(Error::gdal(&loc, "setting the CRS"))?;
            }
        }
        for (i, name) in band_names.iter().enumerate() {
            let mut band = ds.rasterband(i + 1).map_err(Error::gdal(&loc, "opening a band"))?;
            band.set_no_data_value(Some(nodata as f64)).map_err(Error::gdal(&loc, "setting nodata"))?;
            band.set_description(name).map_err(Error::gdal(&loc, "setting a band description"))?;
        }
        Ok(BlockWriter { ds: Some(ds), tmp, path: path.to_path_buf(), width, height, cog: false })
    }

    /// Writes `rows` full rows of band `band` (0-based) starting at row `y_off`.
    pub fn write_rows(&mut self, band: usize, y_off: usize, rows: usize, data: &[f32]) -> Result<()> {
        let loc = self.path.display().to_string();
        if data.len() != rows * self.width || y_off + rows > self.height {
            return Err(Error::Raster { location: loc, message: format!("block of {rows} rows at {y_off} does not fit {} x {}", self.width, self.height) });
        }
        let ds = self.ds.as_ref().ok_or_else(|| Error::Raster { location: loc.clone(), message: "already finished".into() })?;
        let mut b = ds.rasterband(band + 1).map_err(Error::gdal(&loc, "opening a band"))?;
        let mut buf = Buffer::new((self.width, rows), data.to_vec());
        b.write((0, y_off as isize), (self.width, rows), &mut buf).map_err(Error::gdal(&loc, "writing a block"))
    }

    /// Closes the blocks and writes the COG under the final name.
    pub fn finish(mut self) -> Result<()> {
        if let Some(ds) = self.ds.take() {
            ds.close().map_err(Error::gdal(self.path.display(), "closing the block file"))?;
        }
        if !self.cog {
            return commit(&self.tmp, &self.path);
        }
        // The temporary block file is removed by Drop, whatever happens here.
        to_cog(&self.tmp.display().to_string(), &self.path, &WriteOptions::default())
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // Close first (an unfinished writer after an error or a cancel), then leave nothing behind.
        drop(self.ds.take());
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// A tiled, deflated GeoTIFF of `bands` bands of `T` at `tmp`, with the grid's georeferencing,
/// in tiles `block_rows` high (a multiple of 16): a writer whose strips are as high never leaves
/// a tile half written in GDAL's cache. Nothing is left at `tmp` on an error.
#[allow(clippy::too_many_arguments)]
fn create_tiled<T: gdal::raster::GdalType>(
    tmp: &Path,
    loc: &str,
    width: usize,
    height: usize,
    bands: usize,
    block_rows: usize,
    geo_transform: [f64; 6],
    crs_wkt: &str,
) -> Result<Dataset> {
    let driver = DriverManager::get_driver_by_name("GTiff").map_err(Error::gdal("GTiff", "loading the GDAL driver"))?;
    let block_rows = format!("BLOCKYSIZE={}", block_rows.clamp(16, 4096) / 16 * 16);
    let mut options = vec!["TILED=YES", "BIGTIFF=IF_SAFER", "BLOCKXSIZE=256", block_rows.as_str(), "NUM_THREADS=ALL_CPUS"];
    options.extend(scratch_compression(&driver));
    let options = RasterCreationOptions::from_iter(options);
    let created = (|| -> Result<Dataset> {
        let mut ds = driver
            .create_with_band_type_with_options::<T, _>(tmp, width, height, bands, &options)
            .map_err(Error::gdal(loc, "creating the output raster"))?;
        ds.set_geo_transform(&geo_transform).map_err(Error::gdal(loc, "setting the geotransform"))?;
        if !crs_wkt.is_empty() {
            ds.set_projection(crs_wkt).map_err(Error::gdal(loc, "setting the CRS"))?;
        }
        Ok(ds)
    })();
    if created.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    created
}

/// Compression of the block files a COG is made from: fast (they are read once, then removed),
/// ZSTD at its fastest level where GDAL has it, else DEFLATE at its fastest.
fn scratch_compression(gtiff: &gdal::Driver) -> [&'static str; 2] {
    static ZSTD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let zstd = *ZSTD.get_or_init(|| gtiff.metadata_item("DMD_CREATIONOPTIONLIST", "").is_some_and(|list| list.contains("ZSTD")));
    if zstd { ["COMPRESS=ZSTD", "ZSTD_LEVEL=1"] } else { ["COMPRESS=DEFLATE", "ZLEVEL=1"] }
}

/// Writes a single-band Byte raster (class codes or a 0/1 mask) block by block, then a COG of
/// it ([`ByteBlockWriter::finish`]) under the final name.
pub struct ByteBlockWriter {
    ds: Option<Dataset>,
    tmp: PathBuf,
    path: PathBuf,
    width: usize,
    height: usize,
}

impl ByteBlockWriter {
    /// The file will say whose data it holds and what made it (TIFF copyright and software).
    pub fn tag(&mut self, tags: &super::Tags) -> Result<()> {
        set_tags(&mut self.ds, &self.path, tags)
    }

    /// With `classes` ((code, RGB, name) each), the raster gets a colour table and category
    /// names and code 0 is nodata, as [`write_classes`] writes class maps. Tiles are
    /// `block_rows` high (best the height of the strips written).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        path: &Path,
        width: usize,
        height: usize,
        geo_transform: [f64; 6],
        crs_wkt: &str,
        description: &str,
        classes: Option<&[(u8, [u8; 3], &str)]>,
        block_rows: usize,
    ) -> Result<ByteBlockWriter> {
        init_gdal();
        let loc = path.display().to_string();
        ensure_parent(path)?;
        let tmp = temp_sibling(&path.with_extension("blocks.tif"));
        let ds = create_tiled::<u8>(&tmp, &loc, width, height, 1, block_rows, geo_transform, crs_wkt)?;
        let writer = ByteBlockWriter { ds: Some(ds), tmp, path: path.to_path_buf(), width, height };
        if let Some(ds) = &writer.ds {
            let mut band = ds.rasterband(1).map_err(Error::gdal(&loc, "opening the band"))?;
            band.set_description(description).map_err(Error::gdal(&loc, "setting the description"))?;
            if let Some(classes) = classes {
                band.set_no_data_value(Some(0.0)).map_err(Error::gdal(&loc, "setting nodata"))?;
                set_class_table(&mut band, classes).map_err(|m| Error::Raster { location: loc.clone(), message: m })?;
            }
        }
        Ok(writer)
    }

    /// Writes `rows` full rows starting at row `y_off`.
    pub fn write_rows(&mut self, y_off: usize, rows: usize, data: &[u8]) -> Result<()> {
        let loc = self.path.display().to_string();
        if data.len() != rows * self.width || y_off + rows > self.height {
            return Err(Error::Raster { location: loc, message: format!("block of {rows} rows at {y_off} does not fit {} x {}", self.width, self.height) });
        }
        let ds = self.ds.as_ref().ok_or_else(|| Error::Raster { location: loc.clone(), message: "already finished".into() })?;
        let mut b = ds.rasterband(1).map_err(Error::gdal(&loc, "opening the band"))?;
        let mut buf = Buffer::new((self.width, rows), data.to_vec());
        b.write((0, y_off as isize), (self.width, rows), &mut buf).map_err(Error::gdal(&loc, "writing a block"))
    }

    fn close(&mut self) -> Result<()> {
        if let Some(ds) = self.ds.take() {
            ds.close().map_err(Error::gdal(self.path.display(), "closing the block file"))?;
        }
        Ok(())
    }

    /// Closes the blocks and writes the COG under the final name.
    pub fn finish(mut self) -> Result<()> {
        self.close()?;
        to_cog(&self.tmp.display().to_string(), &self.path, &WriteOptions { cog: true, compression: Compression::Deflate, nodata: 0.0, ..WriteOptions::default() })
    }
}

impl Drop for ByteBlockWriter {
    fn drop(&mut self) {
        drop(self.ds.take());
        let _ = std::fs::remove_file(&self.tmp);
        let _ = std::fs::remove_file(format!("{}.aux.xml", self.tmp.display()));
    }
}

/// Gives a Byte band a colour table (transparent where no class is), category names and a
/// raster attribute table (value, class, red, green, blue).
fn set_class_table(band: &mut gdal::raster::RasterBand, classes: &[(u8, [u8; 3], &str)]) -> std::result::Result<(), String> {
    let mut table = gdal::raster::ColorTable::new(gdal::raster::PaletteInterpretation::Rgba);
    let max_code = classes.iter().map(|c| c.0).max().unwrap_or(0);
    let mut names = vec![String::new(); max_code as usize + 1];
    for code in 0..=max_code {
        let (rgb, alpha) = match classes.iter().find(|c| c.0 == code) {
            Some(c) => {
                names[code as usize] = c.2.to_string();
                (c.1, 255)
            }
            None => ([0, 0, 0], 0),
        };
        let entry = gdal::raster::RgbaEntry { r: rgb[0] as i16, g: rgb[1] as i16, b: rgb[2] as i16, a: alpha };
        table.set_color_entry(code as u16, &gdal::raster::ColorEntry::Rgba(entry));
    }
    band.set_color_table(&table);
    let names: Vec<CString> = names.iter().map(|n| CString::new(n.as_str()).unwrap_or_default()).collect();
    let mut ptrs: Vec<*mut c_char> = names.iter().map(|n| n.as_ptr() as *mut c_char).chain(std::iter::once(null_mut())).collect();
    // SAFETY: a NUL-terminated list of C strings that outlive the call; GDAL copies them.
    unsafe { gdal_sys::GDALSetRasterCategoryNames(band.c_rasterband(), ptrs.as_mut_ptr()) };
    super::ffi::set_class_rat(band, classes)
}

/// Turns any raster GDAL reads into a COG at `path` (e.g. after a warp).
pub fn to_cog(src: &str, path: &Path, options: &WriteOptions) -> Result<()> {
    let ds = open(src)?;
    ensure_parent(path)?;
    translate_to_file(&ds, path, &WriteOptions { cog: true, ..options.clone() })
}

/// A single-band Byte raster of class codes (0 = no data) with a colour table and category
/// names, as QGIS and ArcGIS show classified maps.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassRaster<'a> {
    pub width: usize,
    pub height: usize,
    pub codes: &'a [u8],
    pub geo_transform: [f64; 6],
    pub crs_wkt: &'a str,
    pub description: &'a str,
    /// (code, RGB, name) of each class.
    pub classes: &'a [(u8, [u8; 3], &'a str)],
}

/// Writes a [`ClassRaster`] as a COG with a colour table, atomically.
pub fn write_classes(path: &Path, raster: &ClassRaster) -> Result<()> {
    write_classes_with(path, raster, None, None)
}

/// [`write_classes`] with the data's attribution and what made the file in its copyright and
/// software tags.
pub fn write_classes_with(path: &Path, raster: &ClassRaster, copyright: Option<&str>, software: Option<&str>) -> Result<()> {
    init_gdal();
    let loc = path.display().to_string();
    if raster.codes.len() != raster.width * raster.height {
        return Err(Error::Raster { location: loc, message: "class codes do not match width x height".into() });
    }
    ensure_parent(path)?;
    let mem = DriverManager::get_driver_by_name("MEM").map_err(Error::gdal("MEM", "loading GDAL's memory driver"))?;
    let mut ds = mem
        .create_with_band_type::<u8, _>("", raster.width, raster.height, 1)
        .map_err(Error::gdal(&loc, "creating the in-memory raster"))?;
    ds.set_geo_transform(&raster.geo_transform).map_err(Error::gdal(&loc, "setting the geotransform"))?;
    if !raster.crs_wkt.is_empty() {
        ds.set_projection(raster.crs_wkt).map_err(Error::gdal(&loc, "setting the CRS"))?;
    }
    {
        let mut band = ds.rasterband(1).map_err(Error::gdal(&loc, "opening the band"))?;
        let mut buf = Buffer::new((raster.width, raster.height), raster.codes.to_vec());
        band.write((0, 0), (raster.width, raster.height), &mut buf).map_err(Error::gdal(&loc, "writing pixels"))?;
        band.set_no_data_value(Some(0.0)).map_err(Error::gdal(&loc, "setting nodata"))?;
        band.set_description(raster.description).map_err(Error::gdal(&loc, "setting the description"))?;
        set_class_table(&mut band, raster.classes).map_err(|m| Error::Raster { location: loc.clone(), message: m })?;
    }
    translate_to_file(&ds, path, &WriteOptions { cog: true, compression: Compression::Deflate, nodata: 0.0, copyright: copyright.map(String::from), software: software.map(String::from) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::{info, read_window};

    fn grid() -> crate::grid::TargetGrid {
        crate::grid::TargetGrid { epsg: 32633, pixel_size_m: 10.0, x_min: 300000.0, y_max: 4600020.0, width: 4, height: 3 }
    }

    #[test]
    fn write_then_read_round_trips_values_nodata_and_descriptions() {
        let dir = tempfile::tempdir().unwrap();
        let g = grid();
        let n = g.width * g.height;
        let mut valid = vec![true; n];
        valid[5] = false;
        let stack = BandStack {
            width: g.width,
            height: g.height,
            bands: vec![(0..n).map(|i| i as f32 * 0.5).collect(), (0..n).map(|i| -(i as f32)).collect()],
            valid,
            geo_transform: g.geo_transform(),
            crs_wkt: gdal::spatial_ref::SpatialRef::from_epsg(g.epsg).unwrap().to_wkt().unwrap(),
            descriptions: vec!["B04".into(), "B08".into()],
        };
        for cog in [false, true] {
            let path = dir.path().join(format!("out-{cog}.tif"));
            write_raster(&path, &stack, &WriteOptions { cog, ..Default::default() }).unwrap();
            let back = read_window(path.to_str().unwrap(), &[], None).unwrap();
            assert_eq!(back.geo_transform, stack.geo_transform);
            assert_eq!(back.valid, stack.valid);
            assert_eq!(back.descriptions, stack.descriptions);
            assert_eq!(back.get(1, 3, 2), -11.0);
            let i = info(path.to_str().unwrap()).unwrap();
            assert_eq!(i.epsg, Some(32633));
            assert_eq!(i.is_cog, cog);
            // No temporary file is left behind.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), if cog { 2 } else { 1 });
        }
    }
}
