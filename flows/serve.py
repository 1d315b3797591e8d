"""``osteo serve``: register the screen as a Prefect deployment on a cron schedule in a time zone, and serve
it until SIGTERM or SIGINT.

Everything that can be wrong is said before anything is registered (exit 2, one line): the cron expression,
the time zone (an IANA name; the machine's own by default), the API address, and the screen's arguments
with every path made absolute (a scheduled run starts in another working directory: a worker, systemd).

The runner is Prefect's own (``prefect.runner.Runner``, as ``Flow.serve`` builds it), started here so that
a stop is clean: in Prefect 3.8.8 ``Flow.serve`` stops on SIGTERM with a coroutine it never awaits (a
``RuntimeWarning``) and leaves SIGINT to whatever the process inherited (ignored under a shell's ``&``).
Here both signals set one event; the runner is then stopped with ``astop`` (a run in flight is cancelled,
its screen publishes nothing) and its schedule paused until it is served again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import zoneinfo
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from flows.logging_quiet import configure_prefect_env, install_filter
from osteo_core.errors import EngineError, InputError
from osteo_core.pipeline.request import ScreenRequest
from osteo_core.pipeline.resolve import resolve
from schemas.inputs import OPTIONS, SCANS

configure_prefect_env()

FLOW_NAME = "screen-dxa-registry"
PREVIEW_RUNS = 3  # next run times printed at registration
# After SIGTERM or SIGINT, a run in flight has this long to end before it is killed: under the 3 s at which
# Prefect 3.8.8's runner first looks whether the process it sent SIGTERM has gone (then every 3 s up to 30 s)
STOP_GRACE_SECONDS = 2.5
# every input kind's own option (schemas.inputs; --scans apart: a list), and the other paths (omop: a CDM folder or
# DuckDB file, or a database URL)
PATH_FIELDS = ("out", *(kind.name for kind in OPTIONS if kind.name != SCANS.name), "lsc", "omop")
NAME_OR_FILE_FIELDS = ("rules", "profile")  # a shipped name stays a name; a file becomes absolute


def local_timezone() -> str:
    """The machine's IANA time zone name (``TZ``, ``/etc/localtime``, ``/etc/timezone``), as tzlocal reads it."""
    import tzlocal

    try:
        name = tzlocal.get_localzone_name()
    except Exception:  # noqa: BLE001 - tzlocal raises its own errors on an unreadable configuration
        name = None
    if not name or name not in zoneinfo.available_timezones():
        raise InputError(
            "--timezone", "the machine's time zone has no IANA name here: give one, e.g. --timezone Europe/Paris"
        )
    return name


def check_timezone(name: str | None) -> str:
    """An IANA time zone name (the machine's own when none is given); anything else is exit 2."""
    if name is None:
        return local_timezone()
    if name not in zoneinfo.available_timezones():
        raise InputError("--timezone", f"'{name}' is not an IANA time zone name (e.g. America/New_York, Etc/UTC)")
    return name


def check_cron(cron: str) -> str:
    """A cron expression Prefect's server schedules (its own validation); anything else is exit 2."""
    from prefect._internal.schemas.validators import validate_cron_string

    try:
        return validate_cron_string(cron.strip())
    except (ValueError, TypeError):
        raise InputError(
            "--cron",
            f"'{cron}' is not a cron expression (minute hour day-of-month month day-of-week, e.g. '0 6 * * 1')",
        ) from None


async def next_runs(
    cron: str, timezone: str, count: int = PREVIEW_RUNS, after: dt.datetime | None = None
) -> list[dt.datetime]:
    """The schedule's next ``count`` run times in ``timezone``, computed by the code Prefect's scheduler uses."""
    from prefect.server.schemas.schedules import CronSchedule

    dates = await CronSchedule(cron=cron, timezone=timezone).get_dates(n=count, start=after)
    zone = zoneinfo.ZoneInfo(timezone)
    return [dt.datetime.fromtimestamp(d.timestamp(), zone) for d in dates]


def absolute_paths(request: ScreenRequest) -> ScreenRequest:
    """Every path of the request absolute (symbolic links kept: a link to the latest export is followed by each
    run); a shipped rule set or profile name stays a name."""

    def absolute(path: str) -> str:
        return str(Path(path).expanduser().absolute())

    changes: dict[str, Any] = {"scans": [absolute(p) for p in request.scans]}
    for name in PATH_FIELDS:
        value = getattr(request, name)
        if value and "://" not in value:  # a database URL (an OMOP CDM's) is no path
            changes[name] = absolute(value)
    for name in NAME_OR_FILE_FIELDS:
        value = getattr(request, name)
        if value and (value.endswith(".toml") or os.sep in value or Path(value).exists()):
            changes[name] = absolute(value)
    return replace(request, **changes)


