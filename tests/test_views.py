"""The reporting views (migration 0018: the stored answers), on SQLite and PostgreSQL.

The analysts page's example queries (docs/analysts.md) are run here, from the page itself, through
SQLAlchemy, pandas.read_sql, the sqlite3 module and the psql / sqlite3 command
line tools, and their results are compared with the output the page prints.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import signal
import sqlite3
import subprocess
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from l2rules import Catalog, catalog, get_engine, load, plans, unmatched, worklist
from l2rules.migrate import current_revision, downgrade, upgrade
from l2rules.runs import run
from l2rules.worklist import evaluate

from .conftest import IN_CI, POOLS, REPO, SAMPLE_POOLS, as_values
from .runs_helpers import bump_rules, head_catalog_revision, spawn, write_pool

VIEWS = ["v_current_rules", "v_exposure_status", "v_current_worklist", "v_exposure_counts", "v_unmatched", "v_runs"]
BOOLEAN_COLUMNS = {"level2b", "item_up_to_date", "answer_current", "table_level2b"}


def readme_examples() -> list[tuple[str, str]]:
    """(query, psql output) pairs of the analysts page (docs/analysts.md)."""
    section = (REPO / "docs" / "analysts.md").read_text()
    pairs = re.findall(r"```sql\n(.*?)```\n\n```text\n(.*?)```", section, flags=re.S)
    assert len(pairs) == 8
    return [(q.strip(), out.rstrip("\n")) for q, out in pairs]


def parse_psql(text: str) -> tuple[list[str], list[list[str]]]:
    lines = text.splitlines()
    header = [c.strip() for c in lines[0].split("|")]
    rows = []
    for line in lines[2:]:
        if re.fullmatch(r"\(\d+ rows?\)", line.strip()):
            break
        rows.append([c.strip() for c in line.split("|")])
    return header, rows


def as_psql(value, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or column in BOOLEAN_COLUMNS:
        return "t" if value else "f"
    return str(value)


def normalise(cell: str) -> str:
    """A dead run's error names its pid and host: the same sentence, whatever they were."""
    return re.sub(r"process \d+ on \S+", "process PID on HOST", cell)


def readme_scenario(db: str, tmp_path) -> None:
    """What the analysts page's catalog went through: run 1 on pool_0*, run 2 killed, runs 3 and 4 on every pool."""
    first = sorted(str(POOLS / name) for name in SAMPLE_POOLS if name.startswith("pool_0"))
    every = [str(POOLS / name) for name in SAMPLE_POOLS]
    assert run(db, first, skip_bad=True)["run_id"] == 1
    marker = tmp_path / "held"
    killed = spawn(db, "run", *sorted(set(every) - set(first)), "--skip-bad",
                   env={"L2RULES_RUN_HOLD": "items", "L2RULES_RUN_HOLD_FILE": str(marker)})
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert killed.poll() is None and time.monotonic() < deadline, killed.stderr.read()
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert run(db, every, skip_bad=True)["run_id"] == 3
    assert run(db, every, skip_bad=True)["items_created"] == 0


def test_readme_queries_give_the_readme_output(db, backend, tmp_path):
    readme_scenario(db, tmp_path)
    engine = get_engine(db)
    for query, printed in readme_examples():
        header, expected = parse_psql(printed)
        with engine.connect() as conn:
            result = conn.execute(sa.text(query))
            columns = list(result.keys())
            rows = [[normalise(as_psql(v, c)) for v, c in zip(row, columns)] for row in result]
            frame = pd.read_sql(sa.text(query), conn)
        assert columns == header, query
        assert rows == [[normalise(c) for c in row] for row in expected], query
        assert list(frame.columns) == header and len(frame) == len(expected)
        if backend == "sqlite":
            raw = sqlite3.connect(engine.url.database).execute(query).fetchall()
            assert [[normalise(as_psql(v, c)) for v, c in zip(r, columns)] for r in raw] == rows


def _missing(tool: str) -> None:
    """Like the PostgreSQL cases: skip on a developer's machine without the tool, fail in CI."""
    (pytest.fail if IN_CI else pytest.skip)(f"no {tool} command on this machine")


