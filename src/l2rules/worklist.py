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
    scratch_tables_allowed,
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
    are evaluated here (the association stages, in SQL; consecutive ones together, in batches as
    :func:`evaluate` makes them), and stored first when ``store`` (else not: this is a read). Pools given
    are taken one at a time (a lazy load each: a pool is read right after its load, as pools may share stems).
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
            with engine.connect() as conn:
                batches = _batches(conn, pools)
            for batch in batches:  # (each batch's SELECT in pool order, the batches in theirs)
                with engine.begin() as conn:
                    scratch_tables_allowed(conn)  # (a read of a read-only database still evaluates)
                    with answers_of(conn, batch, when, include_all, strict, ids) as query:
                        yield conn, query
            continue
        with engine.begin() as conn:
            plan_without_jit(conn)
            if strict:
                _unreadable(conn, pools, strict)
            yield conn, stored_answers(pools, include_all, when)


#: The most exposures evaluated together (a bigger pool is evaluated alone): the pools that need evaluating are
#: evaluated in batches of consecutive pools of at most this many exposures. One pass costs the same whatever
#: the number of pools in it, and a batch of this size costs a few seconds, so the per-pass cost (~0.7 s,
#: mostly compiling the stages' SQL) is small beside it; the bound keeps the temporary tables of a pass, the
#: short transaction storing its answers and what an interrupted `run` loses to what one such pool costs.
BATCH_EXPOSURES = 100_000
#: Pool ids read at a time by an IN list (well under SQLite's and PostgreSQL's bound parameters).
_IDS_AT_A_TIME = 500


def _pool_rows(conn: sa.Connection, pool_ids: list[int], *columns: sa.Column) -> dict[int, sa.Row]:
    """The pools' rows (``columns`` of ``pool``) by id, read a chunk of ids at a time."""
    p, rows = schema.pool, {}
    for start in range(0, len(pool_ids), _IDS_AT_A_TIME):
        chunk = pool_ids[start:start + _IDS_AT_A_TIME]
        rows.update((row.id, row) for row in conn.execute(sa.select(p.c.id, *columns).where(p.c.id.in_(chunk))))
    return rows


def _batches(conn: sa.Connection, pool_ids: list[int], limit: int | None = None) -> list[list[int]]:
    """The pools cut, in their order, into runs of consecutive pools of at most ``limit`` exposures
    (:data:`BATCH_EXPOSURES`) each, a bigger pool alone."""
    limit = BATCH_EXPOSURES if limit is None else limit
    sizes = _pool_rows(conn, pool_ids, schema.pool.c.n_exposures)
    batches: list[list[int]] = []
    total = 0
    for pool_id in pool_ids:
        size = sizes[pool_id].n_exposures if pool_id in sizes else 0
        if not batches or total + size > limit:
            batches.append([])
            total = 0
        batches[-1].append(pool_id)
        total += size
    return batches


def _unreadable(conn: sa.Connection, pool_ids: list[int], strict: bool) -> dict[int, str]:
    """Why the pipeline makes no association from each pool it cannot read (a column it needs is missing),
    by pool id. Raised when ``strict`` (pools asked for by name); said once per pool otherwise (a warning),
    its exposures on no list."""
    p = schema.pool
    found = {}
    for pool_id, row in _pool_rows(conn, pool_ids, p.c.name, p.c.columns).items():
        missing = [c for c in REQUIRED_POOL_COLUMNS if c not in row.columns.split("|")]
        if missing:
            found[pool_id] = (f"pool {row.name}: no {', '.join(c.upper() for c in missing)} column: the pipeline "
                              "makes no Level 2b association from it")
    for pool_id in pool_ids:  # (in the order given: the first asked for is the one raised)
        if pool_id in found and strict:
            raise AssociationError(found[pool_id] + "; `worklist --published` gives the published table's list")
        if pool_id in found:  # one pool of every loaded one: said, and its exposures are on no work list
            log.warning("%s (its exposures are left out)", found[pool_id])
    return found


