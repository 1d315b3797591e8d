"""Issue 15 §1: care gaps across published runs: first_seen and status, and closed_gaps with the reason read
from the data. Four weekly runs into one output folder, then a re-run of the last week."""

import datetime as dt

import polars as pl
import pytest
from conftest import exam, write_scans_csv

from osteo_core.gaps.lifecycle import closed_gaps, with_lifecycle
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.reference import care_gap_parameters

MEDS = "patient_id,drug,event_date,days_supply,dose_mg\n"


def _screen(folder, as_of: str, meds: str | None):
    scans = write_scans_csv(
        folder / "scans.csv",
        [
            exam(patient_id="UNTREATED", exam_id="E1", exam_date="2025-06-01", femoral_neck_t="-2.7"),
            exam(patient_id="LAPSED", exam_id="E2", exam_date="2025-06-01", total_hip_t="-0.5"),
        ],
    )
    meds_path = None
    if meds is not None:
        meds_path = folder / f"meds-{as_of}.csv"
        meds_path.write_text(MEDS + meds)
    manifest = run_screen(
        ScreenRequest(
            scans=[str(scans)],
            meds=str(meds_path) if meds_path else None,
            out=str(folder / "out"),
            as_of=as_of,
            accept_input_change=meds is None,  # a week without the medications export, published on purpose
        )
    )
    out = folder / "out"
    gaps = pl.read_parquet(out / "care_gaps.parquet")
    closed = pl.read_parquet(out / "closed_gaps.parquet")
    return manifest, gaps, closed


def _state(gaps: pl.DataFrame) -> dict:
    return {(r["patient_id"], r["gap"]): (r["first_seen"], r["status"]) for r in gaps.iter_rows(named=True)}


PROLIA = "LAPSED,Prolia,2025-01-01,,60\n"  # lapses after 6 months + 28 days: open on every as-of date below
TREATED = PROLIA + "UNTREATED,alendronate,2026-03-15,30,\n"
D = dt.date.fromisoformat


@pytest.fixture(scope="module")
def weeks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weeks")
    return folder, [
        _screen(folder, "2026-01-01", PROLIA),  # both gaps open: new
        _screen(folder, "2026-02-01", PROLIA),  # both persist
        _screen(folder, "2026-03-01", None),  # no medications export: the lapse closes as input_missing
        _screen(folder, "2026-04-01", TREATED),  # treatment started; the lapse is back, new
    ]


def test_a_gap_opens_new_then_persists_with_its_first_seen(weeks):
    _, runs = weeks
    (_, first, closed1), (_, second, closed2) = runs[0], runs[1]
    assert _state(first) == {
        ("UNTREATED", "untreated_high_risk"): (D("2026-01-01"), "new"),
        ("LAPSED", "denosumab_lapse"): (D("2026-01-01"), "new"),
    }
    assert closed1.height == 0  # the first run in a folder closes nothing
    assert _state(second) == {
        ("UNTREATED", "untreated_high_risk"): (D("2026-01-01"), "persisting"),
        ("LAPSED", "denosumab_lapse"): (D("2026-01-01"), "persisting"),
    }
    assert closed2.height == 0


def test_a_missing_medications_export_closes_as_input_missing_not_as_treated(weeks):
    _, runs = weeks
    manifest, gaps, closed = runs[2]
    assert closed.select("patient_id", "gap", "closed_on", "closed_because", "first_seen").rows() == [
        ("LAPSED", "denosumab_lapse", D("2026-03-01"), "input_missing", D("2026-01-01"))
    ]
    assert _state(gaps) == {("UNTREATED", "untreated_high_risk"): (D("2026-01-01"), "persisting")}
    assert manifest["lifecycle"]["closed"] == {"input_missing": 1}


def test_treatment_closes_a_gap_and_a_gap_back_after_a_break_is_new_again(weeks):
    _, runs = weeks
    manifest, gaps, closed = runs[3]
    assert closed.select("patient_id", "gap", "closed_because").rows() == [
        ("UNTREATED", "untreated_high_risk", "treatment_started")
    ]
    assert _state(gaps) == {("LAPSED", "denosumab_lapse"): (D("2026-04-01"), "new")}
    assert manifest["lifecycle"]["base_as_of"] == "2026-03-01" and manifest["lifecycle"]["new"] == 1


def test_rerunning_a_week_gives_the_same_contents(weeks):
    folder, runs = weeks
    _, gaps, closed = runs[3]
    manifest, again, closed_again = _screen(folder, "2026-04-01", TREATED)
    assert again.equals(gaps) and closed_again.equals(closed)
    assert manifest["lifecycle"]["base_as_of"] == "2026-03-01"


def _base(rows):
    return pl.LazyFrame(
        rows,
        schema={"patient_id": pl.Utf8, "gap": pl.Utf8, "since": pl.Date, "first_seen": pl.Date},
        orient="row",
    )


def _patients(rows):
    return pl.LazyFrame(
        rows,
        schema={"patient_id": pl.Utf8, "latest_exam_date": pl.Date, "last_treatment_date": pl.Date},
        orient="row",
    )


