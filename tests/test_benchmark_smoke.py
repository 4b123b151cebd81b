"""Smoke run of benchmarks/bench.py on a 1,000-row pool: it runs, and every contender agrees.

Not a timed test: the figures are in the README's Performance section. What this
checks is that the benchmark still works end to end (pool generator, each
contender in its own process, the table, the incremental batch) and that the
reference join of DuckDB / pandas / COPY selects the same exposures as l2rules
on the generated pool.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks" / "bench.py"


def test_benchmark_smoke(tmp_path):
    contenders = ["pandas", "l2rules-sqlite", "pgcopy", "l2rules-pg", "l2rules-sqlite-csv",
                  "l2rules-pg-csv",
                  "l2rules-sqlite-default"]
    if importlib.util.find_spec("duckdb") is not None:
        contenders.insert(0, "duckdb")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--rows", "1000", "--repeats", "1", "--incremental", "100",
         "--contenders", ",".join(contenders), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"^\s+1,000 (\S+)\s+([\d.]+)\s+[\d,]+\s+[\d,]+\s+\S+\s+\S+\s+\S+\s+([\d,]+)$", proc.stdout, re.M)
    ran = {name: work for name, _seconds, work in rows}
    # the default work list (the pipeline's answer): what `worklist POOL --format csv --output F` writes
    default = int(ran.pop("l2rules-sqlite-default").replace(",", ""))
    assert 0 < default <= int(ran["l2rules-sqlite"].replace(",", "")), proc.stdout
    assert re.search(r"^  (met    |NOT MET)  1,000 rows, l2rules-sqlite-default: [\d.]+ s = [\d.]+ x duckdb "
                     r"\([\d.]+ s; target <= 2.0\)", proc.stdout, re.M) or "duckdb" not in contenders, proc.stdout
    assert "l2rules-sqlite" in ran and "pandas" in ran, proc.stdout
    assert ("pgcopy" in ran) == ("l2rules-pg" in ran), proc.stdout
    # the reference join and the catalog select the same number of exposures
    assert len(set(ran.values())) == 1, proc.stdout
    assert int(ran["l2rules-sqlite"].replace(",", "")) > 0
    assert re.search(r"^\s+100 l2rules-sqlite\s+[\d.]+", proc.stdout, re.M), proc.stdout
    assert "l2rules-sqlite-csv" in ran and ran["l2rules-sqlite-csv"] == ran["l2rules-sqlite"], proc.stdout
    # the targets are printed, each met or not, with its figure
    assert re.search(r"^targets:$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^  (met    |NOT MET)  1,000 rows, l2rules-sqlite: [\d.]+ s = [\d.]+ x duckdb",
                     proc.stdout, re.M) or "duckdb" not in contenders, proc.stdout
    assert re.search(r"^  (met    |NOT MET)  incremental 100 rows, l2rules-sqlite: [\d.]+ s",
                     proc.stdout, re.M), proc.stdout
    assert "# machine:" in proc.stdout
    # the plans of the views on the benchmark's own catalogs: none evaluated once per row
    assert re.search(r"^plan check \(l2rules-\S+.*\): no per-row subplan in any view$", proc.stdout, re.M), proc.stdout
    # the pool is deterministic: a second generation gives the same bytes
    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench", BENCH)
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.pop(0)
    again = bench.generate(tmp_path / "again.csv", 1000, 2026)
    assert again.read_bytes() == (tmp_path / "pool_1000_2026_1000.csv").read_bytes()
    header = [line for line in again.read_text().splitlines() if not line.startswith("#")][0]
    assert len(header.split("|")) == 57


COMMANDS = REPO / "benchmarks" / "commands.py"


def test_commands_benchmark_smoke(tmp_path):
    """benchmarks/commands.py at two small sizes on SQLite: each step runs, the table, the asn targets and the
    plan check are printed, and the asn peer runs jwst's generator from the side environment it is given
    (here a stand-in: an ``asn_generate`` that writes two files)."""
    side = tmp_path / "jwstenv" / "bin"
    side.mkdir(parents=True)
    (side / "python").write_text("#!/bin/sh\necho /nowhere/rules_level2b.py\n")
    (side / "asn_generate").write_text('#!/bin/sh\n# asn_generate -r RULES --ignore-default -p DIR POOL\n'
                                       'touch "$5/jw1-o001_image2_00001_asn.json" "$5/jw1-o001_spec2_00001_asn.json"\n')
    for script in side.iterdir():
        script.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, str(COMMANDS), "--rows", "1000", "--rows", "2000", "--backends", "sqlite",
         "--steps", "run,worklist,current,asn", "--workdir", str(tmp_path / "work"),
         "--jwst-python", str(side / "python"),
         "--jwst-rows", "1000", "--jwst-timeout", "60"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\s+2,000 sqlite\s+[\d.]+s\s+[\d.]+s\s+[\d.]+s\s+[\d.]+s$", proc.stdout, re.M), proc.stdout
    # the default work list after `run`: the stored answers, beside the view of the current work items
    assert re.search(r"^  (met    |NOT MET)  2,000 sqlite     default worklist, nothing new: [\d.]+ s = [\d.]+ x "
                     r"v_current_worklist", proc.stdout, re.M), proc.stdout
    assert re.search(r"^  (met    |NOT MET)  asn linear \(sqlite\): 1,000 -> 2,000 exposures \(2 x\) took [\d.]+ x",
                     proc.stdout, re.M), proc.stdout
    assert re.search(r"^  (met    |NOT MET)  asn memory flat writing its files \(sqlite\)", proc.stdout, re.M)
    # the stand-in's two files are not the names l2rules writes: said so
    assert re.search(r"^  peer     1,000 jwst asn_generate: [\d.]+ s, [\d,]+ MB, 2 files, NOT the same names; "
                     r"l2rules asn \(sqlite\): [\d.]+ s", proc.stdout, re.M), proc.stdout
    assert "no per-row subplan over data" in proc.stdout


def test_commands_benchmark_peer_that_does_not_finish_is_said_so(tmp_path):
    """A size jwst's generator cannot finish in ``--jwst-timeout`` is killed and said so, not waited on; one
    that cannot start is said so too."""
    spec = importlib.util.spec_from_file_location("commands", COMMANDS)
    commands = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(commands)
    side = tmp_path / "bin"
    side.mkdir()
    (side / "python").write_text("#!/bin/sh\necho /nowhere/rules_level2b.py\n")
    (side / "asn_generate").write_text("#!/bin/sh\nexec sleep 600\n")
    for script in side.iterdir():
        script.chmod(0o755)
    r = commands.jwst_asn(side / "python", tmp_path / "pool.csv", tmp_path, timeout=1)
    assert r["failed"] and r["timeout_s"] == 1
    # a broken side environment is a failed peer, not a benchmark that dies before its table
    (side / "asn_generate").unlink()
    r = commands.jwst_asn(side / "python", tmp_path / "pool.csv", tmp_path, timeout=1)
    assert r["failed"] and "asn_generate" in r["error"]


def test_large_candidate_benchmark_smoke():
    """benchmarks/candidates.py end to end on small sizes: the copies make one candidate whose science grow
    with the pool (same mix: 3 of every 4 rows of the NIRSpec sample are science), and the target line."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "candidates.py"), "--size", "40", "--size", "400"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    rows = dict(((mix, int(size.replace(",", ""))), int(selected.replace(",", ""))) for mix, size, selected in
                re.findall(r"^sqlite\s+(\S+)\s+([\d,]+)\s+[\d.]+\s+([\d,]+)$", proc.stdout, re.M))
    assert rows[("same-mix", 400)] == 10 * rows[("same-mix", 40)] > 0, proc.stdout
    assert rows[("all-pairs", 400)] == rows[("same-mix", 400)], proc.stdout
    assert re.search(r"^  sqlite: a candidate of 400 with the same mix [\d.]+ x the time of 40 \(target <= 10 x\): "
                     r"(met|NOT MET)$", proc.stdout, re.M), proc.stdout


def test_pools_benchmark_smoke(tmp_path):
    """benchmarks/pools.py runs end to end on a few small pools: every pool evaluated, the same answers as the
    one pool of their rows, and its target line."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "pools.py"), "--pools", "5", "--rows", "10", "--backends",
         "sqlite", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"^sqlite\s+(1 pool of 50|5 pools of 10)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s", proc.stdout, re.M)
    assert [(label, pools, answers) for label, pools, answers, _ in rows] == [
        ("1 pool of 50", "1", "50"), ("5 pools of 10", "5", "50")], proc.stdout
    assert re.search(r"^5 pools of 10 within 2x one pool of 50: (met|NOT MET) \(sqlite: ", proc.stdout, re.M)
