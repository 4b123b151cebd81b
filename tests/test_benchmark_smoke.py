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
    contenders = ["pandas", "l2rules-sqlite", "pgcopy", "l2rules-pg", "l2rules-sqlite-csv", "l2rules-pg-csv"]
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
