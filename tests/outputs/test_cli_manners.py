"""Issue 12 §3: the ``osteo`` command behaves like the tools around it: --version, help on every command
and option, tables that fit the terminal, --limit, no traceback when a pipe closes, no binary on a terminal.
"""

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import screen_synthetic, write_synthetic

from osteo_core import __version__
from osteo_core.cli import main
from osteo_core.cli.parser import build_parser
from osteo_core.errors import OsteoError
from osteo_core.outputs.render import TERMINAL_ROWS, write_frame

OSTEO = [sys.executable, "-m", "osteo_core.cli"]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("manners")
    screen_synthetic(write_synthetic(folder, 300, seed=12), folder / "out", "2026-07-01")
    return folder / "out"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command, nested ones as ``worklist mark``."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[prefix + name] = sub
                found |= _subcommands(sub, prefix + name + " ")
    return found


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"osteo-screen {__version__}"


@pytest.mark.parametrize("command", sorted(_subcommands(build_parser())))
def test_every_command_has_a_description_an_example_and_help_on_every_option(command):
    parser = _subcommands(build_parser())[command]
    assert parser.description and len(parser.description) > 40
    assert parser.epilog.startswith("example:") and f"osteo {command}" in parser.epilog
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help, f"osteo {command} {action.option_strings or action.dest} has no help"


