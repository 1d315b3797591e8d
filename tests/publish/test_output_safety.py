"""The output folder under stress (issue 10): a full or read-only disk, no permission, two screens at once.

Each gives exit 2 with one line naming the path and the cause, never a traceback, and a failed run
removes what it wrote. The disk cases run the real ``osteo`` command (and Prefect's engine) inside a
private mount namespace with a small tmpfs (``unshare``), so nothing outside the test is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import exam, write_scans_csv, write_synthetic

from osteo_core.cli import main
from osteo_core.publish import folder as publish

OSTEO = str(Path(sys.executable).with_name("osteo"))
AS_OF = "2026-01-01"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
    return env


def _in_tmpfs(tmp_path: Path, script: str, size: str = "64k") -> subprocess.CompletedProcess:
    """Run ``script`` (sh) as root of a private user and mount namespace with a fresh tmpfs at $D."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    body = f'mount -t tmpfs -o size={size} tmpfs "$D" && {script}'
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", body],
        env={**_env(tmp_path / "prefect-home"), "D": str(mount_point), "OSTEO": OSTEO},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _plain_screen(scans: Path, out: Path | str) -> str:
    """A shell command publishing a screen of ``scans`` into ``out`` without Prefect (set-up, fast)."""
    return (
        f'{sys.executable} -c "from osteo_core.pipeline.stages import ScreenRequest, run_screen; '
        f"run_screen(ScreenRequest(scans=['{scans}'], out='{out}', as_of='{AS_OF}'))\""
    )


def _report(result: subprocess.CompletedProcess) -> dict[str, str]:
    """``key=value`` lines the shell scripts below print after the screen."""
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_full_disk_is_one_line_exit_2_and_leaves_nothing_behind(tmp_path):
    paths = write_synthetic(tmp_path, patients=3000, seed=5)
    result = _in_tmpfs(
        tmp_path,
        f'"$OSTEO" screen --scans {paths["scans"]} --meds {paths["meds"]} --out "$D/out" --as-of {AS_OF}; '
        'echo "exit=$?"; echo "left=$(find "$D" -mindepth 1 | wc -l)"',
    )
    report = _report(result)
    assert report["exit"] == "2", result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"osteo: {tmp_path / 'disk' / 'out'}")
    assert lines[0].endswith("cannot write the output (No space left on device)")
    assert report["left"] == "0"  # the half-written run folder (and the --out it made) are gone


def test_read_only_output_is_one_line_exit_2_and_the_published_run_stays(tmp_path):
    scans = write_scans_csv(tmp_path / "scans.csv", [exam(exam_id=f"E{i}", patient_id=f"P{i}") for i in range(3)])
    first = _plain_screen(scans, "$D/out")
    result = _in_tmpfs(
        tmp_path,
        f'{first} && before=$(sha256sum "$D/out/screening.parquet") && mount -o remount,ro "$D" && '
        f'"$OSTEO" screen --scans {scans} --out "$D/out" --as-of {AS_OF}; echo "exit=$?"; '
        'after=$(sha256sum "$D/out/screening.parquet"); [ "$before" = "$after" ] && echo "unchanged=yes"',
        size="16m",
    )
    report = _report(result)
    assert report["exit"] == "2", result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"osteo: {tmp_path / 'disk' / 'out'}: cannot write the output (Read-only file system)"]
    assert report["unchanged"] == "yes"


