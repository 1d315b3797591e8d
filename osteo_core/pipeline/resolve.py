"""A screen's request resolved once (``resolve``): the as-of date as a date, the measurement year, the loaded rule set
and profile, the input files found with their format, size, digest and encoding (one pass over each), the partition
plan and the least-significant-change table. ``osteo screen``, the flow and ``osteo serve`` build it here and nowhere
else; the stages take it and never read arguments, look for files or load rules again.

Everything wrong with the arguments is found here, before any data is read or any engine starts (exit 2, one line).
``osteo screen`` resolves before it starts Prefect and hands what it resolved to the flow it starts (``hand_over``):
the flow takes it instead of resolving again, so each file is read once before ingest, not once per check.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from osteo_core.decide.rules import RuleSet, load_rules
from osteo_core.errors import InputError
from osteo_core.gaps.lsc import load_device_lsc
from osteo_core.ingest import fhir, omop
from osteo_core.ingest.profiles import Profile, fhir_profiles, load_profile, roster_routing
from osteo_core.ingest.readers import Fingerprint, canonical_columns, discover, fingerprint, read_headers
from osteo_core.pipeline import request as checks
from osteo_core.pipeline.request import ScreenRequest
from schemas.inputs import INPUTS, POPULATION, SCANS


@dataclass(frozen=True)
class InputFile:
    """One file of an input, as found and read once (``readers.fingerprint``) before the run."""

    path: str
    fingerprint: Fingerprint


@dataclass(frozen=True, eq=False)
class Resolved:
    """What one screen does, decided once (``resolve``). ``request`` is the request as given with its as-of date
    filled in (what the manifest and the flow's parameters show); ``files`` are empty for an OMOP screen, whose
    inputs are extracted from the CDM into the run under the output folder's lock (``lifecycle.prepare``)."""

    request: ScreenRequest
    as_of: dt.date
    measurement_year: int
    profile: Profile
    rules: RuleSet
    bulk_export: str | None
    files: Mapping[str, tuple[InputFile, ...]]
    skipped: Mapping[str, tuple[str, ...]]
    partitions: int  # the plan: as given, else one per 500,000 scan (or roster) rows; OMOP: after extraction
    inputs_given: tuple[str, ...]  # the kinds of input this run is given (``INPUTS`` order): the manifest's
    device_lsc: pl.DataFrame | None = field(default=None, repr=False)

    @property
    def out(self) -> Path:
        return Path(self.request.out)

    @property
    def roster_given(self) -> bool:
        """A population roster is read: ``--population``, or an OMOP CDM's persons."""
        return POPULATION.name in self.inputs_given


_handed: Resolved | None = None


def hand_over(resolved: Resolved) -> None:
    """Keep ``resolved`` for the next ``resolve`` of the same request in this process (``osteo screen`` resolves
    before it starts Prefect; the flow it starts takes this instead of resolving again). Taken once."""
    global _handed
    _handed = resolved


def resolve(request: ScreenRequest, today: dt.date | None = None) -> Resolved:
    """The request resolved (``Resolved``), or ``InputError``/``OutputError`` (exit 2) for anything wrong with it.

    The as-of date: as given; not given (None): an OMOP CDM's release date, else ``today``; blank (a scheduled
    screen's): ``today`` (the day the run starts in the schedule's time zone, which the flow passes; this
    machine's date by default)."""
    global _handed
    as_of = as_of_date(request, today or dt.date.today())
    request = replace(request, as_of=as_of.isoformat())
    handed, _handed = _handed, None
    if handed is not None and handed.request == request and _unchanged(handed):
        return handed
    return _resolve(request, as_of)


def as_of_date(request: ScreenRequest, today: dt.date) -> dt.date:
    """The one place an as-of date is decided: as given; not given (None): an OMOP CDM's release date (``today``
    when the CDM gives none), else ``today``; blank (a scheduled screen's): ``today``."""
    if request.as_of is None and request.omop:
        released = omop.probe(request.omop, request.omop_schema, request.omop_patient_id).release_date
        return dt.date.fromisoformat(released) if released else today
    if not request.as_of:
        return today
    try:
        return dt.date.fromisoformat(request.as_of)
    except ValueError:
        raise InputError("--as-of", f"'{request.as_of}' is not a date (YYYY-MM-DD)") from None


def _unchanged(resolved: Resolved) -> bool:
    """Every file handed over is still the one read (size and modification time)."""
    try:
        return all(
            entry.fingerprint.describes(Path(entry.path)) for found in resolved.files.values() for entry in found
        )
    except OSError:
        return False


def _resolve(request: ScreenRequest, as_of: dt.date) -> Resolved:
    year = checks.measurement_year(request.measurement_year, as_of)
    for option, value in (("--max-reject-rate", request.max_reject_rate), ("--max-shrink", request.max_shrink)):
        if not 0 <= value <= 1:
            raise InputError(option, f"{value} is not between 0 and 1")
    bulk = request.scans[0] if len(request.scans) == 1 and fhir.is_bulk_export(request.scans[0]) else None
    profile = load_profile(checks.profile_name(request, bulk))
    rules = load_rules(request.rules)
    if bulk and profile.fhir is None:
        raise InputError(
            bulk,
            "a FHIR Bulk Data export is read with a FHIR profile (one with a [fhir] section: "
            f"{', '.join(fhir_profiles())})",
        )
    paths = {kind: checks.paths_of(request, kind, bulk) for kind in INPUTS}
    checks.check_out_apart(request, paths)
    if not request.omop and (request.omop_patient_id or request.omop_enrolment != omop.ENROLMENTS[0]):
        option = "--omop-patient-id" if request.omop_patient_id else "--omop-enrolment"
        raise InputError(option, "is read with --omop SOURCE only")
    if request.omop:
        checks.check_omop(request, profile)
        found = {kind: ([], []) for kind in INPUTS}  # extracted from the CDM into the run (``prepare``)
    else:
        found = {kind: _discovered(paths[kind], kind) for kind in INPUTS}
    if bulk and not any(fhir.resource_type(f) == "Patient" for f in found[SCANS.name][0]):
        raise InputError(bulk, "FHIR Bulk Data export holds no Patient file (sex and birth date)")
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "--out exists and is not a folder")
    checks.check_run_order(request.out, as_of)
    checks.check_not_ahead(as_of)
    device_lsc = load_device_lsc(request.lsc) if request.lsc else None
    _check_headers(request, profile, {kind: files for kind, (files, _) in found.items()})
    checks.check_writable(out)
    files = {kind: input_files(found[kind][0]) for kind in INPUTS}
    partitions = request.partitions or (
        0 if request.omop else checks.auto_partitions(found[SCANS.name][0], found[POPULATION.name][0])
    )
    return Resolved(
        request=request,
        as_of=as_of,
        measurement_year=year,
        profile=profile,
        rules=rules,
        bulk_export=bulk,
        files=files,
        skipped={kind: tuple(skipped) for kind, (_, skipped) in found.items() if skipped},
        partitions=partitions,
        inputs_given=tuple(kind for kind in INPUTS if paths[kind]),
        device_lsc=device_lsc,
    )


