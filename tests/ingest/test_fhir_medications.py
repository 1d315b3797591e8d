"""Issue 29, medications: a FHIR export's medication resources count as treatment only when their status (and
a request's intent) says the drug was taken, the rest is counted by reason; RxNorm codes and names tell the
drug and its oncology products apart; medicationReference and MedicationStatement are read."""

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from osteo_core import reference
from osteo_core.cli.summary import input_notes
from osteo_core.decide.events import classify_meds
from osteo_core.ingest.fhir import read_bulk_file
from osteo_core.pipeline.stages import ScreenRequest, run_screen

AS_OF = "2026-11-25"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SYNTHEA = Path(__file__).parents[1] / "data" / "synthea_sample"
DATE_FIELD = {
    "MedicationRequest": "authoredOn",
    "MedicationDispense": "whenHandedOver",
    "MedicationAdministration": "effectiveDateTime",
    "MedicationStatement": "effectiveDateTime",
}


def _rx(code: str | None = None, display: str | None = None) -> dict:
    """An RxNorm-coded medicationCodeableConcept (a code without display, a display without code, or both)."""
    coding = {"system": RXNORM, **({"code": code} if code else {}), **({"display": display} if display else {})}
    return {"coding": [coding]}


def _med(kind: str, patient: str, status: str, concept: dict | None = None, date: str = "2026-03-05", **more) -> dict:
    resource = {"resourceType": kind, "id": f"{kind}-{patient}", "status": status}
    resource |= {"subject": {"reference": f"Patient/{patient}"}, DATE_FIELD[kind]: date}
    if kind == "MedicationRequest":
        resource["intent"] = "order"
    if concept is not None:
        resource["medicationCodeableConcept"] = concept
    return {**resource, **more}


