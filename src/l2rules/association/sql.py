"""SQL building blocks shared by the stages: text tests and conversions, the keys stages join on."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from .columns import EMPTY


class _Contains(sa.sql.expression.FunctionElement):
    """``needle`` occurs in ``haystack`` (plain substring, no LIKE wildcards): instr / strpos."""

    type = sa.Boolean()
    inherit_cache = True
    name = "l2rules_contains"


@compiles(_Contains, "sqlite")
def _contains_sqlite(element, compiler, **kw):
    haystack, needle = list(element.clauses)
    return f"(instr({compiler.process(haystack, **kw)}, {compiler.process(needle, **kw)}) > 0)"


@compiles(_Contains, "postgresql")
def _contains_postgresql(element, compiler, **kw):
    haystack, needle = list(element.clauses)
    return f"(strpos({compiler.process(haystack, **kw)}, {compiler.process(needle, **kw)}) > 0)"


def contains(haystack, needle):
    return _Contains(haystack, needle)


def normalised(column: sa.ColumnElement) -> sa.ColumnElement:
    """Lower case; NULL for the values the pipeline reads as not set. (Not trimmed here: every load stores
    its values stripped, and a trim per value was 40% of the exposures stage.)"""
    lowered = sa.func.lower(column)
    return sa.case((lowered.in_(EMPTY), None), else_=lowered)


def zero_padded(expr, width: int):
    return sa.case(*[(sa.func.length(expr) == length, sa.literal("0" * (width - length)) + expr)
                     for length in range(1, width)],
                   else_=expr)


def joined_text(*values) -> sa.ColumnElement[str]:
    """Values joined in one text (NULL when one is), with a separator no loaded value holds: a control
    character, which loads refuse. Equal texts are equal values, one by one."""
    text = values[0]
    for value in values[1:]:
        text = text + "\x1f" + value
    return text


def row_number() -> sa.FunctionElement:
    """ROW_NUMBER() typed as an integer (untyped, a staged column of it was text: '10' before '9')."""
    return sa.func.row_number(type_=sa.Integer)


def union_all(exposures, selects: list[sa.Select], *names: str) -> sa.Select | sa.CompoundSelect:
    """The rows of every select, each one row per exposure (``eid``) and ``names``; a select of no row of that
    shape when there is none."""
    if not selects:
        return sa.select(exposures.c.eid, *(sa.literal("", sa.String).label(n) for n in names)).where(sa.false())
    return selects[0] if len(selects) == 1 else sa.union_all(*selects)


def as_integer(expr):
    digits = sa.and_(expr.is_not(None), expr != "", sa.func.ltrim(expr, "0123456789") == "")
    return sa.case((digits, sa.cast(expr, sa.Integer)), else_=None)


def flag_text(column):
    return sa.case((column == sa.true(), "t"), else_=None)


def association_key(table):
    """An association before the discovery pass's copies: (science exposure, candidate, rule)."""
    return (table.c.eid, table.c.cand_id, table.c.rule_name)


def copy_key(table):
    """An association after the discovery pass's copies: with its asn_id."""
    return (table.c.eid, table.c.cand_id, table.c.rule_name, table.c.asn_id)


def keys_equal(left, right):
    return sa.and_(*[one == other for one, other in zip(left, right)])
