//! GDAL's C utility functions (`GDALTranslate`, `GDALWarp`) with command-line style arguments,
//! for what the `gdal` crate does not wrap. (`env`, `read` and `write` hold a few more direct
//! calls into GDAL's C API; ARCHITECTURE.md lists every `unsafe` block and why it is sound.)

use std::ffi::{CString, c_char, c_int};
use std::path::Path;
use std::ptr::null_mut;

use gdal::Dataset;

pub(super) fn run_gdal_translate(src: &Dataset, dst: &Path, args: &[String]) -> std::result::Result<(), String> {
    let mut cargs = CArgs::new(args)?;
    let dst_c = CString::new(dst.to_string_lossy().as_bytes()).map_err(|_| "output path contains a NUL byte".to_string())?;
    // SAFETY: as in run_gdal_warp: NUL-terminated argv outliving the call, options freed, the
    // source open for the whole call, the result closed before returning.
    unsafe {
        gdal_sys::CPLErrorReset();
        let opts = gdal_sys::GDALTranslateOptionsNew(cargs.ptrs.as_mut_ptr(), null_mut());
        if opts.is_null() {
            return Err(format!("bad translate options {args:?}: {}", last_gdal_message()));
        }
        let mut usage_error: c_int = 0;
        let out = gdal_sys::GDALTranslate(dst_c.as_ptr(), src.c_dataset(), opts, &mut usage_error);
        gdal_sys::GDALTranslateOptionsFree(opts);
        if out.is_null() {
            return Err(last_gdal_message());
        }
        let failed_during_copy = gdal_sys::CPLGetLastErrorType() == gdal_sys::CPLErr::CE_Failure;
        gdal_sys::GDALClose(out);
        if failed_during_copy || gdal_sys::CPLGetLastErrorType() == gdal_sys::CPLErr::CE_Failure {
            return Err(last_gdal_message());
        }
    }
    Ok(())
}

/// Owned, NUL-terminated argv for GDAL's utility option parsers.
struct CArgs {
    _strings: Vec<CString>,
    ptrs: Vec<*mut c_char>,
}

impl CArgs {
    fn new(args: &[String]) -> std::result::Result<CArgs, String> {
        let strings = args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| format!("argument {a:?} contains a NUL byte")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ptrs = strings.iter().map(|s| s.as_ptr() as *mut c_char).chain(std::iter::once(null_mut())).collect();
        Ok(CArgs { _strings: strings, ptrs })
    }
}

pub(super) fn last_gdal_message() -> String {
    // SAFETY: CPLGetLastErrorMsg returns a pointer to a thread-local, NUL-terminated string.
    let msg = unsafe { std::ffi::CStr::from_ptr(gdal_sys::CPLGetLastErrorMsg()) };
    let msg = msg.to_string_lossy().trim().to_string();
    if msg.is_empty() { "GDAL gave no reason".into() } else { msg }
}

pub(super) fn run_gdal_warp(sources: &[Dataset], dst: &Path, args: &[String]) -> std::result::Result<(), String> {
    let mut cargs = CArgs::new(args)?;
    let dst_c = CString::new(dst.to_string_lossy().as_bytes()).map_err(|_| "output path contains a NUL byte".to_string())?;
    let mut handles: Vec<gdal_sys::GDALDatasetH> = sources.iter().map(|d| d.c_dataset()).collect();
    // SAFETY: argv is NUL-terminated and outlives the call; options are freed below; the
    // source handles stay open (owned by `sources`) for the whole call; the returned dataset
    // is closed before returning.
    unsafe {
        gdal_sys::CPLErrorReset();
        let opts = gdal_sys::GDALWarpAppOptionsNew(cargs.ptrs.as_mut_ptr(), null_mut());
        if opts.is_null() {
            return Err(format!("bad warp options {args:?}: {}", last_gdal_message()));
        }
        let mut usage_error: c_int = 0;
        let out = gdal_sys::GDALWarp(dst_c.as_ptr(), null_mut(), handles.len() as c_int, handles.as_mut_ptr(), opts, &mut usage_error);
        gdal_sys::GDALWarpAppOptionsFree(opts);
        close_output(out)
    }
}