def test_readme_queries_in_the_command_line_tools(db, backend, tmp_path):
    """`psql` prints exactly what the page shows; `sqlite3` runs every query."""
    readme_scenario(db, tmp_path)
    url = sa.make_url(db)
    for query, printed in readme_examples():
        if backend == "postgresql":
            if not shutil.which("psql"):
                _missing("psql")
            proc = subprocess.run(["psql", "-X", "-h", url.host, "-p", str(url.port or 5432), "-U", url.username,
                                   "-d", url.database, "-c", query], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            got = "\n".join(line.rstrip() for line in proc.stdout.strip("\n").splitlines())
            if "v_runs" in query:  # pid and host, and the column width that follows from them
                assert [normalise(c) for c in parse_psql(got)[1][1]] == \
                       [normalise(c) for c in parse_psql(printed)[1][1]]
            else:
                assert got == printed, query
        else:
            if not shutil.which("sqlite3"):
                _missing("sqlite3")
            proc = subprocess.run(["sqlite3", "-header", "-csv", url.database, query], capture_output=True, text=True)
            assert proc.returncode == 0 and not proc.stderr, proc.stderr
            assert len(proc.stdout.strip().splitlines()) == len(parse_psql(printed)[1]) + 1


def _sample_catalog(db: str, tmp_path) -> None:
    for name in SAMPLE_POOLS:
        load(db, POOLS / name, skip_bad=True)
    lamp = tmp_path / "lamp.csv"
    lamp.write_text("FILENAME|EXP_TYPE|LAMP|OPMODE|GRATING|IS_PSF|BKGDTARG|IS_IMPRT|TSOVISIT\n"
                    "jw7_a_uncal.fits|NRS_LAMP|LINE1|FIXEDSLIT|G140H|F|F|F|F\n"
                    "jw7_b_uncal.fits|NRS_LAMP|nolamp|FIXEDSLIT|G140H|F|F|F|F\n"
                    "jw7_c_uncal.fits|NRS_LAMP|LINE1|grating-only|G140H|F|F|F|F\n"
                    "jw7_d_uncal.fits|NRS_LAMP|LINE1|IMAGE|MIRROR|F|F|F|F\n"
                    "jw7_e_uncal.fits|NRS_LAMP|LINE1|null|G140H|F|F|F|F\n"
                    "jw7_f_uncal.fits|NRS_IFU|null|null|null|F|T|T|F\n"
                    "jw7_g_uncal.fits|NRS_IFU|null|null|null|T|F|T|F\n"
                    "jw7_h_uncal.fits|NRC_CORON|null|null|null|T|T|T|T\n"
                    "jw7_i_uncal.fits|NRC_FUTURE|null|null|null|F|F|F|F\n")
    load(db, lamp)


def test_exposure_status_is_the_stored_worklist_all(db, tmp_path):
    """The view reads the stored answers: after `evaluate`, the same rows as worklist(include_all=True)."""
    _sample_catalog(db, tmp_path)
    query = sa.text("SELECT * FROM v_exposure_status ORDER BY pool, source_line")
    with get_engine(db).connect() as conn:
        before = pd.read_sql(query, conn)
    assert len(before) and not before["answer_current"].astype(bool).any()
    assert set(before["reason"]) == {"not evaluated at the head catalog revision yet: `l2rules run` evaluates it"}
    assert evaluate(db) and evaluate(db) == []  # every pool once; then nothing is behind
    expected = worklist(db, include_all=True)
    with get_engine(db).connect() as conn:
        got = pd.read_sql(query, conn)
    assert got["answer_current"].astype(bool).all()
    assert set(got["answer_revision"]) == {head_catalog_revision(db)}
    for column in ("level2b", "table_level2b"):
        got[column] = got[column].astype(bool)
    got = got[expected.columns].astype(object).where(got[expected.columns].notna(), None)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), as_values(expected).reset_index(drop=True),
                                  check_dtype=False)
    assert "condition failed: lamp ne NOLAMP" in " ".join(expected["table_reason"])
    assert expected["level2b"].any() and (expected["level2b"] != expected["table_level2b"]).any()


