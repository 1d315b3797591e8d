"""Issue 29 (Conditions and Procedures of a FHIR Bulk Data export, as EHRs write them): a Condition is read only
when confirmed (or without a verificationStatus); SNOMED CT fractures and osteoporosis and ICD-10 under both
system URIs are read by ``fracture_codes.toml``; whatever is not read is counted by reason, non-fracture codes
apart from fracture codes not mapped; a Condition file without a fracture is normal (the summary says 0
fractures among N conditions); a completed DXA Procedure is a DXA on record for ``screening_due`` and the
measures. The real Synthea export (tests/data/synthea_sample, CC0) screens with its fractures read."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
from conftest import write_ndjson_export

from osteo_core import reference
from osteo_core.cli import main
from osteo_core.cli.summary import input_notes
from osteo_core.pipeline.stages import ScreenRequest, run_screen

SYNTHEA = Path(__file__).resolve().parent.parent / "data" / "synthea_sample"
AS_OF = "2026-11-25"
LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10_WHO = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
SCANNED = "PX"  # a patient with an exam, so every export below has one
FRACTURE_DAY = "2025-01-10"  # its 180-day window closed before the as-of date, with no exam and no drug in it


def _patient(pid: str, born: str = "1950-06-15", gender: str = "female") -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": born}


def _exam(pid: str = SCANNED, day: str = "2024-03-01", spine_t: float = -1.2) -> dict:
    return {
        "resourceType": "Observation",
        "id": f"o-{pid}",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "38267-1"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": day,
        "valueQuantity": {"value": spine_t, "code": "1"},
    }


def _condition(pid: str, system: str, code: str, display: str | None = None, status: str | None = None) -> dict:
    coding = {"system": system, "code": code, **({"display": display} if display else {})}
    condition = {
        "resourceType": "Condition",
        "id": f"c-{pid}",
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": f"{FRACTURE_DAY}T09:00:00-05:00",
        "code": {"coding": [coding]},
    }
    if status is not None:
        condition["verificationStatus"] = {"coding": [{"system": VERIFICATION, "code": status}]}
    return condition


def _procedure(pid: str, system: str, code: str, status: str = "completed", day: str = "2025-05-01") -> dict:
    return {
        "resourceType": "Procedure",
        "id": f"p-{pid}",
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "performedDateTime": f"{day}T10:00:00-05:00",
    }


def _screen(folder: Path, out: Path, **options) -> dict:
    request = ScreenRequest(scans=[str(folder)], out=str(out), as_of=AS_OF, max_reject_rate=1.0, **options)
    return run_screen(request)


def _gaps(out: Path, gap: str) -> list[str]:
    gaps = pl.read_parquet(out / "care_gaps.parquet").filter(pl.col("gap") == gap)
    return sorted(gaps.get_column("patient_id").to_list())


def _not_read(manifest: dict, resource_type: str) -> dict[str, int]:
    return next(e["not_read"] for e in manifest["inputs"] if e.get("resource_type") == resource_type)


def _fractures(out: Path) -> pl.DataFrame:
    run = next((out / "runs").iterdir())
    return pl.read_parquet(sorted(run.glob("fractures/*.parquet"))).sort("patient_id")


def test_only_a_confirmed_fracture_condition_or_one_without_a_status_opens_a_post_fracture_gap(tmp_path):
    """Before: unconfirmed, provisional and differential fractures were read as fractures (gaps opened)."""
    statuses = {
        "CONFIRMED": "confirmed",
        "NO_STATUS": None,
        "UNCONFIRMED": "unconfirmed",
        "PROVISIONAL": "provisional",
        "DIFFERENTIAL": "differential",
        "REFUTED": "refuted",
        "ERROR": "entered-in-error",
    }
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[_patient(pid) for pid in [SCANNED, *statuses]],
        Observation=[_exam()],
        Condition=[_condition(pid, ICD10CM, "S72.001A", status=s) for pid, s in statuses.items()],
    )
    manifest = _screen(folder, tmp_path / "out")
    assert _gaps(tmp_path / "out", "post_fracture_untreated") == ["CONFIRMED", "NO_STATUS"]
    assert _not_read(manifest, "Condition") == {
        "verification status unconfirmed": 3,
        "verification status refuted": 1,
        "verification status entered in error": 1,
    }


def test_snomed_forearm_and_osteoporotic_fractures_are_fragility_fractures_and_other_codes_are_counted_apart(
    tmp_path,
):
    """Before: every SNOMED CT Condition was 'not a fracture code', counted with hypertension; no gap opened.
    Forearm (65966004) is site other: the contract's wrist is the distal radius (S52.5), an unspecified
    forearm fracture is S52.9, other; a fragility fracture either way."""
    conditions = {
        "FOREARM": ("65966004", "Fracture of forearm"),
        "OSTEOPOROTIC": ("443165006", "Pathological fracture due to osteoporosis (disorder)"),
        "FINGER": ("24424003", "Closed fracture of phalanx of finger"),
        "CARPAL": ("9468002", "Closed fracture of carpal bone (disorder)"),  # a fracture, not mapped
        "HYPERTENSION": ("59621000", "Essential hypertension (disorder)"),
    }
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[_patient(pid) for pid in [SCANNED, *conditions]],
        Observation=[_exam()],
        Condition=[_condition(pid, SNOMED, code, display) for pid, (code, display) in conditions.items()],
    )
    manifest = _screen(folder, tmp_path / "out")
    assert _gaps(tmp_path / "out", "post_fracture_untreated") == ["FOREARM", "OSTEOPOROTIC"]
    fractures = _fractures(tmp_path / "out")
    assert fractures.select("patient_id", "site", "icd10", "fracture_site", "fragility").rows() == [
        ("FOREARM", "other", None, "other", True),
        ("OSTEOPOROTIC", "other", "M80", "other", True),  # also an osteoporosis diagnosis for the measures
    ]
    assert _not_read(manifest, "Condition") == {
        "not a fracture or osteoporosis code": 1,
        "fracture code not mapped": 1,
        "fracture of fingers, toes, skull or face (not a fragility fracture site)": 1,
    }


def test_icd10_is_read_under_the_who_system_uri_as_under_icd10_cm(tmp_path):
    """Before: only http://hl7.org/fhir/sid/icd-10-cm was read; the same code under .../icd-10 was not."""
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[_patient(pid) for pid in (SCANNED, "WHO", "CM")],
        Observation=[_exam()],
        Condition=[_condition("WHO", ICD10_WHO, "S72.0"), _condition("CM", ICD10CM, "S72.001A")],
    )
    manifest = _screen(folder, tmp_path / "out")
    assert _fractures(tmp_path / "out").select("patient_id", "fracture_site").rows() == [("CM", "hip"), ("WHO", "hip")]
    assert _gaps(tmp_path / "out", "post_fracture_untreated") == ["CM", "WHO"]
    assert _not_read(manifest, "Condition") == {}


