"""The run lock: one run at a time per database, and whether a run holds it now.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import schema
from ..config import DatabaseError, L2RulesError, describe
from .records import _iso

#: The PostgreSQL advisory lock key of the run lock ("l2r-runs" as a big-endian int64).
LOCK_KEY = int.from_bytes(b"l2r-runs", "big")
#: Seconds between two tries for the lock while waiting.
POLL = 0.2


class RunInProgress(L2RulesError):
    """Another run holds the run lock of this database."""

    exit_code = 5


class RunLock:
    """One run at a time per database, released by the operating system or the server if the process dies.

    PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a
    connection of its own for the whole run; the server releases it when the
    connection ends, including when the process is killed. SQLite: an exclusive
    ``flock`` on ``<database file>.run-lock`` beside the database, which the
    kernel releases when the process ends. (A SQLite write transaction cannot
    serve: the run's loads write through other connections.) An in-memory SQLite
    database cannot be shared, so it needs no lock.
    """

    def __init__(self, engine: Engine, wait: float = 0.0):
        self.engine, self.wait = engine, max(0.0, float(wait or 0))
        self._conn: sa.Connection | None = None
        self._file = None

    def _try(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            return bool(self._conn.execute(sa.select(sa.func.pg_try_advisory_lock(LOCK_KEY))).scalar())
        path = self.lock_path(self.engine)
        if path is None:
            return True
        import fcntl

        if self._file is None:
            try:
                self._file = open(path, "a+")
            except OSError as exc:
                raise DatabaseError(f"cannot open the run lock {path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    @staticmethod
    def lock_path(engine: Engine) -> Path | None:
        if engine.dialect.name != "sqlite":
            return None
        database = engine.url.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return None
        return Path(database).resolve().with_name(Path(database).name + ".run-lock")

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while not self._try():
            if time.monotonic() >= deadline:
                self.release()
                raise RunInProgress(f"another run is in progress on {describe(self.engine)}{_holder(self.engine)}"
                                    + (f" (waited {self.wait:g} s)" if self.wait else ""))
            time.sleep(POLL)

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(sa.select(sa.func.pg_advisory_unlock(LOCK_KEY)))
                self._conn.close()
            except Exception:  # the server ends the session, and the lock with it
                self._conn.invalidate()
            self._conn = None
        if self._file is not None:
            self._file.close()  # closing the file releases the flock
            self._file = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(engine: Engine) -> str:
    """Who holds the lock, as far as the run record tells."""
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(schema.run).where(schema.run.c.status == "running")
                               .order_by(schema.run.c.id.desc()).limit(1)).mappings().first()
    except sa.exc.SQLAlchemyError:
        return ""
    if row is None:
        return ""
    return f": run {row['id']} started {_iso(row['started_at'])} by pid {row['pid']} on {row['host']}"


def lock_held(engine: Engine) -> bool:
    """Whether a run holds the run lock now, found without writing anything.

    PostgreSQL: the server's lock table (``pg_locks``) is read; no lock is taken.
    SQLite: a shared ``flock`` on the lock file is tried and let go at once (a file
    that does not exist was never locked). A run starting in that instant finds the
    lock taken and exits 5, as it would behind any run; the next one proceeds.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1)"),
                {"hi": LOCK_KEY >> 32, "lo": LOCK_KEY & 0xFFFFFFFF}).scalar())
    path = RunLock.lock_path(engine)
    if path is None or not path.exists():
        return False
    import fcntl

    try:
        handle = open(path)
    except OSError as exc:
        raise DatabaseError(f"cannot read the run lock {path}: {exc.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def dead_runs(engine: Engine, running: Iterable[int]) -> set[int]:
    """Of the runs recorded ``running`` (their ids), those whose process is gone: every one but the
    newest, and the newest too unless a run holds the lock now (:func:`lock_held`).

    What ``l2rules runs`` and ``l2rules report`` show as ``dead``; the record itself is changed by the
    next run, or by ``recover``.
    """
    dead = set(running)
    if dead and lock_held(engine):
        dead.discard(max(dead))
    return dead
