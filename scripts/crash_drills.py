#!/usr/bin/env python3
"""Crash drills: ``kill -9`` of l2rules commands at random moments, then the catalog is checked.

Scenarios, each on SQLite and on PostgreSQL:

- ``load-rows``, ``load-bulk``: ``l2rules load --method rows|bulk POOL`` of a synthetic pool
  (``benchmarks/bench.py``), into a migrated catalog;
- ``run``: ``l2rules run POOL`` (the pool is large enough for the bulk path);
- ``init``: ``l2rules init`` of a new SQLite file / a new PostgreSQL database.

Each scenario first runs its command once unkilled, to time it; each kill then comes at a
random moment in that time. After each kill:

- no process of the killed command is left (the SQLite bulk writer dies with its parent);
- SQLite: ``PRAGMA integrity_check`` says ok;
- the work is all or nothing: the pool and all its exposures, or neither; a run's work items
  all or none; ``init``: the catalog at head, or nothing (a new file stays empty);
- the same command run again exits 0 (no lock left that blocks it: ``run`` without
  ``--wait``) and leaves the whole load, each exposure once (``run``: each work item once,
  no run left ``running``; ``init``: the head revision and its 75 rules).

    python scripts/crash_drills.py                      # 5 kills per scenario, both backends
    python scripts/crash_drills.py --kills 20 --rows 100000 --scenarios load-bulk-sqlite,run-pg

Prints one line per kill, then a table of outcomes per scenario; exits 1 if any check failed.
The helpers (process tree, "mid-load" probes, the checks) are shared with ``tests/test_crash.py``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("L2RULES_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
HEAD_RULES = 75
#: WAL bytes a SQLite load has written before it counts as "mid-load" (its first batches).
WAL_MID = 2 << 20


class DrillFailure(AssertionError):
    """A check after a kill failed: the catalog is not as a crash-safe command leaves it."""


# --- processes -----------------------------------------------------------------------------------

def cli(url: str, *args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """``python -m l2rules --db URL ARGS...`` in a process of its own (stdout and stderr piped)."""
    return subprocess.Popen([sys.executable, "-m", "l2rules", "--db", url, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that still runs (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen | None = None,
             timeout: float = 180) -> None:
    """Poll ``condition`` until true; fail if ``proc`` ends first or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise DrillFailure(f"the process ended (exit {proc.returncode}) before {what}: "
                               f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise DrillFailure(f"never saw {what} within {timeout:g} s")
        time.sleep(0.02)


def gone_within(pids: list[int], timeout: float = 30) -> list[int]:
    """The pids still running after waiting up to ``timeout`` seconds for them to end."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


# --- probes: is a load writing right now? --------------------------------------------------------

def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def sqlite_writer_active(path: Path) -> bool:
    """Whether some connection holds the write lock (a write transaction is open) on ``path``."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise
    finally:
        probe.close()


def sqlite_mid_load(path: Path) -> bool:
    """A write transaction is open and has already written ``WAL_MID`` bytes of rows."""
    wal = Path(f"{path}-wal")
    return wal.exists() and wal.stat().st_size > WAL_MID and sqlite_writer_active(path)


def pg_engine(url: str):
    import sqlalchemy as sa

    return sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), poolclass=sa.pool.NullPool)


_PG_COPYING = """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_xid IS NOT NULL AND query LIKE 'COPY exposure%'"""
_PG_WRITING = """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_xid IS NOT NULL"""


def pg_count(url: str, sql: str) -> int:
    import sqlalchemy as sa

    engine = pg_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()


def pg_mid_load(url: str) -> bool:
    """A transaction on this database has written and is copying exposures (or their candidates)."""
    return pg_count(url, _PG_COPYING) > 0


def pg_writing(url: str) -> bool:
    """Some other session on this database is in a transaction that has written."""
    return pg_count(url, _PG_WRITING) > 0


def mid_load(url: str) -> bool:
    return sqlite_mid_load(sqlite_path(url)) if url.startswith("sqlite") else pg_mid_load(url)


def writing(url: str) -> bool:
    return sqlite_writer_active(sqlite_path(url)) if url.startswith("sqlite") else pg_writing(url)


# --- checks --------------------------------------------------------------------------------------

