"""The command line: a thin layer over the library, with the same verbs.

One handler per command, named after the library function it calls (``rules list`` is
:func:`rules`, which calls :func:`catalog.rules`), registered on its parser with
``set_defaults(handler=...)``; each command's ``--help`` ends with an example. The file
reads in parts: the options several commands share; :func:`build_parser`, the program's
parser; then one block per command, in the order of ``l2rules --help``: ``_add_<command>``
(its parser and arguments; a group's actions ``_add_<group>_<action>``) beside its handler and
what only it uses; last, parsing and running a command (:func:`parse_args`, :func:`main`).

``--format`` is always the format of the command's data (table, csv, json; parquet where
there is an --output); ``run --print`` prints the run record.

Exit codes (for cron): ``EXIT_CODES``, the one table (the docs are generated from it).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import sqlalchemy as sa

import l2rules  # the library API: l2rules.worklist is the function (the package binds it over its module)

from . import _fits_cli, association, catalog, console, inventory, migrate, outputs, points
from ._lazy import pandas as pd
from .association.orphans import DEFAULT_NAME as ORPHANS_NAME
from .config import (
    DatabaseError,
    L2RulesError,
    StatementCancelled,
    describe,
    drop_engine,
    get_engine,
    is_cancelled,
    mask_url,
    storage_problem,
)
from .inventory import fits

log = logging.getLogger("l2rules")
EXIT_DRIFT = 4
EXIT_INTERRUPTED = 130
#: Every exit code of the command line and what it means: the one table (docs/cli.md and
#: docs/getting-started.md are generated from it; tests check each error's code is in it).
EXIT_CODES = {  # code: (what, in more words)
    0: ("success", "also when there was nothing to do"),
    1: ("unexpected error", "a bug: please report it"),
    2: ("bad input", "a pool, a date, a revision, an unknown exp_type, options that cannot go together, an "
                     "option not modelled, a pool the pipeline cannot associate (no ASN_CANDIDATE), a file "
                     "`load --method bulk` declines, a file or directory the system refuses (no permission, "
                     "not a regular file, no space left: an output is then as it was) or a symbolic link "
                     "where an output would be written"),
    3: ("database or optional part missing", "database unreachable, bad URL, not created (no catalog: "
        "`l2rules init`, or `run --create`) or not migrated; or an optional part not installed (the message "
        "names the extra, as `pip install 'l2rules[report]'`), said before any output"),
    EXIT_DRIFT: ("`rules check` found a difference", "the database and `seeds/level2b_rules.csv` disagree"),
    5: ("another `l2rules run` is in progress", "`run --wait SECONDS` waits for it"),
    6: ("a statement the database cancelled", "a `statement_timeout`, a cancel request; it was rolled back"),
    EXIT_INTERRUPTED: ("interrupted", "Ctrl-C; what was under way was rolled back"),
    143: ("a run stopped by SIGTERM", "recorded failed"),
}
#: The formats a command prints to standard output (parquet needs a file: --output).
PRINTABLE = ("table", "csv", "json", "jsonl")
#: What a POOL argument's help says of ``-`` (``inventory.stdin``).
STDIN_HELP = "- reads standard input (the pool named stdin; errors name <stdin>)"


class UsageError(L2RulesError):
    """Options that cannot go together (exit 2, as argparse's own errors)."""

    exit_code = 2


class Terminated(L2RulesError):
    """The run was stopped by SIGTERM (a workflow engine's timeout, a shutdown): it is recorded as failed."""

    exit_code = 143


class _SigTerm(SystemExit):
    """What the SIGTERM handler raises, wherever the run is: an exit, as psycopg and SQLAlchemy know one.

    Raised while psycopg waits for the server, psycopg answers it as it answers Ctrl-C: it cancels the statement
    and waits for the server to end it; SQLAlchemy then discards that connection. An Exception raised there
    left the connection busy, and the run's cleanup and its failure record failed on it ("another command is
    already in progress", exit 3 with a traceback). :func:`run` turns it into :class:`Terminated`.
    """

    def __init__(self) -> None:
        super().__init__(Terminated.exit_code)

    def __str__(self) -> str:
        return "stopped by SIGTERM"


# --- options several commands share --------------------------------------------------------------

def _formats(parser: argparse.ArgumentParser, printable_only: bool = False) -> None:
    choices = PRINTABLE if printable_only else outputs.FORMATS
    parser.add_argument("--format", choices=choices, default=None,
                        help="format of the data (default: table; with --output, the one its suffix implies: "
                             f"{', '.join(f'{k} {v}' for k, v in outputs.OUTPUT_SUFFIXES.items())})")
    parser.add_argument("--columns", type=_column_list, metavar="A,B,...",
                        help="only these columns, in this order (a terminal table fits the terminal: long cells are "
                             "cut with an ellipsis; piped or to a file, every cell is whole)")


def _column_list(text: str) -> list[str]:
    columns = [name.strip() for name in text.split(",") if name.strip()]
    if not columns:
        raise argparse.ArgumentTypeError("give column names, separated by commas")
    return columns


def _as_of(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--as-of", metavar="DATE", help="use the rules in force on DATE (YYYY-MM-DD)")
    group.add_argument("--catalog-version", dest="catalog_version", metavar="REV",
                       help="use the rules of catalog version REV (a revision, as `rules versions` lists)")
    group.add_argument("--pipeline", metavar="RELEASE",
                       help="use the rules of jwst pipeline release RELEASE (e.g. 1.16.1; see `rules releases`)")


def _point(args: argparse.Namespace) -> dict:
    """The catalog point the three flags name, as the library's one ``at=`` value."""
    return {"at": points.named(args.as_of, args.catalog_version, args.pipeline)}


class _DeprecatedTable(argparse.Action):
    """``worklist --table`` / ``impact --table``: the old spelling of ``--published`` (``--table`` names a
    rules table in ``rules history`` and ``rules diff``: one meaning per flag)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"l2rules: warning: {parser.prog.split()[-1]} --table is deprecated and will be removed; "
              "it is --published now", file=sys.stderr)
        namespace.published = True


def _published(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--published", action="store_true", help=help)
    parser.add_argument("--table", action=_DeprecatedTable, nargs=0, help=argparse.SUPPRESS)


def _store(parser: argparse.ArgumentParser, answers: bool = False) -> None:
    kept = ("; and keep the pipeline's answers at the point asked (--pipeline, --as-of...), so that asking "
            "again reads them") if answers else ""
    parser.add_argument("--store", action="store_true",
                        help=f"load the POOLs into the catalog (as `load` does){kept}; without, the catalog is "
                             "left as it was: pools not loaded unchanged are evaluated in a scratch catalog")


def _skip_bad(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-bad", action="store_true", help="store bad rows in load_rejection instead of failing")


def _global_options(parser: argparse.ArgumentParser, default=None) -> None:
    """--db, -v and -q, on the program and on every (sub)command, so that they may come before or after it."""
    parser.add_argument("--db", metavar="URL", default=default,
                        help="database URL (sqlite:///file.db, postgresql://...)")
    parser.add_argument("-v", "--verbose", action="count", default=0 if default is None else default,
                        help="log more (-vv for SQL)")
    parser.add_argument("-q", "--quiet", action="store_true", default=False if default is None else default,
                        help="no progress bars and no informational messages on standard error (errors and "
                             "warnings still; standard output and exit codes the same)")


class _HelpFormatter(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal as usual; a paragraph with indented lines (the examples of
    the epilog) kept line for line, as :class:`argparse.RawDescriptionHelpFormatter` keeps them."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join("\n".join(indent + line for line in paragraph.splitlines())
                           if "\n " in paragraph else super(_HelpFormatter, self)._fill_text(paragraph, width, indent)
                           for paragraph in text.split("\n\n"))


class _Parser(argparse.ArgumentParser):
    """The program's parser and every command's: an option whose value looks like an option
    (``--as-of -2024-01-01``) is one line naming the option and the way to write such a value, not the
    usage block (argparse reads a word that starts with ``-`` as the next option)."""

    _EXPECTED = re.compile(r"argument (?P<names>[^:]+): expected (?:one|\d+) arguments?")

    def parse_known_args(self, args=None, namespace=None):
        self._words = list(sys.argv[1:] if args is None else args)  # (a command's parser: its own words)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        found = self._EXPECTED.fullmatch(message)
        if found is None:
            super().error(message)
        names = found["names"].split("/")
        words = getattr(self, "_words", [])
        given = [i for i, word in enumerate(words[:-1]) if word in names and words[i + 1].startswith("-")]
        if given:  # (the option given with a value that starts with '-', not the same option given before)
            option, value = words[given[-1]], words[given[-1] + 1]
            message += f" (write {option}={value} for a value that starts with '-')"
        self.exit(2, f"l2rules: error: {message}\n")


class _CommandParser(_Parser):
    """A (sub)command's parser: it takes the global options too, with no default of its own
    (argparse.SUPPRESS), so that ``l2rules --db URL worklist`` keeps the URL given before the command."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # `asn ... --version` must not be read as --version-id
        super().__init__(**kwargs)
        _global_options(self, default=argparse.SUPPRESS)


def _command(sub, name: str, handler, help: str, *examples: str, **kwargs) -> argparse.ArgumentParser:
    """A command's parser: its handler, and its examples (``l2rules ...`` lines) as the help's epilog."""
    parser = sub.add_parser(name, help=help, epilog=("Example:" if len(examples) == 1 else "Examples:") + "\n"
                            + "\n".join(f"  {line}" for line in examples), **kwargs)
    if handler is not None:  # (a group of commands, `rules`, has none: its actions have)
        parser.set_defaults(handler=handler)
    return parser


def examples(parser: argparse.ArgumentParser) -> list[str]:
    """The example command lines of a parser's help (its epilog's ``l2rules ...`` lines)."""
    return [line.strip() for line in (parser.epilog or "").splitlines() if line.strip().startswith("l2rules ")]


def program_version() -> str:
    try:
        return metadata.version("l2rules")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        from . import __version__

        return __version__


# --- the program's parser: each command adds its own (its block below) -----------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="l2rules", formatter_class=_HelpFormatter, allow_abbrev=False,
        description="The JWST Level 2b rules as a SQL catalog, and the work lists that come from it.",
        epilog="Database: --db URL, else $L2RULES_DATABASE_URL, else sqlite:///l2rules.db. "
               "Each command's --help has an example. Exit codes: "
               + "; ".join(f"{code} {what}" for code, (what, _) in EXIT_CODES.items())
               + " (docs/cli.md has the whole table).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {program_version()}",
                        help="print the program's version and exit")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser)

    for add_command in (_add_init, _add_db, _add_rules, _add_load, _add_pool, _add_worklist, _add_impact,
                        _add_explain, _add_asn, _add_unmatched, _add_rejections, _add_run, _add_runs, _add_report):
        add_command(sub)
    return parser


