"""The library's DataFrames are typed by one policy (``outputs.DTYPES``): the same frame, dtypes included, on
SQLite and PostgreSQL, and the frame its Parquet file reads back as."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest
import sqlalchemy as sa

from l2rules import catalog, exposures, impact, rejections, rules, unmatched, worklist
from l2rules.association import explain
from l2rules.cli import main
from l2rules.outputs import CATEGORICAL, dtype_of, render, write
from l2rules.runs import items, run, runs

from .conftest import DATA, POOLS, _dispose
from .runs_helpers import write_pool

#: Sample pools of several instruments (backgrounds, imprints) and one with a row a ``skip_bad`` load refuses.
SOURCES = ["pool_010_spec_nirspec_lv2bkg.csv", "pool_017_spec_nirspec_lv2imprint.csv"]
#: Columns whose values are the moment or the machine something ran on, or surrogate keys (PostgreSQL's
#: sequences skip numbers SQLite reuses): their dtypes are compared, not their values.
#: Values of the moment or of the backend's id sequences (PostgreSQL draws exposure ids in blocks).
OF_THE_MOMENT = ("started_at", "finished_at", "rejected_at", "host", "pid", "id", "pool_id", "work_item_id",
                 "exposure_id")


def _catalog(db: str, tmp_path) -> str:
    """The same catalog on any backend: two sample pools, a synthetic one, a refused row; one run."""
    inputs = tmp_path / "inputs"
    if not inputs.is_dir():
        inputs.mkdir()
        shutil.copy(DATA / "corpus" / "csv_too_many_fields.csv", inputs / "bad.csv")
        write_pool(inputs / "synthetic.csv", 14)
    run(db, [*(POOLS / name for name in SOURCES), inputs / "synthetic.csv", inputs / "bad.csv"], skip_bad=True)
    return db


def frames(db: str) -> dict[str, pd.DataFrame]:
    """Every frame-returning public function of the library, on catalog ``db``."""
    out = {
        "worklist": worklist(db),
        "worklist_table_all": worklist(db, source="table", include_all=True, associations=True),
        "exposures": exposures(db),
        "unmatched": unmatched(db),
        "rejections": rejections(db),
        "runs": runs(db),
        "items": items(db),
        "rules": rules(db),
        "conditions": catalog.conditions(db),
        "history": catalog.history(db, "NRS_MIMF"),
        "versions": catalog.versions(db),
        "releases": catalog.releases(db),
        "table_rows": catalog.table_rows(db, "asn_rule"),
        "diff": catalog.diff_all(db, "2021-01-01", "today"),
        "explain": explain(db, "jw9_000000_nrca1_uncal.fits"),
    }
    for source, start in (("pipeline", "1.8.0"), ("table", "2021-01-01")):
        out[f"impact_{source}"], out[f"impact_{source}_counts"] = impact(db, start, "today", source=source)
    return out


@pytest.fixture
def sqlite_and_postgres(request, tmp_path, sqlite_template):
    """Two freshly migrated catalogs: SQLite and PostgreSQL."""
    pg = request.getfixturevalue("postgres")
    path = tmp_path / "catalog.db"
    shutil.copy(sqlite_template, path)
    urls = (f"sqlite:///{path}", pg.migrated())
    yield urls
    for url in urls:
        _dispose(url)


@pytest.mark.postgres
def test_same_frames_with_the_same_dtypes_on_sqlite_and_postgresql(sqlite_and_postgres, tmp_path):
    lite, pg = (frames(_catalog(url, tmp_path)) for url in sqlite_and_postgres)
    for name, frame in lite.items():
        other = pg[name]
        pd.testing.assert_series_equal(frame.dtypes, other.dtypes, obj=name)
        if name == "exposures":  # both backends keep the pool's other columns as the same JSON
            assert frame["extra"].tolist() == other["extra"].tolist()
        moment = [c for c in frame.columns if c in OF_THE_MOMENT]
        pd.testing.assert_frame_equal(frame.drop(columns=moment), other.drop(columns=moment), obj=name)
    assert not lite["runs"]["started_at"].isna().any()


def test_dtypes_follow_the_policy(db, tmp_path):
    got = frames(_catalog(db, tmp_path))
    work = got["worklist_table_all"]
    assert work["source_line"].dtype == "Int64" and work["level2b"].dtype == "boolean"
    assert work["exp_type"].dtype == "category" and work["filename"].dtype == "string"
    assert list(work["exp_type"].cat.categories) == sorted(set(work["exp_type"]))
    assert str(got["runs"]["started_at"].dtype) == "datetime64[ns, UTC]"
    assert got["runs"]["status"].dtype == "category" and got["runs"]["run_id"].dtype == "Int64"
    assert got["versions"]["effective_date"].map(type).eq(dt.date).all()
    assert got["exposures"]["is_psf"].dtype == "boolean" and got["exposures"]["extra"].dtype == "object"
    assert got["runs"]["inputs"].map(type).eq(list).all()  # a run's inputs: a list of paths, as in its record
    for name, frame in got.items():  # nothing left as Python objects but dates, JSON, lists and diff values
        loose = [c for c, t in frame.dtypes.items() if t == "object"]
        assert set(loose) <= {"effective_date", "recorded", "released", "rules_as_of", "valid_from_date",
                              "valid_to_date", "extra", "before", "after", "inputs"}, (name, loose)
    assert set(got["worklist"].columns) & CATEGORICAL == {"exp_type", "instrument", "exptype", "asn_type",
                                                          "table_asn_type"}
    assert dtype_of("asn_type", sa.Text()) == "category" and dtype_of("reason", sa.Text()) == "string"
    assert dtype_of("extra", sa.JSON()) is None and dtype_of("id", sa.BigInteger()) == "Int64"


def test_parquet_reads_back_as_the_frame(db, tmp_path):
    """``--format parquet`` (``outputs.write``) keeps every dtype: pandas reads each file back as the frame.
    (Not ``diff``: its before/after hold the values of whichever column changed, booleans beside text.)"""
    empty = set()
    for name, frame in frames(_catalog(db, tmp_path)).items():
        if name == "diff":
            continue
        if frame.empty:  # a categorical column of no values at all reads back as object (pyarrow)
            empty.add(name)
            continue
        write(frame, "parquet", tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"{name}.parquet"), frame, obj=name)
    assert empty == {"impact_table", "impact_table_counts"}  # the published table changes nothing of these pools


def test_cli_parquet_is_the_library_frame(db, tmp_path):
    _catalog(db, tmp_path)
    out = tmp_path / "worklist.parquet"
    assert main(["--db", db, "worklist", "--format", "parquet", "--output", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), worklist(db))


def test_text_outputs_of_typed_frames():
    """CSV, JSON and the table print missing values as before (empty, null) and times as ISO 8601."""
    frame = pd.DataFrame({
        "n": pd.array([1, None], dtype="Int64"), "ok": pd.array([True, None], dtype="boolean"),
        "at": pd.to_datetime(["2026-01-02T03:04:05.5+00:00", None], utc=True).astype("datetime64[ns, UTC]"),
        "kind": pd.Categorical(["a", None]), "text": pd.array(["x", None], dtype="string")})
    assert render(frame, "csv") == "n,ok,at,kind,text\n1,True,2026-01-02T03:04:05.500000+00:00,a,x\n,,,,\n"
    assert '"at": "2026-01-02T03:04:05.500000+00:00"' in render(frame, "json")
    assert '"n": null,\n  "ok": null,\n  "at": null,\n  "kind": null,\n  "text": null' in render(frame, "json")
    assert "2026-01-02T03:04:05.500000+00:00" in render(frame, "table")


def test_a_frame_typed_chunk_by_chunk_equals_one_typed_whole(monkeypatch):
    """to_frame types each chunk of rows as it comes (the peak memory of a 1M-row work list); the frame is the
    one typing all its rows at once gives, categories included, also when a chunk has no value of a column."""
    from l2rules import outputs

    engine = sa.create_engine("sqlite://")
    values = [(None, 1, "x", 1), (None, None, None, 0), ("NRC_IMAGE", 3, "y", None), ("MIR_IMAGE", 4, None, 1),
              (None, 5, "z", 0), ("MIR_IMAGE", 6, "x", 1), (None, None, None, None)]
    types = {"exp_type": sa.String(), "n": sa.Integer(), "pool": sa.String(), "level2b": sa.Boolean()}
    whole = outputs.typed(pd.DataFrame(values, columns=list(types), dtype=object), types)
    monkeypatch.setattr(outputs, "_CHUNK", 2)
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (exp_type TEXT, n INTEGER, pool TEXT, level2b BOOLEAN)")
        conn.exec_driver_sql("INSERT INTO t VALUES " + ", ".join(["(?, ?, ?, ?)"] * len(values)),
                             tuple(v for row in values for v in row))
        chunked = outputs.to_frame(conn.execute(sa.text("SELECT * FROM t")), None, types)
        empty = outputs.to_frame(conn.execute(sa.text("SELECT * FROM t WHERE 0")), None, types)
    pd.testing.assert_frame_equal(chunked, whole)
    assert list(chunked["exp_type"].cat.categories) == ["MIR_IMAGE", "NRC_IMAGE"]
    assert list(empty.dtypes.astype(str)) == ["category", "Int64", "string", "boolean"] and len(empty) == 0
