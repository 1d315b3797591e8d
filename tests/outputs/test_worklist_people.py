"""Issue 27 §2: ``osteo worklist`` is a list of people: one row per patient (her most urgent open gap, every open gap
she has, the latest outreach status across them, days on the list), most urgent first and within a priority the
most recent ``since`` first; ``--by-gap`` and the SQL ``worklist`` view stay one row per gap; a patient is hidden
only when all her open gaps are; ``mark PATIENT all`` marks every open gap of hers in one batch."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from conftest import exam, sql_json, write_scans_csv
from hypothesis import given, settings
from hypothesis import strategies as st

from osteo_core.cli import main
from osteo_core.outputs.worklist import by_patient
from osteo_core.pipeline.stages import ScreenRequest, run_screen

AS_OF = dt.date.today() - dt.timedelta(days=7)  # marks are judged against the later of today and the as-of date


def _ago(days: int) -> str:
    return (AS_OF - dt.timedelta(days=days)).isoformat()


# ANN: an untreated high-risk exam three years back, so her next DXA is overdue too (two gaps, one person);
# BOB and CAT: untreated high-risk exams 300 and 100 days back (one gap each, the same priority as ANN's)
EXAMS = {"ANN": _ago(3 * 365), "BOB": _ago(300), "CAT": _ago(100)}
ROSTER = "patient_id,sex,birth_date,death_date,enrolled_from,enrolled_to,clinic\n" + "".join(
    f"{p},F,1950-01-01,,,,{c}\n" for p, c in (("ANN", "north"), ("BOB", "south"), ("CAT", "north"))
)
UNTREATED, OVERDUE = "untreated_high_risk", "overdue_dxa"


@pytest.fixture
def out(tmp_path) -> Path:
    rows = [exam(patient_id=p, exam_id=f"E-{p}", exam_date=d, femoral_neck_t="-2.8") for p, d in EXAMS.items()]
    scans = write_scans_csv(tmp_path / "scans.csv", rows)
    (tmp_path / "roster.csv").write_text(ROSTER)
    request = ScreenRequest(
        scans=[str(scans)], population=str(tmp_path / "roster.csv"), out=str(tmp_path / "out"), as_of=AS_OF.isoformat()
    )
    run_screen(request)
    return tmp_path / "out"


def _people(capsys, out: Path, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["worklist", "--out", str(out), "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def _mark(out: Path, patient: str, gap: str, status: str) -> int:
    return main(["worklist", "mark", patient, gap, "--status", status, "--out", str(out)])


def test_one_row_per_patient_most_urgent_gap_first_then_the_most_recent(out, capsys):
    gaps = sql_json(capsys, out, "SELECT patient_id, gap FROM care_gaps ORDER BY ALL")
    assert [(g["patient_id"], g["gap"]) for g in gaps] == [
        ("ANN", OVERDUE), ("ANN", UNTREATED), ("BOB", UNTREATED), ("CAT", UNTREATED)
    ]  # fmt: skip
    people = _people(capsys, out)
    # one priority: the most recent since first (CAT's exam 100 days back, BOB's 300, ANN's three years)
    assert [p["patient_id"] for p in people] == ["CAT", "BOB", "ANN"]
    ann = people[2]
    assert (ann["gap"], ann["since"], ann["gaps"], ann["open_gaps"]) == (
        UNTREATED,
        EXAMS["ANN"],
        f"{UNTREATED}, {OVERDUE}",
        2,
    )
    assert ann["clinic"] == "north" and ann["in_roster"] is True and ann["outreach_status"] is None
    by_gap = _people(capsys, out, "--by-gap")
    assert [(r["patient_id"], r["gap"]) for r in by_gap] == [
        ("CAT", UNTREATED), ("BOB", UNTREATED), ("ANN", UNTREATED), ("ANN", OVERDUE)
    ]  # fmt: skip
    assert len(sql_json(capsys, out, "SELECT * FROM worklist")) == 4  # the SQL view stays one row per gap


def test_days_on_list_and_the_latest_status_across_her_gaps(out, capsys):
    assert _mark(out, "ANN", OVERDUE, "contacted") == 0
    assert _mark(out, "ANN", UNTREATED, "scheduled") == 0
    ann = {p["patient_id"]: p for p in _people(capsys, out)}["ANN"]
    assert ann["outreach_status"] == "scheduled" and ann["days_on_list"] == 0
    # --status filters gaps: she is listed for the gap that matches, her headline is that gap
    (row,) = _people(capsys, out, "--status", "contacted")
    assert (row["patient_id"], row["gap"], row["outreach_status"]) == ("ANN", OVERDUE, "scheduled")
    assert [p["patient_id"] for p in _people(capsys, out, "--status", "none")] == ["CAT", "BOB"]


def test_a_patient_is_hidden_only_when_every_open_gap_of_hers_is(out, capsys):
    assert _mark(out, "ANN", UNTREATED, "declined") == 0
    people = {p["patient_id"]: p for p in _people(capsys, out)}
    assert people["ANN"]["gap"] == OVERDUE  # still listed, for the gap that is not hidden
    assert _mark(out, "ANN", OVERDUE, "declined") == 0
    capsys.readouterr()
    assert main(["worklist", "--out", str(out), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert [p["patient_id"] for p in json.loads(captured.out)] == ["CAT", "BOB"]
    assert "1 patient(s) with every gap hidden" in captured.err
    shown = {p["patient_id"]: p for p in _people(capsys, out, "--all")}
    assert shown["ANN"]["hidden"] is True and shown["BOB"]["hidden"] is False


def test_mark_all_marks_every_open_gap_of_the_patient_in_one_batch(out, capsys):
    assert main(["worklist", "mark", "ANN", "all", "--status", "contacted", "--by", "RN Lee", "--out", str(out)]) == 0
    marks = sql_json(capsys, out, "SELECT patient_id, gap, status, marked_at FROM outreach ORDER BY gap")
    assert [(m["patient_id"], m["gap"], m["status"]) for m in marks] == [
        ("ANN", OVERDUE, "contacted"), ("ANN", UNTREATED, "contacted")
    ]  # fmt: skip
    assert marks[0]["marked_at"] == marks[1]["marked_at"]  # one batch
    assert main(["worklist", "mark", "NOBODY", "all", "--status", "contacted", "--out", str(out)]) == 2
    assert "no open gap for this patient" in capsys.readouterr().err
    assert len(sql_json(capsys, out, "SELECT * FROM outreach")) == 2


GAP_NAMES = ("denosumab_lapse", UNTREATED, "post_fracture_untreated", "significant_bmd_loss", OVERDUE)


@st.composite
def _open_gaps(draw) -> pl.DataFrame:
    """A run's open gaps as the live worklist view gives them: at most one row per patient and gap type."""
    keys = draw(st.sets(st.tuples(st.sampled_from(("A", "B", "C", "D")), st.sampled_from(GAP_NAMES)), max_size=14))
    rows = []
    for number, (patient, gap) in enumerate(sorted(keys)):
        marked = draw(st.booleans())
        rows.append(
            {
                "patient_id": patient, "mrn": f"mrn-{patient}" if patient != "D" else None, "gap": gap,
                "since": dt.date(2020, 1, 1) + dt.timedelta(days=draw(st.integers(0, 99))),
                "exam_id": None, "priority": GAP_NAMES.index(gap) + 1, "detail": f"d{number}",
                "first_seen": dt.date(2026, 1, 1), "status": "new", "in_roster": True, "clinic": patient.lower(),
                "days_open": draw(st.integers(0, 400)),
                "outreach_status": draw(st.sampled_from(("contacted", "declined"))) if marked else None,
                "outreach_mark": draw(st.integers(1, 10**6)) if marked else None,
                "outreach_marked_at": None, "outreach_by": None, "outreach_note": None, "hide_until": None,
                "hidden": marked and draw(st.booleans()),
            }
        )  # fmt: skip
    schema = {"since": pl.Date, "first_seen": pl.Date, "exam_id": pl.Utf8, "outreach_status": pl.Utf8,
              "outreach_mark": pl.Int64, "outreach_marked_at": pl.Datetime("us", "UTC"), "outreach_by": pl.Utf8,
              "outreach_note": pl.Utf8, "hide_until": pl.Date, "in_roster": pl.Boolean, "mrn": pl.Utf8}  # fmt: skip
    columns = ["patient_id", "mrn", "gap", "since", "exam_id", "priority", "detail", "first_seen", "status",
               "in_roster", "clinic", "days_open", "outreach_status", "outreach_mark", "outreach_marked_at",
               "outreach_by", "outreach_note", "hide_until", "hidden"]  # fmt: skip
    return pl.DataFrame(rows, schema_overrides=schema).select(columns) if rows else pl.DataFrame(
        schema={c: schema.get(c, pl.Utf8 if c in ("patient_id", "mrn", "gap", "detail", "status", "clinic") else
                            pl.Boolean if c == "hidden" else pl.Int64) for c in columns}
    )  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(everything=_open_gaps(), show_hidden=st.booleans())
