#!/usr/bin/env bash
# The install footprint, each way (issue 31): l2rules as published (pyarrow and adbc-driver-sqlite
# included: the bulk load path, DataFrame loads, Parquet) against the same without them (the row path
# only), in fresh virtual environments. Prints, per way: the venv's size, the install's time and the
# time and peak memory of a first work list on the embedded default (a sample pool, no catalog yet).
# Usage: scripts/footprint.sh [POOL]   (from the repo root; needs network or a package index)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
pool="${1:-$repo/samples/pools/pool_018_all_exptypes.csv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
base_deps=$(python3 - "$repo/pyproject.toml" <<'PY'
import sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print(" ".join(d for d in deps if not d.startswith(("pyarrow", "adbc"))))
PY
)
for way in published without-arrow; do
  venv="$work/$way"
  python3 -m venv "$venv"
  start=$(date +%s.%N)
  if [ "$way" = published ]; then
    "$venv/bin/pip" install -q "$repo" 2>/dev/null
  else
    # shellcheck disable=SC2086
    "$venv/bin/pip" install -q $base_deps 2>/dev/null
    "$venv/bin/pip" install -q --no-deps "$repo" 2>/dev/null
  fi
  installed=$(echo "$(date +%s.%N) - $start" | bc)
  size=$(du -sm "$venv" | cut -f1)
  mkdir -p "$work/run-$way"
  first=$(cd "$work/run-$way" && { /usr/bin/time -f "%e s, %M KB peak" "$venv/bin/l2rules" worklist "$pool" \
          > /dev/null; } 2>&1 | tail -1)
  printf '%-14s venv %4d MB   install %5.1f s   first work list %s\n' "$way" "$size" "$installed" "$first"
done
