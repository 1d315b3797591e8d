"""Issue 31, item 4's row accounting per CDM table: every row of each table the screen reads is read or counted as
not read, by reason, in the manifest (``omop.tables``) and the summary; the screen's quarantine says which rows
read it set aside. Before: the manifest counted nothing per table, and a measurement, drug or condition row whose
person_id is not in ``person`` was dropped without a word (an inner join); a repeated person_id doubled every event
of that person. And the CDM is opened twice per ``osteo screen --omop`` (the checks, the extraction), not four
times (before: the as-of date, the checks before the engine, the checks under the lock, the extraction)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from osteo_core import reference
from osteo_core.cli import main
from osteo_core.ingest import omop

CDM = Path(__file__).resolve().parent.parent / "data" / "omop_synthea27nj"
AS_OF = "2022-10-10"
READ = {  # CDM table → the input kind its rows read go to, as extracted into the run
    "measurement": "omop/scans/measurement.parquet",
    "drug_exposure": "omop/meds/drug_exposure.parquet",
    "condition_occurrence": "omop/fractures/condition_occurrence.parquet",
    "procedure_occurrence": "omop/dxa_procedures/procedure_occurrence.parquet",
}


def _screen(source: Path, out: Path, *more: str) -> int:
    return main(
        ["screen", "--omop", str(source), "--out", str(out), "--as-of", AS_OF, "--profile", "omop_unsited_t", *more]
    )


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _cdm_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "cdm"
    shutil.copytree(CDM, copy, ignore=shutil.ignore_patterns("*.md"))
    return copy


def _dxa_ids(cdm: Path) -> list[int]:
    grid = reference.dxa_loinc().get_column("code").to_list()  # the shared code table, as the reader's
    concept = pl.read_parquet(cdm / "concept.parquet")
    dxa = concept.filter((pl.col("vocabulary_id") == "LOINC") & pl.col("concept_code").is_in(grid))
    return dxa.get_column("concept_id").to_list()


@pytest.fixture(scope="module")
def eunomia(tmp_path_factory, prefect_engine) -> Path:
    out = tmp_path_factory.mktemp("omop_accounting") / "out"
    assert _screen(CDM, out) == 0
    return out


def test_every_row_of_each_table_read_is_read_or_not_read_by_reason(eunomia):
    tables = _manifest(eunomia)["omop"]["tables"]
    assert set(tables) == {"person", "death", *READ}
    for table, entry in tables.items():
        assert entry["rows"] == pl.scan_parquet(CDM / f"{table}.parquet").select(pl.len()).collect().item(), table
        assert entry["rows"] == entry["read"] + sum(entry["not_read"].values()), table
    # the rows read are those of a DXA concept, counted independently of the reader, and they are what was extracted
    measurement = pl.read_parquet(CDM / "measurement.parquet")
    dxa = measurement.filter(pl.col("measurement_concept_id").is_in(_dxa_ids(CDM)))
    assert tables["measurement"]["read"] == dxa.height > 0
    assert tables["measurement"]["not_read"] == {"not_a_dxa_result": measurement.height - dxa.height,
                                                 omop.UNKNOWN_PERSON: 0}  # fmt: skip
    run = (eunomia / "manifest.json").resolve().parent
    for table, file in READ.items():
        assert tables[table]["file"] == file
        assert pl.read_parquet(run / file).height == tables[table]["read"], table
        assert tables[table]["quarantined"] == 0
    assert tables["person"] == {"rows": 28, "read": 28, "not_read": {}, "file": "omop/scans/person.parquet",
                                "quarantined": 0}  # fmt: skip
    assert tables["death"]["read"] == 3


def test_the_summary_says_what_was_read_of_each_table(tmp_path, capsys):
    assert _screen(CDM, tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "CDM rows read: measurement 3 of 10,040, person 28 of 28, death 3 of 3, drug_exposure 1 of 883" in out
    assert "not in table 'person'" not in out


def test_rows_of_a_person_not_in_the_person_table_are_counted_not_dropped_in_silence(tmp_path, capsys):
    cdm = _cdm_copy(tmp_path)
    measurement = pl.read_parquet(cdm / "measurement.parquet")
    dxa = measurement.filter(pl.col("measurement_concept_id").is_in(_dxa_ids(cdm)))
    orphans = dxa.with_columns(pl.lit(999_999, dtype=dxa.schema["person_id"]).alias("person_id"))
    pl.concat([measurement, orphans]).write_parquet(cdm / "measurement.parquet")
    drugs = pl.read_parquet(cdm / "drug_exposure.parquet")
    run_before = _manifest_of(tmp_path / "clean", CDM)["drug_exposure"]
    read_drug = pl.read_parquet((tmp_path / "clean" / "manifest.json").resolve().parent / READ["drug_exposure"])
    assert read_drug.height == run_before["read"] == 1
    alendronate = drugs.filter(pl.col("person_id") == 7)  # his exposures: one is the one read
    orphan_drugs = alendronate.with_columns(pl.lit(888_888, dtype=drugs.schema["person_id"]).alias("person_id"))
    pl.concat([drugs, orphan_drugs]).write_parquet(cdm / "drug_exposure.parquet")
    capsys.readouterr()
    assert _screen(cdm, tmp_path / "out") == 0
    tables = _manifest(tmp_path / "out")["omop"]["tables"]
    assert tables["measurement"]["not_read"][omop.UNKNOWN_PERSON] == orphans.height == 3
    assert tables["measurement"]["read"] == 3  # his own, not the orphans
    assert tables["drug_exposure"]["not_read"][omop.UNKNOWN_PERSON] == 1
    assert tables["drug_exposure"]["rows"] == drugs.height + orphan_drugs.height
    for entry in tables.values():
        assert entry["rows"] == entry["read"] + sum(entry["not_read"].values())
    out = capsys.readouterr().out
    assert "CDM rows of a person_id not in table 'person' (not read): measurement 3, drug_exposure 1" in out
    assert "999999" not in out and "888888" not in out  # counts, never the ids


def _manifest_of(out: Path, cdm: Path) -> dict:
    assert _screen(cdm, out) == 0
    return _manifest(out)["omop"]["tables"]


def test_a_second_record_of_a_death_is_counted_and_the_earliest_date_kept(tmp_path):
    cdm = _cdm_copy(tmp_path)
    death = pl.read_parquet(cdm / "death.parquet")
    later = death.filter(pl.col("person_id") == 7).with_columns(pl.col("death_date").dt.offset_by("3d"))
    pl.concat([later, death]).write_parquet(cdm / "death.parquet")
    tables = _manifest_of(tmp_path / "out", cdm)
    assert tables["death"] == {
        "rows": 4,
        "read": 3,
        "not_read": {omop.LATER_DEATH: 1, omop.UNKNOWN_PERSON: 0},
    }
    population = pl.read_parquet(sorted((tmp_path / "out" / "current" / "population").glob("*.parquet")))
    dead = population.filter(pl.col("death_date").is_not_null())
    assert dead.height == 3 and "2019-05-28" in {str(d) for d in dead.get_column("death_date")}


def test_quarantined_rows_are_said_per_table(tmp_path):
    cdm = _cdm_copy(tmp_path)
    measurement = pl.read_parquet(cdm / "measurement.parquet")
    dxa = pl.col("measurement_concept_id").is_in(_dxa_ids(cdm))
    written = pl.col("value_source_value").replace({"-2.7": "-2,7", "-0.4": "<-2.5"})
    measurement.with_columns(
        pl.when(dxa).then(written).otherwise(pl.col("value_source_value")).alias("value_source_value")
    ).write_parquet(cdm / "measurement.parquet")
    assert _screen(cdm, tmp_path / "out", "--max-reject-rate", "1") == 0
    tables = _manifest(tmp_path / "out")["omop"]["tables"]
    assert tables["measurement"]["read"] == 3 and tables["measurement"]["quarantined"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: pl.concat([p, p.head(1)]), "table 'person': 1 person_id(s) repeated"),
        (
            lambda p: p.with_columns(
                pl.when(pl.col("person_id") == 7).then(None).otherwise(pl.col("person_id")).alias("person_id")
            ),
            "table 'person': 1 row(s) without a person_id",
        ),
    ],
)
def test_a_person_table_whose_person_id_is_not_a_key_is_refused(tmp_path, capsys, change, message):
    """Before: a repeated person_id doubled each of that person's events (exams counted twice); a person without one
    was a patient with no event."""
    cdm = _cdm_copy(tmp_path)
    change(pl.read_parquet(cdm / "person.parquet")).write_parquet(cdm / "person.parquet")
    assert _screen(cdm, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(cdm) in err


def test_the_cdm_is_opened_twice_per_screen(tmp_path, monkeypatch):
    opened: list[bool] = []
    real = omop.open_cdm

    def counted(source, schema=None, events=True):
        opened.append(events)
        return real(source, schema, events)

    monkeypatch.setattr(omop, "open_cdm", counted)
    assert main(["screen", "--omop", str(CDM), "--out", str(tmp_path / "out"), "--profile", "omop_unsited_t"]) == 0
    assert opened == [False, True]  # the checks (and the release date as the as-of date), then the extraction
    assert _manifest(tmp_path / "out")["as_of"] == AS_OF
    opened.clear()  # a second screen probes the CDM again: a probe lasts one screen
    assert main(["screen", "--omop", str(CDM), "--out", str(tmp_path / "out"), "--profile", "omop_unsited_t"]) == 0
    assert opened == [False, True]


def test_a_fracture_of_a_toe_is_counted_not_quarantined_and_a_cdm_without_fractures_screens(tmp_path):
    """The cross-shape property (tests/pipeline/test_cross_shape.py): a SNOMED CT toe fracture was read from the CDM
    and quarantined (site 'toe'), where a FHIR Condition of it is counted, not read; and a CDM whose conditions hold
    no fracture was refused ("no rows: the fractures export has a header but no data"). Found on the way: a SNOMED
    CT condition with a NULL condition_source_value lost its site (read as a fracture of no site, then quarantined)."""
    cdm = _cdm_copy(tmp_path)
    snomed = reference.snomed_conditions()
    fragile = [site for site, counts in reference.fracture_codes()["sites"].items() if counts]
    toe = snomed.filter(~pl.col("site").is_in(fragile) & pl.col("site").is_not_null()).row(0, named=True)
    concept = pl.read_parquet(cdm / "concept.parquet")
    new = concept.head(1).with_columns(
        pl.lit(2_000_000_001, dtype=concept.schema["concept_id"]).alias("concept_id"),
        pl.lit("SNOMED").alias("vocabulary_id"),
        pl.lit(toe["code"]).alias("concept_code"),
    )
    pl.concat([concept, new]).write_parquet(cdm / "concept.parquet")
    conditions = pl.read_parquet(cdm / "condition_occurrence.parquet")
    toe_row = conditions.head(1).with_columns(
        pl.lit(2_000_000_001, dtype=conditions.schema["condition_concept_id"]).alias("condition_concept_id"),
        pl.lit(None, dtype=conditions.schema["condition_source_value"]).alias("condition_source_value"),
    )
    read_before = _manifest_of(tmp_path / "before", CDM)["condition_occurrence"]["read"]
    assert read_before > 0
    kept = pl.concat([toe_row, conditions.filter(~pl.col("condition_concept_id").is_in(_fracture_ids(cdm)))])
    kept.write_parquet(cdm / "condition_occurrence.parquet")
    tables = _manifest_of(tmp_path / "out", cdm)
    assert tables["condition_occurrence"]["read"] == 0
    assert tables["condition_occurrence"]["not_read"][omop.NOT_FRAGILITY_SITE] == 1
    assert _manifest(tmp_path / "out")["rows_by_input"]["fractures"]["quarantined"] == 0


def _fracture_ids(cdm: Path) -> list[int]:
    codes = reference.snomed_conditions().get_column("code").to_list()
    concept = pl.read_parquet(cdm / "concept.parquet")
    known = concept.filter((pl.col("vocabulary_id") == "SNOMED") & pl.col("concept_code").is_in(codes))
    return known.get_column("concept_id").to_list()


def test_a_cdm_without_a_dxa_result_is_refused_naming_the_cdm(tmp_path, capsys):
    cdm = _cdm_copy(tmp_path)
    measurement = pl.read_parquet(cdm / "measurement.parquet")
    measurement.filter(~pl.col("measurement_concept_id").is_in(_dxa_ids(cdm))).write_parquet(
        cdm / "measurement.parquet"
    )
    assert _screen(cdm, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(cdm) in err and "no DXA result" in err and "runs/" not in err


def test_a_dxa_procedure_that_fails_its_checks_is_listed_in_the_quarantine(tmp_path):
    """Found by the registry work of issue 33: a DXA procedure row that failed validation was counted as quarantined
    (rows_by_input) but never written to the quarantine table: its file, row, column and check were nowhere."""
    cdm = _cdm_copy(tmp_path)
    procedures = pl.read_parquet(cdm / "procedure_occurrence.parquet")
    dxa = _manifest_of(tmp_path / "before", CDM)["procedure_occurrence"]["read"]
    assert dxa > 0
    run = (tmp_path / "before" / "manifest.json").resolve().parent
    first = pl.read_parquet(run / READ["procedure_occurrence"]).row(0, named=True)
    person = pl.read_parquet(cdm / "person.parquet").filter(pl.col("person_source_value") == first["patient_id"])
    undated = (pl.col("person_id") == person.get_column("person_id").item()) & (
        pl.col("procedure_date") == dt.date.fromisoformat(first["procedure_date"])
    )
    procedures.with_columns(
        pl.when(undated).then(None).otherwise(pl.col("procedure_date")).alias("procedure_date")
    ).write_parquet(cdm / "procedure_occurrence.parquet")
    assert _screen(cdm, tmp_path / "out", "--max-reject-rate", "1") == 0
    manifest = _manifest(tmp_path / "out")
    quarantined = manifest["rows_by_input"]["dxa_procedures"]["quarantined"]
    quarantine = pl.read_parquet(tmp_path / "out" / "quarantine.parquet").filter(pl.col("input") == "dxa_procedures")
    assert quarantined >= 1 and quarantine.select("source_row").n_unique() == quarantined
    assert set(quarantine.get_column("column")) == {"procedure_date"}
    assert manifest["omop"]["tables"]["procedure_occurrence"]["quarantined"] == quarantined