def _print(frame, args, output=None) -> None:
    outputs.write(frame, args.format, output, columns=getattr(args, "columns", None))


# --- l2rules init --------------------------------------------------------------------------------

def _add_init(sub) -> None:
    """``init``'s arguments."""
    _command(sub, "init", init, "create the catalog or upgrade it to the latest revision (safe to rerun)",
             "l2rules --db sqlite:///l2rules.db init")


def init(args: argparse.Namespace) -> int:
    """``init`` and ``db upgrade [REV]``: :func:`migrate.init`."""
    before, after = migrate.init(args.db, getattr(args, "revision", "head"))
    print(f"catalog at {describe(get_engine(args.db))}: revision {after}"
          + ("" if before == after else f" (was {before or 'empty'})"))
    return 0


# --- l2rules db ----------------------------------------------------------------------------------

def _add_db(sub) -> None:
    """``db``'s parser, and its actions' (each below, beside its handler)."""
    group = _command(sub, "db", None, "the catalog's schema migrations, packaged with l2rules (Alembic's commands, "
                                      "no alembic.ini needed): upgrade, downgrade, current, history",
                     "l2rules --db postgresql://postgres@127.0.0.1:5432/test db upgrade", "l2rules db current")
    dsub = group.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for add_action in (_add_db_upgrade, _add_db_downgrade, _add_db_current, _add_db_history):
        add_action(dsub)


