"""Query plans: find the parts a database evaluates once per row.

A correlated subquery is fine on a sample pool and minutes on an archive's: PostgreSQL runs
it as a ``SubPlan`` per outer row (an uncorrelated one is an ``InitPlan``, run once), SQLite
as a ``CORRELATED ... SUBQUERY``. ``per_row_subplans`` asks the database for its plan of a
statement and names those parts; the tests hold every view to none, and the benchmark checks
the plans it times.
"""

from __future__ import annotations

import sqlalchemy as sa

#: The reporting views (migrations 0018 and 0020), each to be planned without per-row work.
VIEWS = ("v_current_rules", "v_exposure_status", "v_current_worklist", "v_exposure_counts", "v_unmatched", "v_runs")


def per_row_subplans(conn: sa.Connection, statement: str | sa.Executable) -> list[str]:
    """The parts of ``statement``'s plan evaluated once per row of another (empty: set-based)."""
    sql = statement if isinstance(statement, str) else str(
        statement.compile(conn, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "postgresql":
        # psycopg reads % as a placeholder; the statement has none
        plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql.replace("%", "%%")).scalar_one()
        found: list[str] = []
        _walk(plan[0]["Plan"], found)
        return found
    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
    return [row[-1] for row in rows if str(row[-1]).startswith("CORRELATED")]


def _walk(node: dict, found: list[str]) -> None:
    if node.get("Parent Relationship") == "SubPlan":
        found.append(f"{node.get('Subplan Name', 'SubPlan')}: {node['Node Type']}"
                     + (f" on {node['Relation Name']}" if "Relation Name" in node else ""))
    for child in node.get("Plans", []):
        _walk(child, found)
