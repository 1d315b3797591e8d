"""A real Prefect server for the tests that schedule screens (``prefect_server``, a session fixture tests/conftest.py
imports): started once per test session (per xdist worker) by the analysts' guide's own command line
(``prefect server start``, docs/guides/analysts.md, "Scheduled screens"), with SQLite in a temporary PREFECT_HOME,
on a free loopback port, and stopped at the end. Also the helpers that read that guide's commands as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RUN_WAIT = 150  # seconds: the next minute's run, started and finished (a busy 2-core machine)
ANALYSTS_GUIDE = ROOT / "docs" / "guides" / "analysts.md"
SCHEDULED_SCREENS = "## Scheduled screens\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate, timeout: float, what) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def dies_with_this_process(ignore_sigint: bool = False):
    """``preexec_fn``: the child is killed when this test process dies, even by SIGKILL or a timeout's exit,
    so no server or served screen outlives the session (``flows.ephemeral``'s own guard); optionally it starts
    with SIGINT ignored, as a shell's ``&`` starts a command."""
    from flows import ephemeral

    parent, bound = os.getpid(), ephemeral._PRCTL is not None and threading.current_thread() is threading.main_thread()

    def prepare() -> None:
        if bound:
            ephemeral._die_with_parent(parent)
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return prepare


def clean_env(home: Path) -> dict[str, str]:
    """This machine's environment without any Prefect or osteo setting (the test session sets some), so that
    only what the guide says is in force."""
    drop = ("PREFECT_", "OSTEO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "DO_NOT_TRACK"}
    return env | {"PREFECT_HOME": str(home)}


# ---- the analysts' guide's commands, as written ---------------------------------------------------------------


def scheduled_screens_section() -> str:
    """The analysts' guide's section "Scheduled screens" (to the next second-level heading)."""
    text = ANALYSTS_GUIDE.read_text(encoding="utf-8")
    start = text.index(SCHEDULED_SCREENS)
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def guide_command(containing: str) -> list[str]:
    """The first command of the guide's "Scheduled screens" holding ``containing``: continuation lines joined,
    the comment and a trailing ``&`` dropped, split as a shell (or systemd) splits it."""
    lines = scheduled_screens_section().splitlines()
    for i, line in enumerate(lines):
        if containing in line:
            command = line
            while command.rstrip().endswith("\\"):
                i += 1
                command = command.rstrip()[:-1] + " " + lines[i].strip()
            tokens = shlex.split(command, comments=True)
            return tokens[:-1] if tokens[-1] == "&" else tokens
    pytest.fail(f"docs/guides/analysts.md 'Scheduled screens' has no command with {containing!r}")


def split_assignments(tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    """``NAME=value command …`` → ({NAME: value}, [command, …])."""
    env = {}
    tokens = list(tokens)
    while re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
        name, value = tokens.pop(0).split("=", 1)
        env[name] = value
    return env, tokens


def substitute(tokens: list[str], replacements: dict[str, str]) -> list[str]:
    """Each guide value replaced by the test's (each must occur: the guide's command keeps its shape)."""
    for old in replacements:
        assert any(old in t for t in tokens), f"the guide's command {tokens} no longer holds {old!r}"
    out = []
    for token in tokens:
        for old, new in replacements.items():
            token = token.replace(old, new)
        out.append(token)
    return out


def program(tokens: list[str]) -> list[str]:
    """``.venv/bin/prefect`` or ``prefect`` (or osteo): this test environment's."""
    return [str(BIN / Path(tokens[0]).name), *tokens[1:]]


# ---- the shared server ------------------------------------------------------------------------------------


@dataclass
class Server:
    api: str
    env: dict[str, str]  # for its clients: PREFECT_API_URL set
    log: Path
    port: int
    command: list[str]  # as the guide writes it (before the port was substituted), environment assignments first

    def call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.api}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def runs(self, deployment: str) -> list[dict]:
        return self.call(
            "POST",
            "/flow_runs/filter",
            {"deployments": {"name": {"any_": [deployment]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 50},
        )

    def deployment(self, name: str) -> dict:
        return self.call("GET", f"/deployments/name/screen-dxa-registry/{name}")

    def log_lines(self, pattern: str) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if re.search(pattern, line)]

    def first_ended_run(self, deployment: str, *processes) -> dict:
        """The first run of ``deployment`` to reach a final state; fails, saying what the server and the
        processes (each with ``alive()`` and ``tail()``) reported, if none does in ``RUN_WAIT`` seconds."""
        found: list[dict] = []

        def ended() -> bool:
            for process in processes:
                process.alive()
            found[:] = [r for r in self.runs(deployment) if r["state_type"] in FINAL]
            return bool(found)

        def why() -> str:
            runs = [(r["name"], r["state_type"], r["auto_scheduled"]) for r in self.runs(deployment)]
            scheduler = self.log_lines(r"Error scheduling|InvalidRequestError|ERROR")[-5:]
            said = "".join(p.tail() for p in processes)
            return f"a run of {deployment} to end; runs: {runs}; server log: {scheduler}{said}"

        wait(ended, RUN_WAIT, why)
        return found[0]


def healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """``prefect server start`` exactly as the analysts' guide writes it (its environment assignments included),
    on a free port, with a temporary PREFECT_HOME and its output in ``server.log``."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    written = guide_command("prefect server start")
    env, command = split_assignments(written)
    command = program(substitute(command, {"4200": str(port)}))
    assert command[1:3] == ["server", "start"], command
    log = home / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            env=clean_env(home) | env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=home,
            start_new_session=True,
            preexec_fn=dies_with_this_process(),
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait(lambda: process.poll() is not None or healthy(api), 180, "the Prefect server to answer")
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        yield Server(api=api, env=clean_env(home) | {"PREFECT_API_URL": api}, log=log, port=port, command=written)
    finally:
        stop(process)
