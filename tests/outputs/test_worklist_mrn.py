"""Issue 29 §3: the MRN of a FHIR Patient (``identifier`` of type MR, v2-0203) is kept beside ``patient_id`` where
the worklist shows it: the ``patients`` table's ``mrn``, ``osteo worklist`` (per patient and ``--by-gap``) and the
``worklist`` SQL view, right after ``patient_id``. A CSV export gives none (an empty column, no error); a run
published before the column still gives a worklist; a roster's own ``mrn`` column fills it where the export gives
none; the research extract never carries it."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import exam, sql_json, write_ndjson_export, write_scans_csv

from osteo_core.cli import main
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.publish import folder as publish
from osteo_core.resources import data_dir

SAMPLE = data_dir() / "samples" / "fhir_bulk_sample"
AS_OF = "2026-11-25"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
NO_MR = "P0000001"  # this sample patient's Patient has identifiers, none of type MR


def _identifier(code: str, value: str) -> dict:
    return {"type": {"coding": [{"system": V2_0203, "code": code}]}, "system": f"urn:example:{code}", "value": value}


def _mrn(patient_id: str) -> str:
    return f"MR-{patient_id[-3:]}"


def _export_with_mrns(folder: Path) -> Path:
    """The sample FHIR export whose Patients carry an MRN beside other identifiers (one has none of type MR), and
    a second Patient resource of each id (but that one), later in the file, with another MRN (the first read is
    kept)."""
    shutil.copytree(SAMPLE, folder)
    path = folder / "Patient.ndjson"
    patients = [json.loads(line) for line in path.read_text().splitlines()]
    first = [
        p | {"identifier": [_identifier("SS", "999-00-0000"), _identifier("MR", _mrn(p["id"]))]}
        if p["id"] != NO_MR
        else p | {"identifier": [_identifier("SS", "999-00-0000"), {"system": "urn:example:other", "value": "x"}]}
        for p in patients
    ]
    again = [p | {"identifier": [_identifier("MR", "LATER-" + p["id"][-3:])]} for p in patients if p["id"] != NO_MR]
    path.write_text("".join(json.dumps(p) + "\n" for p in [*first, *again]))
    return folder


def _csv_rows(capsys, *args: str) -> list[dict[str, str]]:
    capsys.readouterr()
    assert main(["worklist", *args, "--format", "csv"]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def _header(capsys, *args: str) -> list[str]:
    capsys.readouterr()
    assert main(["worklist", *args, "--format", "csv"]) == 0
    return capsys.readouterr().out.splitlines()[0].split(",")


@pytest.fixture(scope="module")
def fhir_out(tmp_path_factory, prefect_engine) -> Path:
    """The export screened through the CLI (the Prefect flow), as an analyst runs it."""
    folder = tmp_path_factory.mktemp("fhir_mrn")
    export = _export_with_mrns(folder / "export")
    out = folder / "out"
    args = ["screen", "--scans", str(export), "--out", str(out), "--as-of", AS_OF, "--max-reject-rate", "1"]
    assert main(args) == 0
    return out


def test_the_patients_table_keeps_the_first_mrn_read_of_each_patient(fhir_out):
    patients = pl.read_parquet(fhir_out / "patients.parquet")
    assert patients.columns[:2] == ["patient_id", "mrn"] and patients.schema["mrn"] == pl.Utf8
    for patient_id, mrn in patients.select("patient_id", "mrn").iter_rows():
        assert mrn == (None if patient_id == NO_MR else _mrn(patient_id))  # never the later resource's


def test_osteo_worklist_shows_the_mrn_beside_patient_id(fhir_out, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # room for every heading whole
    out = ["--out", str(fhir_out)]
    for by in ([], ["--by-gap"]):
        rows = _csv_rows(capsys, *out, *by)
        assert rows and list(rows[0])[:2] == ["patient_id", "mrn"]
        assert all(r["mrn"] == ("" if r["patient_id"] == NO_MR else _mrn(r["patient_id"])) for r in rows)
    for by in ([], ["--by-gap"]):  # the terminal table shows it too, beside patient_id
        capsys.readouterr()
        assert main(["worklist", *out, *by, "--format", "table"]) == 0
        heading = next(line for line in capsys.readouterr().out.splitlines() if "patient_id" in line)
        assert heading.split()[heading.split().index("patient_id") + 1] == "mrn"
    someone = next(r for r in _csv_rows(capsys, *out) if r["mrn"])
    picked = _csv_rows(capsys, *out, "--mrn", someone["mrn"])  # an MRN is a filter, as a routing column is
    assert [r["patient_id"] for r in picked] == [someone["patient_id"]]
    capsys.readouterr()
    assert main(["worklist", *out, "--mrn", "MR-NOBODY", "--format", "csv"]) == 0
    said = capsys.readouterr().err
    assert "no open gap in this run has this mrn" in said and "MR-NOBODY" not in said  # never echoed


def test_the_worklist_view_has_the_mrn_right_after_patient_id(fhir_out, capsys):
    rows = sql_json(capsys, fhir_out, "SELECT * FROM worklist")
    assert rows and list(rows[0])[:3] == ["patient_id", "mrn", "gap"]
    assert all(r["mrn"] == (None if r["patient_id"] == NO_MR else _mrn(r["patient_id"])) for r in rows)
    with duckdb.connect(str(fhir_out / publish.CATALOG), read_only=True) as con:  # the catalog file's own view
        described = dict(
            con.execute(
                "SELECT table_name, comment FROM duckdb_columns() WHERE schema_name = 'main' AND column_name = 'mrn'"
            ).fetchall()
        )
        assert described.keys() >= {"patients", "worklist"} and all(described.values())
        listed = con.execute("SELECT patient_id, mrn FROM worklist").fetchall()
        assert {(p, m) for p, m in listed} == {(r["patient_id"], r["mrn"]) for r in rows}


def test_the_research_extract_never_carries_the_mrn(fhir_out, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OSTEO_RESEARCH_KEY", "a-long-enough-research-key-0123")
    assert main(["export-research", "--out", str(fhir_out), "--dest", str(tmp_path / "extract")]) == 0
    patients = pl.read_parquet(tmp_path / "extract" / "patients.parquet")
    assert "mrn" not in patients.columns and patients.height > 0


HIGH_RISK = {"femoral_neck_t": "-2.8", "exam_date": "2026-08-01"}


def _csv_run(folder: Path, roster: str | None = None) -> Path:
    scans = write_scans_csv(folder / "scans.csv", [exam(patient_id=p, exam_id=f"E-{p}", **HIGH_RISK) for p in "AB"])
    population = None
    if roster is not None:
        population = folder / "roster.csv"
        population.write_text(roster)
    request = ScreenRequest(
        scans=[str(scans)], out=str(folder / "out"), as_of=AS_OF, population=str(population) if population else None
    )
    run_screen(request)
    return folder / "out"


def test_a_csv_export_gives_an_empty_mrn_column(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # room for every heading whole: an mrn heading would show
    out = _csv_run(tmp_path)
    patients = pl.read_parquet(out / "patients.parquet")
    assert patients.schema["mrn"] == pl.Utf8 and patients.get_column("mrn").null_count() == patients.height == 2
    rows = _csv_rows(capsys, "--out", str(out))
    assert list(rows[0])[:2] == ["patient_id", "mrn"]
    assert [(r["patient_id"], r["mrn"]) for r in rows] == [("A", ""), ("B", "")]
    assert [r["mrn"] for r in sql_json(capsys, out, "SELECT mrn FROM worklist")] == [None, None]
    capsys.readouterr()
    assert main(["worklist", "--out", str(out), "--format", "table"]) == 0
    assert "mrn" not in capsys.readouterr().out  # an empty column is left out of the terminal table


def test_a_run_published_before_patients_had_an_mrn_still_gives_a_worklist(tmp_path, capsys):
    out = _csv_run(tmp_path)
    patients = publish.current_run(out) / "patients.parquet"
    pl.read_parquet(patients).drop("mrn").write_parquet(patients)  # as a run of an earlier version wrote it
    rows = _csv_rows(capsys, "--out", str(out))
    assert [(r["patient_id"], r["mrn"]) for r in rows] == [("A", ""), ("B", "")]
    assert [list(r)[:2] for r in sql_json(capsys, out, "SELECT * FROM worklist")] == [["patient_id", "mrn"]] * 2


def test_a_roster_column_named_mrn_is_the_mrn_where_the_export_gives_none(tmp_path, capsys):
    """A FHIR export's roster routes every column that is not a roster field (no [population] routing): one
    named mrn fills the worklist's mrn (the export's wins) and is no routing column."""
    export = shutil.copytree(SAMPLE, tmp_path / "export")
    path = export / "Patient.ndjson"
    patients = [json.loads(line) for line in path.read_text().splitlines()]
    given = patients[0]["id"]  # the export gives this patient's MRN, the roster another one
    patients[0]["identifier"] = [_identifier("MR", "EXPORT")]
    path.write_text("".join(json.dumps(p) + "\n" for p in patients))
    sex = {"female": "F", "male": "M"}
    lines = [f"{p['id']},{sex[p['gender']]},{p['birthDate']},,2000-01-01,,north,{_mrn(p['id'])}\n" for p in patients]
    roster = tmp_path / "roster.csv"
    roster.write_text("patient_id,sex,birth_date,death_date,enrolled_from,enrolled_to,clinic,mrn\n" + "".join(lines))
    request = ScreenRequest(
        scans=[str(export)], population=str(roster), out=str(tmp_path / "out"), as_of=AS_OF, max_reject_rate=1.0
    )
    run_screen(request)
    out = tmp_path / "out"
    header = _header(capsys, "--out", str(out))
    assert header[:2] == ["patient_id", "mrn"] and header.count("mrn") == 1
    assert header[header.index("in_roster") + 1] == "clinic" and header[header.index("in_roster") + 2] == "open_gaps"
    rows = _csv_rows(capsys, "--out", str(out), "--by-gap")
    assert rows and all(r["mrn"] == ("EXPORT" if r["patient_id"] == given else _mrn(r["patient_id"])) for r in rows)
    assert given in {r["patient_id"] for r in rows}
    someone = rows[-1]
    picked = _csv_rows(capsys, "--out", str(out), "--mrn", someone["mrn"])
    assert [r["patient_id"] for r in picked] == [someone["patient_id"]]
    _the_index_agrees(out)


def _the_index_agrees(out: Path) -> None:
    """A page of the whole list from the worklist's per-patient index (publish.worklist_index) is the list the
    catalog's worklist view gives, record numbers (the export's and the roster's) included."""
    from osteo_core.outputs.worklist import by_patient, load_worklist, patient_page

    in_view, everything, _ = load_worklist(out, None, None, {}, False)
    whole = by_patient(in_view, everything)
    page, total, _, _, mrn = patient_page(out, None, None, False, 10_000)
    assert page.equals(whole) and total == whole.height and mrn and page.get_column("mrn").null_count() < page.height


