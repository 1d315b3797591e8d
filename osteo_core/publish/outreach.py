"""The outreach log: ``OUT/outreach.sqlite``, a SQLite database (WAL mode) whose table ``outreach`` holds one row
per mark (``osteo worklist mark``), numbered 1, 2, 3 … in the order recorded.

It lives beside ``runs/``, never inside a run: publishing, pruning and a screen killed half-way never touch it.
A batch of marks (one mark, or a whole ``--file``) is one SQLite transaction (``BEGIN IMMEDIATE`` … ``COMMIT``,
``synchronous=FULL``): after ``kill -9``, a full disk or a power cut it is recorded whole or not at all, and a
reader never sees part of it (a reader reads one snapshot). Two writers at once queue on SQLite's write lock (a
busy timeout of ``BUSY_SECONDS``); readers never wait for writers. ``mark`` is an ``AUTOINCREMENT`` key: numbers
only grow, and are never reused.

A folder that cannot be written (a read-only copy or mount) is still read (``read_mode``): SQLite's WAL index
(``outreach.sqlite-shm``) cannot be created there, so the store is opened ``immutable``, or, when an
``outreach.sqlite-wal`` file holds marks not yet copied into the main file, read from a private copy of the two.

``OUT/outreach.jsonl``, the log of earlier versions (one JSON line per mark, appended under a ``flock``), is
moved into the store the first time the folder is used by this version (``_migrate``): every readable mark with
its number and time, in one transaction; the file is kept as ``outreach.jsonl.migrated``. Lines that are not a
readable mark (cut off by a crash) are said once, by line number, and stay in the backup.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osteo_core.errors import InputError, OsteoError, OutputError, output_errors
from osteo_core.resources import OUTREACH, shipped_toml

if TYPE_CHECKING:  # the CLI reads the statuses for --help: no Polars (nor sqlite3) until a log is read
    import sqlite3

    import polars as pl

STORE = "outreach.sqlite"  # the outreach log
LEGACY_LOG = "outreach.jsonl"  # the log of earlier versions, moved into the store once
MIGRATED_LOG = "outreach.jsonl.migrated"  # where it is kept after the move
TABLE = "outreach"
STORE_VERSION = 1  # PRAGMA user_version of the store this code writes
BUSY_SECONDS = 60  # how long a writer waits for another one (or a reader for a crash recovery) before giving up
MID_BATCH = "outreach_mid_batch"  # publish.crash_point step: a test kills a writer with half its batch inserted
_INFO = "store_info"  # key → value: how the store came about (the migration of an outreach.jsonl)
_MIGRATED = "migrated_from_jsonl"
_CREATE = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    mark INTEGER PRIMARY KEY AUTOINCREMENT,
    marked_at TEXT NOT NULL CHECK (julianday(marked_at) IS NOT NULL),
    patient_id TEXT NOT NULL,
    gap TEXT NOT NULL,
    first_seen TEXT NOT NULL CHECK (first_seen = date(first_seen)),
    status TEXT NOT NULL,
    hide_until TEXT CHECK (hide_until IS NULL OR hide_until = date(hide_until)),
    note TEXT,
    marked_by TEXT,
    run_id TEXT)""",
    f"CREATE TABLE IF NOT EXISTS {_INFO} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
# SQLite's primary result codes (an extended code & 0xFF) that are the disk or the folder refusing, and what they mean
_DISK_CODES = {
    13: os.strerror(errno.ENOSPC),  # SQLITE_FULL
    8: os.strerror(errno.EROFS),  # SQLITE_READONLY
    3: os.strerror(errno.EACCES),  # SQLITE_PERM
    23: os.strerror(errno.EACCES),  # SQLITE_AUTH
    10: "disk I/O error: a full or failing disk?",  # SQLITE_IOERR (no room for the -shm file, say)
    14: "SQLite cannot open it: no permission?",  # SQLITE_CANTOPEN
}
_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED: still held after BUSY_SECONDS
_DAMAGED_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def _fields() -> tuple[str, ...]:
    from schemas.tables import OUTREACH_SCHEMA

    return tuple(OUTREACH_SCHEMA)


