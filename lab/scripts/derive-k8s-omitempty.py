#!/usr/bin/env python3
"""Derive lab/data/k8s-omitempty.txt from the Kubernetes API Go types.

Kubernetes' protobuf encoding writes every non-pointer scalar field, zero or not, so a decoded
protobuf body cannot tell `hostNetwork: false` (a Go `bool` with `omitempty`: JSON omits it)
from `automountServiceAccountToken: false` (a `*bool`: JSON keeps it). The lab converts
protobuf bodies to the JSON the real server would serve, so it needs the facts: which fields
are non-pointer and tagged `omitempty`. This script lists them, one `<proto message> <field>`
per line (proto package as k8s-rs-pb names it), and nothing else of the sources.

Usage: derive-k8s-omitempty.py API_REPO APIMACHINERY_REPO APIEXTENSIONS_REPO > lab/data/k8s-omitempty.txt
(each a checkout of kubernetes/api, kubernetes/apimachinery, kubernetes/apiextensions-apiserver)
"""
import os
import re
import sys

FIELD = re.compile(r'^\t(\w+)\s+(\S+)\s+`(.*)`')
TAG = re.compile(r'(\w+):"([^"]*)"')


def structs(path):
    name = None
    for line in open(path, encoding="utf-8"):
        m = re.match(r'^type (\w+) struct \{', line)
        if m:
            name = m.group(1)
            continue
        if line.startswith('}'):
            name = None
            continue
        if name is None:
            continue
        f = FIELD.match(line)
        if not f:
            continue
        go_type, tags = f.group(2), dict(TAG.findall(f.group(3)))
        json_tag, proto = tags.get("json", ""), tags.get("protobuf", "")
        pname = re.search(r'name=(\w+)', proto)
        if not pname or "omitempty" not in json_tag.split(",")[1:]:
            continue
        if go_type.startswith(("*", "[]", "map[")):
            continue
        yield name, pname.group(1)


def main():
    api, machinery, extensions = sys.argv[1:4]
    sources = [
        (os.path.join(api, g, "v1", "types.go"), f"api.{g}.v1")
        for g in ("core", "apps", "networking", "rbac", "coordination", "events", "discovery", "policy", "batch", "autoscaling", "storage", "scheduling")
    ]
    sources.append((os.path.join(machinery, "pkg/apis/meta/v1/types.go"), "apimachinery.pkg.apis.meta.v1"))
    sources.append((os.path.join(extensions, "pkg/apis/apiextensions/v1/types.go"), "apiextensions_apiserver.pkg.apis.apiextensions.v1"))
    out = set()
    for path, package in sources:
        if not os.path.exists(path):
            continue
        for message, field in structs(path):
            out.add(f"{package}.{message} {field}")
    for line in sorted(out):
        print(line)


if __name__ == "__main__":
    main()
