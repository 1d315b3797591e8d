"""``osteo worklist``: the open gaps a quality team works, with each gap's latest outreach status, and
``osteo worklist mark``: record a call, a booking, a refusal (``publish.outreach``, an append-only log).

A mark is checked against the published run before it is written: a known status, a gap open for that patient
in that run, an ``--until`` only for the statuses that hide a gap and after today. ``declined`` and
``not_appropriate`` hide the gap from the default list while the run's as-of date is before the mark's
``hide_until`` (``--until``, else the days in ``data/reference/outreach.toml``); a later mark of any other
status shows it again. Nothing here changes ``care_gaps``, ``closed_gaps`` or the quality measures.
"""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import Any

import polars as pl

from osteo_core.errors import InputError
from osteo_core.ingest.readers import read_headers, refuse_repeated_headers
from osteo_core.outputs.gap_list import GAP_TYPES
from osteo_core.outputs.render import write_frame
from osteo_core.publish import folder as publish
from osteo_core.publish import outreach
from osteo_core.publish.catalog import query

NO_MARK = "none"  # --status none: gaps nobody has marked yet
OLD_RUN = "the published run predates worklists (no first_seen in care_gaps): run the screen again to use them"
TABLE_COLUMNS = (
    "priority", "gap", "patient_id", "since", "first_seen", "status", "days_open", "outreach_status", "marked_on"
)  # fmt: skip
MARK_COLUMNS = ("patient_id", "gap", "status")  # required in a CSV of marks; note, by, until are optional
OPTIONAL_MARK_COLUMNS = ("note", "by", "until")
MARK = "mark"  # record_marks' where for one mark from the command line
ARGUMENTS = {"status": "--status", "gap": "GAP", "until": "--until"}  # how a column is named on the command line


def _published(out: Path) -> tuple[Path, dict[str, Any]]:
    run = publish.current_run(out)
    if run is None or not (run / publish.MANIFEST).is_file():
        raise InputError(str(out), "no published screen here (run osteo screen first)")
    return run, publish.read_manifest(run)


def _problem(mark: dict[str, Any], open_gaps: set[tuple[str, str]], today: dt.date) -> tuple[str, str] | None:
    """(column, what is wrong) for a mark that cannot be recorded, else None. ``today`` is the later of the
    calendar day and the published run's as-of date: an ``--until`` not after it would hide nothing."""
    known = outreach.statuses()
    if mark["status"] not in known:
        return "status", f"unknown status '{mark['status']}' (known: {', '.join(known)})"
    if mark["gap"] not in GAP_TYPES:
        return "gap", f"unknown gap type '{mark['gap']}' (known: {', '.join(GAP_TYPES)})"
    if (mark["patient_id"], mark["gap"]) not in open_gaps:
        return (
            "gap",
            f"no open {mark['gap']} gap for this patient in the published run (osteo worklist --gap {mark['gap']})",
        )
    if mark["until"] is not None:
        if mark["status"] not in outreach.hide_days():
            return "until", f"only {' and '.join(outreach.hide_days())} hide a gap until a date"
        if mark["until"] <= today:
            return (
                "until",
                f"{mark['until'].isoformat()} is not after today or the run's as-of date ({today.isoformat()})",
            )
    return None


def record_marks(out: Path, marks: list[dict[str, Any]], where: str) -> list[int]:
    """Check every mark against the published run, then append them all (or none); their mark numbers.
    ``marks``: patient_id, gap, status, note, by, until (a date or None); ``where`` names them in errors."""
    run, manifest = _published(out)
    gaps_file = run / "care_gaps.parquet"
    if "first_seen" not in pl.read_parquet_schema(gaps_file):
        raise InputError(str(out), OLD_RUN)
    gaps = pl.read_parquet(gaps_file, columns=["patient_id", "gap", "first_seen"])  # only what a mark needs
    episodes = {(p, g): seen for p, g, seen in gaps.iter_rows()}
    now = dt.datetime.now(dt.UTC)
    # the user's calendar day, or the run's as-of date if later: hiding is judged on runs' as-of dates
    today = max(dt.date.today(), dt.date.fromisoformat(manifest["as_of"]))
    problems, open_gaps = [], set(episodes)
    for number, mark in enumerate(marks, start=1):
        found = _problem(mark, open_gaps, today)
        if found:
            problems.append((number, *found))
    if problems:
        number, column, text = problems[0]
        more = f" (and {len(problems) - 1} more row(s); nothing was recorded)" if len(problems) > 1 else ""
        place = f"{where} data row {number}, column {column}" if where != MARK else ARGUMENTS[column]
        raise InputError(place, text + (more or " (nothing was recorded)"))
    hide = outreach.hide_days()
    rows = [
        {
            "marked_at": now.isoformat(timespec="seconds"),
            "patient_id": m["patient_id"],
            "gap": m["gap"],
            "first_seen": episodes[(m["patient_id"], m["gap"])].isoformat(),
            "status": m["status"],
            "hide_until": (m["until"] or today + dt.timedelta(days=hide[m["status"]])).isoformat()
            if m["status"] in hide
            else None,
            "note": m["note"],
            "marked_by": m["by"] or _login(),
            "run_id": manifest["run_id"],
        }
        for m in marks
    ]
    return outreach.append_marks(out, rows)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def parse_date(text: str | None, where: str) -> dt.date | None:
    if text is None or not str(text).strip():
        return None
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise InputError(where, f"'{text}' is not a date (YYYY-MM-DD)") from None


