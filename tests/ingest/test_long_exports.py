"""Issue 13 item 2: exports with one row per measurement (an EHR result extract, per-region vendor tables)
are assembled into exams, and every way their rows can fail to make one clear exam quarantines it, named."""

import csv
import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from osteo_core.decide.rules import load_rules
from osteo_core.errors import InputError
from osteo_core.ingest.profiles import load_profile
from osteo_core.ingest.readers import read_export
from osteo_core.pipeline.partitions import screen_partition
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.resources import data_dir
from schemas.events import FRACTURES_FIELDS, MEDS_FIELDS
from schemas.tables import SOURCE_FILE, SOURCE_ROW

SAMPLES = data_dir() / "samples"
AS_OF = "2026-11-25"
PERSON = {"PAT_MRN_ID": "P1", "ACCESSION_NUM": "A1", "RESULT_DATE": "2024-03-01", "SEX": "F"}
PERSON |= {"BIRTH_DATE": "1950-06-15"}


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _result(code: str, value: str, text: str = "", unit: str = "", **person: str) -> dict[str, str]:
    row = PERSON | person
    return row | {"COMPONENT_NAME": text, "LOINC_CODE": code, "ORD_VALUE": value, "REFERENCE_UNIT": unit}


def _screen(tmp_path: Path, scans: Path, profile_name: str, name: str = "out"):
    """Read the files as a run does (profile headers, source rows), then assemble, validate and screen them
    in one partition: the run's own steps without its fixed cost (the samples test runs the whole flow)."""
    profile = load_profile(profile_name)
    files = [scans] if scans.is_file() else sorted(scans.iterdir())
    frames = [read_export(f, tmp_path / name, profile.canonical_name).frame for f in files]
    none = {SOURCE_FILE: pl.Utf8, SOURCE_ROW: pl.Int64}
    result = screen_partition(
        frames,
        pl.LazyFrame(schema={f.name: pl.Utf8 for f in MEDS_FIELDS} | none),
        pl.LazyFrame(schema={f.name: pl.Utf8 for f in FRACTURES_FIELDS} | none),
        profile=profile,
        rules=load_rules("standard"),
        as_of=dt.date.fromisoformat(AS_OF),
        conflicting_exam_ids=pl.Series("exam_id", [], dtype=pl.Utf8),
    )
    return {"rows": result.counts["scans"]}, result.tables


def _ehr(tmp_path: Path, rows: list[dict[str, str]]):
    manifest, tables = _screen(tmp_path, _write(tmp_path / "extract.csv", rows), "ehr_loinc_long")
    return manifest, tables["screening"], tables["quarantine"]


def _checks(quarantine: pl.DataFrame) -> list[tuple]:
    ordered = quarantine.sort("source_row", "column", nulls_last=False)
    return ordered.select("source_row", "column", "check", "value").rows()


def test_the_long_samples_screen_through_the_prefect_flow_as_the_wide_sample(tmp_path, prefect_engine):
    """The EHR extract and the per-region tables hold the dual-hip sample's exams: the same screening."""
    from flows.screen import run_flow

    def screen(scans: Path, profile: str, name: str) -> tuple[dict, pl.DataFrame]:
        out = tmp_path / name
        request = ScreenRequest(scans=[str(scans)], out=str(out), as_of=AS_OF, profile=profile)
        return run_flow(request), pl.read_parquet(out / "screening.parquet")

    _, wide = screen(SAMPLES / "dual_hip_dxa2_sample.csv", "dual_hip_dxa2", "wide")
    ehr_manifest, ehr = screen(SAMPLES / "ehr_loinc_long_sample.csv", "ehr_loinc_long", "ehr")
    region_manifest, regions = screen(SAMPLES / "dxa2_single_type_sample", "dxa2_single_type", "regions")
    assert wide.height == 38 and ehr.equals(wide) and regions.equals(wide)
    assert ehr_manifest["rows"]["rows_in"] == region_manifest["rows"]["rows_in"] == 40
    assert ehr_manifest["rows"]["measurement_rows"] == ehr_manifest["inputs"][0]["rows"] == 736
    assert region_manifest["rows"]["measurement_rows_not_screened"] == 14  # L1..L4 of 3 exams, 2 trochanters
    assert sum(i["rows"] for i in region_manifest["inputs"]) == region_manifest["rows"]["measurement_rows"] + 40


