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
import pytest
from conftest import AS_OF, exam, scans_frame
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal
from test_long_equivalence import registries

from osteo_core.demo.synthetic import as_typed_export
from osteo_core.errors import InputError
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from schemas.scans import SCANS_FIELDS

SETTINGS = settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def _typed(text: pl.DataFrame) -> tuple[pl.DataFrame, set[str]]:
    return as_typed_export(text, SCANS_FIELDS)


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


def _raw_layer(out: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((out / "current" / "raw" / "scans").rglob("*.parquet")))


def _two_exams() -> pl.DataFrame:
    return scans_frame([exam(), exam(patient_id="P2", exam_id="E2", spine_t="-2.75", current_smoker="true")]).drop(
        "source_file", "source_row"
    )


def test_the_raw_layer_keeps_a_typed_parquet_column_in_its_own_type(tmp_path):
    """Issue 11: a Parquet float is validated as a float, never written as text and parsed back. A column
    of another type than its field's (a whole-number patient id, a Float32) is text, as it always was."""
    typed, _ = _typed(_two_exams())
    typed = typed.with_columns(
        pl.Series("patient_id", [101, 102], dtype=pl.Int64), pl.Series("weight_kg", [61.1, 70.2], dtype=pl.Float32)
    )
    typed.write_parquet(tmp_path / "scans.parquet")
    manifest, screening, quarantine = _screen(tmp_path / "scans.parquet")
    raw = _raw_layer(tmp_path / "out-parquet")
    assert raw.schema["spine_t"] == pl.Float64 and raw.schema["exam_date"] == pl.Date
    assert raw.schema["current_smoker"] == pl.Boolean
    assert raw.schema["patient_id"] == pl.Utf8 and raw.schema["weight_kg"] == pl.Utf8
    assert sorted(raw.get_column("weight_kg")) == ["61.1", "70.2"]  # the Float32's own text, not 61.099998…
    assert manifest["rows"]["valid"] == 2 and quarantine.is_empty()
    assert screening.get_column("patient_id").to_list() == ["101", "102"]
    exams = pl.read_parquet(sorted((tmp_path / "out-parquet" / "current" / "exams").glob("*.parquet")))
    assert exams.sort("exam_id").get_column("spine_t").to_list() == [-0.5, -2.75]


def test_a_non_finite_typed_number_is_quarantined_as_its_text_would_be(tmp_path):
    """NaN or an infinity in a typed column is not a readable number, as the text ``NaN`` is not."""
    rows = [exam(), exam(patient_id="P2", exam_id="E2"), exam(patient_id="P3", exam_id="E3")]
    text = scans_frame(rows).drop("source_file", "source_row")
    text.with_columns(pl.Series("spine_t", ["-0.5", "NaN", "inf"])).write_csv(tmp_path / "scans.csv")
    typed = text.with_columns(pl.Series("spine_t", [-0.5, float("nan"), float("inf")]))
    typed.write_parquet(tmp_path / "scans.parquet")
    _, _, csv_quarantine = _screen(tmp_path / "scans.csv")
    manifest, _, quarantine = _screen(tmp_path / "scans.parquet")
    assert _raw_layer(tmp_path / "out-parquet").schema["spine_t"] == pl.Float64
    assert manifest["rows"]["quarantined"] == 2
    cells = quarantine.select("exam_id", "column", "check", "value").sort("exam_id").rows()
    assert cells == [("E2", "spine_t", "is_number", "NaN"), ("E3", "spine_t", "is_number", "inf")]
    assert cells == csv_quarantine.select("exam_id", "column", "check", "value").sort("exam_id").rows()


