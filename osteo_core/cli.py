"""The ``osteo`` command. Expected errors print one line on stderr and exit 2 or 3, never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from osteo_core.errors import OsteoError, output_errors
from osteo_core.settings import settings


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (the contract's "unusable arguments")
        self.exit(2, f"{self.prog}: error: {message}\n")


def _screen_args(p: argparse.ArgumentParser) -> None:
    cfg = settings()
    p.add_argument(
        "--scans", action="append", required=True, metavar="PATH", help="scans export file or folder; repeatable"
    )
    p.add_argument("--meds", metavar="PATH", help="medications export (optional)")
    p.add_argument("--fractures", metavar="PATH", help="fractures export (optional)")
    p.add_argument("--out", default=cfg.out, metavar="DIR", help="output folder (default: %(default)s)")
    p.add_argument("--as-of", default=dt.date.today().isoformat(), metavar="DATE", help="as-of date (default: today)")
    p.add_argument("--rules", default="standard", metavar="NAME_OR_FILE", help="rule set (default: %(default)s)")
    p.add_argument("--profile", default="generic", metavar="NAME_OR_FILE", help="input profile (default: %(default)s)")
    p.add_argument(
        "--max-reject-rate",
        type=float,
        default=cfg.max_reject_rate,
        metavar="R",
        help="largest share of quarantined scan rows that still publishes (default: %(default)s)",
    )
    p.add_argument(
        "--max-shrink",
        type=float,
        default=cfg.max_shrink,
        metavar="S",
        help="largest fall in valid exams against the last published run that still publishes, as a share "
        "(default: %(default)s, i.e. refuse fewer than half; 1 accepts any fall)",
    )
    p.add_argument("--sheet", metavar="NAME", help="XLSX inputs: read this sheet (default: the first)")
    p.add_argument("--lsc", metavar="FILE", help="per-device least significant change: device_id, site, lsc")
    p.add_argument(
        "--partitions",
        type=int,
        default=cfg.partitions,
        metavar="N",
        help="patient partitions (default: OSTEO_PARTITIONS, or 1 per 500,000 scan rows)",
    )
    p.add_argument(
        "--dask-address",
        default=cfg.dask_address,
        metavar="tcp://HOST:PORT",
        help="run partitions on this Dask scheduler (default: OSTEO_DASK_ADDRESS, else locally)",
    )


def build_parser() -> argparse.ArgumentParser:
    cfg = settings()
    parser = _Parser(prog="osteo", description="Screen DXA registry exports: WHO category, eligibility, care gaps.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _screen_args(sub.add_parser("screen", help="run the screening flow"))
    serve = sub.add_parser("serve", help="register and serve a scheduled screen on a Prefect server")
    _screen_args(serve)
    serve.add_argument("--cron", required=True, metavar="EXPR", help='schedule, e.g. "0 6 * * 1" (Mondays 06:00)')
    serve.add_argument("--name", default="osteo-screen", help="deployment name (default: %(default)s)")
    serve.set_defaults(as_of="")  # each scheduled run screens as of its own day, unless --as-of is given
    sql = sub.add_parser("sql", help="run read-only SQL over the published tables")
    sql.add_argument("query", nargs="?", help="SQL text")
    sql.add_argument("--out", default=cfg.out, metavar="DIR")
    sql.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    sql.add_argument("--tables", action="store_true", help="list the tables and columns with descriptions")
    gaps = sub.add_parser("gaps", help="print the open care gaps, most urgent first")
    gaps.add_argument("--out", default=cfg.out, metavar="DIR")
    gaps.add_argument("--gap", metavar="TYPE", help="only this gap type")
    gaps.add_argument("--format", choices=("table", "csv", "json"), default="table")
    report = sub.add_parser("report", help="write a self-contained HTML report with charts")
    report.add_argument("--out", default=cfg.out, metavar="DIR")
    research = sub.add_parser("export-research", help="write de-identified copies for researchers")
    research.add_argument("--out", default=cfg.out, metavar="DIR")
    research.add_argument("--dest", required=True, metavar="DIR2")
    explain = sub.add_parser("explain", help="show the rules evaluated for one exam")
    explain.add_argument("exam_id", metavar="EXAM_ID")
    explain.add_argument("--out", default=cfg.out, metavar="DIR")
    demo = sub.add_parser("demo", help="screen a synthetic registry and show the result")
    demo.add_argument("--patients", type=int, default=10_000)
    demo.add_argument(
        "--out",
        default=cfg.out,
        metavar="DIR",
        help="output folder (default: %(default)s, as for screen, sql and gaps)",
    )
    return parser


def _request(args: argparse.Namespace):
    from osteo_core.pipeline.request import ScreenRequest

    return ScreenRequest(
        scans=list(args.scans),
        meds=args.meds,
        fractures=args.fractures,
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
    )


def _run_flow(request, dask_address: str | None = None) -> dict:
    from osteo_core.pipeline.request import check_arguments

    if request.partitions < 0:
        raise OsteoError("--partitions must be 0 (automatic) or more")
    check_arguments(request)  # fail fast, before the Prefect engine starts
    from flows.logging_quiet import configure_prefect_env

    configure_prefect_env()
    from flows.ephemeral import temporary_server

    with temporary_server() as ready:  # the server boots while the flow's modules are imported
        from flows.screen import run_flow

        ready()
        return run_flow(request, dask_address=dask_address, workers=settings().workers)


def cmd_screen(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    manifest = _run_flow(_request(args), args.dask_address)
    _print_summary(manifest, Path(args.out), time.perf_counter() - started)
    return 0


def _print_summary(manifest: dict, out: Path, seconds: float) -> None:
    rows = manifest["rows"]
    print(
        f"run {manifest['run_id']}  as of {manifest['as_of']}  rules {manifest['rule_set']['name']}@"
        f"{manifest['rule_set']['version']}  profile {manifest['profile']}"
    )
    print(
        f"scan rows: {rows['rows_in']:,} in = {rows['valid']:,} valid + {rows['quarantined']:,} quarantined"
        f" + {rows['duplicate']:,} duplicate"
    )
    categories = manifest.get("who_categories", {})
    if categories:
        print(
            "exams by WHO category: "
            + ", ".join(f"{('no T-score category' if k == 'None' else k)} {v:,}" for k, v in categories.items())
        )
    gaps = manifest.get("care_gaps", {})
    if gaps:
        print("open care gaps: " + ", ".join(f"{k} {v:,}" for k, v in gaps.items()))
    for line in input_notes(manifest):
        print(line)
    print(f'outputs: {out.resolve()}  (osteo sql --out {out} "SELECT ...")  in {seconds:.1f} s')


def input_notes(manifest: dict) -> list[str]:
    """What was read differently from a plain file: blank lines skipped, columns nobody maps, workbook
    sheets not read, files a folder scan passed over (names of files and columns only, never values)."""
    notes = []
    for kind, label in (("meds", "medication"), ("fractures", "fracture")):
        rows = manifest.get("rows_by_input", {}).get(kind, {})
        if rows.get("rows_in"):
            share = rows["quarantined"] / rows["rows_in"]
            limit = manifest.get("max_reject_rate", 0.0)  # the limit scans are held to, as a warning here
            warning = f"  ({share:.0%} quarantined: check the quarantine table)" if share > limit else ""
            notes.append(
                f"{label} rows: {rows['rows_in']:,} in = {rows['valid']:,} valid + {rows['quarantined']:,} "
                f"quarantined + {rows['duplicate']:,} duplicate{warning}"
            )
    blank = {kind: n for kind, n in manifest.get("blank_lines", {}).items() if n}
    if blank:
        notes.append("blank lines skipped: " + ", ".join(f"{kind} {n:,}" for kind, n in blank.items()))
    for entry in manifest.get("inputs", []):
        name = Path(entry["path"]).name
        if entry["rows"] == 0:
            notes.append(f"no data rows in {name} ({entry['input']}): check the export is complete")
        if entry.get("unmapped_columns"):
            notes.append(
                f"unmapped columns in {name} (kept in the raw layer, not used): " + ", ".join(entry["unmapped_columns"])
            )
        if entry.get("other_sheets"):
            notes.append(
                f"sheets not read in {name} (read '{entry['sheet']}'; choose with --sheet): "
                + ", ".join(entry["other_sheets"])
            )
    for kind, skipped in manifest.get("skipped_files", {}).items():
        notes.append(f"skipped in the {kind} folder (not a data file): " + ", ".join(Path(p).name for p in skipped))
    return notes


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.screen import serve

    serve(_request(args), args.cron, args.name)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from osteo_core.publish.catalog import run_query, table_listing

    if args.tables:
        print(table_listing())
        return 0
    if not args.query:
        raise OsteoError("osteo sql: a query is required (or --tables)")
    return run_query(Path(args.out), args.query, args.format)


def cmd_demo(args: argparse.Namespace) -> int:
    from osteo_core.demo import synthetic

    out = Path(args.out)
    if args.patients < 1:
        raise OsteoError("--patients must be at least 1")
    inputs = out / "input"
    inputs.mkdir(parents=True, exist_ok=True)
    scans = synthetic.registry(args.patients)
    scans.write_csv(inputs / "scans.csv")
    synthetic.medications(scans).write_csv(inputs / "medications.csv")
    synthetic.fractures(scans).write_csv(inputs / "fractures.csv")
    print(f"synthetic registry: {args.patients:,} patients -> {inputs}/ (scans, medications, fractures)")
    args.scans, args.meds, args.fractures = (
        [str(inputs / "scans.csv")],
        str(inputs / "medications.csv"),
        str(inputs / "fractures.csv"),
    )
    args.as_of, args.rules, args.profile = dt.date.today().isoformat(), "standard", "generic"
    args.max_reject_rate, args.lsc, args.partitions = settings().max_reject_rate, None, 0
    args.max_shrink = settings().max_shrink
    started = time.perf_counter()
    manifest = _run_flow(_request(args))
    _print_summary(manifest, out, time.perf_counter() - started)
    from osteo_core.outputs.gap_list import render_table
    from osteo_core.publish.catalog import query

    untreated = query(out, "SELECT * FROM untreated_high_risk ORDER BY since, patient_id")
    print(f"\nuntreated high-risk patients ({untreated.height:,}; the first 15, oldest first):")
    print(render_table(untreated.head(15)))
    print(f"\nall of them: osteo gaps --out {out} --gap untreated_high_risk --format csv")
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    from osteo_core.outputs.gap_list import print_gaps

    return print_gaps(Path(args.out), args.gap, args.format)


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


COMMANDS = {
    "screen": cmd_screen,
    "sql": cmd_sql,
    "gaps": cmd_gaps,
    "report": cmd_report,
    "serve": cmd_serve,
    "export-research": cmd_export_research,
    "explain": cmd_explain,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2, already printed in one line)
        return int(exit_.code or 0)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except OsteoError as err:
        print(f"osteo: {err}", file=sys.stderr)
        for line in getattr(err, "details", []):
            print(line, file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("osteo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