def _closed(base, patients, population=None, given=("scans", "meds", "fractures"), base_given=None, procedures=None):
    empty = pl.LazyFrame(schema={"patient_id": pl.Utf8, "gap": pl.Utf8})
    done = {}
    if procedures is not None:
        schema = {"patient_id": pl.Utf8, "procedure_date": pl.Date}
        done["dxa_procedures"] = pl.LazyFrame(procedures, schema=schema, orient="row")
    return {
        (r["patient_id"], r["gap"]): r["closed_because"]
        for r in closed_gaps(
            _base(base),
            empty,
            _patients(patients),
            population,
            **done,
            as_of=D("2026-06-01"),
            base_as_of=D("2026-05-01"),
            inputs_given=list(given),
            base_inputs_given=list(base_given or given),
            params=care_gap_parameters(),
        )
        .collect()
        .iter_rows(named=True)
    }


def test_each_closing_reason_from_the_data():
    seen = D("2026-01-01")
    base = [
        ("DXA", "overdue_dxa", D("2025-01-01"), seen),
        ("OLD_FRACTURE", "post_fracture_untreated", D("2024-05-31"), seen),
        ("TREATED_BEFORE_EXAM", "untreated_high_risk", D("2026-01-10"), seen),
        ("DECIDED_AGAIN", "untreated_high_risk", D("2026-01-10"), seen),
        ("NO_EXAM_NOW", "overdue_dxa", D("2025-01-01"), seen),
        ("LEFT", "screening_due", D("2025-01-01"), seen),
        ("SCANNED", "screening_due", D("2025-01-01"), seen),
    ]
    patients = [
        ("DXA", D("2026-05-20"), None),  # an exam after the last run's as-of date
        ("OLD_FRACTURE", D("2024-01-01"), None),
        ("TREATED_BEFORE_EXAM", D("2026-01-10"), D("2025-02-01")),  # within the 365 days before the exam
        ("DECIDED_AGAIN", D("2026-01-10"), D("2024-12-31")),  # too early to count
        ("SCANNED", D("2026-05-02"), None),
    ]
    members = [(pid, True, True) for pid, *_ in base if pid != "LEFT"]
    population = pl.LazyFrame(
        [("LEFT", False, True), *members],
        schema={"patient_id": pl.Utf8, "alive": pl.Boolean, "enrolled": pl.Boolean},
        orient="row",
    )
    given = ("scans", "meds", "fractures", "population")
    assert _closed(base, patients, population, given) == {
        ("DXA", "overdue_dxa"): "dxa_done",
        ("OLD_FRACTURE", "post_fracture_untreated"): "window_passed",
        ("TREATED_BEFORE_EXAM", "untreated_high_risk"): "treatment_started",
        ("DECIDED_AGAIN", "untreated_high_risk"): "no_longer_eligible",
        ("NO_EXAM_NOW", "overdue_dxa"): "input_missing",
        ("LEFT", "screening_due"): "left_population",
        ("SCANNED", "screening_due"): "dxa_done",
    }


def test_a_dxa_procedure_after_the_base_as_of_date_is_a_dxa_done_as_an_exam_is():
    """Issue 29 §3: a completed DXA procedure (no result) after the base run's as-of date (2026-05-01) closes a
    DXA gap as dxa_done; before, it closed as no_longer_eligible. On that date is not after it, as for an exam
    (latest_exam_date > base_as_of); a gap dxa_closes does not list is not closed by a DXA."""
    seen = D("2026-01-01")
    base = [
        ("AFTER", "screening_due", D("2025-01-01"), seen),
        ("ON_BASE_DAY", "screening_due", D("2025-01-01"), seen),
        ("OLDER_AND_NEWER", "screening_due", D("2025-01-01"), seen),
        ("UNTREATED", "untreated_high_risk", D("2026-01-10"), seen),
    ]
    patients = [("UNTREATED", D("2026-01-10"), None)]
    procedures = [
        ("AFTER", D("2026-05-02")),
        ("ON_BASE_DAY", D("2026-05-01")),
        ("OLDER_AND_NEWER", D("2024-03-01")),  # the latest of a patient's procedures counts
        ("OLDER_AND_NEWER", D("2026-05-20")),
        ("UNTREATED", D("2026-05-20")),
    ]
    assert _closed(base, patients, procedures=procedures) == {
        ("AFTER", "screening_due"): "dxa_done",
        ("ON_BASE_DAY", "screening_due"): "no_longer_eligible",
        ("OLDER_AND_NEWER", "screening_due"): "dxa_done",
        ("UNTREATED", "untreated_high_risk"): "no_longer_eligible",
    }


def test_a_gap_whose_input_was_not_given_this_time_is_input_missing_first():
    base = [("P", "post_fracture_untreated", D("2026-01-01"), D("2026-01-01"))]
    patients = [("P", D("2026-01-01"), D("2026-02-01"))]  # even with a treatment since
    closed = _closed(base, patients, given=("scans", "meds"), base_given=("scans", "meds", "fractures"))
    assert closed == {("P", "post_fracture_untreated"): "input_missing"}


