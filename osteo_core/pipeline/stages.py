"""One screen as a list of stages over paths: ``STAGES`` drives both a direct run (``run_screen``) and the
Prefect flow (``flows/screen.py``), which wraps each stage in a task. Stages pass paths and counts, never
frames, so a partition can run in another process or on a Dask worker.

    ingest            each input file streamed once into ``raw/KIND/NNN/_partition=P/`` (text, or a typed
                      Parquet column of a native type of its field as it is; canonical headers, source
                      columns), split by a hash of the patient id
    exam-id conflicts exam ids under several patients, run-wide (two columns read)
    screen partitions validate, classify, decide, find gaps: one independent task per partition, which
                      writes its share of every table
    publish           the published tables merged, manifest, catalog, one atomic switch of ``current``

``open_run`` (``pipeline.lifecycle``) holds the output folder's lock around them and removes a failed run.
Before ingest, a run that lacks a kind of input the published run had is refused (``refuse_missing_inputs``).
"""

from __future__ import annotations

import errno
import functools
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core import __version__, reference
from osteo_core.decide.rules import load_rules
from osteo_core.errors import (
    InputError,
    InputsMissing,
    RejectRateExceeded,
    RunRefused,
    ShrinkExceeded,
    disk_problem,
    output_errors,
)
from osteo_core.gaps.lsc import load_device_lsc
from osteo_core.ingest import omop
from osteo_core.ingest.profiles import load_profile, roster_routing, shipped_profiles
from osteo_core.ingest.readers import SOURCE_FILE, blank_row, concat_text, read_export, sha256_of, unreadable
from osteo_core.measures.members import no_summary, summary
from osteo_core.measures.specs import calendar_period
from osteo_core.pipeline.gap_history import apply_lifecycle
from osteo_core.pipeline.lifecycle import open_run
from osteo_core.pipeline.omop_run import omop_manifest
from osteo_core.pipeline.partitions import PARTITION, merge_counts, partition_key, screen_partition
from osteo_core.pipeline.request import (
    ScreenRequest,
    as_of_date,
    canonical_namer,
    measurement_year,
    require_columns,
)
from osteo_core.publish import folder as publish
from osteo_core.publish.folder import RULES_COPY, TABLES, RunPaths
from osteo_core.settings import settings
from osteo_core.validate.scans import EXAM_ID_BUCKET, exam_id_pairs, exam_ids_under_several_patients
from schemas.inputs import BY_NAME, DXA_PROCEDURES, FRACTURES, INPUTS, MEDS, POPULATION, SCANS, InputKind
from schemas.published import PUBLISHED_SCHEMAS
from schemas.tables import RUN_WIDE_TABLES

log = logging.getLogger("osteo")
PARTITIONS_PER_CONFLICT_BUCKET = 4  # an exam-id bucket holds about as many rows as four partitions


