"""Running the Alembic migrations from Python and the CLI (``l2rules init``, ``l2rules db ...``).

The migrations are the packaged ones (:func:`alembic_config`: a checkout's, or the wheel's
``l2rules/_migrations``), so a wheel install needs no ``alembic.ini``: ``l2rules db upgrade``
is ``alembic upgrade head``, ``db downgrade``, ``db current`` and ``db history`` are Alembic's
commands of those names, on the database ``--db`` names.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import schema
from .config import (
    DB,
    DatabaseError,
    L2RulesError,
    StatementCancelled,
    describe,
    get_engine,
    is_cancelled,
    project_file,
)

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported only where a migration runs: every other command starts faster without it.
log = logging.getLogger(__name__)

#: The PostgreSQL advisory lock key that serializes migrations ("l2r-migr" as a big-endian int64).
MIGRATION_LOCK_KEY = int.from_bytes(b"l2r-migr", "big")


class MigrationError(L2RulesError):
    """Alembic refused: a revision it cannot find or reach, a downgrade that would drop data (bad input, exit 2)."""

    exit_code = 2


@contextmanager
def migration_connection(engine: Engine) -> Iterator[sa.Connection]:
    """A connection whose one transaction covers a whole migration, and holds the migration lock.

    A migration killed half-way must leave the catalog as it was, and two processes
    migrating at once must not both create the tables. PostgreSQL's DDL is
    transactional; a transaction-level advisory lock makes the second migrator wait
    for the first to commit, then find nothing to do. On SQLite, pysqlite's legacy
    transaction handling emits BEGIN only before DML, so CREATE TABLE ran outside any
    transaction: a kill left tables without a revision, and every later ``init`` failed
    with "table ... already exists". As SQLAlchemy's documentation prescribes for
    pysqlite ("Serializable isolation / Savepoints / Transactional DDL"), the driver's
    own BEGIN handling is turned off and the transaction begun explicitly - with
    ``BEGIN IMMEDIATE``, whose write lock is also the migration lock (a second
    migrator waits there, up to the busy timeout, and then sees the committed catalog).
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            driver = conn.connection.driver_connection
            assert driver is not None  # (a connection just checked out of the pool)
            legacy = driver.isolation_level
            driver.isolation_level = None  # no implicit BEGIN (nor COMMIT) from pysqlite
            try:
                with conn.begin():  # the driver's begin is a no-op; commit/rollback end the BEGIN below
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    yield conn
            finally:
                driver.isolation_level = legacy
        else:
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
                yield conn


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic Config for the project's migrations, bound to ``engine`` when given."""
    from alembic.config import Config

    migrations = project_file("migrations")
    ini = migrations.parent / "alembic.ini"
    cfg = Config(str(ini)) if ini.is_file() else Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes["configure_logger"] = False
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def hold_after(revision: str) -> None:
    """For crash tests and drills: with ``L2RULES_MIGRATE_HOLD=<revision>``, stop after that step.

    Called by ``migrations/env.py`` after each revision is applied, inside the migration's
    transaction (like ``L2RULES_RUN_HOLD`` for runs): creates ``L2RULES_MIGRATE_HOLD_FILE``
    when set, then waits ``L2RULES_MIGRATE_HOLD_SECONDS`` (60), or until that file is
    removed, so a test kills the migration, or lets it go on, at a known point.
    """
    if os.environ.get("L2RULES_MIGRATE_HOLD") != revision:
        return
    marker = os.environ.get("L2RULES_MIGRATE_HOLD_FILE")
    if marker:
        Path(marker).write_text(f"{revision} {os.getpid()}\n")
    print(f"l2rules: holding after revision {revision!r} (L2RULES_MIGRATE_HOLD)", file=sys.stderr, flush=True)
    deadline = time.monotonic() + float(os.environ.get("L2RULES_MIGRATE_HOLD_SECONDS", "60"))
    while time.monotonic() < deadline and (marker is None or Path(marker).exists()):
        time.sleep(0.05)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # (the project's own migrations have one head)
    return head


