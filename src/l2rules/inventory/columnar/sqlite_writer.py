"""The bulk path on SQLite: ADBC's ingest in a writer process of its own (``python -m
l2rules.inventory.columnar``), started and answered by :func:`_load_sqlite`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path

import sqlalchemy as sa

from ... import schema
from ...config import DatabaseError, L2RulesError, sqlite_busy_ms, storage_problem
from ..poolformat import TemplateRow
from ..store import TRUNCATE_WAL_AFTER, DeferredIndexes, LoadResult, progress_bar, truncate_wal, upsert_pool
from .convert import _converted, _Converter, _with_ids
from .read import NotBulk, _ArrowSource, _Source
from .write import REPEATED, _finish, _prefetched

log = logging.getLogger(__name__)

class _Rows:
    """The fetched rows of a statement run through ADBC, read as a SQLAlchemy result."""

    def __init__(self, rows: list):
        self.rows = rows

    def first(self):
        return self.rows[0] if self.rows else None

    def scalar(self):
        return self.rows[0][0] if self.rows else None

    def scalar_one(self):
        (row,) = self.rows
        return row[0]


class _AdbcConnection:
    """Enough of a SQLAlchemy connection to run Core statements through an ADBC cursor.

    Statements are compiled for the engine's dialect with their values inline, so the
    same Core code (the pool row, the rejections, the indexes) serves both paths.
    """

    def __init__(self, cursor, dialect):
        self.cursor, self.dialect = cursor, dialect

    def execute(self, statement) -> _Rows:
        sql = str(statement.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True}))
        self.cursor.execute(sql)
        return _Rows(self.cursor.fetchall() if self.cursor.description else [])


def _write_sqlite(database: str, source: _Source, pool_name: str, bar) -> LoadResult:
    """The SQLite load, through ADBC: run only in a process of its own (see :func:`_load_sqlite`)."""
    import adbc_driver_sqlite.dbapi as adbc
    import numpy as np
    from sqlalchemy.dialects import sqlite

    result = LoadResult(source.name, method="bulk")
    connection = adbc.connect(database, autocommit=True)
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {sqlite_busy_ms()}")
            # WAL's recommended level: a commit is durable once checkpointed, never corrupt;
            # FULL would sync the whole load's WAL at commit (a second per million rows).
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("BEGIN IMMEDIATE")
            conn = _AdbcConnection(cursor, sqlite.dialect())
            try:
                result.pool_id = upsert_pool(conn, pool_name, source.name, source.names)
                deferred = DeferredIndexes.drop(conn, postgres=False)
                # This transaction holds the write lock: the ids after the largest are free.
                first = (conn.execute(sa.select(sa.func.max(schema.exposure.c.id))).scalar() or 0) + 1
                converter = _Converter(source, result.pool_id)
                for exposures, candidates in _prefetched(_converted(source, converter)):
                    ids = np.arange(first, first + exposures.num_rows, dtype=np.int64)
                    first += exposures.num_rows
                    exposures, candidates = _with_ids(exposures, candidates, ids)
                    cursor.adbc_ingest("exposure", exposures, mode="append")
                    if candidates is not None:
                        cursor.adbc_ingest("exposure_candidate", candidates, mode="append")
                    result.rows += exposures.num_rows
                    result.inserted += exposures.num_rows
                    bar.update(exposures.num_rows, source.read)
                bar.phase("indexes")
                _finish(conn, result, source, converter, deferred)
            except adbc.Error as exc:
                _rollback(cursor)
                if storage_problem(exc):  # a full disk: the row loader would meet it too, only later
                    raise
                # Mostly a stem already in the catalog or repeated (the driver reports a UNIQUE
                # failure as an internal error); any other the row loader meets and reports too.
                message = str(exc).splitlines()[0]
                raise NotBulk(REPEATED if "UNIQUE constraint failed: exposure.stem" in message
                              else f"the database refused a batch: {message}") from None
            except BaseException:
                _rollback(cursor)
                raise
            cursor.execute("COMMIT")
        finally:
            cursor.close()
    finally:
        connection.close()
    return result


def _rollback(cursor) -> None:
    """ROLLBACK, if SQLite has not rolled back already: on a full disk (or an I/O error) it ends the
    transaction itself, and ROLLBACK then fails ("cannot rollback - no transaction is active"), which hid
    the error that mattered. Closing the connection rolls back whatever is left."""
    try:
        cursor.execute("ROLLBACK")
    except Exception as exc:  # noqa: BLE001 - the error being handled is the one to report
        log.debug("ROLLBACK after a failed bulk load: %s", exc)


def _load_sqlite(engine: sa.Engine, arguments: list[str], source: str, progress: bool) -> LoadResult:
    """Run the SQLite load in a child process, ``python -m l2rules.inventory.columnar``.

    ADBC's driver carries a SQLite library of its own. Two SQLite libraries in one
    process break each other's file locks (closing one's descriptor drops the other's
    POSIX locks; SQLite's "multiple copies" warning): reads went stale and then failed
    with "disk I/O error" when tried here. Across processes SQLite's locking is sound,
    so the writer gets a process; the load is still one transaction (the child's), and
    a child that dies leaves nothing written.
    """
    import subprocess

    command = [sys.executable, "-m", "l2rules.inventory.columnar", *arguments]
    if progress:
        command.append("--progress")
    # The child dies with this process (see _die_with_parent): its stdin is a pipe nothing is
    # written to, open until the child has answered, and it knows whose child it is.
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, _PARENT_VAR: str(os.getpid())})
    try:
        out = child.stdout.read()  # not communicate(): that would close the child's stdin at once
        child.wait()
    except BaseException:  # interrupted or terminated: the child's transaction goes with it
        child.terminate()
        child.wait()
        raise
    finally:
        child.stdin.close()
        child.stdout.close()
    if child.returncode != 0:
        raise L2RulesError(f"{source}: the bulk loader failed (exit {child.returncode}; its error is above)")
    answer = json.loads(out.strip().splitlines()[-1])
    if "declined" in answer:
        raise NotBulk(answer["declined"])
    if "os_error" in answer:  # (cli.main says it in one line, exit 2, as any file the system refuses)
        raise OSError(*answer["os_error"])
    if "error" in answer:
        if problem := storage_problem(answer["error"]):
            raise DatabaseError(f"{source}: {problem}")
        if "database is locked" in answer["error"]:
            raise DatabaseError(f"{source}: the catalog is locked by another process (it waited the busy "
                                "timeout); nothing was loaded: load again when it is free")
        raise L2RulesError(f"{source}: the bulk loader failed: {answer['error']}")
    template = [TemplateRow(source, line, "EXP_TYPE", TemplateRow.REASON, raw)
                for line, raw in answer["template_rows"]]
    result = LoadResult(source, pool_id=answer["pool_id"], rows=answer["rows"], inserted=answer["inserted"],
                        template_rows=len(template), rejections=template, method="bulk")
    if result.loaded >= TRUNCATE_WAL_AFTER:
        truncate_wal(engine)
    return result


#: Set by :func:`_load_sqlite` in the writer's environment: the pid of the load that started it.
_PARENT_VAR = "L2RULES_BULK_PARENT"
#: The writer's exit code when it ends because its parent is gone (nobody reads it).
_ORPHANED = 70


def _die_with_parent() -> None:
    """The writer must not outlive the load that started it.

    A writer left running after ``kill -9`` of its ``load`` or ``run`` went on and
    committed the whole load, which the killed command never reported. On Linux the
    kernel kills the child when its parent dies (``PR_SET_PDEATHSIG``); if the parent
    died before that was set, ``getppid()`` no longer names it. Everywhere, a thread
    reads stdin, a pipe from the parent that nothing writes to: it ends (EOF) when the
    parent's end closes, which the kernel does when the parent exits, however it exits.
    Only for a writer started by :func:`_load_sqlite`; run by hand, none of this applies.
    """
    parent = os.environ.get(_PARENT_VAR)
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(parent):  # the parent died before the writer started watching
        os._exit(_ORPHANED)

    def watch() -> None:
        # The file descriptor, not sys.stdin: a daemon thread blocked inside a buffered reader
        # holds its lock, and the interpreter aborts at exit when it cannot take that lock.
        while os.read(0, 4096):  # b"" at EOF: the parent's end of the pipe has closed
            pass
        os._exit(_ORPHANED)  # at once: no cleanup that could commit the open transaction

    threading.Thread(target=watch, name="l2rules-bulk-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """The SQLite writer's process: ``python -m l2rules.inventory.columnar load DATABASE FILE POOL [--progress]``,
    or ``load-arrow DATABASE IPC_FILE POOL SOURCE SHA256`` for a DataFrame's text table.

    Prints one JSON line: the pool id and rows written, or why the file was declined.
    """
    args = sys.argv[1:] if argv is None else argv
    _die_with_parent()
    database, path, pool_name = args[1:4]
    try:
        if args[0] == "load-arrow":
            import pyarrow as pa

            # Memory-mapped by pyarrow itself: no Python file object for its threads to call back into.
            table = pa.ipc.open_file(pa.memory_map(path)).read_all()
            source = _ArrowSource(table, args[4], args[5])
        else:
            source = _Source(Path(path))
        bar = progress_bar("--progress" in args, source.name, source.size)
        try:
            result = _write_sqlite(database, source, pool_name, bar)
        finally:
            bar.close()
            source.close()
        answer = {"pool_id": result.pool_id, "rows": result.rows, "inserted": result.inserted,
                  "template_rows": [[e.line, e.raw] for e in result.rejections]}
    except NotBulk as exc:
        answer = {"declined": str(exc)}
    except OSError as exc:  # a file the system refuses (permissions ...): raised again by the parent, as its own
        if exc.filename is None:
            lines = str(exc).strip().splitlines()
            answer = {"error": f"{type(exc).__name__}: {lines[-1] if lines else ''}"}
        else:
            answer = {"os_error": [exc.errno, exc.strerror, os.fspath(exc.filename)]}
    except Exception as exc:  # noqa: BLE001 - said in one line by the parent; the transaction is rolled back
        lines = str(exc).strip().splitlines()
        # (the driver's line that says the disk is full, when one does: not the query it quotes after it)
        said = next((line for line in lines if storage_problem(line)), lines[-1] if lines else "")
        answer = {"error": f"{type(exc).__name__}: {said}"}
    print(json.dumps(answer), flush=True)
    return 0
