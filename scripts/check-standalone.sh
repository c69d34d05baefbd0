#!/usr/bin/env bash
# Proves the repository stands alone: clones the committed HEAD into a folder with no
# ../shared beside it, checks every target there (`cargo check` evaluates every include_str!,
# which is what a missing ../shared breaks, without a second full set of binaries on disk) and
# runs the tests that read reference fixtures (they must skip, saying so).
#
#   scripts/check-standalone.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
git clone --quiet --no-hardlinks "$ROOT" "$WORK/infraflux"
cd "$WORK/infraflux"
[ ! -e ../shared ] || { echo "check-standalone: $WORK/shared exists" >&2; exit 1; }
# A user's machine: not CI, no reference folder. Its own target dir: binaries of the same
# names must not overwrite this checkout's.
export CARGO_TARGET_DIR="$ROOT/target/standalone"
unset CI INFRAFLUX_REFERENCE
export CARGO_INCREMENTAL=0
cargo check --locked --workspace --all-targets
out=$(cargo test --locked -p infraflux-reference -p infraflux-lab --test api -- --nocapture \
  schema:: derived_ the_reference 2>&1) || { echo "$out"; exit 1; }
grep -q "skipped: reference fixtures not present" <<<"$out" || {
  echo "$out"; echo "check-standalone: no test said it skipped the absent reference fixtures" >&2; exit 1; }
echo "check-standalone: a clone without ../shared builds; fixture tests skip and say so"
