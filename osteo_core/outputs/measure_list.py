"""``osteo measures``: the published run's quality-measure summary (``measure_summary``), one row per measure."""

from __future__ import annotations

import sys
from pathlib import Path

from osteo_core.outputs.render import write_frame
from osteo_core.publish import folder as publish

NO_ROSTER = "no quality measures in this run: they need a population roster (osteo screen … --population PATH)"


def load_summary(out: Path, run: Path):
    """The run's measure summary, one row per measure in name order: its one small file read as it is (exactly
    that file), with no catalog connection; through the catalog for a run that has no such file."""
    files = publish.table_files(run, "measure_summary")
    if files:
        import polars as pl

        return pl.read_parquet(files, glob=False).sort("measure")
    from osteo_core.publish.catalog import query

    return query(out, "SELECT * FROM measure_summary ORDER BY measure", run=run)


def print_measures(out: Path, fmt: str, limit: int | None = None) -> int:
    """The summary in ``fmt``; in a table, the rate as a percentage and a heading with the measurement year.
    A run without a roster prints an empty listing (csv: the header) and says why on stderr."""
    run = publish.current_run(out)  # once: the summary and the manifest are read from the same run
    if run is None:
        raise publish.no_screen_here(out)
    rates = load_summary(out, run)
    if rates.is_empty():
        print(f"osteo: {NO_ROSTER}", file=sys.stderr)
    elif fmt == "table":
        manifest = publish.read_manifest(run)
        entry = manifest.get("measures") or {}
        start, end = entry.get("period", ["?", "?"])
        year = entry.get("measurement_year")
        print(f"quality measures, measurement year {year} ({start} to {end}), as of {manifest['as_of']}")
        import polars as pl

        rates = rates.with_columns(
            pl.when(pl.col("rate").is_not_null()).then(pl.format("{}%", (pl.col("rate") * 100).round(1))).alias("rate")
        )
        write_frame(rates, fmt, limit, noun="measure")
        still = {r["measure"]: r.get("open_windows", 0) for r in entry.get("results", [])}
        if any(still.values()):
            print(
                "still open on the as-of date (not met yet, so the rate can rise): "
                + ", ".join(f"{m} {n:,}" for m, n in still.items() if n)
            )
        return 0
    write_frame(rates, fmt, limit, noun="measure")
    return 0
