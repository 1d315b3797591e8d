"""Issue 27 §5: ``osteo demo`` starts a folder it made itself afresh, and never touches one it did not make.

A screen into a folder is refused as of a day before its published run, so after the README's "a week later"
step (a screen into ``osteo-demo`` as of a week on) the next ``make demo`` (as of today) would be refused. The
demo marks the folders it makes (``.osteo-demo``) and empties such a folder first: inputs, runs, catalog,
outreach log and history. Before: it wrote its synthetic inputs and a synthetic run into any ``--out`` (the
default one too), kept the earlier runs, marks and history, and had no mark of its own folders."""

from __future__ import annotations

import datetime as dt
import json

from conftest import exam, folder_digest, sql_json, write_scans_csv

from osteo_core.cli import main
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.publish import folder as publish

TODAY = dt.date.today()
PATIENTS = "60"
DEMO_MARKER = ".osteo-demo"  # the file that says the demo made its folder


def test_a_demo_folder_after_a_later_screen_and_a_mark_is_started_afresh(tmp_path, capsys, prefect_engine):
    demo = tmp_path / "osteo-demo"
    demo.mkdir()  # an empty folder is taken, as a new one is
    assert main(["demo", "--patients", PATIENTS, "--out", str(demo)]) == 0
    assert (demo / DEMO_MARKER).is_file()
    # the README's worklist steps: a mark, then a week later the next screen into the same folder
    capsys.readouterr()
    assert main(["worklist", "--out", str(demo), "--format", "json", "--limit", "1"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert main(["worklist", "mark", row["patient_id"], row["gap"], "--status", "declined", "--out", str(demo)]) == 0
    inputs = demo / "input"
    next_week = (TODAY + dt.timedelta(days=7)).isoformat()
    screen = ["screen", "--scans", str(inputs / "scans.csv"), "--meds", str(inputs / "medications.csv")]
    screen += ["--fractures", str(inputs / "fractures.csv"), "--population", str(inputs / "population.csv")]
    assert main([*screen, "--out", str(demo), "--as-of", next_week]) == 0
    assert len(publish.read_history(demo)) == 2

    capsys.readouterr()
    assert main(["demo", "--patients", PATIENTS, "--out", str(demo)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().err == ""
    assert publish.published_manifest(demo)["as_of"] == TODAY.isoformat()
    assert len(list((demo / publish.RUNS).iterdir())) == 1  # the earlier runs went with the folder's contents
    assert len(publish.read_history(demo)) == 1
    # the demo's marks were of its earlier synthetic run: the outreach store went with it
    assert sql_json(capsys, demo, "SELECT count(*) AS marks FROM outreach") == [{"marks": 0}]
    assert (demo / DEMO_MARKER).is_file()
    made = ["fractures.csv", "medications.csv", "population.csv", "scans.csv"]
    assert sorted(p.name for p in inputs.iterdir()) == made


def test_a_folder_the_demo_did_not_make_is_refused_and_left_as_it_was(tmp_path, capsys, prefect_engine):
    out = tmp_path / "out"
    scans = write_scans_csv(tmp_path / "scans.csv", [exam()])
    run_screen(ScreenRequest(scans=[str(scans)], out=str(out), as_of=(TODAY - dt.timedelta(days=7)).isoformat()))
    (out / "notes.txt").write_text("the team's own file\n")
    before = folder_digest(out)
    capsys.readouterr()
    assert main(["demo", "--patients", PATIENTS, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(out) in lines[0] and "not made by osteo demo" in lines[0]
    assert folder_digest(out) == before  # no input/ folder, no run, no marker: nothing written, nothing removed


def test_a_file_named_as_out_is_refused_in_one_line(tmp_path, capsys, prefect_engine):
    """Before: a traceback (the demo made its input folder inside the file's path)."""
    (tmp_path / "file").write_text("x")
    capsys.readouterr()
    assert main(["demo", "--patients", PATIENTS, "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert "--out exists and is not a folder" in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "file").read_text() == "x"


def test_a_demo_folder_made_before_the_marker_is_recognised_and_one_with_a_users_file_is_not(
    tmp_path, capsys, prefect_engine
):
    """A checkout's ``osteo-demo/`` from the version before the marker: its run read exactly the demo's four
    inputs in ``OUT/input/``. ``make demo`` must keep working there; the same folder with a file of the user's
    in it is refused and left as it is."""
    demo = tmp_path / "osteo-demo"
    assert main(["demo", "--patients", PATIENTS, "--out", str(demo)]) == 0
    (demo / DEMO_MARKER).unlink()  # as an earlier version left it
    assert main(["demo", "--patients", PATIENTS, "--out", str(demo)]) == 0
    assert (demo / DEMO_MARKER).is_file()
    (demo / DEMO_MARKER).unlink()
    (demo / "my-notes.txt").write_text("mine")
    before = folder_digest(demo)
    capsys.readouterr()
    assert main(["demo", "--patients", PATIENTS, "--out", str(demo)]) == 2
    assert "was not made by osteo demo" in capsys.readouterr().err
    assert folder_digest(demo) == before
