"""The bulk path's batches turned into exposures and candidates: the derived columns (stem, upper-cased
EXP_TYPE, flags, candidates, ``extra``) by Arrow compute, the ids given by the writer added.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from ... import schema
from ..poolformat import MAX_CANDIDATE, MAX_EXP_TYPE, MAX_FILENAME, flag, parse_candidates
from ..store import INSERT_COLUMNS
from .read import NotBulk, _Source

#: The extensions ``poolformat.exposure_stem`` takes off a file name.
_EXTENSION = r"(?i)\.(?:fits\.gz|fits|asdf)$"


def stems(filenames):
    """``poolformat.exposure_stem`` over an Arrow array of file names (stripped, as this path reads them).

    With an extension (.fits, .fits.gz, .asdf, any case) the stem is the name up to its
    last ``_`` when there is one with something before it, else the name without the
    extension; without one, the name itself. Plain string kernels: a regular expression
    with a lazy group took a second per million names.
    """
    import pyarrow.compute as pc

    lower = pc.ascii_lower(filenames)
    has_ext = pc.or_(pc.or_(pc.ends_with(lower, ".fits"), pc.ends_with(lower, ".fits.gz")),
                     pc.ends_with(lower, ".asdf"))
    parts = pc.split_pattern(filenames, "_", max_splits=1, reverse=True)
    head = parts.values.take(parts.offsets[:-1])  # the part before the last "_" (or the whole name)
    cut = pc.and_(has_ext, pc.and_(pc.equal(pc.list_value_length(parts), 2), pc.greater(pc.utf8_length(head), 0)))
    if pc.all(pc.equal(cut, has_ext)).as_py():
        return pc.if_else(cut, head, filenames)
    base = pc.replace_substring_regex(filenames, _EXTENSION, "")
    return pc.if_else(cut, head, base)


def _through_distinct(column, function, type_):
    """``function`` applied to each distinct value of ``column`` (None for a missing one), then spread."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column)
    values = pa.array([function(v) for v in encoded.dictionary.to_pylist()], type=type_)
    return pc.take(values, encoded.indices)


