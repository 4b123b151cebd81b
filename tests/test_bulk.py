"""The bulk path (l2rules.inventory.columnar) loads exactly what the row loader loads, or declines.

Each comparison loads the same file line by line into one fresh catalog and on the
bulk path into another, then compares every stored row (ids included) on each backend.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import sqlalchemy as sa

from l2rules import schema
from l2rules.config import L2RulesError, get_engine
from l2rules.inventory import InventoryError, columnar, exposure_stem, load

from .conftest import DATA, POOLS, REPO, SAMPLE_POOLS, _dispose

PROBES = sorted(p.name for p in (DATA / "probes").glob("probe_*.csv") if p.name.count(".") == 1)


@pytest.fixture
def bulk_for_any_size(monkeypatch):
    """``method="auto"`` takes the bulk path for small files too."""
    monkeypatch.setattr(columnar, "BULK_MIN_BYTES", 0)


def stored(db: str, ids: bool = True) -> dict[str, list[tuple]]:
    """Every row a load writes, in a stable order (times of day left out; without ``ids``, ids too:
    on PostgreSQL a rolled-back load still uses up sequence numbers)."""
    e, c, p, r = schema.exposure, schema.exposure_candidate, schema.pool, schema.load_rejection
    exposure = [col for col in e.columns if ids or col.name not in ("id", "pool_id")]
    candidate = [col for col in c.columns if ids or col.name != "exposure_id"]
    with get_engine(db).connect() as conn:
        return {
            "exposure": [tuple(row) for row in conn.execute(sa.select(*exposure).order_by(e.c.id))],
            "candidate": [tuple(row) for row in conn.execute(
                sa.select(*candidate).order_by(c.c.exposure_id, c.c.position))],
            "pool": [tuple(row) for row in conn.execute(
                sa.select(*(col for col in (p.c.id, p.c.name, p.c.source, p.c.sha256, p.c.n_exposures, p.c.columns)
                            if ids or col.name != "id")))],
            "rejection": [tuple(row) for row in conn.execute(
                sa.select(r.c.source, r.c.line, r.c.column, r.c.reason, r.c.raw).order_by(r.c.id))],
        }


def assert_same_load(path, db: str, twin_db: str) -> tuple:
    """``path`` (a file or a DataFrame) loaded by the row loader into ``db`` and on the bulk path into ``twin_db``."""
    by_rows = load(db, path, method="rows")
    by_bulk = load(twin_db, path, method="bulk")
    assert by_bulk.method == "bulk" and by_rows.method == "rows"
    assert (by_bulk.rows, by_bulk.inserted, by_bulk.template_rows) == \
        (by_rows.rows, by_rows.inserted, by_rows.template_rows)
    assert [(e.line, e.raw) for e in by_bulk.rejections] == [(e.line, e.raw) for e in by_rows.rejections]
    rows, bulk_rows = stored(db), stored(twin_db)
    assert rows["exposure"], "nothing loaded"
    for table in rows:
        assert bulk_rows[table] == rows[table], table
    return by_rows, by_bulk


@pytest.mark.parametrize("name", SAMPLE_POOLS + PROBES)
def test_bulk_path_stores_what_the_row_loader_stores(db, twin_db, name):
    path = POOLS / name if name in SAMPLE_POOLS else DATA / "probes" / name
    assert_same_load(path, db, twin_db)


def test_bulk_path_across_batches(db, twin_db, tmp_path):
    """A pool of several reader blocks: line numbers, ids and candidates carry on across batches."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench
    finally:
        sys.path.pop(0)
    path = bench.generate(tmp_path / "synthetic.csv", rows=6000, seed=7)
    assert path.stat().st_size > 2 * columnar.BLOCK
    by_rows, _ = assert_same_load(path, db, twin_db)
    assert by_rows.inserted == 6000


def test_extra_columns_and_missing_ones(db, twin_db, tmp_path):
    """Unknown columns go to ``extra`` as JSON (backslashes escaped); absent known columns stay NULL."""
    path = tmp_path / "odd.csv"
    path.write_text("FILENAME|EXP_TYPE|MY_NOTE|IS_PSF|OTHER\n"
                    "jw1_a_uncal.fits|nrc_image|C:\\data\\x|T|1\n"
                    "jw1_b_uncal.fits|NRC_CORON|null|f|\n")
    assert_same_load(path, db, twin_db)
    with get_engine(twin_db).connect() as conn:
        extra = conn.execute(sa.select(schema.exposure.c.extra).order_by(schema.exposure.c.id)).scalars().all()
    assert extra == [{"my_note": "C:\\data\\x", "other": "1"}, {"my_note": None, "other": None}]


