"""The columnar path of an inventory load (the bulk path), for large, clean pool files and DataFrames.

The row loader (``rows``) reads a file line by line in Python: exact, but at
archive scale the per-row Python work (splitting, validating, building and binding
a 66-value record) was nine tenths of a load. This path does the same load with no
Python per row:

- pyarrow's CSV reader parses the file in batches (C++, in a thread beside the writing), turning
  every spelling of NULL into a missing value as it parses; a DataFrame comes as the
  Arrow table of its text (``poolformat.frame_table``), its values stripped and its
  NULLs found with Arrow compute;
- the derived columns (stem, upper-cased EXP_TYPE, flags, candidates, ``extra``) are
  computed per batch with Arrow compute, through each column's few distinct values;
- each batch is written with the database's bulk path: ``COPY`` on PostgreSQL, in the
  load's SQLAlchemy transaction; on SQLite, ADBC's ingest (a C loop binding the Arrow
  columns), in one transaction of a process of its own (see :func:`_load_sqlite`).
  Parsing runs in a thread beside the writing.

It takes only files the row loader would take without a word and without changing a
value: printable ASCII with no quote, no tab, no padding around a field, every line
after the header a row (after a byte-order mark, with LF or CRLF line ends, with or
without a trailing delimiter); template leftover rows it sets aside, as the row loader
does. A DataFrame's values may be any text but control characters.
Anything else - and any bad row, repeated exposure or exposure already in the
catalog - makes it give the load back
(:class:`NotBulk`, the transaction rolled back, nothing written) to the row loader,
which names the line and column of each error, keeps rejected rows and updates in
place. The result is the same either way; ``tests/test_bulk.py`` compares the two.

The package, by job (this module: the entry, :func:`load_file` and :func:`load_table`):

- ``read``: the sources, a checked file and a DataFrame's text table, as Arrow batches;
  :class:`NotBulk`;
- ``convert``: batches turned into exposure and candidate tables, their ids added;
- ``write``: what both writers share (conversion in a thread beside the writing, the end of a load);
- ``sqlite_writer``: ADBC's ingest in the writer process, and the parent's side of it;
  ``python -m l2rules.inventory.columnar`` (``__main__``) runs its ``main``;
- ``postgres``: ``COPY`` in the load's own transaction.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import sqlalchemy as sa

from ..store import LoadResult
from .convert import stems
from .postgres import _load_postgres
from .read import BLOCK, FRAME_BATCH, NotBulk, _ArrowSource, _Source
from .sqlite_writer import _load_sqlite, main
from .write import REPEATED

__all__ = ["BLOCK", "BULK_MIN_BYTES", "FRAME_BATCH", "REPEATED", "NotBulk", "load_file", "load_table", "main", "stems"]

#: Files smaller than this take the row loader under ``method="auto"``: starting the bulk
#: path (a process on SQLite) costs more than it saves on some 20,000 rows.
BULK_MIN_BYTES = 8 << 20


def _check_engine(engine: sa.Engine) -> None:
    if engine.dialect.name == "sqlite":
        if not engine.url.database or engine.url.database == ":memory:":
            raise NotBulk("an in-memory SQLite database (the bulk path writes from a process of its own)")
        if importlib.util.find_spec("adbc_driver_sqlite") is None:
            raise NotBulk("adbc-driver-sqlite is not installed")
    elif engine.dialect.name != "postgresql":
        raise NotBulk(f"no bulk path for {engine.dialect.name}")


def load_file(engine: sa.Engine, path: Path, pool_name: str, *, progress: bool, force: bool = False) -> LoadResult:
    """Load a pool file on the bulk path, in one transaction, or raise :class:`NotBulk`.

    Without ``force``, a file under :data:`BULK_MIN_BYTES` is declined.
    """
    if not force and path.stat().st_size < BULK_MIN_BYTES:
        raise NotBulk(f"a file under {BULK_MIN_BYTES >> 20} MB")
    _check_engine(engine)
    if engine.dialect.name == "sqlite":
        return _load_sqlite(engine, ["load", engine.url.database, str(path), pool_name], str(path), progress)
    if engine.dialect.name == "postgresql":
        return _load_postgres(engine, _Source(path), pool_name, progress)
    raise NotBulk(f"no bulk path for {engine.dialect.name}")


def load_table(engine: sa.Engine, table, name: str, pool_name: str, sha256: str, *, progress: bool,
               force: bool = False) -> LoadResult:
    """Load a DataFrame's text table (``poolformat.frame_table``) on this path, or raise :class:`NotBulk`.

    On PostgreSQL the table is copied from this process; on SQLite the writer process
    reads it from a temporary Arrow IPC file (memory-mapped: no copy, no Python file
    object for pyarrow to read from). Without ``force``, a table of less text than
    :data:`BULK_MIN_BYTES` is declined.
    """
    if not force and table.nbytes < BULK_MIN_BYTES:
        raise NotBulk(f"a DataFrame under {BULK_MIN_BYTES >> 20} MB of text")
    _check_engine(engine)
    if engine.dialect.name == "postgresql":
        return _load_postgres(engine, _ArrowSource(table, name, sha256), pool_name, progress)
    import tempfile

    import pyarrow as pa

    _ArrowSource(table, name, sha256)  # its header declines here, before a file is written
    handle, ipc = tempfile.mkstemp(prefix="l2rules-frame-", suffix=".arrow")
    os.close(handle)
    try:
        with pa.ipc.new_file(ipc, table.schema) as writer:
            writer.write_table(table, max_chunksize=FRAME_BATCH)
        return _load_sqlite(engine, ["load-arrow", engine.url.database, ipc, pool_name, name, sha256], name, progress)
    finally:
        os.unlink(ipc)


