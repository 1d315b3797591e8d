"""Issue 31 §3, people as the CDM knows them, through ``osteo screen --omop`` on copies of OHDSI's Eunomia
Synthea27Nj (tests/data/omop_synthea27nj) changed per test:

- which id: ``--omop-patient-id person_source_value|person_id`` (default: person_source_value when every person
  has a distinct one), the other kept beside it as ``mrn`` (patients table, worklist); a run whose ids no longer
  match the published OMOP run's (the other column, or a CDM rebuilt with new person_ids) is exit 2 unless
  ``--accept-input-change``;
- as of the CDM's release date (``cdm_source``) without ``--as-of``; a later ``--as-of`` says how far past it;
- ``--omop-enrolment observation_period``: the observation periods as the roster's coverage spans.

Before: no such options (exit 2 from argparse), no ``mrn`` from a CDM, an OMOP screen without ``--as-of`` was as
of today, every person enrolled from birth whatever the CDM."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from osteo_core.cli import main
from osteo_core.cli.parser import build_parser

CDM = Path(__file__).resolve().parent.parent / "data" / "omop_synthea27nj"
RELEASE = "2022-10-10"  # cdm_source.source_release_date
PERSON_7 = "34f08c59-6fb0-6cf4-f22f-7c425faaba09"  # person_id 7: T -2.7 in 2018 (died 2019: his death row is dropped)
PERSON_TABLES = (  # every table of the copy with a person_id column
    "person", "measurement", "death", "drug_exposure", "condition_occurrence", "procedure_occurrence",
    "observation_period", "visit_occurrence",
)  # fmt: skip

pytestmark = pytest.mark.usefixtures("prefect_engine")


def _cdm_copy(tmp_path: Path, name: str = "cdm") -> Path:
    copy = tmp_path / name
    shutil.copytree(CDM, copy, ignore=shutil.ignore_patterns("*.md"))
    return copy


def _change(cdm: Path, table: str, change) -> None:
    path = cdm / f"{table}.parquet"
    change(pl.read_parquet(path)).write_parquet(path)


def _alive_7(tmp_path: Path, name: str = "cdm") -> Path:
    """A copy where person 7 did not die: his 2018 exam leaves him an overdue_dxa gap on the release date."""
    cdm = _cdm_copy(tmp_path, name)
    _change(cdm, "death", lambda d: d.filter(pl.col("person_id") != 7))
    return cdm


def _screen(cdm: Path, out: Path, *more: str) -> int:
    return main(["screen", "--omop", str(cdm), "--profile", "omop_unsited_t", "--out", str(out), *more])


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _population(out: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((out / "current" / "population").glob("*.parquet"))).sort("patient_id")


def _worklist(out: Path, capsys) -> pl.DataFrame:
    capsys.readouterr()
    assert main(["worklist", "--out", str(out), "--format", "csv"]) == 0
    return pl.read_csv(capsys.readouterr().out.encode(), infer_schema=False)


def test_either_id_is_patient_id_and_the_other_is_shown_beside_it_as_mrn(tmp_path, capsys):
    cdm = _alive_7(tmp_path)
    assert _screen(cdm, tmp_path / "by_id", "--omop-patient-id", "person_id") == 0
    assert _manifest(tmp_path / "by_id")["omop"]["patient_id_column"] == "person_id"
    shown = _worklist(tmp_path / "by_id", capsys)
    assert shown.columns[:2] == ["patient_id", "mrn"]
    assert shown.select("patient_id", "mrn", "gap").rows() == [("7", PERSON_7, "overdue_dxa")]
    patients = pl.read_parquet(tmp_path / "by_id" / "patients.parquet")
    assert patients.filter(pl.col("patient_id") == "7").get_column("mrn").to_list() == [PERSON_7]
    assert patients.height == 28  # every person: each has a person_source_value, as every FHIR Patient with an MRN

    capsys.readouterr()
    assert _screen(cdm, tmp_path / "by_source") == 0  # the default: every person has a distinct source value
    assert "patient_id: the CDM's person_source_value (person_id beside it as mrn)" in capsys.readouterr().out
    assert _manifest(tmp_path / "by_source")["omop"]["patient_id_column"] == "person_source_value"
    shown = _worklist(tmp_path / "by_source", capsys)
    assert shown.select("patient_id", "mrn", "gap").rows() == [(PERSON_7, "7", "overdue_dxa")]


def test_person_source_value_asked_where_persons_share_one_is_exit_2_with_counts_only(tmp_path, capsys):
    cdm = _cdm_copy(tmp_path)
    person = pl.read_parquet(cdm / "person.parquet")
    kept = person.filter(pl.col("person_id") > 4).get_column("person_source_value").to_list()
    _change(
        cdm,
        "person",
        lambda p: p.with_columns(
            pl.when(pl.col("person_id").is_in([1, 2, 3]))
            .then(pl.lit("shared-id"))
            .when(pl.col("person_id") == 4)
            .then(pl.lit("  "))
            .otherwise(pl.col("person_source_value"))
            .alias("person_source_value")
        ),
    )
    assert _screen(cdm, tmp_path / "out", "--omop-patient-id", "person_source_value") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--omop-patient-id: person_source_value is not a distinct id in this CDM" in err
    assert "3 person(s) share theirs with another and 1 have none" in err
    assert "shared-id" not in err and not any(value in err for value in kept)  # how many, never which
    assert not (tmp_path / "out").exists()
    assert _screen(cdm, tmp_path / "default", "--as-of", RELEASE) == 0  # by default: person_id, as before
    assert _manifest(tmp_path / "default")["omop"]["patient_id_column"] == "person_id"


def test_a_run_with_the_other_id_column_is_refused_unless_the_change_is_accepted(tmp_path, capsys):
    cdm = _cdm_copy(tmp_path)
    out = tmp_path / "out"
    assert _screen(cdm, out) == 0
    first = _manifest(out)["run_id"]
    capsys.readouterr()
    assert _screen(cdm, out, "--omop-patient-id", "person_id") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--accept-input-change" in err
    assert "patient ids are the CDM's person_id, the published run's were its person_source_value" in err
    assert _manifest(out)["run_id"] == first  # nothing published
    assert len(list((out / "runs").iterdir())) == 1  # nor left behind

    assert _screen(cdm, out, "--omop-patient-id", "person_id", "--accept-input-change") == 0
    manifest = _manifest(out)
    assert manifest["omop"]["patient_id_column"] == "person_id"
    assert manifest["omop"]["patient_ids_changed"] == {
        "previous_run_id": first,
        "previous_patient_id_column": "person_source_value",
    }
    assert "warning: patient ids are the CDM's person_id, the last published run's its person_source_value" in (
        capsys.readouterr().err
    )


def _renumbered(tmp_path: Path) -> Path:
    """The same CDM rebuilt with new person_ids (29 - id): the dense ids 1…28 all still exist, other persons'."""
    cdm = _cdm_copy(tmp_path, "rebuilt")
    for table in PERSON_TABLES:
        _change(cdm, table, lambda t: t.with_columns((29 - pl.col("person_id")).cast(pl.Int32).alias("person_id")))
    return cdm


