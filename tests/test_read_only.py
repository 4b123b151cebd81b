"""Read commands never write, and nothing but a load (or `init`, `run --create`) creates a catalog.

On SQLite and PostgreSQL: every read command runs against an existing catalog and
leaves every table's rows as they were (on SQLite, the file's bytes and time as
well, and no new file); against a database with no catalog it fails with one
line naming the URL (exit code 3) and creates nothing.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import sqlalchemy as sa

from l2rules import get_engine, schema
from l2rules.cli import main

from .conftest import POOLS, _dispose
from .runs_helpers import write_pool

#: Every command that only reads, with its arguments (pools named as loaded, never as files to load).
READ_COMMANDS = [
    ["worklist"], ["worklist", "--all", "--format", "csv"], ["report"], ["unmatched"], ["rejections"],
    ["rules", "list"], ["rules", "show", "NRS_LAMP"], ["rules", "history", "NRS_MIMF"], ["rules", "versions"],
    ["rules", "diff", "2021-01-01", "today"], ["rules", "check"],
    ["explain", "jw_00002_uncal.fits", "--pool", "pool_018_all_exptypes.csv"],
    ["impact", "--published", "--from", "2021-01-01", "--to", "today"], ["impact", "--from", "1.16.1", "--to", "3.0.0"],
    ["runs"], ["runs", "--status", "dead"],
]


def _contents(url: str) -> dict[str, list]:
    """Every table's rows, in a stable order."""
    with get_engine(url).connect() as conn:
        out = {}
        for table in schema.metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            out[table.name] = sorted(repr(tuple(r)) for r in rows)
        out["alembic_version"] = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return out


def _files(url: str) -> dict[str, tuple]:
    """On SQLite, each file beside the catalog: its digest and modification time."""
    engine = get_engine(url)
    if engine.dialect.name != "sqlite":
        return {}
    folder = os.path.dirname(engine.url.database)
    out = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                out[name] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return out


def test_read_commands_write_nothing(db, tmp_path, capsys):
    pool = write_pool(tmp_path / "p.csv", 12)
    assert main(["--db", db, "run", str(pool), str(POOLS / "pool_018_all_exptypes.csv"), "--skip-bad"]) == 0
    with get_engine(db).begin() as conn:  # a run whose process is gone, still recorded running
        conn.execute(schema.run.insert().values(
            started_at=sa.func.current_timestamp(), status="running", inputs="[]", host="gone", pid=1,
            exposures_seen=0, exposures_new=0, exposures_changed=0, items_created=0, exposures_unmatched=0,
            rows_rejected=0, items_reissued=0))
    _dispose(db)  # SQLite: the log is folded into the file and removed by the last connection
    pool.unlink()  # only the catalog is left in its directory
    files = _files(db)
    before = _contents(db)
    _dispose(db)
    assert _files(db) == files  # reading the contents wrote nothing either
    assert not any(name.endswith(("-wal", "-shm")) for name in files)
    for command in READ_COMMANDS:
        assert main(["--db", db, *command]) == 0, command
        printed = capsys.readouterr().out
        assert printed, command
        if command[0] in ("report", "runs") and command[-1] != "dead":  # the dead run, as what it is
            assert " dead " in printed and " running " not in printed, command
        _dispose(db)
        assert _files(db) == files, command
    assert _contents(db) == before
    listed = json.loads((main(["--db", db, "runs", "--format", "json"]), capsys.readouterr().out)[1])
    assert listed[-1]["status"] == "dead"  # shown as what it is, recorded as it was
    assert _contents(db) == before


