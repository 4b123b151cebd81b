"""Large candidates: the pipeline's answer for one candidate of N exposures, made from a real pool's rows.

A sample pool's rows (``--pool``, default NIRSpec spectra with their backgrounds) are copied until the pool
holds N exposures (``--size``, repeatable), each copy a new exposure (its own FILENAME and EXPOSURE number),
all in the pool's own candidates ("selected": the exposures that are the science of an association).
Two mixes:

- ``same-mix``: each copy gets its own PROGRAM, a key every companion must share with its science: the
  exposures of a copy attach only to one another, so the answer grows as the pool does. Issue 28's
  target: a candidate of 8,000 exposures at most 10 x the time of one of 800 with the same mix.
- ``all-pairs``: the copies keep the pool's PROGRAM: every background matches every science of the
  candidate, and the pipeline's answer itself is all pairs (5,520 members at 800 exposures, 487,200 at
  8,000). Shown for what it costs; no target.

Each size is loaded into a new SQLite catalog (``--postgres``: a scratch PostgreSQL database too), then
``evaluate`` (what the first ``run`` and ``worklist --store`` do) is timed in this process.

    .venv/bin/python benchmarks/candidates.py --size 800 --size 8000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the machine line, PostgreSQL scratch databases)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POOL = REPO / "samples" / "pools" / "pool_010_spec_nirspec_lv2bkg.csv"
#: A candidate ten times the size, with the same mix, takes at most this many times the time (issue 28).
WITHIN = 10.0


def large_candidate_pool(source: Path, size: int, mix: str, into: Path) -> Path:
    """``source``'s rows copied until there are ``size`` exposures (see the module's docstring)."""
    lines = [line for line in source.read_text().splitlines() if not line.startswith("#")]
    header, rows = lines[0], [line.split("|") for line in lines[1:] if line.strip()]
    columns = header.split("|")
    filename, exposure, program = (columns.index(name) for name in ("filename", "exposure", "program"))
    made = []
    for number in range(size):
        copy, row = divmod(number, len(rows))
        fields = list(rows[row])
        fields[filename] = f"jw_{number:07d}_{fields[filename]}"
        if fields[exposure].isdigit():
            fields[exposure] = str(int(fields[exposure]) + 100 * copy)
        if mix == "same-mix":
            fields[program] = str(10000 + copy)
        made.append("|".join(fields))
    path = into / f"{source.stem}_{mix}_{size}.csv"
    path.write_text("\n".join([header, *made]) + "\n")
    return path


def measure(url: str, pool: Path) -> dict:
    import importlib

    import sqlalchemy as sa

    import l2rules
    from l2rules.config import get_engine

    worklist = importlib.import_module("l2rules.worklist")
    l2rules.load(url, pool)
    started = time.perf_counter()
    worklist.evaluate(url)
    seconds = time.perf_counter() - started
    with get_engine(url).connect() as conn:
        selected = conn.execute(sa.text("SELECT count(*) FROM level2b_answer WHERE level2b")).scalar()
    get_engine(url).dispose()  # (a scratch PostgreSQL database is dropped next)
    return {"seconds": seconds, "selected": selected}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=DEFAULT_POOL, help="the pool whose rows are copied")
    parser.add_argument("--size", type=int, action="append", help="exposures in the candidate (repeatable; "
                        "default 800 and 8,000)")
    parser.add_argument("--mix", action="append", choices=("same-mix", "all-pairs"),
                        help="repeatable (default both)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL too (the local server)")
    args = parser.parse_args(argv)
    sizes, mixes = sorted(args.size or [800, 8000]), args.mix or ["same-mix", "all-pairs"]
    print(bench.machine())
    backends = ["sqlite", *(["postgresql"] if args.postgres and bench.pg_available() else [])]
    results: dict[tuple[str, str, int], dict] = {}
    print(f"{'backend':<11} {'mix':<10} {'exposures':>9} {'seconds':>8} {'selected':>9}")
    with tempfile.TemporaryDirectory(prefix="l2rules-candidates-") as scratch:
        for backend in backends:
            for mix in mixes:
                for size in sizes:
                    work = Path(tempfile.mkdtemp(dir=scratch))
                    pool = large_candidate_pool(args.pool, size, mix, work)
                    url = f"sqlite:///{work / 'catalog.db'}" if backend == "sqlite" else bench.pg_create()
                    try:
                        r = results[backend, mix, size] = measure(url, pool)
                    finally:
                        if backend == "postgresql":
                            bench.pg_drop(url)
                    print(f"{backend:<11} {mix:<10} {size:>9,} {r['seconds']:>8.2f} {r['selected']:>9,}", flush=True)
    print("\ntargets:")
    for backend in backends:
        small, large = sizes[0], sizes[-1]
        if ("same-mix" not in mixes) or large == small:
            continue
        ratio = results[backend, "same-mix", large]["seconds"] / results[backend, "same-mix", small]["seconds"]
        allowed = WITHIN * large / small / 10  # (10 x for 10 x the exposures)
        verdict = "met" if ratio <= allowed else "NOT MET"
        print(f"  {backend}: a candidate of {large:,} with the same mix {ratio:.1f} x the time of {small:,} "
              f"(target <= {allowed:.0f} x): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