def read_marks_csv(path: Path, by: str | None) -> list[dict[str, Any]]:
    """A CSV of marks (``patient_id, gap, status`` and optionally ``note, by, until``), every cell as text."""
    if not path.is_file():
        raise InputError(str(path), "no such file")
    refuse_repeated_headers(path, read_headers(path))  # the same message a screen's export gets
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, UnicodeDecodeError):  # its message quotes the file's rows: not shown
        raise InputError(str(path), "not a readable CSV (check the delimiter, the quoting and the encoding)") from None
    missing = [c for c in MARK_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(str(path), f"missing column(s) {', '.join(missing)} (needs {', '.join(MARK_COLUMNS)})")
    unknown = [c for c in frame.columns if c not in (*MARK_COLUMNS, *OPTIONAL_MARK_COLUMNS)]
    if unknown:
        raise InputError(
            str(path),
            f"unknown column(s) {', '.join(unknown)} (known: {', '.join(MARK_COLUMNS)}, "
            f"{', '.join(OPTIONAL_MARK_COLUMNS)})",
        )
    if frame.is_empty():
        raise InputError(str(path), "no marks in the file")
    marks = []
    for number, row in enumerate(frame.iter_rows(named=True), start=1):
        blank = [c for c in MARK_COLUMNS if not (row[c] or "").strip()]
        if blank:
            raise InputError(f"{path} data row {number}, column {blank[0]}", "empty (nothing was recorded)")
        marks.append(
            {
                "patient_id": row["patient_id"].strip(),
                "gap": row["gap"].strip(),
                "status": row["status"].strip(),
                "note": row.get("note") or None,
                "by": (row.get("by") or "").strip() or by,
                "until": parse_date(row.get("until"), f"{path} data row {number}, column until"),
            }
        )
    return marks


def load_worklist(
    out: Path,
    gap: str | None = None,
    status: str | None = None,
    routing: dict[str, str] | None = None,
    include_hidden: bool = False,
) -> tuple[pl.DataFrame, int]:
    """The open gaps with their latest outreach status, filtered, most urgent then oldest first; and how many
    gaps the filters kept but a declined / not_appropriate mark hides (left out unless ``include_hidden`` or a
    ``status`` is asked for)."""
    if gap is not None and gap not in GAP_TYPES:
        raise InputError("--gap", f"unknown gap type '{gap}' (known: {', '.join(GAP_TYPES)})")
    known = outreach.statuses()
    if status is not None and status not in (*known, NO_MARK):
        raise InputError("--status", f"unknown status '{status}' (known: {', '.join(known)}, {NO_MARK})")
    frame = query(out, "SELECT * FROM worklist ORDER BY priority, since, patient_id, gap")
    if "days_open" not in frame.columns:
        raise InputError(str(out), OLD_RUN)
    routing = routing or {}
    columns = _routing_columns(frame)
    for name, value in routing.items():
        if name not in columns:
            shown = ", ".join(f"--{c.replace('_', '-')}" for c in columns) or "none: the run had no roster"
            raise InputError(f"--{name.replace('_', '-')}", f"not a routing column of this roster ({shown})")
        matched = frame.filter(pl.col(name).cast(pl.Utf8) == value)
        if matched.is_empty() and not frame.is_empty():
            print(f"osteo: no open gap in this run has {name} '{value}'", file=sys.stderr)
        frame = matched
    if gap:
        frame = frame.filter(pl.col("gap") == gap)
    if status == NO_MARK:
        frame = frame.filter(pl.col("outreach_status").is_null())
    elif status:
        frame = frame.filter(pl.col("outreach_status") == status)
    hidden = 0
    if not include_hidden and status is None:
        hidden = frame.filter(pl.col("hidden")).height
        frame = frame.filter(~pl.col("hidden"))
    return frame, hidden


def _routing_columns(frame: pl.DataFrame) -> list[str]:
    """The roster's routing columns in the worklist: the columns between care_gaps' and the outreach ones."""
    from schemas.tables import GAPS_SCHEMA, catalog_column_descriptions

    own = set(catalog_column_descriptions("worklist")) | set(GAPS_SCHEMA)
    return [c for c in frame.columns if c not in own]


def print_worklist(
    out: Path,
    gap: str | None,
    status: str | None,
    routing: dict[str, str],
    include_hidden: bool,
    fmt: str,
    limit: int | None = None,
) -> int:
    frame, hidden = load_worklist(out, gap, status, routing, include_hidden)
    if fmt == "table":
        frame = frame.with_columns(pl.col("outreach_marked_at").dt.date().alias("marked_on")).select(TABLE_COLUMNS)
    write_frame(frame, fmt, limit, noun="open gap")
    if hidden:
        hiding = " or ".join(outreach.hide_days())
        print(f"osteo: {hidden:,} gap(s) hidden ({hiding}, until their date): --all shows them", file=sys.stderr)
    return 0
