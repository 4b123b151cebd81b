"""Catalog points: where in the rules' history a question is asked.

A point is a day, the rules in force on it, and within that day the catalog versions up to one
revision (two revisions effective the same day are still two points). A user names a point by a
date, a catalog revision or a jwst pipeline release; every function that answers at a point takes
that name as one value, ``at=``, and resolves it here once, with one SELECT. No point (``at=None``)
is the head.

    >>> import l2rules
    >>> l2rules.rules(at="1.16.1")            # doctest: +SKIP   a release
    >>> l2rules.rules(at="2019-01-01")        # doctest: +SKIP   a date
    >>> l2rules.rules(at="0011")              # doctest: +SKIP   a catalog revision
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar, Union

import sqlalchemy as sa

from . import schema
from .config import DB, CatalogError, get_engine

Kind = Literal["date", "revision", "release"]


@dataclass(frozen=True)
class Point:
    """A resolved catalog point: ``day``, and within it the catalog versions up to ``seq`` (all when None).

    ``label`` says how it was named (``jwst 1.16.1``, ``version 0011``, ``as of 2019-01-01``); two points
    of the same day and seq are equal however they were named.
    """

    day: dt.date
    seq: int | None = None
    label: str = field(default="", compare=False)
    #: The catalog version last reached at the point (its revision), when :func:`resolve` found it: the rules
    #: in force at a point are those of the versions up to it, so points that reach the same last version
    #: name the same rules (``--as-of`` a day and ``--catalog-version`` the version in force on it).
    reached: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.label or str(self.day)

    @property
    def key(self) -> str:
        """The point as stored answers are keyed (``level2b_answer_at.point``): the version last reached, so
        one set of rules is stored once however its point is named; the day and seq when that is unknown."""
        if self.reached is not None:
            return f"version:{self.reached}"
        return f"{self.day.isoformat()}:{'' if self.seq is None else self.seq}"


@dataclass(frozen=True)
class Named:
    """A point as a user names it, of one kind only (``--as-of``, ``--catalog-version``, ``--pipeline``):
    a text that must be that kind's, where a bare string may be any of the three."""

    kind: Kind
    text: str


#: What ``at=`` takes: a resolved point, a named one, a date, or a text naming a revision, a release or a
#: date (tried in that order); None is the head.
At = Union[Point, Named, str, dt.date, None]

#: A release as users write it: 1.16.1, v1.16.1, jwst 1.16.1, jwst-1.16.1, jwst==1.16.1, JWST 1.16.1.
_RELEASE = re.compile(r"\s*(?:jwst\s*(?:==|=|-|\s)?\s*)?v?(\d+\.\d+\.\d+)\s*", re.IGNORECASE)


def release_name(text: str) -> str | None:
    """The release version ``text`` names (``"1.16.1"``), or None when it names none."""
    match = _RELEASE.fullmatch(str(text))
    return match.group(1) if match else None


def version_key(version: str) -> tuple:
    """A release's version as numbers, so that 1.10.0 comes after 1.9.4."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"[.]", str(version)))


def as_date(value) -> dt.date:
    """A date from what a driver returns for a DATE column (SQLite may give the ISO text)."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def parse_date(value: str | dt.date) -> dt.date:
    """A day: a date, ``YYYY-MM-DD`` or ``today``."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip().lower()
    if text == "today":
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CatalogError(f"not a date (YYYY-MM-DD), a known revision or a pipeline release: {value!r}") from None


def named(as_of: str | dt.date | None = None, revision: str | None = None,
          release: str | None = None) -> Named | dt.date | None:
    """The one point the CLI's ``--as-of``, ``--catalog-version`` and ``--pipeline`` name (None: the head)."""
    given = [(kind, value) for kind, value in (("date", as_of), ("revision", revision), ("release", release))
             if value is not None]
    if len(given) > 1:
        raise CatalogError("name one catalog point: a date, a catalog revision or a pipeline release")
    if not given:
        return None
    kind, value = given[0]
    return value if isinstance(value, dt.date) else Named(kind, str(value))  # type: ignore[arg-type]  # (a Kind)