def test_a_closed_pipe_ends_quietly(out):
    """Before: ``osteo sql … | head`` ended in a BrokenPipeError traceback. (30,000 rows: far more than a
    pipe's 64 KiB buffer, so the writer meets the closed pipe.)"""
    process = subprocess.Popen(
        [*OSTEO, "sql", "--out", str(out), "SELECT * FROM range(30000)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.readline()
    process.stdout.close()  # the reader goes away, as head does
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) in (0, 141)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_tables_fit_the_terminal(out, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    assert main(["sql", "--out", str(out), "--format", "table", "SELECT * FROM screening"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 70
    # 18 columns cannot be read side by side in 70 characters: still one line per exam (no block per row),
    # the columns that fit from the left, and a line naming the others
    exams = pl.read_parquet(Path(out) / "screening.parquet").height
    assert lines[0].split()[0] == "exam_id" and "── row 1 " not in "\n".join(lines)
    assert all(line.startswith("X") for line in lines[2 : 2 + exams])  # each exam's line starts with its id
    note, count = " ".join(lines[2 + exams : -1]), lines[-1]
    assert note.startswith("not shown, too wide for 70 columns: ") and "rule_set" in note
    assert count == f"{exams:,} row(s)"
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["sql", "--out", str(out), "--format", "table", "SELECT patient_id, eligibility FROM patients"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("patient_id  eligibility") and max(len(line) for line in text.splitlines()) <= 200


def test_a_terminal_sees_fifty_rows_and_how_many_more():
    frame = pl.DataFrame({"n": range(120)})
    screen = Terminal()
    write_frame(frame, "table", stream=screen)
    lines = screen.getvalue().splitlines()
    assert f"… {120 - TERMINAL_ROWS} more row(s)" in lines[-2] and lines[-1] == "120 row(s)"
    assert [line.strip() for line in lines[2:-2]] == [str(n) for n in range(TERMINAL_ROWS)]
    piped = io.StringIO()
    write_frame(frame, "table", stream=piped)
    assert "more row" not in piped.getvalue() and [line.strip() for line in piped.getvalue().splitlines()[2:-1]] == [
        str(n) for n in range(120)
    ]


def test_without_format_a_pipe_gets_csv(out, capsys, monkeypatch):
    """Before: ``osteo gaps > file`` wrote a box-drawn table (25,642 lines for the demo, in 23 s). Without
    --format, gaps, worklist and sql write CSV to anything that is not a terminal; measures stays a table."""
    monkeypatch.setenv("COLUMNS", "80")
    for command in (["gaps"], ["worklist"], ["sql", "SELECT * FROM care_gaps"]):
        assert main([*command, "--out", str(out), "--format", "csv"]) == 0
        as_csv = capsys.readouterr().out
        assert main([*command, "--out", str(out)]) == 0
        assert capsys.readouterr().out == as_csv, command
        assert as_csv.startswith("patient_id,") and pl.read_csv(io.StringIO(as_csv)).height > 0
    assert main(["gaps", "--out", str(out), "--format", "table"]) == 0  # asked for: a table, even to a pipe
    assert capsys.readouterr().out.startswith("priority  gap ")
    for command in ("gaps", "worklist", "sql"):
        assert "default: table on a terminal, csv to a pipe or a file" in " ".join(_help(command).split())


def _help(command: str) -> str:
    return _subcommands(build_parser())[command].format_help()


def test_a_terminal_without_format_gets_a_table(out, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    assert main(["gaps", "--out", str(out)]) == 0
    lines = screen.getvalue().splitlines()
    assert lines[0].startswith("priority  gap ") and max(len(line) for line in lines) <= 80


def test_limit_applies_to_every_format(out, capsys):
    assert main(["sql", "--out", str(out), "--format", "csv", "--limit", "3", "SELECT * FROM screening"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert main(["gaps", "--out", str(out), "--format", "json", "--limit", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


@pytest.mark.parametrize("limit", ["-1", "-5", "x", "1.5"])
def test_a_limit_below_zero_is_a_usage_error(out, capsys, limit):
    """Before: ``--limit -1`` dropped the last row without a word (1,918 of 1,919)."""
    assert main(["sql", "--out", str(out), "--limit", limit, "SELECT * FROM range(3)"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "argument --limit: must be" in captured.err and "0 or more" in captured.err
    assert "0 or more (0: only the column names" in " ".join(_help("sql").split())


def test_limit_zero_writes_the_column_names_only(out, capsys):
    query = "SELECT exam_id, patient_id FROM screening"
    assert main(["sql", "--out", str(out), "--format", "csv", "--limit", "0", query]) == 0
    assert capsys.readouterr().out == "exam_id,patient_id\n"
    assert main(["sql", "--out", str(out), "--format", "json", "--limit", "0", query]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["sql", "--out", str(out), "--format", "table", "--limit", "0", query]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["exam_id", "patient_id"] and "more row(s)" in lines[2]


def test_a_blob_is_written_as_hexadecimal(out):
    """Before: ``osteo sql … "select 'x'::BLOB" > f`` ended in a traceback (CSV) or a Rust panic (JSON)."""
    query = "SELECT 'x'::BLOB AS b, [x'00ff'::BLOB] AS bs, NULL::BLOB AS n"
    expected = {"csv": 'b,bs,n\n78,"[""00ff""]",\n', "json": '[{"b":"78","bs":["00ff"],"n":null}]\n'}
    for fmt in (None, "json"):
        args = ["--format", fmt] if fmt else []
        done = subprocess.run([*OSTEO, "sql", "--out", str(out), *args, query], capture_output=True, timeout=120)
        assert (done.returncode, done.stderr) == (0, b"")
        assert done.stdout.decode() == expected[fmt or "csv"]


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("SELECT 1 AS n, INTERVAL 1 DAY AS i", 'column 2 "i" is INTERVAL'),
        ("SELECT [INTERVAL 1 DAY] AS i", 'column 1 "i" is INTERVAL[]'),  # Polars panicked on this one
        ("SELECT '101'::BIT AS b", 'column 1 "b" is BIT'),  # its internal bytes would read as another value
        ("SELECT union_value(k := 1) AS u", 'column 1 "u" is UNION(k INTEGER)'),
        ("SELECT 1::BIGNUM AS big", 'cannot write column 1 "big" of type Extension'),
        ("SELECT 'infinity'::DATE AS d", 'cannot write column 1 "d": it holds a date outside the years 1 to 9999'),
    ],
)
@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_a_column_osteo_cannot_write_is_one_line_and_exit_2(out, capfd, query, said, fmt):
    """Before: a Polars error or a Rust panic, and a Python traceback, exit 1."""
    assert main(["sql", "--out", str(out), "--format", fmt, query]) == 2
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and said in captured.err, captured.err[-400:]
    assert captured.err.startswith("osteo: ") and "::VARCHAR" in captured.err


def test_a_sql_error_does_not_show_a_cell(out, capsys):
    """Before: ``Could not convert string 'P0000123' to INT32``: an input's cell (a patient id) in the message."""
    patients = pl.read_parquet(Path(out) / "patients.parquet")["patient_id"].to_list()
    for query, kept in [
        ("SELECT patient_id::INT FROM patients", "Could not convert string '…' to INT32"),
        ("SELECT patient_id::DATE FROM patients", 'invalid date field format: "…"'),
        ("SELECT patient_id::STRUCT(x INT) FROM patients", "with value '…' can't be cast to the destination type"),
        ("SELECT nope FROM screening", 'Referenced column "nope" not found'),  # a name the query wrote stays
    ]:
        assert main(["sql", "--out", str(out), query]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("osteo: SQL error: ") and kept in err, err
        assert not any(p in err for p in patients)


def test_csv_holds_lists_as_json(out, capsys):
    """Before: ``--format csv`` of a query with ``eligibility_reasons`` stopped with a Polars error."""
    query = "SELECT exam_id, eligibility_reasons FROM screening WHERE len(eligibility_reasons) > 1 LIMIT 1"
    assert main(["sql", "--out", str(out), "--format", "csv", query]) == 0
    frame = pl.read_csv(io.StringIO(capsys.readouterr().out))
    reasons = json.loads(frame.item(0, "eligibility_reasons"))
    assert isinstance(reasons, list) and len(reasons) > 1


def test_parquet_refuses_a_terminal():
    with pytest.raises(OsteoError, match="redirect it to a file"):
        write_frame(pl.DataFrame({"a": [1]}), "parquet", stream=Terminal())


def test_parquet_to_a_terminal_is_exit_2_through_the_command(out):
    primary, secondary = os.openpty()
    try:
        done = subprocess.run(
            [*OSTEO, "sql", "--out", str(out), "--format", "parquet", "SELECT 1 AS a"],
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1 and "redirect it to a file" in done.stderr.decode()


def test_gaps_as_parquet(out, capsysbinary):
    assert main(["gaps", "--out", str(out), "--format", "parquet"]) == 0
    gaps = pl.read_parquet(io.BytesIO(capsysbinary.readouterr().out))
    assert gaps.height > 0 and gaps.columns == pl.read_parquet(Path(out) / "care_gaps.parquet").columns


def test_sql_tables_is_a_table_with_every_column_described(capsys):
    assert main(["sql", "--tables", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["table"] for r in rows} >= {"screening", "care_gaps", "untreated_high_risk"}
    assert all(r["description"] for r in rows)
