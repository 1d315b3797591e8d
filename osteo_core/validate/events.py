"""The optional medications and fractures exports, validated like scans: text to typed values, identical
rows counted as duplicates, failing rows quarantined. ``decide.events`` then interprets the valid rows."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import polars as pl

from osteo_core.validate.rows import (
    SOURCE_COLUMNS,
    Validated,
    check_rows,
    native_types,
    normalise_text,
    typed_columns,
    with_row_numbers,
)
from schemas.events import DXA_PROCEDURES_FIELDS, EVENT_WORDS, FRACTURES_FIELDS, MEDS_FIELDS
from schemas.input_checks import (
    raw_dxa_procedures_schema,
    raw_fractures_schema,
    raw_meds_schema,
    typed_dxa_procedures_schema,
    typed_fractures_schema,
    typed_meds_schema,
)
from schemas.parsing import blank_to_null

# Text compared without case when telling identical event rows apart ("Prolia" is "PROLIA").
_CASELESS = frozenset({"drug"})


def _content(name: str) -> pl.Expr:
    """A canonical value as compared between rows: parsed where it parses, else as written."""
    value = pl.coalesce(name, f"_text_{name}")
    return (value.str.to_lowercase() if name in _CASELESS else value).alias(name)


def validate_rows(
    raw, fields, date_formats, decimal, raw_schema, typed_schema, name, words=EVENT_WORDS, passed=()
) -> Validated:
    """Both Pandera tiers over one input; identical rows (every canonical value equal after parsing, the
    drug name without case, and the ``passed`` columns, kept as trimmed text) are set aside first: the
    first copy is validated, the others counted.

    ``raw_schema(types)`` builds the text tier for the columns given in a native type (``native_types``)."""
    present = set(raw.collect_schema().names())
    text = with_row_numbers(
        normalise_text(raw, fields).with_columns(
            blank_to_null(pl.col(c).cast(pl.Utf8)).alias(c) if c in present else pl.lit(None, dtype=pl.Utf8).alias(c)
            for c in passed
        )
    )
    types = native_types(text.schema, fields)
    typed_all = (
        text.lazy()
        .select(
            *SOURCE_COLUMNS,
            *typed_columns(fields, date_formats, words, decimal, types),
            *(pl.col(c) for c in passed),
        )
        .collect()
    )
    as_text = typed_all.select(pl.col(f.name).cast(pl.Utf8) for f in fields).hstack(
        text.select(pl.col(f.name).cast(pl.Utf8).alias(f"_text_{f.name}") for f in fields)
    )
    content = [_content(f.name) for f in fields] + [typed_all.get_column(c) for c in passed]
    duplicate = as_text.select(pl.struct(content).is_first_distinct().not_()).to_series()
    kept, typed = text.filter(duplicate.not_()), typed_all.filter(duplicate.not_())
    valid, quarantine, quarantined = check_rows(
        kept, typed, raw_schema(types), typed_schema, name, {"patient_id": "patient_id", "exam_id": None}
    )
    return Validated(valid, quarantine, text.height, quarantined, duplicates=int(duplicate.sum()))


def validate_meds(
    raw: pl.LazyFrame, date_formats: list[str], as_of: dt.date, bounds: dict[str, Any], decimal: str = "."
) -> Validated:
    raw_schema = functools.partial(raw_meds_schema, date_formats, decimal)
    typed_schema = typed_meds_schema(as_of, bounds)
    return validate_rows(raw, MEDS_FIELDS, date_formats, decimal, raw_schema, typed_schema, "meds")


def validate_fractures(raw: pl.LazyFrame, date_formats: list[str], as_of: dt.date, decimal: str = ".") -> Validated:
    return validate_rows(
        raw,
        FRACTURES_FIELDS,
        date_formats,
        decimal,
        functools.partial(raw_fractures_schema, date_formats, decimal),
        typed_fractures_schema(as_of),
        "fractures",
    )


def validate_dxa_procedures(
    raw: pl.LazyFrame, date_formats: list[str], as_of: dt.date, decimal: str = "."
) -> Validated:
    """Completed DXA procedures (a FHIR export's Procedures): patient and date required, the date not after the
    as-of date."""
    return validate_rows(
        raw,
        DXA_PROCEDURES_FIELDS,
        date_formats,
        decimal,
        functools.partial(raw_dxa_procedures_schema, date_formats, decimal),
        typed_dxa_procedures_schema(as_of),
        "dxa_procedures",
    )
