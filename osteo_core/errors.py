"""Expected failures: each maps to an exit status and a one-line message, never a traceback."""

from __future__ import annotations


class OsteoError(Exception):
    """Base of the errors a user can cause and fix; ``exit_code`` is what ``osteo`` returns."""

    exit_code = 2


class InputError(OsteoError):
    """Unusable input or arguments: missing/unreadable file, absent required column, unknown rule set."""

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class RejectRateExceeded(OsteoError):
    """Too many scan rows were quarantined; the previous run's outputs stay published."""

    exit_code = 3

    def __init__(self, rate: float, limit: float, quarantine_path: str):
        self.rate = rate
        self.limit = limit
        self.quarantine_path = quarantine_path
        super().__init__(
            f"{rate:.2%} of scan rows were quarantined, above --max-reject-rate {limit:.2%}; "
            f"quarantine written to {quarantine_path}; published outputs left unchanged"
        )
