"""Running the Alembic migrations from Python and the CLI (``l2rules init``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .config import DB, DatabaseError, describe, get_engine, project_file

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported only where a migration runs: every other command starts faster without it.
log = logging.getLogger(__name__)


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


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(db: DB = None) -> str | None:
    engine = get_engine(db)
    try:
        with engine.connect() as conn:
            # What Alembic's MigrationContext.get_current_revision() reads, without importing Alembic.
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # the driver's own errors vary; one clear line is what users need
        raise DatabaseError(f"cannot reach database {describe(engine)}: {_first_line(exc)}") from None


def upgrade(db: DB = None, revision: str = "head") -> str | None:
    """Create or upgrade the catalog (safe to run twice); returns the revision reached."""
    engine = get_engine(db)
    current_revision(engine)  # fail early, with one line, when the server is unreachable
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        from alembic import command

        command.upgrade(cfg, revision)
    return current_revision(engine)


def downgrade(db: DB = None, revision: str = "-1") -> str | None:
    engine = get_engine(db)
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        from alembic import command

        command.downgrade(cfg, revision)
    return current_revision(engine)


def sqlite_file(engine: Engine) -> Path | None:
    """The file of an SQLite database (absolute), or None for another backend or an in-memory database."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


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
    path = sqlite_file(engine)
    # Connecting would create the file (or, to an empty one, write a header): check first.
    if path is not None and not create and (not path.exists() or path.stat().st_size == 0):
        raise DatabaseError(f"no l2rules catalog at {describe(engine)}: {path} "
                            + ("is an empty file" if path.exists() else "does not exist")
                            + "; create it with `l2rules init` (or `l2rules run --create`)" + _where_hint(engine))
    if current_revision(engine) is None:
        if create and engine.dialect.name == "sqlite" and not sa.inspect(engine).get_table_names():
            log.info("creating the catalog in %s", describe(engine))
            upgrade(engine)
            return engine
        raise DatabaseError(f"database {describe(engine)} has no l2rules catalog; run `l2rules init` first"
                            + _where_hint(engine))
    return engine


def _where_hint(engine: Engine) -> str:
    # A relative SQLite URL names a file in the current directory: the usual mistake of a cron job.
    database = engine.url.database or ""
    return "" if sqlite_file(engine) is None or Path(database).is_absolute() else " (a relative sqlite:/// path is read from the current directory)"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
