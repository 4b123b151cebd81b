"""The fault suite of issue 33 ("Held under fire, part two"), on SQLite and PostgreSQL where SQL is involved.

Categories: crash (SIGTERM of a run in the middle of a statement), secrets (malformed URLs never echo a
password), migrations (broken catalogs: one line, exit 3, nothing changed; ``init`` repairs what is
certain), resources (a full disk, a read-only catalog) and input (a FITS file named by its own name).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from l2rules import get_engine, load, migrate
from l2rules.cli import main
from l2rules.config import mask_url

from .conftest import POOLS, _dispose
from .runs_helpers import assert_exactly_once, cli, item_rows, spawn, write_pool

#: The head revision, as the migrations in the repo have it.
HEAD = migrate.head_revision()


def _one_error_line(stderr: str) -> str:
    """The one line a failing command prints: no traceback, no log line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("l2rules: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- crash: SIGTERM ---------------------------------------------------------------------------------

def _waiting_on_a_lock(db: str) -> bool:
    """Whether a statement of another session of the test database waits for a lock (PostgreSQL)."""
    with get_engine(db).connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'active' AND wait_event_type = 'Lock'")).scalar())


def _evaluating(db: str) -> bool:
    """Whether the run has recorded its loads (it evaluates the pool next)."""
    with get_engine(db).connect() as conn:
        return bool(conn.execute(sa.text("SELECT count(*) FROM run WHERE status = 'running' "
                                         "AND exposures_seen > 0")).scalar())


def test_sigterm_in_the_middle_of_a_statement_exits_143_recorded_failed(db, backend, tmp_path):
    """PostgreSQL: the run is stopped while psycopg waits for the server (its statement waits for a lock the
    test holds); it used to leave the connection busy and exit 3 with a traceback ("another command is
    already in progress"). SQLite: stopped while it evaluates the pool."""
    pool = str(write_pool(tmp_path / "p.csv", 6000))
    holder = get_engine(db).connect() if backend == "postgresql" else None
    if holder is not None:  # the answers' table locked against writes: the run's statement waits on the server
        holder.begin()
        holder.execute(sa.text("LOCK TABLE level2b_answer IN EXCLUSIVE MODE"))
    try:
        proc = spawn(db, "run", pool, "--print", "json")
        ready = (lambda: _waiting_on_a_lock(db)) if holder is not None else (lambda: _evaluating(db))
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the run never reached the point to stop it at"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
    out, err = proc.stdout.read(), proc.stderr.read()
    assert code == 143, err
    assert _one_error_line(err) == "l2rules: error: stopped by SIGTERM"
    stopped = json.loads(out)
    assert (stopped["status"], stopped["error"]) == ("failed", "Terminated: stopped by SIGTERM")
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM run")).scalars().all() == ["failed"]
    assert item_rows(db) == []
    again = cli(db, "run", pool)
    assert again.returncode == 0, again.stderr
    assert_exactly_once(db)


# --- secrets: malformed URLs ------------------------------------------------------------------------

MALFORMED = [
    "postgresql//user:SECRETPW@127.0.0.1:5432/x",    # the ':' after the scheme missing
    "postgresql:/user:SECRETPW@127.0.0.1:5432/x",    # one '/' missing
    "user:SECRETPW@127.0.0.1:5432/x",                # no scheme at all
    "postgres ql://user:SECRETPW@127.0.0.1:5432/x",  # a space in the scheme
    "postgresql:user:SECRETPW@127.0.0.1/x",          # no '//'
    "postgresql://user:SECRETPW@127.0.0.1:1/x",      # well formed, nothing listens there: unreachable
    "postgresql://user:SECRETPW@127.0.0.1:5432/x?sslmode=bogus",  # refused by the driver
]


def _l2rules(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "l2rules", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "L2RULES_DATABASE_URL"})


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_url_never_prints_its_password(url, tmp_path):
    plain = _l2rules("--db", url, "runs", cwd=tmp_path)
    assert plain.returncode == 3, plain.stderr
    line = _one_error_line(plain.stderr)
    assert "SECRETPW" not in line + plain.stdout and ":***@" in line
    for command in (["init"], ["worklist"]):  # and in the logs, SQL and all
        verbose = _l2rules("--db", url, "-vv", *command, cwd=tmp_path)
        assert verbose.returncode == 3, verbose.stderr
        assert "SECRETPW" not in verbose.stderr + verbose.stdout and "Traceback" not in verbose.stderr
    from_env = subprocess.run([sys.executable, "-m", "l2rules", "worklist"], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120, env={**os.environ, "L2RULES_DATABASE_URL": url})
    assert from_env.returncode == 3 and "SECRETPW" not in _one_error_line(from_env.stderr)


