"""Issue 5: results do not depend on the partition count, and partitions run on a real Dask cluster."""

import dataclasses
import functools
import json

import polars as pl
import pytest
from conftest import exam, write_scans_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osteo_core.demo import synthetic
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from schemas.tables import TABLES

SORT_KEYS = {
    "screening": ["exam_id"],
    "quarantine": ["input", "source_file", "source_row", "column", "check"],
    "patients": ["patient_id"],
    "care_gaps": ["patient_id", "gap"],
    "treatment_intervals": ["patient_id", "interval_start"],
    "measure_members": ["measure", "patient_id"],
    "measure_summary": ["measure"],
    "closed_gaps": ["patient_id", "gap"],
}


@pytest.fixture(scope="module")
def registry_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("registry")
    scans = synthetic.registry(400, seed=5, invalid_share=0.02, duplicate_share=0.02)
    # the same exam id under two patients: copies land in different partitions and must still conflict
    clash = scans.head(1).with_columns(pl.lit("P9999999").alias("patient_id"))
    pl.concat([scans, clash]).write_csv(folder / "scans.csv")
    synthetic.medications(scans, seed=5).write_csv(folder / "meds.csv")
    synthetic.fractures(scans, seed=5, per_exam=0.2).write_csv(folder / "fractures.csv")
    return folder


def _request(folder, out, partitions):
    return ScreenRequest(
        scans=[str(folder / "scans.csv")],
        meds=str(folder / "meds.csv"),
        fractures=str(folder / "fractures.csv"),
        out=str(out),
        as_of="2026-07-01",
        partitions=partitions,
        max_reject_rate=0.2,
    )


def _tables(out):
    return {t: pl.read_parquet(out / f"{t}.parquet").sort(SORT_KEYS[t], nulls_last=True) for t in TABLES}


