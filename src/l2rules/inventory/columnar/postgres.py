"""The bulk path on PostgreSQL: ``COPY`` in the load's own transaction, the ids drawn and each batch
formatted as CSV in the reader thread.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from ..store import PG_NEW_IDS, DeferredIndexes, LoadResult, driver_error, progress_bar, upsert_pool
from .convert import _converted, _Converter, _with_ids
from .read import NotBulk, _ArrowSource, _Source
from .write import REPEATED, _finish, _prefetched

_NEW_IDS = ("SELECT min(v), max(v), CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL "
            f"ELSE array_agg(v ORDER BY v) END FROM ({PG_NEW_IDS}) AS drawn")


def _postgres_batches(engine: sa.Engine, source: _Source | _ArrowSource, converter: _Converter) -> Iterator[tuple]:
    """In the reader thread: each batch with its ids, formatted as CSV for ``COPY``.

    The ids are drawn on a connection of the thread's own (a sequence is outside any
    transaction, so the load's own sees them the same), which leaves the load's
    connection nothing to do but ``COPY``: the server copies one batch while the next
    is parsed and formatted.
    """
    import io

    import numpy as np
    from pyarrow import csv as pacsv

    options = pacsv.WriteOptions(include_header=False)

    def formatted(data) -> tuple[list[str], memoryview]:
        buffer = io.BytesIO()
        pacsv.write_csv(data, buffer, options)
        return data.column_names, buffer.getbuffer()

    with engine.connect() as drawing, drawing.connection.dbapi_connection.cursor() as cursor:
        for exposures, candidates in _converted(source, converter):
            if not exposures.num_rows:  # a batch of template rows only: no ids to draw, nothing to copy
                continue
            # Sent back as a range, unless another session drew numbers in between.
            cursor.execute(_NEW_IDS, (exposures.num_rows,))
            low, high, drawn = cursor.fetchone()
            ids = np.arange(low, high + 1, dtype=np.int64) if drawn is None else drawn
            exposures, candidates = _with_ids(exposures, candidates, ids)
            yield (exposures.num_rows, formatted(exposures),
                   None if candidates is None else formatted(candidates))


def _load_postgres(engine: sa.Engine, source: _Source | _ArrowSource, pool_name: str, progress: bool) -> LoadResult:
    bar = progress_bar(progress, source.name, source.size)
    result = LoadResult(source.name, method="bulk")

    def copy(cursor, table: str, data: tuple) -> None:
        columns, text = data
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as out:
            out.write(text)

    try:
        with engine.begin() as conn:
            result.pool_id = upsert_pool(conn, pool_name, source.name, source.names)
            # The unique stem too: one sort at the end instead of an index insert per row; a repeated
            # stem then fails there, and the row loader takes the file.
            deferred = DeferredIndexes.drop(conn, postgres=True, unique=True)
            converter = _Converter(source, result.pool_id)
            with conn.connection.dbapi_connection.cursor() as cursor:
                for n, exposures, candidates in _prefetched(_postgres_batches(engine, source, converter)):
                    copy(cursor, "exposure", exposures)
                    if candidates is not None:
                        copy(cursor, "exposure_candidate", candidates)
                    result.rows += n
                    result.inserted += n
                    bar.update(n, source.read)
            bar.phase("indexes")
            _finish(conn, result, source, converter, deferred)
    except (sa.exc.IntegrityError, engine.dialect.dbapi.IntegrityError) as exc:  # SQLAlchemy's, or COPY's own
        error = getattr(exc, "orig", exc)
        raise NotBulk(REPEATED if "uq_exposure_stem" in str(error) else f"the database refused it: {error}") from None
    except engine.dialect.loaded_dbapi.Error as exc:  # COPY's own (a full disk)
        raise driver_error(engine, exc) from exc
    finally:
        bar.close()
        source.close()
    return result
