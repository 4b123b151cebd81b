"""Query plans: find the parts a database evaluates once per row.

A correlated subquery is fine on a sample pool and minutes on an archive's: PostgreSQL runs
it as a ``SubPlan`` per outer row (an uncorrelated one is an ``InitPlan``, run once), SQLite
as a ``CORRELATED ... SUBQUERY``. ``per_row_subplans`` asks the database for its plan of a
statement and names those parts; the tests hold every view to none, and the benchmark checks
the plans it times.
"""

from __future__ import annotations

import collections
import contextlib
import re
from collections.abc import Callable, Iterator

import sqlalchemy as sa

#: The reporting views (migrations 0018 and 0020), each to be planned without per-row work.
VIEWS = ("v_current_rules", "v_exposure_status", "v_current_worklist", "v_exposure_counts", "v_unmatched", "v_runs")


def per_row_subplans(conn: sa.Connection, statement: str | sa.Executable) -> list[str]:
    """The parts of ``statement``'s plan evaluated once per row of another (empty: set-based)."""
    sql = statement if isinstance(statement, str) else str(
        statement.compile(conn, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "postgresql":
        sql = sql.replace("%", "%%")  # psycopg reads % as a placeholder; the statement has none
    return _per_row(conn.dialect.name, lambda explain: conn.exec_driver_sql(explain + sql).all())


def _per_row(dialect: str, explained: Callable[[str], list]) -> list[str]:
    """The per-row parts of the plan that ``explained(prefix)`` gives (the rows of ``prefix + statement``)."""
    if dialect == "postgresql":
        found: list[str] = []
        _walk(explained("EXPLAIN (FORMAT JSON) ")[0][0][0]["Plan"], found)
        return found
    return [row[-1] for row in explained("EXPLAIN QUERY PLAN ") if str(row[-1]).startswith("CORRELATED")]


_PLANNED = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.I)


@contextlib.contextmanager
def watching(engine: sa.Engine) -> Iterator[collections.Counter]:
    """Every statement ``engine`` executes meanwhile is planned first (EXPLAIN, on the same connection,
    with its parameters, so temporary tables are there); yields a Counter of the statements (their first
    200 characters) planned with per-row subplans, and how often each ran."""
    found: collections.Counter = collections.Counter()

    def explain(conn, cursor, statement, parameters, context, executemany):
        if executemany or not _PLANNED.match(statement):
            return

        def explained(prefix: str) -> list:
            cursor.execute(prefix + statement, parameters)
            return cursor.fetchall()

        if _per_row(conn.dialect.name, explained):
            found[" ".join(statement.split())[:200]] += 1

    sa.event.listen(engine, "before_cursor_execute", explain)
    try:
        yield found
    finally:
        sa.event.remove(engine, "before_cursor_execute", explain)


def _walk(node: dict, found: list[str]) -> None:
    if node.get("Parent Relationship") == "SubPlan":
        found.append(f"{node.get('Subplan Name', 'SubPlan')}: {node['Node Type']}"
                     + (f" on {node['Relation Name']}" if "Relation Name" in node else ""))
    for child in node.get("Plans", []):
        _walk(child, found)
