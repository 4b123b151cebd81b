"""Work list: what the pipeline does with each exposure, and the published table's verdict beside it.

The pipeline's answer comes from the association stages (``association``, in SQL), read from the
stored answers where they are current (``level2b_answer``, ``level2b_answer_at``); the published
table's verdict is one query (``published``). Both serve SQLite, PostgreSQL and the reporting views.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from . import schema
from ._lazy import pandas as pd
from .association import REQUIRED_POOL_COLUMNS, AssociationError, associations, science_by_stem
from .association import impact as pipeline_impact
from .association.answers import JOINED
from .association.evaluation import evaluating
from .config import DB, L2RulesError
from .inventory import exposure_stem, keep_statistics
from .inventory.preview import previewed
from .migrate import require_migrated
from .outputs import query_frame, typed, write_result
from .points import At, Point, resolve, takes_at
from .published import (  # noqa: F401  (the published table's query, read here and by the library's users)
    ALL_COLUMNS,
    FLAG_SPECIALS,
    WORK_ITEM_COLUMNS,
    instrument_of,
    plan_without_jit,
    unmatched,
    without_rule,
    worklist_query,
)
from .schema import COLUMN_TYPES

log = logging.getLogger(__name__)

#: The pipeline's work list: what jwst's asn_generate makes of each exposure, the published table's verdict beside.
#: ``exposure_id`` is the exposure's id in the catalog (the exposures frame's ``id``, the views'
#: ``exposure_id``); empty when the pool was answered without being loaded into it (a preview).
PIPELINE_COLUMNS = [
    "pool", "source_line", "filename", "exp_type", "instrument", "exptype", "asn_type", "level2b_input",
    "association", "asn_rule", "program", "obs_num", "table_level2b", "table_asn_type", "table_rule", "exposure_id",
]
PIPELINE_ALL_COLUMNS = [*PIPELINE_COLUMNS[:-4], "level2b", "reason", "table_level2b", "table_asn_type",
                        "table_rule", "table_reason", "exposure_id"]
#: Where the work list comes from: the pipeline's association rules (default) or the published table alone.
SOURCES = ("pipeline", "table")


@takes_at
def worklist(db: DB = None, *, pools: Iterable[str | Path] | None = None, inventory: pd.DataFrame | None = None,
             include_all: bool = False, at: At = None, skip_bad: bool = False, associations: bool = False,
             source: str = "pipeline", store: bool = False) -> pd.DataFrame:
    """The Level 2b work list as a DataFrame, one work item per selected exposure.

    With ``pools`` (paths) or ``inventory`` (a DataFrame), the work list of those alone, answered
    without changing the catalog (``inventory.preview``) unless ``store`` (then loaded into it, as
    ``load`` does); with neither, of every loaded exposure.

    ``at``: by the rules of that catalog point, a date, a catalog revision or a jwst release
    (``"1.16.1"``); the head's when None.

    ``source="pipeline"`` (default): what the pipeline does (``l2rules.association``): an exposure
    is on the list when it is the science of a Level 2b association, with its asn_type(s), member
    type, Level 2b input and association file(s); the published table's verdict beside it
    (``table_*`` columns). ``source="table"``: the published table's verdict alone (one SQL query;
    ``associations`` then adds the pipeline's associations per item).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    sources = None if pools is None and inventory is None else [
        *(pools or []), *([inventory] if inventory is not None else [])]
    with previewed(db, sources, store=store, skip_bad=skip_bad) as preview:
        engine, when = preview.engine, resolve(preview.engine, at)
        if source == "pipeline":
            # pools evaluated lazily, each right after its load, as `asn` does (pools may share stems)
            return _pipeline_worklist(engine, preview.pool_ids, when, include_all, ids=not preview.scratch,
                                      store=store and not preview.scratch)
        query = worklist_query(when, _listed(preview.pool_ids), include_all, ids=not preview.scratch)
        with engine.connect() as conn:
            plan_without_jit(conn)
            frame = query_frame(conn, query, ALL_COLUMNS if include_all else WORK_ITEM_COLUMNS, COLUMN_TYPES)
        return _with_associations(engine, frame, when) if associations else frame


def _listed(pool_ids: Iterable[int] | None) -> list[int] | None:
    """The published table's list is one query: every given pool loaded first."""
    return None if pool_ids is None else list(pool_ids)


#: A server-side cursor on PostgreSQL: the client never holds more than a chunk of rows.
STREAMED = {"stream_results": True, "yield_per": 20_000}