def test_mask_url_covers_what_a_typo_makes_of_a_url():
    assert mask_url("URL 'postgresql//u:pw@h:5432/x': no") == "URL 'postgresql//u:***@h:5432/x': no"
    assert mask_url("u:p/w:x@h") == "u:***@h"
    assert mask_url("postgresql://u:/pw@h") == "postgresql://u:***@h"
    # nothing else: a path with an '@', a URL without a password, one with a '@' in its path
    for text in ("sqlite:////tmp/a@b.db", "postgresql://user@host/db", "http://h/p@x", "at 12:30 to me@home"):
        assert mask_url(text) == text


# --- migrations: broken catalogs ----------------------------------------------------------------------

def _run_cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _versions(db: str) -> list[str]:
    with get_engine(db).connect() as conn:
        return sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def _columns(db: str, table: str) -> set[str]:
    with get_engine(db).connect() as conn:
        return {column["name"] for column in sa.inspect(conn).get_columns(table)}


def test_two_rows_in_alembic_version_one_line_exit_3(db, tmp_path, capsys):
    with get_engine(db).begin() as conn:
        conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES ('0056')"))
    for command in (["runs"], ["init"], ["worklist"], ["db", "current"]):
        code, out, err = _run_cli(capsys, "--db", db, *command)
        assert code == 3, (command, err)
        assert f"records 2 revisions in alembic_version (0056, {HEAD})" in _one_error_line(err)
        assert out == ""
    assert _versions(db) == ["0056", HEAD]  # nothing changed


def test_tables_without_a_revision_one_line_exit_3(db, capsys):
    with get_engine(db).begin() as conn:
        conn.execute(sa.text("DELETE FROM alembic_version"))
    for command in (["init"], ["runs"], ["run", str(POOLS / "pool_002_image_miri.csv")]):
        code, _out, err = _run_cli(capsys, "--db", db, *command)
        assert code == 3, (command, err)
        assert "alembic_version records no revision" in _one_error_line(err)
    assert _versions(db) == []
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pool")).scalar() == 0


def test_an_empty_alembic_version_alone_is_an_empty_catalog(empty_db, capsys):
    """What a downgrade to base leaves: init makes the catalog (not "tables without a revision")."""
    with get_engine(empty_db).begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
    code, out, err = _run_cli(capsys, "--db", empty_db, "init")
    assert code == 0, err
    assert _versions(empty_db) == [migrate.head_revision()]


def test_a_missing_table_one_line_exit_3_before_any_work(db, backend, capsys):
    with get_engine(db).begin() as conn:
        conn.execute(sa.text("DROP TABLE exposure_candidate" + (" CASCADE" if backend == "postgresql" else "")))
    pool = str(POOLS / "pool_002_image_miri.csv")
    for command in (["run", pool], ["worklist"], ["worklist", pool], ["load", pool], ["runs"], ["init"]):
        code, _out, err = _run_cli(capsys, "--db", db, *command)
        assert code == 3, (command, err)
        line = _one_error_line(err)
        assert "lacks the table(s) exposure_candidate" in line and "restore it from a backup" in line
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pool")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM run")).scalar() == 0


