"""The condition language of both rule sets: one table of operators, compiled to SQL in one place.

A condition tests one value of an exposure (a pool column) against the condition's operand. The published
table's footnote conditions (``rule_condition``) and the pipeline's association conditions (``asn_condition``,
``asn_constraint``) both compile through :func:`compiled` (an operator known when the SQL is built: the
catalog's values written in) or :func:`per_row` (the operator a column of a condition row: the form the
published work list's join and ``explain`` read, which names the condition that failed), and describe a
condition with :func:`describe` / :func:`described`.

NULLs, the same for every operator: a test of its own (present, eq, in_list, like, in_set, path) is false
when the value is NULL, and its negation (absent, ne, not_in_list, not_like, not_in_set, not_path) is exactly
its NOT, so true there; no operator ever yields NULL. Case is the caller's: the published table compares
upper-cased values on both sides, the association stages values they normalised to lower case; the
operators compare what they are given.

Below both ``published`` and ``association`` (imports neither; named ``operators``, as ``l2rules.conditions`` is the
catalog function the package exports): the schema's CHECK constraints name its
operator sets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

#: What an operator's operand is.
OPERANDS = {
    "none": "no operand",
    "text": "a value",
    "list": "a '|'-separated list of values",
    "pattern": "a SQL LIKE pattern (% any text, _ one character)",
    "set": "the name of a value set (asn_value_set)",
    "path": "an optical path kind (asn_optical_path)",
    "group": "the name of a constraint group (asn_constraint), in column_name",
}


@dataclass(frozen=True)
class Operator:
    """One operator: its name, its operand, what it means, and the test it negates (None: its own test)."""

    name: str
    operand: str
    meaning: str
    negates: str | None = None


#: Every operator, in the order the docs list them.
OPERATORS: dict[str, Operator] = {o.name: o for o in (
    Operator("present", "none", "the column has a value"),
    Operator("absent", "none", "the column has no value", negates="present"),
    Operator("eq", "text", "the value is the operand"),
    Operator("ne", "text", "the value is not the operand (or there is none)", negates="eq"),
    Operator("in_list", "list", "the value is one of the listed values"),
    Operator("not_in_list", "list", "the value is none of the listed values (or there is none)",
             negates="in_list"),
    Operator("like", "pattern", "the value matches the pattern"),
    Operator("not_like", "pattern", "the value does not match the pattern (or there is none)", negates="like"),
    Operator("in_set", "set", "the value is a member of the named value set"),
    Operator("not_in_set", "set", "the value is not a member of the named set (or there is none)",
             negates="in_set"),
    Operator("path", "path", "the exposure's optical path is allowed for the kind"),
    Operator("not_path", "path", "the exposure's optical path is not allowed for the kind", negates="path"),
    Operator("constraint", "group", "every condition of the named constraint group holds"),
)}

#: The operators whose operand the condition itself holds (no value sets, optical paths or groups to read).
PLAIN_OPERATORS = tuple(name for name, o in OPERATORS.items() if o.operand in ("none", "text", "list", "pattern"))
#: The published table's conditions (``rule_condition.operator``).
PUBLISHED_OPERATORS = PLAIN_OPERATORS
#: The association conditions (``asn_condition.operator``); a constraint group's own conditions take all but
#: ``constraint`` (groups do not nest). ``in_list``/``not_in_list`` are not among them: no association rule
#: of the pipeline tests a literal list (its lists are the named value sets).
ASSOCIATION_OPERATORS = ("present", "absent", "eq", "ne", "in_set", "not_in_set", "like", "not_like",
                         "path", "not_path", "constraint")
#: The published table's operators before migration 0059, by their shared names.
RENAMED = {"equals": "eq", "not_equals": "ne", "in": "in_list", "not_in": "not_in_list"}


@dataclass(frozen=True)
class Context:
    """What the operators that read other tables need, as the caller has it (None: not available).

    ``member(set_name, value)``: the value is in the set (never NULL, false for a NULL value);
    ``path(kind)``: the exposure's optical path is allowed for the kind (never NULL).
    """

    member: Callable[[sa.ColumnElement, sa.ColumnElement], sa.ColumnElement[bool]] | None = None
    path: Callable[[sa.ColumnElement], sa.ColumnElement[bool]] | None = None


NO_CONTEXT = Context()


def _false_on_null(test: sa.ColumnElement) -> sa.ColumnElement[bool]:
    return sa.func.coalesce(test, sa.false())


def _needs(function, name: str):
    if function is None:
        raise ValueError(f"operator {name} reads {OPERANDS[OPERATORS[name].operand]}, which this rule set does "
                         "not have")
    return function


def _literally(got: sa.ColumnElement) -> sa.ColumnElement[str]:
    """The value as a LIKE pattern that matches only itself: a value's own % or _ (NRS_LAMP) is no wildcard."""
    for char in ("!", "%", "_"):
        got = sa.func.replace(got, char, "!" + char)
    return got


