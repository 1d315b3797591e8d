"""Issue 27 §3: a table fits the terminal with one line per row (long text cut with …, short columns whole),
shows control characters escaped, and draws thousands of rows without Rich."""

import datetime as dt
import io
import json

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osteo_core.outputs import render
from osteo_core.outputs.render import write_frame

DETAIL = "last denosumab dose 2011-12-29; next dose overdue since 2012-07-27, and a long tail of further words"


def _gaps(rows: int = 5) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "priority": [1] * rows,
            "gap": ["post_fracture_untreated"] * rows,
            "patient_id": [f"P{n:07d}" for n in range(rows)],
            "since": [dt.date(2012, 7, 27) + dt.timedelta(days=n) for n in range(rows)],
            "detail": [DETAIL + f" #{n}" for n in range(rows)],
        }
    )


def _table(frame: pl.DataFrame, monkeypatch, width: int) -> list[str]:
    monkeypatch.setenv("COLUMNS", str(width))
    piped = io.StringIO()
    write_frame(frame, "table", stream=piped)
    return piped.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_one_line_per_row_within_the_width(monkeypatch, width):
    """Before: Rich wrapped each detail over several lines (80: four), or a wide table became one block per row."""
    frame = _gaps()
    lines = _table(frame, monkeypatch, width)
    assert len(lines) == 2 + frame.height + 1 and lines[-1] == "5 row(s)"
    assert max(render.display_width(line) for line in lines) <= width
    assert lines[0].split() == frame.columns and set(lines[1]) <= {"─", " "}
    for line, row in zip(lines[2:-1], frame.iter_rows(named=True), strict=True):
        # short columns whole, in order; the long detail cut with an ellipsis
        assert line.split()[:4] == ["1", "post_fracture_untreated", row["patient_id"], row["since"].isoformat()]
        assert line.endswith("…") and DETAIL[:10] in line


def test_wide_text_fits_a_wide_terminal_whole(monkeypatch):
    lines = _table(_gaps(2), monkeypatch, 200)
    assert lines[2].endswith(DETAIL + " #0") and "…" not in "".join(lines)


def test_a_worklist_wide_table_at_120_keeps_every_column(monkeypatch):
    """Nine short columns (105 characters of names and cells, 121 with the gaps): names wider than their
    cells are cut, never an id, a code or a date; every column stays."""
    frame = pl.DataFrame(
        {
            "priority": [1],
            "gap": ["post_fracture_untreated"],
            "patient_id": ["P0003293"],
            "since": ["2012-07-27"],
            "first_seen": ["2026-12-06"],
            "status": ["persisting"],
            "days_open": [12],
            "outreach_status": ["not_appropriate"],
            "marked_on": ["2026-12-06"],
        }
    )
    lines = _table(frame, monkeypatch, 120)
    assert len(lines) == 4 and max(len(line) for line in lines) <= 120
    assert lines[2].split() == ["1", *frame.row(0)[1:6], "12", "not_appropriate", "2026-12-06"]
    names = lines[0].split()
    assert len(names) == frame.width and "…" in lines[0]
    assert all(n == c or (n.endswith("…") and c.startswith(n[:-1])) for n, c in zip(names, frame.columns, strict=True))


