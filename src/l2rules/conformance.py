"""Comparing l2rules' Level 2b associations with the pipeline's own.

A reference is what jwst's ``asn_generate`` made of a pool, as the project's oracle writes it
(tests/data/reference/README.md): ``NAME.json`` with the associations and
``NAME.per_exposure.csv`` with one row per pool row (selected, asn_types, asn_rules).
Used by ``scripts/conformance.py`` and the tests.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shlex
import tarfile
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


#: What may differ from asn_generate's files: the versions (``code_version`` names l2rules, ``version_id`` is
#: the run's) and ``constraints`` (the pipeline's is the text of its Python constraint objects).
OWN_VALUES = re.compile(r'^(    "(?:version_id|code_version|constraints)": ).*?(,?)$', re.MULTILINE)


def normalised_file(text: str) -> str:
    """An association file's text with the values that may differ (``OWN_VALUES``) blanked."""
    return OWN_VALUES.sub(r"\1...\2", text)


def written_files(directory: Path) -> dict[str, str]:
    """What asn_generate (or ``l2rules asn``) wrote in ``directory``: each association file's
    :func:`normalised_file` text, and the ``--save-orphans`` table (``*.csv``) as it is, by name."""
    return {path.name: normalised_file(path.read_text()) if path.name.endswith("_asn.json") else path.read_text()
            for path in sorted(directory.glob("*")) if path.name.endswith(("_asn.json", ".csv"))}


@dataclass(frozen=True)
class FilesAgreement:
    """One asn_generate command line of a fixture, run as ``l2rules asn`` with the same arguments."""

    pool: str
    release: str
    command: str
    mode: str  # the fixture's MODE directory: default, dms, discover, ids_O, dms_O, ids_O_alone, dms_O_alone
    files: int  # the release's
    missing: tuple[str, ...]  # written by the release, not by l2rules
    extra: tuple[str, ...]  # written by l2rules alone
    differing: tuple[str, ...]  # written by both, with other content

    @property
    def exact(self) -> bool:
        return not (self.missing or self.extra or self.differing)


def unpacked_asn_generate_fixtures(archives: str | Path, into: str | Path,
                                   releases: Iterable[str] | None = None) -> Path:
    """``archives/<release>.tar.gz`` (tests/data/asn_generate: one archive per release of the tree
    ``scripts/jwst_asn_files.py`` writes) unpacked as ``into/<release>/``; returns ``into``."""
    into = Path(into)
    for archive in sorted(Path(archives).glob("*.tar.gz")):
        release = archive.name.removesuffix(".tar.gz")
        if releases is None or release in releases:
            with tarfile.open(archive) as tar:  # (the "data" filter where Python has it: 3.10.12 and later)
                tar.extractall(into / release, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return into


def asn_generate_agreement(db: DB, pools: Iterable[str | Path], fixtures: str | Path, output: str | Path,
                           releases: Iterable[str] | None = None,
                           modes: Iterable[str] | None = None) -> Iterator[FilesAgreement]:
    """Per release, pool and command line of ``fixtures/<release>/<pool>/commands.txt`` (what
    ``scripts/jwst_asn_files.py`` ran: asn_generate, ``-p MODE/``), ``l2rules asn`` with the same arguments
    at that release (``--pipeline``), its files written under ``output``, against the release's files in
    ``fixtures/<release>/<pool>/MODE/``, byte for byte but for ``OWN_VALUES``. Each pool is loaded before its
    commands run (sample pools share FILENAME stems: a later load takes them over). ``modes``: only the
    commands of those MODE directories."""
    from . import cli  # (the command line is what is compared)

    fixtures, output = Path(fixtures), Path(output)
    url = db.url.render_as_string(hide_password=False) if hasattr(db, "url") else str(db)  # (an Engine, or a URL)
    names = [d.name for d in fixtures.iterdir() if d.is_dir()] if releases is None else list(releases)
    names.sort(key=catalog.version_key)
    modes = None if modes is None else set(modes)
    for pool in sorted(Path(p) for p in pools):
        inventory.load(db, pool, progress=False)
        for release in names:
            commands = fixtures / release / pool.stem / "commands.txt"
            if not commands.is_file():
                continue
            for line in commands.read_text().splitlines():
                words = shlex.split(line)[1:]  # without the program's name
                path_at = words.index("-p") + 1
                mode = words[path_at].rstrip("/")
                if modes is not None and mode not in modes:
                    continue
                target = output / release / pool.stem / mode
                argv = [str(pool) if word == pool.name else word for word in words]
                argv[path_at] = str(target)
                with contextlib.redirect_stdout(io.StringIO()):
                    status = cli.main(["asn", *argv, "--db", url, "--pipeline", release])
                if status != 0:
                    raise RuntimeError(f"{line}: l2rules asn exited {status}")
                ours, theirs = written_files(target), written_files(fixtures / release / pool.stem / mode)
                yield FilesAgreement(pool.stem, release, line, mode, len(theirs),
                                     tuple(sorted(set(theirs) - set(ours))), tuple(sorted(set(ours) - set(theirs))),
                                     tuple(sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])))
