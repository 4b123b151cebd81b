"""The command line's FITS input: the options for the pool columns headers lack, and POOL arguments.

Kept out of ``cli`` so that it needs few lines there: ``add_options`` by the ``load`` and
``pool`` parsers, ``group_files`` for every command's POOL arguments, ``options`` for the
``pool`` handler and ``sources`` for the ``load`` one.
"""

from __future__ import annotations

import argparse

from .inventory import fits, stdin


def add_options(p: argparse.ArgumentParser) -> None:
    """The options of FITS input (``load``, ``pool``): the pool columns primary headers lack."""
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
    out = [(stdin.label(p), p, {"fits_options": options(args)} if fits.is_fits_source(p) else {}) for p in args.pools]
    if _given(args) and not any(o for _, _, o in out):
        raise fits.InventoryError(out[0][0], None, None, "not FITS input: --asn-candidate, --dms-note, --is-imprt "
                                                        "and --pntgtype set columns of FITS files' pools")
    return out
