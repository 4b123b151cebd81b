"""Level 2b associations as the jwst pipeline builds them, evaluated in SQL.

The published table (``rule``) says which exposure types are processed; the
pipeline (jwst 3.0.0, ``asn_generate`` with ``rules_level2b``) applies more
conditions, all kept as data in the ``asn_*`` tables (migration 0009):

* ``asn_rule``: the pipeline's association rules, with the set of exposure
  types each accepts as science (``asn_value_set``);
* ``asn_condition``: predicates on pool columns, per rule and subject (the
  science, or a companion kind): a common part (alt 0) and alternatives;
* ``asn_companion`` / ``asn_companion_key``: the companions each rule attaches
  (backgrounds, imprints, nods, TA confirms, WFSS direct images), how they
  attach, and the columns they share with the science;
* ``asn_optical_path``: valid NIRSpec paths per detector, NIRCam coronagraph
  detectors without the occulter;
* ``asn_candidate_policy``: which candidate types keep which associations.

Everything that decides is SQL (SQLAlchemy Core, SQLite and PostgreSQL):
Python only reads the pool (``inventory``) and formats the result. The
evaluation runs in stages, each one INSERT ... SELECT into a temporary table,
which keeps every statement small enough for the planners:

1. ``xe``: the pool's exposures, values normalised (lower case, empty values
   NULL) with derived columns (member type, TSO, optical mode); ``x``: their
   candidates - an exposure belongs to every candidate whose id occurs in its
   ASN_CANDIDATE text, as in the pipeline;
2. ``applicable``/``sci_rule``/``sci``: the rules whose science conditions an
   exposure meets (evaluated once per exposure), then per candidate;
3. ``kinds``/``cpool``/``pairs``: companions per science, eligible by their own
   conditions, matched on the grouping keys, attached as the pipeline's
   processing order allows, overlapping nods left out;
4. ``asn0``/``members0``/``mem0``/``asn1``: associations (WFSS ones need a
   direct image), their members after imprint pruning, the candidate policy;
5. ``asn2``/``members``/``asn3``/``asn4``: the discovery pass's copies, member
   names (``_rate``/``_rateints``, WFSS level-3 products), duplicate pruning,
   sequence numbers.

The pipeline builds associations in one pass over the pool, so a few of its
results depend on row order; ``asn_companion.attach`` states the rules l2rules
follows instead. Other approximations: optional-equal keys compare with the
science only; the nearest direct image is by EXPSPCIN, then pool order;
sequence numbers follow reverse creation order (a nod group is created at
its first nod).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from ._lazy import pandas as pd
from . import schema
from .catalog import in_force, resolve_version
from .config import DB, L2RulesError
from .inventory import FLAG_FALSE, FLAG_NULL, exposure_stem, load
from .migrate import require_migrated

#: Values the pipeline reads as "not set" (after lower-casing): the loader's empty and false flag texts.
EMPTY = tuple(sorted(FLAG_NULL | FLAG_FALSE))
#: Pool columns the conditions read.
POOL_COLUMNS = ("filename", "program", "exp_type", "pntgtype", "instrume", "detector", "filter", "band", "pupil",
                "grating", "fxd_slit", "subarray", "channel", "tsovisit", "visitype", "dms_note", "is_psf",
                "is_imprt", "bkgdtarg", "patttype", "patt_num", "numdthpt", "subpxpns", "subpxpts", "expspcin",
                "mostilno", "msametfl", "msastate", "opmode", "lamp", "targetid", "obs_id", "dithptin", "exposerr")
#: Columns the pipeline needs in a pool; without them it makes no association at all.
REQUIRED_POOL_COLUMNS = ("asn_candidate", "targetid")
#: Columns derived in SQL that conditions may name besides the pool columns.
DERIVED_COLUMNS = ("cand_raw", "member_type", "sci_type", "is_tso", "opt_filter",
                   "opt_pupil", "subpx_fs", "subpx_ov", "slit_class", "exp_detector", "exp_pupil", "dms_note_exp")
#: Every column a condition or key may name.
ACCESSIBLE = tuple(c for c in POOL_COLUMNS) + DERIVED_COLUMNS
DEGRADED_OK = "No known degraded exposures in association."
DEGRADED_NOTOK = ("One or more members have an error associated with them."
                  "\nDetails can be found in the member.exposerr attribute.")

#: The rules an evaluation reads: per connection, temporary copies of the ``asn_*`` rows in force at the
#: catalog point asked for (constraint groups expanded), made by :meth:`_Stages.stage_rules` first.
_rules_md = sa.MetaData()


def _staged_copy(table: sa.Table) -> sa.Table:
    columns = [sa.Column(c.name, c.type) for c in table.columns if c.name not in ("valid_from", "valid_to")]
    return sa.Table("asn_tmp_rules_" + table.name.removeprefix("asn_"), _rules_md, *columns, prefixes=["TEMPORARY"])


vs, mt, ar = (_staged_copy(t) for t in (schema.asn_value_set, schema.asn_member_type, schema.asn_rule))
cond_t, comp_t, key_t = (_staged_copy(t) for t in (schema.asn_condition, schema.asn_companion,
                                                   schema.asn_companion_key))
path_t, policy_t, param_t = (_staged_copy(t) for t in (schema.asn_optical_path, schema.asn_candidate_policy,
                                                       schema.asn_parameter))
_STAGED_RULES = ((schema.asn_value_set, vs), (schema.asn_member_type, mt), (schema.asn_rule, ar),
                 (schema.asn_companion, comp_t), (schema.asn_companion_key, key_t), (schema.asn_optical_path, path_t),
                 (schema.asn_candidate_policy, policy_t), (schema.asn_parameter, param_t))


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


def _contains(haystack, needle):
    return _Contains(haystack, needle)


class AssociationError(L2RulesError):
    exit_code = 2


# --- SQL building blocks ------------------------------------------------------------------------

def _norm(col: sa.ColumnElement) -> sa.ColumnElement:
    low = sa.func.lower(sa.func.trim(col))
    return sa.case((col.is_(None), None), (low.in_(EMPTY), None), else_=low)


def _in_set(set_name, expr) -> sa.Exists:
    return sa.exists().where(vs.c.set_name == set_name, vs.c.value == expr).correlate_except(vs)


def _zpad(expr, n: int):
    return sa.case(*[(sa.func.length(expr) == k, sa.literal("0" * (n - k)) + expr) for k in range(1, n)],
                   else_=expr)


def _to_int(expr):
    digits = sa.and_(expr.is_not(None), expr != "", sa.func.ltrim(expr, "0123456789") == "")
    return sa.case((digits, sa.cast(expr, sa.Integer)), else_=None)


def _flag_text(col):
    return sa.case((col == sa.true(), "t"), else_=None)


def _accessor(row, name_col, columns=ACCESSIBLE):
    """The value of the column whose name is in ``name_col`` (a condition's or key's column_name).

    ``columns``: the names that can occur (by default every accessible column).
    """
    return sa.case(*[(name_col == c, row.c[c]) for c in columns], else_=None)


def _named_columns(conn: sa.Connection, table: sa.Table) -> list[str]:
    """The accessible columns that the catalog's conditions or keys name (keeps the SQL small)."""
    named = set(conn.execute(sa.select(table.c.column_name).distinct()).scalars())
    return [c for c in ACCESSIBLE if c in named]


