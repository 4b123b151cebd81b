"""Association types: the Level2b? column becomes the association a rule produces.

A schema change with a data transform of every processed rule: each YES rule
gains its asn_type (image2, spec2, tso-image2, tso-spec2, nrslamp-spec2,
wfs-image2), a NO rule keeps asn_type NULL (N/A). NRS_LAMP's footnote becomes
its stated conditions on the LAMP, OPMODE and GRATING pool columns
(rule_condition); NRS_VERIFY loses its footnote; NRC_GRISM is marked
deprecated. The downgrade restores the YES/NO view (level2b only).

Effective 2020-12-07; jwst PR #5496 (JP-1699).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

EFFECTIVE_DATE = dt.date(2020, 12, 7)
REFERENCE = "jwst PR #5496 (JP-1699)"
SUMMARY = "Level2b? becomes the association type (asn_type); NRS_LAMP footnote becomes conditions"

ASN_TYPES = "'image2', 'spec2', 'tso-image2', 'tso-spec2', 'nrslamp-spec2', 'wfs-image2'"
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
OPERATORS = "'present', 'equals', 'not_equals', 'in', 'not_in'"

COLUMNS = ("exp_type", "special", "instrument", "exptype", "level2b", "asn_type", "note")
UPSERTED = [
    ('NRC_IMAGE', '', 'NIRCam', 'science', True, 'image2', ''),
    ('NRC_GRISM', '', 'NIRCam', 'science', True, 'spec2', 'deprecated (jwst PR #5496)'),
    ('NRC_WFSS', '', 'NIRCam', 'science', True, 'spec2', ''),
    ('NRC_TACQ', '', 'NIRCam', 'target_acquisition', True, 'image2', ''),
    ('NRC_TACONFIRM', '', 'NIRCam', 'target_acquisition', True, 'image2', ''),
    ('NRC_CORON', '', 'NIRCam', 'science', True, 'image2', ''),
    ('NRC_CORON', 'PSF', 'NIRCam', 'psf', True, 'image2', ''),
    ('NRC_TSIMAGE', '', 'NIRCam', 'science', True, 'tso-image2', ''),
    ('NRC_TSGRISM', '', 'NIRCam', 'science', True, 'tso-spec2', ''),
    ('NRC_FOCUS', '', 'NIRCam', 'science', True, 'image2', "published specials cell reads 'n/a/' (a typo for n/a)"),
    ('MIR_IMAGE', '', 'MIRI', 'science', True, 'image2', ''),
    ('MIR_TACQ', '', 'MIRI', 'target_acquisition', True, 'image2', ''),
    ('MIR_LYOT', '', 'MIRI', 'science', True, 'image2', ''),
    ('MIR_LYOT', 'PSF', 'MIRI', 'psf', True, 'image2', ''),
    ('MIR_4QPM', '', 'MIRI', 'science', True, 'image2', ''),
    ('MIR_4QPM', 'PSF', 'MIRI', 'psf', True, 'image2', ''),
    ('MIR_LRS-FIXEDSLIT', '', 'MIRI', 'science', True, 'spec2', ''),
    ('MIR_LRS-FIXEDSLIT', 'BACKGROUND', 'MIRI', 'background', True, 'spec2', ''),
    ('MIR_LRS-SLITLESS', '', 'MIRI', 'science', True, 'spec2', ''),
    ('MIR_LRS-SLITLESS', 'BACKGROUND', 'MIRI', 'background', True, 'spec2', ''),
    ('MIR_MRS', '', 'MIRI', 'science', True, 'spec2', ''),
    ('MIR_MRS', 'BACKGROUND', 'MIRI', 'background', True, 'spec2', ''),
    ('MIR_CORONCAL', '', 'MIRI', 'science', True, 'image2', ''),
    ('NRS_WATA', '', 'NIRSpec', 'target_acquisition', True, 'image2', ''),
    ('NRS_MSATA', '', 'NIRSpec', 'target_acquisition', True, 'image2', ''),
    ('NRS_TACONFIRM', '', 'NIRSpec', 'target_acquisition', True, 'image2', ''),
    ('NRS_CONFIRM', '', 'NIRSpec', 'science', True, 'image2', ''),
    ('NRS_FIXEDSLIT', '', 'NIRSpec', 'science', True, 'spec2', ''),
    ('NRS_FIXEDSLIT', 'BACKGROUND', 'NIRSpec', 'background', True, 'spec2', ''),
    ('NRS_AUTOWAVE', '', 'NIRSpec', 'nrs_autowave', True, 'image2', ''),
    ('NRS_IFU', '', 'NIRSpec', 'science', True, 'spec2', ''),
    ('NRS_IFU', 'IMPRINT', 'NIRSpec', 'imprint', True, 'spec2', ''),
    ('NRS_IFU', 'BACKGROUND', 'NIRSpec', 'background', True, 'spec2', ''),
    ('NRS_IMAGE', '', 'NIRSpec', 'science', True, 'image2', ''),
    ('NRS_MSASPEC', '', 'NIRSpec', 'science', True, 'spec2', ''),
    ('NRS_MSASPEC', 'IMPRINT', 'NIRSpec', 'imprint', True, 'spec2', ''),
    ('NRS_AUTOFLAT', '', 'NIRSpec', 'nrs_autoflat', True, 'image2', ''),
    ('NRS_FOCUS', '', 'NIRSpec', 'science', True, 'image2', ''),
    ('NRS_LAMP', '', 'NIRSpec', 'science', True, 'nrslamp-spec2', 'footnote 1: an association only when LAMP, OPMODE and GRATING allow it (see rule_condition)'),
    ('NRS_BRIGHTOBJ', '', 'NIRSpec', 'science', True, 'spec2', ''),
    ('NRS_MIMF', '', 'NIRSpec', 'science', True, 'wfs-image2', ''),
    ('NRS_VERIFY', '', 'NIRSpec', 'science', True, 'image2', ''),
    ('NIS_IMAGE', '', 'NIRISS', 'science', True, 'image2', "published association type reads 'images' (a typo for image2)"),
    ('NIS_WFSS', '', 'NIRISS', 'science', True, 'spec2', ''),
    ('NIS_TACQ', '', 'NIRISS', 'target_acquisition', True, 'image2', ''),
    ('NIS_TACONFIRM', '', 'NIRISS', 'target_acquisition', True, 'image2', ''),
    ('NIS_SOSS', '', 'NIRISS', 'science', True, 'spec2', ''),
    ('NIS_AMI', '', 'NIRISS', 'science', True, 'image2', ''),
    ('NIS_AMI', 'PSF', 'NIRISS', 'psf', True, 'image2', ''),
    ('NIS_FOCUS', '', 'NIRISS', 'science', True, 'image2', ''),
    ('FGS_IMAGE', '', 'FGS', 'science', True, 'image2', ''),
    ('FGS_FOCUS', '', 'FGS', 'science', True, 'image2', ''),
]
REMOVED: list[tuple[str, str]] = []

# (exp_type, special, pool_column, operator, value, note); values compare case-insensitively.
CONDITIONS = [
    ("NRS_LAMP", "", "lamp", "present", None, "the rule wants LAMP present"),
    ("NRS_LAMP", "", "lamp", "not_equals", "NOLAMP", "LAMP not NOLAMP"),
    ("NRS_LAMP", "", "opmode", "present", None, "the rule wants OPMODE present"),
    ("NRS_LAMP", "", "opmode", "not_equals", "GRATING-ONLY", "no grating-only mode"),
    ("NRS_LAMP", "", "grating", "not_equals", "MIRROR", "no mirror-only mode"),
]

catalog_version = sa.table(
    "catalog_version", sa.column("revision"), sa.column("seq"), sa.column("effective_date"),
    sa.column("reference"), sa.column("summary"),
)
rule = sa.table("rule", *(sa.column(c) for c in COLUMNS))
rule_history = sa.table("rule_history", *(sa.column(c) for c in COLUMNS), sa.column("valid_from"),
                        sa.column("valid_to"))
rule_condition = sa.table(
    "rule_condition", sa.column("exp_type"), sa.column("special"), sa.column("pool_column"),
    sa.column("operator"), sa.column("value"), sa.column("note"), sa.column("valid_from"),
    sa.column("valid_to"),
)


def _key(table, key):
    return sa.and_(table.c.exp_type == key[0], table.c.special == key[1])


def _put(bind, row):
    """Update the rule in place (ids stay stable) or insert it."""
    key = (row["exp_type"], row["special"])
    if bind.execute(rule.update().where(_key(rule, key)).values(**row)).rowcount == 0:
        bind.execute(rule.insert().values(**row))


def upgrade() -> None:
    # Schema: asn_type on the rules and their history; conditions on pool columns.
    with op.batch_alter_table("rule_history") as batch:
        batch.add_column(sa.Column("asn_type", sa.String(32), nullable=True))
        batch.create_check_constraint("ck_rule_history_asn_type", f"asn_type IS NULL OR asn_type IN ({ASN_TYPES})")
    with op.batch_alter_table("rule") as batch:
        batch.add_column(sa.Column("asn_type", sa.String(32), nullable=True))
        batch.create_check_constraint("ck_rule_asn_type", f"asn_type IS NULL OR asn_type IN ({ASN_TYPES})")
    op.create_table(
        "rule_condition",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("exp_type", sa.String(40), nullable=False),
        sa.Column("special", sa.String(16), nullable=False, server_default=""),
        sa.Column("pool_column", sa.String(40), nullable=False),
        sa.Column("operator", sa.String(16), nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("valid_from", sa.String(32), nullable=False),
        sa.Column("valid_to", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rule_condition"),
        sa.ForeignKeyConstraint(["valid_from"], ["catalog_version.revision"],
                                name="fk_rule_condition_valid_from_catalog_version"),
        sa.ForeignKeyConstraint(["valid_to"], ["catalog_version.revision"],
                                name="fk_rule_condition_valid_to_catalog_version"),
        sa.CheckConstraint(f"operator IN ({OPERATORS})", name="ck_rule_condition_operator"),
        sa.CheckConstraint("pool_column IN ({})".format(", ".join(repr(c) for c in POOL_COLUMNS)),
                           name="ck_rule_condition_pool_column"),
    )
    op.create_index("ix_rule_condition_exp_type_special", "rule_condition", ["exp_type", "special"])

    # Data: every processed rule's new state.
    bind = op.get_bind()
    seq = bind.execute(sa.select(sa.func.coalesce(sa.func.max(catalog_version.c.seq), 0))).scalar_one()
    bind.execute(catalog_version.insert().values(
        revision=revision, seq=seq + 1, effective_date=EFFECTIVE_DATE, reference=REFERENCE, summary=SUMMARY))
    rows = [dict(zip(COLUMNS, values)) for values in UPSERTED]
    for key in [(r["exp_type"], r["special"]) for r in rows]:
        bind.execute(rule_history.update().where(_key(rule_history, key), rule_history.c.valid_to.is_(None))
                     .values(valid_to=revision))
    for row in rows:
        _put(bind, row)
        bind.execute(rule_history.insert().values(**row, valid_from=revision, valid_to=None))
    op.bulk_insert(rule_condition, [
        dict(zip(("exp_type", "special", "pool_column", "operator", "value", "note"), c),
             valid_from=revision, valid_to=None)
        for c in CONDITIONS
    ])
    # Only now can every rule satisfy it: processed <=> it produces an association.
    with op.batch_alter_table("rule") as batch:
        batch.create_check_constraint(
            "ck_rule_level2b_asn_type",
            "(level2b AND asn_type IS NOT NULL) OR (NOT level2b AND asn_type IS NULL)")


def downgrade() -> None:
    bind = op.get_bind()
    keys = [(values[0], values[1]) for values in UPSERTED]
    bind.execute(rule_history.delete().where(rule_history.c.valid_from == revision))
    bind.execute(rule_history.update().where(rule_history.c.valid_to == revision).values(valid_to=None))
    with op.batch_alter_table("rule") as batch:
        batch.drop_constraint("ck_rule_level2b_asn_type", type_="check")
    for key in keys:
        before = bind.execute(sa.select(*(rule_history.c[c] for c in COLUMNS))
                              .where(_key(rule_history, key), rule_history.c.valid_to.is_(None))).mappings().one()
        _put(bind, dict(before))
    op.drop_index("ix_rule_condition_exp_type_special", table_name="rule_condition")
    op.drop_table("rule_condition")
    bind.execute(catalog_version.delete().where(catalog_version.c.revision == revision))
    with op.batch_alter_table("rule") as batch:
        batch.drop_constraint("ck_rule_asn_type", type_="check")
        batch.drop_column("asn_type")
    with op.batch_alter_table("rule_history") as batch:
        batch.drop_constraint("ck_rule_history_asn_type", type_="check")
        batch.drop_column("asn_type")
