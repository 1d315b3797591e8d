"""post_fracture_untreated opens for a fragility fracture at 50 or older "where known" (docs/care_gaps.md). Found by
the cross-shape property (tests/pipeline/test_cross_shape.py): a woman of 40 with no DXA and a recent untreated
wrist fracture was on the list, though the roster gave her birth date: only the fracture row's and her exams'
birth dates were looked at."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from conftest import exam, write_scans_csv

from osteo_core import reference
from osteo_core.pipeline.stages import ScreenRequest, run_screen

AS_OF = dt.date(2026, 6, 1)
FRACTURE = dt.date(2025, 9, 1)  # inside the look-back, its follow-up window closed before the as-of date


def _years_before(day: dt.date, years: int) -> dt.date:
    return day.replace(year=day.year - years)


def _gaps(tmp_path: Path, birth: dt.date, roster: bool = True) -> list[str]:
    """Gaps of a woman with no DXA and an untreated wrist fracture on ``FRACTURE``, born ``birth`` (the roster's
    only word on it when ``roster``); another patient's exam makes the scans export."""
    scans = write_scans_csv(tmp_path / "scans.csv", [exam(patient_id="OTHER", exam_id="E1")])
    fractures = tmp_path / "fractures.csv"
    pl.DataFrame({"patient_id": ["NOSCAN"], "fracture_date": [str(FRACTURE)], "site": ["wrist"]}).write_csv(fractures)
    population = None
    if roster:
        population = tmp_path / "roster.csv"
        pl.DataFrame(
            {"patient_id": ["NOSCAN", "OTHER"], "sex": ["F", "F"], "birth_date": [str(birth), "1950-01-01"]}
        ).write_csv(population)
    run_screen(
        ScreenRequest(
            scans=[str(scans)],
            fractures=str(fractures),
            population=str(population) if population else None,
            out=str(tmp_path / "out"),
            as_of=str(AS_OF),
        )
    )
    gaps = pl.read_parquet(tmp_path / "out" / "care_gaps.parquet")
    return sorted(gaps.filter(pl.col("patient_id") == "NOSCAN").get_column("gap").to_list())


@pytest.fixture(scope="module")
def min_age() -> int:
    return reference.care_gap_parameters()["post_fracture_untreated"]["min_age_years"]


@pytest.mark.parametrize(("age", "listed"), [(40, False), ("min - 1", False), ("min", True)])
def test_the_rosters_birth_date_gives_her_age_at_the_fracture(tmp_path, min_age, age, listed):
    years = {"min - 1": min_age - 1, "min": min_age}.get(age, age)
    birth = _years_before(FRACTURE, years)  # that many years old on the fracture's day
    assert ("post_fracture_untreated" in _gaps(tmp_path, birth)) is listed


def test_without_any_birth_date_the_fracture_is_listed_as_before(tmp_path):
    assert _gaps(tmp_path, dt.date(1985, 1, 1), roster=False) == ["post_fracture_untreated"]