def test_first_seen_carries_over_only_for_the_same_patient_and_gap():
    gaps = pl.LazyFrame(
        [("A", "overdue_dxa"), ("A", "untreated_high_risk")],
        schema={"patient_id": pl.Utf8, "gap": pl.Utf8},
        orient="row",
    ).with_columns(
        pl.lit(None, dtype=pl.Date).alias("since"),
        pl.lit(None, dtype=pl.Utf8).alias("exam_id"),
        pl.lit(1).alias("priority"),
        pl.lit("").alias("detail"),
        pl.lit(None, dtype=pl.Date).alias("first_seen"),
        pl.lit(None, dtype=pl.Utf8).alias("status"),
    )
    base = _base([("A", "overdue_dxa", None, D("2025-01-01")), ("B", "untreated_high_risk", None, D("2025-01-01"))])
    rows = with_lifecycle(gaps, base, D("2026-01-01")).collect().select("gap", "first_seen", "status").rows()
    assert rows == [("overdue_dxa", D("2025-01-01"), "persisting"), ("untreated_high_risk", D("2026-01-01"), "new")]


def test_the_report_shows_gaps_opened_and_closed_per_run_by_reason(weeks):
    """Issue 15 §3: per run, the gaps new since the run before, and those closed by why (read from history)."""
    from osteo_core.outputs import report

    folder, runs = weeks
    figure = report.gaps_opened_and_closed(folder / "out", runs[3][0])
    bars = {trace.name: list(trace.y)[:4] for trace in figure.data}  # a re-run of the last week may follow
    assert list(figure.data[0].x)[:4] == ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"]
    assert bars == {
        "opened (new)": [2, 0, 0, 1],
        "closed: input_missing": [0, 0, -1, 0],
        "closed: treatment_started": [0, 0, 0, -1],
    }


def test_the_report_shows_how_long_gaps_stay_on_the_list(tmp_path):
    """Open gaps count days since first seen; closed ones, days from first seen to closing."""
    from osteo_core.outputs import report

    _screen(tmp_path, "2026-01-01", PROLIA)
    _screen(tmp_path, "2026-03-01", PROLIA)  # both persist, 59 days on the list
    _screen(tmp_path, "2026-04-01", TREATED)  # the untreated gap closes after 90 days; the lapse stays
    figure = report.time_on_the_list(tmp_path / "out", D("2026-04-01"))
    bars = {trace.name: dict(zip(trace.x, trace.y, strict=True)) for trace in figure.data}
    assert {k: v for k, v in bars["still open"].items() if v} == {"≤ 90 days": 1}
    assert {k: v for k, v in bars["closed by this run"].items() if v} == {"≤ 90 days": 1}
    _screen(tmp_path, "2026-04-02", TREATED)  # one more day: the lapse has been on the list 91 days
    figure = report.time_on_the_list(tmp_path / "out", D("2026-04-02"))
    still = {trace.name: dict(zip(trace.x, trace.y, strict=True)) for trace in figure.data}["still open"]
    assert {k: v for k, v in still.items() if v} == {"≤ 365 days": 1}


def test_the_lifecycle_is_the_same_whatever_the_partitions_of_either_run(tmp_path):
    """Each partition is compared with the base's gaps of its own patients (the base split by this run's
    partition key), so memory stays that of one partition; the contents must be those of one partition, even
    when the base run was split differently. Second run: five months on, without the medications export."""
    from conftest import write_synthetic

    (tmp_path / "in").mkdir()
    paths = write_synthetic(tmp_path / "in", 400, seed=5, roster=True)

    def two_runs(out, first_partitions, second_partitions):
        common = {"scans": [str(paths["scans"])], "fractures": str(paths["fractures"]), "out": str(out)}
        common["population"] = str(paths["population"])
        run_screen(ScreenRequest(**common, meds=str(paths["meds"]), as_of="2026-01-01", partitions=first_partitions))
        second = ScreenRequest(**common, as_of="2026-06-01", partitions=second_partitions, accept_input_change=True)
        manifest = run_screen(second)
        read = lambda t: pl.read_parquet(out / f"{t}.parquet").sort(pl.all())  # noqa: E731
        lifecycle = {k: v for k, v in manifest["lifecycle"].items() if k != "base_run_id"}
        return read("care_gaps"), read("closed_gaps"), lifecycle, manifest["partitions"]

    gaps, closed, lifecycle, partitions = two_runs(tmp_path / "one", 1, 1)
    gaps_split, closed_split, lifecycle_split, partitions_split = two_runs(tmp_path / "many", 3, 5)
    assert (partitions, partitions_split) == (1, 5)
    assert lifecycle["persisting"] > 0 and lifecycle["new"] > 0 and sum(lifecycle["closed"].values()) > 0
    assert lifecycle_split == lifecycle
    assert gaps_split.equals(gaps) and closed_split.equals(closed)
