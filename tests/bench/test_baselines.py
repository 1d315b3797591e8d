"""The benchmark's baselines (bench/baselines.py) make the pipeline's decisions, or their timings mean nothing.

A small clean synthetic registry goes through the real screen and through the DuckDB query and the pandas
row function the benchmark times; every decision they both make must agree, exam by exam.
"""

from __future__ import annotations

import duckdb
import polars as pl

from bench.baselines import duckdb_sql, pandas_row
from osteo_core.decide.rules import load_rules
from osteo_core.demo import synthetic
from osteo_core.pipeline.stages import ScreenRequest, run_screen

DECISIONS = [
    "diagnostic_basis",
    "lowest_t_score",
    "lowest_t_site",
    "who_category",
    "lowest_z_score",
    "z_category",
    "frax_mof_adjusted",
    "frax_hip_adjusted",
    "eligibility",
    "eligibility_reasons",
    "recommendation",
    "next_dxa_due",
]


def _screened(tmp_path):
    scans = synthetic.registry(1500, seed=23, invalid_share=0.0, duplicate_share=0.0)
    scans.write_csv(tmp_path / "scans.csv")
    scans.write_parquet(tmp_path / "scans.parquet")
    run_screen(ScreenRequest(scans=[str(tmp_path / "scans.csv")], out=str(tmp_path / "out"), as_of="2026-01-01"))
    return scans, pl.read_parquet(tmp_path / "out" / "screening.parquet")


def test_duckdb_baseline_makes_the_pipeline_decisions(tmp_path):
    _, pipeline = _screened(tmp_path)
    sql = duckdb_sql(str(tmp_path / "scans.parquet"), load_rules("standard"))
    baseline = duckdb.connect().sql(sql).pl()
    joined = pipeline.select("exam_id", *DECISIONS).join(
        baseline.select("exam_id", *DECISIONS), on="exam_id", how="left", suffix="_duckdb"
    )
    assert joined.height == pipeline.height > 1000
    for column in DECISIONS:
        differs = joined.filter(pl.col(column).ne_missing(pl.col(f"{column}_duckdb")))
        assert differs.is_empty(), (column, differs.select("exam_id", column, f"{column}_duckdb").head(5).to_dicts())


def test_pandas_baseline_makes_the_pipeline_decisions(tmp_path):
    scans, pipeline = _screened(tmp_path)
    rules = load_rules("standard")
    baseline = pl.DataFrame(
        [pandas_row(row, rules) for _, row in scans.to_pandas().iterrows()],
        schema={"exam_id": pl.Utf8, "who_category": pl.Utf8, "eligibility": pl.Utf8, "reasons": pl.List(pl.Utf8)},
    )
    # the row function decides T-score exams only (Z-score exams need a specialist, not a rule list)
    joined = pipeline.filter(pl.col("diagnostic_basis") == "t_score").join(baseline, on="exam_id", how="left")
    assert joined.height > 1000
    for ours, theirs in (("who_category", "who_category_right"), ("eligibility", "eligibility_right")):
        differs = joined.filter(pl.col(ours).ne_missing(pl.col(theirs)))
        assert differs.is_empty(), (ours, differs.select("exam_id", ours, theirs).head(5).to_dicts())


def test_duckdb_equivalent_rejects_decides_and_lists_what_the_pipeline_does(tmp_path):
    """The like-for-like baseline: same rejected rows, same decisions, same untreated high-risk list."""
    from bench.baselines import duckdb_equivalent, parquet_source
    from osteo_core import reference
    from osteo_core.resources import shipped_toml

    scans = synthetic.registry(1500, seed=29, invalid_share=0.03, duplicate_share=0.0)
    meds = synthetic.medications(scans, seed=29)
    scans.write_parquet(tmp_path / "scans.parquet")
    meds.write_parquet(tmp_path / "meds.parquet")
    as_of = "2026-01-01"
    run_screen(
        ScreenRequest(
            scans=[str(tmp_path / "scans.parquet")],
            meds=str(tmp_path / "meds.parquet"),
            out=str(tmp_path / "out"),
            as_of=as_of,
            max_reject_rate=1.0,
        )
    )
    out = tmp_path / "out"
    quarantined = pl.read_parquet(out / "quarantine.parquet").filter(pl.col("input") == "scans")
    pipeline = pl.read_parquet(out / "screening.parquet")
    gaps = pl.read_parquet(out / "care_gaps.parquet").filter(pl.col("gap") == "untreated_high_risk")

    con = duckdb.connect()
    duckdb_equivalent(
        con,
        parquet_source(str(tmp_path / "scans.parquet")),
        parquet_source(str(tmp_path / "meds.parquet")),
        load_rules("standard"),
        __import__("datetime").date.fromisoformat(as_of),
        shipped_toml("validation/scans.toml"),
        reference.care_gap_parameters(),
    )
    rejected = con.sql("SELECT exam_id FROM checked WHERE _reject").pl()
    assert quarantined.height > 20
    assert sorted(rejected["exam_id"]) == sorted(quarantined["exam_id"].unique())
    baseline = con.sql("SELECT * FROM screening").pl()
    joined = pipeline.select("exam_id", *DECISIONS).join(
        baseline.select("exam_id", *DECISIONS), on="exam_id", how="full", suffix="_duckdb"
    )
    assert joined.height == pipeline.height == baseline.height
    for column in DECISIONS:
        assert joined.filter(pl.col(column).ne_missing(pl.col(f"{column}_duckdb"))).is_empty(), column
    untreated = con.sql("SELECT patient_id, exam_id, since FROM untreated").pl()
    assert gaps.height > 50
    assert untreated.sort("patient_id").equals(gaps.select("patient_id", "exam_id", "since").sort("patient_id"))
