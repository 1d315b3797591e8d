"""One screening run as plain functions over paths. ``flows/`` wraps each stage in a Prefect task;
everything here also runs without Prefect (``run_screen``).

Stages: ``prepare`` → ``ingest`` (each input file streamed into patient partitions) →
``find_exam_conflicts`` (run-wide) → ``process_partition`` (one per partition, independent) →
``publish_run`` (merge partitions, manifest, catalog, atomic switch).
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
from osteo_core.errors import InputError, RejectRateExceeded
from osteo_core.ingest import SOURCE_FILE, concat_text, discover, read_export, sha256_of
from osteo_core.lsc import load_device_lsc
from osteo_core.partition import PARTITION, merge_counts, partition_key, screen_partition
from osteo_core.profiles import Profile, header_key, load_profile
from osteo_core.rules import RuleSet, load_rules
from osteo_core.scan_validation import exam_ids_under_several_patients
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
TABLES = publish.TABLES
EVENT_TABLES = publish.EVENT_TABLES
EXAMS = "exams.parquet"
FRACTURES = "fractures.parquet"
RULES_COPY = "rules.toml"
CONFLICTS = "exam_conflicts.parquet"
INPUTS = ("scans", "meds", "fractures")
ROWS_PER_PARTITION = 500_000  # automatic partitioning: scan rows per partition (bounds memory)
MAX_AUTO_PARTITIONS = 256
PARTITIONS_PER_CONFLICT_BUCKET = 10


def estimated_rows(path: Path) -> int:
    """Rows in a scans file: exact for Parquet (metadata only), estimated from the first MiB for text."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            return pl.scan_parquet(path).select(pl.len()).collect().item()
        except Exception:  # noqa: BLE001 - unreadable: ingest reports it, naming the file (exit 2)
            return 0
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    lines = max(1, head.count(b"\n"))
    return int(size / (len(head) / lines)) if head else 0


