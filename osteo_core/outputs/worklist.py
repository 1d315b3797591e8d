"""``osteo worklist``: the open gaps a quality team works, with each gap's latest outreach status, and
``osteo worklist mark``: record a call, a booking, a refusal (``publish.outreach``, an append-only log).

A mark is checked against the published run before it is written: a known status, a gap open for that patient
in that run, an ``--until`` only for the statuses that hide a gap and after today. ``declined`` and
``not_appropriate`` hide the gap from the default list while the run's as-of date is before the mark's
``hide_until`` (``--until``, else the days in ``data/reference/outreach.toml``); a later mark of any other
status shows it again. Nothing here changes ``care_gaps``, ``closed_gaps`` or the quality measures.
"""

from __future__ import annotations

import bisect
import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from osteo_core.errors import InputError
from osteo_core.ingest.readers import read_table
from osteo_core.outputs.gap_list import GAP_TYPES
from osteo_core.outputs.render import shown_rows, write_frame
from osteo_core.publish import folder as publish
from osteo_core.publish import outreach, worklist_index
from schemas.tables import WORKLIST_PATIENT_COLUMNS


def query(*args: Any, **kwargs: Any) -> pl.DataFrame:
    """``catalog.query``, imported when a command needs the catalog (it brings pyarrow.dataset and pandas: 0.2 s
    that a page of the whole list, read from the run's index, does without)."""
    from osteo_core.publish import catalog

    return catalog.query(*args, **kwargs)


def queries(*args: Any, **kwargs: Any) -> list[pl.DataFrame]:
    """``catalog.queries``, imported when needed (``query``)."""
    from osteo_core.publish import catalog

    return catalog.queries(*args, **kwargs)


NO_MARK = "none"  # --status none: gaps nobody has marked yet
OLD_RUN = "the published run predates worklists (no first_seen in care_gaps): run the screen again to use them"
MARK_COLUMNS = ("patient_id", "gap", "status")  # required in a CSV of marks; note, by, until are optional
OPTIONAL_MARK_COLUMNS = ("note", "by", "until")
MARK = "mark"  # record_marks' where for one mark from the command line
ARGUMENTS = {"status": "--status", "gap": "GAP", "until": "--until"}  # how a column is named on the command line
OUTREACH_FILE = "data/reference/outreach.toml"  # named in the --until limit's message


def _published(out: Path) -> tuple[Path, dict[str, Any]]:
    run = publish.current_run(out)
    if run is None or not (run / publish.MANIFEST).is_file():
        raise publish.no_screen_here(out)
    return run, publish.read_manifest(run)


def _problem(mark: dict[str, Any], open_gaps: set[tuple[str, str]], today: dt.date) -> tuple[str, str] | None:
    """(column, what is wrong) for a mark that cannot be recorded, else None. ``today`` is the later of the
    calendar day and the published run's as-of date: an ``--until`` not after it would hide nothing, one more
    than ``[until] max_days`` after it (``data/reference/outreach.toml``) would hide the gap too long."""
    known = outreach.statuses()  # a wrong value is never repeated: it may be a cell of the user's file
    if mark["status"] not in known:
        return "status", f"not a known status (known: {', '.join(known)})"
    if mark["gap"] not in GAP_TYPES:
        return "gap", f"not a known gap type (known: {', '.join(GAP_TYPES)})"
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
                f"not after today or the run's as-of date ({today.isoformat()}): it would hide nothing",
            )
        longest = outreach.max_hide_days()
        if mark["until"] > today + dt.timedelta(days=longest):
            return (
                "until",
                f"more than {longest} days after today or the run's as-of date ({today.isoformat()}): a mark hides"
                f" a gap for at most {longest} days (the latest date allowed is"
                f" {(today + dt.timedelta(days=longest)).isoformat()}; [until] max_days in {OUTREACH_FILE})",
            )
    return None


