"""Issues 27 §1 and 29 §3: a FHIR Patient's ``deceased[x]`` is the death the gap rules use, with no roster: no
gap of any type opens for a patient dead on the as-of date (``deceasedBoolean`` true without a date: dead on
it), a gap open in the published run closes as ``left_population`` (died), and a death after the as-of date
(a replayed day) keeps the gaps. With a roster too, the export's death makes the patient neither alive nor
enrolled in ``population``."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.resources import data_dir

SAMPLE = data_dir() / "samples" / "fhir_bulk_sample"
AS_OF = dt.date(2026, 11, 25)


def _gaps(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "current" / "care_gaps.parquet")


def _screen(folder: Path, out: Path, as_of: dt.date = AS_OF, **options) -> dict:
    request = ScreenRequest(scans=[str(folder)], out=str(out), as_of=as_of.isoformat(), max_reject_rate=1.0, **options)
    return run_screen(request)


def _with_deaths(folder: Path, deaths: dict[str, dict]) -> Path:
    """A copy of the sample export whose Patients named in ``deaths`` get those ``deceased[x]`` elements."""
    shutil.copytree(SAMPLE, folder)
    path = folder / "Patient.ndjson"
    patients = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(p | deaths.get(p["id"], {})) + "\n" for p in patients))
    return folder


@pytest.fixture(scope="module")
def listed(tmp_path_factory) -> tuple[Path, list[str]]:
    """The sample screened as it is (nobody dead), and three patients with gaps in it."""
    out = tmp_path_factory.mktemp("alive") / "out"
    _screen(SAMPLE, out)
    people = _gaps(out).get_column("patient_id").unique().sort().to_list()
    assert len(people) >= 3
    return out, people[:3]


def test_a_patient_the_export_records_as_dead_has_no_gap(tmp_path, listed):
    _, (died, deceased, dies_later) = listed
    folder = _with_deaths(
        tmp_path / "export",
        {
            died: {"deceasedDateTime": (AS_OF - dt.timedelta(days=30)).isoformat() + "T10:00:00-05:00"},
            deceased: {"deceasedBoolean": True},  # no date: dead on the as-of date
            dies_later: {"deceasedDateTime": (AS_OF + dt.timedelta(days=1)).isoformat()},  # alive on it
        },
    )
    manifest = _screen(folder, tmp_path / "out")
    on_list = set(_gaps(tmp_path / "out").get_column("patient_id"))
    assert died not in on_list and deceased not in on_list and dies_later in on_list
    unmapped = json.dumps(manifest.get("unmapped_columns", {})) + json.dumps(manifest.get("inputs", []))
    assert "deceased" not in unmapped and "death_date" not in unmapped  # read, not reported as unused


def test_a_death_on_the_as_of_date_counts(tmp_path, listed):
    _, (died, _, _) = listed
    folder = _with_deaths(tmp_path / "export", {died: {"deceasedDateTime": AS_OF.isoformat()}})
    _screen(folder, tmp_path / "out")
    assert died not in set(_gaps(tmp_path / "out").get_column("patient_id"))


def test_an_open_gap_closes_as_died_when_the_next_export_records_the_death(tmp_path, listed):
    _, (died, _, _) = listed
    out = tmp_path / "out"
    _screen(SAMPLE, out)
    opened = _gaps(out).filter(pl.col("patient_id") == died).get_column("gap").sort().to_list()
    folder = _with_deaths(tmp_path / "export", {died: {"deceasedDateTime": (AS_OF + dt.timedelta(days=3)).isoformat()}})
    _screen(folder, out, as_of=AS_OF + dt.timedelta(days=7))
    closed = pl.read_parquet(out / "current" / "closed_gaps.parquet").filter(pl.col("patient_id") == died)
    assert closed.sort("gap").select("gap", "closed_because", "closed_detail").rows() == [
        (gap, "left_population", "died") for gap in opened
    ]


def test_with_a_roster_the_exports_death_is_neither_alive_nor_enrolled(tmp_path, listed):
    _, (died, other, _) = listed
    folder = _with_deaths(tmp_path / "export", {died: {"deceasedBoolean": True}})
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "patient_id,sex,birth_date,death_date,enrolled_from,enrolled_to\n"
        f"{died},F,1950-01-01,,2000-01-01,\n{other},F,1950-01-01,,2000-01-01,\n"
    )
    _screen(folder, tmp_path / "out", population=str(roster))
    population = pl.read_parquet(sorted((tmp_path / "out" / "current" / "population").glob("*.parquet")))
    rows = {r["patient_id"]: (r["alive"], r["enrolled"]) for r in population.iter_rows(named=True)}
    assert rows[died] == (False, False) and rows[other] == (True, True)
    assert died not in set(_gaps(tmp_path / "out").get_column("patient_id"))
