"""The command line follows the conventions users know (issue 14): --version, global options before or after
the command, --from/--to, output directories created, timestamped log lines."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from l2rules import catalog
from l2rules.cli import build_parser, main

from .conftest import REPO
from .runs_helpers import write_pool

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def l2rules(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "l2rules", *args], capture_output=True, text=True, cwd=cwd,
                          env=os.environ.copy(), timeout=120)


# 1. --version is the program's version; the catalog point is --catalog-version.

def test_version_prints_the_program_version_and_exits_0():
    proc = l2rules("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"l2rules {metadata.version('l2rules')}"
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0


def test_catalog_version_selects_a_revision(db, capsys):
    revisions = list(catalog.versions(db)["revision"])
    oldest = revisions[0]
    assert main(["--db", db, "rules", "list", "--catalog-version", oldest, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(catalog.rules(db, at=oldest)) > 0
    assert main(["--db", db, "rules", "list", "--catalog-version", "9999"]) == 2
    assert "unknown catalog version '9999'" in capsys.readouterr().err
    # --catalog-version is one catalog point among --as-of and --pipeline
    with pytest.raises(SystemExit) as exit_:
        main(["--db", db, "rules", "list", "--catalog-version", oldest, "--as-of", "2020-01-01"])
    assert exit_.value.code == 2
    # the old spelling is no longer a catalog point
    with pytest.raises(SystemExit) as exit_:
        main(["--db", db, "rules", "list", "--version", oldest])
    assert exit_.value.code == 2


def test_help_names_catalog_version_not_version_rev():
    for command in (["worklist"], ["rules", "list"], ["asn"], ["explain"]):
        proc = l2rules(*command, "--help")
        assert proc.returncode == 0
        assert "--catalog-version REV" in proc.stdout, command
        assert not re.search(r"(?<!catalog)-version REV", proc.stdout), command


# 2. --db and -v before or after the command.

@pytest.mark.parametrize("argv", [
    ["--db", "sqlite:///x.db", "-v", "worklist"],
    ["worklist", "--db", "sqlite:///x.db", "-v"],
    ["--db", "sqlite:///x.db", "run", "-v"],
    ["-v", "run", "--db", "sqlite:///x.db"],
    ["--db", "sqlite:///x.db", "-v", "rules", "list"],
    ["rules", "list", "--db", "sqlite:///x.db", "-v"],
    ["rules", "--db", "sqlite:///x.db", "list", "-v"],
])
def test_global_options_before_or_after_the_command(argv):
    args = build_parser().parse_args(argv)
    assert args.db == "sqlite:///x.db"
    assert args.verbose == 1


def test_global_options_default_when_not_given():
    args = build_parser().parse_args(["rules", "list"])
    assert args.db is None and args.verbose == 0
    assert build_parser().parse_args(["-vv", "report"]).verbose == 2
    assert build_parser().parse_args(["report", "-vv"]).verbose == 2


def test_db_after_the_command_is_used(db, capsys):
    assert main(["worklist", "--db", db, "--published", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("pool,")
    assert main(["rules", "list", "--db", db, "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(catalog.read_seed()) + 1
    # A database named before the command is the one used (the command's own option has no default).
    assert main(["--db", "sqlite:///no/such/dir/x.db", "rules", "list"]) == 3
    assert "no/such/dir/x.db" in capsys.readouterr().err


# 3. rules diff takes --from/--to, as impact does; the positional form still works.

def test_rules_diff_from_to_and_positional_agree(db, capsys):
    assert main(["--db", db, "rules", "diff", "--from", "2019-01-01", "--to", "today", "--format", "csv"]) == 0
    with_options = capsys.readouterr().out
    assert main(["--db", db, "rules", "diff", "2019-01-01", "today", "--format", "csv"]) == 0
    positional = capsys.readouterr().out
    assert with_options == positional and len(with_options.splitlines()) > 1


@pytest.mark.parametrize("argv", [
    ["rules", "diff"],
    ["rules", "diff", "--from", "2019-01-01"],
    ["rules", "diff", "2019-01-01"],
    ["rules", "diff", "--from", "2019-01-01", "today"],
])
def test_rules_diff_needs_both_end_points_one_way(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "--from" in capsys.readouterr().err


def test_rules_diff_help_shows_from_to():
    proc = l2rules("rules", "diff", "--help")
    assert proc.returncode == 0
    assert "--from A" in proc.stdout and "--to B" in proc.stdout and "FROM" not in proc.stdout


# 4. One suffix rule for every --output; --output creates its missing directory.

def test_one_suffix_rule_for_every_output(db, tmp_path, capsys):
    """The suffix says the format (.csv .json .parquet .pq .txt); any other needs --format; a suffix and a --format
    that disagree are refused; each refusal exits 2 before anything is written or recorded."""
    pool = str(write_pool(tmp_path / "p.csv", 6))

    def exit_code(*argv: str) -> int:
        try:
            return main(["--db", db, *argv])
        except SystemExit as exc:  # (refused while the command line is read)
            return int(exc.code)

    for command in (["worklist", pool, "--published"], ["rules", "list"], ["run", pool]):
        for output, extra, said in ((tmp_path / "w.xlsx", [], "names no format"),
                                    (tmp_path / "r.dat", [], "names no format"),
                                    (tmp_path / "w.txt", ["--format", "csv"], "by its suffix")):
            assert exit_code(*command, "--output", str(output), *extra) == 2, (command, output)
            assert not output.exists() and said in capsys.readouterr().err, (command, output)
    assert exit_code("runs", "--format", "json") == 0 and json.loads(capsys.readouterr().out) == []
    assert exit_code("worklist", pool, "--published", "--output", str(tmp_path / "w.json")) == 0
    assert json.loads((tmp_path / "w.json").read_text())
    assert exit_code("worklist", pool, "--published", "--output", str(tmp_path / "w.dat"), "--format", "csv") == 0
    assert pd.read_csv(tmp_path / "w.dat").shape[0] > 0
    assert exit_code("run", pool, "--output", str(tmp_path / "items.out"), "--format", "json") == 0
    assert json.loads((tmp_path / "items.out").read_text())


def test_worklist_output_creates_the_directory(db, tmp_path, capsys):
    pool = write_pool(tmp_path / "p.csv", 6)
    out = tmp_path / "out" / "x.json"  # written from a DataFrame
    assert main(["--db", db, "worklist", str(pool), "--published", "--format", "json", "--output", str(out),
                 "--store"]) == 0
    assert len(json.loads(out.read_text())) > 0
    streamed = tmp_path / "streamed" / "deeper" / "x.csv"  # streamed from the query
    assert main(["--db", db, "worklist", "--published", "--format", "csv", "--output", str(streamed)]) == 0
    assert len(pd.read_csv(streamed)) == len(json.loads(out.read_text()))
    capsys.readouterr()


def test_run_output_creates_the_directory(db, tmp_path, capsys):
    pool = write_pool(tmp_path / "p.csv", 6)
    assert main(["run", str(pool), "--db", db, "--output", str(tmp_path / "out" / "worklist-{run_id}.csv"),
                 "--print", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    written = tmp_path / "out" / f"worklist-{record['run_id']}.csv"
    assert record["output"] == str(written)
    assert len(pd.read_csv(written)) == record["items_created"] > 0
    # A path under a file is refused before the run starts.
    (tmp_path / "afile").write_text("")
    assert main(["run", str(pool), "--db", db, "--output", str(tmp_path / "afile" / "sub" / "w.csv")]) == 2
    assert "afile is not a directory" in capsys.readouterr().err


# 5. Log lines carry a timestamp.

@pytest.mark.parametrize("backend", ["sqlite"])
def test_log_lines_are_timestamped(db, tmp_path):
    pool = write_pool(tmp_path / "p.csv", 6)
    proc = l2rules("run", str(pool), "--db", db, "-v")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "l2rules.runs" in line]
    assert lines, proc.stderr
    for line in lines:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) l2rules\.runs: ", line), line


# 6. The code passes its lint, and CI runs it before the tests.

def test_ci_lints_before_the_tests_with_ruff_from_the_dev_extra():
    ci = (REPO / ".ci" / "run").read_text()
    assert "-e '.[dev]'" in ci
    assert 0 < ci.index("ruff check") < ci.index("-m pytest")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert any(dep.startswith("ruff") for dep in pyproject["project"]["optional-dependencies"]["dev"])
    assert pyproject["tool"]["ruff"]["line-length"] == 120


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff not installed (pip install -e '.[dev]')")
def test_ruff_check_passes():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_statement_the_database_cancels_is_exit_6_not_unreachable(postgres, tmp_path):
    """A statement_timeout (or pg_cancel_backend) is the server answering: its own line and exit code (6)."""
    import sqlalchemy as sa

    url = postgres.migrated()
    env = {**os.environ, "PGOPTIONS": "-c statement_timeout=300"}
    engine = sa.create_engine(url)
    try:
        with engine.begin() as holder:  # the catalog's first read waits on this lock until its timeout
            holder.execute(sa.text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
            proc = subprocess.run([sys.executable, "-m", "l2rules", "--db", url, "rules", "list"],
                                  capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    finally:
        engine.dispose()
    assert proc.returncode == 6, proc.stderr
    assert "cancelled by the database" in proc.stderr and "cannot reach" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_ctrl_c_is_exit_130_in_one_line(monkeypatch, capsys):
    import l2rules.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "rules", interrupted)  # the handler of `rules list`
    assert main(["rules", "list"]) == 130
    assert capsys.readouterr().err.strip() == "l2rules: interrupted; what was under way was rolled back"


def test_worklist_table_is_the_old_spelling_of_published(db, capsys):
    """`--table` names a rules table in `rules history`/`rules diff`; in worklist and impact it is `--published`
    now, the old spelling kept with a warning."""
    assert main(["--db", db, "worklist", "--published", "--format", "csv"]) == 0
    published = capsys.readouterr()
    assert "deprecated" not in published.err
    assert main(["--db", db, "worklist", "--table", "--format", "csv"]) == 0
    old = capsys.readouterr()
    assert old.out == published.out
    assert "worklist --table is deprecated" in old.err and "--published" in old.err


# 5. Terminal tables that fit; --columns; JSON Lines; py.typed.

def test_terminal_tables_fit_columns_and_piped_output_is_whole(db, tmp_path, capsys, monkeypatch):
    """On a terminal every line of a table fits its width (COLUMNS, else the terminal's), long cells cut with an
    ellipsis and numbers right-aligned; piped, cells are whole, as before, COLUMNS or not."""
    pool = str(write_pool(tmp_path / "p.csv", 6))
    assert main(["--db", db, "run", pool]) == 0
    commands = (["runs"], ["worklist", "--all"], ["rules", "versions"], ["explain", "jw9_000000_nrca1_uncal.fits"])
    monkeypatch.setenv("COLUMNS", "100")
    capsys.readouterr()
    whole = {}
    for command in commands:
        assert main(["--db", db, *command]) == 0
        whole[command[0]] = capsys.readouterr().out
    assert max(len(line) for text in whole.values() for line in text.splitlines()) > 100
    assert "\u2026" not in "".join(whole.values())
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # (capsys's stream, as a terminal)
    for command in commands:
        assert main(["--db", db, *command]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines and max(map(len, lines)) <= 100, (command, max(map(len, lines)))
    assert main(["--db", db, "rules", "versions", "--columns", "seq,revision"]) == 0
    header, rule, first = capsys.readouterr().out.splitlines()[:3]
    assert header.split() == ["seq", "revision"] and first.startswith("    1")  # (right-aligned under "seq")


def test_columns_and_json_lines(db, tmp_path, capsys):
    pool = str(write_pool(tmp_path / "p.csv", 6))
    assert main(["--db", db, "worklist", pool, "--format", "jsonl", "--columns", "filename,asn_type"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records and all(list(r) == ["filename", "asn_type"] for r in records)
    out = tmp_path / "w.jsonl"  # the suffix says JSON Lines, and --columns goes to a file too
    assert main(["--db", db, "worklist", pool, "--published", "--output", str(out), "--columns", "filename"]) == 0
    assert [list(json.loads(line)) for line in out.read_text().splitlines()] == [["filename"]] * len(records)
    assert main(["--db", db, "worklist", pool, "--columns", "filename,nope"]) == 2
    assert "--columns: no column nope; the columns are" in capsys.readouterr().err


def test_the_package_is_typed():
    assert (Path(importlib.util.find_spec("l2rules").origin).parent / "py.typed").is_file()