@takes_at
def write_worklist(db: DB = None, output: str | Path | None = None, *, fmt: str = "csv",
                   pools: Iterable[str | Path] | None = None, include_all: bool = False, at: At = None,
                   skip_bad: bool = False, stream=None, source: str = "pipeline", store: bool = False) -> int:
    """The work list written to ``output`` (or ``stream``) as CSV or Parquet, straight from the query.

    The same rows as :func:`worklist` gives (``source``, ``pools`` and ``store`` as there), without a
    DataFrame: memory stays flat however many work items. Returns how many rows were written.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    with previewed(db, None if pools is None else list(pools), store=store, skip_bad=skip_bad) as preview:
        engine, when = preview.engine, resolve(preview.engine, at)
        if source == "pipeline":
            results = (conn.execute(query, execution_options=STREAMED)
                       for conn, query in answer_selects(engine, preview.pool_ids, when, include_all,
                                                         ids=not preview.scratch,
                                                         store=store and not preview.scratch))
            return write_result(results, PIPELINE_ALL_COLUMNS if include_all else PIPELINE_COLUMNS, fmt, output,
                                stream, booleans=("level2b", "table_level2b"), integers=("source_line", "exposure_id"))
        query = worklist_query(when, _listed(preview.pool_ids), include_all, ids=not preview.scratch)
        with engine.connect() as conn:
            plan_without_jit(conn)
            rows = conn.execute(query, execution_options=STREAMED)
            return write_result(rows, ALL_COLUMNS if include_all else WORK_ITEM_COLUMNS, fmt, output,
                                stream, booleans=("level2b",), integers=("source_line", "exposure_id"))


def _pipeline_worklist(engine: sa.Engine, pool_ids: Iterable[int] | None, when: Point | None,
                       include_all: bool, ids: bool = True, store: bool = False) -> pd.DataFrame:
    """Every exposure of the pools with the pipeline's answer and the published table's beside it."""
    columns = PIPELINE_ALL_COLUMNS if include_all else PIPELINE_COLUMNS
    frames = [query_frame(conn, query, columns, COLUMN_TYPES)
              for conn, query in answer_selects(engine, pool_ids, when, include_all, ids, store)]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0] if frames else None
    return typed(pd.DataFrame(columns=columns) if frame is None else frame, COLUMN_TYPES)


def answer_selects(engine: sa.Engine, pool_ids: Iterable[int] | None, when: Point | None,
                   include_all: bool, ids: bool = True, store: bool = False
                   ) -> Iterator[tuple[sa.Connection, sa.Select]]:
    """The pipeline's work list of the pools (every pool by name when None) as SELECTs in pool order, each
    with the connection to run it on, valid until the next is asked for.

    The pools whose stored answers are current at the point asked (:func:`stale_pools`: ``run`` stores them
    at the head, ``store`` at any point) are read from the store, consecutive ones in one SELECT; the others
    are evaluated here (the association stages, in SQL), and stored first when ``store`` (else not: this is
    a read). Pools given are taken one at a time (a lazy load each: a pool is read right after its load,
    as pools may share stems).
    """
    strict = pool_ids is not None  # pools asked for by name must be ones the pipeline can read
    if pool_ids is None:
        with engine.connect() as conn:
            every = list(conn.execute(sa.select(schema.pool.c.id).order_by(schema.pool.c.name)).scalars())
            behind = set(stale_pools(conn, head_catalog_version(conn), when=when))
        groups = ((stale, list(pools)) for stale, pools in itertools.groupby(every, key=behind.__contains__))
    else:
        groups = ((not _answers_current(engine, pool_id, when), [pool_id]) for pool_id in pool_ids)
    for stale, pools in groups:
        if stale and store:
            evaluate(engine, pools, at=when)  # stored, then read as the current ones are
        elif stale:
            for pool_id in pools:
                with engine.begin() as conn, answers_of(conn, pool_id, when, include_all, strict, ids) as query:
                    yield conn, query
            continue
        with engine.begin() as conn:
            plan_without_jit(conn)
            if strict:
                _readable(conn, pools[0], strict)
            yield conn, stored_answers(pools, include_all, when)


def _readable(conn: sa.Connection, pool_id: int, strict: bool) -> str | None:
    """Why the pipeline makes no association from the pool (a column it needs is missing), or None. Raised
    when ``strict`` (a pool asked for by name); said once otherwise (a warning), its exposures on no list."""
    p = schema.pool
    name, columns = conn.execute(sa.select(p.c.name, p.c.columns).where(p.c.id == pool_id)).one()
    missing = [c for c in REQUIRED_POOL_COLUMNS if c not in columns.split("|")]
    unreadable = (f"pool {name}: no {', '.join(c.upper() for c in missing)} column: the pipeline makes no "
                  "Level 2b association from it") if missing else None
    if unreadable and strict:
        raise AssociationError(unreadable + "; `worklist --published` gives the published table's list")
    if unreadable:  # one pool of every loaded one: said, and its exposures are on no work list
        log.warning("%s (its exposures are left out)", unreadable)
    return unreadable


@contextmanager
def answers_of(conn: sa.Connection, pool_id: int, when: Point | None, include_all: bool,
               strict: bool = True, ids: bool = True) -> Iterator[sa.Select]:
    """The SELECT of one pool's exposures with the pipeline's answer and the published table's beside it,
    in pool order, valid while the evaluation it reads is open (its temporary tables, on ``conn``).

    Besides the work list's columns: each exposure's ``exposure_id`` and ``exposure_version`` (what
    :func:`evaluate` stores the answers under). A pool without the columns the pipeline needs raises
    (``strict``) or gives every exposure as not selected, with that reason (said once, a warning).
    """
    e = schema.exposure
    plan_without_jit(conn)
    unreadable = _readable(conn, pool_id, strict)
    table = (worklist_query(when, [pool_id], include_all=True).add_columns(e.c.version.label("exposure_version"))
             .order_by(None).subquery("published"))
    with evaluating(conn, when) as evaluation:
        if unreadable:
            answers = None
        else:
            evaluation.run(pool_id)
            answers = evaluation.answer()
        yield _answer_select(table, answers, include_all, unreadable, ids)


def _answer_select(table: sa.Subquery, answers: sa.Table | None, include_all: bool,
                   unreadable: str | None, ids: bool = True) -> sa.Select:
    """The published table's work list (``table``, every exposure) joined with the pipeline's answers."""
    if answers is None:  # no association: an empty answer of the same shape
        answers = (sa.select(sa.literal(None, sa.Integer).label("exposure_id"),
                             *(sa.literal(None, sa.Text).label(name) for name in JOINED),
                             sa.literal(0).label("science_of")).where(sa.false()).subquery("answers"))
    selected = answers.c.science_of > 0
    processed = table.c.level2b == sa.true()
    said = sa.case((processed, "; the published table says processed (" + table.c.rule
                    + "): `l2rules explain` names the condition"), else_="")
    reason = sa.case(
        (selected, "science of " + sa.cast(answers.c.science_of, sa.Text) + " Level 2b association(s)"
         + sa.case((processed, ""), else_="; the published table alone would not select it")),
        (answers.c.exptype.is_not(None), "a " + sa.func.replace(answers.c.exptype, ";", "/")
         + " member of other associations, the science of none" + said),
        else_="the science of no Level 2b association" + said)
    if unreadable:
        reason = sa.literal(unreadable.split(": ", 1)[1])
    columns = [table.c.pool, table.c.source_line, table.c.filename, table.c.exp_type, table.c.instrument,
               answers.c.exptype,
               answers.c.asn_type, answers.c.level2b_input, answers.c.association, answers.c.asn_rule,
               table.c.program, table.c.obs_num]
    if include_all:
        columns += [sa.case((selected, sa.true()), else_=sa.false()).label("level2b"), reason.label("reason")]
    columns += [sa.case((processed, sa.true()), else_=sa.false()).label("table_level2b"),
                table.c.asn_type.label("table_asn_type"),
                sa.case((table.c.exptype.is_not(None), table.c.rule)).label("table_rule")]
    if include_all:
        columns += [table.c.reason.label("table_reason")]
    query = (sa.select(*columns, (table.c.exposure_id if ids else sa.null()).label("exposure_id"),
                       table.c.exposure_version)
             .select_from(table.outerjoin(answers, answers.c.exposure_id == table.c.exposure_id))
             .order_by(table.c.pool, table.c.source_line))
    return query if include_all else query.where(selected)


# --- stored answers: what the views and `run` read ----------------------------------------------------

#: The columns of ``level2b_answer`` that :func:`evaluate` fills from the pipeline's work list.
ANSWER_COLUMNS = ["exposure_id", "exposure_version", "level2b", "exptype", "asn_type", "level2b_input",
                  "association", "asn_rule", "reason", "table_level2b", "table_asn_type", "table_rule",
                  "table_reason"]


def head_catalog_version(conn: sa.Connection) -> str:
    """The head catalog revision (the latest catalog version): the point stored answers and work items are at."""
    v = schema.catalog_version
    revision = conn.execute(sa.select(v.c.revision).order_by(v.c.seq.desc()).limit(1)).scalar()
    if revision is None:
        raise L2RulesError("the catalog has no version: run `l2rules init`")
    return revision


def stale_pools(conn: sa.Connection, revision: str, pool_ids: list[int] | None = None,
                when: Point | None = None) -> list[int]:
    """The pools whose stored answers at ``when`` (the head when None) are not of their latest load at head
    catalog revision ``revision`` (migration 0021: every load adds one to the pool's ``load_serial``;
    :func:`evaluate` records it with the answers; at another point, ``pool_answers_at`` does, migration
    0058). One row per pool read, not a pass over every exposure of the catalog."""
    p, at = schema.pool, schema.pool_answers_at
    if when is None:
        behind = sa.or_(p.c.answers_load.is_distinct_from(p.c.load_serial),
                        p.c.answers_revision.is_distinct_from(revision))
    else:
        behind = ~sa.exists().where(at.c.pool_id == p.c.id, at.c.point == when.key,
                                    at.c.answers_load == p.c.load_serial, at.c.answers_revision == revision)
    query = sa.select(p.c.id).where(behind).order_by(p.c.id)
    return list(conn.execute(query if pool_ids is None else query.where(p.c.id.in_(pool_ids))).scalars())


def _answers_current(engine: sa.Engine, pool_id: int, when: Point | None = None) -> bool:
    """Whether the pool's stored answers at ``when`` are of its latest load at the head revision."""
    with engine.connect() as conn:
        return pool_id not in stale_pools(conn, head_catalog_version(conn), [pool_id], when)