@pytest.mark.parametrize("name, expected", [
    ("jw01_00001_nrca1_uncal.fits", "jw01_00001_nrca1"),
    ("JW01_00001_NRCA1_UNCAL.FITS", "JW01_00001_NRCA1"),
    ("jw01_x_rate.fits.gz", "jw01_x"),
    ("jw01_x_rate.asdf", "jw01_x"),
    ("plain.fits", "plain"),
    ("_leading.fits", "_leading"),
    ("trailing_.fits", "trailing"),
    ("a_b.c.fits", "a"),
    ("no_extension.txt", "no_extension.txt"),
    ("x.gz.fits", "x.gz"),
    ("x.fits.fits", "x.fits"),
])
def test_stems_agree_with_exposure_stem(name, expected):
    import pyarrow as pa

    assert exposure_stem(name) == expected
    assert columnar.stems(pa.array([name])).to_pylist() == [expected]


def test_stems_agree_with_exposure_stem_on_random_names():
    import pyarrow as pa

    rng = random.Random(11)
    parts = ["jw01", "_", "_", "nrca1", "uncal", ".fits", ".FITS", ".fits.gz", ".asdf", ".gz", "x", "."]
    names = ["".join(rng.choice(parts) for _ in range(rng.randint(1, 7))) for _ in range(5000)]
    assert columnar.stems(pa.array(names)).to_pylist() == [exposure_stem(n) for n in names]


GOOD = "FILENAME|EXP_TYPE|ASN_CANDIDATE\njw2_a_uncal.fits|NRC_IMAGE|[('o001', 'observation')]\n"
#: Files the bulk path declines, and the reason it gives.
DECLINED = {
    "padded field": (GOOD + "jw2_b_uncal.fits| NRC_IMAGE|[('o001', 'observation')]\n", "padded"),
    "padded at line end": (GOOD + "jw2_b_uncal.fits|NRC_IMAGE|[('o001', 'observation')] \n", "padded"),
    "quoted field": (GOOD + '"jw2_b_uncal.fits"|NRC_IMAGE|\n', "ASCII"),
    "not ascii": (GOOD + "jw2_b_uncal.fits|NRC_IMAGE|é\n", "ASCII"),
    "carriage return in a value": (GOOD + "jw2_b_uncal.fits|NRC_IMAGE|\rx\n", "carriage return"),
    "carriage return ending a line": (GOOD + "jw2_b_uncal.fits|NRC_IMAGE|\rjw2_c_uncal.fits|NRC_IMAGE|\n",
                                      "carriage return"),
    "nul": (GOOD + "jw2_b_uncal.fits|NRC_IMAGE|\x00\n", "ASCII"),
    "value after a trailing delimiter": (GOOD.replace("\n", "|\n") + "jw2_b_uncal.fits|NRC_IMAGE||x\n",
                                         "after the last column"),
    "tab": (GOOD + "jw2_b_uncal.fits|NRC_IMAGE\t|\n", "ASCII"),
    "empty line": (GOOD + "\njw2_b_uncal.fits|NRC_IMAGE|\n", "empty or a comment line"),
    "comment line": (GOOD + "# note\njw2_b_uncal.fits|NRC_IMAGE|\n", "empty or a comment line"),
    "too few fields": (GOOD + "jw2_b_uncal.fits|NRC_IMAGE\n", "CSV reader"),
    "empty exp_type": (GOOD + "jw2_b_uncal.fits||\n", "empty FILENAME or EXP_TYPE"),
    "bad candidate": (GOOD + "jw2_b_uncal.fits|NRC_IMAGE|not a list\n", "ASN_CANDIDATE"),
    "repeated exposure": (GOOD + "jw2_a_uncal.fits|NRC_IMAGE|\n", "already in the catalog or repeated in the file"),
    "header only": ("FILENAME|EXP_TYPE\n", "no rows after the header"),
}


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_bulk_declines_what_it_cannot_take_exactly(db, twin_db, tmp_path, case, bulk_for_any_size):
    text, reason = DECLINED[case]
    path = tmp_path / f"{case.replace(' ', '_')}.csv"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(L2RulesError, match="the bulk path declines this file") as declined:
        load(db, path, method="bulk")
    assert any(word in str(declined.value) for word in reason.split("|")), str(declined.value)
    assert stored(db)["exposure"] == [] and stored(db)["pool"] == []  # one transaction: nothing written
    # auto: the row loader takes the file, with the same outcome as asked for directly
    try:
        expected = load(twin_db, path, method="rows")
    except InventoryError as exc:
        with pytest.raises(InventoryError) as raised:
            load(db, path, method="auto")
        assert str(raised.value) == str(exc)  # the line and the column, named as the row loader names them
    else:
        result = load(db, path, method="auto")
        assert (result.method, result.inserted, result.duplicates) == ("rows", expected.inserted, expected.duplicates)
        assert result.declined and any(word in result.declined for word in reason.split("|"))
        assert stored(db, ids=False) == stored(twin_db, ids=False)


