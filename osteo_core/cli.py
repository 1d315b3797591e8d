"""The ``osteo`` command. Expected errors print one line on stderr and exit 2 or 3, never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from osteo_core.errors import OsteoError, output_errors
from osteo_core.outputs.render import FORMATS, TERMINAL_ROWS
from osteo_core.settings import settings
from schemas.gaps import SCREENING_DUE, UNTREATED_HIGH_RISK
from schemas.inputs import FRACTURES, INPUT_KINDS, OPTIONS, SCANS, called

EXAMPLE_GAP = UNTREATED_HIGH_RISK.name  # the gap the help's examples name


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (the contract's "unusable arguments")
        self.exit(2, f"{self.prog}: error: {message}\n")


def _screen_args(p: argparse.ArgumentParser) -> None:
    cfg = settings()
    optional = [kind.option for kind in OPTIONS if kind.optional]
    p.add_argument(SCANS.option, action="append", metavar="PATH", help=SCANS.help)
    p.add_argument(
        "--omop",
        metavar="SOURCE",
        help=f"an OMOP CDM feeding every input instead of {'/'.join(kind.option for kind in OPTIONS)}: a folder of"
        " CDM tables (Parquet or CSV), a DuckDB database file, or a PostgreSQL URL postgresql://HOST[:PORT]/DB (user"
        " and password from PGUSER/PGPASSWORD or ~/.pgpass, never in the URL)",
    )
    p.add_argument(
        "--omop-schema",
        metavar="NAME",
        help="the CDM's schema (default: main in a DuckDB file, public in PostgreSQL)",
    )
    p.add_argument(
        "--omop-patient-id",
        choices=("person_source_value", "person_id"),
        help="the CDM column giving patient_id, the other shown beside it as mrn (default: person_source_value when"
        " every person has a distinct one, else person_id)",
    )
    p.add_argument(
        "--omop-enrolment",
        choices=("birth", "observation_period"),
        default="birth",
        help="the CDM's population: every living person enrolled from birth (an EHR-built CDM), or each"
        " observation_period a coverage span (a claims CDM) (default: %(default)s)",
    )
    for kind in OPTIONS:
        if kind.optional:
            p.add_argument(kind.option, metavar="PATH", help=kind.help)
    p.add_argument(
        "--measurement-year",
        type=int,
        metavar="YYYY",
        help="year of the quality measures (OMW, MIPS 418, MIPS 039), computed with --population (default: the"
        " as-of year)",
    )
    p.add_argument(
        "--out", default=cfg.out, metavar="DIR", help="output folder the run is published into (default: %(default)s)"
    )
    p.add_argument(
        "--as-of", metavar="DATE", help="as-of date (default: today; with --omop the CDM's release date, cdm_source)"
    )
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
    p.add_argument(
        "--accept-input-change",
        action="store_true",
        help=f"publish even without a kind of input the last published run had ({', '.join(optional)}); without it"
        " such a run is refused (exit 3), since its gaps would open or close for the missing export",
    )
    p.add_argument("--sheet", metavar="NAME", help="XLSX inputs: read this sheet (default: the first)")
    p.add_argument("--lsc", metavar="FILE", help="per-device least significant change: device_id, site, lsc")
    p.add_argument(
        "--partitions",
        type=int,
        default=cfg.partitions,
        metavar="N",
        help="patient partitions (default: OSTEO_PARTITIONS, or 1 per 500,000 scan or roster rows)",
    )
    p.add_argument(
        "--dask-address",
        default=cfg.dask_address,
        metavar="tcp://HOST:PORT",
        help="run partitions on this Dask scheduler (default: OSTEO_DASK_ADDRESS, else locally)",
    )


_HELP: dict[str, tuple[str, str, str]] = {  # command: (one line, description, examples)
    "screen": (
        "screen registry exports and publish the results",
        "Read the scans export (and optionally medications and fractures), validate every row, classify each "
        "exam, apply the rule set, find the care gaps and publish the tables into --out in one atomic step. "
        "Exit 0 published, 2 unusable input (one line naming the file), 3 refused (too many rows quarantined, "
        "far fewer exams than last time, or no export of a kind the last published run had), 1 the engine "
        "failed (e.g. Prefect's server did not start).",
        "osteo screen --scans exports/scans/ --meds exports/meds.csv --fractures exports/fractures.csv "
        "--out /data/osteo\n  osteo screen --scans data/samples/densitometer_us_sample.csv --profile densitometer_us",
    ),
    "serve": (
        "serve the screen on a schedule from a Prefect server",
        "Register the screen as a Prefect deployment with a cron schedule in a time zone and serve it until "
        "stopped (SIGTERM or Ctrl-C: exit 0). Needs PREFECT_API_URL pointing at a running Prefect server. Takes "
        "every option of 'osteo screen'; paths are made absolute and checked now. Prints the next three run times. "
        "Each run screens as of its own day in that time zone (unless --as-of); a run refused or with a missing "
        "input ends Failed in Prefect with its one-line reason.",
        'osteo serve --cron "0 6 * * 1" --timezone America/New_York --name weekly --scans /data/exports/scans/ '
        "--out /data/osteo",
    ),
    "sql": (
        "query the published tables with read-only SQL",
        "Run one read-only DuckDB query over the published run in --out (tables: osteo sql --tables). "
        "Nothing can be written or read by path. A query runs within a time limit (--timeout), a memory limit "
        "(--memory-limit) and OSTEO_SQL_THREADS threads (default: one per core); past a limit it stops with exit 2, "
        "saying which.",
        'osteo sql --out osteo-demo "SELECT who_category, count(*) FROM screening GROUP BY ALL"\n'
        '  osteo sql --out osteo-demo --format csv "SELECT * FROM quarantine" > quarantine.csv\n'
        "  osteo sql --tables",
    ),
    "gaps": (
        "list the open care gaps, most urgent first",
        "Print today's care-gap list of the published run: highest priority first, then the oldest.",
        f"osteo gaps --out osteo-demo\n  osteo gaps --out osteo-demo --gap {EXAMPLE_GAP} --format csv > list.csv",
    ),
    "worklist": (
        "the open gaps to work, with their outreach status; mark calls",
        "Print the open care gaps of the published run with each gap's latest outreach status and how long it has "
        "been open (first_seen), most urgent first. Gaps marked declined or not_appropriate are left out until "
        "their date (--all shows them). Filter by --gap, --status and the roster's routing columns (e.g. "
        "--clinic clinic-3). Record outreach with 'osteo worklist mark' (osteo worklist mark --help).",
        f"osteo worklist --out osteo-demo --gap {EXAMPLE_GAP} --status none\n"
        "  osteo worklist --out osteo-demo --clinic clinic-3 --format csv > calls.csv\n"
        f"  osteo worklist mark P000123 {EXAMPLE_GAP} --status contacted --note 'letter sent' --out osteo-demo",
    ),
    "mark": (
        "record outreach on an open gap",
        "Append a mark to the outreach log (OUT/outreach.sqlite; published runs are never changed): who, when, the "
        "status and a note. The gap must be open in the published run. declined and not_appropriate hide the gap "
        "from the default worklist until --until (default: a year later, data/reference/outreach.toml), never "
        "from care_gaps or the quality measures; reopened shows it again. --file marks.csv records many at once "
        "(columns patient_id, gap, status, and optionally note, by, until): all of them, or none if a row is wrong.",
        f"osteo worklist mark P000123 {EXAMPLE_GAP} --status contacted --by 'RN Lee' --out osteo-demo\n"
        f"  osteo worklist mark P000123 {EXAMPLE_GAP} --status declined --until 2027-06-01 --out osteo-demo\n"
        "  osteo worklist mark --file marks.csv --by 'RN Lee' --out osteo-demo",
    ),
    "measures": (
        "print the quality measures' rates (OMW, MIPS 418, MIPS 039)",
        "Print the published run's quality-measure summary: per measure the denominator, exclusions, numerator "
        "and rate for the measurement year (osteo screen --population …; members: the measure_members table).",
        "osteo measures --out osteo-demo\n  osteo measures --out osteo-demo --format csv > measures.csv",
    ),
    "report": (
        "write an HTML report with charts",
        "Write OUT/report.html: one self-contained file (opens offline) with the run's charts and history.",
        "osteo report --out osteo-demo",
    ),
    "export-research": (
        "write de-identified copies for researchers",
        "Write de-identified screening, patients and care_gaps into --dest: keyed pseudonyms (set "
        "OSTEO_RESEARCH_KEY), dates as year and month, no exam or device ids.",
        "OSTEO_RESEARCH_KEY='a long secret' osteo export-research --out osteo-demo --dest research/2026-11",
    ),
    "explain": (
        "show why one exam got its decision",
        "Print the inputs of one exam, each rule with its threshold and the compared value, the reasons, the "
        "recommendation and the next DXA date, from the rule file of the published run.",
        "osteo explain X000000001 --out osteo-demo",
    ),
    "demo": (
        "screen a synthetic registry and show the result",
        "Make a synthetic registry (scans, medications, fractures; no real patient), screen it through the "
        "Prefect flow and print the untreated high-risk list.",
        "osteo demo --patients 1000 --out osteo-demo",
    ),
}


DESCRIPTION_WIDTH = 100


def _command(sub, name: str) -> argparse.ArgumentParser:
    summary, description, examples = _HELP[name]
    return sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, DESCRIPTION_WIDTH),
        epilog="example:\n  " + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


DEMO_FOLDER = "osteo-demo"  # osteo demo's --out (make demo's too)


def _out_arg(
    p: argparse.ArgumentParser, what: str = "the published screen to read", default: str | None = None
) -> None:
    default = default or settings().out
    p.add_argument("--out", default=default, metavar="DIR", help=f"output folder: {what} (default: %(default)s)")


def _listing_args(p: argparse.ArgumentParser, pipe_csv: bool = True) -> None:
    """``pipe_csv``: without --format, a table on a terminal and CSV to a pipe or file (else always a table)."""
    from osteo_core.outputs.render import default_format, row_limit

    p.add_argument(
        "--format",
        choices=FORMATS,
        default=default_format() if pipe_csv else "table",
        help="table (fits the terminal, one line per row), csv (a cell starting with = + - @ tab or CR gets a "
        "leading ' so a spreadsheet shows it as text), json, or parquet (binary: redirect to a file); default: "
        + ("table on a terminal, csv to a pipe or a file" if pipe_csv else "table"),
    )
    p.add_argument(
        "--limit",
        type=row_limit,
        metavar="N",
        help=f"at most N rows, 0 or more (0: only the column names; default: {TERMINAL_ROWS} in a table on a "
        "terminal, else all)",
    )


LISTING_OPTIONS = ("--out", "--gap", "--status", "--all", "--by-gap", "--format", "--limit", "--help", "-h")


def _worklist_args(worklist: argparse.ArgumentParser) -> None:
    from osteo_core.publish.outreach import statuses

    actions = worklist.add_subparsers(
        dest="action", parser_class=_Parser, metavar="[mark]", help="mark: record outreach on an open gap"
    )
    _out_arg(worklist)
    worklist.add_argument("--gap", metavar="TYPE", help=f"only this gap type, e.g. {EXAMPLE_GAP}")
    worklist.add_argument(
        "--status",
        choices=[*statuses(), "none"],
        help="only gaps whose latest outreach mark has this status (none: not marked yet); shows hidden ones too",
    )
    worklist.add_argument(
        "--all", action="store_true", help="also the gaps hidden by a declined or not_appropriate mark"
    )
    worklist.add_argument(
        "--by-gap", action="store_true", help="one row per open gap (default: one row per patient, her most urgent gap)"
    )
    _listing_args(worklist)
    worklist.epilog += (
        "\n\nrouting filters: --COLUMN VALUE for each routing column of the roster (e.g. --clinic);"
        " --mrn VALUE: the patient with this medical record number"
    )
    mark = _command(actions, "mark")
    mark.add_argument("patient_id", nargs="?", metavar="PATIENT_ID", help="the patient, as in care_gaps")
    mark.add_argument(
        "gap",
        nargs="?",
        metavar="GAP",
        help=f"the open gap, e.g. {EXAMPLE_GAP}; '{EVERY_GAP}': every open gap of the patient",
    )
    mark.add_argument("--status", choices=list(statuses()), help="what happened (required unless --file)")
    mark.add_argument("--note", metavar="TEXT", help="free text (keep clinical detail in the record system)")
    mark.add_argument("--by", metavar="NAME", help="who records it (default: your login name)")
    mark.add_argument("--until", metavar="DATE", help="declined / not_appropriate: hide the gap until this date")
    mark.add_argument("--file", metavar="CSV", help="many marks: patient_id, gap, status[, note, by, until]")
    _out_arg(mark, "the published screen whose gaps are marked; the log is OUT/outreach.sqlite")


def _sql_timeout(text: str) -> float:
    """``osteo sql --timeout``: seconds above 0 (argparse names the option in its one-line error otherwise)."""
    import math
    import threading

    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= threading.TIMEOUT_MAX:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"give a number of seconds above 0, e.g. 600 (not {text!r})")
    return seconds


def _sql_memory(text: str) -> tuple[int, str]:
    """``osteo sql --memory-limit``: (bytes, the size as written), read as DuckDB reads a size (``2GB``)."""
    from osteo_core.publish.catalog import parse_size

    try:
        return parse_size(text), text.strip()
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err} (not {text!r})") from None


EVERY_GAP = "all"  # worklist mark PATIENT all: every open gap of the patient (no gap type is named so)
VALUED_OPTIONS = ("--out", "--gap", "--status", "--format", "--limit")  # the listing's options that take a value


def split_routing(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """``osteo worklist --clinic clinic-3``: the options that are not the listing's own (nor a prefix of one,
    as argparse allows) are routing filters (column → value), taken out before argparse sees them. Options
    written before ``mark`` are moved after it, so ``osteo worklist --out X mark …`` marks in X."""
    if not argv or argv[0] != "worklist":
        return argv, {}
    kept, routing, i = [argv[0]], {}, 1
    while i < len(argv):
        token = argv[i]
        name = token.split("=", 1)[0]
        if token == "mark":  # the rest is the mark command's: options given before it go after it
            if routing:
                raise OsteoError("worklist mark: unknown option(s) " + ", ".join(f"--{k}" for k in routing))
            return [argv[0], "mark", *kept[1:], *argv[i + 1 :]], {}
        own = [o for o in LISTING_OPTIONS if o.startswith(name)] if name.startswith("--") else [name]
        if token.startswith("--") and len(token) > 2 and not own:
            if "=" in token:
                value = token.split("=", 1)[1]
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                i += 1
                value = argv[i]
            else:
                raise OsteoError(f"worklist: {name} needs a value (a routing filter: {name} VALUE)")
            routing[name[2:].replace("-", "_")] = value
        else:
            kept.append(token)
            if len(own) == 1 and own[0] in VALUED_OPTIONS and "=" not in token and i + 1 < len(argv):
                i += 1  # its value, even one that reads "mark"
                kept.append(argv[i])
        i += 1
    return kept, routing


def build_parser() -> argparse.ArgumentParser:
    from osteo_core import __version__

    parser = _Parser(
        prog="osteo",
        description="Screen DXA registry exports: WHO category, treatment eligibility, care gaps.",
        epilog="start with: osteo demo   ·   each command: osteo COMMAND --help",
    )
    parser.add_argument("--version", action="version", version=f"osteo-screen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    _screen_args(_command(sub, "screen"))
    serve = _command(sub, "serve")
    _screen_args(serve)
    serve.add_argument(
        "--cron", required=True, metavar="EXPR", help='schedule, e.g. "0 6 * * 1" (Mondays 06:00 in --timezone)'
    )
    serve.add_argument(
        "--timezone",
        metavar="IANA_NAME",
        help="time zone of the schedule and of each run's as-of date, e.g. America/New_York (default: this machine's)",
    )
    serve.add_argument("--name", default="osteo-screen", help="deployment name (default: %(default)s)")
    serve.set_defaults(as_of="")  # each scheduled run screens as of its own day, unless --as-of is given
    sql = _command(sub, "sql")
    sql.add_argument("query", nargs="?", help="one SQL statement (quote it)")
    _out_arg(sql)
    _listing_args(sql)
    sql.add_argument(
        "--raw",
        action="store_true",
        help="csv: write every cell exactly as stored, with no ' before a cell starting with = + - @ tab or CR "
        "(for pipelines, not spreadsheets); json and parquet are always as stored",
    )
    sql.add_argument("--tables", action="store_true", help="list the tables and columns with descriptions")
    sql.add_argument(
        "--timeout",
        type=_sql_timeout,
        metavar="SECONDS",
        help="stop the query when it has run this long (exit 2); default: 120",
    )
    sql.add_argument(
        "--memory-limit",
        type=_sql_memory,
        metavar="SIZE",
        help="the most memory the query may use, e.g. 2GB or 500MB (nothing spills to disk; past it: exit 2); "
        "default: a quarter of this machine's memory, at most 8 GiB",
    )
    gaps = _command(sub, "gaps")
    _out_arg(gaps)
    gaps.add_argument("--gap", metavar="TYPE", help=f"only this gap type, e.g. {EXAMPLE_GAP}")
    _listing_args(gaps)
    _worklist_args(_command(sub, "worklist"))
    measures = _command(sub, "measures")
    _out_arg(measures)
    _listing_args(measures, pipe_csv=False)
    report = _command(sub, "report")
    _out_arg(report, "the published screen to chart; report.html is written there")
    research = _command(sub, "export-research")
    _out_arg(research)
    research.add_argument(
        "--dest", required=True, metavar="DIR2", help="new, empty, or previous-extract folder to write into"
    )
    explain = _command(sub, "explain")
    explain.add_argument("exam_id", metavar="EXAM_ID", help="the exam's id as in the scans export")
    _out_arg(explain)
    demo = _command(sub, "demo")
    demo.add_argument("--patients", type=int, default=10_000, help="synthetic patients (default: %(default)s)")
    # never the default --out of a real screen: synthetic patients must not go where a real list is published
    _out_arg(demo, "where the synthetic inputs and the screen go", default=DEMO_FOLDER)
    return parser


def _request(args: argparse.Namespace):
    """The screen's request; an as-of date not given is resolved here, once (``request.resolve_as_of``)."""
    from osteo_core.pipeline.request import ScreenRequest, resolve_as_of

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
    return resolve_as_of(request)


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
    if args.measurement_year is not None and not args.population:
        print(
            "osteo: warning: --measurement-year has no effect without --population (no quality measures)",
            file=sys.stderr,
        )
    started = time.perf_counter()
    manifest = _run_flow(_request(args), args.dask_address)
    _print_summary(manifest, Path(args.out), time.perf_counter() - started)
    for line in input_change_warnings(manifest):
        print(line, file=sys.stderr)
    return 0


