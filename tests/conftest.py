"""Fixtures: every SQL test runs on SQLite and on PostgreSQL.

PostgreSQL comes from $L2RULES_TEST_POSTGRES_URL (default: the local server at
127.0.0.1:5432, user postgres, database test). Each test gets a database of its
own, cloned from a migrated template. Without a server the PostgreSQL cases
skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from l2rules.config import _engine_key, _engines, database_url
from l2rules.migrate import upgrade

REPO = Path(__file__).resolve().parent.parent
POOLS = REPO / "samples" / "pools"
DATA = Path(__file__).resolve().parent / "data"
ADMIN_URL = os.environ.get("L2RULES_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SAMPLE_POOLS = sorted(p.name for p in POOLS.glob("*.csv"))


def pool_stems(path: Path) -> set[str]:
    """The FILENAME stems of a pool file's rows: what identifies its exposures in a catalog."""
    from l2rules.inventory.poolformat import column_names, exposure_stem, read_file

    table = read_file(path)
    column = column_names(table.header).index("filename")
    return {exposure_stem(fields[column]) for _, fields in table.rows}


class Postgres:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self) -> None:
        self.url = sa.make_url(ADMIN_URL).set(drivername="postgresql+psycopg")
        self.admin = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []
        self.template: str | None = None

    def available(self) -> str | None:
        try:
            with self.admin.connect() as conn:
                conn.execute(sa.text("select 1"))
        except Exception as exc:  # any driver error means "no server"
            return str(exc).splitlines()[0]
        return None

    def create(self, template: str | None = None) -> str:
        name = f"l2rules_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
        self.created.append(name)
        return self.url.set(database=name).render_as_string(hide_password=False)

    def migrated(self) -> str:
        if self.template is None:
            url = self.create()
            upgrade(url)
            _dispose(url)
            self.template = sa.make_url(url).database
        return self.create(self.template)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in reversed(self.created):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


def _dispose(url: str) -> None:
    """Close and forget the cached engines of ``url`` (a SQLite file's, read-only or not)."""
    resolved = database_url(url)
    for key in {url, resolved, _engine_key(resolved, False), _engine_key(resolved, True)}:
        engine = _engines.pop(key, None)
        if engine is not None:
            engine.dispose()


@pytest.fixture(scope="session")
def postgres():
    pg = Postgres()
    problem = pg.available()
    if problem:
        message = f"PostgreSQL not reachable at {ADMIN_URL}: {problem}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield pg
    for url in list(_engines):
        if url.startswith("postgresql"):
            _engines.pop(url).dispose()
    pg.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "catalog.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    _dispose(url)
    return path


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def _migrated(request, backend: str, path: Path, sqlite_template: Path) -> str:
    if backend == "sqlite":
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    return request.getfixturevalue("postgres").migrated()


@pytest.fixture
def db(request, backend, tmp_path, sqlite_template) -> str:
    """The URL of a freshly migrated catalog database on each backend."""
    url = _migrated(request, backend, tmp_path / "catalog.db", sqlite_template)
    yield url
    _dispose(url)


@pytest.fixture
def twin_db(request, backend, tmp_path, sqlite_template) -> str:
    """A second freshly migrated catalog on the same backend as ``db`` (to compare two ways of one thing)."""
    url = _migrated(request, backend, tmp_path / "twin.db", sqlite_template)
    yield url
    _dispose(url)


@pytest.fixture
def empty_db(request, backend, tmp_path) -> str:
    """The URL of an empty database (no catalog yet) on each backend."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        url = request.getfixturevalue("postgres").create()
    yield url
    _dispose(url)


@pytest.fixture
def pool_path():
    def get(name: str) -> Path:
        return POOLS / name

    return get


def as_values(frame):
    """A library frame (typed: Int64, boolean, category, string ...) as Python values, None for missing."""
    return frame.astype(object).where(frame.notna(), None)


def checkout_up_to(tmp_path: Path, monkeypatch, last: str) -> Path:
    """A checkout copy (:func:`checkout_copy`) whose migrations end at revision ``last``: what a catalog
    made before the later revisions holds (its work items at an older catalog revision)."""
    work = checkout_copy(tmp_path, monkeypatch)
    for path in (work / "migrations" / "versions").glob("*.py"):
        if path.name[:4].isdigit() and path.name[:4] > last:
            path.unlink()
    return work


@contextlib.contextmanager
def with_todays_run_columns(db: str):
    """The ``run`` columns of today's schema that an older catalog lacks, added for the block and dropped after
    it: so today's ``run`` can make work items in a catalog at an older revision (tests that need items made
    at an old catalog revision), and the migrations then find the table as that revision left it."""
    from l2rules import schema
    from l2rules.config import get_engine

    engine = get_engine(db)
    with engine.connect() as conn:
        have = {c["name"] for c in sa.inspect(conn).get_columns("run")}
    missing = [c for c in schema.run.c if c.name not in have]
    with engine.begin() as conn:
        for column in missing:
            conn.execute(sa.text(f"ALTER TABLE run ADD COLUMN {column.name} INTEGER NOT NULL DEFAULT 0"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            for column in missing:
                conn.execute(sa.text(f"ALTER TABLE run DROP COLUMN {column.name}"))


def checkout_copy(tmp_path: Path, monkeypatch) -> Path:
    """A copy of the project's migrations, seeds and alembic.ini to edit, made the current directory:
    the library, like the CLI and Alembic, then reads this checkout's migrations (its head)."""
    work = tmp_path / "checkout"
    work.mkdir()
    for name in ("migrations", "seeds"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "alembic.ini", work / "alembic.ini")
    monkeypatch.chdir(work)
    return work


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch):
    """Tables print whole, as when piped, whatever the shell that runs the tests exports (a test that checks
    fitting sets COLUMNS itself)."""
    monkeypatch.delenv("COLUMNS", raising=False)
