"""The rules catalog: the rules in force, their history, diffs, drift checks and new revisions.

Every function takes ``db`` (a URL, an Engine, or None for the configured
default) and returns a pandas DataFrame, so the same answers serve the CLI,
notebooks and reports.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from . import schema
from ._lazy import pandas as pd
from ._revision_template import TEMPLATE
from .config import DB, CatalogError, project_file
from .migrate import alembic_config, require_migrated, upgrade
from .operators import check as check_operator
from .outputs import query_frame, to_frame, typed
from .points import At, Point, as_date, in_force, parse_date, release_name, resolve, takes_at, version_key

#: The columns that describe a rule, in the seed CSV's order.
RULE_COLUMNS = ["exp_type", "special", "instrument", "exptype", "level2b", "asn_type", "note"]
KEY = ["exp_type", "special"]
#: The SQL type of each column of the frames this module returns (their dtypes follow: ``outputs.typed``).
RULE_TYPES = {c.name: c.type for c in schema.rule.c}
CHANGE_TYPES = {"table": sa.Text(), "change": sa.Text(), "key": sa.Text(), "column": sa.Text(),
                **{k: RULE_TYPES[k] for k in KEY}}  # before/after hold values of any column: Python objects


@dataclass(frozen=True)
class SeedTable:
    """A catalog table seeded from ``seeds/<file>``: its key, its columns in the file's order, their types."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    booleans: tuple[str, ...] = ()
    integers: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    blanks: tuple[str, ...] = ()  # text columns where an empty field is '' (NOT NULL), not NULL
    file: str = ""
    operators: tuple[str, ...] = ()  # the condition operators its ``operator`` column takes (``operators``)

    @property
    def path(self) -> Path:
        return project_file("seeds") / (self.file or f"{self.name}.csv")

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.key)


#: Every table whose rows decide Level 2b processing, each with its seed file. The published table
#: (``rule``, with ``rule_history``; its footnote conditions ``rule_condition``), the pipeline's
#: association rules (``asn_*``), each dated in place, and the pipeline releases as points of the catalog.
SEED_TABLES: dict[str, SeedTable] = {t.name: t for t in (
    SeedTable("rule", tuple(KEY), tuple(RULE_COLUMNS), booleans=("level2b",), file="level2b_rules.csv"),
    SeedTable("rule_condition", ("exp_type", "special", "pool_column", "operator", "value"),
              ("exp_type", "special", "pool_column", "operator", "value", "note"), blanks=("special", "note"),
              file="level2b_rule_conditions.csv", operators=schema.CONDITION_OPERATORS),
    SeedTable("asn_rule", ("name",), ("name", "asn_type", "science_set", "forced_science", "nod_overlap", "wfss",
                                      "rate_policy", "imprint_pruning", "note", "position"),
              booleans=("forced_science", "imprint_pruning"), integers=("position",)),
    SeedTable("asn_condition", ("rule_name", "subject", "alt", "seq"),
              ("rule_name", "subject", "alt", "seq", "column_name", "operator", "value"), integers=("alt", "seq"),
              operators=schema.ASN_CONDITION_OPERATORS),
    SeedTable("asn_constraint", ("name", "seq"), ("name", "seq", "column_name", "operator", "value"),
              integers=("seq",), operators=schema.ASN_CONDITION_OPERATORS[:-1]),  # groups do not nest
    SeedTable("asn_companion", ("rule_name", "kind"),
              ("rule_name", "kind", "source", "role", "exp_type_set", "attach")),
    SeedTable("asn_companion_key", ("rule_name", "kind", "column_name"), ("rule_name", "kind", "column_name", "match")),
    SeedTable("asn_value_set", ("set_name", "value"), ("set_name", "value")),
    SeedTable("asn_member_type", ("exp_type",), ("exp_type", "member_type")),
    SeedTable("asn_optical_path", ("id",), ("id", "path_kind", "slit_class", "opmode", "grating", "filter", "pupil",
                                            "lamp", "detector", "allowed"), booleans=("allowed",), integers=("id",)),
    SeedTable("asn_candidate_policy", ("candidate_type", "rule_name"),
              ("candidate_type", "rule_name", "requirement", "id_pattern")),
    SeedTable("asn_parameter", ("name",), ("name", "value", "note")),
    SeedTable("pipeline_release", ("version",), ("version", "released", "rules_as_of"),
              dates=("released", "rules_as_of")),
)}