def input_change_warnings(manifest: dict) -> list[str]:
    """A run given other kinds of input than the last published one says so (its gaps are not comparable)."""
    lines = []
    ids = (manifest.get("omop") or {}).get("patient_ids_changed")
    if ids:  # published with --accept-input-change although its patient ids do not match the last run's
        what = (
            f"the CDM's {manifest['omop']['patient_id_column']}, the last published run's its"
            f" {ids['previous_patient_id_column']}"
            if "previous_patient_id_column" in ids
            else f"only {ids['patients_found']:,} of {ids['patients_with_a_result']:,} patients with a DXA result"
            " found in the last published run with the same birth date"
        )
        lines.append(
            f"osteo: warning: patient ids are {what} ({ids['previous_run_id']}): gaps start anew and earlier"
            " outreach marks do not apply"
        )
    changed = manifest.get("inputs_changed")
    if not changed:
        return lines
    for kind in changed["missing"]:
        lines.append(
            f"osteo: warning: no {called(kind)} export this time, but the last published run"
            f" ({changed['previous_run_id']}) had one: gaps that depend on it are not comparable across the two runs"
        )
    for kind in changed["new"]:
        lines.append(
            f"osteo: warning: a {called(kind)} export this time, but not in the last published run"
            f" ({changed['previous_run_id']}): gaps that depend on it are not comparable across the two runs"
        )
    return lines


