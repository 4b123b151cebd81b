"""The text of a data revision, as `l2rules rules revision` writes it.

Kept apart from catalog.py because it is a template, not code that runs here:
each rendered revision carries its own copy of the upgrade/downgrade logic, so
it stays correct whatever later happens to this package (Alembic cookbook:
self-contained revisions). Revisions written before 0023 carry the earlier
form of it (every change at the head, in the order written).
"""

TEMPLATE = '''"""{summary_doc}

Effective {date}; {reference_doc}.
Data revision: the row states it writes, frozen, computed by `l2rules rules revision`
against the catalog as the revisions before it leave it. A change takes effect on
its effective date whenever it was written: the state in force then is split there
(CLOSED: it now ends at this revision), the rest of its interval is written again
with the change (ADDED, from this revision), and each later state the change
carries into is replaced by its changed copy (REPLACED: same interval), until a
later revision set the same thing (it keeps its own effect). `l2rules rules
history` shows every state; the published table also keeps its head rows in `rule`.
{splits_doc}
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
RECORDED = dt.date({recorded_year}, {recorded_month}, {recorded_day})
REFERENCE = {reference_literal}
SUMMARY = {summary_literal}

# table: (columns, key, {{
#   "closed": [(key, valid_from, valid_to before)],       the state in force on EFFECTIVE_DATE, now ending here
#   "added": [(row, valid_to)],                           states from this revision (valid_to: None or a revision)
#   "replaced": [(valid_from, valid_to, before, after)],  later states the change carries into, rows before/after
# }})
TABLES = {{
{tables}}}

catalog_version = sa.table(
    "catalog_version", sa.column("revision"), sa.column("seq"), sa.column("effective_date"),
    sa.column("reference"), sa.column("summary"), sa.column("recorded"),
)


def _dated(name, columns):
    """The table that keeps every state: ``rule_history`` for the published table, else the table itself."""
    return sa.table("rule_history" if name == "rule" else name, *(sa.column(c) for c in columns),
                    sa.column("valid_from"), sa.column("valid_to"))


def _key(table, key, values):
    return sa.and_(*(table.c[c] == v for c, v in zip(key, values)))


def _state(table, key, values, valid_from):
    return sa.and_(_key(table, key, values), table.c.valid_from == valid_from)


def _heads(bind, name, columns, key, ops):
    """The published table's head rows (``rule``) for every key the revision touched, as the states say."""
    if name != "rule":
        return
    dated, head = _dated(name, columns), sa.table("rule", *(sa.column(c) for c in columns))
    keys = {{tuple(k) for k, _, _ in ops["closed"]}}
    keys |= {{tuple(dict(zip(columns, row))[c] for c in key) for row, _ in ops["added"]}}
    keys |= {{tuple(dict(zip(columns, after))[c] for c in key) for _, _, _, after in ops["replaced"]}}
    for values in sorted(keys, key=repr):
        now = bind.execute(sa.select(*(dated.c[c] for c in columns))
                           .where(_key(dated, key, values), dated.c.valid_to.is_(None))).mappings().first()
        if now is None:
            bind.execute(head.delete().where(_key(head, key, values)))
        elif bind.execute(head.update().where(_key(head, key, values)).values(**dict(now))).rowcount == 0:
            bind.execute(head.insert().values(**dict(now)))  # updated in place where it was: ids stay stable


def upgrade() -> None:
    bind = op.get_bind()
    seq = bind.execute(sa.select(sa.func.coalesce(sa.func.max(catalog_version.c.seq), 0))).scalar_one()
    bind.execute(catalog_version.insert().values(
        revision=revision, seq=seq + 1, effective_date=EFFECTIVE_DATE, reference=REFERENCE, summary=SUMMARY,
        recorded=RECORDED))
    for name, (columns, key, ops) in TABLES.items():
        dated = _dated(name, columns)
        for values, valid_from, _ in ops["closed"]:
            bind.execute(dated.update().where(_state(dated, key, values, valid_from)).values(valid_to=revision))
        for valid_from, valid_to, before, after in ops["replaced"]:
            old = dict(zip(columns, before))
            bind.execute(dated.delete().where(_state(dated, key, [old[c] for c in key], valid_from)))
            bind.execute(dated.insert().values(**dict(zip(columns, after)), valid_from=valid_from, valid_to=valid_to))
        for row, valid_to in ops["added"]:
            bind.execute(dated.insert().values(**dict(zip(columns, row)), valid_from=revision, valid_to=valid_to))
        _heads(bind, name, columns, key, ops)


def _release_references(bind) -> None:
    """Work items and runs made at this revision keep it: refuse (nothing changed), or with
    -x drop_data=yes delete those work items and clear the runs' revision."""
    from alembic import context
    from alembic.util import CommandError

    if "work_item" not in sa.inspect(bind).get_table_names():
        return
    item, run = (sa.table(t, sa.column("catalog_revision")) for t in ("work_item", "run"))
    held = {{t.name: bind.execute(sa.select(sa.func.count()).select_from(t)
                                 .where(t.c.catalog_revision == revision)).scalar_one() for t in (run, item)}}
    if not any(held.values()):
        return
    if not context.is_offline_mode() and context.get_x_argument(as_dictionary=True).get("drop_data") != "yes":
        raise CommandError(f"downgrading below {{revision}} would drop " + ", ".join(
            f"{{t}} ({{n}} rows)" for t, n in held.items() if n) + " made at it; nothing was changed; to drop them, "
            "pass -x drop_data=yes to alembic (drop_data=True to l2rules.migrate.downgrade)")
    bind.execute(item.delete().where(item.c.catalog_revision == revision))
    bind.execute(run.update().where(run.c.catalog_revision == revision).values(catalog_revision=None))


def _drop_answers(bind) -> None:
    """The pipeline's answers stored at this revision (a cache of an evaluation, migration 0018) go with
    it, and the pools they were of are marked to evaluate again."""
    tables = set(sa.inspect(bind).get_table_names())
    if "level2b_answer" in tables:
        answer = sa.table("level2b_answer", sa.column("catalog_revision"))
        bind.execute(answer.delete().where(answer.c.catalog_revision == revision))
    if "pool_answers_at" in tables:  # answers at other points made under this head (migration 0058)
        at = sa.table("pool_answers_at", sa.column("answers_revision"))
        bind.execute(at.delete().where(at.c.answers_revision == revision))
    if "pool" in tables and "answers_revision" in {{c["name"] for c in sa.inspect(bind).get_columns("pool")}}:
        pool = sa.table("pool", sa.column("answers_revision"), sa.column("items_revision"))
        for column in (pool.c.answers_revision, pool.c.items_revision):
            bind.execute(pool.update().where(column == revision).values(**{{column.name: None}}))


def downgrade() -> None:
    bind = op.get_bind()
    _release_references(bind)
    _drop_answers(bind)
    for name, (columns, key, ops) in reversed(list(TABLES.items())):
        dated = _dated(name, columns)
        bind.execute(dated.delete().where(dated.c.valid_from == revision))
        for valid_from, valid_to, before, after in ops["replaced"]:
            new = dict(zip(columns, after))
            bind.execute(dated.delete().where(_state(dated, key, [new[c] for c in key], valid_from)))
            bind.execute(dated.insert().values(**dict(zip(columns, before)), valid_from=valid_from, valid_to=valid_to))
        for values, valid_from, valid_to in ops["closed"]:
            bind.execute(dated.update().where(_state(dated, key, values, valid_from)).values(valid_to=valid_to))
        _heads(bind, name, columns, key, ops)
    bind.execute(catalog_version.delete().where(catalog_version.c.revision == revision))
'''
