"""The command line: a thin layer over the library, with the same verbs.

Exit codes (for cron): 0 success, 1 unexpected error, 2 bad input, 3 database
unreachable, without a catalog (only the commands that load pools, ``init`` and
``run --create`` create one) or not migrated, 4 drift between the database and
the seed CSV, 5 another ``l2rules run`` is in progress, 6 a statement cancelled by the
database (``statement_timeout``, a cancel request), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import metadata

import sqlalchemy as sa

from . import _fits_cli, _runs_cli, association, catalog, inventory, migrate, outputs
from .worklist import impact, unmatched, worklist, write_worklist
from .config import DatabaseError, L2RulesError, StatementCancelled, describe, get_engine, is_cancelled

log = logging.getLogger("l2rules")
EXIT_DRIFT = 4
EXIT_INTERRUPTED = 130


def _formats(parser: argparse.ArgumentParser, printable_only: bool = False) -> None:
    choices = ("table", "csv", "json") if printable_only else outputs.FORMATS
    parser.add_argument("--format", choices=choices, default="table", help="output format (default: table)")


def _as_of(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--as-of", metavar="DATE", help="use the rules in force on DATE (YYYY-MM-DD)")
    group.add_argument("--catalog-version", dest="catalog_version", metavar="REV",
                       help="use the rules of catalog version REV (a revision, as `rules versions` lists)")
    group.add_argument("--pipeline", metavar="RELEASE",
                       help="use the rules of jwst pipeline release RELEASE (e.g. 1.16.1; see `rules releases`)")


def _point(args: argparse.Namespace) -> dict:
    return {"as_of": args.as_of, "version": args.catalog_version, "pipeline": args.pipeline}


def _global_options(parser: argparse.ArgumentParser, default=None) -> None:
    """--db and -v, on the program and on every (sub)command, so that they may come before or after it."""
    parser.add_argument("--db", metavar="URL", default=default,
                        help="database URL (sqlite:///file.db, postgresql://...)")
    parser.add_argument("-v", "--verbose", action="count", default=0 if default is None else default,
                        help="log more (-vv for SQL)")


class _CommandParser(argparse.ArgumentParser):
    """A (sub)command's parser: it takes the global options too, with no default of its own
    (argparse.SUPPRESS), so that ``l2rules --db URL worklist`` keeps the URL given before the command."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        _global_options(self, default=argparse.SUPPRESS)


