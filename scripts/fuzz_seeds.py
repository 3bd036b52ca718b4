#!/usr/bin/env python3
"""Seed corpora of the fuzz targets from real files: the project's own (the demo's AOI, catalog
and project files, confs/), the shared test data (STAC responses split into single items,
Sentinel-1 annotation XML cut to a few vectors) and fuzz/seeds/<target>/.

Usage: scripts/fuzz_seeds.py SHARED_DIR CORPUS_DIR
"""
import json
import pathlib
import shutil
import sys
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parent.parent


def put(corpus, target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def items_of(value):
    """STAC items in a response: an item, or the features of a collection or search page."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        yield value
    elif isinstance(value, dict) and isinstance(value.get("features"), list):
        yield from (f for f in value["features"] if isinstance(f, dict))


def cut_annotation(path, keep=3, values=24):
    """An annotation with its first `keep` vectors, each cut to `values` numbers."""
    tree = ET.parse(path)
    root = tree.getroot()
    for lst in root.iter():
        if lst.tag.endswith("List") and len(lst) > keep:
            for extra in list(lst)[keep:]:
                lst.remove(extra)
            lst.set("count", str(keep))
    for el in root.iter():
        if el.text and len(el.text.split()) > values and el.get("count"):
            el.text = " ".join(el.text.split()[:values])
            el.set("count", str(values))
    return ET.tostring(root)


def main():
    shared, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    data = shared / "data"
    for seeds in (ROOT / "fuzz" / "seeds").iterdir():
        for f in seeds.iterdir():
            put(corpus, seeds.name, f.name, f.read_bytes())
    for f in [ROOT / "assets/demo/aoi.geojson", *ROOT.glob("confs/*.geojson")]:
        put(corpus, "aoi", f.name, f.read_bytes())
    for f in ROOT.glob("confs/*.yaml"):
        put(corpus, "pipeline_yaml", f.name, f.read_bytes())
    n = 0
    for f in [*ROOT.glob("assets/demo/**/*.json"), *(data / "stac").rglob("*.json")]:
        try:
            value = json.loads(f.read_text())
        except (ValueError, UnicodeDecodeError):
            continue
        for item in items_of(value):
            n += 1
            put(corpus, "stac_item", f"item-{n:03}.json", json.dumps(item))
    for f in (data / "s1-grd-safe-annotation").rglob("*.xml"):
        if f.name.startswith(("calibration-", "noise-")):
            put(corpus, "s1_xml", f.name, cut_annotation(f))
    for target in sorted(p.name for p in corpus.iterdir()):
        print(f"{target}: {len(list((corpus / target).iterdir()))} seeds")


if __name__ == "__main__":
    main()
