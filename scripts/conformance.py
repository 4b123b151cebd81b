#!/usr/bin/env python3
"""Conformance with the jwst pipeline: l2rules' Level 2b associations against the pipeline's own.

For every pool that has a reference (``NAME.json`` and ``NAME.per_exposure.csv``, made by
jwst 3.0.0's ``asn_generate``; see tests/data/reference/README.md), prints:

* exposures agreeing: same selected/not selected, same asn_types and rules as science;
* associations exact: same candidate id, rule, asn_type, product name and member set
  (names and roles), counted as a multiset against the reference;
* the time to load the pool and build its associations (in process).

``--cli`` also times ``l2rules asn`` on the largest pool as a separate process (CLI start-up
included).

    python scripts/conformance.py                      # samples/pools against tests/data/reference
    python scripts/conformance.py --pools DIR --refs DIR --db postgresql://...
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "src"))

from l2rules import association, inventory, migrate  # noqa: E402
from l2rules.config import get_engine  # noqa: E402


def reference_key(a: dict) -> tuple:
    product = a["products"][0]
    return (a["asn_id"], a["asn_rule"], a["asn_type"], product["name"],
            frozenset(tuple(m) for m in product["members"]))


def mine_key(a: association.Association) -> tuple:
    return (a.asn_id, a.asn_rule, a.asn_type, a.product, frozenset((m["expname"], m["exptype"]) for m in a.members))


def science_by_stem(keys) -> dict[str, set]:
    out: dict[str, set] = {}
    for asn_id, rule, asn_type, _product, members in keys:
        for name, role in members:
            if role == "science":
                out.setdefault(inventory.exposure_stem(name).lower(), set()).add((asn_type, rule))
    return out


def compare(pool: Path, ref_dir: Path, engine, skip_bad: bool = False) -> dict:
    name = pool.stem
    ref = json.loads((ref_dir / f"{name}.json").read_text())["associations"]
    t0 = time.perf_counter()
    result = inventory.load(pool, engine, progress=False, skip_bad=skip_bad)
    asns = association.associations(engine, result.pool_id)
    elapsed = time.perf_counter() - t0
    ref_keys, my_keys = Counter(map(reference_key, ref)), Counter(map(mine_key, asns))
    exact = sum((ref_keys & my_keys).values())
    mine_sci = science_by_stem(my_keys)
    with open(ref_dir / f"{name}.per_exposure.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    agree = 0
    for row in rows:
        stem = inventory.exposure_stem(row["filename"]).lower()
        got = mine_sci.get(stem, set())
        if ({t for t, _ in got} == set(filter(None, row["asn_types"].split(";")))
                and {r for _, r in got} == set(filter(None, row["asn_rules"].split(";")))
                and bool(got) == (row["selected"] == "True")):
            agree += 1
    return dict(pool=name, exposures=len(rows), exposures_agree=agree, associations=len(ref),
                associations_exact=exact, associations_made=len(asns), seconds=elapsed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", default=str(HERE / "samples/pools"), help="directory of pools (*.csv)")
    ap.add_argument("--refs", default=str(HERE / "tests/data/reference"), help="directory of references")
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file in a temporary directory)")
    ap.add_argument("--skip-bad", action="store_true", help="load with --skip-bad (rows the loader refuses are left out)")
    ap.add_argument("--cli", action="store_true", help="also time `l2rules asn` on the largest pool")
    ap.add_argument("names", nargs="*", help="only these pools (names without .csv)")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = a.db or f"sqlite:///{tmp.name}/conformance.db"
    engine = get_engine(url)
    migrate.upgrade(engine)
    ref_dir = Path(a.refs)
    pools = [p for p in sorted(Path(a.pools).glob("*.csv"))
             if (ref_dir / f"{p.stem}.json").is_file() and (not a.names or p.stem in a.names)]
    results = [compare(p, ref_dir, engine, a.skip_bad) for p in pools]
    width = max([len(r["pool"]) for r in results] + [4])
    print(f"{'pool':<{width}}  exposures agree   associations exact   made   seconds")
    for r in results:
        print(f"{r['pool']:<{width}}  {r['exposures_agree']:>6}/{r['exposures']:<6}    {r['associations_exact']:>6}/"
              f"{r['associations']:<6}       {r['associations_made']:>5}  {r['seconds']:8.2f}")
    tot = {k: sum(r[k] for r in results) for k in ("exposures", "exposures_agree", "associations",
                                                   "associations_exact", "associations_made", "seconds")}
    print(f"{'total':<{width}}  {tot['exposures_agree']:>6}/{tot['exposures']:<6}    {tot['associations_exact']:>6}/"
          f"{tot['associations']:<6}       {tot['associations_made']:>5}  {tot['seconds']:8.2f}")
    if a.cli and pools:
        largest = max(pools, key=lambda p: p.stat().st_size)
        exe = Path(sys.executable).with_name("l2rules")
        cmd = [str(exe) if exe.exists() else "l2rules", "--db", url, "asn", str(largest), "--output",
               os.path.join(tmp.name, "asn")] + (["--skip-bad"] if a.skip_bad else [])
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"CLI `l2rules asn {largest.name}`: {time.perf_counter() - t0:.2f} s (process start to exit)")
    ok = all(r["exposures_agree"] == r["exposures"] and r["associations_exact"] == r["associations"]
             == r["associations_made"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
