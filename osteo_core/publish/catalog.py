"""Read-only SQL over the published tables, for ``osteo sql``, reports and the researcher notebook.

``OUT/osteo.duckdb`` is an ordinary DuckDB file: opened even with ``read_only=True``, a query can still ``COPY`` over
the published Parquet files, read any file the user can, ``ATTACH``, install extensions and change settings, and
``allowed_paths`` does not stop writes to the allowed files. So ``connect_read_only`` builds an in-memory database
whose tables are the run's Parquet files handed over as Arrow datasets (read by Arrow, not by DuckDB's file
system), then shuts DuckDB's own doors: no external access, no local file system, no extension loading, and a locked
configuration. No SQL text is inspected.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as pa_ds

from osteo_core.errors import InputError, OsteoError
from osteo_core.publish import folder as publish
from osteo_core.publish import outreach
from osteo_core.terminal_text import escape_controls

# Set when the database starts: after this no extension is installed, loaded or autoloaded, no secret is written,
# no Python variable is scanned, and nothing spills to a temporary directory.
_STARTUP_CONFIG: dict[str, str | bool] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_extension_repositories": "forbidden",
    "allow_persistent_secrets": False,
    "python_enable_replacements": False,
    "temp_directory": "",
    "enable_external_access": False,
}
# Set once the tables are registered, then the configuration is locked (``lock_configuration`` last).
_LOCKDOWN = (
    "SET disabled_filesystems = 'LocalFileSystem'",
    "SET lock_configuration = true",
)


def connect_read_only(out: Path, run: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that can read the published tables and views and nothing else.

    ``current`` is resolved once, so the connection keeps reading the run it opened even if a new screen is
    published meanwhile. Each ``<table>.parquet`` of that run is registered under the table's name (Arrow reads the
    file), ``publish.VIEWS`` are created over them, then DuckDB's external access and local file system are turned
    off and the configuration is locked: COPY, EXPORT, reading or globbing files, ATTACH of a file, INSTALL/LOAD and
    SET/RESET all fail. What a session creates in its own memory (a temporary table, say) dies with it.
    """
    if run is None:  # the caller may have resolved it already, to read the manifest of the same run
        link = out / publish.CURRENT
        run = link.resolve() if link.is_symlink() else None
    if run is None or not run.is_dir():
        raise InputError(str(out), "no published screen here (run osteo screen first)")
    con = duckdb.connect(":memory:", config=_STARTUP_CONFIG)
    try:
        for table in publish.CATALOG_TABLES:
            files = publish.table_files(run, table)
            if files:
                con.register(table, pa_ds.dataset([str(f) for f in files], format="parquet"))
        for name, sql in publish.VIEWS.items():
            try:
                con.execute(f"CREATE VIEW {name} AS {sql}")
            except duckdb.CatalogException:
                pass  # a table it needs is not in this run
        _register_outreach(con, out, run)
        for statement in _LOCKDOWN:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def live_worklist_sql(as_of: str) -> str:
    """The worklist with each gap's days open and the latest outreach mark of this episode of the gap (the same
    ``first_seen``: a gap that closed and opened again starts unmarked); ``hidden`` when that mark hides the gap
    on the run's as-of date (``hide_until`` after it)."""
    return f"""SELECT w.*, date_diff('day', w.first_seen, DATE '{as_of}') AS days_open,
        o.status AS outreach_status, o.mark AS outreach_mark, o.marked_at AS outreach_marked_at,
        o.marked_by AS outreach_by,
        o.note AS outreach_note, o.hide_until AS hide_until, coalesce(o.hide_until > DATE '{as_of}', false) AS hidden
    FROM ({publish.VIEWS["worklist"]}) w
    LEFT JOIN (SELECT * FROM outreach
               QUALIFY row_number() OVER (PARTITION BY patient_id, gap, first_seen ORDER BY mark DESC) = 1) o
        ON o.patient_id = w.patient_id AND o.gap = w.gap AND o.first_seen = w.first_seen"""


