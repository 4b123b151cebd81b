"""Comparing l2rules' Level 2b associations with the pipeline's own.

A reference is what jwst's ``asn_generate`` made of a pool, as the project's oracle writes it
(tests/data/reference/README.md): ``NAME.json`` with the associations and
``NAME.per_exposure.csv`` with one row per pool row (selected, asn_types, asn_rules).
Used by ``scripts/conformance.py`` and the tests.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from .association import Association, science_by_stem
from .inventory import exposure_stem


def reference_associations(path: str | Path) -> Counter:
    """The reference's associations as comparable keys: (asn_id, asn_rule, asn_type, product, members)."""
    doc = json.loads(Path(path).read_text())
    return Counter((a["asn_id"], a["asn_rule"], a["asn_type"], a["products"][0]["name"],
                    frozenset(tuple(m) for m in a["products"][0]["members"])) for a in doc["associations"])


def made_associations(asns: Iterable[Association]) -> Counter:
    """l2rules' associations as the same keys."""
    return Counter((a.asn_id, a.asn_rule, a.asn_type, a.product,
                    frozenset((m["expname"], m["exptype"]) for m in a.members)) for a in asns)


def exposure_disagreements(asns: Iterable[Association], per_exposure: str | Path) -> tuple[int, list[str]]:
    """(number of pool rows, file names whose selection, asn_types or rules differ from the reference)."""
    science = {stem: {(a.asn_type, a.asn_rule) for a in found} for stem, found in science_by_stem(asns).items()}
    with open(per_exposure, newline="") as fh:
        rows = list(csv.DictReader(fh))
    differing = []
    for row in rows:
        got = science.get(exposure_stem(row["filename"]).lower(), set())
        if (bool(got) != (row["selected"] == "True")
                or {t for t, _ in got} != set(filter(None, row["asn_types"].split(";")))
                or {r for _, r in got} != set(filter(None, row["asn_rules"].split(";")))):
            differing.append(row["filename"])
    return len(rows), differing
