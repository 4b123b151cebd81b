"""The ``run``, ``runs`` and ``report`` commands (kept apart so that cli.py stays a thin dispatcher)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from ._lazy import pandas as pd

from . import outputs
from .config import L2RulesError

COMMANDS = ("run", "runs", "report")
PRINTABLE = ("table", "csv", "json")


class UsageError(L2RulesError):
    """Options that cannot go together (exit 2, as argparse's own errors)."""

    exit_code = 2


class Terminated(L2RulesError):
    """The run was stopped by SIGTERM (a workflow engine's timeout, a shutdown): it is recorded as failed."""

    exit_code = 143


def add_commands(sub) -> None:
    p = sub.add_parser(
        "run", help="one scheduled run: load new or changed inventories, make the missing work items, record it",
        description="One scheduled run, safe from cron: loads the inventories that are new or changed, makes a "
                    "work item for every exposure the pipeline selects (as `l2rules worklist` answers) that has "
                    "none yet (or whose answer changed since its item was made, or whose exposure a redelivery "
                    "changed), withdraws the items of exposures a "
                    "redelivery left out, and records the run. Quiet unless asked. Exit codes: 0 done (also when "
                    "there was nothing to do), 2 bad input, 3 database unreachable, not created or not migrated, "
                    "5 another run is in progress.")
    p.add_argument("pools", nargs="*", metavar="POOL", help="pool or CSV files to load first")
    p.add_argument("--inventory-dir", metavar="DIR", help="also load every *.csv file of DIR")
    p.add_argument("--output", metavar="PATH",
                   help="write the run's new work items to PATH ('{run_id}' is replaced by the run's id); "
                        "written only when there are some")
    p.add_argument("--format", choices=outputs.FORMATS,
                   help=f"format of --output's work items (default: from its suffix, "
                        f"{', '.join(outputs.OUTPUT_SUFFIXES)}; else csv)")
    p.add_argument("--print", dest="print_format", choices=PRINTABLE, metavar="{" + ",".join(PRINTABLE) + "}",
                   help="print the run record in this format (default: print nothing)")
    # Until 0.x: --output-format was the data's format (now --format), --format the record's (now --print).
    p.add_argument("--output-format", dest="old_output_format", choices=outputs.FORMATS, help=argparse.SUPPRESS)
    p.add_argument("--skip-bad", action="store_true", help="store bad rows in load_rejection instead of failing")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for a run in progress to end (default: exit 5 at once)")
    p.add_argument("--create", action="store_true",
                   help="create the catalog if the SQLite database does not exist yet (default: exit 3, naming it)")

    p = sub.add_parser("runs", help="the run record: when, on which catalog revision, with what result",
                       description="The run record; reads only. A run recorded running whose process is gone "
                                   "shows as dead until the next run (or --recover) marks it failed.")
    p.add_argument("--last", type=int, default=20, metavar="N", help="only the last N runs (default 20; 0: all)")
    p.add_argument("--status", choices=("running", "succeeded", "failed", "dead"))
    p.add_argument("--recover", action="store_true",
                   help="first mark dead runs failed in the record (what the next run would do; this writes)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")

    p = sub.add_parser("report", help="a summary of the catalog, the work list and the runs (--html for a page)")
    p.add_argument("--html", metavar="PATH", help="also write an HTML page with the tables and a chart")


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "runs":
        from .runs import as_text, recover, runs

        if args.recover:
            recover(args.db)
        frame = runs(args.db, last=args.last or None, status=args.status)
        if args.format != "json":  # inputs: a list in JSON, the paths joined by ';' in a text cell
            frame = as_text(frame)
        if args.format == "table":  # fit a terminal: whole seconds
            frame = frame.drop(columns=["host", "pid", "reissued_by", "output"])
            for column in ("started_at", "finished_at"):
                # (a column of only unfinished runs holds no strings: pandas makes it NaN)
                frame[column] = frame[column].map(lambda v: v[:19].replace("T", " ") if isinstance(v, str) else None)
        outputs.write(frame, args.format)
        return 0
    if args.command == "report":
        from .report import report

        report(args.db, html=args.html, stream=sys.stdout)
        return 0
    raise AssertionError(args.command)


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by a subprocess test
    raise Terminated("stopped by SIGTERM")


def run_format(args: argparse.Namespace) -> str | None:
    """``run``'s --format, given the spellings before issue 14.

    --output-format still works, with a warning (it is --format now). --format meant the run
    record's format (now --print): given without --output, or against --output's suffix, it
    is refused with the new spelling, instead of being read the new way without a word.
    """
    fmt = args.format
    if args.old_output_format is not None:
        print("l2rules: warning: run --output-format is deprecated and will be removed; it is --format now (the "
              "format of --output's work items; the run record is printed by --print)", file=sys.stderr)
        if fmt is not None and fmt != args.old_output_format:
            raise UsageError(f"run: --format {fmt} and --output-format {args.old_output_format} disagree; "
                             "give --format alone")
        fmt = args.old_output_format
    if args.format is None:
        return fmt
    if args.output is None:
        hint = f"; to print the run record, --print {fmt}" if fmt in PRINTABLE else ""
        raise UsageError(f"run: --format is the format of --output's work items and there is no --output{hint}")
    from .runs import format_for

    implied = outputs.OUTPUT_SUFFIXES.get(Path(args.output).suffix.lower())
    if implied is not None and implied != fmt:
        raise UsageError(f"run: --format {fmt}, but --output {args.output} is {implied} by its suffix (--format "
                         f"is the format of --output's work items; the run record is printed by --print {fmt})")
    return format_for(args.output, fmt)


def _run(args: argparse.Namespace) -> int:
    from .runs import run

    fmt = run_format(args)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        record = run(args.pools, args.db, inventory_dir=args.inventory_dir, output=args.output,
                     output_format=fmt, skip_bad=args.skip_bad, wait=args.wait, create=args.create)
    except Exception as exc:
        _print_record(getattr(exc, "run_record", None), args.print_format)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_record(record, args.print_format)
    return 0


def _print_record(record: dict | None, fmt: str | None) -> None:
    if record is None or fmt is None:
        return
    from .runs import joined_inputs

    if fmt == "json":
        print(json.dumps(record))
        return
    record = {**record, "inputs": joined_inputs(record["inputs"])}  # as `runs` writes it in CSV and the table
    if fmt == "csv":
        sys.stdout.write(pd.DataFrame([record]).to_csv(index=False))
    else:
        shown = record
        outputs.write(pd.DataFrame({"field": list(shown), "value": [("" if v is None else str(v))
                                                                    for v in shown.values()]}), "table")
