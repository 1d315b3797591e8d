"""Issue 27 item 5: the outreach log is a SQLite store (``OUT/outreach.sqlite``), one transaction a batch.

Real files and the real ``osteo`` command throughout: a 1,000-row bulk mark killed at 20 random moments, and at a
named point with half its rows inserted, records all of it or none; a full disk records nothing (exit 2, one line);
a reader never sees half a batch; an ``outreach.jsonl`` of an earlier version moves in once (its torn line said
once); a folder that cannot be written is still read; ``--until`` is at most ``[until] max_days`` ahead.
The disk cases run in a private user and mount namespace with a small tmpfs (``unshare``, as
tests/publish/test_output_safety.py does), so nothing outside the test is mounted or touched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import exam, write_scans_csv

from osteo_core.cli import main
from osteo_core.pipeline.stages import ScreenRequest, run_screen
from osteo_core.publish import folder as publish
from osteo_core.publish import outreach
from osteo_core.resources import shipped_toml

OSTEO = str(Path(sys.executable).with_name("osteo"))
TODAY = dt.date.today()
AS_OF = TODAY + dt.timedelta(days=30)  # after today: a mark's day is this as-of date, whatever the clock says
PATIENTS = 1_000
UNTREATED = "untreated_high_risk"
KILLS = 20


def _patient(i: int) -> str:
    return f"P{i:05d}"


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A published run with 1,000 open gaps (one untreated high-risk woman each), and a CSV marking them all."""
    folder = tmp_path_factory.mktemp("store")
    high_risk = {"femoral_neck_t": "-2.8", "exam_date": (AS_OF - dt.timedelta(days=100)).isoformat()}
    rows = [exam(patient_id=_patient(i), exam_id=f"E{i:05d}", **high_risk) for i in range(PATIENTS)]
    scans = write_scans_csv(folder / "scans.csv", rows)
    run_screen(ScreenRequest(scans=[str(scans)], out=str(folder / "out"), as_of=AS_OF.isoformat()))
    (folder / "marks.csv").write_text(
        "patient_id,gap,status,note\n"
        + "".join(f"{_patient(i)},{UNTREATED},contacted,called {i}\n" for i in range(PATIENTS))
    )
    return folder


@pytest.fixture
def out(published, tmp_path) -> Path:
    """A fresh copy of the published output folder (no marks yet)."""
    copy = tmp_path / "out"
    shutil.copytree(published / "out", copy, symlinks=True)
    return copy


def _bulk(published: Path, out: Path) -> list[str]:
    return [OSTEO, "worklist", "mark", "--file", str(published / "marks.csv"), "--out", str(out)]


def _marks(out: Path) -> list[int]:
    """The mark numbers in the store, read with sqlite3 itself (none when there is no store yet)."""
    store = out / outreach.STORE
    if not store.exists():
        return []
    con = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'outreach'").fetchone():
            return []
        return [n for (n,) in con.execute("SELECT mark FROM outreach ORDER BY mark")]
    finally:
        con.close()


