"""Atomic, idempotent publishing of a run folder under ``--out``.

Layout::

    OUT/runs/<run_id>/        one folder per run: *.parquet, manifest.json, osteo.duckdb, raw/
    OUT/current -> runs/<run_id>   the published run; swapped with one atomic rename
    OUT/<table>.parquet, OUT/manifest.json, OUT/osteo.duckdb -> current/...   stable names

Readers always resolve through ``current``, so they see the old run or the new one, never a mix, and
never a half-written file: a run folder is complete before ``current`` points at it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from osteo_core.errors import InputError
from osteo_core.literal_paths import duckdb_database, duckdb_parquet, duckdb_read_parquet
from osteo_core.publish import worklist_index
from schemas.gaps import GAP_VIEWS
from schemas.tables import CATALOG_TABLES, EVENT_TABLES, TABLES  # noqa: F401 - re-exported for callers

RUNS = "runs"
CURRENT = "current"
CATALOG = "osteo.duckdb"
MANIFEST = "manifest.json"
CRASH_ENV = "OSTEO_CRASH_AT"
# appended to a table's SELECT *: its rows, with a column mrn (null) if the table has none (no row is added)
_OR_NULL_MRN = "UNION ALL BY NAME SELECT NULL::VARCHAR AS mrn WHERE false"
MRN_OR_NULL = _OR_NULL_MRN  # a table with an mrn column, null where it had none (read by outputs.worklist)
VIEWS = {  # views over the catalog's tables
    **{  # a gap's own view (schemas.gaps): its gaps joined to the patient's latest screening row
        gap: "SELECT g.*, s.* EXCLUDE (patient_id, exam_id) FROM care_gaps g "
        f"JOIN screening s ON s.exam_id = g.exam_id WHERE g.gap = '{gap}'"
        for gap in GAP_VIEWS
    },
    # each open gap with the roster's routing columns (none without a roster): who to call, from where
    # mrn beside patient_id: the patients table's (the export's), else a roster column named mrn (then not a
    # routing column); a run published before patients had mrn, or a roster without one, gives null (_OR_NULL_MRN)
    # in_roster: the roster lists her (valid, or held back in quarantine); blank when the run had no roster
    "worklist": "SELECT g.patient_id, coalesce(pt.mrn, p.mrn) AS mrn, g.* EXCLUDE (patient_id), "
    "CASE WHEN EXISTS (SELECT 1 FROM population) OR EXISTS (SELECT 1 FROM quarantine WHERE input = 'population') "
    "THEN p.patient_id IS NOT NULL "
    "OR g.patient_id IN (SELECT patient_id FROM quarantine WHERE input = 'population') END AS in_roster, "
    f"p.* EXCLUDE ({', '.join(worklist_index.NOT_ROUTING)}) "
    f"FROM care_gaps g LEFT JOIN (SELECT * FROM population {_OR_NULL_MRN}) p ON p.patient_id = g.patient_id "
    f"LEFT JOIN (SELECT patient_id, mrn FROM (SELECT * FROM patients {_OR_NULL_MRN})) pt "
    "ON pt.patient_id = g.patient_id",
}  # test hook: SIGKILL this process at a named publishing step


def crash_point(step: str) -> None:
    """Let a test kill the process at a named step, to prove publishing is atomic."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


LOCK = ".osteo.lock"


@contextmanager
def output_lock(out: Path, run_id: str) -> Iterator[None]:
    """Hold ``OUT/.osteo.lock`` for the whole run: two screens into one output folder cannot interleave.

    The lock is the kernel's (``flock``), so it is released when the holder exits in any way, ``kill -9``
    included: a stale lock file is simply taken over. A second screen exits 2 naming the run holding it.
    A waiter that locked a file since removed notices (another inode) and locks the current one; so the
    lock file may be removed, but only by the holder, while it holds it.
    """
    from osteo_core.errors import InputError, output_errors

    path = out / LOCK
    while True:
        with output_errors(out):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            message = f"another screen is writing this output folder ({holder}); wait for it to finish"
            raise InputError(str(out), message) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the file was removed and made anew while we waited: lock the current one
    try:
        os.ftruncate(fd, 0)
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        holder = {"run_id": run_id, "pid": os.getpid(), "started": started}
        os.write(fd, (json.dumps(holder) + "\n").encode())
        yield
    finally:
        os.close(fd)


def _lock_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"run {holder['run_id']}, process {holder['pid']}, started {holder['started']}"
    except (ValueError, KeyError, OSError):
        return "a run starting now"


def run_dir(out: Path, run_id: str) -> Path:
    return out / RUNS / run_id


# Inside a run folder: the published tables as one file each, these tables one file per partition (never
# merged), the rule file that ran, the raw layer and the work folder of the partitions.
EXAMS = "exams"  # run-folder tables kept as one file per partition (never merged): explain and the catalog
FRACTURES = "fractures"
PARTITIONED = ("exams", *EVENT_TABLES)
RULES_COPY = "rules.toml"