def test_a_cdm_rebuilt_with_new_person_ids_is_refused_unless_the_change_is_accepted(tmp_path, capsys):
    out = tmp_path / "out"
    assert _screen(_cdm_copy(tmp_path), out, "--omop-patient-id", "person_id") == 0
    assert _screen(_cdm_copy(tmp_path, "again"), out, "--omop-patient-id", "person_id") == 0  # the same ids: fine
    published = _manifest(out)["run_id"]
    rebuilt = _renumbered(tmp_path)
    capsys.readouterr()
    assert _screen(rebuilt, out, "--omop-patient-id", "person_id") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (
        "only 0 of this run's 2 patients with a DXA result are in the published run's population with the same birth"
        " date: the CDM's person_id no longer names the same persons" in err
    )
    assert "9" not in err.replace(published, "") and "22" not in err.replace(published, "")  # no id of theirs
    assert _manifest(out)["run_id"] == published

    assert _screen(rebuilt, out, "--omop-patient-id", "person_id", "--accept-input-change") == 0
    changed = _manifest(out)["omop"]["patient_ids_changed"]
    assert changed == {"previous_run_id": published, "patients_found": 0, "patients_with_a_result": 2}
    assert "only 0 of 2 patients with a DXA result found in the last published run" in capsys.readouterr().err