def _answer_table(when: Point | None) -> tuple[sa.Table, sa.ColumnElement[bool]]:
    """Where the answers at ``when`` are stored, and the condition that picks that point's rows."""
    if when is None:
        return schema.level2b_answer, sa.true()
    return schema.level2b_answer_at, schema.level2b_answer_at.c.point == when.key


def stored_answers(pool_ids: list[int], include_all: bool = False, when: Point | None = None) -> sa.Select:
    """The pools' stored answers at ``when`` (the head's ``level2b_answer`` when None) as the pipeline's work
    list: the rows and columns :func:`worklist` evaluates, for pools whose answers are current
    (:func:`stale_pools`), in pool (name) and line order."""
    (a, of_point), e, p = _answer_table(when), schema.exposure, schema.pool
    values = {"pool": p.c.name, **{c: e.c[c] for c in ("source_line", "filename", "exp_type", "program", "obs_num")},
              "instrument": instrument_of(e.c.exp_type), "exposure_id": e.c.id,
              **{c: a.c[c] for c in ANSWER_COLUMNS[2:]}}
    query = (sa.select(*(values[name].label(name) for name in (PIPELINE_ALL_COLUMNS if include_all
                                                                else PIPELINE_COLUMNS)))
             .select_from(a.join(e, e.c.id == a.c.exposure_id).join(p, p.c.id == e.c.pool_id))
             .where(e.c.pool_id.in_(pool_ids), e.c.withdrawn_at.is_(None), a.c.exposure_version == e.c.version,
                    of_point)
             .order_by(p.c.name, e.c.source_line))
    return query if include_all else query.where(a.c.level2b == sa.true())