def _add_db_upgrade(dsub) -> None:
    """``db upgrade``'s arguments."""
    p = _command(dsub, "upgrade", init, "create the catalog or upgrade it to REV (as `l2rules init`; `alembic upgrade "
                                        "head` without alembic.ini): one transaction, the migration lock held",
                 "l2rules db upgrade", "l2rules --db sqlite:///l2rules.db db upgrade 0056")
    p.add_argument("revision", nargs="?", default="head", metavar="REV",
                   help="the revision to reach (default: head, the latest)")


def _add_db_downgrade(dsub) -> None:
    """``db downgrade``'s arguments."""
    p = _command(dsub, "downgrade", downgrade, "downgrade the catalog to REV (a revision, -1, base), in one "
                                               "transaction",
                 "l2rules db downgrade -1", "l2rules db downgrade 0007 --drop-data")
    p.add_argument("revision", metavar="REV", help="the revision to reach: a revision (0056), -N (N steps down) "
                                                   "or base (no catalog)")
    p.add_argument("--drop-data", action="store_true",
                   help="go below 0008 (runs, work items) or 0003 (pools, exposures) even while those tables hold "
                        "rows, dropping them (default: refused, nothing changed)")


def downgrade(args: argparse.Namespace) -> int:
    """``db downgrade REV``: :func:`migrate.downgrade`."""
    try:
        after = migrate.downgrade(args.db, args.revision, drop_data=args.drop_data)
    except migrate.MigrationError as exc:
        if "drop_data" not in str(exc):
            raise
        raise migrate.MigrationError(f"{exc}; here: l2rules db downgrade {args.revision} --drop-data") from None
    print(f"catalog at {describe(get_engine(args.db))}: revision {after or 'none (base: no catalog left)'}")
    return 0


def _add_db_current(dsub) -> None:
    """``db current``'s arguments."""
    _command(dsub, "current", current, "the catalog's revision, as `alembic current` prints it (0059 (head))",
             "l2rules db current")


def current(args: argparse.Namespace) -> int:
    """``db current``: :func:`migrate.current` (Alembic's ``current``)."""
    migrate.current(args.db)
    return 0


def _add_db_history(dsub) -> None:
    """``db history``'s arguments."""
    _command(dsub, "history", revisions, "the revisions, newest first, as `alembic history` prints them",
             "l2rules db history")


def revisions(args: argparse.Namespace) -> int:
    """``db history``: :func:`migrate.revisions` (Alembic's ``history``)."""
    migrate.revisions()
    return 0


# --- l2rules rules -------------------------------------------------------------------------------

def _add_rules(sub) -> None:
    """``rules``'s parser, and its actions' (each below, beside its handler)."""
    group = _command(sub, "rules", None, "the rules catalog: list, show, history, diff, check, revision",
                     "l2rules rules list --instrument MIRI", "l2rules rules diff --from 1.16.1 --to 3.0.0")
    rsub = group.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    for add_action in (_add_rules_list, _add_rules_show, _add_rules_history, _add_rules_tables,
                       _add_rules_releases, _add_rules_rows, _add_rules_versions, _add_rules_diff,
                       _add_rules_check, _add_rules_revision):
        add_action(rsub)


def _add_rules_list(rsub) -> None:
    """``rules list``'s arguments."""
    p = _command(rsub, "list", rules, "the rules in force (now, or --as-of DATE / --catalog-version REV)",
                 "l2rules rules list --instrument MIRI --as-of 2024-06-01 --format csv --output rules.csv")
    p.add_argument("--exp-type", help="only this EXP_TYPE")
    p.add_argument("--instrument", help="only this instrument (NIRCam, MIRI, NIRSpec, NIRISS, FGS)")
    _as_of(p)
    _formats(p)
    p.add_argument("--output", metavar="PATH")


def rules(args: argparse.Namespace) -> int:
    """``rules list``: :func:`catalog.rules`."""
    _print(catalog.rules(args.db, **_point(args), exp_type=args.exp_type, instrument=args.instrument),
           args, args.output)
    return 0


def _add_rules_show(rsub) -> None:
    """``rules show``'s arguments."""
    p = _command(rsub, "show", conditions, "the rules and conditions of one EXP_TYPE",
                 "l2rules rules show NRS_FIXEDSLIT --pipeline 1.16.1")
    p.add_argument("exp_type")
    _as_of(p)
    _formats(p, printable_only=True)


def conditions(args: argparse.Namespace) -> int:
    """``rules show``: :func:`catalog.rules` of one EXP_TYPE, then its :func:`catalog.conditions`."""
    frame = catalog.rules(args.db, **_point(args), exp_type=args.exp_type)
    if frame.empty:
        raise catalog.CatalogError(f"no rule for exp_type {args.exp_type!r}")
    _print(frame, args)
    conds = catalog.conditions(args.db, **_point(args), exp_type=args.exp_type)
    if not conds.empty:
        if args.format == "table":
            print("\nconditions:")
        _print(conds, args)
    return 0


def _add_rules_history(rsub) -> None:
    """``rules history``'s arguments."""
    p = _command(rsub, "history", history, "every state of an EXP_TYPE's rules (or of --table rows), with dates "
                                           "and references",
                 "l2rules rules history NRC_GRISM", "l2rules rules history Asn_Lv2Image --table asn_rule")
    p.add_argument("exp_type", metavar="KEY", help="an EXP_TYPE; with --table, the first key column's value "
                                                   "(a rule name, a set name, ...)")
    p.add_argument("--table", default="rule", help="a rules table: rule (the published table, default), asn_rule, "
                                                   "asn_condition, asn_value_set, ... (see `rules tables`)")
    _formats(p, printable_only=True)


def history(args: argparse.Namespace) -> int:
    """``rules history``: :func:`catalog.history`."""
    _print(catalog.history(args.db, args.exp_type, table=args.table), args)
    return 0


def _add_rules_tables(rsub) -> None:
    """``rules tables``'s arguments."""
    p = _command(rsub, "tables", tables, "the rules tables and their seed files", "l2rules rules tables")
    _formats(p, printable_only=True)


def tables(args: argparse.Namespace) -> int:
    """``rules tables``: :func:`catalog.tables`."""
    _print(catalog.tables(), args)
    return 0


