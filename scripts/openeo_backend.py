#!/usr/bin/env python3
"""A small but real openEO back-end for s2cr's integration tests (loopback only).

What it is: openeo-driver's Flask API (openEO API 1.2, HTTP Basic auth) whose
batch jobs are parsed by openeo-pg-parser-networkx and executed with the
process implementations of openeo-processes-dask, the dask arrays being
computed on a dask.distributed LocalCluster (scheduler + 2 worker processes on
127.0.0.1).  Collections are served, under CDSE's collection and band names,
from the s2cr demo's static STAC catalog:

    SENTINEL2_L2A  <- sentinel-2-l1c  (B01..B12, B8A, SCL as present there)
    SENTINEL1_GRD  <- sentinel-1-sigma0 (VV <- vv, VH <- vh)

The processes openeo-processes-dask lacks or gets wrong for this use are
implemented here: load_collection, resample_spatial (openEO 1.2: onto the
requested extent, aligned to its upper-left corner, with GDAL's warper),
sar_backscatter, save_result, and lazy versions of `first` and `mask` (the
library's compute their upstream graph while the process graph is being built).

What it honestly does not do:
  * no real SAR processing: sar_backscatter passes the catalog's already
    calibrated, terrain-corrected sigma0 through, whatever coefficient is asked
    (it says so in the job's logs); no masks or angle bands;
  * the "L2A" data are the demo's L1C top-of-atmosphere DNs and its SCL comes
    from thresholds, not Sen2Cor;
  * collections come from a static catalog; load_collection reads the items
    whole, on their own grid (all items of a load must share one), without
    cropping: resample_spatial is what puts a cube onto the requested extent;
  * save_result writes GTiff only (one file per time step); no synchronous
    /result, no UDFs, no persistence: jobs live in memory while it runs.

Result asset hrefs are signed URLs (openeo-driver's UrlSigner): downloading
needs no auth, and honours HTTP Range requests.

Auth: HTTP Basic (--user/--password); with any --oidc-* option, also OpenID
Connect: the same server then is a minimal OIDC provider under /oidc/ (see
OidcIdp), listed by /credentials/oidc as "testidp", and openeo-driver accepts
`Bearer oidc/testidp/<access token>`, resolving it through the provider's
/userinfo (an expired token: 403 TokenInvalid).

Command line: see `--help`.  When ready, writes the --ready file (atomically)
with {"url", "pid", "worker_pids", "scheduler"} (+ "oidc_issuer" with OIDC);
stops cleanly on SIGTERM/SIGINT.
"""

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import psutil
import rasterio
import rasterio.warp
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin

log = logging.getLogger("s2cr-openeo")

S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL"]
COLLECTIONS = {  # CDSE's names -> the demo catalog's collection and asset names
    "SENTINEL2_L2A": {"stac": "sentinel-2-l1c", "bands": {b: b for b in S2_BANDS},
                      "title": "Sentinel-2 L2A (test back-end: the s2cr demo's L1C DNs and threshold SCL)"},
    "SENTINEL1_GRD": {"stac": "sentinel-1-sigma0", "bands": {"VV": "vv", "VH": "vh"},
                      "title": "Sentinel-1 GRD (test back-end: the s2cr demo's calibrated sigma0, linear power)"},
}
GDAL_METHODS = {"near": "nearest", "bilinear": "bilinear", "cubic": "cubic", "cubicspline": "cubic_spline",
                "lanczos": "lanczos", "average": "average", "mode": "mode", "max": "max", "min": "min",
                "med": "med", "q1": "q1", "q3": "q3", "sum": "sum", "rms": "rms"}
SAR_COEFFICIENTS = {None, "beta0", "sigma0-ellipsoid", "sigma0-terrain", "gamma0-ellipsoid", "gamma0-terrain"}
GTIFF_TYPE = "image/tiff; application=geotiff"
_current = threading.local()  # .job: the Job whose process graph this thread is evaluating


class CatalogError(Exception):
    pass


# ----------------------------------------------------------------------------- static STAC catalog

def read_catalog(path):
    """{stac collection id: (collection json, [item dict(id, datetime, bbox, assets{name: abs path})])}"""
    def children(path, rel):
        return [(path.parent / link["href"]).resolve() for link in json.loads(path.read_text())["links"]
                if link["rel"] == rel]

    out = {}
    for cpath in children(Path(path).resolve(), "child"):
        items = []
        for ipath in children(cpath, "item"):
            item = json.loads(ipath.read_text())
            items.append({"id": item["id"], "datetime": _to_utc(item["properties"]["datetime"]), "bbox": item["bbox"],
                          "assets": {k: str((ipath.parent / a["href"]).resolve()) for k, a in item["assets"].items()}})
        coll = json.loads(cpath.read_text())
        out[coll["id"]] = (coll, sorted(items, key=lambda i: i["datetime"]))
    return out


def collection_metadata(cid, spec, stac_coll, items, s2_scaling=None):
    bands = [b for b, a in spec["bands"].items() if any(a in i["assets"] for i in items)]
    summaries = {"eo:bands": [{"name": b} for b in bands]}
    if s2_scaling and cid == "SENTINEL2_L2A":  # what a back-end says of its values: value * scale + offset
        scale, offset = s2_scaling
        summaries["raster:bands"] = [{"name": b, "scale": scale, "offset": offset} for b in bands if b not in ("SCL", "AOT")]
    ext = stac_coll.get("extent", {})
    return {
        "stac_version": "1.0.0", "type": "Collection", "id": cid, "title": spec["title"],
        "description": f"{spec['title']}; read from the static STAC collection {stac_coll['id']!r}.",
        "license": stac_coll.get("license", "proprietary"), "extent": ext, "links": [],
        "cube:dimensions": {
            "x": {"type": "spatial", "axis": "x"}, "y": {"type": "spatial", "axis": "y"},
            "t": {"type": "temporal", "extent": ext.get("temporal", {}).get("interval", [[None, None]])[0]},
            "bands": {"type": "bands", "values": bands},
        },
        "summaries": summaries,
    }


