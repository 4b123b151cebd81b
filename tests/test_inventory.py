"""Loading inventories: real pools, CSV files and DataFrames; every bad input named and harmless."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from l2rules import inventory, load, schema
from l2rules.config import get_engine
from l2rules.inventory import InventoryError, exposure_stem, parse_candidates

from .conftest import POOLS, SAMPLE_POOLS, as_values


def read_pool(path) -> tuple[list[str], list[dict[str, str]]]:
    """The pool as plain text rows, read with the csv module (independent of the loader)."""
    with open(path) as fh:
        lines = [line for line in fh if not line.startswith("#")]
    reader = csv.reader(lines, delimiter="|")
    header = [h.lower() for h in next(reader)]
    return header, [dict(zip(header, row)) for row in reader if row]


def state(url: str) -> dict[str, list]:
    """Everything a load could change, to prove a rejected load changed nothing."""
    with get_engine(url).connect() as conn:
        return {t: sorted(map(tuple, conn.execute(sa.text(f"select * from {t}")).all()), key=repr)
                for t in ("pool", "exposure", "exposure_candidate", "load_rejection")}


@pytest.mark.parametrize("name", SAMPLE_POOLS)
def test_every_sample_pool_loads_every_column(db, name):
    header, rows = read_pool(POOLS / name)
    result = load(db, POOLS / name)
    template = [r for r in rows if r["exp_type"].lower() == "exp_type"]
    exposures = {r["filename"]: r for r in rows if r["exp_type"].lower() != "exp_type"}
    assert result.template_rows == len(template)
    assert result.loaded == len(exposures)
    assert result.rejected == 0
    stored = as_values(inventory.exposures(db, pool=name)).set_index("filename")
    assert len(stored) == len(exposures)
    for filename, raw in exposures.items():
        row = stored.loc[filename]
        assert row["stem"] == exposure_stem(filename)
        assert row["exp_type"] == raw["exp_type"].upper()
        for column, value in raw.items():
            if column in ("filename", "exp_type", "is_psf", "bkgdtarg", "is_imprt", "tsovisit"):
                continue
            expected = None if value.strip().lower() in ("", "null") else value.strip()
            assert row[column] == expected, (filename, column)


def test_reload_updates_in_place(db, pool_path):
    first = load(db, pool_path("pool_002_image_miri.csv"))
    again = load(db, pool_path("pool_002_image_miri.csv"))
    assert first.inserted == 8 and again.inserted == 0 and again.updated == 8
    assert len(inventory.exposures(db)) == 8


def test_flags_and_candidates(db, tmp_path):
    path = tmp_path / "flags.csv"
    path.write_text(
        "# a pool\nFILENAME|EXP_TYPE|IS_PSF|BKGDTARG|IS_IMPRT|TSOVISIT|ASN_CANDIDATE|Odd_Column\n"
        "jw1_a_uncal.fits|nrc_coron|T|f|NULL||[('o001', 'observation'), ('c1000', 'background')]|x1\n"
        "jw1_b_uncal.fits|NRC_CORON|False|true|n|True|1000|\n"
    )
    load(db, path)
    stored = as_values(inventory.exposures(db)).set_index("stem")
    a, b = stored.loc["jw1_a"], stored.loc["jw1_b"]
    assert (bool(a.is_psf), bool(a.bkgdtarg), a.is_imprt, a.tsovisit) == (True, False, None, None)
    assert (bool(b.is_psf), bool(b.bkgdtarg), bool(b.is_imprt), bool(b.tsovisit)) == (False, True, False, True)
    assert a.extra == {"odd_column": "x1"}
    with get_engine(db).connect() as conn:
        cands = conn.execute(sa.text(
            "select e.stem, c.position, c.cand_id, c.cand_type from exposure_candidate c "
            "join exposure e on e.id = c.exposure_id order by e.stem, c.position")).all()
    assert [tuple(c) for c in cands] == [("jw1_a", 0, "o001", "observation"), ("jw1_a", 1, "c1000", "background"),
                                         ("jw1_b", 0, "1000", "unknown")]


def test_dataframe_and_comma_csv(db, tmp_path):
    frame = pd.DataFrame({"filename": ["jw2_a_uncal.fits", "jw2_b_uncal.fits"], "exp_type": ["MIR_IMAGE", "nis_soss"],
                          "program": ["1234", None]})
    assert load(db, frame, name="analyst").inserted == 2
    path = tmp_path / "plain.csv"
    path.write_text('filename,exp_type,targname\njw3_a_uncal.fits,NRS_IFU,"NGC 1, core"\n')
    assert load(db, path).inserted == 1
    stored = as_values(inventory.exposures(db)).set_index("stem")
    assert stored.loc["jw2_b", "program"] is None
    assert stored.loc["jw3_a", "targname"] == "NGC 1, core"


def test_identical_repeated_rows_are_collapsed(db, tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("FILENAME|EXP_TYPE\njw4_a_uncal.fits|NRC_IMAGE\njw4_a_uncal.fits|NRC_IMAGE\n")
    result = load(db, path)
    assert (result.inserted, result.duplicates) == (1, 1)


BAD_INPUTS = {
    "missing_filename": (b"EXP_TYPE|PROGRAM\nNRC_IMAGE|1\n", 1, "FILENAME", "missing required column FILENAME"),
    "missing_exp_type": (b"# c\nFILENAME|PROGRAM\njw_a_uncal.fits|1\n", 2, "EXP_TYPE",
                         "missing required column EXP_TYPE"),
    "wrong_field_count": (b"FILENAME|EXP_TYPE|PROGRAM\njw_a_uncal.fits|NRC_IMAGE|1\njw_b_uncal.fits|NRC_IMAGE\n",
                          3, "3", "wrong number of fields: 2, the header has 3"),
    "not_utf8": (b"FILENAME|EXP_TYPE|TARGNAME\njw_a_uncal.fits|NRC_IMAGE|ok\njw_b_uncal.fits|NRC_IMAGE|caf\xe9\n",
                 3, "TARGNAME (character 30)", "bytes that are not UTF-8"),
    "empty_file": (b"", None, None, "empty file: no header line"),
    "only_comments": (b"# nothing here\n#\n", None, None, "empty file: no header line"),
    "conflicting_duplicate": (b"FILENAME|EXP_TYPE\njw_a_uncal.fits|NRC_IMAGE\njw_a_uncal.fits|NRC_CORON\n",
                              3, "FILENAME",
                              "duplicate exposure jw_a_uncal.fits (first at line 2) with conflicting values"),
    "bad_candidate": (b"FILENAME|EXP_TYPE|ASN_CANDIDATE\njw_a_uncal.fits|NRC_IMAGE|[('o001', 'observation')\n",
                      2, "ASN_CANDIDATE", "cannot read ASN_CANDIDATE"),
    "empty_exp_type": (b"FILENAME|EXP_TYPE\njw_a_uncal.fits|null\n", 2, "EXP_TYPE", "EXP_TYPE is empty"),
    # NUL cannot be stored on PostgreSQL: refused on both backends alike, as every C0 control but tab
    "nul": (b"FILENAME|EXP_TYPE|TARGNAME\njw_a_uncal.fits|NRC_IMAGE|a\x00b\n", 2, "TARGNAME (character 28)",
            "control character U+0000"),
    "control_character": (b"FILENAME|EXP_TYPE|TARGNAME\r\njw_a_uncal.fits|NRC_IMAGE|\x1bb\r\n", 2,
                          "TARGNAME (character 27)", "control character U+001B"),
    "lone_carriage_return": (b"FILENAME,EXP_TYPE,TARGNAME\njw_a_uncal.fits,NRC_IMAGE,\"a\rb\"\n", 2,
                             "TARGNAME (character 29)", "control character U+000D"),
    "control_in_header": (b"# c\nFILENAME|EXP_TYPE|TARG\x07NAME\njw_a_uncal.fits|NRC_IMAGE|a\n", 2,
                          "TARG\u2407NAME (character 23)", "control character U+0007"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_named_and_changes_nothing(db, tmp_path, pool_path, case):
    content, line, column, reason = BAD_INPUTS[case]
    load(db, pool_path("pool_021_tso.csv"))
    before = state(db)
    path = tmp_path / f"{case}.csv"
    path.write_bytes(content)
    with pytest.raises(InventoryError) as info:
        load(db, path)
    message = str(info.value)
    where = f"{path}:{line}" if line else str(path)
    assert message.startswith(where + (f": column {column}: " if column else ": ")), message
    assert reason in message
    assert "\n" not in message
    assert state(db) == before


def test_cli_bad_input_exits_2_with_one_line(db, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(BAD_INPUTS["wrong_field_count"][0])
    proc = subprocess.run([sys.executable, "-m", "l2rules", "--db", db, "load", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"l2rules: error: {path}:3: column 3: wrong number of fields: 2, the header has 3"]


def test_skip_bad_keeps_rejected_rows_with_reason(db, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("FILENAME|EXP_TYPE|ASN_CANDIDATE\n"
                    "jw5_a_uncal.fits|NRC_IMAGE|[('o001', 'observation')]\n"
                    "jw5_b_uncal.fits|NRC_IMAGE\n"
                    "jw5_c_uncal.fits|NRC_IMAGE|not a list\n"
                    "jw5_d_uncal.fits|MIR_IMAGE|\n")
    result = load(db, path, skip_bad=True)
    assert (result.inserted, result.rejected) == (2, 2)
    rejected = inventory.rejections(db)
    assert rejected["line"].tolist() == [3, 4]
    assert rejected["column"].tolist() == ["3", "ASN_CANDIDATE"]
    assert rejected["raw"].tolist()[0] == "jw5_b_uncal.fits|NRC_IMAGE"
    # Loading the fixed file again replaces the source's rejections.
    path.write_text("FILENAME|EXP_TYPE\njw5_b_uncal.fits|NRC_IMAGE\n")
    load(db, path, skip_bad=True)
    assert inventory.rejections(db).empty


def test_control_characters_are_kept_visibly_under_skip_bad(db, tmp_path):
    """A row with a control character is rejected with its reason; its raw text shows the character
    as its control picture (a NUL would not store on PostgreSQL); tab is a value's character."""
    path = tmp_path / "controls.csv"
    path.write_bytes(b"FILENAME|EXP_TYPE|TARGNAME\n"
                     b"jw6_a_uncal.fits|NRC_IMAGE|NGC\t1\n"
                     b"jw6_b_uncal.fits|NRC_IMAGE|x\x00y\n"
                     b"jw6_c\x01_uncal.fits|NRC_IMAGE|z\n")
    result = load(db, path, skip_bad=True)
    assert (result.inserted, result.rejected) == (1, 2)
    assert inventory.exposures(db)["targname"].tolist() == ["NGC\t1"]
    rejected = inventory.rejections(db)
    assert rejected["line"].tolist() == [3, 4]
    assert rejected["column"].tolist() == ["TARGNAME (character 29)", "FILENAME (character 6)"]
    assert rejected["reason"].str.startswith("control character U+00").all()
    assert rejected["raw"].tolist() == ["jw6_b_uncal.fits|NRC_IMAGE|x\u2400y", "jw6_c\u2401_uncal.fits|NRC_IMAGE|z"]


