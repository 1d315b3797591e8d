"""One way to print a listing, for every command (``osteo sql``, ``gaps``, ``worklist``, ``measures``, ``demo``).

Formats: ``table`` (below), at most ``limit`` rows (50 by default on a terminal, all when piped), then
"… N more rows"; ``csv`` (every text cell made safe for spreadsheets: ``csv_safety``, unless ``raw``) and
``json`` give every row unless ``--limit`` is given; ``parquet`` is binary and refuses a terminal. Without
``--format``, ``gaps``, ``worklist`` and ``sql`` write a table to a terminal and CSV to a pipe or a file
(``default_format``). JSON, Parquet and CSV keep every character of every cell; only the table cuts.
``--limit`` is 0 or more (``row_limit``); ``--limit 0`` writes no row, only the column names (the header of a
table or a CSV, ``[]`` in JSON, an empty Parquet file with the columns): a way to see what a query returns.

Binary cells (DuckDB's ``BLOB``, at any depth in a list or a record) are written as lowercase hexadecimal text
in CSV, JSON and the table (``x'1fff'`` → ``1fff``); Parquet keeps the bytes. A column the writers cannot hold
(an Arrow extension type, a Python object, a map holding binary) or a date or time outside the years 1 to 9999
(DuckDB's ``'infinity'``) stops the command with one line naming the column (``OsteoError``, exit 2), before
anything is written.

The table is drawn by hand (fixed-width columns two spaces apart, a header and a rule under it), one line
per row, never wrapped and never wider than ``terminal_width()``. When the columns do not all fit:

1. every column at its natural width (its widest cell, or its name) when they fit;
2. else the long text columns (cells over ``KEEP_WHOLE`` characters: details, notes, lists) shrink, sharing
   the room the other columns leave (one that needs less than its share leaves the rest to the others), to
   no less than ``LONG_FLOOR``: their cells are cut, ending in ``…``;
3. else column names wider than their cells are cut (those that overhang their cells the most first, to no
   less than ``HEADER_FLOOR``, the cells' width, or one character past the start it shares with another
   name): a short cell (an id, a code, a date, a number) is never cut, since a cut id or number reads as
   another one;
4. else the line is trimmed: the columns that still do not fit are left out from the right (the others keep
   their order) and a line under the table names them (a wider terminal, fewer columns or ``--format csv``
   show them). A lone column wider than the screen is cut to it.

An identifier column (``is_identifier``: a name ending in ``_id``, or one of ``ID_COLUMNS`` such as ``mrn``) is
never long text, whatever the length of its cells: step 2 does not shrink it, so an id of 40 characters is shown
whole and, if it does not fit beside the others, columns are left out from the right (step 4). The one exception
is an identifier wider than the whole screen as the only column left, which is cut to the screen.

Control and invisible formatting characters in a cell or a name (C0 such as ESC, DEL, C1, Unicode's
bidirectional marks and line separators, zero-width characters: ``terminal_text``) are shown escaped
(``\\x1b``, ``\\n``, ``\\u202e``, ``\\u200b``), never sent raw to the terminal. Wide characters (e.g. CJK) count
as two columns.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import textwrap
import unicodedata
from typing import IO, TYPE_CHECKING

from osteo_core.errors import OsteoError
from osteo_core.terminal_text import CONTROL as _CONTROL  # noqa: F401 (render._CONTROL: the set escaped)
from osteo_core.terminal_text import escape_controls

if TYPE_CHECKING:  # the CLI imports this module for --help: no Polars until a table is printed
    import polars as pl

FORMATS = ("table", "csv", "json", "parquet")
TERMINAL_ROWS = 50  # rows a table shows on a terminal unless --limit says otherwise
DEFAULT_WIDTH = 120  # when neither COLUMNS nor a terminal says how wide
GAP = "  "  # between two columns
KEEP_WHOLE = 24  # cells up to this long (ids, dates, codes) are never cut; longer text shrinks first
LONG_FLOOR = 12  # a long text column is not cut narrower than this before columns are left out
HEADER_FLOOR = 4  # a column name is not cut shorter than this (nor than the column's cells)
ELLIPSIS = "…"
ID_COLUMNS = frozenset({"id", "mrn", "npi", "accession", "identifier"})  # identifiers besides the names in _id


def is_identifier(name: str) -> bool:
    """A column of identifiers (never cut in a table): a name ending in ``_id``, or one of ``ID_COLUMNS``."""
    lowered = name.lower()
    return lowered.endswith("_id") or lowered in ID_COLUMNS


def row_limit(text: str) -> int:
    """``--limit N``: a whole number, 0 or more (0: the column names only); else one line and exit 2."""
    try:
        limit = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, not {text!r}") from None
    if limit < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {limit} (0 writes the column names only)")
    return limit


def terminal_width() -> int:
    """``COLUMNS``, else the width of the terminal on stdout, else on stderr (``osteo gaps | head`` still
    fits the screen it ends on), else 120."""
    import os

    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            return os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            continue
    return DEFAULT_WIDTH


def _is_terminal(stream: IO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def default_format(stream: IO | None = None) -> str:
    """A listing without ``--format``: a table on a terminal, CSV to a pipe or a file."""
    return "table" if _is_terminal(stream or sys.stdout) else "csv"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes (after ``escape_controls``)."""
    return len(text) if text.isascii() else sum(_char_width(c) for c in text)


