"""Issue 27 §1: no gap of any type lists a patient who is dead on the as-of date or, with a roster, not enrolled on
it; a gap open in the last published run closes as ``left_population`` saying which (died, disenrolled); the dead
are never enrolled; a patient the roster does not list keeps her gaps and the worklist says ``in_roster`` false."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from conftest import exam, sql_json, write_scans_csv, write_synthetic

from osteo_core.gaps.population import roster_patients
from osteo_core.pipeline.stages import ScreenRequest, run_screen

AS_OF = dt.date(2026, 11, 2)
DAY = dt.timedelta(days=1)
HIGH_RISK = {"femoral_neck_t": "-2.8", "exam_date": (AS_OF - dt.timedelta(days=100)).isoformat()}
HEADER = "patient_id,sex,birth_date,death_date,enrolled_from,enrolled_to,clinic\n"


def _row(patient: str, death: dt.date | None = None, enrolled_to: dt.date | None = None) -> str:
    return f"{patient},F,1950-01-01,{death or ''},2000-01-01,{enrolled_to or ''},north\n"


def _screen(folder: Path, roster: str | None, as_of: dt.date = AS_OF, patients=("ANN", "BOB", "CAT")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    scans = write_scans_csv(folder / "scans.csv", [exam(patient_id=p, exam_id=f"E-{p}", **HIGH_RISK) for p in patients])
    population = None
    if roster is not None:
        population = folder / "roster.csv"
        population.write_text(HEADER + roster)
    out = folder / "out"
    request = ScreenRequest(
        scans=[str(scans)], population=str(population) if population else None, out=str(out), as_of=as_of.isoformat()
    )
    run_screen(request)
    return out


def _gap_patients(capsys, out: Path) -> set[str]:
    return {r["patient_id"] for r in sql_json(capsys, out, "SELECT patient_id FROM care_gaps")}


@pytest.mark.parametrize(
    ("death", "enrolled_to", "listed"),
    [
        (None, None, True),
        (AS_OF - DAY, None, False),  # died the day before
        (AS_OF, None, False),  # died on the as-of date: alive on a day means dying after it
        (AS_OF + DAY, None, True),  # dies after the as-of date (a replayed day)
        (None, AS_OF - DAY, False),  # enrolment ended the day before
        (None, AS_OF, True),  # the span's last day is included
    ],
)
def test_a_gap_opens_only_for_the_alive_and_enrolled(tmp_path, capsys, death, enrolled_to, listed):
    out = _screen(tmp_path, _row("ANN", death, enrolled_to), patients=("ANN",))
    assert _gap_patients(capsys, out) == ({"ANN"} if listed else set())


def test_the_dead_are_never_enrolled():
    roster = pl.LazyFrame(
        {
            "patient_id": ["ANN", "BOB"],
            "sex": ["F", "F"],
            "birth_date": [dt.date(1950, 1, 1)] * 2,
            "death_date": [AS_OF - DAY, None],
            "enrolled_from": [dt.date(2000, 1, 1)] * 2,
            "enrolled_to": [None, None],  # ANN's span was never ended by the roster
        }
    )
    people = {r["patient_id"]: r for r in roster_patients(roster, AS_OF, ()).collect().iter_rows(named=True)}
    assert (people["ANN"]["alive"], people["ANN"]["enrolled"], people["ANN"]["enrolled_since"]) == (False, False, None)
    assert (people["BOB"]["alive"], people["BOB"]["enrolled"]) == (True, True)


def test_every_gap_type_leaves_out_the_dead_and_the_disenrolled(tmp_path, capsys):
    """On a synthetic registry with a roster (deaths, ended enrolments, people never scanned): the gaps with the
    roster are those without it, less every gap of a patient the roster says is dead or not enrolled, plus
    screening_due; and no gap type is left out of the comparison."""
    paths = write_synthetic(tmp_path, patients=600, seed=11, roster=True, recent_fractures=0.2)
    as_of = "2026-11-02"

    def run(name: str, **given) -> Path:
        request = ScreenRequest(
            scans=[str(paths["scans"])], meds=str(paths["meds"]), fractures=str(paths["fractures"]),
            out=str(tmp_path / name), as_of=as_of, **given,
        )  # fmt: skip
        run_screen(request)
        return tmp_path / name

    plain, rostered = run("plain"), run("rostered", population=str(paths["population"]))
    gaps = "SELECT patient_id, gap FROM care_gaps WHERE gap <> 'screening_due'"
    without = {(r["patient_id"], r["gap"]) for r in sql_json(capsys, plain, gaps)}
    with_roster = {(r["patient_id"], r["gap"]) for r in sql_json(capsys, rostered, gaps)}
    off = {
        r["patient_id"]: (r["alive"], r["enrolled"])
        for r in sql_json(capsys, rostered, "SELECT patient_id, alive, enrolled FROM population WHERE NOT enrolled")
    }
    dropped = {g for g in without if g[0] in off}
    assert {alive for alive, _ in off.values()} == {True, False}  # both the dead and the departed are there
    assert {gap for _, gap in dropped} >= {"untreated_high_risk", "overdue_dxa", "denosumab_lapse"}
    assert with_roster == without - dropped
    listed = sql_json(capsys, rostered, "SELECT count(*) AS n FROM care_gaps g JOIN population p USING (patient_id) "
                      "WHERE NOT (p.alive AND p.enrolled)")  # fmt: skip
    assert listed == [{"n": 0}]


def test_a_gap_closes_as_left_population_saying_who_died_and_who_left(tmp_path, capsys):
    """Week 1 everyone is alive and enrolled; by week 2 ANN has died (her roster span still open), BOB's enrolment
    has ended and CAT has dropped out of the roster: ANN's and BOB's gaps close (died, disenrolled), CAT's stays
    open with in_roster false."""
    _screen(tmp_path, _row("ANN") + _row("BOB") + _row("CAT"))
    week2 = AS_OF + dt.timedelta(days=7)
    out = _screen(tmp_path, _row("ANN", death=AS_OF + 3 * DAY) + _row("BOB", enrolled_to=AS_OF + DAY), as_of=week2)
    closed = sql_json(capsys, out, "SELECT patient_id, gap, closed_because, closed_detail FROM closed_gaps")
    assert sorted((r["patient_id"], r["closed_because"], r["closed_detail"]) for r in closed) == [
        ("ANN", "left_population", "died"),
        ("BOB", "left_population", "disenrolled"),
    ]
    open_rows = sql_json(capsys, out, "SELECT patient_id, status, in_roster FROM worklist")
    assert open_rows == [{"patient_id": "CAT", "status": "persisting", "in_roster": False}]


def test_without_a_roster_in_roster_is_blank(tmp_path, capsys):
    out = _screen(tmp_path, None, patients=("ANN",))
    assert sql_json(capsys, out, "SELECT patient_id, in_roster FROM worklist") == [
        {"patient_id": "ANN", "in_roster": None}
    ]


def test_a_never_scanned_woman_dropped_from_the_roster_closes_as_left_roster(tmp_path, capsys):
    """screening_due exists only through the roster: when the roster stops listing her, the gap closes as
    left_population (left_roster), not as no_longer_eligible; the scanned patients' gaps stay open."""
    _screen(tmp_path, _row("ANN") + _row("DOT"), patients=("ANN",))
    week2 = AS_OF + dt.timedelta(days=7)
    out = _screen(tmp_path, _row("ANN"), as_of=week2, patients=("ANN",))
    closed = sql_json(capsys, out, "SELECT patient_id, gap, closed_because, closed_detail FROM closed_gaps")
    assert closed == [
        {
            "patient_id": "DOT",
            "gap": "screening_due",
            "closed_because": "left_population",
            "closed_detail": "left_roster",
        }
    ]


def test_a_dead_patient_whose_roster_row_is_quarantined_is_off_the_list_and_in_the_roster(tmp_path, capsys):
    """Her roster row is held back (an unreadable sex) but says she died: no gap lists her; BOB, whose row is
    held back too but who is alive, keeps his gaps and shows in_roster true, not 'absent from the roster'."""
    bad = lambda row: row.replace(",F,", ",unknown,", 1)  # noqa: E731
    out = _screen(tmp_path, bad(_row("ANN", death=AS_OF - DAY)) + bad(_row("BOB")) + _row("CAT"))
    rows = sql_json(capsys, out, "SELECT patient_id, in_roster FROM worklist ORDER BY patient_id")
    assert rows == [{"patient_id": "BOB", "in_roster": True}, {"patient_id": "CAT", "in_roster": True}]
