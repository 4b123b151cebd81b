"""Alembic environment: the same database URL rule as the l2rules CLI."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from l2rules.config import get_engine
from l2rules.schema import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str | None:
    # Precedence: a connection handed in by l2rules, -x db=URL, sqlalchemy.url, then env/default.
    return context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option("sqlalchemy.url")


def run_migrations_offline() -> None:
    from l2rules.config import database_url

    context.configure(url=database_url(_url()), target_metadata=metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # l2rules.migrate's, already in its transaction, holding the lock
        _run(connection)
        return
    from l2rules.migrate import migration_connection

    # One transaction for the whole upgrade (DDL included, on SQLite too) and the migration lock:
    # a killed `alembic upgrade` leaves the catalog as it was, and concurrent ones wait for each other.
    with migration_connection(get_engine(_url())) as connection:
        _run(connection)


_steps: list[str] = []


def _applied(ctx, step, heads, run_args) -> None:
    """After each step, in the transaction: the drills' hold point (``L2RULES_MIGRATE_HOLD``)."""
    from l2rules.migrate import hold_after

    _steps.append(step.up_revision_id)
    hold_after(step.up_revision_id if step.is_upgrade else (step.down_revision_ids or ("base",))[0])
    after_step = config.attributes.get("after_step")  # l2rules.migrate's look at each revision's schema
    if after_step is not None and step.is_upgrade:
        after_step(step.up_revision_id, ctx.connection)


def _run(connection) -> None:
    # Batch mode lets ALTER TABLE work on SQLite (it recreates the table).
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      on_version_apply=_applied)
    with context.begin_transaction():
        _steps.clear()
        context.run_migrations()
        if _steps:
            # A migration may rewrite many rows: the catalog's statistics are its own job, not
            # autovacuum's (issue 13); in the same transaction, so a failed upgrade changes nothing.
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("ANALYZE")
            else:
                connection.exec_driver_sql("PRAGMA analysis_limit = 1000")
                connection.exec_driver_sql("ANALYZE")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
