#!/usr/bin/env bash
# `make demo`: the InfraFlux stack (terraform/) applied by real Terraform to the embedded lab.
#
#   scripts/demo.sh         build, start the lab, terraform apply, print a summary, keep the lab
#                           running until Ctrl-C
#   scripts/demo.sh down    stop the lab and remove .demo/ (`make demo-down`)
#
# INFRAFLUX_DEMO_DIR (default .demo) holds the lab, the Terraform working copy and its state, and
# the kubeconfig/talosconfig. INFRAFLUX_DEMO_WAIT=0 returns after the summary (lab left running).
#
# The machines get addresses in a free loopback block 127.N.0.0/24 (N from 20 up): a block is
# taken when another process (another lab, another demo) listens on one of its machine
# addresses, or another demo holds its lock file. The lab refuses to start a VM whose address is
# held elsewhere, so nothing can talk to someone else's machines.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DEMO="${INFRAFLUX_DEMO_DIR:-$ROOT/.demo}"
mkdir -p "$DEMO"
DEMO="$(cd "$DEMO" && pwd -P)"
BIN="${INFRAFLUX_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
LAB="$BIN/infraflux-lab"
TF="$ROOT/.tools/bin/terraform-1.15"
PY="$ROOT/.venv/bin/python"
VERSION="0.1.0"
STACK="$DEMO/stack"
LOCKS="${TMPDIR:-/tmp}"

if [[ "${1:-}" == "down" ]]; then
  if [[ -f "$DEMO/lab/lab.pid" ]]; then "$LAB" down --dir "$DEMO/lab" || true; fi
  rm -rf "$DEMO"
  echo "demo: lab stopped, $DEMO removed"
  exit 0
fi

step() { printf '\n==> %s\n' "$*"; }
lab_running() { [[ -f "$DEMO/lab/lab.pid" ]] && kill -0 "$(cat "$DEMO/lab/lab.pid")" 2>/dev/null; }
# A lab is known by its CA (a new one per start): state made against one lab means nothing to
# another, because the lab keeps its machines in memory.
lab_id() { "$PY" -c 'import hashlib, json, sys; print(hashlib.sha256(json.load(open(sys.argv[1]))["ca_cert_pem"].encode()).hexdigest()[:16])' "$DEMO/lab/lab.json"; }

step "lab"
REUSING=0
if lab_running; then
  echo "reusing the lab already running in $DEMO/lab"
  REUSING=1
else
  rm -rf "$DEMO/lab"
fi

# State from an earlier lab (stopped with Ctrl-C, or restarted) describes machines that are gone.
if [[ -f "$STACK/terraform.tfstate" ]]; then
  if (( REUSING )) && [[ "$(cat "$STACK/.lab-id" 2>/dev/null)" == "$(lab_id)" ]]; then
    echo "continuing with the state in $STACK (it belongs to this lab)"
  else
    stale="$DEMO/stale-$(date +%Y%m%d-%H%M%S).tfstate"
    mv "$STACK/terraform.tfstate" "$stale"
    rm -rf "$STACK"
    echo "demo: $STACK held state from a lab that is no longer running (its machines went with it);"
    echo "      starting clean. The old state is kept as $stale."
  fi
fi

# The machines' loopback block: the one in this state if it is being continued, else a free one.
if [[ -f "$STACK/terraform.tfvars.json" ]]; then
  BLOCK="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["control_planes"]["cp-1"].split(".")[1])' "$STACK/terraform.tfvars.json")"
  PICKED="the block of the state being continued"
else
  BLOCK=""
  for n in $(seq 20 250); do
    # The lock is held by this script and inherited by the lab it starts: concurrent demos
    # never pick the same block, and a running lab keeps its block taken.
    exec 8>"$LOCKS/infraflux-demo-127.$n.lock"
    flock -n 8 || continue
    if "$PY" - "$n" <<'PYEOF'
