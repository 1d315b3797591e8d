"""The outreach log: ``OUT/outreach.jsonl``, one JSON line per mark (``osteo worklist mark``), append-only.

It lives beside ``runs/``, never inside a run: publishing, pruning and a screen killed half-way never touch it.
Marks are appended under the kernel's lock on ``OUT/.outreach.lock`` (``flock``: a second writer waits, and a
writer killed while holding it releases it), each batch with one ``write`` and an ``fsync``, so two people
marking at once lose nothing. A line cut off by a crash mid-write is isolated (the next writer starts on a new
line) and reported by ``read_log``, never silently read as a mark.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osteo_core.errors import output_errors
from osteo_core.resources import OUTREACH, shipped_toml

if TYPE_CHECKING:  # the CLI reads the statuses for --help: no Polars until a log is read
    import polars as pl

LOG = "outreach.jsonl"
LOG_LOCK = ".outreach.lock"


def _fields() -> tuple[str, ...]:
    from schemas.tables import OUTREACH_SCHEMA

    return tuple(OUTREACH_SCHEMA)


def check_outreach(data: dict[str, Any], where: str = OUTREACH) -> dict[str, Any]:
    """``data/reference/outreach.toml`` as read, refused (ValueError naming the file and key) when a hiding
    status is not a status or its days are not a whole number above 0."""
    known = data.get("status")
    if not isinstance(known, dict) or not known:
        raise ValueError(f"{where}: [status] must list the statuses")
    for name, days in data.get("hide", {}).items():
        if name not in known:
            raise ValueError(f"{where}: [hide] {name} is not a status of [status]")
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise ValueError(f"{where}: [hide] {name} must be a whole number of days above 0")
    return data


def statuses() -> dict[str, str]:
    """status → what it means (``data/reference/outreach.toml``), in the file's order."""
    return dict(check_outreach(shipped_toml(OUTREACH))["status"])


def hide_days() -> dict[str, int]:
    """The statuses that hide a gap from the default worklist → days hidden when no ``--until`` is given."""
    return dict(check_outreach(shipped_toml(OUTREACH)).get("hide", {}))


def version() -> str:
    return shipped_toml(OUTREACH)["reference"]["version"]


@contextmanager
def log_lock(out: Path, shared: bool = False) -> Iterator[None]:
    """Hold ``OUT/.outreach.lock``, blocking: a writer waits for the others, a reader (``shared``) waits for a
    writer to finish its batch. A reader that cannot create the lock file (a read-only copy) reads unlocked."""
    try:
        fd = os.open(out / LOG_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if not shared:
            with output_errors(out):
                raise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _next_mark(path: Path) -> tuple[int, bool]:
    """The number of the next mark (one more than the highest readable), and whether the file ends mid-line."""
    if not path.exists():
        return 1, False
    data = path.read_bytes()
    highest = 0
    for line in data.splitlines():
        try:
            highest = max(highest, int(json.loads(line)["mark"]))
        except (ValueError, KeyError, TypeError):
            continue
    return highest + 1, bool(data) and not data.endswith(b"\n")


def append_marks(out: Path, marks: list[dict[str, Any]]) -> list[int]:
    """Append ``marks`` (the log's columns but ``mark``, already checked) as one batch; their mark numbers."""
    path = out / LOG
    with log_lock(out):
        first, torn = _next_mark(path)
        numbers = [first + i for i in range(len(marks))]
        lines = [
            json.dumps({"mark": first + i, **{k: m[k] for k in _fields() if k != "mark"}}) for i, m in enumerate(marks)
        ]
        payload = ("\n" if torn else "") + "".join(line + "\n" for line in lines)
        created = not path.exists()
        data = payload.encode("utf-8")
        with output_errors(out):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = 0
                while written < len(data):  # a short write (a full disk says so on the next call) goes on
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:  # the new file's name is on disk too
                directory = os.open(out, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
    return numbers


@dataclass
class Log:
    marks: pl.DataFrame  # OUTREACH_SCHEMA, in the order recorded
    unreadable: list[int] = field(default_factory=list)  # 1-based line numbers that are not a mark

    def warning(self) -> str | None:
        if not self.unreadable:
            return None
        lines = ", ".join(str(n) for n in self.unreadable[:5]) + (" …" if len(self.unreadable) > 5 else "")
        return (
            f"{LOG}: {len(self.unreadable)} line(s) are not a readable mark (line {lines}; a mark cut off while it"
            " was written?): left out of the worklist; record those marks again"
        )


def _mark(record: Any) -> dict[str, Any] | None:
    if not isinstance(record, dict) or set(record) != set(_fields()):
        return None
    try:
        return {
            "mark": int(record["mark"]),
            "marked_at": dt.datetime.fromisoformat(record["marked_at"]).astimezone(dt.UTC),
            "patient_id": str(record["patient_id"]),
            "gap": str(record["gap"]),
            "first_seen": dt.date.fromisoformat(record["first_seen"]),
            "status": str(record["status"]),
            "hide_until": dt.date.fromisoformat(record["hide_until"]) if record["hide_until"] else None,
            "note": record["note"],
            "marked_by": record["marked_by"],
            "run_id": record["run_id"],
        }
    except (TypeError, ValueError):
        return None


def read_log(out: Path) -> Log:
    """Every readable mark of ``OUT/outreach.jsonl`` (none when there is no log), and the lines that are not."""
    import polars as pl

    from schemas.tables import OUTREACH_SCHEMA

    path = out / LOG
    rows, unreadable = [], []
    if path.exists():
        with log_lock(out, shared=True), output_errors(out):  # never half a batch being written
            text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                mark = _mark(json.loads(line))
            except ValueError:
                mark = None
            if mark is None:
                unreadable.append(number)
            else:
                rows.append(mark)
    frame = pl.DataFrame(rows, schema=OUTREACH_SCHEMA, orient="row") if rows else pl.DataFrame(schema=OUTREACH_SCHEMA)
    return Log(frame.sort("mark", maintain_order=True), unreadable)