def conflict_buckets(partitions: int) -> int:
    return max(1, -(-partitions // PARTITIONS_PER_CONFLICT_BUCKET))


def ingest(request: ScreenRequest, run_id: str, kind: str, files: list[str], partitions: int) -> list[dict[str, Any]]:
    """Each file of one input → ``raw/KIND/NNN/_partition=P/*.parquet``: the raw layer (text, or a typed
    column's own type: ``readers.raw_layer``), canonical headers,
    source columns, split by patient partition in one streaming pass. The same pass writes the scans'
    (exam id, patient id) pairs split by exam-id bucket, for the run-wide conflict check. Blank lines are
    counted, not kept; an input whose files hold no data row at all stops the run (exit 2), unless they are
    FHIR NDJSON files (no header; none of their resources being read is normal) or extracted from an OMOP CDM
    (where a CDM without a DXA result is refused before: ``omop_run.extract_omop``)."""
    profile = load_profile(request.profile_name)
    paths = RunPaths(Path(request.out), run_id)
    inputs = []
    for number, name in enumerate(files):
        path = Path(name)
        with output_errors(paths.folder):
            require = functools.partial(require_columns, kind, path, profile=profile)
            kinds = None if kind == SCANS.name and profile.long else {f.name: f.kind for f in BY_NAME[kind].fields}
            export = read_export(
                path, paths.work, canonical_namer(kind, profile), request.sheet, require, kinds, profile.fhir
            )
            target = paths.raw / kind / f"{number:03d}"
            blank = blank_row(export.columns, anchor="patient_id", schema=export.frame.collect_schema())
            queries = [
                export.frame.select(pl.len().alias("lines"), blank.sum().alias("blank")),
                export.frame.filter(blank.not_())
                .with_columns(partition_key(partitions))
                .sink_parquet(pl.PartitionBy(target, key=PARTITION, include_key=False), mkdir=True, lazy=True),
            ]
            if kind == SCANS.name and "exam_id" in export.columns:  # a blank row has no exam id: no blank filter
                pairs = exam_id_pairs(export.frame, conflict_buckets(partitions))
                by_bucket = pl.PartitionBy(paths.exam_ids / f"{number:03d}", key=EXAM_ID_BUCKET, include_key=False)
                queries.append(pairs.sink_parquet(by_bucket, mkdir=True, lazy=True))
            try:
                tally, *_ = pl.collect_all(queries)
            except Exception as exc:  # noqa: BLE001 - a malformed body is an unreadable file for the user
                if disk_problem(exc):
                    raise
                raise unreadable(path, export.file_format) from None  # its own words may quote a cell: never
        lines, blank_lines = tally.row(0)
        rows = lines - blank_lines
        entry = {"input": kind, "path": str(path), "sha256": sha256_of(path), "rows": rows, "blank_lines": blank_lines}
        entry["format"] = export.file_format
        if export.encoding:
            entry["encoding"] = export.encoding
        entry["unmapped_columns"] = export.unmapped_columns
        if export.resource_type:
            entry["resource_type"] = export.resource_type
            entry["not_read"] = export.not_read
        if export.sheet is not None:
            entry["sheet"] = export.sheet
            entry["other_sheets"] = export.other_sheets
        inputs.append(entry)
        log.info("read %s file %d of %d: %d rows", kind, number + 1, len(files), rows)
    # a FHIR NDJSON file has no header, and none of its resources being read is normal (a Condition file without
    # a fracture): said in the summary (0 fractures among N conditions), never a refusal
    tabular = not all(entry["format"] == "ndjson" for entry in inputs)
    if files and tabular and not any(entry["rows"] for entry in inputs):
        if not request.omop:  # a CDM without a fracture or drug row is normal (its accounting); without a DXA
            # result it is refused by the extraction (pipeline.omop_run)
            where = files[0] if len(files) == 1 else str(Path(files[0]).parent)
            raise InputError(where, f"no rows: the {kind} export has a header but no data")
    shutil.rmtree(paths.work, ignore_errors=True)
    return inputs


def _raw(paths: RunPaths, kind: InputKind, partition: int | None = None) -> pl.LazyFrame:
    """The raw text rows of one input (one partition of it, or all)."""
    files = _raw_files(paths, kind.name, partition)
    if not files:
        return pl.LazyFrame(
            schema={f.name: pl.Utf8 for f in kind.fields} | {SOURCE_FILE: pl.Utf8, "source_row": pl.Int64}
        )
    return concat_text([pl.scan_parquet(p, glob=False) for p in files])


def _raw_columns(paths: RunPaths, kind: str) -> list[str]:
    """Every column of an input's raw layer, over all its files and partitions (one file's schema each: a
    partition the roster's rows did not reach still gets every routing column). The file's schema is read by
    pyarrow: ``pl.read_parquet_schema`` would take the path, under a ``--out`` named ``out[1]``, as a pattern."""
    import pyarrow.parquet as pq

    folders = sorted(p for p in (paths.raw / kind).glob("*") if p.is_dir()) if (paths.raw / kind).is_dir() else []
    names: dict[str, None] = {}
    for folder in folders:
        first = next(iter(sorted(folder.glob("*/*.parquet"))), None)
        if first is not None:
            names.update(dict.fromkeys(pq.read_schema(first).names))
    return list(names)


def _raw_files(paths: RunPaths, kind: str, partition: int | None = None) -> list[Path]:
    pattern = f"*/{PARTITION}={partition}/*.parquet" if partition is not None else "*/*/*.parquet"
    return sorted((paths.raw / kind).glob(pattern))


def _raw_by_file(paths: RunPaths, kind: str, partition: int) -> list[pl.LazyFrame]:
    """One partition's raw rows of each input file apart, in the order the files were given (each frame
    has that file's own columns: what a long export's assembly tells its files apart by)."""
    by_file: dict[str, list[Path]] = {}
    for path in _raw_files(paths, kind, partition):
        by_file.setdefault(path.relative_to(paths.raw / kind).parts[0], []).append(path)
    return [pl.scan_parquet(by_file[number], glob=False) for number in sorted(by_file)]


def find_exam_conflicts(request: ScreenRequest, run_id: str, partitions: int = 1) -> int:
    """Exam ids under several patients, run-wide; partitions quarantine those copies.

    Run-wide, so its memory would grow with the registry: one group-by per exam-id bucket, each over the
    bucket's own (exam id, patient id) files written by ingest.
    """
    paths = RunPaths(Path(request.out), run_id)
    found = [pl.DataFrame(schema={"exam_id": pl.Utf8})]
    with output_errors(paths.folder):
        for bucket in range(conflict_buckets(partitions)):
            files = sorted(paths.exam_ids.glob(f"*/{EXAM_ID_BUCKET}={bucket}/*.parquet"))
            if files:
                found.append(exam_ids_under_several_patients(pl.scan_parquet(files, glob=False)))
        conflicts = pl.concat(found).sort("exam_id")
        paths.work.mkdir(exist_ok=True)
        conflicts.write_parquet(paths.conflicts)
    shutil.rmtree(paths.exam_ids, ignore_errors=True)
    return conflicts.height


def process_partition(request: ScreenRequest, run_id: str, partition: int) -> dict[str, Any]:
    """Validate, screen and find the gaps of one patient partition; its tables go to ``.work/part-NNN/``."""
    paths = RunPaths(Path(request.out), run_id)
    profile = load_profile(request.profile_name)
    result = screen_partition(
        _raw_by_file(paths, SCANS.name, partition) if profile.long else _raw(paths, SCANS, partition),
        _raw(paths, MEDS, partition),
        _raw(paths, FRACTURES, partition),
        profile=profile,
        rules=load_rules(request.rules),
        as_of=as_of_date(request),
        conflicting_exam_ids=pl.read_parquet(paths.conflicts, glob=False).get_column("exam_id"),
        device_lsc=load_device_lsc(request.lsc).lazy() if request.lsc else None,
        population=_raw(paths, POPULATION, partition) if request.roster_given else None,
        routing=roster_routing(profile, _raw_columns(paths, POPULATION.name), POPULATION.option),
        measurement_year=measurement_year(request),
        dxa_procedures=_raw(paths, DXA_PROCEDURES, partition),
    )
    with output_errors(paths.folder):
        paths.part(partition).mkdir(parents=True, exist_ok=True)
        for table, frame in result.tables.items():
            if table in PUBLISHED_SCHEMAS:
                PUBLISHED_SCHEMAS[table].validate(frame)
            # lz4: twice the size of zstd, but quicker to write and to read back (the merge re-encodes)
            frame.write_parquet(paths.part_file(table, partition), mkdir=True, compression="lz4")
    log.info("partition %d: %d exams screened", partition, result.tables["screening"].height)
    return result.counts


def _merge_tables(paths: RunPaths, partitions: int, measured: bool) -> pl.DataFrame:
    """Each published table (``OUT/<table>.parquet``, one file): its partition files, in partition order,
    streamed into one Parquet file; then the run-wide tables made from them: the measures' summary (``measured``:
    a roster was given; else no row), returned."""
    for table in TABLES:
        if table in RUN_WIDE_TABLES:
            continue
        parts = [paths.part_file(table, p) for p in range(partitions)]
        pl.concat([pl.scan_parquet(part, glob=False) for part in parts]).sink_parquet(paths.folder / f"{table}.parquet")
    members = paths.folder / "measure_members.parquet"
    rates = summary(pl.scan_parquet(members, glob=False)) if measured else no_summary()
    PUBLISHED_SCHEMAS["measure_summary"].validate(rates)
    rates.write_parquet(paths.folder / "measure_summary.parquet")
    return rates


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
    given = request.inputs_given
    lifecycle = apply_lifecycle(paths, len(partition_counts), as_of_date(request), given, roster=request.roster_given)
    rates = _merge_tables(paths, len(partition_counts), measured=request.roster_given)
    rules = load_rules(request.rules)
    shutil.copyfile(rules.source_path, paths.folder / RULES_COPY)  # the exact rules that ran
    profile = load_profile(request.profile_name)
    scans = counts[SCANS.name]
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
        "measures": measures_entry(request, rates, counts["measure_open_windows"]),
        "lifecycle": lifecycle,
        "reject_rate": round(reject_rate, 6),
        "max_reject_rate": request.max_reject_rate,
        "max_shrink": request.max_shrink,
        "accept_input_change": request.accept_input_change,
        "tables": {
            t: pl.scan_parquet(paths.folder / f"{t}.parquet", glob=False).select(pl.len()).collect().item()
            for t in TABLES
            if (paths.folder / f"{t}.parquet").exists()
        },
    }
    if request.omop:  # the CDM named, and what its extraction counted (ingest.omop); never a credential
        manifest["omop"] = omop_manifest(request, paths.folder)
    shutil.rmtree(paths.work, ignore_errors=True)
    quarantine = paths.folder / "quarantine.parquet"
    previous = publish.published_manifest(paths.out)
    manifest["inputs_given"] = given
    changed = inputs_changed(manifest["inputs_given"], previous)
    if changed:
        manifest["inputs_changed"] = changed
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
    manifest["catalog"] = settings().catalog
    publish.write_catalog(paths.folder, list(publish.CATALOG_TABLES), publish.VIEWS, copy=manifest["catalog"] == "copy")
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


def measures_entry(request: ScreenRequest, rates: pl.DataFrame, open_windows: dict[str, int]) -> dict[str, Any] | None:
    """The manifest's quality measures: the year, its period, each measure's version, counts and rate, and how
    many of its patients have a window still open on the as-of date (no patient); None without a roster."""
    if not request.roster_given:
        return None
    year = measurement_year(request)
    first, last = calendar_period(year)
    return {
        "measurement_year": year,
        "period": [first.isoformat(), last.isoformat()],
        "results": [row | {"open_windows": open_windows.get(row["measure"], 0)} for row in rates.to_dicts()],
    }


TOP_CHECKS = 10


def inputs_changed(given: list[str], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """Inputs given now but not to the last published run, or the other way round (``missing``, ``new``,
    and that run's id): counts that depend on them cannot be compared across the two runs. A kind that run
    records and this version does not know (a newer version's) is missing too: this run cannot give it."""
    if previous is None:
        return None
    before = previous.get("inputs_given") or sorted({entry["input"] for entry in previous.get("inputs", [])})
    missing = [kind for kind in INPUTS if kind in before and kind not in given]
    missing += [kind for kind in before if kind not in INPUTS and kind not in given]
    new = [kind for kind in INPUTS if kind in given and kind not in before]
    if not (missing or new):
        return None
    return {"missing": missing, "new": new, "previous_run_id": previous.get("run_id")}


def refuse_missing_inputs(request: ScreenRequest, run_id: str) -> None:
    """Refuse a run that lacks a kind of input the published run had (exit 3), unless
    ``--accept-input-change``: a week whose medications export failed upstream would otherwise publish every
    treated patient as untreated. Needs only the request and the published manifest, so it runs before any
    input is read, under the output folder's lock (held until publish: the run compared with is the one this
    run would replace). Like the other refusals the run's folder is kept, with a manifest (``status``
    ``rejected``, ``refused_because`` ``inputs_missing``, ``inputs_changed``) naming the missing kinds."""
    if request.accept_input_change:
        return
    given = request.inputs_given
    changed = inputs_changed(given, publish.published_manifest(Path(request.out)))
    if not changed or not changed["missing"]:
        return
    paths = RunPaths(Path(request.out), run_id)
    refusal = InputsMissing(changed["missing"], changed["previous_run_id"], str(paths.folder))
    rules = load_rules(request.rules)
    manifest = {
        "run_id": run_id,
        "tool_version": __version__,
        "as_of": request.as_of,
        "rule_set": {"name": rules.name, "version": rules.version, "source": rules.source_path},
        "profile": load_profile(request.profile_name).name,
        "inputs": [],  # none read: refused before ingest
        "inputs_given": given,
        "inputs_changed": changed,
        "max_reject_rate": request.max_reject_rate,
        "max_shrink": request.max_shrink,
        "accept_input_change": False,
        "status": "rejected",
        "refused_because": refusal.reason,
    }
    with output_errors(paths.folder):
        if paths.raw.is_dir() and not any(paths.raw.iterdir()):
            paths.raw.rmdir()  # made for the ingest that will not run
        publish.write_manifest(paths.folder, manifest)
    raise refusal


def top_checks(quarantine: Path, most: int = TOP_CHECKS) -> list[str]:
    """The most frequent quarantine reasons as ``input column: check — N rows`` (counts, never values)."""
    counts = (
        pl.scan_parquet(quarantine, glob=False)
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
    if "site_stated" in counts.head(most).get_column("check").to_list():
        unsited = [name for name in shipped_profiles() if load_profile(name).unsited_t]
        lines.append(
            "  (site_stated: a score whose site neither its code nor its text states. An export that writes one"
            f" T-score per exam without a site is read by a profile that uses it: {', '.join(unsited)};"
            " docs/inputs.md)"
        )
    return lines


@dataclass
class RunState:
    """What the stages hand on: the run's identity and files, then counts (JSON-serialisable)."""

    run_id: str
    partitions: int
    files: dict[str, list[str]]
    skipped_files: dict[str, list[str]]
    profile: str
    rules: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    conflicting_exam_ids: int = 0
    partition_counts: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] | None = None


def _keep_inputs(state: RunState, results: list[list[dict[str, Any]]]) -> None:
    state.inputs = [entry for per_input in results for entry in per_input]


def _keep_counts(state: RunState, results: list[dict[str, Any]]) -> None:
    state.partition_counts = list(results)  # partition order: a reproducible merge


def _keep_conflicts(state: RunState, results: list[int]) -> None:
    state.conflicting_exam_ids = results[0]


def _keep_manifest(state: RunState, results: list[dict[str, Any]]) -> None:
    state.manifest = results[0]


# What each stage reports when it is done (the log, Prefect's Logs tab): counts only, never an identifier.
def _ingest_report(state: RunState) -> str:
    parts = []
    for kind in INPUTS:
        entries = [e for e in state.inputs if e["input"] == kind]
        if entries:
            parts.append(f"{kind} {sum(e['rows'] for e in entries):,} rows from {len(entries)} file(s)")
    return "read " + "; ".join(parts)


def _conflicts_report(state: RunState) -> str:
    return f"{state.conflicting_exam_ids:,} exam id(s) found under more than one patient (their copies are quarantined)"


def _partitions_report(state: RunState) -> str:
    counts = merge_counts(state.partition_counts)
    return f"{len(state.partition_counts)} partition(s) screened: " + ", ".join(
        f"{kind} {c['valid']:,} valid, {c['quarantined']:,} quarantined, {c['duplicate']:,} duplicate"
        for kind, c in ((k, counts[k]) for k in INPUTS)
        if c["rows_in"]
    )


def _publish_report(state: RunState) -> str:
    manifest = state.manifest or {}
    gaps = ", ".join(f"{name} {n:,}" for name, n in manifest.get("care_gaps", {}).items()) or "none"
    return f"run {manifest.get('run_id')} {manifest.get('status')}; open care gaps: {gaps}"


def once(state: RunState) -> list[Any]:
    """``items`` of a stage that runs once per screen."""
    return [None]


@dataclass(frozen=True)
class Stage:
    """One step of a screen: ``run(request, state, item)`` once per item of ``items(state)`` (in order, or
    at the same time when ``concurrent``); ``keep`` stores the results, in item order, in the state.

    ``retries``: how often an item may be tried again after an I/O error a second try can cure (a network
    file system's hiccup). Never after bad input, a full disk or a refused run, and never for ``publish``,
    whose steps are not all repeatable.
    """

    name: str
    run: Callable[[ScreenRequest, RunState, Any], Any]
    items: Callable[[RunState], list[Any]]
    keep: Callable[[RunState, list[Any]], None]
    report: Callable[[RunState], str]  # one line of counts once the stage is done (never an identifier)
    retries: int = 0
    concurrent: bool = False


def ingest_stage(request: ScreenRequest, state: RunState, item: str) -> list[dict[str, Any]]:
    return ingest(request, state.run_id, item, state.files[item], state.partitions)


def conflicts_stage(request: ScreenRequest, state: RunState, item: None) -> int:
    return find_exam_conflicts(request, state.run_id, state.partitions)


def partition_stage(request: ScreenRequest, state: RunState, item: int) -> dict[str, Any]:
    return process_partition(request, state.run_id, item)


def publish_stage(request: ScreenRequest, state: RunState, item: None) -> dict[str, Any]:
    return publish_run(request, state.run_id, state.inputs, state.partition_counts, state.skipped_files)


STAGES: tuple[Stage, ...] = (
    Stage(
        "ingest", ingest_stage, items=lambda state: list(INPUTS), keep=_keep_inputs, report=_ingest_report, retries=2
    ),
    Stage(
        "exam-id conflicts",
        conflicts_stage,
        items=once,
        keep=_keep_conflicts,
        report=_conflicts_report,
        retries=2,
    ),
    Stage(
        "screen partitions",
        partition_stage,
        items=lambda state: list(range(state.partitions)),
        keep=_keep_counts,
        report=_partitions_report,
        retries=2,
        concurrent=True,
    ),
    Stage("publish", publish_stage, items=once, keep=_keep_manifest, report=_publish_report),
)

_NOT_CURED_BY_RETRY = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR}


def worth_retrying(exc: BaseException) -> bool:
    """An error a second try may cure: an operating-system I/O error that is not about the input itself
    (missing, forbidden) nor a full or read-only disk. Our own errors (bad input, refused run) never are."""
    if not isinstance(exc, OSError) or disk_problem(exc):
        return False
    return exc.errno not in _NOT_CURED_BY_RETRY


Executor = Callable[[Stage, ScreenRequest, RunState], list[Any]]


def run_stages(
    request: ScreenRequest, execute: Executor, logger: logging.Logger | logging.LoggerAdapter = log
) -> dict[str, Any]:
    """The whole screen: ``execute`` runs each stage's items and returns their results in item order; each
    stage's report (counts only) goes to ``logger`` at INFO."""
    try:
        with open_run(request) as prepared:
            state = RunState(**prepared)
            refuse_missing_inputs(request, state.run_id)
            for stage in STAGES:
                stage.keep(state, execute(stage, request, state))
                logger.info("%s: %s", stage.name, stage.report(state))
    finally:
        omop.forget()  # an OMOP CDM's probes (``ingest.omop.probe``) last one screen
    assert state.manifest is not None
    return state.manifest


def _in_this_process(stage: Stage, request: ScreenRequest, state: RunState) -> list[Any]:
    return [_with_retries(stage, request, state, item) for item in stage.items(state)]


def _with_retries(stage: Stage, request: ScreenRequest, state: RunState, item: Any) -> Any:
    for attempt in range(stage.retries + 1):
        try:
            return stage.run(request, state, item)
        except OSError as exc:
            if attempt == stage.retries or not worth_retrying(exc):
                raise
            log.warning("%s: %s; trying again (%d of %d)", stage.name, exc.strerror or exc, attempt + 1, stage.retries)
    raise AssertionError("unreachable")


def run_screen(request: ScreenRequest) -> dict[str, Any]:
    """The whole screen without Prefect: the same ``STAGES`` as the flow, one item after another."""
    return run_stages(request, _in_this_process)
