#!/usr/bin/env python3
"""Time writing association files: all or nothing (a temporary name renamed, ``outputs.OutputDirectory``)
against a plain write of each file in place (what ``asn`` did before issue 32), on one program-shaped pool
(benchmarks/bench.py's).

The associations are made once; only the writing is timed, alternately, into a new directory and again
into the same one (files replaced), median of ``--repeats``.

    python scripts/bench_asn_writes.py --rows 20000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def plain(asns, out: Path) -> int:
    """The writer before: each file opened in place (O_NOFOLLOW), written, closed."""
    out.mkdir(parents=True, exist_ok=True)
    for association in asns:
        descriptor = os.open(out / association.file_name(None), os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                             | os.O_NOFOLLOW, 0o644)
        unwritten = memoryview(json.dumps(association.as_dict(None), indent=4).encode())
        try:
            while unwritten:
                unwritten = unwritten[os.write(descriptor, unwritten):]
        finally:
            os.close(descriptor)
    return len(asns)


def atomic(asns, out: Path) -> int:
    """All or nothing, as asn writes (``association.write_associations``: ``outputs.OutputDirectory``)."""
    from l2rules.association.api import write_associations

    return len(write_associations(asns, out))


WRITERS = {"plain": plain, "atomic": atomic}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    import bench

    import l2rules
    from l2rules import association

    work = Path(args.workdir or tempfile.mkdtemp(prefix="l2rules-asn-writes-"))
    work.mkdir(parents=True, exist_ok=True)
    pool = bench.pool_file(work, args.rows, 2026)
    db = f"sqlite:///{work / 'catalog.db'}"
    l2rules.init(db) if hasattr(l2rules, "init") else None
    pool_id = l2rules.load(db, pool, progress=False).pool_id
    asns = association.associations(db, pool_id)
    cases = ("new directory", "files replaced")
    wall = {name: {case: [] for case in cases} for name in WRITERS}
    cpu = {name: {case: [] for case in cases} for name in WRITERS}
    for repeat in range(args.repeats):
        for name, writer in WRITERS.items():
            out = work / f"out-{name}-{repeat}"  # (no directory removed between the timings: its I/O would count)
            for case in cases:
                start, start_cpu = time.perf_counter(), time.process_time()
                writer(asns, out)
                wall[name][case].append(time.perf_counter() - start)
                cpu[name][case].append(time.process_time() - start_cpu)
    for name in WRITERS:
        for repeat in range(args.repeats):
            shutil.rmtree(work / f"out-{name}-{repeat}", ignore_errors=True)
    print(f"{len(asns)} association files from a {args.rows}-row pool, median of {args.repeats} "
          f"(wall s / CPU s, files a second by wall):")
    for case in cases:
        print(f"  {case}: " + "; ".join(
            f"{name} {statistics.median(wall[name][case]):.3f} / {statistics.median(cpu[name][case]):.3f} s "
            f"({len(asns) / statistics.median(wall[name][case]):,.0f}/s)" for name in WRITERS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