class BrokenCatalog(DatabaseError):
    """The catalog's record of its revision and its tables disagree (exit 3): changed by hand, or half-migrated.
    Nothing was changed; the message says what is wrong and what to do."""


def current_revision(db: DB = None) -> str | None:
    """The catalog's revision (None: no catalog), or :class:`BrokenCatalog` when ``alembic_version``
    cannot be believed: more than one row, or none while the catalog's tables are there."""
    engine = get_engine(db)
    try:
        with engine.connect() as conn:
            # What Alembic's MigrationContext.get_current_revision() reads, without importing Alembic.
            inspector = sa.inspect(conn)
            if inspector.has_table("alembic_version"):
                recorded = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
            else:
                recorded = []
            if len(recorded) == 1:
                return recorded[0]
            # (none recorded: an empty database, a downgrade to base - or tables some migration left)
            tables = set(inspector.get_table_names()) & set(schema.metadata.tables) if not recorded else set()
    except Exception as exc:  # the driver's own errors vary; one clear line is what users need
        if is_cancelled(exc):
            raise StatementCancelled(f"cancelled by the database {describe(engine)}: {_first_line(exc)}") from None
        raise DatabaseError(f"cannot reach database {describe(engine)}: {_first_line(exc)}") from None
    if len(recorded) > 1:
        raise BrokenCatalog(f"the catalog at {describe(engine)} records {len(recorded)} revisions in alembic_version "
                            f"({', '.join(sorted(recorded))}), where a catalog has one: nothing was changed; delete "
                            "the row(s) of the revisions its tables are not at (`l2rules db history` lists them), "
                            "or restore it from a backup")
    if tables:
        names = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
        raise BrokenCatalog(f"database {describe(engine)} holds {len(tables)} l2rules tables ({names}) but "
                            "alembic_version records no revision (a migration that never committed, or a copy "
                            "without it): nothing was changed; restore it from a backup, or drop those tables (or "
                            "the SQLite file) and run `l2rules init`")
    return None


def upgrade(db: DB = None, revision: str = "head") -> str | None:
    """Create or upgrade the catalog (safe to run twice); returns the revision reached."""
    return init(db, revision)[1]


def init(db: DB = None, revision: str = "head") -> tuple[str | None, str | None]:
    """:func:`upgrade`, returning (the revision found, the revision reached).

    The first is read holding the migration lock: of processes migrating a new
    catalog at once, only the one that created it finds it empty.
    """
    engine = get_engine(db)
    # fail early, with one line, when the server is unreachable or the record broken
    current = current_revision(engine)
    if current is not None:
        # at the head already but a table gone: "at the head" would be a false all-clear (the fault suite)
        _require_tables(engine, current)
    try:
        before = _upgrade(engine, revision)
    except sa.exc.DBAPIError as exc:  # a migration's statement failed, and the whole upgrade was rolled back
        if is_cancelled(exc):
            raise
        stamp = _repairable(engine, exc)
        if stamp is None:  # not a half-migration: the error as it was
            raise
        log.warning("the catalog at %s is recorded at revision %s but holds all of revision %s's changes (a "
                    "migration that committed its tables and not its record): recorded at %s, then upgraded",
                    describe(engine), current_revision(engine), stamp, stamp)
        before = _upgrade(engine, revision, stamp=stamp)
    return before, current_revision(engine)


def _upgrade(engine: Engine, revision: str, *, stamp: str | None = None) -> str | None:
    """One upgrade in one transaction holding the migration lock (recording ``stamp`` first, when given, as
    the revision the catalog is at); returns the revision found."""
    with migration_connection(engine) as conn:
        before = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() \
            if sa.inspect(conn).has_table("alembic_version") else None
        head = _head_from_files()
        if before and head and before.isdigit() and head.isdigit() and int(before) > int(head):
            raise DatabaseError(f"the catalog at {describe(engine)} is at revision {before}, newer than this "
                                f"l2rules knows (its head is {head}): nothing was changed")
        if stamp is not None:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :stamp"), {"stamp": stamp})
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        from alembic import command
        from alembic.util import CommandError

        try:
            command.upgrade(cfg, revision)
        except CommandError as exc:  # an unknown revision, or one below the catalog's
            raise MigrationError(f"upgrade to {revision}: {exc}") from None
    return before


