"""Level 2b associations (issue 7): conformance with the jwst pipeline's own, on SQLite and PostgreSQL.

The references in tests/data/reference were made by jwst 3.0.0 (see the README there); the
tests compare with them without installing jwst.
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from l2rules import association, inventory, migrate, schema
from l2rules.cli import main

DATA = Path(__file__).parent / "data"
POOLS = sorted((DATA / "pools").glob("*.csv"))
REFS = DATA / "reference"
PG_URL = os.environ.get("L2RULES_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _sqlite(tmp_path_factory):
    path = tmp_path_factory.mktemp("asn") / "catalog.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    return engine, None


def _postgres():
    url = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1) if PG_URL.startswith("postgresql://") else PG_URL
    name = f"l2rules_asn_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={name}"})
    migrate.upgrade(engine)

    def drop():
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()
    return engine, drop


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request, tmp_path_factory):
    eng, drop = _sqlite(tmp_path_factory) if request.param == "sqlite" else _postgres()
    yield eng
    if drop:
        drop()


def _reference(name):
    data = json.loads((REFS / f"{name}.json").read_text())["associations"]
    return Counter((a["asn_id"], a["asn_rule"], a["asn_type"], a["products"][0]["name"],
                    frozenset(tuple(m) for m in a["products"][0]["members"])) for a in data)


def _mine(asns):
    return Counter((a.asn_id, a.asn_rule, a.asn_type, a.product,
                    frozenset((m["expname"], m["exptype"]) for m in a.members)) for a in asns)


@pytest.mark.parametrize("pool", POOLS, ids=[p.stem for p in POOLS])
def test_associations_equal_the_pipelines(engine, pool):
    result = inventory.load(pool, engine, progress=False)
    mine = _mine(association.associations(engine, result.pool_id))
    ref = _reference(pool.stem)
    assert mine - ref == Counter() and ref - mine == Counter()


@pytest.mark.parametrize("pool", POOLS, ids=[p.stem for p in POOLS])
def test_selected_exposures_equal_the_pipelines(engine, pool):
    result = inventory.load(pool, engine, progress=False)
    science: dict[str, set] = {}
    for a in association.associations(engine, result.pool_id):
        for m in a.members:
            if m["exptype"] == "science":
                science.setdefault(inventory.exposure_stem(m["expname"]), set()).add((a.asn_type, a.asn_rule))
    with open(REFS / f"{pool.stem}.per_exposure.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            got = science.get(inventory.exposure_stem(row["filename"]).lower(), set())
            assert bool(got) == (row["selected"] == "True"), row["filename"]
            assert {t for t, _ in got} == set(filter(None, row["asn_types"].split(";"))), row["filename"]
            assert {r for _, r in got} == set(filter(None, row["asn_rules"].split(";"))), row["filename"]


def test_explain_selected_and_not(engine):
    pool = DATA / "pools" / "pool_018_all_exptypes.csv"
    inventory.load(pool, engine, progress=False)
    frame = association.explain(engine, "jw_00063_uncal.fits", "pool_018_all_exptypes.csv")
    image = frame[frame["rule"] == "Asn_Lv2Image"].iloc[0]
    assert bool(image["selected"]) and "_image2_" in image["reason"]
    # FGS also holds for jw_00063, but the pipeline keeps the identical Image association
    fgs = frame[frame["rule"] == "Asn_Lv2FGS"].iloc[0]
    assert not fgs["selected"] and "duplicate" in fgs["reason"]
    # a NIRCam WFSS grism without a direct image: conditions hold, no association
    frame = association.explain(engine, "jw_00002_uncal.fits")
    wfss = frame[frame["rule"] == "Asn_Lv2WFSSNRC"].iloc[0]
    assert not wfss["selected"] and "direct image" in wfss["reason"]


def test_explain_names_the_first_failing_condition(engine):
    inventory.load(DATA / "pools" / "pool_010_spec_nirspec_lv2bkg.csv", engine, progress=False)
    frame = association.explain(engine, "jw_00001_uncal.fits")
    fss = frame[(frame["rule"] == "Asn_Lv2NRSFSS")].iloc[0]
    assert not fss["selected"] and fss["reason"].startswith("fails sci_type eq science")


def test_explain_unknown_exposure(engine):
    with pytest.raises(association.AssociationError):
        association.explain(engine, "jw_99999_uncal.fits")


def test_pool_without_candidates_makes_nothing(engine, tmp_path):
    pool = tmp_path / "nocand.csv"
    pool.write_text("FILENAME|PROGRAM|EXP_TYPE|TARGETID|INSTRUME|DETECTOR|FILTER|PNTGTYPE\n"
                    "jw_77001_uncal.fits|77|NRC_IMAGE|1|NIRCAM|NRCA1|F200W|science\n")
    result = inventory.load(pool, engine, progress=False)
    assert association.associations(engine, result.pool_id) == []
    frame = association.explain(engine, "jw_77001_uncal.fits")
    assert "asn_candidate" in frame["reason"].iloc[0].lower()


def test_asn_cli_writes_pipeline_files(engine, tmp_path, capsys):
    out = tmp_path / "asn"
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "postgresql":
        pytest.skip("the CLI is exercised on SQLite; the same library call runs on PostgreSQL above")
    assert main(["--db", url, "asn", str(DATA / "pools" / "pool_019_niriss_wfss.csv"), "--output", str(out)]) == 0
    files = sorted(out.glob("*_asn.json"))
    assert len(files) == 16
    assert all(f.name.startswith("jw99009-o001_") or f.name.startswith("jw99009-c") for f in files)
    doc = json.loads(files[0].read_text())
    assert {"asn_type", "asn_rule", "asn_id", "asn_pool", "program", "products"} <= set(doc)
    assert {"expname", "exptype"} <= set(doc["products"][0]["members"][0])
    assert files[0].name == f"jw{doc['program']}-{doc['asn_id']}_{doc['asn_type']}_00001_asn.json" or \
        files[0].name.startswith(f"jw{doc['program']}-{doc['asn_id']}_{doc['asn_type']}_")


def test_catalog_rows_are_consistent(engine):
    """Every condition and key names a column the engine reads; every set and rule exists."""
    with engine.connect() as conn:
        sets = set(conn.execute(sa.select(schema.asn_value_set.c.set_name).distinct()).scalars())
        paths = set(conn.execute(sa.select(schema.asn_optical_path.c.path_kind).distinct()).scalars())
        for c in conn.execute(sa.select(schema.asn_condition)):
            assert c.column_name in association.ACCESSIBLE, c
            if c.operator in ("in_set", "not_in_set"):
                assert c.value in sets, c
            if c.operator in ("path", "not_path"):
                assert c.value in paths, c
        for k in conn.execute(sa.select(schema.asn_companion_key)):
            assert k.column_name in association.ACCESSIBLE, k
        for r in conn.execute(sa.select(schema.asn_rule)):
            assert r.science_set is None or r.science_set in sets, r


def test_migration_0008_downgrades_and_upgrades(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("one backend is enough for the round trip; see test_migration_roundtrip_postgres")
    migrate.downgrade(engine, "0007")
    assert "asn_rule" not in sa.inspect(engine).get_table_names()
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.asn_rule)).scalar() == 22


@pytest.mark.postgres
def test_migration_roundtrip_postgres():
    eng, drop = _postgres()
    try:
        migrate.downgrade(eng, "0007")
        assert "asn_condition" not in sa.inspect(eng).get_table_names()
        migrate.upgrade(eng)
        assert "asn_condition" in sa.inspect(eng).get_table_names()
    finally:
        drop()


def test_schema_matches_migrations_for_association_tables(engine):
    """``alembic check`` for the asn_* tables: schema.py and migration 0008 agree on each backend."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_server_default": True, "compare_type": True})
        diffs = compare_metadata(ctx, schema.metadata)

    def tables(diff):
        items = diff if isinstance(diff, list) else [diff]
        return {str(part) for item in items for part in item if "asn_" in str(part)}
    assert [d for d in diffs if any(t.startswith("asn_") or "asn_" in t for t in tables(d))] == []
