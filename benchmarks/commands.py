"""Every command at scale: the time and peak memory of each on one catalog, per size and backend.

For each size (``--rows``) and backend (SQLite, and PostgreSQL when reachable) a new catalog is made
and these steps run on it in order, each in a process of its own (peak RSS from ``wait4``):

- ``run``: the first run of a synthetic pool (bench.py's generator): load, the pipeline's answers,
  the work items;
- ``worklist``: **the default work list** (the pipeline's answer, ``l2rules worklist`` with no pool) of
  the loaded catalog, as a DataFrame: after ``run``, read from the answers it stored;
- ``current``: its peer, every row of the view ``v_current_worklist`` (the run's current work items)
  fetched: the default work list with nothing new to evaluate is within 1.5 x of it (issue 28);
- ``published``: the published table's work list (``worklist --published``), as a DataFrame (the query
  the "within 3 x" targets below are measured against, issue 13);
- ``rerun``: a run with a second pool of ``--incremental`` new exposures;
- ``report``: the HTML report, to a file;
- ``views``: each query of the analysts' page (docs/analysts.md), every row fetched;
- ``runs``, ``unmatched``, ``rejections``: the run record and the lists;
- ``impact``: the published table's changes between jwst 1.16.1 and the head, over every pool;
- ``asn``: the association files of the first pool.

The peer of ``asn`` is jwst's own generator (``asn_generate`` with its Level 2b rules, from a side
environment with jwst: ``--jwst-python``), timed on pools of the ``--jwst-rows`` sizes beside
``l2rules asn`` on the same pools (SQLite), each given ``--jwst-timeout`` seconds: a size it cannot
finish is said so and bigger ones are not tried; where both finish, their files' names are compared.

It prints a table (seconds, peak RSS), the targets of issue 13 met / NOT MET, the plan check (every
statement each step executes is planned first, on that catalog, and the time spent planning is taken
off the step's; one with a per-row subplan over data is named and the exit status is 1), and writes a
PNG of time against size per command (``--plot``).

    .venv/bin/python benchmarks/commands.py --rows 100000 --rows 1000000 --plot benchmarks/commands.png
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the pool generator, the machine line, PostgreSQL databases)

REPO = Path(__file__).resolve().parents[1]
STEPS = ("run", "worklist", "current", "published", "rerun", "report", "views", "runs", "unmatched", "rejections",
         "impact", "asn")
#: The default work list with nothing new to evaluate: within this many times the view's rows (issue 28).
STORED_WITHIN = 1.5
#: Every command within this many times the work list's time on the same backend, at 1M exposures.
WITHIN = 3.0
#: asn linear: a pool N times the size takes at most this times N the time (bench.py's allowance).
LINEAR = 1.05
#: Flat memory: a pool 10 times the size peaks at most this times the memory (bench.py's allowance).
FLAT = 1.5


def analysts_queries() -> list[str]:
    text = (REPO / "docs" / "analysts.md").read_text()
    return [q.strip().rstrip(";") for q in re.findall(r"```sql\n(.*?)```", text, flags=re.S)]


def step(name: str, url: str, pool: str, extra: str, work: str) -> dict:
    """One step in this process: what it did (a count), timed, and the statements it executed that were
    planned with a per-row subplan over data (each statement planned before it runs, on this catalog's
    statistics)."""
    import sqlalchemy as sa

    from l2rules import Catalog, plans

    catalog = Catalog(url)
    # the time spent planning (EXPLAIN of each statement, on the same connection) is taken off the step's:
    # a listener on each side of the plan check's measures it
    planning = {"seconds": 0.0, "started": 0.0}

    def before(*_args):
        planning["started"] = time.perf_counter()

    def after(*_args):
        planning["seconds"] += time.perf_counter() - planning["started"]

    sa.event.listen(catalog.engine, "before_cursor_execute", before)
    with plans.watching(catalog.engine, over_data=True) as per_row:  # planned first: EXPLAIN
        sa.event.listen(catalog.engine, "before_cursor_execute", after)
        result = _timed(name, catalog, pool, extra, work)
    return {**result, "seconds": result["seconds"] - planning["seconds"], "planning_s": planning["seconds"],
            "per_row": sorted(per_row)}


def _timed(name: str, catalog, pool: str, extra: str, work: str) -> dict:
    import io

    import sqlalchemy as sa

    started = time.perf_counter()
    if name == "run":
        done = catalog.run([pool])["items_created"]
    elif name == "worklist":
        done = len(catalog.worklist())
    elif name == "current":
        with catalog.engine.connect() as conn:
            done = len(conn.execute(sa.text("SELECT * FROM v_current_worklist")).all())
    elif name == "published":
        done = len(catalog.worklist(source="table"))
    elif name == "rerun":
        done = catalog.run([extra])["items_created"]
    elif name == "report":
        catalog.report(stream=io.StringIO(), html=Path(work) / "report.html")
        done = (Path(work) / "report.html").stat().st_size
    elif name == "views":
        done = 0
        with catalog.engine.connect() as conn:
            for query in analysts_queries():
                done += len(conn.execute(sa.text(query)).all())
    elif name == "runs":
        done = len(catalog.runs())
    elif name == "unmatched":
        done = len(catalog.unmatched())
    elif name == "rejections":
        done = len(catalog.rejections())
    elif name == "impact":
        exposures, _counts = catalog.impact("1.16.1", "3.0.0", source="table")
        done = len(exposures)
    elif name == "asn":
        done = len(catalog.asn([pool], Path(work) / "asn"))
    else:
        raise ValueError(name)
    return {"seconds": time.perf_counter() - started, "done": done}


def child(name: str, url: str, pool: Path, extra: Path, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--step", name, url, str(pool), str(extra), str(work)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    proc.stdout.close()
    _pid, status, usage = os.wait4(proc.pid, 0)
    rss = usage.ru_maxrss / 1024
    if os.waitstatus_to_exitcode(status) != 0:
        return {"failed": True, "rss_mb": rss}
    return {**json.loads(out.decode().strip().splitlines()[-1]), "rss_mb": rss}


def jwst_asn(python: Path, pool: Path, work: Path, timeout: float) -> dict:
    """jwst's ``asn_generate`` with its Level 2b rules on ``pool``, in a process of its own (as the pipeline's
    operators run it): seconds, peak RSS, the files written; ``timeout`` seconds at most."""
    out = Path(tempfile.mkdtemp(prefix="jwst-asn-", dir=work))
    try:  # a broken side environment is said in the results, which are not lost for it
        rules = subprocess.run([str(python), "-c", "import jwst.associations.lib as m, pathlib; "
                                "print(pathlib.Path(m.__file__).parent / 'rules_level2b.py')"],
                               check=True, capture_output=True, text=True).stdout.strip()
        started = time.perf_counter()
        proc = subprocess.Popen([str(python.parent / "asn_generate"), "-r", rules, "--ignore-default", "-p",
                                 str(out), str(pool)], cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        return {"failed": True, "error": str(exc)[:200], "rss_mb": 0.0}
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - started > timeout:
            proc.kill()
            _pid, status, usage = os.wait4(proc.pid, 0)
            return {"failed": True, "timeout_s": timeout, "rss_mb": usage.ru_maxrss / 1024}
        time.sleep(0.2)
    seconds, rss = time.perf_counter() - started, usage.ru_maxrss / 1024
    if os.waitstatus_to_exitcode(status) != 0:
        return {"failed": True, "rss_mb": rss}
    files = sorted(p.name for p in out.glob("*_asn.json"))
    return {"seconds": seconds, "rss_mb": rss, "done": len(files), "files": files}


def peers(args: argparse.Namespace, results: dict) -> None:
    """jwst's ``asn_generate`` and ``l2rules asn`` (SQLite) on the same pools, smallest first, until the
    generator cannot finish one in ``--jwst-timeout``."""
    if not args.jwst_python.exists():
        print(f"# no jwst environment at {args.jwst_python} (--jwst-python): the asn peer left out", file=sys.stderr)
        return
    for rows in sorted(args.jwst_rows):
        pool = bench.pool_file(args.workdir, rows, 2026)
        work = Path(tempfile.mkdtemp(dir=args.workdir))
        url = f"sqlite:///{work / 'catalog.db'}"
        import l2rules

        l2rules.init(url)
        # l2rules' asn on the peer's pool, kept beside it (not as a step of the main table's catalogs)
        ours = child("asn", url, pool, pool, work)
        peer = jwst_asn(args.jwst_python, pool, work, args.jwst_timeout)
        results[(rows, "jwst")] = {"asn": peer, "l2rules_asn": ours}
        if not peer.get("failed") and not ours.get("failed"):
            peer["same_files"] = peer.pop("files") == sorted(p.name for p in (work / "asn").glob("*_asn.json"))
        print(f"# {rows:,} jwst asn_generate: " + ("failed" if peer.get("failed") else
              f"{peer['seconds']:.2f} s, {peer['rss_mb']:.0f} MB"), file=sys.stderr, flush=True)
        if peer.get("failed"):
            break


def targets(results: dict) -> list[str]:
    lines = []
    for (rows, backend), steps in sorted(results.items()):
        stored, view = (steps.get(name, {}) for name in ("worklist", "current"))
        if stored.get("seconds") and view.get("seconds") and rows == max(k[0] for k in results):
            ratio = stored["seconds"] / view["seconds"]
            met = "met    " if ratio <= STORED_WITHIN else "NOT MET"
            lines.append(f"  {met}  {rows:,} {backend:<10} default "
                         f"worklist, nothing new: {stored['seconds']:.2f} s = {ratio:.2f} x v_current_worklist "
                         f"({view['seconds']:.2f} s; target <= {STORED_WITHIN})")
    for (rows, backend), steps in sorted(results.items()):
        base = steps.get("published", {}).get("seconds")
        if rows != 1_000_000 or not base:
            continue
        for name, r in steps.items():
            if name in ("published", "rerun", "worklist", "current") or r.get("failed"):
                continue
            ratio = r["seconds"] / base
            lines.append(f"  {'met    ' if ratio <= WITHIN else 'NOT MET'}  {rows:,} {backend:<10} {name:<10} "
                         f"{r['seconds']:8.1f} s = {ratio:5.1f} x the published list ({base:.1f} s; "
                         f"target <= {WITHIN})")
    for (rows, backend), steps in sorted(results.items()):
        r = steps.get("rerun")
        if r and not r.get("failed") and rows == max(k[0] for k in results):
            lines.append(f"  {'met    ' if r['seconds'] <= 1 else 'NOT MET'}  rerun with new exposures into "
                         f"{rows:,} ({backend}): {r['seconds']:.2f} s (target <= 1 s)")
    for backend in sorted({b for _r, b in results if b != "jwst"}):
        timed = sorted((rows, steps["asn"]) for (rows, b), steps in results.items()
                       if b == backend and not steps.get("asn", {"failed": True}).get("failed"))
        for (small, a), (large, b) in zip(timed, timed[1:]):
            growth, size = b["seconds"] / a["seconds"], large / small
            lines.append(f"  {'met    ' if growth <= LINEAR * size else 'NOT MET'}  asn linear ({backend}): "
                         f"{small:,} -> {large:,} exposures ({size:.0f} x) took {growth:.1f} x the time "
                         f"(target <= {LINEAR * size:.1f} x)")
            memory = b["rss_mb"] / a["rss_mb"]
            lines.append(f"  {'met    ' if memory <= FLAT else 'NOT MET'}  asn memory flat writing its files "
                         f"({backend}): {a['rss_mb']:,.0f} MB -> {b['rss_mb']:,.0f} MB = {memory:.2f} x "
                         f"(target <= {FLAT} x)")
    for (rows, backend), steps in sorted(results.items()):
        if backend != "jwst":
            continue
        peer = steps["asn"]
        ours = steps["l2rules_asn"]
        said = (f"did not finish in {peer['timeout_s']:.0f} s" if "timeout_s" in peer
                else f"failed ({peer.get('error', 'exit status')})" if peer.get("failed")
                else f"{peer['seconds']:.1f} s, {peer['rss_mb']:,.0f} MB, {peer['done']:,} files"
                + ("" if "same_files" not in peer else ", the same names" if peer["same_files"] else
                   ", NOT the same names"))
        lines.append(f"  peer     {rows:,} jwst asn_generate: {said}; l2rules asn (sqlite): "
                     + ("failed" if ours.get("failed") else f"{ours['seconds']:.1f} s, {ours['rss_mb']:,.0f} MB"))
    return lines


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = sorted({b for _r, b in results if b != "jwst"})
    peer = sorted((rows, r["asn"]["seconds"]) for (rows, b), r in results.items()
                  if b == "jwst" and not r["asn"].get("failed"))
    fig, axes = plt.subplots(1, len(backends), figsize=(6 * len(backends), 4.5), squeeze=False)
    for ax, backend in zip(axes[0], backends):
        sizes = sorted(r for r, b in results if b == backend)
        for name in STEPS:
            points = [(rows, results[(rows, backend)][name]["seconds"]) for rows in sizes
                      if not results[(rows, backend)].get(name, {"failed": True}).get("failed")]
            if points:
                ax.plot(*zip(*points), marker="o", label=name)
        if peer:
            ax.plot(*zip(*peer), marker="x", linestyle="--", color="black", label="asn (jwst asn_generate)")
        ax.set(xscale="log", yscale="log", xlabel="exposures", ylabel="seconds", title=backend)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize="small", loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="pool size (repeatable; default 100,000)")
    parser.add_argument("--incremental", type=int, default=10_000, help="new exposures of the rerun")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset, in this order")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "l2rules-bench")
    parser.add_argument("--plot", type=Path, help="write the PNG of time against size here")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--asn-up-to", type=int, default=1_000_000,
                        help="the asn step only at sizes up to this (the issue times asn on 100,000 exposures)")
    parser.add_argument("--with-results", type=Path, action="append", default=[],
                        help="a --json file of an earlier run, shown with this one's (table, targets, plot)")
    parser.add_argument("--jwst-python", type=Path,
                        default=Path(os.environ.get("JWST_PYTHON", "/tmp/jwstenv/bin/python")),
                        help="the Python of a side environment with jwst, for the asn peer (default $JWST_PYTHON or "
                             "%(default)s; left out when missing)")
    parser.add_argument("--jwst-rows", type=int, action="append",
                        help="pool sizes for the asn peer (repeatable; default 1,000 and 10,000; 0: none)")
    parser.add_argument("--jwst-timeout", type=float, default=3600, help="seconds the asn peer is given per size")
    parser.add_argument("--step", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.jwst_rows = [rows for rows in (args.jwst_rows or [1_000, 10_000]) if rows]
    if args.step:
        print(json.dumps(step(*args.step)))
        return 0
    steps = [s for s in args.steps.split(",") if s]

    backends = args.backends.split(",")
    if "postgresql" in backends and not bench.pg_available():
        print(f"# PostgreSQL not reachable at {bench.PG_URL}: left out", file=sys.stderr)
        backends.remove("postgresql")
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"# machine: {bench.machine()}", flush=True)
    results: dict = {}
    for path in args.with_results:
        for key, value in json.loads(path.read_text()).items():
            rows, backend = key.split("|")
            results[(int(rows), backend)] = value
    for rows in sorted(args.rows or [100_000]):
        pool = bench.pool_file(args.workdir, rows, 2026)
        extra = bench.pool_file(args.workdir, args.incremental, 2027, first_program=50000)
        for backend in backends:
            work = Path(tempfile.mkdtemp(dir=args.workdir))
            url = f"sqlite:///{work / 'catalog.db'}" if backend == "sqlite" else bench.pg_create()
            try:
                import l2rules

                l2rules.init(url)
                for name in steps:
                    if name == "asn" and rows > args.asn_up_to:
                        continue
                    r = child(name, url, pool, extra, work)
                    results.setdefault((rows, backend), {})[name] = r
                    print(f"# {rows:,} {backend} {name}: " + ("failed" if r.get("failed") else
                          f"{r['seconds']:.2f} s, {r['rss_mb']:.0f} MB"), file=sys.stderr, flush=True)
            finally:
                if backend == "postgresql":
                    bench.pg_drop(url)
    if "asn" in steps and args.jwst_rows:
        peers(args, results)
    shown = [s for s in STEPS if any(s in by_step for by_step in results.values())]  # earlier runs' too
    print(f"{'exposures':>12} {'backend':<10} " + " ".join(f"{s:>11}" for s in shown))
    for (rows, backend), by_step in sorted(results.items()):
        cells = ["-" if s not in by_step else "failed" if by_step[s].get("failed") else f"{by_step[s]['seconds']:.1f}s"
                 for s in shown]
        memory = ["-" if s not in by_step or by_step[s].get("failed") else f"{by_step[s]['rss_mb']:.0f}MB"
                  for s in shown]
        print(f"{rows:>12,} {backend:<10} " + " ".join(f"{c:>11}" for c in cells))
        print(f"{'':>12} {'peak RSS':<10} " + " ".join(f"{m:>11}" for m in memory))
    print("\ntargets:")
    print("\n".join(targets(results)) or "  (none at these sizes: the targets are at 1,000,000 exposures)")
    per_row = sorted({(rows, backend, name, statement) for (rows, backend), by_step in results.items()
                      for name, r in by_step.items() for statement in r.get("per_row", [])})
    print("\nplan check (every statement of every step, planned on its catalog): "
          + ("NOT MET" if per_row else "no per-row subplan over data"))
    for rows, backend, name, statement in per_row:
        print(f"  {rows:,} {backend} {name}: {statement}")
    if args.plot:
        plot(results, args.plot)
        print(f"\nplot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps({f"{r}|{b}": v for (r, b), v in results.items()}, indent=1))
    return 1 if per_row else 0


if __name__ == "__main__":
    sys.exit(main())
