"""When each catalog version was recorded, beside when it took effect.

Schema revision (no catalog version). A rules revision can now record a change that took
effect before revisions written earlier (a backdated correction: issue 27), so the order
revisions were written in (``seq``) and the order they take effect in (``effective_date``,
then ``seq`` within a day) are two orders. ``recorded`` is the day a revision was written
(its "Create Date"); the revisions before this one get theirs from their files, frozen here.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

#: The Create Date of every data revision before this one (their files say so).
RECORDED = {
    "0002": dt.date(2026, 11, 26), "0004": dt.date(2026, 11, 26), "0005": dt.date(2026, 11, 26),
    "0006": dt.date(2026, 11, 26), "0007": dt.date(2026, 11, 26), "0011": dt.date(2026, 11, 30),
    "0012": dt.date(2026, 11, 30), "0013": dt.date(2026, 11, 30), "0014": dt.date(2026, 11, 30),
    "0015": dt.date(2026, 11, 30), "0016": dt.date(2026, 11, 30), "0017": dt.date(2026, 11, 30),
}

catalog_version = sa.table("catalog_version", sa.column("revision"), sa.column("recorded", sa.Date))


def upgrade() -> None:
    op.add_column("catalog_version", sa.Column("recorded", sa.Date, nullable=True))
    bind = op.get_bind()
    for name, day in RECORDED.items():
        bind.execute(catalog_version.update().where(catalog_version.c.revision == name).values(recorded=day))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN on both (SQLite 3.35+), as 0021: no batch copy of a table others point at
    op.execute("ALTER TABLE catalog_version DROP COLUMN recorded")
