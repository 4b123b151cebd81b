#!/usr/bin/env python3
"""The jwst package's own association test pools, expanded as its tests read them, for
tests/data/jwst_pools (see its README).

Run with the python of a side venv that has jwst installed (3.0.0 for the fixtures in the repo):

    /tmp/jwst-envs/v311/bin/python scripts/jwst_test_pools.py OUT_DIR SOURCE_DIR...

Each SOURCE_DIR is a `jwst/associations/tests/data` directory (of an installed jwst, or of a release's
wheel or sdist unpacked), written LABEL=DIR to name it in the pools' first line (e.g.
`1.18.1=/tmp/jsrc/1.18.1`); a pool found in several is taken from the first. Template pools (`@!` rows)
are expanded by the package's own `jwst.associations.tests.helpers.combine_pools`, and every pool is
written pipe-separated as the generator reads it (values lower-cased, empty ones `null`), with a `#`
line naming where it came from. Pools named by --skip are left out.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("sources", nargs="+", metavar="[LABEL=]SOURCE_DIR")
    ap.add_argument("--skip", nargs="*", default=[], help="pool names (without .csv) to leave out")
    a = ap.parse_args()
    sys.modules.setdefault("pytest", types.ModuleType("pytest"))  # the helpers module imports it, unused here
    import jwst
    from jwst.associations.tests.helpers import combine_pools

    a.out.mkdir(parents=True, exist_ok=True)
    taken: dict[str, tuple[Path, str]] = {}
    for source in a.sources:
        label, _, directory = source.rpartition("=")
        for path in sorted(Path(directory).glob("*.csv")):
            if path.stem not in a.skip and path.stem not in taken:
                taken[path.stem] = path, label or directory
    for name, (path, label) in sorted(taken.items()):
        try:
            pool = combine_pools(str(path))
        except Exception as exc:  # a file the package's own reader refuses is no pool of its tests'
            print(f"{name}: not read ({type(exc).__name__}: {str(exc).strip().splitlines()[0]})")
            continue
        columns = list(pool.colnames)
        lines = [f"# jwst test pool {path.name}, from the jwst {label} package (jwst/associations/tests/data); "
                 f"expanded by combine_pools of jwst {jwst.__version__}", "|".join(columns)]
        for row in pool:
            values = [str(row[c]).strip() for c in columns]
            lines.append("|".join(v.lower() if v not in ("", "--") else "null" for v in values))
        (a.out / f"{name}.csv").write_text("\n".join(lines) + "\n")
        print(f"{name}: {len(pool)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