@pytest.fixture
def shared_root():
    """A folder outside pytest's private (0700) one, so permissions, not its parent, decide access."""
    root = Path(tempfile.mkdtemp(prefix="osteo-perm-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _screen_without_privileges(root: Path, scans: Path, out: Path) -> subprocess.CompletedProcess:
    """``osteo screen`` as an ordinary user would run it: as root, every capability is dropped first, so
    file permissions apply."""
    prefix = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"] if os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, OSTEO, "screen", "--scans", str(scans), "--out", str(out), "--as-of", AS_OF],
        env=_env(root / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_permission_on_output_is_one_line_exit_2(shared_root):
    scans = write_scans_csv(shared_root / "scans.csv", [exam()])
    scans.chmod(0o644)
    locked = shared_root / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    result = _screen_without_privileges(shared_root, scans, locked / "out")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"osteo: {locked}: cannot write the output (Permission denied)"]
    assert not any(locked.iterdir())


# --- two screens, one output folder ------------------------------------------------------------------


def _screen_args(tmp_path: Path) -> list[str]:
    scans = write_scans_csv(tmp_path / "scans.csv", [exam(exam_id=f"E{i}", patient_id=f"P{i}") for i in range(3)])
    return ["screen", "--scans", str(scans), "--out", str(tmp_path / "out"), "--as-of", AS_OF]


def test_a_second_screen_into_a_busy_output_folder_exits_2_naming_the_run(tmp_path, capsys, prefect_engine):
    out = tmp_path / "out"
    out.mkdir()
    with publish.output_lock(out, "20261125T000000000000Z-abc123"):
        code = main(_screen_args(tmp_path))
        err = capsys.readouterr().err
        assert code == 2
        assert err.strip().splitlines() == [
            f"osteo: {out}: another screen is writing this output folder (run 20261125T000000000000Z-abc123, "
            f"process {os.getpid()}, started {json.loads((out / publish.LOCK).read_text())['started']}); "
            "wait for it to finish"
        ]
        assert (out / publish.LOCK).exists()  # the refused screen left the holder's lock alone ...
        assert main(_screen_args(tmp_path)) == 2  # ... so a third screen is refused too
    assert not (out / publish.RUNS).exists() or not any((out / publish.RUNS).iterdir())


def test_a_lock_left_by_a_killed_screen_is_taken_over(tmp_path, capsys, prefect_engine):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from osteo_core.publish.folder import output_lock\n"
            f"with output_lock(Path({str(out)!r}), 'killed-run'):\n    print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(_screen_args(tmp_path)) == 2
        assert "run killed-run" in capsys.readouterr().err
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        holder.kill()
    assert "killed-run" in (out / publish.LOCK).read_text()  # the stale lock file is still there ...
    started = time.monotonic()
    assert main(_screen_args(tmp_path)) == 0  # ... and is taken over at once
    assert time.monotonic() - started < 60
    assert (out / "screening.parquet").exists()


def test_research_extract_onto_a_full_disk_is_one_line_exit_2(tmp_path):
    paths = write_synthetic(tmp_path, patients=2000, seed=6)
    result = _in_tmpfs(
        tmp_path,
        f"{_plain_screen(paths['scans'], tmp_path / 'out')} && "
        f'OSTEO_RESEARCH_KEY=a-long-enough-research-key "$OSTEO" export-research --out {tmp_path / "out"} '
        '--dest "$D/extract"; echo "exit=$?"; echo "left=$(find "$D" -mindepth 1 | wc -l)"',
        size="32k",
    )
    report = _report(result)
    assert report["exit"] == "2", result.stderr
    assert result.stderr.strip().splitlines() == [
        f"osteo: {tmp_path / 'disk' / 'extract'}: cannot write the output (No space left on device)"
    ]
    assert report["left"] == "0"


def test_prefect_server_that_does_not_start_is_one_line_not_a_traceback(tmp_path):
    scans = write_scans_csv(tmp_path / "scans.csv", [exam()])
    env = {**_env(tmp_path / "home"), "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0"}
    result = subprocess.run(
        [OSTEO, "screen", "--scans", str(scans), "--out", str(tmp_path / "out"), "--as-of", AS_OF],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("osteo: Prefect's temporary API server did not start in time")
    assert not (tmp_path / "out").exists()


def test_an_unreadable_input_is_found_with_the_arguments_before_any_engine_starts(shared_root):
    """Before: the header check skipped a file it could not open, so the screen started Prefect's server and
    failed in the flow (14 s for a one-line answer); now resolving the request says it."""
    scans = write_scans_csv(shared_root / "scans.csv", [exam()])
    scans.chmod(0o000)
    prefix = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"] if os.geteuid() == 0 else []
    script = (
        "import sys\n"
        "from osteo_core.errors import InputError\n"
        "from osteo_core.pipeline.request import ScreenRequest\n"
        "from osteo_core.pipeline.resolve import resolve\n"
        "try:\n"
        f"    resolve(ScreenRequest(scans=[{str(scans)!r}], out={str(shared_root / 'out')!r}))\n"
        "except InputError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run([*prefix, sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == f"{scans}: cannot be read (Permission denied)", result.stderr


def test_an_unreadable_input_is_named_as_input_not_output(shared_root):
    scans = write_scans_csv(shared_root / "scans.csv", [exam()])
    scans.chmod(0o000)
    result = _screen_without_privileges(shared_root, scans, shared_root / "out")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"osteo: {scans}: cannot be read (Permission denied)"]
