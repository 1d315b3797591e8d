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
