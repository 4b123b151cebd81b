"""One condition language: the published table's conditions take the association rules' operator names

Schema revision (no catalog version). The published table's footnote conditions
(``rule_condition``) and the association rules' (``asn_condition``,
``asn_constraint``) had two operator sets; they now share one
(``l2rules.operators``): ``equals`` is ``eq``, ``not_equals`` is ``ne``, and the
'|'-separated list ``in`` / ``not_in`` is ``in_list`` / ``not_in_list`` (not
``in_set``, which names a value set of ``asn_value_set``). ``rule_condition``
also accepts the other operators whose operand the condition holds: ``absent``,
``like``, ``not_like``. The CHECK constraint names the new set.

A rename in place, of every dated row (all ``valid_from``/``valid_to``
intervals), not a new catalog version: no condition means anything else, so
the rules in force at every point are the same, and the catalog's history keeps
its states, diffs between points stay empty, and `l2rules rules at` any point
shows the one spelling the CHECK allows. A catalog version would have closed
each renamed condition and opened a new one (the operator is part of a
condition's key): a change in the rules' history on a day nothing changed, and
the old names kept in the states before it.

Stored answers (a cache of an evaluation) whose reasons quote a failed
condition of the published table quote it by its old name: their pools are
marked to evaluate again (``pool.answers_revision`` cleared, their
``pool_answers_at`` rows dropped); the downgrade does the same for the new names.
The downgrade restores the old names and CHECK constraint; it refuses a
condition that uses one of the operators added here (``absent``, ``like``,
``not_like``), which the old set cannot express.

Revision ID: 0059
Revises: 0058
Create Date: 2026-12-08
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0059"
down_revision = "0058"
branch_labels = None
depends_on = None

#: Old name -> new name.
RENAMED = {"equals": "eq", "not_equals": "ne", "in": "in_list", "not_in": "not_in_list"}
OLD = ("present", "equals", "not_equals", "in", "not_in")
NEW = ("present", "absent", "eq", "ne", "in_list", "not_in_list", "like", "not_like")
CHECK = "ck_rule_condition_operator"

rule_condition = sa.table("rule_condition", sa.column("operator"))


def _check(operators: tuple[str, ...]) -> str:
    return "operator IN (" + ", ".join(repr(o) for o in operators) + ")"


def _rename(bind, names: dict[str, str], allowed: tuple[str, ...]) -> None:
    with op.batch_alter_table("rule_condition") as batch:
        batch.drop_constraint(CHECK, type_="check")
    for old, new in names.items():
        bind.execute(rule_condition.update().where(rule_condition.c.operator == old).values(operator=new))
    with op.batch_alter_table("rule_condition") as batch:
        batch.create_check_constraint(CHECK, _check(allowed))


def _answers_behind(bind) -> None:
    """The pools whose stored answers quote a failed condition of the published table: to evaluate again."""
    pool = sa.table("pool", sa.column("id"), sa.column("answers_revision"))
    exposure = sa.table("exposure", sa.column("id"), sa.column("pool_id"))
    at = sa.table("pool_answers_at", sa.column("pool_id"))
    for name in ("level2b_answer", "level2b_answer_at"):
        answer = sa.table(name, sa.column("exposure_id"), sa.column("table_reason"))
        quoting = (sa.select(exposure.c.pool_id).join(answer, answer.c.exposure_id == exposure.c.id)
                   .where(answer.c.table_reason.like("% condition failed: %")))
        if name == "level2b_answer":
            bind.execute(pool.update().where(pool.c.id.in_(quoting)).values(answers_revision=None))
        else:
            bind.execute(at.delete().where(at.c.pool_id.in_(quoting)))


def upgrade() -> None:
    bind = op.get_bind()
    _rename(bind, RENAMED, NEW)
    _answers_behind(bind)


def downgrade() -> None:
    bind = op.get_bind()
    added = sorted(set(NEW) - set(OLD) - set(RENAMED.values()))
    used = bind.execute(sa.select(rule_condition.c.operator).where(rule_condition.c.operator.in_(added))).first()
    if used is not None:
        from alembic.util import CommandError

        raise CommandError(f"downgrading below {revision}: a published-table condition uses the operator "
                           f"{used.operator}, which revisions before {revision} do not have; nothing was changed")
    _rename(bind, {new: old for old, new in RENAMED.items()}, OLD)
    _answers_behind(bind)