def test_two_values_for_one_measurement_quarantine_the_exam_at_both_rows(tmp_path):
    rows = [
        _result("38267-1", "-2.6", "DXA L1-L4 T-score"),
        _result("38267-1", "-1.1", "DXA L1-L4 T-score"),
        _result("38267-1", "-1.0", "DXA L1-L4 T-score", ACCESSION_NUM="A2", RESULT_DATE="2025-03-01"),
    ]
    manifest, screening, quarantine = _ehr(tmp_path, rows)
    assert _checks(quarantine) == [
        (1, "spine_t", "one_value_per_exam", "-2.6"),
        (2, "spine_t", "one_value_per_exam", "-1.1"),
    ]
    assert screening.get_column("exam_id").to_list() == ["A2"]
    assert manifest["rows"] | {"rows_in": 2, "valid": 1, "quarantined": 1} == manifest["rows"]


def test_values_that_read_the_same_are_one_value(tmp_path):
    """0.80 and 0.8, F and female, written on two rows of one exam, are the same value: no conflict."""
    rows = [
        _result("24966-4", "0.80", "DXA L1-L4 BMD", "g/cm2"),
        _result("24966-4", "0.8", "DXA L1-L4 BMD", "g/cm²"),
        _result("38267-1", "-2.6", "DXA L1-L4 T-score", "1", SEX="female"),
    ]
    manifest, screening, quarantine = _ehr(tmp_path, rows)
    assert quarantine.is_empty() and screening.height == 1
    assert screening.row(0, named=True)["lowest_t_score"] == -2.6 and screening.row(0, named=True)["sex"] == "F"


def test_a_hip_code_needs_text_naming_the_neck_or_total_hip(tmp_path):
    """LOINC's Hip and Femur codes do not say neck or total hip (public data uses them both ways)."""
    rows = [
        _result("80946-7", "-2.2", "DXA Hip-L T-score"),  # no region named: quarantined
        _result("80946-7", "-2.7", "DXA Left Femoral Neck T-score", ACCESSION_NUM="A2"),
        _result("24701-5", "0.887", "Left Femur / Total", "g/cm-2", ACCESSION_NUM="A3"),  # the FHIR R4 example
        _result("38267-1", "-1.0", ACCESSION_NUM="A3"),
    ]
    _, screening, quarantine = _ehr(tmp_path, rows)
    assert _checks(quarantine) == [
        (1, None, "at_least_one_score", None),  # its only score could not be read
        (1, "measurement", "site_stated", "80946-7 (DXA Hip-L T-score)"),
    ]
    by_exam = {r["exam_id"]: r for r in screening.iter_rows(named=True)}
    assert by_exam["A2"]["lowest_t_site"] == "femoral_neck" and by_exam["A2"]["lowest_t_side"] == "left"
    assert set(by_exam) == {"A2", "A3"}


def test_the_misused_generic_t_score_code_is_read_only_where_the_text_names_the_site(tmp_path):
    """38265-5 is LOINC's forearm T-score, but public data uses it for any DXA T-score."""
    rows = [
        _result("38265-5", "-2.8", "DXA L1-L4 T-SCORE"),
        _result("38265-5", "-2.0", "DXA T-score", ACCESSION_NUM="A2"),
        _result("38265-5", "-1.5", "1/3 Radius T-score", ACCESSION_NUM="A3"),
    ]
    _, screening, quarantine = _ehr(tmp_path, rows)
    assert _checks(quarantine) == [
        (2, None, "at_least_one_score", None),
        (2, "measurement", "site_stated", "38265-5 (DXA T-score)"),
    ]
    sites = dict(screening.select("exam_id", "lowest_t_site").rows())
    assert sites == {"A1": "spine", "A3": "radius33"}


def test_a_text_naming_the_other_hip_than_the_code_is_quarantined(tmp_path):
    rows = [_result("80946-7", "-2.7", "DXA Right Total Hip T-score"), _result("38267-1", "-1.0")]
    _, screening, quarantine = _ehr(tmp_path, rows)
    assert _checks(quarantine) == [(1, "measurement", "side_agrees", "80946-7 (DXA Right Total Hip T-score)")]
    assert screening.is_empty()


@pytest.mark.parametrize(
    ("code", "unit", "accepted"),
    [
        ("24966-4", "g/cm2", True),
        ("24966-4", "GM/CM2", True),
        ("24966-4", "mg/cm2", False),  # a thousandth: never converted silently
        ("38267-1", "{T-Score}", True),
        ("38267-1", "1", True),
        ("38267-1", "", True),
        ("38267-1", "g/cm2", False),  # a BMD unit on a T-score code (seen in public data)
        ("85394-5", "{T-score}", False),
    ],
)
def test_units_accepted_for_each_measure(tmp_path, code, unit, accepted):
    rows = [_result(code, "0.8" if code == "24966-4" else "-1.0", "DXA L1-L4", unit), _result("38267-1", "-1.2")]
    if code == "38267-1":
        rows = rows[:1]
    _, screening, quarantine = _ehr(tmp_path, rows)
    assert (screening.height == 1) is accepted
    if not accepted:
        assert [c[2:] for c in _checks(quarantine) if c[1] is not None] == [("known_unit", unit)]