#: What revision 0021 adds (to ``pool``): a schema revision that changes no rows.
COLUMNS_0021 = ["load_serial INTEGER NOT NULL DEFAULT 0", "answers_load INTEGER", "answers_revision VARCHAR(32)",
                "items_load INTEGER", "items_revision VARCHAR(32)"]


def _half_migrated(db: str, columns: list[str]) -> None:
    """A catalog recorded at 0020 that holds ``columns`` of 0021's: what a SQLite migration made before
    migrations were one transaction (its DDL committed, its record not)."""
    migrate.upgrade(db, "0020")
    with get_engine(db).begin() as conn:
        for column in columns:
            conn.execute(sa.text(f"ALTER TABLE pool ADD COLUMN {column}"))


def test_half_migrated_with_the_next_revision_wholly_there_init_records_it_and_goes_on(empty_db, twin_db, capsys,
                                                                                      caplog):
    _half_migrated(empty_db, COLUMNS_0021)
    code, out, err = _run_cli(capsys, "--db", empty_db, "init")
    assert code == 0, err
    assert f"revision {HEAD} (was 0020)" in out
    assert "holds all of revision 0021's changes" in caplog.text
    assert _versions(empty_db) == [HEAD]
    with get_engine(empty_db).connect() as a, get_engine(twin_db).connect() as b:
        assert migrate._shape(a) == migrate._shape(b)  # the catalog a straight upgrade makes
    assert main(["--db", empty_db, "worklist", str(POOLS / "pool_002_image_miri.csv"), "--store"]) == 0


def test_half_migrated_with_part_of_the_next_revision_one_line_exit_3_nothing_changed(empty_db, capsys):
    _half_migrated(empty_db, COLUMNS_0021[:1])
    before = _columns(empty_db, "pool")
    code, _out, err = _run_cli(capsys, "--db", empty_db, "init")
    assert code == 3, err
    line = _one_error_line(err)
    assert "recorded at revision 0020 but its tables are not that revision's (pool.load_serial not expected)" in line
    assert "restore it from a backup" in line
    assert _versions(empty_db) == ["0020"] and _columns(empty_db, "pool") == before
    code, _out, err = _run_cli(capsys, "--db", empty_db, "runs")  # and the commands say it needs init
    assert code == 3 and "run `l2rules init` to upgrade it" in _one_error_line(err)



def test_revision_shapes_tell_schema_revisions_from_those_that_change_rows():
    shapes = migrate.revision_shapes()
    assert list(shapes)[0] == "0001" and list(shapes)[-1] == migrate.head_revision()
    assert shapes["0021"][0]["pool"] - shapes["0020"][0]["pool"] == {"load_serial", "answers_load",
                                                                    "answers_revision", "items_load",
                                                                    "items_revision"}
    assert not shapes["0021"][1] and not shapes["0057"][1] and not shapes["0058"][1]  # schema revisions
    assert shapes["0022"][1] and shapes["0056"][1]  # catalog versions recorded; a rules revision


def test_a_failure_on_a_catalog_with_its_revisions_tables_is_left_as_it_was(empty_db):
    """Not taken for a half-migration (a lock, the server...): init raises the error itself."""
    migrate.upgrade(empty_db, "0020")
    error = sa.exc.OperationalError("ALTER TABLE pool ...", {}, Exception("database is locked"))
    assert migrate._repairable(get_engine(empty_db), error) is None


# --- input: a FITS file's bad value ---------------------------------------------------------------------

def test_a_bad_exp_type_in_a_fits_directory_names_the_file_and_the_keyword(db, tmp_path, capsys):
    from .test_fits import write_fits

    directory = tmp_path / "raw"
    directory.mkdir()
    for i in range(4):
        write_fits(directory / f"a{i}_uncal.fits", {"FILENAME": f"jw1_a{i}_uncal.fits", "EXP_TYPE": "MIR_IMAGE"})
    bad = write_fits(directory / "z_uncal.fits", {"FILENAME": "jw1_z_uncal.fits", "EXP_TYPE": "MIR_" + "X" * 50})
    for command in (["load", str(directory)], ["worklist", str(directory)], ["load", *map(str, directory.iterdir())]):
        code, _out, err = _run_cli(capsys, "--db", db, *command)
        assert code == 2, err
        line = _one_error_line(err)
        assert line.startswith(f"l2rules: error: {bad}: EXP_TYPE: EXP_TYPE longer than 40 characters"), line
        assert f"{directory}:" not in line  # not the directory and the file's position in it
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM exposure")).scalar() == 0


