"""``osteo gaps``: today's care-gap list, highest priority first, then the oldest ``since``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from osteo_core.errors import InputError
from osteo_core.outputs.render import write_frame
from osteo_core.publish.catalog import query
from osteo_core.reference import gaps_by_priority

GAP_TYPES = gaps_by_priority()  # most urgent first


def load_gaps(out: Path, gap: str | None = None) -> pl.DataFrame:
    if gap is not None and gap not in GAP_TYPES:
        raise InputError("--gap", f"unknown gap type '{gap}' (known: {', '.join(GAP_TYPES)})")
    where = f"WHERE gap = '{gap}'" if gap else ""
    return query(out, f"SELECT * FROM care_gaps {where} ORDER BY priority, since, patient_id, gap")


TABLE_COLUMNS = ("priority", "gap", "patient_id", "since", "detail")  # the table view (80 columns); csv/json: all


def print_gaps(out: Path, gap: str | None, fmt: str, limit: int | None = None) -> int:
    gaps = load_gaps(out, gap)
    shown = gaps.select(TABLE_COLUMNS) if fmt == "table" else gaps
    write_frame(shown, fmt, limit, noun="open gap")
    return 0