def cut(text: str, width: int) -> str:
    """``text`` if it fits in ``width`` columns, else its start and ``…`` in exactly ``width`` columns or less."""
    if display_width(text) <= width:
        return text
    if width <= 0:
        return ""
    if text.isascii():
        return text[: width - 1] + ELLIPSIS
    kept, used = [], 0
    for char in text:
        used += _char_width(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + ELLIPSIS


def _pad(text: str, width: int, right: bool) -> str:
    text = cut(text, width)
    room = width - display_width(text)
    return " " * room + text if right else text + " " * room


def _total(widths: list[int]) -> int:
    return sum(widths) + len(GAP) * max(0, len(widths) - 1)


def _level(widths: list[int], floors: list[int], budget: int) -> list[int]:
    """``widths`` capped at one level (the widest cut first, none below its floor): the highest level whose sum
    is within ``budget``; the floors when even they are over it."""
    if sum(widths) <= budget:
        return widths
    low, high = 0, max(widths, default=0)
    while low < high:  # the highest cap whose widths fit
        cap = (low + high + 1) // 2
        if sum(max(f, min(w, cap)) for w, f in zip(widths, floors, strict=True)) <= budget:
            low = cap
        else:
            high = cap - 1
    return [max(f, min(w, low)) for w, f in zip(widths, floors, strict=True)]


def layout(names: list[int], cells: list[int], long: list[bool], width: int, least: list[int]) -> list[int]:
    """Column widths (steps 1 to 3 of the module's rule), given the widths of the column names, of each
    column's widest cell, which columns are long text, and the least width each name can be cut to; the sum
    may still exceed ``width`` (step 4 is the caller's)."""
    widths = [max(n, c) for n, c in zip(names, cells, strict=True)]
    if _total(widths) <= width:
        return widths
    picked = [i for i, is_long in enumerate(long) if is_long]  # 2. long text shrinks
    if picked:
        budget = width - (_total(widths) - sum(widths[i] for i in picked))
        shrunk = _level([widths[i] for i in picked], [LONG_FLOOR] * len(picked), budget)
        for i, w in zip(picked, shrunk, strict=True):
            widths[i] = min(widths[i], w)
    if _total(widths) <= width:
        return widths
    picked = [i for i, is_long in enumerate(long) if not is_long]  # 3. names wider than their cells are cut
    floors = [min(widths[i], max(cells[i], least[i])) for i in picked]
    spare = [widths[i] - floor for i, floor in zip(picked, floors, strict=True)]  # the name's overhang
    budget = sum(spare) - (_total(widths) - width)
    for i, floor, kept in zip(picked, floors, _level(spare, [0] * len(spare), budget), strict=True):
        widths[i] = floor + kept
    return widths


def _columns(frame: pl.DataFrame) -> tuple[list[str], list[list[str]], list[bool], list[bool]]:
    """Escaped names, escaped cells per column, which columns are numbers (right-aligned), and which are
    text (numbers, dates, times and booleans are never cut)."""
    import polars as pl

    names = [escape_controls(name) for name in frame.columns]
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    text = [not (dtype.is_numeric() or dtype.is_temporal() or dtype == pl.Boolean) for dtype in frame.dtypes]
    cells = []
    for series, is_text in zip(frame.iter_columns(), text, strict=True):
        if is_text:
            cells.append([escape_controls(_cell(v)) for v in series.to_list()])
        else:
            cells.append([_cell(v) for v in series.to_list()])  # no control character in these
    return names, cells, numeric, text


def _least_name_width(name: str, names: list[str]) -> int:
    """The narrowest ``name`` can be cut to: ``HEADER_FLOOR``, and still one character past what it shares
    with the start of another column's name (``outreach_s…``, ``outreach_m…``), then the ellipsis."""
    import os

    shared = max((len(os.path.commonprefix([name, other])) for other in names if other != name), default=0)
    return max(HEADER_FLOOR, display_width(name[: shared + 1]) + 1)


def draw(frame: pl.DataFrame, width: int) -> tuple[list[str], list[str]]:
    """The table's lines (a header, a rule, one line per row), each at most ``width`` columns; and the names
    of the columns left out at the right because they did not fit."""
    names, cells, numeric, text = _columns(frame)
    name_widths = [display_width(n) for n in names]
    cell_widths = [max((display_width(c) for c in column), default=0) for column in cells]
    is_long = [
        is_text and w > KEEP_WHOLE and not is_identifier(name)
        for is_text, w, name in zip(text, cell_widths, frame.columns, strict=True)
    ]
    least = [_least_name_width(name, names) for name in names]
    shown = len(names)
    widths = layout(name_widths, cell_widths, is_long, width, least)
    while shown > 1 and _total(widths) > width:  # 4. trim: leave out columns from the right
        shown -= 1
        widths = layout(name_widths[:shown], cell_widths[:shown], is_long[:shown], width, least[:shown])
    if _total(widths) > width:  # one column wider than the screen
        widths = [max(1, width)]
    right = numeric[:shown]
    lines = [
        GAP.join(_pad(n, w, r) for n, w, r in zip(names[:shown], widths, right, strict=True)).rstrip(),
        GAP.join("─" * w for w in widths),
    ]
    for row in zip(*cells[:shown], strict=True):
        lines.append(GAP.join(_pad(c, w, r) for c, w, r in zip(row, widths, right, strict=True)).rstrip())
    return lines, names[shown:]


def _flat(frame: pl.DataFrame) -> pl.DataFrame:
    """Lists and records as JSON text (``["a", "b"]``), which CSV cannot hold otherwise."""
    import json

    import polars as pl

    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns(
        pl.col(name).map_elements(
            lambda v: json.dumps(v.to_list() if hasattr(v, "to_list") else v, default=str),
            return_dtype=pl.Utf8,
        )
        for name in nested
    )


_DATE_DAYS = (-719_162, 2_932_896)  # 0001-01-01 and 9999-12-31, in days from 1970-01-01
_DATETIME_SECONDS = (-62_135_596_800, 253_402_300_799)  # the same, in seconds
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _holds_binary(dtype) -> bool:
    import polars as pl

    if dtype == pl.Binary:
        return True
    if isinstance(dtype, pl.List | pl.Array):
        return _holds_binary(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_holds_binary(field.dtype) for field in dtype.fields)
    return False


def _unwritable(dtype) -> bool:
    """A type CSV, JSON or the table cannot hold (Polars stops, or panics, on it): an Arrow extension (DuckDB's
    BIGNUM, VARIANT, GEOMETRY), a Python object, an unknown type, or a map holding binary."""
    import polars as pl

    if dtype.is_numeric() or dtype.is_temporal() or dtype == pl.Binary:
        return False
    if any(dtype == kind for kind in (pl.Boolean, pl.Utf8, pl.Categorical, pl.Enum, pl.Null)):
        return False
    if isinstance(dtype, pl.List | pl.Array):
        return _unwritable(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_unwritable(field.dtype) for field in dtype.fields)
    if isinstance(dtype, pl.Map):  # written as a record; one holding binary makes the JSON writer panic
        return any(_unwritable(part) or _holds_binary(part) for part in (dtype.key, dtype.value))
    return True


def _hexed(expr, dtype):
    """``expr`` with every binary value in it as lowercase hexadecimal text (lists, arrays and records too)."""
    import polars as pl

    if dtype == pl.Binary:
        return expr.bin.encode("hex")
    if isinstance(dtype, pl.Array):
        expr, dtype = expr.arr.to_list(), pl.List(dtype.inner)
    if isinstance(dtype, pl.List):
        return expr.list.eval(_hexed(pl.element(), dtype.inner))
    if isinstance(dtype, pl.Struct):
        fields = [_hexed(expr.struct.field(f.name), f.dtype).alias(f.name) for f in dtype.fields]
        return pl.when(expr.is_not_null()).then(pl.struct(fields))
    return expr


def _out_of_range(series: pl.Series) -> bool:
    """Whether a date or time in ``series`` (at any depth) is outside the years 1 to 9999, which Python and the
    CSV and JSON writers cannot show (DuckDB's ``'infinity'``). Read from the stored integers, never converted."""
    import polars as pl

    dtype = series.dtype
    if isinstance(dtype, pl.Array):
        return _out_of_range(series.arr.to_list())
    if isinstance(dtype, pl.List):
        return _out_of_range(series.explode())
    if isinstance(dtype, pl.Struct):
        return any(_out_of_range(series.struct.field(f.name)) for f in dtype.fields)
    if dtype == pl.Date:
        low, high = _DATE_DAYS
    elif isinstance(dtype, pl.Datetime):
        low, high = (bound * _PER_SECOND[dtype.time_unit or "us"] for bound in _DATETIME_SECONDS)
        low, high = max(low, -(2**63)), min(high, 2**63 - 1)  # nanoseconds: every stored value is in range
    else:
        return False
    stored = series.to_physical()
    return bool(((stored < low) | (stored > high)).any())


def _column_label(frame: pl.DataFrame, position: int) -> str:
    return f'column {position + 1} "{escape_controls(frame.columns[position])}"'


def writable(frame: pl.DataFrame, fmt: str) -> pl.DataFrame:
    """``frame`` ready for ``fmt`` (CSV, JSON, table; Parquet takes it as it is): binary cells as hexadecimal
    text, durations as ISO 8601 text in CSV (``P3DT5S``, as JSON writes them). A column the writer cannot hold (its
    type, or a date outside the years 1 to 9999) is one ``OsteoError`` naming it, before anything is written,
    rather than a Polars error or a Rust panic on the way out."""
    import polars as pl

    if fmt == "parquet":
        return frame
    for position, (name, dtype) in enumerate(frame.schema.items()):
        if _unwritable(dtype):
            raise OsteoError(
                f"--format {fmt} cannot write {_column_label(frame, position)} of type {escape_controls(str(dtype))}:"
                " convert it in the query (e.g. ::VARCHAR) or use --format parquet"
            )
        if (dtype.is_temporal() or dtype.is_nested()) and _out_of_range(frame.get_column(name)):
            raise OsteoError(
                f"--format {fmt} cannot write {_column_label(frame, position)}: it holds a date outside the years"
                " 1 to 9999 (such as 'infinity'); convert it in the query (e.g. ::VARCHAR) or use --format parquet"
            )
    changed = [_hexed(pl.col(name), dtype).alias(name) for name, dtype in frame.schema.items() if _holds_binary(dtype)]
    if fmt == "csv":
        changed += [pl.col(name).dt.to_string("iso") for name, dtype in frame.schema.items() if dtype == pl.Duration]
    return frame.with_columns(changed) if changed else frame


def write_frame(
    frame: pl.DataFrame,
    fmt: str = "table",
    limit: int | None = None,
    stream: IO | None = None,
    noun: str = "row",
    raw: bool = False,
    total: int | None = None,
) -> None:
    """Write ``frame`` to ``stream`` (stdout) in ``fmt``. ``limit`` None: 50 table rows on a terminal, else all;
    else 0 or more. ``raw``: CSV cells exactly as stored (no quote before a formula-like cell); other formats are
    always so. ``total``: how many rows the whole result has when ``frame`` holds only its first ``limit`` (a
    query that stopped there: ``shown_rows``). A result the writer cannot hold is one ``OsteoError``
    (``writable``), never a traceback."""
    import polars as pl

    try:
        _write(frame, fmt, limit, stream or sys.stdout, noun, raw, frame.height if total is None else total)
    except pl.exceptions.PolarsError:  # what writable does not foresee; Polars' text may quote a cell: not shown
        types = ", ".join(sorted({escape_controls(str(dtype)) for dtype in frame.dtypes}))
        raise OsteoError(
            f"--format {fmt} cannot write this result (column types: {types}): convert the columns in the query"
            " (e.g. ::VARCHAR) or use another --format"
        ) from None


def shown_rows(fmt: str, limit: int | None, stream: IO | None = None) -> int | None:
    """How many rows ``write_frame`` will write (None: all), so a query can stop there."""
    if limit is not None and limit < 0:  # said before any query runs, as write_frame says it
        raise OsteoError(f"--limit must be 0 or more, not {limit}")
    if limit is None and fmt == "table" and _is_terminal(stream or sys.stdout):
        return TERMINAL_ROWS
    return limit


def _write(frame: pl.DataFrame, fmt: str, limit: int | None, stream: IO, noun: str, raw: bool, total: int) -> None:
    terminal = _is_terminal(stream)
    if limit is not None and limit < 0:  # head(-1) would drop the last row
        raise OsteoError(f"--limit must be 0 or more, not {limit}")
    if fmt == "parquet":
        if terminal:
            raise OsteoError("--format parquet writes binary: redirect it to a file (… > result.parquet)")
        shown = frame if limit is None else frame.head(limit)
        stream.flush()
        shown.write_parquet(stream.buffer if hasattr(stream, "buffer") else stream)
        return
    if limit is None and fmt == "table" and terminal:
        limit = TERMINAL_ROWS
    shown = writable(frame if limit is None else frame.head(limit), fmt)
    if fmt == "csv":
        from osteo_core.outputs.csv_safety import write_csv

        stream.write(write_csv(_flat(shown), raw=raw))
    elif fmt == "json":
        stream.write(shown.write_json() + "\n")
    else:
        width = terminal_width()
        if frame.width == 0 or total == 0:
            stream.write(f"no {noun}s\n")
            return
        lines, left_out = draw(shown, width)
        hidden = total - shown.height
        notes = [
            f"not shown, too wide for {width} columns: {', '.join(left_out)} (--format csv has all)"
            if left_out
            else "",
            f"… {hidden:,} more {noun}(s): --limit N shows more, --format csv gives all" if hidden else "",
            f"{total:,} {noun}(s)",
        ]
        for note in filter(None, notes):  # within the width too, words kept whole
            lines += textwrap.wrap(note, max(width, 1), break_on_hyphens=False, break_long_words=False) or [note]
        stream.write("\n".join(lines) + "\n")
