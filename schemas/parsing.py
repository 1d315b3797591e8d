"""Polars expressions that turn the text of an export cell into a typed value.

Every expression here returns null for a blank cell *and* for a cell it cannot read. The validation
schemas (``schemas/input_checks.py``, through ``schemas.readers``) use the very same expressions to decide
whether a non-blank cell is readable, so a value is never accepted by the check and then lost by the cast, or
the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl

UNICODE_MINUS = "\u2212"
ISO_DATE = "%Y-%m-%d"
# Spreadsheet readers and typed sources render dates with a time part; the date part is what counts.
_ISO_DATETIME_PREFIX = r"^(\d{4}-\d{2}-\d{2})[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"

TRUE_WORDS = ("true", "1", "yes", "y", "t")
FALSE_WORDS = ("false", "0", "no", "n", "f")
# Spine levels: "L1-L4", "L2–L4", "L1,L3", "L1-L2, L4", "L1-4".
_SPINE_PART = r"^L([1-4])(?:-L?([1-4]))?$"
_ICD10 = r"^[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}$"


def blank_to_null(expr: pl.Expr) -> pl.Expr:
    """Trim whitespace; an empty cell is unknown (null), never zero or false."""
    return expr.str.strip_chars().replace("", None)  # half the cost of a when/then on the length


DECIMAL_MARKS = (".", ",")


def number(expr: pl.Expr, decimal: str = ".") -> pl.Expr:
    """A finite decimal number; accepts a trailing ``%`` and a Unicode minus sign.

    Most cells are plain decimals: they are cast directly, and only the others go through the text
    clean-up (the clean-up never changes a cell the direct cast reads, so the value is the same).

    ``decimal=","`` (a profile's decimal comma) also reads ``88,5`` as 88.5. A dot still reads as a decimal
    point (typed Parquet and XLSX cells are rendered with one; no field reaches 1,000, so a dot is never a
    thousands separator), and a cell holding both marks, or two commas, is unreadable, never guessed.
    """
    direct = expr.cast(pl.Float64, strict=False)
    text = expr.str.strip_chars().str.replace_all(UNICODE_MINUS, "-", literal=True)
    text = text.str.strip_suffix("%").str.strip_chars()
    if decimal == ",":
        both = text.str.contains(",", literal=True) & text.str.contains(".", literal=True)
        text = pl.when(both).then(None).otherwise(text.str.replace(",", ".", literal=True))
    value = text.cast(pl.Float64, strict=False)
    return pl.when(direct.is_finite()).then(direct).otherwise(finite(value))


def finite(value: pl.Expr) -> pl.Expr:
    """A number as a value: NaN and the infinities are not readable numbers (null), as their text is not."""
    return pl.when(value.is_finite()).then(value).otherwise(None)


def integer(expr: pl.Expr, decimal: str = ".") -> pl.Expr:
    """A whole number (``30``, ``30.0``); null for ``30.5`` or text."""
    return whole(number(expr, decimal))


def whole(value: pl.Expr) -> pl.Expr:
    """A number that is whole, as an integer; null otherwise, and null when it is too large for one (2**63 and
    beyond: not a readable integer, where a strict cast would stop the run)."""
    return pl.when(value == value.floor()).then(value.cast(pl.Int64, strict=False)).otherwise(None)


def icd10(expr: pl.Expr) -> pl.Expr:
    """An ICD-10(-CM) code without its dot, upper case (``S72.001A`` → ``S72001A``); null when malformed."""
    code = expr.str.strip_chars().str.to_uppercase().str.replace(".", "", literal=True)
    return pl.when(code.str.contains(_ICD10)).then(code).otherwise(None)


def by_distinct(parse: Callable[[pl.Expr], pl.Expr], dtype: pl.DataType) -> Callable[[pl.Expr], pl.Expr]:
    """``parse`` applied to each distinct cell once and joined back onto the rows: the same values, far
    less work on columns with few distinct cells (dates, flags, codes in a registry)."""

    def per_batch(values: pl.Series) -> pl.Series:
        distinct = pl.DataFrame({"v": values.unique()}).with_columns(parse(pl.col("v")).alias("parsed"))
        joined = values.to_frame("v").join(distinct, on="v", how="left", maintain_order="left", nulls_equal=True)
        return joined.get_column("parsed").alias(values.name)

    return lambda expr: expr.map_batches(per_batch, return_dtype=dtype)


def date(expr: pl.Expr, formats: Sequence[str]) -> pl.Expr:
    """A calendar date in any of the profile's formats, or ISO (with or without a time part)."""
    return by_distinct(lambda e: _date(e, formats), pl.Date)(expr)


def _date(expr: pl.Expr, formats: Sequence[str]) -> pl.Expr:
    text = expr.str.strip_chars()
    iso_part = text.str.extract(_ISO_DATETIME_PREFIX, 1)
    candidates = [text.str.to_date(fmt, strict=False) for fmt in dict.fromkeys([*formats, ISO_DATE])]
    candidates.append(iso_part.str.to_date(ISO_DATE, strict=False))
    return pl.coalesce(candidates)


def boolean(expr: pl.Expr) -> pl.Expr:
    """``true/false``, ``1/0``, ``yes/no``, ``y/n``, ``t/f`` in any case."""
    return by_distinct(_boolean, pl.Boolean)(expr)


def _boolean(expr: pl.Expr) -> pl.Expr:
    word = expr.str.strip_chars().str.to_lowercase()
    return (
        pl.when(word.is_in(TRUE_WORDS))
        .then(pl.lit(True))
        .when(word.is_in(FALSE_WORDS))
        .then(pl.lit(False))
        .otherwise(pl.lit(None, dtype=pl.Boolean))
    )


def coded(expr: pl.Expr, mapping: dict[str, str | None]) -> pl.Expr:
    """Map case-insensitive words onto codes; a word mapped to None means unknown (blank)."""
    known = {k.lower(): v for k, v in mapping.items() if v is not None}
    words = lambda e: e.str.strip_chars().str.to_lowercase().replace_strict(known, default=None, return_dtype=pl.Utf8)  # noqa: E731
    return by_distinct(words, pl.Utf8)(expr)


def coded_is_known(expr: pl.Expr, mapping: dict[str, str | None]) -> pl.Expr:
    """True when the word is one the mapping knows (including words that mean unknown)."""
    return expr.str.strip_chars().str.to_lowercase().is_in([k.lower() for k in mapping])


def spine_levels(expr: pl.Expr) -> pl.Expr:
    """Normalised vertebra list, e.g. ``L1-L4`` → ``L1,L2,L3,L4``; null when unreadable.

    A registry holds a handful of distinct level strings, so each distinct value is parsed once and the
    result joined back (a batch-wise Polars join, not per-row Python): much faster on millions of rows.
    """
    return by_distinct(_spine_levels_expr, pl.Utf8)(expr)


def _spine_levels_expr(expr: pl.Expr) -> pl.Expr:
    parts = expr.str.to_uppercase().str.replace_all(r"\s", "").str.replace_all("[\u2013\u2014]", "-").str.split(",")
    first = pl.element().str.extract(_SPINE_PART, 1).cast(pl.Int8)
    last = pl.coalesce(pl.element().str.extract(_SPINE_PART, 2).cast(pl.Int8), first)
    levels = parts.list.eval(
        pl.when(first.is_not_null() & (last >= first))
        .then(pl.int_ranges(first, last + 1, dtype=pl.Int8))
        .otherwise(pl.lit(None, dtype=pl.List(pl.Int8)))
    )
    readable = levels.list.eval(pl.element().is_null().not_()).list.all()
    flat = levels.list.eval(pl.element().explode()).list.unique(maintain_order=False).list.sort()
    text = flat.list.eval(pl.lit("L") + pl.element().cast(pl.Utf8)).list.join(",")
    return pl.when(readable & (flat.list.len() > 0)).then(text).otherwise(None)


def spine_level_count(normalised: pl.Expr) -> pl.Expr:
    """Number of vertebrae in a normalised level list (null when the list is unknown)."""
    return normalised.str.split(",").list.len().cast(pl.Int8)


def completed_years(start: pl.Expr, end: pl.Expr) -> pl.Expr:
    """Whole years from ``start`` to ``end`` (age in completed years; 29 Feb counts from 1 Mar)."""
    years = end.dt.year().cast(pl.Int32) - start.dt.year().cast(pl.Int32)
    before_birthday = (end.dt.month() < start.dt.month()) | (
        (end.dt.month() == start.dt.month()) & (end.dt.day() < start.dt.day())
    )
    return years - before_birthday.cast(pl.Int32)
