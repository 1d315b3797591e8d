"""The screening flow: thin Prefect tasks over ``osteo_core.run`` stages, passing paths and counts."""

from __future__ import annotations

from typing import Any

from flows.logging_quiet import configure_prefect_env, install_filter

configure_prefect_env()

from prefect import flow, task  # noqa: E402

from osteo_core import run  # noqa: E402
from osteo_core.errors import InputError  # noqa: E402


@task(name="ingest-scans")
def ingest_scans(request: run.ScreenRequest, run_id: str, files: list[str]) -> list[dict[str, Any]]:
    return run.ingest_scans(request, run_id, files)


@task(name="validate-scans")
def validate_scans(request: run.ScreenRequest, run_id: str) -> dict[str, int]:
    return run.validate(request, run_id)


@task(name="classify-exams")
def classify_exams(request: run.ScreenRequest, run_id: str) -> dict[str, int]:
    return run.screen_exams(request, run_id)


@task(name="publish-run")
def publish_run(
    request: run.ScreenRequest, run_id: str, inputs: list[dict[str, Any]], counts: dict[str, int]
) -> dict[str, Any]:
    return run.publish_run(request, run_id, inputs, counts)


@flow(name="screen-dxa-registry", log_prints=False)
def screen_dxa_registry(request: run.ScreenRequest) -> dict[str, Any]:
    """Ingest, validate, classify and publish one screen. Returns the run manifest (counts only)."""
    prepared = run.prepare(request)
    run_id = prepared["run_id"]
    try:
        inputs = ingest_scans(request, run_id, prepared["files"])
        counts = validate_scans(request, run_id)
    except InputError:
        run.discard(request, run_id)
        raise
    categories = classify_exams(request, run_id)
    manifest = publish_run(request, run_id, inputs, counts)
    manifest["who_categories"] = categories
    return manifest


def run_flow(request: run.ScreenRequest) -> dict[str, Any]:
    """Run the flow on the local engine (or the server in ``PREFECT_API_URL``), quietly."""
    install_filter()
    return screen_dxa_registry(request)