# --- the seed CSV -----------------------------------------------------------------------------

def seed_path() -> Path:
    return project_file("seeds") / "level2b_rules.csv"


def read_seed(path: str | Path | None = None) -> pd.DataFrame:
    """The rules of ``seeds/level2b_rules.csv`` (or ``path``), typed like the catalog's (:func:`rules`)."""
    return typed(_read_seed(path), RULE_TYPES)


def _read_seed(path: str | Path | None = None) -> pd.DataFrame:
    """The seed file's rules in the shape the catalog compares: object columns, None for N/A, sorted by key."""
    path = Path(path) if path else seed_path()
    frame = pd.read_csv(path, dtype=object, keep_default_na=False)
    missing = [c for c in RULE_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogError(f"{path}: missing column(s) {', '.join(missing)}")
    bad = frame[~frame["level2b"].str.lower().isin(["true", "false"])]
    if len(bad):
        line = int(bad.index[0]) + 2
        raise CatalogError(f"{path}:{line}: column level2b: expected true or false, got {bad['level2b'].iloc[0]!r}")
    frame["level2b"] = frame["level2b"].str.lower() == "true"
    return _normalised(frame)


def write_seed(frame: pd.DataFrame, path: str | Path) -> None:
    out = frame[RULE_COLUMNS].astype(object).where(frame[RULE_COLUMNS].notna(), None)
    out["level2b"] = out["level2b"].map({True: "true", False: "false"})
    out["asn_type"] = out["asn_type"].fillna("")
    out.to_csv(path, index=False)


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """One shape for rule tables wherever they come from: object columns, None for N/A, sorted by key."""
    frame = frame[RULE_COLUMNS].astype(object)
    frame["level2b"] = frame["level2b"].astype(bool)
    asn = frame["asn_type"]
    frame["asn_type"] = asn.where(asn.notna() & (asn != ""), None)
    return _sorted(frame)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY, kind="stable").reset_index(drop=True)


# --- seed files of every table ----------------------------------------------------------------

def read_table_seed(table: str | SeedTable, path: str | Path | None = None) -> pd.DataFrame:
    """A seed file as the catalog stores it: typed columns, None for empty, sorted by key."""
    spec = SEED_TABLES[table] if isinstance(table, str) else table
    if spec.name == "rule":
        return _read_seed(path)
    path = Path(path) if path else spec.path
    frame = pd.read_csv(path, dtype=object, keep_default_na=False)
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise CatalogError(f"{path}: missing column(s) {', '.join(missing)}")
    frame = frame[list(spec.columns)].astype(object)
    for column in spec.columns:
        for line, text in enumerate(frame[column], start=2):
            try:
                frame.at[line - 2, column] = _typed(spec, column, text)
            except ValueError as exc:
                raise CatalogError(f"{path}:{line}: column {column}: {exc}") from None
    for line, operator in enumerate(frame["operator"] if spec.operators else [], start=2):
        try:  # a name the CHECK constraint refuses, said before a revision is written (an old one: its new name)
            check_operator(operator, spec.operators)
        except ValueError as exc:
            raise CatalogError(f"{path}:{line}: column operator: {exc}") from None
    repeated = frame.duplicated(list(spec.key), keep="first")
    if repeated.any():
        line = int(repeated.idxmax()) + 2
        key = ", ".join(f"{k}={frame.at[line - 2, k]!r}" for k in spec.key)
        raise CatalogError(f"{path}:{line}: the key ({key}) is already on an earlier line: one row per key")
    return _table_sorted(spec, frame)


def _typed(spec: SeedTable, column: str, text: str):
    if text == "":
        return "" if column in spec.blanks else None
    if column in spec.booleans:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    if column in spec.integers:
        return int(text)
    if column in spec.dates:
        return dt.date.fromisoformat(text)
    return text


