"""Issue 13 item 3: a FHIR R4 Bulk Data export folder is screened end to end (scans, medications, fractures),
and what it holds that is not a DXA result, or not a clear one, is counted or quarantined, never misread."""

from pathlib import Path

import polars as pl
import pytest
from conftest import write_ndjson_export

from osteo_core.demo.long_shapes import sample_events
from osteo_core.errors import InputError
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.resources import data_dir

SAMPLES = data_dir() / "samples"
AS_OF = "2026-11-25"
PATIENT = {"resourceType": "Patient", "id": "P1", "gender": "female", "birthDate": "1950-06-15"}
LOINC = "http://loinc.org"


def _observation(number: int, code: str, value, unit: str = "1", text: str | None = None, **more) -> dict:
    concept = {"coding": [{"system": LOINC, "code": code}], **({"text": text} if text else {})}
    return {
        "resourceType": "Observation",
        "id": f"o{number}",
        "status": "final",
        "code": concept,
        "subject": {"reference": "Patient/P1"},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
        "valueQuantity": {"value": value, "code": unit},
        **more,
    }


def _screen(folder: Path, out: Path, **options):
    request = ScreenRequest(scans=[str(folder)], out=str(out), as_of=AS_OF, max_reject_rate=1.0, **options)
    manifest = run_screen(request)
    return manifest, pl.read_parquet(out / "screening.parquet"), pl.read_parquet(out / "quarantine.parquet")


def test_the_sample_export_screens_as_its_wide_equivalent_with_its_own_meds_and_fractures(tmp_path):
    """Every published table equals the wide sample's (its device has no FHIR element in the sample, so the
    wide equivalent leaves it out) screened with the same medications and fractures."""
    wide = tmp_path / "wide.csv"
    pl.read_csv(SAMPLES / "dual_hip_dxa2_sample.csv", infer_schema=False).drop("Device").write_csv(wide)
    meds, fractures = sample_events()
    meds.write_csv(tmp_path / "meds.csv")
    fractures.write_csv(tmp_path / "fractures.csv")
    plain = ScreenRequest(
        scans=[str(wide)],
        profile="dual_hip_dxa2",
        meds=str(tmp_path / "meds.csv"),
        fractures=str(tmp_path / "fractures.csv"),
        out=str(tmp_path / "wide"),
        as_of=AS_OF,
    )
    run_screen(plain)
    manifest = run_screen(
        ScreenRequest(scans=[str(SAMPLES / "fhir_bulk_sample")], out=str(tmp_path / "fhir"), as_of=AS_OF)
    )
    assert manifest["profile"] == "fhir_bulk" and manifest["inputs_given"] == ["scans", "meds", "fractures"]
    for table in ("screening", "patients", "care_gaps", "treatment_intervals"):
        expected = pl.read_parquet(tmp_path / "wide" / f"{table}.parquet")
        assert pl.read_parquet(tmp_path / "fhir" / f"{table}.parquet").equals(expected), table
    not_read = {Path(i["path"]).name: i["not_read"] for i in manifest["inputs"]}
    assert not_read["Observation.ndjson"] == {"not a DXA result": 1, "status not final": 1}
    assert not_read["Condition.ndjson"] == {"not a fracture or osteoporosis code": 1}
    quarantine = pl.read_parquet(tmp_path / "fhir" / "quarantine.parquet")
    named = set(quarantine.select("column", "check").rows())
    assert {("spine_t", "one_value_per_exam"), ("measurement", "known_measurement")} <= named
    assert ("measurement", "site_stated") in named  # 38265-5 "DXA T-score": no site named


def test_hip_observations_need_a_body_site_or_text_naming_the_region_and_two_unsided_hips_conflict(tmp_path):
    """US Core codes hips by side only (Hip-L T-score): not read as neck or total hip. The FHIR R4 example's
    "Left Femur" bodySite does not say either. Two hips' values without a side are two values, not one."""
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[PATIENT],
        Observation=[
            _observation(1, "80946-7", -1.62, "1", "DXA Hip-L T-score BMD"),
            _observation(2, "24701-5", 0.887, "g/cm-2", bodySite={"text": "Left Femur"}),
            _observation(3, "38264-8", -2.0, "1", bodySite={"text": "Femoral neck"}),
            _observation(4, "38264-8", -2.6, "{T-Score}", bodySite={"coding": [{"code": "29627003"}]}),
        ],
    )
    _, screening, quarantine = _screen(folder, tmp_path / "out")
    assert screening.is_empty()
    checks = quarantine.filter(pl.col("column").is_not_null()).sort("source_row").select("source_row", "check").rows()
    assert checks == [(1, "site_stated"), (2, "site_stated"), (3, "one_value_per_exam"), (4, "one_value_per_exam")]