def resolve(db: DB | sa.Connection, at: At) -> Point | None:
    """The catalog point ``at`` names; None (the head) for None. A text is a catalog revision if the
    catalog has one of that name, else a release if it is written as one, else a date."""
    if at is None or isinstance(at, Point):
        return at
    kind, text = (at.kind, at.text) if isinstance(at, Named) else ("date" if isinstance(at, dt.date) else None, at)
    release = release_name(text) if kind in (None, "release") and not isinstance(text, dt.date) else None
    revision = str(text).strip() if kind in (None, "revision") else None
    v, r = schema.catalog_version, schema.pipeline_release
    # one round trip: the revision of that name, the release of that version, and every version (a few
    # dozen rows: the first day, and the version last reached at the point found)
    query = sa.union_all(
        sa.select(sa.literal("revision").label("kind"), v.c.effective_date.label("day"), v.c.seq,
                  v.c.revision.label("name"))
        .where(v.c.revision == revision),
        sa.select(sa.literal("release"), r.c.rules_as_of, sa.null(), sa.null()).where(r.c.version == release,
                                                                                     r.c.valid_to.is_(None)),
        sa.select(sa.literal("version"), v.c.effective_date, v.c.seq, v.c.revision))
    rows = _execute(db, query)
    found = {row.kind: row for row in rows if row.kind != "version"}
    versions = [(as_date(row.day), int(row.seq), row.name) for row in rows if row.kind == "version"]
    if revision is not None and "revision" in found:
        day, seq = as_date(found["revision"].day), int(found["revision"].seq)
        return Point(day, seq, f"version {revision}", last_reached(versions, day, seq))
    if release is not None and "release" in found:
        day = as_date(found["release"].day)
        return Point(day, None, f"jwst {release}", last_reached(versions, day, None))
    if kind == "revision":
        raise CatalogError(f"unknown catalog version {text!r}; known: {', '.join(_known(db, v.c.revision))}")
    if kind == "release" or release is not None:
        known = sorted(_known(db, r.c.version, r.c.valid_to.is_(None)), key=version_key)
        raise CatalogError(f"unknown pipeline release {text!r}; known: {', '.join(known)}")
    day = parse_date(text)
    first = min((effective for effective, _, _ in versions), default=None)
    if first is None or day < first:
        raise CatalogError(f"no rules were in force on {day}: the first catalog version is effective {first}")
    return Point(day, None, f"as of {day}", last_reached(versions, day, None))


def last_reached(versions: list[tuple[dt.date, int, str]], day: dt.date, seq: int | None) -> str | None:
    """Of the catalog versions (effective day, seq, revision), the revision of the last one reached at the
    point (day, seq), as :func:`in_force` reaches them: an earlier day, or that day up to seq (every one of
    that day when seq is None). A revision written later may take effect earlier, so the last by (day, seq)."""
    reached = [(effective, number, name) for effective, number, name in versions
               if effective < day or (effective == day and (seq is None or number <= seq))]
    return max(reached)[2] if reached else None


def _execute(db: DB | sa.Connection, query: sa.Executable) -> Sequence[sa.Row]:
    if isinstance(db, sa.Connection):
        return db.execute(query).all()
    with get_engine(db).connect() as conn:
        return conn.execute(query).all()


def _known(db: DB | sa.Connection, column: sa.Column, *where: sa.ColumnElement[bool]) -> list[str]:
    """The names a point could have been (only for the error message)."""
    return [row[0] for row in _execute(db, sa.select(column).where(*where).order_by(column))]


def in_force(table: sa.Table | sa.FromClause, when: Point | dt.date | None) -> sa.ColumnElement[bool]:
    """Rows of a dated table in force at point ``when`` (a :class:`Point` or a day; the head rows when None)."""
    if when is None:
        return table.c.valid_to.is_(None)
    point = when if isinstance(when, Point) else Point(when)
    v = schema.catalog_version
    start, end = v.alias("valid_from_version"), v.alias("valid_to_version")
    day = sa.literal(point.day, sa.Date)

    def reached(version):  # the version is at or before the point: an earlier day, or that day up to seq
        same_day = version.c.effective_date == day
        if point.seq is not None:
            same_day = sa.and_(same_day, version.c.seq <= point.seq)
        return sa.or_(version.c.effective_date < day, same_day)

    # the versions reached, one uncorrelated list each (a correlated EXISTS was planned once per rule row)
    started = table.c.valid_from.in_(sa.select(start.c.revision).where(reached(start)))
    ended = table.c.valid_to.in_(sa.select(end.c.revision).where(reached(end)))
    return sa.and_(started, sa.or_(table.c.valid_to.is_(None), sa.not_(ended)))


F = TypeVar("F", bound=Callable)

#: The keywords that named a point before ``at=`` (each still accepted, with a DeprecationWarning).
_OLD_KEYWORDS = {"as_of": "date", "version": "revision", "pipeline": "release"}


def takes_at(function: F) -> F:
    """Let ``function(..., at=...)`` also be called the old way, ``as_of=``, ``version=`` or ``pipeline=``
    (one of them), warning that those keywords go: code written for earlier l2rules keeps working."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        old = {key: kwargs.pop(key) for key in list(kwargs) if key in _OLD_KEYWORDS}
        old = {key: value for key, value in old.items() if value is not None}
        if old:
            if kwargs.get("at") is not None or len(old) > 1:
                raise CatalogError("name one catalog point: at=, or one of as_of=, version=, pipeline=")
            (key, value), = old.items()
            warnings.warn(f"{function.__name__}({key}=...) is deprecated; use at=... (a date, revision or "
                          "release)", DeprecationWarning, stacklevel=2)
            kwargs["at"] = value if isinstance(value, (dt.date, Point)) else Named(_OLD_KEYWORDS[key], str(value))
        return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