def _screen(tmp_path: Path, patients: list[str], t_score: float = -2.6, **resources: list[dict]):
    """Screen a FHIR export: each patient a woman born 1950 with one spine T-score on 2026-03-01, plus the
    resources given. (manifest, the run's classified medication rows, patient → gap types)."""
    folder = tmp_path / "export"
    folder.mkdir(parents=True)
    resources = {
        "Patient": [
            {"resourceType": "Patient", "id": p, "gender": "female", "birthDate": "1950-06-15"} for p in patients
        ],
        "Observation": [
            {
                "resourceType": "Observation",
                "id": f"o-{p}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "38267-1"}]},
                "subject": {"reference": f"Patient/{p}"},
                "effectiveDateTime": "2026-03-01",
                "valueQuantity": {"value": t_score, "code": "1"},
            }
            for p in patients
        ],
        **resources,
    }
    for kind, items in resources.items():
        (folder / f"{kind}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    out = tmp_path / "out"
    manifest = run_screen(ScreenRequest(scans=[str(folder)], out=str(out), as_of=AS_OF, max_reject_rate=1.0))
    run = next((out / "runs").iterdir())
    meds = pl.read_parquet(sorted(run.glob("medications/*.parquet")))
    gaps = pl.read_parquet(out / "care_gaps.parquet")
    by_patient = {p: sorted(gaps.filter(pl.col("patient_id") == p).get_column("gap").to_list()) for p in patients}
    return manifest, meds, by_patient


def _not_read(manifest: dict) -> dict[str, dict[str, int]]:
    return {i["resource_type"]: i["not_read"] for i in manifest["inputs"] if i.get("resource_type")}


def test_only_resources_that_say_the_drug_was_taken_count_and_the_others_are_counted_by_status(tmp_path):
    """Cancelled alendronate and draft risedronate requests closed two untreated_high_risk gaps; a not-done
    denosumab administration opened a denosumab_lapse (and closed the gap); a proposal counted as an order."""
    alendronate, risedronate = {"text": "alendronate"}, {"text": "risedronate"}
    prolia, reclast = "1 ML denosumab 60 MG/ML Prefilled Syringe", "100 ML zoledronic acid 0.05 MG/ML Injection"
    manifest, meds, gaps = _screen(
        tmp_path,
        [f"P{n}" for n in range(1, 11)],
        MedicationRequest=[
            _med("MedicationRequest", "P1", "cancelled", alendronate),
            _med("MedicationRequest", "P2", "draft", risedronate),
            _med("MedicationRequest", "P3", "active", alendronate, intent="proposal"),
            _med("MedicationRequest", "P4", "stopped", alendronate),
            _med("MedicationRequest", "P5", "active", alendronate, intent="original-order"),
            _med("MedicationRequest", "P6", "=HYPERLINK(1)", alendronate),  # not a FHIR status: never echoed
        ],
        MedicationAdministration=[
            _med("MedicationAdministration", "P7", "not-done", _rx("993452", prolia), date="2025-05-01"),
            _med("MedicationAdministration", "P8", "completed", _rx("705824", reclast)),
        ],
        MedicationDispense=[
            _med("MedicationDispense", "P9", "cancelled", alendronate),
            _med("MedicationDispense", "P10", "completed", alendronate),
        ],
    )
    untreated = ["untreated_high_risk"]
    assert gaps == {
        "P1": untreated,
        "P2": untreated,
        "P3": untreated,
        "P4": [],
        "P5": [],
        "P6": untreated,
        "P7": untreated,  # before: denosumab_lapse only (the not-done dose was read as given)
        "P8": [],
        "P9": untreated,
        "P10": [],
    }
    assert sorted(meds.get_column("patient_id").to_list()) == ["P10", "P4", "P5", "P8"]
    not_read = _not_read(manifest)
    assert not_read["MedicationRequest"] == {
        "MedicationRequest intent proposal": 1,
        "MedicationRequest status cancelled": 1,
        "MedicationRequest status draft": 1,
        "MedicationRequest status not in the FHIR R4 value set": 1,
    }
    assert not_read["MedicationAdministration"] == {"MedicationAdministration status not-done": 1}
    assert not_read["MedicationDispense"] == {"MedicationDispense status cancelled": 1}
    notes = "\n".join(input_notes(manifest))  # the summary line says them too
    assert "not read in MedicationRequest.ndjson (MedicationRequest): MedicationRequest intent proposal 1" in notes
    assert "MedicationAdministration status not-done 1" in notes and "HYPERLINK" not in notes


def test_medication_reference_and_medication_statements_are_read(tmp_path):
    """medicationReference to a Medication of the export or one contained in the resource; MedicationStatement
    active/completed read (a date asserted when no effective date), intended and not-taken counted; Medication
    and MedicationStatement files are no longer 'skipped (not a data file)'."""
    contained_prolia = {"resourceType": "Medication", "id": "c1", "code": _rx("993452")}
    contained_alendronate = {"resourceType": "Medication", "id": "c2", "code": {"text": "alendronic acid 70 MG"}}
    manifest, meds, gaps = _screen(
        tmp_path,
        [f"P{n}" for n in range(1, 8)],
        Medication=[{"resourceType": "Medication", "id": "m-aln", "code": _rx("904431")}],
        MedicationRequest=[
            _med("MedicationRequest", "P1", "active", medicationReference={"reference": "Medication/m-aln"}),
            _med(
                "MedicationRequest",
                "P2",
                "active",
                medicationReference={"reference": "#c1"},
                contained=[{"resourceType": "Patient", "id": "c1"}, contained_prolia],
            ),
            _med("MedicationRequest", "P3", "active", medicationReference={"reference": "Medication/elsewhere"}),
        ],
        MedicationStatement=[
            _med(
                "MedicationStatement",
                "P4",
                "active",
                medicationReference={"reference": "#c2"},
                contained=[contained_alendronate],
                dosage=[{"doseAndRate": [{"doseQuantity": {"value": 70, "unit": "mg"}}]}],
            ),
            _med("MedicationStatement", "P5", "not-taken", {"text": "alendronate"}),
            _med("MedicationStatement", "P6", "intended", {"text": "alendronate"}),
            {
                **_med("MedicationStatement", "P7", "completed", _rx("904419")),
                "effectiveDateTime": None,
                "dateAsserted": "2026-04-02T09:00:00-05:00",
            },
        ],
    )
    treated = meds.sort("patient_id").select("patient_id", "generic", "event_date", "dose_mg").rows()
    assert treated == [
        ("P1", "alendronate", dt.date(2026, 3, 5), 70.0),
        ("P2", "denosumab", dt.date(2026, 3, 5), 60.0),
        ("P4", "alendronate", dt.date(2026, 3, 5), 70.0),
        ("P7", "alendronate", dt.date(2026, 4, 2), 10.0),
    ]
    untreated = ["untreated_high_risk"]
    lapse = ["denosumab_lapse"]  # the Prolia dose of March was due again in September
    assert gaps == {"P1": [], "P2": lapse, "P3": untreated, "P4": [], "P5": untreated, "P6": untreated, "P7": []}
    not_read = _not_read(manifest)
    assert not_read["MedicationRequest"] == {"MedicationRequest medicationReference to no Medication in the export": 1}
    assert not_read["MedicationStatement"] == {
        "MedicationStatement status intended": 1,
        "MedicationStatement status not-taken": 1,
    }
    assert not manifest.get("skipped_files")
    assert "Medication" not in _not_read(manifest)  # a lookup, never an input file


def test_rxnorm_codes_and_names_tell_oncology_products_from_osteoporosis_ones(tmp_path):
    """By RxNorm code first, else the total strength of the RxNorm name (volume × concentration), else
    doseQuantity; an oncology brand in the name is oncology, not unrecognised; a code without display is read."""
    admin = "MedicationAdministration"
    dose = {"dosage": {"dose": {"value": 120, "unit": "mg"}}}
    manifest, meds, gaps = _screen(
        tmp_path,
        [f"P{n}" for n in range(1, 11)],
        MedicationAdministration=[
            _med(admin, "P1", "completed", _rx(display="denosumab 120 MG")),
            _med(admin, "P2", "completed", _rx(display="1.7 ML denosumab 70 MG/ML Injection")),
            _med(admin, "P3", "completed", {"text": "1.7 ML denosumab 70 MG/ML Injection [Xgeva]"}),
            _med(admin, "P4", "completed", _rx("1046398")),
            _med(admin, "P5", "completed", _rx("1046402"), dosage={"dose": {"value": 60, "unit": "mg"}}),
            _med(admin, "P6", "completed", _rx("993452"), **dose),  # Prolia's code wins over the dose
            _med(admin, "P7", "completed", _rx(display="100 ML zoledronic acid 0.04 MG/ML Injection")),
            _med(admin, "P8", "completed", _rx(display="100 ML zoledronic acid 0.05 MG/ML Injection")),
            _med(admin, "P10", "completed", _rx(display="denosumab 60 MG/ML Injectable Solution"), **dose),
        ],
        MedicationRequest=[_med("MedicationRequest", "P9", "active", _rx("904419"))],
    )
    rows = meds.sort("patient_id").select("patient_id", "generic", "dose_mg", "oncology").rows()
    assert rows == [
        ("P1", "denosumab", 120.0, True),
        ("P10", "denosumab", 120.0, True),
        ("P2", "denosumab", 119.0, True),
        ("P3", "denosumab", 119.0, True),
        ("P4", "denosumab", 119.0, True),
        ("P5", "denosumab", 119.0, True),
        ("P6", "denosumab", 60.0, False),
        ("P7", "zoledronic acid", 4.0, True),
        ("P8", "zoledronic acid", 5.0, False),
        ("P9", "alendronate", 10.0, False),
    ]
    untreated = ["untreated_high_risk"]
    lapse = ["denosumab_lapse"]  # P6's Prolia dose of March was due again in September
    assert gaps == {f"P{n}": untreated for n in (1, 2, 3, 4, 5, 7, 10)} | {"P6": lapse, "P8": [], "P9": []}
    assert manifest["unrecognised_drugs"]["rows"] == 0


@pytest.mark.parametrize(
    ("name", "dose_mg"),
    [
        ("1.7 ML denosumab 70 MG/ML Injection", "119.0"),
        ("1.7 ML denosumab 70 MG/ML Injection [Xgeva]", "119.0"),
        ("denosumab 120 MG", "120.0"),
        ("denosumab 120 MG in 1.7 ML Injection", "120.0"),
        ("100 ML zoledronic acid 0.04 MG/ML Injection", "4.0"),
        ("5 ML zoledronic acid 0.8 MG/ML Injection", "4.0"),
        ("zoledronic acid 4 MG in 100 ML Injection", "4.0"),
        ("100 ML zoledronic acid 0.05 MG/ML Injection", "5.0"),
        ("Alendronic acid 10 MG Oral Tablet", "10.0"),
        ("risedronate sodium 35 MG Oral Tablet", "35.0"),
        ("3 ML ibandronic acid 1 MG/ML Prefilled Syringe", "3.0"),
        ("denosumab 60 MG/ML Injectable Solution", None),  # a concentration without a volume
        ("lisinopril 10 MG Oral Tablet", None),  # not a drug of ours
    ],
)
def test_the_strength_of_a_real_rxnorm_name_is_its_total_in_mg(tmp_path, name, dose_mg):
    path = tmp_path / "MedicationDispense.ndjson"
    path.write_text(json.dumps(_med("MedicationDispense", "P1", "completed", _rx(display=name))) + "\n")
    assert read_bulk_file(path).frame.collect().get_column("dose_mg").to_list() == [dose_mg]


def test_the_synthea_export_alendronate_requests_are_alendronate_treatment():
    """The real Synthea MedicationRequest file (stopped or active, intent order, RxNorm 904419 "Alendronic acid
    10 MG Oral Tablet"): every request is read (no status or intent to set aside) and the alendronate ones are
    osteoporosis treatment."""
    rows = read_bulk_file(SYNTHEA / "MedicationRequest.000.ndjson")
    assert rows.not_read == {}
    frame = rows.frame.collect()
    assert frame.height == 1745
    alendronate = frame.filter(pl.col("drug") == "alendronate")
    assert alendronate.height == 17
    assert alendronate.get_column("patient_id").unique().to_list() == ["a5cb8ce9-cec6-6b23-0990-cbaf753578a4"]
    typed = alendronate.select(
        "patient_id",
        "drug",
        pl.col("event_date").str.to_date().alias("event_date"),
        pl.col("days_supply").cast(pl.Int64),
        pl.col("dose_mg").cast(pl.Float64),
    )
    classified = classify_meds(typed.lazy()).collect()
    assert classified.get_column("osteoporosis_treatment").all()
    assert classified.get_column("generic").unique().to_list() == ["alendronate"]


def test_the_rxnorm_table_is_consistent_with_the_drugs_it_names():
    """Every code names a drug word of drugs.toml and its oncology flag agrees with its brand or strength (the
    loader refuses the file otherwise); the codes checked against the Synthea sample are there."""
    codes = reference.rxnorm_codes()
    assert codes.get_column("code").is_unique().all()
    synthea = {
        c["code"]
        for line in (SYNTHEA / "MedicationRequest.000.ndjson").read_text().splitlines()
        for c in json.loads(line)["medicationCodeableConcept"]["coding"]
    }
    assert synthea & set(codes.get_column("code")) == {"904419"}
    oncology = codes.filter(pl.col("oncology")).select("generic").unique().get_column("generic").sort().to_list()
    assert oncology == ["denosumab", "zoledronic acid"]


@pytest.mark.parametrize(
    ("duration", "days"),
    [
        ({"value": 12, "unit": "weeks", "system": "http://unitsofmeasure.org", "code": "wk"}, "84"),
        ({"value": 3, "code": "mo"}, "91"),  # UCUM mean Julian month, 30.4375 d: rounded to whole days
        ({"value": 1, "unit": "year"}, "365"),
        ({"value": 90, "unit": "days", "code": "d"}, "90"),
        ({"value": 30}, "30"),  # no unit: days
    ],
)
def test_a_supply_duration_is_read_in_days_whatever_its_unit(tmp_path, duration, days):
    """Issue 31's cross-shape property: a request's expectedSupplyDuration of 12 wk was read as 12 days (its
    number alone), so the FHIR shape's treatment ended ten weeks early."""
    request = _med("MedicationRequest", "P1", "active", {"text": "alendronate"})
    request["dispenseRequest"] = {"expectedSupplyDuration": duration}
    _, meds, _ = _screen(tmp_path, ["P1"], MedicationRequest=[request])
    assert meds.get_column("days_supply").cast(pl.Utf8).to_list() == [days]


def test_a_supply_in_a_unit_that_is_no_duration_in_days_is_quarantined_as_written(tmp_path):
    dispense = _med("MedicationDispense", "P1", "completed", {"text": "alendronate"})
    dispense["daysSupply"] = {"value": 12, "code": "h"}
    manifest, meds, _ = _screen(tmp_path, ["P1"], MedicationDispense=[dispense])
    quarantine = pl.read_parquet(tmp_path / "out" / "quarantine.parquet").filter(pl.col("input") == "meds")
    assert quarantine.select("column", "value").rows() == [("days_supply", "12 h")]  # never 12 days
    assert meds.height == 0 and manifest["rows_by_input"]["meds"]["quarantined"] == 1
