"""Reporting: the catalog, the work list and the runs, read from the SQL views (migration 0018).

Every table here is a plain ``SELECT`` on a ``v_*`` view through
``pandas.read_sql``: what the report shows, an analyst gets from ``psql`` or
``sqlite3`` with the same query (README, "Reporting").
"""

from __future__ import annotations

import datetime as dt
import html
import re
import sys
from pathlib import Path
from typing import TextIO

import pandas as pd
import sqlalchemy as sa

from . import outputs, schema
from .config import DB, CatalogError, describe, require
from .migrate import require_migrated

#: The queries behind the report, one per table.
QUERIES = {
    "work_items": """
        SELECT instrument, asn_type, count(*) AS work_items,
               sum(CASE WHEN item_up_to_date = TRUE THEN 1 ELSE 0 END) AS issued
        FROM v_current_worklist
        GROUP BY instrument, asn_type
        ORDER BY instrument, asn_type""",
    "roles": """
        SELECT instrument, coalesce(exptype, '(no member)') AS exptype, sum(selected) AS selected,
               sum(not_selected) AS not_selected, sum(table_selected) AS table_selected,
               sum(exposures) AS exposures
        FROM v_exposure_counts
        GROUP BY instrument, coalesce(exptype, '(no member)')
        ORDER BY instrument, coalesce(exptype, '(no member)')""",
    "exposures": """
        SELECT instrument, exp_type, exptype, selected, not_selected, table_selected, exposures
        FROM v_exposure_counts
        ORDER BY instrument, exp_type, exptype""",
    "unmatched": """
        SELECT pool, exp_type, count(*) AS exposures, min(filename) AS example
        FROM v_unmatched
        GROUP BY pool, exp_type
        ORDER BY pool, exp_type""",
    "runs": """
        SELECT run_id, status, started_at, finished_at, catalog_revision, exposures_seen, exposures_new,
               items_created, exposures_unmatched, rows_rejected, error
        FROM v_runs
        ORDER BY run_id DESC
        LIMIT 10""",
}
TITLES = {
    "work_items": "Work items per instrument and association type (current work list)",
    "roles": "Exposures per instrument and member type (exptype): selected for Level 2b by the pipeline or "
             "not, and by the published table alone",
    "unmatched": "Unmatched exposures: EXP_TYPEs the rules do not know",
    "runs": "Latest runs",
    "exposures": "Exposures per instrument, EXP_TYPE and member type: selected for Level 2b or not",
}
#: Shorter headers for the runs table, so that it fits a terminal.
RUN_HEADERS = {"run_id": "run", "started_at": "started (UTC)", "finished_at": "finished (UTC)",
               "catalog_revision": "revision", "exposures_seen": "seen", "exposures_new": "new",
               "items_created": "items", "exposures_unmatched": "unmatched", "rows_rejected": "rejected"}
#: The terminal summary leaves out the long per-EXP_TYPE table (the HTML page has it).
TERMINAL = ("work_items", "roles", "unmatched", "runs")


def tables(db: DB = None) -> dict[str, pd.DataFrame]:
    """The report's tables, plus ``summary`` (one row of headline numbers)."""
    engine = require_migrated(db)
    if not sa.inspect(engine).has_table("work_item"):
        from .config import DatabaseError

        raise DatabaseError(f"database {describe(engine)} has no reporting views; run `l2rules init` to upgrade it")
    out: dict[str, pd.DataFrame] = {}
    with engine.connect() as conn:
        for name, query in QUERIES.items():
            out[name] = pd.read_sql(sa.text(query), conn)
        summary = pd.read_sql(sa.text("""
            SELECT (SELECT revision FROM catalog_version ORDER BY seq DESC LIMIT 1) AS catalog_revision,
                   (SELECT recorded FROM catalog_version ORDER BY seq DESC LIMIT 1) AS recorded,
                   (SELECT count(*) FROM pool) AS pools,
                   (SELECT count(*) FROM exposure WHERE withdrawn_at IS NULL) AS exposures,
                   (SELECT count(*) FROM v_current_worklist) AS work_list,
                   (SELECT count(*) FROM v_current_worklist WHERE item_up_to_date = TRUE) AS issued,
                   (SELECT count(*) FROM v_unmatched) AS unmatched,
                   (SELECT count(*) FROM v_exposure_status WHERE answer_current = FALSE) AS not_evaluated,
                   (SELECT count(*) FROM run) AS runs,
                   (SELECT count(*) FROM run WHERE status = 'failed') AS failed_runs,
                   (SELECT max(finished_at) FROM run WHERE status = 'succeeded') AS last_success"""), conn)
    summary["pending"] = summary["work_list"] - summary["issued"]
    out["summary"] = summary
    for name in ("work_items", "roles", "exposures"):
        for column in ("work_items", "issued", "selected", "not_selected", "table_selected", "exposures"):
            if column in out[name]:
                out[name][column] = out[name][column].fillna(0).astype(int)
    out["work_items"]["asn_type"] = out["work_items"]["asn_type"].fillna("(none)")
    for column in ("started_at", "finished_at"):
        out["runs"][column] = out["runs"][column].map(_when)
    running = out["runs"]["status"] == "running"
    if running.any():  # as `l2rules runs` shows them: a recorded run whose process is gone is dead
        from .runs import dead_runs

        dead = dead_runs(engine, out["runs"].loc[running, "run_id"].tolist())
        out["runs"].loc[out["runs"]["run_id"].isin(list(dead)), "status"] = "dead"
    out["runs"] = out["runs"].rename(columns=RUN_HEADERS)
    return out


