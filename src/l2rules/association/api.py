"""The public functions: associations of a pool, their files, and how they change between catalog points."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import sqlalchemy as sa

from .. import __version__, console, schema
from .._lazy import pandas as pd
from ..config import DB
from ..inventory import stdin
from ..inventory.preview import previewed
from ..inventory.store import pool_row
from ..migrate import require_migrated
from ..operators import describe
from ..outputs import OutputDirectory, PathError, typed
from ..points import At, resolve, takes_at
from ..published import scratch_tables_allowed
from ..schema import COLUMN_TYPES
from .columns import EMPTY, REQUIRED_POOL_COLUMNS, AssociationError
from .evaluation import evaluating
from .orphans import check_pool_file, write_orphans
from .selection import DEFAULT, Selection

DEGRADED_OK = "No known degraded exposures in association."
#: The EXPOSERR values that do not make an association degraded (as the pipeline reads them).
_NOT_SET = (None, *EMPTY)
DEGRADED_NOTOK = ("One or more members have an error associated with them."
                  "\nDetails can be found in the member.exposerr attribute.")


#: What ``code_version`` says in the files l2rules writes (the pipeline writes its own version there).
CODE_VERSION = f"l2rules {__version__}"
#: A ``version_id`` made of the time, as the pipeline's ``asn_generate --version-id`` makes it (UTC).
VERSION_ID_FORMAT = "%Y%m%dt%H%M%S"


@dataclass
class Association:
    """One Level 2b association, in the pipeline's JSON shape (``as_dict``)."""

    asn_id: str
    asn_rule: str
    asn_type: str
    asn_pool: str
    program: str
    product: str
    seq: int
    members: list[dict] = field(default_factory=list)
    #: The science's TARGETID as the pipeline reads it (lower case, ``null`` when empty).
    target: str | None = None
    #: The pipeline's rule (``asn_rule`` without its ``candidate_``/``discover_`` prefix) and the
    #: candidate's type, for ``constraints``.
    rule_name: str | None = None
    cand_type: str | None = None
    #: The catalog point the rules were taken at (None: the head), for ``constraints``.
    point: str | None = None
    #: The science conditions that held for the science, with its values, for ``constraints``.
    conditions: list[str] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return self.file_name()

    def file_name(self, version_id: str | None = None) -> str:
        """The pipeline's file name; with a ``version_id``, the stamped name ``asn_generate --version-id``
        gives."""
        stamp = f"_{version_id}" if version_id else ""
        return f"jw{self.program}-{self.asn_id}{stamp}_{self.asn_type}_{self.seq:05d}_asn.json"

    @property
    def constraints(self) -> str:
        """What ``constraints`` says: l2rules' equivalent of the pipeline's, one line each.

        The pipeline writes there the text of its Python constraint objects (class, name, source
        columns, the value its first member matched). l2rules keeps its rules as catalog rows, not as
        those objects, so it writes those rows instead: the rule and catalog point, each science
        condition that held (alt 0 and the first alternative that held, from ``asn_condition``, its
        constraint groups expanded: column, operator, value) with the science's value of the column
        (lower case, NULL when not set), and the candidate, as the pipeline's last line has it.
        """
        at = f"catalog at {self.point}" if self.point else "catalog head"
        return "\n".join([f"l2rules rule {self.rule_name} ({at})", *self.conditions,
                          f"asn_candidate: ('{self.asn_id}', '{self.cand_type}')"])

    def as_dict(self, version_id: str | None = None) -> dict:
        """The file's content, every key the pipeline writes, in its order; members in its order."""
        degraded = any(member.get("exposerr") not in _NOT_SET for member in self.members)
        return {
            "asn_type": self.asn_type, "asn_rule": self.asn_rule, "version_id": version_id,
            "code_version": CODE_VERSION,
            "degraded_status": DEGRADED_NOTOK if degraded else DEGRADED_OK,
            "program": self.program, "constraints": self.constraints, "asn_id": self.asn_id,
            "asn_pool": self.asn_pool, "target": self.target,
            "products": [{"name": self.product,
                          "members": [{"expname": member["expname"], "exptype": member["exptype"],
                                       # the pipeline's level-3 members (WFSS) have no exposerr
                                       **({"exposerr": member.get("exposerr")}
                                          if member.get("exposure_id") is not None else {})}
                                      for member in self.members]}],
        }


