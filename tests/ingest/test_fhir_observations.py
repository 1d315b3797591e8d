"""Issue 29 §1 and §3, Observations: a DiagnosticReport entered in error or cancelled withdraws its results; one
visit is one exam (grouped by report, else encounter, else the patient's day in the export's time zone, never
the UTC date), dated by its first Observation's local date; a malformed NDJSON line is named by number."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from conftest import write_ndjson_export

from osteo_core.cli import main
from osteo_core.pipeline.stages import ScreenRequest, run_screen

AS_OF = "2026-11-25"
LOINC = "http://loinc.org"
PATIENT = {"resourceType": "Patient", "id": "P1", "gender": "female", "birthDate": "1950-06-15"}
SPINE_T, SPINE_BMD, SPINE_Z = "38267-1", "24966-4", "85394-5"  # DXA Lumbar spine T-score, BMD, Z-score


def _observation(oid: str, code: str, value, unit: str, when: str, **more) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/P1"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "code": unit},
        **more,
    }


def _screen(folder: Path, out: Path) -> tuple[dict, pl.DataFrame]:
    request = ScreenRequest(scans=[str(folder)], out=str(out), as_of=AS_OF, max_reject_rate=1.0)
    manifest = run_screen(request)
    return manifest, pl.read_parquet(out / "screening.parquet")


def _not_read(manifest: dict, name: str) -> dict:
    (entry,) = [i for i in manifest["inputs"] if Path(i["path"]).name == name]
    return entry.get("not_read", {})


def test_a_report_entered_in_error_withdraws_its_final_observations(tmp_path):
    report = {"resourceType": "DiagnosticReport", "id": "R1", "status": "entered-in-error",
              "result": [{"reference": "Observation/o1"}]}  # fmt: skip
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[PATIENT],
        Observation=[_observation("o1", SPINE_T, -3.4, "{T-score}", "2024-03-01")],
        DiagnosticReport=[report],
    )
    manifest, screening = _screen(folder, tmp_path / "out")
    assert screening.is_empty()  # no osteoporosis exam, so no untreated_high_risk gap
    assert _not_read(manifest, "Observation.ndjson") == {"in a report entered in error or cancelled": 1}


def test_one_visit_across_midnight_utc_is_one_exam_dated_by_the_local_day(tmp_path):
    """The spine T-score written at 23:30 New York time and the spine BMD written in UTC the same moment later
    (04:30Z the next day) are one exam of 2024-03-01; they were two, the later one without a score."""
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[PATIENT],
        Observation=[
            _observation("o1", SPINE_T, -2.9, "{T-score}", "2024-03-01T23:30:00-05:00"),
            _observation("o2", SPINE_BMD, 0.81, "g/cm2", "2024-03-02T04:30:00Z"),
            _observation("o3", SPINE_Z, -1.1, "{Z-score}", "2024-03-02T04:31:00Z"),
        ],
    )
    _, screening = _screen(folder, tmp_path / "out")
    assert screening.select("exam_date", "lowest_t_score", "lowest_z_score").rows() == [
        (dt.date(2024, 3, 1), -2.9, -1.1)
    ]


def test_observations_of_one_encounter_are_one_exam(tmp_path):
    visit = {"encounter": {"reference": "Encounter/E9"}}
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[PATIENT],
        Observation=[
            _observation("o1", SPINE_T, -2.9, "{T-score}", "2024-03-01T16:00:00-05:00", **visit),
            _observation("o2", SPINE_Z, -1.1, "{Z-score}", "2024-03-04T09:00:00-05:00", **visit),
        ],
    )
    _, screening = _screen(folder, tmp_path / "out")
    assert screening.select("exam_id", "exam_date").rows() == [("E9", dt.date(2024, 3, 1))]


@pytest.mark.parametrize("line", [1, 3])
def test_a_malformed_line_is_named_by_its_number(tmp_path, capsys, line, prefect_engine):
    observations = [json.dumps(_observation(f"o{i}", SPINE_T, -1.0, "{T-score}", "2024-03-01")) for i in range(4)]
    observations[line - 1] = '{"resourceType": "Observation", "id": "SECRET-ID",'
    folder = write_ndjson_export(tmp_path / "export", Patient=[PATIENT])
    (folder / "Observation.ndjson").write_text("\n".join(observations) + "\n")
    code = main(["screen", "--scans", str(folder), "--out", str(tmp_path / "out"), "--as-of", AS_OF])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"Observation.ndjson: line {line}, column " in err and "SECRET" not in err and "Traceback" not in err


def test_values_in_component_are_read(tmp_path):
    """A T-score whose value is in ``component`` (the Observation itself has none), and a DXA panel whose
    components are the spine T- and Z-scores: each value is read; the exam was not_eligible without a category."""
    part = lambda code, value, unit: {  # noqa: E731
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "code": unit},
    }
    single = _observation("o1", SPINE_T, None, "{T-score}", "2024-03-01", component=[part(SPINE_T, -2.9, "{T-score}")])
    single.pop("valueQuantity")
    panel = _observation("o2", "38269-7", None, "1", "2024-03-01", component=[part(SPINE_Z, -1.1, "{Z-score}")])
    panel.pop("valueQuantity")
    folder = write_ndjson_export(tmp_path / "export", Patient=[PATIENT], Observation=[single, panel])
    _, screening = _screen(folder, tmp_path / "out")
    assert screening.select("lowest_t_score", "who_category", "lowest_z_score").rows() == [(-2.9, "osteoporosis", -1.1)]