def test_without_as_of_an_omop_screen_is_as_of_the_cdms_release_date(tmp_path, capsys):
    cdm = _cdm_copy(tmp_path)
    _change(cdm, "cdm_source", lambda s: s.with_columns(pl.lit(dt.date(2022, 11, 30)).alias("source_release_date")))
    out = tmp_path / "out"
    assert _screen(cdm, out) == 0
    manifest = _manifest(out)
    assert manifest["as_of"] == "2022-11-30" and manifest["omop"]["release_date"] == "2022-11-30"
    assert "as of the CDM's release date 2022-11-30" in capsys.readouterr().out

    assert _screen(cdm, out, "--as-of", "2023-02-01") == 0
    assert _manifest(out)["as_of"] == "2023-02-01"
    assert "as of 2023-02-01: 63 days after the CDM's release date 2022-11-30" in capsys.readouterr().out
    # resolved before the run-order check: without --as-of, the release date is before the published run's day
    assert _screen(cdm, out) == 2
    assert "--as-of: 2022-11-30 is before the as-of date of the run published in" in capsys.readouterr().err

    (cdm / "cdm_source.parquet").unlink()  # no release date: as of today, said so
    assert _screen(cdm, tmp_path / "undated") == 0
    assert _manifest(tmp_path / "undated")["as_of"] == dt.date.today().isoformat()
    assert "the CDM gives no release date (cdm_source.source_release_date)" in capsys.readouterr().out

    # unchanged: any other screen without --as-of is as of today, a served one as of each run's day (blank)
    parser = build_parser()
    assert parser.parse_args(["screen", "--scans", "s.csv"]).as_of is None
    from osteo_core.cli.screen import screen_request
    from osteo_core.pipeline.resolve import as_of_date

    day = dt.date(2026, 3, 2)  # the day the screen starts (a served one: in its schedule's time zone)
    assert as_of_date(screen_request(parser.parse_args(["screen", "--scans", "s.csv"])), day) == day
    served = screen_request(parser.parse_args(["serve", "--cron", "0 6 * * 1", "--omop", str(cdm)]))
    assert served.as_of == "" and as_of_date(served, day) == day


def test_observation_periods_are_the_rosters_coverage_spans_when_asked(tmp_path, capsys):
    cdm = _cdm_copy(tmp_path)
    periods = pl.read_parquet(cdm / "observation_period.parquet")
    two_spans = periods.filter(pl.col("person_id") == 1).with_columns(
        pl.lit(dt.date(2000, 1, 1)).alias("observation_period_start_date"),
        pl.lit(dt.date(2005, 12, 31)).alias("observation_period_end_date"),
    )
    later = two_spans.with_columns(
        pl.lit(dt.date(2020, 1, 1)).alias("observation_period_start_date"),
        pl.lit(dt.date(2022, 12, 31)).alias("observation_period_end_date"),
        pl.lit(99).cast(periods.schema["observation_period_id"]).alias("observation_period_id"),
    )
    others = periods.filter(~pl.col("person_id").is_in([1, 2]))  # person 2: no period at all
    pl.concat([others, two_spans, later]).write_parquet(cdm / "observation_period.parquet")

    assert _screen(cdm, tmp_path / "birth") == 0  # the default: every living person enrolled from birth
    everyone = _population(tmp_path / "birth")
    assert everyone.height == 28 and everyone.filter(pl.col("alive")).get_column("enrolled").all()
    assert _manifest(tmp_path / "birth")["omop"]["enrolment"] == "birth"

    assert _screen(cdm, tmp_path / "periods", "--omop-enrolment", "observation_period") == 0
    manifest = _manifest(tmp_path / "periods")
    assert manifest["omop"]["enrolment"] == "observation_period"
    assert manifest["omop"]["observation_periods"] == 28 and manifest["omop"]["persons_without_observation_period"] == 1
    assert manifest["rows_by_input"]["population"]["rows_in"] == 28  # one row per period
    assert "enrolment: the CDM's 28 observation periods; 1 persons without one" in capsys.readouterr().out
    enrolled = _population(tmp_path / "periods")
    assert enrolled.height == 27  # person 2 has no period
    source = {r["person_id"]: r["person_source_value"] for r in pl.read_parquet(cdm / "person.parquet").to_dicts()}
    by_id = {r["patient_id"]: r for r in enrolled.to_dicts()}
    assert source[2] not in by_id
    assert (by_id[source[1]]["enrolled"], by_id[source[1]]["enrolled_since"]) == (True, dt.date(2020, 1, 1))
    assert by_id[source[3]]["enrolled"] is False  # its one period ended 2022-06-24, before the release date
    ended = periods.filter(pl.col("observation_period_end_date") < dt.date(2022, 10, 10)).get_column("person_id")
    assert not any(by_id[source[p]]["enrolled"] for p in ended if p not in (1, 2))

    (cdm / "observation_period.parquet").unlink()
    capsys.readouterr()
    assert _screen(cdm, tmp_path / "none", "--omop-enrolment", "observation_period") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "table 'observation_period' missing" in err and str(cdm) in err
    scans = tmp_path / "scans.csv"
    scans.write_text("patient_id\n", encoding="utf-8")
    assert (
        main(["screen", "--scans", str(scans), "--out", str(tmp_path / "x"), "--omop-enrolment", "observation_period"])
        == 2
    )
    assert "--omop-enrolment: is read with --omop SOURCE only" in capsys.readouterr().err
