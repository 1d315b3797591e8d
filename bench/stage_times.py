"""Where a screen's time goes, stage by stage:
`python bench/stage_times.py DATA_FOLDER [FORMAT [PARTITIONS]] [--steps]`.

Runs the whole screen once in this process (no Prefect) on `DATA_FOLDER/FORMAT/{scans,meds,fractures}`
(written by `bench/run.py`) and prints one JSON line of seconds per stage, then one of the peak resident
memory (MiB) of each kind of step (Linux: the high-water mark is reset before each step), then one of the
process CPU seconds per stage (CPU / wall: how many cores a stage keeps busy):

    ingest       every input file read once into the raw layer, split by patient partition
    conflicts    exam ids under several patients, run-wide
    validation   per partition: scans, medications and fractures checked, duplicates set aside, quarantine
    rules+gaps   per partition: classification, rule set, care gaps, patients, treatment intervals
    write        per partition: published-table schemas checked, tables written
    publish      published tables merged, manifest, catalog, switch (and one line of its steps: the gaps'
                 lifecycle, the worklist's index within it, the merge, the catalog)

and one line of each input kind's ingest: seconds and peak.

With `--steps` (after the other arguments), each step of a partition's screen is also collected by itself and
timed, summed over the partitions (one more JSON line, largest first, with the screen's own total beside it):
what each step costs alone, its inputs already collected. The screen's own plan shares work between steps (one
`collect_all` for the gaps, the patients, the treatment intervals and the measure members), so the steps' sum is
not the screen's time, and the run as a whole is slower than without `--steps`.

Timing wraps the pipeline's own functions; it also runs against the layout before issue 11 (one flat
`osteo_core` package), so the same command gives the "before" column from an older checkout.
"""

from __future__ import annotations

import functools
import importlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

TIMES: dict[str, float] = {}
STEPS: dict[str, float] = {}  # --steps: seconds of each step of a partition's screen, collected by itself
# the functions screen_partition calls (osteo_core.pipeline.partitions), in the order it calls them
PARTITION_STEPS = (
    "recorded_deaths",
    "recorded_mrns",
    "assemble",
    "validate_scans",
    "validate_meds",
    "validate_fractures",
    "validate_dxa_procedures",
    "validate_population",
    "quarantined_roster_deaths",
    "classify_meds",
    "classify_fractures",
    "screen",
    "enrolment_stretches",
    "roster_patients",
    "with_recorded_deaths",
    "care_gaps",
    "all_members",
    "patients",
    "treatment_intervals",
    "split",
    "not_in",
    "unrecognised_drugs",
)
CPU: dict[str, float] = {}  # process CPU seconds (all threads) per stage: CPU / wall = cores kept busy
PEAKS: dict[str, float] = {}


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


ACTIVE: list[str] = []  # the timed steps running now, outermost first


def _fold_peak() -> None:
    """The high-water mark so far, kept by every step running now (before a nested step resets it)."""
    peak = _peak_mib()
    for stage in ACTIVE:
        PEAKS[stage] = max(PEAKS.get(stage, 0.0), peak)


