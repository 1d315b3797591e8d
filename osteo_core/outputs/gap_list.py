"""``osteo gaps``: today's care-gap list, highest priority first, then the oldest ``since``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from osteo_core.errors import InputError
from osteo_core.outputs.render import shown_rows, write_frame
from osteo_core.publish import folder as publish
from osteo_core.reference import gaps_by_priority

GAP_TYPES = gaps_by_priority()  # most urgent first
LIST_ORDER = ("priority", "since", "patient_id", "gap")


def load_gaps(out: Path, gap: str | None = None, limit: int | None = None) -> tuple[pl.DataFrame, int]:
    """The open gaps in list order (``gap``: of that type only) and how many there are in all. With ``limit``,
    only the first ``limit``: Polars reads the run's care_gaps file and keeps the top rows as it goes (a run of
    millions of gaps is never sorted whole for a page of 50, nor a catalog connection opened for it), and the
    total is the run's manifest's count."""
    if gap is not None and gap not in GAP_TYPES:
        raise InputError("--gap", f"unknown gap type '{gap}' (known: {', '.join(GAP_TYPES)})")
    run = publish.current_run(out)  # once: the page and the count are of the same run
    if run is None:
        raise publish.no_screen_here(out)
    counts = publish.read_manifest(run).get("care_gaps")
    files = publish.table_files(run, "care_gaps")
    if limit is not None and isinstance(counts, dict) and files:  # the open gaps by type: the table's rows
        gaps = pl.scan_parquet(files, glob=False)  # exactly these files (an --out named out[1] is no pattern)
        if gap:
            gaps = gaps.filter(pl.col("gap") == gap)
        page = gaps.sort(*LIST_ORDER).head(int(limit)).collect()
        return page, counts.get(gap, 0) if gap else sum(counts.values())
    from osteo_core.publish.catalog import query  # the catalog's read-only connection (all of the list)

    where, params = ("WHERE gap = ?", [gap]) if gap else ("", None)
    order = ", ".join(LIST_ORDER)
    page = "" if limit is None else f" LIMIT {int(limit)}"
    gaps = query(out, f"SELECT * FROM care_gaps {where} ORDER BY {order}{page}", run=run, params=params)
    if limit is None:
        return gaps, gaps.height
    total = query(out, f"SELECT count(*) AS n FROM care_gaps {where}", run=run, params=params).item()
    return gaps, total


TABLE_COLUMNS = ("priority", "gap", "patient_id", "since", "detail")  # the table view (80 columns); csv/json: all


def print_gaps(out: Path, gap: str | None, fmt: str, limit: int | None = None) -> int:
    gaps, total = load_gaps(out, gap, shown_rows(fmt, limit))
    shown = gaps.select(TABLE_COLUMNS) if fmt == "table" else gaps
    write_frame(shown, fmt, limit, noun="open gap", total=total)
    return 0