# --- resources: a full disk ---------------------------------------------------------------------------

def _mount_tmpfs(path, size_kb: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small file system here (root needed): {proc.stderr.strip()}")


def _umount(path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def full_db(request, backend, tmp_path, sqlite_template):
    """A migrated catalog whose exposures go to a file system of a few hundred KB: SQLite's file on it, or
    (PostgreSQL, a server on this machine) the exposure table in a tablespace on it."""
    disk = tmp_path / "small"
    if backend == "sqlite":
        _mount_tmpfs(disk, sqlite_template.stat().st_size // 1024 + 512)
        try:
            shutil.copy(sqlite_template, disk / "catalog.db")
            url = f"sqlite:///{disk / 'catalog.db'}"
            yield url
            _dispose(url)
        finally:
            _umount(disk)
        return
    url = request.getfixturevalue("db")
    base = Path(tempfile.mkdtemp(prefix="catalogs_faults_", dir="/tmp"))  # (the server must reach it)
    base.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    disk = base / "small"
    _mount_tmpfs(disk, 512)
    space = f"catalogs_faults_{uuid.uuid4().hex[:8]}"
    admin = request.getfixturevalue("postgres").admin
    try:
        shutil.chown(disk, "postgres", "postgres")
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE TABLESPACE {space} LOCATION '{disk}'"))
    except (LookupError, PermissionError, sa.exc.DBAPIError) as exc:
        _umount(disk)
        pytest.skip(f"no tablespace on a small file system for this server: {exc}")
    try:
        with get_engine(url).begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE exposure SET TABLESPACE {space}"))
        yield url
    finally:
        with get_engine(url).begin() as conn:
            conn.execute(sa.text("ALTER TABLE exposure SET TABLESPACE pg_default"))
        _dispose(url)
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP TABLESPACE {space}"))
        _umount(disk)


def test_a_full_disk_is_exit_3_one_line_and_nothing_written(full_db, backend, tmp_path, capsys):
    pool = str(write_pool(tmp_path / "p.csv", 30000))
    for command in (["load", "--method", "rows", pool], ["load", "--method", "bulk", pool], ["run", pool]):
        proc = cli(full_db, *command)
        assert proc.returncode == 3, (command, proc.stderr)
        line = _one_error_line(proc.stderr)
        assert "the database's disk is full" in line and "rolled back" in line, line
        assert "cannot rollback" not in line
    with get_engine(full_db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM exposure")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM pool")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM work_item")).scalar() == 0
        if backend == "sqlite":
            assert conn.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"


# --- resources: a read-only catalog -------------------------------------------------------------------

READING = [["runs"], ["worklist"], ["worklist", "--published"], ["rules", "list"], ["unmatched"], ["report"]]


@pytest.fixture
def read_only_mount(tmp_path):
    """A small file system to put a catalog on, then made read-only (``mount -o remount,ro``)."""
    disk = tmp_path / "media"
    _mount_tmpfs(disk, 16 << 10)
    made = []

    def remount_ro():
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        made.append(disk)

    yield disk, remount_ro
    _umount(disk)


@pytest.mark.parametrize("wal", [False, True], ids=["checkpointed", "with-wal-and-shm"])
def test_reading_commands_read_a_catalog_on_a_read_only_mount(read_only_mount, sqlite_template, tmp_path, wal):
    disk, remount_ro = read_only_mount
    work = tmp_path / "catalog.db"
    shutil.copy(sqlite_template, work)
    url = f"sqlite:///{work}"
    holder = None
    if wal:  # a reader keeps the WAL from being checkpointed and removed when the run's connections close
        holder = sqlite3.connect(work)
        holder.execute("SELECT count(*) FROM run").fetchone()
    assert cli(url, "run", str(POOLS / "pool_002_image_miri.csv")).returncode == 0
    expected = {tuple(command): cli(url, *command).stdout for command in READING}
    assert "succeeded" in expected[("runs",)] and "jw_00007_uncal.fits" in expected[("worklist",)]
    if holder is None:  # the last connection to close after a checkpoint removes the -wal and -shm files
        last = sqlite3.connect(work)
        last.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        last.close()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{work}{suffix}").exists():
            shutil.copy(f"{work}{suffix}", disk / f"catalog.db{suffix}")
    if holder is not None:
        holder.close()
    # checkpointed: no -shm, and none can be made (opened immutable); else the WAL holds the run (mode=ro)
    assert (disk / "catalog.db-wal").exists() == wal and (disk / "catalog.db-shm").exists() == wal
    on_disk = f"sqlite:///{disk / 'catalog.db'}"
    remount_ro()
    for command in READING:
        proc = cli(on_disk, *command)
        assert proc.returncode == 0, (command, proc.stderr)
        if command != ["report"]:  # (which says how long ago the last run was)
            assert proc.stdout == expected[tuple(command)], command
    assert "succeeded" in proc.stdout  # (the report)
    pool = str(POOLS / "pool_003_image_nircam.csv")
    for command in (["load", pool], ["run", pool]):
        proc = cli(on_disk, *command)
        assert proc.returncode == 3, (command, proc.stderr)
        line = _one_error_line(proc.stderr)
        assert "read-only" in line.lower(), line
    assert sorted(p.name for p in disk.iterdir()) == sorted(f"catalog.db{s}" for s in ("", "-wal", "-shm")
                                                           if wal or not s)


@pytest.mark.postgres
def test_a_read_only_postgresql_database_is_one_line_exit_3(postgres, capsys, tmp_path):
    """A database set read-only (default_transaction_read_only, a hot standby): a write is refused on one
    line (exit 3, nothing written); a read answers. (SQLite's read-only files: the tests above.)"""
    db = postgres.migrated()
    engine = get_engine(db)
    load(db, POOLS / "pool_007_spec_miri.csv")  # (loaded, never evaluated: a read evaluates it)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{engine.url.database}" SET default_transaction_read_only = on'))
    _dispose(db)  # (new sessions take the setting)
    try:
        code, out, err = _run_cli(capsys, "--db", db, "load", str(POOLS / "pool_002_image_miri.csv"))
        assert code == 3, err
        assert "the database is read-only" in _one_error_line(err)
        code, out, err = _run_cli(capsys, "--db", db, "rules", "list", "--format", "csv")
        assert code == 0 and out.count("\n") > 70, err
        code, out, err = _run_cli(capsys, "--db", db, "worklist", "--format", "csv")  # evaluated in temp tables
        assert code == 0 and out.count("\n") > 10, err
        code, out, err = _run_cli(capsys, "--db", db, "worklist", "--store")
        assert code == 3 and "the database is read-only" in _one_error_line(err)
        code, out, err = _run_cli(capsys, "--db", db, "worklist", "--format", "csv", "--columns", "filename")
        science = out.splitlines()[1]
        code, out, err = _run_cli(capsys, "--db", db, "explain", science)  # the pool's stages, evaluated
        assert code == 0 and "selected" in out, err
        code, out, err = _run_cli(capsys, "--db", db, "asn", str(POOLS / "pool_007_spec_miri.csv"), "--output",
                                  str(tmp_path / "asn"))
        assert code == 0 and list((tmp_path / "asn").rglob("*_asn.json")), err
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("SET default_transaction_read_only = off"))
            conn.execute(sa.text(f'ALTER DATABASE "{engine.url.database}" RESET default_transaction_read_only'))
        _dispose(db)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pool")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM level2b_answer")).scalar() == 0  # nothing stored
