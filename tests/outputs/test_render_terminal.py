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
        # bidirectional marks and zero-width characters: invisible, they reorder or disguise what is shown
        ("left\u200eto", "left\\u200eto"),
        ("right\u200fto", "right\\u200fto"),
        ("arabic\u061cmark", "arabic\\u061cmark"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("non\u200cjoiner", "non\\u200cjoiner"),
        ("joiner\u200d", "joiner\\u200d"),
        ("word\u2060joiner", "word\\u2060joiner"),
        ("byte\ufefforder", "byte\\ufefforder"),
        ("tag\U000e0041", "tag\\U000e0041"),  # a tag character: hidden text after an emoji
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


LONG_ID = "urn-uuid-7f3e2a10-9b1c-4d2e-8f00-0000112"  # 40 characters, over KEEP_WHOLE


def test_a_long_id_is_never_cut(monkeypatch):
    """Before: an id over 24 characters was 'long text' and shrank: ``urn-uuid-7f3…``, another id to a reader."""
    frame = _gaps(2).with_columns(pl.Series("patient_id", [LONG_ID, LONG_ID.replace("0112", "0113")]))
    lines = _table(frame, monkeypatch, 120)
    assert max(render.display_width(line) for line in lines) <= 120 and lines[0].split() == frame.columns
    assert [line.split()[2] for line in lines[2:4]] == frame["patient_id"].to_list()  # whole, both told apart
    assert lines[2].endswith("…")  # the detail shrinks instead


@pytest.mark.parametrize("name", ["mrn", "MRN", "exam_id", "pcp_id", "id", "npi"])
def test_an_id_that_does_not_fit_leaves_columns_out_rather_than_being_cut(monkeypatch, name):
    """Ids too long to fit beside the other columns: those at the right are left out and named; no id is cut."""
    ids = [LONG_ID, LONG_ID[::-1]]
    frame = pl.DataFrame({"gap": ["post_fracture_untreated"] * 2, name: ids, "other_id": ids, "note": [DETAIL] * 2})
    lines = _table(frame, monkeypatch, 80)
    assert max(render.display_width(line) for line in lines) <= 80
    assert [line.split()[:2] for line in lines[2:4]] == [["post_fracture_untreated", i] for i in ids]
    assert "…" not in "".join(lines[:4])
    assert " ".join(lines[4:-1]) == "not shown, too wide for 80 columns: other_id, note (--format csv has all)"


def test_text_that_is_not_an_id_still_shrinks(monkeypatch):
    frame = pl.DataFrame({"idea": [LONG_ID * 3], "paid": [LONG_ID * 3]})  # names near an id's, not ids
    assert not any(map(render.is_identifier, frame.columns))
    lines = _table(frame, monkeypatch, 80)
    assert len(lines[2].split()) == 2 and lines[2].count("…") == 2


def test_binary_cells_are_hexadecimal_in_every_text_format(monkeypatch):
    """Before: a table showed Python's ``b'x\\x00'``; CSV stopped with a Polars error and JSON with a Rust panic."""
    frame = pl.DataFrame(
        {"blob": [b"x\x00\xff", None], "blobs": [[b"\x1b"], []], "record": [{"b": b"\x01"}, None]},
        schema={"blob": pl.Binary, "blobs": pl.List(pl.Binary), "record": pl.Struct({"b": pl.Binary})},
    )
    piped = io.StringIO()
    write_frame(frame, "csv", stream=piped)
    assert piped.getvalue().splitlines() == ["blob,blobs,record", '7800ff,"[""1b""]","{""b"": ""01""}"', ",[],"]
    piped = io.StringIO()
    write_frame(frame, "json", stream=piped)
    assert json.loads(piped.getvalue()) == [
        {"blob": "7800ff", "blobs": ["1b"], "record": {"b": "01"}},
        {"blob": None, "blobs": [], "record": None},
    ]
    lines = _table(frame, monkeypatch, 80)
    assert lines[2].split()[:2] == ["7800ff", "1b"] and "\\x" not in "".join(lines)


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
@pytest.mark.parametrize(
    "column",
    [
        pl.Series("when", [2_147_483_647, None], dtype=pl.Int32).cast(pl.Date),  # DuckDB's DATE 'infinity'
        pl.Series("at", [2**62], dtype=pl.Int64).cast(pl.Datetime("us")),  # year 146,140
        pl.Series("days", [[2_000_000_000]], dtype=pl.List(pl.Int32)).cast(pl.List(pl.Date)),
        pl.Series("thing", [object()], dtype=pl.Object),
    ],
    ids=["infinity", "far_future", "in_a_list", "object"],
)
def test_a_column_the_writers_cannot_hold_is_one_error_naming_it(capfd, fmt, column):
    """Before: Polars panicked (a Rust backtrace on stderr) or raised its own error, a traceback from ``osteo``."""
    from osteo_core.errors import OsteoError

    frame = pl.DataFrame([pl.Series("n", range(column.len())), column])
    with pytest.raises(OsteoError, match=f'^--format {fmt} cannot write column 2 "{column.name}"') as raised:
        write_frame(frame, fmt, stream=io.StringIO())
    assert "\n" not in str(raised.value) and "panicked" not in capfd.readouterr().err


def test_a_negative_limit_is_refused():
    """Before: ``frame.head(-1)``, every row but the last."""
    from osteo_core.errors import OsteoError

    with pytest.raises(OsteoError, match="--limit must be 0 or more"):
        write_frame(pl.DataFrame({"a": [1, 2]}), "csv", limit=-1, stream=io.StringIO())


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