def _to_utc(v):
    """A datetime (aware, UTC) from an ISO string, a date or datetime, or pg-parser's Date/DateTime."""
    if v is None:
        return None
    v = getattr(v, "root", v)
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    if not isinstance(v, dt.datetime):  # a date
        v = dt.datetime(v.year, v.month, v.day)
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.fromtimestamp(v.timestamp(), dt.timezone.utc)


def _extent(spatial_extent):
    """(west, south, east, north, rasterio CRS) from a dict or pg-parser's BoundingBox; CRS default 4326."""
    if spatial_extent is None:
        return None
    g = spatial_extent.get if isinstance(spatial_extent, dict) else lambda k: getattr(spatial_extent, k, None)
    crs = g("crs")
    crs = CRS.from_epsg(4326) if crs in (None, "") else CRS.from_user_input(crs)
    return (float(g("west")), float(g("south")), float(g("east")), float(g("north")), crs)


# ----------------------------------------------------------------------------- processes implemented here

def _read_band(path, nodata_to_nan):
    """Runs on a worker: one whole single-band raster as float32 (its nodata value -> NaN if asked)."""
    with rasterio.open(path) as src:
        a = src.read(1).astype("float32")
        if nodata_to_nan and src.nodata is not None and not np.isnan(src.nodata):
            a[a == src.nodata] = np.nan
    return a


def load_collection(id, spatial_extent=None, temporal_extent=None, bands=None, properties=None):
    job = _current.job
    if id not in COLLECTIONS:
        raise CatalogError(f"load_collection: unknown collection {id!r} (known: {', '.join(COLLECTIONS)})")
    spec = COLLECTIONS[id]
    all_items = job.backend.catalog_items[spec["stac"]]
    available = [b for b, a in spec["bands"].items() if any(a in i["assets"] for i in all_items)]
    bands = list(bands) if bands else available
    missing = [b for b in bands if b not in available]
    if missing:
        raise CatalogError(f"load_collection: band(s) {', '.join(missing)} not available in {id} "
                           f"(available: {', '.join(available)})")
    ext = _extent(spatial_extent)
    t0, t1 = (_to_utc(v) for v in (temporal_extent or [None, None]))
    if ext:
        w, s, e, n = rasterio.warp.transform_bounds(ext[4], "EPSG:4326", *ext[:4])
        where = f"bbox [{w:.6f}, {s:.6f}, {e:.6f}, {n:.6f}] (WGS84)"
    else:
        w, s, e, n, where = -180, -90, 180, 90, "anywhere"
    items = [i for i in all_items
             if (t0 is None or i["datetime"] >= t0) and (t1 is None or i["datetime"] < t1)
             and i["bbox"][0] <= e and i["bbox"][2] >= w and i["bbox"][1] <= n and i["bbox"][3] >= s]
    if not items:
        raise CatalogError(f"load_collection: no {id} items between {t0 and t0.isoformat()} and "
                           f"{t1 and t1.isoformat()} over {where}")
    grids = set()
    for i in items:
        for b in bands:
            with rasterio.open(i["assets"][spec["bands"][b]]) as src:
                grids.add((src.crs.to_wkt(), tuple(src.transform)[:6], src.shape))
    if len(grids) != 1:
        raise CatalogError(f"load_collection: the {id} items on different grids; this test back-end needs one grid")
    crs_wkt, tr, (h, w_) = grids.pop()
    tr = rasterio.Affine(*tr)
    cube = da.stack([
        da.stack([da.from_delayed(dask.delayed(_read_band)(i["assets"][spec["bands"][b]], b != "SCL"),
                                  shape=(h, w_), dtype="float32") for i in items])
        for b in bands])
    xs = tr.c + (np.arange(w_) + 0.5) * tr.a
    ys = tr.f + (np.arange(h) + 0.5) * tr.e
    ts = np.array([np.datetime64(i["datetime"].replace(tzinfo=None), "ns") for i in items])
    job.log("info", f"load_collection {id}: {len(items)} item(s) ({', '.join(i['id'] for i in items)}), "
                    f"bands {', '.join(bands)}")
    arr = xr.DataArray(cube, dims=("bands", "t", "y", "x"), coords={"bands": bands, "t": ts, "y": ys, "x": xs},
                       attrs={"s2cr_extent": None if ext is None else (*ext[:4], ext[4].to_wkt())})
    return arr.rio.write_crs(CRS.from_wkt(crs_wkt))


def _grid_of(data):
    """(transform, CRS) of a cube from its x/y pixel-centre coordinates."""
    xs, ys = data["x"].values, data["y"].values
    rx = (xs[-1] - xs[0]) / (len(xs) - 1) if len(xs) > 1 else 1.0
    ry = (ys[0] - ys[-1]) / (len(ys) - 1) if len(ys) > 1 else 1.0
    crs = data.rio.crs or (CRS.from_user_input(data.attrs["crs"]) if data.attrs.get("crs") else None)
    return from_origin(xs[0] - rx / 2, ys[0] + ry / 2, rx, ry), crs


def _warp_block(block, src_transform, src_crs, dst_transform, dst_crs, shape, resampling):
    """Runs on a worker: GDAL-warps every 2-D slice of a (..., y, x) block."""
    src = block.reshape((-1,) + block.shape[-2:])
    out = np.full((src.shape[0],) + shape, np.nan, dtype="float32")
    for k in range(src.shape[0]):
        rasterio.warp.reproject(np.ascontiguousarray(src[k]), out[k], src_transform=src_transform,
                                src_crs=src_crs, src_nodata=np.nan, dst_transform=dst_transform,
                                dst_crs=dst_crs, dst_nodata=np.nan, resampling=Resampling[resampling])
    return out.reshape(block.shape[:-2] + shape)