def _path_test(row, kind):
    """The row's optical path is allowed for ``kind``: an allowed row matches and no excluding one does."""
    p = path_t.c

    def match(allowed: bool):
        conds = [p.path_kind == kind, p.allowed == allowed]
        for col in ("slit_class", "opmode", "grating", "filter", "pupil", "lamp", "detector"):
            conds.append(sa.or_(p[col].is_(None), p[col] == row.c[col]))
        return sa.exists().where(*conds).correlate_except(path_t)

    return sa.and_(match(True), sa.not_(match(False)))


def _cond_holds(row, c, columns):
    """A condition row ``c`` evaluated on an exposure row: boolean SQL."""
    v = _accessor(row, c.column_name, columns)
    member = sa.exists().where(vs.c.set_name == c.value, vs.c.value == v).correlate_except(vs)
    return sa.case(
        (c.operator == "present", v.is_not(None)),
        (c.operator == "absent", v.is_(None)),
        (c.operator == "eq", sa.func.coalesce(v == c.value, sa.false())),
        (c.operator == "ne", sa.or_(v.is_(None), v != c.value)),
        (c.operator == "in_set", member),
        (c.operator == "not_in_set", sa.not_(member)),
        (c.operator == "like", sa.func.coalesce(v.like(c.value), sa.false())),
        (c.operator == "not_like", sa.or_(v.is_(None), v.not_like(c.value))),
        (c.operator == "path", _path_test(row, c.value)),
        (c.operator == "not_path", sa.not_(_path_test(row, c.value))),
        else_=sa.false())


def _cond_ok(row, c, columns):
    return sa.case((_cond_holds(row, c, columns), 1), else_=0)


def _holding(evaluated, *keys) -> sa.Select:
    """The ``keys`` whose conditions hold: all of alt 0, and all of some alternative when there are any.

    ``evaluated`` has one row per (keys, alt, condition) with ``ok`` 1 or 0.
    """
    per_alt = (sa.select(*keys, evaluated.c.alt, sa.func.min(evaluated.c.ok).label("ok"))
               .group_by(*keys, evaluated.c.alt).subquery())
    cols = [per_alt.c[k.name] for k in keys]
    common = sa.func.min(sa.case((per_alt.c.alt == 0, per_alt.c.ok), else_=1))
    some_alternative = sa.func.coalesce(sa.func.max(sa.case((per_alt.c.alt > 0, per_alt.c.ok), else_=None)), 1)
    return sa.select(*cols).group_by(*cols).having(sa.and_(common == 1, some_alternative == 1))


def _key_ok(xs, xo, k, columns):
    sv, ov = _accessor(xs, k.column_name, columns), _accessor(xo, k.column_name, columns)
    holds = sa.case(
        (k.match == "eq", sa.func.coalesce(sv == ov, sa.false())),
        (k.match == "opt_eq", sa.or_(sv.is_(None), ov.is_(None), sv == ov)),
        (k.match == "ne", sa.or_(sv.is_(None), ov.is_(None), sv != ov)),
        (k.match == "same", sv.is_not_distinct_from(ov)),
        (k.match == "lacks", sa.and_(sv.is_not(None), ov.is_not(None), sa.not_(_contains(ov, sv)))),
        else_=sa.false())
    return sa.case((holds, 1), else_=0)