#: What :func:`_shape` holds: each table and view, with the names of its columns.
Shape = dict[str, frozenset[str]]


def _shape(conn: sa.Connection) -> Shape:
    inspector = sa.inspect(conn)
    names = [*inspector.get_table_names(), *inspector.get_view_names()]
    return {name: frozenset(column["name"] for column in inspector.get_columns(name)) for name in names
            if name != "alembic_version" and not name.startswith("_alembic_tmp")}


def revision_shapes() -> dict[str, tuple[Shape, bool]]:
    """For each revision, oldest first: the tables and views it leaves (their columns), and whether its step
    writes rows (a data change) - found by migrating a scratch in-memory SQLite catalog step by step."""
    from alembic import command
    from sqlalchemy.pool import StaticPool

    scratch = sa.create_engine("sqlite://", poolclass=StaticPool)
    statements: list[str] = []
    sa.event.listen(scratch, "before_cursor_execute", lambda c, cur, statement, *_: statements.append(statement))
    shapes: dict[str, tuple[Shape, bool]] = {}

    def after_step(revision: str, conn: sa.Connection) -> None:
        writes = any(_writes_rows(statement) for statement in statements)
        shapes[revision] = (_shape(conn), writes)
        statements.clear()

    try:
        with migration_connection(scratch) as conn:
            cfg = alembic_config(scratch)
            cfg.attributes.update(connection=conn, after_step=after_step)
            command.upgrade(cfg, "head")
    finally:
        scratch.dispose()
    return shapes


def _writes_rows(statement: str) -> bool:
    # (not Alembic's record of the revision, nor the copy of a table SQLite's batch mode rebuilds)
    text = statement.lstrip().upper()
    return text.startswith(("INSERT", "UPDATE", "DELETE", "WITH")) and "ALEMBIC_VERSION" not in text \
        and "_ALEMBIC_TMP_" not in text


def _repairable(engine: Engine, exc: sa.exc.DBAPIError) -> str | None:
    """The revision to record when the upgrade failed because the next revision's changes are already there;
    :class:`BrokenCatalog` saying what the tables are when they are not the recorded revision's; None when
    they are (the failure is something else: a lock, the server...).

    Certain only when the catalog's tables and views (with their columns) are exactly those of the revision
    after the one recorded, differ from the recorded one's, and that revision changes no rows: then all of it
    is there (a SQLite migration before issue 19's fix committed its DDL and lost its record), and recording it
    loses nothing. A revision that also changes rows is never taken as done: its rows may not be.
    """
    before = current_revision(engine)
    if before is None:
        return None
    with engine.connect() as conn:
        have = _shape(conn)
    shapes = revision_shapes()
    order = list(shapes)
    if before not in shapes or have == shapes[before][0]:
        return None
    nxt = order[order.index(before) + 1] if order.index(before) + 1 < len(order) else None
    if nxt is not None and have == shapes[nxt][0] and not shapes[nxt][1]:
        return nxt
    advice = "restore it from a backup"
    if nxt is not None and have == shapes[nxt][0]:
        advice = (f"it holds revision {nxt}'s schema changes, but {nxt} also changes rows, which may not be there: "
                  + advice)
    raise BrokenCatalog(f"`l2rules init` failed ({_first_line(exc)}) and changed nothing: the catalog at "
                        f"{describe(engine)} is recorded at revision {before} but its tables are not that "
                        f"revision's ({_difference(have, shapes[before][0])}): changed by hand or half-migrated; "
                        f"{advice}")


def _difference(have: Shape, expected: Shape) -> str:
    parts = [f"table {name} missing" for name in sorted(set(expected) - set(have))]
    parts += [f"{name} not expected" for name in sorted(set(have) - set(expected))]
    for name in sorted(set(have) & set(expected)):
        parts += [f"{name}.{column} not expected" for column in sorted(have[name] - expected[name])]
        parts += [f"{name}.{column} missing" for column in sorted(expected[name] - have[name])]
    return ", ".join(parts[:4]) + (f" and {len(parts) - 4} more" if len(parts) > 4 else "")


