"""No process started by ``osteo screen`` outlives it, even after ``kill -9`` (Linux: reads ``/proc``).

Without ``PREFECT_API_URL`` the screen runs Prefect's temporary API server as a child process (uvicorn,
~230 MB); ``flows.ephemeral`` makes the kernel kill it when the screen dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_synthetic

OSTEO = Path(sys.executable).parent / "osteo"
Identity = tuple[int, int]  # (pid, start time in clock ticks): a pid alone may be reused


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` from the state on (index 0 = state, 1 = ppid, 19 = start time)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def _descendants(root: int) -> dict[Identity, str]:
    """Every living process below ``root`` now, with its command line."""
    parents: dict[int, list[Identity]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] not in "ZX":
            parents.setdefault(int(fields[1]), []).append((int(entry.name), int(fields[19])))
    found: dict[Identity, str] = {}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found[child] = _cmdline(child[0])
            todo.append(child[0])
    return found


def _alive(process: Identity) -> bool:
    fields = _stat(process[0])
    return fields is not None and fields[0] not in "ZX" and int(fields[19]) == process[1]


def _kill(process: Identity) -> None:
    if _alive(process):
        try:
            os.kill(process[0], signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> dict[str, Path]:
    # big enough that the screen is still running well after the server is up (~20 s on 2 cores)
    return write_synthetic(tmp_path_factory.mktemp("registry"), patients=20000, seed=11)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def _screen(paths: dict[str, Path], out: Path) -> list[str]:
    return [str(OSTEO), "screen", "--scans", str(paths["scans"]), "--meds", str(paths["meds"]),
            "--fractures", str(paths["fractures"]), "--out", str(out), "--as-of", "2026-01-01"]  # fmt: skip


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes] | dict[Identity, str]]]:
    """Cleanup for whatever a test starts: [osteo process, descendants seen]; kills leftovers by pid."""
    held: list = []
    yield held
    for item in held:
        if isinstance(item, subprocess.Popen):
            if item.poll() is None:
                item.kill()
            item.wait(timeout=10)
        else:
            for process in item:
                _kill(process)


def _record(seen: dict[Identity, str], root: int) -> None:
    """Add ``root``'s descendants to ``seen``, keeping command lines (an exiting process shows a blank one)."""
    for process, cmdline in _descendants(root).items():
        seen[process] = cmdline or seen.get(process, "")


def _uvicorn(descendants: dict[Identity, str]) -> bool:
    return any("uvicorn" in cmdline for cmdline in descendants.values())


def _survivors(seen: dict[Identity, str]) -> dict[int, str]:
    return {pid: cmdline for (pid, start), cmdline in seen.items() if _alive((pid, start))}


def _start_screen(paths, tmp_path: Path, started: list) -> tuple[subprocess.Popen, dict[Identity, str], Path]:
    """``osteo screen`` in the background; its descendants are recorded in ``seen`` (cleaned up through
    ``started``), its stderr kept for the failure message."""
    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(_screen(paths, tmp_path / "out"), env=_env(tmp_path), cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    seen: dict[Identity, str] = {}
    started += [proc, seen]
    return proc, seen, stderr


def test_kill_9_of_a_screen_leaves_no_process_behind(tmp_path, registry, started):
    proc, seen, stderr = _start_screen(registry, tmp_path, started)

    def server_up() -> bool:
        _record(seen, proc.pid)
        return proc.poll() is not None or _uvicorn(seen)

    assert _wait_until(server_up, 90), "no Prefect server child within 90 s"
    assert proc.poll() is None, f"screen ended before the kill: {stderr.read_text()[-2000:]}"
    time.sleep(0.5)  # let anything the server starts at once show up too
    _record(seen, proc.pid)

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    _wait_until(lambda: not any(_alive(p) for p in seen), 10)
    survivors = _survivors(seen)
    assert not survivors, f"outlived `kill -9` of the screen (pid {proc.pid}): {survivors}"


def test_a_finished_screen_leaves_no_process_behind(tmp_path, started):
    paths = write_synthetic(tmp_path, patients=300, seed=3)
    proc, seen, stderr = _start_screen(paths, tmp_path, started)
    while proc.poll() is None:  # collect every descendant while it runs
        _record(seen, proc.pid)
        time.sleep(0.05)
    assert proc.returncode == 0, stderr.read_text()[-2000:]
    assert _uvicorn(seen), f"the Prefect server child was never seen: {seen}"
    survivors = _survivors(seen)
    assert not survivors, f"still running after the screen returned: {survivors}"


def test_nothing_is_started_when_an_api_url_is_configured(monkeypatch):
    """A user's server (or the test harness) is left alone: nothing launched, no child process."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import ephemeral

    def must_not_be_called(port):
        raise AssertionError("would start a temporary server")

    monkeypatch.setattr(ephemeral, "_launch", must_not_be_called)
    before = set(_descendants(os.getpid()))
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        with ephemeral.temporary_server() as ready:
            ready()
            assert PREFECT_API_URL.value() == "http://127.0.0.1:9/api"
    assert set(_descendants(os.getpid())) <= before


@pytest.fixture
def no_api_configured():
    """As for a user without a Prefect server (the session's test harness may be active)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert not PREFECT_API_URL.value()
        yield


def test_the_temporary_server_is_the_api_of_the_run_and_stops_with_it(no_api_configured):
    """Without a configured API: one server of our own, answering, is the run's API; gone afterwards."""
    from prefect.settings import PREFECT_API_URL

    from flows import ephemeral

    before = set(_descendants(os.getpid()))
    with ephemeral.temporary_server() as ready:
        ready()
        url = PREFECT_API_URL.value()
        assert url and url.startswith("http://127.0.0.1:")
        assert ephemeral._healthy(url)
        children = set(_descendants(os.getpid())) - before
        assert len(children) == 1
    assert not ephemeral._healthy(url)
    assert not any(_alive(p) for p in children)
    assert not PREFECT_API_URL.value()


def test_a_server_that_never_answers_is_one_engine_error(monkeypatch, no_api_configured):
    """A server that dies at start (or never answers in time) is exit 1 with a hint, not a traceback."""
    from flows import ephemeral
    from osteo_core.errors import EngineError

    monkeypatch.setattr(
        ephemeral, "_launch", lambda port: subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    )
    with pytest.raises(EngineError, match="did not start in time"):
        with ephemeral.temporary_server() as ready:
            ready()
