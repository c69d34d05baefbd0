#!/usr/bin/env python3
"""Derive the data the lab embeds from the upstream reference material in ../shared/reference.

Facts are kept (paths, methods, parameters, types, formats, enums, bounds, patterns, defaults,
returns, permissions; JSON-schema structure); upstream prose is dropped (descriptions, titles,
examples, display hints). The output is committed under lab/data/, so a clone builds without
../shared. Run it after the reference material changes:

    python3 scripts/derive-reference.py            # rewrite lab/data/
    python3 scripts/derive-reference.py --check    # exit 1 if lab/data/ is stale
"""

import argparse
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
REFERENCE = pathlib.Path(os.environ.get("INFRAFLUX_REFERENCE", ROOT.parent / "shared" / "reference"))
OUT = ROOT / "lab" / "data"

# Keys holding prose in PVE's apidata. Parameter names are never touched: they are keys of
# `properties` objects and of object-valued `format`s, which are walked as name maps.
PVE_PROSE = {"description", "verbose_description", "format_description", "typetext", "title"}
# Keys holding prose or illustrations in a JSON schema.
SCHEMA_PROSE = {"description", "markdownDescription", "x-intellij-html-description", "title", "examples", "$comment"}


def strip(value, prose, name_maps):
    """Copy `value` without the keys in `prose`; children of keys in `name_maps` are names."""
    if isinstance(value, list):
        return [strip(v, prose, name_maps) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if key in prose:
            continue
        if key in name_maps and isinstance(v, dict):
            out[key] = {name: strip(sub, prose, name_maps) for name, sub in v.items()}
        else:
            out[key] = strip(v, prose, name_maps)
    return out


def derive_pve(doc):
    return strip(doc, PVE_PROSE, {"properties", "format"})


def derive_schema(doc):
    return strip(doc, SCHEMA_PROSE, {"properties", "$defs", "definitions", "patternProperties"})


TARGETS = [
    ("proxmox/apidata-pve-9.1.json", "pve-apidata-9.1.json", derive_pve),
    ("talos/config.schema-v1.13.9.json", "talos-config-schema-v1.13.9.json", derive_schema),
    ("talos/config.schema-v1.14.0-rc.1.json", "talos-config-schema-v1.14.0-rc.1.json", derive_schema),
]


def render(source, derive):
    doc = json.loads((REFERENCE / source).read_text())
    return json.dumps(derive(doc), indent=None, separators=(",", ":"), sort_keys=False) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if lab/data/ is stale")
    args = parser.parse_args()
    if not REFERENCE.is_dir():
        sys.exit(f"no reference material at {REFERENCE}: it sits beside the repository on our machines")
    stale = []
    for source, target, derive in TARGETS:
        text = render(source, derive)
        path = OUT / target
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"{path.relative_to(ROOT)}: {len(text)} bytes from {source}")
    if stale:
        sys.exit("stale derived data (run python3 scripts/derive-reference.py): " + ", ".join(stale))


if __name__ == "__main__":
    main()
