"""Migrations: replay equals the seed, round trips on both backends, models agree, revisions stand alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from l2rules import catalog, migrate
from l2rules.config import L2RulesError, get_engine
from l2rules.runs import run

from .conftest import POOLS, REPO, _dispose

VERSIONS = REPO / "migrations" / "versions"


def _snapshot(url: str) -> dict[str, pd.DataFrame]:
    engine = get_engine(url)
    with engine.connect() as conn:
        return {
            "rule": pd.read_sql("select * from rule order by exp_type, special", conn),
            "rule_history": pd.read_sql(
                "select exp_type, special, level2b, asn_type, note, valid_from, valid_to from rule_history "
                "order by exp_type, special, valid_from", conn),
            "catalog_version": pd.read_sql("select * from catalog_version order by seq", conn),
        }


def test_replay_reproduces_seed(empty_db):
    migrate.upgrade(empty_db)
    replayed = catalog.rules(empty_db)
    seed = catalog.read_seed()
    pd.testing.assert_frame_equal(replayed, seed)
    assert len(seed) >= 74  # at least the 74 published rules (combined row split)


def test_round_trip_upgrade_downgrade_upgrade(empty_db):
    migrate.upgrade(empty_db)
    first = _snapshot(empty_db)
    run([POOLS / "pool_021_tso.csv"], empty_db)  # a pool, exposures, a run and its work items: dropped below
    assert migrate.downgrade(empty_db, "base", drop_data=True) is None
    with get_engine(empty_db).connect() as conn:
        tables = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
    assert tables == set()
    assert migrate.upgrade(empty_db) == migrate.head_revision()
    second = _snapshot(empty_db)
    for name in first:
        pd.testing.assert_frame_equal(first[name].drop(columns=["id"], errors="ignore"),
                                      second[name].drop(columns=["id"], errors="ignore"), check_dtype=False)


def test_each_revision_steps_down_and_up(empty_db):
    script = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    migrate.upgrade(empty_db)
    for expected in reversed(revisions[:-1]):
        assert migrate.downgrade(empty_db, "-1") == expected
    assert migrate.downgrade(empty_db, "-1") is None
    for expected in revisions:
        assert migrate.upgrade(empty_db, "+1") == expected


def _rows(url: str) -> dict[str, int]:
    with get_engine(url).connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("pool", "exposure", "exposure_candidate", "run", "work_item", "rule")}


def test_downgrade_refuses_to_drop_runs_and_exposures(db):
    """Past 0008 (runs, work items) and 0003 (pools, exposures) a downgrade drops data: refused unless asked."""
    record = run([POOLS / "pool_021_tso.csv"], db)
    before = _rows(db)
    assert before["run"] == 1 and before["work_item"] == record["items_created"] == 5
    with pytest.raises(L2RulesError) as refused:
        migrate.downgrade(db, "0007")
    message = str(refused.value)
    assert "\n" not in message
    assert "downgrading below 0008 would drop run (1 rows), work_item (5 rows); nothing was changed" in message
    assert "-x drop_data=yes" in message
    assert migrate.current_revision(db) == migrate.head_revision() and _rows(db) == before  # nothing changed

    assert migrate.downgrade(db, "0007", drop_data=True) == "0007"
    with pytest.raises(L2RulesError, match=r"below 0003 would drop pool \(1 rows\), exposure \(5 rows\)"):
        migrate.downgrade(db, "0002")
    # The steps before 0003's (data revisions 0007 to 0004) are undone with it: one transaction.
    assert migrate.current_revision(db) == "0007"
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM exposure")).scalar_one() == 5
        assert conn.execute(sa.text("SELECT count(*) FROM rule")).scalar_one() == 75
    assert migrate.downgrade(db, "0002", drop_data=True) == "0002"


def test_downgrade_of_empty_tables_needs_no_flag(db):
    assert migrate.downgrade(db, "0002") == "0002"


def _alembic(db: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alembic", "-x", f"db={db}", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_alembic_downgrade_refuses_without_drop_data(db):
    run([POOLS / "pool_021_tso.csv"], db)
    _dispose(db)
    refused = _alembic(db, "downgrade", "base")
    assert refused.returncode != 0
    failed = [line for line in (refused.stdout + refused.stderr).splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "would drop run (1 rows), work_item (5 rows)" in failed[0], refused.stderr
    assert migrate.current_revision(db) == migrate.head_revision()
    done = _alembic(db, "-x", "drop_data=yes", "downgrade", "base")
    assert done.returncode == 0, done.stderr
    assert migrate.current_revision(db) is None


def test_downgrade_of_asn_type_restores_yes_no_view(empty_db):
    migrate.upgrade(empty_db, "0004")
    with get_engine(empty_db).connect() as conn:
        assert "asn_type" in {c["name"] for c in sa.inspect(conn).get_columns("rule")}
    migrate.downgrade(empty_db, "0003")
    with get_engine(empty_db).connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("rule")}
        rows = pd.read_sql("select exp_type, special, level2b from rule", conn)
    assert "asn_type" not in columns
    assert len(rows) == 74
    assert rows.loc[rows.exp_type == "NRS_LAMP", "level2b"].astype(bool).item() is True


def test_commands_refuse_a_catalog_not_at_the_head(db, capsys):
    """Checked before any work (as MLflow checks its schema): older -> `l2rules init`; newer -> refused."""
    from l2rules.cli import main

    head = migrate.head_revision()
    assert migrate.downgrade(db, "0010") == "0010"
    assert main(["--db", db, "rules", "list"]) == 3
    assert "is at revision 0010; this l2rules needs " + head + ": run `l2rules init`" in capsys.readouterr().err
    assert migrate.upgrade(db) == head
    with get_engine(db).begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    assert main(["--db", db, "rules", "list"]) == 3
    assert "newer than this l2rules knows" in capsys.readouterr().err
    assert main(["--db", db, "init"]) == 3
    assert "nothing was changed" in capsys.readouterr().err
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "9999"


def test_models_and_migrations_agree(empty_db):
    migrate.upgrade(empty_db)
    engine = get_engine(empty_db)
    with engine.begin() as conn:
        cfg = migrate.alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.check(cfg)  # raises AutogenerateDiffsDetected on any difference


def test_upgrade_is_safe_to_run_twice(empty_db):
    assert migrate.upgrade(empty_db) == migrate.head_revision()
    assert migrate.upgrade(empty_db) == migrate.head_revision()
    assert len(catalog.rules(empty_db)) == 75


@pytest.mark.parametrize("path", sorted(VERSIONS.glob("*.py")), ids=lambda p: p.name)
def test_revisions_are_self_contained(path: Path):
    text = path.read_text()
    assert not re.search(r"^\s*(from|import)\s+l2rules", text, re.M), "a revision must not import the application"
    assert re.search(r"^def downgrade\(\) -> None:\n(?!\s+pass\b)", text, re.M), "a revision must downgrade"


def test_0010_steps_down_and_up_on_a_catalog_with_redeliveries(db, tmp_path):
    """Down to 0009 with two items of one exposure at one revision (the old key allows one: the latest stays)
    and a withdrawn item; up again, and runs go on."""
    from l2rules.runs import run

    from .runs_helpers import assert_exactly_once, write_pool

    pool = write_pool(tmp_path / "p.csv", 6)
    run([pool], db)
    text = pool.read_text().replace("jw9_000000_nrca1_uncal.fits|NRC_IMAGE|jw9|000",
                                    "jw9_000000_nrca1_uncal.fits|NRC_IMAGE|jw9|999")
    pool.write_text("".join(line + "\n" for line in text.splitlines() if not line.startswith("jw9_000001_")))
    changed = run([pool], db)
    assert (changed["items_changed"], changed["items_withdrawn"]) == (1, 1)
    engine = get_engine(db)
    assert migrate.downgrade(db, "0009") == "0009"
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("work_item")}
        items = conn.execute(sa.text("SELECT exposure_id, catalog_revision FROM work_item")).all()
        views = set(sa.inspect(conn).get_view_names())
        worklist_rows = conn.execute(sa.text("SELECT count(*) FROM v_current_worklist")).scalar_one()
    assert not columns & {"exposure_version", "withdrawn_at", "withdrawn_by"}
    assert len(items) == len(set(items)) == 4
    assert {"v_current_worklist", "v_exposure_status", "v_runs"} <= views
    assert worklist_rows == 4  # 0008's view: the withdrawn exposure is back as a row of the pool
    assert migrate.upgrade(db) == migrate.head_revision()
    assert run([pool], db)["status"] == "succeeded"
    assert_exactly_once(db)