def _query(url: str, sql: str, params: dict | None = None) -> list[tuple]:
    import sqlalchemy as sa

    if url.startswith("sqlite"):
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    else:
        engine = pg_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params or {})]
    finally:
        engine.dispose()


def integrity(url: str) -> None:
    if not url.startswith("sqlite"):
        return
    with sqlite3.connect(sqlite_path(url)) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        raise DrillFailure(f"integrity_check: {result[:5]}")


def load_outcome(url: str, pool_name: str, rows: int) -> str:
    """``nothing`` or ``whole``, as the load left the catalog; anything else fails."""
    integrity(url)
    (exposures,), = _query(url, "SELECT count(*) FROM exposure")
    pools = _query(url, "SELECT n_exposures FROM pool WHERE name = :n", {"n": pool_name})
    if exposures == 0 and not pools:
        return "nothing"
    if exposures == rows and pools == [(rows,)]:
        return "whole"
    raise DrillFailure(f"partial load: {exposures} exposures of {rows}, pool rows {pools}")


def assert_loaded_once(url: str, pool_name: str, rows: int) -> None:
    integrity(url)
    (n, distinct), = _query(url, "SELECT count(*), count(DISTINCT stem) FROM exposure")
    pools = _query(url, "SELECT n_exposures FROM pool WHERE name = :n", {"n": pool_name})
    if (n, distinct, pools) != (rows, rows, [(rows,)]):
        raise DrillFailure(f"after the rerun: {n} exposures, {distinct} distinct, pool {pools}; expected {rows}")


def items_outcome(url: str) -> str:
    """A killed run's work items: ``no items`` or ``all items`` (of the current work list)."""
    (items, exposures), = _query(url, "SELECT count(*), count(DISTINCT exposure_id) FROM work_item")
    if items != exposures:
        raise DrillFailure(f"{items} work items for {exposures} exposures")
    if items == 0:
        return "no items"
    selected = _selected(url)
    if items == selected:
        return "all items"
    raise DrillFailure(f"partial items: {items} of {selected}")


def _selected(url: str) -> int:
    """The length of the work list, as `l2rules worklist` computes it."""
    import sqlalchemy as sa

    from l2rules.worklist import worklist

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool) if url.startswith("sqlite") else pg_engine(url)
    try:
        return len(worklist(engine))  # the pipeline's answer, as runs make their items (not the table's alone)
    finally:
        engine.dispose()


def assert_items_once(url: str) -> None:
    integrity(url)
    (items, exposures), = _query(url, "SELECT count(*), count(DISTINCT exposure_id) FROM work_item")
    (running,), = _query(url, "SELECT count(*) FROM run WHERE status = 'running'")
    selected = _selected(url)
    if not (items == exposures == selected) or running:
        raise DrillFailure(f"after the rerun: {items} items for {exposures} exposures, {selected} selected, "
                           f"{running} runs left running")