import socket, sys
n = sys.argv[1]
def free(ip, port):
    s = socket.socket()
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()
ips = [f"127.{n}.0.{h}" for h in (11, 12, 13, 21, 22)]
sys.exit(0 if all(free(ip, p) for ip in ips for p in (50000, 6443)) else 1)
PYEOF
    then BLOCK=$n; break; fi
    exec 8>&-
  done
  PICKED="the first free block from 127.20, locked against other demos"
  [[ -n "$BLOCK" ]] || { echo "demo: no free loopback block 127.20-250.0.0/24 for the machines" >&2; exit 1; }
fi
echo "machines on 127.$BLOCK.0.0/24 ($PICKED; Kubernetes API at 127.$BLOCK.0.11:6443)"

if (( ! REUSING )); then
  "$LAB" up --dir "$DEMO/lab" >"$DEMO/lab.log" 2>&1 &
  LAB_PID=$!
  for _ in $(seq 1 200); do
    [[ -s "$DEMO/lab/lab.json" ]] && break
    kill -0 "$LAB_PID" 2>/dev/null || { cat "$DEMO/lab.log" >&2; exit 1; }
    sleep 0.05
  done
  [[ -s "$DEMO/lab/lab.json" ]] || { echo "demo: the lab did not start" >&2; exit 1; }
  echo "lab started (pid $LAB_PID); its description: $DEMO/lab/lab.json; its log: $DEMO/lab.log"
fi
CONTROL="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["control"]["endpoint"])' "$DEMO/lab/lab.json")"

step "terraform (working copy of terraform/ in $STACK)"
mkdir -p "$STACK" "$DEMO/mirror/registry.terraform.io/infraflux/infraflux/$VERSION/linux_amd64"
cp -r "$ROOT/terraform/." "$STACK/"
lab_id >"$STACK/.lab-id"
ln -sf "$BIN/terraform-provider-infraflux" \
  "$DEMO/mirror/registry.terraform.io/infraflux/infraflux/$VERSION/linux_amd64/terraform-provider-infraflux_v$VERSION"
cat >"$DEMO/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$DEMO/mirror"
    include = ["registry.terraform.io/infraflux/*"]
  }
  direct {
    exclude = ["registry.terraform.io/infraflux/*"]
  }
}
RC
"$PY" - "$DEMO/lab/lab.json" "$STACK/terraform.tfvars.json" "$BLOCK" <<'PYEOF'
import json, sys
lab, out, block = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
pve = lab["pve"]
json.dump({
    "proxmox_endpoint": pve["endpoint"],
    "proxmox_api_token": f'{pve["token_id"]}={pve["token_secret"]}',
    "proxmox_ca_cert_pem": lab["ca_cert_pem"],
    "proxmox_node": pve["nodes"][0],
    "talos_image": pve["talos_image_volid"],
    "gateway": f"127.{block}.0.1",
    "control_planes": {f"cp-{i}": f"127.{block}.0.1{i}" for i in (1, 2, 3)},
    "workers": {f"worker-{i}": f"127.{block}.0.2{i}" for i in (1, 2)},
}, open(out, "w"), indent=2)
PYEOF
export TF_CLI_CONFIG_FILE="$DEMO/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
# The provider is rebuilt locally: its checksum changes, so the lock file is not kept.
rm -f "$STACK/.terraform.lock.hcl"
"$TF" -chdir="$STACK" init -input=false -no-color >/dev/null
ADDRESSES="$(echo 127.$BLOCK.0.{11,12,13,21,22} | tr ' ' ',')"
"$PY" "$ROOT/scripts/demo_progress.py" "$CONTROL" "$ADDRESSES" 3 &
PROGRESS=$!
start=$(date +%s)
status=0
"$TF" -chdir="$STACK" apply -auto-approve -input=false -no-color || status=$?
took=$(( $(date +%s) - start ))
# After a successful apply every phase has happened: let the poller print the lines it has not
# printed yet (it polls, and may lag on a busy machine) before it is stopped.
if (( status == 0 )); then
  for _ in $(seq 50); do kill -0 "$PROGRESS" 2>/dev/null || break; sleep 0.2; done
