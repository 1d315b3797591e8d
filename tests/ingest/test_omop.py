"""Issue 31 (first step): an OMOP CDM as the screen's input, ``osteo screen --omop SOURCE``, from a folder of CDM
tables (Parquet or CSV) or a DuckDB file. The CDM is OHDSI's Eunomia Synthea27Nj (tests/data/omop_synthea27nj,
Apache-2.0): its DXA T-score is LOINC 38265-5 used as "any T-score", with ``value_as_number`` NULL and the value only
in ``value_source_value``. Before: no way to read a CDM at all (``--omop`` did not exist)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from osteo_core.cli import main

CDM = Path(__file__).resolve().parent.parent / "data" / "omop_synthea27nj"
AS_OF = "2022-10-10"  # the CDM's release date (cdm_source)
PERSON_7 = "34f08c59-6fb0-6cf4-f22f-7c425faaba09"  # hip fracture 2010, T -2.7 and alendronate 2018, died 2019-05-28
TABLES = ("person", "measurement", "concept", "death", "drug_exposure", "condition_occurrence", "procedure_occurrence")


def _screen(source: Path, out: Path, *more: str) -> int:
    return main(["screen", "--omop", str(source), "--out", str(out), "--as-of", AS_OF, *more])


def _run_table(out: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(sorted((out / "current" / table).glob("*.parquet")))


def _published(out: Path) -> dict[str, pl.DataFrame]:
    tables = ("screening", "care_gaps", "patients", "treatment_intervals")
    return {t: pl.read_parquet(out / f"{t}.parquet").drop("rule_set", strict=False) for t in tables}


def _duckdb_file(path: Path, schema: str = "main") -> Path:
    con = duckdb.connect(str(path))
    if schema != "main":
        con.execute(f"CREATE SCHEMA {schema}")
    for file in CDM.glob("*.parquet"):
        con.execute(f"CREATE TABLE {schema}.{file.stem} AS SELECT * FROM read_parquet('{file}')")
    con.close()
    return path


@pytest.fixture(scope="module")
def parquet_run(tmp_path_factory, prefect_engine) -> Path:
    out = tmp_path_factory.mktemp("omop") / "out"
    assert _screen(CDM, out, "--profile", "omop_unsited_t") == 0
    return out


def test_the_eunomia_cdm_screens_from_parquet_with_its_source_values_read(parquet_run):
    manifest = json.loads((parquet_run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["profile"] == "omop_unsited_t" and manifest["omop"]["source"] == str(CDM)
    assert manifest["omop"]["values_from_source_value"] == 3  # value_as_number NULL: read from the source value
    assert manifest["rows"]["quarantined"] == 0
    screening = pl.read_parquet(parquet_run / "screening.parquet").sort("exam_date")
    assert screening.select("lowest_t_score", "lowest_t_site").rows() == [
        (-0.4, "unspecified"),
        (-2.7, "unspecified"),
        (-0.3, "unspecified"),
    ]
    his = screening.filter(pl.col("patient_id") == PERSON_7).sort("exam_date")
    assert his.get_column("who_category").to_list() == ["normal", "severe_osteoporosis"]  # the 2010 hip fracture


def test_person_7_is_read_whole_and_being_dead_has_no_gap(parquet_run):
    fractures = _run_table(parquet_run, "fractures").filter(pl.col("patient_id") == PERSON_7)
    assert ("hip", "2010-08-01") in {(r["site"], str(r["fracture_date"])) for r in fractures.iter_rows(named=True)}
    drugs = _run_table(parquet_run, "medications").filter(pl.col("patient_id") == PERSON_7)
    assert drugs.select("drug", pl.col("event_date").cast(pl.Utf8)).rows() == [("alendronate", "2018-08-14")]
    procedures = _run_table(parquet_run, "dxa_procedures")
    assert procedures.height == 3  # SNOMED 312681000 "Bone density scan"
    assert pl.read_parquet(parquet_run / "care_gaps.parquet").filter(pl.col("patient_id") == PERSON_7).is_empty()
    population = _run_table(parquet_run, "population").filter(pl.col("patient_id") == PERSON_7)
    assert population.select(pl.col("death_date").cast(pl.Utf8), "alive").rows() == [("2019-05-28", False)]


def test_a_duckdb_file_and_a_csv_folder_give_the_same_published_tables(parquet_run, tmp_path):
    database = _duckdb_file(tmp_path / "cdm.duckdb")
    assert _screen(database, tmp_path / "db", "--profile", "omop_unsited_t") == 0
    in_schema = _duckdb_file(tmp_path / "cdm_schema.duckdb", schema="cdm")
    assert _screen(in_schema, tmp_path / "schema", "--profile", "omop_unsited_t", "--omop-schema", "cdm") == 0
    csv_folder = tmp_path / "csv"
    csv_folder.mkdir()
    for file in CDM.glob("*.parquet"):
        pl.read_parquet(file).write_csv(csv_folder / f"{file.stem}.csv")
    assert _screen(csv_folder, tmp_path / "csv_out", "--profile", "omop_unsited_t") == 0
    expected = _published(parquet_run)
    for out in (tmp_path / "db", tmp_path / "schema", tmp_path / "csv_out"):
        for table, frame in _published(out).items():
            assert frame.equals(expected[table]), (out.name, table)


def test_with_the_omop_profile_an_unsited_t_score_is_quarantined_as_with_fhir_bulk(tmp_path, capsys):
    assert _screen(CDM, tmp_path / "out") == 3  # every exam quarantined: above the 5 % limit
    err = capsys.readouterr().err
    assert "site_stated" in err
    # review: the refusal said nothing of the profile that reads such T-scores
    assert "read by a profile that uses it: fhir_bulk_unsited_t, omop_unsited_t" in err


def _cdm_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "cdm"
    shutil.copytree(CDM, copy, ignore=shutil.ignore_patterns("*.md"))
    return copy


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda cdm: (cdm / "person.parquet").unlink(), "table 'person' missing"),
        (
            lambda cdm: (
                pl.read_parquet(cdm / "measurement.parquet")
                .drop("value_source_value")
                .write_parquet(cdm / "measurement.parquet")
            ),
            "table 'measurement': column 'value_source_value' missing",
        ),
        (
            lambda cdm: (
                pl.read_parquet(cdm / "concept.parquet")
                .filter(pl.col("vocabulary_id") != "LOINC")
                .write_parquet(cdm / "concept.parquet")
            ),
            "table 'concept' holds no LOINC concept",
        ),
        (lambda cdm: (cdm / "death.parquet").write_bytes(b"not parquet"), "cannot be read as an OMOP CDM"),
    ],
)
def test_a_bad_cdm_is_one_line_naming_the_table_and_column(tmp_path, capsys, damage, message):
    cdm = _cdm_copy(tmp_path)
    damage(cdm)
    assert _screen(cdm, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(cdm) in err
    assert not (tmp_path / "out").exists()


def test_the_cdm_is_the_only_input(tmp_path, capsys):
    scans = tmp_path / "scans.csv"
    scans.write_text("patient_id\n", encoding="utf-8")
    assert main(["screen", "--omop", str(CDM), "--scans", str(scans), "--out", str(tmp_path / "o")]) == 2
    assert "give it alone, without --scans" in capsys.readouterr().err
    assert main(["screen", "--out", str(tmp_path / "o")]) == 2
    assert "--scans PATH (or --omop SOURCE) is required" in capsys.readouterr().err


def test_birth_dates_missing_a_month_or_day_are_put_mid_period_and_counted(tmp_path):
    cdm = _cdm_copy(tmp_path)
    person = pl.read_parquet(cdm / "person.parquet")
    person = person.with_columns(
        pl.when(pl.col("person_id") == 7).then(None).otherwise(pl.col("month_of_birth")).alias("month_of_birth"),
        pl.when(pl.col("person_id").is_in([7, 20])).then(None).otherwise(pl.col("day_of_birth")).alias("day_of_birth"),
    )
    person.write_parquet(cdm / "person.parquet")
    assert _screen(cdm, tmp_path / "out", "--profile", "omop_unsited_t") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["omop"]["birth_dates_imputed"] == 2  # a NULL year (nothing to complete) is never counted
    roster = _run_table(tmp_path / "out", "population").filter(pl.col("patient_id") == PERSON_7)
    assert str(roster.get_column("birth_date").item()) == "1938-07-01"  # month and day unknown: the year's middle


def test_person_ids_stand_in_when_the_source_values_are_not_distinct(tmp_path):
    cdm = _cdm_copy(tmp_path)
    person = pl.read_parquet(cdm / "person.parquet").with_columns(pl.lit("same").alias("person_source_value"))
    person.write_parquet(cdm / "person.parquet")
    assert _screen(cdm, tmp_path / "out", "--profile", "omop_unsited_t") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["omop"]["patient_ids_from_person_id"] == 1
    screening = pl.read_parquet(tmp_path / "out" / "screening.parquet")
    assert set(screening.get_column("patient_id")) == {"7", "20"}


def test_the_shipped_sample_is_the_eunomia_cdm_as_the_readme_runs_it(parquet_run, tmp_path):
    from osteo_core.resources import data_dir

    guide = Path(__file__).resolve().parents[2] / "docs" / "guides" / "own-exports.md"
    readme = " ".join(guide.read_text(encoding="utf-8").split())
    assert "osteo screen --omop data/samples/omop_sample --profile omop_unsited_t" in readme
    assert _screen(data_dir() / "samples" / "omop_sample", tmp_path / "out", "--profile", "omop_unsited_t") == 0
    for table, frame in _published(tmp_path / "out").items():
        assert frame.equals(_published(parquet_run)[table]), table


def test_a_renumbered_cdm_is_refused_in_one_line_by_the_installed_command(tmp_path):
    """Review: the refusal was followed by ~40 lines of "nanobind: leaked 28 instances" (a DuckDB object kept alive
    to interpreter exit by the refusal's traceback)."""
    import os
    import subprocess
    import sys

    cdm = _cdm_copy(tmp_path)
    person = pl.read_parquet(cdm / "person.parquet").with_columns(pl.lit("x").alias("person_source_value"))
    person.write_parquet(cdm / "person.parquet")  # person_id is the patient id
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")} | {
        "PREFECT_HOME": str(tmp_path / "prefect")
    }
    osteo = [str(Path(sys.executable).parent / "osteo"), "screen", "--omop", str(cdm), "--profile", "omop_unsited_t"]
    first = subprocess.run(
        [*osteo, "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, check=False
    )
    assert first.returncode == 0, first.stderr
    for table in ("person", "measurement", "death", "drug_exposure", "condition_occurrence", "procedure_occurrence"):
        frame = pl.read_parquet(cdm / f"{table}.parquet")
        frame.with_columns(pl.col("person_id") + 1000).write_parquet(cdm / f"{table}.parquet")
    again = subprocess.run(
        [*osteo, "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, check=False
    )
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "no longer names the same persons" in again.stderr


def test_a_duckdb_file_without_the_schema_asked_for_names_the_schemas_it_has(tmp_path, capsys):
    """Review: a wrong or missing --omop-schema said "table 'person' missing"."""
    database = _duckdb_file(tmp_path / "cdm.duckdb", schema="cdm54")
    for more in ([], ["--omop-schema", "nope"]):
        assert _screen(database, tmp_path / "out", "--profile", "omop_unsited_t", *more) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "the file's schemas: cdm54" in err


def test_a_source_value_that_is_not_a_number_is_quarantined_as_written_never_dropped(tmp_path):
    """Review: '-2,7', '<-2.5' and '' became NULL, so the exam was quarantined for having no score, with no word of
    the value that could not be read."""
    cdm = _cdm_copy(tmp_path)
    measurement = pl.read_parquet(cdm / "measurement.parquet")
    dxa = pl.col("measurement_concept_id") == 3049273  # Eunomia's LOINC 38265-5
    written = pl.col("value_source_value").replace({"-2.7": "-2,7", "-0.4": "<-2.5"})
    measurement.with_columns(
        pl.when(dxa).then(written).otherwise(pl.col("value_source_value")).alias("value_source_value")
    ).write_parquet(cdm / "measurement.parquet")
    assert _screen(cdm, tmp_path / "out", "--profile", "omop_unsited_t", "--max-reject-rate", "1") == 0
    quarantine = pl.read_parquet(tmp_path / "out" / "quarantine.parquet").filter(pl.col("column") == "unspecified_t")
    assert sorted(quarantine.get_column("value").to_list()) == ["-2,7", "<-2.5"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["omop"]["values_from_source_value"] == 3


def test_a_person_without_a_birth_year_is_not_counted_as_an_imputed_birth_date(tmp_path):
    """Review: a NULL year_of_birth was counted among the imputed birth dates, though nothing could be imputed (the
    screen quarantines that person's rows: birth date required)."""
    cdm = _cdm_copy(tmp_path)
    person = pl.read_parquet(cdm / "person.parquet")
    unknown = [
        pl.when(pl.col("person_id") == 7).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("year_of_birth", "month_of_birth", "day_of_birth")
    ]  # nothing of the birth date known
    person.with_columns(unknown).write_parquet(cdm / "person.parquet")
    assert _screen(cdm, tmp_path / "out", "--profile", "omop_unsited_t", "--max-reject-rate", "1") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["omop"]["birth_dates_imputed"] == 0
    quarantine = pl.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert PERSON_7 in set(quarantine.get_column("patient_id").drop_nulls())  # his rows: no birth date