def _json_extra(batch, extra: list[str], plain: bool):
    """``json.dumps({name: value, ...})`` for each row, built column-wise.

    A ``plain`` source (a checked file) holds printable ASCII without double quotes, so a
    value's only character JSON escapes is the backslash; otherwise each distinct value
    goes through ``json.dumps``, as the row loader's dict does.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    parts = []
    for k, name in enumerate(extra):
        value = batch.column(name)
        if plain:
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(value, "\\", "\\\\"), '"', "")
        else:
            quoted = _through_distinct(value, lambda v: None if v is None else json.dumps(v), pa.string())
        parts.append(pa.array([("{" if k == 0 else ", ") + json.dumps(name) + ": "] * n))
        parts.append(pc.fill_null(quoted, "null"))
    parts.append(pa.array(["}"] * n))
    return pc.binary_join_element_wise(*parts, "")


class _Converter:
    """One source's batches as exposure and candidate batches (the row loader's ``RowConverter``, by column)."""

    def __init__(self, source: _Source, pool_id: int):
        self.source, self.pool_id = source, pool_id
        self.present = set(source.names)
        known = set(schema.POOL_COLUMNS)
        self.extra = [n for n in source.names if n not in known]
        self.next_line = source.header_line + 1
        self.template_lines: list[int] = []
        self.candidates: dict[str | None, list[tuple[str, str]]] = {}  # ASN_CANDIDATE text -> pairs

    def _parsed(self, text: str | None) -> int:
        pairs = self.candidates.get(text)
        if pairs is None:
            try:
                pairs = self.candidates[text] = parse_candidates(text)
            except ValueError:
                raise NotBulk("an ASN_CANDIDATE the row loader reports") from None
            if any(len(p) > MAX_CANDIDATE for pair in pairs for p in pair):
                raise NotBulk("a candidate id or type longer than its column")
        return len(pairs)

    def convert(self, batch) -> tuple:
        """(exposures, candidates) as Arrow tables, without their ids (see :func:`_with_ids`).

        The candidates' ``row`` is the position of their exposure in the batch.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        n = batch.num_rows
        filename, exp_type = batch.column("filename"), batch.column("exp_type")
        if filename.null_count or exp_type.null_count:
            raise NotBulk("an empty FILENAME or EXP_TYPE")
        if n and (pc.max(pc.utf8_length(filename)).as_py() > MAX_FILENAME
                  or pc.max(pc.utf8_length(exp_type)).as_py() > MAX_EXP_TYPE):
            raise NotBulk("a FILENAME or EXP_TYPE longer than its column")
        upper = pc.ascii_upper(exp_type)
        lines = pa.array(np.arange(self.next_line, self.next_line + n, dtype=np.int64))
        self.next_line += n
        template = pc.equal(upper, "EXP_TYPE")
        if pc.any(template).as_py():  # set aside, as the row loader does
            self.template_lines += pc.filter(lines, template).to_pylist()
            keep = pc.invert(template)
            batch, lines, upper = batch.filter(keep), lines.filter(keep), upper.filter(keep)
            filename, n = batch.column("filename"), batch.num_rows
        columns = {
            "stem": stems(filename), "filename": filename,
            "pool_id": pa.array(np.full(n, self.pool_id, dtype=np.int64)), "source_line": lines,
            "exp_type": upper,
        }
        for column in schema.FLAG_COLUMNS:
            columns[column] = (_through_distinct(batch.column(column), flag, pa.bool_()) if column in self.present
                               else pa.nulls(n, pa.bool_()))
        for name in INSERT_COLUMNS:
            if name not in columns and name != "extra":
                columns[name] = batch.column(name) if name in self.present else pa.nulls(n, pa.string())
        columns["extra"] = (_json_extra(batch, self.extra, self.source.plain) if self.extra
                            else pa.array(["null"] * n, pa.string()))
        exposures = pa.table({c: columns[c] for c in INSERT_COLUMNS})
        return exposures, self._candidates(batch)

    def _candidates(self, batch):
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if "asn_candidate" not in self.present:
            return None
        if len(self.candidates) > 65536:  # a cache, not a record of the file: memory stays flat
            self.candidates.clear()
        encoded = pc.dictionary_encode(batch.column("asn_candidate"))
        distinct = encoded.dictionary.to_pylist()
        counts = np.array([self._parsed(text) for text in distinct] + [0], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        index = encoded.indices.fill_null(len(distinct)).to_numpy()  # a missing value: no candidate
        per_row = counts[index]
        total = int(per_row.sum())
        if total == 0:
            return None
        row_of = np.repeat(np.arange(len(index)), per_row)
        position = np.arange(total) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        flat = [pair for text in distinct for pair in self.candidates[text]]
        pick = np.repeat(starts[index], per_row) + position
        return pa.table({
            "row": pa.array(row_of, pa.int64()),
            "position": pa.array(position, pa.int64()),
            "cand_id": pc.take(pa.array([p[0] for p in flat], pa.string()), pa.array(pick)),
            "cand_type": pc.take(pa.array([p[1] for p in flat], pa.string()), pa.array(pick)),
        })


def _converted(source: _Source, converter: _Converter) -> Iterator[tuple]:
    batches = source.batches()
    try:
        for batch in batches:
            if batch.num_rows:
                yield converter.convert(batch)
    finally:
        batches.close()


def _with_ids(exposures, candidates, ids) -> tuple:
    """The batch's tables with their exposure ids; the candidates' ``row`` becomes their exposure's id."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(ids, pa.int64())
    exposures = exposures.add_column(0, "id", ids)
    if candidates is not None:
        candidates = candidates.set_column(0, "exposure_id", pc.take(ids, candidates.column("row")))
    return exposures, candidates