@contextmanager
def answers_of(conn: sa.Connection, pool_ids: list[int], when: Point | None, include_all: bool,
               strict: bool = True, ids: bool = True) -> Iterator[sa.Select]:
    """The SELECT of the pools' exposures with the pipeline's answer and the published table's beside it,
    in pool (name) and line order, valid while the evaluation it reads is open (its temporary tables, on
    ``conn``). The pools are evaluated together, in one pass (``Evaluation.run``).

    Besides the work list's columns: each exposure's ``exposure_id``, ``exposure_version`` (what
    :func:`evaluate` stores the answers under) and ``pool_id``. A pool without the columns the pipeline needs
    raises (``strict``) or gives every exposure as not selected, with that reason (said once, a warning).
    """
    e = schema.exposure
    pool_ids = list(dict.fromkeys(pool_ids))
    plan_without_jit(conn)
    unreadable = _unreadable(conn, pool_ids, strict)
    with evaluating(conn, when) as evaluation:
        # the pools, each with why the pipeline cannot read it (the reason its exposures get), or NULL
        listed = evaluation.listed("listed", [{"pool_id": pool_id, "unreadable": _why(unreadable.get(pool_id))}
                                              for pool_id in pool_ids],
                                   sa.Column("pool_id", sa.Integer, primary_key=True),
                                   sa.Column("unreadable", sa.Text))
        table = (worklist_query(when, None, include_all=True)
                 .add_columns(e.c.version.label("exposure_version"), e.c.pool_id.label("pool_id"))
                 .where(e.c.pool_id.in_(sa.select(listed.c.pool_id)))
                 .order_by(None).subquery("published"))
        readable = [pool_id for pool_id in pool_ids if pool_id not in unreadable]
        answers = None
        if readable:
            evaluation.run(readable)
            answers = evaluation.answer()
        yield _answer_select(table, answers, include_all, listed if unreadable else None, ids)


def _why(unreadable: str | None) -> str | None:
    """The reason a pool's exposures get when the pipeline cannot read it (without the pool's name)."""
    return None if unreadable is None else unreadable.split(": ", 1)[1]


