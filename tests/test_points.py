"""Catalog points: one ``at=`` value, resolved once, by one SELECT, on both backends."""

from __future__ import annotations

import datetime as dt
import warnings

import pytest
import sqlalchemy as sa

import l2rules
from l2rules import association, catalog, points
from l2rules.config import CatalogError, get_engine
from l2rules.points import Named, Point


def _statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: seen.append(statement))
    return seen


def test_each_kind_of_name_resolves_with_one_select(db):
    engine = get_engine(db)
    releases = catalog.releases(db).set_index("version")
    versions = catalog.versions(db).set_index("revision")
    seen = _statements(engine)
    release = points.resolve(engine, "1.16.1")
    revision = points.resolve(engine, "0011")
    day = points.resolve(engine, "2024-06-01")
    assert len(seen) == 3  # one round trip each
    assert release == Point(points.as_date(releases.loc["1.16.1", "rules_as_of"]))
    assert str(release) == "jwst 1.16.1"
    assert revision == Point(points.as_date(versions.loc["0011", "effective_date"]), int(versions.loc["0011", "seq"]))
    assert str(revision) == "version 0011"
    assert day == Point(dt.date(2024, 6, 1)) and str(day) == "as of 2024-06-01"
    assert points.resolve(engine, dt.date(2024, 6, 1)) == day
    assert points.resolve(engine, day) is day  # a resolved point is not looked up again
    assert points.resolve(engine, None) is None  # the head


def test_a_named_kind_accepts_only_its_own(db):
    with pytest.raises(CatalogError, match="unknown pipeline release '9.9.9'; known: 1.8.0, 1.8.1"):
        points.resolve(db, Named("release", "9.9.9"))
    with pytest.raises(CatalogError, match="unknown catalog version '1.16.1'"):
        points.resolve(db, Named("revision", "1.16.1"))
    with pytest.raises(CatalogError, match="not a date"):
        points.resolve(db, Named("date", "1.16.1"))
    with pytest.raises(CatalogError, match="no rules were in force on 2000-01-01"):
        points.resolve(db, "2000-01-01")
    with pytest.raises(CatalogError, match="unknown pipeline release '7.0.0'"):
        points.resolve(db, "7.0.0")  # written as a release: not read as something else


def test_the_cli_flags_name_one_point():
    assert points.named() is None
    assert points.named(release="1.16.1") == Named("release", "1.16.1")
    assert points.named(as_of=dt.date(2024, 1, 2)) == dt.date(2024, 1, 2)
    with pytest.raises(CatalogError, match="name one catalog point"):
        points.named(as_of="2024-01-01", release="1.16.1")


def test_every_verb_takes_at(db, pool_path):
    """The same point named three ways gives the same answer, through the module functions and Catalog."""
    same_day = catalog.releases(db).set_index("version").loc["1.16.1", "rules_as_of"]
    by_release = catalog.table_rows(db, "asn_rule", at="1.16.1")
    pd_equal = by_release.equals
    assert pd_equal(catalog.table_rows(db, "asn_rule", at=str(same_day)))
    assert pd_equal(l2rules.Catalog(db).table_rows("asn_rule", at=Named("release", "jwst 1.16.1")))
    pool = l2rules.load(db, pool_path("pool_007_spec_miri.csv")).pool_id
    names = {a.filename for a in association.associations(db, pool, at="1.16.1")}
    resolved = points.resolve(db, "1.16.1")
    assert names and names == {a.filename for a in l2rules.Catalog(db).associations(pool, at=resolved)}
    assert "catalog at jwst 1.16.1" in association.associations(db, pool, at="1.16.1")[0].constraints


def test_the_old_keywords_still_work_and_warn(db):
    with pytest.warns(DeprecationWarning, match=r"rules\(pipeline=...\) is deprecated; use at="):
        old = catalog.rules(db, pipeline="1.16.1")
    assert old.equals(catalog.rules(db, at="1.16.1"))
    with pytest.warns(DeprecationWarning):
        assert catalog.rules(db, version="0002").equals(catalog.rules(db, at="0002"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        catalog.rules(db, at="2019-01-01")  # the new spelling warns nothing
    with pytest.raises(CatalogError, match="name one catalog point"):
        catalog.rules(db, at="1.16.1", as_of="2019-01-01")
