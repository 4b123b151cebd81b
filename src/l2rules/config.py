"""Configuration and engine: one database URL rule for every entry point.

Precedence: an explicit URL (``--db`` on the CLI, ``db=`` in Python), then the
environment variable ``L2RULES_DATABASE_URL``, then ``sqlite:///l2rules.db`` in
the current directory. ``migrations/env.py`` uses the same function, so
``alembic upgrade head`` from the repo root reaches the same database.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Union

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
ENV_VAR = "L2RULES_DATABASE_URL"
DEFAULT_URL = "sqlite:///l2rules.db"

#: What the public API accepts wherever it needs a database.
DB = Union[str, Engine, None]


class L2RulesError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""

    exit_code = 1


class DatabaseError(L2RulesError):
    """The database URL is wrong, the server is unreachable or the schema is not migrated."""

    exit_code = 3


class MissingExtra(DatabaseError):
    """An optional part of l2rules is not installed: the message names the extra that installs it."""


def require(module: str, extra: str, purpose: str):
    """``module`` imported, or :class:`MissingExtra` naming ``pip install 'l2rules[extra]'`` (exit 3)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{purpose} needs {module.split('.')[0]}, which is not installed: "
                           f"pip install 'l2rules[{extra}]'") from None


class CatalogError(L2RulesError):
    """A question the catalog cannot answer: unknown revision, a date before the first version..."""

    exit_code = 2


class StatementCancelled(L2RulesError):
    """The database answered and stopped a statement (a statement_timeout, a cancel request): not "unreachable"."""

    exit_code = 6