/// Closes a utility's output dataset: its error when there is none, or when closing (flushing
/// to a full disk) failed.
///
/// # Safety
/// `out` is null or a dataset handle no one else holds.
unsafe fn close_output(out: gdal_sys::GDALDatasetH) -> std::result::Result<(), String> {
    if out.is_null() {
        return Err(last_gdal_message());
    }
    // SAFETY: the caller hands over the only handle.
    unsafe { gdal_sys::GDALClose(out) };
    // Errors raised while flushing on close (disk full) surface here.
    if unsafe { gdal_sys::CPLGetLastErrorType() } == gdal_sys::CPLErr::CE_Failure {
        return Err(last_gdal_message());
    }
    Ok(())
}

pub(super) fn run_vector_translate(src: &Dataset, dst: &Path, args: &[String]) -> std::result::Result<(), String> {
    let mut cargs = CArgs::new(args)?;
    let dst_c = CString::new(dst.to_string_lossy().as_bytes()).map_err(|_| "output path contains a NUL byte".to_string())?;
    let mut handles = [src.c_dataset()];
    // SAFETY: as in run_gdal_warp: NUL-terminated argv outliving the call, options freed, the
    // source open (owned by `src`) for the whole call, the result closed before returning.
    unsafe {
        gdal_sys::CPLErrorReset();
        let opts = gdal_sys::GDALVectorTranslateOptionsNew(cargs.ptrs.as_mut_ptr(), null_mut());
        if opts.is_null() {
            return Err(format!("bad vector translate options {args:?}: {}", last_gdal_message()));
        }
        let mut usage_error: c_int = 0;
        let out = gdal_sys::GDALVectorTranslate(dst_c.as_ptr(), null_mut(), 1, handles.as_mut_ptr(), opts, &mut usage_error);
        gdal_sys::GDALVectorTranslateOptionsFree(opts);
        close_output(out)
    }
}

/// Sets a class raster band's attribute table: one row per class with its value, name and
/// colour (Value, Class, Red, Green, Blue), the table ArcGIS and QGIS read beside the colour
/// table.
pub(super) fn set_class_rat(band: &gdal::raster::RasterBand, classes: &[(u8, [u8; 3], &str)]) -> std::result::Result<(), String> {
    use gdal_sys::{GDALRATFieldType, GDALRATFieldUsage};
    let names: Vec<CString> = classes.iter().map(|(_, _, n)| CString::new(*n).map_err(|_| format!("class name {n:?} contains a NUL byte"))).collect::<std::result::Result<_, _>>()?;
    let columns: [(&std::ffi::CStr, GDALRATFieldType::Type, GDALRATFieldUsage::Type); 5] = [
        (c"Value", GDALRATFieldType::GFT_Integer, GDALRATFieldUsage::GFU_MinMax),
        (c"Class", GDALRATFieldType::GFT_String, GDALRATFieldUsage::GFU_Name),
        (c"Red", GDALRATFieldType::GFT_Integer, GDALRATFieldUsage::GFU_Red),
        (c"Green", GDALRATFieldType::GFT_Integer, GDALRATFieldUsage::GFU_Green),
        (c"Blue", GDALRATFieldType::GFT_Integer, GDALRATFieldUsage::GFU_Blue),
    ];
    // SAFETY: the table is created, filled and handed to the band (which copies it), then
    // destroyed; every string passed is NUL-terminated and outlives the calls.
    unsafe {
        let rat = gdal_sys::GDALCreateRasterAttributeTable();
        if rat.is_null() {
            return Err("GDAL could not create a raster attribute table".into());
        }
        for (name, ty, usage) in columns {
            gdal_sys::GDALRATCreateColumn(rat, name.as_ptr(), ty, usage);
        }
        gdal_sys::GDALRATSetRowCount(rat, classes.len() as c_int);
        for (row, ((code, [r, g, b], _), name)) in classes.iter().zip(&names).enumerate() {
            let row = row as c_int;
            gdal_sys::GDALRATSetValueAsInt(rat, row, 0, *code as c_int);
            gdal_sys::GDALRATSetValueAsString(rat, row, 1, name.as_ptr());
            for (k, v) in [r, g, b].into_iter().enumerate() {
                gdal_sys::GDALRATSetValueAsInt(rat, row, 2 + k as c_int, *v as c_int);
            }
        }
        let err = gdal_sys::GDALSetDefaultRAT(band.c_rasterband(), rat);
        gdal_sys::GDALDestroyRasterAttributeTable(rat);
        if err != gdal_sys::CPLErr::CE_None {
            return Err(format!("setting the raster attribute table: {}", last_gdal_message()));
        }
    }
    Ok(())
}