def test_error_lines_cut_long_values(db, tmp_path):
    """An error line quotes at most 80 characters of a value; the rejected row keeps it whole."""
    candidate = "[('o001', 'observation')" + ", ('o002', 'observation')" * 40
    path = tmp_path / "long.csv"
    path.write_text(f"FILENAME|EXP_TYPE|ASN_CANDIDATE\njw7_a_uncal.fits|NRC_IMAGE|{candidate}\n")
    with pytest.raises(InventoryError) as info:
        load(db, path)
    message = str(info.value)
    assert f"cannot read ASN_CANDIDATE {candidate[:79] + chr(0x2026)!r}: expected" in message
    assert len(message) < len(str(path)) + 250 and "\n" not in message
    load(db, path, skip_bad=True)
    assert inventory.rejections(db)["raw"].tolist() == [f"jw7_a_uncal.fits|NRC_IMAGE|{candidate}"]


@pytest.mark.parametrize("text, expected", [
    ("[('o001', 'observation'), ('c1000', 'background')]", [("o001", "observation"), ("c1000", "background")]),
    ("[(\"O002\", \"Observation\")]", [("o002", "observation")]),
    ("[]", []), (None, []), ("1000", [("1000", "unknown")]), ("('o001', 'observation')", []),
])
def test_parse_candidates(text, expected):
    assert parse_candidates(text) == expected


