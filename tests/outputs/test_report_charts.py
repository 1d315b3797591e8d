"""Issue 12 §7: the report's charts say what they show: a funnel that narrows, quarantine reasons by
column and check, a note for exams without a WHO category, a history axis of runs with input changes marked.
Issue 32 §2: one palette, n on every rate, the funnel's share of eligible patients untreated, a history whose
first run or largest gap type does not flatten the rest (the rendered page: test_report_screenshot.py)."""

import json

import polars as pl
import pytest
from conftest import exam, screen_synthetic, write_scans_csv, write_synthetic

from osteo_core.decide.rules import WHO_CATEGORIES
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
    screened, eligible, untreated = values
    assert list(funnel.text) == [  # each share is of the stage before, its n beside it
        f"{screened:,} screened",
        f"{eligible:,} ({eligible / screened:.0%} of screened)",
        f"{untreated:,} ({untreated / eligible:.0%} of eligible)",
    ]


def test_the_funnel_states_the_share_of_eligible_patients_untreated(out):
    """Before: "62 % of screened"; the figure a quality lead wants is the share of eligible patients untreated."""
    figure = report.eligibility_funnel(out)
    _, eligible, untreated = figure.data[0].x
    share = f"{untreated / eligible:.0%}"
    assert (
        figure.layout.title.text == f"Untreated: eligible {eligible:,} → untreated {untreated:,} ({share} of eligible)"
    )


def test_every_chart_takes_its_colours_from_the_one_palette(out):
    colours = report.palette()
    who = report.who_by_age_and_sex(out)
    assert [(t.name, t.marker.color) for t in who.data] == [(c, colours.who[c]) for c in WHO_CATEGORIES]
    ages = report.gaps_by_type_and_age(out, report.dt.date(2026, 1, 1))
    assert [t.marker.color for t in ages.data] == list(colours.gap_age)
    assert [t.name for t in ages.data] == report._gap_age_labels()  # every bucket, in order, even when empty
    gaps = list(ages.data[0].x)
    assert gaps == [g for g in report.GAP_TYPES if g in gaps]  # by priority
    for trace in report.quarantine_reasons(out).data:
        assert trace.marker.color == colours.inputs[trace.name]


def test_a_palette_without_a_colour_for_a_category_is_refused():
    table = {c: "#000000" for c in WHO_CATEGORIES[:-1]}
    with pytest.raises(ValueError, match="severe_osteoporosis"):
        report._named(table, WHO_CATEGORIES, "palette.who_category")
    with pytest.raises(ValueError, match="not a colour"):
        report._named({**table, WHO_CATEGORIES[-1]: "red"}, WHO_CATEGORIES, "palette.who_category")


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
    assert figure.data and all(axis.type == "category" for axis in figure.select_xaxes())
    assert {tuple(trace.x) for trace in figure.data} == {("2026-01-01",)}


def test_a_run_with_changed_inputs_is_marked_on_the_history(tmp_path):
    paths = write_synthetic(tmp_path, 80, seed=22)
    screen_synthetic(paths, tmp_path / "out", "2026-01-01")
    without = {"scans": [str(paths["scans"])], "out": str(tmp_path / "out"), "as_of": "2026-01-01"}
    run_screen(ScreenRequest(**without, accept_input_change=True))  # without it: refused (issue 28 §5)
    figure = report.gaps_over_time(tmp_path / "out", {})
    assert {tuple(trace.x) for trace in figure.data} == {("2026-01-01", "2026-01-01 (#2)")}
    subtitle = figure.layout.title.subtitle.text
    assert subtitle == "Dotted red line: a run whose inputs changed (2026-01-01 (#2): no medications, no fractures)"
    assert len(figure.layout.shapes) == len(figure.data)  # the line in every panel
    assert {shape.x0 for shape in figure.layout.shapes} == {"2026-01-01 (#2)"}


def test_every_chart_comes_from_the_run_the_report_resolved(tmp_path):
    """Before: each chart resolved ``current`` again, so a run published while the report was written could
    mix two runs in one file; a chart asked for a run reads that run."""
    from conftest import two_published_runs

    out, first = two_published_runs(tmp_path)
    assert list(report.eligibility_funnel(out).data[0].x)[0] == 2
    assert list(report.eligibility_funnel(out, first).data[0].x)[0] == 1


