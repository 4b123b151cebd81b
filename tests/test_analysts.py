"""What an analyst meets in pandas (issue 31): typed views alike on both backends, pools named by name
or id everywhere, the work list's instrument and exposure_id, and a Catalog whose methods say their
parameters."""

from __future__ import annotations

import inspect

import pandas as pd
import pytest
import sqlalchemy as sa

import l2rules
from l2rules import Catalog, schema
from l2rules.config import CatalogError
from l2rules.outputs import dtype_of

MIRI = "pool_002_image_miri.csv"
NIRISS = "jw87800_20180412T163456_pool.csv"  # stems of its own: no takeover of the other's


@pytest.fixture
def catalog(db, pool_path):
    with Catalog(db) as cat:
        cat.run([str(pool_path(MIRI)), str(pool_path(NIRISS))])
        yield cat


def test_views_typed_from_one_map(catalog):
    """Each view's frame has the view's columns, in order, each with the dtype its declared type gives: the
    same on SQLite, which types no computed column, as on PostgreSQL."""
    for name, types in schema.VIEW_COLUMNS.items():
        frame = catalog.view(name)
        assert list(frame.columns) == list(types), name
        assert len(frame) > 0 or name == "v_unmatched", name  # (every EXP_TYPE of these pools is known)
        for column, sql_type in types.items():
            assert str(frame[column].dtype) == dtype_of(column, sql_type), (name, column, frame[column].dtype)
    # the counts (sums over CASE on SQLite: no declared type) come back as integers, not floats or objects
    assert str(catalog.view("v_exposure_counts")["selected"].dtype) == "Int64"
    with pytest.raises(CatalogError, match="no view 'v_nothing'; the views: v_current_rules"):
        catalog.view("v_nothing")


@pytest.mark.postgres
def test_view_columns_are_postgresqls(postgres):
    """schema.VIEW_COLUMNS names every column PostgreSQL describes for the views at head, in its order,
    with a type of the same kind: a migration that changes a view without the map fails here."""
    url = postgres.migrated()
    inspector = sa.inspect(l2rules.get_engine(url))
    kinds = (sa.Boolean, sa.Integer, sa.DateTime, sa.String)
    assert set(schema.VIEW_COLUMNS) == {v for v in inspector.get_view_names() if v.startswith("v_")}
    for name, types in schema.VIEW_COLUMNS.items():
        described = {c["name"]: c["type"] for c in inspector.get_columns(name)}
        assert list(described) == list(types), name
        for column, sql_type in types.items():
            kind = next(k for k in kinds if isinstance(described[column], k))
            assert isinstance(sql_type, kind), (name, column, described[column])


def test_pools_by_name_or_id(catalog, pool_path):
    by_name = catalog.exposures(pool=MIRI)
    pool_id = int(by_name["pool_id"].iloc[0])
    for key in (pool_id, str(pool_id)):  # the CLI passes an id as digits
        pd.testing.assert_frame_equal(catalog.exposures(pool=key), by_name)
    assert set(by_name["pool"]) == {MIRI}
    for unknown in ("pool_999.csv", 999, "999"):
        with pytest.raises(CatalogError, match="no loaded pool"):
            catalog.exposures(pool=unknown)
    first = by_name["filename"].iloc[0]
    assert catalog.explain(first, pool_id).equals(catalog.explain(first, MIRI))
    with pytest.raises(CatalogError, match="no loaded pool 999"):
        catalog.explain(first, 999)
    assert catalog.associations(pool_id) == catalog.associations(MIRI)


@pytest.mark.parametrize("source", ["pipeline", "table"])
def test_worklist_instrument_and_exposure_id(catalog, pool_path, tmp_path, source):
    """``exposure_id`` is the exposures frame's ``id`` (and the views'); ``instrument`` the views'; a
    pool answered without being loaded has no ids (a scratch catalog's would name nothing)."""
    items = catalog.worklist(source=source)
    assert items["exposure_id"].dtype == "Int64" and items["exposure_id"].notna().all()
    exposures = catalog.exposures().set_index("id")
    assert (exposures.loc[items["exposure_id"].tolist(), "filename"].tolist() == items["filename"].tolist())
    assert set(items["instrument"]) == {"MIRI", "NIRISS"}
    if source == "pipeline":
        status = catalog.view("v_exposure_status").set_index("exposure_id")
        assert status.loc[items["exposure_id"].tolist(), "instrument"].tolist() == items["instrument"].tolist()
    # a pool file answered in a scratch catalog: instrument, and no exposure ids
    other = pool_path("pool_021_tso.csv")
    previewed = catalog.worklist(pools=[str(other)], source=source)
    assert len(previewed) and previewed["exposure_id"].isna().all()
    assert previewed["instrument"].notna().all()
    # streamed to CSV: the same columns, the ids as integers
    out = tmp_path / "items.csv"
    catalog.write_worklist(out, source=source)
    written = pd.read_csv(out)
    assert list(written.columns) == list(items.columns)
    assert written["exposure_id"].tolist() == items["exposure_id"].tolist()


def test_catalog_methods_say_their_parameters():
    """Every Catalog method forwarding to a library function takes that function's parameters, by name,
    with its defaults (no ``**options`` hiding them from an editor): checked against the function."""
    import importlib

    from l2rules import association, catalog, inventory, report, runs

    work_list = importlib.import_module("l2rules.worklist")  # the package's `worklist` is the function
    library = {
        "load": inventory.load, "exposures": inventory.exposures, "worklist": work_list.worklist,
        "write_worklist": work_list.write_worklist, "impact": work_list.impact, "asn": association.asn,
        "explain": association.explain, "associations": association.associations, "run": runs.run,
        "runs": runs.runs, "items": runs.items, "report": report.report, "view": report.view,
        "rules": catalog.rules, "conditions": catalog.conditions,
    }
    for name, function in library.items():
        method = inspect.signature(getattr(Catalog, name))
        assert not any(p.kind is p.VAR_KEYWORD for p in method.parameters.values()), name
        wanted = {p.name: p.default for p in inspect.signature(inspect.unwrap(function)).parameters.values()
                  if p.name != "db" and (p.name != "stream" or name == "report")}
        got = {p.name: p.default for p in method.parameters.values() if p.name != "self"}
        assert got == wanted, name
