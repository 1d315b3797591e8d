"""Issue 30 item 3: ``osteo sql`` and the notebook's connection run within a time, memory and thread limit.

Before: ``osteo sql "SELECT sum(hash(i)) FROM range(10000000000000) t(i)"`` ran until killed from outside, the
memory limit was DuckDB's default (80 % of the machine), and ``duckdb_settings()`` showed the working directory
(``allowed_paths``) and the home directory (``secret_directory``). Now a query past ``--timeout`` (default 120 s)
or ``--memory-limit`` (default a quarter of the machine's memory, at most 8 GiB) stops with exit 2 and one line
naming the limit and how to raise it; the limits are set before the configuration is locked, so a query cannot
raise them; and no setting holds a path of this machine.

The time limit is checked by the installed command returning (``subprocess.run``'s own timeout is only a guard
against the query running on), never by measuring how long it took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import screen_synthetic, write_synthetic

from osteo_core.cli import main

OSTEO = Path(sys.executable).parent / "osteo"
NEVER_ENDS = "SELECT sum(hash(i)) FROM range(10000000000000) t(i)"
MEMORY_HUNGRY = "SELECT count(DISTINCT hash(i)) AS n FROM range(20000000) t(i)"  # a hash table of 20 million keys
GUARD = 180  # seconds: only so a query that never stops fails the test instead of hanging it


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("sql-limits")
    inputs = base / "inputs"
    inputs.mkdir()
    screen_synthetic(write_synthetic(inputs, 60, seed=30), base / "out", "2026-01-01")
    return base / "out"


def _osteo(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(OSTEO), *args], capture_output=True, text=True, cwd=cwd, env=os.environ | (env or {}), timeout=GUARD
    )


def _one_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


def _expected_memory_limit() -> int:
    """The rule, worked out here on its own: a quarter of the machine's memory, at most 8 GiB."""
    return min(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4, 8 * 2**30)


