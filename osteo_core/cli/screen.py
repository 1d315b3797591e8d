"""``osteo screen`` and ``osteo serve``: the screen's request from the parsed arguments, and a screen run as the
Prefect flow on a temporary server. The only module of the command that imports flows/, and only once the
arguments are checked: a usage error or an unusable input fails before Prefect is loaded."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from osteo_core.cli.summary import input_change_warnings, print_summary
from osteo_core.errors import OsteoError
from osteo_core.settings import settings
from schemas.inputs import OPTIONS


def screen_request(args: argparse.Namespace):
    """The screen's request as given (``pipeline.resolve`` makes its as-of date a date, once)."""
    from osteo_core.pipeline.request import ScreenRequest

    if not args.scans and not getattr(args, "omop", None):
        raise OsteoError("osteo screen: --scans PATH (or --omop SOURCE) is required")
    request = ScreenRequest(
        scans=list(args.scans or []),
        omop=getattr(args, "omop", None),
        omop_schema=getattr(args, "omop_schema", None),
        omop_patient_id=getattr(args, "omop_patient_id", None),
        omop_enrolment=getattr(args, "omop_enrolment", None) or "birth",
        **{kind.name: getattr(args, kind.name, None) for kind in OPTIONS if kind.optional},
        measurement_year=getattr(args, "measurement_year", None),
        out=args.out,
        as_of=args.as_of,
        rules=args.rules,
        profile=args.profile,
        max_reject_rate=args.max_reject_rate,
        max_shrink=args.max_shrink,
        sheet=getattr(args, "sheet", None),
        keep_runs=settings().keep_runs,
        lsc=getattr(args, "lsc", None),
        partitions=getattr(args, "partitions", 0),
        accept_input_change=getattr(args, "accept_input_change", False),
    )
    return request


def run_screen_flow(request, dask_address: str | None = None) -> dict:
    from osteo_core.pipeline.resolve import hand_over, resolve

    if request.partitions < 0:
        raise OsteoError("--partitions must be 0 (automatic) or more")
    resolved = resolve(request)  # fail fast, before the Prefect engine starts
    hand_over(resolved)  # the flow takes it instead of resolving again
    from flows.logging_quiet import configure_prefect_env

    configure_prefect_env()
    from flows.ephemeral import temporary_server

    with temporary_server() as ready:  # the server boots while the flow's modules are imported
        from flows.screen import run_flow

        ready()
        return run_flow(resolved.request, dask_address=dask_address, workers=settings().workers)


def cmd_screen(args: argparse.Namespace) -> int:
    if args.measurement_year is not None and not args.population:
        print(
            "osteo: warning: --measurement-year has no effect without --population (no quality measures)",
            file=sys.stderr,
        )
    started = time.perf_counter()
    manifest = run_screen_flow(screen_request(args), args.dask_address)
    print_summary(manifest, Path(args.out), time.perf_counter() - started)
    for line in input_change_warnings(manifest):
        print(line, file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.serve import serve

    serve(screen_request(args), args.cron, args.name, args.timezone)  # returns on SIGTERM or SIGINT: a clean stop
    return 0
