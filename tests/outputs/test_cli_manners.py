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
from osteo_core.cli import build_parser, main
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
    assert main(["sql", "--out", str(out), "SELECT * FROM screening"]) == 0
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 70
    # 18 columns cannot be read side by side in 70 characters: one block per exam, every column named
    assert "── row 1 " in text and all(f"\n{c} " in text for c in ("exam_id", "who_category", "rule_set"))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["sql", "--out", str(out), "SELECT patient_id, eligibility FROM patients"]) == 0
    text = capsys.readouterr().out
    assert "┃ patient_id ┃ eligibility " in text and max(len(line) for line in text.splitlines()) <= 200


def test_a_terminal_sees_fifty_rows_and_how_many_more():
    frame = pl.DataFrame({"n": range(120)})
    screen = Terminal()
    write_frame(frame, "table", stream=screen)
    text = screen.getvalue()
    assert f"… {120 - TERMINAL_ROWS} more row(s)" in text and "120 row(s)" in text
    assert str(TERMINAL_ROWS - 1) in text and f"│ {TERMINAL_ROWS} " not in text
    piped = io.StringIO()
    write_frame(frame, "table", stream=piped)
    assert "more row" not in piped.getvalue() and "│ 119 │" in piped.getvalue()


def test_limit_applies_to_every_format(out, capsys):
    assert main(["sql", "--out", str(out), "--format", "csv", "--limit", "3", "SELECT * FROM screening"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert main(["gaps", "--out", str(out), "--format", "json", "--limit", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


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