@pytest.mark.parametrize("text", ["[('o001'", "o001", "[1, 2]", "{'a': 1}"])
def test_parse_candidates_rejects(text):
    with pytest.raises(ValueError, match="cannot read ASN_CANDIDATE"):
        parse_candidates(text)


@pytest.mark.parametrize("filename, stem", [
    ("jw00632003001_03105_00001_nrca1_uncal.fits", "jw00632003001_03105_00001_nrca1"),
    ("jw_00001_uncal.fits", "jw_00001"), ("set acid", "set acid"), ("plain.fits", "plain"),
])
def test_exposure_stem(filename, stem):
    assert exposure_stem(filename) == stem


def test_a_large_load_leaves_statistics_for_the_planner(db, tmp_path, monkeypatch):
    """Plans must not wait on autovacuum: a load of many rows analyses the tables it wrote."""
    import l2rules.inventory.store as store

    monkeypatch.setattr(store, "STATISTICS_AFTER", 50)
    path = tmp_path / "many.csv"
    path.write_text("FILENAME|EXP_TYPE|ASN_CANDIDATE\n" + "".join(
        f"jw7_{i:06d}_uncal.fits|NRC_IMAGE|[('o001', 'observation')]\n" for i in range(60)))
    engine = get_engine(db)
    load(db, path, progress=False)
    assert analysed(engine, "exposure")


