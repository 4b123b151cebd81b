"""Identical associations of two rules: the one of the rule later in rules_level2b.py is kept

Effective 2022-12-12; jwst 1.8.5: JP-2907 item reprocessing refactor (jwst PR #7332, e7613aeb5, 2022-11-07).
Data revision: for each table it touches, the rows it adds or changes, frozen
as they are after it, and the keys it removes. Every row state it replaces is
closed (valid_to), so `l2rules rules list --as-of` and `rules history` can
still show it; the published table also keeps its head rows in `rule`.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

EFFECTIVE_DATE = dt.date(2022, 12, 12)
REFERENCE = 'jwst 1.8.5: JP-2907 item reprocessing refactor (jwst PR #7332, e7613aeb5, 2022-11-07)'
SUMMARY = 'Identical associations of two rules: the one of the rule later in rules_level2b.py is kept'

# table: (columns, key, rows added or changed, keys removed)
TABLES = {
    'asn_parameter': (
        ('name', 'value', 'note'),
        ('name',),
        [
            ('duplicate_rule_order', 'position', "of two identical associations of one candidate made by two rules, the one of the rule later by name is kept ('position': of the rule later in rules_level2b.py)"),
        ],
        [
        ],
    ),
    'pipeline_release': (
        ('version', 'released', 'rules_as_of'),
        ('version',),
        [
            ('1.8.5', dt.date(2022, 12, 12), dt.date(2022, 12, 12)),
            ('1.9.0', dt.date(2022, 12, 27), dt.date(2022, 12, 27)),
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
