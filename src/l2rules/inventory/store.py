"""The store: what a load writes besides its rows (the pool, the rejections), and how it writes fast.

Both load paths (``rows``, ``columnar``) use these: the pool row, the indexes a load into
an empty catalog drops and builds again at its end, exposure ids drawn on PostgreSQL, the
end of a load in its transaction, and the SQLite WAL truncated after a large load.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass, field

import sqlalchemy as sa

from .. import schema
from .._lazy import pandas as pd
from ..config import DB, CatalogError
from ..migrate import require_migrated
from ..outputs import query_frame
from .poolformat import InventoryError


@dataclass
class LoadResult:
    """What one load did."""

    source: str
    pool_id: int | None = None
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    template_rows: int = 0
    rejections: list[InventoryError] = field(default_factory=list)
    #: "bulk" (columnar, see ``inventory.columnar``) or "rows" (line by line).
    method: str = "rows"
    #: Why the bulk path gave the load to the row loader, when it did.
    declined: str | None = None
    #: Of the ``updated`` exposures, those whose values changed (a new version); counted for FITS loads only.
    changed: int | None = None
    #: Of the ``updated`` exposures, those that were another pool's: how many, by that pool's id.
    taken_over: dict[int, int] = field(default_factory=dict)
    #: The same by the other pool's name, for the load's summary.
    taken_from: dict[str, int] = field(default_factory=dict)

    @property
    def loaded(self) -> int:
        return self.inserted + self.updated


#: The exposure columns stored as the pool's text, as read.
TEXT_COLUMNS = [c.name for c in schema.exposure.columns
                if c.name not in {"id", "stem", "pool_id", "source_line", "exp_type", "extra", "filename",
                                  "version", "withdrawn_at", *schema.FLAG_COLUMNS}]
#: The exposure columns a load writes, in the order both load paths write them (the id first when drawn).
INSERT_COLUMNS = ["stem", "filename", "pool_id", "source_line", "exp_type", *schema.FLAG_COLUMNS,
                  *TEXT_COLUMNS, "extra"]
EXPOSURE_COLUMNS = ["id", *INSERT_COLUMNS]
#: The values that make an exposure's version (extra last), and their places in a writer's record.
VERSIONED_COLUMNS = [c for c in INSERT_COLUMNS if c not in ("stem", "pool_id", "source_line")]
VERSIONED_POSITIONS = [EXPOSURE_COLUMNS.index(c) for c in VERSIONED_COLUMNS]
#: n new exposure ids on PostgreSQL. The sequence is looked up once (a subquery): called per
#: row, pg_get_serial_sequence made drawing the ids of a million exposures take 2 s.
PG_NEW_IDS = ("SELECT nextval((SELECT pg_get_serial_sequence('exposure', 'id'))::regclass) AS v "
              "FROM generate_series(1, %s)")
CANDIDATE_COLUMNS = ["exposure_id", "position", "cand_id", "cand_type"]


@dataclass
class DeferredIndexes:
    """What a load into an empty catalog drops, to build again once at its end, in its transaction."""

    indexes: list = field(default_factory=list)
    unique: list = field(default_factory=list)
    foreign_keys: list = field(default_factory=list)

    @classmethod
    def drop(cls, conn, *, postgres: bool, unique: bool = False) -> "DeferredIndexes":
        """Into an empty catalog, drop the secondary indexes; on PostgreSQL also the foreign keys
        (checked by a trigger per row, but by one join when added back) and, with ``unique``, the
        stem's unique constraint. SQLite's constraints are part of its tables: they stay.

        ``conn`` is a SQLAlchemy connection or ``columnar``'s ADBC stand-in: DDL statements only.
        """
        e = schema.exposure
        if conn.execute(sa.select(e.c.id).limit(1)).first() is not None:
            return cls()
        deferred = cls(indexes=[*e.indexes, *schema.exposure_candidate.indexes])
        if postgres:
            deferred.foreign_keys = [*e.foreign_key_constraints, *schema.exposure_candidate.foreign_key_constraints]
            if unique:
                deferred.unique = [c for c in e.constraints if isinstance(c, sa.UniqueConstraint)]
        for constraint in [*deferred.foreign_keys, *deferred.unique]:
            conn.execute(sa.schema.DropConstraint(constraint))
        for index in deferred.indexes:
            conn.execute(sa.schema.DropIndex(index))
        return deferred

    def restore(self, conn) -> None:
        for constraint in self.unique:  # first: a repeated exposure fails before the rest is built
            conn.execute(sa.schema.AddConstraint(constraint))
        for index in self.indexes:
            conn.execute(sa.schema.CreateIndex(index))
        for constraint in self.foreign_keys:
            conn.execute(sa.schema.AddConstraint(constraint))


def driver_error(engine: sa.Engine, exc: Exception) -> sa.exc.DBAPIError:
    """The driver's own error, raised on a loader's own cursor (executemany, COPY), as SQLAlchemy's: what any
    other statement's error is when it reaches the caller (and the command line's one line: a full disk
    is exit 3, ``cli.main``)."""
    error = sa.exc.DBAPIError.instance(None, None, exc, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect)
    assert isinstance(error, sa.exc.DBAPIError)  # (a driver's error is wrapped as one)
    return error


def upsert_pool(conn: sa.Connection, name: str, source: str, columns: list[str]) -> int:
    """The pool's id, its row made or updated (source, columns, time) for this load."""
    p = schema.pool
    now = dt.datetime.now(dt.timezone.utc)
    values = {"source": source, "columns": "|".join(columns), "loaded_at": now}
    pool_id = conn.execute(sa.select(p.c.id).where(p.c.name == name)).scalar()
    if pool_id is None:
        return conn.execute(p.insert().values(name=name, n_exposures=0, load_serial=1, **values)
                            .returning(p.c.id)).scalar_one()
    # (load_serial: what a run compares its stored answers and items with; see migration 0021)
    conn.execute(p.update().where(p.c.id == pool_id).values(load_serial=p.c.load_serial + 1, **values))
    # A pool delivered again is its new state: its exposures are marked withdrawn by this load until the
    # delivery holds them (the writer clears the mark); finish_load settles the ones left marked.
    e = schema.exposure
    conn.execute(e.update().where(e.c.pool_id == pool_id, e.c.withdrawn_at.is_(None)).values(withdrawn_at=now))
    return pool_id