#: The tests of their own, over the value and the operand (each false, never NULL, on a NULL value).
_TESTS: Mapping[str, Callable[[sa.ColumnElement, sa.ColumnElement, Context], sa.ColumnElement[bool]]] = {
    "present": lambda got, operand, context: got.is_not(None),
    "eq": lambda got, operand, context: _false_on_null(got == operand),
    "in_list": lambda got, operand, context: _false_on_null(
        (sa.literal("|") + operand + "|").like(sa.literal("%|") + _literally(got) + "|%", escape="!")),
    "like": lambda got, operand, context: _false_on_null(got.like(operand)),
    "in_set": lambda got, operand, context: _needs(context.member, "in_set")(operand, got),
    "path": lambda got, operand, context: _needs(context.path, "path")(operand),
}


def check(name: str, allowed: tuple[str, ...]) -> Operator:
    """The operator named ``name`` if ``allowed`` has it, else a ValueError that says what to write instead."""
    if name in allowed:
        return OPERATORS[name]
    if name in RENAMED and RENAMED[name] in allowed:
        raise ValueError(f"operator {name!r} is now {RENAMED[name]!r} (renamed by migration 0059): write "
                         f"{RENAMED[name]}")
    raise ValueError(f"operator {name!r} is not one of {', '.join(allowed)}")


def compiled(name: str, got: sa.ColumnElement, operand: sa.ColumnElement | str | None,
             context: Context = NO_CONTEXT) -> sa.ColumnElement[bool]:
    """The condition ``got <name> operand`` as boolean SQL, never NULL. ``operand``: an expression, or a value
    (bound as text); ``constraint`` is not compiled here (its group's conditions are, each in its place)."""
    operator = OPERATORS[name]
    if not isinstance(operand, sa.ColumnElement):
        operand = sa.literal(operand, sa.String)
    if operator.negates is not None:
        return sa.not_(compiled(operator.negates, got, operand, context))
    if name not in _TESTS:
        raise ValueError(f"operator {name} is not a test of a value (a constraint group's conditions are)")
    return _TESTS[name](got, operand, context)


def per_row(operator: sa.ColumnElement, got: sa.ColumnElement, operand: sa.ColumnElement,
            names: tuple[str, ...], context: Context = NO_CONTEXT) -> sa.ColumnElement[bool]:
    """A condition row's test, its operator a column: one CASE over the operators ``names`` (the rule set's;
    any other, false)."""
    return sa.case(*((operator == name, compiled(name, got, operand, context))
                     for name in names if name in _TESTS or OPERATORS[name].negates), else_=sa.false())


def describe(column: str, operator: str, value: str | None) -> str:
    """A condition as the work list's reasons and ``explain`` quote it: ``lamp ne NOLAMP``, ``lamp present``."""
    return f"{column} {operator}" + ("" if value is None else f" {value}")


def described(column: sa.ColumnElement, operator: sa.ColumnElement, value: sa.ColumnElement
              ) -> sa.ColumnElement[str]:
    """:func:`describe` in SQL, for a condition row."""
    return column + " " + operator + sa.case((value.is_(None), ""), else_=" " + value)
