"""One screening run as plain functions over paths. ``flows/`` wraps each stage in a Prefect task;
everything here also runs without Prefect (``run_screen``).

Stages: ``prepare`` → ``ingest`` (each input file streamed into patient partitions) →
``find_exam_conflicts`` (run-wide) → ``process_partition`` (one per partition, independent) →
``publish_run`` (merge partitions, manifest, catalog, atomic switch).
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import logging
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core import __version__, publish, reference
from osteo_core.errors import (
    InputError,
    OutputError,
    RejectRateExceeded,
    RunRefused,
    ShrinkExceeded,
    disk_problem,
    output_errors,
)
from osteo_core.ingest import (
    SOURCE_FILE,
    blank_row,
    canonical_columns,
    concat_text,
    discover,
    file_format,
    header_key,
    read_export,
    read_headers,
    sha256_of,
)
from osteo_core.lsc import load_device_lsc
from osteo_core.partition import PARTITION, merge_counts, partition_key, screen_partition
from osteo_core.profiles import Profile, load_profile
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
EXAMS = "exams"  # run-folder tables kept as one file per partition (never merged): explain and the catalog
FRACTURES = "fractures"
PARTITIONED = ("exams", *publish.EVENT_TABLES)
RULES_COPY = "rules.toml"
CONFLICTS = "exam_conflicts.parquet"
INPUTS = ("scans", "meds", "fractures")
ROWS_PER_PARTITION = 500_000  # automatic partitioning: scan rows per partition (bounds memory)
MAX_AUTO_PARTITIONS = 256
PARTITIONS_PER_CONFLICT_BUCKET = 10


def estimated_rows(path: Path) -> int:
    """Rows in a scans file: exact for Parquet (metadata only), estimated from the first MiB for text
    (of the decompressed text for ``.csv.gz``), 0 for XLSX (small by nature)."""
    fmt = file_format(path)
    if fmt == "parquet":
        try:
            return pl.scan_parquet(path).select(pl.len()).collect().item()
        except Exception:  # noqa: BLE001 - unreadable: ingest reports it, naming the file (exit 2)
            return 0
    if fmt == "xlsx":
        return 0
    size = path.stat().st_size
    try:
        with path.open("rb") as raw:
            if fmt == "csv.gz":
                with gzip.GzipFile(fileobj=raw) as fh:
                    head = fh.read(1 << 20)
                consumed = raw.tell()  # compressed bytes behind that MiB of text
            else:
                head = raw.read(1 << 20)
                consumed = len(head)
    except (OSError, EOFError):
        return 0  # unreadable: ingest reports it, naming the file
    lines = max(1, head.count(b"\n"))
    return int(size / consumed * lines) if head and consumed else 0


def auto_partitions(scans: list[str]) -> int:
    """About one partition per 500,000 scan rows, so each partition's frames stay small."""
    rows = sum(estimated_rows(f) for f in discover(scans, "scans").files)
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
    max_shrink: float = 0.5  # refuse a run whose valid exams fall below (1 - this) x the last published run's
    sheet: str | None = None  # XLSX inputs: the sheet to read (default: the first)
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


def check_arguments(request: ScreenRequest) -> tuple[Profile, RuleSet, dict[str, Any]]:
    """Everything that can be wrong with the arguments, found before any data is read (exit 2)."""
    _as_of(request)
    for option, value in (("--max-reject-rate", request.max_reject_rate), ("--max-shrink", request.max_shrink)):
        if not 0 <= value <= 1:
            raise InputError(option, f"{value} is not between 0 and 1")
    profile = load_profile(request.profile)
    rules = load_rules(request.rules)
    files = {kind: discover(request.paths_of(kind), kind) for kind in INPUTS}
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "--out exists and is not a folder")
    if request.lsc:
        load_device_lsc(request.lsc)
    for kind, found in files.items():
        for path in found.files:  # headers now, so a missing column is said before any engine starts
            headers = read_headers(path, request.sheet)
            if headers:
                require = functools.partial(_require_columns, kind, path, profile=profile)
                canonical_columns(path, headers, _canonical_namer(kind, profile), require)
    _check_writable(out)
    return profile, rules, files