def view(db: DB, name: str) -> pd.DataFrame:
    """Every row of reporting view ``name`` (``v_current_worklist``, ``v_runs``...), each column typed as
    :data:`l2rules.schema.VIEW_COLUMNS` has it: the same dtypes on SQLite and PostgreSQL, where
    ``pandas.read_sql`` gives SQLite's computed columns as objects or floats."""
    if name not in schema.VIEW_COLUMNS:
        raise CatalogError(f"no view {name!r}; the views: {', '.join(schema.VIEW_COLUMNS)}")
    engine = require_migrated(db)
    with engine.connect() as conn:
        return outputs.query_frame(conn, sa.select(sa.text("*")).select_from(sa.table(name)),
                                   types=schema.VIEW_COLUMNS[name])


def _when(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return ""
    text = value.isoformat(sep=" ") if hasattr(value, "isoformat") else str(value)
    return text[:19]


def _ago(value, now: dt.datetime | None = None) -> str:
    """How long ago ``value`` (a UTC time, naive on SQLite) was, in the largest two units."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return "never"
    when = pd.Timestamp(value)
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    seconds = max(0, int(((now or dt.datetime.now(dt.timezone.utc)) - when.to_pydatetime()).total_seconds()))
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "min")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return (" ".join(shown) or f"{seconds} s") + f" ago ({_when(when.to_pydatetime())} UTC)"


def _headline(summary: pd.DataFrame) -> list[tuple[str, str]]:
    s = summary.iloc[0]
    return [
        ("catalog revision", f"{s['catalog_revision']} (recorded {str(s['recorded'])[:10]})"),
        ("exposures loaded", f"{s['exposures']} from {s['pools']} pools"),
        ("current work list", f"{s['work_list']} items: {s['issued']} issued by runs, {s['pending']} pending"),
        ("not evaluated", f"{s['not_evaluated']} exposures (answer missing or behind the head: `l2rules run`)"),
        ("unmatched exposures", str(s["unmatched"])),
        ("runs", f"{s['runs']} ({s['failed_runs']} failed)"),
        ("last good run", _ago(s["last_success"])),
    ]


def report(db: DB = None, *, html: str | Path | None = None, stream: TextIO | None = None) -> dict[str, pd.DataFrame]:
    """Print the summary on ``stream`` (stdout), write the HTML page to ``html`` if given; return the tables."""
    stream = stream or sys.stdout
    if html is not None:  # before any output: a missing extra is said alone (exit 3), not after the text report
        require("matplotlib", "report", "the HTML report")
    data = tables(db)
    engine = require_migrated(db)
    stream.write(f"l2rules report: {describe(engine)}\n\n")
    for label, value in _headline(data["summary"]):
        stream.write(f"  {label + ':':22} {value}\n")
    for name in TERMINAL:
        stream.write(f"\n{TITLES[name]}\n")
        stream.write(outputs.render(data[name], "table"))
    if html is not None:
        write_html(data, html, source=describe(engine))
        stream.write(f"\nHTML report written to {html}\n")
    return data


# --- the HTML page -------------------------------------------------------------------------------

CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1f2933; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
.source { color: #616e7c; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1.2rem 0; }
.card { background: #f5f7fa; border-radius: 8px; padding: .7rem 1rem; min-width: 150px; }
.card .label { color: #616e7c; font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 1.05rem; font-weight: 600; margin-top: .2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #e4e7eb; padding-bottom: .3rem; }
table { border-collapse: collapse; font-size: .85rem; }
th, td { padding: .25rem .7rem; text-align: left; border-bottom: 1px solid #e4e7eb; vertical-align: top; }
td { max-width: 26rem; overflow-wrap: break-word; }
td.nowrap { white-space: nowrap; }
td.failed { color: #c81e1e; font-weight: 600; }
tr.failed td { background: #fdecea; }
.chart svg { max-width: 100%; height: auto; }
.scroll { overflow-x: auto; }
th { background: #f5f7fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: #616e7c; font-style: italic; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em;
       background: #e4e7eb; border-radius: 3px; padding: 0 .25em; }
"""


def figure(work_items: pd.DataFrame):
    """The chart as a matplotlib Figure: work items per instrument and association type, each bar split into
    issued and pending items, its total above it. The legend sits below the axes, under the bars' labels,
    where no bar can reach it; the y axis leaves room above the tallest bar for its total."""
    matplotlib = require("matplotlib", "report", "the HTML report")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not len(work_items):  # say so, rather than draw empty axes
        fig, ax = plt.subplots(figsize=(9, 1.2), layout="constrained")
        ax.axis("off")
        ax.text(0.5, 0.5, "The work list is empty: load inventories with l2rules run POOL...", ha="center",
                va="center", color="#616e7c", fontsize=13)
        return fig
    frame = work_items.sort_values(["instrument", "asn_type"])
    labels = [f"{i}\n{a}" for i, a in zip(frame["instrument"], frame["asn_type"])]
    issued = frame["issued"].to_numpy()
    pending = (frame["work_items"] - frame["issued"]).to_numpy()
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(frame) + 2), 4), layout="constrained")
    ax.bar(labels, issued, color="#3e7cb1", label="issued by runs")
    ax.bar(labels, pending, bottom=issued, color="#f0a202", label="pending")
    for x, total in enumerate(frame["work_items"]):
        ax.text(x, total, str(total), ha="center", va="bottom")
    ax.set_ylim(0, max(1, frame["work_items"].max()) * 1.15)  # each total inside the axes, clear of the title
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # items are whole
    ax.set_ylabel("Work items")
    ax.set_title("Work items per instrument and association type", loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    fig.legend(loc="outside lower center", ncols=2, frameon=False)
    return fig


def chart(work_items: pd.DataFrame) -> str:
    """:func:`figure` as inline SVG (text kept as text): a few kilobytes, readable offline, no script."""
    matplotlib = require("matplotlib", "report", "the HTML report")
    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 10}):
        fig = figure(work_items)
        out = io.StringIO()
        fig.savefig(out, format="svg")
        plt.close(fig)
    svg = out.getvalue()
    return svg[svg.index("<svg"):]  # inline: no XML declaration or DOCTYPE inside the page


