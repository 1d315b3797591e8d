"""Prefect's temporary API server for one screen, started early and tied to the life of this process.

Without a configured API (``PREFECT_API_URL``, a profile, the test harness) Prefect would start a temporary
("ephemeral") server itself, the first time a client needs it: it imports its whole server application into
this process (~3 s) only to launch ``python -m uvicorn … prefect.server.api.server:create_app`` and wait for
it (~4 s), and it stops it from ``atexit``, which a ``kill -9`` skips. Here we launch the same command at
once, before the flow's modules are imported, so the server boots while this process imports Prefect's
client, and with the kernel told to kill it when this process dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``).
Its address is then the API URL for the run (``temporary_settings``), so Prefect starts nothing of its own.

The command and its environment are Prefect's own (``SubprocessASGIServer._run_uvicorn_command``, checked
against Prefect 3.8.8): the UI off, the server marked ephemeral, this process's settings passed on.

``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, so the server is forked from the
main thread; from another thread (or off Linux) it is still stopped on a normal exit, not after a kill.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

from osteo_core.errors import EngineError

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, resolved in the parent: the forked child should only call it, not load it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int) -> None:
    """``preexec_fn``: runs in the forked child before ``exec``; the setting survives the exec.

    If the parent died between the fork and the ``prctl``, no signal will come: exit now instead.
    """
    assert _PRCTL is not None
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(port: int) -> subprocess.Popen[bytes]:
    import prefect
    from prefect.settings import get_current_settings

    bound = _PRCTL is not None and threading.current_thread() is threading.main_thread()
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(prefect.__module_path__.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env={
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            **get_current_settings().to_environment_variables(exclude_unset=True),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=functools.partial(_die_with_parent, os.getpid()) if bound else None,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def temporary_server() -> Iterator[Callable[[], None]]:
    """Within it, Prefect talks to a temporary server of this run's own, launched on entry; the callable
    it yields waits until that server answers. With an API already configured it does nothing."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    if PREFECT_API_URL.value():
        yield lambda: None
        return
    port = _free_port()
    process, url = _launch(port), f"http://127.0.0.1:{port}/api"
    atexit.register(_stop, process)

    def wait_until_ready() -> None:
        deadline = time.monotonic() + PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise EngineError(
                    "Prefect's temporary API server did not start in time (a busy machine?); try again, raise "
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL to a running "
                    "Prefect server"
                )
            time.sleep(0.1)

    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield wait_until_ready
    finally:
        _stop(process)