@pytest.mark.parametrize("command", [["run"], *READ_COMMANDS], ids=lambda c: "-".join(c[:2]))
def test_no_catalog_is_an_error_naming_the_url_and_nothing_is_created(empty_db, backend, command, capsys):
    assert main(["--db", empty_db, *command]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("l2rules: error: ") and "l2rules init" in err
    engine = get_engine(empty_db)
    assert engine.url.render_as_string(hide_password=True).split("://")[1] in err
    if backend == "sqlite":
        assert not os.path.exists(engine.url.database) and "does not exist" in err
    else:
        assert sa.inspect(engine).get_table_names() == []


@pytest.mark.postgres
def test_the_password_is_masked_in_the_message(postgres, capsys):
    """PostgreSQL only: an SQLite URL has no password."""
    url = sa.make_url(postgres.create()).set(password="s3cret-pw").render_as_string(hide_password=False)
    assert main(["--db", url, "run"]) == 3
    err = capsys.readouterr().err
    assert "s3cret-pw" not in err and ":***@" in err and "no l2rules catalog" in err


def test_run_in_another_directory_refuses_unless_told_to_create(tmp_path, monkeypatch, capsys):
    """A cron job started elsewhere must not make a new catalog (and issue everything again)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("L2RULES_DATABASE_URL", raising=False)
    pool = write_pool(tmp_path / "p.csv", 6)
    assert main(["run", str(pool)]) == 3
    err = capsys.readouterr().err
    assert f"sqlite:///l2rules.db: {tmp_path / 'l2rules.db'} does not exist" in err
    assert "l2rules run --create" in err and "current directory" in err
    assert not (tmp_path / "l2rules.db").exists()
    assert main(["run", "--create", str(pool), "--print", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["items_created"] == 4
    assert main(["run", str(pool)]) == 0  # created once: later runs need no flag
    _dispose("sqlite:///l2rules.db")


def test_an_empty_sqlite_file_is_not_migrated_by_a_run(tmp_path, capsys):
    path = tmp_path / "empty.db"
    path.touch()
    assert main(["--db", f"sqlite:///{path}", "run"]) == 3
    assert "is an empty file" in capsys.readouterr().err
    assert path.stat().st_size == 0
    _dispose(f"sqlite:///{path}")


@pytest.mark.parametrize("command", [["load"], ["worklist", "--store"], ["asn", "--output", "out", "--store"]])
def test_commands_that_load_pools_create_a_new_catalog(tmp_path, monkeypatch, command, capsys):
    """The README's first command works in a fresh clone: the file is created on first use."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("L2RULES_DATABASE_URL", raising=False)
    assert main([*command, str(POOLS / "pool_010_spec_nirspec_lv2bkg.csv")]) == 0
    assert "pool_010_spec_nirspec_lv2bkg.csv" in capsys.readouterr().out or command[0] == "asn"
    assert (tmp_path / "l2rules.db").stat().st_size > 0
    _dispose("sqlite:///l2rules.db")


#: The commands that answer about pool files (POOL is replaced by the file), as asn_generate does: writing
#: nothing but their output.
PREVIEWS = [["worklist", "POOL"], ["worklist", "POOL", "--published", "--format", "csv"],
            ["worklist", "POOL", "--format", "parquet", "--output", "OUT/w.parquet"],
            ["asn", "POOL", "--output", "OUT/asn"], ["explain", "jw_00002_uncal.fits", "--pool", "POOL"],
            ["impact", "--from", "1.16.1", "--to", "3.0.0", "POOL"],
            ["impact", "--published", "--from", "2021-01-01", "--to", "today", "POOL"]]


@pytest.mark.parametrize("command", PREVIEWS, ids=lambda c: "-".join(c[:3]))
def test_previews_in_a_fresh_directory_create_nothing(tmp_path, monkeypatch, command, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("L2RULES_DATABASE_URL", raising=False)
    (tmp_path / "OUT").mkdir()
    pool = str(POOLS / "pool_018_all_exptypes.csv")
    assert main([pool if arg == "POOL" else arg for arg in command]) == 0, command
    assert capsys.readouterr().out or "OUT/" in " ".join(command)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]  # no l2rules.db, no -wal, no -shm


def test_previews_leave_the_catalog_as_it_was(db, tmp_path, capsys):
    """Against a catalog: a pool loaded unchanged is read there; a new pool, and a loaded pool whose file
    changed since, are evaluated elsewhere. Every table's rows (and, on SQLite, the files) stay as they were,
    and the answers equal those of the pools loaded (``--store``) in a twin catalog."""
    loaded = tmp_path / "pool_018_all_exptypes.csv"
    loaded.write_bytes((POOLS / "pool_018_all_exptypes.csv").read_bytes())
    assert main(["--db", db, "load", str(loaded)]) == 0
    changed = write_pool(tmp_path / "changed.csv", 8)
    assert main(["--db", db, "load", str(changed)]) == 0
    write_pool(changed, 10)  # the file changed since its load
    new = POOLS / "pool_007_spec_miri.csv"
    capsys.readouterr()
    _dispose(db)
    files, before = _files(db), _contents(db)
    (tmp_path / "OUT").mkdir()
    for pool in (loaded, changed, new):
        for command in PREVIEWS:
            args = [str(pool) if arg == "POOL" else str(tmp_path / arg) if arg.startswith("OUT/") else arg
                    for arg in command]
            if command[0] == "explain":
                args[1] = "jw_00002_uncal.fits" if pool == loaded else _first_filename(pool)
            assert main(["--db", db, *args]) == 0, (pool.name, command)
            _dispose(db)
            assert _files(db) == files, (pool.name, command)
    assert _contents(db) == before
    capsys.readouterr()
    assert main(["--db", db, "worklist", str(new), "--format", "csv"]) == 0
    previewed = capsys.readouterr().out
    assert main(["--db", db, "worklist", str(new), "--format", "csv", "--store"]) == 0
    stored = capsys.readouterr().out
    # the same work list; the stored one has the exposures' catalog ids (a preview's are empty)
    assert previewed.count("\n") > 2 and previewed.splitlines()[0].endswith(",exposure_id")
    assert [line.rsplit(",", 1)[0] for line in stored.splitlines()] == [
        line.rsplit(",", 1)[0] for line in previewed.splitlines()]
    assert all(line.endswith(",") for line in previewed.splitlines()[1:])
    assert all(line.rsplit(",", 1)[1].isdigit() for line in stored.splitlines()[1:])
    assert _contents(db)["pool"] != before["pool"]  # --store loads it


def _first_filename(pool) -> str:
    header, first = [line for line in pool.read_text().splitlines() if not line.startswith("#")][:2]
    return first.split("|")[[name.lower() for name in header.split("|")].index("filename")]
