"""Scheduled runs: incremental, idempotent, crash-safe work-list generation.

One run (``l2rules run`` or :func:`run`):

1. takes the run lock (one run at a time per database; see :class:`RunLock`),
   or fails at once with :class:`RunInProgress` (exit code 5), or waits ``wait`` seconds for it;
2. records itself in ``run`` (status ``running``, the head catalog revision) and commits that;
3. marks any other run still recorded as ``running`` as ``failed``: holding the
   lock proves its process is gone (killed, crashed, machine rebooted);
4. loads the inputs that are new or changed (a file whose SHA-256 equals the
   pool already loaded under its name is skipped), each in its own transaction,
   and records the load counts;
5. stores the pipeline's answer at the head catalog revision for every pool whose
   answers are missing or behind (:func:`l2rules.worklist.evaluate`: what
   ``l2rules worklist`` gives, kept in ``level2b_answer``);
6. in one transaction, inserts a work item for every exposure the pipeline selects
   that has none yet, whose latest item was issued for another version of it (a
   redelivery changed it), or whose latest item was made under another catalog
   revision and differs from the answer now (``INSERT ... SELECT`` from the stored
   answers, ``ON CONFLICT DO NOTHING`` on the unique (exposure, catalog revision,
   exposure version) key); withdraws the latest item of every exposure a
   redelivery left out; and stores the counts;
7. writes the new items (and those of failed runs, whose output may be lost) to
   ``output`` when asked, atomically (temporary file, then rename);
8. marks itself ``succeeded``.

A run killed at any point leaves either no items (killed before step 5 commits)
or its items committed with status ``running``; the next run marks it failed and
reissues its items in its own output. Work items are made exactly once; output
files are at-least-once.

The package, by part (this module: the verbs, :func:`run`, :func:`runs` and :func:`recover`):

- ``lock``: the run lock (:class:`RunLock`), whether a run holds it, which recorded runs are dead;
- ``records``: the run record, its columns, written and read (:func:`record`);
- ``inputs``: the paths a run reads, loaded and counted;
- ``work_items``: the work items made, withdrawn and read (:func:`items`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import console, outputs, schema
from .._lazy import pandas as pd
from ..config import DB
from ..inventory import InventoryError, keep_statistics
from ..inventory.store import phase_bar
from ..migrate import require_migrated
from ..published import without_rule
from ..worklist import evaluate, head_catalog_version
from .inputs import _check_output, _load_inputs, input_paths
from .lock import LOCK_KEY, POLL, RunInProgress, RunLock, dead_runs, lock_held
from .records import (
    INPUTS_SEPARATOR,
    RECORD_COLUMNS,
    RECORD_TYPES,
    _as_record,
    _fail,
    _now,
    _recover,
    _require_runs_schema,
    _start,
    as_text,
    joined_inputs,
    record,
)
from .work_items import ANSWER_FIELDS, ITEM_COLUMNS, Made, items, items_pending, make_items

__all__ = ["ANSWER_FIELDS", "INPUTS_SEPARATOR", "ITEM_COLUMNS", "LOCK_KEY", "POLL", "RECORD_COLUMNS", "RECORD_TYPES",
           "SHOWN_STATUSES", "Made", "RunInProgress", "RunLock", "as_text", "dead_runs", "input_paths", "items",
           "items_pending", "joined_inputs", "lock_held", "make_items", "record", "recover", "run", "runs"]


log = logging.getLogger("l2rules.runs")  # (one logger for the package, as before the split)


def run(db: DB = None, pools: Iterable[str | Path] | None = None, *, inventory_dir: str | Path | None = None,
        output: str | Path | None = None, output_format: str | None = None, skip_bad: bool = False,
        wait: float = 0.0, progress: bool | None = None, create: bool = False) -> dict:
    """One scheduled run; returns its record (see :data:`RECORD_COLUMNS`).

    A database without a catalog is an error (exit code 3) unless ``create`` is
    set (``l2rules run --create``): then a new SQLite file is created and migrated.

    ``output`` may contain ``{run_id}``; it is written only when the run made or
    reissued work items. Raises :class:`RunInProgress` when another run holds the
    lock for longer than ``wait`` seconds; any other error marks the run failed
    and is raised with the record attached as ``exc.run_record``.
    """
    engine = require_migrated(db, create=create)
    _require_runs_schema(engine)
    paths = input_paths(pools, inventory_dir)
    output = None if output is None else str(output)
    _check_output(output)
    if output_format is not None and output is None:
        raise InventoryError("--output-format", None, None, "an output format needs an output path (--output)")
    fmt = outputs.output_format(output, output_format) if output else None

    with RunLock(engine, wait):
        run_id = _start(engine, paths)
        _recover(engine, run_id)
        _checkpoint("started")
        try:
            record = _work(engine, run_id, paths, output, fmt, skip_bad, progress)
        except BaseException as exc:  # (an exit too: the CLI's SIGTERM raises one, see cli._SigTerm)
            record = _fail(engine, run_id, exc)
            exc.run_record = record  # type: ignore[attr-defined]
            raise
    return record


def _unmatched(conn: sa.Connection, pool_ids: list[int] | None) -> int:
    e = schema.exposure
    query = sa.select(sa.func.count()).select_from(e).where(without_rule(e))
    if pool_ids is not None:
        query = query.where(e.c.pool_id.in_(pool_ids))
    return conn.execute(query).scalar_one()


def _work(engine: Engine, run_id: int, paths: list[Path], output: str | None, fmt: str | None,
          skip_bad: bool, progress: bool | None) -> dict:
    r = schema.run
    inputs, counts = _load_inputs(engine, paths, skip_bad, progress)
    with engine.begin() as conn:  # what the loads did stays on record even if the run dies after them
        conn.execute(r.update().where(r.c.id == run_id).values(**counts))
    counts["items_reissued"] = 0
    _checkpoint("loaded")
    with engine.connect() as conn:
        revision = head_catalog_version(conn)
    # The pipeline's answers: after the loads' bars, a label while they are made (a terminal only)
    with phase_bar(console.progress(progress), "work list"):
        evaluated = evaluate(engine)
    if evaluated:
        log.info("run %s: the pipeline's answers of %d pool(s) stored at catalog revision %s", run_id,
                 len(evaluated), revision)
    _checkpoint("evaluated")
    with engine.begin() as conn:
        # From the answers stored at `revision` (should `init` move the head meanwhile, the next run follows)
        made = make_items(conn, run_id, revision)
        counts.update(items_created=made.created, items_changed=made.changed, items_withdrawn=made.withdrawn)
        counts["exposures_unmatched"] = _unmatched(conn, [i.pool_id for i in inputs] if paths else None)
        # Items of failed runs, whose output may never have been written: this run's output carries them.
        failed = sa.select(r.c.id).where(r.c.status == "failed", r.c.reissued_by.is_(None), r.c.id != run_id)
        orphans = conn.execute(sa.select(schema.work_item.c.run_id).where(schema.work_item.c.run_id.in_(failed))
                               .distinct().order_by(schema.work_item.c.run_id)).scalars().all()
        if orphans:
            conn.execute(r.update().where(r.c.id.in_(orphans)).values(reissued_by=run_id))
            counts["items_reissued"] = conn.execute(
                sa.select(sa.func.count()).where(schema.work_item.c.run_id.in_(orphans))).scalar_one()
            log.warning("reissuing %d work items of failed run(s) %s", counts["items_reissued"],
                        ", ".join(map(str, orphans)))
        conn.execute(r.update().where(r.c.id == run_id).values(catalog_revision=revision, **counts))
        _checkpoint("items")
    _checkpoint("committed")
    keep_statistics(engine, ("work_item", "run"), made.created + made.changed + made.withdrawn)
    if made.stale:
        log.warning("%d work items differ from what the rules of catalog revision %s give, which were edited "
                    "without a new revision: the key (exposure, revision, exposure version) allows no second "
                    "item (see v_current_worklist)", made.stale, revision)
    log.info("run %s: %d work items made (%d for changed exposures), %d withdrawn, at catalog revision %s",
             run_id, made.created, made.changed, made.withdrawn, revision)
    written = None
    if output is not None and made.created + counts["items_reissued"] > 0:
        written = output.replace("{run_id}", str(run_id))
        outputs.write(items(engine, [run_id, *orphans]), fmt, written)  # all or nothing
        log.info("run %s: work items written to %s", run_id, written)
    _checkpoint("written")
    with engine.begin() as conn:
        conn.execute(r.update().where(r.c.id == run_id).values(status="succeeded", finished_at=_now(),
                                                                output=written))
    return record(engine, run_id)


def recover(db: DB = None) -> list[int]:
    """Mark as failed the runs recorded ``running`` whose process is gone; returns their ids.

    ``l2rules runs --recover``; every run does it too, at its start. Only when no
    run holds the lock (then no recorded run is alive): while one does, that run
    recovers the others itself, and nothing is done here.
    """
    engine = require_migrated(db)
    _require_runs_schema(engine)
    with engine.connect() as conn:  # the usual case: nothing to recover, and no lock taken from a starting run
        if not conn.execute(sa.select(sa.func.count()).where(schema.run.c.status == "running")).scalar_one():
            return []
    lock = RunLock(engine)
    try:
        lock.acquire()
    except RunInProgress:
        log.info("a run is in progress: it marks the dead runs failed itself")
        return []
    try:
        return _recover(engine, None)
    finally:
        lock.release()


#: The statuses ``runs`` shows: the stored ones, and ``dead`` (recorded ``running``, no process holds the lock).
SHOWN_STATUSES = ("running", "succeeded", "failed", "dead")


def runs(db: DB = None, last: int | None = None, status: str | None = None) -> pd.DataFrame:
    """The run record, oldest first (only the ``last`` N runs if given); reads only.

    One row per run, the columns of :data:`RECORD_COLUMNS`, as :func:`record` has them:
    ``inputs`` is the list of the run's input paths (see :func:`as_text` for CSV).

    A run recorded ``running`` whose process is gone shows as ``dead`` (only the
    newest ``running`` run can be alive, and only while a run holds the lock); the
    record itself is changed by the next run, or by :func:`recover`.
    """
    engine = require_migrated(db)
    _require_runs_schema(engine)
    r = schema.run
    query = sa.select(r).order_by(r.c.id.desc())
    if status:
        query = query.where(r.c.status == ("running" if status == "dead" else status))
    with engine.connect() as conn:
        rows = conn.execute(query.limit(last) if last and status not in ("running", "dead") else query).mappings().all()
    records = [_as_record(row) for row in reversed(rows)]
    dead = dead_runs(engine, [rec["run_id"] for rec in records if rec["status"] == "running"])
    for rec in records:
        if rec["run_id"] in dead:
            rec["status"] = "dead"
            rec["error"] = (f"process {rec['pid']} on {rec['host']} ended before the run finished (killed or "
                            "crashed); the next run, or `l2rules runs --recover`, marks it failed")
    if status in ("running", "dead"):
        records = [rec for rec in records if rec["status"] == status]
        if last:
            records = records[-last:]
    return outputs.typed(pd.DataFrame(records, columns=RECORD_COLUMNS), RECORD_TYPES)


# --- test hook -----------------------------------------------------------------------------------

def _checkpoint(stage: str) -> None:
    """For crash tests and drills: with ``L2RULES_RUN_HOLD=<stage>``, stop there for a while.

    Stages, in order: ``started`` (run recorded), ``loaded`` (inputs loaded), ``evaluated`` (answers stored),
    ``items`` (items inserted, transaction not yet committed), ``committed``,
    ``written`` (output written, status not yet succeeded). When
    ``L2RULES_RUN_HOLD_FILE`` is set, that file is created on arrival.
    """
    if os.environ.get("L2RULES_RUN_HOLD") != stage:
        return
    marker = os.environ.get("L2RULES_RUN_HOLD_FILE")
    if marker:
        Path(marker).write_text(f"{stage} {os.getpid()}\n")
    print(f"l2rules: holding at stage {stage!r} (L2RULES_RUN_HOLD)", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get("L2RULES_RUN_HOLD_SECONDS", "60")))
