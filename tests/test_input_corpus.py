"""The held-out style corpus (issue 11): bad and odd inputs, each named, each harmless.

Every bad input - a pool file, a comma CSV file or a DataFrame - is refused with one
readable line naming the source and, where there is one, the line and the column,
on SQLite and PostgreSQL, through the row loader and the bulk path alike, and leaves
every table of the catalog as it was. With ``skip_bad`` the good rows load and each
bad row is kept in ``load_rejection`` with its reason. Every odd-but-valid input loads
the same exposures on both paths and both backends.

The small inputs are files in ``tests/data/corpus/``; the large ones are made here.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import sqlalchemy as sa

from l2rules import schema
from l2rules.config import L2RulesError, get_engine
from l2rules.inventory import InventoryError, columnar, load

from .conftest import DATA, _dispose
from .test_bulk import stored

CORPUS = DATA / "corpus"
HEADER = "FILENAME|EXP_TYPE|ASN_CANDIDATE|PROGRAM\n"
GOOD_ROW = "jw10_a_uncal.fits|NRC_IMAGE|[('o001', 'observation')]|1234\n"
#: A message of readable length, even when the input holds a 200 KB value.
READABLE = 300
BIG = 200_000


def _pool(row: str, header: str = HEADER, good: str = GOOD_ROW) -> Callable[[Path], Path]:
    """A pool made in the test (too large for the corpus directory): the header, a good row, ``row``."""
    def make(directory: Path) -> Path:
        path = directory / "generated.pool"
        path.write_bytes((header + good + row).encode("utf-8"))
        return path
    return make


@dataclass
class Bad:
    """A bad input and what its error must say.

    ``source``: a file name in the corpus, a function making a file in a directory, or a
    function making a DataFrame (loaded as ``frame``). ``line``/``column``: the line and
    column the error names (None: the whole source). ``skip``: under ``skip_bad``, the
    exposures loaded and the (line, column) of each row kept in ``load_rejection``; None
    when the error is not a row's (the header, the file itself). ``bulk``: whether
    ``method="bulk"`` declines (True) or raises the same error as the row loader (False:
    the source never reaches the bulk path).
    """

    id: str
    source: str | Callable
    line: int | None
    column: str | None
    fragment: str
    skip: tuple[int, list[tuple[int, str]]] | None = None
    bulk: bool = True
    frame: bool = False
    marks: tuple = ()


def _frame(**columns) -> Callable[[], pd.DataFrame]:
    return lambda: pd.DataFrame(columns)


GOOD_FRAME = {"FILENAME": ["jw12_a_uncal.fits", "jw12_b_uncal.fits"], "EXP_TYPE": ["NRC_IMAGE", "MIR_IMAGE"]}

BAD: list[Bad] = [
    # --- the file itself
    Bad("empty file", "empty.pool", None, None, "empty file: no header line"),
    Bad("only comments", "only_comments.pool", None, None, "empty file: no header line"),
    Bad("only a BOM and blank lines", "only_bom_and_blank_lines.pool", None, None, "empty file: no header line"),
    Bad("missing file", "no_such_file.pool", None, None, "no such file", bulk=False),
    Bad("directory", lambda d: d, None, None, "no FITS file"),  # a directory is FITS input
    # --- the header
    Bad("no header line", "no_header.pool", 2, "FILENAME", "missing required column FILENAME"),
    Bad("header without FILENAME", "header_without_filename.pool", 1, "FILENAME", "missing required column FILENAME"),
    Bad("header without EXP_TYPE", "header_without_exp_type.pool", 1, "EXP_TYPE", "missing required column EXP_TYPE"),
    Bad("repeated column", "repeated_column.pool", 1, "FILENAME", "column appears twice (fields 1 and 4)"),
    Bad("two unnamed columns", "two_unnamed_columns.pool", 1, "", "column appears twice (fields 2 and 4)"),
    Bad("not UTF-8 in the header", "not_utf8_in_header.pool", 1, "character 14", "bytes that are not UTF-8"),
    Bad("NUL in the header", "nul_in_header.pool", 1, "PRO\u2400GRAM (character 22)", "control character U+0000"),
    # The whole file reads as one line: said so (not as a column its text runs into).
    Bad("CR-only line ends", "cr_only_line_ends.pool", 1, None, "lines end with a CR alone (classic Mac OS)"),
    Bad("200 KB column name repeated", _pool("", header=f"FILENAME|EXP_TYPE|{'N' * BIG}|{'n' * BIG}\n"), 1,
        "N" * 79 + "\u2026", "column appears twice (fields 3 and 4)"),
    # --- a row
    Bad("empty EXP_TYPE", "empty_exp_type.pool", 3, "EXP_TYPE", "EXP_TYPE is empty", skip=(1, [(3, "EXP_TYPE")])),
    Bad("empty FILENAME", "empty_filename.pool", 3, "FILENAME", "FILENAME is empty", skip=(1, [(3, "FILENAME")])),
    Bad("NULL FILENAME", "null_filename.pool", 3, "FILENAME", "FILENAME is empty", skip=(1, [(3, "FILENAME")])),
    Bad("too few fields", "too_few_fields.pool", 3, "4", "wrong number of fields: 3, the header has 4",
        skip=(1, [(3, "4")])),
    Bad("too many fields", "too_many_fields.pool", 3, "5", "wrong number of fields: 5, the header has 4",
        skip=(1, [(3, "5")])),
    Bad("malformed ASN_CANDIDATE", "malformed_candidate.pool", 3, "ASN_CANDIDATE", "cannot read ASN_CANDIDATE",
        skip=(1, [(3, "ASN_CANDIDATE")])),
    Bad("unclosed ASN_CANDIDATE", "unclosed_candidate.pool", 3, "ASN_CANDIDATE", "cannot read ASN_CANDIDATE",
        skip=(1, [(3, "ASN_CANDIDATE")])),
    Bad("conflicting repeated exposure", "conflicting_repeat.pool", 3, "FILENAME",
        "duplicate exposure jw10_a_uncal.fits (first at line 2) with conflicting values",
        skip=(1, [(3, "FILENAME")])),
    Bad("not UTF-8 in a row", "not_utf8_in_row.pool", 3, "PROGRAM (character 32)", "bytes that are not UTF-8"),
    Bad("NUL in a value", "nul_in_row.pool", 3, "PROGRAM (character 32)", "control character U+0000",
        skip=(1, [(3, "PROGRAM (character 32)")])),
    Bad("SOH in a value", "soh_in_row.pool", 3, "PROGRAM (character 30)", "control character U+0001",
        skip=(1, [(3, "PROGRAM (character 30)")])),
    Bad("escape sequence in a value", "escape_in_row.pool", 3, "EXP_TYPE (character 23)", "control character U+001B",
        skip=(1, [(3, "EXP_TYPE (character 23)")])),
    Bad("vertical tab in a value", "vertical_tab_in_row.pool", 3, "PROGRAM (character 31)",
        "control character U+000B", skip=(1, [(3, "PROGRAM (character 31)")])),
    Bad("CR inside a value", "cr_inside_a_value.pool", 3, "EXP_TYPE (character 23)", "control character U+000D",
        skip=(1, [(3, "EXP_TYPE (character 23)")])),
    Bad("comma CSV: unclosed quote", "csv_unclosed_quote.csv", 3, "3", "wrong number of fields: 2, the header has 3",
        skip=(1, [(3, "3")])),
    Bad("comma CSV: too many fields", "csv_too_many_fields.csv", 3, "4", "wrong number of fields: 4, the header has 3",
        skip=(1, [(3, "4")])),
    Bad("comma CSV: quoted empty EXP_TYPE", "csv_quoted_empty_exp_type.csv", 2, "EXP_TYPE", "EXP_TYPE is empty",
        skip=(0, [(2, "EXP_TYPE")])),
    # --- large values, made here
    Bad("200 KB malformed ASN_CANDIDATE", _pool(f"jw10_b_uncal.fits|MIR_IMAGE|[{'x' * BIG}|1\n"), 3, "ASN_CANDIDATE",
        "cannot read ASN_CANDIDATE", skip=(1, [(3, "ASN_CANDIDATE")])),
    Bad("200 KB value with a NUL", _pool(f"jw10_b_uncal.fits|MIR_IMAGE||{'9' * BIG}\x00\n"), 3,
        f"PROGRAM (character {29 + BIG + 1})", "control character U+0000",
        skip=(1, [(3, f"PROGRAM (character {29 + BIG + 1})")])),
    Bad("200 KB surplus field", _pool(f"jw10_b_uncal.fits|MIR_IMAGE||1|{'s' * BIG}\n"), 3, "5",
        "wrong number of fields", skip=(1, [(3, "5")])),
    Bad("200 KB FILENAME", _pool(f"jw10_{'b' * BIG}_uncal.fits|MIR_IMAGE||1\n"), 3, "FILENAME",
        "longer than 255 characters", skip=(1, [(3, "FILENAME")])),
    Bad("300-character FILENAME", _pool(f"jw10_{'b' * 284}_uncal.fits|MIR_IMAGE||1\n"), 3, "FILENAME",
        "longer than 255 characters", skip=(1, [(3, "FILENAME")])),
    Bad("41-character EXP_TYPE", _pool(f"jw10_b_uncal.fits|{'M' * 41}||1\n"), 3, "EXP_TYPE",
        "longer than 40 characters", skip=(1, [(3, "EXP_TYPE")])),
    Bad("41-character candidate id", _pool(f"jw10_b_uncal.fits|MIR_IMAGE|[('{'o' * 41}', 'observation')]|1\n"), 3,
        "ASN_CANDIDATE", "longer than 40 characters", skip=(1, [(3, "ASN_CANDIDATE")])),
    Bad("NUL under a 70-character column name",
        _pool("jw10_b_uncal.fits|MIR_IMAGE|||\x00\n", header=HEADER.replace("|PROGRAM", f"|PROGRAM|{'L' * 70}"),
              good=GOOD_ROW.replace("\n", "|x\n")),
        3, "L" * 70 + " (charact\u2026", "control character U+0000", skip=(1, [(3, "L" * 70 + " (charact\u2026")])),
    # --- DataFrames
    Bad("DataFrame without FILENAME", _frame(NAME=["jw12_a_uncal.fits"], EXP_TYPE=["NRC_IMAGE"]), 1, "FILENAME",
        "missing required column FILENAME", frame=True),
    Bad("DataFrame without any column", _frame(), 1, "FILENAME", "missing required column FILENAME", frame=True),
    Bad("DataFrame with a NUL", _frame(**GOOD_FRAME, TARGNAME=["ok", "a\x00b"]), 3, "TARGNAME (character 30)",
        "control character U+0000", skip=(1, [(3, "TARGNAME (character 30)")]), frame=True),
    Bad("DataFrame with a newline", _frame(**GOOD_FRAME, TARGNAME=["a\nb", "ok"]), 2, "TARGNAME (character 30)",
        "control character U+000A", skip=(1, [(2, "TARGNAME (character 30)")]), frame=True),
    Bad("DataFrame with an empty EXP_TYPE", _frame(FILENAME=GOOD_FRAME["FILENAME"], EXP_TYPE=pd.array(
        ["NRC_IMAGE", pd.NA], dtype="string")), 3, "EXP_TYPE", "EXP_TYPE is empty", skip=(1, [(3, "EXP_TYPE")]),
        frame=True),
    Bad("DataFrame with a repeated column", lambda: pd.DataFrame(
        [["jw12_a_uncal.fits", "NRC_IMAGE", "x"]], columns=["FILENAME", "EXP_TYPE", "filename"]), 1, "FILENAME",
        "column appears twice (fields 1 and 3)", frame=True),
    Bad("DataFrame with a list column", _frame(**GOOD_FRAME, TARGNAME=[["a"], ["b"]]), None, "TARGNAME",
        "which a pool column cannot hold", bulk=False, frame=True),
    Bad("DataFrame with bytes that are not UTF-8", _frame(**GOOD_FRAME, TARGNAME=[b"ok", b"\xff"]), None, "TARGNAME",
        "values that are not text", bulk=False, frame=True),
    Bad("DataFrame with a 41-character EXP_TYPE", _frame(FILENAME=GOOD_FRAME["FILENAME"], EXP_TYPE=[
        "NRC_IMAGE", "M" * 41]), 3, "EXP_TYPE", "longer than 40 characters", skip=(1, [(3, "EXP_TYPE")]), frame=True),
]


def catalog_state(url: str) -> dict:
    """Every row of every table of the catalog, and every index: what a refused load must leave as it was."""
    engine = get_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        state = {t.name: sorted(map(repr, conn.execute(sa.select(t)).all())) for t in meta.sorted_tables}
    state["indexes"] = sorted((t, i["name"]) for t in meta.tables for i in inspector.get_indexes(t))
    state["foreign keys"] = sorted((t, str(fk["name"])) for t in meta.tables for fk in inspector.get_foreign_keys(t))
    assert "exposure" in state and "load_rejection" in state
    return state


def _source(case: Bad, tmp_path: Path):
    if case.frame:
        return case.source()
    if callable(case.source):
        return case.source(tmp_path)
    return CORPUS / case.source


def _where(case: Bad, source) -> str:
    name = "frame" if case.frame else str(source)
    where = name if case.line is None else f"{name}:{case.line}"
    return f"{where}: column {case.column}: " if case.column else f"{where}: "


def _one_line(message: str) -> None:
    assert "\n" not in message and "\r" not in message, message
    assert len(message) < READABLE, message[:500]


def _refused(case: Bad, source, db: str, method: str) -> str:
    with pytest.raises(InventoryError) as info:
        load(db, source, name="frame" if case.frame else "corpus", method=method)
    message = str(info.value)
    _one_line(message)
    assert message.startswith(_where(case, source)), message
    assert case.fragment in message, message
    assert (info.value.line, info.value.column or None) == (case.line, case.column or None)
    return message


def _declined(case: Bad, source, db: str) -> None:
    if not case.bulk:
        _refused(case, source, db, "bulk")
        return
    with pytest.raises(L2RulesError, match="the bulk path declines this (file|DataFrame)") as info:
        load(db, source, name="frame" if case.frame else "corpus", method="bulk")
    assert not isinstance(info.value, InventoryError)
    _one_line(str(info.value))


def _params(cases):
    return [pytest.param(c, id=c.id, marks=c.marks) for c in cases]


BASE = "FILENAME|EXP_TYPE|ASN_CANDIDATE\njw09_a_uncal.fits|NRC_IMAGE|[('o009', 'observation')]\n"


@pytest.mark.parametrize("case", _params(BAD))
def test_bad_input_is_named_and_changes_nothing(db, tmp_path, monkeypatch, case):
    """Refused with one line naming the source, line and column, on both paths; every table as it was.

    First into an empty catalog (where a load drops indexes to build them at its end), then
    into one holding an earlier delivery of the same pool (which a reload marks withdrawn).
    """
    source = _source(case, tmp_path)
    base = tmp_path / "base.pool"
    base.write_text(BASE)
    for catalog in ("empty", "loaded"):
        if catalog == "loaded":
            load(db, base, name="frame" if case.frame else "corpus")
        before = catalog_state(db)
        by_rows = _refused(case, source, db, "rows")
        assert catalog_state(db) == before, f"rows, {catalog} catalog"
        monkeypatch.setattr(columnar, "BULK_MIN_BYTES", 0)  # the bulk path tries it first, then gives it back
        assert _refused(case, source, db, "auto") == by_rows
        assert catalog_state(db) == before, f"auto, {catalog} catalog"
        _declined(case, source, db)
        assert catalog_state(db) == before, f"bulk, {catalog} catalog"
        monkeypatch.undo()


@pytest.mark.parametrize("case", _params([c for c in BAD if c.skip is not None]))
@pytest.mark.parametrize("method", ["rows", "auto"])
def test_skip_bad_keeps_the_good_rows_and_each_bad_one(db, tmp_path, monkeypatch, case, method):
    source = _source(case, tmp_path)
    if method == "auto":
        monkeypatch.setattr(columnar, "BULK_MIN_BYTES", 0)
    result = load(db, source, name="frame" if case.frame else "corpus", skip_bad=True, method=method)
    inserted, rejected = case.skip
    assert (result.method, result.inserted, result.rejected) == ("rows", inserted, len(rejected))
    with get_engine(db).connect() as conn:
        r = schema.load_rejection
        rows = conn.execute(sa.select(r.c.source, r.c.line, r.c.column, r.c.reason, r.c.raw).order_by(r.c.id)).all()
        filenames = conn.execute(sa.select(schema.exposure.c.filename)).scalars().all()
    name = "frame" if case.frame else str(source)
    width = schema.load_rejection.c.column.type.length  # a longer column name is cut, with an ellipsis
    expected = [(name, line, column if len(column) <= width else column[:width - 1] + "\u2026")
                for line, column in rejected]
    assert [(s, line, column) for s, line, column, _reason, _raw in rows] == expected
    for _s, _line, _column, reason, raw in rows:
        assert case.fragment in reason and raw
        assert "\x00" not in raw
    assert (len(filenames), "jw10_a_uncal.fits" in filenames or "jw12_a_uncal.fits" in filenames
            or "jw12_b_uncal.fits" in filenames or not inserted) == (inserted, True)


# --- odd but valid --------------------------------------------------------------------------------

def _df_nullable():
    return pd.DataFrame({
        "filename": pd.array(["jw13_a_uncal.fits", "jw13_b_uncal.fits", "jw13_c_uncal.fits"], dtype="string"),
        "Exp_Type": pd.Categorical(["nrc_image", "MIR_IMAGE", "nrc_image"]),
        "IS_PSF": pd.array([True, pd.NA, False], dtype="boolean"),
        "PROGRAM": pd.array([1234, pd.NA, 7], dtype="Int64"),
        "TARGNAME": pd.array([pd.NA, "NGC 1", "  padded  "], dtype="string"),
        "DATE_OBS": pd.to_datetime(["2026-01-01 02:03:04", None, "2026-01-02"], format="ISO8601"),
        "SEEN": pd.Series([pd.Timestamp("2026-03-01", tz="UTC"), pd.NaT, pd.NaT]),
    })


def _df_non_string_names():
    return pd.DataFrame({"FILENAME": ["jw13_a_uncal.fits"], "EXP_TYPE": ["NRC_IMAGE"], 7: ["seven"], 2.5: [None]})


def _df_empty():
    return pd.DataFrame({"FILENAME": pd.Series([], dtype="string"), "EXP_TYPE": pd.Series([], dtype="object")})


@dataclass
class Odd:
    id: str
    source: str | Callable
    #: (filename, exp_type, program, targname, is_psf, extra) of the stored exposures, in order.
    expected: list[tuple]
    frame: bool = False
    marks: tuple = ()


ODD: list[Odd] = [
    Odd("comments, blank line, mixed-case header, flags", "comments_and_case.pool", [
        ("jw11_a_uncal.fits", "NRC_IMAGE", "1234", None, True, None),
        ("jw11_b_uncal.fits", "MIR_IMAGE", None, None, False, None)]),
    Odd("BOM, CRLF and LF mixed, trailing delimiter", "bom_crlf_mixed_trailing.pool", [
        ("jw11_a_uncal.fits", "NRC_IMAGE", "1234", None, None, None),
        ("jw11_b_uncal.fits", "MIR_IMAGE", None, None, None, None)]),
    Odd("NULL spellings", "null_spellings.pool", [
        ("jw11_a_uncal.fits", "NRC_IMAGE", None, None, None, None),
        ("jw11_b_uncal.fits", "MIR_IMAGE", None, None, None, None)]),
    Odd("extra columns", "extra_columns.pool", [
        ("jw11_a_uncal.fits", "NRC_IMAGE", None, None, None, {"my_note": "C:\\data", "dither_id": "3"}),
        ("jw11_b_uncal.fits", "MIR_IMAGE", None, None, None, {"my_note": None, "dither_id": None})]),
    Odd("required columns only", "required_columns_only.pool", [
        ("jw11_a_uncal.fits", "NRC_IMAGE", None, None, None, None),
        ("jw11_b_uncal.fits", "MIR_IMAGE", None, None, None, None)]),
    Odd("comma CSV with quoted fields", "csv_quoted_fields.csv", [
        ("jw11_a_uncal.fits", "NRC_IMAGE", None, 'NGC "1", core', None, None),
        ("jw11_b_uncal.fits", "MIR_IMAGE", None, None, None, None)]),
    Odd("comma CSV with BOM and CRLF", "csv_bom_crlf.csv", [
        ("jw11_a_uncal.fits", "NRC_IMAGE", "1234", None, None, None),
        ("jw11_b_uncal.fits", "MIR_IMAGE", None, None, None, None)]),
    Odd("padding, tab, Unicode, DEL", "padding_tab_unicode_del.pool", [
        ("jw11_a_uncal.fits", "NRC_IMAGE", "1234", "\u00e9toile", None, None),
        ("jw11_b_uncal.fits", "MIR_IMAGE", "tab\there", "del\x7fhere", None, None)]),
    Odd("identical repeat, no final line end", "identical_repeat_no_final_newline.pool", [
        ("jw11_a_uncal.fits", "NRC_IMAGE", "1234", None, None, None),
        ("jw11_b_uncal.fits", "MIR_IMAGE", None, None, None, None)]),
    # A lone quote in a pool opens a quoted field (as the csv module and astropy read it): the value is 5.
    Odd("lone quote in a pool", "odd_lone_quote.pool", [
        ("jw10_a_uncal.fits", "NRC_IMAGE", "1234", None, None, None),
        ("jw10_b_uncal.fits", "MIR_IMAGE", "5", None, None, None)]),
    Odd("only template rows", "only_template_rows.pool", []),
    Odd("header only", "header_only.pool", []),
    Odd("200 KB value", lambda d: _write(d, f"FILENAME|EXP_TYPE|TARGNAME\njw11_a_uncal.fits|NRC_IMAGE|{'t' * BIG}\n"),
        [("jw11_a_uncal.fits", "NRC_IMAGE", None, "t" * BIG, None, None)]),
    Odd("255-character FILENAME, 40-character EXP_TYPE", lambda d: _write(
        d, f"FILENAME|EXP_TYPE\njw11_{'a' * 239}_uncal.fits|{'N' * 40}\n"),
        [(f"jw11_{'a' * 239}_uncal.fits", "N" * 40, None, None, None, None)]),
    Odd("DataFrame: nullable dtypes, categorical, datetimes, NA and NaT", _df_nullable, [
        ("jw13_a_uncal.fits", "NRC_IMAGE", "1234", None, True,
         {"date_obs": "2026-01-01T02:03:04", "seen": "2026-03-01T00:00:00Z"}),
        ("jw13_b_uncal.fits", "MIR_IMAGE", None, "NGC 1", None, {"date_obs": None, "seen": None}),
        ("jw13_c_uncal.fits", "NRC_IMAGE", "7", "padded", False, {"date_obs": "2026-01-02T00:00:00", "seen": None})],
        frame=True),
    Odd("DataFrame: non-string column names", _df_non_string_names, [
        ("jw13_a_uncal.fits", "NRC_IMAGE", None, None, None, {"7": "seven", "2.5": None})], frame=True),
    Odd("DataFrame: no rows", _df_empty, [], frame=True),
]


def _write(directory: Path, text: str) -> Path:
    path = directory / "generated.pool"
    path.write_text(text)
    return path


@pytest.fixture
def both_backends(postgres, sqlite_template, tmp_path):
    """Four fresh catalogs: (SQLite, SQLite, PostgreSQL, PostgreSQL), for the row loader and the bulk path on each."""
    urls = []
    for i in range(2):
        path = tmp_path / f"catalog{i}.db"
        shutil.copy(sqlite_template, path)
        urls.append(f"sqlite:///{path}")
    urls += [postgres.migrated(), postgres.migrated()]
    yield urls
    for url in urls:
        _dispose(url)


@pytest.mark.postgres
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in ODD])
def test_odd_input_loads_the_same_on_both_paths_and_backends(both_backends, tmp_path, monkeypatch, case):
    source = case.source() if case.frame else case.source(tmp_path) if callable(case.source) else CORPUS / case.source
    results = []
    for url, method in zip(both_backends, ("rows", "auto", "rows", "auto")):
        with monkeypatch.context() as patch:
            if method == "auto":
                patch.setattr(columnar, "BULK_MIN_BYTES", 0)
            result = load(url, source, name="odd", method=method)
        results.append((result.inserted, result.rejected))
    assert results == [(len(case.expected), 0)] * 4
    loads = [stored(url, ids=False) for url in both_backends]
    for other, label in zip(loads[1:], ("SQLite bulk path", "PostgreSQL row loader", "PostgreSQL bulk path")):
        assert other == loads[0], label
    e = schema.exposure
    for url in both_backends:
        with get_engine(url).connect() as conn:
            rows = conn.execute(sa.select(e.c.filename, e.c.exp_type, e.c.program, e.c.targname, e.c.is_psf,
                                          e.c.extra).order_by(e.c.source_line)).all()
        assert [tuple(r) for r in rows] == case.expected