#: One pool's answers as made, before they are stored (a temporary table, per connection).
_FOUND = sa.Table("l2rules_tmp_found_answers", sa.MetaData(),
                  *(sa.Column(column.name, column.type) for column in schema.level2b_answer.c
                    if column.name in ANSWER_COLUMNS), prefixes=["TEMPORARY"])


@takes_at
def evaluate(db: DB = None, pool_ids: Iterable[int] | None = None, *, at: At = None) -> list[int]:
    """Store the pipeline's answer at catalog point ``at`` (the head when None: ``level2b_answer``; another
    point: ``level2b_answer_at``) for every exposure of the pools whose answers there are missing or behind
    (or of ``pool_ids``); returns the pools evaluated.

    The same rows ``worklist(include_all=True, at=at)`` gives; each pool's answers replace its old ones in
    one short transaction, after they are made (the catalog is not locked while they are). A pool without
    the columns the pipeline needs is said once (a warning) and its exposures are stored as not selected,
    with that reason.
    """
    engine = require_migrated(db)
    when = resolve(engine, at)
    (a, of_point), e = _answer_table(when), schema.exposure
    with engine.connect() as conn:
        revision = head_catalog_version(conn)
        todo = stale_pools(conn, revision, when=when) if pool_ids is None else list(pool_ids)
    if todo and when is not None:  # (storing at a point: the catalog has points, migration 0058)
        with engine.begin() as conn:
            forget_behind(conn, head_catalog_version(conn))
    stored = 0
    p = schema.pool
    # the head's answers carry the revision they are of; another point's, the point (its pool row the revision)
    columns = [*ANSWER_COLUMNS, "catalog_revision"] if when is None else ["point", *ANSWER_COLUMNS]
    for pool_id in todo:
        # Made in one transaction into a temporary table (no lock on the catalog meanwhile: loads and runs
        # go on), then stored in a short second one. The state they are of is read first: a load
        # meanwhile leaves the pool stale for the next run.
        with engine.connect() as conn:
            try:
                with conn.begin():  # (the head and the load read with the rules the answers are made from)
                    revision = head_catalog_version(conn)
                    load = conn.execute(sa.select(p.c.load_serial).where(p.c.id == pool_id)).scalar_one()
                    _FOUND.create(conn)
                    with answers_of(conn, pool_id, when, include_all=True, strict=False) as query:
                        found = query.order_by(None).subquery("found")
                        conn.execute(_FOUND.insert().from_select(ANSWER_COLUMNS,
                                                                 sa.select(*(found.c[n] for n in ANSWER_COLUMNS))))
                with conn.begin():
                    conn.execute(a.delete().where(of_point, a.c.exposure_id.in_(sa.select(e.c.id)
                                                                                .where(e.c.pool_id == pool_id))))
                    stamp = sa.literal(revision if when is None else when.key)
                    made = [stamp.label(key) if key in ("point", "catalog_revision") else _FOUND.c[key]
                            for key in columns]
                    insert = a.insert().from_select(columns, sa.select(*made))
                    # (psycopg: rowcount -1 without preserve_rowcount)
                    count = conn.execute(insert.execution_options(preserve_rowcount=True)).rowcount
                    _record_answers(conn, pool_id, when, load, revision)
            finally:
                with conn.begin():
                    _FOUND.drop(conn, checkfirst=True)
        log.info("pool %s: %d answers stored at %s (head catalog revision %s)", pool_id, count,
                 "the head" if when is None else when, revision)
        stored += count
    keep_statistics(engine, (a.name,), stored)  # the views and `run` join the answers
    return todo


