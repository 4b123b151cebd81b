"""The text of a data revision, as `l2rules rules revision` writes it.

Kept apart from catalog.py because it is a template, not code that runs here:
each rendered revision carries its own copy of the upgrade/downgrade logic, so
it stays correct whatever later happens to this package (Alembic cookbook:
self-contained revisions).
"""

TEMPLATE = '''"""{summary}

Effective {date}; {reference}.
Data revision: the rules it adds or changes, frozen as they are after it, and
the keys it removes. Every rule state it replaces is closed in rule_history,
so `l2rules rules list --as-of` can still show it.

Revision ID: {revision}
Revises: {down_revision}
Create Date: {create_date}
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down_revision!r}
branch_labels = None
depends_on = None

EFFECTIVE_DATE = dt.date({year}, {month}, {day})
REFERENCE = {reference!r}
SUMMARY = {summary!r}

COLUMNS = ("exp_type", "special", "instrument", "exptype", "level2b", "asn_type", "note")
UPSERTED = [
{upserted}]
REMOVED = [
{removed}]

catalog_version = sa.table(
    "catalog_version", sa.column("revision"), sa.column("seq"), sa.column("effective_date"),
    sa.column("reference"), sa.column("summary"),
)
rule = sa.table("rule", *(sa.column(c) for c in COLUMNS))
rule_history = sa.table("rule_history", *(sa.column(c) for c in COLUMNS), sa.column("valid_from"),
                        sa.column("valid_to"))


def _key(table, key):
    return sa.and_(table.c.exp_type == key[0], table.c.special == key[1])


def _put(bind, row):
    """Update the rule in place (ids stay stable) or insert it."""
    key = (row["exp_type"], row["special"])
    if bind.execute(rule.update().where(_key(rule, key)).values(**row)).rowcount == 0:
        bind.execute(rule.insert().values(**row))


def upgrade() -> None:
    bind = op.get_bind()
    seq = bind.execute(sa.select(sa.func.coalesce(sa.func.max(catalog_version.c.seq), 0))).scalar_one()
    bind.execute(catalog_version.insert().values(
        revision=revision, seq=seq + 1, effective_date=EFFECTIVE_DATE, reference=REFERENCE, summary=SUMMARY))
    rows = [dict(zip(COLUMNS, values)) for values in UPSERTED]
    for key in [(r["exp_type"], r["special"]) for r in rows] + REMOVED:
        bind.execute(rule_history.update().where(_key(rule_history, key), rule_history.c.valid_to.is_(None))
                     .values(valid_to=revision))
    for key in REMOVED:
        bind.execute(rule.delete().where(_key(rule, key)))
    for row in rows:
        _put(bind, row)
        bind.execute(rule_history.insert().values(**row, valid_from=revision, valid_to=None))


def downgrade() -> None:
    bind = op.get_bind()
    keys = [(values[0], values[1]) for values in UPSERTED] + REMOVED
    bind.execute(rule_history.delete().where(rule_history.c.valid_from == revision))
    bind.execute(rule_history.update().where(rule_history.c.valid_to == revision).values(valid_to=None))
    for key in keys:
        before = bind.execute(sa.select(*(rule_history.c[c] for c in COLUMNS))
                              .where(_key(rule_history, key), rule_history.c.valid_to.is_(None))).mappings().first()
        if before is None:
            bind.execute(rule.delete().where(_key(rule, key)))
        else:
            _put(bind, dict(before))
    bind.execute(catalog_version.delete().where(catalog_version.c.revision == revision))
'''
