"""The command line's FITS input: ``load``'s options for the columns headers lack, and ``pool``.

Kept out of ``cli`` so that it needs few lines there: ``add`` by the ``load`` parser,
``group_files`` for every command's POOL arguments, the ``pool`` command's dispatch, and
``sources`` in the ``load`` command.
"""

from __future__ import annotations

import argparse

from .inventory import fits


def add(sub, load: argparse.ArgumentParser) -> None:
    """``load``'s FITS options, and the ``pool`` command."""
    _options(load)
    p = sub.add_parser("pool", help="write the pool of FITS files (primary headers) in the pipeline's format, "
                                    "as asn_make_pool does")
    p.add_argument("files", nargs="+", metavar="FITS", help="FITS files (.fits, .fits.gz), directories, globs")
    p.add_argument("--output", "-o", metavar="POOL", help="the pool file to write (default: standard output)")
    p.add_argument("--skip-bad", action="store_true", help="leave bad files out (named on standard error) "
                                                           "instead of failing")
    _options(p)


def _options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("FITS input: the pool columns headers lack (as asn_make_pool)")
    group.add_argument("--asn-candidate", metavar="LIST",
                       help="candidates added to each exposure's observation one, e.g. \"[('c1000', 'background')]\"")
    group.add_argument("--dms-note", default="", metavar="TEXT", help="DMS_NOTE of every exposure (default: empty)")
    group.add_argument("--is-imprt", default="f", metavar="FLAG", help="IS_IMPRT of every exposure (default: f)")
    group.add_argument("--pntgtype", default="science", metavar="TYPE",
                       help="PNTGTYPE of every exposure (default: science)")


def options(args: argparse.Namespace) -> fits.Options:
    return fits.Options(args.asn_candidate, args.dms_note, args.is_imprt, args.pntgtype)


def _given(args: argparse.Namespace) -> bool:
    return (args.asn_candidate is not None or args.dms_note != "" or args.is_imprt != "f"
            or args.pntgtype != "science")


def group_files(args: argparse.Namespace) -> None:
    """The FITS files among a command's POOL arguments (a shell's ``DIR/*.fits``) made one pool."""
    if isinstance(getattr(args, "pools", None), list):
        args.pools = fits.group_files(args.pools)


def sources(args: argparse.Namespace) -> list[tuple[str, object, dict]]:
    """(label, source, load options) for each of ``load``'s sources (FITS files grouped by :func:`group_files`)."""
    out = [(str(p), p, {"fits_options": options(args)} if fits.is_fits_source(p) else {}) for p in args.pools]
    if _given(args) and not any(o for _, _, o in out):
        raise fits.InventoryError(out[0][0], None, None, "not FITS input: --asn-candidate, --dms-note, --is-imprt "
                                                        "and --pntgtype set columns of FITS files' pools")
    return out


def pool(args: argparse.Namespace) -> int:
    """``l2rules pool FITS... --output POOL``."""
    import sys

    made = fits.make_pool(args.files, options=options(args))
    errors = made.errors
    if errors and not args.skip_bad:
        raise errors[0]
    for error in errors:
        print(f"l2rules: skipped {error}", file=sys.stderr)
    count = made.write(args.output)
    if args.output:
        left_out = f" ({len(errors)} bad files left out)" if errors else ""
        print(f"{count} exposures written to {args.output}{left_out}", file=sys.stderr)
    return 0