def _engine_error(what: str, exc: BaseException) -> EngineError:
    said = (str(exc).strip().splitlines() or [""])[0][:200]
    cause = f"{type(exc).__name__}: {said}" if said else type(exc).__name__
    return EngineError(f"{what} the Prefect server at {os.environ['PREFECT_API_URL']} ({cause})")


def _when(moment: dt.datetime) -> str:
    offset = moment.strftime("%z")
    return f"{moment:%a %Y-%m-%d %H:%M} {moment.tzname()} ({offset[:3]}:{offset[3:]})"


def serve(request: ScreenRequest, cron: str, name: str, timezone: str | None = None) -> None:
    """Register ``screen-dxa-registry/NAME`` on the server in ``PREFECT_API_URL`` with ``cron`` in ``timezone``
    and serve it until SIGTERM or SIGINT. A blank ``as_of`` (the CLI's default for ``serve``) makes each run
    screen as of its own day in that time zone."""
    cron, timezone = check_cron(cron), check_timezone(timezone)
    if not os.environ.get("PREFECT_API_URL"):
        raise InputError(
            "PREFECT_API_URL", "set it to a running Prefect server (docs/guides/analysts.md, 'Scheduled screens')"
        )
    request = absolute_paths(request)
    resolve(request)  # everything a run would refuse, said now; each scheduled run resolves its own request
    install_filter()
    deployment = f"{FLOW_NAME}/{name}"
    parameters = {"request": asdict(request), "timezone": timezone}
    asyncio.run(_serve_until_stopped(name, cron, timezone, parameters, deployment))


async def _serve_until_stopped(
    name: str, cron: str, timezone: str, parameters: dict[str, Any], deployment: str
) -> None:
    from prefect.runner import Runner
    from prefect.schedules import Cron

    from flows.screen import screen_dxa_registry

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def request_stop(*_: Any) -> None:  # a signal handler: runs between two bytecodes of the main thread
        loop.call_soon_threadsafe(stop.set)

    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, request_stop) for sig in handled}
    runner = Runner(name=name, pause_on_shutdown=True)
    runner.handle_sigterm = request_stop  # Runner.start installs this one for SIGTERM: ours, not Prefect's
    try:
        try:
            await runner.aadd_flow(
                screen_dxa_registry,
                name=name,
                schedule=Cron(cron, timezone=timezone),
                parameters=parameters,
                description=f"osteo-screen: cron '{cron}' in {timezone}; each run screens as of its own day there",
            )
        except Exception as exc:  # noqa: BLE001 - no server there, or one that refuses: one line, exit 1
            raise _engine_error("could not register the deployment on", exc) from exc
        print(f"osteo serve: {deployment} registered, cron '{cron}' in {timezone}; next runs:", flush=True)
        for moment in await next_runs(cron, timezone):
            print(f"  {_when(moment)}", flush=True)
        print(
            f"serving until stopped (SIGTERM or Ctrl-C); a run now: prefect deployment run '{deployment}'", flush=True
        )
        if stop.is_set():
            return
        running = asyncio.create_task(runner.start())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():  # the runner ended by itself: say why
            stopped.cancel()
            try:
                running.result()
            except Exception as exc:  # noqa: BLE001 - e.g. the server went away: one line, exit 1
                raise _engine_error("stopped serving: lost", exc) from exc
            return
        if runner.started:
            await _stop(runner)
        else:
            running.cancel()
        try:
            await running
        except asyncio.CancelledError:
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _stop(runner: Any) -> None:
    """Prefect's own stop (``astop``: each run in flight is sent SIGTERM and marked Cancelled), with the run's
    process killed if it has not ended ``STOP_GRACE_SECONDS`` later: Prefect would wait up to 30 s, as long as
    a partition in a worker thread takes to finish. A killed screen publishes nothing and holds no lock."""
    import multiprocessing

    stopping = asyncio.ensure_future(runner.astop())
    try:
        await asyncio.wait_for(asyncio.shield(stopping), STOP_GRACE_SECONDS)
    except TimeoutError:
        for child in multiprocessing.active_children():  # the runs' processes (Prefect starts them with spawn)
            child.kill()
        await stopping
