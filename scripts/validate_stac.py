#!/usr/bin/env python3
"""Validate the STAC files s2cr writes, offline.

Usage: validate_stac.py PATH...   (files, or folders searched for *.json)

Every JSON object with a `stac_version` is checked against the core STAC JSON Schema of its
type (Item, Catalog, Collection) that pystac ships (pystac.validation.jsonschemas: no network).
Extension schemas (`stac_extensions`) are checked only where a locally installed package ships
them; none does in the pinned set, so they are listed as unchecked.

Prints one JSON document: {"checked": [...], "errors": {file: [messages]}, "unchecked_extensions":
{uri: [files]}}; exits 1 when a file breaks its core schema, 2 on a usage error.
"""

import json
import sys
from pathlib import Path

from jsonschema import Draft7Validator
from pystac.validation.local_validator import get_local_schema_cache
from referencing import Registry, Resource

VERSION = "1.0.0"
SCHEMAS = {
    "Feature": f"https://schemas.stacspec.org/v{VERSION}/item-spec/json-schema/item.json",
    "Catalog": f"https://schemas.stacspec.org/v{VERSION}/catalog-spec/json-schema/catalog.json",
    "Collection": f"https://schemas.stacspec.org/v{VERSION}/collection-spec/json-schema/collection.json",
}


def files(paths):
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(p.rglob("*.json"))
        else:
            yield p


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cache = get_local_schema_cache()
    registry = Registry().with_resources([(uri, Resource.from_contents(doc)) for uri, doc in cache.items()])
    checked, errors, unchecked = [], {}, {}
    for f in files(argv):
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            errors[str(f)] = [f"not readable JSON: {e}"]
            continue
        if not isinstance(doc, dict) or "stac_version" not in doc:
            continue
        kind = doc.get("type")
        if kind not in SCHEMAS:
            errors[str(f)] = [f"type {kind!r} is none of {', '.join(SCHEMAS)}"]
            continue
        if doc["stac_version"] != VERSION:
            errors[str(f)] = [f"stac_version {doc['stac_version']!r}: the local schemas are v{VERSION}"]
            continue
        validator = Draft7Validator(cache[SCHEMAS[kind]], registry=registry)
        found = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if found:
            errors[str(f)] = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in found[:20]]
        checked.append(str(f))
        for uri in doc.get("stac_extensions", []):
            unchecked.setdefault(uri, []).append(str(f))
    print(json.dumps({"checked": checked, "errors": errors, "unchecked_extensions": unchecked}, indent=1))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
