"""The quality team's commands answer a page without loading the whole run (issue 34 item 2): ``osteo gaps
--limit N`` asks DuckDB for the first N gaps only and takes the total from the run's manifest; a mark reads the
marked patients' gaps only. Whatever they read, the answer is the one the whole list gives (their speed is
measured by ``bench/interactive.py``, never here)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import screen_synthetic, write_synthetic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osteo_core.cli import main
from osteo_core.outputs.gap_list import GAP_TYPES, load_gaps
from osteo_core.publish import folder as publish


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    paths = write_synthetic(folder, 400, seed=34, roster=True, recent_fractures=0.05)
    screen_synthetic(paths, folder / "out", "2025-01-01", partitions=3)  # the worklist's index: a file each
    return folder / "out"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gap=st.sampled_from([None, *GAP_TYPES]), limit=st.integers(min_value=0, max_value=2_000))
def test_a_page_is_the_head_of_the_whole_list_and_the_total_its_length(published, gap, limit):
    whole, count = load_gaps(published, gap)
    page, total = load_gaps(published, gap, limit)
    assert count == whole.height and total == whole.height
    assert page.equals(whole.head(limit))


def test_without_the_manifests_counts_the_total_is_counted(published, tmp_path):
    """A run whose manifest has no gap counts (an older one): the total comes from the table."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    run = publish.current_run(out)
    manifest = json.loads((run / publish.MANIFEST).read_text())
    del manifest["care_gaps"]
    (run / publish.MANIFEST).write_text(json.dumps(manifest))
    whole, _ = load_gaps(out)
    page, total = load_gaps(out, "overdue_dxa", 3)
    assert total == whole.filter(pl.col("gap") == "overdue_dxa").height > 3 and page.height == 3


