"""The screening flow: thin Prefect tasks over ``osteo_core.run`` stages, passing paths and counts."""

from __future__ import annotations

from typing import Any

from flows.logging_quiet import configure_prefect_env, install_filter

configure_prefect_env()

from prefect import flow, task  # noqa: E402

from osteo_core import run  # noqa: E402
from osteo_core.errors import InputError  # noqa: E402


@task(name="ingest-export", task_run_name="ingest-{kind}")
def ingest_export(request: run.ScreenRequest, run_id: str, kind: str, files: list[str]) -> list[dict[str, Any]]:
    return run.ingest(request, run_id, kind, files)


@task(name="validate-inputs")
def validate_inputs(request: run.ScreenRequest, run_id: str) -> dict[str, Any]:
    return run.validate(request, run_id)


@task(name="classify-exams")
def classify_exams(request: run.ScreenRequest, run_id: str) -> dict[str, int]:
    return run.screen_exams(request, run_id)


@task(name="find-care-gaps")
def find_care_gaps(request: run.ScreenRequest, run_id: str) -> dict[str, int]:
    return run.find_care_gaps(request, run_id)


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
        inputs = [i for kind in run.INPUTS for i in ingest_export(request, run_id, kind, prepared["files"][kind])]
        counts = validate_inputs(request, run_id)
    except InputError:
        run.discard(request, run_id)
        raise
    categories = classify_exams(request, run_id)
    gaps = find_care_gaps(request, run_id)
    manifest = publish_run(request, run_id, inputs, counts)
    return {**manifest, "who_categories": categories, "care_gaps": gaps}


def run_flow(request: run.ScreenRequest) -> dict[str, Any]:
    """Run the flow on the local engine (or the server in ``PREFECT_API_URL``), quietly."""
    install_filter()
    return screen_dxa_registry(request)