def _as_duckdb_shows(size: str) -> str:
    """``current_setting('memory_limit')`` for a memory limit of ``size``, as DuckDB itself writes it."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET memory_limit = '{size}'")
        return con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    finally:
        con.close()


def _sql_json(capsys, out: Path, *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    code = main(["sql", "--out", str(out), "--format", "json", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_a_query_that_never_ends_stops_at_the_time_limit(out, tmp_path):
    done = _osteo("sql", "--out", str(out), "--timeout", "2", NEVER_ENDS, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert _one_line(done) == "osteo sql: the query ran past the time limit of 2 s (raise it with --timeout SECONDS)"
    assert done.stdout == ""


@pytest.mark.timeout(GUARD)
def test_the_query_is_interrupted_even_without_duckdbs_own_time_limit(out, capsys, monkeypatch):
    """The time limit does not rest on DuckDB's ``max_execution_time`` alone: with it left out, ``query``'s own
    timer interrupts the running query (``con.interrupt()``), and the connection is closed, no thread left."""
    import threading

    from osteo_core.publish import catalog

    config = catalog.SqlLimits.config
    monkeypatch.setattr(
        catalog.SqlLimits, "config", lambda self: {k: v for k, v in config(self).items() if k != "max_execution_time"}
    )
    capsys.readouterr()
    threads = set(threading.enumerate())
    assert main(["sql", "--out", str(out), "--timeout", "1", NEVER_ENDS]) == 2
    captured = capsys.readouterr()
    assert captured.err == "osteo sql: the query ran past the time limit of 1 s (raise it with --timeout SECONDS)\n"
    assert set(threading.enumerate()) <= threads


def test_a_query_past_the_memory_limit_is_one_line_and_exit_2(out, tmp_path):
    done = _osteo("sql", "--out", str(out), "--memory-limit", "64MB", MEMORY_HUNGRY, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    line = _one_line(done)
    assert line.startswith("osteo sql: the query ran past the memory limit of 64MB (raise it with --memory-limit, e.g.")
    assert done.stdout == ""
    # the same query within a larger limit runs: the limit, not the query, stopped it
    bigger = _osteo("sql", "--out", str(out), "--memory-limit", "2GB", "--format", "csv", MEMORY_HUNGRY, cwd=tmp_path)
    assert bigger.returncode == 0 and bigger.stdout.splitlines() == ["n", "20000000"], bigger.stderr[-2000:]


def test_the_defaults_are_applied(out, capsys, monkeypatch):
    monkeypatch.delenv("OSTEO_SQL_THREADS", raising=False)
    sql = (
        "SELECT current_setting('memory_limit') AS memory, current_setting('threads') AS threads,"
        " current_setting('max_execution_time') AS ms"
    )
    [row] = _sql_json(capsys, out, sql)
    assert row["memory"] == _as_duckdb_shows(f"{_expected_memory_limit()}B")
    assert int(row["threads"]) == len(os.sched_getaffinity(0))
    assert int(row["ms"]) == 120_000
    monkeypatch.setenv("OSTEO_SQL_THREADS", "1")  # the configured threads
    [row] = _sql_json(capsys, out, "--memory-limit", "2GB", "--timeout", "30", sql)
    assert (row["memory"], int(row["threads"]), int(row["ms"])) == (_as_duckdb_shows("2GB"), 1, 30_000)


@pytest.mark.parametrize("statement", ["SET memory_limit = '100GB'", "SET threads = 64", "RESET memory_limit"])
def test_a_query_cannot_raise_a_limit(out, capsys, statement):
    """The limits given are set before the configuration is locked: SET and RESET are refused."""
    for sql in (statement, f"{statement}; SELECT current_setting('memory_limit')"):
        capsys.readouterr()
        assert main(["sql", "--out", str(out), "--memory-limit", "64MB", "--timeout", "30", sql]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("osteo: SQL error:"), err
        assert "lock" in err


def test_the_notebook_connection_has_the_same_limits(out, monkeypatch):
    from osteo_core.publish.catalog import SqlLimits, connect_read_only

    monkeypatch.setenv("OSTEO_SQL_THREADS", "1")
    con = connect_read_only(out)
    try:
        shown = con.sql(
            "SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('max_execution_time')"
        ).fetchall()[0]
        assert shown == (_as_duckdb_shows(f"{_expected_memory_limit()}B"), 1, 120_000)
        for statement in ("SET memory_limit = '100GB'", "SET threads = 64", "SET max_execution_time = 0"):
            with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
                con.execute(statement)
        assert con.sql("SELECT count(*) FROM screening").fetchall()[0][0] > 0
    finally:
        con.close()
    con = connect_read_only(out, limits=SqlLimits(timeout=1))
    try:
        with pytest.raises(duckdb.InterruptException):
            con.sql(NEVER_ENDS).fetchall()
    finally:
        con.close()


def test_no_setting_holds_a_path_of_this_machine(out, tmp_path):
    """Every row of ``duckdb_settings()``, through the installed command and the notebook's connection."""
    from osteo_core.publish.catalog import connect_read_only

    home = str(Path.home())
    paths = {str(tmp_path), str(tmp_path.resolve()), str(out), str(out.resolve()), str((out / "current").resolve())}
    paths |= {home} if home not in ("", "/") else set()
    done = _osteo(
        "sql", "--out", str(out), "--format", "json", "SELECT name, value FROM duckdb_settings()", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [(r["name"], r["value"]) for r in json.loads(done.stdout)]
    assert len(rows) > 100
    con = connect_read_only(out)
    try:
        rows += con.sql("SELECT name, value FROM duckdb_settings()").fetchall()
        paths |= {os.getcwd()}
    finally:
        con.close()
    leaks = [(name, value) for name, value in rows for path in paths if value and path in value]
    assert leaks == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--timeout", "0"),
        ("--timeout", "-5"),
        ("--timeout", "soon"),
        ("--timeout", "nan"),
        ("--timeout", "inf"),
        ("--memory-limit", "lots"),
        ("--memory-limit", "0MB"),
        ("--memory-limit", "4"),
        ("--memory-limit", "-1GB"),
        ("--memory-limit", "2PB"),
    ],
)
def test_a_bad_limit_is_exit_2_naming_the_option(out, capsys, option, value):
    capsys.readouterr()
    assert main(["sql", "--out", str(out), f"{option}={value}", "SELECT 1"]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1 and f"argument {option}: " in captured.err, captured.err
    assert captured.out == ""