def _check_writable(out: Path) -> None:
    """A read-only or forbidden ``--out`` is said at once, before any data is read (exit 2)."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    probe = existing / f".osteo-write-test-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise OutputError(str(existing), f"cannot write the output ({exc.strerror or exc})") from None


def prepare(request: ScreenRequest, run_id: str | None = None, checked=None) -> dict[str, Any]:
    """Check the arguments (unless ``checked`` holds ``check_arguments``' answer) and create the run's
    folder; returns the run's identity."""
    profile, rules, files = checked or check_arguments(request)
    run_id = run_id or new_run_id()
    paths = RunPaths(Path(request.out), run_id)
    with output_errors(request.out):
        paths.raw.mkdir(parents=True, exist_ok=False)
    return {
        "run_id": run_id,
        "partitions": request.partition_count,
        "files": {kind: [str(f) for f in found.files] for kind, found in files.items()},
        "skipped_files": {kind: found.skipped for kind, found in files.items() if found.skipped},
        "profile": profile.name,
        "rules": rules.label,
    }


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


@contextmanager
def open_run(request: ScreenRequest) -> Iterator[dict[str, Any]]:
    """Lock the output folder and create the run's folder for the stages; whatever goes wrong, remove
    what this run wrote (a refused run keeps its folder: its quarantine is there for inspection)."""
    checked = check_arguments(request)
    out = Path(request.out)
    created = [p for p in (out, *out.parents) if not p.exists()]
    with output_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    with publish.output_lock(out, run_id):
        try:
            yield prepare(request, run_id, checked)
        except RunRefused:
            raise
        except BaseException:
            discard(request, run_id)
            if created:  # folders made for this run that hold nothing of anyone's: remove them again
                _remove_empty([out / publish.RUNS, *created], lock_file=out / publish.LOCK)
            raise


def _remove_empty(folders: list[Path], lock_file: Path) -> None:
    """Remove these folders, innermost first, while each holds nothing; the lock file (still held by this
    run, so no other screen's) goes with its folder."""
    for folder in folders:
        try:
            if any(entry != lock_file for entry in folder.iterdir()):
                return
            if lock_file.parent == folder:
                lock_file.unlink(missing_ok=True)
            folder.rmdir()
        except OSError:
            return


def _canonical_namer(kind: str, profile: Profile):
    if kind == "scans":
        return profile.canonical_name
    known = {f.name for f in (MEDS_FIELDS if kind == "meds" else FRACTURES_FIELDS)}
    return lambda header: header_key(header) if header_key(header) in known else None


def _require_columns(kind: str, path: Path, names: list[str], *, profile: Profile) -> None:
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
    source columns, split by patient partition in one streaming pass. Blank lines are counted, not kept;
    an input whose files hold no data row at all stops the run (exit 2)."""
    profile = load_profile(request.profile)
    paths = RunPaths(Path(request.out), run_id)
    inputs = []
    for number, name in enumerate(files):
        path = Path(name)
        with output_errors(paths.folder):
            require = functools.partial(_require_columns, kind, path, profile=profile)
            export = read_export(path, paths.work, _canonical_namer(kind, profile), request.sheet, require)
            target = paths.raw / kind / f"{number:03d}"
            blank = blank_row(export.columns, anchor="patient_id")
            try:
                _, tally = pl.collect_all(
                    [
                        export.frame.filter(blank.not_())
                        .with_columns(partition_key(partitions))
                        .sink_parquet(pl.PartitionBy(target, key=PARTITION, include_key=False), mkdir=True, lazy=True),
                        export.frame.select(pl.len().alias("lines"), blank.sum().alias("blank")),
                    ]
                )
            except Exception as exc:  # noqa: BLE001 - a malformed body is an unreadable file for the user
                if disk_problem(exc):
                    raise
                raise InputError(str(path), f"cannot be read ({str(exc).strip().splitlines()[0][:200]})") from None
        lines, blank_lines = tally.row(0)
        rows = lines - blank_lines
        entry = {"input": kind, "path": str(path), "sha256": sha256_of(path), "rows": rows, "blank_lines": blank_lines}
        entry["format"] = export.file_format
        if export.encoding:
            entry["encoding"] = export.encoding
        entry["unmapped_columns"] = export.unmapped_columns
        if export.sheet is not None:
            entry["sheet"] = export.sheet
            entry["other_sheets"] = export.other_sheets
        inputs.append(entry)
        log.info("read %s file %d of %d: %d rows", kind, number + 1, len(files), rows)
    if files and not any(entry["rows"] for entry in inputs):
        where = files[0] if len(files) == 1 else str(Path(files[0]).parent)
        raise InputError(where, f"no rows: the {kind} export has a header but no data")
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
    with output_errors(paths.folder):
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
    with output_errors(paths.folder):
        paths.part(partition).mkdir(parents=True, exist_ok=True)
        for table, frame in result.tables.items():
            if table in PUBLISHED_SCHEMAS:
                PUBLISHED_SCHEMAS[table].validate(frame)
            frame.write_parquet(_part_file(paths, table, partition), mkdir=True)
    log.info("partition %d: %d exams screened", partition, result.tables["screening"].height)
    return result.counts


def _part_file(paths: RunPaths, table: str, partition: int) -> Path:
    """Where a partition writes its share of a table: the run folder's own ``TABLE/part-NNN.parquet`` for
    the tables only the run folder keeps (no merge needed), the work folder for the published ones."""
    if table in PARTITIONED:
        return paths.folder / table / f"part-{partition:03d}.parquet"
    return paths.part(partition) / f"{table}.parquet"


def _merge_tables(paths: RunPaths, partitions: int) -> None:
    """Each published table (``OUT/<table>.parquet``, one file): its partition files, in partition order,
    streamed into one Parquet file."""
    for table in TABLES:
        parts = [_part_file(paths, table, p) for p in range(partitions)]
        pl.concat([pl.scan_parquet(part) for part in parts]).sink_parquet(paths.folder / f"{table}.parquet")


def publish_run(
    request: ScreenRequest,
    run_id: str,
    inputs: list[dict[str, Any]],
    partition_counts: list[dict[str, Any]],
    skipped_files: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Merge the partitions, write manifest and catalog, then make the run the published one — or refuse
    (exit 3). ``rows`` are the scans' counts (the reject rate's basis); ``rows_by_input`` has all inputs.
    """
    paths = RunPaths(Path(request.out), run_id)
    with output_errors(paths.folder):
        return _publish(request, paths, inputs, partition_counts, skipped_files or {})


def _publish(request, paths, inputs, partition_counts, skipped_files) -> dict[str, Any]:
    counts = merge_counts(partition_counts)
    _merge_tables(paths, len(partition_counts))
    rules = load_rules(request.rules)
    shutil.copyfile(rules.source_path, paths.folder / RULES_COPY)  # the exact rules that ran
    profile = load_profile(request.profile)
    scans = counts["scans"]
    reject_rate = scans["quarantined"] / scans["rows_in"] if scans["rows_in"] else 0.0
    manifest = {
        "run_id": paths.run_id,
        "tool_version": __version__,
        "as_of": request.as_of,
        "rule_set": {"name": rules.name, "version": rules.version, "source": rules.source_path},
        "reference": reference.versions(),
        "profile": profile.name,
        "inputs": inputs,
        "skipped_files": skipped_files,
        "blank_lines": {kind: sum(i["blank_lines"] for i in inputs if i["input"] == kind) for kind in INPUTS},
        "rows": scans,
        "rows_by_input": {kind: counts[kind] for kind in INPUTS},
        "unrecognised_drugs": counts["unrecognised_drugs"],
        "partitions": len(partition_counts),
        "who_categories": counts["who_categories"],
        "eligibility": counts["eligibility"],
        "care_gaps": counts["care_gaps"],
        "reject_rate": round(reject_rate, 6),
        "max_reject_rate": request.max_reject_rate,
        "max_shrink": request.max_shrink,
        "tables": {
            t: pl.scan_parquet(paths.folder / f"{t}.parquet").select(pl.len()).collect().item()
            for t in TABLES
            if (paths.folder / f"{t}.parquet").exists()
        },
    }
    shutil.rmtree(paths.work, ignore_errors=True)
    quarantine = paths.folder / "quarantine.parquet"
    previous = publish.published_manifest(paths.out)
    previous_valid = previous["rows"]["valid"] if previous else 0
    refusal: RunRefused | None = None
    if reject_rate > request.max_reject_rate:
        refusal = RejectRateExceeded(reject_rate, request.max_reject_rate, str(quarantine), top_checks(quarantine))
    elif previous_valid and scans["valid"] < previous_valid * (1 - request.max_shrink):
        details = top_checks(quarantine) if scans["quarantined"] else []
        refusal = ShrinkExceeded(scans["valid"], previous_valid, request.max_shrink, str(paths.folder), details)
    if refusal is not None:
        manifest["status"] = "rejected"
        manifest["refused_because"] = refusal.reason
        publish.write_manifest(paths.folder, manifest)
        raise refusal
    manifest["status"] = "published"
    publish.write_catalog(paths.folder, list(publish.CATALOG_TABLES), publish.VIEWS)
    publish.crash_point("after_catalog")
    publish.write_manifest(paths.folder, manifest)
    publish.promote(
        paths.out,
        paths.run_id,
        [f"{t}.parquet" for t in TABLES] + [publish.MANIFEST, publish.CATALOG],
        request.keep_runs,
    )
    try:
        publish.append_history(paths.out, manifest)
    except OSError as exc:  # the run is published: the trend file missing one line is not worth undoing it
        log.warning("published, but the run history could not be extended (%s)", exc.strerror or exc)
    log.info("published run %s", paths.run_id)
    return manifest


TOP_CHECKS = 10


def top_checks(quarantine: Path, most: int = TOP_CHECKS) -> list[str]:
    """The most frequent quarantine reasons as ``input column: check — N rows`` (counts, never values)."""
    counts = (
        pl.scan_parquet(quarantine)
        .group_by("input", "column", "check")
        .agg(pl.struct(SOURCE_FILE, "source_row").n_unique().alias("rows"))
        .sort(["rows", "input", "column", "check"], descending=[True, False, False, False], nulls_last=True)
        .collect()
    )
    lines = ["most frequent quarantine checks (input column: check — rows):"]
    lines += [
        f"  {r['input']} {r['column'] or '(row)'}: {r['check']} — {r['rows']:,} row(s)"
        for r in counts.head(most).iter_rows(named=True)
    ]
    if counts.height > most:
        lines.append(f"  … and {counts.height - most} more check(s) in {quarantine}")
    return lines


def discard(request: ScreenRequest, run_id: str) -> None:
    """Remove an unfinished run's folder; never the published one (a failure after the switch keeps it)."""
    paths = RunPaths(Path(request.out), run_id)
    if publish.current_run(paths.out) == paths.folder.resolve():
        return
    shutil.rmtree(paths.folder, ignore_errors=True)


def run_screen(request: ScreenRequest) -> dict[str, Any]:
    """The whole screen without Prefect (the flow in ``flows/screen.py`` runs the same stages)."""
    with open_run(request) as run:
        run_id, partitions = run["run_id"], run["partitions"]
        inputs = [i for kind in INPUTS for i in ingest(request, run_id, kind, run["files"][kind], partitions)]
        find_exam_conflicts(request, run_id, partitions)
        counts = [process_partition(request, run_id, p) for p in range(partitions)]
        return publish_run(request, run_id, inputs, counts, run["skipped_files"])
