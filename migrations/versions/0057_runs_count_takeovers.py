"""The run record counts the exposures its loads took over from other pools

Schema revision (no catalog version). A pool holding an exposure another pool
holds (the same FILENAME stem) takes it over when it loads; the load summary
names the pools and counts (``LoadResult.taken_from``), and now the run record
counts them too: ``run.exposures_taken_over``, 0 for the runs before. ``v_runs``
shows it as its last column (``CREATE OR REPLACE VIEW`` on PostgreSQL adds a
column only at the end, and keeps 0019's descriptions), described there. The
downgrade restores 0020's view and drops the column.

Revision ID: 0057
Revises: 0056
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0057"
down_revision = "0056"
branch_labels = None
depends_on = None

#: 0020's v_runs, frozen: this revision's is it with the new column last.
_RUN_COLUMNS = """
SELECT r.id AS run_id, r.status, r.started_at, r.finished_at, r.catalog_revision, r.inputs,
       r.exposures_seen, r.exposures_new, r.exposures_changed, r.exposures_withdrawn, r.items_created,
       r.items_changed, r.items_withdrawn, r.exposures_unmatched,
       r.rows_rejected, r.items_reissued, r.reissued_by, r.output, r.error, r.host, r.pid,
       coalesce(held.items, 0) AS items_held"""
_RUN_FROM = """
FROM run r
LEFT JOIN (SELECT w.run_id, count(*) AS items FROM work_item w GROUP BY w.run_id) held ON held.run_id = r.id
"""
V_RUNS = _RUN_COLUMNS + ",\n       r.exposures_taken_over" + _RUN_FROM
PREVIOUS = _RUN_COLUMNS + _RUN_FROM
DESCRIPTION = "Exposures the run's loads took over from other pools (the same FILENAME stem)."


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.add_column("run", sa.Column("exposures_taken_over", sa.Integer, nullable=False,
                                   server_default=sa.text("0")))
    if _postgresql():
        op.execute(f"CREATE OR REPLACE VIEW v_runs AS {V_RUNS.strip()}")
        op.execute("COMMENT ON COLUMN v_runs.exposures_taken_over IS '" + DESCRIPTION.replace("'", "''") + "'")
    else:
        op.execute("DROP VIEW IF EXISTS v_runs")
        op.execute(f"CREATE VIEW v_runs AS {V_RUNS.strip()}")


def downgrade() -> None:
    # PostgreSQL cannot drop a view's column in place: the view is made anew, then described as 0019 did
    op.execute("DROP VIEW IF EXISTS v_runs")
    op.drop_column("run", "exposures_taken_over")  # (SQLite 3.35+ drops a column in place)
    op.execute(f"CREATE VIEW v_runs AS {PREVIOUS.strip()}")
    if _postgresql():
        _describe_again()


def _describe_again() -> None:
    """0019's descriptions of v_runs and its columns, frozen (a view made anew has none)."""
    view = "The run record of `l2rules run`, one row per run, with how many of its work items remain."
    columns = {
        "run_id": "The run's id.",
        "status": 'running, succeeded or failed, as stored (`l2rules runs` also shows dead).',
        "started_at": 'When the run started (UTC).',
        "finished_at": 'When the run finished (UTC).',
        "catalog_revision": 'The head catalog revision the run made its items at.',
        "inputs": 'The files the run was given (JSON list).',
        "exposures_seen": "Exposures in the run's inputs, skipped unchanged files included.",
        "exposures_new": "Exposures the run's loads added.",
        "exposures_changed": 'Exposures a reload changed (a new exposure version).',
        "exposures_withdrawn": 'Exposures a reload left out.',
        "items_created": 'Work items the run made.',
        "items_changed": 'Of those, items for a new version of an exposure that had one.',
        "items_withdrawn": 'Work items the run withdrew (their exposure left its pool).',
        "exposures_unmatched": 'Exposures whose EXP_TYPE no rule of the published table knows (of the inputs; '
                               'of the whole catalog for a run without inputs).',
        "rows_rejected": 'Pool rows rejected under --skip-bad.',
        "items_reissued": 'Work items of failed runs this run wrote again.',
        "reissued_by": "The run that wrote this failed run's items again.",
        "output": 'The file the run wrote its new items to, if any.',
        "error": 'Why the run failed.',
        "host": 'The host the run ran on.',
        "pid": "The run's process id.",
        "items_held": "This run's work items still in the catalog.",
    }
    op.execute("COMMENT ON VIEW v_runs IS '" + view.replace("'", "''") + "'")
    for column, text in columns.items():
        op.execute(f"COMMENT ON COLUMN v_runs.{column} IS '" + text.replace("'", "''") + "'")