def _answer_select(table: sa.Subquery, answers: sa.Table | None, include_all: bool,
                   unreadable: sa.Table | None, ids: bool = True) -> sa.Select:
    """The published table's work list (``table``, every exposure) joined with the pipeline's answers;
    ``unreadable``: the pools (``pool_id``) with why the pipeline cannot read them (``unreadable``), when
    some pool has such a reason."""
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
    if unreadable is not None:
        reason = sa.func.coalesce(unreadable.c.unreadable, reason)
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
    joined = table.outerjoin(answers, answers.c.exposure_id == table.c.exposure_id)
    if unreadable is not None:
        joined = joined.join(unreadable, unreadable.c.pool_id == table.c.pool_id)
    query = (sa.select(*columns, (table.c.exposure_id if ids else sa.null()).label("exposure_id"),
                       table.c.exposure_version, table.c.pool_id)
             .select_from(joined)
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


#: A batch's answers as made, before they are stored (a temporary table, per connection), with each one's pool.
_FOUND = sa.Table("l2rules_tmp_found_answers", sa.MetaData(),
                  *(sa.Column(column.name, column.type) for column in schema.level2b_answer.c
                    if column.name in ANSWER_COLUMNS), sa.Column("pool_id", sa.Integer), prefixes=["TEMPORARY"])
#: The batch's pools (joined by the statements that replace their answers, not written into them as a list).
_BATCH = sa.Table("l2rules_tmp_answered_pools", sa.MetaData(), sa.Column("pool_id", sa.Integer, primary_key=True),
                  prefixes=["TEMPORARY"])


@takes_at
def evaluate(db: DB = None, pool_ids: Iterable[int] | None = None, *, at: At = None) -> list[int]:
    """Store the pipeline's answer at catalog point ``at`` (the head when None: ``level2b_answer``; another
    point: ``level2b_answer_at``) for every exposure of the pools whose answers there are missing or behind
    (or of ``pool_ids``); returns the pools evaluated.

    The same rows ``worklist(include_all=True, at=at)`` gives. The pools are evaluated together, in one pass
    per batch of consecutive pools (:data:`BATCH_EXPOSURES`); a batch's answers are made in one transaction,
    then replace its pools' old ones in one short second transaction (the catalog is not locked while they
    are made). A pool without the columns the pipeline needs is said once (a warning) and its exposures are
    stored as not selected, with that reason.
    """
    engine = require_migrated(db)
    when = resolve(engine, at)
    with engine.connect() as conn:
        revision = head_catalog_version(conn)
        todo = stale_pools(conn, revision, when=when) if pool_ids is None else list(dict.fromkeys(pool_ids))
        batches = _batches(conn, todo)
    if todo and when is not None:  # (storing at a point: the catalog has points, migration 0058)
        with engine.begin() as conn:  # (the head read again in the deleting transaction: a revision since)
            forget_behind(conn, head_catalog_version(conn))
    stored = sum(_evaluate_batch(engine, batch, when) for batch in batches)
    keep_statistics(engine, (_answer_table(when)[0].name,), stored)  # the views and `run` join the answers
    return todo


def _evaluate_batch(engine: sa.Engine, pool_ids: list[int], when: Point | None) -> int:
    """:func:`evaluate` for one batch of pools; returns how many answers were stored."""
    (a, of_point), e, p = _answer_table(when), schema.exposure, schema.pool
    # the head's answers carry the revision they are of; another point's, the point (its pool row the revision)
    columns = [*ANSWER_COLUMNS, "catalog_revision"] if when is None else ["point", *ANSWER_COLUMNS]
    # Made in one transaction into a temporary table (no lock on the catalog meanwhile: loads and runs
    # go on), then stored in a short second one. The state they are of is read first: a pool loaded again
    # meanwhile is recorded with its load before, so it stays stale for the next run.
    with engine.connect() as conn:
        try:
            with conn.begin():  # (the head and the loads read with the rules the answers are made from)
                revision = head_catalog_version(conn)
                loads = {pool_id: row.load_serial
                         for pool_id, row in _pool_rows(conn, pool_ids, p.c.load_serial).items()}
                _BATCH.create(conn)
                conn.execute(_BATCH.insert(), [{"pool_id": pool_id} for pool_id in loads])
                _FOUND.create(conn)
                with answers_of(conn, pool_ids, when, include_all=True, strict=False) as query:
                    found = query.order_by(None).subquery("found")
                    names = [*ANSWER_COLUMNS, "pool_id"]
                    conn.execute(_FOUND.insert().from_select(names, sa.select(*(found.c[n] for n in names))))
                counts = dict(conn.execute(sa.select(_FOUND.c.pool_id, sa.func.count())
                                           .group_by(_FOUND.c.pool_id)).all())
            with conn.begin():
                batch = sa.select(_BATCH.c.pool_id)
                conn.execute(a.delete().where(of_point, a.c.exposure_id.in_(sa.select(e.c.id)
                                                                            .where(e.c.pool_id.in_(batch)))))
                stamp = sa.literal(revision if when is None else when.key)
                made = [stamp.label(key) if key in ("point", "catalog_revision") else _FOUND.c[key]
                        for key in columns]
                insert = a.insert().from_select(columns, sa.select(*made))
                # (psycopg: rowcount -1 without preserve_rowcount)
                count = conn.execute(insert.execution_options(preserve_rowcount=True)).rowcount
                _record_answers(conn, when, loads, revision)
        finally:
            with conn.begin():
                _FOUND.drop(conn, checkfirst=True)
                _BATCH.drop(conn, checkfirst=True)
    for pool_id in pool_ids:
        log.info("pool %s: %d answers stored at %s (head catalog revision %s)", pool_id, counts.get(pool_id, 0),
                 "the head" if when is None else when, revision)
    return count


def _record_answers(conn: sa.Connection, when: Point | None, loads: dict[int, int], revision: str) -> None:
    """Which load of each pool of the batch (``loads``: pool id -> load), at which head revision, its stored
    answers at ``when`` are of (one statement, executed per pool: a lookup by the key each)."""
    p, at = schema.pool, schema.pool_answers_at
    stamps = [{"b_pool": pool_id, "b_load": load} for pool_id, load in loads.items()]
    if not stamps:
        return
    if when is None:
        conn.execute(p.update().where(p.c.id == sa.bindparam("b_pool"))
                     .values(answers_load=sa.bindparam("b_load"), answers_revision=revision), stamps)
        return
    conn.execute(at.delete().where(at.c.pool_id.in_(sa.select(_BATCH.c.pool_id)), at.c.point == when.key))
    conn.execute(at.insert().values(pool_id=sa.bindparam("b_pool"), point=when.key, answers_load=sa.bindparam("b_load"),
                                    answers_revision=revision), stamps)


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
    conn.execute(at.delete().where(sa.exists().where(p.c.id == at.c.pool_id, behind)))


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
