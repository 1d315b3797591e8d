"""Validation shared by every input: text → typed columns, two Pandera tiers, quarantine rows.

Row accounting holds per input: each row of ``text`` is valid or quarantined (scans also set aside
identical duplicates before calling ``check_rows``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandera.polars as pa
import polars as pl

from osteo_core.validate.quarantine import ROW, failures, quarantine_rows
from schemas import parsing
from schemas.fields import Field
from schemas.readers import Words, reader
from schemas.tables import SOURCE_FILE, SOURCE_ROW


@dataclass(frozen=True)
class Validated:
    valid: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    quarantined_rows: int
    duplicates: int = 0


def normalise_text(raw: pl.LazyFrame, fields: tuple[Field, ...]) -> pl.LazyFrame:
    """All known columns present (absent ones blank); their cells trimmed, empty → null."""
    present = set(raw.collect_schema().names())
    return raw.with_columns(
        parsing.blank_to_null(pl.col(f.name).cast(pl.Utf8)).alias(f.name)
        if f.name in present
        else pl.lit(None, dtype=pl.Utf8).alias(f.name)
        for f in fields
    )


def typed_columns(
    fields: tuple[Field, ...], date_formats: list[str], words: Words, decimal: str = "."
) -> list[pl.Expr]:
    return [reader(f.kind, date_formats, words, decimal)(pl.col(f.name)).alias(f.name) for f in fields]


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
