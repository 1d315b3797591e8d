"""Issue 12 §5: Prefect as its users run it: runs named after the screen, the stages' counts in the run's
log (the UI's Logs tab), artifacts with a key, a description and no 'None' category, telemetry off."""

import asyncio
import json
import os
import subprocess
import sys

from conftest import exam, write_scans_csv

from osteo_core.pipeline.stages import ScreenRequest

SECRET = "SECRET-PID-7"


def _latest_run_and_logs():
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs travel to the server in batches: send them now
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    async def read():
        async with get_client() as client:
            runs = await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id])))
            same = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id])))
            return same[0], [log.message for log in logs]

    return asyncio.run(read())


def test_a_run_is_named_after_its_screen_and_logs_each_stage_with_counts(tmp_path, prefect_engine):
    """Before: runs got random names (gifted-mongoose) and the Logs tab said the run generated no logs."""
    from prefect.artifacts import Artifact

    from flows.screen import run_flow

    rows = [
        exam(patient_id=SECRET, femoral_neck_t="-2.7"),
        exam(patient_id="P-YOUNG", exam_id="E2", sex="M", birth_date="1990-01-01", femoral_neck_z="-1.0"),
    ]
    scans = write_scans_csv(tmp_path / "scans.csv", rows)
    run_flow(ScreenRequest(scans=[str(scans)], out=str(tmp_path / "out"), as_of="2026-01-01", rules="bhof2022"))
    flow_run, messages = _latest_run_and_logs()
    assert flow_run.name == "screen 2026-01-01 bhof2022"
    text = "\n".join(messages)
    assert "ingest: read scans 2 rows from 1 file(s)" in text
    assert "exam-id conflicts: 0 exam id(s)" in text
    assert "screen partitions: 1 partition(s) screened: scans 2 valid, 0 quarantined, 0 duplicate" in text
    assert "publish: run " in text and " published; open care gaps: " in text
    assert SECRET not in text and "P-YOUNG" not in text

    counts = Artifact.get("screen-counts")
    summary = Artifact.get("screen-summary")
    rows = json.loads(counts.data) if isinstance(counts.data, str) else counts.data
    measures = {r["measure"] for r in rows}
    assert "who_categories:no T-score category" in measures and not any("None" in m for m in measures)
    assert "| no T-score category | 1 |" in summary.data
    assert counts.description and "2026-01-01" in counts.description and "bhof2022" in counts.description


def _prefect_logging_in_a_fresh_process(env: dict[str, str]) -> dict:
    code = (
        "import json, logging, os\n"
        "import flows.screen\n"
        "from prefect._internal.analytics.enabled import is_telemetry_enabled\n"
        "console = [h for h in logging.getLogger().handlers if type(h).__name__ == 'PrefectConsoleHandler']\n"
        "print(json.dumps({'prefect': logging.getLogger('prefect').getEffectiveLevel(),\n"
        "  'console': console[0].level if console else None, 'telemetry': is_telemetry_enabled(),\n"
        "  'do_not_track': os.environ.get('DO_NOT_TRACK')}))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DO_NOT_TRACK", "OSTEO_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean | env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_terminal_shows_warnings_while_the_run_log_gets_info_and_telemetry_is_off(tmp_path):
    import logging

    seen = _prefect_logging_in_a_fresh_process({"PREFECT_HOME": str(tmp_path)})
    assert seen["prefect"] == logging.INFO and seen["console"] == logging.WARNING
    assert seen["telemetry"] is False and seen["do_not_track"] == "1"


def test_a_setting_turns_prefect_telemetry_back_on(tmp_path):
    seen = _prefect_logging_in_a_fresh_process({"PREFECT_HOME": str(tmp_path), "OSTEO_PREFECT_TELEMETRY": "true"})
    assert seen["do_not_track"] is None


def test_a_screen_that_cannot_run_ends_failed_with_its_one_line_message(tmp_path, prefect_engine):
    """Issue 28 §3, §6: a run whose input is gone (or that is refused) ends in Prefect's Failed state with the
    one line ``osteo screen`` prints, the error itself as its result. Before: 'Flow run encountered an
    exception: InputError: …'."""
    from dataclasses import asdict

    from flows.screen import screen_dxa_registry
    from osteo_core.errors import InputError

    scans = write_scans_csv(tmp_path / "scans.csv", [exam(patient_id=SECRET)])
    gone = tmp_path / "medications.csv"
    request = ScreenRequest(scans=[str(scans)], meds=str(gone), out=str(tmp_path / "out"), as_of="2026-01-01")
    state = screen_dxa_registry(request=asdict(request), return_state=True)
    assert state.is_failed() and state.message == f"{gone}: file not found"
    assert isinstance(state.result(raise_on_failure=False), InputError)
    assert not (tmp_path / "out").exists()
