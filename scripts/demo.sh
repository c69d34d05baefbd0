#!/usr/bin/env bash
# `make demo`: the InfraFlux stack (terraform/) applied by real Terraform to the embedded lab.
#
#   scripts/demo.sh         build, start the lab, terraform apply, print a summary, keep the lab
#                           running until Ctrl-C
#   scripts/demo.sh down    stop the lab and remove .demo/ (`make demo-down`)
#
# INFRAFLUX_DEMO_DIR (default .demo) holds the lab, the Terraform working copy and its state, and
# the kubeconfig/talosconfig. INFRAFLUX_DEMO_WAIT=0 returns after the summary (lab left running).
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

if [[ "${1:-}" == "down" ]]; then
  if [[ -f "$DEMO/lab/lab.pid" ]]; then "$LAB" down --dir "$DEMO/lab" || true; fi
  rm -rf "$DEMO"
  echo "demo: lab stopped, $DEMO removed"
  exit 0
fi

step() { printf '\n==> %s\n' "$*"; }

step "lab"
if [[ -f "$DEMO/lab/lab.pid" ]] && kill -0 "$(cat "$DEMO/lab/lab.pid")" 2>/dev/null; then
  echo "reusing the lab already running in $DEMO/lab"
  LAB_PID=""
else
  rm -rf "$DEMO/lab"
  "$LAB" up --dir "$DEMO/lab" >"$DEMO/lab.log" 2>&1 &
  LAB_PID=$!
  for _ in $(seq 1 200); do
    [[ -s "$DEMO/lab/lab.json" ]] && break
    kill -0 "$LAB_PID" 2>/dev/null || { cat "$DEMO/lab.log" >&2; exit 1; }
    sleep 0.05
  done
  [[ -s "$DEMO/lab/lab.json" ]] || { echo "demo: the lab did not start" >&2; exit 1; }
  echo "lab started (pid $LAB_PID); its description: $DEMO/lab/lab.json"
fi

step "terraform (working copy of terraform/ in $DEMO/stack)"
mkdir -p "$DEMO/stack" "$DEMO/mirror/registry.terraform.io/infraflux/infraflux/$VERSION/linux_amd64"
cp -r "$ROOT/terraform/." "$DEMO/stack/"
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
"$PY" - "$DEMO/lab/lab.json" "$DEMO/stack/terraform.tfvars.json" <<'PYEOF'
import json, sys
lab = json.load(open(sys.argv[1]))
pve = lab["pve"]
json.dump({
    "proxmox_endpoint": pve["endpoint"],
    "proxmox_api_token": f'{pve["token_id"]}={pve["token_secret"]}',
    "proxmox_ca_cert_pem": lab["ca_cert_pem"],
    "proxmox_node": pve["nodes"][0],
    "talos_image": pve["talos_image_volid"],
}, open(sys.argv[2], "w"), indent=2)
PYEOF
export TF_CLI_CONFIG_FILE="$DEMO/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
# The provider is rebuilt locally: its checksum changes, so the lock file is not kept.
rm -f "$DEMO/stack/.terraform.lock.hcl"
"$TF" -chdir="$DEMO/stack" init -input=false -no-color >/dev/null
start=$(date +%s)
"$TF" -chdir="$DEMO/stack" apply -auto-approve -input=false -no-color
took=$(( $(date +%s) - start ))

step "outputs"
umask 077
"$TF" -chdir="$DEMO/stack" output -raw kubeconfig >"$DEMO/kubeconfig"
"$TF" -chdir="$DEMO/stack" output -raw talosconfig >"$DEMO/talosconfig"
"$TF" -chdir="$DEMO/stack" output -json nodes >"$DEMO/nodes.json"
"$PY" - "$DEMO" "$took" <<'PYEOF'
import json, sys
demo, took = sys.argv[1], sys.argv[2]
nodes = json.load(open(f"{demo}/nodes.json"))
print(f"applied in {took}s; {len(nodes)} machines:")
print(f"  {'hostname':<12} {'role':<13} {'address':<14} {'stage':<10} {'talos':<9} etcd member")
for name, n in sorted(nodes.items()):
    print(f"  {name:<12} {n['role']:<13} {n['address']:<14} {n['stage']:<10} {n['talos_version']:<9} {n.get('etcd_member_id') or '-'}")
members = sum(1 for n in nodes.values() if n.get("etcd_member_id"))
print(f"etcd members: {members}")
print(f"""
kubeconfig:  {demo}/kubeconfig    e.g. kubectl --kubeconfig {demo}/kubeconfig get nodes
talosconfig: {demo}/talosconfig   (talosctl --talosconfig {demo}/talosconfig …)
state:       {demo}/stack/terraform.tfstate   (terraform -chdir={demo}/stack plan: no changes)
The Kubernetes API and Talos APIs run on loopback addresses inside the lab.""")
PYEOF

if [[ "${INFRAFLUX_DEMO_WAIT:-1}" == "0" || -z "$LAB_PID" ]]; then
  exit 0
fi
step "the lab keeps running: Ctrl-C stops it (make demo-down removes $DEMO)"
trap '"$LAB" down --dir "$DEMO/lab" >/dev/null 2>&1 || kill "$LAB_PID" 2>/dev/null; wait "$LAB_PID" 2>/dev/null; echo; echo "demo: lab stopped"; exit 0' INT TERM
wait "$LAB_PID"