def test_statistics_are_made_again_when_stale(db, tmp_path, monkeypatch):
    """PostgreSQL: a small change into a big analysed table leaves its statistics (a rerun into 10M need not
    sample it again); a change of more than a tenth of its rows, or small ones growing it by as much, does
    not. SQLite's bounded ANALYZE runs after every large change."""
    import l2rules.inventory.store as store
    from l2rules.inventory import keep_statistics

    monkeypatch.setattr(store, "STATISTICS_AFTER", 500)

    def pool(name: str, rows: int) -> Path:
        path = tmp_path / f"{name}.csv"
        path.write_text("FILENAME|EXP_TYPE|ASN_CANDIDATE\n" + "".join(
            f"jw7_{name}_{i:06d}_uncal.fits|NRC_IMAGE|[('o001', 'observation')]\n" for i in range(rows)))
        return path

    engine = get_engine(db)
    load(db, pool("big", 1200), progress=False)
    assert analysed(engine, "exposure")
    assert keep_statistics(engine, ("exposure",), 499) == []  # under STATISTICS_AFTER: never analysed
    monkeypatch.setattr(store, "STATISTICS_AFTER", 1)  # the direct calls below: staleness alone decides
    if engine.dialect.name == "sqlite":
        assert keep_statistics(engine, ("exposure",), 10) == ["exposure"]
        return
    assert keep_statistics(engine, ("exposure",), 10) == []
    assert keep_statistics(engine, ("exposure",), 200) == ["exposure"]
    for number in range(5):  # 400 rows in small loads (each under a tenth, none analysing by itself)
        monkeypatch.setattr(store, "STATISTICS_AFTER", 500)
        load(db, pool(f"small{number}", 80), progress=False)
        monkeypatch.setattr(store, "STATISTICS_AFTER", 1)
        if number == 0:
            assert keep_statistics(engine, ("exposure",), 1) == []
    assert keep_statistics(engine, ("exposure",), 1) == ["exposure"]
    assert keep_statistics(engine, ("exposure",), 1) == []


