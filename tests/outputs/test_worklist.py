"""Issue 15 §2–4: outreach marks on open gaps (``osteo worklist mark``), the worklist that hides declined and
not-appropriate gaps until their date, the log (concurrent writers, an old log's torn line, a later screen and a
screen killed half-way), and the log in the SQL catalog. The store itself: tests/publish/test_outreach_store.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import exam, sql_json, write_scans_csv
from hypothesis import given, settings
from hypothesis import strategies as st

from osteo_core.cli import main
from osteo_core.outputs.worklist import record_marks
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.publish import folder as publish
from osteo_core.publish import outreach
from osteo_core.resources import shipped_toml

TODAY = dt.date.today()
AS_OF = TODAY - dt.timedelta(days=7)
HIGH_RISK = {"femoral_neck_t": "-2.8", "exam_date": (AS_OF - dt.timedelta(days=100)).isoformat()}
PATIENTS = {"ANN": "north", "BOB": "south", "CAT": "north"}  # patient → clinic: three untreated high-risk gaps
ROSTER = "patient_id,sex,birth_date,death_date,enrolled_from,enrolled_to,clinic,pcp_id\n" + "".join(
    f"{p},F,1950-01-01,,,,{clinic},pcp-{p}\n" for p, clinic in PATIENTS.items()
)
UNTREATED = "untreated_high_risk"


def _screen(folder: Path, as_of: dt.date, patients: tuple[str, ...] = tuple(PATIENTS)) -> dict:
    scans = write_scans_csv(folder / "scans.csv", [exam(patient_id=p, exam_id=f"E-{p}", **HIGH_RISK) for p in patients])
    roster = folder / "roster.csv"
    roster.write_text(ROSTER)
    return run_screen(
        ScreenRequest(scans=[str(scans)], population=str(roster), out=str(folder / "out"), as_of=as_of.isoformat())
    )


def _mark(out: Path, *args: str) -> int:
    return main(["worklist", "mark", *args, "--out", str(out)])


def _listing(capsys, out: Path, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["worklist", "--out", str(out), "--format", "json", "--by-gap", *args]) == 0  # one row per gap
    return json.loads(capsys.readouterr().out)


def _shown(capsys, out: Path, *args: str) -> dict[str, str | None]:
    return {r["patient_id"]: r["outreach_status"] for r in _listing(capsys, out, *args)}


def _run_digest(out: Path) -> dict[str, str]:
    """Every file of every run folder, by content: a published run is never rewritten."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / publish.RUNS).rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def out(tmp_path) -> Path:
    _screen(tmp_path, AS_OF)
    return tmp_path / "out"


def test_a_mark_is_recorded_with_who_and_when_and_shows_on_the_worklist(out, capsys):
    before = _run_digest(out)
    assert _mark(out, "ANN", UNTREATED, "--status", "contacted", "--note", "left a message", "--by", "RN Lee") == 0
    (record,) = outreach.read_log(out).marks.to_dicts()
    assert {k: record[k] for k in ("mark", "patient_id", "gap", "status", "note", "marked_by", "hide_until")} == {
        "mark": 1,
        "patient_id": "ANN",
        "gap": UNTREATED,
        "status": "contacted",
        "note": "left a message",
        "marked_by": "RN Lee",
        "hide_until": None,
    }
    assert abs(dt.datetime.now(dt.UTC) - record["marked_at"]) < dt.timedelta(minutes=5)
    assert record["run_id"] == publish.published_manifest(out)["run_id"]
    rows = {r["patient_id"]: r for r in _listing(capsys, out)}
    assert rows["ANN"]["outreach_status"] == "contacted" and rows["ANN"]["outreach_by"] == "RN Lee"
    assert rows["BOB"]["outreach_status"] is None
    assert rows["ANN"]["days_open"] == 0 and rows["ANN"]["status"] == "new"
    assert _run_digest(out) == before  # the published run is untouched