def auto_partitions(scans: list[str]) -> int:
    """About one partition per 500,000 scan rows, so each partition's frames stay small."""
    rows = sum(estimated_rows(f) for f in discover(scans, "scans") if f.suffix.lower() not in (".xlsx", ".xlsm"))
    return max(1, min(MAX_AUTO_PARTITIONS, -(-rows // ROWS_PER_PARTITION)))


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
    partitions: int = 0  # patient partitions; 0 = one per 500,000 scan rows

    @property
    def partition_count(self) -> int:
        return self.partitions if self.partitions > 0 else auto_partitions(self.scans)

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

    def part(self, partition: int) -> Path:
        return self.work / f"part-{partition:03d}"


def _as_of(request: ScreenRequest) -> dt.date:
    if not request.as_of:  # a scheduled screen: as of the day it runs
        return dt.date.today()
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
        "partitions": request.partition_count,
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


def ingest(request: ScreenRequest, run_id: str, kind: str, files: list[str], partitions: int) -> list[dict[str, Any]]:
    """Each file of one input → ``raw/KIND/NNN/_partition=P/*.parquet``: all text, canonical headers,
    source columns, split by patient partition in one streaming pass."""
    profile = load_profile(request.profile)
    paths = RunPaths(Path(request.out), run_id)
    inputs = []
    for number, name in enumerate(files):
        path = Path(name)
        frame = read_export(path, paths.work, _canonical_namer(kind, profile))
        _require_columns(kind, path, frame.collect_schema().names(), profile)
        target = paths.raw / kind / f"{number:03d}"
        try:
            frame.with_columns(partition_key(partitions)).sink_parquet(
                pl.PartitionBy(target, key=PARTITION, include_key=False), mkdir=True
            )
        except Exception as exc:  # noqa: BLE001 - a malformed body is an unreadable file for the user
            raise InputError(str(path), f"cannot be read ({str(exc).strip().splitlines()[0][:200]})") from None
        written = sorted(target.glob("*/*.parquet"))
        rows = (
            pl.concat([pl.scan_parquet(f).select(pl.len()) for f in written]).sum().collect().item() if written else 0
        )
        inputs.append({"input": kind, "path": str(path), "sha256": sha256_of(path), "rows": rows})
        log.info("read %s file %d of %d: %d rows", kind, number + 1, len(files), rows)
    shutil.rmtree(paths.work, ignore_errors=True)
    return inputs


def _raw(paths: RunPaths, kind: str, fields, partition: int | None = None) -> pl.LazyFrame:
    """The raw text rows of one input (one partition of it, or all)."""
    pattern = f"*/{PARTITION}={partition}/*.parquet" if partition is not None else "*/*/*.parquet"
    files = sorted((paths.raw / kind).glob(pattern))
    if not files:
        return pl.LazyFrame(schema={f.name: pl.Utf8 for f in fields} | {SOURCE_FILE: pl.Utf8, "source_row": pl.Int64})
    return concat_text([pl.scan_parquet(p) for p in files])


def find_exam_conflicts(request: ScreenRequest, run_id: str, partitions: int = 1) -> int:
    """Exam ids under several patients, run-wide (two columns only); partitions quarantine those copies.

    One exam-id bucket per ten partitions keeps the run-wide group-by at a few million ids.
    """
    paths = RunPaths(Path(request.out), run_id)
    buckets = max(1, -(-partitions // PARTITIONS_PER_CONFLICT_BUCKET))
    conflicts = exam_ids_under_several_patients(_raw(paths, "scans", SCANS_FIELDS), buckets)
    paths.work.mkdir(exist_ok=True)
    conflicts.write_parquet(paths.work / CONFLICTS)
    return conflicts.height


def process_partition(request: ScreenRequest, run_id: str, partition: int) -> dict[str, Any]:
    """Validate, screen and find the gaps of one patient partition; its tables go to ``.work/part-NNN/``."""
    paths = RunPaths(Path(request.out), run_id)
    result = screen_partition(
        _raw(paths, "scans", SCANS_FIELDS, partition),
        _raw(paths, "meds", MEDS_FIELDS, partition),
        _raw(paths, "fractures", FRACTURES_FIELDS, partition),
        profile=load_profile(request.profile),
        rules=load_rules(request.rules),
        as_of=_as_of(request),
        conflicting_exam_ids=pl.read_parquet(paths.work / CONFLICTS).get_column("exam_id"),
        device_lsc=load_device_lsc(request.lsc).lazy() if request.lsc else None,
    )
    folder = paths.part(partition)
    folder.mkdir(parents=True, exist_ok=True)
    for table, frame in result.tables.items():
        if table in PUBLISHED_SCHEMAS:
            PUBLISHED_SCHEMAS[table].validate(frame)
        frame.write_parquet(folder / f"{table}.parquet")
    log.info("partition %d: %d exams screened", partition, result.tables["screening"].height)
    return result.counts


def _merge_tables(paths: RunPaths, partitions: int) -> None:
    """Each table: its partition files, in partition order, streamed into one Parquet file."""
    for table in (*TABLES, "exams", "medications", "fractures"):
        parts = [paths.part(p) / f"{table}.parquet" for p in range(partitions)]
        pl.concat([pl.scan_parquet(part) for part in parts]).sink_parquet(paths.folder / f"{table}.parquet")


def publish_run(
    request: ScreenRequest, run_id: str, inputs: list[dict[str, Any]], partition_counts: list[dict[str, Any]]
) -> dict[str, Any]:
    """Merge the partitions, write manifest and catalog, then make the run the published one — or refuse
    (exit 3). ``rows`` are the scans' counts (the reject rate's basis); ``rows_by_input`` has all inputs.
    """
    paths = RunPaths(Path(request.out), run_id)
    counts = merge_counts(partition_counts)
    _merge_tables(paths, len(partition_counts))
    rules = load_rules(request.rules)
    shutil.copyfile(rules.source_path, paths.folder / RULES_COPY)  # the exact rules that ran
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
        "partitions": len(partition_counts),
        "who_categories": counts["who_categories"],
        "eligibility": counts["eligibility"],
        "care_gaps": counts["care_gaps"],
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
    publish.write_catalog(paths.folder, list(publish.CATALOG_TABLES), publish.VIEWS)
    publish.crash_point("after_catalog")
    publish.write_manifest(paths.folder, manifest)
    publish.promote(
        paths.out, run_id, [f"{t}.parquet" for t in TABLES] + [publish.MANIFEST, publish.CATALOG], request.keep_runs
    )
    publish.append_history(paths.out, manifest)
    log.info("published run %s", run_id)
    return manifest


def discard(request: ScreenRequest, run_id: str) -> None:
    """Remove an unfinished run's folder after an input error (nothing of it was published)."""
    shutil.rmtree(RunPaths(Path(request.out), run_id).folder, ignore_errors=True)


def run_screen(request: ScreenRequest) -> dict[str, Any]:
    """The whole screen without Prefect (the flow in ``flows/screen.py`` runs the same stages)."""
    run = prepare(request)
    run_id, partitions = run["run_id"], run["partitions"]
    try:
        inputs = [i for kind in INPUTS for i in ingest(request, run_id, kind, run["files"][kind], partitions)]
    except InputError:
        discard(request, run_id)
        raise
    find_exam_conflicts(request, run_id, partitions)
    counts = [process_partition(request, run_id, p) for p in range(partitions)]
    return publish_run(request, run_id, inputs, counts)
