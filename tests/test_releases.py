"""One rules catalog with one history (issue 12): every pipeline release is a point of the catalog.

The fixtures in tests/data/releases/<version>/ are what each jwst release's own ``asn_generate``
made of every sample pool (their README says how they were made); l2rules must reproduce each,
at that release, exactly. Nothing here names the head revision or counts rules: a new revision
touches only its own files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from l2rules import association, catalog, conformance, inventory, points
from l2rules.cli import main

from .conftest import DATA, POOLS, REPO, checkout_copy

RELEASE_FIXTURES = DATA / "releases"
FIXTURE_RELEASES = sorted((d.name for d in RELEASE_FIXTURES.iterdir() if d.is_dir()),
                          key=lambda v: tuple(int(n) for n in v.split(".")))
#: On PostgreSQL, the releases whose rules exercise each kind of change (a duplicate-order parameter,
#: a value set, new rules): the full set runs on SQLite.
POSTGRESQL_RELEASES = ("1.8.5", "1.14.0", "2.0.0")
#: ``L2RULES_FULL_SWEEP=1``: every fixture at every release, as ``scripts/conformance.py --releases`` and
#: ``--changes`` run them (an hour on two cores); without it, each fixture at the releases that show its
#: changes (:func:`telling_releases`), which keeps the suite in CI's time.
FULL_SWEEP = os.environ.get("L2RULES_FULL_SWEEP", "") not in ("", "0")


def release_runs(releases, output) -> list[list[str]]:
    """``releases`` in version order, cut into runs of releases whose own output (``output(release)``,
    comparable) is the same: a change of the pipeline's lies between two runs."""
    runs: list[list[str]] = []
    last = object()
    for release in sorted(releases, key=catalog.version_key):
        this = output(release)
        if runs and this == last:
            runs[-1].append(release)
        else:
            runs.append([release])
        last = this
    return runs


