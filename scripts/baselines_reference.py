#!/usr/bin/env python3
"""Independent reference for the assessment's baselines (numpy, scipy, rasterio).

Scores the synthetic image, persistence (the pre-fire image as the post-fire one), a per-band
ridge regression fitted here with numpy, and the radar-only burned area, over the pixels of a
held-out mask, and prints JSON. The Rust test `assess::baselines_match_an_independent_numpy_
computation` compares it with the assessment's report.json.

    python3 scripts/baselines_reference.py --pre S2_t0.tif --real S2_t1.tif \
        --synthetic synthetic_S2_t1.tif --inputs inputs.vrt --held held.u8 [--lambda 1e-3] \
        [--offsets REAL,SYNTHETIC,LINEAR]

`--offsets`: the dNBR offsets the assessment subtracted (report.json's `dnbr_offset` and the
rows' `dnbr_offset`), subtracted here too before dNBR errors and classes (persistence's is 0).

`held.u8`: one byte per grid pixel, row by row: 1 for a held-out pixel, 0 for a training one.
"""
import argparse
import json
import math

import numpy as np
import rasterio
from scipy.ndimage import gaussian_filter, minimum_filter

BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]
LOW_FROM = 0.1  # dNBR at which the default severity classes start calling a pixel burned


def read(path):
    """Bands by description, and the pixels that are valid and clear (mask band 0)."""
    with rasterio.open(path) as ds:
        data = ds.read().astype(np.float32)
        masks = ds.read_masks()
        names = [d or "" for d in ds.descriptions]
    valid = np.all(masks != 0, axis=0) & np.all(np.isfinite(data), axis=0)
    lower = [n.lower() for n in names]
    if "mask" in lower:
        valid &= data[lower.index("mask")] == 0
    return {n: data[i] for i, n in enumerate(names)}, valid


def nbr(img):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (img["B08"] - img["B12"]) / (img["B08"] + img["B12"])


def kappa(real_burned, map_burned):
    tp = float(np.sum(real_burned & map_burned))
    fp = float(np.sum(~real_burned & map_burned))
    fn = float(np.sum(real_burned & ~map_burned))
    tn = float(np.sum(~real_burned & ~map_burned))
    n = tp + fp + fn + tn
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    return 0.0 if pe == 1.0 else (po - pe) / (1.0 - pe)


def ssim_masked(x, y, keep):
    """Mean of the Gaussian SSIM map (sigma 1.5, 11 x 11, as scikit-image) over the windows
    wholly inside the grid and the kept pixels."""
    x = np.where(keep, x, 0).astype(np.float64)
    y = np.where(keep, y, 0).astype(np.float64)
    f = lambda a: gaussian_filter(a, sigma=1.5, truncate=3.5)
    ux, uy = f(x), f(y)
    vx, vy, vxy = f(x * x) - ux * ux, f(y * y) - uy * uy, f(x * y) - ux * uy
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    ok = minimum_filter(keep.astype(np.uint8), size=11, mode="constant", cval=0).astype(bool)
    ok[:5, :] = ok[-5:, :] = False
    ok[:, :5] = ok[:, -5:] = False
    return float(s[ok].mean()) if ok.any() else float("nan")


def scores(real, src, pre, keep, off_real=0.0, off_src=0.0):
    r = np.stack([real[b][keep] for b in BANDS]).astype(np.float64)
    s = np.stack([src[b][keep] for b in BANDS]).astype(np.float64)
    mse = float(np.mean((r - s) ** 2))
    dot = np.sum(r * s, axis=0)
    norms = np.sqrt(np.sum(r * r, axis=0)) * np.sqrt(np.sum(s * s, axis=0))
    ok = norms > 0
    sam = np.degrees(np.arccos(np.clip(dot[ok] / norms[ok], -1, 1)))
    n_pre, n_real, n_src = nbr(pre)[keep], nbr(real)[keep], nbr(src)[keep]
    d_real, d_src = n_pre - n_real - np.float32(off_real), n_pre - n_src - np.float32(off_src)
    return {
        "mae": float(np.mean(np.abs(r - s))),
        "psnr_db": 10 * math.log10(1.0 / mse),
        "ssim": float(np.mean([ssim_masked(real[b], src[b], keep) for b in BANDS])),
        "sam_deg": float(sam.mean()),
        "nbr_mae": float(np.mean(np.abs(n_real.astype(np.float64) - n_src))),
        "dnbr_mae": float(np.mean(np.abs(d_real.astype(np.float64) - d_src))),
        "kappa": kappa(d_real >= LOW_FROM, d_src >= LOW_FROM),
    }