def missing_columns(pool: sa.Row) -> list[str]:
    """The columns the pipeline needs that the pool lacks."""
    columns = set(pool.columns.split("|"))
    return [column for column in REQUIRED_POOL_COLUMNS if column not in columns]


@takes_at
def associations(db: DB, pool: str | int, *, at: At = None, conditions: bool = True,
                 selection: Selection = DEFAULT) -> list[Association]:
    """The Level 2b associations the pipeline makes of one loaded pool (by name or id), ordered by
    candidate id, asn_type and sequence (as the files' names sort).

    By the head rules, or those of catalog point ``at``: a date, a catalog revision, or a jwst release
    (``"1.16.1"``). ``conditions=False`` leaves each association's ``conditions`` (the
    science conditions that held, for its file's constraints) empty: a third of the time of a large pool.
    ``selection`` is asn_generate's mode (``Selection.of(ids, all_candidates=, dms=)``: ``-i``,
    ``--all-candidates``, ``--DMS``); by default every candidate and the discovery pass, as asn_generate's.
    """
    made = iter_associations(db, pool, at=at, conditions=conditions, selection=selection)
    return sorted(made, key=lambda association: (association.asn_id, association.asn_type, association.seq))


#: Rows fetched at a time by :func:`iter_associations` (a server-side cursor on PostgreSQL).
STREAMED_ROWS = 10_000


@takes_at
def iter_associations(db: DB, pool: str | int, *, at: At = None, conditions: bool = True,
                      selection: Selection = DEFAULT) -> Iterator[Association]:
    """:func:`associations` one at a time, as the database gives them (by science exposure), so that a
    pool's files are written with flat memory: the rows are streamed, and an association is made when
    its last member has come. The evaluation's transaction stays open until the iterator is exhausted
    or closed."""
    engine = require_migrated(db)
    when = resolve(engine, at)
    point = None if when is None else str(when)
    streamed = {"stream_results": True, "yield_per": STREAMED_ROWS}
    with engine.begin() as conn:
        scratch_tables_allowed(conn)  # (a read of a read-only database still evaluates)
        found = pool_row(conn, pool)
        if missing_columns(found):
            return
        # the pipeline writes EXPOSERR as the pool has it, and null for a pool without the column
        has_exposerr = "exposerr" in found.columns.split("|")
        with evaluating(conn, when, selection) as evaluation:
            final = evaluation.run([found.id])
            member = evaluation.named_members
            # by science exposure first: the held conditions come in the same order, beside them; an
            # association's members are together (its candidate id, asn_type and sequence are its file's name)
            by_science = [final.selected_columns[name] for name in ("eid", "asn_id", "asn_type", "seq", "asn_rule",
                                                                      "cand_id")]
            rows = conn.execute(final.order_by(None).order_by(*by_science, member.c.mgroup, member.c.mord),
                                execution_options=streamed)
            held = _science_conditions(evaluation, streamed) if conditions else (_ for _ in ())
            try:
                pending = next(held, None)  # (science exposure, its held conditions by rule)
                for (eid, asn_id, asn_rule, _cand_id), members in groupby(
                        rows.mappings(), key=lambda r: (r["eid"], r["asn_id"], r["asn_rule"], r["cand_id"])):
                    while pending is not None and pending[0] < eid:
                        pending = next(held, None)
                    held_of = pending[1] if pending is not None and pending[0] == eid else {}
                    first = next(members)
                    association = Association(asn_id, asn_rule, first["asn_type"], found.name, first["program"],
                                              first["product"], first["seq"], target=first["target"],
                                              rule_name=first["rule_name"], cand_type=first["cand_type"],
                                              point=point, conditions=held_of.get(first["rule_name"], []))
                    for row in (first, *members):
                        association.members.append({"expname": row["expname"], "exptype": row["exptype"],
                                                    "exposerr": row["exposerr_text"] if has_exposerr else None,
                                                    "exposure_id": row["exposure_id"], "stem": row["stem"]})
                    yield association
            finally:
                # a reader that stops early (an error writing a file, a break, Ctrl-C): the cursors are closed
                # before the evaluation drops the tables they read (PostgreSQL refuses while they are open)
                rows.close()
                held.close()