def record_marks(out: Path, marks: list[dict[str, Any]], where: str) -> list[int]:
    """Check every mark against the published run, then record them all in one transaction (or none, on a
    failed check, a full disk or a kill); their mark numbers.
    ``marks``: patient_id, gap, status, note, by, until (a date or None); ``where`` names them in errors."""
    run, manifest = _published(out)
    gaps_file = run / "care_gaps.parquet"  # read as exactly that file (an --out named out[1] is no pattern)
    if "first_seen" not in pq.read_schema(gaps_file).names:
        raise InputError(str(out), OLD_RUN)
    patients = pl.Series("patient_id", sorted({str(m["patient_id"]) for m in marks}), dtype=pl.Utf8)
    gaps = (  # what a mark needs, of the marked patients only (a run lists millions of open gaps)
        pl.scan_parquet(gaps_file, glob=False)
        .select("patient_id", "gap", "first_seen")
        .filter(pl.col("patient_id").is_in(patients.implode()))
        .collect()
    )
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
        others = "row(s)" if where != MARK else "gap(s) of the patient"
        more = f" (and {len(problems) - 1} more {others}; nothing was recorded)" if len(problems) > 1 else ""
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
        raise InputError(where, "not a date (YYYY-MM-DD)") from None


def read_marks_csv(path: Path, by: str | None) -> list[dict[str, Any]]:
    """A CSV of marks (``patient_id, gap, status`` and optionally ``note, by, until``), every cell as text, read as
    the screen reads an export (``readers.read_table``: exactly the file named; encoding, BOM and delimiter
    sniffed; the same messages, which name a line and never a cell)."""
    if not path.is_file():
        raise InputError(str(path), "no such file")
    frame = read_table(path)
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
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The gaps in view (``gap``, ``status`` and routing filters, ``mrn`` too; without ``include_hidden`` or a
    ``status``, not the gaps a declined / not_appropriate mark hides) and every open gap of the run, each with its
    latest outreach mark (the live ``worklist`` view); and the gaps the filters kept but a mark hides."""
    _check_filters(gap, status)
    everything = query(out, "SELECT * FROM worklist")
    if "days_open" not in everything.columns:
        raise InputError(str(out), OLD_RUN)
    frame = everything
    routing = routing or {}
    columns = routing_columns(frame)
    for name, value in routing.items():
        if name not in columns and name != "mrn":  # --mrn: a filter too (a roster's mrn was a routing column)
            shown = ", ".join(f"--{c.replace('_', '-')}" for c in columns) or "none: the run had no roster"
            raise InputError(f"--{name.replace('_', '-')}", f"not a routing column of this roster ({shown})")
        matched = frame.filter(pl.col(name).cast(pl.Utf8) == value)
        if matched.is_empty() and not frame.is_empty():
            what = "this mrn" if name == "mrn" else f"{name} '{value}'"  # a record number is never echoed
            print(f"osteo: no open gap in this run has {what}", file=sys.stderr)
        frame = matched
    if gap:
        frame = frame.filter(pl.col("gap") == gap)
    if status == NO_MARK:
        frame = frame.filter(pl.col("outreach_status").is_null())
    elif status:
        frame = frame.filter(pl.col("outreach_status") == status)
    hidden = frame.clear()
    if not include_hidden and status is None:
        hidden = frame.filter(pl.col("hidden"))
        frame = frame.filter(~pl.col("hidden"))
    return frame.sort(*LIST_ORDER, descending=LIST_DESCENDING), everything, hidden


# the list's order: most urgent first, then within a priority the most recent since first (a lapse of last
# month before one from years ago), then the patient and the gap, so the order is the same every time
LIST_ORDER = (*worklist_index.LIST_ORDER, "gap")
LIST_DESCENDING = (*worklist_index.LIST_DESCENDING, False)


def by_patient(in_view: pl.DataFrame, everything: pl.DataFrame) -> pl.DataFrame:
    """One row per patient with a gap in view: her medical record number (``mrn``, beside ``patient_id``), her
    most urgent gap in view (priority, gap, since, detail, exam_id; ``gap_outreach_status``: that gap's own latest
    mark), every open gap she has (``gaps``, most urgent first, and how many), ``days_on_list`` (since the earliest
    ``first_seen`` of them), ``in_roster``, her routing columns, and the latest outreach mark across all her open
    gaps. ``hidden``: every open gap of hers is hidden. Ordered as ``LIST_ORDER``."""
    routing = routing_columns(everything)
    headline = (
        in_view.sort("patient_id", "priority", "since", "gap")
        .group_by("patient_id", maintain_order=True)
        .first()
        .select(
            "patient_id",
            "mrn",
            "priority",
            "gap",
            "since",
            "detail",
            "exam_id",
            "in_roster",
            *routing,
            pl.col("outreach_status").alias("gap_outreach_status"),
        )  # fmt: skip
    )
    ordered = everything.join(headline.select("patient_id"), on="patient_id", how="semi").sort(
        "patient_id", "priority", "gap"
    )
    latest = pl.col("outreach_mark").is_not_null() & (pl.col("outreach_mark") == pl.col("outreach_mark").max())
    summary = ordered.group_by("patient_id", maintain_order=True).agg(
        pl.col("gap").str.join(", ").alias("gaps"),
        pl.len().cast(pl.Int64).alias("open_gaps"),
        pl.col("days_open").max().alias("days_on_list"),
        *(pl.col(c).filter(latest).last().alias(c) for c in OUTREACH_COLUMNS),
        pl.col("hidden").all().alias("hidden"),
    )
    return (
        headline.join(summary, on="patient_id", how="left", maintain_order="left")
        .select(*PATIENT_COLUMNS[:_ROUTING_AT], *routing, *PATIENT_COLUMNS[_ROUTING_AT:])
        .sort(*LIST_ORDER[:3], descending=LIST_DESCENDING[:3])
    )


OUTREACH_COLUMNS = ("outreach_status", "outreach_mark", "outreach_marked_at", "outreach_by", "outreach_note")
PATIENT_COLUMNS = WORKLIST_PATIENT_COLUMNS  # the per-patient list's columns; the routing columns go after in_roster
_ROUTING_AT = PATIENT_COLUMNS.index("in_roster") + 1


def routing_columns(frame: pl.DataFrame) -> list[str]:
    """The roster's routing columns in the worklist: the columns that are not care_gaps', the worklist's own or
    the per-patient list's."""
    from schemas.tables import GAPS_SCHEMA, catalog_column_descriptions

    own = set(catalog_column_descriptions("worklist")) | set(GAPS_SCHEMA) | set(PATIENT_COLUMNS)
    return [c for c in frame.columns if c not in own]