def _overlap(xs, xo, policy):
    """Another science nod ``xo`` overlaps the science ``xs`` (so it cannot serve as its background)."""
    sp, sn, ss = _to_int(xs.c.patt_num), _to_int(xs.c.numdthpt), _to_int(xs.c.subpx_ov)
    op_, os_ = _to_int(xo.c.patt_num), _to_int(xo.c.subpx_ov)
    bad = sa.or_(sp.is_(None), sn.is_(None), ss.is_(None), op_.is_(None), os_.is_(None), ss == 0, os_ == 0)
    nonzero = lambda n: sa.case((n == 0, 1), else_=n)  # noqa: E731 - guarded by ``bad`` anyway
    pps, ppo = (sp - 1) // nonzero(ss), (op_ - 1) // nonzero(os_)
    fs = sa.case((bad, sa.true()), (pps == ppo, sa.true()),
                 (sa.and_(xs.c.fxd_slit == "s1600a1", sn // nonzero(ss) == 5, sa.between(pps - ppo, -1, 1)),
                  sa.true()),
                 else_=sa.false())
    msa = sa.case((bad, sa.false()), (pps == ppo, sa.true()), else_=sa.false())
    other_target = sa.func.coalesce(xs.c.targetid, "") != sa.func.coalesce(xo.c.targetid, "")
    return sa.case((sa.and_(policy.in_(["fs", "msa"]), other_target), sa.true()),
                   (policy == "fs", fs), (policy == "msa", msa), else_=sa.false())


def _exposures(pool_id: int):
    """One row per exposure of the pool: normalised values and derived columns."""
    e = schema.exposure
    cols = {}
    for c in POOL_COLUMNS:
        cols[c] = _flag_text(e.c[c]) if c in schema.FLAG_COLUMNS else _norm(e.c[c])
    base = sa.select(e.c.id.label("eid"), e.c.source_line.label("row_no"), sa.func.lower(e.c.stem).label("stem"),
                     sa.func.lower(sa.func.coalesce(e.c.asn_candidate, "")).label("cand_raw"),
                     *[v.label(k) for k, v in cols.items()]).where(e.c.pool_id == pool_id, e.c.withdrawn_at.is_(None)).cte("xe")
    x = base.c
    mapped = sa.select(mt.c.member_type).where(mt.c.exp_type == x.exp_type).scalar_subquery()
    member_type = sa.case(
        (sa.and_(x.pntgtype.is_not(None), x.pntgtype != "science"), x.pntgtype),
        (mapped.is_not(None), mapped),
        (x.is_psf.is_not(None), "psf"), (x.is_imprt.is_not(None), "imprint"),
        (x.bkgdtarg.is_not(None), "background"), else_="science")
    tso = sa.and_(x.pntgtype == "science", sa.or_(x.tsovisit == "t", _in_set("TSO_ALWAYS", x.exp_type)))
    joined = lambda a, b: sa.func.coalesce(a, "") + ":" + sa.func.coalesce(b, "")  # noqa: E731
    derived = sa.select(
        base,
        member_type.label("member_type"),
        sa.case((tso, "y"), else_="n").label("is_tso"),
        sa.func.coalesce(x.filter, x.band).label("opt_filter"),
        sa.func.coalesce(x.pupil, x.grating).label("opt_pupil"),
        sa.func.coalesce(x.subpxpns, x.subpxpts).label("subpx_fs"),
        sa.func.coalesce(x.subpxpts, x.subpxpns).label("subpx_ov"),
        sa.case((x.fxd_slit == "s200b1", "s200b1"), else_="a").label("slit_class"),
        joined(x.exp_type, x.detector).label("exp_detector"),
        joined(x.exp_type, x.pupil).label("exp_pupil"),
        joined(x.dms_note, x.exp_type).label("dms_note_exp"),
    ).cte("xd")
    return sa.select(derived, sa.case((derived.c.member_type == "psf", "science"),
                                      else_=derived.c.member_type).label("sci_type"))


def _candidates(pool_id: int):
    e, ec = schema.exposure, schema.exposure_candidate
    return (sa.select(ec.c.cand_id, ec.c.cand_type, sa.func.min(e.c.source_line * 1000 + ec.c.position).label("cand_ord"))
            .join(e, e.c.id == ec.c.exposure_id).where(e.c.pool_id == pool_id, e.c.withdrawn_at.is_(None))
            .group_by(ec.c.cand_id, ec.c.cand_type)).cte("cand")


class _Stages:
    """Materialises each stage in a temporary table on one connection; dropped on close."""

    def __init__(self, conn: sa.Connection):
        self.conn, self.md, self.tables = conn, sa.MetaData(), {}
        if conn.dialect.name == "postgresql":
            # the statements are small but their estimates are not: JIT compilation would cost more
            # than it saves (for this transaction only)
            conn.execute(sa.text("SET LOCAL jit = off"))

    def stage_rules(self, when: dt.date | None) -> None:
        """The association rules in force on day ``when`` (the head when None), as the tables above."""
        for source, copy in _STAGED_RULES:
            self._fill(copy, sa.select(*(source.c[c.name] for c in copy.columns)).where(in_force(source, when)))
        c, g = schema.asn_condition, schema.asn_constraint
        plain = sa.select(*(c.c[col.name] for col in cond_t.columns)).where(in_force(c, when),
                                                                             c.c.operator != "constraint")
        # a 'constraint' condition stands for every condition of its group, at its place (seq * 100 + n)
        grouped = (sa.select(c.c.rule_name, c.c.subject, c.c.alt, c.c.seq * 100 + g.c.seq, g.c.column_name,
                             g.c.operator, g.c.value)
                   .join(g, g.c.name == c.c.column_name)
                   .where(in_force(c, when), c.c.operator == "constraint", in_force(g, when)))
        self._fill(cond_t, sa.union_all(plain, grouped))
        if not self.conn.execute(sa.select(sa.func.count()).select_from(ar)).scalar():
            raise AssociationError(f"no association rules were in force on {when}: the catalog's association "
                                   "rules start with jwst 1.8.0 (2022-10-10)")

    def parameter(self, name: str) -> str | None:
        return self.conn.execute(sa.select(param_t.c.value).where(param_t.c.name == name)).scalar()

    def _fill(self, table: sa.Table, select) -> None:
        table.create(self.conn)
        self.conn.execute(table.insert().from_select([c.name for c in table.columns], select))
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(sa.text(f"ANALYZE {table.name}"))
        self.tables[table.name] = table

    def __call__(self, select: sa.Select | sa.CompoundSelect, name: str) -> sa.Table:
        cols = [sa.Column(c.name, sa.String if isinstance(c.type, sa.types.NullType) else c.type)
                for c in select.selected_columns]
        table = sa.Table(f"asn_tmp_{name}", self.md, *cols, prefixes=["TEMPORARY"])
        table.create(self.conn)
        self.conn.execute(table.insert().from_select([c.name for c in cols], select))
        if self.conn.dialect.name == "postgresql":
            # temporary tables get no statistics by themselves; without them the planner guesses
            # one row and picks nested loops over thousands
            self.conn.execute(sa.text(f"ANALYZE {table.name}"))
        self.tables[name] = table
        return table

    def close(self) -> None:
        for table in reversed(list(self.tables.values())):
            table.drop(self.conn)
        self.tables = {}


def _run(conn: sa.Connection, pool_id: int, st: _Stages) -> sa.Select:
    """Build every stage for one pool; returns the final SELECT (one row per member)."""
    cond_cols, key_cols = _named_columns(conn, cond_t), _named_columns(conn, key_t)
    # 1. exposures (normalised, derived columns) and their candidates: an exposure belongs to every
    #    candidate whose id occurs in its ASN_CANDIDATE text, as in the pipeline
    xe = st(_exposures(pool_id), "xe")
    cand = _candidates(pool_id)
    x = st(sa.select(xe.c.eid, cand.c.cand_id, cand.c.cand_type, cand.c.cand_ord)
           .join(cand, _contains(xe.c.cand_raw, cand.c.cand_id)), "x")
    # 2. science: some alternative of the rule's science conditions holds (conditions read the
    #    exposure only, so they are evaluated once per exposure, not per candidate)
    r, c = ar.c, cond_t.c
    # (the (exposure, rule) pairs are staged first: joined with the conditions at once, planners
    #  would test the exposure type set once per condition instead of once per rule)
    applicable = st(sa.select(xe.c.eid, r.name.label("rule_name")).select_from(
        xe.join(ar, sa.or_(r.science_set.is_(None), _in_set(r.science_set, xe.c.exp_type)))), "applicable")
    cv = (sa.select(xe.c.eid, applicable.c.rule_name, c.alt, _cond_ok(xe, c, cond_cols).label("ok"))
          .select_from(applicable.join(xe, xe.c.eid == applicable.c.eid)
                       .join(cond_t, sa.and_(c.rule_name == applicable.c.rule_name, c.subject == "science")))
          ).cte("cv")
    sci_rule = st(_holding(cv, cv.c.eid, cv.c.rule_name), "sci_rule")
    sci = st(sa.select(x.c.eid, x.c.cand_id, sci_rule.c.rule_name).join(sci_rule, sci_rule.c.eid == x.c.eid), "sci")
    # 3. companions: eligible by their own conditions (only for rules that have some science),
    #    then matched with the science on the grouping keys
    k = comp_t.c
    used = k.rule_name.in_(sa.select(sci_rule.c.rule_name).distinct())
    typed = sa.or_(k.exp_type_set.is_(None), _in_set(k.exp_type_set, xe.c.exp_type))
    kinds = st(sa.select(xe.c.eid, k.rule_name, k.kind)
               .select_from(xe.join(comp_t, sa.and_(k.source == "pool", used, typed))), "kinds")
    ce = (sa.select(xe.c.eid, kinds.c.rule_name, kinds.c.kind, c.alt, _cond_ok(xe, c, cond_cols).label("ok"))
          .select_from(kinds.join(xe, xe.c.eid == kinds.c.eid)
                       .join(cond_t, sa.and_(c.rule_name == kinds.c.rule_name, c.subject == kinds.c.kind)))).cte("ce")
    eligible = _holding(ce, ce.c.eid, ce.c.rule_name, ce.c.kind).subquery()
    cpool = st(sa.union(
        sa.select(x.c.eid, x.c.cand_id, eligible.c.rule_name, eligible.c.kind).join(eligible, eligible.c.eid == x.c.eid),
        sa.select(sci.c.eid, sci.c.cand_id, sci.c.rule_name, k.kind)
        .join(comp_t, sa.and_(k.rule_name == sci.c.rule_name, k.source == "science")),
    ), "cpool")
    xs, xo = xe.alias("xs"), xe.alias("xo")
    kk = key_t.c
    pk = (sa.select(sci.c.eid, sci.c.cand_id, sci.c.rule_name, cpool.c.kind, cpool.c.eid.label("oid"),
                    _key_ok(xs, xo, kk, key_cols).label("ok"))
          .select_from(sci.join(cpool, sa.and_(cpool.c.cand_id == sci.c.cand_id, cpool.c.rule_name == sci.c.rule_name,
                                               cpool.c.eid != sci.c.eid))
                       .join(xs, xs.c.eid == sci.c.eid).join(xo, xo.c.eid == cpool.c.eid)
                       .join(key_t, sa.and_(kk.rule_name == sci.c.rule_name, kk.kind == cpool.c.kind)))).cte("pk")
    matched = st(sa.select(pk.c.eid, pk.c.cand_id, pk.c.rule_name, pk.c.kind, pk.c.oid)
                 .group_by(pk.c.eid, pk.c.cand_id, pk.c.rule_name, pk.c.kind, pk.c.oid)
                 .having(sa.func.min(pk.c.ok) == 1), "matched")
    # a nod group is made when its first science nod is read: the row that orders its associations
    xg = xe.alias("xg")
    group_row = (sa.select(matched.c.eid, matched.c.cand_id, matched.c.rule_name, sa.func.min(xg.c.row_no).label("row"))
                 .select_from(matched.join(comp_t, sa.and_(comp_t.c.rule_name == matched.c.rule_name,
                                                           comp_t.c.kind == matched.c.kind))
                              .join(xg, xg.c.eid == matched.c.oid))
                 .where(comp_t.c.source == "science")
                 .group_by(matched.c.eid, matched.c.cand_id, matched.c.rule_name)).subquery()
    # the first science of each rule in each candidate (for companions that attach in pool order)
    xf = xe.alias("xf")
    first = (sa.select(sci.c.cand_id, sci.c.rule_name, sa.func.min(xf.c.row_no).label("row_no"))
             .select_from(sci.join(xf, xf.c.eid == sci.c.eid)).group_by(sci.c.cand_id, sci.c.rule_name)).subquery()
    is_first = xs.c.row_no == first.c.row_no
    attached = sa.or_(k.attach == "always",
                      sa.and_(k.attach == "order", sa.or_(xo.c.row_no > xs.c.row_no, is_first)),
                      sa.and_(k.attach == "after", xo.c.row_no > xs.c.row_no),
                      sa.and_(k.attach == "leading", xo.c.row_no < xs.c.row_no, is_first),
                      k.attach == "first")
    # 'first': a companion goes to the earliest science it suits, and each science keeps its first one
    owner = sa.func.row_number().over(partition_by=[matched.c.cand_id, matched.c.rule_name, matched.c.kind,
                                                    matched.c.oid], order_by=xs.c.row_no)
    ranked0 = (sa.select(matched, k.role, k.source, k.attach, r.wfss, xs.c.row_no.label("sci_row"),
                         xo.c.row_no.label("row"), owner.label("owner"))
              .select_from(matched.join(comp_t, sa.and_(k.rule_name == matched.c.rule_name, k.kind == matched.c.kind))
                           .join(ar, r.name == matched.c.rule_name)
                           .join(xs, xs.c.eid == matched.c.eid).join(xo, xo.c.eid == matched.c.oid)
                           .join(first, sa.and_(first.c.cand_id == matched.c.cand_id,
                                                first.c.rule_name == matched.c.rule_name)))
              .where(attached, sa.or_(k.source != "science", sa.not_(_overlap(xs, xo, r.nod_overlap))))).subquery()
    kept0 = sa.select(ranked0).where(sa.or_(ranked0.c.attach != "first", ranked0.c.owner == 1)).subquery()
    rank = sa.func.row_number().over(partition_by=[kept0.c.eid, kept0.c.cand_id, kept0.c.rule_name, kept0.c.kind],
                                     order_by=kept0.c.row)
    ranked = sa.select(kept0, rank.label("rank")).subquery()
    pairs = st(sa.select(*[c for c in ranked.c if c.name not in ("attach", "rank", "owner", "row")])
               .where(sa.or_(ranked.c.attach != "first", ranked.c.rank == 1)), "pairs")
    # 4. WFSS: the nearest following direct image (parallel: the first long-wave one); none -> no association
    diff = _to_int(xo.c.expspcin) - _to_int(xs.c.expspcin)
    order = sa.case(
        (pairs.c.wfss == "parallel",
         sa.case((xo.c.filename.contains("long"), 0), else_=1) * 1000000 + xo.c.row_no),
        (diff > 0, diff), else_=1000000 + xo.c.row_no)
    direct = (sa.select(pairs.c.eid, pairs.c.cand_id, pairs.c.rule_name, pairs.c.oid,
                        sa.func.row_number().over(partition_by=[pairs.c.eid, pairs.c.cand_id, pairs.c.rule_name],
                                                  order_by=order).label("rk"))
              .select_from(pairs.join(xs, xs.c.eid == pairs.c.eid).join(xo, xo.c.eid == pairs.c.oid))
              .where(pairs.c.role == "direct_image")).cte("direct")
    chosen = sa.select(direct).where(direct.c.rk == 1).cte("chosen")
    # an exposure that joined, with its own type, an earlier science's association of a rule does not
    # start one of its own for that rule (the pipeline has already used it when it reaches it)
    # (one level deep: a science that itself joined an earlier one does not count)
    xj = xe.alias("xj")
    joins = (sa.select(pairs.c.eid, pairs.c.cand_id, pairs.c.rule_name, pairs.c.oid)
             .select_from(pairs.join(xj, xj.c.eid == pairs.c.oid))
             .where(pairs.c.source == "pool", pairs.c.role == "own", pairs.c.sci_row < xj.c.row_no)).cte("joins")
    j2 = joins.alias("j2")
    by_unjoined = sa.select(joins).where(sa.not_(sa.exists().where(
        j2.c.oid == joins.c.eid, j2.c.cand_id == joins.c.cand_id, j2.c.rule_name == joins.c.rule_name
    ).correlate_except(j2))).cte("joins_kept")
    joined_earlier = (sa.exists().where(by_unjoined.c.cand_id == sci.c.cand_id,
                                        by_unjoined.c.rule_name == sci.c.rule_name, by_unjoined.c.oid == sci.c.eid)
                      .correlate_except(by_unjoined))
    asn0 = st(sa.select(sci.c.eid, sci.c.cand_id, sci.c.rule_name, r.asn_type, r.wfss, r.rate_policy,
                        chosen.c.oid.label("direct_id"))
              .select_from(sci.join(ar, r.name == sci.c.rule_name).outerjoin(chosen, _eq(_akey(chosen), _akey(sci))))
              .where(sa.or_(r.wfss.is_(None), chosen.c.oid.is_not(None)), sa.not_(joined_earlier)), "asn0")
    members0 = st(sa.union(
        sa.select(asn0.c.eid, asn0.c.cand_id, asn0.c.rule_name, asn0.c.eid.label("mid"),
                  sa.literal("science").label("role"), sa.literal("science").label("source")),
        sa.select(pairs.c.eid, pairs.c.cand_id, pairs.c.rule_name, pairs.c.oid,
                  sa.case((pairs.c.role == "own", xo.c.sci_type), else_=pairs.c.role), pairs.c.source)
        .select_from(pairs.join(xo, xo.c.eid == pairs.c.oid))
        .where(pairs.c.role != "direct_image"),
    ), "members0")
    mem0 = st(_imprints_pruned(members0, xe, st), "mem0")
    # candidate-type policy: the rule's own row for the candidate type, else the '*' row
    cp, cp2 = policy_t.alias("cp"), policy_t.alias("cp2")
    xa, xc = xe.alias("xa"), xe.alias("xc")
    # (nested EXISTS name what they correlate: SQLAlchemy only correlates one level up by itself)
    has_background = (sa.exists().where(_eq(_akey(mem0), _akey(asn0)), xa.c.eid == mem0.c.mid,
                                        xa.c.member_type == "background").correlate_except(mem0, xa))
    own_row = (sa.exists().where(cp2.c.candidate_type == x.c.cand_type, cp2.c.rule_name == asn0.c.rule_name)
               .correlate_except(cp2))
    kept = sa.exists().where(
        cp.c.candidate_type == x.c.cand_type,
        sa.or_(cp.c.rule_name == asn0.c.rule_name, sa.and_(cp.c.rule_name == "*", sa.not_(own_row))),
        sa.or_(cp.c.id_pattern.is_(None), x.c.cand_id.like(cp.c.id_pattern)),
        sa.or_(cp.c.requirement == "always", sa.and_(cp.c.requirement == "background_member", has_background))
    ).correlate_except(cp)
    made_at = sa.case((group_row.c.row < xc.c.row_no, group_row.c.row), else_=xc.c.row_no)
    asn1 = st(sa.select(asn0, x.c.cand_type, x.c.cand_ord, xc.c.row_no, made_at.label("made_at"), xc.c.program,
                        xc.c.tsovisit, xc.c.stem.label("product"), xc.c.targetid, xc.c.instrume, xc.c.subarray)
              .select_from(asn0.join(x, sa.and_(x.c.eid == asn0.c.eid, x.c.cand_id == asn0.c.cand_id))
                           .join(xc, xc.c.eid == asn0.c.eid)
                           .outerjoin(group_row, _eq(_akey(group_row), _akey(asn0)))).where(kept), "asn1")
    # 5. the pipeline's discovery pass adds a copy of each parallel WFSS association
    asn2 = st(sa.union_all(
        sa.select(asn1, sa.literal("candidate_").label("prefix"), asn1.c.cand_id.label("asn_id")),
        sa.select(asn1, sa.literal("discover_"), sa.literal("a3001")).where(asn1.c.wfss == "parallel"),
    ), "asn2")
    members = st(sa.union_all(_exposure_members(asn2, mem0, xe), *_level3_members(asn2, xe)), "members")
    return _pruned(asn2, members, st)


def _imprints_pruned(m, xe, st):
    """Members without the imprints the pipeline prunes (rules with ``imprint_pruning``).

    The science set is the science and, for nod rules, the group's other science nods. Imprints whose
    background flag differs from the science set's are left alone; among the others, when some share
    a target with the science set, those that do not are dropped; then, when there are more of them
    than sciences and some share a dither position with a science, those that share none are dropped.
    """
    key = _akey
    xs, xi = xe.alias("xsci"), xe.alias("ximp")
    sciset = (sa.select(*key(m), m.c.mid, xs.c.bkgdtarg, sa.func.coalesce(xs.c.targetid, "").label("targetid"),
                        sa.func.coalesce(xs.c.dithptin, "").label("dithptin"))
              .select_from(m.join(xs, xs.c.eid == m.c.mid).join(ar, ar.c.name == m.c.rule_name))
              .where(ar.c.imprint_pruning == sa.true(), sa.or_(m.c.role == "science", m.c.source == "science"))
              ).cte("sciset")
    background = (sa.select(*key(sciset), sa.func.count().label("n"),
                            sa.func.max(sa.case((sciset.c.bkgdtarg == "t", 1), else_=0)).label("bkg"))
                  .group_by(*key(sciset))).cte("sciset_flag")
    # the imprints examined: same background status as the science set
    examined = (sa.select(*key(m), m.c.mid, background.c.n,
                          sa.func.coalesce(xi.c.targetid, "").label("targetid"),
                          sa.func.coalesce(xi.c.dithptin, "").label("dithptin"))
                .select_from(m.join(xi, xi.c.eid == m.c.mid).join(background, _eq(key(background), key(m))))
                .where(m.c.role == "imprint",
                       sa.case((xi.c.bkgdtarg == "t", 1), else_=0) == background.c.bkg)).cte("examined")
    s1 = sciset.alias("s1")
    on_target = sa.exists().where(_eq(key(s1), key(examined)), s1.c.targetid == examined.c.targetid
                                  ).correlate_except(s1)
    flagged = sa.select(examined, sa.case((on_target, 1), else_=0).label("on_target")).cte("examined_t")
    any_on_target = (sa.select(*key(flagged), sa.func.max(flagged.c.on_target).label("any"))
                     .group_by(*key(flagged))).cte("any_on_target")
    kept1 = (sa.select(flagged).join(any_on_target, _eq(key(any_on_target), key(flagged)))
             .where(sa.or_(any_on_target.c.any == 0, flagged.c.on_target == 1))).cte("kept1")
    s2 = sciset.alias("s2")
    on_dither = sa.exists().where(_eq(key(s2), key(kept1)), s2.c.dithptin == kept1.c.dithptin).correlate_except(s2)
    dithered = sa.select(kept1, sa.case((on_dither, 1), else_=0).label("on_dither")).cte("kept1_d")
    per_asn = (sa.select(*key(dithered), sa.func.count().label("n_imprints"),
                         sa.func.max(dithered.c.on_dither).label("any"))
               .group_by(*key(dithered))).cte("kept1_n")
    kept2 = (sa.select(*key(dithered), dithered.c.mid).join(per_asn, _eq(key(per_asn), key(dithered)))
             .where(sa.or_(sa.not_(sa.and_(dithered.c.n >= 1, dithered.c.n < per_asn.c.n_imprints, per_asn.c.any == 1)),
                           dithered.c.on_dither == 1))).cte("kept2")
    k2 = kept2.alias("k2")
    drop = st(sa.select(*key(examined), examined.c.mid).where(sa.not_(sa.exists().where(
        _eq(key(k2), key(examined)), k2.c.mid == examined.c.mid).correlate_except(k2))), "imprint_drop")
    return sa.select(m).where(sa.not_(sa.exists().where(_eq(key(drop), key(m)), drop.c.mid == m.c.mid)))


def _level2a_name(xm, rate_policy, asn_tsovisit):
    """``_rate`` or ``_rateints`` in place of ``_uncal``, as the pipeline names Level 2b inputs."""
    coron = sa.and_(_in_set("CORON", xm.c.exp_type), rate_policy != "rate",
                    sa.not_(sa.and_(xm.c.subarray == "full", _path_test(xm, "nrc_coron_no_occulter"))))
    ints = sa.and_(xm.c.pntgtype == "science", sa.not_(_in_set("ACQ", xm.c.exp_type)),
                   sa.or_(coron, _in_set("RATEINTS_ALWAYS", xm.c.exp_type), xm.c.tsovisit == "t",
                          asn_tsovisit == "t"))
    fn = xm.c.filename
    return sa.case((fn.like("%\\_uncal.%", escape="\\"),
                    sa.func.replace(fn, "_uncal.", sa.case((ints, "_rateints."), else_="_rate."))), else_=fn)


def _akey(t):
    return (t.c.eid, t.c.cand_id, t.c.rule_name)


def _mkey(t):
    return (t.c.eid, t.c.cand_id, t.c.rule_name, t.c.asn_id)


def _eq(a, b):
    return sa.and_(*[p == q for p, q in zip(a, b)])


def _exposure_members(asn2, mem0, xe):
    xm = xe.alias("xm")
    return (sa.select(*_akey(asn2), asn2.c.asn_id, mem0.c.mid,
                      _level2a_name(xm, asn2.c.rate_policy, asn2.c.tsovisit).label("expname"), mem0.c.role,
                      xm.c.row_no.label("mord"), xm.c.exposerr)
            .select_from(asn2.join(mem0, _eq(_akey(mem0), _akey(asn2))).join(xm, xm.c.eid == mem0.c.mid)))


def _level3_members(asn2, xe):
    """WFSS: the direct image's level-3 products (image, source catalog, segmentation map)."""
    xd = xe.alias("xdir")
    f, p = xd.c.opt_filter, xd.c.opt_pupil
    both = sa.case((f < p, f + "-" + p), else_=p + "-" + f)
    optics = sa.case((asn2.c.instrume == "miri", sa.func.coalesce(xd.c.filter, "null")),
                     (sa.and_(f.is_not(None), p.is_not(None)), both), else_=sa.func.coalesce(f, p, "clear"))
    target = sa.case((sa.and_(asn2.c.wfss == "parallel", asn2.c.prefix == "candidate_"), "000"),
                     else_=_zpad(sa.func.coalesce(asn2.c.targetid, ""), 3))
    suffix = sa.case((sa.and_(asn2.c.wfss == "nis", asn2.c.subarray != "full"), "-" + asn2.c.subarray), else_="")
    name = "jw" + _zpad(asn2.c.program, 5) + "-" + asn2.c.asn_id + "_t" + target + "_" + asn2.c.instrume + "_" \
        + optics + suffix
    return [sa.select(*_akey(asn2), asn2.c.asn_id, sa.null(), name + ext, sa.literal(role),
                      sa.literal(1000000 + i), sa.null())
            .select_from(asn2.join(xd, xd.c.eid == asn2.c.direct_id))
            for i, (ext, role) in enumerate([("_i2d.fits", "direct_image"), ("_cat.ecsv", "sourcecat"),
                                             ("_segm.fits", "segmap")])]


def _pruned(asn2, members, st):
    """Duplicate pruning as the pipeline does it, then sequence numbers; the final member rows."""
    counts = st(sa.select(*_mkey(members), sa.func.count().label("n")).group_by(*_mkey(members)), "counts")
    # identical member lists: the later candidate id wins, then the rule later by name (or, where the
    # catalog's duplicate_rule_order says 'position' - jwst 1.8.5 to 1.13 - later in rules_level2b.py)
    if st.parameter("duplicate_rule_order") == "position":
        def place(name):
            return sa.select(ar.c.position).where(ar.c.name == name).scalar_subquery()
        rule_wins_expr = lambda c: place(c.b_rule_name) > place(c.a_rule_name)  # noqa: E731
    else:
        rule_wins_expr = lambda c: c.b_rule_name > c.a_rule_name  # noqa: E731
    a, b = members.alias("ma"), members.alias("mb")
    common = (sa.select(*[c.label("a_" + c.name) for c in _mkey(a)], *[c.label("b_" + c.name) for c in _mkey(b)],
                        sa.func.count().label("n"))
              .select_from(a.join(b, sa.and_(a.c.expname == b.c.expname, a.c.role == b.c.role)))
              .group_by(*_mkey(a), *_mkey(b))).cte("common")
    ca, cb = counts.alias("ca"), counts.alias("cb")
    rule_wins = rule_wins_expr(common.c)
    side = lambda t, prefix: _eq([common.c[prefix + c.name] for c in _mkey(t)], _mkey(t))  # noqa: E731
    loser = (sa.select(common.c.a_eid, common.c.a_cand_id, common.c.a_rule_name, common.c.a_asn_id)
             .select_from(common.join(ca, side(ca, "a_")).join(cb, side(cb, "b_")))
             .where(ca.c.n == common.c.n, cb.c.n == common.c.n,
                    sa.or_(common.c.b_asn_id > common.c.a_asn_id,
                           sa.and_(common.c.b_asn_id == common.c.a_asn_id, rule_wins)))
             ).cte("loser")
    asn3 = st(sa.select(asn2).where(sa.not_(sa.exists().where(
        _eq((loser.c.a_eid, loser.c.a_cand_id, loser.c.a_rule_name, loser.c.a_asn_id), _mkey(asn2))))), "asn3")
    # same product, fewer members, no exposure in both with different roles: the smaller goes
    p, q = asn3.alias("p"), asn3.alias("q")
    cp, cq = counts.alias("cp"), counts.alias("cq")
    mp, mq = members.alias("mp"), members.alias("mq")
    conflict = sa.exists().where(_eq(_mkey(mp), _mkey(p)), _eq(_mkey(mq), _mkey(q)), mp.c.mid == mq.c.mid,
                                 mp.c.role != mq.c.role).correlate_except(mp, mq)
    bigger = sa.exists().where(q.c.product == p.c.product, _eq(_mkey(cp), _mkey(p)), _eq(_mkey(cq), _mkey(q)),
                               cq.c.n > cp.c.n, sa.not_(conflict)).correlate_except(q, cp, cq)
    asn4 = st(sa.select(p).where(sa.not_(bigger)), "asn4")
    seq = sa.func.row_number().over(partition_by=[asn4.c.asn_id, asn4.c.asn_type],
                                    order_by=[asn4.c.cand_ord.desc(), asn4.c.made_at.desc(), asn4.c.row_no.desc(),
                                              asn4.c.rule_name.desc()])
    final = sa.select(asn4, seq.label("seq")).cte("final")
    return (sa.select(final.c.asn_id, (final.c.prefix + final.c.rule_name).label("asn_rule"), final.c.rule_name,
                      final.c.asn_type, _zpad(final.c.program, 5).label("program"), final.c.product, final.c.seq,
                      final.c.eid, final.c.cand_id, members.c.expname, members.c.role.label("exptype"),
                      members.c.exposerr)
            .select_from(final.join(members, _eq(_mkey(members), _mkey(final))))
            .order_by(final.c.asn_id, final.c.asn_type, final.c.seq, members.c.role != "science", members.c.mord))


# --- public API ---------------------------------------------------------------------------------

@dataclass
class Association:
    """One Level 2b association, in the pipeline's JSON shape (``as_dict``)."""

    asn_id: str
    asn_rule: str
    asn_type: str
    asn_pool: str
    program: str
    product: str
    seq: int
    members: list[dict] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return f"jw{self.program}-{self.asn_id}_{self.asn_type}_{self.seq:05d}_asn.json"

    def as_dict(self) -> dict:
        degraded = any(m.get("exposerr") for m in self.members)
        return {
            "asn_type": self.asn_type, "asn_rule": self.asn_rule, "asn_id": self.asn_id,
            "asn_pool": self.asn_pool, "program": self.program,
            "degraded_status": DEGRADED_NOTOK if degraded else DEGRADED_OK,
            "products": [{"name": self.product,
                          "members": [{"expname": m["expname"], "exptype": m["exptype"],
                                       **({"exposerr": m["exposerr"]} if m.get("exposerr") else {})}
                                      for m in self.members]}],
        }


def _pool_row(conn: sa.Connection, pool: str | int) -> sa.Row:
    p = schema.pool
    where = p.c.id == pool if isinstance(pool, int) else p.c.name == pool
    row = conn.execute(sa.select(p).where(where)).first()
    if row is None:
        raise AssociationError(f"no loaded pool {pool!r}; load it first (`l2rules load POOL`)")
    return row


def _missing_columns(pool_row) -> list[str]:
    columns = set(pool_row.columns.split("|"))
    return [c for c in REQUIRED_POOL_COLUMNS if c not in columns]


def associations(db: DB, pool: str | int, *, as_of: str | dt.date | None = None, version: str | None = None,
                 pipeline: str | None = None) -> list[Association]:
    """The Level 2b associations the pipeline makes of one loaded pool (by name or id).

    By the head rules, or those in force on date ``as_of``, at catalog ``version``, or of jwst release
    ``pipeline`` (``"1.16.1"``).
    """
    engine = require_migrated(db)
    when = resolve_version(engine, as_of, version, pipeline)
    with engine.begin() as conn:
        prow = _pool_row(conn, pool)
        if _missing_columns(prow):
            return []
        st = _Stages(conn)
        try:
            st.stage_rules(when)
            rows = conn.execute(_run(conn, prow.id, st)).mappings().all()
        finally:
            st.close()
    out: dict[tuple, Association] = {}
    for r in rows:
        key = (r["asn_id"], r["asn_rule"], r["eid"], r["cand_id"])
        asn = out.get(key)
        if asn is None:
            asn = out[key] = Association(r["asn_id"], r["asn_rule"], r["asn_type"], prow.name, r["program"],
                                         r["product"], r["seq"])
        asn.members.append({"expname": r["expname"], "exptype": r["exptype"], "exposerr": r["exposerr"]})
    return list(out.values())


def science_of(asns: Iterable[Association]) -> dict[str, list[Association]]:
    """The associations each exposure is the science of, keyed by its lower-cased FILENAME stem."""
    science: dict[str, list[Association]] = {}
    for asn in asns:
        for member in asn.members:
            if member["exptype"] == "science":
                science.setdefault(exposure_stem(member["expname"]).lower(), []).append(asn)
    return science


def write_associations(asns: Iterable[Association], output: str | Path) -> list[Path]:
    """One ``jw<program>-<candidate>_<asn_type>_<seq>_asn.json`` file per association."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for asn in asns:
        path = out / asn.filename
        path.write_text(json.dumps(asn.as_dict(), indent=4) + "\n")
        paths.append(path)
    return paths


def asn(db: DB, pools: Iterable[str | Path], output: str | Path, *, skip_bad: bool = False,
        as_of: str | dt.date | None = None, version: str | None = None, pipeline: str | None = None) -> list[Path]:
    """Load each pool and write its Level 2b associations to ``output``; returns the files written.

    With several pools, each gets a directory of its own under ``output`` (named after the pool
    file): the pipeline's names (program, candidate, type, sequence) repeat from pool to pool.
    Each pool is evaluated right after its load (exposures are identified by stem, so a later pool
    holding the same stems takes them over).
    """
    engine = require_migrated(db, create=True)  # it loads the pools first
    pools = list(pools)
    stems = [Path(p).stem for p in pools]
    if len(set(stems)) < len(stems):
        raise AssociationError("two pools have the same file name; write them in separate runs")
    written = []
    for path, stem in zip(pools, stems):
        result = load(path, engine, skip_bad=skip_bad)
        target = Path(output) / stem if len(pools) > 1 else Path(output)
        made = associations(engine, result.pool_id, as_of=as_of, version=version, pipeline=pipeline)
        written += write_associations(made, target)
    return written


IMPACT_COLUMNS = ["change", "instrument", "pool", "filename", "exp_type", "asn_type_from", "asn_type_to",
                  "role_from", "role_to", "input_from", "input_to", "association_from", "association_to"]
_INSTRUMENTS = {"nrc": "NIRCam", "mir": "MIRI", "nrs": "NIRSpec", "nis": "NIRISS", "fgs": "FGS"}


def impact(db: DB, from_point: str, to_point: str, *,
           pools: Iterable[str | Path] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the pipeline's Level 2b processing of each exposure becomes between two catalog points
    (pipeline releases such as ``1.16.1``, revisions or dates): the exposures that enter or leave,
    or change asn_type, role, Level 2b input or association; and counts per instrument.

    ``pools`` are loaded first and compared; without, every loaded pool.
    """
    from .catalog import resolve_point

    engine = require_migrated(db, create=bool(pools))
    points = [resolve_point(engine, p) for p in (from_point, to_point)]
    if pools:
        # each pool evaluated right after its load, as `asn` does: pools may share FILENAME stems
        pool_ids = (load(path, engine).pool_id for path in pools)
    else:
        with engine.connect() as conn:
            pool_ids = list(conn.execute(sa.select(schema.pool.c.id).order_by(schema.pool.c.name)).scalars())
    e = schema.exposure
    rows = []
    for pool_id in pool_ids:
        with engine.connect() as conn:
            name = _pool_row(conn, pool_id).name
            exposures = conn.execute(sa.select(e.c.filename, e.c.exp_type).where(
                e.c.pool_id == pool_id, e.c.withdrawn_at.is_(None)).order_by(e.c.source_line)).all()
        sides = [_processing(associations(engine, pool_id, as_of=p)) for p in points]
        for filename, exp_type in exposures:
            stem = exposure_stem(filename).lower()
            before, after = (side.get(stem) for side in sides)
            if before == after:
                continue
            change = "enters" if before is None else "leaves" if after is None else next(
                f"{what} changes" for what, i in (("asn_type", 0), ("role", 1), ("input", 2), ("association", 3))
                if before[i] != after[i])
            rows.append(dict(change=change, instrument=_INSTRUMENTS.get(exp_type[:3].lower(), "other"), pool=name,
                             filename=filename, exp_type=exp_type,
                             **{f"{col}_{side}": (None if value is None else value[i])
                                for side, value in (("from", before), ("to", after))
                                for i, col in enumerate(("asn_type", "role", "input", "association"))}))
    exposures = pd.DataFrame(rows, columns=IMPACT_COLUMNS)
    counts = (exposures.groupby(["instrument", "change"]).size().rename("exposures").reset_index()
              if len(exposures) else pd.DataFrame(columns=["instrument", "change", "exposures"]))
    return exposures, counts


def _processing(asns: list[Association]) -> dict[str, tuple[str, str, str, str]]:
    """Per exposure (lower-cased stem) that is a member of some association: its asn_types, roles,
    Level 2b input names and association file names with their rules, each ';'-joined."""
    found: dict[str, list[tuple[str, str, str, str]]] = {}
    for asn in asns:
        for member in asn.members:
            stem = exposure_stem(member["expname"]).lower()
            found.setdefault(stem, []).append((asn.asn_type, member["exptype"], member["expname"],
                                               f"{asn.filename} ({asn.asn_rule})"))
    return {stem: tuple(";".join(sorted({m[i] for m in ms})) for i in range(4)) for stem, ms in found.items()}


EXPLAIN_COLUMNS = ["filename", "pool", "candidate", "candidate_type", "rule", "asn_type", "selected", "reason"]


def _describe(c) -> str:
    return f"{c.column_name} {c.operator}" + ("" if c.value is None else f" {c.value}")


def explain(db: DB, filename: str, pool: str | None = None, *, as_of: str | dt.date | None = None,
            version: str | None = None, pipeline: str | None = None) -> pd.DataFrame:
    """Why an exposure is or is not the science of a Level 2b association: per candidate and rule.

    ``pool`` is a loaded pool's name or a pool file (loaded first); without it, the pool the
    exposure was last loaded from.
    """
    loads = pool is not None and Path(pool).is_file()
    engine = require_migrated(db, create=loads)
    if loads:
        pool = load(pool, engine).pool_id
    when = resolve_version(engine, as_of, version, pipeline)
    stem = exposure_stem(filename).lower()
    e = schema.exposure
    with engine.begin() as conn:
        q = sa.select(e.c.id, e.c.pool_id, e.c.filename, e.c.exp_type).where(sa.func.lower(e.c.stem) == stem,
                                                                            e.c.withdrawn_at.is_(None))
        if pool is not None:
            q = q.where(e.c.pool_id == _pool_row(conn, pool).id)
        exp = conn.execute(q).first()
        if exp is None:
            raise AssociationError(f"no loaded exposure {filename!r}" + (f" in pool {pool!r}" if pool else ""))
        prow = _pool_row(conn, exp.pool_id)
        base = dict(filename=exp.filename, pool=prow.name)
        missing = _missing_columns(prow)
        if missing:
            return pd.DataFrame([dict(base, selected=False, reason="the pool has no " + ", ".join(missing)
                                      + " column: the pipeline makes no association from it")],
                                columns=EXPLAIN_COLUMNS)
        st = _Stages(conn)
        try:
            st.stage_rules(when)
            final = _run(conn, prow.id, st).subquery()
            rows = _explain_rows(conn, st, final, exp.id)
        finally:
            st.close()
    if not rows:
        rows = [dict(selected=False, reason="no ASN_CANDIDATE: associations are built per candidate")]
    return pd.DataFrame([dict(base, **r) for r in rows], columns=EXPLAIN_COLUMNS)


def _explain_rows(conn, st, final, eid) -> list[dict]:
    x, xe = st.tables["x"], st.tables["xe"]
    cond_cols = _named_columns(conn, cond_t)
    c, r = cond_t.c, ar.c
    checks = conn.execute(
        sa.select(x.c.cand_id, x.c.cand_type, r.name, r.asn_type, r.science_set,
                  sa.or_(r.science_set.is_(None), _in_set(r.science_set, xe.c.exp_type)).label("applicable"),
                  c.alt, c.seq, c.column_name, c.operator, c.value, _cond_holds(xe, c, cond_cols).label("ok"),
                  _accessor(xe, c.column_name, cond_cols).label("got"))
        .select_from(x.join(xe, xe.c.eid == x.c.eid).join(ar, sa.true())
                     .join(cond_t, sa.and_(c.rule_name == r.name, c.subject == "science")))
        .where(x.c.eid == eid).order_by(x.c.cand_ord, r.name, c.alt, c.seq)).all()
    stages = {}
    for name in ("sci", "asn0", "asn1", "asn4"):
        t = st.tables[name]
        stages[name] = set(conn.execute(sa.select(t.c.cand_id, t.c.rule_name).where(t.c.eid == eid)).all())
    wfss_rules = set(conn.execute(sa.select(ar.c.name).where(ar.c.wfss.is_not(None))).scalars())
    finals = {}
    for row in conn.execute(sa.select(final.c.cand_id, final.c.rule_name, final.c.asn_id, final.c.asn_type,
                                      final.c.program, final.c.seq).where(final.c.eid == eid).distinct()):
        finals.setdefault((row.cand_id, row.rule_name), []).append(
            f"{row.asn_id}: jw{row.program}-{row.asn_id}_{row.asn_type}_{row.seq:05d}_asn.json")
    grouped: dict[tuple, list] = {}
    for ch in checks:
        grouped.setdefault((ch.cand_id, ch.cand_type, ch.name, ch.asn_type, ch.science_set, ch.applicable), []).append(ch)
    out = []
    for (cand_id, cand_type, rule_name, asn_type, science_set, applicable), rows in grouped.items():
        key = (cand_id, rule_name)
        if not applicable:
            continue  # rules that do not take this exp_type as science: summarised below
        row = dict(candidate=cand_id, candidate_type=cand_type, rule=rule_name, asn_type=asn_type, selected=False)
        if key in finals:
            row.update(selected=True, reason="science of " + "; ".join(finals[key]))
        elif key in stages["asn1"]:
            row["reason"] = "conditions hold, but a duplicate association of another rule or candidate is kept"
        elif key in stages["asn0"]:
            row["reason"] = f"conditions hold, but a {cand_type} candidate does not keep this rule's associations"
        elif key in stages["sci"] and rule_name in wfss_rules:
            row["reason"] = "conditions hold, but no direct image matches (WFSS needs one)"
        elif key in stages["sci"]:
            row["reason"] = ("conditions hold, but the exposure already joined an earlier science's association "
                             "of this rule")
        else:
            row["reason"] = _first_failure(rows)
        out.append(row)
    if not out and checks:
        types = sorted({ch.cand_type for ch in checks})
        out.append(dict(candidate=",".join(sorted({ch.cand_id for ch in checks})), candidate_type=",".join(types),
                        selected=False, reason="no association rule takes this exposure type as science"))
    return out


def _first_failure(rows) -> str:
    """The first failing condition: of the common part, else of the alternative that came closest."""
    by_alt: dict[int, list] = {}
    for ch in rows:
        by_alt.setdefault(ch.alt, []).append(ch)
    alternatives = [a for a in by_alt if a > 0]
    if any(not ch.ok for ch in by_alt.get(0, [])):
        alt = 0
    else:
        alt = min(alternatives, key=lambda a: (sum(not ch.ok for ch in by_alt[a]), a))
    first = next(ch for ch in by_alt[alt] if not ch.ok)
    text = _describe(first)
    more = f" (closest of {len(alternatives)} alternatives: {alt})" if alt else ""
    return f"fails {text}; the exposure has {first.column_name}={first.got if first.got is not None else 'empty'}{more}"
