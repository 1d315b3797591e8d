"""One screen as a list of stages over paths: ``STAGES`` drives both a direct run (``run_screen``) and the
Prefect flow (``flows/screen.py``), which wraps each stage in a task. Each stage takes the request resolved once
(``pipeline.resolve``) and the run's state; stages pass paths and counts, never frames, so a partition can run in
another process or on a Dask worker.

    ingest            each input file streamed once into ``raw/KIND/NNN/_partition=P/`` (text, or a
                      typed Parquet column of a native type of its field as it is; canonical headers,
                      source columns), split by a hash of the patient id (``raw_layer``)
    exam-id conflicts exam ids under several patients, run-wide (two columns read; ``raw_layer``)
    screen partitions validate, classify, decide, find gaps: one independent task per partition, which
                      writes its share of every table
    publish           the published tables merged, manifest, catalog, one atomic switch of ``current``
                      (``publishing``)

``open_run`` (``pipeline.lifecycle``) holds the output folder's lock around them and removes a failed run.
Before ingest, a run that lacks a kind of input the published run had is refused (``refuse_missing_inputs``).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from osteo_core.errors import disk_problem, output_errors
from osteo_core.ingest import omop
from osteo_core.ingest.profiles import roster_routing
from osteo_core.pipeline.lifecycle import open_run
from osteo_core.pipeline.partitions import merge_counts, screen_partition
from osteo_core.pipeline.publishing import publish_run, refuse_missing_inputs
from osteo_core.pipeline.raw_layer import find_exam_conflicts, ingest, raw_columns, raw_rows, raw_rows_by_file
from osteo_core.pipeline.request import ScreenRequest
from osteo_core.pipeline.resolve import InputFile, Resolved, resolve
from osteo_core.publish.folder import RunPaths
from schemas.inputs import DXA_PROCEDURES, FRACTURES, INPUTS, MEDS, POPULATION, SCANS
from schemas.published import PUBLISHED_SCHEMAS

log = logging.getLogger("osteo")


def process_partition(resolved: Resolved, run_id: str, partition: int) -> dict[str, Any]:
    """Validate, screen and find the gaps of one patient partition; its tables go to ``.work/part-NNN/``."""
    paths = RunPaths(resolved.out, run_id)
    profile = resolved.profile
    result = screen_partition(
        raw_rows_by_file(paths, SCANS.name, partition) if profile.long else raw_rows(paths, SCANS, partition),
        raw_rows(paths, MEDS, partition),
        raw_rows(paths, FRACTURES, partition),
        profile=profile,
        rules=resolved.rules,
        as_of=resolved.as_of,
        conflicting_exam_ids=pl.read_parquet(paths.conflicts, glob=False).get_column("exam_id"),
        device_lsc=resolved.device_lsc.lazy() if resolved.device_lsc is not None else None,
        population=raw_rows(paths, POPULATION, partition) if resolved.roster_given else None,
        routing=roster_routing(profile, raw_columns(paths, POPULATION.name), POPULATION.option),
        measurement_year=resolved.measurement_year,
        dxa_procedures=raw_rows(paths, DXA_PROCEDURES, partition),
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


@dataclass
class RunState:
    """What the stages hand on: the run's identity and files (``lifecycle.prepare``), then counts."""

    run_id: str
    partitions: int
    files: dict[str, list[InputFile]]
    skipped_files: dict[str, list[str]]
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
    """One step of a screen: ``run(resolved, state, item)`` once per item of ``items(state)`` (in order, or
    at the same time when ``concurrent``); ``keep`` stores the results, in item order, in the state.

    ``retries``: how often an item may be tried again after an I/O error a second try can cure (a network
    file system's hiccup). Never after bad input, a full disk or a refused run, and never for ``publish``,
    whose steps are not all repeatable.
    """

    name: str
    run: Callable[[Resolved, RunState, Any], Any]
    items: Callable[[RunState], list[Any]]
    keep: Callable[[RunState, list[Any]], None]
    report: Callable[[RunState], str]  # one line of counts once the stage is done (never an identifier)
    retries: int = 0
    concurrent: bool = False


def ingest_stage(resolved: Resolved, state: RunState, item: str) -> list[dict[str, Any]]:
    return ingest(resolved, state.run_id, item, state.files[item], state.partitions)


def conflicts_stage(resolved: Resolved, state: RunState, item: None) -> int:
    return find_exam_conflicts(resolved.out, state.run_id, state.partitions)


def partition_stage(resolved: Resolved, state: RunState, item: int) -> dict[str, Any]:
    return process_partition(resolved, state.run_id, item)


def publish_stage(resolved: Resolved, state: RunState, item: None) -> dict[str, Any]:
    return publish_run(resolved, state.run_id, state.inputs, state.partition_counts, state.skipped_files)


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


Executor = Callable[[Stage, Resolved, RunState], list[Any]]


def run_stages(
    resolved: Resolved, execute: Executor, logger: logging.Logger | logging.LoggerAdapter = log
) -> dict[str, Any]:
    """The whole screen: ``execute`` runs each stage's items and returns their results in item order; each
    stage's report (counts only) goes to ``logger`` at INFO."""
    try:
        with open_run(resolved) as prepared:
            state = RunState(**prepared)
            refuse_missing_inputs(resolved, state.run_id)
            for stage in STAGES:
                stage.keep(state, execute(stage, resolved, state))
                logger.info("%s: %s", stage.name, stage.report(state))
    finally:
        omop.forget()  # an OMOP CDM's probes (``ingest.omop.probe``) last one screen
    assert state.manifest is not None
    return state.manifest


def _in_this_process(stage: Stage, resolved: Resolved, state: RunState) -> list[Any]:
    return [_with_retries(stage, resolved, state, item) for item in stage.items(state)]


def _with_retries(stage: Stage, resolved: Resolved, state: RunState, item: Any) -> Any:
    for attempt in range(stage.retries + 1):
        try:
            return stage.run(resolved, state, item)
        except OSError as exc:
            if attempt == stage.retries or not worth_retrying(exc):
                raise
            log.warning("%s: %s; trying again (%d of %d)", stage.name, exc.strerror or exc, attempt + 1, stage.retries)
    raise AssertionError("unreachable")


def run_screen(request: ScreenRequest) -> dict[str, Any]:
    """The whole screen without Prefect: the same ``STAGES`` as the flow, one item after another, on the request
    resolved once (``pipeline.resolve``)."""
    return run_stages(resolve(request), _in_this_process)
