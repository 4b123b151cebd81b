#!/usr/bin/env python3
"""Group the jwst releases by the Level 2b associations they make on each change fixture.

The change fixtures are the small pools tests/data/changes/pools/<slug>.csv, one per change of the jwst
association code (index: tests/data/changes/index.csv); the output of each jwst release's own
generator on them is tests/data/changes/releases/<version>/<slug>.json (made by
scripts/release_fixtures_make.sh with /work/shared/tools/jwst_oracle.py).  This script puts together
the releases whose associations are identical, compared as the multiset of
(asn_type, asn_rule, product name, sorted members) of each JSON, asn_id ignored, and writes the
result in the index's `groups` format: groups in version order (by their first release), separated
by `|`, the releases of a group in version order, separated by spaces.

    python3 scripts/change_fixtures_groups.py           # print, per fixture, its groups
    python3 scripts/change_fixtures_groups.py --write   # also update the groups column of index.csv

A release with no JSON for a fixture (not run, or only NAME.error.txt) is left out of that fixture's
groups and named on stderr.  Standard library only.
"""
import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

CHANGES = Path(__file__).resolve().parent.parent / "tests" / "data" / "changes"


def version_key(v: str):
    return tuple(int(p) if p.isdigit() else p for p in v.split("."))


def releases(root: Path):
    return sorted((d.name for d in (root / "releases").iterdir() if d.is_dir()), key=version_key)


def fixtures(root: Path):
    return sorted(p.stem for p in (root / "pools").glob("*.csv"))


def signature(path: Path):
    """The associations of one oracle JSON as a hashable multiset, asn_id ignored."""
    data = json.loads(path.read_text())
    items = []
    for asn in data["associations"]:
        prods = tuple(sorted(
            (p["name"], tuple(sorted(tuple(m) for m in p["members"]))) for p in asn["products"]))
        items.append((asn["asn_type"], asn["asn_rule"], prods))
    return frozenset(Counter(items).items())


def groups_of(root: Path, slug: str, vers):
    by_sig = {}  # insertion order = order of the first release of each group
    missing = []
    for v in vers:
        p = root / "releases" / v / f"{slug}.json"
        if not p.exists():
            err = p.with_name(f"{slug}.error.txt")
            missing.append(v + (" (error)" if err.exists() else ""))
            continue
        by_sig.setdefault(signature(p), []).append(v)
    return "|".join(" ".join(g) for g in by_sig.values()), missing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="update the groups column of index.csv")
    ap.add_argument("--root", type=Path, default=CHANGES, help="the change fixtures directory")
    a = ap.parse_args()
    vers = releases(a.root)
    result = {}
    for slug in fixtures(a.root):
        g, missing = groups_of(a.root, slug, vers)
        result[slug] = g
        print(f"{slug}: {g}")
        if missing:
            print(f"  {slug}: no output at {', '.join(missing)}", file=sys.stderr)
    if a.write:
        index = a.root / "index.csv"
        with open(index, newline="") as f:
            rows = list(csv.DictReader(f))
            fields = list(rows[0].keys()) if rows else []
        changed = 0
        for r in rows:
            if r["slug"] and r["slug"] in result and r["groups"] != result[r["slug"]]:
                r["groups"] = result[r["slug"]]
                changed += 1
            elif r["slug"] and r["slug"] not in result:
                print(f"index row {r['commit']}: no pool {r['slug']}.csv", file=sys.stderr)
        with open(index, "w", newline="") as f:  # csv's default \r\n rows, as the index has
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        print(f"{index}: {changed} groups updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
