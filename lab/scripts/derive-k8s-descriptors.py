#!/usr/bin/env python3
"""Derive lab/data/k8s-descriptors.binpb: the Kubernetes API's protobuf schemas, as a
FileDescriptorSet (message and field names and numbers; no comments, no code).

The lab decodes `application/vnd.kubernetes.protobuf` request bodies through reflection over
these descriptors. The descriptors are taken from the serialized FileDescriptorProtos that the
`k8s-rs-pb` crate embeds in its sources (its own reflection cannot be used: every generated
file lists itself as its dependency, so initialising any descriptor deadlocks).

Usage: derive-k8s-descriptors.py K8S_RS_PB_SRC/v1_34 > lab/data/k8s-descriptors.binpb
"""
import os
import re
import sys

# Only the group versions the lab serves, and what their messages refer to.
FILES = [
    "apimachinery/pkg/runtime/schema",
    "apimachinery/pkg/runtime",
    "apimachinery/pkg/api/resource",
    "apimachinery/pkg/util/intstr",
    "apimachinery/pkg/apis/meta/v1",
    "api/core/v1",
    "api/apps/v1",
    "api/batch/v1",
    "api/networking/v1",
    "api/rbac/v1",
    "api/coordination/v1",
    "api/events/v1",
    "api/discovery/v1",
    "api/policy/v1",
    "api/autoscaling/v1",
    "api/storage/v1",
    "api/scheduling/v1",
    "api/admissionregistration/v1",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1",
]

ESC = {"n": 10, "r": 13, "t": 9, "\\": 92, '"': 34, "'": 39, "0": 0}


def rust_bytes(literal):
    """The bytes of a Rust byte-string literal's body (escapes, line continuations)."""
    out, i = bytearray(), 0
    while i < len(literal):
        c = literal[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = literal[i + 1]
        if n == "\n":
            i += 2
            while i < len(literal) and literal[i] in " \t\n":
                i += 1
        elif n == "x":
            out.append(int(literal[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(ESC[n])
            i += 2
    return bytes(out)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def main():
    root = sys.argv[1]
    out = sys.stdout.buffer
    for f in FILES:
        src = open(os.path.join(root, f, "mod.rs"), encoding="utf-8").read()
        m = re.search(r'static file_descriptor_proto_data: &\'static \[u8\] = b"(.*?)";\n', src, re.S)
        data = rust_bytes(m.group(1))
        # FileDescriptorSet.file (field 1, length-delimited).
        out.write(b"\x0a" + varint(len(data)) + data)


if __name__ == "__main__":
    main()
