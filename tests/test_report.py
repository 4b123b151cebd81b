"""`l2rules report`: the terminal summary and the HTML page, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest

from l2rules import catalog, load, unmatched, worklist
from l2rules.cli import main
from l2rules.report import figure, report, tables
from l2rules.runs import run
from l2rules.worklist import evaluate

from .conftest import POOLS, SAMPLE_POOLS, as_values


@pytest.fixture
def reported(db):
    run(db, [POOLS / name for name in SAMPLE_POOLS], skip_bad=True)
    return db


INSTRUMENTS = {"NRC": "NIRCam", "MIR": "MIRI", "NRS": "NIRSpec", "NIS": "NIRISS", "FGS": "FGS"}


def expected_items(db) -> pd.DataFrame:
    """Work items per instrument and asn_type, from the library's work list (the pipeline's answer)."""
    frame = as_values(worklist(db))  # typed (category): grouped as plain values, as the report's SQL does
    frame["instrument"] = frame["exp_type"].str[:3].map(INSTRUMENTS)
    return frame.groupby(["instrument", "asn_type"]).size().rename("work_items").reset_index()


def test_tables_match_the_catalog(reported):
    data = tables(reported)
    summary = data["summary"].iloc[0]
    expected = expected_items(reported)
    assert summary["catalog_revision"] == catalog.versions(reported).sort_values("seq")["revision"].iloc[-1]  # the head
    assert summary["work_list"] == summary["issued"] == data["work_items"]["work_items"].sum() \
        == expected["work_items"].sum() > 0
    pd.testing.assert_frame_equal(data["work_items"][["instrument", "asn_type", "work_items"]], expected,
                                  check_dtype=False)
    unmatched_count = len(unmatched(reported)) and unmatched(reported)["exposures"].sum()
    assert summary["pending"] == 0 and summary["unmatched"] == unmatched_count > 0 and summary["runs"] == 1
    assert summary["not_evaluated"] == 0
    assert data["roles"]["exposures"].sum() == data["exposures"]["exposures"].sum() == summary["exposures"]
    assert data["roles"]["table_selected"].sum() == len(worklist(reported, source="table"))
    assert data["unmatched"]["exposures"].sum() == unmatched_count
    assert list(data["runs"]["status"]) == ["succeeded"]


def test_terminal_summary(reported):
    out = io.StringIO()
    report(reported, stream=out)
    text = out.getvalue()
    n = expected_items(reported)["work_items"].sum()
    assert f"catalog revision:      {catalog.versions(reported).sort_values('seq')['revision'].iloc[-1]}" in text
    assert f"current work list:     {n} items: {n} issued by runs, 0 pending" in text
    assert "not evaluated:         0 exposures" in text
    for title in ("Work items per instrument and association type", "Exposures per instrument and member type",
                  "Unmatched exposures", "Latest runs"):
        assert title in text
    nirspec = expected_items(reported).set_index(["instrument", "asn_type"]).loc[("NIRSpec", "spec2"), "work_items"]
    assert re.search(rf"NIRSpec\s+spec2\s+{nirspec}\s+{nirspec}", text)


def test_html_page(reported, tmp_path, capsys):
    page = tmp_path / "report.html"
    assert main(["--db", reported, "report", "--html", str(page)]) == 0
    assert f"HTML report written to {page}" in capsys.readouterr().out
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert page.stat().st_size < 200_000                       # small: an SVG chart, no script bundle
    assert "<script" not in html and "http://www.w3.org/2000/svg" in html  # readable offline, no script
    for title in ("Work items per instrument and association type", "Exposures per instrument, EXP_TYPE and member",
                  "Unmatched exposures", "Latest runs"):
        assert title in html
    assert html.count("<table>") == 5
    # One bar per instrument and association type, labelled (the SVG keeps its text as text), with its total.
    svg = html[html.index("<svg"):html.index("</svg>")]
    for row in expected_items(reported).itertuples():
        assert f">{row.instrument}<" in svg and f">{row.asn_type}<" in svg and f">{row.work_items}<" in svg
    assert ">issued by runs<" in svg and ">pending<" in svg
    assert "last good run" in html and " ago (" in html
    # The cards say `l2rules run` as code, not with the terminal's backticks.
    cards = re.findall(r'<div class="card">(.*?)</div></div>', html)
    assert len(cards) == 7 and not any("`" in card for card in cards), cards
    assert "<code>l2rules run</code>" in html


def test_failed_runs_are_highlighted_and_pending_items_counted(db, tmp_path):
    from .runs_helpers import write_pool

    pool = write_pool(tmp_path / "p.csv", 6)
    load(db, pool)
    bad = tmp_path / "bad.csv"
    bad.write_text("FILENAME|PROGRAM\njw1_uncal.fits|1\n")
    with pytest.raises(Exception):
        run(db, [bad])
    evaluate(db)  # answered, not issued: the work list's items are pending
    data = tables(db)
    summary = data["summary"].iloc[0]
    assert (summary["work_list"], summary["issued"], summary["pending"], summary["failed_runs"]) == (4, 0, 4, 1)
    assert summary["last_success"] is None or pd.isna(summary["last_success"])
    page = tmp_path / "r.html"
    out = io.StringIO()
    report(db, html=page, stream=out)
    assert "last good run:         never" in out.getvalue()
    html = page.read_text()
    assert html.count('<tr class="failed">') == 1 and '<td class="failed">failed</td>' in html


def test_report_on_an_empty_catalog(db, tmp_path):
    out = io.StringIO()
    report(db, html=tmp_path / "empty.html", stream=out)
    assert "0 items" in out.getvalue() and "(no rows)" in out.getvalue()
    assert "The work list is empty" in (tmp_path / "empty.html").read_text()


def _frame(totals: list[int], pending: int = 0) -> pd.DataFrame:
    """A work_items table of ``len(totals)`` bars, the last ``pending`` items of each bar pending."""
    names = [("FGS", "image2"), ("MIRI", "image2"), ("MIRI", "spec2"), ("NIRCam", "image2"), ("NIRISS", "image2"),
             ("NIRISS", "spec2"), ("NIRISS", "tso-spec2"), ("NIRSpec", "image2"), ("NIRSpec", "spec2"),
             ("NIRSpec", "tso-spec2")]
    return pd.DataFrame([{"instrument": i, "asn_type": a, "work_items": n, "issued": max(0, n - pending)}
                         for (i, a), n in zip(names, totals)])


CHARTS = {
    "sample pools": _frame([2, 3, 7, 4, 9, 11, 1, 6, 17, 1]),
    "first bar tallest": _frame([40, 3, 7, 4, 9, 11, 1, 6, 17, 1]),
    "every bar as tall": _frame([12] * 10, pending=5),  # no free corner for a legend inside the axes
    "one bar": _frame([3], pending=3),
}


@pytest.mark.parametrize("name", CHARTS)
def test_the_chart_has_no_overlaps(name):
    """The legend covers no bar, total, title or label (issue 31: it covered the first bar), and each bar's
    total stays inside the axes, below the title: measured on matplotlib's own renderer."""
    import matplotlib.pyplot as plt

    fig = figure(CHARTS[name])
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (ax,) = fig.axes
        legends = [*fig.legends, *([ax.get_legend()] if ax.get_legend() else [])]
        assert len(legends) == 1
        legend = legends[0].get_window_extent(renderer)
        bars = [bar.get_window_extent(renderer) for bar in ax.patches if bar.get_height() > 0]
        totals = [text.get_window_extent(renderer) for text in ax.texts]
        labels = [label.get_window_extent(renderer) for label in ax.get_xticklabels() + ax.get_yticklabels()
                  if label.get_text()]
        title, ylabel = ax.title.get_window_extent(renderer), ax.yaxis.label.get_window_extent(renderer)
        assert len(bars) >= len(CHARTS[name]) and len(totals) == len(CHARTS[name])
        for box in [*bars, *totals, *labels, title, ylabel]:
            assert not legend.overlaps(box), (legend, box)
        axes = ax.get_window_extent(renderer)
        for total in totals:
            assert axes.y0 <= total.y0 and total.y1 <= axes.y1 and not total.overlaps(title), (total, axes, title)
    finally:
        plt.close(fig)
