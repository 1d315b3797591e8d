"""Gaps across published runs, at publish: find the run this one is compared with (the *base*), fill
``first_seen`` and ``status`` in ``care_gaps`` and write ``closed_gaps`` (``gaps.lifecycle``).

The base is the published run when its as-of date is earlier than this run's. A run on the same (or an earlier)
as-of date is a re-run of that week: it is compared with that run's own base, whose gaps every run folder keeps
(``base_gaps.parquet``), so re-running the same inputs gives the same contents. With neither, every gap is new
and nothing closed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core import reference
from osteo_core.gaps.lifecycle import BASE_COLUMNS, NEW, PERSISTING, closed_gaps, with_lifecycle
from osteo_core.pipeline.partitions import PARTITION, partition_key, sink_split
from osteo_core.publish import folder as publish
from osteo_core.publish import worklist_index
from osteo_core.publish.folder import RunPaths
from schemas.published import PUBLISHED_SCHEMAS
from schemas.tables import CLOSED_SCHEMA

BASE_GAPS = "base_gaps.parquet"  # in each run folder: the gaps of the run it was compared with


def _given(manifest: dict[str, Any]) -> list[str]:
    return manifest.get("inputs_given") or sorted({entry["input"] for entry in manifest.get("inputs", [])})


def find_base(out: Path, as_of: dt.date) -> dict[str, Any] | None:
    """The run this one is compared with: ``run_id``, ``as_of``, ``inputs_given`` and its ``gaps``
    (``BASE_COLUMNS``), or None."""
    run = publish.current_run(out)
    if run is None or not (run / publish.MANIFEST).is_file():
        return None
    manifest = publish.read_manifest(run)
    published_as_of = dt.date.fromisoformat(manifest["as_of"])
    if published_as_of < as_of:
        gaps = pl.scan_parquet(run / "care_gaps.parquet", glob=False)
        if "first_seen" not in gaps.collect_schema():  # published before gaps carried it: seen that day
            gaps = gaps.with_columns(pl.lit(published_as_of).alias("first_seen"))
        return {
            "run_id": manifest["run_id"],
            "as_of": published_as_of,
            "inputs_given": _given(manifest),
            "gaps": gaps.select(list(BASE_COLUMNS)).cast(BASE_COLUMNS),
        }
    earlier = manifest.get("lifecycle") or {}
    if earlier.get("base_run_id") and (run / BASE_GAPS).is_file():
        base_as_of = dt.date.fromisoformat(earlier["base_as_of"])
        if base_as_of < as_of:
            return {
                "run_id": earlier["base_run_id"],
                "as_of": base_as_of,
                "inputs_given": earlier["base_inputs_given"],
                "gaps": pl.scan_parquet(run / BASE_GAPS, glob=False).cast(BASE_COLUMNS),
            }
    return None


def _write(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def apply_lifecycle(
    paths: RunPaths, partitions: int, as_of: dt.date, inputs_given: list[str], roster: bool
) -> dict[str, Any]:
    """Fill ``first_seen``/``status`` of each partition's care gaps and write its share of ``closed_gaps`` (and
    the base's gaps, for a later re-run), before the partitions are merged; the manifest's ``lifecycle`` entry
    (counts and the base's id, never a patient).

    A gap and its base are the same patient's, so each partition is compared with the base's gaps of its own
    patients: the base is split once by this run's partition key (one streaming pass), and memory stays that of
    one partition however many gaps the registry has."""
    base = find_base(paths.out, as_of)
    split = paths.work / "base_gaps"
    if base is not None:
        tmp = paths.folder / f"{BASE_GAPS}.tmp"
        # two passes, each one query: both sinks in one query would hold all the base's gaps in memory at once
        base["gaps"].sink_parquet(tmp)
        os.replace(tmp, paths.folder / BASE_GAPS)
        copy = pl.scan_parquet(paths.folder / BASE_GAPS, glob=False)
        pl.collect_all([sink_split(copy.with_columns(partition_key(partitions)), split, PARTITION, partitions)])
    statuses: Counter[str] = Counter()
    closed_because: Counter[str] = Counter()
    listed = worklist_index.roster_listed(
        [paths.part_file("population", p) for p in range(partitions)],
        [paths.part_file("quarantine", p) for p in range(partitions)],
    )
    for partition in range(partitions):
        gaps_path = paths.part_file("care_gaps", partition)
        base_gaps = _base_of(split, partition, base)
        gaps = with_lifecycle(pl.scan_parquet(gaps_path, glob=False), base_gaps, as_of).collect()
        PUBLISHED_SCHEMAS["care_gaps"].validate(gaps)
        _write(gaps, gaps_path)
        index = worklist_index.partition_rows(  # the worklist's per-patient index (osteo worklist --limit N)
            gaps,
            pl.scan_parquet(paths.part_file("patients", partition), glob=False),
            pl.scan_parquet(paths.part_file("population", partition), glob=False),
            pl.scan_parquet(paths.part_file("quarantine", partition), glob=False),
            as_of,
            listed,
        )
        worklist_index.write_partition(index, paths.folder, partition)
        if base is None:
            closed = pl.DataFrame(schema=CLOSED_SCHEMA)
        else:
            closed = closed_gaps(
                base_gaps,
                gaps.lazy(),
                pl.scan_parquet(paths.part_file("patients", partition), glob=False),
                pl.scan_parquet(paths.part_file("population", partition), glob=False)
                if roster
                else None,  # in every partition
                pl.scan_parquet(paths.part_file("deaths", partition), glob=False),
                pl.scan_parquet(paths.part_file("dxa_procedures", partition), glob=False),  # a DXA done, for dxa_done
                as_of=as_of,
                base_as_of=base["as_of"],
                inputs_given=inputs_given,
                base_inputs_given=base["inputs_given"],
                params=reference.care_gap_parameters(),
            ).collect()
        PUBLISHED_SCHEMAS["closed_gaps"].validate(closed)
        _write(closed, paths.part_file("closed_gaps", partition))
        statuses.update(dict(gaps.group_by("status").len().iter_rows()))
        closed_because.update(dict(closed.group_by("closed_because").len().iter_rows()))
    shutil.rmtree(split, ignore_errors=True)
    return {
        "base_run_id": base["run_id"] if base else None,
        "base_as_of": base["as_of"].isoformat() if base else None,
        "base_inputs_given": base["inputs_given"] if base else None,
        "new": statuses.get(NEW, 0),
        "persisting": statuses.get(PERSISTING, 0),
        "closed": dict(sorted(closed_because.items())),
    }


def _base_of(split: Path, partition: int, base: dict[str, Any] | None) -> pl.LazyFrame | None:
    """The base's gaps of one partition's patients (none: no base run)."""
    if base is None:
        return None
    files = sorted((split / f"{PARTITION}={partition}").glob("*.parquet"))
    return pl.scan_parquet(files, glob=False).cast(BASE_COLUMNS) if files else pl.LazyFrame(schema=BASE_COLUMNS)
