#!/usr/bin/env bash
# l2rules-asn-generate as a drop-in for asn_generate (issue 29): the same command lines, only the program's
# name changed, over pools (default: the sample pools), in the default mode, with --discover --save-orphans,
# and in the operational one (--DMS, and --DMS -i with one group per observation candidate and the c
# candidates of its exposures, as operations call it); the files (and the orphans table) compared byte for
# byte but for version_id, code_version and constraints.
#
#   scripts/asn_generate_dropin.sh /tmp/jwst-envs/v311/bin/python [POOL.csv ...]
#
# PYTHON is a side venv's python with the jwst release installed (never a dependency of l2rules); its
# asn_generate is the one run. l2rules answers as its head (jwst 3.0.0); for another release the l2rules
# side gets `--pipeline RELEASE` too (the one option added). Exit 0 when every run gave the same files.
set -euo pipefail
PY=${1:?python of a venv with jwst}
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ASN_GENERATE=$(dirname "$PY")/asn_generate
L2RULES=${L2RULES_ASN_GENERATE:-$ROOT/.venv/bin/l2rules-asn-generate}
RULES=$("$PY" -c 'from jwst.associations.lib import rules_level2b; print(rules_level2b.__file__)')
RELEASE=$("$PY" -c 'import jwst; print(jwst.__version__)')
HEAD=3.0.0
EXTRA=()
[ "$RELEASE" = "$HEAD" ] || EXTRA=(--pipeline "$RELEASE")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export L2RULES_DATABASE_URL="sqlite:///$WORK/catalog.db"  # previews: the pools are evaluated, not stored
POOLS=()
for pool in "$@"; do POOLS+=("$(realpath "$pool")"); done
[ ${#POOLS[@]} -gt 0 ] || POOLS=("$ROOT"/samples/pools/*.csv)
normalised() {  # a directory's files, the values that may differ blanked (conformance.written_files)
  "$ROOT/.venv/bin/python" - "$1" <<'PYEOF'
import sys
from pathlib import Path
from l2rules.conformance import written_files
for name, text in written_files(Path(sys.argv[1])).items():
    print(f"== {name}\n{text}")
PYEOF
}
runs=0 same=0 files=0
for pool in "${POOLS[@]}"; do
  groups=$(cd "$ROOT/scripts" && python3 -c "import sys, jwst_asn_files as j
for group in j.candidate_groups(__import__('pathlib').Path(sys.argv[1])).values(): print(' '.join(group))" "$pool")
  modes=("" "--discover --save-orphans orphaned.csv" "--DMS")
  while IFS= read -r group; do [ -n "$group" ] && modes+=("--DMS -i $group"); done <<< "$groups"
  for mode in "${modes[@]}"; do
    runs=$((runs + 1))
    mkdir -p "$WORK/jwst" "$WORK/l2rules"
    # shellcheck disable=SC2086  # (the mode's words are separate arguments)
    "$ASN_GENERATE" -r "$RULES" --ignore-default -p "$WORK/jwst" "$pool" $mode > /dev/null 2>&1
    # shellcheck disable=SC2086
    "$L2RULES" -r "$RULES" --ignore-default -p "$WORK/l2rules" "$pool" $mode "${EXTRA[@]}" > /dev/null
    files=$((files + $(find "$WORK/jwst" -name '*_asn.json' -o -name '*.csv' | wc -l)))
    if diff <(normalised "$WORK/jwst") <(normalised "$WORK/l2rules") > "$WORK/diff"; then
      same=$((same + 1))
    else
      echo "differs: asn_generate ... $(basename "$pool") $mode"
      head -20 "$WORK/diff"
    fi
    rm -rf "$WORK/jwst" "$WORK/l2rules"
  done
done
echo "jwst $RELEASE: $same/$runs command lines gave the same files ($files files of asn_generate's; only the program's name changed)"
[ "$same" -eq "$runs" ]