def test_the_worklist_index_carries_the_exports_mrn(fhir_out):
    _the_index_agrees(fhir_out)


def test_conflicting_mrns_are_counted_in_the_manifest(fhir_out):
    """Each patient but one has a second Patient resource with another MRN: kept first, and counted, never silent."""
    manifest = json.loads((fhir_out / "manifest.json").read_text(encoding="utf-8"))
    patients = pl.read_parquet(fhir_out / "patients.parquet").filter(pl.col("mrn").is_not_null())
    assert manifest["rows_by_input"]["scans"]["patients_with_several_mrns"] == patients.height > 0
    from osteo_core.cli.summary import input_notes

    said = f"patients whose records give different medical record numbers: {patients.height:,}"
    assert any(note.startswith(said) for note in input_notes(manifest))


def test_a_patient_with_no_exam_has_her_mrn_on_her_screening_due_gap(tmp_path, capsys):
    """Before: the patients table held patients with an exam, a drug or a fracture only, so a screening_due gap
    (no exam) showed no MRN from the export, and a roster's mrn column won over it."""
    folder = write_ndjson_export(
        tmp_path / "export",
        Patient=[
            {"resourceType": "Patient", "id": "X1", "gender": "female", "birthDate": "1950-01-01",
             "identifier": [_identifier("MR", "MR-X1")]},
            {"resourceType": "Patient", "id": "D1", "gender": "female", "birthDate": "1950-01-01",
             "identifier": [_identifier("MR", "MR-D1")]},
        ],
        Observation=[
            {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/X1"},
             "code": {"coding": [{"system": "http://loinc.org", "code": "38267-1"}]},
             "effectiveDateTime": "2026-01-10", "valueQuantity": {"value": -1.0, "code": "1"}},
        ],
    )  # fmt: skip
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "patient_id,sex,birth_date,enrolled_from,mrn\nX1,F,1950-01-01,2020-01-01,ROSTER-X1\n"
        "D1,F,1950-01-01,2020-01-01,ROSTER-D1\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ["screen", "--scans", str(folder), "--population", str(roster), "--out", str(out), "--as-of", AS_OF]
    assert main(args) == 0
    rows = {r["patient_id"]: r for r in _csv_rows(capsys, "--out", str(out), "--all")}
    assert rows["D1"]["gap"] == "screening_due" and rows["D1"]["mrn"] == "MR-D1"  # the export's, over the roster's
