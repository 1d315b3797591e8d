"""Read-only SQL over the published tables, for ``osteo sql``, reports and the researcher notebook.

``OUT/osteo.duckdb`` is an ordinary DuckDB file: opened even with ``read_only=True``, a query can still ``COPY`` over
the published Parquet files, read any file the user can, ``ATTACH``, install extensions and change settings, and
``allowed_paths`` does not stop writes to the allowed files. So ``connect_read_only`` builds an in-memory database
whose tables are the run's Parquet files handed over as Arrow datasets (read by Arrow, not by DuckDB's file
system), then shuts DuckDB's own doors: no external access, no local file system, no extension loading, and a locked
configuration. No SQL text is inspected. Its limits (``SqlLimits``: time per query, memory, threads) are set before the
lock, so a query cannot raise them, and no setting it can read holds a path of this machine.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as pa_ds

from osteo_core.errors import OsteoError
from osteo_core.publish import folder as publish
from osteo_core.publish import outreach
from osteo_core.settings import settings
from osteo_core.terminal_text import escape_controls

# Set when the database starts: after this no extension is installed, loaded or autoloaded, no secret is written,
# no Python variable is scanned, and nothing spills to a temporary directory. (External access is turned off in
# ``_LOCKDOWN``: off from the start, DuckDB lists the database's own paths, under the working directory, in
# ``allowed_paths``, which a query can read and nothing can change.)
_STARTUP_CONFIG: dict[str, str | bool] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_extension_repositories": "forbidden",
    "allow_persistent_secrets": False,
    "python_enable_replacements": False,
    "temp_directory": "",
}
# Set once the tables are registered, then the configuration is locked (``lock_configuration`` last). The secrets
# folder is emptied (its default is under the home directory; persistent secrets are off anyway).
_LOCKDOWN = (
    "SET secret_directory = ''",
    "SET enable_external_access = false",
    "SET disabled_filesystems = 'LocalFileSystem'",
    "SET lock_configuration = true",
)

SQL_TIMEOUT = 120.0  # seconds one query of osteo sql (or of the notebook's connection) may run
MEMORY_CAP = 8 * 2**30  # the default memory limit: a quarter of the machine's memory, at most this
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]i?b|b|bytes?)\s*", re.IGNORECASE)
_UNITS = {"b": 1, "byte": 1, "bytes": 1} | {
    f"{prefix}{infix}b": base**power
    for power, prefix in enumerate("kmgt", start=1)
    for infix, base in (("", 1000), ("i", 1024))
}  # as DuckDB reads them: KB, MB, GB, TB are powers of 1000, KiB, MiB, GiB, TiB of 1024
LARGEST_SIZE = 4096 * 1024**4  # bytes (4096 TiB): a larger number is no limit at all


def machine_memory() -> int:
    """This machine's physical memory, in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_memory_limit() -> int:
    """A quarter of the machine's memory, at most ``MEMORY_CAP`` (DuckDB's own default is 80 %)."""
    return min(machine_memory() // 4, MEMORY_CAP)


def configured_threads() -> int:
    """``OSTEO_SQL_THREADS``, or (0, the default) one per core this process may run on."""
    configured = settings().sql_threads
    if configured > 0:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_size(text: str) -> int:
    """Bytes of a size written as DuckDB reads it (``2GB``, ``500MB``, ``1.5GiB``, ``4096B``); a ``ValueError``
    saying what is wrong otherwise (no unit, 0, or more than ``LARGEST_SIZE``)."""
    found = _SIZE.fullmatch(text)
    if not found:
        raise ValueError("give a number and a unit, e.g. 2GB or 500MB (KB, MB, GB, TB; KiB, MiB, GiB, TiB; B)")
    size = math.floor(float(found[1]) * _UNITS[found[2].lower()])
    if size < 1:
        raise ValueError("give a size above 0, e.g. 2GB or 500MB")
    if size > LARGEST_SIZE:
        raise ValueError("give at most 4096TiB")
    return size


def size_text(size: int) -> str:
    """``size`` bytes as DuckDB writes a memory limit (``current_setting('memory_limit')``): ``4.0 GiB``,
    ``61.0 MiB``, one decimal cut, not rounded."""
    for unit, power in (("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        if size >= 1024**power:
            return f"{size * 10 // 1024**power / 10:.1f} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class SqlLimits:
    """What one read-only connection may use, set before its configuration is locked.

    ``timeout``: seconds one query may run (DuckDB's ``max_execution_time``; ``query`` also interrupts the query
    itself when it is up), ``None`` for no limit. ``memory``: bytes (``memory_limit``; nothing spills to disk, so a
    query needing more fails). ``threads``: DuckDB's threads. ``memory_text``: the memory limit as the user wrote
    it, for messages (default: ``size_text``)."""

    timeout: float | None = SQL_TIMEOUT
    memory: int = field(default_factory=default_memory_limit)
    threads: int = field(default_factory=configured_threads)
    memory_text: str = ""

    def config(self) -> dict[str, str | int]:
        """The DuckDB settings these limits are."""
        config: dict[str, str | int] = {"memory_limit": f"{self.memory}B", "threads": self.threads}
        if self.timeout is not None:
            config["max_execution_time"] = max(1, math.ceil(self.timeout * 1000))  # milliseconds
        return config

    def shown_memory(self) -> str:
        return self.memory_text or size_text(self.memory)


class SqlLimitExceeded(OsteoError):
    """A query of ``osteo sql`` ran past its time or memory limit (exit 2): one line saying which and how to
    raise it."""


def _past_time(limits: SqlLimits) -> SqlLimitExceeded:
    return SqlLimitExceeded(
        f"the query ran past the time limit of {limits.timeout:g} s (raise it with --timeout SECONDS)"
    )


def _past_memory(limits: SqlLimits) -> SqlLimitExceeded:
    twice = 2 * limits.memory  # suggested: double, in the units a user writes
    example = f"{math.ceil(twice / 10**9)}GB" if twice >= 10**9 else f"{math.ceil(twice / 10**6)}MB"
    return SqlLimitExceeded(
        f"the query ran past the memory limit of {limits.shown_memory()} (raise it with --memory-limit, e.g. {example})"
    )


def connect_read_only(out: Path, run: Path | None = None, limits: SqlLimits | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that can read the published tables and views and nothing else, within ``limits``
    (default: ``SqlLimits()``, those of ``osteo sql``: 120 s per query, a quarter of the machine's memory up to
    8 GiB, the configured threads).

    ``current`` is resolved once, so the connection keeps reading the run it opened even if a new screen is
    published meanwhile. Each ``<table>.parquet`` of that run is registered under the table's name (Arrow reads the
    file), ``publish.VIEWS`` are created over them, then DuckDB's external access and local file system are turned
    off and the configuration is locked: COPY, EXPORT, reading or globbing files, ATTACH of a file, INSTALL/LOAD and
    SET/RESET (of a limit, too) all fail. What a session creates in its own memory (a temporary table, say) dies
    with it. A query past the time limit fails as ``duckdb.InterruptException``, past the memory limit as
    ``duckdb.OutOfMemoryException``.
    """
    return _connect(out, run, SqlLimits() if limits is None else limits)


def _connect(out: Path, run: Path | None, limits: SqlLimits | None) -> duckdb.DuckDBPyConnection:
    """``connect_read_only``; ``limits`` ``None``: DuckDB's own (the product's own queries: gaps, worklist,
    measures, report)."""
    if run is None:  # the caller may have resolved it already, to read the manifest of the same run
        link = out / publish.CURRENT
        run = link.resolve() if link.is_symlink() else None
    if run is None or not run.is_dir():
        raise publish.no_screen_here(out)
    con = duckdb.connect(":memory:", config=_STARTUP_CONFIG | (limits.config() if limits else {}))
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


class _Deadline:
    """Interrupts what ``con`` runs once ``seconds`` have passed (a timer thread calling ``con.interrupt()``);
    ``stop`` before the connection is closed."""

    def __init__(self, con: duckdb.DuckDBPyConnection, seconds: float):
        self.con = con
        self.passed = threading.Event()
        self.timer = threading.Timer(seconds, self._interrupt)
        self.timer.daemon = True  # never keeps the process alive
        self.timer.start()

    def _interrupt(self) -> None:
        self.passed.set()
        try:
            self.con.interrupt()
        except duckdb.Error:  # nothing left to interrupt
            pass

    def stop(self) -> None:
        self.timer.cancel()
        self.timer.join()  # an interrupt under way ends before the connection is closed


def query(
    out: Path, sql: str, run: Path | None = None, limits: SqlLimits | None = None, params: list | None = None
) -> pl.DataFrame:
    """``queries`` with one statement."""
    return queries(out, [(sql, params)], run, limits)[0]


def queries(
    out: Path, statements: list[tuple[str, list | None]], run: Path | None = None, limits: SqlLimits | None = None
) -> list[pl.DataFrame]:
    """Run each ``(sql, params)`` in turn over the published tables, on one connection (``connect_read_only``;
    ``run``: that run folder rather than the one ``current`` points at now); a DuckDB error is one ``OsteoError``
    (its first line: ``without_cells``), and so is a result column of a type that cannot be handed over
    (``_UNREADABLE_TYPES``).

    ``limits`` (``osteo sql``): the query runs within them, and past one fails as ``SqlLimitExceeded``; when its
    time is up it is interrupted (``_Deadline``, besides DuckDB's ``max_execution_time``). Without, DuckDB's own
    (the product's own queries). ``params``: values for the statement's ``?`` (a user's value is never spliced into
    the SQL)."""
    try:
        con = _connect(out, run, limits)
    except duckdb.OutOfMemoryException:
        if limits is None:
            raise
        raise _past_memory(limits) from None  # a limit too small even to open the tables in
    deadline = _Deadline(con, limits.timeout) if limits and limits.timeout is not None else None
    sql, relation, results = "", None, []
    try:
        for sql, params in statements:
            relation = con.sql(sql, params=params) if params else con.sql(sql)  # run once
            results.append(_frame(relation))
        return results
    except duckdb.Error as err:  # its first line says what and why; the rest is hints and the SQL echoed back
        if limits and isinstance(err, duckdb.InterruptException):  # by the deadline, or by max_execution_time
            if (deadline and deadline.passed.is_set()) or "maximum execution time" in str(err):
                raise _past_time(limits) from None
        if limits and isinstance(err, duckdb.OutOfMemoryException):
            raise _past_memory(limits) from None
        raise OsteoError(f"SQL error: {without_cells(str(err), sql) or type(err).__name__}") from None
    except RuntimeError as err:  # how DuckDB's Python API reports a query stopped by Ctrl-C (SIGINT)
        if str(err) == "Query interrupted":
            raise KeyboardInterrupt from None  # osteo: interrupted (exit 130), not a traceback
        raise
    except pl.exceptions.PolarsError:  # a type Polars cannot take that the check above does not know
        types = ", ".join(escape_controls(str(kind)) for kind in relation.types) if relation is not None else ""
        raise OsteoError(
            f"SQL error: the result cannot be read (column types: {types}): convert the columns in the query"
            " (e.g. ::VARCHAR)"
        ) from None
    finally:
        if deadline:
            deadline.stop()
        con.close()


def _frame(relation: duckdb.DuckDBPyRelation | None) -> pl.DataFrame:
    """A statement's result as a frame; one without a result (e.g. SET) gives an empty one."""
    if relation is None:
        return pl.DataFrame()
    for position, (name, kind) in enumerate(zip(relation.columns, relation.types, strict=True)):
        if _unreadable(kind):
            raise OsteoError(
                f'SQL error: column {position + 1} "{escape_controls(name)}" is {escape_controls(str(kind))},'
                " which osteo sql cannot write: convert it in the query (e.g. ::VARCHAR)"
            )
    return relation.pl()


def table_listing() -> pl.DataFrame:
    """Every published table and view, its columns and their descriptions (from ``schemas.tables``)."""
    from schemas.gaps import GAP_VIEWS
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
        elif table in GAP_VIEWS:
            rows.append((table, "…", None, "the care_gaps columns, then the screening columns"))
        else:
            rows += [(table, c, None, text) for c, text in EVENT_COLUMN_DESCRIPTIONS[table].items()]
    return pl.DataFrame(rows, schema=["table", "column", "type", "description"], orient="row")