def test_counts_unmatched_and_rules_views_agree_with_the_library(db, tmp_path):
    _sample_catalog(db, tmp_path)
    evaluate(db)
    engine = get_engine(db)
    with engine.connect() as conn:
        counts = pd.read_sql(sa.text("SELECT * FROM v_exposure_counts"), conn)
        missing = pd.read_sql(sa.text("SELECT pool, exp_type, count(*) AS exposures FROM v_unmatched "
                                      "GROUP BY pool, exp_type ORDER BY pool, exp_type"), conn)
        rules = pd.read_sql(sa.text("SELECT * FROM v_current_rules"), conn)
        total = conn.execute(sa.text("SELECT count(*) FROM exposure")).scalar_one()
    assert counts["exposures"].sum() == total
    assert counts["selected"].sum() == len(worklist(db)) > 0
    assert counts["table_selected"].sum() == len(worklist(db, source="table"))
    assert (counts["selected"] + counts["not_selected"] == counts["exposures"]).all()
    assert missing.values.tolist() == unmatched(db)[["pool", "exp_type", "exposures"]].values.tolist()
    assert set(rules["catalog_revision"]) == {catalog.versions(db).sort_values("seq")["revision"].iloc[-1]}  # the head
    assert len(rules) == len(catalog.rules(db))
    nircam = counts[counts["instrument"] == "NIRCam"]
    assert set(nircam["exp_type"]) >= {"NRC_IMAGE", "NRC_CORON", "NRC_FUTURE"}


def test_current_worklist_shows_which_items_runs_made(db, tmp_path):
    pool = write_pool(tmp_path / "p.csv", 12)
    load(db, pool)
    query = sa.text("SELECT filename, work_item_id, item_revision, item_up_to_date, answer_current "
                    "FROM v_current_worklist ORDER BY filename")
    with get_engine(db).connect() as conn:
        assert conn.execute(query).all() == []  # loaded, not evaluated yet: the next run does it
    made = run(db, None)
    head = head_catalog_revision(db)
    with get_engine(db).connect() as conn:
        after = conn.execute(query).all()
    assert len(after) == 8 and all(r.work_item_id is not None and r.item_up_to_date and r.answer_current
                                   and r.item_revision == head for r in after)
    bump_rules(db, "T001", "asn_rule", {"name": "Asn_Lv2Image"}, {"asn_type": "wfs-image2"})
    with get_engine(db).connect() as conn:
        behind = conn.execute(query).all()
        revisions = set(conn.execute(sa.text("SELECT catalog_revision FROM v_current_worklist")).scalars())
    assert revisions == {"T001"} and not any(r.answer_current for r in behind)  # said until a run answers again
    run(db, None)
    with get_engine(db).connect() as conn:
        now = conn.execute(query).all()
        asn_types = set(conn.execute(sa.text("SELECT asn_type FROM v_current_worklist")).scalars())
        held = conn.execute(sa.text("SELECT items_held FROM v_runs WHERE run_id = :r"), {"r": made["run_id"]})
        assert held.scalar_one() == 8
    assert all(r.item_up_to_date and r.answer_current for r in now)
    assert asn_types == {"wfs-image2", "spec2"}
    renewed = {r.filename for r in now if r.item_revision == "T001"}
    assert renewed == {f"jw9_{i:06d}_nrca1_uncal.fits" for i in (0, 1, 3, 6, 7, 9)}  # the images


def test_migration_0008_downgrades_and_upgrades(db):
    engine = get_engine(db)
    downgrade(db, "0007")
    assert current_revision(db) == "0007"
    names = set(sa.inspect(engine).get_table_names()) | set(sa.inspect(engine).get_view_names())
    assert not names & {"run", "work_item", *VIEWS}
    upgrade(db, "0008")
    assert current_revision(db) == "0008"
    inspector = sa.inspect(engine)
    assert set(VIEWS) <= set(inspector.get_view_names())
    assert {"run", "work_item"} <= set(inspector.get_table_names())


