"""The command line: help, rules listings, and one-line errors with exit codes for cron."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from l2rules import catalog
from l2rules.cli import main

from .conftest import REPO


def run(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "l2rules", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_help_lists_commands():
    proc = run("--help")
    assert proc.returncode == 0
    for verb in ("init", "rules", "load", "worklist", "impact", "unmatched"):
        assert verb in proc.stdout


def test_rules_list_csv_and_filters(db, capsys):
    assert main(["--db", db, "rules", "list", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "exp_type,special,instrument,exptype,level2b,asn_type,note"
    assert len(lines) == len(catalog.read_seed()) + 1  # the header and every rule of the seed
    assert main(["--db", db, "rules", "list", "--instrument", "fgs", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 11 and {r["instrument"] for r in rows} == {"FGS"}
    assert main(["--db", db, "rules", "list", "--as-of", "2019-01-01", "--exp-type", "nrc_grism",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["level2b"] is True


def test_rules_show_history_versions(db, capsys):
    assert main(["--db", db, "rules", "show", "NRS_LAMP"]) == 0
    out = capsys.readouterr().out
    assert "nrslamp-spec2" in out and "conditions:" in out and "NOLAMP" in out
    assert main(["--db", db, "rules", "history", "NRC_GRISM", "--format", "json"]) == 0
    states = json.loads(capsys.readouterr().out)
    assert [s["valid_from_date"] for s in states] == ["2017-08-01", "2020-12-07", "2021-06-15"]
    assert main(["--db", db, "rules", "show", "NOPE"]) == 2
    assert "no rule for exp_type 'NOPE'" in capsys.readouterr().err


def test_init_twice(empty_db, capsys):
    from l2rules.migrate import head_revision

    assert main(["--db", empty_db, "init"]) == 0
    assert f"revision {head_revision()} (was empty)" in capsys.readouterr().out
    assert main(["--db", empty_db, "init"]) == 0
    out = capsys.readouterr().out
    assert f"revision {head_revision()}" in out and "(was" not in out


@pytest.mark.parametrize("url, code, text", [
    ("nosuchdialect://x", 3, "bad database URL"),
    ("postgresql://postgres@127.0.0.1:1/none", 3, "cannot reach database"),
])
def test_database_errors_are_one_line(url, code, text):
    proc = run("--db", url, "rules", "list")
    assert proc.returncode == code
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert text in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.postgres
def test_unmigrated_server_database(postgres):
    proc = run("--db", postgres.create(), "worklist")
    assert proc.returncode == 3
    assert "has no l2rules catalog; run `l2rules init` first" in proc.stderr


def test_embedded_database_is_created_on_first_use_by_a_load_not_by_a_read(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    read = run("--db", url, "rules", "list", "--format", "csv")
    assert read.returncode == 3 and "does not exist" in read.stderr and not (tmp_path / "new.db").exists()
    pool = str(REPO / "samples" / "pools" / "pool_010_spec_nirspec_lv2bkg.csv")
    preview = run("--db", url, "worklist", pool, "--format", "csv")
    assert preview.returncode == 0, preview.stderr
    assert not (tmp_path / "new.db").exists()  # a preview creates nothing
    first = run("--db", url, "load", pool)
    assert first.returncode == 0, first.stderr
    proc = run("--db", url, "rules", "list", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == len(catalog.read_seed()) + 1


def test_foreign_sqlite_database_is_not_touched(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("create table mine (x)").connection.commit()
    proc = run("--db", f"sqlite:///{path}", "worklist")
    assert proc.returncode == 3 and "run `l2rules init` first" in proc.stderr


def test_environment_and_default_url(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "L2RULES_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}"}
    assert run("init", env=env, cwd=tmp_path).returncode == 0
    assert (tmp_path / "env.db").exists()
    default = run("init", env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert default.returncode == 0 and (tmp_path / "l2rules.db").exists()