def program_version() -> str:
    try:
        return metadata.version("l2rules")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        from . import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2rules",
        description="The JWST Level 2b rules as a SQL catalog, and the work lists that come from it.",
        epilog="Database: --db URL, else $L2RULES_DATABASE_URL, else sqlite:///l2rules.db.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {program_version()}",
                        help="print the program's version and exit")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser)

    sub.add_parser("init", help="create the catalog or upgrade it to the latest revision (safe to rerun)")

    rules = sub.add_parser("rules", help="the rules catalog: list, show, history, diff, check, revision")
    rsub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    p = rsub.add_parser("list", help="the rules in force (now, or --as-of DATE / --catalog-version REV)")
    p.add_argument("--exp-type", help="only this EXP_TYPE")
    p.add_argument("--instrument", help="only this instrument (NIRCam, MIRI, NIRSpec, NIRISS, FGS)")
    _as_of(p)
    _formats(p)
    p.add_argument("--output", metavar="PATH")
    p = rsub.add_parser("show", help="the rules and conditions of one EXP_TYPE")
    p.add_argument("exp_type")
    _as_of(p)
    _formats(p, printable_only=True)
    p = rsub.add_parser("history", help="every state of an EXP_TYPE's rules (or of --table rows), with dates "
                                         "and references")
    p.add_argument("exp_type", metavar="KEY", help="an EXP_TYPE; with --table, the first key column's value "
                                                   "(a rule name, a set name, ...)")
    p.add_argument("--table", default="rule", help="a rules table: rule (the published table, default), asn_rule, "
                                                   "asn_condition, asn_value_set, ... (see `rules tables`)")
    _formats(p, printable_only=True)
    p = rsub.add_parser("tables", help="the rules tables and their seed files")
    _formats(p, printable_only=True)
    p = rsub.add_parser("releases", help="the jwst pipeline releases the catalog can answer for")
    _formats(p, printable_only=True)
    p = rsub.add_parser("rows", help="the rows of one rules table in force (now, --as-of, --catalog-version, "
                                      "--pipeline)")
    p.add_argument("table", help="rule, asn_rule, asn_condition, ... (see `rules tables`)")
    _as_of(p)
    _formats(p, printable_only=True)
    p = rsub.add_parser("versions", help="the catalog versions: revision, effective date, reference, summary")
    _formats(p, printable_only=True)
    p = rsub.add_parser("diff", help="rows of every rules table added, removed and changed between two points "
                                      "(dates, revisions or pipeline releases)")
    p.add_argument("--from", dest="from_point", metavar="A", help="date, catalog revision or pipeline release")
    p.add_argument("--to", dest="to_point", metavar="B", help="date, catalog revision or pipeline release")
    # The older positional form `rules diff A B`, still accepted (not shown in the help).
    p.add_argument("from_positional", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("to_positional", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("--table", action="append", help="only this rules table (repeatable)")
    _formats(p, printable_only=True)
    p = rsub.add_parser("check", help="exit 4, naming the rows, if the database and any seed file disagree")
    p.add_argument("--seed", metavar="CSV", help="the published table's seed file (default: seeds/level2b_rules.csv)")
    p.add_argument("--seeds", metavar="DIR", help="directory of the seed files (default: seeds/)")
    p = rsub.add_parser("revision", help="write an Alembic revision with the seed CSV's changes since the head")
    p.add_argument("-m", "--message", required=True, help="one-line summary of the change")
    p.add_argument("--date", required=True, help="effective date (YYYY-MM-DD)")
    p.add_argument("--ref", required=True, help="reference: jwst PR or issue")
    p.add_argument("--seed", metavar="CSV", help="the published table's seed file (default: seeds/level2b_rules.csv)")
    p.add_argument("--seeds", metavar="DIR", help="directory of the other seed files (default: seeds/)")

    p = sub.add_parser("load", help="load pools, CSV files or FITS files (.fits, .fits.gz, directories, globs: "
                                    "their primary headers) into the catalog database")
    p.add_argument("pools", nargs="+", metavar="POOL")
    p.add_argument("--skip-bad", action="store_true", help="store bad rows in load_rejection instead of failing")
    p.add_argument("--method", choices=inventory.METHODS, default="auto",
                   help="bulk: the columnar path (fails if the file is not one for it); rows: line by line; "
                        "auto (default): bulk for files of 8 MB or more, line by line for the rest and for "
                        "any file the bulk path declines")
    _fits_cli.add(sub, p)  # --asn-candidate... for FITS input, and the `pool` command

    p = sub.add_parser("worklist", help="the Level 2b work list: what the pipeline does with each exposure "
                                          "(loads the POOLs first when given)")
    p.add_argument("pools", nargs="*", metavar="POOL")
    p.add_argument("--all", action="store_true", help="every exposure, with level2b true/false and why")
    p.add_argument("--table", action="store_true",
                   help="the published table's work list alone (one SQL query, streamed)")
    p.add_argument("--associations", action="store_true",
                   help="with --table: add the pipeline's Level 2b associations each exposure is the science of")
    p.add_argument("--skip-bad", action="store_true", help="store bad rows in load_rejection instead of failing")
    _as_of(p)
    _formats(p)
    p.add_argument("--output", metavar="PATH", help="write to PATH instead of standard output")

    p = sub.add_parser("impact", help="exposures that a rules change moves in or out of the work list")
    p.add_argument("--from", dest="from_point", required=True, metavar="A",
                   help="date, catalog revision or pipeline release (1.16.1)")
    p.add_argument("--to", dest="to_point", required=True, metavar="B",
                   help="date, catalog revision or pipeline release (3.0.0)")
    p.add_argument("--table", action="store_true",
                   help="compare the published table's work lists instead of the pipeline's (asn_type, role, "
                        "Level 2b input, association)")
    p.add_argument("pools", nargs="*", metavar="POOL")
    _formats(p, printable_only=True)

    p = sub.add_parser("explain", help="why an exposure is or is not the science of a Level 2b association")
    p.add_argument("filename", metavar="FILENAME", help="the exposure's FILENAME (or its stem)")
    p.add_argument("--pool", metavar="P", help="a loaded pool's name, or a pool file to load first")
    _as_of(p)
    _formats(p, printable_only=True)

    p = sub.add_parser("asn", help="load POOLs and write their Level 2b associations as the pipeline does")
    p.add_argument("pools", nargs="+", metavar="POOL")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="directory for the *_asn.json files (one subdirectory per pool when several are given)")
    p.add_argument("--skip-bad", action="store_true", help="store bad rows in load_rejection instead of failing")
    p.add_argument("--version-id", nargs="?", const=True, default=None, metavar="STAMP",
                   help="the files' version_id, also in their names, as asn_generate's --version-id (without "
                        "STAMP: the time, UTC, YYYYMMDDtHHMMSS); default none (null), as asn_generate's")
    _as_of(p)

    p = sub.add_parser("unmatched", help="loaded exposures whose EXP_TYPE the catalog does not know")
    _formats(p, printable_only=True)
    p = sub.add_parser("rejections", help="rows that --skip-bad loads refused, with the reason")
    _formats(p, printable_only=True)
    _runs_cli.add_commands(sub)
    return parser


def _print(frame, args, output=None) -> None:
    outputs.write(frame, args.format, output)


def run(args: argparse.Namespace) -> int:
    db = args.db
    if args.command == "init":
        before, after = migrate.init(db)
        engine = get_engine(db)
        print(f"catalog at {describe(engine)}: revision {after}"
              + ("" if before == after else f" (was {before or 'empty'})"))
        return 0
    if args.command == "rules":
        return _rules(args, db)
    _fits_cli.group_files(args)  # FITS files named one by one (a shell's DIR/*.fits) are one pool
    if args.command == "pool":
        return _fits_cli.pool(args)
    if args.command == "load":
        total = 0
        for path, source, options in _fits_cli.sources(args):
            result = inventory.load(source, db, skip_bad=args.skip_bad, method=args.method, **options)
            total += result.rejected
            print(f"{path}: {result.loaded} exposures ({result.inserted} new, {result.updated} updated"
                  + (f", {result.changed} changed" if result.changed is not None else "")
                  + (", bulk" if result.method == "bulk" else "") + ")"
                  + (f", {result.duplicates} repeated rows ignored" if result.duplicates else "")
                  + (f", {result.template_rows} template rows set aside" if result.template_rows else "")
                  + (f", {result.rejected} rows rejected (see `l2rules rejections`)" if result.rejected else ""))
        return 0
    if args.command == "worklist":
        options = dict(pools=args.pools or None, include_all=args.all, **_point(args), skip_bad=args.skip_bad)
        if args.associations and not args.table:
            raise L2RulesError("--associations adds the pipeline's associations to the published table's list "
                               "(--table); the default work list already is the pipeline's")
        if args.table and args.format in outputs.STREAMED_FORMATS and not args.associations:
            count = write_worklist(args.output, db, fmt=args.format, **options)
        else:
            frame = worklist(db, associations=args.associations, source="table" if args.table else "pipeline",
                             **options)
            _print(frame, args, args.output)
            count = len(frame)
        if args.output:
            print(f"{count} work items written to {args.output}", file=sys.stderr)
        return 0
    if args.command == "impact":
        exposures, counts = impact(db, args.from_point, args.to_point, pools=args.pools or None,
                                   source="table" if args.table else "pipeline")
        _print(exposures, args)
        if args.format == "table":
            print()
            _print(counts, args)
        return 0
    if args.command == "explain":
        _print(association.explain(db, args.filename, args.pool, **_point(args)), args)
        return 0
    if args.command == "asn":
        written = association.asn(db, args.pools, args.output, skip_bad=args.skip_bad, version_id=args.version_id,
                                  **_point(args))
        print(f"{len(written)} associations written to {args.output}")
        return 0
    if args.command == "unmatched":
        _print(unmatched(db), args)
        return 0
    if args.command == "rejections":
        _print(inventory.rejections(db), args)
        return 0
    if args.command in _runs_cli.COMMANDS:
        return _runs_cli.dispatch(args)
    raise AssertionError(args.command)


def _rules(args: argparse.Namespace, db) -> int:
    action = args.rules_command
    if action == "list":
        _print(catalog.rules(db, **_point(args), exp_type=args.exp_type, instrument=args.instrument),
               args, args.output)
    elif action == "show":
        frame = catalog.rules(db, **_point(args), exp_type=args.exp_type)
        if frame.empty:
            raise catalog.CatalogError(f"no rule for exp_type {args.exp_type!r}")
        _print(frame, args)
        conds = catalog.conditions(db, **_point(args), exp_type=args.exp_type)
        if not conds.empty:
            if args.format == "table":
                print("\nconditions:")
            _print(conds, args)
    elif action == "history":
        _print(catalog.history(db, args.exp_type, table=args.table), args)
    elif action == "tables":
        _print(catalog.tables(), args)
    elif action == "releases":
        _print(catalog.releases(db), args)
    elif action == "rows":
        _print(catalog.table_rows(db, args.table, **_point(args)), args)
    elif action == "versions":
        _print(catalog.versions(db), args)
    elif action == "diff":
        _print(catalog.diff_all(db, args.from_point, args.to_point, args.table), args)
    elif action == "check":
        drift = catalog.check_all(db, args.seeds, seed=args.seed)
        if drift.empty:
            print("the database's rules equal the seed files")
            return 0
        outputs.write(drift, "table", stream=sys.stderr)
        print(f"l2rules: drift: {len(drift)} difference(s) between the database and the seed files", file=sys.stderr)
        return EXIT_DRIFT
    elif action == "revision":
        path = catalog.write_revision(args.message, args.date, args.ref, seed=args.seed, seeds=args.seeds)
        if path is None:
            print("the seed files equal the head revision: nothing to write")
        else:
            print(f"wrote {path}; apply it with `alembic upgrade head` or `l2rules init`")
    return 0


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "rules" and args.rules_command == "diff":
        _end_points(parser, args)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    if args.verbose >= 2:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    try:
        return run(args)
    except L2RulesError as exc:
        print(f"l2rules: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except sa.exc.OperationalError as exc:
        if is_cancelled(exc):  # not "unreachable": the server answered, and stopped the statement
            print(f"l2rules: error: cancelled by the database: {migrate._first_line(exc)} (a statement_timeout or "
                  "a cancel request); what the statement did was rolled back", file=sys.stderr)
            return StatementCancelled.exit_code
        print(f"l2rules: error: {DatabaseError(migrate._first_line(exc))}", file=sys.stderr)
        return DatabaseError.exit_code
    except KeyboardInterrupt:
        print("l2rules: interrupted; what was under way was rolled back", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `l2rules worklist | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
