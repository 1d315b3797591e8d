"""Text → typed value for each kind of field, and the test "this cell is readable as its kind". The same
function parses and checks, so a value is never accepted by a check and then lost by the cast. Plain
Polars expressions: no Pandera here (``schemas.checks`` builds the Pandera checks on top).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from schemas import parsing

DTYPES = {
    "text": pl.Utf8,
    "date": pl.Date,
    "sex": pl.Utf8,
    "number": pl.Float64,
    "integer": pl.Int64,
    "boolean": pl.Boolean,
    "menopausal": pl.Utf8,
    "spine_levels": pl.Utf8,
    "fracture_site": pl.Utf8,
    "icd10": pl.Utf8,
}
READABLE_CHECK_NAMES = {
    "number": "is_number",
    "integer": "is_integer",
    "date": "is_date",
    "boolean": "is_boolean",
    "sex": "allowed_value",
    "menopausal": "allowed_value",
    "fracture_site": "allowed_value",
    "spine_levels": "spine_levels_format",
    "icd10": "icd10_format",
}
Words = dict[str, dict[str, str | None]]  # kind -> accepted word -> code (None = unknown)


EXPRESSION = "osteo_expression"  # attribute of our checks: column name -> the Polars expression they test
# Attribute of a "readable" check: the condition under which it applies. With the column already parsed
# (``reader``), the check is "blank, or parsed to a value": no need to parse the text a second time.
PARSED_EQUIVALENT = "osteo_parsed_equivalent"


def reader(kind: str, date_formats: list[str], words: Words, decimal: str = ".") -> Callable[[pl.Expr], pl.Expr]:
    """Text → typed value (null when blank or unreadable); the same function parses and checks."""
    readers: dict[str, Callable[[pl.Expr], pl.Expr]] = {
        "text": lambda e: e,
        "number": lambda e: parsing.number(e, decimal),
        "integer": lambda e: parsing.integer(e, decimal),
        "date": lambda e: parsing.date(e, date_formats),
        "boolean": parsing.boolean,
        "spine_levels": parsing.spine_levels,
        "icd10": parsing.icd10,
    }
    if kind in readers:
        return readers[kind]
    return lambda e: parsing.coded(e, words[kind])


def readable(kind: str, date_formats: list[str], words: Words, decimal: str = ".") -> Callable[[str], pl.Expr]:
    if kind in words:
        return lambda c: pl.col(c).is_null() | parsing.coded_is_known(pl.col(c), words[kind])
    read = reader(kind, date_formats, words, decimal)
    return lambda c: pl.col(c).is_null() | read(pl.col(c)).is_not_null()