# --shift-grid: metres added to the aligned grid's origin (a back-end that aligns to a grid of its
# own), so the client's "not on the project grid" path can be tested.
GRID_SHIFT = 0.0


def resample_spatial(data, resolution=0, projection=None, method="near", align="upper-left"):
    """openEO 1.2: warp onto the load's spatial extent (in `projection`) at `resolution`, aligned to `align`."""
    if method not in GDAL_METHODS:
        raise ValueError(f"resample_spatial: method {method!r} not supported (one of {', '.join(GDAL_METHODS)})")
    src_transform, src_crs = _grid_of(data)
    dst_crs = CRS.from_user_input(projection) if projection not in (None, "") else src_crs
    if isinstance(resolution, (list, tuple)):
        rx, ry = (float(r) for r in resolution)
    else:
        rx = ry = float(resolution or 0)
    if rx <= 0 or ry <= 0:
        if dst_crs != src_crs:
            raise ValueError("resample_spatial: give a resolution when changing the projection")
        rx, ry = src_transform.a, -src_transform.e
    ext = data.attrs.get("s2cr_extent")
    if ext:
        w, s, e, n = ext[:4]
        if CRS.from_wkt(ext[4]) != dst_crs:
            w, s, e, n = rasterio.warp.transform_bounds(CRS.from_wkt(ext[4]), dst_crs, w, s, e, n)
    else:
        h0, w0 = data.sizes["y"], data.sizes["x"]
        w, n = src_transform * (0, 0)
        e, s = src_transform * (w0, h0)
        w, s, e, n = rasterio.warp.transform_bounds(src_crs, dst_crs, w, s, e, n)
    width, height = max(1, round((e - w) / rx)), max(1, round((n - s) / ry))
    x0 = (w if align in ("upper-left", "lower-left") else e - width * rx) + GRID_SHIFT
    y0 = n if align in ("upper-left", "upper-right") else s + height * ry
    dst_transform = from_origin(x0, y0, rx, ry)
    others = [d for d in data.dims if d not in ("y", "x")]
    src = data.transpose(*others, "y", "x").data
    if not isinstance(src, da.Array):
        src = da.from_array(src)
    src = src.astype("float32").rechunk(tuple(1 for _ in others) + (-1, -1))
    out = da.map_blocks(_warp_block, src, dtype="float32", meta=np.array((), dtype="float32"),
                        chunks=src.chunks[:-2] + ((height,), (width,)),
                        src_transform=src_transform, src_crs=src_crs, dst_transform=dst_transform,
                        dst_crs=dst_crs, shape=(height, width), resampling=GDAL_METHODS[method])
    coords = {d: data.coords[d].values for d in others if d in data.coords}
    coords["x"] = x0 + (np.arange(width) + 0.5) * rx
    coords["y"] = y0 - (np.arange(height) + 0.5) * ry
    res = xr.DataArray(out, dims=(*others, "y", "x"), coords=coords, attrs=dict(data.attrs))
    res.attrs.pop("crs", None)
    return res.transpose(*data.dims).rio.write_crs(dst_crs)


def sar_backscatter(data, coefficient="gamma0-terrain", elevation_model=None, mask=False, contributing_area=False,
                    local_incidence_angle=False, ellipsoid_incidence_angle=False, noise_removal=True,
                    options=None):
    if coefficient not in SAR_COEFFICIENTS:
        raise ValueError(f"sar_backscatter: unknown coefficient {coefficient!r}")
    extra = [n for n, v in dict(mask=mask, contributing_area=contributing_area, local_incidence_angle=
                                local_incidence_angle, ellipsoid_incidence_angle=ellipsoid_incidence_angle).items() if v]
    if extra:
        raise ValueError(f"sar_backscatter: {', '.join(extra)} not supported by this test back-end")
    _current.job.log("warning", f"sar_backscatter: coefficient {coefficient!r} asked; this test back-end passes "
                                "the catalog's calibrated, terrain-corrected sigma0 (linear power) through "
                                "unchanged (no terrain flattening, elevation model or noise removal applied)")
    return data


def save_result(data, format="GTiff", options=None):
    if str(format).lower() not in ("gtiff", "geotiff"):
        raise ValueError(f"save_result: format {format!r} not supported by this test back-end (GTiff only)")
    _current.saves.append(data)
    return True


def first(data, ignore_nodata=True, axis=None):
    """openEO `first`, lazy on dask arrays (a chain of where(isnan) over the axis)."""
    if isinstance(data, list):
        data = np.asarray(data)
    if axis is None:
        data, axis = data.ravel(), 0
    n = data.shape[axis]
    if n == 0:
        return np.nan
    out = np.take(data, 0, axis=axis)
    if ignore_nodata and np.issubdtype(data.dtype, np.floating):
        for i in range(1, n):
            out = np.where(np.isnan(out), np.take(data, i, axis=axis), out)
    return out


def mask(data, mask, replacement=None):
    """openEO `mask`, lazy (the library's one computes a dask-backed mask while the graph is being built):
    replaces `data` where `mask` is non-zero or true; a NaN in `mask` leaves `data` as it is."""
    if "bands" in mask.dims and mask.sizes["bands"] == 1:
        mask = mask.isel(bands=0, drop=True)
    xr.align(data, mask, join="exact")  # same labels on the dimensions they share, or an error
    return data.where(~(mask.fillna(0) != 0), np.nan if replacement is None else replacement)


OWN_PROCESSES = [load_collection, resample_spatial, sar_backscatter, save_result, first, mask]