def test_too_many_columns_leave_out_the_rightmost_and_say_which(monkeypatch):
    frame = pl.DataFrame({f"column_{n:02d}": [f"value-{n:02d}"] for n in range(12)})
    lines = _table(frame, monkeypatch, 80)
    assert max(len(line) for line in lines) <= 80 and lines[-1] == "1 row(s)"
    shown = lines[0].split()
    assert shown == frame.columns[: len(shown)] and lines[2].split() == [f"value-{n:02d}" for n in range(len(shown))]
    note = " ".join(lines[3:-1])  # wrapped within the width
    assert (
        note == f"not shown, too wide for 80 columns: {', '.join(frame.columns[len(shown) :])} (--format csv has all)"
    )


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # ESC: a colour, or worse, sent to the terminal
        ("bell\x07", "bell\\x07"),
        ("del\x7f", "del\\x7f"),
        ("csi\x9b2J", "csi\\x9b2J"),  # C1
        ("two\nlines\r", "two\\nlines\\r"),
        ("tab\there", "tab\\there"),
        ("\u202eright-to-left", "\\u202eright-to-left"),
    ],
)
def test_control_characters_are_shown_escaped(monkeypatch, cell, shown):
    """Before: a note or roster cell with ``\\x1b[31m`` reached the terminal raw."""
    frame = pl.DataFrame({"patient_id": ["P1"], "note": [cell], "flag\x1b]0;title\x07": [True]})
    lines = _table(frame, monkeypatch, 80)
    assert len(lines) == 4 and lines[2].split()[:2] == ["P1", shown]
    assert "flag\\x1b]0;title\\x07" in lines[0]
    assert all(render._CONTROL.search(line) is None for line in lines)
    piped = io.StringIO()  # CSV and JSON keep every character
    write_frame(frame, "csv", stream=piped)
    assert pl.read_csv(io.StringIO(piped.getvalue())).equals(frame)
    piped = io.StringIO()
    write_frame(frame, "json", stream=piped)
    assert json.loads(piped.getvalue()) == frame.to_dicts()


def test_a_table_to_a_pipe_without_columns_is_120_wide(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)

    def no_terminal(fd):
        raise OSError("not a terminal")

    monkeypatch.setattr("os.get_terminal_size", no_terminal)
    piped = io.StringIO()
    write_frame(_gaps(), "table", stream=piped)  # as osteo gaps --format table > file
    lines = piped.getvalue().splitlines()
    assert render.DEFAULT_WIDTH == 120 and len(lines) == 2 + 5 + 1
    assert max(len(line) for line in lines) == 120  # the detail fills the width, cut


def test_ten_thousand_rows_are_drawn_one_line_each(monkeypatch):
    """Before: Rich drew the demo's 17,706 gaps as 25,642 lines in 19 s; the hand-made table draws each row
    once (this test asserts the shape, not a time: bench numbers are in the report)."""
    frame = _gaps(10_000)
    lines = _table(frame, monkeypatch, 120)
    assert len(lines) == 2 + 10_000 + 1 and max(len(line) for line in lines) <= 120


def test_numbers_and_times_are_never_cut(monkeypatch):
    """A timestamp (25 characters and more) is not 'long text': the note beside it shrinks instead."""
    marked = dt.datetime(2026, 12, 6, 23, 43, 22, 123456, tzinfo=dt.UTC)
    frame = pl.DataFrame({"marked_at": [marked], "amount": [-123456789.125], "note": [DETAIL * 2]})
    lines = _table(frame, monkeypatch, 80)
    assert len(lines) == 4 and max(len(line) for line in lines) <= 80
    assert lines[2].split()[:2] == [marked.isoformat(), "-123456789.125"] and lines[2].endswith("…")


def test_wide_characters_count_as_two_columns(monkeypatch):
    frame = pl.DataFrame({"id": ["P1"], "note": ["骨粗鬆症の検査が必要です。" * 8]})
    lines = _table(frame, monkeypatch, 80)
    assert len(lines) == 4 and max(render.display_width(line) for line in lines) <= 80 and lines[2].endswith("…")


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    columns=st.lists(_TEXT, min_size=1, max_size=6),
    width=st.integers(min_value=80, max_value=200),
    data=st.data(),
)
def test_any_table_is_one_line_per_row_within_the_width(monkeypatch, columns, width, data):
    rows = data.draw(st.integers(min_value=1, max_value=4))
    frame = pl.DataFrame(
        {f"c{n}_{name[:8]}": [data.draw(_TEXT) for _ in range(rows)] for n, name in enumerate(columns)}
    )
    lines = _table(frame, monkeypatch, width)
    footer = lines[2 + rows :]
    assert footer[-1] == f"{rows} row(s)" and (len(footer) == 1 or footer[0].startswith("not shown, too wide"))
    assert all(render.display_width(line) <= width for line in lines[: 2 + rows])
    assert all(render._CONTROL.search(line) is None for line in lines)