def write_table_seed(table: str | SeedTable, frame: pd.DataFrame, path: str | Path | None = None) -> None:
    spec = SEED_TABLES[table] if isinstance(table, str) else table
    if spec.name == "rule":
        return write_seed(frame, path or spec.path)
    out = _table_sorted(spec, frame[list(spec.columns)].astype(object))
    for column in spec.booleans:
        out[column] = out[column].map({True: "true", False: "false"})
    out.to_csv(path or spec.path, index=False, date_format="%Y-%m-%d")


def _table_sorted(spec: SeedTable, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.sort_values(list(spec.key), kind="stable").reset_index(drop=True)


# --- catalog versions and points ------------------------------------------------------------------
# A point of the catalog is a day: the rules in force on it are the rows whose ``valid_from`` version
# is effective by then and whose ``valid_to`` version (if any) is not. A catalog revision names its
# effective day, a pipeline release the day its rules are as of; no point at all means the head.

def versions(db: DB = None) -> pd.DataFrame:
    """Every catalog version (rules revision) in effective order (its day, then the order written within
    a day): revision, seq (the order written), effective date, reference, summary, the day recorded."""
    engine = require_migrated(db)
    v = schema.catalog_version
    with engine.connect() as conn:
        return query_frame(conn, sa.select(v).order_by(v.c.effective_date, v.c.seq))


def releases(db: DB = None) -> pd.DataFrame:
    """The pipeline releases the catalog knows, in version order: version, release date, the day its
    rules are as of, and ``same_rules_as``: the first release decided as of the same day (whose Level 2b
    association code it shares), or None when that is itself."""
    engine = require_migrated(db)
    r = schema.pipeline_release
    with engine.connect() as conn:
        frame = query_frame(conn, sa.select(r.c.version, r.c.released, r.c.rules_as_of).where(r.c.valid_to.is_(None)))
    frame = frame.iloc[sorted(range(len(frame)), key=lambda i: version_key(frame["version"].iloc[i]))]
    frame = frame.reset_index(drop=True)
    first = frame.groupby("rules_as_of", sort=False)["version"].transform("first")
    frame["same_rules_as"] = first.where(first != frame["version"], None).astype(frame["version"].dtype)
    return frame


def rules_at(when: Point | None = None) -> sa.Subquery:
    """A subquery with the published table's rules in force on ``when`` (the head ``rule`` table if None)."""
    if when is None:
        return sa.select(schema.rule).subquery("rules")
    h = schema.rule_history
    return sa.select(h.c.id, *(h.c[c] for c in RULE_COLUMNS)).where(in_force(h, when)).subquery("rules")


def conditions_at(when: Point | None = None) -> sa.Subquery:
    c = schema.rule_condition
    return sa.select(c).where(in_force(c, when)).subquery("conditions")


@takes_at
def rules(db: DB = None, *, at: At = None, exp_type: str | None = None, instrument: str | None = None) -> pd.DataFrame:
    """The published table's rules in force now, or at point ``at`` (a date, catalog revision or release)."""
    engine = require_migrated(db)
    return typed(_rules(engine, resolve(engine, at), exp_type, instrument), RULE_TYPES)


def _rules(engine: sa.Engine, when: Point | None, exp_type: str | None = None,
           instrument: str | None = None) -> pd.DataFrame:
    """The rules in force at ``when`` in the shape the catalog compares (see :func:`_normalised`)."""
    r = rules_at(when)
    query = sa.select(*(r.c[c] for c in RULE_COLUMNS)).order_by(r.c.exp_type, r.c.special)
    if exp_type:
        query = query.where(sa.func.upper(r.c.exp_type) == exp_type.upper())
    if instrument:
        query = query.where(sa.func.lower(r.c.instrument) == instrument.lower())
    with engine.connect() as conn:
        frame = to_frame(conn.execute(query), RULE_COLUMNS)
    return _normalised(frame)


@takes_at
def conditions(db: DB = None, *, at: At = None, exp_type: str | None = None) -> pd.DataFrame:
    """The conditions on pool columns that rules in force (at point ``at``) attach to their exposures."""
    engine = require_migrated(db)
    c = conditions_at(resolve(engine, at))
    cols = ["exp_type", "special", "pool_column", "operator", "value", "note"]
    query = sa.select(*(c.c[k] for k in cols)).order_by(c.c.exp_type, c.c.special, c.c.id)
    if exp_type:
        query = query.where(sa.func.upper(c.c.exp_type) == exp_type.upper())
    with engine.connect() as conn:
        return query_frame(conn, query, cols)


@takes_at
def table_rows(db: DB, table: str, *, at: At = None) -> pd.DataFrame:
    """The rows of any seeded table in force now or at point ``at``, shaped like its seed file."""
    spec = _spec(table)
    engine = require_migrated(db)
    when = resolve(engine, at)
    if spec.name == "rule":
        return typed(_rules(engine, when), RULE_TYPES)
    with engine.connect() as conn:
        frame = _table_rows(conn, spec, when)
    return typed(frame, {c.name: c.type for c in schema.metadata.tables[spec.name].c})


def _table_rows(conn: sa.Connection, spec: SeedTable, when: Point | None) -> pd.DataFrame:
    t = schema.metadata.tables[spec.name]
    frame = to_frame(conn.execute(sa.select(*(t.c[c] for c in spec.columns)).where(in_force(t, when))),
                     list(spec.columns))
    for column in spec.booleans:
        frame[column] = frame[column].map(lambda v: None if v is None else bool(v))
    for column in spec.dates:
        frame[column] = frame[column].map(lambda v: None if v is None else as_date(v))
    return _table_sorted(spec, frame)


def tables() -> pd.DataFrame:
    """The rules tables: name, seed file, key."""
    frame = pd.DataFrame([{"table": t.name, "seed": f"seeds/{t.path.name}", "key": ", ".join(t.key)}
                          for t in SEED_TABLES.values()])
    return typed(frame, dict.fromkeys(frame.columns, sa.Text()))


def _spec(table: str) -> SeedTable:
    name = "rule" if table in ("rule", "level2b_rules", "published") else table
    if name not in SEED_TABLES:
        raise CatalogError(f"unknown rules table {table!r}; known: {', '.join(SEED_TABLES)}")
    return SEED_TABLES[name]


def history(db: DB = None, exp_type: str | None = None, *, table: str = "rule") -> pd.DataFrame:
    """Every state of rows of a seeded table, with dates and references.

    For the published table (``rule``), ``exp_type`` picks the EXP_TYPE; for the others it
    picks rows by the first column of their key (a rule name, a set name, a release...).
    """
    spec = _spec(table)
    engine = require_migrated(db)
    t = schema.rule_history if spec.name == "rule" else schema.metadata.tables[spec.name]
    v = schema.catalog_version
    start, end = v.alias("start"), v.alias("end")
    first = t.c[spec.key[0]]
    query = (
        sa.select(*(t.c[c] for c in spec.columns),
                  t.c.valid_from, start.c.effective_date.label("valid_from_date"),
                  start.c.reference.label("valid_from_reference"),
                  t.c.valid_to, end.c.effective_date.label("valid_to_date"))
        .join_from(t, start, start.c.revision == t.c.valid_from)
        .outerjoin(end, end.c.revision == t.c.valid_to)
        .order_by(*(t.c[c] for c in spec.key), start.c.effective_date, start.c.seq)
    )
    if exp_type:
        query = query.where(sa.func.upper(sa.cast(first, sa.String)) == str(exp_type).upper())
    with engine.connect() as conn:
        frame = query_frame(conn, query)
    if exp_type and frame.empty:
        what = "exp_type" if spec.name == "rule" else spec.key[0]
        raise CatalogError(f"no row of {spec.name} with {what} {exp_type!r} in any catalog version")
    return frame


def compare(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Rules of the published table added, removed and changed (one row per changed column), keyed by
    exp_type and special."""
    rows = [{"change": change, **dict(zip(KEY, key)), "column": column, "before": old, "after": new}
            for change, key, column, old, new in _changes(SEED_TABLES["rule"], before, after)]
    return pd.DataFrame(rows, columns=["change", *KEY, "column", "before", "after"])


CHANGE_COLUMNS = ["table", "change", "key", "column", "before", "after"]


def compare_table(spec: SeedTable, before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Rows of one seeded table added, removed and changed (one row per changed column); ``key`` as text."""
    rows = [{"table": spec.name, "change": change, "key": " ".join(str(v) for v in key if v not in (None, "")),
             "column": column, "before": old, "after": new}
            for change, key, column, old, new in _changes(spec, before, after)]
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)


def _changes(spec: SeedTable, before: pd.DataFrame, after: pd.DataFrame):
    """(change, key, column, before, after) for each row added or removed and each column changed, by key."""
    key, values = list(spec.key), list(spec.values)
    old = {tuple(r[k] for k in key): r for r in before.to_dict("records")}
    new = {tuple(r[k] for k in key): r for r in after.to_dict("records")}

    def described(row) -> str:
        return ", ".join(f"{c}={_norm(row[c])}" for c in values if c != "note") or "(row)"

    for k in sorted(old.keys() | new.keys(), key=lambda k: tuple("" if v is None else str(v) for v in k)):
        if k not in new:
            yield "removed", k, None, described(old[k]), None
        elif k not in old:
            yield "added", k, None, None, described(new[k])
        else:
            for column in values:
                a, b = _norm(old[k][column]), _norm(new[k][column])
                if a != b:
                    yield "changed", k, column, a, b


def _norm(value):
    return None if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)) else value