def _register_outreach(con: duckdb.DuckDBPyConnection, out: Path, run: Path) -> None:
    """The outreach log (``OUT/outreach.sqlite``, ``publish.outreach``) as the table ``outreach``, read now as one
    snapshot (marks are added after publishing; a batch being recorded is wholly in it or wholly not), and the
    ``worklist`` view with each gap's latest mark. What the reader should know (an ``outreach.jsonl`` of an
    earlier version not moved into the store, and its lines that are not a mark) is said on stderr."""
    import sys

    log = outreach.read_log(out)
    if log.warning():
        print(f"osteo: warning: {log.warning()}", file=sys.stderr)
    con.register("outreach", log.marks.to_arrow())
    as_of = publish.read_manifest(run)["as_of"]
    try:
        con.execute(f"CREATE OR REPLACE VIEW worklist AS {live_worklist_sql(as_of)}")
    except (duckdb.CatalogException, duckdb.BinderException):
        pass  # a table or column it needs is not in this run (one published before gaps had first_seen)


# DuckDB types a result cannot be handed over in: Polars cannot import INTERVAL or UNION (at any depth: a list of
# intervals panics), and a BIT arrives as its internal bytes, which read as another value.
_UNREADABLE_TYPES = ("interval", "union", "bit")
_SQL_NAME = re.compile(r'"((?:[^"]|"")*)"|([A-Za-z_][A-Za-z0-9_$]*)')


def _unreadable(kind) -> bool:
    """Whether DuckDB type ``kind`` (a ``DuckDBPyType``) is, or holds at any depth, one of ``_UNREADABLE_TYPES``."""
    if kind.id in _UNREADABLE_TYPES:
        return True
    if kind.id in ("list", "array", "struct", "map"):  # an array's children also hold its size, a number
        try:
            children = kind.children
        except AttributeError:  # DuckDB 2.0's Python API fails on some nested types (an ENUM field): read the name
            return _UNREADABLE_NAME.search(str(kind)) is not None
        return any(hasattr(child, "id") and _unreadable(child) for _, child in children)
    return False


_UNREADABLE_NAME = re.compile(r"\b(?:INTERVAL|UNION|BIT)\b")


def _apostrophe(text: str, at: int) -> bool:
    """The quote at ``at`` sits inside a word (``can't``): the message's own, not the edge of a quoted value."""
    return 0 < at < len(text) - 1 and text[at - 1].isalnum() and text[at + 1].isalnum()


def _without_echo(message: str, sql: str) -> str:
    """``message`` without the SQL DuckDB echoes at its end (``LINE 1: select …`` and a line of carets), whose
    own quotes would widen what is hidden; kept whole when that tail does not echo ``sql``."""
    head, marker, echo = message.rpartition("\n\nLINE ")
    shown = echo.partition(": ")[2].partition("\n")[0].strip()
    return head if marker and shown and shown in sql else message


