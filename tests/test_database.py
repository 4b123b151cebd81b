"""``Catalog(db)``: the database opened once, the library's verbs as its methods."""

from __future__ import annotations

import importlib
import inspect

import pandas as pd

import l2rules
from l2rules import Catalog, catalog, inventory, runs
from l2rules import association as association_api

from .conftest import POOLS

#: The library functions whose subject is the catalog database: each is a method of Catalog.
VERBS = {
    catalog: ["rules", "conditions", "table_rows", "history", "versions", "releases"],
    inventory: ["load", "exposures", "rejections"],
    importlib.import_module("l2rules.worklist"): ["worklist", "write_worklist", "evaluate", "unmatched", "impact"],
    association_api: ["associations", "asn", "explain"],
    runs: ["run", "runs", "items"],
}


def test_every_verb_of_the_library_is_a_method():
    for module, names in VERBS.items():
        for name in names:
            function = getattr(module, name)
            assert "db" in inspect.signature(function).parameters, f"{module.__name__}.{name} takes no db"
            assert callable(getattr(Catalog, name, None)), f"Catalog has no {name}()"


def test_db_is_the_first_parameter_of_every_verb():
    """One position for ``db`` everywhere: ``load(db, source)``, ``run(db, pools)``, ``worklist(db, ...)``."""
    for module, names in VERBS.items():
        for name in [*names, *(["load_many"] if module is inventory else [])]:
            assert list(inspect.signature(getattr(module, name)).parameters)[0] == "db", f"{module.__name__}.{name}"
    for name in l2rules.__all__:
        function = getattr(l2rules, name)
        if inspect.isfunction(function) and "db" in inspect.signature(function).parameters:
            assert list(inspect.signature(function).parameters)[0] == "db", name


def test_the_package_exports_catalog():
    assert "Catalog" in l2rules.__all__ and l2rules.Catalog is Catalog


def test_methods_answer_as_the_functions_do(db, tmp_path):
    pool = POOLS / "pool_002_image_miri.csv"
    with Catalog(db) as cat:
        assert cat.revision is not None
        result = cat.load(pool)
        assert result.inserted == 8
        pd.testing.assert_frame_equal(cat.worklist(), l2rules.worklist(db))
        pd.testing.assert_frame_equal(cat.exposures(), l2rules.exposures(db))
        pd.testing.assert_frame_equal(cat.rules(exp_type="MIR_IMAGE"), l2rules.rules(db, exp_type="MIR_IMAGE"))
        pd.testing.assert_frame_equal(cat.versions(), l2rules.versions(db))
        made = cat.associations(result.pool_id)
        assert [a.asn_id for a in made] == [a.asn_id for a in association_api.associations(db, result.pool_id)]
        record = cat.run([pool])
        assert record["status"] == "succeeded"
        assert list(cat.runs()["run_id"]) == [record["run_id"]]
        assert cat.diff("1.8.0", "3.0.0").equals(catalog.diff_all(db, "1.8.0", "3.0.0"))


def test_init_creates_a_new_embedded_catalog(tmp_path):
    path = tmp_path / "new.db"
    cat = Catalog(f"sqlite:///{path}")
    assert cat.revision is None
    before, after = cat.init()
    assert before is None and after == cat.revision and path.exists()
    assert repr(cat) == f"Catalog('sqlite:///{path}')"


def test_closed_catalog_reconnects(db):
    cat = Catalog(db)
    first = cat.versions()
    cat.close()
    pd.testing.assert_frame_equal(cat.versions(), first)
