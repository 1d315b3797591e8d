"""The screening flow: each stage of ``osteo_core.pipeline.stages.STAGES`` as a Prefect task, passing paths
and counts, never frames. The stage list is the pipeline's; nothing here repeats it.

Partitions run as mapped tasks on the flow's task runner: threads on this machine by default, or a Dask
cluster (``--dask-address``) through ``prefect-dask``. A stage's ``retries`` become the task's, limited to
errors a second try can cure (``stages.worth_retrying``).
"""

import contextlib
import datetime as dt
import functools
import logging
import signal
from collections.abc import Iterator
from dataclasses import asdict  # no "from __future__ import annotations": a served deployment's

# parameters are validated against the flow's annotations, which must be classes, not strings
from typing import Any

from flows.logging_quiet import configure_prefect_env, install_filter

configure_prefect_env()

from prefect import Task, flow, task, unmapped  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.exceptions import TerminationSignal  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from flows.artifacts import publish_artifacts  # noqa: E402
from flows.ephemeral import temporary_server  # noqa: E402
from flows.progress import Progress  # noqa: E402
from osteo_core.errors import InputError, OsteoError  # noqa: E402
from osteo_core.pipeline import stages  # noqa: E402
from osteo_core.pipeline.request import ScreenRequest  # noqa: E402
from osteo_core.pipeline.resolve import Resolved, resolve  # noqa: E402
from osteo_core.publish import folder as publish  # noqa: E402

RETRY_DELAY_SECONDS = 5


def _slug(name: str) -> str:
    return name.replace(" ", "-")


def _retry_condition(_task, _task_run, state) -> bool:
    return isinstance(state.data, BaseException) and stages.worth_retrying(state.data)


def _as_task(stage: stages.Stage) -> Task:
    """A stage's work as a Prefect task, named after the stage (``ingest-scans``, ``screen-partitions-3``)."""
    run_name = _slug(stage.name) + ("" if stage.items is stages.once else "-{item}")
    return task(
        stage.run,
        name=_slug(stage.name),
        task_run_name=run_name,
        retries=stage.retries,
        retry_delay_seconds=RETRY_DELAY_SECONDS if stage.retries else 0,
        retry_condition_fn=_retry_condition if stage.retries else None,
        cache_policy=NO_CACHE,
    )


TASKS = {stage.name: _as_task(stage) for stage in stages.STAGES}


@contextlib.contextmanager
def _interrupts_kept() -> Iterator[None]:
    """Let a stop stay a stop. Prefect 3.8.8 loses a SIGTERM or Ctrl-C that lands while it creates a task run in this
    thread: its crash handler asks for the task run not yet made and raises ``ValueError('Task run is not set')``,
    which the flow then logs with a traceback and fails on (a served run stopped by ``osteo serve``'s stop; exit 1
    for ``osteo screen`` instead of 130). The interrupt is raised again here, as Prefect raises it everywhere else, so
    the run is cancelled, or crashes, as any stopped run is."""
    try:
        yield
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, (TerminationSignal, KeyboardInterrupt)):
            cause = cause.__context__
        if cause is None:
            raise
        raise cause from None


def _refuse_a_cancelled_run() -> None:
    """Just before a run is switched in (``publish.folder.BEFORE_SWITCH``): a run Prefect's runner has asked to cancel
    (the intent it records in this process before it sends SIGTERM) publishes nothing. Python loses a SIGTERM whose
    handler raises while a finalizer runs ("Exception ignored in ... TerminationSignal"); the run would then go on and
    publish, recorded as Cancelled. The intent is Prefect 3.8.8's own record (``prefect._internal``: the lock pins
    the version)."""
    from prefect._internal.control_listener import get_intent

    if get_intent() == "cancel":
        raise TerminationSignal(signal.SIGTERM)


if _refuse_a_cancelled_run not in publish.BEFORE_SWITCH:
    publish.BEFORE_SWITCH.append(_refuse_a_cancelled_run)


