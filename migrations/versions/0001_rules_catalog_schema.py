"""Rules catalog schema: catalog versions, the rules in force, and their history.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SPECIALS = "'', 'PSF', 'BACKGROUND', 'IMPRINT'"
EXPTYPES = ("'science', 'psf', 'background', 'imprint', 'target_acquisition', 'dark', 'flat', "
            "'tracking', 'nrs_autoflat', 'nrs_autowave'")
INSTRUMENTS = "'NIRCam', 'MIRI', 'NIRSpec', 'NIRISS', 'FGS'"


def _rule_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("exp_type", sa.String(40), nullable=False),
        sa.Column("special", sa.String(16), nullable=False, server_default=""),
        sa.Column("instrument", sa.String(16), nullable=False),
        sa.Column("exptype", sa.String(32), nullable=False),
        sa.Column("level2b", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
    ]


def _rule_checks(table: str) -> list[sa.CheckConstraint]:
    return [
        sa.CheckConstraint(f"special IN ({SPECIALS})", name=f"ck_{table}_special"),
        sa.CheckConstraint(f"exptype IN ({EXPTYPES})", name=f"ck_{table}_exptype"),
        sa.CheckConstraint(f"instrument IN ({INSTRUMENTS})", name=f"ck_{table}_instrument"),
    ]


def upgrade() -> None:
    op.create_table(
        "catalog_version",
        sa.Column("revision", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("effective_date", sa.Date, nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("revision", name="pk_catalog_version"),
        sa.UniqueConstraint("seq", name="uq_catalog_version_seq"),
    )
    op.create_table(
        "rule",
        *_rule_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_rule"),
        sa.UniqueConstraint("exp_type", "special", name="uq_rule_exp_type_special"),
        *_rule_checks("rule"),
    )
    op.create_table(
        "rule_history",
        *_rule_columns(),
        sa.Column("valid_from", sa.String(32), nullable=False),
        sa.Column("valid_to", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rule_history"),
        sa.ForeignKeyConstraint(["valid_from"], ["catalog_version.revision"],
                                name="fk_rule_history_valid_from_catalog_version"),
        sa.ForeignKeyConstraint(["valid_to"], ["catalog_version.revision"],
                                name="fk_rule_history_valid_to_catalog_version"),
        *_rule_checks("rule_history"),
    )
    op.create_index("ix_rule_history_exp_type_special", "rule_history", ["exp_type", "special"])


def downgrade() -> None:
    op.drop_index("ix_rule_history_exp_type_special", table_name="rule_history")
    op.drop_table("rule_history")
    op.drop_table("rule")
    op.drop_table("catalog_version")
