"""The population roster, validated like the other inputs: text to typed values, identical rows counted as
duplicates, failing rows quarantined (``input`` = ``population``). Routing columns pass through as text."""

from __future__ import annotations

import datetime as dt

import polars as pl

from osteo_core.ingest.profiles import Profile
from osteo_core.validate.events import validate_rows
from osteo_core.validate.rows import Validated
from schemas.input_checks import raw_population_schema, typed_population_schema
from schemas.population import POPULATION_FIELDS


def validate_population(raw: pl.LazyFrame, profile: Profile, as_of: dt.date) -> Validated:
    return validate_rows(
        raw,
        POPULATION_FIELDS,
        profile.date_formats,
        profile.decimal,
        raw_population_schema(profile.date_formats, profile.words),
        typed_population_schema(as_of),
        "population",
        words=profile.words,
        passed=profile.routing,
    )
