"""``osteo gaps``: today's care-gap list, highest priority first, then the oldest ``since``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from osteo_core.errors import InputError
from osteo_core.outputs.render import shown_rows, write_frame
from osteo_core.publish import folder as publish
from osteo_core.publish.catalog import query
from osteo_core.reference import gaps_by_priority

GAP_TYPES = gaps_by_priority()  # most urgent first
LIST_ORDER = "priority, since, patient_id, gap"


def load_gaps(out: Path, gap: str | None = None, limit: int | None = None) -> tuple[pl.DataFrame, int]:
    """The open gaps in list order (``gap``: of that type only), the first ``limit`` of them when given (DuckDB
    keeps only those while it reads: a run of millions of gaps is never loaded whole for a page of 50), and how
    many there are in all (the run's manifest counts them)."""
    if gap is not None and gap not in GAP_TYPES:
        raise InputError("--gap", f"unknown gap type '{gap}' (known: {', '.join(GAP_TYPES)})")
    run = publish.current_run(out)  # once: the page and the count are of the same run
    if run is None:
        raise publish.no_screen_here(out)
    where, params = ("WHERE gap = ?", [gap]) if gap else ("", None)
    page = "" if limit is None else f" LIMIT {int(limit)}"
    gaps = query(out, f"SELECT * FROM care_gaps {where} ORDER BY {LIST_ORDER}{page}", run=run, params=params)
    if limit is None:
        return gaps, gaps.height
    counts = publish.read_manifest(run).get("care_gaps")
    if isinstance(counts, dict):  # the open gaps by type: the care_gaps table's rows
        return gaps, counts.get(gap, 0) if gap else sum(counts.values())
    total = query(out, f"SELECT count(*) AS n FROM care_gaps {where}", run=run, params=params).item()
    return gaps, total


TABLE_COLUMNS = ("priority", "gap", "patient_id", "since", "detail")  # the table view (80 columns); csv/json: all


def print_gaps(out: Path, gap: str | None, fmt: str, limit: int | None = None) -> int:
    gaps, total = load_gaps(out, gap, shown_rows(fmt, limit))
    shown = gaps.select(TABLE_COLUMNS) if fmt == "table" else gaps
    write_frame(shown, fmt, limit, noun="open gap", total=total)
    return 0
