"""Expected failures: each maps to an exit status and a one-line message, never a traceback."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from schemas.inputs import called_together


class OsteoError(Exception):
    """Base of the errors a user can cause and fix; ``exit_code`` is what ``osteo`` returns."""

    exit_code = 2


class InputError(OsteoError):
    """Unusable input or arguments: missing/unreadable file, absent required column, unknown rule set."""

    def __init__(self, source: str, problem: str):
        from osteo_core.terminal_text import escape_controls

        self.source = source
        self.problem = problem
        # one line, whatever a file name holds: a newline, ESC or other control character is written as an escape
        super().__init__(escape_controls(f"{source}: {problem}"))


class OutputError(InputError):
    """The output folder cannot be written: read-only, full, or not ours to write (exit 2)."""


class EngineError(OsteoError):
    """The orchestration engine (Prefect) could not run the flow: not the user's input (exit 1)."""

    exit_code = 1


class RunRefused(OsteoError):
    """The run finished but is not published (exit 3); the previous run's outputs stay as they were.

    ``details`` are extra lines for stderr (counts only, never values or ids).
    """

    exit_code = 3
    reason = "refused"  # recorded in the refused run's manifest (``refused_because``)

    def __init__(self, message: str, details: list[str] | None = None):
        self.details = details or []
        super().__init__(message)


class RejectRateExceeded(RunRefused):
    """Too many scan rows were quarantined."""

    reason = "max_reject_rate"

    def __init__(self, rate: float, limit: float, quarantine_path: str, details: list[str] | None = None):
        self.rate = rate
        self.limit = limit
        self.quarantine_path = quarantine_path
        super().__init__(
            f"{rate:.2%} of scan rows were quarantined, above --max-reject-rate {limit:.2%}; "
            f"quarantine written to {quarantine_path}; published outputs left unchanged",
            details,
        )


class ShrinkExceeded(RunRefused):
    """Far fewer valid exams than the last published run: a truncated or wrong export, most likely."""

    reason = "max_shrink"

    def __init__(self, valid: int, previous: int, limit: float, run_folder: str, details: list[str] | None = None):
        self.valid = valid
        self.previous = previous
        super().__init__(
            f"{valid:,} valid exams against {previous:,} in the last published run, a fall of "
            f"{1 - valid / previous:.0%}, above --max-shrink {limit:.0%}; the refused run is in {run_folder} "
            "(manifest.json, quarantine.parquet); published outputs left unchanged (--max-shrink 1 accepts any fall)",
            details,
        )


class InputsMissing(RunRefused):
    """The run lacks a kind of input the last published run had (an upstream export that failed, most
    likely): its gaps would open and close for the missing export, not for the patients. Refused before any
    input is read; the message names the input kinds, never their contents."""

    reason = "inputs_missing"

    def __init__(self, missing: list[str], previous_run_id: str | None, run_folder: str):
        self.missing = missing
        one = len(missing) == 1
        super().__init__(
            f"no {called_together(missing)} export{'' if one else 's'} this time, but the last published run"
            f" ({previous_run_id}) had {'one' if one else 'them'}: without {'it' if one else 'them'} the care gaps that"
            f" depend on {'it' if one else 'them'} would open or close for want of the export; the refused run is in"
            f" {run_folder} (manifest.json); published outputs left unchanged (--accept-input-change publishes"
            " anyway)"
        )


# Errors of the disk or its permissions, as Python, Polars and DuckDB report them.
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG, errno.EIO}
_OS_ERROR_CODE = re.compile(r"os error (\d+)")
_DISK_WORDS = tuple(os.strerror(code) for code in OUTPUT_ERRNOS)


def disk_problem(exc: BaseException) -> str | None:
    """The cause, when ``exc`` is the disk refusing a write (full, read-only, permission), else ``None``."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and code in OUTPUT_ERRNOS:
        return os.strerror(code)
    text = str(exc)
    found = _OS_ERROR_CODE.search(text)
    if found and int(found.group(1)) in OUTPUT_ERRNOS:
        return os.strerror(int(found.group(1)))
    if type(exc).__name__ in ("IOException", "PermissionException", "ComputeError") or isinstance(exc, OSError):
        for words in _DISK_WORDS:
            if words in text:
                return words
    return None


@contextmanager
def output_errors(folder: Path | str) -> Iterator[None]:
    """Turn the disk refusing a write into a one-line ``OutputError`` naming the path (exit 2)."""
    try:
        yield
    except OsteoError:
        raise
    except Exception as exc:
        cause = disk_problem(exc)
        if cause is None:
            raise
        where = getattr(exc, "filename", None) or str(folder)
        raise OutputError(str(where), f"cannot write the output ({cause})") from None
