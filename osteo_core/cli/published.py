"""The commands that read a published run: ``osteo sql``, ``gaps``, ``worklist`` (and ``worklist mark``, which
records outreach in the log beside it), ``measures``, ``report``, ``export-research`` and ``explain``. Each
imports what it needs when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from osteo_core.cli.parser import EVERY_GAP
from osteo_core.errors import OsteoError, output_errors


def cmd_sql(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from osteo_core.outputs.render import write_frame
    from osteo_core.publish.catalog import SqlLimitExceeded, SqlLimits, query, table_listing

    if args.tables:
        write_frame(table_listing(), args.format, args.limit, raw=args.raw)
        return 0
    if not args.query:
        raise OsteoError("osteo sql: a query is required (or --tables)")
    limits = SqlLimits()
    if args.timeout is not None:
        limits = replace(limits, timeout=args.timeout)
    if args.memory_limit is not None:
        limits = replace(limits, memory=args.memory_limit[0], memory_text=args.memory_limit[1])
    try:
        result = query(Path(args.out), args.query, limits=limits)
    except SqlLimitExceeded as err:  # one line: which limit, and the option that raises it
        print(f"osteo sql: {err}", file=sys.stderr)
        return err.exit_code
    write_frame(result, args.format, args.limit, raw=args.raw)
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    from osteo_core.outputs.gap_list import print_gaps

    return print_gaps(Path(args.out), args.gap, args.format, args.limit)


def cmd_worklist(args: argparse.Namespace) -> int:
    if args.action == "mark":
        return _cmd_mark(args)
    from osteo_core.outputs.worklist import print_worklist

    return print_worklist(
        Path(args.out), args.gap, args.status, args.routing, args.all, args.format, args.limit, by_gap=args.by_gap
    )


def _cmd_mark(args: argparse.Namespace) -> int:
    from osteo_core.outputs import worklist
    from osteo_core.publish import outreach

    out = Path(args.out)
    if args.file:
        if args.patient_id or args.gap or args.status or args.note or args.until:
            raise OsteoError("worklist mark: --file takes the marks from the file (only --by and --out with it)")
        marks = worklist.read_marks_csv(Path(args.file), args.by)
        where = args.file
    else:
        if not (args.patient_id and args.gap and args.status):
            raise OsteoError("worklist mark: PATIENT_ID, GAP and --status are required (or --file CSV)")
        until = worklist.parse_date(args.until, "--until")
        gaps = [args.gap]
        if args.gap == EVERY_GAP:  # one batch: every gap open for her and not hidden, or nothing
            gaps, hidden = worklist.open_gaps_of(out, args.patient_id)
            if not gaps:
                why = " that a mark does not hide (mark a hidden gap by its name)" if hidden else ""
                raise OsteoError(f"worklist mark: no open gap{why} for this patient in the published run")
            if hidden:
                left = f"osteo: {hidden} hidden gap(s) of this patient left as marked (mark them by name)"
                print(left, file=sys.stderr)
        marks = [
            {
                "patient_id": args.patient_id,
                "gap": gap,
                "status": args.status,
                "note": args.note,
                "by": args.by,
                "until": until,
            }
            for gap in gaps
        ]
        where = worklist.MARK
    numbers = worklist.record_marks(out, marks, where)
    print(
        f"recorded {len(numbers)} mark(s) in {out / outreach.STORE} (mark {numbers[0]}"
        + (f" to {numbers[-1]})" if len(numbers) > 1 else ")")
    )
    return 0


def cmd_measures(args: argparse.Namespace) -> int:
    from osteo_core.outputs.measure_list import print_measures

    return print_measures(Path(args.out), args.format, args.limit)


def cmd_report(args: argparse.Namespace) -> int:
    from osteo_core.outputs.report import write_report

    with output_errors(args.out):
        print(f"report: {write_report(Path(args.out))}")
    return 0


def cmd_export_research(args: argparse.Namespace) -> int:
    from osteo_core.outputs.research import export_research

    with output_errors(args.dest):
        written = export_research(Path(args.out), Path(args.dest))
    print("de-identified extract: " + ", ".join(f"{t} {n:,} rows" for t, n in written.items()) + f" -> {args.dest}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from osteo_core.outputs.explain import explain

    print(explain(Path(args.out), args.exam_id))
    return 0