def diff(db: DB, from_point: At, to_point: At) -> pd.DataFrame:
    """The published table's rules added, removed and changed between two points (revision, release or date)."""
    engine = require_migrated(db)
    before, after = (_rules(engine, resolve(engine, p)) for p in (from_point, to_point))
    return typed(compare(before, after), CHANGE_TYPES)


def diff_all(db: DB, from_point: At, to_point: At, tables: list[str] | None = None) -> pd.DataFrame:
    """Rows of every seeded table (or ``tables``) added, removed and changed between two points."""
    engine = require_migrated(db)
    points = [resolve(engine, p) for p in (from_point, to_point)]
    frames = []
    with engine.connect() as conn:
        for spec in (_spec(t) for t in (tables or SEED_TABLES)):
            if spec.name == "rule":
                before, after = (_rules(engine, p) for p in points)
            else:
                before, after = (_table_rows(conn, spec, p) for p in points)
            frames.append(compare_table(spec, before, after))
    return typed(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CHANGE_COLUMNS),
                 CHANGE_TYPES)


# --- drift and new revisions ---------------------------------------------------------------

def check(db: DB = None, seed: str | Path | None = None) -> pd.DataFrame:
    """Where the database's published rules and the seed CSV disagree (empty when they agree)."""
    engine = require_migrated(db)
    drift = compare(_read_seed(seed), _rules(engine, None)).rename(columns={"before": "csv", "after": "database"})
    return typed(drift, CHANGE_TYPES)


