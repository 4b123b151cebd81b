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

from l2rules import catalog, migrate, schema
from l2rules.config import L2RulesError, get_engine
from l2rules.runs import run

from .conftest import POOLS, REPO, _dispose, checkout_up_to, with_todays_run_columns

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
    run(empty_db, [POOLS / "pool_021_tso.csv"])  # a pool, exposures, a run and its work items: dropped below
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
    record = run(db, [POOLS / "pool_021_tso.csv"])
    before = _rows(db)
    assert before["run"] == 1 and before["work_item"] == record["items_created"] == 5
    versions = catalog.versions(db)  # the catalog version the run's items were made at: the last written
    head = versions.loc[versions["seq"].idxmax(), "revision"]
    with pytest.raises(L2RulesError) as refused:
        migrate.downgrade(db, "0007")
    message = str(refused.value)
    assert "\n" not in message
    assert f"downgrading below {head} would drop run (1 rows), work_item (5 rows) made at it; nothing was " \
           "changed" in message
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
    run(db, [POOLS / "pool_021_tso.csv"])
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
    assert schema.REVISION == migrate.head_revision()  # the revision the models say they describe


def test_upgrade_is_safe_to_run_twice(empty_db):
    assert migrate.upgrade(empty_db) == migrate.head_revision()
    assert migrate.upgrade(empty_db) == migrate.head_revision()
    assert len(catalog.rules(empty_db)) == 75


@pytest.mark.parametrize("path", sorted(VERSIONS.glob("*.py")), ids=lambda p: p.name)
def test_revisions_are_self_contained(path: Path):
    text = path.read_text()
    assert not re.search(r"^\s*(from|import)\s+l2rules", text, re.M), "a revision must not import the application"
    assert re.search(r"^def downgrade\(\) -> None:\n(?!\s+pass\b)", text, re.M), "a revision must downgrade"


def test_0010_steps_down_and_up_on_a_catalog_with_redeliveries(empty_db):
    """Down to 0009 with two items of one exposure at one revision (the old key allows one: the latest stays)
    and a withdrawn item; up again to the head."""
    migrate.upgrade(empty_db, "0010")
    engine = get_engine(empty_db)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO pool (id, name, source, sha256, loaded_at, n_exposures, columns) "
                             "VALUES (1, 'p.csv', 'p.csv', 'x', '2026-11-01 00:00:00', 2, 'filename|exp_type')"))
        for i, withdrawn in ((1, None), (2, "2026-11-02 00:00:00")):
            conn.execute(sa.text(
                "INSERT INTO exposure (id, pool_id, source_line, filename, stem, exp_type, version, withdrawn_at) "
                "VALUES (:i, 1, :i, :f, :s, 'NRC_IMAGE', 2, :w)"),
                {"i": i, "f": f"jw9_{i}_uncal.fits", "s": f"jw9_{i}", "w": withdrawn})
        conn.execute(sa.text(
            "INSERT INTO run (id, started_at, status, inputs, catalog_revision, exposures_seen, exposures_new, "
            "exposures_changed, items_created, exposures_unmatched, rows_rejected, items_reissued, host, pid) "
            "VALUES (1, '2026-11-01 00:00:00', 'succeeded', '[]', '0007', 2, 2, 0, 3, 0, 0, 0, 'h', 1)"))
        for item, exposure, version, withdrawn in ((1, 1, 1, None), (2, 1, 2, None), (3, 2, 1, 1)):
            conn.execute(sa.text(
                "INSERT INTO work_item (id, exposure_id, catalog_revision, run_id, created_at, exp_type, exptype, "
                "special, asn_type, level2b_input, rule, exposure_version, withdrawn_by) VALUES (:id, :e, '0007', "
                "1, '2026-11-01 00:00:00', 'NRC_IMAGE', 'science', '', 'image2', 'x_rate.fits', 'NRC_IMAGE', "
                ":v, :w)"), {"id": item, "e": exposure, "v": version, "w": withdrawn})
    assert migrate.downgrade(empty_db, "0009") == "0009"
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("work_item")}
        items = conn.execute(sa.text("SELECT id, exposure_id, catalog_revision FROM work_item ORDER BY id")).all()
        views = set(sa.inspect(conn).get_view_names())
        worklist_rows = conn.execute(sa.text("SELECT count(*) FROM v_current_worklist")).scalar_one()
    assert not columns & {"exposure_version", "withdrawn_at", "withdrawn_by"}
    assert items == [(2, 1, "0007"), (3, 2, "0007")]  # of exposure 1's two items at 0007, the latest
    assert {"v_current_worklist", "v_exposure_status", "v_runs"} <= views
    assert worklist_rows == 2  # 0008's view: the withdrawn exposure is back as a row of the pool
    assert migrate.upgrade(empty_db) == migrate.head_revision()
    with engine.connect() as conn:
        moved = conn.execute(sa.text("SELECT exposure_id, asn_rule, exposure_version FROM work_item ORDER BY id"))
        assert moved.all() == [(1, "NRC_IMAGE", 1), (2, "NRC_IMAGE", 1)]  # 0018: rule became asn_rule


