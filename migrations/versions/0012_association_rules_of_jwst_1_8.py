"""Association rules of jwst 1.8.0

Effective 2022-10-10; jwst 1.8.0 (2022-10-10): rules_level2b.py as released; later changes in the next revisions.
Data revision: for each table it touches, the rows it adds or changes, frozen
as they are after it, and the keys it removes. Every row state it replaces is
closed (valid_to), so `l2rules rules list --as-of` and `rules history` can
still show it; the published table also keeps its head rows in `rule`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

EFFECTIVE_DATE = dt.date(2022, 10, 10)
REFERENCE = 'jwst 1.8.0 (2022-10-10): rules_level2b.py as released; later changes in the next revisions'
SUMMARY = 'Association rules of jwst 1.8.0'

# table: (columns, key, rows added or changed, keys removed)
TABLES = {
    'asn_rule': (
        ('name', 'asn_type', 'science_set', 'forced_science', 'nod_overlap', 'wfss', 'rate_policy', 'imprint_pruning', 'note', 'position'),
        ('name',),
        [
            ('Asn_Lv2WFSC', 'wfs-image2', 'IMAGE2_SCIENCE', False, None, None, 'default', False, 'imaging in wavefront-sensing visits, except NIRCam LOS-jitter exposures', 21),
        ],
        [
            ('Asn_Lv2SpecImprint',),
            ('Asn_Lv2WFSSMIR',),
            ('Asn_MIRLRSTAConfirm',),
        ],
    ),
    'asn_condition': (
        ('rule_name', 'subject', 'alt', 'seq', 'column_name', 'operator', 'value'),
        ('rule_name', 'subject', 'alt', 'seq'),
        [
        ],
        [
            ('Asn_Lv2SpecImprint', 'science', 0, 1),
            ('Asn_Lv2SpecImprint', 'science', 0, 2),
            ('Asn_Lv2SpecImprint', 'science', 0, 9),
            ('Asn_Lv2SpecImprint', 'science', 1, 1),
            ('Asn_Lv2SpecImprint', 'science', 2, 1),
            ('Asn_Lv2SpecImprint', 'science', 2, 2),
            ('Asn_Lv2SpecImprint', 'science', 2, 3),
            ('Asn_Lv2SpecImprint', 'science', 2, 4),
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 0, 1),
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 0, 2),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 0, 1),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 0, 2),
            ('Asn_Lv2WFSSMIR', 'direct', 0, 1),
            ('Asn_Lv2WFSSMIR', 'direct', 0, 2),
            ('Asn_Lv2WFSSMIR', 'science', 0, 1),
            ('Asn_Lv2WFSSMIR', 'science', 0, 2),
            ('Asn_Lv2WFSSMIR', 'science', 0, 3),
            ('Asn_Lv2WFSSMIR', 'science', 0, 4),
            ('Asn_Lv2WFSSMIR', 'science', 0, 5),
            ('Asn_MIRLRSTAConfirm', 'background', 0, 1),
            ('Asn_MIRLRSTAConfirm', 'background', 0, 8),
            ('Asn_MIRLRSTAConfirm', 'background', 0, 9),
            ('Asn_MIRLRSTAConfirm', 'science', 0, 1),
            ('Asn_MIRLRSTAConfirm', 'science', 0, 2),
            ('Asn_MIRLRSTAConfirm', 'science', 1, 1),
            ('Asn_MIRLRSTAConfirm', 'science', 2, 1),
            ('Asn_MIRLRSTAConfirm', 'ta', 0, 1),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 0, 1),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 0, 2),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_obs', 0, 1),
        ],
    ),
    'asn_companion': (
        ('rule_name', 'kind', 'source', 'role', 'exp_type_set', 'attach'),
        ('rule_name', 'kind'),
        [
        ],
        [
            ('Asn_Lv2WFSSMIR', 'bkg_grism'),
            ('Asn_Lv2WFSSMIR', 'bkg_image'),
            ('Asn_Lv2WFSSMIR', 'direct'),
            ('Asn_MIRLRSTAConfirm', 'background'),
            ('Asn_MIRLRSTAConfirm', 'ta'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_obs'),
        ],
    ),
    'asn_companion_key': (
        ('rule_name', 'kind', 'column_name', 'match'),
        ('rule_name', 'kind', 'column_name'),
        [
        ],
        [
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 'detector'),
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 'instrume'),
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 'program'),
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 'targetid'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 'detector'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 'instrume'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 'program'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 'targetid'),
            ('Asn_Lv2WFSSMIR', 'direct', 'detector'),
            ('Asn_Lv2WFSSMIR', 'direct', 'instrume'),
            ('Asn_Lv2WFSSMIR', 'direct', 'program'),
            ('Asn_Lv2WFSSMIR', 'direct', 'targetid'),
            ('Asn_MIRLRSTAConfirm', 'background', 'channel'),
            ('Asn_MIRLRSTAConfirm', 'background', 'detector'),
            ('Asn_MIRLRSTAConfirm', 'background', 'exp_type'),
            ('Asn_MIRLRSTAConfirm', 'background', 'fxd_slit'),
            ('Asn_MIRLRSTAConfirm', 'background', 'instrume'),
            ('Asn_MIRLRSTAConfirm', 'background', 'opt_filter'),
            ('Asn_MIRLRSTAConfirm', 'background', 'opt_pupil'),
            ('Asn_MIRLRSTAConfirm', 'background', 'program'),
            ('Asn_MIRLRSTAConfirm', 'background', 'subarray'),
            ('Asn_MIRLRSTAConfirm', 'background', 'tsovisit'),
            ('Asn_MIRLRSTAConfirm', 'ta', 'program'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'channel'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'detector'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'fxd_slit'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'instrume'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'opt_filter'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'opt_pupil'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'program'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'subarray'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_obs', 'obs_id'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_obs', 'program'),
        ],
    ),
    'asn_value_set': (
        ('set_name', 'value'),
        ('set_name', 'value'),
        [
            ('SPEC2_SPEC', 'mir_lrs-fixedslit'),
            ('SPEC2_SPEC', 'mir_lrs-slitless'),
            ('SPEC2_TSO', 'mir_lrs-fixedslit'),
            ('SPEC2_TSO', 'mir_lrs-slitless'),
        ],
        [
            ('MIR_IMAGE', 'mir_image'),
            ('MIR_LRS', 'mir_lrs-fixedslit'),
            ('MIR_LRS', 'mir_lrs-slitless'),
            ('MIR_WFSS', 'mir_wfss'),
            ('RATEINTS_ALWAYS', 'nis_ami'),
            ('SPEC2_SCIENCE', 'mir_wfss'),
            ('SPEC2_SPEC', 'mir_wfss'),
            ('SPEC2_TSO', 'mir_wfss'),
            ('WFSS', 'mir_wfss'),
            ('WFSS_DIRECT', 'mir_image'),
        ],
    ),
    'pipeline_release': (
        ('version', 'released', 'rules_as_of'),
        ('version',),
        [
            ('1.8.0', dt.date(2022, 10, 10), dt.date(2022, 10, 10)),
        ],
        [
        ],
    ),
}

catalog_version = sa.table(
    "catalog_version", sa.column("revision"), sa.column("seq"), sa.column("effective_date"),
    sa.column("reference"), sa.column("summary"),
)


def _dated(name, columns):
    """The table that keeps every state: ``rule_history`` for the published table, else the table itself."""
    return sa.table("rule_history" if name == "rule" else name, *(sa.column(c) for c in columns),
                    sa.column("valid_from"), sa.column("valid_to"))


def _key(table, key, values):
    return sa.and_(*(table.c[c] == v for c, v in zip(key, values)))


def _put(bind, head, key, row):
    """The published table's head row: updated in place (ids stay stable) or inserted."""
    where = _key(head, key, [row[c] for c in key])
    if bind.execute(head.update().where(where).values(**row)).rowcount == 0:
        bind.execute(head.insert().values(**row))