@pytest.mark.postgres
def test_every_view_and_view_column_is_described_for_psql(postgres):
    """`\\d+ v_...` in psql shows what each view and column is (COMMENT ON, migration 0019); the downgrade
    removes them."""
    db = postgres.migrated()
    query = sa.text(
        "SELECT c.relname, a.attname, obj_description(c.oid, 'pg_class') AS view_text, "
        "col_description(c.oid, a.attnum) AS column_text FROM pg_class c "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relkind = 'v' AND c.relname = ANY(:views)")
    with get_engine(db).connect() as conn:
        rows = conn.execute(query, {"views": VIEWS}).all()
    assert {r.relname for r in rows} == set(VIEWS) and len(rows) > 60
    missing = [f"{r.relname}.{r.attname}" for r in rows if not r.view_text or not r.column_text]
    assert missing == []
    assert {r.column_text for r in rows if r.attname == "filename"} == {"The exposure's FILENAME (the _uncal file)."}
    downgrade(db, "0018")
    with get_engine(db).connect() as conn:
        assert not any(r.view_text or r.column_text for r in conn.execute(query, {"views": VIEWS}))


def test_no_view_is_planned_with_a_per_row_subquery(db, tmp_path):
    """Every view, and every query of the analysts page, is set-based on both backends (issue 13)."""
    readme_scenario(db, tmp_path)
    with get_engine(db).connect() as conn:
        for view in plans.VIEWS:
            assert plans.per_row_subplans(conn, f"SELECT * FROM {view}") == [], view
        for query, _printed in readme_examples():
            assert plans.per_row_subplans(conn, query.rstrip(";")) == [], query


def test_no_command_is_planned_per_row_over_data(db, tmp_path):
    """Every statement of every command (run twice, runs, report, unmatched, rejections, impact, explain, the
    work lists, asn: scripts/plan_probe.py) is set-based over the exposures, items, answers and the
    association stages' tables, on both backends; what is left per row only looks up the rules (issue 13)."""
    spec = importlib.util.spec_from_file_location("plan_probe", REPO / "scripts" / "plan_probe.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    catalog = Catalog(db)
    catalog.init()
    with plans.watching(catalog.engine, over_data=True) as over_data, plans.watching(catalog.engine) as any_part:
        probe.every_command(catalog, tmp_path)
    assert dict(over_data) == {}
    assert any_part, "the probe planned nothing: it watched no statement"  # the lookups in the rules


def test_the_plan_check_tells_lookups_in_the_rules_from_work_over_data(db):
    """A correlated subquery over the rules is a lookup; over work items it is per-row work over data."""
    over_rules = "SELECT e.id, (SELECT count(*) FROM rule r WHERE r.exp_type = e.exp_type) AS n FROM exposure e"
    over_items = "SELECT e.id, (SELECT max(w.id) FROM work_item w WHERE w.exposure_id = e.id) AS n FROM exposure e"
    with get_engine(db).connect() as conn:
        lookups, work = plans.per_row_subplans(conn, over_rules), plans.per_row_subplans(conn, over_items)
    assert lookups and not any(part.over_data for part in lookups), lookups
    assert work and all(part.over_data for part in work) and "work_item" in str(work[0]), work


def test_the_plan_check_finds_a_correlated_subquery(db):
    """The check itself: a count per run in a scalar subquery is named, on both backends."""
    correlated = "SELECT r.id, (SELECT count(*) FROM work_item w WHERE w.run_id = r.id) AS n FROM run r"
    with get_engine(db).connect() as conn:
        assert plans.per_row_subplans(conn, correlated) != []
        assert plans.per_row_subplans(conn, "SELECT r.id FROM run r") == []


def test_watching_names_the_statements_planned_per_row(db):
    """plans.watching plans what a command executes (scripts/plan_probe.py lists them for every command)."""
    engine = get_engine(db)
    with plans.watching(engine) as found:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT r.id, (SELECT count(*) FROM work_item w WHERE w.run_id = r.id) FROM run r"))
            conn.execute(sa.text("SELECT count(*) FROM v_runs"))
    assert list(found) == ["SELECT r.id, (SELECT count(*) FROM work_item w WHERE w.run_id = r.id) FROM run r"]