def _record_answers(conn: sa.Connection, pool_id: int, when: Point | None, load: int, revision: str) -> None:
    """Which load of the pool, at which head revision, its stored answers at ``when`` are of."""
    p, at = schema.pool, schema.pool_answers_at
    if when is None:
        conn.execute(p.update().where(p.c.id == pool_id).values(answers_load=load, answers_revision=revision))
        return
    conn.execute(at.delete().where(at.c.pool_id == pool_id, at.c.point == when.key))
    conn.execute(at.insert().values(pool_id=pool_id, point=when.key, answers_load=load, answers_revision=revision))


def forget_behind(conn: sa.Connection, revision: str) -> None:
    """Remove the answers stored at points other than the head that can no longer be served: of a load the
    pool has since replaced, or made under another head revision than ``revision`` (:func:`stale_pools` calls
    them behind, and the next ask evaluates again). Kept, every point ever asked would stay forever."""
    p, at, a, e = schema.pool, schema.pool_answers_at, schema.level2b_answer_at, schema.exposure
    behind = sa.or_(at.c.answers_load != p.c.load_serial, at.c.answers_revision != revision)
    of_behind = (sa.select(at.c.pool_id).join(p, p.c.id == at.c.pool_id)
                 .where(behind, at.c.point == a.c.point, at.c.pool_id == e.c.pool_id, e.c.id == a.c.exposure_id))
    points = sa.select(at.c.point).join(p, p.c.id == at.c.pool_id).where(behind)
    # (the points that have any: their rows are found by the primary key's first column, not a full scan)
    conn.execute(a.delete().where(a.c.point.in_(points), sa.exists(of_behind)))
    conn.execute(at.delete().where(at.c.pool_id.in_(sa.select(p.c.id).where(p.c.id == at.c.pool_id, behind))))


