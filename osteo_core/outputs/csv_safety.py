"""CSV that is safe to open in a spreadsheet: the one rule every CSV the product writes goes through.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (and tab or carriage
return can hide such a start), so a note ``=HYPERLINK(…)`` in the outreach log or a roster column would run
when the CSV is opened. Following OWASP's rule for CSV injection, such a text cell is written with a single
quote ``'`` in front, which a spreadsheet shows as text and does not run.

A *plain number* is left as it is: an optional sign, digits with an optional decimal point (or a point then
digits), and an optional exponent, nothing else (``PLAIN_NUMBER``: ``-9.9``, ``+3``, ``-1.5e3``, ``-.5``).
``-`` alone, ``-inf``, ``-nan``, ``-1,5``, ``-0x1F`` or a number with spaces around it are not plain numbers:
a spreadsheet reads them as formulas (or errors), so they get the quote. Numeric, date and boolean columns
are never changed; only text (and categorical) columns and the header are. JSON and Parquet keep every cell
as stored, and ``osteo sql --raw`` writes CSV as stored, for pipelines.

A column name gets the quote by the same rule, always (``safe_names``). Should the quoted name then be another
column's name (``select 'a' "=x", 'b' "'=x"``: both would read ``'=x``), the quoted one also gets the first free
suffix ``_1``, ``_2`` … (``'=x_1``), as DuckDB names a repeated column; the other keeps its name, which the query
wrote as it is.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

RISKY_START = "=+-@\t\r"  # a cell starting with one of these may run as a formula
PREFIX = "'"
# [0-9], not \d: Python and Polars (Rust) would both accept other scripts' digits, which a spreadsheet does not
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
PLAIN_NUMBER = re.compile(_NUMBER)  # use with fullmatch
_RISKY = r"^[=+\-@\t\r]"  # RISKY_START as a regex class (Python and Polars alike)
_WHOLE_NUMBER = f"^(?:{_NUMBER})$"  # Rust's $ (no multi-line flag) is the end of the text, as fullmatch


def is_plain_number(text: str) -> bool:
    return PLAIN_NUMBER.fullmatch(text) is not None


def neutralise(text: str) -> str:
    """``text``, or ``'`` + ``text`` when it starts with a risky character and is not a plain number."""
    if text and text[0] in RISKY_START and not is_plain_number(text):
        return PREFIX + text
    return text


def _text_columns(frame: pl.DataFrame) -> list[str]:
    import polars as pl

    text = (pl.Utf8, pl.Categorical, pl.Enum)
    return [name for name, dtype in frame.schema.items() if any(dtype == kind for kind in text)]


def safe_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell and column name passed through ``neutralise`` (vectorised in Polars)."""
    import polars as pl

    cells = [
        pl.when(pl.col(name).str.contains(_RISKY) & ~pl.col(name).str.contains(_WHOLE_NUMBER))
        .then(pl.lit(PREFIX) + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name in _text_columns(frame)
    ]
    safe = frame.with_columns(pl.col(name).cast(pl.Utf8) for name in _text_columns(frame)).with_columns(cells)
    names = safe_names(safe.columns)
    if names != safe.columns:
        safe = safe.rename(dict(zip(safe.columns, names, strict=True)))
    return safe


def safe_names(names: list[str]) -> list[str]:
    """``names`` passed through ``neutralise``, still all different: a quoted name that is another column's
    name gets the first free suffix ``_1``, ``_2`` … (it starts with the quote, so stays safe)."""
    safe = [neutralise(name) for name in names]
    taken = {name for name, new in zip(names, safe, strict=True) if name == new}  # kept as the query wrote them
    unique = []
    for name, new in zip(names, safe, strict=True):
        if name != new:
            candidate, number = new, 0
            while candidate in taken:
                number += 1
                candidate = f"{new}_{number}"
            new = candidate
            taken.add(new)
        unique.append(new)
    return unique


def write_csv(frame: pl.DataFrame, raw: bool = False) -> str:
    """``frame`` as CSV text, neutralised unless ``raw`` (cells exactly as stored)."""
    return (frame if raw else safe_frame(frame)).write_csv()
