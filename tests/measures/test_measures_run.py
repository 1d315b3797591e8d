"""Quality measures through a whole screen (docs/measures.md): the two published tables, the catalog, the
manifest, ``osteo measures`` in each format, ``--measurement-year``, a run without a roster, the report's
section, and the same results however the patients are partitioned."""

import json

import polars as pl
import pytest
from conftest import exam, screen_synthetic, sql_json, write_scans_csv, write_synthetic

from osteo_core.cli import main
from osteo_core.measures.specs import load_measures
from osteo_core.pipeline.stages import ScreenRequest, run_screen

AS_OF = "2026-06-30"
ROSTER = "patient_id,sex,birth_date,death_date,enrolled_from,enrolled_to,clinic,pcp_id\n"
MEASURES = sorted(spec.id for spec in load_measures())


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("measures")
    paths = write_synthetic(folder, 600, seed=11, roster=True, recent_fractures=0.1)
    manifest = screen_synthetic(paths, folder / "out", AS_OF, measurement_year=2025)
    return folder, paths, manifest


def test_a_screen_with_a_roster_publishes_both_tables_in_the_run_and_the_catalog(synthetic_run, capsys):
    folder, _, manifest = synthetic_run
    out = folder / "out"
    members = pl.read_parquet(out / "measure_members.parquet")
    summary = pl.read_parquet(out / "measure_summary.parquet")
    assert summary.get_column("measure").to_list() == MEASURES
    assert (summary.get_column("denominator") > 0).all()  # each measure has patients to count here
    assert (summary.get_column("numerator") > 0).all()
    assert members.height > 0 and set(members.get_column("measure")) <= set(MEASURES)
    # the summary is the members counted
    for row in summary.iter_rows(named=True):
        mine = members.filter(pl.col("measure") == row["measure"])
        assert row["denominator"] == mine.get_column("in_denominator").sum()
        assert row["exclusions"] == mine.get_column("excluded").sum()
        assert row["numerator"] == mine.get_column("in_numerator").sum()
    # nobody is both excluded and met, nor either without being in the denominator
    assert members.filter(pl.col("excluded") & pl.col("in_numerator")).height == 0
    assert members.filter(~pl.col("in_denominator") & (pl.col("excluded") | pl.col("in_numerator"))).height == 0
    assert members.select("measure", "patient_id").is_duplicated().sum() == 0
    rows = sql_json(capsys, out, "SELECT measure, denominator FROM measure_summary ORDER BY measure")
    assert rows == [{"measure": r["measure"], "denominator": r["denominator"]} for r in summary.iter_rows(named=True)]
    assert sql_json(capsys, out, "SELECT count(*) AS n FROM measure_members") == [{"n": members.height}]
    entry = manifest["measures"]
    assert entry["measurement_year"] == 2025 and entry["period"] == ["2025-01-01", "2025-12-31"]
    assert [{k: v for k, v in r.items() if k != "open_windows"} for r in entry["results"]] == summary.to_dicts()
    assert all(r["open_windows"] >= 0 for r in entry["results"])


def test_every_member_is_a_roster_patient(synthetic_run):
    folder, paths, _ = synthetic_run
    roster = pl.read_csv(paths["population"], infer_schema=False).get_column("patient_id").unique()
    members = pl.read_parquet(folder / "out" / "measure_members.parquet")
    assert members.get_column("patient_id").is_in(roster.implode()).all()