def _add_rules_releases(rsub) -> None:
    """``rules releases``'s arguments."""
    p = _command(rsub, "releases", releases, "the jwst pipeline releases the catalog can answer for",
                 "l2rules rules releases --format csv")
    _formats(p, printable_only=True)


def releases(args: argparse.Namespace) -> int:
    """``rules releases``: :func:`catalog.releases`."""
    _print(catalog.releases(args.db), args)
    return 0


def _add_rules_rows(rsub) -> None:
    """``rules rows``'s arguments."""
    p = _command(rsub, "rows", table_rows, "the rows of one rules table in force (now, --as-of, --catalog-version, "
                                           "--pipeline)",
                 "l2rules rules rows asn_condition --pipeline 1.16.1 --format json")
    p.add_argument("table", help="rule, asn_rule, asn_condition, ... (see `rules tables`)")
    _as_of(p)
    _formats(p, printable_only=True)


def table_rows(args: argparse.Namespace) -> int:
    """``rules rows``: :func:`catalog.table_rows`."""
    _print(catalog.table_rows(args.db, args.table, **_point(args)), args)
    return 0


def _add_rules_versions(rsub) -> None:
    """``rules versions``'s arguments."""
    p = _command(rsub, "versions", versions, "the catalog versions: revision, effective date, reference, summary",
                 "l2rules rules versions")
    _formats(p, printable_only=True)


def versions(args: argparse.Namespace) -> int:
    """``rules versions``: :func:`catalog.versions`."""
    _print(catalog.versions(args.db), args)
    return 0


