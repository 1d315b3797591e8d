"""One screening run as plain functions over paths. ``flows/`` wraps each stage in a Prefect task;
everything here also runs without Prefect (``run_screen``).

Stages: ``prepare`` → ``ingest_scans`` → ``validate`` → ``screen_exams`` → ``publish``.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core import __version__, publish
from osteo_core.errors import InputError, RejectRateExceeded
from osteo_core.ingest import SOURCE_FILE, concat_text, discover, read_export, sha256_of
from osteo_core.profiles import Profile, load_profile
from osteo_core.resources import shipped_toml
from osteo_core.rules import RuleSet, load_rules
from osteo_core.scan_validation import validate_scans
from osteo_core.screening import screen
from schemas.published import PUBLISHED_SCHEMAS
from schemas.scans import AGE_SOURCES, REQUIRED_HEADERS

log = logging.getLogger("osteo")
TABLES = ("screening", "quarantine")
EXAMS = "exams.parquet"
RULES_COPY = "rules.toml"


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


def check_arguments(request: ScreenRequest) -> tuple[Profile, RuleSet, list[Path]]:
    """Everything that can be wrong with the arguments, found before any data is read (exit 2)."""
    _as_of(request)
    if not 0 <= request.max_reject_rate <= 1:
        raise InputError("--max-reject-rate", f"{request.max_reject_rate} is not between 0 and 1")
    profile = load_profile(request.profile)
    rules = load_rules(request.rules)
    files = discover(request.scans, "scans")
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "--out exists and is not a folder")
    return profile, rules, files


def prepare(request: ScreenRequest) -> dict[str, Any]:
    """Check the arguments and create the run's folder; returns the run's identity."""
    profile, rules, files = check_arguments(request)
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)
    paths = RunPaths(Path(request.out), run_id)
    paths.raw.mkdir(parents=True, exist_ok=False)
    return {"run_id": run_id, "files": [str(f) for f in files], "profile": profile.name, "rules": rules.label}


def ingest_scans(request: ScreenRequest, run_id: str, files: list[str]) -> list[dict[str, Any]]:
    """Each scans file → ``raw/scans-NNN.parquet`` (all text, canonical headers, source columns)."""
    profile = load_profile(request.profile)
    paths = RunPaths(Path(request.out), run_id)
    inputs = []
    for number, name in enumerate(files):
        path = Path(name)
        frame = read_export(path, paths.work, profile.canonical_name)
        _require_columns(path, frame.collect_schema().names(), profile)
        target = paths.raw / f"scans-{number:03d}.parquet"
        try:
            frame.sink_parquet(target)
        except Exception as exc:  # noqa: BLE001 - a malformed body is an unreadable file for the user
            raise InputError(str(path), f"cannot be read ({str(exc).strip().splitlines()[0][:200]})") from None
        rows = pl.scan_parquet(target).select(pl.len()).collect().item()
        inputs.append({"input": "scans", "path": str(path), "sha256": sha256_of(path), "rows": rows})
        log.info("read scans file %d of %d: %d rows", number + 1, len(files), rows)
    shutil.rmtree(paths.work, ignore_errors=True)
    return inputs


def _require_columns(path: Path, names: list[str], profile: Profile) -> None:
    missing = [c for c in REQUIRED_HEADERS if c not in names]
    if not any(c in names for c in AGE_SOURCES):
        missing.append(" or ".join(AGE_SOURCES))
    if missing:
        raise InputError(str(path), f"required column(s) missing: {', '.join(missing)} (profile '{profile.name}')")


def validate(request: ScreenRequest, run_id: str) -> dict[str, int]:
    """Raw scans → ``.work/scans_valid.parquet`` and ``quarantine.parquet``; returns the row counts."""
    paths = RunPaths(Path(request.out), run_id)
    raw = concat_text([pl.scan_parquet(p) for p in sorted(paths.raw.glob("scans-*.parquet"))])
    result = validate_scans(raw, load_profile(request.profile), _as_of(request), shipped_toml("validation/scans.toml"))
    paths.work.mkdir(exist_ok=True)
    result.valid.write_parquet(paths.work / "scans_valid.parquet")
    quarantine = result.quarantine.sort(SOURCE_FILE, "source_row", "column", "check", nulls_last=True)
    PUBLISHED_SCHEMAS["quarantine"].validate(quarantine)
    quarantine.write_parquet(paths.folder / "quarantine.parquet")
    counts = {
        "rows_in": result.rows_in,
        "valid": result.valid.height,
        "quarantined": result.quarantined_rows,
        "duplicate": result.duplicates,
    }
    log.info(
        "validated scans: %d valid, %d quarantined, %d duplicate",
        counts["valid"],
        counts["quarantined"],
        counts["duplicate"],
    )
    return counts


def screen_exams(request: ScreenRequest, run_id: str) -> dict[str, int]:
    """Valid exams → ``screening.parquet``; returns exams per WHO category."""
    paths = RunPaths(Path(request.out), run_id)
    rules = load_rules(request.rules)
    exams = paths.folder / EXAMS
    (paths.work / "scans_valid.parquet").rename(exams)  # typed inputs of valid exams, for explain and gaps
    shutil.copyfile(rules.source_path, paths.folder / RULES_COPY)  # the exact rules that ran
    screening = screen(pl.scan_parquet(exams), rules).collect()
    PUBLISHED_SCHEMAS["screening"].validate(screening)
    screening.write_parquet(paths.folder / "screening.parquet")
    by_category = screening.group_by("who_category").len().sort("who_category", nulls_last=True)
    counts = {str(row["who_category"]): row["len"] for row in by_category.iter_rows(named=True)}
    log.info("screened %d exams", screening.height)
    return counts


def publish_run(
    request: ScreenRequest, run_id: str, inputs: list[dict[str, Any]], counts: dict[str, int]
) -> dict[str, Any]:
    """Write manifest and catalog, then make the run the published one — or refuse (exit 3)."""
    paths = RunPaths(Path(request.out), run_id)
    rules = load_rules(request.rules)
    profile = load_profile(request.profile)
    reject_rate = counts["quarantined"] / counts["rows_in"] if counts["rows_in"] else 0.0
    manifest = {
        "run_id": run_id,
        "tool_version": __version__,
        "as_of": request.as_of,
        "rule_set": {"name": rules.name, "version": rules.version, "source": rules.source_path},
        "profile": profile.name,
        "inputs": inputs,
        "rows": {k: counts[k] for k in ("rows_in", "valid", "quarantined", "duplicate")},
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
    publish.write_catalog(paths.folder, list(TABLES))
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
    try:
        inputs = ingest_scans(request, run["run_id"], run["files"])
        counts = validate(request, run["run_id"])
    except InputError:
        discard(request, run["run_id"])
        raise
    screen_exams(request, run["run_id"])
    return publish_run(request, run["run_id"], inputs, counts)


def request_dict(request: ScreenRequest) -> dict[str, Any]:
    return asdict(request)
