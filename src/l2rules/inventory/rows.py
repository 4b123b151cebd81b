"""The row path: an inventory read line by line in Python, the reference for every load.

A load is one transaction: a file with a bad row changes nothing, unless ``skip_bad``
is set, in which case each bad row is stored in ``load_rejection`` with its reason and
the rest is loaded. Exposures are identified by their FILENAME stem, so loading a pool
again updates its rows in place.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable

import sqlalchemy as sa

from .. import schema
from ..outputs import gc_paused
from .poolformat import (
    MAX_CANDIDATE,
    MAX_EXP_TYPE,
    MAX_FILENAME,
    NULL_FORMS,
    NULLS,
    REQUIRED_COLUMNS,
    InventoryError,
    SourceTable,
    TemplateRow,
    column_names,
    echo,
    exposure_stem,
    flag,
    parse_candidates,
    too_long,
)
from .store import (
    CANDIDATE_COLUMNS,
    EXPOSURE_COLUMNS,
    INSERT_COLUMNS,
    PG_NEW_IDS,
    TEXT_COLUMNS,
    TRUNCATE_WAL_AFTER,
    VERSIONED_COLUMNS,
    VERSIONED_POSITIONS,
    DeferredIndexes,
    LoadResult,
    driver_error,
    finish_load,
    progress_bar,
    truncate_wal,
    upsert_pool,
)

#: Rows written at a time.
BATCH = 5000
_NULL_JSON = json.dumps(None)


class RowConverter:
    """Validates one source's rows and turns them into exposure and candidate records."""

    def __init__(self, table: SourceTable):
        self.table = table
        names = column_names(table.header)
        seen: dict[str, int] = {}
        for index, name in enumerate(names, start=1):
            if name in seen:
                raise InventoryError(table.source, table.header_line, name.upper(),
                                     f"column appears twice (fields {seen[name]} and {index})")
            seen[name] = index
        for required in REQUIRED_COLUMNS:
            if required not in seen:
                raise InventoryError(table.source, table.header_line, required.upper(),
                                     f"missing required column {required.upper()}")
        self.names = names
        self.width = len(names)
        index = {n: i for i, n in enumerate(names)}
        self.i_filename, self.i_exp_type = index["filename"], index["exp_type"]
        self.i_candidate = index.get("asn_candidate")
        self.flags = [(index.get(f)) for f in schema.FLAG_COLUMNS]
        self.text = [index.get(c) for c in TEXT_COLUMNS]
        # Picks the text columns out of a row's values in one C call; a missing column reads the
        # None appended after the row's last value.
        self._pick_text = operator.itemgetter(*(self.width if i is None else i for i in self.text))
        known = set(schema.POOL_COLUMNS)
        self.extra = [(n, i) for i, n in enumerate(names) if n not in known]
        self.seen: dict[str, tuple[int, int]] = {}  # stem -> (line, hash of values), current batch
        self._candidates: dict[str | None, list[tuple[str, str]]] = {}  # ASN_CANDIDATE text -> pairs
        self._flags: dict[str | None, bool | None] = {}  # flag text -> value (few distinct spellings)

    def values(self, fields: list[str]) -> list[str | None]:
        """The row's values: stripped, with NULL/null/empty (any case) as None."""
        line = "|".join(fields)
        # Printable ASCII has no whitespace but the space: no space next to a separator or at an end
        # means no field to strip.
        if (line.isascii() and line.isprintable() and " |" not in line and "| " not in line
                and line[:1] != " " and line[-1:] != " "):
            # Nothing to strip and only ASCII: a NULL is one of the spellings in NULL_FORMS.
            return [None if f in NULL_FORMS else f for f in fields]
        return [None if f.strip().lower() in NULLS else f.strip() for f in fields]

    def trimmed(self, fields: list[str]) -> list[str]:
        """The row's fields without missing values beyond the header's last column (a trailing delimiter)."""
        if len(fields) > self.width and all(f.strip().lower() in NULLS for f in fields[self.width:]):
            return fields[:self.width]
        return fields

    def convert(self, number: int, fields: list[str] | InventoryError, pool_id: int):
        """(record, candidates, fingerprint) for the exposure table, or None for a repeated identical row.

        Repeats are recognised here within the current batch (``seen`` is cleared by the
        writer at each batch); across batches the writer finds them in the database.
        """
        if isinstance(fields, InventoryError):  # a line the reader could not take (a control character)
            raise fields
        source = self.table.source
        raw = "|".join(fields)
        fields = self.trimmed(fields)
        if len(fields) != self.width:
            raise InventoryError(source, number, str(min(len(fields), self.width) + 1),
                                 f"wrong number of fields: {len(fields)}, the header has {self.width}", raw)
        values = self.values(fields)
        filename = values[self.i_filename]
        if filename is None:
            raise InventoryError(source, number, "FILENAME", "FILENAME is empty", raw)
        exp_type = values[self.i_exp_type]
        if exp_type is not None and exp_type.lower() == "exp_type":
            raise TemplateRow(source, number, "EXP_TYPE", TemplateRow.REASON, raw)
        if exp_type is None:
            raise InventoryError(source, number, "EXP_TYPE", "EXP_TYPE is empty", raw)
        for column, value, limit in (("FILENAME", filename, MAX_FILENAME), ("EXP_TYPE", exp_type, MAX_EXP_TYPE)):
            if reason := too_long(value, limit):
                raise InventoryError(source, number, column, f"{column} {reason}", raw)
        stem = exposure_stem(filename)
        fingerprint = hash(tuple(values))
        previous = self.seen.get(stem)
        if previous is not None:
            if previous[1] == fingerprint:
                return None
            raise InventoryError(source, number, "FILENAME",
                                 f"duplicate exposure {echo(filename)} (first at line {previous[0]}) "
                                 "with conflicting values",
                                 raw)
        candidates = []
        if self.i_candidate is not None:
            text = values[self.i_candidate]
            candidates = self._candidates.get(text)
            if candidates is None:
                try:
                    candidates = parse_candidates(text)
                except ValueError as exc:
                    raise InventoryError(source, number, "ASN_CANDIDATE", str(exc), raw) from None
                for part in (p for pair in candidates for p in pair):
                    if reason := too_long(part, MAX_CANDIDATE):
                        raise InventoryError(source, number, "ASN_CANDIDATE", f"a candidate id or type {reason}", raw)
                if len(self._candidates) >= 4096:
                    self._candidates.clear()
                self._candidates[text] = candidates
        self.seen[stem] = (number, fingerprint)
        record = [None, stem, filename, pool_id, number, exp_type.upper()]  # [0]: the id, set by the writer
        flags = self._flags
        for i in self.flags:
            if i is None:
                record.append(None)
                continue
            value = values[i]
            try:
                record.append(flags[value])
            except KeyError:
                result = flag(value)
                if len(flags) < 1024:
                    flags[value] = result
                record.append(result)
        values.append(None)  # the missing columns' value, for _pick_text
        record += self._pick_text(values)
        record.append({n: values[i] for n, i in self.extra} if self.extra else None)
        return record, candidates, fingerprint