PLAIN = ("FILENAME|EXP_TYPE|ASN_CANDIDATE|PROGRAM\n"
         "jw3_a_uncal.fits|nrc_image|[('o001', 'observation')]|1234\n"
         "jw3_b_uncal.fits|NRC_IMAGE||null\n"
         "set acid|EXP_TYPE|ASN_CANDIDATE|PROGRAM\n"
         "jw3_c_uncal.fits|MIR_IMAGE|[('o002', 'observation')]|\n")


def _trailing(text: str, lines: slice) -> str:
    """``text`` with a trailing delimiter on the given lines (0: the header)."""
    rows = text.splitlines(keepends=True)
    return "".join(r.replace("\n", "|\n") if i in range(len(rows))[lines] else r for i, r in enumerate(rows))


#: Forms of the same pool that real files take: both paths load them, and load them as the plain file.
REAL_FILES = {
    "byte-order mark": b"\xef\xbb\xbf" + PLAIN.encode(),
    "byte-order mark before comments": b"\xef\xbb\xbf# made by a spreadsheet\r\n" + PLAIN.encode(),
    "crlf": PLAIN.replace("\n", "\r\n").encode(),
    "mixed line ends": PLAIN.replace("\n", "\r\n", 3).encode(),
    "no line end at the end": PLAIN.rstrip("\n").encode(),
    "trailing delimiter on every line": _trailing(PLAIN, slice(None)).encode(),
    "trailing delimiter on the rows": _trailing(PLAIN, slice(1, None)).encode(),
    "trailing delimiter on the header": _trailing(PLAIN, slice(0, 1)).encode(),
    "all of them": b"\xef\xbb\xbf" + _trailing(PLAIN, slice(None)).replace("\n", "\r\n").encode(),
}


@pytest.mark.parametrize("case", sorted(REAL_FILES))
def test_real_file_forms_load_as_the_plain_file_on_both_paths(db, twin_db, tmp_path, case):
    path = tmp_path / "pool.csv"
    path.write_bytes(REAL_FILES[case])
    by_rows, by_bulk = assert_same_load(path, db, twin_db)
    assert (by_rows.inserted, by_rows.template_rows, by_rows.rejected) == (3, 1, 0)
    with get_engine(db).connect() as conn:
        e, p = schema.exposure, schema.pool
        rows = conn.execute(sa.select(e.c.filename, e.c.exp_type, e.c.program, e.c.extra, e.c.source_line)
                            .order_by(e.c.id)).all()
        columns = conn.execute(sa.select(p.c.columns)).scalar_one()
        candidates = conn.execute(sa.select(schema.exposure_candidate.c.cand_id)
                                  .order_by(schema.exposure_candidate.c.exposure_id)).scalars().all()
    first = 3 if "comments" in case else 2
    assert [tuple(r) for r in rows] == [("jw3_a_uncal.fits", "NRC_IMAGE", "1234", None, first),
                                        ("jw3_b_uncal.fits", "NRC_IMAGE", None, None, first + 1),
                                        ("jw3_c_uncal.fits", "MIR_IMAGE", None, None, first + 3)]
    assert columns == "filename|exp_type|asn_candidate|program"
    assert candidates == ["o001", "o002"]
    raw = by_bulk.rejections[0].raw
    assert raw.startswith("set acid|EXP_TYPE|ASN_CANDIDATE|PROGRAM") and "\r" not in raw


def test_reload_declines_then_updates_in_place(db, bulk_for_any_size):
    """Exposures already in the catalog: the bulk path rolls back and the row loader updates them."""
    path = POOLS / "pool_002_image_miri.csv"
    first = load(db, path, method="bulk")
    before = stored(db)
    again = load(db, path)
    assert (first.method, first.inserted) == ("bulk", 8)
    assert (again.method, again.inserted, again.updated) == ("rows", 0, 8)
    assert again.declined == columnar.REPEATED
    assert stored(db)["exposure"] == before["exposure"]


