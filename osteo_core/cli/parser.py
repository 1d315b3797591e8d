"""The ``osteo`` command's arguments: the parser with each command's help text (one line, description,
examples), and the argv pre-parser that takes ``osteo worklist``'s routing filters out before argparse sees them.
Building the parser loads no data library and no engine: ``osteo --help`` answers at once."""

from __future__ import annotations

import argparse
import textwrap

from osteo_core.errors import OsteoError
from osteo_core.outputs.render import FORMATS, TERMINAL_ROWS
from osteo_core.settings import settings
from schemas.gaps import UNTREATED_HIGH_RISK
from schemas.inputs import OPTIONS, SCANS

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
