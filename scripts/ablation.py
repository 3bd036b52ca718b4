#!/usr/bin/env python3
"""The generator's options compared on the demo's held-out blocks.

Makes the embedded demo once (`s2cr demo --no-gui`), then trains one run per model option and
seed on its training set, synthesizes and assesses each, and prints one table: the synthetic
image's row of the assessment's baselines table (held-out clear pixels) per option, mean and
spread over the seeds, with the linear model and persistence from the same table. Standard
library only; everything else is `s2cr`.

    python3 scripts/ablation.py --s2cr target/release/s2cr --dir /tmp/ablation --seeds 1 2 3

Options (model.yaml and train.yaml keys over the demo's): `pix2pix` (as the demo trains today),
`residual` (`output: residual`), `residual-linear` (and `linear: true`), `spectral` (pix2pix with
the NBR, NDVI and spectral-angle losses), `residual-spectral` (both), `aleatoric` (pix2pix with
its own uncertainty head), `residual-aleatoric`, `resize-conv` (nearest resize and 3x3 in the
decoder) and `residual-resize-aleatoric`; the last column is the share of real values
within the synthetic image +/- 2 sd (mean over bands) where the run wrote an uncertainty, and
with validation blocks (`--val-fraction`) the "to 95 %" column is the training time at which
the validation L1 first came within 5 % of its final value (final / L1 >= 0.95).

A second demo-like project from another real SEN12MS-CR patch, with the same simulated burn:

    s2cr build-demo-assets --from ../shared/data/s1s2-sen12mscr --patch ROIs2017_winter_112_p797 --out /tmp/cat797
    python3 scripts/ablation.py --s2cr target/release/s2cr --dir /tmp/ablation-797 --catalog /tmp/cat797

Their numbers are in docs/models.md.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

# The losses on what the analyst reads (train.yaml), weighted as the L1 term is (100).
SPECTRAL = {"nbr_weight": 100.0, "ndvi_weight": 100.0, "sam_weight": 100.0}

# Per option: (model.yaml keys, train.yaml keys).
VARIANTS = {
    "pix2pix": ({}, {}),
    "residual": ({"output": "residual"}, {}),
    "residual-linear": ({"output": "residual", "linear": True}, {}),
    "spectral": ({}, SPECTRAL),
    "residual-spectral": ({"output": "residual"}, SPECTRAL),
    "aleatoric": ({"uncertainty": "aleatoric"}, {}),
    "residual-aleatoric": ({"output": "residual", "uncertainty": "aleatoric"}, {}),
    "resize-conv": ({"upsample": "resize-conv"}, {}),
    "residual-resize-aleatoric": ({"output": "residual", "upsample": "resize-conv", "uncertainty": "aleatoric"}, {}),
}

COLUMNS = [
    ("kappa", lambda r: r["burned"]["kappa"], 3),
    ("dNBR MAE", lambda r: r["image"]["dnbr_mae"], 3),
    ("NBR MAE", lambda r: r["image"]["nbr_mae"], 3),
    ("PSNR dB", lambda r: r["image"]["psnr_db"], 1),
    ("SSIM", lambda r: r["image"]["ssim"], 3),
    ("SAM deg", lambda r: r["image"]["sam_deg"], 2),
]


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done


def yaml_lines(d):
    return "".join(f"{k}: {json.dumps(v)}\n" for k, v in d.items())


def time_to_quality(metrics):
    """Training seconds at which the validation L1 first came within 5 % of its final value
    (final / L1 >= 0.95); None without validation blocks."""
    rows = []
    with open(metrics) as f:
        head = f.readline().strip().split(",")
        for line in f:
            r = dict(zip(head, line.strip().split(",")))
            try:
                val, secs = float(r["val_l1"]), float(r["seconds"])
            except (KeyError, ValueError):
                continue
            if val == val:
                rows.append((secs, val))
    if not rows:
        return None
    final = rows[-1][1]
    return next(secs for secs, val in rows if final / val >= 0.95)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--s2cr", default="target/release/s2cr", help="the s2cr program (a release build)")
    p.add_argument("--dir", required=True, type=Path, help="working folder (the demo project is made in DIR/demo)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=600, help="at most this many training steps per run (the demo's default; its epochs end at 400)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--json", type=Path, help="also write every run's numbers here")
    p.add_argument("--catalog", type=Path, help="make the demo from this catalog (`s2cr build-demo-assets --patch`) "
                                                "instead of the embedded one")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="rebuild the demo's dataset with this share of validation blocks (the demo has none; an "
                        "uncertainty head is calibrated on them); use another --dir, the held-out pixels change")
    a = p.parse_args()
    s2cr = str(Path(a.s2cr).resolve())
    project = a.dir / "demo"
    if not (project / "project.yaml").is_file():
        print(f"making the demo in {project}", file=sys.stderr)
        run([s2cr, "demo", str(project), "--no-gui", "--device", "cpu", "-q"]
            + (["--catalog", str(a.catalog.resolve())] if a.catalog else []))
    if a.val_fraction > 0:
        pipeline = project / "pipeline.yaml"
        text = pipeline.read_text()
        wanted = f"val_fraction: {a.val_fraction}"
        if wanted not in text:
            if "val_fraction: 0.0" not in text:
                sys.exit(f"{pipeline}: no val_fraction: 0.0 to change")
            print(f"rebuilding the demo's dataset with {wanted}", file=sys.stderr)
            pipeline.write_text(text.replace("val_fraction: 0.0", wanted))
            only = a.dir / "dataset-only.yaml"
            only.write_text(pipeline.read_text().replace("stages: []", "stages: [dataset]"))
            run([s2cr, "run", str(only), "--project", str(project), "-q"])
    # The demo's own settings, with each option's keys over them.
    model_base = (project / "model.yaml").read_text()
    train_base = (project / "train.yaml").read_text()
    # The generators are compared on the raw dNBR (no offset: the tables in docs/models.md were
    # made so; the offset moves every map's classes by its own mean over unburned land).
    helps = subprocess.run([s2cr, "assess", "--help"], capture_output=True, text=True).stdout
    no_offset = ["--no-offset"] if "--no-offset" in helps else []
    settings = a.dir / "settings"
    settings.mkdir(parents=True, exist_ok=True)
    results = {}
    for variant in a.variants:
        for seed in a.seeds:
            name = f"ablation-{variant}-s{seed}"
            model = settings / f"{name}-model.yaml"
            model_keys, train_keys = VARIANTS[variant]
            model.write_text(model_base + yaml_lines(model_keys))
            train = settings / f"{name}-train.yaml"
            lines = [l for l in train_base.splitlines() if not l.startswith(("seed:", "max_steps:", "workers:") + tuple(f"{k}:" for k in train_keys))]
            train.write_text("\n".join(lines) + f"\nseed: {seed}\nmax_steps: {a.steps}\nworkers: 0\n" + yaml_lines(train_keys))
            report = project / "outputs" / name / "assess" / "report.json"
            if not report.is_file():
                print(f"{name}: training, synthesizing, assessing", file=sys.stderr)
                t = time.time()
                run([s2cr, "train", "--project", str(project), "--run", name, "--model", str(model), "--train", str(train), "--device", "cpu", "-q"])
                train_secs = time.time() - t
                t = time.time()
                run([s2cr, "infer", "--project", str(project), "--run", name, "--device", "cpu", "-q"])
                infer_secs = time.time() - t
                run([s2cr, "assess", "--project", str(project), "--run", name, "-q"] + no_offset)
                (project / "outputs" / name / "ablation-times.json").write_text(json.dumps({"train_secs": train_secs, "infer_secs": infer_secs}))
            full = json.loads(report.read_text())
            rows = {r["id"]: r for r in full["baselines"]["rows"]}
            check = full.get("uncertainty") or {}
            bands = check.get("bands") or []
            rows["synthetic"]["within_2sd"] = statistics.mean(b["within_2sd"] for b in bands) if bands else None
            times = json.loads((project / "outputs" / name / "ablation-times.json").read_text())
            steps = json.loads((project / "runs" / name / "checkpoint.json").read_text())["step"]
            to_quality = time_to_quality(project / "runs" / name / "metrics.csv")
            results.setdefault(variant, []).append({"seed": seed, "rows": rows, "steps": steps, "to_95_secs": to_quality, **times})
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))

    def cell(values, digits):
        values = [v for v in values if v is not None]
        if not values:
            return "n/a"
        if len(values) == 1:
            return f"{values[0]:.{digits}f}"
        return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

    first = next(iter(results.values()))[0]["rows"]
    held = first["synthetic"]
    steps = sorted({r["steps"] for runs in results.values() for r in runs})
    print(f"held-out clear pixels of {a.catalog or 'the demo'}; {len(a.seeds)} seed(s), {'/'.join(map(str, steps))} steps each; mean ± sd over the seeds")
    print("| source | " + " | ".join(c[0] for c in COLUMNS) + " | train s | to 95 % s | infer s | within 2 sd |")
    print("|---" * (len(COLUMNS) + 5) + "|")
    for variant, runs in results.items():
        cells = [cell([f(r["rows"]["synthetic"]) for r in runs], d) for _, f, d in COLUMNS]
        within = cell([r["rows"]["synthetic"].get("within_2sd") for r in runs], 3)
        print(f"| {variant} | " + " | ".join(cells) + f" | {cell([r['train_secs'] for r in runs], 0)} | {cell([r['to_95_secs'] for r in runs], 0)} | {cell([r['infer_secs'] for r in runs], 1)} | {within} |")
    for other in ["linear", "persistence"]:
        if other in first:
            print(f"| {other} (baseline) | " + " | ".join(cell([f(first[other])], d) for _, f, d in COLUMNS) + " | | | | |")
    del held


if __name__ == "__main__":
    main()