#: Run statuses the page highlights.
FAILED = ("failed", "dead")


def _table_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return '<p class="empty">none</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for values in frame.itertuples(index=False):
        cells = []
        for v in values:
            numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
            text = "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
            css = "num" if numeric else ("failed" if text in FAILED else "nowrap" if len(text) <= 20 else "")
            cells.append(f'<td class="{css}">{html.escape(text)}</td>' if css else f"<td>{html.escape(text)}</td>")
        failed = any(str(v) in FAILED for v in values)  # a failed or dead run: the whole row
        rows.append(('<tr class="failed">' if failed else "<tr>") + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _inline_html(text: str) -> str:
    """A headline value for the page: escaped, its `code` spans (written for the terminal) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def write_html(data: dict[str, pd.DataFrame], path: str | Path, source: str = "") -> None:
    """A self-contained page (the chart inline SVG, no script): headline numbers, the chart, the tables."""
    svg = chart(data["work_items"])
    cards = "".join(f'<div class="card"><div class="label">{html.escape(k)}</div>'
                    f'<div class="value">{_inline_html(v)}</div></div>' for k, v in _headline(data["summary"]))
    sections = "".join(f"<h2>{html.escape(TITLES[name])}</h2>{_table_html(data[name])}" for name in TITLES)
    made = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>l2rules report</title><style>{CSS}</style></head>
<body>
<h1>Level 2b work list report</h1>
<p class="source">{html.escape(source)} &middot; made {made}</p>
<div class="cards">{cards}</div>
<div class="chart">{svg}</div>
{sections}
</body></html>
"""
    outputs.write_text(path, page)  # all or nothing
