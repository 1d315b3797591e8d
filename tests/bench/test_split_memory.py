"""bench/split_memory.py measures what ingest does: both of its splits write every row, the pipeline's in groups of
at most its bound (rows in flight // ways), Polars' default in larger ones."""

from __future__ import annotations

import polars as pl

from bench.split_memory import main
from osteo_core.demo import synthetic


def test_both_splits_write_every_row_and_the_pipeline_s_in_bounded_groups(tmp_path):
    scans = synthetic.registry(300, seed=3, invalid_share=0.0, duplicate_share=0.0)
    synthetic.roster(scans, seed=3).write_parquet(tmp_path / "roster.parquet")
    rows = pl.read_parquet(tmp_path / "roster.parquet").height
    default, bounded = main(tmp_path / "roster.parquet", ways=4, copies=3, bound=(400, 10))
    assert (default["mode"], bounded["mode"]) == ("default", "sink_split")
    assert default["rows"] == bounded["rows"] == default["rows_written"] == bounded["rows_written"] == 3 * rows
    assert bounded["row_group"] == 100 and default["row_group"] is None  # 400 rows in flight // 4 ways
    assert 0 < bounded["largest_row_group"] <= 100 < default["largest_row_group"]  # the groups as written
    assert default["peak_rss_mib"] > 0 and bounded["peak_rss_mib"] > 0 and bounded["files"] >= 4
