"""The pipeline's answers stored at catalog points other than the head

Schema revision (no catalog version). ``level2b_answer`` holds the answers at the
head; a work list asked at another point (``--pipeline 1.16.1``, ``--as-of``) was
evaluated again at every call. ``worklist --store`` now keeps them here, keyed by
the point (its day and the last catalog version of that day it includes), and
``pool_answers_at`` says of which load and under which head catalog revision
(``answers_revision``) they were made,
so a reload or a new catalog version makes them behind. Both are a cache of an
evaluation: the downgrade drops them.

Revision ID: 0058
Revises: 0057
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0058"
down_revision = "0057"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "level2b_answer_at",
        sa.Column("point", sa.String(40), primary_key=True),
        sa.Column("exposure_id", sa.Integer, sa.ForeignKey("exposure.id"), primary_key=True),
        sa.Column("exposure_version", sa.Integer, nullable=False),
        sa.Column("level2b", sa.Boolean, nullable=False),
        sa.Column("exptype", sa.Text, nullable=True),
        sa.Column("asn_type", sa.Text, nullable=True),
        sa.Column("level2b_input", sa.Text, nullable=True),
        sa.Column("association", sa.Text, nullable=True),
        sa.Column("asn_rule", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("table_level2b", sa.Boolean, nullable=False),
        sa.Column("table_asn_type", sa.String(32), nullable=True),
        sa.Column("table_rule", sa.String(60), nullable=True),
        sa.Column("table_reason", sa.Text, nullable=True),
    )
    op.create_table(
        "pool_answers_at",
        sa.Column("pool_id", sa.Integer, sa.ForeignKey("pool.id"), primary_key=True),
        sa.Column("point", sa.String(40), primary_key=True),
        sa.Column("answers_load", sa.Integer, nullable=False),
        sa.Column("answers_revision", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pool_answers_at")
    op.drop_table("level2b_answer_at")
