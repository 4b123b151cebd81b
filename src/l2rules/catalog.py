"""The rules catalog: the rules in force, their history, diffs, drift checks and new revisions.

Every function takes ``db`` (a URL, an Engine, or None for the configured
default) and returns a pandas DataFrame, so the same answers serve the CLI,
notebooks and reports.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from pathlib import Path

import sqlalchemy as sa

from ._lazy import pandas as pd
from . import schema
from ._revision_template import TEMPLATE
from .config import DB, L2RulesError, project_file
from .migrate import alembic_config, require_migrated, upgrade
from .outputs import to_frame

#: The columns that describe a rule, in the seed CSV's order.
RULE_COLUMNS = ["exp_type", "special", "instrument", "exptype", "level2b", "asn_type", "note"]
KEY = ["exp_type", "special"]


class CatalogError(L2RulesError):
    """A question the catalog cannot answer: unknown revision, a date before the first version..."""

    exit_code = 2


# --- the seed CSV -----------------------------------------------------------------------------

def seed_path() -> Path:
    return project_file("seeds") / "level2b_rules.csv"


def read_seed(path: str | Path | None = None) -> pd.DataFrame:
    """The rules of ``seeds/level2b_rules.csv`` (or ``path``), typed like the catalog's."""
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
    out = frame[RULE_COLUMNS].copy()
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


# --- catalog versions and as-of queries ---------------------------------------------------------

def versions(db: DB = None) -> pd.DataFrame:
    """Every catalog version (rules revision) in order: revision, effective date, reference, summary."""
    engine = require_migrated(db)
    v = schema.catalog_version
    with engine.connect() as conn:
        return to_frame(conn.execute(sa.select(v).order_by(v.c.seq)))


def resolve_version(db: DB, when: str | dt.date | None = None, version: str | None = None) -> int:
    """The ``seq`` of the catalog version in force at date ``when`` or named ``version`` (latest if neither)."""
    frame = versions(db)
    if version is not None:
        hit = frame[frame["revision"] == str(version)]
        if hit.empty:
            raise CatalogError(f"unknown catalog version {version!r}; known: {', '.join(frame['revision'])}")
        return int(hit["seq"].iloc[0])
    if when is None:
        return int(frame["seq"].max())
    date = parse_date(when)
    in_force = frame[pd.to_datetime(frame["effective_date"]).dt.date <= date]
    if in_force.empty:
        first = frame["effective_date"].min()
        raise CatalogError(f"no rules were in force on {date}: the first catalog version is effective {first}")
    return int(in_force["seq"].max())


def resolve_point(db: DB, point: str) -> int:
    """A diff end point: a catalog revision if one has that name, else a date."""
    known = versions(db)
    if point in set(known["revision"]):
        return resolve_version(db, version=point)
    return resolve_version(db, when=point)


def parse_date(value: str | dt.date) -> dt.date:
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
        raise CatalogError(f"not a date (YYYY-MM-DD) or a known revision: {value!r}") from None


def _in_force(table: sa.Table, seq: int | sa.ColumnElement) -> sa.ColumnElement[bool]:
    """Rows of a history-bearing table valid at catalog version ``seq``."""
    start = sa.select(schema.catalog_version.c.seq).where(
        schema.catalog_version.c.revision == table.c.valid_from).scalar_subquery()
    end = sa.select(schema.catalog_version.c.seq).where(
        schema.catalog_version.c.revision == table.c.valid_to).scalar_subquery()
    return sa.and_(start <= seq, sa.or_(table.c.valid_to.is_(None), end > seq))


def rules_at(seq: int | None = None) -> sa.Subquery:
    """A subquery with the rules in force at version ``seq`` (the head ``rule`` table if None)."""
    if seq is None:
        return sa.select(schema.rule).subquery("rules")
    h = schema.rule_history
    return sa.select(h.c.id, *(h.c[c] for c in RULE_COLUMNS)).where(_in_force(h, seq)).subquery("rules")


def conditions_at(seq: int | None = None) -> sa.Subquery:
    c = schema.rule_condition
    query = sa.select(c)
    if seq is None:
        query = query.where(c.c.valid_to.is_(None))
    else:
        query = query.where(_in_force(c, seq))
    return query.subquery("conditions")


def rules(db: DB = None, *, as_of: str | dt.date | None = None, version: str | None = None,
          exp_type: str | None = None, instrument: str | None = None) -> pd.DataFrame:
    """The rules in force now, or at date ``as_of``, or at catalog ``version``."""
    engine = require_migrated(db)
    seq = resolve_version(engine, as_of, version) if (as_of is not None or version is not None) else None
    r = rules_at(seq)
    query = sa.select(*(r.c[c] for c in RULE_COLUMNS)).order_by(r.c.exp_type, r.c.special)
    if exp_type:
        query = query.where(sa.func.upper(r.c.exp_type) == exp_type.upper())
    if instrument:
        query = query.where(sa.func.lower(r.c.instrument) == instrument.lower())
    with engine.connect() as conn:
        frame = to_frame(conn.execute(query), RULE_COLUMNS)
    return _normalised(frame)


