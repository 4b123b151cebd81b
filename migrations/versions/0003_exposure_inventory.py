"""Exposure inventories: pools, exposures (every pool column kept), candidates, rejected rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copy of the pool columns stored as columns of their own at this revision.
POOL_COLUMNS = (
    "filename", "obs_id", "program", "obs_num", "visit", "visit_id", "visitgrp", "visitype",
    "wfsvisit", "seq_id", "act_id", "exposure", "exp_type", "nexposur", "expcount", "instrume",
    "detector", "channel", "targetid", "targprop", "targname", "targtype", "template", "pntgtype",
    "pntg_seq", "targordn", "expspcin", "dithptin", "mostilno", "module", "filter", "pupil",
    "ditherid", "patttype", "pattstrt", "numdthpt", "pattsize", "subpxpns", "subpxpts", "patt_num",
    "subpxnum", "subpixel", "apername", "sdp_ver", "subarray", "grating", "fxd_slit", "band",
    "asn_candidate", "bkgdtarg", "is_imprt", "is_psf", "tsovisit", "exposerr", "msametfl",
    "msastate", "opmode", "lamp", "gwa_xtil", "gwa_ytil", "dms_note",
)
FLAG_COLUMNS = ("is_psf", "bkgdtarg", "is_imprt", "tsovisit")
TYPED = {"filename", "exp_type", *FLAG_COLUMNS}


def upgrade() -> None:
    op.create_table(
        "pool",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("n_exposures", sa.Integer, nullable=False),
        sa.Column("columns", sa.Text, nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pool"),
        sa.UniqueConstraint("name", name="uq_pool_name"),
    )
    op.create_table(
        "exposure",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("stem", sa.String(255), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("pool_id", sa.Integer, nullable=False),
        sa.Column("source_line", sa.Integer, nullable=False),
        sa.Column("exp_type", sa.String(40), nullable=False),
        *(sa.Column(flag, sa.Boolean(create_constraint=False), nullable=True) for flag in FLAG_COLUMNS),
        *(sa.Column(name, sa.Text, nullable=True) for name in POOL_COLUMNS if name not in TYPED),
        sa.Column("extra", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exposure"),
        sa.UniqueConstraint("stem", name="uq_exposure_stem"),
        sa.ForeignKeyConstraint(["pool_id"], ["pool.id"], name="fk_exposure_pool_id_pool"),
    )
    op.create_index("ix_exposure_pool_id", "exposure", ["pool_id"])
    op.create_index("ix_exposure_exp_type", "exposure", ["exp_type"])
    op.create_index("ix_exposure_program", "exposure", ["program"])
    op.create_table(
        "exposure_candidate",
        sa.Column("exposure_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("cand_id", sa.String(40), nullable=False),
        sa.Column("cand_type", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("exposure_id", "position", name="pk_exposure_candidate"),
        sa.ForeignKeyConstraint(["exposure_id"], ["exposure.id"], ondelete="CASCADE",
                                name="fk_exposure_candidate_exposure_id_exposure"),
    )
    op.create_index("ix_exposure_candidate_cand_id", "exposure_candidate", ["cand_id"])
    op.create_table(
        "load_rejection",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("line", sa.Integer, nullable=True),
        sa.Column("column", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", sa.Text, nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_load_rejection"),
    )


def downgrade() -> None:
    _refuse_to_drop_data(("pool", "exposure", "exposure_candidate", "load_rejection"))
    op.drop_table("load_rejection")
    op.drop_index("ix_exposure_candidate_cand_id", table_name="exposure_candidate")
    op.drop_table("exposure_candidate")
    op.drop_index("ix_exposure_program", table_name="exposure")
    op.drop_index("ix_exposure_exp_type", table_name="exposure")
    op.drop_index("ix_exposure_pool_id", table_name="exposure")
    op.drop_table("exposure")
    op.drop_table("pool")


def _refuse_to_drop_data(tables: tuple[str, ...]) -> None:
    """Refuse (one line, nothing changed) to drop tables holding rows, unless -x drop_data=yes.

    A copy in each revision that drops data: revisions do not import one another.
    """
    from alembic import context
    from alembic.util import CommandError

    if context.is_offline_mode() or context.get_x_argument(as_dictionary=True).get("drop_data") == "yes":
        return  # (offline, the SQL is only written out: its reader runs it, or not)
    conn = op.get_bind()
    counts = {t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one() for t in tables}
    held = ", ".join(f"{t} ({n} rows)" for t, n in counts.items() if n)
    if held:
        raise CommandError(f"downgrading below {revision} would drop {held}; nothing was changed; "
                           "to drop them, pass -x drop_data=yes to alembic "
                           "(drop_data=True to l2rules.migrate.downgrade)")
