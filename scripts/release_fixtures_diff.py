#!/usr/bin/env python3
"""Compare the per-release oracle fixtures in tests/data/releases/<version>/ with a base release.

Stdlib only.  For each release directory prints: pools present / failed, the number of Level 2b
associations over all pools, and how many associations and exposures differ from the base (3.0.0
unless --base).  Associations compare as multisets of (asn_type, asn_rule, product name, sorted
members) -- asn_id, member order and key order are ignored; the count is the size of the multiset symmetric
difference (an association renamed between two releases counts twice: once on each side).
Exposures compare (filename, selected, asn_types) per pool row; the count is the rows that differ.

    python3 scripts/release_fixtures_diff.py                # table against 3.0.0
    python3 scripts/release_fixtures_diff.py --consecutive  # each release against the one before
    python3 scripts/release_fixtures_diff.py --base tests/data/reference   # a directory as base
    python3 scripts/release_fixtures_diff.py --show 2.0.1 --base-version 3.0.0  # list differences
"""
import argparse
import csv
import json
import os
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
RELEASES = os.path.join(HERE, "..", "tests", "data", "releases")
POOLS = os.path.join(HERE, "..", "samples", "pools")


def vkey(v):
    return tuple(int(x) if x.isdigit() else x for x in v.replace("-", ".").split("."))


def pool_names():
    return sorted(f[:-4] for f in os.listdir(POOLS) if f.endswith(".csv"))


def asn_keys(path):
    with open(path) as f:
        data = json.load(f)
    out = Counter()
    for a in data["associations"]:
        # Level 2b associations have one product each; a tuple of products keeps any other case whole
        products = tuple((p["name"], tuple(sorted(tuple(m) for m in p["members"]))) for p in a["products"])
        out[(a["asn_type"], a["asn_rule"], products)] += 1
    return out


def exposures(path):
    with open(path, newline="") as f:
        return [(r["filename"], r["selected"], r["asn_types"]) for r in csv.DictReader(f)]


def load(d):
    """{pool: (Counter of asn keys, [exposure rows], n_asns)} for the pools present in d."""
    res = {}
    for name in pool_names():
        j, c = os.path.join(d, name + ".json"), os.path.join(d, name + ".per_exposure.csv")
        if os.path.exists(j) and os.path.exists(c):
            with open(j) as f:
                n = len(json.load(f)["associations"])
            res[name] = (asn_keys(j), exposures(c), n)
    return res


def compare(a, b):
    """(asns differing, exposures differing, pools compared) over the pools both have."""
    da = de = 0
    common = sorted(set(a) & set(b))
    for p in common:
        ka, kb = a[p][0], b[p][0]
        da += sum(((ka - kb) + (kb - ka)).values())
        ea, eb = a[p][1], b[p][1]
        de += sum(1 for x, y in zip(ea, eb) if x != y) + abs(len(ea) - len(eb))
    return da, de, len(common)


def describe(k, n):
    prods = ", ".join(f"{name} ({len(members)} members)" for name, members in k[2])
    return f"{k[0]} {k[1]} {prods}" + (f" x{n}" if n > 1 else "")


def show(a, b, la, lb):
    for p in sorted(set(a) & set(b)):
        ka, kb = a[p][0], b[p][0]
        for k, n in sorted((ka - kb).items()):
            print(f"{p}: only {la}: {describe(k, n)}")
        for k, n in sorted((kb - ka).items()):
            print(f"{p}: only {lb}: {describe(k, n)}")
        for x, y in zip(a[p][1], b[p][1]):
            if x != y:
                print(f"{p}: exposure {x[0]}: {la} {x[1]} [{x[2]}] / {lb} {y[1]} [{y[2]}]")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=RELEASES)
    ap.add_argument("--base-version", default="3.0.0")
    ap.add_argument("--base", help="a fixture directory to compare with instead of DIR/BASE_VERSION")
    ap.add_argument("--consecutive", action="store_true", help="each release against the previous one")
    ap.add_argument("--show", metavar="VERSION", help="list the differences of one release from the base")
    a = ap.parse_args()
    versions = sorted((v for v in os.listdir(a.dir) if os.path.isdir(os.path.join(a.dir, v))), key=vkey)
    data = {v: load(os.path.join(a.dir, v)) for v in versions}
    base_label = a.base or a.base_version
    base = load(a.base) if a.base else data.get(a.base_version, {})
    npools = len(pool_names())
    if a.show:
        show(data[a.show], base, a.show, base_label)
        return 0
    if a.consecutive:
        print("| release | previous | asns differing | exposures differing |")
        print("| --- | --- | ---: | ---: |")
        for prev, v in zip(versions, versions[1:]):
            da, de, _ = compare(data[v], data[prev])
            print(f"| {v} | {prev} | {da} | {de} |")
        return 0
    print(f"| release | pools run | Level 2b asns | asns differing from {base_label} "
          f"| exposures differing from {base_label} |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for v in versions:
        d = data[v]
        da, de, nc = compare(d, base)
        tot = sum(x[2] for x in d.values())
        print(f"| {v} | {len(d)}/{npools} | {tot} | {da} | {de} |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # piped into head
        sys.exit(0)