def test_by_patient_is_a_plain_reading_of_her_gaps(everything, show_hidden):
    """For any open gaps: one row per patient with a gap in view; her headline is her most urgent gap in view; her
    gaps, count, days on the list and latest status are read over all her open gaps; she is hidden exactly when
    all her gaps are; the rows are ordered by priority, then the most recent since, then patient."""
    in_view = everything if show_hidden else everything.filter(~pl.col("hidden"))
    people = by_patient(in_view, everything)
    assert people.get_column("patient_id").to_list() == sorted(
        people.get_column("patient_id").to_list(),
        key=lambda p: (people.filter(pl.col("patient_id") == p)["priority"][0],
                       -people.filter(pl.col("patient_id") == p)["since"][0].toordinal(), p),
    )  # fmt: skip
    assert set(people.get_column("patient_id")) == set(in_view.get_column("patient_id"))
    for person in people.iter_rows(named=True):
        hers = everything.filter(pl.col("patient_id") == person["patient_id"]).sort("priority")
        shown = in_view.filter(pl.col("patient_id") == person["patient_id"]).sort("priority")
        assert (person["gap"], person["priority"], person["since"]) == (
            shown["gap"][0],
            shown["priority"][0],
            shown["since"][0],
        )
        assert person["gaps"] == ", ".join(hers.get_column("gap")) and person["open_gaps"] == hers.height
        assert person["days_on_list"] == hers.get_column("days_open").max()
        marked = hers.filter(pl.col("outreach_mark").is_not_null()).sort("outreach_mark")
        assert person["outreach_status"] == (marked["outreach_status"][-1] if marked.height else None)
        assert person["hidden"] == hers.get_column("hidden").all()
        assert person["clinic"] == person["patient_id"].lower()
        assert person["mrn"] == hers["mrn"][0]  # her record number, beside her id
    assert people.columns[:2] == ["patient_id", "mrn"]