@pytest.fixture(scope="module")
def one_partition(registry_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("p1") / "out"
    manifest = run_screen(_request(registry_files, out, 1))
    return manifest, _tables(out)


def test_one_and_sixteen_partitions_give_the_same_tables(registry_files, one_partition, tmp_path):
    manifest_1, tables_1 = one_partition
    manifest_16 = run_screen(_request(registry_files, tmp_path / "out", 16))
    assert (manifest_1["partitions"], manifest_16["partitions"]) == (1, 16)
    for table, frame in _tables(tmp_path / "out").items():
        assert frame.equals(tables_1[table]), table
    for key in ("rows", "rows_by_input", "unrecognised_drugs", "who_categories", "care_gaps", "tables"):
        assert manifest_16[key] == manifest_1[key], key
    run_folder = tmp_path / "out" / "runs" / manifest_16["run_id"]
    assert run_folder.is_dir() and not (run_folder / ".exam_ids").exists()  # the bucketed pairs are work files


def test_exam_id_under_two_patients_conflicts_across_partitions(one_partition):
    _, tables = one_partition
    clashing = tables["quarantine"].filter(pl.col("check") == "unique_exam_id")
    assert set(clashing.get_column("patient_id")) >= {"P0000000", "P9999999"}


def test_partitions_run_on_a_dask_cluster(registry_files, one_partition, tmp_path, prefect_engine):
    from distributed import LocalCluster

    from flows.screen import run_flow

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        manifest = run_flow(_request(registry_files, tmp_path / "out", 4), dask_address=cluster.scheduler_address)
    assert manifest["partitions"] == 4
    _, tables_1 = one_partition
    for table, frame in _tables(tmp_path / "out").items():
        assert frame.equals(tables_1[table]), table


def test_progress_is_silent_when_not_a_terminal(tmp_path, capfd, prefect_engine):
    from flows.screen import run_flow

    scans = write_scans_csv(tmp_path / "scans.csv", [exam()])
    run_flow(ScreenRequest(scans=[str(scans)], out=str(tmp_path / "out"), as_of="2026-01-01", partitions=2))
    captured = capfd.readouterr()
    assert "partitions" not in captured.err and "━" not in captured.err
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["partitions"] == 2


def test_progress_shows_stages_and_partitions_on_a_terminal():
    import io

    from flows.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    with Progress.for_terminal(screen) as progress:
        with progress.stage("ingest scans"):
            pass
        with progress.items("screen partitions", 3) as advance:
            for _ in range(3):
                advance()
    text = screen.getvalue()
    assert "ingest scans" in text and "screen partitions" in text and "3/3" in text
    assert Progress.current().display is None  # nothing left active afterwards


def test_exam_conflict_buckets_do_not_change_the_answer():
    from osteo_core.validate.scans import EXAM_ID_BUCKET, exam_id_pairs, exam_ids_under_several_patients

    rows = pl.LazyFrame(
        {
            "exam_id": [f"E{i % 40}" for i in range(200)] + [" E7 ", None, "  "],
            "patient_id": [f"P{i % 40}" for i in range(200)] + ["P999", "P1", "P2"],
        }
    ).with_columns(
        pl.when(pl.int_range(pl.len()) % 37 == 0).then(pl.lit("PX")).otherwise(pl.col("patient_id")).alias("patient_id")
    )
    whole = exam_ids_under_several_patients(exam_id_pairs(rows, 1)).sort("exam_id")
    assert whole.height > 0 and "E7" in whole.get_column("exam_id").to_list()
    for buckets in (2, 7, 16):
        pairs = exam_id_pairs(rows, buckets).collect()
        assert pairs.get_column(EXAM_ID_BUCKET).n_unique() > 1
        found = [
            exam_ids_under_several_patients(pairs.lazy().filter(pl.col(EXAM_ID_BUCKET) == b)) for b in range(buckets)
        ]
        assert pl.concat(found).sort("exam_id").equals(whole)


def _row_groups(folder):
    import pyarrow.parquet as pq

    return [
        pq.ParquetFile(path).metadata.row_group(g).num_rows
        for path in sorted(folder.rglob("*.parquet"))
        for g in range(pq.ParquetFile(path).metadata.num_row_groups)
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(0, 3000),
    ways=st.integers(1, 12),
    in_flight=st.integers(50, 5000),
    per_file=st.none() | st.integers(1, 400),
)
def test_a_split_keeps_every_row_in_order_in_row_groups_bounded_by_its_ways(
    tmp_path, monkeypatch, rows, ways, in_flight, per_file
):
    """A split's memory is its outputs' row groups (30M roster rows split 200 ways held 4.4 GiB with Polars' default,
    bench/split_memory.py): each output's groups hold at most ROWS_IN_FLIGHT // ways rows, and every row lands under
    its key in its order. ``per_file``: the writer made to start a new file every so many rows (at 100M it writes
    several per partition), read back as ingest's readers do, in the order of their names."""
    from osteo_core.pipeline import partitions

    folder = tmp_path / f"split-{rows}-{ways}-{in_flight}-{per_file}"
    frame = pl.LazyFrame({"n": range(rows)}, schema={"n": pl.Int64}).with_columns((pl.col("n") * 7 % ways).alias("k"))
    with monkeypatch.context() as patch:  # this example's settings only (the fixture outlives the examples)
        patch.setattr(partitions, "ROWS_IN_FLIGHT", in_flight)
        patch.setattr(partitions, "SMALLEST_ROW_GROUP", 10)
        if per_file is not None:
            patch.setattr(pl, "PartitionBy", functools.partial(pl.PartitionBy, max_rows_per_file=per_file))
        pl.collect_all([partitions.sink_split(frame, folder, "k", ways)])
    bound = max(10, in_flight // ways)
    assert all(0 < size <= bound for size in _row_groups(folder))
    for key in range(ways):
        files = sorted((folder / f"k={key}").glob("*.parquet"))
        got = pl.read_parquet(files, glob=False).get_column("n").to_list() if files else []
        assert got == [n for n in range(rows) if n * 7 % ways == key]
        if per_file is not None:
            assert len(files) == -(-len(got) // per_file)  # several files, where the rows call for them


def test_a_screen_split_in_small_row_groups_gives_the_same_tables(registry_files, tmp_path, monkeypatch):
    """Ingest's raw layer, the exam-id buckets and the base run's gaps each split in row groups of a few rows: the
    same tables, a re-run's lifecycle included, as one partition in one piece."""
    from osteo_core.pipeline import partitions

    def two_runs(out, ways):
        run_screen(_request(registry_files, out, ways[0]))
        later = dataclasses.replace(_request(registry_files, out, ways[1]), as_of="2026-11-01")
        return run_screen(later), _tables(out)

    whole, reference = two_runs(tmp_path / "whole", (1, 1))
    monkeypatch.setattr(partitions, "ROWS_IN_FLIGHT", 64)
    monkeypatch.setattr(partitions, "SMALLEST_ROW_GROUP", 4)
    split, tables = two_runs(tmp_path / "split", (4, 3))  # the base's gaps split 3 ways, in groups of 21 rows
    assert whole["lifecycle"]["persisting"] > 0  # the base was compared with
    for table, frame in tables.items():
        assert frame.equals(reference[table]), table
    for key in ("rows", "rows_by_input", "care_gaps", "tables"):
        assert split[key] == whole[key], key
    assert {k: v for k, v in split["lifecycle"].items() if "base" not in k} == {
        k: v for k, v in whole["lifecycle"].items() if "base" not in k
    }


def test_every_split_is_a_query_of_its_own(registry_files, one_partition, tmp_path, monkeypatch):
    """Two queries over one read in a ``collect_all`` make Polars hold the whole read in memory for both: ingest's
    count of lines beside its split held a 60M-row roster whole (8.3 GiB; bench/split_memory.py, bench/RESULTS.md),
    and the base run's gaps were copied and split the same way. Every ``collect_all`` of ingest and of the gaps'
    lifecycle now runs one query; the counts, the exam-id conflicts and the re-run's lifecycle stay right."""
    import osteo_core.pipeline.gap_history as gap_history
    import osteo_core.pipeline.raw_layer as raw_layer

    sizes: list[int] = []
    original = pl.collect_all

    def one_at_a_time(queries, *args, **kwargs):
        sizes.append(len(queries))
        return original(queries, *args, **kwargs)

    class Polars:  # the two modules' ``pl`` with collect_all counted (polars itself left alone)
        def __getattr__(self, name):
            return one_at_a_time if name == "collect_all" else getattr(pl, name)

    monkeypatch.setattr(raw_layer, "pl", Polars())
    monkeypatch.setattr(gap_history, "pl", Polars())
    out = tmp_path / "out"
    first = run_screen(_request(registry_files, out, 4))
    later = run_screen(dataclasses.replace(_request(registry_files, out, 3), as_of="2026-11-01"))
    assert sizes and set(sizes) == {1}, sizes
    assert later["lifecycle"]["base_run_id"] == first["run_id"] and later["lifecycle"]["persisting"] > 0
    assert first["rows"]["rows_in"] == pl.read_csv(registry_files / "scans.csv").height
    conflicts = pl.col("check") == "unique_exam_id"
    clashing = pl.read_parquet(out / "quarantine.parquet").filter(conflicts).get_column("patient_id").sort()
    expected = one_partition[1]["quarantine"].filter(conflicts).get_column("patient_id").sort()
    assert not clashing.is_empty() and clashing.equals(expected)
