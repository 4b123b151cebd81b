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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import association, catalog, inventory
from .association import Association, science_by_stem
from .config import DB
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


@dataclass(frozen=True)
class Agreement:
    """How l2rules at one release agrees with that release's own output on one pool."""

    pool: str
    release: str
    exposures: int
    exposures_agree: int
    associations: int  # the release's
    associations_exact: int
    associations_made: int  # l2rules'

    @property
    def exact(self) -> bool:
        return (self.exposures_agree == self.exposures > 0
                and self.associations_exact == self.associations == self.associations_made)


def release_agreement(db: DB, pools: Iterable[str | Path], fixtures: str | Path,
                      releases: Iterable[str] | None = None) -> Iterator[Agreement]:
    """Per pool and per release, l2rules at that release (``--pipeline``) against the release's own output in
    ``fixtures/<release>/NAME.json`` and ``NAME.per_exposure.csv`` (every release directory there, or those
    of ``releases``). Each pool is evaluated right after its load (sample pools share FILENAME stems: a
    later load takes them over), once per catalog point: releases with the same rules share an evaluation."""
    fixtures = Path(fixtures)
    names = [d.name for d in fixtures.iterdir() if d.is_dir()] if releases is None else list(releases)
    names.sort(key=catalog.version_key)
    as_of = catalog.releases(db).set_index("version")["rules_as_of"]
    for pool in sorted(Path(p) for p in pools):
        pool_id = inventory.load(db, pool, progress=False).pool_id
        made_at: dict = {}
        for release in names:
            reference = fixtures / release / f"{pool.stem}.json"
            if not reference.is_file():
                continue
            if as_of[release] not in made_at:
                made_at[as_of[release]] = association.associations(db, pool_id, at=release)
            asns = made_at[as_of[release]]
            ref, made = reference_associations(reference), made_associations(asns)
            rows, differing = exposure_disagreements(asns, fixtures / release / f"{pool.stem}.per_exposure.csv")
            yield Agreement(pool.stem, release, rows, rows - len(differing), sum(ref.values()),
                            sum((ref & made).values()), sum(made.values()))