def test_0018_steps_down_and_up_with_items_and_answers(db, tmp_path, monkeypatch):
    """0018 down: the stored answers go, items keep their rule (asn_rule, cut to 0010's width) and get special
    ''; up again, and runs go on."""
    from .runs_helpers import assert_exactly_once, write_pool

    # a catalog whose latest rules revision is 0017 (items made at a later one go with it, below it)
    assert migrate.downgrade(db, "0022") == "0022"
    checkout_up_to(tmp_path, monkeypatch, "0022")
    pool = write_pool(tmp_path / "p.csv", 6)
    with with_todays_run_columns(db):
        record = run(db, [pool])
    assert migrate.downgrade(db, "0017") == "0017"
    engine = get_engine(db)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert "level2b_answer" not in inspector.get_table_names()
        columns = {c["name"] for c in inspector.get_columns("work_item")}
        items = conn.execute(sa.text("SELECT special, rule FROM work_item")).all()
        old_view = conn.execute(sa.text("SELECT count(*) FROM v_current_worklist")).scalar_one()
    assert {"special", "rule"} <= columns and not columns & {"asn_rule", "association"}
    assert len(items) == record["items_created"] == 4 and all(special == "" for special, _ in items)
    assert {rule for _, rule in items} == {"candidate_Asn_Lv2Image", "candidate_Asn_MIRLRSTAConfirm"}
    assert old_view == 4  # 0010's view: the published table's work list
    assert migrate.upgrade(db) == migrate.head_revision()  # (the checkout's head: 0022)
    with with_todays_run_columns(db):
        assert run(db, [pool])["items_created"] == 0  # the items kept their answer
    assert_exactly_once(db)


def test_an_upgrade_leaves_the_catalog_analysed(db, tmp_path, monkeypatch):
    """A migration may rewrite many rows: the upgrade analyses the catalog in its transaction, so plans do not
    wait on autovacuum (issue 13), through l2rules and through Alembic's own CLI alike."""
    from .test_inventory import analysed

    assert migrate.downgrade(db, "0022") == "0022"  # items at rules revision 0017: 0020 is reached without them
    checkout_up_to(tmp_path, monkeypatch, "0022")
    with with_todays_run_columns(db):
        run(db, [POOLS / "pool_002_image_miri.csv"])  # fewer rows than a load analyses after
    engine = get_engine(db)

    def forget() -> None:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_stat_reset()"))
            else:
                conn.execute(sa.text("DELETE FROM sqlite_stat1"))

    for upgrade in (lambda: migrate.upgrade(db), lambda: command.upgrade(migrate.alembic_config(engine), "head")):
        migrate.downgrade(db, "0020")
        forget()
        assert not analysed(engine, "exposure")
        upgrade()
        assert migrate.current_revision(engine) == ScriptDirectory.from_config(
            migrate.alembic_config(engine)).get_current_head()
        assert analysed(engine, "exposure") and analysed(engine, "work_item")
    forget()
    migrate.upgrade(db)  # at head already: nothing migrated, nothing analysed
    assert not analysed(engine, "exposure")


def test_0059_renames_the_published_operators_in_place_and_back(db, tmp_path):
    """0059 down: the old names (every dated row), the old CHECK, and the pools whose stored answers quote a
    failed condition behind; up again: the seed's names, the new CHECK; a condition 0058 cannot express refused."""
    from l2rules import load
    from l2rules.worklist import evaluate, head_catalog_version, stale_pools

    lamp = tmp_path / "lamp.csv"
    lamp.write_text("FILENAME|EXP_TYPE|LAMP|OPMODE|GRATING\njw7_a_uncal.fits|NRS_LAMP|NOLAMP|FIXEDSLIT|G140H\n")
    for path in (lamp, POOLS / "pool_021_tso.csv"):  # no condition fails in the second: its answers stay current
        load(db, path)
    assert len(evaluate(db)) == 2
    engine = get_engine(db)
    c = sa.table("rule_condition", sa.column("operator"), sa.column("valid_from"), sa.column("valid_to"),
                 sa.column("exp_type"), sa.column("special"), sa.column("pool_column"), sa.column("value"))

    def operators() -> list[str]:
        with engine.connect() as conn:
            return sorted(conn.execute(sa.select(c.c.operator)).scalars())

    def refused(operator: str) -> bool:
        with engine.connect() as conn:
            try:
                with conn.begin():
                    conn.execute(c.insert().values(exp_type="NRS_LAMP", special="", pool_column="lamp",
                                                   operator=operator, value="X", valid_from="0004"))
            except sa.exc.IntegrityError:
                return True
        with engine.begin() as conn:
            conn.execute(c.delete().where(c.c.value == "X"))
        return False

    head = operators()
    assert head == ["ne", "ne", "ne", "present", "present"]
    assert migrate.downgrade(db, "0058") == "0058"
    assert operators() == ["not_equals", "not_equals", "not_equals", "present", "present"]
    assert refused("ne") and not refused("not_equals")
    with engine.connect() as conn:
        behind = conn.execute(sa.text("SELECT name FROM pool WHERE answers_revision IS NULL")).scalars().all()
    assert behind == ["lamp.csv"]  # its answer quoted "lamp ne NOLAMP"
    assert migrate.upgrade(db) == migrate.head_revision()
    assert operators() == head and refused("equals") and not refused("like")
    def triples(frame: pd.DataFrame) -> list[tuple]:
        return sorted((r.pool_column, r.operator, None if pd.isna(r.value) else r.value) for r in frame.itertuples())

    assert triples(catalog.conditions(db)) == triples(catalog.read_table_seed("rule_condition"))
    with engine.connect() as conn:
        assert stale_pools(conn, head_catalog_version(conn)) == [
            conn.execute(sa.text("SELECT id FROM pool WHERE name = 'lamp.csv'")).scalar_one()]
    with engine.begin() as conn:  # a condition only the new language has: the downgrade refuses it
        conn.execute(c.insert().values(exp_type="NRS_LAMP", special="", pool_column="lamp", operator="like",
                                       value="LINE%", valid_from="0004"))
    with pytest.raises(L2RulesError, match="uses the operator like, which revisions before 0059 do not have"):
        migrate.downgrade(db, "0058")
    assert migrate.current_revision(db) == migrate.head_revision() and "like" in operators()