def test_observations_group_by_report_else_by_patient_and_date_and_others_are_counted(tmp_path):
    report = {
        "resourceType": "DiagnosticReport",
        "id": "R1",
        "subject": {"reference": "Patient/P1"},
        "result": [{"reference": "Observation/o1"}, {"reference": "Observation/o2"}],
    }
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[PATIENT],
        DiagnosticReport=[report],
        Observation=[
            _observation(1, "38267-1", -2.6),
            _observation(2, "24966-4", 0.8, "g/cm2"),
            _observation(3, "85394-5", -1.0, effectiveDateTime="2025-05-05"),  # no report: patient@date
            _observation(4, "29463-7", 61, "kg"),  # body weight: not a DXA result
            _observation(5, "38267-1", -3.9, status="entered-in-error"),
        ],
    )
    manifest, screening, quarantine = _screen(folder, tmp_path / "out")
    assert quarantine.is_empty()
    assert screening.select("exam_id", "lowest_t_score").sort("exam_id").rows() == [
        ("P1@2025-05-05", None),
        ("R1", -2.6),
    ]
    entry = next(i for i in manifest["inputs"] if i["resource_type"] == "Observation")
    assert entry["rows"] == 3 and entry["not_read"] == {"not a DXA result": 1, "status not final": 1}


def test_medications_are_read_by_atc_code_or_the_drug_named_in_their_rxnorm_name(tmp_path):
    def dispense(number: int, concept: dict) -> dict:
        return {
            "resourceType": "MedicationDispense",
            "id": f"m{number}",
            "status": "completed",
            "subject": {"reference": "Patient/P1"},
            "medicationCodeableConcept": concept,
            "whenHandedOver": "2025-01-10",
        }

    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[PATIENT],
        Observation=[_observation(1, "38267-1", -2.6)],
        MedicationDispense=[
            dispense(1, {"coding": [{"system": "http://www.whocc.no/atc", "code": "M05BA04"}]}),
            dispense(
                2, {"coding": [{"system": rxnorm, "code": "904421", "display": "alendronate sodium 70 MG Oral Tablet"}]}
            ),
            dispense(3, {"text": "Xgeva 120 MG/1.7ML Injection"}),  # an oncology brand stays the brand
            dispense(4, {"text": "alendronate / risedronate"}),  # two drugs: left as written, unrecognised
        ],
        Condition=[
            {
                "resourceType": "Condition",
                "id": "c1",
                "subject": {"reference": "Patient/P1"},
                "onsetDateTime": "2024-01-02",
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "S72.001A"}]},
            },
            {
                "resourceType": "Condition",
                "id": "c2",
                "subject": {"reference": "Patient/P1"},
                "onsetDateTime": "2024-01-02",
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "S72.001A"}]},
                "verificationStatus": {"coding": [{"code": "refuted"}]},
            },
        ],
    )
    manifest, _, _ = _screen(folder, tmp_path / "out")
    run = next((tmp_path / "out" / "runs").iterdir())  # the run folder keeps the valid events
    meds = pl.read_parquet(sorted(run.glob("medications/*.parquet"))).sort("source_row")
    assert meds.get_column("drug").to_list() == ["M05BA04", "alendronate", "xgeva", "alendronate / risedronate"]
    assert manifest["unrecognised_drugs"]["rows"] == 1
    fractures = pl.read_parquet(sorted(run.glob("fractures/*.parquet")))
    assert fractures.select("fracture_site", "icd10").rows() == [("hip", "S72001A")]
    entry = next(i for i in manifest["inputs"] if i["resource_type"] == "Condition")
    assert entry["not_read"] == {"verification status refuted": 1}


@pytest.mark.parametrize(
    ("resources", "options", "message"),
    [
        ({"Observation": [_observation(1, "38267-1", -2.6)]}, {}, "holds no Patient file"),
        ({"Patient": [PATIENT, _observation(1, "38267-1", -2.6)]}, {}, "holds several resource types"),
        (
            {"Patient": [PATIENT], "Observation": [_observation(1, "38267-1", -2.6)]},
            {"profile": "densitometer_us"},
            "read with a FHIR profile (one with a [fhir] section: fhir_bulk, fhir_bulk_unsited_t)",
        ),
    ],
)
def test_an_export_that_cannot_be_read_as_bulk_data_is_refused_naming_it(tmp_path, resources, options, message):
    folder = write_ndjson_export(tmp_path / "export", **resources)
    with pytest.raises(InputError) as err:
        _screen(folder, tmp_path / "out", **options)
    assert message in str(err.value)