# --- loading -----------------------------------------------------------------------------------

def read_rows(table: SourceTable, converter: RowConverter, writer: "RowWriter", result: LoadResult, skip_bad: bool,
               bar) -> None:
    """Convert the source's rows and hand them to the writer, batch by batch."""
    pool_id = result.pool_id
    read = table.bytes_read or (lambda: None)
    for number, fields in table.rows:
        result.rows += 1
        try:
            converted = converter.convert(number, fields, pool_id)
        except TemplateRow as exc:
            # Known artefact of test pools (see the pools README): kept with its reason, not loaded.
            result.template_rows += 1
            result.rejections.append(exc)
            continue
        except InventoryError as exc:
            if not skip_bad:
                writer.flush()  # an earlier line's error (a repeat across batches) is reported first
                raise
            result.rejections.append(exc)
            continue
        if converted is None:
            result.duplicates += 1
            continue
        writer.add(number, fields, *converted)
        if len(writer.batch) >= BATCH:
            bar.update(writer.flush(), read())
    bar.update(writer.flush(), read())


def fast_sqlite_binding(sqlite3) -> None:
    """Bind None and bool through registered adapters: the same values (NULL, 0/1) as without them.

    Without an adapter, the sqlite3 module looks for one, then for ``__adapt__`` and
    ``__conform__``, for every None and bool it binds; an exposure row has dozens of them,
    and those look-ups were a quarter of the time of an insert.
    """
    sqlite3.register_adapter(type(None), _same)
    sqlite3.register_adapter(bool, int)


