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
from polars.testing import assert_frame_equal

from osteo_core.demo.synthetic import as_typed_export
from osteo_core.pipeline.request import FIELDS
from osteo_core.publish import folder as publish
from schemas.tables import CATALOG_TABLES as TABLES  # the published tables and the valid events

GOLDEN = Path(__file__).parent / "golden" / "digests.json"


def table_digest(frame: pl.DataFrame, renamed: dict[str, str] | None = None) -> str:
    """SHA-256 of the table's rows as CSV, sorted on every column; lists joined, file paths to names
    (``renamed``: file names to give as others)."""
    flat = frame.with_columns(
        *(pl.col(c).list.join("|") for c, t in frame.schema.items() if isinstance(t, pl.List)),
        *(pl.col(c).str.split("/").list.last().replace(renamed or {}) for c in frame.columns if c == "source_file"),
    )
    text = flat.sort(flat.columns, nulls_last=True).write_csv(null_value="<null>")
    return hashlib.sha256(f"{list(frame.schema.items())}\n{text}".encode()).hexdigest()


def _mess_up(path: Path, bad: dict[str, str]) -> None:
    """Re-export 25 rows (identical duplicates) and add 5 rows that break a rule."""
    rows = pl.read_csv(path, infer_schema=False)
    broken = rows.head(5).with_columns(pl.lit(v).alias(k) for k, v in bad.items())
    pl.concat([rows, rows.slice(100, 25), broken]).write_csv(path)


def _golden_registry(tmp_path: Path) -> dict[str, Path]:
    paths = write_synthetic(tmp_path, patients=3000, seed=11, fractures_per_exam=0.2, roster=True)
    _mess_up(paths["meds"], {"event_date": "2031-02-30"})
    _mess_up(paths["fractures"], {"fracture_date": "not a date"})
    _mess_up(paths["population"], {"enrolled_to": "1900-01-01"})
    return paths


def _golden_digests(
    tmp_path: Path, paths: dict[str, Path] | None = None, renamed: dict[str, str] | None = None, **options
) -> dict:
    """The fixed messy registry (or ``paths``, a copy of it, whose file names ``renamed`` gives as the
    registry's) screened (``options`` go to the request), reduced to digests."""
    paths = paths or _golden_registry(tmp_path)
    manifest = screen_synthetic(paths, tmp_path / "out", as_of="2026-01-01", max_reject_rate=1.0, **options)
    run = tmp_path / "out" / "current"
    digests = {
        table: table_digest(pl.read_parquet(publish.table_files(run, table)), renamed)
        for table in (*TABLES, "population")
    }
    digests["rows"] = manifest["rows_by_input"]
    # the registry is messy on purpose: every kind of row is there to be accounted for, in every input it has
    # (not the DXA procedures, which only a FHIR export gives)
    for counts in manifest["rows_by_input"].values():
        assert not counts["rows_in"] or all(counts[k] > 0 for k in ("valid", "quarantined", "duplicate"))
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


def test_the_golden_registry_as_typed_parquet_gives_the_golden_digests(tmp_path):
    """Issue 11: typed inputs stay typed. The same registry exported as typed Parquet (every column that
    reads as its field's type cast to it: numbers, whole numbers, dates, yes/no) gives every golden digest
    once its file names are the CSVs' again. The quarantine holds the same cells for the same checks; a
    typed cell's value is its own text (the float 999 is ``999.0`` where the CSV wrote ``999``)."""
    text_folder, typed_folder = (_folder(f) for f in _text_and_typed(tmp_path))
    paths = _golden_registry(text_folder)
    golden = json.loads(GOLDEN.read_text())
    assert _golden_digests(text_folder, paths) == golden
    typed_paths, cast = {}, {}
    for kind, path in paths.items():
        frame, cast[kind] = as_typed_export(pl.read_csv(path, infer_schema=False), FIELDS[kind])
        typed_paths[kind] = typed_folder / path.with_suffix(".parquet").name
        frame.write_parquet(typed_paths[kind])
    assert {"spine_t", "weight_kg", "current_smoker"} <= cast["scans"] and "days_supply" in cast["meds"]
    assert "enrolled_to" in cast["population"] and "fracture_date" not in cast["fractures"]  # one is "not a date"
    renamed = {p.name: p.with_suffix(".csv").name for p in typed_paths.values()}
    digests = _golden_digests(typed_folder, typed_paths, renamed)
    digests["quarantine"] = golden["quarantine"] = None  # compared below, cell by cell
    assert digests == golden
    text, typed = (
        pl.read_parquet(f / "out" / "quarantine.parquet").drop("source_file") for f in _text_and_typed(tmp_path)
    )
    assert_frame_equal(typed.drop("value"), text.drop("value"))
    differ = typed.get_column("value").ne_missing(text.get_column("value"))
    assert set(typed.filter(differ).get_column("column")) <= {c for columns in cast.values() for c in columns}
    as_numbers = [frame.filter(differ).get_column("value").cast(pl.Float64) for frame in (typed, text)]
    assert differ.any() and as_numbers[0].equals(as_numbers[1])  # 999.0 is 999


def _text_and_typed(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "csv", tmp_path / "typed"


def _folder(path: Path) -> Path:
    path.mkdir()
    return path