def _science_conditions(evaluation, streamed: dict) -> Iterator[tuple[int, dict[str, list[str]]]]:
    """Per science exposure of some association made, in exposure order: for each rule it is the science
    of, the science conditions that held, each as ``column operator value: the science's value`` (alt 0,
    then the first alternative that held)."""
    from . import rules

    made = sa.select(evaluation.pruned.c.eid, evaluation.pruned.c.rule_name).distinct().subquery()
    condition, science = rules.condition, evaluation.exposures
    columns = evaluation.condition_columns
    query = (sa.select(made.c.eid, made.c.rule_name, condition.c.alt, condition.c.column_name,
                       condition.c.operator, condition.c.value,
                       rules.accessor(science, condition.c.column_name, columns).label("found"),
                       rules.condition_ok(science, condition.c, columns).label("ok"))
             .select_from(made.join(condition, sa.and_(condition.c.rule_name == made.c.rule_name,
                                                       condition.c.subject == "science"))
                          .join(science, science.c.eid == made.c.eid))
             .order_by(made.c.eid, made.c.rule_name, condition.c.alt, condition.c.seq))
    with evaluation.conn.execute(query, execution_options=streamed) as result:  # closed with the generator
        yield from _held_by_science(result)


def _held_by_science(result: sa.CursorResult) -> Iterator[tuple[int, dict[str, list[str]]]]:
    for eid, of_science in groupby(result, key=lambda r: r.eid):
        found = {}
        for rule_name, of_rule in groupby(of_science, key=lambda r: r.rule_name):
            alternatives: dict[int, list] = {}
            for row in of_rule:
                alternatives.setdefault(row.alt, []).append(row)
            held = [alt for alt, conditions in sorted(alternatives.items())
                    if alt > 0 and all(c.ok for c in conditions)][:1]
            found[rule_name] = [f"{describe(c.column_name, c.operator, c.value)}: "
                                f"{'NULL' if c.found is None else c.found}"
                                for alt in [0, *held] for c in alternatives.get(alt, [])]
        yield eid, found


def science_of(asns: Iterable[Association]) -> dict[int, list[Association]]:
    """The associations each exposure is the science of, keyed by its exposure id (``exposure.id``)."""
    return _science_by(asns, "exposure_id")


def science_by_stem(asns: Iterable[Association]) -> dict[str, list[Association]]:
    """The associations each exposure is the science of, keyed by its lower-cased FILENAME stem: for
    callers that know exposures by file name only (``inventory.exposure_stem(filename).lower()``)."""
    return _science_by(asns, "stem")


def _science_by(asns: Iterable[Association], key: str) -> dict:
    science: dict = {}
    for association in asns:
        for member in association.members:
            if member["exptype"] == "science":
                science.setdefault(member[key], []).append(association)
    return science


#: What the parts of an association file name may hold (the pipeline's own are digits, and candidate
#: ids such as o001, c1000, a3001): never a path separator, a dot or anything a shell would expand.
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def make_version_id(value: str | bool | None) -> str | None:
    """The ``version_id`` of the files: None (the pipeline's default, no stamp), the time for True (as
    ``asn_generate --version-id`` without a value makes it), else ``value`` itself, which must be fit to
    name files."""
    if value is None or value is False:
        return None
    if value is True:
        return dt.datetime.now(dt.timezone.utc).strftime(VERSION_ID_FORMAT)
    if not _NAME_PART.fullmatch(str(value)):
        raise AssociationError(f"--version-id {str(value)[:80]!r}: letters, digits, '_' and '-' only")
    return str(value)