def check_outreach(data: dict[str, Any], where: str = OUTREACH) -> dict[str, Any]:
    """``data/reference/outreach.toml`` as read, refused (ValueError naming the file and key) when a hiding
    status is not a status, its days or ``[until] max_days`` are not a whole number above 0, or a status hides
    by default for longer than ``--until`` may."""

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    known = data.get("status")
    if not isinstance(known, dict) or not known:
        raise ValueError(f"{where}: [status] must list the statuses")
    hide = data.get("hide", {})
    for name, days in hide.items():
        if name not in known:
            raise ValueError(f"{where}: [hide] {name} is not a status of [status]")
        if not whole(days):
            raise ValueError(f"{where}: [hide] {name} must be a whole number of days above 0")
    longest = data.get("until", {}).get("max_days")
    if not whole(longest):
        raise ValueError(f"{where}: [until] max_days must be a whole number of days above 0")
    for name, days in hide.items():
        if days > longest:
            raise ValueError(f"{where}: [hide] {name} is longer than [until] max_days")
    return data


def statuses() -> dict[str, str]:
    """status → what it means (``data/reference/outreach.toml``), in the file's order."""
    return dict(check_outreach(shipped_toml(OUTREACH))["status"])


def hide_days() -> dict[str, int]:
    """The statuses that hide a gap from the default worklist → days hidden when no ``--until`` is given."""
    return dict(check_outreach(shipped_toml(OUTREACH)).get("hide", {}))


def max_hide_days() -> int:
    """The most days after the mark's day (the later of today and the run's as-of date) an ``--until`` may be."""
    return check_outreach(shipped_toml(OUTREACH))["until"]["max_days"]


def version() -> str:
    return shipped_toml(OUTREACH)["reference"]["version"]


# --- the store ------------------------------------------------------------------------------------------------


def _store_error(exc: Exception, path: Path, consequence: str, writing: bool) -> OsteoError:
    """A SQLite error as one line naming the store (never a row of it); ``consequence``: what was not done."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    name = getattr(exc, "sqlite_errorname", type(exc).__name__)
    if code in _DISK_CODES:
        if not writing:
            return InputError(str(path), f"cannot read the outreach log ({_DISK_CODES[code]}); {consequence}")
        return OutputError(str(path), f"cannot write the output ({_DISK_CODES[code]}); {consequence}")
    if code in _BUSY_CODES:
        return OsteoError(
            f"{path}: another osteo has held the outreach log for over {BUSY_SECONDS} s; try again ({consequence})"
        )
    if code in _DAMAGED_CODES:
        return InputError(str(path), f"not a readable outreach log ({name}): restore it from a backup; {consequence}")
    return OsteoError(f"{path}: the outreach log failed ({name}); {consequence}")


@contextmanager
def _store_errors(out: Path, consequence: str, writing: bool = True) -> Iterator[None]:
    import sqlite3

    with output_errors(out):
        try:
            yield
        except sqlite3.Error as exc:
            raise _store_error(exc, out / STORE, consequence, writing) from None


def _fsync_folder(out: Path) -> None:
    directory = os.open(out, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def _writer(out: Path, consequence: str) -> Iterator[sqlite3.Connection]:
    """A connection that may write the store (created if missing), in WAL mode, every commit synced to disk."""
    import sqlite3

    path = out / STORE
    created = not path.exists()
    with _store_errors(out, consequence):
        con = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)  # transactions are ours
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            yield con
        finally:
            con.close()
        if created:  # the new file's name is on disk too
            _fsync_folder(out)


@contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (take the write lock now, waiting up to ``BUSY_SECONDS``) … ``COMMIT``; any failure,
    the commit's own included (a full disk), rolls it all back."""
    import sqlite3

    con.execute("BEGIN IMMEDIATE")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            con.execute("ROLLBACK")
        raise