def _sql_count(out: Path) -> tuple[int, str]:
    """``osteo sql``'s count of the table ``outreach`` (another process, as a user would ask), and its stderr."""
    done = subprocess.run(
        [OSTEO, "sql", "--out", str(out), "--format", "json", "SELECT count(*) AS n FROM outreach"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]["n"], done.stderr


# --- kill -9 ---------------------------------------------------------------------------------------------------


def test_a_bulk_mark_killed_at_twenty_random_moments_records_all_or_none(published, out, tmp_path):
    """``osteo worklist mark --file`` (1,000 rows) killed with SIGKILL at 20 random moments over the time the
    command takes: after each kill the store holds all of that batch or none of it. Then it is still readable
    and a later mark works, numbered next. Before: a kill inside the write left part of the batch (67 of 799
    marks) and a torn line."""
    calibration = tmp_path / "calibration"
    shutil.copytree(published / "out", calibration, symlinks=True)
    started = time.monotonic()
    done = subprocess.run(_bulk(published, calibration), capture_output=True, text=True, timeout=300)
    span = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert _marks(calibration) == list(range(1, PATIENTS + 1))

    rng = random.Random(27_5)
    recorded = []
    for _ in range(KILLS):
        before = len(_marks(out))
        marking = subprocess.Popen(_bulk(published, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, span))
        marking.send_signal(signal.SIGKILL)
        marking.wait(timeout=300)
        recorded.append(len(_marks(out)) - before)
    assert set(recorded) <= {0, PATIENTS}, recorded  # per kill: the whole batch or nothing
    total = sum(recorded)
    assert _marks(out) == list(range(1, total + 1))  # numbers increase without a hole or a repeat
    assert _sql_count(out)[0] == total
    assert main(["worklist", "mark", _patient(7), UNTREATED, "--status", "scheduled", "--out", str(out)]) == 0
    assert _marks(out) == list(range(1, total + 2))


def test_a_writer_killed_with_half_its_batch_inserted_records_nothing(published, out):
    """Deterministic: killed (``OSTEO_CRASH_AT``) after inserting 500 of its 1,000 rows, before the commit.
    Nothing is recorded, readers read on, and the next bulk mark records all 1,000 as marks 2..1001."""
    assert main(["worklist", "mark", _patient(0), UNTREATED, "--status", "contacted", "--out", str(out)]) == 0
    killed = subprocess.run(
        _bulk(published, out),
        env={**os.environ, publish.CRASH_ENV: outreach.MID_BATCH},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _marks(out) == [1]
    assert _sql_count(out)[0] == 1
    assert outreach.read_log(out).marks.height == 1
    done = subprocess.run(_bulk(published, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _marks(out) == list(range(1, PATIENTS + 2))


# --- a full disk -----------------------------------------------------------------------------------------------

_FULL_DISK = """
import json, os, resource, shutil, signal, sqlite3, subprocess, sys
from pathlib import Path
disk, source, marks, osteo, mode = Path(sys.argv[1]), *sys.argv[2:6]
leave = int(sys.argv[6])
out = disk / "out"
shutil.copytree(source, out, symlinks=True)
def count():
    con = sqlite3.connect((out / "outreach.sqlite").as_uri() + "?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM outreach").fetchone()[0]
    finally:
        con.close()
first = subprocess.run([osteo, "worklist", "mark", "P00000", "untreated_high_risk", "--status", "contacted",
                        "--out", str(out)], capture_output=True, text=True)
assert first.returncode == 0, first.stderr
limit = None
if mode == "tmpfs":  # fill the disk but `leave` bytes
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as fh:
        fh.write(b"\\0" * max(0, free - leave))
    left = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
else:  # no mount here: no file may grow beyond `leave` bytes in the marking process (EFBIG)
    left = leave
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (leave, leave))
bulk = subprocess.run([osteo, "worklist", "mark", "--file", marks, "--out", str(out)], capture_output=True,
                      text=True, preexec_fn=limit)
sql = subprocess.run([osteo, "sql", "--out", str(out), "--format", "json", "SELECT count(*) AS n FROM outreach"],
                     capture_output=True, text=True)  # still on the full disk
if mode == "tmpfs":
    os.remove(disk / "filler")
after_bulk = count()  # with sqlite3 itself (which needs room for its -shm)
later = subprocess.run([osteo, "worklist", "mark", "P00001", "untreated_high_risk", "--status", "scheduled",
                        "--out", str(out)], capture_output=True, text=True)
print(json.dumps({"left": left, "exit": bulk.returncode, "stderr": bulk.stderr, "recorded": after_bulk,
                  "sql_exit": sql.returncode, "sql": sql.stdout, "later_exit": later.returncode,
                  "later_stderr": later.stderr, "final": count()}))
"""


def _on_a_full_disk(published: Path, tmp_path: Path, leave: int) -> dict:
    """Run ``_FULL_DISK`` on a 8 MiB tmpfs of a private mount namespace; if mounting is not allowed here, the
    same with the marking process's file size limited instead (RLIMIT_FSIZE: writes fail with EFBIG)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "full_disk.py"
    script.write_text(_FULL_DISK)
    args = [str(published / "out"), str(published / "marks.csv"), OSTEO]
    run = [sys.executable, str(script), str(disk), *args]
    mounted = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         f'mount -t tmpfs -o size=8m tmpfs "{disk}" || exit 97; exec "$@"', "sh", *run, "tmpfs", str(leave)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if mounted.returncode == 97:  # no mount namespace for this user: the honest second way to fill a disk
        mounted = subprocess.run([*run, "rlimit", str(leave)], capture_output=True, text=True, timeout=600)
    assert mounted.returncode == 0, mounted.stderr[-3000:]
    return json.loads(mounted.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("leave", [8 * 1024, 96 * 1024])  # no room for SQLite's -shm; room for it, not the batch
def test_a_bulk_mark_on_a_full_disk_records_nothing(published, tmp_path, leave):
    """Before: exit 2 'No space left on device', yet 31 of the 1,000 marks were recorded (shown as contacted)
    and a torn line made every later worklist and sql call warn."""
    report = _on_a_full_disk(published, tmp_path, leave)
    assert report["left"] <= leave
    assert report["exit"] == 2, report
    lines = report["stderr"].strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in report["stderr"], report["stderr"]
    assert lines[0].startswith("osteo: ") and "outreach.sqlite: cannot write the output (" in lines[0], lines
    assert lines[0].endswith("; nothing was recorded"), lines
    assert report["recorded"] == 1  # the mark made before the disk filled, and none of the batch
    assert report["sql_exit"] == 0 and json.loads(report["sql"]) == [{"n": 1}]
    assert report["later_exit"] == 0, report["later_stderr"]  # with room again, marking goes on
    assert report["final"] == 2


# --- readers ---------------------------------------------------------------------------------------------------


def test_a_reader_during_a_writers_batch_sees_none_of_it(out):
    """A writer holds its transaction open with half of a 1,000-mark batch inserted, then all of it: ``osteo
    sql`` and ``read_log`` see none of it until the commit, then all of it; neither waits for the writer."""
    assert main(["worklist", "mark", _patient(0), UNTREATED, "--status", "contacted", "--out", str(out)]) == 0
    (first,) = outreach.read_log(out).marks.to_dicts()
    rows = [
        (1 + n, first["marked_at"].isoformat(), _patient(n), UNTREATED, first["first_seen"].isoformat(), "contacted",
         None, None, "writer", first["run_id"])
        for n in range(1, PATIENTS + 1)
    ]  # fmt: skip
    writer = sqlite3.connect(out / outreach.STORE, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.executemany("INSERT INTO outreach VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[: PATIENTS // 2])
        assert _sql_count(out)[0] == 1
        assert outreach.read_log(out).marks.height == 1
        writer.executemany("INSERT INTO outreach VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[PATIENTS // 2 :])
        assert _sql_count(out)[0] == 1
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert _sql_count(out)[0] == PATIENTS + 1
    assert outreach.read_log(out).marks.get_column("mark").to_list() == list(range(1, PATIENTS + 2))


_READ_ONLY = """
import json, subprocess, sys
from pathlib import Path
from osteo_core.publish import outreach
out, osteo = Path(sys.argv[1]), sys.argv[2]
sql = subprocess.run([osteo, "sql", "--out", str(out), "--format", "json",
                      "SELECT (SELECT count(*) FROM outreach) AS marks,"
                      " (SELECT count(*) FROM worklist WHERE outreach_status IS NOT NULL) AS marked"],
                     capture_output=True, text=True)
listing = subprocess.run([osteo, "worklist", "--out", str(out), "--format", "csv"], capture_output=True, text=True)
print(json.dumps({"mode": outreach.read_mode(out), "sql_exit": sql.returncode, "sql": sql.stdout,
                  "sql_stderr": sql.stderr, "worklist_exit": listing.returncode, "worklist_stderr": listing.stderr,
                  "files": sorted(p.name for p in out.iterdir() if p.name.startswith("outreach"))}))
"""


def _read_only_mount(tmp_path: Path, source: Path) -> dict:
    """``cp -a`` of ``source`` onto a tmpfs remounted read-only (a private mount namespace), read there."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "read_only.py"
    script.write_text(_READ_ONLY)
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         f'mount -t tmpfs -o size=16m tmpfs "{disk}" && cp -a "{source}" "{disk}/out" && '
         f'mount -o remount,ro "{disk}" && exec "$@"', "sh", sys.executable, str(script), str(disk / "out"), OSTEO],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assert_read(report: dict, marks: int) -> None:
    assert report["sql_exit"] == 0, report["sql_stderr"]
    assert json.loads(report["sql"]) == [{"marks": marks, "marked": marks}]
    assert report["worklist_exit"] == 0, report["worklist_stderr"]


def test_a_read_only_copy_of_the_folder_is_read(out, tmp_path):
    """A copy on a read-only mount: no ``-shm`` can be made, so the store is opened immutable; ``osteo sql``
    and ``osteo worklist`` both read it, and nothing is written there."""
    for i in range(3):
        assert main(["worklist", "mark", _patient(i), UNTREATED, "--status", "contacted", "--out", str(out)]) == 0
    report = _read_only_mount(tmp_path, out)
    assert report["mode"] == "immutable"
    _assert_read(report, 3)
    assert report["files"] == [outreach.STORE]


def test_a_read_only_copy_taken_while_marks_were_only_in_the_wal_reads_them(out, tmp_path):
    """A copy taken while another connection kept the WAL (marks committed, not yet copied into the main file)
    on a read-only mount: immutable would miss them, so the two files are read from a private copy."""
    assert main(["worklist", "mark", _patient(0), UNTREATED, "--status", "contacted", "--out", str(out)]) == 0
    keeper = sqlite3.connect(out / outreach.STORE)  # the last connection to close checkpoints: this one, later
    try:
        keeper.execute("SELECT count(*) FROM outreach").fetchone()
        for i in (1, 2):
            assert main(["worklist", "mark", _patient(i), UNTREATED, "--status", "contacted", "--out", str(out)]) == 0
        copy = tmp_path / "copy"
        shutil.copytree(out, copy, symlinks=True)
    finally:
        keeper.close()
    assert (copy / f"{outreach.STORE}-wal").stat().st_size > 0
    report = _read_only_mount(tmp_path, copy)
    assert report["mode"] == "copy"
    _assert_read(report, 3)


def test_a_folder_without_write_permission_is_read(out, tmp_path):
    """The folder's mode says no writing (0555), and the reader runs without root's override (every capability
    dropped, as test_output_safety does): the immutable path is the one taken, and it reads."""
    for i in range(2):
        assert main(["worklist", "mark", _patient(i), UNTREATED, "--status", "declined", "--out", str(out)]) == 0
    script = tmp_path / "read_only.py"
    script.write_text(_READ_ONLY)
    out.chmod(0o555)
    try:
        prefix = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, sys.executable, str(script), str(out), OSTEO], capture_output=True, text=True, timeout=300
        )
    finally:
        out.chmod(0o755)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["mode"] == "immutable"
    _assert_read(report, 2)
    assert report["files"] == [outreach.STORE]


# --- the log of earlier versions -------------------------------------------------------------------------------


def _old_log(out: Path) -> tuple[bytes, list[dict]]:
    """An ``outreach.jsonl`` as the earlier version wrote it: marks 1 and 2, a line cut off by a kill (a note
    half written), and the next writer's mark, numbered 3 again after a fresh line."""
    episode = {"gap": UNTREATED, "first_seen": AS_OF.isoformat(), "run_id": "20260101T000000000000Z-abcdef"}
    marks = [
        {"mark": 1, "marked_at": "2026-02-03T09:15:00+00:00", "patient_id": _patient(0), **episode,
         "status": "contacted", "hide_until": None, "note": "left a message", "marked_by": "RN Lee"},
        {"mark": 2, "marked_at": "2026-02-03T09:20:07+00:00", "patient_id": _patient(1), **episode,
         "status": "declined", "hide_until": (AS_OF + dt.timedelta(days=100)).isoformat(), "note": None,
         "marked_by": "RN Lee"},
        {"mark": 3, "marked_at": "2026-02-04T11:00:00+00:00", "patient_id": _patient(3), **episode,
         "status": "scheduled", "hide_until": None, "note": None, "marked_by": "team A"},
    ]  # fmt: skip
    torn = '{"mark": 3, "marked_at": "2026-02-04T10:59:59+00:00", "patient_id": "P00002", "note": "SECRET-NO'
    text = "".join(json.dumps(m) + "\n" for m in marks[:2]) + torn + "\n" + json.dumps(marks[2]) + "\n"
    data = text.encode()
    (out / outreach.LEGACY_LOG).write_bytes(data)
    return data, marks


def test_an_old_log_moves_into_the_store_once_keeping_its_marks_and_a_backup(out, capsys):
    """Every readable mark keeps its number, time, who and note; the file is kept byte for byte as
    ``outreach.jsonl.migrated``; the torn line is said once (how many, which line, never what it holds), and
    later reads say nothing. Before: the torn line's warning came back on every worklist and sql call."""
    data, marks = _old_log(out)
    moved = subprocess.run([OSTEO, "worklist", "--out", str(out), "--format", "csv"], capture_output=True, text=True)
    assert moved.returncode == 0, moved.stderr
    said = [line for line in moved.stderr.splitlines() if "outreach" in line]
    assert said == [
        "osteo: outreach.jsonl: 3 mark(s) moved into outreach.sqlite (the file is kept as outreach.jsonl.migrated); "
        "1 line(s) are not a readable mark (line 3; a mark cut off while it was written?): not moved, kept in the "
        "backup; record those marks again"
    ]
    assert "SECRET" not in moved.stderr and "P00002" not in moved.stderr
    assert not (out / outreach.LEGACY_LOG).exists()
    assert (out / outreach.MIGRATED_LOG).read_bytes() == data
    log = outreach.read_log(out)
    assert log.warning() is None
    stored = log.marks.to_dicts()
    for row in stored:
        row["marked_at"] = row["marked_at"].isoformat()
        row["first_seen"] = row["first_seen"].isoformat()
        row["hide_until"] = row["hide_until"] and row["hide_until"].isoformat()
    assert stored == marks
    count, err = _sql_count(out)
    assert count == 3 and "outreach" not in err  # said once: not again
    assert main(["worklist", "mark", _patient(4), UNTREATED, "--status", "contacted", "--out", str(out)]) == 0
    assert "moved into" not in capsys.readouterr().err
    assert _marks(out) == [1, 2, 3, 4]


def test_two_processes_moving_the_old_log_at_once_move_it_once(out):
    """Four readers start together on a folder with an old log: each sees the three marks, exactly one of
    them moves the file (and says so), and no mark is stored twice."""
    _old_log(out)
    command = [OSTEO, "sql", "--out", str(out), "--format", "json", "SELECT count(*) AS n FROM outreach"]
    readers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [reader.communicate(timeout=300) + (reader.returncode,) for reader in readers]
    assert [code for _, _, code in results] == [0, 0, 0, 0], [err for _, err, _ in results]
    assert [json.loads(stdout) for stdout, _, _ in results] == [[{"n": 3}]] * 4
    assert sum("moved into outreach.sqlite" in err for _, err, _ in results) == 1
    assert _marks(out) == [1, 2, 3]
    assert not (out / outreach.LEGACY_LOG).exists() and (out / outreach.MIGRATED_LOG).exists()


def test_a_move_cut_off_after_the_rename_is_finished_from_the_backup(out, capsys):
    """The file is renamed inside the move's transaction: killed before the commit, only the backup is left
    and the store does not hold it. The next use moves it in from the backup."""
    data, _ = _old_log(out)
    (out / outreach.LEGACY_LOG).rename(out / outreach.MIGRATED_LOG)
    assert outreach.read_log(out).marks.get_column("mark").to_list() == [1, 2, 3]
    assert "3 mark(s) moved into outreach.sqlite" in capsys.readouterr().err
    assert (out / outreach.MIGRATED_LOG).read_bytes() == data
    assert outreach.read_log(out).marks.height == 3
    assert "moved into" not in capsys.readouterr().err


def test_an_old_log_written_again_after_the_move_is_not_read_and_said(out, capsys):
    """An older osteo writing ``outreach.jsonl`` again beside the store: its lines are not read (their numbers
    would clash), and every read says so."""
    _old_log(out)
    assert outreach.read_log(out).marks.height == 3
    capsys.readouterr()
    _old_log(out)
    log = outreach.read_log(out)
    assert log.marks.height == 3
    assert "outreach.jsonl: written after the log moved into outreach.sqlite" in log.warning()


def test_an_old_log_in_a_folder_that_cannot_be_written_is_read_as_it_is(out, tmp_path):
    """Without write permission (capabilities dropped) the old log cannot move: it is read as it is, its torn
    line said, and nothing is written."""
    _old_log(out)
    script = tmp_path / "read_only.py"
    script.write_text(_READ_ONLY)
    out.chmod(0o555)
    try:
        prefix = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, sys.executable, str(script), str(out), OSTEO], capture_output=True, text=True, timeout=300
        )
    finally:
        out.chmod(0o755)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["sql_exit"] == 0, report["sql_stderr"]
    assert json.loads(report["sql"])[0]["marks"] == 3
    assert "1 line(s) are not a readable mark (line 3;" in report["sql_stderr"]
    assert report["files"] == [outreach.LEGACY_LOG]