def test_a_typed_file_and_a_text_file_in_one_run_screen_as_two_text_files(tmp_path):
    """Files of one input may differ in type (a Parquet export beside a CSV one): a partition holding both
    reads the typed column as text, as Polars writes it, and screens as if both had been CSV."""
    first = _two_exams()
    second = scans_frame([exam(patient_id=f"Q{i}", exam_id=f"F{i}", spine_t=f"-{i}.25") for i in range(1, 6)]).drop(
        "source_file", "source_row"
    )
    first.write_csv(tmp_path / "a.csv")
    second.write_csv(tmp_path / "b.csv")
    _typed(second)[0].write_parquet(tmp_path / "b.parquet")
    both_text = run_screen(
        ScreenRequest(
            scans=[str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], out=str(tmp_path / "text"), as_of="2026-01-01"
        )
    )
    mixed_files = [str(tmp_path / "a.csv"), str(tmp_path / "b.parquet")]
    mixed = run_screen(ScreenRequest(scans=mixed_files, out=str(tmp_path / "mixed"), as_of="2026-01-01"))
    assert mixed["rows"] == both_text["rows"] == {"rows_in": 7, "valid": 7, "quarantined": 0, "duplicate": 0}
    assert_frame_equal(
        pl.read_parquet(tmp_path / "mixed" / "screening.parquet").sort("exam_id"),
        pl.read_parquet(tmp_path / "text" / "screening.parquet").sort("exam_id"),
    )


def test_a_typed_whole_number_beyond_any_integer_column_is_quarantined_not_a_crash(tmp_path):
    """A UInt64 or Float64 ``days_supply`` too large for an integer column is not readable as one: the row is
    quarantined with its value (it stopped the whole run before), as the same text in a CSV is."""
    scans = scans_frame([exam()]).drop("source_file", "source_row")
    scans.write_csv(tmp_path / "scans.csv")
    meds = pl.DataFrame(
        {
            "patient_id": ["P1", "P1", "P1"],
            "drug": ["alendronate"] * 3,
            "event_date": [dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)],
            "days_supply": pl.Series([30, 2**64 - 1, 2**63], dtype=pl.UInt64),
        }
    )
    meds.write_parquet(tmp_path / "meds.parquet")
    meds.with_columns(pl.Series("days_supply", [30.0, 1e300, 2.0**63])).write_parquet(tmp_path / "meds_f.parquet")
    for name in ("meds.parquet", "meds_f.parquet"):
        out = tmp_path / f"out-{name}"
        manifest = run_screen(
            ScreenRequest(
                scans=[str(tmp_path / "scans.csv")], meds=str(tmp_path / name), out=str(out), as_of="2026-01-01"
            )
        )
        assert manifest["rows_by_input"]["meds"] == {"rows_in": 3, "valid": 1, "quarantined": 2, "duplicate": 0}
        quarantine = pl.read_parquet(out / "quarantine.parquet").sort("source_row")
        assert quarantine.select("source_row", "column", "check").rows() == [
            (2, "days_supply", "is_integer"),
            (3, "days_supply", "is_integer"),
        ]


def test_a_parquet_date_beyond_the_writable_calendar_is_refused_naming_row_and_column(tmp_path):
    """A Parquet date Polars cannot write as text (here 100,000,000 days before 1970) made the run stop with a
    Polars panic and a traceback; the file is now refused (an ``InputError``: exit 2, one line)."""
    scans_frame([exam()]).drop("source_file", "source_row").write_csv(tmp_path / "scans.csv")
    days = pl.Series([18_000, -100_000_000, 19_000], dtype=pl.Int32).cast(pl.Date)
    fractures = pl.DataFrame({"patient_id": ["P1"] * 3, "fracture_date": days, "site": ["hip"] * 3})
    fractures.write_parquet(tmp_path / "fractures.parquet")
    request = ScreenRequest(
        scans=[str(tmp_path / "scans.csv")],
        fractures=str(tmp_path / "fractures.parquet"),
        out=str(tmp_path / "out"),
        as_of="2026-01-01",
    )
    with pytest.raises(InputError) as err:
        run_screen(request)
    assert str(err.value) == (
        f"{tmp_path / 'fractures.parquet'}: row 2, column 'fracture_date': a date outside the years -262143 to 262142"
    )
    assert not (tmp_path / "out" / "current").exists()
