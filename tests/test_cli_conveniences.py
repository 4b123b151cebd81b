"""What a person sees (issue 31): ``-`` as standard input wherever a pool is taken, -q/--quiet, ``l2rules db``
(Alembic's commands on the packaged migrations)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from l2rules import inventory, migrate
from l2rules.cli import main
from l2rules.runs import record

from .conftest import POOLS, REPO

POOL = POOLS / "pool_002_image_miri.csv"


def l2rules(*args: str, input: bytes | None = None, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "l2rules", *args], input=input, capture_output=True, cwd=cwd,
                          env=env, timeout=300)


def piped(monkeypatch, data: bytes | Path) -> None:
    """``data`` (or a file's bytes) as this process's standard input, for ``main()``."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))


# --- `-`: standard input -----------------------------------------------------------------------------

def test_worklist_of_standard_input_is_the_pools(tmp_path):
    """Piped (a subprocess's input, not a file): the same work list as the path's, of the pool named stdin."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    by_path = l2rules("--db", db, "worklist", str(POOL), "--all", "--format", "csv")
    piped_in = l2rules("--db", db, "worklist", "-", "--all", "--format", "csv", input=POOL.read_bytes())
    assert by_path.returncode == piped_in.returncode == 0, piped_in.stderr
    assert piped_in.stderr == b""
    expected = by_path.stdout.decode().replace(f"{POOL.name},", "stdin,")
    assert piped_in.stdout.decode() == expected and expected.count("\nstdin,") == 8
    assert not (tmp_path / "c.db").exists()  # a preview, as of a path


def test_load_of_standard_input_is_the_files_load(db, twin_db, monkeypatch, capsys):
    assert main(["--db", db, "load", str(POOL)]) == 0
    by_path = capsys.readouterr().out
    piped(monkeypatch, POOL)
    assert main(["--db", twin_db, "load", "-"]) == 0
    assert capsys.readouterr().out == by_path.replace(str(POOL), "<stdin>") == \
        "<stdin>: 8 exposures (8 new, 0 updated)\n"
    ours, theirs = (inventory.exposures(url).drop(columns=["id", "pool_id"]) for url in (db, twin_db))
    assert set(theirs["pool"]) == {"stdin"}
    assert ours.drop(columns="pool").equals(theirs.drop(columns="pool"))
    # and the work lists the two catalogs answer
    for url in (db, twin_db):
        assert main(["--db", url, "worklist", "--all", "--format", "csv"]) == 0
    first, second = capsys.readouterr().out.split("pool,", 2)[1:]
    assert second == first.replace(f"{POOL.name},", "stdin,")


def test_a_bad_row_on_standard_input_names_stdin_its_line_and_column(db, monkeypatch, capsys):
    piped(monkeypatch, b"# a pool\nFILENAME|EXP_TYPE\njw_1_uncal.fits|MIR_IMAGE\n|MIR_IMAGE\n")
    assert main(["--db", db, "load", "-"]) == 2
    assert capsys.readouterr().err == "l2rules: error: <stdin>:4: column FILENAME: FILENAME is empty\n"
    piped(monkeypatch, b"FILENAME|EXP_TYPE\njw_1_uncal.fits|MIR\xff\n")
    assert main(["--db", db, "worklist", "-"]) == 2
    assert capsys.readouterr().err.startswith("l2rules: error: <stdin>:2: column EXP_TYPE (character 20): bytes "
                                              "that are not UTF-8")


def test_bulk_declines_standard_input(db, monkeypatch, capsys):
    piped(monkeypatch, POOL)
    assert main(["--db", db, "load", "--method", "bulk", "-"]) == 2
    assert "<stdin>: the bulk path declines standard input" in capsys.readouterr().err


def test_asn_explain_impact_and_run_read_standard_input(db, tmp_path, monkeypatch, capsys):
    assert main(["--db", db, "asn", str(POOL), "-p", str(tmp_path / "by-path"), "--save-orphans"]) == 0
    piped(monkeypatch, POOL)
    assert main(["--db", db, "asn", "-", "-p", str(tmp_path / "piped"), "--save-orphans"]) == 0
    capsys.readouterr()
    by_path = sorted(p.name for p in (tmp_path / "by-path").iterdir())
    assert by_path == sorted(p.name for p in (tmp_path / "piped").iterdir()) and len(by_path) == 9
    for name in by_path:
        ours, theirs = ((tmp_path / d / name).read_text() for d in ("by-path", "piped"))
        assert theirs == ours.replace(f'"asn_pool": "{POOL.name}"', '"asn_pool": "stdin"'), name

    assert main(["--db", db, "explain", "jw_00001_uncal.fits", "--pool", "-", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["pool"] for row in rows} == {"stdin"} and any(row["selected"] for row in rows)

    impact = ["--db", db, "impact", "--from", "1.16.1", "--to", "3.0.0", "--format", "csv"]
    assert main([*impact, str(POOL)]) == 0 and main([*impact, "-"]) == 0
    by_path, from_stdin = capsys.readouterr().out.split("change,")[1:]
    assert from_stdin == by_path.replace(f",{POOL.name},", ",stdin,")

    assert main(["--db", db, "run", "-", "--print", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["inputs"] == ["-"] and printed["exposures_new"] == 8
    assert record(db, printed["run_id"])["inputs"] == ["-"]


# --- -q/--quiet ------------------------------------------------------------------------------------------

def test_quiet_writes_nothing_on_standard_error_and_the_same_standard_output(db, twin_db, tmp_path, monkeypatch,
                                                                              capsys):
    """With standard error a terminal, load and asn show progress bars and worklist --output says what it
    wrote; with -q (before or after the command) none of it, the same standard output and files."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    said = {}
    for quiet, url in ((False, db), (True, twin_db)):
        q = ["-q"] if quiet else []
        commands = [[*q, "--db", url, "load", str(POOL)],
                    ["--db", url, "worklist", str(POOL), "--all", "--output", str(tmp_path / f"w{quiet}.csv"), *q],
                    [*q, "--db", url, "asn", str(POOL), "-p", str(tmp_path / f"asn{quiet}")]]
        for argv in commands:
            assert main(argv) == 0, argv
        said[quiet] = capsys.readouterr()
    assert said[True].err == ""
    assert "100%" in said[False].err and "8 work items written to" in said[False].err
    assert "associations" in said[False].err  # asn's bar
    assert said[True].out == said[False].out.replace(f"asn{False}", f"asn{True}")
    assert (tmp_path / "wTrue.csv").read_text() == (tmp_path / "wFalse.csv").read_text()


def test_quiet_still_prints_errors_with_the_same_exit_codes(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    for argv, code, error in ((["load", str(tmp_path / "missing.csv")], 2, "missing.csv: no such file"),
                              (["--db", f"sqlite:///{tmp_path / 'none.db'}", "runs"], 3, "no l2rules catalog at")):
        assert main(["--db", db, *argv]) == code
        assert error in capsys.readouterr().err
        assert main(["-q", "--db", db, *argv]) == code
        assert error in capsys.readouterr().err, argv
    with pytest.raises(SystemExit) as exited:  # one or the other
        main(["-q", "--db", db, "runs", "-v"])
    assert exited.value.code == 2 and "--quiet and --verbose" in capsys.readouterr().err


def test_quiet_in_a_subprocess(tmp_path):
    out = tmp_path / "w.csv"
    loud = l2rules("--db", f"sqlite:///{tmp_path / 'c.db'}", "worklist", str(POOL), "--output", str(out))
    quiet = l2rules("--db", f"sqlite:///{tmp_path / 'c.db'}", "worklist", str(POOL), "--output", str(out), "-q")
    assert loud.returncode == quiet.returncode == 0
    assert loud.stderr.decode() == f"8 work items written to {out}\n" and quiet.stderr == b""
    assert loud.stdout == quiet.stdout == b""


# --- l2rules db upgrade / downgrade / current / history ----------------------------------------------

def _revisions() -> list[str]:
    """The revision ids, newest first."""
    return sorted((p.name[:4] for p in (REPO / "migrations" / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")),
                  reverse=True)


def test_db_upgrade_current_downgrade_history(empty_db, capsys):
    head, previous = _revisions()[:2]
    assert main(["--db", empty_db, "db", "upgrade"]) == 0
    assert capsys.readouterr().out.endswith(f": revision {head} (was empty)\n")
    assert migrate.current_revision(empty_db) == head
    assert main(["--db", empty_db, "db", "current"]) == 0
    assert capsys.readouterr().out == f"{head} (head)\n"
    assert main(["--db", empty_db, "db", "downgrade", "-1"]) == 0
    assert capsys.readouterr().out.endswith(f": revision {previous}\n")
    assert main(["db", "current", "--db", empty_db]) == 0
    assert capsys.readouterr().out == f"{previous}\n"
    assert main(["--db", empty_db, "db", "upgrade", "head"]) == 0
    assert capsys.readouterr().out.endswith(f": revision {head} (was {previous})\n")
    assert main(["--db", empty_db, "db", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines[:2]] == [f"{previous} -> {head} (head)", f"{_revisions()[2]} -> "
                                                                                          f"{previous}"]
    assert len(lines) == len(_revisions()) and lines[-1].startswith("<base> -> 0001, ")
    assert migrate.revisions(stream=io.StringIO()) == _revisions()


def test_db_downgrade_refuses_to_drop_data_unless_asked(db, capsys):
    assert main(["--db", db, "run", str(POOLS / "pool_021_tso.csv")]) == 0
    assert main(["--db", db, "db", "downgrade", "0007"]) == 2
    err = capsys.readouterr().err
    assert "would drop run (1 rows), work_item (5 rows)" in err and "nothing was changed" in err
    assert err.rstrip().endswith("here: l2rules db downgrade 0007 --drop-data") and len(err.splitlines()) == 1
    assert migrate.current_revision(db) == _revisions()[0]
    assert main(["--db", db, "db", "downgrade", "0007", "--drop-data"]) == 0
    assert migrate.current_revision(db) == "0007"


def test_db_errors_are_one_line_and_create_no_file(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    for argv in (["db", "current"], ["db", "downgrade", "-1"]):
        assert main(["--db", url, *argv]) == 3, argv
        assert "none.db does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main(["--db", url, "db", "upgrade", "nope"]) == 2
    assert "Can't locate revision identified by 'nope'" in capsys.readouterr().err


def test_db_upgrade_from_the_wheels_layout_outside_a_checkout(tmp_path):
    """The package as the wheel lays it out (pyproject.toml's force-include: the migrations as
    l2rules/_migrations), run from another directory: `db upgrade` needs no checkout and no alembic.ini."""
    tomllib = pytest.importorskip("tomllib")  # (Python 3.11 and later)
    site = tmp_path / "site"
    shutil.copytree(REPO / "src" / "l2rules", site / "l2rules", ignore=shutil.ignore_patterns("__pycache__"))
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    for source, target in wheel["force-include"].items():
        shutil.copytree(REPO / source, site / target, ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("L2RULES_DATABASE_URL", None)
    where = subprocess.run([sys.executable, "-c", "import l2rules.migrate as m; print(m.__file__); "
                            "print(m.alembic_config().get_main_option('script_location'))"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, check=True).stdout.split()
    assert where == [str(site / "l2rules" / "migrate.py"), str(site / "l2rules" / "_migrations")]
    head = _revisions()[0]
    upgraded = l2rules("--db", "sqlite:///catalog.db", "db", "upgrade", cwd=elsewhere, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.decode() == f"catalog at sqlite:///catalog.db: revision {head} (was empty)\n"
    assert l2rules("--db", "sqlite:///catalog.db", "db", "current", cwd=elsewhere, env=env).stdout.decode() \
        == f"{head} (head)\n"
    assert not (elsewhere / "alembic.ini").exists()


# --- nothing left behind by a failed first command ---------------------------------------------------

BAD_POOL = REPO / "tests" / "data" / "corpus" / "csv_unclosed_quote.csv"


def _catalog_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("l2rules.db"))


def test_a_failed_first_load_leaves_no_catalog_file(tmp_path):
    """The default catalog (./l2rules.db), first use, a pool the load refuses: exit 2 and no file, -wal or
    -shm left (the user's next try starts from nothing, as this one did)."""
    env = {**os.environ, "L2RULES_DATABASE_URL": ""}
    failed = l2rules("load", str(BAD_POOL), cwd=tmp_path, env=env)
    assert failed.returncode == 2 and b"Traceback" not in failed.stderr, failed.stderr
    assert _catalog_files(tmp_path) == []
    loaded = l2rules("load", str(POOL), cwd=tmp_path, env=env)  # and the next, good, command creates it
    assert loaded.returncode == 0, loaded.stderr
    assert "l2rules.db" in _catalog_files(tmp_path)


def test_a_failed_command_keeps_a_catalog_it_did_not_create(tmp_path):
    url = f"sqlite:///{tmp_path / 'l2rules.db'}"
    assert l2rules("--db", url, "init").returncode == 0
    failed = l2rules("--db", url, "load", str(BAD_POOL))
    assert failed.returncode == 2
    assert (tmp_path / "l2rules.db").is_file()
    assert migrate.current_revision(url) is not None


def test_a_failed_run_create_keeps_its_run(tmp_path):
    """`run --create` that fails has recorded its run (failed): that file is the user's record, kept."""
    url = f"sqlite:///{tmp_path / 'l2rules.db'}"
    failed = l2rules("--db", url, "run", "--create", str(BAD_POOL))
    assert failed.returncode == 2, failed.stderr
    assert (tmp_path / "l2rules.db").is_file()
    listed = l2rules("--db", url, "runs", "--format", "csv", "--columns", "status")
    assert listed.stdout.decode().split() == ["status", "failed"]


def test_a_file_another_connection_holds_is_not_removed(tmp_path):
    """A concurrent first use: the file is removed only when no other connection has it open."""
    import sqlite3

    path = tmp_path / "l2rules.db"
    other = sqlite3.connect(path)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    assert migrate.remove_if_unused(path) is False and path.is_file()
    other.close()
    assert migrate.remove_if_unused(path) is True
    assert _catalog_files(tmp_path) == []


def test_a_file_holding_a_pool_is_not_removed(db):
    assert main(["--db", db, "load", str(POOL)]) == 0
    path = Path(db.removeprefix("sqlite:///"))
    assert migrate.remove_if_unused(path) is False
    assert len(inventory.exposures(db)) == 8


def test_a_command_that_fails_with_a_bug_leaves_no_catalog_file(tmp_path, monkeypatch):
    """An exception no handler expects (exit 1, its traceback) fails the command too: the file it created goes."""
    import l2rules.cli as cli

    url = f"sqlite:///{tmp_path / 'l2rules.db'}"

    def created_then_broken(db, *_args, **_kwargs):
        migrate.require_migrated(db, create=True)  # the catalog made, as a load makes it
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli.inventory, "load", created_then_broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["--db", url, "load", str(POOL)])
    assert _catalog_files(tmp_path) == []


def test_a_file_another_process_made_in_the_meantime_is_kept(tmp_path, monkeypatch):
    """Absent when the command started, but made by another process before this one connected: not this
    command's file, so a failure here keeps it (another `init` said it succeeded)."""
    url = f"sqlite:///{tmp_path / 'l2rules.db'}"
    import l2rules.cli as cli

    def others_init_then_fail(args):
        assert l2rules("--db", url, "init").returncode == 0  # another process creates and migrates it
        migrate.current_revision(url)  # then this one connects
        return 2

    monkeypatch.setattr(cli, "_handle", others_init_then_fail)
    assert main(["--db", url, "runs"]) == 2
    assert (tmp_path / "l2rules.db").is_file()
    assert migrate.current_revision(url) is not None


def test_a_relative_catalog_url_names_the_file_of_the_current_directory(tmp_path, monkeypatch):
    """Engines are cached per file, not per URL text: ``sqlite:///l2rules.db`` in another directory (or a file
    read-only in one place) is another engine, so a command never reads or writes the first directory's file."""
    from l2rules.config import get_engine

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    assert main(["--db", "sqlite:///l2rules.db", "load", str(POOL)]) == 0
    engine = get_engine("sqlite:///l2rules.db")
    monkeypatch.chdir(second)
    assert get_engine("sqlite:///l2rules.db") is not engine
    assert main(["--db", "sqlite:///l2rules.db", "load", str(BAD_POOL)]) == 2
    assert _catalog_files(second) == [] and "l2rules.db" in _catalog_files(first)
    assert len(inventory.exposures(f"sqlite:///{first / 'l2rules.db'}")) == 8
