"""Scheduled runs in one process, on SQLite and PostgreSQL: idempotence, increments, the record, exit codes.

The tests with real concurrent and killed processes are in test_runs_processes.py.
"""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from l2rules import get_engine, schema, worklist
from l2rules.cli import main
from l2rules.runs import RunInProgress, RunLock, items, record, run, runs

from .conftest import POOLS, SAMPLE_POOLS, pool_stems
from .runs_helpers import (
    assert_exactly_once,
    bump_rules,
    head_catalog_revision,
    item_rows,
    pool_line,
    selected,
    write_pool,
)


def test_first_run_then_idempotent_rerun(db):
    pools = [POOLS / name for name in SAMPLE_POOLS]
    first = run(db, pools, skip_bad=True)
    assert first["status"] == "succeeded" and first["error"] is None
    assert first["items_created"] == len(selected(db)) > 0
    assert first["catalog_revision"] == head_catalog_revision(db)
    assert first["exposures_seen"] > 0 and first["exposures_new"] > 0
    assert_exactly_once(db)
    before = item_rows(db)

    again = run(db, pools, skip_bad=True)
    assert again["status"] == "succeeded"
    assert again["items_created"] == 0 and again["exposures_new"] == 0 and again["exposures_changed"] == 0
    assert again["exposures_seen"] == first["exposures_seen"]  # unchanged files are counted, not reloaded
    assert item_rows(db) == before
    assert list(runs(db)["run_id"]) == [first["run_id"], again["run_id"]]