@_interrupts_kept()
def _run_as_tasks(progress: Progress, stage: stages.Stage, resolved: Resolved, state: stages.RunState) -> list:
    work, items = TASKS[stage.name], stage.items(state)
    if stage.concurrent:
        futures = work.map(unmapped(resolved), unmapped(state), items)
        with progress.items(stage.name, len(items)) as advance:
            for future in as_completed(futures):
                future.result()
                advance()
        return [future.result() for future in futures]  # item order, for a reproducible merge
    results = []
    for item in items:
        with progress.stage(stage.name if item is None else f"{stage.name} {item}"):
            results.append(work(resolved, state, item))
    return results


def today_in(timezone: str) -> dt.date:
    """Today's date in ``timezone`` (an IANA name); on this machine's clock when blank."""
    if not timezone:
        return dt.date.today()
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return dt.datetime.now(ZoneInfo(timezone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError("timezone", f"'{timezone}' is not an IANA time zone name (e.g. America/New_York)") from None


def run_name() -> str:
    """``screen 2026-11-24 standard``: the as-of date (today in the schedule's time zone for a scheduled run)
    and the rule set."""
    from pathlib import Path

    from prefect.runtime import flow_run

    request = flow_run.parameters.get("request", {})
    fields = request if isinstance(request, dict) else asdict(request)
    rules = Path(fields.get("rules") or "standard").stem
    try:
        as_of = fields.get("as_of") or today_in(flow_run.parameters.get("timezone") or "").isoformat()
    except InputError:  # the run itself fails, saying so
        as_of = "(no date)"
    return f"screen {as_of} {rules}"


@flow(name="screen-dxa-registry", flow_run_name=run_name, log_prints=False)
def screen_dxa_registry(request: ScreenRequest, timezone: str = "") -> dict[str, Any]:
    """Ingest, validate, classify, find gaps and publish one screen. Returns the manifest (counts only).

    A blank ``as_of`` means the day the run starts in ``timezone`` (an IANA name; the schedule's, for a
    scheduled screen; blank: this machine's). A screen that is refused or whose input is unusable (an
    ``OsteoError``: exit 2 or 3 for ``osteo screen``) ends in Prefect's Failed state with that error's one-line
    message, which names the file or says what is missing and never holds a cell of an input; the error itself
    is the state's result, so a caller of the flow gets it raised as it was.
    """
    from prefect import get_run_logger
    from prefect.states import Failed

    install_filter()  # also in the process a served or worker run starts in
    logger = get_run_logger()
    execute = functools.partial(_run_as_tasks, Progress.current())
    try:
        resolved = resolve(request, today=today_in(timezone))  # once: the stages never read arguments again
        manifest = stages.run_stages(resolved, execute, logger)
    except OsteoError as err:
        message = one_line(err)
        logger.log(logging.ERROR if _deployed() else logging.INFO, "not published: %s", message)
        return Failed(message=message, data=err)
    publish_artifacts(manifest)
    return manifest


def one_line(err: OsteoError) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _deployed() -> bool:
    """A deployment's run (scheduled, triggered): its failure is said at ERROR, in the run's log and on the
    served process's or worker's terminal. ``osteo screen`` says it itself, in one line."""
    from prefect.runtime import deployment

    return deployment.id is not None


def run_flow(request: ScreenRequest, dask_address: str | None = None, workers: int = 1) -> dict[str, Any]:
    """Run the flow on the server in ``PREFECT_API_URL``, or on a temporary one of its own, quietly.

    ``dask_address`` (``tcp://host:port``) sends the partition tasks to that Dask scheduler; otherwise
    they run on ``workers`` threads here. (``osteo screen`` enters ``temporary_server`` itself, before
    importing this module, so the server boots while Prefect is imported.)
    """
    with temporary_server() as ready:
        ready()
        install_filter()
        if dask_address:
            from prefect_dask import DaskTaskRunner

            runner = DaskTaskRunner(address=dask_address)
        else:
            runner = ThreadPoolTaskRunner(max_workers=workers)
        try:
            with Progress.for_terminal():
                return screen_dxa_registry.with_options(task_runner=runner)(request)
        finally:
            flush_run_log()


def flush_run_log() -> None:
    """Send the run's log lines still queued for the API before a temporary server stops (else Prefect
    prints 'Error logging to API' after the run)."""
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
