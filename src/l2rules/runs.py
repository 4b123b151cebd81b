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
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from . import console, outputs, schema
from ._lazy import pandas as pd
from .config import DB, DatabaseError, L2RulesError, describe
from .inventory import InventoryError, keep_statistics, load, stdin, unchanged_pool
from .inventory.store import phase_bar
from .migrate import require_migrated
from .published import without_rule
from .worklist import evaluate, head_catalog_version

log = logging.getLogger("l2rules.runs")

#: The PostgreSQL advisory lock key of the run lock ("l2r-runs" as a big-endian int64).
LOCK_KEY = int.from_bytes(b"l2r-runs", "big")
#: Seconds between two tries for the lock while waiting.
POLL = 0.2
#: Columns of the run record, as :func:`run` returns it and ``l2rules run --format json`` prints it.
RECORD_COLUMNS = [
    "run_id", "status", "started_at", "finished_at", "catalog_revision", "inputs",
    "exposures_seen", "exposures_new", "exposures_changed", "exposures_withdrawn", "exposures_taken_over",
    "items_created", "items_changed", "items_withdrawn", "exposures_unmatched", "rows_rejected", "items_reissued",
    "reissued_by", "output", "error", "host", "pid",
]
#: The SQL type of each column of :func:`runs` (the ``run`` table's), which their dtypes follow
#: (``outputs.typed``); ``inputs`` is left out: it stays the record's list of paths (no dtype holds lists).
RECORD_TYPES = {"run_id": schema.run.c.id.type,
                **{c.name: c.type for c in schema.run.c if c.name not in ("id", "inputs")}}
#: Columns of the work items a run writes (``--output``) and :func:`items` returns: the pipeline's answer for the
#: exposure (as ``l2rules worklist`` gives it) when the item was made.
ITEM_COLUMNS = ["pool", "source_line", "filename", "exp_type", "exptype", "asn_type", "level2b_input",
                "association", "asn_rule", "program", "obs_num", "work_item_id", "catalog_revision", "run_id"]
#: What a work item holds of the answer: an item differs from the answer when one of these does.
ANSWER_FIELDS = ("exptype", "asn_type", "level2b_input", "association", "asn_rule")
_COUNTS = ("exposures_seen", "exposures_new", "exposures_changed", "exposures_withdrawn", "exposures_taken_over",
           "items_created", "items_changed", "items_withdrawn", "exposures_unmatched", "rows_rejected",
           "items_reissued")


class RunInProgress(L2RulesError):
    """Another run holds the run lock of this database."""

    exit_code = 5


# --- the run lock --------------------------------------------------------------------------------