def test_without_by_the_login_name_is_recorded(out):
    import getpass

    assert _mark(out, "ANN", UNTREATED, "--status", "scheduled") == 0
    assert outreach.read_log(out).marks.get_column("marked_by").to_list() == [getpass.getuser()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("NOBODY", UNTREATED, "--status", "contacted"), "GAP: no open untreated_high_risk gap for this patient"),
        (("ANN", "overdue_dxa", "--status", "contacted"), "GAP: no open overdue_dxa gap for this patient"),
        (("ANN", "no_such_gap", "--status", "contacted"), "GAP: not a known gap type (known: "),
        (("ANN", UNTREATED, "--status", "contacted", "--until", "2099-01-01"), "--until: only declined and"),
        (("ANN", UNTREATED, "--status", "declined", "--until", TODAY.isoformat()), "not after today or the run's"),
        (("ANN", UNTREATED, "--status", "declined", "--until", "next week"), "--until: not a date (YYYY-MM-DD)"),
        (("ANN", UNTREATED), "PATIENT_ID, GAP and --status are required"),
    ],
)
def test_a_mark_that_cannot_be_right_is_refused_in_one_line_and_nothing_is_written(out, capsys, args, message):
    capsys.readouterr()
    assert _mark(out, *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (out / outreach.STORE).exists()


def test_an_unknown_status_is_a_usage_error(out, capsys):
    assert _mark(out, "ANN", UNTREATED, "--status", "phoned") == 2
    assert "invalid choice: 'phoned'" in capsys.readouterr().err
    assert not (out / outreach.STORE).exists()


def test_marking_needs_a_published_screen(tmp_path, capsys):
    assert _mark(tmp_path, "ANN", UNTREATED, "--status", "contacted") == 2
    assert "no published screen here" in capsys.readouterr().err


def test_declined_hides_the_gap_from_the_worklist_only_for_a_year_by_default(out, capsys):
    before = dt.date.today()
    assert _mark(out, "BOB", UNTREATED, "--status", "declined") == 0
    after = dt.date.today()  # the two differ only if midnight passed during the mark
    days = shipped_toml("reference/outreach.toml")["hide"]["declined"]
    (record,) = outreach.read_log(out).marks.to_dicts()
    assert record["hide_until"] in {day + dt.timedelta(days=days) for day in (before, after)}
    assert set(_shown(capsys, out)) == {"ANN", "CAT"}
    assert main(["worklist", "--out", str(out), "--by-gap"]) == 0
    assert "osteo: 1 gap(s) hidden (declined or not_appropriate, until their date): --all shows them" in (
        capsys.readouterr().err
    )
    assert set(_shown(capsys, out, "--all")) == {"ANN", "BOB", "CAT"}
    assert _shown(capsys, out, "--status", "declined") == {"BOB": "declined"}
    assert set(_shown(capsys, out, "--status", "none")) == {"ANN", "CAT"}
    # never from the published gaps or the gap list
    assert sql_json(capsys, out, "SELECT count(*) AS n FROM care_gaps WHERE patient_id = 'BOB'") == [{"n": 1}]
    capsys.readouterr()
    assert main(["gaps", "--out", str(out), "--format", "csv"]) == 0
    assert "BOB" in capsys.readouterr().out


def test_reopened_shows_a_declined_gap_again(out, capsys):
    assert _mark(out, "CAT", UNTREATED, "--status", "not_appropriate", "--note", "palliative care") == 0
    assert "CAT" not in _shown(capsys, out)
    assert _mark(out, "CAT", UNTREATED, "--status", "reopened") == 0
    assert _shown(capsys, out)["CAT"] == "reopened"


def test_a_hidden_gap_comes_back_on_the_first_run_as_of_its_until_date(tmp_path, capsys):
    """Hidden while the run's as-of date is before hide_until; shown on that date. The gap stays in care_gaps
    (and so in the quality measures) all along: the screen never reads the log."""
    _screen(tmp_path, AS_OF)
    out = tmp_path / "out"
    until = TODAY + dt.timedelta(days=30)
    assert _mark(out, "BOB", UNTREATED, "--status", "declined", "--until", until.isoformat()) == 0
    _screen(tmp_path, until - dt.timedelta(days=1))
    assert "BOB" not in _shown(capsys, out)
    assert pl.read_parquet(out / "care_gaps.parquet").filter(pl.col("patient_id") == "BOB").height == 1
    _screen(tmp_path, until)
    assert _shown(capsys, out)["BOB"] == "declined"  # expired: back on the list, its last status shown


def test_until_and_its_default_count_from_the_run_when_its_as_of_date_is_after_today(tmp_path, capsys):
    """Hiding is judged on the runs' as-of dates: an --until not after the published run's as-of date would
    hide nothing, so it is refused; the default year starts from that date. Before: accepted, and never hid."""
    later = TODAY + dt.timedelta(days=20)
    _screen(tmp_path, later)
    out = tmp_path / "out"
    assert (
        _mark(out, "ANN", UNTREATED, "--status", "declined", "--until", (later - dt.timedelta(days=5)).isoformat()) == 2
    )
    assert f"not after today or the run's as-of date ({later.isoformat()})" in capsys.readouterr().err
    assert _mark(out, "ANN", UNTREATED, "--status", "declined") == 0
    days = shipped_toml("reference/outreach.toml")["hide"]["declined"]
    assert outreach.read_log(out).marks.get_column("hide_until").to_list() == [later + dt.timedelta(days=days)]
    assert "ANN" not in _shown(capsys, out)


def test_the_screen_summary_says_what_is_new_and_what_closed(tmp_path, capsys):
    from osteo_core.cli.summary import lifecycle_lines

    first = _screen(tmp_path, AS_OF)
    assert lifecycle_lines(first) == []  # the first run in a folder is compared with nothing
    second = _screen(tmp_path, AS_OF + dt.timedelta(days=7))
    assert lifecycle_lines(second) == [f"since the run as of {AS_OF.isoformat()}: 0 new gaps, 3 persisting, 0 closed"]
    third = dict(second, lifecycle=second["lifecycle"] | {"closed": {"treatment_started": 2, "dxa_done": 1}})
    assert lifecycle_lines(third)[0].endswith("3 closed (treatment_started 2, dxa_done 1)")


def test_filters_by_gap_and_by_the_roster_routing_columns(out, capsys):
    assert [r["patient_id"] for r in _listing(capsys, out, "--clinic", "north")] == ["ANN", "CAT"]
    assert [r["patient_id"] for r in _listing(capsys, out, "--clinic=south")] == ["BOB"]
    assert _listing(capsys, out, "--gap", "overdue_dxa") == []
    capsys.readouterr()
    assert main(["worklist", "--out", str(out), "--clinic", "west", "--format", "json"]) == 0
    listed = capsys.readouterr()
    assert json.loads(listed.out) == [] and "osteo: no open gap in this run has clinic 'west'" in listed.err
    assert [r["patient_id"] for r in _listing(capsys, out, "--pcp-id", "pcp-CAT", "--clinic", "north")] == ["CAT"]
    assert main(["worklist", "--out", str(out), "--ward", "7"]) == 2
    assert "--ward: not a routing column of this roster (--pcp-id, --clinic)" in capsys.readouterr().err
    assert main(["worklist", "--out", str(out), "--clinic"]) == 2
    assert "--clinic needs a value" in capsys.readouterr().err


def test_the_worklist_prints_in_the_same_formats_as_the_gap_list(out, capsys):
    capsys.readouterr()
    assert main(["worklist", "--out", str(out), "--format", "csv", "--by-gap"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert header[:10] == ["patient_id", "mrn", "gap", "since", "exam_id", "priority", "detail", "first_seen", "status",
                           "in_roster"]  # fmt: skip
    assert header[10:] == ["pcp_id", "clinic", "days_open", "outreach_status", "outreach_mark", "outreach_marked_at",
                          "outreach_by", "outreach_note", "hide_until", "hidden"]  # fmt: skip
    assert main(["worklist", "--out", str(out), "--format", "table", "--by-gap"]) == 0
    assert "3 open gap(s)" in capsys.readouterr().out
    assert main(["worklist", "--out", str(out), "--format", "csv"]) == 0  # the default: one row per patient
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert header == ["patient_id", "mrn", "priority", "gap", "since", "detail", "exam_id", "gap_outreach_status",
                      "gaps", "in_roster", "pcp_id",
                      "clinic", "open_gaps", "days_on_list", "outreach_status", "outreach_mark", "outreach_marked_at",
                      "outreach_by", "outreach_note", "hidden"]  # fmt: skip
    assert main(["worklist", "--out", str(out), "--format", "table"]) == 0
    assert "3 patient(s)" in capsys.readouterr().out


def test_a_csv_of_marks_is_recorded_whole(out, tmp_path, capsys):
    marks = tmp_path / "marks.csv"
    marks.write_text(
        "patient_id,gap,status,note,until\n"
        f'ANN,{UNTREATED},contacted,"called, no answer",\n'
        f"BOB,{UNTREATED},declined,,{(TODAY + dt.timedelta(days=90)).isoformat()}\n"
    )
    assert main(["worklist", "mark", "--file", str(marks), "--by", "team A", "--out", str(out)]) == 0
    assert "recorded 2 mark(s)" in capsys.readouterr().out
    log = outreach.read_log(out).marks
    assert log.select("mark", "patient_id", "status", "note", "marked_by").rows() == [
        (1, "ANN", "contacted", "called, no answer", "team A"),
        (2, "BOB", "declined", None, "team A"),
    ]
    assert log.get_column("hide_until").to_list() == [None, TODAY + dt.timedelta(days=90)]


def test_a_csv_with_one_bad_row_records_nothing_and_names_the_row(out, tmp_path, capsys):
    marks = tmp_path / "marks.csv"
    marks.write_text(
        f"patient_id,gap,status\nANN,{UNTREATED},contacted\nBOB,{UNTREATED},phoned\nNOBODY,{UNTREATED},contacted\n"
    )
    capsys.readouterr()
    assert main(["worklist", "mark", "--file", str(marks), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{marks} data row 2, column status: not a known status (known: " in err and "phoned" not in err
    assert "(and 1 more row(s); nothing was recorded)" in err
    assert not (out / outreach.STORE).exists()
    marks.write_text("patient_id,status\nANN,contacted\n")
    assert main(["worklist", "mark", "--file", str(marks), "--out", str(out)]) == 2
    assert "missing column(s) gap" in capsys.readouterr().err
    marks.write_text(f"patient_id,gap,gap,status\nANN,{UNTREATED},{UNTREATED},contacted\n")  # before: gap_duplicated_0
    assert main(["worklist", "mark", "--file", str(marks), "--out", str(out)]) == 2
    assert "duplicate column header(s): 'gap' (column 2) and 'gap' (column 3)" in capsys.readouterr().err


def _mark_many(args: tuple[str, int]) -> None:
    out, worker = args
    for number in range(10):
        record_marks(
            Path(out),
            [
                {
                    "patient_id": "ANN",
                    "gap": UNTREATED,
                    "status": "contacted",
                    "note": f"{worker}-{number}",
                    "by": f"worker {worker}",
                    "until": None,
                }
            ],  # fmt: skip
            "mark",
        )


def test_people_marking_at_the_same_time_lose_nothing(out):
    workers = 6
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_mark_many, [(str(out), w) for w in range(workers)])
    log = outreach.read_log(out)
    assert not log.unreadable
    assert log.marks.height == workers * 10
    assert sorted(log.marks.get_column("mark").to_list()) == list(range(1, workers * 10 + 1))
    assert sorted(log.marks.get_column("note").to_list()) == sorted(
        f"{w}-{n}" for w in range(workers) for n in range(10)
    )


def test_a_line_cut_off_in_an_old_log_is_reported_once_as_the_log_moves_into_the_store(out, capsys):
    """An ``outreach.jsonl`` of an earlier version with a line cut off by a crash (and the next writer's line
    after it): its marks move into the store with their numbers, the cut line is said once, by its number.
    Before: every later worklist and sql call repeated the warning."""
    old = {"marked_at": "2026-01-02T10:00:00+00:00", "gap": UNTREATED, "first_seen": AS_OF.isoformat(),
           "status": "contacted", "hide_until": None, "note": None, "marked_by": "x", "run_id": "r"}  # fmt: skip
    (out / outreach.LEGACY_LOG).write_text(
        json.dumps({"mark": 1, "patient_id": "ANN", **old}) + "\n"
        + '{"mark": 2, "marked_at": "2026-\n'  # a writer killed mid-line
        + json.dumps({"mark": 2, "patient_id": "BOB", **old}) + "\n"
    )  # fmt: skip
    capsys.readouterr()
    assert _mark(out, "CAT", UNTREATED, "--status", "scheduled") == 0
    err = capsys.readouterr().err
    assert "outreach.jsonl: 2 mark(s) moved into outreach.sqlite" in err
    assert "1 line(s) are not a readable mark (line 2;" in err
    log = outreach.read_log(out)
    assert log.unreadable == [] and log.warning() is None
    assert log.marks.select("mark", "patient_id").rows() == [(1, "ANN"), (2, "BOB"), (3, "CAT")]
    assert main(["worklist", "--out", str(out), "--format", "csv"]) == 0
    assert "not a readable mark" not in capsys.readouterr().err


def test_the_log_survives_a_later_screen_and_a_screen_killed_half_way(out, tmp_path, capsys):
    assert _mark(out, "ANN", UNTREATED, "--status", "contacted") == 0
    assert _mark(out, "BOB", UNTREATED, "--status", "declined") == 0
    log_before = (out / outreach.STORE).read_bytes()
    folder = out.parent
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_SCREEN, str(folder), (AS_OF + dt.timedelta(days=7)).isoformat()],
        env={**os.environ, publish.CRASH_ENV: "before_swap"},
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert (out / outreach.STORE).read_bytes() == log_before
    _screen(folder, AS_OF + dt.timedelta(days=7))  # next week's screen publishes
    assert (out / outreach.STORE).read_bytes() == log_before
    rows = {r["patient_id"]: r for r in _listing(capsys, out, "--all")}
    assert rows["ANN"]["outreach_status"] == "contacted" and rows["ANN"]["status"] == "persisting"
    assert rows["ANN"]["days_open"] == 7
    assert rows["BOB"]["hidden"] is True


_KILLED_SCREEN = """
import sys
from pathlib import Path
from osteo_core.pipeline.stages import ScreenRequest, run_screen
folder = Path(sys.argv[1])
run_screen(ScreenRequest(scans=[str(folder / "scans.csv")], population=str(folder / "roster.csv"),
                         out=str(folder / "out"), as_of=sys.argv[2]))
"""


def test_the_log_is_a_table_in_sql_and_the_worklist_view_carries_the_latest_mark(out, capsys):
    assert _mark(out, "ANN", UNTREATED, "--status", "contacted") == 0
    assert _mark(out, "ANN", UNTREATED, "--status", "scheduled", "--note", "DXA on Friday") == 0
    assert sql_json(capsys, out, "SELECT mark, status FROM outreach ORDER BY mark") == [
        {"mark": 1, "status": "contacted"},
        {"mark": 2, "status": "scheduled"},
    ]
    rows = sql_json(
        capsys, out, "SELECT outreach_status, outreach_note, first_seen, status FROM worklist WHERE patient_id='ANN'"
    )
    assert rows == [
        {
            "outreach_status": "scheduled",
            "outreach_note": "DXA on Friday",
            "first_seen": AS_OF.isoformat(),
            "status": "new",
        }  # fmt: skip
    ]
    capsys.readouterr()
    assert main(["sql", "--tables", "--format", "csv"]) == 0
    listing = capsys.readouterr().out
    assert "outreach,mark," in listing and "worklist,outreach_status," in listing


@pytest.mark.parametrize(
    ("hide", "message"),
    [
        ({"phoned": 30}, "[hide] phoned is not a status of [status]"),
        ({"declined": 0}, "[hide] declined must be a whole number of days above 0"),
        ({"declined": 1.5}, "[hide] declined must be a whole number of days above 0"),
        ({"declined": True}, "[hide] declined must be a whole number of days above 0"),
    ],
)
def test_a_broken_statuses_file_is_refused(hide, message):
    data = shipped_toml("reference/outreach.toml")
    assert outreach.check_outreach(data) is data  # the shipped file passes
    with pytest.raises(ValueError, match=re.escape(message)):
        outreach.check_outreach({"status": data["status"], "hide": hide}, "outreach.toml")


def test_a_gap_that_closes_and_opens_again_comes_back_unmarked(tmp_path, capsys):
    """A mark belongs to one episode of a gap (its first_seen). Before: a refusal recorded for one episode hid
    the gap that opened again later, new, for a year."""
    _screen(tmp_path, AS_OF)
    out = tmp_path / "out"
    assert _mark(out, "ANN", UNTREATED, "--status", "declined") == 0
    _screen(tmp_path, AS_OF + dt.timedelta(days=1), patients=("BOB", "CAT"))  # ANN's exam is not in this export
    assert pl.read_parquet(out / "closed_gaps.parquet").get_column("patient_id").to_list() == ["ANN"]
    _screen(tmp_path, AS_OF + dt.timedelta(days=2))  # back: a new episode
    rows = {r["patient_id"]: r for r in _listing(capsys, out)}
    assert rows["ANN"]["status"] == "new" and rows["ANN"]["first_seen"] == (AS_OF + dt.timedelta(days=2)).isoformat()
    assert rows["ANN"]["outreach_status"] is None and rows["ANN"]["hidden"] is False


def test_options_before_mark_belong_to_the_mark(out, tmp_path, capsys):
    """Before: in ``osteo worklist --out X mark …`` the mark's own default replaced X, and in ``osteo worklist
    --all mark … --until D --note N`` the mark's options were read as routing filters and dropped."""
    (tmp_path / "e").mkdir()
    _screen(tmp_path / "e", AS_OF)
    other = tmp_path / "e" / "out"
    assert main(["worklist", "--out", str(other), "mark", "ANN", UNTREATED, "--status", "contacted"]) == 0
    assert (other / outreach.STORE).exists() and not (out / outreach.STORE).exists()
    capsys.readouterr()
    args = ["worklist", "--all", "mark", "BOB", UNTREATED, "--status", "declined", "--note", "n", "--out", str(out)]
    assert main(args) == 2
    assert "unrecognized arguments: --all" in capsys.readouterr().err
    args = ["worklist", "--clinic", "north", "mark", "BOB", UNTREATED, "--status", "declined", "--out", str(out)]
    assert main(args) == 2
    assert "worklist mark: unknown option(s) --clinic" in capsys.readouterr().err
    assert not (out / outreach.STORE).exists()
    assert [r["patient_id"] for r in _listing(capsys, out, "--form=json", "--lim", "1")] == ["ANN"]  # prefixes


def test_a_run_published_before_first_seen_still_answers_and_the_worklist_says_why(out, capsys):
    """Before: every read command (gaps, sql, worklist, report) ended in a traceback on such a folder."""
    run = publish.current_run(out)
    gaps = pl.read_parquet(run / "care_gaps.parquet").drop("first_seen", "status")
    gaps.write_parquet(run / "care_gaps.parquet")
    (run / "closed_gaps.parquet").unlink()
    capsys.readouterr()
    assert main(["gaps", "--out", str(out), "--format", "csv"]) == 0
    assert main(["report", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["worklist", "--out", str(out)]) == 2
    assert "the published run predates worklists" in capsys.readouterr().err
    assert _mark(out, "ANN", UNTREATED, "--status", "contacted") == 2


def test_a_writer_waits_for_the_one_holding_the_log(out):
    """Deterministic: while another connection holds the store's write lock (an open ``BEGIN IMMEDIATE``), a
    second writer's batch is not written; once released, it is."""
    import sqlite3

    mark = {"patient_id": "ANN", "gap": UNTREATED, "first_seen": AS_OF.isoformat(), "status": "contacted",
            "marked_at": "2026-01-01T00:00:00+00:00", "hide_until": None, "note": None, "marked_by": "b",
            "run_id": "r"}  # fmt: skip
    assert _mark(out, "BOB", UNTREATED, "--status", "contacted") == 0
    context = multiprocessing.get_context("spawn")
    holder = sqlite3.connect(out / outreach.STORE, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        writer = context.Process(target=outreach.append_marks, args=(out, [mark]))
        writer.start()
        writer.join(timeout=3)
        assert writer.is_alive()  # waiting for the lock
        assert outreach.read_log(out).marks.get_column("mark").to_list() == [1]  # a reader does not wait
        holder.execute("COMMIT")
    finally:
        holder.close()
    writer.join(timeout=60)
    assert writer.exitcode == 0
    assert outreach.read_log(out).marks.get_column("mark").to_list() == [1, 2]


def test_an_unreadable_marks_file_is_named_without_its_contents(out, tmp_path, capsys):
    marks = tmp_path / "marks.csv"
    marks.write_bytes(b'patient_id,gap,status\n"ANN,untreated_high_risk,contacted\nBOB"x,1,2\n')
    capsys.readouterr()
    assert main(["worklist", "mark", "--file", str(marks), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    # the screen's own message for a CSV that breaks (issue 30): the line, never a cell
    assert err.strip() == (
        f"osteo: {marks}: cannot be read as CSV (line 3: a quote inside a cell that is not quoted, or text after a"
        " closing quote)"
    )


GAP_KEYS = [("ANN", UNTREATED), ("ANN", "overdue_dxa"), ("BOB", UNTREATED)]
SEEN = [dt.date(2026, 1, 5), dt.date(2026, 2, 2)]  # a gap's episode, and an earlier one
LIVE_AS_OF = dt.date(2026, 3, 1)


@st.composite
def marks_on_gaps(draw):
    """Open gaps (one episode each) and marks on them or on their other episode, in any order of statuses."""
    episodes = {key: draw(st.sampled_from(SEEN)) for key in GAP_KEYS}
    marks = []
    for number in range(1, draw(st.integers(0, 12)) + 1):
        patient, gap = draw(st.sampled_from(GAP_KEYS))
        status = draw(st.sampled_from(list(outreach.statuses())))
        until = LIVE_AS_OF + dt.timedelta(days=draw(st.integers(-2, 2))) if status in outreach.hide_days() else None
        seen = draw(st.sampled_from(SEEN))
        marks.append((number, patient, gap, seen, status, until))
    return episodes, marks


@settings(max_examples=60, deadline=None)
@given(case=marks_on_gaps())
def test_the_worklist_shows_each_episodes_latest_mark_and_hides_as_a_plain_reading_says(case):
    """Property: the live worklist view against a plain reading of the log: the latest mark of the same patient,
    gap and first_seen is the status; hidden when it hides and its hide_until is after the as-of date."""
    import duckdb

    from osteo_core.publish.catalog import live_worklist_sql
    from schemas.tables import GAPS_SCHEMA, OUTREACH_SCHEMA, PATIENTS_SCHEMA

    episodes, marks = case
    gaps = pl.DataFrame(
        [
            {
                "patient_id": p,
                "gap": g,
                "since": None,
                "exam_id": None,
                "priority": 1,
                "detail": "",
                "first_seen": s,
                "status": "new",
            }  # fmt: skip
            for (p, g), s in episodes.items()
        ],
        schema=GAPS_SCHEMA,
    )
    population = pl.DataFrame(
        {
            "patient_id": ["ANN", "BOB"],
            "sex": ["F", "F"],
            "birth_date": [None, None],
            "death_date": [None, None],
            "enrolled_since": [None, None],
            "alive": [True, True],
            "enrolled": [True, True],
            "clinic": ["n", "s"],
        },  # fmt: skip
        schema_overrides={"birth_date": pl.Date, "death_date": pl.Date, "enrolled_since": pl.Date},
    )
    log = pl.DataFrame(
        [
            {
                "mark": n,
                "marked_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                "patient_id": p,
                "gap": g,
                "first_seen": s,
                "status": st_,
                "hide_until": u,
                "note": None,
                "marked_by": "x",
                "run_id": "r",
            }  # fmt: skip
            for n, p, g, s, st_, u in marks
        ],
        schema=OUTREACH_SCHEMA,
    )
    quarantine = pl.DataFrame(schema={"input": pl.Utf8, "patient_id": pl.Utf8})  # no roster row held back
    patients = pl.DataFrame(schema=PATIENTS_SCHEMA)  # the view reads each patient's mrn from it
    con = duckdb.connect()
    tables = {"care_gaps": gaps, "population": population, "outreach": log, "quarantine": quarantine}
    for name, frame in (tables | {"patients": patients}).items():
        con.register(name, frame.to_arrow())
    rows = con.sql(
        f"SELECT patient_id, gap, outreach_status, hidden FROM ({live_worklist_sql(LIVE_AS_OF.isoformat())})"
    )
    shown = {(p, g): (status, hidden) for p, g, status, hidden in rows.fetchall()}
    expected = {}
    for key, seen in episodes.items():
        mine = [m for m in marks if (m[1], m[2]) == key and m[3] == seen]
        last = max(mine, default=None)  # the highest mark number
        hides = last is not None and last[4] in outreach.hide_days() and last[5] > LIVE_AS_OF
        expected[key] = (last[4] if last else None, hides)
    assert shown == expected