def is_cancelled(exc: BaseException) -> bool:
    """PostgreSQL's query_canceled (SQLSTATE 57014: statement_timeout, pg_cancel_backend), SQLite's interrupt."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) == "57014" or str(orig).strip() == "interrupted"


#: What SQLite says (its message) and PostgreSQL (its SQLSTATE) when the storage refuses a write.
_DISK_FULL = ("database or disk is full", "53100")
_READ_ONLY = ("attempt to write a readonly database", "25006")


def storage_problem(exc: BaseException | str) -> str | None:
    """One line for a write the storage refused (None for any other error): the disk is full (SQLite's
    SQLITE_FULL, PostgreSQL's disk_full 53100), or the database is read-only. The one place that names them:
    ``cli.main`` (exit 3) and the bulk loader's report read it. The statement's transaction is rolled back."""
    orig = exc if isinstance(exc, str) else getattr(exc, "orig", exc)
    text = orig if isinstance(orig, str) else str(orig)
    sqlstate = getattr(orig, "sqlstate", None)
    first = text.strip().splitlines()[0] if text.strip() else ""

    def said(message: str, code: str) -> bool:
        return message in text or sqlstate == code

    if said(*_DISK_FULL):
        return (f"the database's disk is full ({first}): what the command was writing was rolled back; "
                "free some space (or move the catalog) and run it again")
    if said(*_READ_ONLY):
        return (f"the database is read-only ({first}): nothing was written; a reading command can read it, "
                "one that writes needs it writable")
    return None


def database_url(db: str | None = None) -> str:
    """Resolve the database URL: explicit argument, then the environment, then the default."""
    url = db or os.environ.get(ENV_VAR) or DEFAULT_URL
    # A bare postgresql:// URL would pick psycopg2, which we do not depend on.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    cur = dbapi_conn.cursor()
    # Takes effect only in a new, empty file (before WAL): exposure rows are wide (66 columns),
    # and 32 KB pages made a million-row load 1 s faster than the default 4 KB, with scans no slower.
    cur.execute("PRAGMA page_size=32768")
    # WAL lets analysts read while a load writes; foreign keys are off by default in SQLite.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={sqlite_busy_ms()}")
    cur.close()


def sqlite_busy_ms() -> int:
    """How long a SQLite statement waits for another process's write lock before it fails
    (``L2RULES_SQLITE_BUSY_MS``, default 30 s)."""
    try:
        return max(0, int(os.environ.get("L2RULES_SQLITE_BUSY_MS", "30000")))
    except ValueError:
        return 30000


_engines: dict[str, Engine] = {}


def get_engine(db: DB = None) -> Engine:
    """An Engine for ``db`` (an Engine is returned as is); engines are cached per URL."""
    if isinstance(db, Engine):
        return db
    url = database_url(db)
    options = _read_only_sqlite(url)
    key = _engine_key(url, bool(options))
    if key in _engines:
        return _engines[key]
    try:
        engine = sa.create_engine(url, **options)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise DatabaseError(f"bad database URL {mask_url(url)!r}: {mask_url(str(exc))}") from None
    except ImportError as exc:  # a dialect whose driver is not installed (psycopg2, MySQLdb, ...)
        scheme = url.split("://", 1)[0]
        if scheme == "postgresql+psycopg":
            raise MissingExtra(f"{mask_url(url)}: PostgreSQL needs psycopg 3, which is not installed: "
                               "pip install 'l2rules[postgres]'") from None
        raise DatabaseError(f"no driver for {scheme!r} URLs here ({exc.name or exc}): l2rules works with "
                            "sqlite:/// and postgresql:// (psycopg 3) URLs") from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_read_pragmas if read_only(engine) else _sqlite_pragmas)
    if options:
        log.info("%s cannot be written here: opened read-only", describe(engine))
    _engines[key] = engine
    return engine


def _sqlite_file_of(url: str) -> str | None:
    """The file a plain SQLite URL names, as written (relative or not); None for another backend, memory, a
    ``file:`` URI or a URL with options (``uri=true``...: used as given)."""
    if not url.startswith("sqlite") or "?" in url:
        return None
    try:
        database = sa.make_url(url).database
    except sa.exc.ArgumentError:
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _engine_key(url: str, read_only: bool) -> str:
    """What an engine is cached under: the URL, but for a SQLite file its absolute path and whether it is
    opened read-only, as a relative path names a file of the current directory and a file read-only now
    may be writable later (an engine cached for one must not serve the other)."""
    database = _sqlite_file_of(url)
    if database is None:
        return url
    # (a relative URL's engine keeps its relative URL, which its messages show: keyed by the file it names now)
    here = "" if Path(database).is_absolute() else f"#{Path(database).resolve()}"
    return url + here + ("#read-only" if read_only else "")


def _read_only_sqlite(url: str) -> dict:
    """``create_engine``'s arguments for an embedded SQLite catalog this process cannot write: on a read-only
    mount, or a file or directory without write permission, opened read-only (``mode=ro``).

    Opened as usual SQLite fails at once ("unable to open database file"), even to read: a WAL database
    wants its ``-shm`` file, which it cannot create there. Read-only it needs the ``-shm`` to exist, or a
    directory it can be made in; when neither ``-shm`` nor ``-wal`` is there and none can be made, no
    process is writing the catalog (a writer keeps both beside it), so it is opened ``immutable=1`` (SQLite
    then takes no locks and reads the file as it is). A writing command on such a catalog gets "the
    database is read-only" (exit 3). Any other URL: no arguments (:func:`read_only` is False).
    """
    database = _sqlite_file_of(url)
    if database is None:
        return {}
    path = Path(database).resolve()
    directory_writable = os.access(path.parent, os.W_OK)
    if not path.is_file() or (os.access(path, os.W_OK) and directory_writable):
        return {}
    import sqlite3
    from urllib.parse import quote

    wal, shm = (Path(f"{path}-{suffix}") for suffix in ("wal", "shm"))
    immutable = not directory_writable and not shm.exists() and not (wal.exists() and wal.stat().st_size)
    uri = f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")
    return {"creator": lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
            "execution_options": {"l2rules_read_only": True}}


def read_only(engine: Engine) -> bool:
    """Whether ``engine`` opens its SQLite catalog read-only (:func:`_read_only_sqlite`)."""
    return bool(engine.get_execution_options().get("l2rules_read_only"))


def _sqlite_read_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    # A read-only connection sets no page size nor journal mode (it cannot write them).
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={sqlite_busy_ms()}")
    cur.close()


def drop_engine(engine: Engine) -> None:
    """Close ``engine``'s connections and forget it (a scratch database about to be removed)."""
    engine.dispose()
    for url in [url for url, cached in _engines.items() if cached is engine]:
        del _engines[url]


def describe(engine: Engine) -> str:
    """The engine's URL without its password, for messages."""
    return engine.url.render_as_string(hide_password=True)


#: ``user:secret@``, wherever it is: in a URL (``scheme://user:secret@host``) and in what a typo makes of one
#: (``postgresql//user:secret@``, ``postgresql:/user:secret@``, ``user:secret@host`` with no scheme), which
#: SQLAlchemy cannot parse and a message quotes as given. What follows a ``:`` up to the next ``@`` is taken
#: for a password unless it starts with ``//`` (``http://host/p@x`` holds none): masking too much is safe.
_PASSWORD = re.compile(r"(?P<head>[^\s:/@'\"]*:)(?P<secret>(?!//)[^\s@'\"]*)(?=@)")


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it, well formed or not, replaced by ``***``: the one masking
    function for messages and logs (``describe`` does the same for a parsed URL)."""
    return _PASSWORD.sub(lambda m: m.group("head") + "***", text)


def project_file(name: str) -> Path:
    """A directory shipped with the project: ``migrations`` or ``seeds``.

    Like Alembic, a checkout in the current directory wins (so the workflow
    "edit seeds/, `l2rules rules revision`, `alembic upgrade head`" acts on
    the checkout it runs in); otherwise the repo the package was installed
    from (editable install), or the copy packaged in a wheel as ``_<name>``.
    """
    cwd = Path.cwd()
    if (cwd / "alembic.ini").is_file() and (cwd / "migrations" / "versions" / "0001_rules_catalog_schema.py").is_file():
        return cwd / name
    here = Path(__file__).resolve().parent
    packaged = here / f"_{name}"
    if packaged.is_dir():
        return packaged
    return here.parent.parent / name
