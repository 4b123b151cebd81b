"""Query plans: find the parts a database evaluates once per row.

A correlated subquery is fine on a sample pool and minutes on an archive's: PostgreSQL runs
it as a ``SubPlan`` per outer row (an uncorrelated one is an ``InitPlan``, or a hashed
``SubPlan``, built once), SQLite as a ``CORRELATED ... SUBQUERY``. ``per_row_subplans`` asks
the database for its plan of a statement and names those parts, with the tables each reads: a
lookup in the rules (tables whose size is the catalog's, not the archive's) costs the same per
exposure at any scale; one over the exposures, work items or answers grows with the archive
(``Subplan.over_data``). The tests hold every view to none at all and every command to none over
data; the benchmark checks the plans it times.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from .schema import VIEW_COLUMNS

#: The reporting views (migrations 0018 and 0020), each to be planned without per-row work.
VIEWS = tuple(VIEW_COLUMNS)

#: Tables (and the subquery names l2rules gives them) sized by the rules, not by the archive: the published
#: table and its conditions, the catalog versions, the association rules and their per-evaluation copies.
_RULES = re.compile(r"(rule|rules|rule_history|rule_condition|conditions|catalog_version|valid_(from|to)_version"
                    r"|asn_(?!tmp_)\w+|asn_tmp_rules_\w+)$")


@dataclass(frozen=True)
class Subplan:
    """A part of a plan evaluated once per row of another: the plan's words for it, and the tables it reads."""

    text: str
    tables: tuple[str, ...]

    @property
    def over_data(self) -> bool:
        """It reads a table that grows with the archive (exposures, items, answers, a CTE over them)."""
        return any(not _RULES.match(table) for table in self.tables)

    def __str__(self) -> str:
        return f"{self.text} (reads {', '.join(self.tables) or 'no table'})"


def per_row_subplans(conn: sa.Connection, statement: str | sa.ClauseElement) -> list[Subplan]:
    """The parts of ``statement``'s plan evaluated once per row of another (empty: set-based)."""
    sql = statement if isinstance(statement, str) else str(
        statement.compile(conn, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "postgresql":
        sql = sql.replace("%", "%%")  # psycopg reads % as a placeholder; the statement has none
    return _per_row(conn.dialect.name, sql, lambda explain: conn.exec_driver_sql(explain + sql).all())


def _per_row(dialect: str, sql: str, explained: Callable[[str], Sequence]) -> list[Subplan]:
    """The per-row parts of the plan that ``explained(prefix)`` gives (the rows of ``prefix + sql``)."""
    if dialect == "postgresql":
        plan = explained("EXPLAIN (FORMAT JSON) ")[0][0][0]["Plan"]
        found: list[Subplan] = []
        _walk(plan, found, set(re.findall(r"hashed (SubPlan \d+)", json.dumps(plan))))
        return found
    # SQLite: rows (id, parent, _, detail); a correlated subquery's tables are in the rows under it, named
    # by their alias, which the statement maps back to the table (``table AS alias``, ``table alias``)
    rows = explained("EXPLAIN QUERY PLAN ")
    aliases = {alias.lower(): table.lower() for table, alias in re.findall(
        r"(?:\bFROM|\bJOIN|,)\s+(\w+)\s+(?:AS\s+)?(?!(?:JOIN|ON|WHERE|LEFT|RIGHT|INNER|OUTER|CROSS|FULL|GROUP|ORDER"
        r"|LIMIT|UNION|HAVING|WINDOW)\b)(\w+)", sql, flags=re.I)}
    children = collections.defaultdict(list)
    for row in rows:
        children[row[1]].append(row)

    def tables(node_id: int) -> list[str]:
        names = []
        for child in children[node_id]:
            read = re.match(r"(?:SCAN|SEARCH)(?: TABLE)? (\w+)", child[-1])  # SQLite before 3.36 says TABLE
            if read:
                names.append(aliases.get(read.group(1).lower(), read.group(1).lower()))
            names += tables(child[0])
        return names

    return [Subplan(row[-1], tuple(dict.fromkeys(tables(row[0]))))
            for row in rows if str(row[-1]).startswith("CORRELATED")]


_PLANNED = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.I)


@contextlib.contextmanager
def watching(engine: sa.Engine, *, over_data: bool = False) -> Iterator[collections.Counter]:
    """Every statement ``engine`` executes meanwhile is planned first (EXPLAIN, on the same connection,
    with its parameters, so temporary tables are there); yields a Counter of the statements (their first
    200 characters) planned with per-row subplans (``over_data``: only those reading data), and how often
    each ran."""
    found: collections.Counter = collections.Counter()

    def explain(conn, cursor, statement, parameters, context, executemany):
        if executemany or not _PLANNED.match(statement):
            return

        def explained(prefix: str) -> list:
            # a cursor of its own on the same connection (the same transaction, its temporary tables): the
            # statement's may be a server-side one (stream_results), which cannot declare an EXPLAIN
            plain = cursor.connection.cursor()
            try:
                plain.execute(prefix + statement, parameters)
                return plain.fetchall()
            finally:
                plain.close()

        parts = _per_row(conn.dialect.name, statement, explained)
        if any(part.over_data for part in parts) if over_data else parts:
            found[" ".join(statement.split())[:200]] += 1

    sa.event.listen(engine, "before_cursor_execute", explain)
    try:
        yield found
    finally:
        sa.event.remove(engine, "before_cursor_execute", explain)


def _walk(node: dict, found: list[Subplan], hashed: set[str]) -> None:
    name = node.get("Subplan Name", "SubPlan")
    if node.get("Parent Relationship") == "SubPlan" and name not in hashed:  # a hashed one is built once
        found.append(Subplan(f"{name}: {node['Node Type']}", tuple(dict.fromkeys(_reads(node)))))
    for child in node.get("Plans", []):
        _walk(child, found, hashed)


def _reads(node: dict) -> list[str]:
    names = [node["Relation Name"]] if "Relation Name" in node else []
    if "CTE Name" in node:
        names.append(f"cte {node['CTE Name']}")
    for child in node.get("Plans", []):
        names += _reads(child)
    return names