def finish_load(conn, pool_id: int, source: str, sha256: str | None, rejections: list[InventoryError],
                taken_over: dict[int, int] | None = None) -> None:
    """The end of a load, in its transaction: the source's rejections and the pool's count and digest.

    A pool whose exposures this load took over (``taken_over``: its id and how many; an exposure is
    identified by its FILENAME stem) has changed too: its ``load_serial`` goes up, so its stored answers and
    work items are behind until a run evaluates it again (its ``n_exposures`` stays what its own load
    held: ``unchanged_pool`` tells a takeover by it).

    ``conn`` is a SQLAlchemy connection or ``columnar``'s ADBC stand-in: plain statements only.
    """
    # The rejections of a source describe its latest load.
    conn.execute(schema.load_rejection.delete().where(schema.load_rejection.c.source == source))
    e, p = schema.exposure, schema.pool
    # The exposures of the pool this delivery did not hold are still marked with its time (see
    # upsert_pool): they are withdrawn, and their version goes up (if one comes back, it is a new version).
    this_load = sa.select(p.c.loaded_at).where(p.c.id == pool_id).scalar_subquery()
    conn.execute(e.update().where(e.c.pool_id == pool_id, e.c.withdrawn_at == this_load)
                 .values(version=e.c.version + 1))
    now = dt.datetime.now(dt.timezone.utc)
    column_type = schema.load_rejection.c.column.type
    assert isinstance(column_type, sa.String) and column_type.length is not None
    width = column_type.length  # PostgreSQL refuses a longer one, SQLite would keep it
    rows = [{"source": e.source, "line": e.line,
             "column": e.column if e.column is None or len(e.column) <= width else e.column[:width - 1] + "\u2026",
             "reason": e.reason, "raw": e.raw, "rejected_at": now} for e in rejections]
    for start in range(0, len(rows), 1000):
        conn.execute(schema.load_rejection.insert().values(rows[start:start + 1000]))
    conn.execute(p.update().where(p.c.id == pool_id).values(
        n_exposures=sa.select(sa.func.count()).where(e.c.pool_id == pool_id, e.c.withdrawn_at.is_(None))
        .scalar_subquery(),
        sha256=sha256))
    if taken_over:
        conn.execute(p.update().where(p.c.id.in_(sorted(taken_over))).values(load_serial=p.c.load_serial + 1))