def _add_rules_diff(rsub) -> None:
    """``rules diff``'s arguments."""
    p = _command(rsub, "diff", diff_all, "rows of every rules table added, removed and changed between two points "
                                         "(dates, revisions or pipeline releases)",
                 "l2rules rules diff --from 1.16.1 --to 3.0.0 --table asn_rule")
    p.add_argument("--from", dest="from_point", metavar="A", help="date, catalog revision or pipeline release")
    p.add_argument("--to", dest="to_point", metavar="B", help="date, catalog revision or pipeline release")
    # The older positional form `rules diff A B`, still accepted (not shown in the help).
    p.add_argument("from_positional", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("to_positional", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("--table", action="append", help="only this rules table (repeatable)")
    _formats(p, printable_only=True)


def _end_points(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``rules diff``: --from A --to B, or the older positional A B (not both, and both ends)."""
    positional = [v for v in (args.from_positional, args.to_positional) if v is not None]
    options = [v for v in (args.from_point, args.to_point) if v is not None]
    if positional and options:
        parser.error("rules diff: give the end points as --from A --to B (or as A B), not both ways")
    if positional:
        if len(positional) != 2:
            parser.error("rules diff: give both end points: --from A --to B")
        args.from_point, args.to_point = positional
    elif len(options) != 2:
        parser.error("rules diff: the following arguments are required: --from, --to")


def diff_all(args: argparse.Namespace) -> int:
    """``rules diff``: :func:`catalog.diff_all` (end points checked by :func:`_end_points`)."""
    _print(catalog.diff_all(args.db, args.from_point, args.to_point, args.table), args)
    return 0


def _add_rules_check(rsub) -> None:
    """``rules check``'s arguments."""
    p = _command(rsub, "check", check_all, "exit 4, naming the rows, if the database and any seed file disagree",
                 "l2rules rules check --seeds seeds/")
    p.add_argument("--seed", metavar="CSV", help="the published table's seed file (default: seeds/level2b_rules.csv)")
    p.add_argument("--seeds", metavar="DIR", help="directory of the seed files (default: seeds/)")


def check_all(args: argparse.Namespace) -> int:
    """``rules check``: :func:`catalog.check_all`; exit 4 on drift."""
    drift = catalog.check_all(args.db, args.seeds, seed=args.seed)
    if drift.empty:
        print("the database's rules equal the seed files")
        return 0
    outputs.write(drift, "table", stream=sys.stderr)
    print(f"l2rules: drift: {len(drift)} difference(s) between the database and the seed files", file=sys.stderr)
    return EXIT_DRIFT


def _add_rules_revision(rsub) -> None:
    """``rules revision``'s arguments."""
    p = _command(rsub, "revision", write_revision, "write an Alembic revision with the seed CSV's changes since the "
                                                   "head",
                 "l2rules rules revision -m 'MIR_LRS-SLITLESS: Level 2b input' --date 2025-03-01 --ref jwst#9000")
    p.add_argument("-m", "--message", required=True, help="one-line summary of the change")
    p.add_argument("--date", required=True,
                   help="when the change takes effect: a date (YYYY-MM-DD) or a pipeline release (1.15.0), "
                        "before revisions written earlier if need be")
    p.add_argument("--ref", required=True, help="reference: jwst PR or issue")
    p.add_argument("--seed", metavar="CSV", help="the published table's seed file (default: seeds/level2b_rules.csv)")
    p.add_argument("--seeds", metavar="DIR", help="directory of the other seed files (default: seeds/)")


def write_revision(args: argparse.Namespace) -> int:
    """``rules revision``: :func:`catalog.write_revision`."""
    plan = catalog.plan_revision(args.date, seed=args.seed, seeds=args.seeds)
    path = catalog.write_revision(args.message, args.date, args.ref, seed=args.seed, seeds=args.seeds, plan=plan)
    if path is None:
        print("the seed files equal the head revision: nothing to write")
        return 0
    for note in plan.notes:  # what it splits and carries into, in effective order
        print(note)
    print(f"wrote {path} (effective {plan.effective}); apply it with `l2rules db upgrade` (or `alembic upgrade "
          "head`)")
    return 0


# --- l2rules load --------------------------------------------------------------------------------

def _add_load(sub) -> None:
    """``load``'s arguments."""
    p = _command(sub, "load", load, "load pools, CSV files or FITS files (.fits, .fits.gz, directories, globs: "
                                    "their primary headers) into the catalog database",
                 "l2rules load samples/pools/pool_002_image_miri.csv samples/pools/pool_003_image_nircam.csv",
                 "l2rules load raw/jw01234/ --asn-candidate \"[('c1000', 'background')]\"")
    p.add_argument("pools", nargs="+", metavar="POOL", help=f"a pool or CSV file, or FITS input; {STDIN_HELP}")
    _skip_bad(p)
    p.add_argument("--method", choices=inventory.METHODS, default="auto",
                   help="bulk: the columnar path (fails if the file is not one for it); rows: line by line; "
                        "auto (default): bulk for files of 8 MB or more, line by line for the rest and for "
                        "any file the bulk path declines")
    _fits_cli.add_options(p)  # --asn-candidate... for FITS input


def load(args: argparse.Namespace) -> int:
    """``load``: :func:`inventory.load`, for each source."""
    for path, source, options in _fits_cli.sources(args):
        result = inventory.load(args.db, source, skip_bad=args.skip_bad, method=args.method, **options)
        print(f"{path}: {result.loaded} exposures ({result.inserted} new, {result.updated} updated"
              + (f", {result.changed} changed" if result.changed is not None else "")
              + (", bulk" if result.method == "bulk" else "") + ")"
              + (f", {result.duplicates} repeated rows ignored" if result.duplicates else "")
              + (f", {result.template_rows} template rows set aside" if result.template_rows else "")
              + (f", {result.rejected} rows rejected (see `l2rules rejections`)" if result.rejected else "")
              + "".join(f", {count} taken over from pool {name}" for name, count in result.taken_from.items()))
    return 0


# --- l2rules pool --------------------------------------------------------------------------------

def _add_pool(sub) -> None:
    """``pool``'s arguments."""
    p = _command(sub, "pool", make_pool, "write the pool of FITS files (primary headers) in the pipeline's "
                                         "format, as asn_make_pool does",
                 "l2rules pool raw/jw01234/*.fits --output jw01234_pool.csv")
    p.add_argument("files", nargs="+", metavar="FITS", help="FITS files (.fits, .fits.gz), directories, globs")
    p.add_argument("--output", "-o", metavar="POOL", help="the pool file to write (default: standard output)")
    p.add_argument("--skip-bad", action="store_true", help="leave bad files out (named on standard error) "
                                                           "instead of failing")
    _fits_cli.add_options(p)


def make_pool(args: argparse.Namespace) -> int:
    """``pool``: :func:`inventory.fits.make_pool`, written to --output or standard output."""
    made = fits.make_pool(args.files, options=_fits_cli.options(args))
    if made.errors and not args.skip_bad:
        raise made.errors[0]
    for error in made.errors:
        print(f"l2rules: skipped {error}", file=sys.stderr)
    count = made.write(args.output)
    if args.output:
        left_out = f" ({len(made.errors)} bad files left out)" if made.errors else ""
        console.info(f"{count} exposures written to {args.output}{left_out}")
    return 0


# --- l2rules worklist ----------------------------------------------------------------------------

def _add_worklist(sub) -> None:
    """``worklist``'s arguments."""
    p = _command(sub, "worklist", worklist, "the Level 2b work list: what the pipeline does with each exposure "
                                            "(of the POOLs alone when given)",
                 "l2rules worklist samples/pools/pool_002_image_miri.csv --all --format csv --output work.csv")
    p.add_argument("pools", nargs="*", metavar="POOL", help=f"a pool or CSV file; {STDIN_HELP}")
    p.add_argument("--all", action="store_true", help="every exposure, with level2b true/false and why")
    _published(p, "the published table's work list alone (one SQL query, streamed)")
    p.add_argument("--associations", action="store_true",
                   help="with --published: add the pipeline's Level 2b associations each exposure is the science of")
    _skip_bad(p)
    _store(p, answers=True)
    _as_of(p)
    _formats(p)
    p.add_argument("--output", metavar="PATH", help="write to PATH instead of standard output")


def worklist(args: argparse.Namespace) -> int:
    """``worklist``: :func:`l2rules.worklist` (the published table's list as CSV or Parquet:
    :func:`l2rules.write_worklist`, streamed)."""
    options = dict(pools=args.pools or None, include_all=args.all, **_point(args), skip_bad=args.skip_bad,
                   store=args.store)
    if args.associations and not args.published:
        raise L2RulesError("--associations adds the pipeline's associations to the published table's list "
                           "(--published); the default work list already is the pipeline's")
    # (the pipeline's list goes through the frame: its Parquet types are the library frame's, a test holds them)
    if args.published and args.format in outputs.STREAMED_FORMATS and not (args.associations or args.columns):
        count = l2rules.write_worklist(args.db, args.output, fmt=args.format, source="table", **options)
    else:
        frame = l2rules.worklist(args.db, associations=args.associations,
                                 source="table" if args.published else "pipeline", **options)
        _print(frame, args, args.output)
        count = len(frame)
    if args.output:
        console.info(f"{count} work items written to {args.output}")
    return 0


# --- l2rules impact ------------------------------------------------------------------------------

def _add_impact(sub) -> None:
    """``impact``'s arguments."""
    p = _command(sub, "impact", impact, "exposures that a rules change moves in or out of the work list",
                 "l2rules impact --from 1.16.1 --to 3.0.0 --format csv")
    p.add_argument("--from", dest="from_point", required=True, metavar="A",
                   help="date, catalog revision or pipeline release (1.16.1)")
    p.add_argument("--to", dest="to_point", required=True, metavar="B",
                   help="date, catalog revision or pipeline release (3.0.0)")
    _published(p, "compare the published table's work lists instead of the pipeline's (asn_type, role, "
                  "Level 2b input, association)")
    p.add_argument("pools", nargs="*", metavar="POOL", help=f"a pool or CSV file; {STDIN_HELP}")
    _store(p)
    _formats(p, printable_only=True)


def impact(args: argparse.Namespace) -> int:
    """``impact``: :func:`l2rules.impact`."""
    exposures, counts = l2rules.impact(args.db, args.from_point, args.to_point, pools=args.pools or None,
                                       source="table" if args.published else "pipeline", store=args.store)
    _print(exposures, args)
    if args.format == "table":  # (--columns names the exposures' columns)
        print()
        outputs.write(counts, args.format)
    return 0


# --- l2rules explain -----------------------------------------------------------------------------

def _add_explain(sub) -> None:
    """``explain``'s arguments."""
    p = _command(sub, "explain", explain, "why an exposure is or is not the science of a Level 2b association",
                 "l2rules explain jw_00001_uncal.fits --pool samples/pools/pool_002_image_miri.csv")
    p.add_argument("filename", metavar="FILENAME", help="the exposure's FILENAME (or its stem)")
    p.add_argument("--pool", metavar="P", help=f"a loaded pool's name or id, or a pool file; {STDIN_HELP}")
    _store(p)
    _as_of(p)
    _formats(p, printable_only=True)


def explain(args: argparse.Namespace) -> int:
    """``explain``: :func:`association.explain`."""
    _print(association.explain(args.db, args.filename, args.pool, **_point(args), store=args.store), args)
    return 0


# --- l2rules asn ---------------------------------------------------------------------------------

def _add_asn(sub) -> None:
    """``asn``'s arguments."""
    p = _command(sub, "asn", asn, "write the POOLs' Level 2b associations as the pipeline does (asn_generate's "
                                  "command line)",
                 "l2rules asn samples/pools/pool_002_image_miri.csv -p asn/ --pipeline 1.16.1",
                 "l2rules asn samples/pools/pool_010_spec_nirspec_lv2bkg.csv --DMS -p asn/ -i o001 c1000",
                 description="Writes the association files asn_generate writes for Level 2b "
                             "(`asn_generate -r rules_level2b.py --ignore-default POOL`), with its options: "
                             "`l2rules-asn-generate` is this command under asn_generate's name. Only the Level 2b "
                             "rules are modelled: -r may name only jwst's rules_level2b.py. Options of asn_generate "
                             "that would change what is written and that l2rules does not model (--merge, "
                             "--no-finalize, --per-pool-algorithm, another --format, --delimiter or --pool-format) "
                             "exit 2 naming the option.")
    p.add_argument("pools", nargs="+", metavar="POOL", help=f"a pool file; {STDIN_HELP}")
    p.add_argument("-p", "--path", "--output", dest="output", default=".", metavar="DIR",
                   help="directory for the *_asn.json files, as asn_generate's -p (default: the current "
                        "directory; one subdirectory per pool when several are given)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-i", "--ids", dest="candidate_ids", nargs="+", metavar="ID",
                      help="only these candidates' associations (no discovery pass), as asn_generate's -i")
    mode.add_argument("--all-candidates", action="store_true",
                      help="every candidate's associations, without the discovery pass's copies")
    mode.add_argument("--discover", action="store_true",
                      help="only the discovery pass's associations that no candidate's equals, as asn_generate's "
                           "(for Level 2b: the parallel WFSS copies, a3001)")
    p.add_argument("--DMS", dest="dms", action="store_true",
                   help="operational mode, as the catalog point's release ran it (from jwst 1.18.0 it changes "
                        "what -i makes: see docs/associations.md)")
    p.add_argument("--version-id", nargs="?", const=True, default=None, metavar="STAMP",
                   help="the files' version_id, also in their names, as asn_generate's --version-id (without "
                        "STAMP: the time, UTC, YYYYMMDDtHHMMSS); default none (null), as asn_generate's")
    p.add_argument("--dry-run", action="store_true", help="evaluate and list the files, write none")
    p.add_argument("-r", "--rules", action="append", metavar="FILE",
                   help="accepted when it names jwst's rules_level2b.py (the rules l2rules models)")
    p.add_argument("--ignore-default", action="store_true",
                   help="accepted: only the Level 2b rules are ever used")
    p.add_argument("--no-merge", action="store_true", help="accepted: not merging is the default")
    for flag, meaning in (("--merge", "merged associations"), ("--no-finalize", "unfinalized associations"),
                          ("--per-pool-algorithm", "the per-pool algorithm at releases from 1.14.0")):
        p.add_argument(flag, action="store_true", help=f"refused: {meaning} are not modelled")
    p.add_argument("--save-orphans", nargs="?", const=ORPHANS_NAME, default=None, metavar="FILE",
                   help=f"also write asn_generate's orphans table as FILE (default {ORPHANS_NAME}) beside the "
                        "files: the pool's rows as the pipeline reads them (every row: see "
                        "docs/associations.md)")
    p.add_argument("--format", dest="asn_format", choices=("json",), default="json",
                   help="format of the association files, as asn_generate's: json (its default; yaml is not "
                        "written)")
    p.add_argument("-d", "--delimiter", default="|", help="the pool's delimiter: | (the only one)")
    p.add_argument("--pool-format", default="ascii", help="the pool's format: ascii (the only one)")
    p.add_argument("-D", "--debug", dest="verbose", action="store_const", const=2, default=argparse.SUPPRESS,
                   help="log everything, the SQL included (as -vv)")
    p.add_argument("--version", action="version", version=f"%(prog)s {program_version()}",
                   help="print the program's version and exit")
    _skip_bad(p)
    _store(p)
    _as_of(p)


def asn(args: argparse.Namespace) -> int:
    """``asn``: :func:`association.asn`, asn_generate's options checked first."""
    selection = association.Selection.of(args.candidate_ids, all_candidates=args.all_candidates,
                                         discover=args.discover, dms=args.dms)
    written = association.asn(args.db, args.pools, args.output, skip_bad=args.skip_bad, version_id=args.version_id,
                              store=args.store, selection=selection, dry_run=args.dry_run,
                              save_orphans=args.save_orphans, **_point(args))
    if args.dry_run:
        print("\n".join(str(path) for path in written))
        print(f"{len(written)} associations, none written (--dry-run)")
    else:
        print(f"{len(written)} associations written to {args.output}")
    for path in written.orphans:
        print(f"orphans table written to {path}")
    return 0


def _unmodelled(args: argparse.Namespace) -> None:
    """asn_generate's options that would change what it writes and that l2rules does not model: exit 2."""
    refused = [("--merge", args.merge), ("--no-finalize", args.no_finalize),
               ("--per-pool-algorithm", args.per_pool_algorithm),
               (f"--delimiter {args.delimiter}", args.delimiter != "|"),
               (f"--pool-format {args.pool_format}", args.pool_format != "ascii")]
    refused += [(f"-r {name}", Path(name).name not in RULES_LEVEL2B) for name in args.rules or []]
    for option, given in refused:
        if given:
            raise UsageError(f"asn {option}: not modelled (l2rules writes what asn_generate -r rules_level2b.py "
                             "--ignore-default writes, in its default or --DMS mode, with -i, --all-candidates or "
                             "--discover)")


#: What -r may name: jwst's Level 2b rules (as a path, a file name or the module's name).
RULES_LEVEL2B = ("rules_level2b.py", "rules_level2b")


def asn_generate(argv: Sequence[str] | None = None) -> int:
    """``l2rules-asn-generate``: asn_generate's command line for Level 2b, i.e. ``l2rules asn ARGS``."""
    return main(["asn", *(sys.argv[1:] if argv is None else argv)])


# --- l2rules unmatched ---------------------------------------------------------------------------

def _add_unmatched(sub) -> None:
    """``unmatched``'s arguments."""
    p = _command(sub, "unmatched", unmatched, "loaded exposures whose EXP_TYPE the catalog does not know",
                 "l2rules unmatched --format csv")
    _formats(p, printable_only=True)


def unmatched(args: argparse.Namespace) -> int:
    """``unmatched``: :func:`l2rules.unmatched`."""
    _print(l2rules.unmatched(args.db), args)
    return 0


# --- l2rules rejections --------------------------------------------------------------------------

def _add_rejections(sub) -> None:
    """``rejections``'s arguments."""
    p = _command(sub, "rejections", rejections, "rows that --skip-bad loads refused, with the reason",
                 "l2rules rejections --format json")
    _formats(p, printable_only=True)


def rejections(args: argparse.Namespace) -> int:
    """``rejections``: :func:`inventory.rejections`."""
    _print(inventory.rejections(args.db), args)
    return 0


# --- l2rules run ---------------------------------------------------------------------------------

def _add_run(sub) -> None:
    """``run``'s arguments."""
    p = _command(
        sub, "run", run, "one scheduled run: load new or changed inventories, make the missing work items, record it",
        "l2rules run --inventory-dir /data/pools --output out/worklist-{run_id}.csv --print json",
        "l2rules run samples/pools/pool_002_image_miri.csv --output items.out --format parquet --wait 600",
        description="One scheduled run, safe from cron: loads the inventories that are new or changed, makes a "
                    "work item for every exposure the pipeline selects (as `l2rules worklist` answers) that has "
                    "none yet (or whose answer changed since its item was made, or whose exposure a redelivery "
                    "changed), withdraws the items of exposures a redelivery left out, and records the run. "
                    "Quiet unless asked. Exit codes: 0 done (also when there was nothing to do), 2 bad input, "
                    "3 database unreachable, not created or not migrated, 5 another run is in progress.")
    p.add_argument("pools", nargs="*", metavar="POOL", help=f"pool or CSV files to load first; {STDIN_HELP}")
    p.add_argument("--inventory-dir", metavar="DIR", help="also load every *.csv file of DIR")
    p.add_argument("--output", metavar="PATH",
                   help="write the run's new work items to PATH ('{run_id}' is replaced by the run's id); "
                        "written only when there are some")
    p.add_argument("--format", choices=outputs.FORMATS,
                   help=f"format of --output's work items (default: the one its suffix implies, "
                        f"{', '.join(outputs.OUTPUT_SUFFIXES)}; another suffix needs --format)")
    p.add_argument("--print", dest="print_format", choices=PRINTABLE,
                   help="print the run record in this format (default: print nothing)")
    # Before issue 14, --output-format was the data's format (now --format), --format the record's (now --print).
    p.add_argument("--output-format", dest="old_output_format", choices=outputs.FORMATS, help=argparse.SUPPRESS)
    _skip_bad(p)
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for a run in progress to end (default: exit 5 at once)")
    p.add_argument("--create", action="store_true",
                   help="create the catalog if the SQLite database does not exist yet (default: exit 3, naming it)")


def run(args: argparse.Namespace) -> int:
    """``run``: :func:`runs.run`, the record printed with --print; SIGTERM ends it as a failed run."""
    from . import runs as runs_lib

    fmt = _run_format(args)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        record = runs_lib.run(args.db, args.pools, inventory_dir=args.inventory_dir, output=args.output,
                              output_format=fmt, skip_bad=args.skip_bad, wait=args.wait, create=args.create)
    except _SigTerm as exc:  # (recorded failed by runs.run, on a fresh connection)
        _print_record(getattr(exc, "run_record", None), args.print_format)
        raise Terminated(str(exc)) from None
    except Exception as exc:
        _print_record(getattr(exc, "run_record", None), args.print_format)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_record(record, args.print_format)
    return 0


def _run_format(args: argparse.Namespace) -> str | None:
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
    implied = outputs.OUTPUT_SUFFIXES.get(Path(args.output).suffix.lower())
    if implied is not None and implied != fmt:
        raise UsageError(f"run: --format {fmt}, but --output {args.output} is {implied} by its suffix (--format "
                         f"is the format of --output's work items; the run record is printed by --print {fmt})")
    return outputs.output_format(args.output, fmt)


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by a subprocess test
    raise _SigTerm()


def _print_record(record: dict | None, fmt: str | None) -> None:
    """The run record: JSON as the library has it (inputs a list); CSV and the table with the inputs
    joined as ``runs`` writes them (:func:`runs.joined_inputs`)."""
    if record is None or fmt is None:
        return
    if fmt in ("json", "jsonl"):  # one record: one line either way
        print(json.dumps(record))
        return
    from .runs import joined_inputs

    record = {**record, "inputs": joined_inputs(record["inputs"])}
    if fmt == "csv":
        sys.stdout.write(pd.DataFrame([record]).to_csv(index=False))
    else:
        outputs.write(pd.DataFrame({"field": list(record), "value": [("" if v is None else str(v))
                                                                     for v in record.values()]}), "table")


# --- l2rules runs --------------------------------------------------------------------------------

def _add_runs(sub) -> None:
    """``runs``'s arguments."""
    p = _command(sub, "runs", runs, "the run record: when, on which catalog revision, with what result",
                 "l2rules runs --last 5 --status failed --format json",
                 description="The run record; reads only. A run recorded running whose process is gone shows as "
                             "dead until the next run (or --recover) marks it failed. A run's inputs are a list in "
                             "JSON, and the paths joined by ';' in CSV and the table.")
    p.add_argument("--last", type=int, default=20, metavar="N", help="only the last N runs (default 20; 0: all)")
    p.add_argument("--status", choices=("running", "succeeded", "failed", "dead"))
    p.add_argument("--recover", action="store_true",
                   help="first mark dead runs failed in the record (what the next run would do; this writes)")
    _formats(p, printable_only=True)


def runs(args: argparse.Namespace) -> int:
    """``runs``: :func:`runs.runs` (after :func:`runs.recover` with --recover)."""
    from . import runs as runs_lib

    if args.recover:
        runs_lib.recover(args.db)
    frame = runs_lib.runs(args.db, last=args.last or None, status=args.status)
    if args.format not in ("json", "jsonl"):  # inputs: a list in JSON, the paths joined by ';' in a text cell
        frame = runs_lib.as_text(frame)
    if args.format == "table":  # fit a terminal: whole seconds, and without these unless asked for
        if not args.columns:
            frame = frame.drop(columns=["host", "pid", "reissued_by", "output"])
        for column in ("started_at", "finished_at"):  # UTC times (NaT: not finished)
            frame[column] = frame[column].dt.strftime("%Y-%m-%d %H:%M:%S").astype(object)
    _print(frame, args)
    return 0


# --- l2rules report ------------------------------------------------------------------------------

def _add_report(sub) -> None:
    """``report``'s arguments."""
    p = _command(sub, "report", report, "a summary of the catalog, the work list and the runs (--html for a page)",
                 "l2rules report --html out/report.html")
    p.add_argument("--html", metavar="PATH", help="also write an HTML page with the tables and a chart")


def report(args: argparse.Namespace) -> int:
    """``report``: :func:`report.report`."""
    from . import report as report_lib

    report_lib.report(args.db, html=args.html, stream=sys.stdout)
    return 0


# --- parsing and running a command ---------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line, checked as argparse alone cannot (``rules diff``'s end points)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quiet and args.verbose:
        parser.exit(2, "l2rules: error: --quiet and --verbose (or asn's --debug) cannot go together\n")
    if args.handler is diff_all:
        _end_points(parser, args)
    if args.handler is asn:
        try:
            _unmodelled(args)
        except UsageError as exc:
            parser.exit(2, f"l2rules: error: {exc}\n")
    if args.handler is not run and "format" in vars(args):  # one suffix rule for every --output (run: _run_format)
        output = getattr(args, "output", None)
        try:
            args.format = outputs.output_format(output, args.format) if output else (args.format or "table")
        except outputs.OutputError as exc:
            parser.exit(2, f"l2rules: error: {exc}\n")
    _fits_cli.group_files(args)  # FITS files named one by one (a shell's DIR/*.fits) are one pool
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console.set_quiet(args.quiet)  # progress bars and informational messages: the one switch
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    if args.verbose >= 2:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    created = _created_file(args)
    code = 1  # an exception that escapes _handle (a bug) fails the command too
    try:
        code = _handle(args)
    finally:
        if created:
            for event, listener in created.pop("listeners"):
                sa.event.remove(created["engine"], event, listener)
            if code != 0:
                _remove_created(created)
    return code


def _created_file(args: argparse.Namespace) -> dict:
    """Watch whether this command creates its SQLite catalog file: filled at the engine's first connection
    (``path``, and the file's ``inode`` once made) when the file does not exist then; empty otherwise."""
    try:
        engine = get_engine(args.db) if hasattr(args, "db") else None
        path = None if engine is None else migrate.sqlite_file(engine)
    except L2RulesError:  # a bad URL: _handle says so
        return {}
    created: dict = {}
    if engine is None or path is None or path.exists():
        return created

    def before(*_args) -> None:  # (do_connect: before the driver opens, so creates, the file)
        created.setdefault("path", None if path.exists() else path)

    def after(*_args) -> None:
        if created.get("path") is not None and "inode" not in created:
            stat = path.stat()
            created["inode"] = (stat.st_dev, stat.st_ino)

    created.update(engine=engine, listeners=[("do_connect", before), ("connect", after)])
    for event, listener in created["listeners"]:
        sa.event.listen(engine, event, listener)
    return created


def _remove_created(created: dict) -> None:
    """A failed command leaves nothing behind: the file it created, if that very file (not one another
    process made in its place) holds no pool, rejection or run and no one else has it open."""
    path = created.get("path")
    if path is None or "inode" not in created:
        return
    drop_engine(created["engine"])
    try:
        stat = path.stat()
    except OSError:
        return
    if (stat.st_dev, stat.st_ino) == created["inode"]:
        migrate.remove_if_unused(path)


def _handle(args: argparse.Namespace) -> int:
    """The command's exit code: its handler's, or the documented code of the error it raised."""
    try:
        return args.handler(args)
    except L2RulesError as exc:
        print(f"l2rules: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except sa.exc.OperationalError as exc:
        if is_cancelled(exc):  # not "unreachable": the server answered, and stopped the statement
            print(f"l2rules: error: cancelled by the database: {migrate._first_line(exc)} (a statement_timeout or "
                  "a cancel request); what the statement did was rolled back", file=sys.stderr)
            return StatementCancelled.exit_code
        # (a full disk, a read-only database: said once, in config.storage_problem)
        print(f"l2rules: error: {mask_url(storage_problem(exc) or migrate._first_line(exc))}", file=sys.stderr)
        return DatabaseError.exit_code
    except sa.exc.DBAPIError as exc:  # a read-only PostgreSQL transaction is an InternalError (SQLSTATE 25006)
        problem = storage_problem(exc)
        if problem is None:
            raise
        print(f"l2rules: error: {mask_url(problem)}", file=sys.stderr)
        return DatabaseError.exit_code
    except KeyboardInterrupt:
        print("l2rules: interrupted; what was under way was rolled back", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `l2rules worklist | head`
        return 0
    except OSError as exc:  # a file named on the line that the system refuses (outputs.path_error: the one message)
        if exc.filename is None:
            raise
        error = outputs.path_error(exc)
        print(f"l2rules: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
