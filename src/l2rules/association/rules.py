"""Stage 0: the association rules in force at a catalog point, and conditions evaluated on exposures.

The rules an evaluation reads are, per connection, temporary copies of the ``asn_*`` rows in force
at the catalog point asked for (constraint groups expanded), made by :func:`stage` first.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .. import schema
from ..catalog import in_force
from .columns import ACCESSIBLE, AssociationError

if TYPE_CHECKING:
    from .evaluation import Evaluation

_metadata = sa.MetaData()


def _staged_copy(table: sa.Table) -> sa.Table:
    columns = [sa.Column(column.name, column.type) for column in table.columns
               if column.name not in ("valid_from", "valid_to")]
    return sa.Table("asn_tmp_rules_" + table.name.removeprefix("asn_"), _metadata, *columns, prefixes=["TEMPORARY"])


value_set = _staged_copy(schema.asn_value_set)
member_type = _staged_copy(schema.asn_member_type)
rule = _staged_copy(schema.asn_rule)
condition = _staged_copy(schema.asn_condition)
companion = _staged_copy(schema.asn_companion)
companion_key = _staged_copy(schema.asn_companion_key)
optical_path = _staged_copy(schema.asn_optical_path)
candidate_policy = _staged_copy(schema.asn_candidate_policy)
parameter = _staged_copy(schema.asn_parameter)
#: The tables copied as they are (conditions are copied with their constraint groups expanded).
_COPIED = ((schema.asn_value_set, value_set), (schema.asn_member_type, member_type), (schema.asn_rule, rule),
           (schema.asn_companion, companion), (schema.asn_companion_key, companion_key),
           (schema.asn_optical_path, optical_path), (schema.asn_candidate_policy, candidate_policy),
           (schema.asn_parameter, parameter))


def stage(evaluation: Evaluation, when: dt.date | None) -> None:
    """The association rules in force on day ``when`` (the head when None), as the tables above."""
    for source, copy in _COPIED:
        evaluation.fill(copy, sa.select(*(source.c[column.name] for column in copy.columns))
                        .where(in_force(source, when)))
    conditions, groups = schema.asn_condition, schema.asn_constraint
    # a 'constraint' condition stands for every condition of its group, at its place: seq * 100 + n, plain
    # conditions at seq * 100 (their order, the order explain reads them in, stays the catalog's)
    plain = sa.select(*((conditions.c.seq * 100).label("seq") if column.name == "seq" else conditions.c[column.name]
                        for column in condition.columns)).where(
        in_force(conditions, when), conditions.c.operator != "constraint")
    missing = evaluation.conn.execute(
        sa.select(conditions.c.rule_name, conditions.c.column_name)
        .where(in_force(conditions, when), conditions.c.operator == "constraint",
               ~sa.exists().where(groups.c.name == conditions.c.column_name, in_force(groups, when)))).first()
    if missing is not None:
        raise AssociationError(f"rule {missing.rule_name} names the constraint group {missing.column_name}, "
                               f"which has no conditions in force at {when or 'the head'}")
    grouped = (sa.select(conditions.c.rule_name, conditions.c.subject, conditions.c.alt,
                         conditions.c.seq * 100 + groups.c.seq, groups.c.column_name,
                         groups.c.operator, groups.c.value)
               .join(groups, groups.c.name == conditions.c.column_name)
               .where(in_force(conditions, when), conditions.c.operator == "constraint", in_force(groups, when)))
    evaluation.fill(condition, sa.union_all(plain, grouped))
    if not evaluation.conn.execute(sa.select(sa.func.count()).select_from(rule)).scalar():
        raise AssociationError(f"no association rules were in force on {when}: the catalog's association "
                               "rules start with jwst 1.8.0 (2022-10-10)")


def parameter_value(conn: sa.Connection, name: str) -> str | None:
    return conn.execute(sa.select(parameter.c.value).where(parameter.c.name == name)).scalar()


def in_set(set_name, expr) -> sa.Exists:
    return sa.exists().where(value_set.c.set_name == set_name, value_set.c.value == expr).correlate_except(value_set)


def accessor(row, name_column, columns=ACCESSIBLE):
    """The value of the column whose name is in ``name_column`` (a condition's or key's column_name).

    ``columns``: the names that can occur (by default every accessible column).
    """
    return sa.case(*[(name_column == column, row.c[column]) for column in columns], else_=None)


def named_columns(conn: sa.Connection, table: sa.Table) -> list[str]:
    """The accessible columns that the catalog's conditions or keys name (keeps the SQL small)."""
    named = set(conn.execute(sa.select(table.c.column_name).distinct()).scalars())
    return [column for column in ACCESSIBLE if column in named]


def path_test(row, kind):
    """The row's optical path is allowed for ``kind``: an allowed row matches and no excluding one does."""
    path = optical_path.c

    def match(allowed: bool):
        tests = [path.path_kind == kind, path.allowed == allowed]
        for column in ("slit_class", "opmode", "grating", "filter", "pupil", "lamp", "detector"):
            tests.append(sa.or_(path[column].is_(None), path[column] == row.c[column]))
        return sa.exists().where(*tests).correlate_except(optical_path)

    return sa.and_(match(True), sa.not_(match(False)))


def condition_holds(row, cond, columns):
    """A condition row ``cond`` (columns of ``condition``) evaluated on an exposure row: boolean SQL."""
    value = accessor(row, cond.column_name, columns)
    member = (sa.exists().where(value_set.c.set_name == cond.value, value_set.c.value == value)
              .correlate_except(value_set))
    return sa.case(
        (cond.operator == "present", value.is_not(None)),
        (cond.operator == "absent", value.is_(None)),
        (cond.operator == "eq", sa.func.coalesce(value == cond.value, sa.false())),
        (cond.operator == "ne", sa.or_(value.is_(None), value != cond.value)),
        (cond.operator == "in_set", member),
        (cond.operator == "not_in_set", sa.not_(member)),
        (cond.operator == "like", sa.func.coalesce(value.like(cond.value), sa.false())),
        (cond.operator == "not_like", sa.or_(value.is_(None), value.not_like(cond.value))),
        (cond.operator == "path", path_test(row, cond.value)),
        (cond.operator == "not_path", sa.not_(path_test(row, cond.value))),
        else_=sa.false())


def condition_ok(row, cond, columns):
    return sa.case((condition_holds(row, cond, columns), 1), else_=0)


def holding(evaluated, *keys) -> sa.Select:
    """The ``keys`` whose conditions hold: all of alt 0, and all of some alternative when there are any.

    ``evaluated`` has one row per (keys, alt, condition) with ``ok`` 1 or 0.
    """
    per_alt = (sa.select(*keys, evaluated.c.alt, sa.func.min(evaluated.c.ok).label("ok"))
               .group_by(*keys, evaluated.c.alt).subquery())
    key_columns = [per_alt.c[key.name] for key in keys]
    common = sa.func.min(sa.case((per_alt.c.alt == 0, per_alt.c.ok), else_=1))
    some_alternative = sa.func.coalesce(sa.func.max(sa.case((per_alt.c.alt > 0, per_alt.c.ok), else_=None)), 1)
    return sa.select(*key_columns).group_by(*key_columns).having(sa.and_(common == 1, some_alternative == 1))