def conditions(db: DB = None, *, as_of: str | dt.date | None = None, version: str | None = None,
               exp_type: str | None = None) -> pd.DataFrame:
    """The conditions on pool columns that rules in force attach to their exposures."""
    engine = require_migrated(db)
    seq = resolve_version(engine, as_of, version) if (as_of is not None or version is not None) else None
    c = conditions_at(seq)
    cols = ["exp_type", "special", "pool_column", "operator", "value", "note"]
    query = sa.select(*(c.c[k] for k in cols)).order_by(c.c.exp_type, c.c.special, c.c.id)
    if exp_type:
        query = query.where(sa.func.upper(c.c.exp_type) == exp_type.upper())
    with engine.connect() as conn:
        return to_frame(conn.execute(query), cols)


def history(db: DB = None, exp_type: str | None = None) -> pd.DataFrame:
    """Every state of the rules of ``exp_type`` (all rules if None), with dates and references."""
    engine = require_migrated(db)
    h, v = schema.rule_history, schema.catalog_version
    start, end = v.alias("start"), v.alias("end")
    query = (
        sa.select(*(h.c[c] for c in RULE_COLUMNS),
                  h.c.valid_from, start.c.effective_date.label("valid_from_date"),
                  start.c.reference.label("valid_from_reference"),
                  h.c.valid_to, end.c.effective_date.label("valid_to_date"))
        .join_from(h, start, start.c.revision == h.c.valid_from)
        .outerjoin(end, end.c.revision == h.c.valid_to)
        .order_by(h.c.exp_type, h.c.special, start.c.seq)
    )
    if exp_type:
        query = query.where(sa.func.upper(h.c.exp_type) == exp_type.upper())
    with engine.connect() as conn:
        frame = to_frame(conn.execute(query))
    if exp_type and frame.empty:
        raise CatalogError(f"no rule for exp_type {exp_type!r} in any catalog version")
    return frame


def compare(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Rows added, removed and changed between two rule tables (one row per changed column)."""
    merged = before.merge(after, on=KEY, how="outer", suffixes=("_before", "_after"), indicator=True)
    out: list[dict] = []
    for row in merged.to_dict("records"):
        key = {k: row[k] for k in KEY}
        if row["_merge"] == "left_only":
            out.append({"change": "removed", **key, "column": None,
                        "before": _describe(row, "_before"), "after": None})
        elif row["_merge"] == "right_only":
            out.append({"change": "added", **key, "column": None,
                        "before": None, "after": _describe(row, "_after")})
        else:
            for col in RULE_COLUMNS[2:]:
                old, new = _norm(row[f"{col}_before"]), _norm(row[f"{col}_after"])
                if old != new:
                    out.append({"change": "changed", **key, "column": col, "before": old, "after": new})
    return pd.DataFrame(out, columns=["change", *KEY, "column", "before", "after"])


def _norm(value):
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


def _describe(row: dict, suffix: str) -> str:
    return ", ".join(f"{c}={_norm(row[c + suffix])}" for c in RULE_COLUMNS[2:] if c != "note")


def diff(db: DB, from_point: str, to_point: str) -> pd.DataFrame:
    """Rules added, removed and changed between two catalog versions or dates."""
    engine = require_migrated(db)
    seqs = [resolve_point(engine, p) for p in (from_point, to_point)]
    known = versions(engine).set_index("seq")["revision"]
    before, after = (rules(engine, version=known[s]) for s in seqs)
    return compare(before, after)


# --- drift and new revisions ---------------------------------------------------------------

def check(db: DB = None, seed: str | Path | None = None) -> pd.DataFrame:
    """Where the database's rules and the seed CSV disagree (empty when they agree)."""
    return compare(read_seed(seed), rules(db)).rename(columns={"before": "csv", "after": "database"})


def head_state() -> pd.DataFrame:
    """The rules that replaying every migration produces, on a scratch SQLite database."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'replay.db'}")
        try:
            upgrade(engine)
            return rules(engine)
        finally:
            engine.dispose()


def write_revision(message: str, date: str | dt.date, reference: str,
                   seed: str | Path | None = None, directory: str | Path | None = None) -> Path | None:
    """Write a new Alembic revision holding exactly the difference between the seed CSV and the head.

    Returns the new file's path, or None when the CSV already equals the head (nothing to write).
    """
    date = parse_date(date)
    if not message.strip():
        raise CatalogError("a revision needs a summary (-m)")
    wanted = read_seed(seed)
    head = head_state()
    changes = compare(head, wanted)
    if changes.empty:
        return None
    for c in ("exptype", "special", "instrument"):
        allowed = {"exptype": schema.EXPTYPES, "special": schema.SPECIALS, "instrument": schema.INSTRUMENTS}[c]
        bad = wanted[~wanted[c].isin(allowed)]
        if len(bad):
            raise CatalogError(f"seed row {bad['exp_type'].iloc[0]}: {c} {bad[c].iloc[0]!r} is not one of {allowed}")
    touched = changes.loc[changes["change"] != "removed", KEY].drop_duplicates()
    upserted = wanted.merge(touched, on=KEY)
    removed = changes.loc[changes["change"] == "removed", KEY]

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

    def tup(values) -> str:
        return "    " + repr(tuple(_norm(v) if not isinstance(v, bool) else v for v in values)) + ",\n"

    text = TEMPLATE.format(
        summary=message.strip(), date=date.isoformat(), reference=reference, revision=rev,
        down_revision=down, create_date=dt.date.today().isoformat(),
        year=date.year, month=date.month, day=date.day,
        upserted="".join(tup(r) for r in upserted[RULE_COLUMNS].itertuples(index=False)),
        removed="".join("    " + repr(tuple(k)) + ",\n" for k in removed.itertuples(index=False)),
    )
    path.write_text(text)
    return path
