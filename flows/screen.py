"""The screening flow: thin Prefect tasks over ``osteo_core.run`` stages, passing paths and counts.

Partitions run as mapped tasks on the flow's task runner: threads on this machine by default, or a Dask
cluster (``--dask-address``) through ``prefect-dask``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, replace
from typing import Any

from flows.logging_quiet import configure_prefect_env, install_filter

configure_prefect_env()

from prefect import flow, task, unmapped  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from flows.artifacts import publish_artifacts  # noqa: E402
from flows.progress import Progress  # noqa: E402
from osteo_core import run  # noqa: E402
from osteo_core.errors import InputError  # noqa: E402


@task(name="ingest-export", task_run_name="ingest-{kind}")
def ingest_export(
    request: run.ScreenRequest, run_id: str, kind: str, files: list[str], partitions: int
) -> list[dict[str, Any]]:
    return run.ingest(request, run_id, kind, files, partitions)


@task(name="find-exam-conflicts")
def find_exam_conflicts(request: run.ScreenRequest, run_id: str, partitions: int) -> int:
    return run.find_exam_conflicts(request, run_id, partitions)


@task(name="screen-partition", task_run_name="screen-partition-{partition}")
def screen_partition(request: run.ScreenRequest, run_id: str, partition: int) -> dict[str, Any]:
    return run.process_partition(request, run_id, partition)


@task(name="publish-run")
def publish_run(
    request: run.ScreenRequest,
    run_id: str,
    inputs: list[dict[str, Any]],
    counts: list[dict[str, Any]],
    skipped_files: dict[str, list[str]],
) -> dict[str, Any]:
    return run.publish_run(request, run_id, inputs, counts, skipped_files)


@flow(name="screen-dxa-registry", log_prints=False)
def screen_dxa_registry(request: run.ScreenRequest) -> dict[str, Any]:
    """Ingest, validate, classify, find gaps and publish one screen. Returns the manifest (counts only).

    A blank ``as_of`` means the day the run starts (scheduled screens).
    """
    if not request.as_of:
        request = replace(request, as_of=dt.date.today().isoformat())
    progress = Progress.current()
    with run.open_run(request) as prepared:  # holds the output folder's lock; removes a failed run's files
        run_id, partitions = prepared["run_id"], prepared["partitions"]
        inputs = []
        for kind in run.INPUTS:
            with progress.stage(f"ingest {kind}"):
                inputs += ingest_export(request, run_id, kind, prepared["files"][kind], partitions)
        with progress.stage("exam-id conflicts"):
            find_exam_conflicts(request, run_id, partitions)
        futures = screen_partition.map(unmapped(request), unmapped(run_id), list(range(partitions)))
        with progress.partitions(partitions) as advance:
            for future in as_completed(futures):
                future.result()
                advance()
        counts = [future.result() for future in futures]  # partition order, for a reproducible merge
        with progress.stage("publish"):
            manifest = publish_run(request, run_id, inputs, counts, prepared["skipped_files"])
    publish_artifacts(manifest)
    return manifest


def run_flow(request: run.ScreenRequest, dask_address: str | None = None, workers: int = 1) -> dict[str, Any]:
    """Run the flow on the local engine (or the server in ``PREFECT_API_URL``), quietly.

    ``dask_address`` (``tcp://host:port``) sends the partition tasks to that Dask scheduler; otherwise
    they run on ``workers`` threads here.
    """
    from flows.ephemeral import start_server_bound_to_this_process

    start_server_bound_to_this_process()  # before Prefect starts its own: no orphan server after a kill -9
    install_filter()
    if dask_address:
        from prefect_dask import DaskTaskRunner

        runner = DaskTaskRunner(address=dask_address)
    else:
        runner = ThreadPoolTaskRunner(max_workers=workers)
    with Progress.for_terminal():
        return screen_dxa_registry.with_options(task_runner=runner)(request)


def serve(request: run.ScreenRequest, cron: str, name: str) -> None:
    """Register a deployment of the flow with a cron schedule on the server in ``PREFECT_API_URL`` and
    serve it (blocks until stopped). With a blank ``as_of`` (the CLI's default for ``serve``) each run
    screens as of the day it starts."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        raise InputError("PREFECT_API_URL", "set it to a running Prefect server (see README: Scheduled screens)")
    run.check_arguments(request)
    install_filter()
    parameters = {"request": asdict(request)}
    screen_dxa_registry.serve(name=name, cron=cron, parameters=parameters, print_starting_message=True)