def test_the_table_of_a_page_says_how_many_more_there_are(published, capsys, monkeypatch):
    from osteo_core.outputs import render

    monkeypatch.setattr(render, "_is_terminal", lambda stream: True)  # a table on a terminal: 50 rows
    total = load_gaps(published, "overdue_dxa")[1]
    assert main(["gaps", "--out", str(published), "--gap", "overdue_dxa", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [f"… {total - 2:,} more open gap(s): --limit N shows more, --format csv gives all",
                          f"{total:,} open gap(s)"]  # fmt: skip
    assert main(["gaps", "--out", str(published), "--gap", "overdue_dxa", "--limit", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{total:,} open gap(s)"  # the header, not "no open gaps"


def test_a_gap_name_is_a_value_never_sql(published, capsys):
    assert main(["gaps", "--out", str(published), "--gap", "x' OR '1'='1", "--limit", "5"]) == 2
    assert "unknown gap type" in capsys.readouterr().err


def test_a_mark_checks_the_marked_patients_gaps_only_and_still_refuses_a_gap_that_is_not_open(published, capsys):
    gaps, _ = load_gaps(published, "overdue_dxa", 1)
    patient = gaps.get_column("patient_id")[0]
    out = str(published)
    assert main(["worklist", "mark", patient, "overdue_dxa", "--status", "contacted", "--out", out]) == 0
    other = load_gaps(published)[0].filter(pl.col("patient_id") != patient).get_column("patient_id")[0]
    assert main(["worklist", "mark", other, "overdue_dxa", "--status", "contacted", "--out", out]) in (0, 2)
    open_for_other = (
        not load_gaps(published)[0]
        .filter((pl.col("patient_id") == other) & (pl.col("gap") == "overdue_dxa"))
        .is_empty()
    )
    err = capsys.readouterr().err
    assert open_for_other or "no open overdue_dxa gap for this patient" in err
    assert main(["worklist", "mark", "NOBODY", "overdue_dxa", "--status", "contacted", "--out", out]) == 2
    assert "no open overdue_dxa gap for this patient" in capsys.readouterr().err


@pytest.fixture(scope="module")
def marked(published):
    """The run with marks: some gaps hidden (declined, not_appropriate), some contacted, one patient with every
    gap hidden, one reopened."""
    whole, _ = load_gaps(published)
    rows = whole.sort("patient_id", "gap").rows(named=True)
    out = str(published)
    by_patient: dict[str, list[str]] = {}
    for row in rows:
        by_patient.setdefault(row["patient_id"], []).append(row["gap"])
    several = [p for p, gaps in by_patient.items() if len(gaps) > 1]
    for number, (patient, gaps) in enumerate(list(by_patient.items())[:40]):
        status = ("contacted", "declined", "scheduled", "not_appropriate")[number % 4]
        assert main(["worklist", "mark", patient, gaps[0], "--status", status, "--out", out]) == 0
    assert main(["worklist", "mark", several[-1], "all", "--status", "declined", "--out", out]) == 0
    assert (
        main(["worklist", "mark", several[-2], by_patient[several[-2]][0], "--status", "declined", "--out", out]) == 0
    )
    assert (
        main(["worklist", "mark", several[-2], by_patient[several[-2]][0], "--status", "reopened", "--out", out]) == 0
    )
    return published


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    gap=st.sampled_from([None, *GAP_TYPES]),
    status=st.sampled_from([None, "contacted", "declined", "scheduled", "reopened", "none"]),
    include_hidden=st.booleans(),
    limit=st.sampled_from([0, 1, 3, 17, 5_000]),
)
def test_a_page_of_the_worklist_is_the_head_of_the_whole_per_patient_list(marked, gap, status, include_hidden, limit):
    from osteo_core.outputs.worklist import by_patient, load_worklist, patient_page, routing_columns

    in_view, everything, hidden_gaps = load_worklist(marked, gap, status, {}, include_hidden)
    whole = by_patient(in_view, everything)
    page, total, hidden, routing, mrn = patient_page(marked, gap, status, include_hidden, limit)
    assert total == whole.height
    assert page.equals(whole.head(limit)), (page, whole.head(limit))
    assert hidden == hidden_gaps.join(in_view, on="patient_id", how="anti").get_column("patient_id").n_unique()
    assert (
        routing == routing_columns(everything)
        and set(routing) == {"clinic", "pcp_id"}
        and mrn == (whole.get_column("mrn").null_count() < whole.height)
    )


def test_the_worklist_command_shows_the_same_page_either_way(marked, capsys, monkeypatch):
    """``--limit`` asks DuckDB for a page; ``--format csv`` without it reads the whole list: the same rows."""
    out = str(marked)
    assert main(["worklist", "--out", out, "--format", "csv"]) == 0
    whole = capsys.readouterr()
    assert main(["worklist", "--out", out, "--format", "csv", "--limit", "25"]) == 0
    page = capsys.readouterr()
    assert page.out.splitlines() == whole.out.splitlines()[:26] and page.err == whole.err
    assert "hidden" in page.err


def test_measures_read_from_the_file_are_the_catalogs(published, capsys):
    """``osteo measures`` reads the one small summary file itself: the same rows and types as the catalog's."""
    from osteo_core.publish.catalog import query

    run = publish.current_run(published)
    direct = pl.read_parquet(publish.table_files(run, "measure_summary"), glob=False).sort("measure")
    assert direct.height == 3 and direct.equals(query(published, "SELECT * FROM measure_summary ORDER BY measure"))
    assert main(["measures", "--out", str(published), "--format", "csv"]) == 0
    shown = pl.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert shown.get_column("measure").to_list() == direct.get_column("measure").to_list()


@pytest.mark.parametrize("command", ["gaps", "worklist"])
def test_a_negative_limit_is_refused_before_any_query(published, capsys, command):
    assert main([command, "--out", str(published), "--limit", "-1"]) == 2
    assert "--limit: must be 0 or more, not -1" in capsys.readouterr().err  # the parser's own check
    from osteo_core.errors import OsteoError
    from osteo_core.outputs.render import shown_rows

    with pytest.raises(OsteoError, match="--limit must be 0 or more, not -1"):  # a caller in Python: the same
        shown_rows("csv", -1)


def test_the_whole_lists_page_comes_from_the_runs_index_without_the_catalog(marked, monkeypatch):
    """``osteo worklist --limit N`` without a gap or status filter reads the per-patient index written at publish
    (its first rows, and the marked patients recomputed from their own gaps): no catalog query at all. A run
    published without the index (an older version's) gets the same page from DuckDB over the whole list."""
    import shutil

    from osteo_core.outputs import worklist
    from osteo_core.publish import worklist_index

    run = publish.current_run(marked)
    parts = worklist_index.files(run)
    index = pl.read_parquet(parts, glob=False)
    everything = worklist.load_worklist(marked, include_hidden=True)[1]
    assert index.height == everything.get_column("patient_id").n_unique()  # one row per patient with an open gap
    assert index.get_column("patient_id").is_unique().all()
    for part in parts:  # each partition's file in list order, written so
        keys = pl.read_parquet(part).select("priority", pl.col("since").rank("dense", descending=True), "patient_id")
        assert keys.equals(keys.sort("priority", "since", "patient_id"))

    expected = {hidden: worklist.patient_page(marked, None, None, hidden, 17) for hidden in (False, True)}

    def no_catalog(*args, **kwargs):
        raise AssertionError("the catalog was queried")

    with monkeypatch.context() as patched:
        patched.setattr(worklist, "queries", no_catalog)
        patched.setattr(worklist, "query", no_catalog)
        for hidden in (False, True):
            page, total, hidden_count, routing, mrn = worklist.patient_page(marked, None, None, hidden, 17)
            assert page.equals(expected[hidden][0]) and (total, hidden_count) == expected[hidden][1:3]
        with pytest.raises(AssertionError, match="the catalog was queried"):  # a gap filter is DuckDB's still
            worklist.patient_page(marked, "overdue_dxa", None, False, 17)
    old = marked.parent / "without-index"
    shutil.copytree(marked, old, symlinks=True)
    shutil.rmtree(publish.current_run(old) / worklist_index.INDEX)
    for hidden in (False, True):
        page, total, hidden_count, *_ = worklist.patient_page(old, None, None, hidden, 17)
        assert page.equals(expected[hidden][0]) and (total, hidden_count) == expected[hidden][1:3]


@pytest.mark.parametrize("roster", [False, True])
def test_the_index_gives_the_whole_lists_page_with_or_without_a_roster(tmp_path, roster):
    """Without a roster ``in_roster`` is blank and the profile's routing columns are empty: the index agrees with
    the catalog's worklist view either way (record numbers: tests/outputs/test_worklist_mrn.py)."""
    from osteo_core.outputs.worklist import by_patient, load_worklist, patient_page
    from osteo_core.publish import worklist_index

    paths = write_synthetic(tmp_path, 60, seed=5, roster=roster)
    screen_synthetic(paths, tmp_path / "out", "2025-01-01", partitions=2)
    out = tmp_path / "out"
    assert len(worklist_index.files(publish.current_run(out))) == 2
    in_view, everything, _ = load_worklist(out, None, None, {}, False)
    whole = by_patient(in_view, everything)
    page, total, hidden, routing, mrn = patient_page(out, None, None, False, 1_000)
    assert page.equals(whole) and total == whole.height > 0 and hidden == 0 and not mrn
    assert (whole.get_column("in_roster").null_count() == whole.height) is not roster
    assert routing == ["pcp_id", "clinic"]  # the generic profile's, as the catalog's view has them
    assert (page.get_column("clinic").null_count() == page.height) is not roster


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=4),
    group=st.integers(min_value=1, max_value=5),
    wanted=st.sets(st.integers(min_value=0, max_value=60), max_size=8),
)
def test_the_marked_patients_rows_are_read_from_their_row_groups_only(tmp_path_factory, sizes, group, wanted):
    """``_rows_of`` finds the patients on the narrow column and reads the row groups that hold them: the same rows
    as a filter over every file, whatever the files' sizes and row groups (the index's own are 4096 rows)."""
    from osteo_core.outputs.worklist import _rows_of

    folder = tmp_path_factory.mktemp("index")
    parts, frames, first = [], [], 0
    for number, size in enumerate(sizes):
        ids = [f"P{i:03d}" for i in range(first, first + size)]
        frame = pl.DataFrame(
            {"patient_id": ids, "n": list(range(size)), "open": [[n] for n in range(size)]},
            schema={"patient_id": pl.Utf8, "n": pl.Int64, "open": pl.List(pl.Int64)},
        )
        parts.append(folder / f"part-{number:03d}.parquet")
        frame.write_parquet(parts[-1], row_group_size=group)
        frames.append(frame)
        first += size
    patients = pl.Series([f"P{i:03d}" for i in sorted(wanted)]).implode()
    expected = pl.concat(frames).filter(pl.col("patient_id").is_in(patients))
    assert _rows_of(parts, patients).sort("patient_id").equals(expected.sort("patient_id"))


def test_no_roster_column_can_take_a_name_the_worklists_index_uses(tmp_path):
    """A roster's routing column named like a column of the index (``open`` was one) would make publishing fail
    after every partition was screened: every such name is refused as a routing column, and a routing column
    named ``open`` is carried through."""
    import datetime as dt

    from osteo_core.ingest.profiles import routing_name_ok
    from osteo_core.publish import worklist_index as index

    names = {*index.HEAD_COLUMNS, *index.SUMMARY_COLUMNS, index.OPEN} - {"mrn"}  # a roster's mrn is the mrn
    assert not any(routing_name_ok(name) for name in names) and "mrn" in index.NOT_ROUTING
    gaps = pl.DataFrame(
        {
            "patient_id": ["P1", "P1"],
            "gap": ["overdue_dxa", "untreated_high_risk"],
            "since": [dt.date(2024, 1, 1), dt.date(2024, 6, 1)],
            "exam_id": ["E1", "E1"],
            "priority": [3, 1],
            "detail": ["a", "b"],
            "first_seen": [dt.date(2024, 7, 1), dt.date(2024, 7, 1)],
            "status": ["new", "new"],
        }
    )
    roster = pl.LazyFrame({"patient_id": ["P1"], "sex": ["F"], "open": ["weekdays"], "clinic": ["north"]})
    rows = index.partition_rows(
        gaps,
        pl.LazyFrame({"patient_id": ["P1"], "mrn": [None]}, schema={"patient_id": pl.Utf8, "mrn": pl.Utf8}),
        roster,
        pl.LazyFrame({"patient_id": [], "input": []}, schema={"patient_id": pl.Utf8, "input": pl.Utf8}),
        dt.date(2025, 1, 1),
        True,
    )
    assert index.routing_of(rows.columns) == ["open", "clinic"]
    assert rows.row(0, named=True) | {index.OPEN: None} == {
        "patient_id": "P1", "mrn": None, "priority": 1, "gap": "untreated_high_risk", "since": dt.date(2024, 6, 1),
        "detail": "b", "exam_id": "E1", "in_roster": True, "open": "weekdays", "clinic": "north",
        "gaps": "untreated_high_risk, overdue_dxa", "open_gaps": 2, "days_on_list": 184, index.OPEN: None,
    }  # fmt: skip
