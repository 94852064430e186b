#!/usr/bin/env bash
# Interleaved A/B of the engine patches with `distill bench` (no PyTorch): each round runs the
# bench on the pristine jax-js (the patch reversed, FMA off), the patched engine with FMA off,
# and the patched engine with FMA on (the default), so the machine's drift over the minutes
# falls on every variant alike. Restores the patched engine at the end, even when interrupted.
#
#   bash bench/engine-ab.sh [rounds=3] [bench args...]     (after npm run build)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
trap 'npx patch-package >/dev/null 2>&1 || echo "engine-ab: could not re-apply the patch; run npx patch-package" >&2' EXIT
run() { # label, patched (yes|no), relaxed SIMD (1|0), bench args...
  local label=$1 patched=$2 relaxed=$3
  shift 3
  if [ "$patched" = no ]; then npx patch-package --reverse >/dev/null; else npx patch-package >/dev/null; fi
  DISTILL_UNPATCHED_ENGINE_OK=$([ "$patched" = no ] && echo 1 || echo 0) DISTILL_RELAXED_SIMD=$relaxed \
    node dist/cli/bin.js bench --no-pytorch "$@" 2>&1 | grep -E '^(teacher|student|cnn|lm)' | sed "s/^/$(date -u +%H:%M:%S) $label /"
}
for r in $(seq 1 "$rounds"); do
  run "unpatched, no FMA" no 0 "$@"
  run "patched, no FMA  " yes 0 "$@"
  run "patched, FMA     " yes 1 "$@"
done