def check_all(db: DB = None, seeds: str | Path | None = None, *, seed: str | Path | None = None) -> pd.DataFrame:
    """Where the database and any seed file disagree (empty when all agree).

    ``seeds``: a directory holding the seed files (default: the project's ``seeds/``); ``seed``: the
    published table's file, if elsewhere.
    """
    engine = require_migrated(db)
    frames = []
    with engine.connect() as conn:
        for spec in SEED_TABLES.values():
            path = Path(seeds) / Path(spec.path).name if seeds else None
            if spec.name == "rule" and seed is not None:
                path = Path(seed)
            if path is not None and not path.is_file():
                continue  # a directory with some of the seed files: those it has are checked
            wanted = read_table_seed(spec, path)
            held = _rules(engine, None) if spec.name == "rule" else _table_rows(conn, spec, None)
            frames.append(compare_table(spec, wanted, held))
    drift = pd.concat(frames, ignore_index=True).rename(columns={"before": "seed", "after": "database"})
    return typed(drift, CHANGE_TYPES)


def head_state() -> pd.DataFrame:
    """The published rules that replaying every migration produces, on a scratch SQLite database."""
    return head_tables()["rule"]


def head_tables() -> dict[str, pd.DataFrame]:
    """Every seeded table as replaying every migration leaves it, on a scratch SQLite database."""
    return _replayed().heads


@dataclass
class _Replay:
    """The catalog as replaying every migration leaves it: each seeded table's head rows and every
    row state (with ``valid_from``/``valid_to``), and each catalog version's place in effective order."""

    heads: dict[str, pd.DataFrame]
    states: dict[str, pd.DataFrame]
    order: dict[str, tuple[dt.date, int]]  # revision: (effective date, seq)


