"""Issue 6: `osteo serve` registers a scheduled deployment on a real Prefect server and serves it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import exam, write_scans_csv

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_serve_registers_the_schedule_and_a_triggered_run_completes(tmp_path):
    scans = write_scans_csv(tmp_path / "scans.csv", [exam(femoral_neck_t="-2.7")])
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    served = None
    try:
        _wait(lambda: _healthy(api), 120, "the Prefect server")
        # the served runner looks for scheduled or triggered runs every second (default 10 s)
        client_env = {**env, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
        served = subprocess.Popen(
            [
                str(BIN / "osteo"),
                "serve",
                "--scans",
                str(scans),
                "--out",
                str(tmp_path / "out"),
                "--cron",
                "0 6 * * 1",
                "--name",
                "weekly",
            ],
            env=client_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        name = "screen-dxa-registry/weekly"
        inspect = lambda: subprocess.run(
            [str(BIN / "prefect"), "deployment", "inspect", name],  # noqa: E731
            env=client_env,
            capture_output=True,
            text=True,
        )
        _wait(lambda: inspect().returncode == 0, 120, "the deployment")
        assert "0 6 * * 1" in inspect().stdout
        triggered = subprocess.run(
            [
                str(BIN / "prefect"),
                "deployment",
                "run",
                name,
                "--watch",
                "--watch-interval",
                "1",
                "--watch-timeout",
                "240",
            ],
            env=client_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if triggered.returncode:  # the served process's log says why the run failed
            served.terminate()
            log = served.communicate(timeout=30)[1].decode(errors="replace")[-3000:]
            raise AssertionError(triggered.stdout + triggered.stderr + "\nserved process:\n" + log)
        assert "Completed" in triggered.stdout + triggered.stderr
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["status"] == "published"
        assert manifest["as_of"] == time.strftime("%Y-%m-%d")  # blank as-of: the day the run started
    finally:
        if served is not None:
            _stop(served)
        _stop(server)
    assert server.poll() is not None