def test_osteo_measures_prints_the_summary_in_each_format(synthetic_run, capsys):
    folder, _, manifest = synthetic_run
    out = str(folder / "out")
    capsys.readouterr()
    assert main(["measures", "--out", out, "--format", "json"]) == 0
    results = [{k: v for k, v in r.items() if k != "open_windows"} for r in manifest["measures"]["results"]]
    assert json.loads(capsys.readouterr().out) == results
    assert main(["measures", "--out", out, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "measure,version,denominator,exclusions,numerator,rate" and len(lines) == 1 + len(MEASURES)
    assert main(["measures", "--out", out]) == 0
    table = capsys.readouterr().out
    assert "measurement year 2025 (2025-01-01 to 2025-12-31)" in table and "OMW" in table and "%" in table


def test_partitions_do_not_change_the_measures(synthetic_run, tmp_path):
    folder, paths, _ = synthetic_run
    screen_synthetic(paths, tmp_path / "out", AS_OF, measurement_year=2025, partitions=3)
    for table in ("measure_members", "measure_summary"):
        one = pl.read_parquet(folder / "out" / f"{table}.parquet").sort(pl.all())
        three = pl.read_parquet(tmp_path / "out" / f"{table}.parquet").sort(pl.all())
        assert one.equals(three), table


def _small(tmp_path, roster: str | None, **options):
    scans = write_scans_csv(tmp_path / "scans.csv", [exam(patient_id="P1", birth_date="1950-01-01")])
    if roster is not None:
        (tmp_path / "roster.csv").write_text(ROSTER + roster)
    return ScreenRequest(
        scans=[str(scans)],
        population=str(tmp_path / "roster.csv") if roster is not None else None,
        out=str(tmp_path / "out"),
        as_of=AS_OF,
        **options,
    )


def test_without_a_roster_both_tables_are_empty_and_osteo_measures_says_why(tmp_path, capsys):
    manifest = run_screen(_small(tmp_path, None))
    assert manifest["measures"] is None
    out = tmp_path / "out"
    assert pl.read_parquet(out / "measure_summary.parquet").height == 0
    assert pl.read_parquet(out / "measure_members.parquet").height == 0
    capsys.readouterr()
    assert main(["measures", "--out", str(out), "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "measure,version,denominator,exclusions,numerator,rate"
    assert "need a population roster" in captured.err


def test_the_measurement_year_defaults_to_the_as_of_year(tmp_path):
    manifest = run_screen(_small(tmp_path, "P1,F,1950-01-01,,,,c1,d1\n"))
    assert manifest["measures"]["measurement_year"] == 2026
    members = pl.read_parquet(tmp_path / "out" / "measure_members.parquet")
    assert members.filter(pl.col("measure") == "MIPS039").select("in_denominator", "in_numerator").row(0) == (
        True,
        True,
    )


@pytest.mark.parametrize("year", ["2027", "1899"])
def test_a_measurement_year_after_the_as_of_year_or_before_1900_is_refused(tmp_path, capsys, year):
    scans = write_scans_csv(tmp_path / "scans.csv", [exam()])
    (tmp_path / "roster.csv").write_text(ROSTER + "P1,F,1950-01-01,,,,c1,d1\n")
    arguments = ["--as-of", AS_OF, "--measurement-year", year, "--population", str(tmp_path / "roster.csv")]
    code = main(["screen", "--scans", str(scans), *arguments, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"osteo: --measurement-year: {year} is not a year from 1900 to the as-of year 2026"]
    assert not (tmp_path / "o").exists()


def test_a_measurement_year_without_a_roster_is_said_to_have_no_effect(tmp_path, capsys):
    code = main(["screen", "--scans", str(tmp_path / "missing.csv"), "--measurement-year", "2025"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[0] == "osteo: warning: --measurement-year has no effect without --population (no quality measures)"


def test_a_measurement_year_that_is_not_a_number_is_a_usage_error(tmp_path, capsys):
    code = main(["screen", "--scans", "x.csv", "--measurement-year", "last"])
    assert code == 2
    assert "--measurement-year: invalid int value: 'last'" in capsys.readouterr().err


def test_the_report_has_a_measures_section_with_counts_only(synthetic_run):
    from osteo_core.outputs.report import write_report

    folder, paths, _ = synthetic_run
    page = write_report(folder / "out").read_text(encoding="utf-8")
    assert "Quality measures, measurement year 2025" in page and 'id="measure-rates"' in page
    patients = pl.read_csv(paths["population"], infer_schema=False).get_column("patient_id").unique().to_list()
    assert not any(pid in page for pid in patients[:200])


def test_the_artifact_markdown_and_counts_carry_the_rates(synthetic_run):
    from flows.artifacts import count_rows, summary_markdown

    _, _, manifest = synthetic_run
    text = summary_markdown(manifest)
    assert "## Quality measures, measurement year 2025" in text
    omw = next(r for r in manifest["measures"]["results"] if r["measure"] == "OMW")
    assert f"| OMW | {omw['version']} | {omw['denominator']:,} |" in text and f"{omw['rate']:.1%}" in text
    counts = {r["measure"]: r["count"] for r in count_rows(manifest)}
    for result in manifest["measures"]["results"]:
        assert counts[f"measure:{result['measure']}:denominator"] == result["denominator"]
        assert counts[f"measure:{result['measure']}:open_windows"] == result["open_windows"]
        assert all(isinstance(row["count"], int) for row in count_rows(manifest))  # counts only: the rate is in text


def test_the_manifest_lists_the_measure_tables(synthetic_run):
    folder, _, manifest = synthetic_run
    assert {"measure_members", "measure_summary"} <= set(manifest["tables"])
    assert (folder / "out" / "measure_summary.parquet").resolve().parent.name == manifest["run_id"]
