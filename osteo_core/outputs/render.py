"""One way to print a table, for every command (``osteo sql``, ``gaps``, ``sql --tables``, ``demo``).

``table`` is a Rich table that fits the terminal, at most ``limit`` rows (50 by default on a terminal, all
when piped), then "… N more rows"; ``csv`` and ``json`` give every row unless ``--limit`` is given;
``parquet`` is binary and refuses a terminal.
"""

from __future__ import annotations

import datetime as dt
import io
import sys
from typing import IO, TYPE_CHECKING

from osteo_core.errors import OsteoError

if TYPE_CHECKING:  # the CLI imports this module for --help: no Polars until a table is printed
    import polars as pl

FORMATS = ("table", "csv", "json", "parquet")
TERMINAL_ROWS = 50  # rows a table shows on a terminal unless --limit says otherwise
DEFAULT_WIDTH = 120  # when neither COLUMNS nor a terminal says how wide


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


MIN_COLUMN = 10  # no column is squeezed below this (or below its widest cell, when narrower)
KEEP_WHOLE = 24  # cells up to this long (ids, dates, codes) are never wrapped; longer text wraps


def _min_widths(frame: pl.DataFrame) -> list[int]:
    widths = []
    for name in frame.columns:
        natural = max([len(name), *(len(_cell(v)) for v in frame.get_column(name).to_list())])
        widths.append(natural if natural <= KEEP_WHOLE else max(MIN_COLUMN, len(name)))
    return widths


def fits(frame: pl.DataFrame, width: int) -> bool:
    """Whether every column gets its minimum width (``_min_widths``) side by side within ``width``."""
    return sum(w + 3 for w in _min_widths(frame)) + 1 <= width


def records(frame: pl.DataFrame, width: int) -> str:
    """One block per row, ``column  value`` per line (as psql's expanded display): for tables too wide to
    read as columns. Long values wrap under themselves."""
    import textwrap

    key_width = max(len(name) for name in frame.columns)
    value_width = max(MIN_COLUMN, width - key_width - 2)
    blocks = []
    for number, row in enumerate(frame.iter_rows(), start=1):
        lines = [f"── row {number} " + "─" * max(0, min(width, 40) - len(f"── row {number} "))]
        for name, value in zip(frame.columns, row, strict=True):
            wrapped = textwrap.wrap(_cell(value), value_width) or [""]
            lines.append(f"{name.ljust(key_width)}  {wrapped[0]}")
            lines += [" " * (key_width + 2) + more for more in wrapped[1:]]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def rich_table(frame: pl.DataFrame, width: int, title: str | None = None) -> str:
    """``frame`` as a Rich table no wider than ``width``; long cells wrap within their column."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold", title_justify="left")
    for (name, dtype), least in zip(frame.schema.items(), _min_widths(frame), strict=True):
        numeric = dtype.is_numeric()
        table.add_column(name, justify="right" if numeric else "left", overflow="fold", min_width=least)
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) for v in row))
    buffer = io.StringIO()
    Console(file=buffer, width=width, force_terminal=False, color_system=None, soft_wrap=False).print(table)
    return buffer.getvalue().rstrip("\n")


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


def write_frame(
    frame: pl.DataFrame,
    fmt: str = "table",
    limit: int | None = None,
    stream: IO | None = None,
    noun: str = "row",
) -> None:
    """Write ``frame`` to ``stream`` (stdout) in ``fmt``. ``limit`` None: 50 table rows on a terminal, else all."""
    stream = stream or sys.stdout
    terminal = _is_terminal(stream)
    if fmt == "parquet":
        if terminal:
            raise OsteoError("--format parquet writes binary: redirect it to a file (… > result.parquet)")
        shown = frame if limit is None else frame.head(limit)
        stream.flush()
        shown.write_parquet(stream.buffer if hasattr(stream, "buffer") else stream)
        return
    if limit is None and fmt == "table" and terminal:
        limit = TERMINAL_ROWS
    shown = frame if limit is None else frame.head(limit)
    if fmt == "csv":
        stream.write(_flat(shown).write_csv())
    elif fmt == "json":
        stream.write(shown.write_json() + "\n")
    else:
        width = terminal_width()
        if frame.width == 0 or frame.is_empty():
            stream.write(f"no {noun}s\n")
            return
        stream.write((rich_table(shown, width) if fits(shown, width) else records(shown, width)) + "\n")
        hidden = frame.height - shown.height
        more = f"… {hidden:,} more {noun}(s): --limit N shows more, --format csv gives all\n" if hidden else ""
        stream.write(more + f"{frame.height:,} {noun}(s)\n")
