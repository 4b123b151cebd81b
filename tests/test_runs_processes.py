"""Runs as real processes (`python -m l2rules run`): racing each other, killed with SIGKILL, stopped by SIGTERM.

Each test runs on SQLite and on PostgreSQL. The stages a run can be held at
(``L2RULES_RUN_HOLD``) let a test kill it at a known point; the random-kill
test kills it wherever it happens to be.
"""

from __future__ import annotations

import json
import random
import signal
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from l2rules import get_engine
from l2rules.runs import record, runs

from .runs_helpers import assert_exactly_once, cli, item_rows, selected, spawn, write_pool

STAGES = ["started", "loaded", "items", "committed", "written"]


def _wait_for(path, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before its hold: {proc.returncode} {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the run never reached its hold")
        time.sleep(0.05)


def _hold(stage, marker, seconds=60):
    return {"L2RULES_RUN_HOLD": stage, "L2RULES_RUN_HOLD_FILE": str(marker), "L2RULES_RUN_HOLD_SECONDS": str(seconds)}


def test_two_runs_started_together_never_make_an_item_twice(db, tmp_path):
    """Two processes at the same moment: one works, the other exits 5 at once; with --wait it waits, then finds
    nothing."""
    pool = str(write_pool(tmp_path / "p.csv", 300))
    # Each run holds the lock for two seconds after loading, so the two surely overlap.
    env = {"L2RULES_RUN_HOLD": "loaded", "L2RULES_RUN_HOLD_SECONDS": "2"}
    procs = [spawn(db, "run", pool, "--print", "json", env=env) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 5], results
    winner = next(json.loads(out) for code, out, _ in results if code == 0)
    loser_err = next(err for code, _, err in results if code == 5)
    assert "another run is in progress" in loser_err
    assert winner["items_created"] == len(selected(db)) == 200
    assert_exactly_once(db)

    # With --wait both succeed, one after the other; the second has nothing left to do.
    pool2 = str(write_pool(tmp_path / "q.csv", 300, prefix="jw8"))
    procs = [spawn(db, "run", pool2, "--wait", "60", "--print", "json", env=env) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], results
    made = sorted(json.loads(out)["items_created"] for _, out, _ in results)
    assert made == [0, 200]
    assert_exactly_once(db)


def test_many_runs_racing_without_holds(db, tmp_path):
    """Six processes on the same inputs, no artificial delay: whatever the interleaving, no duplicate and no
    deadlock."""
    pools = [str(write_pool(tmp_path / f"p{i}.csv", 200, prefix=f"jw{i}")) for i in range(3)]
    procs = [spawn(db, "run", *pools, "--wait", "60") for _ in range(6)]
    codes = [p.wait(timeout=180) for p in procs]
    assert codes == [0] * 6, [p.stderr.read() for p in procs]
    assert_exactly_once(db)
    assert sum(runs(db)["items_created"]) == len(selected(db)) == 3 * 134


@pytest.mark.parametrize("stage", STAGES)
def test_killed_run_then_a_clean_one(db, tmp_path, stage):
    """kill -9 at each stage: no half-made items, the dead run is marked failed, the next run finishes the work."""
    pool = str(write_pool(tmp_path / "p.csv", 60))
    marker = tmp_path / "held"
    out = str(tmp_path / "items-{run_id}.csv")
    proc = spawn(db, "run", pool, "--output", out, env=_hold(stage, marker))
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    with get_engine(db).connect() as conn:  # the stored status (runs() shows it as dead)
        dead = conn.execute(sa.text("SELECT id AS run_id, status FROM run ORDER BY id DESC")).mappings().first()
    assert dead["status"] == "running"  # as the killed process left it
    committed = stage in ("committed", "written")
    assert len(item_rows(db)) == (40 if committed else 0)  # all or nothing

    clean = cli(db, "run", pool, "--output", out, "--print", "json")
    assert clean.returncode == 0, clean.stderr
    result = json.loads(clean.stdout)
    assert result["status"] == "succeeded"
    assert_exactly_once(db)
    assert len(item_rows(db)) == 40
    after = record(db, int(dead["run_id"]))
    assert after["status"] == "failed" and "killed or crashed" in after["error"]
    assert f"marked failed by run {result['run_id']}" in after["error"]
    if stage != "started":  # what its loads did is on record
        assert after["exposures_new"] == 60 and result["exposures_new"] == 0
    assert "died while running" in clean.stderr  # the operator hears about it once
    if committed:
        # The items were made by the dead run; its output may be lost, so the clean run writes them again.
        assert result["items_created"] == 0 and result["items_reissued"] == 40
        assert after["reissued_by"] == result["run_id"]
    else:
        assert result["items_created"] == 40 and result["items_reissued"] == 0
    assert len(pd.read_csv(tmp_path / f"items-{result['run_id']}.csv")) == 40


def test_listing_the_runs_shows_a_dead_run_without_writing_and_recover_marks_it(db, tmp_path):
    pool = str(write_pool(tmp_path / "p.csv", 60))
    marker = tmp_path / "held"
    proc = spawn(db, "run", pool, env=_hold("committed", marker))
    _wait_for(marker, proc)
    alive = json.loads(cli(db, "runs", "--format", "json").stdout)
    assert [r["status"] for r in alive] == ["running"]  # it holds the lock: alive
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    listed = json.loads(cli(db, "runs", "--format", "json").stdout)
    assert listed[0]["status"] == "dead" and "the next run, or `l2rules runs --recover`" in listed[0]["error"]
    assert [r["run_id"] for r in json.loads(cli(db, "runs", "--status", "dead", "--format", "json").stdout)] == \
        [listed[0]["run_id"]]
    with get_engine(db).connect() as conn:  # listing wrote nothing
        assert conn.execute(sa.text("SELECT status FROM run")).scalar_one() == "running"
    recovered = cli(db, "runs", "--recover", "--format", "json")
    assert recovered.returncode == 0 and "marked failed" in recovered.stderr
    after = json.loads(recovered.stdout)[0]
    assert after["status"] == "failed" and "marked failed by `l2rules runs --recover`" in after["error"]
    clean = cli(db, "run", pool, "--output", str(tmp_path / "out.csv"), "--print", "json")
    assert json.loads(clean.stdout)["items_reissued"] == 40  # its items still reach an output
    assert_exactly_once(db)


def test_runs_killed_at_random_moments(db, tmp_path):
    """Kill -9 runs at random moments, five times over growing inputs; a last clean run leaves the catalog whole."""
    rng = random.Random(20261126)
    pools = []
    killed = 0
    for i in range(5):
        pools.append(str(write_pool(tmp_path / f"p{i}.csv", 1500, prefix=f"jw{i}")))
        proc = spawn(db, "run", *pools, "--wait", "30")
        time.sleep(rng.uniform(0.4, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
    print(f"killed {killed} of 5 runs")
    assert killed >= 1
    clean = cli(db, "run", *pools)
    assert clean.returncode == 0, clean.stderr
    assert_exactly_once(db)
    assert len(selected(db)) == 5 * 1000
    statuses = runs(db, last=0)["status"]
    assert (statuses == "running").sum() == 0
    assert (statuses == "failed").sum() <= killed


def test_sigterm_marks_the_run_failed(db, tmp_path):
    pool = str(write_pool(tmp_path / "p.csv", 30))
    marker = tmp_path / "held"
    proc = spawn(db, "run", pool, "--print", "json", env=_hold("loaded", marker))
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    stopped = json.loads(proc.stdout.read())
    assert stopped["status"] == "failed" and "SIGTERM" in stopped["error"]
    assert item_rows(db) == []
    assert cli(db, "run", pool).returncode == 0
    assert_exactly_once(db)


def test_cron_run_is_quiet_without_a_terminal(db, tmp_path):
    """No progress bar, no chatter: a cron job's mail stays empty when all is well."""
    pool = str(write_pool(tmp_path / "p.csv", 30))
    first = cli(db, "run", pool)
    assert (first.returncode, first.stdout, first.stderr) == (0, "", "")
    again = cli(db, "run", pool)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    verbose = cli(db, "-v", "run", pool)
    assert "INFO l2rules.runs" in verbose.stderr and "skipped" in verbose.stderr


def test_exit_code_5_from_a_second_process(db, tmp_path):
    pool = str(write_pool(tmp_path / "p.csv", 30))
    marker = tmp_path / "held"
    holder = spawn(db, "run", pool, env=_hold("loaded", marker, seconds=30))
    try:
        _wait_for(marker, holder)
        second = cli(db, "run", pool)
        assert second.returncode == 5 and "another run is in progress" in second.stderr
        assert f"pid {holder.pid}" in second.stderr
    finally:
        holder.kill()
        holder.wait()
    assert cli(db, "run", pool).returncode == 0
    assert_exactly_once(db)
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM run WHERE status = 'failed'")).scalar_one() == 1


def test_exit_code_3_unreachable_from_a_process(tmp_path):
    proc = cli("postgresql://postgres@127.0.0.1:1/nowhere", "run")
    assert proc.returncode == 3 and "cannot reach database" in proc.stderr and proc.stdout == ""


def test_exit_code_2_bad_input_from_a_process(db, tmp_path):
    proc = cli(db, "run", str(tmp_path / "nothing.csv"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    assert runs(db).empty  # refused before it started: nothing recorded