def _synthea_without_fractures(folder: Path) -> Path:
    """The Synthea export with its Condition file cut to the Conditions that are neither fractures nor
    osteoporosis (a test copy; the sample itself stays unchanged), and one sited DXA result."""
    folder.mkdir(parents=True)
    shutil.copy(SYNTHEA / "Patient.000.ndjson", folder)
    lines = (SYNTHEA / "Condition.000.ndjson").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if "racture" not in line and "Osteoporosis" not in line]
    (folder / "Condition.000.ndjson").write_text("\n".join(kept) + "\n", encoding="utf-8")
    write_ndjson_export(folder, Observation=[_exam("a5cb8ce9-cec6-6b23-0990-cbaf753578a4", "2019-03-01")])
    return folder


def test_a_condition_file_without_a_fracture_is_normal_and_the_summary_says_so(tmp_path):
    """Before: exit 2, 'Condition.000.ndjson: no rows: the fractures export has a header but no data'."""
    folder = _synthea_without_fractures(tmp_path / "export")
    conditions = len((folder / "Condition.000.ndjson").read_text(encoding="utf-8").splitlines())
    manifest = _screen(folder, tmp_path / "out")
    assert manifest["status"] == "published" and manifest["rows_by_input"]["fractures"]["rows_in"] == 0
    notes = input_notes(manifest)
    assert f"FHIR Conditions: 0 fractures among {conditions:,} conditions" in notes
    assert f"not read in Condition.000.ndjson (Condition): not a fracture or osteoporosis code {conditions:,}" in notes
    assert not any(note.startswith("no data rows in Condition") for note in notes)


def test_the_command_screens_a_condition_file_without_a_fracture_exit_0(tmp_path, capsys, prefect_engine):
    folder = _synthea_without_fractures(tmp_path / "export")
    conditions = len((folder / "Condition.000.ndjson").read_text(encoding="utf-8").splitlines())
    code = main(["screen", "--scans", str(folder), "--out", str(tmp_path / "out"), "--as-of", AS_OF])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"FHIR Conditions: 0 fractures among {conditions:,} conditions" in printed