def _timed(stage: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        started, cpu = time.perf_counter(), time.process_time()
        if stage.startswith(("_publish:", "_ingest:")) or (not stage.startswith("_") and stage != "validation"):
            _fold_peak()  # a step inside another (the worklist's index in the lifecycle) loses nothing of its peak
            _reset_peak()
        ACTIVE.append(stage)
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[stage] = TIMES.get(stage, 0.0) + time.perf_counter() - started
            CPU[stage] = CPU.get(stage, 0.0) + time.process_time() - cpu
            _fold_peak()
            ACTIVE.pop()

    return wrapper


def _collected(step: str, fn):
    """``fn`` with its lazy result collected at once, and the time both take added to ``STEPS[step]``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import polars as pl

        started = time.perf_counter()
        result = fn(*args, **kwargs)
        if isinstance(result, pl.LazyFrame):
            result = result.collect().lazy()
        STEPS[step] = STEPS.get(step, 0.0) + time.perf_counter() - started
        return result

    return wrapper


def _modules():
    try:  # the layout of issue 11
        return importlib.import_module("osteo_core.pipeline.stages"), importlib.import_module(
            "osteo_core.pipeline.partitions"
        )
    except ImportError:  # before it
        return importlib.import_module("osteo_core.run"), importlib.import_module("osteo_core.partition")


def _by_stage(seconds: dict[str, float]) -> dict[str, float]:
    return {
        "ingest": seconds["ingest"],
        "conflicts": seconds["conflicts"],
        "validation": seconds["validation"],
        "rules+gaps": seconds["_screen_partition"] - seconds["validation"],
        "write": seconds["_process_partition"] - seconds["_screen_partition"],
        "publish": seconds["publish"],
    }


def main(data: Path, fmt: str, partition_count: int = 0, steps: bool = False) -> dict[str, float]:
    stages, partitions = _modules()
    if steps:
        for name in PARTITION_STEPS:
            if hasattr(partitions, name):  # an older layout may lack a step
                setattr(partitions, name, _collected(name, getattr(partitions, name)))
    for name in ("validate_scans", "validate_meds", "validate_fractures"):
        setattr(partitions, name, _timed("validation", getattr(partitions, name)))
    inner = partitions.screen_partition
    stages.screen_partition = _timed("_screen_partition", inner)
    for name, stage in (("ingest", "ingest"), ("find_exam_conflicts", "conflicts"), ("publish_run", "publish")):
        setattr(stages, name, _timed(stage, getattr(stages, name)))
    by_kind = stages.ingest  # each input kind's ingest apart: _ingest:<kind>

    def ingest_kind(resolved, run_id, kind, *args, **kwargs):
        return _timed(f"_ingest:{kind}", by_kind)(resolved, run_id, kind, *args, **kwargs)

    stages.ingest = ingest_kind
    stages.process_partition = _timed("partitions", _timed("_process_partition", stages.process_partition))
    try:  # publish's own steps (the layout since issue 33)
        publishing = importlib.import_module("osteo_core.pipeline.publishing")
        gap_history = importlib.import_module("osteo_core.pipeline.gap_history")
    except ImportError:
        publishing = gap_history = None
    if publishing is not None:
        for module, name in ((publishing, "apply_lifecycle"), (publishing, "_merge_tables")):
            setattr(module, name, _timed(f"_publish:{name}", getattr(module, name)))
        publishing.publish.write_catalog = _timed("_publish:write_catalog", publishing.publish.write_catalog)
        index = getattr(gap_history, "worklist_index", None)
        if index is not None:
            index.partition_rows = _timed("_publish:worklist_index", index.partition_rows)
    out = Path(tempfile.mkdtemp(prefix="osteo-stage-times-"))
    try:
        started = time.perf_counter()
        stages.run_screen(
            stages.ScreenRequest(
                scans=[str(data / fmt / "scans")],
                meds=str(data / fmt / "meds"),
                fractures=str(data / fmt / "fractures"),
                population=str(data / "roster" / "roster.parquet"),  # bench/run.py's roster
                out=str(out / "out"),
                as_of="2026-07-01",
                keep_runs=1,
                partitions=partition_count,
            )
        )
        total = time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)
    result = _by_stage(TIMES)
    result["total"] = total
    return {k: round(v, 2) for k, v in result.items()}


if __name__ == "__main__":
    detail = "--steps" in sys.argv
    given = [a for a in sys.argv[1:] if a != "--steps"]
    arguments = given + ["parquet", "0"][len(given) - 1 :]
    print(json.dumps(main(Path(arguments[0]), arguments[1], int(arguments[2]), steps=detail)))
    if detail:
        by_cost = {k: round(v, 2) for k, v in sorted(STEPS.items(), key=lambda kv: -kv[1])}
        print(json.dumps({"partition_steps": by_cost, "screen_partition": round(TIMES["_screen_partition"], 2)}))
    print(json.dumps({"publish_steps": {k.split(":")[1]: round(v, 2) for k, v in TIMES.items() if "publish:" in k}}))
    kinds = {k.split(":")[1]: [round(TIMES[k], 2), round(v)] for k, v in PEAKS.items() if k.startswith("_ingest:")}
    print(json.dumps({"ingest_by_kind_seconds_peak_mib": kinds}))
    steps = {k.split(":")[1]: round(v) for k, v in PEAKS.items() if k.startswith("_publish:")}
    stage_peaks = {k: round(v) for k, v in PEAKS.items() if k in ("ingest", "conflicts", "partitions", "publish")}
    print(json.dumps({"peak_rss_mib": stage_peaks, "publish_steps": steps}))
    print(json.dumps({"cpu_seconds": {k: round(v, 2) for k, v in _by_stage(CPU).items()}}))