def _print_summary(manifest: dict, out: Path, seconds: float) -> None:
    rows = manifest["rows"]
    print(
        f"run {manifest['run_id']}  as of {manifest['as_of']}  rules {manifest['rule_set']['name']}@"
        f"{manifest['rule_set']['version']}  profile {manifest['profile']}"
    )
    print(
        f"{SCANS.row} rows: {rows['rows_in']:,} in = {rows['valid']:,} valid + {rows['quarantined']:,} quarantined"
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
    for line in lifecycle_lines(manifest):
        print(line)
    for line in measure_lines(manifest):
        print(line)
    for line in input_notes(manifest):
        print(line)
    print(f'outputs: {out.resolve()}  (osteo sql --out {out} "SELECT ...")  in {seconds:.1f} s')


def lifecycle_lines(manifest: dict) -> list[str]:
    """Gaps against the run this one was compared with: new, persisting, closed by why (counts only)."""
    entry = manifest.get("lifecycle")
    if not entry or not entry.get("base_run_id"):
        return []
    closed = entry["closed"]
    why = f" ({', '.join(f'{reason} {n:,}' for reason, n in closed.items())})" if closed else ""
    return [
        f"since the run as of {entry['base_as_of']}: {entry['new']:,} new gaps, {entry['persisting']:,} persisting,"
        f" {sum(closed.values()):,} closed{why}"
    ]


def measure_lines(manifest: dict) -> list[str]:
    """The quality measures' rates (counts only), when a roster was given."""
    entry = manifest.get("measures")
    if not entry:
        return []
    shown = []
    for r in entry["results"]:
        rate = f"{r['rate']:.1%}" if r["rate"] is not None else "n/a"
        still = f", {r['open_windows']:,} still open" if r.get("open_windows") else ""
        shown.append(f"{r['measure']} {rate} ({r['numerator']:,}/{r['denominator'] - r['exclusions']:,}{still})")
    return [f"quality measures {entry['measurement_year']}: " + ", ".join(shown)]


def input_notes(manifest: dict) -> list[str]:
    """What was read differently from a plain file: blank lines skipped, columns nobody maps, workbook
    sheets not read, files a folder scan passed over, a FHIR export's resources counted and not read (names of
    files, columns and reasons only, never values)."""
    notes = []
    for kind in (k for k in INPUT_KINDS if k is not SCANS):  # the scan rows have a line of their own
        rows = manifest.get("rows_by_input", {}).get(kind.name, {})
        if rows.get("rows_in"):
            share = rows["quarantined"] / rows["rows_in"]
            limit = manifest.get("max_reject_rate", 0.0)  # the limit scans are held to, as a warning here
            warning = f"  ({share:.0%} quarantined: check the quarantine table)" if share > limit else ""
            notes.append(
                f"{kind.row} rows: {rows['rows_in']:,} in = {rows['valid']:,} valid + {rows['quarantined']:,} "
                f"quarantined + {rows['duplicate']:,} duplicate{warning}"
            )
        if rows.get("not_in_population"):
            notes.append(
                f"patients not in the population roster: {rows['not_in_population']:,} (screened all the same)"
            )
    several = manifest.get("rows_by_input", {}).get(SCANS.name, {}).get("patients_with_several_mrns")
    if several:
        notes.append(
            f"patients whose records give different medical record numbers: {several:,} (the first read is shown;"
            " check the export's Patient identifiers)"
        )
    notes += omop_notes(manifest)
    blank = {kind: n for kind, n in manifest.get("blank_lines", {}).items() if n}
    if blank:
        notes.append("blank lines skipped: " + ", ".join(f"{kind} {n:,}" for kind, n in blank.items()))
    notes += fhir_notes(manifest)
    for entry in manifest.get("inputs", []):
        name = Path(entry["path"]).name
        if entry["rows"] == 0 and entry.get("format") != "ndjson":  # NDJSON: none read is said by fhir_notes
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


def omop_notes(manifest: dict) -> list[str]:
    """An OMOP screen: its as-of date against the CDM's release date, which CDM column gave the patient ids (the
    other beside them as mrn), and the observation periods read as enrolment (dates, column names and counts)."""
    entry = manifest.get("omop")
    if not entry:
        return []
    notes = []
    released, as_of = entry.get("release_date"), manifest.get("as_of")
    if not released:
        notes.append(f"as of {as_of}: the CDM gives no release date (cdm_source.source_release_date)")
    elif as_of and as_of != released:
        days = (dt.date.fromisoformat(as_of) - dt.date.fromisoformat(released)).days
        side = "after" if days > 0 else "before"
        notes.append(f"as of {as_of}: {abs(days):,} days {side} the CDM's release date {released}")
    else:
        notes.append(f"as of the CDM's release date {released}")
    column = entry.get("patient_id_column")
    if column:
        other = "person_id" if column == "person_source_value" else "person_source_value"
        notes.append(f"patient_id: the CDM's {column} ({other} beside it as mrn)")
    from osteo_core.ingest import omop  # a screen ran: its imports are loaded

    tables = entry.get("tables", {})
    if tables:
        notes.append("CDM rows read: " + ", ".join(f"{t} {a['read']:,} of {a['rows']:,}" for t, a in tables.items()))
    orphans = {t: a["not_read"].get(omop.UNKNOWN_PERSON, 0) for t, a in tables.items()}
    if any(orphans.values()):
        notes.append(
            "CDM rows of a person_id not in table 'person' (not read): "
            + ", ".join(f"{t} {n:,}" for t, n in orphans.items() if n)
        )
    if entry.get("enrolment") == "observation_period":
        without = entry.get("persons_without_observation_period", 0)
        notes.append(
            f"enrolment: the CDM's {entry.get('observation_periods', 0):,} observation periods"
            + (f"; {without:,} persons without one are not in the population" if without else "")
        )
    return notes


def fhir_notes(manifest: dict) -> list[str]:
    """A FHIR export's Conditions (``N fractures among M conditions``: a Condition file without a fracture is
    normal) and, per file, the resources counted and not read, by reason (counts only)."""
    notes = []
    conditions = [e for e in manifest.get("inputs", []) if e.get("resource_type") == "Condition"]
    fractures = manifest.get("rows_by_input", {}).get(FRACTURES.name, {}).get("fracture_events")
    if conditions and fractures is not None:
        total = sum(e["rows"] + sum(e.get("not_read", {}).values()) for e in conditions)
        notes.append(f"FHIR Conditions: {fractures:,} fractures among {total:,} conditions")
    for entry in manifest.get("inputs", []):
        if entry.get("not_read"):
            reasons = ", ".join(f"{reason} {n:,}" for reason, n in entry["not_read"].items())
            notes.append(f"not read in {Path(entry['path']).name} ({entry['resource_type']}): {reasons}")
    return notes


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.serve import serve

    serve(_request(args), args.cron, args.name, args.timezone)  # returns on SIGTERM or SIGINT: a clean stop
    return 0


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


DEMO_ROWS = 15  # untreated patients the demo prints
DEMO_MARKER_TEXT = (
    "This folder was made by osteo demo. The next osteo demo into it deletes everything here (inputs, runs,\n"
    "catalog, outreach log, history) and starts afresh, as of its own day. Keep nothing of your own here.\n"
)


DEMO_INPUTS = ("scans.csv", "medications.csv", "fractures.csv", "population.csv")  # what osteo demo writes


def _earlier_demo(out: Path) -> bool:
    """A folder ``osteo demo`` made before it left its marker: its published run read exactly the demo's four
    input files in ``OUT/input/`` and nothing else, and the folder holds nothing but what a demo leaves."""
    from osteo_core.publish import folder as publish

    try:
        manifest = publish.published_manifest(out)
        read = {Path(entry["path"]).resolve() for entry in (manifest or {}).get("inputs", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    demo_inputs = {(out / "input" / name).resolve() for name in DEMO_INPUTS}
    left = {"input", "runs", publish.CURRENT, publish.CATALOG, publish.LOCK, "history.jsonl", "report.html"}
    made = {p.name for p in out.iterdir()} <= left | {f"{t}.parquet" for t in publish.TABLES} | {
        publish.MANIFEST, "outreach.jsonl", "outreach.sqlite", "outreach.sqlite-wal", "outreach.sqlite-shm",
        ".outreach.lock", "outreach.jsonl.migrated",
    }  # fmt: skip
    return bool(read) and read == demo_inputs and made


def _fresh_demo_folder(out: Path) -> None:
    """Make ``out`` a demo folder with nothing in it but its marker: a new or empty folder is marked; a folder
    an earlier demo made (its marker) is emptied, so the demo (as of today) never follows a later screen
    into it; any other folder is refused (exit 2), never emptied: it may hold someone's screens."""
    import shutil

    from osteo_core.errors import InputError
    from osteo_core.publish import folder as publish

    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise InputError(str(out), "--out exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / publish.DEMO_MARKER).is_file() and not _earlier_demo(out):
        raise InputError(
            str(out),
            f"--out is not empty and was not made by osteo demo (no {publish.DEMO_MARKER} file): the demo starts its"
            " folder afresh and never empties one it did not make; give a new or empty --out",
        )
    with output_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        with publish.output_lock(out, "osteo-demo"):  # not while a screen writes here (exit 2, naming it)
            for entry in out.iterdir():
                if entry.name in (publish.DEMO_MARKER, publish.LOCK):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            (out / publish.DEMO_MARKER).write_text(DEMO_MARKER_TEXT, encoding="utf-8")


def cmd_demo(args: argparse.Namespace) -> int:
    from osteo_core.demo import living_registry

    out = Path(args.out)
    if args.patients < 1:
        raise OsteoError("--patients must be at least 1")
    _fresh_demo_folder(out)
    inputs = out / "input"
    inputs.mkdir(parents=True, exist_ok=True)
    as_of = dt.date.today()
    # a registry alive up to today, whatever today is: exams, fills and fractures up to two weeks before it
    for name, frame in living_registry.demo_inputs(args.patients, as_of).items():
        frame.write_csv(inputs / f"{name}.csv")
    print(
        f"synthetic registry: {args.patients:,} patients -> {inputs}/ (scans, medications, fractures, and a"
        " population roster that also lists people never scanned)"
    )
    args.scans, args.meds, args.fractures, args.population = (
        [str(inputs / "scans.csv")],
        str(inputs / "medications.csv"),
        str(inputs / "fractures.csv"),
        str(inputs / "population.csv"),
    )
    args.as_of, args.rules, args.profile = as_of.isoformat(), "standard", "generic"
    args.max_reject_rate, args.lsc, args.partitions = settings().max_reject_rate, None, 0
    args.max_shrink, args.measurement_year = settings().max_shrink, None
    started = time.perf_counter()
    manifest = _run_flow(_request(args))
    _print_summary(manifest, out, time.perf_counter() - started)
    from osteo_core.outputs.gap_list import TABLE_COLUMNS
    from osteo_core.outputs.render import write_frame
    from osteo_core.publish.catalog import query

    # as the worklist orders a gap: the most recent since first (a patient scanned last week before one from years ago)
    untreated = query(out, f"SELECT * FROM {UNTREATED_HIGH_RISK.name} ORDER BY since DESC, patient_id")
    print(f"\nuntreated high-risk patients ({untreated.height:,}; the first {DEMO_ROWS}, most recent first):")
    write_frame(untreated.select(TABLE_COLUMNS).head(DEMO_ROWS), "table", noun="patient")
    print(f"\nall of them: osteo gaps --out {out} --gap {UNTREATED_HIGH_RISK.name} --format csv")
    never = manifest.get("care_gaps", {}).get(SCREENING_DUE.name, 0)
    print(f"never scanned and due a first DXA: {never:,} (osteo gaps --out {out} --gap {SCREENING_DUE.name})")
    print(f"quality measures (HEDIS OMW, MIPS 418, MIPS 039): osteo measures --out {out}")
    print(f"work the list and record calls: osteo worklist --out {out}  (osteo worklist mark --help)")
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


COMMANDS = {
    "screen": cmd_screen,
    "sql": cmd_sql,
    "gaps": cmd_gaps,
    "worklist": cmd_worklist,
    "measures": cmd_measures,
    "report": cmd_report,
    "serve": cmd_serve,
    "export-research": cmd_export_research,
    "explain": cmd_explain,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        argv, routing = split_routing(list(sys.argv[1:] if argv is None else argv))
        args = build_parser().parse_args(argv)
        args.routing = routing
    except SystemExit as exit_:  # --help (0) or a usage error (2, already printed in one line)
        return int(exit_.code or 0)
    except OsteoError as err:
        print(f"osteo: {err}", file=sys.stderr)
        return err.exit_code
    terminal = logging.StreamHandler()
    terminal.setLevel(logging.WARNING)  # Prefect's loggers run at INFO for the run's own log, and propagate here
    terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[terminal])
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
    except BrokenPipeError:  # the reader of a pipe went away (osteo gaps | head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not fail again
        return 141  # 128 + SIGPIPE, as a shell reports a command stopped by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