def main():
    ap = argparse.ArgumentParser()
    for a in ["--pre", "--real", "--synthetic", "--inputs", "--held"]:
        ap.add_argument(a, required=True)
    ap.add_argument("--lambda", dest="lam", type=float, default=1e-3)
    ap.add_argument("--offsets", default="0,0,0", help="dNBR offsets of the real map, the synthetic map and the linear model")
    a = ap.parse_args()
    off_real, off_synth, off_linear = (float(v) for v in a.offsets.split(","))
    pre, pre_ok = read(a.pre)
    real, real_ok = read(a.real)
    synth, synth_ok = read(a.synthetic)
    with rasterio.open(a.inputs) as ds:
        x = ds.read().astype(np.float32)
        x_ok = np.all(ds.read_masks() != 0, axis=0) & np.all(np.isfinite(x), axis=0)
        channels = list(ds.descriptions)
    h, w = real_ok.shape
    held = np.fromfile(a.held, dtype=np.uint8).reshape(h, w).astype(bool)

    # Features: every input channel but masks, then the dB change per polarisation.
    feats = [x[i] for i, c in enumerate(channels) if "mask" not in c.lower()]
    for i, c in enumerate(channels):
        if c.startswith("S1_t0:") and "S1_t1:" + c[6:] in channels:
            feats.append(x[channels.index("S1_t1:" + c[6:])] - x[i])
    f = np.stack(feats).astype(np.float64)
    f_ok = np.all(np.isfinite(f), axis=0)
    real_fin = np.all(np.stack([np.isfinite(real[b]) for b in BANDS]), axis=0)

    # Ridge on standardized features, fitted on the training pixels with numpy's solver.
    train = ~held & real_ok & x_ok & f_ok & real_fin
    z = f[:, train].T
    mean, sd = z.mean(axis=0), z.std(axis=0)
    zs = (z - mean) / sd
    n = zs.shape[0]
    a_mat = zs.T @ zs / n + a.lam * np.eye(zs.shape[1])
    linear = {}
    for b in BANDS:
        y = real[b][train].astype(np.float64)
        beta = np.linalg.solve(a_mat, zs.T @ (y - y.mean()) / n)
        pred = ((f.reshape(f.shape[0], -1).T - mean) / sd) @ beta + y.mean()
        linear[b] = pred.reshape(h, w).astype(np.float32)

    lin_ok = np.all(np.stack([np.isfinite(linear[b]) for b in BANDS]), axis=0) & x_ok & f_ok
    fin = lambda img: np.all(np.stack([np.isfinite(img[b]) for b in BANDS]), axis=0)
    keep = held & pre_ok & real_ok & synth_ok & lin_ok & fin(pre) & fin(real) & fin(synth)

    out = {"count": int(keep.sum()), "fit_pixels": int(n), "rows": {}}
    for name, src, off in [("synthetic", synth, off_synth), ("persistence", pre, 0.0), ("linear", linear, off_linear)]:
        out["rows"][name] = scores(real, src, pre, keep, off_real, off)

    # Radar-only: VH change; the threshold maximising F1 on the training pixels, over the
    # upper edges of 0.05 dB bins from -20 dB (changes outside +-20 dB fall in the end bins).
    pol = "VH" if "S1_t0:VH" in channels else next(c[6:] for c in channels if c.startswith("S1_t0:"))
    change = x[channels.index("S1_t1:" + pol)] - x[channels.index("S1_t0:" + pol)]
    d_real = nbr(pre) - nbr(real) - np.float32(off_real)
    fit_set = ~held & real_ok & pre_ok & np.isfinite(change) & np.isfinite(d_real)
    burned_fit = d_real[fit_set] >= LOW_FROM
    c_fit = np.clip(change[fit_set], -20.0, 19.999)
    edges = -20.0 + 0.05 * np.arange(1, 801)
    best, threshold = -1.0, None
    for t in edges:
        m = c_fit < t
        tp = np.sum(m & burned_fit)
        f1 = 2 * tp / (tp + np.sum(m) + np.sum(burned_fit))
        if f1 > best:
            best, threshold = f1, float(t)
    radar_keep = keep & np.isfinite(change)
    out["rows"]["radar"] = {"kappa": kappa(d_real[radar_keep] >= LOW_FROM, change[radar_keep] <= threshold), "threshold_db": threshold, "polarisation": pol}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
