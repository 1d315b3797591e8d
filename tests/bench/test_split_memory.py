"""bench/split_memory.py measures what ingest does: both of its splits write every row, the pipeline's in groups of
``split_row_group(ways)`` rows (its memory bound), Polars' default in larger ones."""

from __future__ import annotations

import polars as pl

from bench.split_memory import main
from osteo_core.demo import synthetic
from osteo_core.pipeline.partitions import split_row_group


def test_both_splits_write_every_row_and_the_pipeline_s_in_bounded_groups(tmp_path):
    scans = synthetic.registry(300, seed=3, invalid_share=0.0, duplicate_share=0.0)
    synthetic.roster(scans, seed=3).write_parquet(tmp_path / "roster.parquet")
    rows = pl.read_parquet(tmp_path / "roster.parquet").height
    default, bounded = main(tmp_path / "roster.parquet", ways=4, copies=3)
    assert (default["mode"], bounded["mode"]) == ("default", "sink_split")
    assert default["rows"] == bounded["rows"] == default["rows_written"] == bounded["rows_written"] == 3 * rows
    assert bounded["row_group"] == split_row_group(4) and default["row_group"] is None
    assert default["peak_rss_mib"] > 0 and bounded["peak_rss_mib"] > 0 and bounded["files"] >= 4