def _replayed() -> _Replay:
    """Replay every migration on a scratch SQLite database."""
    v = schema.catalog_version
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'replay.db'}")
        try:
            upgrade(engine)
            heads, states = {"rule": _rules(engine, None)}, {}
            with engine.connect() as conn:
                for spec in SEED_TABLES.values():
                    if spec.name != "rule":
                        heads[spec.name] = _table_rows(conn, spec, None)
                    dated = schema.rule_history if spec.name == "rule" else schema.metadata.tables[spec.name]
                    columns = [*spec.columns, "valid_from", "valid_to"]
                    frame = to_frame(conn.execute(sa.select(*(dated.c[c] for c in columns))), columns)
                    states[spec.name] = _table_sorted(spec, frame)
                order = {row.revision: (as_date(row.effective_date), row.seq)
                         for row in conn.execute(sa.select(v.c.revision, v.c.effective_date, v.c.seq))}
            return _Replay(heads, states, order)
        finally:
            engine.dispose()


@dataclass
class TableChange:
    """What a revision writes to one table: the states it closes, adds and replaces (see the template)."""

    spec: SeedTable
    closed: list = field(default_factory=list)    # (key, valid_from, valid_to before)
    added: list = field(default_factory=list)     # (row, valid_to)
    replaced: list = field(default_factory=list)  # (valid_from, valid_to, row before, row after)


@dataclass
class RevisionPlan:
    """A data revision before it is written: its effective day, what it writes to each table, what it
    says of the states it splits and carries into, and each table's head afterwards."""

    effective: dt.date
    changes: list[TableChange]
    notes: list[str]
    heads: dict[str, pd.DataFrame]


def _seed_file(spec: SeedTable, seed: str | Path | None, seeds: str | Path | None) -> Path | None:
    """The seed file a revision reads (and writes back) for a table: ``seed`` for the published table
    (default ``seeds/level2b_rules.csv``), else ``seeds``' file of that name (default ``seeds/``); None
    when that directory has no such file (the table stays as it is)."""
    if spec.name == "rule":
        return Path(seed) if seed else spec.path
    path = Path(seeds) / spec.path.name if seeds else spec.path
    return path if path.is_file() else None


def _effective_day(when: str | dt.date, replay: _Replay) -> dt.date:
    """The day a change takes effect: a date, or a pipeline release (the day its rules are as of)."""
    release = None if isinstance(when, dt.date) else release_name(when)
    if release is None:
        return parse_date(when)
    known = replay.heads["pipeline_release"]
    hit = known[known["version"] == release]
    if hit.empty:
        raise CatalogError(f"unknown pipeline release {when!r}; known: {', '.join(known['version'])}")
    return as_date(hit["rules_as_of"].iloc[0])