def test_an_unknown_code_quarantines_its_exam_at_its_row(tmp_path):
    rows = [_result("38267-1", "-2.6"), _result("2160-0", "0.9", "Creatinine", "mg/dL"), _result("", "1")]
    _, screening, quarantine = _ehr(tmp_path, rows)
    assert _checks(quarantine) == [
        (2, "measurement", "known_measurement", "2160-0 (Creatinine)"),
        (3, "measurement", "known_measurement", "(blank)"),
    ]
    assert screening.is_empty()


def test_a_row_without_its_exam_key_is_an_exam_of_its_own_named_at_its_row(tmp_path):
    rows = [_result("38267-1", "-2.6"), _result("85394-5", "-1.0", ACCESSION_NUM="")]
    _, screening, quarantine = _ehr(tmp_path, rows)
    assert screening.get_column("exam_id").to_list() == ["A1"]
    assert quarantine.select("source_row", "column", "check").rows() == [(2, "exam_id", "required")]


def _regions(tmp_path: Path, hip: list[dict], visits: list[dict], profile: str = "dxa2_single_type", **more):
    folder = tmp_path / "export"
    folder.mkdir(exist_ok=True)
    _write(folder / "hip.csv", hip)
    _write(folder / "visits.csv", visits)
    for name, rows in more.items():
        _write(folder / f"{name}.csv", rows)
    manifest, tables = _screen(tmp_path, folder, profile)
    return manifest, tables["screening"], tables["quarantine"]


def _region(region: str, bmd: str, t: str, z: str = "", date: str = "2024-03-01", patient: str = "P1") -> dict:
    return {
        "Patients_ID": patient,
        "ScanDate": date,
        "Region": region,
        "BMD_g/cm2": bmd,
        "YA_T_score": t,
        "AM_Z_score": z,
    }


VISIT = {"Patients_ID": "P1", "ScanDate": "2024-03-01", "Accession": "A1", "Sex": "F", "DOB": "1950-06-15"}


def test_two_hips_without_a_side_are_two_values_not_a_mean(tmp_path):
    """A missing side: both hips' neck written as "Neck" cannot be one exam's femoral neck."""
    hip = [_region("Neck", "0.70", "-2.0"), _region("Neck", "0.60", "-2.8")]
    _, screening, quarantine = _regions(tmp_path, hip, [VISIT])
    checks = {(c, k) for _, c, k, _ in _checks(quarantine)}
    assert checks == {("femoral_neck_bmd", "one_value_per_exam"), ("femoral_neck_t", "one_value_per_exam")}
    assert screening.is_empty()


def test_an_unsided_and_a_sided_hip_in_one_exam_are_quarantined_as_in_a_wide_export(tmp_path):
    hip = [_region("Neck", "0.70", "-2.0"), _region("Left Neck", "0.60", "-2.8")]
    _, screening, quarantine = _regions(tmp_path, hip, [VISIT])
    assert "not_with_sided_values" in set(quarantine.get_column("check")) and screening.is_empty()


def test_regions_not_screened_are_counted_and_an_unlisted_region_quarantines(tmp_path):
    hip = [_region("Left Neck", "0.60", "-2.8"), _region("Left Troch", "0.5", "-2.0"), _region("Wards", "0.4", "-3")]
    visits = [VISIT, VISIT | {"ScanDate": "2025-03-01", "Accession": "A2"}]
    hip += [
        _region("Left Shaft", "0.9", "-1.0", date="2025-03-01"),
        _region("Left Neck", "0.6", "-2.9", date="2025-03-01"),
    ]
    manifest, screening, quarantine = _regions(tmp_path, hip, visits)
    assert screening.get_column("exam_id").to_list() == ["A1"]
    assert _checks(quarantine) == [(4, "measurement", "known_measurement", "Left Shaft")]
    assert quarantine.get_column("source_file").to_list() == [str(tmp_path / "export" / "hip.csv")]
    assert manifest["rows"]["measurement_rows"] == 5 and manifest["rows"]["measurement_rows_not_screened"] == 2