def _discovered(paths: list[str], kind: str) -> tuple[list[Path], list[str]]:
    found = discover(paths, kind)
    return found.files, found.skipped


def _check_headers(request: ScreenRequest, profile: Profile, files: dict[str, list[Path]]) -> None:
    """Each file's header row, read cheaply now, so a missing column is said before any engine starts."""
    long_columns: dict[Path, list[str]] = {}
    for kind, paths in files.items():
        for path in paths:
            headers = read_headers(path, request.sheet)
            if headers:
                require = functools.partial(checks.require_columns, kind, path, profile=profile)
                names, _ = canonical_columns(path, headers, checks.canonical_namer(kind, profile), require)
                if kind == POPULATION.name:
                    roster_routing(profile, names, str(path))  # a column that cannot route: exit 2, naming it
                if kind == SCANS.name and profile.long is not None:
                    long_columns[path] = names
    if long_columns and len(long_columns) == len(files[SCANS.name]):
        checks.require_long_input(long_columns, profile)


def input_files(paths: list[Path]) -> tuple[InputFile, ...]:
    """Files as found, each read once for its digest and encoding (``readers.fingerprint``): the request's, and an
    OMOP CDM's extraction's after resolving."""
    return tuple(InputFile(str(p), fingerprint(p)) for p in paths)
