"""Golden digests: the published tables of one fixed synthetic registry, reduced to a digest per table.

The screening engine may be rebuilt for speed (issue 11); its outputs may not change. A digest that
changes must be explained row by row in the change that changes it, then renewed with
``OSTEO_RENEW_GOLDEN=1 python -m pytest tests/pipeline/test_golden.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import polars as pl
from conftest import screen_synthetic, write_synthetic

from osteo_core.publish import folder as publish
from schemas.tables import CATALOG_TABLES as TABLES  # the published tables and the valid events

GOLDEN = Path(__file__).parent / "golden" / "digests.json"


def table_digest(frame: pl.DataFrame) -> str:
    """SHA-256 of the table's rows as CSV, sorted on every column; lists joined, file paths to names."""
    flat = frame.with_columns(
        *(pl.col(c).list.join("|") for c, t in frame.schema.items() if isinstance(t, pl.List)),
        *(pl.col(c).str.split("/").list.last() for c in frame.columns if c == "source_file"),
    )
    text = flat.sort(flat.columns, nulls_last=True).write_csv(null_value="<null>")
    return hashlib.sha256(f"{list(frame.schema.items())}\n{text}".encode()).hexdigest()


def _mess_up(path: Path, bad: dict[str, str]) -> None:
    """Re-export 25 rows (identical duplicates) and add 5 rows that break a rule."""
    rows = pl.read_csv(path, infer_schema=False)
    broken = rows.head(5).with_columns(pl.lit(v).alias(k) for k, v in bad.items())
    pl.concat([rows, rows.slice(100, 25), broken]).write_csv(path)


def _golden_digests(tmp_path: Path, **options) -> dict:
    """The fixed messy registry screened (``options`` go to the request), reduced to digests."""
    paths = write_synthetic(tmp_path, patients=3000, seed=11, fractures_per_exam=0.2, roster=True)
    _mess_up(paths["meds"], {"event_date": "2031-02-30"})
    _mess_up(paths["fractures"], {"fracture_date": "not a date"})
    _mess_up(paths["population"], {"enrolled_to": "1900-01-01"})
    manifest = screen_synthetic(paths, tmp_path / "out", as_of="2026-01-01", max_reject_rate=1.0, **options)
    run = tmp_path / "out" / "current"
    digests = {
        table: table_digest(pl.read_parquet(publish.table_files(run, table))) for table in (*TABLES, "population")
    }
    digests["rows"] = manifest["rows_by_input"]
    # the registry is messy on purpose: every kind of row is there to be accounted for
    for counts in manifest["rows_by_input"].values():
        assert all(counts[k] > 0 for k in ("valid", "quarantined", "duplicate"))
    return digests


def test_published_tables_match_the_golden_digests(tmp_path):
    digests = _golden_digests(tmp_path)
    if os.environ.get("OSTEO_RENEW_GOLDEN"):
        GOLDEN.write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
    assert digests == json.loads(GOLDEN.read_text())


def test_partitions_on_a_dask_cluster_give_the_golden_digests(tmp_path, prefect_engine):
    """Scale-out is real: the Prefect flow sends three partitions to a two-process Dask cluster."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        digests = _golden_digests(tmp_path, partitions=3, dask_address=cluster.scheduler_address)
    assert digests == json.loads(GOLDEN.read_text())
