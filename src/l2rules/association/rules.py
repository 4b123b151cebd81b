"""Stage 0: the association rules in force at a catalog point, and conditions evaluated on exposures.

The rules an evaluation reads are, per connection, temporary copies of the ``asn_*`` rows in force
at the catalog point asked for (constraint groups expanded), made by :func:`stage` first.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .. import schema
from ..operators import Context, compiled, per_row
from ..points import in_force
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


def in_set(set_name, expr) -> sa.ColumnElement[bool]:
    """``expr`` is a value of the set (false, not null, when it is null). Not a correlated EXISTS: the
    uncorrelated IN is built once per statement (a hash, an ephemeral index), not probed per exposure."""
    pairs = sa.select(value_set.c.set_name, value_set.c.value)
    return sa.func.coalesce(sa.tuple_(set_name, expr).in_(pairs), sa.false())


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
    """A condition row ``cond`` (columns of ``condition``) evaluated on an exposure row: boolean SQL, the
    shared operators (``l2rules.operators.per_row``) with the staged value sets and optical paths."""
    context = Context(member=in_set, path=lambda kind: path_test(row, kind))
    return per_row(cond.operator, accessor(row, cond.column_name, columns), cond.value,
                   schema.ASN_CONDITION_OPERATORS, context)


_PATH_COLUMNS = ("slit_class", "opmode", "grating", "filter", "pupil", "lamp", "detector")


def optical_paths(conn: sa.Connection) -> dict[str, list]:
    """The optical paths in force, by kind (each a mapping of ``optical_path``'s columns)."""
    paths: dict[str, list] = {}
    for path in conn.execute(sa.select(optical_path)).mappings():
        paths.setdefault(path["path_kind"], []).append(path)
    return paths


def path_holds(row, kind: str, paths: dict[str, list]) -> sa.ColumnElement[bool]:
    """:func:`path_test` with the paths in force written in: some allowed path of ``kind`` whose every named
    column is the row's, and no excluding one (constants, not a lookup per row)."""
    def matches(allowed: bool):
        return sa.or_(sa.false(), *(
            sa.and_(sa.true(), *(sa.func.coalesce(row.c[column] == path[column], sa.false())
                                 for column in _PATH_COLUMNS if path[column] is not None))
            for path in paths.get(kind, []) if bool(path["allowed"]) == allowed))

    return sa.and_(matches(True), sa.not_(matches(False)))


def compiled_conditions(conn: sa.Connection, row, sets: dict[str, list[str]], paths: dict[str, list]
                        ) -> dict[tuple[str, str], sa.ColumnElement[bool]]:
    """Per (rule, subject): all its conditions as one boolean expression over ``row``'s columns, the
    catalog's values written in (alternative 0 and, when there are others, one of them whole).

    What :func:`condition_holds` gives, all conditions of a key together, for a whole pool at once: the conditions,
    value sets and optical paths in force are small and read once here, so the database tests each
    exposure against plain columns and constants - no join with the conditions, no lookup per
    condition (100,000 exposures: 16 s -> ~1 s on SQLite). ``explain`` keeps the row-per-condition
    form, which names the condition that failed. ``sets`` and ``paths``: the value sets and optical paths
    in force (:func:`value_sets`, :func:`optical_paths`).
    """
    query = sa.select(condition).order_by(condition.c.rule_name, condition.c.subject, condition.c.alt,
                                          condition.c.seq)
    alternatives: dict[tuple[str, str], dict[int, list]] = {}
    for cond in conn.execute(query):
        test = _holds(row, cond.operator, cond.column_name, cond.value, sets, paths)
        alternatives.setdefault((cond.rule_name, cond.subject), {}).setdefault(cond.alt, []).append(test)
    compiled = {}
    for key, by_alt in alternatives.items():
        common = sa.and_(sa.true(), *by_alt.get(0, []))
        others = [sa.and_(*tests) for alt, tests in sorted(by_alt.items()) if alt > 0]
        compiled[key] = sa.and_(common, sa.or_(*others)) if others else common
    return compiled


def value_sets(conn: sa.Connection) -> dict[str, list[str]]:
    """The value sets in force, by name."""
    sets: dict[str, list[str]] = {}
    for name, value in conn.execute(sa.select(value_set.c.set_name, value_set.c.value)):
        sets.setdefault(name, []).append(value)
    return sets


def set_member(sets: dict[str, list[str]], set_name: str, expr) -> sa.ColumnElement[bool]:
    """``expr`` is one of the values of the set (false when it is null)."""
    values = sets.get(set_name, [])
    return sa.func.coalesce(expr.in_(values), sa.false()) if values else sa.false()


def in_set_where(sets: dict[str, list[str]], set_name: str | None, expr) -> sa.ColumnElement[bool]:
    """:func:`set_member` for a WHERE clause (true when ``set_name`` is None: no set, no test), where a NULL
    filters as false does: the plain IN, which the database can answer from an index."""
    if set_name is None:
        return sa.true()
    values = sets.get(set_name, [])
    return expr.in_(values) if values else sa.false()


def _holds(row, operator: str, column_name: str, value: str | None, sets, paths) -> sa.ColumnElement[bool]:
    """One condition on ``row``, true or false (never null), as :func:`condition_holds` reads it: the shared
    operators (``l2rules.operators.compiled``) with the value sets and optical paths in force written in."""
    got = row.c[column_name] if column_name in ACCESSIBLE else sa.cast(sa.null(), sa.String)  # typed: see _key_holds
    context = Context(member=lambda set_name, expr: set_member(sets, value, expr),
                      path=lambda kind: path_holds(row, value, paths))
    return compiled(operator, got, value, context)


def condition_ok(row, cond, columns):
    return sa.case((condition_holds(row, cond, columns), 1), else_=0)