def _history(folder, *runs):
    """An output folder holding only a history.jsonl of these runs (as_of, gaps open, opened, closed by why)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        {"as_of": as_of, "care_gaps": open_, "gaps_opened": opened, "gaps_closed": closed}
        for as_of, open_, opened, closed in runs
    ]
    (folder / "history.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return folder


BIG_FIRST_RUN = (
    ("2026-01-01", {"overdue_dxa": 15000, "untreated_high_risk": 2500, "denosumab_lapse": 200}, 17700, {}),
    ("2026-02-01", {"overdue_dxa": 15020, "untreated_high_risk": 2480, "denosumab_lapse": 190}, 60, {"dxa_done": 30}),
    ("2026-03-01", {"overdue_dxa": 15010, "untreated_high_risk": 2470, "denosumab_lapse": 0}, 25,
     {"input_missing": 190, "treatment_started": 35}),
)  # fmt: skip


def test_the_first_runs_opened_bar_does_not_set_the_scale(tmp_path):
    """Before: the first run's 17.7k "opened" (every gap is new on a first run) dwarfed every later closure. The
    axis is scaled to the later runs; the first bar keeps its value, runs off the top, and says how many."""
    figure = report.gaps_opened_and_closed(_history(tmp_path, *BIG_FIRST_RUN), {})
    bars = {trace.name: list(trace.y) for trace in figure.data}
    assert bars["opened (new)"] == [17700, 60, 25]  # the data as published
    low, high = figure.layout.yaxis.range
    assert 60 < high < 17700 / 10 and low <= -225  # every later run inside, and readable
    assert [a.text for a in figure.layout.annotations] == ["first run: 17,700 opened ↑<br>(bar cut off)"]
    colours = report.palette()
    assert figure.data[0].marker.color == colours.opened
    assert {t.name: t.marker.color for t in figure.data[1:]} == {
        f"closed: {r}": colours.closed_because[r] for r in ("input_missing", "treatment_started", "dxa_done")
    }


def test_a_first_run_no_larger_than_the_rest_is_drawn_to_scale(tmp_path):
    runs = [("2026-01-01", {"overdue_dxa": 5}, 5, {}), ("2026-02-01", {"overdue_dxa": 40}, 40, {"dxa_done": 5})]
    figure = report.gaps_opened_and_closed(_history(tmp_path, *runs), {})
    assert figure.layout.yaxis.range is None and not figure.layout.annotations


def test_the_history_has_one_panel_per_gap_type_each_on_its_own_scale(tmp_path):
    """Before: one axis for every gap type, so those of hundreds lay flat at zero under overdue_dxa's 15,000."""
    figure = report.gaps_over_time(_history(tmp_path, *BIG_FIRST_RUN), {})
    names = [trace.name for trace in figure.data]
    assert names == [g for g in report.GAP_TYPES if g in names] and len(names) == 3  # by priority
    assert len({trace.yaxis for trace in figure.data}) == 3  # each its own axis
    assert all(axis.rangemode == "tozero" and axis.matches is None for axis in figure.select_yaxes())
    assert [a.text for a in figure.layout.annotations] == names  # each panel titled by its gap type


def test_each_measure_rate_shows_its_n_and_its_uncertainty():
    """Before: MIPS 039 (n = 3,852) and OMW (n = 27) as equal bars, with no n."""
    rates = pl.DataFrame(
        {
            "measure": ["MIPS039", "OMW", "MIPS418"],
            "denominator": [3852, 28, 0],
            "exclusions": [0, 1, 0],
            "numerator": [3268, 11, 0],
            "rate": [3268 / 3852, 11 / 27, None],
        }
    )
    figure = report.measure_rates(rates)
    (bars,) = figure.data
    assert list(bars.x) == ["MIPS039<br>n = 3,852", "OMW<br>n = 27", "MIPS418<br>n = 0"]
    assert [a.text for a in figure.layout.annotations] == ["84.8%<br>n = 3,852", "40.7%<br>n = 27", "n/a<br>n = 0"]
    big, small = (bars.error_y.array[i] + bars.error_y.arrayminus[i] for i in (0, 1))
    assert small > 5 * big  # a measure of 27 patients is visibly less certain
    lo, hi = report.wilson_interval(5, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.237, 0.763) and report.wilson_interval(0, 0) == (0.0, 1.0)


def test_a_lone_first_run_says_gaps_close_from_the_next_run_on(tmp_path):
    figure = report.gaps_opened_and_closed(_history(tmp_path, BIG_FIRST_RUN[0]), {})
    assert list(figure.data[0].y) == [17700] and figure.layout.yaxis.range is None
    assert "one run so far" in figure.layout.title.subtitle.text