def _with_associations(engine, frame: pd.DataFrame, when: Point | None = None) -> pd.DataFrame:
    """Add the associations each exposure is the science of: file names and asn_types, ';'-joined."""
    science = {pool: science_by_stem(associations(engine, pool, at=when)) for pool in set(frame["pool"])}
    keys = zip(frame["pool"], frame["filename"].map(lambda f: exposure_stem(f).lower()))
    found = [sorted(science[pool].get(stem, []), key=lambda a: a.filename) for pool, stem in keys]
    frame = frame.copy()
    frame["pipeline_selected"] = [bool(a) for a in found]
    frame["pipeline_asn_type"] = [";".join(sorted({x.asn_type for x in a})) or None for a in found]
    frame["association"] = [";".join(x.filename for x in a) or None for a in found]
    return typed(frame, COLUMN_TYPES)


#: ``impact(source="table")``'s exposures: each change, with both sides.
IMPACT_TABLE_COLUMNS = ["change", "instrument", "pool", "filename", "exp_type", "exptype_from", "exptype_to",
                        "asn_type_from", "asn_type_to", "reason_from", "reason_to"]


def impact_query(from_point: Point | None, to_point: Point | None, pool_ids: list[int] | None = None) -> sa.Select:
    """The published table's work list at two catalog points, side by side, as one SELECT: the exposures
    that enter or leave it, or change asn_type or role (``IMPACT_TABLE_COLUMNS``), in pool and line order.

    Computed in the database (the two work lists are joined on the exposure), so comparing the work lists
    of an archive takes no more memory than its changes.
    """
    before, after = (worklist_query(point, pool_ids, include_all=True).order_by(None).subquery(name)
                     for point, name in ((from_point, "before"), (to_point, "after")))
    kept = sa.and_(before.c.level2b == sa.true(), after.c.level2b == sa.true())
    change = sa.case(
        (sa.and_(after.c.level2b == sa.true(), before.c.level2b != sa.true()), "enters"),
        (sa.and_(after.c.level2b != sa.true(), before.c.level2b == sa.true()), "leaves"),
        # a first-version rule records no asn_type: only a change between two recorded values counts
        (sa.and_(kept, before.c.asn_type.is_not(None), after.c.asn_type.is_not(None),
                 before.c.asn_type != after.c.asn_type), "asn_type changes"),
        (sa.and_(kept, before.c.exptype.is_distinct_from(after.c.exptype)), "role changes"),
    ).label("change")
    compared = (sa.select(change, before.c.instrument, before.c.pool, before.c.filename, before.c.exp_type,
                          before.c.exptype.label("exptype_from"), after.c.exptype.label("exptype_to"),
                          before.c.asn_type.label("asn_type_from"), after.c.asn_type.label("asn_type_to"),
                          before.c.reason.label("reason_from"), after.c.reason.label("reason_to"),
                          before.c.source_line)
                .join_from(before, after, after.c.exposure_id == before.c.exposure_id)
                .subquery("compared"))
    return (sa.select(*(compared.c[name] for name in IMPACT_TABLE_COLUMNS))
            .where(compared.c.change.is_not(None))
            .order_by(compared.c.pool, compared.c.source_line))


def impact(db: DB, from_point: At, to_point: At, *, pools: Iterable[str | Path] | None = None,
           source: str = "pipeline", store: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What changing the rules from one catalog point (pipeline release, revision or date) to another
    does to the work list.

    Returns (exposures that enter or leave the work list or change asn_type, role, Level 2b input
    or association, counts of those changes per instrument). ``source="table"``: the published
    table's work list (enter, leave, asn_type or role). ``pools`` are answered about without changing the
    catalog unless ``store`` (as in :func:`worklist`).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    if source == "pipeline":
        return pipeline_impact(db, from_point, to_point, pools=pools, store=store)  # typed there

    with previewed(db, pools or None, store=store) as preview:
        engine = preview.engine
        query = impact_query(*(resolve(engine, point) for point in (from_point, to_point)),
                             _listed(preview.pool_ids))
        with engine.connect() as conn:
            plan_without_jit(conn)
            exposures = query_frame(conn, query, IMPACT_TABLE_COLUMNS)
    counts = (exposures.groupby(["instrument", "change"]).size().rename("exposures").reset_index()
              if len(exposures) else pd.DataFrame(columns=["instrument", "change", "exposures"]))
    return typed(exposures, COLUMN_TYPES), typed(counts, COLUMN_TYPES)
