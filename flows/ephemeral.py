"""Tie Prefect's temporary API server to the life of this process, so a ``kill -9`` leaves no orphan.

Without ``PREFECT_API_URL`` Prefect starts a temporary ("ephemeral") API server as a child process:
``SubprocessASGIServer`` runs ``python -m uvicorn ...`` (about 230 MB) and stops it from ``atexit``. A
SIGKILL skips ``atexit``, so that child used to outlive the screen. Here we start the server ourselves,
before Prefect does, as a subclass whose child asks Linux to kill it when its parent dies
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``). ``SubprocessASGIServer.__new__`` keeps one instance per port in a
class-level dict shared with subclasses, so the instance created here for port ``None`` is the one every
later ``SubprocessASGIServer()`` in Prefect gets; its ``start()`` is a no-op once running, and the
``atexit`` stop (normal exit) is Prefect's own.

Checked against Prefect 3.8.8 (``prefect/server/api/server.py``). We do not copy Prefect's command: we call
its ``_run_uvicorn_command`` with ``subprocess.Popen`` swapped, for that one call, for one that adds the
``preexec_fn``; if a later Prefect stops spawning through it, we warn and fall back to Prefect's default.

``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, so the child is only bound when
it is forked from the main thread (which lasts as long as the process); ``start_server_bound_to_this_process``
must be called there. Elsewhere (other thread, not Linux, prctl unavailable) Prefect's default applies.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.server.api.server import SubprocessASGIServer

logger = logging.getLogger(__name__)

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


class _PopenWithPreexec:
    """Stands in for the ``subprocess`` module inside Prefect's server module for one call."""

    def __init__(self, preexec_fn: Callable[[], None]) -> None:
        self.preexec_fn = preexec_fn
        self.spawned = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def Popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[Any]:  # noqa: N802 (subprocess's name)
        if kwargs.get("preexec_fn") is not None:  # Prefect brought its own: leave its spawn alone
            return subprocess.Popen(*args, **kwargs)
        self.spawned += 1
        return subprocess.Popen(*args, **{**kwargs, "preexec_fn": self.preexec_fn})


@functools.cache
def _bound_server_class() -> type[SubprocessASGIServer]:
    """The subclass, defined on first use: importing Prefect's server module takes ~2 s."""
    from prefect.server.api import server as server_module

    class ServerBoundToThisProcess(server_module.SubprocessASGIServer):
        """Prefect's temporary API server, killed by the kernel when the process that forked it dies."""

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            if _PRCTL is None or threading.current_thread() is not threading.main_thread():
                return super()._run_uvicorn_command()
            swapped = _PopenWithPreexec(functools.partial(_die_with_parent, os.getpid()))
            real = server_module.subprocess
            server_module.subprocess = swapped  # type: ignore[assignment]
            try:
                process = super()._run_uvicorn_command()
            finally:
                server_module.subprocess = real
            if not swapped.spawned:
                logger.warning(
                    "Prefect's temporary server was not started through subprocess.Popen: a kill -9 "
                    "of this process may leave it running (checked against Prefect 3.8.8)"
                )
            return process

    return ServerBoundToThisProcess


def start_server_bound_to_this_process() -> None:
    """Start Prefect's temporary API server now, from this (main) thread, bound to this process's life.

    Does nothing when a Prefect API URL is configured (a user's server, the test harness), when ephemeral
    mode is disabled, or when a server for the default port is already running.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    bound = _bound_server_class()
    existing = bound._instances.get(None)
    if existing is not None and not isinstance(existing, bound):
        if existing.running:
            return  # Prefect already started its own (unbound) server: do not run a second one
        del bound._instances[None]  # created but never started: replace it with ours
    bound().start()
