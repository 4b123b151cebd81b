"""The published Level 2b rules table (jwst issue #1188): the catalog's first version.

The 73 published rows, frozen here; the combined row NRC_GRISM/NRC_WFSS is
stored as two rules because an exposure has one EXP_TYPE. Source quirks are
kept in each rule's note. Editing seeds/ never changes what this revision does.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EFFECTIVE_DATE = dt.date(2017, 8, 1)  # approximate: jwst issue #1188 was opened in mid-2017
REFERENCE = "jwst issue #1188"
SUMMARY = "The published Level 2b rules table: 73 rows, NRC_GRISM/NRC_WFSS stored as two rules"

ROWS = [
    # (exp_type, special, instrument, exptype, level2b, note)
    ('NRC_IMAGE', '', 'NIRCam', 'science', True, ''),
    ('NRC_GRISM', '', 'NIRCam', 'science', True, 'published as one combined row NRC_GRISM/NRC_WFSS; split because an exposure has one EXP_TYPE'),
    ('NRC_WFSS', '', 'NIRCam', 'science', True, 'published as one combined row NRC_GRISM/NRC_WFSS; split because an exposure has one EXP_TYPE'),
    ('NRC_TACQ', '', 'NIRCam', 'target_acquisition', True, ''),
    ('NRC_TACONFIRM', '', 'NIRCam', 'target_acquisition', True, ''),
    ('NRC_CORON', '', 'NIRCam', 'science', True, ''),
    ('NRC_CORON', 'PSF', 'NIRCam', 'psf', True, ''),
    ('NRC_TSIMAGE', '', 'NIRCam', 'science', True, ''),
    ('NRC_TSGRISM', '', 'NIRCam', 'science', True, ''),
    ('NRC_FOCUS', '', 'NIRCam', 'science', True, "published specials cell reads 'n/a/' (a typo for n/a)"),
    ('NRC_DARK', '', 'NIRCam', 'dark', False, ''),
    ('NRC_FLAT', '', 'NIRCam', 'flat', False, ''),
    ('NRC_LED', '', 'NIRCam', 'science', False, ''),
    ('MIR_IMAGE', '', 'MIRI', 'science', True, ''),
    ('MIR_TACQ', '', 'MIRI', 'target_acquisition', True, ''),
    ('MIR_LYOT', '', 'MIRI', 'science', True, ''),
    ('MIR_LYOT', 'PSF', 'MIRI', 'psf', True, ''),
    ('MIR_4QPM', '', 'MIRI', 'science', True, ''),
    ('MIR_4QPM', 'PSF', 'MIRI', 'psf', True, ''),
    ('MIR_LRS-FIXEDSLIT', '', 'MIRI', 'science', True, ''),
    ('MIR_LRS-FIXEDSLIT', 'BACKGROUND', 'MIRI', 'background', True, ''),
    ('MIR_LRS-SLITLESS', '', 'MIRI', 'science', True, ''),
    ('MIR_LRS-SLITLESS', 'BACKGROUND', 'MIRI', 'background', True, ''),
    ('MIR_MRS', '', 'MIRI', 'science', True, ''),
    ('MIR_MRS', 'BACKGROUND', 'MIRI', 'background', True, ''),
    ('MIR_DARKIMG', '', 'MIRI', 'dark', False, ''),
    ('MIR_DARKMRS', '', 'MIRI', 'dark', False, ''),
    ('MIR_FLATIMAGE', '', 'MIRI', 'flat', False, ''),
    ('MIR_FLATIMAGE-EXT', '', 'MIRI', 'flat', False, ''),
    ('MIR_FLATMRS', '', 'MIRI', 'flat', False, ''),
    ('MIR_FLATMRS-EXT', '', 'MIRI', 'flat', False, ''),
    ('MIR_CORONCAL', '', 'MIRI', 'science', True, ''),
    ('NRS_WATA', '', 'NIRSpec', 'target_acquisition', True, ''),
    ('NRS_MSATA', '', 'NIRSpec', 'target_acquisition', True, ''),
    ('NRS_TACONFIRM', '', 'NIRSpec', 'target_acquisition', True, ''),
    ('NRS_CONFIRM', '', 'NIRSpec', 'science', True, ''),
    ('NRS_FIXEDSLIT', '', 'NIRSpec', 'science', True, ''),
    ('NRS_FIXEDSLIT', 'BACKGROUND', 'NIRSpec', 'background', True, ''),
    ('NRS_AUTOWAVE', '', 'NIRSpec', 'nrs_autowave', True, ''),
    ('NRS_IFU', '', 'NIRSpec', 'science', True, ''),
    ('NRS_IFU', 'IMPRINT', 'NIRSpec', 'imprint', True, ''),
    ('NRS_IFU', 'BACKGROUND', 'NIRSpec', 'background', True, ''),
    ('NRS_IMAGE', '', 'NIRSpec', 'science', True, ''),
    ('NRS_MSASPEC', '', 'NIRSpec', 'science', True, ''),
    ('NRS_MSASPEC', 'IMPRINT', 'NIRSpec', 'imprint', True, ''),
    ('NRS_AUTOFLAT', '', 'NIRSpec', 'nrs_autoflat', True, ''),
    ('NRS_FOCUS', '', 'NIRSpec', 'science', True, ''),
    ('NRS_DARK', '', 'NIRSpec', 'dark', False, ''),
    ('NRS_LAMP', '', 'NIRSpec', 'science', True, 'published Level2b? reads YES with footnote 1, whose text the published page lost'),
    ('NRS_BRIGHTOBJ', '', 'NIRSpec', 'science', True, ''),
    ('NRS_MIMF', '', 'NIRSpec', 'science', True, ''),
    ('NRS_VERIFY', '', 'NIRSpec', 'science', True, 'published Level2b? reads YES with footnote 1, whose text the published page lost'),
    ('NIS_IMAGE', '', 'NIRISS', 'science', True, ''),
    ('NIS_WFSS', '', 'NIRISS', 'science', True, ''),
    ('NIS_TACQ', '', 'NIRISS', 'target_acquisition', True, ''),
    ('NIS_TACONFIRM', '', 'NIRISS', 'target_acquisition', True, ''),
    ('NIS_SOSS', '', 'NIRISS', 'science', True, ''),
    ('NIS_AMI', '', 'NIRISS', 'science', True, ''),
    ('NIS_AMI', 'PSF', 'NIRISS', 'psf', True, ''),
    ('NIS_FOCUS', '', 'NIRISS', 'science', True, ''),
    ('NIS_DARK', '', 'NIRISS', 'science', False, 'published as exposure type science (other darks are dark); kept as published'),
    ('NIS_LAMP', '', 'NIRISS', 'science', False, ''),
    ('NIS_EXTCAL', '', 'NIRISS', 'science', False, ''),
    ('FGS_IMAGE', '', 'FGS', 'science', True, ''),
    ('FGS_FOCUS', '', 'FGS', 'science', True, ''),
    ('FGS_SKYFLAT', '', 'FGS', 'flat', False, ''),
    ('FGS_INTFLAT', '', 'FGS', 'flat', False, ''),
    ('FGS_DARK', '', 'FGS', 'dark', False, ''),
    ('FGS_ID-STACK', '', 'FGS', 'tracking', False, ''),
    ('FGS_ID-IMAGE', '', 'FGS', 'tracking', False, ''),
    ('FGS_ACQ1', '', 'FGS', 'tracking', False, ''),
    ('FGS_ACQ2', '', 'FGS', 'tracking', False, ''),
    ('FGS_TRACK', '', 'FGS', 'tracking', False, ''),
    ('FGS_FINEGUIDE', '', 'FGS', 'tracking', False, ''),
]

COLUMNS = ("exp_type", "special", "instrument", "exptype", "level2b", "note")

catalog_version = sa.table(
    "catalog_version", sa.column("revision"), sa.column("seq"), sa.column("effective_date"),
    sa.column("reference"), sa.column("summary"),
)
rule = sa.table("rule", *(sa.column(c) for c in COLUMNS))
rule_history = sa.table("rule_history", *(sa.column(c) for c in COLUMNS), sa.column("valid_from"),
                        sa.column("valid_to"))


def upgrade() -> None:
    op.bulk_insert(catalog_version, [{
        "revision": revision, "seq": 1, "effective_date": EFFECTIVE_DATE,
        "reference": REFERENCE, "summary": SUMMARY,
    }])
    rows = [dict(zip(COLUMNS, row)) for row in ROWS]
    op.bulk_insert(rule, rows)
    op.bulk_insert(rule_history, [{**row, "valid_from": revision, "valid_to": None} for row in rows])


def downgrade() -> None:
    op.execute(rule_history.delete().where(rule_history.c.valid_from == revision))
    op.execute(rule.delete())
    op.execute(catalog_version.delete().where(catalog_version.c.revision == revision))