def open_gaps_of(out: Path, patient_id: str) -> tuple[list[str], int]:
    """The gaps open for one patient in the published run that a mark does not hide, most urgent first, and how
    many hidden ones were left out (``mark PATIENT all``: it never undoes a refusal; mark a hidden gap by name)."""
    hers = query(
        out, "SELECT gap, priority, hidden FROM worklist WHERE patient_id = ? ORDER BY priority", params=[patient_id]
    )
    return hers.filter(~pl.col("hidden")).get_column("gap").to_list(), hers.filter(pl.col("hidden")).height


def patient_page(
    out: Path, gap: str | None, status: str | None, include_hidden: bool, limit: int
) -> tuple[pl.DataFrame, int, int, list[str], bool]:
    """The per-patient list's first ``limit`` patients as ``by_patient`` makes them, computed by DuckDB, which keeps
    only those while it reads (a run of millions of open gaps is never handed over whole for a page of 50); how
    many patients the list has, how many have every gap in view hidden, the routing columns and whether any gap
    has a medical record number. The same filters as ``load_worklist`` without routing ones (which say when one
    matches nothing: that path is ``load_worklist``'s)."""
    _check_filters(gap, status)
    if gap is None and status is None:
        indexed = indexed_page(out, include_hidden, limit)
        if indexed is not None:
            return indexed
    kept, params = ["true"], []
    if gap:
        kept.append("gap = ?")
        params.append(gap)
    if status == NO_MARK:
        kept.append("outreach_status IS NULL")
    elif status:
        kept.append("outreach_status = ?")
        params.append(status)
    where = " AND ".join(kept)
    hide = not include_hidden and status is None
    in_view = f"{where} AND NOT hidden" if hide else where
    columns = query(out, "SELECT * FROM worklist LIMIT 0")
    if "days_open" not in columns.columns:
        raise InputError(str(out), OLD_RUN)
    routing = routing_columns(columns)
    run = publish.current_run(out)  # the run the queries read (resolved again by each, as every command does)
    as_of = publish.read_manifest(run)["as_of"] if run is not None else None
    # the gaps on narrow columns, each with its latest mark's status and whether that mark hides it (the live
    # worklist's own rules: catalog.live_worklist_sql), then one row per patient: the key of her headline gap
    narrow = """WITH o AS (SELECT patient_id, gap, first_seen, status, hide_until FROM outreach
                    QUALIFY row_number() OVER (PARTITION BY patient_id, gap, first_seen ORDER BY mark DESC) = 1),
        k AS (SELECT g.patient_id, g.priority, g.since, g.gap, o.status AS outreach_status,
                     coalesce(o.hide_until > ?::DATE, false) AS hidden
              FROM care_gaps g LEFT JOIN o
                ON o.patient_id = g.patient_id AND o.gap = g.gap AND o.first_seen = g.first_seen)"""
    top = f"""{narrow},
        head AS (SELECT patient_id, min({{'p': priority, 's': since, 'g': gap}}) AS h FROM k WHERE {in_view}
                 GROUP BY patient_id)
        SELECT patient_id, count(*) OVER () AS total FROM head ORDER BY h.p, h.s DESC, patient_id LIMIT {int(limit)}"""
    statements = [(top, [as_of, *params])]
    if limit == 0:
        statements.append(
            (f"{narrow} SELECT count(DISTINCT patient_id) AS total FROM k WHERE {in_view}", [as_of, *params])
        )
    if hide:
        hidden = f"""{narrow} SELECT count(*) AS n FROM (SELECT patient_id FROM k WHERE {where}
            AND patient_id IN (SELECT patient_id FROM o WHERE hide_until > ?::DATE)
            GROUP BY patient_id HAVING bool_and(hidden))"""
        statements.append((hidden, [as_of, *params, as_of]))
    found = queries(out, statements, run=run)
    chosen = found[0].get_column("patient_id").to_list()
    total = found[0].get_column("total")[0] if chosen else found[1].item() if limit == 0 else 0
    routed = "".join(f', "{c}"' for c in routing)
    latest = "".join(f", arg_max_null({c}, outreach_mark) AS {c}" for c in OUTREACH_COLUMNS)
    chosen_list = ", ".join("?" * len(chosen)) or "NULL"  # one bound value each: DuckDB filters the joins by them
    page = f"""WITH w AS (SELECT * FROM worklist WHERE patient_id IN ({chosen_list})),
        v AS (SELECT * FROM w WHERE {in_view}),
        head AS (SELECT patient_id, mrn, priority, gap, since, detail, exam_id, in_roster{routed},
                        outreach_status AS gap_outreach_status
                 FROM v QUALIFY row_number() OVER (PARTITION BY patient_id ORDER BY priority, since, gap) = 1),
        summary AS (SELECT patient_id, string_agg(gap, ', ' ORDER BY priority, gap) AS gaps,
                           count(*) AS open_gaps, max(days_open) AS days_on_list{latest},
                           bool_and(hidden) AS hidden
                    FROM w GROUP BY patient_id)
        SELECT t.patient_id, t.mrn, t.priority, t.gap, t.since, t.detail, t.exam_id, t.gap_outreach_status, s.gaps,
               t.in_roster{routed.replace(', "', ', t."')}, s.open_gaps, s.days_on_list,
               {", ".join(f"s.{c}" for c in OUTREACH_COLUMNS)}, s.hidden
        FROM head t LEFT JOIN summary s USING (patient_id)
        ORDER BY t.priority, t.since DESC, t.patient_id"""
    # any record number in the run at all (cheap), then, only when the page shows none, in the whole list
    some = f"""SELECT (SELECT count(*) FROM (SELECT * FROM patients {publish.MRN_OR_NULL}) WHERE mrn IS NOT NULL)
        + (SELECT count(*) FROM (SELECT * FROM population {publish.MRN_OR_NULL}) WHERE mrn IS NOT NULL) AS n"""
    people, any_mrn = queries(out, [(page, [*chosen, *params] or None), (some, None)], run=run)
    people = people.with_columns(pl.col("open_gaps").cast(pl.Int64))
    mrn = people.get_column("mrn").null_count() < people.height
    if not mrn and any_mrn.item():
        in_list = f"SELECT bool_or(mrn IS NOT NULL) AS mrn FROM worklist WHERE {in_view}"
        mrn = bool(query(out, in_list, run=run, params=params or None).item())
    return people, total, found[-1].item() if hide else 0, routing, mrn


