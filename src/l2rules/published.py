"""The published table's verdict: each exposure joined with the rule of the published Level 2b table,
in one SQLAlchemy Core query that serves SQLite, PostgreSQL and the reporting views (no Python loop
decides anything about an exposure); and the exposures it has no rule for.

The special of an exposure comes from its flags, in the pipeline's order of
precedence: IS_PSF (PSF), then IS_IMPRT (IMPRINT), then BKGDTARG (BACKGROUND).
The first flag that is set *and* has a rule for the exposure's EXP_TYPE wins;
an exposure whose flags name no existing (exp_type, special) rule falls back to
the exp_type's plain rule (special '').

Below both the work list (``worklist``) and the pipeline's associations (``association``), which
read it: neither imports the other's module for it.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import schema
from ._lazy import pandas as pd
from .catalog import conditions_at, rules_at
from .config import DB
from .migrate import require_migrated
from .operators import described, per_row
from .outputs import query_frame
from .points import Point, in_force

#: Flag columns and the special each one names, in order of precedence.
FLAG_SPECIALS = (("is_psf", "PSF"), ("is_imprt", "IMPRINT"), ("bkgdtarg", "BACKGROUND"))

WORK_ITEM_COLUMNS = [
    "pool", "source_line", "filename", "exp_type", "instrument", "exptype", "special", "asn_type", "level2b_input",
    "program", "obs_num", "rule", "exposure_id",
]
ALL_COLUMNS = [*WORK_ITEM_COLUMNS[:-2], "level2b", "rule", "reason", "exposure_id"]


def instrument_of(exp_type: sa.ColumnElement) -> sa.ColumnElement[str]:
    """The instrument of an EXP_TYPE, by its first three letters ("other" for none), as the views have it."""
    return sa.case(*((sa.func.substr(exp_type, 1, 3) == prefix, name)
                     for prefix, name in schema.INSTRUMENT_OF_PREFIX.items()), else_="other")


def _condition_value(e: sa.Table, column: sa.ColumnElement) -> sa.ColumnElement:
    """The exposure's value of the pool column a condition names."""
    whens = [(c.name, e.c[c.name]) for c in e.columns if isinstance(c.type, sa.Text) or c.name == "filename"]
    return sa.case(*((column == name, value) for name, value in whens), else_=sa.null())


def _condition_passes(value: sa.ColumnElement, cond) -> sa.ColumnElement[bool]:
    """The condition row holds for the value: the shared operators (``operators``), both sides upper-cased
    (the published table's values compare case-insensitively)."""
    return per_row(cond.c.operator, sa.func.upper(value), sa.func.upper(cond.c.value),
                   schema.CONDITION_OPERATORS)


