#!/usr/bin/env bash
# Make tests/data/releases/<version>/ with the oracle for every sample pool, using PY (a python that
# has the jwst release installed, in a side venv: never a dependency of l2rules).
#   scripts/release_fixtures_make.sh /tmp/jwst-envs/v311/bin/python
# POOLS= (a directory of *.csv pools) and OUT_ROOT= (where <version>/ goes) make the same for other
# pools, e.g. the change fixtures:
#   POOLS=tests/data/changes OUT_ROOT=tests/data/changes/releases scripts/release_fixtures_make.sh PY
# ONLY= (a glob of pool names without .csv) runs those pools alone.
# The oracle is /work/shared/tools/jwst_oracle.py (ORACLE= to override). Failures (exceptions) are
# written to <version>/NAME.error.txt and listed at the end.
set -u
PY=${1:?python with jwst}
ORACLE=${ORACLE:-/work/shared/tools/jwst_oracle.py}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VER=$("$PY" -c 'import jwst; print(jwst.__version__)')
POOLS=${POOLS:-$ROOT/samples/pools}
OUT="${OUT_ROOT:-$ROOT/tests/data/releases}/$VER"
mkdir -p "$OUT"
"$PY" - > "$OUT/environment.txt" <<'PYEOF'
import sys
from importlib.metadata import version, PackageNotFoundError
print("python", sys.version.split()[0])
for n in ["jwst", "numpy", "astropy", "scipy", "stdatamodels", "stcal", "stpipe", "asdf", "gwcs", "crds"]:
    try:
        print(n, version(n))
    except PackageNotFoundError:
        print(n, "-")
PYEOF
echo "pip install: ${PIP_LINE:-?}" >> "$OUT/environment.txt"
for pool in "$POOLS"/${ONLY:-*}.csv; do
  name=$(basename "$pool" .csv)
  rm -f "$OUT/$name.error.txt"
  if ! "$PY" "$ORACLE" "$pool" "$OUT/$name.json" --per-exposure "$OUT/$name.per_exposure.csv" \
        2> "$OUT/$name.stderr.tmp"; then
    tail -n 30 "$OUT/$name.stderr.tmp" > "$OUT/$name.error.txt"
    rm -f "$OUT/$name.json" "$OUT/$name.per_exposure.csv"
    echo "FAILED $name (jwst $VER): $(tail -n 1 "$OUT/$name.error.txt")"
  fi
  rm -f "$OUT/$name.stderr.tmp"
done
