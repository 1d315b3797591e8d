"""One screening run as plain functions over paths. ``flows/`` wraps each stage in a Prefect task;
everything here also runs without Prefect (``run_screen``).

Stages: ``prepare`` → ``ingest_scans`` → ``validate`` → ``screen_exams`` → ``publish``.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core import __version__, publish, reference
from osteo_core.care_gaps import care_gaps, patients
from osteo_core.coverage import treatment_intervals
from osteo_core.errors import InputError, RejectRateExceeded
from osteo_core.events import classify_fractures, classify_meds, unrecognised_drugs, validate_fractures, validate_meds
from osteo_core.ingest import SOURCE_FILE, concat_text, discover, read_export, sha256_of
from osteo_core.lsc import load_device_lsc
from osteo_core.profiles import Profile, header_key, load_profile
from osteo_core.resources import shipped_toml
from osteo_core.rules import RuleSet, load_rules
from osteo_core.scan_validation import validate_scans
from osteo_core.screening import screen
from schemas.events import (
    FRACTURE_SITE_SOURCES,
    FRACTURES_FIELDS,
    FRACTURES_REQUIRED_HEADERS,
    MEDS_FIELDS,
    MEDS_REQUIRED_HEADERS,
)
from schemas.published import PUBLISHED_SCHEMAS
from schemas.scans import AGE_SOURCES, REQUIRED_HEADERS, SCANS_FIELDS

log = logging.getLogger("osteo")
TABLES = ("screening", "quarantine", "patients", "care_gaps", "treatment_intervals")
VIEWS = {
    "untreated_high_risk": "SELECT g.*, s.* EXCLUDE (patient_id, exam_id) FROM care_gaps g "
    "JOIN screening s ON s.exam_id = g.exam_id WHERE g.gap = 'untreated_high_risk'",
}
EXAMS = "exams.parquet"
MEDICATIONS = "medications.parquet"
FRACTURES = "fractures.parquet"
RULES_COPY = "rules.toml"
INPUTS = ("scans", "meds", "fractures")


@dataclass(frozen=True)
class ScreenRequest:
    """What the user asked for (CLI arguments); JSON-serialisable so it can be a flow parameter."""

    scans: list[str]
    out: str = "osteo-out"
    as_of: str = field(default_factory=lambda: dt.date.today().isoformat())
    rules: str = "standard"
    profile: str = "generic"
    max_reject_rate: float = 0.05
    meds: str | None = None
    fractures: str | None = None
    keep_runs: int = 5
    lsc: str | None = None  # optional per-device least significant change file (device_id, site, lsc)

    def paths_of(self, kind: str) -> list[str]:
        given = {
            "scans": self.scans,
            "meds": [self.meds] if self.meds else [],
            "fractures": [self.fractures] if self.fractures else [],
        }
        return given[kind]


@dataclass(frozen=True)
class RunPaths:
    out: Path
    run_id: str

    @property
    def folder(self) -> Path:
        return publish.run_dir(self.out, self.run_id)

    @property
    def raw(self) -> Path:
        return self.folder / "raw"

    @property
    def work(self) -> Path:
        return self.folder / ".work"


def _as_of(request: ScreenRequest) -> dt.date:
    try:
        return dt.date.fromisoformat(request.as_of)
    except ValueError:
        raise InputError("--as-of", f"'{request.as_of}' is not a date (YYYY-MM-DD)") from None


def check_arguments(request: ScreenRequest) -> tuple[Profile, RuleSet, dict[str, list[Path]]]:
    """Everything that can be wrong with the arguments, found before any data is read (exit 2)."""
    _as_of(request)
    if not 0 <= request.max_reject_rate <= 1:
        raise InputError("--max-reject-rate", f"{request.max_reject_rate} is not between 0 and 1")
    profile = load_profile(request.profile)
    rules = load_rules(request.rules)
    files = {kind: discover(request.paths_of(kind), kind) for kind in INPUTS}
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "--out exists and is not a folder")
    if request.lsc:
        load_device_lsc(request.lsc)
    return profile, rules, files


def prepare(request: ScreenRequest) -> dict[str, Any]:
    """Check the arguments and create the run's folder; returns the run's identity."""
    profile, rules, files = check_arguments(request)
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)
    paths = RunPaths(Path(request.out), run_id)
    paths.raw.mkdir(parents=True, exist_ok=False)
    return {
        "run_id": run_id,
        "files": {kind: [str(f) for f in found] for kind, found in files.items()},
        "profile": profile.name,
        "rules": rules.label,
    }


def _canonical_namer(kind: str, profile: Profile):
    if kind == "scans":
        return profile.canonical_name
    known = {f.name for f in (MEDS_FIELDS if kind == "meds" else FRACTURES_FIELDS)}
    return lambda header: header_key(header) if header_key(header) in known else header


def _require_columns(kind: str, path: Path, names: list[str], profile: Profile) -> None:
    required, one_of = {
        "scans": (REQUIRED_HEADERS, AGE_SOURCES),
        "meds": (MEDS_REQUIRED_HEADERS, ()),
        "fractures": (FRACTURES_REQUIRED_HEADERS, FRACTURE_SITE_SOURCES),
    }[kind]
    missing = [c for c in required if c not in names]
    if one_of and not any(c in names for c in one_of):
        missing.append(" or ".join(one_of))
    if missing:
        where = f" (profile '{profile.name}')" if kind == "scans" else ""
        raise InputError(str(path), f"required column(s) missing: {', '.join(missing)}{where}")


def ingest(request: ScreenRequest, run_id: str, kind: str, files: list[str]) -> list[dict[str, Any]]:
    """Each file of one input → ``raw/KIND-NNN.parquet`` (all text, canonical headers, source columns)."""
    profile = load_profile(request.profile)
    paths = RunPaths(Path(request.out), run_id)
    inputs = []
    for number, name in enumerate(files):
        path = Path(name)
        frame = read_export(path, paths.work, _canonical_namer(kind, profile))
        _require_columns(kind, path, frame.collect_schema().names(), profile)
        target = paths.raw / f"{kind}-{number:03d}.parquet"
        try:
            frame.sink_parquet(target)
        except Exception as exc:  # noqa: BLE001 - a malformed body is an unreadable file for the user
            raise InputError(str(path), f"cannot be read ({str(exc).strip().splitlines()[0][:200]})") from None
        rows = pl.scan_parquet(target).select(pl.len()).collect().item()
        inputs.append({"input": kind, "path": str(path), "sha256": sha256_of(path), "rows": rows})
        log.info("read %s file %d of %d: %d rows", kind, number + 1, len(files), rows)
    shutil.rmtree(paths.work, ignore_errors=True)
    return inputs


def _raw(paths: RunPaths, kind: str, fields) -> pl.LazyFrame:
    files = sorted(paths.raw.glob(f"{kind}-*.parquet"))
    if not files:
        return pl.LazyFrame(schema={f.name: pl.Utf8 for f in fields} | {SOURCE_FILE: pl.Utf8, "source_row": pl.Int64})
    return concat_text([pl.scan_parquet(p) for p in files])


def _counts(result) -> dict[str, int]:
    return {
        "rows_in": result.rows_in,
        "valid": result.valid.height,
        "quarantined": result.quarantined_rows,
        "duplicate": result.duplicates,
    }


def validate(request: ScreenRequest, run_id: str) -> dict[str, Any]:
    """Raw inputs → typed ``exams``, ``medications``, ``fractures`` and one ``quarantine``; returns counts."""
    paths = RunPaths(Path(request.out), run_id)
    profile, as_of = load_profile(request.profile), _as_of(request)
    scans = validate_scans(_raw(paths, "scans", SCANS_FIELDS), profile, as_of, shipped_toml("validation/scans.toml"))
    meds = validate_meds(
        _raw(paths, "meds", MEDS_FIELDS), profile.date_formats, as_of, shipped_toml("validation/medications.toml")
    )
    fractures = validate_fractures(_raw(paths, "fractures", FRACTURES_FIELDS), profile.date_formats, as_of)
    scans.valid.write_parquet(paths.folder / EXAMS)
    medications = classify_meds(meds.valid.lazy()).collect()
    medications.write_parquet(paths.folder / MEDICATIONS)
    classify_fractures(fractures.valid.lazy()).collect().write_parquet(paths.folder / FRACTURES)
    quarantine = pl.concat([scans.quarantine, meds.quarantine, fractures.quarantine]).sort(
        "input", SOURCE_FILE, "source_row", "column", "check", nulls_last=True
    )
    PUBLISHED_SCHEMAS["quarantine"].validate(quarantine)
    quarantine.write_parquet(paths.folder / "quarantine.parquet")
    counts = {
        "scans": _counts(scans),
        "meds": _counts(meds),
        "fractures": _counts(fractures),
        "unrecognised_drugs": unrecognised_drugs(medications),
    }
    for kind in INPUTS:
        c = counts[kind]
        log.info(
            "validated %s: %d valid, %d quarantined, %d duplicate", kind, c["valid"], c["quarantined"], c["duplicate"]
        )
    return counts


def _fractures(paths: RunPaths) -> pl.LazyFrame:
    return pl.scan_parquet(paths.folder / FRACTURES)


def screen_exams(request: ScreenRequest, run_id: str) -> dict[str, int]:
    """Valid exams (+ fractures export) → ``screening.parquet``; returns exams per WHO category."""
    paths = RunPaths(Path(request.out), run_id)
    rules = load_rules(request.rules)
    shutil.copyfile(rules.source_path, paths.folder / RULES_COPY)  # the exact rules that ran
    screening = screen(pl.scan_parquet(paths.folder / EXAMS), rules, _fractures(paths)).collect()
    PUBLISHED_SCHEMAS["screening"].validate(screening)
    screening.write_parquet(paths.folder / "screening.parquet")
    by_category = screening.group_by("who_category").len().sort("who_category", nulls_last=True)
    log.info("screened %d exams", screening.height)
    return {str(row["who_category"]): row["len"] for row in by_category.iter_rows(named=True)}


def find_care_gaps(request: ScreenRequest, run_id: str) -> dict[str, int]:
    """Screening + events → ``patients``, ``care_gaps``, ``treatment_intervals``; returns open gaps per type."""
    paths = RunPaths(Path(request.out), run_id)
    as_of = _as_of(request)
    screening = pl.scan_parquet(paths.folder / "screening.parquet")
    exams = pl.scan_parquet(paths.folder / EXAMS)
    meds = pl.scan_parquet(paths.folder / MEDICATIONS)
    fractures = _fractures(paths)
    device_lsc = load_device_lsc(request.lsc).lazy() if request.lsc else None
    gaps = care_gaps(screening, exams, meds, fractures, as_of, reference.care_gap_parameters(), device_lsc).collect()
    outputs = {
        "patients": patients(screening, meds, fractures, as_of).collect(),
        "care_gaps": gaps,
        "treatment_intervals": treatment_intervals(meds, as_of).collect(),
    }
    for table, frame in outputs.items():
        PUBLISHED_SCHEMAS[table].validate(frame)
        frame.write_parquet(paths.folder / f"{table}.parquet")
    counts = gaps.group_by("gap").len().sort("gap")
    log.info("found %d open care gaps", gaps.height)
    return {row["gap"]: row["len"] for row in counts.iter_rows(named=True)}


def publish_run(
    request: ScreenRequest, run_id: str, inputs: list[dict[str, Any]], counts: dict[str, Any]
) -> dict[str, Any]:
    """Write manifest and catalog, then make the run the published one — or refuse (exit 3).

    ``rows`` are the scans' counts (the reject rate's basis); ``rows_by_input`` holds all three inputs.
    """
    paths = RunPaths(Path(request.out), run_id)
    rules = load_rules(request.rules)
    profile = load_profile(request.profile)
    scans = counts["scans"]
    reject_rate = scans["quarantined"] / scans["rows_in"] if scans["rows_in"] else 0.0
    manifest = {
        "run_id": run_id,
        "tool_version": __version__,
        "as_of": request.as_of,
        "rule_set": {"name": rules.name, "version": rules.version, "source": rules.source_path},
        "reference": reference.versions(),
        "profile": profile.name,
        "inputs": inputs,
        "rows": scans,
        "rows_by_input": {kind: counts[kind] for kind in INPUTS},
        "unrecognised_drugs": counts["unrecognised_drugs"],
        "reject_rate": round(reject_rate, 6),
        "max_reject_rate": request.max_reject_rate,
        "tables": {
            t: pl.scan_parquet(paths.folder / f"{t}.parquet").select(pl.len()).collect().item()
            for t in TABLES
            if (paths.folder / f"{t}.parquet").exists()
        },
    }
    shutil.rmtree(paths.work, ignore_errors=True)
    if reject_rate > request.max_reject_rate:
        manifest["status"] = "rejected"
        publish.write_manifest(paths.folder, manifest)
        raise RejectRateExceeded(reject_rate, request.max_reject_rate, str(paths.folder / "quarantine.parquet"))
    manifest["status"] = "published"
    publish.write_catalog(paths.folder, list(TABLES), VIEWS)
    publish.crash_point("after_catalog")
    publish.write_manifest(paths.folder, manifest)
    publish.promote(
        paths.out, run_id, [f"{t}.parquet" for t in TABLES] + [publish.MANIFEST, publish.CATALOG], request.keep_runs
    )
    log.info("published run %s", run_id)
    return manifest


def discard(request: ScreenRequest, run_id: str) -> None:
    """Remove an unfinished run's folder after an input error (nothing of it was published)."""
    shutil.rmtree(RunPaths(Path(request.out), run_id).folder, ignore_errors=True)


def run_screen(request: ScreenRequest) -> dict[str, Any]:
    """The whole screen without Prefect (the flow in ``flows/screen.py`` runs the same stages)."""
    run = prepare(request)
    run_id = run["run_id"]
    try:
        inputs = [i for kind in INPUTS for i in ingest(request, run_id, kind, run["files"][kind])]
        counts = validate(request, run_id)
    except InputError:
        discard(request, run_id)
        raise
    screen_exams(request, run_id)
    find_care_gaps(request, run_id)
    return publish_run(request, run_id, inputs, counts)
