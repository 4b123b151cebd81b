"""Crash tests: kill -9 of `load`, `run` and `init` at known points, on SQLite and PostgreSQL.

Each test waits for a state, never for a time: a load is killed once it is seen
writing its rows (SQLite: the write lock held and rows in the WAL; PostgreSQL: a
transaction that has written, copying exposures), stopped first with SIGSTOP so
that the kill surely lands before its commit; a migration is held after a given
revision (``L2RULES_MIGRATE_HOLD``). Then the catalog must hold all of the work or
none of it, no process or lock may be left over, and the same command run again
must finish it, each row once. ``scripts/crash_drills.py`` does the same at random
moments; its helpers are the ones used here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from l2rules import migrate
from l2rules.config import get_engine

from .conftest import POOLS, REPO, _dispose
from .runs_helpers import assert_exactly_once, spawn

_spec = importlib.util.spec_from_file_location("crash_drills", REPO / "scripts" / "crash_drills.py")
drills = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(drills)

#: Large enough to be caught mid-load on any machine, and over 8 MB: `run` takes the bulk path.
ROWS = 24000

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="the process checks read Linux /proc")


@pytest.fixture(scope="module")
def big_pool(tmp_path_factory) -> Path:
    path = drills.synthetic_pool(tmp_path_factory.mktemp("crash"), ROWS)
    assert path.stat().st_size >= 8 << 20
    return path


def _stop_mid_load(db: str, writers, proc: subprocess.Popen) -> list[int]:
    """Wait until the load is writing its rows, then SIGSTOP the processes that write it.

    ``writers()`` names them (the load's process, or the SQLite bulk writer, its child).
    The state is checked again once they are stopped (if they had just committed, they
    are let go and the wait goes on), so the load's transaction is surely open, and
    cannot commit, when the test kills it. Returns the stopped pids.
    """
    stopped: list[int] = []

    def caught() -> bool:
        if not drills.mid_load(db):
            return False
        pids = writers()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        if pids and drills.mid_load(db):
            stopped[:] = pids
            return True
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        return False

    drills.wait_for(caught, "the load writing its rows", proc)
    assert drills.writing(db), "the load's transaction is open"
    return stopped


def _load_writers(db: str, proc: subprocess.Popen, method: str):
    """The process writing a load: the SQLite bulk path's writer (a child), else the command itself."""
    if method == "bulk" and db.startswith("sqlite"):
        return lambda: drills.children(proc.pid)
    return lambda: [proc.pid]


def cli(db: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m l2rules --db DB ARGS...`, to its end (a 30,000-row load takes a while on a busy machine)."""
    return subprocess.run([sys.executable, "-m", "l2rules", "--db", db, *args], capture_output=True, text=True,
                          timeout=900)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def _counts(db: str) -> tuple[int, int, int]:
    with get_engine(db).connect() as conn:
        return tuple(conn.execute(sa.text(
            "SELECT (SELECT count(*) FROM exposure), (SELECT count(DISTINCT stem) FROM exposure), "
            "(SELECT count(*) FROM pool)")).one())


@pytest.mark.parametrize("method", ["rows", "bulk"])
def test_load_killed_mid_load_leaves_nothing_and_the_rerun_loads_all(db, big_pool, method):
    proc = spawn(db, "load", "--method", method, str(big_pool))
    stopped = _stop_mid_load(db, _load_writers(db, proc, method), proc)
    _kill(proc)
    assert drills.gone_within(stopped) == []  # the SQLite bulk writer died with its parent (stopped as it was)
    drills.integrity(db)
    assert drills.load_outcome(db, big_pool.name, ROWS) == "nothing"
    assert _counts(db) == (0, 0, 0)

    again = cli(db, "load", "--method", method, str(big_pool))  # no lock left in the way
    assert again.returncode == 0, again.stderr
    drills.assert_loaded_once(db, big_pool.name, ROWS)
    assert _counts(db) == (ROWS, ROWS, 1)


def test_bulk_writer_dies_with_its_parent_and_commits_nothing(tmp_path, sqlite_template, big_pool):
    """The orphan of the review: kill -9 of `load` mid bulk load left the writer running, and it committed."""
    path = tmp_path / "catalog.db"
    path.write_bytes(sqlite_template.read_bytes())
    db = f"sqlite:///{path}"
    proc = spawn(db, "load", "--method", "bulk", str(big_pool))
    (writer,) = _stop_mid_load(db, _load_writers(db, proc, "bulk"), proc)
    _kill(proc)
    os.kill(writer, signal.SIGCONT)  # (if still there) left alone, it would go on and commit
    assert drills.gone_within([writer]) == [], "the writer outlived its parent"
    assert drills.load_outcome(db, big_pool.name, ROWS) == "nothing"


def _writer(db_path: Path, pool: Path, parent: int) -> subprocess.Popen:
    """The SQLite writer started by hand, told that ``parent`` started it, its stdin a pipe."""
    return subprocess.Popen([sys.executable, "-m", "l2rules.inventory.columnar", "load", str(db_path), str(pool),
                             pool.name],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "L2RULES_BULK_PARENT": str(parent)})


def test_bulk_writer_exits_when_the_pipe_from_its_parent_closes(tmp_path, sqlite_template, big_pool):
    """The portable fallback: EOF on stdin ends the writer at once, its transaction uncommitted."""
    path = tmp_path / "catalog.db"
    path.write_bytes(sqlite_template.read_bytes())
    db = f"sqlite:///{path}"
    writer = _writer(path, big_pool, os.getpid())  # this process stays alive: only the pipe tells
    _stop_mid_load(db, lambda: [writer.pid], writer)
    writer.stdin.close()
    writer.send_signal(signal.SIGCONT)
    assert writer.wait(timeout=60) == 70
    assert drills.load_outcome(db, big_pool.name, ROWS) == "nothing"


def test_bulk_writer_whose_parent_died_before_it_started_exits(tmp_path, sqlite_template, big_pool):
    path = tmp_path / "catalog.db"
    path.write_bytes(sqlite_template.read_bytes())
    writer = _writer(path, big_pool, os.getpid() + 1_000_000)  # not its parent: as if reparented already
    out, _ = writer.communicate(timeout=120)
    assert writer.returncode == 70 and out == b""  # no answer: it wrote nothing
    assert drills.load_outcome(f"sqlite:///{path}", big_pool.name, ROWS) == "nothing"


def test_run_killed_mid_bulk_load(db, big_pool, tmp_path):
    """kill -9 of `run` while its load writes: nothing loaded, no writer left, no lock; the next run does it all."""
    out = str(tmp_path / "items-{run_id}.csv")
    proc = spawn(db, "run", str(big_pool), "--output", out)
    stopped = _stop_mid_load(db, _load_writers(db, proc, "bulk"), proc)
    _kill(proc)
    assert drills.gone_within(stopped) == []
    assert drills.load_outcome(db, big_pool.name, ROWS) == "nothing"
    assert drills.items_outcome(db) == "no items"

    clean = cli(db, "run", str(big_pool), "--output", out, "--print", "json")  # no --wait: no lock left
    assert clean.returncode == 0, clean.stderr
    result = json.loads(clean.stdout)
    assert result["exposures_new"] == ROWS and result["items_created"] > 0
    assert "died while running" in clean.stderr
    drills.assert_loaded_once(db, big_pool.name, ROWS)
    assert_exactly_once(db)


# --- init ----------------------------------------------------------------------------------------

def _hold(revision: str, marker: Path, seconds: int = 120) -> dict:
    return {"L2RULES_MIGRATE_HOLD": revision, "L2RULES_MIGRATE_HOLD_FILE": str(marker),
            "L2RULES_MIGRATE_HOLD_SECONDS": str(seconds)}


def _tables(db: str) -> set[str]:
    engine = get_engine(db)
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def test_init_killed_mid_migration_leaves_nothing(empty_db, tmp_path):
    """A new catalog, init killed after revision 0004 of 0009: no table left behind, and init works again."""
    marker = tmp_path / "held"
    proc = spawn(empty_db, "init", env=_hold("0004", marker))
    drills.wait_for(marker.exists, "the migration at 0004", proc)
    assert drills.writing(empty_db)  # its transaction is open, the tables of 0001-0004 in it
    _kill(proc)
    drills.integrity(empty_db)
    _dispose(empty_db)
    assert drills.init_outcome(empty_db) == "empty"
    assert _tables(empty_db) == set()

    again = cli(empty_db, "init")
    assert again.returncode == 0, again.stderr
    assert "(was empty)" in again.stdout
    assert drills.init_outcome(empty_db) == "head"


def test_init_killed_keeps_the_previous_revision(empty_db, tmp_path):
    """A catalog at 0003, init killed after 0005: still 0003 (rule without asn_type), then init reaches the head."""
    migrate.upgrade(empty_db, "0003")
    _dispose(empty_db)
    marker = tmp_path / "held"
    proc = spawn(empty_db, "init", env=_hold("0005", marker))
    drills.wait_for(marker.exists, "the migration at 0005", proc)
    _kill(proc)
    drills.integrity(empty_db)
    assert migrate.current_revision(empty_db) == "0003"
    with get_engine(empty_db).connect() as conn:
        assert "asn_type" not in {c["name"] for c in sa.inspect(conn).get_columns("rule")}
        assert conn.execute(sa.text("SELECT count(*) FROM rule")).scalar_one() == 74
    _dispose(empty_db)
    again = cli(empty_db, "init")
    assert again.returncode == 0, again.stderr
    assert "(was 0003)" in again.stdout
    assert drills.init_outcome(empty_db) == "head"


# --- first use, concurrently -----------------------------------------------------------------------

def test_three_inits_of_a_new_catalog_at_once(empty_db, tmp_path):
    """The first holds the migration half-way while two more start: all three succeed, one creates it."""
    marker = tmp_path / "held"
    first = spawn(empty_db, "init", env=_hold("0002", marker))
    drills.wait_for(marker.exists, "the first init at 0002", first)
    others = [spawn(empty_db, "init") for _ in range(2)]
    if empty_db.startswith("postgresql"):  # both wait for the migration lock
        drills.wait_for(lambda: drills.pg_count(
            empty_db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                      "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())") == 2,
            "two inits waiting for the migration lock")
    else:  # both have the file open: they wait for its write lock (or find the catalog made)
        drills.wait_for(lambda: all(_has_open(p.pid, empty_db) or p.poll() is not None for p in others),
                        "two inits opening the catalog")
    marker.unlink()  # the first goes on
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in [first, *others]]
    assert [code for code, _, _ in results] == [0, 0, 0], results
    assert not any("Traceback" in err for _, _, err in results)
    assert sum("(was empty)" in out for _, out, _ in results) == 1  # only the first found it empty
    assert drills.init_outcome(empty_db) == "head"


def _has_open(pid: int, db: str) -> bool:
    target = str(drills.sqlite_path(db).resolve())
    try:
        return any(os.readlink(fd) == target for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def test_three_first_use_loads_of_a_new_sqlite_file(tmp_path):
    """Three `load`s create the same new SQLite catalog at once: all succeed, none loses its data."""
    db = f"sqlite:///{tmp_path / 'new.db'}"
    names = ["pool_002_image_miri.csv", "pool_007_spec_miri.csv", "pool_019_niriss_wfss.csv"]
    marker = tmp_path / "held"
    first = spawn(db, "load", str(POOLS / names[0]), env=_hold("0002", marker))
    drills.wait_for(marker.exists, "the first load's migration at 0002", first)
    others = [spawn(db, "load", str(POOLS / name)) for name in names[1:]]
    drills.wait_for(lambda: all(_has_open(p.pid, db) or p.poll() is not None for p in others),
                    "two loads opening the catalog")
    marker.unlink()
    results = [(p.wait(timeout=300), p.stderr.read()) for p in [first, *others]]
    assert [code for code, _ in results] == [0, 0, 0], results
    drills.integrity(db)
    with get_engine(db).connect() as conn:
        pools = set(conn.execute(sa.text("SELECT name FROM pool WHERE n_exposures > 0")).scalars())
    assert pools == set(names)
    _dispose(db)