def test_small_files_take_the_row_loader_under_auto(db):
    result = load(db, POOLS / "pool_002_image_miri.csv")
    assert result.method == "rows" and "under" in result.declined


def test_cli_load_method(db, capsys):
    from l2rules.cli import main

    assert main(["--db", db, "load", "--method", "bulk", str(POOLS / "pool_021_tso.csv")]) == 0
    out = capsys.readouterr().out
    assert "5 exposures (5 new, 0 updated, bulk), 2 template rows set aside" in out


def test_sqlite_writer_process_reports_a_decline(tmp_path, sqlite_template):
    """``python -m l2rules.inventory.columnar`` answers with one JSON line; a declined file leaves the catalog
    as it was."""
    path = tmp_path / "catalog.db"
    shutil.copy(sqlite_template, path)
    pool = tmp_path / "bad.csv"
    pool.write_text(GOOD + "jw2_b_uncal.fits|NRC_IMAGE\n")
    proc = subprocess.run([sys.executable, "-m", "l2rules.inventory.columnar", "load", str(path), str(pool), "bad.csv"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith('{"declined": "the CSV reader')
    assert stored(f"sqlite:///{path}")["pool"] == []


def test_new_sqlite_catalogs_use_32k_pages(tmp_path):
    """Wide exposure rows: a new catalog file is made with 32 KB pages (a million-row load 1 s faster)."""
    from l2rules import init

    url = f"sqlite:///{tmp_path / 'new.db'}"
    init(url)
    with get_engine(url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == 32768
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    _dispose(url)


def frame():
    """A DataFrame as analysts make them: nullable dtypes, categoricals, timestamps, free text."""
    import pandas as pd

    return pd.DataFrame({
        "FILENAME": ["jw8_a_uncal.fits", " jw8_b_uncal.fits", "set acid", "jw8_c_uncal.fits"],
        "EXP_TYPE": pd.Categorical(["nrc_image", "NRC_CORON", "EXP_TYPE", "MIR_IMAGE"]),
        "IS_PSF": pd.array([True, pd.NA, None, False], dtype="boolean"),
        "PROGRAM": pd.array([1234, pd.NA, None, 5], dtype="Int64"),
        "ASN_CANDIDATE": ["[('o001', 'observation')]", None, "ASN_CANDIDATE", "NULL"],
        "DATE_OBS": pd.to_datetime(["2026-01-01", None, None, "2026-01-02 03:04:05.5"], format="ISO8601"),
        "TARGNAME": ['NGC "1", core', " \u00e9toile\u00a0", None, "null"],
        "my_note": ['say "hi"\there', "caf\u00e9", "x", None],
        "ratio": [0.5, float("nan"), 1.0, 2.0],
    })


def test_dataframe_bulk_path_stores_what_the_row_loader_stores(db, twin_db):
    """Through Arrow on both paths: missing values of every dtype are NULL, never text; the same rows either way."""
    by_rows, by_bulk = assert_same_load(frame(), db, twin_db)
    assert (by_rows.inserted, by_rows.template_rows) == (3, 1)
    assert by_bulk.rejections[0].raw == "set acid|EXP_TYPE|||ASN_CANDIDATE|||x|1"
    with get_engine(twin_db).connect() as conn:
        e = schema.exposure
        rows = conn.execute(sa.select(e.c.filename, e.c.exp_type, e.c.is_psf, e.c.program, e.c.targname,
                                      e.c.extra).order_by(e.c.id)).all()
    assert [tuple(r) for r in rows] == [
        ("jw8_a_uncal.fits", "NRC_IMAGE", True, "1234", 'NGC "1", core',
         {"date_obs": "2026-01-01T00:00:00.000", "my_note": 'say "hi"\there', "ratio": "0.5"}),
        ("jw8_b_uncal.fits", "NRC_CORON", None, None, "\u00e9toile",
         {"date_obs": None, "my_note": "caf\u00e9", "ratio": None}),
        ("jw8_c_uncal.fits", "MIR_IMAGE", False, "5", None,
         {"date_obs": "2026-01-02T03:04:05.500", "my_note": None, "ratio": "2"}),
    ]


def test_each_unnamed_dataframe_is_its_own_pool(db):
    from l2rules import worklist

    first, second = frame().iloc[[0]], frame().iloc[[3]]
    items = worklist(db, source="table", inventory=second, store=True)
    assert items["filename"].tolist() == ["jw8_c_uncal.fits"]
    assert worklist(db, source="table", inventory=first, store=True)["filename"].tolist() == ["jw8_a_uncal.fits"]
    again = load(db, first)
    assert (again.inserted, again.updated) == (0, 1)
    with get_engine(db).connect() as conn:
        pools = conn.execute(sa.select(schema.pool.c.name, schema.pool.c.n_exposures)
                             .order_by(schema.pool.c.id)).all()
    assert len(pools) == 2 and all(name.startswith("dataframe-") for name, _n in pools)
    assert [n for _name, n in pools] == [1, 1]
    assert load(db, second, name="analyst").pool_id not in {again.pool_id}


def test_large_dataframes_take_the_bulk_path(db, bulk_for_any_size):
    result = load(db, frame())
    assert (result.method, result.inserted, result.declined) == ("bulk", 3, None)


def test_dataframe_with_a_control_character_is_refused_on_both_paths(db, tmp_path, bulk_for_any_size):
    bad = frame()
    bad.loc[3, "TARGNAME"] = "a\x00b"
    for method in ("rows", "auto"):
        with pytest.raises(InventoryError) as info:
            load(db, bad, name="bad", method=method)
        assert str(info.value).startswith("bad:5: column TARGNAME (character "), str(info.value)
        assert "control character U+0000" in str(info.value)
    assert stored(db)["exposure"] == []
    result = load(db, bad, name="bad", skip_bad=True)
    assert (result.inserted, result.rejected) == (2, 1)
    assert "a\u2400b" in stored(db)["rejection"][-1][4]


def test_dataframe_column_of_mixed_types_is_refused_by_name(db):
    import pandas as pd

    mixed = pd.DataFrame({"FILENAME": ["jw9_a_uncal.fits", "jw9_b_uncal.fits"], "EXP_TYPE": ["NRC_IMAGE"] * 2,
                          "PROGRAM": [1234, "x"]})
    with pytest.raises(InventoryError, match=r"^mixed: column PROGRAM: values Arrow cannot read as one type"):
        load(db, mixed, name="mixed")


def test_a_bulk_load_into_a_locked_sqlite_catalog_is_one_line_exit_3(tmp_path, monkeypatch, capsys):
    """Another process holds the write lock past the busy timeout: said in one line, nothing loaded."""
    import subprocess
    import sys

    from l2rules.cli import main

    db = tmp_path / "locked.db"
    url = f"sqlite:///{db}"
    assert main(["--db", url, "init"]) == 0
    pool = tmp_path / "big.csv"
    pool.write_text("FILENAME|EXP_TYPE\n" + "".join(f"jw5_{i:06d}_uncal.fits|NRC_IMAGE\n" for i in range(2000)))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)"), str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setenv("L2RULES_SQLITE_BUSY_MS", "300")
        capsys.readouterr()
        assert main(["--db", url, "load", "--method", "bulk", str(pool)]) == 3
        err = capsys.readouterr().err
        assert "locked by another process" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.delenv("L2RULES_SQLITE_BUSY_MS")
    assert main(["--db", url, "load", "--method", "bulk", str(pool)]) == 0


def test_values_are_stored_stripped_on_every_path(db, twin_db, tmp_path):
    """Every load stores its values stripped: the association stages normalise values without a trim
    (lower case, not-set spellings to NULL), relying on this. The bulk path declines a padded file (the
    row loader strips it) and strips a DataFrame's values itself."""
    path = tmp_path / "spaced.csv"
    path.write_text("FILENAME|EXP_TYPE|DETECTOR|FILTER|ASN_CANDIDATE|TARGETID\n"
                    "jw5_a_uncal.fits | NRC_IMAGE |  NRCA1\t| F200W |[('o001', 'observation')]| 1 \n"
                    "jw5_b_uncal.fits|NRC_IMAGE|\tnrca1 |  n/a  |[('o001', 'observation')]|1\n")
    with pytest.raises(L2RulesError, match="declines"):
        load(twin_db, path, method="bulk")
    load(db, path)
    frame = pd.read_csv(path, sep="|", dtype=str, keep_default_na=False)
    frame["FILENAME"] = frame["FILENAME"].str.replace("jw5", "jw6")
    assert load(twin_db, frame, method="bulk").method == "bulk"
    for url in (db, twin_db):
        with get_engine(url).connect() as conn:
            e = schema.exposure
            rows = conn.execute(sa.select(e.c.exp_type, e.c.detector, e.c.filter, e.c.targetid).order_by(e.c.id)).all()
        assert [tuple(r) for r in rows] == [("NRC_IMAGE", "NRCA1", "F200W", "1"), ("NRC_IMAGE", "nrca1", "n/a", "1")]
