"""Quiet, self-contained Prefect runs: no telemetry, warnings only on the terminal, the stages' counts in
Prefect's own log (its UI's Logs tab), no tracebacks for expected errors.

``configure_prefect_env`` must run before ``prefect`` is imported; it only fills variables the user
has not set, so a user's own Prefect server (``PREFECT_API_URL``) and settings win. Prefect's anonymous
usage data (and its first-run notice) stay off unless ``OSTEO_PREFECT_TELEMETRY=true``.
"""

from __future__ import annotations

import logging
import os

from osteo_core.errors import OsteoError

_DEFAULTS = {
    "PREFECT_LOGGING_LEVEL": "INFO",  # INFO reaches the run's log in Prefect's database (counts only) …
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",  # … while the terminal shows warnings only
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
}
_NO_TELEMETRY = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def _expected_names(cls: type = OsteoError) -> tuple[str, ...]:
    return (cls.__name__, *(name for sub in cls.__subclasses__() for name in _expected_names(sub)))


_EXPECTED = _expected_names()


def configure_prefect_env() -> None:
    from osteo_core.settings import settings

    defaults = dict(_DEFAULTS)
    if not settings().prefect_telemetry:
        defaults |= _NO_TELEMETRY
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


class DropExpectedErrors(logging.Filter):
    """Drop Prefect's records about our expected errors: the CLI reports those in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], OsteoError):
            return False
        message = record.getMessage()
        return not any(f"{name}(" in message or f"{name}:" in message for name in _EXPECTED)


class DropDrainNotices(logging.Filter):
    """Drop Prefect's "Still processing items" notices while its background services (run logs, events)
    finish sending to the API at the end of a run: progress of Prefect's own, not a problem of the screen."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Still processing items")


# Prefect's background services log under their class names (``prefect._internal.concurrency.services``).
_SERVICE_LOGGERS = ("APILogWorker", "EventsWorker")


def install_filter() -> None:
    for name in _SERVICE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropDrainNotices) for f in logger.filters):
            logger.addFilter(DropDrainNotices())
    quiet = DropExpectedErrors()
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if not any(isinstance(f, DropExpectedErrors) for f in handler.filters):
                handler.addFilter(quiet)
