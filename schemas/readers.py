"""Text → typed value for each kind of field, and the test "this cell is readable as its kind". The same
function parses and checks, so a value is never accepted by a check and then lost by the cast. A column an
export gives in one of its kind's native types (a Parquet float for a number) is read as it is. Plain
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


# Typed cells an export may hand over as they are (a Parquet column), by kind: validated as what they are,
# never turned into text and parsed back. Float32 is not among them: widened, 0.1 would become
# 0.10000000149…, where its text, ``0.1``, is what the export meant; it is read as text, as is every other type.
_WHOLE_NUMBERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
NATIVE_TYPES: dict[str, tuple[pl.DataType, ...]] = {
    "number": (pl.Float64, *_WHOLE_NUMBERS),
    "integer": (pl.Float64, *_WHOLE_NUMBERS),
    "date": (pl.Date,),
    "boolean": (pl.Boolean,),
}


def stays_typed(kind: str | None, dtype: pl.DataType) -> bool:
    """A column of ``dtype`` holding a field of ``kind`` is validated as it is (not as text)."""
    return kind is not None and any(dtype == native for native in NATIVE_TYPES.get(kind, ()))


def _typed_reader(kind: str) -> Callable[[pl.Expr], pl.Expr]:
    """A native cell (``stays_typed``) → the field's value: a number is finite; a whole number is whole."""
    if kind == "number":
        return lambda e: parsing.finite(e.cast(pl.Float64))
    if kind == "integer":
        return lambda e: parsing.whole(parsing.finite(e.cast(pl.Float64)))
    return lambda e: e


def reader(
    kind: str, date_formats: list[str], words: Words, decimal: str = ".", dtype: pl.DataType = pl.Utf8
) -> Callable[[pl.Expr], pl.Expr]:
    """Text → typed value (null when blank or unreadable); the same function parses and checks.

    ``dtype``: the column's type, text unless it is one of the kind's native types (``stays_typed``)."""
    if dtype != pl.Utf8:
        if not stays_typed(kind, dtype):
            raise TypeError(f"a {kind} field is read from text or from {NATIVE_TYPES.get(kind, ())}, not {dtype}")
        return _typed_reader(kind)
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


def readable(
    kind: str, date_formats: list[str], words: Words, decimal: str = ".", dtype: pl.DataType = pl.Utf8
) -> Callable[[str], pl.Expr]:
    if kind in words:
        return lambda c: pl.col(c).is_null() | parsing.coded_is_known(pl.col(c), words[kind])
    read = reader(kind, date_formats, words, decimal, dtype)
    return lambda c: pl.col(c).is_null() | read(pl.col(c)).is_not_null()