fi
kill "$PROGRESS" 2>/dev/null || true
wait "$PROGRESS" 2>/dev/null || true
if (( status != 0 )); then
  echo "demo: terraform apply failed (above). The lab keeps running: fix and run make demo again," >&2
  echo "      or make demo-down to start over. The lab's log: $DEMO/lab.log" >&2
  exit "$status"
fi

step "outputs"
umask 077
"$TF" -chdir="$STACK" output -raw kubeconfig >"$DEMO/kubeconfig"
"$TF" -chdir="$STACK" output -raw talosconfig >"$DEMO/talosconfig"
"$TF" -chdir="$STACK" output -json nodes >"$DEMO/nodes.json"
CILIUM="$("$TF" -chdir="$STACK" output -json cilium_version) $("$TF" -chdir="$STACK" output -json cilium_objects)"
"$PY" - "$DEMO" "$took" "$CONTROL" "$CILIUM" <<'PYEOF'
import json, sys, urllib.request
demo, took, control = sys.argv[1], sys.argv[2], sys.argv[3]
cilium_version, cilium_objects = (json.loads(v) for v in sys.argv[4].split())
nodes = json.load(open(f"{demo}/nodes.json"))
print(f"applied in {took}s; {len(nodes)} machines:")
print(f"  {'hostname':<12} {'role':<13} {'address':<14} {'stage':<10} {'talos':<9} etcd member")
for name, n in sorted(nodes.items()):
    print(f"  {name:<12} {n['role']:<13} {n['address']:<14} {n['stage']:<10} {n['talos_version']:<9} {n.get('etcd_member_id') or '-'}")
members = sum(1 for n in nodes.values() if n.get("etcd_member_id"))
print(f"etcd members: {members}")
k8s = json.load(urllib.request.urlopen(control + "/k8s", timeout=5))
for s in k8s["apiservers"]:
    if any(n["address"] in s["endpoint"] for n in nodes.values()):
        ready = len(s.get("ready_nodes", []))
        print(f"Kubernetes {s['version']} at {s['endpoint']}: {len(s['nodes'])} nodes, {ready} Ready")
        if ready < len(s["nodes"]):
            print("  NotReady: the cluster has no CNI until Cilium runs (install_platform = false?).")
if cilium_version:
    print(f"Cilium {cilium_version}: {cilium_objects} objects applied (field manager infraflux); kubectl -n kube-system get ds cilium")
for f in k8s.get("failed", []):
    if any(n["address"] in f["endpoint"] for n in nodes.values()):
        print(f"Kubernetes API server NOT running at {f['endpoint']}: {f['error']}")
print(f"""
kubeconfig:  {demo}/kubeconfig    e.g. kubectl --kubeconfig {demo}/kubeconfig get nodes
talosconfig: {demo}/talosconfig   (talosctl --talosconfig {demo}/talosconfig …)
state:       {demo}/stack/terraform.tfstate   (terraform -chdir={demo}/stack plan: no changes)
The Kubernetes API and Talos APIs run on loopback addresses inside the lab.""")
PYEOF

if [[ "${INFRAFLUX_DEMO_WAIT:-1}" == "0" ]] || (( REUSING )); then
  exit 0
fi
step "the lab keeps running: Ctrl-C stops it (make demo-down removes $DEMO)"
trap '"$LAB" down --dir "$DEMO/lab" >/dev/null 2>&1 || kill "$LAB_PID" 2>/dev/null; wait "$LAB_PID" 2>/dev/null; echo; echo "demo: lab stopped; make demo starts a new one (make demo-down removes $DEMO)"; exit 0' INT TERM
wait "$LAB_PID"