def test_per_patient_fields_from_a_file_with_only_the_patient_id(tmp_path):
    """A patients file (no scan date) gives sex and birth date to each exam; a patient with no exam is
    counted; a visit and the patients file that disagree on sex quarantine that exam."""
    hip = [_region("Left Neck", "0.6", "-2.8"), _region("Left Neck", "0.6", "-2.8", date="2025-03-01")]
    hip += [_region("Left Neck", "0.6", "-2.8", patient="P2")]
    visits = [
        {"Patients_ID": "P1", "ScanDate": "2024-03-01", "Accession": "A1"},
        {"Patients_ID": "P1", "ScanDate": "2025-03-01", "Accession": "A2"},
        {"Patients_ID": "P2", "ScanDate": "2024-03-01", "Accession": "B1", "Sex": "F"},
    ]
    patients = [
        {"Patients_ID": "P1", "Sex": "F", "DOB": "1950-06-15"},
        {"Patients_ID": "P2", "Sex": "M", "DOB": "1950-06-15"},
        {"Patients_ID": "P3", "Sex": "F", "DOB": "1960-01-01"},
    ]
    manifest, screening, quarantine = _regions(tmp_path, hip, visits, patients=patients)
    assert screening.select("exam_id", "sex", "age_years").rows() == [("A1", "F", 73), ("A2", "F", 74)]
    assert {
        (Path(f).name, r, c, k)
        for f, r, c, k in quarantine.select("source_file", "source_row", "column", "check").rows()
    } == {
        ("patients.csv", 2, "sex", "one_value_per_exam"),
        ("visits.csv", 3, "sex", "one_value_per_exam"),
    }
    assert manifest["rows"]["patient_rows_without_exam"] == 1


def test_without_an_exam_id_the_exam_is_named_by_patient_and_date(tmp_path):
    visits = [{k: v for k, v in VISIT.items() if k != "Accession"}]
    _, screening, _ = _regions(tmp_path, [_region("Left Neck", "0.6", "-2.8")], visits)
    assert screening.get_column("exam_id").to_list() == ["P1@2024-03-01"]


def _profile(tmp_path: Path, long: str) -> str:
    path = tmp_path / "long.toml"
    path.write_text(f'[headers]\n"PID" = "patient_id"\n\n[long]\n{long}\n', encoding="utf-8")
    return str(path)


KEY = 'exam_key = ["exam_id"]\n'


@pytest.mark.parametrize(
    ("long", "message"),
    [
        ('exam_key = ["exam_id"]\nmeasurement = "Code"\nvalue = "V"', "unknown setting(s): value"),
        ('exam_key = ["visit"]\nmeasurement = "Code"', "exam_key must list one or both of exam_id, exam_date"),
        ('exam_key = ["exam_id"]\n[long.values]\n"V" = ""', "'measurement' (the header of the column"),
        ('exam_key = ["exam_id"]\nmeasurement = "Code"\n[long.values]\n"V" = "mean"', "the measure must be t, z, bmd"),
        ('exam_key = ["exam_id"]\nmeasurement = "Code"\n[long.values]\n"V" = ""', "nothing says what a measurement"),
        (
            'exam_key = ["exam_id"]\nmeasurement = "Code"\ncodes = "snomed"\n[long.values]\n"V" = ""',
            "the only shipped code list is 'loinc'",
        ),
        (
            KEY + 'measurement = "Code"\n[long.values]\n"B" = "bmd"\n[long.measurements]\n"X" = "frax_mof"',
            "gives 'frax_mof_bmd', not a measurable scans column",
        ),
        (
            'exam_key = ["exam_id"]\nmeasurement = "Code"\n[long.values]\n"V" = ""\n[long.measurements]\n"S" = "sex"',
            "gives 'sex', not a measurable scans column",
        ),
        (
            KEY + 'measurement = "PID"\n[long.values]\n"V" = ""\n[long.measurements]\n"X" = "spine_t"',
            "[long] and [headers] both map 'pid'",
        ),
    ],
)
def test_a_long_profile_that_names_what_does_not_exist_is_refused(tmp_path, long, message):
    with pytest.raises(InputError) as err:
        load_profile(_profile(tmp_path, long))
    assert message in str(err.value)


def test_a_long_export_that_lacks_a_column_every_exam_needs_is_refused_before_reading(tmp_path):
    def refusal(dropped: str) -> str:
        rows = [{k: v for k, v in _result("38267-1", "-2.6").items() if k != dropped}]
        scans = _write(tmp_path / f"without-{dropped}.csv", rows)
        request = ScreenRequest(scans=[str(scans)], out=str(tmp_path / "out"), as_of=AS_OF, profile="ehr_loinc_long")
        with pytest.raises(InputError) as err:
            run_screen(request)
        return str(err.value)

    assert "no file of the long export gives: sex (profile 'ehr_loinc_long')" in refusal("SEX")
    assert "required column(s) missing: exam_id" in refusal("ACCESSION_NUM")
    assert not (tmp_path / "out").exists()