def indexed_page(out: Path, include_hidden: bool, limit: int) -> tuple[pl.DataFrame, int, int, list[str], bool] | None:
    """``patient_page`` of the whole list (no gap or status filter) from the run's per-patient index
    (``publish.worklist_index``: one file per partition, each in list order as if nobody had marked anything): the
    first rows of each file's unmarked patients, and the marked ones recomputed from their own gaps with their
    latest marks, merged in order. None for a run published without the index. Reads no catalog: the index, the
    manifest and the outreach log."""
    run = publish.current_run(out)
    parts = worklist_index.files(run) if run is not None else []
    if not parts:
        return None
    as_of = dt.date.fromisoformat(publish.read_manifest(run)["as_of"])
    log = outreach.read_log(out)
    if log.warning():
        print(f"osteo: warning: {log.warning()}", file=sys.stderr)
    latest = (  # each episode's latest mark (the live worklist view's rule: catalog.live_worklist_sql)
        log.marks.sort("mark")
        .unique(["patient_id", "gap", "first_seen"], keep="last", maintain_order=True)
        .select(
            "patient_id",
            "gap",
            "first_seen",
            *(pl.col(c).alias(f"outreach_{n}") for c, n in _MARK_FIELDS),
            pl.col("hide_until"),
        )
        # in the time zone the catalog hands the log's times over in (the whole list's path): the same column
        .with_columns(pl.col("outreach_marked_at").dt.convert_time_zone(_catalog_time_zone()))
    )
    marked = latest.get_column("patient_id").unique().implode()
    every = pl.scan_parquet(parts, glob=False)
    routing = worklist_index.routing_of(every.collect_schema().names())
    order = [*PATIENT_COLUMNS[:_ROUTING_AT], *routing, *PATIENT_COLUMNS[_ROUTING_AT:]]
    hide = not include_hidden
    redone = pl.DataFrame()
    if latest.height:
        theirs = _rows_of(parts, marked).cast(every.collect_schema())
        redone = _with_marks(theirs, latest, as_of, order, hide)
    every_gap_hidden = redone.filter(pl.col("hidden")) if redone.height else redone
    if hide and every_gap_hidden.height:
        redone = redone.filter(~pl.col("hidden"))
    # each file's first rows hold its first unmarked patients (among its first ``limit`` + marked patients' rows):
    # their heads, merged, hold the list's
    heads = [pl.scan_parquet(part, glob=False).head(limit + marked.list.len().item()) for part in parts]
    unmarked = pl.concat(heads).filter(~pl.col("patient_id").is_in(marked)).collect()
    unmarked = unmarked.with_columns(
        *(pl.lit(None, dtype).alias(c) for c, dtype in _unmarked_columns(latest).items()), hidden=pl.lit(False)
    ).select(order)
    page = pl.concat([unmarked, redone.select(order)]) if redone.height else unmarked
    page = page.sort(*LIST_ORDER[:3], descending=LIST_DESCENDING[:3]).head(limit)
    rows = sum(pq.ParquetFile(part).metadata.num_rows for part in parts)
    hidden = every_gap_hidden.height if hide else 0
    mrn = page.get_column("mrn").null_count() < page.height
    if not mrn:  # any record number in the list in view: the page shows none, so look further
        shown = every.filter(pl.col("mrn").is_not_null())
        if hide and every_gap_hidden.height:
            shown = shown.filter(~pl.col("patient_id").is_in(every_gap_hidden.get_column("patient_id").implode()))
        mrn = shown.select(pl.len()).collect().item() > 0
    return page, rows - hidden, hidden, routing, mrn


