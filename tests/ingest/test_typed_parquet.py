"""Issue 11 §4, first step: a typed Parquet export screens exactly as the same exams written as CSV text.

The guard for a typed raw layer (a Parquet float validated as a float, never stringified): each column whose
every cell reads as its field's type is written typed (numbers Float64, dates Date, yes/no Boolean); a column
with a cell that does not (an impossible date, a word in a number column) stays text, as a real export would
have to keep it. Both files must give the same screening table and quarantine the same exams for the same
cells and checks; the quarantined text must be the CSV's, except where a typed cell has no written form of
its own (``-12.0`` is the float -12).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from conftest import AS_OF, scans_frame
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal
from test_long_equivalence import registries

from osteo_core.pipeline.stages import ScreenRequest, run_screen
from schemas.scans import SCANS_FIELDS

KIND_TYPES = {"number": pl.Float64, "date": pl.Date, "boolean": pl.Boolean}
SETTINGS = settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def _typed(text: pl.DataFrame) -> tuple[pl.DataFrame, set[str]]:
    """``text`` with each column whose every cell reads as its field's type cast to it; the columns cast."""
    kinds = {f.name: f.kind for f in SCANS_FIELDS}
    cast, columns = [], set()
    for name in text.columns:
        dtype = KIND_TYPES.get(kinds.get(name, "text"))
        if dtype is None:
            continue
        values = text.get_column(name)
        if dtype == pl.Boolean:
            typed = values.replace_strict({"true": True, "false": False}, default=None, return_dtype=pl.Boolean)
        elif dtype == pl.Date:
            typed = values.str.to_date("%Y-%m-%d", strict=False)
        else:
            typed = values.cast(pl.Float64, strict=False)
        if typed.null_count() == values.null_count():  # every written cell read as the type
            cast.append(typed.alias(name))
            columns.add(name)
    return text.with_columns(cast), columns


def _screen(path: Path) -> tuple[dict, pl.DataFrame, pl.DataFrame]:
    out = path.parent / f"out-{path.suffix[1:]}"
    manifest = run_screen(ScreenRequest(scans=[str(path)], out=str(out), as_of=AS_OF.isoformat(), max_reject_rate=1.0))
    screening = pl.read_parquet(out / "screening.parquet").sort("exam_id")
    return manifest, screening, pl.read_parquet(out / "quarantine.parquet")


def _cells(quarantine: pl.DataFrame, typed: set[str], with_values: bool) -> set[tuple]:
    rows = quarantine.filter(pl.col("input") == "scans")
    keep = ["source_row", "exam_id", "column", "check"]
    if with_values:
        rows = rows.filter(~pl.col("column").is_in(list(typed)) | pl.col("column").is_null())
        keep.append("value")
    return set(rows.select(keep).rows())


@SETTINGS
@given(registry=registries(invalid=True))
def test_a_typed_parquet_export_screens_as_its_csv(tmp_path_factory, registry):
    rows, expected = registry
    folder = tmp_path_factory.mktemp("typed")
    text = scans_frame(rows).drop("source_file", "source_row")
    text.write_csv(folder / "scans.csv")
    typed, columns = _typed(text)
    typed.write_parquet(folder / "scans.parquet")
    csv_manifest, csv_screening, csv_quarantine = _screen(folder / "scans.csv")
    manifest, screening, quarantine = _screen(folder / "scans.parquet")
    assert manifest["rows"] == csv_manifest["rows"]
    assert set(quarantine.get_column("exam_id")) == set(csv_quarantine.get_column("exam_id")) == expected
    assert_frame_equal(screening, csv_screening)
    assert _cells(quarantine, columns, False) == _cells(csv_quarantine, columns, False)
    assert _cells(quarantine, columns, True) == _cells(csv_quarantine, columns, True)


def test_the_typing_helper_types_what_reads_and_keeps_what_does_not():
    """The property is only as good as its typed file: a readable column is cast, an unreadable one is not."""
    text = pl.DataFrame(
        {"exam_date": ["2024-01-02", "2024-02-30"], "spine_t": ["-2.5", None], "current_smoker": ["true", "false"]}
    )
    typed, columns = _typed(text)
    assert columns == {"spine_t", "current_smoker"}
    assert typed.schema["spine_t"] == pl.Float64 and typed.schema["exam_date"] == pl.Utf8
    assert typed.get_column("current_smoker").to_list() == [True, False]
    assert dt.date(2024, 1, 2) not in typed.get_column("exam_date").to_list()