def _create(con: sqlite3.Connection, path: Path) -> None:
    """The store's tables, inside the caller's transaction; a store of a newer version is refused."""
    found = con.execute("PRAGMA user_version").fetchone()[0]
    if found > STORE_VERSION:
        raise InputError(str(path), f"written by a newer osteo (store version {found}): update osteo to use it")
    for statement in _CREATE:
        con.execute(statement)
    if found < STORE_VERSION:
        con.execute(f"PRAGMA user_version = {STORE_VERSION}")


_INSERT = f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _row(number: int, mark: dict[str, Any]) -> tuple[Any, ...]:
    """A mark as the store's row: dates as ISO text, ``marked_at`` with its UTC offset."""

    def text(value: Any) -> str | None:
        if value is None:
            return None
        return value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)

    return (number, *(text(mark[c]) for c in _fields() if c != "mark"))


def append_marks(out: Path, marks: list[dict[str, Any]]) -> list[int]:
    """Record ``marks`` (the log's columns but ``mark``, already checked) as one transaction: all or none. Their
    mark numbers: one more than the highest ever given, and on."""
    from osteo_core.publish.folder import crash_point

    nothing = "nothing was recorded"
    with _writer(out, nothing) as con:
        _migrate(con, out)
        with _transaction(con):
            _create(con, out / STORE)
            top = con.execute(
                f"SELECT max(coalesce((SELECT max(mark) FROM {TABLE}), 0),"
                f" coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{TABLE}'), 0))"
            ).fetchone()[0]
            rows = [_row(top + 1 + i, m) for i, m in enumerate(marks)]
            half = len(rows) // 2
            con.executemany(_INSERT, rows[:half])
            crash_point(MID_BATCH)  # a test's kill -9 here leaves half a batch inserted, never committed
            con.executemany(_INSERT, rows[half:])
    return [row[0] for row in rows]


# --- the log of earlier versions ------------------------------------------------------------------------------


def _mark(record: Any) -> dict[str, Any] | None:
    """A line of an ``outreach.jsonl`` as a mark, or None when it is not one."""
    if not isinstance(record, dict) or set(record) != set(_fields()):
        return None
    try:
        text = {k: None if record[k] is None else str(record[k]) for k in ("note", "marked_by", "run_id")}
        return {
            "mark": int(record["mark"]),
            "marked_at": dt.datetime.fromisoformat(record["marked_at"]).astimezone(dt.UTC),
            "patient_id": str(record["patient_id"]),
            "gap": str(record["gap"]),
            "first_seen": dt.date.fromisoformat(record["first_seen"]),
            "status": str(record["status"]),
            "hide_until": dt.date.fromisoformat(record["hide_until"]) if record["hide_until"] else None,
            **text,
        }
    except (TypeError, ValueError):
        return None


def _read_legacy(data: bytes) -> tuple[list[tuple[int, dict[str, Any]]], list[int]]:
    """The readable marks of an ``outreach.jsonl`` with their 1-based line numbers (the first line of each mark
    number), and the numbers of the lines that are not one (cut off while written, or a number already taken)."""
    marks, skipped, taken = [], [], set()
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            mark = _mark(json.loads(line))
        except ValueError:
            mark = None
        if mark is None or mark["mark"] in taken:
            skipped.append(number)
        else:
            taken.add(mark["mark"])
            marks.append((number, mark))
    return marks, skipped


def _lines(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers[:5]) + (" …" if len(numbers) > 5 else "")


def _not_moved(numbers: list[int]) -> str:
    return (
        f"{len(numbers)} line(s) are not a readable mark (line {_lines(numbers)}; a mark cut off while it was written?)"
    )


