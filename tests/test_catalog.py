"""The rules catalog: the published table, history, as-of queries, diffs, drift and new revisions."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import sqlalchemy as sa

from l2rules import catalog, points
from l2rules.catalog import CatalogError
from l2rules.config import get_engine

from .conftest import DATA, REPO, as_values, checkout_copy

INSTRUMENTS = {"NRC": "NIRCam", "MIR": "MIRI", "NRS": "NIRSpec", "NIS": "NIRISS", "FGS": "FGS"}


def published_table() -> pd.DataFrame:
    """The published rst table, read independently of the migrations (combined row expanded)."""
    rows, current = [], None
    for line in (DATA / "level2b_rules.rst").read_text().splitlines():
        if m := re.match(r"^   \* -\s*(.*)$", line):
            current = [m.group(1).strip()]
            rows.append(current)
        elif (m := re.match(r"^     -\s*(.*)$", line)) and current is not None:
            current.append(m.group(1).strip())
    out = []
    for exp_type, exptype, special, level2b in (r for r in rows[1:] if r[0]):
        for one in exp_type.split("/"):
            out.append({"exp_type": one, "special": "" if special.startswith("n/a") else special,
                        "instrument": INSTRUMENTS[one[:3]], "exptype": exptype,
                        "level2b": level2b.startswith("YES")})
    return pd.DataFrame(out, dtype=object).sort_values(["exp_type", "special"]).reset_index(drop=True)


def test_published_rows_count():
    assert len(published_table()) == 74


def test_as_of_2019_equals_published_table(db):
    first = catalog.rules(db, at="2019-01-01")
    cols = ["exp_type", "special", "instrument", "exptype", "level2b"]
    pd.testing.assert_frame_equal(as_values(first[cols]), published_table()[cols], check_dtype=False)
    assert first["asn_type"].isna().all()


def test_as_of_today_equals_seed(db):
    today = catalog.rules(db, at=dt.date.today())
    pd.testing.assert_frame_equal(today, catalog.read_seed())
    row = today.set_index(["exp_type", "special"])
    assert row.loc[("MIR_WFSS", ""), "asn_type"] == "spec2"
    assert not row.loc[("NRC_GRISM", ""), "level2b"]
    assert row.loc[("NRS_MIMF", ""), "asn_type"] == "image2"
    assert row.loc[("NRC_TSIMAGE", ""), "asn_type"] == "tso-image2"


@pytest.mark.parametrize("date, mimf, grism", [
    ("2020-12-06", None, True), ("2020-12-07", "wfs-image2", True), ("2021-06-15", "wfs-image2", False),
    ("2026-01-22", "wfs-image2", False), ("2026-01-23", "image2", False),
])
def test_as_of_boundaries(db, date, mimf, grism):
    rules = catalog.rules(db, at=date).set_index(["exp_type", "special"])
    asn_type = rules.loc[("NRS_MIMF", ""), "asn_type"]
    assert (None if pd.isna(asn_type) else asn_type) == mimf
    assert bool(rules.loc[("NRC_GRISM", ""), "level2b"]) is grism
    assert (("MIR_WFSS", "") in rules.index) is (date >= "2026-03-20")


def test_version_selects_revision(db):
    assert len(catalog.rules(db, at="0002")) == 74
    assert len(catalog.rules(db, at="0007")) == 75
    with pytest.raises(CatalogError, match="unknown catalog version"):
        catalog.rules(db, at=points.Named("revision", "9999"))
    with pytest.raises(CatalogError, match="no rules were in force on 2000-01-01"):
        catalog.rules(db, at="2000-01-01")


def test_versions_record_dates_and_references(db):
    versions = catalog.versions(db)
    # in effective order, whenever written: 0011-0017 (recorded after 0006 and 0007) take effect from 2022
    assert list(versions["revision"])[:5] == ["0002", "0004", "0005", "0011", "0012"]
    assert [str(d) for d in versions["effective_date"]][1:4] == ["2020-12-07", "2021-06-15", "2022-10-10"]
    assert list(versions["revision"]).index("0006") > list(versions["revision"]).index("0015")
    assert versions["reference"].str.startswith("jwst").all()
    assert versions["revision"].is_unique
    assert list(zip(versions["effective_date"], versions["seq"])) == sorted(zip(versions["effective_date"],
                                                                                versions["seq"]))
    assert versions["recorded"].notna().all() and (versions["recorded"].astype(str) >= "2026-11-26").all()


def test_history_of_an_exp_type(db):
    h = catalog.history(db, "NRS_MIMF")
    assert list(h["valid_from"]) == ["0002", "0004", "0006"]
    assert list(h["asn_type"].astype(object).fillna("-")) == ["-", "wfs-image2", "image2"]
    assert pd.isna(h["valid_to"].iloc[-1])
    with pytest.raises(CatalogError):
        catalog.history(db, "NOT_A_TYPE")


def test_diff_between_dates_and_revisions(db):
    d = catalog.diff(db, "2021-01-01", "0007")
    assert set(d["change"]) == {"changed", "added"}
    assert d.loc[d.change == "added", "exp_type"].tolist() == ["MIR_WFSS"]
    changed = d[d.change == "changed"].set_index(["exp_type", "column"])
    assert changed.loc[("NRC_GRISM", "level2b"), "after"] in (False, 0)
    assert changed.loc[("NRS_MIMF", "asn_type"), "before"] == "wfs-image2"
    assert catalog.diff(db, catalog.versions(db)["revision"].iloc[-1], "today").empty  # the head: nothing since


def test_nrs_lamp_conditions_arrive_with_2020(db):
    assert catalog.conditions(db, at="2020-01-01").empty
    now = catalog.conditions(db, exp_type="NRS_LAMP")
    assert set(now["pool_column"]) == {"lamp", "opmode", "grating"}


def test_constraints_reject_nonsense(db):
    engine = get_engine(db)
    good = {"exp_type": "X_NEW", "special": "", "instrument": "MIRI", "exptype": "science",
            "level2b": True, "asn_type": "image2", "note": ""}
    bad_rows = [
        {**good, "exptype": "sciense"},
        {**good, "special": "FLAT"},
        {**good, "instrument": "Hubble"},
        {**good, "asn_type": "image3"},
        {**good, "level2b": False},  # not processed but produces an association
        {**good, "exp_type": "NRC_IMAGE"},  # duplicate key
    ]
    from l2rules.schema import rule

    for row in bad_rows:
        with pytest.raises(sa.exc.IntegrityError):
            with engine.begin() as conn:
                conn.execute(rule.insert().values(**row))
    with engine.begin() as conn:
        conn.execute(rule.insert().values(**good))


def test_check_detects_drift(db, tmp_path):
    assert catalog.check(db).empty
    seed = catalog.read_seed()
    seed.loc[seed.exp_type == "NIS_SOSS", "asn_type"] = "tso-spec2"
    edited = tmp_path / "seed.csv"
    catalog.write_seed(seed, edited)
    drift = catalog.check(db, edited)
    assert drift[["exp_type", "column", "csv", "database"]].values.tolist() == [
        ["NIS_SOSS", "asn_type", "tso-spec2", "spec2"]]


def _run(args, cwd, env):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)


def test_new_revision_workflow_round_trips(backend, empty_db, tmp_path, monkeypatch):
    """Edit the seed CSV, `l2rules rules revision`, `alembic upgrade head`, `alembic downgrade -1`."""
    work = checkout_copy(tmp_path, monkeypatch)
    env = {**os.environ, "L2RULES_DATABASE_URL": empty_db}
    l2rules, alembic = [sys.executable, "-m", "l2rules"], [sys.executable, "-m", "alembic"]

    assert _run([*l2rules, "init"], work, env).returncode == 0
    seed = catalog.read_seed(work / "seeds" / "level2b_rules.csv")
    seed.loc[seed.exp_type == "NIS_EXTCAL", "note"] = "never processed at Level 2b"
    seed = seed[seed.exp_type != "FGS_ID-STACK"]
    extra = pd.DataFrame([{"exp_type": "NRS_TEST", "special": "", "instrument": "NIRSpec", "exptype": "science",
                           "level2b": True, "asn_type": "spec2", "note": "made up for the test"}])
    catalog.write_seed(pd.concat([seed, extra]), work / "seeds" / "level2b_rules.csv")

    drift = _run([*l2rules, "rules", "check"], work, env)
    assert drift.returncode == 4, drift.stderr
    assert "NRS_TEST" in drift.stderr and "FGS_ID-STACK" in drift.stderr

    existing = set((work / "migrations" / "versions").glob("*.py"))
    made = _run([*l2rules, "rules", "revision", "-m", "Test change", "--date", "2026-11-01", "--ref", "jwst PR #1"],
                work, env)
    assert made.returncode == 0, made.stderr
    # The next number after the head, whatever other (schema) revisions the head has.
    new = sorted(set((work / "migrations" / "versions").glob("*.py")) - existing)
    assert len(new) == 1
    text = new[0].read_text()
    assert "NRS_TEST" in text and "FGS_ID-STACK" in text and "NIS_EXTCAL" in text
    assert "NRC_IMAGE" not in text  # exactly the difference, nothing else

    up = _run([*alembic, "upgrade", "head"], work, env)
    assert up.returncode == 0, up.stderr
    assert _run([*l2rules, "rules", "check"], work, env).returncode == 0
    assert catalog.rules(empty_db, exp_type="NRS_TEST")["note"].item() == "made up for the test"
    assert "jwst PR #1" in set(catalog.versions(empty_db)["reference"])
    assert catalog.rules(empty_db, at="2026-10-31", exp_type="FGS_ID-STACK").shape[0] == 1
    assert catalog.rules(empty_db, exp_type="FGS_ID-STACK").empty

    down = _run([*alembic, "downgrade", "-1"], work, env)
    assert down.returncode == 0, down.stderr
    monkeypatch.chdir(REPO)  # back at the project's head
    pd.testing.assert_frame_equal(catalog.rules(empty_db), catalog.read_seed(REPO / "seeds" / "level2b_rules.csv"))
    again = _run([*l2rules, "rules", "revision", "-m", "x", "--date", "2026-11-01", "--ref", "r"], work, env)
    assert "0008" in again.stdout or again.returncode == 0


def test_revision_with_nothing_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert catalog.write_revision("nothing", "2026-11-01", "ref") is None
