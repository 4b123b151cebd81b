"""The fault suite's bounded run (``scripts/faults.py --bounded``), as CI runs it: no unexpected failure.

The suite drives the CLI under faults (bad files, DataFrames, kills, concurrency, secrets, broken
catalogs, disk full, read-only databases) on SQLite and, when its server answers (always in CI),
PostgreSQL. Its ``KNOWN_FAILING`` list names the checks that fail for faults being fixed elsewhere:
they are printed, counted apart, and do not fail this test; any other failure does. A known one that
passes is printed "fixed" (time to take it off the list).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from .conftest import IN_CI, REPO, Postgres

SUMMARY = re.compile(r"^(\w+): (\d+) checks, (\d+) pass, (\d+) fail(?: \((.*)\))?$", re.M)
TOTAL = re.compile(r"^total: (\d+) checks, (\d+) pass, (\d+) fail \((\d+) known failing, (\d+) unexpected\)$", re.M)


def _backends() -> str:
    if IN_CI:
        return "sqlite,postgresql"
    server = Postgres()
    try:
        return "sqlite" if server.available() else "sqlite,postgresql"
    finally:
        server.admin.dispose()


def test_bounded_fault_suite_has_no_unexpected_failure(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "faults.py"), "--bounded",
                           "--backends", _backends(), "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, env=env)
    out = proc.stdout
    categories = {m.group(1): (int(m.group(2)), int(m.group(3)), int(m.group(4)), m.group(5) or "")
                  for m in SUMMARY.finditer(out)}
    total = TOTAL.search(out)
    assert total, f"no summary:\n{out[-3000:]}\n{proc.stderr[-3000:]}"
    checks, passed, failed, known, unexpected = map(int, total.groups())
    assert {"badfiles", "dataframes", "crash", "concurrency", "secrets", "migrations", "resources"} <= set(
        categories) or "postgresql" not in _backends(), categories
    assert checks >= 100 and passed + failed == checks, out[-3000:]
    for name, (n, p, f, extra) in categories.items():
        known_here = int(m.group(1)) if (m := re.search(r"(\d+) known failing", extra)) else 0
        assert f == known_here, f"{name}: {f} failures, {known_here} of them known:\n{out[-6000:]}"
    assert unexpected == 0 and failed == known, out[-6000:]
    assert proc.returncode == (1 if failed else 0)