def test_mark_all_never_undoes_a_refusal_and_each_row_says_its_own_gaps_status(out, capsys):
    """Her declined untreated gap is hidden and her overdue DXA is not: ``mark ANN all`` marks the overdue DXA
    only (a contacted mark on the declined gap would show it again) and says one hidden gap was left; her row,
    headed by the overdue DXA, gives that gap's own status beside the latest across her gaps."""
    assert _mark(out, "ANN", UNTREATED, "declined") == 0
    capsys.readouterr()
    assert main(["worklist", "mark", "ANN", "all", "--status", "contacted", "--out", str(out)]) == 0
    assert "1 hidden gap(s) of this patient left as marked" in capsys.readouterr().err
    marks = sql_json(capsys, out, "SELECT gap, status FROM outreach ORDER BY mark")
    assert [(m["gap"], m["status"]) for m in marks] == [(UNTREATED, "declined"), (OVERDUE, "contacted")]
    ann = {p["patient_id"]: p for p in _people(capsys, out)}["ANN"]
    assert (ann["gap"], ann["gap_outreach_status"], ann["outreach_status"]) == (OVERDUE, "contacted", "contacted")
    assert _mark(out, "ANN", OVERDUE, "declined") == 0
    assert main(["worklist", "mark", "ANN", "all", "--status", "contacted", "--out", str(out)]) == 2
    assert "no open gap that a mark does not hide" in capsys.readouterr().err