class RunLock:
    """One run at a time per database, released by the operating system or the server if the process dies.

    PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a
    connection of its own for the whole run; the server releases it when the
    connection ends, including when the process is killed. SQLite: an exclusive
    ``flock`` on ``<database file>.run-lock`` beside the database, which the
    kernel releases when the process ends. (A SQLite write transaction cannot
    serve: the run's loads write through other connections.) An in-memory SQLite
    database cannot be shared, so it needs no lock.
    """

    def __init__(self, engine: Engine, wait: float = 0.0):
        self.engine, self.wait = engine, max(0.0, float(wait or 0))
        self._conn: sa.Connection | None = None
        self._file = None

    def _try(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            return bool(self._conn.execute(sa.select(sa.func.pg_try_advisory_lock(LOCK_KEY))).scalar())
        path = self.lock_path(self.engine)
        if path is None:
            return True
        import fcntl

        if self._file is None:
            try:
                self._file = open(path, "a+")
            except OSError as exc:
                raise DatabaseError(f"cannot open the run lock {path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    @staticmethod
    def lock_path(engine: Engine) -> Path | None:
        if engine.dialect.name != "sqlite":
            return None
        database = engine.url.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return None
        return Path(database).resolve().with_name(Path(database).name + ".run-lock")

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while not self._try():
            if time.monotonic() >= deadline:
                self.release()
                raise RunInProgress(f"another run is in progress on {describe(self.engine)}{_holder(self.engine)}"
                                    + (f" (waited {self.wait:g} s)" if self.wait else ""))
            time.sleep(POLL)

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(sa.select(sa.func.pg_advisory_unlock(LOCK_KEY)))
                self._conn.close()
            except Exception:  # the server ends the session, and the lock with it
                self._conn.invalidate()
            self._conn = None
        if self._file is not None:
            self._file.close()  # closing the file releases the flock
            self._file = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(engine: Engine) -> str:
    """Who holds the lock, as far as the run record tells."""
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(schema.run).where(schema.run.c.status == "running")
                               .order_by(schema.run.c.id.desc()).limit(1)).mappings().first()
    except sa.exc.SQLAlchemyError:
        return ""
    if row is None:
        return ""
    return f": run {row['id']} started {_iso(row['started_at'])} by pid {row['pid']} on {row['host']}"


# --- the run -------------------------------------------------------------------------------------

@dataclass
class _Input:
    path: Path
    pool_id: int | None = None
    skipped: bool = False
    counts: dict = field(default_factory=dict)


def input_paths(pools: Iterable[str | Path] | None = None, inventory_dir: str | Path | None = None) -> list[Path]:
    """The inputs a run reads: the POOLs given (pool files, or FITS files, directories or patterns),
    then every ``*.csv`` of ``inventory_dir`` (sorted)."""
    paths = [Path(p) for p in (pools or [])]
    if inventory_dir is not None:
        directory = Path(inventory_dir)
        if not directory.is_dir():
            raise InventoryError(str(directory), None, None, "no such directory")
        paths += sorted(p for p in directory.glob("*.csv") if p.is_file())
    from .inventory import fits

    for path in paths:
        # FITS input (a directory, a glob pattern, .fits files) is read as one pool each, as `load` does
        if not stdin.is_stdin(path) and not path.is_file() and not fits.is_fits_path(path):
            from .inventory.poolformat import not_a_file

            raise InventoryError(str(path), None, None, not_a_file(path))
    return paths


def _check_output(output: str | None) -> None:
    if output is None:
        return
    # A missing directory is created when the output is written (as `asn --output` does): check now,
    # before the run, that the nearest one that exists is a directory it can be created in.
    parent = Path(output.replace("{run_id}", "0")).resolve().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InventoryError(output, None, None, f"{parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise InventoryError(output, None, None, f"output directory {parent} is not writable")


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


def _require_runs_schema(engine: Engine) -> None:
    if not sa.inspect(engine).has_table("run"):
        raise DatabaseError(f"database {describe(engine)} has no run table; run `l2rules init` to upgrade it")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _recover(engine: Engine, me: int | None) -> list[int]:
    """Mark as failed the runs left ``running``: we hold the lock, so their processes are gone."""
    r = schema.run
    by = f"run {me}" if me is not None else "`l2rules runs --recover`"
    with engine.begin() as conn:
        dead = conn.execute(sa.select(r.c.id, r.c.pid, r.c.host).where(r.c.status == "running", r.c.id != me)
                            .order_by(r.c.id)).all()
        for run_id, pid, host in dead:
            conn.execute(r.update().where(r.c.id == run_id).values(
                status="failed", finished_at=_now(),
                error=f"process {pid} on {host} ended before the run finished (killed or crashed); "
                      f"marked failed by {by}"))
    for run_id, pid, host in dead:
        log.warning("run %s (pid %s on %s) died while running; marked failed", run_id, pid, host)
    return [row[0] for row in dead]


def _start(engine: Engine, paths: list[Path]) -> int:
    r = schema.run
    with engine.begin() as conn:
        return conn.execute(r.insert().values(
            started_at=_now(), status="running", inputs=json.dumps([str(p) for p in paths]),
            catalog_revision=head_catalog_version(conn),
            host=socket.gethostname(), pid=os.getpid(), **{c: 0 for c in _COUNTS},
        ).returning(r.c.id)).scalar_one()


def _versions(conn: sa.Connection, pool_id: int) -> dict[int, int]:
    """The versions of a pool's current exposures, by id: the loader raises one when a reload changes it."""
    e = schema.exposure
    return dict(conn.execute(sa.select(e.c.id, e.c.version).where(e.c.pool_id == pool_id,
                                                                 e.c.withdrawn_at.is_(None))).all())


def _withdrawn_by_load(conn: sa.Connection, pool_id: int) -> int:
    """How many exposures the pool's latest load withdrew (the load marks them with its time)."""
    e, p = schema.exposure, schema.pool
    this_load = sa.select(p.c.loaded_at).where(p.c.id == pool_id).scalar_subquery()
    return conn.execute(sa.select(sa.func.count()).where(e.c.pool_id == pool_id,
                                                         e.c.withdrawn_at == this_load)).scalar_one()


def _load_inputs(engine: Engine, paths: list[Path], skip_bad: bool, progress: bool | None) -> tuple[list[_Input], dict]:
    p = schema.pool
    counts = {"exposures_seen": 0, "exposures_new": 0, "exposures_changed": 0, "exposures_withdrawn": 0,
              "exposures_taken_over": 0, "rows_rejected": 0}
    inputs = []
    from .inventory import fits

    for path in paths:
        item = _Input(path)
        # FITS input has no one file to digest: it is always read (the loader versions what changed)
        name = fits.pool_name(str(path)) if fits.is_fits_source(str(path)) else stdin.resolved(path).name
        unchanged = unchanged_pool(engine, path, skip_bad=skip_bad, whole=False)
        with engine.connect() as conn:
            known = conn.execute(sa.select(p.c.id, p.c.n_exposures).where(p.c.name == name)).first()
            before = _versions(conn, known.id) if known and unchanged is None else None
        if unchanged is not None:
            item.pool_id, item.skipped = known.id, True
            counts["exposures_seen"] += known.n_exposures
            log.info("%s: unchanged since its last load, skipped", path)
            inputs.append(item)
            continue
        result = load(engine, path, skip_bad=skip_bad, progress=progress)
        item.pool_id = result.pool_id
        changed = withdrawn = 0
        if before:
            with engine.connect() as conn:
                after = _versions(conn, result.pool_id)
                withdrawn = _withdrawn_by_load(conn, result.pool_id)
            changed = sum(1 for i, version in after.items() if i in before and version != before[i])
        counts["exposures_seen"] += result.loaded
        counts["exposures_new"] += result.inserted
        counts["exposures_changed"] += changed
        counts["exposures_withdrawn"] += withdrawn
        counts["exposures_taken_over"] += sum(result.taken_over.values())
        counts["rows_rejected"] += result.rejected
        log.info("%s: %d exposures, %d new, %d changed, %d withdrawn, %d taken over from other pools, %d rows "
                 "rejected", path, result.loaded, result.inserted, changed, withdrawn,
                 sum(result.taken_over.values()), result.rejected)
        inputs.append(item)
    return inputs, counts


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


def _fail(engine: Engine, run_id: int, exc: BaseException) -> dict | None:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, sa.exc.SQLAlchemyError):
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    # an exit raised in a signal handler (the CLI's SIGTERM, cli._SigTerm) stopped the run
    kind = "Terminated" if isinstance(exc, SystemExit) else type(exc).__name__
    try:
        with engine.begin() as conn:
            conn.execute(schema.run.update().where(schema.run.c.id == run_id)
                         .values(status="failed", finished_at=_now(), error=f"{kind}: {text}"))
        return record(engine, run_id)
    except Exception as second:  # the database itself may be what failed; the next run recovers the row
        log.warning("run %s: could not record the failure (%s); the next run will", run_id, second)
        return None


# --- reading runs and items ----------------------------------------------------------------------

def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value.tzinfo is None:  # SQLite keeps no offset; runs store UTC
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat()


def _as_record(row) -> dict:
    out = {"run_id": row["id"], **{c: row[c] for c in RECORD_COLUMNS[1:]}}
    out["started_at"], out["finished_at"] = _iso(out["started_at"]), _iso(out["finished_at"])
    out["inputs"] = json.loads(out["inputs"]) if out["inputs"] else []
    return out


def record(db: DB, run_id: int) -> dict:
    """One run's record."""
    engine = require_migrated(db)
    with engine.connect() as conn:
        row = conn.execute(sa.select(schema.run).where(schema.run.c.id == run_id)).mappings().first()
    if row is None:
        raise L2RulesError(f"no run {run_id}")
    return _as_record(row)


def lock_held(engine: Engine) -> bool:
    """Whether a run holds the run lock now, found without writing anything.

    PostgreSQL: the server's lock table (``pg_locks``) is read; no lock is taken.
    SQLite: a shared ``flock`` on the lock file is tried and let go at once (a file
    that does not exist was never locked). A run starting in that instant finds the
    lock taken and exits 5, as it would behind any run; the next one proceeds.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1)"),
                {"hi": LOCK_KEY >> 32, "lo": LOCK_KEY & 0xFFFFFFFF}).scalar())
    path = RunLock.lock_path(engine)
    if path is None or not path.exists():
        return False
    import fcntl

    try:
        handle = open(path)
    except OSError as exc:
        raise DatabaseError(f"cannot read the run lock {path}: {exc.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


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
    running = [rec for rec in records if rec["status"] == "running"]
    if running:
        alive = max(rec["run_id"] for rec in running) if lock_held(engine) else None
        for rec in running:
            if rec["run_id"] != alive:
                rec["status"] = "dead"
                rec["error"] = (f"process {rec['pid']} on {rec['host']} ended before the run finished (killed or "
                                "crashed); the next run, or `l2rules runs --recover`, marks it failed")
    if status in ("running", "dead"):
        records = [rec for rec in records if rec["status"] == status]
        if last:
            records = records[-last:]
    return outputs.typed(pd.DataFrame(records, columns=RECORD_COLUMNS), RECORD_TYPES)


#: How a run's ``inputs`` (a list of paths) is written where a cell holds text (CSV, the terminal table).
INPUTS_SEPARATOR = ";"


def joined_inputs(inputs: list[str] | None) -> str:
    """A run's ``inputs`` as one text cell: the paths joined by :data:`INPUTS_SEPARATOR` ("" for none).

    The one text form of the list that :func:`runs` and :func:`record` hold (and JSON
    writes as a list): ``cell.split(";")`` gives the paths back (``[]`` for "").
    """
    return INPUTS_SEPARATOR.join(inputs or [])


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The run record with ``inputs`` as text (:func:`joined_inputs`), for CSV and the terminal table."""
    return frame.assign(inputs=frame["inputs"].map(joined_inputs))


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