#: Rows a change (a load, stored answers, a run) must write before the tables it wrote are analysed after it.
STATISTICS_AFTER = 1_000
#: On PostgreSQL a table's statistics are made again when the rows changed exceed this share of the rows they
#: counted, or the table grew by as much since (autovacuum's default ``analyze_scale_factor``), or it has none.
STATISTICS_STALE = 0.1


def keep_statistics(engine: sa.Engine, tables: tuple[str, ...], changed: int) -> list[str]:
    """Analyse those of ``tables`` whose statistics ``changed`` more rows made stale, so query plans never
    wait on autovacuum; returns the tables analysed. A change under ``STATISTICS_AFTER`` rows analyses none.

    A bulk load of 200,000 exposures left PostgreSQL (autovacuum off, or not yet run) planning a
    per-row index scan: an 11-minute run that took 44 s after ANALYZE. On PostgreSQL, whose ANALYZE
    reads a sample of 30,000 rows (a second of a rerun's time at 10,000,000 exposures), a table is analysed
    again only when its statistics are stale: never made, or this change is more than a tenth of the rows
    they counted, or the table grew by more than a tenth since (its pages against theirs: so small
    changes that add up count too). The server's own count of changes (``n_mod_since_analyze``) is not
    used: a load's counts reach it a second or so later, after the ANALYZE that follows the load. SQLite's
    ANALYZE, bounded by ``analysis_limit`` (a sample of each index), costs a fraction of a second: it runs
    after every change of ``STATISTICS_AFTER`` rows or more.
    """
    if changed < STATISTICS_AFTER:
        return []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            stale = [table for table in tables if _statistics_stale(conn, table, changed)]
            if stale:
                conn.exec_driver_sql("ANALYZE " + ", ".join(stale))
            return stale
        conn.exec_driver_sql("PRAGMA analysis_limit = 1000")
        for table in tables:
            conn.exec_driver_sql(f"ANALYZE {table}")
        return list(tables)


def _statistics_stale(conn: sa.Connection, table: str, changed: int) -> bool:
    """PostgreSQL: whether ``table``'s statistics are stale after ``changed`` more rows (see keep_statistics)."""
    found = conn.execute(sa.text(
        "SELECT c.reltuples, c.relpages, pg_relation_size(c.oid) / current_setting('block_size')::int AS pages, "
        "s.last_analyze IS NULL AND s.last_autoanalyze IS NULL AS never "
        "FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = to_regclass(:t)"),
        {"t": table}).first()
    if found is None or found.never or found.reltuples < 0:  # reltuples -1: never analysed nor vacuumed
        return True
    return (changed > STATISTICS_STALE * found.reltuples
            or found.pages > (1 + STATISTICS_STALE) * max(found.relpages, 1))


#: Rows a load must write before the SQLite WAL file is truncated after it.
TRUNCATE_WAL_AFTER = 100_000


