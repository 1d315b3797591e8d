"""Issue 29 item 6: a real EHR-style FHIR export, end to end. The Synthea export (tests/data/synthea_sample, CC0,
copied unchanged) with Synthea-shaped DXA Observations for its patients is screened by ``osteo screen`` (the
Prefect flow, its temporary server) with the shipped profile ``fhir_bulk_unsited_t``.

Before: exit 2 (no Condition read: "the fractures export has a header but no data"); with the Conditions read,
exit 3 (every Synthea DXA result quarantined ``site_stated``: 38265-5 without a site)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
from conftest import write_ndjson_export

from osteo_core.cli import main
from osteo_core.resources import data_dir

SYNTHEA = Path(__file__).resolve().parent.parent / "data" / "synthea_sample"
AS_OF = "2023-06-01"
OSTEOPOROTIC_WOMAN = "a5cb8ce9-cec6-6b23-0990-cbaf753578a4"  # osteoporosis 2007, fractures 2018-10-18, alendronate
DIED_1994 = "79a66c97-6131-3213-f3c9-4606946ab056"  # deceasedDateTime 1994-11-11
DIED_1989 = "129c6ac7-8d06-89de-ad63-0204a93e76c3"  # deceasedDateTime 1989-05-09
UNTREATED_WOMAN = "6a4160eb-a793-2f86-2302-378626f46cce"  # born 1963, no osteoporosis drug
UNIT = "{T-score}"  # UCUM annotation, as Synthea writes it
MAN = "8e1a0a7c-e308-444b-075a-3c2b1f60f881"  # born 1960


def synthea_dxa(number: int, patient: str, when: str, t_score: float) -> dict:
    """A DXA result as Synthea's osteoporosis module writes it: LOINC 38265-5 "DXA [T-score] Bone density",
    unit ``{T-score}`` (UCUM), category procedure, no ``bodySite``, on the day of an encounter."""
    return {
        "resourceType": "Observation",
        "id": f"dxa-{number}",
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "procedure"}]}
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "38265-5", "display": "DXA [T-score] Bone density"}],
            "text": "DXA [T-score] Bone density",
        },
        "subject": {"reference": f"Patient/{patient}"},
        "encounter": {"reference": f"Encounter/enc-{number}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": t_score, "unit": UNIT, "system": "http://unitsofmeasure.org", "code": UNIT},
    }


def _export(folder: Path) -> Path:
    shutil.copytree(SYNTHEA, folder, ignore=shutil.ignore_patterns("*.md"))
    observations = [
        synthea_dxa(1, OSTEOPOROTIC_WOMAN, "2019-03-02T22:58:16-05:00", -3.1),
        synthea_dxa(2, OSTEOPOROTIC_WOMAN, "2021-03-06T22:58:16-05:00", -3.3),
        synthea_dxa(3, DIED_1994, "1993-06-05T22:58:16-04:00", -2.9),
        synthea_dxa(4, DIED_1989, "1988-04-09T20:35:22-04:00", -2.6),
        synthea_dxa(5, UNTREATED_WOMAN, "2022-05-10T23:40:00-04:00", -2.7),  # 03:40 UTC the next day
        synthea_dxa(6, MAN, "2022-08-15T09:10:00-04:00", 0.3),
    ]
    return write_ndjson_export(folder, **{"Observation.000": observations})


def _screen(folder: Path, out: Path, *options: str) -> int:
    return main(["screen", "--scans", str(folder), "--out", str(out), "--as-of", AS_OF, *options])


def test_the_synthea_export_screens_through_the_flow_with_the_unsited_t_profile(tmp_path, capsys):
    folder = _export(tmp_path / "export")
    out = tmp_path / "out"
    assert _screen(folder, out, "--profile", "fhir_bulk_unsited_t") == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "published" and manifest["profile"] == "fhir_bulk_unsited_t"
    assert manifest["rows"]["quarantined"] == 0

    screening = pl.read_parquet(out / "screening.parquet").sort("patient_id", "exam_date")
    assert screening.height == 6
    assert set(screening.get_column("lowest_t_site")) == {"unspecified"}  # no site is guessed
    by_exam = {(r["patient_id"], r["exam_date"]): r for r in screening.iter_rows(named=True)}
    # the local date of 2022-05-10T23:40-04:00, never the UTC date
    assert by_exam[(UNTREATED_WOMAN, dt.date(2022, 5, 10))]["who_category"] == "osteoporosis"
    # the forearm and pathological fractures (SNOMED CT) of 2018-10-18 are fragility fractures before her DXA
    assert by_exam[(OSTEOPOROTIC_WOMAN, dt.date(2019, 3, 2))]["who_category"] == "severe_osteoporosis"
    assert by_exam[(MAN, dt.date(2022, 8, 15))]["who_category"] == "normal"

    run = out / "current"
    fractures = pl.read_parquet(sorted(run.glob("fractures/*.parquet"))).filter(pl.col("fragility"))
    hers = fractures.filter(pl.col("patient_id") == OSTEOPOROTIC_WOMAN)
    assert hers.get_column("fracture_date").unique().to_list() == [dt.date(2018, 10, 18)]
    # her alendronate requests (RxNorm 904419, stopped or active) are treatment intervals
    intervals = pl.read_parquet(out / "treatment_intervals.parquet").filter(pl.col("patient_id") == OSTEOPOROTIC_WOMAN)
    requests = [
        json.loads(line)
        for line in (SYNTHEA / "MedicationRequest.000.ndjson").read_text(encoding="utf-8").splitlines()
        if OSTEOPOROTIC_WOMAN in line and "904419" in line
    ]
    starts = sorted({dt.date.fromisoformat(r["authoredOn"][:10]) for r in requests})
    assert intervals.height == len(starts) > 10
    assert sorted(intervals.get_column("interval_start").to_list()) == starts
    assert all(drugs == ["alendronate"] for drugs in intervals.get_column("drugs").to_list())

    gaps = pl.read_parquet(out / "care_gaps.parquet")
    assert gaps.filter(pl.col("patient_id").is_in([DIED_1989, DIED_1994])).is_empty()  # the dead have no gap
    assert gaps.filter(pl.col("patient_id") == UNTREATED_WOMAN).get_column("gap").to_list() == ["untreated_high_risk"]
    # treated with alendronate: no untreated or post-fracture gap, only her DXA is due again
    assert gaps.filter(pl.col("patient_id") == OSTEOPOROTIC_WOMAN).get_column("gap").to_list() == ["overdue_dxa"]
    printed = capsys.readouterr().out
    assert "FHIR Conditions: 4 fractures among 555 conditions" in printed


def test_with_the_default_fhir_profile_an_unsited_synthea_t_score_is_still_quarantined(tmp_path, capsys):
    """Quarantine stays the default: the same export under ``fhir_bulk`` quarantines each DXA result."""
    folder = _export(tmp_path / "export")
    assert _screen(folder, tmp_path / "out", "--max-reject-rate", "1") == 0
    quarantine = pl.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert quarantine.filter(pl.col("check") == "site_stated").height == 6
    assert (
        not (tmp_path / "out" / "screening.parquet").exists()
        or pl.read_parquet(tmp_path / "out" / "screening.parquet").is_empty()
    )


def test_the_shipped_unsited_t_sample_is_the_synthea_export_and_screens_as_it(tmp_path, capsys):
    """``data/samples/fhir_bulk_unsited_t_sample``: the Synthea export cut to its fractures, osteoporosis and
    alendronate (and a few others), with the DXA results above; it gives the same decisions and gaps."""
    sample = data_dir() / "samples" / "fhir_bulk_unsited_t_sample"
    assert _screen(sample, tmp_path / "sample", "--profile", "fhir_bulk_unsited_t") == 0
    assert "FHIR Conditions: 4 fractures among 17 conditions" in capsys.readouterr().out  # as the guide says
    guide = Path(__file__).resolve().parents[2] / "docs" / "guides" / "own-exports.md"
    readme = " ".join(guide.read_text(encoding="utf-8").split())
    assert "--scans data/samples/fhir_bulk_unsited_t_sample --profile fhir_bulk_unsited_t" in readme
    assert "4 fractures among 17 conditions" in readme
    assert _screen(_export(tmp_path / "export"), tmp_path / "full", "--profile", "fhir_bulk_unsited_t") == 0
    for table, key in (("screening", ["patient_id", "exam_date"]), ("care_gaps", ["patient_id", "gap"])):
        # the exam ids are the encounters', which the sample names otherwise
        sample_rows = pl.read_parquet(tmp_path / "sample" / f"{table}.parquet").drop("exam_id", strict=False)
        full_rows = pl.read_parquet(tmp_path / "full" / f"{table}.parquet").drop("exam_id", strict=False)
        assert sample_rows.sort(key).equals(full_rows.sort(key)), table
