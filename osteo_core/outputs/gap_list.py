"""``osteo gaps``: today's care-gap list, highest priority first, then the oldest ``since``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import polars as pl

from osteo_core.errors import InputError
from osteo_core.publish.catalog import query
from osteo_core.resources import shipped_toml

GAP_TYPES = tuple(shipped_toml("reference/care_gaps.toml")["priority"])
_MIN_DETAIL = 12


def load_gaps(out: Path, gap: str | None = None) -> pl.DataFrame:
    if gap is not None and gap not in GAP_TYPES:
        raise InputError("--gap", f"unknown gap type '{gap}' (known: {', '.join(GAP_TYPES)})")
    where = f"WHERE gap = '{gap}'" if gap else ""
    return query(out, f"SELECT * FROM care_gaps {where} ORDER BY priority, since, patient_id, gap")


def render_table(gaps: pl.DataFrame, width: int = 80) -> str:
    """A fixed-width table that fits ``width`` columns; long details are cut with '…'."""
    if gaps.is_empty():
        return "no open care gaps"
    rows = gaps.select(
        pl.col("priority").cast(pl.Utf8), "gap", "patient_id", pl.col("since").cast(pl.Utf8), "detail"
    ).rows()
    heads = ("P", "gap", "patient", "since", "detail")
    widths = [max(len(h), *(len(r[i] or "") for r in rows)) for i, h in enumerate(heads[:4])]
    widths[2] = min(widths[2], 16)
    detail_width = max(_MIN_DETAIL, width - sum(widths) - 2 * len(widths))

    def cut(text: str | None, size: int) -> str:
        text = text or ""
        return text if len(text) <= size else text[: size - 1] + "…"

    def line(cells) -> str:
        fixed = [cut(c, w).ljust(w) for c, w in zip(cells[:4], widths, strict=True)]
        return "  ".join([*fixed, cut(cells[4], detail_width)]).rstrip()

    return "\n".join([line(heads), line(["-" * w for w in widths] + ["-" * detail_width]), *(line(r) for r in rows)])


def print_gaps(out: Path, gap: str | None, fmt: str) -> int:
    gaps = load_gaps(out, gap)
    if fmt == "csv":
        gaps.write_csv(sys.stdout)
    elif fmt == "json":
        sys.stdout.write(gaps.write_json() + "\n")
    else:
        width = shutil.get_terminal_size((80, 24)).columns
        print(render_table(gaps, width))
        print(f"\n{gaps.height:,} open gap(s); --format csv gives every column")
    return 0
