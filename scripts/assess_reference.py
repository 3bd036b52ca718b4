#!/usr/bin/env python3
"""Independent reference values for the assessment metrics (numpy + scikit-image).

Reads a real SEN12MS-CR chip pair from ../shared/data (the cloud-free image as "real", the cloudy
acquisition of the same patch as "synthetic") and writes tests/fixtures/assess_reference.json,
whose numbers the Rust tests assert to 1e-5.

    pip install numpy scikit-image tifffile
    python3 scripts/assess_reference.py
"""
import json
import pathlib

import numpy as np
import tifffile
from scipy.ndimage import minimum_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "s1s2-sen12mscr"
CHIP = "ROIs1970_fall_139_p839.tif"
# SEN12MS band order B1..B8, B8A, B9, B10, B11, B12: 0-based indices of the bands we assess.
BANDS = {"B02": 1, "B03": 2, "B04": 3, "B08": 7, "B11": 11, "B12": 12}
DATA_RANGE = 1.0


def load(kind):
    a = tifffile.imread(DATA / kind / CHIP)  # (256, 256, 13) uint16
    if a.shape[0] == 13:
        a = np.moveaxis(a, 0, -1)
    return {name: (a[:, :, i].astype(np.float32) / np.float32(10000.0)) for name, i in BANDS.items()}


def ssim_masked(x, y, valid):
    """Mean of scikit-image's SSIM map over pixels whose 11 x 11 window is inside and all valid."""
    _, smap = structural_similarity(
        x.astype(np.float64), y.astype(np.float64), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=DATA_RANGE, full=True)
    ok = minimum_filter(valid.astype(np.uint8), size=11, mode="constant", cval=0).astype(bool)
    ok[:5, :] = ok[-5:, :] = False
    ok[:, :5] = ok[:, -5:] = False
    return float(smap[ok].mean())


def metrics(real, synth, valid):
    out = {"bands": {}}
    sq = []
    ab = []
    for name in BANDS:
        r = real[name].astype(np.float64)
        s = synth[name].astype(np.float64)
        d = (r - s)[valid]
        entry = {
            "rmse": float(np.sqrt(np.mean(d * d))),
            "mae": float(np.mean(np.abs(d))),
            "ssim": ssim_masked(real[name], synth[name], valid),
        }
        if valid.all():
            entry["psnr"] = float(peak_signal_noise_ratio(r, s, data_range=DATA_RANGE))
            full_ssim = structural_similarity(r, s, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=DATA_RANGE)
            assert abs(full_ssim - entry["ssim"]) < 1e-12
        else:
            entry["psnr"] = float(10 * np.log10(DATA_RANGE ** 2 / np.mean(d * d)))
        out["bands"][name] = entry
        sq.append(d * d)
        ab.append(np.abs(d))
    R = np.stack([real[n].astype(np.float64) for n in BANDS])[:, valid]
    S = np.stack([synth[n].astype(np.float64) for n in BANDS])[:, valid]
    cos = (R * S).sum(0) / (np.linalg.norm(R, axis=0) * np.linalg.norm(S, axis=0))
    out["sam_degrees"] = float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())
    out["rmse"] = float(np.sqrt(np.concatenate(sq).mean()))
    out["mae"] = float(np.concatenate(ab).mean())
    out["valid_pixels"] = int(valid.sum())
    return out


def nbr(b):
    return (b["B08"].astype(np.float64) - b["B12"]) / (b["B08"].astype(np.float64) + b["B12"])


def main():
    real, synth = load("s2_cloudfree"), load("s2_cloudy")
    all_valid = np.ones(real["B02"].shape, bool)
    # A second case with a mask: the bright (cloudy) pixels of the "synthetic" image left out.
    masked = synth["B02"] < 0.2
    d = nbr(real) - nbr(synth)
    ref = {
        "chip": f"s1s2-sen12mscr/{{s2_cloudfree,s2_cloudy}}/{CHIP}",
        "data_range": DATA_RANGE,
        "all_valid": metrics(real, synth, all_valid),
        "masked": metrics(real, synth, masked),
        "nbr_real_mean": float(nbr(real).mean()),
        "dnbr_mean": float(d.mean()),
        "dnbr_at_100_200": float(d[100, 200]),
    }
    out = ROOT / "tests" / "fixtures" / "assess_reference.json"
    out.write_text(json.dumps(ref, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