class WrittenFiles(Sequence[Path]):
    """The association files written, a sequence of paths: kept as text, each made a ``Path`` when read, so
    that half a million files cost the memory of their names (a ``Path`` holds several times that)."""

    def __init__(self, paths: Iterable[str] = (), orphans: Iterable[str] = ()) -> None:
        self._paths = list(paths)
        #: The ``--save-orphans`` tables written beside the files (one per pool), if any.
        self.orphans = list(orphans)

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int | slice) -> Path | list[Path]:  # type: ignore[override]
        if isinstance(index, slice):
            return [Path(text) for text in self._paths[index]]
        return Path(self._paths[index])

    def __eq__(self, other: object) -> bool:  # equal to a list of the same paths, as the list it replaces
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(mine == theirs for mine, theirs in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like a list

    def __repr__(self) -> str:
        return f"<WrittenFiles: {len(self)} files>"


def write_associations(asns: Iterable[Association], output: str | Path, *,
                       version: str | bool | None = None) -> WrittenFiles:
    """One ``jw<program>-<candidate>_<asn_type>_<seq>_asn.json`` file per association, in ``output``.

    The files are the pipeline's (``asn_generate``): the same keys in the same order, members in
    its order; ``code_version`` names l2rules, ``version_id`` is ``version`` (see :func:`make_version_id`;
    with one, the names carry it as the pipeline's do: ``jw<program>-<candidate>_<version_id>_...``).
    Names are made only from validated parts and written without following symbolic links, so a
    hostile PROGRAM or candidate id in a pool cannot write outside ``output``.
    """
    stamp = make_version_id(version)  # refused before the directory is made
    with _output_directory(output) as directory:
        return WrittenFiles(_written(asns, directory, stamp))


def _output_directory(output: str | Path) -> OutputDirectory:
    """``output`` open as asn's directory (made if missing; a symbolic link is refused: :class:`OutputDirectory`)."""
    try:
        return OutputDirectory(output)
    except PathError as exc:  # (the message asn's users know)
        raise AssociationError(f"-p/--output {exc}") from None


def _checked_file_name(association: Association, stamp: str | None) -> str:
    """The association's file name, made only of parts that can name a file (else AssociationError)."""
    for what, value in (("PROGRAM", association.program), ("candidate id", association.asn_id),
                        ("asn_type", association.asn_type)):
        if not _NAME_PART.fullmatch(str(value)):
            raise AssociationError(f"{association.asn_pool}: {what} {str(value)[:80]!r} cannot name an association "
                                   "file (letters, digits, '_' and '-' only)")
    return association.file_name(stamp)


def _written(asns: Iterable[Association], out: OutputDirectory, stamp: str | None) -> Iterator[str]:
    """Write each association's file in ``out``, all or nothing (a temporary name renamed); yield its path."""
    for association in asns:
        # no final newline, as the pipeline; written with os.write: a text file object per file cost more
        # than the file itself (half a million files at a million exposures)
        yield out.write_bytes(_checked_file_name(association, stamp),
                              json.dumps(association.as_dict(stamp), indent=4).encode())


@takes_at
def asn(db: DB, pools: Iterable[str | Path], output: str | Path, *, skip_bad: bool = False, at: At = None,
        version_id: str | bool | None = None, progress: bool | None = None, store: bool = False,
        selection: Selection = DEFAULT, dry_run: bool = False,
        save_orphans: str | Path | None = None) -> WrittenFiles:
    """Write each pool's Level 2b associations to ``output``; returns the files written (per pool in their
    names' order). As asn_generate, it writes nothing else: pools already in the catalog and unchanged
    since their load are read there, others are evaluated in a scratch catalog (``inventory.preview``);
    ``store`` loads them into the catalog instead.

    ``version_id`` is the files' (see :func:`write_associations`): one value for every pool of the run.
    ``selection``: asn_generate's mode (see :func:`associations`); ``dry_run``: evaluate, write nothing
    (the paths returned are those that would have been written). ``save_orphans``: also write, beside each
    pool's files, asn_generate's ``--save-orphans`` table under that name (:mod:`.orphans`; not with
    ``dry_run``, as asn_generate); its paths are the result's ``orphans``.

    With several pools, each gets a directory of its own under ``output`` (named after the pool
    file): the pipeline's names (program, candidate, type, sequence) repeat from pool to pool.
    Each pool is evaluated right after its load (exposures are identified by stem, so a later pool
    holding the same stems takes them over). ``progress`` (default: when standard error is a terminal)
    counts the files on standard error as they are written, the evaluation's time before the first.
    """
    pools = list(pools)
    if dry_run and store:
        raise AssociationError("--dry-run writes nothing: it cannot --store the pools too")
    stems = [stdin.resolved(path).stem for path in pools]  # (-: standard input's copy, named stdin)
    if len(set(stems)) < len(stems):
        raise AssociationError("two pools have the same file name; write them in separate runs")
    stamp = make_version_id(version_id)
    if save_orphans is not None:
        for path in pools:  # a pool that has no such table is refused before anything is written
            check_pool_file(path)
    written: list[str] = []
    orphans: list[str] = []
    from tqdm import tqdm  # imported when used: the CLI starts without it

    show = console.progress(progress)
    root: OutputDirectory | None = None  # opened (made) when the first file is written

    def directory_of(stem: str) -> OutputDirectory:
        nonlocal root
        if root is None:
            root = _output_directory(output)
        if len(pools) == 1:
            return root
        try:  # each pool's own directory, entered from the output's descriptor: never through a link
            return root.sub(stem)
        except PathError as exc:
            raise AssociationError(f"-p/--output {exc}") from None

    with contextlib.ExitStack() as closing, \
            previewed(db, pools, store=store, skip_bad=skip_bad, progress=progress) as preview:
        closing.callback(lambda: root is not None and root.close())
        for source, stem, pool_id in zip(pools, stems, preview.pool_ids):
            with preview.engine.connect() as conn:
                found = pool_row(conn, pool_id)
            if missing_columns(found):  # asn_generate fails on it too (a KeyError): no silent empty directory
                raise AssociationError(f"pool {found.name}: no {', '.join(missing_columns(found)).upper()} "
                                       "column: the pipeline makes no Level 2b association from it")
            target = Path(output) / stem if len(pools) > 1 else Path(output)
            made = iter_associations(preview.engine, pool_id, at=at, selection=selection)
            with tqdm(made, desc=f"{stem}: associations", unit=" files", disable=not show,
                      file=sys.stderr) as bar:
                if dry_run:
                    written += sorted(str(target / _checked_file_name(association, stamp)) for association in bar)
                else:
                    directory = directory_of(stem)
                    with contextlib.nullcontext() if directory is root else directory:
                        written += sorted(_written(bar, directory, stamp))  # one directory: by name
                        if save_orphans is not None:
                            orphans.append(write_orphans(source, directory, save_orphans))
    return WrittenFiles(written, orphans)


IMPACT_COLUMNS = ["change", "instrument", "pool", "filename", "exp_type", "asn_type_from", "asn_type_to",
                  "role_from", "role_to", "input_from", "input_to", "association_from", "association_to"]


def impact(db: DB, from_point: At, to_point: At, *, pools: Iterable[str | Path] | None = None,
           store: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the pipeline's Level 2b processing of each exposure becomes between two catalog points
    (pipeline releases such as ``1.16.1``, revisions or dates): the exposures that enter or leave,
    or change asn_type, role, Level 2b input or association; and counts per instrument.

    An exposure is on the work list when it is the science of some association (as in
    ``worklist``): enters and leaves are decided by that; its role is every member type it has.
    ``pools`` are compared one by one (each right after its load, as ``asn`` does: pools may share
    FILENAME stems), without changing the catalog unless ``store`` (``inventory.preview``); without,
    every loaded pool.
    """
    with previewed(db, pools or None, store=store) as preview:
        exposures = _impact_rows(preview.engine, preview.pool_ids,
                                 [resolve(preview.engine, point) for point in (from_point, to_point)])
    exposures = pd.DataFrame(exposures, columns=IMPACT_COLUMNS)
    counts = (exposures.groupby(["instrument", "change"]).size().rename("exposures").reset_index()
              if len(exposures) else pd.DataFrame(columns=["instrument", "change", "exposures"]))
    return typed(exposures, COLUMN_TYPES), typed(counts, COLUMN_TYPES)


def _impact_rows(engine: sa.Engine, pool_ids: Iterable[int] | None, points: list) -> list[dict]:
    """One row per exposure of the pools (every pool when None) whose processing differs between the points."""
    if pool_ids is None:
        with engine.connect() as conn:
            pool_ids = list(conn.execute(sa.select(schema.pool.c.id).order_by(schema.pool.c.name)).scalars())
    exposure = schema.exposure
    rows = []
    for pool_id in pool_ids:
        with engine.connect() as conn:
            name = pool_row(conn, pool_id).name
            exposures = conn.execute(sa.select(exposure.c.id, exposure.c.filename, exposure.c.exp_type).where(
                exposure.c.pool_id == pool_id, exposure.c.withdrawn_at.is_(None))
                .order_by(exposure.c.source_line)).all()
        sides = [_compared(associations(engine, pool_id, at=point)) for point in points]
        for exposure_id, filename, exp_type in exposures:
            before, after = (side.get(exposure_id) for side in sides)
            if before == after or (before is None and after is None):
                continue
            change = "enters" if before is None else "leaves" if after is None else next(
                f"{what} changes" for what, i in (("asn_type", 0), ("role", 1), ("input", 2), ("association", 3))
                if before[i] != after[i])
            instrument = schema.INSTRUMENT_OF_PREFIX.get(exp_type[:3].upper(), "other")
            rows.append(dict(change=change, instrument=instrument, pool=name, filename=filename, exp_type=exp_type,
                             **{f"{column}_{side}": (None if value is None else value[i])
                                for side, value in (("from", before), ("to", after))
                                for i, column in enumerate(("asn_type", "role", "input", "association"))}))
    return rows


def processing(asns: Iterable[Association]) -> dict[int, tuple[set[str], set[tuple[str, str, str, str]]]]:
    """Per exposure (id) that is a member of some association: the member types it has, and for each
    association it is the science of, (asn_type, its Level 2b input name, association file, rule).

    The pipeline's answer for one exposure, as the work list and ``impact`` read it.
    """
    found: dict[int, tuple[set[str], set[tuple[str, str, str, str]]]] = {}
    for association in asns:
        for member in association.members:
            if member["exposure_id"] is None:
                continue  # a WFSS direct image's level-3 product, not an exposure
            member_types, science = found.setdefault(member["exposure_id"], (set(), set()))
            member_types.add(member["exptype"])
            if member["exptype"] == "science":
                science.add((association.asn_type, member["expname"], association.filename, association.asn_rule))
    return found


def _compared(asns: list[Association]) -> dict[int, tuple[str, str, str, str]]:
    """Per exposure on the work list (the science of some association): its asn_types, member types, Level
    2b input names and association files with their rules, each ';'-joined: what ``impact`` compares."""
    def joined(values) -> str:
        return ";".join(sorted(set(values)))

    return {exposure_id: (joined(s[0] for s in science), joined(member_types), joined(s[1] for s in science),
                          joined(f"{s[2]} ({s[3]})" for s in science))
            for exposure_id, (member_types, science) in processing(asns).items() if science}