def analysed(engine: sa.Engine, table: str) -> bool:
    """Whether the planner has statistics of ``table`` (PostgreSQL: ANALYZE ran; SQLite: sqlite_stat1 rows)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return conn.execute(sa.text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :t"),
                                {"t": table}).scalar() is not None
        if not conn.execute(sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar():
            return False
        return conn.execute(sa.text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = :t"), {"t": table}).scalar() > 0


def test_cr_only_line_ends_are_named_as_such(db, tmp_path):
    """A file saved with CR line ends (classic Mac OS) reads as one line: said so, not as a garbled column."""
    path = tmp_path / "mac.csv"
    path.write_bytes(b"FILENAME|EXP_TYPE\rjw1_a_uncal.fits|NRC_IMAGE\rjw1_b_uncal.fits|NRC_IMAGE\r")
    with pytest.raises(InventoryError, match=r"mac.csv:1: lines end with a CR alone \(classic Mac OS\)") as info:
        load(db, path, progress=False)
    assert "\n" not in str(info.value)
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM exposure")).scalar() == 0


def test_skip_bad_keeps_a_row_that_is_not_utf8_and_loads_the_rest(db, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"FILENAME|EXP_TYPE\njw1_a_uncal.fits|NRC_IMAGE\njw1_\xff_uncal.fits|NRC_IMAGE\n"
                     b"jw1_c_uncal.fits|NRC_IMAGE\n")
    with pytest.raises(InventoryError, match=r"latin1.csv:3: column FILENAME \(character 5\): bytes that are not"):
        load(db, path, progress=False)
    result = load(db, path, progress=False, skip_bad=True)
    assert (result.inserted, result.rejected) == (2, 1)
    rejected = inventory.rejections(db)
    assert rejected[["line", "column"]].values.tolist() == [[3, "FILENAME (character 5)"]]


def test_an_exposure_may_name_at_most_a_thousand_candidates(db, tmp_path):
    from l2rules.inventory.poolformat import MAX_CANDIDATES

    many = "[" + ", ".join(f"('c{i:04d}', 'background')" for i in range(MAX_CANDIDATES + 1)) + "]"
    path = tmp_path / "many.csv"
    path.write_text(f"FILENAME|EXP_TYPE|ASN_CANDIDATE\njw1_a_uncal.fits|NRC_IMAGE|{many}\n")
    with pytest.raises(InventoryError, match=rf"many.csv:2: column ASN_CANDIDATE: {MAX_CANDIDATES + 1} candidates"):
        load(db, path, progress=False)
    assert len(parse_candidates(many.replace("('c0000', 'background'), ", ""))) == MAX_CANDIDATES


def test_an_unchanged_pool_is_known_without_loading_it_again(db, tmp_path):
    """A pool file is unchanged when its bytes are those of its last load and every exposure of that load is
    still its own; anything else (edited file, stems taken over by a later pool, a DataFrame) is loaded."""
    from l2rules.inventory import loaded_pool, unchanged_pool

    engine = get_engine(db)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("FILENAME|EXP_TYPE|ASN_CANDIDATE\n" + "".join(
        f"jw7_{i:03d}_uncal.fits|NRC_IMAGE|[('o001', 'observation')]\n" for i in range(5)))
    assert unchanged_pool(engine, first) is None  # never loaded
    pool_id = load(db, first, progress=False).pool_id
    assert unchanged_pool(engine, first) == pool_id

    def serial() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.select(schema.pool.c.load_serial).where(schema.pool.c.id == pool_id)).scalar_one()

    before = serial()
    assert loaded_pool(engine, first) == pool_id and serial() == before  # not loaded again
    second.write_text("FILENAME|EXP_TYPE|ASN_CANDIDATE\njw7_004_uncal.fits|NRC_IMAGE|[('o002', 'observation')]\n")
    load(db, second, progress=False)  # takes over one stem of the first pool: a change of the first one too
    assert unchanged_pool(engine, first) is None and serial() == before + 1
    assert loaded_pool(engine, first) == pool_id and serial() == before + 2  # loaded: the stem comes back
    assert unchanged_pool(engine, first) == pool_id
    first.write_text(first.read_text() + "jw7_005_uncal.fits|NRC_IMAGE|[('o001', 'observation')]\n")
    assert unchanged_pool(engine, first) is None  # edited
    assert unchanged_pool(engine, pd.read_csv(second, sep="|")) is None


def test_a_pool_loaded_with_bad_rows_skipped_is_unchanged_only_for_skip_bad(db, tmp_path):
    """A load with skip_bad kept a bad row aside: without skip_bad the file is read again (and refused, as
    before), not taken as unchanged; with skip_bad it is."""
    from l2rules.inventory import loaded_pool, unchanged_pool

    engine = get_engine(db)
    path = tmp_path / "bad.csv"
    path.write_text("FILENAME|EXP_TYPE|ASN_CANDIDATE\njw7_001_uncal.fits|NRC_IMAGE|[('o001', 'observation')]\n"
                    "jw7_002_uncal.fits|NRC_IMAGE|[('o001', 'observation'\n")
    pool_id = load(db, path, skip_bad=True, progress=False).pool_id
    assert unchanged_pool(engine, path, skip_bad=True) == pool_id
    assert unchanged_pool(engine, path) is None
    with pytest.raises(InventoryError, match=r"bad.csv:3: column ASN_CANDIDATE"):
        loaded_pool(engine, path)


@pytest.mark.parametrize("method", ["bulk", "rows"])
def test_a_pool_is_unchanged_after_either_load_path(db, tmp_path, method):
    """Both load paths record the file's digest: a pool file loaded by either is known unchanged; worklist
    and asn of it then read nothing again."""
    from l2rules.inventory import unchanged_pool

    engine = get_engine(db)
    path = tmp_path / "either.csv"
    path.write_text("FILENAME|EXP_TYPE|ASN_CANDIDATE|TARGETID\n" + "".join(
        f"jw7_{i:03d}_uncal.fits|NRC_IMAGE|[('o001', 'observation')]|1\n" for i in range(50)))
    pool_id = load(db, path, method=method, progress=False).pool_id
    assert unchanged_pool(engine, path) == pool_id

    def serial() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.select(schema.pool.c.load_serial).where(schema.pool.c.id == pool_id)).scalar_one()

    before = serial()
    from l2rules import worklist

    assert len(worklist(db, pools=[path], source="table")) == 50
    worklist(db, pools=[path])  # the pipeline's (nothing selected: the pool has no PROGRAM)
    assert serial() == before
