#!/usr/bin/env python3
"""The files one jwst release's asn_generate writes for Level 2b, per pool, in the default mode and in the
operational one: the fixtures of `l2rules-asn-generate` (tests/data/asn_generate).

Run it with the python of a side venv that has the release installed (never a dependency of l2rules):

    /tmp/jwst-envs/v311/bin/python scripts/jwst_asn_files.py OUT_ROOT POOL.csv [POOL.csv ...]

For each pool it runs, in this process (jwst imported once), what an operator would:

    asn_generate -r rules_level2b.py --ignore-default -p DIR POOL                      # DIR = default/
    asn_generate -r rules_level2b.py --ignore-default -p DIR POOL -i O C...            # DIR = ids_O/
    asn_generate -r rules_level2b.py --ignore-default -p DIR POOL --DMS -i O C...      # DIR = dms_O/
    asn_generate -r rules_level2b.py --ignore-default -p DIR POOL --DMS                # DIR = dms/
    asn_generate -r rules_level2b.py --ignore-default -p DIR POOL --discover --save-orphans orphaned.csv
                                                                                       # DIR = discover/

one ``-i`` group per observation candidate O: O and the c candidates its exposures belong to (how
operations call it, one group of a program's pool at a time), and where there are such c candidates, O
alone too (``ids_O_alone/``, ``dms_O_alone/``: what ``--DMS`` changes shows there). Writes
OUT_ROOT/<jwst version>/<pool>/<mode>/*_asn.json (and orphaned.csv), the command of each in commands.txt
beside them (POOL and DIR as written here), and environment.txt. ``--modes default dms discover ids dms_ids``
runs only those kinds of mode (``ids``, ``dms_ids``: the per-candidate ones), into a tree that may hold the
others already: their lines of commands.txt are kept.
"""

from __future__ import annotations

import argparse
import ast
import io
import logging
import sys
import warnings
from contextlib import redirect_stdout
from importlib.metadata import version
from pathlib import Path


def candidate_groups(pool: Path) -> dict[str, list[str]]:
    """Each observation candidate's group: itself, then the c candidates of its exposures (in id order)."""
    lines = [line for line in pool.read_text().splitlines() if line.strip() and not line.startswith("#")]
    header = [name.strip().lower() for name in lines[0].split("|")]
    column = header.index("asn_candidate")
    groups: dict[str, set[str]] = {}
    for line in lines[1:]:
        fields = line.split("|")
        try:
            candidates = ast.literal_eval(fields[column].strip())
        except (ValueError, SyntaxError, IndexError):
            continue
        if not isinstance(candidates, list):
            continue
        ids = [str(cid).lower() for cid, _ in candidates]
        for cid in ids:
            if cid.startswith("o"):
                groups.setdefault(cid, set()).update(c for c in ids if c.startswith("c"))
    return {oid: [oid, *sorted(cs)] for oid, cs in sorted(groups.items())}


#: The kinds of mode, as ``--modes`` names them.
KINDS = ("default", "dms", "discover", "ids", "dms_ids")


def pool_modes(pool: Path) -> dict[str, tuple[str, list[str]]]:
    """Each mode directory of ``pool``: its kind and the arguments after the pool."""
    modes = {"default": ("default", []), "dms": ("dms", ["--DMS"]),
             "discover": ("discover", ["--discover", "--save-orphans", "orphaned.csv"])}
    for oid, group in candidate_groups(pool).items():
        modes[f"ids_{oid}"] = ("ids", ["-i", *group])
        modes[f"dms_{oid}"] = ("dms_ids", ["--DMS", "-i", *group])
        if len(group) > 1:  # the observation candidate alone, where its exposures are in c candidates too
            modes[f"ids_{oid}_alone"] = ("ids", ["-i", oid])
            modes[f"dms_{oid}_alone"] = ("dms_ids", ["--DMS", "-i", oid])
    return modes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_root", type=Path)
    ap.add_argument("pools", nargs="+", type=Path)
    ap.add_argument("--modes", nargs="+", choices=KINDS, default=list(KINDS),
                    help="the kinds of mode to run (default: all)")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    import jwst
    from jwst.associations.lib import rules_level2b
    from jwst.associations.main import Main

    out = a.out_root / jwst.__version__
    out.mkdir(parents=True, exist_ok=True)
    environment = f"python {sys.version.split()[0]}\n" + "".join(f"{n} {version(n)}\n"
                                                                 for n in ("jwst", "numpy", "astropy"))
    if set(a.modes) == set(KINDS) or not (out / "environment.txt").is_file():
        (out / "environment.txt").write_text(environment)
    else:  # the tree's other modes were made in another environment: this one is recorded beside it
        with open(out / "environment.txt", "a") as fh:
            fh.write(f"# --modes {' '.join(a.modes)}:\n{environment}")
    for pool in a.pools:
        modes = {mode: extra for mode, (kind, extra) in pool_modes(pool).items() if kind in a.modes}
        listed = out / pool.stem / "commands.txt"
        commands = [line for line in (listed.read_text().splitlines() if listed.is_file() else [])
                    if line.split(" -p ", 1)[1].split("/", 1)[0] not in modes]
        for mode, extra in modes.items():
            directory = out / pool.stem / mode
            directory.mkdir(parents=True, exist_ok=True)
            for old in [*directory.glob("*_asn.json"), *directory.glob("*.csv")]:
                old.unlink()
            args = ["-r", rules_level2b.__file__, "--ignore-default", "-p", str(directory), str(pool), *extra]
            commands.append(" ".join(["asn_generate", "-r", "rules_level2b.py", "--ignore-default", "-p",
                                      f"{mode}/", pool.name, *extra]))
            with redirect_stdout(io.StringIO()):
                Main.cli(args)
        listed.write_text("\n".join(commands) + "\n")
        print(f"{jwst.__version__} {pool.stem}: {len(modes)} runs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
