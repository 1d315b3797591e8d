"""The worklist's per-patient index, ``worklist_index/part-NNN.parquet`` in the run folder: one row per patient
with an open gap, one file per partition, each already in the per-patient list's order (most urgent headline gap
first, then the most recent ``since``, then the patient). ``osteo worklist --limit N`` reads the first rows of
each file and merges them instead of grouping millions of gaps (issue 34); only the patients an outreach mark
touches are recomputed when it is read, from their own gaps (the ``_open`` column), since a mark can hide a gap or
change what is shown.

It is written at publish, partition by partition with the gaps' lifecycle (a partition's patients are all in it,
so memory stays that of one partition), from the same rows the catalog's ``worklist`` view joins
(``folder.VIEWS``): care_gaps, the roster's routing columns and ``mrn``, ``in_roster``. It is the run's own
derived file, not a published table: no catalog view, no ``OUT/`` link; a run published without it (an older
version's) is read as before, by DuckDB over the whole list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import polars as pl

INDEX = "worklist_index"  # the folder, in the run folder
# the per-patient columns the index holds besides the roster's routing columns, which go after in_roster
HEAD_COLUMNS = ("patient_id", "mrn", "priority", "gap", "since", "detail", "exam_id", "in_roster")
SUMMARY_COLUMNS = ("gaps", "open_gaps", "days_on_list")
# every open gap of hers, most urgent first: what a mark can change is recomputed from it (a leading underscore: no
# roster column can take the name, profiles.routing_name_ok)
OPEN = "_open"
OPEN_FIELDS = ("gap", "priority", "since", "first_seen", "detail", "exam_id")
# the roster's columns that are no routing column (the catalog's worklist view leaves them out too: folder.VIEWS)
NOT_ROUTING = ("patient_id", "sex", "birth_date", "death_date", "enrolled_since", "alive", "enrolled", "mrn")
HEADLINE_ORDER = ("priority", "since", "gap")  # her most urgent gap: outputs.worklist.by_patient's rule
LIST_ORDER = ("priority", "since", "patient_id")  # the list: most urgent, then the most recent since
LIST_DESCENDING = (False, True, False)


def files(run: Path) -> list[Path]:
    """The index files of a run folder, in partition order (none: a run published without the index)."""
    return sorted((run / INDEX).glob("part-*.parquet"))


def routing_of(columns: Iterable[str]) -> list[str]:
    """The roster's routing columns among an index file's ``columns``: those between ``in_roster`` and ``gaps``."""
    columns = list(columns)
    return columns[columns.index("in_roster") + 1 : columns.index(SUMMARY_COLUMNS[0])]


def roster_listed(population: list[Path], quarantine: list[Path]) -> bool:
    """Whether the run has a roster to say ``in_roster`` by: a valid roster row, or one held back in quarantine
    (the worklist view's ``EXISTS`` over the whole run; without, ``in_roster`` is blank)."""
    if population and pl.scan_parquet(population, glob=False).select(pl.len()).collect().item():
        return True
    held = pl.scan_parquet(quarantine, glob=False).filter(pl.col("input") == "population") if quarantine else None
    return held is not None and held.select(pl.len()).collect().item() > 0


def partition_rows(
    gaps: pl.DataFrame,
    patients: pl.LazyFrame,
    population: pl.LazyFrame,
    quarantine: pl.LazyFrame,
    as_of: dt.date,
    listed: bool,
) -> pl.DataFrame:
    """One partition's index rows, in list order: each patient's headline gap, ``mrn`` (the patients table's,
    else the roster's), ``in_roster`` (null when the run has no roster: ``listed``), the roster's routing
    columns, every open gap of hers (``gaps``, ``open_gaps``, ``_open``) and ``days_on_list``; no mark applied."""
    roster_columns = population.collect_schema().names()
    routing = [c for c in roster_columns if c not in NOT_ROUTING]
    roster_mrn = pl.col("mrn") if "mrn" in roster_columns else pl.lit(None, pl.Utf8)
    ids = gaps.select("patient_id").unique().lazy()
    roster = population.join(ids, on="patient_id", how="semi").select(
        "patient_id", roster_mrn.alias("_roster_mrn"), *routing, pl.lit(True).alias("_listed")
    )
    held = (  # a roster patient held back in quarantine is in the roster all the same (the view's in_roster)
        quarantine.filter(pl.col("input") == "population")
        .select("patient_id", pl.lit(True).alias("_held"))
        .unique("patient_id")
    )
    own_mrn = patients.join(ids, on="patient_id", how="semi").select("patient_id", pl.col("mrn").alias("_own_mrn"))
    rows = (
        gaps.lazy()
        .join(roster, on="patient_id", how="left")
        .join(own_mrn, on="patient_id", how="left")
        .join(held, on="patient_id", how="left")
        .with_columns(
            pl.coalesce("_own_mrn", "_roster_mrn").alias("mrn"),
            (
                pl.col("_listed").fill_null(False) | pl.col("_held").fill_null(False)
                if listed
                else pl.lit(None, pl.Boolean)
            ).alias("in_roster"),
            (pl.lit(as_of) - pl.col("first_seen")).dt.total_days().alias("days_open"),
        )
        .collect()  # read by both group-bys below: once
        .lazy()
    )
    head = (
        rows.sort("patient_id", *HEADLINE_ORDER)
        .group_by("patient_id", maintain_order=True)
        .agg(
            *(pl.col(c).first() for c in HEAD_COLUMNS if c != "patient_id"),
            *(pl.col(c).first() for c in routing),
            pl.len().cast(pl.Int64).alias("open_gaps"),
            pl.col("days_open").max().cast(pl.Int64).alias("days_on_list"),
            pl.struct(*OPEN_FIELDS).alias(OPEN),
        )
    )
    # her gaps' names by priority, then name (the catalog's string_agg order); a list joined after the group-by
    # (a string join inside it cost 0.2 s of a partition's 0.4)
    names = (
        rows.sort("patient_id", "priority", "gap")
        .group_by("patient_id", maintain_order=True)
        .agg(pl.col("gap").alias("gaps"))
        .with_columns(pl.col("gaps").list.join(", "))
    )
    return (
        head.join(names, on="patient_id", how="left", maintain_order="left")
        .select(*HEAD_COLUMNS, *routing, *SUMMARY_COLUMNS, OPEN)
        .sort(*LIST_ORDER, descending=LIST_DESCENDING)
        .collect()
    )


def write_partition(frame: pl.DataFrame, run: Path, partition: int) -> Path:
    """``run/worklist_index/part-NNN.parquet``; small row groups, so a page reads one of each file."""
    path = run / INDEX / f"part-{partition:03d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, row_group_size=4096)
    return path