def worklist_query(when: Point | None = None, pool_ids: list[int] | None = None,
                   include_all: bool = False, ids: bool = True) -> sa.Select:
    """The work list as one SELECT: every exposure joined with the rule that applies to it.

    ``when`` picks the catalog point, a day (None: the head rules); ``include_all`` keeps
    the exposures that are not selected, with ``level2b`` false and the reason; ``ids`` False
    leaves ``exposure_id`` empty (a scratch catalog's ids name nothing).
    """
    e, p = schema.exposure, schema.pool
    r = rules_at(when)

    def has_rule(special: str) -> sa.ColumnElement[bool]:  # uncorrelated: one list per special, not a lookup per row
        return e.c.exp_type.in_(sa.select(r.c.exp_type).where(r.c.special == special))

    special = sa.case(*((sa.and_(e.c[flag] == sa.true(), has_rule(name)), name) for flag, name in FLAG_SPECIALS),
                      else_="")
    flagged = sa.select(e.c.id.label("exposure_id"), special.label("special")).subquery("flagged")

    cond = conditions_at(when)
    value = _condition_value(e, cond.c.pool_column)
    describing = described(cond.c.pool_column, cond.c.operator, cond.c.value)
    failing = (
        sa.select(describing)
        .where(cond.c.exp_type == r.c.exp_type, cond.c.special == r.c.special,
               sa.not_(_condition_passes(value, cond)))
        .order_by(cond.c.id).limit(1)
        .scalar_subquery()
    )
    rule_label = sa.case((r.c.special == "", r.c.exp_type), else_=r.c.exp_type + "/" + r.c.special)
    selected = sa.and_(r.c.level2b == sa.true(), failing.is_(None))
    tso = sa.or_(e.c.tsovisit == sa.true(), e.c.exp_type.in_(tso_always()), r.c.asn_type.like("tso%"))
    level2b_input = e.c.stem + sa.case((tso, "_rateints.fits"), else_="_rate.fits")
    reason = sa.case(
        (r.c.exp_type.is_(None), "no rule for exp_type " + e.c.exp_type),
        (r.c.level2b != sa.true(), "rule " + rule_label + " says not processed"),
        (failing.is_not(None), "rule " + rule_label + " condition failed: " + failing),
        else_="matched rule " + rule_label,
    )
    columns = [
        p.c.name.label("pool"), e.c.source_line, e.c.filename, e.c.exp_type,
        instrument_of(e.c.exp_type).label("instrument"), r.c.exptype,
        flagged.c.special, r.c.asn_type, level2b_input.label("level2b_input"), e.c.program, e.c.obs_num,
    ]
    if include_all:
        columns += [sa.case((selected, sa.true()), else_=sa.false()).label("level2b"),
                    rule_label.label("rule"), reason.label("reason")]
    else:
        columns += [rule_label.label("rule")]
    columns += [(e.c.id if ids else sa.null()).label("exposure_id")]
    query = (
        sa.select(*columns)
        .select_from(e)
        .join(p, p.c.id == e.c.pool_id)
        .join(flagged, flagged.c.exposure_id == e.c.id)
        .outerjoin(r, sa.and_(r.c.exp_type == e.c.exp_type, r.c.special == flagged.c.special))
        .order_by(p.c.name, e.c.source_line)
    )
    # An exposure a redelivery of its pool left out is on no work list (the pool is its latest delivery).
    query = query.where(e.c.withdrawn_at.is_(None))
    if not include_all:
        query = query.where(selected)
    if pool_ids is not None:
        query = query.where(e.c.pool_id.in_(pool_ids))
    return query


def tso_always() -> sa.Select:
    """The exposure types that are always time series (their Level 2b input is the _rateints product): the
    pipeline's set ``TSO_ALWAYS`` (``asn_value_set``) as the head has it, at every point, since the published
    table's verdict is older than the dated association rules (uncorrelated: one list, not a lookup per row)."""
    v = schema.asn_value_set
    return sa.select(sa.func.upper(v.c.value)).where(v.c.set_name == "TSO_ALWAYS", in_force(v, None))


def scratch_tables_allowed(conn: sa.Connection) -> None:
    """On PostgreSQL, this transaction may create the evaluation's temporary tables although the database is
    read-only by default (``default_transaction_read_only``): a work list read from a read-only catalog is
    still evaluated, in temporary tables only, and writes nothing else (it only SELECTs from the catalog). The
    first statement of the transaction. A hot standby refuses even that: one line, exit 3, as any write."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ WRITE")


def plan_without_jit(conn: sa.Connection) -> None:
    """On PostgreSQL, no JIT compilation for this connection's transaction.

    The work list is many small expressions over every exposure: for a million of them
    PostgreSQL's JIT spent 2.7 s compiling a query that runs in 2 s without it.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")


def without_rule(e: sa.Table) -> sa.ColumnElement[bool]:
    """The exposure's EXP_TYPE has no rule in the published table (one list of the rules' types, not a
    lookup per exposure; both columns are NOT NULL, so NOT IN is never unknown)."""
    return e.c.exp_type.not_in(sa.select(schema.rule.c.exp_type))


def unmatched(db: DB = None) -> pd.DataFrame:
    """Exposures whose EXP_TYPE has no rule in the catalog, per pool and exp_type, with counts."""
    engine = require_migrated(db)
    e, p = schema.exposure, schema.pool
    query = (
        sa.select(p.c.name.label("pool"), e.c.exp_type, sa.func.count().label("exposures"),
                  sa.func.min(e.c.filename).label("example"))
        .join(p, p.c.id == e.c.pool_id)
        .where(without_rule(e), e.c.withdrawn_at.is_(None))
        .group_by(p.c.name, e.c.exp_type)
        .order_by(p.c.name, e.c.exp_type)
    )
    with engine.connect() as conn:
        return query_frame(conn, query, ["pool", "exp_type", "exposures", "example"])