def test_a_completed_dxa_procedure_is_a_dxa_on_record_for_screening_due_and_the_measures(tmp_path):
    """Before: Procedure files were 'skipped (not a data file)': screening_due opened for a woman whose DXA the
    export records as done, and MIPS 039 counted her as never screened."""
    women = ("CPT_DONE", "SNOMED_DONE", "NOT_DONE", "OTHER_CODE", "OSTEOPOROSIS")
    roster = pl.DataFrame(
        {"patient_id": list(women), "sex": ["F"] * len(women), "birth_date": ["1950-06-15"] * len(women)}
    )
    roster.write_csv(tmp_path / "roster.csv")
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[_patient(pid) for pid in [SCANNED, *women]],
        Observation=[_exam()],
        Procedure=[
            _procedure("CPT_DONE", CPT, "77080"),
            _procedure("SNOMED_DONE", SNOMED, "312681000"),
            _procedure("NOT_DONE", SNOMED, "312681000", status="not-done"),
            _procedure("OTHER_CODE", SNOMED, "274474001"),  # bone immobilization: not a DXA
        ],
        # osteoporosis already diagnosed (SNOMED CT): the MIPS 039 exclusion, never a fracture
        Condition=[_condition("OSTEOPOROSIS", SNOMED, "64859006", "Osteoporosis (disorder)")],
    )
    manifest = _screen(folder, tmp_path / "out", population=str(tmp_path / "roster.csv"))
    assert manifest["inputs_given"] == ["scans", "fractures", "population", "dxa_procedures"]
    assert _gaps(tmp_path / "out", "screening_due") == ["NOT_DONE", "OSTEOPOROSIS", "OTHER_CODE"]
    assert _gaps(tmp_path / "out", "post_fracture_untreated") == []
    assert _not_read(manifest, "Procedure") == {"status not completed": 1, "not a DXA procedure code": 1}
    members = pl.read_parquet(tmp_path / "out" / "measure_members.parquet").filter(pl.col("measure") == "MIPS039")
    rows = {r["patient_id"]: r for r in members.iter_rows(named=True)}
    for pid in ("CPT_DONE", "SNOMED_DONE"):
        assert rows[pid]["in_numerator"] and rows[pid]["evidence"] == "DXA procedure", rows[pid]
    assert not rows["NOT_DONE"]["in_numerator"] and not rows["NOT_DONE"]["excluded"]
    assert rows["OSTEOPOROSIS"]["exclusion_reason"] == "osteoporosis_diagnosis"
    assert rows["OSTEOPOROSIS"]["evidence"] == "osteoporosis code M81"
    published = pl.read_parquet(sorted(next((tmp_path / "out" / "runs").iterdir()).glob("dxa_procedures/*.parquet")))
    assert sorted(published.select("patient_id", "code").rows()) == [
        ("CPT_DONE", "77080"),
        ("SNOMED_DONE", "312681000"),
    ]


def test_an_osteoporosis_code_in_a_fractures_export_is_a_diagnosis_never_a_fracture(tmp_path):
    """M81 (osteoporosis without current pathological fracture) is kept for the measures, and no longer read
    as a fracture at site 'other' (it opened a post-fracture gap)."""
    folder = write_ndjson_export(tmp_path / "export", Patient=[_patient(SCANNED)], Observation=[_exam()])
    pl.DataFrame(
        {
            "patient_id": [SCANNED, SCANNED],
            "fracture_date": [FRACTURE_DAY, FRACTURE_DAY],
            "icd10": ["M81.0", "S72.001A"],
        }
    ).write_csv(tmp_path / "fractures.csv")
    _screen(folder, tmp_path / "out", fractures=str(tmp_path / "fractures.csv"))
    fractures = _fractures(tmp_path / "out").sort("icd10")
    assert fractures.select("icd10", "fracture_site", "fragility").rows() == [
        ("M810", "no_fracture", False),
        ("S72001A", "hip", True),
    ]


def test_the_real_synthea_export_screens_with_its_snomed_fractures_and_osteoporosis_read(tmp_path):
    """Before: exit 2 (no Condition read). Patient a5cb8ce9… (osteoporosis from 2007, a forearm fracture and a
    pathological osteoporotic fracture on 2018-10-18) has a fragility fracture before her DXA."""
    folder = tmp_path / "export"
    shutil.copytree(SYNTHEA, folder, ignore=shutil.ignore_patterns("*.md"))
    woman = "a5cb8ce9-cec6-6b23-0990-cbaf753578a4"
    write_ndjson_export(folder, Observation=[_exam(woman, "2019-03-01", spine_t=-2.8)])
    manifest = _screen(folder, tmp_path / "out")
    assert manifest["status"] == "published"
    fractures = _fractures(tmp_path / "out").filter(pl.col("patient_id") == woman).sort("fracture_date", "icd10")
    assert fractures.select("fracture_date", "site", "icd10", "fragility").rows() == [
        (dt.date(2007, 11, 10), None, "M81", False),  # 64859006 Osteoporosis: a diagnosis
        (dt.date(2018, 10, 18), "other", None, True),  # 65966004 Fracture of forearm
        (dt.date(2018, 10, 18), "other", "M80", True),  # 443165006 Pathological fracture due to osteoporosis
    ]
    screening = pl.read_parquet(tmp_path / "out" / "screening.parquet").filter(pl.col("patient_id") == woman)
    assert screening.get_column("who_category").to_list() == ["severe_osteoporosis"]  # T <= -2.5 and a fracture
    assert _not_read(manifest, "Condition") == {"not a fracture or osteoporosis code": 550}
    assert "FHIR Conditions: 4 fractures among 555 conditions" in input_notes(manifest)