def _migrated(con: sqlite3.Connection) -> bool:
    found = con.execute(f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{_INFO}'").fetchone()
    return bool(found and con.execute(f"SELECT 1 FROM {_INFO} WHERE key = ?", (_MIGRATED,)).fetchone())


def _migration_pending(out: Path, migrated: bool) -> bool:
    """An ``outreach.jsonl`` to move in: still there, or (a move cut off between its rename and its commit)
    only its backup, which the store does not say it holds."""
    return not migrated and ((out / LEGACY_LOG).exists() or (out / MIGRATED_LOG).exists())


def _migrate(con: sqlite3.Connection, out: Path) -> None:
    """Move ``OUT/outreach.jsonl`` into the store, in one transaction and once: two processes doing it at once
    queue on the write lock, and the second finds it done. The file is renamed ``outreach.jsonl.migrated``
    inside the transaction (a crash before the commit leaves the backup, which the next writer moves in)."""
    legacy, backup = out / LEGACY_LOG, out / MIGRATED_LOG
    if not legacy.exists() and not backup.exists():
        return
    with _transaction(con):
        _create(con, out / STORE)
        if _migrated(con):
            return  # done before; an outreach.jsonl found now was written later (read_log says so)
        source = legacy if legacy.exists() else backup
        if not source.exists():
            return
        data = source.read_bytes()
        marks, skipped = _read_legacy(data)
        # a number already in the store (the file put back beside a store in use) is not moved: said by its line
        taken = {row[0] for row in con.execute(f"SELECT mark FROM {TABLE}")}
        kept = [m for _, m in marks if m["mark"] not in taken]
        skipped = sorted(skipped + [line for line, m in marks if m["mark"] in taken])
        con.executemany(_INSERT, [_row(m["mark"], m) for m in kept])
        info = {
            "file": LEGACY_LOG,
            "backup": MIGRATED_LOG,
            "sha256": hashlib.sha256(data).hexdigest(),
            "marks": len(kept),
            "lines_not_moved": skipped,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        con.execute(f"INSERT INTO {_INFO} VALUES (?, ?)", (_MIGRATED, json.dumps(info)))
        if source == legacy:
            os.replace(legacy, backup)
            _fsync_folder(out)
    said = f"osteo: {LEGACY_LOG}: {len(kept)} mark(s) moved into {STORE} (the file is kept as {MIGRATED_LOG})"
    if skipped:
        said += f"; {_not_moved(skipped)}: not moved, kept in the backup; record those marks again"
    print(said, file=sys.stderr)


# --- reading --------------------------------------------------------------------------------------------------


def read_mode(out: Path) -> str:
    """How ``read_log`` opens the store: ``shared`` when the folder can be written (SQLite shares its WAL index,
    ``-shm``, with the writers), else ``_private_mode``."""
    return "shared" if os.access(out, os.W_OK) else _private_mode(out)


def _private_mode(out: Path) -> str:
    """How to read the store without a ``-shm`` (a read-only copy or mount, where none can be made, or a full
    disk, where none can grow): ``immutable`` when no ``-wal`` file holds marks; ``copy`` when one does (the
    two files read from a private copy, where SQLite replays the WAL; immutable would not see those marks)."""
    wal = out / f"{STORE}-wal"
    return "copy" if wal.exists() and wal.stat().st_size > 0 else "immutable"


@contextmanager
def _reader(out: Path, mode: str) -> Iterator[sqlite3.Connection]:
    import shutil
    import sqlite3
    import tempfile

    path = out / STORE
    with ExitStack() as stack:
        if mode == "copy":
            private = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="osteo-outreach-")))
            for suffix in ("", "-wal"):
                shutil.copyfile(f"{path}{suffix}", private / f"{STORE}{suffix}")
            path = private / STORE
        query = "?mode=ro&immutable=1" if mode == "immutable" else "?mode=ro"
        con = sqlite3.connect(path.absolute().as_uri() + query, uri=True, timeout=BUSY_SECONDS, isolation_level=None)
        stack.callback(con.close)
        yield con