@dataclass(frozen=True)
class RunPaths:
    out: Path
    run_id: str

    @property
    def folder(self) -> Path:
        return run_dir(self.out, self.run_id)

    @property
    def raw(self) -> Path:
        return self.folder / "raw"

    @property
    def work(self) -> Path:
        return self.folder / ".work"

    @property
    def exam_ids(self) -> Path:
        """The scans' (exam id, patient id) pairs by exam-id bucket, from ingest to the conflict check."""
        return self.folder / ".exam_ids"

    @property
    def conflicts(self) -> Path:
        """Exam ids under several patients (run-wide), read by every partition."""
        return self.work / "exam_conflicts.parquet"

    def part(self, partition: int) -> Path:
        return self.work / f"part-{partition:03d}"

    def part_file(self, table: str, partition: int) -> Path:
        """Where a partition writes its share of a table: the run folder's own ``TABLE/part-NNN.parquet``
        for the tables kept per partition, the work folder for the published ones (merged at publish)."""
        if table in PARTITIONED:
            return self.folder / table / f"part-{partition:03d}.parquet"
        return self.part(partition) / f"{table}.parquet"


def table_files(folder: Path, table: str) -> list[Path]:
    """A run folder's files of one table: ``TABLE.parquet``, or for the tables kept one file per partition
    (exams and the valid events, never merged), ``TABLE/part-NNN.parquet`` in partition order."""
    single = folder / f"{table}.parquet"
    return [single] if single.is_file() else sorted((folder / table).glob("part-*.parquet"))


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a run folder (``write_manifest``'s counterpart)."""
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    path = folder / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# Rows are copied in parallel (a SQL table has no order: ORDER BY what you need), within a memory budget that
# spills to the run folder rather than raise the run's peak.
_CATALOG_WRITE_CONFIG: dict[str, str | bool] = {"preserve_insertion_order": False, "memory_limit": "1GB"}
CATALOG_SCHEMA = "published"  # the catalog's own copy of the run's tables; ``main`` holds the views over it


def write_catalog(
    folder: Path, tables: list[str], extra_views: dict[str, str] | None = None, copy: bool = True
) -> Path:
    """A self-describing DuckDB file for any client (DuckDB's CLI, Python, DBeaver).

    With ``copy`` each table's rows are copied into ``published.<table>`` and ``main.<table>`` is a view of it,
    so the file names no path: moving, copying or re-mounting the output folder keeps every view working (DuckDB
    resolves a path in a view against the client's working directory, and a table function cannot compute one).
    Without it (``OSTEO_CATALOG=views``, for registries where the copy's time counts) the views read this run
    folder's Parquet files by absolute path: a tiny file that works only where the folder is (a path DuckDB cannot
    name, a backslash beside ``[``, ``*`` or ``?``, gets the copy instead: ``literal_paths``).
    Tables, views and columns carry their descriptions (``COMMENT ON``), visible in ``duckdb_columns()``.
    """
    path = folder / CATALOG
    if path.exists():
        path.unlink()
    with duckdb_database(path) as built:  # DuckDB cannot write a database under a folder named ``out?``
        _write_catalog(built, folder, tables, extra_views or {}, copy)
    return path


def _write_catalog(path: Path, folder: Path, tables: list[str], extra_views: dict[str, str], copy: bool) -> None:
    """``write_catalog``'s work: the database written at ``path`` (the catalog's place, or a temporary one)."""
    temporary = path.parent / ".catalog.tmp"
    con = duckdb.connect(str(path), config=_CATALOG_WRITE_CONFIG | {"temp_directory": str(temporary)})
    try:
        for table in tables:
            files = table_files(folder, table)
            if not files:
                continue  # not in this run
            # each file read as exactly that file, never as a pattern: under an --out named ``out[1]`` a plain
            # path would read ``out1``'s files (literal_paths)
            files = [f.resolve() for f in files]
            named = duckdb_read_parquet(files)  # None: DuckDB cannot name them, so no view can; Arrow reads them
            rows = f"SELECT * FROM {named or duckdb_parquet(con, files, f'_files_{table}')}"
            if copy or named is None:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {CATALOG_SCHEMA}")
                con.execute(f"CREATE TABLE {CATALOG_SCHEMA}.{table} AS {rows}")
                rows = f"SELECT * FROM {CATALOG_SCHEMA}.{table}"
            con.execute(f"CREATE VIEW {table} AS {rows}")
        for name, sql in extra_views.items():
            con.execute(f"CREATE VIEW {name} AS {sql}")
        _comment_catalog(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()
        shutil.rmtree(temporary, ignore_errors=True)


def _comment_catalog(con: duckdb.DuckDBPyConnection) -> None:
    """``COMMENT ON`` every table, view and known column from the one registry (``schemas.tables``)."""
    from schemas.tables import ROUTING_DESCRIPTION, TABLE_DESCRIPTIONS, catalog_column_descriptions

    present = {
        (schema, name): kind
        for schema, name, kind in con.execute(
            "SELECT schema_name, table_name, 'TABLE' FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT schema_name, view_name, 'VIEW' FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal"
        ).fetchall()
    }
    columns = {
        (schema, table, column)
        for schema, table, column in con.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() WHERE database_name = current_database()"
        ).fetchall()
    }
    statements = []
    for (schema, name), kind in sorted(present.items()):
        if name not in TABLE_DESCRIPTIONS:
            continue
        statements.append(f"COMMENT ON {kind} {schema}.{name} IS '{_sql_text(TABLE_DESCRIPTIONS[name])}'")
        described = catalog_column_descriptions(name)
        if name in ("population", "worklist"):  # the roster's routing columns, named by the profile
            routing = {c for s, n, c in columns if (s, n) == (schema, name)} - set(described)
            described = described | dict.fromkeys(sorted(routing), ROUTING_DESCRIPTION)
        for column, text in described.items():
            if (schema, name, column) in columns:
                statements.append(f"COMMENT ON COLUMN {schema}.{name}.\"{column}\" IS '{_sql_text(text)}'")
    # one transaction and one call for all of them: a commit per comment cost most of a small screen's publish
    con.execute(";\n".join(["BEGIN TRANSACTION", *statements, "COMMIT"]))


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Checks made just before a run is switched in (``promote``), each of which may raise to refuse it. The Prefect flow
# adds one: a run its runner has asked to cancel publishes nothing, even when Python lost the SIGTERM that should
# have stopped it (raised inside a finalizer, "Exception ignored"). Empty outside the flow.
BEFORE_SWITCH: list[Callable[[], None]] = []


def promote(out: Path, run_id: str, published_names: list[str], keep_runs: int) -> None:
    """Point ``current`` at the run (one atomic rename), keep stable names, prune old runs; unless a check of
    ``BEFORE_SWITCH`` refuses it first (nothing is then changed)."""
    for check in BEFORE_SWITCH:
        check()
    target = Path(RUNS) / run_id
    tmp_link = out / f".{CURRENT}.{run_id}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(target, target_is_directory=True)
    crash_point("before_swap")
    os.replace(tmp_link, out / CURRENT)
    _fsync_dir(out)
    crash_point("after_swap")
    for name in published_names:
        link = out / name
        if not link.is_symlink():
            if link.exists():
                continue  # never overwrite a user's own file
            link.symlink_to(Path(CURRENT) / name)
    prune_runs(out, keep_runs)


def current_run(out: Path) -> Path | None:
    link = out / CURRENT
    return link.resolve() if link.is_symlink() else None


DEMO_MARKER = ".osteo-demo"  # in a folder osteo demo made: the next demo may empty it and start afresh


def no_screen_here(out: Path) -> InputError:
    """The refusal of a command that reads a published screen from ``out`` where none is. When a folder of the
    working folder that ``osteo demo`` made (``DEMO_MARKER``) holds one, it says where: ``osteo demo`` publishes
    into its own folder, never into the default ``--out`` a real screen publishes to."""
    hint = "run osteo screen first"
    try:
        here = sorted(Path.cwd().iterdir())
    except OSError:
        here = []
    for folder in here:
        try:
            demo = (folder / DEMO_MARKER).is_file() and current_run(folder) is not None
            if demo and folder.resolve() != out.absolute().resolve():
                hint += f"; the demo's screen is in {folder.name}: --out {folder.name}"
                break
        except OSError:
            continue
    return InputError(str(out), f"no published screen here ({hint})")


def prune_runs(out: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` run folders; never the published one."""
    runs = sorted((p for p in (out / RUNS).iterdir() if p.is_dir()), key=lambda p: p.name)
    published = current_run(out)
    for old in runs[: max(0, len(runs) - keep)]:
        if published is None or old.resolve() != published:
            shutil.rmtree(old, ignore_errors=True)


HISTORY = "history.jsonl"


def append_history(out: Path, manifest: dict[str, Any]) -> None:
    """One line per published run (counts only), for trends across runs; kept beside ``runs/``.

    Called after the run is published: a failure here is a warning, never a reason to undo the run."""
    entry = {
        "run_id": manifest["run_id"],
        "as_of": manifest["as_of"],
        "rule_set": f"{manifest['rule_set']['name']}@{manifest['rule_set']['version']}",
        "rows": manifest["rows"],
        "care_gaps": manifest.get("care_gaps", {}),
        "inputs_given": manifest.get("inputs_given", []),
    }
    if manifest.get("inputs_changed"):
        entry["inputs_changed"] = manifest["inputs_changed"]
    if manifest.get("lifecycle"):  # gaps opened and closed since the run it was compared with (counts)
        entry["gaps_opened"] = manifest["lifecycle"]["new"]
        entry["gaps_closed"] = manifest["lifecycle"]["closed"]
    with (out / HISTORY).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")


def published_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of the run ``current`` points at, if any."""
    if not (out / CURRENT / MANIFEST).is_file():
        return None
    return read_manifest(out / CURRENT)


def read_history(out: Path) -> list[dict[str, Any]]:
    path = out / HISTORY
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