def _same(value):
    return value


class RowWriter:
    """Writes the exposures of one load in batches, with the DB-API's bulk paths.

    Each batch is first inserted as new exposures (``executemany`` on SQLite, ``COPY`` on
    PostgreSQL) inside a savepoint; if a FILENAME stem is already in the catalog the batch
    is rolled back to the savepoint and written row by row's kind: new stems inserted,
    stems from earlier loads updated in place (keeping their id), stems this load has
    already written compared with their first row (an identical repeat is counted, a
    different one is an error naming both lines). Into an empty catalog the secondary
    indexes (and on PostgreSQL the foreign keys) are dropped for the load and built once
    at its end, in the same transaction.
    """

    def __init__(self, conn: sa.Connection, converter: RowConverter, result: LoadResult, skip_bad: bool):
        self.conn, self.converter, self.result, self.skip_bad = conn, converter, result, skip_bad
        self.postgres = conn.dialect.name == "postgresql"
        self.dbapi = conn.connection.dbapi_connection
        if not self.postgres:
            fast_sqlite_binding(conn.dialect.dbapi)
        self.cursor = self.dbapi.cursor()
        self.batch: list[tuple] = []
        self.optimistic = True
        self.written = bytearray()  # bit per exposure id written by this load
        e = schema.exposure
        # The unique stem stays: repeats and stems of earlier loads are found through it.
        self.deferred = DeferredIndexes.drop(conn, postgres=self.postgres)
        if not self.postgres:
            self.next_id = (conn.execute(sa.select(sa.func.max(e.c.id))).scalar() or 0) + 1
        names = ", ".join(EXPOSURE_COLUMNS)
        marks = ", ".join("%s" if self.postgres else "?" for _ in EXPOSURE_COLUMNS)
        self.insert_sql = f"INSERT INTO exposure ({names}) VALUES ({marks})"
        self.copy_sql = f"COPY exposure ({names}) FROM STDIN"
        mark = "%s" if self.postgres else "?"
        sets = ", ".join(f"{c} = {mark}" for c in INSERT_COLUMNS if c != "stem")
        # An update in place is a new version of the exposure when a value differs (compared with the
        # row as stored: the right-hand sides of an UPDATE read the old row); where it sits does not count.
        if self.postgres:
            differs = [f"{c} IS DISTINCT FROM %s" for c in VERSIONED_COLUMNS[:-1]]
            differs.append("extra::jsonb IS DISTINCT FROM CAST(%s AS jsonb)")  # as JSON, not as text
        else:
            differs = [f"{c} IS NOT ?" for c in VERSIONED_COLUMNS[:-1]]
            differs.append("json(extra) IS NOT json(?)")
        self.update_sql = (f"UPDATE exposure SET version = version + CASE WHEN {' OR '.join(differs)} "
                           f"THEN 1 ELSE 0 END, withdrawn_at = NULL, {sets} WHERE id = {mark}")
        self.cand_sql = (f"INSERT INTO exposure_candidate ({', '.join(CANDIDATE_COLUMNS)}) "
                         f"VALUES ({', '.join([mark] * 4)})")
        self.cand_copy_sql = f"COPY exposure_candidate ({', '.join(CANDIDATE_COLUMNS)}) FROM STDIN"

    def add(self, number: int, fields: list[str], record: list, candidates: list, fingerprint: int) -> None:
        extra = record[-1]
        record[-1] = _NULL_JSON if extra is None else json.dumps(extra)
        self.batch.append((record, candidates, fingerprint, number, fields))

    # -- ids ---------------------------------------------------------------------------------
    def _new_ids(self, n: int) -> list[int]:
        if self.postgres:
            self.cursor.execute(PG_NEW_IDS, (n,))
            return [row[0] for row in self.cursor.fetchall()]
        first = self.next_id
        return list(range(first, first + n))

    def _mark(self, ids: Iterable[int]) -> None:
        written = self.written
        for i in ids:
            byte = i >> 3
            if byte >= len(written):
                written.extend(bytes(max(byte + 1 - len(written), len(written))))
            written[byte] |= 1 << (i & 7)

    def _is_written(self, i: int) -> bool:
        byte = i >> 3
        return byte < len(self.written) and bool(self.written[byte] & (1 << (i & 7)))

    # -- writing -----------------------------------------------------------------------------
    def _insert(self, rows: list[tuple], cands: list[tuple]) -> None:
        cur = self.cursor
        if self.postgres:
            with cur.copy(self.copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            if cands:
                with cur.copy(self.cand_copy_sql) as copy:
                    for row in cands:
                        copy.write_row(row)
        else:
            cur.executemany(self.insert_sql, rows)
            if cands:
                cur.executemany(self.cand_sql, cands)

    @staticmethod
    def _rows(items, ids) -> tuple[list[list], list[tuple]]:
        rows = []
        cands = []
        for i, (record, candidates, *_rest) in zip(ids, items):
            record[0] = i
            rows.append(record)
            if candidates:
                cands.extend((i, pos, cid, ctype) for pos, (cid, ctype) in enumerate(candidates))
        return rows, cands

    def flush(self) -> int:
        """Write the current batch; returns how many rows of the source it covered."""
        items, self.batch = self.batch, []
        self.converter.seen.clear()
        if not items:
            return 0
        if self.optimistic:
            ids = self._new_ids(len(items))
            rows, cands = self._rows(items, ids)
            self.cursor.execute("SAVEPOINT l2rules_batch")
            try:
                self._insert(rows, cands)
            except self.conn.dialect.dbapi.IntegrityError:
                # A stem is already in the catalog: this source updates it (or repeats it).
                self.cursor.execute("ROLLBACK TO SAVEPOINT l2rules_batch")
                self.cursor.execute("RELEASE SAVEPOINT l2rules_batch")
                self.optimistic = False
            else:
                self.cursor.execute("RELEASE SAVEPOINT l2rules_batch")
                if not self.postgres:
                    self.next_id += len(items)
                self._mark(ids)
                self.result.inserted += len(items)
                return len(items)
        self._flush_mixed(items)
        return len(items)

    def _existing(self, stems: list[str]) -> dict[str, tuple[int, int, int]]:
        """The stems already in the catalog: each one's exposure id, source line and pool."""
        e = schema.exposure
        found: dict[str, tuple[int, int, int]] = {}
        for start in range(0, len(stems), 900):
            chunk = stems[start:start + 900]
            query = sa.select(e.c.stem, e.c.id, e.c.source_line, e.c.pool_id).where(e.c.stem.in_(chunk))
            found.update((stem, (i, line, pool)) for stem, i, line, pool in self.conn.execute(query))
        return found

    def _flush_mixed(self, items: list[tuple]) -> None:
        existing = self._existing([item[0][1] for item in items])
        new, old, repeats = [], [], []
        for item in items:
            hit = existing.get(item[0][1])
            if hit is None:
                new.append(item)
            elif self._is_written(hit[0]):
                repeats.append((item, hit[1]))
            else:
                old.append((item, hit[0]))
                if hit[2] != item[0][3]:  # an exposure of another pool: this one takes it over
                    self.result.taken_over[hit[2]] = self.result.taken_over.get(hit[2], 0) + 1
        if repeats:
            self._check_repeats(repeats)
        cur = self.cursor
        if old:
            ids = [i for _item, i in old]
            cur.executemany(self.update_sql, [(*(item[0][k] for k in VERSIONED_POSITIONS), *item[0][2:], i)
                                              for item, i in old])
            for start in range(0, len(ids), 900):
                chunk = ids[start:start + 900]
                marks = ", ".join(["%s" if self.postgres else "?"] * len(chunk))
                cur.execute(f"DELETE FROM exposure_candidate WHERE exposure_id IN ({marks})", chunk)
            cands = [(i, pos, cid, ctype) for item, i in old for pos, (cid, ctype) in enumerate(item[1])]
            if cands:
                cur.executemany(self.cand_sql, cands)
            self._mark(ids)
            self.result.updated += len(old)
        if new:
            ids = self._new_ids(len(new))
            if not self.postgres:
                self.next_id += len(new)
            rows, cands = self._rows(new, ids)
            self._insert(rows, cands)
            self._mark(ids)
            self.result.inserted += len(new)
        # A batch with no stem from an earlier load: the next one is probably all new again.
        self.optimistic = not old

    def _check_repeats(self, repeats: list[tuple]) -> None:
        """Rows whose stem this load wrote from an earlier batch: identical repeat or conflict."""
        firsts = self.converter.table.reread({line for _item, line in repeats}) if self.converter.table.reread else {}
        errors = []
        for (record, _cands, fingerprint, number, fields), first in repeats:
            first_fields = firsts.get(first)
            if (first_fields is not None
                    and hash(tuple(self.converter.values(self.converter.trimmed(first_fields)))) == fingerprint):
                self.result.duplicates += 1
                continue
            errors.append(InventoryError(
                self.converter.table.source, number, "FILENAME",
                f"duplicate exposure {echo(record[2])} (first at line {first}) with conflicting values",
                "|".join(fields)))
        if errors:
            if not self.skip_bad:
                raise errors[0]
            self.result.rejections.extend(errors)

    def finish(self) -> None:
        """Build the indexes dropped for a load into an empty catalog."""
        self.deferred.restore(self.conn)
        self.cursor.close()



def load_rows(engine: sa.Engine, table: SourceTable, pool_name: str, *, skip_bad: bool, progress: bool,
              declined: str | None = None) -> LoadResult:
    """Load ``table`` line by line into pool ``pool_name``, in one transaction."""
    converter = RowConverter(table)
    result = LoadResult(table.source, declined=declined)
    try:
        _load_rows(engine, table, pool_name, skip_bad, progress, converter, result)
    except engine.dialect.loaded_dbapi.Error as exc:  # the writer's own cursor's (a full disk)
        raise driver_error(engine, exc) from exc
    if engine.dialect.name == "sqlite" and result.loaded >= TRUNCATE_WAL_AFTER:
        truncate_wal(engine)
    return result


def _load_rows(engine: sa.Engine, table: SourceTable, pool_name: str, skip_bad: bool, progress: bool,
               converter: RowConverter, result: LoadResult) -> None:
    with engine.begin() as conn:
        pool_id = upsert_pool(conn, pool_name, table.source, converter.names)
        result.pool_id = pool_id
        writer = RowWriter(conn, converter, result, skip_bad)
        bar = progress_bar(progress, table.source, table.size)
        try:
            with gc_paused():  # rows make no reference cycles
                read_rows(table, converter, writer, result, skip_bad, bar)
            bar.phase("indexes")
            writer.finish()
            result.rejected = len(result.rejections) - result.template_rows
            # Errors found at batch time come later in the list than they occur in the source.
            result.rejections.sort(key=lambda e: e.line or 0)
            bar.phase("withdrawals and counts")
            finish_load(conn, pool_id, table.source, table.sha256, result.rejections, result.taken_over)
            if result.taken_over:
                p = schema.pool
                names = dict(conn.execute(sa.select(p.c.id, p.c.name).where(p.c.id.in_(result.taken_over))).all())
                result.taken_from = {names[i]: count for i, count in sorted(result.taken_over.items())}
        finally:
            bar.close()
