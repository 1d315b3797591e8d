"""The screening flow: each stage of ``osteo_core.pipeline.stages.STAGES`` as a Prefect task, passing paths
and counts, never frames. The stage list is the pipeline's; nothing here repeats it.

Partitions run as mapped tasks on the flow's task runner: threads on this machine by default, or a Dask
cluster (``--dask-address``) through ``prefect-dask``. A stage's ``retries`` become the task's, limited to
errors a second try can cure (``stages.worth_retrying``).
"""

import datetime as dt
import functools
from dataclasses import asdict, replace  # no "from __future__ import annotations": a served deployment's

# parameters are validated against the flow's annotations, which must be classes, not strings
from typing import Any

from flows.logging_quiet import configure_prefect_env, install_filter

configure_prefect_env()

from prefect import Task, flow, task, unmapped  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from flows.artifacts import publish_artifacts  # noqa: E402
from flows.ephemeral import temporary_server  # noqa: E402
from flows.progress import Progress  # noqa: E402
from osteo_core.errors import InputError  # noqa: E402
from osteo_core.pipeline import stages  # noqa: E402
from osteo_core.pipeline.request import ScreenRequest, check_arguments  # noqa: E402

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


def _run_as_tasks(progress: Progress, stage: stages.Stage, request: ScreenRequest, state: stages.RunState) -> list:
    work, items = TASKS[stage.name], stage.items(state)
    if stage.concurrent:
        futures = work.map(unmapped(request), unmapped(state), items)
        with progress.items(stage.name, len(items)) as advance:
            for future in as_completed(futures):
                future.result()
                advance()
        return [future.result() for future in futures]  # item order, for a reproducible merge
    results = []
    for item in items:
        with progress.stage(stage.name if item is None else f"{stage.name} {item}"):
            results.append(work(request, state, item))
    return results


def run_name() -> str:
    """``screen 2026-11-24 standard``: the as-of date (today for a scheduled run) and the rule set."""
    from pathlib import Path

    from prefect.runtime import flow_run

    request = flow_run.parameters.get("request", {})
    fields = request if isinstance(request, dict) else asdict(request)
    rules = Path(fields.get("rules") or "standard").stem
    return f"screen {fields.get('as_of') or dt.date.today().isoformat()} {rules}"


@flow(name="screen-dxa-registry", flow_run_name=run_name, log_prints=False)
def screen_dxa_registry(request: ScreenRequest) -> dict[str, Any]:
    """Ingest, validate, classify, find gaps and publish one screen. Returns the manifest (counts only).

    A blank ``as_of`` means the day the run starts (scheduled screens).
    """
    from prefect import get_run_logger

    if not request.as_of:
        request = replace(request, as_of=dt.date.today().isoformat())
    execute = functools.partial(_run_as_tasks, Progress.current())
    manifest = stages.run_stages(request, execute, get_run_logger())
    publish_artifacts(manifest)
    return manifest


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


def serve(request: ScreenRequest, cron: str, name: str) -> None:
    """Register a deployment of the flow with a cron schedule on the server in ``PREFECT_API_URL`` and
    serve it (blocks until stopped). With a blank ``as_of`` (the CLI's default for ``serve``) each run
    screens as of the day it starts."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        raise InputError("PREFECT_API_URL", "set it to a running Prefect server (see README: Scheduled screens)")
    check_arguments(request)
    install_filter()
    parameters = {"request": asdict(request)}
    screen_dxa_registry.serve(name=name, cron=cron, parameters=parameters, print_starting_message=True)