def telling_releases(releases, output, middle: bool = True) -> list[str]:
    """Of ``releases``, the ones whose outputs tell each change: of each run of :func:`release_runs`, its
    first and last release (the two sides of every change) and, with ``middle``, one between (a change the
    catalog records at a wrong date inside a run shows there or at the run's ends). Every release with
    ``FULL_SWEEP``."""
    runs = release_runs(releases, output)
    if FULL_SWEEP:
        return [r for run in runs for r in run]
    return [r for run in runs for r in dict.fromkeys([run[0], *([run[len(run) // 2]] if middle else []), run[-1]])]


def _reference(fixtures: Path, stem: str):
    """What a release made of a pool, comparable: its associations (asn_id aside) and per-exposure table."""
    def output(release: str):
        made = fixtures / release / f"{stem}.json"
        if not made.is_file():
            return None
        return (frozenset(conformance.reference_associations(made).items()),
                (fixtures / release / f"{stem}.per_exposure.csv").read_text())
    return output


def _agreement(db: str, releases, telling: bool = False) -> dict[str, list]:
    """Per fixture release, the pools on which l2rules at that release differs from it (of each pool, the
    releases that tell its changes when ``telling``)."""
    as_of = catalog.releases(db).set_index("version")["rules_as_of"]
    differing: dict[str, list] = {release: [] for release in releases}
    for pool in sorted(POOLS.glob("*.csv")):
        # evaluated right after its load: sample pools share FILENAME stems, a later load takes them over
        pool_id = inventory.load(db, pool, progress=False).pool_id
        made_at: dict = {}
        for release in (telling_releases(releases, _reference(RELEASE_FIXTURES, pool.stem)) if telling
                        else releases):
            point = as_of[release]
            if point not in made_at:  # releases that share a catalog point share an evaluation
                made_at[point] = association.associations(db, pool_id, at=release)
            asns = made_at[point]
            made = conformance.made_associations(asns)
            ref = conformance.reference_associations(RELEASE_FIXTURES / release / f"{pool.stem}.json")
            rows, exposures = conformance.exposure_disagreements(
                asns, RELEASE_FIXTURES / release / f"{pool.stem}.per_exposure.csv")
            if made - ref != Counter() or ref - made != Counter() or exposures or rows == 0:
                differing[release].append((pool.stem, len(made - ref), len(ref - made), len(exposures)))
    return differing


def test_every_release_is_reproduced_on_every_sample_pool(db, backend):
    """Each sample pool at the releases that tell its changes (SQLite; every release with FULL_SWEEP) or at
    POSTGRESQL_RELEASES: every exposure and association as the release made them."""
    releases = FIXTURE_RELEASES if backend == "sqlite" else POSTGRESQL_RELEASES
    assert len(releases) >= 3
    assert _agreement(db, releases, telling=backend == "sqlite") == {release: [] for release in releases}


def test_the_telling_releases_are_each_changes_two_sides():
    """The sample of releases holds both sides of every change and thins only runs of equal outputs."""
    outputs = {"1.8.0": "a", "1.9.0": "a", "1.10.0": "a", "1.11.0": "a", "1.12.0": "b", "2.0.0": "a"}
    got = telling_releases(outputs, outputs.get)
    assert got == (list(outputs) if FULL_SWEEP else ["1.8.0", "1.10.0", "1.11.0", "1.12.0", "2.0.0"])
    assert telling_releases(outputs, outputs.get, middle=False) == (
        list(outputs) if FULL_SWEEP else ["1.8.0", "1.11.0", "1.12.0", "2.0.0"])
    pool_018 = telling_releases(FIXTURE_RELEASES, _reference(RELEASE_FIXTURES, "pool_018_all_exptypes"))
    assert FULL_SWEEP or 8 <= len(pool_018) < len(FIXTURE_RELEASES)


CHANGES = DATA / "changes"
#: The change fixtures (tests/data/changes: one pool per change of the association code, the output of
#: each of 27 releases) run at the releases that tell each fixture's changes; on PostgreSQL at the two
#: sides of its first change. ``scripts/conformance.py --changes`` runs all 27 (837 pairs).


def test_every_change_fixture_at_every_release(db, backend):
    """Each change fixture, l2rules against the release's own asn_generate, every exposure and association
    exact: on SQLite at the two sides of each of its changes among all 27 releases (every release with
    FULL_SWEEP), on PostgreSQL at the two sides of its first change."""
    every = [d.name for d in (CHANGES / "releases").iterdir() if d.is_dir()]
    pools = sorted((CHANGES / "pools").glob("*.csv"))
    assert len(every) >= 27 and len(pools) >= 31
    results, asked = [], 0
    for pool in pools:
        output = _reference(CHANGES / "releases", pool.stem)
        if backend == "sqlite":
            releases = telling_releases(every, output, middle=False)
        else:
            runs = release_runs(every, output)
            releases = [runs[0][-1], runs[1][0]] if len(runs) > 1 else [runs[0][0], runs[0][-1]]
        asked += len(releases)
        results += conformance.release_agreement(db, [pool], CHANGES / "releases", releases)
    # every fixture has every release's output: a missing one would be skipped, not compared
    assert len(results) == asked
    differing = sorted(f"{r.pool} at {r.release}" for r in results if not r.exact)
    assert differing == []


JWST_POOLS = DATA / "jwst_pools"
#: The releases the tests run the jwst package's own test pools at (tests/data/jwst_pools, each release's own
#: output): both ends, and the releases where the model changes most. ``scripts/conformance.py --changes
#: tests/data/jwst_pools`` runs all 28.
JWST_POOL_RELEASES = ("1.8.0", "1.12.0", "1.19.0", "3.0.0")
POSTGRESQL_JWST_POOL_RELEASES = ("1.8.0", "1.16.1")


def _jwst_pools(made: bool) -> list[Path]:
    """The jwst test pools the pipeline makes associations of (``made``), or those it fails on."""
    return [pool for pool in sorted((JWST_POOLS / "pools").glob("*.csv"))
            if (JWST_POOLS / "releases" / "3.0.0" / f"{pool.stem}.json").is_file() is made]


def test_every_jwst_test_pool_at_every_release(db, backend):
    """The jwst package's own association test pools (every one of 1.8.0 ... 3.0.0 but the sample pools and
    mega_pool), at each release of the sample, against that release's own asn_generate: every exposure and
    association exact."""
    releases = JWST_POOL_RELEASES if backend == "sqlite" else POSTGRESQL_JWST_POOL_RELEASES
    pools = _jwst_pools(made=True)
    results = list(conformance.release_agreement(db, pools, JWST_POOLS / "releases", releases))
    assert len(pools) >= 30 and len(results) == len(pools) * len(releases)
    assert sorted(f"{r.pool} at {r.release}" for r in results if not r.exact) == []


def test_the_jwst_test_pools_without_candidates_make_no_association(db, tmp_path, capsys):
    """Those without ASN_CANDIDATE: asn_generate makes no association of them before 1.14.0 and raises from
    1.14.0 (KeyError 'asn_candidate', JP-3290's per-candidate pools); l2rules makes none at any point, and
    `asn` says why (exit 2) rather than write an empty directory."""
    refused = _jwst_pools(made=False)
    assert len(refused) >= 10
    for pool in refused:
        for release in (JWST_POOLS / "releases").iterdir():
            if catalog.version_key(release.name) >= (1, 14, 0):
                assert "KeyError: 'asn_candidate'" in (release / f"{pool.stem}.error.txt").read_text()
            else:
                assert conformance.reference_associations(release / f"{pool.stem}.json") == Counter()
        pool_id = inventory.load(db, pool, progress=False).pool_id
        assert association.associations(db, pool_id) == association.associations(db, pool_id, at="1.13.4") == []
        assert main(["--db", db, "asn", str(pool), "--output", str(tmp_path / pool.stem)]) == 2
        assert f"pool {pool.name}: no ASN_CANDIDATE" in capsys.readouterr().err


def test_every_fixture_release_is_a_catalog_point(db):
    known = set(catalog.releases(db)["version"])
    assert set(FIXTURE_RELEASES) <= known


def test_a_patch_release_decides_as_the_release_it_patches(db):
    """1.14.1 came out after 1.15.0 on the 1.14 line: its rules are 1.14.0's, not those in force that day."""
    releases = catalog.releases(db).set_index("version")
    assert releases.loc["1.14.1", "released"] > releases.loc["1.15.0", "released"]
    assert releases.loc["1.14.1", "rules_as_of"] == releases.loc["1.14.0", "rules_as_of"]


def test_rules_rows_differ_by_release(db):
    old = catalog.table_rows(db, "asn_rule", at="1.20.2").set_index("name")
    new = catalog.table_rows(db, "asn_rule", at="3.0.0").set_index("name")
    assert "Asn_MIRLRSTAConfirm" in new.index and "Asn_MIRLRSTAConfirm" not in old.index
    assert (old.loc["Asn_Lv2WFSC", "asn_type"], new.loc["Asn_Lv2WFSC", "asn_type"]) == ("wfs-image2", "image2")
    diff = catalog.diff_all(db, "1.20.2", "3.0.0", ["asn_rule"])
    assert ("added", "Asn_MIRLRSTAConfirm") in set(zip(diff["change"], diff["key"]))
    assert ("changed", "Asn_Lv2WFSC", "asn_type") in set(zip(diff["change"], diff["key"], diff["column"]))
    history = catalog.history(db, "Asn_Lv2WFSC", table="asn_rule")
    assert list(history["asn_type"])[-2:] == ["wfs-image2", "image2"]
    assert pd.isna(history["valid_to"].iloc[-1])  # <NA>: still in force


def test_unknown_release_is_a_clear_error(db, capsys):
    assert main(["--db", db, "rules", "rows", "asn_rule", "--pipeline", "0.9.9"]) == 2
    assert "unknown pipeline release '0.9.9'" in capsys.readouterr().err


def test_replay_reproduces_every_seed_file(db):
    """Every seed file, the published table's and the association rules', equals the migrated catalog."""
    drift = catalog.check_all(db)
    assert drift.empty, drift.to_string()
    assert set(drift.columns) >= {"table", "key", "seed", "database"}
    assert set(catalog.SEED_TABLES) == {t.name for t in catalog.SEED_TABLES.values()}
    assert all(t.path.is_file() for t in catalog.SEED_TABLES.values())


def test_asn_as_of_a_release_on_the_command_line(db, tmp_path):
    """`l2rules asn --pipeline 1.20.2` writes what 1.20.2 made: the WFS&C exposures as wfs-image2."""
    out = tmp_path / "asn"
    assert main(["--db", db, "asn", str(POOLS / "jw00632_dups.csv"), "--output", str(out),
                 "--pipeline", "1.20.2"]) == 0
    types = {path.name.split("_")[1] for path in out.glob("*_asn.json")}
    assert types == {"wfs-image2"}


def test_impact_across_releases_matches_the_releases_themselves(db):
    """`impact --associations --from 1.16.1 --to 3.0.0`: exactly the exposures whose processing the two
    releases' own outputs differ on (selection or asn_types), and those whose association changed rule."""
    pools = [POOLS / "pool_007_spec_miri.csv", POOLS / "jw00632_dups.csv"]
    exposures, counts = association.impact(db, "1.16.1", "3.0.0", pools=pools)
    expected = set()
    for pool in pools:
        before, after = (pd.read_csv(RELEASE_FIXTURES / v / f"{pool.stem}.per_exposure.csv", dtype=str,
                                     keep_default_na=False).set_index("filename") for v in ("1.16.1", "3.0.0"))
        changed = (before["selected"] != after["selected"]) | (before["asn_types"] != after["asn_types"]) \
            | (before["asn_rules"] != after["asn_rules"])
        expected |= set(before.index[changed])
    assert set(exposures["filename"]) == expected
    assert counts["exposures"].sum() == len(exposures)
    assert set(exposures.loc[exposures["exp_type"] == "NRC_IMAGE", "change"]) == {"asn_type changes"}
    assert association.impact(db, "3.0.0", "3.0.0", pools=pools)[0].empty


def _run(args, cwd, env):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)


def test_association_rule_change_round_trips_through_a_revision(backend, empty_db, tmp_path, monkeypatch):
    """Edit an association seed file, `rules revision`, `alembic upgrade head`, `alembic downgrade -1`."""
    work = checkout_copy(tmp_path, monkeypatch)
    env = {**os.environ, "L2RULES_DATABASE_URL": empty_db}
    l2rules, alembic = [sys.executable, "-m", "l2rules"], [sys.executable, "-m", "alembic"]
    assert _run([*l2rules, "init"], work, env).returncode == 0

    sets = catalog.read_table_seed("asn_value_set", work / "seeds" / "asn_value_set.csv")
    sets = sets[~((sets.set_name == "RATEINTS_ALWAYS") & (sets.value == "nis_ami"))]
    catalog.write_table_seed("asn_value_set", sets, work / "seeds" / "asn_value_set.csv")
    drift = _run([*l2rules, "rules", "check"], work, env)
    assert drift.returncode == 4 and "asn_value_set" in drift.stderr and "RATEINTS_ALWAYS nis_ami" in drift.stderr

    existing = set((work / "migrations" / "versions").glob("*.py"))
    made = _run([*l2rules, "rules", "revision", "-m", 'AMI """back""" to _rate\\', "--date", "2026-11-01",
                 "--ref", "test"], work, env)
    assert made.returncode == 0, made.stderr
    new = sorted(set((work / "migrations" / "versions").glob("*.py")) - existing)
    assert len(new) == 1 and "asn_value_set" in new[0].read_text() and "'rule':" not in new[0].read_text()
    assert _run([*alembic, "upgrade", "head"], work, env).returncode == 0
    assert _run([*l2rules, "rules", "check"], work, env).returncode == 0
    versions = catalog.versions(empty_db)
    assert versions.loc[versions["reference"] == "test", "summary"].item() == 'AMI """back""" to _rate\\'

    pool = inventory.load(empty_db, POOLS / "pool_018_all_exptypes.csv", progress=False).pool_id
    names = {m["expname"] for a in association.associations(empty_db, pool) for m in a.members}
    earlier = {m["expname"] for a in association.associations(empty_db, pool, at="2026-10-31") for m in a.members}
    assert "jw_00061_rate.fits" in names and "jw_00061_rateints.fits" in earlier

    assert _run([*alembic, "downgrade", "-1"], work, env).returncode == 0
    monkeypatch.chdir(REPO)  # back at the project's head
    assert catalog.check_all(empty_db, REPO / "seeds").empty  # the project's seed files again


def _wfsc(db: str, point: str | None) -> tuple:
    rows = catalog.table_rows(db, "asn_rule", at=point) if point else catalog.table_rows(db, "asn_rule")
    row = rows[rows["name"] == "Asn_Lv2WFSC"].iloc[0]
    return row["asn_type"], row["note"]


def _states(db: str, table: str, where: str) -> list[tuple]:
    """Every stored state of some rows, read without l2rules (which asks for the head revision)."""
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            return sorted(tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} WHERE {where}")))
    finally:
        engine.dispose()


def test_a_backdated_revision_takes_effect_where_the_change_did(backend, empty_db, tmp_path, monkeypatch):
    """A revision written after 2.0.0's (0016) records a change that took effect at 1.15.0: the state in
    force then is split, the change is carried into 0016's state, and 0016 keeps what it set itself;
    upgrade, downgrade, upgrade; the points before, at and after it."""
    work = checkout_copy(tmp_path, monkeypatch)
    env = {**os.environ, "L2RULES_DATABASE_URL": empty_db}
    l2rules, alembic = [sys.executable, "-m", "l2rules"], [sys.executable, "-m", "alembic"]
    assert _run([*l2rules, "init"], work, env).returncode == 0
    before = {p: _wfsc(empty_db, p) for p in ("1.14.1", "1.15.0", "1.20.2", "2.0.0", None)}
    assert before["1.14.1"][0] == before["1.20.2"][0] == "wfs-image2" and before[None][0] == "image2"
    stored = _states(empty_db, "asn_rule", "name = 'Asn_Lv2WFSC'")

    seed = work / "seeds" / "asn_rule.csv"
    rows = catalog.read_table_seed("asn_rule", seed)
    wfsc = rows["name"] == "Asn_Lv2WFSC"
    rows.loc[wfsc, "note"], rows.loc[wfsc, "asn_type"] = "as of 1.15.0", "wfs-image2"
    catalog.write_table_seed("asn_rule", rows, seed)
    made = _run([*l2rules, "rules", "revision", "-m", "WFS&C note", "--date", "1.15.0", "--ref", "test"], work, env)
    assert made.returncode == 0, made.stderr
    assert "split at 2024-06-26" in made.stdout and "carried into 0016" in made.stdout, made.stdout
    assert "0016 (2026-04-13) set asn_type and keeps its effect" in made.stdout, made.stdout
    # the head keeps 0016's asn_type: the seed file is written back to it, so it equals the head
    assert catalog.read_table_seed("asn_rule", seed).set_index("name").loc["Asn_Lv2WFSC", "asn_type"] == "image2"

    for _ in range(2):  # upgrade, downgrade, upgrade
        assert _run([*alembic, "upgrade", "head"], work, env).returncode == 0
        assert _run([*l2rules, "rules", "check"], work, env).returncode == 0
        assert _wfsc(empty_db, "1.14.1") == before["1.14.1"]
        assert _wfsc(empty_db, "1.15.0") == ("wfs-image2", "as of 1.15.0")
        assert _wfsc(empty_db, "1.20.2") == ("wfs-image2", "as of 1.15.0")
        assert _wfsc(empty_db, "2.0.0") == ("image2", "as of 1.15.0")
        assert _wfsc(empty_db, None) == ("image2", "as of 1.15.0")
        versions = catalog.versions(empty_db)
        new = versions[versions["reference"] == "test"].iloc[0]
        # listed in effective order, whenever recorded: after 1.14.0's revision and those written earlier for
        # the same day (0030), before 1.18.0's (0026) and 2.0.0's (0016)
        order = list(versions["revision"])
        assert order.index("0015") < order.index("0030") < order.index(new["revision"]) < order.index("0026")
        assert str(new["recorded"]) >= "2026-12-06" and str(new["effective_date"]) == "2024-06-26"
        assert _run([*alembic, "downgrade", "-1"], work, env).returncode == 0
        assert _states(empty_db, "asn_rule", "name = 'Asn_Lv2WFSC'") == stored


def test_a_row_added_at_one_release_and_removed_at_a_later_one(backend, empty_db, tmp_path, monkeypatch):
    """Two backdated revisions bound a value to [1.18.0, 2.0.0) (as the DHS pupils were), the head
    unchanged; a third, on the published table, is carried into two later states and its head row."""
    work = checkout_copy(tmp_path, monkeypatch)
    env = {**os.environ, "L2RULES_DATABASE_URL": empty_db}
    l2rules, alembic = [sys.executable, "-m", "l2rules"], [sys.executable, "-m", "alembic"]
    seed = work / "seeds" / "asn_value_set.csv"
    head = catalog.read_table_seed("asn_value_set", seed)
    extra = pd.DataFrame([{"set_name": "TEST_SET", "value": "gdhs0"}])
    catalog.write_table_seed("asn_value_set", pd.concat([head, extra]), seed)
    first = _run([*l2rules, "rules", "revision", "-m", "on", "--date", "1.18.0", "--ref", "t1"], work, env)
    assert first.returncode == 0 and "added from 2025-04-08" in first.stdout, first.stdout + first.stderr
    catalog.write_table_seed("asn_value_set", head, seed)
    second = _run([*l2rules, "rules", "revision", "-m", "off", "--date", "2.0.0", "--ref", "t2"], work, env)
    assert second.returncode == 0 and "removed from 2026-04-13" in second.stdout, second.stdout + second.stderr
    published = work / "seeds" / "level2b_rules.csv"
    rules = catalog.read_seed(published)
    rules.loc[rules["exp_type"] == "NRS_MIMF", "note"] = "noted from 2019"
    catalog.write_seed(rules, published)
    third = _run([*l2rules, "rules", "revision", "-m", "note", "--date", "2019-01-01", "--ref", "t3"], work, env)
    assert third.returncode == 0 and "carried into 0004 (2020-12-07), 0006 (2026-01-23)" in third.stdout, \
        third.stdout + third.stderr
    assert _run([*alembic, "upgrade", "head"], work, env).returncode == 0
    assert _run([*l2rules, "rules", "check"], work, env).returncode == 0

    def has(point):
        rows = catalog.table_rows(empty_db, "asn_value_set", at=point)
        return bool(((rows["set_name"] == "TEST_SET") & (rows["value"] == "gdhs0")).any())

    assert [has(p) for p in ("1.17.1", "1.18.0", "1.20.2", "2.0.0", "3.0.0")] == [False, True, True, False, False]
    mimf = {when: catalog.rules(empty_db, at=when, exp_type="NRS_MIMF").iloc[0]
            for when in ("2018-12-31", "2019-01-01", "2021-01-01", "today")}
    assert mimf["2018-12-31"]["note"] in ("", None) and pd.isna(mimf["2019-01-01"]["asn_type"])
    assert all(mimf[w]["note"] == "noted from 2019" for w in ("2019-01-01", "2021-01-01", "today"))
    assert [mimf[w]["asn_type"] for w in ("2021-01-01", "today")] == ["wfs-image2", "image2"]  # theirs kept
    assert _run([*alembic, "downgrade", "0022"], work, env).returncode == 0
    assert _run([*alembic, "upgrade", "head"], work, env).returncode == 0
    assert [has(p) for p in ("1.17.1", "1.18.0", "2.0.0")] == [False, True, False]
    assert catalog.rules(empty_db, exp_type="NRS_MIMF")["note"].item() == "noted from 2019"


def _fixture_selection(release: str, pool) -> dict[str, set]:
    frame = pd.read_csv(RELEASE_FIXTURES / release / f"{pool.stem}.per_exposure.csv", dtype=str, keep_default_na=False)
    return {row.filename: set(filter(None, row.asn_types.split(";")))
            for row in frame.itertuples() if row.selected.lower() == "true"}


def test_the_default_work_list_is_the_pipelines_selection_at_every_release(db, backend):
    """`worklist` with no flag: exactly the exposures each release selected, with its asn_types (on SQLite
    the releases that tell each pool's changes, every release with FULL_SWEEP; on PostgreSQL the releases
    of POSTGRESQL_RELEASES)."""
    from l2rules import worklist

    as_of = catalog.releases(db).set_index("version")["rules_as_of"]
    for pool in sorted(POOLS.glob("*.csv")):
        by_point: dict = {}
        for release in (telling_releases(FIXTURE_RELEASES, lambda r: _fixture_selection(r, pool))
                        if backend == "sqlite" else POSTGRESQL_RELEASES):
            by_point.setdefault(as_of[release], []).append(release)
        for releases in by_point.values():
            items = worklist(db, pools=[pool], at=releases[0])
            got = {row.filename: set(row.asn_type.split(";")) for row in items.itertuples()}
            for release in releases:
                assert got == _fixture_selection(release, pool), (pool.stem, release)


def test_the_published_tables_verdict_stays_beside_the_pipelines(db):
    from l2rules import worklist

    every = worklist(db, pools=[POOLS / "pool_010_spec_nirspec_lv2bkg.csv"], include_all=True).set_index("filename")
    table = worklist(db, pools=[POOLS / "pool_010_spec_nirspec_lv2bkg.csv"], include_all=True,
                     source="table").set_index("filename")
    assert (every["table_level2b"] == table["level2b"]).all()
    # the pipeline goes beyond the table: it selects target acquisitions the table does not know
    beyond = every[every["level2b"] & ~every["table_level2b"]]
    assert set(beyond["exp_type"]) == {"NRS_TASLIT", "NRS_TACQ"}
    assert beyond["reason"].str.contains("the published table alone would not select it").all()
    left = every[~every["level2b"] & every["table_level2b"]]
    assert len(left) and left["reason"].str.contains("explain").all()
    selected = every[every["level2b"]]
    assert selected["level2b_input"].str.endswith(("_rate.fits", "_rateints.fits")).all()
    assert selected["association"].str.endswith("_asn.json").all()


def test_worklist_on_the_command_line_is_the_pipelines(db, capsys):
    pool = str(POOLS / "pool_018_all_exptypes.csv")
    assert main(["--db", db, "worklist", pool, "--format", "csv"]) == 0
    frame = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out), dtype=str)
    ami = frame[frame["exp_type"] == "NIS_AMI"]
    assert len(ami) and ami["level2b_input"].str.endswith("_rateints.fits").all()  # as the pipeline names them
    assert main(["--db", db, "worklist", pool, "--associations"]) != 0
    assert "--published" in capsys.readouterr().err


def test_pools_sharing_stems_are_each_evaluated_after_their_load(db, tmp_path):
    """Two pools holding the same FILENAMEs: each answers as it does alone (the later load takes the stems)."""
    from l2rules import worklist

    whole = POOLS / "jw87800_20180412T163456_pool.csv"
    lines = whole.read_text().splitlines()
    part = tmp_path / "images_only.csv"
    part.write_text("\n".join([lines[0], *[line for line in lines[1:] if "|nis_image|" in line.lower()]]) + "\n")
    alone = worklist(db, pools=[whole])
    both = worklist(db, pools=[whole, part])
    assert len(alone) and both[both["pool"] == whole.name]["filename"].tolist() == alone["filename"].tolist()


def test_a_pool_without_candidates_is_a_clear_error_not_an_empty_list(db, tmp_path, capsys):
    from l2rules import worklist
    from l2rules.config import L2RulesError

    pool = tmp_path / "mini.csv"
    pool.write_text("FILENAME,EXP_TYPE\njw1_a_uncal.fits,NRC_IMAGE\njw1_b_uncal.fits,MIR_IMAGE\n")
    with pytest.raises(L2RulesError, match="no ASN_CANDIDATE, TARGETID column.*--published"):
        worklist(db, pools=[pool])
    # asn_generate fails on such a pool (KeyError): asn says why, exit 2, and writes nothing
    assert main(["--db", db, "asn", str(pool), "--output", str(tmp_path / "out")]) == 2
    assert "pool mini.csv: no ASN_CANDIDATE, TARGETID column" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert len(worklist(db, pools=[pool], source="table", store=True)) == 2
    # over every loaded pool, such a pool is said (a warning) and its exposures are on no work list
    inventory.load(db, POOLS / "pool_002_image_miri.csv", progress=False)
    every = worklist(db, include_all=True)
    mini = every[every["pool"] == "mini.csv"]
    assert len(mini) == 2 and not mini["level2b"].any()
    assert mini["reason"].str.startswith("no ASN_CANDIDATE, TARGETID column").all()
    assert set(worklist(db)["pool"]) == {"pool_002_image_miri.csv"}


def test_two_revisions_of_one_day_are_two_points(db):
    """0011 (migration 0009's snapshot, dated) and 0012 (jwst 1.8.0's rules) are both effective 2022-10-10."""
    versions = catalog.versions(db).set_index("revision")
    assert versions.loc["0011", "effective_date"] == versions.loc["0012", "effective_date"]
    diff = catalog.diff_all(db, "0011", "0012", ["asn_rule"])
    assert ("removed", "Asn_MIRLRSTAConfirm") in set(zip(diff["change"], diff["key"]))
    at_0011 = catalog.table_rows(db, "asn_rule", at="0011")
    assert "Asn_MIRLRSTAConfirm" in set(at_0011["name"])


@pytest.mark.parametrize("spelling", ["1.16.1", "v1.16.1", "jwst 1.16.1", "jwst-1.16.1", "jwst==1.16.1",
                                      "JWST 1.16.1"])
def test_releases_as_users_write_them(db, spelling):
    assert points.resolve(db, spelling) == points.resolve(db, points.Named("release", "1.16.1"))


def test_a_seed_file_with_a_repeated_key_is_refused_with_its_line(tmp_path):
    path = tmp_path / "asn_rule.csv"
    text = (catalog.SEED_TABLES["asn_rule"].path).read_text().splitlines()
    path.write_text("\n".join([*text, text[1]]) + "\n")
    with pytest.raises(catalog.CatalogError, match=rf"{path.name}:{len(text) + 1}: the key \(name="):
        catalog.read_table_seed("asn_rule", path)


def test_history_by_an_integer_key_and_a_partial_seed_directory(db, tmp_path):
    history = catalog.history(db, "3", table="asn_optical_path")
    assert set(history["id"]) == {3}
    some = tmp_path / "seeds"
    some.mkdir()
    shutil.copy(REPO / "seeds" / "asn_rule.csv", some / "asn_rule.csv")
    assert catalog.check_all(db, some).empty  # only the files it has are compared


def test_impact_decides_enters_and_leaves_on_science(db):
    """jwst 1.9.4 made NIRSpec imprint exposures the science of associations of their own (JP-3079):
    jw_00002 of pool_017 enters the work list, though it was already an imprint member before."""
    pool = POOLS / "pool_017_spec_nirspec_lv2imprint.csv"
    exposures, _ = association.impact(db, "1.9.0", "1.9.4", pools=[pool])
    row = exposures.set_index("filename").loc["jw_00002_uncal.fits"]
    assert row["change"] == "enters" and row["role_to"] and "science" in row["role_to"].split(";")


def test_mos_nods_without_numdthpt_by_release(db, tmp_path):
    """jwst before 1.16.0 placed a MOS nod by PATT_NUM and SUBPXPTS alone; from 1.16.0 the overlap test
    also needs NUMDTHPT, and a nod without it overlaps none. jp3505's pool (nods at PATT_NUM 1 and 2 share
    a primary position, 4 does not) with NUMDTHPT blanked: at 1.15.0 the nods at 1 and 2 are still not each
    other's background, at 1.16.0 they are."""
    source = CHANGES / "pools" / "jp3505_nrs_msa_compromise_dither.csv"
    lines = [line for line in source.read_text().splitlines() if not line.startswith("#")]
    header = lines[0].split("|")
    column = header.index("numdthpt")
    rows = [line.split("|") for line in lines[1:]]
    for row in rows:
        row[column] = "null"
    pool = tmp_path / "jp3505_no_numdthpt.csv"
    pool.write_text("\n".join("|".join(row) for row in [header, *rows]) + "\n")
    pool_id = inventory.load(db, pool, progress=False).pool_id

    def backgrounds(release: str) -> dict[str, set[str]]:
        made = {}
        for asn in association.associations(db, pool_id, at=release):
            science = next(m["expname"] for m in asn.members if m["exptype"] == "science")
            made[science[:9]] = {m["expname"][:9] for m in asn.members if m["exptype"] == "background"}
        return made

    assert backgrounds("1.15.0") == {"jw_350501": {"jw_350503"}, "jw_350502": {"jw_350503"},
                                     "jw_350503": {"jw_350501", "jw_350502"}}
    assert backgrounds("1.16.0") == {"jw_350501": {"jw_350502", "jw_350503"},
                                     "jw_350502": {"jw_350501", "jw_350503"},
                                     "jw_350503": {"jw_350501", "jw_350502"}}