def without_cells(message: str, sql: str) -> str:
    """The first line of DuckDB's error ``message`` for ``sql``, with no cell of an input in it and its control
    characters escaped (``terminal_text.escape_controls``).

    DuckDB quotes the value it could not use (``Could not convert string 'x' to INT32``, ``date field value out of
    range: "x"``), raw: the value may hold quotes and line breaks. So the whole message (less the SQL echoed at its
    end) is read: every single-quoted part, from the first quote to the last (an apostrophe inside a word, as in
    ``can't``, is not an edge; a lone quote hides to the end), becomes one ``'…'``. A double-quoted part stays when
    it is a name the query itself writes (``Referenced column "nope" not found``: identifiers, and ``a.b`` of
    them); the first that is not is hidden up to the last double quote (or to the end), as ``"…"``. Then the first
    line is kept. A value DuckDB writes without quotes (``error(x)``'s text, a number in an overflow) is not seen.
    """
    text = _without_echo(message.strip(), sql)
    edges = [at for at, char in enumerate(text) if char == "'" and not _apostrophe(text, at)]
    if edges:
        text = text[: edges[0]] + "'…'" + (text[edges[-1] + 1 :] if len(edges) > 1 else "")
    names = {(quoted.replace('""', '"') if quoted else bare).lower() for quoted, bare in _SQL_NAME.findall(sql)}
    edges = [at for at, char in enumerate(text) if char == '"']
    for number, opening in enumerate(edges[::2]):
        closing = edges[2 * number + 1] if 2 * number + 1 < len(edges) else None
        inside = text[opening + 1 : closing].lower() if closing is not None else None
        if inside is None or not all(part in names for part in inside.split(".")):
            text = text[:opening] + '"…"' + (text[edges[-1] + 1 :] if edges[-1] != opening else "")
            break
    return escape_controls(next(iter(text.strip().splitlines()), ""))


def query(out: Path, sql: str, run: Path | None = None) -> pl.DataFrame:
    """Run ``sql`` over the published tables (``connect_read_only``; ``run``: that run folder rather than the
    one ``current`` points at now); a DuckDB error is one ``OsteoError`` (its first line: ``without_cells``), and
    so is a result column of a type that cannot be handed over (``_UNREADABLE_TYPES``)."""
    con = connect_read_only(out, run)
    try:
        relation = con.sql(sql)  # run once: a statement without a result (e.g. SET) gives None
        if relation is None:
            return pl.DataFrame()
        for position, (name, kind) in enumerate(zip(relation.columns, relation.types, strict=True)):
            if _unreadable(kind):
                raise OsteoError(
                    f'SQL error: column {position + 1} "{escape_controls(name)}" is {escape_controls(str(kind))},'
                    " which osteo sql cannot write: convert it in the query (e.g. ::VARCHAR)"
                )
        return relation.pl()
    except duckdb.Error as err:  # its first line says what and why; the rest is hints and the SQL echoed back
        raise OsteoError(f"SQL error: {without_cells(str(err), sql) or type(err).__name__}") from None
    except pl.exceptions.PolarsError:  # a type Polars cannot take that the check above does not know
        types = ", ".join(escape_controls(str(kind)) for kind in relation.types)
        raise OsteoError(
            f"SQL error: the result cannot be read (column types: {types}): convert the columns in the query"
            " (e.g. ::VARCHAR)"
        ) from None
    finally:
        con.close()


def table_listing() -> pl.DataFrame:
    """Every published table and view, its columns and their descriptions (from ``schemas.tables``)."""
    from schemas.tables import COLUMN_DESCRIPTIONS, DTYPES, EVENT_COLUMN_DESCRIPTIONS, TABLE_DESCRIPTIONS

    rows = []
    for table, description in TABLE_DESCRIPTIONS.items():
        rows.append((table, None, None, description))
        if table == "worklist":
            from schemas.tables import catalog_column_descriptions

            after = (
                "patient_id, mrn, the other care_gaps columns, then in_roster and the rest of these (the roster's"
                " routing columns right after in_roster):"
            )
            rows.append((table, "…", None, after))
            live = {c: d for c, d in catalog_column_descriptions(table).items() if c not in DTYPES["care_gaps"]}
            rows += [(table, c, None, text) for c, text in live.items()]
        elif table in DTYPES:
            rows += [(table, c, str(t), COLUMN_DESCRIPTIONS[table][c]) for c, t in DTYPES[table].items()]
        elif table == "untreated_high_risk":
            rows.append((table, "…", None, "the care_gaps columns, then the screening columns"))
        else:
            rows += [(table, c, None, text) for c, text in EVENT_COLUMN_DESCRIPTIONS[table].items()]
    return pl.DataFrame(rows, schema=["table", "column", "type", "description"], orient="row")
