"""One list of stages; retries only where a second try can cure the error."""

from __future__ import annotations

import errno
from dataclasses import replace
from types import SimpleNamespace

import pytest

from osteo_core.errors import InputError, OutputError
from osteo_core.pipeline import stages


def test_the_stages_run_in_the_data_flow_order():
    assert [s.name for s in stages.STAGES] == ["ingest", "exam-id conflicts", "screen partitions", "publish"]
    assert [s.name for s in stages.STAGES if s.concurrent] == ["screen partitions"]
    publish = stages.STAGES[-1]
    assert publish.retries == 0  # its steps (merge, catalog, switch) are not all repeatable


@pytest.mark.parametrize(
    ("error", "worth"),
    [
        (OSError(errno.ESTALE, "Stale file handle"), True),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), True),
        (OSError(errno.EIO, "Input/output error"), False),  # reported as a disk problem (exit 2), like a full disk
        (TimeoutError(errno.ETIMEDOUT, "Connection timed out"), True),
        (OSError(errno.ENOSPC, "No space left on device"), False),
        (OSError(errno.EROFS, "Read-only file system"), False),
        (FileNotFoundError(errno.ENOENT, "No such file"), False),
        (PermissionError(errno.EACCES, "Permission denied"), False),
        (InputError("scans.csv", "required column(s) missing: sex"), False),
        (OutputError("out", "cannot write"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_io_errors_a_second_try_can_cure_are_retried(error, worth):
    assert stages.worth_retrying(error) is worth


def _stage(failures: list[BaseException], retries: int = 2):
    calls = []

    def run(request, state, item):
        calls.append(item)
        if failures:
            raise failures.pop(0)
        return f"done {item}"

    return replace(stages.STAGES[0], run=run, retries=retries), calls


def test_a_transient_io_error_is_tried_again_and_the_stage_completes():
    stage, calls = _stage([OSError(errno.ESTALE, "Stale file handle")])
    assert stages._with_retries(stage, None, None, "scans") == "done scans"
    assert calls == ["scans", "scans"]


def test_bad_input_is_not_tried_again():
    stage, calls = _stage([InputError("scans.csv", "cannot be read")])
    with pytest.raises(InputError):
        stages._with_retries(stage, None, None, "scans")
    assert calls == ["scans"]


def test_retries_end_and_the_last_error_is_raised():
    stage, calls = _stage([OSError(errno.ESTALE, "one"), OSError(errno.ESTALE, "two"), OSError(errno.ESTALE, "three")])
    with pytest.raises(OSError, match="three"):
        stages._with_retries(stage, None, None, 0)
    assert calls == [0, 0, 0]


def test_the_prefect_tasks_carry_the_stage_retries_and_the_same_condition():
    from flows import screen

    for stage in stages.STAGES:
        task = screen.TASKS[stage.name]
        assert task.retries == stage.retries
        assert (task.retry_condition_fn is not None) is (stage.retries > 0)
    failed = lambda exc: SimpleNamespace(data=exc)  # noqa: E731 - a Failed state's data is the exception
    assert screen._retry_condition(None, None, failed(OSError(errno.ESTALE, "Stale file handle")))
    assert not screen._retry_condition(None, None, failed(InputError("x", "bad")))
    assert not screen._retry_condition(None, None, failed(OSError(errno.ENOSPC, "full")))