def _rows_of(parts: list[Path], patients: pl.Series) -> pl.DataFrame:
    """The index rows of these patients: their places found on the one narrow column, then only the row groups
    that hold them read whole (a filter over every column would decode all of them: 0.4 s at 4M patients)."""
    places = pl.concat(
        [
            pl.scan_parquet(part, glob=False)
            .select("patient_id")
            .with_row_index("_row")
            .filter(pl.col("patient_id").is_in(patients))
            .select(pl.lit(number).alias("_file"), "_row")
            for number, part in enumerate(parts)
        ]
    ).collect()
    found = []
    for (number,), rows in places.group_by(["_file"], maintain_order=True):
        index = pq.ParquetFile(parts[number])
        starts = [0]
        for group in range(index.metadata.num_row_groups):
            starts.append(starts[-1] + index.metadata.row_group(group).num_rows)
        groups = sorted({bisect.bisect_right(starts, row) - 1 for row in rows.get_column("_row").to_list()})
        found.append(pl.from_arrow(index.read_row_groups(groups)))
    if not found:
        return pl.DataFrame(schema=pl.scan_parquet(parts[0], glob=False).collect_schema())
    return pl.concat(found).filter(pl.col("patient_id").is_in(patients))


def _catalog_time_zone() -> str:
    """The zone a catalog connection gives a time with a zone in: DuckDB's session ``TimeZone`` (the machine's)."""
    import duckdb

    with duckdb.connect() as con:
        return con.execute("SELECT current_setting('TimeZone')").fetchone()[0]


