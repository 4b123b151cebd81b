#!/usr/bin/env python3
"""Compare l2rules' association files with the jwst pipeline's, by jwst's own `compare_asn_files`.

For each pool (default: every sample pool, samples/pools/*.csv) this writes l2rules' files
(`l2rules asn`, a throwaway SQLite catalog) and the pipeline's (`asn_generate -r
<jwst>/associations/lib/rules_level2b.py --ignore-default -p DIR POOL`, as
tests/data/reference/README.md says; with --stored, the stored ones in tests/data/reference/asn
instead), then runs `jwst.associations.lib.diff.compare_asn_files` in the side environment that has
jwst (never a dependency of l2rules), and also compares the files byte for byte after normalising
what l2rules writes on purpose differently (version_id, code_version, constraints).

Run with the project's Python (l2rules installed); jwst comes from $JWST_PYTHON or --jwst-python
(default /tmp/jwstenv/bin/python: `python3 -m venv /tmp/jwstenv && /tmp/jwstenv/bin/pip install
jwst==3.0.0`). Exit 0 when every pool is identical for compare_asn_files and byte for byte, else 1.

    .venv/bin/python scripts/compare_asn_with_jwst.py [--stored] [--skip-bad] [--keep DIR] [POOL.csv ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STORED = REPO / "tests" / "data" / "reference" / "asn"
#: The values l2rules writes on purpose differently from the pipeline (see the asn section of README).
OWN_VALUES = re.compile(r'^(    "(?:version_id|code_version|constraints)": ).*?(,?)$', re.MULTILINE)

#: Run in the jwst environment: compare_asn_files on each (pool, ours, theirs) given as JSON on stdin;
#: prints one JSON line per pool: its name and the differences jwst found ("" when none).
IN_JWST = r"""
import json, sys
from pathlib import Path
import jwst
from jwst.associations.lib.diff import compare_asn_files
print(json.dumps({"jwst": jwst.__version__}))
for pool, ours, theirs in json.load(sys.stdin):
    try:
        compare_asn_files(sorted(Path(ours).glob("*_asn.json")), sorted(Path(theirs).glob("*_asn.json")))
    except AssertionError as diff:
        print(json.dumps({"pool": pool, "diff": str(diff) or repr(diff)}))
    else:
        print(json.dumps({"pool": pool, "diff": ""}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pools", nargs="*", type=Path, help="pool files (default: samples/pools/*.csv)")
    parser.add_argument("--jwst-python", default=os.environ.get("JWST_PYTHON", "/tmp/jwstenv/bin/python"),
                        help="the Python of the environment with jwst (default $JWST_PYTHON or %(default)s)")
    parser.add_argument("--stored", action="store_true",
                        help="compare with the stored pipeline files (tests/data/reference/asn) instead of "
                             "running asn_generate")
    parser.add_argument("--skip-bad", action="store_true", help="load pools as `l2rules asn --skip-bad` does")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="write both sides under DIR and keep them")
    args = parser.parse_args(argv)

    from l2rules import association

    pools = [p.resolve() for p in args.pools] or sorted((REPO / "samples" / "pools").glob("*.csv"))
    jwst_python = Path(args.jwst_python)
    if not jwst_python.exists():
        print(f"no jwst environment at {jwst_python} (see --jwst-python)", file=sys.stderr)
        return 2
    holder = None if args.keep else tempfile.TemporaryDirectory(prefix="asn_cmp_")
    work = args.keep or Path(holder.name)
    work.mkdir(parents=True, exist_ok=True)
    rules = subprocess.run([str(jwst_python), "-c", "import jwst.associations.lib as m, pathlib; "
                            "print(pathlib.Path(m.__file__).parent / 'rules_level2b.py')"],
                           check=True, capture_output=True, text=True).stdout.strip()
    generator = jwst_python.parent / "asn_generate"
    jobs, failed = [], 0
    for pool in pools:
        ours, theirs = work / "l2rules" / pool.stem, work / "jwst" / pool.stem
        db = f"sqlite:///{work / (pool.stem + '.db')}"
        try:
            association.asn(db, [pool], ours, skip_bad=args.skip_bad)
        except Exception as exc:  # noqa: BLE001 - said per pool; the others are still compared
            print(f"{pool.stem}: l2rules asn failed: {exc}")
            failed += 1
            continue
        if args.stored:
            theirs = STORED / pool.stem
        else:
            theirs.mkdir(parents=True, exist_ok=True)
            made = subprocess.run([str(generator), "-r", rules, "--ignore-default", "-p", str(theirs), str(pool)],
                                  capture_output=True, text=True, cwd=theirs)
            if made.returncode:
                last = (made.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{pool.stem}: asn_generate failed (exit {made.returncode}): {last}")
                failed += 1
                continue
        jobs.append((pool.stem, str(ours), str(theirs)))
    result = subprocess.run([str(jwst_python), "-c", IN_JWST], input=json.dumps(jobs), capture_output=True,
                            text=True)
    if result.returncode:
        print(result.stderr, file=sys.stderr)
        return 2
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    print(f"jwst {lines[0]['jwst']} compare_asn_files, l2rules' files (left) against the pipeline's (right)"
          + (" (stored)" if args.stored else ""))
    for found, (stem, ours, theirs) in zip(lines[1:], jobs):
        ours_files = {p.name: p for p in Path(ours).glob("*_asn.json")}
        their_files = {p.name: p for p in Path(theirs).glob("*_asn.json")}
        same_names = set(ours_files) == set(their_files)
        differing = sorted(name for name in set(ours_files) & set(their_files)
                           if OWN_VALUES.sub(r"\1...\2", ours_files[name].read_text())
                           != OWN_VALUES.sub(r"\1...\2", their_files[name].read_text()))
        ok = not found["diff"] and same_names and not differing
        failed += not ok
        print(f"{stem}: {len(ours_files)} files (pipeline {len(their_files)}); compare_asn_files: "
              + ("identical" if not found["diff"] else "DIFFERENT") + "; byte for byte but versions and "
              "constraints: " + ("identical" if same_names and not differing else
                                 f"DIFFERENT (names {'same' if same_names else 'differ'}, "
                                 f"{len(differing)} files differ)"))
        if found["diff"]:
            print("    " + found["diff"].replace("\n", "\n    "))
        for name in differing:
            print(f"    differs: {name}")
    print(f"{len(pools) - failed} of {len(pools)} pools identical")
    if holder:
        holder.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
