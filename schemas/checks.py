"""Pandera check builders shared by the input schemas. A check's ``name`` is what ``quarantine.check`` shows."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandera.polars as pa
import polars as pl

from schemas.fields import Field
from schemas.readers import EXPRESSION, PARSED_EQUIVALENT, READABLE_CHECK_NAMES, Words, readable


def column_check(name: str, expr_fn: Callable[[str], pl.Expr], description: str) -> pa.Check:
    """A vectorised check from a Polars expression builder taking the column name.

    Pandera reports ``error`` instead of ``name`` when one is set, so the wording goes in ``description``.
    The builder is kept on the check (``EXPRESSION``), so every check of a schema can also be evaluated
    at once, in one ``select`` (``osteo_core.validate.quarantine.passing_rows``).
    """
    check = pa.Check(lambda data: data.lazyframe.select(expr_fn(data.key)), name=name, description=description)
    setattr(check, EXPRESSION, expr_fn)
    return check


def frame_check(name: str, expr: pl.Expr, description: str) -> pa.Check:
    check = pa.Check(lambda data: data.lazyframe.select(expr), name=name, description=description)
    setattr(check, EXPRESSION, lambda _column: expr)
    return check


def text_schema(
    name: str,
    fields: tuple[Field, ...],
    date_formats: list[str],
    words: Words,
    row_checks: list[pa.Check],
    only_when: dict[str, Callable[[], pl.Expr]] | None = None,
    decimal: str = ".",
    types: Mapping[str, pl.DataType] | None = None,
) -> pa.DataFrameSchema:
    """Tier 1: required cells present and every non-blank cell readable as its type.

    ``only_when`` maps a column to a condition under which it is checked at all. ``types``: the columns the
    export gave in a native type of their kind (``schemas.readers.stays_typed``); every other column is text.
    """
    columns: dict[str, pa.Column] = {}
    for f in fields:
        dtype = (types or {}).get(f.name, pl.Utf8)
        checks = []
        if f.required:
            checks.append(column_check("required", lambda c: pl.col(c).is_not_null(), f"{f.name} is required"))
        if f.kind != "text":
            check_fn = readable(f.kind, date_formats, words, decimal, dtype)
            condition = (only_when or {}).get(f.name)
            if condition is not None:
                check_fn = lambda c, inner=check_fn, cond=condition: cond().not_() | inner(c)  # noqa: E731
            check = column_check(READABLE_CHECK_NAMES[f.kind], check_fn, f"{f.name} must be a {f.kind}")
            if f.kind not in words:  # "readable" = blank, or its parse (``reader``) gives a value
                setattr(check, PARSED_EQUIVALENT, condition or (lambda: pl.lit(True)))
            checks.append(check)
        columns[f.name] = pa.Column(dtype, checks=checks, nullable=True, description=f.description)
    return pa.DataFrameSchema(columns, checks=row_checks, name=name, strict=False)


def ordered(name: str, earlier: str, later: str) -> pa.Check:
    return column_check(
        name,
        lambda c: pl.col(earlier).is_null() | pl.col(later).is_null() | (pl.col(earlier) <= pl.col(later)),
        f"{earlier} must not be after {later}",
    )


def not_after(name: str, limit) -> pa.Check:
    return column_check(
        name, lambda c: pl.col(c).is_null() | (pl.col(c) <= pl.lit(limit)), f"must not be after {limit}"
    )


def range_check(bounds: list[float]) -> pa.Check:
    low, high = bounds
    return pa.Check.in_range(low, high) if high != float("inf") else pa.Check.ge(low)
