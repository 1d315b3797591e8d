"""Issue 12 §7: the report's charts say what they show: a funnel that narrows, quarantine reasons by
column and check, a note for exams without a WHO category, a history axis of runs with input changes marked."""

import pytest
from conftest import exam, screen_synthetic, write_scans_csv, write_synthetic

from osteo_core.outputs import report
from osteo_core.pipeline.stages import ScreenRequest, run_screen


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("charts")
    paths = write_synthetic(folder, 300, seed=21)
    screen_synthetic(paths, folder / "out", "2026-01-01", max_reject_rate=0.5)
    return folder / "out"


def test_the_funnel_narrows_at_every_stage(out):
    """Before: screened, eligible, treated, untreated, with 'untreated' wider than 'treated'."""
    (funnel,) = report.eligibility_funnel(out).data
    values = list(funnel.x)
    assert len(values) == 3 and values[0] >= values[1] >= values[2] > 0
    assert funnel.texttemplate == "%{value:,d} (%{percentInitial:.0%})"  # one number format for every label


def test_quarantine_reasons_name_the_column(out):
    labels = [y for bar in report.quarantine_reasons(out).data for y in bar.y]
    assert labels and all(": " in label for label in labels)
    assert any(label.startswith(("weight_kg: ", "femoral_neck_t: ", "exam_date: ")) for label in labels)


def test_exams_without_a_who_category_are_counted_in_a_note(tmp_path):
    rows = [exam(), exam(exam_id="E2", patient_id="P2", sex="M", birth_date="1990-01-01", femoral_neck_z="-1.0")]
    run_screen(ScreenRequest(scans=[str(write_scans_csv(tmp_path / "s.csv", rows))], out=str(tmp_path / "o")))
    notes = [a.text for a in report.who_by_age_and_sex(tmp_path / "o").layout.annotations]
    assert any(note.startswith("1 exam(s) without a WHO category are not shown") for note in notes)


def test_a_single_run_history_is_one_category_not_a_millisecond_axis(out):
    figure = report.gaps_over_time(out, {"as_of": "2026-01-01", "care_gaps": {}})
    assert figure.layout.xaxis.type == "category"
    assert {tuple(trace.x) for trace in figure.data} == {("2026-01-01",)}


def test_a_run_with_changed_inputs_is_marked_on_the_history(tmp_path):
    paths = write_synthetic(tmp_path, 80, seed=22)
    screen_synthetic(paths, tmp_path / "out", "2026-01-01")
    without = {"scans": [str(paths["scans"])], "out": str(tmp_path / "out"), "as_of": "2026-01-01"}
    run_screen(ScreenRequest(**without, accept_input_change=True))  # without it: refused (issue 28 §5)
    figure = report.gaps_over_time(tmp_path / "out", {})
    assert {tuple(trace.x) for trace in figure.data} == {("2026-01-01", "2026-01-01 (#2)")}
    notes = [a.text for a in figure.layout.annotations]
    assert notes == ["inputs changed: no medications, no fractures"]


def test_every_chart_comes_from_the_run_the_report_resolved(tmp_path):
    """Before: each chart resolved ``current`` again, so a run published while the report was written could
    mix two runs in one file; a chart asked for a run reads that run."""
    from conftest import two_published_runs

    out, first = two_published_runs(tmp_path)
    assert list(report.eligibility_funnel(out).data[0].x)[0] == 2
    assert list(report.eligibility_funnel(out, first).data[0].x)[0] == 1
