"""Issue 27 §5: screens into one output folder go forward in time. A screen as of a day before the published
run's is refused (exit 2, one line, nothing written); so an open gap keeps its ``first_seen`` and its outreach
mark (kept per episode: patient, gap, first_seen) across the runs that follow.

Before: the earlier screen published, every open gap got the earlier day as a new ``first_seen``, the declined
mark stopped applying (``osteo worklist --status declined`` showed nothing while the log still held it) and
stayed lost in the next weekly run, with no warning."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from conftest import exam, folder_digest, sql_json, write_scans_csv

from osteo_core.cli import main
from osteo_core.errors import InputError
from osteo_core.pipeline.lifecycle import prepare
from osteo_core.pipeline.resolve import resolve
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.publish import folder as publish

TODAY = dt.date.today()
AS_OF = TODAY - dt.timedelta(days=7)  # the published run
EARLIER = AS_OF - dt.timedelta(days=7)  # the replayed day
NEXT_WEEK = AS_OF + dt.timedelta(days=7)
UNTREATED = "untreated_high_risk"
HIGH_RISK = {"femoral_neck_t": "-2.8", "exam_date": (EARLIER - dt.timedelta(days=100)).isoformat()}


def _inputs(folder: Path) -> Path:
    rows = [exam(patient_id=p, exam_id=f"E-{p}", **HIGH_RISK) for p in ("ANN", "BOB")]
    return write_scans_csv(folder / "scans.csv", rows)


def _screen_cli(scans: Path, out: Path, as_of: dt.date) -> int:
    """``osteo screen`` as a user types it: the CLI's checks, then the real Prefect flow."""
    return main(["screen", "--scans", str(scans), "--out", str(out), "--as-of", as_of.isoformat()])


def _declined(capsys, out: Path) -> list[str]:
    """The patients ``osteo worklist --status declined`` lists."""
    capsys.readouterr()
    assert main(["worklist", "--out", str(out), "--status", "declined", "--format", "json"]) == 0
    return [row["patient_id"] for row in json.loads(capsys.readouterr().out)]


def _marks(capsys, out: Path) -> list[dict]:
    """The live ``worklist`` view: each open gap's episode and its latest mark."""
    return sql_json(
        capsys, out, "SELECT patient_id, first_seen, status, outreach_status, hidden FROM worklist ORDER BY patient_id"
    )


def test_an_earlier_as_of_is_refused_and_a_declined_mark_applies_for_as_long_as_its_gap_stays_open(
    tmp_path, capsys, prefect_engine
):
    scans, out = _inputs(tmp_path), tmp_path / "out"
    run_screen(ScreenRequest(scans=[str(scans)], out=str(out), as_of=AS_OF.isoformat()))
    assert main(["worklist", "mark", "ANN", UNTREATED, "--status", "declined", "--out", str(out)]) == 0
    assert _declined(capsys, out) == ["ANN"]
    assert _marks(capsys, out)[0] == {
        "patient_id": "ANN", "first_seen": AS_OF.isoformat(), "status": "new", "outreach_status": "declined",
        "hidden": True,
    }  # fmt: skip
    before = folder_digest(out)

    # the README's "replay a day", into the same folder: refused before any work, naming the two dates
    capsys.readouterr()
    assert _screen_cli(scans, out, EARLIER) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert EARLIER.isoformat() in lines[0] and AS_OF.isoformat() in lines[0] and "another --out" in lines[0]
    assert "ANN" not in err and "BOB" not in err
    assert folder_digest(out) == before  # no run folder, no history line, the published run untouched
    assert _declined(capsys, out) == ["ANN"]

    # the same day again is a re-run of it, and allowed: same contents, the mark still on its gap
    assert _screen_cli(scans, out, AS_OF) == 0
    assert _declined(capsys, out) == ["ANN"]

    # a week later, same inputs: the gap persists with its first_seen, and the mark applies to it
    assert _screen_cli(scans, out, NEXT_WEEK) == 0
    assert _marks(capsys, out) == [
        {"patient_id": "ANN", "first_seen": AS_OF.isoformat(), "status": "persisting", "outreach_status": "declined",
         "hidden": True},
        {"patient_id": "BOB", "first_seen": AS_OF.isoformat(), "status": "persisting", "outreach_status": None,
         "hidden": False},
    ]  # fmt: skip
    assert _declined(capsys, out) == ["ANN"]
    assert sql_json(capsys, out, "SELECT count(*) AS marks FROM outreach") == [{"marks": 1}]


def test_the_check_under_the_lock_sees_a_run_published_after_the_arguments_were_checked(tmp_path):
    """``prepare`` (called by ``open_run`` under the output folder's lock, held until publish) checks the order
    again whatever ``resolve`` answered: here a later run publishes between the two, as another screen
    could between the CLI's check (before Prefect starts) and the run taking the lock."""
    scans, out = _inputs(tmp_path), tmp_path / "out"
    run_screen(ScreenRequest(scans=[str(scans)], out=str(out), as_of=EARLIER.isoformat()))
    request = ScreenRequest(scans=[str(scans)], out=str(out), as_of=AS_OF.isoformat())
    resolved = resolve(request)  # passes: the published run is earlier
    run_screen(ScreenRequest(scans=[str(scans)], out=str(out), as_of=NEXT_WEEK.isoformat()))  # another screen
    runs = sorted(p.name for p in (out / publish.RUNS).iterdir())
    with pytest.raises(InputError, match=f"{AS_OF.isoformat()} is before .*{NEXT_WEEK.isoformat()}"):
        prepare(resolved, "run-that-must-not-start")
    assert sorted(p.name for p in (out / publish.RUNS).iterdir()) == runs
    assert publish.published_manifest(out)["as_of"] == NEXT_WEEK.isoformat()


def test_a_scheduled_run_is_as_of_the_day_it_starts_and_passes_the_check(tmp_path):
    """``osteo serve`` gives a blank as-of (the day the run starts): after the published run's day, it passes;
    a folder published as of a later day (a replay gone in there) is refused when the schedule is served."""
    scans, out = _inputs(tmp_path), tmp_path / "out"
    run_screen(ScreenRequest(scans=[str(scans)], out=str(out), as_of=AS_OF.isoformat()))
    resolve(ScreenRequest(scans=[str(scans)], out=str(out), as_of=""))
    later = tmp_path / "later"
    run_screen(ScreenRequest(scans=[str(scans)], out=str(later), as_of=(TODAY + dt.timedelta(days=3)).isoformat()))
    with pytest.raises(InputError, match="another --out"):
        resolve(ScreenRequest(scans=[str(scans)], out=str(later), as_of=""))