def plan_revision(date: str | dt.date, seed: str | Path | None = None,
                  seeds: str | Path | None = None) -> RevisionPlan:
    """The revision that makes the seed files' changes to the head take effect on ``date`` (a day or a
    pipeline release), whenever it is written.

    Each changed row takes effect on that day: the state in force then is split there and the rest of
    its interval gets the change, which is carried into every later state of the row until a later
    revision set the same column (or removed the row): that revision keeps its effect. A row added
    holds until a later revision's row of the same key starts; a row removed is closed on that day.
    Where a later revision keeps its effect up to the head, the head keeps that value and
    ``heads`` (and the seed files :func:`write_revision` leaves) say so.
    """
    replay = _replayed()
    day = _effective_day(date, replay)

    def before(rev) -> bool:  # in effective order, the version is at or before the new revision
        return replay.order[rev][0] <= day  # the new revision is the last of its day

    def label(rev) -> str:
        return f"{rev} ({replay.order[rev][0]})"

    changes, notes, heads = [], [], dict(replay.heads)
    for spec in SEED_TABLES.values():
        path = _seed_file(spec, seed, seeds)
        wanted = read_table_seed(spec, path) if path is not None else replay.heads[spec.name]
        if spec.name == "rule":
            _check_published(wanted)
        key_of = lambda row: tuple(row[k] for k in spec.key)  # noqa: E731
        head = {key_of(r): r for r in replay.heads[spec.name].to_dict("records")}
        new = {key_of(r): r for r in wanted.to_dict("records")}
        timeline: dict[tuple, list[dict]] = {}
        for state in replay.states[spec.name].to_dict("records"):
            timeline.setdefault(key_of(state), []).append(state)
        change = TableChange(spec)
        for key in sorted(head.keys() | new.keys(), key=lambda k: tuple("" if v is None else str(v) for v in k)):
            if key in head and key in new and not any(_norm(head[key][c]) != _norm(new[key][c]) for c in spec.values):
                continue
            what = f"{spec.name} ({', '.join(str(v) for v in key if v not in (None, ''))})"
            states = sorted(timeline.get(key, []), key=lambda s: replay.order[s["valid_from"]])
            now = [s for s in states
                   if before(s["valid_from"]) and (s["valid_to"] is None or not before(s["valid_to"]))]
            later = [s for s in states if not before(s["valid_from"])]
            row_of = lambda state: tuple(_norm(state[c]) for c in spec.columns)  # noqa: E731
            if key in new and key not in head:
                if now:
                    raise CatalogError(f"{what}: in force on {day} (from {label(now[0]['valid_from'])}) and removed "
                                       "later: change that row as it is in force then, not as a new row")
                until = later[0]["valid_from"] if later else None
                change.added.append((row_of(new[key]), until))
                notes.append(f"{what}: added from {day}" + (f" until {label(until)}, whose row keeps its effect"
                                                             if until else ""))
                continue
            if not now:
                raise CatalogError(f"{what}: no row of it is in force on {day} (its first starts at "
                                   f"{label(states[0]['valid_from'])}): a change cannot take effect before the row")
            state = now[0]
            change.closed.append((key, state["valid_from"], state["valid_to"]))
            split = f"the row of {label(state['valid_from'])} split at {day}"
            if key not in new:
                notes.append(f"{what}: removed from {day}; {split}" + (
                    f"; {label(state['valid_to'])} keeps its effect" if state["valid_to"] else ""))
                continue
            carried = {c: _norm(new[key][c]) for c in spec.values if _norm(new[key][c]) != _norm(head[key][c])}
            change.added.append((row_of({**state, **carried}), state["valid_to"]))
            into, kept, previous = [], [], state
            for later_state in later:
                if later_state["valid_from"] != previous["valid_to"]:
                    break  # the row was gone in between: the later one is another revision's own row
                for c in [c for c in carried if _norm(later_state[c]) != _norm(previous[c])]:
                    kept.append(f"{label(later_state['valid_from'])} set {c} and keeps its effect")
                    del carried[c]
                if not carried:
                    break
                after = {**later_state, **carried}
                if row_of(after) != row_of(later_state):
                    change.replaced.append((later_state["valid_from"], later_state["valid_to"], row_of(later_state),
                                            row_of(after)))
                    into.append(label(later_state["valid_from"]))
                previous = later_state
            notes.append(f"{what}: changed from {day}; {split}" + (f"; carried into {', '.join(into)}" if into else "")
                         + "".join(f"; {k}" for k in kept))
        if change.closed or change.added or change.replaced:
            changes.append(change)
            heads[spec.name] = _head_after(spec, replay.states[spec.name], change)
    return RevisionPlan(day, changes, notes, heads)


def _head_after(spec: SeedTable, states: pd.DataFrame, change: TableChange) -> pd.DataFrame:
    """A table's head rows once ``change`` is applied to its states (as the revision's upgrade does)."""
    rows = {(tuple(r[k] for k in spec.key), r["valid_from"]): r for r in states.to_dict("records")}
    for key, valid_from, _ in change.closed:
        rows[key, valid_from] = {**rows[key, valid_from], "valid_to": "new"}
    for valid_from, valid_to, _, after in change.replaced:
        row = dict(zip(spec.columns, after))
        rows[tuple(row[k] for k in spec.key), valid_from] = {**row, "valid_from": valid_from, "valid_to": valid_to}
    for values, valid_to in change.added:
        row = dict(zip(spec.columns, values))
        rows[tuple(row[k] for k in spec.key), "new"] = {**row, "valid_from": "new", "valid_to": valid_to}
    frame = pd.DataFrame([{c: r[c] for c in spec.columns} for r in rows.values() if r["valid_to"] is None],
                         columns=list(spec.columns))
    return _table_sorted(spec, frame)


