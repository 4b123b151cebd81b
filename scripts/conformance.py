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
    python scripts/conformance.py --releases           # every release in tests/data/releases, at that release
    python scripts/conformance.py --changes            # every change fixture at every release (per fixture too)
    python scripts/conformance.py --asn-generate       # asn_generate's files, default and --DMS -i, per release

``--releases``: for each release directory of per-release fixtures (tests/data/releases/README.md),
l2rules at that release (``--pipeline VERSION``) against what that release itself made, one line per
release with the totals over the pools.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "src"))

from l2rules import association, conformance, inventory, migrate  # noqa: E402
from l2rules.config import get_engine  # noqa: E402


def compare(pool: Path, ref_dir: Path, engine, skip_bad: bool = False) -> dict:
    name = pool.stem
    t0 = time.perf_counter()
    result = inventory.load(engine, pool, progress=False, skip_bad=skip_bad)
    asns = association.associations(engine, result.pool_id)
    elapsed = time.perf_counter() - t0
    ref, made = conformance.reference_associations(ref_dir / f"{name}.json"), conformance.made_associations(asns)
    rows, differing = conformance.exposure_disagreements(asns, ref_dir / f"{name}.per_exposure.csv")
    return dict(pool=name, exposures=rows, exposures_agree=rows - len(differing), associations=sum(ref.values()),
                associations_exact=sum((ref & made).values()), associations_made=len(asns), seconds=elapsed)




def releases(pools_dir: Path, fixtures: Path, engine, per_pool: bool = False, names: list[str] | None = None
             ) -> bool:
    """Agreement per release (and with ``per_pool``, per pool and release) of the pools (``names``: only
    those); True when every release agrees on every exposure and association of every pool."""
    from l2rules import catalog

    pools = [p for p in sorted(pools_dir.glob("*.csv")) if not names or p.stem in names]
    unknown = sorted(set(names or ()) - {p.stem for p in pools})
    if unknown:
        sys.exit(f"conformance: no pool {', '.join(unknown)} in {pools_dir}")
    results = list(conformance.release_agreement(engine, pools, fixtures))
    as_of = catalog.releases(engine).set_index("version")["rules_as_of"]
    pct = lambda a, b: 100.0 * a / b if b else 100.0  # noqa: E731
    if per_pool:
        width = max([len(r.pool) for r in results] + [4])
        print(f"{'pool':<{width}}  releases exact   releases that differ (associations missing/extra, exposures)")
        for pool in sorted({r.pool for r in results}):
            rows = [r for r in results if r.pool == pool]
            differ = [f"{r.release}(-{r.associations - r.associations_exact}+"
                      f"{r.associations_made - r.associations_exact}/{r.exposures - r.exposures_agree}e)"
                      for r in rows if not r.exact]
            print(f"{pool:<{width}}  {len(rows) - len(differ):>3}/{len(rows):<3}         {' '.join(differ) or '-'}")
        print()
    print("release   as of        pools  exposures agree      associations exact    made")
    for release in sorted({r.release for r in results}, key=catalog.version_key):
        rows = [r for r in results if r.release == release]
        t = {k: sum(getattr(r, k) for r in rows) for k in ("exposures", "exposures_agree", "associations",
                                                             "associations_exact", "associations_made")}
        print(f"{release:<9} {as_of[release]!s:<12} {len(rows):>5}  {t['exposures_agree']:>5}/{t['exposures']:<5} "
              f"{pct(t['exposures_agree'], t['exposures']):6.1f}%   "
              f"{t['associations_exact']:>4}/{t['associations']:<4} "
              f"{pct(t['associations_exact'], t['associations']):6.1f}%   {t['associations_made']:>5}")
    exact = sum(r.exact for r in results)
    print(f"all: {exact}/{len(results)} (pool, release) pairs exact")
    return exact == len(results)


def asn_generate(archives: Path, engine, names: list[str] | None = None) -> bool:
    """Every asn_generate command line of the fixtures (tests/data/asn_generate), run as `l2rules asn` with
    the same arguments at the same release: files byte for byte but for the versions and constraints.
    One line per release (default mode, -i, --DMS -i) and one per command that differs."""
    from l2rules import catalog

    pools = [p for p in sorted((HERE / "samples/pools").glob("*.csv")) + sorted(
        (HERE / "tests/data/changes/pools").glob("*.csv")) if not names or p.stem in names]
    with tempfile.TemporaryDirectory() as work:
        fixtures = conformance.unpacked_asn_generate_fixtures(archives, Path(work) / "fixtures")
        results = list(conformance.asn_generate_agreement(engine, pools, fixtures, Path(work) / "l2rules"))
    for r in results:
        if not r.exact:
            print(f"differs: {r.release} {r.pool}: {r.command}: missing {list(r.missing)}, extra {list(r.extra)}, "
                  f"other content {list(r.differing)}")
    mode = lambda r: {"dms": "--DMS -i", "ids": "-i"}.get(r.mode.split("_")[0], "default")  # noqa: E731
    print("release   pools  commands exact (default / -i / --DMS -i)      files exact")
    for release in sorted({r.release for r in results}, key=catalog.version_key):
        rows = [r for r in results if r.release == release]
        by_mode = " / ".join(f"{sum(r.exact for r in rows if mode(r) == m)}/{sum(mode(r) == m for r in rows)}"
                             for m in ("default", "-i", "--DMS -i"))
        files = sum(r.files for r in rows)
        exact_files = sum(r.files - len(r.missing) - len(r.differing) for r in rows)
        print(f"{release:<9} {len({r.pool for r in rows}):>5}  {by_mode:<40} {exact_files:>5}/{files}")
    exact = sum(r.exact for r in results)
    print(f"all: {exact}/{len(results)} (release, pool, command) runs exact")
    return exact == len(results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", default=str(HERE / "samples/pools"), help="directory of pools (*.csv)")
    ap.add_argument("--refs", default=str(HERE / "tests/data/reference"), help="directory of references")
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file in a temporary directory)")
    ap.add_argument("--skip-bad", action="store_true",
                    help="load with --skip-bad (rows the loader refuses are left out)")
    ap.add_argument("--cli", action="store_true", help="also time `l2rules asn` on the largest pool")
    ap.add_argument("--releases", nargs="?", const=str(HERE / "tests/data/releases"), metavar="DIR",
                    help="agreement per pipeline release with the per-release fixtures (default DIR: "
                         "tests/data/releases)")
    ap.add_argument("--changes", nargs="?", const=str(HERE / "tests/data/changes"), metavar="DIR",
                    help="agreement per release and per change fixture: the pools DIR/pools, each release's output "
                         "in DIR/releases (default DIR: tests/data/changes; its README says how they were made)")
    ap.add_argument("--asn-generate", nargs="?", const=str(HERE / "tests/data/asn_generate"), metavar="DIR",
                    help="asn_generate's own files per release (DIR/<release>.tar.gz, default "
                         "tests/data/asn_generate) against `l2rules asn` with the same command line")
    ap.add_argument("names", nargs="*", help="only these pools (names without .csv; after --changes or --releases "
                                            "give their DIR first)")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = a.db or f"sqlite:///{tmp.name}/conformance.db"
    engine = get_engine(url)
    migrate.upgrade(engine)
    if a.asn_generate:
        return 0 if asn_generate(Path(a.asn_generate), engine, a.names) else 1
    if a.changes:
        return 0 if releases(Path(a.changes) / "pools", Path(a.changes) / "releases", engine, per_pool=True,
                             names=a.names) else 1
    if a.releases:
        return 0 if releases(Path(a.pools), Path(a.releases), engine, names=a.names) else 1
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