def _snapshot(out: Path, mode: str) -> tuple[list[tuple[Any, ...]], bool]:
    import sqlite3

    columns = ", ".join(_fields())
    with _reader(out, mode) as con:
        con.execute("BEGIN")  # one snapshot: a batch being written is not in it, a committed one wholly is
        try:
            if not con.execute(f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{TABLE}'").fetchone():
                return [], False  # created by a writer that could not finish (a full disk): no mark yet
            rows = con.execute(f"SELECT {columns} FROM {TABLE} ORDER BY mark").fetchall()
            return rows, _migrated(con)
        finally:
            with suppress(sqlite3.Error):
                con.execute("COMMIT")


def _read_store(out: Path, mode: str) -> tuple[list[tuple[Any, ...]], bool]:
    """The store's rows in mark order, and whether it holds a moved ``outreach.jsonl``: one snapshot. A shared
    read the disk refuses (no room for the ``-shm`` on a full disk) is made privately instead."""
    import sqlite3

    if not (out / STORE).exists():
        return [], False
    with _store_errors(out, "the outreach marks were not read", writing=False):
        try:
            return _snapshot(out, mode)
        except sqlite3.OperationalError as exc:
            if mode != "shared" or getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _DISK_CODES:
                raise
        return _snapshot(out, _private_mode(out))


@dataclass
class Log:
    marks: pl.DataFrame  # OUTREACH_SCHEMA, in the order recorded
    # 1-based line numbers that are not a mark, of an outreach.jsonl read as it is (a folder osteo cannot write)
    unreadable: list[int] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # what else the reader should be told (no cell of the log)

    def warning(self) -> str | None:
        said = list(self.notices)
        if self.unreadable:
            said.append(f"{LEGACY_LOG}: {_not_moved(self.unreadable)}: left out of the worklist")
        return "; ".join(said) or None


def _frame(rows: list[tuple[Any, ...]], where: Path) -> pl.DataFrame:
    import polars as pl

    from schemas.tables import OUTREACH_SCHEMA

    if not rows:
        return pl.DataFrame(schema=OUTREACH_SCHEMA)
    text = pl.DataFrame(rows, schema={c: pl.Int64 if c == "mark" else pl.Utf8 for c in OUTREACH_SCHEMA}, orient="row")
    try:
        marked_at = [dt.datetime.fromisoformat(t).astimezone(dt.UTC) for t in text.get_column("marked_at")]
        return text.with_columns(
            pl.Series("marked_at", marked_at, dtype=OUTREACH_SCHEMA["marked_at"]),
            pl.col("first_seen", "hide_until").str.to_date("%Y-%m-%d"),
        ).select(list(OUTREACH_SCHEMA))
    except (ValueError, pl.exceptions.PolarsError):  # the store's checks stop this, unless edited by hand around them
        raise InputError(
            str(where), "a row is not a readable mark (edited by hand?): restore it from a backup"
        ) from None


def read_log(out: Path) -> Log:
    """Every mark of ``OUT/outreach.sqlite`` in the order recorded (none when there is no log yet), as one
    snapshot. An ``outreach.jsonl`` of an earlier version is moved in first (once, saying so on stderr); in a
    folder osteo cannot write it is read as it is, with the lines that are not a mark in ``unreadable``."""
    import polars as pl

    mode = read_mode(out)
    notices: list[str] = []
    rows, migrated = _read_store(out, mode)
    if _migration_pending(out, migrated) and mode == "shared":
        try:
            with _writer(out, f"{LEGACY_LOG} was not moved into {STORE}") as con:
                _migrate(con, out)
            rows, migrated = _read_store(out, mode)
        except OsteoError as err:  # a full disk, say: read the old log as it is this time
            notices.append(str(err))
    marks, unreadable = _frame(rows, out / STORE), []
    legacy = out / LEGACY_LOG
    if migrated and legacy.exists():
        notices.append(
            f"{LEGACY_LOG}: written after the log moved into {STORE} (by an older osteo?): not read; move it away"
            " and mark those gaps again"
        )
    elif _migration_pending(out, migrated):  # not moved: a folder osteo cannot write, or the move failed
        source = legacy if legacy.exists() else out / MIGRATED_LOG
        with output_errors(out):
            old, unreadable = _read_legacy(source.read_bytes())
        if old:
            from schemas.tables import OUTREACH_SCHEMA

            old_marks = pl.DataFrame([m for _, m in old], schema=OUTREACH_SCHEMA, orient="row")
            marks = pl.concat([marks, old_marks])
    return Log(marks.sort("mark", maintain_order=True), unreadable, notices)
