"""Validation shared by every input: text → typed columns, two Pandera tiers, quarantine rows.

Row accounting holds per input: each row of ``text`` is valid or quarantined (scans also set aside
identical duplicates before calling ``check_rows``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandera.polars as pa
import polars as pl

from osteo_core.validate.quarantine import ROW, failures, quarantine_rows
from schemas import parsing
from schemas.fields import Field
from schemas.readers import Words, reader, stays_typed
from schemas.tables import SOURCE_FILE, SOURCE_ROW


@dataclass(frozen=True)
class Validated:
    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    quarantined_rows: int
    duplicates: int = 0


def normalise_text(raw: pl.LazyFrame, fields: tuple[Field, ...]) -> pl.LazyFrame:
    """All known columns present (absent ones blank); text cells trimmed, empty → null. A column given in a
    native type of its field (``schemas.readers.stays_typed``: a Parquet float for a number) stays as it is;
    any other column is text."""
    schema = raw.collect_schema()
    native = native_types(schema, fields)
    return raw.with_columns(
        pl.col(f.name)
        if f.name in native
        else parsing.blank_to_null(pl.col(f.name).cast(pl.Utf8)).alias(f.name)
        if f.name in schema
        else pl.lit(None, dtype=pl.Utf8).alias(f.name)
        for f in fields
    )


def native_types(schema: Mapping[str, pl.DataType], fields: tuple[Field, ...]) -> dict[str, pl.DataType]:
    """The columns of ``schema`` given in a native type of their field, with that type."""
    return {f.name: schema[f.name] for f in fields if f.name in schema and stays_typed(f.kind, schema[f.name])}


def typed_columns(
    fields: tuple[Field, ...],
    date_formats: list[str],
    words: Words,
    decimal: str = ".",
    types: Mapping[str, pl.DataType] | None = None,
) -> list[pl.Expr]:
    """Each field's typed value; ``types``: the columns given in a native type (``native_types``)."""
    types = types or {}
    return [
        reader(f.kind, date_formats, words, decimal, types.get(f.name, pl.Utf8))(pl.col(f.name)).alias(f.name)
        for f in fields
    ]


def with_row_numbers(text: pl.LazyFrame) -> pl.DataFrame:
    return text.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64)).collect()


def check_rows(
    text: pl.DataFrame,
    typed: pl.DataFrame,
    raw_schema: pa.DataFrameSchema,
    typed_schema: pa.DataFrameSchema,
    input_name: str,
    id_columns: dict[str, str | None],
    derived: frozenset[str] = frozenset(),
    set_aside: pl.Series | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(valid typed rows, quarantine rows, number of quarantined rows) for one input's frames.

    ``set_aside``: rows (``_row``) already quarantined for a reason found before validation (a long
    export's exam whose rows disagree); they are checked too but never valid, and counted once."""
    # the text tier's "readable" checks read the typed frame (parsed once) for every non-derived column
    if typed.get_column(ROW).equals(text.get_column(ROW)):
        parsed = typed.select(c for c in typed.columns if c in text.columns and c not in derived and c != ROW)
    else:
        parsed = None
    failed = pl.concat([failures(raw_schema, text, parsed), failures(typed_schema, typed)])
    quarantine = quarantine_rows(failed, text, input_name, id_columns, derived=derived)
    bad_rows = failed.get_column(ROW)
    if set_aside is not None:
        bad_rows = pl.concat([bad_rows, set_aside.cast(pl.Int64)])
    bad_rows = bad_rows.unique()
    valid = typed.filter(pl.col(ROW).is_in(bad_rows.implode()).not_()).drop(ROW)
    return valid, quarantine, bad_rows.len()


SOURCE_COLUMNS = (ROW, SOURCE_FILE, SOURCE_ROW)