def truncate_wal(engine: sa.Engine) -> None:
    """Checkpoint and truncate the SQLite write-ahead log after a large load, if no one is reading.

    A large load leaves a WAL file as large as the data it wrote. If the process then
    exits without closing its connections, every later process that opens the catalog
    reads that whole file again to rebuild the WAL index (seconds per GB): a 10,000-row
    load into a catalog of 10,000,000 took 10 s instead of 0.8 s. Best effort: with a
    reader or writer in the way the checkpoint gives up at once, and nothing changes.
    """
    with engine.connect() as conn:
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection is not None  # (just checked out)
        cursor = dbapi_connection.cursor()
        try:
            timeout = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
            cursor.execute("PRAGMA busy_timeout = 0")
            try:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        except conn.dialect.loaded_dbapi.Error:
            pass
        finally:
            cursor.close()


class Progress:
    """A load's progress bar on standard error (nothing at all unless ``show``).

    With the file's size (``size``), it counts the bytes read of it, so that it has a total
    and an estimate of the time left; without (a DataFrame, FITS headers) it counts
    exposures. After the rows, :meth:`phase` names the work under way (``indexes``, ...),
    for the seconds the bar stands full.
    """

    def __init__(self, show: bool, label: str, size: int | None = None):
        from tqdm import tqdm

        self.size = size
        options = dict(unit="B", unit_scale=True, unit_divisor=1024) if size is not None else dict(unit=" exposures")
        self.bar = tqdm(desc=os.path.basename(label), total=size, disable=not show, file=sys.stderr, **options)

    def update(self, exposures: int, read: int | None = None) -> None:
        """``exposures`` more written; ``read``: the bytes of the file read so far (when it has a size)."""
        if self.size is None:
            self.bar.update(exposures)
        elif read is not None and read > self.bar.n:
            self.bar.update(min(read, self.size) - self.bar.n)

    def phase(self, name: str) -> None:
        """The work after the rows, shown after the bar (``file: 100%|...| 12.0M/12.0M ..., indexes``)."""
        if self.size is not None:
            self.bar.update(self.size - self.bar.n)  # every byte read: the rows are done
        self.bar.set_postfix_str(name, refresh=True)

    def close(self) -> None:
        self.bar.close()


def progress_bar(show: bool, label: str, size: int | None = None) -> Progress:
    """A load's :class:`Progress` (disabled unless ``show``): bytes of ``size`` if given, else exposures."""
    return Progress(show, label, size)


def phase_bar(show: bool, label: str):
    """A label and the time spent, on standard error while a phase without a count runs (the work list)."""
    from tqdm import tqdm

    return tqdm(desc=label, total=None, bar_format="{desc}: {elapsed}", disable=not show, file=sys.stderr)


def rejections(db: DB = None) -> pd.DataFrame:
    """Every row a ``skip_bad`` load refused, with its reason."""
    engine = require_migrated(db)
    with engine.connect() as conn:
        return query_frame(conn, sa.select(schema.load_rejection).order_by(schema.load_rejection.c.id))


def pool_row(conn: sa.Connection, pool: str | int) -> sa.Row:
    """The loaded pool named ``pool``, or of that id: an int, or digits no pool is named (as the CLI
    passes ids). An unknown pool is an error (exit 2), never an empty answer."""
    table = schema.pool
    row = conn.execute(sa.select(table).where(
        table.c.id == pool if isinstance(pool, int) else table.c.name == pool)).first()
    if row is None and isinstance(pool, str) and pool.isdigit():
        row = conn.execute(sa.select(table).where(table.c.id == int(pool))).first()
    if row is None:
        raise CatalogError(f"no loaded pool {pool!r}; load it first (`l2rules load POOL`)")
    return row


def exposures(db: DB = None, pool: str | int | None = None) -> pd.DataFrame:
    """The loaded exposures (every stored column, the pool's name beside its id), optionally of one
    pool, by name or id."""
    engine = require_migrated(db)
    e, p = schema.exposure, schema.pool
    query = sa.select(e, p.c.name.label("pool")).join(p, p.c.id == e.c.pool_id).order_by(e.c.id)
    with engine.connect() as conn:
        if pool is not None:
            query = query.where(e.c.pool_id == pool_row(conn, pool).id)
        return query_frame(conn, query)