# --- --until -------------------------------------------------------------------------------------------------


def test_until_is_at_most_max_days_after_the_marks_day(out, tmp_path, capsys):
    """``[until] max_days`` (data/reference/outreach.toml) after the mark's day (here the run's as-of date) is
    accepted, one day more is refused naming --until or the CSV's row and column, with nothing recorded.
    Before: --until 9999-12-31 was recorded and hid the gap for good."""
    longest = shipped_toml("reference/outreach.toml")["until"]["max_days"]
    last = AS_OF + dt.timedelta(days=longest)
    capsys.readouterr()
    for until in ("9999-12-31", (last + dt.timedelta(days=1)).isoformat()):
        assert main(["worklist", "mark", _patient(0), UNTREATED, "--status", "declined", "--until", until,
                     "--out", str(out)]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert err.strip().splitlines() == [
            f"osteo: --until: more than {longest} days after today or the run's as-of date ({AS_OF.isoformat()}):"
            f" a mark hides a gap for at most {longest} days (the latest date allowed is {last.isoformat()};"
            " [until] max_days in data/reference/outreach.toml) (nothing was recorded)"
        ]
    assert _marks(out) == []
    marks = tmp_path / "marks.csv"
    marks.write_text(
        "patient_id,gap,status,until,note\n"
        f"{_patient(1)},{UNTREATED},declined,{last.isoformat()},ok\n"
        f"{_patient(2)},{UNTREATED},not_appropriate,9999-12-31,private words\n"
    )
    assert main(["worklist", "mark", "--file", str(marks), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"osteo: {marks} data row 2, column until: more than {longest} days after")
    assert _patient(2) not in err and "private words" not in err and "9999" not in err
    assert _marks(out) == []
    assert main(["worklist", "mark", _patient(0), UNTREATED, "--status", "declined", "--until", last.isoformat(),
                 "--out", str(out)]) == 0  # fmt: skip
    assert outreach.read_log(out).marks.get_column("hide_until").to_list() == [last]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"until": {}}, "[until] max_days must be a whole number of days above 0"),
        ({"until": {"max_days": 0}}, "[until] max_days must be a whole number of days above 0"),
        ({"until": {"max_days": 30}}, "[hide] declined is longer than [until] max_days"),
    ],
)
def test_a_broken_until_limit_is_refused(change, message):
    data = shipped_toml("reference/outreach.toml")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        outreach.check_outreach({**data, **change}, "outreach.toml")
