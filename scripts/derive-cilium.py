#!/usr/bin/env python3
"""Derive the static data the Cilium object builder (crates/cilium) embeds.

The Cilium 1.20.0 chart carries some content verbatim whatever the options we expose: the Grafana
dashboards (~510 KiB of JSON), the Envoy bootstrap configuration, the agent's postStart script and
the Hubble UI's nginx configuration. They are taken from the real Helm renders in
../shared/reference/cilium/golden/ (the script checks that every render that carries one carries
the same text), so nothing is copied by hand. The Gateway API CRDs (standard channel) come from
../shared/reference/crds/gateway-api-v1.6.1/ with their prose dropped (`description` fields of the
schemas); everything a server validates with is kept, so they stay valid structural CRDs.

The output is committed under crates/cilium/data/, so a clone builds without ../shared:

    .venv/bin/python scripts/derive-cilium.py          # rewrite crates/cilium/data/
    .venv/bin/python scripts/derive-cilium.py --check  # exit 1 if crates/cilium/data/ is stale
"""

import argparse
import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference"
GOLDEN = REFERENCE / "cilium" / "golden"
GATEWAY_CRDS = REFERENCE / "crds" / "gateway-api-v1.6.1"
OUT = ROOT / "crates" / "cilium" / "data"

SETS = ["talos-base", "hubble", "wireguard", "bgp", "gateway-api", "no-l7", "xdp-dsr", "ingress",
        "observability", "full"]
DASHBOARDS = ["cilium-dashboard", "cilium-operator-dashboard", "hubble-dashboard",
              "hubble-dns-namespace", "hubble-l7-http-metrics-by-workload",
              "hubble-network-overview-namespace"]


def objects(set_name):
    with open(GOLDEN / f"{set_name}.yaml") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(objs, kind, name):
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    return None


def same_everywhere(what, extract):
    """The one text `extract` finds in every golden set that has it."""
    seen = {}
    for s in SETS:
        value = extract(objects(s))
        if value is not None:
            seen.setdefault(value, []).append(s)
    if len(seen) != 1:
        sys.exit(f"derive-cilium: {what}: expected one text across the golden sets, found {len(seen)}")
    return next(iter(seen))


def config_data(kind, name, key):
    def extract(objs):
        o = find(objs, kind, name)
        return None if o is None else o["data"][key]
    return extract


def agent_post_start(objs):
    ds = find(objs, "DaemonSet", "cilium")
    agent = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "cilium-agent")
    return agent["lifecycle"]["postStart"]["exec"]["command"][2]


def strip_descriptions(value, in_properties=False):
    """Copy a schema without its `description` prose; keys under `properties` are field names."""
    if isinstance(value, list):
        return [strip_descriptions(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if in_properties:
            out[key] = strip_descriptions(v)
        elif key == "description":
            continue
        else:
            out[key] = strip_descriptions(v, in_properties=(key == "properties"))
    return out


def gateway_crds():
    crds = []
    for path in sorted(GATEWAY_CRDS.glob("*.yaml")):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    if "schema" in version:
                        version["schema"] = strip_descriptions(version["schema"])
                crds.append(doc)
    crds.sort(key=lambda c: c["metadata"]["name"])
    return json.dumps(crds, indent=1, sort_keys=True) + "\n"


def outputs():
    files = {
        "envoy-bootstrap-config.json": same_everywhere(
            "envoy bootstrap", config_data("ConfigMap", "cilium-envoy-config", "bootstrap-config.json")),
        "agent-poststart.sh": same_everywhere("agent postStart script", agent_post_start),
        "hubble-ui-nginx.conf": same_everywhere(
            "hubble-ui nginx.conf", config_data("ConfigMap", "hubble-ui-nginx", "nginx.conf")),
        "gateway-api-crds.json": gateway_crds(),
    }
    for name in DASHBOARDS:
        files[f"dashboards/{name}.json"] = same_everywhere(
            f"dashboard {name}", config_data("ConfigMap", name, f"{name}.json"))
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if crates/cilium/data/ is stale")
    args = parser.parse_args()
    stale = []
    for rel, text in outputs().items():
        path = OUT / rel
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        sys.exit(f"derive-cilium: stale: {', '.join(stale)} (run scripts/derive-cilium.py)")
    for rel in stale:
        print(f"wrote crates/cilium/data/{rel}")


if __name__ == "__main__":
    main()