def build_process_registries():
    """(pg-parser registry with openeo-processes-dask's + our implementations, openeo-driver listing registry)."""
    import openeo_processes_dask.specs as pd_specs
    from openeo_pg_parser_networkx import ProcessRegistry
    from openeo_pg_parser_networkx.process_registry import Process
    from openeo_processes_dask.process_implementations.core import process, standard_processes
    from openeo_driver.processes import ProcessRegistry as DriverRegistry

    reg = ProcessRegistry(wrap_funcs=[process])
    listing = DriverRegistry(argument_names=None, target_version="1.2.0")
    for f in standard_processes + OWN_PROCESSES:  # ours come last: they override
        spec = getattr(pd_specs, f.__name__, None)
        reg[f.__name__] = Process(spec=spec or {}, implementation=f)
        if spec:
            listing.add_process(spec["id"], spec=spec, allow_override=True)
    return reg, listing


# ----------------------------------------------------------------------------- batch jobs

class Job:
    def __init__(self, backend, user_id, process, title=None, description=None):
        self.backend, self.user_id, self.process = backend, user_id, process
        self.id = "j-" + uuid.uuid4().hex[:20]
        self.title, self.description = title, description
        self.status, self.progress = "created", None
        self.created = self.updated = dt.datetime.now(dt.timezone.utc)
        self.started = self.finished = None
        self.logs, self.futures, self.assets = [], [], {}
        self.run = threading.Event()  # the current run's cancel flag (a fresh one per start)
        self.lock = threading.Lock()
        self.dir = backend.workdir / "jobs" / self.id

    def log(self, level, message):
        self.logs.append({"id": str(len(self.logs)), "level": level, "message": message,
                          "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
        log.log(logging.getLevelName(level.upper()), "%s: %s", self.id, message)

    def set(self, status, progress=None, run=None):
        """Moves to `status`; from a run, only while it is the current, uncanceled one. Returns whether it did."""
        with self.lock:
            if run is not None and (run is not self.run or run.is_set()):
                return False
            self.status, self.progress = status, progress
            self.updated = dt.datetime.now(dt.timezone.utc)
            if status == "running" and not progress:
                self.started = self.updated
            if status in ("finished", "error", "canceled"):
                self.finished = self.updated
            return True

    def metadata(self):
        from openeo_driver.backend import BatchJobMetadata
        return BatchJobMetadata(id=self.id, status=self.status, created=self.created, updated=self.updated,
                                started=self.started, finished=self.finished, progress=self.progress,
                                title=self.title, description=self.description, process=self.process)


def make_backend(args, catalog, client):
    from openeo.rest.models.logs import normalize_log_level
    from openeo_driver.backend import BatchJobs, CollectionCatalog, JobListing, OpenEoBackendImplementation, \
        Processing
    from openeo_driver.errors import JobNotFoundException
    from openeo_pg_parser_networkx import OpenEOProcessGraph

    pg_registry, listing = build_process_registries()

    class S2crProcessing(Processing):
        def get_process_registry(self, api_version):
            return listing

    class S2crBatchJobs(BatchJobs):
        def __init__(self):
            super().__init__()
            self.jobs, self.workdir = {}, Path(args.workdir)
            self.catalog_items = {k: items for k, (_, items) in catalog.items()}

        def _job(self, job_id, user_id):
            job = self.jobs.get(job_id)
            if job is None or job.user_id != user_id:
                raise JobNotFoundException(job_id)
            return job

        def create_job(self, *, user, process, api_version, metadata, job_options=None):
            job = Job(self, user.user_id, process, metadata.get("title"), metadata.get("description"))
            self.jobs[job.id] = job
            job.log("info", f"job created (title {job.title!r})")
            return job.metadata()

        def get_job_info(self, job_id, user_id):
            return self._job(job_id, user_id).metadata()

        def get_user_jobs(self, user_id, limit=None, request_parameters=None):
            jobs = sorted((j for j in self.jobs.values() if j.user_id == user_id), key=lambda j: j.created)
            return JobListing([j.metadata() for j in (jobs[:limit] if limit else jobs)])

        def start_job(self, job_id, user):
            job = self._job(job_id, user.user_id)
            with job.lock:
                job.run = run = threading.Event()
            job.set("queued")
            threading.Thread(target=self._run, args=(job, run), name=f"job-{job.id}", daemon=True).start()

        def _run(self, job, run):
            _current.job, _current.saves = job, []
            try:
                if not job.set("running", 0, run):
                    return
                job.log("info", f"job running (waiting {args.job_delay} s first: --job-delay)" if args.job_delay
                        else "job running")
                if run.wait(args.job_delay):
                    return
                OpenEOProcessGraph(job.process["process_graph"]).to_callable(process_registry=pg_registry)()
                if not _current.saves:
                    raise ValueError("the process graph has no save_result")
                cubes = [_for_gtiff(c) for c in _current.saves]
                with job.lock:
                    if run.is_set():
                        return
                    job.futures = futures = client.compute([c.data for c in cubes])
                    job.progress = 30
                values = client.gather(futures)
                if not job.set("running", 90, run):
                    return
                assets = write_gtiffs(job.dir, cubes, values)
                with job.lock:
                    job.assets = assets
                if job.set("finished", 100, run):
                    job.log("info", f"job finished: {', '.join(assets)}")
            except Exception as e:  # the job fails (unless canceled); its logs carry the message
                if not run.is_set():
                    log.debug("job %s failed", job.id, exc_info=True)
                    job.log("error", f"{type(e).__name__}: {e}")
                    job.set("error", None, run)
            finally:
                _current.job = _current.saves = None
                with job.lock:
                    if job.run is run:
                        job.futures = []

        def get_result_assets(self, job_id, user_id):
            return self._job(job_id, user_id).assets

        def get_log_entries(self, job_id, *, user_id, offset=None, limit=None, level="debug"):
            job = self._job(job_id, user_id)
            lv = normalize_log_level(level)
            logs = [e for e in job.logs if normalize_log_level(e["level"]) >= lv]
            if offset is not None:
                logs = [e for e in logs if int(e["id"]) > int(offset)]
            return logs[:limit] if limit else logs

        def cancel_job(self, job_id, user_id):
            job = self._job(job_id, user_id)
            with job.lock:
                if job.status not in ("queued", "running"):
                    return
                job.run.set()
                for f in job.futures:
                    f.cancel()
                n = len(job.futures)
            job.set("canceled")
            job.log("info", f"job canceled by request ({n} dask future(s) cancelled)")

        def delete_job(self, job_id, user_id):
            self.cancel_job(job_id, user_id)
            shutil.rmtree(self._job(job_id, user_id).dir, ignore_errors=True)
            del self.jobs[job_id]

    scaling = tuple(float(v) for v in args.s2_scaling.split(",")) if args.s2_scaling else None
    collections = [collection_metadata(cid, spec, *catalog[spec["stac"]], s2_scaling=scaling) for cid, spec in COLLECTIONS.items()]
    impl = OpenEoBackendImplementation(catalog=CollectionCatalog(collections), batch_jobs=S2crBatchJobs(),
                                       processing=S2crProcessing())
    impl.file_formats = lambda: {"input": {}, "output": {"GTiff": {
        "title": "GeoTIFF", "gis_data_types": ["raster"], "parameters": {}}}}
    return impl


def _for_gtiff(cube):
    """The cube as (t?, bands, y, x) float32, checked to be writable as GeoTIFF(s)."""
    if not isinstance(cube, xr.DataArray) or not {"x", "y"} <= set(cube.dims):
        raise ValueError("save_result: GTiff needs a raster cube with x and y dimensions")
    if "bands" not in cube.dims:
        cube = cube.expand_dims(bands=["band_1"])
    extra = [d for d in cube.dims if d not in ("t", "bands", "y", "x")]
    if extra:
        raise ValueError(f"save_result: GTiff cannot hold dimension(s) {extra}")
    return cube.transpose(*[d for d in ("t", "bands", "y", "x") if d in cube.dims]).astype("float32")


def write_gtiffs(folder, cubes, values):
    """Writes each (t?, bands, y, x) cube as one Float32 GeoTIFF per time step; returns the asset metadata."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    assets = {}
    for cube, value in zip(cubes, values):
        transform, crs = _grid_of(cube)
        bands = [str(b) for b in cube["bands"].values]
        steps = [(None, value)] if "t" not in cube.dims else [
            (np.datetime_as_string(t, unit="D"), value[k]) for k, t in enumerate(cube["t"].values)]
        for day, arr in steps:
            name = ("openEO.tif" if day is None else f"openEO_{day}Z.tif")
            name = f"{len(assets)}_{name}" if len(cubes) > 1 else name
            path = folder / name
            h, w = arr.shape[-2:]
            with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=arr.shape[0], dtype="float32",
                               crs=crs, transform=transform, nodata=np.nan, compress="deflate", tiled=True) as dst:
                dst.write(arr.astype("float32"))
                for k, b in enumerate(bands, 1):
                    dst.set_band_description(k, b)
            assets[name] = {
                "output_dir": str(folder), "type": GTIFF_TYPE, "roles": ["data"], "title": name,
                "file:size": path.stat().st_size,
                "file:checksum": "1220" + hashlib.sha256(path.read_bytes()).hexdigest(),
                "bands": [{"name": b} for b in bands], "proj:epsg": crs.to_epsg() if crs else None,
                "proj:shape": [h, w], "proj:bbox": [*(transform * (0, h)), *(transform * (w, 0))],
            }
    return assets


# ----------------------------------------------------------------------------- HTTP

class FaultInjector:
    """WSGI middleware: --fail-polls (HTTP 500 on job status polls), --drop-downloads (half bodies),
    --fail-results (HTTP 503 on a job's result listing), --corrupt-downloads (whole bodies, one byte
    changed: a checksum mismatch)."""
    POLL = re.compile(r"^/openeo/(?:[0-9.]+/)?jobs/[^/]+/?$")
    RESULTS = re.compile(r"^/openeo/(?:[0-9.]+/)?jobs/[^/]+/results/?$")
    ASSET = re.compile(r"^/openeo/(?:[0-9.]+/)?jobs/[^/]+/results/assets/")

    def __init__(self, app, fail_polls, drop_downloads, fail_results=0, corrupt_downloads=0):
        self.app, self.fail_polls, self.drop_downloads, self.fail_results = app, fail_polls, drop_downloads, fail_results
        self.corrupt_downloads = corrupt_downloads
        self.lock = threading.Lock()

    def _take(self, name):
        with self.lock:
            if getattr(self, name) > 0:
                setattr(self, name, getattr(self, name) - 1)
                return True
            return False

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        rng = environ.get("HTTP_RANGE", "").replace(" ", "")
        if method == "GET" and self.POLL.match(path) and self._take("fail_polls"):
            log.info("fault injection: HTTP 500 for %s", path)
            body = json.dumps({"id": uuid.uuid4().hex, "code": "Internal",
                               "message": "Injected failure (--fail-polls)", "links": []}).encode()
            start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "application/json"),
                                                         ("Content-Length", str(len(body)))])
            return [body]
        if method == "GET" and self.RESULTS.match(path) and self._take("fail_results"):
            log.info("fault injection: HTTP 503 for %s", path)
            body = json.dumps({"id": uuid.uuid4().hex, "code": "ServiceUnavailable",
                               "message": "Injected failure (--fail-results)", "links": []}).encode()
            start_response("503 SERVICE UNAVAILABLE", [("Content-Type", "application/json"),
                                                       ("Content-Length", str(len(body)))])
            return [body]
        if method == "GET" and self.ASSET.match(path) and rng in ("", "bytes=0-") and self._take("drop_downloads"):
            return self._truncated(environ, start_response, path)
        if method == "GET" and self.ASSET.match(path) and rng in ("", "bytes=0-") and self._take("corrupt_downloads"):
            return self._corrupted(environ, start_response, path)
        return self.app(environ, start_response)

    def _corrupted(self, environ, start_response, path):
        log.info("fault injection: changing the first byte of %s", path)
        body = self.app(environ, start_response)

        def changed():
            first = True
            try:
                for chunk in body:
                    if first and chunk:
                        chunk, first = bytes([chunk[0] ^ 0xFF]) + chunk[1:], False
                    yield chunk
            finally:
                if hasattr(body, "close"):
                    body.close()

        return changed()

    def _truncated(self, environ, start_response, path):
        seen = {}

        def sr(status, headers, exc_info=None):
            length = int(dict((k.lower(), v) for k, v in headers).get("content-length", 0))
            seen["left"] = length // 2 if status.startswith("200") else sys.maxsize
            log.info("fault injection: sending %s of %d bytes of %s, then closing", seen["left"], length, path)
            return start_response(status, headers, exc_info)

        body = self.app(environ, sr)

        def half():  # werkzeug always answers "Connection: close": stopping short of Content-Length drops it
            try:
                for chunk in body:
                    if seen["left"] <= 0:
                        break
                    yield chunk[:seen["left"]]
                    seen["left"] -= len(chunk)
            finally:
                if hasattr(body, "close"):
                    body.close()

        return half()


class OidcIdp:
    """WSGI middleware: a minimal OpenID Connect provider under /oidc/ on this same server (loopback tests).

    Discovery (/oidc/.well-known/openid-configuration), /oidc/token with the client_credentials grant
    (client_secret_post or client_secret_basic) and the refresh_token grant (the refresh token rotates: each
    use answers a new one and retires the old), /oidc/userinfo (openeo-driver resolves `Bearer
    oidc/testidp/<access token>` with it).  No authorization-code or device flow, no ID tokens (empty JWKS).
    Test-only introspection: GET /oidc/_seen.  It also watches every request to any path other than
    /oidc/token (URL, headers, body up to 1 MiB) for the client secret or any refresh token ever valid.
    """
    PROVIDER_ID, SUB, BODY_LIMIT = "testidp", "s2cr-oidc-user", 1 << 20

    def __init__(self, app, client_id, client_secret, refresh_token, ttl):
        self.app, self.client_id, self.client_secret, self.ttl = app, client_id, client_secret, ttl
        self.refresh_token = refresh_token
        self.watched = {s for s in (client_secret, refresh_token) if s}
        self.tokens = {}  # access token -> expiry (time.time())
        self.token_requests, self.seen_at, self.scopes = 0, [], []  # scopes: [grant_type, scope] of each token request
        self.lock = threading.Lock()
        self.issuer = None  # set once the server's port is known

    def expiry(self, access_token):
        with self.lock:
            return self.tokens.get(access_token, 0.0)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        body = self._body(environ)
        if path != "/oidc/token":
            self._watch(environ, path, body)
        if not path.startswith("/oidc/"):
            return self.app(environ, start_response)
        status, doc, extra = self._answer(environ, path, body)
        data = json.dumps(doc).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                ("Cache-Control", "no-store")] + extra)
        return [data]

    def _body(self, environ):
        """The request body (b"" if none or over the limit), put back for the app behind."""
        length, chunked = environ.get("CONTENT_LENGTH") or "", environ.get("wsgi.input_terminated")
        if not (length.isdigit() and 0 < int(length) <= self.BODY_LIMIT or chunked and not length):
            return b""
        body = environ["wsgi.input"].read(int(length) if length else -1)
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        return body

    def _watch(self, environ, path, body):
        texts = [path, environ.get("QUERY_STRING", ""), environ.get("REQUEST_URI", ""), environ.get("RAW_URI", "")]
        texts += [str(v) for k, v in environ.items() if k.startswith("HTTP_") or k == "CONTENT_TYPE"]
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth[:6].lower() == "basic ":
            try:
                texts.append(base64.b64decode(auth[6:].strip()).decode("utf-8", "replace"))
            except ValueError:
                pass
        texts.append(body.decode("utf-8", "replace"))
        texts += [urllib.parse.unquote_plus(t) for t in texts]
        with self.lock:
            if any(s in t for s in self.watched for t in texts):
                log.warning("OIDC: a client secret or refresh token was sent to %s %s", environ["REQUEST_METHOD"],
                            path)
                self.seen_at.append(f"{environ['REQUEST_METHOD']} {path}")

    def _answer(self, environ, path, body):
        """(status, JSON document, extra headers) for a request under /oidc/."""
        method, base = environ["REQUEST_METHOD"], self.issuer
        if path == "/oidc/.well-known/openid-configuration":
            return "200 OK", {
                "issuer": base, "token_endpoint": f"{base}/token", "userinfo_endpoint": f"{base}/userinfo",
                "authorization_endpoint": f"{base}/authorize", "jwks_uri": f"{base}/jwks",
                "grant_types_supported": ["client_credentials", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "openeo", "offline_access"],
            }, []
        if path == "/oidc/jwks":
            return "200 OK", {"keys": []}, []
        if path == "/oidc/_seen":
            with self.lock:
                return "200 OK", {"token_requests": self.token_requests,
                                  "secret_seen_outside_token_endpoint": bool(self.seen_at),
                                  "seen_at": list(self.seen_at), "scopes": list(self.scopes)}, []
        if path == "/oidc/userinfo":
            auth = environ.get("HTTP_AUTHORIZATION", "")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if token and self.expiry(token) > time.time():
                return "200 OK", {"sub": self.SUB}, []
            return "401 UNAUTHORIZED", {"error": "invalid_token", "error_description":
                                        "access token unknown or expired"}, [
                ("WWW-Authenticate", 'Bearer error="invalid_token"')]
        if path == "/oidc/token" and method == "POST":
            with self.lock:
                self.token_requests += 1
            return self._token(environ, body)
        return "404 NOT FOUND", {"error": "not_found", "error_description": f"{method} {path}: not served by "
                                 "this test OpenID Connect provider"}, []

    def _token(self, environ, body):
        def error(status, code, description):
            log.info("OIDC token request refused: %s (%s)", code, description)
            extra = [("WWW-Authenticate", 'Basic realm="oidc"')] if status.startswith("401") and basic else []
            return status, {"error": code, "error_description": description}, extra

        def same(given, expected):
            return given is not None and expected is not None and hmac.compare_digest(given.encode(),
                                                                                       expected.encode())

        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"),
                                                           keep_blank_values=True).items()}
        ids, secrets_ = [form.get("client_id")], [form.get("client_secret")]
        auth = environ.get("HTTP_AUTHORIZATION", "")
        basic = auth[:6].lower() == "basic "
        if basic:  # client_secret_basic: RFC 6749 2.3.1 form-urlencodes both parts; many clients do not
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            except ValueError:
                return error("401 UNAUTHORIZED", "invalid_client", "malformed Basic authorization")
            ids, secrets_ = [user, urllib.parse.unquote_plus(user)], [password, urllib.parse.unquote_plus(password)]
        client_ok = any(same(i, self.client_id) for i in ids)
        secret_ok = any(same(s, self.client_secret) for s in secrets_)
        grant = form.get("grant_type")
        with self.lock:
            self.scopes.append([grant, form.get("scope")])
        if grant == "client_credentials":
            if not (client_ok and secret_ok):
                return error("401 UNAUTHORIZED", "invalid_client", "unknown client or wrong client secret")
            return "200 OK", self._issue(), []
        if grant == "refresh_token":
            if secrets_[0] is not None and not secret_ok:
                return error("401 UNAUTHORIZED", "invalid_client", "wrong client secret")
            with self.lock:
                current = self.refresh_token
                if not (client_ok and current and hmac.compare_digest(
                        form.get("refresh_token", "").encode(), current.encode())):
                    return error("400 BAD REQUEST", "invalid_grant", "unknown client, or refresh token not "
                                 "(or no longer) valid")
                self.refresh_token = new = secrets.token_urlsafe(32)
                self.watched.add(new)
            return "200 OK", {**self._issue(), "refresh_token": new}, []
        return error("400 BAD REQUEST", "unsupported_grant_type", f"grant_type {grant!r} is not supported "
                     "(client_credentials, refresh_token)")

    def _issue(self):
        token, now = secrets.token_urlsafe(32), time.time()
        with self.lock:
            self.tokens = {t: e for t, e in self.tokens.items() if e > now}
            self.tokens[token] = now + self.ttl
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl, "scope": "openid"}


def bound_bearer_cache(idp, cache):
    """openeo-driver caches the User of each bearer token for 15 minutes, however soon the token expires:
    make its OIDC entries expire with their access token, so that an expired token gets 403 TokenInvalid."""
    from openeo_driver.util.caching import TtlCache

    prefix = f"oidc/{OidcIdp.PROVIDER_ID}/"

    class BearerCache(TtlCache):
        def set(self, key, value, ttl=None):
            super().set(key, value, ttl)
            if isinstance(key, tuple) and key[0] == "bearer" and str(key[1]).startswith(prefix):
                self._cache[key] = (value, min(self._cache[key][1], idp.expiry(key[1][len(prefix):])))

        def get(self, key, default=None):
            # HttpAuthHandler calls get() just after contains() or set(): no second expiry check (that could
            # fall just after the token's expiry, and answer None for the user)
            return self._cache[key][0] if key in self._cache else default

    return BearerCache(default_ttl=cache.default_ttl)


def install_config(args, idp):
    """openeo-driver reads its config globally (get_backend_config()): install ours."""
    import openeo_driver.config.load
    from openeo_driver.config import OpenEoBackendConfig
    from openeo_driver.server import build_backend_deploy_metadata
    from openeo_driver.urlsigning import UrlSigner
    from openeo_driver.users.oidc import OidcProvider

    providers = [] if idp is None else [OidcProvider(
        id=OidcIdp.PROVIDER_ID, issuer=idp.issuer, title="s2cr test OpenID Connect provider (loopback)",
        scopes=["openid", "openeo", "unsupported-here"], default_clients=[{"id": idp.client_id, "grant_types": [
            "refresh_token", "urn:ietf:params:oauth:grant-type:device_code+pkce"]}])]

    openeo_driver.config.load._backend_config_getter._config = OpenEoBackendConfig(
        id="s2cr-test", deploy_env="test",
        capabilities_title="s2cr test openEO back-end",
        capabilities_description="Local openEO back-end for s2cr's integration tests: openeo-driver + "
                                 "openeo-pg-parser-networkx + openeo-processes-dask on dask.distributed.",
        capabilities_deploy_metadata=build_backend_deploy_metadata(
            packages=["openeo", "openeo_driver", "openeo_pg_parser_networkx", "openeo_processes_dask"]),
        processing_facility="s2cr test back-end", enable_basic_auth=True,
        enable_oidc_auth=bool(providers), oidc_providers=providers,
        valid_basic_auth=lambda u, p: u == args.user and p == args.password,
        url_signer=UrlSigner(secret=secrets.token_hex(16), expiration=24 * 3600),  # asset hrefs need no auth
    )


def make_app(args, impl, idp):
    import flask
    from openeo_driver.views import build_app

    app = build_app(backend_implementation=impl)
    if idp is not None:
        auth = app.extensions["auth_handler"]
        auth._cache = bound_bearer_cache(idp, auth._cache)

    @app.after_request
    def _checksums(resp):
        """openeo-driver's asset model drops `file:checksum`: put it back into results documents."""
        endpoint = (flask.request.endpoint or "").rsplit(".", 1)[-1]
        if endpoint.startswith(("list_job_results", "get_job_result_item")) and resp.status_code == 200 \
                and resp.is_json:
            job = impl.batch_jobs.jobs.get((flask.request.view_args or {}).get("job_id"))
            doc = resp.get_json()
            for name, asset in (doc.get("assets") or {}).items():
                if job and name in job.assets:
                    asset["file:checksum"] = job.assets[name]["file:checksum"]
            resp.set_data(json.dumps(doc))
        return resp

    app.wsgi_app = FaultInjector(app.wsgi_app, args.fail_polls, args.drop_downloads, args.fail_results, args.corrupt_downloads)
    if idp is not None:
        idp.app, app.wsgi_app = app.wsgi_app, idp
    return app


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", required=True, help="the static STAC catalog.json")
    p.add_argument("--workdir", required=True, help="where job results go")
    p.add_argument("--ready", required=True, help="JSON file written (atomically) once serving")
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--user", default="s2cr-test")
    p.add_argument("--password", default="s2cr-test-password")
    p.add_argument("--fail-polls", type=int, default=0, help="the first N GET /jobs/{id} answer HTTP 500")
    p.add_argument("--fail-results", type=int, default=0, help="the first N GET /jobs/{id}/results answer HTTP 503")
    p.add_argument("--drop-downloads", type=int, default=0,
                   help="the first N asset downloads from byte 0 send about half the body, then close")
    p.add_argument("--corrupt-downloads", type=int, default=0,
                   help="the first N asset downloads from byte 0 send the whole body with its first byte changed")
    p.add_argument("--job-delay", type=float, default=0.0, help="seconds a job waits in 'running' before computing")
    p.add_argument("--s2-scaling", help="SCALE,OFFSET: SENTINEL2_L2A's metadata states them (summaries' raster:bands)")
    p.add_argument("--shift-grid", type=float, default=0.0, help="metres added to resample_spatial's grid origin (a misaligned back-end)")
    p.add_argument("--oidc-client-id", help="serve an OpenID Connect provider (id testidp, issuer {server}/oidc) "
                   "with this client (default s2cr-test-client when another --oidc-* option is given)")
    p.add_argument("--oidc-client-secret", help="the client's secret (client_credentials grant)")
    p.add_argument("--oidc-refresh-token", help="the first valid refresh token (it rotates on each use)")
    p.add_argument("--oidc-token-ttl", type=int, default=600, help="access token lifetime, seconds")
    args = p.parse_args()
    global GRID_SHIFT
    GRID_SHIFT = args.shift_grid
    idp = None
    if args.oidc_client_id or args.oidc_client_secret or args.oidc_refresh_token:
        idp = OidcIdp(None, args.oidc_client_id or "s2cr-test-client", args.oidc_client_secret,
                      args.oidc_refresh_token, args.oidc_token_ttl)
        for k in ("no_proxy", "NO_PROXY"):  # openeo-driver asks the provider's /userinfo with `requests`
            os.environ[k] = ",".join(filter(None, (os.environ.get(k), "127.0.0.1")))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from distributed import Client, LocalCluster  # (configures its loggers on import: quieten them after)
    from werkzeug.serving import make_server
    for name in ("openeo_driver", "openeo", "openeo_pg_parser_networkx", "openeo_processes_dask", "distributed",
                 "rasterio", "flask_cors"):
        logging.getLogger(name).setLevel(logging.ERROR if name == "openeo_processes_dask" else logging.WARNING)
    logging.getLogger("openeo_driver.views.error").addFilter(  # no tracebacks for the client's 4xx errors
        lambda r: not (r.exc_info and getattr(r.exc_info[1], "status_code", 500) < 500))
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    catalog = read_catalog(args.catalog)

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None,  # no dashboard; its bare HTTP server on any free port:
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    try:
        client = Client(cluster)  # also the default dask scheduler from here on
        worker_pids = sorted(client.run(os.getpid).values())
        server = make_server("127.0.0.1", args.port, None, threaded=True)  # its app: below, once the port is known
        root = f"http://127.0.0.1:{server.server_port}"
        if idp is not None:
            idp.issuer = f"{root}/oidc"
        install_config(args, idp)
        impl = make_backend(args, catalog, client)
        server.app = make_app(args, impl, idp)
        url = f"{root}/openeo/1.2"
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        ready = Path(args.ready)
        tmp = ready.with_name(ready.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), "worker_pids": worker_pids,
                                   **({"oidc_issuer": idp.issuer} if idp else {}),
                                   "scheduler": cluster.scheduler_address}))
        tmp.replace(ready)
        log.info("ready %.1f s after start: %s (workers %s, scheduler %s)",
                 time.time() - psutil.Process().create_time(), url, worker_pids, cluster.scheduler_address)
        while not stop.wait(0.5):
            pass
        log.info("stopping")
        server.shutdown()
        for job in list(impl.batch_jobs.jobs.values()):
            if job.status in ("queued", "running"):
                impl.batch_jobs.cancel_job(job.id, job.user_id)
        client.close()
    finally:
        cluster.close()
        Path(args.ready).unlink(missing_ok=True)  # no longer serving
    log.info("stopped")


if __name__ == "__main__":
    main()