# the log's columns and the worklist's names for them (outreach_<name>)
_MARK_FIELDS = (
    ("status", "status"), ("mark", "mark"), ("marked_at", "marked_at"), ("marked_by", "by"), ("note", "note")
)  # fmt: skip


def _unmarked_columns(latest: pl.DataFrame) -> dict[str, pl.DataType]:
    """The outreach columns of a patient nobody has marked: null, in the log's types."""
    marks = {f"outreach_{n}": latest.schema[f"outreach_{n}"] for _, n in _MARK_FIELDS}
    return {"gap_outreach_status": pl.Utf8, **marks}


def _with_marks(
    theirs: pl.DataFrame, latest: pl.DataFrame, as_of: dt.date, order: list[str], hide: bool
) -> pl.DataFrame:
    """The index rows of marked patients made again as ``by_patient`` makes them: each open gap with its episode's
    latest mark and whether that mark hides it on ``as_of``; the headline is her most urgent gap (with ``hide``, not
    a hidden one, unless every one is: then ``hidden``, and the caller leaves her out), the outreach columns her
    latest mark's."""
    gaps = (
        theirs.select("patient_id", worklist_index.OPEN)
        .explode(worklist_index.OPEN)
        .unnest(worklist_index.OPEN)
        .join(latest, on=["patient_id", "gap", "first_seen"], how="left")
        .with_columns((pl.col("hide_until") > as_of).fill_null(False).alias("hidden"))
    )
    in_view = gaps.sort(*(["hidden"] if hide else []), "patient_id", "priority", "since", "gap")
    head = (
        in_view.group_by("patient_id", maintain_order=True)
        .first()
        .select(
            "patient_id",
            "priority",
            "gap",
            "since",
            "detail",
            "exam_id",
            pl.col("outreach_status").alias("gap_outreach_status"),
        )
    )
    mark = pl.col("outreach_mark")
    newest = mark.is_not_null() & (mark == mark.max())
    summary = gaps.group_by("patient_id").agg(
        *(pl.col(f"outreach_{n}").filter(newest).last() for _, n in _MARK_FIELDS),
        pl.col("hidden").all(),
    )
    headline = {"priority", "gap", "since", "detail", "exam_id", worklist_index.OPEN}
    return (
        theirs.select(c for c in theirs.columns if c not in headline)
        .join(head, on="patient_id")
        .join(summary, on="patient_id")
        .select(order)
    )