def write_revision(message: str, date: str | dt.date, reference: str,
                   seed: str | Path | None = None, directory: str | Path | None = None,
                   seeds: str | Path | None = None, *, plan: RevisionPlan | None = None) -> Path | None:
    """Write a new Alembic revision that makes the seed files' changes to the head take effect on
    ``date`` (a day or a pipeline release, before earlier revisions' if need be: :func:`plan_revision`).

    ``seed``: the published table's file (default ``seeds/level2b_rules.csv``); ``seeds``: a directory
    with the other seed files (default ``seeds/``). Where a later revision keeps its effect up to the
    head, the seed file is written back to the head's value, so the seed files equal the head once
    the revision is applied. ``plan``: the one :func:`plan_revision` made of the same arguments (the
    CLI prints it), else made here. Returns the new file's path, or None when every seed file already
    equals the head (nothing to write).
    """
    if not message.strip():
        raise CatalogError("a revision needs a summary (-m)")
    plan = plan or plan_revision(date, seed, seeds)
    if not plan.changes:
        return None

    cfg = alembic_config()
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    down = script.get_current_head()
    number = max(int(r.revision) for r in script.walk_revisions() if r.revision.isdigit()) + 1
    rev = f"{number:04d}"
    words = re.sub(r"[^a-z0-9]+", " ", message.lower()).split()
    slug = "_".join(words[:6]) or "rules"
    directory = Path(directory) if directory else project_file("migrations") / "versions"
    path = directory / f"{rev}_{slug}.py"

    def literal(value) -> str:
        if isinstance(value, dt.date):
            return f"dt.date({value.year}, {value.month}, {value.day})"
        if isinstance(value, tuple):
            return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
        return repr(_norm(value))

    def items(name: str, entries: list) -> str:
        lines = "".join(f"                {literal(tuple(e))},\n" for e in entries)
        return f"            {name!r}: [\n{lines}            ],\n"

    tables = "".join(
        f"    {c.spec.name!r}: (\n        {c.spec.columns!r},\n        {c.spec.key!r},\n        {{\n"
        + items("closed", c.closed) + items("added", c.added) + items("replaced", c.replaced)
        + "        },\n    ),\n"
        for c in plan.changes)
    summary, reference = " ".join(message.split()), " ".join(reference.split())

    def doc(value: str) -> str:  # safe inside the revision's docstring
        return value.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')

    today = dt.date.today()
    text = TEMPLATE.format(
        summary_doc=doc(summary), reference_doc=doc(reference), summary_literal=repr(summary),
        reference_literal=repr(reference), date=plan.effective.isoformat(), revision=rev, down_revision=down,
        create_date=today.isoformat(), year=plan.effective.year, month=plan.effective.month,
        day=plan.effective.day, recorded_year=today.year, recorded_month=today.month, recorded_day=today.day,
        tables=tables, splits_doc="".join(f"\n- {doc(n)}" for n in plan.notes) + "\n",
    )
    path.write_text(text)
    for spec in SEED_TABLES.values():  # a later revision kept its effect up to the head: the seed says so too
        target = _seed_file(spec, seed, seeds)
        if spec.name in {c.spec.name for c in plan.changes} and target is not None:
            if not compare_table(spec, read_table_seed(spec, target), plan.heads[spec.name]).empty:
                write_table_seed(spec, plan.heads[spec.name], target)
    return path


def _check_published(wanted: pd.DataFrame) -> None:
    for c in ("exptype", "special", "instrument"):
        allowed = {"exptype": schema.EXPTYPES, "special": schema.SPECIALS, "instrument": schema.INSTRUMENTS}[c]
        bad = wanted[~wanted[c].isin(allowed)]
        if len(bad):
            raise CatalogError(f"seed row {bad['exp_type'].iloc[0]}: {c} {bad[c].iloc[0]!r} is not one of {allowed}")