def test_a_run_needs_no_pandas(db):
    """A scheduled run is a fresh process each time: importing pandas (about half a second) is not part of
    it. The run record and the items, which are DataFrames, import it when asked."""
    import subprocess
    import sys

    code = ("import sys; from l2rules import Catalog; "
            f"record = Catalog({db!r}).run([{str(POOLS / 'pool_021_tso.csv')!r}]); "
            "assert record['items_created'] > 0, record; "
            "assert 'pandas' not in sys.modules, 'a run imported pandas'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_run_of_many_items_leaves_statistics_for_the_planner(db, monkeypatch):
    """The next run's stale-item count and the views join work_item: a run that writes many items analyses
    it (no autovacuum needed); one under the threshold does not."""
    import l2rules.inventory.store as store

    from .test_inventory import analysed

    monkeypatch.setattr(store, "STATISTICS_AFTER", 10**9)
    run(db, [POOLS / "pool_021_tso.csv"])
    engine = get_engine(db)
    assert not analysed(engine, "work_item")
    monkeypatch.setattr(store, "STATISTICS_AFTER", 1)
    assert run(db, [POOLS / name for name in SAMPLE_POOLS], skip_bad=True)["items_created"] > 0
    assert analysed(engine, "work_item")


def test_work_items_are_the_worklist_answer(db):
    """One answer: a run's items carry what `worklist` gives each exposure (member types, asn_type, input,
    association, rule), on every sample pool; the published table's verdict is not what decides."""
    run(db, [POOLS / name for name in SAMPLE_POOLS], skip_bad=True)
    columns = ["pool", "filename", "exp_type", "exptype", "asn_type", "level2b_input", "association", "asn_rule"]
    made = items(db)[columns].sort_values(["pool", "filename"]).reset_index(drop=True)
    answer = worklist(db)[columns].sort_values(["pool", "filename"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(made, answer, check_dtype=False)
    assert not worklist(db)["table_level2b"].all()  # some items the published table alone would not make
    assert (made["asn_type"] == "tso-spec2").any() and made["association"].str.endswith("_asn.json").all()


def test_new_and_changed_exposures_are_counted_and_get_items(db, tmp_path):
    pool = write_pool(tmp_path / "p.csv", 12)
    first = run(db, [pool])
    assert (first["exposures_seen"], first["exposures_new"], first["items_created"]) == (12, 12, 8)
    assert first["exposures_unmatched"] == 2  # the NRC_FUTURE rows
    assert (first["exposures_changed"], first["items_changed"], first["items_withdrawn"]) == (0, 0, 0)

    # A redelivery: two more exposures, one changed value.
    write_pool(pool, 14)
    text = pool.read_text().replace("jw9_000000_nrca1_uncal.fits|NRC_IMAGE|jw9|000",
                                    "jw9_000000_nrca1_uncal.fits|NRC_IMAGE|jw9|999")
    pool.write_text(text)
    second = run(db, [pool])
    assert (second["exposures_seen"], second["exposures_new"], second["exposures_changed"]) == (14, 2, 1)
    # jw9_000012 (NRC_IMAGE) and jw9_000013 (MIR_IMAGE), and the changed jw9_000000 again
    assert (second["items_created"], second["items_changed"], second["exposures_withdrawn"]) == (3, 1, 0)
    mine = [r for r in item_rows(db) if r.filename == "jw9_000000_nrca1_uncal.fits"]
    assert [(r.catalog_revision, r.exposure_version, r.run_id) for r in mine] == \
        [(head_catalog_revision(db), 1, first["run_id"]), (head_catalog_revision(db), 2, second["run_id"])]
    assert_exactly_once(db)
    assert run(db, [pool])["items_created"] == 0


def test_the_run_record_counts_the_exposures_its_loads_took_over(db):
    """pool_018 holds exposures (FILENAME stems) pool_007 holds: its run takes them over, counts them in the
    record (and v_runs), and pool_007's next run, taking them back, counts them again."""
    first, second = POOLS / "pool_007_spec_miri.csv", POOLS / "pool_018_all_exptypes.csv"
    shared = len(pool_stems(first) & pool_stems(second))
    assert shared > 0
    assert run(db, [first])["exposures_taken_over"] == 0
    took = run(db, [second])
    assert took["exposures_taken_over"] == shared
    assert runs(db)["exposures_taken_over"].tolist() == [0, shared]
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT exposures_taken_over FROM v_runs ORDER BY run_id")).scalars().all() == \
            [0, shared]


def _items_of(db: str, filename: str) -> list:
    e, wi = schema.exposure, schema.work_item
    with get_engine(db).connect() as conn:
        return conn.execute(sa.select(wi.c.id, wi.c.exposure_version, wi.c.withdrawn_at, wi.c.withdrawn_by,
                                      wi.c.run_id).join(e, e.c.id == wi.c.exposure_id)
                            .where(e.c.filename == filename).order_by(wi.c.id)).all()


def test_redelivery_with_one_changed_exposure_issues_one_new_item(db, tmp_path, capsys):
    pool = write_pool(tmp_path / "p.csv", 12)
    assert main(["--db", db, "run", str(pool)]) == 0
    pool.write_text(pool.read_text().replace("jw9_000001_nrca1_uncal.fits|MIR_IMAGE|jw9|000",
                                             "jw9_000001_nrca1_uncal.fits|MIR_IMAGE|jw9|001"))
    capsys.readouterr()
    assert main(["--db", db, "run", str(pool), "--output", str(tmp_path / "new-{run_id}.csv"),
                 "--print", "json"]) == 0
    record_ = json.loads(capsys.readouterr().out)
    assert (record_["exposures_changed"], record_["items_created"], record_["items_changed"]) == (1, 1, 1)
    written = pd.read_csv(tmp_path / f"new-{record_['run_id']}.csv")
    assert list(written["filename"]) == ["jw9_000001_nrca1_uncal.fits"] and list(written["obs_num"]) == [1]
    assert [i.exposure_version for i in _items_of(db, "jw9_000001_nrca1_uncal.fits")] == [1, 2]
    with get_engine(db).connect() as conn:
        row = conn.execute(sa.text("SELECT item_run_id, item_up_to_date, exposure_version FROM v_current_worklist "
                                   "WHERE filename = 'jw9_000001_nrca1_uncal.fits'")).one()
    assert row.item_run_id == record_["run_id"] and row.item_up_to_date and row.exposure_version == 2
    # The same delivery again changes nothing.
    assert main(["--db", db, "run", str(pool), "--print", "json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["exposures_changed"], again["items_created"], again["items_withdrawn"]) == (0, 0, 0)


def test_redelivery_without_an_exposure_withdraws_its_item(db, tmp_path, capsys):
    pool = write_pool(tmp_path / "p.csv", 12)
    first = run(db, [pool])
    lines = pool.read_text().splitlines()
    gone = [line for line in lines if line.startswith(("jw9_000000_", "jw9_000004_"))]  # NRC_IMAGE, FGS_DARK
    pool.write_text("\n".join(line for line in lines if line not in gone) + "\n")
    assert main(["--db", db, "run", str(pool), "--print", "json"]) == 0
    second = json.loads(capsys.readouterr().out)
    # Both exposures left the pool; only the NRC_IMAGE one had an item (FGS_DARK is not processed).
    assert (second["exposures_seen"], second["exposures_withdrawn"], second["items_withdrawn"]) == (10, 2, 1)
    assert second["items_created"] == 0
    (item,) = _items_of(db, "jw9_000000_nrca1_uncal.fits")
    assert item.run_id == first["run_id"] and item.withdrawn_by == second["run_id"] and item.withdrawn_at
    assert "jw9_000000_nrca1_uncal.fits" not in selected(db)
    assert main(["--db", db, "worklist", "--published", str(pool), "--format", "json"]) == 0
    assert "jw9_000000" not in capsys.readouterr().out
    with get_engine(db).connect() as conn:
        current = set(conn.execute(sa.text("SELECT filename FROM v_current_worklist")).scalars())
        status = set(conn.execute(sa.text("SELECT filename FROM v_exposure_status")).scalars())
        pool_count = conn.execute(sa.text("SELECT n_exposures FROM pool")).scalar_one()
    assert current == selected(db) and "jw9_000000_nrca1_uncal.fits" not in status and pool_count == 10
    assert_exactly_once(db)
    # The record shows it, in `runs` too.
    assert main(["--db", db, "runs", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["items_withdrawn"], r["exposures_withdrawn"]) for r in listed] == [(0, 0), (1, 2)]
    assert main(["--db", db, "runs"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "items_withdrawn" in table[0] and "items_changed" in table[0]
    # Nothing more to withdraw; and when the exposure comes back, it is a new version with a new item.
    assert run(db, [pool])["items_withdrawn"] == 0
    write_pool(pool, 12)
    back = run(db, [pool])
    assert (back["items_created"], back["items_changed"], back["exposures_withdrawn"]) == (1, 1, 0)
    assert [(i.exposure_version, i.withdrawn_by) for i in _items_of(db, "jw9_000000_nrca1_uncal.fits")] == \
        [(1, second["run_id"]), (2, None)]
    assert_exactly_once(db)


def test_exposures_loaded_by_hand_are_withdrawn_by_the_next_run(db, tmp_path):
    from l2rules import load

    pool = write_pool(tmp_path / "p.csv", 6)
    run(db, [pool])
    write_pool(pool, 5)  # jw9_000005 (NRC_FUTURE, unmatched) and nothing else left out
    pool.write_text(pool.read_text().replace(pool_line("jw9", 3) + "\n", ""))
    load(db, pool)  # `l2rules load`, outside a run
    result = run(db, None)
    assert (result["items_withdrawn"], result["items_created"]) == (1, 0)
    assert [i.withdrawn_by for i in _items_of(db, "jw9_000003_nrca1_uncal.fits")] == [result["run_id"]]
    assert_exactly_once(db)


def test_a_run_without_inputs_makes_the_items_of_loaded_exposures(db, tmp_path):
    from l2rules import load

    load(db, write_pool(tmp_path / "p.csv", 6))
    result = run(db, None)
    assert result["inputs"] == [] and result["items_created"] == 4
    assert run(db, None)["items_created"] == 0


def test_rules_change_makes_new_items_only_where_the_item_would_differ(db, tmp_path):
    run(db, [write_pool(tmp_path / "p.csv", 12)])
    old = item_rows(db)
    bump_rules(db, "T001", "asn_rule", {"name": "Asn_Lv2Image"}, {"asn_type": "wfs-image2", "note": "test"})
    bump_rules(db, "T002", "asn_value_set", {"set_name": "IMAGE2_SCIENCE", "value": "mir_image"})
    result = run(db, None)
    assert result["catalog_revision"] == "T002"
    new = [r for r in item_rows(db) if r not in old]
    # The NRC_IMAGE and NIS_IMAGE exposures get a new item (asn_type changed); the MIR_IMAGE ones left the
    # work list; the MIR_LRS-FIXEDSLIT ones are as they were.
    assert {r.filename for r in new} == {f"jw9_{i:06d}_nrca1_uncal.fits" for i in (0, 3, 6, 9)}
    assert {(r.catalog_revision, r.asn_type) for r in new} == {("T002", "wfs-image2")}
    assert result["items_created"] == 4
    assert "jw9_000001_nrca1_uncal.fits" not in selected(db)
    assert run(db, None)["items_created"] == 0
    # A rule change that does not change the items (a note) makes nothing.
    bump_rules(db, "T003", "asn_rule", {"name": "Asn_Lv2Image"}, {"note": "only a note"})
    assert run(db, None)["items_created"] == 0


def test_output_written_atomically_with_run_id_and_only_when_there_are_items(db, tmp_path):
    pool = write_pool(tmp_path / "p.csv", 6)
    out = tmp_path / "items-{run_id}.json"
    first = run(db, [pool], output=out)
    written = tmp_path / f"items-{first['run_id']}.json"
    assert first["output"] == str(written)
    rows = json.loads(written.read_text())
    assert len(rows) == 4 and {r["run_id"] for r in rows} == {first["run_id"]}
    assert {"pool", "filename", "level2b_input", "asn_type", "work_item_id", "catalog_revision"} <= set(rows[0])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left

    second = run(db, [pool], output=out)
    assert second["output"] is None
    assert not (tmp_path / f"items-{second['run_id']}.json").exists()

    third = run(db, [write_pool(tmp_path / "q.csv", 3, prefix="jw8")], output=tmp_path / "q.parquet")
    assert len(pd.read_parquet(tmp_path / "q.parquet")) == third["items_created"] == 3


def test_a_pool_run_with_skip_bad_is_refused_by_a_run_without(db, tmp_path):
    """The bad row a run with skip_bad kept aside: a later run without skip_bad reads the unchanged file
    again and refuses it, as it would the first time (it is not skipped as unchanged)."""
    path = write_pool(tmp_path / "p.csv", 4)
    path.write_text(path.read_text() + pool_line("jw9", 99).replace("')]", "'") + "\n")  # a bad ASN_CANDIDATE
    assert run(db, [path], skip_bad=True)["rows_rejected"] == 1
    assert run(db, [path], skip_bad=True)["exposures_new"] == 0  # unchanged: skipped
    with pytest.raises(Exception) as info:
        run(db, [path])
    assert info.value.exit_code == 2 and "ASN_CANDIDATE" in info.value.run_record["error"]


def test_failed_run_is_recorded_with_its_error(db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("FILENAME|PROGRAM\njw1_uncal.fits|1\n")
    with pytest.raises(Exception) as info:
        run(db, [bad])
    assert info.value.exit_code == 2
    failed = info.value.run_record
    assert failed["status"] == "failed" and "missing required column EXP_TYPE" in failed["error"]
    assert failed["finished_at"] is not None
    assert record(db, failed["run_id"]) == failed
    # Runs after it are unaffected.
    assert run(db, [write_pool(tmp_path / "p.csv", 6)])["status"] == "succeeded"


def test_stale_running_row_is_recovered_by_the_next_run(db, tmp_path):
    engine = get_engine(db)
    with engine.begin() as conn:
        dead = conn.execute(schema.run.insert().values(
            started_at=sa.func.current_timestamp(), status="running", inputs="[]", host="gone", pid=1,
            exposures_seen=0, exposures_new=0, exposures_changed=0, items_created=0, exposures_unmatched=0,
            rows_rejected=0, items_reissued=0).returning(schema.run.c.id)).scalar_one()
    result = run(db, [write_pool(tmp_path / "p.csv", 6)])
    assert result["status"] == "succeeded"
    old = record(db, dead)
    assert old["status"] == "failed" and "killed or crashed" in old["error"] and old["finished_at"]


def test_items_of_a_run_that_died_after_committing_are_reissued(db, tmp_path):
    first = run(db, [write_pool(tmp_path / "p.csv", 6)])
    # As if its process had died after committing the items, before writing the output.
    with get_engine(db).begin() as conn:
        conn.execute(schema.run.update().where(schema.run.c.id == first["run_id"]).values(status="running"))
    second = run(db, None, output=tmp_path / "out.csv")
    assert second["items_created"] == 0 and second["items_reissued"] == 4
    assert len(pd.read_csv(tmp_path / "out.csv")) == 4
    assert record(db, first["run_id"])["reissued_by"] == second["run_id"]
    third = run(db, None, output=tmp_path / "again.csv")
    assert third["items_reissued"] == 0 and not (tmp_path / "again.csv").exists()


def test_run_in_progress_fails_at_once_or_waits(db, tmp_path):
    pool = write_pool(tmp_path / "p.csv", 6)
    lock = RunLock(get_engine(db))
    lock.acquire()
    try:
        with pytest.raises(RunInProgress) as info:
            run(db, [pool])
        assert info.value.exit_code == 5 and "another run is in progress" in str(info.value)
        assert runs(db).empty  # a refused run leaves no record
        with pytest.raises(RunInProgress, match="waited 0.5 s"):
            run(db, [pool], wait=0.5)
        threading.Timer(0.5, lock.release).start()
        started = time.monotonic()
        assert run(db, [pool], wait=30)["status"] == "succeeded"
        assert time.monotonic() - started >= 0.4
    finally:
        lock.release()


def test_items_lists_the_work_items(db, tmp_path):
    result = run(db, [write_pool(tmp_path / "p.csv", 6)])
    frame = items(db, [result["run_id"]])
    assert len(frame) == 4 and set(frame["catalog_revision"]) == {head_catalog_revision(db)}
    assert frame["level2b_input"].str.endswith("_rate.fits").all()


# --- the command line ------------------------------------------------------------------------------

def test_cli_run_json_record_and_quiet_default(db, tmp_path, capsys):
    pool = str(write_pool(tmp_path / "p.csv", 6))
    assert main(["--db", db, "run", pool, "--print", "json"]) == 0
    out = capsys.readouterr().out
    record_ = json.loads(out)
    assert out.count("\n") == 1  # one JSON object on one line
    assert record_["status"] == "succeeded" and record_["items_created"] == 4 and record_["run_id"] >= 1
    assert main(["--db", db, "run", pool]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # nothing to do, nothing said


def test_cli_runs_listing(db, tmp_path, capsys):
    pool = str(write_pool(tmp_path / "p.csv", 6))
    for _ in range(3):
        assert main(["--db", db, "run", pool]) == 0
    assert main(["--db", db, "runs", "--format", "json", "--last", "2"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in listed] == [2, 3] and listed[0]["items_created"] == 0
    assert main(["--db", db, "runs", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("run_id,status,started_at") and len(lines) == 4
    assert main(["--db", db, "runs"]) == 0
    assert "succeeded" in capsys.readouterr().out


def test_cli_exit_codes(db, tmp_path, capsys):
    pool = str(write_pool(tmp_path / "p.csv", 6))
    # 0: done, and done with nothing to do.
    assert main(["--db", db, "run", pool]) == 0
    assert main(["--db", db, "run", pool]) == 0
    # 2: bad input, before anything is recorded, or while loading (then recorded as failed).
    assert main(["--db", db, "run", str(tmp_path / "missing.csv")]) == 2
    assert main(["--db", db, "run", "--inventory-dir", str(tmp_path / "nodir")]) == 2
    # (a missing --output directory is created; a path under a file cannot be)
    assert main(["--db", db, "run", pool, "--output", str(tmp_path / "p.csv" / "dir" / "x.csv")]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("FILENAME|EXP_TYPE\njw1_a_uncal.fits|\n")
    assert main(["--db", db, "run", str(bad), "--print", "json"]) == 2
    captured = capsys.readouterr()
    assert "EXP_TYPE is empty" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["status"] == "failed"
    with pytest.raises(SystemExit) as usage:
        main(["--db", db, "run", "--wait", "soon"])
    assert usage.value.code == 2
    # 5: another run in progress.
    lock = RunLock(get_engine(db))
    lock.acquire()
    try:
        assert main(["--db", db, "run", pool]) == 5
        assert "another run is in progress" in capsys.readouterr().err
    finally:
        lock.release()
    assert main(["--db", db, "run", pool]) == 0


def test_cli_exit_code_3_not_migrated(empty_db, backend, capsys):
    from l2rules.migrate import upgrade

    if backend == "postgresql":  # a server database is only migrated by `l2rules init` (SQLite: created)
        assert main(["--db", empty_db, "run"]) == 3
        assert "l2rules init" in capsys.readouterr().err
    upgrade(empty_db, "0007")  # a catalog from before the run table: checked before any work
    assert main(["--db", empty_db, "run"]) == 3
    err = capsys.readouterr().err
    assert "is at revision 0007" in err and "run `l2rules init` to upgrade it" in err


def test_cli_exit_code_3_unreachable(capsys):
    assert main(["--db", "postgresql://postgres@127.0.0.1:1/nowhere", "run"]) == 3
    assert "cannot reach database" in capsys.readouterr().err


def test_inventory_dir(db, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    write_pool(folder / "a.csv", 6, prefix="jwa")
    write_pool(folder / "b.csv", 6, prefix="jwb")
    (folder / "notes.txt").write_text("not a pool")
    result = run(db, None, inventory_dir=folder)
    assert [p.rsplit("/", 1)[-1] for p in result["inputs"]] == ["a.csv", "b.csv"]
    assert result["items_created"] == 8


def test_rerun_on_a_large_catalog_stays_fast(db, tmp_path):
    """A rerun with nothing to do is one indexed pass: a bad plan (work list re-evaluated per item) took minutes."""
    pool = write_pool(tmp_path / "big.csv", 30000)
    assert run(db, [pool])["items_created"] == 20000
    started = time.monotonic()
    assert run(db, None)["items_created"] == 0
    assert time.monotonic() - started < 15


def test_cli_inventory_dir_output_format_and_status_filter(db, tmp_path, capsys):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_pool(inbox / "a.csv", 6, prefix="jwa")
    out = tmp_path / "items.out"
    assert main(["--db", db, "run", "--inventory-dir", str(inbox), "--output", str(out),
                 "--format", "json"]) == 0
    assert len(json.loads(out.read_text())) == 4
    assert main(["--db", db, "run", "--format", "parquet"]) == 2  # a format needs --output
    assert "there is no --output" in capsys.readouterr().err
    bad = inbox / "b.csv"
    bad.write_text("FILENAME|PROGRAM\njw1_uncal.fits|1\n")
    assert main(["--db", db, "run", "--inventory-dir", str(inbox)]) == 2
    capsys.readouterr()
    assert main(["--db", db, "runs", "--status", "failed", "--format", "json"]) == 0
    failed = json.loads(capsys.readouterr().out)
    assert len(failed) == 1 and "missing required column EXP_TYPE" in failed[0]["error"]


@pytest.mark.parametrize("name", ["pool_021_tso.csv", "extra_columns.csv"])
def test_reloading_an_unchanged_pool_keeps_every_version(db, tmp_path, name):
    """The loader compares values as stored: a bulk load then a row reload of the same file (flags, NULLs,
    extra columns as JSON) is no new version, and nothing is withdrawn."""
    from l2rules import load

    path = POOLS / name
    if name == "extra_columns.csv":  # columns no pool column is for: kept in exposure.extra (JSON)
        path = tmp_path / name
        path.write_text("FILENAME|EXP_TYPE|IS_PSF|ZETA|ALPHA\n" + "".join(
            f"jw5_{i:03d}_uncal.fits|NRC_IMAGE|{'T' if i % 2 else 'null'}|z{i}|{'null' if i % 3 else i}\n"
            for i in range(9)))
    first = load(db, path, method="bulk")
    assert first.method == "bulk" and first.inserted > 0
    again = load(db, path, method="rows")
    assert again.updated == first.inserted
    with get_engine(db).connect() as conn:
        versions = conn.execute(sa.text("SELECT version, count(*) FROM exposure GROUP BY version")).all()
        withdrawn = conn.execute(sa.text("SELECT count(*) FROM exposure WHERE withdrawn_at IS NOT NULL")).scalar()
        extra = conn.execute(sa.text("SELECT count(*) FROM exposure WHERE CAST(extra AS TEXT) LIKE '%ZETA%' "
                                     "OR CAST(extra AS TEXT) LIKE '%zeta%'")).scalar()
    assert [tuple(v) for v in versions] == [(1, first.inserted)] and withdrawn == 0
    assert extra == (9 if name == "extra_columns.csv" else 0)
    # And a changed extra value is a new version.
    if name == "extra_columns.csv":
        path.write_text(path.read_text().replace("|z4|", "|z4-corrected|"))
        load(db, path, method="rows")
        with get_engine(db).connect() as conn:
            assert conn.execute(sa.text("SELECT stem FROM exposure WHERE version = 2")).scalars().all() == ["jw5_004"]


def test_a_bulk_load_of_a_redelivery_withdraws_what_it_lacks(db, tmp_path):
    """The bulk path takes a redelivery whose exposures are all new; the ones it replaced are withdrawn."""
    pool = write_pool(tmp_path / "p.csv", 6)
    first = run(db, [pool])
    write_pool(pool, 6, start=100)  # the same pool name, other exposures
    from l2rules import load

    assert load(db, pool, method="bulk").method == "bulk"
    second = run(db, None)
    assert (second["items_withdrawn"], second["items_created"]) == (first["items_created"], 4)
    with get_engine(db).connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM exposure WHERE withdrawn_at IS NOT NULL AND version = 2"))
        assert left.scalar_one() == 6
        assert conn.execute(sa.text("SELECT n_exposures FROM pool")).scalar_one() == 6
    assert_exactly_once(db)


def test_answers_stored_while_items_are_made_leave_the_pool_pending(postgres, tmp_path):
    """`evaluate` outside a run may store a pool's answers while a run makes its items (PostgreSQL; on
    SQLite the run's write lock makes it wait): the run marks the items as of the answers it read, so the
    next run makes the items of the newer answers. Marked from the pool row as it was at the end, they
    were never made."""
    import importlib

    from sqlalchemy import event

    from l2rules import load

    db = postgres.migrated()
    runs_module = importlib.import_module("l2rules.runs")
    pool = write_pool(tmp_path / "p.csv", 6)
    assert run(db, [pool])["status"] == "succeeded"
    engine = get_engine(db)
    line = "jw9_000001_nrca1_uncal.fits|MIR_IMAGE|jw9|"

    def redeliver(version: int) -> None:
        pool.write_text(pool.read_text().replace(f"{line}{version - 1:03d}", f"{line}{version:03d}"))
        load(db, pool, progress=False)
        runs_module.evaluate(db)

    redeliver(1)
    run_id = runs_module._start(engine, [])
    with engine.begin() as conn:
        done = []

        def after_the_items(conn, statement, *args):  # another process stores newer answers meanwhile
            if not done and getattr(statement, "table", None) is schema.work_item and statement.is_insert:
                done.append(statement)
                redeliver(2)

        event.listen(conn, "after_execute", after_the_items)
        made = runs_module.make_items(conn, run_id, runs_module.head_catalog_version(conn))
        conn.execute(schema.run.update().where(schema.run.c.id == run_id).values(status="succeeded"))
    assert made.created == 1  # of the second delivery
    with engine.connect() as conn:
        assert list(runs_module.items_pending(conn, runs_module.head_catalog_version(conn))) == [1]
    assert run(db, [])["items_created"] == 1  # of the third
    assert [i.exposure_version for i in _items_of(db, "jw9_000001_nrca1_uncal.fits")] == [1, 2, 3]


def test_the_catalog_takes_writes_while_answers_are_made(tmp_path, sqlite_template):
    """`evaluate` makes a pool's answers before it takes the write lock (SQLite): a load or a run of another
    process is not kept waiting (and failed with "database is locked") while they are made."""
    import importlib
    import shutil
    import sqlite3

    from sqlalchemy import event

    shutil.copy(sqlite_template, tmp_path / "catalog.db")
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    runs_module = importlib.import_module("l2rules.runs")
    load_result = __import__("l2rules").load(db, write_pool(tmp_path / "p.csv", 6), progress=False)
    engine = get_engine(db)
    wrote = []

    def meanwhile(conn, cursor, statement, *args):  # another process writes while the answers are made
        if not wrote and "l2rules_tmp_found_answers" in statement and statement.lstrip().upper().startswith("INSERT"):
            other = sqlite3.connect(tmp_path / "catalog.db", timeout=0.2)
            try:
                other.execute("UPDATE pool SET source = source WHERE id = ?", (load_result.pool_id,))
                other.commit()
                wrote.append(True)
            finally:
                other.close()

    event.listen(engine, "after_cursor_execute", meanwhile)
    try:
        assert runs_module.evaluate(db) == [load_result.pool_id]
    finally:
        event.remove(engine, "after_cursor_execute", meanwhile)
    assert wrote == [True]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM level2b_answer")).scalar() == 6