def test_every_snomed_concept_synthea_writes_is_mapped_with_a_cited_source():
    """The concepts of Synthea's injuries and osteoporosis modules (broken bones, spinal fractures, osteoporosis)."""
    mapped = reference.snomed_conditions()  # raises on a row without a valid site or category, or uncited
    written = {"16114001", "65966004", "263102004", "359817006", "58150001", "33737001", "15724005", "1734006"}
    diagnoses = {"443165006", "64859006"}
    assert written | diagnoses <= set(mapped.get_column("code").to_list())
    assert mapped.filter(pl.col("code").is_in(list(diagnoses))).get_column("icd10").null_count() == 0


def test_a_dxa_procedure_after_the_last_runs_as_of_date_closes_screening_due_as_dxa_done(
    tmp_path, capsys, prefect_engine
):
    """Issue 29 §3, across runs (two screens through the command): a completed DXA Procedure dated after the
    base run's as-of date closes that run's screening_due gap as dxa_done, as an exam after it does. Before: it
    closed as no_longer_eligible. One dated on the base's as-of date is not after it (no_longer_eligible, as for
    an exam), and one not completed is not read: the gap stays open."""
    women = ("DONE", "ON_BASE_DAY", "NOT_DONE")
    roster = pl.DataFrame(
        {"patient_id": list(women), "sex": ["F"] * len(women), "birth_date": ["1950-06-15"] * len(women)}
    )
    roster.write_csv(tmp_path / "roster.csv")
    people = [_patient(pid) for pid in [SCANNED, *women]]
    first = write_ndjson_export(tmp_path / "week1", Patient=people, Observation=[_exam()])
    second = write_ndjson_export(
        tmp_path / "week2",
        Patient=people,
        Observation=[_exam()],
        Procedure=[
            _procedure("DONE", CPT, "77080", day="2026-11-28"),
            _procedure("ON_BASE_DAY", CPT, "77080", day=AS_OF),
            _procedure("NOT_DONE", CPT, "77080", status="not-done", day="2026-11-28"),
        ],
    )
    out = tmp_path / "out"
    for folder, as_of in ((first, AS_OF), (second, "2026-12-02")):
        argv = ["screen", "--scans", str(folder), "--population", str(tmp_path / "roster.csv"), "--out", str(out)]
        code = main([*argv, "--as-of", as_of])
        assert code == 0, capsys.readouterr().out
        if folder == first:
            assert _gaps(out, "screening_due") == sorted(women)  # no DXA on record for any of them
    closed = pl.read_parquet(out / "closed_gaps.parquet").sort("patient_id")
    assert closed.select("patient_id", "gap", "closed_because", "closed_on").rows() == [
        ("DONE", "screening_due", "dxa_done", dt.date(2026, 12, 2)),
        ("ON_BASE_DAY", "screening_due", "no_longer_eligible", dt.date(2026, 12, 2)),
    ]
    assert _gaps(out, "screening_due") == ["NOT_DONE"]


def test_a_dxa_procedure_after_the_latest_exam_is_a_dxa_done_for_overdue_dxa(tmp_path):
    """Before: a patient whose DXA was done (a completed Procedure, its result not in the export) after her last
    exam stayed overdue_dxa: a call to book a DXA she has had. A procedure before the exam, or on a day after the
    as-of date, is no DXA done since."""
    people = {"DONE_SINCE": "2025-06-01", "DONE_BEFORE": "2019-05-01", "NOT_DONE": None}
    exams = [dict(_exam(pid, day="2020-03-01", spine_t=-1.2), id=f"o-{pid}") for pid in people]
    procedures = [
        dict(_procedure(pid, CPT, "77080", day=day), id=f"p-{pid}") for pid, day in people.items() if day is not None
    ]
    folder = write_ndjson_export(
        tmp_path / "export", Patient=[_patient(pid) for pid in people], Observation=exams, Procedure=procedures
    )
    manifest = _screen(folder, tmp_path / "out")
    assert manifest["status"] == "published"
    assert _gaps(tmp_path / "out", "overdue_dxa") == ["DONE_BEFORE", "NOT_DONE"]
