"""Which statements of l2rules' commands are planned with a part evaluated once per row.

Runs what an operator and an analyst do on a new catalog of the sample pools (two runs, the run
record, the report, unmatched, rejections, impact, explain, the published list with associations,
asn), planning every statement first (``l2rules.plans.watching``), and prints those whose plan
holds a correlated subquery over data (exposures, items, answers, the association stages' tables),
with how often each ran; ``--all`` adds those that only look up the rules (sized by the catalog,
not the archive). The tests hold the views to none at all and the commands to none over data.

    .venv/bin/python scripts/plan_probe.py                       # a SQLite file in a new directory
    .venv/bin/python scripts/plan_probe.py --db postgresql://postgres@127.0.0.1:5432/probe   # an empty one
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from l2rules import Catalog, plans

REPO = Path(__file__).resolve().parents[1]


def every_command(catalog: Catalog, work: Path) -> None:
    """What an operator and an analyst do with the sample pools, each command once or twice (tests/test_views.py
    runs it too, watching the plans)."""
    pools = sorted(str(p) for p in (REPO / "samples" / "pools").glob("*.csv"))
    catalog.run(pools[:6], skip_bad=True)
    catalog.run(pools, skip_bad=True)
    catalog.runs()
    catalog.report(stream=io.StringIO())
    catalog.unmatched()
    catalog.rejections()
    catalog.impact("1.16.1", "3.0.0")
    catalog.impact("1.16.1", "3.0.0", source="table")
    catalog.explain("jw_00001_uncal.fits")
    catalog.worklist(source="table", associations=True)
    catalog.worklist()
    catalog.asn(pools[6:7], work / "asn")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="an empty database URL (default: a new SQLite file)")
    parser.add_argument("--all", action="store_true", help="also the statements that only look up the rules")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="l2rules-plans-"))
    catalog = Catalog(args.db or f"sqlite:///{work / 'probe.db'}")
    catalog.init()
    with plans.watching(catalog.engine, over_data=not args.all) as found:
        every_command(catalog, work)
    for statement, count in found.most_common():
        print(f"{count:>4}  {statement}")
    what = "a per-row subplan" if args.all else "a per-row subplan over data"
    print(f"{len(found)} statements planned with {what} ({catalog.engine.dialect.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
