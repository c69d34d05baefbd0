#!/usr/bin/env python3
"""Progress of `make demo`, read from the lab's control endpoint while Terraform applies.

    demo_progress.py CONTROL_URL ADDRESSES CONTROL_PLANES

ADDRESSES: the machines' addresses, comma-separated; CONTROL_PLANES: how many of them are control
planes. Prints one line per phase as it completes (VMs, Talos install, bootstrap, Kubernetes API,
nodes, Cilium) and exits after the last one; Terraform's own lines go on beside it. Standard library only.
"""

import json
import sys
import time
import urllib.request


def get(control, path):
    try:
        with urllib.request.urlopen(control + path, timeout=2) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def main():
    control, addresses, control_planes = sys.argv[1], set(sys.argv[2].split(",")), int(sys.argv[3])
    total = len(addresses)
    start = time.monotonic()

    def say(phase, text):
        print(f"demo: [{phase}/6 {time.monotonic() - start:5.1f}s] {text}", flush=True)

    def vms(_):
        st = get(control, "/state")
        if not st:
            return None
        running = [v for v in st["vms"] if v["status"] == "running" and not v["template"]]
        return len(running) >= total and f"VMs: {len(running)} running (Talos boots in maintenance mode)"

    def ours(nodes):
        return [n for n in nodes["nodes"] if n["address"] in addresses] if nodes else []

    def installed(_):
        nodes = ours(get(control, "/talos/nodes"))
        done = [n for n in nodes if n["stage"] == "running" and n["machine_type"]]
        return len(done) == total and f"Talos: {total} machines installed and running"

    def bootstrapped(_):
        doc = get(control, "/talos/etcd")
        for c in (doc or {}).get("clusters", []):
            members = [m for m in c["members"] if m["address"] in addresses]
            if c["bootstrapped"] and len(members) == control_planes:
                return f"bootstrap: etcd has {len(members)} of {control_planes} members{' (quorum)' if c['quorum'] else ''}"
        return False

    def apiserver(state):
        doc = get(control, "/k8s")
        for s in (doc or {}).get("apiservers", []):
            state["api"] = s
            return f"Kubernetes API: up at {s['endpoint']}"
        return False

    def nodes(state):
        doc = get(control, "/k8s")
        for s in (doc or {}).get("apiservers", []):
            if s["endpoint"] == state["api"]["endpoint"] and len(s["nodes"]) == total:
                ready = len(s.get("ready_nodes", []))
                note = "" if ready == total else " — NotReady until Cilium runs (next)"
                return f"nodes: {total} registered, {ready} Ready{note}"
        return False

    def cilium(state):
        doc = get(control, "/k8s")
        for s in (doc or {}).get("apiservers", []):
            if s["endpoint"] == state["api"]["endpoint"] and len(s.get("ready_nodes", [])) == total:
                return f"Cilium: agents running, {total} of {total} nodes Ready"
        return False

    state = {}
    for phase, check in enumerate([vms, installed, bootstrapped, apiserver, nodes, cilium], start=1):
        while not (line := check(state)):
            time.sleep(0.2)
        say(phase, line)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
