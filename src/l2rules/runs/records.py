"""The run record (the ``run`` table): its columns, a run's row started, failed or recovered,
and read back.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import schema
from .._lazy import pandas as pd
from ..config import DB, DatabaseError, L2RulesError, describe
from ..migrate import require_migrated
from ..worklist import head_catalog_version

log = logging.getLogger("l2rules.runs")  # (one logger for the package, as before the split)


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


_COUNTS = ("exposures_seen", "exposures_new", "exposures_changed", "exposures_withdrawn", "exposures_taken_over",
           "items_created", "items_changed", "items_withdrawn", "exposures_unmatched", "rows_rejected",
           "items_reissued")


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