def upgrade() -> None:
    bind = op.get_bind()
    seq = bind.execute(sa.select(sa.func.coalesce(sa.func.max(catalog_version.c.seq), 0))).scalar_one()
    bind.execute(catalog_version.insert().values(
        revision=revision, seq=seq + 1, effective_date=EFFECTIVE_DATE, reference=REFERENCE, summary=SUMMARY))
    for name, (columns, key, upserted, removed) in TABLES.items():
        dated = _dated(name, columns)
        rows = [dict(zip(columns, values)) for values in upserted]
        for values in [[r[c] for c in key] for r in rows] + [list(k) for k in removed]:
            bind.execute(dated.update().where(_key(dated, key, values), dated.c.valid_to.is_(None))
                         .values(valid_to=revision))
        for row in rows:
            bind.execute(dated.insert().values(**row, valid_from=revision, valid_to=None))
        if name == "rule":
            head = sa.table("rule", *(sa.column(c) for c in columns))
            for values in removed:
                bind.execute(head.delete().where(_key(head, key, values)))
            for row in rows:
                _put(bind, head, key, row)


def _release_references(bind) -> None:
    """Work items and runs made at this revision keep it: refuse (nothing changed), or with
    -x drop_data=yes delete those work items and clear the runs' revision."""
    from alembic import context
    from alembic.util import CommandError

    if "work_item" not in sa.inspect(bind).get_table_names():
        return
    item, run = (sa.table(t, sa.column("catalog_revision")) for t in ("work_item", "run"))
    held = {t.name: bind.execute(sa.select(sa.func.count()).select_from(t)
                                 .where(t.c.catalog_revision == revision)).scalar_one() for t in (run, item)}
    if not any(held.values()):
        return
    if not context.is_offline_mode() and context.get_x_argument(as_dictionary=True).get("drop_data") != "yes":
        raise CommandError(f"downgrading below {revision} would drop " + ", ".join(
            f"{t} ({n} rows)" for t, n in held.items() if n) + " made at it; nothing was changed; to drop them, "
            "pass -x drop_data=yes to alembic (drop_data=True to l2rules.migrate.downgrade)")
    bind.execute(item.delete().where(item.c.catalog_revision == revision))
    bind.execute(run.update().where(run.c.catalog_revision == revision).values(catalog_revision=None))


def downgrade() -> None:
    bind = op.get_bind()
    _release_references(bind)
    for name, (columns, key, upserted, removed) in reversed(list(TABLES.items())):
        dated = _dated(name, columns)
        bind.execute(dated.delete().where(dated.c.valid_from == revision))
        bind.execute(dated.update().where(dated.c.valid_to == revision).values(valid_to=None))
        if name == "rule":
            head = sa.table("rule", *(sa.column(c) for c in columns))
            for values in [[dict(zip(columns, v))[c] for c in key] for v in upserted] + [list(k) for k in removed]:
                before = bind.execute(sa.select(*(dated.c[c] for c in columns))
                                      .where(_key(dated, key, values), dated.c.valid_to.is_(None))).mappings().first()
                if before is None:
                    bind.execute(head.delete().where(_key(head, key, values)))
                else:
                    _put(bind, head, key, dict(before))
    bind.execute(catalog_version.delete().where(catalog_version.c.revision == revision))