def downgrade(db: DB = None, revision: str = "-1", *, drop_data: bool = False) -> str | None:
    """Downgrade to ``revision``, in one transaction.

    The downgrades of 0008 and 0003 drop the runs, work items, pools and exposures;
    when those tables hold rows they refuse (nothing changes) unless ``drop_data``
    (``l2rules db downgrade REV --drop-data``, ``alembic -x drop_data=yes downgrade ...``).
    A SQLite file that does not exist is a :class:`DatabaseError` (exit 3), not created.
    """
    engine = get_engine(db)
    _require_file(engine)  # (nothing to downgrade, and no file to create)
    from alembic import command
    from alembic.util import CommandError

    try:
        with migration_connection(engine) as conn:
            cfg = alembic_config(engine)
            cfg.attributes["connection"] = conn
            # What the revisions read, as they read `alembic -x drop_data=yes`.
            cfg.cmd_opts = argparse.Namespace(x=["drop_data=yes"] if drop_data else [])
            command.downgrade(cfg, revision)
    except CommandError as exc:
        raise MigrationError(str(exc)) from None
    return current_revision(engine)


def current(db: DB = None, *, stream: TextIO | None = None) -> str:
    """Alembic's ``current``: the catalog's revision, also printed on ``stream`` (standard output) as Alembic
    prints it (``0059 (head)``). A database without a catalog is a :class:`DatabaseError` (exit 3); a SQLite
    file that does not exist is not created."""
    engine = get_engine(db)
    _require_file(engine)
    revision = current_revision(engine)
    if revision is None:
        raise DatabaseError(f"database {describe(engine)} has no l2rules catalog; create it with `l2rules db "
                            "upgrade` (or `l2rules init`)" + _where_hint(engine))
    head = _head_from_files()
    if head and revision.isdigit() and head.isdigit() and int(revision) > int(head):
        raise DatabaseError(f"the catalog at {describe(engine)} is at revision {revision}, newer than this "
                            f"l2rules knows (its head is {head})")
    from alembic import command
    from alembic.util import CommandError

    with engine.connect() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        cfg.stdout = sys.stdout if stream is None else stream
        try:
            command.current(cfg)
        except CommandError as exc:
            raise MigrationError(str(exc)) from None
    return revision


def revisions(*, stream: TextIO | None = None) -> list[str]:
    """Alembic's ``history``: the revisions, newest first, printed on ``stream`` (standard output) as Alembic
    prints them (``0058 -> 0059 (head), One condition language: ...``); returns their ids. Reads no database."""
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = alembic_config()
    cfg.stdout = sys.stdout if stream is None else stream
    command.history(cfg)
    return [script.revision for script in ScriptDirectory.from_config(cfg).walk_revisions()]