def _check_filters(gap: str | None, status: str | None) -> None:
    if gap is not None and gap not in GAP_TYPES:
        raise InputError("--gap", f"unknown gap type '{gap}' (known: {', '.join(GAP_TYPES)})")
    known = outreach.statuses()
    if status is not None and status not in (*known, NO_MARK):
        raise InputError("--status", f"unknown status '{status}' (known: {', '.join(known)}, {NO_MARK})")


def print_worklist(
    out: Path,
    gap: str | None,
    status: str | None,
    routing: dict[str, str],
    include_hidden: bool,
    fmt: str,
    limit: int | None = None,
    by_gap: bool = False,
) -> int:
    page = shown_rows(fmt, limit)
    if page is not None and not by_gap and not routing:  # a page: DuckDB keeps only its patients
        people, total, hidden, columns, mrn = patient_page(out, gap, status, include_hidden, page)
        frame = patient_table(people, columns, mrn) if fmt == "table" else people
        write_frame(frame, fmt, limit, noun="patient", total=total)
        _say_hidden(hidden, gap, by_gap)
        return 0
    in_view, everything, hidden_gaps = load_worklist(out, gap, status, routing, include_hidden)
    if by_gap:
        frame, noun, hidden = in_view, "open gap", hidden_gaps.height
        if fmt == "table":
            shown = [c for c in GAP_TABLE_COLUMNS if c != "mrn" or has_mrn(everything)]
            frame = frame.with_columns(pl.col("outreach_marked_at").dt.date().alias("marked_on")).select(
                *shown, *routing_columns(everything)
            )
    else:
        frame, noun = by_patient(in_view, everything), "patient"
        if fmt == "table":
            frame = patient_table(frame, routing_columns(everything))
        # patients none of whose gaps in view is shown: every one of them is hidden
        hidden = hidden_gaps.join(in_view, on="patient_id", how="anti").get_column("patient_id").n_unique()
    write_frame(frame, fmt, limit, noun=noun)
    _say_hidden(hidden, gap, by_gap)
    return 0


def _say_hidden(hidden: int, gap: str | None, by_gap: bool) -> None:
    if hidden:
        hiding = " or ".join(outreach.hide_days())
        every = "patient(s) with every gap on this list" if gap else "patient(s) with every gap"
        what = "gap(s)" if by_gap else every
        print(f"osteo: {hidden:,} {what} hidden ({hiding}, until their date): --all shows them", file=sys.stderr)


GAP_TABLE_COLUMNS = (  # mrn only when the run gives one (has_mrn)
    "priority", "gap", "patient_id", "mrn", "since", "first_seen", "status", "days_open", "outreach_status", "marked_on"
)  # fmt: skip


def has_mrn(frame: pl.DataFrame) -> bool:
    """Whether any row of the worklist has a medical record number: a table leaves out an empty ``mrn``."""
    return frame.get_column("mrn").null_count() < frame.height


def patient_table(people: pl.DataFrame, routing: list[str], mrn: bool | None = None) -> pl.DataFrame:
    """The per-patient list as a terminal table shows it: who, where to route her, her most urgent gap and why
    first, so that 80 columns show them (the renderer leaves out columns from the right when the terminal is
    narrow, and says which); then the outreach status of that gap (the row is about it: the latest mark across
    her gaps is in CSV and JSON), days on the list, how many other gaps she has (``+N``; their names are in CSV
    and JSON) and since. Short headings keep it narrow; a run without a roster has no routing columns to show, one
    without a medical record number (a CSV export, no roster column mrn) no ``mrn`` (``mrn``: whether the whole
    list has one, when ``people`` is a page of it)."""
    others = pl.col("open_gaps") - 1
    if people.get_column("in_roster").null_count() == people.height:  # no roster: its routing columns are empty
        routing = []
    return people.select(
        "patient_id",
        *(["mrn"] if (has_mrn(people) if mrn is None else mrn) else []),
        *routing,
        "gap",
        "detail",
        pl.col("gap_outreach_status").alias("outreach"),
        pl.col("days_on_list").alias("days"),
        pl.when(others > 0).then(pl.format("+{}", others)).otherwise(pl.lit("")).alias("also"),
        "since",
    )
