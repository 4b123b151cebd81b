"""What each pool's stored answers and work items are of: a run touches only the pools that changed.

Schema revision (no catalog version). A run found the pools to evaluate by comparing every
exposure with its stored answer, and made work items by joining every answer with every
exposure's latest item: both a pass over the whole catalog, whatever the run brought. Each
pool now records the state its answers were computed from and the state its items were
made from, each as (the pool's load, the catalog revision):

- ``load_serial``: every load of the pool adds one (``upsert_pool``, in the load's
  transaction); a number, not ``loaded_at``, so that no two clocks and no two ways of
  writing a timestamp (the bulk path's writer, SQLAlchemy's) are ever compared;
- ``answers_load``, ``answers_revision``: set by ``evaluate`` with the answers, in their
  transaction, to the ``load_serial`` read before computing them and the head revision;
- ``items_load``, ``items_revision``: set by the run that makes the pool's items, in that
  transaction, to the answers' pair.

A pool is to evaluate when its answers' pair is not (its ``load_serial``, the head revision),
and its items are to make when their pair is not the answers'. The markers start empty: the
first run after this upgrade evaluates every pool once. The downgrade drops the columns.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

COLUMNS = (("answers_load", sa.Integer), ("answers_revision", sa.String(32)),
           ("items_load", sa.Integer), ("items_revision", sa.String(32)))


def upgrade() -> None:
    op.add_column("pool", sa.Column("load_serial", sa.Integer, nullable=False, server_default="0"))
    for name, type_ in COLUMNS:
        op.add_column("pool", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name in [name for name, _type in reversed(COLUMNS)] + ["load_serial"]:
        # ALTER TABLE ... DROP COLUMN on both (SQLite 3.35+): a batch copy of ``pool`` would drop the table
        # the exposures' foreign keys point at
        op.execute(f"ALTER TABLE pool DROP COLUMN {name}")
