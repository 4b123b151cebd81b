"""Work items: made from the stored answers in one statement per run, withdrawn with their
exposures, and read back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .. import outputs, schema
from .._lazy import pandas as pd
from ..config import DB
from ..migrate import require_migrated
from .records import _now

#: Columns of the work items a run writes (``--output``) and :func:`items` returns: the pipeline's answer for the
#: exposure (as ``l2rules worklist`` gives it) when the item was made.
ITEM_COLUMNS = ["pool", "source_line", "filename", "exp_type", "exptype", "asn_type", "level2b_input",
                "association", "asn_rule", "program", "obs_num", "work_item_id", "catalog_revision", "run_id"]
#: What a work item holds of the answer: an item differs from the answer when one of these does.
ANSWER_FIELDS = ("exptype", "asn_type", "level2b_input", "association", "asn_rule")


def _insert(conn: sa.Connection):
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _needed(revision: str, pool_ids: list[int]) -> tuple[sa.Select, sa.ColumnElement, sa.ColumnElement,
                                                         sa.ColumnElement]:
    """The exposures of ``pool_ids`` the pipeline selects (their stored answers at ``revision``) joined with
    their latest work item; and the 'needs a new item', 'the exposure changed since its item' and 'stale' tests."""
    e, a, p, wi = schema.exposure, schema.level2b_answer, schema.pool, schema.work_item
    wl = (sa.select(p.c.name.label("pool"), e.c.source_line, e.c.exp_type, e.c.id.label("exposure_id"),
                    e.c.version.label("exposure_version"), *(a.c[name] for name in ANSWER_FIELDS))
          .join_from(a, e, e.c.id == a.c.exposure_id).join(p, p.c.id == e.c.pool_id)
          .where(a.c.level2b == sa.true(), a.c.catalog_revision == revision, a.c.exposure_version == e.c.version,
                 e.c.withdrawn_at.is_(None), e.c.pool_id.in_(pool_ids))
          .subquery("wl"))
    li, w2 = wi.alias("li"), wi.alias("w2")
    # Each exposure's latest item, for the pools' exposures at once (a join, not a lookup per work-list row:
    # that ran once per exposure, 11 minutes for 200,000 on a server without statistics)
    latest = (sa.select(w2.c.exposure_id, sa.func.max(w2.c.id).label("id"))
              .where(w2.c.exposure_id.in_(sa.select(e.c.id).where(e.c.pool_id.in_(pool_ids))))
              .group_by(w2.c.exposure_id).subquery("latest"))
    same = sa.and_(*(li.c[name].is_not_distinct_from(wl.c[name]) for name in ANSWER_FIELDS))
    # A new version of the exposure (a redelivery changed it, or it came back after a withdrawal; see
    # inventory.py) needs a new item whatever the rules give: the data to process are not the same.
    changed = sa.and_(li.c.id.is_not(None), li.c.exposure_version != wl.c.exposure_version)
    needs = sa.or_(li.c.id.is_(None), changed, sa.and_(li.c.catalog_revision != revision, sa.not_(same)))
    # Only when the rules were edited without a new catalog revision: the key allows no second item.
    stale = sa.and_(li.c.catalog_revision == revision, li.c.exposure_version == wl.c.exposure_version,
                    sa.not_(same))
    base = (sa.select(wl).select_from(wl).outerjoin(latest, latest.c.exposure_id == wl.c.exposure_id)
            .outerjoin(li, li.c.id == latest.c.id))
    return base, needs, changed, stale


@dataclass
class Made:
    """What :func:`make_items` did."""

    created: int  # items made
    changed: int  # of those, for exposures whose version changed since their latest item
    withdrawn: int  # items withdrawn: their exposure left its pool
    stale: int  # items that differ from what the rules give, at the same revision and exposure version


def items_pending(conn: sa.Connection, revision: str) -> dict[int, int | None]:
    """The pools whose answers at ``revision`` are newer than their work items (migration 0021), each with
    the load its answers are of: the pools a run makes items for, not every pool of the catalog."""
    p = schema.pool
    return dict(conn.execute(
        sa.select(p.c.id, p.c.answers_load).where(p.c.answers_revision == revision,
                                                  sa.or_(p.c.items_load.is_distinct_from(p.c.answers_load),
                                                         p.c.items_revision.is_distinct_from(p.c.answers_revision)))
        .order_by(p.c.id)).all())


def make_items(conn: sa.Connection, run_id: int, revision: str) -> Made:
    """Insert the work items the catalog lacks, in one statement, and withdraw those of withdrawn exposures:
    for the pools whose answers changed since their items were made (:func:`items_pending`), which are
    then marked up to date, in the same transaction."""
    wi, e, p = schema.work_item, schema.exposure, schema.pool
    pending = items_pending(conn, revision)
    pool_ids = list(pending)
    if not pool_ids:
        return Made(0, 0, 0, 0)
    base, needs, changed, stale = _needed(revision, pool_ids)
    wl = base.selected_columns
    now = _now()
    n_changed = conn.execute(base.with_only_columns(sa.func.count()).where(changed)).scalar_one()
    columns = ["exposure_id", "catalog_revision", "exposure_version", "run_id", "created_at", "exp_type",
               *ANSWER_FIELDS]
    select = base.with_only_columns(
        wl.exposure_id, sa.literal(revision, sa.String), wl.exposure_version, sa.literal(run_id, sa.Integer),
        sa.literal(now, sa.DateTime(timezone=True)), wl.exp_type, *(wl[name] for name in ANSWER_FIELDS),
    ).where(needs).order_by(wl.pool, wl.source_line)  # ids in work-list order
    statement = (_insert(conn)(wi).from_select(columns, select)
                 .on_conflict_do_nothing(index_elements=["exposure_id", "catalog_revision", "exposure_version"]))
    conn.execute(statement)
    made = conn.execute(sa.select(sa.func.count()).where(wi.c.run_id == run_id)).scalar_one()
    # The latest item of an exposure a redelivery left out leaves the work list; older items of the
    # exposure were superseded by it, not withdrawn.
    w2 = wi.alias("w2")
    latest_of_withdrawn = (sa.select(sa.func.max(w2.c.id))
                           .where(w2.c.exposure_id.in_(sa.select(e.c.id).where(e.c.withdrawn_at.is_not(None),
                                                                               e.c.pool_id.in_(pool_ids))))
                           .group_by(w2.c.exposure_id))
    withdrawn = conn.execute(
        wi.update().where(wi.c.withdrawn_at.is_(None), wi.c.id.in_(latest_of_withdrawn))
        .values(withdrawn_at=now, withdrawn_by=run_id)).rowcount
    n_stale = conn.execute(base.with_only_columns(sa.func.count()).where(stale)).scalar_one()
    # the answers read above, not the pool row as it is now: answers stored meanwhile (an `evaluate` outside
    # a run) leave the pool pending for the next run
    for pool_id, answers_load in pending.items():
        conn.execute(p.update().where(p.c.id == pool_id).values(items_load=answers_load, items_revision=revision))
    return Made(made, n_changed, withdrawn, n_stale)


def items(db: DB = None, run_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """Work items (of the given runs, or all), with the work-list columns of their exposures."""
    engine = require_migrated(db)
    wi, e, p = schema.work_item, schema.exposure, schema.pool
    query = (
        sa.select(p.c.name.label("pool"), e.c.source_line, e.c.filename, wi.c.exp_type, wi.c.exptype,
                  wi.c.asn_type, wi.c.level2b_input, wi.c.association, wi.c.asn_rule, e.c.program, e.c.obs_num,
                  wi.c.id.label("work_item_id"), wi.c.catalog_revision, wi.c.run_id)
        .join_from(wi, e, e.c.id == wi.c.exposure_id).join(p, p.c.id == e.c.pool_id)
        .order_by(p.c.name, e.c.source_line, wi.c.id)
    )
    if run_ids is not None:
        query = query.where(wi.c.run_id.in_(list(run_ids)))
    with engine.connect() as conn:
        return outputs.query_frame(conn, query, ITEM_COLUMNS)