def init_outcome(url: str) -> str:
    """What a killed ``init`` left: ``empty`` or ``head``; anything between fails."""
    integrity(url)
    if url.startswith("sqlite"):
        tables = [r[0] for r in _query(url, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    else:
        tables = [r[0] for r in _query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    if not tables:
        return "empty"
    from l2rules.migrate import head_revision

    version = _query(url, "SELECT version_num FROM alembic_version") if "alembic_version" in tables else []
    if version == [(head_revision(),)]:
        (rules,), = _query(url, "SELECT count(*) FROM rule")
        if rules == HEAD_RULES:
            return "head"
    raise DrillFailure(f"half a catalog: tables {sorted(tables)[:6]}..., alembic_version {version}")


# --- the drills ----------------------------------------------------------------------------------

class Databases:
    """Fresh databases for each kill: SQLite files copied from a migrated one; PostgreSQL from a template."""

    #: The prefix of the PostgreSQL databases made (the fault suite's are ``fault_suite_*``).
    prefix = "l2rules_drill_"

    def __init__(self, workdir: Path, pg: bool, prepare: Sequence[Sequence[str]] = ()):
        """``prepare``: commands run on each template after its ``init`` (e.g. a pool loaded first)."""
        self.workdir, self.pg, self.prepare = workdir, pg, prepare
        self.created: list[str] = []
        self.template_file = workdir / "template.db"
        self.template_pg: str | None = None

    def _admin(self):
        import sqlalchemy as sa

        return sa.create_engine(sa.make_url(PG_ADMIN).set(drivername="postgresql+psycopg"),
                                isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    def _create_pg(self, template: str | None = None) -> str:
        import sqlalchemy as sa

        name = f"{self.prefix}{uuid.uuid4().hex[:10]}"
        admin = self._admin()
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
        admin.dispose()
        self.created.append(name)
        return sa.make_url(PG_ADMIN).set(drivername="postgresql+psycopg", database=name) \
            .render_as_string(hide_password=False)

    def empty(self, backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{self.workdir / f'{uuid.uuid4().hex[:10]}.db'}"
        return self._create_pg()

    def migrated(self, backend: str) -> str:
        if backend == "sqlite":
            if not self.template_file.exists():
                _must(cli(f"sqlite:///{self.template_file}", "init"), "init of the template")
                for command in self.prepare:
                    _must(cli(f"sqlite:///{self.template_file}", *command), f"{command[0]} of the template")
                with sqlite3.connect(self.template_file) as conn:  # its WAL into the file: a copy is the whole
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            path = self.workdir / f"{uuid.uuid4().hex[:10]}.db"
            shutil.copy(self.template_file, path)
            return f"sqlite:///{path}"
        if self.template_pg is None:
            url = self._create_pg()
            _must(cli(url, "init"), "init of the template")
            for command in self.prepare:
                _must(cli(url, *command), f"{command[0]} of the template")
            self.template_pg = self.created[-1]
        return self._create_pg(self.template_pg)

    def drop(self, url: str) -> None:
        import sqlalchemy as sa

        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm", ".run-lock"):
                Path(f"{sqlite_path(url)}{suffix}").unlink(missing_ok=True)
        else:
            self._drop_pg(sa.make_url(url).database)

    def _drop_pg(self, name: str) -> None:
        import sqlalchemy as sa

        admin = self._admin()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        self.created.remove(name)

    def cleanup(self) -> None:
        for name in reversed(list(self.created)):
            self._drop_pg(name)


def _must(proc: subprocess.Popen, what: str) -> str:
    code, out, err = finish(proc)
    if code != 0:
        raise DrillFailure(f"{what}: exit {code}: {err.strip()[-400:]}")
    return out


def synthetic_pool(workdir: Path, rows: int, seed: int = 11) -> Path:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench
    finally:
        sys.path.pop(0)
    return bench.generate(workdir / f"drill_pool_{rows}.csv", rows, seed)


class Scenario:
    def __init__(self, kind: str, backend: str, pool: Path, rows: int):
        self.kind, self.backend, self.pool, self.rows = kind, backend, pool, rows
        self.name = f"{kind}-{'sqlite' if backend == 'sqlite' else 'pg'}"

    def database(self, dbs: Databases) -> str:
        return dbs.empty(self.backend) if self.kind == "init" else dbs.migrated(self.backend)

    def command(self) -> list[str]:
        if self.kind == "load-rows":
            return ["load", "--method", "rows", str(self.pool)]
        if self.kind == "load-bulk":
            return ["load", "--method", "bulk", str(self.pool)]
        if self.kind == "run":
            return ["run", str(self.pool)]
        return ["init"]

    def rerun(self) -> list[str]:
        # After a whole bulk load the bulk path declines the file (already in the catalog): the
        # rerun is what cron or an operator would do, `load` as it comes (auto).
        if self.kind.startswith("load"):
            return ["load", str(self.pool)]
        return self.command()

    def outcome(self, url: str) -> str:
        if self.kind == "init":
            return init_outcome(url)
        loaded = load_outcome(url, self.pool.name, self.rows)
        if self.kind == "run":
            items = items_outcome(url)
            if loaded == "nothing" and items != "no items":
                raise DrillFailure("work items without their exposures")
            return f"{loaded}, {items}"
        return loaded

    def after_rerun(self, url: str) -> None:
        if self.kind == "init":
            if init_outcome(url) != "head":
                raise DrillFailure("the rerun of init did not reach the head revision")
            return
        assert_loaded_once(url, self.pool.name, self.rows)
        if self.kind == "run":
            assert_items_once(url)


def drill(scenario: Scenario, dbs: Databases, delay: float | None) -> tuple[str, float, str]:
    """One run of the scenario's command, killed after ``delay`` seconds (None: not killed).

    Returns (outcome, seconds the command ran, detail).
    """
    url = scenario.database(dbs)
    try:
        started = time.monotonic()
        proc = cli(url, *scenario.command(), cwd=dbs.workdir)
        seen: set[int] = set()
        while proc.poll() is None and (delay is None or time.monotonic() - started < delay):
            seen.update(children(proc.pid))  # the SQLite bulk writer, while it lives
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        if proc.poll() is None:
            seen.update(children(proc.pid))
            was_writing = writing(url)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = "killed while writing" if was_writing else "killed"
        else:
            code, _, err = finish(proc)
            if code != 0:
                raise DrillFailure(f"the unkilled command failed: exit {code}: {err.strip()[-400:]}")
            killed = "finished first"
        left = gone_within(sorted(seen))
        if left:
            raise DrillFailure(f"processes left running after the kill: {left}")
        outcome = scenario.outcome(url)
        code, _, err = finish(cli(url, *scenario.rerun(), cwd=dbs.workdir))
        if code != 0:
            raise DrillFailure(f"the rerun failed: exit {code}: {err.strip()[-400:]}")
        scenario.after_rerun(url)
        return f"{killed}: {outcome}", elapsed, f"{len(seen)} child process(es) seen"
    finally:
        dbs.drop(url)


def _pg_available() -> str | None:
    import sqlalchemy as sa

    try:
        engine = pg_engine(PG_ADMIN)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver error means "no server"
        return str(exc).splitlines()[0]
    return None


KINDS = ("load-rows", "load-bulk", "run", "init")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5, help="kills per scenario (default 5)")
    parser.add_argument("--rows", type=int, default=60000, help="exposures in the synthetic pool (default 60,000)")
    parser.add_argument("--seed", type=int, default=20261130, help="seed of the kill moments")
    parser.add_argument("--scenarios", help="comma-separated, e.g. load-bulk-sqlite,init-pg (default: all)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--workdir", type=Path, help="where pools and SQLite files go (default: a temporary one)")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="l2rules-drills-"))
    workdir.mkdir(parents=True, exist_ok=True)
    backends = ["sqlite"]
    problem = None if args.no_postgres else _pg_available()
    if not args.no_postgres and problem is None:
        backends.append("postgresql")
    elif problem:
        print(f"PostgreSQL not reachable at {PG_ADMIN}: {problem}; SQLite only", file=sys.stderr)
    pool = synthetic_pool(workdir, args.rows)
    scenarios = [Scenario(k, b, pool, args.rows) for b in backends for k in KINDS]
    if args.scenarios:
        wanted = set(args.scenarios.split(","))
        scenarios = [s for s in scenarios if s.name in wanted]
    dbs = Databases(workdir, "postgresql" in backends)
    table: dict[str, Counter] = {}
    failures = 0
    try:
        for scenario in scenarios:
            counts = table.setdefault(scenario.name, Counter())
            try:
                _, duration, _ = drill(scenario, dbs, None)
            except DrillFailure as exc:
                print(f"{scenario.name:18} unkilled   FAILED: {exc}", flush=True)
                counts["FAILED"] += 1
                failures += 1
                continue
            print(f"{scenario.name:18} unkilled   {duration:6.2f} s", flush=True)
            for _ in range(args.kills):
                delay = rng.uniform(0.05, duration * 1.1)
                try:
                    outcome, _, detail = drill(scenario, dbs, delay)
                except DrillFailure as exc:
                    outcome, detail = "FAILED", str(exc)
                    failures += 1
                counts[outcome] += 1
                print(f"{scenario.name:18} kill at {delay:6.2f} s  {outcome}  ({detail})", flush=True)
    finally:
        dbs.cleanup()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"{'scenario':18} {'tries':>5} {'kills':>5}  outcomes")
    print("-" * 100)
    for name, counts in table.items():
        tries = sum(counts.values())
        kills = sum(n for outcome, n in counts.items() if outcome.startswith("killed"))
        text = "; ".join(f"{n} x {outcome}" for outcome, n in sorted(counts.items()))
        print(f"{name:18} {tries:5d} {kills:5d}  {text}")
    print(f"\n{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
