#!/usr/bin/env python3
"""Benchmark: the pipeline's answers of many small pools against those of one pool of as many exposures.

A catalog of daily pools holds many small pools; what an evaluation costs should depend on the exposures, not
on the number of pools (issue 28). The script makes one program-shaped pool of ``--pools`` x ``--rows``
exposures with bench.py's generator, and the same rows cut into ``--pools`` pools of ``--rows`` each (every
pool its own file; the stems stay distinct). For each backend it loads each set into a fresh, migrated catalog
(not timed) and times ``evaluate()`` - what the first ``run`` (or ``worklist --store``) does: every pool's
answers made and stored. It prints the figures and the target line.

Usage::

    python benchmarks/pools.py                          # 1,000 pools of 10 vs 1 pool of 10,000, both backends
    python benchmarks/pools.py --pools 50 --backends sqlite   # a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402  (the generator and the PostgreSQL helpers)

#: How much slower the many small pools may be than the one pool (the target of issue 28).
TARGET_RATIO = 2.0


def pool_files(workdir: Path, pools: int, rows: int) -> tuple[Path, list[Path]]:
    """One pool of ``pools * rows`` exposures, and its rows cut into ``pools`` pools of ``rows``."""
    whole = bench.pool_file(workdir, pools * rows, seed=2026)
    lines = whole.read_text().splitlines(keepends=True)
    header, body = lines[:3], lines[3:]  # (two comment lines, then the column names)
    parts = []
    for number in range(pools):
        part = workdir / f"daily_{number:05d}.csv"
        part.write_text("".join(header + body[number * rows:(number + 1) * rows]))
        parts.append(part)
    return whole, parts


def catalog(backend: str, workdir: Path, name: str) -> str:
    if backend == "sqlite":
        path = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{path}"
    return bench.pg_create()


def measured(backend: str, workdir: Path, name: str, files: list[Path]) -> dict:
    """Load ``files`` into a fresh catalog, then time ``evaluate()``; the catalog is removed after."""
    import sqlalchemy as sa

    import l2rules
    from l2rules.worklist import evaluate

    url = catalog(backend, workdir, name)
    try:
        l2rules.init(url)
        started = time.perf_counter()
        for path in files:
            l2rules.load(url, path, progress=False)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        evaluated = evaluate(url)
        seconds = time.perf_counter() - started
        with l2rules.get_engine(url).connect() as conn:
            answers, selected = conn.execute(sa.text(
                "SELECT count(*), sum(CASE WHEN level2b THEN 1 ELSE 0 END) FROM level2b_answer")).one()
        l2rules.get_engine(url).dispose()
        return {"pools": len(evaluated), "load": loaded, "evaluate": seconds, "answers": answers,
                "selected": selected or 0}
    finally:
        if backend == "postgresql":
            bench.pg_drop(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=1000, help="how many small pools (default 1000)")
    parser.add_argument("--rows", type=int, default=10, help="exposures per small pool (default 10)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--workdir", type=Path, default=None, help="where the pools and catalogs go (a temporary "
                        "directory by default)")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "postgresql" in backends and not bench.pg_available():
        print(f"# PostgreSQL not reachable at {bench.PG_URL}: left out", file=sys.stderr)
        backends.remove("postgresql")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        whole, parts = pool_files(workdir, args.pools, args.rows)
        total = args.pools * args.rows
        print(f"# {args.pools:,} pools of {args.rows:,} exposures vs 1 pool of {total:,} "
              f"(benchmarks/bench.py's generator); evaluate(): every pool's answers made and stored")
        print(f"{'backend':<11} {'catalog':<22} {'pools':>6} {'answers':>8} {'selected':>8} "
              f"{'load s':>8} {'evaluate s':>10} {'ms/pool':>8}")
        verdicts = []
        for backend in backends:
            results = {}
            for label, files in ((f"1 pool of {total:,}", [whole]), (f"{args.pools:,} pools of {args.rows:,}", parts)):
                result = results[label] = measured(backend, workdir, f"catalog_{len(files)}", files)
                print(f"{backend:<11} {label:<22} {result['pools']:>6,} {result['answers']:>8,} "
                      f"{result['selected']:>8,} {result['load']:>8.1f} {result['evaluate']:>10.2f} "
                      f"{1000 * result['evaluate'] / max(result['pools'], 1):>8.1f}", flush=True)
            one, many = results.values()
            ratio = many["evaluate"] / one["evaluate"]
            verdicts.append((backend, ratio, many["evaluate"], one["evaluate"]))
        for backend, ratio, many, one in verdicts:
            met = "met" if ratio <= TARGET_RATIO else "NOT MET"
            print(f"{args.pools:,} pools of {args.rows:,} within {TARGET_RATIO:g}x one pool of {total:,}: {met} "
                  f"({backend}: {many:.2f} s vs {one:.2f} s = {ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
