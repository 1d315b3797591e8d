"""The population roster, validated like the other inputs: text to typed values, identical rows counted as
duplicates, failing rows quarantined (``input`` = ``population``). Routing columns pass through as text.

A patient is screened on all of their rows or on none: when any row of a patient is quarantined, the
patient's other rows are quarantined too (check ``other_row_of_patient_quarantined``), so a bad death date
or a lost span never leaves the rest of the rows to say the patient is alive or enrolled.
"""

from __future__ import annotations

import datetime as dt
import functools

import polars as pl

from osteo_core.ingest.profiles import Profile
from osteo_core.validate.events import validate_rows
from osteo_core.validate.rows import Validated
from schemas.input_checks import raw_population_schema, typed_population_schema
from schemas.population import POPULATION_FIELDS
from schemas.tables import QUARANTINE_SCHEMA, SOURCE_FILE, SOURCE_ROW

HELD_BACK = "other_row_of_patient_quarantined"


def validate_population(
    raw: pl.LazyFrame, profile: Profile, as_of: dt.date, routing: tuple[str, ...] | None = None
) -> Validated:
    """The roster's rows validated; ``routing`` (default: the profile's) columns are passed through as text."""
    result = validate_rows(
        raw,
        POPULATION_FIELDS,
        profile.date_formats,
        profile.decimal,
        functools.partial(raw_population_schema, profile.date_formats, profile.words),
        typed_population_schema(as_of),
        "population",
        words=profile.words,
        passed=routing if routing is not None else (profile.routing or ()),
    )
    patients = result.quarantine.select("patient_id").drop_nulls().unique()
    held = result.valid.join(patients, on="patient_id", how="semi")
    if held.is_empty():
        return result
    also = held.select(
        SOURCE_FILE,
        SOURCE_ROW,
        pl.lit("population").alias("input"),
        pl.lit(None, dtype=pl.Utf8).alias("column"),
        pl.lit(HELD_BACK).alias("check"),
        pl.lit(None, dtype=pl.Utf8).alias("value"),
        "patient_id",
        pl.lit(None, dtype=pl.Utf8).alias("exam_id"),
    ).cast(QUARANTINE_SCHEMA)
    return Validated(
        result.valid.join(patients, on="patient_id", how="anti"),
        pl.concat([result.quarantine, also]),
        result.rows_in,
        result.quarantined_rows + held.height,
        result.duplicates,
    )