def sqlite_file(engine: Engine) -> Path | None:
    """The file of an SQLite database (absolute), or None for another backend or an in-memory database."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


#: The tables whose rows are a user's work: a file holding any of them is never removed.
_WORK_TABLES = ("pool", "load_rejection", "run")


def remove_if_unused(path: Path) -> bool:
    """Remove the SQLite file ``path`` (with its -wal, -shm and -journal) when it holds no pool, rejected row
    or run: what a failed first command created and nothing uses. Returns whether it was removed.

    Only while no other connection has it open: leaving WAL mode needs every other connection closed, so a
    process that has the new file open (a concurrent first use) keeps it. One that opens it in the instant
    between that test and the unlink finds its writes refused ("attempt to write a readonly database"):
    loud, not lost. A file kept is left in WAL mode, as it was.
    """
    import sqlite3

    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            if conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0].lower() != "delete":
                return False  # another connection is open: not ours alone
            conn.execute("BEGIN EXCLUSIVE")
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if any(conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() for table in _WORK_TABLES
                   if table in tables):
                conn.execute("ROLLBACK")
                conn.execute("PRAGMA journal_mode=WAL")
                return False
            for suffix in ("", "-wal", "-shm", "-journal"):  # unlinked under the exclusive lock
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        finally:
            conn.close()
    except sqlite3.Error:  # not a database we can read, or busy: leave it as it is
        return False
    log.info("removed %s: the failed command created it and it holds no pool, rejection or run", path)
    return True


def require_migrated(db: DB = None, *, create: bool = False) -> Engine:
    """The engine for ``db``, or a one-line :class:`DatabaseError` (exit 3) when it holds no catalog.

    Only with ``create`` is an embedded SQLite database that does not exist yet (or
    is an empty file) created and migrated: the commands that load pools do it
    (``load``, ``worklist POOL``, ``asn``), and ``run --create``. Read commands and
    ``run`` never create one: a cron job started in the wrong directory must not make
    a new catalog and issue every work item again. A server database is only ever
    migrated by ``l2rules init``.
    """
    engine = get_engine(db)
    if not create:
        _require_file(engine)
    current = current_revision(engine)
    if current is None:
        if create and engine.dialect.name == "sqlite" and not sa.inspect(engine).get_table_names():
            log.info("creating the catalog in %s", describe(engine))
            upgrade(engine)
            return engine
        raise DatabaseError(f"database {describe(engine)} has no l2rules catalog; run `l2rules init` first"
                            + _where_hint(engine))
    _require_head(engine, current)
    _require_tables(engine, current)
    return engine


def _require_tables(engine: Engine, current: str) -> None:
    """A catalog at the head that lacks one of the head's tables (dropped by hand, a partial copy) would fail
    half-way through a command, with the driver's words: one line instead, before any work. Only at the
    revision this l2rules' tables are of (a checkout of older migrations is checked by its own head)."""
    if current != schema.REVISION:
        return
    with engine.connect() as conn:
        missing = sorted(set(schema.metadata.tables) - set(sa.inspect(conn).get_table_names()))
    if missing:
        raise BrokenCatalog(f"the catalog at {describe(engine)} is at revision {current} but lacks the table(s) "
                            f"{', '.join(missing)}: changed outside l2rules; nothing was changed; restore it from a "
                            "backup (or make a new catalog with `l2rules init` and load the pools again)")


def _require_file(engine: Engine) -> None:
    """A one-line :class:`DatabaseError` (exit 3) for an embedded SQLite database that does not exist yet or is
    an empty file: connecting would create the file (or, to an empty one, write a header)."""
    path = sqlite_file(engine)
    if path is not None and (not path.exists() or path.stat().st_size == 0):
        raise DatabaseError(f"no l2rules catalog at {describe(engine)}: {path} "
                            + ("is an empty file" if path.exists() else "does not exist")
                            + "; create it with `l2rules init` (or `l2rules run --create`)" + _where_hint(engine))


def _require_head(engine: Engine, current: str) -> None:
    """Work only on a catalog at this l2rules' head revision (as MLflow checks its schema before work):
    an older one would fail on a missing column half-way, a newer one may mean something else."""
    head = _head_from_files()
    if head is None or current == head:
        return
    if current.isdigit() and head.isdigit() and int(current) > int(head):
        raise DatabaseError(f"the catalog at {describe(engine)} is at revision {current}, newer than this "
                            f"l2rules knows (its head is {head}): use the l2rules that migrated it")
    raise DatabaseError(f"the catalog at {describe(engine)} is at revision {current}; this l2rules needs "
                        f"{head}: run `l2rules init` to upgrade it")


def _head_from_files() -> str | None:
    """The head revision, from the file names (``NNNN_slug.py``, as every revision here is named):
    no Alembic import on the commands' start-up path."""
    versions = project_file("migrations") / "versions"
    numbers = [p.name[:4] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py")]
    return max(numbers) if numbers else None


def _where_hint(engine: Engine) -> str:
    # A relative SQLite URL names a file in the current directory: the usual mistake of a cron job.
    database = engine.url.database or ""
    if sqlite_file(engine) is None or Path(database).is_absolute():
        return ""
    return " (a relative sqlite:/// path is read from the current directory)"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
