"""WFS&C asn_type image2; MIRI LRS with its TA confirmation (Asn_MIRLRSTAConfirm); MIRI WFSS spec2 (Asn_Lv2WFSSMIR)

Effective 2026-04-13; jwst 2.0.0: JP-2009 (jwst PR #10124, c3622e047); JP-3307 (jwst PR #10011, 8147b656d); JP-3942 (jwst PR #9689, 1f1ea974d); JP-4158 (jwst PR #10094, 04e124faa).
Data revision: for each table it touches, the rows it adds or changes, frozen
as they are after it, and the keys it removes. Every row state it replaces is
closed (valid_to), so `l2rules rules list --as-of` and `rules history` can
still show it; the published table also keeps its head rows in `rule`.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

EFFECTIVE_DATE = dt.date(2026, 4, 13)
REFERENCE = 'jwst 2.0.0: JP-2009 (jwst PR #10124, c3622e047); JP-3307 (jwst PR #10011, 8147b656d); JP-3942 (jwst PR #9689, 1f1ea974d); JP-4158 (jwst PR #10094, 04e124faa)'
SUMMARY = 'WFS&C asn_type image2; MIRI LRS with its TA confirmation (Asn_MIRLRSTAConfirm); MIRI WFSS spec2 (Asn_Lv2WFSSMIR)'

# table: (columns, key, rows added or changed, keys removed)
TABLES = {
    'asn_rule': (
        ('name', 'asn_type', 'science_set', 'forced_science', 'nod_overlap', 'wfss', 'rate_policy', 'imprint_pruning', 'note', 'position'),
        ('name',),
        [
            ('Asn_Lv2WFSC', 'image2', 'IMAGE2_SCIENCE', False, None, None, 'default', False, 'imaging in wavefront-sensing visits, except NIRCam LOS-jitter exposures', 21),
            ('Asn_Lv2WFSSMIR', 'spec2', 'MIR_WFSS', False, None, 'mir', 'default', False, 'MIRI WFSS grism with a direct image of the same target and detector', 17),
            ('Asn_MIRLRSTAConfirm', 'spec2', 'MIR_LRS', False, None, None, 'default', False, 'MIRI LRS with its backgrounds', 11),
        ],
        [
        ],
    ),
    'asn_condition': (
        ('rule_name', 'subject', 'alt', 'seq', 'column_name', 'operator', 'value'),
        ('rule_name', 'subject', 'alt', 'seq'),
        [
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 0, 1, 'exp_type', 'eq', 'mir_wfss'),
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 0, 2, 'sci_type', 'ne', 'science'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 0, 1, 'exp_type', 'eq', 'mir_image'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 0, 2, 'member_type', 'eq', 'background'),
            ('Asn_Lv2WFSSMIR', 'direct', 0, 1, 'sci_type', 'eq', 'science'),
            ('Asn_Lv2WFSSMIR', 'direct', 0, 2, 'exp_type', 'eq', 'mir_image'),
            ('Asn_Lv2WFSSMIR', 'science', 0, 1, 'program', 'present', None),
            ('Asn_Lv2WFSSMIR', 'science', 0, 2, 'targetid', 'present', None),
            ('Asn_Lv2WFSSMIR', 'science', 0, 3, 'instrume', 'present', None),
            ('Asn_Lv2WFSSMIR', 'science', 0, 4, 'detector', 'present', None),
            ('Asn_Lv2WFSSMIR', 'science', 0, 5, 'sci_type', 'eq', 'science'),
            ('Asn_MIRLRSTAConfirm', 'background', 0, 1, 'MODE', 'constraint', None),
            ('Asn_MIRLRSTAConfirm', 'background', 0, 8, 'is_tso', 'eq', 'n'),
            ('Asn_MIRLRSTAConfirm', 'background', 0, 9, 'member_type', 'eq', 'background'),
            ('Asn_MIRLRSTAConfirm', 'science', 0, 1, 'program', 'present', None),
            ('Asn_MIRLRSTAConfirm', 'science', 0, 2, 'sci_type', 'eq', 'science'),
            ('Asn_MIRLRSTAConfirm', 'science', 1, 1, 'MODE', 'constraint', None),
            ('Asn_MIRLRSTAConfirm', 'science', 2, 1, 'obs_id', 'present', None),
            ('Asn_MIRLRSTAConfirm', 'ta', 0, 1, 'exp_type', 'eq', 'mir_taconfirm'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 0, 1, 'exp_type', 'eq', 'mir_taconfirm'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 0, 2, 'MODE', 'constraint', None),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_obs', 0, 1, 'exp_type', 'eq', 'mir_taconfirm'),
        ],
        [
        ],
    ),
    'asn_companion': (
        ('rule_name', 'kind', 'source', 'role', 'exp_type_set', 'attach'),
        ('rule_name', 'kind'),
        [
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 'pool', 'own', 'MIR_WFSS', 'order'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 'pool', 'own', 'MIR_IMAGE', 'always'),
            ('Asn_Lv2WFSSMIR', 'direct', 'pool', 'direct_image', 'MIR_IMAGE', 'always'),
            ('Asn_MIRLRSTAConfirm', 'background', 'pool', 'own', 'MIR_LRS', 'always'),
            ('Asn_MIRLRSTAConfirm', 'ta', 'pool', 'own', 'MIR_TACONFIRM', 'after'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'pool', 'own', 'MIR_TACONFIRM', 'leading'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_obs', 'pool', 'own', 'MIR_TACONFIRM', 'leading'),
        ],
        [
        ],
    ),
    'asn_companion_key': (
        ('rule_name', 'kind', 'column_name', 'match'),
        ('rule_name', 'kind', 'column_name'),
        [
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 'detector', 'eq'),
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 'instrume', 'eq'),
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 'program', 'eq'),
            ('Asn_Lv2WFSSMIR', 'bkg_grism', 'targetid', 'eq'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 'detector', 'eq'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 'instrume', 'eq'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 'program', 'eq'),
            ('Asn_Lv2WFSSMIR', 'bkg_image', 'targetid', 'eq'),
            ('Asn_Lv2WFSSMIR', 'direct', 'detector', 'eq'),
            ('Asn_Lv2WFSSMIR', 'direct', 'instrume', 'eq'),
            ('Asn_Lv2WFSSMIR', 'direct', 'program', 'eq'),
            ('Asn_Lv2WFSSMIR', 'direct', 'targetid', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'background', 'channel', 'opt_eq'),
            ('Asn_MIRLRSTAConfirm', 'background', 'detector', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'background', 'exp_type', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'background', 'fxd_slit', 'opt_eq'),
            ('Asn_MIRLRSTAConfirm', 'background', 'instrume', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'background', 'opt_filter', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'background', 'opt_pupil', 'opt_eq'),
            ('Asn_MIRLRSTAConfirm', 'background', 'program', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'background', 'subarray', 'opt_eq'),
            ('Asn_MIRLRSTAConfirm', 'background', 'tsovisit', 'opt_eq'),
            ('Asn_MIRLRSTAConfirm', 'ta', 'program', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'channel', 'opt_eq'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'detector', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'fxd_slit', 'opt_eq'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'instrume', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'opt_filter', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'opt_pupil', 'opt_eq'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'program', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_mode', 'subarray', 'opt_eq'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_obs', 'obs_id', 'eq'),
            ('Asn_MIRLRSTAConfirm', 'ta_lead_obs', 'program', 'eq'),
        ],
        [
        ],
    ),
    'asn_value_set': (
        ('set_name', 'value'),
        ('set_name', 'value'),
        [
            ('MIR_IMAGE', 'mir_image'),
            ('MIR_LRS', 'mir_lrs-fixedslit'),
            ('MIR_LRS', 'mir_lrs-slitless'),
            ('MIR_WFSS', 'mir_wfss'),
            ('SPEC2_SCIENCE', 'mir_wfss'),
            ('SPEC2_SPEC', 'mir_wfss'),
            ('SPEC2_TSO', 'mir_wfss'),
        ],
        [
            ('SPEC2_SPEC', 'mir_lrs-fixedslit'),
            ('SPEC2_SPEC', 'mir_lrs-slitless'),
            ('SPEC2_TSO', 'mir_lrs-fixedslit'),
            ('SPEC2_TSO', 'mir_lrs-slitless'),
        ],
    ),
    'pipeline_release': (
        ('version', 'released', 'rules_as_of'),
        ('version',),
        [
            ('2.0.0', dt.date(2026, 4, 13), dt.date(2026, 4, 13)),
            ('2.0.1', dt.date(2026, 5, 6), dt.date(2026, 5, 6)),
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
